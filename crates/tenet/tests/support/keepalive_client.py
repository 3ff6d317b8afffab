"""A real HTTPS client (Python's ssl + http.client) holding ONE keep-alive connection: sends
GET PATH and prints the status; then, for every line read on stdin, sends GET PATH again on
the same connection and prints the status and whether the connection was still the same.
Usage: keepalive_client.py HOST PORT CERT KEY CA PATH (TCP goes to 127.0.0.1:PORT, SNI and
Host name HOST)."""
import http.client
import socket
import ssl
import sys

host, port, cert, key, ca, path = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=10),
                      server_hostname=host)
conn = http.client.HTTPConnection(host, int(port), timeout=10)
conn.sock = tls
conn.auto_open = 0  # never reconnect silently: a closed connection is an error


def once():
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    return r.status


print(once(), flush=True)
for _ in sys.stdin:
    status = once()
    print(status, "same-connection" if conn.sock is tls else "new-connection", flush=True)
