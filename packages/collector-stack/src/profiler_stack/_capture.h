/* The capturing thread: takes every thread's stack and CPU clock at random moments, without the GIL.
 *
 * A native thread (no Python thread state) wakes once at a uniformly random moment
 * of each interval-long stratum, reads each target thread's CPU clock and stack
 * (see _stackread.h), then, a moment later, its CPU clock again (whether it was
 * blocked at the capture), and queues the capture. The Python sampler thread
 * turns queued captures into samples whenever it gets the GIL: when it gets it
 * no longer decides what the samples show. The targets (thread states, idents,
 * CPU clocks) are published by the Python side, with the GIL.
 *
 * Nothing here calls the Python C API. One mutex guards the targets, the queue
 * and the settings; it is never held while reading stacks or sleeping.
 */
#ifndef PROFILER_CAPTURE_H
#define PROFILER_CAPTURE_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "_stackread.h"
#include "_codenames.h"

#define PROF_CAP_QUEUE 16
#define PROF_CAP_SCRATCH (256 * 1024) /* a data stack chunk larger than this is read frame by frame */
#define PROF_CAP_READS 3 /* reads of a stack that changed while it was read, before giving up on it */

typedef struct {
    PyThreadState *tstate; /* as seen with the GIL; the thread may be gone by the capture */
    unsigned long ident;
    unsigned long native_id;
    clockid_t clock;
    int has_clock;
    unsigned long identity; /* prof_cap_identity of the thread state when listed */
} prof_cap_target;

/* What tells one thread state from another at the same address: a thread that ends and a new one
   that starts at once can get the same memory and pthread_t, but never the same state id. */
static unsigned long prof_cap_identity(unsigned long thread_id, uint64_t state_id) {
    return thread_id ^ (unsigned long)(state_id * 0x9E3779B97F4A7C15ULL);
}

/* The identity of the thread state at `ts`, read without the GIL in one safe read of the span that
   holds both fields; 0 if it cannot be read. */
static unsigned long prof_cap_read_identity(const PyThreadState *ts) {
    size_t a = offsetof(PyThreadState, thread_id), b = offsetof(PyThreadState, id);
    size_t lo = a < b ? a : b, hi = a < b ? b + sizeof(uint64_t) : a + sizeof(unsigned long);
    char buf[sizeof(PyThreadState)];
    unsigned long ident;
    uint64_t id;
    if (hi - lo > sizeof(buf) || prof_st_read((const char *)ts + lo, buf, hi - lo) != 0) return 0;
    memcpy(&ident, buf + (a - lo), sizeof(ident));
    memcpy(&id, buf + (b - lo), sizeof(id));
    return prof_cap_identity(ident, id);
}

typedef struct {
    unsigned long ident;
    unsigned long native_id;
    int64_t cpu;   /* the thread's CPU clock right before its stack was read; -1 unknown */
    int idle;      /* used (almost) no CPU in the moment after: blocked at the capture */
    int gone;      /* the thread state no longer belonged to this thread */
    int torn;      /* the stack changed under every read of it: no stack this time */
    int nframes;   /* frames kept, leaf first */
    int depth;     /* frames on the stack */
    prof_st_frame *frames;
    void *gens[PROF_ST_GENS]; /* see prof_st_walk */
    int ngens;
} prof_cap_thread;

typedef struct {
    int64_t when;    /* monotonic ns of the capture */
    int64_t weight;  /* wall ns it stands for */
    int nthreads;
    prof_cap_thread *threads;
    prof_cn_record *names;  /* the code objects of frames the sampler holds no code for (NULL: none) */
    int nnames;
} prof_capture;

typedef struct {
    pthread_mutex_t mx;
    pthread_cond_t to_sampler;  /* a capture is queued, or stop */
    pthread_cond_t to_capturer; /* stop */
    pthread_t thread;
    int running;
    int stop;
    prof_cap_target *targets;
    int ntargets;
    int max_frames;
    int64_t interval_ns;
    int64_t probe_ns;           /* how long after a capture the clocks are read again */
    int64_t idle_threshold_ns;  /* CPU below this during the probe: blocked */
    prof_capture *queue[PROF_CAP_QUEUE];
    int head, count;
    int64_t carried;            /* wall ns of captures lost to a full queue or no memory */
    int64_t dropped;
    int64_t torn_reads;         /* stack reads that met a frame mid-change (read again) */
    int64_t cost_ns;            /* CPU the last capture cost this thread */
    int batch;                  /* captures the sampler waits for before taking the GIL */
    uint64_t rng;
    /* The interpreter's thread list as last published: its head and the head's ident. A thread
       state is added at the head, so a capture that finds another head (or the head thread
       started since) tells the sampler to publish again without waiting for a full batch: a new
       thread (a pool's first worker, a thread per request) is captured from the next interval on. */
    PyInterpreterState *interp;
    PyThreadState *listed_head;
    unsigned long listed_head_ident;
    int threads_changed;
    int64_t republished;        /* publications asked for by a changed thread list */
    int names_reset;            /* the sampler forgot code text: the capturer sends it all again */
    prof_cn_held held;          /* code objects the sampler holds (it names their frames itself) */
} prof_cap_state;

static inline int64_t prof_cap_now(clockid_t clk) {
    struct timespec ts;
    if (clock_gettime(clk, &ts) != 0) return -1;
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline uint64_t prof_cap_random(prof_cap_state *s) {
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s->rng = x;
    return x;
}

static void prof_cap_sleep(int64_t ns) {
    struct timespec ts;
    ts.tv_sec = ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    nanosleep(&ts, NULL);
}

static void prof_cap_free(prof_capture *c) {
    if (c == NULL) return;
    free(c->names);
    free(c);
}

/* A fresh mutex and conditions (the capturer's timed waits use the monotonic clock). */
static void prof_cap_init_sync(prof_cap_state *s) {
    pthread_condattr_t attr;
    pthread_mutex_init(&s->mx, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->to_capturer, &attr);
    pthread_cond_init(&s->to_sampler, NULL);
    pthread_condattr_destroy(&attr);
}

/* Frees the queued captures: with the mutex held, or with no other thread using the state. */
static void prof_cap_drop_queue(prof_cap_state *s) {
    while (s->count > 0) {
        prof_cap_free(s->queue[s->head]);
        s->head = (s->head + 1) % PROF_CAP_QUEUE;
        s->count--;
    }
    s->head = 0;
}

/* The targets to capture and the frame bound, copied (the caller frees the copy; NULL when there
   are none or no memory). With the mutex held. */
static prof_cap_target *prof_cap_copy_targets(prof_cap_state *s, int *n, int *max_frames) {
    *n = s->ntargets;
    *max_frames = s->max_frames;
    prof_cap_target *tg = *n > 0 ? (prof_cap_target *)malloc((size_t)*n * sizeof(prof_cap_target)) : NULL;
    if (tg != NULL) memcpy(tg, s->targets, (size_t)*n * sizeof(prof_cap_target));
    return tg;
}

/* What a capturing thread reads with: the data-stack chunk copy and the code address cache. */
typedef struct {
    prof_st_code_cache codes;
    prof_cn_cache names;
    char scratch[PROF_CAP_SCRATCH];
} prof_cap_reader;

/* Points each frame of `t` whose code the sampler does not hold at a description of that code in
   the capture (made once per code object per capture; at most PROF_CN_PER_CAPTURE of them).
   Returns how many frames' code was no code object any more (PROF_ST_GONE_CODE): the thread moved
   on since its stack was read and that code was freed (a module's code once it ran, exec's code). */
static int prof_cap_describe_frames(prof_capture *c, prof_cap_thread *t, const prof_cn_held *held,
                                    prof_cn_cache *cache) {
    int gone = 0;
    for (int j = 0; j < t->nframes; j++) {
        prof_st_frame *f = &t->frames[j];
        if (prof_cn_is_held(held, f->code)) continue;
        int k;
        for (k = 0; k < c->nnames && c->names[k].key.code != f->code; k++) {
        }
        if (k == c->nnames) {
            if (c->nnames >= PROF_CN_PER_CAPTURE) continue;
            if (c->names == NULL) {
                c->names = (prof_cn_record *)malloc(PROF_CN_PER_CAPTURE * sizeof(prof_cn_record));
                if (c->names == NULL) return gone;
            }
            if (prof_cn_describe(f->code, &c->names[k], cache) != 0) {
                f->name = PROF_ST_GONE_CODE;  /* not to be named by address: it may be another code's */
                gone++;
                continue;
            }
            c->nnames++;
        }
        f->name = k;
    }
    return gone;
}

/* One capture of `n` targets: one block holding the header, the threads and their frames.
   `*torn_reads` counts the stack reads that had to be done again. */
static prof_capture *prof_cap_take(const prof_cap_target *tg, int n, int max_frames, int64_t probe_ns,
                                   int64_t idle_threshold_ns, prof_cap_reader *reader, int64_t *torn_reads,
                                   const prof_cn_held *held, PyInterpreterState *interp) {
    size_t size = sizeof(prof_capture) + (size_t)n * sizeof(prof_cap_thread)
                  + (size_t)n * (size_t)max_frames * sizeof(prof_st_frame);
    prof_capture *c = (prof_capture *)malloc(size);
    if (c == NULL) return NULL;
    c->nthreads = n;
    c->threads = (prof_cap_thread *)(c + 1);
    c->names = NULL;
    c->nnames = 0;
    prof_st_frame *frames = (prof_st_frame *)(c->threads + n);
    c->when = prof_cap_now(CLOCK_MONOTONIC);
    /* A thread that started since the targets were listed is at the list's head; if it got the
       memory of one that ended, that target's clock and ids are the old thread's: left out until
       the sampler lists the threads again (the capture below tells it to). */
    const PyThreadState *fresh = NULL;
    if (n > 0 && interp != NULL) {
        PyThreadState *head = PyInterpreterState_ThreadHead(interp);
        for (int i = 0; i < n && fresh == NULL; i++)
            if (tg[i].tstate == head && prof_cap_read_identity(head) != tg[i].identity) fresh = head;
    }
    char *scratch = reader != NULL ? reader->scratch : NULL;
    prof_st_code_cache *codes = reader != NULL ? &reader->codes : NULL;
    for (int i = 0; i < n; i++) {
        prof_cap_thread *t = &c->threads[i];
        t->ident = tg[i].ident;
        t->native_id = tg[i].native_id;
        t->frames = frames + (size_t)i * (size_t)max_frames;
        t->idle = 0;
        /* A dead thread's clock reads -1 (EINVAL): clocks name kernel thread ids, not memory. */
        if (tg[i].tstate == fresh) {
            t->cpu = -1;
            t->nframes = 0;
            t->depth = 0;
            t->torn = 0;
            t->gone = 1;
            t->ngens = 0;
            continue;
        }
        t->cpu = tg[i].has_clock ? prof_cap_now(tg[i].clock) : -1;
        /* A stack read while it changed is read again; so is one with a frame whose code was freed
           before it could be described (the stack moved on): the new read is right for its moment. */
        for (int read = 1;; read++) {
            t->nframes = prof_st_walk(tg[i].tstate, tg[i].ident, t->frames, max_frames, &t->depth, scratch,
                                      scratch != NULL ? PROF_CAP_SCRATCH : 0, codes, t->gens, &t->ngens);
            if (t->nframes == PROF_ST_TORN) {
                if (read == PROF_CAP_READS) break;
                (*torn_reads)++;
                continue;
            }
            if (held == NULL || t->nframes <= 0
                || prof_cap_describe_frames(c, t, held, reader != NULL ? &reader->names : NULL) == 0
                || read == PROF_CAP_READS)
                break;
            (*torn_reads)++;
        }
        t->torn = t->nframes == PROF_ST_TORN;
        t->gone = t->nframes == -1;
        if (t->nframes < 0) {
            t->nframes = 0;
            t->depth = 0;
        }
    }
    if (probe_ns > 0) {
        prof_cap_sleep(probe_ns);
        for (int i = 0; i < n; i++) {
            prof_cap_thread *t = &c->threads[i];
            if (t->cpu >= 0) {
                int64_t later = prof_cap_now(tg[i].clock);
                t->idle = later >= 0 && later - t->cpu < idle_threshold_ns;
            }
        }
    }
    return c;
}


/* Whether the interpreter's thread list differs from the published one (without the GIL: the
   head pointer is read as it is, its thread id with a safe read). With the mutex held. */
static int prof_cap_threads_changed(const prof_cap_state *s) {
    if (s->interp == NULL) return 0;
    PyThreadState *head = PyInterpreterState_ThreadHead(s->interp);
    if (head != s->listed_head) return 1;
    if (head == NULL) return 0;
    unsigned long identity = prof_cap_read_identity(head);
    return identity != 0 && identity != s->listed_head_ident;
}

static void *prof_cap_main(void *arg) {
    prof_cap_state *s = (prof_cap_state *)arg;
    prof_cap_reader *reader = (prof_cap_reader *)calloc(1, sizeof(prof_cap_reader));
    pthread_mutex_lock(&s->mx);
    int64_t stratum = prof_cap_now(CLOCK_MONOTONIC);
    while (!s->stop) {
        int64_t span = s->interval_ns > 0 ? s->interval_ns : 10000000;
        int64_t now = prof_cap_now(CLOCK_MONOTONIC);
        /* Strata that went by entirely while the previous capture ran are covered by this one; the
           moment is uniform over what is left of the current stratum. Nothing the profiled threads
           do can make this thread late, so the moment does not depend on them. */
        int64_t weight = 0;
        while (stratum + span <= now) {
            stratum += span;
            weight += span;
        }
        int64_t lo = now > stratum ? now : stratum;
        int64_t target = lo + (int64_t)(prof_cap_random(s) % (uint64_t)(stratum + span - lo));
        struct timespec ts;
        ts.tv_sec = target / 1000000000LL;
        ts.tv_nsec = target % 1000000000LL;
        while (!s->stop && prof_cap_now(CLOCK_MONOTONIC) < target)
            pthread_cond_timedwait(&s->to_capturer, &s->mx, &ts);
        if (s->stop) break;
        weight += span;
        stratum += span;

        int n, max_frames;
        int64_t probe = s->probe_ns, threshold = s->idle_threshold_ns;
        prof_cap_target *tg = prof_cap_copy_targets(s, &n, &max_frames);
        PyInterpreterState *interp = s->interp;
        if (s->names_reset) {
            if (reader != NULL) memset(&reader->names, 0, sizeof(reader->names));
            s->names_reset = 0;
        }
        pthread_mutex_unlock(&s->mx);

        int64_t cpu0 = prof_cap_now(CLOCK_THREAD_CPUTIME_ID), torn = 0;
        prof_capture *c = tg != NULL ? prof_cap_take(tg, n, max_frames, probe, threshold, reader, &torn, &s->held, interp)
                                     : NULL;
        int64_t cpu1 = prof_cap_now(CLOCK_THREAD_CPUTIME_ID);
        free(tg);

        pthread_mutex_lock(&s->mx);
        s->cost_ns = cpu1 > cpu0 ? cpu1 - cpu0 : 1;
        s->torn_reads += torn;
        if (c != NULL && s->count < PROF_CAP_QUEUE) {
            c->weight = weight + s->carried;
            s->carried = 0;
            s->queue[(s->head + s->count) % PROF_CAP_QUEUE] = c;
            s->count++;
            if (!s->threads_changed && prof_cap_threads_changed(s)) {
                s->threads_changed = 1;
                s->republished++;
            }
            if (s->count >= s->batch || s->threads_changed) pthread_cond_signal(&s->to_sampler);
        } else {
            /* No target yet, no memory, or the sampler is starved of the GIL: the time goes to the
               next capture that is queued, so wall time is not lost. */
            if (c != NULL) {
                if (c->nnames > 0) s->names_reset = 1;  /* text it carried is sent again */
                prof_cap_free(c);
                s->dropped++;
            }
            s->carried += weight;
        }
    }
    pthread_mutex_unlock(&s->mx);
    free(reader);
    return NULL;
}

static prof_cap_state *prof_cap_new(void) {
    prof_cap_state *s = (prof_cap_state *)calloc(1, sizeof(prof_cap_state));
    if (s == NULL) return NULL;
    prof_cap_init_sync(s);
    s->rng = (uint64_t)prof_cap_now(CLOCK_MONOTONIC) * 2654435761ULL + 1;
    return s;
}

/* Starts the capturing thread; 0 on success. */
static int prof_cap_start(prof_cap_state *s) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    s->stop = 0;
    int err = pthread_create(&s->thread, &attr, prof_cap_main, s);
    pthread_attr_destroy(&attr);
    s->running = err == 0;
    return err;
}

/* Asks the capturing thread and a waiting sampler to stop; returns at once. */
static void prof_cap_request_stop(prof_cap_state *s) {
    pthread_mutex_lock(&s->mx);
    s->stop = 1;
    pthread_cond_broadcast(&s->to_capturer);
    pthread_cond_broadcast(&s->to_sampler);
    pthread_mutex_unlock(&s->mx);
}

/* Stops and joins the capturing thread; what it queued stays queued (prof_cap_wait then returns
   it at once), with the time of captures dropped since (a full queue) given to the last one.
   Without the GIL. */
static void prof_cap_join(prof_cap_state *s) {
    prof_cap_request_stop(s);
    if (s->running) {
        pthread_join(s->thread, NULL);
        s->running = 0;
    }
    pthread_mutex_lock(&s->mx);
    if (s->count > 0 && s->carried > 0) {
        s->queue[(s->head + s->count - 1) % PROF_CAP_QUEUE]->weight += s->carried;
        s->carried = 0;
    }
    pthread_mutex_unlock(&s->mx);
}

/* Stops and joins the capturing thread, and frees what is still queued. Without the GIL. */
static void prof_cap_stop(prof_cap_state *s) {
    prof_cap_join(s);
    pthread_mutex_lock(&s->mx);
    prof_cap_drop_queue(s);
    pthread_mutex_unlock(&s->mx);
}

/* Waits (without the GIL) until `batch` captures are queued or stop is asked; moves them to `out`
   (room for PROF_CAP_QUEUE) and returns how many. Taking the GIL once for several captures takes
   it from a busy program less often: samples only need to be in before the next flush. */
static int prof_cap_wait(prof_cap_state *s, prof_capture **out) {
    int n = 0;
    pthread_mutex_lock(&s->mx);
    int batch = s->batch < 1 ? 1 : s->batch > PROF_CAP_QUEUE ? PROF_CAP_QUEUE : s->batch;
    while (!s->stop && s->count < batch && !(s->threads_changed && s->count > 0))
        pthread_cond_wait(&s->to_sampler, &s->mx);
    while (s->count > 0) {
        out[n++] = s->queue[s->head];
        s->head = (s->head + 1) % PROF_CAP_QUEUE;
        s->count--;
    }
    pthread_mutex_unlock(&s->mx);
    return n;
}

/* Replaces the targets (the Python side, with the GIL) and the settings. Takes `targets`; `head`
   and `head_ident` are the thread list's head as prof_cap_list_threads read it. */
static void prof_cap_publish(prof_cap_state *s, prof_cap_target *targets, int n, int max_frames,
                             int64_t interval_ns, PyInterpreterState *interp, PyThreadState *head,
                             unsigned long head_ident) {
    pthread_mutex_lock(&s->mx);
    s->interp = interp;
    s->listed_head = head;
    s->listed_head_ident = head_ident;
    s->threads_changed = 0;
    free(s->targets);
    s->targets = targets;
    s->ntargets = n;
    s->max_frames = max_frames;
    s->interval_ns = interval_ns;
    pthread_mutex_unlock(&s->mx);
}

/* One capture of the published targets, now, on the calling thread (no probe): for measuring
   what a capture costs. `*cost_ns` receives the CPU time it took. Without the GIL. */
static prof_capture *prof_cap_take_now(prof_cap_state *s, int64_t *cost_ns) {
    int n, max_frames;
    pthread_mutex_lock(&s->mx);
    prof_cap_target *tg = prof_cap_copy_targets(s, &n, &max_frames);
    int64_t weight = s->interval_ns;
    pthread_mutex_unlock(&s->mx);
    prof_cap_reader *reader = (prof_cap_reader *)calloc(1, sizeof(prof_cap_reader));
    int64_t cpu0 = prof_cap_now(CLOCK_THREAD_CPUTIME_ID), torn = 0;
    prof_capture *c = tg != NULL || n == 0 ? prof_cap_take(tg, n, max_frames, 0, 0, reader, &torn, &s->held, s->interp) : NULL;
    *cost_ns = prof_cap_now(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    if (c != NULL) c->weight = weight;
    free(reader);
    free(tg);
    pthread_mutex_lock(&s->mx);
    s->torn_reads += torn;
    pthread_mutex_unlock(&s->mx);
    return c;
}

/* Before a (re)start, with no capturing thread running, and in a forked child, where the capturing
   thread does not exist and its mutex may have been held by it: fresh mutex and conditions, no
   queued captures (the parent's), nothing carried over. */
static void prof_cap_reset(prof_cap_state *s) {
    prof_cap_init_sync(s);
    s->running = 0;
    s->stop = 0;
    prof_cap_drop_queue(s);
    s->carried = 0;
    s->torn_reads = 0;
    s->threads_changed = 0;
    s->names_reset = 1;
    prof_cn_clear(&s->held);
}

/* The sampler holds these code objects from now on (it names their frames). Returns how many
   could not be put in the table (their frames are described in captures, which still names them). */
static int prof_cap_hold(prof_cap_state *s, void **codes, int n) {
    int missed = 0;
    pthread_mutex_lock(&s->mx);
    for (int i = 0; i < n; i++) missed += !prof_cn_hold(&s->held, codes[i]);
    pthread_mutex_unlock(&s->mx);
    return missed;
}

/* The sampler forgot the code text it was sent: the capturer sends it again. */
static void prof_cap_resend_names(prof_cap_state *s) {
    pthread_mutex_lock(&s->mx);
    s->names_reset = 1;
    pthread_mutex_unlock(&s->mx);
}

/* The sampler forgot its code objects and their text: none is held, all text is sent again. */
static void prof_cap_forget_codes(prof_cap_state *s) {
    pthread_mutex_lock(&s->mx);
    prof_cn_clear(&s->held);
    s->names_reset = 1;
    pthread_mutex_unlock(&s->mx);
}

/* Every thread state of the interpreter, with the GIL held and no Python code run between this and
   the use of the result: each listed thread is alive, so pthread_getcpuclockid may be asked about it.
   The list is read with safe reads too, in case a thread state is deleted without the GIL. Returns
   the number found (at most `max`); `*head` and `*head_ident` receive the list's head and its
   identity (prof_cap_identity), for prof_cap_publish. */
static int prof_cap_list_threads(PyInterpreterState *interp, prof_cap_target *out, int max,
                                 PyThreadState **head, unsigned long *head_ident) {
    int n = 0;
    PyThreadState *t = PyInterpreterState_ThreadHead(interp);
    PyThreadState copy;
    *head = t;
    *head_ident = 0;
    while (t != NULL && n < max) {
        PyThreadState *cur = t;
        if (prof_st_read(cur, &copy, sizeof(copy)) != 0) break;
        if (cur == *head) *head_ident = prof_cap_identity(copy.thread_id, copy.id);
        t = copy.next;
        if (copy.thread_id == 0) continue; /* created, not started: no thread to ask about yet */
        out[n].tstate = cur;
        out[n].ident = copy.thread_id;
#if PY_VERSION_HEX >= 0x030B0000
        out[n].native_id = copy.native_thread_id;
#else
        out[n].native_id = 0;
#endif
        out[n].has_clock = pthread_getcpuclockid((pthread_t)copy.thread_id, &out[n].clock) == 0;
        out[n].identity = prof_cap_identity(copy.thread_id, copy.id);
        n++;
    }
    return n;
}

#endif /* PROFILER_CAPTURE_H */
