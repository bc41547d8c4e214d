//! The pure half of the Supervisor: from the old desired set of tunnels and the new one,
//! the typed changes that turn one into the other.

use crate::tunnels::spec::TunnelSpec;
use burrow_protocol::control::{BindTls, TunnelProto};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The tunnels wanted, by name.
pub type Desired = BTreeMap<String, Arc<TunnelSpec>>;

/// One step from the running set toward the desired one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Bind a new tunnel.
    Add(Arc<TunnelSpec>),
    /// Unbind a tunnel by name.
    Remove(String),
    /// Change only the schemes an http tunnel serves (keeps its URL and connections).
    SetSchemes(String, BindTls),
}

/// The changes that turn `old` into `new`, removals first so names free up before reuse.
pub fn diff(old: &Desired, new: &Desired) -> Vec<Change> {
    let mut removes = Vec::new();
    let mut adds = Vec::new();
    for (name, spec) in old {
        match new.get(name) {
            None => removes.push(Change::Remove(name.clone())),
            Some(n) if n == spec => {}
            Some(n) if only_schemes_differ(spec, n) => {
                adds.push(Change::SetSchemes(name.clone(), n.request.bind_tls));
            }
            Some(n) => {
                removes.push(Change::Remove(name.clone()));
                adds.push(Change::Add(n.clone()));
            }
        }
    }
    for (name, spec) in new {
        if !old.contains_key(name) {
            adds.push(Change::Add(spec.clone()));
        }
    }
    removes.extend(adds);
    removes
}

fn only_schemes_differ(a: &TunnelSpec, b: &TunnelSpec) -> bool {
    if a.proto() != TunnelProto::Http || b.proto() != TunnelProto::Http {
        return false;
    }
    let mut b2 = b.clone();
    b2.request.bind_tls = a.request.bind_tls;
    &b2 == a
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_protocol::control::TunnelRequest;

    fn spec(name: &str, addr: &str, bind_tls: BindTls) -> Arc<TunnelSpec> {
        Arc::new(TunnelSpec::new(
            name,
            TunnelRequest {
                bind_tls,
                ..TunnelRequest::new(TunnelProto::Http)
            },
            crate::local::addr::parse(TunnelProto::Http, addr).unwrap(),
        ))
    }

    fn set(specs: &[Arc<TunnelSpec>]) -> Desired {
        specs.iter().map(|s| (s.name.clone(), s.clone())).collect()
    }

    #[test]
    fn adds_removes_replaces_and_scheme_changes() {
        let a = spec("a", "80", BindTls::Both);
        let b = spec("b", "81", BindTls::Both);
        let b2 = spec("b", "82", BindTls::Both);
        let c = spec("c", "83", BindTls::Both);
        let a_https = spec("a", "80", BindTls::Https);
        assert_eq!(
            diff(&set(&[]), &set(std::slice::from_ref(&a))),
            vec![Change::Add(a.clone())]
        );
        assert_eq!(
            diff(
                &set(std::slice::from_ref(&a)),
                &set(std::slice::from_ref(&a))
            ),
            vec![]
        );
        assert_eq!(
            diff(&set(&[a.clone(), b]), &set(&[b2.clone(), c.clone()])),
            vec![
                Change::Remove("a".into()),
                Change::Remove("b".into()),
                Change::Add(b2),
                Change::Add(c)
            ]
        );
        assert_eq!(
            diff(&set(&[a]), &set(&[a_https])),
            vec![Change::SetSchemes("a".into(), BindTls::Https)]
        );
    }
}
