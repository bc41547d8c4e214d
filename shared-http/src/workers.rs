//! One public connection: an actor that owns its pump and its place in the open count.

use actix::prelude::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        &self.arbiters[i]
    }

    /// Stops the worker threads.
    pub fn stop(&self) {
        for a in self.arbiters.iter() {
            a.stop();
        }
    }
}
