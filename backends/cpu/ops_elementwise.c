/* lorac CPU backend — element-wise kernels, forward and backward: add, mul (with broadcast by
 * repetition), scale, gelu_tanh, silu, geglu, swiglu.
 *
 * Semantics, parameter slots and the backward-node layout are those of lorac/graph.h:
 *   ADD, MUL   src0 a F32 [n0, n1], src1 b F32 [m0, m1], n0 % m0 == 0, n1 % m1 == 0
 *              -> dst0 y F32 [n0, n1], y[i,j] = a[i,j] (+ or *) b[i % m0, j % m1].
 *   SCALE      y = x * fp[0].
 *   GELU_TANH  y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (Hendrycks & Gimpel 2016,
 *              the tanh approximation used by Gemma; reference/formats.md §3).
 *   SILU       y = x / (1 + exp(-x))  (Elfwing et al. 2018).
 *   GEGLU      y = gelu_tanh(gate) * up;  SWIGLU  y = silu(gate) * up  (Shazeer 2020).
 * Here n1 counts every row: ne[1] * ne[2] * ne[3]. Tensors must be contiguous F32.
 *
 * Backward nodes (<OP>_BACK): src[0..3] forward inputs, src[4] forward y, src[6] dL/dy;
 * dst[i] = dL/d(src[i]) or NULL (skipped); bit i of node->accum adds into dst[i] instead of
 * overwriting it. Derivatives are analytic:
 *   gelu_tanh'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),
 *                   t = tanh(sqrt(2/pi) (x + 0.044715 x^3)); both gelu_tanh and its derivative
 *                   are evaluated through the identity 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)),
 *                   which is exact in real arithmetic and avoids cancellation for x < 0;
 *   silu'(x)      = s (1 + x (1 - s)),  s = 1 / (1 + exp(-x)).
 * The gradient of a broadcast operand b is summed over every position that repeated it; those
 * sums are accumulated in double and rounded once into F32. Everything else is single precision.
 */
#include "cpu_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Loops shorter than this run on one thread: a parallel region costs more than it saves. */
#define EW_PAR_MIN 32768

static int ew_threads(const lc_cpu_ctx *ctx) { return lc_cpu_threads(ctx); }

static int64_t ew_rows(const lc_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

static bool ew_same_ne(const lc_tensor *a, const lc_tensor *b) {
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (a->ne[d] != b->ne[d]) return false;
    return true;
}

/* A present, allocated, contiguous F32 tensor; else an error naming op and field. */
static lc_status ew_check(const lc_tensor *t, const char *op, const char *field) {
    return lc_cpu_check_packed(t, LC_F32, op, field);
}

/* `t` (checked) must have the ne of `like`. */
static lc_status ew_check_like(const lc_tensor *t, const lc_tensor *like, const char *op,
                               const char *field, const char *like_field) {
    lc_status st = ew_check(t, op, field);
    if (st != LC_OK) return st;
    if (!ew_same_ne(t, like))
        return lc_error(LC_ERR_SHAPE,
                        "cpu %s: %s ne [%lld, %lld, %lld, %lld] differs from %s ne [%lld, %lld, %lld, %lld]",
                        op, field, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)t->ne[3], like_field, (long long)like->ne[0],
                        (long long)like->ne[1], (long long)like->ne[2], (long long)like->ne[3]);
    return LC_OK;
}

/* ---- scalar functions ------------------------------------------------------------------ */

#define EW_SQRT_2_OVER_PI 0.7978845608028654f
#define EW_GELU_COEF 0.044715f

/* s = 1 / (1 + exp(-z)) and 1 - s, each without cancellation or overflow for any finite z. */
static inline void logistic2(float z, float *s, float *oms) {
    if (z >= 0.0f) {
        const float e = expf(-z), r = 1.0f / (1.0f + e);
        *s = r;
        *oms = e * r;
    } else {
        const float e = expf(z), r = 1.0f / (1.0f + e);
        *s = e * r;
        *oms = r;
    }
}

/* Elements per block of the vectorised gelu_tanh below. */
#define EW_CHUNK 256

/* act[i] = gelu_tanh(x[i]) and, when dact != NULL, dact[i] = gelu_tanh'(x[i]) for i < n <= EW_CHUNK,
 * through 0.5 (1 + tanh(u)) = s = 1 / (1 + exp(-2u)), which keeps full relative precision for
 * negative x where 1 + tanh(u) would cancel, and d/dx = s + 2 x s (1 - s) u' with
 * u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2). With z = 2u and e = exp(-|z|) (no overflow for any z),
 * s = 1/(1+e), 1-s = e/(1+e) for z >= 0 and the mirror for z < 0. The n exponentials are computed
 * together by lc_cpu_exp_array (cpu_exp.c: AVX2 where available, < 1 ulp). */
static void gelu_block(const float *x, int64_t n, float *act, float *dact) {
    float z[EW_CHUNK], e[EW_CHUNK] = {0}; /* e zeroed: quiets -Wmaybe-uninitialized, 1 KiB */
    for (int64_t i = 0; i < n; i++) {
        const float xv = x[i];
        z[i] = 2.0f * EW_SQRT_2_OVER_PI * (xv + EW_GELU_COEF * (xv * xv) * xv);
        e[i] = -fabsf(z[i]);
    }
    lc_cpu_exp_array(e, e, n);
    for (int64_t i = 0; i < n; i++) {
        const float r = 1.0f / (1.0f + e[i]);
        const bool pos = z[i] >= 0.0f;
        const float s = pos ? r : e[i] * r, oms = pos ? e[i] * r : r, xv = x[i];
        act[i] = xv * s;
        if (dact) {
            const float du = EW_SQRT_2_OVER_PI * (1.0f + 3.0f * EW_GELU_COEF * (xv * xv));
            dact[i] = s + 2.0f * xv * s * oms * du;
        }
    }
}

/* graph.h's formula; for x < -88 exp(-x) overflows to inf and y is -0, the correct limit. */
static inline float silu_f(float x) { return x / (1.0f + expf(-x)); }

static inline float silu_grad(float x) {
    float s, oms;
    logistic2(x, &s, &oms);
    return s * (1.0f + x * oms);
}

/* ---- broadcast geometry ------------------------------------------------------------------ */

typedef struct ew_bcast {
    int64_t n0, n1; /* a, y, dy */
    int64_t m0, m1; /* b */
} ew_bcast;

static lc_status ew_bcast_check(const lc_tensor *a, const lc_tensor *b, const char *op,
                                ew_bcast *g) {
    g->n0 = a->ne[0];
    g->n1 = ew_rows(a);
    g->m0 = b->ne[0];
    g->m1 = ew_rows(b);
    if (g->n0 % g->m0 != 0 || g->n1 % g->m1 != 0)
        return lc_error(LC_ERR_SHAPE,
                        "cpu %s: b [%lld, %lld] does not tile a [%lld, %lld] (need n0 %% m0 == 0 and n1 %% m1 == 0)",
                        op, (long long)g->m0, (long long)g->m1, (long long)g->n0, (long long)g->n1);
    return LC_OK;
}

/* y[i,j] = a[i,j] (+ or *) b[i % m0, j % m1]. Alias-safe for y == a. */
static void ew_bcast_apply(int nt, float *y, const float *a, const float *b, const ew_bcast *g,
                           bool is_mul) {
    const int64_t n0 = g->n0, n1 = g->n1, m0 = g->m0, m1 = g->m1;
#pragma omp parallel for num_threads(nt) schedule(static) if (n0 * n1 >= EW_PAR_MIN)
    for (int64_t j = 0; j < n1; j++) {
        const float *arow = a + j * n0;
        const float *brow = b + (j % m1) * m0;
        float *yrow = y + j * n0;
        for (int64_t i0 = 0; i0 < n0; i0 += m0) {
            if (is_mul) {
                for (int64_t i = 0; i < m0; i++) yrow[i0 + i] = arow[i0 + i] * brow[i];
            } else {
                for (int64_t i = 0; i < m0; i++) yrow[i0 + i] = arow[i0 + i] + brow[i];
            }
        }
    }
}

/* db[m0, m1] (= or +=) sum over the repetitions (i, j) of b of dy[i,j] * (a ? a[i,j] : 1).
 * Sums are taken in double with a fixed partition, so results do not depend on scheduling. */
static lc_status ew_bcast_reduce(int nt, float *db, bool acc, const float *dy, const float *a,
                                 const ew_bcast *g, const char *op) {
    const int64_t n0 = g->n0, n1 = g->n1, m0 = g->m0, m1 = g->m1;
    if (m0 == n0 && m1 == n1) { /* no broadcast: db = dy (* a) */
        const int64_t n = n0 * n1;
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float v = a ? dy[i] * a[i] : dy[i];
            db[i] = acc ? db[i] + v : v;
        }
        return LC_OK;
    }
    const int64_t reps1 = n1 / m1;
    if (m1 >= 2 * (int64_t)nt || n0 * n1 < EW_PAR_MIN) {
        /* Enough rows of b: each thread owns whole rows j' of db and one double row buffer. */
        double *part = malloc((size_t)nt * (size_t)m0 * sizeof(double));
        if (!part) return lc_error(LC_ERR_NOMEM, "cpu %s: no memory for %d x %lld reduction buffers",
                                   op, nt, (long long)m0);
#pragma omp parallel num_threads(nt) if (n0 * n1 >= EW_PAR_MIN)
        {
            double *acc_row = part + (size_t)omp_get_thread_num() * (size_t)m0;
#pragma omp for schedule(static)
            for (int64_t jb = 0; jb < m1; jb++) {
                for (int64_t i = 0; i < m0; i++) acc_row[i] = 0.0;
                for (int64_t r = 0; r < reps1; r++) {
                    const int64_t j = jb + r * m1;
                    const float *dyr = dy + j * n0;
                    const float *ar = a ? a + j * n0 : NULL;
                    for (int64_t i0 = 0; i0 < n0; i0 += m0) {
                        if (ar) {
                            for (int64_t i = 0; i < m0; i++)
                                acc_row[i] += (double)dyr[i0 + i] * (double)ar[i0 + i];
                        } else {
                            for (int64_t i = 0; i < m0; i++) acc_row[i] += (double)dyr[i0 + i];
                        }
                    }
                }
                float *dbr = db + jb * m0;
                for (int64_t i = 0; i < m0; i++)
                    dbr[i] = acc ? (float)((double)dbr[i] + acc_row[i]) : (float)acc_row[i];
            }
        }
        free(part);
        return LC_OK;
    }
    /* Few rows of b (e.g. a bias [m0, 1]): split the rows of dy into one fixed chunk per thread,
     * each summing into a private [m0, m1] partial; then add the partials in thread order. */
    const int64_t mb = m0 * m1;
    double *part = calloc((size_t)nt * (size_t)mb, sizeof(double));
    if (!part) return lc_error(LC_ERR_NOMEM, "cpu %s: no memory for %d x %lld reduction buffers",
                               op, nt, (long long)mb);
    int used = 1;
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
#pragma omp single
        used = team;
        double *p = part + (size_t)tid * (size_t)mb;
        const int64_t chunk = (n1 + team - 1) / team;
        const int64_t j_end = (tid + 1) * chunk < n1 ? (tid + 1) * chunk : n1;
        for (int64_t j = tid * chunk; j < j_end; j++) {
            double *pr = p + (j % m1) * m0;
            const float *dyr = dy + j * n0;
            const float *ar = a ? a + j * n0 : NULL;
            for (int64_t i0 = 0; i0 < n0; i0 += m0) {
                if (ar) {
                    for (int64_t i = 0; i < m0; i++) pr[i] += (double)dyr[i0 + i] * (double)ar[i0 + i];
                } else {
                    for (int64_t i = 0; i < m0; i++) pr[i] += (double)dyr[i0 + i];
                }
            }
        }
    }
#pragma omp parallel for num_threads(nt) schedule(static) if (mb * used >= EW_PAR_MIN)
    for (int64_t e = 0; e < mb; e++) {
        double s = 0.0;
        for (int t = 0; t < used; t++) s += part[(size_t)t * (size_t)mb + (size_t)e];
        db[e] = acc ? (float)((double)db[e] + s) : (float)s;
    }
    free(part);
    return LC_OK;
}

/* ---- add / mul --------------------------------------------------------------------------- */

static lc_status ew_binary_fwd(lc_cpu_ctx *ctx, const lc_node *node, bool is_mul) {
    const char *op = is_mul ? "mul" : "add";
    const lc_tensor *a = node->src[0], *b = node->src[1], *y = node->dst[0];
    lc_status st;
    if ((st = ew_check(a, op, "src0 a")) != LC_OK) return st;
    if ((st = ew_check(b, op, "src1 b")) != LC_OK) return st;
    if ((st = ew_check_like(y, a, op, "dst0 y", "src0 a")) != LC_OK) return st;
    ew_bcast g = {0};
    if ((st = ew_bcast_check(a, b, op, &g)) != LC_OK) return st;
    ew_bcast_apply(ew_threads(ctx), LC_CPU_F32(y), LC_CPU_F32(a), LC_CPU_F32(b), &g, is_mul);
    return LC_OK;
}

/* ADD: see the file comment. Errors: LC_ERR_INVALID_ARG (missing tensor), LC_ERR_DTYPE (not
 * F32), LC_ERR_SHAPE (non-contiguous, dst shape, b does not tile a), LC_ERR_STATE (no buffer). */
lc_status lc_cpu_op_add(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_binary_fwd(ctx, node, false);
}

/* MUL: see the file comment. Errors as lc_cpu_op_add. */
lc_status lc_cpu_op_mul(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_binary_fwd(ctx, node, true);
}

/* ADD_BACK / MUL_BACK: src[0] a, src[1] b, src[6] dy [n0, n1] -> dst[0] da [n0, n1],
 * dst[1] db [m0, m1]. add: da = dy, db = sum of dy over repeats. mul: da = dy * b(broadcast),
 * db = sum of dy * a over repeats. Errors as lc_cpu_op_add. */
static lc_status ew_binary_back(lc_cpu_ctx *ctx, const lc_node *node, bool is_mul) {
    const char *op = is_mul ? "mul_back" : "add_back";
    const lc_tensor *a = node->src[0], *b = node->src[1], *dy = node->src[6];
    const lc_tensor *da = node->dst[0], *db = node->dst[1];
    lc_status st;
    if ((st = ew_check(a, op, "src0 a")) != LC_OK) return st;
    if ((st = ew_check(b, op, "src1 b")) != LC_OK) return st;
    if ((st = ew_check_like(dy, a, op, "src6 dy", "src0 a")) != LC_OK) return st;
    if (da && (st = ew_check_like(da, a, op, "dst0 da", "src0 a")) != LC_OK) return st;
    if (db && (st = ew_check_like(db, b, op, "dst1 db", "src1 b")) != LC_OK) return st;
    ew_bcast g = {0};
    if ((st = ew_bcast_check(a, b, op, &g)) != LC_OK) return st;
    const int nt = ew_threads(ctx);
    const float *pdy = LC_CPU_F32(dy);
    if (da) {
        float *pda = LC_CPU_F32(da);
        const bool acc = (node->accum & 1u) != 0;
        if (is_mul) {
            const float *pb = LC_CPU_F32(b);
            const int64_t n0 = g.n0, n1 = g.n1, m0 = g.m0, m1 = g.m1;
#pragma omp parallel for num_threads(nt) schedule(static) if (n0 * n1 >= EW_PAR_MIN)
            for (int64_t j = 0; j < n1; j++) {
                const float *brow = pb + (j % m1) * m0;
                const float *dyr = pdy + j * n0;
                float *dar = pda + j * n0;
                for (int64_t i0 = 0; i0 < n0; i0 += m0)
                    for (int64_t i = 0; i < m0; i++) {
                        float v = dyr[i0 + i] * brow[i];
                        dar[i0 + i] = acc ? dar[i0 + i] + v : v;
                    }
            }
        } else {
            const int64_t n = g.n0 * g.n1;
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN)
            for (int64_t i = 0; i < n; i++) pda[i] = acc ? pda[i] + pdy[i] : pdy[i];
        }
    }
    if (db) {
        st = ew_bcast_reduce(nt, LC_CPU_F32(db), (node->accum & 2u) != 0, pdy,
                             is_mul ? LC_CPU_F32(a) : NULL, &g, op);
        if (st != LC_OK) return st;
    }
    return LC_OK;
}

/* ADD_BACK: da (+)= dy [n0, n1]; db [m0, m1] (+)= dy summed over the repeats of b.
 * Errors as lc_cpu_op_add, plus LC_ERR_NOMEM for the reduction partials. */
lc_status lc_cpu_op_add_back(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_binary_back(ctx, node, false);
}

/* MUL_BACK: da [n0, n1] (+)= dy * b[i % m0, j % m1]; db [m0, m1] (+)= dy * a summed over the
 * repeats of b. Errors as lc_cpu_op_add_back. */
lc_status lc_cpu_op_mul_back(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_binary_back(ctx, node, true);
}

/* ---- unary: scale, gelu_tanh, silu ------------------------------------------------------- */

typedef enum { EW_SCALE, EW_GELU, EW_SILU } ew_unary;

static const char *const ew_unary_name[] = {"scale", "gelu_tanh", "silu"};
static const char *const ew_unary_back_name[] = {"scale_back", "gelu_tanh_back", "silu_back"};

/* SCALE / GELU_TANH / SILU: src0 x F32 (any ne) -> dst0 y F32 (same ne). */
static lc_status ew_unary_fwd(lc_cpu_ctx *ctx, const lc_node *node, ew_unary f) {
    const char *op = ew_unary_name[f];
    const lc_tensor *x = node->src[0], *y = node->dst[0];
    lc_status st;
    if ((st = ew_check(x, op, "src0 x")) != LC_OK) return st;
    if ((st = ew_check_like(y, x, op, "dst0 y", "src0 x")) != LC_OK) return st;
    const float *px = LC_CPU_F32(x);
    float *py = LC_CPU_F32(y);
    const int64_t n = x->ne[0] * ew_rows(x);
    const int nt = ew_threads(ctx);
    const float s = node->fp[0];
    switch (f) {
    case EW_SCALE:
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN)
        for (int64_t i = 0; i < n; i++) py[i] = px[i] * s;
        break;
    case EW_GELU:
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN / 8)
        for (int64_t i0 = 0; i0 < n; i0 += EW_CHUNK)
            gelu_block(px + i0, n - i0 < EW_CHUNK ? n - i0 : EW_CHUNK, py + i0, NULL);
        break;
    case EW_SILU:
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN / 8)
        for (int64_t i = 0; i < n; i++) py[i] = silu_f(px[i]);
        break;
    }
    return LC_OK;
}

/* <unary>_BACK: src[0] x, src[6] dy -> dst[0] dx = dy * f'(x) (scale: dy * fp[0]). */
static lc_status ew_unary_back(lc_cpu_ctx *ctx, const lc_node *node, ew_unary f) {
    const char *op = ew_unary_back_name[f];
    const lc_tensor *x = node->src[0], *dy = node->src[6], *dx = node->dst[0];
    lc_status st;
    if ((st = ew_check(x, op, "src0 x")) != LC_OK) return st;
    if ((st = ew_check_like(dy, x, op, "src6 dy", "src0 x")) != LC_OK) return st;
    if (!dx) return LC_OK;
    if ((st = ew_check_like(dx, x, op, "dst0 dx", "src0 x")) != LC_OK) return st;
    const float *px = LC_CPU_F32(x), *pdy = LC_CPU_F32(dy);
    float *pdx = LC_CPU_F32(dx);
    const int64_t n = x->ne[0] * ew_rows(x);
    const int nt = ew_threads(ctx);
    const bool acc = (node->accum & 1u) != 0;
    const float s = node->fp[0];
    switch (f) {
    case EW_SCALE:
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float v = pdy[i] * s;
            pdx[i] = acc ? pdx[i] + v : v;
        }
        break;
    case EW_GELU:
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN / 8)
        for (int64_t i0 = 0; i0 < n; i0 += EW_CHUNK) {
            float act[EW_CHUNK], dact[EW_CHUNK];
            const int64_t nb = n - i0 < EW_CHUNK ? n - i0 : EW_CHUNK;
            gelu_block(px + i0, nb, act, dact);
            for (int64_t j = 0; j < nb; j++) {
                const int64_t i = i0 + j;
                float v = pdy[i] * dact[j];
                pdx[i] = acc ? pdx[i] + v : v;
            }
        }
        break;
    case EW_SILU:
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN / 8)
        for (int64_t i = 0; i < n; i++) {
            float v = pdy[i] * silu_grad(px[i]);
            pdx[i] = acc ? pdx[i] + v : v;
        }
        break;
    }
    return LC_OK;
}

/* SCALE: y = x * fp[0]. Errors: LC_ERR_INVALID_ARG, LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE. */
lc_status lc_cpu_op_scale(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_unary_fwd(ctx, node, EW_SCALE);
}
/* SCALE_BACK: dx (+)= dy * fp[0]. Errors as lc_cpu_op_scale. */
lc_status lc_cpu_op_scale_back(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_unary_back(ctx, node, EW_SCALE);
}
/* GELU_TANH: y = gelu_tanh(x). Errors as lc_cpu_op_scale. */
lc_status lc_cpu_op_gelu_tanh(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_unary_fwd(ctx, node, EW_GELU);
}
/* GELU_TANH_BACK: dx (+)= dy * gelu_tanh'(x). Errors as lc_cpu_op_scale. */
lc_status lc_cpu_op_gelu_tanh_back(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_unary_back(ctx, node, EW_GELU);
}
/* SILU: y = x / (1 + exp(-x)). Errors as lc_cpu_op_scale. */
lc_status lc_cpu_op_silu(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_unary_fwd(ctx, node, EW_SILU);
}
/* SILU_BACK: dx (+)= dy * silu'(x). Errors as lc_cpu_op_scale. */
lc_status lc_cpu_op_silu_back(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_unary_back(ctx, node, EW_SILU);
}

/* ---- gated: geglu, swiglu ---------------------------------------------------------------- */

/* GEGLU / SWIGLU: src0 gate, src1 up F32 (same ne) -> dst0 y = act(gate) * up. */
static lc_status ew_glu_fwd(lc_cpu_ctx *ctx, const lc_node *node, bool is_gelu) {
    const char *op = is_gelu ? "geglu" : "swiglu";
    const lc_tensor *gt = node->src[0], *up = node->src[1], *y = node->dst[0];
    lc_status st;
    if ((st = ew_check(gt, op, "src0 gate")) != LC_OK) return st;
    if ((st = ew_check_like(up, gt, op, "src1 up", "src0 gate")) != LC_OK) return st;
    if ((st = ew_check_like(y, gt, op, "dst0 y", "src0 gate")) != LC_OK) return st;
    const float *pg = LC_CPU_F32(gt), *pu = LC_CPU_F32(up);
    float *py = LC_CPU_F32(y);
    const int64_t n = gt->ne[0] * ew_rows(gt);
    const int nt = ew_threads(ctx);
    if (is_gelu) {
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN / 8)
        for (int64_t i0 = 0; i0 < n; i0 += EW_CHUNK) {
            float act[EW_CHUNK];
            const int64_t nb = n - i0 < EW_CHUNK ? n - i0 : EW_CHUNK;
            gelu_block(pg + i0, nb, act, NULL);
            for (int64_t j = 0; j < nb; j++) py[i0 + j] = act[j] * pu[i0 + j];
        }
    } else {
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN / 8)
        for (int64_t i = 0; i < n; i++) py[i] = silu_f(pg[i]) * pu[i];
    }
    return LC_OK;
}

/* GEGLU_BACK / SWIGLU_BACK: src[0] gate, src[1] up, src[6] dy -> dst[0] dgate = dy * up *
 * act'(gate), dst[1] dup = dy * act(gate). */
static lc_status ew_glu_back(lc_cpu_ctx *ctx, const lc_node *node, bool is_gelu) {
    const char *op = is_gelu ? "geglu_back" : "swiglu_back";
    const lc_tensor *gt = node->src[0], *up = node->src[1], *dy = node->src[6];
    const lc_tensor *dg = node->dst[0], *du = node->dst[1];
    lc_status st;
    if ((st = ew_check(gt, op, "src0 gate")) != LC_OK) return st;
    if ((st = ew_check_like(up, gt, op, "src1 up", "src0 gate")) != LC_OK) return st;
    if ((st = ew_check_like(dy, gt, op, "src6 dy", "src0 gate")) != LC_OK) return st;
    if (dg && (st = ew_check_like(dg, gt, op, "dst0 dgate", "src0 gate")) != LC_OK) return st;
    if (du && (st = ew_check_like(du, gt, op, "dst1 dup", "src0 gate")) != LC_OK) return st;
    if (!dg && !du) return LC_OK;
    const float *pg = LC_CPU_F32(gt), *pu = LC_CPU_F32(up), *pdy = LC_CPU_F32(dy);
    float *pdg = dg ? LC_CPU_F32(dg) : NULL, *pdu = du ? LC_CPU_F32(du) : NULL;
    const bool acc0 = (node->accum & 1u) != 0, acc1 = (node->accum & 2u) != 0;
    const int64_t n = gt->ne[0] * ew_rows(gt);
    const int nt = ew_threads(ctx);
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= EW_PAR_MIN / 8)
    for (int64_t i0 = 0; i0 < n; i0 += EW_CHUNK) {
        float actb[EW_CHUNK], dactb[EW_CHUNK];
        const int64_t nb = n - i0 < EW_CHUNK ? n - i0 : EW_CHUNK;
        if (is_gelu) gelu_block(pg + i0, nb, actb, dactb);
        for (int64_t j = 0; j < nb; j++) {
            const int64_t i = i0 + j;
            const float gv = pg[i], uv = pu[i], d = pdy[i];
            /* read everything first: dgate or dup may share memory with dy */
            const float act = is_gelu ? actb[j] : silu_f(gv);
            const float dact = is_gelu ? dactb[j] : silu_grad(gv);
            if (pdg) {
                float v = d * uv * dact;
                pdg[i] = acc0 ? pdg[i] + v : v;
            }
            if (pdu) {
                float v = d * act;
                pdu[i] = acc1 ? pdu[i] + v : v;
            }
        }
    }
    return LC_OK;
}

/* GEGLU: y = gelu_tanh(gate) * up. Errors: LC_ERR_INVALID_ARG, LC_ERR_DTYPE, LC_ERR_SHAPE
 * (gate, up, y differ in ne or are not contiguous), LC_ERR_STATE. */
lc_status lc_cpu_op_geglu(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_glu_fwd(ctx, node, true);
}
/* GEGLU_BACK: dgate (+)= dy * up * gelu_tanh'(gate), dup (+)= dy * gelu_tanh(gate). */
lc_status lc_cpu_op_geglu_back(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_glu_back(ctx, node, true);
}
/* SWIGLU: y = silu(gate) * up. Errors as lc_cpu_op_geglu. */
lc_status lc_cpu_op_swiglu(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_glu_fwd(ctx, node, false);
}
/* SWIGLU_BACK: dgate (+)= dy * up * silu'(gate), dup (+)= dy * silu(gate). */
lc_status lc_cpu_op_swiglu_back(lc_cpu_ctx *ctx, const lc_node *node) {
    return ew_glu_back(ctx, node, false);
}
