//! The fleet's coordinator on etcd: the node's registration and its routes under an etcd
//! lease (so they vanish with a dead node), claims as etcd transactions (two nodes racing
//! for one name: one wins), and the watch that feeds every node's cache.
//!
//! The etcd client runs on a thread of its own: the relay's callers are synchronous code
//! on the relay's runtimes, and a claim must not wait longer than the configured timeout.

use super::{now_secs, unreachable, Coordinator, Fleet, LeaseRecord, NodeRecord, RouteRecord};
use crate::registry::{describe, key_str, ClaimError, LeaseKey};
use crate::router::Router;
use crate::team::Team;
use dashmap::DashMap;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, TxnOpResponse, WatchOptions,
};
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::{info, warn};

/// What this node claimed, exactly as written, so giving it back touches nothing newer.
#[derive(Debug, Clone)]
struct Owned {
    route: RouteRecord,
    lease: LeaseRecord,
}

/// What the watch keeps up to date besides the fleet's view.
#[derive(Debug, Clone)]
pub struct Hooks {
    /// Reloaded when another node changes accounts, tokens or reservations.
    pub team: Arc<Team>,
    /// Loses a route another node took over (its agent moved there).
    pub router: Arc<Router>,
}

/// The coordinator: claims, releases, and the tasks that keep the node registered.
#[derive(Clone)]
pub struct Etcd {
    rt: tokio::runtime::Handle,
    client: Client,
    fleet: Weak<Fleet>,
    lease: Arc<AtomicI64>,
    owned: Arc<DashMap<String, Owned>>,
    prefix: String,
    grace: Duration,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("prefix", &self.prefix)
            .field("lease", &self.lease.load(Ordering::Relaxed))
            .field("owned", &self.owned.len())
            .finish()
    }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("fleet records serialize")
}

fn parse<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Option<T> {
    serde_json::from_slice(kv.value()).ok()
}

/// Starts the etcd client's thread and answers its runtime.
fn runtime() -> tokio::runtime::Handle {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("burrowd-fleet".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("fleet runtime");
            let _ = tx.send(rt.handle().clone());
            rt.block_on(std::future::pending::<()>());
        })
        .expect("spawn the fleet thread");
    rx.recv().expect("fleet runtime started")
}

/// Runs `fut` on the fleet's runtime and waits for it, at most `limit`.
fn call<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    limit: Duration,
    fut: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        if let Ok(v) = tokio::time::timeout(limit, fut).await {
            let _ = tx.send(v);
        }
    });
    rx.recv_timeout(limit + Duration::from_millis(100)).ok()
}

/// Joins the fleet: connects to etcd, registers this node under a new lease, loads the
/// routes, leases and nodes, and starts the watch and the lease's keep-alive.
pub fn join(fleet: &Arc<Fleet>, hooks: Hooks, region: Option<String>) -> anyhow::Result<()> {
    let rt = runtime();
    let cfg = fleet.cfg.clone();
    let endpoints = cfg.etcd.clone();
    let opts = ConnectOptions::new()
        .with_connect_timeout(cfg.timeout)
        .with_timeout(cfg.timeout)
        .with_keep_alive(Duration::from_secs(2), cfg.timeout);
    let ttl = cfg.lease_ttl.as_secs().max(2) as i64;
    let started = call(&rt, cfg.timeout * 3, async move {
        let mut client = Client::connect(&endpoints, Some(opts)).await?;
        let lease = client.lease_grant(ttl, None).await?.id();
        Ok::<_, etcd_client::Error>((client, lease))
    });
    let (client, lease) = match started {
        Some(Ok(x)) => x,
        Some(Err(e)) => anyhow::bail!("cannot join the fleet: etcd at {}: {e}", cfg.etcd.join(",")),
        None => anyhow::bail!(
            "cannot join the fleet: etcd at {} did not answer in time",
            cfg.etcd.join(",")
        ),
    };
    let etcd = Arc::new(Etcd {
        rt: rt.clone(),
        client,
        fleet: Arc::downgrade(fleet),
        lease: Arc::new(AtomicI64::new(lease)),
        owned: Arc::new(DashMap::new()),
        prefix: cfg.prefix.clone(),
        grace: fleet.grace,
    });
    let node = NodeRecord {
        id: cfg.node_id.clone(),
        addr: cfg.node_addr.to_string(),
        region,
        started: now_secs(),
        version: env!("CARGO_PKG_VERSION").into(),
        sessions: Vec::new(),
    };
    let (e, f, n) = (etcd.clone(), fleet.clone(), node.clone());
    let revision = call(&rt, cfg.timeout * 2, async move {
        let mut c = e.client.clone();
        let same = c.get(e.key("nodes", &n.id), None).await?;
        if let Some(other) = same.kvs().first().and_then(parse::<NodeRecord>) {
            if other.addr != n.addr {
                return Ok(Err(other.addr));
            }
        }
        e.register(&n).await?;
        e.sync(&f).await.map(Ok)
    });
    let revision = match revision {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(other))) => anyhow::bail!(
            "cannot join the fleet: node id {:?} is in use by a live node at {other} (a node \
             that died frees its id within {} s)",
            cfg.node_id,
            cfg.lease_ttl.as_secs()
        ),
        Some(Err(e)) => anyhow::bail!("cannot join the fleet: {e}"),
        None => anyhow::bail!("cannot join the fleet: etcd did not answer in time"),
    };
    fleet.healthy.store(true, Ordering::Release);
    fleet.set_coordinator(etcd.clone());
    rt.spawn(etcd.clone().watch(revision, hooks.clone()));
    rt.spawn(etcd.keep_alive(node, hooks));
    info!(
        node = cfg.node_id,
        etcd = cfg.etcd.join(","),
        "joined the fleet"
    );
    Ok(())
}

impl Etcd {
    fn key(&self, kind: &str, k: &str) -> String {
        format!("{}{kind}/{k}", self.prefix)
    }

    /// Writes the node's record under its lease.
    async fn register(&self, node: &NodeRecord) -> Result<(), etcd_client::Error> {
        let lease = self.lease.load(Ordering::Acquire);
        let mut c = self.client.clone();
        let opts = PutOptions::new().with_lease(lease);
        c.put(self.key("nodes", &node.id), json(node), Some(opts))
            .await
            .map(drop)
    }

    /// Replaces the fleet's view with what etcd holds now; answers etcd's revision.
    async fn sync(&self, fleet: &Fleet) -> Result<i64, etcd_client::Error> {
        let mut c = self.client.clone();
        let all = c
            .get(self.prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = all.header().map(|h| h.revision()).unwrap_or(0);
        let view = &fleet.view;
        view.routes.clear();
        view.leases.clear();
        view.nodes.clear();
        for kv in all.kvs() {
            self.apply(fleet, kv, true, None);
        }
        fleet.routes_changed();
        Ok(revision)
    }

    /// Puts one key's new value (or its deletion) into the view; answers whether it was a
    /// change of the team's store.
    fn apply(&self, fleet: &Fleet, kv: &KeyValue, put: bool, hooks: Option<&Hooks>) -> bool {
        let Ok(key) = std::str::from_utf8(kv.key()) else {
            return false;
        };
        let Some(rest) = key.strip_prefix(&self.prefix) else {
            return false;
        };
        let Some((kind, k)) = rest.split_once('/') else {
            return false;
        };
        let view = &fleet.view;
        match (kind, put) {
            ("routes", true) => {
                let Some(route) = parse::<RouteRecord>(kv) else {
                    return false;
                };
                if route.node != fleet.cfg.node_id {
                    if let (Some(_), Some(h)) = (self.owned.remove(k), hooks) {
                        superseded(&h.router, k);
                    }
                }
                view.routes.insert(k.to_string(), route);
            }
            ("routes", false) => {
                view.routes.remove(k);
            }
            ("leases", true) => {
                if let Some(l) = parse::<LeaseRecord>(kv) {
                    view.leases.insert(k.to_string(), l);
                }
            }
            ("leases", false) => {
                view.leases.remove(k);
            }
            ("nodes", true) => {
                if let Some(n) = parse::<NodeRecord>(kv) {
                    view.nodes.insert(k.to_string(), n);
                }
            }
            ("nodes", false) => {
                view.nodes.remove(k);
            }
            ("store", _) => return true,
            _ => {}
        }
        false
    }

    /// Follows every change under the prefix; after a break (etcd restarted, or compacted
    /// past us) it loads everything again and follows from there.
    async fn watch(self: Arc<Self>, mut revision: i64, hooks: Hooks) {
        loop {
            let Some(fleet) = self.fleet.upgrade() else {
                return;
            };
            let mut c = self.client.clone();
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(revision + 1);
            if let Ok(mut stream) = c.watch(self.prefix.clone(), Some(opts)).await {
                while let Ok(Some(resp)) = stream.message().await {
                    if resp.canceled() {
                        break;
                    }
                    let mut store = false;
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        revision = revision.max(kv.mod_revision());
                        store |=
                            self.apply(&fleet, kv, ev.event_type() == EventType::Put, Some(&hooks));
                    }
                    fleet.routes_changed();
                    if store {
                        reload(&hooks.team);
                    }
                }
            }
            drop(fleet);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let Some(fleet) = self.fleet.upgrade() else {
                return;
            };
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(5), self.sync(&fleet)).await
            {
                revision = r;
                reload(&hooks.team);
            }
        }
    }

    /// Keeps the node's lease alive and its record current; when etcd lost the lease (it
    /// was away longer than the lease's time), registers anew and writes every route this
    /// node still serves under the new lease.
    async fn keep_alive(self: Arc<Self>, mut node: NodeRecord, hooks: Hooks) {
        let mut published = json(&node);
        loop {
            let Some(fleet) = self.fleet.upgrade() else {
                return;
            };
            let every = fleet.cfg.lease_ttl / 3;
            let alive = tokio::time::timeout(every, self.renew()).await;
            let healthy = match alive {
                Ok(Ok(true)) => true,
                Ok(Ok(false)) => {
                    warn!("the fleet lease expired while etcd was away; registering again");
                    self.rejoin(&node).await.is_ok()
                }
                _ => false,
            };
            let was = fleet.healthy.swap(healthy, Ordering::AcqRel);
            if was != healthy {
                match healthy {
                    true => info!("etcd answers again: claims accepted"),
                    false => warn!(
                        etcd = fleet.cfg.etcd.join(","),
                        "etcd does not answer: serving what is bound, refusing new claims"
                    ),
                }
            }
            if healthy {
                node.sessions = hooks
                    .team
                    .live
                    .views()
                    .into_iter()
                    .filter_map(|v| serde_json::to_value(v).ok())
                    .collect();
                let now = json(&node);
                if now != published && self.register(&node).await.is_ok() {
                    published = now;
                }
            }
            drop(fleet);
            tokio::time::sleep(every).await;
        }
    }

    /// One keep-alive of the node's lease: false when etcd no longer knows it.
    async fn renew(&self) -> Result<bool, etcd_client::Error> {
        let mut c = self.client.clone();
        let (mut keeper, mut stream) = c
            .lease_keep_alive(self.lease.load(Ordering::Acquire))
            .await?;
        keeper.keep_alive().await?;
        match stream.message().await? {
            Some(r) => Ok(r.ttl() > 0),
            None => Err(etcd_client::Error::InvalidArgs(
                "keep-alive stream ended".into(),
            )),
        }
    }

    async fn rejoin(&self, node: &NodeRecord) -> Result<(), etcd_client::Error> {
        let Some(fleet) = self.fleet.upgrade() else {
            return Ok(());
        };
        let mut c = self.client.clone();
        let ttl = fleet.cfg.lease_ttl.as_secs().max(2) as i64;
        let lease = c.lease_grant(ttl, None).await?.id();
        self.lease.store(lease, Ordering::Release);
        self.register(node).await?;
        let owned: Vec<(String, Owned)> = self
            .owned
            .iter()
            .map(|o| (o.key().clone(), o.value().clone()))
            .collect();
        for (k, o) in owned {
            // Only while the lease is still this node's as written: nobody took the name.
            let txn = Txn::new()
                .when([Compare::value(
                    self.key("leases", &k),
                    CompareOp::Equal,
                    json(&o.lease),
                )])
                .and_then([TxnOp::put(
                    self.key("routes", &k),
                    json(&o.route),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            if !c.txn(txn).await?.succeeded() {
                self.owned.remove(&k);
            }
        }
        Ok(())
    }

    async fn claim_async(
        self,
        key: LeaseKey,
        client: String,
        session: u64,
    ) -> Result<(), ClaimError> {
        let fleet = self
            .fleet
            .upgrade()
            .ok_or_else(|| ClaimError::Unavailable("the relay is stopping".into()))?;
        let k = key_str(&key);
        let (lk, rk) = (self.key("leases", &k), self.key("routes", &k));
        let down = |_| unreachable(&fleet.cfg);
        let mut c = self.client.clone();
        for _ in 0..8 {
            let lease_id = self.lease.load(Ordering::Acquire);
            // Both records in one round trip, read at one revision.
            let read =
                Txn::new().and_then([TxnOp::get(lk.clone(), None), TxnOp::get(rk.clone(), None)]);
            let read = c.txn(read).await.map_err(down)?.op_responses();
            let first = |i: usize| match read.get(i) {
                Some(TxnOpResponse::Get(got)) => got.kvs().first().cloned(),
                _ => None,
            };
            let l = first(0).and_then(|kv| Some((parse::<LeaseRecord>(&kv)?, kv.mod_revision())));
            let r = first(1).and_then(|kv| Some((parse::<RouteRecord>(&kv)?, kv.mod_revision())));
            if let Some((rr, _)) = &r {
                if rr.client != client {
                    return Err(ClaimError::Taken(describe(&key), None));
                }
            }
            if let Some((lr, rev)) = &l {
                if lr.client != client {
                    let now = now_secs();
                    match lr.expires {
                        Some(e) if e > now => {
                            return Err(ClaimError::Taken(describe(&key), Some(e - now)))
                        }
                        Some(_) => {}
                        None => {
                            // Its node died holding it (no route is left): the agent's
                            // grace starts now.
                            let mut held = lr.clone();
                            held.expires = Some(now + self.grace.as_secs());
                            let txn = Txn::new()
                                .when([Compare::mod_revision(lk.clone(), CompareOp::Equal, *rev)])
                                .and_then([TxnOp::put(lk.clone(), json(&held), None)]);
                            c.txn(txn).await.map_err(down)?;
                            return Err(ClaimError::Taken(
                                describe(&key),
                                Some(self.grace.as_secs()),
                            ));
                        }
                    }
                }
            }
            let lease = LeaseRecord {
                client: client.clone(),
                holder: session,
                node: fleet.cfg.node_id.clone(),
                expires: None,
            };
            let route = RouteRecord {
                node: fleet.cfg.node_id.clone(),
                session,
                client: client.clone(),
            };
            let unchanged = |key: &str, seen: Option<i64>| match seen {
                Some(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
                None => Compare::version(key, CompareOp::Equal, 0),
            };
            let txn = Txn::new()
                .when([
                    unchanged(&lk, l.as_ref().map(|x| x.1)),
                    unchanged(&rk, r.as_ref().map(|x| x.1)),
                ])
                .and_then([
                    TxnOp::put(lk.clone(), json(&lease), None),
                    TxnOp::put(
                        rk.clone(),
                        json(&route),
                        Some(PutOptions::new().with_lease(lease_id)),
                    ),
                ]);
            if c.txn(txn).await.map_err(down)?.succeeded() {
                fleet.view.leases.insert(k.clone(), lease.clone());
                fleet.view.routes.insert(k.clone(), route.clone());
                self.owned.insert(k, Owned { route, lease });
                fleet.routes_changed();
                return Ok(());
            }
        }
        Err(ClaimError::Unavailable(format!(
            "{} is being claimed by others at the same time; try again",
            describe(&key)
        )))
    }

    /// Gives back what this node claimed for `session` (or any session, `None`): its
    /// route at once, its lease at once (`forget`) or after the grace period.
    fn give_back(&self, key: &LeaseKey, client: &str, session: Option<u64>, forget: bool) {
        let k = key_str(key);
        let Some((_, o)) = self.owned.remove_if(&k, |_, o| {
            o.route.client == client && session.is_none_or(|s| o.route.session == s)
        }) else {
            return;
        };
        let (lk, rk) = (self.key("leases", &k), self.key("routes", &k));
        let mut held = o.lease.clone();
        held.expires = Some(now_secs() + self.grace.as_secs());
        let lease_op = match forget {
            true => TxnOp::delete(lk.clone(), None),
            false => TxnOp::put(lk.clone(), json(&held), None),
        };
        let mut c = self.client.clone();
        self.rt.spawn(async move {
            let lease = Txn::new()
                .when([Compare::value(lk, CompareOp::Equal, json(&o.lease))])
                .and_then([lease_op]);
            let route = Txn::new()
                .when([Compare::value(rk.clone(), CompareOp::Equal, json(&o.route))])
                .and_then([TxnOp::delete(rk, None)]);
            for txn in [lease, route] {
                if let Err(e) = c.txn(txn).await {
                    warn!(key = k, err = %e, "cannot give a name back to the fleet; its lease will");
                }
            }
        });
    }
}

impl Coordinator for Etcd {
    fn claim(&self, key: &LeaseKey, client: &str, session: u64) -> Result<(), ClaimError> {
        let Some(fleet) = self.fleet.upgrade() else {
            return Err(ClaimError::Unavailable("the relay is stopping".into()));
        };
        let fut = self
            .clone()
            .claim_async(key.clone(), client.to_string(), session);
        call(&self.rt, fleet.cfg.timeout, fut).unwrap_or_else(|| Err(unreachable(&fleet.cfg)))
    }

    fn release(&self, key: &LeaseKey, client: &str, session: u64) {
        self.give_back(key, client, Some(session), false);
    }

    fn forget(&self, key: &LeaseKey, client: &str) {
        self.give_back(key, client, None, true);
    }
}

/// Drops this node's route for `key`: another node took the name over.
fn superseded(router: &Router, key: &str) {
    match key.split_once(':') {
        Some(("host", h)) => {
            if let Some(r) = router.lookup_exact(h) {
                router.remove(h, r.tunnel_id);
            }
        }
        Some(("port", p)) => {
            let Ok(port) = p.parse() else { return };
            if let Some(r) = router.lookup_port(port) {
                router.remove_port(port, r.tunnel_id);
            }
        }
        _ => {}
    }
}

/// Reloads the team's snapshot off the watch's thread (it reads the store, on etcd too).
fn reload(team: &Arc<Team>) {
    let team = team.clone();
    tokio::task::spawn_blocking(
        move || match team.reload().and_then(|()| team.end_orphans()) {
            Ok(0) => {}
            Ok(n) => info!(
                sessions = n,
                "ended sessions whose token was revoked on another node"
            ),
            Err(e) => warn!(err = %e, "cannot reload accounts after a change on another node"),
        },
    );
}
