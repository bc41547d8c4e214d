#!/usr/bin/env python3
"""Drive the agent binary through pyngrok 7.5.x exactly as a Python user would.

Usage: drive_pyngrok.py PATH_TO_BURROW

pyngrok is configured for a v2 agent (ngrok_version="v2") with an explicit
config file. The script starts a local HTTP server and a TCP echo server, then:

  connect(http) -> fetch through the public http:// URL -> get_tunnels()
  connect(tcp)  -> round-trip bytes through the public tcp:// address
  disconnect() both -> kill()

and prints one line per check, then `N passed, M failed`. Exit status is 0 only
when every check passed. Needs: pip install 'pyngrok>=7.5,<7.6'.
"""

import http.server
import os
import random
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

# The command line must not depend on the caller's environment: pyngrok turns
# NGROK_AUTHTOKEN into --authtoken and NGROK_API_KEY into api_key.
os.environ.pop("NGROK_AUTHTOKEN", None)
os.environ.pop("NGROK_API_KEY", None)

from pyngrok import conf, ngrok, process  # noqa: E402
from pyngrok.exception import PyngrokError  # noqa: E402

OVERALL_TIMEOUT = 180  # seconds; pyngrok itself can block forever on a silent agent
TOKEN = "pyngrok-drive-%08x" % random.getrandbits(32)

passed = 0
failed = []


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print(f"ok - {name}", flush=True)
    else:
        failed.append(name)
        print(f"FAIL - {name}" + (f": {detail}" if detail else ""), flush=True)
    return cond


def finish():
    print(f"{passed} passed, {len(failed)} failed", flush=True)
    if failed:
        print("failed: " + "; ".join(failed), flush=True)
    return 1 if failed else 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- local servers

upstream_seen = []


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        upstream_seen.append((self.path, self.headers.get("Host")))
        body = f"{TOKEN} path={self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_http_upstream():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def start_echo_server():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def serve(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    def accept_loop():
        while True:
            try:
                conn, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return ls


# ---------------------------------------------------------------- helpers


def connect_host(host):
    """*.localhost resolves to loopback in curl and browsers, not always here."""
    try:
        socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        return host
    except socket.gaierror:
        return "127.0.0.1"


def fetch(public_url, path="/", timeout=10):
    """GET public_url+path; returns (status, body). Sends the public Host header
    even when the name has to be dialled as 127.0.0.1."""
    u = urllib.parse.urlsplit(public_url)
    port = u.port or (443 if u.scheme == "https" else 80)
    target = f"{u.scheme}://{connect_host(u.hostname)}:{port}{path}"
    req = urllib.request.Request(target, headers={"Host": u.netloc})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def tcp_roundtrip(public_url, payload, timeout=10):
    u = urllib.parse.urlsplit(public_url)
    with socket.create_connection((connect_host(u.hostname), u.port), timeout=timeout) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
        sender.start()
        got = bytearray()
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        sender.join(timeout)
        return bytes(got)


def tcp_is_closed(public_url, timeout=3):
    """True when the public tcp address no longer reaches the echo server."""
    u = urllib.parse.urlsplit(public_url)
    try:
        with socket.create_connection((connect_host(u.hostname), u.port), timeout=timeout) as s:
            s.sendall(b"ping")
            return s.recv(16) != b"ping"
    except OSError:
        return True


def eventually(fn, seconds=10, step=0.25):
    deadline = time.time() + seconds
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # keep polling; report the last state
            last = e
        if time.time() >= deadline:
            return last if last else False
        time.sleep(step)


def by_url(tunnels):
    return {t.public_url: t for t in tunnels}


# ---------------------------------------------------------------- the run


def main():
    if len(sys.argv) != 2:
        print("usage: drive_pyngrok.py PATH_TO_BINARY", file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"not an executable file: {binary}", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="drive-pyngrok-")
    config_path = os.path.join(tmp, "ngrok.yml")
    web_port = free_port()
    # A v2 config file: web_addr pinned so parallel test runs do not fight over
    # 4040, and a tunnel definition that `start --none` must accept but not start.
    with open(config_path, "w") as f:
        f.write(
            "web_addr: 127.0.0.1:%d\n"
            "log_level: info\n"
            "tunnels:\n"
            "  unused-definition:\n"
            "    proto: http\n"
            "    addr: 1\n" % web_port
        )

    log_lines = []
    cfg = conf.PyngrokConfig(
        ngrok_path=binary,
        ngrok_version="v2",
        config_path=config_path,
        startup_timeout=30,
        request_timeout=15,
        log_event_callback=lambda log: log_lines.append(log),
    )
    conf.set_default(cfg)

    def watchdog():
        print(f"FAIL - overall timeout of {OVERALL_TIMEOUT}s (pyngrok blocked, agent silent or hung?)",
              flush=True)
        failed.append("overall timeout")
        try:
            for p in list(process._current_processes.values()):
                p.proc.kill()
        finally:
            print(f"{passed} passed, {len(failed)} failed", flush=True)
            os._exit(1)

    timer = threading.Timer(OVERALL_TIMEOUT, watchdog)
    timer.daemon = True
    timer.start()

    upstream = start_http_upstream()
    http_port = upstream.server_address[1]
    echo = start_echo_server()
    echo_port = echo.getsockname()[1]

    try:
        run(binary, cfg, config_path, web_port, http_port, echo_port, log_lines)
    except Exception as e:  # anything unexpected is a failure, not a crash
        check("no unexpected exception", False, f"{type(e).__name__}: {e}")
    finally:
        try:
            ngrok.kill()
        except Exception:
            pass
        timer.cancel()
    return finish()


def run(binary, cfg, config_path, web_port, http_port, echo_port, log_lines):
    # -- connect(addr, "http") -------------------------------------------------
    try:
        t_http = ngrok.connect(str(http_port), "http")
    except PyngrokError as e:
        check("connect http", False, f"{type(e).__name__}: {e}; "
              f"ngrok_error={getattr(e, 'ngrok_error', None)!r}; logs="
              + repr([log.line for log in getattr(e, 'ngrok_logs', [])][-10:]))
        return
    check("connect http", True)

    proc = ngrok.get_ngrok_process()
    expected_argv = [binary, "start", "--none", "--log", "stdout", "--config", config_path]
    check("spawned command line", list(proc.proc.args) == expected_argv, repr(proc.proc.args))
    check("api_url from 'starting web service' addr=",
          proc.api_url == f"http://127.0.0.1:{web_port}", repr(proc.api_url))

    startup = [log for log in log_lines if log.msg]
    msgs = [log.msg for log in startup]
    for m in ("starting web service", "tunnel session started", "client session established"):
        check(f"startup log line: {m}", any(m in x for x in msgs), repr(msgs[:10]))
    bad = [log.line for log in log_lines
           if log.line and not (log.t and log.lvl != "NOTSET" and log.msg is not None)]
    check("every stdout line is logfmt with t= lvl= msg=", not bad, repr(bad[:5]))

    check("http: returned the http twin", t_http.proto == "http"
          and (t_http.public_url or "").startswith("http://"), f"{t_http.proto} {t_http.public_url}")
    check("http: twin named 'NAME (http)'", (t_http.name or "").endswith(" (http)"), repr(t_http.name))
    check("http: uri percent-encoded", " " not in (t_http.uri or " ")
          and (t_http.uri or "").startswith("/api/tunnels/"), repr(t_http.uri))
    check("http: config.addr normalised", t_http.config.get("addr") == f"http://localhost:{http_port}",
          repr(t_http.config))
    check("http: metrics present", isinstance(t_http.metrics, dict)
          and "conns" in t_http.metrics and "http" in t_http.metrics, repr(t_http.metrics))

    # -- fetch through the public http:// URL ----------------------------------
    path = "/through-tunnel?x=1"
    try:
        status, body = fetch(t_http.public_url, path)
        check("http: fetch through public URL", status == 200 and TOKEN in body and path in body,
              f"{status} {body[:200]!r}")
        host = urllib.parse.urlsplit(t_http.public_url).netloc
        check("http: upstream saw the request", any(p == path for p, _ in upstream_seen),
              repr(upstream_seen[-3:]) + f" public host {host}")
    except Exception as e:
        check("http: fetch through public URL", False, f"{type(e).__name__}: {e}")

    # -- get_tunnels() -----------------------------------------------------------
    tunnels = by_url(ngrok.get_tunnels())
    check("get_tunnels: lists the http URL", t_http.public_url in tunnels, repr(list(tunnels)))
    https_url = "https://" + urllib.parse.urlsplit(t_http.public_url).netloc.split(":")[0]
    twins = [u for u in tunnels if u.startswith(https_url)]
    base_name = (t_http.name or "").rsplit(" (http)", 1)[0]
    check("get_tunnels: https twin on the same host named NAME",
          len(twins) == 1 and tunnels[twins[0]].name == base_name and tunnels[twins[0]].proto == "https",
          repr([(u, t.name, t.proto) for u, t in tunnels.items()]))

    # -- connect(addr, "tcp") -----------------------------------------------------
    try:
        t_tcp = ngrok.connect(str(echo_port), "tcp")
        check("connect tcp", True)
    except PyngrokError as e:
        check("connect tcp", False, f"{type(e).__name__}: {e}")
        t_tcp = None
    if t_tcp is not None:
        check("tcp: public_url tcp://host:port", (t_tcp.public_url or "").startswith("tcp://")
              and urllib.parse.urlsplit(t_tcp.public_url).port is not None, repr(t_tcp.public_url))
        check("tcp: config.addr normalised", t_tcp.config.get("addr") == f"localhost:{echo_port}",
              repr(t_tcp.config))
        payload = TOKEN.encode() + os.urandom(200_000)
        try:
            got = tcp_roundtrip(t_tcp.public_url, payload)
            check("tcp: bytes round-trip through public address", got == payload,
                  f"sent {len(payload)} got {len(got)}")
        except Exception as e:
            check("tcp: bytes round-trip through public address", False, f"{type(e).__name__}: {e}")
        tunnels = by_url(ngrok.get_tunnels())
        check("get_tunnels: http, https twin and tcp listed", len(tunnels) == 3
              and t_tcp.public_url in tunnels and t_http.public_url in tunnels, repr(list(tunnels)))

    # -- disconnect() -------------------------------------------------------------
    ngrok.disconnect(t_http.public_url)
    tunnels = by_url(ngrok.get_tunnels())
    check("disconnect http: gone from get_tunnels", t_http.public_url not in tunnels, repr(list(tunnels)))
    check("disconnect http: https twin left alone", any(u.startswith(https_url) for u in tunnels),
          repr(list(tunnels)))
    res = eventually(lambda: fetch(t_http.public_url, "/after-disconnect")[0] == 404)
    check("disconnect http: public http URL answers 404", res is True,
          repr(fetch(t_http.public_url, "/after-disconnect")) if res is not True else "")

    if t_tcp is not None:
        ngrok.disconnect(t_tcp.public_url)
        tunnels = by_url(ngrok.get_tunnels())
        check("disconnect tcp: gone from get_tunnels", t_tcp.public_url not in tunnels, repr(list(tunnels)))
        check("disconnect tcp: public address no longer reaches upstream",
              eventually(lambda: tcp_is_closed(t_tcp.public_url)) is True)

    # -- kill() -------------------------------------------------------------------
    child = proc.proc
    ngrok.kill()
    check("kill: process exited", child.poll() is not None, f"poll={child.poll()}")
    check("kill: pyngrok no longer tracks a process", not process.is_process_running(binary))

    def api_down():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/tunnels", timeout=2)
            return False
        except OSError:
            return True

    check("kill: local API stopped answering", eventually(api_down, 5) is True)


if __name__ == "__main__":
    sys.exit(main())
