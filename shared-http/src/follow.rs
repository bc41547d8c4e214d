//! Follows an HTTP/1.x byte stream going by without changing it: finds each message's head
//! and where its body ends. The agent times and captures exchanges with it; the relay
//! knows with it where each response ends and whether an upgrade was accepted.
//! Sans-IO: feed it chunks, it reports events. When it cannot follow (an upgrade, a head
//! it cannot parse), it goes opaque rather than guess, and the bytes flow on untouched.

/// Largest head the observer buffers before giving up on a stream.
// Above the relay's default head limit (64 KiB) plus the forwarding headers it adds.
const MAX_HEAD: usize = 80 * 1024;

/// A parsed head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Request method (requests) or empty.
    pub method: String,
    /// Request target (requests) or empty.
    pub path: String,
    /// Status code (responses) or 0.
    pub status: u16,
    /// The head's raw bytes (header fields: [`header_fields`]).
    pub raw: Vec<u8>,
}

/// What the observer saw in a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete head.
    Head(Head),
    /// Body bytes of the current message (a range of the fed chunk).
    Body(std::ops::Range<usize>),
    /// The current message ended.
    End,
    /// Bytes the observer no longer follows as HTTP (after an upgrade): a range of the chunk.
    Rest(std::ops::Range<usize>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Length(u64),
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    ChunkCrlf(u8),
    Trailers(Vec<u8>),
    UntilClose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Head(Vec<u8>),
    Body(Body),
    Opaque,
}

/// Which side of the exchange a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Visitor to upstream.
    Request,
    /// Upstream to visitor.
    Response,
}

/// Follows one direction of an HTTP/1.x connection.
#[derive(Debug)]
pub struct Follower {
    side: Side,
    state: State,
    /// Methods of requests whose responses are still to come (HEAD has no body).
    pending_methods: std::collections::VecDeque<String>,
}

impl Follower {
    /// An observer for one side.
    pub fn new(side: Side) -> Self {
        Follower {
            side,
            state: State::Head(Vec::new()),
            pending_methods: Default::default(),
        }
    }

    /// Tells a response observer the method of a request it will answer.
    pub fn expect_response_to(&mut self, method: &str) {
        self.pending_methods.push_back(method.to_string());
    }

    /// Whether the observer gave up following this stream.
    pub fn is_opaque(&self) -> bool {
        self.state == State::Opaque
    }

    /// The stream ended; a body delimited by the close ends here.
    pub fn finish(&mut self) -> Option<Event> {
        if self.state == State::Body(Body::UntilClose) {
            self.state = State::Opaque;
            return Some(Event::End);
        }
        None
    }

    /// Consumes a chunk and reports what it contained.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        self.feed_with(chunk, |e| out.push(e));
        out
    }

    /// Like [`Follower::feed`], handing each event to `out` as it is found (no allocation
    /// per chunk: the relay follows every response with it).
    pub fn feed_with(&mut self, chunk: &[u8], mut out: impl FnMut(Event)) {
        let mut i = 0;
        while i < chunk.len() {
            match &mut self.state {
                State::Opaque => {
                    out(Event::Rest(i..chunk.len()));
                    break;
                }
                State::Head(buf) => {
                    // Only the head's own bytes are copied aside, not the body behind it.
                    let avail = &chunk[i..];
                    match head_end_in(buf, avail) {
                        Some(k) => {
                            buf.extend_from_slice(&avail[..k]);
                            let raw = std::mem::take(buf);
                            i += k;
                            self.on_head(raw, &mut out);
                        }
                        None if buf.len() + avail.len() > MAX_HEAD => self.state = State::Opaque,
                        None => {
                            buf.extend_from_slice(avail);
                            i = chunk.len();
                        }
                    }
                }
                State::Body(body) => {
                    let rest = &chunk[i..];
                    match body {
                        Body::Length(n) => {
                            let k = (rest.len() as u64).min(*n) as usize;
                            out(Event::Body(i..i + k));
                            *n -= k as u64;
                            i += k;
                            if *n == 0 {
                                self.end(&mut out);
                            }
                        }
                        Body::UntilClose => {
                            out(Event::Body(i..chunk.len()));
                            i = chunk.len();
                        }
                        Body::ChunkSize(line) => {
                            line.push(rest[0]);
                            i += 1;
                            if line.ends_with(b"\r\n") {
                                match crate::head::chunk_size(&line[..line.len() - 2]) {
                                    Some(0) => *body = Body::Trailers(Vec::new()),
                                    Some(n) => *body = Body::ChunkData(n),
                                    None => self.state = State::Opaque,
                                }
                            } else if line.len() > 4096 {
                                self.state = State::Opaque;
                            }
                        }
                        Body::ChunkData(n) => {
                            let k = (rest.len() as u64).min(*n) as usize;
                            out(Event::Body(i..i + k));
                            *n -= k as u64;
                            i += k;
                            if *n == 0 {
                                *body = Body::ChunkCrlf(2);
                            }
                        }
                        Body::ChunkCrlf(left) => {
                            let want = if *left == 2 { b'\r' } else { b'\n' };
                            if rest[0] != want {
                                // Chunk data longer than its size said: framing is lost.
                                self.state = State::Opaque;
                                continue;
                            }
                            i += 1;
                            *left -= 1;
                            if *left == 0 {
                                *body = Body::ChunkSize(Vec::new());
                            }
                        }
                        Body::Trailers(t) => {
                            t.push(rest[0]);
                            i += 1;
                            if t.ends_with(b"\r\n") {
                                if t.len() == 2 {
                                    self.end(&mut out);
                                } else {
                                    t.clear();
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn end(&mut self, out: &mut impl FnMut(Event)) {
        out(Event::End);
        self.state = State::Head(Vec::new());
    }

    fn on_head(&mut self, raw: Vec<u8>, out: &mut impl FnMut(Event)) {
        let Some(Loose {
            method,
            path,
            status,
            chunked,
            length,
            upgrade,
            bad_length,
        }) = parse_loose(self.side == Side::Request, &raw)
        else {
            self.state = State::Opaque;
            return;
        };
        let head = Head {
            method,
            path,
            status,
            raw,
        };
        out(Event::Head(head));
        if bad_length {
            self.state = State::Opaque;
            return;
        }
        let body = match self.side {
            Side::Request => {
                if upgrade {
                    self.state = State::Opaque;
                    return;
                }
                if chunked {
                    Some(Body::ChunkSize(Vec::new()))
                } else {
                    length.filter(|n| *n > 0).map(Body::Length)
                }
            }
            Side::Response => {
                if (100..200).contains(&status) {
                    if status == 101 {
                        self.state = State::Opaque;
                    } else {
                        // An interim response: the real one follows for the same request.
                        self.state = State::Head(Vec::new());
                    }
                    return;
                }
                let req_method = self.pending_methods.pop_front().unwrap_or_default();
                if req_method == "HEAD" || status == 204 || status == 304 {
                    None
                } else if chunked {
                    Some(Body::ChunkSize(Vec::new()))
                } else if let Some(n) = length {
                    (n > 0).then_some(Body::Length(n))
                } else {
                    Some(Body::UntilClose)
                }
            }
        };
        match body {
            Some(b) => self.state = State::Body(b),
            None => self.end(out),
        }
    }
}

pub use crate::head::header_fields;
use crate::head::{parse_loose, Loose};

/// Where the blank line ending a head falls in `more`, given the head's bytes so far in
/// `seen` (which hold no complete head): the count of `more`'s bytes that finish it.
fn head_end_in(seen: &[u8], more: &[u8]) -> Option<usize> {
    // A blank line split between the two: the last three bytes seen and the first three new.
    let tail = &seen[seen.len().saturating_sub(3)..];
    let mut edge = tail.to_vec();
    edge.extend_from_slice(&more[..more.len().min(3)]);
    if let Some(p) = edge.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some(p + 4 - tail.len());
    }
    more.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads_and_ends(o: &mut Follower, chunks: &[&[u8]]) -> (Vec<String>, usize, usize) {
        let (mut heads, mut ends, mut body) = (Vec::new(), 0, 0);
        for c in chunks {
            for e in o.feed(c) {
                match e {
                    Event::Head(h) => heads.push(if h.status > 0 {
                        h.status.to_string()
                    } else {
                        format!("{} {}", h.method, h.path)
                    }),
                    Event::Body(r) => body += r.len(),
                    Event::End => ends += 1,
                    Event::Rest(_) => {}
                }
            }
        }
        (heads, ends, body)
    }

    #[test]
    fn pipelined_requests_split_anywhere() {
        let all = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\nPOST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n";
        for split in 0..all.len() {
            let mut o = Follower::new(Side::Request);
            let (heads, ends, body) = heads_and_ends(&mut o, &[&all[..split], &all[split..]]);
            assert_eq!(heads, ["POST /a", "GET /b", "POST /c"], "split {split}");
            assert_eq!((ends, body), (3, 6));
        }
    }

    #[test]
    fn responses_know_head_and_interim_and_close_delimited() {
        let mut o = Follower::new(Side::Response);
        o.expect_response_to("HEAD");
        o.expect_response_to("GET");
        o.expect_response_to("GET");
        let (heads, ends, body) = heads_and_ends(
            &mut o,
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\nuntil close"],
        );
        assert_eq!(heads, ["200", "100", "204", "200"]);
        assert_eq!(ends, 2);
        assert_eq!(body, 11);
        assert_eq!(o.finish(), Some(Event::End));
    }

    #[test]
    fn upgrade_and_garbage_go_opaque() {
        let mut o = Follower::new(Side::Response);
        o.expect_response_to("GET");
        let events = o.feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x05hello");
        assert!(o.is_opaque());
        assert_eq!(
            events.last(),
            Some(&Event::Rest(36..43)),
            "frames after the head"
        );
        assert_eq!(o.feed(b"abc"), [Event::Rest(0..3)]);
        let mut o = Follower::new(Side::Request);
        o.feed(b"\x16\x03\x01 not http\r\n\r\n");
        assert!(o.is_opaque());
    }
}
