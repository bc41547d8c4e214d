//! The relay for a team: who an agent is (its account, from its token), what it may bind
//! (reservations, regions, quotas) and who may reach its tunnels (the IP whitelist). The
//! store holds the truth; a snapshot of it in memory answers every connection without
//! touching the store. With no account at all the relay is open, as before.

pub mod live;

use burrow_store::{
    owner_of, wildcard_matches, Account, AddrReservation, DomainReservation, Store, StoreError,
    TokenInfo,
};
use ipnet::IpNet;
use live::Live;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock, RwLock, Weak};
use tracing::info;

/// Label of the tokens that come from `--auth-token` flags, so a token dropped from the
/// flags stops working at the next start.
const FLAG_LABEL: &str = "--auth-token";
/// Name prefix of the account each flag token gets.
const FLAG_ACCOUNT: &str = "token-";

/// Why the team rules refused something; the text goes to the agent or the operator.
#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    /// The store failed or refused the change.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The relay has accounts and the agent sent no token.
    #[error("this relay requires an auth token; pass one with --authtoken")]
    TokenMissing,
    /// The token is unknown or revoked.
    #[error("the auth token was not accepted by the relay")]
    TokenRefused,
    /// An SSH key no account registered, on a relay with accounts.
    #[error("the SSH key {fingerprint} is not registered with this relay; its operator can register it with: burrowd admin ssh-keys add ACCOUNT '{line}'")]
    KeyNotRegistered {
        /// The key's fingerprint.
        fingerprint: String,
        /// The key as an authorized_keys line, ready to paste.
        line: String,
    },
    /// An SSH key on a relay without accounts that was not told to take any key.
    #[error("this relay has no accounts and accepts no SSH key: its operator can create an account and register the key {fingerprint} with: burrowd admin ssh-keys add ACCOUNT '{line}' (or start burrowd with --ssh-allow-any-key)")]
    KeysNotAccepted {
        /// The key's fingerprint.
        fingerprint: String,
        /// The key as an authorized_keys line.
        line: String,
    },
    /// A name another account reserved (or that one of its wildcards covers).
    #[error("{0} is reserved by another account")]
    ReservedByOther(String),
    /// A wildcard that would cover a name another account reserved.
    #[error("{wildcard} would cover {name}, which is reserved by another account")]
    WouldCover {
        /// The wildcard asked for.
        wildcard: String,
        /// The other account's reservation it covers.
        name: String,
    },
    /// A reservation made for another region than this relay's.
    #[error("{name} is reserved in region {reserved}, but this relay serves region {relay}; connect to a relay of region {reserved}")]
    Region {
        /// The reserved name or address.
        name: String,
        /// The reservation's region.
        reserved: String,
        /// This relay's region.
        relay: String,
    },
    /// A tcp address nobody reserved.
    #[error("the tcp address {0} is not reserved; reserve it for your account first (burrowd admin addrs add)")]
    AddrNotReserved(String),
    /// A limit of the account reached.
    #[error("account {account} is at its limit of {limit} {what}")]
    Quota {
        /// The account.
        account: String,
        /// What is limited.
        what: &'static str,
        /// The limit.
        limit: u32,
    },
}

/// Who a session authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account.
    pub account: String,
    /// The token it used, by id; for the SSH gateway, the key's fingerprint.
    pub token_id: String,
}

/// The store's rules as the data path reads them.
#[derive(Debug, Default)]
struct Snapshot {
    accounts: HashMap<String, Account>,
    domains: Vec<DomainReservation>,
    addrs: Vec<AddrReservation>,
    whitelists: HashMap<String, Vec<IpNet>>,
}

/// Accounts, their rules, and the sessions connected now.
#[derive(Debug)]
pub struct Team {
    store: Arc<dyn Store>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// The sessions connected now.
    pub live: Live,
    /// This relay's region; `None` for the agent's own relay, which serves any.
    region: Option<String>,
    /// The other nodes of the fleet this relay is a node of: quotas count their sessions.
    elsewhere: OnceLock<Weak<dyn Elsewhere>>,
}

/// What accounts hold on the other nodes of a fleet, so that quotas count the whole fleet.
pub trait Elsewhere: Send + Sync {
    /// `account`'s sessions and tunnels on the other nodes, but those of agent `agent` (a
    /// lease owner): an agent that just moved here from a node still lists its old session
    /// there until that node publishes again or its lease lapses.
    fn usage_of(&self, account: &str, agent: &str) -> Usage;
}

/// Whom the names of agent `client_id` are kept for: per account, so another account's
/// agent cannot take them back by presenting the same client id.
pub fn lease_owner(account: Option<&str>, client_id: &str) -> String {
    match account {
        Some(a) => format!("{a}/{client_id}"),
        None => client_id.to_string(),
    }
}

/// An account's sessions and tunnels.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Agent sessions (SSH connections included).
    pub sessions: usize,
    /// Tunnels across them.
    pub tunnels: usize,
    /// How many of those tunnels are tcp.
    pub tcp: usize,
}

impl Team {
    /// Opens the team over `store`: each of `flag_tokens` becomes (or stays) an account
    /// of its own, and flag tokens no longer given are revoked.
    pub fn open(
        store: Arc<dyn Store>,
        flag_tokens: &[String],
        region: Option<String>,
    ) -> Result<Self, TeamError> {
        let team = Team {
            store,
            snapshot: RwLock::new(Arc::default()),
            live: Live::default(),
            region,
            elsewhere: OnceLock::new(),
        };
        team.seed_flag_tokens(flag_tokens)?;
        team.reload()?;
        Ok(team)
    }

    fn seed_flag_tokens(&self, tokens: &[String]) -> Result<(), TeamError> {
        let mut kept = Vec::new();
        for secret in tokens {
            let digest = Sha256::digest(secret.as_bytes());
            let name = format!(
                "{FLAG_ACCOUNT}{:02x}{:02x}{:02x}{:02x}",
                digest[0], digest[1], digest[2], digest[3]
            );
            if self.store.account(&name)?.is_none() {
                self.store.create_account(&name)?;
            }
            kept.push(self.store.add_token(&name, FLAG_LABEL, secret)?.id);
        }
        for t in self.store.tokens(None)? {
            if t.label == FLAG_LABEL && t.account.starts_with(FLAG_ACCOUNT) && !kept.contains(&t.id)
            {
                info!(account = %t.account, token = %t.id, "auth token no longer given by a flag; revoked");
                self.store.revoke_token(&t.id)?;
            }
        }
        Ok(())
    }

    /// The store, for the admin API.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Reads the rules again after a change (the admin API calls it after each).
    pub fn reload(&self) -> Result<(), TeamError> {
        let mut whitelists: HashMap<String, Vec<IpNet>> = HashMap::new();
        for e in self.store.whitelist(None)? {
            whitelists.entry(e.account).or_default().push(e.net);
        }
        let snap = Snapshot {
            accounts: self
                .store
                .accounts()?
                .into_iter()
                .map(|a| (a.name.clone(), a))
                .collect(),
            domains: self.store.domains(None)?,
            addrs: self.store.addrs(None)?,
            whitelists,
        };
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snap);
        Ok(())
    }

    /// Ends the sessions whose account, token or SSH key is gone from the store: what
    /// revoking does on the node where it happens, done on the others of a fleet when they
    /// see the change. Answers how many ended.
    pub fn end_orphans(&self) -> Result<usize, TeamError> {
        let snap = self.snap();
        let mut held: std::collections::HashSet<String> =
            self.store.tokens(None)?.into_iter().map(|t| t.id).collect();
        held.extend(
            self.store
                .ssh_keys(None)?
                .into_iter()
                .map(|k| k.fingerprint),
        );
        let why = "its token, key or account was removed on another node of the fleet";
        Ok(self
            .live
            .kick_where(why, |s| match (&s.account, &s.token_id) {
                (Some(a), Some(t)) => !snap.accounts.contains_key(a) || !held.contains(t),
                _ => false,
            }))
    }

    fn snap(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether any account exists: without one the relay is open to every agent.
    pub fn enabled(&self) -> bool {
        !self.snap().accounts.is_empty()
    }

    /// Who `token` belongs to: `None` on an open relay; refused when the relay has
    /// accounts and the token is missing or unknown, or its account has all the agent
    /// sessions it may have.
    pub fn authenticate(
        &self,
        token: Option<&str>,
        client_id: &str,
    ) -> Result<Option<Principal>, TeamError> {
        if !self.enabled() {
            return Ok(None);
        }
        let secret = token.ok_or(TeamError::TokenMissing)?;
        let info = self
            .store
            .authenticate(secret)?
            .ok_or(TeamError::TokenRefused)?;
        self.check_sessions(&info.account, client_id)?;
        Ok(Some(Principal {
            account: info.account,
            token_id: info.id,
        }))
    }

    /// Who the SSH key `line` (fingerprint `fingerprint`) belongs to, for the SSH gateway:
    /// its account on a relay with accounts, nobody on an open relay that takes any key;
    /// refused otherwise, or when the account has all the sessions it may have.
    pub fn authenticate_key(
        &self,
        fingerprint: &str,
        line: &str,
        allow_any: bool,
        client_id: &str,
    ) -> Result<Option<Principal>, TeamError> {
        if !self.enabled() {
            if allow_any {
                return Ok(None);
            }
            return Err(TeamError::KeysNotAccepted {
                fingerprint: fingerprint.into(),
                line: line.into(),
            });
        }
        let key = self.store.account_for_key(fingerprint)?.ok_or_else(|| {
            TeamError::KeyNotRegistered {
                fingerprint: fingerprint.into(),
                line: line.into(),
            }
        })?;
        self.check_sessions(&key.account, client_id)?;
        Ok(Some(Principal {
            account: key.account,
            token_id: key.fingerprint,
        }))
    }

    /// Counts what `elsewhere` reports in every quota from now on (set once, by a node
    /// joining its fleet; held weakly, as the fleet holds the team).
    pub fn count_elsewhere(&self, elsewhere: Weak<dyn Elsewhere>) {
        let _ = self.elsewhere.set(elsewhere);
    }

    fn usage_elsewhere(&self, account: &str, agent: &str) -> Usage {
        self.elsewhere
            .get()
            .and_then(Weak::upgrade)
            .map(|e| e.usage_of(account, agent))
            .unwrap_or_default()
    }

    fn check_sessions(&self, account: &str, client_id: &str) -> Result<(), TeamError> {
        let limit = self.quotas(account).sessions;
        let agent = lease_owner(Some(account), client_id);
        let elsewhere = self.usage_elsewhere(account, &agent).sessions;
        let sessions = self.live.sessions_of(account) + elsewhere;
        if sessions >= limit as usize {
            return Err(TeamError::Quota {
                account: account.to_string(),
                what: "agent sessions",
                limit,
            });
        }
        Ok(())
    }

    fn quotas(&self, account: &str) -> burrow_store::Quotas {
        self.snap()
            .accounts
            .get(account)
            .map(|a| a.quotas)
            .unwrap_or_default()
    }

    /// Whether `who` may have one more tunnel (`tcp`: one more tcp port as well), bound by
    /// its agent `agent` (a lease owner).
    pub fn check_quota(
        &self,
        who: Option<&Principal>,
        agent: &str,
        tcp: bool,
    ) -> Result<(), TeamError> {
        let Some(who) = who else { return Ok(()) };
        let q = self.quotas(&who.account);
        let (here, here_tcp) = self.live.tunnels_of(&who.account);
        let there = self.usage_elsewhere(&who.account, agent);
        let (tunnels, ports) = (here + there.tunnels, here_tcp + there.tcp);
        let over = |what, limit: u32| TeamError::Quota {
            account: who.account.clone(),
            what,
            limit,
        };
        if tunnels >= q.tunnels as usize {
            return Err(over("tunnels", q.tunnels));
        }
        if tcp && ports >= q.tcp_ports as usize {
            return Err(over("tcp ports", q.tcp_ports));
        }
        Ok(())
    }

    fn region_ok(&self, name: &str, reserved: &str) -> Result<(), TeamError> {
        match &self.region {
            Some(relay) if relay != reserved => Err(TeamError::Region {
                name: name.to_string(),
                reserved: reserved.to_string(),
                relay: relay.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether `who` may bind `host` (a name or a wildcard): not when another account
    /// reserved it or a wildcard over it, nor a wildcard over another account's name, nor
    /// a reservation of another region.
    pub fn check_host(&self, who: Option<&Principal>, host: &str) -> Result<(), TeamError> {
        let snap = self.snap();
        let mine = |account: &str| who.is_some_and(|w| w.account == account);
        if let Some(owner) = owner_of(&snap.domains, host) {
            if !mine(&owner.account) {
                return Err(TeamError::ReservedByOther(host.to_string()));
            }
            self.region_ok(&owner.name, &owner.region)?;
        }
        if host.starts_with("*.") {
            let covered = snap.domains.iter().find(|d| {
                !mine(&d.account) && wildcard_matches(host, d.name.trim_start_matches("*."))
            });
            if let Some(d) = covered {
                return Err(TeamError::WouldCover {
                    wildcard: host.to_string(),
                    name: d.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Whether `who` may listen on the tcp address it asked for (`remote_addr`, or just a
    /// port): with accounts, only on an address its account reserved.
    pub fn check_addr(
        &self,
        who: Option<&Principal>,
        remote_addr: Option<&str>,
        port: Option<u16>,
    ) -> Result<(), TeamError> {
        let Some(port) = port else { return Ok(()) };
        let snap = self.snap();
        let asked = remote_addr.map_or_else(|| port.to_string(), str::to_string);
        let host = remote_addr
            .and_then(|a| a.rsplit_once(':'))
            .map(|(h, _)| h.trim_matches(['[', ']']).to_ascii_lowercase());
        let reserved = snap
            .addrs
            .iter()
            .find(|a| a.port == port && host.as_deref().is_none_or(|h| h == a.host));
        match (reserved, who) {
            (Some(r), Some(w)) if r.account == w.account => self.region_ok(&r.addr, &r.region),
            (Some(_), _) => Err(TeamError::ReservedByOther(format!("tcp address {asked}"))),
            (None, Some(_)) => Err(TeamError::AddrNotReserved(asked)),
            // An open relay hands out ports as before.
            (None, None) => Ok(()),
        }
    }

    /// Whether a random port may be handed out: not one an account reserved.
    pub fn port_reserved(&self, port: u16) -> bool {
        self.snap().addrs.iter().any(|a| a.port == port)
    }

    /// Whether a visitor from `ip` may reach the tunnels of `account` (an empty whitelist,
    /// or no account, lets everyone in).
    pub fn allowed(&self, account: Option<&str>, ip: IpAddr) -> bool {
        let Some(account) = account else { return true };
        match self.snap().whitelists.get(account) {
            Some(nets) => burrow_store::allowed(nets, ip),
            None => true,
        }
    }

    /// Revokes a token and ends the sessions that used it; returns the token and how many
    /// sessions ended.
    pub fn revoke(&self, token_id: &str) -> Result<(TokenInfo, usize), TeamError> {
        let info = self.store.revoke_token(token_id)?;
        let kicked = self
            .live
            .kick_where("the auth token of this session was revoked", |s| {
                s.token_id.as_deref() == Some(token_id)
            });
        Ok((info, kicked))
    }

    /// Deletes an account with everything it owns and ends its sessions.
    pub fn delete_account(&self, name: &str) -> Result<usize, TeamError> {
        self.store.delete_account(name)?;
        self.reload()?;
        Ok(self
            .live
            .kick_where("the account of this session was deleted", |s| {
                s.account.as_deref() == Some(name)
            }))
    }
}
