#!/usr/bin/env bash
# The write cost of --data-dir (docs/durability.md, Cost): the paced and
# tokens workloads against `sluice serve` memory-only and with --data-dir,
# interleaved (memory, disk, memory, disk, ...), the server pinned to
# SERVER_CORE and the load generator to LOADGEN_CORE, a fresh server and a
# fresh data folder per run. Prints one line per run and the per-pair ratios.
#
#   bash bench/durable_pair.sh [BUILD_DIR]
#   RUNS=5 WORKLOADS="paced tokens" EXTRA_DISK_ARGS="--fsync always" bash bench/durable_pair.sh
#
# To compare two builds (e.g. before and after a change to src/store),
# interleave them run by run: for i in 1 2 3 4 5; do RUNS=1 bash
# bench/durable_pair.sh OLD_BUILD; RUNS=1 bash bench/durable_pair.sh build; done
set -euo pipefail
BUILD=${1:-build}
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-"paced tokens"}
SERVER_CORE=${SERVER_CORE:-0}
LOADGEN_CORE=${LOADGEN_CORE:-1}
EXTRA_DISK_ARGS=${EXTRA_DISK_ARGS:-}
# Seconds to wait before each server starts (and after the data folder of
# the previous run is deleted). This VM reports free memory to its host
# (free page reporting): memory freed just before a run is cheap to fault in
# again, memory reported meanwhile is not, so without a pause each run's cost
# depends on what the previous one freed. A pause of a few seconds starts
# every run from reported memory (docs/benchmarks.md, "--data-dir").
SETTLE_S=${SETTLE_S:-0}
WORK=$(mktemp -d /tmp/sluice_durable_pair.XXXXXX)
SERVER_PID=
cleanup() {
  if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() {
  local stat
  stat=$(<"/proc/$SERVER_PID/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))
}
writer_ticks() {  # utime+stime of the durable log's writer thread (0 without one)
  local t stat
  for t in /proc/"$SERVER_PID"/task/*; do
    if [[ $(<"$t/comm") == sluice-writer ]]; then
      stat=$(<"$t/stat")
      stat=${stat##*) }
      # shellcheck disable=SC2086
      set -- $stat
      echo $((${12} + ${13}))
      return
    fi
  done
  echo 0
}
field() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"; }
CLK_TCK=$(getconf CLK_TCK)

run_one() {  # MODE WORKLOAD -> "cpu_s events_per_s p99_ms bytes_written"
  local mode=$1 workload=$2 port args=() lg=()
  port=$(pick_port)
  rm -rf "$WORK/data"
  if [[ $mode == disk ]]; then
    # shellcheck disable=SC2206
    args=(--data-dir "$WORK/data" $EXTRA_DISK_ARGS)
  fi
  if [[ $SETTLE_S != 0 ]]; then sleep "$SETTLE_S"; fi
  taskset -c "$SERVER_CORE" "$BUILD/sluice" serve --enable-bench --max-connections-per-ip 0 \
    --max-streams-per-subject 0 --host 127.0.0.1 --port "$port" --threads 1 \
    --max-connections 20000 --heartbeat-ms 10000 "${args[@]}" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 150); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/healthz" || true) == 200 ]] && break
    sleep 0.1
  done
  case $workload in
    paced) lg=(--connections 1000 --tokens 200 --bytes 8 --rate 50) ;;
    tokens) lg=(--connections 1000 --tokens 2000 --bytes 8 --rate 0) ;;
  esac
  local before after out wbefore wafter
  before=$(cpu_ticks)
  wbefore=$(writer_ticks)
  out=$(taskset -c "$LOADGEN_CORE" "$BUILD/sluice_loadgen" tokens --host 127.0.0.1 --port "$port" \
    --timeout-seconds 30 --json "${lg[@]}")
  after=$(cpu_ticks)
  wafter=$(writer_ticks)
  kill -INT "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=
  local written=0
  if [[ $mode == disk ]]; then
    written=$(sed -n 's/.*durable log: \([0-9]*\) records (\([0-9]*\) events), \([0-9]*\) bytes written.*/\1 \2 \3/p' "$WORK/server.log" | tail -n 1)
  fi
  echo "$(awk -v t=$((after - before)) -v k="$CLK_TCK" 'BEGIN{printf "%.2f", t/k}') $(field "$out" events_per_s) $(field "$out" latency_us_p99) $(awk -v t=$((wafter - wbefore)) -v k="$CLK_TCK" 'BEGIN{printf "%.2f", t/k}') ${written:-0}"
}

# The summary of one workload's pairs: the median of the per-pair CPU ratios
# (the target's figure), the pooled ratio (sum of disk CPU over sum of
# memory-only CPU: one slow memory-only run moves it a lot on this VM), the
# writer thread's CPU as a share of its pair's memory-only CPU, and the
# median throughput ratio.
summarize() {  # WORKLOAD, then lines "mem_cpu disk_cpu writer_cpu mem_ev disk_ev" on stdin
  awk -v w="$1" '
    function median(a, n,   i, j, t) {
      for (i = 2; i <= n; ++i) for (j = i; j > 1 && a[j-1] > a[j]; --j) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    { ++n; cpu[n] = ($2/$1 - 1) * 100; wr[n] = $3/$1 * 100; tp[n] = $5/$4; sm += $1; sd += $2 }
    END { if (n) printf "%s summary of %d pairs: cpu %+.1f%% by the median, %+.1f%% pooled; writer thread %.1f%% of memory-only (median); throughput x%.2f (median)\n",
            w, n, median(cpu, n), (sd/sm - 1) * 100, median(wr, n), median(tp, n) }'
}

echo "# $(date -u +%FT%TZ) load average $(cut -d' ' -f1-3 /proc/loadavg); EXTRA_DISK_ARGS='$EXTRA_DISK_ARGS'"
for workload in $WORKLOADS; do
  pairs=()
  for i in $(seq 1 "$RUNS"); do
    m=$(run_one memory "$workload")
    d=$(run_one disk "$workload")
    read -r mc me mp _ <<<"$m"
    read -r dc de dp dw drec devents dbytes <<<"$d"
    pairs+=("$mc $dc $dw $me $de")
    echo "$workload run $i (load $(cut -d' ' -f1 /proc/loadavg)): memory cpu ${mc}s ${me} ev/s p99 ${mp}us | disk cpu ${dc}s (writer thread ${dw}s) ${de} ev/s p99 ${dp}us" \
      "(${drec:-?} records, ${devents:-?} events, ${dbytes:-?} bytes, $(awk -v b="${dbytes:-0}" -v e="${devents:-0}" 'BEGIN{if (e > 0) printf "%.1f", b/e; else printf "?"}') B/event) | cpu $(awk -v a="$mc" -v b="$dc" 'BEGIN{printf "%+.0f%%", (b/a-1)*100}')" \
      "throughput x$(awk -v a="$me" -v b="$de" 'BEGIN{printf "%.2f", b/a}')"
  done
  printf '%s\n' "${pairs[@]}" | summarize "$workload"
done
