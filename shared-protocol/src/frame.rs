//! Frames: a fixed 10-byte header (kind, flags, stream id, length) and a payload.
//!
//! Decoding is check-then-parse: the length is checked against the limit before anything
//! is allocated, a clean end of input between frames is `Ok(None)`, and an end inside a
//! frame is an error.

use crate::ProtocolError;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Header length on the wire.
pub const HEADER_LEN: usize = 10;
/// Default largest payload a decoder accepts; control and data frames stay far below it.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;
/// Largest data payload a sender puts in one frame: big enough for bulk transfers to
/// amortise headers and TLS records, small enough to interleave streams fairly.
pub const MAX_DATA_CHUNK: usize = 64 * 1024;

/// Flag on `Data`: the sender will send no more data on this stream (half-close).
pub const FLAG_FIN: u8 = 0x01;

/// One frame of the wire protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A serde-encoded control message on the session (stream 0).
    Control(Bytes),
    /// Opens a stream; the payload is the serde-encoded stream metadata.
    Open {
        /// The new stream.
        stream: u32,
        /// Encoded [`crate::control::StreamMeta`].
        meta: Bytes,
    },
    /// Bytes of a stream; `fin` half-closes it after them.
    Data {
        /// The stream.
        stream: u32,
        /// Whether this is the last data the sender will send.
        fin: bool,
        /// The bytes.
        payload: Bytes,
    },
    /// Grants the peer more credit to send on a stream.
    Window {
        /// The stream.
        stream: u32,
        /// Additional bytes the peer may send.
        increment: u32,
    },
    /// Aborts a stream in both directions.
    Reset {
        /// The stream.
        stream: u32,
        /// Why, for the logs.
        reason: String,
    },
    /// Heartbeat request; the peer echoes the token.
    Ping(u64),
    /// Heartbeat answer.
    Pong(u64),
    /// The sender is going away; no new streams will be accepted.
    GoAway(String),
}

const KIND_CONTROL: u8 = 1;
const KIND_OPEN: u8 = 2;
const KIND_DATA: u8 = 3;
const KIND_WINDOW: u8 = 4;
const KIND_RESET: u8 = 5;
const KIND_PING: u8 = 6;
const KIND_PONG: u8 = 7;
const KIND_GOAWAY: u8 = 8;

impl Frame {
    /// The frame's kind as a name, for errors and logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Frame::Control(_) => "control",
            Frame::Open { .. } => "open",
            Frame::Data { .. } => "data",
            Frame::Window { .. } => "window",
            Frame::Reset { .. } => "reset",
            Frame::Ping(_) => "ping",
            Frame::Pong(_) => "pong",
            Frame::GoAway(_) => "goaway",
        }
    }

    /// Bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Frame::Control(p) => p.len(),
                Frame::Open { meta, .. } => meta.len(),
                Frame::Data { payload, .. } => payload.len(),
                Frame::Window { .. } => 4,
                Frame::Reset { reason, .. } => reason.len(),
                Frame::Ping(_) | Frame::Pong(_) => 8,
                Frame::GoAway(r) => r.len(),
            }
    }

    /// Appends the encoded frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        self.encode_header(dst);
        match self {
            Frame::Control(p) | Frame::Open { meta: p, .. } | Frame::Data { payload: p, .. } => {
                dst.extend_from_slice(p);
            }
            Frame::Window { increment, .. } => dst.put_u32(*increment),
            Frame::Reset { reason, .. } | Frame::GoAway(reason) => {
                dst.extend_from_slice(reason.as_bytes());
            }
            Frame::Ping(t) | Frame::Pong(t) => dst.put_u64(*t),
        }
    }

    /// Appends only the header, for a payload written from its own buffer.
    pub fn encode_header(&self, dst: &mut BytesMut) {
        let (kind, flags, stream) = match self {
            Frame::Control(_) => (KIND_CONTROL, 0, 0),
            Frame::Open { stream, .. } => (KIND_OPEN, 0, *stream),
            Frame::Data { stream, fin, .. } => {
                (KIND_DATA, if *fin { FLAG_FIN } else { 0 }, *stream)
            }
            Frame::Window { stream, .. } => (KIND_WINDOW, 0, *stream),
            Frame::Reset { stream, .. } => (KIND_RESET, 0, *stream),
            Frame::Ping(_) => (KIND_PING, 0, 0),
            Frame::Pong(_) => (KIND_PONG, 0, 0),
            Frame::GoAway(_) => (KIND_GOAWAY, 0, 0),
        };
        dst.put_u8(kind);
        dst.put_u8(flags);
        dst.put_u32(stream);
        dst.put_u32((self.encoded_len() - HEADER_LEN) as u32);
    }
}

/// Decodes frames from a byte buffer, enforcing a maximum payload length.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame: u32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// A decoder that refuses payloads longer than `max_frame`.
    pub fn new(max_frame: u32) -> Self {
        FrameDecoder { max_frame }
    }

    /// Checks whether `src` starts with a complete frame: `Ok(Some(total_len))` if so,
    /// `Ok(None)` if more bytes are needed. Errors on a bad header without allocating.
    pub fn check(&self, src: &[u8]) -> Result<Option<usize>, ProtocolError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let kind = src[0];
        if !(KIND_CONTROL..=KIND_GOAWAY).contains(&kind) {
            return Err(ProtocolError::UnknownKind(kind));
        }
        let len = u32::from_be_bytes([src[6], src[7], src[8], src[9]]);
        if len > self.max_frame {
            return Err(ProtocolError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        let total = HEADER_LEN + len as usize;
        Ok((src.len() >= total).then_some(total))
    }

    /// Takes one complete frame off the front of `src`, if there is one.
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let Some(total) = self.check(src)? else {
            if src.len() < HEADER_LEN {
                return Ok(None);
            }
            // Make room for the rest of an announced frame in one allocation.
            let need = HEADER_LEN + u32::from_be_bytes([src[6], src[7], src[8], src[9]]) as usize;
            src.reserve(need - src.len());
            return Ok(None);
        };
        let mut frame = src.split_to(total);
        let kind = frame.get_u8();
        let flags = frame.get_u8();
        let stream = frame.get_u32();
        frame.advance(4);
        let payload = frame.freeze();
        parse(kind, flags, stream, payload).map(Some)
    }

    /// Like [`FrameDecoder::decode`] at end of input: leftover bytes are a truncated frame.
    pub fn decode_eof(&self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        match self.decode(src)? {
            Some(f) => Ok(Some(f)),
            None if src.is_empty() => Ok(None),
            None => Err(ProtocolError::TruncatedFrame),
        }
    }
}

fn malformed(kind: &'static str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        kind,
        reason: reason.into(),
    }
}

fn parse(kind: u8, flags: u8, stream: u32, mut p: Bytes) -> Result<Frame, ProtocolError> {
    let needs_stream = |name: &'static str| {
        if stream == 0 {
            Err(malformed(name, "stream id 0 is reserved for the session"))
        } else {
            Ok(())
        }
    };
    let fixed = |name: &'static str, len: usize, p: &Bytes| {
        if p.len() != len {
            Err(malformed(
                name,
                format!("payload is {} bytes, expected {len}", p.len()),
            ))
        } else {
            Ok(())
        }
    };
    let text = |name: &'static str, p: Bytes| {
        String::from_utf8(p.to_vec()).map_err(|_| malformed(name, "reason is not UTF-8"))
    };
    if flags & !FLAG_FIN != 0 || (flags != 0 && kind != KIND_DATA) {
        return Err(malformed("frame", format!("unknown flags {flags:#04x}")));
    }
    let session_frame = matches!(kind, KIND_CONTROL | KIND_PING | KIND_PONG | KIND_GOAWAY);
    if session_frame && stream != 0 {
        return Err(malformed(
            "frame",
            format!("session frame on stream {stream}"),
        ));
    }
    Ok(match kind {
        KIND_CONTROL => Frame::Control(p),
        KIND_OPEN => {
            needs_stream("open")?;
            Frame::Open { stream, meta: p }
        }
        KIND_DATA => {
            needs_stream("data")?;
            Frame::Data {
                stream,
                fin: flags & FLAG_FIN != 0,
                payload: p,
            }
        }
        KIND_WINDOW => {
            needs_stream("window")?;
            fixed("window", 4, &p)?;
            let increment = p.get_u32();
            if increment == 0 {
                return Err(malformed("window", "zero increment"));
            }
            Frame::Window { stream, increment }
        }
        KIND_RESET => {
            needs_stream("reset")?;
            Frame::Reset {
                stream,
                reason: text("reset", p)?,
            }
        }
        KIND_PING => {
            fixed("ping", 8, &p)?;
            Frame::Ping(p.get_u64())
        }
        KIND_PONG => {
            fixed("pong", 8, &p)?;
            Frame::Pong(p.get_u64())
        }
        KIND_GOAWAY => Frame::GoAway(text("goaway", p)?),
        other => return Err(ProtocolError::UnknownKind(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_frame() -> impl Strategy<Value = Frame> {
        let bytes = proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from);
        let stream = 1u32..;
        prop_oneof![
            bytes.clone().prop_map(Frame::Control),
            (stream.clone(), bytes.clone()).prop_map(|(stream, meta)| Frame::Open { stream, meta }),
            (stream.clone(), any::<bool>(), bytes).prop_map(|(stream, fin, payload)| Frame::Data {
                stream,
                fin,
                payload
            }),
            (stream.clone(), 1u32..)
                .prop_map(|(stream, increment)| Frame::Window { stream, increment }),
            (stream, ".{0,40}").prop_map(|(stream, reason)| Frame::Reset { stream, reason }),
            any::<u64>().prop_map(Frame::Ping),
            any::<u64>().prop_map(Frame::Pong),
            ".{0,40}".prop_map(Frame::GoAway),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_identity(frames in proptest::collection::vec(arb_frame(), 1..8), split in 0usize..2000) {
            let mut wire = BytesMut::new();
            for f in &frames {
                f.encode(&mut wire);
            }
            // Feed the bytes in two pieces to exercise partial frames.
            let split = split.min(wire.len());
            let rest = wire.split_off(split);
            let dec = FrameDecoder::default();
            let mut buf = wire;
            let mut out = Vec::new();
            while let Some(f) = dec.decode(&mut buf).unwrap() { out.push(f); }
            buf.extend_from_slice(&rest);
            while let Some(f) = dec.decode_eof(&mut buf).unwrap() { out.push(f); }
            prop_assert_eq!(out, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let dec = FrameDecoder::new(1024);
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = dec.decode(&mut buf) {}
        }
    }

    #[test]
    fn oversized_frame_is_refused_before_allocation() {
        let dec = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&[KIND_DATA, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff][..]);
        let err = dec.decode(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::FrameTooLarge {
                len: u32::MAX,
                max: 1024
            }
        ));
        assert!(buf.capacity() < 4096);
    }

    #[test]
    fn truncated_frame_is_an_error_at_eof_but_clean_eof_is_none() {
        let dec = FrameDecoder::default();
        let mut buf = BytesMut::new();
        assert!(dec.decode_eof(&mut buf).unwrap().is_none());
        Frame::Ping(7).encode(&mut buf);
        buf.truncate(12);
        assert!(matches!(
            dec.decode_eof(&mut buf),
            Err(ProtocolError::TruncatedFrame)
        ));
    }

    #[test]
    fn malformed_frames_are_named() {
        let dec = FrameDecoder::default();
        let cases: &[(&[u8], &str)] = &[
            (&[99, 0, 0, 0, 0, 0, 0, 0, 0, 0], "unknown frame kind 99"),
            (&[KIND_DATA, 0, 0, 0, 0, 0, 0, 0, 0, 0], "stream id 0"),
            (&[KIND_WINDOW, 0, 0, 0, 0, 1, 0, 0, 0, 1, 5], "expected 4"),
            (&[KIND_PING, 2, 0, 0, 0, 0, 0, 0, 0, 0], "unknown flags"),
            (
                &[KIND_PING, 0, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0],
                "session frame on stream 7",
            ),
        ];
        for (bytes, want) in cases {
            let err = dec.decode(&mut BytesMut::from(*bytes)).unwrap_err();
            assert!(
                err.to_string().contains(want),
                "{err} should mention {want}"
            );
        }
    }
}
