#!/usr/bin/env bash
# CPU time of the gateway per 100 MB answer downloaded over HTTP/2 (one curl per download, six
# downloads per binary), for comparing how builds hand large answers to hyper. The same
# deployment as bench/run.sh's scenario 1, with an nginx upstream answering a 100 MB file.
#   bench/h2_download.sh BINARY...
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
binaries "bench/h2_download.sh BINARY..." "$@"
install_peers
TD=bench.tenet.test; HOST=svc.$TD; UP_PORT=18290; GW_PORT=18653; ADMIN_PORT=18654
ports_free $UP_PORT $GW_PORT $ADMIN_PORT
gateway_deployment "${bins[0]}" "$TD" "$HOST" $GW_PORT $ADMIN_PORT $UP_PORT
head -c 100000000 /dev/zero > "$work/big"
nginx_conf upstream "  server { listen 127.0.0.1:$UP_PORT; location / { root $work; try_files /big =404; } }"
nginx -c "$work/upstream.conf" -g 'daemon off;' & pids+=($!)
port_wait $UP_PORT
tick_ms=$((1000 / $(getconf CLK_TCK)))
echo "# gateway CPU ms per 100 MB HTTP/2 download (6 downloads per binary)"
for bin in "${bins[@]}"; do
  rm -rf "$work/d/data/ledger" "$work/d/data/ledger-key/signer.state" "$work/d/data/detect"
  (cd "$work/d" && RUST_LOG=warn exec "$bin" up >"$work/tenet.log" 2>&1) & gw=$!; pids+=($gw)
  port_wait $GW_PORT
  cpu=()
  for _ in 1 2 3 4 5 6; do
    t0=$(awk '{print $14+$15}' "/proc/$gw/stat")
    got=$(curl -s --http2 -o /dev/null --cacert "$work/client/bundle.pem" --cert "$work/client/svid.pem" \
      --key "$work/client/svid.key" --connect-to "$HOST:$GW_PORT:127.0.0.1:$GW_PORT" \
      "https://$HOST:$GW_PORT/" -w '%{http_version} %{size_download}')
    [ "$got" = "2 100000000" ] || { echo "$bin: got '$got', not 100 MB over HTTP/2" >&2; exit 1; }
    t1=$(awk '{print $14+$15}' "/proc/$gw/stat")
    cpu+=($(((t1 - t0) * tick_ms)))
  done
  kill "$gw"; wait "$gw" 2>/dev/null || true
  echo "$bin: median $(printf '%s\n' "${cpu[@]}" | median) ms (${cpu[*]})"
done
