"""An HTTP/2 client for the shutdown test: sends one GET (the path given, which holds the
answer a while), prints `sent`, then prints `status N` when the answer's head comes and
`ended` when its stream ends, and keeps the connection open without ever writing again, so
it never answers the gateway's PING (hyper waits for that answer before its last GOAWAY).

    h2_stop_client.py HOST PORT PATH CERT KEY CA"""
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import hpack

host, port, path, cert, key, ca = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2"])
sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname=host)
conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
stream = conn.get_next_available_stream_id()
conn.send_headers(stream, [(":method", "GET"), (":scheme", "https"),
                           (":authority", host), (":path", path)], end_stream=True)
sock.sendall(conn.data_to_send())
print("sent", flush=True)
sock.settimeout(1)
# The answer is read frame by frame (h2's state machine refuses a PING after a GOAWAY, which
# is what a gateway that shuts down gracefully sends).
decoder = hpack.Decoder()
buffer = b""
deadline = time.time() + 15
while time.time() < deadline:
    try:
        data = sock.recv(65536)
    except socket.timeout:
        continue
    except OSError:
        break
    if not data:
        break
    buffer += data
    while len(buffer) >= 9:
        length = int.from_bytes(buffer[0:3], "big")
        if len(buffer) < 9 + length:
            break
        kind, flags = buffer[3], buffer[4]
        stream_id = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
        payload, buffer = buffer[9:9 + length], buffer[9 + length:]
        if kind == 1 and stream_id == stream:
            headers = dict(decoder.decode(payload))
            print("status", headers.get(":status", headers.get(b":status", b"")), flush=True)
        if kind in (0, 1) and stream_id == stream and flags & 0x1:
            print("ended", flush=True)
print("closed", flush=True)
