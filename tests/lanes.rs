//! Lanes: an agent session spread over several TLS connections, one per worker thread.
//! A lane that dies takes only its own streams with it; the session, its tunnel and its
//! URL stay, and the lane is dialled again. Joining takes the secret the session was given.

use burrow_e2e::{curl, port_of, upstream, Gate, TestAgent, TestRelay, TunnelOpts};
use burrow_protocol::control::{self, ClientMessage, ServerMessage};
use burrow_protocol::frame::{Frame, FrameDecoder};
use burrow_protocol::{lanes, preamble};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes each visitor of the trickling server receives.
const TRICKLE: usize = 40;

/// A local tcp server that sends each connection `TRICKLE` bytes, one every 50 ms, then
/// closes: long enough for a lane to be cut in the middle.
async fn trickler() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                for _ in 0..TRICKLE {
                    if s.write_all(b"x").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    });
    addr
}

/// Reads what a visitor gets until the connection ends (at most 10 s).
async fn visit(addr: SocketAddr) -> usize {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    got.len()
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_cut_lane_resets_only_its_streams_and_the_session_goes_on() {
    let relay = TestRelay::start().await;
    let gate = Gate::to(relay.handle.control_addr).await;
    let local = trickler().await;
    let mut agent = TestAgent::start_via(&relay, gate.addr.port(), TunnelOpts::tcp(local), None)
        .await
        .unwrap();
    until("the agent's second lane joins", || {
        relay.handle.session_lanes() == [2]
    })
    .await;
    assert_eq!(gate.forwarded(), 2);
    let public = SocketAddr::from(([127, 0, 0, 1], port_of(&agent.urls[0])));
    // The relay spreads visitors over its two workers, and each uses its worker's lane.
    let visitors: Vec<_> = (0..6).map(|_| tokio::spawn(visit(public))).collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    gate.cut(1);
    let mut got = Vec::new();
    for v in visitors {
        got.push(v.await.unwrap());
    }
    let whole = got.iter().filter(|n| **n == TRICKLE).count();
    let cut = got.iter().filter(|n| **n < TRICKLE).count();
    assert!(
        whole >= 1,
        "visitors on the other lane get everything: {got:?}"
    );
    assert!(cut >= 1, "visitors on the cut lane are reset: {got:?}");
    // The session, its tunnel and its address stay; the lane is dialled again.
    until("the agent dials the lost lane again", || {
        gate.forwarded() == 3 && relay.handle.session_lanes() == [2]
    })
    .await;
    let visitors: Vec<_> = (0..4).map(|_| tokio::spawn(visit(public))).collect();
    for v in visitors {
        assert_eq!(v.await.unwrap(), TRICKLE);
    }
    while let Some(ev) = agent.next_event(Duration::from_millis(100)).await {
        assert!(
            !matches!(ev, burrow::AgentEvent::Reconnecting(_)),
            "the session never went down: {ev:?}"
        );
    }
}

#[actix_rt::test]
async fn a_relay_with_one_lane_per_session_still_serves() {
    let relay = TestRelay::start_with(|c| c.limits.max_lanes = 1).await;
    let gate = Gate::to(relay.handle.control_addr).await;
    let local = trickler().await;
    let agent = TestAgent::start_via(&relay, gate.addr.port(), TunnelOpts::tcp(local), None)
        .await
        .unwrap();
    let public = SocketAddr::from(([127, 0, 0, 1], port_of(&agent.urls[0])));
    let visitors: Vec<_> = (0..4).map(|_| tokio::spawn(visit(public))).collect();
    for v in visitors {
        assert_eq!(v.await.unwrap(), TRICKLE);
    }
    assert_eq!(gate.forwarded(), 1, "one lane, no joins attempted");
}

#[actix_rt::test]
async fn a_visitor_moves_once_to_the_worker_that_holds_its_sessions_lane() {
    // Two relay workers, one lane: visitors accepted on the other worker must move.
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let opts = TunnelOpts::http(up.addr.port()).lanes(1);
    let agent = TestAgent::start(&relay, opts, None).await.unwrap();
    assert_eq!(
        relay.handle.session_lanes(),
        Vec::<usize>::new(),
        "one lane, no door"
    );
    let ca = relay.ca_file();
    for i in 0..6 {
        let (body, err, ok) = curl(&[&format!("{}/hello", agent.http_url())]).await;
        assert!(ok && body == "hello", "http visit {i}: {body} {err}");
        let url = format!("{}/hello", agent.https_url());
        let (body, err, ok) = curl(&["--cacert", &ca, &url]).await;
        assert!(ok && body == "hello", "https visit {i}: {body} {err}");
    }
    // Several requests on one kept-alive connection after it moved.
    let url = format!("{}/hello", agent.http_url());
    let (body, err, ok) = curl(&[&url, &url, &url]).await;
    assert!(ok && body == "hellohellohello", "{body} {err}");
    assert!(
        relay.handle.connections_moved() >= 2,
        "visitors accepted round-robin on two workers: some land where the lane is not"
    );
    assert_eq!(
        relay.handle.streams_opened_away(),
        0,
        "every stream opened on its own worker's lane"
    );
}

/// A connection to the agent port past TLS and the greeting.
async fn greeted(relay: &TestRelay) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut tls = burrow_e2e::agent_port_tls(relay).await;
    preamble::exchange(&mut tls).await.unwrap();
    tls
}

/// Sends `msg` as the connection's first frame and returns the relay's first answer.
async fn first_answer(
    tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
    msg: &ClientMessage,
) -> ServerMessage {
    tls.write_all(&lanes::control_frame(control::encode(msg)))
        .await
        .unwrap();
    let decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::new();
    loop {
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            if let Frame::Control(b) = frame {
                return control::decode(&b).unwrap();
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read_buf(&mut buf))
            .await
            .expect("relay answers in time")
            .unwrap();
        assert!(n > 0, "relay closed without an answer");
    }
}

fn join(session_id: &str, secret: &str) -> ClientMessage {
    ClientMessage::JoinLane {
        session_id: session_id.into(),
        secret: secret.into(),
    }
}

#[actix_rt::test]
async fn joining_takes_the_sessions_secret_and_stops_at_the_grant() {
    let relay = TestRelay::start().await;
    let mut first = greeted(&relay).await;
    let auth = ClientMessage::Auth {
        agent_version: "test".into(),
        client_id: "lanes".into(),
        token: None,
        lanes: 8,
        region: None,
    };
    let ServerMessage::AuthOk {
        session_id,
        lanes,
        lane_secret: Some(secret),
        ..
    } = first_answer(&mut first, &auth).await
    else {
        panic!("authenticated with a lane secret");
    };
    assert_eq!(lanes, 2, "one lane per relay worker, whatever was asked");

    let mut wrong = greeted(&relay).await;
    let answer = first_answer(&mut wrong, &join(&session_id, "not-the-secret")).await;
    assert!(
        matches!(&answer, ServerMessage::AuthFailed { message } if message.contains("secret was not accepted")),
        "{answer:?}"
    );
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), wrong.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "the refused lane is closed");

    let mut stranger = greeted(&relay).await;
    let answer = first_answer(&mut stranger, &join("0000000000000000", &secret)).await;
    assert!(
        matches!(&answer, ServerMessage::AuthFailed { message } if message.contains("no session")),
        "{answer:?}"
    );

    let mut second = greeted(&relay).await;
    let answer = first_answer(&mut second, &join(&session_id, &secret)).await;
    assert_eq!(answer, ServerMessage::LaneOk);

    let mut third = greeted(&relay).await;
    let answer = first_answer(&mut third, &join(&session_id, &secret)).await;
    assert!(
        matches!(&answer, ServerMessage::AuthFailed { message } if message.contains("already has the 2 lanes")),
        "{answer:?}"
    );
}
