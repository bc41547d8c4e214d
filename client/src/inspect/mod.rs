//! Inspection of http tunnels: following HTTP/1 exchanges as they cross (observer,
//! WebSocket frames), the bounded store of captured exchanges, and their JSON and HAR forms.

pub mod captured;
pub mod har;
pub mod json;
pub mod store;
pub mod wsframes;
