# cython: language_level=3
"""The fast paths of exception sampling, in C.

What is counted is an exception *raised*: one that reaches a Python frame,
counted once in the frame where it first appears (a ``raise`` statement, an
error from a call into C code, a stored exception raised again), not again in
each frame it then propagates through. An exception object created and never
raised, or one that C code raises and clears before any Python frame sees it
(attribute lookup fallbacks, ``hasattr``, ``getattr`` with a default, iterator
exhaustion), is not counted. Control-flow exceptions (``StopIteration``,
``StopAsyncIteration``, ``GeneratorExit``) are never counted.

Which raised exceptions are sampled is decided by a geometric countdown
(Poisson sampling), decremented in C; ``SampleRecorder`` records the sampled
ones and draws the next gap.

The events come from the interpreter's own error path:

- CPython 3.12+: ``sys.monitoring`` RAISE events (:func:`on_raise`).
- CPython 3.10/3.11: the thread's C-level trace slot, which the interpreter
  calls at the same place (every time an exception reaches a frame). The slot
  is filled in directly, never through ``sys.settrace``, so the thread stays
  in the interpreter's fast mode: the trace function is taken out of the slot
  for the moment the interpreter recomputes its tracing flag after each call,
  and put back just after (when the event's argument tuple is freed). Nothing
  is changed on exception types, so they behave exactly as without the
  profiler. A thread whose slot holds another tracer (a debugger, coverage) or
  that has a profile function is left alone.
"""

cdef extern from *:
    """
    #include "frameobject.h"
    #if PY_VERSION_HEX < 0x030B0000
    #include "traceback.h"
    #endif

    static Py_ssize_t prof_countdown = 1;
    /* Records one sampled exception and returns the next countdown; never raises. NULL: disarmed. */
    static Py_ssize_t (*prof_on_sample)(PyObject *exc) = NULL;
    static int prof_busy = 0;
    /* The traceback of the last exception event on this thread: an event whose traceback continues
       it into another frame is the same exception propagating. Compared, never dereferenced. */
    static _Thread_local PyObject *prof_last_tb = NULL;
    static long long prof_raised = 0, prof_propagated = 0, prof_control_flow = 0, prof_stepped_aside = 0;

    /* Whether an exception event with traceback tb is the propagation of the previous one into a caller. */
    static int prof_is_propagation(PyObject *tb) {
        PyObject *last = prof_last_tb;
        prof_last_tb = tb;
        if (tb == NULL || !PyTraceBack_Check(tb)) return 0;
        PyTracebackObject *t = (PyTracebackObject *)tb;
        PyTracebackObject *next = t->tb_next;
        return next != NULL && (PyObject *)next == last && next->tb_frame != t->tb_frame;
    }

    /* What a type's exceptions are to the counter: 0 counted, 1 control flow (never counted),
       2 MemoryError (counted, never sampled: sampling allocates). A small cache by type, so the
       subclass checks run once per type. A type whose bases can change is cached with its version
       tag (changing __bases__ changes it); an immutable one, as every built-in exception is, by
       itself: its version tag can be 0 for good (it was for ValueError on 3.11, and every raise
       walked the MRO again, 85 of 121 instructions). */
    #define PROF_KIND_CACHE 64
    static struct { PyTypeObject *type; unsigned int tag; int kind; } prof_kinds[PROF_KIND_CACHE];
    static int prof_kind_of(PyTypeObject *t) {
    #ifdef Py_TPFLAGS_IMMUTABLETYPE
        int immutable = (t->tp_flags & Py_TPFLAGS_IMMUTABLETYPE) != 0;
    #else
        int immutable = (t->tp_flags & Py_TPFLAGS_HEAPTYPE) == 0;
    #endif
        unsigned int tag = immutable ? 0 : t->tp_version_tag;
        size_t i = ((uintptr_t)t >> 4) % PROF_KIND_CACHE;
        if ((immutable || tag != 0) && prof_kinds[i].type == t && prof_kinds[i].tag == tag)
            return prof_kinds[i].kind;
        int kind = 0;
        PyObject *mro = t->tp_mro;
        Py_ssize_t n = mro != NULL && PyTuple_Check(mro) ? PyTuple_GET_SIZE(mro) : 0;
        for (Py_ssize_t j = 0; j < n && kind == 0; j++) {  /* one walk for the four bases */
            PyObject *base = PyTuple_GET_ITEM(mro, j);
            if (base == PyExc_StopIteration || base == PyExc_StopAsyncIteration || base == PyExc_GeneratorExit) kind = 1;
            else if (base == PyExc_MemoryError) kind = 2;
        }
        if (immutable || tag != 0) { prof_kinds[i].type = t; prof_kinds[i].tag = tag; prof_kinds[i].kind = kind; }
        return kind;
    }

    /* One exception event: counts it down, records it when sampled. Never raises. */
    static void prof_event(PyObject *exc, PyObject *tb) {
        if (prof_is_propagation(tb)) { prof_propagated++; return; }
        if (exc == NULL || !PyExceptionInstance_Check(exc)) return;
        int kind = prof_kind_of(Py_TYPE(exc));
        if (kind == 1) { prof_control_flow++; return; }
        prof_raised++;
        if (--prof_countdown > 0 || prof_on_sample == NULL || prof_busy) return;
        if (kind == 2) { prof_countdown = 1; return; }
        prof_busy = 1;
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        prof_countdown = prof_on_sample(exc);
        if (PyErr_Occurred()) PyErr_Clear();  /* ours, never the program's */
        PyErr_Restore(et, ev, etb);
        if (prof_countdown <= 0) prof_countdown = 1;
        prof_busy = 0;
    }

    #if PY_VERSION_HEX < 0x030C0000
    static int prof_armed = 0;
    static int prof_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);

    /* Put into the event's argument tuple: freeing the tuple (just after the interpreter has
       recomputed its tracing flag with the slot empty) puts the trace function back. */
    typedef struct { PyObject_HEAD } prof_RearmObject;
    static void prof_rearm_dealloc(PyObject *self) {
        PyThreadState *ts = PyThreadState_Get();
        if (prof_armed && ts->c_tracefunc == NULL && ts->c_profilefunc == NULL && ts->c_traceobj == NULL)
            ts->c_tracefunc = prof_trace;
        /* Static: never freed, used again by the next event (the GIL is held throughout). */
    }
    static PyTypeObject prof_RearmType = {
        PyVarObject_HEAD_INIT(NULL, 0)
        .tp_name = "profiler_exception._native._Rearm",
        .tp_basicsize = sizeof(prof_RearmObject),
        .tp_dealloc = prof_rearm_dealloc,
        .tp_flags = Py_TPFLAGS_DEFAULT,
    };
    static prof_RearmObject prof_rearm = { PyObject_HEAD_INIT(&prof_RearmType) };

    static void prof_step_aside(PyThreadState *ts) {
        if (ts->c_tracefunc == prof_trace) { ts->c_tracefunc = NULL; prof_stepped_aside++; }
    }

    static int prof_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
        PyThreadState *ts = PyThreadState_Get();
        if (what != PyTrace_EXCEPTION || !prof_armed) {
            /* This thread is in the interpreter's tracing mode (a profile function came and went):
               leave the slot empty so it returns to the fast mode; arm_threads() fills it again. */
            prof_step_aside(ts);
            return 0;
        }
        if (!PyTuple_CheckExact(arg) || PyTuple_GET_SIZE(arg) != 3) { prof_step_aside(ts); return 0; }
        prof_event(PyTuple_GET_ITEM(arg, 1), PyTuple_GET_ITEM(arg, 2));
        if (Py_REFCNT(arg) != 1 || ts->c_tracefunc != prof_trace) { prof_step_aside(ts); return 0; }
        if (Py_REFCNT(&prof_rearm) != 0) { prof_step_aside(ts); return 0; }  /* in use: cannot happen */
        Py_SET_REFCNT(&prof_rearm, 1);
        /* The tuple holds its own reference to the traceback; the interpreter restores the
           exception from its own. */
        PyObject *old = PyTuple_GET_ITEM(arg, 2);
        PyTuple_SET_ITEM(arg, 2, (PyObject *)&prof_rearm);
        Py_DECREF(old);
        ts->c_tracefunc = NULL;
        return 0;
    }

    static int prof_thread_ignored(unsigned long id);

    static void prof_arm_one(PyThreadState *t) {
        if (t->c_tracefunc == NULL && t->c_profilefunc == NULL && t->c_traceobj == NULL && t->tracing == 0
            && !prof_thread_ignored(t->thread_id))
            t->c_tracefunc = prof_trace;
    }
    static int prof_hook_ready(void) {
        if (prof_RearmType.tp_flags & Py_TPFLAGS_READY) return 0;
        if (PyType_Ready(&prof_RearmType) < 0) return -1;
        Py_SET_REFCNT(&prof_rearm, 0);  /* 0: free for the next event */
        return 0;
    }
    static void prof_set_armed(int on) {
        prof_armed = on;
        PyInterpreterState *interp = PyThreadState_Get()->interp;
        for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t != NULL; t = PyThreadState_Next(t)) {
            if (on) prof_arm_one(t);
            else if (t->c_tracefunc == prof_trace) t->c_tracefunc = NULL;
        }
    }
    static void prof_arm_current(void) { if (prof_armed) prof_arm_one(PyThreadState_Get()); }
    static void prof_set_quiet(void) { prof_armed = 0; }
    static int prof_is_armed(unsigned long id) {
        PyInterpreterState *interp = PyThreadState_Get()->interp;
        for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t != NULL; t = PyThreadState_Next(t))
            if (t->thread_id == id) return t->c_tracefunc == prof_trace;
        return 0;
    }
    #define PROF_HAS_TRACE_HOOK 1
    #else
    static int prof_hook_ready(void) { return 0; }
    static void prof_set_armed(int on) { (void)on; }
    static void prof_arm_current(void) { }
    static void prof_set_quiet(void) { }
    static int prof_is_armed(unsigned long id) { (void)id; return 0; }
    #define PROF_HAS_TRACE_HOOK 0
    #endif

    /* Profiler threads are never armed (their exceptions are the profiler's, not the program's). */
    #define PROF_MAX_IGNORED 16
    static unsigned long prof_ignored[PROF_MAX_IGNORED];
    static int prof_n_ignored = 0;
    static int prof_thread_ignored(unsigned long id) {
        for (int i = 0; i < prof_n_ignored; i++) if (prof_ignored[i] == id) return 1;
        return 0;
    }

    typedef Py_ssize_t (*prof_sample_fn)(PyObject *exc);
    static void prof_set_callback(prof_sample_fn cb, Py_ssize_t countdown) {
        prof_on_sample = cb;
        prof_countdown = countdown > 0 ? countdown : 1;
    }
    static void prof_set_countdown(Py_ssize_t n) { prof_countdown = n > 0 ? n : 1; }
    static void prof_raise_event(PyObject *exc) {
        PyObject *tb = PyException_GetTraceback(exc);
        prof_event(exc, tb);
        Py_XDECREF(tb);
    }
    """
    ctypedef Py_ssize_t (*prof_sample_fn)(object exc) noexcept
    int PROF_HAS_TRACE_HOOK
    int prof_hook_ready() except -1
    void prof_set_armed(int on)
    void prof_arm_current()
    void prof_set_quiet()
    int prof_is_armed(unsigned long id)
    void prof_set_callback(prof_sample_fn cb, Py_ssize_t countdown)
    void prof_set_countdown(Py_ssize_t n)
    void prof_raise_event(object exc)
    unsigned long prof_ignored[16]
    int prof_n_ignored
    long long prof_raised, prof_propagated, prof_control_flow, prof_stepped_aside


#: Whether this interpreter's events come from the trace slot (3.10/3.11) rather than sys.monitoring.
HAS_TRACE_HOOK = bool(PROF_HAS_TRACE_HOOK)

# The one armed recorder, for the C paths (trace slot and RAISE callback).
cdef SampleRecorder _armed = None


cdef Py_ssize_t _sample_armed(object exc) noexcept:
    cdef SampleRecorder recorder = _armed
    if recorder is None:
        return 1 << 30
    return recorder.sample(exc)


def _set_ignored(ignored):
    global prof_n_ignored
    cdef int i = 0
    for ident in list(ignored)[:16]:
        prof_ignored[i] = <unsigned long>ident
        i += 1
    prof_n_ignored = i


def arm(SampleRecorder recorder, Py_ssize_t first_countdown, ignored=()):
    """Start counting: ``recorder`` records the sampled exceptions.

    On 3.10/3.11 this fills the trace slot of every thread of the interpreter
    that has no tracer or profile function of its own, except the thread idents
    in ``ignored`` (the profiler's own threads); :func:`arm_current_thread` does
    it for a thread started later.
    """
    global _armed
    _set_ignored(ignored)
    _armed = recorder
    prof_set_callback(_sample_armed, first_countdown)
    prof_hook_ready()
    prof_set_armed(1)


def arm_threads(ignored=()):
    """Fill the trace slot of threads started since :func:`arm` that have none, except ``ignored`` (3.10/3.11)."""
    if _armed is not None:
        _set_ignored(ignored)
        prof_set_armed(1)


def arm_current_thread():
    """Fill the calling thread's trace slot if it is free and counting is on (3.10/3.11; else nothing)."""
    prof_arm_current()


def disarm(bint quick=False):
    """Stop counting: no recorder is called afterwards, and every trace slot that holds ours is emptied.

    ``quick`` (at process exit) leaves the slots alone: the trace function then gives
    its slot up at the thread's next exception, without walking the thread states.
    """
    global _armed
    prof_set_callback(NULL, 1)
    _armed = None
    if quick:
        prof_set_quiet()
    else:
        prof_set_armed(0)


def is_armed(unsigned long ident):
    """Whether the thread ``ident``'s trace slot holds the exception hook (always False on 3.12+)."""
    return bool(prof_is_armed(ident))


def event_counts():
    """Events seen so far: raised (counted), propagated (not), control flow (not), slots given up."""
    return {
        "raised": prof_raised,
        "propagated": prof_propagated,
        "control_flow": prof_control_flow,
        "stepped_aside": prof_stepped_aside,
    }


def on_raise(code, offset, exc):
    """``sys.monitoring`` RAISE callback (3.12+): the same counting as the trace-slot path."""
    prof_raise_event(exc)


def set_countdown(Py_ssize_t countdown):
    """Events until the next sample."""
    prof_set_countdown(countdown)


cdef class ThreadBootstrap:
    """Runs a new thread's bootstrap function after arming the thread (3.10/3.11).

    ``threading`` starts its threads through this (the profiler wraps
    ``threading._start_new_thread``), so exceptions raised in a thread's first
    moments are counted too. It adds no Python frame and passes results and
    exceptions through unchanged.
    """

    cdef object func
    cdef object args
    cdef object kwargs

    def __cinit__(self, func, args, kwargs=None):
        self.func = func
        self.args = args
        self.kwargs = kwargs

    def __call__(self):
        prof_arm_current()
        if self.kwargs is None:
            return self.func(*self.args)
        return self.func(*self.args, **self.kwargs)


cdef class ArmingStartNewThread:
    """Stands in for ``threading._start_new_thread`` while counting on 3.10/3.11: the new thread is armed first.

    Same signature and result as ``_thread.start_new_thread``; adds no Python frame.
    """

    cdef public object original

    def __cinit__(self, original):
        self.original = original

    def __call__(self, function, args, kwargs=None):
        return self.original(ThreadBootstrap(function, args, kwargs), ())


# -- recording a sampled exception ------------------------------------------------------

import threading as _threading

from profiler_core import thread_names
from profiler_core.threads import PROFILER_THREADS
from profiler_core.events import (
    EXCEPTION_MESSAGE,
    EXCEPTION_TYPE,
    THREAD_ID,
    THREAD_NAME,
    THREAD_NATIVE_ID,
    Frame,
    omitted_frames_marker,
    thread_labels,
)

from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from cpython.ref cimport PyObject

cdef extern from "Python.h":
    ctypedef struct PyFrameObject
    ctypedef struct PyCodeObject
    PyFrameObject* PyEval_GetFrame()
    PyFrameObject* PyFrame_GetBack(PyFrameObject* frame)
    PyCodeObject* PyFrame_GetCode(PyFrameObject* frame)
    int PyFrame_GetLineNumber(PyFrameObject* frame)
    void Py_INCREF_frame "Py_INCREF" (PyFrameObject* o)
    void Py_DECREF_frame "Py_DECREF" (PyFrameObject* o)
    void Py_DECREF_code "Py_DECREF" (PyCodeObject* o)
    object PyLong_FromVoidPtr(void* p)
    unsigned long PyThread_get_thread_ident()
    ctypedef struct PyThreadState
    PyThreadState* PyThreadState_Get()
    unsigned long long PyThreadState_GetID(PyThreadState* tstate)
    unsigned long PyThread_get_thread_native_id()

cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030B0000
    static int prof_exc_lasti(PyFrameObject *f) { return PyFrame_GetLasti(f); }
    #else
    #include "frameobject.h"
    static int prof_exc_lasti(PyFrameObject *f) { return f->f_lasti; }
    #endif
    #include <time.h>
    static long long prof_exc_now_ns(void) {  /* time.monotonic_ns()'s clock */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    """
    int prof_exc_lasti(PyFrameObject* f)
    long long prof_exc_now_ns()

cdef extern from "<math.h>":
    double log(double x)
    double ceil(double x)

import sys as _sys

cdef bint _HAS_QUALNAME = _sys.version_info >= (3, 11)


cdef class _Count:
    """The count of sampled exceptions for one (stack, labels) between two drains."""

    cdef tuple stack
    cdef list codes  # the stack's code objects: the key hashes their addresses, which stay theirs
    cdef object exc_type  # the exception type of the key, held for the same reason
    cdef tuple labels
    cdef long long count


# The frame cache: code address -> (weak reference to the code, {offset: Frame}). Weak, so that a
# program compiling code as it runs (templates, exec) does not have each code object kept alive by
# the cache (2.3 KB apiece in benchmarks/workloads/new_code.py); the reference tells a reused
# address apart. Beyond this many codes the cache starts again.
cdef Py_ssize_t MAX_CODES = 2048
from _weakref import ref as _weakref

# Distinct (stack, thread, type) counts kept between two drains; beyond, samples go to the recorder directly.
MAX_ENTRIES = 4096
# Samples kept one by one with their moment between two drains, for the timeline; beyond, counted
# as without it.
cdef Py_ssize_t _MAX_TIMED_SAMPLES = 8192
MAX_TIMED_SAMPLES = _MAX_TIMED_SAMPLES


cdef struct _TimedSample:
    PyObject* entry  # borrowed: the entries dict of its period holds it until that period's drain
    long long when
cdef unsigned long long _MIX = 0x100000001B3ULL


cdef class SampleRecorder:
    """Records sampled exceptions (type, message, thread, raising stack) and draws the gaps between samples.

    The constructor hook and the RAISE callback call :meth:`sample` with the
    exception; its result is the number of exceptions until the next sample
    (geometric, mean ``interval``), and each sample counts once, as in ddtrace (the collector records
    the rate, 1 / ``interval``, in the profile, for estimates). Samples
    are counted here, keyed by a hash of the stack's code objects and offsets, the
    thread and the type, so a sample from a place seen before in this period costs
    a stack walk and a dictionary lookup; :meth:`drain` pushes the counts into the
    recorder (the collector calls it before every flush). With messages collected
    every sample is pushed as it comes.
    """

    cdef object push
    cdef object type_name
    cdef object message_of
    cdef dict codes
    cdef dict threads
    cdef dict types
    cdef dict entries
    cdef public dict values
    cdef int max_frames
    cdef bint collect_message
    cdef double log_scale
    cdef public double interval
    cdef long long weight
    cdef unsigned long long rng
    cdef public long long errors
    # The timeline: the period's sampled exceptions, each with its moment, in a C array; NULL with
    # the timeline off (see enable_timeline).
    cdef _TimedSample* events
    cdef Py_ssize_t ev_count

    def __dealloc__(self):
        PyMem_RawFree(self.events)

    def enable_timeline(self):
        """Keep each sampled exception with its moment (pushed so at the drain), up to MAX_TIMED_SAMPLES a period."""
        if self.events == NULL:
            self.events = <_TimedSample*>PyMem_RawMalloc(_MAX_TIMED_SAMPLES * sizeof(_TimedSample))
            if self.events == NULL:
                raise MemoryError()
        self.ev_count = 0

    @property
    def timeline(self):
        """Whether each sampled exception is kept with its moment (see enable_timeline)."""
        return self.events != NULL

    cdef _push_now(self, tuple stack, tuple labels):
        # One sampled exception on its own, with the moment it is taken when the timeline is on.
        if self.events != NULL:
            self.push(stack, labels, self.values, prof_exc_now_ns())
        else:
            self.push(stack, labels, self.values)

    def __init__(self, push, double interval, int max_frames, bint collect_message, type_name, message_of, unsigned long long seed):
        self.push = push
        self.type_name = type_name
        self.message_of = message_of
        self.codes = {}
        self.threads = {}
        self.types = {}
        self.entries = {}
        self.errors = 0
        self.max_frames = max_frames if max_frames > 0 else 1
        self.collect_message = collect_message
        self.rng = seed | 1
        self.set_interval(interval)

    def set_interval(self, double interval):
        """Sample one exception in ``interval`` on average; returns the first gap."""
        self.interval = interval if interval > 1 else 1.0
        self.log_scale = 1.0 / log(1.0 - 1.0 / self.interval) if self.interval > 1 else 0.0
        self.weight = 1  # a sampled exception counts once; see ExceptionCollector.sampling_rates()
        self.values = {"exception-samples": self.weight}
        return self.next_gap()

    cpdef Py_ssize_t next_gap(self):
        """Events until the next sample."""
        cdef double u
        if self.interval <= 1:
            return 1
        self.rng ^= self.rng << 13
        self.rng ^= self.rng >> 7
        self.rng ^= self.rng << 17
        u = ((self.rng >> 11) + 1) * (1.0 / 9007199254740993.0)  # in (0, 1]
        return max(<Py_ssize_t>1, <Py_ssize_t>ceil(log(u) * self.log_scale))

    cdef Py_ssize_t sample(self, exc) noexcept:
        """Count one sampled exception; never raises (a failure is counted in ``errors``)."""
        cdef _Count entry
        cdef unsigned long long key
        try:
            if self._from_profiler():
                return self.next_gap()
            if self.collect_message:  # the message is part of the key: nothing to sum
                self._push_now(self._stack([]), self._labels(exc))
                return self.next_gap()
            exc_type = type(exc)
            # The thread state's id, never reused, where a thread ident often is (a thread per request).
            key = self._stack_hash() ^ (<unsigned long long><size_t><void*>exc_type * _MIX) ^ (
                PyThreadState_GetID(PyThreadState_Get()) * _MIX * _MIX
            )
            found = self.entries.get(key)
            if found is None:
                entry = _Count.__new__(_Count)
                entry.codes = []
                entry.stack = self._stack(entry.codes)
                entry.exc_type = exc_type
                entry.labels = self._labels(exc)
                # Building the entry ran Python code: another thread may have added the key meanwhile.
                found = self.entries.get(key)
                if found is None:
                    if len(self.entries) >= MAX_ENTRIES:
                        self._push_now(entry.stack, entry.labels)
                        return self.next_gap()
                    self.entries[key] = entry
                    found = entry
            if self.events != NULL and self.ev_count < _MAX_TIMED_SAMPLES:
                self.events[self.ev_count].entry = <PyObject*>found
                self.events[self.ev_count].when = prof_exc_now_ns()
                self.ev_count += 1
                return self.next_gap()
            (<_Count>found).count += self.weight
        except BaseException:
            self.errors += 1
        return self.next_gap()

    def discard(self):
        """Forget what was gathered and the threads' labels: in a forked child they are the parent's."""
        self.entries = {}
        self.threads = {}
        self.ev_count = 0

    def drain(self):
        """Push what was gathered since the last drain into the recorder: each sample kept with its
        moment (the timeline), then the counts; the number of pushes."""
        cdef _Count entry
        cdef Py_ssize_t i, n
        cdef _TimedSample* taken = NULL
        cdef _TimedSample* fresh = NULL
        new_entries = {}
        if self.events != NULL:
            fresh = <_TimedSample*>PyMem_RawMalloc(_MAX_TIMED_SAMPLES * sizeof(_TimedSample))
            if fresh == NULL:  # no room for the next period's samples: these are counted instead
                for i in range(self.ev_count):
                    (<_Count>self.events[i].entry).count += self.weight
                self.ev_count = 0
        # From here to the end of the swap, no Python code runs (nothing allocated nor freed): samples
        # taken meanwhile by other threads go to the next period, and two drains at once each push
        # their own.
        entries = self.entries
        self.entries = new_entries
        n = self.ev_count
        if fresh != NULL:
            taken = self.events
            self.events = fresh
        self.ev_count = 0
        try:
            for i in range(n):
                entry = <_Count>taken[i].entry  # alive: `entries` holds it
                self.push(entry.stack, entry.labels, {"exception-samples": self.weight}, taken[i].when)
        finally:
            PyMem_RawFree(taken)
        pushed = n
        for found in entries.values():
            entry = <_Count>found
            if entry.count:
                self.push(entry.stack, entry.labels, {"exception-samples": entry.count})
                pushed += 1
        return pushed

    cdef bint _from_profiler(self):
        """Whether the calling thread is one of the profiler's own, whose exceptions are not the program's."""
        return PyThread_get_thread_ident() in PROFILER_THREADS

    cdef unsigned long long _stack_hash(self):
        """A hash of what :meth:`_stack` would return: the frames' code objects and offsets, and the depth."""
        cdef unsigned long long h = 0xCBF29CE484222325ULL
        cdef PyFrameObject* f = PyEval_GetFrame()
        cdef PyFrameObject* back
        cdef PyCodeObject* code
        cdef unsigned long long depth = 0
        if f == NULL:
            return h
        Py_INCREF_frame(f)
        while f != NULL:
            if depth < <unsigned long long>self.max_frames:
                code = PyFrame_GetCode(f)
                h = (h ^ <unsigned long long><size_t>code) * _MIX
                h = (h ^ <unsigned long long>prof_exc_lasti(f)) * _MIX
                Py_DECREF_code(code)
            depth += 1
            back = PyFrame_GetBack(f)
            Py_DECREF_frame(f)
            f = back
        return (h ^ depth) * _MIX

    cdef tuple _labels(self, exc):
        ident = PyThread_get_thread_ident()
        thread = _threading._active.get(ident)
        name = thread.name if thread is not None else None
        cached = self.threads.get(ident)
        if cached is None or (<tuple>cached)[0] != name:
            if len(self.threads) > 10000:
                self.threads = {}
            # The kernel's id, not Thread.native_id: that one still names the parent's thread
            # in a child forked from it (CPython 3.10/3.11).
            native = PyThread_get_thread_native_id()
            if name is None:  # not a threading.Thread (or not yet): the name it was last seen with, if any
                label_name = thread_names.name_of(ident, native)
            else:
                label_name = name
                thread_names.remember(ident, native, name)
            cached = self.threads[ident] = (name, thread_labels(ident, native, label_name))
        exc_type = type(exc)
        type_label = self.types.get(exc_type)
        if type_label is None:
            if len(self.types) > 10000:
                self.types = {}
            type_label = self.types[exc_type] = ((EXCEPTION_TYPE, self.type_name(exc_type)),)
        labels = (<tuple>cached)[1] + type_label
        if self.collect_message:
            labels += ((EXCEPTION_MESSAGE, self.message_of(exc)),)
        return labels

    cdef tuple _stack(self, list codes_out):
        # The Frames of the current stack; its code objects are appended to ``codes_out``.
        cdef list out = []
        cdef PyFrameObject* f = PyEval_GetFrame()
        cdef PyFrameObject* back
        cdef PyCodeObject* code
        cdef int depth = 0
        if f == NULL:
            return ()
        if len(self.codes) > MAX_CODES:
            self.codes = {}
        Py_INCREF_frame(f)
        try:
            while f != NULL:
                if depth < self.max_frames:
                    code = PyFrame_GetCode(f)
                    co_ref = <object>code  # owned from here: no reference is lost if what follows raises
                    Py_DECREF_code(code)
                    key = PyLong_FromVoidPtr(<void*>code)
                    entry = self.codes.get(key)
                    if entry is None or (<tuple>entry)[0]() is not co_ref:
                        entry = self.codes[key] = (_weakref(co_ref), {})
                    codes_out.append(co_ref)
                    lasti = prof_exc_lasti(f)
                    frame = (<dict>(<tuple>entry)[1]).get(lasti)
                    if frame is None:
                        co = co_ref
                        frame = (<dict>(<tuple>entry)[1])[lasti] = Frame(
                            co.co_filename, co.co_qualname if _HAS_QUALNAME else co.co_name, PyFrame_GetLineNumber(f)
                        )
                    out.append(frame)
                depth += 1
                back = PyFrame_GetBack(f)
                Py_DECREF_frame(f)
                f = back
        finally:
            if f != NULL:  # left by an exception in the walk
                Py_DECREF_frame(f)
        if depth > self.max_frames:  # innermost frames kept, the rest stand as one marker, as everywhere
            kept = self.max_frames - 1
            del out[kept:]
            out.append(omitted_frames_marker(depth - kept))
        return tuple(out)
