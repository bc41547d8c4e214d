//! Per-stream receive window with auto-tuning toward the bandwidth-delay product, under a
//! memory budget.
//!
//! Sans-IO: the mux feeds it received and consumed byte counts plus the session's RTT and
//! sends whatever window increments it returns. A window starts small so idle streams cost
//! little; it doubles whenever the reader drains a quarter of it in under one round trip,
//! i.e. whenever the window, not the reader, is what limits the stream. Growth beyond the
//! initial window is reserved from two [`WindowBudget`]s (the session's and the process's),
//! so however many visitors stop reading, the bytes they can pin stay under the budgets.
//! A reader that turns slow gets its window halved (credit is withheld until the peer's
//! outstanding credit fits), and a closed stream gives its reservation back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Window every stream starts with; both sides assume it without negotiation.
pub const INITIAL_WINDOW: u32 = 256 * 1024;
/// Default ceiling for one stream's window: ~1.3 Gbit/s at 100 ms RTT, far more on a LAN.
pub const DEFAULT_MAX_WINDOW: u32 = 32 * 1024 * 1024;
/// Default budget for the growth of all windows of one session.
pub const DEFAULT_SESSION_BUDGET: u64 = 32 * 1024 * 1024;
/// Default budget for the growth of all windows of one process (relay or agent).
pub const DEFAULT_PROCESS_BUDGET: u64 = 32 * 1024 * 1024;

/// A pool of window growth shared by many streams: the bytes all their windows have grown
/// beyond [`INITIAL_WINDOW`] never exceed its limit.
#[derive(Debug)]
pub struct WindowBudget {
    limit: u64,
    used: AtomicU64,
}

impl WindowBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(WindowBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Its limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves up to `want` bytes; returns how many it got.
    fn take(&self, want: u64) -> u64 {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let got = want.min(self.limit.saturating_sub(used));
            if got == 0 {
                return 0;
            }
            match self.used.compare_exchange_weak(
                used,
                used + got,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return got,
                Err(now) => used = now,
            }
        }
    }

    fn give(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The receiving side of one stream's flow control.
#[derive(Debug)]
pub struct RecvWindow {
    window: u32,
    max: u32,
    /// Bytes the peer may still send before it runs out of credit.
    available: u32,
    /// Bytes consumed by the reader and not yet granted back.
    unacked: u32,
    /// Credit still to withhold after the window shrank.
    debt: u32,
    epoch: Option<Instant>,
    /// Where growth beyond the initial window is reserved: the session's, the process's.
    budgets: [Arc<WindowBudget>; 2],
}

impl Drop for RecvWindow {
    fn drop(&mut self) {
        self.release(self.window - INITIAL_WINDOW);
    }
}

impl RecvWindow {
    /// A window starting at [`INITIAL_WINDOW`] that may grow to `max`, drawing its growth
    /// from `session` and `process`.
    pub fn new(max: u32, session: Arc<WindowBudget>, process: Arc<WindowBudget>) -> Self {
        RecvWindow {
            window: INITIAL_WINDOW,
            max: max.max(INITIAL_WINDOW),
            available: INITIAL_WINDOW,
            unacked: 0,
            debt: 0,
            epoch: None,
            budgets: [session, process],
        }
    }

    /// A window with budgets of its own.
    #[cfg(test)]
    fn unbudgeted(max: u32) -> Self {
        Self::new(
            max,
            WindowBudget::new(u64::MAX),
            WindowBudget::new(u64::MAX),
        )
    }

    /// The current window size.
    pub fn size(&self) -> u32 {
        self.window
    }

    /// Bytes the peer may still send before it runs out of credit.
    pub fn available(&self) -> u32 {
        self.available
    }

    /// The most the peer may have in flight or buffered here: the window plus the credit
    /// still withheld after it shrank.
    pub fn limit(&self) -> u32 {
        self.window + self.debt
    }

    fn reserve(&self, want: u32) -> u32 {
        let [session, process] = &self.budgets;
        let s = session.take(want as u64);
        let p = process.take(s);
        if p < s {
            session.give(s - p);
        }
        p as u32
    }

    fn release(&self, n: u32) {
        if n > 0 {
            for b in &self.budgets {
                b.give(n as u64);
            }
        }
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

    /// Accounts for `len` bytes that left toward the reader; returns an increment to send,
    /// if any.
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
        let took = epoch.map(|e| now.duration_since(e));
        let fast = took.is_some_and(|d| d < rtt);
        // Many round trips for a quarter window: the reader, not the window, is the limit,
        // and a big window only holds bytes it is not taking.
        let slow = took.is_some_and(|d| d > (rtt * 16).max(Duration::from_millis(50)));
        if slow && self.window > INITIAL_WINDOW {
            let smaller = (self.window / 2).max(INITIAL_WINDOW);
            let cut = self.window - smaller;
            self.window = smaller;
            self.release(cut);
            self.debt = self.debt.saturating_add(cut);
        } else if fast && self.window < self.max && !rtt.is_zero() && self.debt == 0 {
            let want = self.window.saturating_mul(2).min(self.max) - self.window;
            let got = self.reserve(want);
            self.window += got;
            increment += got;
        }
        let pay = self.debt.min(increment);
        self.debt -= pay;
        increment -= pay;
        self.unacked = 0;
        self.epoch = Some(now);
        if increment == 0 {
            return None;
        }
        self.available += increment;
        Some(increment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrun_is_detected() {
        let mut w = RecvWindow::unbudgeted(DEFAULT_MAX_WINDOW);
        assert!(w.on_received(INITIAL_WINDOW as usize));
        assert!(!w.on_received(1));
    }

    #[test]
    fn slow_reader_keeps_the_initial_window() {
        let mut w = RecvWindow::unbudgeted(DEFAULT_MAX_WINDOW);
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
        let mut w = RecvWindow::unbudgeted(max);
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

    #[test]
    fn growth_stays_within_the_budgets_and_comes_back_on_drop() {
        let session = WindowBudget::new(4 * 1024 * 1024);
        let process = WindowBudget::new(3 * 1024 * 1024);
        let rtt = Duration::from_millis(50);
        let now = Instant::now();
        let mut windows: Vec<RecvWindow> = (0..4)
            .map(|_| RecvWindow::new(DEFAULT_MAX_WINDOW, session.clone(), process.clone()))
            .collect();
        for _ in 0..50 {
            for w in &mut windows {
                let chunk = (w.size() / 4) as usize;
                assert!(w.on_received(chunk));
                w.on_consumed(chunk, now + Duration::from_millis(1), rtt);
            }
        }
        let grown: u64 = windows
            .iter()
            .map(|w| (w.size() - INITIAL_WINDOW) as u64)
            .sum();
        assert_eq!(grown, 3 * 1024 * 1024, "the smaller budget is the cap");
        assert_eq!(process.used(), grown);
        assert_eq!(session.used(), grown);
        drop(windows);
        assert_eq!((process.used(), session.used()), (0, 0));
    }

    #[test]
    fn a_reader_that_turns_slow_shrinks_its_window_and_the_peer_never_overruns() {
        let process = WindowBudget::new(u64::MAX);
        let mut w = RecvWindow::new(
            8 * 1024 * 1024,
            WindowBudget::new(u64::MAX),
            process.clone(),
        );
        let rtt = Duration::from_millis(10);
        let mut now = Instant::now();
        // The peer sends whenever it has credit; `credit` is what it believes it has.
        let mut credit = INITIAL_WINDOW as u64;
        let mut queued = 0u64;
        let mut step = |w: &mut RecvWindow, now: Instant, take: u64, credit: &mut u64| {
            let send = *credit;
            assert!(w.on_received(send as usize));
            *credit -= send;
            queued += send;
            let take = take.min(queued);
            queued -= take;
            if let Some(inc) = w.on_consumed(take as usize, now, rtt) {
                *credit += inc as u64;
            }
            queued
        };
        for _ in 0..40 {
            now += Duration::from_millis(1);
            let q = w.size() as u64 / 4;
            step(&mut w, now, q, &mut credit);
        }
        let grown = w.size();
        assert!(grown > INITIAL_WINDOW * 4, "{grown}");
        // Now the reader takes a quarter of the initial window per second.
        for _ in 0..200 {
            now += Duration::from_secs(1);
            let held = step(&mut w, now, INITIAL_WINDOW as u64 / 4, &mut credit);
            assert!(held + credit <= grown as u64, "the peer overran the window");
        }
        assert_eq!(w.size(), INITIAL_WINDOW);
        assert_eq!(process.used(), 0);
    }
}
