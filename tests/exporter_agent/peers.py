"""Real peers for the parity tests: ddtrace 4.16 and Datadog's ``ddapm-test-agent``, installed from
the package index into a virtual environment of their own (cached between runs), and the test
agent started on 127.0.0.1 for one test.

The environment is separate from the test environment so that ddtrace's and the test agent's
dependencies (aiohttp, an older protobuf) never change what this project is tested with.
"""

from __future__ import annotations

import base64
import email
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

# gunicorn and the OpenTelemetry SDK: the traced service of the trace-correlation tests.
PEERS = ("ddtrace==4.16.0", "ddapm-test-agent==1.69.1", "gunicorn==27.0.1", "opentelemetry-sdk==1.45.2")


def peers_dir() -> str:
    """Where the peers' environment lives (``PROFILER_PEERS_VENV`` to choose)."""
    tag = "py%d%d" % sys.version_info[:2]
    return os.environ.get("PROFILER_PEERS_VENV") or os.path.expanduser("~/.cache/profiler-tests/peers-" + tag)


def peers_bin() -> str:
    """The peers' environment's bin directory, created and filled on first use (once, whatever
    the number of test processes asking at the same time)."""
    venv = peers_dir()
    bindir = os.path.join(venv, "bin")
    marker = os.path.join(venv, "peers.txt")
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(venv + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(marker) or open(marker).read() != " ".join(PEERS):
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", "--clear", venv], check=True, capture_output=True)
            subprocess.run([os.path.join(bindir, "python"), "-m", "pip", "install", "-q", *PEERS],
                           check=True, capture_output=True, timeout=900)
            with open(marker, "w") as f:
                f.write(" ".join(PEERS))
    return bindir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upload:
    """One request the test agent stored: its headers, multipart parts and event."""

    def __init__(self, stored: dict) -> None:
        self.url = stored["url"]
        self.headers = {k.lower(): v for k, v in stored["headers"].items()}
        body = base64.b64decode(stored["body"])
        message = email.message_from_bytes(
            b"Content-Type: " + self.headers["content-type"].encode() + b"\r\n\r\n" + body)
        self.parts = {}
        for part in message.get_payload():
            name = part.get_param("name", header="content-disposition")
            self.parts[name] = (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
        self.event = json.loads(self.parts["event"][2])

    @property
    def tags(self) -> "dict":
        return dict(t.split(":", 1) for t in self.event["tags_profiler"].split(",") if ":" in t)

    def pprof_bytes(self) -> bytes:
        """The profile attachment, decompressed."""
        import gzip

        (name,) = [n for n in self.event["attachments"] if n.endswith(".pprof")]
        data = self.parts[name][2]
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)


class TestAgent:
    """``ddapm-test-agent`` on a free port of 127.0.0.1, stopped by :meth:`close`."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen(
            [os.path.join(peers_bin(), "ddapm-test-agent"), "--port", str(self.port), "--host", "127.0.0.1",
             # its OpenTelemetry listeners too, or two agents (parallel tests) clash on 4317/4318
             "--otlp-http-port", str(free_port()), "--otlp-grpc-port", str(free_port())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/info", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("ddapm-test-agent did not start")
                time.sleep(0.1)

    def uploads(self) -> "list":
        """The profile uploads it stored, oldest first."""
        with urllib.request.urlopen(self.url + "/test/session/requests", timeout=10) as response:
            stored = json.load(response)
        return [Upload(r) for r in reversed(stored) if "/profiling/v1/input" in r["url"]]

    def clear(self) -> None:
        urllib.request.urlopen(self.url + "/test/session/clear", timeout=10).read()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
