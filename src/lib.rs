//! Test support for Burrow's end-to-end tests and benchmarks: real relays, agents and
//! upstream servers on loopback.
#![forbid(unsafe_code)]
