#!/usr/bin/env bash
# Streaming detection overhead: keep-alive throughput through Tenet with detection off, with
# the built-in analytics only, and with the analytics plus 500 Sigma rules for Tenet's own
# events (generated: each matches a different path prefix, so every event is tested against
# all of them). Same deployment, same oha command, oha on cpu0, Tenet and the upstream on cpu1.
#   bench/detect_overhead.sh [RUNS] [SECS]     (default 3 x 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-3}; secs=${2:-10}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
[ -x "$OHA" ] || cargo install oha --locked --version 1.16.0 >/dev/null 2>&1
cargo build --release -q -p tenet
TENET="$root/target/release/tenet"
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port_wait() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened"; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

TD=bench.tenet.test; HOST=svc.$TD; UP=18180; GW=18543; ADMIN=18544
mkdir -p "$work/www"; head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$work/www/index.html"
taskset -c 1 python3 -m http.server "$UP" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 & pids+=($!)
"$TENET" init "$work/d" --trust-domain "$TD" >/dev/null
rm "$work/d/policies/example.cedar"
cat > "$work/d/policies/bench.cedar" <<CEDAR
permit (principal == Tenet::Workload::"spiffe://$TD/ns/bench/sa/client",
        action in Tenet::Action::"read", resource in Tenet::Service::"svc");
CEDAR
"$TENET" --config "$work/d/tenet.toml" svid x509 "spiffe://$TD/ns/bench/sa/client" --ttl 12h --out "$work/client" >/dev/null
mkdir -p "$work/d/rules"
for i in $(seq 1 500); do
  cat > "$work/d/rules/r$i.yml" <<RULE
title: Bench rule $i
id: 00000000-0000-4000-8000-$(printf '%012d' "$i")
status: test
logsource: {product: tenet, service: access}
detection:
  selection:
    http_request.url.path|startswith: '/never-$i/'
  condition: selection
level: low
RULE
done
config() { # config <detect section>
  cat > "$work/d/tenet.toml" <<TOML
[deployment]
trust_domain = "$TD"
[admin]
listen = "127.0.0.1:$ADMIN"
[[listeners]]
name = "main"
listen = "127.0.0.1:$GW"
[[routes]]
name = "svc"
service = "svc"
listener = "main"
host = "$HOST"
upstream = "http://127.0.0.1:$UP"
$1
TOML
}
measure() { # measure <label> <detect section>
  config "$2"
  (cd "$work/d" && RUST_LOG=warn exec taskset -c 1 "$TENET" up >"$work/tenet.log" 2>&1) & local pid=$!
  port_wait "$GW"
  local rates=()
  for _ in $(seq "$runs"); do
    rates+=("$(taskset -c 0 "$OHA" --no-tui -z "${secs}s" -c 64 --output-format json \
      --cacert "$work/client/bundle.pem" --cert "$work/client/svid.pem" --key "$work/client/svid.key" \
      --connect-to "$HOST:$GW:127.0.0.1:$GW" "https://$HOST:$GW/" 2>/dev/null \
      | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["summary"]["requestsPerSec"]))')")
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local m; m=$(printf '%s\n' "${rates[@]}" | median)
  printf '  %-40s %6s req/s (runs: %s)\n' "$1" "$m" "${rates[*]}"
  echo "$m" > "$work/last-$3"
}
echo "== keep-alive throughput, 64 connections, ${runs} x ${secs}s"
measure "detection off" "[detect]
enabled = false" off
measure "analytics on" "[detect]" analytics
measure "analytics + 500 Sigma rules" "[detect]
rules = \"rules\"" rules
off=$(cat "$work/last-off"); rules=$(cat "$work/last-rules"); analytics=$(cat "$work/last-analytics")
python3 -c "print('  overhead: analytics %.1f%%, analytics + 500 rules %.1f%%' % (100*(1-$analytics/$off), 100*(1-$rules/$off)))"
