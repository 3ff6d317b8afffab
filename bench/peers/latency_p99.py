"""p99 latency (ms) of an oha run from its per-request database (oha --db-url), leaving out
the requests scheduled in the first WARMUP seconds: with a fixed rate and
--latency-correction, the connections' TLS handshakes at the start put a backlog on the first
requests that says nothing about the steady state (wrk2 warms up for the same reason).

usage: latency_p99.py DB [WARMUP_SECONDS] [QUANTILES]
QUANTILES: comma-separated, e.g. 0.5,0.99 (default 0.99); one figure each, space-separated"""
import sqlite3
import sys

db = sys.argv[1]
warmup = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
quantiles = [float(q) for q in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0.99]
rows = sqlite3.connect(db).execute(
    "select coalesce(start_latency_correction, start), end from oha").fetchall()
if not rows:
    sys.exit(f"{db}: no requests recorded")
t0 = min(r[0] for r in rows)
lat = sorted(end - start for start, end in rows if start - t0 >= warmup)
if not lat:
    sys.exit(f"{db}: no requests after the first {warmup} s")
print(" ".join("%.3f" % (lat[min(len(lat) - 1, int(len(lat) * q))] * 1000) for q in quantiles))
