import sys, re, urllib.request
# Prints p50/p99 of the end-to-end latency histogram (interpolated within buckets, as PromQL does), alert
# counts and process figures from a /metrics URL.
def scrape(url):
    return urllib.request.urlopen(url).read().decode()
def hist(text, name, labels):
    buckets=[]
    for line in text.splitlines():
        if line.startswith(name+"_bucket{"):
            m=re.match(r'[^{]+\{(.*)\} (\S+)$', line)
            lab=dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if all(lab.get(k)==v for k,v in labels.items()):
                le=float('inf') if lab['le']=='+Inf' else float(lab['le'])
                buckets.append((le, float(m.group(2))))
    buckets.sort()
    return buckets
def quantile(buckets, q):
    total=buckets[-1][1]
    if total==0: return None
    rank=q*total; prev_le, prev_c = 0.0, 0.0
    for le,c in buckets:
        if c>=rank:
            if le==float('inf'): return prev_le
            return prev_le + (le-prev_le)*((rank-prev_c)/(c-prev_c) if c>prev_c else 0)
        prev_le, prev_c = le, c
def value(text, series):
    for line in text.splitlines():
        if line.startswith(series+" "): return float(line.split()[-1])
    return None
if __name__=="__main__":
    text=scrape(sys.argv[1])
    for w in ["none","tumbling","hopping"]:
        b=hist(text,"ghosthunt_end_to_end_latency_seconds",{"window":w})
        if b and b[-1][1]>0:
            print(f"e2e latency window={w}: n={int(b[-1][1])} p50={quantile(b,0.5)*1000:.1f}ms p99={quantile(b,0.99)*1000:.1f}ms")
    for line in text.splitlines():
        if line.startswith("ghosthunt_alerts_total{"): print(line)
    for s in ["ghosthunt_events_received_total","ghosthunt_acknowledged_events_total","process_resident_memory_bytes","process_cpu_seconds_total","ghosthunt_dead_letters_total"]:
        print(s, value(text,s))
