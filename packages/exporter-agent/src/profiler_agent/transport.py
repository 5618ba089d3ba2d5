"""A requests session that can also talk HTTP over a unix socket (the agent's ``apm.socket``)."""

from __future__ import annotations

import socket

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

#: What a failed request raises (re-exported so the uploader thread needs no import of its own).
RequestException = requests.RequestException
ConnectionError = requests.ConnectionError  # noqa: A001 (requests' name, re-exported)


class _UnixConnection(HTTPConnection):
    def __init__(self, socket_path: str, *args, **kwargs) -> None:
        super().__init__("localhost", *args, **kwargs)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        timeout = self.timeout
        if isinstance(timeout, (int, float)):
            sock.settimeout(timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixConnectionPool(HTTPConnectionPool):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout, retries=False, maxsize=1)
        self._socket_path = socket_path

    def _new_conn(self) -> _UnixConnection:
        return _UnixConnection(self._socket_path, timeout=self.timeout.connect_timeout)


class UnixSocketAdapter(HTTPAdapter):
    """Sends every request of the session to one unix socket, whatever the URL's host."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__(max_retries=0)
        self._pool = _UnixConnectionPool(socket_path, timeout)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):  # requests >= 2.32
        return self._pool

    def get_connection(self, url, proxies=None):  # older requests
        return self._pool

    def close(self) -> None:
        self._pool.close()
        super().close()


def make_session(unix_socket: "str | None", timeout: float) -> requests.Session:
    """A session for the endpoint; no retries of its own (the exporter retries) and no proxies from the environment for sockets."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=0))
    session.mount("https://", HTTPAdapter(max_retries=0))
    if unix_socket:
        session.trust_env = False
        session.mount("http://", UnixSocketAdapter(unix_socket, timeout))
    return session



def warm_up(session: requests.Session, url: str) -> None:
    """Prepare (never send) a multipart POST to ``url``, so that what requests imports on its first
    request (netrc, idna, ...) is imported by the calling thread rather than by the uploader thread."""
    request = requests.Request("POST", url, files={"warm-up": ("warm-up", b"", "application/octet-stream")})
    session.prepare_request(request)
