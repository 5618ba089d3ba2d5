"""One HTTP/1.1 POST at a time to the agent or the intake: over TCP, a unix socket or TLS.

Small on purpose. A profiled program pays for what the exporter imports at every start, and
``requests`` cost it 130-190 ms here; this needs only ``_socket`` (``ssl`` for an https
endpoint). Each upload opens its own connection (one a minute; keep-alive would buy nothing)
and sends ``Connection: close``. No proxy from the environment is used and no redirect is
followed: uploads go only where configured, as ddtrace's do.
"""

from __future__ import annotations

import _socket
import os
from time import monotonic as _monotonic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

    Part = Tuple[str, str, bytes, str]  # (field name, file name, content, content type)

#: The most of a response's head (status line and headers) read before giving up on it.
MAX_HEAD = 64 * 1024
#: A response body is read (so the connection ends cleanly) only up to this size.
MAX_BODY = 1024 * 1024


class HTTPError(Exception):
    """An upload that got no HTTP answer."""


class Unreachable(HTTPError):
    """No connection was made: unresolvable host, refused, no route, missing socket, connect timeout."""


class ExchangeFailed(HTTPError):
    """Connected, but the exchange failed: timeout, reset, or an answer that is not HTTP."""


class Response:
    """An HTTP answer's status and headers (names lower-cased); the body is not kept."""

    __slots__ = ("status", "headers")

    def __init__(self, status: int, headers: "Dict[str, str]") -> None:
        self.status = status
        self.headers = headers


class Target:
    """Where a POST goes: ``url`` (http:// or https://), or, with ``unix_socket``, that socket
    with the URL's path. Raises ValueError for a URL it cannot use."""

    __slots__ = ("scheme", "host", "port", "path", "unix_socket", "host_header", "_host_bytes", "_tls", "_socket_module")

    def __init__(self, url: str, unix_socket: "Optional[str]" = None) -> None:
        scheme, sep, rest = url.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in ("http", "https"):
            raise ValueError("not an http:// or https:// URL: %r" % url)
        authority, slash, path = rest.partition("/")
        authority = authority.rpartition("@")[2]  # user:password@ never goes into Host
        host, port = split_host_port(authority, 443 if scheme == "https" else 80)
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = slash + path if slash else "/"
        self.unix_socket = unix_socket
        default_port = 443 if scheme == "https" else 80
        shown = "[%s]" % host if ":" in host else host
        self.host_header = shown if port == default_port else "%s:%d" % (shown, port)
        # getaddrinfo encodes a str host with the idna codec, imported on first use: in the uploader
        # thread, that would be an import there. Encoded here, on the thread building the exporter.
        try:
            self._host_bytes = host.encode("ascii")
        except UnicodeEncodeError:
            self._host_bytes = host.encode("idna")
        self._tls = None
        self._socket_module = None
        if scheme == "https" and not unix_socket:
            import socket  # imported by ssl anyway; wrapping needs its socket class

            self._tls = tls_context()
            self._socket_module = socket

    def post(self, body: bytes, headers: "Dict[str, str]", timeout: float) -> Response:
        """Send ``body`` with ``headers`` and read the answer's head, all within ``timeout`` seconds.

        Raises Unreachable when no connection was made, ExchangeFailed when the exchange broke.
        """
        deadline = _monotonic() + timeout
        sock = self._connect(deadline)
        try:
            head = ["POST %s HTTP/1.1" % self.path, "Host: %s" % self.host_header]
            head.extend("%s: %s" % (name, value) for name, value in headers.items())
            head.append("Content-Length: %d" % len(body))
            head.append("Connection: close")
            request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
            try:
                _settimeout(sock, deadline)
                sock.sendall(request)
            except OSError as exc:
                # The server may have answered (a 413, say) and closed before taking everything.
                response = _read_response_or_none(sock, deadline)
                if response is None:
                    raise ExchangeFailed(_describe(exc)) from None
                return response
            return _read_response(sock, deadline)
        finally:
            sock.close()

    def _connect(self, deadline: float):
        if self.unix_socket:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                _settimeout(sock, deadline)
                sock.connect(self.unix_socket)
            except OSError as exc:
                sock.close()
                raise Unreachable("%s (unix socket %s)" % (_describe(exc), self.unix_socket)) from None
            return sock
        try:
            addresses = _socket.getaddrinfo(self._host_bytes, self.port, 0, _socket.SOCK_STREAM)
        except OSError as exc:
            raise Unreachable("%s (resolving %s)" % (_describe(exc), self.host)) from None
        error: "Optional[OSError]" = None
        for family, kind, proto, _, address in addresses:
            sock = _socket.socket(family, kind, proto)
            try:
                _settimeout(sock, deadline)
                sock.connect(address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            if self._tls is None:
                return sock
            return self._wrap(sock, deadline)
        raise Unreachable("%s (%s:%d)" % (_describe(error) if error else "no address", self.host, self.port))

    def _wrap(self, raw, deadline: float):
        sock = self._socket_module.socket(fileno=raw.detach())
        try:
            _settimeout(sock, deadline)
            return self._tls.wrap_socket(sock, server_hostname=self.host)
        except OSError as exc:  # ssl.SSLError is an OSError
            sock.close()
            raise ExchangeFailed("TLS: %s" % _describe(exc)) from None


def split_host_port(authority: str, default_port: int) -> "Tuple[str, int]":
    """``host`` and port of ``host[:port]`` or ``[v6]:port``; ValueError for a bad port or empty host."""
    if authority.startswith("["):
        host, bracket, after = authority[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError("bad IPv6 address in %r" % authority)
        port_text = after[1:]
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
    else:
        host, port_text = authority, ""
    if not host:
        raise ValueError("no host in %r" % authority)
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("bad port in %r" % authority)
    return host, int(port_text)


def tls_context():
    """A client TLS context that verifies the server: the system's certificates, and certifi's
    bundle where certifi is installed (slim images may have no system bundle)."""
    import ssl

    context = ssl.create_default_context()
    try:
        import certifi
    except ImportError:
        return context
    try:
        context.load_verify_locations(certifi.where())
    except (OSError, ValueError):
        pass
    return context


def multipart(parts: "List[Part]") -> "Tuple[str, bytes]":
    """The ``Content-Type`` and body of a multipart/form-data message of ``parts``."""
    boundary = os.urandom(16).hex()
    chunks = []
    for name, filename, content, content_type in parts:
        chunks.append(
            (
                '--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\nContent-Type: %s\r\n\r\n'
                % (boundary, _quote(name), _quote(filename), content_type)
            ).encode("utf-8")
        )
        chunks.append(content)
        chunks.append(b"\r\n")
    chunks.append(("--%s--\r\n" % boundary).encode("ascii"))
    return "multipart/form-data; boundary=%s" % boundary, b"".join(chunks)


def origin_of(location: "Optional[str]") -> str:
    """Where a redirect pointed, as ``scheme://host`` only (a Location may carry a token in its path
    or query)."""
    if not location:
        return "nowhere"
    scheme, sep, rest = location.partition("://")
    if not sep:
        return "a relative URL"
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    try:
        host, _ = split_host_port(authority, 0)
    except ValueError:
        return "an invalid URL"
    if not scheme.isalnum():
        return "an invalid URL"
    return "%s://%s" % (scheme.lower(), host)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


def _settimeout(sock, deadline: float) -> None:
    remaining = deadline - _monotonic()
    if remaining <= 0:
        raise _socket.timeout("timed out")
    sock.settimeout(remaining)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _socket.timeout):
        return "timed out"
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


def _read_head(sock, deadline: float) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise ExchangeFailed("the answer's head is longer than %d bytes" % MAX_HEAD)
        try:
            _settimeout(sock, deadline)
            chunk = sock.recv(65536)
        except OSError as exc:
            raise ExchangeFailed("reading the answer: %s" % _describe(exc)) from None
        if not chunk:
            raise ExchangeFailed("the connection closed before an answer" if not data else "the answer ended early")
        data += chunk
    return data


def _parse_head(data: bytes) -> "Tuple[Response, bytes]":
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, after = lines[0].partition(" ")
    status_text = after.partition(" ")[0]
    if not version.startswith("HTTP/") or len(status_text) != 3 or not status_text.isdigit():
        raise ExchangeFailed("not an HTTP answer: %r" % lines[0][:80])
    headers: "Dict[str, str]" = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Response(int(status_text), headers), rest


def _read_response(sock, deadline: float) -> Response:
    response, body = _parse_head(_read_head(sock, deadline))
    _drain(sock, response, len(body), deadline)
    return response


def _read_response_or_none(sock, deadline: float) -> "Optional[Response]":
    try:
        return _read_response(sock, deadline)
    except ExchangeFailed:
        return None


def _drain(sock, response: Response, have: int, deadline: float) -> None:
    # Reading a small body to its end lets the connection close without a reset; a failure here
    # changes nothing, the answer is known.
    length_text = response.headers.get("content-length", "")
    if not length_text.isdigit() or int(length_text) > MAX_BODY:
        return
    left = int(length_text) - have
    try:
        while left > 0:
            _settimeout(sock, deadline)
            chunk = sock.recv(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)
    except OSError:
        return
