//! Per-tunnel metrics: atomic counters and HDR histograms (p50–p99) recorded where the
//! connections run, and a `Metrics` actor that keeps the 1/5/15-minute rates off the data
//! path.

use actix::prelude::*;
use dashmap::DashMap;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Seconds between rate updates, as in the usual metrics libraries.
const TICK: Duration = Duration::from_secs(5);

/// Identifies one API-visible tunnel: its name and the scheme visitors used.
pub type Key = (String, String);

/// Counters touched on the data path.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections ever opened.
    pub conns: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// HTTP requests answered.
    pub http: AtomicU64,
    /// Duration histograms, made on first use. Recorded in place under a lock that is
    /// almost never contended: a message to the actor would wake its thread on every
    /// request.
    durations: Mutex<Option<Box<Durations>>>,
}

#[derive(Debug)]
struct Durations {
    conns: Histogram<u64>,
    http: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // Nanoseconds from 1 µs to an hour, three significant digits.
    Histogram::new_with_bounds(1_000, 3_600_000_000_000, 3).expect("valid bounds")
}

impl Counters {
    /// A connection counted here ended after `d`.
    pub fn conn_done(&self, d: Duration) {
        self.record(false, d);
    }

    /// An HTTP exchange counted here took `d`.
    pub fn http_done(&self, d: Duration) {
        self.record(true, d);
    }

    fn record(&self, http: bool, d: Duration) {
        let ns = (d.as_nanos() as u64).clamp(1_000, 3_600_000_000_000);
        let mut slot = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let hists = slot.get_or_insert_with(|| {
            Box::new(Durations {
                conns: histogram(),
                http: histogram(),
            })
        });
        let hist = if http {
            &mut hists.http
        } else {
            &mut hists.conns
        };
        let _ = hist.record(ns);
    }

    /// Connection and HTTP snapshots, with the rates the actor keeps.
    fn snapshot(&self, conns: &Series, http: &Series) -> TunnelMetrics {
        let slot = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let hists = slot.as_deref();
        TunnelMetrics {
            conns: snapshot(
                conns,
                hists.map(|h| &h.conns),
                self.conns.load(Ordering::Relaxed),
                Some(self.open.load(Ordering::Relaxed)),
            ),
            http: snapshot(
                http,
                hists.map(|h| &h.http),
                self.http.load(Ordering::Relaxed),
                None,
            ),
        }
    }
}

/// Exponentially weighted moving average of a per-second rate over `window`.
#[derive(Debug, Clone, Copy)]
pub struct Ewma {
    alpha: f64,
    rate: f64,
    primed: bool,
}

impl Ewma {
    /// A rate averaged over `window` minutes.
    pub fn minutes(window: f64) -> Self {
        Ewma {
            alpha: 1.0 - (-(TICK.as_secs_f64()) / 60.0 / window).exp(),
            rate: 0.0,
            primed: false,
        }
    }

    /// Accounts for `events` seen during the last tick.
    pub fn tick(&mut self, events: u64) {
        let instant = events as f64 / TICK.as_secs_f64();
        if self.primed {
            self.rate += self.alpha * (instant - self.rate);
        } else {
            self.rate = instant;
            self.primed = true;
        }
    }

    /// Events per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// The rates of one counter.
#[derive(Debug)]
struct Series {
    last: u64,
    rates: [Ewma; 3],
}

impl Series {
    fn new() -> Self {
        Series {
            last: 0,
            rates: [Ewma::minutes(1.0), Ewma::minutes(5.0), Ewma::minutes(15.0)],
        }
    }

    fn tick(&mut self, total: u64) {
        let delta = total.saturating_sub(self.last);
        self.last = total;
        for r in &mut self.rates {
            r.tick(delta);
        }
    }
}

/// A metrics snapshot in ngrok's API shape (durations in nanoseconds).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Snapshot {
    /// Total events.
    pub count: u64,
    /// Open now (connections only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gauge: Option<u64>,
    /// 1-minute rate.
    pub rate1: f64,
    /// 5-minute rate.
    pub rate5: f64,
    /// 15-minute rate.
    pub rate15: f64,
    /// Median duration.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Both snapshots of one tunnel.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TunnelMetrics {
    /// Connection metrics.
    pub conns: Snapshot,
    /// HTTP metrics.
    pub http: Snapshot,
}

fn snapshot(s: &Series, hist: Option<&Histogram<u64>>, count: u64, gauge: Option<u64>) -> Snapshot {
    let q = |p: f64| match hist {
        Some(h) if !h.is_empty() => h.value_at_quantile(p) as f64,
        _ => 0.0,
    };
    Snapshot {
        count,
        gauge,
        rate1: s.rates[0].rate(),
        rate5: s.rates[1].rate(),
        rate15: s.rates[2].rate(),
        p50: q(0.5),
        p90: q(0.9),
        p95: q(0.95),
        p99: q(0.99),
    }
}

/// Most recent HTTP exchanges kept for the console.
const RECENT: usize = 64;

/// One finished HTTP exchange, for the console's request list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Status code.
    pub status: u16,
}

/// The shared handle: counters by key, and the actor for durations.
#[derive(Clone)]
pub struct MetricsHub {
    counters: Arc<DashMap<Key, Arc<Counters>>>,
    actor: Addr<Metrics>,
    recent: Arc<Mutex<std::collections::VecDeque<Recent>>>,
}

impl MetricsHub {
    /// Starts the metrics actor.
    pub fn start() -> Self {
        let counters: Arc<DashMap<Key, Arc<Counters>>> = Arc::new(DashMap::new());
        let actor = Metrics {
            counters: counters.clone(),
            conns: HashMap::new(),
            http: HashMap::new(),
        }
        .start();
        MetricsHub {
            counters,
            actor,
            recent: Default::default(),
        }
    }

    /// Remembers a finished exchange for the console (newest first).
    pub fn remember(&self, r: Recent) {
        let mut q = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        q.push_front(r);
        q.truncate(RECENT);
    }

    /// The most recent exchanges, newest first.
    pub fn recent(&self) -> Vec<Recent> {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The counters for `key`, created on first use.
    pub fn counters(&self, key: &Key) -> Arc<Counters> {
        self.counters.entry(key.clone()).or_default().clone()
    }

    /// Snapshots of every key.
    pub async fn snapshot(&self) -> HashMap<Key, TunnelMetrics> {
        self.actor.send(Snap).await.unwrap_or_default()
    }

    /// Forgets a key's counters (its tunnel was removed).
    pub fn forget(&self, key: &Key) {
        self.counters.remove(key);
        self.actor.do_send(Forget(key.clone()));
    }
}

/// Owns the histograms and rates.
pub struct Metrics {
    counters: Arc<DashMap<Key, Arc<Counters>>>,
    conns: HashMap<Key, Series>,
    http: HashMap<Key, Series>,
}

impl Actor for Metrics {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |act, _| {
            for e in act.counters.iter() {
                let (k, c) = (e.key(), e.value());
                act.conns
                    .entry(k.clone())
                    .or_insert_with(Series::new)
                    .tick(c.conns.load(Ordering::Relaxed));
                act.http
                    .entry(k.clone())
                    .or_insert_with(Series::new)
                    .tick(c.http.load(Ordering::Relaxed));
            }
        });
    }
}

#[derive(Message)]
#[rtype(result = "HashMap<Key, TunnelMetrics>")]
struct Snap;

impl Handler<Snap> for Metrics {
    type Result = MessageResult<Snap>;
    fn handle(&mut self, _: Snap, _: &mut Self::Context) -> Self::Result {
        let mut out = HashMap::new();
        let empty = Series::new();
        for e in self.counters.iter() {
            let conns = self.conns.get(e.key()).unwrap_or(&empty);
            let http = self.http.get(e.key()).unwrap_or(&empty);
            out.insert(e.key().clone(), e.value().snapshot(conns, http));
        }
        MessageResult(out)
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Forget(Key);

impl Handler<Forget> for Metrics {
    type Result = ();
    fn handle(&mut self, Forget(k): Forget, _: &mut Self::Context) {
        self.conns.remove(&k);
        self.http.remove(&k);
    }
}

/// Renders snapshots in the Prometheus text format.
pub fn prometheus(snaps: &HashMap<Key, TunnelMetrics>) -> String {
    let mut keys: Vec<_> = snaps.keys().collect();
    keys.sort();
    let mut out = String::new();
    let label = |k: &Key| {
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        format!("tunnel=\"{}\",scheme=\"{}\"", esc(&k.0), esc(&k.1))
    };
    let mut family =
        |name: &str, kind: &str, help: &str, f: &dyn Fn(&TunnelMetrics) -> Vec<(String, f64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for k in &keys {
                for (suffix, v) in f(&snaps[*k]) {
                    let (n, extra) = match suffix.split_once('|') {
                        Some((n, q)) => (format!("{name}{n}"), format!(",{q}")),
                        None => (format!("{name}{suffix}"), String::new()),
                    };
                    out.push_str(&format!("{n}{{{}{extra}}} {v}\n", label(k)));
                }
            }
        };
    family(
        "burrow_connections_total",
        "counter",
        "Connections opened through the tunnel.",
        &|m| vec![(String::new(), m.conns.count as f64)],
    );
    family(
        "burrow_connections_open",
        "gauge",
        "Connections open now.",
        &|m| vec![(String::new(), m.conns.gauge.unwrap_or(0) as f64)],
    );
    family(
        "burrow_http_requests_total",
        "counter",
        "HTTP requests answered.",
        &|m| vec![(String::new(), m.http.count as f64)],
    );
    let quantiles = |s: &Snapshot| {
        vec![
            ("|quantile=\"0.5\"".to_string(), s.p50 / 1e9),
            ("|quantile=\"0.9\"".to_string(), s.p90 / 1e9),
            ("|quantile=\"0.95\"".to_string(), s.p95 / 1e9),
            ("|quantile=\"0.99\"".to_string(), s.p99 / 1e9),
            ("_count".to_string(), s.count as f64),
        ]
    };
    family(
        "burrow_connection_duration_seconds",
        "summary",
        "Connection durations.",
        &|m| quantiles(&m.conns),
    );
    family(
        "burrow_http_response_duration_seconds",
        "summary",
        "HTTP response durations.",
        &|m| quantiles(&m.http),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_converges_to_a_steady_rate() {
        let mut m1 = Ewma::minutes(1.0);
        let mut m15 = Ewma::minutes(15.0);
        m1.tick(0);
        m15.tick(0);
        for _ in 0..120 {
            m1.tick(50);
            m15.tick(50);
        }
        assert!((m1.rate() - 10.0).abs() < 0.01, "{}", m1.rate());
        assert!(m15.rate() > 4.0 && m15.rate() < 10.0, "{}", m15.rate());
    }

    #[test]
    fn prometheus_text() {
        let mut snaps = HashMap::new();
        let mut m = TunnelMetrics::default();
        m.conns.count = 3;
        m.http.p50 = 2_000_000.0;
        snaps.insert(("web".to_string(), "https".to_string()), m);
        let text = prometheus(&snaps);
        assert!(
            text.contains("burrow_connections_total{tunnel=\"web\",scheme=\"https\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("burrow_http_response_duration_seconds{tunnel=\"web\",scheme=\"https\",quantile=\"0.5\"} 0.002\n"), "{text}");
    }
}
