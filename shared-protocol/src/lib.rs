//! Burrow's wire protocol: the frame codec, control messages and the stream multiplexer
//! that carries many public connections over one TLS connection between agent and relay.

pub mod control;
pub mod error;
pub mod frame;
pub mod lanes;
pub mod mux;
pub mod preamble;
pub mod window;

pub use error::ProtocolError;

/// Version of the wire protocol; both sides send it first and refuse a mismatch.
pub const PROTOCOL_VERSION: u16 = 1;
