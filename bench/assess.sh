#!/usr/bin/env bash
# `tenet assess` against Parliament and Cloudsplaining (both from PyPI) on the same inputs in
# the same run: every MAMIP policy (a folder of policy files, and the same policies as one
# account dump) and Cloudsplaining's own example account dump. Reports the median wall time
# of N runs and the peak RSS (GNU time's maximum resident set size) of each tool.
#   bench/assess.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-5}
corpus="$root/../shared/corpus"

venv="$root/target/bench-venv"
if [ ! -x "$venv/bin/parliament" ] || [ ! -x "$venv/bin/cloudsplaining" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q parliament==1.6.4 cloudsplaining==0.9.1
fi
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
cargo build --release -q -p tenet
TENET="$root/target/release/tenet"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/peers/mamip_dump.py "$corpus/mamip/policies" "$work/mamip-dump.json"
mkdir -p "$work/cs1" "$work/cs2"
dump="$corpus/cloudsplaining/examples/files/example.json"

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# measure NAME CMD... : median seconds and max peak RSS (MB) over $runs runs
measure() {
  local name=$1; shift
  local times=() peak=0
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
      # Tenet exits 1 when it finds something at --fail-on (not used here); peers may exit 1
      # on findings too. Any other failure stops the benchmark.
      code=$?; if [ "$code" -gt 1 ]; then echo "$name failed ($code):"; cat "$work/err"; exit 1; fi; }
    read -r secs kb < <(tail -n1 "$work/time")
    times+=("$secs"); [ "$kb" -gt "$peak" ] && peak=$kb
  done
  local med; med=$(printf '%s\n' "${times[@]}" | median)
  printf '  %-44s %8.3f s   peak %6d MB\n' "$name" "$med" $((peak / 1024))
  echo "$med" > "$work/last"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a>0) printf "%.0fx", b/a; else print "inf" }'; }

echo "== all 1,390 MAMIP policies as policy files ($runs runs, median)"
measure "tenet assess (folder)" "$TENET" assess "$corpus/mamip/policies" --format json; t=$(cat "$work/last")
measure "parliament --aws-managed-policies" "$venv/bin/parliament" --aws-managed-policies "$corpus/mamip/policies" --json; p=$(cat "$work/last")
echo "  tenet is $(ratio "$t" "$p") faster than parliament"

echo "== the same 1,390 policies as one account dump"
measure "tenet assess (dump)" "$TENET" assess "$work/mamip-dump.json" --format json; t=$(cat "$work/last")
measure "parliament --auth-details-file" "$venv/bin/parliament" --auth-details-file "$work/mamip-dump.json" --json; p=$(cat "$work/last")
measure "cloudsplaining scan" "$venv/bin/cloudsplaining" scan -i "$work/mamip-dump.json" -o "$work/cs1" -s; c=$(cat "$work/last")
echo "  tenet is $(ratio "$t" "$p") faster than parliament, $(ratio "$t" "$c") faster than cloudsplaining"

echo "== Cloudsplaining's example account dump (examples/files/example.json)"
measure "tenet assess" "$TENET" assess "$dump" --format json; t=$(cat "$work/last")
measure "parliament --auth-details-file" "$venv/bin/parliament" --auth-details-file "$dump" --json; p=$(cat "$work/last")
measure "cloudsplaining scan" "$venv/bin/cloudsplaining" scan -i "$dump" -o "$work/cs2" -s; c=$(cat "$work/last")
echo "  tenet is $(ratio "$t" "$p") faster than parliament, $(ratio "$t" "$c") faster than cloudsplaining"

echo "== Kubernetes reachability: generated cluster, 1,000 pods and 500 policies"
cargo run --release -q -p tenet-k8s --example reach_bench
