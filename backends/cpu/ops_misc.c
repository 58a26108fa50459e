/* lorac CPU backend — data movement and optimizer kernels: fill, get_rows (+ backward),
 * dequantize, cpy, sum_sq, adamw. Semantics, shapes and parameter slots: lorac/graph.h (op
 * table). Block formats and dequantisation: reference/formats.md §2 through lc_dequantize_row.
 * Every loop is split over ctx->n_threads OpenMP threads with a static schedule, and every
 * reduction is done in a fixed order, so results do not depend on the thread count.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_internal.h"
#include "lorac/dtype.h"
#include "lorac/status.h"

/* Below this many elements a loop runs on one thread. */
#define LC_CPU_PAR_MIN 32768
/* sum_sq adds blocks of this many squares in double, then the block sums in order. */
#define LC_CPU_SUMSQ_BLOCK 8192

static int n_threads_for(const lc_cpu_ctx *ctx, int64_t work) {
    int n = ctx && ctx->n_threads > 0 ? ctx->n_threads : 1;
    return work < LC_CPU_PAR_MIN ? 1 : n;
}

/* A tensor as rows of ne0 elements: rows = ne1*ne2*ne3 with dims 2, 3 packed after dim 1 and
 * nb0 = the dtype's block bytes. */
typedef struct rows_view {
    char *data;
    int64_t cols, rows;
    size_t nb1;
    lc_dtype type;
} rows_view;

static lc_status view_rows(const lc_node *node, const lc_tensor *t, const char *what, rows_view *v) {
    memset(v, 0, sizeof *v);
    const char *op = lc_op_name(node->op);
    if (!t) return lc_error(LC_ERR_INVALID_ARG, "cpu %s: %s is NULL", op, what);
    const lc_dtype_info *di = lc_dtype_get(t->dtype);
    if (!di) return lc_error(LC_ERR_DTYPE, "cpu %s: %s '%s' has unsupported dtype %d", op, what, t->name, (int)t->dtype);
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (t->ne[d] < 1)
            return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' has ne[%d]=%lld", op, what, t->name, d, (long long)t->ne[d]);
    size_t row_bytes = lc_row_size(t->dtype, t->ne[0]);
    if (row_bytes == 0 || t->nb[0] != di->type_size || t->nb[1] < row_bytes ||
        t->nb[2] != t->nb[1] * (size_t)t->ne[1] || t->nb[3] != t->nb[2] * (size_t)t->ne[2])
        return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' (%s, ne %lld x %lld x %lld x %lld) has an unsupported layout "
                        "(nb %zu %zu %zu %zu)", op, what, t->name, lc_dtype_name(t->dtype), (long long)t->ne[0],
                        (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], t->nb[0], t->nb[1], t->nb[2], t->nb[3]);
    v->data = LC_CPU_DATA(t);
    v->cols = t->ne[0];
    v->rows = t->ne[1] * t->ne[2] * t->ne[3];
    v->nb1 = t->nb[1];
    v->type = t->dtype;
    return LC_OK;
}

static lc_status need_dtype(const lc_node *node, const lc_tensor *t, const char *what, lc_dtype want) {
    if (t && t->dtype != want)
        return lc_error(LC_ERR_DTYPE, "cpu %s: %s '%s' must be %s, not %s", lc_op_name(node->op), what, t->name,
                        lc_dtype_name(want), lc_dtype_name(t->dtype));
    return LC_OK;
}

static bool same_ne(const lc_tensor *a, const lc_tensor *b) {
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (a->ne[d] != b->ne[d]) return false;
    return true;
}

static lc_status shape_error(const lc_node *node, const char *what, const lc_tensor *t, const lc_tensor *like) {
    return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' ne [%lld, %lld, %lld, %lld] differs from '%s' ne [%lld, %lld, %lld, %lld]",
                    lc_op_name(node->op), what, t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                    (long long)t->ne[3], like->name, (long long)like->ne[0], (long long)like->ne[1],
                    (long long)like->ne[2], (long long)like->ne[3]);
}

/* An F32 tensor that must be packed, as a flat array of n elements. */
static lc_status view_flat_f32(const lc_node *node, const lc_tensor *t, const char *what, float **p, int64_t *n) {
    rows_view v;
    lc_status st = need_dtype(node, t, what, LC_F32);
    if (st == LC_OK) st = view_rows(node, t, what, &v);
    if (st != LC_OK) return st;
    if (v.nb1 != (size_t)v.cols * sizeof(float))
        return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' must be contiguous (nb1 = %zu, ne0 = %lld)", lc_op_name(node->op),
                        what, t->name, v.nb1, (long long)v.cols);
    *p = (float *)v.data;
    *n = v.cols * v.rows;
    return LC_OK;
}

/* Ids as a flat I32 array; every id must lie in [0, limit). */
static lc_status view_ids(const lc_node *node, const lc_tensor *t, int64_t limit, const int32_t **ids, int64_t *n) {
    rows_view v;
    lc_status st = need_dtype(node, t, "ids (src1)", LC_I32);
    if (st == LC_OK) st = view_rows(node, t, "ids (src1)", &v);
    if (st != LC_OK) return st;
    if (v.nb1 != (size_t)v.cols * sizeof(int32_t))
        return lc_error(LC_ERR_SHAPE, "cpu %s: ids '%s' must be contiguous", lc_op_name(node->op), t->name);
    const int32_t *p = (const int32_t *)v.data;
    int64_t count = v.cols * v.rows;
    for (int64_t i = 0; i < count; i++)
        if (p[i] < 0 || (int64_t)p[i] >= limit)
            return lc_error(LC_ERR_INVALID_ARG, "cpu %s: id %d at position %lld of '%s' is outside the table [0, %lld)",
                            lc_op_name(node->op), (int)p[i], (long long)i, t->name, (long long)limit);
    *ids = p;
    *n = count;
    return LC_OK;
}

/* ---- fill ------------------------------------------------------------------------------------- */

/* FILL: dst0 F32 (any shape, contiguous) = fp[0]. Errors: LC_ERR_DTYPE, LC_ERR_SHAPE. */
lc_status lc_cpu_op_fill(lc_cpu_ctx *ctx, const lc_node *node) {
    float *y;
    int64_t n;
    lc_status st = view_flat_f32(node, node->dst[0], "dst0", &y, &n);
    if (st != LC_OK) return st;
    const float value = node->fp[0];
    int nth = n_threads_for(ctx, n);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = value;
    return LC_OK;
}

/* ---- get_rows --------------------------------------------------------------------------------- */

/* GET_ROWS: src0 table [E, V] (F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q6_K), src1 ids I32 [N] ->
 * dst0 F32 [E, N], dst0[:, n] = table[:, ids[n]]. Only the requested rows are dequantised.
 * Errors: LC_ERR_INVALID_ARG (an id outside [0, V), naming the id and its position),
 * LC_ERR_SHAPE, LC_ERR_DTYPE. */
lc_status lc_cpu_op_get_rows(lc_cpu_ctx *ctx, const lc_node *node) {
    rows_view tab, out;
    const int32_t *ids;
    int64_t n;
    lc_status st = view_rows(node, node->src[0], "table (src0)", &tab);
    if (st == LC_OK) st = view_ids(node, node->src[1], tab.rows, &ids, &n);
    if (st == LC_OK) st = need_dtype(node, node->dst[0], "dst0", LC_F32);
    if (st == LC_OK) st = view_rows(node, node->dst[0], "dst0", &out);
    if (st != LC_OK) return st;
    if (tab.type == LC_I32) return lc_error(LC_ERR_DTYPE, "cpu get_rows: table '%s' is i32", node->src[0]->name);
    if (out.cols != tab.cols || out.rows != n)
        return lc_error(LC_ERR_SHAPE, "cpu get_rows: dst0 is [%lld, %lld], expected [%lld, %lld]", (long long)out.cols,
                        (long long)out.rows, (long long)tab.cols, (long long)n);
    const int64_t e = tab.cols;
    int failed = 0;
    int nth = n_threads_for(ctx, n * e);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const char *src = tab.data + (size_t)ids[i] * tab.nb1;
        float *dst = (float *)(out.data + (size_t)i * out.nb1);
        if (tab.type == LC_F32) {
            memcpy(dst, src, (size_t)e * sizeof(float));
        } else if (lc_dequantize_row(tab.type, src, dst, e) != LC_OK) {
#pragma omp atomic write
            failed = 1;
        }
    }
    if (failed)
        return lc_error(LC_ERR_DTYPE, "cpu get_rows: could not dequantise %s rows of %lld elements",
                        lc_dtype_name(tab.type), (long long)e);
    return LC_OK;
}

/* GET_ROWS_BACK: src0 table [E, V], src1 ids I32 [N], src6 dy F32 [E, N] -> dst0 dtable F32
 * [E, V]: dtable[:, ids[n]] += dy[:, n] for every n (repeated ids add up). accum bit 0 clear:
 * dtable is zeroed first. NULL dst0: nothing to do. The feature dimension E is split over the
 * threads, so no two threads touch the same element and the order of additions is fixed.
 * Errors: LC_ERR_INVALID_ARG (id out of range), LC_ERR_SHAPE, LC_ERR_DTYPE. */
lc_status lc_cpu_op_get_rows_back(lc_cpu_ctx *ctx, const lc_node *node) {
    if (!node->dst[0]) return LC_OK;
    rows_view tab, dy, dt;
    const int32_t *ids;
    int64_t n;
    lc_status st = view_rows(node, node->src[0], "table (src0)", &tab);
    if (st == LC_OK) st = view_ids(node, node->src[1], tab.rows, &ids, &n);
    if (st == LC_OK) st = need_dtype(node, node->src[6], "dy (src6)", LC_F32);
    if (st == LC_OK) st = view_rows(node, node->src[6], "dy (src6)", &dy);
    if (st == LC_OK) st = need_dtype(node, node->dst[0], "dtable (dst0)", LC_F32);
    if (st == LC_OK) st = view_rows(node, node->dst[0], "dtable (dst0)", &dt);
    if (st != LC_OK) return st;
    if (dy.cols != tab.cols || dy.rows != n)
        return lc_error(LC_ERR_SHAPE, "cpu get_rows_back: dy is [%lld, %lld], expected [%lld, %lld]", (long long)dy.cols,
                        (long long)dy.rows, (long long)tab.cols, (long long)n);
    if (dt.cols != tab.cols || dt.rows != tab.rows)
        return lc_error(LC_ERR_SHAPE, "cpu get_rows_back: dtable is [%lld, %lld], expected [%lld, %lld]",
                        (long long)dt.cols, (long long)dt.rows, (long long)tab.cols, (long long)tab.rows);
    const int64_t e = tab.cols, v = tab.rows;
    const bool accumulate = (node->accum & 1u) != 0;
    int nth = n_threads_for(ctx, (accumulate ? 0 : v * e) + n * e);
    if (nth > e) nth = (int)e;
#pragma omp parallel num_threads(nth)
    {
        int tid = 0, nt = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        const int64_t c0 = e * tid / nt, c1 = e * (tid + 1) / nt;
        if (c1 > c0) {
            if (!accumulate)
                for (int64_t row = 0; row < v; row++)
                    memset(dt.data + (size_t)row * dt.nb1 + (size_t)c0 * sizeof(float), 0, (size_t)(c1 - c0) * sizeof(float));
            for (int64_t i = 0; i < n; i++) {
                float *dst = (float *)(dt.data + (size_t)ids[i] * dt.nb1);
                const float *src = (const float *)(dy.data + (size_t)i * dy.nb1);
                for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
            }
        }
    }
    return LC_OK;
}

/* ---- dequantize, cpy -------------------------------------------------------------------------- */

/* DEQUANTIZE: src0 any supported dtype except I32 -> dst0 F32, same ne; row by row with
 * lc_dequantize_row (reference/formats.md §2). Errors: LC_ERR_SHAPE, LC_ERR_DTYPE. */
lc_status lc_cpu_op_dequantize(lc_cpu_ctx *ctx, const lc_node *node) {
    rows_view src, dst;
    lc_status st = view_rows(node, node->src[0], "src0", &src);
    if (st == LC_OK) st = need_dtype(node, node->dst[0], "dst0", LC_F32);
    if (st == LC_OK) st = view_rows(node, node->dst[0], "dst0", &dst);
    if (st != LC_OK) return st;
    if (!same_ne(node->src[0], node->dst[0])) return shape_error(node, "dst0", node->dst[0], node->src[0]);
    if (src.type == LC_I32) return lc_error(LC_ERR_DTYPE, "cpu dequantize: src0 '%s' is i32", node->src[0]->name);
    int failed = 0;
    int nth = n_threads_for(ctx, src.rows * src.cols);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t r = 0; r < src.rows; r++) {
        if (lc_dequantize_row(src.type, src.data + (size_t)r * src.nb1, (float *)(dst.data + (size_t)r * dst.nb1),
                              src.cols) != LC_OK) {
#pragma omp atomic write
            failed = 1;
        }
    }
    if (failed)
        return lc_error(LC_ERR_DTYPE, "cpu dequantize: could not dequantise %s rows of %lld elements",
                        lc_dtype_name(src.type), (long long)src.cols);
    return LC_OK;
}

static inline float load_float(lc_dtype t, const char *row, int64_t i) {
    if (t == LC_F32) return ((const float *)row)[i];
    uint16_t h = ((const uint16_t *)row)[i];
    return t == LC_F16 ? lc_fp16_to_fp32(h) : lc_bf16_to_fp32(h);
}

static inline void store_float(lc_dtype t, char *row, int64_t i, float v) {
    if (t == LC_F32)
        ((float *)row)[i] = v;
    else
        ((uint16_t *)row)[i] = t == LC_F16 ? lc_fp32_to_fp16(v) : lc_fp32_to_bf16(v);
}

/* CPY: src0 F32/F16/BF16 -> dst0 F32/F16/BF16, same ne; conversions round to nearest even
 * (lorac/dtype.h scalar converters). Errors: LC_ERR_SHAPE, LC_ERR_DTYPE. */
lc_status lc_cpu_op_cpy(lc_cpu_ctx *ctx, const lc_node *node) {
    rows_view src, dst;
    lc_status st = view_rows(node, node->src[0], "src0", &src);
    if (st == LC_OK) st = view_rows(node, node->dst[0], "dst0", &dst);
    if (st != LC_OK) return st;
    const lc_dtype ts = src.type, td = dst.type;
    if ((ts != LC_F32 && ts != LC_F16 && ts != LC_BF16) || (td != LC_F32 && td != LC_F16 && td != LC_BF16))
        return lc_error(LC_ERR_DTYPE, "cpu cpy: %s -> %s is not supported (f32, f16 and bf16 only)", lc_dtype_name(ts),
                        lc_dtype_name(td));
    if (!same_ne(node->src[0], node->dst[0])) return shape_error(node, "dst0", node->dst[0], node->src[0]);
    const int64_t cols = src.cols;
    int nth = n_threads_for(ctx, src.rows * cols);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t r = 0; r < src.rows; r++) {
        const char *s = src.data + (size_t)r * src.nb1;
        char *d = dst.data + (size_t)r * dst.nb1;
        if (ts == td) {
            if (s != d) memmove(d, s, lc_row_size(ts, cols));
        } else {
            for (int64_t i = 0; i < cols; i++) store_float(td, d, i, load_float(ts, s, i));
        }
    }
    return LC_OK;
}

/* ---- sum_sq ----------------------------------------------------------------------------------- */

/* SUM_SQ: src0 F32 (any shape, contiguous) -> dst0 F32 [1] = sum of squares, accumulated in
 * double in blocks of LC_CPU_SUMSQ_BLOCK whose sums are added in order (thread-count independent)
 * and rounded once to F32. accum bit 0 set: dst0 += the sum (in double, then rounded).
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_NOMEM. */
lc_status lc_cpu_op_sum_sq(lc_cpu_ctx *ctx, const lc_node *node) {
    float *x, *y;
    int64_t n, ny;
    lc_status st = view_flat_f32(node, node->src[0], "src0", &x, &n);
    if (st == LC_OK) st = view_flat_f32(node, node->dst[0], "dst0", &y, &ny);
    if (st != LC_OK) return st;
    if (ny != 1) return lc_error(LC_ERR_SHAPE, "cpu sum_sq: dst0 has %lld elements, expected 1", (long long)ny);
    const int64_t nblk = (n + LC_CPU_SUMSQ_BLOCK - 1) / LC_CPU_SUMSQ_BLOCK;
    double *part = malloc((size_t)nblk * sizeof(double));
    if (!part) return lc_error(LC_ERR_NOMEM, "cpu sum_sq: no memory for %lld partial sums", (long long)nblk);
    int nth = n_threads_for(ctx, n);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t b = 0; b < nblk; b++) {
        const int64_t i0 = b * LC_CPU_SUMSQ_BLOCK;
        const int64_t i1 = i0 + LC_CPU_SUMSQ_BLOCK < n ? i0 + LC_CPU_SUMSQ_BLOCK : n;
        double acc = 0.0;
        for (int64_t i = i0; i < i1; i++) acc += (double)x[i] * (double)x[i];
        part[b] = acc;
    }
    double total = (node->accum & 1u) ? (double)y[0] : 0.0;
    for (int64_t b = 0; b < nblk; b++) total += part[b];
    free(part);
    y[0] = (float)total;
    return LC_OK;
}

/* ---- adamw ------------------------------------------------------------------------------------ */

/* ADAMW (in place): src0 = dst0 param F32, src1 grad F32, src2 = dst1 m F32, src3 = dst2 v F32,
 * all with param's ne. fp[0] lr, fp[1] beta1, fp[2] beta2, fp[3] eps, fp[4] weight_decay,
 * fp[5] grad_scale, ip[0] = t >= 1. With g = grad * grad_scale (Loshchilov & Hutter, ICLR 2019,
 * as torch.optim.AdamW):
 *   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 * Element math in float; the bias corrections 1 - b^t in double, then rounded to float.
 * Errors: LC_ERR_INVALID_ARG (t < 1), LC_ERR_SHAPE, LC_ERR_DTYPE. */
lc_status lc_cpu_op_adamw(lc_cpu_ctx *ctx, const lc_node *node) {
    float *p, *g, *m, *v;
    int64_t np, ng, nm, nv;
    const lc_tensor *tp = node->dst[0] ? node->dst[0] : node->src[0];
    const lc_tensor *tm = node->dst[1] ? node->dst[1] : node->src[2];
    const lc_tensor *tv = node->dst[2] ? node->dst[2] : node->src[3];
    lc_status st = view_flat_f32(node, tp, "param (src0)", &p, &np);
    if (st == LC_OK) st = view_flat_f32(node, node->src[1], "grad (src1)", &g, &ng);
    if (st == LC_OK) st = view_flat_f32(node, tm, "m (src2)", &m, &nm);
    if (st == LC_OK) st = view_flat_f32(node, tv, "v (src3)", &v, &nv);
    if (st != LC_OK) return st;
    if (ng != np || nm != np || nv != np)
        return lc_error(LC_ERR_SHAPE, "cpu adamw: param '%s' has %lld elements but grad/m/v have %lld/%lld/%lld", tp->name,
                        (long long)np, (long long)ng, (long long)nm, (long long)nv);
    const int t = node->ip[0];
    if (t < 1) return lc_error(LC_ERR_INVALID_ARG, "cpu adamw: step t = %d (ip[0]) must be >= 1", t);
    const float lr = node->fp[0], b1 = node->fp[1], b2 = node->fp[2], eps = node->fp[3], wd = node->fp[4];
    const float gs = node->fp[5];
    const float bc1 = (float)(1.0 - pow((double)b1, (double)t));
    const float bc2 = (float)(1.0 - pow((double)b2, (double)t));
    const float decay = 1.0f - lr * wd;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    int nth = n_threads_for(ctx, np / 4);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t i = 0; i < np; i++) {
        const float gi = g[i] * gs;
        float pi = p[i] * decay;
        const float mi = b1 * m[i] + c1 * gi;
        const float vi = b2 * v[i] + c2 * (gi * gi);
        pi -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
    }
    return LC_OK;
}
