//! What can go wrong in the store, one variant per case; no message carries a token secret
//! or another account's name.

use std::path::PathBuf;

/// Why the store refused or failed an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No account has that name.
    #[error("unknown account {name:?}")]
    UnknownAccount {
        /// The name asked for.
        name: String,
    },
    /// An account with that name exists already.
    #[error("account {name:?} exists already")]
    AccountExists {
        /// The name asked for.
        name: String,
    },
    /// The name is not `[a-z0-9][a-z0-9_-]{0,62}`.
    #[error(
        "invalid account name {name:?}: use 1 to 63 of a-z, 0-9, '_' and '-', starting with a letter or digit"
    )]
    InvalidAccountName {
        /// The name given.
        name: String,
    },
    /// The domain name is not a valid hostname or wildcard.
    #[error("invalid domain name {name:?}: {problem}")]
    InvalidDomain {
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: DomainProblem,
    },
    /// The region is not `[a-z0-9][a-z0-9-]{0,31}`.
    #[error("invalid region {region:?}: use 1 to 32 of a-z, 0-9 and '-'")]
    InvalidRegion {
        /// The region given.
        region: String,
    },
    /// The whitelist entry is neither an IP address nor a CIDR block.
    #[error(
        "invalid whitelist entry {entry:?}: expected an IP address or a CIDR block ({detail})"
    )]
    InvalidNet {
        /// The entry given.
        entry: String,
        /// The parser's complaint.
        detail: String,
    },
    /// The TCP address is not `host:port`.
    #[error("invalid address {addr:?}: {reason}")]
    InvalidAddr {
        /// The address given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The token label is too long or holds control characters.
    #[error("invalid token label {label:?}: at most 128 characters, no control characters")]
    InvalidLabel {
        /// The label given.
        label: String,
    },
    /// The token secret is empty or too long (the secret itself is not repeated here).
    #[error("invalid token secret: it must be 1 to 1024 bytes without whitespace")]
    InvalidSecret,
    /// The name or address is held by another account (which one is not said).
    #[error("{name} is reserved by another account")]
    ReservedByOther {
        /// The name or address asked for.
        name: String,
    },
    /// The name falls under another account's wildcard reservation.
    #[error("{name} is covered by {wildcard}, reserved by another account")]
    CoveredByWildcard {
        /// The name asked for.
        name: String,
        /// The wildcard that covers it.
        wildcard: String,
    },
    /// The wildcard would cover a name another account holds.
    #[error("{name} would cover {covered}, reserved by another account")]
    WouldCover {
        /// The wildcard asked for.
        name: String,
        /// The other account's reservation it would match.
        covered: String,
    },
    /// The account holds the name already, in another region.
    #[error("{name} is already reserved by this account in region {existing}, not {requested}")]
    RegionMismatch {
        /// The name or address asked for.
        name: String,
        /// The region it is reserved in.
        existing: String,
        /// The region asked for.
        requested: String,
    },
    /// No token has that id.
    #[error("unknown token {id:?}")]
    UnknownToken {
        /// The id given.
        id: String,
    },
    /// The secret is registered for another account already.
    #[error("the secret of token {label:?} is already registered for another account")]
    TokenTaken {
        /// The label it was to be added under.
        label: String,
    },
    /// Nothing reserves that name or address.
    #[error("no reservation for {name}")]
    UnknownReservation {
        /// The name or address given.
        name: String,
    },
    /// The account's whitelist has no such entry.
    #[error("account {account:?} has no whitelist entry {entry}")]
    UnknownWhitelistEntry {
        /// The account given.
        account: String,
        /// The entry, normalised.
        entry: String,
    },
    /// The authorized_keys line does not hold a supported public key.
    #[error("invalid SSH key {line:?}: {reason}")]
    InvalidSshKey {
        /// The line given, shortened.
        line: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No key has that fingerprint.
    #[error("unknown SSH key {fingerprint}")]
    UnknownSshKey {
        /// The fingerprint given.
        fingerprint: String,
    },
    /// The key belongs to another account already.
    #[error("SSH key {fingerprint} belongs to another account")]
    SshKeyTaken {
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// The store file is not a database of ours, or is damaged.
    #[error("store {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What was found wrong.
        detail: String,
    },
    /// The store file was written by a newer burrowd.
    #[error(
        "store {} has schema version {found}; this burrowd supports up to {supported}",
        path.display()
    )]
    NewerVersion {
        /// The version in the file.
        found: u64,
        /// The newest version this build knows.
        supported: u64,
        /// The store file.
        path: PathBuf,
    },
    /// Another process has the store file open.
    #[error("store {} is in use by another process", path.display())]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// The leases file to migrate cannot be read or parsed.
    #[error("cannot import leases from {}: {detail}", path.display())]
    Leases {
        /// The leases file.
        path: PathBuf,
        /// The reader's or parser's complaint.
        detail: String,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The fleet's etcd did not answer within the store's deadline, or refused the connection.
    #[error("the fleet's store (etcd at {}) is unreachable: {reason}", endpoints.join(", "))]
    Unavailable {
        /// The etcd endpoints the store was given.
        endpoints: Vec<String>,
        /// What failed: the connection's error, or the deadline that passed.
        reason: String,
    },
    /// A fleet's store keeps no snapshot of leases: each relay claims its names one at a time.
    #[error(
        "in a relay fleet leases are claimed one name at a time in etcd (under {prefix}leases/), not saved as a snapshot"
    )]
    LeasesClaimedPerName {
        /// The fleet's key prefix.
        prefix: String,
    },
    /// The storage backend failed.
    #[error("store backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What makes a domain name invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainProblem {
    /// Two dots in a row, or a leading dot, or nothing at all.
    #[error("empty label")]
    EmptyLabel,
    /// A label longer than 63 bytes.
    #[error("a label is longer than 63 characters")]
    LabelTooLong,
    /// Something other than a-z, 0-9 and '-'.
    #[error("bad character (use a-z, 0-9 and '-')")]
    BadCharacter,
    /// A label starting or ending with '-'.
    #[error("a label starts or ends with '-'")]
    EdgeHyphen,
    /// More than 253 bytes.
    #[error("longer than 253 characters")]
    TooLong,
    /// A '*' that is not the whole leftmost label.
    #[error("'*' may only be the whole leftmost label, as in *.example.com")]
    WildcardNotLeftmost,
    /// `*` alone.
    #[error("a bare '*' matches everything")]
    BareWildcard,
    /// A wildcard over fewer than two labels, like `*.com`.
    #[error("a wildcard needs at least two labels after '*.', as in *.example.com")]
    WildcardTooBroad,
    /// An all-numeric last label: an IP address or a mistyped one.
    #[error("the last label is numeric (IP addresses cannot be reserved as domains)")]
    NumericTld,
}
