/* lorac Vulkan backend — scaled dot-product attention, forward and backward (causal, sliding
 * window, grouped-query). Semantics: lorac/graph.h ATTENTION; the arrangement and the parameter
 * checks follow backends/cpu/ops_attention.c.
 *
 * Work is cut into blocks of (sequence, head, up to bq query rows); a block only touches the keys
 * [ja, jb] some of its rows can see, so causal attention costs about half of the full product.
 * Per block, in one command buffer:
 *   forward:  sc = scale Q_blk·K[ja..jb]ᵀ (product kernel), attention_softmax.comp (P and lse),
 *             O_blk = P·V[ja..jb];
 *   backward (FlashAttention-2, Dao 2023, Algorithm 2, P recomputed from lse): sc = scale Q·Kᵀ,
 *             ds = dO·Vᵀ, attention_softmax_back.comp (P, D = rowsum(dO∘O), dS = P∘(ds - D)),
 *             dV += Pᵀ·dO, dQ += scale dS·K, dK += scale dSᵀ·Q.
 * The blocks are recorded one after another, so the query heads of a GQA group accumulate into
 * their shared dK / dV in a fixed order (reproducible, no atomics). The products go through
 * vk_gemm.c (the fast register-blocked / tiled kernels); scores live in scratch
 * (bq * Tk floats, bq chosen so a block stays under ATT_SCORES floats).
 */
#include <math.h>
#include <string.h>

#include "vk_internal.h"

#define ATT_SCORES ((int64_t)4 << 20)

static uint32_t u32(int64_t v) { return (uint32_t)v; }

typedef struct att_geom {
    int64_t n_head, n_kv, S, hd, Tq, Tk, window, bq;
    bool causal;
    float scale;
} att_geom;

static lc_status check_2d(const lc_tensor *t, const char *op, const char *field, int64_t ne0, int64_t ne1) {
    lc_status st = vk_need(t, LC_F32, op, field);
    if (st != LC_OK) return st;
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: %s '%s' is [%lld, %lld, %lld, %lld], expected [%lld, %lld]", op, field,
                        t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                        (long long)ne0, (long long)ne1);
    return LC_OK;
}

static lc_status geom_init(const lc_node *node, const char *op, att_geom *g) {
    const lc_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2];
    lc_status st;
    if ((st = vk_need(q, LC_F32, op, "src0 q")) || (st = vk_need(k, LC_F32, op, "src1 k"))) return st;
    const int64_t n_head = node->ip[0], n_kv = node->ip[1], S = node->ip[2];
    if (n_head < 1 || n_kv < 1 || n_head % n_kv != 0)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: n_head ip[0]=%lld must be a positive multiple of n_kv ip[1]=%lld", op,
                        (long long)n_head, (long long)n_kv);
    if (S < 1) return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: n_seq ip[2]=%lld must be >= 1", op, (long long)S);
    if (node->ip[3] != 0 && node->ip[3] != 1)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: causal ip[3]=%d must be 0 or 1", op, node->ip[3]);
    if (node->ip[4] < 0) return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: window ip[4]=%d must be >= 0", op, node->ip[4]);
    if (!isfinite(node->fp[0])) return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: scale fp[0] is not finite", op);
    if (q->ne[0] % n_head != 0)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: q.ne[0]=%lld is not a multiple of n_head=%lld", op, (long long)q->ne[0],
                        (long long)n_head);
    const int64_t hd = q->ne[0] / n_head;
    if (k->ne[0] != hd * n_kv)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: k.ne[0]=%lld, expected head_dim %lld * n_kv %lld", op, (long long)k->ne[0],
                        (long long)hd, (long long)n_kv);
    if (vk_rows(q) % S != 0 || vk_rows(k) % S != 0)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: q.ne[1]=%lld and k.ne[1]=%lld must be multiples of n_seq=%lld", op,
                        (long long)vk_rows(q), (long long)vk_rows(k), (long long)S);
    if ((st = check_2d(q, op, "src0 q", q->ne[0], q->ne[1])) || (st = check_2d(k, op, "src1 k", k->ne[0], k->ne[1])) ||
        (st = check_2d(v, op, "src2 v", k->ne[0], k->ne[1])))
        return st;
    *g = (att_geom){.n_head = n_head, .n_kv = n_kv, .S = S, .hd = hd, .Tq = q->ne[1] / S, .Tk = k->ne[1] / S,
                    .window = node->ip[4], .causal = node->ip[3] != 0, .scale = node->fp[0]};
    int64_t bq = ATT_SCORES / g->Tk;
    if (bq < 1) bq = 1;
    if (bq > g->Tq) bq = g->Tq;
    g->bq = bq;
    return LC_OK;
}

/* Keys seen by any of the query rows [i0, i0+nb): [*ja, *jb]; false when none. */
static bool block_keys(const att_geom *g, int64_t i0, int64_t nb, int64_t *ja, int64_t *jb) {
    /* the visible window [lo(i), hi(i)] moves monotonically with i */
    int64_t pf = g->Tk - g->Tq + i0, pl = pf + nb - 1;
    int64_t hi = g->causal ? pl : g->Tk - 1;
    int64_t lo = g->window > 0 ? pf - g->window + 1 : 0;
    if (hi > g->Tk - 1) hi = g->Tk - 1;
    if (lo < 0) lo = 0;
    if (g->causal && hi < 0) return false;
    if (lo > hi) return false;
    *ja = lo;
    *jb = hi;
    return true;
}

/* A column block [rows][hd] of a token-major tensor (ld floats per token) as a product operand. */
static vk_operand block_op(const lc_tensor *t, int64_t row0, int64_t col0, bool trans) {
    vk_operand o;
    memset(&o, 0, sizeof o);
    o.buf = vk_tbuf(t);
    o.off = t->offset + ((VkDeviceSize)row0 * (VkDeviceSize)t->ne[0] + (VkDeviceSize)col0) * 4;
    o.dtype = LC_F32;
    o.trans = trans;
    o.ld = (uint32_t)t->ne[0];
    return o;
}

static vk_operand scratch_op(vk_buf *b, VkDeviceSize off, int64_t ld, bool trans) {
    vk_operand o;
    memset(&o, 0, sizeof o);
    o.buf = b;
    o.off = off;
    o.dtype = LC_F32;
    o.trans = trans;
    o.ld = (uint32_t)ld;
    return o;
}

typedef struct softmax_push {
    uint32_t sc_off, ds_off, lse_off, do_off, o_off;
    uint32_t nb, nk, ja, i0, Tq, Tk, causal, window;
    uint32_t lse_row0, n_head, ld_o, hd, need_ds;
} softmax_push;

static softmax_push softmax_pc(const att_geom *g, int64_t s, int64_t h, int64_t i0, int64_t nb, int64_t ja, int64_t nk) {
    softmax_push p;
    memset(&p, 0, sizeof p);
    p.nb = u32(nb);
    p.nk = u32(nk);
    p.ja = u32(ja);
    p.i0 = u32(i0);
    p.Tq = u32(g->Tq);
    p.Tk = u32(g->Tk);
    p.causal = g->causal ? 1u : 0u;
    p.window = u32(g->window);
    p.lse_row0 = u32((s * g->Tq + i0) * g->n_head + h);
    p.n_head = u32(g->n_head);
    p.ld_o = u32(g->hd * g->n_head);
    p.hd = u32(g->hd);
    return p;
}

/* Zero rows [row0, row0+nb) of head h's columns of an F32 token-major tensor (query rows that see
 * no key: o = 0) with the product kernel's k = 0 path. */
static lc_status zero_block(vk_ctx *c, const lc_tensor *t, int64_t row0, int64_t col0, int64_t nb, int64_t hd,
                            const char *op) {
    vk_operand dummy = block_op(t, row0, col0, false);
    return vk_gemm_record(c, (int)nb, (int)hd, 0, 1.0f, &dummy, &dummy, 0.0f, vk_tbuf(t),
                          t->offset + ((VkDeviceSize)row0 * t->ne[0] + col0) * 4, (uint32_t)t->ne[0], LC_F32, op);
}

/* ATTENTION: src0 q [hd*n_head, Tq*S], src1 k, src2 v [hd*n_kv, Tk*S] -> dst0 o like q, dst1 lse
 * [n_head, Tq*S] (may be NULL); ip[0..4] n_head, n_kv, S, causal, window; fp[0] scale.
 * Errors: LC_ERR_INVALID_ARG (parameters), LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_DEVICE_NOMEM. */
lc_status vk_op_attention(vk_ctx *c, const lc_node *node) {
    const char *op = "attention";
    att_geom g = {0};
    lc_status st = geom_init(node, op, &g);
    if (st != LC_OK) return st;
    const lc_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2], *o = node->dst[0], *lse = node->dst[1];
    if ((st = check_2d(o, op, "dst0 o", g.hd * g.n_head, g.Tq * g.S)) != LC_OK) return st;
    if (lse && (st = check_2d(lse, op, "dst1 lse", g.n_head, g.Tq * g.S)) != LC_OK) return st;
    vk_buf *sb, *lb = NULL;
    VkDeviceSize so, lo_off = 0, lbytes = (VkDeviceSize)g.n_head * g.Tq * g.S * 4;
    if ((st = vk_scratch(c, (VkDeviceSize)g.bq * g.Tk * 4, &sb, &so)) != LC_OK) return st;
    if (!lse && (st = vk_scratch(c, lbytes, &lb, &lo_off)) != LC_OK) return st;
    for (int64_t s = 0; s < g.S; s++)
        for (int64_t h = 0; h < g.n_head; h++) {
            const int64_t cc = h / (g.n_head / g.n_kv);
            for (int64_t i0 = 0; i0 < g.Tq; i0 += g.bq) {
                const int64_t nb = g.Tq - i0 < g.bq ? g.Tq - i0 : g.bq;
                int64_t ja, jb;
                const bool any = block_keys(&g, i0, nb, &ja, &jb);
                const int64_t nk = any ? jb - ja + 1 : 1;
                if (!any) ja = 0;
                VkDeviceSize save = c->scratch_used;
                if (any) {
                    vk_operand qa = block_op(q, s * g.Tq + i0, h * g.hd, false);
                    vk_operand kb = block_op(k, s * g.Tk + ja, cc * g.hd, false);
                    if ((st = vk_gemm_record(c, (int)nb, (int)nk, (int)g.hd, g.scale, &qa, &kb, 0.0f, sb, so, u32(nk), LC_F32,
                                             op)) != LC_OK)
                        return st;
                }
                c->scratch_used = save;
                /* softmax (also writes lse = -inf and P = 0 for rows without keys) */
                vk_bind b[2];
                softmax_push p = softmax_pc(&g, s, h, i0, nb, ja, nk);
                if (!any) { /* an empty key range: every row gets lse = -inf */
                    p.causal = 1;
                    p.Tk = 0;
                    p.window = 0;
                }
                if ((st = vk_bind_range(c, sb, so, (VkDeviceSize)nb * nk * 4, true, op, &b[0], &p.sc_off, 4)) != LC_OK)
                    return st;
                if (lse) st = vk_bind_tensor(c, lse, true, op, "dst1 lse", &b[1], &p.lse_off, 4);
                else st = vk_bind_range(c, lb, lo_off, lbytes, true, op, &b[1], &p.lse_off, 4);
                if (st != LC_OK) return st;
                if (any || lse) {
                    uint32_t groups = nb < 65535 ? u32(nb) : 65535;
                    if ((st = vk_dispatch(c, VK_PIPE_ATTENTION_SOFTMAX, NULL, b, 2, &p, sizeof p, groups, 1, 1)) != LC_OK)
                        return st;
                }
                if (!any) {
                    if ((st = zero_block(c, o, s * g.Tq + i0, h * g.hd, nb, g.hd, op)) != LC_OK) return st;
                    continue;
                }
                vk_operand pa = scratch_op(sb, so, nk, false);
                vk_operand vb = block_op(v, s * g.Tk + ja, cc * g.hd, true);
                if ((st = vk_gemm_record(c, (int)nb, (int)g.hd, (int)nk, 1.0f, &pa, &vb, 0.0f, vk_tbuf(o),
                                         o->offset + ((VkDeviceSize)(s * g.Tq + i0) * o->ne[0] + h * g.hd) * 4,
                                         (uint32_t)o->ne[0], LC_F32, op)) != LC_OK)
                    return st;
                c->scratch_used = save;
            }
        }
    return LC_OK;
}

/* ATTENTION_BACK: src0..2 q, k, v, src4 o, src5 lse, src6 do -> dst0 dq, dst1 dk, dst2 dv (each
 * NULL when not needed; accum bit i adds). Errors as vk_op_attention, plus LC_ERR_INVALID_ARG
 * when lse (or o, needed for dq / dk) is missing. */
lc_status vk_op_attention_back(vk_ctx *c, const lc_node *node) {
    const char *op = "attention_back";
    att_geom g = {0};
    lc_status st = geom_init(node, op, &g);
    if (st != LC_OK) return st;
    const lc_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2];
    const lc_tensor *dq = node->dst[0], *dk = node->dst[1], *dv = node->dst[2];
    const lc_tensor *o = node->src[4], *lse = node->src[5], *dout = node->src[6];
    const int64_t nq = g.Tq * g.S, nkt = g.Tk * g.S;
    if ((st = check_2d(dout, op, "src6 do", g.hd * g.n_head, nq)) || (st = check_2d(lse, op, "src5 lse", g.n_head, nq)))
        return st;
    if (dq && (st = check_2d(dq, op, "dst0 dq", g.hd * g.n_head, nq)) != LC_OK) return st;
    if (dk && (st = check_2d(dk, op, "dst1 dk", g.hd * g.n_kv, nkt)) != LC_OK) return st;
    if (dv && (st = check_2d(dv, op, "dst2 dv", g.hd * g.n_kv, nkt)) != LC_OK) return st;
    const bool need_ds = dq || dk;
    if (need_ds && (st = check_2d(o, op, "src4 o", g.hd * g.n_head, nq)) != LC_OK) return st;
    if (!dq && !dk && !dv) return LC_OK;
    /* overwrite mode: clear first, then every product accumulates (beta = 1) */
    if (dq && !(node->accum & 1u) && (st = vk_clear(c, vk_tbuf(dq), dq->offset, (size_t)vk_tensor_span(dq))) != LC_OK)
        return st;
    if (dk && !(node->accum & 2u) && (st = vk_clear(c, vk_tbuf(dk), dk->offset, (size_t)vk_tensor_span(dk))) != LC_OK)
        return st;
    if (dv && !(node->accum & 4u) && (st = vk_clear(c, vk_tbuf(dv), dv->offset, (size_t)vk_tensor_span(dv))) != LC_OK)
        return st;
    vk_buf *pb, *db = NULL;
    VkDeviceSize po, dso = 0, blk = (VkDeviceSize)g.bq * g.Tk * 4;
    if ((st = vk_scratch(c, blk, &pb, &po)) != LC_OK) return st;
    if (need_ds && (st = vk_scratch(c, blk, &db, &dso)) != LC_OK) return st;
    if (db && db != pb) { /* the scratch grew between the two: take both from the new buffer */
        if ((st = vk_scratch(c, blk, &pb, &po)) != LC_OK) return st;
    }
    for (int64_t s = 0; s < g.S; s++)
        for (int64_t h = 0; h < g.n_head; h++) {
            const int64_t cc = h / (g.n_head / g.n_kv);
            for (int64_t i0 = 0; i0 < g.Tq; i0 += g.bq) {
                const int64_t nb = g.Tq - i0 < g.bq ? g.Tq - i0 : g.bq;
                int64_t ja, jb;
                if (!block_keys(&g, i0, nb, &ja, &jb)) continue; /* no key: all gradients 0 */
                const int64_t nk = jb - ja + 1;
                const int64_t qrow = s * g.Tq + i0, krow = s * g.Tk + ja;
                VkDeviceSize save = c->scratch_used;
                vk_operand qa = block_op(q, qrow, h * g.hd, false), kb = block_op(k, krow, cc * g.hd, false);
                if ((st = vk_gemm_record(c, (int)nb, (int)nk, (int)g.hd, g.scale, &qa, &kb, 0.0f, pb, po, u32(nk), LC_F32,
                                         op)) != LC_OK)
                    return st;
                c->scratch_used = save;
                if (need_ds) {
                    vk_operand da = block_op(dout, qrow, h * g.hd, false), vb = block_op(v, krow, cc * g.hd, false);
                    if ((st = vk_gemm_record(c, (int)nb, (int)nk, (int)g.hd, 1.0f, &da, &vb, 0.0f, db, dso, u32(nk),
                                             LC_F32, op)) != LC_OK)
                        return st;
                    c->scratch_used = save;
                }
                vk_bind b[5];
                softmax_push p = softmax_pc(&g, s, h, i0, nb, ja, nk);
                p.need_ds = need_ds ? 1u : 0u;
                VkDeviceSize bytes = (VkDeviceSize)nb * nk * 4;
                if ((st = vk_bind_range(c, pb, po, bytes, true, op, &b[0], &p.sc_off, 4)) ||
                    (st = vk_bind_range(c, need_ds ? db : pb, need_ds ? dso : po, bytes, true, op, &b[1], &p.ds_off, 4)) ||
                    (st = vk_bind_tensor(c, lse, false, op, "src5 lse", &b[2], &p.lse_off, 4)) ||
                    (st = vk_bind_tensor(c, dout, false, op, "src6 do", &b[3], &p.do_off, 4)) ||
                    (st = vk_bind_tensor(c, need_ds ? o : dout, false, op, "src4 o", &b[4], &p.o_off, 4)))
                    return st;
                p.do_off += u32(qrow * g.hd * g.n_head + h * g.hd);
                p.o_off += u32(qrow * g.hd * g.n_head + h * g.hd);
                uint32_t groups = nb < 65535 ? u32(nb) : 65535;
                if ((st = vk_dispatch(c, VK_PIPE_ATTENTION_SOFTMAX_BACK, NULL, b, 5, &p, sizeof p, groups, 1, 1)) != LC_OK)
                    return st;
                if (dv) { /* dV[ja..jb] += Pᵀ · dO_blk */
                    vk_operand pt = scratch_op(pb, po, nk, true), dot = block_op(dout, qrow, h * g.hd, true);
                    if ((st = vk_gemm_record(c, (int)nk, (int)g.hd, (int)nb, 1.0f, &pt, &dot, 1.0f, vk_tbuf(dv),
                                             dv->offset + ((VkDeviceSize)krow * dv->ne[0] + cc * g.hd) * 4,
                                             (uint32_t)dv->ne[0], LC_F32, op)) != LC_OK)
                        return st;
                    c->scratch_used = save;
                }
                if (dq) { /* dQ_blk += scale · dS · K[ja..jb] */
                    vk_operand dsa = scratch_op(db, dso, nk, false), kt = block_op(k, krow, cc * g.hd, true);
                    if ((st = vk_gemm_record(c, (int)nb, (int)g.hd, (int)nk, g.scale, &dsa, &kt, 1.0f, vk_tbuf(dq),
                                             dq->offset + ((VkDeviceSize)qrow * dq->ne[0] + h * g.hd) * 4,
                                             (uint32_t)dq->ne[0], LC_F32, op)) != LC_OK)
                        return st;
                    c->scratch_used = save;
                }
                if (dk) { /* dK[ja..jb] += scale · dSᵀ · Q_blk */
                    vk_operand dst_ = scratch_op(db, dso, nk, true), qt = block_op(q, qrow, h * g.hd, true);
                    if ((st = vk_gemm_record(c, (int)nk, (int)g.hd, (int)nb, g.scale, &dst_, &qt, 1.0f, vk_tbuf(dk),
                                             dk->offset + ((VkDeviceSize)krow * dk->ne[0] + cc * g.hd) * 4,
                                             (uint32_t)dk->ne[0], LC_F32, op)) != LC_OK)
                        return st;
                    c->scratch_used = save;
                }
            }
        }
    return LC_OK;
}
