//! A captured HTTP exchange: its request and response heads, bounded body prefixes, and
//! WebSocket messages.

use crate::inspect::wsframes::WsMessage;
use crate::local::addr::LocalAddr;
use burrow_http::follow::Head;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Most body bytes kept per message; the rest still flows, and the record says it was cut.
pub const BODY_CAP: usize = 256 * 1024;

/// One side of an exchange.
#[derive(Debug, Clone)]
pub struct Message {
    /// The head as parsed.
    pub head: Head,
    /// The body prefix kept (de-chunked).
    pub body: Vec<u8>,
    /// Body bytes seen in total.
    pub body_size: u64,
    /// Whether the body was longer than what was kept.
    pub truncated: bool,
}

impl Message {
    /// A message with an empty body so far. A store of tens of thousands of exchanges keeps
    /// each head as its raw bytes (one allocation instead of two per field) and parses the
    /// header fields when they are shown.
    pub fn new(head: Head) -> Self {
        Message {
            head,
            body: Vec::new(),
            body_size: 0,
            truncated: false,
        }
    }

    /// Keeps `bytes` of body, up to the cap.
    pub fn push_body(&mut self, bytes: &[u8]) {
        let room = BODY_CAP.saturating_sub(self.body.len());
        self.body.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.body_size += bytes.len() as u64;
        self.truncated |= bytes.len() > room;
    }

    /// The header fields, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        burrow_http::follow::header_fields(&self.head.raw)
    }

    /// The head and kept body, as they crossed the wire.
    pub fn raw(&self) -> Vec<u8> {
        [self.head.raw.as_slice(), self.body.as_slice()].concat()
    }

    fn size(&self) -> usize {
        self.head.raw.len() + self.body.len() + 64
    }
}

/// The WebSocket messages of an upgraded exchange, appended while the connection lives.
#[derive(Debug, Default)]
pub struct WsLog {
    pub(super) messages: Mutex<Vec<Arc<WsMessage>>>,
    /// Set once the exchange left the store: later messages are not kept.
    pub(super) evicted: std::sync::atomic::AtomicBool,
}

impl WsLog {
    /// The messages so far.
    pub fn messages(&self) -> Vec<Arc<WsMessage>> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn size(&self) -> usize {
        let m = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|x| ws_size(x)).sum()
    }
}

/// Bytes one WebSocket message holds in the store.
pub fn ws_size(m: &WsMessage) -> usize {
    m.data.len() + 64
}

/// Most WebSocket messages kept per connection; later ones are counted only.
pub const WS_MESSAGES_CAP: usize = 1000;

/// An exchange: pending until its response ended.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Identifier in the API.
    pub id: String,
    /// API name of the tunnel (`NAME` or `NAME (http)`).
    pub tunnel_name: Arc<str>,
    /// The visitor.
    pub remote_addr: Arc<str>,
    /// When the request began.
    pub start: SystemTime,
    /// Until the response ended.
    pub duration: Duration,
    /// The request (shared with the pending state, so announcing it early copies nothing).
    pub request: Arc<Message>,
    /// The response, if one came.
    pub response: Option<Message>,
    /// Whether the response is still to come or still flowing.
    pub pending: bool,
    /// Where a replay goes.
    pub local: Arc<LocalAddr>,
    /// WebSocket messages, when the exchange upgraded to WebSocket.
    pub ws: Option<Arc<WsLog>>,
}

impl Captured {
    /// Bytes the record holds, for the store's size bound.
    pub fn size(&self) -> usize {
        self.request.size()
            + self.response.as_ref().map_or(0, Message::size)
            + self.ws.as_ref().map_or(0, |w| w.size())
            + 256
    }
}

/// A fresh exchange id.
pub fn new_id() -> String {
    format!(
        "ex_{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u32>()
    )
}
