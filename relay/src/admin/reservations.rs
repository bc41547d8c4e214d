//! Domain and tcp address reservations, IP whitelists and SSH keys of accounts.

use super::api::account_filter;
use super::error::{body, created, ok, required, ApiError, ApiResult};
use super::AdminState;
use actix_web::{web, HttpRequest, HttpResponse};
use burrow_store::{names, wildcard_matches};
use serde::Deserialize;

/// A `POST /api/accounts/{name}/domains` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDomain {
    name: String,
    region: Option<String>,
}

/// A `POST /api/accounts/{name}/addrs` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAddr {
    addr: String,
    region: Option<String>,
}

/// A `POST /api/accounts/{name}/whitelist` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    entry: String,
}

/// A `POST /api/accounts/{name}/ssh-keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    key: String,
}

/// Refuses a wildcard that matches the relay's own names (`x.DOMAIN`): it would take every
/// random and chosen subdomain of every other account. The store cannot say, as it does
/// not know the relay's domain.
fn check_base_domain(name: &str, domain: &str) -> Result<(), ApiError> {
    if name.starts_with("*.") && wildcard_matches(name, &format!("x.{domain}")) {
        return Err(ApiError::bad_request(format!(
            "{name} would cover every tunnel name under the relay's domain {domain}; reserve a name or a wildcard below {domain} instead"
        )));
    }
    Ok(())
}

async fn reserve_domain(
    s: web::Data<AdminState>,
    account: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult {
    let b: NewDomain = body(&req, payload).await?;
    let name = names::domain(&b.name)?;
    check_base_domain(&name, &s.domain)?;
    let region = b.region.unwrap_or_else(|| s.region.clone());
    let r = s.team.store().reserve_domain(&account, &name, &region)?;
    s.reload()?;
    created(r)
}

async fn list_domains(s: web::Data<AdminState>, req: HttpRequest) -> ApiResult {
    let filter = account_filter(&s, &req)?;
    ok(s.team.store().domains(filter.as_deref())?)
}

async fn release_domain(s: web::Data<AdminState>, req: HttpRequest) -> ApiResult {
    let name = required(&req, "name")?;
    let r = s.team.store().release_domain(&name)?;
    s.reload()?;
    ok(r)
}

async fn reserve_addr(
    s: web::Data<AdminState>,
    account: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult {
    let b: NewAddr = body(&req, payload).await?;
    let (_, _, port) = names::addr(&b.addr)?;
    if !s.tcp_ports.contains(port) {
        return Err(ApiError::bad_request(format!(
            "port {port} of {} is outside this relay's tcp port range {}",
            b.addr, s.tcp_ports
        )));
    }
    let region = b.region.unwrap_or_else(|| s.region.clone());
    let r = s.team.store().reserve_addr(&account, &b.addr, &region)?;
    s.reload()?;
    created(r)
}

async fn list_addrs(s: web::Data<AdminState>, req: HttpRequest) -> ApiResult {
    let filter = account_filter(&s, &req)?;
    ok(s.team.store().addrs(filter.as_deref())?)
}

async fn release_addr(s: web::Data<AdminState>, req: HttpRequest) -> ApiResult {
    let addr = required(&req, "addr")?;
    let r = s.team.store().release_addr(&addr)?;
    s.reload()?;
    ok(r)
}

async fn allow(
    s: web::Data<AdminState>,
    account: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult {
    let b: NewEntry = body(&req, payload).await?;
    let e = s.team.store().allow(&account, &b.entry)?;
    s.reload()?;
    created(e)
}

async fn list_whitelist(s: web::Data<AdminState>, req: HttpRequest) -> ApiResult {
    let filter = account_filter(&s, &req)?;
    ok(s.team.store().whitelist(filter.as_deref())?)
}

async fn disallow(
    s: web::Data<AdminState>,
    account: web::Path<String>,
    req: HttpRequest,
) -> ApiResult {
    let entry = required(&req, "entry")?;
    s.team.store().disallow(&account, &entry)?;
    s.reload()?;
    Ok(HttpResponse::NoContent().finish())
}

async fn add_key(
    s: web::Data<AdminState>,
    account: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult {
    let b: NewKey = body(&req, payload).await?;
    let k = s.team.store().add_ssh_key(&account, &b.key)?;
    s.reload()?;
    created(k)
}

async fn list_keys(s: web::Data<AdminState>, req: HttpRequest) -> ApiResult {
    let filter = account_filter(&s, &req)?;
    ok(s.team.store().ssh_keys(filter.as_deref())?)
}

async fn remove_key(s: web::Data<AdminState>, req: HttpRequest) -> ApiResult {
    // A fingerprint is base64, which has '+' but never a space: a '+' left unencoded in
    // the query string arrives as a space.
    let fingerprint = required(&req, "fingerprint")?.replace(' ', "+");
    let k = s.team.store().remove_ssh_key(&fingerprint)?;
    s.reload()?;
    ok(k)
}

/// Registers the reservation, whitelist and SSH key routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/accounts/{name}/domains",
        web::post().to(reserve_domain),
    )
    .route("/api/domains", web::get().to(list_domains))
    .route("/api/domains", web::delete().to(release_domain))
    .route("/api/accounts/{name}/addrs", web::post().to(reserve_addr))
    .route("/api/addrs", web::get().to(list_addrs))
    .route("/api/addrs", web::delete().to(release_addr))
    .route("/api/accounts/{name}/whitelist", web::post().to(allow))
    .route("/api/accounts/{name}/whitelist", web::delete().to(disallow))
    .route("/api/whitelist", web::get().to(list_whitelist))
    .route("/api/accounts/{name}/ssh-keys", web::post().to(add_key))
    .route("/api/ssh-keys", web::get().to(list_keys))
    .route("/api/ssh-keys", web::delete().to(remove_key));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_over_the_relay_domain_are_refused() {
        for w in ["*.burrow.example", "*.example"] {
            let e = check_base_domain(w, "burrow.example")
                .unwrap_err()
                .to_string();
            assert!(e.contains(w) && e.contains("burrow.example"), "{e}");
        }
        for fine in [
            "*.a.burrow.example",
            "app.burrow.example",
            "*.other.example",
        ] {
            check_base_domain(fine, "burrow.example").unwrap();
        }
    }
}
