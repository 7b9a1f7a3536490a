#!/usr/bin/env bash
# Sluice benchmark (`make bench`): the server pinned to core 0, sluice_loadgen
# pinned to core 1, two workloads:
#   tokens  1,000 streams x 2,000 tokens x 8 bytes, rate 0 (as fast as possible)
#   idle    10,000 open SSE connections: server RSS per connection
# Prints a markdown table and writes it, with the commands and the date, to
# bench/results/latest.md.
#
# Usage: bash bench/run.sh [BUILD_DIR]      (BUILD_DIR defaults to build)
# Smaller runs through the environment, e.g.
#   TOKENS_CONNECTIONS=100 TOKENS=500 IDLE_CONNECTIONS=1000 bash bench/run.sh build
# Knobs: TOKENS_CONNECTIONS (1000) TOKENS (2000) TOKEN_BYTES (8) TOKEN_RATE (0)
#        IDLE_CONNECTIONS (10000) IDLE_HOLD_SECONDS (2) TIMEOUT_SECONDS (120)
#        PORT (a free one is picked) SERVER_CORE (0) LOADGEN_CORE (1)
#        RESULTS_FILE (bench/results/latest.md; empty = don't write)
# Exit status: 0 when every workload ran without errors, 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SERVER_BIN=$BUILD/sluice
LOADGEN_BIN=$BUILD/sluice_loadgen

TOKENS_CONNECTIONS=${TOKENS_CONNECTIONS:-1000}
TOKENS=${TOKENS:-2000}
TOKEN_BYTES=${TOKEN_BYTES:-8}
TOKEN_RATE=${TOKEN_RATE:-0}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
IDLE_HOLD_SECONDS=${IDLE_HOLD_SECONDS:-2}
TIMEOUT_SECONDS=${TIMEOUT_SECONDS:-120}
SERVER_CORE=${SERVER_CORE:-0}
LOADGEN_CORE=${LOADGEN_CORE:-1}
RESULTS_FILE=${RESULTS_FILE-$ROOT/bench/results/latest.md}

die() { echo "bench/run.sh: $*" >&2; exit 1; }

for bin in "$SERVER_BIN" "$LOADGEN_BIN"; do
  [[ -x $bin ]] || die "$bin not found; build first (make build)"
done
for tool in taskset curl; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

# 10,000 idle connections need more than the usual 1,024 descriptors on both
# sides (the server inherits this limit; the loadgen also raises its own).
if ! ulimit -n 20000 2>/dev/null; then
  ulimit -n "$(ulimit -Hn)"
  echo "bench/run.sh: warning: could not raise open files to 20000; using $(ulimit -n)" >&2
fi

port_in_use() {
  if command -v ss >/dev/null; then
    [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

pick_port() {
  if [[ -n ${PORT:-} ]]; then echo "$PORT"; return; fi
  # Below the ephemeral range (32768+), so the loadgen's own sockets can't take it.
  local candidate
  for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 10000))
    if ! port_in_use "$candidate"; then echo "$candidate"; return; fi
  done
  die "no free port found"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
SERVER_LOG=$WORK/server.log
SERVER_PID=
stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  [[ -n $SERVER_PID ]] && { wait "$SERVER_PID" 2>/dev/null || true; }
  SERVER_PID=
}
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Each workload gets a fresh server: finished bench streams stay replayable
# (--finished-ttl-s), and memory they free is reused by later connections, so
# an idle run after the tokens run would understate RSS per connection.
start_server() {
  SERVER_PORT=$(pick_port)
  SERVER_CMD=(taskset -c "$SERVER_CORE" "$SERVER_BIN" serve --enable-bench --host 127.0.0.1 --port "$SERVER_PORT"
              --threads 1 --max-connections 20000 --heartbeat-ms 10000)
  "${SERVER_CMD[@]}" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!  # taskset execs the server, so this is the server's pid
  local code
  for _ in $(seq 1 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 20 "$SERVER_LOG" >&2
      die "server exited during start-up"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
      "http://127.0.0.1:$SERVER_PORT/healthz" || true)
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  tail -n 20 "$SERVER_LOG" >&2
  die "server did not answer /healthz with 200 in 10 s"
}

CLK_TCK=$(getconf CLK_TCK)
# utime+stime of the server in clock ticks (/proc/PID/stat fields 14 and 15;
# the command name in field 2 may contain spaces, so cut after its ')').
server_cpu_ticks() {
  local stat
  stat=$(<"/proc/$SERVER_PID/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo $(( ${12} + ${13} ))
}

# Busy ticks (user+nice+system+irq+softirq+steal) of the server's core, from
# /proc/stat; minus the server's own ticks this is what other processes (or the
# hypervisor) took from the server's core during a workload on a shared machine.
core_busy_ticks() {
  local line
  line=$(grep "^cpu$SERVER_CORE " /proc/stat)
  # shellcheck disable=SC2086
  set -- $line
  echo $(( $2 + $3 + $4 + $7 + $8 + $9 ))
}

# field JSON KEY: a value from the loadgen's flat one-line JSON.
field() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"; }

# run_loadgen NAME ARGS...: runs one workload against a fresh server; sets
# LAST_JSON, LAST_RC, LAST_SERVER_CPU_S, LAST_OTHER_CPU_S. "@PORT@" and "@PID@" in ARGS are
# replaced with the server's port and pid.
run_loadgen() {
  local name=$1; shift
  start_server
  local args=("${@//@PORT@/$SERVER_PORT}")
  args=("${args[@]//@PID@/$SERVER_PID}")
  local before after core_before core_after
  before=$(server_cpu_ticks)
  core_before=$(core_busy_ticks)
  echo "== $name: ${SERVER_CMD[*]}" >&2
  echo "== $name: ${LOADGEN_CMD_PREFIX[*]} ${args[*]} --json" >&2
  LAST_RC=0
  LAST_JSON=$("${LOADGEN_CMD_PREFIX[@]}" "${args[@]}" --json) || LAST_RC=$?
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$SERVER_LOG" >&2; die "server died during $name"; }
  after=$(server_cpu_ticks)
  core_after=$(core_busy_ticks)
  LAST_SERVER_CPU_S=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
  LAST_OTHER_CPU_S=$(awk -v t=$((core_after - core_before - (after - before))) -v hz="$CLK_TCK" \
    'BEGIN { if (t < 0) t = 0; printf "%.2f", t / hz }')
  stop_server
  [[ -n $LAST_JSON ]] || die "loadgen produced no JSON for $name (exit $LAST_RC)"
}

LOADGEN_CMD_PREFIX=(taskset -c "$LOADGEN_CORE" "$LOADGEN_BIN")
COMMON=(--host 127.0.0.1 --port @PORT@ --timeout-seconds "$TIMEOUT_SECONDS")

TOKENS_ARGS=(tokens "${COMMON[@]}" --connections "$TOKENS_CONNECTIONS" --tokens "$TOKENS"
             --bytes "$TOKEN_BYTES" --rate "$TOKEN_RATE")
run_loadgen tokens "${TOKENS_ARGS[@]}"
TOKENS_JSON=$LAST_JSON TOKENS_RC=$LAST_RC TOKENS_SERVER_CPU=$LAST_SERVER_CPU_S
TOKENS_OTHER_CPU=$LAST_OTHER_CPU_S

IDLE_ARGS=(idle "${COMMON[@]}" --connections "$IDLE_CONNECTIONS" --server-pid @PID@
           --hold-seconds "$IDLE_HOLD_SECONDS")
run_loadgen idle "${IDLE_ARGS[@]}"
IDLE_JSON=$LAST_JSON IDLE_RC=$LAST_RC IDLE_SERVER_CPU=$LAST_SERVER_CPU_S
IDLE_OTHER_CPU=$LAST_OTHER_CPU_S

ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }

t_events=$(field "$TOKENS_JSON" events)
t_events_per_cpu=$(awk -v e="$t_events" -v c="$TOKENS_SERVER_CPU" \
  'BEGIN { if (c > 0) printf "%.0f", e / c; else print "n/a" }')
tokens_row="| tokens ${TOKENS}x${TOKEN_BYTES} B, rate ${TOKEN_RATE} | $TOKENS_CONNECTIONS \
| $(field "$TOKENS_JSON" events_per_s) | $t_events_per_cpu | $TOKENS_SERVER_CPU \
| $(ms "$(field "$TOKENS_JSON" latency_us_p50)") | $(ms "$(field "$TOKENS_JSON" latency_us_p99)") \
| $(awk -v v="$(field "$TOKENS_JSON" ttfe_ms_p50)" 'BEGIN { printf "%.2f ms", v }') | - \
| $(awk -v v="$(field "$TOKENS_JSON" loadgen_cpu_pct)" 'BEGIN { printf "%.0f%%", v }') \
| $(field "$TOKENS_JSON" errors) | $TOKENS_OTHER_CPU |"

i_rss=$(field "$IDLE_JSON" rss_per_conn_bytes)
[[ $i_rss == -1 || -z $i_rss ]] && i_rss="n/a" || i_rss="$i_rss B"
idle_row="| idle, heartbeat 10 s, hold ${IDLE_HOLD_SECONDS} s \
| $(field "$IDLE_JSON" connections_with_headers)/$IDLE_CONNECTIONS | - | - | $IDLE_SERVER_CPU | - | - | - \
| $i_rss | $(awk -v v="$(field "$IDLE_JSON" loadgen_cpu_pct)" 'BEGIN { printf "%.0f%%", v }') \
| $(field "$IDLE_JSON" errors) | $IDLE_OTHER_CPU |"

TABLE="| workload | connections | events/s | events per server CPU-s | server CPU s | p50 latency | p99 latency | TTFE p50 | server RSS/conn | loadgen CPU% | errors | other CPU on server core s |
|---|---|---|---|---|---|---|---|---|---|---|---|
$tokens_row
$idle_row"

echo
echo "$TABLE"

if [[ -n $RESULTS_FILE ]]; then
  mkdir -p "$(dirname "$RESULTS_FILE")"
  overrides=$(env | grep -E '^(TOKENS_CONNECTIONS|TOKENS|TOKEN_BYTES|TOKEN_RATE|IDLE_CONNECTIONS|IDLE_HOLD_SECONDS|TIMEOUT_SECONDS|PORT|SERVER_CORE|LOADGEN_CORE)=' \
    | sort | tr '\n' ' ' || true)
  cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  revision=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] && revision="$revision (working tree has changes)"
  {
    echo "# Sluice benchmark results"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- command: \`${overrides}bash bench/run.sh ${1:-build}\`"
    echo "- repository HEAD at run time: $revision (BUILD_DIR may hold binaries of another revision)"
    echo "- machine: $(nproc) cores, ${cpu_model:-unknown CPU}, Linux $(uname -r)"
    echo "- server (a fresh one per workload, port chosen per run): \`taskset -c $SERVER_CORE \$BUILD/sluice serve --enable-bench --host 127.0.0.1 --port @PORT@ --threads 1 --max-connections 20000 --heartbeat-ms 10000\`"
    echo "- tokens: \`taskset -c $LOADGEN_CORE \$BUILD/sluice_loadgen ${TOKENS_ARGS[*]} --json\`"
    echo "- idle: \`taskset -c $LOADGEN_CORE \$BUILD/sluice_loadgen ${IDLE_ARGS[*]} --json\`"
    echo
    echo "$TABLE"
    echo
    echo "Latency is loadgen receive time minus the event's \`ts\` (both CLOCK_REALTIME, same host)."
    echo "events/s is over first response byte .. last event; server CPU is utime+stime from"
    echo "/proc/PID/stat during the workload; RSS/conn is the server's VmRSS growth once all"
    echo "idle connections had their response headers, divided by the connection count."
    echo "\"other CPU on server core\" is core $SERVER_CORE's busy time (incl. steal) minus the server's own:"
    echo "softirq work for the loopback traffic (a few hundredths of a second) plus any other process"
    echo "on that core. Tenths of a second or more mean the server shared its core and the tokens"
    echo "throughput and latency are understated; rerun on a quiet machine."
    echo
    echo "Raw loadgen output:"
    echo
    echo '```json'
    echo "$TOKENS_JSON"
    echo "$IDLE_JSON"
    echo '```'
  } >"$RESULTS_FILE"
  echo
  echo "written to ${RESULTS_FILE#"$ROOT"/}"
fi

[[ $TOKENS_RC == 0 && $IDLE_RC == 0 ]]
