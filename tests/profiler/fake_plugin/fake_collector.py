"""A test-only collector: a plain-Python stack sampler, used to test the contract end to end.

Registered through ``fake_collector-1.0.dist-info/entry_points.txt`` when this
directory is on ``sys.path``. It is deliberately simple and is not shipped.
"""

import sys
import threading
import time

from profiler_core.events import Frame
from profiler_core.interfaces import Collector


class FakeStackCollector(Collector):
    name = "fake"
    sample_types = ("wall-samples", "wall-time")

    def start(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-sampler", daemon=True)
        self._thread.start()

    def _run(self):
        last = time.monotonic_ns()
        me = threading.get_ident()
        while not self._stop.wait(0.005):
            now = time.monotonic_ns()
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack = []
                while frame is not None:
                    stack.append(Frame(frame.f_code.co_filename, frame.f_code.co_name, frame.f_lineno))
                    frame = frame.f_back
                labels = (("thread id", ident), ("thread name", names.get(ident, "")))
                self.recorder.push(tuple(stack), labels, {"wall-samples": 1, "wall-time": now - last})
            last = now

    def stop(self):
        self._stop.set()
        self._thread.join()

    def after_fork_in_child(self):
        self.start()
