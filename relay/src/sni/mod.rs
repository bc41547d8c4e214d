//! Reads the TLS ClientHello at the start of a public connection to learn where it is
//! going (the SNI host name, plus the ALPN list) before anything else touches the bytes.
//!
//! The reader is sans-IO: it looks at whatever has arrived so far and never consumes or
//! rewrites it, because the very same bytes are later fed to rustls (terminated tunnels)
//! or spliced unchanged to an agent (passthrough tunnels). Call [`parse`] again each time
//! more bytes arrive; it answers [`Hello::Incomplete`] only while the bytes can still
//! become an acceptable ClientHello, and an error as soon as they cannot, so plain HTTP or
//! garbage on the TLS port is refused on its first byte instead of after a timeout.
//!
//! Where the RFCs leave room, the reader follows what rustls accepts, so that a host
//! name routed here is one the terminator takes too. It is stricter than rustls only
//! where no real client is affected: versions above TLS 1.3 and hellos over
//! [`MAX_HELLO`].

mod error;
mod hello;
mod limits;
mod name;
mod reader;
mod records;

pub use error::HelloError;
pub use limits::{MAX_HELLO, MAX_RECORDS, MAX_WIRE};

use hello::client_hello;
use reader::Stop;
use records::reassemble;

/// What the first bytes of a TLS connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// More bytes are needed: the ClientHello is not complete yet, and nothing so far
    /// rules it out.
    Incomplete,
    /// A complete ClientHello.
    Complete {
        /// The host name from the server_name extension, lower-cased and without a
        /// trailing dot; `None` when the client sent no SNI, or sent an IP address
        /// there (which RFC 6066 forbids and rustls ignores).
        sni: Option<String>,
        /// The ALPN protocols offered, in the client's order; empty without the ALPN
        /// extension. Names that are not UTF-8 are left out: every registered protocol
        /// name is ASCII, and the list only informs routing.
        alpn: Vec<String>,
        /// How many bytes at the start of the buffer the ClientHello occupies, record
        /// headers included. Nothing is consumed; this only tells a caller which bytes
        /// it has looked at.
        len: usize,
    },
}

/// Parses the ClientHello at the start of `buf`.
///
/// `buf` holds every byte received on the connection so far; it is only read. The
/// answer is [`Hello::Incomplete`] while more bytes are needed, and stays consistent as
/// `buf` grows: once an error or [`Hello::Complete`] is returned, any longer buffer with
/// the same start gets the same answer.
pub fn parse(buf: &[u8]) -> Result<Hello, HelloError> {
    let records = reassemble(buf);
    // Errors in the handshake bytes win over a record error further on, so the error
    // for a given start of the stream never changes as more bytes arrive.
    match client_hello(&records.handshake) {
        Err(Stop::Bad(e)) => Err(e),
        Err(Stop::More) => records.err.map_or(Ok(Hello::Incomplete), Err),
        Ok(found) => match (records.end, records.err) {
            (Some(len), _) => Ok(Hello::Complete {
                sni: found.sni,
                alpn: found.alpn,
                len,
            }),
            (None, Some(e)) => Err(e),
            // Skipped extensions need no bytes to be parsed past, so the structure can
            // check out before all of it has arrived.
            (None, None) => Ok(Hello::Incomplete),
        },
    }
}

#[cfg(test)]
mod tests;
