/* Names of code objects copied at capture time, without the GIL.
 *
 * The sampler names a captured frame from its code object, with the GIL, later.
 * It may use only a code object it holds (alive, so its address was not reused):
 * a function defined late, made by exec, or that returned and was freed before
 * the capture was resolved would be left unnamed. So the capturing thread copies,
 * with safe reads, what naming needs (file name, qualified name, first line, line
 * table) for each frame whose code the sampler does not hold, into the capture
 * itself: the code was on a running stack at that moment, so the copy is right
 * whatever happens to the object afterwards.
 *
 * The held addresses are published into a fixed open-addressing table (pointer-
 * sized slots, written by the sampler under the capture mutex, read by the
 * capturing thread as they are: a stale read only costs a needless copy or one
 * unnamed frame). A per-reader cache remembers which code objects' text was sent
 * already, by a fingerprint of the object (its address, the addresses, lengths and
 * hashes of its name and file name, its line table's address, its first line), so
 * the text crosses once; a code object at a reused address, with other names, has
 * another fingerprint even where the allocator reused every address.
 */
#ifndef PROFILER_CODENAMES_H
#define PROFILER_CODENAMES_H

#include "_stackread.h"

#define PROF_CN_HELD 32768      /* slots of the held-code table (power of two) */
#define PROF_CN_HELD_MAX 16384  /* addresses put in it at most: half full keeps probes short */
#define PROF_CN_SENT 1024       /* slots of the sent-text cache (power of two) */
#define PROF_CN_PER_CAPTURE 32  /* code objects described in one capture at most */
#define PROF_CN_NAME 256        /* bytes kept of a name, of a file name */
#define PROF_CN_LINES 2048      /* bytes kept of a line table */

/* The identity of a code object's text: a code object at a reused address differs in some of it. */
typedef struct {
    const void *code;
    const void *name;     /* co_qualname (co_name before 3.11) */
    const void *file;     /* co_filename */
    const void *lines;    /* co_linetable */
    int firstlineno;
    int name_len, file_len;       /* characters */
    Py_hash_t name_hash, file_hash;  /* as cached in the strings (-1: not computed) */
} prof_cn_key;

typedef struct {
    prof_cn_key key;
    int has_text;         /* the text below is filled (else it was sent in an earlier capture) */
    int name_kind, file_kind;  /* 0 ASCII, else bytes a character (1, 2, 4) */
    int name_len, file_len, lines_len;  /* bytes kept */
    char name_text[PROF_CN_NAME];
    char file_text[PROF_CN_NAME];
    unsigned char lines_text[PROF_CN_LINES];
} prof_cn_record;

typedef struct {
    prof_cn_key sent[PROF_CN_SENT];
} prof_cn_cache;

typedef struct {
    const void *slot[PROF_CN_HELD];
    int used;
} prof_cn_held;

static inline size_t prof_cn_hash(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 32;
    return (size_t)x;
}

static inline int prof_cn_is_held(const prof_cn_held *h, const void *code) {
    size_t i = prof_cn_hash(code) & (PROF_CN_HELD - 1);
    for (;;) {
        const void *v = __atomic_load_n(&h->slot[i], __ATOMIC_RELAXED);
        if (v == code) return 1;
        if (v == NULL) return 0;
        i = (i + 1) & (PROF_CN_HELD - 1);
    }
}

/* With the capture mutex held (the sampler side). Returns 0 when the table is full. */
static int prof_cn_hold(prof_cn_held *h, const void *code) {
    if (code == NULL) return 1;
    size_t i = prof_cn_hash(code) & (PROF_CN_HELD - 1);
    for (;;) {
        const void *v = h->slot[i];
        if (v == code) return 1;
        if (v == NULL) break;
        i = (i + 1) & (PROF_CN_HELD - 1);
    }
    if (h->used >= PROF_CN_HELD_MAX) return 0;
    __atomic_store_n(&h->slot[i], code, __ATOMIC_RELAXED);
    h->used++;
    return 1;
}

static void prof_cn_clear(prof_cn_held *h) {
    for (size_t i = 0; i < PROF_CN_HELD; i++) __atomic_store_n(&h->slot[i], NULL, __ATOMIC_RELAXED);
    h->used = 0;
}

/* Reads a str's header: 0, or -1 when `obj` is not a compact str (code objects' names are). */
static int prof_cn_read_str_head(const void *obj, PyASCIIObject *a) {
    if (prof_st_read(obj, a, sizeof(*a)) != 0
        || (const void *)((const PyObject *)a)->ob_type != (const void *)&PyUnicode_Type || !a->state.compact
        || a->length < 0 || a->length > 0x7fffffff)
        return -1;
    return 0;
}

/* Copies a str's characters. Returns the bytes kept, or -1. */
static int prof_cn_read_str(const void *obj, char *out, int room, int *kind) {
    PyASCIIObject a;
    if (prof_cn_read_str_head(obj, &a) != 0) return -1;
    int k = (int)a.state.kind;
    if (k != 1 && k != 2 && k != 4) return -1;
    const char *data = (const char *)obj + (a.state.ascii ? sizeof(PyASCIIObject) : sizeof(PyCompactUnicodeObject));
    size_t bytes = (size_t)a.length * (size_t)k;
    if (bytes > (size_t)room) bytes = (size_t)(room / k) * (size_t)k;
    if (bytes > 0 && prof_st_read(data, out, bytes) != 0) return -1;
    *kind = a.state.ascii ? 0 : k;
    return (int)bytes;
}

/* Copies a bytes object's content (at most `room`). Returns the bytes kept, or -1. */
static int prof_cn_read_bytes(const void *obj, unsigned char *out, int room) {
    PyBytesObject b;
    if (prof_st_read(obj, &b, offsetof(PyBytesObject, ob_sval)) != 0
        || (const void *)((const PyObject *)&b)->ob_type != (const void *)&PyBytes_Type || b.ob_base.ob_size < 0)
        return -1;
    size_t n = (size_t)b.ob_base.ob_size;
    if (n > (size_t)room) n = (size_t)room;
    if (n > 0 && prof_st_read((const char *)obj + offsetof(PyBytesObject, ob_sval), out, n) != 0) return -1;
    return (int)n;
}

/* Reads the key of the code object at `code`. Returns 0, or -1 when it is not a code object now. */
static int prof_cn_read_key(const void *code, prof_cn_key *key) {
#if PY_VERSION_HEX >= 0x030B0000
    char raw[offsetof(PyCodeObject, co_code_adaptive)];
#else
    char raw[sizeof(PyCodeObject)];
#endif
    const PyCodeObject *co = (const PyCodeObject *)raw;
    memset(key, 0, sizeof(*key));  /* keys are compared with memcmp: no stray padding bytes */
    if (prof_st_read(code, raw, sizeof(raw)) != 0 || (const void *)((const PyObject *)raw)->ob_type != (const void *)&PyCode_Type)
        return -1;
    key->code = code;
#if PY_VERSION_HEX >= 0x030B0000
    key->name = co->co_qualname;
#else
    key->name = co->co_name;
#endif
    key->file = co->co_filename;
    key->lines = co->co_linetable;
    key->firstlineno = co->co_firstlineno;
    PyASCIIObject name, file;
    if (prof_cn_read_str_head(key->name, &name) != 0 || prof_cn_read_str_head(key->file, &file) != 0) return -1;
    key->name_len = (int)name.length;
    key->name_hash = name.hash;
    key->file_len = (int)file.length;
    key->file_hash = file.hash;
    return 0;
}

/* Fills `r` for the code at `code`: its key, and its text unless `cache` says it was sent with that
   key already. Returns 0, or -1 when nothing could be read (the frame stays unnamed). */
static int prof_cn_describe(const void *code, prof_cn_record *r, prof_cn_cache *cache) {
    prof_cn_key key;
    if (prof_cn_read_key(code, &key) != 0) return -1;
    r->key = key;
    prof_cn_key *sent = cache != NULL ? &cache->sent[prof_cn_hash(code) & (PROF_CN_SENT - 1)] : NULL;
    if (sent != NULL && memcmp(sent, &key, sizeof(key)) == 0) {
        r->has_text = 0;
        return 0;
    }
    r->name_len = prof_cn_read_str(key.name, r->name_text, PROF_CN_NAME, &r->name_kind);
    r->file_len = prof_cn_read_str(key.file, r->file_text, PROF_CN_NAME, &r->file_kind);
    if (r->name_len < 0 || r->file_len < 0) return -1;
    r->lines_len = prof_cn_read_bytes(key.lines, r->lines_text, PROF_CN_LINES);
    if (r->lines_len < 0) r->lines_len = 0;  /* named, with the first line only */
    r->has_text = 1;
    if (sent != NULL) *sent = key;
    return 0;
}

#endif /* PROFILER_CODENAMES_H */
