//! Follows the WebSocket frames of an upgraded connection as they go by, for the inspector:
//! sans-IO, fed the bytes the tunnel already forwarded, it reassembles fragmented messages
//! and keeps a bounded, unmasked prefix of each payload. It never changes or holds bytes.

use std::time::SystemTime;

/// Most payload bytes kept per message.
pub const PAYLOAD_CAP: usize = 16 * 1024;

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The visitor (frames are masked).
    Client,
    /// The local server.
    Server,
}

impl From {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            From::Client => "client",
            From::Server => "server",
        }
    }
}

/// One message (a data message reassembled from its fragments, or a control frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsMessage {
    /// Sender.
    pub from: From,
    /// Opcode of the first frame (1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// When its first frame began.
    pub at: SystemTime,
    /// Payload bytes in total.
    pub size: u64,
    /// Payload prefix kept, unmasked.
    pub data: Vec<u8>,
    /// Whether `data` is shorter than the payload.
    pub truncated: bool,
    /// Sent with per-message compression (RSV1), so `data` is deflated.
    pub compressed: bool,
}

#[derive(Debug)]
enum State {
    Header(Vec<u8>),
    Payload {
        left: u64,
        mask: Option<[u8; 4]>,
        offset: usize,
        control: bool,
    },
    /// Not WebSocket framing after all: stop following.
    Lost,
}

/// Reads one direction's frames.
#[derive(Debug)]
pub struct FrameReader {
    from: From,
    state: State,
    /// The data message being assembled across fragments.
    message: Option<WsMessage>,
    /// A control frame being read (they may arrive between fragments).
    control: Option<WsMessage>,
    /// Whether the data frame being read is its message's last.
    fin_pending: bool,
}

impl FrameReader {
    /// A reader for `from`'s direction.
    pub fn new(from: From) -> Self {
        FrameReader {
            from,
            state: State::Header(Vec::with_capacity(14)),
            message: None,
            control: None,
            fin_pending: false,
        }
    }

    /// Consumes bytes, returning the messages they completed.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<WsMessage> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            match &mut self.state {
                State::Lost => break,
                State::Header(buf) => {
                    buf.push(bytes[0]);
                    bytes = &bytes[1..];
                    if let Some(parsed) = parse_header(buf) {
                        self.start_frame(parsed, &mut out);
                    }
                }
                State::Payload {
                    left,
                    mask,
                    offset,
                    control,
                } => {
                    let n = (bytes.len() as u64).min(*left) as usize;
                    let target = if *control {
                        self.control.as_mut()
                    } else {
                        self.message.as_mut()
                    };
                    if let Some(m) = target {
                        let room = PAYLOAD_CAP.saturating_sub(m.data.len()).min(n);
                        let start = m.data.len();
                        m.data.extend_from_slice(&bytes[..room]);
                        if let Some(key) = mask {
                            for (i, b) in m.data[start..].iter_mut().enumerate() {
                                *b ^= key[(*offset + i) % 4];
                            }
                        }
                        m.truncated |= room < n;
                    }
                    *offset += n;
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        let control = *control;
                        self.state = State::Header(Vec::with_capacity(14));
                        self.end_frame(control, &mut out);
                    }
                }
            }
        }
        out
    }

    fn start_frame(&mut self, h: Header, out: &mut Vec<WsMessage>) {
        let control = h.opcode >= 8;
        if (control && (!h.fin || h.len > 125)) || h.opcode > 10 || (3..8).contains(&h.opcode) {
            self.state = State::Lost;
            return;
        }
        let fresh = |opcode| WsMessage {
            from: self.from,
            opcode,
            at: SystemTime::now(),
            size: 0,
            data: Vec::new(),
            truncated: false,
            compressed: h.rsv1,
        };
        if control {
            self.control = Some(fresh(h.opcode));
        } else if h.opcode != 0 || self.message.is_none() {
            // A new data message (a stray continuation starts one too, as binary).
            self.message = Some(fresh(if h.opcode == 0 { 2 } else { h.opcode }));
        }
        let m = if control {
            self.control.as_mut()
        } else {
            self.message.as_mut()
        };
        if let Some(m) = m {
            m.size += h.len;
        }
        self.state = State::Payload {
            left: h.len,
            mask: h.mask,
            offset: 0,
            control,
        };
        if h.len == 0 {
            self.state = State::Header(Vec::with_capacity(14));
            self.end_frame_with(control, h.fin, out);
        } else if !control {
            self.fin_pending = h.fin;
        }
    }

    fn end_frame(&mut self, control: bool, out: &mut Vec<WsMessage>) {
        let fin = control || self.fin_pending;
        self.end_frame_with(control, fin, out);
    }

    fn end_frame_with(&mut self, control: bool, fin: bool, out: &mut Vec<WsMessage>) {
        let done = if control {
            self.control.take()
        } else if fin {
            self.message.take()
        } else {
            None
        };
        out.extend(done);
    }
}

struct Header {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    len: u64,
    mask: Option<[u8; 4]>,
}

/// The frame header in `buf`, once it is complete.
fn parse_header(buf: &[u8]) -> Option<Header> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        126 | 127 => return None,
        n => (n as u64, 2),
    };
    let need = at + if masked { 4 } else { 0 };
    if buf.len() < need {
        return None;
    }
    Some(Header {
        fin: buf[0] & 0x80 != 0,
        rsv1: buf[0] & 0x40 != 0,
        opcode: buf[0] & 0x0f,
        len,
        mask: masked.then(|| [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n < 65536 => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    #[test]
    fn masked_fragmented_and_interleaved_split_anywhere() {
        let k = Some([1, 2, 3, 4]);
        let mut all = frame(false, 1, b"hello ", k);
        all.extend(frame(true, 9, b"ping", k));
        all.extend(frame(true, 0, b"world", k));
        all.extend(frame(true, 2, &[0, 159, 146, 150], k));
        all.extend(frame(true, 8, &[3, 232], k));
        for split in 0..all.len() {
            let mut r = FrameReader::new(From::Client);
            let mut got = r.feed(&all[..split]);
            got.extend(r.feed(&all[split..]));
            let seen: Vec<(u8, Vec<u8>)> = got.iter().map(|m| (m.opcode, m.data.clone())).collect();
            assert_eq!(
                seen,
                [
                    (9, b"ping".to_vec()),
                    (1, b"hello world".to_vec()),
                    (2, vec![0, 159, 146, 150]),
                    (8, vec![3, 232]),
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn large_payloads_are_capped_and_sized() {
        let big = vec![b'x'; PAYLOAD_CAP + 100_000];
        let mut r = FrameReader::new(From::Server);
        let got = r.feed(&frame(true, 2, &big, None));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].size, big.len() as u64);
        assert_eq!(got[0].data.len(), PAYLOAD_CAP);
        assert!(got[0].truncated);
        let got = r.feed(&frame(true, 1, b"", None));
        assert_eq!((got[0].opcode, got[0].size), (1, 0), "empty message");
    }

    #[test]
    fn garbage_stops_the_reader_quietly() {
        let mut r = FrameReader::new(From::Server);
        assert!(
            r.feed(b"\x83\x05hello\x81\x02hi").is_empty(),
            "reserved opcode"
        );
        let mut r = FrameReader::new(From::Server);
        assert!(
            r.feed(&[0x89, 126, 1, 0]).is_empty(),
            "oversized control frame"
        );
    }
}
