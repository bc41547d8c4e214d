//! Helpers shared by the store's tests.
#![allow(dead_code)]

use burrow_store::{RedbStore, Store};
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

/// A store in memory with accounts `a` and `b`.
pub fn two_accounts() -> RedbStore {
    let s = burrow_store::open(None).unwrap();
    s.create_account("a").unwrap();
    s.create_account("b").unwrap();
    s
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
