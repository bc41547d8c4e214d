//! The store on etcd, shared by a fleet of relays: the same tables and JSON records as the
//! redb file, under `{prefix}store/{table}/{key}`, and the same operations ([`crate::ops`]).
//!
//! Transactions are optimistic and serializable: a transaction reads at one etcd revision,
//! buffers its writes, and commits them with one etcd `Txn` on the condition that the guard
//! key `{prefix}store/.rev` has not changed since that revision; every commit rewrites the
//! guard, so any other commit in between fails the condition and the transaction runs again.
//!
//! Callers are synchronous and often on a tokio or actix runtime's thread, where blocking on
//! a future would panic; the etcd client therefore lives on a thread of its own with its own
//! runtime, and callers hand it work over a channel and wait on a std channel, each for at
//! most the store's deadline.

use crate::backend::{Backend, Records, Table, Txn};
use crate::error::StoreError;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, TxnOp, WatchOptions};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc as tmpsc, watch};
use tonic::Code;

/// How often a transaction runs before the store gives up on other relays' conflicting
/// commits; each round lets at least one of the racing transactions commit.
const MAX_TRIES: usize = 16;
/// How long the watch waits before it is set up again after etcd went away.
const REWATCH: Duration = Duration::from_millis(500);
/// Room for the client's thread to report a deadline it has itself enforced.
const SLACK: Duration = Duration::from_millis(200);

/// Work for the client's thread: given the client, a future it runs to completion.
type Job = Box<dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A fleet's shared store in etcd.
///
/// Dropping it ends its client thread, and with it the watch behind [`EtcdStore::changes`].
#[derive(Debug)]
pub struct EtcdStore {
    endpoints: Vec<String>,
    prefix: String,
    timeout: Duration,
    jobs: tmpsc::UnboundedSender<Job>,
    changes: watch::Receiver<i64>,
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`http://host:port`) and keeps the store under `prefix`
    /// (e.g. `/burrow/`); every operation, this one included, fails with
    /// [`StoreError::Unavailable`] if etcd does not answer within `timeout`.
    ///
    /// A store that connected goes on working across etcd restarts: the client reconnects on
    /// its own, and an operation made while etcd is away fails within `timeout`.
    pub fn connect(
        endpoints: &[String],
        prefix: &str,
        timeout: Duration,
    ) -> Result<EtcdStore, StoreError> {
        let unavailable = |reason: String| StoreError::Unavailable {
            endpoints: endpoints.to_vec(),
            reason,
        };
        let (jobs, mut queue) = tmpsc::unbounded_channel::<Job>();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let eps = endpoints.to_vec();
        // Keepalives notice a connection that died without a word, so the watch is set up
        // again; the connect timeout bounds each attempt while etcd is away.
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_keep_alive_while_idle(true);
        std::thread::Builder::new()
            .name("burrow-etcd".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start its runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    // The channel connects lazily, so this fails only on bad endpoints.
                    let client = match Client::connect(&eps, Some(options)).await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    // Ends when the store is dropped; the runtime then drops every task.
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job(client.clone()));
                    }
                });
            })
            .map_err(|e| unavailable(format!("cannot start its client thread: {e}")))?;
        ready
            .recv()
            .map_err(|_| unavailable("its client thread stopped".into()))?
            .map_err(unavailable)?;

        let (changes_tx, changes) = watch::channel(0);
        let mut store = EtcdStore {
            endpoints: endpoints.to_vec(),
            prefix: prefix.into(),
            timeout,
            jobs,
            changes,
        };
        // One round trip now, so a wrong address is an error at start rather than later.
        let deadline = Instant::now() + timeout;
        let (revision, _) = store.begin(deadline)?;
        changes_tx.send_replace(revision);
        store.changes.mark_unchanged();
        let watched = store.table_root();
        let job: Job =
            Box::new(move |client| Box::pin(watch_changes(client, watched, changes_tx, revision)));
        store
            .jobs
            .send(job)
            .map_err(|_| store.unavailable("its client thread stopped"))?;
        Ok(store)
    }

    /// Bumps whenever anything under `{prefix}store/` changes, from this relay or another,
    /// so a relay reloads what it keeps in memory; the value is the etcd revision of the
    /// latest change seen. The watch behind it is set up again after etcd comes back, from
    /// where it left off, so no change is missed.
    pub fn changes(&self) -> watch::Receiver<i64> {
        self.changes.clone()
    }

    /// The key prefix this store lives under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}store/`: everything the watch covers.
    fn table_root(&self) -> String {
        format!("{}store/", self.prefix)
    }

    /// The guard every commit rewrites and every commit's condition compares.
    fn guard(&self) -> String {
        format!("{}store/.rev", self.prefix)
    }

    /// Where `table`'s records live. Leases are the relay's own claims, outside `store/`,
    /// so their churn neither conflicts with nor wakes the watchers of the team's data.
    fn table_prefix(&self, table: Table) -> String {
        match table {
            Table::Leases => format!("{}leases/", self.prefix),
            t => format!("{}store/{}/", self.prefix, t.name()),
        }
    }

    fn unavailable(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            endpoints: self.endpoints.clone(),
            reason: reason.into(),
        }
    }

    /// Sorts etcd's errors: those that say it cannot be reached, and the rest.
    fn etcd_error(&self, e: etcd_client::Error) -> StoreError {
        use etcd_client::Error as E;
        match e {
            E::TransportError(e) => self.unavailable(causes(&e)),
            E::IoError(e) => self.unavailable(causes(&e)),
            E::GRpcStatus(s)
                if matches!(
                    s.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Unknown
                ) =>
            {
                // The status's own text is tonic's debug dump; its message and causes say
                // what an operator needs (e.g. "tcp connect error: Connection refused").
                let reason = match std::error::Error::source(&s) {
                    Some(source) => {
                        let mut root = source;
                        while let Some(next) = root.source() {
                            root = next;
                        }
                        format!("{}: {root}", s.message())
                    }
                    None => s.message().to_string(),
                };
                self.unavailable(reason)
            }
            other => StoreError::Backend(Box::new(other)),
        }
    }

    /// Runs `f` on the client's thread and waits for its answer, at most until `deadline`.
    fn call<T, F, Fut>(&self, deadline: Instant, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let late = || self.unavailable(format!("no answer within {:?}", self.timeout));
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(late());
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let _ = tx.send(tokio::time::timeout(left, f(client)).await);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| self.unavailable("its client thread stopped"))?;
        match rx.recv_timeout(left + SLACK) {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(self.etcd_error(e)),
            Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Timeout) => Err(late()),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(self.unavailable("its client thread stopped"))
            }
        }
    }

    /// The revision a transaction reads at, and the guard's revision its commit compares.
    fn begin(&self, deadline: Instant) -> Result<(i64, i64), StoreError> {
        let guard = self.guard();
        self.call(deadline, move |mut c| async move {
            let resp = c.get(guard, None).await?;
            let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            let guard_rev = resp.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0);
            Ok((revision, guard_rev))
        })
    }

    /// Commits `writes` if nothing was committed since the guard was at `guard_rev`; `false`
    /// if something was, and the transaction must run again.
    fn commit(
        &self,
        deadline: Instant,
        guard_rev: i64,
        writes: BTreeMap<(Table, String), Option<Vec<u8>>>,
    ) -> Result<bool, StoreError> {
        let guard = self.guard();
        let mut ops: Vec<TxnOp> = writes
            .into_iter()
            .map(|((table, key), value)| {
                let key = format!("{}{key}", self.table_prefix(table));
                match value {
                    Some(v) => TxnOp::put(key, v, None),
                    None => TxnOp::delete(key, None),
                }
            })
            .collect();
        ops.push(TxnOp::put(guard.clone(), Vec::new(), None));
        // A missing key's mod revision is 0, so the first commit compares against 0 too.
        let txn = etcd_client::Txn::new()
            .when([Compare::mod_revision(guard, CompareOp::Equal, guard_rev)])
            .and_then(ops);
        self.call(deadline, move |mut c| async move {
            Ok(c.txn(txn).await?.succeeded())
        })
    }

    /// The keys and values of `[lo, hi)` within `table` at `revision`.
    fn read_range(
        &self,
        deadline: Instant,
        revision: i64,
        table: Table,
        lo: &str,
        hi: Option<&str>,
    ) -> Result<Records, StoreError> {
        let root = self.table_prefix(table);
        let start = format!("{root}{lo}");
        let end = match hi {
            Some(hi) => format!("{root}{hi}").into_bytes(),
            None => prefix_end(root.as_bytes()),
        };
        let kvs = self.call(deadline, move |mut c| async move {
            let opts = GetOptions::new().with_range(end).with_revision(revision);
            Ok(c.get(start, Some(opts)).await?.take_kvs())
        })?;
        kvs.into_iter()
            .map(|kv| {
                let (k, v) = kv.into_key_value();
                let key = k
                    .strip_prefix(root.as_bytes())
                    .and_then(|k| String::from_utf8(k.to_vec()).ok())
                    .ok_or_else(|| self.corrupt(format!("a key that is not UTF-8 under {root}")))?;
                Ok((key, v))
            })
            .collect()
    }

    fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.location(),
            detail: detail.into(),
        }
    }

    /// What a corruption names in place of a file.
    fn location(&self) -> PathBuf {
        PathBuf::from(format!(
            "etcd {}store/ at {}",
            self.prefix,
            self.endpoints.join(", ")
        ))
    }

    /// Names this store in a corruption found by the shared operations.
    fn locate(&self, err: StoreError) -> StoreError {
        match err {
            StoreError::Corrupt { path, detail } if path.as_os_str().is_empty() => {
                self.corrupt(detail)
            }
            other => other,
        }
    }
}

/// An error and its root cause, which is the specific part (e.g. "Connection refused");
/// the wrappers in between mostly repeat each other.
fn causes(e: &dyn std::error::Error) -> String {
    let mut root = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let (top, bottom) = (e.to_string(), root.to_string());
    if top.contains(&bottom) {
        top
    } else {
        format!("{top}: {bottom}")
    }
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: to the end of the keyspace, which etcd spells as a single 0.
    vec![0]
}

/// Keeps `changes` at the revision of the latest change under `root`, watching from the
/// revision after `seen` each time the watch is set up, so a restart of etcd loses nothing.
async fn watch_changes(
    mut client: Client,
    root: String,
    changes: watch::Sender<i64>,
    mut seen: i64,
) {
    loop {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(seen + 1);
        if let Ok(mut stream) = client.watch(root.clone(), Some(opts)).await {
            while let Ok(Some(resp)) = stream.message().await {
                if resp.canceled() {
                    // The history from `seen` was compacted away: something may have
                    // changed, and the watch goes on from what is left.
                    let compacted = resp.compact_revision();
                    if compacted > 0 {
                        seen = seen.max(compacted - 1);
                    }
                    changes.send_modify(|rev| *rev = (*rev).max(seen));
                    break;
                }
                let latest = resp
                    .events()
                    .iter()
                    .filter_map(|e| e.kv().map(|kv| kv.mod_revision()))
                    .max();
                if let Some(rev) = latest {
                    seen = seen.max(rev);
                    changes.send_replace(seen);
                }
            }
        }
        tokio::time::sleep(REWATCH).await;
    }
}

/// A transaction's reads at one revision, and the writes it will commit.
struct EtcdTxn<'s> {
    store: &'s EtcdStore,
    deadline: Instant,
    revision: i64,
    /// `None` marks a removal; reads see these before etcd's values.
    writes: BTreeMap<(Table, String), Option<Vec<u8>>>,
    read_only: bool,
}

impl EtcdTxn<'_> {
    fn range_of(
        &mut self,
        table: Table,
        lo: &str,
        hi: Option<&str>,
    ) -> Result<Records, StoreError> {
        let mut found: BTreeMap<String, Vec<u8>> = self
            .store
            .read_range(self.deadline, self.revision, table, lo, hi)?
            .into_iter()
            .collect();
        let mine = self
            .writes
            .range((table, lo.to_string())..)
            .take_while(|((t, k), _)| *t == table && hi.is_none_or(|hi| k.as_str() < hi));
        for ((_, key), value) in mine {
            match value {
                Some(v) => found.insert(key.clone(), v.clone()),
                None => found.remove(key),
            };
        }
        Ok(found.into_iter().collect())
    }

    fn refuse_write(&self, table: Table) -> Result<(), StoreError> {
        if self.read_only {
            Err(StoreError::Backend(
                format!("write to {} in a read-only view", table.name()).into(),
            ))
        } else {
            Ok(())
        }
    }
}

impl Txn for EtcdTxn<'_> {
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(value) = self.writes.get(&(table, key.to_string())) {
            return Ok(value.clone());
        }
        let full = format!("{}{key}", self.store.table_prefix(table));
        let revision = self.revision;
        self.store.call(self.deadline, move |mut c| async move {
            let opts = GetOptions::new().with_revision(revision);
            let mut resp = c.get(full, Some(opts)).await?;
            Ok(resp.take_kvs().pop().map(|kv| kv.into_key_value().1))
        })
    }

    fn range(&mut self, table: Table, lo: &str, hi: &str) -> Result<Records, StoreError> {
        self.range_of(table, lo, Some(hi))
    }

    fn scan(&mut self, table: Table) -> Result<Records, StoreError> {
        self.range_of(table, "", None)
    }

    fn put(&mut self, table: Table, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.refuse_write(table)?;
        self.writes.insert((table, key.to_string()), Some(value));
        Ok(())
    }

    fn remove(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.refuse_write(table)?;
        let old = self.get(table, key)?;
        if old.is_some() {
            self.writes.insert((table, key.to_string()), None);
        }
        Ok(old)
    }
}

impl Backend for EtcdStore {
    fn view<T>(
        &self,
        mut f: impl FnMut(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.timeout;
        let (revision, _) = self.begin(deadline)?;
        let mut txn = EtcdTxn {
            store: self,
            deadline,
            revision,
            writes: BTreeMap::new(),
            read_only: true,
        };
        f(&mut txn).map_err(|e| self.locate(e))
    }

    fn update<T>(
        &self,
        mut f: impl FnMut(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.timeout;
        for _ in 0..MAX_TRIES {
            let (revision, guard_rev) = self.begin(deadline)?;
            let mut txn = EtcdTxn {
                store: self,
                deadline,
                revision,
                writes: BTreeMap::new(),
                read_only: false,
            };
            let value = f(&mut txn).map_err(|e| self.locate(e))?;
            if txn.writes.is_empty() || self.commit(deadline, guard_rev, txn.writes)? {
                return Ok(value);
            }
            // Another relay committed first; a short random pause keeps the same racers
            // from colliding in lockstep.
            std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 8));
        }
        Err(StoreError::Backend(
            format!("gave up after {MAX_TRIES} tries: other relays' changes kept conflicting")
                .into(),
        ))
    }

    /// Refused: in a fleet each relay claims its leases one name at a time with etcd
    /// transactions under `{prefix}leases/` (which [`crate::Store::leases`] lists), so no
    /// relay holds the whole set to save, and replacing it would drop other relays' claims.
    fn leases_kept_otherwise(&self) -> Option<StoreError> {
        Some(StoreError::LeasesClaimedPerName {
            prefix: self.prefix.clone(),
        })
    }
}
