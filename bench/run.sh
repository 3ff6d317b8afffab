#!/usr/bin/env bash
# Tenet's benchmark suite: Tenet and its peers side by side in the same run, on 127.0.0.1.
# Load generator pinned to cpu0, systems under test and their upstream to cpu1.
#   bench/run.sh            full run (3 runs of 10 s per scenario)
#   bench/run.sh --quick    smoke run (1 run of 3 s)
#   bench/run.sh [--quick] --only 1,4   only the listed scenarios (2 needs 1's peak)
# Installs its own peers (nginx, oha, pyca/cryptography) when missing; stops all it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

runs=3; secs=10; quick=""; only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runs=1; secs=3; quick="--quick" ;;
    --only) only=",$2,"; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--only N,N...]" >&2; exit 2 ;;
  esac
  shift
done
want() { [ -z "$only" ] || [[ "$only" == *",$1,"* ]]; }

source bench/lib.sh
install_peers
python3 -c 'import cryptography' 2>/dev/null || pip install -q cryptography

# The gateway as deployed: the production profile (release with link-time optimisation).
cargo build --profile production -q -p tenet
TENET="$root/target/production/tenet"

TD=bench.tenet.test; HOST=svc.$TD
UP_PORT=18080; TENET_PORT=18443; ADMIN_PORT=18444; NGINX_PROXY=18445; NGINX_MTLS=18446
ports_free $UP_PORT $TENET_PORT $ADMIN_PORT $NGINX_PROXY $NGINX_MTLS

# --- a deployment, credentials and the upstream ------------------------------------------
gateway_deployment "$TENET" "$TD" "$HOST" $TENET_PORT $ADMIN_PORT $UP_PORT
"$TENET" --config "$work/d/tenet.toml" svid x509 "spiffe://$TD/ns/bench/sa/nginx" --ttl 12h --dns "$HOST" --out "$work/nginx" >/dev/null
CA="$work/client/bundle.pem"; CERT="$work/client/svid.pem"; KEY="$work/client/svid.key"

# The peer proxy, with and without client certificates.
nginx_conf nginx "\
  upstream app { server 127.0.0.1:$UP_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PROXY ssl http2;
    ssl_certificate $work/nginx/svid.pem; ssl_certificate_key $work/nginx/svid.key;
    ssl_protocols TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }
  server {
    listen 127.0.0.1:$NGINX_MTLS ssl http2;
    ssl_certificate $work/nginx/svid.pem; ssl_certificate_key $work/nginx/svid.key;
    ssl_client_certificate $CA; ssl_verify_client on; ssl_verify_depth 3;
    ssl_protocols TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"
# The upstream and the peer proxy: one worker each, on cpu1 with Tenet. The upstream is an
# nginx of its own, so that every proxy (Tenet and the nginx peer alike) hands each request to
# another process: until 2026-12-05 one nginx worker served both the upstream and the peer
# proxy, and the peer's proxied request never left its process.
start_upstream $UP_PORT
taskset -c 1 nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
port_wait $UP_PORT; port_wait $NGINX_PROXY
worker_of() { # the one worker process of the nginx whose pid file is $1 (the master only supervises)
  local w
  for _ in $(seq 50); do
    w=$(pgrep -P "$(cat "$1" 2>/dev/null || echo 0)" | head -n1) && [ -n "$w" ] && { echo "$w"; return; }
    sleep 0.1
  done
  echo "no nginx worker for $1" >&2; exit 1
}
upstream_worker=$(worker_of "$work/upstream.pid"); proxy_worker=$(worker_of "$work/nginx.pid")
upstream_answer=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$UP_PORT/")
[ "$upstream_answer" = "200 1024" ] || { echo "the upstream answers '$upstream_answer', not 200 with 1 KiB" >&2; exit 1; }
(cd "$work/d" && RUST_LOG=warn exec taskset -c 1 "$TENET" up >"$work/tenet.log" 2>&1) & pids+=($!)
port_wait $TENET_PORT
tenet_pid=${pids[-1]}

oha_run() { # oha_run <label> <url> <extra args...>  -> prints rps for each run
  local url=$1; shift
  for _ in $(seq "$runs"); do
    taskset -c 0 "$OHA" --no-tui -z "${secs}s" --output-format json "$@" "$url" 2>/dev/null \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["summary"]["requestsPerSec"])); print(sum(d["statusCodeDistribution"].values()), file=open(sys.argv[1], "a"))' "$work/served"
  done
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; } # utime + stime, all threads, in 1/100 s
# cpu_per_request <pid> <ticks before> <requests>: the process's CPU time per request in µs
cpu_per_request() { python3 -c "print(round(($(cpu_ticks "$1") - $2) * 1e6 / $(getconf CLK_TCK) / $3, 1))"; }
served() { python3 -c "import sys; print(sum(int(l) for l in open(sys.argv[1])))" "$work/served"; rm -f "$work/served"; }
oha_p99() { # latency p99 in ms at a fixed rate, after the first second (warm-up)
  local url=$1; shift
  rm -f "$work/requests.db"
  taskset -c 0 "$OHA" --no-tui -z "${secs}s" --output-format json --latency-correction \
    --db-url "$work/requests.db" "$@" "$url" >/dev/null 2>&1
  python3 bench/peers/latency_p99.py "$work/requests.db" 1
  # BENCH_KEEP=PREFIX keeps each run's per-request database, to look at when the slow ones came.
  if [ -n "${BENCH_KEEP:-}" ]; then cp "$work/requests.db" "$BENCH_KEEP-$(date +%s%N).db"; fi
}
resolve() { echo "--connect-to" "$HOST:$1:127.0.0.1:$1"; }
scrape() { # the gateway's /metrics through the admin API, into $1
  curl -sS --fail --resolve "$HOST:$ADMIN_PORT:127.0.0.1" --cacert "$work/d/data/admin/bundle.pem" \
    --cert "$work/d/data/admin/svid.pem" --key "$work/d/data/admin/svid.key" \
    "https://$HOST:$ADMIN_PORT/metrics" > "$1"
}
mtls="--cacert $CA --cert $CERT --key $KEY"

echo "# Tenet benchmarks ($(date -u +%F), $(nproc) cores, runs=$runs x ${secs}s)"
echo
if want 1; then
echo "## 1. Keep-alive throughput: Tenet (mTLS + Cedar + events) vs nginx TLS reverse proxy"
quiet; echo "   load $(loadavg)"
# CPU time per request of each proxy and of the upstream behind it, from /proc over all runs:
# unlike requests per second, it does not move with what else the machine is doing.
p0=$(cpu_ticks "$tenet_pid"); u0=$(cpu_ticks "$upstream_worker")
t=$(oha_run "https://$HOST:$TENET_PORT/" -c 64 $mtls $(resolve $TENET_PORT))
k=$(served); tcpu=$(cpu_per_request "$tenet_pid" "$p0" "$k"); tup=$(cpu_per_request "$upstream_worker" "$u0" "$k")
p0=$(cpu_ticks "$proxy_worker"); u0=$(cpu_ticks "$upstream_worker")
n=$(oha_run "https://$HOST:$NGINX_PROXY/" -c 64 --cacert "$CA" $(resolve $NGINX_PROXY))
k=$(served); ncpu=$(cpu_per_request "$proxy_worker" "$p0" "$k"); nup=$(cpu_per_request "$upstream_worker" "$u0" "$k")
tm=$(echo "$t" | median); nm=$(echo "$n" | median)
echo "   tenet: $tm req/s (runs $(echo "$t" | spread))   nginx: $nm req/s (runs $(echo "$n" | spread))   ratio $(python3 -c "print(round($tm/$nm,2))")"
echo "   CPU per request: tenet $tcpu µs (upstream $tup µs)   nginx $ncpu µs (upstream $nup µs)"

fi
if want 2; then
echo
echo "## 2. Added p99 latency over calling the upstream directly, at half of Tenet's peak"
half=$((${tm:?scenario 2 needs scenario 1 in the same run} / 2))
quiet
# A single p99 over 10 s moves a lot on a shared VM (one stall is enough), so each side runs
# $runs times, interleaved (direct, Tenet, nginx, then again), and the medians are compared.
# Also for reference: the peer proxy at the same rate (nginx terminating TLS, no client
# certificate).
scrape "$work/metrics.before"
: > "$work/p99.direct"; : > "$work/p99.via"; : > "$work/p99.peer"
for _ in $(seq "$runs"); do
  oha_p99 "http://127.0.0.1:$UP_PORT/" -c 32 -q "$half" >> "$work/p99.direct"
  oha_p99 "https://$HOST:$TENET_PORT/" -c 32 -q "$half" $mtls $(resolve $TENET_PORT) >> "$work/p99.via"
  oha_p99 "https://$HOST:$NGINX_PROXY/" -c 32 -q "$half" --cacert "$CA" $(resolve $NGINX_PROXY) >> "$work/p99.peer"
done
scrape "$work/metrics.after"
direct=$(median < "$work/p99.direct"); via=$(median < "$work/p99.via"); peer=$(median < "$work/p99.peer")
echo "   rate $half req/s, medians of $runs runs: direct p99 ${direct} ms ($(spread < "$work/p99.direct")), via tenet p99 ${via} ms ($(spread < "$work/p99.via")), added $(python3 -c "print(round($via-$direct,3))") ms"
# The ledger's share, measured inside the gateway: from handing the decision's event to the
# ledger to its acknowledgement (tenet_gateway_record_seconds), over the same runs.
echo "   ledger wait per request: $(python3 bench/peers/histogram_delta.py tenet_gateway_record_seconds "$work/metrics.before" "$work/metrics.after")"
echo "   nginx TLS proxy at the same rate: p99 ${peer} ms ($(spread < "$work/p99.peer")), added $(python3 -c "print(round($peer-$direct,3))") ms"

fi
if want 3; then
echo
echo "## 3. New mTLS connection per request (full handshake + client cert check + one proxied request)"
quiet
t=$(oha_run "https://$HOST:$TENET_PORT/" -c 16 --disable-keepalive $mtls $(resolve $TENET_PORT))
n=$(oha_run "https://$HOST:$NGINX_MTLS/" -c 16 --disable-keepalive $mtls $(resolve $NGINX_MTLS))
tm=$(echo "$t" | median); nm=$(echo "$n" | median)
echo "   tenet: $tm conn/s (runs $(echo "$t" | spread))   nginx: $nm conn/s (runs $(echo "$n" | spread))   ratio $(python3 -c "print(round($tm/$nm,2))")"

fi
if want 4; then
echo
echo "## 4. Gateway memory"
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
echo "   idle RSS: $(( $(rss "$tenet_pid") / 1024 )) MB (after the load above)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
conns=10000; [ -n "$quick" ] && conns=2000
mkfifo "$work/hold"
taskset -c 0 python3 bench/peers/hold_connections.py 127.0.0.1 $TENET_PORT "$HOST" "$CERT" "$KEY" "$CA" $conns <"$work/hold" >"$work/hold.out" & holder=$!; pids+=($holder)
exec 7>"$work/hold"
for _ in $(seq 600); do grep -q holding "$work/hold.out" 2>/dev/null && break; sleep 0.5; done
echo "   $(cat "$work/hold.out"): RSS $(( $(rss "$tenet_pid") / 1024 )) MB"
exec 7>&-
wait "$holder" 2>/dev/null || true

fi
if want 5; then
echo
echo "## 5. X.509-SVID issuance on one core (verify CSR + sign)"
quiet
taskset -c 1 cargo bench -q -p tenet-identity --bench issue -- $quick 2>/dev/null | tail -n1 | sed 's/^/   /'
taskset -c 1 python3 bench/peers/issue_pyca.py "$([ -n "$quick" ] && echo 1 || echo 5)" | sed 's/^/   /'

fi
if want 6; then
echo
echo "## 6. Policy decision latency"
quiet
taskset -c 1 cargo bench -q -p tenet-policy --bench decide -- $quick 2>/dev/null | sed 's/^/   /'

fi
if want 7; then
echo
echo "## 7. Ledger appends with group commit (200-byte events)"
quiet
taskset -c 1 cargo bench -q -p tenet-ledger --bench append -- $quick 2>/dev/null | sed 's/^/   /'
taskset -c 1 python3 bench/peers/append_sqlite.py "$([ -n "$quick" ] && echo 1 || echo 5)" | sed 's/^/   /'
fi
