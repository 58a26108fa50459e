/* lorac CPU backend — rms_norm and rope kernels, forward and backward.
 *
 * RMS_NORM (Zhang & Sennrich 2019; Gemma/Llama form, reference/formats.md §3):
 *   src0 x F32 [n, R], src1 weight F32 [g] or NULL, ip[0] = g (n % g == 0; 0 means g = n),
 *   fp[0] = eps -> dst0 y F32 [n, R]. Each group of g consecutive elements of a row:
 *   r = 1 / sqrt(mean(x^2 over the group) + eps),  y_k = x_k * r * w[k % g]  (w = 1 when NULL).
 *   Backward (src[6] dy): with u_k = dy_k * w_k,
 *     dx_k = r u_k - (r^3 / g) x_k * sum_j u_j x_j,     dw_k = sum over every group of dy_k x_k r.
 *   Sums of squares and dot products are accumulated in double; the forward rounds r to float
 *   once, the backward keeps r and combines the two nearly cancelling terms of dx in double.
 *   dweight is reduced over groups with one double partial per thread, added in thread order.
 *
 * ROPE (Su et al. 2021, RoFormer; ggml/llama.cpp pairing, reference/formats.md §3):
 *   src0 x F32 [hd * n_head, T], src1 pos I32 [T] -> dst0 F32 same ne.
 *   ip[0] = n_head, ip[1] = n_rot (even, 2 <= n_rot <= hd), ip[2] = mode (LC_ROPE_NORM 0: pairs
 *   (2i, 2i+1); LC_ROPE_NEOX 2: pairs (i, i + n_rot/2)), fp[0] = freq_base, fp[1] = freq_scale.
 *   For i < n_rot/2, in single precision exactly as lorac/graph.h states:
 *     theta = (float)pos * freq_scale * powf(freq_base, -2.0f*i/n_rot),
 *     (a, b) -> (a cos(theta) - b sin(theta), a sin(theta) + b cos(theta));
 *   dims >= n_rot of every head pass through. Backward rotates dy by -theta (the transpose of
 *   the rotation): (da, db) = (dy_a cos + dy_b sin, -dy_a sin + dy_b cos); positions get no
 *   gradient.
 *
 * Backward nodes follow lorac/graph.h: src[0..3] forward inputs, src[6] dL/dy, dst[i] = dL/d
 * src[i] or NULL, bit i of accum adds into dst[i]. Tensors must be contiguous.
 */
#include "cpu_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int nr_threads(const lc_cpu_ctx *ctx) { return lc_cpu_threads(ctx); }

/* A present, allocated, contiguous tensor of `dtype`; else an error naming op and field. */
static lc_status nr_check(const lc_tensor *t, lc_dtype dtype, const char *op, const char *field) {
    return lc_cpu_check_packed(t, dtype, op, field);
}

static lc_status nr_check_like(const lc_tensor *t, const lc_tensor *like, const char *op,
                               const char *field, const char *like_field) {
    lc_status st = nr_check(t, LC_F32, op, field);
    if (st != LC_OK) return st;
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (t->ne[d] != like->ne[d])
            return lc_error(LC_ERR_SHAPE,
                            "cpu %s: %s ne [%lld, %lld, %lld, %lld] differs from %s ne [%lld, %lld, %lld, %lld]",
                            op, field, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                            (long long)t->ne[3], like_field, (long long)like->ne[0],
                            (long long)like->ne[1], (long long)like->ne[2], (long long)like->ne[3]);
    return LC_OK;
}

/* ==== rms_norm ============================================================================== */

typedef struct nr_rms {
    int64_t g;        /* group size */
    int64_t n_groups; /* total groups over all rows */
    float eps;
} nr_rms;

static lc_status nr_rms_check(const lc_node *node, const char *op, nr_rms *p) {
    const lc_tensor *x = node->src[0], *w = node->src[1];
    lc_status st;
    if ((st = nr_check(x, LC_F32, op, "src0 x")) != LC_OK) return st;
    const int64_t n = x->ne[0];
    const int64_t g = node->ip[0] == 0 ? n : (int64_t)node->ip[0];
    if (g < 1 || n % g != 0)
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: group size ip[0]=%d does not divide row length %lld",
                        op, node->ip[0], (long long)n);
    if (w) {
        if ((st = nr_check(w, LC_F32, op, "src1 weight")) != LC_OK) return st;
        if (w->ne[0] * w->ne[1] * w->ne[2] * w->ne[3] != g)
            return lc_error(LC_ERR_SHAPE, "cpu %s: weight '%s' has %lld elements, group size is %lld",
                            op, w->name, (long long)(w->ne[0] * w->ne[1] * w->ne[2] * w->ne[3]),
                            (long long)g);
    }
    const float eps = node->fp[0];
    if (!(eps >= 0.0f) || isinf(eps))
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: eps fp[0]=%g must be finite and >= 0", op,
                        (double)eps);
    p->g = g;
    p->n_groups = n / g * x->ne[1] * x->ne[2] * x->ne[3];
    p->eps = eps;
    return LC_OK;
}

/* 1 / sqrt(mean(x^2) + eps) over one group, in double. */
static inline double nr_rms_inv(const float *x, int64_t g, float eps) {
    double ss = 0.0;
    for (int64_t k = 0; k < g; k++) ss += (double)x[k] * (double)x[k];
    return 1.0 / sqrt(ss / (double)g + (double)eps);
}

/* RMS_NORM: see the file comment. Shapes: x, y [n, R]; weight [g].
 * Errors: LC_ERR_INVALID_ARG (missing tensor, g does not divide n, bad eps), LC_ERR_DTYPE,
 * LC_ERR_SHAPE (not contiguous, weight size != g, y shape != x shape), LC_ERR_STATE. */
lc_status lc_cpu_op_rms_norm(lc_cpu_ctx *ctx, const lc_node *node) {
    const char *op = "rms_norm";
    nr_rms p = {0};
    lc_status st = nr_rms_check(node, op, &p);
    if (st != LC_OK) return st;
    if ((st = nr_check_like(node->dst[0], node->src[0], op, "dst0 y", "src0 x")) != LC_OK) return st;
    const float *x = LC_CPU_F32(node->src[0]);
    const float *w = node->src[1] ? LC_CPU_F32(node->src[1]) : NULL;
    float *y = LC_CPU_F32(node->dst[0]);
    const int64_t g = p.g, ng = p.n_groups;
    const float eps = p.eps;
#pragma omp parallel for num_threads(nr_threads(ctx)) schedule(static) if (ng * g >= 16384)
    for (int64_t q = 0; q < ng; q++) {
        const float *xq = x + q * g;
        float *yq = y + q * g;
        const float r = (float)nr_rms_inv(xq, g, eps);
        if (w) {
            for (int64_t k = 0; k < g; k++) yq[k] = xq[k] * r * w[k];
        } else {
            for (int64_t k = 0; k < g; k++) yq[k] = xq[k] * r;
        }
    }
    return LC_OK;
}

/* RMS_NORM_BACK: src[0] x [n, R], src[1] weight [g] or NULL, src[6] dy [n, R] -> dst[0] dx
 * [n, R], dst[1] dweight [g] (summed over all groups). Formula in the file comment.
 * Errors as lc_cpu_op_rms_norm, plus LC_ERR_INVALID_ARG for a dweight without weight and
 * LC_ERR_NOMEM for the per-thread dweight partials. */
lc_status lc_cpu_op_rms_norm_back(lc_cpu_ctx *ctx, const lc_node *node) {
    const char *op = "rms_norm_back";
    nr_rms p = {0};
    lc_status st = nr_rms_check(node, op, &p);
    if (st != LC_OK) return st;
    const lc_tensor *xt = node->src[0], *wt = node->src[1], *dyt = node->src[6];
    const lc_tensor *dxt = node->dst[0], *dwt = node->dst[1];
    if ((st = nr_check_like(dyt, xt, op, "src6 dy", "src0 x")) != LC_OK) return st;
    if (dxt && (st = nr_check_like(dxt, xt, op, "dst0 dx", "src0 x")) != LC_OK) return st;
    if (dwt) {
        if (!wt) return lc_error(LC_ERR_INVALID_ARG, "cpu %s: dst1 dweight given but src1 weight is NULL", op);
        if ((st = nr_check_like(dwt, wt, op, "dst1 dweight", "src1 weight")) != LC_OK) return st;
    }
    if (!dxt && !dwt) return LC_OK;
    const float *x = LC_CPU_F32(xt), *dy = LC_CPU_F32(dyt);
    const float *w = wt ? LC_CPU_F32(wt) : NULL;
    float *dx = LC_CPU_F32(dxt), *dw = LC_CPU_F32(dwt);
    const bool acc_x = (node->accum & 1u) != 0, acc_w = (node->accum & 2u) != 0;
    const int64_t g = p.g, ng = p.n_groups;
    const float eps = p.eps;
    const int nt = nr_threads(ctx);
    double *part = NULL;
    if (dw) {
        part = calloc((size_t)nt * (size_t)g, sizeof(double));
        if (!part) return lc_error(LC_ERR_NOMEM, "cpu %s: no memory for %d x %lld dweight partials",
                                   op, nt, (long long)g);
    }
    int used = 1;
#pragma omp parallel num_threads(nt) if (ng * g >= 16384)
    {
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
#pragma omp single
        used = team;
        double *pw = part ? part + (size_t)tid * (size_t)g : NULL;
        const int64_t chunk = (ng + team - 1) / team;
        const int64_t q_end = (tid + 1) * chunk < ng ? (tid + 1) * chunk : ng;
        for (int64_t q = tid * chunk; q < q_end; q++) {
            const float *xq = x + q * g, *dyq = dy + q * g;
            const double r = nr_rms_inv(xq, g, eps);
            if (pw) /* dw_k += dy_k x_k r */
                for (int64_t k = 0; k < g; k++) pw[k] += (double)dyq[k] * (double)xq[k] * r;
            if (dx) {
                double dot = 0.0; /* sum_j u_j x_j, u = dy * w */
                if (w) {
                    for (int64_t k = 0; k < g; k++) dot += (double)dyq[k] * (double)w[k] * (double)xq[k];
                } else {
                    for (int64_t k = 0; k < g; k++) dot += (double)dyq[k] * (double)xq[k];
                }
                /* the two terms nearly cancel when eps is tiny next to mean(x^2) and g is small:
                 * combine them in double, round once */
                const double c = r * r * r * dot / (double)g;
                float *dxq = dx + q * g;
                for (int64_t k = 0; k < g; k++) {
                    const double u = w ? (double)dyq[k] * (double)w[k] : (double)dyq[k];
                    const float v = (float)(r * u - c * (double)xq[k]);
                    dxq[k] = acc_x ? dxq[k] + v : v;
                }
            }
        }
    }
    if (dw) {
        for (int64_t k = 0; k < g; k++) {
            double s = 0.0;
            for (int t = 0; t < used; t++) s += part[(size_t)t * (size_t)g + (size_t)k];
            dw[k] = acc_w ? (float)((double)dw[k] + s) : (float)s;
        }
        free(part);
    }
    return LC_OK;
}

/* ==== rope ================================================================================== */

typedef struct nr_rope {
    int64_t n_head, hd, n_rot, T;
    int mode;
} nr_rope;

static lc_status nr_rope_check(const lc_node *node, const char *op, const lc_tensor *x,
                               const char *x_field, nr_rope *p) {
    const lc_tensor *pos = node->src[1];
    lc_status st;
    if ((st = nr_check(x, LC_F32, op, x_field)) != LC_OK) return st;
    if ((st = nr_check(pos, LC_I32, op, "src1 pos")) != LC_OK) return st;
    const int64_t n_head = node->ip[0], n_rot = node->ip[1];
    const int mode = node->ip[2];
    if (n_head < 1 || x->ne[0] % n_head != 0)
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: n_head ip[0]=%lld does not divide x.ne[0]=%lld",
                        op, (long long)n_head, (long long)x->ne[0]);
    const int64_t hd = x->ne[0] / n_head;
    if (n_rot < 2 || n_rot % 2 != 0 || n_rot > hd)
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: n_rot ip[1]=%lld must be even and in [2, head_dim=%lld]",
                        op, (long long)n_rot, (long long)hd);
    if (mode != LC_ROPE_NORM && mode != LC_ROPE_NEOX)
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: mode ip[2]=%d is neither NORM (0) nor NEOX (2)",
                        op, mode);
    const int64_t T = x->ne[1] * x->ne[2] * x->ne[3];
    const int64_t np = pos->ne[0] * pos->ne[1] * pos->ne[2] * pos->ne[3];
    if (np != T)
        return lc_error(LC_ERR_SHAPE, "cpu %s: pos '%s' has %lld elements, x has %lld tokens", op,
                        pos->name, (long long)np, (long long)T);
    if (!isfinite(node->fp[0]) || !(node->fp[0] > 0.0f) || !isfinite(node->fp[1]))
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: freq_base fp[0]=%g must be > 0 and freq_scale fp[1]=%g finite",
                        op, (double)node->fp[0], (double)node->fp[1]);
    p->n_head = n_head;
    p->hd = hd;
    p->n_rot = n_rot;
    p->T = T;
    p->mode = mode;
    return LC_OK;
}

/* dst = rotate(src, sign * theta) per graph.h; sign = +1 forward, -1 backward. Alias-safe for
 * dst == src. With acc, the rotated value is added into dst (then dst must not alias src). */
static lc_status nr_rope_apply(lc_cpu_ctx *ctx, const lc_node *node, const nr_rope *p,
                               float *dst, const float *src, float sign, bool acc,
                               const char *op) {
    const int32_t *pos = LC_CPU_I32(node->src[1]);
    const float freq_base = node->fp[0], freq_scale = node->fp[1];
    const int64_t half = p->n_rot / 2, hd = p->hd, n_head = p->n_head, n_rot = p->n_rot;
    const int64_t row = hd * n_head;
    /* powf(freq_base, -2.0f*i/n_rot) does not depend on the token: compute it once. The product
     * ((float)pos * freq_scale) * inv_freq[i] is then exactly graph.h's expression. */
    float *inv_freq = malloc((size_t)half * sizeof(float));
    if (!inv_freq) return lc_error(LC_ERR_NOMEM, "cpu %s: no memory for %lld frequencies", op, (long long)half);
    for (int64_t i = 0; i < half; i++)
        inv_freq[i] = powf(freq_base, -2.0f * (float)i / (float)n_rot);
    const int nt = nr_threads(ctx);
    int nomem = 0;
#pragma omp parallel num_threads(nt) if (p->T * row >= 16384)
    {
        float *cs = malloc((size_t)(2 * half) * sizeof(float));
        if (!cs) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(static)
        for (int64_t t = 0; t < p->T; t++) {
            if (!cs) continue;
            const float pf = (float)pos[t];
            for (int64_t i = 0; i < half; i++) {
                const float theta = pf * freq_scale * inv_freq[i];
                cs[2 * i] = cosf(theta);
                cs[2 * i + 1] = sign * sinf(theta);
            }
            for (int64_t h = 0; h < n_head; h++) {
                const float *xs = src + t * row + h * hd;
                float *yd = dst + t * row + h * hd;
                const int64_t stride = p->mode == LC_ROPE_NEOX ? 1 : 2;
                const int64_t off_b = p->mode == LC_ROPE_NEOX ? half : 1;
                for (int64_t i = 0; i < half; i++) {
                    const int64_t ia = i * stride, ib = ia + off_b;
                    const float a = xs[ia], b = xs[ib], c = cs[2 * i], s = cs[2 * i + 1];
                    const float ra = a * c - b * s, rb = a * s + b * c;
                    if (acc) {
                        yd[ia] += ra;
                        yd[ib] += rb;
                    } else {
                        yd[ia] = ra;
                        yd[ib] = rb;
                    }
                }
                for (int64_t d = n_rot; d < hd; d++) yd[d] = acc ? yd[d] + xs[d] : xs[d];
            }
        }
        free(cs);
    }
    free(inv_freq);
    if (nomem) return lc_error(LC_ERR_NOMEM, "cpu %s: no memory for a cos/sin table", op);
    return LC_OK;
}

/* ROPE: see the file comment. Shapes: x, y [hd * n_head, T]; pos I32 [T].
 * Errors: LC_ERR_INVALID_ARG (missing tensor, n_head, n_rot, mode, freq_base), LC_ERR_DTYPE,
 * LC_ERR_SHAPE (not contiguous, pos length != T, y shape != x shape), LC_ERR_STATE, LC_ERR_NOMEM. */
lc_status lc_cpu_op_rope(lc_cpu_ctx *ctx, const lc_node *node) {
    const char *op = "rope";
    nr_rope p = {0};
    lc_status st = nr_rope_check(node, op, node->src[0], "src0 x", &p);
    if (st != LC_OK) return st;
    if ((st = nr_check_like(node->dst[0], node->src[0], op, "dst0 y", "src0 x")) != LC_OK) return st;
    return nr_rope_apply(ctx, node, &p, LC_CPU_F32(node->dst[0]), LC_CPU_F32(node->src[0]), 1.0f,
                         false, op);
}

/* ROPE_BACK: src[1] pos, src[6] dy [hd * n_head, T] -> dst[0] dx = dy rotated by -theta.
 * dst[1] (positions) is never written. Errors as lc_cpu_op_rope. */
lc_status lc_cpu_op_rope_back(lc_cpu_ctx *ctx, const lc_node *node) {
    const char *op = "rope_back";
    nr_rope p = {0};
    const lc_tensor *dy = node->src[6], *dx = node->dst[0];
    lc_status st = nr_rope_check(node, op, dy, "src6 dy", &p);
    if (st != LC_OK) return st;
    if (node->src[0] && (st = nr_check_like(node->src[0], dy, op, "src0 x", "src6 dy")) != LC_OK)
        return st;
    if (!dx) return LC_OK;
    if ((st = nr_check_like(dx, dy, op, "dst0 dx", "src6 dy")) != LC_OK) return st;
    const bool acc = (node->accum & 1u) != 0;
    float *pdx = LC_CPU_F32(dx);
    const float *pdy = LC_CPU_F32(dy);
    if (acc && pdx == pdy)
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: accumulating dx must not share memory with dy", op);
    return nr_rope_apply(ctx, node, &p, pdx, pdy, -1.0f, acc, op);
}
