# Shared by bench/run.sh, instructions.sh, interleave.sh and people_e2e.sh: the peers they
# install, their work folder and small helpers. Sourced from the repository root; defines
# `work` and `pids` and a cleanup trap.

need() { command -v "$1" >/dev/null 2>&1; }

# nginx (upstream and peer proxy) and taskset from Debian; oha 1.16 from crates.io unless OHA
# names one or one is on PATH.
install_peers() {
  if ! need nginx || ! need taskset; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx util-linux >/dev/null
  fi
  OHA=${OHA:-}
  if [ -z "$OHA" ]; then
    if need oha; then OHA=oha; else
      [ -x "$HOME/.cargo/bin/oha" ] || cargo install oha --locked --version 1.16.0 >/dev/null 2>&1
      OHA="$HOME/.cargo/bin/oha"
    fi
  fi
}

work=$(mktemp -d)
# nginx's worker runs unprivileged: without this it cannot read the upstream's 1 KiB file and
# answers 404.
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# binaries USAGE PATH...: the gateway binaries to compare, by absolute path in `bins` (each
# gateway runs from inside its deployment); stops with USAGE when none is given.
binaries() {
  local usage=$1; shift
  [ $# -gt 0 ] || { echo "usage: $usage" >&2; exit 2; }
  bins=()
  for bin in "$@"; do
    [ -x "$bin" ] || { echo "$bin: not an executable" >&2; exit 2; }
    bins+=("$(realpath "$bin")")
  done
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }
quiet() { # wait (up to 30 s) for the load average to settle below 0.3
  for _ in $(seq 30); do awk -v l="$(loadavg)" 'BEGIN{exit !(l<0.3)}' && return; sleep 1; done
  echo "   (load average still $(loadavg))"
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
spread() { sort -n | awk 'NR==1{mn=$1} {mx=$1} END{printf "%s-%s", mn, mx}'; }
port_wait() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened"; exit 1; }

# nginx_conf NAME HTTP_BODY: a one-worker nginx configuration in $work/NAME.conf (its pid file
# and error log beside it, no access log) whose http block holds HTTP_BODY.
nginx_conf() {
  cat > "$work/$1.conf" <<NGINX
worker_processes 1;
pid $work/$1.pid;
error_log $work/$1-error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
$2
}
NGINX
}
# start_upstream PORT: the benchmarks' upstream, an nginx of its own on cpu1 answering every
# request with the 1 KiB file $work/1k.
start_upstream() {
  nginx_conf upstream "  server { listen 127.0.0.1:$1; location / { root $work; try_files /1k =404; } }"
  taskset -c 1 nginx -c "$work/upstream.conf" -g 'daemon off;' & pids+=($!)
}

# ports_free PORT...: stop if something already listens on one of them on 127.0.0.1 (it would
# answer in place of what the run starts).
ports_free() {
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port on 127.0.0.1 is already in use: stop what listens there first" >&2; exit 1
    fi
  done
}
# gateway_deployment TENET TD HOST GW_PORT ADMIN_PORT UP_PORT: the gateway benchmarks'
# deployment in $work/d (one listener, one route to an http upstream, one permit for the
# client), the client's SVID in $work/client and the upstream's 1 KiB answer in $work/1k.
gateway_deployment() {
  local tenet=$1 td=$2 host=$3 gw=$4 admin=$5 up=$6
  "$tenet" init "$work/d" --trust-domain "$td" >/dev/null
  cat > "$work/d/tenet.toml" <<TOML
[deployment]
trust_domain = "$td"
[admin]
listen = "127.0.0.1:$admin"
[[listeners]]
name = "main"
listen = "127.0.0.1:$gw"
[[routes]]
name = "svc"
service = "svc"
listener = "main"
host = "$host"
upstream = "http://127.0.0.1:$up"
TOML
  rm "$work/d/policies/example.cedar"
  cat > "$work/d/policies/bench.cedar" <<CEDAR
@id("client-reads-svc")
permit (principal == Tenet::Workload::"spiffe://$td/ns/bench/sa/client",
        action in Tenet::Action::"read", resource in Tenet::Service::"svc");
CEDAR
  "$tenet" --config "$work/d/tenet.toml" svid x509 "spiffe://$td/ns/bench/sa/client" --ttl 12h --out "$work/client" >/dev/null
  head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$work/1k"
}
