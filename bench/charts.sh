#!/usr/bin/env bash
# Charts of one bench/run.sh run (gnuplot, PNG):
#   bench-cpu-per-event.png  server CPU µs per event by workload and peer
#   bench-p99.png            latency p99 by workload and peer
#   bench-latency-paced.png  latency percentiles, paced workload (run 1)
#   bench-latency-fanout.png latency percentiles, fan-out workloads (run 1)
# Usage: bash bench/charts.sh DATA.tsv WORKDIR OUTDIR   (WORKDIR has pct-*.txt)
set -euo pipefail
DATA=$1 WORK=$2 OUT=$3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUT" "$WORK/chart"
/usr/bin/python3 "$ROOT/bench/summarize.py" "$DATA" --chart-data "$WORK/chart" >/dev/null

bars() {  # bars DATFILE PNG TITLE YLABEL
  gnuplot <<GP
set terminal pngcairo size 900,480 font "sans,10"
set output "$2"
set title "$3"
set ylabel "$4"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set grid ytics
set key top left
set datafile missing "-"
plot for [i=2:7] "$1" using i:xtic(1) title columnheader(i)
GP
}
bars "$WORK/chart/cpu.dat" "$OUT/bench-cpu-per-event.png" \
  "Server CPU per delivered event (median of runs; lower is better)" "µs of CPU per event (log)"
bars "$WORK/chart/p99.dat" "$OUT/bench-p99.png" \
  "Latency p99, publish to client (median of runs; lower is better)" "ms (log)"

curves() {  # curves PNG TITLE FILE:LABEL...
  local png=$1 title=$2; shift 2
  local plot="" spec file label
  for spec in "$@"; do
    file=${spec%%:*} label=${spec#*:}
    [[ -s $file ]] || continue
    [[ -n $plot ]] && plot+=", "
    plot+="'$file' using (-log10(1.0001-\$1/100)):(\$2/1000.0) with linespoints title '$label'"
  done
  [[ -n $plot ]] || return 0
  gnuplot <<GP
set terminal pngcairo size 900,480 font "sans,10"
set output "$png"
set title "$title"
set xlabel "percentile"
set ylabel "latency, ms (log)"
set logscale y
set grid
set key top left
set xtics ("50" -log10(1.0001-0.5), "90" -log10(1.0001-0.9), "99" -log10(1.0001-0.99), "99.9" -log10(1.0001-0.999), "max" -log10(1.0001-1))
plot $plot
GP
}
specs=()
for p in floor sluice sluice-auth node fastapi; do specs+=("$WORK/pct-paced-$p-1.txt:$p"); done
curves "$OUT/bench-latency-paced.png" \
  "Paced: 1,000 streams x 50 tokens/s, latency distribution (run 1)" "${specs[@]}"
specs=()
for w in fanout10 fanout1000; do
  for p in floor sluice node nchan fastapi; do specs+=("$WORK/pct-$w-$p-1.txt:$p $w"); done
done
curves "$OUT/bench-latency-fanout.png" \
  "Fan-out: 1,000 subscribers, latency distribution (run 1)" "${specs[@]}"
