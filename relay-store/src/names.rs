//! Validation of account names, regions, labels, domain names and TCP addresses, and the
//! wildcard matching the relay applies to a visitor's Host.

use crate::error::{DomainProblem, StoreError};
use crate::model::DomainReservation;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Checks an account name against `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn account_name(name: &str) -> Result<(), StoreError> {
    let b = name.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidAccountName { name: name.into() })
    }
}

/// Checks a region against `[a-z0-9][a-z0-9-]{0,31}`.
pub fn region(region: &str) -> Result<(), StoreError> {
    let b = region.as_bytes();
    let ok = (1..=32).contains(&b.len())
        && b[0] != b'-'
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidRegion {
            region: region.into(),
        })
    }
}

/// Checks a token label: free text, but short and printable, since it is shown in listings.
pub fn label(label: &str) -> Result<(), StoreError> {
    if label.chars().count() <= 128 && !label.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(StoreError::InvalidLabel {
            label: label.into(),
        })
    }
}

/// Lowercases a domain name, drops one trailing dot, and checks it as a hostname or as a
/// wildcard `*.example.com`.
pub fn domain(name: &str) -> Result<String, StoreError> {
    let invalid = |problem| StoreError::InvalidDomain {
        name: name.into(),
        problem,
    };
    let lower = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if lower.len() > 253 {
        return Err(invalid(DomainProblem::TooLong));
    }
    if lower == "*" {
        return Err(invalid(DomainProblem::BareWildcard));
    }
    let (wildcard, rest) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let labels: Vec<&str> = rest.split('.').collect();
    for l in &labels {
        if l.is_empty() {
            return Err(invalid(DomainProblem::EmptyLabel));
        }
        if l.contains('*') {
            return Err(invalid(DomainProblem::WildcardNotLeftmost));
        }
        if !l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
            return Err(invalid(DomainProblem::BadCharacter));
        }
        if l.len() > 63 {
            return Err(invalid(DomainProblem::LabelTooLong));
        }
        if l.starts_with('-') || l.ends_with('-') {
            return Err(invalid(DomainProblem::EdgeHyphen));
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(invalid(DomainProblem::NumericTld));
    }
    if wildcard && labels.len() < 2 {
        return Err(invalid(DomainProblem::WildcardTooBroad));
    }
    Ok(lower)
}

/// The table key of a domain name: its labels in reverse (`com.example.*`), so that every
/// name under a suffix is one contiguous key range.
pub(crate) fn domain_key(name: &str) -> String {
    name.rsplit('.').collect::<Vec<_>>().join(".")
}

/// The key range holding every name strictly under `suffix` (given as a table key).
pub(crate) fn subtree(suffix_key: &str) -> (String, String) {
    // '/' is the byte after '.', so the range ends right after the last `suffix.…` key.
    (format!("{suffix_key}."), format!("{suffix_key}/"))
}

/// The wildcards that would cover `name` (a validated name, itself exact or wildcard):
/// `*.` over each proper suffix of two labels or more.
pub(crate) fn covering_wildcards(name: &str) -> Vec<String> {
    let labels: Vec<&str> = name.split('.').collect();
    (1..labels.len().saturating_sub(1))
        .map(|i| format!("*.{}", labels[i..].join(".")))
        .filter(|w| w != name)
        .collect()
}

/// Whether `host` is matched by `pattern`: an exact name matches itself, and `*.example.com`
/// matches any name under `example.com` (`a.example.com`, `a.b.example.com`) but not
/// `example.com`. Case is ignored, and so is a trailing dot on `host`.
pub fn wildcard_matches(pattern: &str, host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).as_bytes();
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return host.eq_ignore_ascii_case(pattern.as_bytes());
    };
    let suffix = suffix.as_bytes();
    // The host must be at least one non-empty label, a dot, then the suffix.
    if host.len() < suffix.len() + 2 {
        return false;
    }
    let (head, tail) = host.split_at(host.len() - suffix.len());
    tail.eq_ignore_ascii_case(suffix) && head.ends_with(b".") && head.len() > 1
}

/// The reservation serving `host`: an exact name if one matches, else the matching wildcard
/// with the longest suffix.
pub fn owner_of<'a>(domains: &'a [DomainReservation], host: &str) -> Option<&'a DomainReservation> {
    let mut best: Option<&DomainReservation> = None;
    for d in domains.iter().filter(|d| wildcard_matches(&d.name, host)) {
        if !d.name.starts_with("*.") {
            return Some(d);
        }
        if best.is_none_or(|b| d.name.len() > b.name.len()) {
            best = Some(d);
        }
    }
    best
}

/// Parses `host:port` (an IPv6 host in brackets) into the canonical address, the host
/// without brackets, and the port.
pub fn addr(addr: &str) -> Result<(String, String, u16), StoreError> {
    let invalid = |reason: String| StoreError::InvalidAddr {
        addr: addr.into(),
        reason,
    };
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (ip, port) = rest
            .split_once("]:")
            .ok_or_else(|| invalid("expected [IPv6]:port".into()))?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| invalid(format!("{ip:?} is not an IPv6 address")))?;
        (IpAddr::V6(ip).to_string(), port)
    } else {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected host:port".into()))?;
        if host.contains(':') {
            return Err(invalid(
                "an IPv6 host goes in brackets, as in [::1]:80".into(),
            ));
        }
        let host = match host.parse::<Ipv4Addr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => match domain(host) {
                Ok(h) if !h.starts_with("*.") => h,
                Ok(_) => return Err(invalid("a wildcard is not an address".into())),
                Err(StoreError::InvalidDomain { problem, .. }) => {
                    return Err(invalid(format!("host {host:?}: {problem}")))
                }
                Err(e) => return Err(e),
            },
        };
        (host, port)
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|c| c.is_ascii_digit()) => p,
        _ => return Err(invalid(format!("port {port:?} is not 1 to 65535"))),
    };
    let canonical = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok((canonical, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(name: &str) -> DomainProblem {
        match domain(name) {
            Err(StoreError::InvalidDomain { problem, .. }) => problem,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn account_names() {
        for ok in ["a", "0", "team-1", "a_b", &"a".repeat(63)] {
            account_name(ok).unwrap();
        }
        for bad in ["", "-a", "_a", "A", "a.b", "a b", "é", &"a".repeat(64)] {
            assert!(matches!(
                account_name(bad),
                Err(StoreError::InvalidAccountName { .. })
            ));
        }
    }

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(domain("App.Example.COM.").unwrap(), "app.example.com");
        assert_eq!(domain("*.Example.com").unwrap(), "*.example.com");
        assert_eq!(domain("*.a.example.com").unwrap(), "*.a.example.com");
        assert_eq!(domain("localhost").unwrap(), "localhost");
        assert_eq!(problem(""), DomainProblem::EmptyLabel);
        assert_eq!(problem("a..b"), DomainProblem::EmptyLabel);
        assert_eq!(problem(".a.b"), DomainProblem::EmptyLabel);
        assert_eq!(
            problem(&format!("{}.com", "a".repeat(64))),
            DomainProblem::LabelTooLong
        );
        assert_eq!(problem("a_b.com"), DomainProblem::BadCharacter);
        assert_eq!(problem("ä.com"), DomainProblem::BadCharacter);
        assert_eq!(problem("-a.com"), DomainProblem::EdgeHyphen);
        let long = format!("{}.com", vec!["a".repeat(63); 4].join("."));
        assert_eq!(problem(&long), DomainProblem::TooLong);
        assert_eq!(problem("a.*.com"), DomainProblem::WildcardNotLeftmost);
        assert_eq!(
            problem("*a.example.com"),
            DomainProblem::WildcardNotLeftmost
        );
        assert_eq!(
            problem("**.example.com"),
            DomainProblem::WildcardNotLeftmost
        );
        assert_eq!(problem("*"), DomainProblem::BareWildcard);
        assert_eq!(problem("*.com"), DomainProblem::WildcardTooBroad);
        assert_eq!(problem("1.2.3.4"), DomainProblem::NumericTld);
        let msg = domain("a..b").unwrap_err().to_string();
        assert!(
            msg.contains("\"a..b\"") && msg.contains("empty label"),
            "{msg}"
        );
    }

    #[test]
    fn wildcards_match_names_below_not_the_apex() {
        assert!(wildcard_matches("*.example.com", "foo.example.com"));
        assert!(wildcard_matches("*.example.com", "foo.bar.example.com"));
        assert!(wildcard_matches("*.example.com", "Foo.Example.com."));
        assert!(!wildcard_matches("*.example.com", "example.com"));
        assert!(!wildcard_matches("*.example.com", ".example.com"));
        assert!(!wildcard_matches("*.example.com", "fooexample.com"));
        assert!(!wildcard_matches("*.example.com", "ä.com"));
        assert!(wildcard_matches("app.example.com", "APP.example.com"));
        assert!(!wildcard_matches("app.example.com", "x.app.example.com"));
    }

    #[test]
    fn the_most_specific_reservation_owns_a_host() {
        let r = |name: &str, account: &str| DomainReservation {
            name: name.into(),
            account: account.into(),
            region: "us".into(),
            created: 0,
        };
        let all = [
            r("*.example.com", "a"),
            r("*.b.example.com", "b"),
            r("x.b.example.com", "c"),
        ];
        let owner = |h| owner_of(&all, h).map(|d| d.account.as_str());
        assert_eq!(owner("x.b.example.com"), Some("c"));
        assert_eq!(owner("y.b.example.com"), Some("b"));
        assert_eq!(owner("z.y.b.example.com"), Some("b"));
        assert_eq!(owner("y.example.com"), Some("a"));
        assert_eq!(owner("example.com"), None);
    }

    #[test]
    fn covering_wildcards_are_the_proper_suffixes() {
        assert_eq!(
            covering_wildcards("a.b.example.com"),
            ["*.b.example.com", "*.example.com"]
        );
        assert_eq!(covering_wildcards("*.b.example.com"), ["*.example.com"]);
        assert!(covering_wildcards("example.com").is_empty());
        assert_eq!(domain_key("*.example.com"), "com.example.*");
    }

    #[test]
    fn addresses() {
        let ok = |a: &str| addr(a).unwrap();
        assert_eq!(
            ok("Relay.Example.com:9000"),
            (
                "relay.example.com:9000".into(),
                "relay.example.com".into(),
                9000
            )
        );
        assert_eq!(ok("[0:0::1]:22"), ("[::1]:22".into(), "::1".into(), 22));
        assert_eq!(ok("10.0.0.1:65535").2, 65535);
        for bad in [
            "host",
            "host:0",
            "host:65536",
            "host:+80",
            "host:",
            ":80",
            "::1:80",
            "[::1]80",
            "[zz]:80",
            "*.example.com:80",
            "999.1.1.1:80",
            "a b:80",
        ] {
            assert!(
                matches!(addr(bad), Err(StoreError::InvalidAddr { .. })),
                "{bad}: {:?}",
                addr(bad)
            );
        }
    }
}
