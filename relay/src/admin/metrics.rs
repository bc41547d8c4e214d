//! `/metrics`: the live sessions, tunnels and their traffic in the Prometheus text format
//! (0.0.4), by account and by tunnel.

use super::AdminState;
use crate::team::live::{CountersView, SessionView};
use actix_web::{web, HttpResponse};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Escapes a label value: backslash, double quote and newline, as the text format asks.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one metric family: its help and type, then one sample per label set.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}

fn add(sum: &mut CountersView, v: &CountersView) {
    sum.connections += v.connections;
    sum.open += v.open;
    sum.requests += v.requests;
    sum.bytes_in += v.bytes_in;
    sum.bytes_out += v.bytes_out;
}

/// Renders the metrics of `sessions`, with every account in `accounts` present (a gauge of
/// 0 says as much as a missing one, and keeps dashboards' series continuous) and the
/// traffic of tunnels that went away (`retired`) in the per-account sums.
pub fn render(
    accounts: &[String],
    sessions: &[SessionView],
    retired: &[(String, CountersView)],
) -> String {
    let account_of = |s: &SessionView| s.account.clone().unwrap_or_default();
    let mut per_account: BTreeMap<String, (u64, CountersView)> = accounts
        .iter()
        .map(|a| (a.clone(), (0, CountersView::default())))
        .collect();
    for (a, v) in retired {
        add(&mut per_account.entry(a.clone()).or_default().1, v);
    }
    let mut tunnels_by_proto: BTreeMap<(String, String), u64> = BTreeMap::new();
    // (labels, counters) of each live tunnel.
    let mut tunnels = Vec::new();
    for s in sessions {
        let account = account_of(s);
        let entry = per_account.entry(account.clone()).or_default();
        entry.0 += 1;
        for t in &s.tunnels {
            add(&mut entry.1, &t.counters);
            *tunnels_by_proto
                .entry((account.clone(), t.proto.clone()))
                .or_default() += 1;
            let url = t.urls.first().cloned().unwrap_or_default();
            let labels = format!(
                "account=\"{}\",tunnel=\"{}\"",
                escape(&account),
                escape(&url)
            );
            tunnels.push((labels, t.counters));
        }
    }
    let by_account = |f: &dyn Fn(&(u64, CountersView)) -> u64| -> Vec<(String, u64)> {
        per_account
            .iter()
            .map(|(a, v)| (format!("account=\"{}\"", escape(a)), f(v)))
            .collect()
    };
    let by_tunnel = |f: &dyn Fn(&CountersView) -> u64| -> Vec<(String, u64)> {
        tunnels.iter().map(|(l, c)| (l.clone(), f(c))).collect()
    };
    let directions = |l: &str, c: &CountersView| {
        [
            (format!("{l},direction=\"in\""), c.bytes_in),
            (format!("{l},direction=\"out\""), c.bytes_out),
        ]
    };
    let mut out = String::new();
    family(
        &mut out,
        "burrowd_sessions",
        "gauge",
        "Agent sessions connected now, by account (\"\" on an open relay).",
        &by_account(&|v| v.0),
    );
    let by_proto: Vec<_> = tunnels_by_proto
        .iter()
        .map(|((a, p), n)| {
            (
                format!("account=\"{}\",proto=\"{}\"", escape(a), escape(p)),
                *n,
            )
        })
        .collect();
    family(
        &mut out,
        "burrowd_tunnels",
        "gauge",
        "Tunnels bound now, by account and protocol.",
        &by_proto,
    );
    family(
        &mut out,
        "burrowd_connections_open",
        "gauge",
        "Public connections open now, by tunnel (its first public URL).",
        &by_tunnel(&|c| c.open),
    );
    family(
        &mut out,
        "burrowd_connections_total",
        "counter",
        "Public connections accepted, by tunnel; gone with the tunnel.",
        &by_tunnel(&|c| c.connections),
    );
    family(
        &mut out,
        "burrowd_requests_total",
        "counter",
        "HTTP requests forwarded, by tunnel; gone with the tunnel.",
        &by_tunnel(&|c| c.requests),
    );
    let bytes: Vec<_> = tunnels.iter().flat_map(|(l, c)| directions(l, c)).collect();
    family(
        &mut out,
        "burrowd_bytes_total",
        "counter",
        "Bytes from visitors (in) and to them (out), by tunnel; gone with the tunnel.",
        &bytes,
    );
    family(
        &mut out,
        "burrowd_account_connections_total",
        "counter",
        "Public connections accepted by the account's tunnels, those gone included.",
        &by_account(&|v| v.1.connections),
    );
    family(
        &mut out,
        "burrowd_account_requests_total",
        "counter",
        "HTTP requests forwarded by the account's tunnels, those gone included.",
        &by_account(&|v| v.1.requests),
    );
    let account_bytes: Vec<_> = per_account
        .iter()
        .flat_map(|(a, v)| directions(&format!("account=\"{}\"", escape(a)), &v.1))
        .collect();
    family(
        &mut out,
        "burrowd_account_bytes_total",
        "counter",
        "Bytes through the account's tunnels, those gone included, by direction.",
        &account_bytes,
    );
    out
}

/// `GET /metrics`.
pub async fn text(s: web::Data<AdminState>) -> HttpResponse {
    let accounts: Vec<String> = match s.team.store().accounts() {
        Ok(a) => a.into_iter().map(|a| a.name).collect(),
        Err(e) => {
            return actix_web::ResponseError::error_response(&super::error::ApiError::from(e))
        }
    };
    let mut body = render(&accounts, &s.team.live.views(), &s.team.live.retired());
    if let Some(f) = &s.fleet {
        fleet(&mut body, f);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

/// The fleet's families: its live nodes, and the visitors and bytes forwarded between them.
fn fleet(out: &mut String, f: &crate::fleet::Fleet) {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &f.counters;
    family(
        out,
        "burrowd_fleet_nodes",
        "gauge",
        "Live nodes of the fleet.",
        &[(String::new(), f.view.nodes.len() as u64)],
    );
    let conns = [
        (
            "direction=\"out\"".to_string(),
            c.forwarded_out.load(Relaxed),
        ),
        ("direction=\"in\"".to_string(), c.forwarded_in.load(Relaxed)),
    ];
    family(out, "burrowd_fleet_forwarded_connections_total", "counter", "Visitor connections forwarded to the node holding their tunnel (out) or from other nodes (in).", &conns);
    let bytes = [
        (
            "direction=\"to_owner\"".to_string(),
            c.bytes_out.load(Relaxed),
        ),
        (
            "direction=\"from_owner\"".to_string(),
            c.bytes_in.load(Relaxed),
        ),
    ];
    family(
        out,
        "burrowd_fleet_forwarded_bytes_total",
        "counter",
        "Bytes of the connections this node forwarded, toward and from the owner node.",
        &bytes,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::team::live::TunnelView;

    fn session(account: Option<&str>, urls: &[&str], c: CountersView) -> SessionView {
        SessionView {
            id: "1".into(),
            account: account.map(String::from),
            agent: "agent".into(),
            token_id: None,
            via: "agent",
            client_version: "1".into(),
            addr: "127.0.0.1:1".into(),
            region: "us".into(),
            started: 0,
            tunnels: vec![TunnelView {
                id: "2".into(),
                proto: "http".into(),
                urls: urls.iter().map(|u| u.to_string()).collect(),
                metadata: None,
                counters: c,
            }],
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        let c = CountersView {
            requests: 3,
            bytes_in: 10,
            bytes_out: 20,
            ..Default::default()
        };
        let text = render(&[], &[session(Some("a"), &["http://q\"\\\n"], c)], &[]);
        assert!(
            text.contains(
                "burrowd_requests_total{account=\"a\",tunnel=\"http://q\\\"\\\\\\n\"} 3\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_family_has_help_and_type_and_accounts_sum_their_tunnels_and_the_gone() {
        let c = CountersView {
            connections: 2,
            open: 1,
            requests: 5,
            bytes_in: 100,
            bytes_out: 200,
        };
        let gone = CountersView {
            connections: 1,
            requests: 1,
            bytes_in: 1,
            bytes_out: 1,
            ..Default::default()
        };
        let sessions = [
            session(Some("alice"), &["https://a.example", "http://a.example"], c),
            session(None, &["tcp://example:10000"], c),
        ];
        let text = render(
            &["alice".into(), "bob".into()],
            &sessions,
            &[("alice".into(), gone)],
        );
        for name in [
            "burrowd_sessions",
            "burrowd_tunnels",
            "burrowd_connections_open",
            "burrowd_connections_total",
            "burrowd_requests_total",
            "burrowd_bytes_total",
            "burrowd_account_connections_total",
            "burrowd_account_requests_total",
            "burrowd_account_bytes_total",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}\n{text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}\n{text}");
        }
        for line in [
            "burrowd_sessions{account=\"alice\"} 1",
            "burrowd_sessions{account=\"bob\"} 0",
            "burrowd_sessions{account=\"\"} 1",
            "burrowd_tunnels{account=\"alice\",proto=\"http\"} 1",
            "burrowd_connections_open{account=\"alice\",tunnel=\"https://a.example\"} 1",
            "burrowd_bytes_total{account=\"\",tunnel=\"tcp://example:10000\",direction=\"out\"} 200",
            "burrowd_account_requests_total{account=\"alice\"} 6",
            "burrowd_account_bytes_total{account=\"alice\",direction=\"in\"} 101",
            "burrowd_account_connections_total{account=\"bob\"} 0",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line}\n{text}");
        }
    }
}
