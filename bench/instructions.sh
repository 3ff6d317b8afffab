#!/usr/bin/env bash
# Instructions and heap allocations per proxied request, counted by valgrind's callgrind: the
# same deployment as scenario 1 of bench/run.sh (mTLS, Cedar, events, 1 KiB answer from an
# nginx upstream), one gateway per binary given, each on a fresh ledger. Counts repeat within
# about 1% whatever else the machine does, so they compare builds on a shared VM where
# requests per second move by 10-20% between runs; they are not a speed (cache misses and
# system calls are not in them). The measured run opens its 8 connections, so their
# handshakes are in the count: about 7,000 instructions per request at the default 2,000.
#   bench/instructions.sh [-n REQUESTS] BINARY...
# valgrind runs the portable SHA-256 code (it does not emulate the SHA extensions the real
# CPU uses), so the SHA-256 share is printed apart and left out of the comparable figure.
set -euo pipefail
cd "$(dirname "$0")/.."
n=2000
if [ "${1:-}" = "-n" ]; then n=$2; shift 2; fi

source bench/lib.sh
binaries "bench/instructions.sh [-n REQUESTS] BINARY..." "$@"
install_peers
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }

TD=bench.tenet.test; HOST=svc.$TD; UP_PORT=18280; GW_PORT=18643; ADMIN_PORT=18644
ports_free $UP_PORT $GW_PORT $ADMIN_PORT
gateway_deployment "${bins[0]}" "$TD" "$HOST" $GW_PORT $ADMIN_PORT $UP_PORT
start_upstream $UP_PORT
port_wait $UP_PORT
upstream_answer=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$UP_PORT/")
[ "$upstream_answer" = "200 1024" ] || { echo "the upstream answers '$upstream_answer', not 200 with 1 KiB" >&2; exit 1; }

load() { # load REQUESTS: keep-alive requests over 8 connections; prints the status counts
  taskset -c 0 "$OHA" --no-tui -n "$1" -c 8 --output-format json --cacert "$work/client/bundle.pem" \
    --cert "$work/client/svid.pem" --key "$work/client/svid.key" \
    --connect-to "$HOST:$GW_PORT:127.0.0.1:$GW_PORT" "https://$HOST:$GW_PORT/" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["statusCodeDistribution"])'
}

echo "# instructions per proxied request (callgrind, $n requests, 8 keep-alive connections)"
for bin in "${bins[@]}"; do
  # Every binary starts from the same state: no ledger, no learned baselines.
  rm -rf "$work/d/data/ledger" "$work/d/data/ledger-key/signer.state" "$work/d/data/detect" "$work"/cg.*
  # One core, as in bench/run.sh: the gateway then runs its single-threaded runtime.
  (cd "$work/d" && RUST_LOG=warn exec taskset -c 1 valgrind --tool=callgrind \
    --callgrind-out-file="$work/cg.%p" "$bin" up >"$work/tenet.log" 2>&1) & gw=$!; pids+=($gw)
  up=""
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT") 2>/dev/null && { up=1; break; }; sleep 0.2; done
  [ -n "$up" ] || { echo "$bin: the gateway did not start; its log:" >&2; cat "$work/tenet.log" >&2; exit 1; }
  load 400 >/dev/null # warm-up: connections, pools, memo
  callgrind_control -z "$gw" >/dev/null 2>&1 || { echo "$bin: callgrind_control could not zero the counts" >&2; exit 1; }
  statuses=$(load "$n")
  callgrind_control -d "$gw" >/dev/null 2>&1 || { echo "$bin: callgrind_control could not dump the counts" >&2; exit 1; }
  kill "$gw"; wait "$gw" 2>/dev/null || true
  dump=$(ls -t "$work"/cg.*.* | head -n1)
  callgrind_annotate --inclusive=yes --threshold=100 --tree=caller "$dump" 2>/dev/null \
    | python3 bench/peers/callgrind_per_request.py "$n" "$bin" "$statuses"
done
