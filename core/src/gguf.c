/* lorac — GGUF v3 reader (see lorac/gguf.h; the writer is gguf_writer.c).
 *
 * Format and reader checks: reference/formats.md §1 (ggml-org/llama.cpp ggml/src/gguf.cpp,
 * ggml/include/gguf.h). ggml type traits (block size, block bytes): ggml/src/ggml.c type_traits
 * and ggml-common.h block structs; they agree with gguf-py's GGML_QUANT_SIZES except q8_1, whose
 * block is 2 fp16 + 32 int8 = 36 bytes in ggml-common.h (gguf-py still lists the old 40).
 *
 * Reading: the whole file is mapped read-only; a bounds-checked cursor (struct parser) reads the
 * header, the key/value pairs and the tensor infos, and never touches a byte at or past `size`.
 * Keys, string values and tensor names are copied into one arena with a NUL added, string arrays
 * get an (offset, length) table in the arena, and numeric arrays whose bytes are not aligned for
 * their element type in the file are copied there too (aligned), so every pointer handed out is
 * safe to use as a C array. Lookups by key or tensor name go through open-addressing hash tables
 * (FNV-1a), which also detect duplicates while parsing. Every entry array grows as entries are
 * parsed, so a corrupted count cannot make the reader allocate more than the file justifies.
 */
#include "lorac/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lorac/dtype.h"
#include "gguf_internal.h"

/* ---- ggml type traits -------------------------------------------------------------------- */

typedef struct ggml_traits {
    const char *name;
    int64_t block_size;
    size_t type_size;
} ggml_traits;

/* Ids 4, 5, 31-33 and 36-38 were removed from ggml. Id 42 (q2_0) is left out on purpose: its
 * block size differs between upstream master (64) and the forks that first used the id (128),
 * so the data layout of such a file cannot be known. */
static const ggml_traits ggml_types[] = {
    [0]  = {"f32", 1, 4},        [1]  = {"f16", 1, 2},       [2]  = {"q4_0", 32, 18},
    [3]  = {"q4_1", 32, 20},     [6]  = {"q5_0", 32, 22},    [7]  = {"q5_1", 32, 24},
    [8]  = {"q8_0", 32, 34},     [9]  = {"q8_1", 32, 36},    [10] = {"q2_K", 256, 84},
    [11] = {"q3_K", 256, 110},   [12] = {"q4_K", 256, 144},  [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210},   [15] = {"q8_K", 256, 292},  [16] = {"iq2_xxs", 256, 66},
    [17] = {"iq2_xs", 256, 74},  [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},   [21] = {"iq3_s", 256, 110}, [22] = {"iq2_s", 256, 82},
    [23] = {"iq4_xs", 256, 136}, [24] = {"i8", 1, 1},        [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},        [27] = {"i64", 1, 8},       [28] = {"f64", 1, 8},
    [29] = {"iq1_m", 256, 56},   [30] = {"bf16", 1, 2},      [34] = {"tq1_0", 256, 54},
    [35] = {"tq2_0", 256, 66},   [39] = {"mxfp4", 32, 17},   [40] = {"nvfp4", 64, 36},
    [41] = {"q1_0", 128, 18},
};
#define GGML_N_TYPES ((int)(sizeof ggml_types / sizeof ggml_types[0]))

static const ggml_traits *ggml_type_get(int type) {
    if (type < 0 || type >= GGML_N_TYPES || !ggml_types[type].name) return NULL;
    return &ggml_types[type];
}

bool lc_gguf_ggml_type_traits(int type, int64_t *block_size, size_t *type_size, const char **name) {
    const ggml_traits *t = ggml_type_get(type);
    if (!t) return false;
    if (block_size) *block_size = t->block_size;
    if (type_size) *type_size = t->type_size;
    if (name) *name = t->name;
    return true;
}

static const char *const value_type_names[LC_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

const char *lc_gguf_type_name(int type) {
    if (type < 0 || type >= LC_GGUF_TYPE_COUNT) return "unknown";
    return value_type_names[type];
}

size_t lc_gguf_value_size(int type) {
    switch (type) {
    case LC_GGUF_UINT8: case LC_GGUF_INT8: case LC_GGUF_BOOL: return 1;
    case LC_GGUF_UINT16: case LC_GGUF_INT16: return 2;
    case LC_GGUF_UINT32: case LC_GGUF_INT32: case LC_GGUF_FLOAT32: return 4;
    case LC_GGUF_UINT64: case LC_GGUF_INT64: case LC_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}
static bool is_integer_type(int type) {
    return type == LC_GGUF_UINT8 || type == LC_GGUF_INT8 || type == LC_GGUF_UINT16 ||
           type == LC_GGUF_INT16 || type == LC_GGUF_UINT32 || type == LC_GGUF_INT32 ||
           type == LC_GGUF_UINT64 || type == LC_GGUF_INT64 || type == LC_GGUF_BOOL;
}

static bool is_number_type(int type) {
    return is_integer_type(type) || type == LC_GGUF_FLOAT32 || type == LC_GGUF_FLOAT64;
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

int lc_gguf_tensor_nbytes(int type, const int64_t ne[4], uint64_t *bytes) {
    const ggml_traits *tr = ggml_type_get(type);
    if (!tr) return 4;
    uint64_t nel = 1;
    for (int j = 0; j < 4; j++) {
        uint64_t d = ne[j] > 0 ? (uint64_t)ne[j] : 1;
        if (nel > (uint64_t)(INT64_MAX - 1) / d) return 1;
        nel *= d;
    }
    if (ne[0] % tr->block_size != 0) return 2;
    uint64_t b = (uint64_t)(ne[0] / tr->block_size);
    if (b != 0 && tr->type_size > (uint64_t)INT64_MAX / b) return 3;
    b *= tr->type_size;
    for (int j = 1; j < 4; j++) {
        uint64_t d = (uint64_t)ne[j];
        if (d != 0 && b > (uint64_t)INT64_MAX / d) return 3;
        b *= d;
    }
    if (b > (uint64_t)SIZE_MAX) return 3;
    *bytes = b;
    return 0;
}

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- reader data structures ------------------------------------------------------------------ */

typedef struct gg_kv {
    uint64_t key_off, key_len; /* arena */
    uint64_t file_off;         /* offset of the key in the file */
    uint64_t val_off;          /* offset of the value in the file */
    int type;
    int elem_type;             /* arrays */
    uint64_t count;            /* arrays: elements; strings: bytes */
    uint64_t data_off;         /* string: arena; numeric array: arena or file; string array: arena
                                  offset of a table of count (offset, length) pairs */
    bool data_in_file;
    uint8_t raw[8];            /* scalar bytes, little-endian as stored */
} gg_kv;

typedef struct gg_tensor {
    lc_gguf_tensor_info info;
    uint64_t name_off, name_len; /* arena */
    uint64_t info_off;           /* offset of the tensor info in the file */
    uint64_t offset_field_off;   /* offset of its u64 offset field */
    uint64_t rel_off;            /* offset relative to the data blob */
} gg_tensor;

typedef struct gg_htab {
    int64_t *slots; /* -1 when empty */
    uint64_t cap;   /* power of two or 0 */
    uint64_t used;
} gg_htab;

struct lc_gguf {
    char *path;
    const uint8_t *base;
    uint64_t size;
    void *map;     /* mmap'ed region (NULL for memory images) */
    size_t map_len;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    gg_kv *kvs;
    int64_t n_kv, cap_kv;
    gg_tensor *tensors;
    int64_t n_tensors, cap_tensors;
    gg_htab key_tab, tensor_tab;
    uint8_t *arena;
    size_t arena_len, arena_cap;
};

static const char *arena_str(const lc_gguf *f, uint64_t off) { return (const char *)f->arena + off; }

static const char *kv_key(const lc_gguf *f, int64_t i, size_t *len) {
    *len = (size_t)f->kvs[i].key_len;
    return arena_str(f, f->kvs[i].key_off);
}

static const char *tensor_name(const lc_gguf *f, int64_t i, size_t *len) {
    *len = (size_t)f->tensors[i].name_len;
    return arena_str(f, f->tensors[i].name_off);
}

typedef const char *(*gg_name_fn)(const lc_gguf *f, int64_t i, size_t *len);

static int64_t htab_find(const lc_gguf *f, const gg_htab *h, gg_name_fn name, const char *s, size_t n) {
    if (h->cap == 0) return -1;
    uint64_t mask = h->cap - 1;
    for (uint64_t i = fnv1a(s, n) & mask;; i = (i + 1) & mask) {
        int64_t idx = h->slots[i];
        if (idx < 0) return -1;
        size_t len;
        const char *t = name(f, idx, &len);
        if (len == n && memcmp(t, s, n) == 0) return idx;
    }
}

static void htab_put(gg_htab *h, uint64_t hash, int64_t idx) {
    uint64_t mask = h->cap - 1;
    uint64_t i = hash & mask;
    while (h->slots[i] >= 0) i = (i + 1) & mask;
    h->slots[i] = idx;
    h->used++;
}

/* Make room for one more entry (load factor <= 1/2), rehashing entries 0..n-1. */
static bool htab_grow(const lc_gguf *f, gg_htab *h, gg_name_fn name, int64_t n) {
    if ((h->used + 1) * 2 <= h->cap) return true;
    uint64_t cap = h->cap ? h->cap * 2 : 16;
    int64_t *slots = malloc(cap * sizeof *slots);
    if (!slots) return false;
    memset(slots, 0xff, cap * sizeof *slots);
    free(h->slots);
    h->slots = slots;
    h->cap = cap;
    h->used = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t len;
        const char *s = name(f, i, &len);
        htab_put(h, fnv1a(s, len), i);
    }
    return true;
}

/* ---- errors ------------------------------------------------------------------------------ */

/* lc_error(st, "gguf: <file>: offset <off>: <message>"). */
static lc_status gg_err(lc_status st, const lc_gguf *f, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static lc_status gg_err(lc_status st, const lc_gguf *f, uint64_t off, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lc_error(st, "gguf: %s: offset %" PRIu64 ": %s", f->path, off, msg);
}

/* ---- bounds-checked cursor ------------------------------------------------------------------- */

typedef struct parser {
    lc_gguf *f;
    uint64_t pos;
    char field[160]; /* what is being read, for messages */
} parser;

static void set_field(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_field(parser *ps, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->field, sizeof ps->field, fmt, ap);
    va_end(ap);
}

static uint64_t remaining(const parser *ps) { return ps->f->size - ps->pos; }

/* Copy n bytes at the cursor into dst and advance; a clean error when the file ends first. */
static lc_status rd(parser *ps, void *dst, uint64_t n, const char *what) {
    if (n > remaining(ps))
        return gg_err(LC_ERR_FORMAT, ps->f, ps->pos,
                      "%s%s%s: truncated: needs %" PRIu64 " bytes but the file ends at %" PRIu64,
                      ps->field, *what ? " " : "", what, n, ps->f->size);
    memcpy(dst, ps->f->base + ps->pos, (size_t)n);
    ps->pos += n;
    return LC_OK;
}

static lc_status rd_u32(parser *ps, uint32_t *v, const char *what) { return rd(ps, v, 4, what); }
static lc_status rd_i32(parser *ps, int32_t *v, const char *what) { return rd(ps, v, 4, what); }
static lc_status rd_u64(parser *ps, uint64_t *v, const char *what) { return rd(ps, v, 8, what); }
static lc_status rd_i64(parser *ps, int64_t *v, const char *what) { return rd(ps, v, 8, what); }

/* Reserve n bytes aligned to `align` (power of two <= 16) in the arena; *off receives the offset. */
static lc_status arena_alloc(lc_gguf *f, uint64_t n, uint64_t align, uint64_t *off) {
    uint64_t start;
    if (!lc_gguf_pad(f->arena_len, align, &start) || n > (uint64_t)SIZE_MAX - start)
        return lc_error(LC_ERR_NOMEM, "gguf: %s: metadata too large for host memory", f->path);
    uint64_t end = start + n;
    if (end > f->arena_cap) {
        uint64_t cap = f->arena_cap ? f->arena_cap : 4096;
        while (cap < end) {
            if (cap > (uint64_t)SIZE_MAX / 2) {
                cap = end;
                break;
            }
            cap *= 2;
        }
        uint8_t *a = realloc(f->arena, (size_t)cap);
        if (!a)
            return lc_error(LC_ERR_NOMEM, "gguf: %s: out of host memory for %" PRIu64 " bytes of metadata",
                            f->path, end);
        f->arena = a;
        f->arena_cap = (size_t)cap;
    }
    if (start > f->arena_len) memset(f->arena + f->arena_len, 0, (size_t)(start - f->arena_len));
    f->arena_len = (size_t)end;
    *off = start;
    return LC_OK;
}

/* " element <i>" for messages about array elements, "" otherwise. */
static const char *elem_suffix(char *buf, size_t n, int64_t elem) {
    if (elem >= 0) snprintf(buf, n, " element %" PRId64, elem);
    return buf;
}

/* Read a string (u64 length + bytes) into the arena with a NUL appended. `max_len` is the largest
 * length accepted (LC_GGUF_MAX_STRING, or less for names); `elem` >= 0 names an array element in
 * messages. */
static lc_status rd_string(parser *ps, uint64_t max_len, int64_t elem, uint64_t *off, uint64_t *len) {
    char el[40] = "";
    uint64_t at = ps->pos, n;
    if (remaining(ps) < 8)
        return gg_err(LC_ERR_FORMAT, ps->f, at,
                      "%s%s length: truncated: needs 8 bytes but the file ends at %" PRIu64, ps->field,
                      elem_suffix(el, sizeof el, elem), ps->f->size);
    memcpy(&n, ps->f->base + ps->pos, 8);
    ps->pos += 8;
    if (n > max_len)
        return gg_err(LC_ERR_FORMAT, ps->f, at, "%s%s: string length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes",
                      ps->field, elem_suffix(el, sizeof el, elem), n, max_len);
    if (n > remaining(ps))
        return gg_err(LC_ERR_FORMAT, ps->f, at,
                      "%s%s: string length %" PRIu64 " runs past the end of the file (%" PRIu64 " bytes)",
                      ps->field, elem_suffix(el, sizeof el, elem), n, ps->f->size);
    lc_status st = arena_alloc(ps->f, n + 1, 1, off);
    if (st) return st;
    memcpy(ps->f->arena + *off, ps->f->base + ps->pos, (size_t)n);
    ps->f->arena[*off + n] = 0;
    ps->pos += n;
    *len = n;
    return LC_OK;
}

/* ---- parsing ----------------------------------------------------------------------------- */

static lc_status parse_array(parser *ps, gg_kv *kv) {
    lc_gguf *f = ps->f;
    uint64_t at = ps->pos;
    int32_t et = 0;
    uint64_t count = 0;
    lc_status st = rd_i32(ps, &et, "array element type");
    if (st) return st;
    if (et == LC_GGUF_ARRAY)
        return gg_err(LC_ERR_FORMAT, f, at, "%s: arrays of arrays are not supported", ps->field);
    if (et < 0 || et >= LC_GGUF_TYPE_COUNT)
        return gg_err(LC_ERR_FORMAT, f, at, "%s: unknown array element type %d", ps->field, (int)et);
    at = ps->pos;
    st = rd_u64(ps, &count, "array count");
    if (st) return st;
    if (count > LC_GGUF_MAX_ARRAY)
        return gg_err(LC_ERR_FORMAT, f, at, "%s: array of %" PRIu64 " elements exceeds the limit of %" PRIu64,
                      ps->field, count, LC_GGUF_MAX_ARRAY);
    kv->elem_type = et;
    kv->count = count;
    if (et == LC_GGUF_STRING) {
        if (count > remaining(ps) / 8)
            return gg_err(LC_ERR_FORMAT, f, at,
                          "%s: array of %" PRIu64 " strings cannot fit in the %" PRIu64 " bytes left in the file",
                          ps->field, count, remaining(ps));
        uint64_t table;
        st = arena_alloc(f, count * 16, 8, &table);
        if (st) return st;
        kv->data_off = table;
        for (uint64_t i = 0; i < count; i++) {
            uint64_t pair[2];
            st = rd_string(ps, LC_GGUF_MAX_STRING, (int64_t)i, &pair[0], &pair[1]);
            if (st) return st;
            memcpy(f->arena + table + 16 * i, pair, sizeof pair); /* the arena may have moved */
        }
        return LC_OK;
    }
    size_t es = lc_gguf_value_size(et);
    if (count > remaining(ps) / es)
        return gg_err(LC_ERR_FORMAT, f, at,
                      "%s: array of %" PRIu64 " %s elements runs past the end of the file (%" PRIu64 " bytes left)",
                      ps->field, count, lc_gguf_type_name(et), remaining(ps));
    uint64_t bytes = count * es;
    if (((uintptr_t)(f->base + ps->pos)) % es == 0) {
        kv->data_in_file = true;
        kv->data_off = ps->pos;
    } else {
        st = arena_alloc(f, bytes, es, &kv->data_off);
        if (st) return st;
        memcpy(f->arena + kv->data_off, f->base + ps->pos, (size_t)bytes);
    }
    ps->pos += bytes;
    return LC_OK;
}

static lc_status parse_kvs(parser *ps, int64_t n_kv) {
    lc_gguf *f = ps->f;
    for (int64_t i = 0; i < n_kv; i++) {
        if (f->n_kv == f->cap_kv) {
            int64_t cap = f->cap_kv ? f->cap_kv * 2 : 16;
            gg_kv *k = realloc(f->kvs, (size_t)cap * sizeof *k);
            if (!k) return lc_error(LC_ERR_NOMEM, "gguf: %s: out of host memory for kv[%" PRId64 "]", f->path, i);
            f->kvs = k;
            f->cap_kv = cap;
        }
        gg_kv *kv = &f->kvs[i];
        memset(kv, 0, sizeof *kv);
        kv->file_off = ps->pos;
        set_field(ps, "kv[%" PRId64 "] key", i);
        lc_status st = rd_string(ps, LC_GGUF_MAX_STRING, -1, &kv->key_off, &kv->key_len);
        if (st) return st;
        const char *key = arena_str(f, kv->key_off);
        if (kv->key_len == 0) return gg_err(LC_ERR_FORMAT, f, kv->file_off, "kv[%" PRId64 "] key: empty key", i);
        if (strlen(key) != kv->key_len)
            return gg_err(LC_ERR_FORMAT, f, kv->file_off, "kv[%" PRId64 "] key: '%s...' contains a NUL byte", i, key);
        if (htab_find(f, &f->key_tab, kv_key, key, (size_t)kv->key_len) >= 0)
            return gg_err(LC_ERR_FORMAT, f, kv->file_off, "kv[%" PRId64 "] key: duplicate key '%s'", i, key);
        set_field(ps, "kv[%" PRId64 "] '%s'", i, key);
        uint64_t at = ps->pos;
        int32_t type = 0;
        st = rd_i32(ps, &type, "value type");
        if (st) return st;
        if (type < 0 || type >= LC_GGUF_TYPE_COUNT)
            return gg_err(LC_ERR_FORMAT, f, at, "kv[%" PRId64 "] '%s' value type: unknown value type %d", i, key,
                          (int)type);
        kv->type = type;
        kv->val_off = ps->pos;
        if (type == LC_GGUF_STRING) {
            set_field(ps, "kv[%" PRId64 "] '%s' value", i, key);
            st = rd_string(ps, LC_GGUF_MAX_STRING, -1, &kv->data_off, &kv->count);
        } else if (type == LC_GGUF_ARRAY) {
            st = parse_array(ps, kv);
        } else {
            st = rd(ps, kv->raw, lc_gguf_value_size(type), "value");
        }
        if (st) return st;
        /* entry i is complete: register it (the arena is final for its key) */
        f->n_kv = i + 1;
        if (!htab_grow(f, &f->key_tab, kv_key, i))
            return lc_error(LC_ERR_NOMEM, "gguf: %s: out of host memory for the key table", f->path);
        key = arena_str(f, kv->key_off);
        htab_put(&f->key_tab, fnv1a(key, (size_t)kv->key_len), i);
    }
    return LC_OK;
}

static lc_status parse_alignment(lc_gguf *f) {
    f->alignment = LC_GGUF_DEFAULT_ALIGNMENT;
    int64_t kid = lc_gguf_find_key(f, "general.alignment");
    if (kid < 0) return LC_OK;
    const gg_kv *kv = &f->kvs[kid];
    if (kv->type != LC_GGUF_UINT32)
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "kv[%" PRId64 "] 'general.alignment': type %s, expected u32",
                      kid, lc_gguf_type_name(kv->type));
    uint32_t a;
    memcpy(&a, kv->raw, 4);
    if (!lc_gguf_is_pow2(a))
        return gg_err(LC_ERR_FORMAT, f, kv->val_off,
                      "kv[%" PRId64 "] 'general.alignment': %" PRIu32 " is not a nonzero power of two", kid, a);
    f->alignment = a;
    return LC_OK;
}

static lc_status parse_tensor_infos(parser *ps, int64_t n_tensors) {
    lc_gguf *f = ps->f;
    uint64_t expected = 0; /* running sum of PAD(nbytes, alignment) */
    for (int64_t i = 0; i < n_tensors; i++) {
        if (f->n_tensors == f->cap_tensors) {
            int64_t cap = f->cap_tensors ? f->cap_tensors * 2 : 16;
            gg_tensor *t = realloc(f->tensors, (size_t)cap * sizeof *t);
            if (!t)
                return lc_error(LC_ERR_NOMEM, "gguf: %s: out of host memory for tensor[%" PRId64 "]", f->path, i);
            f->tensors = t;
            f->cap_tensors = cap;
        }
        gg_tensor *t = &f->tensors[i];
        memset(t, 0, sizeof *t);
        t->info_off = ps->pos;
        set_field(ps, "tensor[%" PRId64 "] name", i);
        lc_status st = rd_string(ps, LC_GGUF_NAME_MAX - 1, -1, &t->name_off, &t->name_len);
        if (st) return st;
        const char *name = arena_str(f, t->name_off);
        if (strlen(name) != t->name_len)
            return gg_err(LC_ERR_FORMAT, f, t->info_off, "tensor[%" PRId64 "] name: '%s...' contains a NUL byte", i,
                          name);
        if (htab_find(f, &f->tensor_tab, tensor_name, name, (size_t)t->name_len) >= 0)
            return gg_err(LC_ERR_FORMAT, f, t->info_off, "tensor[%" PRId64 "] name: duplicate tensor name '%s'", i,
                          name);
        set_field(ps, "tensor[%" PRId64 "] '%s'", i, name);
        uint64_t at = ps->pos;
        uint32_t n_dims = 0;
        st = rd_u32(ps, &n_dims, "n_dims");
        if (st) return st;
        if (n_dims < 1 || n_dims > LC_GGUF_MAX_DIMS)
            return gg_err(LC_ERR_FORMAT, f, at, "tensor[%" PRId64 "] '%s' n_dims: %" PRIu32 ", expected 1..%d", i,
                          name, n_dims, LC_GGUF_MAX_DIMS);
        int64_t ne[4] = {1, 1, 1, 1};
        for (uint32_t j = 0; j < n_dims; j++) {
            at = ps->pos;
            char what[16];
            snprintf(what, sizeof what, "ne[%u]", j);
            st = rd_i64(ps, &ne[j], what);
            if (st) return st;
            if (ne[j] < 0)
                return gg_err(LC_ERR_FORMAT, f, at, "tensor[%" PRId64 "] '%s' ne[%u]: %" PRId64 " is negative", i,
                              name, j, ne[j]);
        }
        at = ps->pos;
        int32_t type = 0;
        st = rd_i32(ps, &type, "type");
        if (st) return st;
        const ggml_traits *tr = ggml_type_get(type);
        if (!tr)
            return gg_err(LC_ERR_FORMAT, f, at,
                          "tensor[%" PRId64 "] '%s' type: unknown ggml type id %d (removed or newer than this reader)",
                          i, name, (int)type);
        uint64_t nbytes = 0;
        int bad = lc_gguf_tensor_nbytes(type, ne, &nbytes);
        if (bad == 1)
            return gg_err(LC_ERR_FORMAT, f, t->info_off,
                          "tensor[%" PRId64 "] '%s' ne: {%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                          "}: element count overflows int64",
                          i, name, ne[0], ne[1], ne[2], ne[3]);
        if (bad == 2)
            return gg_err(LC_ERR_FORMAT, f, t->info_off,
                          "tensor[%" PRId64 "] '%s' ne[0]: %" PRId64 " is not a multiple of the %s block size %" PRId64,
                          i, name, ne[0], tr->name, tr->block_size);
        if (bad == 3)
            return gg_err(LC_ERR_FORMAT, f, t->info_off,
                          "tensor[%" PRId64 "] '%s' ne: {%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                          "}: byte size overflows",
                          i, name, ne[0], ne[1], ne[2], ne[3]);
        at = ps->pos;
        t->offset_field_off = at;
        st = rd_u64(ps, &t->rel_off, "offset");
        if (st) return st;
        if (t->rel_off != expected)
            return gg_err(LC_ERR_FORMAT, f, at,
                          "tensor[%" PRId64 "] '%s' offset: %" PRIu64 ", expected %" PRIu64
                          " (the running sum of sizes padded to %" PRIu32 " bytes)",
                          i, name, t->rel_off, expected, f->alignment);
        uint64_t padded;
        if (!lc_gguf_pad(nbytes, f->alignment, &padded) || padded > UINT64_MAX - expected)
            return gg_err(LC_ERR_FORMAT, f, at, "tensor[%" PRId64 "] '%s' offset: the data size sum overflows", i,
                          name);
        expected += padded;
        t->info.type = type;
        t->info.supported = lc_dtype_get(type) != NULL;
        t->info.n_dims = (int)n_dims;
        memcpy(t->info.ne, ne, sizeof ne);
        t->info.size = nbytes;
        f->n_tensors = i + 1;
        if (!htab_grow(f, &f->tensor_tab, tensor_name, i))
            return lc_error(LC_ERR_NOMEM, "gguf: %s: out of host memory for the tensor table", f->path);
        name = arena_str(f, t->name_off);
        htab_put(&f->tensor_tab, fnv1a(name, (size_t)t->name_len), i);
    }
    return LC_OK;
}

static lc_status parse(lc_gguf *f) {
    parser ps = {.f = f, .pos = 0};
    if (!host_is_little_endian())
        return gg_err(LC_ERR_FORMAT, f, 0, "header: this reader needs a little-endian host");
    char magic[4] = {0};
    set_field(&ps, "header");
    lc_status st = rd(&ps, magic, 4, "magic");
    if (st) return st;
    if (memcmp(magic, LC_GGUF_MAGIC, 4) != 0)
        return gg_err(LC_ERR_FORMAT, f, 0, "header magic: bytes %02x %02x %02x %02x, expected \"GGUF\" (47 47 55 46)",
                      (uint8_t)magic[0], (uint8_t)magic[1], (uint8_t)magic[2], (uint8_t)magic[3]);
    st = rd_u32(&ps, &f->version, "version");
    if (st) return st;
    if (f->version == 0) return gg_err(LC_ERR_FORMAT, f, 4, "header version: 0 is not a GGUF version");
    if ((f->version & 0xFFFFu) == 0)
        return gg_err(LC_ERR_FORMAT, f, 4,
                      "header version: 0x%08" PRIx32 " looks byte-swapped (a big-endian file?); only little-endian "
                      "files are supported",
                      f->version);
    if (f->version == 1)
        return gg_err(LC_ERR_FORMAT, f, 4, "header version: GGUF v1 (32-bit counts) is not supported; convert to v3");
    if (f->version > LC_GGUF_VERSION)
        return gg_err(LC_ERR_FORMAT, f, 4, "header version: %" PRIu32 " is newer than the supported version %d",
                      f->version, LC_GGUF_VERSION);
    int64_t n_tensors = 0, n_kv = 0;
    st = rd_i64(&ps, &n_tensors, "n_tensors");
    if (st) return st;
    st = rd_i64(&ps, &n_kv, "n_kv");
    if (st) return st;
    if (n_tensors < 0) return gg_err(LC_ERR_FORMAT, f, 8, "header n_tensors: %" PRId64 " is negative", n_tensors);
    if (n_kv < 0) return gg_err(LC_ERR_FORMAT, f, 16, "header n_kv: %" PRId64 " is negative", n_kv);
    /* Each kv takes at least 14 bytes (8 length + 1 key byte + 4 type + 1 value byte), each
     * tensor info at least 32 (8 length + 4 n_dims + 8 ne + 4 type + 8 offset). */
    uint64_t left = remaining(&ps);
    if ((uint64_t)n_kv > left / 14 || (uint64_t)n_tensors > left / 32 ||
        (uint64_t)n_kv * 14 + (uint64_t)n_tensors * 32 > left)
        return gg_err(LC_ERR_FORMAT, f, 8,
                      "header counts: %" PRId64 " tensors and %" PRId64 " key/value pairs cannot fit in the %" PRIu64
                      " bytes that follow the header",
                      n_tensors, n_kv, left);
    st = parse_kvs(&ps, n_kv);
    if (st) return st;
    st = parse_alignment(f);
    if (st) return st;
    st = parse_tensor_infos(&ps, n_tensors);
    if (st) return st;
    uint64_t data_offset;
    bool ok = lc_gguf_pad(ps.pos, f->alignment, &data_offset);
    if (n_tensors > 0 && (!ok || data_offset > f->size))
        return gg_err(LC_ERR_FORMAT, f, ps.pos,
                      "data: the data blob would start at offset %" PRIu64 " (padded to %" PRIu32
                      "), past the end of the file (%" PRIu64 " bytes)",
                      ok ? data_offset : UINT64_MAX, f->alignment, f->size);
    f->data_offset = ok && data_offset <= f->size ? data_offset : f->size;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gg_tensor *t = &f->tensors[i];
        uint64_t avail = f->size - f->data_offset;
        if (t->rel_off > avail || t->info.size > avail - t->rel_off)
            return gg_err(LC_ERR_FORMAT, f, t->offset_field_off,
                          "tensor[%" PRId64 "] '%s' data: %" PRIu64 " bytes at offset %" PRIu64
                          " run past the end of the file (%" PRIu64 " bytes)",
                          i, arena_str(f, t->name_off), t->info.size, f->data_offset + t->rel_off, f->size);
    }
    /* the arena is final: resolve the pointers handed out */
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gg_tensor *t = &f->tensors[i];
        t->info.name = arena_str(f, t->name_off);
        t->info.offset = f->data_offset + t->rel_off;
        t->info.data = f->base + t->info.offset;
    }
    return LC_OK;
}

/* ---- open / close ------------------------------------------------------------------------ */

static lc_gguf *gguf_alloc(const char *name) {
    lc_gguf *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    size_t n = strlen(name);
    f->path = malloc(n + 1);
    if (!f->path) {
        free(f);
        return NULL;
    }
    memcpy(f->path, name, n + 1);
    f->alignment = LC_GGUF_DEFAULT_ALIGNMENT;
    return f;
}

void lc_gguf_close(lc_gguf *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    free(f->kvs);
    free(f->tensors);
    free(f->key_tab.slots);
    free(f->tensor_tab.slots);
    free(f->arena);
    free(f->path);
    free(f);
}

static lc_status finish_open(lc_gguf *f, lc_gguf **out) {
    lc_status st = parse(f);
    if (st != LC_OK) {
        lc_gguf_close(f);
        return st;
    }
    *out = f;
    return LC_OK;
}

lc_status lc_gguf_open_memory(const void *data, size_t size, const char *name, lc_gguf **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_open_memory: out is NULL");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && size > 0) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_open_memory(%s): data is NULL", name);
    lc_gguf *f = gguf_alloc(name);
    if (!f) return lc_error(LC_ERR_NOMEM, "lc_gguf_open_memory(%s): out of host memory", name);
    f->base = data;
    f->size = size;
    return finish_open(f, out);
}

lc_status lc_gguf_open(const char *path, lc_gguf **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_open: out is NULL");
    *out = NULL;
    if (!path) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_open: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lc_error(LC_ERR_IO, "gguf: %s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return lc_error(LC_ERR_IO, "gguf: %s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return lc_error(LC_ERR_IO, "gguf: %s: not a regular file", path);
    }
    lc_gguf *f = gguf_alloc(path);
    if (!f) {
        close(fd);
        return lc_error(LC_ERR_NOMEM, "gguf: %s: out of host memory", path);
    }
    f->size = (uint64_t)sb.st_size;
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        lc_gguf_close(f);
        return lc_error(LC_ERR_IO, "gguf: %s: file too large to map", path);
    }
    if (f->size > 0) {
        void *m = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            lc_gguf_close(f);
            return lc_error(LC_ERR_IO, "gguf: %s: cannot map %" PRIu64 " bytes: %s", path, (uint64_t)sb.st_size,
                            strerror(e));
        }
        f->map = m;
        f->map_len = (size_t)f->size;
        f->base = m;
    } else {
        static const uint8_t empty[1] = {0};
        f->base = empty;
    }
    close(fd);
    return finish_open(f, out);
}

const char *lc_gguf_path(const lc_gguf *f) { return f ? f->path : NULL; }
uint32_t lc_gguf_version(const lc_gguf *f) { return f ? f->version : 0; }
uint32_t lc_gguf_alignment(const lc_gguf *f) { return f ? f->alignment : 0; }
uint64_t lc_gguf_data_offset(const lc_gguf *f) { return f ? f->data_offset : 0; }
uint64_t lc_gguf_file_size(const lc_gguf *f) { return f ? f->size : 0; }

/* ---- metadata access --------------------------------------------------------------------- */

int64_t lc_gguf_n_kv(const lc_gguf *f) { return f ? f->n_kv : 0; }

int64_t lc_gguf_find_key(const lc_gguf *f, const char *key) {
    if (!f || !key) return -1;
    return htab_find(f, &f->key_tab, kv_key, key, strlen(key));
}

const char *lc_gguf_key(const lc_gguf *f, int64_t kid) {
    if (!f || kid < 0 || kid >= f->n_kv) return NULL;
    return arena_str(f, f->kvs[kid].key_off);
}

int lc_gguf_kv_type(const lc_gguf *f, int64_t kid) {
    if (!f || kid < 0 || kid >= f->n_kv) return -1;
    return f->kvs[kid].type;
}

/* Key id of `key` with its type checked against `type` (-1: any), for the by-name getters. */
static lc_status lookup(const lc_gguf *f, const char *key, int type, const char *fn, const gg_kv **out) {
    if (!f || !key || !out) return lc_error(LC_ERR_INVALID_ARG, "%s: NULL argument", fn);
    int64_t kid = lc_gguf_find_key(f, key);
    if (kid < 0) return lc_error(LC_ERR_FORMAT, "gguf: %s: key '%s' not found", f->path, key);
    const gg_kv *kv = &f->kvs[kid];
    if (type >= 0 && kv->type != type)
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "key '%s': expected type %s, found %s", key,
                      lc_gguf_type_name(type), lc_gguf_type_name(kv->type));
    *out = kv;
    return LC_OK;
}

#define LC_GGUF_GETTER(fname, ctype, gtype)                                      \
    lc_status fname(const lc_gguf *f, const char *key, ctype *out) {            \
        const gg_kv *kv = NULL;                                                  \
        lc_status st = lookup(f, key, gtype, #fname, &kv);                       \
        if (st) return st;                                                       \
        if (!out) return lc_error(LC_ERR_INVALID_ARG, #fname ": out is NULL"); \
        memcpy(out, kv->raw, sizeof(ctype));                                     \
        return LC_OK;                                                            \
    }

LC_GGUF_GETTER(lc_gguf_get_u8, uint8_t, LC_GGUF_UINT8)
LC_GGUF_GETTER(lc_gguf_get_i8, int8_t, LC_GGUF_INT8)
LC_GGUF_GETTER(lc_gguf_get_u16, uint16_t, LC_GGUF_UINT16)
LC_GGUF_GETTER(lc_gguf_get_i16, int16_t, LC_GGUF_INT16)
LC_GGUF_GETTER(lc_gguf_get_u32, uint32_t, LC_GGUF_UINT32)
LC_GGUF_GETTER(lc_gguf_get_i32, int32_t, LC_GGUF_INT32)
LC_GGUF_GETTER(lc_gguf_get_u64, uint64_t, LC_GGUF_UINT64)
LC_GGUF_GETTER(lc_gguf_get_i64, int64_t, LC_GGUF_INT64)
LC_GGUF_GETTER(lc_gguf_get_f32, float, LC_GGUF_FLOAT32)
LC_GGUF_GETTER(lc_gguf_get_f64, double, LC_GGUF_FLOAT64)
#undef LC_GGUF_GETTER

lc_status lc_gguf_get_bool(const lc_gguf *f, const char *key, bool *out) {
    const gg_kv *kv = NULL;
    lc_status st = lookup(f, key, LC_GGUF_BOOL, "lc_gguf_get_bool", &kv);
    if (st) return st;
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_get_bool: out is NULL");
    *out = kv->raw[0] != 0;
    return LC_OK;
}

lc_status lc_gguf_get_string(const lc_gguf *f, const char *key, const char **out, size_t *len) {
    const gg_kv *kv = NULL;
    lc_status st = lookup(f, key, LC_GGUF_STRING, "lc_gguf_get_string", &kv);
    if (st) return st;
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_get_string: out is NULL");
    *out = arena_str(f, kv->data_off);
    if (len) *len = (size_t)kv->count;
    return LC_OK;
}

/* Element of `type` stored at `p` as int64 / double. */
static bool elem_to_i64(int type, const uint8_t *p, int64_t *out) {
    switch (type) {
    case LC_GGUF_UINT8: *out = p[0]; return true;
    case LC_GGUF_INT8: { int8_t v; memcpy(&v, p, 1); *out = v; return true; }
    case LC_GGUF_BOOL: *out = p[0] != 0; return true;
    case LC_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case LC_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case LC_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case LC_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case LC_GGUF_INT64: memcpy(out, p, 8); return true;
    case LC_GGUF_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
        return true;
    }
    default: return false;
    }
}

static bool elem_to_f64(int type, const uint8_t *p, double *out) {
    if (type == LC_GGUF_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    if (type == LC_GGUF_FLOAT64) {
        memcpy(out, p, 8);
        return true;
    }
    if (type == LC_GGUF_UINT64) {
        uint64_t v;
        memcpy(&v, p, 8);
        *out = (double)v;
        return true;
    }
    int64_t i;
    if (!elem_to_i64(type, p, &i)) return false;
    *out = (double)i;
    return true;
}

static lc_status kv_by_id(const lc_gguf *f, int64_t kid, const char *fn, const gg_kv **out) {
    if (!f) return lc_error(LC_ERR_INVALID_ARG, "%s: file is NULL", fn);
    if (kid < 0 || kid >= f->n_kv)
        return lc_error(LC_ERR_INVALID_ARG, "%s: key id %" PRId64 " out of range 0..%" PRId64 " in %s", fn, kid,
                        f->n_kv - 1, f->path);
    *out = &f->kvs[kid];
    return LC_OK;
}

lc_status lc_gguf_get_int(const lc_gguf *f, const char *key, int64_t *out) {
    const gg_kv *kv = NULL;
    lc_status st = lookup(f, key, -1, "lc_gguf_get_int", &kv);
    if (st) return st;
    return lc_gguf_kv_get_i64(f, kv - f->kvs, out);
}

lc_status lc_gguf_kv_get_i64(const lc_gguf *f, int64_t kid, int64_t *out) {
    const gg_kv *kv = NULL;
    lc_status st = kv_by_id(f, kid, "lc_gguf_kv_get_i64", &kv);
    if (st) return st;
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_kv_get_i64: out is NULL");
    const char *key = arena_str(f, kv->key_off);
    if (!is_integer_type(kv->type))
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "key '%s': expected an integer type, found %s", key,
                      lc_gguf_type_name(kv->type));
    if (!elem_to_i64(kv->type, kv->raw, out))
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "key '%s': u64 value does not fit in int64", key);
    return LC_OK;
}

lc_status lc_gguf_kv_get_f64(const lc_gguf *f, int64_t kid, double *out) {
    const gg_kv *kv = NULL;
    lc_status st = kv_by_id(f, kid, "lc_gguf_kv_get_f64", &kv);
    if (st) return st;
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_kv_get_f64: out is NULL");
    if (!is_number_type(kv->type) || !elem_to_f64(kv->type, kv->raw, out))
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "key '%s': expected a numeric type, found %s",
                      arena_str(f, kv->key_off), lc_gguf_type_name(kv->type));
    return LC_OK;
}

lc_status lc_gguf_kv_get_str(const lc_gguf *f, int64_t kid, const char **out, size_t *len) {
    const gg_kv *kv = NULL;
    lc_status st = kv_by_id(f, kid, "lc_gguf_kv_get_str", &kv);
    if (st) return st;
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_kv_get_str: out is NULL");
    if (kv->type != LC_GGUF_STRING)
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "key '%s': expected type string, found %s",
                      arena_str(f, kv->key_off), lc_gguf_type_name(kv->type));
    *out = arena_str(f, kv->data_off);
    if (len) *len = (size_t)kv->count;
    return LC_OK;
}

/* ---- arrays ------------------------------------------------------------------------------ */

int lc_gguf_arr_type(const lc_gguf *f, int64_t kid) {
    if (!f || kid < 0 || kid >= f->n_kv || f->kvs[kid].type != LC_GGUF_ARRAY) return -1;
    return f->kvs[kid].elem_type;
}

uint64_t lc_gguf_arr_count(const lc_gguf *f, int64_t kid) {
    if (!f || kid < 0 || kid >= f->n_kv || f->kvs[kid].type != LC_GGUF_ARRAY) return 0;
    return f->kvs[kid].count;
}

static const uint8_t *arr_bytes(const lc_gguf *f, const gg_kv *kv) {
    return kv->data_in_file ? f->base + kv->data_off : f->arena + kv->data_off;
}

const void *lc_gguf_arr_data(const lc_gguf *f, int64_t kid) {
    if (!f || kid < 0 || kid >= f->n_kv) return NULL;
    const gg_kv *kv = &f->kvs[kid];
    if (kv->type != LC_GGUF_ARRAY || kv->elem_type == LC_GGUF_STRING || kv->count == 0) return NULL;
    return arr_bytes(f, kv);
}

/* Array key id `kid` with element `i` in range. */
static lc_status arr_elem(const lc_gguf *f, int64_t kid, uint64_t i, const char *fn, const gg_kv **out) {
    lc_status st = kv_by_id(f, kid, fn, out);
    if (st) return st;
    const gg_kv *kv = *out;
    if (kv->type != LC_GGUF_ARRAY)
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "%s: key '%s' is a %s, not an array", fn,
                      arena_str(f, kv->key_off), lc_gguf_type_name(kv->type));
    if (i >= kv->count)
        return lc_error(LC_ERR_INVALID_ARG, "%s: %s: key '%s': element %" PRIu64 " out of range (%" PRIu64 " elements)",
                        fn, f->path, arena_str(f, kv->key_off), i, kv->count);
    return LC_OK;
}

lc_status lc_gguf_arr_get_i64(const lc_gguf *f, int64_t kid, uint64_t i, int64_t *out) {
    const gg_kv *kv = NULL;
    lc_status st = arr_elem(f, kid, i, "lc_gguf_arr_get_i64", &kv);
    if (st) return st;
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_arr_get_i64: out is NULL");
    if (!is_integer_type(kv->elem_type))
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "key '%s': expected an array of integers, found an array of %s",
                      arena_str(f, kv->key_off), lc_gguf_type_name(kv->elem_type));
    if (!elem_to_i64(kv->elem_type, arr_bytes(f, kv) + i * lc_gguf_value_size(kv->elem_type), out))
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "key '%s': element %" PRIu64 " (u64) does not fit in int64",
                      arena_str(f, kv->key_off), i);
    return LC_OK;
}

lc_status lc_gguf_arr_get_f64(const lc_gguf *f, int64_t kid, uint64_t i, double *out) {
    const gg_kv *kv = NULL;
    lc_status st = arr_elem(f, kid, i, "lc_gguf_arr_get_f64", &kv);
    if (st) return st;
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_arr_get_f64: out is NULL");
    if (!is_number_type(kv->elem_type))
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "key '%s': expected a numeric array, found an array of %s",
                      arena_str(f, kv->key_off), lc_gguf_type_name(kv->elem_type));
    elem_to_f64(kv->elem_type, arr_bytes(f, kv) + i * lc_gguf_value_size(kv->elem_type), out);
    return LC_OK;
}

lc_status lc_gguf_arr_get_str(const lc_gguf *f, int64_t kid, uint64_t i, const char **out, size_t *len) {
    const gg_kv *kv = NULL;
    lc_status st = arr_elem(f, kid, i, "lc_gguf_arr_get_str", &kv);
    if (st) return st;
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_arr_get_str: out is NULL");
    if (kv->elem_type != LC_GGUF_STRING)
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "key '%s': expected an array of string, found an array of %s",
                      arena_str(f, kv->key_off), lc_gguf_type_name(kv->elem_type));
    uint64_t pair[2];
    memcpy(pair, f->arena + kv->data_off + 16 * i, sizeof pair);
    *out = arena_str(f, pair[0]);
    if (len) *len = (size_t)pair[1];
    return LC_OK;
}

lc_status lc_gguf_get_arr(const lc_gguf *f, const char *key, lc_gguf_type elem_type, const void **data,
                          uint64_t *count) {
    const gg_kv *kv = NULL;
    lc_status st = lookup(f, key, LC_GGUF_ARRAY, "lc_gguf_get_arr", &kv);
    if (st) return st;
    if (!data || !count) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_get_arr: data or count is NULL");
    if (kv->elem_type != (int)elem_type)
        return gg_err(LC_ERR_FORMAT, f, kv->val_off, "key '%s': expected an array of %s, found an array of %s", key,
                      lc_gguf_type_name(elem_type), lc_gguf_type_name(kv->elem_type));
    if (elem_type == LC_GGUF_STRING)
        return gg_err(LC_ERR_FORMAT, f, kv->val_off,
                      "key '%s': a string array has no packed data; use lc_gguf_arr_get_str", key);
    *data = kv->count ? arr_bytes(f, kv) : NULL;
    *count = kv->count;
    return LC_OK;
}

/* ---- tensors ----------------------------------------------------------------------------- */

int64_t lc_gguf_n_tensors(const lc_gguf *f) { return f ? f->n_tensors : 0; }

const lc_gguf_tensor_info *lc_gguf_tensor(const lc_gguf *f, int64_t i) {
    if (!f || i < 0 || i >= f->n_tensors) return NULL;
    return &f->tensors[i].info;
}

int64_t lc_gguf_find_tensor(const lc_gguf *f, const char *name) {
    if (!f || !name) return -1;
    return htab_find(f, &f->tensor_tab, tensor_name, name, strlen(name));
}

/* Comma-separated names of the dtypes lorac supports, for messages. */
static void supported_dtypes(char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int d = 0; d < LC_DTYPE_MAX && used < n; d++) {
        const lc_dtype_info *info = lc_dtype_get(d);
        if (!info) continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", info->name);
        if (w < 0) break;
        used += (size_t)w;
    }
}

lc_status lc_gguf_tensor_load(const lc_gguf *f, int64_t i, lc_device *dev, lc_tensor **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_tensor_load: out is NULL");
    *out = NULL;
    if (!f || !dev) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_tensor_load: file or device is NULL");
    if (i < 0 || i >= f->n_tensors)
        return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_tensor_load: %s: tensor id %" PRId64 " out of range (%" PRId64
                        " tensors)", f->path, i, f->n_tensors);
    const gg_tensor *gt = &f->tensors[i];
    const lc_gguf_tensor_info *t = &gt->info;
    const ggml_traits *tr = ggml_type_get(t->type);
    if (!t->supported) {
        char list[256];
        supported_dtypes(list, sizeof list);
        return gg_err(LC_ERR_DTYPE, f, gt->info_off,
                      "tensor '%s': ggml type id %d (%s) is not supported by lorac (supported: %s)", t->name,
                      t->type, tr ? tr->name : "unknown", list);
    }
    for (int j = 0; j < LC_GGUF_MAX_DIMS; j++)
        if (t->ne[j] < 1)
            return gg_err(LC_ERR_SHAPE, f, gt->info_off,
                          "tensor '%s': ne[%d] = %" PRId64 ": lorac tensors cannot have an empty dimension", t->name,
                          j, t->ne[j]);
    /* lorac's layout of this dtype must agree with ggml's (dtype.c vs the table above) */
    size_t row = lc_row_size((lc_dtype)t->type, t->ne[0]);
    if (row == 0 || (uint64_t)row * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]) != t->size)
        return gg_err(LC_ERR_DTYPE, f, gt->info_off,
                      "tensor '%s': lorac's byte size for %s x %" PRId64 " disagrees with the file's %" PRIu64 " bytes",
                      t->name, lc_dtype_name(t->type), t->ne[0], t->size);
    lc_tensor *x = NULL;
    lc_status st = lc_tensor_new(dev, (lc_dtype)t->type, LC_GGUF_MAX_DIMS, t->ne, t->name, LC_TENSOR_FROZEN, &x);
    if (st == LC_OK) st = lc_tensor_set(x, t->data, 0, (size_t)t->size);
    if (st != LC_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", lc_last_error());
        lc_tensor_free(x);
        return lc_error(st, "gguf: %s: tensor '%s' (%s, %" PRIu64 " bytes): %s", f->path, t->name,
                        lc_dtype_name(t->type), t->size, why);
    }
    *out = x;
    return LC_OK;
}

lc_status lc_gguf_tensor_load_named(const lc_gguf *f, const char *name, lc_device *dev, lc_tensor **out) {
    if (out) *out = NULL;
    if (!f || !name) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_tensor_load_named: file or name is NULL");
    int64_t i = lc_gguf_find_tensor(f, name);
    if (i < 0) return lc_error(LC_ERR_FORMAT, "gguf: %s: no tensor named '%s'", f->path, name);
    return lc_gguf_tensor_load(f, i, dev, out);
}

const uint8_t *lc_gguf_kv_raw(const lc_gguf *f, int64_t kid) {
    if (!f || kid < 0 || kid >= f->n_kv) return NULL;
    return f->kvs[kid].raw;
}
