//! Host-name rules shared by the relay (what it binds) and the agent (what it asks for).

/// Checks a custom hostname, exact or wildcard (`*.example.com`).
pub fn custom_hostname(h: &str, domain: &str) -> Result<String, String> {
    let Some(parent) = h.strip_prefix("*.") else {
        return validate_hostname(h);
    };
    let parent = validate_hostname(parent)
        .map_err(|_| format!("invalid wildcard hostname {h:?}: want *.example.com"))?;
    // A wildcard over the relay's own domain would catch every other agent's random names.
    if domain == parent || domain.ends_with(&format!(".{parent}")) {
        return Err(format!(
            "wildcard hostname {h:?} would cover this relay's domain {domain}"
        ));
    }
    Ok(format!("*.{parent}"))
}

/// Checks a subdomain label: 1–63 letters, digits or inner hyphens.
pub fn validate_label(s: &str) -> Result<String, String> {
    let l = s.to_ascii_lowercase();
    let ok = !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-');
    if ok {
        Ok(l)
    } else {
        Err(format!(
            "invalid subdomain {s:?}: use 1-63 letters, digits or inner hyphens"
        ))
    }
}

/// Checks a full hostname: dot-separated valid labels, at most 253 bytes (one trailing dot
/// is dropped).
pub fn validate_hostname(h: &str) -> Result<String, String> {
    let l = h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
    let ok = l.len() <= 253
        && l.contains('.')
        && l.split('.').all(|label| validate_label(label).is_ok());
    if ok {
        Ok(l)
    } else {
        Err(format!("invalid hostname {h:?}"))
    }
}

/// Checks a `Host` value an agent asks the relay to put on its requests: it goes into every
/// request head verbatim, so nothing that could end the header line or the head.
pub fn validate_host_header(h: &str) -> Result<(), String> {
    if !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "invalid host_header {h:?}: want a host[:port] without spaces"
        ))
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
        assert_eq!(custom_hostname("*.Dev.Test", d).unwrap(), "*.dev.test");
        assert!(custom_hostname("*.example.com", d)
            .unwrap_err()
            .contains("cover"));
        assert!(custom_hostname("*.tunnels.example.com", d)
            .unwrap_err()
            .contains("cover"));
        assert!(custom_hostname("*.*.dev.test", d)
            .unwrap_err()
            .contains("wildcard"));
        assert!(custom_hostname("a.*.dev.test", d).is_err());
        assert!(validate_host_header("site.dev:8080").is_ok());
        for bad in ["", "a\r\nX-Evil: 1", "a b", "é", &"x".repeat(256)] {
            assert!(validate_host_header(bad).is_err(), "{bad:?}");
        }
    }
}
