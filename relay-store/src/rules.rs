//! The rules between accounts' reservations, checked inside the transaction that writes.

use crate::backend::{get, range, Table, Txn};
use crate::error::StoreError;
use crate::model::{AddrReservation, DomainReservation};
use crate::names;

/// What domain and address reservations share for the check of an existing one.
pub(crate) trait Held: Clone {
    fn owner(&self) -> &str;
    fn region(&self) -> &str;
}

impl Held for DomainReservation {
    fn owner(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        &self.region
    }
}

impl Held for AddrReservation {
    fn owner(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        &self.region
    }
}

/// The same account may reserve again in the same region (and gets what it has); another
/// account may not at all.
pub(crate) fn existing<T: Held>(
    held: Option<T>,
    account: &str,
    name: &str,
    region: &str,
) -> Result<Option<T>, StoreError> {
    let Some(r) = held else { return Ok(None) };
    if r.owner() != account {
        return Err(StoreError::ReservedByOther { name: name.into() });
    }
    if r.region() != region {
        return Err(StoreError::RegionMismatch {
            name: name.into(),
            existing: r.region().into(),
            requested: region.into(),
        });
    }
    Ok(Some(r))
}

/// Refuses `name` for `account` if it lies under another account's wildcard, or if it is a
/// wildcard that would match another account's name (exact or wildcard).
pub(crate) fn domain_conflicts(
    txn: &mut dyn Txn,
    account: &str,
    name: &str,
) -> Result<(), StoreError> {
    // Point lookups of the few wildcards that could cover the name, one per parent domain.
    for wildcard in names::covering_wildcards(name) {
        let w = get::<DomainReservation>(txn, Table::Domains, &names::domain_key(&wildcard))?;
        if w.is_some_and(|w| w.account != account) {
            return Err(StoreError::CoveredByWildcard {
                name: name.into(),
                wildcard,
            });
        }
    }
    let Some(base) = name.strip_prefix("*.") else {
        return Ok(());
    };
    // Keys are reversed names, so everything under the base is one range.
    let (lo, hi) = names::subtree(&names::domain_key(base));
    let under: Vec<(String, DomainReservation)> = range(txn, Table::Domains, &lo, &hi)?;
    match under
        .into_iter()
        .find(|(_, d)| d.account != account && d.name != name)
    {
        Some((_, other)) => Err(StoreError::WouldCover {
            name: name.into(),
            covered: other.name,
        }),
        None => Ok(()),
    }
}
