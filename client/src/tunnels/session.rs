//! The agent's session with the relay: its lanes (one per worker), authentication, binds,
//! and reconnecting with capped, jittered exponential back-off when the link drops.
//!
//! With several relay addresses (a fleet whose nodes share state, so any of them can take
//! the session back with the same names), each connection attempt is a round over the
//! list: it starts at the address that last worked (the first one before any has) and goes
//! on to the next at once when one fails (refused, timed out, a TLS or protocol failure, a
//! certificate that does not fit), wrapping around, each address once. Only when the whole
//! round fails does the agent back off before the next round. So a session that drops tries
//! its own relay again first, once (a blip of the network, or a restart, keeps it where it
//! was), and then the others. A relay refusing the agent's credentials ends the round and
//! the agent, as every node of a fleet would refuse them too; a certificate or protocol
//! version one address does not fit is fatal only when no address of the round would do.
//! Further lanes always dial the address the first lane reached, as only that node holds
//! the session they join.

use crate::tunnels::connection::Observers;
pub use crate::tunnels::lane::SessionConfig;
use crate::tunnels::lane::{self, DialError, Dispatch, Greeting, LaneEvent, RelayAddr, Targets};
use crate::tunnels::spec::TunnelSpec;
use actix::prelude::*;
use burrow_http::workers::ArbiterPool;
use burrow_protocol::control::{self, ClientMessage, ServerMessage};
use burrow_protocol::lanes::Lanes;
use burrow_protocol::mux::MuxEvent;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// The agent's session actor.
pub struct Session {
    cfg: SessionConfig,
    sup: Reports,
    pool: ArbiterPool,
    dispatch: Dispatch,
    lanes: Lanes,
    /// Whether the session is authenticated and has a lane.
    up: bool,
    /// Id, granted lane count and lane secret of the live session.
    greeting: Option<Arc<Greeting>>,
    next_req: u64,
    pending: HashMap<u64, (String, Option<Arc<TunnelSpec>>)>,
    failures: u32,
    /// Counts connections; events of an earlier one are ignored.
    generation: u64,
    /// Index in `cfg.relays` of the address the session is on, or last was: rounds start
    /// there and further lanes dial it.
    relay: usize,
}

impl Session {
    /// A session reporting to `sup`.
    pub fn new(cfg: SessionConfig, sup: Reports, obs: Observers) -> Self {
        Session {
            pool: ArbiterPool::new(cfg.workers),
            cfg,
            sup,
            dispatch: Dispatch {
                targets: Arc::new(Targets::default()),
                obs,
                open: Arc::new(AtomicUsize::new(0)),
            },
            lanes: Lanes::new(),
            up: false,
            greeting: None,
            next_req: 1,
            pending: HashMap::new(),
            failures: 0,
            generation: 0,
            relay: 0,
        }
    }

    fn send(&self, msg: &ClientMessage) -> bool {
        self.up && self.lanes.send_control(control::encode(msg)).is_ok()
    }

    /// Dials the first lane on the first worker and authenticates, asking for a lane per
    /// worker: one round over the relay addresses (see the module's documentation).
    fn connect(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        self.lanes = Lanes::new();
        let generation = self.generation;
        let (cfg, lanes, dispatch) = (self.cfg.clone(), self.lanes.clone(), self.dispatch.clone());
        let (me, wanted) = (ctx.address(), self.pool.len());
        let order = dial_order(self.relay, cfg.relays.len());
        let attempt = self.lanes.clone();
        let first = async move {
            let mut failed = Vec::new();
            for (n, &i) in order.iter().enumerate() {
                let relay = &cfg.relays[i];
                match lane::authenticate(&cfg, relay, wanted).await {
                    Ok(((mux, events), greeting)) => {
                        lanes.add(0, mux);
                        lane::pump(events, dispatch, me.recipient(), generation, 0);
                        return Ok((i, greeting));
                    }
                    Err(DialError::Fatal(msg)) => return Err(DialError::Fatal(msg)),
                    Err(e) => {
                        if n + 1 < order.len() {
                            warn!(obj = "tunnels.session", relay = %relay.addr, err = %e.message(), "relay address failed; trying the next");
                        }
                        failed.push((relay, e));
                    }
                }
            }
            Err(round_failed(failed))
        };
        let first = lane::on_worker(self.pool.get(0), first);
        ctx.spawn(first.into_actor(self).map(move |res, act, ctx| {
            if generation != act.generation {
                // Superseded (the agent is stopping): a relay reached anyway would otherwise
                // keep a session nobody uses.
                attempt.close("superseded");
                return;
            }
            match res {
                Ok((relay, greeting)) => {
                    act.failures = 0;
                    act.up = true;
                    act.relay = relay;
                    if act.lanes.prune() == 0 {
                        // The lane ended before this ran, when its end was not acted on.
                        let err = "relay closed the connection after authenticating";
                        act.on_lane_closed(0, Some(err.into()), ctx);
                        return;
                    }
                    let addr = &act.cfg.relays[relay].addr;
                    // `region` stays last: lines are read as ending with it.
                    info!(obj = "csess", id = %greeting.session_id, lanes = greeting.lanes, relay = %addr, region = %greeting.region, "client session established");
                    let greeting = Arc::new(greeting);
                    act.greeting = Some(greeting.clone());
                    for i in 1..greeting.lanes {
                        act.join(i, 0, ctx);
                    }
                    act.sup.up.do_send(SessionUp {
                        region: greeting.region.clone(),
                    });
                }
                Err(DialError::Fatal(msg) | DialError::Address(msg)) => {
                    act.sup.fatal.do_send(SessionFatal(msg));
                }
                Err(DialError::Transient(msg)) => {
                    warn!(obj = "tunnels.session", err = %msg, "failed to reconnect session");
                    act.sup.down.do_send(SessionDown(msg));
                    act.retry(ctx);
                }
            }
        }));
    }

    /// Dials lane `i` on worker `i` and joins it to the session (attempt `tries`).
    fn join(&mut self, i: usize, tries: u32, ctx: &mut Context<Self>) {
        if !self.up {
            return;
        }
        let Some(greeting) = self.greeting.clone() else {
            return;
        };
        let Some(secret) = greeting.secret.clone() else {
            return;
        };
        let generation = self.generation;
        let (cfg, lanes, dispatch) = (self.cfg.clone(), self.lanes.clone(), self.dispatch.clone());
        let relay = self.relay;
        let me = ctx.address();
        let joined = async move {
            let relay = &cfg.relays[relay];
            let (mux, events) = lane::join(&cfg, relay, &greeting.session_id, &secret).await?;
            lanes.add(i, mux);
            lane::pump(events, dispatch, me.recipient(), generation, i);
            Ok(())
        };
        let joined = lane::on_worker(self.pool.get(i), joined);
        ctx.spawn(joined.into_actor(self).map(move |res, act, ctx| {
            if generation != act.generation || !act.up {
                return;
            }
            match res {
                Ok(()) => debug!(obj = "tunnels.session", lane = i, "lane joined"),
                Err(DialError::Fatal(msg) | DialError::Address(msg)) => {
                    warn!(obj = "tunnels.session", lane = i, err = %msg, "lane refused; going on with fewer lanes");
                }
                Err(DialError::Transient(msg)) if tries < MAX_LANE_TRIES => {
                    debug!(obj = "tunnels.session", lane = i, err = %msg, "lane dial failed; retrying");
                    ctx.run_later(lane_backoff(tries + 1), move |act, ctx| {
                        // Not into a later session, which dials its own lanes.
                        if act.generation == generation {
                            act.join(i, tries + 1, ctx);
                        }
                    });
                }
                Err(DialError::Transient(msg)) => {
                    warn!(obj = "tunnels.session", lane = i, err = %msg, "lane dial failed; going on with fewer lanes");
                }
            }
        }));
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

    fn on_control(&mut self, msg: ServerMessage) {
        match msg {
            ServerMessage::Bound {
                req,
                tunnel_id,
                urls,
            } => {
                if let Some((name, spec)) = self.pending.remove(&req) {
                    if let Some(spec) = spec {
                        self.dispatch.targets.insert(tunnel_id, spec);
                    }
                    self.sup.tunnel_up.do_send(TunnelUp {
                        name,
                        tunnel_id,
                        urls,
                    });
                }
            }
            ServerMessage::BindFailed { req, message } => {
                if let Some((name, _)) = self.pending.remove(&req) {
                    self.sup
                        .tunnel_failed
                        .do_send(TunnelFailed { name, message });
                }
            }
            ServerMessage::Error { message } => {
                warn!(obj = "tunnels.session", err = %message, "relay reported an error");
            }
            other => {
                warn!(obj = "tunnels.session", msg = ?other, "unexpected message from relay");
            }
        }
    }

    /// Lane `lane` ended: the session goes on over the others and dials it again; with
    /// none left, the session is down and reconnects from the start.
    fn on_lane_closed(&mut self, lane: usize, err: Option<String>, ctx: &mut Context<Self>) {
        if !self.up {
            // Down already, when lanes end together (a relay stopping closes them all), or
            // not up yet, which the connection attempt's outcome checks.
            return;
        }
        let left = self.lanes.prune();
        let err = err.unwrap_or_else(|| "closed by relay".into());
        if left > 0 {
            warn!(obj = "tunnels.session", lane, left, err = %err, "lane lost; dialing it again");
            let generation = self.generation;
            ctx.run_later(lane_backoff(1), move |act, ctx| {
                // Not into a later session, which dials its own lanes.
                if act.generation == generation {
                    act.join(lane, 1, ctx);
                }
            });
            return;
        }
        self.up = false;
        self.greeting = None;
        self.pending.clear();
        self.dispatch.targets.clear();
        warn!(obj = "tunnels.session", err = %err, "session closed, starting reconnect loop");
        self.sup.down.do_send(SessionDown(err));
        self.retry(ctx);
    }
}

/// The order a round dials `n` addresses in: from `start` (the last that worked) to the
/// end of the list, then from its beginning, each once.
fn dial_order(start: usize, n: usize) -> Vec<usize> {
    (0..n).map(|k| (start + k) % n).collect()
}

/// What a round in which every address failed amounts to: worth another round if any
/// failure may pass, fatal if each address is wrong for good. With one address, its own
/// error unchanged.
fn round_failed(failed: Vec<(&RelayAddr, DialError)>) -> DialError {
    let transient = failed
        .iter()
        .any(|(_, e)| matches!(e, DialError::Transient(_)));
    let many = failed.len() > 1;
    let msgs: Vec<String> = failed
        .into_iter()
        .map(|(relay, e)| {
            let m = e.message();
            // Most messages name the address already; those that do not get it in front.
            if many && !m.contains(&relay.addr) {
                format!("{}: {m}", relay.addr)
            } else {
                m.to_string()
            }
        })
        .collect();
    let msg = if many {
        format!("no relay address answered: {}", msgs.join("; "))
    } else {
        msgs.concat()
    };
    if transient {
        DialError::Transient(msg)
    } else {
        DialError::Address(msg)
    }
}

/// Attempts at dialing a further lane before the session goes on without it.
const MAX_LANE_TRIES: u32 = 5;

/// Wait before attempt `tries` at a lane: 250 ms doubling, at most 8 s.
fn lane_backoff(tries: u32) -> Duration {
    Duration::from_millis(250) * 2u32.pow(tries.min(6) - 1)
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.connect(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.lanes.close("agent stopping");
        self.pool.stop();
    }
}

impl Handler<LaneEvent> for Session {
    type Result = ();

    fn handle(&mut self, ev: LaneEvent, ctx: &mut Self::Context) {
        if ev.generation != self.generation {
            return;
        }
        match ev.ev {
            MuxEvent::Control(b) => match control::decode::<ServerMessage>(&b) {
                Ok(msg) => self.on_control(msg),
                Err(e) => warn!(obj = "tunnels.session", err = %e, "bad message from relay"),
            },
            MuxEvent::Stream(_, stream) => stream.reset("streams are served by their lane"),
            MuxEvent::Closed(err) => {
                self.on_lane_closed(ev.lane, err.map(|e| e.to_string()), ctx);
            }
        }
    }
}

/// Ask the relay to bind a tunnel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Bind(pub Arc<TunnelSpec>);

impl Handler<Bind> for Session {
    type Result = ();
    fn handle(&mut self, Bind(spec): Bind, _: &mut Self::Context) {
        let req = self.next_req;
        self.next_req += 1;
        let msg = ClientMessage::Bind {
            req,
            tunnel: spec.request.clone(),
        };
        if self.send(&msg) {
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
        self.dispatch.targets.remove(tunnel_id);
        self.send(&ClientMessage::Unbind { tunnel_id });
    }
}

/// Change the schemes of a bound http tunnel (name, tunnel id, schemes).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetSchemes(pub String, pub u64, pub control::BindTls);

impl Handler<SetSchemes> for Session {
    type Result = ();
    fn handle(&mut self, SetSchemes(name, tunnel_id, bind_tls): SetSchemes, _: &mut Self::Context) {
        let req = self.next_req;
        self.next_req += 1;
        let msg = ClientMessage::SetSchemes {
            req,
            tunnel_id,
            bind_tls,
        };
        if self.send(&msg) {
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
        let bound: Vec<u64> = self.dispatch.targets.ids();
        for tunnel_id in bound {
            self.send(&ClientMessage::Unbind { tunnel_id });
        }
        self.lanes.close("agent stopping");
        self.up = false;
        self.generation += 1;
        ctx.stop();
    }
}

/// The session is authenticated.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct SessionUp {
    /// The region the relay serves it in (empty from relays without regions).
    pub region: String,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(addr: &str) -> RelayAddr {
        RelayAddr::parse(addr).expect("relay address")
    }

    #[test]
    fn rounds_start_at_the_last_good_address_and_wrap() {
        assert_eq!(dial_order(0, 1), [0]);
        assert_eq!(dial_order(0, 3), [0, 1, 2]);
        assert_eq!(dial_order(1, 3), [1, 2, 0]);
        assert_eq!(dial_order(2, 3), [2, 0, 1]);
    }

    #[test]
    fn a_failed_round_is_fatal_only_when_no_address_could_do() {
        let (a, b) = (relay("a.example:1"), relay("b.example:2"));
        let one = round_failed(vec![(
            &a,
            DialError::Transient("dial tcp a.example:1: refused".into()),
        )]);
        assert!(matches!(one, DialError::Transient(m) if m == "dial tcp a.example:1: refused"));
        let mixed = round_failed(vec![
            (&a, DialError::Address("bad certificate".into())),
            (
                &b,
                DialError::Transient("dial tcp b.example:2: refused".into()),
            ),
        ]);
        let DialError::Transient(m) = mixed else {
            panic!("a refused address may come back")
        };
        assert_eq!(
            m,
            "no relay address answered: a.example:1: bad certificate; dial tcp b.example:2: refused"
        );
        let wrong = round_failed(vec![
            (&a, DialError::Address("bad certificate".into())),
            (&b, DialError::Address("bad certificate".into())),
        ]);
        assert!(matches!(wrong, DialError::Address(_)));
    }
}
