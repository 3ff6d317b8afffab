"""A real HTTP upstream for Tenet's interop tests: answers every request with a JSON echo of
the method, the raw request target and the headers it received. A query parameter
`delay=SECONDS` (at most 5) holds the answer that long. Prints its port on stdout."""
import json
import sys
import time
from urllib.parse import parse_qs, urlsplit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        delay = parse_qs(urlsplit(self.path).query).get("delay", ["0"])[0]
        try:
            time.sleep(min(max(float(delay), 0.0), 5.0))
        except ValueError:
            pass
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        out = json.dumps({
            "method": self.command,
            "target": self.path,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
print(server.server_address[1], flush=True)
server.serve_forever()
