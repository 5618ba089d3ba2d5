"""Every captured frame is named, whatever its code object's history (issue #18).

The GIL-free sampler names a frame from the code object when it holds that object,
else from what the capturing thread copied of the code at the capture. Each case
runs real code shapes in a thread under a running collector and checks that none
of the thread's frames is ``<unknown>``: functions defined after a long import,
made by ``exec`` and dropped at once (their addresses are reused by the next
ones), lambdas, closures, decorators, properties, class bodies, generators.
"""

import pytest

from profiler_stack.collector import can_read_without_gil
from source_thread import run_under_collector

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

# The thread keeps going in and out of the profiler's own work (as a program's thread does while it
# starts the profiler): captures taken meanwhile are left out, and the code text the capturing
# thread copied in them, sent once, must still name the same functions' frames afterwards. The
# functions are in a list, not in a namespace the sampler scans, so only those copies name them.
OWN_WORK_BURSTS = '''
import time
from profiler_core.threads import own_work
FUNCTIONS = []
for i in range(100):
    namespace = {}
    exec("def burst_%03d():\\n    return sum(range(500))\\n" % i, namespace)
    FUNCTIONS.append(namespace.pop("burst_%03d" % i))
def main(stop):
    while not stop.is_set():
        for seconds, work in ((0.02, own_work), (0.03, None)):
            end = time.monotonic() + seconds
            with work() if work else nullcontext():
                while time.monotonic() < end:
                    for f in FUNCTIONS:
                        f()
from contextlib import nullcontext
'''


def thread_stacks(source, seconds, **config):
    """Run ``source``'s module code, then its ``main`` for ``seconds``, in a thread under a collector
    sampling every 5 ms; the thread's stacks and the sampler."""
    samples, sampler = run_under_collector(source, seconds, "shaped", **config)
    return [stack for (stack, labels) in samples], sampler


@pytest.mark.parametrize(
    "source, expected",
    [
        pytest.param(LATE_DEFINITIONS, "late_", id="defined-after-a-long-import"),
        pytest.param(EXEC_LOOP, "made_", id="exec-loop"),
        pytest.param(SHAPES, None, id="lambda-closure-decorator-property-class-body-generator"),
        pytest.param(OWN_WORK_BURSTS, "burst_", id="text-sent-in-captures-left-out"),
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


# Recursion to depth 5000, then work at the bottom until told to stop.
DEEP = """
import sys
def recurse(n, stop):
    if n == 0:
        while not stop.is_set():
            sum(range(2000))
        return
    recurse(n - 1, stop)
def main(stop):
    recurse(5000, stop)
"""


# The lines of DEEP's loop at the bottom: a sample taken while the recursion is still going down
# is deep too, but not yet 5000 frames deep.
BOTTOM_LINES = {number for number, line in enumerate(DEEP.splitlines(), 1)
                if "stop.is_set()" in line or "sum(range" in line}


def at_the_bottom(stack):
    """Whether ``stack`` was taken in the loop at the bottom of DEEP's recursion."""
    return stack[0].function == "recurse" and stack[0].lineno in BOTTOM_LINES


@pytest.fixture
def deep_recursion_allowed():
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)
    yield
    sys.setrecursionlimit(limit)


def test_deep_recursion_kept_whole_is_named_to_the_root(deep_recursion_allowed):
    """Depth 5000 with room for 6000 frames: every frame kept and named (46% of CPU was <unknown>)."""
    stacks, _sampler = thread_stacks(DEEP, 1.0, max_frames=6000)
    deep = [stack for stack in stacks if at_the_bottom(stack)]
    assert deep
    for stack in deep:
        assert not any(frame.function == "<unknown>" for frame in stack)
        assert sum(frame.function == "recurse" for frame in stack) == 5001
        assert [frame.function.rsplit(".", 1)[-1] for frame in stack[5001:5003]] == ["main", "body"]
        assert stack[-1].function.endswith("_bootstrap")  # down to the thread's root frame


def test_deep_recursion_cut_counts_the_frames_it_leaves_out(deep_recursion_allowed):
    """Depth 5000 with room for 64 frames: 63 innermost frames, then one marker with the exact count."""
    stacks, _sampler = thread_stacks(DEEP, 0.5, max_frames=64)
    deep = [stack for stack in stacks if at_the_bottom(stack)]
    assert deep
    for stack in deep:
        assert all(frame.function == "recurse" for frame in stack[:63])
        # 5001 recurse frames and main, body, Thread.run, _bootstrap_inner, _bootstrap under them
        assert stack[-1].function == "<%d frames omitted>" % (5001 + 5 - 63), stack[-1]
