/* lorac CPU backend — fused log-softmax + negative log-likelihood (cross_entropy), forward and
 * backward.
 *
 * CROSS_ENTROPY (lorac/graph.h): src0 logits F32 [V, N], src1 labels I32 [N]
 *   -> dst0 loss F32 [1], dst1 lse F32 [N] (may be NULL). ip[0] = ignore_index.
 *   Row n counts when labels[n] != ignore_index and 0 <= labels[n] < V.
 *   lse[n] = m + log(sum_v exp(logits[v,n] - m)), m = max_v logits[v,n]  (every row);
 *   loss = sum over counted rows of (lse[n] - logits[labels[n], n]) / D,
 *   D = fp[0] when fp[0] > 0 (gradient accumulation: the step's label count), else the number of
 *   counted rows; with no counted row the loss is 0.
 *   (Mean token-level NLL as torch.nn.functional.cross_entropy with ignore_index and
 *   reduction='mean'; reference/peft-lora.md, loss with labels -100.)
 *
 * CROSS_ENTROPY_BACK: src[0] logits, src[1] labels, src[5] lse (recomputed when NULL),
 *   src[6] dloss F32 [1] -> dst[0] dlogits F32 [V, N]:
 *   dlogits[v,n] = dloss * (exp(logits[v,n] - lse[n]) - [v == labels[n]]) / D for counted rows,
 *   0 for the others; bit 0 of accum adds into dst[0] (uncounted rows are then left unchanged).
 *
 * Rows run in parallel; exp is single precision (lc_cpu_expf of cpu_exp.c, AVX2 where available,
 * under 1 ulp), row sums (fixed 8-lane order) and the loss are accumulated in double, and the
 * loss adds the rows in index order so it does not depend on the thread count.
 * The backward renormalises exp(logits - lse) by its recomputed row sum, so the rounding of the
 * stored F32 lse does not reach the probabilities.
 */
#include "cpu_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Rows are parallelised when the whole tensor has at least this many elements. */
#define CE_PAR_MIN 16384

static int ce_threads(const lc_cpu_ctx *ctx) { return lc_cpu_threads(ctx); }

static lc_status ce_check(const lc_tensor *t, lc_dtype dtype, const char *op, const char *field) {
    return lc_cpu_check_packed(t, dtype, op, field);
}

static int64_t ce_nel(const lc_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

/* Checks logits and labels; V = logits.ne[0], N = rows of logits = elements of labels. */
static lc_status ce_check_inputs(const lc_node *node, const char *op, int64_t *V, int64_t *N) {
    const lc_tensor *lg = node->src[0], *lb = node->src[1];
    lc_status st;
    if ((st = ce_check(lg, LC_F32, op, "src0 logits")) != LC_OK) return st;
    if ((st = ce_check(lb, LC_I32, op, "src1 labels")) != LC_OK) return st;
    *V = lg->ne[0];
    *N = lg->ne[1] * lg->ne[2] * lg->ne[3];
    if (ce_nel(lb) != *N)
        return lc_error(LC_ERR_SHAPE, "cpu %s: labels '%s' has %lld elements, logits '%s' has %lld rows",
                        op, lb->name, (long long)ce_nel(lb), lg->name, (long long)*N);
    if (!isfinite(node->fp[0]))
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: denominator fp[0] is not finite", op);
    return LC_OK;
}

static inline bool ce_counted(int32_t label, int32_t ignore_index, int64_t V) {
    return label != ignore_index && label >= 0 && (int64_t)label < V;
}

/* log(sum exp(x)) of one row: max first, then the shifted sum in double. */
static float ce_row_lse(const float *x, int64_t V) {
    const float m = lc_cpu_row_max(x, V);
    if (isinf(m)) return m; /* all -inf gives -inf; any +inf gives +inf */
    const double sum = lc_cpu_exp_sum(x, V, m, NULL);
    return (float)((double)m + log(sum));
}

/* Denominator D and counted-row total. */
static double ce_denominator(const int32_t *labels, int64_t N, int64_t V, int32_t ignore_index,
                             float fp0, int64_t *counted) {
    int64_t c = 0;
    for (int64_t n = 0; n < N; n++) c += ce_counted(labels[n], ignore_index, V);
    *counted = c;
    return fp0 > 0.0f ? (double)fp0 : (double)c;
}

/* CROSS_ENTROPY: see the file comment. Shapes: logits [V, N], labels [N], loss [1], lse [N].
 * Errors: LC_ERR_INVALID_ARG (missing tensor, non-finite fp[0]), LC_ERR_DTYPE (logits not F32,
 * labels not I32), LC_ERR_SHAPE (labels length != N, loss not 1 element, lse length != N, not
 * contiguous), LC_ERR_STATE (no buffer), LC_ERR_NOMEM. */
lc_status lc_cpu_op_cross_entropy(lc_cpu_ctx *ctx, const lc_node *node) {
    const char *op = "cross_entropy";
    int64_t V, N;
    lc_status st = ce_check_inputs(node, op, &V, &N);
    if (st != LC_OK) return st;
    const lc_tensor *lt = node->dst[0], *set = node->dst[1];
    if ((st = ce_check(lt, LC_F32, op, "dst0 loss")) != LC_OK) return st;
    if (ce_nel(lt) != 1)
        return lc_error(LC_ERR_SHAPE, "cpu %s: loss '%s' has %lld elements, expected 1", op, lt->name,
                        (long long)ce_nel(lt));
    if (set) {
        if ((st = ce_check(set, LC_F32, op, "dst1 lse")) != LC_OK) return st;
        if (ce_nel(set) != N)
            return lc_error(LC_ERR_SHAPE, "cpu %s: lse '%s' has %lld elements, expected N=%lld", op,
                            set->name, (long long)ce_nel(set), (long long)N);
    }
    const float *x = LC_CPU_F32(node->src[0]);
    const int32_t *labels = LC_CPU_I32(node->src[1]);
    const int32_t ignore = node->ip[0];
    float *lse = set ? LC_CPU_F32(set) : NULL;
    double *nll = malloc((size_t)N * sizeof(double));
    if (!nll) return lc_error(LC_ERR_NOMEM, "cpu %s: no memory for %lld row losses", op, (long long)N);
#pragma omp parallel for num_threads(ce_threads(ctx)) schedule(static) if (N * V >= CE_PAR_MIN && N > 1)
    for (int64_t n = 0; n < N; n++) {
        const float *row = x + n * V;
        const float l = ce_row_lse(row, V);
        if (lse) lse[n] = l;
        const int32_t y = labels[n];
        nll[n] = ce_counted(y, ignore, V) ? (double)l - (double)row[y] : 0.0;
    }
    int64_t counted;
    const double D = ce_denominator(labels, N, V, ignore, node->fp[0], &counted);
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) total += nll[n];
    free(nll);
    *LC_CPU_F32(lt) = counted > 0 ? (float)(total / D) : 0.0f;
    return LC_OK;
}

/* CROSS_ENTROPY_BACK: see the file comment. Shapes: dlogits like logits, dloss [1], lse [N].
 * Errors as lc_cpu_op_cross_entropy, plus LC_ERR_INVALID_ARG when dloss is missing. */
lc_status lc_cpu_op_cross_entropy_back(lc_cpu_ctx *ctx, const lc_node *node) {
    const char *op = "cross_entropy_back";
    int64_t V, N;
    lc_status st = ce_check_inputs(node, op, &V, &N);
    if (st != LC_OK) return st;
    const lc_tensor *dlt = node->src[6], *set = node->src[5], *dxt = node->dst[0];
    if ((st = ce_check(dlt, LC_F32, op, "src6 dloss")) != LC_OK) return st;
    if (ce_nel(dlt) != 1)
        return lc_error(LC_ERR_SHAPE, "cpu %s: dloss '%s' has %lld elements, expected 1", op,
                        dlt->name, (long long)ce_nel(dlt));
    if (set) {
        if ((st = ce_check(set, LC_F32, op, "src5 lse")) != LC_OK) return st;
        if (ce_nel(set) != N)
            return lc_error(LC_ERR_SHAPE, "cpu %s: lse '%s' has %lld elements, expected N=%lld", op,
                            set->name, (long long)ce_nel(set), (long long)N);
    }
    if (!dxt) return LC_OK;
    if ((st = ce_check(dxt, LC_F32, op, "dst0 dlogits")) != LC_OK) return st;
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (dxt->ne[d] != node->src[0]->ne[d])
            return lc_error(LC_ERR_SHAPE, "cpu %s: dlogits '%s' ne[%d]=%lld differs from logits ne[%d]=%lld",
                            op, dxt->name, d, (long long)dxt->ne[d], d, (long long)node->src[0]->ne[d]);
    const float *x = LC_CPU_F32(node->src[0]);
    const int32_t *labels = LC_CPU_I32(node->src[1]);
    const int32_t ignore = node->ip[0];
    const float *lse = set ? LC_CPU_F32(set) : NULL;
    float *dx = LC_CPU_F32(dxt);
    const bool acc = (node->accum & 1u) != 0;
    int64_t counted;
    const double D = ce_denominator(labels, N, V, ignore, node->fp[0], &counted);
    const float coef = counted > 0 ? (float)((double)*LC_CPU_F32(dlt) / D) : 0.0f;
    const int nt = ce_threads(ctx);
    /* accumulate mode needs a row of scratch per thread for the unnormalised exponentials */
    float *scratch = NULL;
    if (acc && counted > 0) {
        scratch = malloc((size_t)nt * (size_t)V * sizeof(float));
        if (!scratch) return lc_error(LC_ERR_NOMEM, "cpu %s: no memory for %d x %lld scratch rows",
                                      op, nt, (long long)V);
    }
#pragma omp parallel for num_threads(nt) schedule(static) if (N * V >= CE_PAR_MIN && N > 1)
    for (int64_t n = 0; n < N; n++) {
        const float *row = x + n * V;
        float *drow = dx + n * V;
        const int32_t y = labels[n];
        if (!ce_counted(y, ignore, V) || counted == 0) {
            if (!acc) memset(drow, 0, (size_t)V * sizeof(float));
            continue;
        }
        /* softmax = e / sum(e) with e = exp(x - lse): dividing by the recomputed sum removes the
         * rounding of the stored F32 lse (worth ~1 ulp of |lse| in every probability) */
        const float l = lse ? lse[n] : ce_row_lse(row, V);
        float *e = acc ? scratch + (size_t)omp_get_thread_num() * (size_t)V : drow;
        const double sum = lc_cpu_exp_sum(row, V, l, e);
        const float c = (float)((double)coef / sum); /* coef * softmax = e * c */
        if (acc) {
            for (int64_t v = 0; v < V; v++) drow[v] += e[v] * c;
        } else {
            for (int64_t v = 0; v < V; v++) drow[v] = e[v] * c;
        }
        drow[y] -= coef; /* the one-hot term */
    }
    free(scratch);
    return LC_OK;
}
