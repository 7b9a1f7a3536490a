#!/usr/bin/env bash
# The Sluice benchmark suite (`make bench`). Every server under test ("peer")
# is started by this script, pinned to core 0 (SERVER_CORE); the load
# generator (build/sluice_loadgen, one thread, epoll) runs on core 1.
#
# Peers (all built here or from Debian packages; bench/setup.sh installs them):
#   floor    bench/floor_server.cpp: minimal single-threaded epoll server,
#            one write per event, no framework, no guarantees (the floor)
#   sluice   build/sluice serve --enable-bench --threads 1
#   sluice-auth  the same with --auth jwt --jwt-secret-file F; the loadgen sends
#            a token minted by `sluice token` on every request (tokens and
#            paced only: what token verification costs, if anything)
#   node     bench/peers/node_server.js: Node.js, built-in `http` only
#   nchan    nginx + the nchan module (fan-out and idle only; it has no
#            token producer)
#   fastapi  bench/peers/fastapi_server.py: FastAPI + uvicorn, one worker
#
# Workloads (exact loadgen commands are written to the results file):
#   tokens      1,000 streams x 2,000 tokens x 8 B, unpaced: events/s, CPU
#               per event, and time to first event (TTFE) under that load
#   paced       1,000 streams x 200 tokens x 8 B at 50 tokens/s: server CPU,
#               latency, stream length (ideal 3.98 s)
#   fanout10    1,000 subscribers of one stream, 50 events at 10 events/s
#   fanout1000  1,000 subscribers of one stream, 1,000 events at 1,000/s
#   idle        10,000 idle SSE subscribers: server RSS per connection
#   wsidle      2,000 idle WebSocket connections to Sluice (sluice_ws_idle)
#
# Each workload runs RUNS times per peer, interleaved (run 1 of every peer,
# then run 2...), each on a fresh server. Output:
#   bench/results/<UTC stamp>.md   every figure, commands, raw loadgen JSON
#   bench/results/latest.md        a copy of it
#   docs/bench-*.png               charts (gnuplot), unless CHARTS_DIR is empty
#
# Usage: bash bench/run.sh [BUILD_DIR]      (BUILD_DIR defaults to build)
# Knobs: RUNS (2) PEERS ("floor sluice sluice-auth node nchan fastapi")
#        WORKLOADS ("tokens paced fanout10 fanout1000 idle wsidle")
#        TOKENS_CONNECTIONS (1000) TOKENS (2000) PACED_TOKENS (200) PACED_RATE (50)
#        FANOUT_CONNECTIONS (1000) IDLE_CONNECTIONS (10000) WS_IDLE_CONNECTIONS (2000)
#        TIMEOUT_SECONDS (30) SERVER_CORE (0) LOADGEN_CORE (1) CHARTS_DIR (docs)
#        SLUICE_ARGS (extra `sluice serve` options)
# Exit status: 0 when Sluice and the floor ran every workload without errors.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
LOADGEN_BIN=$BUILD/sluice_loadgen

RUNS=${RUNS:-2}
PEERS=${PEERS:-"floor sluice sluice-auth node nchan fastapi"}
WORKLOADS=${WORKLOADS:-"tokens paced fanout10 fanout1000 idle wsidle"}
TOKENS_CONNECTIONS=${TOKENS_CONNECTIONS:-1000}
TOKENS=${TOKENS:-2000}
PACED_TOKENS=${PACED_TOKENS:-200}
PACED_RATE=${PACED_RATE:-50}
FANOUT_CONNECTIONS=${FANOUT_CONNECTIONS:-1000}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
WS_IDLE_CONNECTIONS=${WS_IDLE_CONNECTIONS:-2000}
TIMEOUT_SECONDS=${TIMEOUT_SECONDS:-30}
SERVER_CORE=${SERVER_CORE:-0}
LOADGEN_CORE=${LOADGEN_CORE:-1}
CHARTS_DIR=${CHARTS_DIR-$ROOT/docs}
SLUICE_ARGS=${SLUICE_ARGS:-}
PYTHON=/usr/bin/python3

die() { echo "bench/run.sh: $*" >&2; exit 1; }

for bin in "$BUILD/sluice" "$LOADGEN_BIN" "$BUILD/sluice_floor" "$BUILD/sluice_ws_idle"; do
  [[ -x $bin ]] || die "$bin not found; build first (make build)"
done
for tool in taskset curl; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
available() {  # available PEER: its runtime is installed (bench/setup.sh)
  case $1 in
    node) command -v node >/dev/null ;;
    nchan) command -v nginx >/dev/null && [[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]] ;;
    fastapi) "$PYTHON" -c 'import fastapi, uvicorn' 2>/dev/null ;;
    *) true ;;
  esac
}
supports() {  # supports PEER WORKLOAD
  case "$1:$2" in
    nchan:tokens | nchan:paced) false ;;
    sluice-auth:tokens | sluice-auth:paced) true ;;
    sluice-auth:*) false ;;
    *:wsidle) [[ $1 == sluice ]] ;;
    *) true ;;
  esac
}

if ! ulimit -n 20000 2>/dev/null; then
  ulimit -n "$(ulimit -Hn)"
  echo "bench/run.sh: warning: open files limited to $(ulimit -n)" >&2
fi

port_in_use() { [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]; }
pick_port() {
  local candidate
  for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 10000))
    port_in_use "$candidate" || { echo "$candidate"; return; }
  done
  die "no free port found"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
SERVER_LOG=$WORK/server.log
MAIN_PID=    # the process we started (nginx: the master)
SERVER_PID=  # the process whose CPU and memory we measure (nginx: the worker)
stop_server() {
  if [[ -n $MAIN_PID ]] && kill -0 "$MAIN_PID" 2>/dev/null; then
    kill -TERM "$MAIN_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$MAIN_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$MAIN_PID" 2>/dev/null || true
  fi
  [[ -n $MAIN_PID ]] && { wait "$MAIN_PID" 2>/dev/null || true; }
  MAIN_PID= SERVER_PID=
}
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# sluice-auth: an HS256 secret for the server and a token for the loadgen,
# minted by the server's own `sluice token` (run=true for /v1/bench/tokens).
JWT_SECRET_FILE=$WORK/jwt-secret
JWT_TOKEN_FILE=$WORK/jwt-token
TOKEN_CMD=("$BUILD/sluice" token --jwt-secret-file "$JWT_SECRET_FILE" --sub bench --run
           --subscribe '*' --publish '*' --ttl 2h)
if [[ " $PEERS " == *" sluice-auth "* ]]; then
  (umask 077; head -c 48 /dev/urandom | base64 -w0 >"$JWT_SECRET_FILE")
  "${TOKEN_CMD[@]}" >"$JWT_TOKEN_FILE" || die "sluice token failed"
fi

# start_server PEER: starts it pinned to SERVER_CORE on a fresh port; sets
# SERVER_PORT, MAIN_PID, SERVER_PID and SERVER_CMD (for the record).
start_server() {
  local peer=$1
  SERVER_PORT=$(pick_port)
  local pin=(taskset -c "$SERVER_CORE")
  case $peer in
    sluice)
      # shellcheck disable=SC2206
      SERVER_CMD=("$BUILD/sluice" serve --enable-bench --max-connections-per-ip 0 --max-streams-per-subject 0 --host 127.0.0.1 --port "$SERVER_PORT"
                  --threads 1 --max-connections 20000 --heartbeat-ms 10000 $SLUICE_ARGS) ;;
    sluice-auth)
      # shellcheck disable=SC2206
      SERVER_CMD=("$BUILD/sluice" serve --enable-bench --max-connections-per-ip 0 --max-streams-per-subject 0 --host 127.0.0.1 --port "$SERVER_PORT"
                  --threads 1 --max-connections 20000 --heartbeat-ms 10000
                  --auth jwt --jwt-secret-file "$JWT_SECRET_FILE" $SLUICE_ARGS) ;;
    floor) SERVER_CMD=("$BUILD/sluice_floor" --host 127.0.0.1 --port "$SERVER_PORT") ;;
    node) SERVER_CMD=(node "$ROOT/bench/peers/node_server.js" "$SERVER_PORT") ;;
    fastapi) SERVER_CMD=("$PYTHON" "$ROOT/bench/peers/fastapi_server.py" "$SERVER_PORT") ;;
    nchan)
      mkdir -p "$WORK/nginx/tmp" "$WORK/nginx/logs"
      sed -e "s|@PREFIX@|$WORK/nginx|g" -e "s|@PORT@|$SERVER_PORT|g" \
        "$ROOT/bench/peers/nchan.conf.in" >"$WORK/nginx/nchan.conf"
      SERVER_CMD=(nginx -p "$WORK/nginx" -c "$WORK/nginx/nchan.conf") ;;
    *) die "unknown peer $peer" ;;
  esac
  "${pin[@]}" "${SERVER_CMD[@]}" >"$SERVER_LOG" 2>&1 &
  MAIN_PID=$!  # taskset execs the server
  local code
  for _ in $(seq 1 150); do
    if ! kill -0 "$MAIN_PID" 2>/dev/null; then
      tail -n 20 "$SERVER_LOG" >&2
      die "$peer exited during start-up"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
      "http://127.0.0.1:$SERVER_PORT/healthz" || true)
    if [[ $code == 200 ]]; then
      SERVER_PID=$MAIN_PID
      if [[ $peer == nchan ]]; then
        SERVER_PID=$(pgrep -P "$MAIN_PID" | head -n 1)
        [[ -n $SERVER_PID ]] || die "nginx has no worker process"
      fi
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$SERVER_LOG" >&2
  die "$peer did not answer /healthz with 200 in 15 s"
}

CLK_TCK=$(getconf CLK_TCK)
server_cpu_ticks() {  # utime+stime of SERVER_PID (all its threads)
  local stat
  stat=$(<"/proc/$SERVER_PID/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo $(( ${12} + ${13} ))
}
core_busy_ticks() {
  local line
  line=$(grep "^cpu$SERVER_CORE " /proc/stat)
  # shellcheck disable=SC2086
  set -- $line
  echo $(( $2 + $3 + $4 + $7 + $8 + $9 ))
}
field() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"; }

LOADGEN=(taskset -c "$LOADGEN_CORE" "$LOADGEN_BIN")
COMMON=(--host 127.0.0.1 --port @PORT@ --timeout-seconds "$TIMEOUT_SECONDS" --json)
workload_args() {  # workload_args WORKLOAD -> LOADGEN_ARGS
  case $1 in
    tokens) LOADGEN_ARGS=(tokens "${COMMON[@]}" --connections "$TOKENS_CONNECTIONS"
                          --tokens "$TOKENS" --bytes 8 --rate 0) ;;
    paced) LOADGEN_ARGS=(tokens "${COMMON[@]}" --connections "$TOKENS_CONNECTIONS"
                         --tokens "$PACED_TOKENS" --bytes 8 --rate "$PACED_RATE") ;;
    fanout10) LOADGEN_ARGS=(fanout "${COMMON[@]}" --connections "$FANOUT_CONNECTIONS"
                            --sub-path /v1/streams/fanout/events --tokens 50 --bytes 8 --rate 10) ;;
    fanout1000) LOADGEN_ARGS=(fanout "${COMMON[@]}" --connections "$FANOUT_CONNECTIONS"
                              --sub-path /v1/streams/fanout/events --tokens 1000 --bytes 8
                              --rate 1000) ;;
    idle) LOADGEN_ARGS=(idle "${COMMON[@]}" --connections "$IDLE_CONNECTIONS"
                        --server-pid @PID@ --hold-seconds 2) ;;
  esac
}

STAMP=$(date -u +%Y%m%d-%H%M%S)
RESULTS_DIR=$ROOT/bench/results
mkdir -p "$RESULTS_DIR"
DATA=$WORK/data.tsv  # one line per (workload, peer, run)
RAW=$WORK/raw.txt
COMMANDS=$WORK/commands.txt
: >"$RAW"
: >"$COMMANDS"
printf 'workload\tpeer\trun\tevents\texpected\tevents_per_s\tserver_cpu_s\tcpu_us_per_event\tp50_us\tp90_us\tp99_us\tp999_us\tmax_us\tttfe_p50_ms\tttfe_p99_ms\tstream_p50_s\tstream_max_s\trss_per_conn_b\tpublish_rate\tsubscribers_complete\terrors\ttimed_out\tother_cpu_s\tloadgen_cpu_pct\n' >"$DATA"
FAILED=0
T_START=$(date +%s)

run_one() {  # run_one WORKLOAD PEER RUN
  local workload=$1 peer=$2 run=$3
  if [[ $workload == wsidle ]]; then
    local out
    echo "== wsidle/$peer run $run: $BUILD/sluice_ws_idle --sluice $BUILD/sluice --connections $WS_IDLE_CONNECTIONS --deflate off" >&2
    out=$("$BUILD/sluice_ws_idle" --sluice "$BUILD/sluice" --connections "$WS_IDLE_CONNECTIONS" \
      --deflate off --port "$(pick_port)" 2>&1) || { echo "$out" >&2; FAILED=1; return; }
    echo "### wsidle $peer run $run" >>"$RAW"
    echo "$out" >>"$RAW"
    local kib
    kib=$(sed -n 's/.*idle: .*+\([0-9.]*\) KiB per connection.*/\1/p' <<<"$out")
    printf 'wsidle\t%s\t%s\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t%s\t\t\t0\tfalse\t\t\n' "$peer" "$run" \
      "$(awk -v k="$kib" 'BEGIN { printf "%.0f", k * 1024 }')" >>"$DATA"
    return
  fi
  start_server "$peer"
  workload_args "$workload"
  local args=("${LOADGEN_ARGS[@]//@PORT@/$SERVER_PORT}")
  args=("${args[@]//@PID@/$SERVER_PID}")
  [[ $peer == sluice-auth ]] && args+=(--token-file "$JWT_TOKEN_FILE")
  [[ $workload == paced || $workload == fanout* ]] &&
    args+=(--percentiles-file "$WORK/pct-$workload-$peer-$run.txt")
  if [[ $run == 1 ]]; then
    local extra= token_opt=
    if [[ $peer == sluice-auth ]]; then
      token_opt=" --token-file $JWT_TOKEN_FILE"
      extra=", the token minted by \`${TOKEN_CMD[*]//\*/\'*\'}\`"
    fi
    echo "- $workload / $peer: \`taskset -c $SERVER_CORE ${SERVER_CMD[*]}\` then \`${LOADGEN[*]} ${LOADGEN_ARGS[*]}$token_opt\`$extra" \
      | sed -e "s|$ROOT/||g" -e "s|$WORK|\$WORK|g" >>"$COMMANDS"
  fi
  echo "== $workload/$peer run $run" >&2
  local before after core_before core_after json rc=0
  before=$(server_cpu_ticks)
  core_before=$(core_busy_ticks)
  json=$("${LOADGEN[@]}" "${args[@]}" 2>"$WORK/loadgen.err") || rc=$?
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    tail -n 20 "$SERVER_LOG" >&2
    echo "bench/run.sh: $peer died during $workload" >&2
    FAILED=1
    stop_server
    return
  fi
  after=$(server_cpu_ticks)
  core_after=$(core_busy_ticks)
  stop_server
  grep SUMMARY "$WORK/loadgen.err" >&2 || true
  [[ -n $json ]] || { echo "bench/run.sh: no JSON from loadgen ($workload/$peer, exit $rc)" >&2; FAILED=1; return; }
  echo "### $workload $peer run $run (loadgen exit $rc)" >>"$RAW"
  echo "$json" >>"$RAW"
  local cpu other events
  cpu=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
  other=$(awk -v t=$((core_after - core_before - (after - before))) -v hz="$CLK_TCK" \
    'BEGIN { if (t < 0) t = 0; printf "%.2f", t / hz }')
  events=$(field "$json" events)
  local per_event=
  [[ -n $events && $events != 0 ]] &&
    per_event=$(awk -v c="$cpu" -v e="$events" 'BEGIN { printf "%.2f", c * 1e6 / e }')
  local errs
  errs=$(field "$json" errors)
  [[ $(field "$json" publish_errors) =~ ^[1-9] ]] && errs=$((errs + $(field "$json" publish_errors)))
  if [[ $rc != 0 && ($peer == sluice* || $peer == floor) ]]; then FAILED=1; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$workload" "$peer" "$run" "$events" "$(field "$json" expected_events)" \
    "$(field "$json" events_per_s)" "$cpu" "$per_event" \
    "$(field "$json" latency_us_p50)" "$(field "$json" latency_us_p90)" \
    "$(field "$json" latency_us_p99)" "$(field "$json" latency_us_p999)" \
    "$(field "$json" latency_us_max)" "$(field "$json" ttfe_ms_p50)" "$(field "$json" ttfe_ms_p99)" \
    "$(field "$json" stream_s_p50)" "$(field "$json" stream_s_max)" \
    "$(field "$json" rss_per_conn_bytes)" "$(field "$json" publish_rate)" \
    "$(field "$json" subscribers_complete)" "$errs" "$(field "$json" timed_out)" "$other" \
    "$(field "$json" loadgen_cpu_pct)" >>"$DATA"
}

for run in $(seq 1 "$RUNS"); do
  for workload in $WORKLOADS; do
    for peer in $PEERS; do
      supports "$peer" "$workload" || continue
      if ! available "$peer"; then
        [[ $run == 1 ]] && echo "bench/run.sh: $peer not installed (bash bench/setup.sh); skipped" >&2
        continue
      fi
      run_one "$workload" "$peer" "$run"
    done
  done
done
T_END=$(date +%s)

RESULTS_FILE=$RESULTS_DIR/$STAMP.md
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
revision=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain -- src bench 2>/dev/null) ]] && revision="$revision (src/ or bench/ had uncommitted changes)"
{
  echo "# Sluice benchmark results, $STAMP"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); the suite took $((T_END - T_START)) s"
  echo "- command: \`RUNS=$RUNS PEERS=\"$PEERS\" WORKLOADS=\"$WORKLOADS\" bash bench/run.sh\`"
  echo "- repository HEAD: $revision"
  echo "- machine: $(nproc) cores, ${cpu_model:-unknown CPU}, Linux $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- versions: node $(node --version 2>/dev/null || echo -), $(nginx -v 2>&1 | sed 's/.*: //'), fastapi $("$PYTHON" -c 'import fastapi; print(fastapi.__version__)' 2>/dev/null || echo -), uvicorn $("$PYTHON" -c 'import uvicorn; print(uvicorn.__version__)' 2>/dev/null || echo -)"
  echo
  "$PYTHON" "$ROOT/bench/summarize.py" "$DATA"
  echo
  echo "## Commands (run 1; @PORT@/@PID@ are filled in per run)"
  echo
  cat "$COMMANDS"
  echo
  echo "## Every run"
  echo
  echo '```'
  column -t -s $'\t' "$DATA" 2>/dev/null || cat "$DATA"
  echo '```'
  echo
  echo "## Latency percentiles (µs) of paced and fan-out runs"
  echo
  echo '```'
  for f in "$WORK"/pct-*.txt; do
    [[ -f $f ]] || continue
    echo "$(basename "$f" .txt): $(grep -v '^#' "$f" | tr '\n' ' ')"
  done
  echo '```'
  echo
  echo "## Raw loadgen output"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} >"$RESULTS_FILE"
cp "$RESULTS_FILE" "$RESULTS_DIR/latest.md"
echo "written to ${RESULTS_FILE#"$ROOT"/} (and bench/results/latest.md); $((T_END - T_START)) s" >&2

if [[ -n $CHARTS_DIR ]] && command -v gnuplot >/dev/null; then
  bash "$ROOT/bench/charts.sh" "$DATA" "$WORK" "$CHARTS_DIR" && echo "charts in ${CHARTS_DIR#"$ROOT"/}/bench-*.png" >&2
fi

[[ $FAILED == 0 ]]
