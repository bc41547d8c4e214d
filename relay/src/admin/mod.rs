//! The admin listener (actix-web): the JSON API that manages accounts and watches live
//! sessions, `/metrics`, and the place the dashboard's files are served from.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod metrics;
pub mod reservations;

use crate::config::PortRange;
use crate::state::RelayState;
use crate::team::Team;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpServer, ResponseError};
use auth::AdminToken;
use error::ApiError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::info;

/// What the admin handlers work on.
#[derive(Debug)]
pub struct AdminState {
    /// Accounts, their rules and the live sessions.
    pub team: Arc<Team>,
    /// The relay's domain, which no wildcard reservation may cover.
    pub domain: String,
    /// The relay's region: reservations made without one get it.
    pub region: String,
    /// Ports tcp tunnels may use, and so tcp addresses may be reserved on.
    pub tcp_ports: PortRange,
    /// The fleet this relay is a node of, whose nodes the API lists.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
}

impl AdminState {
    /// Makes the data path see a change at once.
    fn reload(&self) -> Result<(), ApiError> {
        Ok(self.team.reload()?)
    }
}

/// The admin listener, bound but not serving yet (so a relay that cannot bind it fails
/// before it starts anything).
#[derive(Debug)]
pub struct Bound {
    listener: std::net::TcpListener,
    token: AdminToken,
    token_file: Option<PathBuf>,
}

/// Why the admin listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No admin token.
    #[error(transparent)]
    Token(#[from] auth::TokenError),
    /// The address could not be bound.
    #[error("admin listener on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Gets the admin token and binds `addr`.
pub fn bind(addr: SocketAddr, cfg: &crate::RelayConfig) -> Result<Bound, AdminError> {
    let (token, token_file) = AdminToken::load(cfg)?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| AdminError::Bind { addr, source })?;
    Ok(Bound {
        listener,
        token,
        token_file,
    })
}

/// A running admin listener.
#[derive(Debug)]
pub struct AdminServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The file the admin token is in (`None` when it was given directly).
    pub token_file: Option<PathBuf>,
    handle: ServerHandle,
}

impl AdminServer {
    /// Stops serving; requests under way are cut.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// The dashboard's static files, served without the token (the page asks for it and sends
/// it with each API call).
fn dashboard(cfg: &mut web::ServiceConfig) {
    dashboard::routes(cfg);
}

async fn not_found(req: HttpRequest) -> actix_web::HttpResponse {
    ApiError::not_found(format!("no such endpoint {} {}", req.method(), req.path()))
        .error_response()
}

/// Serves the admin API on `bound` inside the running actix system.
pub fn serve(bound: Bound, state: &Arc<RelayState>) -> std::io::Result<AdminServer> {
    let addr = bound.listener.local_addr()?;
    let data = web::Data::new(AdminState {
        team: state.team.clone(),
        domain: state.cfg.domain.clone(),
        region: state.cfg.session_region(None).unwrap_or_default(),
        tcp_ports: state.cfg.tcp_ports,
        fleet: state.fleet.clone(),
    });
    let token = web::Data::new(bound.token);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(token.clone())
            .wrap(actix_web::middleware::from_fn(auth::guard))
            .configure(api::routes)
            .configure(reservations::routes)
            .route("/metrics", web::get().to(metrics::text))
            .configure(dashboard)
            .default_service(web::to(not_found))
    })
    // Operators and a scraper: one thread is plenty, and the relay's workers keep theirs.
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(bound.listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    match &bound.token_file {
        Some(f) => info!("admin API and dashboard on http://{addr} (token in {})", f.display()),
        None => info!("admin API and dashboard on http://{addr} (token given by BURROWD_ADMIN_TOKEN or the configuration)"),
    }
    Ok(AdminServer {
        addr,
        token_file: bound.token_file,
        handle,
    })
}
