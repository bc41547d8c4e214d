//! The store's operations: each one transaction that checks every rule before it writes.

use super::rules::{domain_conflicts, existing};
use super::{
    collect, get, lease_record, now, put, remove, scan, Db, Lease, RedbStore, StoredToken,
    ACCOUNTS, ADDRS, DOMAINS, LEASES, SSH_KEYS, TOKENS, TOKEN_IDS, WHITELIST,
};
use crate::error::StoreError;
use crate::model::{
    Account, AddrReservation, DomainReservation, IssuedToken, LeaseRecord, Quotas, SshKey,
    TokenInfo, WhitelistEntry,
};
use crate::{names, net, ssh, token, Store};
use redb::{ReadTransaction, ReadableTable, Table};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

type JsonTable<'t> = Table<'t, &'static str, &'static [u8]>;

/// The account named `name`, or the error saying there is none.
fn require(
    accounts: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Account, StoreError> {
    get(accounts, "accounts", name)?.ok_or_else(|| StoreError::UnknownAccount { name: name.into() })
}

/// Refuses a listing filtered by an account that does not exist, rather than listing nothing.
fn check_filter(txn: &ReadTransaction, account: Option<&str>) -> Result<(), StoreError> {
    match account {
        Some(a) => require(&txn.open_table(ACCOUNTS).db()?, a).map(drop),
        None => Ok(()),
    }
}

/// Every record of `table` that `keep` accepts.
fn list<T: DeserializeOwned>(
    txn: &ReadTransaction,
    def: super::Json,
    name: &str,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<T>, StoreError> {
    let table = txn.open_table(def).db()?;
    Ok(scan(&table, name)?
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| keep(v))
        .collect())
}

/// Removes every record of `table` that `doomed` picks, returning them.
fn remove_where<T: DeserializeOwned>(
    table: &mut JsonTable<'_>,
    name: &str,
    doomed: impl Fn(&T) -> bool,
) -> Result<Vec<T>, StoreError> {
    let picked: Vec<(String, T)> = scan(table, name)?
        .into_iter()
        .filter(|(_, v)| doomed(v))
        .collect();
    for (key, _) in &picked {
        table.remove(key.as_str()).db()?;
    }
    Ok(picked.into_iter().map(|(_, v)| v).collect())
}

fn owned_by(account: Option<&str>, owner: &str) -> bool {
    account.is_none_or(|a| a == owner)
}

fn whitelist_key(account: &str, net: &ipnet::IpNet) -> String {
    // Account names hold no spaces, so `account ` prefixes exactly that account's entries.
    format!("{account} {net}")
}

impl RedbStore {
    /// Adds a token for `secret` unless its hash is there already (then it must be this account's).
    fn insert_token(
        &self,
        account: &str,
        label: &str,
        secret: &str,
    ) -> Result<TokenInfo, StoreError> {
        names::label(label)?;
        let hash = token::hash(secret);
        self.write(|txn| {
            require(&txn.open_table(ACCOUNTS).db()?, account)?;
            let mut tokens = txn.open_table(TOKENS).db()?;
            if let Some(t) = get::<StoredToken>(&tokens, "tokens", &hash)? {
                return if t.info.account == account {
                    Ok(t.info)
                } else {
                    Err(StoreError::TokenTaken {
                        label: label.into(),
                    })
                };
            }
            let mut ids = txn.open_table(TOKEN_IDS).db()?;
            let id = loop {
                let id = token::new_id();
                if ids.get(id.as_str()).db()?.is_none() {
                    break id;
                }
            };
            ids.insert(id.as_str(), hash.as_str()).db()?;
            let info = TokenInfo {
                id,
                account: account.into(),
                label: label.into(),
                created: now(),
                hint: token::hint(secret),
            };
            let stored = StoredToken {
                hash: hash.clone(),
                info: info.clone(),
            };
            put(&mut tokens, &hash, &stored)?;
            Ok(info)
        })
    }
}

impl Store for RedbStore {
    fn create_account(&self, name: &str) -> Result<Account, StoreError> {
        names::account_name(name)?;
        self.write(|txn| {
            let mut accounts = txn.open_table(ACCOUNTS).db()?;
            if accounts.get(name).db()?.is_some() {
                return Err(StoreError::AccountExists { name: name.into() });
            }
            let account = Account {
                name: name.into(),
                quotas: Quotas::default(),
                created: now(),
            };
            put(&mut accounts, name, &account)?;
            Ok(account)
        })
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.read(|txn| get(&txn.open_table(ACCOUNTS).db()?, "accounts", name))
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.read(|txn| list(txn, ACCOUNTS, "accounts", |_: &Account| true))
    }

    fn set_quotas(&self, account: &str, quotas: Quotas) -> Result<Account, StoreError> {
        self.write(|txn| {
            let mut accounts = txn.open_table(ACCOUNTS).db()?;
            let mut a = require(&accounts, account)?;
            a.quotas = quotas;
            put(&mut accounts, account, &a)?;
            Ok(a)
        })
    }

    fn delete_account(&self, name: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut accounts = txn.open_table(ACCOUNTS).db()?;
            require(&accounts, name)?;
            accounts.remove(name).db()?;
            let mut ids = txn.open_table(TOKEN_IDS).db()?;
            let tokens: Vec<StoredToken> = remove_where(
                &mut txn.open_table(TOKENS).db()?,
                "tokens",
                |t: &StoredToken| t.info.account == name,
            )?;
            for t in tokens {
                ids.remove(t.info.id.as_str()).db()?;
            }
            let mine = |owner: &str| owner == name;
            remove_where(
                &mut txn.open_table(DOMAINS).db()?,
                "domains",
                |d: &DomainReservation| mine(&d.account),
            )?;
            remove_where(
                &mut txn.open_table(ADDRS).db()?,
                "addrs",
                |a: &AddrReservation| mine(&a.account),
            )?;
            remove_where(
                &mut txn.open_table(WHITELIST).db()?,
                "whitelist",
                |w: &WhitelistEntry| mine(&w.account),
            )?;
            remove_where(
                &mut txn.open_table(SSH_KEYS).db()?,
                "ssh_keys",
                |k: &SshKey| mine(&k.account),
            )?;
            Ok(())
        })
    }

    fn issue_token(&self, account: &str, label: &str) -> Result<IssuedToken, StoreError> {
        let secret = token::new_secret();
        let info = self.insert_token(account, label, &secret)?;
        Ok(IssuedToken { info, secret })
    }

    fn add_token(&self, account: &str, label: &str, secret: &str) -> Result<TokenInfo, StoreError> {
        token::check_secret(secret)?;
        self.insert_token(account, label, secret)
    }

    fn tokens(&self, account: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        self.read(|txn| {
            check_filter(txn, account)?;
            let mut infos: Vec<TokenInfo> = list(txn, TOKENS, "tokens", |t: &StoredToken| {
                owned_by(account, &t.info.account)
            })?
            .into_iter()
            .map(|t| t.info)
            .collect();
            // Stored by hash, which is no order at all.
            infos.sort_by(|a, b| {
                (&a.account, a.created, &a.id).cmp(&(&b.account, b.created, &b.id))
            });
            Ok(infos)
        })
    }

    fn revoke_token(&self, id: &str) -> Result<TokenInfo, StoreError> {
        self.write(|txn| {
            let mut ids = txn.open_table(TOKEN_IDS).db()?;
            let hash = match ids.remove(id).db()? {
                Some(h) => h.value().to_string(),
                None => return Err(StoreError::UnknownToken { id: id.into() }),
            };
            let mut tokens = txn.open_table(TOKENS).db()?;
            let t: StoredToken = remove(&mut tokens, "tokens", &hash)?
                .ok_or_else(|| super::corrupt(format!("token {id} has no record")))?;
            Ok(t.info)
        })
    }

    fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>, StoreError> {
        if secret.is_empty() {
            return Ok(None);
        }
        let hash = token::hash(secret);
        self.read(|txn| {
            let tokens = txn.open_table(TOKENS).db()?;
            let found: Option<StoredToken> = get(&tokens, "tokens", &hash)?;
            // The lookup found it by key; comparing in constant time as well keeps a timing
            // difference from ever depending on how much of a guess was right.
            Ok(found
                .filter(|t| bool::from(t.hash.as_bytes().ct_eq(hash.as_bytes())))
                .map(|t| t.info))
        })
    }

    fn reserve_domain(
        &self,
        account: &str,
        name: &str,
        region: &str,
    ) -> Result<DomainReservation, StoreError> {
        let name = names::domain(name)?;
        names::region(region)?;
        let key = names::domain_key(&name);
        self.write(|txn| {
            require(&txn.open_table(ACCOUNTS).db()?, account)?;
            let mut domains = txn.open_table(DOMAINS).db()?;
            let held = get::<DomainReservation>(&domains, "domains", &key)?;
            if let Some(mine) = existing(held, account, &name, region)? {
                return Ok(mine);
            }
            domain_conflicts(&domains, account, &name)?;
            let r = DomainReservation {
                name,
                account: account.into(),
                region: region.into(),
                created: now(),
            };
            put(&mut domains, &key, &r)?;
            Ok(r)
        })
    }

    fn release_domain(&self, name: &str) -> Result<DomainReservation, StoreError> {
        let name = names::domain(name)?;
        self.write(|txn| {
            let mut domains = txn.open_table(DOMAINS).db()?;
            remove(&mut domains, "domains", &names::domain_key(&name))?
                .ok_or(StoreError::UnknownReservation { name })
        })
    }

    fn domains(&self, account: Option<&str>) -> Result<Vec<DomainReservation>, StoreError> {
        self.read(|txn| {
            check_filter(txn, account)?;
            list(txn, DOMAINS, "domains", |d: &DomainReservation| {
                owned_by(account, &d.account)
            })
        })
    }

    fn reserve_addr(
        &self,
        account: &str,
        addr: &str,
        region: &str,
    ) -> Result<AddrReservation, StoreError> {
        let (addr, host, port) = names::addr(addr)?;
        names::region(region)?;
        self.write(|txn| {
            require(&txn.open_table(ACCOUNTS).db()?, account)?;
            let mut addrs = txn.open_table(ADDRS).db()?;
            let held = get::<AddrReservation>(&addrs, "addrs", &addr)?;
            if let Some(mine) = existing(held, account, &addr, region)? {
                return Ok(mine);
            }
            let r = AddrReservation {
                addr,
                host,
                port,
                account: account.into(),
                region: region.into(),
                created: now(),
            };
            put(&mut addrs, &r.addr, &r)?;
            Ok(r)
        })
    }

    fn release_addr(&self, addr: &str) -> Result<AddrReservation, StoreError> {
        let (addr, _, _) = names::addr(addr)?;
        self.write(|txn| {
            let mut addrs = txn.open_table(ADDRS).db()?;
            remove(&mut addrs, "addrs", &addr)?.ok_or(StoreError::UnknownReservation { name: addr })
        })
    }

    fn addrs(&self, account: Option<&str>) -> Result<Vec<AddrReservation>, StoreError> {
        self.read(|txn| {
            check_filter(txn, account)?;
            list(txn, ADDRS, "addrs", |a: &AddrReservation| {
                owned_by(account, &a.account)
            })
        })
    }

    fn allow(&self, account: &str, entry: &str) -> Result<WhitelistEntry, StoreError> {
        let net = net::parse_net(entry)?;
        self.write(|txn| {
            require(&txn.open_table(ACCOUNTS).db()?, account)?;
            let mut list = txn.open_table(WHITELIST).db()?;
            let key = whitelist_key(account, &net);
            if let Some(existing) = get(&list, "whitelist", &key)? {
                return Ok(existing);
            }
            let e = WhitelistEntry {
                account: account.into(),
                net,
                created: now(),
            };
            put(&mut list, &key, &e)?;
            Ok(e)
        })
    }

    fn disallow(&self, account: &str, entry: &str) -> Result<(), StoreError> {
        let net = net::parse_net(entry)?;
        self.write(|txn| {
            require(&txn.open_table(ACCOUNTS).db()?, account)?;
            let mut list = txn.open_table(WHITELIST).db()?;
            let removed = list
                .remove(whitelist_key(account, &net).as_str())
                .db()?
                .is_some();
            if removed {
                Ok(())
            } else {
                Err(StoreError::UnknownWhitelistEntry {
                    account: account.into(),
                    entry: net.to_string(),
                })
            }
        })
    }

    fn whitelist(&self, account: Option<&str>) -> Result<Vec<WhitelistEntry>, StoreError> {
        self.read(|txn| {
            check_filter(txn, account)?;
            let Some(a) = account else {
                return list(txn, WHITELIST, "whitelist", |_: &WhitelistEntry| true);
            };
            // '!' is the byte after ' ', so this is every `a …` key and nothing else.
            let (lo, hi) = (format!("{a} "), format!("{a}!"));
            let table = txn.open_table(WHITELIST).db()?;
            let entries = collect(table.range(lo.as_str()..hi.as_str()).db()?, "whitelist")?;
            Ok(entries.into_iter().map(|(_, e)| e).collect())
        })
    }

    fn add_ssh_key(&self, account: &str, line: &str) -> Result<SshKey, StoreError> {
        let parsed = ssh::parse_key(line)?;
        self.write(|txn| {
            require(&txn.open_table(ACCOUNTS).db()?, account)?;
            let mut keys = txn.open_table(SSH_KEYS).db()?;
            if let Some(k) = get::<SshKey>(&keys, "ssh_keys", &parsed.fingerprint)? {
                return if k.account == account {
                    Ok(k)
                } else {
                    Err(StoreError::SshKeyTaken {
                        fingerprint: parsed.fingerprint,
                    })
                };
            }
            let k = SshKey {
                account: account.into(),
                fingerprint: parsed.fingerprint,
                algorithm: parsed.algorithm,
                comment: parsed.comment,
                line: parsed.line,
                created: now(),
            };
            put(&mut keys, &k.fingerprint, &k)?;
            Ok(k)
        })
    }

    fn remove_ssh_key(&self, fingerprint: &str) -> Result<SshKey, StoreError> {
        self.write(|txn| {
            let mut keys = txn.open_table(SSH_KEYS).db()?;
            remove(&mut keys, "ssh_keys", fingerprint)?.ok_or_else(|| StoreError::UnknownSshKey {
                fingerprint: fingerprint.into(),
            })
        })
    }

    fn ssh_keys(&self, account: Option<&str>) -> Result<Vec<SshKey>, StoreError> {
        self.read(|txn| {
            check_filter(txn, account)?;
            list(txn, SSH_KEYS, "ssh_keys", |k: &SshKey| {
                owned_by(account, &k.account)
            })
        })
    }

    fn account_for_key(&self, fingerprint: &str) -> Result<Option<SshKey>, StoreError> {
        self.read(|txn| get(&txn.open_table(SSH_KEYS).db()?, "ssh_keys", fingerprint))
    }

    fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(LEASES).db()?;
            Ok(scan::<Lease>(&table, "leases")?
                .into_iter()
                .map(lease_record)
                .collect())
        })
    }

    fn save_leases(&self, leases: &[LeaseRecord]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(LEASES).db()?;
            table.retain(|_, _| false).db()?;
            for l in leases {
                let lease = Lease {
                    client_id: l.client_id.clone(),
                    holder: l.holder,
                    expires: l.expires,
                };
                put(&mut table, &l.key, &lease)?;
            }
            Ok(())
        })
    }
}
