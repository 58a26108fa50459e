/* lorac OpenCL backend — element-wise ops, forward and backward: fill, add, mul (b broadcast by
 * repetition), scale, gelu_tanh, silu, geglu, swiglu. Semantics and parameter slots:
 * lorac/graph.h; formulas and reference behaviour: backends/cpu/ops_elementwise.c; kernels:
 * kernels/elementwise.cl. Tensors are contiguous F32; "rows" counts ne[1]*ne[2]*ne[3].
 * Backward nodes: src[0..3] forward inputs, src[6] dL/dy, dst[i] = dL/d src[i] or NULL, accum
 * bit i adds into dst[i].
 */
#include "ocl_internal.h"

static int64_t rows_of(const lc_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

static lc_status too_big(const lc_node *node, const lc_tensor *t) {
    if (ocl_nel(t) > (int64_t)UINT32_MAX)
        return lc_error(LC_ERR_SHAPE, "opencl %s: '%s' has more than 2^32 elements", lc_op_name(node->op), t->name);
    return LC_OK;
}

/* FILL: dst0 F32 (any shape, contiguous) = fp[0]. Errors: LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE. */
lc_status ocl_op_fill(ocl_ctx *c, const lc_node *node) {
    const lc_tensor *y = node->dst[0];
    lc_status st;
    if ((st = ocl_need(node, y, "dst0", LC_F32)) || (st = too_big(node, y))) return st;
    ocl_args a;
    oa_begin(&a, c, OCL_K_fill_f32);
    oa_mem(&a, ocl_mem(y));
    oa_u64(&a, y->offset);
    oa_u32(&a, (uint32_t)ocl_nel(y));
    oa_f32(&a, node->fp[0]);
    return ocl_launch_1d(&a, (size_t)ocl_nel(y));
}

/* ---- add / mul ---------------------------------------------------------------------------- */

typedef struct bcast {
    int64_t n0, n1, m0, m1;
} bcast;

static lc_status bcast_check(const lc_node *node, const lc_tensor *a, const lc_tensor *b, bcast *g) {
    g->n0 = a->ne[0];
    g->n1 = rows_of(a);
    g->m0 = b->ne[0];
    g->m1 = rows_of(b);
    if (g->n0 % g->m0 != 0 || g->n1 % g->m1 != 0)
        return lc_error(LC_ERR_SHAPE, "opencl %s: b [%lld, %lld] does not tile a [%lld, %lld]", lc_op_name(node->op),
                        (long long)g->m0, (long long)g->m1, (long long)g->n0, (long long)g->n1);
    return too_big(node, a);
}

/* ADD / MUL: src0 a F32 [n0, n1], src1 b F32 [m0, m1] (n0 % m0 == 0, n1 % m1 == 0) -> dst0 y [n0, n1]
 * = a[i,j] (+ or *) b[i % m0, j % m1]. Errors: LC_ERR_INVALID_ARG, LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE. */
static lc_status binary_fwd(ocl_ctx *c, const lc_node *node, bool is_mul) {
    const lc_tensor *a = node->src[0], *b = node->src[1], *y = node->dst[0];
    lc_status st;
    bcast g;
    if ((st = ocl_need(node, a, "src0 a", LC_F32)) || (st = ocl_need(node, b, "src1 b", LC_F32)) ||
        (st = ocl_need_like(node, y, "dst0 y", a)) || (st = bcast_check(node, a, b, &g)))
        return st;
    ocl_args ar;
    oa_begin(&ar, c, OCL_K_binary_f32);
    oa_mem(&ar, ocl_mem(y));
    oa_u64(&ar, y->offset);
    oa_mem(&ar, ocl_mem(a));
    oa_u64(&ar, a->offset);
    oa_mem(&ar, ocl_mem(b));
    oa_u64(&ar, b->offset);
    oa_u32(&ar, (uint32_t)g.n0);
    oa_u32(&ar, (uint32_t)(g.n0 * g.n1));
    oa_u32(&ar, (uint32_t)g.m0);
    oa_u32(&ar, (uint32_t)g.m1);
    oa_i32(&ar, is_mul);
    return ocl_launch_1d(&ar, (size_t)(g.n0 * g.n1));
}

lc_status ocl_op_add(ocl_ctx *c, const lc_node *node) { return binary_fwd(c, node, false); }
lc_status ocl_op_mul(ocl_ctx *c, const lc_node *node) { return binary_fwd(c, node, true); }

/* ADD_BACK / MUL_BACK: src0 a [n0, n1], src1 b [m0, m1], src6 dy [n0, n1] -> dst0 da [n0, n1]
 * (+)= dy (add) or dy * b broadcast (mul); dst1 db [m0, m1] (+)= sum over the repetitions of b of
 * dy (add) or dy * a (mul), one work-group per element of db. Errors as ADD. */
static lc_status binary_back(ocl_ctx *c, const lc_node *node, bool is_mul) {
    const lc_tensor *a = node->src[0], *b = node->src[1], *dy = node->src[6];
    const lc_tensor *da = node->dst[0], *db = node->dst[1];
    lc_status st;
    bcast g;
    if ((st = ocl_need(node, a, "src0 a", LC_F32)) || (st = ocl_need(node, b, "src1 b", LC_F32)) ||
        (st = ocl_need_like(node, dy, "src6 dy", a)) || (da && (st = ocl_need_like(node, da, "dst0 da", a))) ||
        (db && (st = ocl_need_like(node, db, "dst1 db", b))) || (st = bcast_check(node, a, b, &g)))
        return st;
    if (da) {
        ocl_args ar;
        oa_begin(&ar, c, OCL_K_binary_back_a);
        oa_mem(&ar, ocl_mem(da));
        oa_u64(&ar, da->offset);
        oa_mem(&ar, ocl_mem(dy));
        oa_u64(&ar, dy->offset);
        oa_mem(&ar, ocl_mem(b));
        oa_u64(&ar, b->offset);
        oa_u32(&ar, (uint32_t)g.n0);
        oa_u32(&ar, (uint32_t)(g.n0 * g.n1));
        oa_u32(&ar, (uint32_t)g.m0);
        oa_u32(&ar, (uint32_t)g.m1);
        oa_i32(&ar, is_mul);
        oa_i32(&ar, (node->accum & 1u) != 0);
        if ((st = ocl_launch_1d(&ar, (size_t)(g.n0 * g.n1))) != LC_OK) return st;
    }
    if (db) {
        const int64_t reps = (g.n0 / g.m0) * (g.n1 / g.m1);
        const size_t wg = ocl_red_wg(c, OCL_K_binary_back_b, (size_t)reps);
        ocl_args ar;
        oa_begin(&ar, c, OCL_K_binary_back_b);
        oa_mem(&ar, ocl_mem(db));
        oa_u64(&ar, db->offset);
        oa_mem(&ar, ocl_mem(dy));
        oa_u64(&ar, dy->offset);
        oa_mem(&ar, ocl_mem(a));
        oa_u64(&ar, a->offset);
        oa_u32(&ar, (uint32_t)g.n0);
        oa_u32(&ar, (uint32_t)g.n1);
        oa_u32(&ar, (uint32_t)g.m0);
        oa_u32(&ar, (uint32_t)g.m1);
        oa_i32(&ar, is_mul);
        oa_i32(&ar, (node->accum & 2u) != 0);
        oa_local(&ar, wg * sizeof(float));
        if ((st = ocl_launch_groups(&ar, (size_t)(g.m0 * g.m1), wg)) != LC_OK) return st;
    }
    return LC_OK;
}

lc_status ocl_op_add_back(ocl_ctx *c, const lc_node *node) { return binary_back(c, node, false); }
lc_status ocl_op_mul_back(ocl_ctx *c, const lc_node *node) { return binary_back(c, node, true); }

/* ---- unary -------------------------------------------------------------------------------- */

/* SCALE (op 0: y = x * fp[0]), GELU_TANH (1), SILU (2): src0 x F32 -> dst0 y, same ne. */
static lc_status unary_fwd(ocl_ctx *c, const lc_node *node, int op) {
    const lc_tensor *x = node->src[0], *y = node->dst[0];
    lc_status st;
    if ((st = ocl_need(node, x, "src0 x", LC_F32)) || (st = ocl_need_like(node, y, "dst0 y", x)) || (st = too_big(node, x)))
        return st;
    ocl_args ar;
    oa_begin(&ar, c, OCL_K_unary_f32);
    oa_mem(&ar, ocl_mem(y));
    oa_u64(&ar, y->offset);
    oa_mem(&ar, ocl_mem(x));
    oa_u64(&ar, x->offset);
    oa_u32(&ar, (uint32_t)ocl_nel(x));
    oa_i32(&ar, op);
    oa_f32(&ar, node->fp[0]);
    return ocl_launch_1d(&ar, (size_t)ocl_nel(x));
}

/* <unary>_BACK: src0 x, src6 dy -> dst0 dx (+)= dy * f'(x) (scale: dy * fp[0]). */
static lc_status unary_back(ocl_ctx *c, const lc_node *node, int op) {
    const lc_tensor *x = node->src[0], *dy = node->src[6], *dx = node->dst[0];
    lc_status st;
    if ((st = ocl_need(node, x, "src0 x", LC_F32)) || (st = ocl_need_like(node, dy, "src6 dy", x))) return st;
    if (!dx) return LC_OK;
    if ((st = ocl_need_like(node, dx, "dst0 dx", x)) || (st = too_big(node, x))) return st;
    ocl_args ar;
    oa_begin(&ar, c, OCL_K_unary_back_f32);
    oa_mem(&ar, ocl_mem(dx));
    oa_u64(&ar, dx->offset);
    oa_mem(&ar, ocl_mem(x));
    oa_u64(&ar, x->offset);
    oa_mem(&ar, ocl_mem(dy));
    oa_u64(&ar, dy->offset);
    oa_u32(&ar, (uint32_t)ocl_nel(x));
    oa_i32(&ar, op);
    oa_f32(&ar, node->fp[0]);
    oa_i32(&ar, (node->accum & 1u) != 0);
    return ocl_launch_1d(&ar, (size_t)ocl_nel(x));
}

lc_status ocl_op_scale(ocl_ctx *c, const lc_node *node) { return unary_fwd(c, node, 0); }
lc_status ocl_op_scale_back(ocl_ctx *c, const lc_node *node) { return unary_back(c, node, 0); }
lc_status ocl_op_gelu_tanh(ocl_ctx *c, const lc_node *node) { return unary_fwd(c, node, 1); }
lc_status ocl_op_gelu_tanh_back(ocl_ctx *c, const lc_node *node) { return unary_back(c, node, 1); }
lc_status ocl_op_silu(ocl_ctx *c, const lc_node *node) { return unary_fwd(c, node, 2); }
lc_status ocl_op_silu_back(ocl_ctx *c, const lc_node *node) { return unary_back(c, node, 2); }

/* ---- gated -------------------------------------------------------------------------------- */

/* GEGLU (op 1) / SWIGLU (op 2): src0 gate, src1 up F32 (same ne) -> dst0 y = act(gate) * up. */
static lc_status glu_fwd(ocl_ctx *c, const lc_node *node, int op) {
    const lc_tensor *g = node->src[0], *u = node->src[1], *y = node->dst[0];
    lc_status st;
    if ((st = ocl_need(node, g, "src0 gate", LC_F32)) || (st = ocl_need_like(node, u, "src1 up", g)) ||
        (st = ocl_need_like(node, y, "dst0 y", g)) || (st = too_big(node, g)))
        return st;
    ocl_args ar;
    oa_begin(&ar, c, OCL_K_glu_f32);
    oa_mem(&ar, ocl_mem(y));
    oa_u64(&ar, y->offset);
    oa_mem(&ar, ocl_mem(g));
    oa_u64(&ar, g->offset);
    oa_mem(&ar, ocl_mem(u));
    oa_u64(&ar, u->offset);
    oa_u32(&ar, (uint32_t)ocl_nel(g));
    oa_i32(&ar, op);
    return ocl_launch_1d(&ar, (size_t)ocl_nel(g));
}

/* GEGLU_BACK / SWIGLU_BACK: src0 gate, src1 up, src6 dy -> dst0 dgate (+)= dy * up * act'(gate),
 * dst1 dup (+)= dy * act(gate); either may be NULL. */
static lc_status glu_back(ocl_ctx *c, const lc_node *node, int op) {
    const lc_tensor *g = node->src[0], *u = node->src[1], *dy = node->src[6];
    const lc_tensor *dg = node->dst[0], *du = node->dst[1];
    lc_status st;
    if ((st = ocl_need(node, g, "src0 gate", LC_F32)) || (st = ocl_need_like(node, u, "src1 up", g)) ||
        (st = ocl_need_like(node, dy, "src6 dy", g)) || (dg && (st = ocl_need_like(node, dg, "dst0 dgate", g))) ||
        (du && (st = ocl_need_like(node, du, "dst1 dup", g))) || (st = too_big(node, g)))
        return st;
    if (!dg && !du) return LC_OK;
    ocl_args ar;
    oa_begin(&ar, c, OCL_K_glu_back_f32);
    oa_mem(&ar, dg ? ocl_mem(dg) : NULL);
    oa_u64(&ar, dg ? dg->offset : 0);
    oa_mem(&ar, du ? ocl_mem(du) : NULL);
    oa_u64(&ar, du ? du->offset : 0);
    oa_mem(&ar, ocl_mem(g));
    oa_u64(&ar, g->offset);
    oa_mem(&ar, ocl_mem(u));
    oa_u64(&ar, u->offset);
    oa_mem(&ar, ocl_mem(dy));
    oa_u64(&ar, dy->offset);
    oa_u32(&ar, (uint32_t)ocl_nel(g));
    oa_i32(&ar, op);
    oa_i32(&ar, dg != NULL);
    oa_i32(&ar, du != NULL);
    oa_i32(&ar, (int32_t)(node->accum & 3u));
    return ocl_launch_1d(&ar, (size_t)ocl_nel(g));
}

lc_status ocl_op_geglu(ocl_ctx *c, const lc_node *node) { return glu_fwd(c, node, 1); }
lc_status ocl_op_geglu_back(ocl_ctx *c, const lc_node *node) { return glu_back(c, node, 1); }
lc_status ocl_op_swiglu(ocl_ctx *c, const lc_node *node) { return glu_fwd(c, node, 2); }
lc_status ocl_op_swiglu_back(ocl_ctx *c, const lc_node *node) { return glu_back(c, node, 2); }
