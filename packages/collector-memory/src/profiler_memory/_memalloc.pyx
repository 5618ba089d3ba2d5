# cython: language_level=3
"""Python side of the allocator hooks in ``_memhook.h``: start, stop, and turning samples into profile data.

The hooks record, for one allocation in every ``mean`` bytes on average, the
size and the allocating thread's frames as (code, offset) pairs. Here, outside
the allocator and with the GIL, those become stacks of :class:`Frame` and
thread labels, weighted by the inverse of each allocation's probability of
being sampled, so that sums estimate the true counts and bytes.
"""

from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

import sys as _sys
import threading as _threading

from profiler_core.events import THREAD_ID, THREAD_NAME, THREAD_NATIVE_ID, Frame, omitted_frames_marker

cdef extern from "_memhook.h":
    ctypedef struct prof_mem_frame:
        PyObject* code
        int lasti

    ctypedef struct prof_mem_tb:
        prof_mem_tb* next_free
        int refs
        int nframes
        int depth
        unsigned long thread_id
        size_t size
        double weight
        PyObject* key
        prof_mem_frame frames[1]

    ctypedef struct prof_mem_slot:
        void* ptr
        prof_mem_tb* tb

    ctypedef struct prof_mem_state:
        int enabled
        int track_allocs
        int track_heap
        int max_frames
        double mean
        int64_t countdown
        uint64_t rng
        prof_mem_tb** events
        Py_ssize_t nevents
        Py_ssize_t events_cap
        prof_mem_slot* table
        Py_ssize_t table_cap
        Py_ssize_t live
        Py_ssize_t live_cap
        prof_mem_tb* release_list
        Py_ssize_t dropped_events
        Py_ssize_t dropped_heap
        Py_ssize_t dropped_nomem

    prof_mem_state prof_mem
    int PROF_MEM_MAX_FRAMES
    int prof_mem_install(int hook_mem_domain)
    int prof_mem_uninstall()
    int prof_mem_is_hooked()
    int64_t prof_mem_next_gap()
    void prof_mem_tb_unref(prof_mem_tb* tb)

cdef extern from "Python.h":
    ctypedef struct PyCodeObject
    int PyCode_Addr2Line(PyCodeObject* co, int byte_offset)

cdef bint _HAS_QUALNAME = _sys.version_info >= (3, 11)


def start(double mean, int max_frames, bint allocs, bint heap, Py_ssize_t max_events, Py_ssize_t max_live,
          unsigned long long seed, bint hook_mem_domain=True):
    """Install the hooks: sample one allocation per ``mean`` bytes on average (Poisson), keeping up to
    ``max_events`` allocation samples between drains and ``max_live`` tracked live allocations."""
    cdef Py_ssize_t cap = 16
    if prof_mem.enabled:
        raise RuntimeError("the memory profiler is already running")
    if prof_mem.events == NULL:
        prof_mem.events = <prof_mem_tb**>calloc(max(max_events, 1), sizeof(prof_mem_tb*))
        prof_mem.events_cap = max(max_events, 1) if prof_mem.events != NULL else 0
        prof_mem.nevents = 0
    if prof_mem.table == NULL:
        while cap < 2 * max(max_live, 1):
            cap *= 2
        prof_mem.table = <prof_mem_slot*>calloc(cap, sizeof(prof_mem_slot))
        prof_mem.table_cap = cap if prof_mem.table != NULL else 0
        prof_mem.live = 0
        prof_mem.live_cap = min(max(max_live, 1), cap // 2)
    if prof_mem.events == NULL or prof_mem.table == NULL:
        raise MemoryError("cannot allocate the memory profiler's tables")
    prof_mem.mean = mean if mean >= 1 else 1.0
    prof_mem.max_frames = max(1, min(max_frames, PROF_MEM_MAX_FRAMES))
    prof_mem.track_allocs = allocs
    prof_mem.track_heap = heap
    prof_mem.rng = seed | 1
    prof_mem.countdown = prof_mem_next_gap()
    prof_mem.enabled = 1
    prof_mem_install(hook_mem_domain)


def stop():
    """Stop sampling and forget tracked live allocations; True when the hooks came off the allocators
    (False: another hook was installed over ours, which stays installed, passing everything through)."""
    removed = prof_mem_uninstall()
    _forget_heap()
    return bool(removed)


def is_hooked():
    """Whether our hooks are in the allocator chain (active or passing through)."""
    return bool(prof_mem_is_hooked())


def stats():
    """Counters: live tracked allocations, pending events, samples lost to each bound."""
    return {
        "live": prof_mem.live,
        "events": prof_mem.nevents,
        "dropped_events": prof_mem.dropped_events,
        "dropped_heap": prof_mem.dropped_heap,
        "dropped_nomem": prof_mem.dropped_nomem,
        "mean": prof_mem.mean,
    }


cdef void _forget_heap() noexcept:
    cdef Py_ssize_t i
    if prof_mem.table == NULL:
        return
    for i in range(prof_mem.table_cap):
        if prof_mem.table[i].ptr != NULL:
            prof_mem_tb_unref(prof_mem.table[i].tb)
            prof_mem.table[i].ptr = NULL
            prof_mem.table[i].tb = NULL
    prof_mem.live = 0
    _release()


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


def discard_events():
    """Forget pending allocation samples (a forked child does not report its parent's)."""
    cdef Py_ssize_t i, n = prof_mem.nevents
    prof_mem.nevents = 0
    for i in range(n):
        prof_mem_tb_unref(prof_mem.events[i])
    _release()


cdef class Converter:
    """Turns traces into ``(stack, labels)`` keys, caching frames by code object and offset."""

    cdef dict codes
    cdef dict threads

    def __init__(self):
        self.codes = {}
        self.threads = {}

    cdef object key(self, prof_mem_tb* tb):
        if tb.key == NULL:
            key = (self.stack(tb), self.thread_labels(tb.thread_id))
            Py_INCREF(key)
            tb.key = <PyObject*>key
        return <object>tb.key

    cdef tuple thread_labels(self, unsigned long ident):
        cached = self.threads.get(ident)
        if cached is None:
            if len(self.threads) > 10000:
                self.threads = {}
            thread = _threading._active.get(ident)
            labels = ((THREAD_ID, ident), (THREAD_NATIVE_ID, (thread.native_id or 0) if thread is not None else 0))
            if thread is not None:
                labels += ((THREAD_NAME, thread.name),)
            cached = self.threads[ident] = labels
        return <tuple>cached

    cdef tuple stack(self, prof_mem_tb* tb):
        cdef int i
        cdef list out = []
        if len(self.codes) > 20000:
            self.codes = {}
        for i in range(tb.nframes):
            code = <object>tb.frames[i].code
            per_code = self.codes.get(id(code))
            if per_code is None or (<tuple>per_code)[0] is not code:
                per_code = self.codes[id(code)] = (code, {})
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


def drain_allocations(Converter converter):
    """``{(stack, labels): [estimated count, estimated bytes]}`` of the allocations sampled since the last call."""
    cdef Py_ssize_t i, n = prof_mem.nevents
    cdef prof_mem_tb** taken
    cdef prof_mem_tb* tb
    cdef dict out = {}
    if n == 0:
        return out
    # Take the events out before running any Python code: allocations made below may add new ones.
    taken = <prof_mem_tb**>malloc(n * sizeof(prof_mem_tb*))
    if taken == NULL:
        raise MemoryError()
    for i in range(n):
        taken[i] = prof_mem.events[i]
    prof_mem.nevents = 0
    try:
        for i in range(n):
            tb = taken[i]
            key = converter.key(tb)
            acc = out.get(key)
            if acc is None:
                acc = out[key] = [0.0, 0.0]
            acc[0] += tb.weight
            acc[1] += tb.weight * <double>tb.size
    finally:
        for i in range(n):
            prof_mem_tb_unref(taken[i])
        free(taken)
        _release()
    return out


def heap_snapshot(Converter converter):
    """``{(stack, labels): [estimated live bytes, live samples]}`` of the tracked allocations not yet freed."""
    cdef Py_ssize_t i, n = 0
    cdef prof_mem_tb** taken
    cdef dict out = {}
    if prof_mem.live == 0 or prof_mem.table == NULL:
        return out
    # Copy (and hold) the live traces first: allocations and frees made below change the table.
    taken = <prof_mem_tb**>malloc(prof_mem.live * sizeof(prof_mem_tb*))
    if taken == NULL:
        raise MemoryError()
    for i in range(prof_mem.table_cap):
        if prof_mem.table[i].ptr != NULL and n < prof_mem.live:
            taken[n] = prof_mem.table[i].tb
            taken[n].refs += 1
            n += 1
    try:
        for i in range(n):
            key = converter.key(taken[i])
            acc = out.get(key)
            if acc is None:
                acc = out[key] = [0.0, 0]
            acc[0] += taken[i].weight * <double>taken[i].size
            acc[1] += 1
    finally:
        for i in range(n):
            prof_mem_tb_unref(taken[i])
        free(taken)
        _release()
    return out
