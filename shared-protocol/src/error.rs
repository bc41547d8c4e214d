//! Errors of the wire protocol, tagged with what went wrong so both sides can say so.

use std::io;

/// Everything that can go wrong while speaking the wire protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The peer's first bytes are not a Burrow preamble.
    #[error("peer is not speaking the burrow protocol (bad preamble {0:02x?})")]
    BadPreamble(Vec<u8>),
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: peer speaks version {peer}, we speak version {ours}")]
    VersionMismatch {
        /// The version the peer announced.
        peer: u16,
        /// Our version.
        ours: u16,
    },
    /// A frame header announced more payload than the limit.
    #[error("frame too large: {len} bytes announced, limit is {max}")]
    FrameTooLarge {
        /// Announced payload length.
        len: u32,
        /// Configured maximum.
        max: u32,
    },
    /// A frame kind we do not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A frame whose payload does not fit its kind.
    #[error("malformed {kind} frame: {reason}")]
    Malformed {
        /// The frame kind.
        kind: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    TruncatedFrame,
    /// A control message that does not decode.
    #[error("bad control message: {0}")]
    BadControl(#[from] serde_json::Error),
    /// The peer sent more data than its flow-control credit allowed.
    #[error("stream {0} exceeded its flow-control window")]
    WindowExceeded(u32),
    /// The peer stopped answering heartbeats.
    #[error("heartbeat timeout: no frame from the peer for {0:?}")]
    HeartbeatTimeout(std::time::Duration),
    /// The underlying transport failed.
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
    /// The session is closed.
    #[error("session closed")]
    Closed,
}
