//! `/api/status`, accounts, tokens and live sessions.

use super::error::{body, created, ok, query, ApiError, ApiResult};
use super::AdminState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

/// A `POST /api/accounts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
}

/// A `PUT /api/accounts/{name}/quotas` body; a limit left out keeps its value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotasBody {
    sessions: Option<u32>,
    tunnels: Option<u32>,
    tcp_ports: Option<u32>,
}

/// A `POST /api/accounts/{name}/tokens` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    #[serde(default)]
    label: String,
}

async fn status(s: web::Data<AdminState>) -> ApiResult {
    let views = s.team.live.views();
    ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "region": s.region,
        "domain": s.domain,
        "accounts": s.team.store().accounts()?.len(),
        "sessions": views.len(),
        "tunnels": views.iter().map(|v| v.tunnels.len()).sum::<usize>(),
    }))
}

/// The account `name`, or 404.
pub(super) fn account(s: &AdminState, name: &str) -> Result<burrow_store::Account, ApiError> {
    s.team
        .store()
        .account(name)?
        .ok_or_else(|| ApiError::not_found(format!("unknown account {name:?}")))
}

/// The `?account=` filter of a listing, checked to name an account.
pub(super) fn account_filter(
    s: &AdminState,
    req: &HttpRequest,
) -> Result<Option<String>, ApiError> {
    let filter = query(req, "account")?;
    if let Some(name) = &filter {
        account(s, name)?;
    }
    Ok(filter)
}

async fn list_accounts(s: web::Data<AdminState>) -> ApiResult {
    ok(s.team.store().accounts()?)
}

async fn create_account(
    s: web::Data<AdminState>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult {
    let b: NewAccount = body(&req, payload).await?;
    let made = s.team.store().create_account(&b.name)?;
    s.reload()?;
    created(made)
}

async fn show_account(s: web::Data<AdminState>, name: web::Path<String>) -> ApiResult {
    let store = s.team.store();
    let a = account(&s, &name)?;
    let n = Some(name.as_str());
    let sessions: Vec<_> = s
        .team
        .live
        .views()
        .into_iter()
        .filter(|v| v.account.as_deref() == n)
        .collect();
    ok(json!({
        "account": a,
        "tokens": store.tokens(n)?,
        "domains": store.domains(n)?,
        "addrs": store.addrs(n)?,
        "whitelist": store.whitelist(n)?,
        "ssh_keys": store.ssh_keys(n)?,
        "sessions": sessions,
    }))
}

async fn set_quotas(
    s: web::Data<AdminState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult {
    let b: QuotasBody = body(&req, payload).await?;
    let mut q = account(&s, &name)?.quotas;
    q.sessions = b.sessions.unwrap_or(q.sessions);
    q.tunnels = b.tunnels.unwrap_or(q.tunnels);
    q.tcp_ports = b.tcp_ports.unwrap_or(q.tcp_ports);
    let a = s.team.store().set_quotas(&name, q)?;
    s.reload()?;
    ok(a)
}

async fn delete_account(s: web::Data<AdminState>, name: web::Path<String>) -> ApiResult {
    let kicked = s.team.delete_account(&name)?;
    ok(json!({ "deleted": name.as_str(), "kicked": kicked }))
}

async fn issue_token(
    s: web::Data<AdminState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult {
    let b: NewToken = body(&req, payload).await?;
    let issued = s.team.store().issue_token(&name, &b.label)?;
    s.reload()?;
    created(issued)
}

async fn list_tokens(s: web::Data<AdminState>, req: HttpRequest) -> ApiResult {
    let filter = account_filter(&s, &req)?;
    ok(s.team.store().tokens(filter.as_deref())?)
}

async fn revoke_token(s: web::Data<AdminState>, id: web::Path<String>) -> ApiResult {
    let (info, kicked) = s.team.revoke(&id)?;
    s.reload()?;
    ok(json!({ "revoked": info, "kicked": kicked }))
}

async fn list_sessions(s: web::Data<AdminState>) -> ApiResult {
    ok(s.team.live.views())
}

async fn end_session(s: web::Data<AdminState>, id: web::Path<String>) -> ApiResult {
    let missing = || ApiError::not_found(format!("no session {:?}", id.as_str()));
    let wanted = u64::from_str_radix(&id, 16).map_err(|_| missing())?;
    let kicked = s
        .team
        .live
        .kick_where("the relay's operator ended this session", |v| {
            v.id == wanted
        });
    if kicked == 0 {
        return Err(missing());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The fleet's nodes with their sessions (each node publishes its own), this one first.
async fn list_nodes(s: web::Data<AdminState>) -> ApiResult {
    let Some(fleet) = &s.fleet else {
        return ok(json!({ "node": null, "nodes": [] }));
    };
    ok(
        json!({ "node": fleet.node(), "etcd_reachable": fleet.is_healthy(), "nodes": fleet.nodes() }),
    )
}

/// Registers the status, account, token, session and node routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/status", web::get().to(status))
        .route("/api/accounts", web::get().to(list_accounts))
        .route("/api/accounts", web::post().to(create_account))
        .route("/api/accounts/{name}", web::get().to(show_account))
        .route("/api/accounts/{name}", web::delete().to(delete_account))
        .route("/api/accounts/{name}/quotas", web::put().to(set_quotas))
        .route("/api/accounts/{name}/tokens", web::post().to(issue_token))
        .route("/api/tokens", web::get().to(list_tokens))
        .route("/api/tokens/{id}", web::delete().to(revoke_token))
        .route("/api/sessions", web::get().to(list_sessions))
        .route("/api/sessions/{id}", web::delete().to(end_session))
        .route("/api/nodes", web::get().to(list_nodes));
}
