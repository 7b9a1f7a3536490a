#!/usr/bin/env bash
# The two-node benchmark of `make bench` (issue 9; figures in docs/scaling.md
# and docs/benchmarks.md): cross-node fan-out (publish on node A, every
# subscriber on node B, one Redis between them) against a single node in the
# same run, and against the ceiling of Redis itself for the same command mix
# (redis-benchmark running the publish script with EVALSHA).
#
# Configurations, each on fresh processes, interleaved per repeat (repeat 1 of
# every configuration, then repeat 2, ...), so a burst of load from the other
# users of this shared machine hits them alike:
#   single        one `sluice serve --memory-only`: publish and subscribe on it
#   single-redis  one `sluice serve --redis URL`: publish and subscribe on it
#   two-node      `sluice serve --redis URL` twice: publish on A, subscribe on B
#   paired        (only when asked: CONFIGS=paired) A and B both on the fan-out
#                 core, half the subscribers on each (`--second-port`): the
#                 same events read on the publisher's node and on another one
#
# Pinning on a 2-core machine (override with the variables below):
#   core 0 (FANOUT_CORE):  the node the subscribers read (single's only node,
#                          node B) - the same core in every configuration
#   core 1 (OTHER_CORE):   the load generator, Redis and node A (the
#                          publisher's node): they share this core
# So the node doing the fan-out has a core to itself in each configuration
# and the extra processes of the two-node setup (Redis, A) compete with the
# load generator, not with the fan-out.
#
# Workloads (sluice_loadgen fanout; publisher keeps up to 32 requests in flight):
#   unpaced  SUBS_UNPACED subscribers, EVENTS_UNPACED events published as fast
#            as the path takes them: delivered events/s (throughput)
#   moderate SUBS_MODERATE subscribers, EVENTS_MODERATE events at
#            RATE_MODERATE/s, a load the single node keeps up with:
#            publish-to-delivery latency p50/p99 (the "added latency" of the
#            hop A -> Redis -> B) and the CPU seconds of every server process
#            (300 events: the p99 of 60,000 deliveries is set by the worst 3
#            events, not by one hiccup of this shared machine as with 100)
#   paced    SUBS_PACED subscribers, EVENTS_PACED events at RATE_PACED/s (a
#            heavier paced load, which the single node falls behind on
#            this shared machine): latency and CPU again
#
# Usage: bench/redis/run_two_node_bench.sh [BUILD_DIR]   (default: build)
# Knobs: REPEATS (3) SUBS_UNPACED (200) EVENTS_UNPACED (3000) SUBS_MODERATE (200)
#        EVENTS_MODERATE (300) RATE_MODERATE (20) SUBS_PACED (500)
#        EVENTS_PACED (500) RATE_PACED (100) FANOUT_CORE (0) OTHER_CORE (1)
#        REDIS_CORE, A_CORE (OTHER_CORE: where Redis and node A run)
#        LOADGEN_NICE (0): the load generator's nice value. It shares its core
#        with Redis and node A; at 10 their wake-ups (the cross-node hop) are
#        not queued behind its reading of every subscriber's stream
#        WORKLOADS ("unpaced moderate paced")
#        CONFIGS ("single single-redis two-node") RESULTS_DIR (bench/results)
# Writes bench/results/<stamp>-two-node.md (and latest-two-node.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SLUICE=$BUILD/sluice
LOADGEN=$BUILD/sluice_loadgen
REDIS_BENCH=$BUILD/sluice_redis_bench
REPEATS=${REPEATS:-3}
SUBS_UNPACED=${SUBS_UNPACED:-200}
EVENTS_UNPACED=${EVENTS_UNPACED:-3000}
SUBS_MODERATE=${SUBS_MODERATE:-200}
EVENTS_MODERATE=${EVENTS_MODERATE:-300}
RATE_MODERATE=${RATE_MODERATE:-20}
WORKLOADS=${WORKLOADS:-"unpaced moderate paced"}
SUBS_PACED=${SUBS_PACED:-500}
EVENTS_PACED=${EVENTS_PACED:-500}
RATE_PACED=${RATE_PACED:-100}
FANOUT_CORE=${FANOUT_CORE:-0}
OTHER_CORE=${OTHER_CORE:-1}
REDIS_CORE=${REDIS_CORE:-$OTHER_CORE}
A_CORE=${A_CORE:-$OTHER_CORE}
LOADGEN_NICE=${LOADGEN_NICE:-0}
CONFIGS=${CONFIGS:-"single single-redis two-node"}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
TIMEOUT_SECONDS=${TIMEOUT_SECONDS:-60}

die() { echo "run_two_node_bench: $*" >&2; exit 1; }
for bin in "$SLUICE" "$LOADGEN" "$REDIS_BENCH"; do
  [[ -x $bin ]] || die "$bin not found (cmake --build $BUILD --target sluice sluice_loadgen sluice_redis_bench)"
done
for tool in redis-server redis-cli redis-benchmark taskset curl python3; do
  command -v "$tool" >/dev/null || die "$tool is required (scripts/setup.sh bench)"
done
if [[ $CONFIGS == *redis* || $CONFIGS == *two-node* ]]; then
  [[ $("$SLUICE" serve --help 2>&1) == *--redis* ]] || die "this sluice has no --redis flag"
fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-two-node-bench.XXXXXX")
PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # wait_for WHAT PID CHECK...
  local what=$1 pid=$2
  shift 2
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || die "$what exited during start-up (logs in $WORK)"
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "$what did not start in 15 s"
}
healthz() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/healthz") == 200 ]]; }
ticks() {  # utime+stime of a pid, in clock ticks
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))
}
CLK_TCK=$(getconf CLK_TCK)

start_redis() {  # sets REDIS_PORT REDIS_PID
  REDIS_PORT=$(free_port)
  mkdir -p "$WORK/redis"
  rm -f "$WORK/redis/"*
  # No persistence in the benchmark: it measures the data path, not the disk
  # (docs/scaling.md prescribes AOF with appendfsync always for production).
  taskset -c "$REDIS_CORE" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" \
    --save '' --appendonly no --daemonize no --logfile "$WORK/redis/redis.log" &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  wait_for redis "$REDIS_PID" redis-cli -p "$REDIS_PORT" ping
}
NODE_FLAGS=(--host 127.0.0.1 --threads 1 --max-connections 20000 --max-connections-per-ip 0
            --max-streams-per-subject 0 --heartbeat-ms 10000 --web-root /nonexistent --log-level warn)
start_node() {  # start_node NAME CORE EXTRA... ; sets NODE_PORT NODE_PID NODE_CMD
  local name=$1 core=$2
  shift 2
  NODE_PORT=$(free_port)
  NODE_CMD=(taskset -c "$core" "$SLUICE" serve "${NODE_FLAGS[@]}" --port "$NODE_PORT" "$@")
  "${NODE_CMD[@]}" >"$WORK/node-$name.log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  wait_for "node $name" "$NODE_PID" healthz "$NODE_PORT"
}

DATA=$WORK/data.jsonl
COMMANDS=$WORK/commands.md
: >"$DATA"
: >"$COMMANDS"
FAILED=0
T0=$(date +%s)

run_config() {  # run_config CONFIG WORKLOAD REPEAT
  local config=$1 workload=$2 repeat=$3
  local sub_port pub_port second_port= pids=() names=()
  case $config in
    single)
      start_node single "$FANOUT_CORE" --memory-only
      sub_port=$NODE_PORT pub_port=$NODE_PORT
      pids=("$NODE_PID") names=(node)
      local cmd_a="${NODE_CMD[*]}" ;;
    single-redis)
      start_redis
      start_node single "$FANOUT_CORE" --redis "redis://127.0.0.1:$REDIS_PORT" --node-id a
      sub_port=$NODE_PORT pub_port=$NODE_PORT
      pids=("$NODE_PID" "$REDIS_PID") names=(node redis)
      local cmd_a="${NODE_CMD[*]}" ;;
    two-node)
      start_redis
      start_node a "$A_CORE" --redis "redis://127.0.0.1:$REDIS_PORT" --node-id a
      pub_port=$NODE_PORT
      local a_pid=$NODE_PID cmd_a="${NODE_CMD[*]}"
      start_node b "$FANOUT_CORE" --redis "redis://127.0.0.1:$REDIS_PORT" --node-id b
      sub_port=$NODE_PORT
      local cmd_b="${NODE_CMD[*]}"
      pids=("$NODE_PID" "$a_pid" "$REDIS_PID") names=(node_b node_a redis) ;;
    paired)
      # Both nodes on the fan-out core, Redis on the other: half the
      # subscribers read A (the publisher's node, its own log), half read B
      # (through Redis), the same events at the same moments, so a noisy
      # minute of the machine hits both halves. B's half also waits for A's
      # fan-out on the shared core: the difference is an upper bound of the hop.
      start_redis
      start_node a "$FANOUT_CORE" --redis "redis://127.0.0.1:$REDIS_PORT" --node-id a
      pub_port=$NODE_PORT sub_port=$NODE_PORT
      local a_pid=$NODE_PID cmd_a="${NODE_CMD[*]}"
      start_node b "$FANOUT_CORE" --redis "redis://127.0.0.1:$REDIS_PORT" --node-id b
      second_port=$NODE_PORT
      local cmd_b="${NODE_CMD[*]}"
      pids=("$NODE_PID" "$a_pid" "$REDIS_PID") names=(node_b node_a redis) ;;
  esac
  local subs events rate
  case $workload in
    unpaced) subs=$SUBS_UNPACED events=$EVENTS_UNPACED rate=0 ;;
    moderate) subs=$SUBS_MODERATE events=$EVENTS_MODERATE rate=$RATE_MODERATE ;;
    paced) subs=$SUBS_PACED events=$EVENTS_PACED rate=$RATE_PACED ;;
    *) die "unknown workload $workload" ;;
  esac
  local stream="bench-$config-$workload-$repeat"
  local lg=(nice -n "$LOADGEN_NICE" taskset -c "$OTHER_CORE" "$LOADGEN" fanout --host 127.0.0.1 --port "$sub_port"
            --pub-port "$pub_port" --sub-path "/v1/streams/$stream/events" --connections "$subs"
            --tokens "$events" --bytes 8 --rate "$rate" --timeout-seconds "$TIMEOUT_SECONDS" --json
            ${second_port:+--second-port "$second_port"})
  if [[ $repeat == 1 ]]; then
    {
      echo "- $config / $workload: \`${cmd_a}\`${cmd_b:+ and \`$cmd_b\`} then \`${lg[*]}\`"
    } | sed -e "s|$ROOT/||g" -e "s|$WORK|\$WORK|g" -e 's/--port [0-9]*/--port PORT/g' \
        -e 's/--pub-port [0-9]*/--pub-port PORT_A/g' -e 's/--second-port [0-9]*/--second-port PORT_B/g' -e 's|redis://127.0.0.1:[0-9]*|redis://127.0.0.1:REDIS_PORT|g' >>"$COMMANDS"
  fi
  local before=() after=() i json rc=0
  for i in "${!pids[@]}"; do before[i]=$(ticks "${pids[i]}"); done
  json=$("${lg[@]}" 2>"$WORK/loadgen.err") || rc=$?
  for i in "${!pids[@]}"; do after[i]=$(ticks "${pids[i]}" 2>/dev/null || echo "${before[i]}"); done
  local cpu="{"
  for i in "${!pids[@]}"; do
    cpu+="\"${names[i]}\":$(awk -v t=$((after[i] - before[i])) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'),"
  done
  cpu="${cpu%,}}"
  stop_all
  if [[ -z $json ]]; then
    echo "run_two_node_bench: no JSON from the loadgen ($config/$workload, exit $rc):" >&2
    tail -5 "$WORK/loadgen.err" >&2
    FAILED=1
    return
  fi
  [[ $rc == 0 ]] || FAILED=1
  echo "{\"config\":\"$config\",\"workload\":\"$workload\",\"repeat\":$repeat,\"exit\":$rc,\"cpu_s\":$cpu,\"loadgen\":$json}" >>"$DATA"
  echo "== $config/$workload repeat $repeat: exit $rc, $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["events_per_s"], "events/s, p99", d["latency_us_p99"], "us, errors", d["errors"])' "$json")" >&2
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for repeat in $(seq 1 "$REPEATS"); do
  for workload in $WORKLOADS; do
    for config in $CONFIGS; do
      run_config "$config" "$workload" "$repeat"
    done
  done
done

# The ceiling of Redis itself for the command mix of a publish: the publish
# script, one event per call, called by redis-benchmark with the same
# arguments the store sends (sluice_redis_bench prints the command line).
CEILING=$WORK/ceiling.txt
: >"$CEILING"
start_redis
for pipeline in 1 32; do
  cmdline=$(taskset -c "$FANOUT_CORE" "$REDIS_BENCH" --url "redis://127.0.0.1:$REDIS_PORT" --batch 1 \
    --pipeline "$pipeline" --events 20000 | sed -n 's/^  redis-benchmark /redis-benchmark /p')
  [[ -n $cmdline ]] || { echo "run_two_node_bench: sluice_redis_bench printed no command" >&2; FAILED=1; continue; }
  # About 5 s of calls at the rates this machine gets (-P 1: one round trip each).
  cmdline=${cmdline/ -n 100000 / -n $((pipeline == 1 ? 5000 : 100000)) }
  for repeat in $(seq 1 "$REPEATS"); do
    # shellcheck disable=SC2086
    out=$(eval "taskset -c $FANOUT_CORE ${cmdline/redis-benchmark/redis-benchmark -q -c 1}" 2>&1 |
      tr '\r' '\n' | grep 'requests per second' | tail -1 | sed 's/.*: \([0-9.]*\) requests per second.*/\1/')
    echo "$pipeline $repeat $out" >>"$CEILING"
    echo "== redis-benchmark EVALSHA publish, 1 event/call, -P $pipeline: $out calls/s" >&2
  done
  echo "- ceiling, -P $pipeline: \`taskset -c $FANOUT_CORE ${cmdline/redis-benchmark/redis-benchmark -q -c 1}\`" |
    sed -e 's/-p [0-9]*/-p REDIS_PORT/' >>"$COMMANDS"
done
stop_all
T1=$(date +%s)

STAMP=$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/$STAMP-two-node.md
revision=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "# Two-node benchmark, $STAMP"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); took $((T1 - T0)) s; repository HEAD $revision"
  echo "- command: \`REPEATS=$REPEATS WORKLOADS=\"$WORKLOADS\" bash bench/redis/run_two_node_bench.sh\`"
  echo "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- pinning: core $FANOUT_CORE = the node the subscribers read (single / node B); core $OTHER_CORE = loadgen (nice $LOADGEN_NICE); Redis on core $REDIS_CORE, node A on core $A_CORE"
  echo "- unpaced: $SUBS_UNPACED subscribers x $EVENTS_UNPACED events as fast as possible; moderate: $SUBS_MODERATE subscribers x $EVENTS_MODERATE events at $RATE_MODERATE/s; paced: $SUBS_PACED subscribers x $EVENTS_PACED events at $RATE_PACED/s"
  echo
  python3 "$ROOT/bench/redis/summarize_two_node.py" "$DATA" "$CEILING"
  echo
  echo "## Commands (repeat 1; ports vary)"
  echo
  cat "$COMMANDS"
  echo
  echo "## Raw results (one JSON line per run)"
  echo
  echo '```'
  cat "$DATA"
  echo '```'
} >"$OUT"
cp "$OUT" "$RESULTS_DIR/latest-two-node.md"
echo "written to ${OUT#"$ROOT"/} (and latest-two-node.md)" >&2
[[ $FAILED == 0 ]]
