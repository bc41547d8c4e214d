//! Follows the responses coming back from the agent, without changing a byte of them.
//!
//! The relay must know where each response ends for one reason: a request that asks to
//! switch protocols only switches when *its* response is `101 Switching Protocols`. Until
//! then, every later request on the connection is parsed and checked like any other. This
//! is the shared message follower ([`burrow_http::follow`]) plus what the relay adds: which
//! forwarded requests asked to upgrade, and errors for what it must not pass on.

use burrow_http::follow::{Event as Seen, Follower, Side};
use std::collections::VecDeque;

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

/// Follows the response stream of one connection.
#[derive(Debug)]
pub struct Responses {
    follow: Follower,
    /// Whether each forwarded, unanswered request asked to upgrade, oldest first.
    upgrades: VecDeque<bool>,
    /// After a 101: raw bytes from here on.
    switched: bool,
    /// Bytes of an unfinished response have been passed on.
    started: bool,
}

impl Default for Responses {
    fn default() -> Self {
        Self::new()
    }
}

impl Responses {
    /// A tracker with nothing forwarded yet.
    pub fn new() -> Self {
        Responses {
            follow: Follower::new(Side::Response),
            upgrades: VecDeque::new(),
            switched: false,
            started: false,
        }
    }

    /// Records a request forwarded to the agent, before its bytes are sent.
    pub fn expect(&mut self, e: Expect) {
        self.follow
            .expect_response_to(if e.head { "HEAD" } else { "GET" });
        self.upgrades.push_back(e.upgrade);
    }

    /// Whether the connection carries raw bytes now (after a 101).
    pub fn is_raw(&self) -> bool {
        self.switched
    }

    /// Whether no response is under way: nothing of an unfinished one has been passed on.
    pub fn between_responses(&self) -> bool {
        !self.started
    }

    /// Requests still waiting for their response.
    pub fn unanswered(&self) -> usize {
        self.upgrades.len()
    }

    /// Follows `data`; returns the events it completed, in order.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Event>, ResponseError> {
        let mut events = Vec::new();
        if self.switched {
            return Ok(events);
        }
        if self.upgrades.is_empty() && !data.is_empty() && !self.started {
            return Err(ResponseError::Unsolicited);
        }
        let mut err = None;
        let (upgrades, started, switched) =
            (&mut self.upgrades, &mut self.started, &mut self.switched);
        self.follow.feed_with(data, |seen| {
            if err.is_some() || *switched {
                return;
            }
            match seen {
                Seen::Head(h) if h.status == 101 => {
                    if upgrades.front() == Some(&true) {
                        upgrades.clear();
                        *switched = true;
                        events.push(Event::Upgrade(true));
                    } else {
                        err = Some(ResponseError::Malformed(
                            "101 Switching Protocols to a request that did not ask to switch"
                                .into(),
                        ));
                    }
                }
                // An interim response (100 Continue, 103 Early Hints): the final one follows.
                Seen::Head(h) if h.status < 200 => *started = true,
                Seen::Head(_) => {
                    *started = true;
                    match upgrades.front() {
                        Some(true) => events.push(Event::Upgrade(false)),
                        Some(false) => {}
                        None => err = Some(ResponseError::Unsolicited),
                    }
                }
                Seen::End => {
                    upgrades.pop_front();
                    *started = false;
                }
                Seen::Body(_) => *started = true,
                Seen::Rest(_) => {}
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        // The follower gave up: a head or chunk it could not read. Nothing after it can be
        // told apart, so the relay stops here rather than pass on what it cannot follow.
        if self.follow.is_opaque() && !self.switched {
            return Err(ResponseError::Malformed(
                "a head or body framing that cannot be followed".into(),
            ));
        }
        Ok(events)
    }
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
        let mut whole = Responses::new();
        let mut bytewise = Responses::new();
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
        let mut r = Responses::new();
        r.expect(GET);
        assert!(r.feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").is_err());
        let mut r = Responses::new();
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
        assert_eq!(r.unanswered(), 2, "the rest is the first body");
        assert!(!r.between_responses());
    }

    #[test]
    fn malformed_framing_is_an_error() {
        for data in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            let mut r = Responses::new();
            r.expect(GET);
            assert!(r.feed(data).is_err(), "{:?}", String::from_utf8_lossy(data));
        }
        let mut r = Responses::new();
        r.expect(GET);
        assert!(
            r.feed(&vec![b'a'; 100 * 1024]).is_err(),
            "a head that never ends"
        );
    }
}
