//! Follows the responses coming back from the agent, without changing a byte of them.
//!
//! The relay must know where each response ends for one reason: a request that asks to
//! switch protocols only switches when *its* response is `101 Switching Protocols`. Until
//! then, every later request on the connection is parsed and checked like any other. The
//! tracker is sans-IO: bytes in, events out; the caller writes the bytes unchanged.

use std::collections::VecDeque;

/// Longest chunk-size or trailer line followed before the response is declared malformed.
const MAX_LINE: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_FIELDS: usize = 256;

/// What the relay forwarded that a response will answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// A `HEAD` request: its response has no body whatever its headers say.
    pub head: bool,
    /// The request asked to switch protocols.
    pub upgrade: bool,
}

/// Something the caller must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The answer to an upgrade request: `true` for 101 (everything after is raw bytes),
    /// `false` when the server declined and the connection stays HTTP.
    Upgrade(bool),
}

/// Why the responses could not be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// A malformed head or body framing.
    #[error("malformed response from the local server: {0}")]
    Malformed(String),
    /// Bytes arrived with no request to answer.
    #[error("the local server sent a response nobody asked for")]
    Unsolicited,
}

#[derive(Debug)]
enum State {
    /// Between responses (or inside a head, whose bytes are in `line`).
    Head,
    /// Inside a body of known length.
    Length(u64),
    /// Reading a chunk-size line (bytes so far in `line`).
    ChunkSize,
    /// Inside chunk data, then its CRLF.
    ChunkData(u64),
    /// The CRLF after a chunk's data: how many of its two bytes are still due.
    ChunkEnd(u8),
    /// Trailer lines after the last chunk.
    Trailers,
    /// Everything else is passed through: after a 101, or a body that ends at close.
    Raw,
}

/// Follows the response stream of one connection.
#[derive(Debug)]
pub struct Responses {
    state: State,
    /// Requests forwarded and not yet answered, oldest first.
    pending: VecDeque<Expect>,
    /// A head or line that is not complete yet.
    line: Vec<u8>,
    max_head: usize,
    /// Bytes of the response in progress that the caller has already been told to write.
    started: bool,
}

impl Responses {
    /// A tracker accepting response heads of up to `max_head` bytes.
    pub fn new(max_head: usize) -> Self {
        Responses {
            state: State::Head,
            pending: VecDeque::new(),
            line: Vec::new(),
            max_head,
            started: false,
        }
    }

    /// Records a request forwarded to the agent, before its bytes are sent.
    pub fn expect(&mut self, e: Expect) {
        self.pending.push_back(e);
    }

    /// Whether the connection carries raw bytes now.
    pub fn is_raw(&self) -> bool {
        matches!(self.state, State::Raw)
    }

    /// Whether no response is under way: nothing of an unfinished one has been passed on.
    pub fn between_responses(&self) -> bool {
        matches!(self.state, State::Head) && self.line.is_empty() && !self.started
    }

    /// Requests still waiting for their response.
    pub fn unanswered(&self) -> usize {
        self.pending.len()
    }

    /// Follows `data`; returns the events it completed, in order.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Vec<Event>, ResponseError> {
        let mut events = Vec::new();
        while !data.is_empty() {
            match self.state {
                State::Raw => return Ok(events),
                State::Head => {
                    if self.pending.is_empty() {
                        return Err(ResponseError::Unsolicited);
                    }
                    let (used, done) = take_until(&mut self.line, data, b"\r\n\r\n");
                    data = &data[used..];
                    if !done {
                        if self.line.len() > self.max_head {
                            return Err(ResponseError::Malformed(format!(
                                "response head larger than {} bytes",
                                self.max_head
                            )));
                        }
                        continue;
                    }
                    let head = std::mem::take(&mut self.line);
                    if head.len() > self.max_head {
                        return Err(ResponseError::Malformed(format!(
                            "response head larger than {} bytes",
                            self.max_head
                        )));
                    }
                    self.on_head(&head, &mut events)?;
                }
                State::Length(n) => {
                    let k = (data.len() as u64).min(n);
                    data = &data[k as usize..];
                    self.state = if k == n {
                        self.finished()
                    } else {
                        State::Length(n - k)
                    };
                }
                State::ChunkSize => {
                    let (used, done) = take_until(&mut self.line, data, b"\r\n");
                    data = &data[used..];
                    if !done {
                        if self.line.len() > MAX_LINE {
                            return Err(ResponseError::Malformed(
                                "chunk-size line too long".into(),
                            ));
                        }
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let size = chunk_size(&line[..line.len() - 2])?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(n) => {
                    let k = (data.len() as u64).min(n);
                    data = &data[k as usize..];
                    self.state = if k == n {
                        State::ChunkEnd(2)
                    } else {
                        State::ChunkData(n - k)
                    };
                }
                State::ChunkEnd(due) => {
                    let want: &[u8] = if due == 2 { b"\r\n" } else { b"\n" };
                    let k = data.len().min(want.len());
                    if data[..k] != want[..k] {
                        return Err(ResponseError::Malformed(
                            "chunk not followed by CRLF".into(),
                        ));
                    }
                    data = &data[k..];
                    self.state = if k == want.len() {
                        State::ChunkSize
                    } else {
                        State::ChunkEnd(1)
                    };
                }
                State::Trailers => {
                    let (used, done) = take_until(&mut self.line, data, b"\r\n");
                    data = &data[used..];
                    if !done {
                        if self.line.len() > MAX_LINE {
                            return Err(ResponseError::Malformed("trailer line too long".into()));
                        }
                        continue;
                    }
                    let end = self.line.len() == 2;
                    self.line.clear();
                    if end {
                        self.state = self.finished();
                    }
                }
            }
            self.started = !matches!(self.state, State::Head) || !self.line.is_empty();
        }
        Ok(events)
    }

    /// The response in progress is complete.
    fn finished(&mut self) -> State {
        self.pending.pop_front();
        self.started = false;
        State::Head
    }

    fn on_head(&mut self, head: &[u8], events: &mut Vec<Event>) -> Result<(), ResponseError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut res = httparse::Response::new(&mut fields);
        match res.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(ResponseError::Malformed("incomplete head".into()))
            }
            Err(e) => return Err(ResponseError::Malformed(e.to_string())),
        }
        let status = res.code.unwrap_or(0);
        let expect = *self.pending.front().expect("a pending request");
        if status == 101 {
            if !expect.upgrade {
                return Err(ResponseError::Malformed(
                    "101 Switching Protocols to a request that did not ask to switch".into(),
                ));
            }
            self.pending.clear();
            self.state = State::Raw;
            events.push(Event::Upgrade(true));
            return Ok(());
        }
        if (100..200).contains(&status) {
            // An interim response (100 Continue, 103 Early Hints): the final one follows.
            self.state = State::Head;
            return Ok(());
        }
        if expect.upgrade {
            events.push(Event::Upgrade(false));
        }
        let mut length: Option<u64> = None;
        let mut chunked = false;
        for f in res.headers.iter() {
            if f.name.eq_ignore_ascii_case("transfer-encoding") {
                let v = String::from_utf8_lossy(f.value);
                chunked = v
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            } else if f.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(f.value).unwrap_or("").trim();
                let first = v.split(',').next().unwrap_or("").trim();
                let n = first.parse::<u64>().map_err(|_| {
                    ResponseError::Malformed(format!("invalid Content-Length {v:?}"))
                })?;
                if length.is_some_and(|l| l != n) {
                    return Err(ResponseError::Malformed(
                        "conflicting Content-Length headers".into(),
                    ));
                }
                length = Some(n);
            }
        }
        self.state = if expect.head || status == 204 || status == 304 {
            self.finished()
        } else if chunked {
            State::ChunkSize
        } else {
            match length {
                Some(0) => self.finished(),
                Some(n) => State::Length(n),
                // Delimited by the close of the connection: nothing after it is a response.
                None => State::Raw,
            }
        };
        Ok(())
    }
}

/// Appends bytes of `data` to `acc` up to and including the first `delim` (which may
/// start in `acc`); returns how many bytes of `data` were taken and whether `delim` was
/// found.
fn take_until(acc: &mut Vec<u8>, data: &[u8], delim: &[u8]) -> (usize, bool) {
    // A delimiter split across the two: its first `k` bytes end `acc`.
    for k in (1..delim.len()).rev() {
        if acc.ends_with(&delim[..k]) && data.starts_with(&delim[k..]) {
            let used = delim.len() - k;
            acc.extend_from_slice(&data[..used]);
            return (used, true);
        }
    }
    match data.windows(delim.len()).position(|w| w == delim) {
        Some(i) => {
            let used = i + delim.len();
            acc.extend_from_slice(&data[..used]);
            (used, true)
        }
        None => {
            acc.extend_from_slice(data);
            (data.len(), false)
        }
    }
}

fn chunk_size(line: &[u8]) -> Result<u64, ResponseError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = trim_ascii(digits);
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(ResponseError::Malformed(format!(
            "bad chunk size {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    let s = std::str::from_utf8(digits).unwrap_or("0");
    u64::from_str_radix(s, 16)
        .map_err(|_| ResponseError::Malformed(format!("bad chunk size {s:?}")))
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: Expect = Expect {
        head: false,
        upgrade: false,
    };
    const UPGRADE: Expect = Expect {
        head: false,
        upgrade: true,
    };

    /// Feeds `data` one byte at a time and all at once; both must agree.
    fn feed_both(expects: &[Expect], data: &[u8]) -> (Vec<Event>, Responses) {
        let mut whole = Responses::new(8192);
        let mut bytewise = Responses::new(8192);
        for e in expects {
            whole.expect(*e);
            bytewise.expect(*e);
        }
        let a = whole.feed(data).unwrap();
        let mut b = Vec::new();
        for byte in data {
            b.extend(bytewise.feed(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(a, b);
        assert_eq!(whole.unanswered(), bytewise.unanswered());
        (a, whole)
    }

    #[test]
    fn lengths_and_chunks_delimit_pipelined_responses() {
        let data = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let (events, r) = feed_both(&[GET, GET, GET, GET], data);
        assert!(events.is_empty());
        assert_eq!(r.unanswered(), 1);
        assert!(r.between_responses());
    }

    #[test]
    fn head_requests_have_no_body() {
        let head = Expect {
            head: true,
            upgrade: false,
        };
        let data = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
        let (_, r) = feed_both(&[head, GET], data);
        assert_eq!(r.unanswered(), 0);
    }

    #[test]
    fn only_101_switches_and_interim_responses_do_not_count() {
        let data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00anything";
        let (events, r) = feed_both(&[UPGRADE], data);
        assert_eq!(events, vec![Event::Upgrade(true)]);
        assert!(r.is_raw());

        let data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno";
        let (events, r) = feed_both(&[UPGRADE], data);
        assert_eq!(events, vec![Event::Upgrade(false)]);
        assert!(!r.is_raw());
        assert!(r.between_responses());
    }

    #[test]
    fn a_101_nobody_asked_for_and_unsolicited_bytes_are_errors() {
        let mut r = Responses::new(8192);
        r.expect(GET);
        assert!(r.feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").is_err());
        let mut r = Responses::new(8192);
        r.expect(GET);
        r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        assert_eq!(
            r.feed(b"HTTP/1.1 200 OK\r\n"),
            Err(ResponseError::Unsolicited)
        );
    }

    #[test]
    fn a_body_without_length_runs_to_the_close() {
        let (_, r) = feed_both(
            &[GET, GET],
            b"HTTP/1.0 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        );
        assert!(r.is_raw());
    }

    #[test]
    fn malformed_framing_is_an_error() {
        for data in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            let mut r = Responses::new(8192);
            r.expect(GET);
            assert!(r.feed(data).is_err(), "{:?}", String::from_utf8_lossy(data));
        }
        let mut r = Responses::new(64);
        r.expect(GET);
        assert!(r.feed(&[b'a'; 100]).is_err());
    }
}
