//! burrowd's store for a team relay: accounts, auth tokens, reserved domains and TCP
//! addresses, IP whitelists, SSH keys and session leases, each change one ACID transaction,
//! in a redb file for one relay or, with the `etcd` feature, in etcd for a fleet of relays.
#![forbid(unsafe_code)]

mod backend;
pub mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod model;
pub mod names;
pub mod net;
mod ops;
mod redb_store;
mod rules;
pub mod ssh;
pub mod token;

pub use error::{DomainProblem, StoreError};
pub use model::{
    Account, AddrReservation, DomainReservation, IssuedToken, LeaseRecord, Quotas, SshKey,
    TokenInfo, WhitelistEntry,
};
pub use names::{owner_of, wildcard_matches};
pub use net::allowed;
pub use redb_store::{open, RedbStore, SCHEMA_VERSION, STORE_FILE};

/// Everything the relay keeps for its accounts, implemented by [`RedbStore`] for one relay
/// and, with the `etcd` feature, by `etcd::EtcdStore` for a fleet; both run the same
/// operations, so the rules are the same.
///
/// Every change is one transaction that checks the rules and writes, so a refused change
/// leaves the store as it was. Listings taking `account` return everything for `None`.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Creates an account with the default quotas.
    fn create_account(&self, name: &str) -> Result<Account, StoreError>;
    /// The account named `name`, if there is one.
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError>;
    /// Every account, by name.
    fn accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Replaces an account's quotas.
    fn set_quotas(&self, account: &str, quotas: Quotas) -> Result<Account, StoreError>;
    /// Removes the account and everything it owns (tokens, reservations, whitelist, ssh keys) in one transaction.
    fn delete_account(&self, name: &str) -> Result<(), StoreError>;

    /// A new random secret (shown once to the caller) for `account`.
    fn issue_token(&self, account: &str, label: &str) -> Result<IssuedToken, StoreError>;
    /// Registers a secret chosen elsewhere (the relay's --auth-token flags); idempotent for the same secret and account.
    fn add_token(&self, account: &str, label: &str, secret: &str) -> Result<TokenInfo, StoreError>;
    /// The tokens of `account`, or all.
    fn tokens(&self, account: Option<&str>) -> Result<Vec<TokenInfo>, StoreError>;
    /// Removes a token by id; its secret stops authenticating at once.
    fn revoke_token(&self, id: &str) -> Result<TokenInfo, StoreError>;
    /// The token a secret belongs to (hash lookup, then a constant-time comparison of the hashes).
    fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>, StoreError>;

    /// Reserves a hostname or wildcard; reserving it again in the same region is a no-op.
    fn reserve_domain(
        &self,
        account: &str,
        name: &str,
        region: &str,
    ) -> Result<DomainReservation, StoreError>;
    /// Gives a reserved name back.
    fn release_domain(&self, name: &str) -> Result<DomainReservation, StoreError>;
    /// The reserved names of `account`, or all, ordered by domain (a parent before its children).
    fn domains(&self, account: Option<&str>) -> Result<Vec<DomainReservation>, StoreError>;

    /// Reserves a TCP address `host:port`; reserving it again in the same region is a no-op.
    fn reserve_addr(
        &self,
        account: &str,
        addr: &str,
        region: &str,
    ) -> Result<AddrReservation, StoreError>;
    /// Gives a reserved address back.
    fn release_addr(&self, addr: &str) -> Result<AddrReservation, StoreError>;
    /// The reserved addresses of `account`, or all.
    fn addrs(&self, account: Option<&str>) -> Result<Vec<AddrReservation>, StoreError>;

    /// Adds an address or CIDR block to an account's whitelist; adding it again is a no-op.
    fn allow(&self, account: &str, entry: &str) -> Result<WhitelistEntry, StoreError>;
    /// Removes an address or CIDR block from an account's whitelist.
    fn disallow(&self, account: &str, entry: &str) -> Result<(), StoreError>;
    /// The whitelist entries of `account`, or all.
    fn whitelist(&self, account: Option<&str>) -> Result<Vec<WhitelistEntry>, StoreError>;

    /// Adds an authorized_keys line to an account; adding it again is a no-op.
    fn add_ssh_key(&self, account: &str, line: &str) -> Result<SshKey, StoreError>;
    /// Removes a key by fingerprint.
    fn remove_ssh_key(&self, fingerprint: &str) -> Result<SshKey, StoreError>;
    /// The SSH keys of `account`, or all.
    fn ssh_keys(&self, account: Option<&str>) -> Result<Vec<SshKey>, StoreError>;
    /// The key with this fingerprint, and so its account.
    fn account_for_key(&self, fingerprint: &str) -> Result<Option<SshKey>, StoreError>;

    /// Every lease, by key.
    fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError>;
    /// Replaces every lease in one transaction (the relay keeps them in memory and writes a snapshot, coalesced).
    fn save_leases(&self, leases: &[LeaseRecord]) -> Result<(), StoreError>;
}
