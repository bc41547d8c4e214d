//! HTTP basic auth enforced at the relay for tunnels bound with `auth`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// The `Authorization` value a visitor must send for `user:password` credentials.
pub fn expected_header(credentials: &str) -> String {
    format!("Basic {}", STANDARD.encode(credentials.as_bytes()))
}

/// Whether the request's `Authorization` header matches, compared in constant time.
pub fn authorized(headers: &[(String, Vec<u8>)], expected: &str) -> bool {
    let mut ok = 0u8;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("authorization") {
            let v = trim(value);
            // The scheme name is case-insensitive; the token is not.
            let normalised: Vec<u8> = match v.get(..6) {
                Some(s) if s.eq_ignore_ascii_case(b"basic ") => {
                    [b"Basic ".as_slice(), trim(&v[6..])].concat()
                }
                _ => v.to_vec(),
            };
            ok |= normalised.ct_eq(expected.as_bytes()).unwrap_u8();
        }
    }
    ok == 1
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_credentials() {
        let want = expected_header("user:pa ss");
        let h = |v: &str| vec![("Authorization".to_string(), v.as_bytes().to_vec())];
        assert!(authorized(&h(&want), &want));
        assert!(authorized(
            &h(&format!("basic  {}", STANDARD.encode(b"user:pa ss"))),
            &want
        ));
        assert!(!authorized(&h(&expected_header("user:wrong")), &want));
        assert!(!authorized(&[], &want));
    }
}
