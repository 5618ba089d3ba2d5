"""A fake Datadog agent on loopback (TCP or unix socket) that parses uploads with the standard library."""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import http.server
import json
import os
import socketserver
import threading
import time


class Upload:
    """One received upload, parsed."""

    def __init__(self, path, headers, body):
        self.path = path
        self.headers = headers
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        assert message.is_multipart()
        self.parts = {}
        for part in message.iter_parts():
            disposition = part.get("Content-Disposition")
            name = part.get_param("name", header="content-disposition")
            self.parts[name] = (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
            assert disposition.startswith("form-data")
        self.event = json.loads(self.parts["event"][2])

    @property
    def tags(self):
        return dict(t.split(":", 1) for t in self.event["tags_profiler"].split(","))

    def pprof(self):
        from profiler_core.pprof import profile_pb2

        data = self.parts[self.event["attachments"][0]][2]
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        else:
            import zstandard

            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        return profile_pb2.Profile.FromString(data)


class FakeAgent:
    """Records uploads; ``statuses`` are answered in turn (then 200); ``delay`` stalls each answer.

    A 3xx status is sent with ``Location: <location>``. ``request_times`` holds the
    ``time.monotonic()`` of every request received.
    """

    def __init__(self, statuses=(), delay=0.0, unix_socket=None, port=0, location=None):
        self.uploads = []
        self.requests = 0
        self.request_times = []
        self.location = location
        self.statuses = list(statuses)
        self.delay = delay
        self.received = threading.Condition()
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if agent.delay:
                    time.sleep(agent.delay)
                with agent.received:
                    agent.requests += 1
                    agent.request_times.append(time.monotonic())
                    status = agent.statuses.pop(0) if agent.statuses else 200
                    if status == 200:
                        agent.uploads.append(Upload(self.path, dict(self.headers), body))
                    agent.received.notify_all()
                self.send_response(status)
                if 300 <= status < 400 and agent.location:
                    self.send_header("Location", agent.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        if unix_socket:

            class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
                daemon_threads = True

                def get_request(self):
                    request, _ = super().get_request()
                    return request, ("unix", 0)

            self.server = UnixServer(unix_socket, Handler)
            self.url = "unix://" + unix_socket
        else:
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
            self.server.daemon_threads = True
            self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self.received:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.received.wait(remaining)
        return True

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        path = getattr(self.server, "server_address", None)
        if isinstance(path, str) and os.path.exists(path):
            os.unlink(path)
