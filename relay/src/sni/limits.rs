//! How much of a ClientHello the reader accepts, and the TLS numbers it reads by.

/// Largest ClientHello accepted, counted as the handshake message body (its 24-bit
/// length), however many records carry it.
///
/// Hellos are usually 0.5-2 KB; a hybrid post-quantum key share such as
/// X25519MLKEM768 adds about 1.2 KB, and resumption tickets or several speculative key
/// shares can add a few KB more. 16 KiB leaves ample headroom for all of that while
/// bounding what one unauthenticated connection can make the relay buffer.
pub const MAX_HELLO: usize = 16 * 1024;

/// Most TLS records a ClientHello may be split into.
///
/// A 16 KiB hello fits in two records, but some clients and anti-censorship tools
/// fragment the hello on purpose; 64 allows for that while keeping record headers from
/// inflating what must be buffered.
pub const MAX_RECORDS: usize = 64;

/// Bytes a reader needs to buffer, at most, to get a verdict: once this many have
/// arrived [`parse`] no longer answers [`Hello::Incomplete`]. A caller can therefore size
/// its peek buffer to this and treat a connection that stalls below it as timed out.
pub const MAX_WIRE: usize = HANDSHAKE_HEADER + MAX_HELLO + MAX_RECORDS * RECORD_HEADER;

/// TLSPlaintext fragments must not exceed 2^14 bytes, but rustls reads records up to the
/// 2^14 + 2048 that RFC 5246 allows ciphertext, and refusing what the terminator would
/// take gains nothing.
pub(super) const MAX_RECORD: usize = (1 << 14) + 2048;
pub(super) const RECORD_HEADER: usize = 5;
pub(super) const HANDSHAKE_HEADER: usize = 4;
pub(super) const CONTENT_HANDSHAKE: u8 = 22;
pub(super) const HANDSHAKE_CLIENT_HELLO: u8 = 1;
pub(super) const EXT_SERVER_NAME: u16 = 0;
pub(super) const EXT_ALPN: u16 = 16;
pub(super) const NAME_TYPE_HOST_NAME: u8 = 0;
pub(super) const MAX_SESSION_ID: usize = 32;
/// DNS names are at most 255 octets on the wire, which is 253 characters as text.
pub(super) const MAX_NAME: usize = 253;
pub(super) const MAX_LABEL: usize = 63;
/// Keeps a hostile "host name" from bloating an error that ends up in a log line.
pub(super) const MAX_SHOWN_NAME: usize = 256;
