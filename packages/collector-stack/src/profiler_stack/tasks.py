"""asyncio tasks: which task each thread runs, and where each suspended task awaits.

A task that is running shows up in its thread's own stack sample, labelled with
its ``task id`` / ``task name`` (:class:`RunningTasks` tells which task a
captured stack was running). The others are not on any thread's stack, so their
coroutine chains (``cr_await``) are walked here and sampled as they wait. Only public attributes of tasks and coroutines are used; tasks are
found through asyncio's task registries, which differ between versions
(``_all_tasks`` up to 3.11, ``_scheduled_tasks`` and ``_eager_tasks`` from 3.12).
"""

from __future__ import annotations

import sys
import time

from profiler_core import trace_context
from profiler_core.events import Frame, task_labels, truncate_stack
from profiler_stack._sampler import current_gen_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple

MAX_TASKS_PER_SAMPLE = 2000  # suspended tasks walked per sample; more are walked in turns
_window_start = 0
_REGISTRIES = ("_all_tasks", "_scheduled_tasks", "_eager_tasks")


def live_tasks() -> "List[object]":
    """Every task asyncio knows of, in any thread; empty when asyncio was never imported."""
    tasks_module = sys.modules.get("asyncio.tasks")
    if tasks_module is None:
        return []
    found: "List[object]" = []
    for name in _REGISTRIES:
        registry = getattr(tasks_module, name, None)
        if registry:
            found.extend(list(registry))
    return found


async def _report_gen_key() -> int:
    return current_gen_key()


def _gen_key_offset() -> "Optional[int]":
    # How far the address the stack walk records for a running coroutine's frame is from the
    # coroutine object (the frame is inside it on 3.11+; 3.10 records the object: 0).
    coro = _report_gen_key()
    try:
        coro.send(None)
    except StopIteration as done:
        offset = done.value - id(coro)
        return offset if 0 <= offset < 4096 else None
    coro.close()
    return None


class RunningTasks:
    """Which asyncio task a stack captured without the GIL was running.

    The capture records where the outermost coroutine frames of each stack were; a running
    task's coroutine is among them. Those addresses are matched against the live tasks'
    coroutines: first the tasks running now, then (when none matches) a map of every live task,
    rebuilt at most as often as keeps its cost under 1% of the time. A coroutine is found only
    while it is alive, so an address is never followed.
    """

    def __init__(self) -> None:
        self.offset = _gen_key_offset()
        self.seen: "Set[int]" = set()  # ids of the tasks found running since take_seen()
        self._by_coro: "Dict[int, object]" = {}
        self._next_build = 0.0

    def labels_of(self, keys: "Tuple[int, ...]") -> "Tuple[Tuple[str, object], ...]":
        """The task labels of a stack whose coroutine frames were at ``keys`` (outermost first);
        empty when it ran no task."""
        offset = self.offset
        tasks_module = sys.modules.get("asyncio.tasks")
        if offset is None or tasks_module is None:
            return ()
        coros = [key - offset for key in keys]
        current = getattr(tasks_module, "_current_tasks", None)
        if current:
            for task in list(current.values()):
                found = self._match(task, coros)
                if found:
                    return found
        now = time.monotonic()
        by_coro = self._by_coro
        if not any(coro in by_coro for coro in coros) and now >= self._next_build:
            started = time.perf_counter()
            by_coro = self._by_coro = {}
            for task in live_tasks():
                try:
                    by_coro[id(task.get_coro())] = task  # type: ignore[attr-defined]
                except Exception:
                    continue
            self._next_build = now + max(0.02, 100 * (time.perf_counter() - started))
        for coro in coros:
            task = by_coro.get(coro)
            if task is not None:
                found = self._match(task, coros)
                if found:
                    return found
        return ()

    def _match(self, task: object, coros: "List[int]") -> "Tuple[Tuple[str, object], ...]":
        try:
            if id(task.get_coro()) not in coros or task.done():  # type: ignore[attr-defined]
                return ()
            labels = task_labels(task)
        except Exception:
            return ()
        self.seen.add(id(task))
        return labels

    def take_seen(self) -> "Set[int]":
        """The ids of the tasks found running since the last call."""
        seen, self.seen = self.seen, set()
        return seen


def current_task_labels() -> "Dict[int, Tuple[Tuple[str, object], ...]]":
    """With the GIL: {thread ident: labels of the task its event loop runs now}."""
    tasks_module = sys.modules.get("asyncio.tasks")
    current = getattr(tasks_module, "_current_tasks", None) if tasks_module is not None else None
    out: "Dict[int, Tuple[Tuple[str, object], ...]]" = {}
    if not current:
        return out
    for loop, task in list(current.items()):
        try:
            ident = getattr(loop, "_thread_id", None)
            if ident is not None:
                out[ident] = task_labels(task)
        except Exception:
            continue
    return out


def coroutine_frames(coro: object) -> "Iterator[object]":
    """Frames of ``coro`` and of what it awaits, outermost first."""
    seen = 0
    while coro is not None and seen < 1024:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            yield frame
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
        seen += 1


# A waiting task's stack is usually the one it had at the previous walk: stacks by where each of
# their frames is (code object, instruction offset), so that an unchanged one costs a lookup
# instead of its Frames and names. The code objects are held by the keys, so a key never matches
# another code that took a freed one's address. Cleared when full.
_STACKS: "Dict[tuple, Tuple[Frame, ...]]" = {}
_STACKS_MAX = 10_000


def task_stack(task: object, max_frames: int) -> "Tuple[Frame, ...]":
    """The stack a suspended task waits in, leaf first."""
    frames = list(coroutine_frames(task.get_coro()))  # type: ignore[attr-defined]
    key = (max_frames,) + tuple((frame.f_code, frame.f_lasti) for frame in frames)
    stack = _STACKS.get(key)
    if stack is not None:
        return stack
    out = []
    for frame in frames:
        code = frame.f_code
        name = getattr(code, "co_qualname", code.co_name)
        owner = name.rsplit(".", 2)[-2] if name.count(".") else ""
        out.append(Frame(code.co_filename, name, frame.f_lineno or 0, "" if owner == "<locals>" else owner))
    out.reverse()
    stack = truncate_stack(tuple(out), max_frames)
    if len(_STACKS) >= _STACKS_MAX:
        _STACKS.clear()
    _STACKS[key] = stack
    return stack


def sample_tasks(
    push: "Callable[..., object]",
    wall_ns: int,
    thread_labels: "Dict[int, tuple]",
    max_frames: int,
    ran: "Optional[Set[int]]" = None,
    ran_wall: "Optional[Dict[int, int]]" = None,
    owed_wall: "Optional[Dict[int, int]]" = None,
) -> int:
    """Push one ``wall-time`` sample per suspended task; returns how many were pushed.

    Left out are the tasks in ``ran`` (ids of those seen running in the stacks a capture made
    without the GIL, which is what the samples stand for), or, when ``ran`` is None (stacks read
    with the GIL, now), the tasks running now."""
    tasks_module = sys.modules.get("asyncio.tasks")
    if tasks_module is None:
        return 0
    if ran is None:
        current = getattr(tasks_module, "_current_tasks", {})
        running = set(map(id, list(current.values())))
    else:
        running = ran
    tasks = live_tasks()
    weight = wall_ns
    if len(tasks) > MAX_TASKS_PER_SAMPLE:
        # Each call takes the next window of tasks, each standing for its share of all of them:
        # every task is seen in turn, and the totals stay those of all tasks.
        global _window_start
        start = _window_start % len(tasks)
        _window_start = start + MAX_TASKS_PER_SAMPLE
        weight = wall_ns * len(tasks) // MAX_TASKS_PER_SAMPLE
        tasks = (tasks[start:] + tasks[:start])[:MAX_TASKS_PER_SAMPLE]
    pushed = 0
    # ran_wall: how long each task was seen running of the ``wall_ns`` these samples stand for (its
    # waiting time is the rest); owed_wall: waiting time of a task that was running at the last of
    # these samples, carried to the next (updated here).
    factor = weight / wall_ns if wall_ns else 1.0
    for task in tasks:
        try:
            task_id = id(task)
            if task.done():  # type: ignore[attr-defined]
                continue
            waited = weight
            if ran_wall is not None and owed_wall is not None:
                waited = int((wall_ns - ran_wall.get(task_id, 0) + owed_wall.pop(task_id, 0)) * factor)
            if task_id in running:
                if owed_wall is not None and waited > 0:
                    owed_wall[task_id] = int(waited / factor)
                continue
            if waited <= 0:
                continue
            loop = task.get_loop()  # type: ignore[attr-defined]
            labels = thread_labels.get(getattr(loop, "_thread_id", None), ())
            labels = labels + task_labels(task)
            if trace_context.active:
                labels = labels + trace_context.labels_of_task(task_id)
            stack = task_stack(task, max_frames)
        except Exception:
            continue  # a task that finished or changed under us
        if stack:
            push(stack, labels, {"wall-time": waited, "wall-samples": 1})
            pushed += 1
    return pushed
