//! Upstream servers for tests: a small HTTP/1.1 server, a tcp echo server, and a
//! thread-based server that answers every request the same way.
//!
//! Routes: `/hello`, `/echo` (body back), `/headers` (the raw request head back),
//! `/download/N` (N bytes, streamed), `/upload` (counts a streamed body), `/chunked`
//! (a chunked response), `/trailers` (a chunked response ending with the trailer
//! `X-Checksum: 5eb63bbb`), `/ws` (101, then echoes raw bytes). The trailer fields of every
//! chunked request body are recorded in [`Upstream::trailers`].

use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running upstream.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests served.
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    /// Trailer field lines of chunked request bodies, in the order they arrived.
    pub trailers: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    /// The trailer field lines received so far.
    pub fn trailers(&self) -> Vec<String> {
        self.trailers.lock().unwrap().clone()
    }
}

/// Starts the HTTP upstream on a free loopback port.
pub async fn start() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let trailers = Arc::new(Mutex::new(Vec::new()));
    let (h, c, t) = (hits.clone(), conns.clone(), trailers.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::Relaxed);
            let (h, t) = (h.clone(), t.clone());
            tokio::spawn(async move {
                let _ = serve(s, h, t).await;
            });
        }
    });
    Upstream {
        addr,
        hits,
        conns,
        trailers,
    }
}

/// Starts a tcp echo server on a free loopback port.
pub async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut tmp = [0u8; 65536];
        let n = self.s.read(&mut tmp).await?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n > 0)
    }

    async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l: Vec<u8> = self.buf.drain(..i + 2).collect();
                return Ok(l[..i].to_vec());
            }
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads a body, handing each piece to `sink`; returns the trailer field lines of a
    /// chunked body.
    async fn body(
        &mut self,
        chunked: bool,
        mut len: u64,
        sink: &mut (dyn FnMut(&[u8]) + Send),
    ) -> std::io::Result<Vec<String>> {
        if !chunked {
            while len > 0 {
                if self.buf.is_empty() && !self.fill().await? {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                let k = (self.buf.len() as u64).min(len) as usize;
                sink(&self.buf[..k]);
                self.buf.drain(..k);
                len -= k as u64;
            }
            return Ok(Vec::new());
        }
        loop {
            let line = self.line().await?;
            let size_str = String::from_utf8_lossy(&line);
            let size = u64::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                let mut trailers = Vec::new();
                loop {
                    let l = self.line().await?;
                    if l.is_empty() {
                        return Ok(trailers);
                    }
                    trailers.push(String::from_utf8_lossy(&l).into_owned());
                }
            }
            Box::pin(self.body(false, size, sink)).await?;
            self.line().await?;
        }
    }
}

async fn serve(
    s: TcpStream,
    hits: Arc<AtomicUsize>,
    trailers: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut c = Conn { s, buf: Vec::new() };
    loop {
        let end = loop {
            if let Some(i) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !c.fill().await? {
                return Ok(());
            }
        };
        let head: Vec<u8> = c.buf.drain(..end).collect();
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(&head).map_err(std::io::Error::other)?;
        let method = req.method.unwrap_or("").to_string();
        let path = req.path.unwrap_or("").to_string();
        let get = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_string())
        };
        let chunked = get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let len: u64 = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            c.s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        hits.fetch_add(1, Ordering::Relaxed);
        let mut body = Vec::new();
        let mut counted = 0u64;
        let received = if path == "/upload" {
            c.body(chunked, len, &mut |b| counted += b.len() as u64)
                .await?
        } else {
            c.body(chunked, len, &mut |b| body.extend_from_slice(b))
                .await?
        };
        trailers.lock().unwrap().extend(received);
        let reply = |status: &str, body: &[u8], extra: &str| {
            let mut r = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}\r\n",
                body.len()
            )
            .into_bytes();
            if method != "HEAD" {
                r.extend_from_slice(body);
            }
            r
        };
        match path.as_str() {
            "/hello" => {
                c.s.write_all(&reply("200 OK", b"hello", "Content-Type: text/plain\r\n"))
                    .await?;
            }
            "/echo" => c.s.write_all(&reply("200 OK", &body, "")).await?,
            "/headers" => c.s.write_all(&reply("200 OK", &head, "")).await?,
            "/upload" => {
                c.s.write_all(&reply("200 OK", counted.to_string().as_bytes(), ""))
                    .await?;
            }
            "/chunked" => {
                c.s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n")
                    .await?;
            }
            "/trailers" => {
                c.s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 5eb63bbb\r\n\r\n")
                    .await?;
            }
            "/ws" => {
                c.s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await?;
                let rest = std::mem::take(&mut c.buf);
                c.s.write_all(&rest).await?;
                let (mut r, mut w) = c.s.split();
                tokio::io::copy(&mut r, &mut w).await?;
                return Ok(());
            }
            p if p.starts_with("/download/") => {
                let n: u64 = p["/download/".len()..].parse().unwrap_or(0);
                c.s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes())
                    .await?;
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    c.s.write_all(&chunk[..k]).await?;
                    left -= k as u64;
                }
            }
            _ => {
                c.s.write_all(&reply("404 Not Found", b"no such path", ""))
                    .await?;
            }
        }
        if close {
            c.s.shutdown().await?;
            return Ok(());
        }
    }
}

/// A thread-based upstream answering every request with `status` and `body`, then
/// closing; its port.
pub fn http_server(status: &'static str, body: &'static str) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = l.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes());
            });
        }
    });
    port
}

/// Reads one HTTP/1.1 request (head and Content-Length body) for a blocking test upstream;
/// `None` when the client closed.
pub fn read_request(r: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    let mut line = String::new();
    while r.read_line(&mut line).ok()? > 0 {
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
    if head.is_empty() {
        return None;
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}
