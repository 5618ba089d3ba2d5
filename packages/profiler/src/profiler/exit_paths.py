"""Keeping the last profile on the ways out that skip ``atexit``.

- SIGTERM with its default action (``kill PID``, a Kubernetes pod stop, uvicorn re-raising it after
  its graceful shutdown, ``multiprocessing.Pool`` terminating its workers): a handler flushes within a
  bounded time, puts the default action back and raises SIGTERM again, so the process still dies by
  SIGTERM (the parent sees the same status). It is installed only while the program has no handler of
  its own; a handler the program installs later replaces it. ``sigterm_watch`` makes sure the handler
  runs even when the signal came just before a blocking call of the main thread.
- multiprocessing children, which end with ``os._exit`` (fork and forkserver start methods): a
  multiprocessing finalizer, run by the child's own exit function just before ``os._exit``.
- uWSGI workers, forked from C: ``os.register_at_fork`` handlers do not run there, so the profiler is
  restarted from uWSGI's post-fork hook instead, and a configuration that cannot be profiled is named
  in one line at start-up. Where uWSGI forks with no word to Python at all, the master runs no
  profiler thread (see :func:`uwsgi_forks_workers_from_here`).
"""

from __future__ import annotations

import _signal
import _thread
import atexit
import os
import sys

from profiler_core import exiting, threads
from profiler_core._log import get_logger
from profiler_core.isolation import leave_signals_to_the_program

from profiler import sigterm_watch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List

LOG = get_logger("profiler")

#: Seconds a SIGTERM waits for the last profile before the process dies anyway.
SIGTERM_FLUSH_TIMEOUT = 3.0
#: Run multiprocessing's other exit finalizers (queues, managers) before the last flush.
MULTIPROCESSING_EXIT_PRIORITY = -100


# -- SIGTERM ------------------------------------------------------------------------------------

_stop_all: "Callable[[float], None] | None" = None


def _sigterm_caught_natively() -> bool:
    """Whether something outside Python (uWSGI, an embedding program) catches SIGTERM.

    Python reports the disposition it saw at start-up; a C handler set since is only visible to
    the kernel (``SigCgt`` in ``/proc/self/status``, on Linux). Unknown elsewhere: assume not.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"SigCgt:"):
                    caught = int(line.split()[1], 16)
                    return bool(caught >> (_signal.SIGTERM - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


_flushing_thread = 0
_sigterm_pending = False
_sigterm_begun = False  # the handler has begun (sigterm_watch waits for that)


def _handler_begun() -> bool:
    return _sigterm_begun


def _flush_and_kill() -> None:
    """From the SIGTERM watcher, when the main thread cannot run the handler: flush, then die."""
    stop_all = _stop_all
    if stop_all is not None:
        run_bounded(stop_all, SIGTERM_FLUSH_TIMEOUT)
    os.kill(os.getpid(), _signal.SIGKILL)


class exit_flush:
    """Marks the flush for the process's exit: a SIGTERM handled on the same thread meanwhile is
    raised again once it is done (the process dies by SIGTERM as it would have, profile written)."""

    def __enter__(self) -> None:
        global _flushing_thread
        exiting.mark()
        self._outer = _flushing_thread
        _flushing_thread = _thread.get_ident()

    def __exit__(self, *exc: object) -> None:
        global _flushing_thread
        _flushing_thread = self._outer
        if _sigterm_pending and not self._outer:
            _signal.raise_signal(_signal.SIGTERM)


def _shutting_down() -> bool:
    """Whether the interpreter has begun to exit (``threading._shutdown``, ``atexit``): from
    CPython 3.12 no thread can be started then."""
    threading = sys.modules.get("threading")
    return sys.is_finalizing() or bool(getattr(threading, "_SHUTTING_DOWN", False))


def _raise_pending_sigterm() -> None:
    # The last exit function: a SIGTERM that came while the interpreter was exiting, handled by
    # letting the exit's own flush run, now ends the process as it would have.
    if _sigterm_pending and not _flushing_thread:
        _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
        _signal.raise_signal(_signal.SIGTERM)


atexit.register(_raise_pending_sigterm)  # at import, so after the profiler's own exit flush


def _on_sigterm(signum: int, frame: object) -> None:
    global _sigterm_pending, _sigterm_begun
    _sigterm_begun = True
    # The default action is back first: a second SIGTERM during the flush kills at once.
    _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
    if _flushing_thread == _thread.get_ident():
        # This thread was flushing for the exit (multiprocessing's finalizer, atexit) when the
        # signal came: waiting here would wait for itself. That flush goes on, then SIGTERM again.
        _sigterm_pending = True
        return
    if _shutting_down():
        # The exit under way flushes (the profiler's atexit hook) and no thread can be started to
        # flush from here (3.12+): let it, then SIGTERM again (exit_flush, _raise_pending_sigterm).
        # A multiprocessing worker that Pool.terminate() signalled as it was exiting lost its
        # profile here, one in about 8 pools on 3.12.
        _sigterm_pending = True
        return
    try:
        stop_all = _stop_all
        if stop_all is not None:
            run_bounded(stop_all, SIGTERM_FLUSH_TIMEOUT)
    finally:
        _signal.raise_signal(_signal.SIGTERM)


def run_bounded(stop_all: "Callable[[float], None]", timeout: float) -> bool:
    """``stop_all(timeout)`` on a thread of its own, waited for at most ``timeout`` seconds.

    The signal handler runs on the main thread wherever it was interrupted, possibly holding a lock
    the flush needs: the flush on another thread can then only time out, never deadlock the exit.
    """
    done = threads.allocate_lock()  # an OS lock and an OS thread, whatever gevent patched
    done.acquire()

    def flush() -> None:
        try:
            leave_signals_to_the_program()
            stop_all(timeout)
        except BaseException:
            pass
        finally:
            done.release()

    try:
        threads.ProfilerThread(flush, "profiler-exit-flush").start()
    except RuntimeError:  # no new thread at interpreter shutdown
        return False
    return done.acquire(True, timeout + 0.5)


def install_sigterm_flush(stop_all: "Callable[[float], None]") -> bool:
    """Flush with ``stop_all(timeout)`` on SIGTERM while SIGTERM has its default action; True if installed.

    Only from the main thread (where Python handlers are set), and only when neither Python code
    nor native code catches SIGTERM already.
    """
    global _stop_all
    _stop_all = stop_all
    try:
        if _signal.getsignal(_signal.SIGTERM) is _on_sigterm:
            return True
        if _thread.get_ident() != _main_thread_ident():
            return False
        if _signal.getsignal(_signal.SIGTERM) is not _signal.SIG_DFL or _sigterm_caught_natively():
            return False
        _signal.signal(_signal.SIGTERM, _on_sigterm)
        sigterm_watch.start(_on_sigterm, _handler_begun, _flush_and_kill)
        return True
    except (ValueError, OSError, AttributeError):
        return False


def uninstall_sigterm_flush() -> None:
    """Give SIGTERM its default action back, if the handler is still ours (and this is the main thread)."""
    try:
        if _signal.getsignal(_signal.SIGTERM) is _on_sigterm and _thread.get_ident() == _main_thread_ident():
            _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
            sigterm_watch.stop()
    except (ValueError, OSError):
        pass


def _main_thread_ident() -> int:
    threading = sys.modules.get("threading")
    if threading is None:
        return _thread.get_ident()
    return threading.main_thread().ident  # type: ignore[return-value]


# -- multiprocessing ----------------------------------------------------------------------------



def prepare_spawned_child(stop_all: "Callable[[float], None]", timeout: float) -> None:
    """In a process multiprocessing spawned (or its forkserver): the same as after a fork.

    Such a child imports multiprocessing in a moment anyway; importing its util module now lets
    the after-fork callback be registered before the child's bootstrap runs it.
    """
    if sys.argv[1:2] != ["--multiprocessing-fork"] or "multiprocessing.util" in sys.modules:
        return
    try:
        import multiprocessing.util  # noqa: F401
    except Exception:
        return
    flush_in_multiprocessing_child(stop_all, timeout)


class _ChildMarker:
    """Keys this process's one entry in multiprocessing's after-fork registry (a weak-value dict)."""


_marker = _ChildMarker()


def flush_in_multiprocessing_child(stop_all: "Callable[[float], None]", timeout: float) -> None:
    """In a process just forked: if it becomes a multiprocessing child, flush when it exits.

    multiprocessing runs its after-fork callbacks in the child once it has emptied the finalizers
    inherited from the parent; ours registers one of its exit finalizers then, the last to run
    before ``os._exit``. The marker is replaced at each fork, so the inherited entry goes away.
    """
    global _marker
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return  # no multiprocessing here: the child is none of its processes
    _marker = _ChildMarker()

    def register_finalizer(_marker: object) -> None:
        util.Finalize(None, stop_all, args=(timeout,), exitpriority=MULTIPROCESSING_EXIT_PRIORITY)

    util.register_after_fork(_marker, register_finalizer)


# -- uWSGI --------------------------------------------------------------------------------------

_uwsgi_hooked = False


def uwsgi_problems(uwsgi: object) -> "List[str]":
    """What in this uWSGI configuration keeps the profiler from working, one phrase each."""
    opt = getattr(uwsgi, "opt", {}) or {}

    def given(name: str) -> bool:
        value = opt.get(name, opt.get(name.encode()))
        return value not in (None, False, b"false", "false", b"0", "0")

    problems = []
    if not given("enable-threads") and not given("threads"):
        problems.append(
            "uWSGI runs without --enable-threads: the profiler's threads run only while the application "
            "runs Python code, so profiles are written late (at the next request or at exit); add --enable-threads"
        )
    return problems


def uwsgi_forks_workers_from_here() -> bool:
    """Whether this is a uWSGI master that will fork its workers from C with no word to Python.

    That is the master of a preforking uWSGI (the application loaded before the fork, no
    ``--lazy-apps``) without ``--py-call-uwsgi-fork-hooks``. A thread of the profiler running there
    may hold the GIL at the moment of a fork: the worker then inherits a GIL held by a thread it
    does not have, and waits for it forever (a worker that never serves and is never reaped, about
    one start in 25). The profiler therefore starts no thread in such a master and starts in each
    worker from the post-fork hook, as ddtrace does.
    """
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None:
        return False
    try:
        opt = getattr(uwsgi, "opt", {}) or {}

        def given(name: str) -> bool:
            value = opt.get(name, opt.get(name.encode()))
            return value not in (None, False, b"false", "false", b"0", "0")

        if uwsgi.worker_id() != 0:
            return False  # a worker (lazy apps, or a hook-less fork's child)
        if given("lazy-apps") or given("lazy") or given("py-call-uwsgi-fork-hooks"):
            return False
        return given("master") or int(getattr(uwsgi, "numproc", 1) or 1) > 1
    except Exception:
        return False


def hook_uwsgi(after_fork_in_child: "Callable[[], None]") -> "List[str]":
    """Inside uWSGI: restart profiling in each worker from uWSGI's post-fork hook; returns the
    configuration's problems (said once, at the first start in the process that has the uwsgi module).

    ``uwsgidecorators`` keeps a chain of post-fork functions (and replaces ``uwsgi.post_fork_hook``
    when imported): ours goes first in that chain; without it, ours wraps the hook already set.
    """
    global _uwsgi_hooked
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None:
        return []
    if _uwsgi_hooked:
        return []
    _uwsgi_hooked = True
    problems = uwsgi_problems(uwsgi)
    try:
        import uwsgidecorators  # the hook chain; it imports only the standard library and uwsgi
    except Exception:
        previous = getattr(uwsgi, "post_fork_hook", None)

        def post_fork_hook() -> None:
            after_fork_in_child()
            if previous is not None:
                previous()

        uwsgi.post_fork_hook = post_fork_hook
    else:
        uwsgidecorators.postfork_chain.insert(0, after_fork_in_child)
    return problems
