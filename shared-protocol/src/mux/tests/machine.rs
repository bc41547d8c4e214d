//! Tests of the machine's stream rules: ids, credit, window growth, half-close, resets.

use super::*;
use crate::frame::MAX_DATA_CHUNK;
use crate::window::INITIAL_WINDOW;
use crate::ProtocolError;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// Opens a stream from `a` and delivers the open to `b`; returns its id.
pub(super) fn open(a: &mut Machine, b: &mut Machine, now: Instant) -> u32 {
    let id = a.open(Bytes::from_static(b"meta")).unwrap();
    pump(a, b, now);
    match events(b).as_slice() {
        [Event::Opened { id: got, meta }] => {
            assert_eq!((*got, &meta[..]), (id, &b"meta"[..]));
        }
        other => panic!("expected an open, got {other:?}"),
    }
    id
}

/// Sends as much as the credit allows, in chunks; returns how much.
fn fill(m: &mut Machine, id: u32) -> usize {
    let mut sent = 0;
    while let Poll::Ready(Ok(n)) = m.poll_credit(id) {
        m.send(id, Bytes::from(vec![7u8; n])).unwrap();
        sent += n;
    }
    sent
}

/// How the session ended, if it did: `Some(None)` for a clean close.
pub(super) fn closed_with(m: &mut Machine) -> Option<Option<Arc<ProtocolError>>> {
    events(m).into_iter().find_map(|e| match e {
        Event::Closed(err) => Some(err),
        _ => None,
    })
}

#[test]
fn ids_follow_the_role() {
    let (mut a, mut b, _) = pair();
    assert_eq!(a.open(Bytes::new()).unwrap(), 2);
    assert_eq!(a.open(Bytes::new()).unwrap(), 4);
    assert_eq!(b.open(Bytes::new()).unwrap(), 1);
}

#[test]
fn sender_stops_at_zero_credit_and_resumes_on_a_window_update() {
    let (mut a, mut b, now) = pair();
    let id = open(&mut a, &mut b, now);
    assert_eq!(fill(&mut a, id), INITIAL_WINDOW as usize);
    assert!(a.poll_credit(id).is_pending());
    assert_eq!(
        a.send(id, Bytes::from_static(b"x")),
        Err(StreamError::NoCredit { credit: 0, len: 1 })
    );
    // Data frames never exceed one chunk.
    let sent = frames(&mut a);
    assert!(sent.iter().all(|f| f.encoded_len() <= MAX_DATA_CHUNK + 10));
    let mut wire = BytesMut::new();
    sent.iter().for_each(|f| f.encode(&mut wire));
    b.handle_bytes(&mut wire, now).unwrap();
    // Reading without acknowledging grants nothing.
    let mut unread = 0;
    while let Poll::Ready(Ok(Some(c))) = b.poll_read(id) {
        unread += c.len();
    }
    assert_eq!(unread, INITIAL_WINDOW as usize);
    assert!(frames(&mut b).is_empty());
    b.ack(id, unread, now);
    pump(&mut b, &mut a, now);
    assert!(events(&mut a)
        .iter()
        .any(|e| matches!(e, Event::Writable(i) if *i == id)));
    assert_eq!(a.stats(id).unwrap().credit, INITIAL_WINDOW as u64);
}

/// Measures a round trip of `rtt` between `a` and `b`; returns the time after it.
fn measure_rtt(a: &mut Machine, b: &mut Machine, now: Instant, rtt: Duration) -> Instant {
    a.tick(now);
    pump(a, b, now);
    let later = now + rtt;
    pump(b, a, later);
    assert_eq!(a.rtt(), rtt);
    later
}

/// The receiver of stream `id` on `b`, fed by `a` and reading as fast as it arrives.
fn stream_fast(a: &mut Machine, b: &mut Machine, id: u32, now: Instant, rounds: usize) {
    for _ in 0..rounds {
        fill(a, id);
        pump(a, b, now);
        read_all(b, id, now);
        pump(b, a, now);
    }
}

#[test]
fn a_fast_reader_grows_its_window_up_to_the_maximum() {
    let now = Instant::now();
    let mut a = Machine::new(config(Role::Agent), now);
    let mut cfg = config(Role::Relay);
    cfg.max_window = 4 * INITIAL_WINDOW;
    let mut b: Machine = Machine::new(cfg, now);
    let id = b.open(Bytes::new()).unwrap();
    pump(&mut b, &mut a, now);
    let now = measure_rtt(&mut b, &mut a, now, Duration::from_millis(20));
    stream_fast(&mut a, &mut b, id, now, 20);
    assert_eq!(b.stats(id).unwrap().window, 4 * INITIAL_WINDOW);
    assert_eq!(a.stats(id).unwrap().credit, 4 * INITIAL_WINDOW as u64);
}

#[test]
fn window_growth_stops_at_the_session_budget() {
    let now = Instant::now();
    let mut a = Machine::new(config(Role::Agent), now);
    let mut cfg = config(Role::Relay);
    cfg.session_budget = INITIAL_WINDOW as u64;
    let mut b: Machine = Machine::new(cfg, now);
    let ids = [b.open(Bytes::new()).unwrap(), b.open(Bytes::new()).unwrap()];
    pump(&mut b, &mut a, now);
    let now = measure_rtt(&mut b, &mut a, now, Duration::from_millis(20));
    for (i, id) in ids.into_iter().enumerate() {
        stream_fast(
            &mut a,
            &mut b,
            id,
            now + Duration::from_millis(i as u64),
            20,
        );
    }
    let grown: u32 = ids
        .iter()
        .map(|id| b.stats(*id).unwrap().window - INITIAL_WINDOW)
        .sum();
    assert_eq!(grown, INITIAL_WINDOW, "the budget caps the growth of both");
    assert_eq!(b.session_budget.used(), INITIAL_WINDOW as u64);
    b.reset(ids[0], "done");
    b.reset(ids[1], "done");
    assert_eq!(
        b.session_budget.used(),
        0,
        "released windows give their growth back"
    );
}

#[test]
fn each_direction_half_closes_on_its_own() {
    let (mut a, mut b, now) = pair();
    let id = open(&mut a, &mut b, now);
    a.send(id, Bytes::from_static(b"request")).unwrap();
    a.finish(id).unwrap();
    assert_eq!(
        a.send(id, Bytes::from_static(b"more")),
        Err(StreamError::Finished)
    );
    pump(&mut a, &mut b, now);
    assert_eq!(read_all(&mut b, id, now), b"request");
    assert_eq!(b.poll_read(id), Poll::Ready(Ok(None)), "fin after the data");
    // The other direction still flows.
    b.send(id, Bytes::from_static(b"response")).unwrap();
    b.finish(id).unwrap();
    pump(&mut b, &mut a, now);
    assert_eq!(read_all(&mut a, id, now), b"response");
    assert_eq!(a.poll_read(id), Poll::Ready(Ok(None)));
    a.release(id);
    b.release(id);
    assert!(
        frames(&mut a).is_empty() && frames(&mut b).is_empty(),
        "no reset needed"
    );
    assert_eq!((a.held_streams(), b.held_streams()), (0, 0));
    assert_eq!((a.open_streams(), b.open_streams()), (0, 0));
}

#[test]
fn a_reset_reaches_the_peer_and_late_data_is_dropped_silently() {
    let (mut a, mut b, now) = pair();
    let id = open(&mut a, &mut b, now);
    b.send(id, Bytes::from_static(b"in flight")).unwrap();
    a.reset(id, "visitor left");
    assert!(matches!(frames(&mut a).as_slice(), [Frame::Reset { stream, .. }] if *stream == id));
    // The data crossed the reset: dropped without an answer or an event.
    pump(&mut b, &mut a, now);
    assert!(frames(&mut a).is_empty());
    assert!(events(&mut a).iter().all(|e| matches!(e, Event::Reset(_))));
    b.handle_frame(
        Frame::Reset {
            stream: id,
            reason: "visitor left".into(),
        },
        now,
    )
    .unwrap();
    assert!(events(&mut b)
        .iter()
        .any(|e| matches!(e, Event::Reset(i) if *i == id)));
    let reset = StreamError::Reset("reset by peer: visitor left".into());
    assert_eq!(b.poll_read(id), Poll::Ready(Err(reset.clone())));
    assert_eq!(b.send(id, Bytes::from_static(b"x")), Err(reset.clone()));
    assert_eq!(b.finish(id), Err(reset));
    assert_eq!(b.open_streams(), 0, "a reset stream no longer counts");
    b.release(id);
    assert!(frames(&mut b).is_empty(), "no reset answers a reset");
    assert_eq!(b.held_streams(), 0);
}

#[test]
fn data_received_before_a_reset_is_still_read_but_none_after() {
    let (mut a, mut b, now) = pair();
    let id = open(&mut a, &mut b, now);
    b.handle_frame(data(id, b"before", false), now).unwrap();
    b.handle_frame(
        Frame::Reset {
            stream: id,
            reason: "x".into(),
        },
        now,
    )
    .unwrap();
    b.handle_frame(data(id, b"after", false), now).unwrap();
    assert_eq!(
        b.poll_read(id),
        Poll::Ready(Ok(Some(Bytes::from_static(b"before"))))
    );
    assert!(matches!(
        b.poll_read(id),
        Poll::Ready(Err(StreamError::Reset(_)))
    ));
}

#[test]
fn data_for_a_stream_nobody_opened_is_answered_with_a_reset() {
    let (_, mut b, now) = pair();
    b.handle_frame(data(8, b"?", false), now).unwrap();
    assert!(
        matches!(frames(&mut b).as_slice(), [Frame::Reset { stream: 8, reason }] if reason == "unknown stream")
    );
    assert!(!b.is_closed());
}

#[test]
fn dropping_a_handle_mid_stream_resets_it() {
    let (mut a, mut b, now) = pair();
    let id = open(&mut a, &mut b, now);
    a.finish(id).unwrap();
    frames(&mut a);
    a.release(id);
    assert!(
        matches!(frames(&mut a).as_slice(), [Frame::Reset { reason, .. }] if reason == "closed")
    );
}
