"""The exporter's HTTP client against real servers on loopback: TLS with verification, answers
that come early, late, broken or not at all, and URLs as users write them."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from profiler_agent import httpclient


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 202
    seen = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((self.path, dict(self.headers), body))
        self.send_response(self.status)
        self.send_header("Location", "https://elsewhere.example/x?token=secret")
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass


def _serve(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def answer_server():
    _Answer.seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Answer)
    _serve(server)
    yield server
    server.shutdown()
    server.server_close()


def test_post_sends_body_and_headers_and_reads_status(answer_server):
    port = answer_server.server_address[1]
    target = httpclient.Target("http://127.0.0.1:%d/profiling/v1/input" % port)
    content_type, body = httpclient.multipart([("event", "event.json", b'{"a": 1}', "application/json")])
    response = target.post(body, {"Content-Type": content_type, "X-Test": "yes"}, timeout=5)
    assert response.status == 202
    assert response.headers["location"].startswith("https://elsewhere.example/")
    (path, headers, received), = _Answer.seen
    assert path == "/profiling/v1/input"
    assert headers["Host"] == "127.0.0.1:%d" % port
    assert headers["X-Test"] == "yes" and headers["Connection"] == "close"
    assert received == body


def test_refused_port_and_missing_socket_are_unreachable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(httpclient.Unreachable):
        httpclient.Target("http://127.0.0.1:%d/x" % port).post(b"", {}, timeout=5)
    with pytest.raises(httpclient.Unreachable, match="unix socket"):
        httpclient.Target("http://localhost/x", unix_socket=str(tmp_path / "absent.sock")).post(b"", {}, timeout=5)
    with pytest.raises(httpclient.Unreachable, match="resolving"):
        httpclient.Target("http://no-such-host.invalid/x").post(b"", {}, timeout=5)


def _raw_server(behaviour):
    """A TCP server on loopback whose every connection is handed to ``behaviour(conn)``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    behaviour(conn)
                except OSError:
                    pass

    threading.Thread(target=loop, daemon=True).start()
    return listener


def test_an_answer_before_the_body_is_read_is_still_the_answer():
    # An agent refusing a large profile answers 413 and closes without reading it all.
    def refuse(conn):
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.2)

    listener = _raw_server(refuse)
    try:
        target = httpclient.Target("http://127.0.0.1:%d/x" % listener.getsockname()[1])
        assert target.post(b"x" * (32 << 20), {}, timeout=10).status == 413
    finally:
        listener.close()


@pytest.mark.parametrize(
    "answer, message",
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP answer"),
        (b"", "closed before an answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "ended early"),
    ],
)
def test_a_broken_answer_is_a_failed_exchange(answer, message):
    def broken(conn):
        conn.recv(65536)
        conn.sendall(answer)

    listener = _raw_server(broken)
    try:
        target = httpclient.Target("http://127.0.0.1:%d/x" % listener.getsockname()[1])
        with pytest.raises(httpclient.ExchangeFailed, match=message):
            target.post(b"{}", {}, timeout=5)
    finally:
        listener.close()


def test_a_silent_server_times_out_within_the_whole_timeout():
    # A server that reads forever, trickling nothing: the timeout bounds the whole exchange.
    stop = threading.Event()

    def silent(conn):
        while not stop.is_set() and conn.recv(65536):
            pass

    listener = _raw_server(silent)
    try:
        target = httpclient.Target("http://127.0.0.1:%d/x" % listener.getsockname()[1])
        began = time.monotonic()
        with pytest.raises(httpclient.ExchangeFailed, match="timed out"):
            target.post(b"{}", {}, timeout=0.5)
        assert time.monotonic() - began < 3
    finally:
        stop.set()
        listener.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    where = tmp_path_factory.mktemp("tls")
    cert, key = str(where / "cert.pem"), str(where / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(certificate):
    _Answer.seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _serve(server)
    yield server
    server.shutdown()
    server.server_close()


def test_https_verifies_the_server(tls_server, certificate, monkeypatch):
    port = tls_server.server_address[1]
    # Not trusted: the certificate is refused and nothing is sent.
    with pytest.raises(httpclient.ExchangeFailed, match="TLS.*CERTIFICATE_VERIFY_FAILED"):
        httpclient.Target("https://localhost:%d/api/v2/profile" % port).post(b"{}", {"DD-API-KEY": "k"}, timeout=5)
    assert _Answer.seen == []
    # Trusted through SSL_CERT_FILE, as OpenSSL reads it: the upload goes through TLS.
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])
    response = httpclient.Target("https://localhost:%d/api/v2/profile" % port).post(b"{}", {"DD-API-KEY": "k"}, timeout=5)
    assert response.status == 202
    (path, headers, body), = _Answer.seen
    assert path == "/api/v2/profile" and headers["DD-API-KEY"] == "k" and body == b"{}"


@pytest.mark.parametrize(
    "url, host, port, path, host_header",
    [
        ("http://localhost:8126/profiling/v1/input", "localhost", 8126, "/profiling/v1/input", "localhost:8126"),
        ("http://[::1]:8126/p", "::1", 8126, "/p", "[::1]:8126"),
        ("https://intake.profile.datadoghq.com/api/v2/profile", "intake.profile.datadoghq.com", 443,
         "/api/v2/profile", "intake.profile.datadoghq.com"),
        ("http://user:pw@agent:80", "agent", 80, "/", "agent"),
    ],
)
def test_urls_as_users_write_them(url, host, port, path, host_header):
    target = httpclient.Target(url)
    assert (target.host, target.port, target.path, target.host_header) == (host, port, path, host_header)


@pytest.mark.parametrize("url", ["ftp://agent/x", "localhost:8126", "http://agent:99999/x", "http://:80/x"])
def test_unusable_urls_are_refused(url):
    with pytest.raises(ValueError):
        httpclient.Target(url)


@pytest.mark.parametrize(
    "location, shown",
    [
        ("https://evil.example:8443/steal?key=abc", "https://evil.example"),
        ("http://user:pw@other.example/x", "http://other.example"),
        ("/relative/path?token=abc", "a relative URL"),
        (None, "nowhere"),
        ("http://[bad/x", "an invalid URL"),
    ],
)
def test_a_redirect_is_shown_without_its_path_query_or_credentials(location, shown):
    assert httpclient.origin_of(location) == shown


def test_multipart_is_read_back_by_the_standard_library():
    import email.parser
    import email.policy

    content_type, body = httpclient.multipart(
        [("event", "event.json", b'{"x": 1}', "application/json"), ("auto.pprof", "auto.pprof", os.urandom(300), "application/octet-stream")]
    )
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
    assert parts["event"].get_payload(decode=True) == b'{"x": 1}'
    assert parts["event"].get_filename() == "event.json"
    assert len(parts["auto.pprof"].get_payload(decode=True)) == 300


_UPLOAD_FROM_A_THREAD = """
import socket, sys, threading
from profiler_agent import httpclient
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
def answer():
    conn, _ = listener.accept()
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 202 Accepted\\r\\nContent-Length: 2\\r\\n\\r\\n{}")
    conn.close()
threading.Thread(target=answer, daemon=True).start()
target = httpclient.Target("http://%s:%d/x" % (sys.argv[1], listener.getsockname()[1]))
before = set(sys.modules)
statuses = []
thread = threading.Thread(target=lambda: statuses.append(target.post(b"{}", {}, timeout=5).status))
thread.start()
thread.join()
print(statuses, sorted(set(sys.modules) - before))
"""


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_an_upload_imports_nothing_in_the_uploading_thread(host):
    # A fork while another thread imports leaves the child's import lock held: the uploader thread
    # must import nothing (getaddrinfo would import the idna codec for a str host name). In a fresh
    # interpreter: here, another test may have imported it already.
    result = subprocess.run([sys.executable, "-c", _UPLOAD_FROM_A_THREAD, host], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[202] []"
