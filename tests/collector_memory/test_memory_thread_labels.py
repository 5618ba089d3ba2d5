"""Memory samples carry the allocating thread's id, native id and name, also after the thread ended."""

import _thread
import threading

from profiler_core import thread_names
from profiler_core.config import ProfilerConfig
from profiler_core.events import THREAD_ID, THREAD_NAME, THREAD_NATIVE_ID
from profiler_core.recorder import Recorder
from profiler_memory.collector import MemoryCollector


def allocate(n=3000, size=1000):
    return [bytearray(size) for _ in range(n)]


def labels_by_thread(samples, ident):
    return [dict(labels) for (_stack, labels), values in samples.items() if dict(labels).get(THREAD_ID) == ident]


def run_collecting(body):
    c = MemoryCollector(Recorder(), ProfilerConfig(heap_sample_size=1024))
    c.start()
    try:
        out = body()
        c.snapshot()
        return out, c.recorder.flush().samples
    finally:
        c.stop()


def test_a_live_worker_thread_is_labelled_with_its_name_and_native_id():
    ready, done = threading.Event(), threading.Event()
    seen = {}

    def worker():
        seen["kept"] = allocate()
        seen["native"] = threading.get_native_id()
        ready.set()
        done.wait(10)

    def body():
        t = threading.Thread(target=worker, name="alloc-worker")
        t.start()
        ready.wait(10)
        return t

    t, samples = run_collecting(body)
    try:
        labels = labels_by_thread(samples, t.ident)
        assert labels, "no sample from the worker"
        assert {d[THREAD_NAME] for d in labels} == {"alloc-worker"}
        assert {d[THREAD_NATIVE_ID] for d in labels} == {seen["native"]}
    finally:
        done.set()
        t.join()


def test_an_ended_thread_keeps_its_name_when_it_was_seen_alive():
    def worker():
        thread_names.remember_live_threads()  # what the stack sampler does for every thread it sees
        allocate()

    def body():
        t = threading.Thread(target=worker, name="gone-before-flush")
        t.start()
        t.join()
        return t

    t, samples = run_collecting(body)
    labels = labels_by_thread(samples, t.ident)
    assert labels and {d[THREAD_NAME] for d in labels} == {"gone-before-flush"}
    assert all(d[THREAD_NATIVE_ID] != 0 for d in labels)


def test_a_thread_threading_never_knew_is_named_by_its_ident():
    finished = threading.Event()
    seen = {}

    def worker():
        seen["ident"], seen["native"] = _thread.get_ident(), threading.get_native_id()
        seen["kept"] = allocate()
        finished.set()

    def body():
        _thread.start_new_thread(worker, ())
        finished.wait(10)

    _none, samples = run_collecting(body)
    labels = labels_by_thread(samples, seen["ident"])
    assert labels
    assert {d[THREAD_NAME] for d in labels} == {str(seen["ident"])}
    assert {d[THREAD_NATIVE_ID] for d in labels} == {seen["native"]}
