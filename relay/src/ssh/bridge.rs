//! The gateway as an agent inside the relay: a session over an in-memory pipe, started as
//! an agent's first lane is, so routing, leases, team rules and the admin listing treat it
//! like any other; its tunnels are the user's `-R` forwards, and each public connection
//! becomes a `forwarded-tcpip` channel to the user's SSH client.

use super::command::{Command, Forward};
use crate::lane::{self, FirstLane};
use crate::registry::LeaseKey;
use crate::session::{Session, Vouched};
use crate::state::RelayState;
use crate::team::Principal;
use burrow_protocol::control::{
    self, ClientMessage, ServerMessage, StreamMeta, TunnelProto, TunnelRequest,
};
use burrow_protocol::frame::DEFAULT_MAX_FRAME;
use burrow_protocol::mux::{self, MuxConfig, MuxEvent, MuxHandle, MuxStream, Role};
use burrow_protocol::window::{RecvWindow, WindowBudget, DEFAULT_MAX_WINDOW};
use bytes::{Bytes, BytesMut};
use russh::server::Handle;
use russh::{ChannelId, ChannelMsg};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

/// The round trip a channel's window is tuned for: the relay cannot time the user's SSH
/// connection, and a window that grows for a shorter one than it has is still bounded by
/// the budgets.
const ASSUMED_RTT: Duration = Duration::from_millis(50);

/// Bytes the in-memory pipe holds each way: the mux's writer hands over up to 256 KiB at a
/// time, and a pipe of that size takes it in one go.
const PIPE: usize = 256 * 1024;

/// Everything a gateway session starts from.
pub struct Start {
    /// The relay.
    pub state: Arc<RelayState>,
    /// The SSH client's address.
    pub peer: SocketAddr,
    /// The account the key belongs to (none on an open relay).
    pub principal: Option<Principal>,
    /// The key's fingerprint: the identity whose names survive reconnects.
    pub fingerprint: String,
    /// The SSH client's version string, shown to the operator.
    pub client_version: String,
    /// The SSH session.
    pub ssh: Handle,
    /// The session channel the command came on: where the user reads what happens.
    pub channel: ChannelId,
    /// The parsed command.
    pub command: Command,
    /// The user's forwards with the tunnel each asks for.
    pub forwards: Vec<(Forward, TunnelRequest)>,
    /// The worker this runs on.
    pub worker: usize,
    /// Set when the SSH connection has ended.
    pub gone: watch::Receiver<bool>,
}

/// Runs a gateway session until the SSH connection or the relay ends it.
pub async fn run(s: Start) {
    let (relay_io, agent_io) = tokio::io::duplex(PIPE);
    let vouched = Vouched {
        principal: s.principal.clone(),
        via: "ssh",
    };
    let peer = s.peer;
    let first = FirstLane {
        rest: BytesMut::new(),
        first: None,
        worker: s.worker,
        max_frame: DEFAULT_MAX_FRAME,
    };
    lane::start_session(relay_io, first, s.state.clone(), move |state, lanes| {
        Session::vouched(state, peer, lanes, vouched)
    });
    let (mux, events) = mux::start(agent_io, MuxConfig::new(Role::Agent));
    let mut gone = s.gone.clone();
    let mut agent = Agent {
        mux: mux.clone(),
        events,
        s,
    };
    let ended = tokio::select! {
        end = agent.serve() => end,
        _ = gone.wait_for(|g| *g) => Ended::SshGone,
    };
    mux.close("the SSH connection ended");
    agent.finish(ended).await;
}

/// How a gateway session ended.
enum Ended {
    /// The user went away.
    SshGone,
    /// The relay refused something or closed the session: the user hears why.
    Refused(String),
}

struct Agent {
    mux: MuxHandle,
    events: mpsc::UnboundedReceiver<MuxEvent>,
    s: Start,
}

impl Agent {
    /// Authenticates, binds every forward, tells the user, then serves visitors.
    async fn serve(&mut self) -> Ended {
        let client_id = super::client_id(&self.s.fingerprint);
        let account = self.s.principal.as_ref().map(|p| p.account.as_str());
        let owner = crate::team::lease_owner(account, &client_id);
        sticky(&self.s.state, &owner, &mut self.s.forwards);
        let auth = ClientMessage::Auth {
            agent_version: self.s.client_version.clone(),
            client_id,
            token: None,
            lanes: 1,
            // Served in the relay's own region.
            region: None,
        };
        if self.mux.send_control(control::encode(&auth)).is_err() {
            return Ended::Refused("the relay session could not start".into());
        }
        match self.answer().await {
            Ok(ServerMessage::AuthOk { .. }) => {}
            Ok(other) => return Ended::Refused(refusal(other)),
            Err(e) => return e,
        }
        let mut routes = HashMap::new();
        let mut lines = String::new();
        let forwards = self.s.forwards.clone();
        for (req, (fwd, tunnel)) in forwards.iter().enumerate() {
            let bind = ClientMessage::Bind {
                req: req as u64,
                tunnel: tunnel.clone(),
            };
            if self.mux.send_control(control::encode(&bind)).is_err() {
                return Ended::Refused("the relay session ended".into());
            }
            match self.answer().await {
                Ok(ServerMessage::Bound {
                    tunnel_id, urls, ..
                }) => {
                    let target = self.s.command.target(fwd);
                    for url in &urls {
                        lines.push_str(&format!("Forwarding  {url} -> {target}\r\n"));
                    }
                    info!(peer = %self.s.peer, key = %self.s.fingerprint, ?urls, "ssh tunnel bound");
                    routes.insert(tunnel_id, Route::new(fwd, tunnel.proto));
                }
                Ok(other) => return Ended::Refused(refusal(other)),
                Err(e) => return e,
            }
        }
        let _ = self.s.ssh.data(self.s.channel, lines).await;
        let routes = Arc::new(routes);
        // What the channels' windows may grow by together, as an agent session's lane.
        let budget = WindowBudget::new(self.s.state.cfg.limits.session_window_budget);
        while let Some(ev) = self.events.recv().await {
            match ev {
                MuxEvent::Stream(meta, stream) => {
                    let Ok(meta) = control::decode::<StreamMeta>(&meta) else {
                        stream.reset("bad stream metadata");
                        continue;
                    };
                    let Some(route) = routes.get(&meta.tunnel_id).cloned() else {
                        stream.reset("unknown tunnel");
                        continue;
                    };
                    let window = RecvWindow::new(
                        DEFAULT_MAX_WINDOW,
                        budget.clone(),
                        self.s.state.window_budget.clone(),
                    );
                    tokio::spawn(visitor(self.s.ssh.clone(), route, meta, stream, window));
                }
                MuxEvent::Control(bytes) => match control::decode::<ServerMessage>(&bytes) {
                    Ok(ServerMessage::Error { message }) => return Ended::Refused(message),
                    Ok(_) => {}
                    Err(e) => return Ended::Refused(format!("bad message from the relay: {e}")),
                },
                MuxEvent::Closed(_) => break,
            }
        }
        Ended::Refused("the relay ended the session".into())
    }

    /// The relay's next control message.
    async fn answer(&mut self) -> Result<ServerMessage, Ended> {
        loop {
            match self.events.recv().await {
                Some(MuxEvent::Control(bytes)) => {
                    return control::decode(&bytes)
                        .map_err(|e| Ended::Refused(format!("bad message from the relay: {e}")))
                }
                Some(MuxEvent::Stream(_, stream)) => stream.reset("not bound yet"),
                Some(MuxEvent::Closed(_)) | None => {
                    return Err(Ended::Refused("the relay ended the session".into()))
                }
            }
        }
    }

    /// Tells the user why it ended (when they are still there) and closes the SSH session.
    async fn finish(self, ended: Ended) {
        let Ended::Refused(why) = ended else { return };
        info!(peer = %self.s.peer, key = %self.s.fingerprint, err = %why, "ssh tunnel session ended");
        tell_and_close(&self.s.ssh, self.s.channel, &why).await;
    }
}

/// Gives forwards that ask for no name in particular the names and ports this key's
/// last session left behind, still in their grace period: the agent remembers its URLs to
/// ask for them again; the user of `ssh -R` has only the relay to remember them.
fn sticky(state: &RelayState, owner: &str, forwards: &mut [(Forward, TunnelRequest)]) {
    let mut held = state.registry.departed_of(owner);
    for (_, t) in forwards.iter_mut() {
        let wanted = |k: &LeaseKey| match (t.proto, k) {
            (TunnelProto::Tcp, LeaseKey::Port(_)) => t.remote_port.is_none(),
            (TunnelProto::Http | TunnelProto::Tls, LeaseKey::Host(_)) => {
                t.subdomain.is_none() && t.hostname.is_none()
            }
            _ => false,
        };
        let Some(i) = held.iter().position(wanted) else {
            continue;
        };
        match held.remove(i) {
            LeaseKey::Port(p) => t.remote_port = Some(p),
            LeaseKey::Host(h) => t.hostname = Some(h),
        }
    }
}

/// Writes `why` as one line on the session's stderr, exits with status 1 and closes the
/// channel, after which OpenSSH exits.
pub async fn tell_and_close(ssh: &Handle, channel: ChannelId, why: &str) {
    let line = format!("burrow: {why}\r\n");
    let _ = ssh.extended_data(channel, 1, Bytes::from(line)).await;
    let _ = ssh.exit_status_request(channel, 1).await;
    let _ = ssh.eof(channel).await;
    let _ = ssh.close(channel).await;
}

fn refusal(msg: ServerMessage) -> String {
    match msg {
        ServerMessage::AuthFailed { message }
        | ServerMessage::BindFailed { message, .. }
        | ServerMessage::Error { message } => message,
        other => format!("unexpected answer from the relay: {other:?}"),
    }
}

/// Where a tunnel's visitors go: the forward as the user's client knows it.
#[derive(Clone)]
struct Route {
    address: Arc<str>,
    port: u32,
    proto: TunnelProto,
}

impl Route {
    fn new(fwd: &Forward, proto: TunnelProto) -> Self {
        Route {
            address: fwd.address.as_str().into(),
            port: fwd.bound,
            proto,
        }
    }
}

/// One public connection: a `forwarded-tcpip` channel to the user's client, spliced with
/// the visitor's stream.
async fn visitor(
    ssh: Handle,
    route: Route,
    meta: StreamMeta,
    stream: MuxStream,
    window: RecvWindow,
) {
    let (ip, port) = match meta.remote_addr.parse::<SocketAddr>() {
        Ok(a) => (a.ip().to_string(), u32::from(a.port())),
        Err(_) => (meta.remote_addr.clone(), 0),
    };
    let channel = match ssh
        .channel_open_forwarded_tcpip(&*route.address, route.port, ip, port)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            debug!(remote = %meta.remote_addr, err = %e, "ssh client refused the forwarded connection");
            if route.proto == TunnelProto::Http {
                let page = burrow_http::pages::page(
                    502,
                    "The SSH client behind this tunnel could not reach its local server. Make sure it is running.",
                );
                let _ = stream.send(page).await;
                let _ = stream.finish();
            } else {
                stream.reset("the ssh client refused the connection");
            }
            return;
        }
    };
    let id = channel.id();
    let (rx, tx) = channel.split();
    // Toward the visitor: the channel is read at once into `queue`, so the SSH connection
    // never waits for this visitor; its window reopens only as the visitor's stream takes
    // the bytes, so a visitor that stops reading stops only this channel, with at most its
    // window queued here. The window is an agent stream's: 256 KiB, growing for a reader
    // that keeps up, within the relay's budgets.
    let window = Mutex::new(window);
    let (queue, mut queued) = mpsc::unbounded_channel::<Bytes>();
    let overrun = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the SSH client sent past the channel's window",
        )
    };
    // Owns the channel's reader, so that once this ends (or is dropped with the others) the
    // SSH session no longer queues anything for the channel: its queue never fills.
    let drain = async {
        let (queue, mut rx) = (queue, rx);
        loop {
            match rx.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if !lock(&window).on_received(data.len()) {
                        return Err(overrun());
                    }
                    if queue.send(data).is_err() {
                        break;
                    }
                }
                // Not for a visitor (a forwarded connection has no second stream): dropped,
                // and its window given back, so it cannot stall the channel.
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    let mut window = lock(&window);
                    if !window.on_received(data.len()) {
                        return Err(overrun());
                    }
                    if let Some(more) = window.on_consumed(data.len(), Instant::now(), ASSUMED_RTT)
                    {
                        let _ = ssh.window_adjust(id, more);
                    }
                }
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        Ok(())
    };
    let to_visitor = async {
        while let Some(data) = queued.recv().await {
            let len = data.len();
            stream.send(data).await?;
            let grant = lock(&window).on_consumed(len, Instant::now(), ASSUMED_RTT);
            if let Some(more) = grant {
                let _ = ssh.window_adjust(id, more);
            }
        }
        stream.finish()
    };
    // Toward the user's machine: each chunk waits for the channel's window, and its credit
    // goes back to the relay only once it has been handed to the channel.
    let to_user = async {
        while let Some(chunk) = stream.recv_unacked().await? {
            let len = chunk.len();
            tx.data_bytes(chunk)
                .await
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::BrokenPipe, e.to_string()))?;
            stream.ack(len);
        }
        let _ = tx.eof().await;
        Ok::<_, std::io::Error>(())
    };
    if let Err(e) = tokio::try_join!(drain, to_visitor, to_user) {
        debug!(remote = %meta.remote_addr, err = %e, "forwarded connection ended");
    }
    let _ = tx.close().await;
}

fn lock(window: &Mutex<RecvWindow>) -> std::sync::MutexGuard<'_, RecvWindow> {
    window.lock().unwrap_or_else(|e| e.into_inner())
}
