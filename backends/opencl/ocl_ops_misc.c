/* lorac OpenCL backend — get_rows (+ backward), dequantize, cpy, sum_sq, adamw and
 * cross_entropy (+ backward). Semantics and parameter slots: lorac/graph.h; reference behaviour:
 * backends/cpu/ops_misc.c and ops_loss.c; kernels: kernels/misc.cl and kernels/loss.cl.
 * Reductions (sum_sq, cross-entropy rows and loss) are work-group trees over Kahan partial sums
 * with a fixed partition, so every run gives the same bits.
 */
#include <math.h>

#include "ocl_internal.h"

/* Ids: I32, contiguous, n elements. */
static lc_status need_ids(const lc_node *node, const lc_tensor *t, int64_t *n) {
    lc_status st = ocl_need(node, t, "ids (src1)", LC_I32);
    if (st != LC_OK) return st;
    *n = ocl_nel(t);
    if (*n > (int64_t)UINT32_MAX) return lc_error(LC_ERR_SHAPE, "opencl %s: too many ids", lc_op_name(node->op));
    return LC_OK;
}

/* GET_ROWS: src0 table [E, V] (any weight dtype), src1 ids I32 [N] -> dst0 F32 [E, N],
 * dst0[:, n] = table[:, ids[n]], decoding only the rows asked for. An id outside [0, V) is
 * reported by the next synchronize as LC_ERR_INVALID_ARG naming the id and its position.
 * Errors: LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE. */
lc_status ocl_op_get_rows(ocl_ctx *c, const lc_node *node) {
    ocl_mat tab;
    int64_t n;
    const lc_tensor *y = node->dst[0];
    lc_status st;
    if ((st = ocl_view(node, node->src[0], "table (src0)", false, &tab)) || (st = need_ids(node, node->src[1], &n)) ||
        (st = ocl_need(node, y, "dst0", LC_F32)))
        return st;
    if (y->ne[0] != tab.cols || ocl_nel(y) != tab.cols * n)
        return lc_error(LC_ERR_SHAPE, "opencl get_rows: dst0 '%s' is [%lld, %lld], expected [%lld, %lld]", y->name,
                        (long long)y->ne[0], (long long)(ocl_nel(y) / y->ne[0]), (long long)tab.cols, (long long)n);
    const lc_tensor *ids = node->src[1];
    ocl_args a;
    oa_begin(&a, c, OCL_K_get_rows);
    oa_mem(&a, ocl_mem(y));
    oa_u64(&a, y->offset);
    oa_mem(&a, tab.mem);
    oa_u64(&a, tab.off);
    oa_u64(&a, tab.nb1);
    oa_mem(&a, ocl_mem(ids));
    oa_u64(&a, ids->offset);
    oa_u32(&a, (uint32_t)tab.cols);
    oa_u32(&a, (uint32_t)n);
    oa_u32(&a, (uint32_t)tab.rows);
    oa_i32(&a, (int32_t)tab.dtype);
    oa_mem(&a, c->err_buf);
    size_t l0 = c->kwg[OCL_K_get_rows] >= 64 ? 64 : c->kwg[OCL_K_get_rows];
    const size_t lws[2] = {l0, 1}, gws[2] = {(size_t)tab.cols, (size_t)n};
    return ocl_launch(&a, 2, gws, lws);
}

/* GET_ROWS_BACK: src0 table [E, V], src1 ids [N], src6 dy F32 [E, N] -> dst0 dtable F32 [E, V]
 * (+)= dy columns into rows ids[n], in order of n (repeated ids add up). Errors as GET_ROWS. */
lc_status ocl_op_get_rows_back(ocl_ctx *c, const lc_node *node) {
    const lc_tensor *dt = node->dst[0], *dy = node->src[6], *ids = node->src[1];
    if (!dt) return LC_OK;
    ocl_mat tab;
    int64_t n;
    lc_status st;
    if ((st = ocl_view(node, node->src[0], "table (src0)", false, &tab)) || (st = need_ids(node, ids, &n)) ||
        (st = ocl_need(node, dy, "dy (src6)", LC_F32)) || (st = ocl_need(node, dt, "dtable (dst0)", LC_F32)))
        return st;
    if (dy->ne[0] != tab.cols || ocl_nel(dy) != tab.cols * n)
        return lc_error(LC_ERR_SHAPE, "opencl get_rows_back: dy '%s' does not hold %lld columns of %lld", dy->name,
                        (long long)n, (long long)tab.cols);
    if (dt->ne[0] != tab.cols || ocl_nel(dt) != tab.cols * tab.rows)
        return lc_error(LC_ERR_SHAPE, "opencl get_rows_back: dtable '%s' is not [%lld, %lld]", dt->name,
                        (long long)tab.cols, (long long)tab.rows);
    if (!(node->accum & 1u) && (st = ocl_fill_zero(c, ocl_mem(dt), dt->offset, lc_nbytes(dt))) != LC_OK) return st;
    ocl_args a;
    oa_begin(&a, c, OCL_K_get_rows_back);
    oa_mem(&a, ocl_mem(dt));
    oa_u64(&a, dt->offset);
    oa_mem(&a, ocl_mem(dy));
    oa_u64(&a, dy->offset);
    oa_mem(&a, ocl_mem(ids));
    oa_u64(&a, ids->offset);
    oa_u32(&a, (uint32_t)tab.cols);
    oa_u32(&a, (uint32_t)n);
    oa_u32(&a, (uint32_t)tab.rows);
    oa_mem(&a, c->err_buf);
    return ocl_launch_1d(&a, (size_t)tab.cols);
}

/* DEQUANTIZE: src0 any weight dtype -> dst0 F32, same ne (reference/formats.md §2).
 * Errors: LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE. */
lc_status ocl_op_dequantize(ocl_ctx *c, const lc_node *node) {
    ocl_mat src;
    const lc_tensor *y = node->dst[0];
    lc_status st;
    if ((st = ocl_view(node, node->src[0], "src0", false, &src)) || (st = ocl_need(node, y, "dst0", LC_F32))) return st;
    if (!ocl_same_ne(y, node->src[0]))
        return lc_error(LC_ERR_SHAPE, "opencl dequantize: dst0 '%s' differs in shape from src0 '%s'", y->name,
                        node->src[0]->name);
    ocl_args a;
    oa_begin(&a, c, OCL_K_dequantize_rows);
    oa_mem(&a, ocl_mem(y));
    oa_u64(&a, y->offset);
    oa_mem(&a, src.mem);
    oa_u64(&a, src.off);
    oa_u64(&a, src.nb1);
    oa_u32(&a, (uint32_t)src.cols);
    oa_u32(&a, (uint32_t)src.rows);
    oa_i32(&a, (int32_t)src.dtype);
    size_t l0 = c->kwg[OCL_K_dequantize_rows] >= 64 ? 64 : c->kwg[OCL_K_dequantize_rows];
    const size_t lws[2] = {l0, 1}, gws[2] = {(size_t)src.cols, (size_t)src.rows};
    return ocl_launch(&a, 2, gws, lws);
}

static bool float_dt(lc_dtype t) { return t == LC_F32 || t == LC_F16 || t == LC_BF16; }

/* CPY: src0 F32/F16/BF16 -> dst0 F32/F16/BF16, same ne, round to nearest even.
 * Errors: LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE. */
lc_status ocl_op_cpy(ocl_ctx *c, const lc_node *node) {
    const lc_tensor *s = node->src[0], *d = node->dst[0];
    lc_status st;
    if ((st = ocl_need(node, s, "src0", -1)) || (st = ocl_need(node, d, "dst0", -1))) return st;
    if (!float_dt(s->dtype) || !float_dt(d->dtype))
        return lc_error(LC_ERR_DTYPE, "opencl cpy: %s -> %s is not supported (f32, f16 and bf16 only)", lc_dtype_name(s->dtype),
                        lc_dtype_name(d->dtype));
    if (!ocl_same_ne(s, d)) return lc_error(LC_ERR_SHAPE, "opencl cpy: dst0 '%s' differs in shape from src0 '%s'", d->name, s->name);
    if (s->offset % 2 || d->offset % 2) return lc_error(LC_ERR_SHAPE, "opencl cpy: odd byte offset");
    if (ocl_nel(s) > (int64_t)UINT32_MAX) return lc_error(LC_ERR_SHAPE, "opencl cpy: '%s' is too large", s->name);
    ocl_args a;
    oa_begin(&a, c, OCL_K_cpy_convert);
    oa_mem(&a, ocl_mem(d));
    oa_u64(&a, d->offset);
    oa_i32(&a, (int32_t)d->dtype);
    oa_mem(&a, ocl_mem(s));
    oa_u64(&a, s->offset);
    oa_i32(&a, (int32_t)s->dtype);
    oa_u32(&a, (uint32_t)ocl_nel(s));
    return ocl_launch_1d(&a, (size_t)ocl_nel(s));
}

/* SUM_SQ: src0 F32 (any shape) -> dst0 F32 [1] (+)= sum of squares, in two fixed stages.
 * Errors: LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE, LC_ERR_DEVICE_NOMEM. */
lc_status ocl_op_sum_sq(ocl_ctx *c, const lc_node *node) {
    const lc_tensor *x = node->src[0], *y = node->dst[0];
    lc_status st;
    if ((st = ocl_need(node, x, "src0", LC_F32)) || (st = ocl_need(node, y, "dst0", LC_F32))) return st;
    if (ocl_nel(y) != 1) return lc_error(LC_ERR_SHAPE, "opencl sum_sq: dst0 '%s' has %lld elements, expected 1", y->name, (long long)ocl_nel(y));
    const uint64_t n = (uint64_t)ocl_nel(x);
    uint64_t chunk = (n + 511) / 512;
    if (chunk < 4096) chunk = 4096;
    if (chunk > UINT32_MAX) return lc_error(LC_ERR_SHAPE, "opencl sum_sq: '%s' is too large", x->name);
    const uint64_t np = (n + chunk - 1) / chunk;
    cl_mem part;
    if ((st = ocl_scratch(c, OCL_SCR_RED, (size_t)np * sizeof(float), &part)) != LC_OK) return st;
    size_t wg = ocl_red_wg(c, OCL_K_sum_sq_part, (size_t)chunk);
    ocl_args a;
    oa_begin(&a, c, OCL_K_sum_sq_part);
    oa_mem(&a, part);
    oa_mem(&a, ocl_mem(x));
    oa_u64(&a, x->offset);
    oa_u64(&a, n);
    oa_u32(&a, (uint32_t)chunk);
    oa_local(&a, wg * sizeof(float));
    if ((st = ocl_launch_groups(&a, (size_t)np, wg)) != LC_OK) return st;
    wg = ocl_red_wg(c, OCL_K_sum_sq_final, (size_t)np);
    oa_begin(&a, c, OCL_K_sum_sq_final);
    oa_mem(&a, ocl_mem(y));
    oa_u64(&a, y->offset);
    oa_mem(&a, part);
    oa_u32(&a, (uint32_t)np);
    oa_i32(&a, (node->accum & 1u) != 0);
    oa_local(&a, wg * sizeof(float));
    return ocl_launch_groups(&a, 1, wg);
}

/* ADAMW (in place): src0 = dst0 param, src1 grad, src2 = dst1 m, src3 = dst2 v (F32, param's
 * ne); fp[0..5] lr, beta1, beta2, eps, weight_decay, grad_scale; ip[0] = t >= 1. Bias
 * corrections 1 - b^t in double on the host, rounded to float (as the CPU backend).
 * Errors: LC_ERR_INVALID_ARG (t), LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE. */
lc_status ocl_op_adamw(ocl_ctx *c, const lc_node *node) {
    const lc_tensor *p = node->dst[0] ? node->dst[0] : node->src[0];
    const lc_tensor *m = node->dst[1] ? node->dst[1] : node->src[2];
    const lc_tensor *v = node->dst[2] ? node->dst[2] : node->src[3];
    const lc_tensor *g = node->src[1];
    lc_status st;
    if ((st = ocl_need(node, p, "param (src0)", LC_F32)) || (st = ocl_need(node, g, "grad (src1)", LC_F32)) ||
        (st = ocl_need(node, m, "m (src2)", LC_F32)) || (st = ocl_need(node, v, "v (src3)", LC_F32)))
        return st;
    const int64_t n = ocl_nel(p);
    if (ocl_nel(g) != n || ocl_nel(m) != n || ocl_nel(v) != n)
        return lc_error(LC_ERR_SHAPE, "opencl adamw: param '%s' has %lld elements but grad/m/v have %lld/%lld/%lld", p->name,
                        (long long)n, (long long)ocl_nel(g), (long long)ocl_nel(m), (long long)ocl_nel(v));
    if (n > (int64_t)UINT32_MAX) return lc_error(LC_ERR_SHAPE, "opencl adamw: '%s' is too large", p->name);
    const int t = node->ip[0];
    if (t < 1) return lc_error(LC_ERR_INVALID_ARG, "opencl adamw: step t = %d (ip[0]) must be >= 1", t);
    const float lr = node->fp[0], b1 = node->fp[1], b2 = node->fp[2];
    const float bc1 = (float)(1.0 - pow((double)b1, (double)t));
    const float bc2 = (float)(1.0 - pow((double)b2, (double)t));
    ocl_args a;
    oa_begin(&a, c, OCL_K_adamw_f32);
    oa_mem(&a, ocl_mem(p));
    oa_u64(&a, p->offset);
    oa_mem(&a, ocl_mem(g));
    oa_u64(&a, g->offset);
    oa_mem(&a, ocl_mem(m));
    oa_u64(&a, m->offset);
    oa_mem(&a, ocl_mem(v));
    oa_u64(&a, v->offset);
    oa_u32(&a, (uint32_t)n);
    oa_f32(&a, lr);
    oa_f32(&a, b1);
    oa_f32(&a, b2);
    oa_f32(&a, node->fp[3]);
    oa_f32(&a, node->fp[5]);
    oa_f32(&a, bc1);
    oa_f32(&a, bc2);
    oa_f32(&a, 1.0f - lr * node->fp[4]);
    oa_f32(&a, 1.0f - b1);
    oa_f32(&a, 1.0f - b2);
    return ocl_launch_1d(&a, (size_t)n);
}

/* ---- cross_entropy ------------------------------------------------------------------------ */

static lc_status ce_inputs(const lc_node *node, int64_t *V, int64_t *N) {
    const lc_tensor *lg = node->src[0], *lb = node->src[1];
    lc_status st;
    if ((st = ocl_need(node, lg, "src0 logits", LC_F32)) || (st = ocl_need(node, lb, "src1 labels", LC_I32))) return st;
    *V = lg->ne[0];
    *N = lg->ne[1] * lg->ne[2] * lg->ne[3];
    if (ocl_nel(lb) != *N)
        return lc_error(LC_ERR_SHAPE, "opencl %s: labels '%s' has %lld elements, logits '%s' has %lld rows",
                        lc_op_name(node->op), lb->name, (long long)ocl_nel(lb), lg->name, (long long)*N);
    if (*V > (int64_t)UINT32_MAX || *N > (int64_t)UINT32_MAX)
        return lc_error(LC_ERR_SHAPE, "opencl %s: logits '%s' is too large", lc_op_name(node->op), lg->name);
    if (!isfinite(node->fp[0])) return lc_error(LC_ERR_INVALID_ARG, "opencl %s: denominator fp[0] is not finite", lc_op_name(node->op));
    return LC_OK;
}

/* CROSS_ENTROPY: src0 logits F32 [V, N], src1 labels I32 [N] -> dst0 loss [1], dst1 lse [N] (may be
 * NULL); ip[0] ignore_index, fp[0] denominator (> 0) or 0 (counted rows).
 * Errors: LC_ERR_INVALID_ARG, LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE, LC_ERR_DEVICE_NOMEM. */
lc_status ocl_op_cross_entropy(ocl_ctx *c, const lc_node *node) {
    int64_t V, N;
    lc_status st = ce_inputs(node, &V, &N);
    if (st != LC_OK) return st;
    const lc_tensor *lg = node->src[0], *lb = node->src[1], *loss = node->dst[0], *lse = node->dst[1];
    if ((st = ocl_need(node, loss, "dst0 loss", LC_F32)) != LC_OK) return st;
    if (ocl_nel(loss) != 1) return lc_error(LC_ERR_SHAPE, "opencl cross_entropy: loss '%s' must have 1 element", loss->name);
    if (lse) {
        if ((st = ocl_need(node, lse, "dst1 lse", LC_F32)) != LC_OK) return st;
        if (ocl_nel(lse) != N) return lc_error(LC_ERR_SHAPE, "opencl cross_entropy: lse '%s' must have %lld elements", lse->name, (long long)N);
    }
    cl_mem nll;
    if ((st = ocl_scratch(c, OCL_SCR_RED, (size_t)N * sizeof(float), &nll)) != LC_OK) return st;
    size_t wg = ocl_red_wg(c, OCL_K_ce_rows, (size_t)V);
    ocl_args a;
    oa_begin(&a, c, OCL_K_ce_rows);
    oa_mem(&a, ocl_mem(lg));
    oa_u64(&a, lg->offset);
    oa_mem(&a, ocl_mem(lb));
    oa_u64(&a, lb->offset);
    oa_mem(&a, lse ? ocl_mem(lse) : NULL);
    oa_u64(&a, lse ? lse->offset : 0);
    oa_i32(&a, lse != NULL);
    oa_mem(&a, nll);
    oa_u32(&a, (uint32_t)V);
    oa_i32(&a, node->ip[0]);
    oa_local(&a, wg * sizeof(float));
    if ((st = ocl_launch_groups(&a, (size_t)N, wg)) != LC_OK) return st;
    wg = ocl_red_wg(c, OCL_K_ce_loss, (size_t)N);
    oa_begin(&a, c, OCL_K_ce_loss);
    oa_mem(&a, ocl_mem(loss));
    oa_u64(&a, loss->offset);
    oa_mem(&a, nll);
    oa_mem(&a, ocl_mem(lb));
    oa_u64(&a, lb->offset);
    oa_u32(&a, (uint32_t)N);
    oa_u32(&a, (uint32_t)V);
    oa_i32(&a, node->ip[0]);
    oa_f32(&a, node->fp[0]);
    oa_local(&a, wg * sizeof(float));
    return ocl_launch_groups(&a, 1, wg);
}

/* CROSS_ENTROPY_BACK: src0 logits, src1 labels, src5 lse (recomputed when NULL), src6 dloss [1] ->
 * dst0 dlogits [V, N] (+)= dloss/D (softmax - onehot) on counted rows, 0 (unchanged with accum)
 * elsewhere. Errors as CROSS_ENTROPY. */
lc_status ocl_op_cross_entropy_back(ocl_ctx *c, const lc_node *node) {
    int64_t V, N;
    lc_status st = ce_inputs(node, &V, &N);
    if (st != LC_OK) return st;
    const lc_tensor *lg = node->src[0], *lb = node->src[1], *lse = node->src[5], *dl = node->src[6], *dx = node->dst[0];
    if ((st = ocl_need(node, dl, "src6 dloss", LC_F32)) != LC_OK) return st;
    if (ocl_nel(dl) != 1) return lc_error(LC_ERR_SHAPE, "opencl cross_entropy_back: dloss '%s' must have 1 element", dl->name);
    if (lse) {
        if ((st = ocl_need(node, lse, "src5 lse", LC_F32)) != LC_OK) return st;
        if (ocl_nel(lse) != N) return lc_error(LC_ERR_SHAPE, "opencl cross_entropy_back: lse '%s' must have %lld elements", lse->name, (long long)N);
    }
    if (!dx) return LC_OK;
    if ((st = ocl_need_like(node, dx, "dst0 dlogits", lg)) != LC_OK) return st;
    cl_mem coef;
    if ((st = ocl_scratch(c, OCL_SCR_RED, sizeof(float), &coef)) != LC_OK) return st;
    size_t wg = ocl_red_wg(c, OCL_K_ce_coef, (size_t)N);
    ocl_args a;
    oa_begin(&a, c, OCL_K_ce_coef);
    oa_mem(&a, coef);
    oa_mem(&a, ocl_mem(dl));
    oa_u64(&a, dl->offset);
    oa_mem(&a, ocl_mem(lb));
    oa_u64(&a, lb->offset);
    oa_u32(&a, (uint32_t)N);
    oa_u32(&a, (uint32_t)V);
    oa_i32(&a, node->ip[0]);
    oa_f32(&a, node->fp[0]);
    oa_local(&a, wg * sizeof(float));
    if ((st = ocl_launch_groups(&a, 1, wg)) != LC_OK) return st;
    wg = ocl_red_wg(c, OCL_K_ce_back_rows, (size_t)V);
    oa_begin(&a, c, OCL_K_ce_back_rows);
    oa_mem(&a, ocl_mem(dx));
    oa_u64(&a, dx->offset);
    oa_mem(&a, ocl_mem(lg));
    oa_u64(&a, lg->offset);
    oa_mem(&a, ocl_mem(lb));
    oa_u64(&a, lb->offset);
    oa_mem(&a, lse ? ocl_mem(lse) : NULL);
    oa_u64(&a, lse ? lse->offset : 0);
    oa_i32(&a, lse != NULL);
    oa_mem(&a, coef);
    oa_u32(&a, (uint32_t)V);
    oa_i32(&a, node->ip[0]);
    oa_i32(&a, (node->accum & 1u) != 0);
    oa_local(&a, wg * sizeof(float));
    return ocl_launch_groups(&a, (size_t)N, wg);
}
