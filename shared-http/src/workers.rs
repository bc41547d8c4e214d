//! One public connection: an actor that owns its pump and its place in the open count;
//! the worker arbiters connections run on; and sockets that move between them.

use actix::prelude::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs one connection's pump; the bytes never pass through its mailbox.
pub struct Connection {
    job: Option<Job>,
    open: Arc<AtomicUsize>,
}

impl Connection {
    /// Starts `job` as a connection actor on `arbiter`, counted in `open` while it runs.
    pub fn spawn(
        arbiter: &ArbiterHandle,
        open: Arc<AtomicUsize>,
        job: impl Future<Output = ()> + Send + 'static,
    ) {
        open.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::pin(job);
        Connection::start_in_arbiter(arbiter, move |_| Connection {
            job: Some(job),
            open,
        });
    }

    /// Starts `job` as a connection actor on the calling thread's arbiter (a stream that
    /// arrived on a lane is served where the lane lives).
    pub fn spawn_here(open: Arc<AtomicUsize>, job: impl Future<Output = ()> + Send + 'static) {
        open.fetch_add(1, Ordering::Relaxed);
        Connection {
            job: Some(Box::pin(job)),
            open,
        }
        .start();
    }

    /// Starts `job` on `arbiter` with a socket accepted on another thread, registered
    /// anew with the arbiter's own reactor: readiness of the socket then wakes the thread
    /// that serves it, not the one that accepted it.
    pub fn spawn_socket<F, Fut>(
        arbiter: &ArbiterHandle,
        open: Arc<AtomicUsize>,
        sock: TcpStream,
        job: F,
    ) where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Ok(sock) = sock.into_std() else { return };
        Connection::spawn(arbiter, open, async move {
            if let Ok(sock) = TcpStream::from_std(sock) {
                job(sock).await;
            }
        });
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(job) = self.job.take() {
            ctx.spawn(job.into_actor(self).map(|_, _, ctx| ctx.stop()));
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Worker arbiters that connection actors are spread over, so every core pumps bytes.
#[derive(Clone)]
pub struct ArbiterPool {
    arbiters: Arc<Vec<ArbiterHandle>>,
    next: Arc<AtomicUsize>,
}

impl ArbiterPool {
    /// Starts `n` worker arbiters (one per core when `n` is 0).
    pub fn new(n: usize) -> Self {
        let from_env = std::env::var("BURROW_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok());
        let n = match (n, from_env) {
            (_, Some(e)) if e > 0 => e,
            (0, _) => std::thread::available_parallelism().map_or(2, |n| n.get()),
            (n, _) => n,
        };
        let arbiters = (0..n).map(|_| Arbiter::new().handle()).collect();
        ArbiterPool {
            arbiters: Arc::new(arbiters),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The next arbiter, round-robin.
    pub fn pick(&self) -> &ArbiterHandle {
        &self.arbiters[self.pick_index()]
    }

    /// The position of the next arbiter, round-robin.
    pub fn pick_index(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len()
    }

    /// The arbiter at position `i` (modulo the pool's size).
    pub fn get(&self, i: usize) -> &ArbiterHandle {
        &self.arbiters[i % self.arbiters.len()]
    }

    /// How many workers the pool has.
    pub fn len(&self) -> usize {
        self.arbiters.len()
    }

    /// Whether the pool has no worker (never: it starts at least one).
    pub fn is_empty(&self) -> bool {
        self.arbiters.is_empty()
    }

    /// Stops the worker threads.
    pub fn stop(&self) {
        for a in self.arbiters.iter() {
            a.stop();
        }
    }
}

/// A TCP socket that can move to another worker thread between uses: parked, it is off
/// every reactor and may be sent anywhere; unparked, it is registered with the reactor of
/// the thread that unparked it. Wrapped under TLS, it moves a live TLS session.
#[derive(Debug)]
pub struct MovableTcp {
    live: Option<TcpStream>,
    parked: Option<std::net::TcpStream>,
}

impl MovableTcp {
    /// A socket registered with the calling thread's reactor.
    pub fn new(sock: TcpStream) -> Self {
        MovableTcp {
            live: Some(sock),
            parked: None,
        }
    }

    fn live(&mut self) -> std::io::Result<Pin<&mut TcpStream>> {
        match &mut self.live {
            Some(sock) => Ok(Pin::new(sock)),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "socket is parked between workers",
            )),
        }
    }
}

/// A connection that can move to another worker thread: parked, it is off every reactor
/// and may be sent anywhere; unparked, it is registered with the calling thread's reactor.
pub trait Movable: Send + 'static {
    /// Takes the connection off this thread's reactor, so it can be sent to another worker.
    fn park(&mut self) -> std::io::Result<()>;
    /// Registers a parked connection with the calling thread's reactor.
    fn unpark(&mut self) -> std::io::Result<()>;
}

impl Movable for MovableTcp {
    fn park(&mut self) -> std::io::Result<()> {
        if let Some(sock) = self.live.take() {
            self.parked = Some(sock.into_std()?);
        }
        Ok(())
    }

    fn unpark(&mut self) -> std::io::Result<()> {
        if let Some(sock) = self.parked.take() {
            self.live = Some(TcpStream::from_std(sock)?);
        }
        Ok(())
    }
}

/// A live TLS session moves with its socket.
impl<T: Movable> Movable for tokio_rustls::server::TlsStream<T> {
    fn park(&mut self) -> std::io::Result<()> {
        self.get_mut().0.park()
    }

    fn unpark(&mut self) -> std::io::Result<()> {
        self.get_mut().0.unpark()
    }
}

impl AsyncRead for MovableTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut().live() {
            Ok(sock) => sock.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for MovableTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut().live() {
            Ok(sock) => sock.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut().live() {
            Ok(sock) => sock.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut().live() {
            Ok(sock) => sock.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut().live() {
            Ok(sock) => sock.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
