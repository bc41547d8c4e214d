//! The small interface the operations are written over: a backend only keeps bytes under
//! string keys in a few tables and runs transactions, so every rule is written once, in
//! [`crate::ops`], whether the store is one relay's redb file or a fleet's etcd.

use crate::error::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;

/// The store's tables; each holds JSON records under string keys, except
/// [`Table::TokenIds`], whose values are plain token hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Accounts by name.
    Accounts,
    /// Token records keyed by the hex SHA-256 of their secret.
    Tokens,
    /// Token id → hash, for revoking by id.
    TokenIds,
    /// Keyed by the name's labels reversed (`com.example.*`), see [`crate::names::domain_key`].
    Domains,
    /// Reserved TCP addresses by `host:port`.
    Addrs,
    /// Keyed by `account net`, so one account's entries are one key range.
    Whitelist,
    /// SSH keys by fingerprint.
    SshKeys,
    /// Leases by what they hold (`host:NAME`, `port:N`).
    Leases,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 8] = [
        Table::Accounts,
        Table::Tokens,
        Table::TokenIds,
        Table::Domains,
        Table::Addrs,
        Table::Whitelist,
        Table::SshKeys,
        Table::Leases,
    ];

    /// The table's name: redb's table name and etcd's key segment, so both hold the same
    /// layout.
    pub fn name(self) -> &'static str {
        match self {
            Table::Accounts => "accounts",
            Table::Tokens => "tokens",
            Table::TokenIds => "token_ids",
            Table::Domains => "domains",
            Table::Addrs => "addrs",
            Table::Whitelist => "whitelist",
            Table::SshKeys => "ssh_keys",
            Table::Leases => "leases",
        }
    }
}

/// Keys and values as a backend stores them.
pub type Records = Vec<(String, Vec<u8>)>;

/// One transaction's view of the tables. Reads see the transaction's own writes; nothing is
/// visible to others before the backend commits.
pub trait Txn {
    /// The value at `key`.
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The records with `lo <= key < hi`, in key (byte) order.
    fn range(&mut self, table: Table, lo: &str, hi: &str) -> Result<Records, StoreError>;
    /// Every record of the table, in key order.
    fn scan(&mut self, table: Table) -> Result<Records, StoreError>;
    /// Sets the value at `key`.
    fn put(&mut self, table: Table, key: &str, value: Vec<u8>) -> Result<(), StoreError>;
    /// Removes the record at `key`, returning its value.
    fn remove(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A place the tables live in, running transactions over them.
///
/// A transaction body may run more than once (an optimistic backend retries it after a
/// conflict), so it must compute everything it writes from what it reads.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Runs `f` over one consistent snapshot; writes are refused.
    fn view<T>(
        &self,
        f: impl FnMut(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// Runs `f` and commits its writes atomically if it returns `Ok`, as if no other
    /// transaction ran concurrently; an `Err` leaves the store as it was.
    fn update<T>(
        &self,
        f: impl FnMut(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// Why every lease cannot be replaced at once here, for a backend whose leases are
    /// claimed one name at a time; `None` where [`crate::Store::save_leases`] may.
    fn leases_kept_otherwise(&self) -> Option<StoreError> {
        None
    }
}

/// A record that does not decode; the backend names where it lives (see
/// [`crate::redb_store`]'s `locate`).
pub fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: PathBuf::new(),
        detail: detail.into(),
    }
}

fn decode<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| corrupt(format!("{} record {key:?}: {e}", table.name())))
}

fn decode_all<T: DeserializeOwned>(
    table: Table,
    records: Records,
) -> Result<Vec<(String, T)>, StoreError> {
    records
        .into_iter()
        .map(|(key, bytes)| {
            let value = decode(table, &key, &bytes)?;
            Ok((key, value))
        })
        .collect()
}

/// The record at `key`, decoded.
pub fn get<T: DeserializeOwned>(
    txn: &mut dyn Txn,
    table: Table,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match txn.get(table, key)? {
        Some(bytes) => decode(table, key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Every record of a table, in key order, with its key.
pub fn scan<T: DeserializeOwned>(
    txn: &mut dyn Txn,
    table: Table,
) -> Result<Vec<(String, T)>, StoreError> {
    decode_all(table, txn.scan(table)?)
}

/// The records with `lo <= key < hi`, decoded.
pub fn range<T: DeserializeOwned>(
    txn: &mut dyn Txn,
    table: Table,
    lo: &str,
    hi: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    decode_all(table, txn.range(table, lo, hi)?)
}

/// Stores `value` as JSON at `key`.
pub fn put<T: Serialize>(
    txn: &mut dyn Txn,
    table: Table,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Backend(Box::new(e)))?;
    txn.put(table, key, bytes)
}

/// Removes the record at `key`, returning it decoded.
pub fn remove<T: DeserializeOwned>(
    txn: &mut dyn Txn,
    table: Table,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match txn.remove(table, key)? {
        Some(bytes) => decode(table, key, &bytes).map(Some),
        None => Ok(None),
    }
}
