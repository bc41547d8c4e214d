//! `burrowd admin` arguments: the options that say where the admin API is and how to
//! authenticate (accepted anywhere on the line), then a command and its own options.

use std::path::PathBuf;

/// Where the admin API listens unless `--admin-addr` says otherwise (the relay's default).
pub const DEFAULT_ADDR: &str = "127.0.0.1:4480";
/// The relay's default state directory, which holds the admin token file.
pub const DEFAULT_STATE_DIR: &str = "burrowd-state";
/// The admin token file's name inside the state directory.
pub const TOKEN_FILE: &str = "admin-token";

/// How to reach and authenticate to the admin API, and how to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The admin listener, `host:port`.
    pub addr: String,
    /// The file the admin token is read from (unless `BURROWD_ADMIN_TOKEN` is set).
    pub token_file: PathBuf,
    /// Print the API's JSON instead of tables.
    pub json: bool,
}

/// Where an SSH key line comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Given on the command line.
    Line(String),
    /// Read from a file (`@FILE`), e.g. `~/.ssh/id_ed25519.pub`.
    File(PathBuf),
}

/// One `burrowd admin` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help`: the usage text.
    Help,
    /// `status`: the relay's version, domain, region and counts.
    Status,
    /// `accounts [list]`.
    Accounts,
    /// `accounts add NAME`.
    AccountAdd(String),
    /// `accounts show NAME`: the account and everything it owns.
    AccountShow(String),
    /// `accounts rm NAME`.
    AccountRm(String),
    /// `accounts quotas NAME [--sessions N] [--tunnels N] [--tcp-ports N]`; shows them when
    /// no flag is given.
    Quotas {
        /// The account.
        account: String,
        /// New agent session limit.
        sessions: Option<u32>,
        /// New tunnel limit.
        tunnels: Option<u32>,
        /// New tcp port limit.
        tcp_ports: Option<u32>,
    },
    /// `tokens [list] [ACCOUNT]`.
    Tokens(Option<String>),
    /// `tokens issue ACCOUNT [--label L]`.
    TokenIssue {
        /// The account.
        account: String,
        /// The operator's note.
        label: String,
    },
    /// `tokens revoke ID`.
    TokenRevoke(String),
    /// `domains [list] [ACCOUNT]`.
    Domains(Option<String>),
    /// `domains add ACCOUNT NAME [--region R]`.
    DomainAdd {
        /// The account.
        account: String,
        /// The name or wildcard.
        name: String,
        /// Its region (the relay's when absent).
        region: Option<String>,
    },
    /// `domains rm NAME`.
    DomainRm(String),
    /// `addrs [list] [ACCOUNT]`.
    Addrs(Option<String>),
    /// `addrs add ACCOUNT HOST:PORT [--region R]`.
    AddrAdd {
        /// The account.
        account: String,
        /// `host:port`.
        addr: String,
        /// Its region (the relay's when absent).
        region: Option<String>,
    },
    /// `addrs rm HOST:PORT`.
    AddrRm(String),
    /// `whitelist [list] [ACCOUNT]`.
    Whitelist(Option<String>),
    /// `whitelist add ACCOUNT ADDR_OR_CIDR`.
    WhitelistAdd {
        /// The account.
        account: String,
        /// An address or CIDR block.
        entry: String,
    },
    /// `whitelist rm ACCOUNT ADDR_OR_CIDR`.
    WhitelistRm {
        /// The account.
        account: String,
        /// An address or CIDR block.
        entry: String,
    },
    /// `ssh-keys [list] [ACCOUNT]`.
    SshKeys(Option<String>),
    /// `ssh-keys add ACCOUNT (KEY_LINE | @FILE)`.
    SshKeyAdd {
        /// The account.
        account: String,
        /// The key.
        key: KeySource,
    },
    /// `ssh-keys rm FINGERPRINT`.
    SshKeyRm(String),
    /// `sessions [list]`.
    Sessions,
    /// `sessions kick ID`.
    Kick(String),
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Where the API is and how to print.
    pub options: Options,
    /// What to do.
    pub command: Command,
}

/// The flags a command may take, each with a value.
const COMMAND_FLAGS: &[&str] = &["sessions", "tunnels", "tcp-ports", "label", "region"];

/// Parses the arguments after `burrowd admin`; the error says what is wrong with them.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Invocation, String> {
    let mut addr = None;
    let mut token_file = None;
    let mut state_dir = None;
    let mut json = false;
    let mut help = false;
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut words = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let flag = match arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
            Some(f) if !f.is_empty() => f,
            _ => {
                words.push(arg);
                continue;
            }
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if name == "json" || name == "help" || name == "h" {
            if inline.is_some() {
                return Err(format!("--{name} takes no value"));
            }
            if name == "json" {
                json = true;
            } else {
                help = true;
            }
            continue;
        }
        let global = ["admin-addr", "admin-token-file", "state-dir"].contains(&name.as_str());
        if !global && !COMMAND_FLAGS.contains(&name.as_str()) {
            return Err(format!("unknown flag --{name}"));
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| format!("flag --{name} needs a value"))?,
        };
        match name.as_str() {
            "admin-addr" => addr = Some(value),
            "admin-token-file" => token_file = Some(PathBuf::from(value)),
            "state-dir" => state_dir = Some(PathBuf::from(value)),
            _ => flags.push((name, value)),
        }
    }
    let token_file = token_file.unwrap_or_else(|| {
        state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
            .join(TOKEN_FILE)
    });
    let options = Options {
        addr: addr.unwrap_or_else(|| DEFAULT_ADDR.to_string()),
        token_file,
        json,
    };
    let command = if help {
        Command::Help
    } else {
        command(&words, &mut Flags(flags))?
    };
    Ok(Invocation { options, command })
}

/// The command flags given, taken as each command reads them; any left over do not apply.
struct Flags(Vec<(String, String)>);

impl Flags {
    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().rposition(|(n, _)| n == name)?;
        let (_, value) = self.0.remove(i);
        self.0.retain(|(n, _)| n != name);
        Some(value)
    }

    fn count(&mut self, name: &str) -> Result<Option<u32>, String> {
        self.take(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("--{name}: want a count, got {v:?}"))
            })
            .transpose()
    }

    fn none_left(&self, command: &str) -> Result<(), String> {
        match self.0.first() {
            Some((name, _)) => Err(format!("--{name} does not apply to `{command}`")),
            None => Ok(()),
        }
    }
}

fn command(words: &[String], flags: &mut Flags) -> Result<Command, String> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let one = |what: &str, s: &str| -> Result<String, String> {
        match &w[2..] {
            [x] => Ok(x.to_string()),
            [] => Err(format!("`{}` needs {what}", w[..2].join(" "))),
            [_, extra, ..] => Err(format!("unexpected argument {extra:?} after {s}")),
        }
    };
    let cmd = match w.as_slice() {
        [] | ["help"] => Command::Help,
        ["status"] => Command::Status,
        ["accounts"] | ["accounts", "list"] => Command::Accounts,
        ["accounts", "add", ..] => Command::AccountAdd(one("a NAME", "the name")?),
        ["accounts", "show", ..] => Command::AccountShow(one("a NAME", "the name")?),
        ["accounts", "rm", ..] => Command::AccountRm(one("a NAME", "the name")?),
        ["accounts", "quotas", ..] => Command::Quotas {
            account: one("an account NAME", "the name")?,
            sessions: flags.count("sessions")?,
            tunnels: flags.count("tunnels")?,
            tcp_ports: flags.count("tcp-ports")?,
        },
        ["tokens", "issue", ..] => Command::TokenIssue {
            account: one("an ACCOUNT", "the account")?,
            label: flags.take("label").unwrap_or_default(),
        },
        ["tokens", "revoke", ..] => Command::TokenRevoke(one("a token ID", "the id")?),
        ["tokens", rest @ ..] => Command::Tokens(list_of("tokens", rest)?),
        ["domains", "add", account, name] => Command::DomainAdd {
            account: account.to_string(),
            name: name.to_string(),
            region: flags.take("region"),
        },
        ["domains", "add", ..] => return Err("usage: domains add ACCOUNT NAME [--region R]".into()),
        ["domains", "rm", ..] => Command::DomainRm(one("a NAME", "the name")?),
        ["domains", rest @ ..] => Command::Domains(list_of("domains", rest)?),
        ["addrs", "add", account, addr] => Command::AddrAdd {
            account: account.to_string(),
            addr: addr.to_string(),
            region: flags.take("region"),
        },
        ["addrs", "add", ..] => {
            return Err("usage: addrs add ACCOUNT HOST:PORT [--region R]".into())
        }
        ["addrs", "rm", ..] => Command::AddrRm(one("a HOST:PORT", "the address")?),
        ["addrs", rest @ ..] => Command::Addrs(list_of("addrs", rest)?),
        ["whitelist", "add", account, entry] => Command::WhitelistAdd {
            account: account.to_string(),
            entry: entry.to_string(),
        },
        ["whitelist", "rm", account, entry] => Command::WhitelistRm {
            account: account.to_string(),
            entry: entry.to_string(),
        },
        ["whitelist", verb @ ("add" | "rm"), ..] => {
            return Err(format!("usage: whitelist {verb} ACCOUNT ADDR_OR_CIDR"))
        }
        ["whitelist", rest @ ..] => Command::Whitelist(list_of("whitelist", rest)?),
        ["ssh-keys", "add", account, key @ ..] if !key.is_empty() => Command::SshKeyAdd {
            account: account.to_string(),
            key: match key {
                [file] if file.starts_with('@') => KeySource::File(PathBuf::from(&file[1..])),
                // An unquoted key line arrives as its words.
                words => KeySource::Line(words.join(" ")),
            },
        },
        ["ssh-keys", "add", ..] => {
            return Err("usage: ssh-keys add ACCOUNT (KEY_LINE | @FILE)".into())
        }
        ["ssh-keys", "rm", ..] => Command::SshKeyRm(one("a FINGERPRINT", "the fingerprint")?),
        ["ssh-keys", rest @ ..] => Command::SshKeys(list_of("ssh-keys", rest)?),
        ["sessions"] | ["sessions", "list"] => Command::Sessions,
        ["sessions", "kick", ..] => Command::Kick(one("a session ID", "the id")?),
        [group @ ("accounts" | "sessions"), other, ..] => {
            return Err(format!("unknown command `{group} {other}`"))
        }
        [other, ..] => return Err(format!("unknown command {other:?}")),
    };
    flags.none_left(&w.iter().take(2).copied().collect::<Vec<_>>().join(" "))?;
    Ok(cmd)
}

/// `[list] [ACCOUNT]` after a group's name.
fn list_of(group: &str, rest: &[&str]) -> Result<Option<String>, String> {
    let rest = match rest {
        ["list", more @ ..] => more,
        more => more,
    };
    match rest {
        [] => Ok(None),
        [account] => Ok(Some(account.to_string())),
        [_, extra, ..] => Err(format!(
            "unexpected argument {extra:?} after `{group}` ACCOUNT"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Invocation, String> {
        parse(line.split_whitespace().map(String::from))
    }

    fn cmd(line: &str) -> Command {
        parse_str(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
    }

    fn err(line: &str) -> String {
        parse_str(line).expect_err(line)
    }

    #[test]
    fn defaults_and_global_options_anywhere() {
        let inv = parse_str("status").unwrap();
        assert_eq!(
            inv.options,
            Options {
                addr: DEFAULT_ADDR.into(),
                token_file: PathBuf::from("burrowd-state/admin-token"),
                json: false,
            }
        );
        let inv =
            parse_str("accounts --admin-addr 127.0.0.1:9 list --state-dir /s --json").unwrap();
        assert_eq!(inv.command, Command::Accounts);
        assert_eq!(inv.options.addr, "127.0.0.1:9");
        assert_eq!(inv.options.token_file, PathBuf::from("/s/admin-token"));
        assert!(inv.options.json);
        let inv = parse_str("--state-dir=/s --admin-token-file=/t status").unwrap();
        assert_eq!(inv.options.token_file, PathBuf::from("/t"), "the file wins");
    }

    #[test]
    fn groups_list_by_default_and_filter_by_account() {
        assert_eq!(cmd("accounts"), Command::Accounts);
        assert_eq!(cmd("tokens"), Command::Tokens(None));
        assert_eq!(cmd("tokens alice"), Command::Tokens(Some("alice".into())));
        assert_eq!(
            cmd("tokens list alice"),
            Command::Tokens(Some("alice".into()))
        );
        assert_eq!(cmd("domains list"), Command::Domains(None));
        assert_eq!(cmd("addrs bob"), Command::Addrs(Some("bob".into())));
        assert_eq!(cmd("whitelist"), Command::Whitelist(None));
        assert_eq!(
            cmd("ssh-keys list bob"),
            Command::SshKeys(Some("bob".into()))
        );
        assert_eq!(cmd("sessions list"), Command::Sessions);
        assert_eq!(cmd(""), Command::Help);
        assert_eq!(cmd("help"), Command::Help);
        assert_eq!(cmd("tokens issue --help"), Command::Help);
    }

    #[test]
    fn commands_and_their_flags() {
        assert_eq!(
            cmd("accounts add alice"),
            Command::AccountAdd("alice".into())
        );
        assert_eq!(cmd("accounts rm alice"), Command::AccountRm("alice".into()));
        assert_eq!(
            cmd("accounts quotas alice --tunnels 3 --tcp-ports=0"),
            Command::Quotas {
                account: "alice".into(),
                sessions: None,
                tunnels: Some(3),
                tcp_ports: Some(0),
            }
        );
        assert_eq!(
            cmd("tokens issue alice --label ci"),
            Command::TokenIssue {
                account: "alice".into(),
                label: "ci".into()
            }
        );
        assert_eq!(
            cmd("tokens revoke tok_1"),
            Command::TokenRevoke("tok_1".into())
        );
        assert_eq!(
            cmd("domains add alice *.app.example --region eu"),
            Command::DomainAdd {
                account: "alice".into(),
                name: "*.app.example".into(),
                region: Some("eu".into()),
            }
        );
        assert_eq!(
            cmd("addrs add alice 1.2.3.4:5000"),
            Command::AddrAdd {
                account: "alice".into(),
                addr: "1.2.3.4:5000".into(),
                region: None,
            }
        );
        assert_eq!(
            cmd("whitelist rm alice 10.0.0.0/8"),
            Command::WhitelistRm {
                account: "alice".into(),
                entry: "10.0.0.0/8".into()
            }
        );
        assert_eq!(
            cmd("ssh-keys add alice ssh-ed25519 AAAAC3 me@host"),
            Command::SshKeyAdd {
                account: "alice".into(),
                key: KeySource::Line("ssh-ed25519 AAAAC3 me@host".into()),
            }
        );
        assert_eq!(
            cmd("ssh-keys add alice @/home/me/.ssh/id.pub"),
            Command::SshKeyAdd {
                account: "alice".into(),
                key: KeySource::File("/home/me/.ssh/id.pub".into()),
            }
        );
        assert_eq!(cmd("sessions kick 00ff"), Command::Kick("00ff".into()));
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(err("bogus"), "unknown command \"bogus\"");
        assert_eq!(err("accounts frob"), "unknown command `accounts frob`");
        assert_eq!(err("accounts add"), "`accounts add` needs a NAME");
        assert!(err("accounts add a b").contains("\"b\""));
        assert_eq!(err("status --frob"), "unknown flag --frob");
        assert_eq!(
            err("status --admin-addr"),
            "flag --admin-addr needs a value"
        );
        assert_eq!(
            err("domains add alice app.x --label l"),
            "--label does not apply to `domains add`"
        );
        assert_eq!(
            err("accounts quotas a --tunnels lots"),
            "--tunnels: want a count, got \"lots\""
        );
        assert_eq!(
            err("whitelist add alice"),
            "usage: whitelist add ACCOUNT ADDR_OR_CIDR"
        );
        assert!(err("tokens list a b").contains("unexpected argument \"b\""));
        assert_eq!(err("status --json=1"), "--json takes no value");
    }
}
