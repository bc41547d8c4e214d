//! The admin dashboard: static files embedded in the binary, served on the admin listener.
//! The page itself holds no secret, so its files need no token; everything it shows comes
//! from the admin API, which does.

use actix_web::{web, HttpResponse};
use burrow_http::assets::{self, content_type};

include!(concat!(env!("OUT_DIR"), "/dashboard.rs"));

/// Only this origin's script and stylesheet, no inline code, no framing: names, labels and
/// metadata that agents and visitors choose can never run as code, even if a rendering
/// bug let them into the page's markup.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Registers the dashboard's routes: the page at `/`, its files under `/assets/`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page))
        .route("/assets/{name}", web::get().to(asset));
}

fn file(name: &str) -> Option<&'static [u8]> {
    assets::find(FILES, name)
}

fn respond(name: &str) -> HttpResponse {
    let mut resp = match file(name) {
        Some(body) => HttpResponse::Ok()
            .content_type(content_type(name))
            // The page changes with the binary: revalidate rather than run a stale script
            // against a newer API.
            .insert_header(("Cache-Control", "no-cache"))
            .body(body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no such file {name:?}\n")),
    };
    let headers = resp.headers_mut();
    for (k, v) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(
            actix_web::http::header::HeaderName::from_static(k),
            actix_web::http::header::HeaderValue::from_static(v),
        );
    }
    resp
}

/// `GET /`: the dashboard page.
async fn page() -> HttpResponse {
    respond("index.html")
}

/// `GET /assets/{name}`: the page's script and stylesheet.
async fn asset(name: web::Path<String>) -> HttpResponse {
    respond(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::App;

    #[actix_web::test]
    async fn every_file_carries_the_policy_and_its_type() {
        let app = init_service(App::new().configure(routes)).await;
        for (path, ctype) in [
            ("/", "text/html; charset=utf-8"),
            ("/assets/app.js", "text/javascript; charset=utf-8"),
            ("/assets/style.css", "text/css; charset=utf-8"),
            ("/assets/nothing.js", "text/plain; charset=utf-8"),
        ] {
            let resp = call_service(&app, TestRequest::get().uri(path).to_request()).await;
            let h = resp.headers();
            assert_eq!(h.get("content-type").unwrap(), ctype, "{path}");
            assert_eq!(h.get("content-security-policy").unwrap(), CSP, "{path}");
            assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
            assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
        }
    }

    #[test]
    fn the_page_has_no_inline_code() {
        let html = String::from_utf8_lossy(file("index.html").unwrap()).to_string();
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("http://") && !html.contains("https://"));
        let js = String::from_utf8_lossy(file("app.js").unwrap()).to_string();
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "eval(",
            "new Function",
            "document.write",
        ] {
            assert!(!js.contains(banned), "app.js uses {banned}");
        }
    }
}
