# cython: language_level=3
"""The fast paths of exception sampling, in C.

Whether a raised exception is sampled is decided by a geometric countdown
(Poisson sampling), decremented in C; ``SampleRecorder`` records the sampled
ones and draws the next gap. Before 3.12 the exceptions are seen by a hook
installed in the ``tp_new`` slot of every exception type that uses a C
constructor, chaining to the original one; from 3.12 by :func:`on_raise`.
"""

cdef extern from *:
    """
    #define PROF_TABLE 4096
    static PyTypeObject *prof_types[PROF_TABLE];
    static newfunc prof_orig[PROF_TABLE];
    static Py_ssize_t prof_countdown = 1;
    /* Records one sampled exception and returns the next countdown; never raises. NULL: disarmed. */
    static Py_ssize_t (*prof_on_sample)(PyObject *exc) = NULL;
    static int prof_busy = 0;

    static PyObject *prof_hook_new(PyTypeObject *t, PyObject *a, PyObject *k);

    static Py_ssize_t prof_slot(PyTypeObject *t) { return (Py_ssize_t)(((uintptr_t)t >> 4) % PROF_TABLE); }

    static newfunc prof_lookup(PyTypeObject *t) {
        Py_ssize_t i = prof_slot(t);
        for (int n = 0; n < PROF_TABLE; n++) {
            PyTypeObject *key = prof_types[i];
            if (key == t) return prof_orig[i];
            if (key == NULL) return NULL;
            i = (i + 1) % PROF_TABLE;
        }
        return NULL;
    }

    static int prof_remember(PyTypeObject *t, newfunc orig) {
        Py_ssize_t i = prof_slot(t);
        for (int n = 0; n < PROF_TABLE; n++) {
            if (prof_types[i] == NULL || prof_types[i] == t) { prof_types[i] = t; prof_orig[i] = orig; return 0; }
            i = (i + 1) % PROF_TABLE;
        }
        return -1;
    }

    static void prof_forget_all(void) {
        memset(prof_types, 0, sizeof(prof_types));
        memset(prof_orig, 0, sizeof(prof_orig));
    }

    /* The constructor to call for t: its own original, or (for a type created after patching,
       which inherited the hook) that of the nearest base in its MRO. */
    static newfunc prof_original(PyTypeObject *t) {
        newfunc f = prof_lookup(t);
        if (f != NULL) return f;
        PyObject *mro = t->tp_mro;
        if (mro == NULL) return NULL;
        for (Py_ssize_t i = 1; i < PyTuple_GET_SIZE(mro); i++) {
            PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
            if (base->tp_new != prof_hook_new) return base->tp_new;
            f = prof_lookup(base);
            if (f != NULL) return f;
        }
        return NULL;
    }

    static PyObject *prof_hook_new(PyTypeObject *t, PyObject *a, PyObject *k) {
        newfunc orig = prof_original(t);
        if (orig == NULL) {
            PyErr_SetString(PyExc_SystemError, "profiler: lost the original constructor of an exception type");
            return NULL;
        }
        PyObject *r = orig(t, a, k);
        if (r != NULL && --prof_countdown <= 0 && prof_on_sample != NULL && !prof_busy) {
            prof_busy = 1;
            prof_countdown = prof_on_sample(r);
            if (PyErr_Occurred()) PyErr_Clear();  /* ours, never the program's: r is a success */
            if (prof_countdown <= 0) prof_countdown = 1;
            prof_busy = 0;
        }
        return r;
    }

    static int prof_is_hooked(PyTypeObject *t) { return t->tp_new == prof_hook_new; }
    static int prof_install(PyTypeObject *t) {
        if (t->tp_new == NULL || t->tp_new == prof_hook_new) return 0;
        if (prof_remember(t, t->tp_new) < 0) return -1;
        t->tp_new = prof_hook_new;
        PyType_Modified(t);
        return 1;
    }
    static void prof_uninstall(PyTypeObject *t) {
        if (t->tp_new != prof_hook_new) return;
        newfunc orig = prof_original(t);
        if (orig != NULL) { t->tp_new = orig; PyType_Modified(t); }
    }
    typedef Py_ssize_t (*prof_sample_fn)(PyObject *exc);
    static void prof_set_callback(prof_sample_fn cb, Py_ssize_t countdown) {
        prof_on_sample = cb;
        prof_countdown = countdown > 0 ? countdown : 1;
    }
    """
    ctypedef Py_ssize_t (*prof_sample_fn)(object exc) noexcept
    int prof_install(type t) except -1
    void prof_uninstall(type t)
    int prof_is_hooked(type t)
    void prof_set_callback(prof_sample_fn cb, Py_ssize_t countdown)
    void prof_forget_all()


# The one armed recorder, for the C paths (constructor hook and RAISE callback).
cdef SampleRecorder _armed = None


cdef Py_ssize_t _sample_armed(object exc) noexcept:
    cdef SampleRecorder recorder = _armed
    if recorder is None:
        return 1 << 30
    return recorder.sample(exc)


def install(types, SampleRecorder recorder, Py_ssize_t first_countdown):
    """Hook the C constructors of ``types``; ``recorder`` records the sampled exceptions.

    Returns the types actually hooked.
    """
    global _armed
    hooked = []
    _armed = recorder
    prof_set_callback(_sample_armed, first_countdown)
    for t in types:
        if prof_install(t) == 1:
            hooked.append(t)
    return hooked


def uninstall(types):
    """Give ``types`` (and any type that inherited the hook) their constructors back; stop sampling."""
    global _armed
    prof_set_callback(NULL, 1)
    _armed = None
    for t in types:
        prof_uninstall(t)
    prof_forget_all()


def is_hooked(type t):
    """Whether ``t``'s constructor is the sampling hook."""
    return bool(prof_is_hooked(t))


cdef Py_ssize_t _raise_countdown = 1
cdef SampleRecorder _raise_record = None
cdef tuple _CONTROL_FLOW = (StopIteration, StopAsyncIteration, GeneratorExit)


def set_raise_sampling(SampleRecorder record, Py_ssize_t countdown):
    """Arm (``record``) or disarm (None) :func:`on_raise`."""
    global _raise_record, _raise_countdown
    _raise_record = record
    _raise_countdown = countdown if countdown > 0 else 1


def on_raise(code, offset, exc):
    """``sys.monitoring`` RAISE callback: counts down in C, calls the recorder for sampled exceptions."""
    global _raise_countdown
    _raise_countdown -= 1
    if _raise_countdown > 0 or _raise_record is None:
        return None
    if isinstance(exc, _CONTROL_FLOW):
        _raise_countdown = 1  # control flow, not an error: the sample goes to the next exception
        return None
    _raise_countdown = _raise_record.sample(exc)
    return None


cdef extern from *:
    """
    static void prof_set_countdown(Py_ssize_t n) { prof_countdown = n > 0 ? n : 1; }
    """
    void prof_set_countdown(Py_ssize_t n)


def set_countdown(Py_ssize_t countdown):
    """Events until the next sample, for both the constructor hook and the RAISE callback."""
    global _raise_countdown
    prof_set_countdown(countdown)
    _raise_countdown = countdown if countdown > 0 else 1


# -- recording a sampled exception ------------------------------------------------------

import threading as _threading

from profiler_core.events import (
    EXCEPTION_MESSAGE,
    EXCEPTION_TYPE,
    THREAD_ID,
    THREAD_NAME,
    THREAD_NATIVE_ID,
    Frame,
    omitted_frames_marker,
)

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

cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030B0000
    static int prof_exc_lasti(PyFrameObject *f) { return PyFrame_GetLasti(f); }
    #else
    #include "frameobject.h"
    static int prof_exc_lasti(PyFrameObject *f) { return f->f_lasti; }
    #endif
    """
    int prof_exc_lasti(PyFrameObject* f)

cdef extern from "<math.h>":
    double log(double x)
    double ceil(double x)

import sys as _sys

cdef bint _HAS_QUALNAME = _sys.version_info >= (3, 11)


cdef class _Count:
    """The weighted count for one (stack, labels) between two drains."""

    cdef tuple stack
    cdef tuple labels
    cdef long long count


# Distinct (stack, thread, type) counts kept between two drains; beyond, samples go to the recorder directly.
MAX_ENTRIES = 4096
cdef unsigned long long _MIX = 0x100000001B3ULL


cdef class SampleRecorder:
    """Records sampled exceptions (type, message, thread, raising stack) and draws the gaps between samples.

    The constructor hook and the RAISE callback call :meth:`sample` with the
    exception; its result is the number of exceptions until the next sample
    (geometric, mean ``interval``), and each sample weighs ``interval``. Samples
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
        self.weight = <long long>(self.interval + 0.5)
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
        try:
            if self.collect_message:  # the message is part of the key: nothing to sum
                self.push(self._stack(), self._labels(exc), self.values)
                return self.next_gap()
            exc_type = type(exc)
            key = self._stack_hash() ^ (<unsigned long long><size_t><void*>exc_type * _MIX) ^ (
                <unsigned long long>PyThread_get_thread_ident() * _MIX * _MIX
            )
            found = self.entries.get(key)
            if found is None:
                entry = _Count.__new__(_Count)
                entry.stack = self._stack()
                entry.labels = self._labels(exc)
                # Building the entry ran Python code: another thread may have added the key meanwhile.
                found = self.entries.get(key)
                if found is None:
                    if len(self.entries) >= MAX_ENTRIES:
                        self.push(entry.stack, entry.labels, self.values)
                        return self.next_gap()
                    self.entries[key] = entry
                    found = entry
            (<_Count>found).count += self.weight
        except BaseException:
            self.errors += 1
        return self.next_gap()

    def drain(self):
        """Push the counts gathered since the last drain into the recorder; the number of entries pushed."""
        cdef _Count entry
        entries, self.entries = self.entries, {}
        for found in entries.values():
            entry = <_Count>found
            self.push(entry.stack, entry.labels, {"exception-samples": entry.count})
        return len(entries)

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
            native = thread.native_id if thread is not None else 0
            labels = ((THREAD_ID, ident), (THREAD_NATIVE_ID, native or 0))
            if name is not None:
                labels += ((THREAD_NAME, name),)
            cached = self.threads[ident] = (name, labels)
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

    cdef tuple _stack(self):
        cdef list out = []
        cdef PyFrameObject* f = PyEval_GetFrame()
        cdef PyFrameObject* back
        cdef PyCodeObject* code
        cdef int depth = 0
        if f == NULL:
            return ()
        if len(self.codes) > 20000:
            self.codes = {}
        Py_INCREF_frame(f)
        while f != NULL:
            if depth < self.max_frames:
                code = PyFrame_GetCode(f)
                key = PyLong_FromVoidPtr(<void*>code)
                entry = self.codes.get(key)
                if entry is None or <void*>(<tuple>entry)[0] is not <void*>code:
                    entry = self.codes[key] = (<object>code, {})
                Py_DECREF_code(code)
                lasti = prof_exc_lasti(f)
                frame = (<dict>(<tuple>entry)[1]).get(lasti)
                if frame is None:
                    co = (<tuple>entry)[0]
                    frame = (<dict>(<tuple>entry)[1])[lasti] = Frame(
                        co.co_filename, co.co_qualname if _HAS_QUALNAME else co.co_name, PyFrame_GetLineNumber(f)
                    )
                out.append(frame)
            depth += 1
            back = PyFrame_GetBack(f)
            Py_DECREF_frame(f)
            f = back
        if depth > self.max_frames:  # innermost frames kept, the rest stand as one marker, as everywhere
            kept = self.max_frames - 1
            del out[kept:]
            out.append(omitted_frames_marker(depth - kept))
        return tuple(out)
