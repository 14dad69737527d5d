import json, statistics, sys
# Reads `ghosthunt bench --json` lines on stdin; prints each run and the median of every figure.
label = sys.argv[1] if len(sys.argv) > 1 else ""
runs = [json.loads(l) for l in sys.stdin if l.strip()]
def row(r):
    return (f"{r['events']} ev, {r['hunts']} hunts, {r['events_per_second']:.0f} ev/s, "
            f"{r['megabytes_per_second']:.1f} MB/s, alerts {r['alerts']}, "
            f"p50/p99/max {r['latency']['p50']*1e3:.1f}/{r['latency']['p99']*1e3:.1f}/{r['latency']['max']*1e3:.1f} ms, "
            f"RSS {r['peak_rss_bytes']/2**20:.0f} MiB, CPU {r['cpu_seconds_per_million_events']:.2f} s/M ev")
print(f"== {label}")
for r in runs:
    print("   run:    " + row(r))
med = lambda f: statistics.median(f(r) for r in runs)
m = {
    "events": runs[0]["events"], "hunts": runs[0]["hunts"], "alerts": med(lambda r: r["alerts"]),
    "events_per_second": med(lambda r: r["events_per_second"]),
    "megabytes_per_second": med(lambda r: r["megabytes_per_second"]),
    "latency": {k: med(lambda r: r["latency"][k]) for k in ("p50", "p99", "max")},
    "peak_rss_bytes": med(lambda r: r["peak_rss_bytes"]),
    "cpu_seconds_per_million_events": med(lambda r: r["cpu_seconds_per_million_events"]),
}
print(f"   median: {row(m)}  ({len(runs)} runs)")
