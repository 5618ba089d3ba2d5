import gc
import os
import sys
import threading
import time
import weakref

import pytest

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_stack import _sampler
from profiler_stack._sampler import StackSampler
from profiler_stack.collector import THREAD_NAME, StackCollector, can_read_without_gil, next_interval
from waiting import wait_until
from workload import deep


needs_gil_free = pytest.mark.skipif(
    not can_read_without_gil(), reason="process_vm_readv is not allowed here: stacks are read with the GIL"
)


def flushed_samples(collector):
    collector.snapshot()
    return collector.recorder.flush().samples


class Pushes:
    def __init__(self):
        self.items = []

    def __call__(self, stack, labels, values):
        self.items.append((stack, dict(labels), dict(values)))

    def for_thread(self, name):
        return [(s, v) for s, labels, v in self.items if labels.get("thread name") == name]


def parked(event):
    event.wait()


class Worker:
    def method(self, started, release):
        started.set()
        release.wait()


def test_labels_and_stack_of_another_thread():
    pushes = Pushes()
    sampler = StackSampler(pushes, 64)
    started, release = threading.Event(), threading.Event()
    t = threading.Thread(target=Worker().method, args=(started, release), name="the-worker")
    t.start()
    started.wait()
    try:
        sampler.sample()
        sampler.sample()
    finally:
        release.set()
        t.join()
    samples = [(s, labels) for s, labels, _v in pushes.items if labels.get("thread name") == "the-worker"]
    assert samples
    stack, labels = samples[-1]
    assert labels["thread id"] == t.ident
    assert labels["thread native id"] == t.native_id
    names = [f.function for f in stack]
    # leaf first: inside Event.wait, called from Worker.method, under Thread.run
    assert names.index("Worker.method" if sys.version_info >= (3, 11) else "method") < names.index(
        "Thread.run" if sys.version_info >= (3, 11) else "run"
    )
    frame = next(f for f in stack if f.function.endswith("method"))
    assert frame.filename == __file__ and frame.lineno > 0
    if sys.version_info >= (3, 11):
        assert frame.class_name == "Worker"


def test_the_calling_thread_is_sampled_with_its_name():
    pushes = Pushes()
    StackSampler(pushes, 64).sample()
    mine = pushes.for_thread(threading.current_thread().name)
    assert len(mine) == 1
    stack, values = mine[0]
    assert values["wall-samples"] == 1
    assert any(f.function.endswith("test_the_calling_thread_is_sampled_with_its_name") for f in stack)


def test_max_frames_keeps_innermost_and_marks_omitted():
    pushes = Pushes()
    sampler = StackSampler(pushes, 10)
    release = threading.Event()
    t = threading.Thread(target=deep, args=(50, release), name="deep")
    t.start()
    time.sleep(0.05)
    try:
        sampler.sample()
    finally:
        release.set()
        t.join()
    ((stack, _v),) = pushes.for_thread("deep")
    assert len(stack) == 10
    assert stack[-1].function.startswith("<") and stack[-1].function.endswith(" frames omitted>")
    omitted = int(stack[-1].function.split()[0][1:])
    assert omitted > 40
    names = [f.function for f in stack]
    assert stack[0].filename.endswith("threading.py")  # innermost kept: the wait() inside deep()
    assert names[names.index("deep") :][:3] == ["deep", "deep", "deep"]


def test_cpu_time_is_never_negative_and_dead_threads_are_pruned():
    pushes = Pushes()
    sampler = StackSampler(pushes, 64)
    sampler.sample()
    before = sampler.known_threads
    threads = [threading.Thread(target=time.sleep, args=(0.05,), name="short-%d" % i) for i in range(5)]
    for t in threads:
        t.start()
    sampler.sample()
    with_them = sampler.known_threads
    assert with_them >= before + 5 - 1  # threads left by earlier tests in this worker may end meanwhile
    for t in threads:
        t.join()
    sampler.sample()
    sampler.flush_pending()
    assert with_them - sampler.known_threads >= 5  # the dead ones are forgotten
    assert all(v.get("cpu-time", 0) >= 0 and v["wall-time"] >= 0 for _s, _l, v in pushes.items)


def test_profiler_threads_are_ignored_unless_asked():
    release = threading.Event()
    t = threading.Thread(target=parked, args=(release,), name="profiler-something")
    t.start()
    try:
        ignoring, including = Pushes(), Pushes()
        StackSampler(ignoring, 64, True).sample()
        StackSampler(including, 64, False).sample()
    finally:
        release.set()
        t.join()
    assert not ignoring.for_thread("profiler-something")
    assert including.for_thread("profiler-something")


def test_threads_started_before_the_collector_are_profiled():
    release = threading.Event()
    t = threading.Thread(target=parked, args=(release,), name="early")
    t.start()
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig())
    collector.start()
    try:
        assert wait_until(lambda: any(dict(l).get("thread name") == "early" for (_s, l) in list(recorder._data)))
    finally:
        collector.stop()
        release.set()
        t.join()


def test_collector_thread_is_a_daemon_ignored_in_its_own_output_and_stops_fast():
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig())
    collector.start()
    t = collector._thread
    assert t.daemon and t.name == THREAD_NAME
    # Some samples first: 0.1 s, and longer on a busy machine, where the sampler may not have had
    # its first turn yet (seen with every core kept busy by other processes).
    time.sleep(0.1)
    deadline = time.monotonic() + 10
    while len(recorder) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    began = time.monotonic()
    collector.stop()
    assert time.monotonic() - began < 0.5
    assert not t.is_alive()
    names = {dict(labels).get("thread name") for (_s, labels) in recorder.flush().samples}
    assert THREAD_NAME not in names and "MainThread" in names


def test_next_interval():
    assert next_interval(10_000, 1.0, 0.01, 1.0) == 0.01  # cheap tick: minimum interval
    assert next_interval(1_000_000, 1.0, 0.01, 1.0) == pytest.approx(0.1)  # 1 ms tick at 1%: 100 ms
    assert next_interval(50_000_000, 1.0, 0.01, 1.0) == 1.0  # capped


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_keeps_sampling_in_a_forked_child(tmp_path):
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig())
    collector.start()
    out = tmp_path / "child"
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                recorder.reset_after_fork()
                collector.after_fork_in_child()
                seen = []

                def child_only_function():
                    # frames only the child has: a sampler still reading the parent's memory misses them
                    end = time.monotonic() + 3
                    while time.monotonic() < end and not seen:
                        for (stack, _labels) in recorder.flush().samples:
                            if any(f.function.endswith("child_only_function") for f in stack):
                                seen.append(True)
                        time.sleep(0.01)

                child_only_function()
                out.write_text("%d %d" % (int(bool(seen)), int(collector._thread.is_alive())))
                collector.stop()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert out.read_text() == "1 1"
    finally:
        collector.stop()


@needs_gil_free
def test_captured_without_the_gil_truncated_and_labelled():
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig(max_frames=10), min_interval=0.002)
    release = threading.Event()
    t = threading.Thread(target=deep, args=(50, release), name="deep")
    t.start()
    collector.start()
    try:
        assert wait_until(
            lambda: any(dict(labels).get("thread name") == "deep" for (_s, labels) in recorder.flush().samples), 3
        )
        assert collector.sampler.reading_without_gil
        assert wait_until(lambda: len(recorder) > 0, 3)
        samples = recorder.flush().samples
    finally:
        collector.stop()
        release.set()
        t.join()
    stacks = [(stack, dict(labels)) for (stack, labels) in samples if dict(labels).get("thread name") == "deep"]
    assert stacks
    for stack, labels in stacks:
        assert labels["thread native id"] == t.native_id and labels["thread id"] == t.ident
        assert len(stack) == 10
        assert stack[-1].function.endswith(" frames omitted>") and int(stack[-1].function.split()[0][1:]) > 40
        assert stack[0].filename.endswith("threading.py")  # innermost kept: the wait() inside deep()
        assert [f.function for f in stack[-4:-1]] == ["deep", "deep", "deep"]
    assert collector.sampler.errors == 0


@needs_gil_free
def test_a_thread_started_while_sampling_is_captured_without_waiting_for_a_batch():
    """A thread that lives 80 ms, started in the middle of a 16-capture batch (320 ms at 20 ms): the
    capture that finds a new head of the interpreter's thread list makes the sampler publish the
    list again at once, so the thread is captured while it lives (and named after it ended).
    Before, it was captured only if the batch happened to end early enough in its life (about 1
    time in 5)."""
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig(), min_interval=0.02)
    collector.sampler.capture_batch = 16
    collector.start()
    sampler = collector.sampler
    try:
        assert wait_until(lambda: sampler.ticks >= 16, 10)
        names = []
        for i in range(6):
            name = "newcomer-%d" % i
            names.append(name)
            t = threading.Thread(target=time.sleep, args=(0.08,), name=name)
            t.start()
            t.join()
            time.sleep(0.05 * (i + 1) % 0.3)  # a different moment of the batch each time
        republished = sampler.republished
        done = sampler.ticks
        assert wait_until(lambda: sampler.ticks > done + 16, 10)  # the last thread's captures are in
        samples = flushed_samples(collector)
    finally:
        collector.stop()
    seen = {dict(labels).get("thread name") for (_stack, labels) in samples} & set(names)
    assert republished >= 3, republished
    assert len(seen) >= 3, sorted(seen)


@needs_gil_free
def test_threads_and_code_objects_coming_and_going_while_captured():
    """Threads that end and code objects freed right after a capture: never read as live, nothing lost."""
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig(), min_interval=0.001)
    collector.start()
    try:
        # Threads are found when the sampler next has the GIL (every few captures; on a loaded machine
        # that may be longer than a short thread lives): each lives until a few more captures have been
        # turned into samples since it began (or 2 s), which the first of those lists it in.
        sampler = collector.sampler

        def sampled_twice(start):
            return sampler.ticks >= start + 3 * max(sampler.capture_batch, 1)

        for i in range(12):
            namespace = {}
            # a fresh code object each time, dropped as soon as its thread ends
            exec(
                "def transient_%d(done, start):\n"
                "    deadline = time.monotonic() + 2\n"
                "    while not done(start) and time.monotonic() < deadline:\n"
                "        time.sleep(0.005)\n" % i,
                {"time": time},
                namespace,
            )
            start = sampler.ticks
            threads = [
                threading.Thread(target=namespace["transient_%d" % i], args=(sampled_twice, start), name="churn")
                for _ in range(3)
            ]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            del namespace, threads
        # ended threads are forgotten at the next capture: at most the live threads but the sampler's own
        # (every Python thread: xdist's execnet starts one that threading does not list)
        assert wait_until(lambda: collector.sampler.known_threads <= len(sys._current_frames()) - 1, 2)
        samples = flushed_samples(collector)
    finally:
        collector.stop()
    assert collector.sampler.reading_without_gil and collector.sampler.errors == 0
    stats = collector.stats()
    assert stats["errors"] == 0 and stats["interval"] >= 0.001
    # A capture is dropped (and counted) only when the sampler could not take the GIL for the
    # queue's length of captures: on a loaded machine that happens, rarely.
    assert stats["dropped_captures"] <= 0.05 * collector.sampler.ticks, (stats, collector.sampler.ticks)
    churn = [stack for (stack, labels) in samples if dict(labels).get("thread name") == "churn"]
    assert churn, "the short-lived threads were sampled"
    for stack in churn:
        for frame in stack:
            assert isinstance(frame.filename, str) and isinstance(frame.function, str) and frame.lineno >= 0
    named = [f.function for stack in churn for f in stack if f.function.startswith("transient_")]
    assert named, "their code objects were resolved while alive"


@needs_gil_free
@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 frames are objects, not in data-stack chunks")
@pytest.mark.parametrize("previous", [2**64 - 1, 2**64 - 8, 2**63, 16])
def test_a_link_to_an_unreadable_address_makes_the_read_torn(previous):
    """A frame read while its memory was being reused may link anywhere, even next to the top of the
    address space (where ``address + size`` wraps around), and a frame in a data-stack chunk freed
    while the walk went down (the thread returned from it) cannot be read: the read is torn and
    done again, never cut short and kept as if the stack ended there (a 5,001-frame stack was
    kept as 123 frames on a loaded machine)."""
    assert _sampler._walk_made_up_stack(previous) == -2
    assert _sampler._walk_made_up_stack(0) == 1  # the root frame's link: the stack ends there


@needs_gil_free
@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 frames are objects, not in data-stack chunks")
def test_a_frame_whose_code_is_no_code_object_makes_the_read_torn():
    """A frame copied while the thread reused its memory holds some other word where its code was:
    the read is reported torn (and done again by the capturing thread), not kept."""
    code = test_a_frame_whose_code_is_no_code_object_makes_the_read_torn.__code__
    assert _sampler._walk_made_up_stack(0, code, True) == 1
    assert _sampler._walk_made_up_stack(0, [], True) == -2
    assert _sampler._walk_made_up_stack(0, [], False) == 1  # unchecked: kept, named later or not


def leaf_function(n):
    return sum(range(n))


def calls_leaf_functions(stop):
    while not stop.is_set():
        leaf_function(200)


def stacks_captured_while_running(sampler, pushes, loop, name, captures):
    """Run ``loop(stop)`` in a thread called ``name``, capture ``captures`` times, stop it: the
    stacks pushed for that thread."""
    stop = threading.Event()
    t = threading.Thread(target=loop, args=(stop,), name=name)
    t.start()
    try:
        for _ in range(captures):
            sampler.capture_once()
    finally:
        stop.set()
        t.join()
    return [s for s, labels, _v in pushes.items if labels.get("thread name") == name]


@needs_gil_free
def test_functions_that_returned_before_the_capture_was_resolved_are_named():
    """A short function seen in a capture has often returned by the time the sampler has the GIL;
    it is named from the module of its caller instead of being left unknown."""
    pushes = Pushes()
    sampler = StackSampler(pushes, 64)
    stacks = stacks_captured_while_running(sampler, pushes, calls_leaf_functions, "the-caller", 200)
    assert "leaf_function" in [s[0].function for s in stacks]
    unknown = sum(1 for s in stacks for f in s if f.function == "<unknown>")
    assert unknown == 0, (unknown, sampler.unknown_frames)


@needs_gil_free
def test_code_objects_held_to_name_frames_stay_bounded():
    namespace = {}
    exec("\n".join("def f%d():\n    pass" % i for i in range(500)), namespace)
    exec("def runs_here(stop):\n    while not stop.is_set():\n        f1()", namespace)
    pushes = Pushes()
    sampler = StackSampler(pushes, 64, max_codes=100)
    stacks = stacks_captured_while_running(sampler, pushes, namespace["runs_here"], "many-functions", 50)
    assert 0 < sampler.held_code_count <= 100
    assert stacks


@needs_gil_free
def test_line_numbers_read_without_the_gil_are_the_interpreters():
    pushes = Pushes()
    sampler = StackSampler(pushes, 64)
    started, release = threading.Event(), threading.Event()
    t = threading.Thread(target=Worker().method, args=(started, release), name="the-worker")
    t.start()
    started.wait()
    try:
        for _ in range(3):
            sampler.capture_once()
    finally:
        release.set()
        t.join()
    stacks = [s for s, labels, _v in pushes.items if labels.get("thread name") == "the-worker"]
    assert stacks
    frame = next(f for f in stacks[-1] if f.function.endswith("method"))
    assert frame.lineno == Worker.method.__code__.co_firstlineno + 2  # release.wait()
    wait = stacks[-1][0]
    assert wait.filename == threading.__file__ and wait.function.endswith("wait")
    assert wait.lineno in {line for _, _, line in threading.Condition.wait.__code__.co_lines() if line}


@pytest.mark.skipif(not can_read_without_gil(), reason="stacks are read with the GIL here")
def test_threads_started_while_sampling_have_one_native_id_each():
    """A thread is published to the capturing thread as soon as its thread state exists; on 3.10
    its native id then comes from threading, which may not list it yet. Every sample of a thread
    carries its own native id, never 0 for some and the real one for others (CI on 3.10)."""
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig(), min_interval=0.001)
    natives = {}

    def burn():
        natives[threading.current_thread().name] = threading.get_native_id()
        end = time.thread_time() + 0.03
        while time.thread_time() < end:
            pass

    seen = {}

    def look():
        for (_stack, labels), _values in recorder.flush().samples.items():
            d = dict(labels)
            if d["thread name"].startswith("fresh-"):
                seen.setdefault(d["thread name"], set()).add(d["thread native id"])

    collector.start()
    try:
        # Threads one after another until 10 were sampled: on a loaded machine a 30 ms thread
        # may end between two captures (7 of 20 were sampled once with both cores busy).
        for i in range(200):
            t = threading.Thread(target=burn, name="fresh-%d" % i)
            t.start()
            t.join()
            if i % 5 == 4:
                collector.snapshot()
                look()
                if len(seen) >= 10:
                    break
    finally:
        collector.stop()
    look()
    assert len(seen) >= 10, seen
    for name, ids in seen.items():
        assert ids == {natives[name]}, (name, ids, natives[name], seen, natives)


def compiles_new_code(stop, helpers):
    """A request loop of a program that compiles its handlers as it goes (templates, exec): each
    namespace has helpers the sampler holds (it names functions from the modules on stacks)."""
    n = 0
    while not stop.is_set():
        namespace = {}
        source = "".join("def helper_%d_%d():\n    return %d\n" % (n, i, i) for i in range(8))
        source += "def handler_%d():\n    t = 0\n    for i in range(3000):\n        t += i\n    return t\n" % n
        exec(compile(source, "<generated-%d>" % n, "exec"), namespace)
        namespace["handler_%d" % n]()
        helpers.extend(weakref.ref(namespace["helper_%d_%d" % (n, i)].__code__) for i in range(8))
        n += 1


@needs_gil_free
@pytest.mark.parametrize("sweep_step, dropped_codes_freed", [(8, True), (10**9, False)])
def test_code_the_program_dropped_is_let_go_of(sweep_step, dropped_codes_freed):
    """Code objects held to name frames are let go once the program dropped them, instead of
    living until the table fills (2.3 KB apiece); frames are named all the same. Without sweeps
    (the second case) they are still held: what the first case checks is the sweep's doing."""
    pushes = Pushes()
    sampler = StackSampler(pushes, 64, sweep_step=sweep_step)
    helpers = []
    stacks = stacks_captured_while_running(sampler, pushes, lambda stop: compiles_new_code(stop, helpers), "compiler", 300)
    gc.collect()
    alive = sum(1 for r in helpers if r() is not None)
    if dropped_codes_freed:
        # what a sweep leaves: the codes held since the last one (a batch of captures holds all the
        # codes on the stacks at once: more when the sampler is starved of the GIL), those it let
        # go (kept one sweep long), and the live namespaces' (9 codes each); without sweeps 368 of
        # them were alive, with them 56 at most in a loaded run of the whole suite
        assert sampler.codes_let_go > 0 and alive <= 12 * sweep_step + 16, (alive, len(helpers), sampler.held_code_count)
    else:
        assert sampler.codes_let_go == 0 and alive > 0, (alive, sampler.held_code_count)
    assert [f for s in stacks for f in s if f.function.startswith("handler_")]
    unknown = sum(1 for s in stacks for f in s if f.function == "<unknown>")
    assert unknown == 0, (unknown, sampler.unknown_frames)



@needs_gil_free
def test_captures_queued_when_sampling_stops_are_samples():
    """What the native thread captured while the sampler waited for the GIL is in the profile when
    the stop comes then: a program that kept the GIL for 0.4 s (switch interval 2 s) and stopped
    the profiler used to lose those 0.4 s of every thread (the end of a timeline's lanes)."""
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig(), min_interval=0.02)
    collector.sampler.capture_batch = 4
    started, release = threading.Event(), threading.Event()
    worker = threading.Thread(target=Worker().method, args=(started, release), name="parked-to-the-end")
    worker.start()
    started.wait()
    switch_interval = sys.getswitchinterval()
    try:
        began = time.monotonic()
        collector.start()
        sampler = collector.sampler
        assert wait_until(lambda: sampler.ticks >= 8, 10)
        sys.setswitchinterval(2.0)
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:  # the GIL is not let go: captures queue up meanwhile
            pass
        collector.stop()
        elapsed = time.monotonic() - began
    finally:
        sys.setswitchinterval(switch_interval)
        release.set()
        worker.join()
    wall = sum(
        values.get("wall-time", 0)
        for (_stack, labels), values in recorder.flush().samples.items()
        if dict(labels).get("thread name") == "parked-to-the-end"
    ) / 1e9
    # All of it but the start-up and the interval that was under way at the stop.
    assert wall >= elapsed - 0.1, (wall, elapsed)
