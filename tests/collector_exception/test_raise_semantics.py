"""What counts as a raised exception, the same on the trace-slot path (3.10/3.11) and sys.monitoring (3.12+).

Counted: an exception that reaches a Python frame, once, where it first appears.
Not counted: exceptions created and never raised, those C code raises and clears
before Python code sees them, propagation into callers, control flow.
"""

from __future__ import annotations

import cProfile
import sys
import threading

import pytest

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_exception import _native
from profiler_exception.collector import ExceptionCollector
import raising
from raising import f, g

RAISING = raising.__file__


class CreatedOnly(Exception):
    pass


class Marker(Exception):
    pass


class Fallback:
    def __getattr__(self, name):
        return name


def by_type_and_function(collector):
    """Counts by (type, innermost function) of the exceptions raised in this file's code (not pytest's)."""
    collector.snapshot()
    out = {}
    for (stack, labels), values in collector.recorder.flush().samples.items():
        if not any(frame.filename in (__file__, RAISING) for frame in stack):
            continue
        key = (dict(labels)["exception type"].rsplit(".", 1)[-1], stack[0].function.rsplit(".", 1)[-1] if stack else "")
        out[key] = out.get(key, 0) + values["exception-samples"]
    return out


@pytest.fixture
def every_exception():
    c = ExceptionCollector(Recorder(), ProfilerConfig(exception_enabled=True, exception_sampling_interval=1))
    c.start()
    c.set_interval(1)
    by_type_and_function(c)  # whatever the start itself raised
    yield c
    c.stop()


def raise_deep(n):
    if n == 0:
        raise Marker("deep")
    raise_deep(n - 1)


def catch_deep():
    try:
        raise_deep(5)
    except Marker:
        pass


def raise_again():
    try:
        exc = Marker("first")
        raise exc
    except Marker as caught:
        try:
            raise caught  # the same object raised a second time: counted again
        except Marker:
            pass


def bare_reraise():
    try:
        try:
            raise Marker("once")
        except Marker:
            raise  # re-raise of the exception being handled: not a new raise
    except Marker:
        pass


def from_generator():
    def gen():
        yield 1
        raise Marker("in generator")

    try:
        for _ in gen():
            pass
    except Marker:
        pass


def through_with():
    class Manager:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def inner():
        with Manager():
            raise Marker("through with")

    try:
        inner()
    except Marker:
        pass


def c_raised():
    try:
        {}["missing"]
    except KeyError:
        pass


def test_each_raise_counted_once_where_it_happens(every_exception):
    for _ in range(10):
        catch_deep()
        raise_again()
        bare_reraise()
        from_generator()
        through_with()
        c_raised()
    got = by_type_and_function(every_exception)
    assert got.get(("Marker", "raise_deep")) == 10, got
    assert got.get(("Marker", "raise_again")) == 20, got
    assert got.get(("Marker", "bare_reraise")) == 10, got
    assert got.get(("Marker", "gen")) == 10, got
    assert got.get(("Marker", "inner")) == 10, got
    assert got.get(("KeyError", "c_raised")) == 10, got
    # and nowhere else: no propagation frame got a sample
    assert sum(n for (t, _fn), n in got.items() if t == "Marker") == 60, got


def test_exceptions_not_raised_into_python_code_count_zero(every_exception):
    fallback = Fallback()
    it = iter(())
    for _ in range(200):
        CreatedOnly("made, never raised")
        fallback.attribute  # CPython raises and clears an AttributeError before calling __getattr__
        hasattr(object(), "missing")
        getattr(object(), "missing", None)
        {}.get("missing")
        next(it, None)
        list(iter([1, 2, 3]))
        dict.fromkeys(range(3)).pop("missing", None)
    got = by_type_and_function(every_exception)
    assert not [k for k in got if k[0] in ("CreatedOnly", "AttributeError", "KeyError", "StopIteration")], got


def test_control_flow_exceptions_are_not_counted(every_exception):
    class Counter:
        def __init__(self):
            self.n = 0

        def __iter__(self):
            return self

        def __next__(self):
            self.n += 1
            if self.n > 3:
                raise StopIteration
            return self.n

    for _ in range(50):
        list(Counter())
        for _ in Counter():
            pass
    got = by_type_and_function(every_exception)
    assert not [k for k in got if k[0] in ("StopIteration", "GeneratorExit", "StopAsyncIteration")], got


def test_sampled_estimate_of_a_raise_catch_loop_within_5_percent():
    interval = 100  # the default
    c = ExceptionCollector(Recorder(), ProfilerConfig(exception_enabled=True, exception_sampling_interval=interval))
    c.start()
    rounds = 2200 * interval  # ~6600 sampled ValueErrors: 5% is 4 standard deviations (KeyError: 2200, 10% is 4.7)
    try:
        by_type_and_function(c)
        for _ in range(rounds):
            f()
            f()
            f()
            g()
        got = by_type_and_function(c)
    finally:
        c.stop()
    scale = 1 / c.sampling_rates()["exception-samples"]  # each sampled exception counts once
    assert scale == interval
    assert got.get(("ValueError", "f"), 0) * scale == pytest.approx(3 * rounds, rel=0.05), got
    assert got.get(("KeyError", "g"), 0) * scale == pytest.approx(rounds, rel=0.10), got


def test_threads_started_later_are_counted(every_exception):
    def worker():
        for _ in range(25):
            try:
                raise Marker("in thread")
            except Marker:
                pass

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert by_type_and_function(every_exception).get(("Marker", "worker")) == 100


@pytest.mark.skipif(not _native.HAS_TRACE_HOOK, reason="the trace slot is the path before CPython 3.12")
class TestTraceSlot:
    def test_threads_stay_in_the_fast_mode(self, every_exception):
        before = _native.event_counts()["stepped_aside"]
        for _ in range(2000):
            c_raised()
            catch_deep()
        # In the interpreter's tracing mode the slot would get line/call events and give itself up.
        assert _native.event_counts()["stepped_aside"] == before
        assert _native.is_armed(threading.get_ident())
        assert sys.gettrace() is None

    def test_a_tracer_of_the_program_takes_precedence_and_sees_every_line(self, every_exception):
        def traced():
            a = 1
            b = a + 1
            try:
                raise Marker("seen by both")
            except Marker:
                pass
            return b

        def record(events):
            def tracer(frame, event, arg):
                if frame.f_code is traced.__code__:
                    events.append((event, frame.f_lineno))
                return tracer

            return tracer

        alone = []
        sys.settrace(record(alone))
        traced()
        sys.settrace(None)
        every_exception.stop()
        every_exception.start()
        every_exception.set_interval(1)
        together = []
        sys.settrace(record(together))
        assert not _native.is_armed(threading.get_ident())
        traced()
        sys.settrace(None)
        assert together == alone and "exception" in [event for event, _line in together]
        assert sys.gettrace() is None
        every_exception.snapshot()  # the slot is free again: filled at the next flush
        assert _native.is_armed(threading.get_ident())
        traced()
        assert by_type_and_function(every_exception).get(("Marker", "traced")) == 1

    def test_a_profile_function_is_left_alone(self, every_exception):
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(20):
            c_raised()
        profile.disable()
        calls = {getattr(stat.code, "co_name", stat.code) for stat in profile.getstats()}
        assert "c_raised" in calls
        every_exception.snapshot()
        assert _native.is_armed(threading.get_ident())
        for _ in range(20):
            c_raised()
        assert by_type_and_function(every_exception).get(("KeyError", "c_raised"), 0) >= 20

    def test_stop_empties_every_slot(self):
        c = ExceptionCollector(Recorder(), ProfilerConfig(exception_enabled=True))
        c.start()
        assert _native.is_armed(threading.get_ident())
        c.stop()
        assert not _native.is_armed(threading.get_ident())
        assert threading._start_new_thread.__module__ == "_thread"  # type: ignore[attr-defined]


def test_a_thread_started_outside_threading_is_labelled_with_its_ident_and_native_id(every_exception):
    from profiler_core.events import THREAD_ID, THREAD_NAME, THREAD_NATIVE_ID
    import _thread

    finished = threading.Event()
    seen = {}

    def worker():
        seen["ident"], seen["native"] = _thread.get_ident(), threading.get_native_id()
        _native.arm_current_thread()  # a thread started from C is armed at the next flush; this one now
        for _ in range(5):
            try:
                raise Marker("outside threading")
            except Marker:
                pass
        finished.set()

    _thread.start_new_thread(worker, ())
    assert finished.wait(10)
    every_exception.snapshot()
    samples = every_exception.recorder.flush().samples
    labels = [dict(l) for (_s, l) in samples if dict(l).get(THREAD_ID) == seen["ident"]]
    assert labels
    assert {d[THREAD_NAME] for d in labels} == {str(seen["ident"])}
    assert {d[THREAD_NATIVE_ID] for d in labels} == {seen["native"]}


def test_a_sample_that_fails_at_the_recursion_limit_keeps_no_frame_alive(every_exception):
    import gc
    import weakref

    class Local:
        pass

    ref = []

    def inner():
        obj = Local()
        ref[:] = [weakref.ref(obj)]
        inner()

    try:
        inner()
    except RecursionError:
        pass
    gc.collect()
    assert ref[0]() is None  # a frame reference lost on the failing sample's error path kept it alive


def test_stop_at_process_exit_only_stops_recording(monkeypatch):
    from profiler_core import exiting

    c = ExceptionCollector(Recorder(), ProfilerConfig(exception_enabled=True, exception_sampling_interval=1))
    c.start()
    c.set_interval(1)
    monkeypatch.setattr(exiting, "_exiting", True)
    tool = c._tool
    c.stop()
    try:
        if tool is not None:  # 3.12+: the tool is kept (giving it back re-instruments every running frame)
            assert sys.monitoring.get_tool(tool) == "profiler-exceptions"
        catch_deep()
        assert not by_type_and_function(c)  # nothing recorded after the stop
    finally:
        monkeypatch.setattr(exiting, "_exiting", False)
        if tool is not None:
            sys.monitoring.set_events(tool, 0)
            sys.monitoring.register_callback(tool, sys.monitoring.events.RAISE, None)
            sys.monitoring.free_tool_id(tool)
        _native.disarm()
