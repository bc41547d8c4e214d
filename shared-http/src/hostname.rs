//! Host-name rules shared by the relay (what it binds) and the agent (what it asks for).

/// A subdomain, hostname or `Host` value that breaks the rules, with the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    /// Not a DNS label.
    #[error("invalid subdomain {0:?}: use 1-63 letters, digits or inner hyphens")]
    Label(String),
    /// Not a dot-separated name of valid labels.
    #[error("invalid hostname {0:?}")]
    Hostname(String),
    /// A `*.` name whose parent is not a valid hostname.
    #[error("invalid wildcard hostname {0:?}: want *.example.com")]
    Wildcard(String),
    /// A wildcard that would also match the relay's own random names.
    #[error("wildcard hostname {host:?} would cover this relay's domain {domain}")]
    CoversDomain {
        /// The wildcard asked for.
        host: String,
        /// The relay's domain.
        domain: String,
    },
    /// A `Host` value that could break the request head it is written into.
    #[error("invalid host_header {0:?}: want a host[:port] without spaces")]
    HostHeader(String),
}

/// `host` and then each wildcard that covers it, most specific first: `a.b.c` gives
/// `a.b.c`, `*.b.c`, `*.c` — the order routes and held names are looked up in.
pub fn and_wildcards(host: &str) -> impl Iterator<Item = String> + '_ {
    let parents = std::iter::successors(host.split_once('.').map(|(_, p)| p), |p| {
        p.split_once('.').map(|(_, q)| q)
    });
    std::iter::once(host.to_string()).chain(parents.map(|p| format!("*.{p}")))
}

/// Checks a custom hostname, exact or wildcard (`*.example.com`).
pub fn custom_hostname(h: &str, domain: &str) -> Result<String, HostnameError> {
    let Some(parent) = h.strip_prefix("*.") else {
        return validate_hostname(h);
    };
    let parent = validate_hostname(parent).map_err(|_| HostnameError::Wildcard(h.to_string()))?;
    // A wildcard over the relay's own domain would catch every other agent's random names.
    if domain == parent || domain.ends_with(&format!(".{parent}")) {
        return Err(HostnameError::CoversDomain {
            host: h.to_string(),
            domain: domain.to_string(),
        });
    }
    Ok(format!("*.{parent}"))
}

/// Checks a subdomain label: 1–63 letters, digits or inner hyphens.
pub fn validate_label(s: &str) -> Result<String, HostnameError> {
    let l = s.to_ascii_lowercase();
    let ok = !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-');
    if ok {
        Ok(l)
    } else {
        Err(HostnameError::Label(s.to_string()))
    }
}

/// Checks a full hostname: dot-separated valid labels, at most 253 bytes (one trailing dot
/// is dropped).
pub fn validate_hostname(h: &str) -> Result<String, HostnameError> {
    let l = h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
    let ok = l.len() <= 253
        && l.contains('.')
        && l.split('.').all(|label| validate_label(label).is_ok());
    if ok {
        Ok(l)
    } else {
        Err(HostnameError::Hostname(h.to_string()))
    }
}

/// Checks a `Host` value an agent asks the relay to put on its requests: it goes into every
/// request head verbatim, so nothing that could end the header line or the head.
pub fn validate_host_header(h: &str) -> Result<(), HostnameError> {
    if !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(HostnameError::HostHeader(h.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(validate_label("My-App1").unwrap(), "my-app1");
        for bad in ["", "-a", "a-", "a_b", "a.b", &"x".repeat(64)] {
            assert!(validate_label(bad).is_err(), "{bad}");
        }
        assert!(validate_hostname("dev.example.com").is_ok());
        assert!(validate_hostname("example").is_err());
        assert!(validate_hostname("a..b").is_err());
        assert!(
            validate_hostname("*.example.com").is_err(),
            "wildcards only via pick_host"
        );
        assert_eq!(
            validate_hostname("Dev.Example.COM.").unwrap(),
            "dev.example.com"
        );
        let d = "tunnels.example.com";
        let custom = custom_hostname;
        assert_eq!(custom("*.Dev.Test", d).unwrap(), "*.dev.test");
        assert!(custom("*.example.com", d)
            .unwrap_err()
            .to_string()
            .contains("cover"));
        assert!(custom("*.tunnels.example.com", d)
            .unwrap_err()
            .to_string()
            .contains("cover"));
        assert!(custom("*.*.dev.test", d)
            .unwrap_err()
            .to_string()
            .contains("wildcard"));
        assert!(custom("a.*.dev.test", d).is_err());
        assert!(validate_host_header("site.dev:8080").is_ok());
        for bad in ["", "a\r\nX-Evil: 1", "a b", "é", &"x".repeat(256)] {
            assert!(validate_host_header(bad).is_err(), "{bad:?}");
        }
    }
}
