"""Which trace span each thread and asyncio task runs in: the labels that tie samples to traces.

A tracer integration (``profiler.tracing``) reports spans as the tracer activates and finishes
them; the collectors ask which span a thread or task was in when they sampled it and add the
labels ddtrace adds: ``span id`` and ``local root span id`` (numbers, the 64-bit ids read as
signed, as in ddtrace's pprof) and ``trace type`` (the local root span's type, ``web`` for a
request). At each flush the scheduler adds ``trace endpoint`` (the local root span's resource,
``GET /burn``) to the samples of web requests that finished in the period, as Datadog's library
does, and reports how many requests each endpoint served (``endpoint_counts``).

Links are kept per thread and per asyncio task (a task switch changes the span a thread runs in
without any event), each with a short history, so that a sample read some milliseconds after its
capture (the stack sampler turns captures into samples in batches) gets the span of the moment it
was captured. Everything is plain dict, list and array operations under the GIL: no lock to be
caught held by a fork, nothing that can raise into the tracer's code. A link makes no object for
the garbage collector to track (its moment goes in an array): a tuple per activation, kept for a
second, made a traced service's collections cost 4% of its CPU.
"""

from __future__ import annotations

import sys
import time
from _thread import get_ident as _get_ident
from array import array
from bisect import bisect_right

from profiler_core.events import LOCAL_ROOT_SPAN_ID, SPAN_ID, TRACE_ENDPOINT, TRACE_TYPE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

    Labels = Tuple[Tuple[str, object], ...]

_TWO_63 = 1 << 63
_TWO_64 = 1 << 64
# A sample can be read up to a batch of captures after it was taken (more when the sampler waits
# for the GIL): a thread's or task's links of the last second are kept for it, up to MAX_HISTORY.
RETAIN_NS = 1_000_000_000
MAX_HISTORY = 4096
RECENT_NS = 2_000_000_000  # a link ended this long ago can no longer be asked for
MAX_KEYS = 20_000  # threads and tasks with links, before ended ones are forgotten
MAX_ROOTS = 100_000  # finished requests whose endpoint is kept until the next flush

_monotonic_ns = time.monotonic_ns


class History:
    """One thread's or task's links, oldest first: when each began (``times``, monotonic ns) and
    the span labels in force from then on (``labels``; None: in no span)."""

    __slots__ = ("times", "labels")

    def __init__(self) -> None:
        self.times = array("q")
        self.labels: "List[Optional[Labels]]" = []

    def add(self, now: int, labels: "Optional[Labels]") -> None:
        """From ``now`` on, ``labels`` (None: no span). Every 64 links, what is older than
        RETAIN_NS goes (but the link then in force), and at most MAX_HISTORY stay."""
        times = self.times
        times.append(now)
        self.labels.append(labels)
        if not len(times) & 63:
            self.trim(now)

    def trim(self, now: int) -> None:
        """Forget what is older than RETAIN_NS (but the link then in force); keep MAX_HISTORY at most."""
        times = self.times
        n = len(times)
        cut = bisect_right(times, now - RETAIN_NS) - 1 if times[0] < now - RETAIN_NS else 0
        cut = max(cut, n - MAX_HISTORY)
        if cut > 0:
            del times[:cut]
            del self.labels[:cut]


_thread_links: "Dict[int, History]" = {}
_task_links: "Dict[int, History]" = {}
_span_keys: "Dict[int, History]" = {}  # span id -> where it was linked last
_endpoint_counts: "Dict[str, int]" = {}
_root_endpoints: "Dict[int, str]" = {}
#: Whether a tracer integration reports spans; the collectors look for links only then.
active = False
#: Whether endpoints are recorded (``DD_PROFILING_ENDPOINT_COLLECTION_ENABLED``).
endpoints_enabled = True
#: Finished requests whose endpoint could not be kept (more than MAX_ROOTS in one period).
endpoints_dropped = 0
#: Links not kept: more than MAX_KEYS threads and tasks were in a span at once.
links_dropped = 0
_full_until = 0
#: The tracer's runtime id, for the uploads to carry the same one as its traces (None: ours).
tracer_runtime_id: "Optional[Callable[[], Optional[str]]]" = None


def signed_id(span_id: int) -> int:
    """A 64-bit span id as pprof's signed int64 label number, as ddtrace writes it."""
    return span_id - _TWO_64 if span_id >= _TWO_63 else span_id


def span_labels(span_id: int, local_root_span_id: int, trace_type: "Optional[str]") -> "Labels":
    """The labels of a sample taken in span ``span_id`` (a 64-bit id) of the request
    ``local_root_span_id``."""
    if span_id >= _TWO_63:
        span_id -= _TWO_64
    if local_root_span_id >= _TWO_63:
        local_root_span_id -= _TWO_64
    if trace_type:
        return ((SPAN_ID, span_id), (LOCAL_ROOT_SPAN_ID, local_root_span_id), (TRACE_TYPE, str(trace_type)))
    return ((SPAN_ID, span_id), (LOCAL_ROOT_SPAN_ID, local_root_span_id))


_running_loop = None  # asyncio's _get_running_loop, once asyncio is imported (never imported here)
_task_of = None  # and its current_task


def _asyncio_loaded() -> bool:
    # Whether asyncio is imported now; if it is, its two functions are kept.
    global _running_loop, _task_of
    tasks = sys.modules.get("asyncio.tasks")  # imported after asyncio.events
    if tasks is None:
        return False
    events = sys.modules.get("asyncio.events")
    if events is None:
        return False
    _running_loop, _task_of = events._get_running_loop, tasks.current_task
    return True


def _current_task() -> "Optional[object]":
    # The asyncio task running on this thread, without importing asyncio.
    if _running_loop is None and not _asyncio_loaded():
        return None
    loop = _running_loop()  # type: ignore[misc]
    return _task_of(loop) if loop is not None else None  # type: ignore[misc]


def _key() -> "Tuple[Dict[int, History], int]":
    # Where the calling thread's links are kept: its running task's, else its own. Runs at each
    # of the tracer's activations: _current_task spelled out, one call fewer.
    if _running_loop is not None or _asyncio_loaded():
        loop = _running_loop()  # type: ignore[misc]
        if loop is not None:
            task = _task_of(loop)  # type: ignore[misc]
            if task is not None:
                return _task_links, id(task)
    return _thread_links, _get_ident()


def _append(links: "Dict[int, History]", key: int, labels: "Optional[Labels]", now: int) -> "Optional[History]":
    # Adds the link to key's history (made for a span, bounded by MAX_KEYS); returns the history,
    # None when there is none (out of any span, or not kept).
    global links_dropped, _full_until
    history = links.get(key)
    if history is None:
        if labels is None:
            return None
        if len(links) >= MAX_KEYS:
            if now < _full_until:
                links_dropped += 1
                return None
            _forget_ended(links, now)
            if len(links) >= MAX_KEYS:  # all in a span: this one's samples go without its span
                _full_until = now + 100_000_000  # look again in 0.1 s, not at every link
                links_dropped += 1
                return None
        history = links[key] = History()
    history.add(now, labels)
    return history


def link(span_id: int, labels: "Labels") -> None:
    """The calling thread (or the asyncio task it runs) is now in span ``span_id``, whose sample
    labels are ``labels`` (:func:`span_labels`)."""
    # Runs at each of the tracer's activations (8 a request of ddtrace's WSGI middleware): _key
    # and History.add spelled out where the history exists, 3 calls fewer.
    links, key = _thread_links, _get_ident()
    if _running_loop is not None or _asyncio_loaded():
        loop = _running_loop()  # type: ignore[misc]
        if loop is not None:
            task = _task_of(loop)  # type: ignore[misc]
            if task is not None:
                links, key = _task_links, id(task)
    now = _monotonic_ns()
    history = links.get(key)
    if history is None:
        history = _append(links, key, labels, now)
        if history is None:
            return
    else:
        times = history.times
        times.append(now)
        history.labels.append(labels)
        if not len(times) & 63:
            history.trim(now)
    _span_keys[span_id] = history  # where it was linked last: a tracer activates a span in one place


def unlink() -> None:
    """The calling thread (or the asyncio task it runs) is in no span now."""
    links, key = _key()
    history = links.get(key)
    if history is not None:  # none: it was in no span (or its link was not kept)
        history.add(_monotonic_ns(), None)


def span_finished(span_id: int) -> None:
    """Span ``span_id`` finished, maybe on another thread: wherever it is still the current span,
    there is none now (the tracer activates the parent in the thread that finished it, not in
    the others)."""
    history = _span_keys.pop(span_id, None)
    if history is None or not history.labels:
        return
    labels = history.labels[-1]
    if labels is not None and labels[0][1] == signed_id(span_id):
        history.add(_monotonic_ns(), None)


def request_finished(local_root_span_id: int, endpoint: str) -> None:
    """A request (a local root span of type ``web``) finished: its samples get ``trace endpoint``
    ``endpoint`` at the next flush and the endpoint's request count goes up by one."""
    global endpoints_dropped
    if not endpoints_enabled or not endpoint:
        return
    _endpoint_counts[endpoint] = _endpoint_counts.get(endpoint, 0) + 1
    if len(_root_endpoints) < MAX_ROOTS:
        _root_endpoints[signed_id(local_root_span_id)] = endpoint
    else:
        endpoints_dropped += 1


def _at(history: "Optional[History]", when_ns: "Optional[int]") -> "Labels":
    if history is None or not history.labels:
        return ()
    if when_ns is None:
        labels = history.labels[-1]
        return labels if labels is not None else ()
    i = bisect_right(history.times, when_ns)
    if i == 0:
        return ()
    labels = history.labels[i - 1]
    return labels if labels is not None else ()


def labels_at(thread_ident: int, task_id: "Optional[int]" = None, when_ns: "Optional[int]" = None) -> "Labels":
    """The span labels of a sample of thread ``thread_ident`` (running asyncio task ``task_id``,
    if any) taken at ``when_ns`` (``time.monotonic_ns()``; None: now); ``()`` outside any span."""
    if task_id is not None:
        history = _task_links.get(task_id)
        if history is not None and history.labels:
            return _at(history, when_ns)
    return _at(_thread_links.get(thread_ident), when_ns)


def labels_of_task(task_id: int, when_ns: "Optional[int]" = None) -> "Labels":
    """The span labels of a sample of a suspended asyncio task (its own links only: the thread's
    are those of whatever runs on it now)."""
    return _at(_task_links.get(task_id), when_ns)


def current_labels() -> "Labels":
    """The span labels of a sample taken now in the calling thread or task."""
    if not active:
        return ()
    task = _current_task()
    return labels_at(_get_ident(), id(task) if task is not None else None)


def _forget_ended(links: "Dict[int, History]", now: int) -> None:
    # Threads and tasks out of any span for a while are not asked about any more.
    old = now - RECENT_NS
    for key in [k for k, h in links.items() if h.labels[-1] is None and h.times[-1] < old]:
        del links[key]


def take_endpoints() -> "Tuple[Dict[str, int], Dict[int, str]]":
    """The period's endpoint counts and ``{local root span id label: endpoint}``, reset for the next."""
    global _endpoint_counts, _root_endpoints
    counts, roots = _endpoint_counts, _root_endpoints
    _endpoint_counts, _root_endpoints = {}, {}
    now = _monotonic_ns()
    _forget_ended(_thread_links, now)
    _forget_ended(_task_links, now)
    return counts, roots


def endpoint_relabeller(roots: "Dict[int, str]") -> "Callable[[Labels], Labels]":
    """A function giving labels with ``trace endpoint`` added where their local root span is one of
    the requests in ``roots`` (from :func:`take_endpoints`), the same labels otherwise."""

    def relabel(labels: "Labels") -> "Labels":
        for key, value in labels:
            if key == LOCAL_ROOT_SPAN_ID:
                endpoint = roots.get(value)  # type: ignore[call-overload]
                if endpoint is not None:
                    return labels + ((TRACE_ENDPOINT, endpoint),)
                break
        return labels

    return relabel


def label_endpoints(samples: dict, roots: "Dict[int, str]") -> dict:
    """``samples`` (the recorder's ``{(stack, labels): values}``) with ``trace endpoint`` added
    to those of the requests in ``roots`` (from :func:`take_endpoints`)."""
    if not roots:
        return samples
    relabel = endpoint_relabeller(roots)
    out: dict = {}
    relabelled: "Dict[int, Labels]" = {}
    for (stack, labels), values in samples.items():
        new = relabelled.get(id(labels))
        if new is None:
            new = relabelled[id(labels)] = relabel(labels)
        key2 = (stack, new)
        if key2 in out:
            merged = dict(out[key2])
            for name, value in values.items():
                merged[name] = merged.get(name, 0) + value
            out[key2] = merged
        else:
            out[key2] = values
    return out


def after_fork_in_child() -> None:
    """In a forked child only the thread that forked runs: the other threads' links are gone, and
    the parent reports the requests that finished before the fork."""
    ident = _get_ident()
    for key in [k for k in _thread_links if k != ident]:
        del _thread_links[key]
    kept = {id(h) for h in _thread_links.values()} | {id(h) for h in _task_links.values()}
    for span_id in [s for s, h in _span_keys.items() if id(h) not in kept]:
        del _span_keys[span_id]
    _endpoint_counts.clear()
    _root_endpoints.clear()


def reset() -> None:
    """Forget every link and endpoint (the integration stopped)."""
    global active, tracer_runtime_id, _full_until
    active = False
    tracer_runtime_id = None
    _full_until = 0
    _thread_links.clear()
    _task_links.clear()
    _span_keys.clear()
    _endpoint_counts.clear()
    _root_endpoints.clear()

