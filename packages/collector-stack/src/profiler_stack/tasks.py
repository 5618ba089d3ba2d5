"""asyncio tasks: where each suspended task awaits, with ``task id`` / ``task name`` labels.

A task that is running shows up in its thread's own stack sample; the others
are not on any thread's stack, so their coroutine chains (``cr_await``) are
walked here. Only public attributes of tasks and coroutines are used; tasks are
found through asyncio's task registries, which differ between versions
(``_all_tasks`` up to 3.11, ``_scheduled_tasks`` and ``_eager_tasks`` from 3.12).
"""

from __future__ import annotations

import sys

from profiler_core.events import TASK_ID, TASK_NAME, Frame, truncate_stack

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Iterator, List, Tuple

MAX_TASKS_PER_SAMPLE = 2000
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


def coroutine_frames(coro: object) -> "Iterator[object]":
    """Frames of ``coro`` and of what it awaits, outermost first."""
    seen = 0
    while coro is not None and seen < 1024:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            yield frame
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
        seen += 1


def task_stack(task: object, max_frames: int) -> "Tuple[Frame, ...]":
    """The stack a suspended task waits in, leaf first."""
    frames = []
    for frame in coroutine_frames(task.get_coro()):  # type: ignore[attr-defined]
        code = frame.f_code
        name = getattr(code, "co_qualname", code.co_name)
        owner = name.rsplit(".", 2)[-2] if name.count(".") else ""
        frames.append(Frame(code.co_filename, name, frame.f_lineno or 0, "" if owner == "<locals>" else owner))
    frames.reverse()
    return truncate_stack(tuple(frames), max_frames)


def sample_tasks(
    push: "Callable[..., object]", wall_ns: int, thread_labels: "Dict[int, tuple]", max_frames: int
) -> int:
    """Push one ``wall-time`` sample per suspended task; returns how many were pushed."""
    tasks_module = sys.modules.get("asyncio.tasks")
    if tasks_module is None:
        return 0
    current = getattr(tasks_module, "_current_tasks", {})
    running = set(map(id, list(current.values())))
    pushed = 0
    for task in live_tasks()[:MAX_TASKS_PER_SAMPLE]:
        try:
            if id(task) in running or task.done():  # type: ignore[attr-defined]
                continue
            loop = task.get_loop()  # type: ignore[attr-defined]
            labels = thread_labels.get(getattr(loop, "_thread_id", None), ())
            labels = labels + ((TASK_ID, id(task)), (TASK_NAME, task.get_name()))  # type: ignore[attr-defined]
            stack = task_stack(task, max_frames)
        except Exception:
            continue  # a task that finished or changed under us
        if stack:
            push(stack, labels, {"wall-time": wall_ns, "wall-samples": 1})
            pushed += 1
    return pushed
