#!/usr/bin/env python3
"""Tables of bench/redis/run_two_node_bench.sh: one JSON line per run, and the
redis-benchmark ceiling ("PIPELINE REPEAT CALLS_PER_S" lines). Ratios are
taken within one repeat (the same minutes of a shared machine), then given as
ranges over repeats."""
import json
import sys


def rng(values, fmt="{:.0f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def main():
    runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    ceiling = [line.split() for line in open(sys.argv[2]) if line.strip()]
    by = {}
    for r in runs:
        by.setdefault((r["workload"], r["config"]), []).append(r)
    configs = [c for c in ("single", "single-redis", "two-node") if any(k[1] == c for k in by)]

    def repeats(workload, config):
        return {r["repeat"]: r for r in by.get((workload, config), [])}

    print("## Throughput (unpaced fan-out)")
    print()
    print("| configuration | delivered events/s | publish rate (events/s) | p99 latency (µs) | errors | × single (same repeat) |")
    print("|---|---|---|---|---|---|")
    single = repeats("unpaced", "single")
    for c in configs:
        rs = repeats("unpaced", c)
        ratios = [rs[k]["loadgen"]["events_per_s"] / single[k]["loadgen"]["events_per_s"]
                  for k in rs if k in single and single[k]["loadgen"]["events_per_s"]]
        print(f"| {c} | {rng([r['loadgen']['events_per_s'] for r in rs.values()])} "
              f"| {rng([r['loadgen'].get('publish_rate') for r in rs.values()])} "
              f"| {rng([r['loadgen']['latency_us_p99'] for r in rs.values()])} "
              f"| {rng([r['loadgen']['errors'] for r in rs.values()])} "
              f"| {rng(ratios, '{:.2f}')} |")
    print()
    for workload, title in (("moderate", "Latency and CPU at moderate load (paced fan-out the single node keeps up with)"),
                            ("paced", "Latency and CPU at a heavier paced load")):
        if not any(k[0] == workload for k in by):
            continue
        print(f"## {title}")
        print()
        print("| configuration | p50 (µs) | p99 (µs) | p99 added vs single, same repeat (µs) | CPU s: fan-out node | CPU s: node A | CPU s: Redis | CPU s: all | errors |")
        print("|---|---|---|---|---|---|---|---|---|")
        single = repeats(workload, "single")
        for c in configs:
            rs = repeats(workload, c)
            added = [rs[k]["loadgen"]["latency_us_p99"] - single[k]["loadgen"]["latency_us_p99"]
                     for k in rs if k in single]
            fan = [r["cpu_s"].get("node_b", r["cpu_s"].get("node")) for r in rs.values()]
            total = [sum(r["cpu_s"].values()) for r in rs.values()]
            print(f"| {c} | {rng([r['loadgen']['latency_us_p50'] for r in rs.values()])} "
                  f"| {rng([r['loadgen']['latency_us_p99'] for r in rs.values()])} "
                  f"| {rng(added) if c != 'single' else '-'} "
                  f"| {rng(fan, '{:.2f}')} "
                  f"| {rng([r['cpu_s'].get('node_a') for r in rs.values()], '{:.2f}')} "
                  f"| {rng([r['cpu_s'].get('redis') for r in rs.values()], '{:.2f}')} "
                  f"| {rng(total, '{:.2f}')} "
                  f"| {rng([r['loadgen']['errors'] for r in rs.values()])} |")
        print()
    paired_added = []
    for workload in ("unpaced", "moderate", "paced"):
        rs = repeats(workload, "paired")
        if not rs:
            continue
        if not paired_added:
            print("## Paired: the same events read on node A (the publisher's node) and on node B, one run")
            print()
            print("Both nodes on one core, Redis on the other. With `--redis` a publish goes to Redis")
            print("first, so A's readers get it through Redis too: this compares where a reader")
            print("connects, not one node against two (that is the table above).")
            print()
            print("| workload | repeat | p50 A (µs) | p50 B (µs) | p99 A (µs) | p99 B (µs) | p99 added, B − A (µs) | errors |")
            print("|---|---|---|---|---|---|---|---|")
        for k in sorted(rs):
            lg = rs[k]["loadgen"]
            if "latency_us_p99_b" not in lg:
                continue
            added = lg["latency_us_p99_b"] - lg["latency_us_p99_a"]
            if workload == "moderate":
                paired_added.append(added)
            print(f"| {workload} | {k} | {lg['latency_us_p50_a']:.0f} | {lg['latency_us_p50_b']:.0f} "
                  f"| {lg['latency_us_p99_a']:.0f} | {lg['latency_us_p99_b']:.0f} | {added:.0f} | {lg['errors']} |")
        paired_added = paired_added or [None]
    if paired_added:
        print()
    print("## Ceiling of Redis itself (redis-benchmark, the publish script by EVALSHA, 1 event per call, 1 connection)")
    print()
    print("| pipeline | calls/s = events/s |")
    print("|---|---|")
    for p in sorted({c[0] for c in ceiling}, key=int):
        vals = [float(c[2]) for c in ceiling if c[0] == p and len(c) > 2]
        print(f"| -P {p} | {rng(vals)} |")
    print()
    # The targets of issue 9.
    un_single = repeats("unpaced", "single")
    un_two = repeats("unpaced", "two-node")
    ratios = [un_two[k]["loadgen"]["events_per_s"] / un_single[k]["loadgen"]["events_per_s"]
              for k in un_two if k in un_single and un_single[k]["loadgen"]["events_per_s"]]
    p_single = repeats("moderate", "single")
    p_two = repeats("moderate", "two-node")
    added = [p_two[k]["loadgen"]["latency_us_p99"] - p_single[k]["loadgen"]["latency_us_p99"]
             for k in p_two if k in p_single]
    print("## Targets (issue 9)")
    print()
    print("| target | measured | met? |")
    print("|---|---|---|")
    if ratios:
        met = "yes" if min(ratios) >= 0.5 else ("in some repeats" if max(ratios) >= 0.5 else "**no**")
        print(f"| cross-node delivery throughput ≥ 0.5 × single-node | {rng(ratios, '{:.2f}')} × | {met} |")
    if added:
        med = sorted(added)[len(added) // 2]
        under = sum(1 for a in added if a < 2000)
        if under == len(added):
            met = "yes"
        elif under:
            met = f"in {under} of {len(added)} repeats (median {'under' if med < 2000 else 'over'} 2 ms)"
        else:
            met = "**no**"
        per = ", ".join(str(a) for a in added)
        print(f"| p99 added latency < 2 ms at moderate load (two-node p99 − single p99, same repeat) | {rng(added)} µs (per repeat: {per}; median {med}) | {met} |")
if __name__ == "__main__":
    main()
