"""A webhook receiver for the detection tests: prints its port, then for every POST checks
the HMAC-SHA256 signature Tenet sends (X-Tenet-Signature: sha256=<hex> over
"<X-Tenet-Timestamp>.<body>", key from argv[2]) with Python's standard library and appends
one JSON line {"valid": bool, "body": ...} to the file argv[1]."""
import hashlib
import hmac
import http.server
import json
import sys

out_path, key = sys.argv[1], sys.argv[2].encode()


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        ts = self.headers.get("x-tenet-timestamp", "")
        sig = self.headers.get("x-tenet-signature", "")
        want = "sha256=" + hmac.new(key, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(sig, want)
        with open(out_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"valid": valid, "body": json.loads(body)}) + "\n")
        self.send_response(204 if valid else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
print(server.server_address[1], flush=True)
server.serve_forever()
