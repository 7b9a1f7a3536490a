"""Summarise one bench/run.sh run: markdown tables with ranges over runs and
ratios to the floor server (each ratio taken within one run, then ranged).

    python3 bench/summarize.py DATA.tsv                 markdown on stdout
    python3 bench/summarize.py DATA.tsv --chart-data D  also gnuplot inputs in D
"""
import csv
import os
import sys
from collections import defaultdict

PEER_ORDER = ["floor", "sluice", "sluice-auth", "node", "nchan", "fastapi"]


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def load(path):
    rows = defaultdict(dict)  # (workload, peer) -> run -> row
    with open(path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            rows[(r["workload"], r["peer"])][int(r["run"])] = r
    return rows


def rng(values, fmt):
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    lo, hi = min(vals), max(vals)
    if fmt(lo) == fmt(hi):
        return fmt(lo)
    return f"{fmt(lo)}–{fmt(hi)}"


def median(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    m = len(vals) // 2
    return vals[m] if len(vals) % 2 else (vals[m - 1] + vals[m]) / 2


def f0(v):
    return f"{v:,.0f}"


def f1(v):
    return f"{v:,.1f}"


def f2(v):
    return f"{v:,.2f}"


def ms(v):
    return f"{v / 1000:,.2f}"


def ratio_range(rows, workload, peer, key, transform=lambda v: v):
    """peer/floor for each run where both have the figure."""
    mine = rows.get((workload, peer), {})
    floor = rows.get((workload, "floor"), {})
    ratios = []
    for run, r in mine.items():
        f = floor.get(run)
        if not f:
            continue
        a, b = num(r[key]), num(f[key])
        if a is None or b is None or b == 0:
            continue
        ratios.append(transform(a) / transform(b))
    return ratios


COLUMNS = {
    "tokens": [
        ("events/s", "events_per_s", f0, True),
        ("server CPU µs/event", "cpu_us_per_event", f2, True),
        ("latency p99 ms", "p99_us", ms, False),
        ("TTFE p50 ms", "ttfe_p50_ms", f1, True),
        ("TTFE p99 ms", "ttfe_p99_ms", f1, False),
        ("events delivered", "events", f0, False),
        ("errors", "errors", f0, False),
    ],
    "paced": [
        ("server CPU s", "server_cpu_s", f2, True),
        ("server CPU µs/event", "cpu_us_per_event", f2, False),
        ("latency p50 ms", "p50_us", ms, False),
        ("latency p99 ms", "p99_us", ms, True),
        ("stream length p50 s", "stream_p50_s", f2, False),
        ("stream length max s", "stream_max_s", f2, False),
        ("errors", "errors", f0, False),
    ],
    "fanout10": [
        ("latency p50 ms", "p50_us", ms, False),
        ("latency p99 ms", "p99_us", ms, True),
        ("latency max ms", "max_us", ms, False),
        ("server CPU s", "server_cpu_s", f2, True),
        ("publisher events/s", "publish_rate", f1, False),
        ("subscribers with every event", "subscribers_complete", f0, False),
        ("errors", "errors", f0, False),
    ],
    "fanout1000": [
        ("events delivered", "events", f0, False),
        ("publisher events/s", "publish_rate", f1, True),
        ("latency p50 ms", "p50_us", ms, False),
        ("latency p99 ms", "p99_us", ms, True),
        ("server CPU s", "server_cpu_s", f2, True),
        ("subscribers with every event", "subscribers_complete", f0, False),
        ("errors", "errors", f0, False),
    ],
    "idle": [
        ("server RSS per connection B", "rss_per_conn_b", f0, True),
        ("errors", "errors", f0, False),
    ],
    "wsidle": [
        ("server RSS per idle WebSocket B", "rss_per_conn_b", f0, False),
    ],
}

TITLES = {
    "tokens": "Tokens, unpaced: 1,000 streams × 2,000 tokens of 8 B",
    "paced": "Paced: 1,000 streams × 200 tokens at 50 tokens/s (ideal stream length 3.98 s)",
    "fanout10": "Fan-out: 1,000 subscribers of one stream, 50 events at 10 events/s",
    "fanout1000": "Fan-out: 1,000 subscribers of one stream, 1,000 events at 1,000 events/s",
    "idle": "Idle: 10,000 SSE subscribers",
    "wsidle": "Idle WebSocket (Sluice only): 2,000 connections, no deflate",
}


def tables(rows):
    out = []
    workloads = []
    for (w, _p) in rows:
        if w not in workloads:
            workloads.append(w)
    order = [w for w in COLUMNS if w in workloads]
    for w in order:
        peers = [p for p in PEER_ORDER if (w, p) in rows]
        cols = COLUMNS[w]
        runs = max(len(rows[(w, p)]) for p in peers)
        out.append(f"### {TITLES[w]}")
        out.append("")
        out.append(f"Ranges are over {runs} run(s); “× floor” is the peer's figure divided by "
                   "the floor's in the same run.")
        out.append("")
        head = ["peer"]
        for name, _k, _f, with_ratio in cols:
            head.append(name)
            if with_ratio and w not in ("wsidle",):
                head.append("× floor")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for p in peers:
            cells = [p]
            for name, key, fmt, with_ratio in cols:
                vals = [num(r[key]) for r in rows[(w, p)].values()]
                cells.append(rng(vals, fmt))
                if with_ratio and w not in ("wsidle",):
                    rs = ratio_range(rows, w, p, key)
                    cells.append(rng(rs, lambda v: f"{v:.2f}") if p != "floor" else "1")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return out


def goals(rows):
    def r(w, p, key):
        return [num(x[key]) for x in rows.get((w, p), {}).values()]

    def verdict(ok):
        return "met" if ok else "NOT met"

    lines = ["### Goals (issue 10), Sluice against the floor in the same run", "",
             "| goal | measured (range over runs) | verdict |", "|---|---|---|"]

    def add(goal, values, ok_fn, fmt):
        vals = [v for v in values if v is not None]
        if not vals:
            lines.append(f"| {goal} | not measured | - |")
            return
        lines.append(f"| {goal} | {rng(vals, fmt)} | {verdict(all(ok_fn(v) for v in vals))} |")

    add("paced: server CPU ≤ 1.5× floor", ratio_range(rows, "paced", "sluice", "server_cpu_s"),
        lambda v: v <= 1.5, lambda v: f"{v:.2f}×")
    add("paced: p99 ≤ 1.5× floor", ratio_range(rows, "paced", "sluice", "p99_us"),
        lambda v: v <= 1.5, lambda v: f"{v:.2f}×")
    add("paced: stream length within 1% of ideal (3.98 s)", r("paced", "sluice", "stream_max_s"),
        lambda v: abs(v - 3.98) <= 0.0398, lambda v: f"{v:.3f} s (max)")
    add("unpaced: events/s ≥ 0.6× floor", ratio_range(rows, "tokens", "sluice", "events_per_s"),
        lambda v: v >= 0.6, lambda v: f"{v:.2f}×")
    add("unpaced: TTFE p50 ≤ 1.5× floor", ratio_range(rows, "tokens", "sluice", "ttfe_p50_ms"),
        lambda v: v <= 1.5, lambda v: f"{v:.2f}×")
    add("fan-out 10 ev/s: p99 ≤ 5 ms", r("fanout10", "sluice", "p99_us"),
        lambda v: v <= 5000, ms_unit)
    fan = rows.get(("fanout1000", "sluice"), {}).values()
    add("fan-out 1,000 ev/s: every event delivered",
        [num(x["events"]) / num(x["expected"]) if num(x["expected"]) else None for x in fan],
        lambda v: v >= 1.0, lambda v: f"{100 * v:.2f}% delivered")
    add("fan-out 1,000 ev/s: publisher keeps its rate (≥ 990/s)", r("fanout1000", "sluice", "publish_rate"),
        lambda v: v >= 990, lambda v: f"{v:.0f}/s")
    add("idle SSE ≤ ~1.5 KB per subscriber", r("idle", "sluice", "rss_per_conn_b"),
        lambda v: v <= 1536, lambda v: f"{v:,.0f} B")
    add("idle WebSocket < 4 KB", r("wsidle", "sluice", "rss_per_conn_b"),
        lambda v: v < 4096, lambda v: f"{v:,.0f} B")
    lines.append("")
    return lines


def auth_table(rows):
    """Sluice with --auth jwt against Sluice without, each ratio within one run."""
    if not any(p == "sluice-auth" for (_w, p) in rows):
        return []
    lines = ["### Auth on against auth off (sluice-auth ÷ sluice, same run)", "",
             "| workload | figure | auth off | auth on | on ÷ off |", "|---|---|---|---|---|"]
    for w, figures in (
        ("tokens", [("events/s", "events_per_s", f0), ("server CPU µs/event", "cpu_us_per_event", f2),
                    ("TTFE p50 ms", "ttfe_p50_ms", f1), ("latency p99 ms", "p99_us", ms)]),
        ("paced", [("server CPU µs/event", "cpu_us_per_event", f2), ("latency p50 ms", "p50_us", ms),
                   ("latency p99 ms", "p99_us", ms), ("stream length max s", "stream_max_s", f2)]),
    ):
        off, on = rows.get((w, "sluice"), {}), rows.get((w, "sluice-auth"), {})
        if not off or not on:
            continue
        for name, key, fmt in figures:
            ratios = [num(on[r][key]) / num(off[r][key]) for r in on
                      if r in off and num(on[r][key]) is not None and num(off[r][key])]
            lines.append(f"| {w} | {name} | {rng([num(x[key]) for x in off.values()], fmt)} | "
                         f"{rng([num(x[key]) for x in on.values()], fmt)} | "
                         f"{rng(ratios, lambda v: f'{v:.2f}')} |")
    lines.append("")
    return lines


def ms_unit(v):
    return f"{v / 1000:.2f} ms"


def chart_data(rows, d):
    os.makedirs(d, exist_ok=True)
    # CPU per event (µs) by workload and peer; p99 (ms) by workload and peer.
    for name, key, scale, workloads in (
        ("cpu", "cpu_us_per_event", 1.0, ["tokens", "paced", "fanout1000"]),
        ("p99", "p99_us", 1e-3, ["paced", "fanout10", "fanout1000"]),
    ):
        with open(os.path.join(d, f"{name}.dat"), "w") as f:
            f.write("workload " + " ".join(PEER_ORDER) + "\n")
            for w in workloads:
                vals = []
                for p in PEER_ORDER:
                    m = median(num(x[key]) for x in rows.get((w, p), {}).values())
                    vals.append("-" if m is None else f"{m * scale:.4f}")
                f.write(w + " " + " ".join(vals) + "\n")


def main():
    rows = load(sys.argv[1])
    print("\n".join(goals(rows)))
    print("\n".join(auth_table(rows)))
    print("\n".join(tables(rows)))
    if len(sys.argv) > 3 and sys.argv[2] == "--chart-data":
        chart_data(rows, sys.argv[3])


if __name__ == "__main__":
    main()
