/* lorac — tensor layout, standalone tensors and host <-> device transfers (see lorac/tensor.h).
 *
 * Layout as GGUF / ggml (reference/formats.md §1): ne[0] is the contiguous dimension;
 * nb[0] = bytes of one element (one block for quantized dtypes), nb[1] = row_size(ne[0]) =
 * ne[0] / block_size * type_size, nb[2] = nb[1] * ne[1], nb[3] = nb[2] * ne[2].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "lorac/tensor.h"

/* Largest host staging area used by the _f32 transfers (bytes of F32 data per chunk). */
#define LC_TENSOR_STAGE_BYTES ((size_t)4 << 20)

int64_t lc_nelements(const lc_tensor *t) {
    if (!t) return 0;
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

int64_t lc_nrows(const lc_tensor *t) {
    if (!t) return 0;
    return t->ne[1] * t->ne[2] * t->ne[3];
}

size_t lc_nbytes(const lc_tensor *t) {
    if (!t) return 0;
    return lc_row_size(t->dtype, t->ne[0]) * (size_t)lc_nrows(t);
}

bool lc_is_contiguous(const lc_tensor *t) {
    if (!t) return false;
    const lc_dtype_info *info = lc_dtype_get(t->dtype);
    if (!info) return false;
    if (t->nb[0] != info->type_size) return false;
    if (t->nb[1] != lc_row_size(t->dtype, t->ne[0])) return false;
    if (t->nb[2] != t->nb[1] * (size_t)t->ne[1]) return false;
    if (t->nb[3] != t->nb[2] * (size_t)t->ne[2]) return false;
    return true;
}

lc_status lc_tensor_layout(lc_tensor *t, lc_dtype dtype, int ndims, const int64_t *ne) {
    if (!t || !ne) return lc_error(LC_ERR_INVALID_ARG, "lc_tensor_layout: tensor or ne is NULL");
    const lc_dtype_info *info = lc_dtype_get(dtype);
    if (!info) return lc_error(LC_ERR_DTYPE, "lc_tensor_layout: unsupported dtype id %d", (int)dtype);
    if (ndims < 1 || ndims > LC_MAX_DIMS)
        return lc_error(LC_ERR_SHAPE, "lc_tensor_layout: ndims = %d, expected 1..%d", ndims, LC_MAX_DIMS);
    int64_t full[LC_MAX_DIMS] = {1, 1, 1, 1};
    for (int i = 0; i < ndims; i++) {
        if (ne[i] < 1)
            return lc_error(LC_ERR_SHAPE, "lc_tensor_layout: ne[%d] = %lld, must be >= 1", i, (long long)ne[i]);
        full[i] = ne[i];
    }
    if (full[0] % info->block_size != 0)
        return lc_error(LC_ERR_SHAPE, "lc_tensor_layout: ne[0] = %lld is not a multiple of the %s block size %lld",
                        (long long)full[0], info->name, (long long)info->block_size);
    /* Overflow-checked byte size: row bytes * ne1 * ne2 * ne3 must fit in size_t and int64. */
    uint64_t limit = (uint64_t)INT64_MAX < (uint64_t)SIZE_MAX ? (uint64_t)INT64_MAX : (uint64_t)SIZE_MAX;
    uint64_t blocks = (uint64_t)(full[0] / info->block_size);
    if (blocks > limit / info->type_size)
        return lc_error(LC_ERR_SHAPE, "lc_tensor_layout: ne[0] = %lld overflows the byte size", (long long)full[0]);
    uint64_t bytes = blocks * info->type_size;
    uint64_t nel = (uint64_t)full[0];
    size_t nb[LC_MAX_DIMS];
    nb[0] = info->type_size;
    nb[1] = (size_t)bytes;
    for (int i = 1; i < LC_MAX_DIMS; i++) {
        uint64_t d = (uint64_t)full[i];
        if (bytes > limit / d || nel > (uint64_t)INT64_MAX / d)
            return lc_error(LC_ERR_SHAPE,
                            "lc_tensor_layout: ne = {%lld, %lld, %lld, %lld} overflows the byte size",
                            (long long)full[0], (long long)full[1], (long long)full[2], (long long)full[3]);
        bytes *= d;
        nel *= d;
        if (i + 1 < LC_MAX_DIMS) nb[i + 1] = (size_t)bytes;
    }
    t->dtype = dtype;
    for (int i = 0; i < LC_MAX_DIMS; i++) {
        t->ne[i] = full[i];
        t->nb[i] = nb[i];
    }
    return LC_OK;
}

static void set_name(lc_tensor *t, const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n >= LC_NAME_MAX) n = LC_NAME_MAX - 1;
    if (n) memcpy(t->name, name, n);
    t->name[n] = '\0';
}

lc_status lc_tensor_new(lc_device *dev, lc_dtype dtype, int ndims, const int64_t *ne, const char *name,
                        uint32_t flags, lc_tensor **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_tensor_new: out is NULL");
    *out = NULL;
    if (!dev) return lc_error(LC_ERR_INVALID_ARG, "lc_tensor_new(%s): device is NULL", name ? name : "");
    if ((flags & LC_TENSOR_PARAM) && (flags & LC_TENSOR_FROZEN))
        return lc_error(LC_ERR_INVALID_ARG, "lc_tensor_new(%s): flags PARAM and FROZEN are exclusive",
                        name ? name : "");
    lc_tensor *t = calloc(1, sizeof *t);
    if (!t) return lc_error(LC_ERR_NOMEM, "lc_tensor_new(%s): out of host memory", name ? name : "");
    lc_status st = lc_tensor_layout(t, dtype, ndims, ne);
    if (st != LC_OK) {
        free(t);
        return st;
    }
    set_name(t, name);
    t->flags = (flags & ~(uint32_t)LC_TENSOR_OWNS_BUFFER) | LC_TENSOR_OWNS_BUFFER;
    t->id = -1;
    st = lc_buffer_alloc(dev, lc_nbytes(t), &t->buffer);
    if (st != LC_OK) {
        free(t);
        return st;
    }
    *out = t;
    return LC_OK;
}

lc_status lc_tensor_view(lc_tensor *base, size_t offset, int ndims, const int64_t *ne, lc_tensor **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_tensor_view: out is NULL");
    *out = NULL;
    if (!base || !ne) return lc_error(LC_ERR_INVALID_ARG, "lc_tensor_view: base or ne is NULL");
    if (!base->buffer)
        return lc_error(LC_ERR_INVALID_ARG, "lc_tensor_view(%s): base has no memory yet (graph not planned?)",
                        base->name);
    lc_tensor *t = calloc(1, sizeof *t);
    if (!t) return lc_error(LC_ERR_NOMEM, "lc_tensor_view(%s): out of host memory", base->name);
    lc_status st = lc_tensor_layout(t, base->dtype, ndims, ne);
    if (st != LC_OK) {
        free(t);
        return lc_error(st, "lc_tensor_view(%s): %s", base->name, lc_last_error());
    }
    const size_t total = lc_nbytes(base), need = lc_nbytes(t);
    if (offset % t->nb[0] != 0 || offset > total || need > total - offset) {
        free(t);
        return lc_error(LC_ERR_INVALID_ARG,
                        "lc_tensor_view(%s): bytes [%zu, %zu) are not inside the base's %zu bytes or the offset is "
                        "not a multiple of its %zu-byte element (block)",
                        base->name, offset, offset + need, total, base->nb[0]);
    }
    char name[LC_NAME_MAX];
    snprintf(name, sizeof name, "%.*s.view", LC_NAME_MAX - 6, base->name);
    set_name(t, name);
    t->buffer = base->buffer;
    t->offset = base->offset + offset;
    t->flags = 0;
    t->id = -1;
    *out = t;
    return LC_OK;
}

void lc_tensor_free(lc_tensor *t) {
    if (!t || t->graph) return; /* graph tensors belong to lc_graph_free */
    if (t->flags & LC_TENSOR_OWNS_BUFFER) lc_buffer_free(t->buffer);
    free(t);
}

static lc_status check_range(const lc_tensor *t, size_t offset, size_t size, const char *fn) {
    if (!t) return lc_error(LC_ERR_INVALID_ARG, "%s: tensor is NULL", fn);
    if (!t->buffer)
        return lc_error(LC_ERR_STATE, "%s(%s): tensor has no memory yet (graph not planned?)", fn, t->name);
    size_t total = lc_nbytes(t);
    if (offset > total || size > total - offset)
        return lc_error(LC_ERR_INVALID_ARG, "%s(%s): range [%zu, +%zu) is past the tensor's %zu bytes", fn, t->name,
                        offset, size, total);
    return LC_OK;
}

lc_status lc_tensor_set(lc_tensor *t, const void *src, size_t offset, size_t size) {
    lc_status st = check_range(t, offset, size, "lc_tensor_set");
    if (st != LC_OK) return st;
    if (size && !src) return lc_error(LC_ERR_INVALID_ARG, "lc_tensor_set(%s): src is NULL", t->name);
    return lc_buffer_upload(t->buffer, t->offset + offset, src, size);
}

lc_status lc_tensor_get(const lc_tensor *t, void *dst, size_t offset, size_t size) {
    lc_status st = check_range(t, offset, size, "lc_tensor_get");
    if (st != LC_OK) return st;
    if (size && !dst) return lc_error(LC_ERR_INVALID_ARG, "lc_tensor_get(%s): dst is NULL", t->name);
    return lc_buffer_download(t->buffer, t->offset + offset, dst, size);
}

/* Shared checks of the F32 transfers; *rows_per_chunk = rows staged per upload/download. */
static lc_status check_f32(const lc_tensor *t, const void *host, int64_t n, const char *fn, int64_t *rows_per_chunk) {
    lc_status st = check_range(t, 0, 0, fn);
    if (st != LC_OK) return st;
    if (!host) return lc_error(LC_ERR_INVALID_ARG, "%s(%s): host pointer is NULL", fn, t->name);
    if (n != lc_nelements(t))
        return lc_error(LC_ERR_INVALID_ARG, "%s(%s): n = %lld but the tensor has %lld elements", fn, t->name,
                        (long long)n, (long long)lc_nelements(t));
    const lc_dtype_info *info = lc_dtype_get(t->dtype);
    if (!info || t->dtype == LC_I32)
        return lc_error(LC_ERR_DTYPE, "%s(%s): dtype %s has no F32 conversion (use lc_tensor_set/get)", fn, t->name,
                        lc_dtype_name(t->dtype));
    if (!lc_is_contiguous(t)) return lc_error(LC_ERR_INVALID_ARG, "%s(%s): tensor is not contiguous", fn, t->name);
    size_t row_f32 = (size_t)t->ne[0] * sizeof(float);
    int64_t rows = (int64_t)(LC_TENSOR_STAGE_BYTES / (row_f32 ? row_f32 : 1));
    *rows_per_chunk = rows < 1 ? 1 : rows;
    return LC_OK;
}

lc_status lc_tensor_set_f32(lc_tensor *t, const float *src, int64_t n) {
    int64_t chunk;
    lc_status st = check_f32(t, src, n, "lc_tensor_set_f32", &chunk);
    if (st != LC_OK) return st;
    if (t->dtype == LC_F32) return lc_buffer_upload(t->buffer, t->offset, src, (size_t)n * sizeof(float));
    const int64_t ne0 = t->ne[0], nrows = lc_nrows(t);
    const size_t row_bytes = t->nb[1];
    if (chunk > nrows) chunk = nrows;
    unsigned char *stage = malloc(row_bytes * (size_t)chunk);
    if (!stage) return lc_error(LC_ERR_NOMEM, "lc_tensor_set_f32(%s): out of host memory", t->name);
    for (int64_t r0 = 0; r0 < nrows && st == LC_OK; r0 += chunk) {
        int64_t nr = nrows - r0 < chunk ? nrows - r0 : chunk;
        for (int64_t r = 0; r < nr && st == LC_OK; r++)
            st = lc_quantize_row(t->dtype, src + (r0 + r) * ne0, stage + (size_t)r * row_bytes, ne0);
        if (st == LC_OK)
            st = lc_buffer_upload(t->buffer, t->offset + (size_t)r0 * row_bytes, stage, (size_t)nr * row_bytes);
    }
    free(stage);
    return st;
}

lc_status lc_tensor_get_f32(const lc_tensor *t, float *dst, int64_t n) {
    int64_t chunk;
    lc_status st = check_f32(t, dst, n, "lc_tensor_get_f32", &chunk);
    if (st != LC_OK) return st;
    if (t->dtype == LC_F32) return lc_buffer_download(t->buffer, t->offset, dst, (size_t)n * sizeof(float));
    const int64_t ne0 = t->ne[0], nrows = lc_nrows(t);
    const size_t row_bytes = t->nb[1];
    if (chunk > nrows) chunk = nrows;
    unsigned char *stage = malloc(row_bytes * (size_t)chunk);
    if (!stage) return lc_error(LC_ERR_NOMEM, "lc_tensor_get_f32(%s): out of host memory", t->name);
    for (int64_t r0 = 0; r0 < nrows && st == LC_OK; r0 += chunk) {
        int64_t nr = nrows - r0 < chunk ? nrows - r0 : chunk;
        st = lc_buffer_download(t->buffer, t->offset + (size_t)r0 * row_bytes, stage, (size_t)nr * row_bytes);
        for (int64_t r = 0; r < nr && st == LC_OK; r++)
            st = lc_dequantize_row(t->dtype, stage + (size_t)r * row_bytes, dst + (r0 + r) * ne0, ne0);
    }
    free(stage);
    return st;
}

lc_status lc_tensor_zero(lc_tensor *t) {
    lc_status st = check_range(t, 0, 0, "lc_tensor_zero");
    if (st != LC_OK) return st;
    return lc_buffer_clear(t->buffer, t->offset, lc_nbytes(t));
}
