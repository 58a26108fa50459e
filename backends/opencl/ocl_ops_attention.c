/* lorac OpenCL backend — scaled dot-product attention, forward and backward (causal, sliding
 * window, grouped-query). Semantics: lorac/graph.h ATTENTION; reference behaviour:
 * backends/cpu/ops_attention.c.
 *
 * The products run as batched launches of the GEMM kernel over every (sequence, head) of a
 * chunk, the row-wise parts as kernels of kernels/attention.cl:
 *   forward   S = scale Q·Kᵀ, P = softmax over visible keys (lse kept), O = P·V;
 *   backward  S again, dP = dO·Vᵀ, P = exp(S - lse), dS = P (dP - D) with D = dO·O,
 *             dV += Pᵀ·dO, dQ += scale dS·K, dK += scale dSᵀ·Q (FlashAttention-2, Dao 2023).
 * Query head h reads kv head h / group; dK and dV of a kv head collect the group's query heads in
 * `group` sequential launches (one per head offset g), so no two work-groups ever add into the
 * same element at once and results are identical run to run. Scores of a chunk (sequences x
 * heads x query rows x Tk) are bounded by OCL_ATTN_SCORES floats; longer inputs are cut into
 * query-row blocks. Masked keys are computed and zeroed, not skipped.
 */
#include <math.h>
#include <stdlib.h>

#include "ocl_internal.h"

#define OCL_ATTN_SCORES ((int64_t)1 << 24) /* floats per score buffer (64 MiB) */

/* Floats per score buffer: OCL_ATTN_SCORES, or $LORAC_OPENCL_ATTN_SCORES (tests use a small value
 * to exercise the chunking over sequences and query blocks). */
static int64_t score_limit(void) {
    const char *s = getenv("LORAC_OPENCL_ATTN_SCORES");
    long long v = s ? atoll(s) : 0;
    return v > 0 ? (int64_t)v : OCL_ATTN_SCORES;
}

typedef struct attn_geom {
    int64_t n_head, n_kv, S, hd, Tq, Tk, ldq, ldk, group, window;
    int causal;
    float scale;
    int64_t nb, ns; /* query rows per block, sequences per chunk */
} attn_geom;

static lc_status need_2d(const lc_node *node, const lc_tensor *t, const char *field, int64_t ne0, int64_t ne1) {
    lc_status st = ocl_need(node, t, field, LC_F32);
    if (st != LC_OK) return st;
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return lc_error(LC_ERR_SHAPE, "opencl %s: %s '%s' is [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                        lc_op_name(node->op), field, t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)t->ne[3], (long long)ne0, (long long)ne1);
    return LC_OK;
}

static lc_status geom_init(const lc_node *node, attn_geom *g) {
    const char *op = lc_op_name(node->op);
    const lc_tensor *q = node->src[0], *k = node->src[1];
    lc_status st;
    if ((st = ocl_need(node, q, "src0 q", LC_F32)) || (st = ocl_need(node, k, "src1 k", LC_F32))) return st;
    const int64_t n_head = node->ip[0], n_kv = node->ip[1], S = node->ip[2];
    if (n_head < 1 || n_kv < 1 || n_head % n_kv != 0)
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: n_head ip[0]=%lld must be a positive multiple of n_kv ip[1]=%lld", op,
                        (long long)n_head, (long long)n_kv);
    if (S < 1) return lc_error(LC_ERR_INVALID_ARG, "opencl %s: n_seq ip[2]=%lld must be >= 1", op, (long long)S);
    if (node->ip[3] != 0 && node->ip[3] != 1)
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: causal ip[3]=%d must be 0 or 1", op, node->ip[3]);
    if (node->ip[4] < 0) return lc_error(LC_ERR_INVALID_ARG, "opencl %s: window ip[4]=%d must be >= 0", op, node->ip[4]);
    if (!isfinite(node->fp[0])) return lc_error(LC_ERR_INVALID_ARG, "opencl %s: scale fp[0] is not finite", op);
    if (q->ne[0] % n_head != 0)
        return lc_error(LC_ERR_SHAPE, "opencl %s: q.ne[0]=%lld is not a multiple of n_head=%lld", op, (long long)q->ne[0],
                        (long long)n_head);
    const int64_t hd = q->ne[0] / n_head;
    if (k->ne[0] != hd * n_kv)
        return lc_error(LC_ERR_SHAPE, "opencl %s: k.ne[0]=%lld, expected head_dim %lld * n_kv %lld", op, (long long)k->ne[0],
                        (long long)hd, (long long)n_kv);
    if (q->ne[1] % S != 0 || k->ne[1] % S != 0 || q->ne[2] != 1 || q->ne[3] != 1)
        return lc_error(LC_ERR_SHAPE, "opencl %s: q.ne[1]=%lld and k.ne[1]=%lld must be multiples of n_seq=%lld", op,
                        (long long)q->ne[1], (long long)k->ne[1], (long long)S);
    if ((st = need_2d(node, k, "src1 k", k->ne[0], k->ne[1])) || (st = need_2d(node, node->src[2], "src2 v", k->ne[0], k->ne[1])))
        return st;
    g->n_head = n_head;
    g->n_kv = n_kv;
    g->S = S;
    g->hd = hd;
    g->Tq = q->ne[1] / S;
    g->Tk = k->ne[1] / S;
    g->ldq = hd * n_head;
    g->ldk = hd * n_kv;
    g->group = n_head / n_kv;
    g->window = node->ip[4];
    g->causal = node->ip[3];
    g->scale = node->fp[0];
    if (g->ldq > INT32_MAX || g->Tq * S > INT32_MAX || g->Tk * S > INT32_MAX || S * n_head > INT32_MAX)
        return lc_error(LC_ERR_SHAPE, "opencl %s: dimensions exceed the 32-bit range", op);
    const int64_t limit = score_limit();
    int64_t nb = limit / (g->Tk * n_head);
    if (nb < 1) nb = 1;
    if (nb > g->Tq) nb = g->Tq;
    int64_t ns = 1;
    if (nb == g->Tq) {
        ns = limit / (g->Tq * g->Tk * n_head);
        if (ns < 1) ns = 1;
        if (ns > S) ns = S;
    }
    g->nb = nb;
    g->ns = ns;
    return LC_OK;
}

/* Batched product helpers for one chunk: sequences [s0, s0+nse), query rows [i0, i0+nbe).
 * Operands: query-like tensors (q, o, do, dq: rows ldq floats), key-like tensors (k, v, dk,
 * dv: rows ldk floats), the score buffers (packed [nse][n_head][nbe][Tk]). */
typedef struct chunk {
    int64_t s0, nse, i0, nbe;
} chunk;

/* Query-like tensor as the A or C operand of a per-(s, h) product (rows = the chunk's queries). */
static ocl_fop qop(const attn_geom *g, const chunk *ch, const lc_tensor *t) {
    ocl_fop o = {ocl_mem(t), t->offset + (size_t)(((ch->s0 * g->Tq + ch->i0) * g->ldq) * 4), (size_t)g->ldq, false};
    return o;
}
/* Query-like tensor as a B operand (rows = the chunk's queries). */
static ocl_wop qwop(const attn_geom *g, const chunk *ch, const lc_tensor *t, bool trans) {
    ocl_wop o = {ocl_mem(t), t->offset + (size_t)(((ch->s0 * g->Tq + ch->i0) * g->ldq) * 4), (size_t)g->ldq * 4, LC_F32, trans};
    return o;
}
/* Key-like tensor as a B operand (rows = all Tk keys of each sequence). */
static ocl_wop kwop(const attn_geom *g, const chunk *ch, const lc_tensor *t, bool trans) {
    ocl_wop o = {ocl_mem(t), t->offset + (size_t)((ch->s0 * g->Tk * g->ldk) * 4), (size_t)g->ldk * 4, LC_F32, trans};
    return o;
}
/* Key-like tensor as the C operand. */
static ocl_fop kop(const attn_geom *g, const chunk *ch, const lc_tensor *t) {
    ocl_fop o = {ocl_mem(t), t->offset + (size_t)((ch->s0 * g->Tk * g->ldk) * 4), (size_t)g->ldk, false};
    return o;
}
static ocl_fop sop(cl_mem m, const attn_geom *g, bool trans) {
    ocl_fop o = {m, 0, (size_t)g->Tk, trans};
    return o;
}

static void set_map(int *map, int mul, int add, int div) {
    map[0] = mul;
    map[1] = add;
    map[2] = div;
}

/* Batch over (s, h) of the chunk: strides of query-like (A/C floats), key-like (B bytes), scores. */
static ocl_batch batch_sh(const attn_geom *g, const chunk *ch) {
    ocl_batch b;
    b.nz = (int)(ch->nse * g->n_head);
    b.nz1 = (int)g->n_head;
    set_map(b.mapa, 1, 0, 1);
    set_map(b.mapb, 1, 0, 1);
    set_map(b.mapc, 1, 0, 1);
    b.sa[0] = b.sa[1] = b.sb[0] = b.sb[1] = b.sc[0] = b.sc[1] = 0;
    return b;
}

static void strides_q(const attn_geom *g, uint64_t s[2]) {
    s[0] = (uint64_t)(g->Tq * g->ldq);
    s[1] = (uint64_t)g->hd;
}
static void strides_k_bytes(const attn_geom *g, uint64_t s[2]) {
    s[0] = (uint64_t)(g->Tk * g->ldk) * 4;
    s[1] = (uint64_t)g->hd * 4;
}
static void strides_q_bytes(const attn_geom *g, uint64_t s[2]) {
    s[0] = (uint64_t)(g->Tq * g->ldq) * 4;
    s[1] = (uint64_t)g->hd * 4;
}
static void strides_k(const attn_geom *g, uint64_t s[2]) {
    s[0] = (uint64_t)(g->Tk * g->ldk);
    s[1] = (uint64_t)g->hd;
}
static void strides_s(const attn_geom *g, const chunk *ch, uint64_t s[2]) {
    s[0] = (uint64_t)(g->n_head * ch->nbe * g->Tk);
    s[1] = (uint64_t)(ch->nbe * g->Tk);
}

/* sc[s,h] = scale · Q[s,h] · K[s,h/group]ᵀ (queries of the chunk x all keys). */
static lc_status scores(ocl_ctx *c, const attn_geom *g, const chunk *ch, const lc_tensor *q, const lc_tensor *k,
                        cl_mem sc, float alpha, const char *what) {
    ocl_batch b = batch_sh(g, ch);
    strides_q(g, b.sa);
    strides_k_bytes(g, b.sb);
    strides_s(g, ch, b.sc);
    set_map(b.mapb, 1, 0, (int)g->group);
    const ocl_fop A = qop(g, ch, q), C = sop(sc, g, false);
    const ocl_wop B = kwop(g, ch, k, true);
    return ocl_gemm(c, what, (int)ch->nbe, (int)g->Tk, (int)g->hd, alpha, &A, &B, 0.0f, &C, &b);
}

/* ATTENTION: src0 q F32 [hd*n_head, Tq*S], src1 k, src2 v F32 [hd*n_kv, Tk*S] -> dst0 o
 * [hd*n_head, Tq*S], dst1 lse [n_head, Tq*S] (may be NULL); ip[0..4] n_head, n_kv, S, causal,
 * window; fp[0] scale. Errors: LC_ERR_INVALID_ARG, LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE,
 * LC_ERR_DEVICE_NOMEM, backend errors. */
lc_status ocl_op_attention(ocl_ctx *c, const lc_node *node) {
    attn_geom g;
    lc_status st = geom_init(node, &g);
    if (st != LC_OK) return st;
    const lc_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2], *o = node->dst[0], *lse = node->dst[1];
    if ((st = need_2d(node, o, "dst0 o", g.ldq, g.Tq * g.S)) ||
        (lse && (st = need_2d(node, lse, "dst1 lse", g.n_head, g.Tq * g.S))))
        return st;
    cl_mem sc;
    if ((st = ocl_scratch(c, OCL_SCR_S0, (size_t)(g.ns * g.n_head * g.nb * g.Tk) * 4, &sc)) != LC_OK) return st;
    for (int64_t s0 = 0; s0 < g.S; s0 += g.ns)
        for (int64_t i0 = 0; i0 < g.Tq; i0 += g.nb) {
            const chunk ch = {s0, g.S - s0 < g.ns ? g.S - s0 : g.ns, i0, g.Tq - i0 < g.nb ? g.Tq - i0 : g.nb};
            if ((st = scores(c, &g, &ch, q, k, sc, g.scale, "attention q·kᵀ")) != LC_OK) return st;
            const size_t rows = (size_t)(ch.nse * g.n_head * ch.nbe);
            const size_t wg = ocl_red_wg(c, OCL_K_attn_softmax, (size_t)g.Tk);
            ocl_args a;
            oa_begin(&a, c, OCL_K_attn_softmax);
            oa_mem(&a, sc);
            oa_mem(&a, lse ? ocl_mem(lse) : NULL);
            oa_u64(&a, lse ? lse->offset : 0);
            oa_i32(&a, lse != NULL);
            oa_i32(&a, (int32_t)g.n_head);
            oa_i32(&a, (int32_t)ch.nbe);
            oa_i32(&a, (int32_t)ch.i0);
            oa_i32(&a, (int32_t)ch.s0);
            oa_i32(&a, (int32_t)g.Tq);
            oa_i32(&a, (int32_t)g.Tk);
            oa_i32(&a, g.causal);
            oa_i32(&a, (int32_t)g.window);
            oa_local(&a, wg * sizeof(float));
            if ((st = ocl_launch_groups(&a, rows, wg)) != LC_OK) return st;
            /* O[s,h] = P · V[s, h/group] */
            ocl_batch b = batch_sh(&g, &ch);
            strides_s(&g, &ch, b.sa);
            strides_k_bytes(&g, b.sb);
            strides_q(&g, b.sc);
            set_map(b.mapb, 1, 0, (int)g.group);
            const ocl_fop A = sop(sc, &g, false), C = qop(&g, &ch, o);
            const ocl_wop B = kwop(&g, &ch, v, false);
            if ((st = ocl_gemm(c, "attention p·v", (int)ch.nbe, (int)g.hd, (int)g.Tk, 1.0f, &A, &B, 0.0f, &C, &b)) != LC_OK)
                return st;
        }
    return LC_OK;
}

/* dK or dV [s, c] += alpha · Xᵀ[s, h] · Y[s, h] for h = c*group + g, over every g in turn;
 * X is a score buffer (rows = queries of the chunk), Y a query-like tensor. */
static lc_status kv_grad(ocl_ctx *c, const attn_geom *g, const chunk *ch, cl_mem x, const lc_tensor *y,
                         const lc_tensor *dst, float alpha, const char *what) {
    for (int64_t gg = 0; gg < g->group; gg++) {
        ocl_batch b;
        b.nz = (int)(ch->nse * g->n_kv);
        b.nz1 = (int)g->n_kv;
        strides_s(g, ch, b.sa);
        strides_q_bytes(g, b.sb);
        strides_k(g, b.sc);
        set_map(b.mapa, (int)g->group, (int)gg, 1);
        set_map(b.mapb, (int)g->group, (int)gg, 1);
        set_map(b.mapc, 1, 0, 1);
        const ocl_fop A = sop(x, g, true), C = kop(g, ch, dst);
        const ocl_wop B = qwop(g, ch, y, false);
        lc_status st = ocl_gemm(c, what, (int)g->Tk, (int)g->hd, (int)ch->nbe, alpha, &A, &B, 1.0f, &C, &b);
        if (st != LC_OK) return st;
    }
    return LC_OK;
}

/* ATTENTION_BACK: src0..2 q, k, v, src4 o, src5 lse, src6 do -> dst0 dq, dst1 dk, dst2 dv (NULL:
 * not needed; accum bit i adds into dst[i]). Errors as ATTENTION, plus LC_ERR_INVALID_ARG when
 * lse (or o, needed for dq / dk) is missing. */
lc_status ocl_op_attention_back(ocl_ctx *c, const lc_node *node) {
    attn_geom g;
    lc_status st = geom_init(node, &g);
    if (st != LC_OK) return st;
    const lc_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2], *o = node->src[4], *lse = node->src[5],
                    *dout = node->src[6];
    const lc_tensor *dq = node->dst[0], *dk = node->dst[1], *dv = node->dst[2];
    const int64_t nq = g.Tq * g.S, nk = g.Tk * g.S;
    if ((st = need_2d(node, dout, "src6 do", g.ldq, nq)) || (st = need_2d(node, lse, "src5 lse", g.n_head, nq)) ||
        (dq && (st = need_2d(node, dq, "dst0 dq", g.ldq, nq))) || (dk && (st = need_2d(node, dk, "dst1 dk", g.ldk, nk))) ||
        (dv && (st = need_2d(node, dv, "dst2 dv", g.ldk, nk))))
        return st;
    const bool need_ds = dq || dk;
    if (need_ds && (st = need_2d(node, o, "src4 o", g.ldq, nq)) != LC_OK) return st;
    if (!dq && !dk && !dv) return LC_OK;
    if (dq && !(node->accum & 1u) && (st = ocl_fill_zero(c, ocl_mem(dq), dq->offset, lc_nbytes(dq)))) return st;
    if (dk && !(node->accum & 2u) && (st = ocl_fill_zero(c, ocl_mem(dk), dk->offset, lc_nbytes(dk)))) return st;
    if (dv && !(node->accum & 4u) && (st = ocl_fill_zero(c, ocl_mem(dv), dv->offset, lc_nbytes(dv)))) return st;
    const size_t nsc = (size_t)(g.ns * g.n_head * g.nb * g.Tk) * 4;
    cl_mem sc, dp = NULL;
    if ((st = ocl_scratch(c, OCL_SCR_S0, nsc, &sc)) != LC_OK) return st;
    if (need_ds && (st = ocl_scratch(c, OCL_SCR_S1, nsc, &dp)) != LC_OK) return st;
    for (int64_t s0 = 0; s0 < g.S; s0 += g.ns)
        for (int64_t i0 = 0; i0 < g.Tq; i0 += g.nb) {
            const chunk ch = {s0, g.S - s0 < g.ns ? g.S - s0 : g.ns, i0, g.Tq - i0 < g.nb ? g.Tq - i0 : g.nb};
            if ((st = scores(c, &g, &ch, q, k, sc, g.scale, "attention_back q·kᵀ")) != LC_OK) return st;
            if (need_ds && (st = scores(c, &g, &ch, dout, v, dp, 1.0f, "attention_back do·vᵀ")) != LC_OK) return st;
            const size_t rows = (size_t)(ch.nse * g.n_head * ch.nbe);
            const size_t wg = ocl_red_wg(c, OCL_K_attn_ds, (size_t)g.Tk);
            ocl_args a;
            oa_begin(&a, c, OCL_K_attn_ds);
            oa_mem(&a, sc);
            oa_mem(&a, dp ? dp : sc);
            oa_mem(&a, ocl_mem(lse));
            oa_u64(&a, lse->offset);
            oa_mem(&a, need_ds ? ocl_mem(o) : sc);
            oa_u64(&a, need_ds ? o->offset : 0);
            oa_mem(&a, ocl_mem(dout));
            oa_u64(&a, dout->offset);
            oa_i32(&a, need_ds);
            oa_i32(&a, (int32_t)g.n_head);
            oa_i32(&a, (int32_t)g.hd);
            oa_i32(&a, (int32_t)g.ldq);
            oa_i32(&a, (int32_t)ch.nbe);
            oa_i32(&a, (int32_t)ch.i0);
            oa_i32(&a, (int32_t)ch.s0);
            oa_i32(&a, (int32_t)g.Tq);
            oa_i32(&a, (int32_t)g.Tk);
            oa_i32(&a, g.causal);
            oa_i32(&a, (int32_t)g.window);
            oa_local(&a, wg * sizeof(float));
            if ((st = ocl_launch_groups(&a, rows, wg)) != LC_OK) return st;
            if (dv && (st = kv_grad(c, &g, &ch, sc, dout, dv, 1.0f, "attention_back dv")) != LC_OK) return st;
            if (dk && (st = kv_grad(c, &g, &ch, dp, q, dk, g.scale, "attention_back dk")) != LC_OK) return st;
            if (dq) { /* dQ[s,h] += scale · dS · K[s, h/group] */
                ocl_batch b = batch_sh(&g, &ch);
                strides_s(&g, &ch, b.sa);
                strides_k_bytes(&g, b.sb);
                strides_q(&g, b.sc);
                set_map(b.mapb, 1, 0, (int)g.group);
                const ocl_fop A = sop(dp, &g, false), C = qop(&g, &ch, dq);
                const ocl_wop B = kwop(&g, &ch, k, false);
                if ((st = ocl_gemm(c, "attention_back dq", (int)ch.nbe, (int)g.hd, (int)g.Tk, g.scale, &A, &B, 1.0f, &C, &b)))
                    return st;
            }
        }
    return LC_OK;
}
