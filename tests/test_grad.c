/* lorac — gradient tests (Check suite "grad"): lorac's backward (float, on every device) against
 * central finite differences of the double-precision plain-loop forward (tests/common/ref_ops.c):
 *   dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / 2h,   L = sum(seed * op(x))   (seed random)
 * first for every differentiable op on its own, then for a tiny two-layer LoRA transformer
 * (tests/common/toy_model.h) where dLoss/dA and dLoss/dB of every LoRA tensor are checked, with
 * dropout off and on (mask fixed by seed and step; the reference draws it with lc_rng_keep).
 *
 * Tolerance TOL_FD = 1e-4 on max|analytic - numeric| / max|numeric| per tensor: the numeric
 * gradient is computed in double with h = 1e-5 on O(1) inputs, so its truncation error
 * (h^2 f'''/6 ~ 1e-10) and rounding error (1e-16 / h ~ 1e-11) are negligible; the analytic one
 * comes from float kernels (~1e-6 relative, a little more through the toy model's ~40 nodes).
 * A wrong sign, factor, missing term or an overwritten accumulation gives errors >= 1e-2.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/lt_device.h"
#include "common/lt_graph.h"
#include "common/lt_util.h"
#include "common/ref_ops.h"
#include "common/toy_model.h"
#include "common/lt_suite.h"
#include "lorac/lorac.h"

#define TOL_FD 1e-4
#define FD_H 1e-5

enum gop { G_GET_ROWS, G_MUL_MAT, G_LORA, G_ADD, G_MUL, G_SCALE, G_RMS_NORM, G_ROPE, G_ATTENTION,
           G_GELU, G_SILU, G_GEGLU, G_SWIGLU, G_CE, G_SQUARE, G_CHAIN };

/* Everything the double forward of one case needs; in[] are the inputs being differentiated. */
typedef struct gctx {
    int op;
    double *in[3];
    int64_t nin[3];
    int64_t s[6];         /* sizes, per op */
    double *w;            /* lora base weight */
    double *mult;         /* lora dropout multiplier or NULL */
    const int32_t *iv;    /* ids / positions / labels */
    double f[3];          /* scale / eps / lora scaling / ce denominator */
    int ip[3];            /* rope n_rot, mode; ce ignore_index */
    float ff[2];          /* rope base, scale */
    ref_attn_shape at;
    double *seed, *out;
    int64_t nout;
} gctx;

static void gforward(gctx *c) {
    double **in = c->in;
    int64_t *s = c->s;
    switch (c->op) {
    case G_GET_ROWS: ref_get_rows(c->out, in[0], c->iv, s[0], s[2]); break;
    case G_MUL_MAT: ref_mul_mat(c->out, in[0], in[1], s[0], s[1], s[2]); break;
    case G_LORA: ref_lora(c->out, NULL, in[0], c->w, in[1], in[2], c->mult, c->f[0], s[0], s[1], s[2], s[3]); break;
    case G_ADD: case G_MUL: ref_binary(c->out, in[0], in[1], c->op == G_MUL, s[0], s[1], s[2], s[3]); break;
    case G_SCALE: for (int64_t i = 0; i < c->nout; i++) c->out[i] = in[0][i] * c->f[0]; break;
    case G_RMS_NORM: ref_rms_norm(c->out, in[0], in[1], s[0], s[1], s[2], c->f[1]); break;
    case G_ROPE:
        ref_rope(c->out, in[0], c->iv, s[0], s[1], s[2], c->ip[0], c->ip[1], c->ff[0], c->ff[1], false);
        break;
    case G_ATTENTION: ref_attention(c->out, NULL, in[0], in[1], in[2], &c->at); break;
    case G_GELU: for (int64_t i = 0; i < c->nout; i++) c->out[i] = ref_gelu_tanh(in[0][i]); break;
    case G_SILU: for (int64_t i = 0; i < c->nout; i++) c->out[i] = ref_silu(in[0][i]); break;
    case G_GEGLU: for (int64_t i = 0; i < c->nout; i++) c->out[i] = ref_gelu_tanh(in[0][i]) * in[1][i]; break;
    case G_SWIGLU: for (int64_t i = 0; i < c->nout; i++) c->out[i] = ref_silu(in[0][i]) * in[1][i]; break;
    case G_CE: ref_cross_entropy(c->out, NULL, in[0], c->iv, s[0], s[1], c->ip[2], c->f[2]); break;
    case G_SQUARE: for (int64_t i = 0; i < c->nout; i++) c->out[i] = in[0][i] * in[0][i]; break;
    case G_CHAIN: for (int64_t i = 0; i < c->nout; i++) c->out[i] = ref_silu(in[0][i]) + 0.7 * in[0][i]; break;
    default: break;
    }
}

static double gloss(gctx *c) {
    gforward(c);
    double L = 0.0;
    for (int64_t i = 0; i < c->nout; i++) L += c->seed[i] * c->out[i];
    return L;
}

/* Central differences of gloss with respect to every element of c->in[k]. */
static double *fd_grad(gctx *c, int k) {
    double *g = lt_dalloc(c->nin[k]);
    for (int64_t i = 0; i < c->nin[k]; i++) {
        double old = c->in[k][i];
        c->in[k][i] = old + FD_H;
        double lp = gloss(c);
        c->in[k][i] = old - FD_H;
        double lm = gloss(c);
        c->in[k][i] = old;
        g[i] = (lp - lm) / (2.0 * FD_H);
    }
    return g;
}

/* Backward of `out` with a random seed (or `fixed`), compute, compare each params[k]->grad with
 * central differences over c->in[k]. Ends the case. */
static void grad_check(lt_case *lc, gctx *c, lc_tensor *out, lc_tensor *const *params, const char *const *names,
                       int n, lt_rng *r, float fixed) {
    lt_report *rep = lc->env->rep;
    const double *seed = lt_case_backward(lc, out, r, fixed);
    if (seed && lt_case_compute(lc)) {
        c->nout = lc_nelements(out);
        c->seed = lt_dalloc(c->nout);
        memcpy(c->seed, seed, (size_t)c->nout * sizeof(double));
        c->out = lt_dalloc(c->nout);
        for (int k = 0; k < n; k++) {
            if (!lt_check(rep, params[k]->grad != NULL, "%s: %s has a gradient", lc->name, names[k])) continue;
            float *an = lt_read_f32(lc->env, params[k]->grad, names[k]);
            if (!an) continue;
            double *num = fd_grad(c, k);
            lt_check_err(rep, lt_max_rel(an, num, c->nin[k]), TOL_FD, "%s: d%s vs central differences", lc->name,
                         names[k]);
            free(an);
            free(num);
        }
        free(c->seed);
        free(c->out);
    }
    lt_case_end(lc);
}

/* Param tensor [ne0, ne1] with random values, and its double copy as input k of c. */
static lc_tensor *gparam(lt_env *e, gctx *c, int k, int64_t ne0, int64_t ne1, lt_rng *r, float lo, float hi,
                         const char *name) {
    float *v = lt_falloc(ne0 * ne1);
    lt_fill_uniform(r, v, ne0 * ne1, lo, hi);
    c->in[k] = lt_dup_d(v, ne0 * ne1);
    c->nin[k] = ne0 * ne1;
    lc_tensor *t = lt_new_f32(e, ne0, ne1, v, LC_TENSOR_PARAM, name);
    free(v);
    return t;
}

static void gfree(gctx *c) {
    for (int k = 0; k < 3; k++) free(c->in[k]);
    free(c->w);
    free(c->mult);
}

/* ---- every differentiable op ---------------------------------------------------------------- */
static void run_ops(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 77);
    lt_case lc;
    gctx c;
    lc_tensor *p[3], *out;

    /* get_rows, repeated ids */
    {
        static const int32_t ids[9] = {3, 0, 6, 3, 3, 1, 5, 0, 2};
        memset(&c, 0, sizeof c);
        c.op = G_GET_ROWS; c.s[0] = 5; c.s[1] = 7; c.s[2] = 9; c.iv = ids;
        lt_case_begin(&lc, &e, "get_rows E=5 V=7 N=9");
        p[0] = gparam(&e, &c, 0, 5, 7, &r, -1.0f, 1.2f, "table");
        out = lc_get_rows(lc.g, p[0], lt_new_i32(&e, 9, ids, "ids"));
        if (lt_case_built(&lc, out, "lc_get_rows")) grad_check(&lc, &c, out, p, (const char *[]){"table"}, 1, &r, 0);
        else lt_case_end(&lc);
        gfree(&c);
    }
    /* mul_mat */
    {
        memset(&c, 0, sizeof c);
        c.op = G_MUL_MAT; c.s[0] = 7; c.s[1] = 3; c.s[2] = 5;
        lt_case_begin(&lc, &e, "mul_mat K=7 M=3 N=5");
        p[0] = gparam(&e, &c, 0, 7, 3, &r, -1.0f, 1.2f, "x");
        p[1] = gparam(&e, &c, 1, 7, 5, &r, -0.8f, 1.0f, "w");
        out = lc_mul_mat(lc.g, p[0], p[1]);
        if (lt_case_built(&lc, out, "lc_mul_mat")) grad_check(&lc, &c, out, p, (const char *[]){"x", "w"}, 2, &r, 0);
        else lt_case_end(&lc);
        gfree(&c);
    }
    /* lora, dropout off and on */
    for (int d = 0; d < 2; d++) {
        const int64_t in = 7, o = 5, rk = 3, T = 4;
        lc_lora_params lp = {.scaling = 2.5f, .dropout = d ? 0.3f : 0.0f, .module_id = 9, .seed = 4242};
        memset(&c, 0, sizeof c);
        c.op = G_LORA; c.s[0] = in; c.s[1] = o; c.s[2] = rk; c.s[3] = T; c.f[0] = lp.scaling;
        float *w = lt_falloc(in * o);
        lt_fill_uniform(&r, w, in * o, -0.6f, 0.7f);
        c.w = lt_dup_d(w, in * o);
        if (d) {
            c.mult = lt_dalloc(in * T);
            ref_lora_dropout_mult(c.mult, lp.seed, 2, lp.module_id, lp.dropout, in, T);
        }
        lt_case_begin(&lc, &e, "lora in=7 out=5 r=3 T=4 dropout %g", lp.dropout);
        p[0] = gparam(&e, &c, 0, in, T, &r, -1.0f, 1.2f, "x");
        p[1] = gparam(&e, &c, 1, in, rk, &r, -0.4f, 0.5f, "lora_A");
        p[2] = gparam(&e, &c, 2, rk, o, &r, -0.6f, 0.5f, "lora_B");
        out = lc_lora(lc.g, p[0], lt_new_f32(&e, in, o, w, LC_TENSOR_FROZEN, "w"), p[1], p[2], &lp);
        lc_graph_set_step(lc.g, 2);
        if (lt_case_built(&lc, out, "lc_lora"))
            grad_check(&lc, &c, out, p, (const char *[]){"x", "lora_A", "lora_B"}, 3, &r, 0);
        else lt_case_end(&lc);
        free(w);
        gfree(&c);
    }
    /* add / mul with broadcast */
    {
        static const int64_t sh[][5] = {{G_ADD, 6, 4, 3, 2}, {G_MUL, 6, 4, 6, 1}, {G_MUL, 6, 4, 1, 4}, {G_MUL, 5, 3, 5, 3}};
        for (int i = 0; i < 4; i++) {
            memset(&c, 0, sizeof c);
            c.op = (int)sh[i][0];
            for (int k = 0; k < 4; k++) c.s[k] = sh[i][k + 1];
            lt_case_begin(&lc, &e, "%s a=[%lld,%lld] b=[%lld,%lld]", c.op == G_ADD ? "add" : "mul", (long long)c.s[0],
                          (long long)c.s[1], (long long)c.s[2], (long long)c.s[3]);
            p[0] = gparam(&e, &c, 0, c.s[0], c.s[1], &r, -1.0f, 1.3f, "a");
            p[1] = gparam(&e, &c, 1, c.s[2], c.s[3], &r, -0.9f, 1.1f, "b");
            out = c.op == G_ADD ? lc_add(lc.g, p[0], p[1]) : lc_mul(lc.g, p[0], p[1]);
            if (lt_case_built(&lc, out, "add/mul")) grad_check(&lc, &c, out, p, (const char *[]){"a", "b"}, 2, &r, 0);
            else lt_case_end(&lc);
            gfree(&c);
        }
    }
    /* scale */
    {
        memset(&c, 0, sizeof c);
        c.op = G_SCALE; c.f[0] = (double)-1.3f;
        lt_case_begin(&lc, &e, "scale [5,3] s=-1.3");
        p[0] = gparam(&e, &c, 0, 5, 3, &r, -1.0f, 1.3f, "x");
        out = lc_scale(lc.g, p[0], -1.3f);
        if (lt_case_built(&lc, out, "lc_scale")) grad_check(&lc, &c, out, p, (const char *[]){"x"}, 1, &r, 0);
        else lt_case_end(&lc);
        gfree(&c);
    }
    /* rms_norm: whole row and groups, with and without weight */
    {
        static const int64_t sh[][4] = {{8, 3, 0, 1}, {8, 3, 4, 1}, {6, 2, 0, 0}, {9, 2, 3, 0}};
        for (int i = 0; i < 4; i++) {
            int64_t n = sh[i][0], R = sh[i][1], grp = sh[i][2] ? sh[i][2] : n;
            bool wt = sh[i][3] != 0;
            memset(&c, 0, sizeof c);
            c.op = G_RMS_NORM; c.s[0] = n; c.s[1] = R; c.s[2] = grp; c.f[1] = (double)1e-5f;
            lt_case_begin(&lc, &e, "rms_norm n=%lld R=%lld group=%lld %s", (long long)n, (long long)R,
                          (long long)sh[i][2], wt ? "weight" : "no weight");
            p[0] = gparam(&e, &c, 0, n, R, &r, -1.0f, 1.5f, "x");
            p[1] = wt ? gparam(&e, &c, 1, grp, 1, &r, 0.5f, 1.5f, "w") : NULL;
            out = lc_rms_norm(lc.g, p[0], p[1], sh[i][2], 1e-5f);
            if (lt_case_built(&lc, out, "lc_rms_norm"))
                grad_check(&lc, &c, out, p, (const char *[]){"x", "w"}, wt ? 2 : 1, &r, 0);
            else lt_case_end(&lc);
            gfree(&c);
        }
    }
    /* rope NORM and NEOX, n_rot < head_dim */
    for (int mode = 0; mode <= 2; mode += 2) {
        static const int32_t pos[3] = {0, 5, 17};
        memset(&c, 0, sizeof c);
        c.op = G_ROPE; c.s[0] = 6; c.s[1] = 2; c.s[2] = 3; c.ip[0] = 4; c.ip[1] = mode; c.iv = pos;
        c.ff[0] = 100.0f; c.ff[1] = 0.5f;
        lt_case_begin(&lc, &e, "rope %s hd=6 heads=2 T=3 n_rot=4", mode ? "neox" : "norm");
        p[0] = gparam(&e, &c, 0, 12, 3, &r, -1.0f, 1.2f, "x");
        out = lc_rope(lc.g, p[0], lt_new_i32(&e, 3, pos, "pos"), 2, 4, mode, 100.0f, 0.5f);
        if (lt_case_built(&lc, out, "lc_rope")) grad_check(&lc, &c, out, p, (const char *[]){"x"}, 1, &r, 0);
        else lt_case_end(&lc);
        gfree(&c);
    }
    /* attention */
    {
        static const ref_attn_shape shapes[] = {{4, 4, 2, 2, 3, 5, true, 3, 0.5}, {4, 2, 1, 1, 4, 4, false, 0, 0.5},
                                                {2, 4, 1, 1, 3, 3, true, 0, 0.7}};
        for (int i = 0; i < 3; i++) {
            ref_attn_shape a = shapes[i];
            a.scale = (double)(float)a.scale;
            memset(&c, 0, sizeof c);
            c.op = G_ATTENTION; c.at = a;
            lc_attention_params ap = {.n_head = (int)a.n_head, .n_kv = (int)a.n_kv, .n_seq = (int)a.S,
                                      .causal = a.causal, .window = (int)a.window, .scale = (float)a.scale};
            lt_case_begin(&lc, &e, "attention hd=%lld heads=%lld/%lld S=%lld Tq=%lld Tk=%lld %s window=%lld",
                          (long long)a.hd, (long long)a.n_head, (long long)a.n_kv, (long long)a.S, (long long)a.Tq,
                          (long long)a.Tk, a.causal ? "causal" : "full", (long long)a.window);
            p[0] = gparam(&e, &c, 0, a.hd * a.n_head, a.Tq * a.S, &r, -1.5f, 2.0f, "q");
            p[1] = gparam(&e, &c, 1, a.hd * a.n_kv, a.Tk * a.S, &r, -1.5f, 2.0f, "k");
            p[2] = gparam(&e, &c, 2, a.hd * a.n_kv, a.Tk * a.S, &r, -1.0f, 1.2f, "v");
            out = lc_attention(lc.g, p[0], p[1], p[2], &ap);
            if (lt_case_built(&lc, out, "lc_attention"))
                grad_check(&lc, &c, out, p, (const char *[]){"q", "k", "v"}, 3, &r, 0);
            else lt_case_end(&lc);
            gfree(&c);
        }
    }
    /* activations */
    {
        static const char *const nm[] = {"gelu_tanh", "silu", "geglu", "swiglu"};
        for (int op = G_GELU; op <= G_SWIGLU; op++) {
            bool gated = op >= G_GEGLU;
            memset(&c, 0, sizeof c);
            c.op = op;
            lt_case_begin(&lc, &e, "%s [7,3]", nm[op - G_GELU]);
            p[0] = gparam(&e, &c, 0, 7, 3, &r, -4.0f, 4.5f, gated ? "gate" : "x");
            p[1] = gated ? gparam(&e, &c, 1, 7, 3, &r, -1.5f, 1.0f, "up") : NULL;
            out = op == G_GELU ? lc_gelu_tanh(lc.g, p[0]) : op == G_SILU ? lc_silu(lc.g, p[0])
                  : op == G_GEGLU ? lc_geglu(lc.g, p[0], p[1]) : lc_swiglu(lc.g, p[0], p[1]);
            if (lt_case_built(&lc, out, nm[op - G_GELU]))
                grad_check(&lc, &c, out, p, gated ? (const char *[]){"gate", "up"} : (const char *[]){"x"}, gated ? 2 : 1,
                           &r, 0);
            else lt_case_end(&lc);
            gfree(&c);
        }
    }
    /* cross_entropy: ignore index, out-of-range label, denominator override */
    for (int d = 0; d < 2; d++) {
        static const int32_t labels[6] = {3, -100, 8, 9, 0, 5}; /* -100 ignored, 9 >= V */
        memset(&c, 0, sizeof c);
        c.op = G_CE; c.s[0] = 9; c.s[1] = 6; c.iv = labels; c.ip[2] = -100; c.f[2] = d ? 10.0 : 0.0;
        lt_case_begin(&lc, &e, "cross_entropy V=9 N=6 denom=%g", c.f[2]);
        p[0] = gparam(&e, &c, 0, 9, 6, &r, -3.0f, 3.5f, "logits");
        out = lc_cross_entropy(lc.g, p[0], lt_new_i32(&e, 6, labels, "labels"), -100);
        if (lt_case_built(&lc, out, "lc_cross_entropy")) {
            if (d) lc_tensor_node(out)->fp[0] = 10.0f;
            grad_check(&lc, &c, out, p, (const char *[]){"logits"}, 1, &r, 0.6f);
        } else {
            lt_case_end(&lc);
        }
        gfree(&c);
    }
    /* a tensor used twice: gradients from both uses must add up */
    {
        memset(&c, 0, sizeof c);
        c.op = G_SQUARE;
        lt_case_begin(&lc, &e, "mul(x, x) [5,3]");
        p[0] = gparam(&e, &c, 0, 5, 3, &r, -1.0f, 1.3f, "x");
        out = lc_mul(lc.g, p[0], p[0]);
        if (lt_case_built(&lc, out, "lc_mul")) grad_check(&lc, &c, out, p, (const char *[]){"x"}, 1, &r, 0);
        else lt_case_end(&lc);
        gfree(&c);
        memset(&c, 0, sizeof c);
        c.op = G_CHAIN;
        lt_case_begin(&lc, &e, "add(silu(x), scale(x, 0.7)) [5,3]");
        p[0] = gparam(&e, &c, 0, 5, 3, &r, -2.0f, 2.3f, "x");
        out = lc_add(lc.g, lc_silu(lc.g, p[0]), lc_scale(lc.g, p[0], 0.7f));
        if (lt_case_built(&lc, out, "chain")) grad_check(&lc, &c, out, p, (const char *[]){"x"}, 1, &r, 0);
        else lt_case_end(&lc);
        gfree(&c);
    }
    lt_env_free(&e);
}

/* ---- the toy transformer ------------------------------------------------------------------- */
typedef struct toy_variant {
    bool tied;
    float dropout;
} toy_variant;

static void run_toy(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info;
    const toy_variant *tv = user;
    toy_config cfg = toy_default_config();
    cfg.tied = tv->tied;
    cfg.dropout = tv->dropout;
    toy_model m;
    toy_init(&m, &cfg);
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_case lc;
    lt_case_begin(&lc, &e, "toy %s dropout=%g", cfg.tied ? "tied" : "untied", cfg.dropout);
    lc_tensor *loss = toy_build(&m, &e, lc.g);
    if (lt_case_built(&lc, loss, "toy_build")) {
        lc_graph_set_output(lc.g, loss);
        lc.ok = lt_check_ok(rep, lc_graph_backward(lc.g, loss, NULL), "%s: lc_graph_backward(seed NULL)", lc.name);
    }
    if (lt_case_compute(&lc)) {
        double *A[TOY_MAX_LORA], *B[TOY_MAX_LORA];
        for (int i = 0; i < m.n_lora; i++) {
            A[i] = lt_dup_d(m.lora[i].A, m.lora[i].in * m.lora[i].r);
            B[i] = lt_dup_d(m.lora[i].B, m.lora[i].r * m.lora[i].out);
        }
        double ref = toy_ref_loss(&m, A, B);
        float *got = lt_read_f32(&e, loss, "loss");
        if (got) lt_check_err(rep, fabs(got[0] - ref) / fabs(ref), 1e-5, "%s: loss %.7g vs reference %.7g", lc.name, got[0], ref);
        free(got);
        double worst = 0.0;
        for (int i = 0; i < m.n_lora; i++) {
            toy_lora *L = &m.lora[i];
            for (int ab = 0; ab < 2; ab++) {
                lc_tensor *t = ab ? L->tB : L->tA;
                double *vals = ab ? B[i] : A[i];
                int64_t n = ab ? L->r * L->out : L->in * L->r;
                if (!lt_check(rep, t && t->grad, "%s: %s.%s has a gradient", lc.name, L->name, ab ? "lora_B" : "lora_A"))
                    continue;
                float *an = lt_read_f32(&e, t->grad, L->name);
                if (!an) continue;
                double *num = lt_dalloc(n);
                for (int64_t j = 0; j < n; j++) {
                    double old = vals[j];
                    vals[j] = old + FD_H;
                    double lp = toy_ref_loss(&m, A, B);
                    vals[j] = old - FD_H;
                    double lm = toy_ref_loss(&m, A, B);
                    vals[j] = old;
                    num[j] = (lp - lm) / (2.0 * FD_H);
                }
                double err = lt_max_rel(an, num, n);
                if (err > worst) worst = err;
                lt_check_err(rep, err, TOL_FD, "%s: dLoss/d%s.%s (max |grad| %.3g)", lc.name, L->name,
                             ab ? "lora_B" : "lora_A", lt_max_abs_d(num, n));
                lt_check(rep, lt_max_abs_d(num, n) > 0.0, "%s: %s.%s gradient is not identically zero", lc.name,
                         L->name, ab ? "lora_B" : "lora_A");
                free(an);
                free(num);
            }
        }
        lt_log("  %s: loss %.6f, %d LoRA modules, max gradient error %.3g\n", lc.name, ref, m.n_lora, worst);
        for (int i = 0; i < m.n_lora; i++) {
            free(A[i]);
            free(B[i]);
        }
    }
    lt_case_end(&lc);
    lt_env_free(&e);
    toy_free(&m);
}

START_TEST(test_ops_fd) { ck_assert_int_eq(lt_for_each_device("grad.ops", run_ops, NULL), 0); }
END_TEST

static const toy_variant toy_variants[] = {{true, 0.0f}, {true, 0.2f}, {false, 0.0f}, {false, 0.3f}};

START_TEST(test_toy_fd) {
    char name[64];
    snprintf(name, sizeof name, "grad.toy_%s_dropout%g", toy_variants[_i].tied ? "tied" : "untied",
             toy_variants[_i].dropout);
    ck_assert_int_eq(lt_for_each_device(name, run_toy, (void *)&toy_variants[_i]), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_ops_fd);
    suite_add_tcase(s, tc);
    tc = tcase_create("toy_transformer");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_toy_fd, 0, (int)(sizeof toy_variants / sizeof toy_variants[0]));
    suite_add_tcase(s, tc);
    const int failed = lt_run_suite(s);
    return failed == 0 ? 0 : 1;
}
