"""Per-request figures from `callgrind_annotate --inclusive=yes --tree=caller` on stdin:
instructions (all, SHA-256 compression, and the rest) and calls into the Rust allocator.

usage: callgrind_per_request.py REQUESTS LABEL STATUSES"""
import re
import sys

requests = int(sys.argv[1])
label, statuses = sys.argv[2], sys.argv[3]
lines = sys.stdin.read().split("\n")


def figure(line):
    return int(line.split()[0].replace(",", ""))


total = sha = allocs = 0
for i, line in enumerate(lines):
    if "PROGRAM TOTALS" in line:
        total = figure(line)
    # The SHA-256 block function, inclusive (the entry that calls its per-CPU variant).
    if "*  ???:sha2::sha256::compress256 [" in line:
        sha = figure(line)
    # Calls into __rust_alloc: the call counts on the lines of its callers, above its entry.
    if "*  ???:__rustc::__rust_alloc [" in line:
        j = i - 1
        while j >= 0 and "<" in lines[j]:
            m = re.search(r"\(([\d,]+)x\)", lines[j])
            allocs += int(m.group(1).replace(",", "")) if m else 0
            j -= 1
if not total:
    sys.exit(f"{label}: no totals in the callgrind output")
per = lambda x: round(x / requests)
alloc_text = f"{allocs / requests:.1f}" if allocs else "n/a (no call to __rust_alloc seen: inlined, as under LTO)"
print(f"{label}: {per(total - sha):,} instructions/request without SHA-256 "
      f"({per(total):,} in all, SHA-256 {per(sha):,}); allocations/request {alloc_text}; "
      f"answers {statuses}")
