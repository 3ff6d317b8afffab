"""Time from an offending request's decision to the revocation taking effect at the gateway.

Starts a throwaway deployment (tenet init + tenet up, an http.server upstream), with a playbook
that revokes an identity on lateral movement. For each of N fresh workload identities: learn a
baseline (3 allowed requests on one keep-alive connection), send one request to a service
outside it (denied; the decision is made before its 403 arrives: t0), then keep sending on the
first connection until the gateway refuses it (t1). Prints p50/p95/p99/max of t1 - t0.
Usage: response.py TENET_BINARY [N]   (all on 127.0.0.1)"""
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

tenet, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50
TD = "bench.example"
work = tempfile.mkdtemp()
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


try:
    d = os.path.join(work, "d")
    subprocess.run([tenet, "init", d, "--trust-domain", TD], check=True, stdout=subprocess.DEVNULL)
    up_port, gw, admin = free_port(), free_port(), free_port()
    os.makedirs(os.path.join(work, "www"))
    procs.append(subprocess.Popen([sys.executable, "-m", "http.server", str(up_port), "--bind", "127.0.0.1",
                                   "--directory", os.path.join(work, "www")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    with open(os.path.join(d, "tenet.toml"), "w") as f:
        f.write(f"""[deployment]
trust_domain = "{TD}"
[events]
sync = "never"
[admin]
listen = "127.0.0.1:{admin}"
[[listeners]]
name = "main"
listen = "127.0.0.1:{gw}"
[[routes]]
name = "catalog"
service = "catalog"
listener = "main"
host = "catalog.{TD}"
upstream = "http://127.0.0.1:{up_port}"
[[routes]]
name = "payments"
service = "payments"
listener = "main"
host = "payments.{TD}"
upstream = "http://127.0.0.1:{up_port}"
[detect]
[detect.analytics.learning]
period_secs = 0
min_events = 3
""")
    os.remove(os.path.join(d, "policies", "example.cedar"))
    with open(os.path.join(d, "policies", "bench.cedar"), "w") as f:
        f.write(f'permit (principal in Tenet::TrustDomain::"{TD}", action in Tenet::Action::"read", '
                f'resource in Tenet::Service::"catalog");\n')
    os.makedirs(os.path.join(d, "playbooks"))
    with open(os.path.join(d, "playbooks", "contain.yaml"), "w") as f:
        f.write("playbooks:\n  - name: contain\n    match: {rules: [tenet.lateral-movement], min_level: medium}\n"
                "    actions:\n      - revoke_identity: {for: 1h}\n")
    log = open(os.path.join(work, "up.log"), "w")
    procs.append(subprocess.Popen([tenet, "--config", os.path.join(d, "tenet.toml"), "up"],
                                  stdout=subprocess.DEVNULL, stderr=log))
    wait_port(gw)
    bundle = os.path.join(d, "data", "admin", "bundle.pem")

    def connect(host, cred):
        ctx = ssl.create_default_context(cafile=bundle)
        ctx.load_cert_chain(os.path.join(cred, "svid.pem"), os.path.join(cred, "svid.key"))
        ctx.set_alpn_protocols(["http/1.1"])
        tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", gw)), server_hostname=host)
        c = http.client.HTTPConnection(host, gw)
        c.sock = tls
        c.auto_open = 0
        return c

    def get(c, path="/"):
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status

    samples = []
    for i in range(n):
        ident = f"spiffe://{TD}/bench/w{i}"
        cred = os.path.join(work, f"w{i}")
        subprocess.run([tenet, "--config", os.path.join(d, "tenet.toml"), "svid", "x509", ident, "--out", cred],
                       check=True, stdout=subprocess.DEVNULL)
        c = connect(f"catalog.{TD}", cred)
        for _ in range(4):
            assert get(c) in (200, 404), "baseline request refused"
        probe = connect(f"payments.{TD}", cred)
        status = get(probe)
        t0 = time.perf_counter()
        assert status == 403, status
        while True:
            s = get(c)
            if s == 403:
                break
            if time.perf_counter() - t0 > 5:
                raise SystemExit(f"identity {ident} never contained; see {work}/up.log")
        samples.append((time.perf_counter() - t0) * 1000)
        c.close()
        probe.close()
    samples.sort()
    pct = lambda p: samples[min(len(samples) - 1, int(round(p / 100 * len(samples) + 0.5)) - 1)]
    print(f"revocation after lateral movement, {len(samples)} identities: "
          f"p50 {pct(50):.1f} ms, p95 {pct(95):.1f} ms, p99 {pct(99):.1f} ms, max {samples[-1]:.1f} ms")
finally:
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
