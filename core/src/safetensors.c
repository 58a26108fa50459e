/* lorac — safetensors reader and writer (format, checks and writer order: lorac/safetensors.h,
 * reference/peft-lora.md §3, from huggingface/safetensors README.md and src/tensor.rs).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lorac/dtype.h"
#include "lorac/safetensors.h"

#ifdef LORAC_HAVE_CJSON
#include <cjson/cJSON.h>
#endif

/* ---- dtypes ------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int bits;
} st_dtypes[LC_ST_DTYPE_COUNT] = {
    [LC_ST_BOOL] = {"BOOL", 8},         [LC_ST_F4] = {"F4", 4},
    [LC_ST_F6_E2M3] = {"F6_E2M3", 6},   [LC_ST_F6_E3M2] = {"F6_E3M2", 6},
    [LC_ST_U8] = {"U8", 8},             [LC_ST_I8] = {"I8", 8},
    [LC_ST_F8_E5M2] = {"F8_E5M2", 8},   [LC_ST_F8_E4M3] = {"F8_E4M3", 8},
    [LC_ST_F8_E8M0] = {"F8_E8M0", 8},   [LC_ST_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8},
    [LC_ST_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8},
    [LC_ST_I16] = {"I16", 16},          [LC_ST_U16] = {"U16", 16},
    [LC_ST_F16] = {"F16", 16},          [LC_ST_BF16] = {"BF16", 16},
    [LC_ST_I32] = {"I32", 32},          [LC_ST_U32] = {"U32", 32},
    [LC_ST_F32] = {"F32", 32},          [LC_ST_C64] = {"C64", 64},
    [LC_ST_F64] = {"F64", 64},          [LC_ST_I64] = {"I64", 64},
    [LC_ST_U64] = {"U64", 64},
};

const char *lc_st_dtype_name(int dtype) {
    return (dtype >= 0 && dtype < LC_ST_DTYPE_COUNT) ? st_dtypes[dtype].name : "unknown";
}

int lc_st_dtype_bits(int dtype) { return (dtype >= 0 && dtype < LC_ST_DTYPE_COUNT) ? st_dtypes[dtype].bits : 0; }

int lc_st_dtype_from_name(const char *name) {
    if (!name) return -1;
    for (int d = 0; d < LC_ST_DTYPE_COUNT; d++)
        if (strcmp(name, st_dtypes[d].name) == 0) return d;
    return -1;
}

/* numel of a shape and its byte size; false on overflow (INT64) or a non-whole byte count
 * (*whole set false in that case). Zero-sized dimensions count as 1 in the overflow check, as
 * the GGUF reader does, so an absurd shape is refused even when the tensor is empty. */
static bool shape_bytes(int dtype, int n_dims, const int64_t *shape, int64_t *numel, uint64_t *bytes, bool *whole) {
    int64_t n = 1, guard = 1;
    bool zero = false;
    *whole = true;
    for (int i = 0; i < n_dims; i++) {
        int64_t d = shape[i];
        if (d < 0) return false;
        if (d == 0) {
            zero = true;
            continue;
        }
        if (guard > INT64_MAX / d) return false;
        guard *= d;
    }
    n = zero ? 0 : guard;
    const int bits = lc_st_dtype_bits(dtype);
    if (bits == 0) return false;
    if ((uint64_t)guard > UINT64_MAX / (uint64_t)bits) return false;
    const uint64_t total_bits = (uint64_t)n * (uint64_t)bits;
    if (total_bits % 8) {
        *whole = false;
        return false;
    }
    *numel = n;
    *bytes = total_bits / 8;
    return true;
}

/* ---- reader ------------------------------------------------------------------------------- */

struct lc_safetensors {
    char *path;
    void *map;              /* mmap'ed region (NULL for memory images) */
    size_t map_len;
    const uint8_t *base;
    uint64_t size;
    uint64_t header_size;   /* N */
    int64_t n_tensors;
    lc_st_tensor_info *tensors;
    int64_t n_meta;
    char **meta_keys;
    char **meta_vals;
};

void lc_safetensors_close(lc_safetensors *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    for (int64_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    free(f);
}

const char *lc_safetensors_path(const lc_safetensors *f) { return f ? f->path : NULL; }
uint64_t lc_safetensors_header_size(const lc_safetensors *f) { return f ? f->header_size : 0; }
uint64_t lc_safetensors_file_size(const lc_safetensors *f) { return f ? f->size : 0; }
int64_t lc_safetensors_n_tensors(const lc_safetensors *f) { return f ? f->n_tensors : 0; }

const lc_st_tensor_info *lc_safetensors_tensor(const lc_safetensors *f, int64_t i) {
    return (f && i >= 0 && i < f->n_tensors) ? &f->tensors[i] : NULL;
}

int64_t lc_safetensors_find(const lc_safetensors *f, const char *name) {
    if (!f || !name) return -1;
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return i;
    return -1;
}

int64_t lc_safetensors_n_metadata(const lc_safetensors *f) { return f ? f->n_meta : 0; }
const char *lc_safetensors_metadata_key(const lc_safetensors *f, int64_t i) {
    return (f && i >= 0 && i < f->n_meta) ? f->meta_keys[i] : NULL;
}
const char *lc_safetensors_metadata_value(const lc_safetensors *f, int64_t i) {
    return (f && i >= 0 && i < f->n_meta) ? f->meta_vals[i] : NULL;
}
const char *lc_safetensors_metadata_get(const lc_safetensors *f, const char *key) {
    if (!f || !key) return NULL;
    for (int64_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

lc_status lc_safetensors_read_f32(const lc_safetensors *f, int64_t i, float *dst, int64_t n) {
    if (!f || !dst) return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_read_f32: file or dst is NULL");
    if (i < 0 || i >= f->n_tensors)
        return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_read_f32: %s: tensor id %lld out of range (%lld tensors)",
                        f->path, (long long)i, (long long)f->n_tensors);
    const lc_st_tensor_info *t = &f->tensors[i];
    if (n != t->numel)
        return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_read_f32: %s: tensor '%s' has %lld elements, asked for %lld",
                        f->path, t->name, (long long)t->numel, (long long)n);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case LC_ST_F32:
        if (n) memcpy(dst, p, (size_t)n * 4); /* little-endian host (lorac's platforms) */
        return LC_OK;
    case LC_ST_F16:
        for (int64_t k = 0; k < n; k++) {
            uint16_t h;
            memcpy(&h, p + 2 * k, 2);
            dst[k] = lc_fp16_to_fp32(h);
        }
        return LC_OK;
    case LC_ST_BF16:
        for (int64_t k = 0; k < n; k++) {
            uint16_t b;
            memcpy(&b, p + 2 * k, 2);
            dst[k] = lc_bf16_to_fp32(b);
        }
        return LC_OK;
    case LC_ST_F64:
        for (int64_t k = 0; k < n; k++) {
            double d;
            memcpy(&d, p + 8 * k, 8);
            dst[k] = (float)d;
        }
        return LC_OK;
    default:
        return lc_error(LC_ERR_DTYPE, "safetensors: %s: tensor '%s' has dtype %s; only F32, F16, BF16 and F64 convert "
                        "to F32", f->path, t->name, lc_st_dtype_name(t->dtype));
    }
}

#ifdef LORAC_HAVE_CJSON

static int shape_str(char *dst, size_t cap, int n_dims, const int64_t *shape) {
    size_t k = 0;
    int w = snprintf(dst, cap, "[");
    if (w > 0) k += (size_t)w;
    for (int i = 0; i < n_dims && k < cap; i++) {
        w = snprintf(dst + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
        if (w > 0) k += (size_t)w;
    }
    if (k < cap) snprintf(dst + k, cap - k, "]");
    return 0;
}

#define ST_FAIL(f, ...) st_fail((f), __VA_ARGS__)

static lc_status st_fail(const lc_safetensors *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lc_status st_fail(const lc_safetensors *f, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lc_error(LC_ERR_FORMAT, "safetensors: %s: %s", f->path, msg);
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF); NUL bytes are refused too. Returns
 * the byte offset of the first bad byte, or n when the text is valid. */
static size_t utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0) return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += len;
    }
    return n;
}

/* A JSON number that is a non-negative integer exactly representable in a double (<= 2^53). */
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (!isfinite(v) || v < 0 || v != floor(v) || v > 9007199254740992.0) return false;
    *out = (uint64_t)v;
    return true;
}

typedef struct st_span {
    uint64_t begin, end;
    int64_t id;
} st_span;

static int span_cmp(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static lc_status parse_metadata(lc_safetensors *f, const cJSON *meta) {
    if (cJSON_IsNull(meta)) return LC_OK;
    if (!cJSON_IsObject(meta)) return ST_FAIL(f, "header field '__metadata__' must be an object of strings");
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = calloc((size_t)n + 1, sizeof *f->meta_keys);
    f->meta_vals = calloc((size_t)n + 1, sizeof *f->meta_vals);
    if (!f->meta_keys || !f->meta_vals) return lc_error(LC_ERR_NOMEM, "safetensors: %s: out of host memory", f->path);
    for (const cJSON *e = meta->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return ST_FAIL(f, "__metadata__ entry '%s' must be a string (safetensors metadata is str -> str)",
                           e->string ? e->string : "");
        f->meta_keys[f->n_meta] = dup_str(e->string ? e->string : "");
        f->meta_vals[f->n_meta] = dup_str(e->valuestring);
        if (!f->meta_keys[f->n_meta] || !f->meta_vals[f->n_meta]) {
            free(f->meta_keys[f->n_meta]);
            free(f->meta_vals[f->n_meta]);
            return lc_error(LC_ERR_NOMEM, "safetensors: %s: out of host memory", f->path);
        }
        f->n_meta++;
    }
    return LC_OK;
}

static lc_status parse_entry(lc_safetensors *f, const cJSON *e, uint64_t data_size, lc_st_tensor_info *t) {
    const char *name = t->name;
    if (!cJSON_IsObject(e)) return ST_FAIL(f, "tensor '%s': entry must be an object {dtype, shape, data_offsets}", name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd)) return ST_FAIL(f, "tensor '%s': field 'dtype' missing or not a string", name);
    int dt = lc_st_dtype_from_name(jd->valuestring);
    if (dt < 0) return ST_FAIL(f, "tensor '%s': field 'dtype': unknown dtype '%s'", name, jd->valuestring);
    t->dtype = (lc_st_dtype)dt;
    if (!cJSON_IsArray(js)) return ST_FAIL(f, "tensor '%s': field 'shape' missing or not an array", name);
    int nd = cJSON_GetArraySize(js);
    if (nd > LC_ST_MAX_DIMS)
        return ST_FAIL(f, "tensor '%s': field 'shape' has %d dimensions; lorac reads at most %d", name, nd, LC_ST_MAX_DIMS);
    t->n_dims = nd;
    for (int i = 0; i < LC_ST_MAX_DIMS; i++) t->shape[i] = 1;
    int k = 0;
    for (const cJSON *d = js->child; d; d = d->next, k++) {
        uint64_t v;
        if (!json_uint(d, &v) || v > (uint64_t)INT64_MAX)
            return ST_FAIL(f, "tensor '%s': field 'shape'[%d] is not a non-negative integer", name, k);
        t->shape[k] = (int64_t)v;
    }
    char sh[160];
    shape_str(sh, sizeof sh, t->n_dims, t->shape);
    uint64_t bytes = 0;
    bool whole;
    if (!shape_bytes(dt, nd, t->shape, &t->numel, &bytes, &whole)) {
        if (!whole)
            return ST_FAIL(f, "tensor '%s': shape %s of %s is not a whole number of bytes", name, sh, lc_st_dtype_name(dt));
        return ST_FAIL(f, "tensor '%s': shape %s of %s overflows the element or byte count", name, sh, lc_st_dtype_name(dt));
    }
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return ST_FAIL(f, "tensor '%s': field 'data_offsets' missing or not an array [begin, end]", name);
    if (!json_uint(jo->child, &t->begin) || !json_uint(jo->child->next, &t->end))
        return ST_FAIL(f, "tensor '%s': field 'data_offsets' entries must be non-negative integers", name);
    if (t->begin > t->end)
        return ST_FAIL(f, "tensor '%s': data_offsets [%llu, %llu]: begin > end", name, (unsigned long long)t->begin,
                       (unsigned long long)t->end);
    if (t->end - t->begin != bytes)
        return ST_FAIL(f, "tensor '%s': data_offsets [%llu, %llu]: %llu bytes, but shape %s of %s needs %llu", name,
                       (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)(t->end - t->begin), sh, lc_st_dtype_name(dt), (unsigned long long)bytes);
    if (t->end > data_size)
        return ST_FAIL(f, "tensor '%s': data_offsets [%llu, %llu] run past the end of the file (data buffer is %llu bytes "
                       "from offset %llu)", name, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)data_size, (unsigned long long)(8 + f->header_size));
    t->size = bytes;
    t->offset = 8 + f->header_size + t->begin;
    t->data = f->base + t->offset;
    return LC_OK;
}

static lc_status parse(lc_safetensors *f) {
    if (f->size < 8)
        return ST_FAIL(f, "file is %llu bytes, shorter than the 8-byte header length", (unsigned long long)f->size);
    uint64_t n;
    memcpy(&n, f->base, 8);
    f->header_size = n;
    if (n > LC_ST_MAX_HEADER)
        return ST_FAIL(f, "offset 0: header length %llu exceeds the safetensors limit of %llu bytes",
                       (unsigned long long)n, (unsigned long long)LC_ST_MAX_HEADER);
    if (n > f->size - 8)
        return ST_FAIL(f, "offset 0: header length %llu runs past the end of the file (%llu bytes)", (unsigned long long)n,
                       (unsigned long long)f->size);
    const uint8_t *h = f->base + 8;
    if (n == 0 || h[0] != '{') return ST_FAIL(f, "offset 8: header does not start with '{'");
    size_t bad = utf8_check(h, (size_t)n);
    if (bad != n) return ST_FAIL(f, "offset %llu: header is not valid UTF-8 text", (unsigned long long)(8 + bad));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)h, (size_t)n, &end, 0);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        uint64_t off = (ep && ep >= (const char *)h && ep <= (const char *)h + n) ? (uint64_t)(ep - (const char *)h) : 0;
        return ST_FAIL(f, "offset %llu: header is not valid JSON", (unsigned long long)(8 + off));
    }
    lc_status st = LC_OK;
    for (const char *p = end; p && p < (const char *)h + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = ST_FAIL(f, "offset %llu: text after the header's JSON object (only space padding is allowed)",
                         (unsigned long long)(8 + (uint64_t)(p - (const char *)h)));
            break;
        }
    if (!st && !cJSON_IsObject(root)) st = ST_FAIL(f, "header is not a JSON object");
    const uint64_t data_size = f->size - 8 - n;
    int count = st ? 0 : cJSON_GetArraySize(root);
    const char **keys = NULL;
    if (!st) {
        keys = calloc((size_t)count + 1, sizeof *keys);
        f->tensors = calloc((size_t)count + 1, sizeof *f->tensors);
        if (!keys || !f->tensors) st = lc_error(LC_ERR_NOMEM, "safetensors: %s: out of host memory", f->path);
    }
    if (!st) { /* duplicate keys: cJSON keeps them all */
        int k = 0;
        for (const cJSON *e = root->child; e; e = e->next) keys[k++] = e->string ? e->string : "";
        qsort(keys, (size_t)count, sizeof *keys, str_cmp);
        for (int i = 1; i < count && !st; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) st = ST_FAIL(f, "header has the key '%s' twice", keys[i]);
    }
    for (const cJSON *e = st ? NULL : root->child; e && !st; e = e->next) {
        const char *name = e->string ? e->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            st = parse_metadata(f, e);
            continue;
        }
        lc_st_tensor_info *t = &f->tensors[f->n_tensors];
        t->name = dup_str(name);
        if (!t->name) {
            st = lc_error(LC_ERR_NOMEM, "safetensors: %s: out of host memory", f->path);
            break;
        }
        f->n_tensors++;
        st = parse_entry(f, e, data_size, t);
    }
    cJSON_Delete(root);
    free(keys);
    if (st) return st;
    /* Contiguity: sorted by offsets, each begin equals the previous end, from 0 to the end. */
    st_span *sp = malloc(((size_t)f->n_tensors + 1) * sizeof *sp);
    if (!sp) return lc_error(LC_ERR_NOMEM, "safetensors: %s: out of host memory", f->path);
    for (int64_t i = 0; i < f->n_tensors; i++) sp[i] = (st_span){f->tensors[i].begin, f->tensors[i].end, i};
    qsort(sp, (size_t)f->n_tensors, sizeof *sp, span_cmp);
    uint64_t pos = 0;
    const char *prev = NULL;
    for (int64_t i = 0; i < f->n_tensors && !st; i++) {
        const lc_st_tensor_info *t = &f->tensors[sp[i].id];
        if (t->begin < pos)
            st = ST_FAIL(f, "tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' (which ends at %llu)", t->name,
                         (unsigned long long)t->begin, (unsigned long long)t->end, prev ? prev : "?",
                         (unsigned long long)pos);
        else if (t->begin > pos)
            st = ST_FAIL(f, "tensor '%s': data_offsets [%llu, %llu] leave a gap of %llu bytes after %s%s%s (offset %llu)",
                         t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                         (unsigned long long)(t->begin - pos), prev ? "tensor '" : "the start of the data buffer",
                         prev ? prev : "", prev ? "'" : "", (unsigned long long)pos);
        pos = t->end;
        prev = t->name;
    }
    free(sp);
    if (!st && pos != data_size)
        st = ST_FAIL(f, "data buffer is %llu bytes but the tensors cover %llu (8 + N + last end must equal the file size)",
                     (unsigned long long)data_size, (unsigned long long)pos);
    return st;
}

static lc_status finish_open(lc_safetensors *f, lc_safetensors **out) {
    lc_status st = parse(f);
    if (st) {
        lc_safetensors_close(f);
        return st;
    }
    *out = f;
    return LC_OK;
}

static lc_safetensors *new_handle(const char *name) {
    lc_safetensors *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->path = dup_str(name);
    if (!f->path) {
        free(f);
        return NULL;
    }
    return f;
}

lc_status lc_safetensors_open_memory(const void *data, size_t size, const char *name, lc_safetensors **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_open_memory: out is NULL");
    *out = NULL;
    if (!data && size) return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_open_memory: data is NULL");
    lc_safetensors *f = new_handle(name ? name : "<memory>");
    if (!f) return lc_error(LC_ERR_NOMEM, "lc_safetensors_open_memory: out of host memory");
    static const uint8_t empty[1] = {0};
    f->base = data ? data : empty;
    f->size = size;
    return finish_open(f, out);
}

lc_status lc_safetensors_open(const char *path, lc_safetensors **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_open: out is NULL");
    *out = NULL;
    if (!path) return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_open: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lc_error(LC_ERR_IO, "safetensors: %s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        lc_status st = lc_error(LC_ERR_IO, "safetensors: %s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return lc_error(LC_ERR_IO, "safetensors: %s: not a regular file", path);
    }
    lc_safetensors *f = new_handle(path);
    if (!f) {
        close(fd);
        return lc_error(LC_ERR_NOMEM, "safetensors: %s: out of host memory", path);
    }
    f->size = (uint64_t)sb.st_size;
    static const uint8_t empty[1] = {0};
    f->base = empty;
    if (f->size > 0) {
        if (f->size > (uint64_t)SIZE_MAX) {
            close(fd);
            lc_safetensors_close(f);
            return lc_error(LC_ERR_IO, "safetensors: %s: file too large to map", path);
        }
        void *m = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            lc_status st = lc_error(LC_ERR_IO, "safetensors: %s: mmap failed: %s", path, strerror(errno));
            close(fd);
            lc_safetensors_close(f);
            return st;
        }
        f->map = m;
        f->map_len = (size_t)f->size;
        f->base = m;
    }
    close(fd);
    return finish_open(f, out);
}

#else /* !LORAC_HAVE_CJSON */

lc_status lc_safetensors_open(const char *path, lc_safetensors **out) {
    if (out) *out = NULL;
    return lc_error(LC_ERR_UNSUPPORTED, "safetensors: %s: lorac was built without cJSON (libcjson-dev)",
                    path ? path : "(null)");
}

lc_status lc_safetensors_open_memory(const void *data, size_t size, const char *name, lc_safetensors **out) {
    (void)data;
    (void)size;
    if (out) *out = NULL;
    return lc_error(LC_ERR_UNSUPPORTED, "safetensors: %s: lorac was built without cJSON (libcjson-dev)",
                    name ? name : "<memory>");
}

#endif /* LORAC_HAVE_CJSON */

/* ---- writer ------------------------------------------------------------------------------- */

typedef struct sw_tensor {
    char *name;
    lc_st_dtype dtype;
    int n_dims;
    int64_t shape[LC_ST_MAX_DIMS];
    const void *data;
    void *owned;
    size_t size;
} sw_tensor;

struct lc_safetensors_writer {
    sw_tensor *t;
    int64_t n, cap;
    char **meta_keys, **meta_vals;
    int64_t n_meta, cap_meta;
};

lc_status lc_safetensors_writer_new(lc_safetensors_writer **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_writer_new: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? LC_OK : lc_error(LC_ERR_NOMEM, "lc_safetensors_writer_new: out of host memory");
}

void lc_safetensors_writer_free(lc_safetensors_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].owned);
    }
    free(w->t);
    for (int64_t i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_vals[i]);
    }
    free(w->meta_keys);
    free(w->meta_vals);
    free(w);
}

static char *sw_dup(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

lc_status lc_safetensors_writer_set_metadata(lc_safetensors_writer *w, const char *key, const char *value) {
    if (!w || !key || !value)
        return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_writer_set_metadata: writer, key or value is NULL");
    char *v = sw_dup(value);
    if (!v) return lc_error(LC_ERR_NOMEM, "lc_safetensors_writer_set_metadata: out of host memory");
    for (int64_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_vals[i]);
            w->meta_vals[i] = v;
            return LC_OK;
        }
    if (w->n_meta == w->cap_meta) {
        int64_t cap = w->cap_meta ? 2 * w->cap_meta : 4;
        char **k2 = realloc(w->meta_keys, (size_t)cap * sizeof *k2);
        if (k2) w->meta_keys = k2;
        char **v2 = k2 ? realloc(w->meta_vals, (size_t)cap * sizeof *v2) : NULL;
        if (v2) w->meta_vals = v2;
        if (!k2 || !v2) {
            free(v);
            return lc_error(LC_ERR_NOMEM, "lc_safetensors_writer_set_metadata: out of host memory");
        }
        w->cap_meta = cap;
    }
    char *k = sw_dup(key);
    if (!k) {
        free(v);
        return lc_error(LC_ERR_NOMEM, "lc_safetensors_writer_set_metadata: out of host memory");
    }
    w->meta_keys[w->n_meta] = k;
    w->meta_vals[w->n_meta] = v;
    w->n_meta++;
    return LC_OK;
}

static lc_status sw_add(lc_safetensors_writer *w, const char *name, lc_st_dtype dtype, int n_dims,
                        const int64_t *shape, const void *data, size_t size, bool copy) {
    const char *fn = copy ? "lc_safetensors_writer_add" : "lc_safetensors_writer_add_ref";
    if (!w || !name) return lc_error(LC_ERR_INVALID_ARG, "%s: writer or name is NULL", fn);
    if (!name[0] || strcmp(name, "__metadata__") == 0)
        return lc_error(LC_ERR_INVALID_ARG, "%s: tensor name '%s' is not allowed", fn, name);
    if ((int)dtype < 0 || dtype >= LC_ST_DTYPE_COUNT)
        return lc_error(LC_ERR_INVALID_ARG, "%s: tensor '%s': dtype %d out of range", fn, name, (int)dtype);
    if (n_dims < 0 || n_dims > LC_ST_MAX_DIMS || (n_dims > 0 && !shape))
        return lc_error(LC_ERR_INVALID_ARG, "%s: tensor '%s': n_dims = %d must be in 0..%d with a shape", fn, name,
                        n_dims, LC_ST_MAX_DIMS);
    int64_t numel;
    uint64_t bytes;
    bool whole;
    if (!shape_bytes(dtype, n_dims, shape, &numel, &bytes, &whole))
        return lc_error(LC_ERR_INVALID_ARG, "%s: tensor '%s': shape has a negative dimension, overflows, or is not a "
                        "whole number of bytes of %s", fn, name, lc_st_dtype_name(dtype));
    if (bytes != (uint64_t)size)
        return lc_error(LC_ERR_INVALID_ARG, "%s: tensor '%s': %zu bytes given, shape needs %llu", fn, name, size,
                        (unsigned long long)bytes);
    if (size && !data) return lc_error(LC_ERR_INVALID_ARG, "%s: tensor '%s': data is NULL", fn, name);
    for (int64_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return lc_error(LC_ERR_INVALID_ARG, "%s: tensor '%s' already added", fn, name);
    if (w->n == w->cap) {
        int64_t cap = w->cap ? 2 * w->cap : 16;
        sw_tensor *t2 = realloc(w->t, (size_t)cap * sizeof *t2);
        if (!t2) return lc_error(LC_ERR_NOMEM, "%s: out of host memory", fn);
        w->t = t2;
        w->cap = cap;
    }
    sw_tensor t = {.dtype = dtype, .n_dims = n_dims, .size = size};
    for (int i = 0; i < n_dims; i++) t.shape[i] = shape[i];
    t.name = sw_dup(name);
    if (!t.name) return lc_error(LC_ERR_NOMEM, "%s: out of host memory", fn);
    if (copy && size) {
        t.owned = malloc(size);
        if (!t.owned) {
            free(t.name);
            return lc_error(LC_ERR_NOMEM, "%s: out of host memory for '%s' (%zu bytes)", fn, name, size);
        }
        memcpy(t.owned, data, size);
        t.data = t.owned;
    } else {
        t.data = data;
    }
    w->t[w->n++] = t;
    return LC_OK;
}

lc_status lc_safetensors_writer_add(lc_safetensors_writer *w, const char *name, lc_st_dtype dtype, int n_dims,
                                    const int64_t *shape, const void *data, size_t size) {
    return sw_add(w, name, dtype, n_dims, shape, data, size, true);
}

lc_status lc_safetensors_writer_add_ref(lc_safetensors_writer *w, const char *name, lc_st_dtype dtype,
                                        int n_dims, const int64_t *shape, const void *data, size_t size) {
    return sw_add(w, name, dtype, n_dims, shape, data, size, false);
}

/* Growable text buffer for the header. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_u64(sbuf *b, uint64_t v) {
    char tmp[24];
    int k = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_put(b, tmp, (size_t)k);
}

/* A JSON string as serde_json writes it: '"' and '\\' escaped, \b \f \n \r \t short forms, other
 * control characters as \u00xx (lowercase hex), everything else (UTF-8 included) raw. */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, (const char *)p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static int sw_order_cmp(const void *a, const void *b) {
    const sw_tensor *x = *(const sw_tensor *const *)a, *y = *(const sw_tensor *const *)b;
    if (x->dtype != y->dtype) return x->dtype > y->dtype ? -1 : 1; /* dtype descending */
    return strcmp(x->name, y->name);                              /* then name ascending (bytes) */
}

/* The padded header (text in hdr) and the tensors in data order. */
static lc_status sw_prepare(const lc_safetensors_writer *w, sbuf *hdr, const sw_tensor ***order_out) {
    const sw_tensor **order = malloc(((size_t)w->n + 1) * sizeof *order);
    if (!order) return lc_error(LC_ERR_NOMEM, "safetensors writer: out of host memory");
    for (int64_t i = 0; i < w->n; i++) order[i] = &w->t[i];
    qsort(order, (size_t)w->n, sizeof *order, sw_order_cmp);
    sb_put(hdr, "{", 1);
    bool first = true;
    if (w->n_meta) {
        int64_t *mi = malloc((size_t)w->n_meta * sizeof *mi);
        if (!mi) {
            free(order);
            return lc_error(LC_ERR_NOMEM, "safetensors writer: out of host memory");
        }
        for (int64_t i = 0; i < w->n_meta; i++) mi[i] = i;
        for (int64_t i = 1; i < w->n_meta; i++) /* insertion sort by key: metadata is tiny */
            for (int64_t j = i; j > 0 && strcmp(w->meta_keys[mi[j - 1]], w->meta_keys[mi[j]]) > 0; j--) {
                int64_t t = mi[j];
                mi[j] = mi[j - 1];
                mi[j - 1] = t;
            }
        sb_str(hdr, "\"__metadata__\":{");
        for (int64_t i = 0; i < w->n_meta; i++) {
            if (i) sb_put(hdr, ",", 1);
            sb_json_str(hdr, w->meta_keys[mi[i]]);
            sb_put(hdr, ":", 1);
            sb_json_str(hdr, w->meta_vals[mi[i]]);
        }
        sb_put(hdr, "}", 1);
        free(mi);
        first = false;
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n; i++) {
        const sw_tensor *t = order[i];
        if (!first) sb_put(hdr, ",", 1);
        first = false;
        sb_json_str(hdr, t->name);
        sb_str(hdr, ":{\"dtype\":");
        sb_json_str(hdr, lc_st_dtype_name(t->dtype));
        sb_str(hdr, ",\"shape\":[");
        for (int d = 0; d < t->n_dims; d++) {
            if (d) sb_put(hdr, ",", 1);
            sb_u64(hdr, (uint64_t)t->shape[d]);
        }
        sb_str(hdr, "],\"data_offsets\":[");
        sb_u64(hdr, off);
        sb_put(hdr, ",", 1);
        off += t->size;
        sb_u64(hdr, off);
        sb_str(hdr, "]}");
    }
    sb_put(hdr, "}", 1);
    while (!hdr->oom && hdr->n % 8) sb_put(hdr, " ", 1);
    if (hdr->oom) {
        free(order);
        return lc_error(LC_ERR_NOMEM, "safetensors writer: out of host memory for the header");
    }
    *order_out = order;
    return LC_OK;
}

lc_status lc_safetensors_writer_write_memory(const lc_safetensors_writer *w, void **data, size_t *size) {
    if (!w || !data || !size)
        return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_writer_write_memory: writer, data or size is NULL");
    *data = NULL;
    *size = 0;
    sbuf hdr = {0};
    const sw_tensor **order = NULL;
    lc_status st = sw_prepare(w, &hdr, &order);
    if (st) {
        free(hdr.p);
        return st;
    }
    size_t total = 8 + hdr.n;
    for (int64_t i = 0; i < w->n; i++) total += order[i]->size;
    uint8_t *img = malloc(total ? total : 1);
    if (!img) {
        free(hdr.p);
        free(order);
        return lc_error(LC_ERR_NOMEM, "lc_safetensors_writer_write_memory: out of host memory (%zu bytes)", total);
    }
    uint64_t n = hdr.n;
    memcpy(img, &n, 8);
    memcpy(img + 8, hdr.p, hdr.n);
    size_t pos = 8 + hdr.n;
    for (int64_t i = 0; i < w->n; i++) {
        if (order[i]->size) memcpy(img + pos, order[i]->data, order[i]->size);
        pos += order[i]->size;
    }
    free(hdr.p);
    free(order);
    *data = img;
    *size = total;
    return LC_OK;
}

/* fsync the directory holding `path`, so a rename into it is durable. Best effort. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = sw_dup(".");
    } else {
        size_t n = (size_t)(slash - path);
        dir = malloc(n + 2);
        if (dir) {
            if (n == 0) {
                dir[0] = '/';
                dir[1] = 0;
            } else {
                memcpy(dir, path, n);
                dir[n] = 0;
            }
        }
    }
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

lc_status lc_safetensors_writer_write(const lc_safetensors_writer *w, const char *path) {
    if (!w || !path) return lc_error(LC_ERR_INVALID_ARG, "lc_safetensors_writer_write: writer or path is NULL");
    sbuf hdr = {0};
    const sw_tensor **order = NULL;
    lc_status st = sw_prepare(w, &hdr, &order);
    if (st) {
        free(hdr.p);
        return st;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        free(hdr.p);
        free(order);
        return lc_error(LC_ERR_NOMEM, "safetensors writer: %s: out of host memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        st = lc_error(LC_ERR_IO, "safetensors writer: %s: cannot create: %s", tmp, strerror(errno));
    } else {
        uint64_t n = hdr.n;
        if (fwrite(&n, 8, 1, fp) != 1 || fwrite(hdr.p, 1, hdr.n, fp) != hdr.n)
            st = lc_error(LC_ERR_IO, "safetensors writer: %s: write failed: %s", tmp, strerror(errno));
        for (int64_t i = 0; i < w->n && !st; i++)
            if (order[i]->size && fwrite(order[i]->data, 1, order[i]->size, fp) != order[i]->size)
                st = lc_error(LC_ERR_IO, "safetensors writer: %s: write of tensor '%s' failed: %s", tmp,
                              order[i]->name, strerror(errno));
        if (!st && fflush(fp) != 0)
            st = lc_error(LC_ERR_IO, "safetensors writer: %s: flush failed: %s", tmp, strerror(errno));
        if (!st && fsync(fileno(fp)) != 0)
            st = lc_error(LC_ERR_IO, "safetensors writer: %s: fsync failed: %s", tmp, strerror(errno));
        if (fclose(fp) != 0 && !st)
            st = lc_error(LC_ERR_IO, "safetensors writer: %s: close failed: %s", tmp, strerror(errno));
        if (!st && rename(tmp, path) != 0)
            st = lc_error(LC_ERR_IO, "safetensors writer: cannot rename %s to %s: %s", tmp, path, strerror(errno));
        if (st)
            remove(tmp);
        else
            sync_parent_dir(path);
    }
    free(tmp);
    free(hdr.p);
    free(order);
    return st;
}
