//! A cursor over handshake bytes of which only a prefix may have arrived: each read
//! says whether the field is bad, complete, or still on its way.

use super::error::HelloError;

/// Why reading stopped short of a verdict.
pub(super) enum Stop {
    /// The bytes so far are fine but the field being read has not fully arrived.
    More,
    /// The bytes can never become an acceptable ClientHello.
    Bad(HelloError),
}

impl From<HelloError> for Stop {
    fn from(e: HelloError) -> Self {
        Stop::Bad(e)
    }
}

pub(super) type Step<T> = Result<T, Stop>;

/// A cursor over a declared span of the handshake bytes, of which only a prefix may
/// have arrived.
///
/// Every length is checked against the declared end before the arrived bytes, so an
/// impossible length is an error right away rather than a wait for bytes that could
/// never make it valid.
pub(super) struct Reader<'a> {
    /// The bytes that have arrived; may stop before `end`.
    pub(super) arrived: &'a [u8],
    pub(super) pos: usize,
    /// Where the span ends by its declared length; may lie beyond `arrived`.
    pub(super) end: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn left(&self) -> usize {
        self.end - self.pos
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos == self.end
    }

    /// Moves past `n` bytes, returning where they start; checks only the declared end.
    pub(super) fn advance(&mut self, n: usize, what: &'static str) -> Step<usize> {
        if n > self.left() {
            return Err(Stop::Bad(HelloError::Malformed(what)));
        }
        let start = self.pos;
        self.pos += n;
        Ok(start)
    }

    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Step<&'a [u8]> {
        let start = self.advance(n, what)?;
        self.arrived.get(start..self.pos).ok_or(Stop::More)
    }

    /// Skipping needs no bytes, so unknown extensions never hold up a verdict on what
    /// follows them.
    pub(super) fn skip(&mut self, n: usize, what: &'static str) -> Step<()> {
        self.advance(n, what).map(drop)
    }

    /// Splits off the next `n` bytes as a span of their own.
    pub(super) fn sub(&mut self, n: usize, what: &'static str) -> Step<Reader<'a>> {
        let start = self.advance(n, what)?;
        Ok(Reader {
            arrived: self.arrived,
            pos: start,
            end: self.pos,
        })
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Step<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub(super) fn u16(&mut self, what: &'static str) -> Step<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

pub(super) fn u24(a: u8, b: u8, c: u8) -> usize {
    (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c)
}
