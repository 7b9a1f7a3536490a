#!/usr/bin/env bash
# The Redis figures of docs/scaling.md: starts a throw-away redis-server
# (no persistence) pinned to CPU 0, runs sluice_redis_bench and
# redis-benchmark for the same command mix pinned to CPU 1, stops Redis.
# Usage: bench/redis/run_redis_bench.sh [BUILD_DIR]   (default: build)
set -euo pipefail
build=${1:-build}
bench=$build/sluice_redis_bench
[ -x "$bench" ] || { echo "build $bench first (cmake --build $build --target sluice_redis_bench)" >&2; exit 1; }
dir=$(mktemp -d)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
  --daemonize no --logfile "$dir/redis.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
url=redis://127.0.0.1:$port
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# The last line of redis-benchmark -q, without the echoed command.
rb() { taskset -c 1 redis-benchmark -p "$port" -c 1 -q "$@" 2>&1 | tr '\r' '\n' | tail -1 | sed 's/.*: \([0-9.]* requests per second.*\)/\1/'; }
data='{"text":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}'
for mix in "1 1 20000" "1 64 200000" "16 16 200000"; do
  read -r batch pipeline events <<<"$mix"
  out=$(taskset -c 1 "$bench" --url "$url" --batch "$batch" --pipeline "$pipeline" --events "$events")
  echo "sluice_redis_bench: $(head -1 <<<"$out")"
  sha=$(sed -n 's/.* EVALSHA \([0-9a-f]*\) .*/\1/p' <<<"$out")
  args=()
  for _ in $(seq "$batch"); do args+=(delta "$data"); done
  n=$((events / batch)); ((n > 100000)) && n=100000
  echo "redis-benchmark -P $pipeline, EVALSHA publish script with $batch event(s): $(rb -n "$n" -P "$pipeline" EVALSHA "$sha" 2 '{s:bench-0}:meta' '{s:bench-0}:events' '' 100000 '' 600000 86400000 '' '{s:bench-0}:wake' "${args[@]}")"
done
echo "redis-benchmark -P 64, raw XADD MAXLEN ~ (no script): $(rb -n 200000 -P 64 XADD '{s:raw}:events' MAXLEN '~' 100000 '*' t delta d "$data")"
taskset -c 1 "$bench" --url "$url" --mode wake --rounds 1000
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
