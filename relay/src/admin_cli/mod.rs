//! `burrowd admin`: a client of the relay's admin API, for operators at a shell.

mod args;
mod show;
mod tables;

use args::{Command, Invocation, KeySource, Options};
use serde_json::{json, Value};
use show::{count, list, pairs, plural, text};
use std::time::Duration;
use tables::{
    account, accounts_table, addrs_table, domains_table, keys_table, quotas, sessions_table,
    tokens_table, whitelist_table,
};

const HELP: &str = "burrowd admin: manage a running relay's accounts through its admin API

USAGE: burrowd admin [OPTIONS] COMMAND

COMMANDS:
  status                                        version, domain, region and counts
  accounts [list]                               every account and its quotas
  accounts add NAME                             create an account
  accounts show NAME                            an account and everything it owns
  accounts rm NAME                              delete it, its tokens and reservations
  accounts quotas NAME [--sessions N] [--tunnels N] [--tcp-ports N]
                                                show or change its limits
  tokens [list] [ACCOUNT]                       auth tokens (never their secrets)
  tokens issue ACCOUNT [--label L]              a new token; its secret is shown once
  tokens revoke ID                              revoke it; its sessions end at once
  domains [list] [ACCOUNT]                      reserved names and wildcards
  domains add ACCOUNT NAME [--region R]         reserve app.example.com or *.example.com
  domains rm NAME                               release it
  addrs [list] [ACCOUNT]                        reserved tcp addresses
  addrs add ACCOUNT HOST:PORT [--region R]      reserve one
  addrs rm HOST:PORT                            release it
  whitelist [list] [ACCOUNT]                    networks visitors may come from
  whitelist add ACCOUNT ADDR_OR_CIDR            allow one (the first closes the rest out)
  whitelist rm ACCOUNT ADDR_OR_CIDR             remove one
  ssh-keys [list] [ACCOUNT]                     SSH keys agents may authenticate with
  ssh-keys add ACCOUNT (KEY_LINE | @FILE)       add an authorized_keys line
  ssh-keys rm FINGERPRINT                       remove one
  sessions [list]                               agents connected now, with their tunnels
  sessions kick ID                              end a session
  help                                          this text

OPTIONS (anywhere on the line, `--flag value` or `--flag=value`):
  --admin-addr ADDR         the relay's admin listener (default 127.0.0.1:4480)
  --admin-token-file PATH   file with the admin token (default ./burrowd-state/admin-token)
  --state-dir DIR           the relay's state directory: the token is DIR/admin-token
  --json                    print the API's JSON instead of tables
  BURROWD_ADMIN_TOKEN       the admin token itself, instead of the file

Errors go to stderr and the exit status is 1.
";

/// Runs `burrowd admin` with the arguments after `admin`; returns the exit status.
pub fn main(args: impl IntoIterator<Item = String>) -> i32 {
    let inv = match args::parse(args) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("burrowd admin: {e} (see burrowd admin help)");
            return 1;
        }
    };
    if inv.command == Command::Help {
        print!("{HELP}");
        return 0;
    }
    match run(&inv) {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("burrowd admin: {e}");
            1
        }
    }
}

/// The admin token: `BURROWD_ADMIN_TOKEN` when set (as for the relay), else the file.
fn token(options: &Options) -> Result<String, String> {
    if let Some(t) = std::env::var("BURROWD_ADMIN_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
    {
        return Ok(t);
    }
    let path = &options.token_file;
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the admin token from {}: {e}; pass --state-dir or --admin-token-file, \
             or set BURROWD_ADMIN_TOKEN",
            path.display()
        )
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("the admin token file {} is empty", path.display()));
    }
    Ok(t.to_string())
}

/// The admin API over plain HTTP (it listens on loopback by default).
struct Client {
    agent: ureq::Agent,
    addr: String,
    token: String,
}

impl Client {
    fn new(options: &Options) -> Result<Client, String> {
        Ok(Client {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .build(),
            addr: options.addr.clone(),
            token: token(options)?,
        })
    }

    /// Sends one request; the answer's JSON (`Null` for an empty answer), or the API's
    /// `error` text.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("http://{}{path}", self.addr);
        let req = self
            .agent
            .request(method, &url)
            .set("Authorization", &format!("Bearer {}", self.token));
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match resp {
            Ok(r) => read_json(r),
            Err(ureq::Error::Status(code, r)) => {
                let answer = read_json(r).unwrap_or(Value::Null);
                Err(match answer["error"].as_str() {
                    Some(e) => show::clean(e),
                    None => format!("the admin API answered {code} to {method} {path}"),
                })
            }
            Err(ureq::Error::Transport(t)) => Err(format!(
                "cannot reach the admin API at {} ({}); is burrowd running with --admin-addr {}?",
                self.addr,
                root_cause(&t),
                self.addr
            )),
        }
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        self.call("GET", path, None)
    }
}

fn read_json(r: ureq::Response) -> Result<Value, String> {
    let body = r
        .into_string()
        .map_err(|e| format!("reading the admin API's answer: {e}"))?;
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body).map_err(|e| format!("the admin API's answer is not JSON: {e}"))
}

/// The innermost error's text: for a refused connection just that, not a chain of URLs.
fn root_cause(e: &ureq::Transport) -> String {
    let mut text = e
        .message()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text = c.to_string();
        cause = c.source();
    }
    text
}

/// `s` for a path segment or a query value.
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `?account=A`, or nothing.
fn of(account: &Option<String>) -> String {
    account
        .as_ref()
        .map(|a| format!("?account={}", enc(a)))
        .unwrap_or_default()
}

fn run(inv: &Invocation) -> Result<String, String> {
    let c = Client::new(&inv.options)?;
    let (answer, human): (Value, fn(&Value) -> String) = match &inv.command {
        Command::Help => unreachable!("help is answered before connecting"),
        Command::Status => (c.get("/api/status")?, |v| {
            pairs(&[
                ("burrowd", text(v, "version")),
                ("domain", text(v, "domain")),
                ("region", text(v, "region")),
                ("accounts", text(v, "accounts")),
                ("sessions", text(v, "sessions")),
                ("tunnels", text(v, "tunnels")),
            ])
        }),
        Command::Accounts => (c.get("/api/accounts")?, |v| accounts_table(list(v))),
        Command::AccountAdd(name) => (
            c.call("POST", "/api/accounts", Some(json!({ "name": name })))?,
            |v| {
                format!(
                    "account {} created; quotas: {}\n",
                    text(v, "name"),
                    quotas(v)
                )
            },
        ),
        Command::AccountShow(name) => (c.get(&format!("/api/accounts/{}", enc(name)))?, account),
        Command::AccountRm(name) => (
            c.call("DELETE", &format!("/api/accounts/{}", enc(name)), None)?,
            |v| {
                format!(
                    "account {} deleted with its tokens, reservations, whitelist and keys; {} ended\n",
                    text(v, "deleted"),
                    plural(count(v, "kicked"), "session", "sessions")
                )
            },
        ),
        Command::Quotas {
            account,
            sessions,
            tunnels,
            tcp_ports,
        } => {
            let path = format!("/api/accounts/{}", enc(account));
            let now = c.get(&path)?["account"].clone();
            let answer = if sessions.is_none() && tunnels.is_none() && tcp_ports.is_none() {
                now
            } else {
                let q = &now["quotas"];
                let pick = |new: &Option<u32>, key| new.map_or_else(|| q[key].clone(), Value::from);
                let body = json!({
                    "sessions": pick(sessions, "sessions"),
                    "tunnels": pick(tunnels, "tunnels"),
                    "tcp_ports": pick(tcp_ports, "tcp_ports"),
                });
                c.call("PUT", &format!("{path}/quotas"), Some(body))?
            };
            (answer, |v| {
                format!("quotas of {}: {}\n", text(v, "name"), quotas(v))
            })
        }
        Command::Tokens(account) => (c.get(&format!("/api/tokens{}", of(account)))?, |v| {
            tokens_table(list(v), true)
        }),
        Command::TokenIssue { account, label } => (
            c.call(
                "POST",
                &format!("/api/accounts/{}/tokens", enc(account)),
                Some(json!({ "label": label })),
            )?,
            |v| {
                let info = &v["info"];
                let label = match text(info, "label") {
                    l if l.is_empty() => String::new(),
                    l => format!(" ({l})"),
                };
                format!(
                    "token {} issued for {}{label}\nsecret: {}\nThe secret will not be shown again: copy it now (agents pass it with --authtoken).\n",
                    text(info, "id"),
                    text(info, "account"),
                    text(v, "secret"),
                )
            },
        ),
        Command::TokenRevoke(id) => (
            c.call("DELETE", &format!("/api/tokens/{}", enc(id)), None)?,
            |v| {
                let t = &v["revoked"];
                format!(
                    "token {} of {} revoked; {} ended\n",
                    text(t, "id"),
                    text(t, "account"),
                    plural(count(v, "kicked"), "session", "sessions")
                )
            },
        ),
        Command::Domains(account) => (c.get(&format!("/api/domains{}", of(account)))?, |v| {
            domains_table(list(v), true)
        }),
        Command::DomainAdd {
            account,
            name,
            region,
        } => {
            let mut body = json!({ "name": name });
            if let Some(r) = region {
                body["region"] = json!(r);
            }
            (
                c.call(
                    "POST",
                    &format!("/api/accounts/{}/domains", enc(account)),
                    Some(body),
                )?,
                |v| {
                    format!(
                        "{} reserved for {} in region {}\n",
                        text(v, "name"),
                        text(v, "account"),
                        text(v, "region")
                    )
                },
            )
        }
        Command::DomainRm(name) => (
            c.call("DELETE", &format!("/api/domains?name={}", enc(name)), None)?,
            |v| {
                format!(
                    "{} released (it was {}'s)\n",
                    text(v, "name"),
                    text(v, "account")
                )
            },
        ),
        Command::Addrs(account) => (c.get(&format!("/api/addrs{}", of(account)))?, |v| {
            addrs_table(list(v), true)
        }),
        Command::AddrAdd {
            account,
            addr,
            region,
        } => {
            let mut body = json!({ "addr": addr });
            if let Some(r) = region {
                body["region"] = json!(r);
            }
            (
                c.call(
                    "POST",
                    &format!("/api/accounts/{}/addrs", enc(account)),
                    Some(body),
                )?,
                |v| {
                    format!(
                        "{} reserved for {} in region {}\n",
                        text(v, "addr"),
                        text(v, "account"),
                        text(v, "region")
                    )
                },
            )
        }
        Command::AddrRm(addr) => (
            c.call("DELETE", &format!("/api/addrs?addr={}", enc(addr)), None)?,
            |v| {
                format!(
                    "{} released (it was {}'s)\n",
                    text(v, "addr"),
                    text(v, "account")
                )
            },
        ),
        Command::Whitelist(account) => (c.get(&format!("/api/whitelist{}", of(account)))?, |v| {
            whitelist_table(list(v), true)
        }),
        Command::WhitelistAdd { account, entry } => (
            c.call(
                "POST",
                &format!("/api/accounts/{}/whitelist", enc(account)),
                Some(json!({ "entry": entry })),
            )?,
            |v| {
                format!(
                    "{} now accepts visitors from {}\n",
                    text(v, "account"),
                    text(v, "net")
                )
            },
        ),
        Command::WhitelistRm { account, entry } => {
            c.call(
                "DELETE",
                &format!(
                    "/api/accounts/{}/whitelist?entry={}",
                    enc(account),
                    enc(entry)
                ),
                None,
            )?;
            let done = json!({ "account": account, "entry": entry });
            (done, |v| {
                format!(
                    "{} removed from the whitelist of {}\n",
                    text(v, "entry"),
                    text(v, "account")
                )
            })
        }
        Command::SshKeys(account) => (c.get(&format!("/api/ssh-keys{}", of(account)))?, |v| {
            keys_table(list(v), true)
        }),
        Command::SshKeyAdd { account, key } => {
            let line = match key {
                KeySource::Line(l) => l.clone(),
                KeySource::File(path) => std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?
                    .trim()
                    .to_string(),
            };
            (
                c.call(
                    "POST",
                    &format!("/api/accounts/{}/ssh-keys", enc(account)),
                    Some(json!({ "key": line })),
                )?,
                |v| {
                    format!(
                        "{} key {} added to {}\n",
                        text(v, "algorithm"),
                        text(v, "fingerprint"),
                        text(v, "account")
                    )
                },
            )
        }
        Command::SshKeyRm(fp) => (
            c.call(
                "DELETE",
                &format!("/api/ssh-keys?fingerprint={}", enc(fp)),
                None,
            )?,
            |v| {
                format!(
                    "key {} removed from {}\n",
                    text(v, "fingerprint"),
                    text(v, "account")
                )
            },
        ),
        Command::Sessions => (c.get("/api/sessions")?, |v| sessions_table(list(v), true)),
        Command::Kick(id) => {
            c.call("DELETE", &format!("/api/sessions/{}", enc(id)), None)?;
            (json!({ "kicked": id }), |v| {
                format!("session {} ended\n", text(v, "kicked"))
            })
        }
    };
    if inv.options.json {
        return Ok(serde_json::to_string_pretty(&answer).unwrap_or_default() + "\n");
    }
    Ok(human(&answer))
}
