/* Allocator hooks for the memory collector: Poisson byte sampling, allocation events, live heap.
 *
 * Everything here runs inside CPython's object and mem allocators, which are
 * only ever called with the GIL held: the GIL is the lock for all the state
 * below, and nothing here may take another lock, allocate through Python,
 * run Python code, or drop a reference (a dealloc could run arbitrary code).
 * A sample stores the allocating thread's frames as (code object, offset)
 * pairs read from the interpreter's own frame list without creating frame
 * objects; references taken on code objects are released later, at drain
 * time, outside the allocator.
 */
#ifndef PROFILER_MEMHOOK_H
#define PROFILER_MEMHOOK_H

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "pythread.h"

#if PY_VERSION_HEX >= 0x030B0000
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#define PROF_MEM_UNDEF_BUILD_CORE 1
#endif
#include "internal/pycore_frame.h"
#ifdef PROF_MEM_UNDEF_BUILD_CORE
#undef Py_BUILD_CORE
#endif
#else
#include "frameobject.h"
#endif

#define PROF_MEM_MAX_FRAMES 128
#define PROF_MEM_FILTER_BITS (1 << 17)

typedef struct {
    PyObject *code; /* strong reference, released at drain time */
    int lasti;      /* byte offset of the instruction */
} prof_mem_frame;

/* One distinct stack (of one thread), shared by every sample taken there. */
typedef struct prof_mem_tb {
    struct prof_mem_tb *next_free; /* on the release list once nothing refers to it */
    int refs;                      /* the stack table, live heap entries, a drain in progress */
    int nframes;
    int depth;                     /* frames on the stack, nframes of them kept */
    unsigned long thread_id;
    unsigned long native_id;       /* the kernel's id of that thread (an ident can be reused) */
    uint64_t hash;
    double alloc_count;            /* estimated allocations here since the last drain */
    double alloc_bytes;            /* estimated bytes allocated here since the last drain */
    PyObject *key;                 /* (stack, labels) built at drain time; strong, released with the tb */
    prof_mem_frame frames[1];
} prof_mem_tb;

typedef struct {
    void *ptr;       /* NULL: empty slot */
    prof_mem_tb *tb;
    size_t size;
    double weight;   /* 1 / probability that an allocation of this size is sampled */
} prof_mem_slot;

typedef struct {
    PyMemAllocatorEx orig_obj;
    PyMemAllocatorEx orig_mem;
    int hooked_obj, hooked_mem;
    int enabled;          /* 0: the hooks only pass through (stopped, or not on top of the chain) */
    int track_allocs, track_heap;
    int busy;             /* re-entrancy guard: never sample inside our own sampling */
    unsigned long ignored_thread; /* the thread turning samples into profile data: not sampled */
    int max_frames;
    double mean;          /* mean bytes between samples */
    int64_t countdown;    /* bytes until the next sample (PROF_MEM_NEVER while stopped) */
    uint64_t rng;
    /* distinct stacks: open addressing on the stack hash, linear probing; emptied of unused
       stacks at each drain, so it is bounded by the stacks of one period plus the live heap's */
    prof_mem_tb **stacks;
    Py_ssize_t stacks_cap; /* power of two */
    Py_ssize_t nstacks, stacks_max;
    /* live sampled allocations: open addressing on the address, backward-shift deletion */
    prof_mem_slot *table;
    Py_ssize_t table_cap; /* power of two */
    Py_ssize_t live, live_cap;
    /* one bit per 16-byte slot holding a tracked address, modulo 2 MB: most frees are of untracked
       blocks, and this answers them from 16 kB of mostly cached lines, not from the 1 MB table */
    uint64_t filter[PROF_MEM_FILTER_BITS / 64];
    /* tracked addresses behind each bit (255: saturated, left set until the next rebuild), so a bit
       is cleared with its last block: pymalloc hands a freed block out again soon, and a bit left
       set would send each later free of that block to the table (measured: most of the free hook's
       time in an allocation-heavy loop went there); touched only when tracking changes */
    uint8_t filter_count[PROF_MEM_FILTER_BITS];
    /* traces nobody refers to any more, freed at drain time */
    prof_mem_tb *release_list;
    /* counted losses */
    Py_ssize_t dropped_events, dropped_heap, dropped_nomem;
    /* frees the filter sent to the table (tracked blocks, and aliases of tracked blocks) */
    Py_ssize_t table_lookups;
} prof_mem_state;

static prof_mem_state prof_mem = {0};

static inline double prof_mem_uniform(void) {
    uint64_t x = prof_mem.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    prof_mem.rng = x;
    return ((x >> 11) + 1) * (1.0 / 9007199254740993.0); /* (0, 1] */
}

static inline int64_t prof_mem_next_gap(void) {
    double gap = -log(prof_mem_uniform()) * prof_mem.mean;
    if (gap < 1.0) gap = 1.0;
    if (gap > 9.0e18) gap = 9.0e18;
    return (int64_t)gap;
}

/* -- reading the allocating thread's stack, without allocating ----------------------------- */

static int prof_mem_walk(prof_mem_frame *out, int max, int *depth) {
    int n = 0, d = 0;
#if PY_VERSION_HEX >= 0x030D0000
    PyThreadState *ts = PyThreadState_GetUnchecked();
#else
    PyThreadState *ts = _PyThreadState_UncheckedGet();
#endif
    if (ts == NULL) { *depth = 0; return 0; }
#if PY_VERSION_HEX >= 0x030B0000
#if PY_VERSION_HEX >= 0x030D0000
    _PyInterpreterFrame *f = ts->current_frame;
#else
    _PyInterpreterFrame *f = ts->cframe->current_frame;
#endif
    for (; f != NULL; f = f->previous) {
        PyObject *code;
#if PY_VERSION_HEX >= 0x030E0000
        if (f->owner >= FRAME_OWNED_BY_INTERPRETER) continue;
        code = PyStackRef_AsPyObjectBorrow(f->f_executable);
        if (code == NULL || !PyCode_Check(code)) continue;
#elif PY_VERSION_HEX >= 0x030D0000
        if (f->owner == FRAME_OWNED_BY_CSTACK) continue;
        code = f->f_executable;
        if (code == NULL || !PyCode_Check(code)) continue;
#elif PY_VERSION_HEX >= 0x030C0000
        if (f->owner == FRAME_OWNED_BY_CSTACK) continue;
        code = (PyObject *)f->f_code;
#else
        code = (PyObject *)f->f_code;
#endif
        if (_PyFrame_IsIncomplete(f)) continue;
        if (n < max) {
            out[n].code = code;
            out[n].lasti = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
            n++;
        }
        d++;
    }
#else
    /* 3.10: frames are objects already, linked by f_back; reading them allocates nothing */
    for (PyFrameObject *f = ts->frame; f != NULL; f = f->f_back) {
        if (n < max) {
            out[n].code = (PyObject *)f->f_code;
            out[n].lasti = f->f_lasti * (int)sizeof(_Py_CODEUNIT);
            n++;
        }
        d++;
    }
#endif
    *depth = d;
    return n;
}

/* -- the live heap table ------------------------------------------------------------------- */

static inline uint64_t prof_mem_hash_ptr(void *ptr) {
    uint64_t h = (uint64_t)(uintptr_t)ptr;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static inline Py_ssize_t prof_mem_slot_of(void *ptr) {
    return (Py_ssize_t)(prof_mem_hash_ptr(ptr) & (uint64_t)(prof_mem.table_cap - 1));
}

/* The filter bit of an address: its 16-byte slot (pymalloc's alignment), modulo 2 MB of address
   space. Not a hash on purpose: neighbouring blocks share a cache line of the filter, so the frees of
   a busy program touch a few hot lines instead of missing the cache on almost every free (measured:
   the hooks went from ~5.5% to ~3% of an allocation-heavy loop's time; 256-byte regions were worse,
   their neighbours' frees being false positives). Aliases are false positives, answered by the table. */
static inline uint64_t prof_mem_filter_bit(void *ptr) {
    return ((uint64_t)(uintptr_t)ptr >> 4) & (PROF_MEM_FILTER_BITS - 1);
}

static inline void prof_mem_filter_add(void *ptr) {
    uint64_t b = prof_mem_filter_bit(ptr);
    if (prof_mem.filter_count[b] < 255) prof_mem.filter_count[b]++;
    prof_mem.filter[b >> 6] |= (uint64_t)1 << (b & 63);
}

static inline void prof_mem_filter_remove(void *ptr) {
    uint64_t b = prof_mem_filter_bit(ptr);
    if (prof_mem.filter_count[b] < 255 && --prof_mem.filter_count[b] == 0)
        prof_mem.filter[b >> 6] &= ~((uint64_t)1 << (b & 63));
}

static inline int prof_mem_filter_may_hold(void *ptr) {
    uint64_t b = prof_mem_filter_bit(ptr);
    return (prof_mem.filter[b >> 6] >> (b & 63)) & 1;
}

static void prof_mem_filter_clear(void) {
    memset(prof_mem.filter, 0, sizeof(prof_mem.filter));
    memset(prof_mem.filter_count, 0, sizeof(prof_mem.filter_count));
}

static void prof_mem_filter_rebuild(void) {
    prof_mem_filter_clear();
    for (Py_ssize_t i = 0; prof_mem.table != NULL && i < prof_mem.table_cap; i++)
        if (prof_mem.table[i].ptr != NULL) prof_mem_filter_add(prof_mem.table[i].ptr);
}

static inline void prof_mem_tb_unref(prof_mem_tb *tb) {
    if (--tb->refs == 0) {
        tb->next_free = prof_mem.release_list;
        prof_mem.release_list = tb;
    }
}

static int prof_mem_heap_add(void *ptr, prof_mem_tb *tb, size_t size, double weight) {
    if (prof_mem.table == NULL || prof_mem.live >= prof_mem.live_cap) {
        prof_mem.dropped_heap++;
        return 0;
    }
    Py_ssize_t i = prof_mem_slot_of(ptr);
    while (prof_mem.table[i].ptr != NULL && prof_mem.table[i].ptr != ptr)
        i = (i + 1) & (prof_mem.table_cap - 1);
    if (prof_mem.table[i].ptr == ptr) { /* a stale entry (freed behind our back): replace it */
        prof_mem_tb_unref(prof_mem.table[i].tb);
    } else {
        prof_mem.live++;
        prof_mem_filter_add(ptr);
    }
    tb->refs++;
    prof_mem.table[i].ptr = ptr;
    prof_mem.table[i].tb = tb;
    prof_mem.table[i].size = size;
    prof_mem.table[i].weight = weight;
    return 1;
}

/* Removes ptr if tracked; O(1) expected: the table is at most half full. */
static inline void prof_mem_heap_remove(void *ptr) {
    Py_ssize_t mask = prof_mem.table_cap - 1;
    prof_mem.table_lookups++;
    Py_ssize_t i = prof_mem_slot_of(ptr);
    for (;;) {
        void *p = prof_mem.table[i].ptr;
        if (p == NULL) return;
        if (p == ptr) break;
        i = (i + 1) & mask;
    }
    prof_mem_tb_unref(prof_mem.table[i].tb);
    prof_mem_filter_remove(ptr);
    /* backward-shift deletion keeps every probe sequence unbroken without tombstones: an entry
       after the hole moves into it unless its home slot lies cyclically in (hole, entry] */
    Py_ssize_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        void *p = prof_mem.table[j].ptr;
        if (p == NULL) break;
        Py_ssize_t k = prof_mem_slot_of(p);
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            prof_mem.table[i] = prof_mem.table[j];
            i = j;
        }
    }
    prof_mem.table[i].ptr = NULL;
    prof_mem.table[i].tb = NULL;
    prof_mem.table[i].size = 0;
    prof_mem.table[i].weight = 0;
    prof_mem.live--;
}

/* -- sampling -------------------------------------------------------------------------------- */

static uint64_t prof_mem_hash_stack(const prof_mem_frame *frames, int n, int depth, unsigned long thread_id) {
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)thread_id;
    for (int i = 0; i < n; i++) {
        h = (h ^ (uint64_t)(uintptr_t)frames[i].code) * 0x100000001b3ULL;
        h = (h ^ (uint64_t)(unsigned int)frames[i].lasti) * 0x100000001b3ULL;
    }
    h = (h ^ (uint64_t)depth) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

/* The shared trace of this stack: found in the stack table, or made and added. NULL when the
   table is full or memory is short. */
static prof_mem_tb *prof_mem_intern(const prof_mem_frame *frames, int n, int depth, unsigned long thread_id,
                                    unsigned long native_id) {
    if (prof_mem.stacks == NULL) return NULL;
    uint64_t h = prof_mem_hash_stack(frames, n, depth, thread_id);
    Py_ssize_t mask = prof_mem.stacks_cap - 1;
    Py_ssize_t i = (Py_ssize_t)(h & (uint64_t)mask);
    prof_mem_tb *tb;
    while ((tb = prof_mem.stacks[i]) != NULL) {
        if (tb->hash == h && tb->nframes == n && tb->depth == depth && tb->thread_id == thread_id &&
            tb->native_id == native_id &&
            memcmp(tb->frames, frames, n * sizeof(prof_mem_frame)) == 0)
            return tb;
        i = (i + 1) & mask;
    }
    if (prof_mem.nstacks >= prof_mem.stacks_max) return NULL;
    tb = (prof_mem_tb *)malloc(sizeof(prof_mem_tb) + (n > 0 ? n - 1 : 0) * sizeof(prof_mem_frame));
    if (tb == NULL) {
        prof_mem.dropped_nomem++;
        return NULL;
    }
    memset(tb, 0, sizeof(prof_mem_tb));
    tb->refs = 1; /* the stack table's */
    tb->nframes = n;
    tb->depth = depth;
    tb->thread_id = thread_id;
    tb->native_id = native_id;
    tb->hash = h;
    for (int k = 0; k < n; k++) {
        tb->frames[k] = frames[k];
        Py_INCREF(frames[k].code);
    }
    prof_mem.stacks[i] = tb;
    prof_mem.nstacks++;
    return tb;
}

static void prof_mem_sample(void *ptr, size_t size) {
    prof_mem_frame frames[PROF_MEM_MAX_FRAMES];
    int depth = 0;
    int max = prof_mem.max_frames < PROF_MEM_MAX_FRAMES ? prof_mem.max_frames : PROF_MEM_MAX_FRAMES;
    prof_mem.busy = 1;
    prof_mem.countdown = prof_mem_next_gap();
    int want_heap = prof_mem.track_heap && prof_mem.table != NULL && prof_mem.live < prof_mem.live_cap;
    if (prof_mem.track_heap && !want_heap) prof_mem.dropped_heap++;
    if (prof_mem.track_allocs || want_heap) {
        int n = prof_mem_walk(frames, max, &depth);
        prof_mem_tb *tb = prof_mem_intern(frames, n, depth, PyThread_get_thread_ident(), PyThread_get_thread_native_id());
        double weight = size > 0 ? 1.0 / -expm1(-(double)size / prof_mem.mean) : 1.0;
        if (tb == NULL) {
            if (prof_mem.track_allocs) prof_mem.dropped_events++;
            if (want_heap) prof_mem.dropped_heap++;
        } else {
            if (prof_mem.track_allocs) {
                tb->alloc_count += weight;
                tb->alloc_bytes += weight * (double)size;
            }
            if (want_heap) prof_mem_heap_add(ptr, tb, size, weight);
        }
    }
    prof_mem.busy = 0;
}

/* The countdown of a stopped profiler: never reaches zero, so the hooks only pass through. */
#define PROF_MEM_NEVER INT64_MAX

#if defined(__GNUC__) || defined(__clang__)
#define PROF_MEM_LIKELY(x) __builtin_expect(!!(x), 1)
#define PROF_MEM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PROF_MEM_NOINLINE __attribute__((noinline, cold))
#else
#define PROF_MEM_LIKELY(x) (x)
#define PROF_MEM_UNLIKELY(x) (x)
#define PROF_MEM_NOINLINE
#endif

/* The allocation of `size` bytes that took the countdown to zero or below; `ptr` its block, NULL
   when it failed. Out of line, so that the hooks' common path saves no register and tail-calls
   the allocator below. */
/* The profiler's own threads (their idents), whose allocations are not the program's: written with
   the GIL when one starts or ends, read by the hooks (with or without it) only on a sampled
   allocation. A stale read at that moment costs one sample, never a fault. */
#define PROF_MEM_IGNORED_MAX 64
static volatile unsigned long prof_mem_ignored[PROF_MEM_IGNORED_MAX];
static volatile int prof_mem_nignored = 0;

static int prof_mem_is_ignored(unsigned long ident) {
    int n = prof_mem_nignored;
    for (int i = 0; i < n && i < PROF_MEM_IGNORED_MAX; i++)
        if (prof_mem_ignored[i] == ident) return 1;
    return 0;
}

static void prof_mem_set_ignored(const unsigned long *idents, int n) {
    if (n > PROF_MEM_IGNORED_MAX) n = PROF_MEM_IGNORED_MAX;
    prof_mem_nignored = 0;
    for (int i = 0; i < n; i++) prof_mem_ignored[i] = idents[i];
    prof_mem_nignored = n;
}

static PROF_MEM_NOINLINE void prof_mem_countdown_reached(void *ptr, size_t size) {
    if (!prof_mem.enabled) {
        prof_mem.countdown = PROF_MEM_NEVER;
    } else if (ptr == NULL) {
        if (prof_mem.countdown < 0) prof_mem.countdown = 0; /* the next allocation is sampled */
    } else if (prof_mem.busy) {
        /* an allocation of our own sampling: the sample being taken has set the next countdown */
    } else if ((prof_mem.ignored_thread != 0 && prof_mem.ignored_thread == PyThread_get_thread_ident())
               || (prof_mem_nignored > 0 && prof_mem_is_ignored(PyThread_get_thread_ident()))) {
        prof_mem.countdown = prof_mem_next_gap(); /* the profiler's own work: not the program's */
    } else {
        prof_mem_sample(ptr, size);
    }
}

static PROF_MEM_NOINLINE void prof_mem_forget_block(void *ptr) {
    if (ptr != NULL) prof_mem_heap_remove(ptr);
}

/* The filter holds every tracked address (and aliases), and nothing when nothing is tracked. */
static inline void prof_mem_before_free(void *ptr) {
    if (PROF_MEM_UNLIKELY(prof_mem_filter_may_hold(ptr))) prof_mem_forget_block(ptr);
}

/* Allocation hooks: the countdown is taken before the call, so an allocation that does not
   reach it is a tail call into the allocator below (a freed block is checked against the filter
   first, then the same). */
#define PROF_MEM_HOOKS(DOMAIN, ORIG)                                                           \
    static void *prof_mem_malloc_##DOMAIN(void *ctx, size_t size) {                           \
        if (PROF_MEM_LIKELY((prof_mem.countdown -= (int64_t)size) > 0))                        \
            return prof_mem.ORIG.malloc(prof_mem.ORIG.ctx, size);                              \
        void *p = prof_mem.ORIG.malloc(prof_mem.ORIG.ctx, size);                               \
        prof_mem_countdown_reached(p, size);                                                    \
        return p;                                                                               \
    }                                                                                           \
    static void *prof_mem_calloc_##DOMAIN(void *ctx, size_t nelem, size_t elsize) {            \
        if (PROF_MEM_LIKELY((prof_mem.countdown -= (int64_t)(nelem * elsize)) > 0))            \
            return prof_mem.ORIG.calloc(prof_mem.ORIG.ctx, nelem, elsize);                     \
        void *p = prof_mem.ORIG.calloc(prof_mem.ORIG.ctx, nelem, elsize);                      \
        prof_mem_countdown_reached(p, nelem * elsize);                                          \
        return p;                                                                               \
    }                                                                                           \
    static void *prof_mem_realloc_##DOMAIN(void *ctx, void *ptr, size_t size) {                \
        void *p = prof_mem.ORIG.realloc(prof_mem.ORIG.ctx, ptr, size);                         \
        if (p != NULL) {                                                                        \
            prof_mem_before_free(ptr); /* the old block is gone, moved or not */               \
            if ((prof_mem.countdown -= (int64_t)size) <= 0) prof_mem_countdown_reached(p, size); \
        }                                                                                       \
        return p;                                                                               \
    }                                                                                           \
    static void prof_mem_free_##DOMAIN(void *ctx, void *ptr) {                                 \
        prof_mem_before_free(ptr);                                                              \
        prof_mem.ORIG.free(prof_mem.ORIG.ctx, ptr);                                            \
    }

PROF_MEM_HOOKS(obj, orig_obj)
PROF_MEM_HOOKS(mem, orig_mem)

/* -- draining, outside the allocator (GIL held, no Python code runs in these) ------------------ */

typedef struct {
    prof_mem_tb *tb; /* a reference the caller releases with prof_mem_tb_unref */
    double a;
    double b;
} prof_mem_taken;

/* Takes every stack's allocation sums (zeroing them) with a reference to its trace, and rebuilds
   the stack table without the stacks nothing else refers to. Returns how many were taken, or -1
   when memory is short (nothing changed then). */
static Py_ssize_t prof_mem_take_allocations(prof_mem_taken **out) {
    Py_ssize_t n = 0, kept = 0, cap = prof_mem.stacks_cap, mask = cap - 1;
    *out = NULL;
    if (prof_mem.stacks == NULL) return 0;
    prof_mem_taken *taken = (prof_mem_taken *)malloc((prof_mem.nstacks + 1) * sizeof(prof_mem_taken));
    prof_mem_tb **fresh = (prof_mem_tb **)calloc(cap, sizeof(prof_mem_tb *));
    if (taken == NULL || fresh == NULL) {
        free(taken);
        free(fresh);
        return -1;
    }
    for (Py_ssize_t i = 0; i < cap; i++) {
        prof_mem_tb *tb = prof_mem.stacks[i];
        if (tb == NULL) continue;
        int others = tb->refs - 1; /* live heap entries, drains in progress */
        int emit = tb->alloc_count > 0;
        if (emit) {
            taken[n].tb = tb;
            taken[n].a = tb->alloc_count;
            taken[n].b = tb->alloc_bytes;
            n++;
            tb->alloc_count = 0;
            tb->alloc_bytes = 0;
        }
        if (others > 0) {
            Py_ssize_t j = (Py_ssize_t)(tb->hash & (uint64_t)mask);
            while (fresh[j] != NULL) j = (j + 1) & mask;
            fresh[j] = tb;
            kept++;
            if (emit) tb->refs++;
        } else if (!emit) {
            prof_mem_tb_unref(tb);
        } /* else: emitted and referenced by nothing else: the table's reference passes to `taken` */
    }
    free(prof_mem.stacks);
    prof_mem.stacks = fresh;
    prof_mem.nstacks = kept;
    *out = taken;
    return n;
}

/* Every live tracked allocation's trace (referenced), estimated bytes and 1. -1: memory is short. */
static Py_ssize_t prof_mem_take_heap(prof_mem_taken **out) {
    Py_ssize_t n = 0;
    *out = NULL;
    if (prof_mem.table == NULL || prof_mem.live == 0) return 0;
    prof_mem_filter_rebuild(); /* clears the bits left saturated since the last snapshot */
    prof_mem_taken *taken = (prof_mem_taken *)malloc(prof_mem.live * sizeof(prof_mem_taken));
    if (taken == NULL) return -1;
    for (Py_ssize_t i = 0; i < prof_mem.table_cap && n < prof_mem.live; i++) {
        prof_mem_slot *slot = &prof_mem.table[i];
        if (slot->ptr == NULL) continue;
        taken[n].tb = slot->tb;
        taken[n].a = slot->weight * (double)slot->size;
        taken[n].b = slot->weight; /* estimated live blocks, as ddtrace's heap-live-samples */
        slot->tb->refs++;
        n++;
    }
    *out = taken;
    return n;
}

/* Forgets pending allocation sums (a forked child does not report its parent's). */
static void prof_mem_discard_allocations(void) {
    for (Py_ssize_t i = 0; prof_mem.stacks != NULL && i < prof_mem.stacks_cap; i++) {
        if (prof_mem.stacks[i] != NULL) {
            prof_mem.stacks[i]->alloc_count = 0;
            prof_mem.stacks[i]->alloc_bytes = 0;
        }
    }
}

/* Forgets everything tracked: live allocations and stacks. */
static void prof_mem_forget_all(void) {
    for (Py_ssize_t i = 0; prof_mem.table != NULL && i < prof_mem.table_cap; i++) {
        if (prof_mem.table[i].ptr != NULL) prof_mem_tb_unref(prof_mem.table[i].tb);
    }
    if (prof_mem.table != NULL) memset(prof_mem.table, 0, prof_mem.table_cap * sizeof(prof_mem_slot));
    prof_mem.live = 0;
    prof_mem_filter_clear();
    for (Py_ssize_t i = 0; prof_mem.stacks != NULL && i < prof_mem.stacks_cap; i++) {
        if (prof_mem.stacks[i] != NULL) prof_mem_tb_unref(prof_mem.stacks[i]);
        prof_mem.stacks[i] = NULL;
    }
    prof_mem.nstacks = 0;
}

/* -- installing and removing ----------------------------------------------------------------- */

static int prof_mem_install(int hook_mem_domain) {
    if (!prof_mem.hooked_obj) {
        PyMemAllocatorEx a = {NULL, prof_mem_malloc_obj, prof_mem_calloc_obj, prof_mem_realloc_obj, prof_mem_free_obj};
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &prof_mem.orig_obj);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &a);
        prof_mem.hooked_obj = 1;
    }
    if (hook_mem_domain && !prof_mem.hooked_mem) {
        PyMemAllocatorEx a = {NULL, prof_mem_malloc_mem, prof_mem_calloc_mem, prof_mem_realloc_mem, prof_mem_free_mem};
        PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &prof_mem.orig_mem);
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &a);
        prof_mem.hooked_mem = 1;
    }
    return 0;
}

/* Takes the hooks out when they are still on top of the allocator chain. When another
   hook was installed over ours (tracemalloc started later), removing ours would remove
   it too: ours stays, disabled, passing everything through. Returns 1 when removed. */
static int prof_mem_uninstall(void) {
    int removed = 1;
    PyMemAllocatorEx cur;
    prof_mem.enabled = 0;
    prof_mem.countdown = PROF_MEM_NEVER;
    if (prof_mem.hooked_obj) {
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &cur);
        if (cur.malloc == prof_mem_malloc_obj) {
            PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &prof_mem.orig_obj);
            prof_mem.hooked_obj = 0;
        } else {
            removed = 0;
        }
    }
    if (prof_mem.hooked_mem) {
        PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &cur);
        if (cur.malloc == prof_mem_malloc_mem) {
            PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &prof_mem.orig_mem);
            prof_mem.hooked_mem = 0;
        } else {
            removed = 0;
        }
    }
    return removed;
}

static int prof_mem_is_hooked(void) { return prof_mem.hooked_obj || prof_mem.hooked_mem; }

#endif
