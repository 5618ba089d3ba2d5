# cython: language_level=3
"""Python side of the allocator hooks in ``_memhook.h``: start, stop, and turning samples into profile data.

The hooks record, for one allocation in every ``mean`` bytes on average, the
size and the allocating thread's frames as (code, offset) pairs. Here, outside
the allocator and with the GIL, those become stacks of :class:`Frame` and
thread labels, weighted by the inverse of each allocation's probability of
being sampled, so that sums estimate the true counts and bytes.
"""

from cpython.dict cimport PyDict_Next
from cpython.long cimport PyLong_AsUnsignedLong
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

import sys as _sys
import threading as _threading

from profiler_core import thread_names
from profiler_core.threads import OWN_WORK as _OWN_WORK, PROFILER_THREADS as _PROFILER_THREADS
from profiler_core.events import Frame, omitted_frames_marker, thread_labels

# The frame cache: code address -> (weak reference to the code, {offset: Frame}). Weak, so that a
# program compiling code as it runs (templates, exec) does not have each code object kept alive by
# the cache (2.3 KB apiece in benchmarks/workloads/new_code.py); the reference tells a reused
# address apart. Beyond this many codes the cache starts again.
cdef Py_ssize_t MAX_CODES = 2048
from _weakref import ref as _weakref

cdef extern from "_memhook.h":
    void prof_mem_set_ignored(const unsigned long* idents, int n)
    int PROF_MEM_IGNORED_MAX
    ctypedef struct prof_mem_frame:
        PyObject* code
        int lasti

    ctypedef struct prof_mem_tb:
        prof_mem_tb* next_free
        int refs
        int nframes
        int depth
        unsigned long thread_id
        unsigned long native_id
        PyObject* key
        prof_mem_frame frames[1]

    ctypedef struct prof_mem_slot:
        void* ptr

    ctypedef struct prof_mem_taken:
        prof_mem_tb* tb
        double a
        double b

    ctypedef struct prof_mem_state:
        int enabled
        int track_allocs
        int track_heap
        int max_frames
        double mean
        int64_t countdown
        uint64_t rng
        prof_mem_tb** stacks
        Py_ssize_t stacks_cap
        Py_ssize_t nstacks
        Py_ssize_t stacks_max
        prof_mem_slot* table
        Py_ssize_t table_cap
        Py_ssize_t live
        Py_ssize_t live_cap
        prof_mem_tb* release_list
        Py_ssize_t dropped_events
        Py_ssize_t dropped_heap
        Py_ssize_t dropped_nomem
        Py_ssize_t table_lookups
        unsigned long ignored_thread

    prof_mem_state prof_mem
    int PROF_MEM_MAX_FRAMES
    int prof_mem_install(int hook_mem_domain)
    int prof_mem_uninstall()
    int prof_mem_is_hooked()
    int64_t prof_mem_next_gap()
    unsigned long PyThread_get_thread_ident()
    void prof_mem_tb_unref(prof_mem_tb* tb)
    Py_ssize_t prof_mem_take_allocations(prof_mem_taken** out)
    Py_ssize_t prof_mem_take_heap(prof_mem_taken** out)
    void prof_mem_discard_allocations()
    void prof_mem_forget_all()

cdef extern from "Python.h":
    ctypedef struct PyCodeObject
    int PyCode_Addr2Line(PyCodeObject* co, int byte_offset)

cdef bint _HAS_QUALNAME = _sys.version_info >= (3, 11)


cdef Py_ssize_t _power_of_two_above(Py_ssize_t n):
    cdef Py_ssize_t cap = 16
    while cap < 2 * n:
        cap *= 2
    return cap


def start(double mean, int max_frames, bint allocs, bint heap, Py_ssize_t max_stacks, Py_ssize_t max_live,
          unsigned long long seed, bint hook_mem_domain=True):
    """Install the hooks: sample one allocation per ``mean`` bytes on average (Poisson), keeping up to
    ``max_stacks`` distinct stacks and ``max_live`` tracked live allocations."""
    if prof_mem.enabled:
        raise RuntimeError("the memory profiler is already running")
    if prof_mem.stacks == NULL:
        prof_mem.stacks_cap = _power_of_two_above(max(max_stacks, 1))
        prof_mem.stacks = <prof_mem_tb**>calloc(prof_mem.stacks_cap, sizeof(prof_mem_tb*))
        prof_mem.nstacks = 0
        prof_mem.stacks_max = min(max(max_stacks, 1), prof_mem.stacks_cap // 2)
    if prof_mem.table == NULL:
        prof_mem.table_cap = _power_of_two_above(max(max_live, 1))
        prof_mem.table = <prof_mem_slot*>calloc(prof_mem.table_cap, sizeof(prof_mem_slot))
        prof_mem.live = 0
        prof_mem.live_cap = min(max(max_live, 1), prof_mem.table_cap // 2)
    if prof_mem.stacks == NULL or prof_mem.table == NULL:
        raise MemoryError("cannot allocate the memory profiler's tables")
    prof_mem_forget_all()  # anything left by an earlier run (sampled while it was stopping)
    _release()
    prof_mem.mean = mean if mean >= 1 else 1.0
    prof_mem.max_frames = max(1, min(max_frames, PROF_MEM_MAX_FRAMES))
    prof_mem.track_allocs = allocs
    prof_mem.track_heap = heap
    prof_mem.rng = seed | 1
    prof_mem.table_lookups = 0
    prof_mem.countdown = prof_mem_next_gap()
    prof_mem.enabled = 1
    prof_mem_install(hook_mem_domain)


def stop():
    """Stop sampling and forget tracked live allocations; True when the hooks came off the allocators
    (False: another hook was installed over ours, which stays installed, passing everything through)."""
    removed = prof_mem_uninstall()
    prof_mem_forget_all()
    _release()
    return bool(removed)


def set_ignored_threads(dict idents):
    """Leave out allocations made by the threads whose idents are the keys of ``idents`` (the
    profiler's own; at most 64). Allocates nothing: it runs before the hooks know the caller."""
    cdef unsigned long buf[64]
    cdef int n = 0
    cdef Py_ssize_t pos = 0
    cdef PyObject* key
    cdef PyObject* value
    while n < 64 and PyDict_Next(idents, &pos, &key, &value):
        buf[n] = PyLong_AsUnsignedLong(<object>key)
        n += 1
    prof_mem_set_ignored(buf, n)


def is_hooked():
    """Whether our hooks are in the allocator chain (active or passing through)."""
    return bool(prof_mem_is_hooked())


def stats():
    """Counters: live tracked allocations, pending events, samples lost to each bound, and frees
    looked up in the live-heap table since start (tracked blocks, and aliases of tracked blocks)."""
    return {
        "live": prof_mem.live,
        "stacks": prof_mem.nstacks,
        "dropped_events": prof_mem.dropped_events,
        "dropped_heap": prof_mem.dropped_heap,
        "dropped_nomem": prof_mem.dropped_nomem,
        "table_lookups": prof_mem.table_lookups,
        "mean": prof_mem.mean,
    }


cdef void _release() noexcept:
    """Free traces nothing refers to any more (dropping their references here, outside the allocator)."""
    cdef prof_mem_tb* tb
    cdef int i
    while prof_mem.release_list != NULL:
        tb = prof_mem.release_list
        prof_mem.release_list = tb.next_free
        for i in range(tb.nframes):
            Py_XDECREF(tb.frames[i].code)
        Py_XDECREF(tb.key)
        free(tb)


def discard_allocations():
    """Forget pending allocation samples (a forked child does not report its parent's)."""
    prof_mem_discard_allocations()


cdef class Converter:
    """Turns traces into ``(stack, labels)`` keys, caching frames by code object and offset."""

    cdef dict codes
    cdef dict threads

    def __init__(self):
        self.codes = {}
        self.threads = {}

    cdef object key(self, prof_mem_tb* tb):
        if tb.key == NULL:
            key = (self.stack(tb), self.thread_labels(tb.thread_id, tb.native_id))
            Py_INCREF(key)
            tb.key = <PyObject*>key
        return <object>tb.key

    cdef tuple thread_labels(self, unsigned long ident, unsigned long native_id):
        # Labelled when the stack is first drained: a thread that has ended by then keeps the
        # name it was last seen with (profiler_core.thread_names), else it is named by its ident.
        key = (ident, native_id)
        cached = self.threads.get(key)
        if cached is None:
            if len(self.threads) > 10000:
                self.threads = {}
            cached = self.threads[key] = thread_labels(ident, native_id, thread_names.name_of(ident, native_id))
        return <tuple>cached

    cdef tuple stack(self, prof_mem_tb* tb):
        cdef int i
        cdef list out = []
        if len(self.codes) > MAX_CODES:
            self.codes = {}
        for i in range(tb.nframes):
            code = <object>tb.frames[i].code
            per_code = self.codes.get(id(code))
            if per_code is None or (<tuple>per_code)[0]() is not code:
                per_code = self.codes[id(code)] = (_weakref(code), {})
            frame = (<dict>(<tuple>per_code)[1]).get(tb.frames[i].lasti)
            if frame is None:
                frame = (<dict>(<tuple>per_code)[1])[tb.frames[i].lasti] = Frame(
                    code.co_filename,
                    code.co_qualname if _HAS_QUALNAME else code.co_name,
                    PyCode_Addr2Line(<PyCodeObject*>tb.frames[i].code, tb.frames[i].lasti),
                )
            out.append(frame)
        if tb.depth > tb.nframes > 0:  # cut at max_frames: the innermost kept, the rest as one marker
            del out[tb.nframes - 1 :]
            out.append(omitted_frames_marker(tb.depth - tb.nframes + 1))
        return tuple(out)


cdef dict _convert(Converter converter, Py_ssize_t n, prof_mem_taken* taken):
    """Sums by (stack, labels) of what was taken; releases the references taken."""
    cdef Py_ssize_t i
    cdef dict out = {}
    prof_mem.ignored_thread = PyThread_get_thread_ident()  # what this allocates is the profiler's
    try:
        for i in range(n):
            # a profiler thread allocates (its first frame, on 3.10) before it can register
            # itself and be ignored by the hook: left out here, where it is registered (not a
            # program's thread doing the profiler's work for a moment, as at the exit flush)
            owner = _PROFILER_THREADS.get(taken[i].tb.thread_id)
            if owner is not None and owner != _OWN_WORK:
                continue
            key = converter.key(taken[i].tb)
            acc = out.get(key)
            if acc is None:
                acc = out[key] = [0.0, 0.0]
            acc[0] += taken[i].a
            acc[1] += taken[i].b
    finally:
        prof_mem.ignored_thread = 0
        for i in range(n):
            prof_mem_tb_unref(taken[i].tb)
        free(taken)
        _release()
    return out


def drain_allocations(Converter converter):
    """``{(stack, labels): [estimated count, estimated bytes]}`` of the allocations sampled since the last call."""
    cdef prof_mem_taken* taken
    cdef Py_ssize_t n = prof_mem_take_allocations(&taken)
    if n < 0:
        raise MemoryError()
    return _convert(converter, n, taken)


def heap_snapshot(Converter converter):
    """``{(stack, labels): [estimated live bytes, estimated live blocks]}`` of the tracked allocations not yet freed."""
    cdef prof_mem_taken* taken
    cdef Py_ssize_t n = prof_mem_take_heap(&taken)
    if n < 0:
        raise MemoryError()
    return _convert(converter, n, taken)
