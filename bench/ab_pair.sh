#!/bin/bash
# Two sluice binaries, one workload, alternating runs: what a change did, on
# a shared machine (compare within one invocation only).
#
#   bench/ab_pair.sh OLD_BIN NEW_BIN WORKLOAD [RUNS]
#
# WORKLOAD: fanout1000 | fanout10 | fanout200u | paced | tokens (commands in
# docs/benchmarks.md). Each run: a fresh `sluice serve --threads 1
# --memory-only` pinned to core 0, build/sluice_loadgen pinned to core 1.
# Prints one line per run: the binary, its server CPU (utime+stime) and the
# load generator's figures.
set -euo pipefail
OLD=$1 NEW=$2 WL=$3 RUNS=${4:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOADGEN=${LOADGEN:-$ROOT/build/sluice_loadgen}
case $WL in
  fanout1000) ARGS=(fanout --connections 1000 --tokens 1000 --bytes 8 --rate 1000) ;;
  fanout10) ARGS=(fanout --connections 1000 --tokens 50 --bytes 8 --rate 10) ;;
  fanout200u) ARGS=(fanout --connections 200 --tokens 3000 --bytes 8 --rate 0) ;;
  paced) ARGS=(tokens --connections 1000 --tokens 200 --bytes 8 --rate 50) ;;
  tokens) ARGS=(tokens --connections 1000 --tokens 2000 --bytes 8 --rate 0) ;;
  *) echo "unknown workload $WL" >&2; exit 2 ;;
esac
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
run() {
  local bin=$1 tag=$2 port sp cpu
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  taskset -c 0 "$bin" serve --host 127.0.0.1 --port "$port" --threads 1 --max-connections 20000 \
    --max-connections-per-ip 0 --max-streams-per-subject 0 --heartbeat-ms 10000 \
    --web-root /nonexistent --log-level warn --memory-only --enable-bench >/dev/null 2>&1 &
  sp=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
  local extra=()
  [[ ${ARGS[0]} == fanout ]] && extra=(--pub-port "$port" --sub-path "/v1/streams/ab-$RANDOM/events")
  taskset -c 1 "$LOADGEN" "${ARGS[@]}" "${extra[@]}" --host 127.0.0.1 --port "$port" \
    --timeout-seconds 90 --json 2>/dev/null >"$OUT" || true
  cpu=$(awk '{print ($14+$15)/100}' "/proc/$sp/stat")
  kill "$sp"; wait "$sp" 2>/dev/null || true
  python3 - "$tag" "$cpu" "$OUT" <<'PY'
import json, sys
d = json.loads(open(sys.argv[3]).read().strip().splitlines()[-1])
keys = ['events', 'events_per_s', 'publish_rate', 'publish_rtt_us_p50', 'latency_us_p50',
        'latency_us_p99', 'ttfe_ms_p50', 'stream_s_max', 'timed_out']
print(sys.argv[1], 'server_cpu_s=' + sys.argv[2],
      ' '.join(f'{k}={d[k]}' for k in keys if k in d))
PY
}
for _ in $(seq "$RUNS"); do
  run "$OLD" "old:$WL"
  run "$NEW" "new:$WL"
done
