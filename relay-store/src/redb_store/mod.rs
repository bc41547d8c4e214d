//! The store on redb: opening the file, the schema and its version, importing the old
//! leases.json, and the tables behind [`Txn`] for the operations in [`crate::ops`].

use crate::backend::{self, Backend, Records, Table, Txn};
use crate::error::StoreError;
use crate::ops::Lease;
use redb::backends::InMemoryBackend;
use redb::{
    DatabaseError, ReadTransaction, ReadableTable, StorageError, TableDefinition, TableError,
    WriteTransaction,
};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

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
/// Token id → hash; its values are bare strings, as the first files were written.
const TOKEN_IDS: TableDefinition<&str, &str> = TableDefinition::new("token_ids");

/// The JSON table of `table` (every one but [`Table::TokenIds`]).
fn json(table: Table) -> Json {
    TableDefinition::new(table.name())
}

/// The store kept in one redb file (or in memory), every change one write transaction.
#[derive(Debug)]
pub struct RedbStore {
    db: redb::Database,
    /// The file, for error messages; `(memory)` without one.
    path: PathBuf,
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
            for table in Table::ALL {
                if table == Table::TokenIds {
                    txn.open_table(TOKEN_IDS).db()?;
                } else {
                    txn.open_table(json(table)).db()?;
                }
            }
            let mut t = RedbWrite(txn);
            for (key, lease) in imported.iter().flatten() {
                backend::put(&mut t, Table::Leases, key, lease)?;
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

use backend::corrupt;

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

/// A value type of ours, as the bytes [`Txn`] deals in.
trait Raw: redb::Value + 'static {
    fn to_bytes(v: Self::SelfType<'_>) -> Vec<u8>;
}

impl Raw for &'static [u8] {
    fn to_bytes(v: &[u8]) -> Vec<u8> {
        v.to_vec()
    }
}

impl Raw for &'static str {
    fn to_bytes(v: &str) -> Vec<u8> {
        v.as_bytes().to_vec()
    }
}

fn get_in<V: Raw>(
    t: &impl ReadableTable<&'static str, V>,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(t.get(key).db()?.map(|v| V::to_bytes(v.value())))
}

fn range_in<V: Raw>(
    t: &impl ReadableTable<&'static str, V>,
    bounds: (Bound<&str>, Bound<&str>),
) -> Result<Records, StoreError> {
    t.range::<&str>(bounds)
        .db()?
        .map(|item| {
            let (k, v) = item.db()?;
            Ok((k.value().to_string(), V::to_bytes(v.value())))
        })
        .collect()
}

/// `lo..hi` as redb's bounds, or the whole table.
fn bounds<'a>(lo_hi: Option<(&'a str, &'a str)>) -> (Bound<&'a str>, Bound<&'a str>) {
    match lo_hi {
        Some((lo, hi)) => (Bound::Included(lo), Bound::Excluded(hi)),
        None => (Bound::Unbounded, Bound::Unbounded),
    }
}

/// The reads both kinds of redb transaction make the same way (their tables are of two
/// types, so a macro rather than a generic function).
macro_rules! reads {
    () => {
        fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            if table == Table::TokenIds {
                get_in(&self.0.open_table(TOKEN_IDS).db()?, key)
            } else {
                get_in(&self.0.open_table(json(table)).db()?, key)
            }
        }

        fn range(&mut self, table: Table, lo: &str, hi: &str) -> Result<Records, StoreError> {
            self.range_of(table, Some((lo, hi)))
        }

        fn scan(&mut self, table: Table) -> Result<Records, StoreError> {
            self.range_of(table, None)
        }
    };
}

/// `range_of` for one kind of redb transaction.
macro_rules! range_of {
    ($txn:ident) => {
        impl $txn<'_> {
            fn range_of(
                &self,
                table: Table,
                lo_hi: Option<(&str, &str)>,
            ) -> Result<Records, StoreError> {
                if table == Table::TokenIds {
                    range_in(&self.0.open_table(TOKEN_IDS).db()?, bounds(lo_hi))
                } else {
                    range_in(&self.0.open_table(json(table)).db()?, bounds(lo_hi))
                }
            }
        }
    };
}

/// A read transaction; the operations never write in a view, so a write is a bug.
struct RedbRead<'t>(&'t ReadTransaction);

range_of!(RedbRead);

fn read_only(table: Table) -> StoreError {
    StoreError::Backend(format!("write to {} in a read-only view", table.name()).into())
}

impl Txn for RedbRead<'_> {
    reads!();

    fn put(&mut self, table: Table, _: &str, _: Vec<u8>) -> Result<(), StoreError> {
        Err(read_only(table))
    }

    fn remove(&mut self, table: Table, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Err(read_only(table))
    }
}

/// A write transaction; redb runs one at a time, so it never conflicts.
struct RedbWrite<'t>(&'t WriteTransaction);

range_of!(RedbWrite);

impl Txn for RedbWrite<'_> {
    reads!();

    fn put(&mut self, table: Table, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        if table == Table::TokenIds {
            let hash = String::from_utf8(value)
                .map_err(|_| StoreError::Backend("a token hash that is not UTF-8".into()))?;
            self.0
                .open_table(TOKEN_IDS)
                .db()?
                .insert(key, hash.as_str())
                .db()?;
        } else {
            self.0
                .open_table(json(table))
                .db()?
                .insert(key, value.as_slice())
                .db()?;
        }
        Ok(())
    }

    fn remove(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if table == Table::TokenIds {
            let mut t = self.0.open_table(TOKEN_IDS).db()?;
            let old = t.remove(key).db()?;
            Ok(old.map(|v| v.value().as_bytes().to_vec()))
        } else {
            let mut t = self.0.open_table(json(table)).db()?;
            let old = t.remove(key).db()?;
            Ok(old.map(|v| v.value().to_vec()))
        }
    }
}

impl Backend for RedbStore {
    fn view<T>(
        &self,
        mut f: impl FnMut(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.read(|txn| f(&mut RedbRead(txn)))
    }

    fn update<T>(
        &self,
        mut f: impl FnMut(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write(|txn| f(&mut RedbWrite(txn)))
    }
}
