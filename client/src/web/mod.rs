//! The local web server on `web_addr` (actix-web): the REST API with ngrok v2's paths,
//! the inspector page and its live events, and the status page.

pub mod api;
pub mod guard;
pub mod inspector;
pub mod requests;
pub mod state;
pub mod status;

pub use state::ApiState;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use state::error;

async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/tunnels") {
        let msg = format!("method {} not allowed on {}", req.method(), req.path());
        return error(405, 108, &msg, "method not allowed");
    }
    error(
        404,
        106,
        &format!("no such endpoint {}", req.path()),
        "not found",
    )
}

/// Serves the API on an already-bound listener; returns the server to spawn.
pub fn serve(
    listener: std::net::TcpListener,
    state: ApiState,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .wrap(actix_web::middleware::from_fn(guard::guard))
            .configure(api::routes)
            .route("/status", web::get().to(status::page))
            .route("/", web::get().to(inspector::root))
            .route("/inspect/http", web::get().to(inspector::page))
            .route("/inspect/http/", web::get().to(inspector::page))
            .route(
                "/inspect/static/{name}",
                web::get().to(inspector::static_file),
            )
            .route("/inspect/events", web::get().to(inspector::events))
            .route("/inspect/har", web::get().to(inspector::har))
            .route("/api/requests/http", web::get().to(requests::list))
            .route("/api/requests/http", web::delete().to(requests::clear))
            .route("/api/requests/http", web::post().to(requests::replay))
            .route("/api/requests/http/{id}", web::get().to(requests::get_one))
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}
