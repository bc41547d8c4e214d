//! Helpers shared by the store's tests.
#![allow(dead_code)]

use burrow_store::Store;
use std::path::{Path, PathBuf};

/// A state directory of its own, removed when the test ends.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("burrow-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Accounts `a` and `b` in `s`.
pub fn with_two_accounts(s: Box<dyn Store>) -> Box<dyn Store> {
    s.create_account("a").unwrap();
    s.create_account("b").unwrap();
    s
}

/// The test binary's etcd, started by the first test that needs it; its shell kills it when
/// the binary exits.
#[cfg(feature = "etcd")]
pub fn etcd() -> &'static TestEtcd {
    static ETCD: std::sync::OnceLock<TestEtcd> = std::sync::OnceLock::new();
    ETCD.get_or_init(TestEtcd::start)
}

/// A key prefix no other test uses.
#[cfg(feature = "etcd")]
pub fn fresh_prefix() -> String {
    format!("/test-{:016x}/", rand::random::<u64>())
}

/// A store of its own in the shared etcd.
#[cfg(feature = "etcd")]
pub fn etcd_store() -> burrow_store::etcd::EtcdStore {
    burrow_store::etcd::EtcdStore::connect(
        &[etcd().endpoint()],
        &fresh_prefix(),
        std::time::Duration::from_secs(10),
    )
    .unwrap()
}

#[cfg(feature = "etcd")]
#[path = "../../../src/etcd.rs"]
mod test_etcd;
#[cfg(feature = "etcd")]
pub use test_etcd::TestEtcd;

/// Runs each test in it on every backend: in modules `redb` (in memory) and, with the `etcd`
/// feature, `etcd` (a prefix of its own in the test binary's etcd). Each test body gets a
/// fresh store from `fresh()` and one with accounts `a` and `b` from `two_accounts()`.
#[allow(unused_macros)]
macro_rules! on_every_backend {
    ($($test:item)*) => {
        mod redb {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            fn fresh() -> Box<dyn burrow_store::Store> {
                Box::new(burrow_store::open(None).unwrap())
            }
            #[allow(dead_code)]
            fn two_accounts() -> Box<dyn burrow_store::Store> {
                $crate::common::with_two_accounts(fresh())
            }
            $($test)*
        }
        #[cfg(feature = "etcd")]
        mod etcd {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            fn fresh() -> Box<dyn burrow_store::Store> {
                Box::new($crate::common::etcd_store())
            }
            #[allow(dead_code)]
            fn two_accounts() -> Box<dyn burrow_store::Store> {
                $crate::common::with_two_accounts(fresh())
            }
            $($test)*
        }
    };
}

/// Everything the store lists, to compare before and after a change.
pub fn snapshot(s: &dyn Store) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        s.accounts().unwrap(),
        s.tokens(None).unwrap(),
        s.domains(None).unwrap(),
        s.addrs(None).unwrap(),
        s.whitelist(None).unwrap(),
        s.ssh_keys(None).unwrap(),
        s.leases().unwrap(),
    )
}

/// Generated with `ssh-keygen -t ed25519 -C alice@laptop`; `ssh-keygen -lf` printed
/// `ED25519_FP` for it.
pub const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKgIP1G6BnlC8BuED88ddNaEWuR6wAasfk/C+Sz/K+lO alice@laptop";
pub const ED25519_FP: &str = "SHA256:Fjhgf9INuYXUhsBSnjY63ejVRwKjlZeug13Goz8/tVI";
/// Generated with `ssh-keygen -t ecdsa -C ops`, fingerprint from `ssh-keygen -lf`.
pub const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMY96dvUBknC9lYq54iryWSLHgEN7BAjRqkX8czplq3Y5tKB4PfXPdG1RGjg2LIM4p5VZ8X2tKJnX5BTELqsif8= ops";
pub const ECDSA_FP: &str = "SHA256:/5RfQaoXuWTR3zq/ILV7EbXpyTKAXPNL4sL3qU9V+eo";
