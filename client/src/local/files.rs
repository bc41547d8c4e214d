//! The agent's built-in file server, behind ngrok v2's `file://` addresses
//! (`ngrok http file:///var/www`): [`serve`] answers HTTP/1.1 on one visitor connection from a
//! local directory, and [`parse_file_url`] turns the address into that directory.
//!
//! What it does: GET and HEAD, keep-alive and pipelining, directory listings (or the
//! directory's `index.html`), content types from a built-in extension table, `Last-Modified`,
//! weak `ETag`s, `If-None-Match` / `If-Modified-Since` (304), and a single byte range (206 / 416).
//!
//! Limits and choices:
//! - A request head may be at most 64 KiB with at most 100 fields (431 past either).
//! - Only GET and HEAD; anything else gets 405. A body on a GET or HEAD is read and discarded
//!   when it is small and announced by `Content-Length`; otherwise the response closes the
//!   connection.
//! - Several ranges in one `Range` header get the whole file with 200, which RFC 9110 §14.2
//!   allows (a server may ignore `Range`); `multipart/byteranges` is not produced.
//! - `If-Range` with an entity tag never matches, because our tags are weak and `If-Range`
//!   needs a strong comparison (RFC 9110 §13.1.5), so the whole file is sent; `If-Range`
//!   with a date works. `If-Match` and `If-Unmodified-Since` are not evaluated.
//! - Hidden (dot) files are served like any other, as ngrok v2 does: the operator chose the
//!   directory, and hiding files by name would suggest a protection that isn't there.
//! - Listings show at most 10,000 entries; names that are not UTF-8 are shown lossily and
//!   cannot be requested (request paths must be UTF-8).
//! - Nothing outside the directory is ever served: `..` may not climb above it, and every
//!   target is canonicalized (following symlinks) and must still lie inside the canonicalized
//!   directory. Someone who can write inside the directory could still swap a path component
//!   for a symlink between that check and the open; visitors cannot.

use crate::logfmt::civil_from_days;
use burrow_http::pages::{escape, reason};
use std::cmp::min;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

/// Longest request head accepted; browsers send a few KiB, cookies included.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in one request head.
const MAX_HEADERS: usize = 100;
/// File bodies go out in pieces of this size, so a large file never sits in memory.
const CHUNK: usize = 64 * 1024;
/// Largest body on a GET or HEAD that is read and thrown away to keep the connection usable.
const MAX_DISCARDED_BODY: u64 = 64 * 1024;
/// Most entries shown in one directory listing.
const MAX_LISTING: usize = 10_000;
/// After refusing a request whose body was not read, how long and how much of it is still
/// read before closing: closing a TCP socket with unread data resets the connection, and the
/// visitor could then lose the response it has not read yet.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// See [`LINGER_TIME`].
const LINGER_BYTES: usize = 1024 * 1024;

/// Serves HTTP/1.1 requests on `io` from the directory `root` until the visitor closes, an
/// error occurs, or the connection is not keep-alive.
///
/// Requests are answered one at a time in the order they arrive, so pipelined requests get
/// their responses in order. A visitor closing between requests is a normal end (`Ok`); an
/// I/O error on `io` or on a file being sent is returned.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(root: &Path, io: S) -> io::Result<()> {
    let mut io = io;
    // Bytes read but not yet used: the next request head, and any pipelined ones after it.
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    loop {
        let (req, head_len) = loop {
            match parse_head(&buf) {
                Head::Complete(req, n) => break (req, n),
                Head::TooLarge => {
                    let resp = Response::error(431, "The request head is too large.");
                    return refuse_and_close(&mut io, resp).await;
                }
                Head::Malformed => {
                    let resp = Response::error(400, "The request could not be parsed.");
                    return refuse_and_close(&mut io, resp).await;
                }
                Head::Partial if buf.len() >= MAX_HEAD => {
                    let resp = Response::error(431, "The request head is too large.");
                    return refuse_and_close(&mut io, resp).await;
                }
                Head::Partial => {
                    buf.reserve(8 * 1024);
                    if io.read_buf(&mut buf).await? == 0 {
                        // Closed between requests (or mid-head, which has nobody to answer).
                        return Ok(());
                    }
                }
            }
        };
        buf.drain(..head_len);

        if req.framing == Framing::Invalid {
            let resp = Response::error(400, "The request's body length is ambiguous.");
            return refuse_and_close(&mut io, resp).await;
        }
        if req.bad_host {
            let resp = Response::error(400, "An HTTP/1.1 request needs exactly one Host field.");
            return refuse_and_close(&mut io, resp).await;
        }
        let has_body = !matches!(req.framing, Framing::None | Framing::Length(0));

        if req.method == Method::Other {
            let resp = Response::method_not_allowed(&req.method_name);
            log_request(&req, resp.status);
            if has_body {
                // Its body is not wanted, and without reading it the next request's start
                // is unknown, so the connection ends here.
                return refuse_and_close(&mut io, resp).await;
            }
            write_response(&mut io, resp, false, conn_header(&req, !req.keep_alive)).await?;
            if !req.keep_alive {
                return close(&mut io).await;
            }
            continue;
        }

        let mut unread_body = false;
        match req.framing {
            Framing::Length(n) if n > 0 && n <= MAX_DISCARDED_BODY => {
                if !discard(&mut io, &mut buf, n).await? {
                    return Ok(());
                }
            }
            Framing::Length(0) | Framing::None => {}
            // Too large to be worth reading, or chunked (not decoded here): answer, then close.
            _ => unread_body = true,
        }

        let resp = respond(root, &req).await;
        log_request(&req, resp.status);
        let closing = !req.keep_alive || unread_body || resp.close;
        let head_only = req.method == Method::Head;
        write_response(&mut io, resp, head_only, conn_header(&req, closing)).await?;
        if unread_body {
            linger(&mut io).await;
            return Ok(());
        }
        if closing {
            return close(&mut io).await;
        }
    }
}

/// Turns the path part of a `file://` URL into a directory path: `file:///var/www` →
/// `/var/www`, `file:///C:/Users/me/site` → `C:/Users/me/site` (Windows style parses on every
/// platform), percent-decoded.
///
/// A relative path (`file://relative/dir`, `file://./x`) is an error whose message names the
/// path and says an absolute path is needed, as are a missing `file://` scheme, bad percent
/// escapes, `%00`, and escapes that do not decode to UTF-8.
pub fn parse_file_url(url: &str) -> Result<PathBuf, String> {
    const SCHEME: &str = "file://";
    let rest = match url.get(..SCHEME.len()) {
        Some(s) if s.eq_ignore_ascii_case(SCHEME) => &url[SCHEME.len()..],
        _ => return Err(format!("{url:?} is not a file:// URL")),
    };
    let bytes = percent_decode(rest)
        .ok_or_else(|| format!("file:// URL {url:?} has an invalid percent escape"))?;
    if bytes.contains(&0) {
        return Err(format!("file:// URL {url:?} contains a NUL byte (%00)"));
    }
    let path = String::from_utf8(bytes)
        .map_err(|_| format!("file:// URL {url:?} does not decode to UTF-8"))?;

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
    Err(format!(
        "file:// URL {url:?} names the relative path {path:?}; an absolute path is needed, \
         e.g. file:///var/www or file:///C:/site"
    ))
}

/// `C:`, `C:/…` or `C:\…`: a Windows path on a drive.
fn is_drive_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && (b.len() == 2 || b[2] == b'/' || b[2] == b'\\')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Other,
}

/// How the request says its body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    /// `Transfer-Encoding`: the body's length is only known by decoding it.
    Encoded,
    /// A malformed or self-contradicting `Content-Length`, or one next to
    /// `Transfer-Encoding`: where the next request starts cannot be known safely.
    Invalid,
}

/// The parts of a request head this server uses.
#[derive(Debug)]
struct Request {
    method: Method,
    method_name: String,
    target: String,
    http10: bool,
    keep_alive: bool,
    bad_host: bool,
    framing: Framing,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    range: Option<String>,
    if_range: Option<String>,
}

enum Head {
    Complete(Request, usize),
    Partial,
    TooLarge,
    Malformed,
}

fn parse_head(buf: &[u8]) -> Head {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => return Head::TooLarge,
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => return Head::TooLarge,
        Err(_) => return Head::Malformed,
    };
    let (Some(method_name), Some(target), Some(version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Head::Malformed;
    };
    let method = match method_name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    let http10 = version == 0;

    let mut close = false;
    let mut keep_alive_token = false;
    let mut hosts = 0usize;
    let mut length: Option<u64> = None;
    let mut length_bad = false;
    let mut encoded = false;
    let mut if_none_match: Option<String> = None;
    let mut if_modified_since = None;
    let mut range: Option<String> = None;
    let mut if_range = None;

    for field in parsed.headers.iter() {
        let name = field.name;
        // Values that are not UTF-8 can't be any of the values understood here.
        let value = std::str::from_utf8(field.value).ok().map(str::trim);
        if name.eq_ignore_ascii_case("connection") {
            for token in value.unwrap_or("").split(',') {
                let token = token.trim();
                close |= token.eq_ignore_ascii_case("close");
                keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            // Repeated fields (or a list) are fine only when every value agrees.
            for v in value.unwrap_or("x").split(',') {
                match parse_digits(v.trim()) {
                    Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                    _ => length_bad = true,
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
        } else if name.eq_ignore_ascii_case("if-none-match") {
            if let Some(v) = value {
                // Repeated fields form one list.
                if_none_match = Some(match if_none_match {
                    Some(prev) => format!("{prev}, {v}"),
                    None => v.to_string(),
                });
            }
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            if_modified_since = value.map(str::to_string);
        } else if name.eq_ignore_ascii_case("range") {
            if let Some(v) = value {
                // A second Range field is treated as more ranges, which means the whole file.
                range = Some(match range {
                    Some(prev) => format!("{prev},{v}"),
                    None => v.to_string(),
                });
            }
        } else if name.eq_ignore_ascii_case("if-range") {
            if_range = value.map(str::to_string);
        }
    }

    let framing = match (length, length_bad, encoded) {
        (_, true, _) | (Some(_), _, true) => Framing::Invalid,
        (None, false, true) => Framing::Encoded,
        (Some(n), false, false) => Framing::Length(n),
        (None, false, false) => Framing::None,
    };
    let keep_alive = if http10 {
        keep_alive_token && !close
    } else {
        !close
    };
    // RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request with several, is a 400.
    let bad_host = hosts > 1 || (!http10 && hosts == 0);

    Head::Complete(
        Request {
            method,
            method_name: method_name.to_string(),
            target: target.to_string(),
            http10,
            keep_alive,
            bad_host,
            framing,
            if_none_match,
            if_modified_since,
            range,
            if_range,
        },
        len,
    )
}

/// One or more ASCII digits as a `u64`; anything else (signs, spaces, overflow) is `None`.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Reads and throws away `n` body bytes, first from `buf`. `false` if the visitor closed first.
async fn discard<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>, n: u64) -> io::Result<bool> {
    let buffered = usize::try_from(n).map_or(buf.len(), |n| min(n, buf.len()));
    buf.drain(..buffered);
    let mut left = n - buffered as u64;
    let mut scratch = vec![0u8; min(left, 16 * 1024) as usize];
    while left > 0 {
        let want = min(left, scratch.len() as u64) as usize;
        let got = io.read(&mut scratch[..want]).await?;
        if got == 0 {
            return Ok(false);
        }
        left -= got as u64;
    }
    Ok(true)
}

/// What the `Connection` field of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    /// Nothing: HTTP/1.1 keeps the connection by default.
    Default,
    /// `keep-alive`, which an HTTP/1.0 visitor needs to hear to keep the connection.
    KeepAlive,
    Close,
}

fn conn_header(req: &Request, closing: bool) -> Conn {
    if closing {
        Conn::Close
    } else if req.http10 {
        Conn::KeepAlive
    } else {
        Conn::Default
    }
}

fn log_request(req: &Request, status: u16) {
    tracing::debug!(method = %req.method_name, target = %req.target, status, "file server");
}

enum Body {
    /// No body and no `Content-Length` (304).
    None,
    Bytes(Vec<u8>),
    /// `len` bytes from the file's current position.
    File(tokio::fs::File, u64),
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
    /// End the connection after this response, whatever the request asked.
    close: bool,
}

impl Response {
    fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::None,
            close: false,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    fn html(mut self, page: String) -> Response {
        self.headers
            .push(("Content-Type", "text/html; charset=utf-8".to_string()));
        self.body = Body::Bytes(page.into_bytes());
        self
    }

    /// A small HTML page for an error status; `detail` is plain text and gets escaped.
    fn error(status: u16, detail: &str) -> Response {
        let title = format!("{status} {}", reason(status));
        Response::new(status).html(format!(
            "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
             <body>\n<h1>{title}</h1>\n<p>{}</p>\n</body>\n</html>\n",
            escape(detail)
        ))
    }

    /// An error page naming the requested path.
    fn path_error(status: u16, path: &str) -> Response {
        Response::error(status, path)
    }

    fn method_not_allowed(method: &str) -> Response {
        Response::error(
            405,
            &format!("{method} is not allowed here; this server answers GET and HEAD."),
        )
        .header("Allow", "GET, HEAD")
    }
}

async fn write_response<S: AsyncWrite + Unpin>(
    io: &mut S,
    resp: Response,
    head_only: bool,
    conn: Conn,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    head.push_str("Server: burrow\r\n");
    head.push_str(&format!(
        "Date: {}\r\n",
        http_date(unix_secs(SystemTime::now()))
    ));
    for (name, value) in &resp.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &resp.body {
        Body::None => {}
        Body::Bytes(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        Body::File(_, len) => head.push_str(&format!("Content-Length: {len}\r\n")),
    }
    match conn {
        Conn::Default => {}
        Conn::KeepAlive => head.push_str("Connection: keep-alive\r\n"),
        Conn::Close => head.push_str("Connection: close\r\n"),
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    match resp.body {
        Body::Bytes(b) if !head_only => {
            // One write for small responses: fewer packets on the tunnel.
            out.extend_from_slice(&b);
            io.write_all(&out).await?;
        }
        Body::File(file, len) if !head_only => {
            io.write_all(&out).await?;
            send_file(io, file, len).await?;
        }
        _ => io.write_all(&out).await?,
    }
    io.flush().await
}

async fn send_file<S: AsyncWrite + Unpin>(
    io: &mut S,
    mut file: tokio::fs::File,
    len: u64,
) -> io::Result<()> {
    let mut left = len;
    let mut chunk = vec![0u8; min(len, CHUNK as u64) as usize];
    while left > 0 {
        let want = min(left, chunk.len() as u64) as usize;
        let got = file.read(&mut chunk[..want]).await?;
        if got == 0 {
            // The Content-Length already sent can't be met; only dropping the connection
            // tells the visitor the body is incomplete.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being sent",
            ));
        }
        io.write_all(&chunk[..got]).await?;
        left -= got as u64;
    }
    Ok(())
}

/// Ends the connection after the last response.
async fn close<S: AsyncWrite + Unpin>(io: &mut S) -> io::Result<()> {
    // The visitor may already be gone; that is no error of this connection.
    let _ = io.shutdown().await;
    Ok(())
}

/// Answers a request that leaves the connection unusable, then ends the connection.
async fn refuse_and_close<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    resp: Response,
) -> io::Result<()> {
    write_response(io, resp, false, Conn::Close).await?;
    linger(io).await;
    Ok(())
}

/// Closes our side, then reads (bounded) what the visitor still sends; see [`LINGER_TIME`].
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) {
    if io.shutdown().await.is_err() {
        return;
    }
    let mut scratch = vec![0u8; 16 * 1024];
    let drain = async {
        let mut total = 0usize;
        while total < LINGER_BYTES {
            match io.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// The response to a GET or HEAD.
async fn respond(root: &Path, req: &Request) -> Response {
    let Some((raw_path, query)) = split_target(&req.target) else {
        let mut resp = Response::path_error(400, &req.target);
        resp.close = true;
        return resp;
    };
    let Some(path) = decode_request_path(raw_path) else {
        let mut resp = Response::path_error(400, raw_path);
        resp.close = true;
        return resp;
    };
    let Some(segments) = normalise(&path) else {
        return Response::path_error(403, &path);
    };

    // Canonicalized per request so that a directory created (or replaced) after the tunnel
    // started is served as it is now.
    let canon_root = match tokio::fs::canonicalize(root).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(root = %root.display(), error = %e, "file server: cannot open directory");
            return Response::path_error(status_for(&e), &path);
        }
    };
    let rel: PathBuf = segments.iter().collect();
    let (target, meta) = match resolve(&canon_root, &rel).await {
        Ok(found) => found,
        Err(status) => return Response::path_error(status, &path),
    };

    if meta.is_dir() {
        if !path.ends_with('/') {
            return redirect_to_dir(&segments, query);
        }
        match resolve(&canon_root, &rel.join("index.html")).await {
            Ok((index, index_meta)) if index_meta.is_file() => {
                return serve_file(req, &index, &path).await
            }
            // A directory called index.html, or none at all: list instead.
            Ok(_) | Err(404) => {}
            Err(status) => return Response::path_error(status, &path),
        }
        return listing(target, &segments).await;
    }
    if meta.is_file() {
        if path.ends_with('/') && !segments.is_empty() {
            return Response::path_error(404, &path);
        }
        return serve_file(req, &target, &path).await;
    }
    // FIFOs, sockets and devices: opening one could block or read forever.
    Response::path_error(403, &path)
}

/// Splits a request target into its path and query. Absolute-form targets
/// (`http://host/path`) are accepted as RFC 9112 §3.2.2 requires; anything that is neither
/// that nor a path starting with `/` is `None`.
fn split_target(target: &str) -> Option<(&str, Option<&str>)> {
    // A fragment never belongs in a request; ignore one rather than look for a file named so.
    let target = target.split('#').next().unwrap_or("");
    let lower_starts = |p: &str| {
        target
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    let rest = if lower_starts("http://") || lower_starts("https://") {
        let after_scheme = target.find("//").map_or("", |i| &target[i + 2..]);
        let path_start = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
        let rest = &after_scheme[path_start..];
        if rest.is_empty() || rest.starts_with('?') {
            // `http://host` and `http://host?q` ask for the root.
            return Some(("/", rest.strip_prefix('?')));
        }
        rest
    } else {
        target
    };
    if !rest.starts_with('/') {
        return None;
    }
    Some(match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    })
}

/// Percent-decodes a request path; `None` for bad escapes, `%00` and non-UTF-8 results.
fn decode_request_path(raw: &str) -> Option<String> {
    let bytes = percent_decode(raw)?;
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

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

/// The decoded path as plain names under the root, with `.` and `..` worked out; `None` if
/// `..` would climb above the root or a segment is not a plain file name on this platform.
/// Decoding comes first, so `%2e%2e` and `..%2f` are caught like `..` and `../`.
fn normalise(path: &str) -> Option<Vec<String>> {
    let separators: &[char] = if cfg!(windows) { &['/', '\\'] } else { &['/'] };
    let mut out: Vec<String> = Vec::new();
    for segment in path.split(separators) {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            name => {
                let mut parts = Path::new(name).components();
                let plain = matches!(
                    (parts.next(), parts.next()),
                    (Some(Component::Normal(_)), None)
                );
                // On Windows `name:stream` opens an alternate data stream and `C:` a drive.
                if !plain || (cfg!(windows) && name.contains(':')) {
                    return None;
                }
                out.push(name.to_string());
            }
        }
    }
    Some(out)
}

/// Finds `rel` under the canonical root, following symlinks, and refuses (403) anything whose
/// real location is outside it.
async fn resolve(canon_root: &Path, rel: &Path) -> Result<(PathBuf, std::fs::Metadata), u16> {
    let real = tokio::fs::canonicalize(canon_root.join(rel))
        .await
        .map_err(|e| status_for(&e))?;
    if !real.starts_with(canon_root) {
        return Err(403);
    }
    let meta = tokio::fs::metadata(&real)
        .await
        .map_err(|e| status_for(&e))?;
    Ok((real, meta))
}

/// The status for failing to find or open a path. Anything other than a permission problem
/// counts as "not there" (a file used as a directory, a name too long, a symlink loop): the
/// visitor can't do anything about the difference, and the details are not theirs to see.
fn status_for(e: &io::Error) -> u16 {
    match e.kind() {
        io::ErrorKind::PermissionDenied => 403,
        _ => 404,
    }
}

fn redirect_to_dir(segments: &[String], query: Option<&str>) -> Response {
    // Built from the normalised names, never from the raw target: `//evil.example` must not
    // turn into a redirect to another site.
    let mut location = String::from("/");
    for s in segments {
        location.push_str(&percent_encode(s));
        location.push('/');
    }
    if let Some(q) = query {
        location.push('?');
        location.push_str(&header_safe(q));
    }
    let page = format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>301 Moved Permanently</title></head>\n\
         <body>\n<h1>301 Moved Permanently</h1>\n<p><a href=\"{0}\">{0}</a></p>\n</body>\n</html>\n",
        escape(&location)
    );
    Response::new(301).header("Location", location).html(page)
}

/// Percent-encodes every byte that is not unreserved (RFC 3986 §2.3), so a name works as a
/// relative link whatever it holds: `a:b` would otherwise read as a URL scheme.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string copied into a header: the parser lets bytes above 0x7F through, which a
/// header value should not carry raw.
fn header_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A file's size and modification time, as validators.
struct Validators {
    etag: String,
    /// Seconds since the Unix epoch; `None` when the platform gives none (or it is pre-1970).
    modified: Option<u64>,
}

impl Validators {
    fn of(meta: &std::fs::Metadata) -> Validators {
        let since_epoch = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        let size = meta.len();
        // Weak: equal size and mtime don't prove equal bytes.
        let etag = match since_epoch {
            Some(d) => format!("W/\"{size:x}-{:x}-{:x}\"", d.as_secs(), d.subsec_nanos()),
            None => format!("W/\"{size:x}\""),
        };
        Validators {
            etag,
            modified: since_epoch.map(|d| d.as_secs()),
        }
    }

    /// RFC 9110 §13.2.2: If-None-Match decides when present; If-Modified-Since only otherwise.
    fn not_modified(&self, req: &Request) -> bool {
        if let Some(list) = &req.if_none_match {
            return list
                .split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || (!tag.is_empty() && weak_eq(tag, &self.etag)));
        }
        match (&req.if_modified_since, self.modified) {
            (Some(since), Some(modified)) => {
                parse_http_date(since).is_some_and(|since| modified <= since)
            }
            _ => false,
        }
    }

    /// Whether `If-Range` (if any) lets a range be served.
    fn range_allowed(&self, req: &Request) -> bool {
        let Some(cond) = &req.if_range else {
            return true;
        };
        if cond.starts_with('"') || cond.starts_with("W/") {
            // Needs a strong match, and our tags are weak.
            return false;
        }
        matches!((parse_http_date(cond), self.modified), (Some(a), Some(b)) if a == b)
    }
}

/// Weak comparison (RFC 9110 §8.8.3.2): the opaque tags match, `W/` or not.
fn weak_eq(a: &str, b: &str) -> bool {
    a.strip_prefix("W/").unwrap_or(a) == b.strip_prefix("W/").unwrap_or(b)
}

/// What a `Range` field asks of a file of a given size.
#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// No usable single range: send the whole file.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(value: &str, size: u64) -> RangeAsk {
    let Some((unit, spec)) = value.trim().split_once('=') else {
        return RangeAsk::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeAsk::Whole;
    }
    if spec.contains(',') {
        // Several ranges: the whole file with 200 instead of multipart/byteranges, which
        // RFC 9110 §14.2 permits and every client handles.
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // `-n`: the last n bytes.
        return match parse_digits(last) {
            None => RangeAsk::Whole,
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if size == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(size - min(n, size), size - 1),
        };
    }
    let Some(start) = parse_digits(first) else {
        return RangeAsk::Whole;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match parse_digits(last) {
            Some(end) if end >= start => end,
            // Malformed, and RFC 9110 §14.2 says to ignore a Range that is.
            _ => return RangeAsk::Whole,
        }
    };
    if start >= size {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part(start, min(end, size - 1))
}

async fn serve_file(req: &Request, path: &Path, shown: &str) -> Response {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => return Response::path_error(status_for(&e), shown),
    };
    // The open file's own metadata, so size and validators describe what will be sent.
    let meta = match file.metadata().await {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Response::path_error(403, shown),
        Err(e) => return Response::path_error(status_for(&e), shown),
    };
    let size = meta.len();
    let v = Validators::of(&meta);

    let mut resp = Response::new(200);
    resp = resp.header("ETag", v.etag.clone());
    if let Some(m) = v.modified {
        resp = resp.header("Last-Modified", http_date(m));
    }
    if v.not_modified(req) {
        resp.status = 304;
        return resp;
    }
    resp = resp
        .header("Content-Type", content_type(path))
        .header("Accept-Ranges", "bytes")
        .header("X-Content-Type-Options", "nosniff");

    // RFC 9110 §14.2: range handling is defined for GET only; HEAD describes the whole file.
    let ask = match &req.range {
        Some(r) if req.method == Method::Get && v.range_allowed(req) => parse_range(r, size),
        _ => RangeAsk::Whole,
    };
    match ask {
        RangeAsk::Whole => {
            resp.body = Body::File(file, size);
            resp
        }
        RangeAsk::Part(start, end) => {
            if let Err(e) = file.seek(io::SeekFrom::Start(start)).await {
                tracing::warn!(path = %path.display(), error = %e, "file server: seek failed");
                return Response::path_error(500, shown);
            }
            resp.status = 206;
            resp.body = Body::File(file, end - start + 1);
            resp.header("Content-Range", format!("bytes {start}-{end}/{size}"))
        }
        RangeAsk::Unsatisfiable => {
            Response::error(416, &format!("{shown}: the range is outside the file."))
                .header("Content-Range", format!("bytes */{size}"))
                .header("Accept-Ranges", "bytes")
        }
    }
}

/// Content-Type by file extension; `text/*` types get `charset=utf-8`.
fn content_type(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let mime = match ext.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" | "cjs" => "text/javascript",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" | "log" | "text" | "conf" | "ini" | "toml" | "c" | "h" | "cpp" | "hpp" | "java" => {
            "text/plain"
        }
        "md" | "markdown" => "text/markdown",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "bmp" => "image/bmp",
        "ico" => "image/x-icon",
        "tif" | "tiff" => "image/tiff",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "bz2" => "application/x-bzip2",
        "xz" => "application/x-xz",
        "zst" => "application/zstd",
        "7z" => "application/x-7z-compressed",
        "tar" => "application/x-tar",
        "wasm" => "application/wasm",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "ogv" => "video/ogg",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "wav" => "audio/wav",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "flac" => "audio/flac",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "yaml" | "yml" => "text/yaml",
        "sh" | "bash" => "text/x-shellscript",
        "rs" => "text/x-rust",
        "go" => "text/x-go",
        "py" => "text/x-python",
        _ => "application/octet-stream",
    };
    if mime.starts_with("text/") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

struct Entry {
    name: String,
    is_dir: bool,
    size: Option<u64>,
    modified: Option<u64>,
}

async fn listing(dir: PathBuf, segments: &[String]) -> Response {
    let mut title = String::from("/");
    for s in segments {
        title.push_str(s);
        title.push('/');
    }
    // One blocking task for the whole directory instead of one per entry.
    let read = tokio::task::spawn_blocking(move || read_listing(&dir)).await;
    let (entries, hidden) = match read {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return Response::path_error(status_for(&e), &title),
        Err(e) => {
            tracing::warn!(error = %e, "file server: listing task failed");
            return Response::path_error(500, &title);
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
    if !segments.is_empty() {
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
            percent_encode(&e.name),
            escape(&e.name),
        ));
    }
    page.push_str("</table>\n");
    if hidden > 0 {
        page.push_str(&format!("<p>{hidden} more entries not shown.</p>\n"));
    }
    page.push_str("</body>\n</html>\n");
    Response::new(200)
        .header("Cache-Control", "no-cache")
        .html(page)
}

/// The directory's entries, directories first, then by name; and how many were left out.
fn read_listing(dir: &Path) -> io::Result<(Vec<Entry>, usize)> {
    let mut entries = Vec::new();
    let mut hidden = 0usize;
    for item in std::fs::read_dir(dir)? {
        let Ok(item) = item else { continue };
        if entries.len() >= MAX_LISTING {
            hidden += 1;
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
    Ok((entries, hidden))
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(secs: u64) -> String {
    // u64 seconds / 86,400 fits an i64 with room to spare.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        // 1970-01-01 was a Thursday.
        WEEKDAYS[((days + 4) % 7) as usize],
        MONTHS[(month as usize).saturating_sub(1) % 12],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `2024-03-01 12:34:56`, for listings.
fn listing_date(secs: u64) -> String {
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Seconds since the epoch from any of the three HTTP-date forms a recipient must accept
/// (RFC 9110 §5.6.7): IMF-fixdate, RFC 850 and asctime.
fn parse_http_date(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split([' ', ',']).filter(|p| !p.is_empty()).collect();
    let (day, month, year, time) = match parts.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [_, day, month, year, time, "GMT"] => (*day, *month, parse_digits(year)?, *time),
        // Sunday, 06-Nov-94 08:49:37 GMT
        [_, date, time, "GMT"] => {
            let mut dmy = date.split('-');
            let (day, month, yy) = (dmy.next()?, dmy.next()?, dmy.next()?);
            if dmy.next().is_some() || yy.len() != 2 {
                return None;
            }
            let yy = parse_digits(yy)?;
            // Two-digit years: those that would be far in the future mean the last century.
            (
                day,
                month,
                if yy < 70 { 2000 + yy } else { 1900 + yy },
                *time,
            )
        }
        // Sun Nov  6 08:49:37 1994
        [_, month, day, time, year] => (*day, *month, parse_digits(year)?, *time),
        _ => return None,
    };
    let day = parse_digits(day).filter(|d| (1..=31).contains(d))?;
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    if !(1970..=9999).contains(&year) {
        return None;
    }
    let mut hms = time.split(':');
    let (h, m, sec) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() {
        return None;
    }
    let h = parse_digits(h).filter(|h| *h < 24)?;
    let m = parse_digits(m).filter(|m| *m < 60)?;
    let sec = parse_digits(sec).filter(|s| *s <= 60)?;
    let days = days_from_civil(year as i64, month, day as u32);
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let root = root.to_path_buf();
        let task = tokio::spawn(async move { serve(&root, server).await });
        client.write_all(request).await.unwrap();
        client.shutdown().await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        task.await.unwrap().unwrap();
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
            let err = parse_file_url(relative).unwrap_err();
            assert!(err.contains("absolute path is needed"), "{relative}: {err}");
        }
        let err = parse_file_url("file://relative/dir").unwrap_err();
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
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_709_210_096), "Thu, 29 Feb 2024 12:34:56 GMT");
        assert_eq!(http_date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        assert_eq!(listing_date(1_709_210_096), "2024-02-29 12:34:56");
        // Never panics, even at the far end.
        let _ = http_date(u64::MAX);
        let _ = listing_date(u64::MAX);

        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(form), Some(784_111_777), "{form}");
        }
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 99999999999999999999 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
        let mut secs = 0u64;
        while secs < 5_000_000_000 {
            assert_eq!(parse_http_date(&http_date(secs)), Some(secs));
            secs += 7_777_777;
        }
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn ranges() {
        use RangeAsk::*;
        let cases = [
            ("bytes=100-199", Part(100, 199)),
            ("bytes=100-", Part(100, 999)),
            ("bytes=-10", Part(990, 999)),
            ("bytes=-5000", Part(0, 999)),
            ("bytes=0-0", Part(0, 0)),
            ("bytes=990-5000", Part(990, 999)),
            ("BYTES = 1-2", Part(1, 2)),
            ("bytes=1000-", Unsatisfiable),
            ("bytes=1000-1001", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=0-1,5-6", Whole),
            ("bytes=5-1", Whole),
            ("bytes=-", Whole),
            ("bytes=a-b", Whole),
            ("bytes=+1-2", Whole),
            ("items=0-1", Whole),
            ("bytes", Whole),
            ("bytes=99999999999999999999-", Whole),
        ];
        for (value, want) in cases {
            assert_eq!(parse_range(value, 1000), want, "{value}");
        }
        assert_eq!(parse_range("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
    }

    #[test]
    fn content_types() {
        let ct = |name: &str| content_type(Path::new(name));
        assert_eq!(ct("a.HTML"), "text/html; charset=utf-8");
        assert_eq!(ct("a.css"), "text/css; charset=utf-8");
        assert_eq!(ct("a.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(ct("a.json"), "application/json");
        assert_eq!(ct("a.png"), "image/png");
        assert_eq!(ct("a.jpeg"), "image/jpeg");
        assert_eq!(ct("a.svg"), "image/svg+xml");
        assert_eq!(ct("a.wasm"), "application/wasm");
        assert_eq!(ct("a.woff2"), "font/woff2");
        assert_eq!(ct("a.yml"), "text/yaml; charset=utf-8");
        assert_eq!(ct("a.rs"), "text/x-rust; charset=utf-8");
        assert_eq!(ct("a.tar.gz"), "application/gzip");
        assert_eq!(ct("a.unknown"), "application/octet-stream");
        assert_eq!(ct("Makefile"), "application/octet-stream");
        assert_eq!(ct(".bashrc"), "application/octet-stream");
    }

    #[test]
    fn targets_and_paths() {
        assert_eq!(split_target("/a/b?x=1"), Some(("/a/b", Some("x=1"))));
        assert_eq!(split_target("/a#frag"), Some(("/a", None)));
        assert_eq!(split_target("http://h:1/a?q"), Some(("/a", Some("q"))));
        assert_eq!(split_target("HTTPS://h"), Some(("/", None)));
        assert_eq!(split_target("http://h?q"), Some(("/", Some("q"))));
        assert_eq!(split_target("*"), None);
        assert_eq!(split_target("a/b"), None);
        assert_eq!(split_target(""), None);

        assert_eq!(decode_request_path("/a%20b/%C3%A9"), Some("/a b/é".into()));
        assert_eq!(decode_request_path("/a%00"), None);
        assert_eq!(decode_request_path("/a%ff"), None);
        assert_eq!(decode_request_path("/a%f"), None);
        assert_eq!(decode_request_path("/a%g0"), None);

        let n = |p: &str| normalise(p);
        assert_eq!(n("/"), Some(vec![]));
        assert_eq!(n("/a//./b/"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(n("/a/../b"), Some(vec!["b".into()]));
        assert_eq!(n("/a/.."), Some(vec![]));
        assert_eq!(n("/..."), Some(vec!["...".into()]));
        assert_eq!(n("/.."), None);
        assert_eq!(n("/a/../../b"), None);

        assert_eq!(percent_encode("<b>&\"x\".txt"), "%3Cb%3E%26%22x%22.txt");
        assert_eq!(percent_encode("a:b é"), "a%3Ab%20%C3%A9");
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(header_safe("a=é b"), "a=%C3%A9%20b");

        assert_eq!(status_for(&io::Error::from(io::ErrorKind::NotFound)), 404);
        assert_eq!(
            status_for(&io::Error::from(io::ErrorKind::PermissionDenied)),
            403
        );
        assert_eq!(status_for(&io::Error::other("loop")), 404);
    }

    #[tokio::test]
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
        assert!(r.header("etag").unwrap().starts_with("W/\""));
        let lm = r.header("last-modified").unwrap();
        assert!(parse_http_date(lm).is_some(), "{lm}");
        assert!(parse_http_date(r.header("date").unwrap()).is_some());
        assert_eq!(r.header("connection"), None);
    }

    #[tokio::test]
    async fn large_file_streams_intact() {
        let dir = TempDir::new();
        let data = noise(3 * 1024 * 1024 + 17, 7);
        dir.write("big.bin", &data);
        let r = get(dir.path(), "/big.bin", "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert!(r.body == data);
    }

    #[tokio::test]
    async fn listing_escapes_sorts_and_links() {
        let dir = TempDir::new();
        dir.write("<b>&\"x\".txt", b"tricky");
        dir.write("a.txt", b"a");
        dir.write("B.txt", b"bb");
        dir.write(".hidden", b"h");
        dir.write("zdir/inner.txt", b"i");
        dir.write("Adir/x", b"");
        let r = get(dir.path(), "/", "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let page = r.text();
        assert!(page.contains("<title>Index of /</title>"), "{page}");
        assert!(
            page.contains("<a href=\"%3Cb%3E%26%22x%22.txt\">&lt;b&gt;&amp;&quot;x&quot;.txt</a>")
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
        // The tricky name is fetchable through its link.
        let r = get(dir.path(), "/%3Cb%3E%26%22x%22.txt", "").await;
        assert_eq!(r.body, b"tricky");

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

    #[tokio::test]
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
        assert!(r.text().contains("Index of /sub/"));
    }

    #[tokio::test]
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

    #[tokio::test]
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
        let r = get(dir.path(), "/d.bin", "Range: bytes=1000-\r\n").await;
        assert_eq!(r.status, 416);
        assert_eq!(r.header("content-range"), Some("bytes */1000"));
        let r = get(dir.path(), "/d.bin", "Range: bytes=0-1,5-6\r\n").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, data);
        let r = get(
            dir.path(),
            "/d.bin",
            "Range: bytes=0-1\r\nRange: bytes=5-6\r\n",
        )
        .await;
        assert_eq!(r.status, 200);
        let r = get(dir.path(), "/d.bin", "Range: bytes=9-1\r\n").await;
        assert_eq!(r.status, 200);

        // If-Range: a date equal to Last-Modified allows the range, an entity tag does not.
        let full = get(dir.path(), "/d.bin", "").await;
        let lm = full.header("last-modified").unwrap().to_string();
        let etag = full.header("etag").unwrap().to_string();
        let r = get(
            dir.path(),
            "/d.bin",
            &format!("Range: bytes=0-9\r\nIf-Range: {lm}\r\n"),
        )
        .await;
        assert_eq!(r.status, 206);
        let r = get(
            dir.path(),
            "/d.bin",
            &format!("Range: bytes=0-9\r\nIf-Range: {etag}\r\n"),
        )
        .await;
        assert_eq!(r.status, 200);
        let r = get(
            dir.path(),
            "/d.bin",
            "Range: bytes=0-9\r\nIf-Range: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
        )
        .await;
        assert_eq!(r.status, 200);

        // HEAD ignores Range and describes the whole file.
        let out = exchange(
            dir.path(),
            b"HEAD /d.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n",
        )
        .await;
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

    #[tokio::test]
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
        assert_eq!(r.header("content-length"), None);
        let strong = etag.trim_start_matches("W/");
        let r = get(
            dir.path(),
            "/c.css",
            &format!("If-None-Match: \"x\", {strong}\r\n"),
        )
        .await;
        assert_eq!(r.status, 304);
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
    }

    #[tokio::test]
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

        let gone = dir.path().join("gone");
        assert_eq!(get(&gone, "/", "").await.status, 404);
    }

    #[tokio::test]
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
            "http://t/../secret.txt",
            "/..",
        ] {
            let r = get(&root, target, "").await;
            assert!(r.status == 403 || r.status == 404, "{target}: {}", r.status);
            assert!(!r.text().contains("SECRET"), "{target}");
        }
        // A backslash is just a character in a Unix name.
        let r = get(&root, "/..%5csecret.txt", "").await;
        assert_eq!(r.status, if cfg!(windows) { 403 } else { 404 });
        assert_eq!(get(&root, "/ok.txt", "").await.body, b"ok");
    }

    #[cfg(unix)]
    #[tokio::test]
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

    #[tokio::test]
    async fn bad_requests() {
        let dir = TempDir::new();
        dir.write("f", b"x");
        for target in ["/a%00b", "/a%ffb", "/a%zz", "/%", "*", "relative"] {
            let r = get(dir.path(), target, "").await;
            assert_eq!(r.status, 400, "{target}");
            assert_eq!(r.header("connection"), Some("close"));
        }
        let heads: [&[u8]; 6] = [
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
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
            assert_eq!(out[0].status, 400);
        }
        // Matching repeated Content-Length values are fine.
        let out = exchange(
            dir.path(),
            b"GET /f HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nZ",
        )
        .await;
        assert_eq!(parse_responses(&out, &[])[0].status, 200);
        // Half a head, then the visitor leaves: nothing to answer.
        assert!(exchange(dir.path(), b"GET / HTTP/1.1\r\nHo")
            .await
            .is_empty());
        assert!(exchange(dir.path(), b"").await.is_empty());
    }

    #[tokio::test]
    async fn oversized_heads_get_431() {
        let dir = TempDir::new();
        let mut big = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        big.extend_from_slice(b"\r\n\r\n");
        let out = parse_responses(&exchange(dir.path(), &big).await, &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].status, 431);

        let mut many = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let out = parse_responses(&exchange(dir.path(), &many).await, &[]);
        assert_eq!(out[0].status, 431);

        // A head that never ends is cut off at the limit, not buffered forever.
        let endless = vec![b'a'; 4 * MAX_HEAD];
        let out = parse_responses(&exchange(dir.path(), &endless).await, &[]);
        assert!(out[0].status == 431 || out[0].status == 400);
    }

    #[tokio::test]
    async fn only_get_and_head() {
        let dir = TempDir::new();
        dir.write("f", b"x");
        // A body on another method ends the connection after the 405.
        let out = exchange(
            dir.path(),
            b"POST /f HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /f HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].status, 405);
        assert_eq!(out[0].header("allow"), Some("GET, HEAD"));
        assert_eq!(out[0].header("connection"), Some("close"));
        let out = exchange(
            dir.path(),
            b"PUT /f HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(parse_responses(&out, &[]).len(), 1);
        // Without a body the connection goes on.
        let out = exchange(
            dir.path(),
            b"DELETE /f HTTP/1.1\r\nHost: t\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: t\r\n\r\nGET /f HTTP/1.1\r\nHost: t\r\n\r\n",
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

    #[tokio::test]
    async fn bodies_on_get() {
        let dir = TempDir::new();
        dir.write("f", b"x");
        // A small announced body is skipped and the next request is found after it.
        let out = exchange(
            dir.path(),
            b"GET /f HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nGET GET /f HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[]);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.status == 200 && r.body == b"x"));
        // A chunked one is not decoded: answer, then close.
        let out = exchange(
            dir.path(),
            b"GET /f HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nZ\r\n0\r\n\r\nGET /f HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].status, 200);
        assert_eq!(out[0].header("connection"), Some("close"));
    }

    #[tokio::test]
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
              GET /2.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[false, true, false, false]);
        let bodies: Vec<&[u8]> = out.iter().map(|r| r.body.as_slice()).collect();
        assert_eq!(bodies, [&b"one"[..], b"", b"three", b"two"]);
        assert_eq!(out[1].header("content-length"), Some("3"));

        let out = exchange(
            dir.path(),
            b"GET /1.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /2.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].header("connection"), Some("close"));

        // HTTP/1.0 closes unless it asks to keep the connection (Host is optional there).
        let out = exchange(
            dir.path(),
            b"GET /1.txt HTTP/1.0\r\n\r\nGET /2.txt HTTP/1.0\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].header("connection"), Some("close"));
        let out = exchange(
            dir.path(),
            b"GET /1.txt HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /2.txt HTTP/1.0\r\n\r\n",
        )
        .await;
        let out = parse_responses(&out, &[]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].header("connection"), Some("keep-alive"));
        assert_eq!(out[1].header("connection"), Some("close"));

        // Leading empty lines before a request are tolerated (RFC 9112 §2.2).
        let out = exchange(
            dir.path(),
            b"\r\n\r\nGET /1.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        assert_eq!(parse_responses(&out, &[])[0].body, b"one");
    }

    #[tokio::test]
    async fn requests_arriving_in_pieces() {
        let dir = TempDir::new();
        dir.write("p.txt", b"pieces");
        let (mut client, server) = tokio::io::duplex(1024);
        let root = dir.path().to_path_buf();
        let task = tokio::spawn(async move { serve(&root, server).await });
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
}
