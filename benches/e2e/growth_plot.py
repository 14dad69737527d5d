"""Plots growth.csv (from growth.sh): events/s and peak RSS against rules and against events.

    python growth_plot.py growth.csv growth.png
"""
import csv
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
# Medians per (axis, rules, events); the whole set on the whole backlog is a point of both axes.
groups = defaultdict(list)
for r in rows:
    groups[(r["axis"], int(r["hunts"]), int(r["events"]))].append(r)
full = max(k[1] for k in groups)
backlog = max(k[2] for k in groups if k[0] == "rules")


def median(rs, key):
    return statistics.median(float(r[key]) for r in rs)


def series(points):
    points = sorted(points)
    return [p[0] for p in points], [p[1] for p in points], [p[2] for p in points]


by_rules = series(
    (h, median(rs, "events_per_second"), median(rs, "peak_rss_mib"))
    for (axis, h, e), rs in groups.items()
    if axis == "rules"
)
by_events = series(
    (e, median(rs, "events_per_second"), median(rs, "peak_rss_mib"))
    for (axis, h, e), rs in groups.items()
    if (axis == "events" or (h == full and e == backlog))
)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, (x, rate, rss), label, log in (
    (axes[0], by_rules, "Sigma rules loaded (OTRF atomic backlog, 647,017 events)", False),
    (axes[1], by_events, f"events (all {full:,} rules)", True),
):
    ax.plot(x, [r / 1000 for r in rate], "o-", color="tab:blue")
    ax.set_xlabel(label)
    ax.set_ylabel("thousand events/s", color="tab:blue")
    ax.set_ylim(bottom=0)
    if log:
        ax.set_xscale("log")
    twin = ax.twinx()
    twin.plot(x, rss, "s--", color="tab:red")
    twin.set_ylabel("peak RSS, MiB", color="tab:red")
    twin.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
fig.suptitle("ghosthunt: file → decode → Sigma rules → alerts, 2 cores (medians)")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"wrote {sys.argv[2]}")
