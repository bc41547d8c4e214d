//! The store on redb: opening the file, the schema and its version, importing the old
//! leases.json, and the transaction helpers the operations are written with.

mod ops;
mod rules;

use crate::error::StoreError;
use crate::model::LeaseRecord;
use redb::backends::InMemoryBackend;
use redb::{
    DatabaseError, ReadTransaction, ReadableTable, StorageError, Table, TableDefinition,
    TableError, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The store's file name in the state directory.
pub const STORE_FILE: &str = "burrowd.redb";
/// The schema this build writes and the newest it can read.
pub const SCHEMA_VERSION: u64 = 1;

/// The leases file of relays before the store, imported once.
const LEASES_FILE: &str = "leases.json";
/// What leases.json becomes after the import: still there for a downgrade, never imported twice.
const LEASES_MIGRATED: &str = "leases.json.migrated";
/// Enough for a team relay's records; redb's default would let the cache grow to 1 GiB.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

type Json = TableDefinition<'static, &'static str, &'static [u8]>;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ACCOUNTS: Json = TableDefinition::new("accounts");
/// Token records keyed by the hex SHA-256 of their secret.
const TOKENS: Json = TableDefinition::new("tokens");
/// Token id → hash, for revoking by id.
const TOKEN_IDS: TableDefinition<&str, &str> = TableDefinition::new("token_ids");
/// Keyed by the name's labels reversed (`com.example.*`), see [`crate::names::domain_key`].
const DOMAINS: Json = TableDefinition::new("domains");
const ADDRS: Json = TableDefinition::new("addrs");
/// Keyed by `account net`, so one account's entries are one key range.
const WHITELIST: Json = TableDefinition::new("whitelist");
/// Keyed by fingerprint.
const SSH_KEYS: Json = TableDefinition::new("ssh_keys");
const LEASES: Json = TableDefinition::new("leases");

/// The store kept in one redb file (or in memory), every change one write transaction.
#[derive(Debug)]
pub struct RedbStore {
    db: redb::Database,
    /// The file, for error messages; `(memory)` without one.
    path: PathBuf,
}

/// A lease as leases.json and the leases table hold it: the key is the map's.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    client_id: String,
    #[serde(default)]
    holder: u64,
    expires: Option<u64>,
}

/// A token as stored: its info and the hash it is keyed by, compared in constant time.
#[derive(Debug, Serialize, Deserialize)]
struct StoredToken {
    hash: String,
    info: crate::model::TokenInfo,
}

/// Opens the store in `<state_dir>/burrowd.redb`, creating the directory and the file if
/// missing, or in memory without a state directory. A new store imports `leases.json` from
/// the state directory if one is there.
pub fn open(state_dir: Option<&Path>) -> Result<RedbStore, StoreError> {
    let mut builder = redb::Builder::new();
    // The v3 format is the one later redb releases read without a manual upgrade.
    builder
        .create_with_file_format_v3(true)
        .set_cache_size(CACHE_BYTES);
    let Some(dir) = state_dir else {
        let db = builder
            .create_with_backend(InMemoryBackend::new())
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        return RedbStore::init(db, PathBuf::from("(memory)"), None);
    };
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        path: dir.into(),
        source,
    })?;
    let path = dir.join(STORE_FILE);
    let db = builder.create(&path).map_err(|e| open_error(&path, e))?;
    RedbStore::init(db, path, Some(dir))
}

/// Sorts out why redb would not open the file; it never writes to a file it does not recognise.
fn open_error(path: &Path, err: DatabaseError) -> StoreError {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.into(),
        detail,
    };
    match err {
        DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: path.into() },
        DatabaseError::UpgradeRequired(v) => {
            corrupt(format!("redb file format {v} needs a manual upgrade"))
        }
        DatabaseError::Storage(StorageError::Corrupted(detail)) => corrupt(detail),
        // redb's answer to a file that does not start with its magic number.
        DatabaseError::Storage(StorageError::Io(e))
            if e.kind() == std::io::ErrorKind::InvalidData =>
        {
            corrupt("not a redb database".into())
        }
        DatabaseError::Storage(StorageError::Io(source)) => StoreError::Io {
            path: path.into(),
            source,
        },
        other => StoreError::Backend(Box::new(other)),
    }
}

impl RedbStore {
    fn init(db: redb::Database, path: PathBuf, dir: Option<&Path>) -> Result<Self, StoreError> {
        let store = RedbStore { db, path };
        match store.schema_version()? {
            Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerVersion {
                found,
                supported: SCHEMA_VERSION,
                path: store.path,
            }),
            Some(0) => Err(store.corrupt("schema version 0")),
            Some(_) => Ok(store),
            None => {
                store.create_schema(dir)?;
                Ok(store)
            }
        }
    }

    /// The file this store lives in, or `(memory)`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version in the file; `None` for a new, empty database.
    fn schema_version(&self) -> Result<Option<u64>, StoreError> {
        self.read(|txn| {
            let meta = match txn.open_table(META) {
                Ok(meta) => meta,
                Err(TableError::TableDoesNotExist(_)) => {
                    // Tables without our meta table: some other program's redb file.
                    return if txn.list_tables().db()?.next().is_some() {
                        Err(corrupt("no schema version: not a burrowd store"))
                    } else {
                        Ok(None)
                    };
                }
                Err(e) => return Err(e).db(),
            };
            let version = meta.get("schema_version").db()?.map(|v| v.value());
            version
                .map(Some)
                .ok_or_else(|| corrupt("the meta table holds no schema version"))
        })
    }

    /// Creates every table and imports leases.json, in one transaction: a store either has its
    /// schema and the old leases, or neither.
    fn create_schema(&self, dir: Option<&Path>) -> Result<(), StoreError> {
        let legacy = dir.map(|d| d.join(LEASES_FILE));
        let imported = match &legacy {
            Some(path) => read_legacy_leases(path)?,
            None => None,
        };
        self.write(|txn| {
            for def in [ACCOUNTS, TOKENS, DOMAINS, ADDRS, WHITELIST, SSH_KEYS] {
                txn.open_table(def).db()?;
            }
            txn.open_table(TOKEN_IDS).db()?;
            let mut leases = txn.open_table(LEASES).db()?;
            for (key, lease) in imported.iter().flatten() {
                put(&mut leases, key, lease)?;
            }
            txn.open_table(META)
                .db()?
                .insert("schema_version", SCHEMA_VERSION)
                .db()?;
            Ok(())
        })?;
        if let (Some(path), Some(_)) = (legacy, imported) {
            let to = path.with_file_name(LEASES_MIGRATED);
            std::fs::rename(&path, &to).map_err(|source| StoreError::Io { path, source })?;
        }
        Ok(())
    }

    /// Runs `f` in a read transaction.
    fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().db().map_err(|e| self.locate(e))?;
        f(&txn).map_err(|e| self.locate(e))
    }

    /// Runs `f` in a write transaction, committed if it succeeds and aborted if not, so a
    /// refused change leaves nothing behind.
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let run = || {
            let txn = self.db.begin_write().db()?;
            match f(&txn) {
                Ok(value) => {
                    txn.commit().db()?;
                    Ok(value)
                }
                Err(e) => {
                    // The refusal is what the caller needs to see; a failed abort leaves
                    // redb refusing the next transaction, which reports it then.
                    let _ = txn.abort();
                    Err(e)
                }
            }
        };
        run().map_err(|e| self.locate(e))
    }

    /// Names this store's file in a corruption found below the transaction helpers.
    fn locate(&self, err: StoreError) -> StoreError {
        match err {
            StoreError::Corrupt { path, detail } if path.as_os_str().is_empty() => {
                self.corrupt(detail)
            }
            other => other,
        }
    }

    fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }
}

/// Reads the old leases file; a missing file is nothing to import, an unreadable one an error.
fn read_legacy_leases(path: &Path) -> Result<Option<BTreeMap<String, Lease>>, StoreError> {
    let bad = |detail: String| StoreError::Leases {
        path: path.into(),
        detail,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| bad(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// A corruption whose file [`RedbStore::locate`] fills in.
fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: PathBuf::new(),
        detail: detail.into(),
    }
}

/// redb's errors as the store's.
trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> Db<T> for Result<T, E> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| match e.into() {
            redb::Error::Corrupted(detail) => corrupt(detail),
            other => StoreError::Backend(Box::new(other)),
        })
    }
}

fn decode<T: DeserializeOwned>(table: &str, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(format!("{table} record {key:?}: {e}")))
}

/// The record at `key`, decoded.
fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key).db()? {
        Some(v) => decode(name, key, v.value()).map(Some),
        None => Ok(None),
    }
}

/// Every record of a table, in key order, with its key.
fn scan<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    collect(table.iter().db()?, name)
}

fn collect<T: DeserializeOwned>(
    range: redb::Range<'_, &'static str, &'static [u8]>,
    name: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    range
        .map(|item| {
            let (k, v) = item.db()?;
            let key = k.value().to_string();
            let value = decode(name, &key, v.value())?;
            Ok((key, value))
        })
        .collect()
}

fn put<T: Serialize>(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Backend(Box::new(e)))?;
    table.insert(key, bytes.as_slice()).db()?;
    Ok(())
}

/// Removes the record at `key`, returning it decoded.
fn remove<T: DeserializeOwned>(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    name: &str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let Some(v) = table.remove(key).db()? else {
        return Ok(None);
    };
    decode(name, key, v.value()).map(Some)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lease_record((key, l): (String, Lease)) -> LeaseRecord {
    LeaseRecord {
        key,
        client_id: l.client_id,
        holder: l.holder,
        expires: l.expires,
    }
}
