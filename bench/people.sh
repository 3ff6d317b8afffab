#!/usr/bin/env bash
# Per-request people check against the Cedar decision of the same request, in one process:
# SignIn::identify (cookie, session lookup among 10,001 sessions, device binding, posture
# facts of an enrolled device with a signed report, re-evaluation, touch) and the policy
# decision the gateway makes right after it. Pinned to one core.
#   bench/people.sh [ITERATIONS]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p tenet-people --example identify_latency
echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
taskset -c 1 target/release/examples/identify_latency "${1:-200000}"
