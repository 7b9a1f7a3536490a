#!/usr/bin/env bash
# Where the server's CPU goes on the paced workload (1,000 streams x 200
# tokens at 50/s): runs it three times against one server binary, pinned like
# bench/run.sh (server core 0, loadgen core 1):
#   1. plain: server CPU (utime/stime) per event
#   2. under `perf record -e cpu-clock -g` (software clock: this VM has no
#      hardware counters): the hottest symbols, user vs kernel
#   3. under `strace -c -f`: syscalls per event (strace slows the server;
#      only the counts are meaningful)
# Usage: bash bench/profile.sh SERVER_KIND [BUILD_DIR] [OUT_DIR]
#   SERVER_KIND: sluice | floor      OUT_DIR (default /tmp/sluice-profile)
#   DATA_DIR=/tmp/x (sluice only): serve with --data-dir there, a fresh
#   folder per run (the perf symbols are then also given per thread: the
#   durable log's writer is `sluice-writer`)
set -euo pipefail
KIND=$1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${2:-$ROOT/build}
OUT=${3:-/tmp/sluice-profile}
CONNS=${CONNS:-1000} TOKENS=${TOKENS:-200} RATE=${RATE:-50}
mkdir -p "$OUT"
ulimit -n 20000
PORT=$((20000 + RANDOM % 10000))
case $KIND in
  sluice) CMD=("$BUILD/sluice" serve --enable-bench --max-connections-per-ip 0 --max-streams-per-subject 0 --host 127.0.0.1 --port "$PORT" --threads 1
               --max-connections 20000 --heartbeat-ms 10000) ;;
  floor) CMD=("$BUILD/sluice_floor" --host 127.0.0.1 --port "$PORT") ;;
  *) echo "usage: bench/profile.sh sluice|floor [BUILD_DIR] [OUT_DIR]" >&2; exit 64 ;;
esac
LOAD=(taskset -c 1 "$BUILD/sluice_loadgen" tokens --port "$PORT" --connections "$CONNS"
      --tokens "$TOKENS" --bytes 8 --rate "$RATE")
EVENTS=$((CONNS * TOKENS))
PID=
stop() { if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; PID=; }
trap stop EXIT
DATA_DIR=${DATA_DIR:-}
if [[ -n $DATA_DIR && $KIND == sluice ]]; then CMD+=(--data-dir "$DATA_DIR"); fi
start() {
  if [[ -n $DATA_DIR ]]; then rm -rf "$DATA_DIR"; fi
  taskset -c 0 "${CMD[@]}" >"$OUT/$KIND-server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && return
    sleep 0.1
  done
  echo "server did not start" >&2; exit 1
}
ticks() { awk '{print $14, $15}' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)

start
read -r u0 s0 < <(ticks)
"${LOAD[@]}" 2>&1 | grep -E "SUMMARY|stream length" || true
read -r u1 s1 < <(ticks)
awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" -v e="$EVENTS" -v k="$KIND" 'BEGIN {
  printf "%s: server CPU %.2f s (user %.2f, sys %.2f) = %.2f us per event (user %.2f, sys %.2f)\n",
    k, (u+s)/hz, u/hz, s/hz, (u+s)/hz*1e6/e, u/hz*1e6/e, s/hz*1e6/e }' | tee "$OUT/$KIND-cpu.txt"
stop

start
perf record -e cpu-clock -F 2000 -g -p "$PID" -o "$OUT/$KIND-perf.data" 2>/dev/null &
PERF=$!
sleep 0.5
"${LOAD[@]}" >/dev/null 2>&1 || true
kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
perf report -i "$OUT/$KIND-perf.data" --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8 >"$OUT/$KIND-perf-dso.txt" || true
perf report -i "$OUT/$KIND-perf.data" --no-children --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 >"$OUT/$KIND-perf-sym.txt" || true
perf report -i "$OUT/$KIND-perf.data" --no-children -n --sort comm,sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 >"$OUT/$KIND-perf-thread.txt" || true
echo "perf: $OUT/$KIND-perf-dso.txt, $OUT/$KIND-perf-sym.txt, $OUT/$KIND-perf-thread.txt"
stop

start
strace -c -f -p "$PID" -o "$OUT/$KIND-strace.txt" &
ST=$!
sleep 0.5
"${LOAD[@]}" >/dev/null 2>&1 || true
kill -INT "$ST"; wait "$ST" 2>/dev/null || true
awk -v e="$EVENTS" 'NR > 2 && $4 ~ /^[0-9]+$/ { printf "%-16s %10d calls  %.3f per event\n", $NF, $4, $4 / e }' \
  "$OUT/$KIND-strace.txt" | sort -k2 -n -r | head -12 | tee "$OUT/$KIND-syscalls.txt" || true
