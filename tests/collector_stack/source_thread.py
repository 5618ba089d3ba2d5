"""Run a piece of source in a thread of its own under a running stack collector, for the tests."""

import threading
import time

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_stack.collector import StackCollector


def run_under_collector(source, seconds, thread_name, ready_timeout=30, **config):
    """Execute ``source``'s module code, then its ``main(stop)`` for ``seconds``, in thread
    ``thread_name`` under a collector sampling every 5 ms (``config``: ProfilerConfig options).
    Returns the samples recorded for that thread (``{(stack, labels): values}``) and the sampler."""
    config = ProfilerConfig(**config)
    recorder = Recorder(max_frames=config.max_frames)
    collector = StackCollector(recorder, config, min_interval=0.005)
    stop = threading.Event()
    in_main = threading.Event()

    def body(stop):
        namespace = {"__name__": thread_name}
        exec(compile(source, "<%s>" % thread_name, "exec"), namespace)
        in_main.set()
        namespace["main"](stop)

    thread = threading.Thread(target=body, args=(stop,), name=thread_name)
    collector.start()
    try:
        thread.start()
        assert in_main.wait(ready_timeout)
        time.sleep(seconds)
        stop.set()
        thread.join()
        collector.snapshot()
    finally:
        collector.stop()
    samples = {key: values for key, values in recorder.flush().samples.items()
               if dict(key[1]).get("thread name") == thread_name}
    return samples, collector.sampler
