"""Lock samples carry thread id, native id and name, for threads threading does not know too."""

import _thread
import threading

from profiler_core.config import ProfilerConfig
from profiler_core.events import THREAD_ID, THREAD_NAME, THREAD_NATIVE_ID
from profiler_core.recorder import Recorder
from profiler_lock.collector import LockCollector


def test_a_thread_started_outside_threading_is_labelled_with_its_ident_and_native_id():
    c = LockCollector(Recorder(), ProfilerConfig(capture_pct=100))
    c.start()
    finished = threading.Event()
    seen = {}
    try:
        lock = threading.Lock()

        def worker():
            seen["ident"], seen["native"] = _thread.get_ident(), threading.get_native_id()
            for _ in range(20):
                with lock:
                    pass
            finished.set()

        _thread.start_new_thread(worker, ())
        assert finished.wait(10)
        c.snapshot()
        samples = c.recorder.flush().samples
    finally:
        c.stop()
    labels = [dict(l) for (_s, l) in samples if dict(l).get(THREAD_ID) == seen["ident"]]
    assert labels
    assert {d[THREAD_NAME] for d in labels} == {str(seen["ident"])}
    assert {d[THREAD_NATIVE_ID] for d in labels} == {seen["native"]}
