//! The store file: reopening, what is on disk, damaged and newer files, and the import of
//! the old leases.json.

mod common;

use burrow_store::{LeaseRecord, Store, StoreError, SCHEMA_VERSION, STORE_FILE};
use common::*;
use redb::TableDefinition;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn lease(key: &str, client_id: &str, holder: u64, expires: Option<u64>) -> LeaseRecord {
    LeaseRecord {
        key: key.into(),
        client_id: client_id.into(),
        holder,
        expires,
    }
}

#[test]
fn a_reopened_file_keeps_everything() {
    let dir = TempDir::new();
    let (before, secret) = {
        let s = burrow_store::open(Some(dir.path())).unwrap();
        assert_eq!(s.path(), dir.path().join(STORE_FILE));
        s.create_account("a").unwrap();
        s.set_quotas(
            "a",
            burrow_store::Quotas {
                sessions: 3,
                tunnels: 4,
                tcp_ports: 1,
            },
        )
        .unwrap();
        let t = s.issue_token("a", "laptop").unwrap();
        s.reserve_domain("a", "*.example.com", "eu").unwrap();
        s.reserve_addr("a", "[::1]:2222", "eu").unwrap();
        s.allow("a", "2001:db8::/32").unwrap();
        s.add_ssh_key("a", ED25519).unwrap();
        s.save_leases(&[lease("host:app.localhost", "c1", 7, None)])
            .unwrap();
        (snapshot(&s), t.secret)
    };
    let s = burrow_store::open(Some(dir.path())).unwrap();
    assert_eq!(snapshot(&s), before);
    assert_eq!(s.authenticate(&secret).unwrap().unwrap().account, "a");
}

#[test]
fn the_file_holds_the_hash_of_a_secret_not_the_secret() {
    let dir = TempDir::new();
    let t = {
        let s = burrow_store::open(Some(dir.path())).unwrap();
        s.create_account("a").unwrap();
        s.add_token("a", "flag", "flag-secret-0123456789").unwrap();
        s.issue_token("a", "laptop").unwrap()
    };
    let raw = std::fs::read(dir.path().join(STORE_FILE)).unwrap();
    let has = |needle: &str| raw.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!has(&t.secret), "the secret is in the file");
    assert!(
        !has("flag-secret-0123456789"),
        "the added secret is in the file"
    );
    assert!(
        has(&burrow_store::token::hash(&t.secret)),
        "the hash is not in the file"
    );
}

#[test]
fn a_file_that_is_not_a_store_is_refused_and_left_alone() {
    let dir = TempDir::new();
    let path = dir.path().join(STORE_FILE);
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = burrow_store::open(Some(dir.path())).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), garbage);

    // A short file too, shorter than redb's magic number.
    std::fs::write(&path, b"junk").unwrap();
    assert!(matches!(
        burrow_store::open(Some(dir.path())),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), b"junk");
}

#[test]
fn another_programs_redb_file_is_refused() {
    let dir = TempDir::new();
    let path = dir.path().join(STORE_FILE);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TableDefinition::<u64, u64>::new("theirs"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = burrow_store::open(Some(dir.path())).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { detail, .. } if detail.contains("burrowd")),
        "{err}"
    );
}

#[test]
fn a_file_from_a_newer_version_is_refused_untouched() {
    let dir = TempDir::new();
    let path = dir.path().join(STORE_FILE);
    drop(burrow_store::open(Some(dir.path())).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = burrow_store::open(Some(dir.path())).unwrap_err();
    match &err {
        StoreError::NewerVersion {
            found,
            supported,
            path: p,
        } => assert_eq!((*found, *supported, p), (2, 1, &path)),
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("2") && msg.contains("1") && msg.contains(STORE_FILE),
        "{msg}"
    );
    let db = redb::Database::create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let version = txn
        .open_table(META)
        .unwrap()
        .get("schema_version")
        .unwrap()
        .unwrap()
        .value();
    assert_eq!(version, 2);
}

#[test]
fn a_store_in_use_is_not_opened_twice() {
    let dir = TempDir::new();
    let _first = burrow_store::open(Some(dir.path())).unwrap();
    let err = burrow_store::open(Some(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
}

#[test]
fn leases_json_is_imported_once() {
    let dir = TempDir::new();
    let json = dir.path().join("leases.json");
    std::fs::write(
        &json,
        r#"{"host:app.localhost": {"client_id": "c1", "holder": 3, "expires": null},
            "port:10001": {"client_id": "c2", "holder": 4, "expires": 1700000000},
            "host:old.localhost": {"client_id": "c3", "expires": 5}}"#,
    )
    .unwrap();
    let want = [
        lease("host:app.localhost", "c1", 3, None),
        lease("host:old.localhost", "c3", 0, Some(5)),
        lease("port:10001", "c2", 4, Some(1_700_000_000)),
    ];
    {
        let s = burrow_store::open(Some(dir.path())).unwrap();
        assert_eq!(s.leases().unwrap(), want);
    }
    assert!(!json.exists());
    let migrated = dir.path().join("leases.json.migrated");
    assert!(migrated.exists());

    // A leases.json written later (by a downgraded relay, say) is not imported again.
    std::fs::write(
        &json,
        r#"{"port:1": {"client_id": "x", "holder": 1, "expires": null}}"#,
    )
    .unwrap();
    let s = burrow_store::open(Some(dir.path())).unwrap();
    assert_eq!(s.leases().unwrap(), want);
    assert!(json.exists());
}

#[test]
fn an_unreadable_leases_json_stops_the_open() {
    let dir = TempDir::new();
    let json = dir.path().join("leases.json");
    std::fs::write(&json, "{not json").unwrap();
    let err = burrow_store::open(Some(dir.path())).unwrap_err();
    assert!(
        matches!(&err, StoreError::Leases { path, .. } if *path == json),
        "{err:?}"
    );
    assert!(err.to_string().contains("leases.json"), "{err}");
    assert!(json.exists());
    // Mended, it is imported on the next open.
    std::fs::write(&json, "{}").unwrap();
    let s = burrow_store::open(Some(dir.path())).unwrap();
    assert!(s.leases().unwrap().is_empty());
    assert!(!json.exists());
}

#[test]
fn saving_leases_replaces_them_all() {
    let s = burrow_store::open(None).unwrap();
    assert!(s.leases().unwrap().is_empty());
    s.save_leases(&[
        lease("host:a.localhost", "c1", 1, None),
        lease("port:10001", "c1", 1, Some(99)),
    ])
    .unwrap();
    assert_eq!(s.leases().unwrap().len(), 2);
    let next = [lease("host:b.localhost", "c2", 2, None)];
    s.save_leases(&next).unwrap();
    assert_eq!(s.leases().unwrap(), next);
    s.save_leases(&[]).unwrap();
    assert!(s.leases().unwrap().is_empty());
}

#[test]
fn the_store_is_usable_as_a_trait_object() {
    let s: Box<dyn Store> = Box::new(burrow_store::open(None).unwrap());
    s.create_account("a").unwrap();
    assert_eq!(s.accounts().unwrap().len(), 1);
}
