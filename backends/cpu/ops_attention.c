/* lorac CPU backend — scaled dot-product attention, forward and backward (causal, sliding
 * window, grouped-query), with the products done by OpenBLAS sgemm.
 *
 * ATTENTION (lorac/graph.h): src0 q F32 [hd*n_head, Tq*S], src1 k F32 [hd*n_kv, Tk*S],
 * src2 v F32 [hd*n_kv, Tk*S] -> dst0 o F32 [hd*n_head, Tq*S], dst1 lse F32 [n_head, Tq*S].
 * ip[0] = n_head, ip[1] = n_kv (n_head % n_kv == 0), ip[2] = S, ip[3] = causal, ip[4] = window
 * (0: none); fp[0] = scale. Token t of sequence s is column s*T + t. Query i sits at position
 * p = Tk - Tq + i; key j is visible when (!causal || j <= p) && (window == 0 || p - j < window).
 * Query head h reads kv head h / (n_head / n_kv) (GQA, Ainslie et al. 2023).
 *   o_i = sum_j P_ij v_j,  P_ij = exp(scale q_i·k_j - lse_i) over visible j,
 *   lse_i = m_i + log(sum_j exp(scale q_i·k_j - m_i)),  m_i = max over visible j
 * (Vaswani et al. 2017; the log-sum-exp bookkeeping of FlashAttention, Dao et al. 2022).
 * A query with no visible key gets o = 0 and lse = -INFINITY.
 *
 * ATTENTION_BACK: src[0..2] q, k, v, src[4] o, src[5] lse, src[6] do -> dst[0] dq, dst[1] dk,
 * dst[2] dv (each NULL when not needed; bit i of accum adds into dst[i]). No probabilities are
 * stored; they are recomputed from lse (FlashAttention-2, Dao 2023, Algorithm 2):
 *   P = exp(scale q·kᵀ - lse), dV += Pᵀ dO, D_i = sum_d dO_id O_id,
 *   dS = P ∘ (dO·Vᵀ - D), dQ = scale dS·K, dK += scale dSᵀ·Q.
 *
 * Work is cut into blocks of (sequence, head, up to AT_BLOCK_Q query rows); for a block only
 * the keys some of its rows can see are touched, so causal attention costs about half of the
 * full product. The blocks run one after another and each product is one cblas_sgemm, which
 * OpenBLAS threads itself. Because blocks are sequential, the query heads of a GQA group never
 * race on the dK / dV of their shared kv head, and results do not depend on the thread count.
 * The row-wise work of a block (softmax, dS) runs on ctx->n_threads OpenMP threads only when
 * OpenBLAS is the OpenMP build (openblas_get_parallel() == 2), which shares the OpenMP pool.
 * With the pthreads build it stays on the calling thread: alternating OpenMP regions with
 * threaded sgemm calls made the two pools spin against each other (measured on 2 cores,
 * T = 512, hd = 256, 4 heads: 8 ms forward on one thread against 50-190 ms interleaved).
 * Precision: products in F32 (sgemm), exp in F32, softmax denominators and D_i in double.
 */
#include "cpu_internal.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Query rows per block, and the most scores (floats) one block may hold. */
#define AT_BLOCK_Q 128
#define AT_MAX_SCORES (1 << 21)
/* Row loops over fewer scores than this stay on one thread. */
#define AT_PAR_MIN 16384

typedef struct at_geom {
    int64_t n_head, n_kv, S, hd, Tq, Tk;
    int64_t ldq, ldk;  /* floats between tokens: hd*n_head, hd*n_kv */
    int64_t group;     /* query heads per kv head */
    int64_t window;
    bool causal;
    float scale;
    int64_t bq;        /* query rows per block */
} at_geom;

/* OpenMP threads for the row loops between sgemm calls (see the file comment). */
static int at_threads(const lc_cpu_ctx *ctx) {
    if (openblas_get_parallel() != 2) return 1;
    return (ctx && ctx->n_threads > 0) ? ctx->n_threads : 1;
}

static lc_status at_check(const lc_tensor *t, const char *op, const char *field) {
    lc_status st = lc_cpu_check_packed(t, LC_F32, op, field);
    if (st != LC_OK) return st;
    if (t->ne[2] != 1 || t->ne[3] != 1)
        return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' has ne[2]=%lld, ne[3]=%lld (2-D tensor expected)", op,
                        field, t->name, (long long)t->ne[2], (long long)t->ne[3]);
    return LC_OK;
}

static lc_status at_check_ne(const lc_tensor *t, int64_t ne0, int64_t ne1, const char *op,
                             const char *field) {
    lc_status st = at_check(t, op, field);
    if (st != LC_OK) return st;
    if (t->ne[0] != ne0 || t->ne[1] != ne1)
        return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' is [%lld, %lld], expected [%lld, %lld]", op,
                        field, t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)ne0,
                        (long long)ne1);
    return LC_OK;
}

/* Validate q, k, v and the parameters; fill g. */
static lc_status at_geom_init(const lc_node *node, const char *op, at_geom *g) {
    const lc_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2];
    lc_status st;
    if ((st = at_check(q, op, "src0 q")) != LC_OK) return st;
    if ((st = at_check(k, op, "src1 k")) != LC_OK) return st;
    const int64_t n_head = node->ip[0], n_kv = node->ip[1], S = node->ip[2];
    if (n_head < 1 || n_kv < 1 || n_head % n_kv != 0)
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: n_head ip[0]=%lld must be a positive multiple of n_kv ip[1]=%lld",
                        op, (long long)n_head, (long long)n_kv);
    if (S < 1) return lc_error(LC_ERR_INVALID_ARG, "cpu %s: n_seq ip[2]=%lld must be >= 1", op, (long long)S);
    if (node->ip[3] != 0 && node->ip[3] != 1)
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: causal ip[3]=%d must be 0 or 1", op, node->ip[3]);
    if (node->ip[4] < 0)
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: window ip[4]=%d must be >= 0", op, node->ip[4]);
    if (!isfinite(node->fp[0]))
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: scale fp[0] is not finite", op);
    if (q->ne[0] % n_head != 0)
        return lc_error(LC_ERR_SHAPE, "cpu %s: q.ne[0]=%lld is not a multiple of n_head=%lld", op,
                        (long long)q->ne[0], (long long)n_head);
    const int64_t hd = q->ne[0] / n_head;
    if (k->ne[0] != hd * n_kv)
        return lc_error(LC_ERR_SHAPE, "cpu %s: k.ne[0]=%lld, expected head_dim %lld * n_kv %lld", op,
                        (long long)k->ne[0], (long long)hd, (long long)n_kv);
    if (q->ne[1] % S != 0 || k->ne[1] % S != 0)
        return lc_error(LC_ERR_SHAPE, "cpu %s: q.ne[1]=%lld and k.ne[1]=%lld must be multiples of n_seq=%lld",
                        op, (long long)q->ne[1], (long long)k->ne[1], (long long)S);
    if ((st = at_check_ne(v, k->ne[0], k->ne[1], op, "src2 v")) != LC_OK) return st;
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
    g->causal = node->ip[3] != 0;
    g->scale = node->fp[0];
    if (g->ldq > INT_MAX || g->ldk > INT_MAX || g->Tq > INT_MAX || g->Tk > INT_MAX)
        return lc_error(LC_ERR_SHAPE, "cpu %s: dimensions exceed the BLAS int range", op);
    int64_t bq = AT_MAX_SCORES / g->Tk;
    if (bq > AT_BLOCK_Q) bq = AT_BLOCK_Q;
    if (bq < 1) bq = 1;
    if (bq > g->Tq) bq = g->Tq;
    g->bq = bq;
    return LC_OK;
}

/* Visible keys of query row i: [*lo, *hi]; empty when *lo > *hi. */
static inline void at_range(const at_geom *g, int64_t i, int64_t *lo, int64_t *hi) {
    const int64_t p = g->Tk - g->Tq + i;
    int64_t h = g->causal ? p : g->Tk - 1;
    int64_t l = g->window > 0 ? p - g->window + 1 : 0;
    if (h > g->Tk - 1) h = g->Tk - 1;
    if (l < 0) l = 0;
    *lo = l;
    *hi = h;
}

/* Key range [*ja, *jb] seen by any row of [i0, i0+nb); false when no row sees a key. */
static bool at_block_range(const at_geom *g, int64_t i0, int64_t nb, int64_t *ja, int64_t *jb) {
    int64_t a = INT64_MAX, b = -1;
    for (int64_t r = 0; r < nb; r++) {
        int64_t lo, hi;
        at_range(g, i0 + r, &lo, &hi);
        if (lo > hi) continue;
        if (lo < a) a = lo;
        if (hi > b) b = hi;
    }
    *ja = a;
    *jb = b;
    return b >= 0;
}

/* Pointers to row i of head h (q-like) or kv head c (k-like) of sequence s. */
static inline int64_t at_qoff(const at_geom *g, int64_t s, int64_t h, int64_t i) {
    return (s * g->Tq + i) * g->ldq + h * g->hd;
}
static inline int64_t at_koff(const at_geom *g, int64_t s, int64_t c, int64_t j) {
    return (s * g->Tk + j) * g->ldk + c * g->hd;
}

/* ATTENTION: see the file comment. Errors: LC_ERR_INVALID_ARG (missing tensor, n_head/n_kv,
 * n_seq, causal, window, scale), LC_ERR_DTYPE (not F32), LC_ERR_SHAPE (shapes, not contiguous,
 * sizes past the BLAS int range), LC_ERR_STATE (no buffer), LC_ERR_NOMEM. */
lc_status lc_cpu_op_attention(lc_cpu_ctx *ctx, const lc_node *node) {
    const char *op = "attention";
    at_geom g = {0};
    lc_status st = at_geom_init(node, op, &g);
    if (st != LC_OK) return st;
    const lc_tensor *ot = node->dst[0], *lt = node->dst[1];
    if ((st = at_check_ne(ot, g.ldq, g.Tq * g.S, op, "dst0 o")) != LC_OK) return st;
    if (lt && (st = at_check_ne(lt, g.n_head, g.Tq * g.S, op, "dst1 lse")) != LC_OK) return st;
    const float *q = LC_CPU_F32(node->src[0]), *k = LC_CPU_F32(node->src[1]),
                *v = LC_CPU_F32(node->src[2]);
    float *o = LC_CPU_F32(ot), *lse = lt ? LC_CPU_F32(lt) : NULL;
    float *sc = malloc((size_t)g.bq * (size_t)g.Tk * sizeof(float));
    if (!sc) return lc_error(LC_ERR_NOMEM, "cpu %s: no memory for %lld x %lld scores", op,
                             (long long)g.bq, (long long)g.Tk);
    const int nt = at_threads(ctx);
    for (int64_t s = 0; s < g.S; s++) {
        for (int64_t h = 0; h < g.n_head; h++) {
            const int64_t c = h / g.group;
            for (int64_t i0 = 0; i0 < g.Tq; i0 += g.bq) {
                const int64_t nb = g.Tq - i0 < g.bq ? g.Tq - i0 : g.bq;
                int64_t ja, jb;
                if (!at_block_range(&g, i0, nb, &ja, &jb)) {
                    for (int64_t r = 0; r < nb; r++) {
                        memset(o + at_qoff(&g, s, h, i0 + r), 0, (size_t)g.hd * sizeof(float));
                        if (lse) lse[(s * g.Tq + i0 + r) * g.n_head + h] = -INFINITY;
                    }
                    continue;
                }
                const int64_t nk = jb - ja + 1;
                /* sc[nb, nk] = scale * Q_blk · K[ja..jb]ᵀ */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nk, (int)g.hd,
                            g.scale, q + at_qoff(&g, s, h, i0), (int)g.ldq,
                            k + at_koff(&g, s, c, ja), (int)g.ldk, 0.0f, sc, (int)nk);
                /* row-wise softmax over the visible keys; sc becomes P */
#pragma omp parallel for num_threads(nt) schedule(static) if (nb * nk >= AT_PAR_MIN)
                for (int64_t r = 0; r < nb; r++) {
                    float *pr = sc + r * nk;
                    int64_t lo, hi;
                    at_range(&g, i0 + r, &lo, &hi);
                    float l = -INFINITY;
                    if (lo <= hi) {
                        lo -= ja;
                        hi -= ja;
                        const float m = lc_cpu_row_max(pr + lo, hi - lo + 1);
                        /* pr[j] = exp(pr[j] - m) (cpu_exp.c, vectorised), summed in double */
                        const double sum = lc_cpu_exp_sum(pr + lo, hi - lo + 1, m, pr + lo);
                        const float inv = (float)(1.0 / sum);
                        for (int64_t j = lo; j <= hi; j++) pr[j] *= inv;
                        l = (float)((double)m + log(sum));
                    } else {
                        lo = 0;
                        hi = -1;
                    }
                    for (int64_t j = 0; j < lo; j++) pr[j] = 0.0f;
                    for (int64_t j = hi + 1; j < nk; j++) pr[j] = 0.0f;
                    if (lse) lse[(s * g.Tq + i0 + r) * g.n_head + h] = l;
                }
                /* O_blk[nb, hd] = P · V[ja..jb] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)g.hd, (int)nk,
                            1.0f, sc, (int)nk, v + at_koff(&g, s, c, ja), (int)g.ldk, 0.0f,
                            o + at_qoff(&g, s, h, i0), (int)g.ldq);
            }
        }
    }
    free(sc);
    return LC_OK;
}

/* ATTENTION_BACK: see the file comment. Shapes: dq like q, dk/dv like k; src[4] o like q,
 * src[5] lse [n_head, Tq*S], src[6] do like q. Errors as lc_cpu_op_attention, plus
 * LC_ERR_INVALID_ARG when lse (or o, needed for dq/dk) is missing. */
lc_status lc_cpu_op_attention_back(lc_cpu_ctx *ctx, const lc_node *node) {
    const char *op = "attention_back";
    at_geom g = {0};
    lc_status st = at_geom_init(node, op, &g);
    if (st != LC_OK) return st;
    const lc_tensor *dqt = node->dst[0], *dkt = node->dst[1], *dvt = node->dst[2];
    const int64_t nq = g.Tq * g.S, nkt = g.Tk * g.S;
    if ((st = at_check_ne(node->src[6], g.ldq, nq, op, "src6 do")) != LC_OK) return st;
    if ((st = at_check_ne(node->src[5], g.n_head, nq, op, "src5 lse")) != LC_OK) return st;
    if (dqt && (st = at_check_ne(dqt, g.ldq, nq, op, "dst0 dq")) != LC_OK) return st;
    if (dkt && (st = at_check_ne(dkt, g.ldk, nkt, op, "dst1 dk")) != LC_OK) return st;
    if (dvt && (st = at_check_ne(dvt, g.ldk, nkt, op, "dst2 dv")) != LC_OK) return st;
    const bool need_ds = dqt || dkt;
    if (need_ds && (st = at_check_ne(node->src[4], g.ldq, nq, op, "src4 o")) != LC_OK) return st;
    if (!dqt && !dkt && !dvt) return LC_OK;

    const float *q = LC_CPU_F32(node->src[0]), *k = LC_CPU_F32(node->src[1]),
                *v = LC_CPU_F32(node->src[2]);
    const float *o = need_ds ? LC_CPU_F32(node->src[4]) : NULL;
    const float *lse = LC_CPU_F32(node->src[5]), *dout = LC_CPU_F32(node->src[6]);
    float *dq = LC_CPU_F32(dqt), *dk = LC_CPU_F32(dkt), *dv = LC_CPU_F32(dvt);
    const size_t nsc = (size_t)g.bq * (size_t)g.Tk;
    float *pb = malloc(nsc * sizeof(float));
    float *ds = need_ds ? malloc(nsc * sizeof(float)) : NULL;
    if (!pb || (need_ds && !ds)) {
        free(pb);
        free(ds);
        return lc_error(LC_ERR_NOMEM, "cpu %s: no memory for 2 x %lld x %lld scores", op,
                        (long long)g.bq, (long long)g.Tk);
    }
    /* Overwrite mode: clear first, then every product accumulates (beta = 1). */
    if (dq && !(node->accum & 1u)) memset(dq, 0, (size_t)nq * (size_t)g.ldq * sizeof(float));
    if (dk && !(node->accum & 2u)) memset(dk, 0, (size_t)nkt * (size_t)g.ldk * sizeof(float));
    if (dv && !(node->accum & 4u)) memset(dv, 0, (size_t)nkt * (size_t)g.ldk * sizeof(float));
    const int nt = at_threads(ctx);

    for (int64_t s = 0; s < g.S; s++) {
        for (int64_t h = 0; h < g.n_head; h++) {
            const int64_t c = h / g.group;
            for (int64_t i0 = 0; i0 < g.Tq; i0 += g.bq) {
                const int64_t nb = g.Tq - i0 < g.bq ? g.Tq - i0 : g.bq;
                int64_t ja, jb;
                if (!at_block_range(&g, i0, nb, &ja, &jb)) continue; /* no key: all grads 0 */
                const int64_t nk = jb - ja + 1;
                const float *qb = q + at_qoff(&g, s, h, i0), *dob = dout + at_qoff(&g, s, h, i0);
                const float *kb = k + at_koff(&g, s, c, ja), *vb = v + at_koff(&g, s, c, ja);
                /* pb[nb, nk] = scale * Q_blk · Kᵀ, then P = exp(pb - lse) on visible keys */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nk, (int)g.hd,
                            g.scale, qb, (int)g.ldq, kb, (int)g.ldk, 0.0f, pb, (int)nk);
                if (need_ds) /* ds[nb, nk] = dO_blk · Vᵀ */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nk,
                                (int)g.hd, 1.0f, dob, (int)g.ldq, vb, (int)g.ldk, 0.0f, ds, (int)nk);
#pragma omp parallel for num_threads(nt) schedule(static) if (nb * nk >= AT_PAR_MIN)
                for (int64_t r = 0; r < nb; r++) {
                    float *pr = pb + r * nk;
                    const float l = lse[(s * g.Tq + i0 + r) * g.n_head + h];
                    int64_t lo, hi;
                    at_range(&g, i0 + r, &lo, &hi);
                    if (lo > hi || !isfinite(l)) {
                        lo = 0;
                        hi = -1;
                    } else {
                        lo -= ja;
                        hi -= ja;
                    }
                    for (int64_t j = 0; j < lo; j++) pr[j] = 0.0f;
                    if (lo <= hi) (void)lc_cpu_exp_sum(pr + lo, hi - lo + 1, l, pr + lo); /* pr[j] = exp(pr[j] - l) */
                    for (int64_t j = hi + 1; j < nk; j++) pr[j] = 0.0f;
                    if (need_ds) { /* dS = P ∘ (dP - D_i) */
                        const float *orow = o + at_qoff(&g, s, h, i0 + r);
                        const float *drow = dout + at_qoff(&g, s, h, i0 + r);
                        double dd = 0.0;
                        for (int64_t d = 0; d < g.hd; d++) dd += (double)drow[d] * (double)orow[d];
                        const float D = (float)dd;
                        float *dsr = ds + r * nk;
                        for (int64_t j = 0; j < nk; j++) dsr[j] = pr[j] * (dsr[j] - D);
                    }
                }
                if (dv) /* dV[ja..jb] += Pᵀ · dO_blk */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)g.hd, (int)nb,
                                1.0f, pb, (int)nk, dob, (int)g.ldq, 1.0f,
                                dv + at_koff(&g, s, c, ja), (int)g.ldk);
                if (dq) /* dQ_blk += scale * dS · K[ja..jb] */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)g.hd,
                                (int)nk, g.scale, ds, (int)nk, kb, (int)g.ldk, 1.0f,
                                dq + at_qoff(&g, s, h, i0), (int)g.ldq);
                if (dk) /* dK[ja..jb] += scale * dSᵀ · Q_blk */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)g.hd, (int)nb,
                                g.scale, ds, (int)nk, qb, (int)g.ldq, 1.0f,
                                dk + at_koff(&g, s, c, ja), (int)g.ldk);
            }
        }
    }
    free(pb);
    free(ds);
    return LC_OK;
}
