//! Tests of the machine's session rules: the stream limit, heartbeats, malformed input,
//! end of input and a clean close.

use super::machine::{closed_with, open};
use super::*;
use crate::window::INITIAL_WINDOW;
use crate::ProtocolError;
use std::task::Poll;
use std::time::Duration;

#[test]
fn the_stream_limit_holds_both_ways() {
    let now = Instant::now();
    let mut cfg = config(Role::Agent);
    cfg.max_streams = 2;
    let mut a: Machine = Machine::new(cfg.clone(), now);
    cfg.role = Role::Relay;
    let mut b: Machine = Machine::new(cfg, now);
    let first = a.open(Bytes::new()).unwrap();
    a.open(Bytes::new()).unwrap();
    let err = a.open(Bytes::new()).unwrap_err();
    assert!(err.to_string().contains("too many streams"), "{err}");
    pump(&mut a, &mut b, now);
    assert_eq!(b.open_streams(), 2);
    // A peer that ignores the limit gets a reset, and its data is then dropped.
    b.handle_frame(
        Frame::Open {
            stream: 6,
            meta: Bytes::new(),
        },
        now,
    )
    .unwrap();
    assert!(
        matches!(frames(&mut b).as_slice(), [Frame::Reset { stream: 6, reason }] if reason == "too many streams")
    );
    b.handle_frame(data(6, b"late", false), now).unwrap();
    assert!(frames(&mut b).is_empty());
    assert_eq!(b.open_streams(), 2);
    // A slot frees when a stream ends.
    a.reset(first, "done");
    assert!(a.open(Bytes::new()).is_ok());
}

#[test]
fn ping_measures_the_round_trip() {
    let (mut a, mut b, now) = pair();
    assert_eq!(a.rtt(), Duration::ZERO);
    assert_eq!(a.poll_timeout(), Some(now), "the first ping is due at once");
    a.tick(now);
    assert!(matches!(frames(&mut a).as_slice(), [Frame::Ping(0)]));
    a.handle_frame(Frame::Pong(0), now + Duration::from_millis(3))
        .unwrap();
    assert_eq!(a.rtt(), Duration::from_millis(3));
    // Pings answer pings, and the next is due one interval later.
    b.handle_frame(Frame::Ping(42), now).unwrap();
    assert_eq!(frames(&mut b), [Frame::Pong(42)]);
    assert_eq!(a.poll_timeout(), Some(now + a.cfg.heartbeat_interval));
    a.tick(now + Duration::from_millis(1));
    assert!(frames(&mut a).is_empty(), "not due yet");
}

#[test]
fn a_silent_peer_is_declared_dead() {
    let (mut a, mut b, now) = pair();
    let id = open(&mut a, &mut b, now);
    let timeout = a.cfg.heartbeat_timeout;
    a.tick(now + timeout);
    assert!(
        !a.is_closed(),
        "silence of exactly the timeout is tolerated"
    );
    a.tick(now + timeout + Duration::from_millis(1));
    let err = closed_with(&mut a).flatten().expect("closed with an error");
    assert!(matches!(*err, ProtocolError::HeartbeatTimeout(d) if d > timeout));
    assert!(a.is_closed() && a.poll_timeout().is_none());
    assert!(matches!(
        a.poll_read(id),
        Poll::Ready(Err(StreamError::Reset(_)))
    ));
    assert!(
        frames(&mut a).is_empty(),
        "nothing is written to a dead peer"
    );
    assert!(matches!(a.open(Bytes::new()), Err(ProtocolError::Closed)));
}

#[test]
fn traffic_keeps_the_peer_alive() {
    let (mut a, _, now) = pair();
    let timeout = a.cfg.heartbeat_timeout;
    a.handle_frame(Frame::Pong(0), now + timeout).unwrap();
    a.tick(now + timeout + Duration::from_secs(1));
    assert!(!a.is_closed());
}

fn assert_malformed(m: &mut Machine, frame: Frame, now: Instant, want: &str) {
    let err = m.handle_frame(frame, now).unwrap_err();
    assert!(matches!(*err, ProtocolError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains(want), "{err} should say {want}");
    assert!(m.is_closed());
    assert!(matches!(closed_with(m), Some(Some(_))));
}

#[test]
fn opens_with_the_wrong_parity_or_a_used_id_end_the_session() {
    let (_, mut b, now) = pair();
    let open = |stream| Frame::Open {
        stream,
        meta: Bytes::new(),
    };
    assert_malformed(&mut b, open(3), now, "has our parity");
    let (_, mut b, now) = pair();
    b.handle_frame(open(4), now).unwrap();
    assert_malformed(&mut b, open(4), now, "already open");
    let (_, mut b, now) = pair();
    b.handle_frame(open(4), now).unwrap();
    b.release(4);
    assert_malformed(&mut b, open(2), now, "reused or out of order");
}

#[test]
fn a_peer_that_overruns_its_window_gets_the_stream_reset() {
    let (mut a, mut b, now) = pair();
    let id = open(&mut a, &mut b, now);
    let too_much = Bytes::from(vec![0u8; INITIAL_WINDOW as usize + 1]);
    b.handle_frame(
        Frame::Data {
            stream: id,
            fin: false,
            payload: too_much,
        },
        now,
    )
    .unwrap();
    let want = ProtocolError::WindowExceeded(id).to_string();
    assert!(matches!(frames(&mut b).as_slice(), [Frame::Reset { reason, .. }] if *reason == want));
    assert_eq!(b.poll_read(id), Poll::Ready(Err(StreamError::Reset(want))));
    assert!(!b.is_closed(), "one stream's fault, not the session's");
}

#[test]
fn data_after_fin_resets_the_stream() {
    let (mut a, mut b, now) = pair();
    let id = open(&mut a, &mut b, now);
    b.handle_frame(data(id, b"", true), now).unwrap();
    b.handle_frame(data(id, b"more", false), now).unwrap();
    assert!(
        matches!(frames(&mut b).as_slice(), [Frame::Reset { reason, .. }] if reason == "data after fin")
    );
}

#[test]
fn bad_bytes_and_oversized_frames_end_the_session() {
    let (_, mut b, now) = pair();
    b.set_max_frame(16);
    let mut wire = BytesMut::new();
    Frame::Control(Bytes::from(vec![0u8; 17])).encode(&mut wire);
    let err = b.handle_bytes(&mut wire, now).unwrap_err();
    assert!(matches!(
        *err,
        ProtocolError::FrameTooLarge { len: 17, max: 16 }
    ));
    let (_, mut b, now) = pair();
    let err = b
        .handle_bytes(&mut BytesMut::from(&[99u8; 10][..]), now)
        .unwrap_err();
    assert!(matches!(*err, ProtocolError::UnknownKind(99)));
}

#[test]
fn a_partial_frame_waits_for_the_rest_and_is_an_error_at_eof() {
    let (_, mut b, now) = pair();
    let mut wire = BytesMut::new();
    Frame::Control(Bytes::from_static(b"hello")).encode(&mut wire);
    let rest = wire.split_off(7);
    b.handle_bytes(&mut wire, now).unwrap();
    assert!(events(&mut b).is_empty());
    wire.extend_from_slice(&rest[..2]);
    b.handle_bytes(&mut wire, now).unwrap();
    let err = b.handle_eof(&wire).unwrap_err();
    assert!(matches!(*err, ProtocolError::TruncatedFrame));
    let (_, mut b, _) = pair();
    b.handle_eof(&[]).unwrap();
    assert!(matches!(events(&mut b).as_slice(), [Event::Closed(None)]));
}

#[test]
fn close_queues_the_goodbye_last_and_nothing_after_it() {
    let (mut a, mut b, now) = pair();
    let id = open(&mut a, &mut b, now);
    a.send(id, Bytes::from_static(b"last words")).unwrap();
    a.send_control(Bytes::from_static(b"{}")).unwrap();
    a.close("shutting down");
    assert!(a.is_closed());
    assert!(matches!(closed_with(&mut a), Some(None)));
    assert!(matches!(
        a.send_control(Bytes::new()),
        Err(ProtocolError::Closed)
    ));
    a.release(id);
    a.ack(id, 10, now);
    let out = frames(&mut a);
    assert_eq!(out.len(), 3);
    assert_eq!(out[2], Frame::GoAway("shutting down".into()));
    let mut wire = BytesMut::new();
    out.iter().for_each(|f| f.encode(&mut wire));
    b.handle_bytes(&mut wire, now).unwrap();
    assert_eq!(read_all(&mut b, id, now), b"last words");
    assert!(b.is_closed());
    let evs = events(&mut b);
    assert!(matches!(evs.last(), Some(Event::Closed(None))), "{evs:?}");
    assert!(frames(&mut b).is_empty());
    // The connection's end after the goodbye is no second end of the session.
    b.handle_eof(&[]).unwrap();
    assert!(events(&mut b).is_empty());
}
