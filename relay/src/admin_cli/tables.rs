//! The listings of `burrowd admin`, as aligned tables.

use super::show::{bytes, clean, count, indent, list, pairs, plural, table, text, utc};
use serde_json::Value;

/// An account's limits in words.
pub fn quotas(account: &Value) -> String {
    let q = &account["quotas"];
    format!(
        "{}, {}, {}",
        plural(count(q, "sessions"), "agent session", "agent sessions"),
        plural(count(q, "tunnels"), "tunnel", "tunnels"),
        plural(count(q, "tcp_ports"), "tcp port", "tcp ports"),
    )
}

/// `accounts list`.
pub fn accounts_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| {
            let q = &a["quotas"];
            vec![
                text(a, "name"),
                text(q, "sessions"),
                text(q, "tunnels"),
                text(q, "tcp_ports"),
                utc(a, "created"),
            ]
        })
        .collect();
    table(
        &["NAME", "SESSIONS", "TUNNELS", "TCP PORTS", "CREATED (UTC)"],
        &rows,
    )
}

/// Picks the columns of `all`, dropping the account's when the listing is of one account.
fn cols<T: Clone>(all: &[T], with_account: bool, account_col: usize) -> Vec<T> {
    all.iter()
        .enumerate()
        .filter(|(i, _)| with_account || *i != account_col)
        .map(|(_, x)| x.clone())
        .collect()
}

/// Tokens, with their account's column unless listing one account's.
pub fn tokens_table(items: &[Value], with_account: bool) -> String {
    let head = ["ID", "ACCOUNT", "LABEL", "HINT", "CREATED (UTC)"];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| {
            let row = [
                text(t, "id"),
                text(t, "account"),
                text(t, "label"),
                text(t, "hint"),
                utc(t, "created"),
            ];
            cols(&row, with_account, 1)
        })
        .collect();
    table(&cols(&head, with_account, 1), &rows)
}

/// Reserved names, likewise.
pub fn domains_table(items: &[Value], with_account: bool) -> String {
    let head = ["NAME", "ACCOUNT", "REGION", "CREATED (UTC)"];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            let row = [
                text(d, "name"),
                text(d, "account"),
                text(d, "region"),
                utc(d, "created"),
            ];
            cols(&row, with_account, 1)
        })
        .collect();
    table(&cols(&head, with_account, 1), &rows)
}

/// Reserved tcp addresses, likewise.
pub fn addrs_table(items: &[Value], with_account: bool) -> String {
    let head = ["ADDRESS", "ACCOUNT", "REGION", "CREATED (UTC)"];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| {
            let row = [
                text(a, "addr"),
                text(a, "account"),
                text(a, "region"),
                utc(a, "created"),
            ];
            cols(&row, with_account, 1)
        })
        .collect();
    table(&cols(&head, with_account, 1), &rows)
}

/// Whitelist entries, likewise.
pub fn whitelist_table(items: &[Value], with_account: bool) -> String {
    let head = ["NETWORK", "ACCOUNT", "ADDED (UTC)"];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|w| {
            let row = [text(w, "net"), text(w, "account"), utc(w, "created")];
            cols(&row, with_account, 1)
        })
        .collect();
    table(&cols(&head, with_account, 1), &rows)
}

/// SSH keys, likewise.
pub fn keys_table(items: &[Value], with_account: bool) -> String {
    let head = ["FINGERPRINT", "ACCOUNT", "TYPE", "COMMENT", "ADDED (UTC)"];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|k| {
            let row = [
                text(k, "fingerprint"),
                text(k, "account"),
                text(k, "algorithm"),
                text(k, "comment"),
                utc(k, "created"),
            ];
            cols(&row, with_account, 1)
        })
        .collect();
    table(&cols(&head, with_account, 1), &rows)
}

/// The sessions, then their tunnels with traffic and metadata.
pub fn sessions_table(items: &[Value], with_account: bool) -> String {
    let head = [
        "ID",
        "ACCOUNT",
        "VERSION",
        "ADDRESS",
        "REGION",
        "STARTED (UTC)",
        "VIA",
        "TUNNELS",
    ];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|s| {
            let row = [
                text(s, "id"),
                text(s, "account"),
                text(s, "client_version"),
                text(s, "addr"),
                text(s, "region"),
                utc(s, "started"),
                text(s, "via"),
                list(&s["tunnels"]).len().to_string(),
            ];
            cols(&row, with_account, 1)
        })
        .collect();
    let mut out = table(&cols(&head, with_account, 1), &rows);
    let tunnels: Vec<Vec<String>> = items
        .iter()
        .flat_map(|s| list(&s["tunnels"]).iter().map(move |t| (s, t)))
        .flat_map(|(s, t)| {
            let c = &t["counters"];
            let urls = list(&t["urls"]);
            let first = urls.first().and_then(Value::as_str).unwrap_or_default();
            let mut lines = vec![vec![
                text(s, "id"),
                text(t, "proto"),
                clean(first),
                format!("{}/{}", count(c, "open"), count(c, "connections")),
                count(c, "requests").to_string(),
                bytes(count(c, "bytes_in")),
                bytes(count(c, "bytes_out")),
                text(t, "metadata"),
            ]];
            for more in urls.iter().skip(1) {
                let mut line = vec![String::new(); 8];
                line[2] = clean(more.as_str().unwrap_or_default());
                lines.push(line);
            }
            lines
        })
        .collect();
    if !tunnels.is_empty() {
        out.push_str("\ntunnels:\n");
        out.push_str(&indent(&table(
            &[
                "SESSION",
                "PROTO",
                "URL",
                "OPEN/CONNS",
                "REQUESTS",
                "IN",
                "OUT",
                "METADATA",
            ],
            &tunnels,
        )));
    }
    out
}

/// `accounts show`: the account, then each list of what it owns.
pub fn account(v: &Value) -> String {
    let a = &v["account"];
    let mut out = pairs(&[
        ("account", text(a, "name")),
        ("created", format!("{} UTC", utc(a, "created"))),
        ("quotas", quotas(a)),
    ]);
    let sections: [(&str, String); 6] = [
        ("tokens", tokens_table(list(&v["tokens"]), false)),
        ("domains", domains_table(list(&v["domains"]), false)),
        ("tcp addresses", addrs_table(list(&v["addrs"]), false)),
        ("whitelist", whitelist_table(list(&v["whitelist"]), false)),
        ("ssh keys", keys_table(list(&v["ssh_keys"]), false)),
        ("sessions", sessions_table(list(&v["sessions"]), false)),
    ];
    for (title, body) in sections {
        out.push_str(&format!("\n{title}:\n{}", indent(&body)));
    }
    out
}
