//! Keeping a public connection's bytes on one thread: it is served on a worker that holds
//! a lane of its session, and moved there once if it was accepted on another.

use burrow_http::workers::{ArbiterPool, Connection, Movable};
use burrow_protocol::control::{self, StreamMeta};
use burrow_protocol::lanes::Lanes;
use burrow_protocol::mux::MuxStream;
use burrow_protocol::ProtocolError;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tracing::debug;

/// The relay's workers, and counts of how well connections kept to their lanes.
pub struct Affinity {
    pool: ArbiterPool,
    open: Arc<AtomicUsize>,
    moved: AtomicU64,
    away: AtomicU64,
}

impl std::fmt::Debug for Affinity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Affinity")
            .field("workers", &self.pool.len())
            .field("moved", &self.moved())
            .field("away", &self.away())
            .finish()
    }
}

impl Affinity {
    /// Placement over `pool`; moved connections count in `open` like any other.
    pub fn new(pool: ArbiterPool, open: Arc<AtomicUsize>) -> Self {
        Affinity {
            pool,
            open,
            moved: AtomicU64::new(0),
            away: AtomicU64::new(0),
        }
    }

    /// The worker a connection for `lanes` accepted on the calling worker should move to,
    /// or `None` when it is where it belongs (or the session has no lane left to move to).
    pub fn elsewhere(&self, lanes: &Lanes) -> Option<usize> {
        if lanes.here() {
            return None;
        }
        self.spread(&lanes.workers())
    }

    /// A worker for a connection whose session is known at accept (a tcp visitor).
    pub fn worker_for(&self, lanes: &Lanes) -> usize {
        self.spread(&lanes.workers())
            .unwrap_or_else(|| self.pool.pick_index())
    }

    fn spread(&self, workers: &[usize]) -> Option<usize> {
        match workers.len() {
            0 => None,
            n => Some(workers[self.pool.pick_index() % n]),
        }
    }

    /// Moves `io` to worker `to` and serves it there with `job`, once per connection.
    pub fn hand_over<IO, F, Fut>(&self, to: usize, mut io: IO, job: F)
    where
        IO: Movable,
        F: FnOnce(IO) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Err(e) = io.park() {
            return debug!(err = %e, "connection could not leave its worker");
        }
        self.moved.fetch_add(1, Ordering::Relaxed);
        Connection::spawn(self.pool.get(to), self.open.clone(), async move {
            match io.unpark() {
                Ok(()) => job(io).await,
                Err(e) => debug!(err = %e, "connection could not join its worker"),
            }
        });
    }

    /// Opens a stream for a public connection, on the calling worker's lane if it has one.
    pub fn open(&self, lanes: &Lanes, meta: &StreamMeta) -> Result<MuxStream, ProtocolError> {
        let (stream, here) = lanes.open_noting(control::encode(meta))?;
        if !here {
            self.away.fetch_add(1, Ordering::Relaxed);
        }
        Ok(stream)
    }

    /// Connections moved to another worker after their route was known.
    pub fn moved(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
    }

    /// Streams opened on a lane of another worker than the connection's.
    pub fn away(&self) -> u64 {
        self.away.load(Ordering::Relaxed)
    }
}
