//! The store's operations, written once over [`Backend`]: each one transaction that checks
//! every rule before it writes, whichever backend runs it.

use crate::backend::{self, get, put, range, remove, scan, Backend, Table, Txn};
use crate::error::StoreError;
use crate::model::{
    Account, AddrReservation, DomainReservation, IssuedToken, LeaseRecord, Quotas, SshKey,
    TokenInfo, WhitelistEntry,
};
use crate::rules::{domain_conflicts, existing};
use crate::{names, net, ssh, token, Store};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// A lease as leases.json and the leases table hold it: the key is the map's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Lease {
    pub(crate) client_id: String,
    #[serde(default)]
    pub(crate) holder: u64,
    pub(crate) expires: Option<u64>,
}

/// A token as stored: its info and the hash it is keyed by, compared in constant time.
#[derive(Debug, Serialize, Deserialize)]
struct StoredToken {
    hash: String,
    info: TokenInfo,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn lease_record((key, l): (String, Lease)) -> LeaseRecord {
    LeaseRecord {
        key,
        client_id: l.client_id,
        holder: l.holder,
        expires: l.expires,
    }
}

/// The account named `name`, or the error saying there is none.
fn require(txn: &mut dyn Txn, name: &str) -> Result<Account, StoreError> {
    get(txn, Table::Accounts, name)?.ok_or_else(|| StoreError::UnknownAccount { name: name.into() })
}

/// Refuses a listing filtered by an account that does not exist, rather than listing nothing.
fn check_filter(txn: &mut dyn Txn, account: Option<&str>) -> Result<(), StoreError> {
    match account {
        Some(a) => require(txn, a).map(drop),
        None => Ok(()),
    }
}

/// Every record of `table` that `keep` accepts.
fn list<T: DeserializeOwned>(
    txn: &mut dyn Txn,
    table: Table,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<T>, StoreError> {
    Ok(scan(txn, table)?
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| keep(v))
        .collect())
}

/// Removes every record of `table` that `doomed` picks, returning them.
fn remove_where<T: DeserializeOwned>(
    txn: &mut dyn Txn,
    table: Table,
    doomed: impl Fn(&T) -> bool,
) -> Result<Vec<T>, StoreError> {
    let picked: Vec<(String, T)> = scan(txn, table)?
        .into_iter()
        .filter(|(_, v)| doomed(v))
        .collect();
    for (key, _) in &picked {
        txn.remove(table, key)?;
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

/// Adds a token for `secret` unless its hash is there already (then it must be this account's).
fn insert_token<B: Backend + ?Sized>(
    store: &B,
    account: &str,
    label: &str,
    secret: &str,
) -> Result<TokenInfo, StoreError> {
    names::label(label)?;
    let hash = token::hash(secret);
    store.update(|txn| {
        require(txn, account)?;
        if let Some(t) = get::<StoredToken>(txn, Table::Tokens, &hash)? {
            return if t.info.account == account {
                Ok(t.info)
            } else {
                Err(StoreError::TokenTaken {
                    label: label.into(),
                })
            };
        }
        let id = loop {
            let id = token::new_id();
            if txn.get(Table::TokenIds, &id)?.is_none() {
                break id;
            }
        };
        // The id table holds the bare hash, as the first redb files did.
        txn.put(Table::TokenIds, &id, hash.clone().into_bytes())?;
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
        put(txn, Table::Tokens, &hash, &stored)?;
        Ok(info)
    })
}

/// Replaces every lease in one transaction.
fn replace_leases<B: Backend + ?Sized>(
    store: &B,
    leases: &[LeaseRecord],
) -> Result<(), StoreError> {
    store.update(|txn| {
        for (key, _) in txn.scan(Table::Leases)? {
            txn.remove(Table::Leases, &key)?;
        }
        for l in leases {
            let lease = Lease {
                client_id: l.client_id.clone(),
                holder: l.holder,
                expires: l.expires,
            };
            put(txn, Table::Leases, &l.key, &lease)?;
        }
        Ok(())
    })
}

impl<B: Backend> Store for B {
    fn create_account(&self, name: &str) -> Result<Account, StoreError> {
        names::account_name(name)?;
        self.update(|txn| {
            if txn.get(Table::Accounts, name)?.is_some() {
                return Err(StoreError::AccountExists { name: name.into() });
            }
            let account = Account {
                name: name.into(),
                quotas: Quotas::default(),
                created: now(),
            };
            put(txn, Table::Accounts, name, &account)?;
            Ok(account)
        })
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.view(|txn| get(txn, Table::Accounts, name))
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.view(|txn| list(txn, Table::Accounts, |_: &Account| true))
    }

    fn set_quotas(&self, account: &str, quotas: Quotas) -> Result<Account, StoreError> {
        self.update(|txn| {
            let mut a = require(txn, account)?;
            a.quotas = quotas;
            put(txn, Table::Accounts, account, &a)?;
            Ok(a)
        })
    }

    fn delete_account(&self, name: &str) -> Result<(), StoreError> {
        self.update(|txn| {
            require(txn, name)?;
            txn.remove(Table::Accounts, name)?;
            let tokens: Vec<StoredToken> =
                remove_where(txn, Table::Tokens, |t: &StoredToken| t.info.account == name)?;
            for t in tokens {
                txn.remove(Table::TokenIds, &t.info.id)?;
            }
            let mine = |owner: &str| owner == name;
            remove_where(txn, Table::Domains, |d: &DomainReservation| {
                mine(&d.account)
            })?;
            remove_where(txn, Table::Addrs, |a: &AddrReservation| mine(&a.account))?;
            remove_where(txn, Table::Whitelist, |w: &WhitelistEntry| mine(&w.account))?;
            remove_where(txn, Table::SshKeys, |k: &SshKey| mine(&k.account))?;
            Ok(())
        })
    }

    fn issue_token(&self, account: &str, label: &str) -> Result<IssuedToken, StoreError> {
        let secret = token::new_secret();
        let info = insert_token(self, account, label, &secret)?;
        Ok(IssuedToken { info, secret })
    }

    fn add_token(&self, account: &str, label: &str, secret: &str) -> Result<TokenInfo, StoreError> {
        token::check_secret(secret)?;
        insert_token(self, account, label, secret)
    }

    fn tokens(&self, account: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        self.view(|txn| {
            check_filter(txn, account)?;
            let mut infos: Vec<TokenInfo> = list(txn, Table::Tokens, |t: &StoredToken| {
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
        self.update(|txn| {
            let hash = match txn.remove(Table::TokenIds, id)? {
                Some(h) => String::from_utf8(h)
                    .map_err(|_| backend::corrupt(format!("token {id} has a hash of bad UTF-8")))?,
                None => return Err(StoreError::UnknownToken { id: id.into() }),
            };
            let t: StoredToken = remove(txn, Table::Tokens, &hash)?
                .ok_or_else(|| backend::corrupt(format!("token {id} has no record")))?;
            Ok(t.info)
        })
    }

    fn authenticate(&self, secret: &str) -> Result<Option<TokenInfo>, StoreError> {
        if secret.is_empty() {
            return Ok(None);
        }
        let hash = token::hash(secret);
        self.view(|txn| {
            let found: Option<StoredToken> = get(txn, Table::Tokens, &hash)?;
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
        self.update(|txn| {
            require(txn, account)?;
            let held = get::<DomainReservation>(txn, Table::Domains, &key)?;
            if let Some(mine) = existing(held, account, &name, region)? {
                return Ok(mine);
            }
            domain_conflicts(txn, account, &name)?;
            let r = DomainReservation {
                name: name.clone(),
                account: account.into(),
                region: region.into(),
                created: now(),
            };
            put(txn, Table::Domains, &key, &r)?;
            Ok(r)
        })
    }

    fn release_domain(&self, name: &str) -> Result<DomainReservation, StoreError> {
        let name = names::domain(name)?;
        self.update(|txn| {
            remove(txn, Table::Domains, &names::domain_key(&name))?
                .ok_or_else(|| StoreError::UnknownReservation { name: name.clone() })
        })
    }

    fn domains(&self, account: Option<&str>) -> Result<Vec<DomainReservation>, StoreError> {
        self.view(|txn| {
            check_filter(txn, account)?;
            list(txn, Table::Domains, |d: &DomainReservation| {
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
        self.update(|txn| {
            require(txn, account)?;
            let held = get::<AddrReservation>(txn, Table::Addrs, &addr)?;
            if let Some(mine) = existing(held, account, &addr, region)? {
                return Ok(mine);
            }
            let r = AddrReservation {
                addr: addr.clone(),
                host: host.clone(),
                port,
                account: account.into(),
                region: region.into(),
                created: now(),
            };
            put(txn, Table::Addrs, &r.addr, &r)?;
            Ok(r)
        })
    }

    fn release_addr(&self, addr: &str) -> Result<AddrReservation, StoreError> {
        let (addr, _, _) = names::addr(addr)?;
        self.update(|txn| {
            remove(txn, Table::Addrs, &addr)?
                .ok_or_else(|| StoreError::UnknownReservation { name: addr.clone() })
        })
    }

    fn addrs(&self, account: Option<&str>) -> Result<Vec<AddrReservation>, StoreError> {
        self.view(|txn| {
            check_filter(txn, account)?;
            list(txn, Table::Addrs, |a: &AddrReservation| {
                owned_by(account, &a.account)
            })
        })
    }

    fn allow(&self, account: &str, entry: &str) -> Result<WhitelistEntry, StoreError> {
        let net = net::parse_net(entry)?;
        let key = whitelist_key(account, &net);
        self.update(|txn| {
            require(txn, account)?;
            if let Some(existing) = get(txn, Table::Whitelist, &key)? {
                return Ok(existing);
            }
            let e = WhitelistEntry {
                account: account.into(),
                net,
                created: now(),
            };
            put(txn, Table::Whitelist, &key, &e)?;
            Ok(e)
        })
    }

    fn disallow(&self, account: &str, entry: &str) -> Result<(), StoreError> {
        let net = net::parse_net(entry)?;
        self.update(|txn| {
            require(txn, account)?;
            if txn
                .remove(Table::Whitelist, &whitelist_key(account, &net))?
                .is_some()
            {
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
        self.view(|txn| {
            check_filter(txn, account)?;
            let Some(a) = account else {
                return list(txn, Table::Whitelist, |_: &WhitelistEntry| true);
            };
            // '!' is the byte after ' ', so this is every `a …` key and nothing else.
            let (lo, hi) = (format!("{a} "), format!("{a}!"));
            let entries: Vec<(String, WhitelistEntry)> = range(txn, Table::Whitelist, &lo, &hi)?;
            Ok(entries.into_iter().map(|(_, e)| e).collect())
        })
    }

    fn add_ssh_key(&self, account: &str, line: &str) -> Result<SshKey, StoreError> {
        let parsed = ssh::parse_key(line)?;
        self.update(|txn| {
            require(txn, account)?;
            if let Some(k) = get::<SshKey>(txn, Table::SshKeys, &parsed.fingerprint)? {
                return if k.account == account {
                    Ok(k)
                } else {
                    Err(StoreError::SshKeyTaken {
                        fingerprint: parsed.fingerprint.clone(),
                    })
                };
            }
            let k = SshKey {
                account: account.into(),
                fingerprint: parsed.fingerprint.clone(),
                algorithm: parsed.algorithm.clone(),
                comment: parsed.comment.clone(),
                line: parsed.line.clone(),
                created: now(),
            };
            put(txn, Table::SshKeys, &k.fingerprint, &k)?;
            Ok(k)
        })
    }

    fn remove_ssh_key(&self, fingerprint: &str) -> Result<SshKey, StoreError> {
        self.update(|txn| {
            remove(txn, Table::SshKeys, fingerprint)?.ok_or_else(|| StoreError::UnknownSshKey {
                fingerprint: fingerprint.into(),
            })
        })
    }

    fn ssh_keys(&self, account: Option<&str>) -> Result<Vec<SshKey>, StoreError> {
        self.view(|txn| {
            check_filter(txn, account)?;
            list(txn, Table::SshKeys, |k: &SshKey| {
                owned_by(account, &k.account)
            })
        })
    }

    fn account_for_key(&self, fingerprint: &str) -> Result<Option<SshKey>, StoreError> {
        self.view(|txn| get(txn, Table::SshKeys, fingerprint))
    }

    fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        self.view(|txn| {
            Ok(scan::<Lease>(txn, Table::Leases)?
                .into_iter()
                .map(lease_record)
                .collect())
        })
    }

    fn save_leases(&self, leases: &[LeaseRecord]) -> Result<(), StoreError> {
        match self.leases_kept_otherwise() {
            Some(refusal) => Err(refusal),
            None => replace_leases(self, leases),
        }
    }
}
