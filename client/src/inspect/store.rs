//! Captured HTTP exchanges for the local API: heads and bounded body prefixes, kept under
//! `inspect_db_size` by evicting the oldest. The observer sees each chunk just before it is
//! written on, and copies what it keeps aside then; it never waits, so it never holds a
//! stream back.

use crate::inspect::captured::{ws_size, Captured, WsLog, WS_MESSAGES_CAP};
use crate::inspect::json;
use crate::inspect::wsframes::WsMessage;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Default store size, as ngrok's `inspect_db_size` default.
pub const DEFAULT_DB_SIZE: usize = 50 * 1024 * 1024;
/// What the store tells live subscribers, already rendered as JSON so that a subscriber
/// that stops reading holds small strings, not captured bodies.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new exchange, or a newer state of one already announced (same id): its summary.
    Request(Arc<str>),
    /// A WebSocket message: `{"id", "message"}`.
    Ws(Arc<str>),
    /// Exchanges dropped to stay under the size limit.
    Evict(Vec<String>),
    /// Everything was cleared.
    Clear,
}

/// Events a subscriber may fall behind by before it is told to take a fresh snapshot.
const EVENTS_BEHIND: usize = 1024;

#[derive(Default)]
struct Store {
    items: VecDeque<Arc<Captured>>,
    bytes: usize,
}

/// The store of captured exchanges.
pub struct Inspector {
    store: Mutex<Store>,
    limit: usize,
    events: broadcast::Sender<Event>,
}

impl Inspector {
    /// A store bounded by `db_size` bytes (0: the default; negative: capture nothing).
    pub fn new(db_size: i64) -> Option<Arc<Self>> {
        let limit = match db_size {
            n if n < 0 => return None,
            0 => DEFAULT_DB_SIZE,
            n => n as usize,
        };
        Some(Arc::new(Inspector {
            store: Mutex::new(Store::default()),
            limit,
            events: broadcast::channel(EVENTS_BEHIND).0,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live events from now on; a subscriber that falls behind is told it lagged and should
    /// take a fresh snapshot.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Tells subscribers, if any. Called with the store locked, so events go out in the
    /// order the store changed (an eviction never overtakes the exchange it removes).
    fn announce(&self, e: impl FnOnce() -> Event) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(e());
        }
    }

    fn announce_evicted(&self, evicted: Vec<String>) {
        if !evicted.is_empty() {
            self.announce(|| Event::Evict(evicted));
        }
    }

    /// Adds a new exchange, evicting the oldest to stay under the limit.
    pub fn push(&self, c: Captured) {
        let c = Arc::new(c);
        let mut s = self.lock();
        s.bytes += c.size();
        s.items.push_front(c.clone());
        let evicted = self.evict(&mut s);
        self.announce(|| Event::Request(json::summary(&c).to_string().into()));
        self.announce_evicted(evicted);
    }

    /// Replaces a pending exchange announced by `push` with its newer state. Pending
    /// exchanges are recent, so the search from the newest end is short. One already
    /// evicted or cleared stays gone (and its WebSocket log, if any, keeps nothing).
    pub fn finish(&self, c: Captured) {
        let c = Arc::new(c);
        let mut s = self.lock();
        let Some(i) = s.items.iter().position(|x| x.id == c.id) else {
            if let Some(w) = &c.ws {
                w.evicted.store(true, Ordering::Relaxed);
            }
            return;
        };
        let old = std::mem::replace(&mut s.items[i], c.clone());
        s.bytes = (s.bytes + c.size()).saturating_sub(old.size());
        let evicted = self.evict(&mut s);
        self.announce(|| Event::Request(json::summary(&c).to_string().into()));
        self.announce_evicted(evicted);
    }

    fn evict(&self, s: &mut Store) -> Vec<String> {
        let mut gone = Vec::new();
        while s.bytes > self.limit && s.items.len() > 1 {
            if let Some(old) = s.items.pop_back() {
                if let Some(w) = &old.ws {
                    w.evicted.store(true, Ordering::Relaxed);
                }
                s.bytes = s.bytes.saturating_sub(old.size());
                gone.push(old.id.clone());
            }
        }
        gone
    }

    /// Records a WebSocket message on exchange `id`. The check, the append and the byte
    /// count happen under the store lock, so an eviction cannot slip between them.
    pub fn push_ws(&self, id: &str, log: &WsLog, m: WsMessage) {
        let m = Arc::new(m);
        let mut s = self.lock();
        if log.evicted.load(Ordering::Relaxed) {
            return;
        }
        let kept = {
            let mut l = log.messages.lock().unwrap_or_else(|e| e.into_inner());
            let room = l.len() < WS_MESSAGES_CAP;
            if room {
                l.push(m.clone());
            }
            room
        };
        let evicted = if kept {
            s.bytes += ws_size(&m);
            self.evict(&mut s)
        } else {
            Vec::new()
        };
        self.announce(|| {
            let v = serde_json::json!({"id": id, "message": json::ws_json(&m)});
            Event::Ws(v.to_string().into())
        });
        self.announce_evicted(evicted);
    }

    /// Newest first, at most `limit`, optionally one tunnel's.
    pub fn list(&self, limit: usize, tunnel: Option<&str>) -> Vec<Arc<Captured>> {
        self.lock()
            .items
            .iter()
            .filter(|c| tunnel.is_none_or(|t| *c.tunnel_name == *t))
            .take(limit)
            .cloned()
            .collect()
    }

    /// One exchange by id.
    pub fn get(&self, id: &str) -> Option<Arc<Captured>> {
        self.lock().items.iter().find(|c| c.id == id).cloned()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut s = self.lock();
        for c in &s.items {
            if let Some(w) = &c.ws {
                w.evicted.store(true, Ordering::Relaxed);
            }
        }
        s.items.clear();
        s.bytes = 0;
        self.announce(|| Event::Clear);
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::captured::{new_id, Message, BODY_CAP};
    use burrow_http::follow::Head;
    use burrow_protocol::control::TunnelProto;
    use std::time::{Duration, SystemTime};

    fn exchange(body: usize) -> Captured {
        let head = Head {
            method: "POST".into(),
            path: "/".into(),
            status: 0,
            raw: b"POST / HTTP/1.1\r\n\r\n".to_vec(),
        };
        let mut request = Message::new(head);
        request.push_body(&vec![b'x'; body]);
        Captured {
            id: new_id(),
            tunnel_name: "t".into(),
            remote_addr: "127.0.0.1".into(),
            start: SystemTime::now(),
            duration: Duration::from_millis(1),
            request: Arc::new(request),
            response: None,
            pending: false,
            local: Arc::new(crate::local::addr::parse(TunnelProto::Http, "80").unwrap()),
            ws: None,
        }
    }

    #[test]
    fn websocket_messages_of_a_gone_exchange_are_not_counted() {
        let i = Inspector::new(1_000_000).unwrap();
        let mut c = exchange(10);
        c.ws = Some(Arc::new(WsLog::default()));
        let log = c.ws.clone().unwrap();
        // Completed after it was cleared: nothing to replace, and its log keeps nothing.
        i.finish(c);
        let msg = WsMessage {
            from: crate::inspect::wsframes::From::Client,
            opcode: 1,
            at: SystemTime::now(),
            size: 5,
            data: b"hello".to_vec(),
            truncated: false,
            compressed: false,
        };
        i.push_ws("gone", &log, msg.clone());
        assert_eq!(i.bytes(), 0);
        assert!(log.messages().is_empty());
        // A live one counts, and clearing resets the count.
        let mut c = exchange(10);
        let live = Arc::new(WsLog::default());
        c.ws = Some(live.clone());
        let id = c.id.clone();
        i.push(c);
        let before = i.bytes();
        i.push_ws(&id, &live, msg.clone());
        assert!(i.bytes() > before);
        i.clear();
        i.push_ws(&id, &live, msg);
        assert_eq!(i.bytes(), 0);
    }

    #[test]
    fn bodies_are_capped_and_marked() {
        let c = exchange(BODY_CAP + 10);
        assert_eq!(c.request.body.len(), BODY_CAP);
        assert!(c.request.truncated);
        assert!(!exchange(10).request.truncated);
    }

    #[test]
    fn the_store_evicts_the_oldest_to_stay_under_its_size() {
        let i = Inspector::new(10_000).unwrap();
        let ids: Vec<String> = (0..20)
            .map(|_| {
                let c = exchange(1000);
                let id = c.id.clone();
                i.push(c);
                id
            })
            .collect();
        assert!(i.bytes() <= 10_000, "{}", i.bytes());
        let kept = i.list(100, None);
        assert!(kept.len() < 20 && !kept.is_empty());
        assert_eq!(kept[0].id, ids[19], "newest first");
        assert!(i.get(&ids[0]).is_none(), "oldest evicted");
        assert!(Inspector::new(-1).is_none(), "-1 turns capture off");
    }
}
