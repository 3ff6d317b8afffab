"""An HTTP/2 client that opens a connection and asks for nothing: TLS with ALPN h2 and a
client certificate, the connection preface and an empty SETTINGS frame, then it only reads
(acknowledging the server's SETTINGS and PINGs as the protocol requires) until the server
closes. With FRAMES (hex), it sends those raw frames after its SETTINGS frame. Prints the
frame types received (by name; a GOAWAY with its error code, `GOAWAY:1`) and the seconds
until the close.
Usage: h2_idle_client.py HOST PORT CERT KEY CA [LIMIT_SECONDS [FRAMES]]."""
import socket
import ssl
import sys
import time

host, port, cert, key, ca = sys.argv[1:6]
limit = float(sys.argv[6]) if len(sys.argv) > 6 else 30.0
frames = bytes.fromhex(sys.argv[7]) if len(sys.argv) > 7 else b""
NAMES = {0: "DATA", 1: "HEADERS", 3: "RST_STREAM", 4: "SETTINGS", 6: "PING", 7: "GOAWAY",
         8: "WINDOW_UPDATE"}

ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2"])
started = time.monotonic()
tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=limit),
                      server_hostname=host)
assert tls.selected_alpn_protocol() == "h2", tls.selected_alpn_protocol()
tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]) + frames)

buf = b""
seen = []
closed = False
while time.monotonic() - started < limit:
    try:
        chunk = tls.recv(65536)
    except (socket.timeout, ssl.SSLError, ConnectionError):
        break
    if not chunk:
        closed = True
        break
    buf += chunk
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + length:
            break
        kind, flags, payload = buf[3], buf[4], buf[9:9 + length]
        buf = buf[9 + length:]
        name = NAMES.get(kind, str(kind))
        if kind == 7 and length >= 8:
            name += ":" + str(int.from_bytes(payload[4:8], "big"))
        seen.append(name)
        if kind == 4 and not flags & 1:
            tls.sendall(bytes([0, 0, 0, 4, 1, 0, 0, 0, 0]))
        elif kind == 6 and not flags & 1:
            tls.sendall(bytes([0, 0, 8, 6, 1, 0, 0, 0, 0]) + payload)
print(" ".join(seen))
print("closed" if closed else "open", round(time.monotonic() - started, 2), flush=True)
