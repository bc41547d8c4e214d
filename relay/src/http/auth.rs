//! HTTP basic auth enforced at the relay for tunnels bound with `auth`.

use subtle::ConstantTimeEq;

/// Standard base64 (RFC 4648, with padding).
pub fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `Authorization` value a visitor must send for `user:password` credentials.
pub fn expected_header(credentials: &str) -> String {
    format!("Basic {}", base64(credentials.as_bytes()))
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
    fn rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn checks_credentials() {
        let want = expected_header("user:pa ss");
        let h = |v: &str| vec![("Authorization".to_string(), v.as_bytes().to_vec())];
        assert!(authorized(&h(&want), &want));
        assert!(authorized(
            &h(&format!("basic  {}", base64(b"user:pa ss"))),
            &want
        ));
        assert!(!authorized(&h(&expected_header("user:wrong")), &want));
        assert!(!authorized(&[], &want));
    }
}
