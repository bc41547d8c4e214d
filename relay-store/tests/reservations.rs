//! Reserved domains and TCP addresses between accounts, and IP whitelists.

#[macro_use]
mod common;

use burrow_store::{owner_of, DomainProblem, StoreError};
use common::*;
use std::net::IpAddr;

on_every_backend! {
    #[test]
    fn domains_are_normalised_and_reserving_again_is_a_no_op() {
        let s = two_accounts();
        let r = s.reserve_domain("a", "App.Example.com.", "us").unwrap();
        assert_eq!(
            (r.name.as_str(), r.account.as_str()),
            ("app.example.com", "a")
        );
        assert_eq!(s.reserve_domain("a", "app.example.com", "us").unwrap(), r);
        let err = s.reserve_domain("a", "app.example.com", "eu").unwrap_err();
        assert!(matches!(err, StoreError::RegionMismatch { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("us") && msg.contains("eu") && msg.contains("app.example.com"),
            "{msg}"
        );
        assert_eq!(s.domains(None).unwrap(), std::slice::from_ref(&r));
        assert!(matches!(
            s.reserve_domain("zz", "x.example.com", "us"),
            Err(StoreError::UnknownAccount { .. })
        ));
        assert!(matches!(
            s.reserve_domain("a", "x.example.com", "US East"),
            Err(StoreError::InvalidRegion { .. })
        ));
        let bad = |name: &str| match s.reserve_domain("a", name, "us") {
            Err(StoreError::InvalidDomain { problem, .. }) => problem,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(bad("*"), DomainProblem::BareWildcard);
        assert_eq!(bad("*.com"), DomainProblem::WildcardTooBroad);
        assert_eq!(bad("a.*.example.com"), DomainProblem::WildcardNotLeftmost);
        assert_eq!(bad("a..example.com"), DomainProblem::EmptyLabel);
        assert_eq!(bad("a_b.example.com"), DomainProblem::BadCharacter);

        assert_eq!(s.release_domain("APP.example.com").unwrap(), r);
        let err = s.release_domain("app.example.com").unwrap_err();
        assert!(matches!(&err, StoreError::UnknownReservation { name } if name == "app.example.com"));
        assert!(s.domains(None).unwrap().is_empty());
    }

    #[test]
    fn accounts_cannot_take_each_others_names() {
        let s = two_accounts();
        s.reserve_domain("a", "app.example.com", "us").unwrap();
        let err = s.reserve_domain("b", "app.example.com", "us").unwrap_err();
        assert!(matches!(&err, StoreError::ReservedByOther { name } if name == "app.example.com"));
        let msg = err.to_string();
        assert!(
            msg.contains("another account") && !msg.contains("\"a\""),
            "{msg}"
        );
        assert!(!format!("{err:?}").contains("account: \"a\""));
        s.reserve_domain("a", "*.example.org", "us").unwrap();
        let err = s.reserve_domain("b", "*.example.org", "us").unwrap_err();
        assert!(matches!(err, StoreError::ReservedByOther { .. }), "{err}");
    }

    #[test]
    fn names_under_another_accounts_wildcard_are_refused() {
        let s = two_accounts();
        s.reserve_domain("a", "*.example.com", "us").unwrap();
        for name in ["x.example.com", "x.y.example.com", "*.y.example.com"] {
            match s.reserve_domain("b", name, "us") {
                Err(StoreError::CoveredByWildcard { name: n, wildcard }) => {
                    assert_eq!((n.as_str(), wildcard.as_str()), (name, "*.example.com"));
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let msg = s
            .reserve_domain("b", "x.example.com", "us")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("*.example.com") && !msg.contains("\"a\""),
            "{msg}"
        );
        // The apex is not under its wildcard, and other names are free.
        s.reserve_domain("b", "example.com", "us").unwrap();
        s.reserve_domain("b", "x.example.net", "us").unwrap();
        s.reserve_domain("b", "xexample.com", "us").unwrap();
        // The wildcard's owner may reserve beneath it.
        s.reserve_domain("a", "x.example.com", "us").unwrap();
        s.reserve_domain("a", "*.y.example.com", "us").unwrap();
    }

    #[test]
    fn a_wildcard_over_another_accounts_names_is_refused() {
        let s = two_accounts();
        s.reserve_domain("b", "x.example.com", "us").unwrap();
        match s.reserve_domain("a", "*.example.com", "us") {
            Err(StoreError::WouldCover { name, covered }) => {
                assert_eq!(
                    (name.as_str(), covered.as_str()),
                    ("*.example.com", "x.example.com")
                );
            }
            other => panic!("{other:?}"),
        }
        s.reserve_domain("b", "*.deep.example.org", "us").unwrap();
        match s.reserve_domain("a", "*.example.org", "us") {
            Err(StoreError::WouldCover { covered, .. }) => assert_eq!(covered, "*.deep.example.org"),
            other => panic!("{other:?}"),
        }
        // A wildcard covers nothing of a neighbour whose name only ends alike.
        s.reserve_domain("b", "x.an-example.com", "us").unwrap();
        s.reserve_domain("a", "*.example.net", "us").unwrap();
        // The same account may hold a wildcard and names under it, in either order.
        s.reserve_domain("b", "*.example.com", "us").unwrap();
        s.reserve_domain("b", "y.example.com", "us").unwrap();
        let mut names: Vec<_> = s
            .domains(Some("b"))
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "*.deep.example.org",
                "*.example.com",
                "x.an-example.com",
                "x.example.com",
                "y.example.com"
            ]
        );
    }

    #[test]
    fn the_store_listing_feeds_owner_of() {
        let s = two_accounts();
        s.reserve_domain("a", "*.example.com", "us").unwrap();
        s.reserve_domain("a", "x.example.com", "eu").unwrap();
        s.reserve_domain("b", "example.com", "us").unwrap();
        let all = s.domains(None).unwrap();
        let owner = |h| owner_of(&all, h).map(|d| (d.name.as_str(), d.account.as_str()));
        assert_eq!(owner("x.example.com"), Some(("x.example.com", "a")));
        assert_eq!(owner("Y.example.com."), Some(("*.example.com", "a")));
        assert_eq!(owner("example.com"), Some(("example.com", "b")));
        assert_eq!(owner("example.org"), None);
    }

    #[test]
    fn a_refused_change_leaves_the_store_as_it_was() {
        let s = two_accounts();
        s.issue_token("a", "t").unwrap();
        s.reserve_domain("a", "*.example.com", "us").unwrap();
        s.reserve_domain("b", "b.example.org", "us").unwrap();
        s.reserve_addr("a", "relay.example.com:9000", "us").unwrap();
        s.allow("a", "192.0.2.0/24").unwrap();
        s.add_ssh_key("a", ED25519).unwrap();
        let before = snapshot(&*s);
        let refused = [
            s.reserve_domain("b", "x.example.com", "us").map(drop),
            s.reserve_domain("a", "*.example.org", "us").map(drop),
            s.reserve_domain("a", "*.example.com", "eu").map(drop),
            s.reserve_domain("zz", "new.example.net", "us").map(drop),
            s.reserve_addr("b", "relay.example.com:9000", "us")
                .map(drop),
            s.reserve_addr("a", "relay.example.com:0", "us").map(drop),
            s.allow("zz", "10.0.0.1").map(drop),
            s.allow("a", "10.0.0.0/40").map(drop),
            s.disallow("b", "192.0.2.0/24"),
            s.add_ssh_key("b", ED25519).map(drop),
            s.add_token("b", "t", "x y").map(drop),
            s.create_account("a").map(drop),
            s.delete_account("zz"),
            s.revoke_token("tok_000000000000").map(drop),
            s.release_domain("nothing.example.com").map(drop),
            s.release_addr("relay.example.com:1").map(drop),
            s.remove_ssh_key("SHA256:nothing").map(drop),
        ];
        for (i, r) in refused.iter().enumerate() {
            assert!(r.is_err(), "change {i} was accepted");
        }
        assert_eq!(snapshot(&*s), before);
    }

    #[test]
    fn tcp_addresses_have_one_owner() {
        let s = two_accounts();
        let r = s.reserve_addr("a", "Relay.Example.com:9000", "us").unwrap();
        assert_eq!(
            (r.addr.as_str(), r.host.as_str(), r.port),
            ("relay.example.com:9000", "relay.example.com", 9000)
        );
        assert_eq!(
            s.reserve_addr("a", "relay.example.com:9000", "us").unwrap(),
            r
        );
        assert!(matches!(
            s.reserve_addr("a", "relay.example.com:9000", "eu"),
            Err(StoreError::RegionMismatch { .. })
        ));
        let err = s
            .reserve_addr("b", "relay.example.com:9000", "us")
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::ReservedByOther { name } if name == "relay.example.com:9000")
        );
        s.reserve_addr("b", "relay.example.com:9001", "us").unwrap();
        let v6 = s.reserve_addr("b", "[2001:DB8::1]:22", "us").unwrap();
        assert_eq!(
            (v6.addr.as_str(), v6.host.as_str()),
            ("[2001:db8::1]:22", "2001:db8::1")
        );
        for bad in [
            "relay.example.com",
            "relay.example.com:0",
            "relay.example.com:70000",
            "::1:22",
        ] {
            let err = s.reserve_addr("a", bad, "us").unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidAddr { addr, .. } if addr == bad),
                "{err}"
            );
        }
        assert_eq!(s.addrs(Some("b")).unwrap().len(), 2);
        assert_eq!(s.release_addr("relay.example.com:9000").unwrap(), r);
        assert!(matches!(
            s.release_addr("relay.example.com:9000"),
            Err(StoreError::UnknownReservation { .. })
        ));
        s.reserve_addr("b", "relay.example.com:9000", "us").unwrap();
    }

    #[test]
    fn whitelists_hold_normalised_networks_per_account() {
        let s = two_accounts();
        s.create_account("a-2").unwrap();
        let one = s.allow("a", "192.0.2.7").unwrap();
        assert_eq!(one.net.to_string(), "192.0.2.7/32");
        assert_eq!(s.allow("a", "192.0.2.7/32").unwrap(), one);
        assert_eq!(
            s.allow("a", "198.51.100.9/24").unwrap().net.to_string(),
            "198.51.100.0/24"
        );
        assert_eq!(
            s.allow("a", "2001:db8::1").unwrap().net.to_string(),
            "2001:db8::1/128"
        );
        assert_eq!(
            s.allow("a", "::ffff:203.0.113.0/120")
                .unwrap()
                .net
                .to_string(),
            "203.0.113.0/24"
        );
        s.allow("a-2", "10.0.0.0/8").unwrap();
        s.allow("b", "10.0.0.0/8").unwrap();
        let nets: Vec<_> = s
            .whitelist(Some("a"))
            .unwrap()
            .into_iter()
            .map(|e| e.net)
            .collect();
        assert_eq!(nets.len(), 4, "{nets:?}");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(burrow_store::allowed(&nets, ip("198.51.100.200")));
        assert!(burrow_store::allowed(&nets, ip("::ffff:203.0.113.5")));
        assert!(burrow_store::allowed(&nets, ip("2001:db8::1")));
        assert!(!burrow_store::allowed(&nets, ip("10.1.1.1")));
        assert_eq!(s.whitelist(None).unwrap().len(), 6);

        let err = s.allow("a", "10.0.0.0/33").unwrap_err();
        assert!(matches!(&err, StoreError::InvalidNet { entry, .. } if entry == "10.0.0.0/33"));
        s.disallow("a", "198.51.100.0/24").unwrap();
        let err = s.disallow("a", "198.51.100.0/24").unwrap_err();
        assert!(
            matches!(err, StoreError::UnknownWhitelistEntry { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("198.51.100.0/24"));
        assert!(matches!(
            s.whitelist(Some("zz")),
            Err(StoreError::UnknownAccount { .. })
        ));
        assert_eq!(s.whitelist(Some("a")).unwrap().len(), 3);
    }

    #[test]
    fn racing_accounts_get_a_name_once() {
        let s = fresh();
        let names: Vec<String> = (0..8).map(|i| format!("team{i}")).collect();
        for n in &names {
            s.create_account(n).unwrap();
        }
        // Half race for the exact name, half for a wildcard over it: one transaction wins.
        let won = std::thread::scope(|scope| {
            let tries: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let s = &s;
                    let name = if i % 2 == 0 {
                        "x.example.com"
                    } else {
                        "*.example.com"
                    };
                    scope.spawn(move || s.reserve_domain(n, name, "us").is_ok())
                })
                .collect();
            tries
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|won| *won)
                .count()
        });
        assert_eq!(won, 1);
        assert_eq!(s.domains(None).unwrap().len(), 1);
    }
}
