//! The inspector and status pages in headless Chromium, with real traffic through a real
//! tunnel: live arrival, detail views, parse errors, filters, replay, edited replay,
//! escaping of hostile content, the status page, and 10,000 captured requests.
//! Screenshots land in `target/screenshots/`. The relay's admin dashboard is tested in
//! [`dashboard`].

mod dashboard;
mod driver;

use burrow_e2e::agent_bin::{agent, call, http_tunnel, json};
use burrow_e2e::upstream::read_request;
use burrow_e2e::{Running, Scratch};
use driver::{Browser, Page};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// What the upstream saw: the number of requests and the last one, whole.
#[derive(Clone, Default)]
struct Seen {
    hits: Arc<AtomicUsize>,
    last: Arc<Mutex<String>>,
}

/// `{"zipped":true,"cups":3}`, gzipped.
const GZIPPED: [u8; 44] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xab, 0x56, 0xaa, 0xca, 0x2c, 0x28,
    0x48, 0x4d, 0x51, 0xb2, 0x2a, 0x29, 0x2a, 0x4d, 0xd5, 0x51, 0x4a, 0x2e, 0x2d, 0x28, 0x56, 0xb2,
    0x32, 0xae, 0x05, 0x00, 0xac, 0x7c, 0x08, 0xaa, 0x18, 0x00, 0x00, 0x00,
];

/// An upstream with keep-alive that answers by path: `/bad-json` with a broken JSON body,
/// `/xml` with XML, `/evil` with hostile HTML, `/gzip` with a gzipped JSON document,
/// `/binary` with bytes that are not text, anything else with a small JSON document.
fn upstream(seen: Seen) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            let seen = seen.clone();
            std::thread::spawn(move || serve(s, seen));
        }
    });
    port
}

fn serve(s: TcpStream, seen: Seen) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    while let Some((head, body)) = read_request(&mut r) {
        *seen.last.lock().unwrap() = format!("{head}{}", String::from_utf8_lossy(&body));
        seen.hits.fetch_add(1, Ordering::SeqCst);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let mut extra = "";
        let (ctype, reply) = match path.as_str() {
            "/gzip" => {
                extra = "Content-Encoding: gzip\r\n";
                ("application/json", GZIPPED.to_vec())
            }
            "/binary" => (
                "application/octet-stream",
                [&[0u8, 1, 2, 0xff, 0xfe][..], b"BURROW"].concat(),
            ),
            "/bad-json" => ("application/json", r#"{"name": "tea",, "cups": 2}"#.into()),
            "/xml" => ("application/xml", "<order><item>tea</item></order>".into()),
            "/evil" => (
                "text/html",
                r#"<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">"#
                    .into(),
            ),
            _ => (
                "application/json",
                format!(r#"{{"ok":true,"path":"{path}","items":[1,2,3]}}"#).into_bytes(),
            ),
        };
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n{extra}Content-Length: {}\r\n\r\n",
            reply.len()
        )
        .into_bytes();
        out.extend_from_slice(&reply);
        if w.write_all(&out).is_err() {
            return;
        }
    }
}

struct Setup {
    _run: Running,
    _dir: Scratch,
    api: String,
    public: String,
    seen: Seen,
}

fn setup(tag: &str) -> Setup {
    let (run, api, dir) = agent(tag, "");
    let seen = Seen::default();
    let port = upstream(seen.clone());
    let public = http_tunnel(&api, "shop", port);
    Setup {
        _run: run,
        _dir: dir,
        api,
        public,
        seen,
    }
}

fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots").join(name)
}

/// JS string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn rows(page: &Page<'_>) -> u64 {
    page.eval("document.querySelectorAll('.req-row').length")
        .as_u64()
        .unwrap()
}

/// Clicks the list row whose path is `path` (the newest such row).
fn open(page: &Page<'_>, path: &str) {
    page.wait_for(
        &format!("a row for {path}"),
        &format!(
            "[...document.querySelectorAll('.req-row')].find(r => r.querySelector('.path').textContent === {0})",
            js(path)
        ),
        WAIT,
    );
    page.eval(&format!(
        "[...document.querySelectorAll('.req-row')].find(r => r.querySelector('.path').textContent === {0}).click()",
        js(path)
    ));
    page.wait_for(
        &format!("the detail of {path}"),
        &format!(
            "document.querySelector('#detail #replay-btn') && document.querySelector('#detail').textContent.includes({0})",
            js(path)
        ),
        WAIT,
    );
}

/// Text of the body view in `pane` (`#req-pane` or `#resp-pane`) once it shows `what`.
fn body_view(page: &Page<'_>, pane: &str, what: &str) -> String {
    page.wait_for(
        &format!("{pane} showing {what}"),
        &format!("document.querySelector('{pane} .body-view {what}')"),
        WAIT,
    );
    page.eval(&format!(
        "document.querySelector('{pane} .body-view').textContent"
    ))
    .as_str()
    .unwrap()
    .to_string()
}

fn errors(page: &Page<'_>) -> Vec<String> {
    page.console()
        .into_iter()
        .filter(|l| l.starts_with("exception") || l.starts_with("error"))
        .collect()
}

#[test]
fn the_inspector_shows_replays_and_edits_live_traffic() {
    let s = setup("browser");
    let mut browser = Browser::launch();
    let page = browser.page(&format!("{}/", s.api));
    page.wait_for(
        "the inspector page behind /",
        "location.pathname === '/inspect/http'",
        WAIT,
    );
    page.wait_for(
        "the live indicator",
        "document.querySelector('#live').textContent.trim() === 'live'",
        WAIT,
    );
    assert_eq!(rows(&page), 0);

    // A request through the tunnel appears without a reload.
    let (code, _) = call(
        "POST",
        &format!("{}/orders?id=7", s.public),
        Some(r#"{"item":"tea","cups":2}"#),
        &[],
    );
    assert_eq!(code, 200);
    page.wait_for(
        "the first row, complete",
        "document.querySelectorAll('.req-row').length === 1 && document.querySelector('.req-row .status').textContent === '200'",
        WAIT,
    );
    let row = page.eval(
        "(() => { const r = document.querySelector('.req-row'); return [r.querySelector('.method').textContent, r.querySelector('.path').textContent, r.querySelector('.status').textContent]; })()",
    );
    assert_eq!(row, serde_json::json!(["POST", "/orders?id=7", "200"]));

    // Its detail: headers, and both bodies pretty-printed.
    open(&page, "/orders?id=7");
    let req_body = body_view(&page, "#req-pane", "pre.pretty.json");
    assert!(
        req_body.contains("\"item\": \"tea\",\n  \"cups\": 2"),
        "{req_body}"
    );
    let resp_body = body_view(&page, "#resp-pane", "pre.pretty.json");
    assert!(resp_body.contains("\"items\": [\n"), "{resp_body}");
    page.eval("document.querySelector('#req-pane .tab[data-tab=headers]').click()");
    let headers = page.wait_for(
        "the request headers table",
        "document.querySelector('#req-pane table.headers') && document.querySelector('#req-pane table.headers').textContent",
        WAIT,
    );
    let headers = headers.as_str().unwrap();
    assert!(
        headers.contains("Content-Type") && headers.contains("application/json"),
        "{headers}"
    );
    assert!(headers.contains("X-Forwarded-For"), "{headers}");
    page.screenshot(&screenshot_path("inspector.png"));

    // A broken JSON body shows the parser's error and where it is.
    call("GET", &format!("{}/bad-json", s.public), None, &[]);
    open(&page, "/bad-json");
    let text = body_view(&page, "#resp-pane", ".parse-error");
    assert!(text.to_lowercase().contains("json"), "{text}");
    let marked = page.eval("document.querySelector('#resp-pane mark.error-at').textContent");
    assert_eq!(marked, ",", "the second comma is where parsing fails");
    page.screenshot(&screenshot_path("inspector-parse-error.png"));

    // XML is pretty-printed too.
    call("GET", &format!("{}/xml", s.public), None, &[]);
    open(&page, "/xml");
    let xml = body_view(&page, "#resp-pane", "pre.pretty.xml");
    assert!(
        xml.contains("<order>\n  <item>tea</item>\n</order>"),
        "{xml}"
    );

    // Filters: one chip, then another ANDed with it, "matched N of M".
    page.type_text("#filter-input", "Path !match json");
    page.press_enter("#filter-input");
    page.wait_for(
        "the filtered count",
        "document.querySelector('#match-count').textContent.includes('matched 2 of 3')",
        WAIT,
    );
    assert_eq!(rows(&page), 2);
    page.type_text("#filter-input", "StatusCode match 200");
    page.press_enter("#filter-input");
    page.type_text("#filter-input", "Headers.Content-Type match json");
    page.press_enter("#filter-input");
    page.wait_for(
        "three filters",
        "document.querySelector('#match-count').textContent.includes('matched 1 of 3')",
        WAIT,
    );
    page.type_text("#filter-input", "Nonsense match x");
    page.press_enter("#filter-input");
    page.wait_for(
        "an error for a bad filter",
        "document.querySelector('#filter-error').textContent.length > 0",
        WAIT,
    );
    assert_eq!(
        page.eval("document.querySelectorAll('.filter-chip').length"),
        3
    );
    page.eval("document.querySelectorAll('.filter-chip .remove').forEach(b => b.click())");
    page.wait_for(
        "filters removed",
        "document.querySelectorAll('.req-row').length === 3",
        WAIT,
    );

    // Replay: the upstream is hit again and the replay shows up in the list.
    open(&page, "/orders?id=7");
    let before = s.seen.hits.load(Ordering::SeqCst);
    page.eval("document.querySelector('#replay-btn').click()");
    page.wait_for(
        "the replayed exchange",
        "document.querySelectorAll('.req-row').length === 4",
        WAIT,
    );
    assert_eq!(s.seen.hits.load(Ordering::SeqCst), before + 1);
    assert!(s
        .seen
        .last
        .lock()
        .unwrap()
        .starts_with("POST /orders?id=7 HTTP/1.1"));

    // Edit and replay: method and body changed, seen by the upstream.
    page.eval("document.querySelector('#modify-btn').click()");
    page.wait_for("the editor", "document.querySelector('#mod-method')", WAIT);
    page.eval(
        "(() => { const set = (sel, v) => { const e = document.querySelector(sel); e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); }; set('#mod-method', 'PUT'); set('#mod-body', '{\"item\":\"coffee\"}'); document.querySelector('#mod-add-header').click(); const rows = document.querySelectorAll('#mod-headers tr'); const last = rows[rows.length - 1]; const n = last.querySelector('input.h-name'); n.value = 'X-Edited'; n.dispatchEvent(new Event('input', {bubbles: true})); const v = last.querySelector('input.h-value'); v.value = 'yes'; v.dispatchEvent(new Event('input', {bubbles: true})); document.querySelector('#mod-send').click(); })()",
    );
    let deadline = Instant::now() + WAIT;
    while s.seen.hits.load(Ordering::SeqCst) < before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = s.seen.last.lock().unwrap().clone();
    assert!(last.starts_with("PUT /orders?id=7 HTTP/1.1\r\n"), "{last}");
    assert!(last.contains("X-Edited: yes\r\n"), "{last}");
    assert!(last.ends_with("\r\n\r\n{\"item\":\"coffee\"}"), "{last}");
    page.wait_for(
        "the edited replay in the list",
        "[...document.querySelectorAll('.req-row .method')].some(m => m.textContent === 'PUT')",
        WAIT,
    );

    // Copy as curl and HAR links.
    open(&page, "/xml");
    page.eval("document.querySelector('#copy-curl-btn').click()");
    let cmd = page.wait_for(
        "the curl command",
        "document.querySelector('#curl-text') && document.querySelector('#curl-text').value",
        WAIT,
    );
    let cmd = cmd.as_str().unwrap();
    assert!(cmd.starts_with("curl") && cmd.contains("/xml"), "{cmd}");
    let har = page.eval(
        "fetch(document.querySelector('#har-all').getAttribute('href')).then(r => r.json()).then(h => h.log.entries.length)",
    );
    assert_eq!(har, 5);

    // Hostile content is shown as text, never run.
    let (code, _) = call(
        "GET",
        &format!("{}/evil", s.public),
        None,
        &["-H", "X-Evil: <img src=x onerror=\"window.__pwned=3\">"],
    );
    assert_eq!(code, 200);
    open(&page, "/evil");
    page.eval("document.querySelector('#resp-pane .tab[data-tab=raw]').click()");
    page.eval("document.querySelector('#req-pane .tab[data-tab=headers]').click()");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(page.eval("window.__pwned === undefined"), true);
    let raw = page.eval("document.querySelector('#resp-pane .tab-body').textContent");
    assert!(raw
        .as_str()
        .unwrap()
        .contains("<script>window.__pwned = 1</script>"));
    assert_eq!(
        page.eval("document.querySelectorAll('#detail script, #detail img').length"),
        0
    );

    // Clear empties the list for everyone.
    page.eval("document.querySelector('#clear-btn').click()");
    page.wait_for(
        "an empty list",
        "document.querySelectorAll('.req-row').length === 0",
        WAIT,
    );
    let (_, body) = call("GET", &format!("{}/api/requests/http", s.api), None, &[]);
    assert_eq!(json(&body)["requests"].as_array().unwrap().len(), 0);
    assert!(errors(&page).is_empty(), "{:?}", errors(&page));

    // The status page: the tunnel and non-zero metrics.
    page.goto(&format!("{}/status", s.api));
    let text = page.eval("document.body.innerText");
    let text = text.as_str().unwrap();
    assert!(text.contains("shop") && text.contains(&s.public), "{text}");
    let total = page.eval(
        "(() => { const h = [...document.querySelectorAll('h3')].find(h => h.textContent === 'HTTP Requests'); return h ? h.nextElementSibling.querySelector('td').textContent : ''; })()",
    );
    let total: u64 = total.as_str().unwrap().parse().unwrap_or(0);
    assert_eq!(
        total, 4,
        "four requests crossed the tunnel (replays went straight to the upstream)"
    );
    page.screenshot(&screenshot_path("status.png"));
}

#[test]
fn body_views_decompress_gzip_tabulate_forms_and_dump_binary_as_hex() {
    let s = setup("browser-bodies");
    let mut browser = Browser::launch();
    let page = browser.page(&format!("{}/inspect/http", s.api));
    page.wait_for(
        "the live indicator",
        "document.querySelector('#live').textContent.trim() === 'live'",
        WAIT,
    );

    // A gzipped response is labelled, decompressed and pretty-printed.
    let (code, _) = call("GET", &format!("{}/gzip", s.public), None, &[]);
    assert_eq!(code, 200);
    open(&page, "/gzip");
    let text = body_view(&page, "#resp-pane", "pre.pretty.json");
    assert!(text.contains("gzip, 44 bytes"), "{text}");
    assert!(text.contains("decompressed, 24 bytes"), "{text}");
    assert!(text.contains("\"zipped\": true,\n  \"cups\": 3"), "{text}");

    // A form body is a table of decoded names and values.
    let (code, _) = call(
        "POST",
        &format!("{}/form", s.public),
        None,
        &[
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "--data-binary",
            "name=Ann+Lee&note=tea%20%26%20cake&empty=",
        ],
    );
    assert_eq!(code, 200);
    open(&page, "/form");
    body_view(&page, "#req-pane", "table.form");
    let form = page.eval(
        "[...document.querySelectorAll('#req-pane table.form tbody tr')].map(r => [r.querySelector('.name').textContent, r.querySelector('.value').textContent])",
    );
    assert_eq!(
        form,
        serde_json::json!([["name", "Ann Lee"], ["note", "tea & cake"], ["empty", ""]])
    );

    // A body that is not text is dumped as hex, with offsets and an ASCII column.
    let (code, _) = call("GET", &format!("{}/binary", s.public), None, &[]);
    assert_eq!(code, 200);
    open(&page, "/binary");
    let hex = body_view(&page, "#resp-pane", "pre.hex");
    assert!(hex.contains("binary, 11 bytes"), "{hex}");
    assert!(
        hex.contains("00000000  00 01 02 ff fe 42 55 52  52 4f 57"),
        "{hex}"
    );
    assert!(hex.contains("|.....BURROW|"), "{hex}");

    // The Binary tab dumps the whole raw request as hex.
    page.eval("document.querySelector('#req-pane .tab[data-tab=binary]').click()");
    let dump = page.wait_for(
        "the request's hex dump",
        "document.querySelector('#req-pane .tab-body pre.hex') && document.querySelector('#req-pane .tab-body pre.hex').textContent",
        WAIT,
    );
    let dump = dump.as_str().unwrap();
    assert!(
        dump.starts_with(
            "00000000  47 45 54 20 2f 62 69 6e  61 72 79 20 48 54 54 50  |GET /binary HTTP|"
        ),
        "{dump}"
    );
    page.screenshot(&screenshot_path("inspector-bodies.png"));
    assert!(errors(&page).is_empty(), "{:?}", errors(&page));
}

/// Sends `n` requests over a few keep-alive connections straight at the relay.
fn flood(public: &str, n: usize) {
    let (host, port) = {
        let rest = public.split_once("://").unwrap().1;
        let (h, p) = rest.rsplit_once(':').unwrap();
        (h.to_string(), p.parse::<u16>().unwrap())
    };
    let conns = 8;
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let host = host.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                for i in (c..n).step_by(conns) {
                    let req = format!(
                        "GET /item/{i}?q={} HTTP/1.1\r\nHost: {host}\r\nX-Seq: {i}\r\n\r\n",
                        i % 7
                    );
                    s.write_all(req.as_bytes()).unwrap();
                    let mut len = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        r.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn ten_thousand_requests_stay_usable() {
    let s = setup("browser-10k");
    let started = Instant::now();
    flood(&s.public, 10_000);
    eprintln!(
        "10,000 requests through the tunnel in {:?}",
        started.elapsed()
    );
    let mut browser = Browser::launch();
    let t0 = Instant::now();
    let page = browser.page(&format!("{}/inspect/http", s.api));
    page.wait_for(
        "10,000 requests listed",
        "document.querySelector('#match-count').textContent.includes('10000')",
        Duration::from_secs(60),
    );
    let loaded = t0.elapsed();
    let dom_rows = rows(&page);
    assert!(
        dom_rows > 0 && dom_rows < 500,
        "the list renders only what is in view: {dom_rows} rows in the DOM"
    );
    let filter_ms = page.eval(
        "(async () => { const t = performance.now(); const i = document.querySelector('#filter-input'); i.value = 'Path match /item/99'; i.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true})); await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); return performance.now() - t; })()",
    );
    page.wait_for(
        "the filtered count",
        "document.querySelector('#match-count').textContent.includes('of 10000')",
        WAIT,
    );
    let matched = page.eval("document.querySelector('#match-count').textContent");
    // /item/99, /item/990-999 and /item/9900-9999.
    assert!(
        matched.as_str().unwrap().contains("matched 111 of 10000"),
        "{matched}"
    );
    let scroll_ms = page.eval(
        "(async () => { const l = document.querySelector('#requests'); const t = performance.now(); l.scrollTop = l.scrollHeight / 2; await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); return performance.now() - t; })()",
    );
    page.screenshot(&screenshot_path("inspector-10k.png"));
    eprintln!(
        "10k: page loaded and listed in {loaded:?}, filter {filter_ms} ms, scroll {scroll_ms} ms"
    );
    assert!(errors(&page).is_empty(), "{:?}", errors(&page));
}
