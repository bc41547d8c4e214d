//! Accounts, auth tokens, SSH keys and the cascade of deleting an account.

#[macro_use]
mod common;

use burrow_store::{Quotas, StoreError};
use common::*;

on_every_backend! {
    #[test]
    fn accounts_are_created_once_with_default_quotas() {
        let s = fresh();
        let a = s.create_account("team-1").unwrap();
        assert_eq!(a.quotas, Quotas::default());
        assert_eq!(
            (a.quotas.sessions, a.quotas.tunnels, a.quotas.tcp_ports),
            (10, 50, 5)
        );
        assert!(a.created > 0);
        let err = s.create_account("team-1").unwrap_err();
        assert!(matches!(&err, StoreError::AccountExists { name } if name == "team-1"));
        assert!(err.to_string().contains("team-1"), "{err}");
        let err = s.create_account("Team 1").unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidAccountName { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("Team 1"), "{err}");
        assert_eq!(s.account("team-1").unwrap(), Some(a));
        assert_eq!(s.account("nobody").unwrap(), None);
        s.create_account("alpha").unwrap();
        let names: Vec<_> = s.accounts().unwrap().into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["alpha", "team-1"]);
    }

    #[test]
    fn quotas_are_set_per_account() {
        let s = two_accounts();
        let q = Quotas {
            sessions: 1,
            tunnels: 2,
            tcp_ports: 0,
        };
        assert_eq!(s.set_quotas("a", q).unwrap().quotas, q);
        assert_eq!(s.account("a").unwrap().unwrap().quotas, q);
        assert_eq!(s.account("b").unwrap().unwrap().quotas, Quotas::default());
        let err = s.set_quotas("zz", q).unwrap_err();
        assert!(matches!(&err, StoreError::UnknownAccount { name } if name == "zz"));
    }

    #[test]
    fn tokens_are_issued_authenticated_and_revoked() {
        let s = two_accounts();
        let t = s.issue_token("a", "laptop").unwrap();
        assert!(t.secret.starts_with("brw_"), "{}", t.secret);
        assert!(t.info.id.starts_with("tok_") && t.info.id.len() == 16);
        assert_eq!(
            (t.info.account.as_str(), t.info.label.as_str()),
            ("a", "laptop")
        );
        assert!(t.info.hint.ends_with('…') && t.secret.starts_with(t.info.hint.trim_end_matches('…')));
        assert_eq!(s.authenticate(&t.secret).unwrap(), Some(t.info.clone()));
        assert_eq!(s.authenticate(&format!("{}x", t.secret)).unwrap(), None);
        assert_eq!(s.authenticate("").unwrap(), None);
        let other = s.issue_token("b", "ci").unwrap();
        assert_ne!(other.secret, t.secret);
        assert_eq!(s.tokens(Some("a")).unwrap(), std::slice::from_ref(&t.info));
        assert_eq!(s.tokens(None).unwrap().len(), 2);
        assert!(matches!(
            s.tokens(Some("zz")),
            Err(StoreError::UnknownAccount { .. })
        ));

        assert_eq!(s.revoke_token(&t.info.id).unwrap(), t.info);
        assert_eq!(s.authenticate(&t.secret).unwrap(), None);
        let err = s.revoke_token(&t.info.id).unwrap_err();
        assert!(matches!(&err, StoreError::UnknownToken { id } if *id == t.info.id));
        assert_eq!(s.authenticate(&other.secret).unwrap(), Some(other.info));
        assert!(matches!(
            s.issue_token("zz", ""),
            Err(StoreError::UnknownAccount { .. })
        ));
        assert!(matches!(
            s.issue_token("a", "line\nbreak"),
            Err(StoreError::InvalidLabel { .. })
        ));
    }

    #[test]
    fn added_secrets_are_idempotent_per_account_and_never_echoed() {
        let s = two_accounts();
        let secret = "operator-chosen-secret";
        let first = s.add_token("a", "flag", secret).unwrap();
        assert_eq!(first.hint, "oper…");
        assert_eq!(s.add_token("a", "flag", secret).unwrap(), first);
        assert_eq!(s.tokens(None).unwrap().len(), 1);
        assert_eq!(s.authenticate(secret).unwrap(), Some(first));
        let err = s.add_token("b", "flag", secret).unwrap_err();
        assert!(matches!(err, StoreError::TokenTaken { .. }), "{err}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(secret), "{shown}");
        let err = s.add_token("a", "x", "has space").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("has space"), "{err}");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = two_accounts();
        let t = s.issue_token("a", "laptop").unwrap();
        let debug = format!(
            "{t:?} {:?} {:?} {s:?}",
            s.tokens(None).unwrap(),
            s.authenticate(&t.secret).unwrap()
        );
        assert!(!debug.contains(&t.secret), "{debug}");
        assert!(!debug.contains(&t.secret[4..12]), "{debug}");
        assert!(debug.contains("MASKED"), "{debug}");
        // It is still serialised for the one response that hands it over.
        assert!(serde_json::to_string(&t).unwrap().contains(&t.secret));
    }

    #[test]
    fn ssh_keys_belong_to_one_account() {
        let s = two_accounts();
        let k = s.add_ssh_key("a", ED25519).unwrap();
        assert_eq!(k.fingerprint, ED25519_FP);
        assert_eq!(
            (k.algorithm.as_str(), k.comment.as_str()),
            ("ssh-ed25519", "alice@laptop")
        );
        assert_eq!(s.add_ssh_key("a", &format!(" {ED25519} ")).unwrap(), k);
        let err = s.add_ssh_key("b", ED25519).unwrap_err();
        assert!(matches!(&err, StoreError::SshKeyTaken { fingerprint } if fingerprint == ED25519_FP));
        assert!(!err.to_string().contains("\"a\""), "{err}");
        assert_eq!(s.add_ssh_key("b", ECDSA).unwrap().fingerprint, ECDSA_FP);
        assert_eq!(s.account_for_key(ED25519_FP).unwrap().unwrap().account, "a");
        assert_eq!(s.account_for_key("SHA256:nope").unwrap(), None);
        assert_eq!(s.ssh_keys(Some("b")).unwrap().len(), 1);
        assert_eq!(s.ssh_keys(None).unwrap().len(), 2);
        assert!(matches!(
            s.add_ssh_key("a", &format!("no-pty {ED25519}")),
            Err(StoreError::InvalidSshKey { .. })
        ));
        assert_eq!(s.remove_ssh_key(ED25519_FP).unwrap(), k);
        assert!(matches!(
            s.remove_ssh_key(ED25519_FP),
            Err(StoreError::UnknownSshKey { .. })
        ));
        s.add_ssh_key("b", ED25519).unwrap();
    }

    #[test]
    fn deleting_an_account_removes_everything_it_owns() {
        let s = two_accounts();
        let fill = |acct: &str, n: u16| {
            let t = s.issue_token(acct, "t").unwrap();
            s.add_token(acct, "flag", &format!("secret-of-{acct}"))
                .unwrap();
            s.reserve_domain(acct, &format!("{acct}.example.com"), "us")
                .unwrap();
            s.reserve_domain(acct, &format!("*.{acct}.example.net"), "eu")
                .unwrap();
            s.reserve_addr(acct, &format!("relay.example.com:{n}"), "us")
                .unwrap();
            s.allow(acct, "10.0.0.0/8").unwrap();
            t
        };
        let ta = fill("a", 1);
        let tb = fill("b", 2);
        s.add_ssh_key("a", ED25519).unwrap();
        s.add_ssh_key("b", ECDSA).unwrap();

        s.delete_account("a").unwrap();
        assert_eq!(s.account("a").unwrap(), None);
        assert_eq!(s.authenticate(&ta.secret).unwrap(), None);
        assert_eq!(s.authenticate("secret-of-a").unwrap(), None);
        assert!(matches!(
            s.revoke_token(&ta.info.id),
            Err(StoreError::UnknownToken { .. })
        ));
        for t in s.tokens(None).unwrap() {
            assert_eq!(t.account, "b");
        }
        assert!(s.domains(None).unwrap().iter().all(|d| d.account == "b"));
        assert!(s.addrs(None).unwrap().iter().all(|d| d.account == "b"));
        assert!(s.whitelist(None).unwrap().iter().all(|d| d.account == "b"));
        assert_eq!(s.account_for_key(ED25519_FP).unwrap(), None);
        assert_eq!(s.tokens(None).unwrap().len(), 2);
        assert_eq!(s.domains(None).unwrap().len(), 2);
        assert_eq!(s.whitelist(None).unwrap().len(), 1);
        assert_eq!(s.authenticate(&tb.secret).unwrap().unwrap().account, "b");
        // What `a` held is free again, for anyone.
        s.reserve_domain("b", "a.example.com", "us").unwrap();
        s.reserve_addr("b", "relay.example.com:1", "us").unwrap();
        s.add_ssh_key("b", ED25519).unwrap();
        s.create_account("a").unwrap();
        assert!(s.tokens(Some("a")).unwrap().is_empty());
        assert!(matches!(
            s.delete_account("zz"),
            Err(StoreError::UnknownAccount { .. })
        ));
    }
}
