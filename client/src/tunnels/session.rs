//! The agent's session with the relay: dial (TLS), authenticate, bind, dispatch streams,
//! and reconnect with capped, jittered exponential back-off when the link drops.

use crate::tunnels::connection::Observers;
use crate::tunnels::spec::TunnelSpec;
use actix::prelude::*;
use burrow_http::workers::{ArbiterPool, Connection};
use burrow_protocol::control::{self, ClientMessage, ServerMessage, StreamMeta};
use burrow_protocol::mux::{self, MuxConfig, MuxEvent, MuxHandle, Role};
use burrow_protocol::preamble;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;
use tracing::{info, warn};

/// How the agent reaches and authenticates with its relay.
#[derive(Clone)]
pub struct SessionConfig {
    /// `host:port` of the relay's agent listener.
    pub server_addr: String,
    /// Name the relay's certificate must carry.
    pub server_name: rustls::pki_types::ServerName<'static>,
    /// TLS settings (trusted roots).
    pub tls: Arc<rustls::ClientConfig>,
    /// Auth token, if any.
    pub token: Option<String>,
    /// Identity kept across reconnects, so the relay gives the same names back.
    pub client_id: String,
    /// Ceiling of the reconnect back-off.
    pub max_backoff: Duration,
    /// Outbound proxy to reach the relay through, if any.
    pub proxy: Option<crate::outbound::Proxy>,
}

/// Why a dial failed.
enum DialError {
    /// Worth retrying.
    Transient(String),
    /// The relay refused us; retrying will not help.
    Fatal(String),
}

/// Dials, shakes hands and authenticates.
async fn dial(
    cfg: SessionConfig,
) -> Result<
    (
        MuxHandle,
        tokio::sync::mpsc::UnboundedReceiver<MuxEvent>,
        String,
    ),
    DialError,
> {
    use DialError::*;
    let t = |e: String| Transient(e);
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        crate::outbound::dial(cfg.proxy.as_ref(), &cfg.server_addr),
    )
    .await
    .map_err(|_| t(format!("dial tcp {}: timeout", cfg.server_addr)))?
    .map_err(|e| t(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    // Something that is not a relay may accept the TCP connection and then say nothing.
    let handshake = tokio::time::timeout(
        Duration::from_secs(10),
        TlsConnector::from(cfg.tls.clone()).connect(cfg.server_name.clone(), tcp),
    );
    let mut tls = handshake
        .await
        .map_err(|_| {
            t(format!(
                "TLS handshake with relay {}: no answer in 10s (is it the relay's agent port?)",
                cfg.server_addr
            ))
        })?
        .map_err(|e| {
            if e.to_string().contains("certificate") {
                Fatal(format!(
                    "TLS handshake with relay {}: {e} (set -root-cas to the relay's CA)",
                    cfg.server_addr
                ))
            } else {
                t(format!("TLS handshake with relay {}: {e}", cfg.server_addr))
            }
        })?;
    tokio::time::timeout(Duration::from_secs(10), preamble::exchange(&mut tls))
        .await
        .map_err(|_| {
            t(format!(
                "relay {} did not answer the protocol greeting",
                cfg.server_addr
            ))
        })?
        .map_err(|e| match e {
            burrow_protocol::ProtocolError::VersionMismatch { .. } => Fatal(e.to_string()),
            e => t(e.to_string()),
        })?;
    let (mux, mut events) = mux::start(tls, MuxConfig::new(Role::Agent));
    let auth = ClientMessage::Auth {
        agent_version: env!("CARGO_PKG_VERSION").into(),
        client_id: cfg.client_id.clone(),
        token: cfg.token.clone(),
    };
    mux.send_control(control::encode(&auth))
        .map_err(|e| t(e.to_string()))?;
    let first = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .map_err(|_| t("relay did not answer authentication in time".into()))?;
    match first {
        Some(MuxEvent::Control(b)) => match control::decode::<ServerMessage>(&b) {
            Ok(ServerMessage::AuthOk { session_id, .. }) => Ok((mux, events, session_id)),
            Ok(ServerMessage::AuthFailed { message }) => {
                Err(Fatal(format!("authentication failed: {message}")))
            }
            Ok(other) => Err(t(format!("unexpected answer to authentication: {other:?}"))),
            Err(e) => Err(t(e.to_string())),
        },
        Some(MuxEvent::Closed(Some(e))) => Err(t(e.to_string())),
        _ => Err(t("relay closed the session during authentication".into())),
    }
}

/// The agent's session actor.
pub struct Session {
    cfg: SessionConfig,
    sup: Reports,
    pool: ArbiterPool,
    open: Arc<AtomicUsize>,
    mux: Option<MuxHandle>,
    next_req: u64,
    pending: HashMap<u64, (String, Option<Arc<TunnelSpec>>)>,
    targets: HashMap<u64, Arc<TunnelSpec>>,
    failures: u32,
    generation: u64,
    obs: Observers,
}

impl Session {
    /// A session reporting to `sup`.
    pub fn new(cfg: SessionConfig, sup: Reports, obs: Observers) -> Self {
        Session {
            cfg,
            sup,
            pool: ArbiterPool::new(0),
            open: Arc::new(AtomicUsize::new(0)),
            mux: None,
            next_req: 1,
            pending: HashMap::new(),
            targets: HashMap::new(),
            failures: 0,
            generation: 0,
            obs,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        ctx.spawn(
            dial(self.cfg.clone())
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok((mux, events, id)) => {
                        act.failures = 0;
                        act.generation += 1;
                        act.mux = Some(mux);
                        let generation = act.generation;
                        ctx.add_stream(
                            tokio_stream::wrappers::UnboundedReceiverStream::new(events)
                                .map_gen(generation),
                        );
                        info!(obj = "csess", id = %id, "client session established");
                        act.sup.up.do_send(SessionUp);
                    }
                    Err(DialError::Fatal(msg)) => act.sup.fatal.do_send(SessionFatal(msg)),
                    Err(DialError::Transient(msg)) => {
                        warn!(obj = "tunnels.session", err = %msg, "failed to reconnect session");
                        act.sup.down.do_send(SessionDown(msg));
                        act.retry(ctx);
                    }
                }),
        );
    }

    fn retry(&mut self, ctx: &mut Context<Self>) {
        self.failures += 1;
        let base = Duration::from_millis(250) * 2u32.saturating_pow(self.failures.min(16) - 1);
        let capped = base.min(self.cfg.max_backoff);
        // Full jitter over the upper half keeps a crowd of agents from reconnecting in step.
        let jitter = rand::random::<f64>() * 0.5 + 0.5;
        let delay = capped.mul_f64(jitter);
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }
}

/// A stream event tagged with the connection it came from.
pub struct Tagged(u64, MuxEvent);

trait MapGen: Sized {
    fn map_gen(self, generation: u64) -> TaggedStream<Self>;
}

impl<S> MapGen for S {
    fn map_gen(self, generation: u64) -> TaggedStream<Self> {
        TaggedStream(self, generation)
    }
}

/// Tags each event of a connection's stream with its generation.
pub struct TaggedStream<S>(S, u64);

impl<S: Stream<Item = MuxEvent> + Unpin> Stream for TaggedStream<S> {
    type Item = Tagged;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Tagged>> {
        let g = self.1;
        std::pin::Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|o| o.map(|e| Tagged(g, e)))
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.connect(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.pool.stop();
    }
}

impl StreamHandler<Tagged> for Session {
    fn handle(&mut self, Tagged(generation, ev): Tagged, ctx: &mut Self::Context) {
        if generation != self.generation {
            return;
        }
        match ev {
            MuxEvent::Control(b) => match control::decode::<ServerMessage>(&b) {
                Ok(ServerMessage::Bound {
                    req,
                    tunnel_id,
                    urls,
                }) => {
                    if let Some((name, spec)) = self.pending.remove(&req) {
                        if let Some(spec) = spec {
                            self.targets.insert(tunnel_id, spec);
                        }
                        self.sup.tunnel_up.do_send(TunnelUp {
                            name,
                            tunnel_id,
                            urls,
                        });
                    }
                }
                Ok(ServerMessage::BindFailed { req, message }) => {
                    if let Some((name, _)) = self.pending.remove(&req) {
                        self.sup
                            .tunnel_failed
                            .do_send(TunnelFailed { name, message });
                    }
                }
                Ok(ServerMessage::Error { message }) => {
                    warn!(obj = "tunnels.session", err = %message, "relay reported an error");
                }
                Ok(other) => {
                    warn!(obj = "tunnels.session", msg = ?other, "unexpected message from relay");
                }
                Err(e) => warn!(obj = "tunnels.session", err = %e, "bad message from relay"),
            },
            MuxEvent::Stream(meta, stream) => {
                let meta: StreamMeta = match control::decode(&meta) {
                    Ok(m) => m,
                    Err(e) => return stream.reset(&format!("bad stream metadata: {e}")),
                };
                let Some(spec) = self.targets.get(&meta.tunnel_id).cloned() else {
                    return stream.reset("unknown tunnel");
                };
                Connection::spawn(
                    self.pool.pick(),
                    self.open.clone(),
                    crate::tunnels::connection::serve(spec, meta, stream, self.obs.clone()),
                );
            }
            MuxEvent::Closed(err) => {
                self.mux = None;
                self.pending.clear();
                self.targets.clear();
                let err = err
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "closed by relay".into());
                warn!(obj = "tunnels.session", err = %err, "session closed, starting reconnect loop");
                self.sup.down.do_send(SessionDown(err));
                self.retry(ctx);
            }
        }
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // A connection's event stream ending is handled by its Closed event.
    }
}

/// Ask the relay to bind a tunnel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Bind(pub Arc<TunnelSpec>);

impl Handler<Bind> for Session {
    type Result = ();
    fn handle(&mut self, Bind(spec): Bind, _: &mut Self::Context) {
        let Some(mux) = &self.mux else { return };
        let req = self.next_req;
        self.next_req += 1;
        let msg = ClientMessage::Bind {
            req,
            tunnel: spec.request.clone(),
        };
        if mux.send_control(control::encode(&msg)).is_ok() {
            self.pending.insert(req, (spec.name.clone(), Some(spec)));
        }
    }
}

/// Release a bound tunnel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unbind(pub u64);

impl Handler<Unbind> for Session {
    type Result = ();
    fn handle(&mut self, Unbind(tunnel_id): Unbind, _: &mut Self::Context) {
        self.targets.remove(&tunnel_id);
        if let Some(mux) = &self.mux {
            let _ = mux.send_control(control::encode(&ClientMessage::Unbind { tunnel_id }));
        }
    }
}

/// Change the schemes of a bound http tunnel (name, tunnel id, schemes).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetSchemes(pub String, pub u64, pub control::BindTls);

impl Handler<SetSchemes> for Session {
    type Result = ();
    fn handle(&mut self, SetSchemes(name, tunnel_id, bind_tls): SetSchemes, _: &mut Self::Context) {
        let Some(mux) = &self.mux else { return };
        let req = self.next_req;
        self.next_req += 1;
        let msg = ClientMessage::SetSchemes {
            req,
            tunnel_id,
            bind_tls,
        };
        if mux.send_control(control::encode(&msg)).is_ok() {
            self.pending.insert(req, (name, None));
        }
    }
}

/// Unbind everything and close the session; answers when the goodbye is queued.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

impl Handler<Close> for Session {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Self::Context) {
        if let Some(mux) = self.mux.take() {
            for tunnel_id in self.targets.keys() {
                let _ = mux.send_control(control::encode(&ClientMessage::Unbind {
                    tunnel_id: *tunnel_id,
                }));
            }
            mux.close("agent stopping");
        }
        self.generation += 1;
        ctx.stop();
    }
}

/// The session is authenticated.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionUp;

/// The session dropped; it is reconnecting.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionDown(pub String);

/// The relay refused the agent for good.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionFatal(pub String);

/// A tunnel is bound (or its schemes changed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TunnelUp {
    /// Tunnel name.
    pub name: String,
    /// Relay's id for it.
    pub tunnel_id: u64,
    /// Its public URLs.
    pub urls: Vec<String>,
}

/// A bind was refused.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TunnelFailed {
    /// Tunnel name.
    pub name: String,
    /// The relay's reason.
    pub message: String,
}

/// Where a session reports what happens to it (its supervisor).
pub struct Reports {
    /// Authenticated.
    pub up: Recipient<SessionUp>,
    /// Dropped; reconnecting.
    pub down: Recipient<SessionDown>,
    /// Refused for good.
    pub fatal: Recipient<SessionFatal>,
    /// A tunnel bound.
    pub tunnel_up: Recipient<TunnelUp>,
    /// A bind refused.
    pub tunnel_failed: Recipient<TunnelFailed>,
}
