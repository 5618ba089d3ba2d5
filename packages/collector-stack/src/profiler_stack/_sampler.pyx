# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native stack sampling: every Python thread's frames and CPU clock, at moments the threads do not choose.

Where the system allows it (Linux ``process_vm_readv`` on our own process), a
native capturing thread reads the stacks without the GIL (``_capture.h``,
``_stackread.h``: the interpreter's frame layouts for 3.10 to 3.14), and the
Python sampler thread turns captures into samples with the GIL. Elsewhere the
sampler reads the stacks itself with the GIL, through public C API only
(``PyFrame_GetBack``, ``PyFrame_GetCode``, ``PyFrame_GetLineNumber``).
"""

import sys
import threading
import types

from profiler_core.events import Frame, omitted_frames_marker
from profiler_core.events import thread_labels as labels_of_thread
from profiler_core import thread_names
from profiler_core import trace_context as _trace_context
from profiler_core.events import TASK_ID as _TASK_ID
from profiler_stack._linetable import line_of as _line_of
from profiler_core.threads import OWN_WORK, OWN_WORK_SPANS, PROFILER_THREADS, in_own_work

cdef extern from "Python.h":
    ctypedef struct PyFrameObject
    ctypedef struct PyCodeObject
    PyFrameObject* PyFrame_GetBack(PyFrameObject* frame)
    PyCodeObject* PyFrame_GetCode(PyFrameObject* frame)
    int PyFrame_GetLineNumber(PyFrameObject* frame)
    int PyGC_Disable()
    int PyGC_Enable()
    void Py_INCREF(object o)
    void Py_DECREF_frame "Py_DECREF" (PyFrameObject* o)
    void Py_DECREF_code "Py_DECREF" (PyCodeObject* o)
    object PyLong_FromVoidPtr(void* p)
    unsigned long PyThread_get_thread_native_id()
    bytes PyBytes_FromStringAndSize(char* v, Py_ssize_t n)
    ctypedef struct PyObject
    int PyDict_Next(object d, Py_ssize_t* pos, PyObject** key, PyObject** value)
    Py_ssize_t Py_REFCNT(PyObject* o)

cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030B0000
    static int profiler_frame_lasti(PyFrameObject *f) { return PyFrame_GetLasti(f); }
    #else
    #include "frameobject.h"
    static int profiler_frame_lasti(PyFrameObject *f) { return f->f_lasti; }
    #endif
    """
    int profiler_frame_lasti(PyFrameObject* f)

cdef extern from "<time.h>" nogil:
    ctypedef int clockid_t
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(clockid_t clk, timespec* ts)
    int nanosleep(const timespec* req, timespec* rem)
    clockid_t CLOCK_MONOTONIC
    clockid_t CLOCK_THREAD_CPUTIME_ID

cdef extern from "<stdlib.h>" nogil:
    void* malloc(size_t n)
    void free(void* p)

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    ctypedef struct pthread_condattr_t:
        pass
    int pthread_getcpuclockid(pthread_t thread, clockid_t* clk)
    int pthread_mutex_init(pthread_mutex_t* m, void* attr)
    int pthread_mutex_lock(pthread_mutex_t* m)
    int pthread_mutex_unlock(pthread_mutex_t* m)
    int pthread_condattr_init(pthread_condattr_t* a)
    int pthread_condattr_setclock(pthread_condattr_t* a, clockid_t clk)
    int pthread_cond_init(pthread_cond_t* c, pthread_condattr_t* a)
    int pthread_cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const timespec* t)
    int pthread_cond_signal(pthread_cond_t* c)

cdef extern from "_capture.h":
    ctypedef struct prof_st_frame:
        void* code
        int lasti
        int name
    ctypedef struct prof_cn_key:
        void* code
        void* name
        void* file
        void* lines
        int firstlineno
        int name_len
        int file_len
        Py_ssize_t name_hash
        Py_ssize_t file_hash
    ctypedef struct prof_cn_record:
        prof_cn_key key
        int has_text
        int name_kind
        int file_kind
        int name_len
        int file_len
        int lines_len
        char* name_text
        char* file_text
        unsigned char* lines_text
    ctypedef struct prof_cap_target:
        unsigned long ident
        unsigned long native_id
    ctypedef struct prof_cap_thread:
        unsigned long ident
        unsigned long native_id
        long long cpu
        int idle
        int gone
        int torn
        int nframes
        int depth
        prof_st_frame* frames
        void** gens
        int ngens
    ctypedef struct prof_capture:
        long long when
        long long weight
        int nthreads
        prof_cap_thread* threads
        prof_cn_record* names
        int nnames
    ctypedef struct prof_cap_state:
        long long cost_ns
        long long dropped
        long long torn_reads
        long long probe_ns
        long long idle_threshold_ns
        int batch
        long long republished
        int names_reset
    ctypedef struct PyInterpreterState
    ctypedef struct PyThreadState
    int PROF_CAP_QUEUE
    int prof_st_init()
    int prof_st_walk_made_up(void* previous, void* code, int check)
    int PROF_ST_GENS
    void* prof_st_current_gen_key()
    prof_cap_state* prof_cap_new()
    int prof_cap_start(prof_cap_state* s) nogil
    void prof_cap_stop(prof_cap_state* s) nogil
    void prof_cap_join(prof_cap_state* s) nogil
    void prof_cap_request_stop(prof_cap_state* s) nogil
    void prof_cap_reset(prof_cap_state* s)
    int prof_cap_wait(prof_cap_state* s, prof_capture** out) nogil
    void prof_cap_publish(prof_cap_state* s, prof_cap_target* targets, int n, int max_frames, long long interval_ns,
                          PyInterpreterState* interp, PyThreadState* head, unsigned long head_ident) nogil
    void prof_cap_free(prof_capture* c) nogil
    prof_capture* prof_cap_take_now(prof_cap_state* s, long long* cost_ns) nogil
    int prof_cap_hold(prof_cap_state* s, void** codes, int n)
    void prof_cap_forget_codes(prof_cap_state* s)
    void prof_cap_resend_names(prof_cap_state* s)
    int prof_cap_list_threads(PyInterpreterState* interp, prof_cap_target* out, int max, PyThreadState** head,
                              unsigned long* head_ident)
    PyInterpreterState* PyInterpreterState_Get()
    int PyCode_Addr2Line(PyCodeObject* co, int byte_offset)


cdef object _current_frames = sys._current_frames
cdef object _FunctionType = types.FunctionType
cdef object _ModuleType = types.ModuleType
# The class namespace without calling anything a metaclass may define.
cdef object _class_dict = type.__dict__["__dict__"].__get__
cdef bint _HAS_QUALNAME = sys.version_info >= (3, 11)

cdef str THREAD_ID = "thread id"
cdef str THREAD_NATIVE_ID = "thread native id"
cdef str THREAD_NAME = "thread name"
cdef str PROFILER_THREAD_PREFIX = "profiler-"
cdef dict _profiler_threads = PROFILER_THREADS  # the profiler's own threads (not in threading._active)
cdef dict _own_work_spans = OWN_WORK_SPANS  # when program threads did the profiler's work
# A frame whose code object could not be proven alive when the capture was turned into a sample.
UNKNOWN_FRAME = Frame("<unknown>", "<unknown>", 0)


# In a forked child, the thread that called fork() under its kernel id: threading's
# Thread.native_id still holds the parent's there on 3.10 (where the thread state has none).
cdef dict _forked_native_ids = {}


def note_fork_in_child() -> None:
    """Record the kernel thread id of the thread that survived fork(), for its labels."""
    _forked_native_ids.clear()
    _forked_native_ids[threading.get_ident()] = PyThread_get_thread_native_id()


cdef object _native_id_of(object thread, object ident):
    # The OS thread id of threading's `thread` (ident `ident`), 0 when not known. Asked once per
    # thread and capture: threading's own field, not the native_id property that returns it.
    native_id = _forked_native_ids.get(ident) if _forked_native_ids else None
    if native_id is None and thread is not None:
        native_id = getattr(thread, "_native_id", None)
    return 0 if native_id is None else native_id


cdef inline bint _is_profiler_thread(object ident):
    # One of the profiler's own threads; a program's thread doing the profiler's work for a
    # moment (OWN_WORK) is not: only its captures of that moment are left out (in_own_work).
    return _profiler_threads.get(ident, OWN_WORK) is not OWN_WORK


cdef tuple _gen_keys(prof_cap_thread* t):
    # Where the capture saw the stack's outermost coroutine frames, outermost first.
    cdef int n = t.ngens if t.ngens < PROF_ST_GENS else PROF_ST_GENS, i
    return tuple([<size_t>t.gens[(t.ngens - 1 - i) % PROF_ST_GENS] for i in range(n)])


cdef object _main_thread_if(unsigned long native_id):
    # threading's main thread when it runs as OS thread `native_id`, else None.
    main = threading.main_thread()
    return main if getattr(main, "native_id", None) == native_id else None


cdef inline long long _clock_ns(clockid_t clk) noexcept nogil:
    cdef timespec ts
    if clock_gettime(clk, &ts) != 0:
        return -1
    return <long long>ts.tv_sec * 1000000000LL + ts.tv_nsec


cdef inline unsigned long long _xorshift(unsigned long long* state) noexcept nogil:
    cdef unsigned long long x = state[0]
    x ^= x << 13
    x ^= x >> 7
    x ^= x << 17
    state[0] = x
    return x


cdef inline void _sleep_ns(long long ns) noexcept nogil:
    cdef timespec req
    req.tv_sec = ns // 1000000000
    req.tv_nsec = ns % 1000000000
    nanosleep(&req, NULL)


cdef inline double _next_interval(long long cost_ns, double pct, double lo, double hi) noexcept nogil:
    cdef double wanted = (cost_ns / 1e9) / (pct / 100.0)
    if wanted < lo:
        return lo
    if wanted > hi:
        return hi
    return wanted


cdef inline long long _cpu_before_move(long long cpu, bint blocked_before, bint blocked_after) noexcept:
    # The part of `cpu` a thread used in its old stack, when it moved to a new one at an unknown
    # moment between two samples: none if it was blocked at the first (it woke, then ran in the new
    # one), all if blocked at the second (it ran, then blocked in the new one), else half.
    if blocked_before and not blocked_after:
        return 0
    if blocked_after and not blocked_before:
        return cpu
    return cpu // 2


def can_read_without_gil():
    """Whether this process may read its threads' stacks without the GIL (safe reads work here)."""
    return prof_st_init() == 1


def current_gen_key() -> int:
    """What a capture records for the calling frame when it is a coroutine's: see tasks.RunningTasks."""
    return <size_t>prof_st_current_gen_key()


def _walk_made_up_stack(size_t previous, code=None, bint check=False):
    """For tests: read a made-up one-frame stack whose caller link is the address ``previous`` (0:
    none), as a torn read may give, and whose code is ``code`` (a made-up address when None),
    checked to be a code object when ``check``; returns the frames kept (1), -2 for a torn stack
    (the link cannot be read, or the code is not a code object), or -3 where frames are not in
    chunks (3.10)."""
    return prof_st_walk_made_up(<void*>previous, <void*>code if code is not None else NULL, check)


def next_interval(long long tick_cost_ns, double max_time_usage_pct, double min_interval, double max_interval):
    """Interval keeping one tick of ``tick_cost_ns`` within ``max_time_usage_pct`` of wall time, clamped."""
    return _next_interval(tick_cost_ns, max_time_usage_pct, min_interval, max_interval)


cdef inline long long _monotonic_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <long long>ts.tv_sec * 1000000000LL + ts.tv_nsec



cdef tuple _span_labels(object ident, object task_labels, long long when):
    # The trace span labels of a sample of thread `ident`, running the asyncio task whose labels
    # (task id first) are `task_labels`, captured at `when` (CLOCK_MONOTONIC ns).
    task_id = None
    if task_labels and (<tuple>task_labels)[0][0] == _TASK_ID:
        task_id = (<tuple>task_labels)[0][1]
    return _trace_context.labels_at(ident, task_id, when)

cdef class _ThreadState:
    """Per (thread ident, native id): its CPU clock, last reading and cached labels."""
    cdef clockid_t clock
    cdef bint has_clock
    cdef long long last_cpu
    cdef long long cpu_at_wakeup  # CPU clock when the sampler's timer fired, before it had the GIL; -1 unknown
    cdef long long cpu_at_wakeup_prev  # the same, kept through the sample for the held-back decision
    cdef long long cpu_at_sample  # CPU clock at the previous sample; -1 unknown
    cdef long long last_sample_ns  # monotonic time of the previous sample; 0 unknown
    cdef bint idle_at_last_sample  # used no CPU just after the previous sample: it was blocked then
    cdef unsigned long long seen_tick
    cdef tuple last_stack
    # A sample whose attribution waits for the next tick (see _push_pending).
    cdef tuple pending
    # GIL-free mode: the previous capture's CPU delta and probe, and CPU time whose split between
    # two stacks waits for the next capture (see _take_capture).
    cdef long long delta_last
    cdef bint probe_last
    cdef tuple cpu_pending
    cdef long long cpu_pending_when  # the moment of the capture that left cpu_pending (the timeline)
    cdef long long wall_carried  # wall time of captures whose stack could not be read, for the next
    cdef object name
    cdef tuple labels
    cdef tuple last_labels  # GIL-free mode: push_labels of the previous capture
    cdef tuple last_span  # GIL-free mode: the trace span labels of the previous capture
    cdef tuple push_labels  # labels plus those of the greenlet or asyncio task running in the thread, if any


# Module namespaces remembered as looked at for code to hold, at most (then looked at again).
cdef Py_ssize_t MAX_SCANNED_NAMESPACES = 4096


cdef class _CodeInfo:
    """What a code object contributes to a frame, and the Frame tuples already made for it by instruction offset."""
    cdef object code  # a strong reference keeps id(code) from being reused while cached
    cdef str filename
    cdef str name
    cdef str class_name
    cdef dict frames
    cdef Py_ssize_t nbytes  # bytecode size: offsets read from a running thread are checked against it


cdef class _CopiedCode:
    """What the capturing thread copied of a code object the sampler does not hold, and the Frame
    tuples made of it by instruction offset."""
    cdef str filename
    cdef str name
    cdef str class_name
    cdef int firstlineno
    cdef bytes lines
    cdef dict frames

    cdef object frame(self, int lasti):
        fr = self.frames.get(lasti)
        if fr is None:
            line = _line_of(self.lines, self.firstlineno, lasti)
            fr = Frame(self.filename, self.name, line if line >= 0 else self.firstlineno, self.class_name)
            if len(self.frames) < 4096:
                self.frames[lasti] = fr
        return fr


cdef str _decoded(char* text, int size, int kind):
    # Characters copied from a str: ASCII (kind 0) or 1, 2, 4 bytes each.
    data = PyBytes_FromStringAndSize(text, size)
    if kind == 0:
        return data.decode("ascii", "replace")
    if kind == 1:
        return data.decode("latin-1")
    return data.decode("utf-16-le" if kind == 2 else "utf-32-le", "surrogatepass")


cdef tuple _record_key(prof_cn_record* r):
    # The identity of a described code object's text (see prof_cn_key).
    return (PyLong_FromVoidPtr(<void*>r.key.code), PyLong_FromVoidPtr(<void*>r.key.name),
            PyLong_FromVoidPtr(<void*>r.key.file), PyLong_FromVoidPtr(<void*>r.key.lines), r.key.firstlineno,
            r.key.name_len, r.key.name_hash, r.key.file_len, r.key.file_hash)


cdef _CopiedCode _copied_code(prof_cn_record* r):
    # A code object's description (with its text) made into what frames are named from.
    cdef _CopiedCode made = _CopiedCode()
    name = _decoded(r.name_text, r.name_len, r.name_kind)
    made.filename = _decoded(r.file_text, r.file_len, r.file_kind)
    made.name = name
    made.class_name = _class_from_qualname(name) if _HAS_QUALNAME else ""
    made.firstlineno = r.key.firstlineno
    made.lines = PyBytes_FromStringAndSize(<char*>r.lines_text, r.lines_len)
    made.frames = {}
    return made


cdef str _class_from_qualname(str qualname):
    cdef list parts = qualname.split(".")
    if len(parts) < 2:
        return ""
    owner = parts[len(parts) - 2]
    if owner == "<locals>":
        return ""
    return owner


cdef class StackSampler:
    """Samples every Python thread and pushes each sample to ``push(stack, labels, values)``.

    For each thread: ``wall-time``, ``wall-samples``, ``cpu-time`` (growth of the
    thread's own CPU clock, never negative) and ``cpu-samples``; labels ``thread
    id``, ``thread native id``, ``thread name``; the stack leaf first, at most
    ``max_frames`` frames with an omitted-frames marker. Threads named
    ``profiler-*`` and idents in ``ignored`` are skipped when ``ignore_profiler``.

    Reading stacks needs the GIL, and when the sampler gets it depends on what the
    threads do: it comes back at once when a thread blocks (``time.sleep``, I/O),
    late when threads compute. So :meth:`run` samples at random moments of fixed
    strata and reads every thread's CPU clock at that moment, before waiting for
    the GIL. A sample stands for that moment: a thread that used no CPU meanwhile
    is where it was; one whose stack changed is held back one tick, until its CPU
    clock has told whether it then blocked, and its time is split between its old
    and new stacks as the clocks make most likely (see ``_push_pending``).
    """

    cdef object push
    cdef dict threads
    cdef dict codes
    cdef Py_ssize_t max_frames
    cdef Py_ssize_t max_codes
    cdef long long last_wall
    cdef long long stratum_start
    cdef unsigned long long rng
    cdef list wake_states
    cdef clockid_t* wake_clocks
    cdef long long* wake_readings
    cdef long long* sample_cpu  # each thread's CPU clock at the last sample
    cdef char* idle_after  # whether it then used no CPU for a moment after the sampler let go of the GIL
    cdef long long wake_span
    cdef long long wake_target
    cdef long long wake_time
    cdef Py_ssize_t wake_n
    cdef Py_ssize_t wake_capacity
    cdef public double interval
    cdef double interval_min, interval_max, usage_pct  # run()'s bounds, for _follow_cost
    cdef public long long errors
    cdef long long last_cost
    cdef double cost_average  # per-capture CPU cost (with the GIL: time it was held), smoothed from 0 (ns)
    cdef long long scan_ns  # CPU spent holding code objects of stacks and modules in this batch
    cdef unsigned long long tick
    cdef bint ignore_profiler
    cdef bint stop_requested
    cdef pthread_mutex_t stop_mutex  # with stop_cond: wakes the sleeping sampler at once on stop
    cdef pthread_cond_t stop_cond
    cdef public set ignored
    cdef public bint timeline  # push each sample with the moment of its capture (CLOCK_MONOTONIC ns)
    cdef long long push_when  # the moment of the capture whose waiting tasks task_hook pushes
    cdef public object task_hook  # called as task_hook(push, wall_ns, {ident: thread labels}, max_frames)
    cdef public dict running_task_labels  # {ident: labels of the task running in that thread} (greenlets)
    # asyncio: running_task_of(addresses of a captured stack's outermost coroutine frames) -> task
    # labels (GIL-free mode); current_task_labels() -> {ident: labels of the task it runs now}
    cdef public object running_task_of
    cdef public object current_task_labels
    cdef public long long ran_threshold_ns
    cdef public long long blocked_threshold_ns
    cdef prof_cap_state* cap  # the capturing thread's state (GIL-free mode)
    cdef public bint gil_free  # asked for: read stacks without the GIL where the system allows it
    cdef public bint reading_without_gil  # what the running (or last) run() does
    cdef bint stacks_looked_at  # held_codes has the code on every stack since this batch began
    cdef dict held_codes  # code objects seen on stacks or in their modules, by address: held, so alive (bounded)
    cdef dict held_before  # held_codes before it was last cleared: captures taken then left their frames to it
    cdef Py_ssize_t held_after_sweep  # len(held_codes) after the last sweep (_let_go_of_dropped_codes)
    cdef Py_ssize_t sweep_step  # held code objects added since the last sweep that start another
    cdef public long long codes_let_go  # code objects the program had dropped, let go of by sweeps
    cdef set scanned_namespaces  # ids of module namespaces whose functions are in held_codes
    cdef dict raw_stacks  # captured frames (as bytes, with the depth) -> the stack tuple made of them
    cdef list held_unpublished  # held code objects the capturing thread is not told of yet
    cdef dict copied_codes  # code text copied by the capturing thread, by its key: for codes not held
    cdef dict copied_before  # copied_codes before it was last cleared: queued captures refer to its text
    cdef public long long named_from_copies  # frames named from text copied at capture time
    cdef public long long unknown_frames  # frames whose code could not be proven alive
    cdef public long long names_missed  # described frames whose text had been forgotten (sent again)
    cdef public long long torn_stacks  # thread captures given up: the stack changed under every read
    cdef public int capture_batch  # captures turned into samples per GIL acquisition
    cdef set published_threads  # (ident, native id) of the threads last published; None before the first
    cdef set fresh_threads  # published threads started since sampling began, not captured yet

    def __init__(self, push, int max_frames=64, bint ignore_profiler=True, Py_ssize_t max_codes=8192, Py_ssize_t sweep_step=512,
                 bint gil_free=True):
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        self.push = push
        self.max_frames = max_frames
        self.max_codes = max_codes
        self.sweep_step = max(sweep_step, 1)
        self.ignore_profiler = ignore_profiler
        self.ignored = set()
        self.task_hook = None
        self.timeline = False
        self.push_when = 0
        self.running_task_labels = {}
        self.running_task_of = None
        self.current_task_labels = None
        self.ran_threshold_ns = 50000
        self.wake_clocks = NULL
        self.wake_readings = NULL
        self.sample_cpu = NULL
        self.idle_after = NULL
        self.wake_n = 0
        self.wake_capacity = 0
        self.blocked_threshold_ns = 100000
        self.gil_free = gil_free
        self.reading_without_gil = False
        self.unknown_frames = 0
        self.names_missed = 0
        self.torn_stacks = 0
        self.capture_batch = 4
        self.cap = prof_cap_new()
        if self.cap == NULL:
            raise MemoryError()
        self.reset()

    def __dealloc__(self):
        if self.cap != NULL:
            prof_cap_reset(self.cap)  # frees queued captures; no capturing thread outlives run()
            free(self.cap)
        free(self.wake_clocks)
        free(self.wake_readings)
        free(self.sample_cpu)
        free(self.idle_after)

    def reset(self):
        """Forget every thread (after fork) and start the wall clock from now."""
        cdef pthread_condattr_t attr
        # (Re)initialized here, also in a forked child where another thread may have held them.
        pthread_mutex_init(&self.stop_mutex, NULL)
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&self.stop_cond, &attr)
        prof_cap_reset(self.cap)
        self.threads = {}
        self.published_threads = None
        self.fresh_threads = set()
        self.cost_average = 0
        self.codes = {}
        self.held_codes = {}
        self.held_before = {}
        self.held_after_sweep = 0
        self.codes_let_go = 0
        self.held_unpublished = []
        self.copied_codes = {}
        self.copied_before = {}
        self.named_from_copies = 0
        self.scanned_namespaces = set()
        self.raw_stacks = {}
        self.tick = 0
        self.stop_requested = False
        self.last_wall = _monotonic_ns()
        self.stratum_start = 0
        self.wake_states = []
        self.wake_n = 0
        self.rng = <unsigned long long>self.last_wall * 2654435761ULL + 1

    def request_stop(self):
        """Make a running :meth:`run` return at once; callable from any thread."""
        with nogil:
            pthread_mutex_lock(&self.stop_mutex)
            self.stop_requested = True
            pthread_cond_signal(&self.stop_cond)
            pthread_mutex_unlock(&self.stop_mutex)
            prof_cap_request_stop(self.cap)

    @property
    def dropped_captures(self):
        """Captures lost to a full queue or short memory (their wall time went to the next one)."""
        return self.cap.dropped

    @property
    def scanned_namespace_count(self):
        """Module namespaces whose functions were looked for (by id) since the last sweep or clearing."""
        return len(self.scanned_namespaces)

    @property
    def held_code_count(self):
        """Code objects held so that captured addresses can be named (at most ``max_codes``)."""
        return len(self.held_codes)

    @property
    def torn_reads(self):
        """Stack reads done again because a frame changed while it was read (without the GIL)."""
        return self.cap.torn_reads

    @property
    def republished(self):
        """Thread lists published early because a capture found the interpreter's list changed."""
        return self.cap.republished

    @property
    def ticks(self):
        """Captures turned into samples so far (a thread listed before a tick's capture is in it)."""
        return self.tick

    @property
    def known_threads(self):
        """Number of threads whose CPU clock is tracked (dead ones are pruned at each sample)."""
        return len(self.threads)

    def run(self, double min_interval, double max_interval, double max_time_usage_pct):
        """Sample every thread until :meth:`request_stop`; blocks, so call it from a dedicated thread.

        One sample is taken at a random moment of each interval-long stratum, so
        sample moments are independent of what the threads do; the GIL is taken
        once per sample and never held while sleeping. The interval adapts so that
        sampling costs at most ``max_time_usage_pct`` percent of wall time, within
        [min_interval, max_interval].
        """
        cdef long long deadline, now, span, lo
        cdef Py_ssize_t i
        if min_interval <= 0 or max_interval < min_interval or max_time_usage_pct <= 0:
            raise ValueError("invalid interval settings")
        self.interval = min_interval
        self.interval_min, self.interval_max, self.usage_pct = min_interval, max_interval, max_time_usage_pct
        # prof_st_init also takes this process's id: after a fork, the child's.
        self.reading_without_gil = self.gil_free and prof_st_init() == 1
        if self.reading_without_gil:
            self._run_without_gil(min_interval, max_interval, max_time_usage_pct)
            return
        self._prepare_wakeup()
        with nogil:
            while not self.stop_requested:
                span = <long long>(self.interval * 1e9)
                now = _monotonic_ns()
                if self.stratum_start == 0:
                    self.stratum_start = now
                # Sample the stratum we are in at a random moment of what is left of it (all of
                # it unless the previous sample ran late); strata that went by entirely are
                # covered by this sample. Sampling at once when late would instead tie the
                # moment to whatever made us late (a thread blocking, handing us the GIL).
                self.wake_target = self.stratum_start
                while self.wake_target + span <= now:
                    self.wake_target += span
                lo = now if now > self.wake_target else self.wake_target
                deadline = lo + <long long>(_xorshift(&self.rng) % <unsigned long long>(self.wake_target + span - lo))
                self._sleep_until(deadline)
                if self.stop_requested:
                    break
                self.wake_span = span
                self.wake_time = _monotonic_ns()
                # A dead thread's clock reads -1 (EINVAL): clocks are kernel thread ids, never freed memory.
                for i in range(self.wake_n):
                    self.wake_readings[i] = _clock_ns(self.wake_clocks[i]) if self.wake_clocks[i] != -1 else -1
                with gil:
                    self._take_wakeup_sample()
                # Which threads stay off the CPU once the sampler lets go of the GIL: those
                # were blocked at the sample, not merely waiting for the GIL.
                _sleep_ns(1000000)
                for i in range(self.wake_n):
                    if self.wake_clocks[i] != -1 and self.sample_cpu[i] >= 0:
                        self.idle_after[i] = _clock_ns(self.wake_clocks[i]) - self.sample_cpu[i] < self.blocked_threshold_ns
                if self.last_cost > 0:
                    # The cost is the time the GIL was held: one sample the system preempted in the
                    # middle (a loaded machine) set the interval to 0.4 s when it was followed alone,
                    # leaving a thread 3 samples in 0.6 s.
                    self._follow_cost()

    # -- GIL-free mode: a native thread captures, this thread turns captures into samples ----------

    cdef _run_without_gil(self, double min_interval, double max_interval, double max_time_usage_pct):
        cdef prof_capture* got[16]
        cdef int n = 0, i, taken
        self.cap.probe_ns = 1000000
        self.cap.idle_threshold_ns = self.blocked_threshold_ns
        self.cap.batch = self.capture_batch
        self._publish()
        if prof_cap_start(self.cap) != 0:
            raise OSError("cannot start the stack capturing thread")
        try:
            if self.stop_requested:
                prof_cap_request_stop(self.cap)
            while not self.stop_requested:
                with nogil:
                    n = prof_cap_wait(self.cap, got)
                if n == 0:
                    continue
                taken, n = n, 0  # _take_batch frees them
                self._take_batch(got, taken)
                self._publish()
            # What was captured before the stop is part of the profile too: up to a batch of
            # captures per thread (a batch's length of time, longer when the program kept the GIL).
            with nogil:
                prof_cap_join(self.cap)
                n = prof_cap_wait(self.cap, got)
            if n > 0:
                taken, n = n, 0
                self._take_batch(got, taken)
        finally:
            for i in range(n):
                prof_cap_free(got[i])
            with nogil:
                prof_cap_stop(self.cap)

    cdef _take_batch(self, prof_capture** got, int n):
        # Turns `n` captures into samples and frees them; then adapts the interval to their cost.
        cdef int i
        cdef long long began, cost
        cdef bint first = self.tick == 0
        # CPU, not elapsed time: the GIL may go to a busy thread in the middle of this.
        began = _clock_ns(CLOCK_THREAD_CPUTIME_ID)
        self.scan_ns = 0
        self.stacks_looked_at = False
        try:
            for i in range(n):
                try:
                    self._take_capture(got[i])
                except Exception:
                    self.errors += 1  # the batch's other captures are still taken
        finally:
            for i in range(n):
                prof_cap_free(got[i])
        # The interval follows the cost of a capture, without the one-off work of holding the
        # code objects of new modules (bounded by max_codes) or letting go of dropped ones,
        # smoothed, and grows at most 2x a batch: a fresh process's first batches cost 10-100x
        # the later ones, and following them would leave a short-lived worker with a few samples
        # 0.4 s apart. The very first batch names every frame already running for the first time
        # (1.7 ms a capture of 8 threads, 0.25 ms later): it is left out of the average.
        cost = (_clock_ns(CLOCK_THREAD_CPUTIME_ID) - began - self.scan_ns) // n + self.cap.cost_ns
        self.last_cost = max(cost, 1)
        if not first:
            self._follow_cost()

    cdef inline void _follow_cost(self) noexcept nogil:
        # The interval that keeps last_cost, smoothed, within the budget; growing at most 2x at once.
        self.cost_average = 0.75 * self.cost_average + 0.25 * self.last_cost
        self.interval = min(
            _next_interval(<long long>self.cost_average, self.usage_pct, self.interval_min, self.interval_max),
            max(2 * self.interval, self.interval_min))

    def capture_once(self):
        """Capture every thread now without the GIL, as the capturing thread does, then turn the
        capture into samples; returns the CPU nanoseconds of each step. For benchmarks."""
        cdef prof_capture* c
        cdef long long capture_ns = 0, began
        if prof_st_init() != 1:
            raise OSError("stacks cannot be read without the GIL here")
        self._publish()
        with nogil:
            c = prof_cap_take_now(self.cap, &capture_ns)
        if c == NULL:
            raise MemoryError()
        began = _clock_ns(CLOCK_THREAD_CPUTIME_ID)
        self.stacks_looked_at = False
        try:
            self._take_capture(c)
        finally:
            prof_cap_free(c)
        return capture_ns, _clock_ns(CLOCK_THREAD_CPUTIME_ID) - began

    cdef _publish(self):
        # With the GIL: every thread to capture, then the settings, for the capturing thread.
        cdef int room = 256, n, i, kept = 0
        cdef prof_cap_target* targets = NULL
        cdef PyInterpreterState* interp = PyInterpreterState_Get()
        cdef PyThreadState* head = NULL
        cdef unsigned long head_ident = 0
        while True:
            targets = <prof_cap_target*>malloc(room * sizeof(prof_cap_target))
            if targets == NULL:
                return
            n = prof_cap_list_threads(interp, targets, room, &head, &head_ident)
            if n < room:
                break
            free(targets)
            room *= 4
        active = threading._active
        for i in range(n):
            ident = targets[i].ident
            if ident in self.ignored or self.ignore_profiler and _is_profiler_thread(ident):
                continue
            thread = active.get(ident)
            if thread is not None:
                name = thread.name
                if self.ignore_profiler and name is not None and name.startswith(PROFILER_THREAD_PREFIX):
                    continue
                if targets[i].native_id == 0:
                    targets[i].native_id = _native_id_of(thread, ident)  # 3.10: not in the thread state
                if name is not None:
                    # Its captures are turned into samples later, maybe after it ended: keep its name.
                    thread_names.remember(ident, targets[i].native_id, name)
            targets[kept] = targets[i]
            kept += 1
        published = {(targets[i].ident, targets[i].native_id) for i in range(kept)}
        if self.published_threads is not None:
            self.fresh_threads |= published - self.published_threads
            self.fresh_threads &= published
        self.published_threads = published
        prof_cap_publish(self.cap, targets, kept, <int>self.max_frames, <long long>(self.interval * 1e9),
                         interp, head, head_ident)
        self._publish_held()

    cdef _publish_held(self):
        # The code objects held since the last publication, for the capturing thread to leave out
        # of the descriptions it copies (the sampler names their frames from the objects).
        cdef list pending = self.held_unpublished
        cdef Py_ssize_t n = len(pending), i
        cdef void** addrs
        if n == 0:
            return
        addrs = <void**>malloc(n * sizeof(void*))
        if addrs == NULL:
            return
        for i in range(n):
            addrs[i] = <void*>pending[i]
        prof_cap_hold(self.cap, addrs, <int>n)
        free(addrs)
        self.held_unpublished = []

    cdef _take_capture(self, prof_capture* c):
        # One capture's threads: wall time to the stack captured, CPU time since the previous
        # capture to the same stack; see _split_cpu for a thread whose stack changed.
        cdef int i
        cdef prof_cap_thread* t
        cdef _ThreadState state
        cdef long long wall = c.weight, wall_t, delta, thr = self.blocked_threshold_ns
        cdef bint blocked_prev
        cdef dict thread_labels = {}
        if c.nnames:
            self._take_names(c)
        self.tick += 1
        active = threading._active
        for i in range(c.nthreads):
            t = &c.threads[i]
            if t.native_id == 0:
                # 3.10 (no native id in the thread state): a thread published in its first moments,
                # before threading listed it, is known by now; one key and one label set for it.
                t.native_id = _native_id_of(active.get(t.ident), t.ident)
            if t.torn:
                # No stack this time: the thread keeps its state (its CPU time goes to the next
                # capture's stack, as the clock is read then) and the wall time is carried there.
                self.torn_stacks += 1
                state = <_ThreadState>self.threads.get((t.ident, t.native_id))
                if state is not None:
                    state.seen_tick = self.tick  # not pruned below
                    state.wall_carried += wall
                continue
            if t.gone or t.depth == 0:  # ended, or running no Python code (as sys._current_frames)
                continue
            ident = t.ident
            if self.ignore_profiler and _is_profiler_thread(ident):
                continue
            if self.ignore_profiler and ident in _own_work_spans and in_own_work(ident, c.when):
                continue  # captured while it did the profiler's own work
            thread = active.get(ident)
            if thread is not None and t.native_id and _native_id_of(thread, ident) not in (0, t.native_id):
                # Captured before it ended; a thread started since has its ident: the name is the
                # one remembered when the captured thread was published.
                thread = None
            if thread is None and t.native_id:
                thread = _main_thread_if(t.native_id)  # gevent keys it by its greenlet's id instead
            name = thread.name if thread is not None else None
            if self.ignore_profiler and name is not None and name.startswith(PROFILER_THREAD_PREFIX):
                continue
            key = (ident, t.native_id)
            state = <_ThreadState>self.threads.get(key)
            if state is None:
                state = _ThreadState()
                # A thread started since sampling began has its whole CPU clock to count (it starts
                # at 0 with the thread): its first capture may come a while after it started.
                if key in self.fresh_threads:
                    self.fresh_threads.discard(key)
                    state.last_cpu = 0
                else:
                    state.last_cpu = -1
                state.delta_last = -1
                self.threads[key] = state
            state.seen_tick = self.tick
            if name is None:
                name = state.name if state.name is not None else thread_names.name_of(ident, t.native_id)
            if state.labels is None or state.name != name:
                state.name = name
                state.labels = labels_of_thread(ident, t.native_id, name)
                if name is not None:
                    thread_names.remember(ident, t.native_id, name)
            state.push_labels = self._labels_for(ident, state.labels)
            extra = None
            if t.ngens and self.running_task_of is not None:
                extra = self.running_task_of(_gen_keys(t))
                if extra:
                    state.push_labels = state.push_labels + <tuple>extra
            span = ()
            if _trace_context.active:
                span = _span_labels(ident, extra, c.when)
                state.push_labels = state.push_labels + <tuple>span
            stack = self._resolve(t.frames, t.nframes, t.depth, c)
            wall_t = wall + state.wall_carried
            state.wall_carried = 0
            delta = 0
            if t.cpu >= 0:
                if state.last_cpu >= 0 and t.cpu > state.last_cpu:
                    delta = t.cpu - state.last_cpu
                if t.cpu > state.last_cpu:
                    state.last_cpu = t.cpu
            # Blocked at the previous capture: no CPU right after it, nor over one side of it.
            blocked_prev = state.probe_last and 0 <= state.delta_last < thr or state.probe_last and delta < thr
            if state.cpu_pending is not None:
                self._split_cpu(state, blocked_prev)
            previous = state.last_stack
            if delta and state.last_span is not None and span != state.last_span:
                # Another request (trace span) since the previous capture: the CPU goes to this one,
                # as ddtrace's does. Splitting it by where the thread blocked favours requests
                # longer than the interval: those in between, never captured, gave theirs to them.
                if state.cpu_pending is not None:
                    self._split_cpu(state, False)
                self._push_values(stack, state.push_labels, wall_t, delta, c.when)
            elif delta and previous is not None and (previous != stack or state.last_labels != state.push_labels):
                self._push_values(stack, state.push_labels, wall_t, 0, c.when)
                state.cpu_pending = (previous, stack, delta, blocked_prev, state.last_labels, state.push_labels)
                state.cpu_pending_when = c.when
                if not t.idle or delta < thr:  # blocked now or not is already known
                    self._split_cpu(state, t.idle)
            else:
                self._push_values(stack, state.push_labels, wall_t, delta, c.when)
            state.last_stack = stack
            state.last_labels = state.push_labels
            state.last_span = span
            state.delta_last = delta
            state.probe_last = t.idle
            thread_labels[ident] = state.labels
        if len(self.threads) > len(thread_labels):
            for v in self.threads.values():
                if (<_ThreadState>v).seen_tick != self.tick and (<_ThreadState>v).cpu_pending is not None:
                    self._split_cpu(<_ThreadState>v, False)
            self.threads = {k: v for k, v in self.threads.items() if (<_ThreadState>v).seen_tick == self.tick}
        if self.task_hook is not None:
            self.push_when = c.when
            self.task_hook(self._push_now if self.timeline else self.push, wall, thread_labels, self.max_frames)

    def _push_now(self, stack, labels, values):
        """Push a sample of the capture being turned into samples, with its moment (the timeline)."""
        return self.push(stack, labels, values, self.push_when)

    cdef inline _emit(self, tuple stack, tuple labels, dict values, long long when):
        # Every sample goes out here: with the timeline on, with the moment of its capture.
        if self.timeline:
            self.push(stack, labels, values, when)
        else:
            self.push(stack, labels, values)

    cdef inline tuple _labels_for(self, object ident, tuple labels):
        # A thread's labels, and the running greenlet's when greenlets are tracked.
        if self.running_task_labels:
            extra = self.running_task_labels.get(ident)
            if extra:
                return labels + <tuple>extra
        return labels

    cdef _split_cpu(self, _ThreadState state, bint blocked_now):
        # CPU time used between two captures by a thread whose stack changed in between goes where
        # the thread most likely ran: a thread blocked at the first capture (no CPU just after it
        # nor on one side of it: waiting for the GIL does not look like that) woke up and ran in the
        # new stack; one blocked at the second ran in the old one before blocking; otherwise, half
        # each. Whether it is blocked at the second capture may need the next one to tell.
        previous, stack, delta, blocked_prev, previous_labels, labels = state.cpu_pending
        state.cpu_pending = None
        cdef long long cpu = delta
        cdef long long cpu_prev = _cpu_before_move(cpu, blocked_prev, blocked_now)
        if cpu - cpu_prev:
            self._emit(stack, labels, {"cpu-time": cpu - cpu_prev}, state.cpu_pending_when)
        if cpu_prev:
            self._emit(previous, previous_labels, {"cpu-time": cpu_prev}, state.cpu_pending_when)

    cdef tuple _resolve(self, prof_st_frame* frames, int n, int depth, prof_capture* c):
        # Captured (code address, offset) pairs to Frames. An address is used only if it is a code
        # object this sampler holds (alive, so its address cannot have been reused): never a pointer
        # that may have been freed since the capture. Other frames are named from what the
        # capturing thread copied of their code objects at the capture.
        cdef list out = []
        cdef int i, kept, lasti
        cdef _CodeInfo info
        cdef _CopiedCode copied
        cdef long long began
        cdef bint unknown = False, from_copies = False
        if len(self.codes) > self.max_codes or len(self.raw_stacks) > self.max_codes:
            self.codes = {}
            self.raw_stacks = {}  # its stacks stand for code objects no longer held
        if len(self.held_codes) > self.held_after_sweep + self.sweep_step:
            began = _clock_ns(CLOCK_THREAD_CPUTIME_ID)
            try:
                self._let_go_of_dropped_codes()
            finally:  # one-off work, as holding codes is: not a capture's cost
                self.scan_ns += _clock_ns(CLOCK_THREAD_CPUTIME_ID) - began
        if len(self.scanned_namespaces) > MAX_SCANNED_NAMESPACES:
            # By id: a program making a namespace per request (exec) would grow it without end now
            # that sweeps, not clearings, keep held_codes small; scanning one again holds nothing new.
            self.scanned_namespaces = set()
        if len(self.held_codes) > self.max_codes:  # namespaces fill it up to half of that only
            # Captures already taken left out the frames of codes held until now (they name them
            # from these objects): the previous table is kept for them, one clearing long.
            self.held_before = self.held_codes
            self.held_codes = {}
            self.held_after_sweep = 0
            self.held_unpublished = []
            self.scanned_namespaces = set()
            self.stacks_looked_at = False
            self.copied_before = self.copied_codes
            self.copied_codes = {}
            prof_cap_forget_codes(self.cap)
        # A stack seen before costs one lookup. Its code addresses are those of code objects this
        # sampler holds, so the same bytes mean the same code.
        raw = PyBytes_FromStringAndSize(<char*>frames, n * sizeof(prof_st_frame)) + depth.to_bytes(4, "little")
        cached = self.raw_stacks.get(raw)
        if cached is not None:
            return <tuple>cached
        kept = n
        if depth > self.max_frames:
            kept = min(n, <int>self.max_frames - 1)
        for i in range(kept):
            if frames[i].name >= 0:
                # Not held when captured: what was copied then is what ran, even if the address
                # belongs to another code object by now. The code is held from the next batch on
                # if it is still on a stack (then the capturing thread no longer copies it).
                copied = self._copied(c, frames[i].name)
                if copied is not None:
                    self._hold_codes_on_stacks_once()
                    self.named_from_copies += 1
                    from_copies = True  # the address may be another code's later: not cached
                    out.append(copied.frame(frames[i].lasti))
                    continue
            elif frames[i].name != -1:
                # Its code was freed before it could be described, and read again it still was: the
                # address may be another code's by now.
                self.unknown_frames += 1
                unknown = True
                out.append(UNKNOWN_FRAME)
                continue
            key = PyLong_FromVoidPtr(frames[i].code)
            info = <_CodeInfo>self.codes.get(key)
            if info is None:
                code = self.held_codes.get(key)
                if code is None and self.held_before:
                    code = self.held_before.get(key)
                if code is None and self._hold_codes_on_stacks_once():
                    code = self.held_codes.get(key)
                if code is None:
                    self.unknown_frames += 1
                    unknown = True
                    out.append(UNKNOWN_FRAME)
                    continue
                info = self._code_info(code)
                self.codes[key] = info
            lasti = frames[i].lasti
            if lasti < 0 or lasti >= info.nbytes:
                lasti = 0  # torn read: the code is right, the line is not known
            fr = info.frames.get(lasti)
            if fr is None:
                line = PyCode_Addr2Line(<PyCodeObject*>info.code, lasti)
                fr = Frame(info.filename, info.name, line if line >= 0 else info.code.co_firstlineno, info.class_name)
                info.frames[lasti] = fr
            out.append(fr)
        if depth > kept and depth > self.max_frames:
            out.append(omitted_frames_marker(depth - kept))
        stack = tuple(out)
        if not unknown and not from_copies:
            self.raw_stacks[raw] = stack
        return stack

    cdef _let_go_of_dropped_codes(self):
        # A program that compiles code as it runs (templates, exec-made handlers) drops each code
        # object after use; held here, each would live on until the table is cleared (2.3 KB apiece
        # in benchmarks/workloads/new_code.py). Those only this sampler still refers to are let go.
        # A frame, a function or an enclosing code object refers to the others: those stay held.
        # Captures already taken may name a dropped one by its address: it stays in held_before,
        # one sweep long, as after a clearing; the capturing thread is told the held set anew.
        cdef PyObject* key
        cdef PyObject* value
        cdef Py_ssize_t pos = 0, ours
        cdef list dropped = []
        cdef _CodeInfo info
        while PyDict_Next(self.held_codes, &pos, &key, &value):
            ours = 1  # held_codes' reference
            info = self.codes.get(<object>key)
            if info is not None and info.code is <object>value:
                ours += 1
            if self.held_before.get(<object>key) is <object>value:
                ours += 1
            if Py_REFCNT(value) <= ours:
                dropped.append(<object>key)
        self.held_after_sweep = len(self.held_codes) - len(dropped)
        if not dropped:
            return
        let_go = {}
        for key_object in dropped:
            let_go[key_object] = self.held_codes.pop(key_object)
            self.codes.pop(key_object, None)
        self.codes_let_go += len(dropped)
        self.raw_stacks = {}  # its stacks may stand for the codes let go
        self.held_before = let_go
        self.held_unpublished = list(self.held_codes.values())
        prof_cap_forget_codes(self.cap)  # the capturing thread gets the held set at the next publication

    cdef _take_names(self, prof_capture* c):
        # Every code text a capture carries, kept before any of its threads is looked at: the
        # capturing thread sends a text once, so one left behind with a thread this sampler skips
        # (the profiler's own, one doing the profiler's work) would leave later frames unnamed.
        cdef int index
        cdef prof_cn_record* r
        if len(self.copied_codes) > self.max_codes:  # the one place it grows: bounded here
            self.copied_before = self.copied_codes  # queued captures still refer to its text
            self.copied_codes = {}
            prof_cap_resend_names(self.cap)
        for index in range(c.nnames):
            r = &c.names[index]
            if r.has_text:
                key = _record_key(r)
                if key not in self.copied_codes:
                    self.copied_codes[key] = _copied_code(r)

    cdef _CopiedCode _copied(self, prof_capture* c, int index):
        # The code described by the capture's record `index` (its text came with this capture or
        # an earlier one), or None.
        if index < 0 or c == NULL or index >= c.nnames:
            return None
        key = _record_key(&c.names[index])
        copied = self.copied_codes.get(key)
        if copied is None and self.copied_before:
            copied = self.copied_before.get(key)
            if copied is not None:
                self.copied_codes[key] = copied
        if copied is None:
            prof_cap_resend_names(self.cap)  # its text was forgotten here: sent again from now on
            self.names_missed += 1
            return None
        return <_CopiedCode>copied

    cdef bint _hold_codes_on_stacks_once(self):
        # Holds the code objects on stacks at most once a batch; whether it did so now.
        if self.stacks_looked_at:
            return False
        self.stacks_looked_at = True
        self._hold_codes_on_stacks()
        return True

    cdef _hold_codes_on_stacks(self):
        # Into held_codes (known from then on, even when no longer on a stack at the moment a later
        # capture naming them is resolved): code objects on some thread's stack now, and (once per
        # namespace) those of the functions and methods defined in, or imported into, the modules
        # these frames run in: a function that was the leaf of a capture has often returned by the
        # time it is resolved, and its caller's module usually names it.
        cdef dict held = self.held_codes
        cdef long long began = _clock_ns(CLOCK_THREAD_CPUTIME_ID)
        try:
            self._hold_codes_of_frames(held)
        finally:
            self.scan_ns += _clock_ns(CLOCK_THREAD_CPUTIME_ID) - began

    cdef _hold_codes_of_frames(self, dict held):
        for frame in _current_frames().values():
            while frame is not None:
                code = frame.f_code
                key = id(code)
                if key not in held:
                    held[key] = code
                    self.held_unpublished.append(code)
                namespace = frame.f_globals
                if type(namespace) is dict and id(namespace) not in self.scanned_namespaces:
                    self.scanned_namespaces.add(id(namespace))
                    try:
                        self._hold_functions_of(<dict>namespace, True)
                    except Exception:
                        self.errors += 1  # what was held stays correct: every entry is held
                frame = frame.f_back

    cdef _hold_functions_of(self, dict namespace, bint modules_too):
        # Into held_codes: the code of each function and class method in `namespace`, and of each
        # module's there (one level). Nothing here runs code of the program: only type checks and
        # the namespaces themselves are read.
        cdef dict held = self.held_codes
        for value in list(namespace.values()):
            if len(held) > self.max_codes // 2:
                return
            if type(value) is _FunctionType:
                self._hold_code(value.__code__)
            elif isinstance(value, type):
                try:
                    members = _class_dict(value)
                except Exception:
                    continue
                for member in list(members.values()):
                    if type(member) is staticmethod or type(member) is classmethod:
                        member = member.__func__
                    if type(member) is _FunctionType:
                        self._hold_code(member.__code__)
            elif modules_too and type(value) is _ModuleType:
                module_namespace = value.__dict__
                if type(module_namespace) is dict and id(module_namespace) not in self.scanned_namespaces:
                    self.scanned_namespaces.add(id(module_namespace))
                    self._hold_functions_of(<dict>module_namespace, False)

    cdef _hold_code(self, code):
        # A function's code and the code of the functions it defines (constants of it), held.
        key = id(code)
        if key not in self.held_codes:
            self.held_codes[key] = code
            self.held_unpublished.append(code)
        for const in code.co_consts:
            if type(const) is type(code):
                self._hold_code(const)

    cdef void _sleep_until(self, long long deadline) noexcept nogil:
        cdef timespec ts
        ts.tv_sec = deadline // 1000000000
        ts.tv_nsec = deadline % 1000000000
        pthread_mutex_lock(&self.stop_mutex)
        while not self.stop_requested and _monotonic_ns() < deadline:
            pthread_cond_timedwait(&self.stop_cond, &self.stop_mutex, &ts)
        pthread_mutex_unlock(&self.stop_mutex)

    cdef _prepare_wakeup(self):
        # With the GIL: the clocks to read at the next wakeup, without the GIL.
        cdef list states = list(self.threads.values())
        cdef Py_ssize_t n = len(states), i
        cdef _ThreadState state
        if n + 1 > self.wake_capacity:
            free(self.wake_clocks)
            free(self.wake_readings)
            free(self.sample_cpu)
            free(self.idle_after)
            self.wake_capacity = 0
            self.wake_n = 0
            self.wake_clocks = <clockid_t*>malloc((2 * n + 8) * sizeof(clockid_t))
            self.wake_readings = <long long*>malloc((2 * n + 8) * sizeof(long long))
            self.sample_cpu = <long long*>malloc((2 * n + 8) * sizeof(long long))
            self.idle_after = <char*>malloc((2 * n + 8) * sizeof(char))
            if self.wake_clocks == NULL or self.wake_readings == NULL or self.sample_cpu == NULL or self.idle_after == NULL:
                free(self.wake_clocks)
                free(self.wake_readings)
                free(self.sample_cpu)
                free(self.idle_after)
                self.wake_clocks = NULL
                self.wake_readings = NULL
                self.sample_cpu = NULL
                self.idle_after = NULL
                self.wake_states = []
                return
            self.wake_capacity = 2 * n + 8
        for i in range(n):
            state = <_ThreadState>states[i]
            self.wake_clocks[i] = state.clock if state.has_clock else -1
            self.sample_cpu[i] = state.cpu_at_sample if state.seen_tick == self.tick else -1
            self.idle_after[i] = 0
        self.wake_states = states
        self.wake_n = n

    cdef _take_wakeup_sample(self):
        # With the GIL, right after a wakeup.
        cdef Py_ssize_t i
        cdef long long began, next_start, weight, span = self.wake_span
        began = _monotonic_ns()
        try:
            states = self.wake_states
            for i in range(self.wake_n):
                (<_ThreadState>states[i]).cpu_at_wakeup = self.wake_readings[i]
                (<_ThreadState>states[i]).idle_at_last_sample = self.idle_after[i]
            # The sample stands for its stratum and the strata that went by before it.
            next_start = self.wake_target + span
            weight = next_start - self.stratum_start
            self.stratum_start = next_start
            self._sample(True, weight)
        except Exception:
            self.errors += 1
        finally:
            self._prepare_wakeup()
            self.last_cost = max(_monotonic_ns() - began, 1)

    def sample(self):
        """Sample all threads once, now; returns the number of thread samples pushed."""
        return self._sample(False, 0)

    cdef int _sample(self, bint have_wakeup, long long weight):
        # After a sleep, the sample stands for the moment the timer fired, not the moment the
        # GIL came back (which depends on what the threads do), and `weight` is its wall time.
        cdef long long now = _monotonic_ns()
        cdef long long wall = weight if have_wakeup else now - self.last_wall
        cdef long long cpu, delta
        cdef _ThreadState state
        cdef int gc_was_enabled
        cdef bint ran_while_waiting, was_blocked
        cdef list taken = []
        self.last_wall = now
        self.tick += 1
        active = threading._active
        frames = _current_frames()

        # Phase 1: CPU clocks. From sys._current_frames() until this loop ends no
        # Python code may run (the GC is off, nothing here calls back into Python),
        # so the GIL is never released: every thread in `frames` is still alive and
        # its pthread id is valid for pthread_getcpuclockid.
        gc_was_enabled = PyGC_Disable()
        try:
            for ident, frame in (<dict>frames).items():
                if ident in self.ignored or self.ignore_profiler and ident in _profiler_threads:
                    continue
                thread = active.get(ident)
                native_id = _native_id_of(thread, ident)
                key = (ident, native_id)
                state = <_ThreadState>self.threads.get(key)
                if state is None:
                    state = _ThreadState()
                    state.has_clock = pthread_getcpuclockid(<pthread_t>ident, &state.clock) == 0
                    state.last_cpu = -1
                    state.cpu_at_sample = -1
                    state.cpu_at_wakeup = -1
                    self.threads[key] = state
                delta = 0
                ran_while_waiting = False
                was_blocked = False
                cpu = _clock_ns(state.clock) if state.has_clock else -1
                if cpu >= 0:
                    if state.last_cpu >= 0 and cpu > state.last_cpu:
                        delta = cpu - state.last_cpu
                    if cpu > state.last_cpu:
                        state.last_cpu = cpu
                    if have_wakeup and state.cpu_at_wakeup >= 0:
                        ran_while_waiting = cpu - state.cpu_at_wakeup > self.ran_threshold_ns
                        if state.cpu_at_sample >= 0:
                            was_blocked = state.cpu_at_wakeup - state.cpu_at_sample < self.blocked_threshold_ns
                state.cpu_at_sample = cpu
                prev_idle = state.idle_at_last_sample
                state.idle_at_last_sample = False
                state.cpu_at_wakeup_prev = state.cpu_at_wakeup
                state.cpu_at_wakeup = -1
                state.seen_tick = self.tick
                taken.append((ident, native_id, thread, frame, state, delta, ran_while_waiting, was_blocked, prev_idle, cpu))
        finally:
            if gc_was_enabled:
                PyGC_Enable()

        # Phase 2: stacks and labels; Python code may run again from here on.
        if len(self.threads) > len(taken):
            for k, v in self.threads.items():
                if (<_ThreadState>v).seen_tick != self.tick:
                    self._push_pending(<_ThreadState>v, False)
            self.threads = {k: v for k, v in self.threads.items() if (<_ThreadState>v).seen_tick == self.tick}
        if len(self.codes) > self.max_codes:
            self.codes = {}
        cdef int pushed = 0
        task_labels_now = self.current_task_labels() if self.current_task_labels is not None else None
        for ident, native_id, thread, frame, state, delta, ran_while_waiting, was_blocked, prev_idle, cpu in taken:
            if state.pending is not None:
                # Used (almost) no CPU since it was held back: it had blocked.
                self._push_pending(state, state.cpu_at_wakeup_prev >= 0 and state.cpu_at_wakeup_prev - <long long>state.pending[4] < self.blocked_threshold_ns)
            name = thread.name if thread is not None else None
            if self.ignore_profiler and name is not None and name.startswith(PROFILER_THREAD_PREFIX):
                continue
            if name is None:
                name = state.name if state.name is not None else thread_names.name_of(ident, native_id)
            if state.labels is None or state.name != name:
                state.name = name
                state.labels = labels_of_thread(ident, native_id, name)
                if name is not None:
                    thread_names.remember(ident, native_id, name)
            state.push_labels = self._labels_for(ident, state.labels)
            extra = None
            if task_labels_now:
                extra = task_labels_now.get(ident)
                if extra:
                    state.push_labels = state.push_labels + <tuple>extra
            if _trace_context.active:
                state.push_labels = state.push_labels + _span_labels(ident, extra, now)
            stack = self._stack(frame)
            changed = state.last_stack is not None and state.last_stack != stack
            if changed:
                # Chance that it moved after the timer fired, were the moment uniform since
                # its previous sample.
                p_after = 0.5
                if have_wakeup and state.last_sample_ns and now > state.last_sample_ns:
                    p_after = min(max((now - self.wake_time) / <double>(now - state.last_sample_ns), 0.0), 1.0)
                state.pending = (
                    state.last_stack, stack, wall, delta, cpu, ran_while_waiting, was_blocked, prev_idle, p_after,
                )
            else:
                self._push_values(stack, state.push_labels, wall, delta, now)
            state.last_stack = stack
            state.last_sample_ns = now
            pushed += 1
        if self.task_hook is not None:
            thread_labels = {ident: (<_ThreadState>state).labels for ident, _n, _t, _f, state, _d, _r, _w, _p, _c in taken}
            self.push_when = now
            pushed += self.task_hook(self._push_now if self.timeline else self.push, wall, thread_labels, self.max_frames)
        return pushed

    cdef _push_values(self, tuple stack, tuple labels, long long wall, long long cpu, long long when):
        # cpu-samples counts every thread sample, as ddtrace's does (it equals wall-samples)
        if cpu:
            self._emit(stack, labels, {"wall-time": wall, "wall-samples": 1, "cpu-time": cpu, "cpu-samples": 1}, when)
        else:
            self._emit(stack, labels, {"wall-time": wall, "wall-samples": 1, "cpu-samples": 1}, when)

    cdef _push_pending(self, _ThreadState state, bint blocked):
        # The thread moved from `previous` to `stack` at an unknown moment of the period.
        # Its CPU clock tells where that moment most likely was. `prev_idle`: no CPU just
        # after the previous sample, so it was blocked in `previous`. `was_blocked`: no CPU from the
        # previous sample until the timer fired. `ran`: CPU between the timer and the
        # sample. `blocked`: no CPU from the sample until the next timer.
        pending = state.pending
        if pending is None:
            return
        state.pending = None
        previous, stack, wall, cpu, _clock, ran, was_blocked, prev_idle, p_after = pending
        labels = state.push_labels
        cdef long long wall_prev, cpu_prev
        # Wall time stands for the moment the timer fired (T). A thread that did not run
        # between T and the sample was then where it is now. One that ran but had used no CPU
        # from its previous sample to T was blocked until T: it was in `previous`. One that
        # was blocked at its previous sample and used CPU before T had woken: it was where it
        # is now. One that ran after T and then blocked, which is what handed the GIL to the
        # sampler, was still in the code before the block. Otherwise `previous` has the
        # chance that a uniform moment of the move fell after T.
        if not ran:
            wall_prev = 0
        elif was_blocked:
            wall_prev = wall
        elif prev_idle:
            wall_prev = 0
        elif blocked:
            wall_prev = wall
        else:
            wall_prev = <long long>(wall * <double>p_after)
        cpu_prev = _cpu_before_move(cpu, prev_idle, blocked)
        # The sample held back is the one of the thread's previous sample, at that moment.
        self._push_values(stack, labels, wall - wall_prev, cpu - cpu_prev, state.last_sample_ns)
        if wall_prev or cpu_prev:
            values = {"wall-time": wall_prev}
            if cpu_prev:
                values["cpu-time"] = cpu_prev
            self._emit(previous, labels, values, state.last_sample_ns)

    def flush_pending(self):
        """Push held-back samples and CPU time (at stop)."""
        for state in self.threads.values():
            self._push_pending(<_ThreadState>state, False)
            if (<_ThreadState>state).cpu_pending is not None:
                self._split_cpu(<_ThreadState>state, (<_ThreadState>state).probe_last)

    cdef tuple _stack(self, object frame):
        cdef list out = []
        cdef PyFrameObject* f = <PyFrameObject*>frame
        cdef PyFrameObject* back
        cdef PyCodeObject* code
        cdef Py_ssize_t depth = 0
        cdef _CodeInfo info
        cdef int lineno, lasti
        Py_INCREF(frame)
        while f != NULL:
            if depth < self.max_frames:
                code = PyFrame_GetCode(f)
                key = PyLong_FromVoidPtr(<void*>code)
                info = <_CodeInfo>self.codes.get(key)
                if info is None or <void*>info.code is not <void*>code:
                    info = self._code_info(<object>code)
                    self.codes[key] = info
                Py_DECREF_code(code)
                # By instruction offset: mapping it to a line scans the line table, so once per offset.
                lasti = profiler_frame_lasti(f)
                fr = info.frames.get(lasti)
                if fr is None:
                    lineno = PyFrame_GetLineNumber(f)
                    fr = Frame(info.filename, info.name, lineno, info.class_name)
                    info.frames[lasti] = fr
                out.append(fr)
            depth += 1
            back = PyFrame_GetBack(f)
            Py_DECREF_frame(f)
            f = back
        if depth > self.max_frames:
            kept = self.max_frames - 1
            del out[kept:]
            out.append(omitted_frames_marker(depth - kept))
        return tuple(out)

    cdef _CodeInfo _code_info(self, object code):
        cdef _CodeInfo info = _CodeInfo()
        info.code = code
        info.filename = code.co_filename
        if _HAS_QUALNAME:
            info.name = code.co_qualname
            info.class_name = _class_from_qualname(info.name)
        else:
            info.name = code.co_name
            info.class_name = ""
        info.frames = {}
        info.nbytes = len(code.co_code)
        return info
