#!/usr/bin/env bash
# System calls per request at one connection: `wrk -t1 -c1` on nginx's 1 KiB file
# through a tunnel, with `strace -c -f` attached to each of the tunnel's processes, and
# each call's count divided by the requests wrk reports. Tunnels:
#   - Burrow http tunnel, burrowd and the agent as separate processes (TLS agent hop);
#   - Burrow tcp tunnel, the same way (like for like with bore);
#   - Burrow http tunnel with the agent's embedded relay (`burrow http PORT`, no server);
#   - bore 0.6.0, server and client.
# strace slows the traced processes a lot, so requests/s here mean nothing; the counts
# per request are what this measures.
#
# Usage: benches/syscalls.sh     (SYSCALLS_SECS=5 sets the wrk duration; KEEP_WORK=1
#                                 keeps the raw strace summaries)
set -euo pipefail
# shellcheck source=benches/common.sh
source "$(dirname "$0")/common.sh"

SECS=${SYSCALLS_SECS:-5}

install_debian wrk wrk nginx nginx-light strace strace openssl openssl
install_peers
build_burrow
clear_proxy_env

setup_work
COUNTS="$WORK/counts.tsv"
: >"$COUNTS"

# Traces the processes NAME=PID... during one wrk run against PORT (with HOST as the
# Host header when given) and appends "NAME CALL COUNT" lines to $COUNTS, and
# "NAME __requests N" for the requests wrk completed.
trace_run() {
  local label=$1 port=$2 host=$3
  shift 3
  local hdr=() tracers=() names=() spec name pid i
  [ -n "$host" ] && hdr=(-H "Host: $host")
  # Warm up first: the tunnel's first connection and its buffers are not what is counted.
  timeout 30 wrk -t1 -c1 -d1s "${hdr[@]+"${hdr[@]}"}" "http://127.0.0.1:$port/1k.bin" >/dev/null 2>&1 || true
  for spec in "$@"; do
    name=${spec%%=*} pid=${spec#*=}
    # -f with -p attaches every thread of the process, not only its main one.
    start_bg "strace-$name" strace -c -f -p "$pid" -o "$WORK/strace-$name.txt"
    tracers+=("$LAST_PID") names+=("$name")
  done
  # Wait until strace reports every thread attached, so the run is traced from its start.
  for ((i = 0; i < 100; i++)); do
    local ready=1
    for name in "${names[@]}"; do
      grep -q attached "$WORK/strace-$name.log" 2>/dev/null || ready=0
    done
    ((ready)) && break
    sleep 0.1
  done
  sleep 0.5
  log "  $label: wrk -t1 -c1 -d${SECS}s under strace"
  timeout $((SECS + 60)) wrk -t1 -c1 -d"${SECS}s" "${hdr[@]+"${hdr[@]}"}" \
    "http://127.0.0.1:$port/1k.bin" >"$WORK/wrk-$label.out" 2>&1 ||
    die "wrk through $label failed: $(cat "$WORK/wrk-$label.out")"
  grep -q 'Non-2xx' "$WORK/wrk-$label.out" && die "wrk through $label got errors: $(cat "$WORK/wrk-$label.out")"
  # strace writes its summary when interrupted, after detaching.
  for pid in "${tracers[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${tracers[@]}"; do
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  done
  stop_pids "${tracers[@]}"
  local requests
  requests=$(awk '/ requests in / {print $1}' "$WORK/wrk-$label.out")
  if [ -z "$requests" ] || [ "$requests" -eq 0 ]; then
    die "wrk through $label completed no request"
  fi
  for name in "${names[@]}"; do
    [ -s "$WORK/strace-$name.txt" ] || die "strace wrote no summary for $name: $(cat "$WORK/strace-$name.log")"
    printf '%s\t__requests\t%s\n' "$name" "$requests" >>"$COUNTS"
    # Summary lines: % time, seconds, usecs/call, calls, [errors], syscall.
    awk -v n="$name" '$1 ~ /^[0-9.]+$/ && $NF != "total" && NF >= 5 {printf "%s\t%s\t%s\n", n, $NF, $4}' \
      "$WORK/strace-$name.txt" >>"$COUNTS"
  done
}

log "starting nginx"
start_nginx

# Burrow, relay and agent as separate processes: an http tunnel, then a tcp tunnel.
log "Burrow: burrowd and agent"
start_burrowd
start_agent agent-http http "127.0.0.1:$NGINX_PORT"
AGENT_PID=$LAST_PID
read -r host _ <<<"$PUBLIC"
trace_run http "${BURROWD_HTTP##*:}" "$host" http-relay="$BURROWD_PID" http-agent="$AGENT_PID"
stop_pids "$AGENT_PID"
start_agent agent-tcp tcp "127.0.0.1:$NGINX_PORT"
AGENT_PID=$LAST_PID
trace_run tcp "$PUBLIC" "" tcp-relay="$BURROWD_PID" tcp-agent="$AGENT_PID"
stop_pids "$AGENT_PID" "$BURROWD_PID"

# Burrow, the agent with its embedded relay: one process.
log "Burrow: agent with its embedded relay"
start_agent agent-embedded http "127.0.0.1:$NGINX_PORT" embedded
AGENT_PID=$LAST_PID
read -r host port <<<"$PUBLIC"
trace_run embedded "$port" "$host" embedded="$AGENT_PID"
stop_pids "$AGENT_PID"

# bore: server and client, no TLS.
log "bore: server and client"
start_bore 0
trace_run bore "$BORE_HTTP_PORT" "" bore-server="$BORE_SERVER_PID" bore-client="$BORE_HTTP_PID"
stop_pids "$BORE_HTTP_PID" "$BORE_SERVER_PID"

# One column per traced configuration (processes added up where a column names several),
# one row per call, counts per request; calls under 0.05 per request in every column are
# added up in "other".
awk -F'\t' '
  { if ($2 == "__requests") req[$1] = $3; else { calls[$1, $2] += $3; names[$2] = 1 } }
  END {
    ncol = split("http-relay http-agent http-relay+http-agent embedded tcp-relay+tcp-agent bore-server bore-client bore-server+bore-client", cols, " ")
    head["http-relay"] = "burrow http: relay"; head["http-agent"] = "burrow http: agent"
    head["http-relay+http-agent"] = "burrow http: relay+agent"; head["embedded"] = "burrow http: embedded relay"
    head["tcp-relay+tcp-agent"] = "burrow tcp: relay+agent"
    head["bore-server"] = "bore: server"; head["bore-client"] = "bore: client"
    head["bore-server+bore-client"] = "bore: server+client"
    for (c = 1; c <= ncol; c++) {
      np = split(cols[c], procs, "+")
      for (call in names) {
        v = 0
        for (p = 1; p <= np; p++) if (req[procs[p]] > 0) v += calls[procs[p], call] / req[procs[p]]
        per[c, call] = v; total[c] += v
      }
    }
    # Rows by the separate-process http column, biggest first.
    n = 0
    for (call in names) {
      big = 0
      for (c = 1; c <= ncol; c++) if (per[c, call] >= 0.05) big = 1
      if (big) order[++n] = call
      else for (c = 1; c <= ncol; c++) other[c] += per[c, call]
    }
    for (i = 2; i <= n; i++) {
      t = order[i]
      for (j = i - 1; j >= 1 && (per[3, order[j]] < per[3, t] || (per[3, order[j]] == per[3, t] && order[j] > t)); j--) order[j + 1] = order[j]
      order[j + 1] = t
    }
    line = "| call"; sep = "|---"
    for (c = 1; c <= ncol; c++) { line = line " | " head[cols[c]]; sep = sep "|---:" }
    print line " |"; print sep "|"
    for (i = 1; i <= n; i++) {
      line = "| " order[i]
      for (c = 1; c <= ncol; c++) line = line sprintf(" | %.2f", per[c, order[i]])
      print line " |"
    }
    line = "| other"
    for (c = 1; c <= ncol; c++) line = line sprintf(" | %.2f", other[c])
    print line " |"
    line = "| **total**"
    for (c = 1; c <= ncol; c++) line = line sprintf(" | **%.2f**", total[c])
    print line " |"
    line = "| requests counted"
    for (c = 1; c <= ncol; c++) { split(cols[c], procs, "+"); line = line " | " req[procs[1]] }
    print line " |"
  }
' "$COUNTS"

echo
echo "- $(date -u +%Y-%m-%d), $(nproc) CPUs; wrk -t1 -c1 -d${SECS}s on a 1 KiB file (nginx, one worker)" \
  "under strace -c -f on each tunnel process; system calls per completed request, including" \
  "what the processes did on their own during the run (heartbeats, timers)"
echo "- Burrow $BURROW_REV, bore-cli $BORE_VERSION; $(strace -V | head -n1)"
