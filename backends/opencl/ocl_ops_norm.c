/* lorac OpenCL backend — rms_norm and rope, forward and backward (lorac/graph.h; reference
 * behaviour backends/cpu/ops_norm_rope.c; kernels/norm_rope.cl).
 *
 * RMS_NORM: one work-group per group of g elements; the backward writes the per-group 1/rms
 * into a scratch vector that a second kernel uses for dweight (one work-item per weight
 * element, summing over the groups in order).
 * ROPE: one work-item per rotated pair or passed-through element; the frequencies
 * powf(freq_base, -2.0f*i/n_rot) are computed on the host once per (freq_base, n_rot) and
 * cached on the device, so the angle is the CPU backend's to the bit.
 */
#include <math.h>

#include "ocl_internal.h"

/* ---- rms_norm ----------------------------------------------------------------------------- */

typedef struct rms_geom {
    int64_t g, ng;
} rms_geom;

static lc_status rms_check(const lc_node *node, rms_geom *p) {
    const char *op = lc_op_name(node->op);
    const lc_tensor *x = node->src[0], *w = node->src[1];
    lc_status st;
    if ((st = ocl_need(node, x, "src0 x", LC_F32)) != LC_OK) return st;
    const int64_t n = x->ne[0];
    const int64_t g = node->ip[0] == 0 ? n : (int64_t)node->ip[0];
    if (g < 1 || n % g != 0)
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: group size ip[0]=%d does not divide row length %lld", op, node->ip[0],
                        (long long)n);
    if (w) {
        if ((st = ocl_need(node, w, "src1 weight", LC_F32)) != LC_OK) return st;
        if (ocl_nel(w) != g)
            return lc_error(LC_ERR_SHAPE, "opencl %s: weight '%s' has %lld elements, group size is %lld", op, w->name,
                            (long long)ocl_nel(w), (long long)g);
    }
    if (!(node->fp[0] >= 0.0f) || isinf(node->fp[0]))
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: eps fp[0]=%g must be finite and >= 0", op, (double)node->fp[0]);
    if (ocl_nel(x) > (int64_t)UINT32_MAX * 64)
        return lc_error(LC_ERR_SHAPE, "opencl %s: x '%s' is too large", op, x->name);
    p->g = g;
    p->ng = ocl_nel(x) / g;
    return LC_OK;
}

/* RMS_NORM: src0 x F32 [n, R], src1 weight F32 [g] or NULL, ip[0] = g (0: n), fp[0] = eps ->
 * dst0 y [n, R]: y = x / sqrt(mean(x^2 over the group) + eps) * w[i % g].
 * Errors: LC_ERR_INVALID_ARG (g, eps), LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE. */
lc_status ocl_op_rms_norm(ocl_ctx *c, const lc_node *node) {
    rms_geom p;
    lc_status st = rms_check(node, &p);
    if (st != LC_OK) return st;
    const lc_tensor *x = node->src[0], *w = node->src[1], *y = node->dst[0];
    if ((st = ocl_need_like(node, y, "dst0 y", x)) != LC_OK) return st;
    const size_t wg = ocl_red_wg(c, OCL_K_rms_norm_f32, (size_t)p.g);
    ocl_args a;
    oa_begin(&a, c, OCL_K_rms_norm_f32);
    oa_mem(&a, ocl_mem(y));
    oa_u64(&a, y->offset);
    oa_mem(&a, ocl_mem(x));
    oa_u64(&a, x->offset);
    oa_mem(&a, w ? ocl_mem(w) : NULL);
    oa_u64(&a, w ? w->offset : 0);
    oa_i32(&a, w != NULL);
    oa_u32(&a, (uint32_t)p.g);
    oa_f32(&a, node->fp[0]);
    oa_local(&a, wg * sizeof(float));
    return ocl_launch_groups(&a, (size_t)p.ng, wg);
}

/* RMS_NORM_BACK: src0 x [n, R], src1 weight [g] or NULL, src6 dy -> dst0 dx (+)= r u -
 * (r^3/g) x sum(u x) with u = dy * w; dst1 dweight [g] (+)= sum over groups of dy x r.
 * Errors as RMS_NORM, plus LC_ERR_INVALID_ARG for a dweight without weight. */
lc_status ocl_op_rms_norm_back(ocl_ctx *c, const lc_node *node) {
    rms_geom p;
    lc_status st = rms_check(node, &p);
    if (st != LC_OK) return st;
    const lc_tensor *x = node->src[0], *w = node->src[1], *dy = node->src[6];
    const lc_tensor *dx = node->dst[0], *dw = node->dst[1];
    if ((st = ocl_need_like(node, dy, "src6 dy", x)) || (dx && (st = ocl_need_like(node, dx, "dst0 dx", x))))
        return st;
    if (dw) {
        if (!w) return lc_error(LC_ERR_INVALID_ARG, "opencl rms_norm_back: dst1 dweight given but src1 weight is NULL");
        if ((st = ocl_need_like(node, dw, "dst1 dweight", w)) != LC_OK) return st;
    }
    if (!dx && !dw) return LC_OK;
    cl_mem rstd;
    if ((st = ocl_scratch(c, OCL_SCR_RED, (size_t)p.ng * sizeof(float), &rstd)) != LC_OK) return st;
    const size_t wg = ocl_red_wg(c, OCL_K_rms_norm_back_f32, (size_t)p.g);
    ocl_args a;
    oa_begin(&a, c, OCL_K_rms_norm_back_f32);
    oa_mem(&a, dx ? ocl_mem(dx) : NULL);
    oa_u64(&a, dx ? dx->offset : 0);
    oa_mem(&a, ocl_mem(x));
    oa_u64(&a, x->offset);
    oa_mem(&a, w ? ocl_mem(w) : NULL);
    oa_u64(&a, w ? w->offset : 0);
    oa_mem(&a, ocl_mem(dy));
    oa_u64(&a, dy->offset);
    oa_mem(&a, rstd);
    oa_i32(&a, w != NULL);
    oa_i32(&a, dx != NULL);
    oa_i32(&a, (node->accum & 1u) != 0);
    oa_u32(&a, (uint32_t)p.g);
    oa_f32(&a, node->fp[0]);
    oa_local(&a, 2 * wg * sizeof(float));
    if ((st = ocl_launch_groups(&a, (size_t)p.ng, wg)) != LC_OK) return st;
    if (!dw) return LC_OK;
    if (p.ng > (int64_t)UINT32_MAX) return lc_error(LC_ERR_SHAPE, "opencl rms_norm_back: too many groups");
    oa_begin(&a, c, OCL_K_rms_norm_back_dw_f32);
    oa_mem(&a, ocl_mem(dw));
    oa_u64(&a, dw->offset);
    oa_mem(&a, ocl_mem(x));
    oa_u64(&a, x->offset);
    oa_mem(&a, ocl_mem(dy));
    oa_u64(&a, dy->offset);
    oa_mem(&a, rstd);
    oa_u32(&a, (uint32_t)p.g);
    oa_u32(&a, (uint32_t)p.ng);
    oa_i32(&a, (node->accum & 2u) != 0);
    return ocl_launch_1d(&a, (size_t)p.g);
}

/* ---- rope --------------------------------------------------------------------------------- */

typedef struct rope_geom {
    int64_t n_head, hd, n_rot, T;
} rope_geom;

static lc_status rope_check(const lc_node *node, const lc_tensor *x, const char *x_field, rope_geom *p) {
    const char *op = lc_op_name(node->op);
    const lc_tensor *pos = node->src[1];
    lc_status st;
    if ((st = ocl_need(node, x, x_field, LC_F32)) || (st = ocl_need(node, pos, "src1 pos", LC_I32))) return st;
    const int64_t n_head = node->ip[0], n_rot = node->ip[1];
    if (n_head < 1 || x->ne[0] % n_head != 0)
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: n_head ip[0]=%lld does not divide x.ne[0]=%lld", op,
                        (long long)n_head, (long long)x->ne[0]);
    const int64_t hd = x->ne[0] / n_head;
    if (n_rot < 2 || n_rot % 2 != 0 || n_rot > hd)
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: n_rot ip[1]=%lld must be even and in [2, head_dim=%lld]", op,
                        (long long)n_rot, (long long)hd);
    if (node->ip[2] != LC_ROPE_NORM && node->ip[2] != LC_ROPE_NEOX)
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: mode ip[2]=%d is neither NORM (0) nor NEOX (2)", op, node->ip[2]);
    const int64_t T = x->ne[1] * x->ne[2] * x->ne[3];
    if (ocl_nel(pos) != T)
        return lc_error(LC_ERR_SHAPE, "opencl %s: pos '%s' has %lld elements, x has %lld tokens", op, pos->name,
                        (long long)ocl_nel(pos), (long long)T);
    if (!isfinite(node->fp[0]) || !(node->fp[0] > 0.0f) || !isfinite(node->fp[1]))
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: freq_base fp[0]=%g must be > 0 and freq_scale fp[1]=%g finite", op,
                        (double)node->fp[0], (double)node->fp[1]);
    if (T > (int64_t)UINT32_MAX || ocl_nel(x) > (int64_t)UINT32_MAX * 16)
        return lc_error(LC_ERR_SHAPE, "opencl %s: x '%s' is too large", op, x->name);
    p->n_head = n_head;
    p->hd = hd;
    p->n_rot = n_rot;
    p->T = T;
    return LC_OK;
}

static lc_status rope_apply(ocl_ctx *c, const lc_node *node, const rope_geom *p, const lc_tensor *dst,
                            const lc_tensor *src, float sign, bool acc) {
    cl_mem freqs;
    lc_status st = ocl_rope_freqs(c, node->fp[0], (int)p->n_rot, &freqs);
    if (st != LC_OK) return st;
    const lc_tensor *pos = node->src[1];
    ocl_args a;
    oa_begin(&a, c, OCL_K_rope_f32);
    oa_mem(&a, ocl_mem(dst));
    oa_u64(&a, dst->offset);
    oa_mem(&a, ocl_mem(src));
    oa_u64(&a, src->offset);
    oa_mem(&a, ocl_mem(pos));
    oa_u64(&a, pos->offset);
    oa_mem(&a, freqs);
    oa_u32(&a, (uint32_t)p->hd);
    oa_u32(&a, (uint32_t)p->n_head);
    oa_u32(&a, (uint32_t)p->n_rot);
    oa_i32(&a, node->ip[2] == LC_ROPE_NEOX);
    oa_f32(&a, node->fp[1]);
    oa_f32(&a, sign);
    oa_i32(&a, acc);
    oa_u32(&a, (uint32_t)p->T);
    const size_t w = (size_t)(p->n_rot / 2 + (p->hd - p->n_rot));
    size_t l0 = 1;
    while (l0 * 2 <= w && l0 * 2 <= 64 && l0 * 2 <= c->kwg[OCL_K_rope_f32]) l0 *= 2;
    const size_t lws[3] = {l0, 1, 1}, gws[3] = {w, (size_t)p->n_head, (size_t)p->T};
    return ocl_launch(&a, 3, gws, lws);
}

/* ROPE: src0 x F32 [hd * n_head, T], src1 pos I32 [T] -> dst0 y, same ne; ip[0] n_head, ip[1]
 * n_rot, ip[2] mode, fp[0] freq_base, fp[1] freq_scale (see lorac/graph.h).
 * Errors: LC_ERR_INVALID_ARG, LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE, LC_ERR_NOMEM. */
lc_status ocl_op_rope(ocl_ctx *c, const lc_node *node) {
    rope_geom p;
    lc_status st = rope_check(node, node->src[0], "src0 x", &p);
    if (st != LC_OK) return st;
    if ((st = ocl_need_like(node, node->dst[0], "dst0 y", node->src[0])) != LC_OK) return st;
    return rope_apply(c, node, &p, node->dst[0], node->src[0], 1.0f, false);
}

/* ROPE_BACK: src1 pos, src6 dy -> dst0 dx (+)= dy rotated by -theta. Errors as ROPE, plus
 * LC_ERR_INVALID_ARG when an accumulating dx shares memory with dy. */
lc_status ocl_op_rope_back(ocl_ctx *c, const lc_node *node) {
    rope_geom p;
    const lc_tensor *dy = node->src[6], *dx = node->dst[0];
    lc_status st = rope_check(node, dy, "src6 dy", &p);
    if (st != LC_OK) return st;
    if (node->src[0] && (st = ocl_need_like(node, node->src[0], "src0 x", dy)) != LC_OK) return st;
    if (!dx) return LC_OK;
    if ((st = ocl_need_like(node, dx, "dst0 dx", dy)) != LC_OK) return st;
    const bool acc = (node->accum & 1u) != 0;
    if (acc && ocl_mem(dx) == ocl_mem(dy) && dx->offset == dy->offset)
        return lc_error(LC_ERR_INVALID_ARG, "opencl rope_back: accumulating dx must not share memory with dy");
    return rope_apply(c, node, &p, dx, dy, -1.0f, acc);
}
