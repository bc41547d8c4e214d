# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are read by the scripts that source it
# Helpers shared by benches/peers.sh and benches/syscalls.sh: installing the peers and
# the load tools, starting nginx, iperf3, rathole, bore and Burrow on loopback, and
# tearing all of it down. Sourced, not run.
#
# Every process started here is recorded by its pid and ended by that pid, so a run
# never touches processes it did not start. Every wait is bounded.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The peers live beside the build, where `cargo clean` removes them with the rest.
PEERS_ROOT="$ROOT/target/peers"
RELEASE="${CARGO_TARGET_DIR:-$ROOT/target}/release"
RATHOLE_VERSION=0.5.0
BORE_VERSION=0.6.0
# bore's control port is not configurable in bore-cli 0.6.0.
BORE_CONTROL_PORT=7835

PIDS=()
WORK=""

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Debian packages, installed only when the command they provide is missing.
# Arguments: pairs of COMMAND PACKAGE.
install_debian() {
  local need=()
  while (($#)); do
    command -v "$1" >/dev/null 2>&1 || need+=("$2")
    shift 2
  done
  ((${#need[@]})) || return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  log "installing ${need[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
}

# rathole and bore at fixed versions, built from crates.io with their own lock files so
# that every run measures the same code; skipped when already installed.
install_peers() {
  if [ ! -x "$PEERS_ROOT/bin/rathole" ]; then
    log "installing rathole $RATHOLE_VERSION into $PEERS_ROOT"
    cargo install --locked --root "$PEERS_ROOT" "rathole@$RATHOLE_VERSION" ||
      install_rathole_time_fix
  fi
  if [ ! -x "$PEERS_ROOT/bin/bore" ]; then
    log "installing bore-cli $BORE_VERSION into $PEERS_ROOT"
    cargo install --locked --root "$PEERS_ROOT" "bore-cli@$BORE_VERSION"
  fi
}

# rathole 0.5.0's lock file pins `time` 0.3.29, which current Rust no longer compiles
# (E0282, type annotations needed in time's format_description parser; fixed in time
# 0.3.35). Build the same published crate with its own lock file, `time` alone moved to
# 0.3.36 (which brings its own small dependencies along), every other dependency as
# locked. The failed install above left the crate's source in cargo's registry cache.
install_rathole_time_fix() {
  local src copy
  local found=("${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rathole-$RATHOLE_VERSION")
  src=${found[0]}
  [ -d "$src" ] || die "rathole $RATHOLE_VERSION failed to install and its source is not in cargo's registry cache"
  log "rathole $RATHOLE_VERSION does not build as locked; building it with time 0.3.36"
  # Outside this repository, or cargo would take the copy for a member of its workspace.
  copy="$(mktemp -d "${TMPDIR:-/tmp}/rathole-build.XXXXXX")"
  cp -a "$src/." "$copy"
  cargo update --manifest-path "$copy/Cargo.toml" -p time --precise 0.3.36
  cargo install --locked --root "$PEERS_ROOT" --path "$copy" --target-dir "$copy/target"
  rm -rf "$copy"
}

# The release binaries measured.
build_burrow() {
  log "building Burrow (release)"
  (cd "$ROOT" && cargo build --release --workspace --bins)
  # The commit measured, for the table's notes ("-dirty" with uncommitted changes).
  BURROW_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
  if [ ! -x "$RELEASE/burrowd" ] || [ ! -x "$RELEASE/burrow" ]; then
    die "no burrowd/burrow in $RELEASE"
  fi
}

# The tunnels under test must see no proxy: the agent honours the proxy variables when it
# dials the relay. Cleared only after the installs, which may need them.
clear_proxy_env() {
  unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
}

# A scratch directory for configs, logs, certificates and state, and the teardown that
# ends every recorded process and removes it, whatever way the script exits.
setup_work() {
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/burrow-peers.XXXXXX")"
  # nginx's worker drops root privileges and must still read the document root.
  chmod 755 "$WORK"
  mkdir -p "$WORK/home"
  trap teardown EXIT
  trap 'exit 130' INT TERM
}

teardown() {
  local status=$?
  stop_pids "${PIDS[@]}"
  if [ -n "$WORK" ]; then
    if [ "${KEEP_WORK:-0}" = 1 ]; then
      log "logs kept in $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$status"
}

# Ends the given recorded processes: TERM, up to 5 s to exit, then KILL.
stop_pids() {
  local pid left=() keep=() i
  for pid in "$@"; do
    kill -TERM "$pid" 2>/dev/null && left+=("$pid")
  done
  for ((i = 0; i < 50 && ${#left[@]}; i++)); do
    local still=()
    for pid in "${left[@]}"; do
      kill -0 "$pid" 2>/dev/null && still+=("$pid")
    done
    left=("${still[@]+"${still[@]}"}")
    ((${#left[@]})) && sleep 0.1
  done
  for pid in "${left[@]+"${left[@]}"}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in "$@"; do
    wait "$pid" 2>/dev/null || true
  done
  # Forget them, so the final teardown never signals a pid that may have been reused.
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
    [[ " $* " == *" $pid "* ]] || keep+=("$pid")
  done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# Starts a command in the background with its output in $WORK/NAME.log; its pid is in
# $LAST_PID and recorded for the teardown.
start_bg() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# Whether something listens on 127.0.0.1 (or any address) at PORT, read from /proc
# rather than by connecting, which would open a tunnel connection as a side effect.
listening() {
  local hex
  hex=$(printf ':%04X' "$1")
  awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# A port no socket uses, below the ephemeral range so that outgoing connections of other
# programs cannot take it meanwhile; never the same twice in a run.
GIVEN_PORTS=" "
free_port() {
  local port i
  for ((i = 0; i < 1000; i++)); do
    port=$((20000 + RANDOM % 12000))
    [[ "$GIVEN_PORTS" == *" $port "* ]] && continue
    local hex
    hex=$(printf ':%04X' "$port")
    if ! awk -v p="$hex" 'substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
      /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      GIVEN_PORTS+="$port "
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

# Waits (at most SECS, default 30) for a listener on PORT; fails early if PID exits.
wait_listening() {
  local port=$1 pid=$2 what=$3 secs=${4:-30} i
  for ((i = 0; i < secs * 10; i++)); do
    listening "$port" && return 0
    kill -0 "$pid" 2>/dev/null || die "$what exited: $(tail -n 5 "$WORK"/*.log 2>/dev/null | tail -n 20)"
    sleep 0.1
  done
  die "$what did not listen on $port within ${secs}s"
}

# Waits (at most 60 s) for a line matching REGEX in $WORK/NAME.log and prints it.
wait_line() {
  local name=$1 regex=$2 pid=$3 i line
  for ((i = 0; i < 600; i++)); do
    line=$(grep -E -m1 -- "$regex" "$WORK/$name.log" 2>/dev/null || true)
    if [ -n "$line" ]; then
      echo "$line"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "$name exited: $(tail -n 20 "$WORK/$name.log")"
    sleep 0.1
  done
  die "$name printed no line matching '$regex' within 60s: $(tail -n 20 "$WORK/$name.log")"
}

# ---------------------------------------------------------------------------------------
# Upstreams
# ---------------------------------------------------------------------------------------

# nginx with one worker serving a 1 KiB file at /1k.bin, access log off, and keep-alive
# connections that last the whole run (the default closes one after 1000 requests, which
# would measure the tunnels' connection setup instead of their request path).
start_nginx() {
  NGINX_PORT=$(free_port)
  mkdir -p "$WORK/nginx/www" "$WORK/nginx/tmp"
  head -c 1024 /dev/zero | tr '\0' x >"$WORK/nginx/www/1k.bin"
  cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $WORK/nginx/tmp;
  proxy_temp_path $WORK/nginx/tmp;
  fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp;
  scgi_temp_path $WORK/nginx/tmp;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/nginx/www;
  }
}
EOF
  chmod -R a+rX "$WORK/nginx"
  start_bg nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
  NGINX_PID=$LAST_PID
  wait_listening "$NGINX_PORT" "$NGINX_PID" nginx
}

start_iperf3() {
  IPERF_PORT=$(free_port)
  start_bg iperf3-server iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT"
  IPERF_PID=$LAST_PID
  wait_listening "$IPERF_PORT" "$IPERF_PID" "iperf3 server"
}

# ---------------------------------------------------------------------------------------
# Tunnels
# ---------------------------------------------------------------------------------------

# A CA and a server certificate for localhost signed by it, as rathole's TLS transport
# wants them: PKCS#12 (certificate and key) on the server, the CA on the client. P-256
# keys, like the CA burrowd makes for itself.
make_rathole_certs() {
  local d="$WORK/rathole"
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=peers bench CA" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
    -CAcreateserial -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
  openssl pkcs12 -export -inkey "$d/server.key" -in "$d/server.pem" -certfile "$d/ca.pem" \
    -passout pass:bench -out "$d/server.p12"
}

# rathole server and client with the TLS transport, forwarding two services: nginx and
# the iperf3 server. Public ports in RATHOLE_HTTP_PORT and RATHOLE_IPERF_PORT.
start_rathole() {
  make_rathole_certs
  local d="$WORK/rathole" control
  control=$(free_port)
  RATHOLE_HTTP_PORT=$(free_port)
  RATHOLE_IPERF_PORT=$(free_port)
  cat >"$d/server.toml" <<EOF
[server]
bind_addr = "127.0.0.1:$control"
default_token = "bench"

[server.transport]
type = "tls"

[server.transport.tls]
pkcs12 = "$d/server.p12"
pkcs12_password = "bench"

[server.services.http]
bind_addr = "127.0.0.1:$RATHOLE_HTTP_PORT"

[server.services.iperf]
bind_addr = "127.0.0.1:$RATHOLE_IPERF_PORT"
EOF
  cat >"$d/client.toml" <<EOF
[client]
remote_addr = "127.0.0.1:$control"
default_token = "bench"

[client.transport]
type = "tls"

[client.transport.tls]
trusted_root = "$d/ca.pem"
hostname = "localhost"

[client.services.http]
local_addr = "127.0.0.1:$NGINX_PORT"

[client.services.iperf]
local_addr = "127.0.0.1:$IPERF_PORT"
EOF
  # Logging at info writes a line per connection; the peers are measured quiet, as
  # Burrow is.
  start_bg rathole-server env RUST_LOG=error "$PEERS_ROOT/bin/rathole" --server "$d/server.toml"
  RATHOLE_SERVER_PID=$LAST_PID
  wait_listening "$control" "$RATHOLE_SERVER_PID" "rathole server"
  start_bg rathole-client env RUST_LOG=error "$PEERS_ROOT/bin/rathole" --client "$d/client.toml"
  RATHOLE_CLIENT_PID=$LAST_PID
  # The server opens a service's port once the client's control channel for it is up.
  wait_listening "$RATHOLE_HTTP_PORT" "$RATHOLE_CLIENT_PID" "rathole (http service)"
  wait_listening "$RATHOLE_IPERF_PORT" "$RATHOLE_CLIENT_PID" "rathole (iperf service)"
}

# bore server and one client per upstream (bore forwards one port per client). No TLS:
# bore has none. Public ports in BORE_HTTP_PORT and BORE_IPERF_PORT; with the argument
# 0, only the http one.
start_bore() {
  local with_iperf=${1:-1}
  listening "$BORE_CONTROL_PORT" && die "port $BORE_CONTROL_PORT (bore's fixed control port) is taken"
  BORE_HTTP_PORT=$(free_port)
  start_bg bore-server env RUST_LOG=warn "$PEERS_ROOT/bin/bore" server --bind-addr 127.0.0.1 \
    --min-port 20000 --max-port 32767
  BORE_SERVER_PID=$LAST_PID
  wait_listening "$BORE_CONTROL_PORT" "$BORE_SERVER_PID" "bore server"
  start_bg bore-http env RUST_LOG=warn "$PEERS_ROOT/bin/bore" local "$NGINX_PORT" \
    --local-host 127.0.0.1 --to 127.0.0.1 --port "$BORE_HTTP_PORT"
  BORE_HTTP_PID=$LAST_PID
  wait_listening "$BORE_HTTP_PORT" "$BORE_HTTP_PID" "bore client (http)"
  if [ "$with_iperf" = 1 ]; then
    BORE_IPERF_PORT=$(free_port)
    start_bg bore-iperf env RUST_LOG=warn "$PEERS_ROOT/bin/bore" local "$IPERF_PORT" \
      --local-host 127.0.0.1 --to 127.0.0.1 --port "$BORE_IPERF_PORT"
    BORE_IPERF_PID=$LAST_PID
    wait_listening "$BORE_IPERF_PORT" "$BORE_IPERF_PID" "bore client (iperf)"
  fi
}

# burrowd on system-chosen loopback ports with its own CA in a scratch state directory;
# sets BURROWD_PID, BURROWD_CONTROL (agents), BURROWD_HTTP and BURROWD_CA.
start_burrowd() {
  local state="$WORK/burrowd-state"
  mkdir -p "$state"
  # Open relay whatever the environment says: the agents here carry no token.
  start_bg burrowd env -u BURROWD_AUTH_TOKENS HOME="$WORK/home" "$RELEASE/burrowd" \
    --domain localhost --http-addr 127.0.0.1:0 --https-addr 127.0.0.1:0 \
    --control-addr 127.0.0.1:0 --tcp-bind 127.0.0.1 --tcp-ports 0-0 \
    --log-level error --admin-addr off --state-dir "$state"
  BURROWD_PID=$LAST_PID
  BURROWD_CONTROL=$(wait_line burrowd '^ +agents ' "$BURROWD_PID" | awk '{print $2}')
  BURROWD_HTTP=$(wait_line burrowd '^ +http ' "$BURROWD_PID" | awk '{print $2}')
  wait_line burrowd '^ +ca ' "$BURROWD_PID" >/dev/null
  BURROWD_CA="$state/ca.pem"
}

# A `burrow` agent (scratch HOME, so no ~/.burrow/burrow.yml) for PROTO (http or tcp) to
# LOCAL, through the burrowd started above, or through the agent's embedded relay when
# SERVER is "embedded". Sets LAST_PID and PUBLIC: for tcp the public port, for http
# "HOST PORT" of the plain-HTTP URL.
start_agent() {
  local name=$1 proto=$2 local_addr=$3 server=${4:-burrowd} line url
  local session=(-server "$BURROWD_CONTROL" -root-cas "$BURROWD_CA")
  [ "$server" = embedded ] && session=()
  start_bg "$name" env HOME="$WORK/home" "$RELEASE/burrow" "$proto" "$local_addr" \
    "${session[@]+"${session[@]}"}" -log false
  local pid=$LAST_PID
  if [ "$proto" = tcp ]; then
    line=$(wait_line "$name" '^Forwarding +tcp://' "$pid")
    url=$(awk '{print $2}' <<<"$line")
    PUBLIC=${url##*:}
  else
    line=$(wait_line "$name" '^Forwarding +http://' "$pid")
    url=$(awk '{print $2}' <<<"$line")
    url=${url#http://}
    PUBLIC="${url%:*} ${url##*:}"
  fi
  LAST_PID=$pid
}
