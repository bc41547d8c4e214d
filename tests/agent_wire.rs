//! What the `burrow` binary tells its relay, as a stand-in relay records it: the region in
//! `Auth`, and the whole `remote_addr` and `metadata` in every `TunnelRequest`, whether the
//! tunnel comes from the command line, the configuration file or the local API.

use burrow_e2e::agent_bin::{call, spawn};
use burrow_e2e::{free_port, Scratch};
use burrow_protocol::control::{self, ClientMessage, ServerMessage, TunnelProto, TunnelRequest};
use burrow_protocol::mux::{self, MuxConfig, MuxEvent, Role};
use burrow_protocol::preamble;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

/// A relay that authenticates every agent, binds whatever it asks for, and reports each
/// control message it receives.
struct StandIn {
    /// The agents' port on 127.0.0.1.
    port: u16,
    /// The CA that signed its certificate for `localhost`.
    ca_file: String,
    seen: Receiver<ClientMessage>,
    _dir: Scratch,
}

impl StandIn {
    fn start() -> StandIn {
        burrow_e2e::init();
        let dir = Scratch::new("stand-in");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let ca_file = dir.file("ca.pem", &ca.pem());
        let tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    tokio::spawn(serve(acceptor.accept(tcp), tx.clone()));
                }
            });
        });
        StandIn {
            port,
            ca_file: ca_file.to_string_lossy().into_owned(),
            seen,
            _dir: dir,
        }
    }

    /// The next control message the agent sent, skipping those `skip` accepts.
    fn next(&self, skip: impl Fn(&ClientMessage) -> bool) -> ClientMessage {
        loop {
            let msg = self
                .seen
                .recv_timeout(Duration::from_secs(15))
                .expect("the agent sent nothing more within 15 s");
            if !skip(&msg) {
                return msg;
            }
        }
    }

    /// The tunnel of the next `Bind`.
    fn next_bind(&self) -> TunnelRequest {
        match self.next(|m| !matches!(m, ClientMessage::Bind { .. })) {
            ClientMessage::Bind { tunnel, .. } => tunnel,
            _ => unreachable!(),
        }
    }
}

/// One agent connection: answers `Auth` and `Bind`, reports everything.
async fn serve(accept: tokio_rustls::Accept<tokio::net::TcpStream>, seen: Sender<ClientMessage>) {
    let Ok(mut tls) = accept.await else { return };
    if preamble::exchange(&mut tls).await.is_err() {
        return;
    }
    let (mux, mut events) = mux::start(tls, MuxConfig::new(Role::Relay));
    while let Some(MuxEvent::Control(bytes)) = events.recv().await {
        let Ok(msg) = control::decode::<ClientMessage>(&bytes) else {
            return;
        };
        let answer = match &msg {
            ClientMessage::Auth { region, .. } => Some(ServerMessage::AuthOk {
                relay_version: "stand-in".into(),
                session_id: "5e55".into(),
                lanes: 1,
                lane_secret: None,
                region: region.clone().unwrap_or_else(|| "us".into()),
            }),
            ClientMessage::Bind { req, tunnel } => Some(ServerMessage::Bound {
                req: *req,
                tunnel_id: *req,
                urls: vec![match tunnel.proto {
                    TunnelProto::Tcp => format!("tcp://localhost:{}", 10000 + req),
                    _ => format!("http://t{req}.localhost"),
                }],
            }),
            _ => None,
        };
        let _ = seen.send(msg);
        if let Some(a) = answer {
            let _ = mux.send_control(control::encode(&a));
        }
    }
}

#[test]
fn the_command_line_sends_its_region_and_whole_remote_addr() {
    let relay = StandIn::start();
    let server = format!("localhost:{}", relay.port);
    let _agent = spawn(&[
        "tcp",
        "22",
        "-remote-addr",
        "1.tcp.example.com:20001",
        "-region",
        "eu",
        "-server",
        &server,
        "-root-cas",
        &relay.ca_file,
        "-log",
        "stdout",
    ]);
    match relay.next(|_| false) {
        ClientMessage::Auth { region, .. } => assert_eq!(region.as_deref(), Some("eu")),
        other => panic!("first message {other:?}"),
    }
    let t = relay.next_bind();
    assert_eq!(t.remote_addr.as_deref(), Some("1.tcp.example.com:20001"));
    assert_eq!(t.remote_port, Some(20001));
    assert_eq!(t.metadata, None);
}

#[test]
fn configured_and_api_tunnels_send_remote_addr_and_metadata() {
    let relay = StandIn::start();
    let dir = Scratch::new("wire");
    let web = free_port();
    let config = dir.file(
        "burrow.yml",
        &format!(
            "server_addr: localhost:{}\nroot_cas: {}\nweb_addr: 127.0.0.1:{web}\ntunnels:\n  \
             ssh:\n    proto: tcp\n    addr: 22\n    remote_addr: 2.tcp.example.com:20002\n    \
             metadata: '{{\"owner\": \"ops\"}}'\n",
            relay.port, relay.ca_file
        ),
    );
    let agent = spawn(&[
        "start",
        "ssh",
        "-log",
        "stdout",
        "-config",
        config.to_str().unwrap(),
    ]);
    match relay.next(|_| false) {
        // Neither flag nor file names a region: the relay chooses.
        ClientMessage::Auth { region, .. } => assert_eq!(region, None),
        other => panic!("first message {other:?}"),
    }
    let t = relay.next_bind();
    assert_eq!(t.remote_addr.as_deref(), Some("2.tcp.example.com:20002"));
    assert_eq!(t.remote_port, Some(20002));
    assert_eq!(t.metadata.as_deref(), Some("{\"owner\": \"ops\"}"));
    let l = agent.line_matching(|l| l.contains("msg=\"client session established\""));
    assert!(l.ends_with(" region=us"), "{l}");

    let (code, body) = call(
        "POST",
        &format!("http://127.0.0.1:{web}/api/tunnels"),
        Some(
            r#"{"name":"api","proto":"tcp","addr":"23","remote_addr":"3.tcp.example.com:20003",
                "metadata":"from the api"}"#,
        ),
        &[],
    );
    assert_eq!(code, 201, "{body}");
    let t = relay.next_bind();
    assert_eq!(t.remote_addr.as_deref(), Some("3.tcp.example.com:20003"));
    assert_eq!(t.metadata.as_deref(), Some("from the api"));
    let (code, body) = call(
        "POST",
        &format!("http://127.0.0.1:{web}/api/tunnels"),
        Some(r#"{"name":"site","proto":"http","addr":"8080","metadata":"m","bind_tls":false}"#),
        &[],
    );
    assert_eq!(code, 201, "{body}");
    let t = relay.next_bind();
    assert_eq!((t.remote_addr, t.metadata.as_deref()), (None, Some("m")));
}

/// A relay address list, in the configuration file or on the command line: a dead first
/// address is skipped at once and the session names the address it reached.
#[test]
fn a_listed_relay_address_that_is_dead_is_skipped() {
    for form in ["file", "flag"] {
        let relay = StandIn::start();
        let dir = Scratch::new("wire-list");
        let dead = format!("127.0.0.1:{}", free_port());
        let live = format!("localhost:{}", relay.port);
        let config = match form {
            "file" => format!(
                "server_addr: [{dead}, \"{live}\"]\nroot_cas: {}\nweb_addr: false\n",
                relay.ca_file
            ),
            _ => format!("root_cas: {}\nweb_addr: false\n", relay.ca_file),
        };
        let config = dir.file("burrow.yml", &config);
        let servers = format!("{dead},{live}");
        let mut args = vec!["tcp", "22", "-log", "stdout", "-config"];
        args.push(config.to_str().unwrap());
        if form == "flag" {
            args.extend(["-server", &servers]);
        }
        let agent = spawn(&args);
        assert!(
            matches!(relay.next(|_| false), ClientMessage::Auth { .. }),
            "{form}"
        );
        let skipped = agent.line_matching(|l| l.contains("msg=\"relay address failed"));
        assert!(skipped.contains("lvl=warn"), "{skipped}");
        assert!(skipped.contains(&format!("relay={dead} ")), "{skipped}");
        let l = agent.line_matching(|l| l.contains("msg=\"client session established\""));
        assert!(l.contains(&format!(" relay={live} ")), "{form}: {l}");
        assert!(l.ends_with(" region=us"), "{l}");
    }
}
