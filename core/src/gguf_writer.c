/* lorac — GGUF v3 writer (see lorac/gguf.h; the reader is gguf.c).
 *
 * Layout written (reference/formats.md §1): "GGUF", u32 3, i64 n_tensors, i64 n_kv, the kvs in
 * the order first set, the tensor infos in the order added with n_dims = ggml_n_dims (trailing
 * 1s dropped, at least 1) and offsets = running sum of PAD(nbytes, alignment), zero padding to
 * the alignment, then each tensor's bytes followed by zero padding to the alignment (as ggml's
 * gguf_write_to_buf and gguf-py's GGUFWriter do). The alignment is "general.alignment" when set
 * (a u32 nonzero power of two), else 32. Files are written to "<path>.tmp", flushed, fsync'ed
 * and renamed over the target, so a reader never sees a half-written file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_internal.h"
#include "lorac/gguf.h"

typedef struct gw_kv {
    char *key;
    size_t key_len;
    int type;
    uint8_t raw[8];
    char *str;          /* STRING */
    size_t str_len;
    int elem_type;      /* ARRAY */
    uint64_t count;
    void *data;         /* numeric array, count * value_size bytes */
    char **strs;        /* string array */
    size_t *lens;
} gw_kv;

typedef struct gw_tensor {
    char name[LC_GGUF_NAME_MAX];
    int type;
    int64_t ne[4];
    uint64_t size;
    const void *data;
    void *owned;
} gw_tensor;

struct lc_gguf_writer {
    gw_kv *kvs;
    size_t n_kv, cap_kv;
    gw_tensor *tensors;
    size_t n_tensors, cap_tensors;
};

lc_status lc_gguf_writer_new(lc_gguf_writer **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_new: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return lc_error(LC_ERR_NOMEM, "lc_gguf_writer_new: out of host memory");
    return LC_OK;
}

static void gw_kv_clear_value(gw_kv *kv) {
    free(kv->str);
    free(kv->data);
    if (kv->strs)
        for (uint64_t i = 0; i < kv->count; i++) free(kv->strs[i]);
    free(kv->strs);
    free(kv->lens);
    kv->str = NULL;
    kv->data = NULL;
    kv->strs = NULL;
    kv->lens = NULL;
    kv->count = 0;
    kv->str_len = 0;
}

void lc_gguf_writer_free(lc_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        gw_kv_clear_value(&w->kvs[i]);
        free(w->kvs[i].key);
    }
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].owned);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* The writer entry for `key`, created at the end (with its value cleared) when absent. */
static lc_status gw_slot(lc_gguf_writer *w, const char *key, const char *fn, gw_kv **out) {
    if (!w || !key) return lc_error(LC_ERR_INVALID_ARG, "%s: writer or key is NULL", fn);
    size_t n = strlen(key);
    if (n == 0) return lc_error(LC_ERR_INVALID_ARG, "%s: empty key", fn);
    if ((uint64_t)n > LC_GGUF_MAX_STRING)
        return lc_error(LC_ERR_INVALID_ARG, "%s: key of %zu bytes exceeds the 1 GiB string limit", fn, n);
    for (size_t i = 0; i < w->n_kv; i++)
        if (w->kvs[i].key_len == n && memcmp(w->kvs[i].key, key, n) == 0) {
            gw_kv_clear_value(&w->kvs[i]);
            *out = &w->kvs[i];
            return LC_OK;
        }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        gw_kv *k = realloc(w->kvs, cap * sizeof *k);
        if (!k) return lc_error(LC_ERR_NOMEM, "%s('%s'): out of host memory", fn, key);
        w->kvs = k;
        w->cap_kv = cap;
    }
    gw_kv *kv = &w->kvs[w->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->key = dup_bytes(key, n);
    if (!kv->key) return lc_error(LC_ERR_NOMEM, "%s('%s'): out of host memory", fn, key);
    kv->key_len = n;
    w->n_kv++;
    *out = kv;
    return LC_OK;
}

static lc_status gw_set_scalar(lc_gguf_writer *w, const char *key, int type, const void *v, const char *fn) {
    gw_kv *kv = NULL;
    lc_status st = gw_slot(w, key, fn, &kv);
    if (st) return st;
    kv->type = type;
    memset(kv->raw, 0, sizeof kv->raw);
    memcpy(kv->raw, v, lc_gguf_value_size(type));
    return LC_OK;
}

#define LC_GGUF_SETTER(fname, ctype, gtype) \
    lc_status fname(lc_gguf_writer *w, const char *key, ctype v) { return gw_set_scalar(w, key, gtype, &v, #fname); }

LC_GGUF_SETTER(lc_gguf_writer_set_u8, uint8_t, LC_GGUF_UINT8)
LC_GGUF_SETTER(lc_gguf_writer_set_i8, int8_t, LC_GGUF_INT8)
LC_GGUF_SETTER(lc_gguf_writer_set_u16, uint16_t, LC_GGUF_UINT16)
LC_GGUF_SETTER(lc_gguf_writer_set_i16, int16_t, LC_GGUF_INT16)
LC_GGUF_SETTER(lc_gguf_writer_set_u32, uint32_t, LC_GGUF_UINT32)
LC_GGUF_SETTER(lc_gguf_writer_set_i32, int32_t, LC_GGUF_INT32)
LC_GGUF_SETTER(lc_gguf_writer_set_u64, uint64_t, LC_GGUF_UINT64)
LC_GGUF_SETTER(lc_gguf_writer_set_i64, int64_t, LC_GGUF_INT64)
LC_GGUF_SETTER(lc_gguf_writer_set_f32, float, LC_GGUF_FLOAT32)
LC_GGUF_SETTER(lc_gguf_writer_set_f64, double, LC_GGUF_FLOAT64)
#undef LC_GGUF_SETTER

lc_status lc_gguf_writer_set_bool(lc_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return gw_set_scalar(w, key, LC_GGUF_BOOL, &b, "lc_gguf_writer_set_bool");
}

lc_status lc_gguf_writer_set_string_n(lc_gguf_writer *w, const char *key, const char *v, size_t len) {
    if (!v && len) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_set_string('%s'): value is NULL", key ? key : "");
    if ((uint64_t)len > LC_GGUF_MAX_STRING)
        return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_set_string('%s'): %zu bytes exceed the 1 GiB string limit",
                        key ? key : "", len);
    char *s = dup_bytes(v ? v : "", len);
    if (!s) return lc_error(LC_ERR_NOMEM, "lc_gguf_writer_set_string('%s'): out of host memory", key ? key : "");
    gw_kv *kv = NULL;
    lc_status st = gw_slot(w, key, "lc_gguf_writer_set_string", &kv);
    if (st) {
        free(s);
        return st;
    }
    kv->type = LC_GGUF_STRING;
    kv->str = s;
    kv->str_len = len;
    return LC_OK;
}

lc_status lc_gguf_writer_set_string(lc_gguf_writer *w, const char *key, const char *v) {
    if (!v) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_set_string('%s'): value is NULL", key ? key : "");
    return lc_gguf_writer_set_string_n(w, key, v, strlen(v));
}

lc_status lc_gguf_writer_set_arr(lc_gguf_writer *w, const char *key, lc_gguf_type elem_type, const void *data,
                                 uint64_t n) {
    const char *k = key ? key : "";
    size_t es = lc_gguf_value_size(elem_type);
    if (es == 0)
        return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_set_arr('%s'): element type %s is not numeric or bool "
                        "(use lc_gguf_writer_set_arr_str for strings; arrays of arrays are not allowed)",
                        k, lc_gguf_type_name(elem_type));
    if (n > LC_GGUF_MAX_ARRAY)
        return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_set_arr('%s'): %" PRIu64 " elements exceed the limit of 2^30",
                        k, n);
    if (!data && n) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_set_arr('%s'): data is NULL", k);
    void *copy = NULL;
    if (n) {
        copy = malloc((size_t)n * es);
        if (!copy) return lc_error(LC_ERR_NOMEM, "lc_gguf_writer_set_arr('%s'): out of host memory", k);
        memcpy(copy, data, (size_t)n * es);
    }
    gw_kv *kv = NULL;
    lc_status st = gw_slot(w, key, "lc_gguf_writer_set_arr", &kv);
    if (st) {
        free(copy);
        return st;
    }
    kv->type = LC_GGUF_ARRAY;
    kv->elem_type = elem_type;
    kv->count = n;
    kv->data = copy;
    return LC_OK;
}

lc_status lc_gguf_writer_set_arr_str(lc_gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                                     uint64_t n) {
    const char *k = key ? key : "";
    if (n > LC_GGUF_MAX_ARRAY)
        return lc_error(LC_ERR_INVALID_ARG,
                        "lc_gguf_writer_set_arr_str('%s'): %" PRIu64 " elements exceed the limit of 2^30", k, n);
    if (!strs && n) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_set_arr_str('%s'): strs is NULL", k);
    char **copies = n ? calloc((size_t)n, sizeof *copies) : NULL;
    size_t *ls = n ? malloc((size_t)n * sizeof *ls) : NULL;
    lc_status st = LC_OK;
    if (n && (!copies || !ls)) st = lc_error(LC_ERR_NOMEM, "lc_gguf_writer_set_arr_str('%s'): out of host memory", k);
    for (uint64_t i = 0; st == LC_OK && i < n; i++) {
        if (!strs[i] && (!lens || lens[i]))
            st = lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_set_arr_str('%s'): string %" PRIu64 " is NULL", k, i);
        else {
            ls[i] = lens ? lens[i] : strlen(strs[i]);
            if ((uint64_t)ls[i] > LC_GGUF_MAX_STRING)
                st = lc_error(LC_ERR_INVALID_ARG,
                              "lc_gguf_writer_set_arr_str('%s'): string %" PRIu64 " exceeds the 1 GiB limit", k, i);
            else if (!(copies[i] = dup_bytes(strs[i] ? strs[i] : "", ls[i])))
                st = lc_error(LC_ERR_NOMEM, "lc_gguf_writer_set_arr_str('%s'): out of host memory", k);
        }
    }
    gw_kv *kv = NULL;
    if (st == LC_OK) st = gw_slot(w, key, "lc_gguf_writer_set_arr_str", &kv);
    if (st != LC_OK) {
        for (uint64_t i = 0; copies && i < n; i++) free(copies[i]);
        free(copies);
        free(ls);
        return st;
    }
    kv->type = LC_GGUF_ARRAY;
    kv->elem_type = LC_GGUF_STRING;
    kv->count = n;
    kv->strs = copies;
    kv->lens = ls;
    return LC_OK;
}

lc_status lc_gguf_writer_copy_kv(lc_gguf_writer *w, const lc_gguf *f, int64_t kid) {
    const char *key = lc_gguf_key(f, kid);
    if (!key)
        return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_copy_kv: key id %" PRId64 " out of range (%" PRId64 " keys)",
                        kid, lc_gguf_n_kv(f));
    if (!w) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_copy_kv: writer is NULL");
    int type = lc_gguf_kv_type(f, kid);
    if (type == LC_GGUF_STRING) {
        const char *s = NULL;
        size_t len = 0;
        lc_status st = lc_gguf_kv_get_str(f, kid, &s, &len);
        return st ? st : lc_gguf_writer_set_string_n(w, key, s, len);
    }
    if (type != LC_GGUF_ARRAY) return gw_set_scalar(w, key, type, lc_gguf_kv_raw(f, kid), "lc_gguf_writer_copy_kv");
    int et = lc_gguf_arr_type(f, kid);
    uint64_t n = lc_gguf_arr_count(f, kid);
    if (et != LC_GGUF_STRING) return lc_gguf_writer_set_arr(w, key, (lc_gguf_type)et, lc_gguf_arr_data(f, kid), n);
    const char **strs = n ? malloc((size_t)n * sizeof *strs) : NULL;
    size_t *lens = n ? malloc((size_t)n * sizeof *lens) : NULL;
    lc_status st = LC_OK;
    if (n && (!strs || !lens)) st = lc_error(LC_ERR_NOMEM, "lc_gguf_writer_copy_kv('%s'): out of host memory", key);
    for (uint64_t i = 0; st == LC_OK && i < n; i++) st = lc_gguf_arr_get_str(f, kid, i, &strs[i], &lens[i]);
    if (st == LC_OK) st = lc_gguf_writer_set_arr_str(w, key, strs, lens, n);
    free(strs);
    free(lens);
    return st;
}

lc_status lc_gguf_writer_remove_kv(lc_gguf_writer *w, const char *key) {
    if (!w || !key) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_remove_kv: writer or key is NULL");
    size_t n = strlen(key);
    for (size_t i = 0; i < w->n_kv; i++)
        if (w->kvs[i].key_len == n && memcmp(w->kvs[i].key, key, n) == 0) {
            gw_kv_clear_value(&w->kvs[i]);
            free(w->kvs[i].key);
            memmove(&w->kvs[i], &w->kvs[i + 1], (w->n_kv - i - 1) * sizeof *w->kvs);
            w->n_kv--;
            break;
        }
    return LC_OK;
}

static lc_status gw_add_tensor(lc_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                               const void *data, size_t size, bool copy, const char *fn) {
    if (!w || !name || !ne) return lc_error(LC_ERR_INVALID_ARG, "%s: writer, name or ne is NULL", fn);
    size_t n = strlen(name);
    if (n == 0 || n >= LC_GGUF_NAME_MAX)
        return lc_error(LC_ERR_INVALID_ARG, "%s('%s'): tensor name length %zu, expected 1..%d bytes", fn, name, n,
                        LC_GGUF_NAME_MAX - 1);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return lc_error(LC_ERR_INVALID_ARG, "%s('%s'): a tensor with this name was already added", fn, name);
    int64_t block = 0;
    const char *tname = NULL;
    if (!lc_gguf_ggml_type_traits(type, &block, NULL, &tname))
        return lc_error(LC_ERR_INVALID_ARG, "%s('%s'): unknown ggml type id %d", fn, name, type);
    if (n_dims < 1 || n_dims > LC_GGUF_MAX_DIMS)
        return lc_error(LC_ERR_INVALID_ARG, "%s('%s'): n_dims %d, expected 1..%d", fn, name, n_dims, LC_GGUF_MAX_DIMS);
    int64_t full[4] = {1, 1, 1, 1};
    for (int j = 0; j < n_dims; j++) {
        if (ne[j] < 0) return lc_error(LC_ERR_INVALID_ARG, "%s('%s'): ne[%d] = %" PRId64 " is negative", fn, name, j, ne[j]);
        full[j] = ne[j];
    }
    uint64_t bytes = 0;
    int bad = lc_gguf_tensor_nbytes(type, full, &bytes);
    if (bad == 2)
        return lc_error(LC_ERR_INVALID_ARG, "%s('%s'): ne[0] = %" PRId64 " is not a multiple of the %s block size %" PRId64,
                        fn, name, full[0], tname, block);
    if (bad)
        return lc_error(LC_ERR_INVALID_ARG, "%s('%s'): ne = {%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                        "} overflows", fn, name, full[0], full[1], full[2], full[3]);
    if ((uint64_t)size != bytes)
        return lc_error(LC_ERR_INVALID_ARG, "%s('%s'): %zu bytes given, %s ne = {%" PRId64 ", %" PRId64 ", %" PRId64
                        ", %" PRId64 "} needs %" PRIu64, fn, name, size, tname, full[0], full[1], full[2], full[3],
                        bytes);
    if (!data && size) return lc_error(LC_ERR_INVALID_ARG, "%s('%s'): data is NULL", fn, name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        gw_tensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t) return lc_error(LC_ERR_NOMEM, "%s('%s'): out of host memory", fn, name);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    gw_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, n + 1);
    t->type = type;
    memcpy(t->ne, full, sizeof full);
    t->size = bytes;
    t->data = data;
    if (copy && size) {
        t->owned = malloc(size);
        if (!t->owned) return lc_error(LC_ERR_NOMEM, "%s('%s'): out of host memory for %zu bytes", fn, name, size);
        memcpy(t->owned, data, size);
        t->data = t->owned;
    }
    w->n_tensors++;
    return LC_OK;
}

lc_status lc_gguf_writer_add_tensor(lc_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                                    const void *data, size_t size) {
    return gw_add_tensor(w, name, type, n_dims, ne, data, size, true, "lc_gguf_writer_add_tensor");
}

lc_status lc_gguf_writer_add_tensor_ref(lc_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                                        const void *data, size_t size) {
    return gw_add_tensor(w, name, type, n_dims, ne, data, size, false, "lc_gguf_writer_add_tensor_ref");
}

/* Output: a FILE or a memory buffer of known size. */
typedef struct gw_sink {
    FILE *fp;
    uint8_t *mem;
    size_t len, cap; /* cap: size of mem */
    const char *path;
} gw_sink;

static lc_status sink_put(gw_sink *s, const void *p, size_t n) {
    if (n == 0) return LC_OK;
    if (s->fp) {
        if (fwrite(p, 1, n, s->fp) != n)
            return lc_error(LC_ERR_IO, "gguf writer: %s: write failed at byte %zu: %s", s->path, s->len, strerror(errno));
    } else {
        if (n > s->cap - s->len) /* gw_total_size and gw_emit disagree: a bug, reported, not a crash */
            return lc_error(LC_ERR_STATE, "gguf writer: internal size mismatch at byte %zu", s->len);
        memcpy(s->mem + s->len, p, n);
    }
    s->len += n;
    return LC_OK;
}

static lc_status sink_zeros(gw_sink *s, size_t n) {
    static const uint8_t zeros[64] = {0};
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        lc_status st = sink_put(s, zeros, k);
        if (st) return st;
        n -= k;
    }
    return LC_OK;
}

static lc_status sink_u64(gw_sink *s, uint64_t v) { return sink_put(s, &v, 8); }
static lc_status sink_u32(gw_sink *s, uint32_t v) { return sink_put(s, &v, 4); }
static lc_status sink_str(gw_sink *s, const char *p, size_t n) {
    lc_status st = sink_u64(s, n);
    return st ? st : sink_put(s, p, n);
}

/* Alignment the writer will use; an invalid general.alignment is an error. */
static lc_status gw_alignment(const lc_gguf_writer *w, uint32_t *align) {
    *align = LC_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        const gw_kv *kv = &w->kvs[i];
        if (strcmp(kv->key, "general.alignment") != 0) continue;
        if (kv->type != LC_GGUF_UINT32)
            return lc_error(LC_ERR_INVALID_ARG, "gguf writer: 'general.alignment' has type %s, must be u32",
                            lc_gguf_type_name(kv->type));
        uint32_t a;
        memcpy(&a, kv->raw, 4);
        if (!lc_gguf_is_pow2(a))
            return lc_error(LC_ERR_INVALID_ARG, "gguf writer: 'general.alignment' = %" PRIu32
                            " is not a nonzero power of two", a);
        *align = a;
    }
    return LC_OK;
}

/* ggml_n_dims: trailing 1s dropped, at least 1. */
static int gw_n_dims(const gw_tensor *t) {
    int n = 4;
    while (n > 1 && t->ne[n - 1] == 1) n--;
    return n;
}

/* Bytes of the header, kvs and tensor infos (before the padding to the data blob). */
static uint64_t gw_meta_size(const lc_gguf_writer *w) {
    uint64_t n = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < w->n_kv; i++) {
        const gw_kv *kv = &w->kvs[i];
        n += 8 + kv->key_len + 4;
        if (kv->type == LC_GGUF_STRING) n += 8 + kv->str_len;
        else if (kv->type == LC_GGUF_ARRAY) {
            n += 4 + 8;
            if (kv->elem_type == LC_GGUF_STRING)
                for (uint64_t j = 0; j < kv->count; j++) n += 8 + kv->lens[j];
            else
                n += kv->count * lc_gguf_value_size(kv->elem_type);
        } else
            n += lc_gguf_value_size(kv->type);
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        n += 8 + strlen(w->tensors[i].name) + 4 + 8 * (uint64_t)gw_n_dims(&w->tensors[i]) + 4 + 8;
    return n;
}

static lc_status gw_emit(const lc_gguf_writer *w, uint32_t align, gw_sink *s) {
    lc_status st = sink_put(s, LC_GGUF_MAGIC, 4);
    if (!st) st = sink_u32(s, LC_GGUF_VERSION);
    if (!st) st = sink_u64(s, (uint64_t)w->n_tensors);
    if (!st) st = sink_u64(s, (uint64_t)w->n_kv);
    for (size_t i = 0; !st && i < w->n_kv; i++) {
        const gw_kv *kv = &w->kvs[i];
        st = sink_str(s, kv->key, kv->key_len);
        if (!st) st = sink_u32(s, (uint32_t)kv->type);
        if (st) break;
        if (kv->type == LC_GGUF_STRING) {
            st = sink_str(s, kv->str, kv->str_len);
        } else if (kv->type == LC_GGUF_ARRAY) {
            st = sink_u32(s, (uint32_t)kv->elem_type);
            if (!st) st = sink_u64(s, kv->count);
            if (kv->elem_type == LC_GGUF_STRING)
                for (uint64_t j = 0; !st && j < kv->count; j++) st = sink_str(s, kv->strs[j], kv->lens[j]);
            else if (!st)
                st = sink_put(s, kv->data, (size_t)kv->count * lc_gguf_value_size(kv->elem_type));
        } else {
            st = sink_put(s, kv->raw, lc_gguf_value_size(kv->type));
        }
    }
    uint64_t off = 0;
    for (size_t i = 0; !st && i < w->n_tensors; i++) {
        const gw_tensor *t = &w->tensors[i];
        int nd = gw_n_dims(t);
        st = sink_str(s, t->name, strlen(t->name));
        if (!st) st = sink_u32(s, (uint32_t)nd);
        for (int j = 0; !st && j < nd; j++) st = sink_u64(s, (uint64_t)t->ne[j]);
        if (!st) st = sink_u32(s, (uint32_t)t->type);
        if (!st) st = sink_u64(s, off);
        uint64_t padded = 0;
        lc_gguf_pad(t->size, align, &padded);
        off += padded;
    }
    if (st) return st;
    if (w->n_tensors > 0) {
        uint64_t start = 0;
        lc_gguf_pad(s->len, align, &start);
        st = sink_zeros(s, (size_t)(start - s->len));
    }
    for (size_t i = 0; !st && i < w->n_tensors; i++) {
        const gw_tensor *t = &w->tensors[i];
        uint64_t padded = 0;
        lc_gguf_pad(t->size, align, &padded);
        st = sink_put(s, t->data, (size_t)t->size);
        if (!st) st = sink_zeros(s, (size_t)(padded - t->size));
    }
    return st;
}

/* Total bytes of the file image; false when it overflows. */
static bool gw_total_size(const lc_gguf_writer *w, uint32_t align, uint64_t *total) {
    uint64_t n = gw_meta_size(w);
    if (w->n_tensors == 0) {
        *total = n;
        return true;
    }
    if (!lc_gguf_pad(n, align, &n)) return false;
    for (size_t i = 0; i < w->n_tensors; i++) {
        uint64_t padded;
        if (!lc_gguf_pad(w->tensors[i].size, align, &padded) || padded > UINT64_MAX - n) return false;
        n += padded;
    }
    *total = n;
    return true;
}

lc_status lc_gguf_writer_write_memory(const lc_gguf_writer *w, void **data, size_t *size) {
    if (!w || !data || !size) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_write_memory: NULL argument");
    *data = NULL;
    *size = 0;
    uint32_t align;
    lc_status st = gw_alignment(w, &align);
    if (st) return st;
    uint64_t total;
    if (!gw_total_size(w, align, &total) || total > (uint64_t)SIZE_MAX)
        return lc_error(LC_ERR_NOMEM, "lc_gguf_writer_write_memory: the file image does not fit in memory");
    gw_sink s = {.mem = malloc(total ? (size_t)total : 1), .cap = (size_t)total, .path = "<memory>"};
    if (!s.mem)
        return lc_error(LC_ERR_NOMEM, "lc_gguf_writer_write_memory: out of host memory for %" PRIu64 " bytes", total);
    st = gw_emit(w, align, &s);
    if (st) {
        free(s.mem);
        return st;
    }
    *data = s.mem;
    *size = s.len;
    return LC_OK;
}

lc_status lc_gguf_writer_write(const lc_gguf_writer *w, const char *path) {
    if (!w || !path) return lc_error(LC_ERR_INVALID_ARG, "lc_gguf_writer_write: writer or path is NULL");
    uint32_t align;
    lc_status st = gw_alignment(w, &align);
    if (st) return st;
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp) return lc_error(LC_ERR_NOMEM, "gguf writer: %s: out of host memory", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    gw_sink s = {.fp = fopen(tmp, "wb"), .path = tmp};
    if (!s.fp) {
        st = lc_error(LC_ERR_IO, "gguf writer: %s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    st = gw_emit(w, align, &s);
    if (!st && fflush(s.fp) != 0)
        st = lc_error(LC_ERR_IO, "gguf writer: %s: flush failed: %s", tmp, strerror(errno));
    if (!st && fsync(fileno(s.fp)) != 0)
        st = lc_error(LC_ERR_IO, "gguf writer: %s: fsync failed: %s", tmp, strerror(errno));
    if (fclose(s.fp) != 0 && !st) st = lc_error(LC_ERR_IO, "gguf writer: %s: close failed: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0)
        st = lc_error(LC_ERR_IO, "gguf writer: cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st) remove(tmp);
    free(tmp);
    return st;
}
