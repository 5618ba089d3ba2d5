"""Greenlets (gevent): every greenlet's stack, with ``task id`` / ``task name`` labels.

Only the running greenlet of a thread is on that thread's stack; the others are
suspended, their frames reachable from ``gr_frame``. Greenlets are found without
the garbage collector: greenlet's switch hook (``greenlet.settrace``, one per
thread) notes each greenlet switched to, held weakly, and which greenlet each
thread is running now. At each sample every suspended greenlet gets the wall
time where it waits, and the running one's thread sample carries its labels.

The switch hook is set in the thread that starts the profiler, or the one that
imports ``greenlet`` later (gevent's main loop runs there in practice).
"""

from __future__ import annotations

import sys
import weakref

from profiler_core.events import TASK_ID, TASK_NAME, Frame, truncate_stack
from profiler_core.import_hook import PostImportHook
from profiler_core.threads import get_ident, get_ident_function

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

MAX_GREENLETS_PER_SAMPLE = 2000
MAX_TRACKED = 100000  # greenlets noted at most; beyond, new ones are not seen until some end


class _Tracked:
    """One greenlet: a weak reference, the thread it runs in, its labels and its last stack."""

    __slots__ = ("ref", "thread", "labels", "stack_key", "stack", "thread_labels", "full_labels")

    def __init__(self, ref: "weakref.ref", thread: int, labels: tuple) -> None:
        self.ref = ref
        self.thread = thread
        self.labels = labels
        self.stack_key: "Optional[tuple]" = None
        self.stack: tuple = ()
        self.thread_labels: "Optional[tuple]" = None  # its thread's labels, as last given (cached with them:)
        self.full_labels: tuple = labels


def greenlet_name(glet: object) -> str:
    """gevent's ``Greenlet.name`` (``Greenlet-3``), else the class name (``Hub``, ``greenlet``)."""
    gevent_greenlet = getattr(sys.modules.get("gevent.greenlet"), "Greenlet", None)
    if gevent_greenlet is not None and isinstance(glet, gevent_greenlet):
        try:
            value = gevent_greenlet.__dict__["name"].__get__(glet, type(glet))  # not a subclass __getattr__
            if isinstance(value, str):
                return value
        except Exception:
            pass
    return type(glet).__name__


class GreenletTracker:
    """Notes greenlets as they are switched to; samples the suspended ones."""

    def __init__(self) -> None:
        self.tracked: "Dict[int, _Tracked]" = {}
        #: OS thread ident -> ``task id``/``task name`` labels of the greenlet it runs now.
        self.running: "Dict[int, tuple]" = {}
        self.active = False
        self._frames: "Dict[tuple, Frame]" = {}
        self._previous: "Dict[int, object]" = {}  # per thread: the switch hook ours replaced
        self._hook: "Optional[PostImportHook]" = None
        self._get_ident = get_ident_function()

    # -- setting up, in the program's threads ----------------------------------------------

    def start(self) -> None:
        """Track greenlets from now on: at once if ``greenlet`` is imported, else when it is."""
        self.active = True
        module = sys.modules.get("greenlet")
        if module is not None and hasattr(module, "settrace"):
            self.install(module)
        elif self._hook is None:
            self._hook = PostImportHook("greenlet", self.install)
            self._hook.install()

    def install(self, module: object) -> None:
        """Set the switch hook in the calling thread and note the greenlets known there now."""
        if not self.active:
            return
        self._get_ident = get_ident_function()  # gevent may have patched _thread since
        ident = get_ident()
        settrace = module.settrace  # type: ignore[attr-defined]
        if module.gettrace() == self._trace:  # type: ignore[attr-defined]  # (bound methods: ==, not is)
            return
        self._previous[ident] = settrace(self._trace)
        current = module.getcurrent()  # type: ignore[attr-defined]
        self._note(current, ident)
        self.running[ident] = self.tracked[id(current)].labels if id(current) in self.tracked else ()
        hub = getattr(sys.modules.get("gevent.hub"), "_get_hub", None)
        if hub is not None:
            try:
                found = hub()
            except Exception:
                found = None
            if found is not None:
                self._note(found, ident)

    def stop(self) -> None:
        """Stop tracking; the switch hook set in the calling thread is put back as it was."""
        self.active = False
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        module = sys.modules.get("greenlet")
        ident = get_ident()
        if module is not None and ident in self._previous:
            try:
                if module.gettrace() == self._trace:
                    module.settrace(self._previous.pop(ident))
            except Exception:
                pass
        self.tracked.clear()
        self.running.clear()

    def _note(self, glet: object, ident: int) -> "Optional[_Tracked]":
        key = id(glet)
        entry = self.tracked.get(key)
        if entry is not None or len(self.tracked) >= MAX_TRACKED:
            return entry
        tracked = self.tracked
        try:
            ref = weakref.ref(glet, lambda _r, key=key, tracked=tracked: tracked.pop(key, None))
        except TypeError:
            return None
        entry = _Tracked(ref, ident, ((TASK_ID, key), (TASK_NAME, greenlet_name(glet))))
        tracked[key] = entry
        return entry

    def _trace(self, event: str, args: tuple) -> None:
        # Runs inside every greenlet switch of the thread: never raises, calls on the hook it replaced.
        ident = 0
        try:
            ident = self._get_ident()
            if self.active and (event == "switch" or event == "throw"):
                target = args[1]
                entry = self.tracked.get(id(target))
                if entry is None:
                    entry = self._note(target, ident)
                self.running[ident] = entry.labels if entry is not None else ()
        except BaseException:
            pass
        if self._previous:
            previous = self._previous.get(ident)
            if previous is not None:
                previous(event, args)  # type: ignore[operator]

    # -- sampling, in the sampler thread (with the GIL) ------------------------------------

    def sample(
        self, push: "Callable[..., object]", wall_ns: int, thread_labels: "Dict[int, tuple]", max_frames: int
    ) -> int:
        """Push one ``wall-time`` sample per suspended greenlet, where it waits; returns how many."""
        pushed = 0
        values = {"wall-time": wall_ns, "wall-samples": 1}  # the recorder copies what it keeps
        for entry in list(self.tracked.values())[:MAX_GREENLETS_PER_SAMPLE]:
            glet = entry.ref()
            if glet is None:
                continue
            try:
                frame = glet.gr_frame  # type: ignore[attr-defined]
                if frame is None:  # running (its thread's own sample shows it), not started, or dead
                    continue
                stack = self._stack_of(entry, frame, max_frames)
            except Exception:
                continue
            if stack:
                base = thread_labels.get(entry.thread, ())
                if entry.thread_labels is not base:
                    entry.thread_labels = base
                    entry.full_labels = base + entry.labels
                push(stack, entry.full_labels, values)
                pushed += 1
        return pushed

    def _stack_of(self, entry: _Tracked, frame: object, max_frames: int) -> tuple:
        # A suspended greenlet's frames do not change: the stack is made again only when it moved.
        key = (id(frame), id(frame.f_code), frame.f_lasti)  # type: ignore[attr-defined]
        if entry.stack_key == key:
            return entry.stack
        frames: "List[Frame]" = []
        cache = self._frames
        if len(cache) > 50000:
            cache.clear()
        depth = 0
        while frame is not None and depth < 1024:
            code = frame.f_code  # type: ignore[attr-defined]
            lineno = frame.f_lineno or 0  # type: ignore[attr-defined]
            fkey = (code, lineno)
            made = cache.get(fkey)
            if made is None:
                name = getattr(code, "co_qualname", code.co_name)
                owner = name.rsplit(".", 2)[-2] if name.count(".") else ""
                made = cache[fkey] = Frame(code.co_filename, name, lineno, "" if owner == "<locals>" else owner)
            frames.append(made)
            frame = frame.f_back  # type: ignore[attr-defined]
            depth += 1
        stack = truncate_stack(tuple(frames), max_frames)
        entry.stack_key = key
        entry.stack = stack
        return stack
