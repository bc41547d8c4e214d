//! The relay's admin dashboard in headless Chromium, against a real relay with its admin
//! listener and real agents: signing in, live agents with hostile metadata, accounts,
//! tokens, reservations and the whitelist through the forms, and a revoked token ending
//! its session.

use crate::driver::{Browser, Page};
use crate::{errors, js, WAIT};
use burrow_e2e::agent_bin::{call, json};
use burrow_e2e::fleet::{TestFleet, ADMIN};
use burrow_e2e::upstream::http_server;
use burrow_e2e::{Scratch, TestAgent, TestRelay, TunnelOpts};
use burrow_relay::Secret;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

const TOKEN: &str = "bra_dashboard-test-token";
const HOSTILE: &str = "<img src=x onerror=alert(1)><script>window.__pwned=1</script>";
/// The blob of an ed25519 public key.
const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/// What the relay's thread is asked to do.
enum Ask {
    /// Start an agent with these options and token; answer its URLs or its fatal error.
    Agent(
        TunnelOpts,
        Option<String>,
        mpsc::Sender<Result<Vec<String>, String>>,
    ),
}

/// A relay with its admin listener, and the agents started on it, on an actix system of
/// their own thread: the browser's calls block the test's.
struct Team {
    /// `http://127.0.0.1:PORT` of the admin listener.
    admin: String,
    asks: tokio::sync::mpsc::UnboundedSender<Ask>,
}

impl Team {
    fn start() -> Team {
        let (ready_tx, ready) = mpsc::channel();
        let (asks, mut rx) = tokio::sync::mpsc::unbounded_channel::<Ask>();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let relay = TestRelay::start_with(|cfg| {
                    cfg.admin_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
                    cfg.admin_token = Some(Secret::new(TOKEN));
                })
                .await;
                let _ = ready_tx.send(relay.handle.admin_addr.expect("admin listener"));
                // Kept until the test ends: an agent dropped would leave the list.
                let mut agents = Vec::new();
                while let Some(ask) = rx.recv().await {
                    match ask {
                        Ask::Agent(opts, token, reply) => {
                            let started = TestAgent::start(&relay, opts, token.as_deref()).await;
                            let _ = reply.send(started.map(|a| {
                                let urls = a.urls.clone();
                                agents.push(a);
                                urls
                            }));
                        }
                    }
                }
            });
        });
        let addr = ready
            .recv_timeout(WAIT)
            .expect("the relay starts with its admin listener");
        Team {
            admin: format!("http://{addr}"),
            asks,
        }
    }

    /// Starts an agent; its URLs, or the agent's fatal error.
    fn agent(&self, opts: TunnelOpts, token: Option<&str>) -> Result<Vec<String>, String> {
        let (tx, rx) = mpsc::channel();
        self.asks
            .send(Ask::Agent(opts, token.map(String::from), tx))
            .expect("the relay's thread runs");
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the agent starts or fails")
    }

    /// Calls the admin API with the admin token; the status and the JSON answer.
    fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let auth = format!("Authorization: Bearer {TOKEN}");
        let (code, text) = call(
            method,
            &format!("{}{path}", self.admin),
            body,
            &["-H", &auth],
        );
        (
            code,
            if text.is_empty() {
                Value::Null
            } else {
                json(&text)
            },
        )
    }
}

/// Signs in on the page with `token`.
fn sign_in(page: &Page<'_>, token: &str) {
    page.wait_for(
        "the sign-in form",
        "!document.querySelector('#login-view').hidden",
        WAIT,
    );
    page.eval("document.querySelector('#token-input').value = ''");
    page.type_text("#token-input", token);
    page.press_enter("#token-input");
}

/// Types `text` into the field `selector` (emptied first) and presses Enter to submit its form.
fn submit(page: &Page<'_>, selector: &str, text: &str) {
    page.wait_for(
        &format!("the field {selector}"),
        &format!("document.querySelector({})", js(selector)),
        WAIT,
    );
    page.eval(&format!(
        "document.querySelector({}).value = ''",
        js(selector)
    ));
    page.type_text(selector, text);
    page.press_enter(selector);
}

/// Texts of the cells in column `col` of the rows of the table in `#section`.
fn column(page: &Page<'_>, section: &str, col: usize) -> Value {
    page.eval(&format!(
        "[...document.querySelectorAll('#{section} tbody tr')].map(r => r.cells[{col}].textContent)"
    ))
}

/// Clicks the button labelled `label` in the row of `#section` whose first cell is `first`.
fn click_in_row(page: &Page<'_>, section: &str, first: &str, label: &str) {
    let row = format!(
        "[...document.querySelectorAll('#{section} tbody tr')].find(r => r.cells[0].textContent === {})",
        js(first)
    );
    page.wait_for(&format!("{first} in {section}"), &row, WAIT);
    page.eval(&format!(
        "[...{row}.querySelectorAll('button')].find(b => b.textContent === {}).click()",
        js(label)
    ));
}

fn screenshot(page: &Page<'_>, dir: &Scratch, name: &str) {
    page.screenshot(&dir.0.join(name));
}

#[test]
fn live_agents_show_with_hostile_metadata_as_text_after_signing_in() {
    let scratch = Scratch::new("dashboard-live");
    let team = Team::start();
    let upstream = http_server("200 OK", "hello");
    let urls = team
        .agent(
            TunnelOpts::http(upstream)
                .subdomain("shop")
                .metadata(HOSTILE),
            None,
        )
        .expect("an agent on the open relay");
    let public = urls.iter().find(|u| u.starts_with("http://")).unwrap();

    let mut browser = Browser::launch();
    let page = browser.page(&format!("{}/", team.admin));

    // A wrong token is refused and the form says so; nothing is listed.
    sign_in(&page, "bra_wrong");
    let said = page.wait_for(
        "the refusal",
        "document.querySelector('#login-error').textContent",
        WAIT,
    );
    assert!(said.as_str().unwrap().contains("not accepted"), "{said}");
    assert_eq!(
        page.eval("document.querySelector('#login-view').hidden"),
        false
    );
    assert_eq!(
        page.eval("document.querySelector('#agents-view').hidden"),
        true
    );
    assert_eq!(page.eval("sessionStorage.length"), 0);

    // The right one shows the online agents, with the tunnel's metadata as text.
    sign_in(&page, TOKEN);
    page.wait_for(
        "the agent's session",
        "document.querySelectorAll('#agents tr.session').length === 1",
        WAIT,
    );
    let metadata = page.wait_for(
        "the tunnel's metadata",
        "document.querySelector('#agents .tunnel .metadata') && document.querySelector('#agents .tunnel .metadata').textContent",
        WAIT,
    );
    assert_eq!(metadata, HOSTILE);
    assert_eq!(
        page.eval("document.querySelectorAll('#agents img, #agents script').length"),
        0
    );
    assert_eq!(page.eval("window.__pwned === undefined"), true);
    let row = page
        .eval("[...document.querySelector('#agents tr.session').cells].map(c => c.textContent)");
    assert_eq!(row[0], "(open relay)", "{row}");
    assert!(
        !row[1].as_str().unwrap().is_empty(),
        "a client version: {row}"
    );
    assert!(row[2].as_str().unwrap().starts_with("127.0.0.1:"), "{row}");
    assert_eq!(row[3], "us", "{row}");
    assert_eq!(row[5], "agent", "{row}");
    let urls_shown = page.eval("document.querySelector('#agents .tunnel .urls').textContent");
    assert!(
        urls_shown.as_str().unwrap().contains(public.as_str()),
        "{urls_shown}"
    );
    let info = page.eval("document.querySelector('#relay-info').textContent");
    assert!(info.as_str().unwrap().contains("1 session"), "{info}");

    // Traffic through the tunnel shows in its counters within a refresh.
    let (code, body) = call("GET", &format!("{public}/"), None, &[]);
    assert_eq!((code, body.as_str()), (200, "hello"));
    page.wait_for(
        "one request counted",
        "document.querySelector('#agents .tunnel').cells[5].textContent === '1'",
        WAIT,
    );
    screenshot(&page, &scratch, "dashboard-agents.png");

    // The token is kept for the tab: a reload stays signed in.
    page.goto(&format!("{}/", team.admin));
    page.wait_for(
        "the list after a reload",
        "document.querySelectorAll('#agents tr.session').length === 1",
        WAIT,
    );
    // Signing out forgets it.
    page.eval("document.querySelector('#sign-out').click()");
    page.wait_for(
        "the sign-in form again",
        "!document.querySelector('#login-view').hidden && sessionStorage.length === 0",
        WAIT,
    );
    assert!(errors(&page).is_empty(), "{:?}", errors(&page));
}

#[test]
fn accounts_tokens_reservations_and_the_whitelist_through_the_forms() {
    let scratch = Scratch::new("dashboard-team");
    let team = Team::start();
    let upstream = http_server("200 OK", "team");
    let mut browser = Browser::launch();
    let page = browser.page(&format!("{}/#accounts", team.admin));
    sign_in(&page, TOKEN);
    page.wait_for(
        "the accounts view",
        "!document.querySelector('#accounts-view').hidden",
        WAIT,
    );

    // Accounts B and A through the form; a bad name is refused beside it.
    submit(&page, "#account-name", "Not A Name!");
    let refused = page.wait_for(
        "the refusal of a bad name",
        "document.querySelector('#account-error').textContent",
        WAIT,
    );
    assert!(
        refused.as_str().unwrap().contains("Not A Name!"),
        "{refused}"
    );
    submit(&page, "#account-name", "b");
    page.wait_for(
        "account b listed",
        "document.querySelectorAll('#accounts tr.account').length === 1",
        WAIT,
    );
    assert_eq!(
        page.eval("document.querySelector('#account-error').textContent"),
        ""
    );
    submit(&page, "#account-name", "a");
    page.wait_for(
        "both accounts listed",
        "document.querySelectorAll('#accounts tr.account').length === 2",
        WAIT,
    );
    assert_eq!(
        page.eval("[...document.querySelectorAll('#accounts tr.account')].map(r => r.cells[0].textContent)"),
        serde_json::json!(["a", "b"])
    );

    // A's page: a token, whose secret shows once.
    page.eval("document.querySelector('#accounts tr.account[data-name=a] a').click()");
    page.wait_for(
        "account a's page",
        "!document.querySelector('#account-view').hidden && document.querySelector('#tokens .empty')",
        WAIT,
    );
    submit(&page, "#token-form-label", "laptop");
    let secret = page.wait_for(
        "the new token's secret",
        "!document.querySelector('#token-secret').hidden && document.querySelector('#token-secret .secret-value').textContent",
        WAIT,
    );
    let secret = secret.as_str().unwrap().to_string();
    let note = page.eval("document.querySelector('#token-secret').textContent");
    assert!(note.as_str().unwrap().contains("not shown again"), "{note}");
    page.wait_for(
        "the token listed",
        "document.querySelectorAll('#tokens tbody tr').length === 1",
        WAIT,
    );
    assert_eq!(column(&page, "tokens", 0), serde_json::json!(["laptop"]));
    let listed = page.eval("document.querySelector('#tokens table').textContent");
    assert!(
        !listed.as_str().unwrap().contains(&secret),
        "only a hint is listed"
    );
    screenshot(&page, &scratch, "dashboard-token.png");
    page.eval("document.querySelector('#dismiss-secret').click()");
    assert_eq!(
        page.eval("document.querySelector('#token-secret').hidden"),
        true
    );
    let body = page.eval("document.body.textContent");
    assert!(
        !body.as_str().unwrap().contains(&secret),
        "the secret is gone"
    );

    // A reserves team.localhost.
    submit(&page, "#domain-form-name", "team.localhost");
    page.wait_for(
        "the reservation listed",
        "document.querySelectorAll('#domains tbody tr').length === 1",
        WAIT,
    );
    assert_eq!(
        column(&page, "domains", 0),
        serde_json::json!(["team.localhost"])
    );
    assert_eq!(column(&page, "domains", 1), serde_json::json!(["us"]));

    // Quotas, a tcp address and an SSH key whose comment is markup.
    page.eval("document.querySelector('#quotas-form-tunnels').value = ''");
    submit(&page, "#quotas-form-tunnels", "3");
    page.wait_for(
        "the quotas saved",
        "document.querySelector('#quotas').textContent.includes('Saved.')",
        WAIT,
    );
    let (_, shown) = team.api("GET", "/api/accounts/a", None);
    assert_eq!(shown["account"]["quotas"]["tunnels"], 3, "{shown}");
    submit(&page, "#addr-form-addr", "127.0.0.1:15000");
    page.wait_for(
        "the tcp address listed",
        "document.querySelectorAll('#addrs tbody tr').length === 1",
        WAIT,
    );
    assert_eq!(
        column(&page, "addrs", 0),
        serde_json::json!(["127.0.0.1:15000"])
    );
    let key = format!("ssh-ed25519 {ED25519} {HOSTILE}");
    submit(&page, "#ssh-form-key", &key);
    page.wait_for(
        "the key listed",
        "document.querySelectorAll('#ssh-keys tbody tr').length === 1",
        WAIT,
    );
    assert_eq!(column(&page, "ssh-keys", 2), serde_json::json!([HOSTILE]));
    assert_eq!(
        page.eval("document.querySelectorAll('#account-view img, #account-view script').length"),
        0
    );
    assert_eq!(page.eval("window.__pwned === undefined"), true);

    // B's agent may not have it; A's may.
    let (code, issued) = team.api("POST", "/api/accounts/b/tokens", Some(r#"{"label":"ci"}"#));
    assert_eq!(code, 201, "{issued}");
    let b_secret = issued["secret"].as_str().unwrap();
    let refused = team
        .agent(TunnelOpts::http(upstream).subdomain("team"), Some(b_secret))
        .expect_err("b may not bind a's name");
    assert!(refused.contains("reserved by another account"), "{refused}");
    let urls = team
        .agent(TunnelOpts::http(upstream).subdomain("team"), Some(&secret))
        .expect("a binds its name");
    assert!(
        urls.iter().any(|u| u.starts_with("http://team.localhost:")),
        "{urls:?}"
    );
    page.wait_for(
        "a's session on its page",
        "document.querySelectorAll('#sessions tbody tr').length === 1",
        WAIT,
    );

    // The whitelist: a bad entry is refused beside its form; a good one is added, then removed.
    submit(&page, "#whitelist-form-entry", "not-an-address");
    page.wait_for(
        "the refusal of a bad entry",
        "document.querySelector('#whitelist-form-error').textContent.includes('not-an-address')",
        WAIT,
    );
    submit(&page, "#whitelist-form-entry", "10.0.0.0/8");
    page.wait_for(
        "the entry listed",
        "document.querySelectorAll('#whitelist tbody tr').length === 1",
        WAIT,
    );
    assert_eq!(
        page.eval("document.querySelector('#whitelist-form-error').textContent"),
        ""
    );
    let (_, listed) = team.api("GET", "/api/whitelist?account=a", None);
    assert_eq!(listed[0]["net"], "10.0.0.0/8", "{listed}");
    click_in_row(&page, "whitelist", "10.0.0.0/8", "Remove");
    page.wait_for(
        "the whitelist empty",
        "document.querySelector('#whitelist .empty')",
        WAIT,
    );
    let (_, listed) = team.api("GET", "/api/whitelist?account=a", None);
    assert_eq!(listed, serde_json::json!([]));

    // Online agents: a's session, until its token is revoked on a's page.
    let a_sessions = "[...document.querySelectorAll('#agents tr.session')].filter(r => r.cells[0].textContent === 'a').length";
    page.eval("document.querySelector('#nav-agents').click()");
    page.wait_for("a's session online", &format!("{a_sessions} === 1"), WAIT);
    page.eval("history.back()");
    click_in_row(&page, "tokens", "laptop", "Revoke");
    page.wait_for(
        "no tokens left",
        "document.querySelector('#tokens .empty')",
        WAIT,
    );
    page.eval("document.querySelector('#nav-agents').click()");
    page.wait_for(
        "the agents view",
        "!document.querySelector('#agents-view').hidden",
        WAIT,
    );
    page.wait_for("a's session gone", &format!("{a_sessions} === 0"), WAIT);
    // (B's agent, refused its tunnel, is still connected.)
    let (_, sessions) = team.api("GET", "/api/sessions", None);
    let accounts: Vec<&Value> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["account"])
        .collect();
    assert!(!accounts.contains(&&Value::from("a")), "{sessions}");
    screenshot(&page, &scratch, "dashboard-revoked.png");
    assert!(errors(&page).is_empty(), "{:?}", errors(&page));
}

#[test]
fn the_dashboard_of_any_node_shows_the_fleet_with_each_node_s_agents() {
    let fleet = TestFleet::start(2);
    let upstream = http_server("200 OK", "from node b");
    let tunnels = format!(
        "  web: {{proto: http, addr: {upstream}, subdomain: dash-fleet, bind_tls: false}}\n"
    );
    let (_agent, urls) = fleet.agent(&[fleet.nodes[1].control], &tunnels, 1);
    let url = &urls[0].1;

    let mut browser = Browser::launch();
    let admin = fleet.nodes[0].admin.expect("node a's admin listener");
    let page = browser.page(&format!("http://127.0.0.1:{admin}/"));
    sign_in(&page, ADMIN);
    page.wait_for(
        "both nodes in the fleet table",
        "document.querySelectorAll('#fleet tr.node').length === 2",
        WAIT,
    );
    let row = |id: &str| format!("document.querySelector('#fleet tr.node[data-id=\"{id}\"]')");
    page.wait_for(
        "the agent's URL in node b's row, served by node a's dashboard",
        &format!("{}.textContent.includes({})", row("b"), js(url)),
        WAIT,
    );
    assert_eq!(
        page.eval(&format!("{}.cells[0].textContent", row("a"))),
        "a (this node)"
    );
    assert_eq!(
        page.eval(&format!("{}.cells[4].textContent", row("b"))),
        "1"
    );
    assert_eq!(
        page.eval(&format!("{}.cells[4].textContent", row("a"))),
        "0"
    );
    assert!(errors(&page).is_empty(), "{:?}", errors(&page));
}
