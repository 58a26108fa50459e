/* lorac Vulkan backend — element-wise ops, forward and backward: add, mul (broadcast by
 * repetition), scale, gelu_tanh, silu, geglu, swiglu. Semantics: lorac/graph.h; formulas and
 * evaluation order: backends/cpu/ops_elementwise.c (shaders/activation.glsl mirrors them).
 *
 * Shaders: binary.comp (add / mul forward and the da part of their backward), bcast_reduce.comp
 * + sum_partials.comp (the gradient of a broadcast operand, in fixed chunks of BCAST_CHUNK
 * repeats summed in order, then the chunks in order, in levels of VK_REDUCE_GROUP: bitwise
 * reproducible, with a float error that grows slowly with the number of repeats and loops
 * bounded for llvmpipe), unary.comp, glu.comp.
 * Tensors must be contiguous F32. Backward nodes: src[0..3] forward inputs, src[6] dL/dy,
 * dst[i] gradient of src[i] or NULL, accum bit i adds into dst[i].
 */
#include "vk_internal.h"

#define BCAST_CHUNK 128

static uint32_t u32(int64_t v) { return (uint32_t)v; }

typedef struct bcast {
    int64_t n0, n1, m0, m1;
} bcast;

static lc_status bcast_check(const lc_tensor *a, const lc_tensor *b, const char *op, bcast *g) {
    g->n0 = a->ne[0];
    g->n1 = vk_rows(a);
    g->m0 = b->ne[0];
    g->m1 = vk_rows(b);
    if (g->n0 % g->m0 != 0 || g->n1 % g->m1 != 0)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: b [%lld, %lld] does not tile a [%lld, %lld] (need n0 %% m0 == 0 and "
                        "n1 %% m1 == 0)", op, (long long)g->m0, (long long)g->m1, (long long)g->n0, (long long)g->n1);
    return LC_OK;
}

typedef struct binary_push {
    uint32_t a_off, b_off, y_off, n0, n1, m0, m1;
} binary_push;

/* 2-D grid over (i, j): 64 x 4 invocations per group (binary.comp). */
static lc_status dispatch_binary(vk_ctx *c, const vk_bind *bd, const binary_push *pc, uint32_t mode, bool accum) {
    const uint32_t v4 = pc->n0 % 4 == 0 && pc->m0 == pc->n0 && (pc->a_off | pc->b_off | pc->y_off) % 4 == 0;
    vk_spec sp = {3, {mode, accum ? 1u : 0u, v4}};
    uint32_t gx = ((v4 ? pc->n0 / 4 : pc->n0) + 63) / 64, gy = (pc->n1 + 3) / 4;
    uint32_t cap = c->is_cpu ? 64 : 65535;
    if (gx > cap) gx = cap;
    if (gy > cap) gy = cap;
    return vk_dispatch(c, VK_PIPE_BINARY, &sp, bd, 3, pc, sizeof *pc, gx, gy, 1);
}

static lc_status binary_fwd(vk_ctx *c, const lc_node *node, bool is_mul) {
    const char *op = is_mul ? "mul" : "add";
    const lc_tensor *a = node->src[0], *b = node->src[1], *y = node->dst[0];
    lc_status st;
    bcast g;
    if ((st = vk_need(a, LC_F32, op, "src0 a")) || (st = vk_need(b, LC_F32, op, "src1 b")) ||
        (st = vk_need_like(y, a, op, "dst0 y")) || (st = bcast_check(a, b, op, &g)))
        return st;
    vk_bind bd[3];
    binary_push pc = {.n0 = u32(g.n0), .n1 = u32(g.n1), .m0 = u32(g.m0), .m1 = u32(g.m1)};
    if ((st = vk_bind_tensor(c, a, false, op, "src0 a", &bd[0], &pc.a_off, 4)) ||
        (st = vk_bind_tensor(c, b, false, op, "src1 b", &bd[1], &pc.b_off, 4)) ||
        (st = vk_bind_tensor(c, y, true, op, "dst0 y", &bd[2], &pc.y_off, 4)))
        return st;
    return dispatch_binary(c, bd, &pc, is_mul ? 1u : 0u, false);
}

lc_status vk_reduce_partials(vk_ctx *c, vk_buf *part, VkDeviceSize part_off, uint32_t m, uint32_t chunks,
                             const vk_bind *out, uint32_t out_off, bool accum, const char *op) {
    lc_status st;
    for (;;) {
        const uint32_t rows = (chunks + VK_REDUCE_GROUP - 1) / VK_REDUCE_GROUP;
        vk_bind b[2];
        struct { uint32_t part_off, m, chunks, group, out_off, accum; } pc = {.m = m, .chunks = chunks,
                                                                              .group = VK_REDUCE_GROUP};
        if ((st = vk_bind_range(c, part, part_off, (VkDeviceSize)chunks * m * 4, false, op, &b[0], &pc.part_off, 4)) !=
            LC_OK)
            return st;
        vk_buf *nb = NULL;
        VkDeviceSize no = 0;
        if (rows == 1) {
            b[1] = *out;
            pc.out_off = out_off;
            pc.accum = accum ? 1u : 0u;
        } else {
            if ((st = vk_scratch(c, (VkDeviceSize)rows * m * 4, &nb, &no)) ||
                (st = vk_bind_range(c, nb, no, (VkDeviceSize)rows * m * 4, true, op, &b[1], &pc.out_off, 4)))
                return st;
        }
        if ((st = vk_dispatch(c, VK_PIPE_SUM_PARTIALS, NULL, b, 2, &pc, sizeof pc, vk_groups(c, m, 256), rows, 1)) != LC_OK)
            return st;
        if (rows == 1) return LC_OK;
        part = nb;
        part_off = no;
        chunks = rows;
    }
    return LC_OK;
}

/* db [m0, m1] (+)= sum over the repeats of dy (* a). */
static lc_status bcast_grad(vk_ctx *c, const char *op, const lc_tensor *dy, const lc_tensor *a, const lc_tensor *db,
                            const bcast *g, bool accum) {
    const int64_t mb = g->m0 * g->m1, reps = (g->n0 / g->m0) * (g->n1 / g->m1);
    int64_t per = BCAST_CHUNK;
    int64_t chunks = (reps + per - 1) / per;
    while (chunks > 65535) { /* the grid's y dimension; per stays far below the loop limit */
        per *= 2;
        chunks = (reps + per - 1) / per;
    }
    lc_status st;
    vk_bind bd[3];
    struct { uint32_t dy_off, a_off, out_off, n0, n1, m0, m1, per_chunk, use_a, accum; } pc = {
        .n0 = u32(g->n0), .n1 = u32(g->n1), .m0 = u32(g->m0), .m1 = u32(g->m1), .per_chunk = u32(per),
        .use_a = a ? 1u : 0u};
    if ((st = vk_bind_tensor(c, dy, false, op, "src6 dy", &bd[0], &pc.dy_off, 4)) ||
        (st = vk_bind_tensor(c, a ? a : dy, false, op, "src0 a", &bd[1], &pc.a_off, 4)))
        return st;
    vk_bind ob;
    uint32_t o_off;
    if ((st = vk_bind_tensor(c, db, true, op, "dst1 db", &ob, &o_off, 4)) != LC_OK) return st;
    const uint32_t gx = (uint32_t)((mb + 255) / 256);
    if (chunks == 1) {
        bd[2] = ob;
        pc.out_off = o_off;
        pc.accum = accum ? 1u : 0u;
        return vk_dispatch(c, VK_PIPE_BCAST_REDUCE, NULL, bd, 3, &pc, sizeof pc, gx, 1, 1);
    }
    vk_buf *sb;
    VkDeviceSize so, bytes = (VkDeviceSize)chunks * mb * 4;
    if ((st = vk_scratch(c, bytes, &sb, &so)) || (st = vk_bind_range(c, sb, so, bytes, true, op, &bd[2], &pc.out_off, 4)))
        return st;
    if ((st = vk_dispatch(c, VK_PIPE_BCAST_REDUCE, NULL, bd, 3, &pc, sizeof pc, gx, u32(chunks), 1)) != LC_OK) return st;
    return vk_reduce_partials(c, sb, so, u32(mb), u32(chunks), &ob, o_off, accum, op);
}

static lc_status binary_back(vk_ctx *c, const lc_node *node, bool is_mul) {
    const char *op = is_mul ? "mul_back" : "add_back";
    const lc_tensor *a = node->src[0], *b = node->src[1], *dy = node->src[6];
    const lc_tensor *da = node->dst[0], *db = node->dst[1];
    lc_status st;
    bcast g;
    if ((st = vk_need(a, LC_F32, op, "src0 a")) || (st = vk_need(b, LC_F32, op, "src1 b")) ||
        (st = vk_need_like(dy, a, op, "src6 dy")) || (st = bcast_check(a, b, op, &g)))
        return st;
    if (da && (st = vk_need_like(da, a, op, "dst0 da")) != LC_OK) return st;
    if (db && (st = vk_need_like(db, b, op, "dst1 db")) != LC_OK) return st;
    /* db first: da may share memory with dy only when db is done reading it (da never aliases
     * dy in planned graphs; the order costs nothing) */
    if (db && (st = bcast_grad(c, op, dy, is_mul ? a : NULL, db, &g, (node->accum & 2u) != 0)) != LC_OK) return st;
    if (da) {
        vk_bind bd[3];
        binary_push pc = {.n0 = u32(g.n0), .n1 = u32(g.n1), .m0 = u32(g.m0), .m1 = u32(g.m1)};
        if ((st = vk_bind_tensor(c, dy, false, op, "src6 dy", &bd[0], &pc.a_off, 4)) ||
            (st = vk_bind_tensor(c, b, false, op, "src1 b", &bd[1], &pc.b_off, 4)) ||
            (st = vk_bind_tensor(c, da, true, op, "dst0 da", &bd[2], &pc.y_off, 4)))
            return st;
        st = dispatch_binary(c, bd, &pc, is_mul ? 3u : 2u, (node->accum & 1u) != 0);
    }
    return st;
}

/* ADD: src0 a [n0, n1], src1 b [m0, m1] tiling a -> dst0 a + b(broadcast). Errors: LC_ERR_SHAPE,
 * LC_ERR_DTYPE, LC_ERR_STATE. */
lc_status vk_op_add(vk_ctx *c, const lc_node *node) { return binary_fwd(c, node, false); }
/* MUL: as ADD with a * b. */
lc_status vk_op_mul(vk_ctx *c, const lc_node *node) { return binary_fwd(c, node, true); }
/* ADD_BACK: da (+)= dy; db (+)= dy summed over the repeats of b. Errors as vk_op_add. */
lc_status vk_op_add_back(vk_ctx *c, const lc_node *node) { return binary_back(c, node, false); }
/* MUL_BACK: da (+)= dy * b(broadcast); db (+)= dy * a summed over the repeats. Errors as vk_op_add. */
lc_status vk_op_mul_back(vk_ctx *c, const lc_node *node) { return binary_back(c, node, true); }

/* ---- unary ---------------------------------------------------------------------------------- */

static lc_status unary(vk_ctx *c, const lc_node *node, uint32_t mode, const char *op) {
    const bool back = mode >= 3;
    const lc_tensor *x = node->src[0], *dy = back ? node->src[6] : NULL, *y = node->dst[0];
    lc_status st;
    if ((st = vk_need(x, LC_F32, op, "src0 x")) != LC_OK) return st;
    if (back && (st = vk_need_like(dy, x, op, "src6 dy")) != LC_OK) return st;
    if (!y) {
        if (back) return LC_OK;
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: dst0 is missing", op);
    }
    if ((st = vk_need_like(y, x, op, back ? "dst0 dx" : "dst0 y")) != LC_OK) return st;
    vk_bind bd[3];
    struct { uint32_t x_off, dy_off, y_off, n; float s; } pc = {.n = u32(vk_nel(x)), .s = node->fp[0]};
    if ((st = vk_bind_tensor(c, x, false, op, "src0 x", &bd[0], &pc.x_off, 4)) ||
        (st = vk_bind_tensor(c, back ? dy : x, false, op, "src6 dy", &bd[1], &pc.dy_off, 4)) ||
        (st = vk_bind_tensor(c, y, true, op, "dst0", &bd[2], &pc.y_off, 4)))
        return st;
    const uint32_t v4 = (pc.n | pc.x_off | pc.dy_off | pc.y_off) % 4 == 0;
    vk_spec sp = {3, {mode, (back && (node->accum & 1u)) ? 1u : 0u, v4}};
    return vk_dispatch(c, VK_PIPE_UNARY, &sp, bd, 3, &pc, sizeof pc, vk_groups(c, v4 ? pc.n / 4 : pc.n, 256), 1, 1);
}

/* SCALE: y = x * fp[0]. Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_STATE. */
lc_status vk_op_scale(vk_ctx *c, const lc_node *node) { return unary(c, node, 0, "scale"); }
/* GELU_TANH: y = gelu_tanh(x). Errors as vk_op_scale. */
lc_status vk_op_gelu_tanh(vk_ctx *c, const lc_node *node) { return unary(c, node, 1, "gelu_tanh"); }
/* SILU: y = silu(x). Errors as vk_op_scale. */
lc_status vk_op_silu(vk_ctx *c, const lc_node *node) { return unary(c, node, 2, "silu"); }
/* SCALE_BACK: dx (+)= dy * fp[0]. */
lc_status vk_op_scale_back(vk_ctx *c, const lc_node *node) { return unary(c, node, 3, "scale_back"); }
/* GELU_TANH_BACK: dx (+)= dy * gelu_tanh'(x). */
lc_status vk_op_gelu_tanh_back(vk_ctx *c, const lc_node *node) { return unary(c, node, 4, "gelu_tanh_back"); }
/* SILU_BACK: dx (+)= dy * silu'(x). */
lc_status vk_op_silu_back(vk_ctx *c, const lc_node *node) { return unary(c, node, 5, "silu_back"); }

/* ---- gated ---------------------------------------------------------------------------------- */

static lc_status glu(vk_ctx *c, const lc_node *node, uint32_t mode, const char *op) {
    const bool back = mode >= 2;
    const lc_tensor *g = node->src[0], *u = node->src[1], *dy = back ? node->src[6] : NULL;
    const lc_tensor *o0 = node->dst[0], *o1 = back ? node->dst[1] : NULL;
    lc_status st;
    if ((st = vk_need(g, LC_F32, op, "src0 gate")) || (st = vk_need_like(u, g, op, "src1 up"))) return st;
    if (back && (st = vk_need_like(dy, g, op, "src6 dy")) != LC_OK) return st;
    if (!back && !o0) return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: dst0 is missing", op);
    if (o0 && (st = vk_need_like(o0, g, op, "dst0")) != LC_OK) return st;
    if (o1 && (st = vk_need_like(o1, g, op, "dst1 dup")) != LC_OK) return st;
    if (!o0 && !o1) return LC_OK;
    vk_bind bd[5];
    struct { uint32_t g_off, u_off, dy_off, o0_off, o1_off, n; } pc = {.n = u32(vk_nel(g))};
    if ((st = vk_bind_tensor(c, g, false, op, "src0 gate", &bd[0], &pc.g_off, 4)) ||
        (st = vk_bind_tensor(c, u, false, op, "src1 up", &bd[1], &pc.u_off, 4)) ||
        (st = vk_bind_tensor(c, dy ? dy : g, false, op, "src6 dy", &bd[2], &pc.dy_off, 4)) ||
        (st = vk_bind_tensor(c, o0 ? o0 : o1, true, op, "dst0", &bd[3], &pc.o0_off, 4)) ||
        (st = vk_bind_tensor(c, o1 ? o1 : o0, true, op, "dst1", &bd[4], &pc.o1_off, 4)))
        return st;
    const uint32_t v4 = (pc.n | pc.g_off | pc.u_off | pc.dy_off | pc.o0_off | pc.o1_off) % 4 == 0;
    vk_spec sp = {6, {mode, o0 ? 1u : 0u, o1 ? 1u : 0u, (node->accum & 1u) ? 1u : 0u, (node->accum & 2u) ? 1u : 0u, v4}};
    return vk_dispatch(c, VK_PIPE_GLU, &sp, bd, 5, &pc, sizeof pc, vk_groups(c, v4 ? pc.n / 4 : pc.n, 256), 1, 1);
}

/* GEGLU: y = gelu_tanh(gate) * up. Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_STATE. */
lc_status vk_op_geglu(vk_ctx *c, const lc_node *node) { return glu(c, node, 0, "geglu"); }
/* SWIGLU: y = silu(gate) * up. Errors as vk_op_geglu. */
lc_status vk_op_swiglu(vk_ctx *c, const lc_node *node) { return glu(c, node, 1, "swiglu"); }
/* GEGLU_BACK: dgate (+)= dy * up * gelu_tanh'(gate), dup (+)= dy * gelu_tanh(gate). */
lc_status vk_op_geglu_back(vk_ctx *c, const lc_node *node) { return glu(c, node, 2, "geglu_back"); }
/* SWIGLU_BACK: dgate (+)= dy * up * silu'(gate), dup (+)= dy * silu(gate). */
lc_status vk_op_swiglu_back(vk_ctx *c, const lc_node *node) { return glu(c, node, 3, "swiglu_back"); }
