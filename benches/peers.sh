#!/usr/bin/env bash
# Burrow against its peers, in one run on this machine: nginx (one worker, a 1 KiB file)
# and an iperf3 server reached direct, through rathole 0.5.0 with its TLS transport,
# through bore 0.6.0 (no TLS), and through Burrow (burrowd and a burrow agent as separate
# processes, TLS on the agent hop) with a tcp tunnel (like for like with the peers) and an
# http tunnel (the product's main path).
#
# Measures: `wrk -t2 -c64 --latency` and `wrk -t1 -c1 --latency` (requests/s, p50, p99)
# and `iperf3` one stream, client to server through the tunnel (MB/s). Three repetitions,
# interleaved so that drift in the machine's load hits every system alike; prints the
# medians as one markdown table with ratios to direct and to rathole-tls.
#
# Usage: benches/peers.sh            (10 s per wrk run, 5 s per iperf3 run, 3 repetitions)
#        PEERS_QUICK=1 benches/peers.sh   (2 s each, one repetition: checks the script)
#        KEEP_WORK=1 keeps the logs and configs of the run.
set -euo pipefail
# shellcheck source=benches/common.sh
source "$(dirname "$0")/common.sh"

if [ "${PEERS_QUICK:-0}" = 1 ]; then
  WRK_SECS=2 IPERF_SECS=2 REPS=1
else
  WRK_SECS=10 IPERF_SECS=5 REPS=3
fi

# The tools, the peers and the release build, each only when missing or stale.
install_debian wrk wrk iperf3 iperf3 nginx nginx-light openssl openssl
install_peers
build_burrow
clear_proxy_env

setup_work
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

# Upstreams first, then every tunnel, all kept up for the whole run so that each
# repetition measures the same processes.
log "starting nginx, iperf3, rathole, bore, burrowd and the agents"
start_nginx
start_iperf3
start_rathole
start_bore 1
start_burrowd
start_agent agent-tcp-http tcp "127.0.0.1:$NGINX_PORT"
BURROW_TCP_HTTP_PORT=$PUBLIC
start_agent agent-tcp-iperf tcp "127.0.0.1:$IPERF_PORT"
BURROW_TCP_IPERF_PORT=$PUBLIC
start_agent agent-http http "127.0.0.1:$NGINX_PORT"
read -r BURROW_HTTP_HOST _ <<<"$PUBLIC"
BURROW_HTTP_PORT=${BURROWD_HTTP##*:}

# Latency as wrk prints it (52.10us, 1.23ms, 1.01s, 1.50m) in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.3f", n
  }'
}

# Records one figure: SYSTEM MEASURE VALUE (NA when the run failed).
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }

# One wrk run: SYSTEM CONNS THREADS PORT [HOST]. A run that gets any non-2xx answer, or
# none at all, records NA rather than a figure that measured errors.
run_wrk() {
  local system=$1 conns=$2 threads=$3 port=$4 host=${5:-} out="$WORK/wrk.out"
  local hdr=()
  [ -n "$host" ] && hdr=(-H "Host: $host")
  if ! timeout $((WRK_SECS + 30)) wrk -t"$threads" -c"$conns" -d"${WRK_SECS}s" --latency \
    "${hdr[@]+"${hdr[@]}"}" "http://127.0.0.1:$port/1k.bin" >"$out" 2>&1 ||
    grep -q 'Non-2xx' "$out" || ! grep -q '^Requests/sec' "$out"; then
    log "wrk against $system ($conns conns) failed: $(tr '\n' ' ' <"$out")"
    record "$system" "rps$conns" NA
    record "$system" "p50_$conns" NA
    record "$system" "p99_$conns" NA
    return 0
  fi
  grep -q 'Socket errors' "$out" && log "$system, $conns conns: $(grep 'Socket errors' "$out")"
  record "$system" "rps$conns" "$(awk '/^Requests\/sec/ {print $2}' "$out")"
  record "$system" "p50_$conns" "$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")"
  record "$system" "p99_$conns" "$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
}

# One iperf3 run, one stream, client to server: SYSTEM PORT. MB/s = 10^6 bytes/s, as
# received by the server.
run_iperf() {
  local system=$1 port=$2 out="$WORK/iperf.json" bps
  if timeout $((IPERF_SECS + 30)) iperf3 -c 127.0.0.1 -p "$port" -t "$IPERF_SECS" -J >"$out" 2>&1; then
    bps=$(awk '/"sum_received"/ {s = 1} s && /"bits_per_second"/ {gsub(/[,]/, "", $2); print $2; exit}' "$out")
  fi
  if [ -n "${bps:-}" ]; then
    record "$system" mbs "$(awk -v b="$bps" 'BEGIN {printf "%.1f", b / 8 / 1e6}')"
  else
    log "iperf3 through $system failed: $(grep -m1 '"error"' "$out" || head -c 300 "$out")"
    record "$system" mbs NA
  fi
}

# All measures for one system: SYSTEM HTTP_PORT IPERF_PORT (or -) [HOST]. A short
# untimed wrk first opens the tunnel's connections and lets its windows grow.
measure() {
  local system=$1 http_port=$2 iperf_port=$3 host=${4:-}
  log "  $system"
  local hdr=()
  [ -n "$host" ] && hdr=(-H "Host: $host")
  timeout 30 wrk -t2 -c64 -d1s "${hdr[@]+"${hdr[@]}"}" "http://127.0.0.1:$http_port/1k.bin" >/dev/null 2>&1 || true
  run_wrk "$system" 64 2 "$http_port" "$host"
  run_wrk "$system" 1 1 "$http_port" "$host"
  [ "$iperf_port" = - ] || run_iperf "$system" "$iperf_port"
}

for ((rep = 1; rep <= REPS; rep++)); do
  log "repetition $rep of $REPS (${WRK_SECS}s per wrk run, ${IPERF_SECS}s per iperf3 run)"
  measure direct "$NGINX_PORT" "$IPERF_PORT"
  measure rathole-tls "$RATHOLE_HTTP_PORT" "$RATHOLE_IPERF_PORT"
  measure bore "$BORE_HTTP_PORT" "$BORE_IPERF_PORT"
  measure burrow-tcp "$BURROW_TCP_HTTP_PORT" "$BURROW_TCP_IPERF_PORT"
  measure burrow-http "$BURROW_HTTP_PORT" - "$BURROW_HTTP_HOST"
done

# Every process must have lasted the run: a tunnel that died would leave NA figures.
for pid in "${PIDS[@]}"; do
  kill -0 "$pid" 2>/dev/null || log "warning: process $pid exited during the run"
done
LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)

# Medians per system and measure, and their ratios to direct and to rathole-tls. For
# latencies a ratio above 1 is slower; for rates, below 1 is slower.
awk -F'\t' -v reps="$REPS" '
  function median(list,    a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function ratio(v, base) { return (v == "" || base == "" || base == 0) ? "" : sprintf("%.2fx", v / base) }
  {
    if ($3 == "NA") { failed[$1, $2]++; next }
    vals[$1, $2] = vals[$1, $2] " " $3
  }
  END {
    nm = split("rps64 p50_64 p99_64 rps1 p50_1 p99_1 mbs", ms, " ")
    ns = split("direct rathole-tls bore burrow-tcp burrow-http", ss, " ")
    label["rps64"] = "req/s, 64 conns"; label["p50_64"] = "p50 ms, 64 conns"; label["p99_64"] = "p99 ms, 64 conns"
    label["rps1"] = "req/s, 1 conn"; label["p50_1"] = "p50 ms, 1 conn"; label["p99_1"] = "p99 ms, 1 conn"
    label["mbs"] = "iperf3 MB/s, 1 stream"
    for (i = 1; i <= nm; i++) for (j = 1; j <= ns; j++) {
      k = ss[j] SUBSEP ms[i]
      if (k in vals) med[k] = median(vals[k])
    }
    print "| measure | system | median | vs direct | vs rathole-tls | runs |"
    print "|---|---|---:|---:|---:|---|"
    for (i = 1; i <= nm; i++) for (j = 1; j <= ns; j++) {
      m = ms[i]; s = ss[j]; k = s SUBSEP m
      if (!(k in med) && !(k in failed)) continue
      v = (k in med) ? med[k] : ""
      d = (("direct" SUBSEP m) in med) ? med["direct", m] : ""
      r = (("rathole-tls" SUBSEP m) in med) ? med["rathole-tls", m] : ""
      runs = (k in vals) ? substr(vals[k], 2) : ""
      if (k in failed) runs = runs (runs == "" ? "" : " ") "(" failed[k] " failed)"
      fmt = (m ~ /^p/) ? "%.3f" : "%.1f"
      printf "| %s | %s | %s | %s | %s | %s |\n", label[m], s, v == "" ? "failed" : sprintf(fmt, v), ratio(v, d), ratio(v, r), runs
    }
    # The targets of the data-path work, for both Burrow rows.
    print ""
    print "| target | burrow-tcp | burrow-http |"
    print "|---|---|---|"
    check("req/s at 64 conns >= 1.3x rathole-tls", "rps64", "rathole-tls", 1.3, 1)
    check("one-stream bulk >= 1.5x rathole-tls", "mbs", "rathole-tls", 1.5, 1)
    check("p50 at 1 conn <= bore", "p50_1", "bore", 1, 0)
    check("p50 at 1 conn <= 2x direct", "p50_1", "direct", 2, 0)
    check("p99 at 64 conns <= 2x direct", "p99_64", "direct", 2, 0)
  }
  function check(name, m, base, factor, atleast,    out, j, s, v, b, ok) {
    out = "| " name
    split("burrow-tcp burrow-http", bs, " ")
    for (j = 1; j <= 2; j++) {
      s = bs[j]
      if (!((s SUBSEP m) in med) || !((base SUBSEP m) in med)) { out = out " | n/a"; continue }
      v = med[s, m]; b = med[base, m]
      ok = atleast ? (v >= factor * b) : (v <= factor * b)
      out = out sprintf(" | %.2fx %s", v / b, ok ? "ok" : "MISSED")
    }
    print out " |"
  }
' "$RESULTS"

echo
echo "- $(date -u +%Y-%m-%d), $(nproc) CPUs, 1-minute load average $LOAD_BEFORE at start and $LOAD_AFTER at end;" \
  "$REPS repetition(s), medians; wrk ${WRK_SECS}s per run (after a 1 s warm-up), iperf3 ${IPERF_SECS}s per run"
echo "- rathole $RATHOLE_VERSION (tls transport, native-tls/OpenSSL), bore-cli $BORE_VERSION (no TLS)," \
  "Burrow $BURROW_REV (burrowd and agent as separate processes, TLS on the agent hop," \
  "default agent settings: the http tunnel captures for the inspector); $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}')," \
  "$(iperf3 --version | head -n1 | awk '{print $1, $2}'), $(nginx -v 2>&1 | sed 's/.*: //')"
