//! The leases that keep a session identity's public names and ports across reconnects and
//! relay restarts: held in memory, saved to the store off the callers' threads.

use burrow_store::{LeaseRecord, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A name or port a lease can hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseKey {
    /// A public hostname.
    Host(String),
    /// A public TCP port.
    Port(u16),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    client_id: String,
    /// The session holding it now, so a late cleanup of an older session leaves it be.
    #[serde(default)]
    holder: u64,
    /// Seconds since the epoch when the lease lapses; `None` while a session holds it.
    expires: Option<u64>,
}

/// The writer thread and what wakes it.
type Writer = (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>);

/// Leases, saved to the store.
#[derive(Debug)]
pub struct Registry {
    leases: Arc<Mutex<HashMap<String, Lease>>>,
    store: Arc<dyn Store>,
    grace: Duration,
    /// Wakes the writer thread; saving happens off the callers' threads, coalesced.
    dirty: Mutex<Option<Writer>>,
}

/// Writes the lease map to the store, in one transaction.
fn save(store: &dyn Store, leases: &HashMap<String, Lease>) {
    let records: Vec<LeaseRecord> = leases
        .iter()
        .map(|(key, l)| LeaseRecord {
            key: key.clone(),
            client_id: l.client_id.clone(),
            holder: l.holder,
            expires: l.expires,
        })
        .collect();
    if let Err(err) = store.save_leases(&records) {
        tracing::warn!(%err, "cannot save leases");
    }
}

/// Seconds since the epoch: what leases and session start times are kept in.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The key's text form, as the store and the fleet keep it: `host:NAME` or `port:N`.
pub fn key_str(key: &LeaseKey) -> String {
    match key {
        LeaseKey::Host(h) => format!("host:{h}"),
        LeaseKey::Port(p) => format!("port:{p}"),
    }
}

/// The key a [`key_str`] text names.
pub fn parse_key(text: &str) -> Option<LeaseKey> {
    match text.split_once(':')? {
        ("host", h) => Some(LeaseKey::Host(h.to_string())),
        ("port", p) => Some(LeaseKey::Port(p.parse().ok()?)),
        _ => None,
    }
}

/// How a claimed name is said in a refusal.
pub fn describe(key: &LeaseKey) -> String {
    match key {
        LeaseKey::Host(h) => format!("hostname {h}"),
        LeaseKey::Port(p) => format!("port {p}"),
    }
}

/// Why a claim was refused.
#[derive(Debug)]
pub enum ClaimError {
    /// Someone else holds it: the name, and for how many more seconds a departed agent's
    /// lease keeps it (none while its session is connected).
    Taken(String, Option<u64>),
    /// The shared state of a fleet cannot be reached, so nothing new can be claimed.
    Unavailable(String),
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaimError::Taken(name, None) => {
                write!(f, "{name} is already in use by another session")
            }
            ClaimError::Taken(name, Some(left)) => write!(
                f,
                "{name} is already in use: reserved for the agent that held it, which \
                 disconnected (free in {left} s unless it comes back)"
            ),
            ClaimError::Unavailable(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ClaimError {}

/// Who holds which public name or port, and for how long a departed agent keeps them: one
/// relay's own map ([`Registry`]), or a fleet's, shared through etcd.
pub trait Leases: Send + Sync + std::fmt::Debug {
    /// Whether `key` is free for `client_id` (free, lapsed, or already its own).
    fn is_free_for(&self, key: &LeaseKey, client_id: &str) -> bool;
    /// Seconds left on the lease of a departed session holding `key`, if one does.
    fn held_for(&self, key: &LeaseKey) -> Option<u64>;
    /// What `client_id` held when its last session left and still keeps in its grace
    /// period, oldest first: what it gets back when it asks for no name in particular.
    fn departed_of(&self, client_id: &str) -> Vec<LeaseKey>;
    /// Claims `key` for a live session of `client_id`.
    fn claim(&self, key: &LeaseKey, client_id: &str, session: u64) -> Result<(), ClaimError>;
    /// Starts the grace period of `key` after its session ended.
    fn release(&self, key: &LeaseKey, client_id: &str, session: u64);
    /// Drops `key` at once (an explicit unbind gives the name back).
    fn forget(&self, key: &LeaseKey, client_id: &str);
    /// Writes what is pending now (at shutdown, so a restart finds it).
    fn flush(&self);
}

impl Registry {
    /// Opens the registry over the leases in `store`; a lease whose session was still
    /// connected when the relay stopped gets a fresh grace period, since its agent may be
    /// reconnecting to this (restarted) relay.
    pub fn open(store: Arc<dyn Store>, grace: Duration) -> Result<Self, StoreError> {
        let mut leases: HashMap<String, Lease> = store
            .leases()?
            .into_iter()
            .map(|r| {
                let lease = Lease {
                    client_id: r.client_id,
                    holder: r.holder,
                    expires: r.expires,
                };
                (r.key, lease)
            })
            .collect();
        // A lease keeps the time it had left: a restart gives a fresh grace period only to
        // names whose sessions were still connected (the relay did not stop cleanly).
        let now = now_secs();
        let until = now + grace.as_secs();
        for l in leases.values_mut() {
            l.expires = Some(l.expires.unwrap_or(until));
        }
        leases.retain(|_, l| l.expires.is_some_and(|e| e > now));
        let leases = Arc::new(Mutex::new(leases));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (shared, writer) = (leases.clone(), store.clone());
        let writer = std::thread::Builder::new()
            .name("burrowd-leases".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // Coalesce a burst of changes (1,000 binds) into one write.
                    std::thread::sleep(Duration::from_millis(50));
                    while rx.try_recv().is_ok() {}
                    let snapshot = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    save(writer.as_ref(), &snapshot);
                }
            })
            .expect("spawn lease writer");
        let reg = Registry {
            leases,
            store,
            grace,
            dirty: Mutex::new(Some((tx, writer))),
        };
        reg.flush();
        Ok(reg)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(&self, _leases: &HashMap<String, Lease>) {
        let dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((tx, _)) = dirty.as_ref() {
            let _ = tx.send(());
        }
    }
}

impl Leases for Registry {
    /// Whether `key` is free for `client_id` (free, lapsed, or already its own).
    fn is_free_for(&self, key: &LeaseKey, client_id: &str) -> bool {
        let leases = self.lock();
        match leases.get(&key_str(key)) {
            None => true,
            Some(l) => l.client_id == client_id || l.expires.is_some_and(|e| e <= now_secs()),
        }
    }

    /// Seconds left on the lease of a departed session holding `key`, if one does.
    fn held_for(&self, key: &LeaseKey) -> Option<u64> {
        let now = now_secs();
        let leases = self.lock();
        let e = leases.get(&key_str(key))?.expires?;
        (e > now).then(|| e - now)
    }

    /// What `client_id` held when its last session left and still keeps in its grace
    /// period, oldest name first: what it gets back when it asks for no name in particular.
    fn departed_of(&self, client_id: &str) -> Vec<LeaseKey> {
        let now = now_secs();
        let leases = self.lock();
        let mut held: Vec<_> = leases
            .iter()
            .filter(|(_, l)| l.client_id == client_id && l.expires.is_some_and(|e| e > now))
            .filter_map(|(k, l)| Some((l.expires, parse_key(k)?)))
            .collect();
        held.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| key_str(&a.1).cmp(&key_str(&b.1)))
        });
        held.into_iter().map(|(_, k)| k).collect()
    }

    /// Claims `key` for a live session of `client_id`.
    fn claim(&self, key: &LeaseKey, client_id: &str, session: u64) -> Result<(), ClaimError> {
        let mut leases = self.lock();
        let k = key_str(key);
        if let Some(l) = leases.get(&k) {
            let lapsed = l.expires.is_some_and(|e| e <= now_secs());
            if l.client_id != client_id && !lapsed {
                let left = l.expires.map(|e| e.saturating_sub(now_secs()));
                return Err(ClaimError::Taken(describe(key), left));
            }
        }
        leases.insert(
            k,
            Lease {
                client_id: client_id.to_string(),
                holder: session,
                expires: None,
            },
        );
        leases.retain(|_, l| l.expires.is_none_or(|e| e > now_secs()));
        self.persist(&leases);
        Ok(())
    }

    /// Starts the grace period of `key` after its session ended.
    fn release(&self, key: &LeaseKey, client_id: &str, session: u64) {
        let mut leases = self.lock();
        if let Some(l) = leases.get_mut(&key_str(key)) {
            if l.client_id == client_id && l.holder == session {
                l.expires = Some(now_secs() + self.grace.as_secs());
            }
        }
        self.persist(&leases);
    }

    /// Drops `key` at once (an explicit unbind gives the name back).
    fn forget(&self, key: &LeaseKey, client_id: &str) {
        let mut leases = self.lock();
        let k = key_str(key);
        if leases.get(&k).is_some_and(|l| l.client_id == client_id) {
            leases.remove(&k);
            self.persist(&leases);
        }
    }

    /// Writes the leases now (at shutdown, so a restart finds them).
    fn flush(&self) {
        save(self.store.as_ref(), &self.lock());
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // The writer holds the store open: it ends before the registry does, so the store
        // file is free again (a relay started anew in the same process opens it).
        let writer = self.dirty.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((tx, thread)) = writer {
            drop(tx);
            let _ = thread.join();
        }
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path, grace: u64) -> Registry {
        let store = Arc::new(burrow_store::open(Some(dir)).expect("store"));
        Registry::open(store, Duration::from_secs(grace)).expect("registry")
    }

    #[test]
    fn a_restart_keeps_a_held_lease_s_remaining_time() {
        let dir = std::env::temp_dir().join(format!("burrow-reg-{}", rand::random::<u64>()));
        let held = LeaseKey::Host("held.localhost".into());
        let live = LeaseKey::Host("live.localhost".into());
        {
            let r = open(&dir, 3);
            r.claim(&held, "one", 1).unwrap();
            r.claim(&live, "two", 2).unwrap();
            r.release(&held, "one", 1);
            assert!(r.held_for(&held).is_some_and(|s| s <= 3));
            // The relay dies with "two" still connected: no release.
            r.flush();
        }
        let r = open(&dir, 300);
        let left = r.held_for(&held).expect("still held");
        assert!(left <= 3, "a restart extended the lease to {left} s");
        let fresh = r
            .held_for(&live)
            .expect("held for the agent that was connected");
        assert!(fresh > 290, "{fresh}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn leases_hold_names_for_their_owner_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("burrow-reg-{}", rand::random::<u64>()));
        let key = LeaseKey::Host("abc.localhost".into());
        {
            let r = open(&dir, 300);
            r.claim(&key, "one", 1).unwrap();
            let held = r.claim(&key, "two", 2).unwrap_err().to_string();
            assert!(held.contains("in use by another session"), "{held}");
            r.release(&key, "one", 1);
            let reserved = r.claim(&key, "two", 2).unwrap_err().to_string();
            assert!(
                reserved.contains("disconnected") && reserved.contains("free in"),
                "{reserved}"
            );
        }
        let r = open(&dir, 300);
        assert!(r.claim(&key, "two", 3).is_err());
        r.claim(&key, "one", 4).unwrap();
        r.forget(&key, "one");
        r.claim(&key, "two", 5).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn departed_names_are_listed_for_their_owner_only_while_in_grace() {
        let store = Arc::new(burrow_store::open(None).expect("store"));
        let r = Registry::open(store, Duration::from_secs(300)).expect("registry");
        let (host, port) = (LeaseKey::Host("a.localhost".into()), LeaseKey::Port(10022));
        r.claim(&host, "ssh:key", 1).unwrap();
        r.claim(&port, "ssh:key", 1).unwrap();
        r.claim(&LeaseKey::Host("b.localhost".into()), "other", 2)
            .unwrap();
        // Still connected: nothing to hand back.
        assert!(r.departed_of("ssh:key").is_empty());
        r.release(&host, "ssh:key", 1);
        r.release(&port, "ssh:key", 1);
        let mut got = r.departed_of("ssh:key");
        got.sort_by_key(|k| format!("{k:?}"));
        assert_eq!(got, vec![host.clone(), port]);
        r.claim(&host, "ssh:key", 3).unwrap();
        assert_eq!(r.departed_of("ssh:key"), vec![LeaseKey::Port(10022)]);
        assert!(r.departed_of("other").is_empty());
    }
}
