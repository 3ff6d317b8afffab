#!/usr/bin/env bash
# The per-request people check end to end (issue 6): one `tenet up` with a workload route
# (mTLS client certificate, Cedar) and a people route (session cookie of a person signed in
# with the provider and a passkey, on an enrolled device whose certificate the client presents,
# posture required and met by a signed report, Cedar), both in front of the same nginx
# upstream. Load generators pinned to cpu0, gateway and upstream to cpu1.
# 1. Peak throughput of each route alone (oha, 64 keep-alive connections): with cpu1 saturated,
#    1/peak is cpu1's time per request, and the routes' difference the people check's CPU cost.
# 2. Latency: both routes at once, each at the same fixed rate (default 2,000 req/s, 16
#    keep-alive connections each), so that whatever else the machine runs falls on both alike;
#    p50 and p99 of each route per run, the difference, and the median over the runs.
#   bench/people_e2e.sh                full run (5 runs of 10 s)
#   bench/people_e2e.sh --quick        smoke run (1 run of 3 s)
#   bench/people_e2e.sh --rate N       N req/s per route instead of 2,000
# Needs node and the provider package (see crates/tenet/tests/support/idp.rs); installs
# nginx and oha when missing; stops all it starts. TENET and SESSION_HELPER may name
# binaries built before (the helper runs the tenet binary built beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

runs=5; secs=10; rate=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runs=1; secs=3 ;;
    --rate) rate=$2; shift ;;
    *) echo "usage: bench/people_e2e.sh [--quick] [--rate N]" >&2; exit 2 ;;
  esac
  shift
done

source bench/lib.sh
install_peers

# TENET and SESSION_HELPER, when set, name binaries already built (nothing is built then).
TENET=${TENET:-}
if [ -z "$TENET" ]; then
  cargo build --release -q -p tenet
  TENET="$root/target/release/tenet"
fi
# The sign-in helper: a bench target of the tenet crate (it runs the tenet binary built with it).
SESSION_HELPER=${SESSION_HELPER:-}
if [ -z "$SESSION_HELPER" ]; then
  SESSION_HELPER=$(cargo bench -q -p tenet --bench people_session --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for m in map(json.loads, sys.stdin):
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "people_session" and m.get("executable"):
        print(m["executable"])')
fi

# The people tests' names (support/idp.rs): trust domain, people host, provider client.
TD=example.test; APP=app.$TD; SVC=svc.$TD
UP_PORT=18460; WORKLOAD_PORT=18461; PEOPLE_PORT=18462; ADMIN_PORT=18463; IDP_PORT=18464
d="$work/d"

# --- the deployment: a workload listener and route, a people listener and route ----------
"$TENET" init "$d" --trust-domain "$TD" >/dev/null
cat > "$d/tenet.toml" <<TOML
[deployment]
trust_domain = "$TD"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[[listeners]]
name = "main"
listen = "127.0.0.1:$WORKLOAD_PORT"
[[listeners]]
name = "people"
listen = "127.0.0.1:$PEOPLE_PORT"
client_auth = "optional"
[[routes]]
name = "svc"
service = "svc"
listener = "main"
host = "$SVC"
upstream = "http://127.0.0.1:$UP_PORT"
[[routes]]
name = "app"
service = "app"
listener = "people"
host = "$APP"
upstream = "http://127.0.0.1:$UP_PORT"
people = true
[people]
rp_id = "$TD"
rp_name = "Example"
origins = ["https://$APP:$PEOPLE_PORT"]
require_webauthn = true
[[people.providers]]
name = "corp"
issuer = "https://127.0.0.1:$IDP_PORT"
client_id = "tenet-gateway"
client_secret_file = "client-secret"
redirect_uri = "https://$APP:$PEOPLE_PORT/.tenet/auth/callback"
ca_file = "idp-ca.pem"
scopes = ["openid", "email", "profile", "groups"]
[people.posture]
max_age_secs = 3600
require_disk_encryption = true
require_firewall = true
TOML
rm "$d/policies/example.cedar"
cat > "$d/policies/bench.cedar" <<CEDAR
@id("client-reads-svc")
permit (principal == Tenet::Workload::"spiffe://$TD/ns/bench/sa/client",
        action in Tenet::Action::"read", resource in Tenet::Service::"svc");
@id("engineers-with-a-passkey-on-a-compliant-device")
permit (principal in Tenet::Group::"engineering", action, resource in Tenet::Service::"app")
when { context.session.phishing_resistant && context.device.compliant };
CEDAR
"$TENET" --config "$d/tenet.toml" svid x509 "spiffe://$TD/ns/bench/sa/client" --ttl 12h --out "$work/client" >/dev/null
CA="$d/data/admin/bundle.pem"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$work/1k"

start_upstream $UP_PORT
port_wait $UP_PORT

# The provider first (the gateway reads its client secret and CA at start), then the gateway;
# the helper then enrols the device, reports its posture and signs the person in.
"$SESSION_HELPER" "$d" $PEOPLE_PORT $ADMIN_PORT $IDP_PORT >"$work/session" 2>"$work/session.log" & helper=$!; pids+=($helper)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$IDP_PORT") 2>/dev/null && break
  # It stops at once when the provider is not installed (`.ci/setup` installs it).
  kill -0 "$helper" 2>/dev/null || { echo "the sign-in helper stopped:" >&2; grep -v '^ ' "$work/session.log" >&2; exit 1; }
  sleep 0.1
done
port_wait $IDP_PORT
(cd "$d" && RUST_LOG=warn exec taskset -c 1 "$TENET" up >"$work/tenet.log" 2>&1) & pids+=($!)
port_wait $PEOPLE_PORT; port_wait $ADMIN_PORT
if ! wait "$helper"; then
  echo "sign-in failed:"; cat "$work/session.log"; echo "--- tenet up ---"; cat "$work/tenet.log"; exit 1
fi
cookie="__Host-tenet_session=$(cat "$work/session")"

workload=("https://$SVC:$WORKLOAD_PORT/" --cacert "$CA" --cert "$work/client/svid.pem" --key "$work/client/svid.key"
  --connect-to "$SVC:$WORKLOAD_PORT:127.0.0.1:$WORKLOAD_PORT")
people=("https://$APP:$PEOPLE_PORT/" --cacert "$CA" --cert "$d/device/svid.pem" --key "$d/device/svid.key"
  --connect-to "$APP:$PEOPLE_PORT:127.0.0.1:$PEOPLE_PORT" -H "cookie: $cookie")

oha_json() { # oha_json <out> <url> <args...>: one run, its JSON summary into <out>; fails unless all 200
  local out=$1 url=$2; shift 2
  taskset -c 0 "$OHA" --no-tui -z "${secs}s" --output-format json "$@" "$url" 2>/dev/null > "$out"
  python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
codes = d.get("statusCodeDistribution", {})
if set(codes) != {"200"}:
    sys.exit(f"answers other than 200: {codes} {d.get('errorDistribution', {})}")
PY
}
peak() { # peak <url> <args...>: req/s with 64 connections
  oha_json "$work/peak.json" "$@" -c 64
  python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"]))' "$work/peak.json"
}
scrape() { # the gateway's /metrics through the admin API, into $1
  curl -sS --fail --resolve "$APP:$ADMIN_PORT:127.0.0.1" --cacert "$CA" \
    --cert "$d/data/admin/svid.pem" --key "$d/data/admin/svid.key" \
    "https://$APP:$ADMIN_PORT/metrics" > "$1"
}
at_rate() { # at_rate <name> <url> <args...>: one run at $rate with latencies in $work/<name>.db
  rm -f "$work/$1.db"
  oha_json "$work/$1.json" "${@:2}" -c 16 -q "$rate" --latency-correction --db-url "$work/$1.db"
}
ms() { python3 bench/peers/latency_p99.py "$work/$1.db" 1 0.5,0.99; } # "p50 p99" after the first second
us() { python3 -c "print(round(($1 - $2) * 1000))"; }

echo "# Issue 6 end to end: workload route vs people route ($(date -u +%F), $(nproc) cores, runs=$runs x ${secs}s)"
quiet
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
peak_w=$(for _ in $(seq "$runs"); do peak "${workload[@]}"; done)
peak_p=$(for _ in $(seq "$runs"); do peak "${people[@]}"; done)
pw=$(echo "$peak_w" | median); pp=$(echo "$peak_p" | median)
echo "peak, one route at a time, 64 connections: workload $pw req/s (runs $(echo "$peak_w" | spread)), people $pp req/s (runs $(echo "$peak_p" | spread))"
echo "  cpu1 time per request (gateway and upstream): workload $(python3 -c "print(round(1e6/$pw, 1))") us, people $(python3 -c "print(round(1e6/$pp, 1))") us"
# Both routes at once, each at the same fixed rate, so that whatever else the machine does
# falls on both alike; the difference of each run is taken, then the median over the runs.
rate=${rate:-2000}
echo "both routes at once, each at $rate req/s with 16 keep-alive connections; first second left out"
: > "$work/runs"
for i in $(seq "$runs"); do
  scrape "$work/m0"
  at_rate w "${workload[@]}" & a=$!
  at_rate p "${people[@]}" & b=$!
  wait "$a"; wait "$b"
  scrape "$work/m1"
  read -r w50 w99 <<< "$(ms w)"; read -r p50 p99 <<< "$(ms p)"
  echo "$w50 $w99 $p50 $p99 $(us "$p50" "$w50") $(us "$p99" "$w99")" >> "$work/runs"
  echo "  run $i (load $(cut -d' ' -f1 /proc/loadavg)): workload p50 $w50 ms, p99 $w99 ms; people p50 $p50 ms, p99 $p99 ms;" \
    "people minus workload p50 $(us "$p50" "$w50") us, p99 $(us "$p99" "$w99") us"
  echo "    ledger wait per request, both routes: $(python3 bench/peers/histogram_delta.py tenet_gateway_record_seconds "$work/m0" "$work/m1")"
done
col() { cut -d' ' -f"$1" "$work/runs" | median; }
echo "median of $runs runs: workload p50 $(col 1) ms, p99 $(col 2) ms; people p50 $(col 3) ms, p99 $(col 4) ms"
echo "people minus workload, median of the runs' differences: p50 $(col 5) us, p99 $(col 6) us (each run's p99 difference: $(cut -d' ' -f6 "$work/runs" | paste -sd' ') us)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
