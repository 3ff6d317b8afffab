"""An HTTP/2 client whose request body stops arriving: TLS with ALPN h2 and a client
certificate, then one POST stream announcing 1000 bytes of body (HEADERS without end of stream) and a
DATA frame of three of them, and nothing more; it reads (acknowledging SETTINGS and PINGs) until the server ends the
stream or closes. Prints "answered SECONDS" (or "unanswered SECONDS") and then the response
body received on the stream.
Usage: h2_slow_body_client.py HOST PORT PATH CERT KEY CA [LIMIT_SECONDS]."""
import socket
import ssl
import sys
import time

host, port, path, cert, key, ca = sys.argv[1:7]
limit = float(sys.argv[7]) if len(sys.argv) > 7 else 15.0


def frame(kind, flags, stream, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags])
            + stream.to_bytes(4, "big") + payload)


def literal(index, value):
    """HPACK literal header field without indexing, its name by static table index (< 30)."""
    value = value.encode()
    name = bytes([index]) if index < 15 else bytes([15, index - 15])
    return name + bytes([len(value)]) + value


ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2"])
started = time.monotonic()
tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=limit),
                      server_hostname=host)
assert tls.selected_alpn_protocol() == "h2", tls.selected_alpn_protocol()
# :method POST and :scheme https from the static table; :path, :authority and a
# content-length of 1000 (static index 28) as literals.
block = (bytes([0x83, 0x87]) + literal(4, path) + literal(1, f"{host}:{port}")
         + literal(28, "1000"))
tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0)
            + frame(1, 0x4, 1, block) + frame(0, 0, 1, b"abc"))

buf = b""
body = b""
answered = False
while time.monotonic() - started < limit and not answered:
    try:
        chunk = tls.recv(65536)
    except (socket.timeout, ssl.SSLError, ConnectionError):
        break
    if not chunk:
        break
    buf += chunk
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + length:
            break
        kind, flags = buf[3], buf[4]
        stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        payload = buf[9:9 + length]
        buf = buf[9 + length:]
        if kind == 4 and not flags & 1:
            tls.sendall(frame(4, 1, 0))
        elif kind == 6 and not flags & 1:
            tls.sendall(frame(6, 1, 0, payload))
        elif kind == 0 and stream == 1:
            body += payload
            answered = answered or bool(flags & 1)
        elif kind == 3 and stream == 1:
            answered = True
print(f"{'answered' if answered else 'unanswered'} {time.monotonic() - started:.2f}")
print(body.decode("utf-8", "replace"))
