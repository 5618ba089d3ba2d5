"""profiler_core.trace_context: which span each thread and asyncio task is in, as the collectors
read it, without a tracer (the tracer integrations are tested on real tracers in
tests/profiler/test_trace_correlation.py)."""

import asyncio
import os
import threading
import time

import pytest

from profiler_core import trace_context as tc
from profiler_core.events import LOCAL_ROOT_SPAN_ID, SPAN_ID, TRACE_ENDPOINT, TRACE_TYPE


@pytest.fixture(autouse=True)
def fresh():
    tc.reset()
    tc.active = True
    yield
    tc.reset()


def test_ids_are_written_as_ddtrace_writes_them():
    labels = tc.span_labels(2**64 - 1, 2**63, "web")
    assert labels == ((SPAN_ID, -1), (LOCAL_ROOT_SPAN_ID, -(2**63)), (TRACE_TYPE, "web"))
    assert tc.span_labels(5, 7, None) == ((SPAN_ID, 5), (LOCAL_ROOT_SPAN_ID, 7))


def test_a_thread_is_in_the_span_it_linked_until_it_unlinks():
    me = threading.get_ident()
    assert tc.current_labels() == ()
    tc.link(11, tc.span_labels(11, 10, "web"))
    assert tc.labels_at(me) == tc.current_labels() == tc.span_labels(11, 10, "web")
    other = []
    t = threading.Thread(target=lambda: other.append(tc.current_labels()))
    t.start()
    t.join()
    assert other == [()]  # another thread is in no span
    tc.unlink()
    assert tc.current_labels() == ()


def test_a_sample_read_later_gets_the_span_of_its_moment():
    me = threading.get_ident()
    before = time.monotonic_ns()
    tc.link(1, tc.span_labels(1, 1, None))
    in_first = time.monotonic_ns()
    tc.link(2, tc.span_labels(2, 1, None))
    in_second = time.monotonic_ns()
    tc.unlink()
    assert tc.labels_at(me, None, before) == ()
    assert tc.labels_at(me, None, in_first) == tc.span_labels(1, 1, None)
    assert tc.labels_at(me, None, in_second) == tc.span_labels(2, 1, None)
    assert tc.labels_at(me) == ()


def test_history_is_bounded_and_keeps_the_last_second():
    me = threading.get_ident()
    for i in range(3 * tc.MAX_HISTORY):
        tc.link(i + 1, tc.span_labels(i + 1, 1, None))
    history = tc._thread_links[me]
    assert len(history.labels) == len(history.times) <= tc.MAX_HISTORY + 64
    assert history.labels[-1] == tc.span_labels(3 * tc.MAX_HISTORY, 1, None)
    assert tc.labels_at(me) == tc.span_labels(3 * tc.MAX_HISTORY, 1, None)


def test_each_asyncio_task_has_its_own_span():
    seen = {}

    async def request(name, span_id, started, other_started):
        tc.link(span_id, tc.span_labels(span_id, span_id, "web"))
        started.set()
        await other_started.wait()  # both are in their spans now, on the same thread
        task = asyncio.current_task()
        seen[name] = (tc.current_labels(), tc.labels_of_task(id(task)))
        tc.unlink()

    async def main():
        a, b = asyncio.Event(), asyncio.Event()
        await asyncio.gather(request("a", 1, a, b), request("b", 2, b, a))

    asyncio.run(main())
    assert seen["a"] == (tc.span_labels(1, 1, "web"),) * 2
    assert seen["b"] == (tc.span_labels(2, 2, "web"),) * 2
    assert tc.labels_at(threading.get_ident()) == ()  # the thread itself was in no span


def test_a_span_finished_on_another_thread_is_no_longer_current_where_it_was():
    me = threading.get_ident()
    tc.link(7, tc.span_labels(7, 7, None))
    t = threading.Thread(target=tc.span_finished, args=(7,))
    t.start()
    t.join()
    assert tc.labels_at(me) == ()


def test_finishing_a_child_leaves_the_parent_current():
    me = threading.get_ident()
    tc.link(1, tc.span_labels(1, 1, "web"))
    tc.link(2, tc.span_labels(2, 1, "web"))
    tc.link(1, tc.span_labels(1, 1, "web"))  # the tracer activates the parent, then the child finishes
    tc.span_finished(2)
    assert tc.labels_at(me) == tc.span_labels(1, 1, "web")


def test_finished_requests_label_their_samples_and_are_counted():
    tc.request_finished(1, "GET /a")
    tc.request_finished(2, "GET /a")
    tc.request_finished(3, "GET /b")
    stack = ()
    a1, a2 = (("thread id", 1),) + tc.span_labels(9, 1, "web"), (("thread id", 1),) + tc.span_labels(9, 2, "web")
    running = (("thread id", 1),) + tc.span_labels(4, 4, "web")  # not finished: no endpoint yet
    samples = {(stack, a1): {"cpu-time": 1}, (stack, a2): {"cpu-time": 2}, (stack, running): {"cpu-time": 4}}
    counts, roots = tc.take_endpoints()
    assert counts == {"GET /a": 2, "GET /b": 1}
    out = tc.label_endpoints(samples, roots)
    assert out == {
        (stack, a1 + ((TRACE_ENDPOINT, "GET /a"),)): {"cpu-time": 1},
        (stack, a2 + ((TRACE_ENDPOINT, "GET /a"),)): {"cpu-time": 2},
        (stack, running): {"cpu-time": 4},
    }
    assert tc.take_endpoints() == ({}, {})  # reset for the next period


def test_endpoints_off_records_none():
    tc.endpoints_enabled = False
    try:
        tc.request_finished(1, "GET /a")
        assert tc.take_endpoints() == ({}, {})
    finally:
        tc.endpoints_enabled = True


def test_too_many_finished_requests_are_counted_as_dropped():
    before = tc.endpoints_dropped
    for i in range(tc.MAX_ROOTS + 5):
        tc.request_finished(i + 1, "GET /x")
    counts, roots = tc.take_endpoints()
    assert counts == {"GET /x": tc.MAX_ROOTS + 5}
    assert len(roots) == tc.MAX_ROOTS and tc.endpoints_dropped - before == 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_keeps_the_forking_threads_span_only():
    tc.link(1, tc.span_labels(1, 1, None))
    ready, done = threading.Event(), threading.Event()

    def other():
        tc.link(2, tc.span_labels(2, 2, None))
        ready.set()
        done.wait()

    t = threading.Thread(target=other)
    t.start()
    ready.wait()
    tc.request_finished(1, "GET /a")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        tc.after_fork_in_child()
        ok = (tc.current_labels() == tc.span_labels(1, 1, None) and t.ident not in tc._thread_links
              and tc.take_endpoints() == ({}, {}))
        tc.span_finished(1)
        ok = ok and tc.current_labels() == ()
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    result = os.read(r, 1)
    os.waitpid(pid, 0)
    done.set()
    t.join()
    assert result == b"1"
    assert tc.take_endpoints()[0] == {"GET /a": 1}  # the parent reports it


def test_links_are_bounded_and_the_ones_not_kept_are_counted(monkeypatch):
    monkeypatch.setattr(tc, "MAX_KEYS", 10)
    before = tc.links_dropped
    for i in range(15):
        tc._append(tc._task_links, 1000 + i, tc.span_labels(i + 1, i + 1, None), tc._monotonic_ns())
    assert len(tc._task_links) == 10 and tc.links_dropped - before == 5
