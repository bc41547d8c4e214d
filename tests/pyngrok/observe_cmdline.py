#!/usr/bin/env python3
"""Record what pyngrok 7.5.x (ngrok_version="v2") asks of the agent binary,
without any agent: ngrok_path points at a small shell script that logs its
argv and environment, prints a canned reply chosen by OBSERVE_MODE, and exits.

Usage: observe_cmdline.py [PATH_TO_BURROW]

Without an argument only pyngrok's side is observed. With one, the two
commands that need no tunnels (`--version` through ngrok.get_version() and
`authtoken` through ngrok.set_auth_token()) are also run against that binary.
Prints one line per check, then `N passed, M failed`; exits non-zero on failure.
Needs: pip install 'pyngrok>=7.5,<7.6'.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error

TMP = tempfile.mkdtemp(prefix="observe-pyngrok-")
# pyngrok computes its default config path at import time from XDG_CONFIG_HOME;
# keep it away from the real home directory.
os.environ["XDG_CONFIG_HOME"] = os.path.join(TMP, "xdg")
os.environ.pop("NGROK_AUTHTOKEN", None)
os.environ.pop("NGROK_API_KEY", None)

from pyngrok import __version__ as PYNGROK_VERSION  # noqa: E402
from pyngrok import conf, ngrok, process  # noqa: E402
from pyngrok.exception import PyngrokError, PyngrokNgrokError  # noqa: E402

LOG = os.path.join(TMP, "calls.log")
STUB = os.path.join(TMP, "ngrok")
T = "2026-01-02T03:04:05+0000"

STUB_SRC = r"""#!/bin/sh
n=$(grep -c '^CALL' "$OBSERVE_LOG" 2>/dev/null); n=${n:-0}
{ echo CALL; for a in "$@"; do printf 'ARG %s\n' "$a"; done; } >> "$OBSERVE_LOG"
env | sort > "$OBSERVE_LOG.env.$n"
case "$OBSERVE_MODE" in
  silent-exit) exit 1 ;;
  error|error-fast)
         echo 't=%(t)s lvl=info msg="no configuration paths supplied"'
         echo 't=%(t)s lvl=eror msg="failed to start web service" obj=web err="listen tcp 127.0.0.1:4040: bind: address already in use"'
         [ "$OBSERVE_MODE" = error ] && sleep 0.5
         exit 1 ;;
  crit) echo 't=%(t)s lvl=crit msg="command failed" err="authentication failed: bad token"'; exit 1 ;;
  error-no-err) echo 't=%(t)s lvl=eror msg="something broke"'; exit 1 ;;
  no-api) echo "t=%(t)s lvl=info msg=\"starting web service\" obj=web addr=127.0.0.1:$OBSERVE_PORT"
          echo 't=%(t)s lvl=info msg="tunnel session started" obj=tunnels.session'
          echo 't=%(t)s lvl=info msg="client session established" obj=csess id=0123abcd'
          exec sleep 30 ;;
  slow-silent) sleep 3; exit 1 ;;
  authtoken-ok) echo "Authtoken saved to configuration file: $OBSERVE_CFG"; exit 0 ;;
  authtoken-quiet) exit 0 ;;
  authtoken-fail) echo 'ERROR: bad' ; exit 1 ;;
  version) echo 'burrow version 1.2.3'; exit 0 ;;
esac
exit 1
""".replace("%(t)s", T)

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


def calls():
    """[(argv, env_dict)] for every invocation of the stub so far."""
    if not os.path.exists(LOG):
        return []
    out, cur = [], None
    for line in open(LOG).read().splitlines():
        if line == "CALL":
            cur = []
            out.append(cur)
        elif line.startswith("ARG "):
            cur.append(line[4:])
    res = []
    for i, argv in enumerate(out):
        env = {}
        for line in open(f"{LOG}.env.{i}").read().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
        res.append((argv, env))
    return res


def reset(mode, **extra):
    if os.path.exists(LOG):
        os.remove(LOG)
    for f in os.listdir(TMP):
        if f.startswith("calls.log.env."):
            os.remove(os.path.join(TMP, f))
    os.environ["OBSERVE_MODE"] = mode
    for k, v in extra.items():
        os.environ[k] = v
    # forget any process or cached config from a previous scenario
    for path in list(process._current_processes):
        process.kill_process(path)
    ngrok._current_tunnels.clear()


def cfg(config_path, **kw):
    kw.setdefault("startup_timeout", 10)
    return conf.PyngrokConfig(ngrok_path=STUB, ngrok_version="v2", config_path=config_path, **kw)


def raised(fn):
    try:
        fn()
        return None
    except BaseException as e:  # noqa: B902 - we record whatever pyngrok lets out
        return e


def main():
    real = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
    with open(STUB, "w") as f:
        f.write(STUB_SRC)
    os.chmod(STUB, 0o755)
    os.environ["OBSERVE_LOG"] = LOG
    os.environ["OBSERVE_MARKER"] = "marker-%d" % os.getpid()
    print(f"pyngrok {PYNGROK_VERSION}", flush=True)
    check("pyngrok is 7.5.x", PYNGROK_VERSION.startswith("7.5."), PYNGROK_VERSION)

    # 1. connect(): the one and only spawn; config_path missing -> pyngrok writes "{}"
    cpath = os.path.join(TMP, "cfg", "ngrok.yml")
    reset("silent-exit")
    e = raised(lambda: ngrok.connect("8080", "http", pyngrok_config=cfg(cpath)))
    c = calls()
    check("connect spawns exactly once (no --version, no config upgrade)", len(c) == 1, repr(c))
    argv = c[0][0] if c else None
    check("start command line", argv == ["start", "--none", "--log", "stdout", "--config", cpath], repr(argv))
    check("environment passed through unchanged", c and c[0][1].get("OBSERVE_MARKER") == os.environ["OBSERVE_MARKER"]
          and "NGROK_AUTHTOKEN" not in c[0][1])
    check("missing config_path file is created containing '{}'",
          os.path.exists(cpath) and open(cpath).read() == "{}\n",
          repr(open(cpath).read()) if os.path.exists(cpath) else "missing")
    check("silent exit -> PyngrokNgrokError 'unable to start'",
          isinstance(e, PyngrokNgrokError) and "unable to start" in str(e) and e.ngrok_error is None, repr(e))

    # 2. auth_token and region become flags, in this order
    reset("silent-exit")
    raised(lambda: ngrok.connect("8080", "tcp", pyngrok_config=cfg(cpath, auth_token="TOK", region="eu")))
    argv = calls()[0][0] if calls() else None
    check("auth_token/region flags", argv == ["start", "--none", "--log", "stdout", "--config", cpath,
                                              "--authtoken", "TOK", "--region", "eu"], repr(argv))

    # 3. no config_path: no --config, default file under $XDG_CONFIG_HOME/ngrok created as '{}'
    reset("silent-exit")
    raised(lambda: ngrok.connect("8080", "http", pyngrok_config=cfg(None)))
    argv = calls()[0][0] if calls() else None
    default_cfg = os.path.join(os.environ["XDG_CONFIG_HOME"], "ngrok", "ngrok.yml")
    check("no config_path: no --config flag", argv == ["start", "--none", "--log", "stdout"], repr(argv))
    check("no config_path: default config written as '{}'",
          os.path.exists(default_cfg) and open(default_cfg).read() == "{}\n")

    # 4. error detection: lvl=eror / lvl=crit with err= -> startup_error = err value.
    # pyngrok checks poll() after each line it reads: when the agent has already
    # exited, lines still in the pipe are never read. So an agent that prints
    # other lines, then the error, then exits at once, often loses the error.
    missed = 0
    for _ in range(5):
        reset("error-fast")
        e = raised(lambda: ngrok.connect("8080", "http", pyngrok_config=cfg(cpath)))
        missed += not (isinstance(e, PyngrokNgrokError) and e.ngrok_error)
    print(f"note - error line then immediate exit: pyngrok missed the err in {missed}/5 runs", flush=True)
    reset("error")
    e = raised(lambda: ngrok.connect("8080", "http", pyngrok_config=cfg(cpath)))
    want = "listen tcp 127.0.0.1:4040: bind: address already in use"
    check("lvl=eror err=..., exit 0.5 s later -> PyngrokNgrokError carrying err",
          isinstance(e, PyngrokNgrokError) and e.ngrok_error == want
          and str(e) == f"The ngrok process errored on start: {want}.", repr(e))
    check("the error's logs hold the parsed lines with lvl ERROR",
          isinstance(e, PyngrokNgrokError) and [x.lvl for x in e.ngrok_logs] == ["INFO", "ERROR"],
          repr(getattr(e, "ngrok_logs", None)))
    reset("crit")
    e = raised(lambda: ngrok.connect("8080", "http", pyngrok_config=cfg(cpath)))
    check("lvl=crit err=... -> PyngrokNgrokError carrying err",
          isinstance(e, PyngrokNgrokError) and e.ngrok_error == "authentication failed: bad token", repr(e))
    reset("error-no-err")
    e = raised(lambda: ngrok.connect("8080", "http", pyngrok_config=cfg(cpath)))
    check("lvl=eror without err= -> only the generic 'unable to start'",
          isinstance(e, PyngrokNgrokError) and e.ngrok_error is None and "unable to start" in str(e), repr(e))

    # 5. all three lines but nothing listening at addr= -> raw URLError escapes connect()
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    reset("no-api", OBSERVE_PORT=str(dead_port))
    e = raised(lambda: ngrok.connect("8080", "http", pyngrok_config=cfg(cpath)))
    check("three lines, API not answering -> urllib URLError (not a PyngrokError)",
          isinstance(e, urllib.error.URLError) and not isinstance(e, PyngrokError), repr(e))
    # pyngrok left that process registered and running: kill it as ngrok.kill() would
    p = process._current_processes.get(STUB)
    check("...and the agent is left running, tracked by pyngrok", p is not None and p.proc.poll() is None)
    ngrok.kill(pyngrok_config=cfg(cpath))

    # 6. startup_timeout is only checked between lines: a silent agent blocks pyngrok
    reset("slow-silent")
    t0 = time.time()
    raised(lambda: ngrok.connect("8080", "http", pyngrok_config=cfg(cpath, startup_timeout=1)))
    took = time.time() - t0
    check("startup_timeout does not interrupt a silent agent (waited for its exit)", took >= 2.5, f"{took:.1f}s")

    # 7. config validation happens in pyngrok before any spawn
    for body, what in [("log_format: json\n", "log_format json"),
                       ("web_addr: false\n", "web_addr false"),
                       ("log_level: warn\n", "log_level warn")]:
        bad = os.path.join(TMP, "bad.yml")
        with open(bad, "w") as f:
            f.write(body)
        reset("silent-exit")
        e = raised(lambda: ngrok.connect("8080", "http", pyngrok_config=cfg(bad)))
        check(f"config {what} rejected by pyngrok without spawning",
              isinstance(e, PyngrokError) and not calls(), repr(e))

    # 8. set_auth_token: argv, success detection on stdout
    reset("authtoken-ok", OBSERVE_CFG=cpath)
    e = raised(lambda: ngrok.set_auth_token("TOKEN123", pyngrok_config=cfg(cpath)))
    argv = calls()[0][0] if calls() else None
    check("set_auth_token command line",
          argv == ["authtoken", "TOKEN123", "--log", "stdout", "--config", cpath], repr(argv))
    check("'Authtoken saved' on stdout -> success", e is None, repr(e))
    reset("authtoken-quiet")
    e = raised(lambda: ngrok.set_auth_token("TOKEN123", pyngrok_config=cfg(cpath)))
    check("exit 0 without 'Authtoken saved' -> PyngrokNgrokError", isinstance(e, PyngrokNgrokError), repr(e))
    reset("authtoken-fail")
    e = raised(lambda: ngrok.set_auth_token("TOKEN123", pyngrok_config=cfg(cpath)))
    check("non-zero exit -> CalledProcessError", isinstance(e, subprocess.CalledProcessError), repr(e))

    # 9. get_version: `--version`, stdout+stderr, split on "version "
    reset("version")
    try:
        v = ngrok.get_version(pyngrok_config=cfg(cpath))
    except Exception as e:
        v = e
    argv = calls()[0][0] if calls() else None
    check("get_version runs `--version`", argv == ["--version"], repr(argv))
    check("get_version takes the text after 'version '", v == ("1.2.3", PYNGROK_VERSION), repr(v))

    # 10. optional: the real binary, for the commands that need no tunnels
    if real:
        rc = conf.PyngrokConfig(ngrok_path=real, ngrok_version="v2", config_path=os.path.join(TMP, "real.yml"))
        e = raised(lambda: ngrok.get_version(pyngrok_config=rc))
        check("real binary: ngrok.get_version()", e is None, repr(e))
        if e is None:
            print(f"   version: {ngrok.get_version(pyngrok_config=rc)}", flush=True)
        with open(rc.config_path, "w") as f:
            f.write("web_addr: 127.0.0.1:4999\n")
        e = raised(lambda: ngrok.set_auth_token("REALTOKEN", pyngrok_config=rc))
        check("real binary: ngrok.set_auth_token()", e is None, repr(e))
        text = open(rc.config_path).read()
        check("real binary: token saved, other keys kept",
              "REALTOKEN" in text and "127.0.0.1:4999" in text, repr(text))

    print(f"{passed} passed, {len(failed)} failed", flush=True)
    if failed:
        print("failed: " + "; ".join(failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
