#!/usr/bin/env bash
# Scenario 1 of bench/run.sh (64 keep-alive connections, mTLS, Cedar, events, 1 KiB answer)
# for several gateway binaries and nginx, interleaved: one deployment, upstream and nginx
# proxy kept running, each binary started on a fresh ledger for its run, then nginx, for
# each round. Prints requests per second and the CPU time per request of the proxy under
# test (from /proc). On a shared VM whose speed drifts, interleaving is what makes builds
# comparable: each round sees the same conditions for all of them.
#   bench/interleave.sh [-r ROUNDS] [-s SECONDS] BINARY...
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3; secs=8
while [ $# -gt 0 ]; do
  case "$1" in
    -r) rounds=$2; shift 2 ;;
    -s) secs=$2; shift 2 ;;
    *) break ;;
  esac
done

source bench/lib.sh
binaries "bench/interleave.sh [-r ROUNDS] [-s SECONDS] BINARY..." "$@"
install_peers
TD=bench.tenet.test; HOST=svc.$TD; UP_PORT=18380; GW_PORT=18743; ADMIN_PORT=18744; NGINX_PROXY=18745
ports_free $UP_PORT $GW_PORT $ADMIN_PORT $NGINX_PROXY
gateway_deployment "${bins[0]}" "$TD" "$HOST" $GW_PORT $ADMIN_PORT $UP_PORT
"${bins[0]}" --config "$work/d/tenet.toml" svid x509 "spiffe://$TD/ns/bench/sa/nginx" --ttl 12h --dns "$HOST" --out "$work/nginx" >/dev/null
nginx_conf nginx "
  upstream app { server 127.0.0.1:$UP_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PROXY ssl;
    ssl_certificate $work/nginx/svid.pem; ssl_certificate_key $work/nginx/svid.key;
    ssl_protocols TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"
start_upstream $UP_PORT
taskset -c 1 nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
port_wait $UP_PORT; port_wait $NGINX_PROXY
proxy_worker=""
for _ in $(seq 50); do
  proxy_worker=$(pgrep -P "$(cat "$work/nginx.pid" 2>/dev/null || echo 0)" | head -n1) && [ -n "$proxy_worker" ] && break
  sleep 0.1
done
[ -n "$proxy_worker" ] || { echo "no nginx proxy worker" >&2; exit 1; }
CA="$work/client/bundle.pem"

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; } # utime + stime, in 1/100 s
run() { # run PID URL OHA_ARGS... -> "<req/s> req/s, <µs> µs CPU per request"
  local pid=$1 url=$2; shift 2
  local t0 t1 out
  t0=$(ticks "$pid")
  out=$(taskset -c 0 "$OHA" --no-tui -z "${secs}s" -c 64 --output-format json "$@" "$url" 2>/dev/null)
  t1=$(ticks "$pid")
  python3 - "$out" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d = json.loads(sys.argv[1]); t0, t1, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
codes = d["statusCodeDistribution"]; n = sum(codes.values())
bad = "" if codes.get("200", 0) == n else f"  (answers {codes})"
print(f'{round(d["summary"]["requestsPerSec"])} req/s, {round((t1 - t0) * 1e6 / hz / max(n, 1), 1)} µs CPU per request{bad}')
PY
}

echo "# scenario 1 interleaved: $rounds rounds of ${secs} s, load average $(loadavg)"
for r in $(seq "$rounds"); do
  for bin in "${bins[@]}"; do
    # Every binary starts from the same state: no ledger, no learned baselines.
    rm -rf "$work/d/data/ledger" "$work/d/data/ledger-key/signer.state" "$work/d/data/detect"
    (cd "$work/d" && RUST_LOG=warn exec taskset -c 1 "$bin" up >"$work/tenet.log" 2>&1) & gw=$!
    port_wait $GW_PORT
    echo "round $r  $bin: $(run $gw "https://$HOST:$GW_PORT/" --cacert "$CA" \
      --cert "$work/client/svid.pem" --key "$work/client/svid.key" \
      --connect-to "$HOST:$GW_PORT:127.0.0.1:$GW_PORT")"
    kill "$gw"; wait "$gw" 2>/dev/null || true
  done
  echo "round $r  nginx: $(run "$proxy_worker" "https://$HOST:$NGINX_PROXY/" --cacert "$CA" \
    --connect-to "$HOST:$NGINX_PROXY:127.0.0.1:$NGINX_PROXY")"
done
