"""What exception types do, as a list of printable outcomes: run with and without the collector, compared.

Each case builds, raises, catches, copies or pickles exceptions the way real
code does (keyword arguments, ``__new__``/``__init__`` written in Python,
``OSError``'s errno mapping, exception groups, ``requests``' exceptions) and
records what came out; an exception escaping a case is an outcome too.
"""

from __future__ import annotations

import copy
import errno
import http.server
import pickle
import socket
import sys
import threading


class KwargsOSError(OSError):
    """Like requests.ConnectionError: an OSError subclass whose __init__ takes keyword arguments."""

    def __init__(self, *args, **kwargs):
        self.response = kwargs.pop("response", None)
        self.request = kwargs.pop("request", None)
        super().__init__(*args, **kwargs)


class KwargsError(Exception):
    def __init__(self, message, *, code=0):
        super().__init__(message)
        self.code = code


class NewChangesArgs(ValueError):
    def __new__(cls, *args):
        return super().__new__(cls, *(a.upper() for a in args))


class NewReturnsOther(Exception):
    def __new__(cls, *args):
        return KeyError(*args)


class Slotted(Exception):
    __slots__ = ("extra",)

    def __init__(self, extra):
        super().__init__(extra)
        self.extra = extra


class NoKwargsOSError(OSError):
    pass


def describe(exc: BaseException) -> str:
    attrs = {k: v for k, v in vars(exc).items()} if hasattr(exc, "__dict__") else {}
    return "%s%r %s %r" % (type(exc).__name__, exc.args, str(exc), sorted(attrs.items(), key=repr))


def attempt(fn) -> str:
    try:
        return "ok: %s" % (fn(),)
    except BaseException as exc:  # the outcome, whatever it is
        return "raised: %s" % describe(exc)


def _raise_and_catch(exc: BaseException) -> str:
    try:
        raise exc
    except BaseException as caught:
        return describe(caught) + " same=%s" % (caught is exc)


def oserror_cases() -> "list[str]":
    return [
        attempt(lambda: describe(KwargsOSError("refused", response=1, request=2))),
        attempt(lambda: (KwargsOSError("x", response="r").response, KwargsOSError("y").response)),
        attempt(lambda: describe(NoKwargsOSError("x", foo=1))),  # TypeError without the profiler too
        attempt(lambda: describe(OSError(errno.ENOENT, "missing"))),
        attempt(lambda: type(OSError(errno.EACCES, "denied")).__name__),
        attempt(lambda: type(OSError(errno.EAGAIN, "again")).__name__),
        attempt(lambda: describe(OSError(errno.ENOENT, "missing", "a.txt", None, "b.txt"))),
        attempt(lambda: BlockingIOError(errno.EAGAIN, "x", 7).characters_written),
        attempt(lambda: describe(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))),
        attempt(lambda: OSError(foo=1)),
        attempt(lambda: open("/nonexistent/profiler-test")),
        attempt(lambda: socket.create_connection(("127.0.0.1", _closed_port()), timeout=2)),
    ]


def construction_cases() -> "list[str]":
    return [
        attempt(lambda: describe(KwargsError("m", code=3))),
        attempt(lambda: KwargsError("m", bogus=3)),
        attempt(lambda: describe(NewChangesArgs("a", "b"))),
        attempt(lambda: describe(NewReturnsOther("k"))),
        attempt(lambda: describe(Slotted(5)) + " extra=%s" % Slotted(5).extra),
        attempt(lambda: describe(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"))),
        attempt(lambda: (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad").start, "ok")),
        attempt(lambda: describe(SyntaxError("bad", ("f.py", 1, 2, "x y", 1, 3)))),
        attempt(lambda: compile("x = (", "<s>", "exec")),
        attempt(lambda: StopIteration(42).value),
        attempt(lambda: SystemExit(3).code),
        attempt(lambda: describe(KeyError("k"))),
        attempt(lambda: describe(AttributeError("a", name="n", obj=None))),
        attempt(lambda: describe(ImportError("i", name="mod", path="/p"))),
        attempt(lambda: describe(NameError("n", name="x"))),
        attempt(lambda: ValueError.__new__(ValueError, "only-new").args),
        attempt(lambda: Exception.__new__(KeyError)),
        attempt(lambda: BaseException.__new__(int)),
    ]


def raising_cases() -> "list[str]":
    out = [
        attempt(lambda: _raise_and_catch(ValueError("v", 1))),
        attempt(lambda: _raise_and_catch(KwargsOSError("x", response=9))),
        attempt(lambda: _raise_and_catch(KeyboardInterrupt())),
        attempt(lambda: _raise_and_catch(SystemExit(4))),
        attempt(lambda: _raise_and_catch(GeneratorExit())),
        attempt(lambda: {}["missing"]),
        attempt(lambda: int("nope")),
        attempt(lambda: [].pop()),
        attempt(lambda: 1 / 0),
        attempt(lambda: object().missing),
        attempt(lambda: hasattr(object(), "missing")),
        attempt(lambda: getattr(object(), "missing", "default")),
        attempt(_chained),
        attempt(_context),
    ]
    if sys.version_info >= (3, 11):
        out += [
            attempt(lambda: describe(ExceptionGroup("g", [ValueError(1), KeyError(2)]))),
            attempt(lambda: type(BaseExceptionGroup("g", [ValueError(1)])).__name__),
            attempt(lambda: type(BaseExceptionGroup("g", [KeyboardInterrupt()])).__name__),
            attempt(lambda: ExceptionGroup("g", [KeyboardInterrupt()])),
            attempt(_except_star),
            attempt(lambda: [describe(g) if g else None for g in ExceptionGroup("g", [ValueError(1), KeyError(2)]).split(ValueError)]),
        ]
    return out


def _chained() -> str:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as exc:
        return "%s <- %s suppress=%s" % (describe(exc), describe(exc.__cause__), exc.__suppress_context__)


def _context() -> str:
    try:
        try:
            raise KeyError("inner")
        except KeyError:
            {}["again"]
    except KeyError as exc:
        return "%s <- %s" % (describe(exc), describe(exc.__context__))


def _except_star() -> str:
    seen = []
    namespace = {"seen": seen, "ExceptionGroup": ExceptionGroup}
    exec(
        "try:\n"
        "    raise ExceptionGroup('g', [ValueError(1), KeyError(2), ValueError(3)])\n"
        "except* ValueError as eg:\n"
        "    seen.append(('value', [e.args for e in eg.exceptions]))\n"
        "except* KeyError as eg:\n"
        "    seen.append(('key', [e.args for e in eg.exceptions]))\n",
        namespace,
    )
    return repr(seen)


def copy_pickle_cases() -> "list[str]":
    out = []
    for exc in (
        ValueError("v", 2),
        KwargsError("m", code=5),
        OSError(errno.ENOENT, "missing", "f"),
        KwargsOSError("x", response=3),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
        KeyError("k"),
        SystemExit(2),
    ):
        out.append(attempt(lambda exc=exc: describe(pickle.loads(pickle.dumps(exc)))))
        out.append(attempt(lambda exc=exc: describe(copy.copy(exc))))
        out.append(attempt(lambda exc=exc: describe(copy.deepcopy(exc))))
    return out


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Answer500(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def requests_cases() -> "list[str]":
    """requests' own exceptions: a closed loopback port, and raise_for_status() on a 500."""
    import requests

    def connection_error() -> str:
        try:
            requests.get("http://127.0.0.1:%d/" % _closed_port(), timeout=5)
        except requests.ConnectionError as exc:
            return "%s response=%r" % (type(exc).__name__, exc.response)
        return "no error"

    server = http.server.HTTPServer(("127.0.0.1", 0), _Answer500)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:

        def http_error() -> str:
            response = requests.get("http://127.0.0.1:%d/" % server.server_address[1], timeout=5)
            try:
                response.raise_for_status()
            except requests.HTTPError as exc:
                return "%s status=%s" % (type(exc).__name__, exc.response.status_code)
            return "no error"

        return [
            attempt(connection_error),
            attempt(http_error),
            attempt(lambda: type(requests.exceptions.HTTPError("x", response=None, request=None)).__name__),
            attempt(lambda: type(requests.exceptions.ConnectTimeout("t", request=None)).__name__),
        ]
    finally:
        server.shutdown()
        server.server_close()


def all_outcomes() -> "list[str]":
    return oserror_cases() + construction_cases() + raising_cases() + copy_pickle_cases() + requests_cases()
