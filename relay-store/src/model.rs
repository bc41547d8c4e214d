//! The records the store keeps; they are also what the admin API returns as JSON.

use serde::{Deserialize, Serialize};

/// A team account: the owner of tokens, reservations, whitelist entries and SSH keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account's name, `[a-z0-9][a-z0-9_-]{0,62}`.
    pub name: String,
    /// The account's limits.
    pub quotas: Quotas,
    /// When it was created, in seconds since the Unix epoch.
    pub created: u64,
}

/// Per-account limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Agent sessions connected at once (default 10).
    pub sessions: u32,
    /// Tunnels open at once across those sessions (default 50).
    pub tunnels: u32,
    /// Public TCP ports held at once (default 5).
    pub tcp_ports: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            sessions: 10,
            tunnels: 50,
            tcp_ports: 5,
        }
    }
}

/// A token just issued: the only time its secret is seen.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// What the store keeps about the token.
    pub info: TokenInfo,
    /// The secret an agent presents; the store keeps only its SHA-256.
    pub secret: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Logs outlive the one moment the secret is meant to be shown in.
        f.debug_struct("IssuedToken")
            .field("info", &self.info)
            .field("secret", &"MASKED")
            .finish()
    }
}

/// An auth token as stored: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// `tok_` and 12 random hex digits; what an operator names to revoke it.
    pub id: String,
    /// The account the token authenticates as.
    pub account: String,
    /// The operator's note on what the token is for.
    pub label: String,
    /// When it was added, in seconds since the Unix epoch.
    pub created: u64,
    /// The first characters of the secret and `…`, to tell tokens apart; never the whole secret.
    pub hint: String,
}

/// A reserved public hostname, exact (`app.example.com`) or wildcard (`*.example.com`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainReservation {
    /// The name, lowercase and without a trailing dot.
    pub name: String,
    /// The account holding it.
    pub account: String,
    /// The region it is served from (`us`, `eu`, …).
    pub region: String,
    /// When it was reserved, in seconds since the Unix epoch.
    pub created: u64,
}

/// A reserved public TCP address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrReservation {
    /// `host:port`, the host lowercased (an IPv6 host in brackets).
    pub addr: String,
    /// The host part, without brackets.
    pub host: String,
    /// The port, 1 to 65535.
    pub port: u16,
    /// The account holding it.
    pub account: String,
    /// The region it is served from.
    pub region: String,
    /// When it was reserved, in seconds since the Unix epoch.
    pub created: u64,
}

/// A network an account's tunnels accept visitors from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhitelistEntry {
    /// The account it applies to.
    pub account: String,
    /// The network, host bits cleared; a single address is a /32 or /128.
    pub net: ipnet::IpNet,
    /// When it was added, in seconds since the Unix epoch.
    pub created: u64,
}

/// An SSH public key an account's agents may authenticate with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    /// The account the key belongs to.
    pub account: String,
    /// `SHA256:` and the unpadded base64 of the key blob's SHA-256, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The key type, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The comment after the key, possibly empty.
    pub comment: String,
    /// The authorized_keys line, with single spaces between its fields.
    pub line: String,
    /// When it was added, in seconds since the Unix epoch.
    pub created: u64,
}

/// A lease keeping a session identity's name or port across reconnects and restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// What is held: `host:NAME` or `port:N`.
    pub key: String,
    /// The agent identity holding it.
    pub client_id: String,
    /// The session holding it now.
    pub holder: u64,
    /// Seconds since the epoch when it lapses; `None` while a session holds it.
    pub expires: Option<u64>,
}
