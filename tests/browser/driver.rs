//! Headless Chromium for browser tests, driven over WebDriver: Debian's `chromedriver`
//! starts the browser and `fantoccini` speaks to it. The calls block, so tests read as a
//! person's steps.
//!
//! Everything here panics on failure, saying what was being done and what the browser
//! answered, because a test cannot do anything better with the error.
use burrow_e2e::{Scratch, PROXY_VARS};
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 900;
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Chromium's flags. Hermetic and quiet: no proxy from the environment or the system
/// settings, no QUIC, and none of the background fetches a fresh profile would start.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
];

/// Set in chromedriver's environment, which the browser inherits, to find Chromium's
/// crashpad handlers: they leave the process group.
const MARK_VAR: &str = "BURROW_CHROMIUM_PROFILE";

/// A chromedriver and the headless Chromium it started with a throwaway profile; both
/// (with all the browser's helpers) are killed on drop.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    profile: Scratch,
}

/// The browser's window, showing one page.
pub struct Page<'a> {
    browser: &'a Browser,
    /// Console lines read so far: chromedriver hands each log entry out only once.
    console: RefCell<Vec<String>>,
}

/// Chromedriver's log endpoint (`/se/log`), which WebDriver proper does not have; it is
/// the only way to read the browser console over WebDriver.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

impl Browser {
    /// Starts chromedriver (`BURROW_CHROMEDRIVER`, else `chromedriver` on `PATH`) on a
    /// port the system chooses, and through it Chromium (`BURROW_CHROMIUM`, else
    /// `chromium` or `chromium-browser` on `PATH`) with a fresh profile and a 1400x900
    /// window.
    pub fn launch() -> Browser {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let profile = Scratch::new("chromium");
        let (driver, port) = start_driver(&profile);
        // From here on, drop cleans up whatever panics.
        let mut browser = Browser {
            rt,
            client: None,
            driver,
            profile,
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(browser.capabilities());
        let url = format!("http://127.0.0.1:{port}");
        let connected = browser
            .rt
            .block_on(async { tokio::time::timeout(LAUNCH_TIMEOUT, builder.connect(&url)).await });
        match connected {
            Ok(Ok(client)) => browser.client = Some(client),
            Ok(Err(e)) => panic!("starting Chromium through chromedriver: {e}"),
            Err(_) => panic!(
                "starting Chromium through chromedriver: no session within {LAUNCH_TIMEOUT:?}"
            ),
        }
        browser.size_viewport();
        browser
    }

    fn capabilities(&self) -> fantoccini::wd::Capabilities {
        let args: Vec<String> = FLAGS
            .iter()
            .map(|f| f.to_string())
            .chain([format!("--user-data-dir={}", self.profile.0.display())])
            .collect();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": find("BURROW_CHROMIUM", &["chromium", "chromium-browser"]),
                "args": args,
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        caps
    }

    /// Makes the viewport, not the window around it, 1400x900, so screenshots keep one size.
    fn size_viewport(&self) {
        let client = self.client();
        self.run("sizing the window", async {
            client.set_window_size(WIDTH, HEIGHT).await?;
            let frame = client
                .execute(
                    "return [outerWidth - innerWidth, outerHeight - innerHeight]",
                    vec![],
                )
                .await?;
            let extra = |i: usize| frame[i].as_u64().unwrap_or(0) as u32;
            client
                .set_window_size(WIDTH + extra(0), HEIGHT + extra(1))
                .await
        });
    }

    /// Shows `url` in the browser's window and waits for its load event.
    pub fn page(&mut self, url: &str) -> Page<'_> {
        let page = Page {
            browser: self,
            console: RefCell::new(Vec::new()),
        };
        page.goto(url);
        page
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the WebDriver session is open")
    }

    fn run<T>(&self, doing: &str, f: impl std::future::Future<Output = Result<T, CmdError>>) -> T {
        self.rt
            .block_on(f)
            .unwrap_or_else(|e| panic!("{doing}: {e}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Best effort and never a panic: this may run while a failed test unwinds. Ending
        // the session lets chromedriver close the browser; whatever is left is killed.
        if let Some(client) = self.client.take() {
            let close =
                async { tokio::time::timeout(Duration::from_secs(5), client.close()).await };
            let _ = self.rt.block_on(close);
        }
        kill_all(&mut self.driver, &self.profile);
        // Killed processes may take a moment to let go of the profile.
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.profile.0).is_ok() || !self.profile.0.exists() {
                break;
            }
            std::thread::sleep(POLL_EVERY);
        }
    }
}

impl Page<'_> {
    /// Evaluates a JS expression, awaiting a promise result, and returns its JSON value
    /// (`null` for `undefined`); panics with the exception text if it throws.
    pub fn eval(&self, js: &str) -> Value {
        self.try_eval(js)
            .unwrap_or_else(|e| panic!("evaluating `{js}`: {e}"))
    }

    /// Polls `js` every 50 ms until its value is truthy and returns it; throwing counts as
    /// not yet. Panics after `timeout` with `what` and the last value.
    pub fn wait_for(&self, what: &str, js: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.try_eval(js) {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => v.to_string(),
                Err(e) if is_script_error(&e) => e.to_string(),
                Err(e) => panic!("waiting for {what} (`{js}`): {e}"),
            };
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what} (`{js}`); last: {last}");
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Navigates to `url` and waits for the load event.
    pub fn goto(&self, url: &str) {
        let b = self.browser;
        b.run(&format!("navigating to {url}"), b.client().goto(url));
    }

    /// Saves a PNG of the viewport to `path`, creating its parent directories.
    pub fn screenshot(&self, path: &Path) {
        let b = self.browser;
        let png = b.run(
            &format!("taking a screenshot for {}", path.display()),
            b.client().screenshot(),
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Console messages and uncaught exceptions so far, as `"level: text"` (level
    /// `exception` for the latter). Failed resource loads, which the browser also logs,
    /// are left out: they are the network's story, not the page's.
    pub fn console(&self) -> Vec<String> {
        let b = self.browser;
        let entries = b.run(
            "reading the browser console",
            b.client().issue_cmd(BrowserLog),
        );
        let mut console = self.console.borrow_mut();
        for e in entries.as_array().into_iter().flatten() {
            let text = e["message"].as_str().unwrap_or_default();
            let level = match (e["source"].as_str(), e["level"].as_str()) {
                (Some("network"), _) => continue,
                (Some("javascript"), _) => "exception".to_string(),
                (_, Some("SEVERE")) => "error".to_string(),
                (_, Some(level)) => level.to_ascii_lowercase(),
                (_, None) => "log".to_string(),
            };
            console.push(format!("{level}: {text}"));
        }
        console.clone()
    }

    /// Appends `text` to the element matching `selector`, typing it as a person would.
    pub fn type_text(&self, selector: &str, text: &str) {
        self.send_keys(selector, text, &format!("typing into {selector}"));
    }

    /// Presses Enter in the element matching `selector`, with real key events.
    pub fn press_enter(&self, selector: &str) {
        let enter = char::from(fantoccini::key::Key::Enter).to_string();
        self.send_keys(selector, &enter, &format!("pressing Enter in {selector}"));
    }

    fn send_keys(&self, selector: &str, keys: &str, doing: &str) {
        let b = self.browser;
        b.run(doing, async {
            b.client()
                .find(Locator::Css(selector))
                .await?
                .send_keys(keys)
                .await
        });
    }

    fn try_eval(&self, js: &str) -> Result<Value, Box<CmdError>> {
        let b = self.browser;
        // WebDriver runs a function body and awaits a promise it returns.
        b.rt.block_on(b.client().execute(&format!("return ({js});"), vec![]))
            .map_err(Box::new)
    }
}

/// Whether `e` is the page's doing (the script threw or timed out), not a broken driver.
fn is_script_error(e: &CmdError) -> bool {
    use fantoccini::error::ErrorStatus;
    matches!(e, CmdError::Standard(w)
        if matches!(w.error, ErrorStatus::JavascriptError | ErrorStatus::ScriptTimeout))
}

/// Starts chromedriver in its own process group on a port it picks, and reads the port.
fn start_driver(profile: &Scratch) -> (Child, u16) {
    let exe = find("BURROW_CHROMEDRIVER", &["chromedriver"]);
    let mut cmd = Command::new(&exe);
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    let mut driver = cmd
        .arg("--port=0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env(MARK_VAR, &profile.0)
        // Its own process group, so that drop can find the browser's zygote and
        // renderers, whose retitling clobbers the environment that would mark them.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    let (tx, rx) = std::sync::mpsc::channel();
    let out = driver.stdout.take().expect("stdout was piped");
    // Drains stdout for the driver's whole life: a full pipe would stall it.
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + LAUNCH_TIMEOUT;
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let port = line
            .strip_prefix("ChromeDriver was started successfully on port ")
            .and_then(|p| p.trim_end_matches('.').parse::<u16>().ok());
        if let Some(port) = port {
            return (driver, port);
        }
        seen.push(line);
    }
    kill_all(&mut driver, profile);
    panic!(
        "starting {}: it never said its port; it said:\n  {}",
        exe.display(),
        seen.join("\n  ")
    )
}

/// The program named by `var`, else the first of `names` on `PATH`.
fn find(var: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "no {} on PATH; install Debian's chromium and chromium-driver (./test.sh does), \
         or set {var}",
        names.join(" or ")
    )
}

/// Kills the driver and everything it started, and waits until none of it is running.
fn kill_all(child: &mut Child, profile: &Scratch) {
    let mut mark = format!("{MARK_VAR}=").into_bytes();
    mark.extend_from_slice(profile.0.as_os_str().as_encoded_bytes());
    let deadline = Instant::now() + Duration::from_secs(5);
    // Until the driver is reaped its pid, and so its group id, cannot be reused.
    loop {
        let left = survivors(child.id(), &mark);
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(left.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Running (not zombie) processes in group `pgid` or with `mark` in their environment;
/// panics when `/proc` cannot be listed (an empty answer would pass for "all stopped").
/// A process that ends while being read is skipped.
fn survivors(pgid: u32, mark: &[u8]) -> Vec<u32> {
    let dir = std::fs::read_dir("/proc")
        .unwrap_or_else(|e| panic!("cannot list /proc to find the browser's processes: {e}"));
    let pgid = pgid.to_string();
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may hold spaces and parens; the fields after it are fixed.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.len() < 3 || fields[0] == "Z" {
            continue;
        }
        let marked = || {
            std::fs::read(entry.path().join("environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == mark))
        };
        if fields[2] == pgid || marked() {
            found.push(pid);
        }
    }
    found
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
