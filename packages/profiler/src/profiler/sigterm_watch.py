"""Making sure a SIGTERM the profiler catches still ends the process.

A Python signal handler runs on the main thread, between two bytecodes. A signal that arrives in
the moment between the main thread's last check for signals and the start of a blocking call (a
semaphore wait, a pipe read) does not interrupt that call: the handler then waits for the call to
end, possibly forever. Without the profiler that SIGTERM would have killed the process at once
(``multiprocessing.Pool.terminate`` left a worker waiting so, about once in 30 pools).

A watcher thread hears of every caught signal through Python's wakeup file descriptor (written by
the C-level handler, whatever the main thread does). After a SIGTERM it gives the main thread a
moment to run the handler; if the handler has not begun, it sends SIGTERM to the main thread itself,
which interrupts the blocking call so that the handler runs; if the main thread still cannot run
Python (stuck in C code that retries on interruption), the watcher runs the flush itself and ends
the process with SIGKILL.

Where the program has a wakeup descriptor of its own already (asyncio's), nothing is watched. The
program does not see ours: ``signal.set_wakeup_fd`` answers -1 where the previous descriptor was the
watcher's, as it would without the profiler (Trio warns of a collision otherwise); a descriptor the
program sets replaces ours, and the watch ends there.
"""

from __future__ import annotations

import _signal
import os
import sys

from profiler_core import threads
from profiler_core.isolation import leave_signals_to_the_program

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional, Tuple

#: Seconds the main thread has to begin the handler before it is sent SIGTERM again.
NUDGE_AFTER = 0.1
#: Nudges before the watcher gives up on the main thread and flushes itself.
NUDGES = 3

_SIGTERM = int(_signal.SIGTERM)
_pipe: "Optional[Tuple[int, int]]" = None
_pid = 0


def start(handler: "Callable[[int, object], None]", handler_begun: "Callable[[], bool]",
          flush_and_kill: "Callable[[], None]") -> bool:
    """Watch for SIGTERM while ``handler`` is its Python handler; True if watching.

    From the main thread (which sets the wakeup descriptor), once per process: a forked child calls
    it again (its parent's watcher is not there, and the parent's pipe must not hear the child's
    signals). ``handler_begun()`` tells whether the handler has begun; ``flush_and_kill()`` is run
    by the watcher when the main thread never runs it.
    """
    global _pipe, _pid
    if _pid == os.getpid():
        return True
    inherited = _pipe[1] if _pipe is not None else -1  # a parent's, in a forked child
    _close()
    try:
        r, w = os.pipe()
    except OSError:
        return False
    try:
        os.set_blocking(w, False)
        previous = _real_set_wakeup_fd(w, warn_on_full_buffer=False)
    except (ValueError, OSError, TypeError):
        os.close(r)
        os.close(w)
        return False
    if previous not in (-1, inherited):
        # The program's own (asyncio's): put back, and nothing watched.
        try:
            _real_set_wakeup_fd(previous)
        except (ValueError, OSError):
            pass
        os.close(r)
        os.close(w)
        return False
    global _watching
    _replace_wakeup_fd_function(_real_set_wakeup_fd, _set_wakeup_fd)
    _pipe = (r, w)
    _pid = os.getpid()
    _watching = (handler, handler_begun, flush_and_kill)
    main_ident = threads.get_ident()
    try:
        # an OS thread whatever gevent patched (a greenlet blocked in read() would block the program)
        threads.ProfilerThread(lambda: _watch(r, main_ident, handler, handler_begun, flush_and_kill),
                               "profiler-sigterm-watch").start()
    except RuntimeError:
        stop()
        return False
    return True


_real_set_wakeup_fd = _signal.set_wakeup_fd


def _set_wakeup_fd(fd, *, warn_on_full_buffer=True):  # type: ignore[no-untyped-def]
    previous = _real_set_wakeup_fd(fd, warn_on_full_buffer=warn_on_full_buffer)
    pipe = _pipe
    return -1 if pipe is not None and previous == pipe[1] else previous


# What functools.wraps would copy (functools is not imported at start-up otherwise), and the module
# where the program found it.
_set_wakeup_fd.__name__ = _set_wakeup_fd.__qualname__ = _real_set_wakeup_fd.__name__
_set_wakeup_fd.__doc__ = _real_set_wakeup_fd.__doc__
_set_wakeup_fd.__wrapped__ = _real_set_wakeup_fd  # type: ignore[attr-defined]
_set_wakeup_fd.__module__ = "signal"


def _after_fork_in_child() -> None:
    # The parent's pipe must not hear this process's signals (its watcher would act on them).
    global _pid
    if _pipe is None:
        return
    handler = _watching
    _give_back_wakeup_fd()
    _close()
    _pid = 0
    if handler is not None and _signal.getsignal(_SIGTERM) is handler[0]:
        start(*handler)


_watching: "Optional[Tuple[Callable[[int, object], None], Callable[[], bool], Callable[[], None]]]" = None
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def stop() -> None:
    """Stop watching: the wakeup descriptor is given back if it is still ours (main thread only)."""
    global _pid
    _give_back_wakeup_fd()
    _close()
    _pid = 0
    _replace_wakeup_fd_function(_set_wakeup_fd, _real_set_wakeup_fd)


def _replace_wakeup_fd_function(old, new) -> None:  # type: ignore[no-untyped-def]
    # The signal module takes its set_wakeup_fd from _signal when first imported: the program's
    # later ``import signal`` finds the one in _signal, and one imported already is set too (the
    # signal module, which imports enum, is not imported for this). A function the program put
    # there itself (a test's mock) stays.
    for module in (_signal, sys.modules.get("signal")):
        if module is not None and getattr(module, "set_wakeup_fd", None) is old:
            module.set_wakeup_fd = new


def _give_back_wakeup_fd() -> None:
    # No descriptor again, unless the program has set one of its own since ours.
    if _pipe is None:
        return
    try:
        current = _real_set_wakeup_fd(-1)
        if current not in (-1, _pipe[1]):
            _real_set_wakeup_fd(current)
    except (ValueError, OSError):
        pass


def _close() -> None:
    global _pipe
    pipe, _pipe = _pipe, None
    if pipe is not None:
        for fd in pipe:
            try:
                os.close(fd)
            except OSError:
                pass


def _watch(r: int, main_ident: int, handler: "Callable[[int, object], None]",
           handler_begun: "Callable[[], bool]", flush_and_kill: "Callable[[], None]") -> None:
    leave_signals_to_the_program()
    pause = threads.Event()  # never set: its wait is an OS-level sleep, as gevent's time.sleep is not
    me = os.getpid()
    while True:
        try:
            data = os.read(r, 64)
        except OSError:
            return
        if not data or os.getpid() != me:
            return  # closed (stopped), or a forked child's copy of this thread's memory
        if _SIGTERM not in data or _signal.getsignal(_SIGTERM) is not handler:
            continue
        for _ in range(NUDGES):
            pause.wait(NUDGE_AFTER)
            if handler_begun() or _signal.getsignal(_SIGTERM) is not handler:
                break
            try:
                _signal.pthread_kill(main_ident, _SIGTERM)  # interrupts the main thread's wait
            except (OSError, ValueError):
                break
        else:
            pause.wait(NUDGE_AFTER)
            if not handler_begun() and _signal.getsignal(_SIGTERM) is handler:
                flush_and_kill()
                return
