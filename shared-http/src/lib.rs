//! What both Burrow binaries speak and run on: the one strict HTTP/1 head parser, error
//! pages and escaping, host-name rules, certificate files, and the worker arbiters with
//! the connection actor that pumps each connection.

pub mod assets;
pub mod calendar;
pub mod follow;
pub mod head;
pub mod hostname;
pub mod pages;
pub mod tls;
pub mod workers;
