//! A minimal, blocking Chrome DevTools Protocol driver for browser tests: one headless
//! Chromium per [`Browser`], tabs driven over flattened target sessions.
//!
//! Everything here panics on failure, saying what was being done and what the browser
//! answered, because a test cannot do anything better with the error.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 900;
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How long one socket read may block, so that every wait re-checks its own deadline.
const READ_SLICE: Duration = Duration::from_millis(100);
/// Stderr lines kept for panic messages.
const STDERR_KEEP: usize = 40;

const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--remote-debugging-port=0",
    // Hermetic: no proxy from the environment or the system settings.
    "--no-proxy-server",
];

/// Set in Chromium's environment to find its crashpad handlers, which leave the process
/// group. (Disabling crashpad instead makes Chromium 156's network service crash.)
const MARK_VAR: &str = "BURROW_CHROMIUM_PROFILE";

/// A headless Chromium with a throwaway profile, killed (with all its helpers) on drop.
pub struct Browser {
    child: Child,
    conn: RefCell<Conn>,
    profile: PathBuf,
}

/// One tab, attached through a flattened session; closed on drop.
pub struct Page<'a> {
    browser: &'a Browser,
    session: String,
    target: String,
}

struct Conn {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    tabs: HashMap<String, Tab>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// What a tab's events told us; events arrive interleaved with replies, so they are
/// recorded whenever they are read and looked at later.
#[derive(Default)]
struct Tab {
    console: Vec<String>,
    loads: u64,
    gone: Option<String>,
}

enum Failure {
    /// The browser answered with a protocol error.
    Refused(String),
    /// The evaluated script threw.
    Thrown(String),
    /// No answer before the deadline.
    Timeout(String),
    /// The connection is unusable.
    Broken(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(m) => write!(f, "the browser refused: {m}"),
            Failure::Thrown(m) => write!(f, "it threw: {m}"),
            Failure::Timeout(m) | Failure::Broken(m) => f.write_str(m),
        }
    }
}

impl Browser {
    /// Starts headless Chromium (`BURROW_CHROMIUM`, else `chromium` or `chromium-browser` on
    /// `PATH`) with a fresh profile and a 1400x900 window.
    pub fn launch() -> Browser {
        let exe = chromium_path();
        let profile = fresh_profile_dir();
        let mut cmd = Command::new(&exe);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={WIDTH},{HEIGHT}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env(MARK_VAR, &profile)
            // Its own process group, so that drop can find the zygote and renderers, whose
            // retitling clobbers the environment that would otherwise mark them.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));

        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr was piped");
        let keep = Arc::clone(&stderr);
        // Drains stderr for the browser's whole life: a full pipe would stall Chromium.
        std::thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut buf = Vec::new();
            while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                buf.clear();
                // Without a system bus Chromium logs dbus failures all its life; they would
                // push anything useful out of the kept tail.
                if line.is_empty() || line.contains(":ERROR:dbus/") {
                    continue;
                }
                let mut k = keep.lock().unwrap_or_else(|p| p.into_inner());
                if k.len() == STDERR_KEEP {
                    k.pop_front();
                }
                k.push_back(line.clone());
                drop(k);
                let _ = tx.send(line);
            }
        });

        let deadline = Instant::now() + LAUNCH_TIMEOUT;
        let ws_url = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(url) = line.trim().strip_prefix("DevTools listening on ") {
                        break url.to_string();
                    }
                }
                Err(e) => {
                    let why = match e {
                        mpsc::RecvTimeoutError::Timeout => {
                            format!("nothing within {LAUNCH_TIMEOUT:?}")
                        }
                        mpsc::RecvTimeoutError::Disconnected => {
                            format!("it exited ({:?})", child.wait().ok())
                        }
                    };
                    kill_all(&mut child, &profile);
                    let _ = std::fs::remove_dir_all(&profile);
                    panic!(
                        "starting {}: no 'DevTools listening on' line: {why}; stderr:{}",
                        exe.display(),
                        tail(&stderr)
                    );
                }
            }
        };

        let ws = match connect(&ws_url) {
            Ok(ws) => ws,
            Err(e) => {
                kill_all(&mut child, &profile);
                let _ = std::fs::remove_dir_all(&profile);
                panic!("connecting to {ws_url}: {e}; stderr:{}", tail(&stderr));
            }
        };
        Browser {
            child,
            conn: RefCell::new(Conn {
                ws,
                next_id: 1,
                tabs: HashMap::new(),
                stderr,
            }),
            profile,
        }
    }

    /// The browser's process id, which is also its process group.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Opens a new tab at `url` and waits for its load event.
    pub fn page(&mut self, url: &str) -> Page<'_> {
        let mut conn = self.conn.borrow_mut();
        // Created blank and navigated only after Page.enable, so its load event cannot be missed.
        let target = conn
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .unwrap_or_else(|e| panic!("opening a tab for {url}: {e}"))["targetId"]
            .as_str()
            .expect("Target.createTarget answers a targetId")
            .to_string();
        let session = conn
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .unwrap_or_else(|e| panic!("attaching to the tab for {url}: {e}"))["sessionId"]
            .as_str()
            .expect("Target.attachToTarget answers a sessionId")
            .to_string();
        conn.tabs.insert(session.clone(), Tab::default());
        let setup = [
            ("Page.enable", json!({})),
            ("Runtime.enable", json!({})),
            ("Inspector.enable", json!({})),
            (
                "Emulation.setDeviceMetricsOverride",
                json!({"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
            ),
            // A headless tab is never the focused window; without this, focus() and
            // key events behave as in a background tab.
            (
                "Emulation.setFocusEmulationEnabled",
                json!({"enabled": true}),
            ),
        ];
        for (method, params) in setup {
            conn.call(Some(&session), method, params)
                .unwrap_or_else(|e| panic!("setting up the tab for {url}: {method}: {e}"));
        }
        drop(conn);
        let page = Page {
            browser: self,
            session,
            target,
        };
        page.goto(url);
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_all(&mut self.child, &self.profile);
        // Killed processes may take a moment to let go of the profile.
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
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
        self.try_eval(js, CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("evaluating `{js}`: {e}"))
    }

    /// Polls `js` every 50 ms until its value is truthy and returns it; throwing counts as
    /// not yet. Panics after `timeout` with `what` and the last value.
    pub fn wait_for(&self, what: &str, js: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Never less than a second, so a slow answer is not mistaken for a falsy one.
            let last = match self.try_eval(js, left.max(Duration::from_secs(1))) {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => v.to_string(),
                Err(Failure::Broken(e)) => panic!("waiting for {what} (`{js}`): {e}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what} (`{js}`); last: {last}");
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Navigates to `url` and waits for the load event.
    pub fn goto(&self, url: &str) {
        let before = self.with_tab(|t| t.loads);
        let r = self.call(
            "Page.navigate",
            json!({"url": url}),
            &format!("navigating to {url}"),
        );
        if let Some(err) = r["errorText"].as_str().filter(|e| !e.is_empty()) {
            panic!("navigating to {url}: {err}");
        }
        // A same-document navigation (only the fragment changes) fires no load event.
        if r.get("loaderId").is_none() {
            return;
        }
        let deadline = Instant::now() + LOAD_TIMEOUT;
        let mut conn = self.browser.conn.borrow_mut();
        loop {
            let tab = &conn.tabs[&self.session];
            if tab.loads > before {
                return;
            }
            if let Some(gone) = &tab.gone {
                panic!("waiting for {url} to load: {gone}");
            }
            match conn.recv(deadline) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    panic!("waiting for {url} to load: no load event within {LOAD_TIMEOUT:?}")
                }
                Err(e) => panic!("waiting for {url} to load: {e}"),
            }
        }
    }

    /// Saves a PNG of the viewport to `path`, creating its parent directories.
    pub fn screenshot(&self, path: &Path) {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png"}),
            &format!("taking a screenshot for {}", path.display()),
        );
        let png = base64_decode(
            r["data"]
                .as_str()
                .expect("Page.captureScreenshot answers data"),
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Console messages and uncaught exceptions so far, as `"level: text"` (level
    /// `exception` for the latter).
    pub fn console(&self) -> Vec<String> {
        // The tab sends events in order, so once a round trip returns, everything logged
        // before it has been read. It may fail when the tab has crashed, and then what was
        // logged before is all the more worth having.
        let _ = self.browser.conn.borrow_mut().call(
            Some(&self.session),
            "Runtime.evaluate",
            json!({"expression": "0"}),
        );
        self.with_tab(|t| t.console.clone())
    }

    /// Focuses the element matching `selector` and appends `text` to it, as an IME would.
    pub fn type_text(&self, selector: &str, text: &str) {
        self.focus(selector);
        self.call(
            "Input.insertText",
            json!({"text": text}),
            &format!("typing into {selector}"),
        );
    }

    /// Focuses the element matching `selector` and presses Enter with real key events.
    pub fn press_enter(&self, selector: &str) {
        self.focus(selector);
        let what = format!("pressing Enter in {selector}");
        let key = json!({"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13});
        let mut down = key.clone();
        down["type"] = "keyDown".into();
        // The text makes Chromium also deliver keypress and the default action (form submit).
        down["text"] = "\r".into();
        down["unmodifiedText"] = "\r".into();
        self.call("Input.dispatchKeyEvent", down, &what);
        let mut up = key;
        up["type"] = "keyUp".into();
        self.call("Input.dispatchKeyEvent", up, &what);
    }

    fn focus(&self, selector: &str) {
        let sel = Value::from(selector).to_string();
        // The caret goes to the end so that typing appends, as after a user's click there.
        let state = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return 'missing'; \
             e.focus(); if (document.activeElement !== e) return 'unfocusable'; \
             try {{ e.setSelectionRange(e.value.length, e.value.length); }} catch (_) {{}} \
             return 'ok'; }})()"
        ));
        match state.as_str() {
            Some("ok") => {}
            Some("missing") => panic!("focusing {selector}: nothing matches it"),
            _ => panic!("focusing {selector}: it does not take focus ({state})"),
        }
    }

    fn try_eval(&self, js: &str, timeout: Duration) -> Result<Value, Failure> {
        let params = json!({"expression": js, "returnByValue": true, "awaitPromise": true});
        let r = self.browser.conn.borrow_mut().call_within(
            Some(&self.session),
            "Runtime.evaluate",
            params,
            timeout,
        )?;
        if let Some(details) = r.get("exceptionDetails") {
            return Err(Failure::Thrown(exception_text(details)));
        }
        let result = &r["result"];
        Ok(match result.get("unserializableValue") {
            // NaN, Infinity, -0 and bigints have no JSON form.
            Some(v) => v.clone(),
            None => result.get("value").cloned().unwrap_or(Value::Null),
        })
    }

    fn call(&self, method: &str, params: Value, doing: &str) -> Value {
        self.browser
            .conn
            .borrow_mut()
            .call(Some(&self.session), method, params)
            .unwrap_or_else(|e| panic!("{doing}: {method}: {e}"))
    }

    fn with_tab<T>(&self, f: impl FnOnce(&Tab) -> T) -> T {
        f(&self.browser.conn.borrow().tabs[&self.session])
    }
}

impl Drop for Page<'_> {
    fn drop(&mut self) {
        // Best effort and never a panic: this may run while a failed test unwinds.
        if let Ok(mut conn) = self.browser.conn.try_borrow_mut() {
            let _ = conn.call_within(
                None,
                "Target.closeTarget",
                json!({"targetId": self.target}),
                Duration::from_secs(5),
            );
            conn.tabs.remove(&self.session);
        }
    }
}

impl Conn {
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Failure> {
        self.call_within(session, method, params, CALL_TIMEOUT)
    }

    fn call_within(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        self.check_alive(session)?;
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .map_err(|e| Failure::Broken(format!("sending {method}: {e}{}", tail(&self.stderr))))?;
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.recv(deadline)?;
            // A crashed tab never answers, so waiting out the deadline would only hide why.
            self.check_alive(session)?;
            let Some(mut m) = m else {
                return Err(Failure::Timeout(format!(
                    "no answer to {method} within {timeout:?}"
                )));
            };
            // Replies to calls that timed out earlier may still turn up; they are skipped.
            if m["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(err) = m.get("error") {
                let text = err["message"]
                    .as_str()
                    .map_or_else(|| err.to_string(), str::to_string);
                return Err(Failure::Refused(match err["data"].as_str() {
                    Some(data) => format!("{text} ({data})"),
                    None => text,
                }));
            }
            return Ok(m["result"].take());
        }
    }

    fn check_alive(&self, session: Option<&str>) -> Result<(), Failure> {
        match session.and_then(|s| self.tabs.get(s)?.gone.as_ref()) {
            Some(gone) => Err(Failure::Broken(gone.clone())),
            None => Ok(()),
        }
    }

    /// The next message, with any event in it recorded; `None` once `deadline` passes.
    fn recv(&mut self, deadline: Instant) -> Result<Option<Value>, Failure> {
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    let v: Value = serde_json::from_str(text.as_str()).map_err(|e| {
                        Failure::Broken(format!("the browser sent non-JSON ({e}): {text}"))
                    })?;
                    self.record(&v);
                    return Ok(Some(v));
                }
                Ok(Message::Close(frame)) => {
                    return Err(Failure::Broken(format!(
                        "the browser closed the DevTools connection ({frame:?}); stderr:{}",
                        tail(&self.stderr)
                    )))
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    return Err(Failure::Broken(format!(
                        "the DevTools connection failed: {e}; stderr:{}",
                        tail(&self.stderr)
                    )))
                }
            }
        }
        Ok(None)
    }

    fn record(&mut self, msg: &Value) {
        let Some(method) = msg["method"].as_str() else {
            return;
        };
        let p = &msg["params"];
        // Sent on the browser connection, naming the session in its params.
        if method == "Target.detachedFromTarget" {
            if let Some(tab) = p["sessionId"].as_str().and_then(|s| self.tabs.get_mut(s)) {
                tab.gone
                    .get_or_insert_with(|| "the tab was detached".into());
            }
            return;
        }
        let Some(tab) = msg["sessionId"].as_str().and_then(|s| self.tabs.get_mut(s)) else {
            return;
        };
        match method {
            "Page.loadEventFired" => tab.loads += 1,
            "Runtime.consoleAPICalled" => {
                let args: Vec<String> = p["args"]
                    .as_array()
                    .map(|a| a.iter().map(remote_text).collect())
                    .unwrap_or_default();
                let level = p["type"].as_str().unwrap_or("log");
                tab.console.push(format!("{level}: {}", args.join(" ")));
            }
            "Runtime.exceptionThrown" => tab.console.push(format!(
                "exception: {}",
                exception_text(&p["exceptionDetails"])
            )),
            "Inspector.targetCrashed" => tab.gone = Some("the tab crashed".into()),
            "Inspector.detached" => tab.gone = Some(format!("the tab detached: {}", p["reason"])),
            _ => {}
        }
    }
}

fn connect(url: &str) -> Result<WebSocket<TcpStream>, String> {
    let hostport = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{hostport} resolves to nothing"))?;
    let stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    // Long enough for the handshake, which cannot resume after a timeout.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client(url, stream).map_err(|e| format!("handshake: {e}"))?;
    ws.get_ref()
        .set_read_timeout(Some(READ_SLICE))
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

fn chromium_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BURROW_CHROMIUM").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("no chromium or chromium-browser on PATH; set BURROW_CHROMIUM to the browser binary")
}

fn fresh_profile_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "burrow-chromium-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    // A leftover from an earlier run with a recycled pid would not be fresh.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Kills the browser and everything it started, and waits until none of it is running.
fn kill_all(child: &mut Child, profile: &Path) {
    let mut mark = format!("{MARK_VAR}=").into_bytes();
    mark.extend_from_slice(profile.as_os_str().as_encoded_bytes());
    let deadline = Instant::now() + Duration::from_secs(5);
    // Until the browser is reaped its pid, and so its group id, cannot be reused.
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

fn tail(stderr: &Mutex<VecDeque<String>>) -> String {
    let lines = stderr.lock().unwrap_or_else(|p| p.into_inner());
    lines.iter().fold(String::new(), |s, l| s + "\n  " + l)
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

/// A console argument as the DevTools console would print it, roughly.
fn remote_text(obj: &Value) -> String {
    match (
        &obj["value"],
        obj["unserializableValue"].as_str(),
        obj["description"].as_str(),
    ) {
        (Value::String(s), _, _) => s.clone(),
        (Value::Null, Some(u), _) => u.to_string(),
        (Value::Null, None, Some(d)) => d.to_string(),
        (Value::Null, None, None) if obj["subtype"] == "null" => "null".to_string(),
        (Value::Null, None, None) => obj["type"].as_str().unwrap_or("undefined").to_string(),
        (v, _, _) => v.to_string(),
    }
}

fn exception_text(details: &Value) -> String {
    let text = details["text"].as_str().unwrap_or("exception");
    let ex = &details["exception"];
    match (ex["description"].as_str(), &ex["value"]) {
        // A rejection's text already repeats the description's first line.
        (Some(d), _) if text.ends_with(d.lines().next().unwrap_or("")) => {
            format!("{text}{}", &d[d.lines().next().unwrap_or("").len()..])
        }
        (Some(d), _) => format!("{text} {d}"),
        (None, Value::Null) => text.to_string(),
        (None, v) => format!("{text} {}", remote_text(&json!({"value": v}))),
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' => continue,
            _ => panic!("decoding a screenshot: {c:#04x} is not base64"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
