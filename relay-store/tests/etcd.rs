//! What only the fleet's etcd store does: relays racing through separate clients, the key
//! layout, the change feed, leases, and etcd going away and coming back.
#![cfg(feature = "etcd")]

#[macro_use]
mod common;

use burrow_store::etcd::EtcdStore;
use burrow_store::{LeaseRecord, Store, StoreError};
use common::*;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

fn connect(endpoint: &str, prefix: &str, timeout: Duration) -> EtcdStore {
    EtcdStore::connect(&[endpoint.to_string()], prefix, timeout).unwrap()
}

/// Every key and value under `prefix`, read with a client of the test's own.
fn raw(endpoint: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        let opts = etcd_client::GetOptions::new().with_prefix();
        let resp = c.get(prefix, Some(opts)).await.unwrap();
        resp.kvs()
            .iter()
            .map(|kv| (kv.key_str().unwrap().to_string(), kv.value().to_vec()))
            .collect()
    })
}

fn raw_put(endpoint: &str, key: &str, value: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        c.put(key, value, None).await.unwrap();
    });
}

/// Waits until `rx` has seen a change, at most `within`.
fn changed(rx: &mut tokio::sync::watch::Receiver<i64>, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if rx.has_changed().unwrap_or(false) {
            rx.mark_unchanged();
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn two_relays_racing_for_one_name_get_it_once() {
    let prefix = fresh_prefix();
    let endpoint = etcd().endpoint();
    let relays = [
        connect(&endpoint, &prefix, DEADLINE),
        connect(&endpoint, &prefix, DEADLINE),
    ];
    let teams: Vec<String> = (0..8).map(|i| format!("team{i}")).collect();
    for t in &teams {
        relays[0].create_account(t).unwrap();
    }
    // Each relay's threads race with each other and with the other relay's.
    let results: Vec<Result<_, StoreError>> = std::thread::scope(|scope| {
        let tries: Vec<_> = teams
            .iter()
            .enumerate()
            .map(|(i, team)| {
                let relay = &relays[i % 2];
                let name = if i % 4 < 2 {
                    "x.example.com"
                } else {
                    "*.example.com"
                };
                scope.spawn(move || relay.reserve_domain(team, name, "us"))
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(
                    e,
                    StoreError::ReservedByOther { .. }
                        | StoreError::CoveredByWildcard { .. }
                        | StoreError::WouldCover { .. }
                ),
                "{e}"
            );
        }
    }
    for relay in &relays {
        assert_eq!(relay.domains(None).unwrap(), [won[0].clone()]);
    }
}

#[test]
fn records_are_the_redb_json_under_the_prefix_and_secrets_are_hashed() {
    let prefix = fresh_prefix();
    let endpoint = etcd().endpoint();
    let s = connect(&endpoint, &prefix, DEADLINE);
    let account = s.create_account("a").unwrap();
    let issued = s.issue_token("a", "laptop").unwrap();
    s.add_token("a", "flag", "flag-secret-0123456789").unwrap();
    let domain = s.reserve_domain("a", "*.example.com", "eu").unwrap();
    let records = raw(&endpoint, &prefix);
    let value = |key: &str| {
        records
            .iter()
            .find(|(k, _)| k == &format!("{prefix}{key}"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {key} in {records:?}"))
    };
    assert_eq!(
        value("store/accounts/a"),
        serde_json::to_vec(&account).unwrap()
    );
    assert_eq!(
        value("store/domains/com.example.*"),
        serde_json::to_vec(&domain).unwrap()
    );
    let hash = String::from_utf8(value(&format!("store/token_ids/{}", issued.info.id))).unwrap();
    assert_eq!(hash.len(), 64, "{hash}");
    value(&format!("store/tokens/{hash}"));
    value("store/.rev");
    for (key, v) in &records {
        let text = String::from_utf8_lossy(v);
        for secret in [issued.secret.as_str(), "flag-secret-0123456789"] {
            assert!(!key.contains(secret) && !text.contains(secret), "{key}");
        }
    }
    assert_eq!(s.authenticate(&issued.secret).unwrap(), Some(issued.info));
}

#[test]
fn another_relays_change_bumps_the_feed_and_other_prefixes_do_not() {
    let prefix = fresh_prefix();
    let endpoint = etcd().endpoint();
    let here = connect(&endpoint, &prefix, DEADLINE);
    let there = connect(&endpoint, &prefix, DEADLINE);
    let elsewhere = connect(&endpoint, &fresh_prefix(), DEADLINE);
    let mut rx = here.changes();
    let before = *rx.borrow();
    elsewhere.create_account("x").unwrap();
    assert!(!changed(&mut rx, Duration::from_millis(500)));
    there.create_account("a").unwrap();
    assert!(changed(&mut rx, Duration::from_secs(5)));
    assert!(*rx.borrow() > before);
    // Lease claims churn outside the team's data and wake nobody.
    raw_put(&endpoint, &format!("{prefix}leases/host:x"), "{}");
    assert!(!changed(&mut rx, Duration::from_millis(500)));
    there
        .reserve_addr("a", "relay.example.com:9000", "us")
        .unwrap();
    assert!(changed(&mut rx, Duration::from_secs(5)));
    assert_eq!(here.addrs(None).unwrap().len(), 1);
}

#[test]
fn leases_are_claimed_per_name_not_saved_as_a_snapshot() {
    let prefix = fresh_prefix();
    let endpoint = etcd().endpoint();
    let s = connect(&endpoint, &prefix, DEADLINE);
    let lease = LeaseRecord {
        key: "host:app.localhost".into(),
        client_id: "c1".into(),
        holder: 7,
        expires: None,
    };
    let err = s.save_leases(std::slice::from_ref(&lease)).unwrap_err();
    assert!(
        matches!(&err, StoreError::LeasesClaimedPerName { prefix: p } if *p == prefix),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("leases are claimed one name at a time"),
        "{err}"
    );
    assert!(s.leases().unwrap().is_empty());
    raw_put(
        &endpoint,
        &format!("{prefix}leases/host:app.localhost"),
        r#"{"client_id":"c1","holder":7,"expires":null}"#,
    );
    assert_eq!(s.leases().unwrap(), [lease]);
}

#[test]
fn an_unreachable_etcd_fails_within_the_deadline() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let err = EtcdStore::connect(
        std::slice::from_ref(&endpoint),
        "/p/",
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "the fleet's store (etcd at {endpoint}) is unreachable: "
        )),
        "{err}"
    );
}

#[test]
fn the_store_works_again_once_etcd_is_back_and_the_feed_resumes() {
    let mut etcd = TestEtcd::start();
    let endpoint = etcd.endpoint();
    let prefix = fresh_prefix();
    let timeout = Duration::from_secs(2);
    let s = connect(&endpoint, &prefix, timeout);
    s.create_account("a").unwrap();
    let mut rx = s.changes();
    rx.mark_unchanged();

    etcd.stop();
    for _ in 0..2 {
        let started = Instant::now();
        let err = s.account("a").unwrap_err();
        let took = started.elapsed();
        assert!(took < timeout + Duration::from_secs(1), "{took:?}");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!(
                "the fleet's store (etcd at {endpoint}) is unreachable: "
            )),
            "{shown}"
        );
    }
    assert!(matches!(
        s.create_account("b"),
        Err(StoreError::Unavailable { .. })
    ));

    etcd.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        match s.account("a") {
            Ok(found) => break found,
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("no answer after etcd came back: {e}"),
        }
    };
    assert_eq!(found.unwrap().name, "a");
    s.create_account("b").unwrap();
    // Another relay's change after the restart reaches this one's feed.
    let other = connect(&endpoint, &prefix, timeout);
    other.create_account("c").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen =
            rx.has_changed().unwrap_or(false) && *rx.borrow() >= latest_rev(&endpoint, &prefix);
        if seen {
            break;
        }
        assert!(Instant::now() < deadline, "the feed did not resume");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The revision of the latest commit under `prefix`: the guard's.
fn latest_rev(endpoint: &str, prefix: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        let resp = c.get(format!("{prefix}store/.rev"), None).await.unwrap();
        resp.kvs()[0].mod_revision()
    })
}
