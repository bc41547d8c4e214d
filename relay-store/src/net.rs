//! IP whitelist entries: parsing into normalised networks, and the check of a visitor's address.

use crate::error::StoreError;
use ipnet::{IpNet, Ipv4Net};
use std::net::IpAddr;

/// Parses an address or CIDR block, v4 or v6, into its network with the host bits cleared;
/// a bare address becomes a /32 or /128, and an IPv4-mapped IPv6 block its IPv4 block.
pub fn parse_net(entry: &str) -> Result<IpNet, StoreError> {
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(net_err) => match entry.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => {
                return Err(StoreError::InvalidNet {
                    entry: entry.into(),
                    detail: net_err.to_string(),
                })
            }
        },
    };
    Ok(unmap(net).trunc())
}

/// `::ffff:a.b.c.d/n` as `a.b.c.d/(n-96)`: visitors arriving on a dual-stack socket are
/// checked as IPv4, so their entries must be IPv4 too.
fn unmap(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else { return net };
    match (v6.addr().to_ipv4_mapped(), v6.prefix_len().checked_sub(96)) {
        (Some(v4), Some(len)) => Ipv4Net::new(v4, len).map_or(net, IpNet::V4),
        _ => net,
    }
}

/// Whether a visitor from `ip` may pass: an empty whitelist allows everyone, and an
/// IPv4-mapped IPv6 address is checked as the IPv4 address it carries.
pub fn allowed(entries: &[IpNet], ip: IpAddr) -> bool {
    if entries.is_empty() {
        return true;
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    entries.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        parse_net(s).unwrap()
    }

    #[test]
    fn entries_are_normalised() {
        assert_eq!(net("10.1.2.3"), "10.1.2.3/32".parse().unwrap());
        assert_eq!(net("10.1.2.3/8"), "10.0.0.0/8".parse().unwrap());
        assert_eq!(net("2001:db8::1"), "2001:db8::1/128".parse().unwrap());
        assert_eq!(net("2001:db8::1/32"), "2001:db8::/32".parse().unwrap());
        assert_eq!(net("::ffff:192.0.2.7/120"), "192.0.2.0/24".parse().unwrap());
        assert_eq!(net("::ffff:192.0.2.7"), "192.0.2.7/32".parse().unwrap());
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0",
            "example.com",
            "::1/129",
            "1.2.3.4/",
        ] {
            let err = parse_net(bad).unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidNet { entry, .. } if entry == bad),
                "{err}"
            );
        }
    }

    #[test]
    fn visitors_are_checked_against_v4_v6_and_mapped_entries() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(allowed(&[], ip("203.0.113.9")));
        let list = [net("192.0.2.0/24"), net("2001:db8::/32")];
        assert!(allowed(&list, ip("192.0.2.200")));
        assert!(!allowed(&list, ip("192.0.3.1")));
        assert!(allowed(&list, ip("2001:db8:1::5")));
        assert!(!allowed(&list, ip("2001:db9::5")));
        assert!(allowed(&list, ip("::ffff:192.0.2.5")));
        assert!(!allowed(&list, ip("::ffff:198.51.100.1")));
        assert!(allowed(&[net("::ffff:192.0.2.0/120")], ip("192.0.2.1")));
    }
}
