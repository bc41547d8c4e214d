//! The public HTTP(S) side: parse each request head, route by Host, and splice bodies
//! through to the agent by their framing.

pub mod auth;
pub mod body;
pub mod response;
pub mod serve;

pub use serve::{serve, HttpShared};
