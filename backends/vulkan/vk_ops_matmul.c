/* lorac Vulkan backend — products: mul_mat, lora (fused base + low-rank path), their backward
 * ops, and lora_merge. Semantics and slots: lorac/graph.h; LoRA math: reference/peft-lora.md
 * §1.2 (forward, dropout on the LoRA input only) and §1.7 (merge); the CPU kernels in
 * backends/cpu/ops_matmul.c are the reference.
 *
 * A lorac tensor with ne = {cols, rows} is the row-major matrix [rows][cols]. Every product is
 * written as C = alpha · A · Bᵀ + beta · C with A, B logical [rows][k] (vk_gemm.c), so a
 * transposed use of a stored matrix is just `trans = true` on its operand. Weights of any dtype
 * are dequantised by the kernels; the dropout mask of LORA is applied while packing drop(x)
 * (index t*in + i, seed, lc_rng_dropout_stream(rng_step, ip[0])) and, in LORA_BACK's dx, by
 * shaders/dropout.comp.
 */
#include <string.h>

#include "lorac/rng.h"
#include "vk_internal.h"

static uint32_t u32(int64_t v) { return (uint32_t)v; }

/* Operand for a stored tensor (rows = ne[1]*ne[2]*ne[3], cols = ne[0]). */
static vk_operand operand(const lc_tensor *t, bool trans) {
    vk_operand o;
    memset(&o, 0, sizeof o);
    o.buf = vk_tbuf(t);
    o.off = t->offset;
    o.dtype = (int)t->dtype;
    o.trans = trans;
    o.ld = t->dtype == LC_F32 ? (uint32_t)(t->nb[1] / 4) : (uint32_t)t->nb[1];
    return o;
}

static vk_operand scratch_operand(vk_buf *b, VkDeviceSize off, uint32_t ld, bool trans) {
    vk_operand o;
    memset(&o, 0, sizeof o);
    o.buf = b;
    o.off = off;
    o.dtype = LC_F32;
    o.trans = trans;
    o.ld = ld;
    return o;
}

static lc_status dims(const char *op, const lc_tensor *t, const char *what, int64_t cols, int64_t rows) {
    if (t->ne[0] != cols || vk_rows(t) != rows)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: %s '%s' is [%lld, %lld] (ne order), expected [%lld, %lld]", op, what,
                        t->name, (long long)t->ne[0], (long long)vk_rows(t), (long long)cols, (long long)rows);
    return LC_OK;
}

static lc_status gemm_t(vk_ctx *c, int64_t m, int64_t n, int64_t k, float alpha, const vk_operand *a, const vk_operand *b,
                        float beta, const lc_tensor *ct, const char *op) {
    uint32_t ldc = ct->dtype == LC_F32 ? (uint32_t)(ct->nb[1] / 4) : (uint32_t)(ct->nb[1] / 2);
    return vk_gemm_record(c, (int)m, (int)n, (int)k, alpha, a, b, beta, vk_tbuf(ct), ct->offset, ldc, (int)ct->dtype, op);
}

/* MUL_MAT: src0 x F32 [K, M], src1 w [K, N] (any weight dtype) -> dst0 y F32 [N, M],
 * y[n,m] = sum_k x[k,m] w[k,n]. Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_UNSUPPORTED (binding
 * limits), LC_ERR_DEVICE_NOMEM (scratch). */
lc_status vk_op_mul_mat(vk_ctx *c, const lc_node *node) {
    const char *op = "mul_mat";
    const lc_tensor *x = node->src[0], *w = node->src[1], *y = node->dst[0];
    lc_status st;
    if ((st = vk_need(x, LC_F32, op, "x (src0)")) || (st = vk_need(w, -1, op, "w (src1)")) ||
        (st = vk_need(y, LC_F32, op, "y (dst0)")))
        return st;
    const int64_t K = x->ne[0], M = vk_rows(x), N = vk_rows(w);
    if ((st = dims(op, w, "w (src1)", K, N)) || (st = dims(op, y, "y (dst0)", N, M))) return st;
    vk_operand a = operand(x, false), b = operand(w, false);
    return gemm_t(c, M, N, K, 1.0f, &a, &b, 0.0f, y, op);
}

/* MUL_MAT_BACK: src0 x [K, M], src1 w [K, N], src6 dy [N, M] -> dst0 dx [K, M] (+)= dy·w,
 * dst1 dw [K, N] (+)= dyᵀ·x; either may be NULL. Errors as vk_op_mul_mat. */
lc_status vk_op_mul_mat_back(vk_ctx *c, const lc_node *node) {
    const char *op = "mul_mat_back";
    const lc_tensor *x = node->src[0], *w = node->src[1], *dy = node->src[6];
    const lc_tensor *dx = node->dst[0], *dw = node->dst[1];
    lc_status st;
    if ((st = vk_need(x, LC_F32, op, "x (src0)")) || (st = vk_need(w, -1, op, "w (src1)")) ||
        (st = vk_need(dy, LC_F32, op, "dy (src6)")))
        return st;
    const int64_t K = x->ne[0], M = vk_rows(x), N = vk_rows(w);
    if ((st = dims(op, w, "w (src1)", K, N)) || (st = dims(op, dy, "dy (src6)", N, M))) return st;
    if (dx) {
        if ((st = vk_need(dx, LC_F32, op, "dx (dst0)")) || (st = dims(op, dx, "dx (dst0)", K, M))) return st;
        vk_operand a = operand(dy, false), b = operand(w, true);
        if ((st = gemm_t(c, M, K, N, 1.0f, &a, &b, (node->accum & 1u) ? 1.0f : 0.0f, dx, op)) != LC_OK) return st;
    }
    if (dw) {
        if ((st = vk_need(dw, LC_F32, op, "dw (dst1)")) || (st = dims(op, dw, "dw (dst1)", K, N))) return st;
        vk_operand a = operand(dy, true), b = operand(x, true);
        if ((st = gemm_t(c, N, K, M, 1.0f, &a, &b, (node->accum & 2u) ? 1.0f : 0.0f, dw, op)) != LC_OK) return st;
    }
    return LC_OK;
}

typedef struct lora_geom {
    int64_t in, T, out, r;
    float s, p;
    uint64_t seed, stream;
} lora_geom;

static lc_status lora_inputs(const lc_node *node, const char *op, lora_geom *g) {
    const lc_tensor *x = node->src[0], *w = node->src[1], *la = node->src[2], *lb = node->src[3];
    lc_status st;
    if ((st = vk_need(x, LC_F32, op, "x (src0)")) || (st = vk_need(w, -1, op, "w (src1)")) ||
        (st = vk_need(la, LC_F32, op, "lora_A (src2)")) || (st = vk_need(lb, LC_F32, op, "lora_B (src3)")))
        return st;
    g->in = x->ne[0];
    g->T = vk_rows(x);
    g->out = vk_rows(w);
    g->r = vk_rows(la);
    if ((st = dims(op, w, "w (src1)", g->in, g->out)) || (st = dims(op, la, "lora_A (src2)", g->in, g->r)) ||
        (st = dims(op, lb, "lora_B (src3)", g->r, g->out)))
        return st;
    g->s = node->fp[0];
    g->p = node->fp[1];
    if (!(g->p >= 0.0f && g->p < 1.0f))
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: dropout p = %g (fp[1]) must lie in [0, 1)", op, (double)g->p);
    if (node->ip[0] < 0 || node->ip[0] >= (1 << 24))
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: module id %d (ip[0]) must lie in [0, 2^24)", op, node->ip[0]);
    g->seed = node->seed;
    g->stream = lc_rng_dropout_stream(node->rng_step, (uint32_t)node->ip[0]);
    return LC_OK;
}

/* drop(x) as an operand: x [T][in] (trans: used as [in][T]) with the LoRA mask. */
static vk_operand dropped_x(const lc_tensor *x, const lora_geom *g, bool trans) {
    vk_operand o = operand(x, trans);
    if (g->p > 0.0f) {
        o.drop_p = g->p;
        o.drop_seed = g->seed;
        o.drop_stream = g->stream;
        o.drop_cols = u32(g->in);
    }
    return o;
}

/* LORA: src0 x F32 [in, T], src1 w [in, out] (any weight dtype), src2 lora_A F32 [in, r],
 * src3 lora_B F32 [r, out] -> dst0 y [out, T], dst1 u [r, T] (may be NULL): u = drop(x)·Aᵀ,
 * y = x·wᵀ + fp[0]·u·Bᵀ. Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_INVALID_ARG (p, module id),
 * LC_ERR_UNSUPPORTED, LC_ERR_DEVICE_NOMEM. */
lc_status vk_op_lora(vk_ctx *c, const lc_node *node) {
    const char *op = "lora";
    lora_geom g;
    lc_status st = lora_inputs(node, op, &g);
    if (st != LC_OK) return st;
    const lc_tensor *x = node->src[0], *y = node->dst[0], *u = node->dst[1];
    if ((st = vk_need(y, LC_F32, op, "y (dst0)")) || (st = dims(op, y, "y (dst0)", g.out, g.T))) return st;
    vk_operand uop;
    if (u) {
        if ((st = vk_need(u, LC_F32, op, "u (dst1)")) || (st = dims(op, u, "u (dst1)", g.r, g.T))) return st;
        vk_operand h = dropped_x(x, &g, false), la = operand(node->src[2], false);
        if ((st = gemm_t(c, g.T, g.r, g.in, 1.0f, &h, &la, 0.0f, u, op)) != LC_OK) return st;
        uop = operand(u, false);
    } else {
        vk_buf *sb;
        VkDeviceSize so;
        if ((st = vk_scratch(c, (VkDeviceSize)g.T * g.r * 4, &sb, &so)) != LC_OK) return st;
        vk_operand h = dropped_x(x, &g, false), la = operand(node->src[2], false);
        if ((st = vk_gemm_record(c, (int)g.T, (int)g.r, (int)g.in, 1.0f, &h, &la, 0.0f, sb, so, u32(g.r), LC_F32, op)) !=
            LC_OK)
            return st;
        uop = scratch_operand(sb, so, u32(g.r), false);
    }
    vk_operand xa = operand(x, false), w = operand(node->src[1], false), lb = operand(node->src[3], false);
    if ((st = gemm_t(c, g.T, g.out, g.in, 1.0f, &xa, &w, 0.0f, y, op)) != LC_OK) return st;
    return gemm_t(c, g.T, g.out, g.r, g.s, &uop, &lb, 1.0f, y, op);
}

/* LORA_BACK: src0..3 as LORA, src5 u [r, T] (recomputed when NULL), src6 dy [out, T] ->
 * dst0 dx [in, T], dst1 dw [in, out], dst2 dA [in, r], dst3 dB [r, out] (each NULL when not
 * needed; accum bit i adds): dB = s·dyᵀ·u, du = s·dy·B, dA = duᵀ·drop(x), dw = dyᵀ·x,
 * dx = dy·w + keep/(1-p) ⊙ (du·A). Errors as vk_op_lora. */
lc_status vk_op_lora_back(vk_ctx *c, const lc_node *node) {
    const char *op = "lora_back";
    lora_geom g;
    lc_status st = lora_inputs(node, op, &g);
    if (st != LC_OK) return st;
    const lc_tensor *x = node->src[0], *w = node->src[1], *la = node->src[2], *lb = node->src[3];
    const lc_tensor *u = node->src[5], *dy = node->src[6];
    const lc_tensor *dx = node->dst[0], *dw = node->dst[1], *da = node->dst[2], *db = node->dst[3];
    if ((st = vk_need(dy, LC_F32, op, "dy (src6)")) || (st = dims(op, dy, "dy (src6)", g.out, g.T))) return st;
    if (dx && ((st = vk_need(dx, LC_F32, op, "dx (dst0)")) || (st = dims(op, dx, "dx (dst0)", g.in, g.T)))) return st;
    if (dw && ((st = vk_need(dw, LC_F32, op, "dw (dst1)")) || (st = dims(op, dw, "dw (dst1)", g.in, g.out)))) return st;
    if (da && ((st = vk_need(da, LC_F32, op, "lora_A grad (dst2)")) || (st = dims(op, da, "lora_A grad (dst2)", g.in, g.r))))
        return st;
    if (db && ((st = vk_need(db, LC_F32, op, "lora_B grad (dst3)")) || (st = dims(op, db, "lora_B grad (dst3)", g.r, g.out))))
        return st;
    if (u && ((st = vk_need(u, LC_F32, op, "u (src5)")) || (st = dims(op, u, "u (src5)", g.r, g.T)))) return st;
    const bool dropout = g.p > 0.0f;

    if (db) {
        vk_operand uop;
        if (u) {
            uop = operand(u, true);
        } else {
            vk_buf *sb;
            VkDeviceSize so;
            if ((st = vk_scratch(c, (VkDeviceSize)g.T * g.r * 4, &sb, &so)) != LC_OK) return st;
            vk_operand h = dropped_x(x, &g, false), lap = operand(la, false);
            if ((st = vk_gemm_record(c, (int)g.T, (int)g.r, (int)g.in, 1.0f, &h, &lap, 0.0f, sb, so, u32(g.r), LC_F32,
                                     op)) != LC_OK)
                return st;
            uop = scratch_operand(sb, so, u32(g.r), true);
        }
        vk_operand dyt = operand(dy, true);
        if ((st = gemm_t(c, g.out, g.r, g.T, g.s, &dyt, &uop, (node->accum & 8u) ? 1.0f : 0.0f, db, op)) != LC_OK)
            return st;
    }
    vk_buf *dub = NULL;
    VkDeviceSize duo = 0;
    if (dx || da) { /* du [T][r] = s · dy · B */
        if ((st = vk_scratch(c, (VkDeviceSize)g.T * g.r * 4, &dub, &duo)) != LC_OK) return st;
        vk_operand dya = operand(dy, false), lbt = operand(lb, true);
        if ((st = vk_gemm_record(c, (int)g.T, (int)g.r, (int)g.out, g.s, &dya, &lbt, 0.0f, dub, duo, u32(g.r), LC_F32, op)) !=
            LC_OK)
            return st;
    }
    if (da) { /* dA [r][in] = duᵀ · drop(x) */
        vk_operand dut = scratch_operand(dub, duo, u32(g.r), true), h = dropped_x(x, &g, true);
        if ((st = gemm_t(c, g.r, g.in, g.T, 1.0f, &dut, &h, (node->accum & 4u) ? 1.0f : 0.0f, da, op)) != LC_OK) return st;
    }
    if (dw) {
        vk_operand dyt = operand(dy, true), xt = operand(x, true);
        if ((st = gemm_t(c, g.out, g.in, g.T, 1.0f, &dyt, &xt, (node->accum & 2u) ? 1.0f : 0.0f, dw, op)) != LC_OK)
            return st;
    }
    if (dx) {
        vk_operand dya = operand(dy, false), wt = operand(w, true);
        if ((st = gemm_t(c, g.T, g.in, g.out, 1.0f, &dya, &wt, (node->accum & 1u) ? 1.0f : 0.0f, dx, op)) != LC_OK)
            return st;
        vk_operand du = scratch_operand(dub, duo, u32(g.r), false), lat = operand(la, true);
        if (!dropout) return gemm_t(c, g.T, g.in, g.r, 1.0f, &du, &lat, 1.0f, dx, op);
        /* g = du · A into scratch, then dx += keep ⊙ g / (1 - p) */
        vk_buf *gb;
        VkDeviceSize go;
        if ((st = vk_scratch(c, (VkDeviceSize)g.T * g.in * 4, &gb, &go)) != LC_OK) return st;
        if ((st = vk_gemm_record(c, (int)g.T, (int)g.in, (int)g.r, 1.0f, &du, &lat, 0.0f, gb, go, u32(g.in), LC_F32, op)) !=
            LC_OK)
            return st;
        vk_bind bd[2];
        struct { uint32_t g_off, dx_off, in_, T; float p, q; uint32_t seed_lo, seed_hi, stream_lo, stream_hi; } pc = {
            .in_ = u32(g.in), .T = u32(g.T), .p = g.p, .q = 1.0f - g.p, .seed_lo = (uint32_t)g.seed,
            .seed_hi = (uint32_t)(g.seed >> 32), .stream_lo = (uint32_t)g.stream, .stream_hi = (uint32_t)(g.stream >> 32)};
        if ((st = vk_bind_range(c, gb, go, (VkDeviceSize)g.T * g.in * 4, false, op, &bd[0], &pc.g_off, 4)) ||
            (st = vk_bind_tensor(c, dx, true, op, "dx (dst0)", &bd[1], &pc.dx_off, 4)))
            return st;
        uint32_t gx = (uint32_t)((g.in + 63) / 64), gy = (uint32_t)((g.T + 3) / 4), cap = c->is_cpu ? 64 : 65535;
        return vk_dispatch(c, VK_PIPE_DROPOUT, NULL, bd, 2, &pc, sizeof pc, gx < cap ? gx : cap, gy < cap ? gy : cap, 1);
    }
    return LC_OK;
}

/* LORA_MERGE (in place): src0 = dst0 w [in, out] F32/F16/BF16, src1 lora_A [in, r], src2 lora_B
 * [r, out]: w[i,o] += fp[0] · sum_j B[j,o] A[i,j], in F32 and rounded once into w's dtype.
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE (quantized w). */
lc_status vk_op_lora_merge(vk_ctx *c, const lc_node *node) {
    const char *op = "lora_merge";
    const lc_tensor *w = node->dst[0] ? node->dst[0] : node->src[0], *la = node->src[1], *lb = node->src[2];
    lc_status st;
    if ((st = vk_need(w, -1, op, "w (dst0)")) || (st = vk_need(la, LC_F32, op, "lora_A (src1)")) ||
        (st = vk_need(lb, LC_F32, op, "lora_B (src2)")))
        return st;
    if (w->dtype != LC_F32 && w->dtype != LC_F16 && w->dtype != LC_BF16)
        return lc_error(LC_ERR_DTYPE, "vulkan lora_merge: w '%s' is %s; only f32, f16 and bf16 weights can be merged into",
                        w->name, lc_dtype_name(w->dtype));
    const int64_t in = w->ne[0], out = vk_rows(w), r = lb->ne[0];
    if ((st = dims(op, la, "lora_A (src1)", in, r)) || (st = dims(op, lb, "lora_B (src2)", r, out))) return st;
    vk_operand a = operand(lb, false), b = operand(la, true);
    return gemm_t(c, out, in, r, node->fp[0], &a, &b, 1.0f, w, op);
}
