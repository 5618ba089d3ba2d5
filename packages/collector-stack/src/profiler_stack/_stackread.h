/* Reading another thread's Python stack without the GIL.
 *
 * The thread being read keeps running, so nothing it points to may be trusted:
 * a frame may be popped and its memory reused or unmapped while we read it. Every
 * read therefore goes through process_vm_readv on our own process, which fails
 * with EFAULT instead of faulting, and what is read is only ever copied, never
 * followed as a Python object. A frame yields a code object's address and an
 * instruction offset; the caller turns them into names later, with the GIL, and
 * only for addresses it can prove are live code objects.
 */
#ifndef PROFILER_STACKREAD_H
#define PROFILER_STACKREAD_H

#include <Python.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#if PY_VERSION_HEX >= 0x030B0000
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#define PROF_ST_UNDEF_BUILD_CORE 1
#endif
#include "internal/pycore_frame.h"
#ifdef PROF_ST_UNDEF_BUILD_CORE
#undef Py_BUILD_CORE
#endif
#else
#include "frameobject.h"
#endif

/* A chain longer than this is taken to be a torn read (a cycle), and cut: above config.MAX_FRAMES_MAX,
   so that a stack of any depth kept whole is walked whole and an omitted-frames count is exact. */
#define PROF_ST_MAX_DEPTH 65536
/* prof_st_walk's result for a stack read while it changed (a frame's code is not a code object) */
#define PROF_ST_TORN (-2)
#define PROF_ST_CODE_CACHE 1024 /* power of two */
/* Coroutine frames kept per stack, the outermost ones: the running asyncio task's is among them. */
#define PROF_ST_GENS 4

typedef struct {
    void *code; /* address of the frame's code object, as read: unverified */
    int lasti;  /* byte offset of the instruction */
    int name;   /* index of the capture's description of the code (_codenames.h), or -1, or PROF_ST_GONE_CODE */
} prof_st_frame;

/* prof_st_frame.name of a frame whose code object was gone by the time it was to be described */
#define PROF_ST_GONE_CODE (-2)

static pid_t prof_st_pid = 0;

/* Addresses seen holding a code object, per reading thread: a direct-mapped cache, so a frame's
   code is checked with a system call only the first time its address is met. */
typedef struct {
    const void *addr[PROF_ST_CODE_CACHE];
} prof_st_code_cache;

static int prof_st_read(const void *addr, void *out, size_t n) {
    struct iovec local, remote;
    if (addr == NULL) return -1;
    local.iov_base = out;
    local.iov_len = n;
    remote.iov_base = (void *)addr;
    remote.iov_len = n;
    return process_vm_readv(prof_st_pid, &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* Whether `code` is the address of an object whose type is the code type. The thread being read
   moves on while its frames are copied, so a copy may mix two frames; such a frame's code word is
   then some other value, and this tells it apart. It proves nothing about the object being alive
   later: the sampler checks that with the GIL before using the address. */
static int prof_st_is_code(const void *code, prof_st_code_cache *cache) {
    size_t slot = ((uintptr_t)code >> 4) & (PROF_ST_CODE_CACHE - 1);
    const void *type = NULL;
    if (cache->addr[slot] == code) return 1;
    if (prof_st_read((const char *)code + offsetof(PyObject, ob_type), &type, sizeof(type)) != 0
        || type != (const void *)&PyCode_Type)
        return 0;
    cache->addr[slot] = code;
    return 1;
}

/* Whether safe reads work here (they need no privilege on our own process, but a seccomp
   policy may forbid the system call). Call with the GIL, at start and after fork. */
static int prof_st_init(void) {
    volatile uint64_t probe = 0x5eedf00dULL;
    uint64_t copy = 0;
    prof_st_pid = getpid();
    if (prof_st_read((const void *)&probe, &copy, sizeof(copy)) != 0) return 0;
    return copy == probe;
}

/* Reads the stack of the thread whose state is at `tstate` (taken with the GIL, possibly gone
   since), leaf first: at most `max` frames kept in `out`, `*depth` set to all frames seen.
   Returns the number kept, -1 when the state no longer belongs to thread `ident`, or PROF_ST_TORN
   when a frame's code is not a code object (checked where `codes` is given; worth reading again).
   `scratch` (`scratch_size` bytes) receives the thread's current data stack chunk in one read,
   where most of its frames live (3.11+): one system call instead of one per frame. */
/* `gens` (PROF_ST_GENS entries, a ring: the outermost last) receives where the stack's generator and
   coroutine frames are, `*ngens` how many there were: on 3.11+ the address of the frame, which lives
   at a fixed offset inside its generator object; on 3.10 the generator object's own address. Only
   ever compared with addresses of live objects, never followed. */
static int prof_st_walk(PyThreadState *tstate, unsigned long ident, prof_st_frame *out, int max, int *depth,
                        char *scratch, size_t scratch_size, prof_st_code_cache *codes, void **gens, int *ngens) {
    PyThreadState ts;
    int n = 0, d = 0, g = 0;
    *depth = 0;
    *ngens = 0;
    if (prof_st_read(tstate, &ts, sizeof(ts)) != 0 || ts.thread_id != ident) return -1;
#if PY_VERSION_HEX >= 0x030B0000
    _PyInterpreterFrame frame;
    const size_t head = offsetof(_PyInterpreterFrame, localsplus);
    const char *lo = (const char *)ts.datastack_chunk, *hi = (const char *)ts.datastack_top;
    int have_chunk = scratch != NULL && lo != NULL && hi > lo && (size_t)(hi - lo) <= scratch_size
                     && prof_st_read(lo, scratch, (size_t)(hi - lo)) == 0;
#if PY_VERSION_HEX >= 0x030D0000
    _PyInterpreterFrame *f = ts.current_frame;
#else
    _PyCFrame cframe;
    if (ts.cframe == NULL || prof_st_read(ts.cframe, &cframe, sizeof(cframe)) != 0) return 0;
    _PyInterpreterFrame *f = cframe.current_frame;
#endif
    while (f != NULL && d < PROF_ST_MAX_DEPTH) {
        const char *at = (const char *)f;
        /* compare distances, not `at + head <= hi`: a torn read may give any address, and
           one near the top of the address space would wrap around and pass */
        if (have_chunk && at >= lo && at < hi && (size_t)(hi - at) >= head)
            memcpy(&frame, scratch + (at - lo), head);
        else if (prof_st_read(f, &frame, head) != 0) {
            /* a frame that cannot be read under a link from a frame read before lay in a data
               stack chunk freed while the stack was walked (the thread returned from it): the
               frames kept so far are not all of this stack, read it again */
            if (d > 0) return PROF_ST_TORN;
            break;
        }
        f = frame.previous;
#if PY_VERSION_HEX >= 0x030E0000
        if (frame.owner >= FRAME_OWNED_BY_INTERPRETER) continue;
        void *code = (void *)PyStackRef_AsPyObjectBorrow(frame.f_executable);
#elif PY_VERSION_HEX >= 0x030D0000
        if (frame.owner == FRAME_OWNED_BY_CSTACK) continue;
        void *code = (void *)frame.f_executable;
#elif PY_VERSION_HEX >= 0x030C0000
        if (frame.owner == FRAME_OWNED_BY_CSTACK) continue;
        void *code = (void *)frame.f_code;
#else
        void *code = (void *)frame.f_code;
#endif
        if (code == NULL) continue;
        if (codes != NULL && !prof_st_is_code(code, codes)) return PROF_ST_TORN;
        if (frame.owner == FRAME_OWNED_BY_GENERATOR) gens[g++ % PROF_ST_GENS] = (void *)at;
        /* pointer arithmetic on the copy, spelled out: the code object itself is not read (the
           interpreter's own macro asserts that it is a code object, in a debug build) */
#if PY_VERSION_HEX >= 0x030D0000
        const char *instr = (const char *)frame.instr_ptr;
#else
        const char *instr = (const char *)frame.prev_instr;
#endif
        int lasti = (int)(instr - ((const char *)code + offsetof(PyCodeObject, co_code_adaptive)));
        if (n < max) {
            out[n].code = code;
            out[n].lasti = lasti < 0 ? 0 : lasti;
            out[n].name = -1;
            n++;
        }
        d++;
    }
#else
    (void)scratch;
    (void)scratch_size;
    PyFrameObject frame;
    PyFrameObject *f = ts.frame;
    while (f != NULL && d < PROF_ST_MAX_DEPTH) {
        /* a frame that cannot be read under a non-NULL link went away while read: read it again */
        if (prof_st_read(f, &frame, sizeof(frame)) != 0) { if (d > 0) return PROF_ST_TORN; break; }
        f = frame.f_back;
        if (frame.f_code == NULL) continue;
        if (codes != NULL && !prof_st_is_code(frame.f_code, codes)) return PROF_ST_TORN;
        if (frame.f_gen != NULL) gens[g++ % PROF_ST_GENS] = (void *)frame.f_gen;
        if (n < max) {
            out[n].code = (void *)frame.f_code;
            out[n].lasti = frame.f_lasti < 0 ? 0 : frame.f_lasti * (int)sizeof(_Py_CODEUNIT);
            out[n].name = -1;
            n++;
        }
        d++;
    }
#endif
    *depth = d;
    *ngens = g;
    return n;
}

/* With the GIL: what prof_st_walk would record in `gens` for the calling Python frame (a coroutine's
   frame when called from one), so that the offset of a frame inside its coroutine can be measured. */
static void *prof_st_current_gen_key(void) {
    PyThreadState *ts = PyThreadState_Get();
#if PY_VERSION_HEX >= 0x030D0000
    return (void *)ts->current_frame;
#elif PY_VERSION_HEX >= 0x030B0000
    return ts->cframe != NULL ? (void *)ts->cframe->current_frame : NULL;
#else
    return ts->frame != NULL ? (void *)ts->frame->f_gen : NULL;
#endif
}

/* For tests: walks a made-up thread of one frame whose link to its caller is `previous` (NULL, or
   an address no frame has, as a torn read may give), with that frame inside the data-stack chunk
   and `code` as its code (a made-up address, never read, when NULL). Code is checked when `check`.
   Returns what prof_st_walk returns (1: the frame kept, the stack ended; PROF_ST_TORN: the link
   cannot be read or `code` is no code object), or -3 where frames are not kept in chunks (3.10). */
static int prof_st_walk_made_up(void *previous, void *code, int check) {
#if PY_VERSION_HEX >= 0x030B0000
    static _Alignas(16) char chunk[1024];
    static char scratch[1024];
    static PyThreadState ts;
    _PyInterpreterFrame *frame = (_PyInterpreterFrame *)(chunk + 64);
    static prof_st_code_cache cache;
    prof_st_frame out[4];
    int depth = 0;
    void *executable = code != NULL ? (void *)code : (void *)chunk;
    memset(chunk, 0, sizeof(chunk));
    memset(&ts, 0, sizeof(ts));
    ts.thread_id = 42;
    ts.datastack_chunk = (struct _PyStackChunk *)chunk;
    ts.datastack_top = (PyObject **)(chunk + 512);
    frame->previous = (_PyInterpreterFrame *)previous;
    frame->owner = FRAME_OWNED_BY_THREAD;
#if PY_VERSION_HEX >= 0x030E0000
    frame->f_executable.bits = (uintptr_t)executable;
#elif PY_VERSION_HEX >= 0x030D0000
    frame->f_executable = (PyObject *)executable;
#else
    frame->f_code = (PyCodeObject *)executable;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    ts.current_frame = frame;
#else
    static _PyCFrame cframe;
    memset(&cframe, 0, sizeof(cframe));
    cframe.current_frame = frame;
    ts.cframe = &cframe;
#endif
    prof_st_pid = getpid();
    memset(&cache, 0, sizeof(cache));
    void *gens[PROF_ST_GENS];
    int ngens;
    return prof_st_walk(&ts, 42, out, 4, &depth, scratch, sizeof(scratch), check ? &cache : NULL, gens, &ngens);
#else
    (void)previous;
    (void)code;
    (void)check;
    return -3;
#endif
}

#endif /* PROFILER_STACKREAD_H */
