"""Quantiles of one Prometheus histogram over an interval: the difference of two scrapes of
Tenet's /metrics (cumulative buckets), linear inside a bucket as Prometheus's
histogram_quantile does.

usage: histogram_delta.py METRIC BEFORE AFTER   (files holding the two scrapes)
prints: count, p50, p99 and p99.9 in milliseconds"""
import sys


def buckets(path, metric):
    out = {}
    prefix = metric + "_bucket{le=\""
    with open(path) as f:
        for line in f:
            if line.startswith(prefix):
                le, value = line[len(prefix):].split("\"}", 1)
                out[float("inf") if le == "+Inf" else float(le)] = float(value)
    return out


def quantile(q, bounds, counts):
    total = counts[-1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0)
        lower, below = bound, cumulative
    return lower


metric, before_path, after_path = sys.argv[1:4]
before, after = buckets(before_path, metric), buckets(after_path, metric)
if not after:
    sys.exit(f"{after_path}: no histogram {metric}")
bounds = sorted(after)
counts = [after[b] - before.get(b, 0.0) for b in bounds]
if counts[-1] <= 0:
    sys.exit(f"no {metric} observations between the two scrapes")
print("count %d p50 %.3f ms p99 %.3f ms p99.9 %.3f ms" % (
    counts[-1], *(quantile(q, bounds, counts) * 1e3 for q in (0.5, 0.99, 0.999))))
