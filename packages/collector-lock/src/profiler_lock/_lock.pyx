# cython: language_level=3
"""Profiled ``Lock`` and ``RLock``: drop-in replacements for ``_thread.lock`` and ``_thread.RLock``, in C.

Each type owns a ``PyThread_type_lock`` exactly as the originals do, so the
unprofiled path is the same work plus one decrement: a process-wide countdown
(drawn from a geometric distribution, Poisson sampling) decides which acquire is
sampled, with no Python call and no clock read for the others. A sampled acquire
reads the clock around the wait and records ``lock-acquire`` and
``lock-acquire-wait``; its release records ``lock-release`` and
``lock-release-hold``. Every recorded value is multiplied by the mean gap, so
sums estimate the totals over all operations.
"""

cimport cython
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from cpython.ref cimport PyObject

import sys as _sys
import threading as _threading
import types as _types

from profiler_core import thread_names
from profiler_core import trace_context as _trace_context_module
from profiler_core.threads import PROFILER_THREADS
from profiler_core.events import (
    LOCK_NAME,
    THREAD_ID,
    THREAD_NAME,
    task_labels,
    thread_labels,
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
    int PyCode_Addr2Line(PyCodeObject* co, int byte_offset)
    void Py_INCREF_frame "Py_INCREF" (PyFrameObject* o)
    void Py_DECREF_frame "Py_DECREF" (PyFrameObject* o)
    void Py_DECREF_code "Py_DECREF" (PyCodeObject* o)
    object PyLong_FromVoidPtr(void* p)

cdef extern from "pythread.h":
    ctypedef void* PyThread_type_lock
    ctypedef enum PyLockStatus:
        PY_LOCK_FAILURE
        PY_LOCK_ACQUIRED
        PY_LOCK_INTR
    PyThread_type_lock PyThread_allocate_lock()
    void PyThread_free_lock(PyThread_type_lock lock)
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock lock, long long microseconds, int intr_flag) nogil
    void PyThread_release_lock(PyThread_type_lock lock) nogil
    unsigned long PyThread_get_thread_ident()
    unsigned long PyThread_get_thread_native_id()
    long long PY_TIMEOUT_MAX
    ctypedef struct PyThreadState
    PyThreadState* PyThreadState_Get()
    unsigned long long PyThreadState_GetID(PyThreadState* tstate)

cdef extern from *:
    """
    #include <time.h>
    #if PY_VERSION_HEX >= 0x030B0000
    static int prof_lock_lasti(PyFrameObject *f) { return PyFrame_GetLasti(f); }
    #else
    #include "frameobject.h"
    /* 3.10 counts instructions, not bytes */
    static int prof_lock_lasti(PyFrameObject *f) { return f->f_lasti * (int)sizeof(_Py_CODEUNIT); }
    #endif

    static PyObject *prof_code_filename(PyCodeObject *co) { return co->co_filename; }

    static long long prof_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }

    /* What _thread's acquire_timed does: try without releasing the GIL, then wait
       with it released; a signal interrupts the wait, its Python handler runs, and
       an exception from the handler (KeyboardInterrupt) ends the acquire.
       timeout_us: -1 forever, 0 do not block, else microseconds. */
    static PyLockStatus prof_acquire_timed(PyThread_type_lock lock, long long timeout_us) {
        PyLockStatus r = PyThread_acquire_lock_timed(lock, 0, 0);
        if (r == PY_LOCK_ACQUIRED || timeout_us == 0) return r;
        long long deadline = timeout_us > 0 ? prof_now_ns() / 1000 + timeout_us : 0;
        for (;;) {
            Py_BEGIN_ALLOW_THREADS
            r = PyThread_acquire_lock_timed(lock, timeout_us, 1);
            Py_END_ALLOW_THREADS
            if (r != PY_LOCK_INTR) return r;
            if (Py_MakePendingCalls() < 0) return PY_LOCK_INTR;
            if (timeout_us > 0) {
                timeout_us = deadline - prof_now_ns() / 1000;
                if (timeout_us <= 0) return PyThread_acquire_lock_timed(lock, 0, 0);
            }
        }
    }
    """
    int prof_lock_lasti(PyFrameObject* f)
    PyObject* prof_code_filename(PyCodeObject* co)  # borrowed
    long long prof_now_ns()
    PyLockStatus prof_acquire_timed(PyThread_type_lock lock, long long timeout_us)

cdef extern from "<math.h>":
    double log(double x)
    double ceil(double x)

cdef bint _HAS_QUALNAME = _sys.version_info >= (3, 11)
cdef Py_ssize_t _NEVER = (<Py_ssize_t>1) << 62

# Acquires left until the next sampled one; touched only with the GIL held.
cdef Py_ssize_t _countdown = _NEVER
cdef Sampler _sampler = None
# Frames of these files are never a lock's creation site or name: the lock was made for the caller.
cdef frozenset _skip_files = frozenset([_threading.__file__])


cdef inline bint _sample_this() noexcept:
    global _countdown
    _countdown -= 1
    return _countdown <= 0


cdef inline Sampler _take_sample():
    """After the countdown ran out: the sampler to record into (None: sampling is off), next gap drawn."""
    global _countdown
    cdef Sampler sampler = _sampler
    if sampler is None:
        _countdown = _NEVER
        return None
    _countdown = sampler.next_gap()
    return sampler


cdef long long _timeout_us(object blocking, object timeout) except -2:
    cdef double seconds
    cdef double us
    if not blocking:
        if timeout is not None and timeout == -1:
            return 0
        raise ValueError("can't specify a timeout for a non-blocking call")
    if type(timeout) is int and timeout == -1:
        return -1
    if not isinstance(timeout, (int, float)):
        raise TypeError("'%s' object cannot be interpreted as an integer" % type(timeout).__name__)
    seconds = timeout
    if seconds == -1:
        return -1
    if seconds < 0:
        raise ValueError("timeout value must be positive")
    us = ceil(seconds * 1e6)
    if us > <double>PY_TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")
    return <long long>us


cdef int _wait(PyThread_type_lock lock, long long timeout_us) except -1:
    """1 acquired, 0 timed out or would block; -1 with an exception from a signal handler."""
    cdef PyLockStatus r = prof_acquire_timed(lock, timeout_us)
    if r == PY_LOCK_INTR:
        return -1
    return 1 if r == PY_LOCK_ACQUIRED else 0


cdef class _Site:
    """Where a lock was created and, once found, the name it is bound to."""

    cdef object code
    cdef int lasti
    cdef object name

    cdef str lock_name(self, object lock) noexcept:
        """The lock's label, computed once; never raises into the lock's caller."""
        if self.name is None:
            try:
                self.name = _describe(self.code, self.lasti, lock)
            except BaseException:
                self.name = "<unknown>:0"
        return self.name


cdef _Site _creation_site():
    cdef _Site site = _Site.__new__(_Site)
    cdef PyFrameObject* f = PyEval_GetFrame()
    cdef PyFrameObject* back
    cdef PyCodeObject* code
    if f == NULL:
        return site
    Py_INCREF_frame(f)
    while f != NULL:
        code = PyFrame_GetCode(f)
        if <object>prof_code_filename(code) not in _skip_files:
            site.code = <object>code
            site.lasti = prof_lock_lasti(f)
            Py_DECREF_code(code)
            Py_DECREF_frame(f)
            return site
        Py_DECREF_code(code)
        back = PyFrame_GetBack(f)
        Py_DECREF_frame(f)
        f = back
    return site


def creation_site():
    """The creation site of a lock made now by the calling code (threading's own frames skipped)."""
    return _creation_site()


cdef str _describe(object code, int lasti, object lock):
    """``file:line`` of the creation site, then ``:name`` when a variable near the use holds ``lock``."""
    if code is None:
        where = "<unknown>:0"
    else:
        filename = code.co_filename
        # no negative indexing in this module: it is compiled with wraparound off
        where = "%s:%d" % (filename[filename.rfind("/") + 1 :], PyCode_Addr2Line(<PyCodeObject*>code, lasti))
    try:
        name = _bound_name(lock)
    except Exception:  # a frame whose locals cannot be read: the creation site alone
        name = None
    return where if name is None else "%s:%s" % (where, name)


cdef bint _holds(object value, object lock, int depth):
    # Whether `value` is `lock`, or an object whose attributes hold it within `depth` steps: a
    # Condition holds its lock (`_lock`), a Semaphore its Condition, a queue its mutex. Only plain
    # instance dictionaries are read (no properties run, no modules or classes searched).
    if value is lock:
        return True
    if depth <= 0 or issubclass(type(value), (type, _ModuleType)):
        return False
    try:
        # the generic lookup: no __getattr__ or __getattribute__ of the program's runs here
        attrs = _generic_getattribute(value, "__dict__")
    except Exception:
        return False
    if type(attrs) is not dict:
        return False
    for inner in (<dict>attrs).values():
        if _holds(inner, lock, depth - 1):
            return True
    return False


cdef object _name_in(object namespace, object lock, int depth):
    # `namespace`: a dict, or 3.13's frame-locals proxy (PEP 667), which is no dict
    for key, value in list(namespace.items()):
        if _holds(value, lock, depth):
            return key
    return None


cdef object _bound_name(object lock):
    # The variable near the use that holds the lock, or the Condition, Semaphore or queue made
    # around it (ddtrace's ``locks.py:17:cond``): the first frames that are not threading's own.
    try:
        frame = _sys._getframe(0)
    except ValueError:
        return None
    frames = []
    while frame is not None and len(frames) < 3:
        if frame.f_code.co_filename not in _skip_files:
            frames.append(frame)
        frame = frame.f_back
    for depth in (0, 2):  # the lock itself first, in any of the frames; then what holds it
        for frame in frames:
            local_vars = frame.f_locals
            found = _name_in(local_vars, lock, depth)
            if found is not None:
                return found
            owner = local_vars.get("self")
            attrs = getattr(owner, "__dict__", None) if owner is not None else None
            if type(attrs) is dict:
                found = _name_in(<dict>attrs, lock, depth)
                if found is not None:
                    return found
            found = _name_in(frame.f_globals, lock, depth)
            if found is not None:
                return found
    return None


cdef class _Entry:
    """Sums for one (stack, labels) between two drains: each sampled event once."""

    cdef tuple stack
    cdef list codes  # the stack's code objects: the key hashes their addresses, which stay theirs
    cdef object task_ref  # a weak reference to the key's asyncio task (None: none): a task made
    # after one that ended often gets its address. (Threads are keyed by their thread state's id,
    # never reused, where an ident often is.)
    cdef tuple labels
    cdef long long acquires
    cdef long long wait_ns
    cdef long long releases
    cdef long long hold_ns

    cdef bint owned_by(self, task):
        """Whether this entry is ``task``'s, not that of one which ended before it."""
        return _refers_to(self.task_ref, task)


cdef object _NOT_CHECKED = object()  # the reference kept for an object that has no weak references


cdef object _weak_ref(object o):
    if o is None:
        return None
    try:
        return _weakref(o)
    except TypeError:
        return _NOT_CHECKED


cdef inline bint _refers_to(object ref, object o):
    if ref is None:
        return o is None
    if ref is _NOT_CHECKED:
        return True
    return o is not None and ref() is o


# The frame cache: code address -> (weak reference to the code, {offset: Frame}). Weak, so that a
# program compiling code as it runs (templates, exec) does not have each code object kept alive by
# the cache (2.3 KB apiece in benchmarks/workloads/new_code.py); the reference tells a reused
# address apart. Beyond this many codes the cache starts again.
cdef Py_ssize_t MAX_CODES = 2048
from _weakref import ref as _weakref

# Distinct (stack, thread, lock) sums kept between two drains; beyond, events go to the recorder directly.
MAX_ENTRIES = 4096
# Sampled events kept one by one with their moment between two drains, for the timeline; beyond,
# they are summed as without it.
cdef Py_ssize_t _MAX_TIMED_EVENTS = 8192
MAX_TIMED_EVENTS = _MAX_TIMED_EVENTS


cdef struct _TimedEvent:
    PyObject* entry  # borrowed: the entries dict of its period holds it until that period's drain
    long long when
    long long duration
    unsigned char acquire
cdef unsigned long long _MIX = 0x100000001B3ULL
cdef dict _modules = _sys.modules
cdef object _ModuleType = _types.ModuleType
cdef object _generic_getattribute = object.__getattribute__
cdef dict _profiler_threads = PROFILER_THREADS  # the profiler's own threads: their locks are not the program's
# 3.14 keeps the running task in the thread state, not in asyncio.tasks._current_tasks.
cdef bint _CURRENT_TASK_IN_THREAD = _sys.version_info >= (3, 14)


cdef object _trace_context = _trace_context_module
cdef dict _thread_span_links = _trace_context_module._thread_links
cdef dict _task_span_links = _trace_context_module._task_links


cdef tuple _span_now(object task):
    # The trace span labels of a sample taken now in this thread (running `task`, if any), read
    # from trace_context's links with dict, attribute and list lookups only: no bytecode runs.
    cdef object history = None
    cdef list labels_list = None
    if not _trace_context.active:
        return ()
    if task is not None:
        history = _task_span_links.get(id(task))
        if history is not None:
            labels_list = <list>history.labels
    if not labels_list:
        history = _thread_span_links.get(PyThread_get_thread_ident())
        if history is None:
            return ()
        labels_list = <list>history.labels
        if not labels_list:
            return ()
    labels = labels_list[len(labels_list) - 1]  # the latest (this module does not wrap negative indexes)
    return <tuple>labels if labels is not None else ()


cdef object _running_task():
    # The asyncio task running in this thread, if any; only C functions and dict lookups (no
    # bytecode runs, so the GIL stays here), and asyncio is never imported from here.
    events = _modules.get("asyncio.events")
    tasks = _modules.get("asyncio.tasks")
    if events is None or tasks is None:
        return None
    loop = events._get_running_loop()
    if loop is None:
        return None
    if _CURRENT_TASK_IN_THREAD:
        return tasks.current_task(loop)
    current = getattr(tasks, "_current_tasks", None)
    return current.get(loop) if current else None


cdef class Sampler:
    """Records sampled lock events, each counted once, as ddtrace does (the collector records the
    rate, 1 / ``interval``, in the profile, for estimates).

    Events are summed here, keyed by a hash of the code objects and offsets of the
    stack, the thread and the lock name, so a repeated event costs a stack walk
    and a dictionary lookup; :meth:`drain` pushes the sums into the recorder
    (the collector calls it before every flush).
    """

    cdef object push
    cdef dict codes
    cdef dict threads
    cdef dict entries
    cdef int max_frames
    cdef double log_scale
    cdef public double interval
    cdef long long weight
    cdef unsigned long long rng
    cdef public long long errors
    # The timeline: the period's sampled events, each with its moment, in a C array so that keeping
    # one allocates no Python object; NULL with the timeline off (see enable_timeline).
    cdef _TimedEvent* events
    cdef Py_ssize_t ev_count

    def __dealloc__(self):
        PyMem_RawFree(self.events)

    def enable_timeline(self):
        """Keep each sampled event with its moment (pushed so at the drain), up to MAX_TIMED_EVENTS a period."""
        if self.events == NULL:
            self.events = <_TimedEvent*>PyMem_RawMalloc(_MAX_TIMED_EVENTS * sizeof(_TimedEvent))
            if self.events == NULL:
                raise MemoryError()
        self.ev_count = 0

    @property
    def timeline(self):
        """Whether each sampled event is kept with its moment (see enable_timeline)."""
        return self.events != NULL

    def __init__(self, push, double interval, int max_frames, unsigned long long seed):
        self.push = push
        self.codes = {}
        self.threads = {}
        self.entries = {}
        self.max_frames = max_frames if max_frames > 0 else 1
        self.rng = seed | 1
        self.errors = 0
        self.interval = interval if interval > 1 else 1.0
        self.weight = 1  # a sampled event counts once; see sampling_rates()
        self.log_scale = 1.0 / log(1.0 - 1.0 / self.interval) if self.interval > 1 else 0.0

    cpdef Py_ssize_t next_gap(self):
        """Acquires until the next sample: geometric with mean ``interval``."""
        cdef double u
        if self.interval <= 1:
            return 1
        self.rng ^= self.rng << 13
        self.rng ^= self.rng >> 7
        self.rng ^= self.rng << 17
        u = ((self.rng >> 11) + 1) * (1.0 / 9007199254740993.0)  # in (0, 1]
        return max(<Py_ssize_t>1, <Py_ssize_t>ceil(log(u) * self.log_scale))

    cdef void record(self, bint acquire, str lock_name, long long duration_ns, int skip) noexcept:
        """Add one acquire (wait) or release (hold) event; never raises into the lock's caller.

        A sampled acquire records while holding the lock, so the common case (a
        stack, thread and lock seen before in this period) runs no Python code: no
        bytecode runs, so the GIL cannot pass to a thread that would then queue
        on the lock. The key uses the thread state's id, not the name: a renamed
        thread keeps its old name until the next drain.
        """
        cdef _Entry entry
        cdef unsigned long long key
        try:
            if PyThread_get_thread_ident() in _profiler_threads:
                return
            if duration_ns < 0:
                duration_ns = 0
            task = _running_task()
            span = _span_now(task)
            key = self._stack_hash(skip) ^ (<unsigned long long>hash(lock_name) * _MIX) ^ (
                PyThreadState_GetID(PyThreadState_Get()) * _MIX * _MIX
            ) ^ (<unsigned long long>id(task) * _MIX * _MIX * _MIX) ^ (
                (<unsigned long long><long long>(<tuple>span[0])[1] if span else 0) * _MIX * _MIX * _MIX * _MIX)
            found = self._owned_entry(&key, task)
            if found is None:
                entry = _Entry.__new__(_Entry)
                entry.codes = []
                entry.stack = self._stack(skip, entry.codes)
                entry.task_ref = _weak_ref(task)
                entry.labels = self._thread_labels() + ((LOCK_NAME, lock_name),)
                if task is not None:
                    entry.labels = entry.labels + task_labels(task)
                if span:
                    entry.labels = entry.labels + span
                # Building the entry ran Python code: another thread may have added the key meanwhile.
                found = self._owned_entry(&key, task)
                if found is None:
                    if len(self.entries) >= MAX_ENTRIES:
                        self._push_event(entry, acquire, duration_ns, prof_now_ns() if self.events != NULL else 0)
                        return
                    self.entries[key] = entry
                else:
                    entry = <_Entry>found
            else:
                entry = <_Entry>found
            # From the lookup on, no Python code runs, so no drain can come between lookup and sum.
            if self.events != NULL and self.ev_count < _MAX_TIMED_EVENTS:
                self.events[self.ev_count].entry = <PyObject*>entry
                self.events[self.ev_count].when = prof_now_ns()
                self.events[self.ev_count].duration = duration_ns
                self.events[self.ev_count].acquire = acquire
                self.ev_count += 1
                return
            self._add_to_sums(entry, acquire, duration_ns)
        except BaseException:
            self.errors += 1

    cdef object _owned_entry(self, unsigned long long* key, task):
        # The entry of `key` for this task, or None; `key` is moved on past entries of tasks that
        # ended and left their address to this one. No Python code runs.
        found = self.entries.get(key[0])
        while found is not None and not (<_Entry>found).owned_by(task):
            key[0] = (key[0] + 1) * _MIX
            found = self.entries.get(key[0])
        return found

    cdef inline void _add_to_sums(self, _Entry entry, bint acquire, long long duration_ns) noexcept:
        if acquire:
            entry.acquires += self.weight
            entry.wait_ns += duration_ns * self.weight
        else:
            entry.releases += self.weight
            entry.hold_ns += duration_ns * self.weight

    cdef void _push_event(self, _Entry entry, bint acquire, long long duration_ns, long long when) except *:
        # One event on its own: with its moment `when` (monotonic ns), or without one when 0.
        if acquire:
            values = {"lock-acquire": self.weight, "lock-acquire-wait": duration_ns * self.weight}
        else:
            values = {"lock-release": self.weight, "lock-release-hold": duration_ns * self.weight}
        if when:
            self.push(entry.stack, entry.labels, values, when)
        else:
            self.push(entry.stack, entry.labels, values)

    def discard(self):
        """Forget what was gathered and the threads' labels: in a forked child they are the parent's."""
        self.entries = {}
        self.threads = {}
        self.ev_count = 0

    def drain(self):
        """Push what was gathered since the last drain into the recorder: each event kept with its
        moment (the timeline), then the sums; the number of pushes.

        The period's entries and events are taken over with no Python code in between, so events
        recorded meanwhile (other threads run while this pushes) go to the next period's, and two
        drains at once each push their own."""
        cdef _Entry entry
        cdef Py_ssize_t i, n
        cdef _TimedEvent* taken = NULL
        cdef _TimedEvent* fresh = NULL
        new_entries = {}
        if self.events != NULL:
            fresh = <_TimedEvent*>PyMem_RawMalloc(_MAX_TIMED_EVENTS * sizeof(_TimedEvent))
            if fresh == NULL:  # no room for the next period's events: these are summed instead
                for i in range(self.ev_count):
                    self._add_to_sums(<_Entry>self.events[i].entry, self.events[i].acquire, self.events[i].duration)
                self.ev_count = 0
        # From here to the end of the swap, no Python code runs (nothing allocated nor freed).
        entries = self.entries
        self.entries = new_entries
        n = self.ev_count
        if fresh != NULL:
            taken = self.events
            self.events = fresh
        self.ev_count = 0
        try:
            for i in range(n):
                # the entry is alive: `entries` holds it
                self._push_event(<_Entry>taken[i].entry, taken[i].acquire, taken[i].duration, taken[i].when)
        finally:
            PyMem_RawFree(taken)
        pushed = n
        for found in entries.values():
            entry = <_Entry>found
            values = {}
            if entry.acquires:
                values["lock-acquire"] = entry.acquires
                values["lock-acquire-wait"] = entry.wait_ns
            if entry.releases:
                values["lock-release"] = entry.releases
                values["lock-release-hold"] = entry.hold_ns
            if values:
                self.push(entry.stack, entry.labels, values)
                pushed += 1
        return pushed

    cdef tuple _thread_labels(self):
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
        return (<tuple>cached)[1]

    cdef unsigned long long _stack_hash(self, int skip):
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
            if skip > 0:
                skip -= 1
            else:
                if depth < <unsigned long long>self.max_frames:
                    code = PyFrame_GetCode(f)
                    h = (h ^ <unsigned long long><size_t>code) * _MIX
                    h = (h ^ <unsigned long long>prof_lock_lasti(f)) * _MIX
                    Py_DECREF_code(code)
                depth += 1
            back = PyFrame_GetBack(f)
            Py_DECREF_frame(f)
            f = back
        return (h ^ depth) * _MIX

    cdef tuple _stack(self, int skip, list codes_out):
        # The Frames of the caller's stack; its code objects are appended to ``codes_out``.
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
                if skip > 0:
                    skip -= 1
                else:
                    if depth < self.max_frames:
                        code = PyFrame_GetCode(f)
                        co_ref = <object>code  # owned from here: no reference is lost if what follows raises
                        Py_DECREF_code(code)
                        key = PyLong_FromVoidPtr(<void*>code)
                        entry = self.codes.get(key)
                        if entry is None or (<tuple>entry)[0]() is not co_ref:
                            entry = self.codes[key] = (_weakref(co_ref), {})
                        codes_out.append(co_ref)
                        lasti = prof_lock_lasti(f)
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


def arm(Sampler sampler, skip_files=()):
    """Start sampling acquires into ``sampler`` (None: stop). ``skip_files`` adds library files whose frames
    are never a creation site (e.g. ``queue.py``: a queue's lock is named after the code making the queue)."""
    global _sampler, _countdown, _skip_files
    _skip_files = frozenset([_threading.__file__]) | frozenset(skip_files)
    _sampler = sampler
    _countdown = sampler.next_gap() if sampler is not None else _NEVER


def take_sample():
    """For locks written in Python (asyncio): count one acquire; whether it is to be sampled."""
    return _sample_this() and _take_sample() is not None


def now_ns():
    """The monotonic clock the lock types use, in nanoseconds."""
    return prof_now_ns()


def record(bint acquire, _Site site, lock, long long duration_ns, int skip=0):
    """For locks written in Python: record an acquire (wait) or release (hold) of ``lock``, skipping
    ``skip`` frames (the lock's own) from the top of the stack."""
    cdef Sampler sampler = _sampler
    if sampler is not None:
        sampler.record(acquire, site.lock_name(lock), duration_ns, skip)


cdef inline int _wait_maybe_timed(PyThread_type_lock lock, long long timeout_us, Sampler sampler,
                                  long long* start) except -1:
    """Acquire for ``Lock``/``RLock``: unsampled, a try without the clock first; sampled, the clock read
    into ``start`` before the wait. 1 acquired, 0 not, -1 an exception from a signal handler."""
    if sampler is None:
        if PyThread_acquire_lock_timed(lock, 0, 0) == PY_LOCK_ACQUIRED:
            return 1
        return _wait(lock, timeout_us)
    start[0] = prof_now_ns()
    return _wait(lock, timeout_us)


cdef inline long long _acquired(Sampler sampler, _Site site, object lock, long long start) noexcept:
    """After a successful acquire: record its wait when sampled; when its hold starts (0: not sampled)."""
    if sampler is None:
        return 0
    sampler.record(True, site.lock_name(lock), prof_now_ns() - start, 0)
    return prof_now_ns()


cdef void _released(_Site site, object lock, long long held_ns) noexcept:
    """Record the hold of a lock whose acquire was sampled, into the sampler armed now (if any)."""
    cdef Sampler sampler = _sampler
    if sampler is not None:
        sampler.record(False, site.lock_name(lock), held_ns, 0)


@cython.final
cdef class Lock:
    """``threading.Lock`` with sampled acquire-wait and hold profiling; same semantics as ``_thread.lock``."""

    cdef PyThread_type_lock _lock
    cdef bint _locked
    cdef long long _acquired_at  # 0 unless the acquire that holds the lock was sampled
    cdef _Site _site
    cdef object __weakref__

    def __cinit__(self):
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError("cannot allocate lock")
        self._site = _creation_site()

    def __dealloc__(self):
        if self._lock != NULL:
            if self._locked:
                PyThread_release_lock(self._lock)
            PyThread_free_lock(self._lock)

    cdef int _acquire(self, long long timeout_us) except -1:
        cdef Sampler sampler = _take_sample() if _sample_this() else None
        cdef long long start = 0
        cdef int got = _wait_maybe_timed(self._lock, timeout_us, sampler, &start)
        if got == 1:
            self._locked = True
            self._acquired_at = _acquired(sampler, self._site, self, start)
        return got

    cdef int _release(self) except -1:
        cdef long long held_since = self._acquired_at
        if not self._locked:
            raise RuntimeError("release unlocked lock")
        cdef long long now = prof_now_ns() if held_since else 0
        self._acquired_at = 0
        self._locked = False
        PyThread_release_lock(self._lock)
        if held_since:
            _released(self._site, self, now - held_since)
        return 0

    def acquire(self, blocking=True, timeout=-1):
        """Acquire the lock, blocking or not, with an optional timeout in seconds; whether it was acquired."""
        return self._acquire(_timeout_us(blocking, timeout)) == 1

    def release(self):
        """Release the lock (any thread may); RuntimeError if it is not locked."""
        self._release()

    def locked(self):
        """Whether the lock is held."""
        return self._locked

    def __enter__(self):
        return self._acquire(-1) == 1

    def __exit__(self, exc_type=None, exc=None, tb=None):
        self._release()

    acquire_lock = acquire
    release_lock = release
    locked_lock = locked

    def _at_fork_reinit(self):
        """After fork in the child: a fresh, unlocked lock (the parent's may be held by a thread that is gone)."""
        cdef PyThread_type_lock fresh = PyThread_allocate_lock()
        if fresh == NULL:
            raise MemoryError("cannot allocate lock")
        # The old lock is leaked on purpose, as CPython does: freeing a lock that may be held is undefined.
        self._lock = fresh
        self._locked = False
        self._acquired_at = 0

    def __repr__(self):
        return "<%s %s.%s object at %#x>" % (
            "locked" if self._locked else "unlocked", type(self).__module__, type(self).__qualname__, id(self)
        )

    def __reduce__(self):
        raise TypeError("cannot pickle '%s.%s' object" % (type(self).__module__, type(self).__qualname__))


cdef class RLock:
    """``threading.RLock`` with sampled profiling of its outermost acquire and release; same semantics as
    ``_thread.RLock``, including the ``_is_owned``/``_release_save``/``_acquire_restore`` that Condition uses."""

    cdef PyThread_type_lock _lock
    cdef unsigned long _owner
    cdef unsigned long long _count
    cdef long long _acquired_at
    cdef _Site _site
    cdef object __weakref__

    def __cinit__(self, *args, **kwargs):
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError("cannot allocate lock")
        self._site = _creation_site()

    def __dealloc__(self):
        if self._lock != NULL:
            if self._count:
                PyThread_release_lock(self._lock)
            PyThread_free_lock(self._lock)

    cdef int _acquire(self, long long timeout_us) except -1:
        cdef unsigned long me = PyThread_get_thread_ident()
        if self._count and self._owner == me:
            if self._count == <unsigned long long>0xFFFFFFFFFFFFFFFF:
                raise OverflowError("Internal lock count overflowed")
            self._count += 1
            return 1
        cdef Sampler sampler = _take_sample() if _sample_this() else None
        cdef long long start = 0
        cdef int got = _wait_maybe_timed(self._lock, timeout_us, sampler, &start)
        if got == 1:
            self._owner = me
            self._count = 1
            self._acquired_at = _acquired(sampler, self._site, self, start)
        return got

    cdef int _release_all(self) except -1:
        """Drop ownership completely and release, recording the hold if its acquire was sampled."""
        cdef long long held_since = self._acquired_at
        cdef long long now = prof_now_ns() if held_since else 0
        self._acquired_at = 0
        self._owner = 0
        self._count = 0
        PyThread_release_lock(self._lock)
        if held_since:
            _released(self._site, self, now - held_since)
        return 0

    cdef int _release(self) except -1:
        if self._count == 0 or self._owner != PyThread_get_thread_ident():
            raise RuntimeError("cannot release un-acquired lock")
        if self._count > 1:
            self._count -= 1
            return 0
        return self._release_all()

    def acquire(self, blocking=True, timeout=-1):
        """Acquire (again, if this thread holds it), blocking or not, with an optional timeout in seconds."""
        return self._acquire(_timeout_us(blocking, timeout)) == 1

    def release(self):
        """Release one level; RuntimeError if this thread does not hold the lock."""
        self._release()

    def __enter__(self):
        return self._acquire(-1) == 1

    def __exit__(self, exc_type=None, exc=None, tb=None):
        self._release()

    def locked(self):
        """Whether any thread holds the lock."""
        return self._count > 0

    def _is_owned(self):
        return self._count > 0 and self._owner == PyThread_get_thread_ident()

    def _recursion_count(self):
        return self._count if self._owner == PyThread_get_thread_ident() else 0

    def _release_save(self):
        if self._count == 0:
            raise RuntimeError("cannot release un-acquired lock")
        state = (self._count, self._owner)
        self._release_all()
        return state

    def _acquire_restore(self, state):
        count, owner = state
        self._acquire(-1)
        self._owner = owner
        self._count = count

    def _at_fork_reinit(self):
        """After fork in the child: a fresh, unowned lock."""
        cdef PyThread_type_lock fresh = PyThread_allocate_lock()
        if fresh == NULL:
            raise MemoryError("cannot allocate lock")
        self._lock = fresh  # the old one is leaked on purpose, as CPython does
        self._owner = 0
        self._count = 0
        self._acquired_at = 0

    def __repr__(self):
        return "<%s %s.%s object owner=%d count=%d at %#x>" % (
            "locked" if self._count else "unlocked",
            type(self).__module__,
            type(self).__qualname__,
            self._owner,
            self._count,
            id(self),
        )

    def __reduce__(self):
        raise TypeError("cannot pickle '%s.%s' object" % (type(self).__module__, type(self).__qualname__))
