//! Feeds arbitrary bytes in arbitrary pieces to `FrameDecoder` and round-trips every frame.
#![no_main]

use burrow_protocol::frame::{Frame, FrameDecoder, HEADER_LEN};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

// Input layout: `[max_frame][n][n chunk lengths][wire bytes...]`; the last chunk takes the rest.
fuzz_target!(|data: &[u8]| {
    let Some((&max_frame, rest)) = data.split_first() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let n = usize::from(n & 0x0f).min(rest.len());
    let (lens, wire) = rest.split_at(n);
    let dec = FrameDecoder::new(u32::from(max_frame));

    let mut chunks = Vec::with_capacity(n + 1);
    let mut left = wire;
    for &len in lens {
        let (chunk, tail) = left.split_at(usize::from(len).min(left.len()));
        chunks.push(chunk);
        left = tail;
    }
    chunks.push(left);

    let split = run(&dec, &chunks);
    let whole = run(&dec, &[wire]);
    assert_eq!(split, whole, "outcome depends on how the input is split");
});

/// Everything one pass of the decoder produced: frames, then how the stream ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    end: Result<(), String>,
}

/// Decodes the chunks in order, checking each frame, then finishes with `decode_eof`.
fn run(dec: &FrameDecoder, chunks: &[&[u8]]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.clone();
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    check(dec, &before, &buf, &frame);
                    frames.push(frame);
                }
                Ok(None) => {
                    assert_eq!(buf, before, "decode consumed bytes without a frame");
                    break;
                }
                Err(e) => {
                    return Outcome {
                        frames,
                        end: Err(e.to_string()),
                    }
                }
            }
        }
    }
    loop {
        let before = buf.clone();
        match dec.decode_eof(&mut buf) {
            Ok(Some(frame)) => {
                check(dec, &before, &buf, &frame);
                frames.push(frame);
            }
            Ok(None) => {
                assert!(buf.is_empty(), "clean end of input with bytes left over");
                return Outcome {
                    frames,
                    end: Ok(()),
                };
            }
            Err(e) => {
                return Outcome {
                    frames,
                    end: Err(e.to_string()),
                }
            }
        }
    }
}

/// Checks a decoded frame against the bytes it came from and that it re-encodes to itself.
fn check(dec: &FrameDecoder, before: &[u8], after: &[u8], frame: &Frame) {
    let consumed = before.len() - after.len();
    assert_eq!(
        &before[consumed..],
        after,
        "decode took bytes from the wrong end"
    );
    assert!(consumed >= HEADER_LEN);

    let mut wire = BytesMut::new();
    frame.encode(&mut wire);
    assert_eq!(wire.len(), frame.encoded_len());
    assert_eq!(
        wire.len(),
        consumed,
        "re-encoded frame has a different length"
    );
    // Kind, flags, length and payload are canonical; session frames drop their stream id.
    assert_eq!(wire[..2], before[..2]);
    assert_eq!(wire[6..], before[6..consumed]);
    let session = matches!(
        frame,
        Frame::Control(_) | Frame::Ping(_) | Frame::Pong(_) | Frame::GoAway(_)
    );
    if !session {
        assert_eq!(wire[2..6], before[2..6], "stream id changed");
    }

    let again = dec.decode(&mut wire).expect("re-encoded frame must decode");
    assert_eq!(
        again.as_ref(),
        Some(frame),
        "re-encoded frame decodes differently"
    );
    assert!(wire.is_empty(), "re-encoded frame left bytes behind");
}
