"""Frames of real third-party libraries are named (issue #18).

Two pure-Python libraries from the package index, pinned in hatch.toml: yapf formats Python
source (deep recursive-descent and visitor code, many small functions), sympy expands and
simplifies expressions (large class hierarchies, caches, generated methods). Each is imported
*under* a running collector, in the profiled thread, as a service imports its libraries after
the profiler started, then run for a while. ddtrace names all of their frames; so must we.
"""

import pytest

from source_thread import run_under_collector

YAPF = '''
from yapf.yapflib.yapf_api import FormatCode
import textwrap, inspect
SOURCE = inspect.getsource(textwrap)
def main(stop):
    while not stop.is_set():
        FormatCode(SOURCE, style_config="pep8")
'''

SYMPY = '''
import sympy
x, y, z = sympy.symbols("x y z")
def main(stop):
    n = 0
    while not stop.is_set():
        n += 1
        sympy.expand((x + y + z + n) ** 6)
        sympy.simplify(sympy.sin(x) ** 2 + sympy.cos(x) ** 2 + n)
        sympy.integrate(x ** 2 * sympy.exp(x), x)
'''


def profile_thread(source, seconds):
    """Run ``source`` (module code, then ``main``) in a thread under a collector sampling every
    5 ms; summed values by type for that thread's samples, and those of them whose leaf frame is
    ``<unknown>``, and of them with any ``<unknown>`` frame."""
    samples, _sampler = run_under_collector(source, seconds, "library_user", ready_timeout=120)
    total, unknown_leaf, unknown_any = {}, {}, {}
    for (stack, labels), values in samples.items():
        for kind, value in values.items():
            total[kind] = total.get(kind, 0) + value
            if stack and stack[0].function == "<unknown>":
                unknown_leaf[kind] = unknown_leaf.get(kind, 0) + value
            if any(frame.function == "<unknown>" for frame in stack):
                unknown_any[kind] = unknown_any.get(kind, 0) + value
    return total, unknown_leaf, unknown_any


@pytest.mark.parametrize(
    "library, source, module",
    [pytest.param("yapf", YAPF, "yapf", id="yapf-0.43"), pytest.param("sympy", SYMPY, "sympy", id="sympy-1.14")],
)
def test_real_library_frames_are_named(library, source, module):
    """At most 0.1% of the thread's CPU and wall time has an ``<unknown>`` leaf, with the
    library imported under the collector (it was 5-9% before frames were copied at the capture)."""
    pytest.importorskip(module)
    total, unknown_leaf, unknown_any = profile_thread(source, 1.5)
    for kind in ("cpu-time", "wall-time"):
        assert total.get(kind, 0) > 0, total
        share = unknown_leaf.get(kind, 0) / total[kind]
        assert share <= 0.001, "%s: %.2f%% of %s has an <unknown> leaf (any frame: %.2f%%)" % (
            library, 100 * share, kind, 100 * unknown_any.get(kind, 0) / total[kind])
