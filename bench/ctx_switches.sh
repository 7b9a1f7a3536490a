#!/usr/bin/env bash
# The paced workload against one server binary, with the context switches of
# both sides: how often the load generator was woken (its voluntary switches,
# from /usr/bin/time) next to the server's CPU (utime/stime) and its threads'
# switches. On this VM a wakeup across cores is expensive, and the sender
# pays for it in kernel time (docs/benchmarks.md, "Writing right after the
# publish, 1 ms pacing slots, producer turns").
#   bench/ctx_switches.sh sluice [SLUICE_BIN]   or   bench/ctx_switches.sh floor
# Pinned like bench/run.sh: server core 0, load generator core 1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KIND=${1:?usage: bench/ctx_switches.sh sluice|floor [BIN]}
LOADGEN=$ROOT/build/sluice_loadgen
OUT=$(mktemp)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
case $KIND in
  sluice) taskset -c 0 "${2:-$ROOT/build/sluice}" serve --host 127.0.0.1 --port "$port" --threads 1 \
            --max-connections 20000 --max-connections-per-ip 0 --max-streams-per-subject 0 \
            --heartbeat-ms 10000 --web-root /nonexistent --log-level warn --memory-only \
            --enable-bench >/dev/null 2>&1 & ;;
  floor) taskset -c 0 "${2:-$ROOT/build/sluice_floor}" --host 127.0.0.1 --port "$port" >/dev/null 2>&1 & ;;
  *) echo "usage: bench/ctx_switches.sh sluice|floor [BIN]" >&2; exit 64 ;;
esac
sp=$!
trap 'kill "$sp" 2>/dev/null || true; rm -f "$OUT"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
/usr/bin/time -f "loadgen: voluntary switches %w, involuntary %c, CPU %U+%S s" \
  taskset -c 1 "$LOADGEN" tokens --connections 1000 --tokens 200 --bytes 8 --rate 50 \
  --host 127.0.0.1 --port "$port" --timeout-seconds 60 --json 2>&1 >"$OUT" | tail -1
awk '{printf "server: CPU %.2f s (user %.2f, sys %.2f)\n", ($14+$15)/100, $14/100, $15/100}' "/proc/$sp/stat"
cat /proc/"$sp"/task/*/status | awk '/^voluntary_ctxt/ {v+=$2} /^nonvoluntary_ctxt/ {n+=$2}
  END {print "server: voluntary switches " v ", involuntary " n " (all threads)"}'
python3 -c "import json,sys; d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print('latency p50', d['latency_us_p50'], 'us, p99', d['latency_us_p99'], 'us; events', d['events'])" "$OUT"
