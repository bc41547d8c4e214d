//! Frames encoded for one write: headers and small payloads are copied into one buffer,
//! large data payloads are kept as they are, so a vectored write sends them uncopied.
//!
//! Over TLS the copy would be the second of each byte (rustls copies into its records
//! anyway), so for bulk data it is pure cost; for small frames one contiguous run is
//! cheaper than a slice each.

use crate::frame::Frame;
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

/// Data payloads at least this long are written from their own buffer, not copied.
const SHARE_MIN: usize = 2048;
/// Most slices handed to one vectored write (Linux takes 1024; rustls gathers them all).
pub(crate) const MAX_SLICES: usize = 64;

enum Seg {
    /// The next `n` bytes of the inline buffer.
    Inline(usize),
    /// A payload written from its own buffer.
    Shared(Bytes),
}

/// Encoded frames waiting to be written, consumed from the front as writes succeed.
pub struct WriteBatch {
    inline: BytesMut,
    segs: VecDeque<Seg>,
    len: usize,
    vectored: bool,
}

impl WriteBatch {
    /// An empty batch; `vectored` when the writer takes vectored writes usefully,
    /// otherwise every byte is copied into one buffer.
    pub fn new(vectored: bool) -> Self {
        WriteBatch {
            inline: BytesMut::with_capacity(16 * 1024),
            segs: VecDeque::new(),
            len: 0,
            vectored,
        }
    }

    /// Bytes not yet written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one frame.
    pub fn push(&mut self, frame: &Frame) {
        let before = self.inline.len();
        match frame {
            Frame::Data { payload, .. } if self.vectored && payload.len() >= SHARE_MIN => {
                frame.encode_header(&mut self.inline);
                self.extend_inline(self.inline.len() - before);
                self.segs.push_back(Seg::Shared(payload.clone()));
            }
            _ => {
                frame.encode(&mut self.inline);
                self.extend_inline(self.inline.len() - before);
            }
        }
        self.len += frame.encoded_len();
    }

    fn extend_inline(&mut self, n: usize) {
        match self.segs.back_mut() {
            Some(Seg::Inline(k)) => *k += n,
            _ => self.segs.push_back(Seg::Inline(n)),
        }
    }

    /// The whole batch as one slice when it is a single run (the non-vectored case).
    pub fn contiguous(&self) -> Option<&[u8]> {
        match (self.segs.len(), self.segs.front()) {
            (1, Some(Seg::Inline(_))) => Some(&self.inline),
            _ => None,
        }
    }

    /// Fills `out` with the next slices to write; returns how many.
    pub fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut off = 0;
        let mut n = 0;
        for (seg, slot) in self.segs.iter().zip(out.iter_mut()) {
            *slot = match seg {
                Seg::Inline(k) => {
                    off += k;
                    IoSlice::new(&self.inline[off - k..off])
                }
                Seg::Shared(b) => IoSlice::new(b),
            };
            n += 1;
        }
        n
    }

    /// Drops the first `n` bytes, which were written.
    pub fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(seg) = self.segs.front_mut() else {
                break;
            };
            let (left, took) = match seg {
                Seg::Inline(k) => {
                    let took = n.min(*k);
                    self.inline.advance(took);
                    *k -= took;
                    (*k, took)
                }
                Seg::Shared(b) => {
                    let took = n.min(b.len());
                    b.advance(took);
                    (b.len(), took)
                }
            };
            n -= took;
            if left == 0 {
                self.segs.pop_front();
            }
        }
        if self.len == 0 {
            self.segs.clear();
            self.inline.clear();
        }
    }

    /// Gives back a buffer a bulk burst inflated, so idle sessions stay small.
    pub fn shrink(&mut self, max: usize) {
        if self.is_empty() && self.inline.capacity() > max {
            self.inline = BytesMut::with_capacity(16 * 1024);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<Frame> {
        vec![
            Frame::Ping(7),
            Frame::Data {
                stream: 2,
                fin: false,
                payload: Bytes::from(vec![1u8; 5000]),
            },
            Frame::Window {
                stream: 3,
                increment: 9,
            },
            Frame::Data {
                stream: 2,
                fin: true,
                payload: Bytes::from(vec![2u8; 100]),
            },
        ]
    }

    fn expected() -> Vec<u8> {
        let mut b = BytesMut::new();
        frames().iter().for_each(|f| f.encode(&mut b));
        b.to_vec()
    }

    /// Writes the batch in pieces of `step` bytes, as short writes would.
    fn drain(batch: &mut WriteBatch, step: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while !batch.is_empty() {
            let mut slots = [IoSlice::new(&[]); MAX_SLICES];
            let n = batch.slices(&mut slots);
            let mut take = step;
            for s in &slots[..n] {
                let k = take.min(s.len());
                got.extend_from_slice(&s[..k]);
                take -= k;
            }
            let wrote = step - take;
            batch.advance(wrote);
        }
        got
    }

    #[test]
    fn both_modes_write_the_encoded_frames_across_short_writes() {
        for vectored in [false, true] {
            for step in [1, 7, 10, 4096, 1 << 20] {
                let mut batch = WriteBatch::new(vectored);
                frames().iter().for_each(|f| batch.push(f));
                assert_eq!(batch.len(), expected().len());
                assert_eq!(batch.contiguous().is_some(), !vectored);
                assert_eq!(drain(&mut batch, step), expected(), "{vectored} {step}");
            }
        }
    }
}
