#!/usr/bin/env bash
# `tenet log prove` on a 10-million-entry ledger and `tenet log verify` on a 1-million-entry
# ledger, through the CLI (process start included), timed with hyperfine. Peer for verify:
# the same RFC 9162 recomputation in Python's standard library (bench/peers/merkle_root.py)
# over the same entries. Needs about 3.5 GB of free disk in $TMPDIR.
#   bench/ledger_cli.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null; }
cargo build --release -q -p tenet
cargo build --release -q -p tenet-ledger --example fill
TENET="$(pwd)/target/release/tenet"
FILL="$(pwd)/target/release/examples/fill"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== tenet log prove on 10,000,000 entries"
"$TENET" init "$work/big" --trust-domain bench.example >/dev/null
"$FILL" "$work/big" 10000000
du -sh "$work/big/data/ledger"
hyperfine -N --warmup 3 --runs 30 \
  "$TENET --config $work/big/tenet.toml log prove 1234567" \
  "$TENET --config $work/big/tenet.toml log prove 9999999" \
  "$TENET --config $work/big/tenet.toml log consistency 5000000"

echo "== tenet log verify on 1,000,000 entries"
"$TENET" init "$work/m1" --trust-domain bench.example >/dev/null
"$FILL" "$work/m1" 1000000
"$TENET" --config "$work/m1/tenet.toml" log export --format ocsf > "$work/m1.ocsf"
hyperfine -N --warmup 1 --runs 5 \
  "$TENET --config $work/m1/tenet.toml log verify" \
  "python3 bench/peers/merkle_root.py $work/m1.ocsf"

# `tenet up` start with a ledger of 1 M entries (its history is verified before it starts)
# and of 10 M (verified while it runs): time until it logs "tenet up", and until it logs the
# history verified. Ports: 127.0.0.1:18443 and :18444 (must be free).
echo "== tenet up start, history check"
for d in m1 big; do
  sed -i 's/127.0.0.1:8444/127.0.0.1:18444/; s/127.0.0.1:8443/127.0.0.1:18443/' "$work/$d/tenet.toml"
  log="$work/$d.up.log"
  start=$(date +%s%N)
  RUST_LOG=info "$TENET" --config "$work/$d/tenet.toml" up 2>"$log" >/dev/null &
  pid=$!
  ready="" verified=""
  for _ in $(seq 1 6000); do
    now=$(date +%s%N)
    [ -z "$ready" ] && grep -q ' tenet up ' "$log" && ready=$(( (now - start) / 1000000 ))
    [ -z "$verified" ] && grep -q 'ledger history verified' "$log" && verified=$(( (now - start) / 1000000 ))
    [ -n "$ready" ] && [ -n "$verified" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  kill "$pid"; wait "$pid" || true
  echo "$d: ready after ${ready:-?} ms, history verified after ${verified:-?} ms"
  grep -o 'ledger history verified.*' "$log" || true
done
