//! The tunnels: what the user asked for (specs), the supervisor that keeps the running
//! tunnel actors equal to it, the tunnel actors themselves, the session with the relay,
//! and the connection served for each stream.

pub mod connection;
pub mod lane;
pub mod reconcile;
pub mod session;
pub mod spec;
pub mod supervisor;
pub mod tunnel;
