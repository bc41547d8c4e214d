//! Control messages, typed by direction: what the agent says and what the relay answers.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Kinds of tunnel an agent can bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelProto {
    /// HTTP(S) endpoints routed by Host.
    Http,
    /// A raw TCP port.
    Tcp,
    /// TLS endpoints routed by SNI, passed through encrypted.
    Tls,
}

impl std::fmt::Display for TunnelProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TunnelProto::Http => "http",
            TunnelProto::Tcp => "tcp",
            TunnelProto::Tls => "tls",
        })
    }
}

/// Which schemes an http tunnel is served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindTls {
    /// Both http and https on the same host.
    #[default]
    Both,
    /// https only.
    Https,
    /// http only.
    Http,
}

/// What the agent asks the relay to bind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelRequest {
    /// The kind of tunnel.
    pub proto: TunnelProto,
    /// Requested subdomain (http, tls); random when absent.
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Requested full hostname (http, tls).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Requested public port (tcp); any free one when absent.
    #[serde(default)]
    pub remote_port: Option<u16>,
    /// Schemes for http tunnels.
    #[serde(default)]
    pub bind_tls: BindTls,
    /// HTTP basic-auth credentials the relay enforces (`user:password`).
    #[serde(default)]
    pub auth: Option<String>,
    /// The `Host` value requests carry to the local server (http); unchanged when absent.
    #[serde(default)]
    pub host_header: Option<String>,
    /// The whole `remote_addr` the user gave (tcp), e.g. `1.tcp.example.com:20001`; its
    /// port also travels as `remote_port`, which relays that predate this field read.
    #[serde(default)]
    pub remote_addr: Option<String>,
    /// ngrok's free-form per-tunnel `metadata`, passed through as given.
    #[serde(default)]
    pub metadata: Option<String>,
}

impl TunnelRequest {
    /// A request for `proto` with nothing asked beyond the defaults.
    pub fn new(proto: TunnelProto) -> Self {
        TunnelRequest {
            proto,
            subdomain: None,
            hostname: None,
            remote_port: None,
            bind_tls: BindTls::Both,
            auth: None,
            host_header: None,
            remote_addr: None,
            metadata: None,
        }
    }
}

/// The region an agent gets when it names none, and the one `burrowd` serves by default.
pub const DEFAULT_REGION: &str = "us";

/// Whether `region` is a well-formed region name: `[a-z0-9][a-z0-9-]{0,31}`.
pub fn valid_region(region: &str) -> bool {
    let b = region.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=32).contains(&b.len()) && ok(&b[0]) && b[1..].iter().all(|c| ok(c) || *c == b'-')
}

/// Messages from the agent to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message: who the agent is.
    Auth {
        /// The agent's version string.
        agent_version: String,
        /// Stable identity across reconnects: the relay keeps this identity's names.
        client_id: String,
        /// Auth token, if the relay wants one.
        #[serde(default)]
        token: Option<String>,
        /// How many lanes (TLS connections, one per worker thread) the agent would like;
        /// an agent that does not say gets one.
        #[serde(default)]
        lanes: u32,
        /// The region the user asked for (`-region`, `region:`); `None` when they did not say.
        #[serde(default)]
        region: Option<String>,
    },
    /// First and only message of a lane joining an authenticated session.
    JoinLane {
        /// The session's id, as `AuthOk` gave it.
        session_id: String,
        /// The secret `AuthOk` handed out for joining lanes.
        secret: String,
    },
    /// Bind a tunnel; the relay answers with `Bound` or `BindFailed` carrying `req`.
    Bind {
        /// Correlates the answer.
        req: u64,
        /// What to bind.
        tunnel: TunnelRequest,
    },
    /// Change which schemes an http tunnel serves; answered like `Bind`.
    SetSchemes {
        /// Correlates the answer.
        req: u64,
        /// The relay's id of the tunnel.
        tunnel_id: u64,
        /// The schemes to serve from now on.
        bind_tls: BindTls,
    },
    /// Release a tunnel.
    Unbind {
        /// The relay's id of the tunnel.
        tunnel_id: u64,
    },
}

/// Messages from the relay to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Authentication accepted.
    AuthOk {
        /// The relay's version string.
        relay_version: String,
        /// Session id for the logs and for joining lanes.
        session_id: String,
        /// Lanes granted, the first included (at most what was asked; 0 from relays that
        /// predate lanes, meaning one).
        #[serde(default)]
        lanes: u32,
        /// What further lanes present to join this session, when more than one is granted.
        #[serde(default)]
        lane_secret: Option<String>,
        /// The region the session is served in (empty from relays that predate regions).
        #[serde(default)]
        region: String,
    },
    /// A lane joined its session; streams may arrive on it from now on.
    LaneOk,
    /// Authentication refused; the relay closes the session.
    AuthFailed {
        /// Why.
        message: String,
    },
    /// A tunnel is bound.
    Bound {
        /// The request this answers.
        req: u64,
        /// The relay's id for the tunnel; streams opened for it carry it.
        tunnel_id: u64,
        /// Public URLs, https first when both.
        urls: Vec<String>,
    },
    /// A bind was refused.
    BindFailed {
        /// The request this answers.
        req: u64,
        /// Why, for the user.
        message: String,
    },
    /// A session-level error; the relay closes the session after it.
    Error {
        /// Why.
        message: String,
    },
}

/// Metadata carried by an `Open` frame: which tunnel and who is connecting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// The tunnel the public connection arrived for.
    pub tunnel_id: u64,
    /// The visitor's address.
    pub remote_addr: String,
    /// The scheme the visitor used (`http`, `https`, `tcp`, `tls`).
    pub scheme: String,
}

/// Encodes a message for a control or open frame.
pub fn encode<T: Serialize>(msg: &T) -> bytes::Bytes {
    // Serialising these plain structs to a Vec cannot fail.
    serde_json::to_vec(msg)
        .expect("control messages always serialise")
        .into()
}

/// Decodes a message from a control or open frame.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, crate::ProtocolError> {
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msgs = vec![
            ClientMessage::Auth {
                agent_version: "1".into(),
                client_id: "c".into(),
                token: Some("t".into()),
                lanes: 2,
                region: Some("eu".into()),
            },
            ClientMessage::JoinLane {
                session_id: "s".into(),
                secret: "x".into(),
            },
            ClientMessage::Bind {
                req: 3,
                tunnel: TunnelRequest {
                    proto: TunnelProto::Http,
                    subdomain: Some("abc".into()),
                    hostname: None,
                    remote_port: None,
                    bind_tls: BindTls::Https,
                    auth: None,
                    host_header: Some("site.dev".into()),
                    remote_addr: None,
                    metadata: Some("{\"team\": \"a b\"}".into()),
                },
            },
            ClientMessage::Bind {
                req: 4,
                tunnel: TunnelRequest {
                    remote_port: Some(20001),
                    remote_addr: Some("1.tcp.example.com:20001".into()),
                    ..TunnelRequest::new(TunnelProto::Tcp)
                },
            },
            ClientMessage::Unbind { tunnel_id: 9 },
        ];
        for m in msgs {
            assert_eq!(decode::<ClientMessage>(&encode(&m)).unwrap(), m);
        }
        let answers = [
            ServerMessage::Bound {
                req: 1,
                tunnel_id: 2,
                urls: vec!["https://a.localhost".into()],
            },
            ServerMessage::AuthOk {
                relay_version: "1".into(),
                session_id: "s".into(),
                lanes: 2,
                lane_secret: Some("x".into()),
                region: "eu".into(),
            },
        ];
        for s in answers {
            assert_eq!(decode::<ServerMessage>(&encode(&s)).unwrap(), s);
        }
        assert_eq!(
            decode::<ServerMessage>(&encode(&ServerMessage::LaneOk)).unwrap(),
            ServerMessage::LaneOk
        );
    }

    #[test]
    fn messages_of_peers_without_lanes_or_regions_still_decode() {
        let auth = br#"{"type":"auth","agent_version":"1","client_id":"c"}"#;
        match decode::<ClientMessage>(auth).unwrap() {
            ClientMessage::Auth { lanes, region, .. } => assert_eq!((lanes, region), (0, None)),
            other => panic!("{other:?}"),
        }
        let ok = br#"{"type":"auth_ok","relay_version":"1","session_id":"s"}"#;
        match decode::<ServerMessage>(ok).unwrap() {
            ServerMessage::AuthOk {
                lanes,
                lane_secret,
                region,
                ..
            } => assert_eq!((lanes, lane_secret, region.as_str()), (0, None, "")),
            other => panic!("{other:?}"),
        }
        let bind = br#"{"type":"bind","req":1,"tunnel":{"proto":"tcp","remote_port":20001}}"#;
        match decode::<ClientMessage>(bind).unwrap() {
            ClientMessage::Bind { tunnel, .. } => assert_eq!(
                tunnel,
                TunnelRequest {
                    remote_port: Some(20001),
                    ..TunnelRequest::new(TunnelProto::Tcp)
                }
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn region_names() {
        for good in ["us", "eu", "us-cal-1", "0", &"a".repeat(32)] {
            assert!(valid_region(good), "{good}");
        }
        for bad in ["", "EU", "-us", "u s", "eu.west", "é", &"a".repeat(33)] {
            assert!(!valid_region(bad), "{bad}");
        }
    }

    #[test]
    fn garbage_control_is_an_error() {
        assert!(decode::<ClientMessage>(b"{\"type\":\"nope\"}").is_err());
        assert!(decode::<ClientMessage>(b"\xff").is_err());
    }
}
