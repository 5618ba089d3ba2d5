"""Every captured frame is named, whatever its code object's history (issue #18).

The GIL-free sampler names a frame from the code object when it holds that object,
else from what the capturing thread copied of the code at the capture. Each case
runs real code shapes in a thread under a running collector and checks that none
of the thread's frames is ``<unknown>``: functions defined after a long import,
made by ``exec`` and dropped at once (their addresses are reused by the next
ones), lambdas, closures, decorators, properties, class bodies, generators.
"""

import threading
import time

import pytest

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_stack.collector import StackCollector, can_read_without_gil

pytestmark = pytest.mark.skipif(not can_read_without_gil(), reason="stacks are read with the GIL here")

# A module that computes for a while at import time, before it defines the functions its main
# loop calls: when the sampler first looks at its namespace, they are not there yet.
LATE_DEFINITIONS = '''
import time
end = time.thread_time() + 0.3
while time.thread_time() < end:
    pass
''' + "".join("def late_%d(n):\n    return sum(range(n))\n" % i for i in range(200)) + '''
FUNCTIONS = [globals()["late_%d" % i] for i in range(200)]
def main(stop):
    while not stop.is_set():
        for f in FUNCTIONS:
            f(300)
'''

# Each function is made by exec, called, and dropped: the next one is often at the same address,
# with a name of the same length.
EXEC_LOOP = '''
def main(stop):
    i = 0
    while not stop.is_set():
        namespace = {}
        exec("def made_%04d():\\n    return sum(range(3000))\\n" % (i % 10000), namespace)
        namespace["made_%04d" % (i % 10000)]()
        i += 1
'''

SHAPES = '''
def decorate(f):
    def wrapper(*args):
        return f(*args)
    return wrapper

@decorate
def decorated():
    return sum(range(2000))

class Shapes:
    @property
    def prop(self):
        return sum(range(2000))

def generator():
    for _ in range(20):
        yield sum(range(100))

def main(stop):
    shapes = Shapes()
    while not stop.is_set():
        (lambda: sum(range(2000)))()
        decorated()
        shapes.prop
        list(generator())
        class Body:
            value = sum(range(2000))
'''


def thread_stacks(source, seconds):
    """Run ``source``'s module code, then its ``main`` for ``seconds``, in a thread under a collector
    sampling every 5 ms; the thread's stacks and the sampler."""
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig(), min_interval=0.005)
    stop = threading.Event()
    in_main = threading.Event()

    def body(stop):
        namespace = {"__name__": "shaped"}
        exec(compile(source, "<shaped>", "exec"), namespace)
        in_main.set()
        namespace["main"](stop)

    thread = threading.Thread(target=body, args=(stop,), name="shaped")
    collector.start()
    try:
        thread.start()
        assert in_main.wait(30)
        time.sleep(seconds)
        stop.set()
        thread.join()
        collector.snapshot()
    finally:
        collector.stop()
    samples = recorder.flush().samples
    stacks = [stack for (stack, labels) in samples if dict(labels).get("thread name") == "shaped"]
    return stacks, collector.sampler


@pytest.mark.parametrize(
    "source, expected",
    [
        pytest.param(LATE_DEFINITIONS, "late_", id="defined-after-a-long-import"),
        pytest.param(EXEC_LOOP, "made_", id="exec-loop"),
        pytest.param(SHAPES, None, id="lambda-closure-decorator-property-class-body-generator"),
    ],
)
def test_no_frame_is_unknown(source, expected):
    stacks, sampler = thread_stacks(source, 1.0)
    assert stacks
    unknown = [stack for stack in stacks if any(frame.function == "<unknown>" for frame in stack)]
    assert not unknown, "%d of %d stacks with <unknown> frames" % (len(unknown), len(stacks))
    functions = {frame.function for stack in stacks for frame in stack}
    if expected is not None:
        assert any(f.startswith(expected) for f in functions), sorted(functions)
        assert sampler.named_from_copies > 0  # named from the copies: those code objects were not held


def test_exec_made_functions_are_named_as_they_were_when_captured():
    """A frame named from a copy gets the name and lines of the code that ran then: each made
    function's line is within its own definition, which exec puts at a line given by its number."""
    source = '''
def main(stop):
    i = 0
    while not stop.is_set():
        namespace = {}
        n = i % 50
        exec("\\n" * n + "def at_line_%02d():\\n    return sum(range(3000))\\n" % n, namespace)
        namespace["at_line_%02d" % n]()
        i += 1
'''
    stacks, _sampler = thread_stacks(source, 1.0)
    seen = 0
    for stack in stacks:
        for frame in stack:
            if frame.function.startswith("at_line_"):
                n = int(frame.function[len("at_line_"):])
                assert frame.lineno in (n + 1, n + 2), (frame.function, frame.lineno)
                seen += 1
    assert seen > 0
