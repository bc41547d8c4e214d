//! The agent's built-in file server, behind ngrok v2's `file://` addresses
//! (`ngrok http file:///var/www`): [`serve`] answers HTTP/1.1 on one visitor connection from a
//! local directory, and [`parse_file_url`] turns the address into that directory.
//!
//! The HTTP work is done by actix: actix-http's HTTP/1 dispatcher reads requests (keep-alive,
//! head size limits, malformed heads), and actix-files' [`NamedFile`] answers for a file:
//! content type by extension (`text/*` with `charset=utf-8`), `Last-Modified`, a strong
//! `ETag`, `If-None-Match` / `If-Modified-Since` (304), `If-Match` / `If-Unmodified-Since`
//! (412), a single byte range (206 / 416; of several ranges the first is sent), HEAD, and
//! streaming. The request path is parsed by actix-files' [`PathBufWrap`]: percent-decoded
//! once, `..` stops at the root, an encoded `/` is refused (400), and so are names starting
//! with `*` or ending with `:`, `<` or `>`.
//!
//! What stays ours, each because actix-files' `Files` service or actix-http does it
//! differently:
//! - Nothing outside the directory is ever served: every target is canonicalized (following
//!   symlinks) and must lie inside the canonicalized directory, or the answer is 403. `Files`
//!   follows a symlink wherever it points. Someone who can write inside the directory could
//!   still swap a path component for a symlink between that check and the open; visitors cannot.
//! - A directory asked for without its trailing slash is redirected (301) to a location built
//!   from the parsed names, with the query kept; `Files` copies the raw path, so `//host`
//!   would become a redirect to another site.
//! - A directory's `index.html` is served only when it is a regular file inside the root;
//!   otherwise the directory is listed. `Files` would open a directory called `index.html`.
//! - The listing escapes names in text and percent-encodes them in links, lists hidden (dot)
//!   files, and sorts directories first, then by name; `Files`' own listing leaves `"` raw
//!   inside `href`. At most 10,000 entries are shown; names that are not UTF-8 are shown
//!   lossily and cannot be requested.
//! - `If-Range` is evaluated (the file's `ETag`, or exactly its `Last-Modified` date, allows
//!   the range; anything else gets the whole file); `NamedFile` ignores it, which could splice
//!   a resumed download from two versions of a file.
//! - Pipelined requests reach the dispatcher one at a time (`OneRequestAtATime`), because
//!   it frames every queued response for the last request it decoded.
//!
//! Hidden (dot) files are served like any other, as ngrok v2 does: the operator chose the
//! directory, and hiding files by name would suggest a protection that isn't there. Only GET
//! and HEAD are answered; anything else gets 405. A body sent with a request is not read:
//! the request is answered and the connection then closed.

use crate::logfmt::civil_from_days;
use actix_files::{NamedFile, PathBufWrap};
use actix_service::{fn_service, map_config, Service, ServiceFactory};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{AppConfig, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, EntityTag, HeaderValue, HttpDate};
use actix_web::http::{Method, StatusCode};
use actix_web::{App, HttpResponse};
use burrow_http::pages::escape;
use bytes::Bytes;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most entries shown in one directory listing.
const MAX_LISTING: usize = 10_000;

/// Every byte but the unreserved ones (RFC 3986 §2.3) is encoded in a link to a listed name,
/// so a name works as a relative link whatever it holds: `a:b` would otherwise read as a
/// URL scheme.
const NOT_UNRESERVED: &AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Serves HTTP/1.1 requests on `io` from the directory `root` until the visitor closes, the
/// connection is not keep-alive, or it stays idle past actix-http's keep-alive time.
///
/// Runs on the current thread's actix (Tokio local) runtime. The directory is looked up per
/// request, so one created or replaced after the tunnel started is served as it is now.
/// Pipelined requests are answered in order, each framed for its own method and version. A
/// visitor closing between requests is a normal end (`Ok`); a broken connection is an error.
pub async fn serve<S>(root: &Path, io: S) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let root: Rc<Path> = Rc::from(root);
    let gate = Rc::new(Gate::default());
    let io = OneRequestAtATime::new(io, gate.clone());
    let app = App::new().default_service(fn_service(move |req: ServiceRequest| {
        let root = root.clone();
        let in_flight = InFlight::start(gate.clone());
        async move {
            let res = respond(&root, req).await.map_body(|head, body| {
                head.headers
                    .insert(header::SERVER, HeaderValue::from_static("burrow"));
                BoxBody::new(Tracked {
                    body,
                    _in_flight: in_flight,
                })
            });
            Ok::<_, actix_web::Error>(res)
        }
    }));
    let connection = actix_http::HttpService::build()
        .h1(map_config(app, |()| AppConfig::default()))
        .new_service(())
        .await
        .map_err(|e| io::Error::other(format!("the file server did not start: {e:?}")))?;
    connection
        .call((io, None))
        .await
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Whether a request is being answered, shared by the connection's reader and its responses.
#[derive(Default)]
struct Gate {
    /// Requests taken by the service whose response body has not finished.
    busy: Cell<usize>,
    /// The reader waiting for `busy` to fall to zero.
    waiting: Cell<Option<Waker>>,
}

/// Marks one request as being answered until dropped.
struct InFlight(Rc<Gate>);

impl InFlight {
    fn start(gate: Rc<Gate>) -> InFlight {
        gate.busy.set(gate.busy.get() + 1);
        InFlight(gate)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.busy.set(self.0.busy.get().saturating_sub(1));
        if let Some(w) = self.0.waiting.take() {
            w.wake();
        }
    }
}

/// A response body that ends its request's [`InFlight`] when the dispatcher is done with it.
struct Tracked {
    body: BoxBody,
    /// Held for its `Drop`.
    _in_flight: InFlight,
}

impl MessageBody for Tracked {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Bytes held back while looking for the end of a request head; past this much, they are
/// passed on as they are (a large request body, or a head too large, which actix-http refuses).
const MAX_HELD: usize = 64 * 1024;

/// The visitor's stream as the HTTP/1 dispatcher reads it: at most one request head per read,
/// and nothing more while a response is being produced or sent.
///
/// actix-http's dispatcher decodes every pipelined request it has bytes for before answering
/// the first, and its codec keeps only the last decoded request's method, version and
/// keep-alive choice: a `GET` answered while a later `HEAD` is queued lost its body, and a
/// `HEAD` answered while a later `GET` was queued got one, leaving the visitor out of step.
/// Holding the next request back until the previous response is done keeps each answer
/// framed for its own request.
struct OneRequestAtATime<S> {
    io: S,
    /// Read from `io`, not yet handed on.
    held: Vec<u8>,
    /// `io` has ended.
    eof: bool,
    /// A head was just handed on: the next read waits one turn so that the dispatcher decodes
    /// it (and starts answering it) before asking for more.
    handed_head: bool,
    gate: Rc<Gate>,
}

impl<S> OneRequestAtATime<S> {
    fn new(io: S, gate: Rc<Gate>) -> Self {
        OneRequestAtATime {
            io,
            held: Vec::new(),
            eof: false,
            handed_head: false,
            gate,
        }
    }
}

/// Where the first request head in `buf` ends (after its blank line), if it is all there.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for OneRequestAtATime<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.gate.busy.get() > 0 {
                this.gate.waiting.set(Some(cx.waker().clone()));
                return Poll::Pending;
            }
            if this.handed_head {
                this.handed_head = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let end = head_end(&this.held);
            if end.is_some() || this.held.len() >= MAX_HELD || (this.eof && !this.held.is_empty()) {
                let want = end.unwrap_or(this.held.len());
                let n = want.min(out.remaining());
                out.put_slice(&this.held[..n]);
                this.held.drain(..n);
                this.handed_head = end == Some(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => this.eof = true,
                Poll::Ready(Ok(())) => this.held.extend_from_slice(rb.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for OneRequestAtATime<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Turns the path part of a `file://` URL into a directory path: `file:///var/www` →
/// `/var/www`, `file:///C:/Users/me/site` → `C:/Users/me/site` (Windows style parses on every
/// platform), percent-decoded.
///
/// A relative path (`file://relative/dir`, `file://./x`) is an error whose message names the
/// path and says an absolute path is needed, as are a missing `file://` scheme, bad percent
/// escapes, `%00`, and escapes that do not decode to UTF-8.
pub fn parse_file_url(url: &str) -> Result<PathBuf, FileUrlError> {
    const SCHEME: &str = "file://";
    let rest = match url.get(..SCHEME.len()) {
        Some(s) if s.eq_ignore_ascii_case(SCHEME) => &url[SCHEME.len()..],
        _ => return Err(FileUrlError::NotFileUrl(url.to_string())),
    };
    let bytes = percent_decode(rest).ok_or_else(|| FileUrlError::BadEscape(url.to_string()))?;
    if bytes.contains(&0) {
        return Err(FileUrlError::Nul(url.to_string()));
    }
    let path = String::from_utf8(bytes).map_err(|_| FileUrlError::NotUtf8(url.to_string()))?;

    // `file:///C:/x` carries the drive after the slash that ends the (empty) host; the path
    // is `C:/x`. `file://C:/x` is accepted too, as people write it.
    let path = match path.strip_prefix('/') {
        Some(after) if is_drive_path(after) => after.to_string(),
        _ => path,
    };
    if path.starts_with('/') {
        return Ok(PathBuf::from(path));
    }
    if is_drive_path(&path) {
        // A bare `C:` means "the current directory on drive C" to Windows: take the drive root.
        if path.len() == 2 {
            return Ok(PathBuf::from(format!("{path}/")));
        }
        return Ok(PathBuf::from(path));
    }
    Err(FileUrlError::Relative {
        url: url.to_string(),
        path,
    })
}

/// Why a `file://` address names no directory; each variant carries the URL as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileUrlError {
    /// Some other scheme, or none.
    #[error("{0:?} is not a file:// URL")]
    NotFileUrl(String),
    /// A `%` not followed by two hex digits.
    #[error("file:// URL {0:?} has an invalid percent escape")]
    BadEscape(String),
    /// `%00`, which no file system path can hold.
    #[error("file:// URL {0:?} contains a NUL byte (%00)")]
    Nul(String),
    /// Escapes that decode to bytes that are not UTF-8.
    #[error("file:// URL {0:?} does not decode to UTF-8")]
    NotUtf8(String),
    /// A relative path, which would depend on the agent's working directory.
    #[error(
        "file:// URL {url:?} names the relative path {path:?}; an absolute path is needed, \
         e.g. file:///var/www or file:///C:/site"
    )]
    Relative {
        /// The URL as given.
        url: String,
        /// The decoded relative path.
        path: String,
    },
}

/// `C:`, `C:/…` or `C:\…`: a Windows path on a drive.
fn is_drive_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && (b.len() == 2 || b[2] == b'/' || b[2] == b'\\')
}

/// Strict percent-decoding for [`parse_file_url`]: `None` for a `%` not followed by two hex
/// digits.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_value(*b.get(i + 1)?)?;
            let lo = hex_value(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The response to one request.
async fn respond(root: &Path, req: ServiceRequest) -> ServiceResponse {
    let raw = req.path().to_owned();
    // Shown in error pages: decoded, and escaped by `error_page`.
    let shown = percent_decode_str(&raw).decode_utf8_lossy().into_owned();
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let detail = format!(
            "{} is not allowed here; this server answers GET and HEAD.",
            req.method()
        );
        let mut res = error_page(StatusCode::METHOD_NOT_ALLOWED, &detail);
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return req.into_response(res);
    }
    let rel = match PathBufWrap::parse_path(&raw, true) {
        Ok(rel) if !rel.as_ref().as_os_str().as_encoded_bytes().contains(&0) => {
            rel.as_ref().to_path_buf()
        }
        // Not UTF-8, an encoded `/`, `%00`, or a name Windows would read as something else.
        _ => return req.into_response(error_page(StatusCode::BAD_REQUEST, &shown)),
    };

    let canon_root = match tokio::fs::canonicalize(root).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(root = %root.display(), error = %e, "file server: cannot open directory");
            return req.into_response(error_page(status_for(&e), &shown));
        }
    };
    let (target, meta) = match resolve(&canon_root, &rel).await {
        Ok(found) => found,
        Err(status) => return req.into_response(error_page(status, &shown)),
    };
    if meta.is_dir() {
        if !raw.ends_with('/') {
            return redirect_to_dir(req, &rel);
        }
        match resolve(&canon_root, &rel.join("index.html")).await {
            Ok((index, index_meta)) if index_meta.is_file() => {
                return serve_file(req, &index, &shown).await
            }
            // A directory called index.html, or none at all: list instead.
            Ok(_) | Err(StatusCode::NOT_FOUND) => {}
            Err(status) => return req.into_response(error_page(status, &shown)),
        }
        return listing(req, target, &rel).await;
    }
    if meta.is_file() {
        if raw.ends_with('/') {
            return req.into_response(error_page(StatusCode::NOT_FOUND, &shown));
        }
        return serve_file(req, &target, &shown).await;
    }
    // FIFOs, sockets and devices: opening one could block or read forever.
    req.into_response(error_page(StatusCode::FORBIDDEN, &shown))
}

/// Finds `rel` under the canonical root, following symlinks, and refuses (403) anything whose
/// real location is outside it.
async fn resolve(
    canon_root: &Path,
    rel: &Path,
) -> Result<(PathBuf, std::fs::Metadata), StatusCode> {
    let real = tokio::fs::canonicalize(canon_root.join(rel))
        .await
        .map_err(|e| status_for(&e))?;
    if !real.starts_with(canon_root) {
        return Err(StatusCode::FORBIDDEN);
    }
    let meta = tokio::fs::metadata(&real)
        .await
        .map_err(|e| status_for(&e))?;
    Ok((real, meta))
}

/// The status for failing to find or open a path. Anything other than a permission problem
/// counts as "not there" (a file used as a directory, a name too long, a symlink loop): the
/// visitor can't do anything about the difference, and the details are not theirs to see.
fn status_for(e: &io::Error) -> StatusCode {
    match e.kind() {
        io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::NOT_FOUND,
    }
}

/// A small HTML page for an error status; `detail` is plain text and gets escaped.
fn error_page(status: StatusCode, detail: &str) -> HttpResponse {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
             <body>\n<h1>{title}</h1>\n<p>{}</p>\n</body>\n</html>\n",
            escape(detail)
        ))
}

/// 301 to the directory with a trailing slash, keeping the query.
fn redirect_to_dir(req: ServiceRequest, rel: &Path) -> ServiceResponse {
    // Built from the parsed names, never from the raw target: `//evil.example` must not turn
    // into a redirect to another site.
    let mut location = String::from("/");
    for name in rel.iter() {
        location.extend(utf8_percent_encode(&name.to_string_lossy(), NOT_UNRESERVED));
        location.push('/');
    }
    let query = req.query_string();
    if !query.is_empty() {
        location.push('?');
        // A header value carries no control or non-ASCII bytes.
        location.extend(utf8_percent_encode(query, CONTROLS));
    }
    let page = format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>301 Moved Permanently</title></head>\n\
         <body>\n<h1>301 Moved Permanently</h1>\n<p><a href=\"{0}\">{0}</a></p>\n</body>\n</html>\n",
        escape(&location)
    );
    let res = HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, location))
        .content_type("text/html; charset=utf-8")
        .body(page);
    req.into_response(res)
}

/// Sends the file at `path` (already resolved inside the root) through actix-files.
async fn serve_file(mut req: ServiceRequest, path: &Path, shown: &str) -> ServiceResponse {
    let file = match NamedFile::open_async(path).await {
        Ok(file) => file,
        Err(e) => return req.into_response(error_page(status_for(&e), shown)),
    };
    if !if_range_allows(&req, &file) {
        req.headers_mut().remove(header::RANGE);
    }
    // Browsers decide between showing and downloading, as they do for other servers.
    let file = file.disable_content_disposition();
    let (req, _) = req.into_parts();
    let mut res = file.into_response(&req);
    // actix-files adds a charset to a few text types only; every text file here is taken as
    // UTF-8, as browsers would otherwise guess from the page that loads it.
    let text_without_charset = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|ct| ct.starts_with("text/") && !ct.contains("charset"))
        .map(|ct| format!("{ct}; charset=utf-8"));
    if let Some(ct) = text_without_charset.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
        res.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    ServiceResponse::new(req, res)
}

/// Whether `Range` may be honoured given `If-Range` (RFC 9110 §13.1.5): yes without one; with
/// an entity tag only if it is strongly equal to the file's; with a date only if it is exactly
/// the file's `Last-Modified`. Otherwise the whole file is sent.
fn if_range_allows(req: &ServiceRequest, file: &NamedFile) -> bool {
    let Some(value) = req.headers().get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    if let Ok(tag) = value.parse::<EntityTag>() {
        return etag_of(file).is_some_and(|ours| ours.strong_eq(&tag));
    }
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
    match (value.parse::<HttpDate>(), file.modified()) {
        (Ok(date), Some(modified)) => {
            secs(modified).is_some() && secs(SystemTime::from(date)) == secs(modified)
        }
        _ => false,
    }
}

/// The `ETag` actix-files sends for `file` (its format: inode, length, and modification
/// seconds and nanoseconds, in hex). A test compares the two, so a change on their side shows.
fn etag_of(file: &NamedFile) -> Option<EntityTag> {
    let modified = file.modified()?.duration_since(UNIX_EPOCH).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(file.metadata());
    #[cfg(not(unix))]
    let ino = 0;
    Some(EntityTag::new_strong(format!(
        "{:x}:{:x}:{:x}:{:x}",
        ino,
        file.metadata().len(),
        modified.as_secs(),
        modified.subsec_nanos()
    )))
}

/// One name in a directory listing.
struct Entry {
    name: String,
    is_dir: bool,
    size: Option<u64>,
    modified: Option<u64>,
}

/// The listing page of `dir`, reached as `rel` under the root.
async fn listing(req: ServiceRequest, dir: PathBuf, rel: &Path) -> ServiceResponse {
    let mut title = String::from("/");
    for name in rel.iter() {
        title.push_str(&name.to_string_lossy());
        title.push('/');
    }
    // One blocking task for the whole directory instead of one per entry.
    let read = tokio::task::spawn_blocking(move || read_listing(&dir)).await;
    let (entries, more) = match read {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return req.into_response(error_page(status_for(&e), &title)),
        Err(e) => {
            tracing::warn!(error = %e, "file server: listing task failed");
            return req.into_response(error_page(StatusCode::INTERNAL_SERVER_ERROR, &title));
        }
    };

    let title = escape(&title);
    let mut page = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Index of {title}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         th,td{{padding:.15em 2em .15em 0;text-align:left}}td.size{{text-align:right}}</style>\n\
         </head>\n<body>\n<h1>Index of {title}</h1>\n<table>\n\
         <tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr>\n"
    );
    if rel.iter().next().is_some() {
        page.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in &entries {
        let slash = if e.is_dir { "/" } else { "" };
        let size = match (e.is_dir, e.size) {
            (false, Some(n)) => n.to_string(),
            _ => "-".to_string(),
        };
        let modified = e.modified.map(listing_date).unwrap_or_default();
        page.push_str(&format!(
            "<tr><td><a href=\"{}{slash}\">{}{slash}</a></td><td class=\"size\">{size}</td>\
             <td>{modified}</td></tr>\n",
            utf8_percent_encode(&e.name, NOT_UNRESERVED),
            escape(&e.name),
        ));
    }
    page.push_str("</table>\n");
    if more > 0 {
        page.push_str(&format!("<p>{more} more entries not shown.</p>\n"));
    }
    page.push_str("</body>\n</html>\n");
    let res = HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(page);
    req.into_response(res)
}

/// The directory's entries, directories first, then by name; and how many were left out.
fn read_listing(dir: &Path) -> io::Result<(Vec<Entry>, usize)> {
    let mut entries = Vec::new();
    let mut more = 0usize;
    for item in std::fs::read_dir(dir)? {
        let Ok(item) = item else { continue };
        if entries.len() >= MAX_LISTING {
            more += 1;
            continue;
        }
        // Follow symlinks so a link to a directory lists as one; a dangling link falls back
        // to the link itself.
        let meta = std::fs::metadata(item.path())
            .or_else(|_| item.metadata())
            .ok();
        let modified = meta
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        entries.push(Entry {
            name: item.file_name().to_string_lossy().into_owned(),
            is_dir: meta.as_ref().is_some_and(|m| m.is_dir()),
            size: meta.as_ref().map(|m| m.len()),
            modified,
        });
    }
    entries.sort_by(|a, b| {
        b.is_dir
            .cmp(&a.is_dir)
            .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok((entries, more))
}

/// `2024-03-01 12:34:56` (UTC), for listings.
fn listing_date(secs: u64) -> String {
    // u64 seconds / 86,400 fits an i64 with room to spare.
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "burrow-files-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }

        fn write(&self, rel: &str, data: &[u8]) {
            let p = self.0.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(p, data).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Deterministic pseudo-random bytes (xorshift64*).
    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    #[derive(Debug)]
    struct Resp {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Resp {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
    }

    /// Splits a byte stream into responses; `head[i]` says whether response `i` answers HEAD.
    fn parse_responses(mut data: &[u8], head: &[bool]) -> Vec<Resp> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut fields);
            let n = match r.parse(data).unwrap() {
                httparse::Status::Complete(n) => n,
                httparse::Status::Partial => panic!("partial response: {data:?}"),
            };
            let status = r.code.unwrap();
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8(h.value.to_vec()).unwrap(),
                    )
                })
                .collect();
            let is_head = head.get(out.len()).copied().unwrap_or(false);
            let len = if is_head || status == 304 {
                0
            } else {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse::<usize>().unwrap())
                    .unwrap()
            };
            let body = data[n..n + len].to_vec();
            data = &data[n + len..];
            out.push(Resp {
                status,
                headers,
                body,
            });
        }
        out
    }

    /// Sends `request` on a fresh connection, closes our sending side, and returns every
    /// byte the server wrote before it finished.
    async fn exchange(root: &Path, request: &[u8]) -> Vec<u8> {
        let (client, server) = tokio::io::duplex(256 * 1024);
        let root = root.to_path_buf();
        let task = actix_rt::spawn(async move { serve(&root, server).await });
        let (mut rx, mut tx) = tokio::io::split(client);
        let request = request.to_vec();
        // The server may answer and close before reading everything (a refused head).
        let writer = actix_rt::spawn(async move {
            let _ = tx.write_all(&request).await;
            let _ = tx.shutdown().await;
        });
        let mut out = Vec::new();
        rx.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        // A refused request ends the connection with an error; the answer is what counts.
        let _ = task.await.unwrap();
        out
    }

    async fn get(root: &Path, path: &str, extra: &str) -> Resp {
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n");
        let mut all = parse_responses(&exchange(root, req.as_bytes()).await, &[]);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            parse_file_url("file:///var/www"),
            Ok(PathBuf::from("/var/www"))
        );
        assert_eq!(parse_file_url("FILE:///srv/"), Ok(PathBuf::from("/srv/")));
        assert_eq!(parse_file_url("file:///"), Ok(PathBuf::from("/")));
        assert_eq!(
            parse_file_url("file:///C:/Users/me/site"),
            Ok(PathBuf::from("C:/Users/me/site"))
        );
        assert_eq!(parse_file_url("file:///C:/x"), Ok(PathBuf::from("C:/x")));
        assert_eq!(parse_file_url("file://C:/x"), Ok(PathBuf::from("C:/x")));
        assert_eq!(
            parse_file_url("file:///C:\\Users\\alan\\Directory Name"),
            Ok(PathBuf::from("C:\\Users\\alan\\Directory Name"))
        );
        assert_eq!(parse_file_url("file:///d:"), Ok(PathBuf::from("d:/")));
        assert_eq!(
            parse_file_url("file:///tmp/a%20b"),
            Ok(PathBuf::from("/tmp/a b"))
        );
        assert_eq!(
            parse_file_url("file:///tmp/%C3%A9t%c3%a9"),
            Ok(PathBuf::from("/tmp/été"))
        );
        for relative in [
            "file://relative/dir",
            "file://./x",
            "file://",
            "file://x%2Fy",
        ] {
            let err = parse_file_url(relative).unwrap_err().to_string();
            assert!(err.contains("absolute path is needed"), "{relative}: {err}");
        }
        let err = parse_file_url("file://relative/dir")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"relative/dir\""), "{err}");
        for bad in [
            "http:///x",
            "/var/www",
            "file:/x",
            "file:///a%zz",
            "file:///a%00",
            "file:///a%ff",
            "file:///%",
        ] {
            assert!(parse_file_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listing_dates() {
        assert_eq!(listing_date(0), "1970-01-01 00:00:00");
        assert_eq!(listing_date(1_709_210_096), "2024-02-29 12:34:56");
        // Never panics, even at the far end.
        let _ = listing_date(u64::MAX);
    }

    #[actix_rt::test]
    async fn serves_a_file_with_headers() {
        let dir = TempDir::new();
        dir.write("hello.txt", b"hello world\n");
        let r = get(dir.path(), "/hello.txt", "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello world\n");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("content-length"), Some("12"));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(r.header("server"), Some("burrow"));
        assert_eq!(r.header("content-disposition"), None);
        let etag = r.header("etag").unwrap();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let lm = r.header("last-modified").unwrap();
        assert!(lm.parse::<HttpDate>().is_ok(), "{lm}");
        assert!(r.header("date").unwrap().parse::<HttpDate>().is_ok());
    }

    #[actix_rt::test]
    async fn large_file_streams_intact() {
        let dir = TempDir::new();
        let data = noise(3 * 1024 * 1024 + 17, 7);
        dir.write("big.bin", &data);
        let r = get(dir.path(), "/big.bin", "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert!(r.body == data);
    }

    #[actix_rt::test]
    async fn content_types() {
        let dir = TempDir::new();
        let cases = [
            ("a.HTML", "text/html; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("a.js", "text/javascript; charset=utf-8"),
            ("a.json", "application/json"),
            ("a.png", "image/png"),
            ("a.jpeg", "image/jpeg"),
            ("a.svg", "image/svg+xml"),
            ("a.wasm", "application/wasm"),
            ("a.woff2", "font/woff2"),
            ("a.tar.gz", "application/gzip"),
            ("a.unknown", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
            (".bashrc", "application/octet-stream"),
        ];
        for (name, _) in cases {
            dir.write(name, b"x");
        }
        for (name, want) in cases {
            let r = get(dir.path(), &format!("/{name}"), "").await;
            assert_eq!(r.status, 200, "{name}");
            assert_eq!(r.header("content-type"), Some(want), "{name}");
        }
    }

    #[actix_rt::test]
    async fn listing_escapes_sorts_and_links() {
        let dir = TempDir::new();
        dir.write("<b>&\"x\".txt", b"tricky");
        dir.write("a.txt", b"a");
        dir.write("B.txt", b"bb");
        dir.write(".hidden", b"h");
        dir.write("a:b é", b"colon");
        dir.write("zdir/inner.txt", b"i");
        dir.write("Adir/x", b"");
        let r = get(dir.path(), "/", "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        let page = r.text();
        assert!(page.contains("<title>Index of /</title>"), "{page}");
        assert!(
            page.contains("<a href=\"%3Cb%3E%26%22x%22.txt\">&lt;b&gt;&amp;&quot;x&quot;.txt</a>"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"a%3Ab%20%C3%A9\">a:b é</a>"),
            "{page}"
        );
        assert!(!page.contains("<b>&"));
        assert!(!page.contains("href=\"../\""), "no parent above the root");
        assert!(page.contains("href=\".hidden\""), "hidden files are listed");
        let at = |s: &str| {
            page.find(s)
                .unwrap_or_else(|| panic!("{s} missing: {page}"))
        };
        assert!(at("href=\"Adir/\"") < at("href=\"zdir/\""));
        assert!(at("href=\"zdir/\"") < at("href=\".hidden\""));
        assert!(at("href=\".hidden\"") < at("href=\"%3Cb"));
        assert!(at("href=\"a.txt\"") < at("href=\"B.txt\""));
        assert!(page.contains("<td class=\"size\">6</td>"));
        // Tricky names are fetchable through their links.
        let r = get(dir.path(), "/%3Cb%3E%26%22x%22.txt", "").await;
        assert_eq!(r.body, b"tricky");
        let r = get(dir.path(), "/a%3Ab%20%C3%A9", "").await;
        assert_eq!(r.body, b"colon");
        let r = get(dir.path(), "/.hidden", "").await;
        assert_eq!(r.body, b"h", "hidden files are served");

        let sub = get(dir.path(), "/zdir/", "").await.text();
        assert!(sub.contains("<title>Index of /zdir/</title>"));
        assert!(sub.contains("<a href=\"../\">../</a>"));
        assert!(sub.contains("href=\"inner.txt\""));

        let head = exchange(dir.path(), b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let head = parse_responses(&head, &[true]);
        assert_eq!(head[0].status, 200);
        assert!(head[0].body.is_empty());
        let listed = get(dir.path(), "/", "").await;
        assert_eq!(
            head[0].header("content-length"),
            Some(listed.body.len().to_string().as_str())
        );
    }

    #[actix_rt::test]
    async fn index_html_is_preferred() {
        let dir = TempDir::new();
        dir.write("index.html", b"<p>home</p>");
        dir.write("other.txt", b"x");
        dir.write("sub/index.html/keep", b"");
        let r = get(dir.path(), "/", "").await;
        assert_eq!(r.body, b"<p>home</p>");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        // A directory named index.html does not count.
        let r = get(dir.path(), "/sub/", "").await;
        assert_eq!(r.status, 200);
        assert!(r.text().contains("Index of /sub/"));
    }

    #[actix_rt::test]
    async fn directory_without_slash_redirects() {
        let dir = TempDir::new();
        dir.write("my dir/f", b"");
        dir.write("evil.example/f", b"");
        let r = get(dir.path(), "/my%20dir?x=1&y=%41", "").await;
        assert_eq!(r.status, 301);
        assert_eq!(r.header("location"), Some("/my%20dir/?x=1&y=%41"));
        // Never a scheme-relative `//host` redirect.
        let r = get(dir.path(), "//evil.example", "").await;
        assert_eq!(r.status, 301);
        assert_eq!(r.header("location"), Some("/evil.example/"));
        let r = get(dir.path(), "/my%20dir/", "").await;
        assert_eq!(r.status, 200);
        // A file asked for as a directory is not there.
        dir.write("f.txt", b"x");
        assert_eq!(get(dir.path(), "/f.txt/", "").await.status, 404);
    }

    #[actix_rt::test]
    async fn byte_ranges() {
        let dir = TempDir::new();
        let data = noise(1000, 3);
        dir.write("d.bin", &data);
        let r = get(dir.path(), "/d.bin", "Range: bytes=100-199\r\n").await;
        assert_eq!(r.status, 206);
        assert_eq!(r.header("content-range"), Some("bytes 100-199/1000"));
        assert_eq!(r.body, &data[100..200]);
        let r = get(dir.path(), "/d.bin", "Range: bytes=-10\r\n").await;
        assert_eq!(r.status, 206);
        assert_eq!(r.header("content-range"), Some("bytes 990-999/1000"));
        assert_eq!(r.body, &data[990..]);
        let r = get(dir.path(), "/d.bin", "Range: bytes=995-\r\n").await;
        assert_eq!(r.body, &data[995..]);
        let r = get(dir.path(), "/d.bin", "Range: bytes=990-5000\r\n").await;
        assert_eq!(r.header("content-range"), Some("bytes 990-999/1000"));
        let r = get(dir.path(), "/d.bin", "Range: bytes=1000-\r\n").await;
        assert_eq!(r.status, 416);
        assert_eq!(r.header("content-range"), Some("bytes */1000"));
        // Of several ranges, the first is sent.
        let r = get(dir.path(), "/d.bin", "Range: bytes=0-1,5-6\r\n").await;
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &data[..2]);

        // If-Range: the file's entity tag or its exact date allows the range; anything
        // else gets the whole file.
        let full = get(dir.path(), "/d.bin", "").await;
        let lm = full.header("last-modified").unwrap().to_string();
        let etag = full.header("etag").unwrap().to_string();
        for validator in [&lm, &etag] {
            let r = get(
                dir.path(),
                "/d.bin",
                &format!("Range: bytes=0-9\r\nIf-Range: {validator}\r\n"),
            )
            .await;
            assert_eq!(r.status, 206, "{validator}");
            assert_eq!(r.body, &data[..10]);
        }
        for stale in [
            "\"other\"",
            &format!("W/{etag}"),
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "garbage",
        ] {
            let r = get(
                dir.path(),
                "/d.bin",
                &format!("Range: bytes=0-9\r\nIf-Range: {stale}\r\n"),
            )
            .await;
            assert_eq!(r.status, 200, "{stale}");
            assert_eq!(r.body, data);
        }

        // HEAD describes what a GET would send, without the bytes.
        let out = exchange(dir.path(), b"HEAD /d.bin HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let r = &parse_responses(&out, &[true])[0];
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("1000"));
        assert!(r.body.is_empty());

        dir.write("empty", b"");
        let r = get(dir.path(), "/empty", "").await;
        assert_eq!((r.status, r.body.len()), (200, 0));
        let r = get(dir.path(), "/empty", "Range: bytes=0-0\r\n").await;
        assert_eq!(r.status, 416);
        assert_eq!(r.header("content-range"), Some("bytes */0"));
    }

    #[actix_rt::test]
    async fn conditional_requests() {
        let dir = TempDir::new();
        dir.write("c.css", b"body{}");
        let full = get(dir.path(), "/c.css", "").await;
        let etag = full.header("etag").unwrap().to_string();
        let lm = full.header("last-modified").unwrap().to_string();

        let r = get(dir.path(), "/c.css", &format!("If-None-Match: {etag}\r\n")).await;
        assert_eq!(r.status, 304);
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        let r = get(
            dir.path(),
            "/c.css",
            &format!("If-None-Match: \"x\", W/{etag}\r\n"),
        )
        .await;
        assert_eq!(r.status, 304, "weak comparison");
        let r = get(dir.path(), "/c.css", "If-None-Match: *\r\n").await;
        assert_eq!(r.status, 304);
        let r = get(dir.path(), "/c.css", "If-None-Match: \"other\"\r\n").await;
        assert_eq!(r.status, 200);

        let r = get(
            dir.path(),
            "/c.css",
            &format!("If-Modified-Since: {lm}\r\n"),
        )
        .await;
        assert_eq!(r.status, 304);
        let r = get(
            dir.path(),
            "/c.css",
            "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
        )
        .await;
        assert_eq!(r.status, 200);
        // If-None-Match decides when present, even against a matching If-Modified-Since.
        let r = get(
            dir.path(),
            "/c.css",
            &format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {lm}\r\n"),
        )
        .await;
        assert_eq!(r.status, 200);
        let r = get(dir.path(), "/c.css", "If-Modified-Since: garbage\r\n").await;
        assert_eq!(r.status, 200);
        let r = get(dir.path(), "/c.css", "If-Match: \"other\"\r\n").await;
        assert_eq!(r.status, 412);
    }

    #[actix_rt::test]
    async fn missing_paths_are_404_and_named_safely() {
        let dir = TempDir::new();
        let r = get(dir.path(), "/nope%3Cscript%3E.txt", "").await;
        assert_eq!(r.status, 404);
        let page = r.text();
        assert!(page.contains("/nope&lt;script&gt;.txt"), "{page}");
        assert!(!page.contains("<script>"));
        // Keep-alive survives a 404.
        let out = exchange(
            dir.path(),
            b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        assert_eq!(parse_responses(&out, &[]).len(), 2);

        // A root that does not exist serves nothing, not the working directory.
        let gone = dir.path().join("gone");
        assert_eq!(get(&gone, "/", "").await.status, 404);
        assert_eq!(get(&gone, "/Cargo.toml", "").await.status, 404);
    }

    #[actix_rt::test]
    async fn traversal_is_refused() {
        let dir = TempDir::new();
        dir.write("site/ok.txt", b"ok");
        dir.write("secret.txt", b"SECRET");
        let root = dir.path().join("site");
        for target in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/..%2fsecret.txt",
            "/..%2Fsecret.txt",
            "/x/../../secret.txt",
            "/./../secret.txt",
            "/%252e%252e/secret.txt",
            "http://t/../secret.txt",
            "/..",
        ] {
            let r = get(&root, target, "").await;
            assert!(
                matches!(r.status, 400 | 403 | 404)
                    || (r.status == 301 && r.header("location") == Some("/")),
                "{target}: {}",
                r.status
            );
            assert!(!r.text().contains("SECRET"), "{target}");
        }
        // `..` stops at the root rather than leaving it.
        assert_eq!(get(&root, "/../ok.txt", "").await.body, b"ok");
        // A backslash is just a character in a Unix name.
        let r = get(&root, "/..%5csecret.txt", "").await;
        assert_eq!(r.status, if cfg!(windows) { 400 } else { 404 });
        assert_eq!(get(&root, "/ok.txt", "").await.body, b"ok");
    }

    #[cfg(unix)]
    #[actix_rt::test]
    async fn symlinks_must_stay_inside() {
        use std::os::unix::fs::symlink;
        let dir = TempDir::new();
        dir.write("site/real/inner.txt", b"inner");
        dir.write("outside.txt", b"SECRET");
        let root = dir.path().join("site");
        symlink("/etc", root.join("etc")).unwrap();
        symlink(dir.path().join("outside.txt"), root.join("out.txt")).unwrap();
        symlink(root.join("real"), root.join("alias")).unwrap();
        symlink("real/inner.txt", root.join("inner-link.txt")).unwrap();
        symlink(dir.path().join("outside.txt"), root.join("real/index.html")).unwrap();
        symlink("nowhere", root.join("dangling")).unwrap();

        for target in ["/etc/passwd", "/etc/", "/etc", "/out.txt", "/real/"] {
            let r = get(&root, target, "").await;
            assert_eq!(r.status, 403, "{target}");
            assert!(!r.text().contains("SECRET") && !r.text().contains("root:"));
        }
        assert_eq!(get(&root, "/alias/inner.txt", "").await.body, b"inner");
        assert_eq!(get(&root, "/inner-link.txt", "").await.body, b"inner");
        assert_eq!(get(&root, "/dangling", "").await.status, 404);
        let page = get(&root, "/", "").await.text();
        assert!(
            page.contains("href=\"alias/\""),
            "links to directories list as directories"
        );
        assert!(page.contains("href=\"dangling\""));

        // A root that is itself a symlink is followed.
        let link_root = dir.path().join("root-link");
        symlink(&root, &link_root).unwrap();
        assert_eq!(get(&link_root, "/alias/inner.txt", "").await.body, b"inner");
    }

    #[actix_rt::test]
    async fn bad_requests() {
        let dir = TempDir::new();
        dir.write("f", b"x");
        for target in ["/a%00b", "/a%ffb", "/a%2fb", "*"] {
            let r = get(dir.path(), target, "").await;
            assert_eq!(r.status, 400, "{target}");
        }
        // Read as an authority with an empty path: sent to the root, never served as a file.
        let r = get(dir.path(), "relative", "").await;
        assert_eq!((r.status, r.header("location")), (301, Some("/")));
        // Malformed heads get 400 and end the connection: the request after them is not read.
        let heads: [&[u8]; 3] = [
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for head in heads {
            let mut req = head.to_vec();
            req.extend_from_slice(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n");
            let out = parse_responses(&exchange(dir.path(), &req).await, &[]);
            assert_eq!(out.len(), 1, "{}", String::from_utf8_lossy(head));
            assert_eq!(out[0].status, 400, "{}", String::from_utf8_lossy(head));
        }
        for garbage in [
            &b"\x00\x01\x02\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"G E T / HTTP/1.1\r\n\r\n",
        ] {
            let out = parse_responses(&exchange(dir.path(), garbage).await, &[]);
            assert_eq!(out[0].status, 400, "{}", String::from_utf8_lossy(garbage));
        }
        // Half a head, then the visitor leaves: nothing to answer.
        assert!(exchange(dir.path(), b"GET / HTTP/1.1\r\nHo")
            .await
            .is_empty());
        assert!(exchange(dir.path(), b"").await.is_empty());
    }

    #[actix_rt::test]
    async fn oversized_heads_are_refused() {
        let dir = TempDir::new();
        let mut big = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 256 * 1024));
        big.extend_from_slice(b"\r\n\r\n");
        let out = parse_responses(&exchange(dir.path(), &big).await, &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].status, 431);

        let mut many = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
        for i in 0..200 {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let out = parse_responses(&exchange(dir.path(), &many).await, &[]);
        assert!(matches!(out[0].status, 400 | 431), "{}", out[0].status);
    }

    #[actix_rt::test]
    async fn only_get_and_head() {
        let dir = TempDir::new();
        dir.write("f", b"x");
        let out = exchange(
            dir.path(),
            b"POST /f HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /f HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[]);
        assert_eq!(out[0].status, 405);
        assert_eq!(out[0].header("allow"), Some("GET, HEAD"));
        let out = exchange(
            dir.path(),
            b"DELETE /f HTTP/1.1\r\nHost: t\r\n\r\nOPTIONS /f HTTP/1.1\r\nHost: t\r\n\r\nGET /f HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[]);
        let statuses: Vec<u16> = out.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [405, 405, 200]);
        assert!(out[0].text().contains("DELETE is not allowed"));
        // Methods are case-sensitive.
        let out = exchange(dir.path(), b"get /f HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert_eq!(parse_responses(&out, &[])[0].status, 405);
    }

    #[actix_rt::test]
    async fn keep_alive_pipelining_and_close() {
        let dir = TempDir::new();
        dir.write("1.txt", b"one");
        dir.write("2.txt", b"two");
        dir.write("3.txt", b"three");
        let out = exchange(
            dir.path(),
            b"GET /1.txt HTTP/1.1\r\nHost: t\r\n\r\n\
              HEAD /2.txt HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /3.txt HTTP/1.1\r\nHost: t\r\n\r\n\
              HEAD /3.txt HTTP/1.1\r\nHost: t\r\n\r\n\
              HEAD /1.txt HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /2.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[false, true, false, true, true, false]);
        let bodies: Vec<&[u8]> = out.iter().map(|r| r.body.as_slice()).collect();
        assert_eq!(bodies, [&b"one"[..], b"", b"three", b"", b"", b"two"]);
        assert_eq!(out[1].header("content-length"), Some("3"));
        assert_eq!(out[3].header("content-length"), Some("5"));
        // Leading empty lines before a request are tolerated (RFC 9112 §2.2).
        let out = exchange(
            dir.path(),
            b"\r\n\r\nGET /1.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        assert_eq!(parse_responses(&out, &[])[0].body, b"one");
        // A body on a GET is not read: the request is answered, then the connection closes.
        let out = exchange(
            dir.path(),
            b"GET /1.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody",
        )
        .await;
        assert_eq!(parse_responses(&out, &[])[0].body, b"one");
        let out = exchange(
            dir.path(),
            b"GET /1.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbodyGET /2.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[]);
        assert_eq!(
            out.len(),
            1,
            "the connection closes after a request with a body"
        );
        assert_eq!(out[0].header("connection"), Some("close"));

        let out = exchange(
            dir.path(),
            b"GET /1.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /2.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].header("connection"), Some("close"));

        // HTTP/1.0 closes unless it asks to keep the connection.
        let out = exchange(
            dir.path(),
            b"GET /1.txt HTTP/1.0\r\n\r\nGET /2.txt HTTP/1.0\r\n\r\n",
        )
        .await;
        assert_eq!(parse_responses(&out, &[]).len(), 1);
        let out = exchange(
            dir.path(),
            b"GET /1.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2.txt HTTP/1.0\r\n\r\n",
        )
        .await;
        assert_eq!(parse_responses(&out, &[]).len(), 2);
    }

    #[actix_rt::test]
    async fn requests_arriving_in_pieces() {
        let dir = TempDir::new();
        dir.write("p.txt", b"pieces");
        let (mut client, server) = tokio::io::duplex(1024);
        let root = dir.path().to_path_buf();
        let task = actix_rt::spawn(async move { serve(&root, server).await });
        for b in b"GET /p.txt HTTP/1.1\r\nHost: t\r\n\r\n" {
            client.write_all(&[*b]).await.unwrap();
            tokio::task::yield_now().await;
        }
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !got.ends_with(b"pieces") {
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&chunk[..n]);
        }
        // The connection stays open for more until the visitor leaves.
        assert!(!task.is_finished());
        drop(client);
        task.await.unwrap().unwrap();
    }

    /// The tunnel's path: `dial()` on a `file://` address reaches this server.
    #[actix_rt::test]
    async fn dial_reaches_the_file_server() {
        let dir = TempDir::new();
        dir.write("d.txt", b"dialed");
        let url = format!("file://{}", dir.path().display());
        let addr =
            crate::local::addr::parse(burrow_protocol::control::TunnelProto::Http, &url).unwrap();
        let crate::local::Local::Other(mut io) = crate::local::dial(&addr).await.unwrap() else {
            panic!("a file address is not plain TCP");
        };
        io.write_all(b"GET /d.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        io.read_to_end(&mut out).await.unwrap();
        let r = &parse_responses(&out, &[])[0];
        assert_eq!((r.status, r.body.as_slice()), (200, &b"dialed"[..]));
    }
}
