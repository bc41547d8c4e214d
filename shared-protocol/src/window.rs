//! Per-stream receive window with auto-tuning toward the bandwidth-delay product.
//!
//! Sans-IO: the mux feeds it received and consumed byte counts plus the session's RTT and
//! sends whatever window increments it returns. A window starts small so idle streams cost
//! little; it doubles whenever the reader drains a quarter of it in under one round trip,
//! i.e. whenever the window, not the reader, is what limits the stream.

use std::time::{Duration, Instant};

/// Window every stream starts with; both sides assume it without negotiation.
pub const INITIAL_WINDOW: u32 = 256 * 1024;
/// Default ceiling for auto-tuning: enough for ~5 Gbit/s at 100 ms RTT. Only a reader
/// that keeps up grows its window, so a slow one never holds this much.
pub const DEFAULT_MAX_WINDOW: u32 = 64 * 1024 * 1024;

/// The receiving side of one stream's flow control.
#[derive(Debug, Clone)]
pub struct RecvWindow {
    window: u32,
    max: u32,
    /// Bytes the peer may still send before it runs out of credit.
    available: u32,
    /// Bytes consumed by the reader and not yet granted back.
    unacked: u32,
    epoch: Option<Instant>,
}

impl RecvWindow {
    /// A window starting at [`INITIAL_WINDOW`] that may grow to `max`.
    pub fn new(max: u32) -> Self {
        RecvWindow {
            window: INITIAL_WINDOW,
            max: max.max(INITIAL_WINDOW),
            available: INITIAL_WINDOW,
            unacked: 0,
            epoch: None,
        }
    }

    /// The current window size.
    pub fn size(&self) -> u32 {
        self.window
    }

    /// Accounts for `len` received bytes; `false` if the peer overran its credit.
    pub fn on_received(&mut self, len: usize) -> bool {
        match u32::try_from(len)
            .ok()
            .and_then(|l| self.available.checked_sub(l))
        {
            Some(left) => {
                self.available = left;
                true
            }
            None => false,
        }
    }

    /// Accounts for `len` bytes handed to the reader; returns an increment to send, if any.
    pub fn on_consumed(&mut self, len: usize, now: Instant, rtt: Duration) -> Option<u32> {
        self.unacked = self.unacked.saturating_add(len as u32);
        // The first grant has no earlier one to time against, so it never grows.
        let epoch = self.epoch;
        self.epoch.get_or_insert(now);
        // Granting every quarter window keeps at least three quarters in flight.
        if self.unacked < self.window / 4 {
            return None;
        }
        let mut increment = self.unacked;
        let fast = epoch.is_some_and(|e| now.duration_since(e) < rtt);
        if self.window < self.max && !rtt.is_zero() && fast {
            let grown = (self.window.saturating_mul(2)).min(self.max);
            increment += grown - self.window;
            self.window = grown;
        }
        self.unacked = 0;
        self.available += increment;
        self.epoch = Some(now);
        Some(increment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrun_is_detected() {
        let mut w = RecvWindow::new(DEFAULT_MAX_WINDOW);
        assert!(w.on_received(INITIAL_WINDOW as usize));
        assert!(!w.on_received(1));
    }

    #[test]
    fn slow_reader_keeps_the_initial_window() {
        let mut w = RecvWindow::new(DEFAULT_MAX_WINDOW);
        let rtt = Duration::from_millis(10);
        let mut now = Instant::now();
        for _ in 0..100 {
            assert!(w.on_received(64 * 1024));
            now += Duration::from_secs(1);
            if let Some(inc) = w.on_consumed(64 * 1024, now, rtt) {
                assert!(inc <= INITIAL_WINDOW);
            }
        }
        assert_eq!(w.size(), INITIAL_WINDOW);
    }

    #[test]
    fn fast_reader_grows_toward_the_maximum_and_stops_there() {
        let max = 4 * 1024 * 1024;
        let mut w = RecvWindow::new(max);
        let rtt = Duration::from_millis(50);
        let now = Instant::now();
        let mut granted = INITIAL_WINDOW as u64;
        for _ in 0..200 {
            let chunk = (w.size() / 4) as usize;
            assert!(w.on_received(chunk));
            if let Some(inc) = w.on_consumed(chunk, now + Duration::from_millis(1), rtt) {
                granted += inc as u64;
            }
        }
        assert_eq!(w.size(), max);
        assert!(granted > max as u64);
    }
}
