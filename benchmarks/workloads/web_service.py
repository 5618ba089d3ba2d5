"""A small JSON web service on loopback, to be driven by ``benchmarks/load.py``.

``python web_service.py PORT_FILE``: serves HTTP/1.1 (keep-alive) on a free loopback port,
writes the port to PORT_FILE, and runs until terminated. Each request does what a small
service does: parses the query, takes a shared lock, builds and encodes a JSON document,
and now and then handles an exception.
"""

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

hits_lock = threading.Lock()
hits = {}


def render(item_id):
    rows = [{"id": item_id * 10 + i, "name": "row-%d" % i, "score": (item_id * 31 + i) % 97} for i in range(30)]
    rows.sort(key=lambda r: r["score"])
    return {"item": item_id, "rows": rows}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        try:
            item_id = int(query.get("id", ["0"])[0])
            if item_id % 100 == 0:
                raise KeyError(item_id)
        except KeyError:
            item_id = 1
        with hits_lock:
            hits[item_id] = hits.get(item_id, 0) + 1
        body = json.dumps(render(item_id)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os

    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
