//! `/api/tunnels` with ngrok v2's paths, status codes and JSON fields, plus Prometheus
//! metrics.

use crate::config::{Proto, Scalar, TunnelConfig};
use crate::metrics::{prometheus, TunnelMetrics};
use crate::tunnels::supervisor::{AddTunnel, ListTunnels, RemoveTunnel, SupervisorError};
use crate::tunnels::tunnel::TunnelView;
use crate::web::state::{error, inspected, json_object, ApiState};
use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{json, Map, Number, Value};
use std::time::Duration;

/// Characters a tunnel name keeps in its `uri`; the rest is percent-encoded.
const NAME_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a tunnel name for its `uri`.
pub fn encode_name(name: &str) -> String {
    utf8_percent_encode(name, NAME_SET).to_string()
}

/// Decodes a percent-encoded path segment (malformed escapes are kept as they are).
pub fn decode_name(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

fn tunnel_json(v: &TunnelView, inspect: bool, m: Option<&TunnelMetrics>) -> Value {
    let m = m.cloned().unwrap_or_default();
    let mut conns = serde_json::to_value(&m.conns).unwrap_or_default();
    conns["gauge"] = json!(m.conns.gauge.unwrap_or(0));
    json!({
        "name": v.name,
        "ID": format!("{:016x}", fxhash(&v.name)),
        "uri": format!("/api/tunnels/{}", encode_name(&v.name)),
        "public_url": v.public_url,
        "proto": v.proto,
        "config": { "addr": v.spec.local.display(), "inspect": inspect },
        "metrics": { "conns": conns, "http": m.http },
    })
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

async fn views(state: &ApiState) -> Vec<Value> {
    let list = state.supervisor.send(ListTunnels).await.unwrap_or_default();
    let snaps = state.hub.snapshot().await;
    list.iter()
        .map(|v| {
            let m = snaps.get(&(v.spec.name.clone(), v.proto.clone()));
            tunnel_json(v, inspected(v, state), m)
        })
        .collect()
}

async fn root() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "uri": "/api/",
        "tunnels": "/api/tunnels",
        "requests": "/api/requests/http",
        "metrics": "/metrics",
    }))
}

async fn list(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "tunnels": views(&state).await, "uri": "/api/tunnels" }))
}

fn name_from(req: &HttpRequest) -> String {
    let raw = req.uri().path().trim_start_matches("/api/tunnels/");
    decode_name(raw)
}

async fn get_one(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    let name = name_from(&req);
    match views(&state).await.into_iter().find(|v| v["name"] == name) {
        Some(v) => HttpResponse::Ok().json(v),
        None => error(
            404,
            100,
            &format!("tunnel {name:?} not found"),
            "tunnel not found",
        ),
    }
}

async fn delete_one(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    let name = name_from(&req);
    match state.supervisor.send(RemoveTunnel(name.clone())).await {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(e)) => error(404, 100, &e.to_string(), "tunnel not found"),
        Err(e) => error(500, 101, "internal error", &e.to_string()),
    }
}

/// A `POST /api/tunnels` body: the config file's tunnel keys plus the newer `schemes` and
/// `basic_auth` aliases. Unknown keys are ignored, as ngrok v2 does: wrappers send their own
/// options along.
///
/// Each key takes every shape wrappers are seen to send; any other shape lands in a variant
/// holding the raw value, so decoding itself never fails and [`CreateBody::into_config`] can
/// say which field was wrong and what it got, instead of serde's position-only message.
#[derive(Debug, Default, Deserialize)]
struct CreateBody {
    name: Option<Text>,
    proto: Option<Text>,
    addr: Option<Text>,
    inspect: Option<Flag>,
    bind_tls: Option<Flag>,
    schemes: Option<Schemes>,
    auth: Option<Text>,
    basic_auth: Option<Credentials>,
    host_header: Option<Text>,
    subdomain: Option<Text>,
    hostname: Option<Text>,
    crt: Option<Text>,
    key: Option<Text>,
    client_cas: Option<Text>,
    remote_addr: Option<Text>,
    metadata: Option<Text>,
}

/// A string-valued key; numbers are taken as their text (`"addr": 8080`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Text {
    Str(String),
    Num(Number),
    Other(Value),
}

/// `inspect` or `bind_tls`: a boolean, or a string for the config file's spellings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Str(String),
    Other(Value),
}

/// `schemes`: a list holding `http`, `https` or both.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Schemes {
    List(Vec<Value>),
    Other(Value),
}

/// `basic_auth`: one `user:password`, alone or in a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Credentials {
    One(String),
    List(Vec<Value>),
    Other(Value),
}

/// Why a `POST /api/tunnels` body is refused, naming the field.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// A required key is absent or null.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A key holds a value of a shape it never takes.
    #[error("invalid field {field}: want {want}, got {got}")]
    Invalid {
        field: &'static str,
        want: &'static str,
        got: Value,
    },
    /// A `proto` that is not http, tcp or tls; ngrok's message says "invalid tunnel
    /// configuration", which wrappers look for.
    #[error("invalid tunnel configuration: unknown protocol {0:?}")]
    UnknownProto(String),
    /// The object does not fit [`CreateBody`] at all.
    #[error("invalid JSON body: {0}")]
    Decode(#[from] serde_json::Error),
}

impl BodyError {
    /// The `details.err` text: the message, plus the choices where there are few.
    fn detail(&self) -> String {
        match self {
            BodyError::UnknownProto(_) => format!("{self}; want http, tcp or tls"),
            _ => self.to_string(),
        }
    }
}

impl Text {
    /// The value as sent, for error messages.
    fn into_value(self) -> Value {
        match self {
            Text::Str(s) => Value::String(s),
            Text::Num(n) => Value::Number(n),
            Text::Other(v) => v,
        }
    }

    /// The text, or an error naming `field`.
    fn into_string(self, field: &'static str) -> Result<String, BodyError> {
        match self {
            Text::Str(s) => Ok(s),
            Text::Num(n) => Ok(n.to_string()),
            Text::Other(got) => Err(BodyError::Invalid {
                field,
                want: "a string",
                got,
            }),
        }
    }
}

impl Flag {
    /// The value as sent, for error messages.
    fn into_value(self) -> Value {
        match self {
            Flag::Bool(b) => Value::Bool(b),
            Flag::Str(s) => Value::String(s),
            Flag::Other(v) => v,
        }
    }
}

/// An optional string-valued key.
fn text(field: &'static str, v: Option<Text>) -> Result<Option<String>, BodyError> {
    v.map(|t| t.into_string(field)).transpose()
}

impl CreateBody {
    /// Decodes a body already known to be a JSON object.
    fn from_map(body: Map<String, Value>) -> Result<Self, BodyError> {
        Ok(serde_json::from_value(Value::Object(body))?)
    }

    /// The tunnel name and the config entry the body stands for (same keys as the YAML
    /// file), checked in the order ngrok reports: name, proto, addr, then the options.
    fn into_config(self) -> Result<(String, TunnelConfig), BodyError> {
        let name = match self.name {
            None => return Err(BodyError::Missing("name")),
            Some(Text::Str(s)) if !s.trim().is_empty() => s,
            Some(other) => {
                return Err(BodyError::Invalid {
                    field: "name",
                    want: "a non-empty string",
                    got: other.into_value(),
                })
            }
        };
        let proto = match text("proto", self.proto)?.as_deref() {
            None => return Err(BodyError::Missing("proto")),
            Some("http") => Proto::Http,
            Some("tcp") => Proto::Tcp,
            Some("tls") => Proto::Tls,
            Some(other) => return Err(BodyError::UnknownProto(other.to_string())),
        };
        let addr = text("addr", self.addr)?.ok_or(BodyError::Missing("addr"))?;
        let bind_tls = match (self.bind_tls, self.schemes) {
            (Some(Flag::Bool(b)), _) => Some(Scalar::Bool(b)),
            (Some(Flag::Str(s)), _) => Some(Scalar::Str(s)),
            (Some(Flag::Other(got)), _) => {
                return Err(BodyError::Invalid {
                    field: "bind_tls",
                    want: "true, false or \"both\"",
                    got,
                })
            }
            (None, Some(Schemes::List(a))) => {
                let has = |s: &str| a.iter().any(|v| v == s);
                Some(match (has("https"), has("http")) {
                    (true, true) => Scalar::Str("both".into()),
                    (true, false) => Scalar::Bool(true),
                    (false, true) => Scalar::Bool(false),
                    _ => {
                        return Err(BodyError::Invalid {
                            field: "schemes",
                            want: "http and/or https",
                            got: Value::Array(a),
                        })
                    }
                })
            }
            (None, Some(Schemes::Other(got))) => {
                return Err(BodyError::Invalid {
                    field: "schemes",
                    want: "a list of http and/or https",
                    got,
                })
            }
            (None, None) => None,
        };
        // `basic_auth` is a list of `user:password` (or one as a string); a tunnel holds one
        // credential, so more, or anything else, is refused rather than leaving it unguarded.
        let auth = match (text("auth", self.auth)?, self.basic_auth) {
            (Some(a), _) => Some(a),
            (None, None) => None,
            (None, Some(Credentials::One(s))) => Some(s),
            (None, Some(Credentials::List(a))) => match a.as_slice() {
                [] => None,
                [Value::String(s)] => Some(s.clone()),
                _ => {
                    return Err(BodyError::Invalid {
                        field: "basic_auth",
                        want: "one \"user:password\" (a list of one)",
                        got: Value::Array(a),
                    })
                }
            },
            (None, Some(Credentials::Other(got))) => {
                return Err(BodyError::Invalid {
                    field: "basic_auth",
                    want: "\"user:password\"",
                    got,
                })
            }
        };
        let inspect = match self.inspect {
            None => None,
            Some(Flag::Bool(b)) => Some(b),
            Some(Flag::Str(s)) if s == "true" || s == "false" => Some(s == "true"),
            Some(other) => {
                return Err(BodyError::Invalid {
                    field: "inspect",
                    want: "true or false",
                    got: other.into_value(),
                })
            }
        };
        // Keys that only mean something for http are dropped for the others rather than
        // refused: wrappers send their http defaults with every tunnel.
        let http = proto == Proto::Http;
        Ok((
            name,
            TunnelConfig {
                proto: Some(proto),
                addr: Some(Scalar::Str(addr)),
                inspect: inspect.filter(|_| http),
                auth,
                host_header: text("host_header", self.host_header)?,
                bind_tls: bind_tls.filter(|_| http),
                subdomain: text("subdomain", self.subdomain)?,
                hostname: text("hostname", self.hostname)?,
                crt: text("crt", self.crt)?,
                key: text("key", self.key)?,
                client_cas: text("client_cas", self.client_cas)?,
                remote_addr: text("remote_addr", self.remote_addr)?,
                metadata: text("metadata", self.metadata)?,
            },
        ))
    }
}

async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<ApiState>) -> HttpResponse {
    let map = match json_object(&req, &body) {
        Ok(m) => m,
        Err(resp) => return *resp,
    };
    let (name, cfg) = match CreateBody::from_map(map).and_then(CreateBody::into_config) {
        Ok(x) => x,
        Err(e) => return error(400, 102, &e.to_string(), &e.detail()),
    };
    let spec = match crate::config::spec::from_config(&name, &cfg) {
        Ok(s) => s,
        Err(e) => {
            return error(
                400,
                102,
                &format!("invalid tunnel configuration: {e}"),
                &e.to_string(),
            )
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    state.supervisor.do_send(AddTunnel(spec, tx));
    let result = match tokio::time::timeout(Duration::from_secs(15), rx).await {
        Ok(Ok(r)) => r,
        _ => Err(SupervisorError::BindFailed(
            "timed out waiting for the relay".into(),
        )),
    };
    match result {
        Ok(()) => match views(&state)
            .await
            .into_iter()
            .find(|v| v["name"] == name.as_str())
        {
            Some(v) => HttpResponse::Created().json(v),
            None => error(
                502,
                103,
                "failed to start tunnel",
                "tunnel vanished after binding",
            ),
        },
        Err(SupervisorError::NameTaken(n)) => error(
            409,
            104,
            &format!("a tunnel named {n:?} already exists"),
            "name taken",
        ),
        Err(SupervisorError::NotOnline) => error(
            503,
            105,
            "failed to start tunnel",
            &SupervisorError::NotOnline.to_string(),
        ),
        Err(e) => error(502, 103, "failed to start tunnel", &e.to_string()),
    }
}

async fn metrics_text(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(prometheus(&state.hub.snapshot().await))
}

/// The tunnel routes and `/metrics`.
pub fn routes(app: &mut web::ServiceConfig) {
    app.route("/api", web::get().to(root))
        .route("/api/", web::get().to(root))
        .route("/api/tunnels", web::get().to(list))
        .route("/api/tunnels", web::post().to(create))
        .route("/api/tunnels/", web::get().to(list))
        .route("/api/tunnels/{name:.*}", web::get().to(get_one))
        .route("/api/tunnels/{name:.*}", web::delete().to(delete_one))
        .route("/metrics", web::get().to(metrics_text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_encode_and_decode() {
        assert_eq!(encode_name("web (http)"), "web%20%28http%29");
        assert_eq!(decode_name("web%20%28http%29"), "web (http)");
        assert_eq!(decode_name("web%20(http)"), "web (http)");
        assert_eq!(decode_name("http-localhost%3A80-x"), "http-localhost:80-x");
        assert_eq!(decode_name("bad%zz"), "bad%zz");
        assert_eq!(decode_name("end%2"), "end%2");
    }

    fn decode(body: Value) -> Result<(String, TunnelConfig), BodyError> {
        let Value::Object(map) = body else {
            panic!("test bodies are objects")
        };
        CreateBody::from_map(map).and_then(CreateBody::into_config)
    }

    #[test]
    fn bodies_take_every_shape_wrappers_send() {
        let (name, c) = decode(json!({
            "name": "web", "addr": 8080, "proto": "http", "bind_tls": "both",
            "inspect": "false", "basic_auth": ["ann:pw"], "pyngrok_extra": {"x": 1},
        }))
        .unwrap();
        assert_eq!(name, "web");
        assert_eq!(c.addr, Some(Scalar::Str("8080".into())));
        assert_eq!(c.bind_tls, Some(Scalar::Str("both".into())));
        assert_eq!(c.inspect, Some(false));
        assert_eq!(c.auth.as_deref(), Some("ann:pw"));
        let (_, c) = decode(json!({
            "name": "w", "addr": "80", "proto": "http", "schemes": ["https"],
            "basic_auth": "a:b", "auth": null,
        }))
        .unwrap();
        assert_eq!(c.bind_tls, Some(Scalar::Bool(true)));
        assert_eq!(c.auth.as_deref(), Some("a:b"));
        let (_, c) = decode(json!({
            "name": "ssh", "addr": "22", "proto": "tcp", "bind_tls": true, "inspect": true,
            "remote_addr": "host:20022", "basic_auth": [],
        }))
        .unwrap();
        assert_eq!((c.bind_tls, c.inspect, c.auth), (None, None, None));
        assert_eq!(c.remote_addr.as_deref(), Some("host:20022"));
    }

    #[test]
    fn body_errors_name_the_field_and_what_it_got() {
        let err = |body: Value| decode(body).unwrap_err().to_string();
        let base = |k: &str, v: Value| {
            let mut b = json!({"name": "x", "addr": "80", "proto": "http"});
            b[k] = v;
            b
        };
        assert_eq!(
            err(json!({"addr": "80", "proto": "http"})),
            "missing field name"
        );
        assert_eq!(
            err(base("name", json!(" "))),
            "invalid field name: want a non-empty string, got \" \""
        );
        assert_eq!(
            err(base("hostname", json!(true))),
            "invalid field hostname: want a string, got true"
        );
        assert!(err(base("inspect", json!("maybe"))).starts_with("invalid field inspect"));
        assert!(err(base("bind_tls", json!(1))).starts_with("invalid field bind_tls"));
        assert!(err(base("schemes", json!(["ftp"]))).starts_with("invalid field schemes"));
        assert!(err(base("basic_auth", json!(["a:1", "b:2"]))).contains("a list of one"));
        let e = decode(base("proto", json!("gopher"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid tunnel configuration: unknown protocol \"gopher\""
        );
        assert!(e.detail().ends_with("want http, tcp or tls"));
    }
}
