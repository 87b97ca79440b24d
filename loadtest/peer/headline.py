#!/usr/bin/env python3
"""Medians of one interleaved run (bench-matrix.sh) and the headline ratios.

Per label: the median of each column over its repetitions (p99 is the median of the per-run
p99s). Headline: for each keyway label, keyway ÷ nginx with the same N, computed per
repetition (the two runs of a pair are adjacent in time) and then the median, on req/s and
on gateway CPU µs per request; p99 likewise.

    headline.py BENCH_TSV RUN_ID [PEER_PREFIX]

PEER_PREFIX (default `nginx-w`) names what each keyway label is divided by: `keyway-base-`
compares a change with the build before it (bench-matrix's keyway-base entries).
"""
import csv
import statistics
import sys
from collections import defaultdict


def main(path, run_id, peer_prefix="nginx-w"):
    rows = [r for r in csv.DictReader(open(path), delimiter="\t") if r["run_id"] == run_id]
    if not rows:
        sys.exit(f"headline.py: no rows for run {run_id} in {path}")
    by = defaultdict(dict)
    for r in rows:
        by[r["label"]][int(r["rep"])] = r
    cols = [("rps", "req/s", "{:.0f}"), ("p50_us", "p50 µs", "{:.0f}"), ("p99_us", "p99 µs", "{:.0f}"),
            ("gw_us_per_req", "gateway CPU µs/req", "{:.1f}"), ("up_us_per_req", "upstream CPU µs/req", "{:.1f}"),
            ("wrk_us_per_req", "wrk CPU µs/req", "{:.1f}"), ("non2xx", "non-2xx", "{:.0f}"),
            ("other_pct", "other CPU %", "{:.1f}")]
    print(f"run {run_id}: medians over repetitions\n")
    print("| label | reps | " + " | ".join(c[1] for c in cols) + " |")
    print("|---|--:|" + "--:|" * len(cols))
    for label in sorted(by):
        reps = by[label]
        cells = []
        for key, _, fmt in cols:
            vals = [float(r[key]) for r in reps.values() if r[key] not in ("", "-")]
            cells.append(fmt.format(statistics.median(vals)) if vals else "-")
        print(f"| {label} | {len(reps)} | " + " | ".join(cells) + " |")
    peer_name = peer_prefix.rstrip("-")
    print(f"\nkeyway ÷ {peer_name}, per repetition then the median (req/s: > 1 is better; CPU and p99: < 1 is better)\n")
    print("| pair | req/s ratio | gateway CPU/req ratio | p99 ratio | per-rep req/s ratios |")
    print("|---|--:|--:|--:|---|")
    for label in sorted(by):
        if not label.startswith("keyway") or label.startswith(peer_prefix):
            continue
        n = label.rsplit("-", 1)[1]
        peer = by.get(f"{peer_prefix}{n}")
        if not peer:
            continue
        ratios = defaultdict(list)
        for rep, r in by[label].items():
            p = peer.get(rep)
            if not p:
                continue
            ratios["rps"].append(float(r["rps"]) / float(p["rps"]))
            ratios["cpu"].append(float(r["gw_us_per_req"]) / float(p["gw_us_per_req"]))
            ratios["p99"].append(float(r["p99_us"]) / float(p["p99_us"]))
        if not ratios["rps"]:
            continue
        med = {k: statistics.median(v) for k, v in ratios.items()}
        each = " ".join(f"{x:.2f}" for x in ratios["rps"])
        print(f"| {label} ÷ {peer_prefix}{n} | {med['rps']:.2f} | {med['cpu']:.2f} | {med['p99']:.2f} | {each} |")


if __name__ == "__main__":
    main(*sys.argv[1:4])
