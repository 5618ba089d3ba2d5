"""The sample contract shared by every collector: frames, stacks, labels, sample types.

A collector describes what it saw as a *stack* (a tuple of :class:`Frame`, leaf
first), *labels* (a tuple of ``(key, value)`` pairs, values ``str`` or ``int``)
and *values* (a mapping from sample-type name to an integer). Everything here is
plain tuples so that native collectors can build and push samples cheaply, and
so that stacks and labels hash as dictionary keys in the recorder.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Mapping, Optional, Tuple, Union


class Frame(namedtuple("Frame", "filename function lineno class_name", defaults=("",))):
    """One Python frame: ``filename``, ``function``, ``lineno``, and ``class_name`` ("" when unknown)."""

    __slots__ = ()


if TYPE_CHECKING:
    Stack = Tuple[Frame, ...]
    LabelValue = Union[str, int]
    Labels = Tuple[Tuple[str, LabelValue], ...]


def __getattr__(name: str):
    # The type aliases, for annotations elsewhere, without importing typing at start.
    if name in ("Stack", "LabelValue", "Labels"):
        from typing import Tuple, Union

        aliases = {"Stack": Tuple[Frame, ...], "LabelValue": Union[str, int]}
        aliases["Labels"] = Tuple[Tuple[str, aliases["LabelValue"]], ...]
        return aliases[name]
    raise AttributeError("module %r has no attribute %r" % (__name__, name))

# Sample types, with the names and units ddtrace uses, in the order they appear in a profile.
SAMPLE_TYPES: Mapping[str, str] = {
    "cpu-samples": "count",
    "cpu-time": "nanoseconds",
    "wall-samples": "count",
    "wall-time": "nanoseconds",
    "exception-samples": "count",
    "lock-acquire": "count",
    "lock-acquire-wait": "nanoseconds",
    "lock-release": "count",
    "lock-release-hold": "nanoseconds",
    "alloc-samples": "count",
    "alloc-space": "bytes",
    "heap-space": "bytes",
    "heap-live-samples": "count",
}

# Label keys, with the names ddtrace uses.
THREAD_ID = "thread id"
THREAD_NATIVE_ID = "thread native id"
THREAD_NAME = "thread name"
TASK_ID = "task id"
TASK_NAME = "task name"
EXCEPTION_TYPE = "exception type"
EXCEPTION_MESSAGE = "exception message"
LOCK_NAME = "lock name"
CLASS_NAME = "class name"
SPAN_ID = "span id"
LOCAL_ROOT_SPAN_ID = "local root span id"
TRACE_ENDPOINT = "trace endpoint"
TRACE_TYPE = "trace type"

OMITTED_FRAMES_FILENAME = ""


def thread_labels(ident: int, native_id: "Optional[int]", name: "Optional[str]") -> Labels:
    """The labels every sample of a thread carries: its ident, native id and name.

    A thread with no known name (started outside ``threading``, or ended before
    its samples were labelled) is named by its ident, as ddtrace does, so that
    every sample has all three labels.
    """
    return (
        (THREAD_ID, ident),
        (THREAD_NATIVE_ID, native_id or 0),
        (THREAD_NAME, name if isinstance(name, str) else str(ident)),
    )


def task_labels(task: object) -> Labels:
    """The labels of samples taken while asyncio task ``task`` ran or waited: its id and name,
    as ddtrace labels them."""
    return ((TASK_ID, id(task)), (TASK_NAME, task.get_name()))  # type: ignore[attr-defined]


def omitted_frames_marker(count: int) -> Frame:
    """The frame that stands in for ``count`` frames cut from the root end of a stack."""
    return Frame(OMITTED_FRAMES_FILENAME, "<%d frame%s omitted>" % (count, "" if count == 1 else "s"), 0)


def truncate_stack(stack: Stack, max_frames: int) -> Stack:
    """Keep at most ``max_frames`` frames, innermost first, the last one being an omitted-frames marker.

    Idempotent: a stack already of ``max_frames`` frames or fewer is returned as is.
    """
    if len(stack) <= max_frames:
        return stack
    kept = max(max_frames - 1, 0)
    return stack[:kept] + (omitted_frames_marker(len(stack) - kept),)


class Sample:
    """A typed sample record, for collectors that prefer names to tuples.

    :meth:`labels_tuple` gives the label tuple :meth:`Recorder.push` takes;
    ``Recorder.record(sample)`` does that conversion for you.
    """

    __slots__ = ("stack", "values", "thread_id", "thread_native_id", "thread_name", "task_id", "task_name", "labels")

    def __init__(
        self,
        stack: "Stack",
        values: Mapping[str, int],
        thread_id: Optional[int] = None,
        thread_native_id: Optional[int] = None,
        thread_name: Optional[str] = None,
        task_id: Optional[int] = None,
        task_name: Optional[str] = None,
        labels: Labels = (),
    ) -> None:
        self.stack = stack
        self.values = values
        self.thread_id = thread_id
        self.thread_native_id = thread_native_id
        self.thread_name = thread_name
        self.task_id = task_id
        self.task_name = task_name
        self.labels = labels

    def labels_tuple(self) -> Labels:
        """All labels of the sample as ``(key, value)`` pairs, thread and task labels first."""
        out = []
        if self.thread_id is not None:
            out.append((THREAD_ID, self.thread_id))
        if self.thread_native_id is not None:
            out.append((THREAD_NATIVE_ID, self.thread_native_id))
        if self.thread_name is not None:
            out.append((THREAD_NAME, self.thread_name))
        if self.task_id is not None:
            out.append((TASK_ID, self.task_id))
        if self.task_name is not None:
            out.append((TASK_NAME, self.task_name))
        return tuple(out) + tuple(self.labels)
