/* lorac — LoRA math tests (Check suite "lora"): the fault classes of TESTCASES.md "LoRA math and
 * adapters" that need no file format, on every device.
 *
 * Semantics (reference/peft-lora.md §1, Hu et al. arXiv:2106.09685, rsLoRA arXiv:2312.03732):
 * lora_A is PyTorch [r, in] (lorac ne {in, r}), lora_B is PyTorch [out, r] (ne {r, out}),
 * y = W x + s · B (A drop(x)), ΔW = s · B·A ([out, in], ne {in, out}), s = lora_alpha / r or
 * lora_alpha / sqrt(r). Expected values are worked out by hand or with plain loops written in
 * PyTorch index order here, never taken from lorac.
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
#include "common/ref_quant.h"
#include "common/toy_model.h"
#include "common/lt_suite.h"
#include "lorac/lorac.h"

/* ---- scaling: alpha/r (rsLoRA alpha/sqrt(r)), after B, applied once ---------------------------- */
static void run_scaling(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    /* lc_lora_scaling by hand. */
    lt_check(rep, lc_lora_scaling(4, 6.0f, false) == 1.5f, "lc_lora_scaling(r=4, alpha=6) = 1.5 (got %g)",
             lc_lora_scaling(4, 6.0f, false));
    lt_check(rep, lc_lora_scaling(4, 6.0f, true) == 3.0f, "lc_lora_scaling(r=4, alpha=6, rslora) = 3 (got %g)",
             lc_lora_scaling(4, 6.0f, true));
    lt_check(rep, lc_lora_scaling(16, 32.0f, true) == 8.0f, "rslora r=16 alpha=32 -> 8 (got %g)",
             lc_lora_scaling(16, 32.0f, true));
    lt_check(rep, lc_lora_scaling(8, 16.0f, false) == 2.0f, "r=8 alpha=16 -> 2 (got %g)", lc_lora_scaling(8, 16.0f, false));
    lt_check(rep, lc_lora_scaling(0, 16.0f, false) == 0.0f && lc_lora_scaling(-2, 16.0f, true) == 0.0f,
             "r <= 0 gives scaling 0");
    lt_check(rep, fabsf(lc_lora_scaling(3, 1.0f, true) - (float)(1.0 / sqrt(3.0))) <= 1e-7f, "rslora r=3 alpha=1");

    /* in = 3, out = 2, r = 4, lora_alpha = 6, T = 1. PyTorch layouts:
     *   x = (1, 2, 3); W [2,3] = [[1,0,0],[0,1,0]] -> W x = (1, 2)
     *   A [4,3] all 0.5 -> A x = (3, 3, 3, 3); B [2,4] rows 0.25 and 0.5 -> B A x = (3, 6)
     *   s = 6/4 = 1.5: y = (1 + 4.5, 2 + 9) = (5.5, 11)
     *   rsLoRA s = 6/2 = 3: y = (10, 20)
     * Faults give: alpha alone (19, 38); no scaling (4, 8); scaling twice (7.75, 15.5). */
    float x[3] = {1, 2, 3}, W[6] = {1, 0, 0, 0, 1, 0}, A[12], B[8];
    for (int i = 0; i < 12; i++) A[i] = 0.5f;
    for (int j = 0; j < 4; j++) {
        B[0 * 4 + j] = 0.25f;
        B[1 * 4 + j] = 0.5f;
    }
    static const double expect[2][2] = {{5.5, 11.0}, {10.0, 20.0}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    for (int rs = 0; rs < 2; rs++) {
        float s = lc_lora_scaling(4, 6.0f, rs != 0);
        lc_lora_params lp = {.scaling = s, .dropout = 0.0f, .module_id = 1, .seed = 1};
        lt_case c;
        lt_case_begin(&c, &e, "lora forward, r=4 alpha=6%s", rs ? " rslora" : "");
        lc_tensor *tx = lt_new_f32(&e, 3, 1, x, 0, "x");
        lc_tensor *tw = lt_new_f32(&e, 3, 2, W, LC_TENSOR_FROZEN, "w");
        lc_tensor *ta = lt_new_f32(&e, 3, 4, A, LC_TENSOR_PARAM, "lora_A");
        lc_tensor *tb = lt_new_f32(&e, 4, 2, B, LC_TENSOR_PARAM, "lora_B");
        lc_tensor *y = lc_lora(c.g, tx, tw, ta, tb, &lp);
        if (lt_case_built(&c, y, "lc_lora")) lt_case_expect(&c, y, expect[rs], 0.0, "y (exact)");
        lt_case_run(&c);
        /* The merged weight gives the same output. */
        if (tw && ta && tb && lt_check_ok(rep, lc_lora_merge(tw, ta, tb, s), "lc_lora_merge s=%g", s)) {
            lt_case_begin(&c, &e, "mul_mat with merged w, r=4 alpha=6%s", rs ? " rslora" : "");
            lc_tensor *y2 = lc_mul_mat(c.g, tx, tw);
            if (lt_case_built(&c, y2, "lc_mul_mat")) lt_case_expect(&c, y2, expect[rs], 0.0, "y (exact)");
            lt_case_run(&c);
        }
    }
    lt_env_free(&e);
}

/* ---- orientation: A [r, in], B [out, r] with non-square, non-symmetric values ------------------ */
static void run_orientation(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    enum { R = 3, IN = 5, OUT = 7, T = 2 };
    /* PyTorch-layout arrays, filled with small distinct dyadic values so every sum is exact. */
    float A[R][IN], B[OUT][R], W[OUT][IN], x[T][IN];
    for (int j = 0; j < R; j++)
        for (int i = 0; i < IN; i++) A[j][i] = (float)((j + 1) * 8 + i * 3 - 9) / 16.0f;
    for (int o = 0; o < OUT; o++)
        for (int j = 0; j < R; j++) B[o][j] = (float)(o * 5 - j * 7 + 2) / 32.0f;
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) W[o][i] = (float)(o * IN + i) / 64.0f - 0.25f;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < IN; i++) x[t][i] = (float)(i + 1 + 2 * t) / 4.0f;
    const float s = 2.0f;
    /* ΔW[o][i] = s Σ_j B[o][j] A[j][i]; merged W' = W + ΔW; y[t][o] = Σ_i W'[o][i] x[t][i]. */
    double merged[OUT * IN], y[T * OUT], wrong[OUT * IN];
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double d = 0.0;
            for (int j = 0; j < R; j++) d += (double)B[o][j] * A[j][i];
            merged[o * IN + i] = W[o][i] + s * d;
        }
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OUT; o++) {
            double acc = 0.0;
            for (int i = 0; i < IN; i++) acc += merged[o * IN + i] * x[t][i];
            y[t * OUT + o] = acc;
        }
    /* The test must be able to fail: a merge that reads A as [in, r] (transposed) differs. */
    const float *Af = &A[0][0];
    double diff = 0.0;
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double d = 0.0;
            for (int j = 0; j < R; j++) d += (double)B[o][j] * Af[i * R + j];
            wrong[o * IN + i] = W[o][i] + s * d;
            diff = fmax(diff, fabs(wrong[o * IN + i] - merged[o * IN + i]));
        }
    lt_check(rep, diff > 0.1, "orientation fixture discriminates a transposed A (max diff %g)", diff);

    lt_env e;
    lt_env_init(&e, dev, rep);
    /* lorac tensors hold the PyTorch bytes: ne {IN, R}, {R, OUT}, {IN, OUT}, {IN, T}. */
    lc_tensor *ta = lt_new_f32(&e, IN, R, &A[0][0], 0, "lora_A");
    lc_tensor *tb = lt_new_f32(&e, R, OUT, &B[0][0], 0, "lora_B");
    lc_tensor *tw = lt_new_f32(&e, IN, OUT, &W[0][0], LC_TENSOR_FROZEN, "w");
    lc_tensor *tx = lt_new_f32(&e, IN, T, &x[0][0], 0, "x");
    /* Unmerged forward. */
    lc_lora_params lp = {.scaling = s, .dropout = 0.0f, .module_id = 3, .seed = 5};
    lt_case c;
    lt_case_begin(&c, &e, "lora forward r=3 in=5 out=7");
    lc_tensor *ty = lc_lora(c.g, tx, tw, ta, tb, &lp);
    if (lt_case_built(&c, ty, "lc_lora")) lt_case_expect(&c, ty, y, 1e-6, "y");
    lt_case_run(&c);
    /* Merge: exact (dyadic values). */
    if (tw && ta && tb && lt_check_ok(rep, lc_lora_merge(tw, ta, tb, s), "lc_lora_merge r=3 in=5 out=7")) {
        float *got = lt_read_f32(&e, tw, "w");
        if (got) {
            lt_check_err(rep, lt_max_rel(got, merged, OUT * IN), 0.0, "merged W = W + s·B·A (PyTorch [out,in])");
            float g32[OUT * IN];
            memcpy(g32, got, sizeof g32);
            lt_check(rep, lt_max_rel(g32, wrong, OUT * IN) > 1e-2, "merged W is not the transposed-A result");
        }
        free(got);
        /* Merged forward = unmerged forward. */
        lt_case_begin(&c, &e, "mul_mat with merged w r=3 in=5 out=7");
        lc_tensor *y2 = lc_mul_mat(c.g, tx, tw);
        if (lt_case_built(&c, y2, "lc_mul_mat")) lt_case_expect(&c, y2, y, 1e-6, "y");
        lt_case_run(&c);
    }
    /* The same merge through the graph op. */
    lc_tensor *tw2 = lt_new_f32(&e, IN, OUT, &W[0][0], LC_TENSOR_FROZEN, "w2");
    lt_case_begin(&c, &e, "lc_lora_merge_op r=3 in=5 out=7");
    c.no_replay = true;
    lc_tensor *res = lc_lora_merge_op(c.g, tw2, ta, tb, s);
    if (lt_case_built(&c, res, "lc_lora_merge_op") && lt_case_compute(&c)) {
        float *got = lt_read_f32(&e, tw2, "w2");
        if (got) lt_check_err(rep, lt_max_rel(got, merged, OUT * IN), 0.0, "merge op: W + s·B·A");
        free(got);
    }
    lt_case_end(&c);
    lt_env_free(&e);
}

/* ---- merge then unmerge; merged vs unmerged forward; low precision loss ------------------------- */
static double fmt_ulp(lc_dtype dt, double v) {
    int mant = dt == LC_F16 ? 10 : dt == LC_BF16 ? 7 : 23, emin = dt == LC_F16 ? -14 : -126, ex;
    frexp(fabs(v) > 0 ? fabs(v) : ldexp(1.0, emin), &ex);
    return ldexp(1.0, (ex - 1 < emin ? emin : ex - 1) - mant);
}

static void run_merge_unmerge(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const lc_dtype types[] = {LC_F32, LC_F16, LC_BF16};
    const int64_t in = 257, out = 31, rk = 8, T = 7;
    const float s = lc_lora_scaling((int)rk, 16.0f, false);
    lt_rng r;
    lt_rng_seed(&r, 31337);
    lt_env e;
    lt_env_init(&e, dev, rep);
    for (int ti = 0; ti < 3; ti++) {
        lc_dtype dt = types[ti];
        float *w0 = lt_falloc(in * out), *A = lt_falloc(in * rk), *B = lt_falloc(rk * out), *x = lt_falloc(in * T);
        lt_fill_uniform(&r, w0, in * out, -0.5f, 0.6f);
        lt_fill_uniform(&r, A, in * rk, -0.06f, 0.07f);
        lt_fill_uniform(&r, B, rk * out, -0.2f, 0.3f);
        lt_fill_uniform(&r, x, in * T, -1.0f, 1.2f);
        lc_tensor *tw = NULL;
        {
            int64_t ne[2] = {in, out};
            if (lt_check_ok(rep, lc_tensor_new(dev, dt, 2, ne, "w", LC_TENSOR_FROZEN, &tw), "tensor_new %s", lc_dtype_name(dt)))
                lt_check_ok(rep, lc_tensor_set_f32(tw, w0, in * out), "set_f32 w");
        }
        lc_tensor *ta = lt_new_f32(&e, in, rk, A, LC_TENSOR_PARAM, "lora_A");
        lc_tensor *tb = lt_new_f32(&e, rk, out, B, LC_TENSOR_PARAM, "lora_B");
        lc_tensor *tx = lt_new_f32(&e, in, T, x, 0, "x");
        float *wbase = tw ? lt_read_f32(&e, tw, "w") : NULL; /* W as stored in dt */
        if (wbase && ta && tb && tx) {
            /* Unmerged forward with the stored W. */
            double *wd = lt_dup_d(wbase, in * out), *Ad = lt_dup_d(A, in * rk), *Bd = lt_dup_d(B, rk * out);
            double *xd = lt_dup_d(x, in * T), *y = lt_dalloc(out * T);
            ref_lora(y, NULL, xd, wd, Ad, Bd, NULL, s, in, out, rk, T);
            lc_lora_params lp = {.scaling = s, .module_id = 1, .seed = 1};
            lt_case c;
            lt_case_begin(&c, &e, "lora forward %s w", lc_dtype_name(dt));
            lc_tensor *ty = lc_lora(c.g, tx, tw, ta, tb, &lp);
            if (lt_case_built(&c, ty, "lc_lora")) lt_case_expect(&c, ty, y, 1e-5, "y");
            lt_case_run(&c);
            /* Merge, then the merged forward. */
            if (lt_check_ok(rep, lc_lora_merge(tw, ta, tb, s), "merge %s", lc_dtype_name(dt))) {
                lt_case_begin(&c, &e, "mul_mat with merged %s w", lc_dtype_name(dt));
                lc_tensor *y2 = lc_mul_mat(c.g, tx, tw);
                lc_graph_set_output(c.g, y2);
                if (lt_case_built(&c, y2, "lc_mul_mat") && lt_case_compute(&c)) {
                    float *g2 = lt_read_f32(&e, y2, "y merged");
                    if (g2) {
                        double err = lt_max_rel(g2, y, out * T);
                        /* F32: agree to float rounding. F16/BF16: the merged weight is rounded to
                         * the format, so report the loss and bound it by a few units of the format. */
                        double tol = dt == LC_F32 ? 1e-5 : dt == LC_F16 ? 4e-3 : 3e-2;
                        lt_check_err(rep, err, tol, "merged (%s) vs unmerged forward", lc_dtype_name(dt));
                        lt_log("  merged vs unmerged forward, %s weight: max_rel %.3g\n", lc_dtype_name(dt), err);
                    }
                    free(g2);
                }
                lt_case_end(&c);
                /* Unmerge restores W. */
                if (lt_check_ok(rep, lc_lora_merge(tw, ta, tb, -s), "unmerge %s", lc_dtype_name(dt))) {
                    float *back = lt_read_f32(&e, tw, "w after unmerge");
                    double *delta = lt_dalloc(in * out);
                    ref_lora_delta(delta, Ad, Bd, s, in, out, rk);
                    if (back) {
                        double worst_ulps = 0.0, worst_abs = 0.0;
                        for (int64_t i = 0; i < in * out; i++) {
                            double d = fabs((double)back[i] - wbase[i]);
                            double scale = fmax(fabs(wd[i]), fabs(wd[i] + delta[i]));
                            worst_abs = fmax(worst_abs, d);
                            worst_ulps = fmax(worst_ulps, d / fmt_ulp(dt, scale));
                        }
                        /* Two roundings into dt (merge, unmerge), each at most half a unit of the
                         * format at max(|W|, |W+ΔW|), plus F32 rounding of the delta. */
                        lt_check_err(rep, worst_ulps, dt == LC_F32 ? 2.0 : 1.0 + 1e-3,
                                     "merge then unmerge restores %s W (units of the format)", lc_dtype_name(dt));
                        lt_log("  merge+unmerge %s: max |W - W0| = %.3g (%.3g units of %s)\n", lc_dtype_name(dt),
                               worst_abs, worst_ulps, lc_dtype_name(dt));
                    }
                    free(back);
                    free(delta);
                }
            }
            free(wd); free(Ad); free(Bd); free(xd); free(y);
        }
        free(wbase);
        lc_tensor_free(tw);
        free(w0); free(A); free(B); free(x);
    }
    lt_env_free(&e);
}

/* ---- per-module rank / alpha ------------------------------------------------------------------ */
static void run_per_module(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    /* Module 1: r = 2, alpha = 16 -> 8.  Module 2: r = 8, alpha = 4 -> 0.5.  Module 3: rsLoRA r = 4,
     * alpha = 2 -> 1. The second consumes the first's output, the third the input again. */
    static const struct { int r; float alpha; bool rs; double s; } mods[3] = {
        {2, 16.0f, false, 8.0}, {8, 4.0f, false, 0.5}, {4, 2.0f, true, 1.0}};
    const int64_t d0 = 13, d1 = 11, T = 3;
    const int64_t ins[3] = {d0, d1, d0}, outs[3] = {d1, d0, d1};
    lt_rng r;
    lt_rng_seed(&r, 99);
    lt_env e;
    lt_env_init(&e, dev, rep);
    float *x = lt_falloc(d0 * T);
    lt_fill_uniform(&r, x, d0 * T, -1.0f, 1.1f);
    double *xd = lt_dup_d(x, d0 * T), *y[3], *wrong = lt_dalloc(d0 * T);
    float *W[3], *A[3], *B[3];
    double *Wd[3], *Ad[3], *Bd[3];
    lc_tensor *tw[3], *ta[3], *tb[3], *ty[3] = {NULL, NULL, NULL};
    lt_case c;
    lt_case_begin(&c, &e, "three LoRA modules with their own r / alpha");
    lc_tensor *tx = lt_new_f32(&e, d0, T, x, 0, "x");
    for (int k = 0; k < 3; k++) {
        int64_t in = ins[k], out = outs[k], rk = mods[k].r;
        W[k] = lt_falloc(in * out); A[k] = lt_falloc(in * rk); B[k] = lt_falloc(rk * out);
        lt_fill_uniform(&r, W[k], in * out, -0.3f, 0.35f);
        lt_fill_uniform(&r, A[k], in * rk, -0.3f, 0.35f);
        lt_fill_uniform(&r, B[k], rk * out, -0.3f, 0.4f);
        Wd[k] = lt_dup_d(W[k], in * out); Ad[k] = lt_dup_d(A[k], in * rk); Bd[k] = lt_dup_d(B[k], rk * out);
        y[k] = lt_dalloc(out * T);
        float s = lc_lora_scaling(mods[k].r, mods[k].alpha, mods[k].rs);
        lt_check(rep, s == (float)mods[k].s, "module %d: lc_lora_scaling(r=%d, alpha=%g%s) = %g (got %g)", k + 1,
                 mods[k].r, mods[k].alpha, mods[k].rs ? ", rslora" : "", mods[k].s, s);
        tw[k] = lt_new_f32(&e, in, out, W[k], LC_TENSOR_FROZEN, "w");
        ta[k] = lt_new_f32(&e, in, rk, A[k], LC_TENSOR_PARAM, "lora_A");
        tb[k] = lt_new_f32(&e, rk, out, B[k], LC_TENSOR_PARAM, "lora_B");
        lc_lora_params lp = {.scaling = s, .module_id = (uint32_t)(k + 1), .seed = 7};
        ty[k] = lc_lora(c.g, k == 1 ? ty[0] : tx, tw[k], ta[k], tb[k], &lp);
        ref_lora(y[k], NULL, k == 1 ? y[0] : xd, Wd[k], Ad[k], Bd[k], NULL, mods[k].s, in, out, rk, T);
    }
    /* What module 2 would give with module 1's scale: the test must tell them apart. */
    ref_lora(wrong, NULL, y[0], Wd[1], Ad[1], Bd[1], NULL, mods[0].s, d1, d0, mods[1].r, T);
    float *wf = lt_falloc(d0 * T);
    for (int64_t i = 0; i < d0 * T; i++) wf[i] = (float)wrong[i];
    lt_check(rep, lt_max_rel(wf, y[1], d0 * T) > 1e-2, "fixture discriminates a shared scale");
    free(wf);
    if (lt_case_built(&c, ty[2], "lc_lora x3"))
        for (int k = 0; k < 3; k++) lt_case_expect(&c, ty[k], y[k], 1e-5, k == 0 ? "y1" : k == 1 ? "y2" : "y3");
    lt_case_run(&c);
    /* Merging each with its own scale reproduces each module's forward. */
    for (int k = 0; k < 3; k++) {
        float s = lc_lora_scaling(mods[k].r, mods[k].alpha, mods[k].rs);
        if (!tw[k] || !lt_check_ok(rep, lc_lora_merge(tw[k], ta[k], tb[k], s), "merge module %d", k + 1)) continue;
        double *mw = lt_dalloc(ins[k] * outs[k]), *dl = lt_dalloc(ins[k] * outs[k]);
        ref_lora_delta(dl, Ad[k], Bd[k], mods[k].s, ins[k], outs[k], mods[k].r);
        for (int64_t i = 0; i < ins[k] * outs[k]; i++) mw[i] = Wd[k][i] + dl[i];
        float *got = lt_read_f32(&e, tw[k], "merged w");
        if (got)
            lt_check_err(rep, lt_max_rel(got, mw, ins[k] * outs[k]), 1e-6, "module %d merged with its own scale %g",
                         k + 1, mods[k].s);
        free(got); free(mw); free(dl);
    }
    for (int k = 0; k < 3; k++) {
        free(W[k]); free(A[k]); free(B[k]); free(Wd[k]); free(Ad[k]); free(Bd[k]); free(y[k]);
    }
    free(x); free(xd); free(wrong);
    lt_env_free(&e);
}

/* ---- lc_lora_init ----------------------------------------------------------------------------- */
static void run_init(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    lt_env e;
    lt_env_init(&e, dev, rep);
    static const int64_t shapes[][3] = {{5, 3, 7}, {1024, 64, 3}, {1, 1, 1}}; /* in, r, out */
    for (int si = 0; si < 3; si++) {
        int64_t in = shapes[si][0], rk = shapes[si][1], out = shapes[si][2], n = in * rk;
        float *ones = lt_falloc(rk * out);
        for (int64_t i = 0; i < rk * out; i++) ones[i] = 1.0f;
        lc_tensor *ta = lt_new_f32(&e, in, rk, NULL, LC_TENSOR_PARAM, "lora_A");
        lc_tensor *tb = lt_new_f32(&e, rk, out, ones, LC_TENSOR_PARAM, "lora_B"); /* non-zero before init */
        lc_tensor *ta2 = lt_new_f32(&e, in, rk, NULL, LC_TENSOR_PARAM, "lora_A2");
        lc_tensor *tb2 = lt_new_f32(&e, rk, out, NULL, LC_TENSOR_PARAM, "lora_B2");
        free(ones);
        if (!(ta && tb && ta2 && tb2)) continue;
        if (!lt_check_ok(rep, lc_lora_init(ta, tb, 1234, 7), "lc_lora_init in=%lld r=%lld", (long long)in, (long long)rk))
            continue;
        float *a = lt_read_f32(&e, ta, "A"), *b = lt_read_f32(&e, tb, "B");
        if (!a || !b) {
            free(a); free(b);
            continue;
        }
        double bound = 1.0 / sqrt((double)in), mx = 0.0, mean = 0.0, var = 0.0;
        int64_t outside = 0, nonzero_b = 0, hist[10] = {0};
        for (int64_t i = 0; i < n; i++) {
            double v = a[i];
            outside += fabs(v) > bound * (1.0 + 1e-6);
            mx = fmax(mx, fabs(v));
            mean += v;
            int bin = (int)floor((v / bound + 1.0) * 5.0);
            hist[bin < 0 ? 0 : bin > 9 ? 9 : bin]++;
        }
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) var += (a[i] - mean) * (a[i] - mean);
        var /= (double)n;
        for (int64_t i = 0; i < rk * out; i++) nonzero_b += b[i] != 0.0f;
        lt_check(rep, outside == 0, "init in=%lld: all of A within ±1/sqrt(in) = %.4g (%lld outside, max %.4g)",
                 (long long)in, bound, (long long)outside, mx);
        lt_check(rep, nonzero_b == 0, "init: lora_B == 0 (%lld non-zero)", (long long)nonzero_b);
        if (n >= 1000) {
            /* U(-b, b): mean 0 (sd b/sqrt(3n)), variance b^2/3, flat histogram. 5-sigma bounds. */
            double sd_mean = bound / sqrt(3.0 * (double)n);
            lt_check(rep, fabs(mean) < 5.0 * sd_mean, "init: mean %.3g within 5 sd (%.3g) of 0", mean, sd_mean);
            lt_check_err(rep, fabs(var / (bound * bound / 3.0) - 1.0), 0.03, "init: variance %.4g vs b^2/3 = %.4g", var,
                         bound * bound / 3.0);
            lt_check(rep, mx > 0.99 * bound, "init: values reach the bound (max %.4g of %.4g)", mx, bound);
            double expect = (double)n / 10.0, sd = sqrt(expect * 0.9);
            for (int k = 0; k < 10; k++)
                lt_check(rep, fabs((double)hist[k] - expect) < 5.0 * sd, "init: histogram bin %d has %lld (expected %.0f)",
                         k, (long long)hist[k], expect);
        }
        /* Deterministic per seed; different for another seed or module. */
        float *a2 = NULL;
        if (lt_check_ok(rep, lc_lora_init(ta2, tb2, 1234, 7), "init again") && (a2 = lt_read_f32(&e, ta2, "A2")))
            lt_check(rep, memcmp(a, a2, (size_t)n * 4) == 0, "init: same seed and module give identical A");
        free(a2);
        a2 = NULL;
        if (n > 1 && lt_check_ok(rep, lc_lora_init(ta2, tb2, 1235, 7), "init seed 1235") &&
            (a2 = lt_read_f32(&e, ta2, "A2")))
            lt_check(rep, memcmp(a, a2, (size_t)n * 4) != 0, "init: another seed gives another A");
        free(a2);
        a2 = NULL;
        if (n > 1 && lt_check_ok(rep, lc_lora_init(ta2, tb2, 1234, 8), "init module 8") &&
            (a2 = lt_read_f32(&e, ta2, "A2")))
            lt_check(rep, memcmp(a, a2, (size_t)n * 4) != 0, "init: another module id gives another A");
        free(a2);
        /* A fresh adapter is a no-op: lora(x) == mul_mat(x, W). */
        {
            lt_rng r;
            lt_rng_seed(&r, 5 + si);
            int64_t T = 4;
            float *x = lt_falloc(in * T), *w = lt_falloc(in * out);
            lt_fill_uniform(&r, x, in * T, -1.0f, 1.0f);
            lt_fill_uniform(&r, w, in * out, -0.5f, 0.6f);
            double *xd = lt_dup_d(x, in * T), *wd = lt_dup_d(w, in * out), *y = lt_dalloc(out * T);
            ref_mul_mat(y, xd, wd, in, T, out);
            lc_lora_params lp = {.scaling = 2.0f, .dropout = 0.1f, .module_id = 7, .seed = 1234};
            lt_case c;
            lt_case_begin(&c, &e, "fresh adapter in=%lld r=%lld out=%lld", (long long)in, (long long)rk, (long long)out);
            lc_tensor *ty = lc_lora(c.g, lt_new_f32(&e, in, T, x, 0, "x"), lt_new_f32(&e, in, out, w, LC_TENSOR_FROZEN, "w"),
                                    ta, tb, &lp);
            /* 1e-5 relative: the F32 bound of the op suite. A float dot product over in = 1024 terms
             * carries ~in * 2^-24 relative rounding whatever the summation order (GPU backends sum
             * in another order than BLAS); a non-zero LoRA path would show up at order 1. */
            if (lt_case_built(&c, ty, "lc_lora")) lt_case_expect(&c, ty, y, 1e-5, "y == W x");
            lt_case_run(&c);
            free(x); free(w); free(xd); free(wd); free(y);
        }
        free(a); free(b);
    }
    /* Bad input to lc_lora_init. */
    lc_tensor *a = lt_new_f32(&e, 5, 3, NULL, 0, "A"), *b4 = lt_new_f32(&e, 4, 7, NULL, 0, "B_r4");
    lc_tensor *a16 = lt_new_raw(&e, LC_F16, 5, 3, NULL, 0, "A_f16"), *b = lt_new_f32(&e, 3, 7, NULL, 0, "B");
    if (a && b4 && a16 && b) {
        lc_status st = lc_lora_init(a, b4, 1, 1);
        lt_check(rep, st == LC_ERR_SHAPE, "lc_lora_init with A r=3, B r=4 returns LC_ERR_SHAPE (got %s)", lc_status_str(st));
        st = lc_lora_init(a16, b, 1, 1);
        lt_check(rep, st == LC_ERR_DTYPE, "lc_lora_init with an F16 A returns LC_ERR_DTYPE (got %s)", lc_status_str(st));
    }
    lt_env_free(&e);
}

/* ---- one optimiser step makes every lora_B non-zero ----------------------------------------- */
static void run_first_step(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info;
    const float *dropout = user;
    for (int tied = 0; tied < 2; tied++) {
        toy_config cfg = toy_default_config();
        cfg.tied = tied != 0;
        cfg.dropout = *dropout;
        cfg.zero_b = true;
        toy_model m;
        toy_init(&m, &cfg);
        lt_env e;
        lt_env_init(&e, dev, rep);
        lt_case c;
        lt_case_begin(&c, &e, "first step %s dropout=%g", cfg.tied ? "tied" : "untied", cfg.dropout);
        c.no_replay = true;
        lc_tensor *loss = toy_build(&m, &e, c.g);
        float **a_before = calloc((size_t)m.n_lora, sizeof(float *));
        if (lt_case_built(&c, loss, "toy_build")) {
            for (int i = 0; i < m.n_lora && c.ok; i++)
                c.ok = lt_check_ok(rep, lc_lora_init(m.lora[i].tA, m.lora[i].tB, 99, m.lora[i].module_id), "lc_lora_init %s",
                                   m.lora[i].name);
            for (int i = 0; i < m.n_lora && c.ok; i++) a_before[i] = lt_read_f32(&e, m.lora[i].tA, "A before");
            c.ok = c.ok && lt_check_ok(rep, lc_graph_backward(c.g, loss, NULL), "lc_graph_backward");
            lc_adamw_params ap = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
            for (int i = 0; i < m.n_lora && c.ok; i++)
                for (int ab = 0; ab < 2; ab++) {
                    lc_tensor *p = ab ? m.lora[i].tB : m.lora[i].tA;
                    if (!lt_check(rep, p && p->grad, "%s: %s has a gradient", c.name, m.lora[i].name)) {
                        c.ok = false;
                        break;
                    }
                    lc_tensor *mt = lt_new_f32(&e, p->ne[0], p->ne[1], NULL, 0, "m");
                    lc_tensor *vt = lt_new_f32(&e, p->ne[0], p->ne[1], NULL, 0, "v");
                    lt_case_built(&c, lc_adamw(c.g, p, p->grad, mt, vt, &ap), "lc_adamw");
                }
            lc_graph_set_adamw(c.g, 1e-3f, 1, 1.0f);
        }
        if (lt_case_compute(&c)) {
            int all_b = 0;
            for (int i = 0; i < m.n_lora; i++) {
                toy_lora *L = &m.lora[i];
                float *b = lt_read_f32(&e, L->tB, "B"), *a = lt_read_f32(&e, L->tA, "A");
                if (b) {
                    int64_t zeros = 0, n = L->r * L->out;
                    for (int64_t k = 0; k < n; k++) zeros += b[k] == 0.0f;
                    all_b += lt_check(rep, zeros == 0, "%s: %s.lora_B has %lld of %lld elements still zero", c.name, L->name,
                                      (long long)zeros, (long long)n);
                }
                /* dL/dA = 0 while B = 0, so with weight_decay 0 AdamW leaves A exactly as initialised. */
                if (a && a_before[i])
                    lt_check(rep, memcmp(a, a_before[i], (size_t)(L->in * L->r) * 4) == 0,
                             "%s: %s.lora_A unchanged by the first step (its gradient is 0 while B = 0)", c.name, L->name);
                free(a); free(b);
            }
            lt_log("  %s: %d of %d lora_B non-zero after one AdamW step\n", c.name, all_b, m.n_lora);
        }
        lt_case_end(&c);
        for (int i = 0; i < m.n_lora; i++) free(a_before[i]);
        free(a_before);
        lt_env_free(&e);
        toy_free(&m);
    }
}

/* ---- shape mismatches are errors, never aborts ------------------------------------------------- */
static void run_shape_errors(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    lt_env e;
    lt_env_init(&e, dev, rep);
    /* in = 5, out = 7, r = 3, T = 2 */
    lc_tensor *x = lt_new_f32(&e, 5, 2, NULL, 0, "x"), *x6 = lt_new_f32(&e, 6, 2, NULL, 0, "x_in6");
    lc_tensor *w = lt_new_f32(&e, 5, 7, NULL, LC_TENSOR_FROZEN, "w"), *w8 = lt_new_f32(&e, 5, 8, NULL, 0, "w_out8");
    lc_tensor *a = lt_new_f32(&e, 5, 3, NULL, LC_TENSOR_PARAM, "A"), *a4 = lt_new_f32(&e, 5, 4, NULL, 0, "A_r4");
    lc_tensor *a6 = lt_new_f32(&e, 6, 3, NULL, 0, "A_in6"), *b = lt_new_f32(&e, 3, 7, NULL, LC_TENSOR_PARAM, "B");
    lc_tensor *b8 = lt_new_f32(&e, 3, 8, NULL, 0, "B_out8");
    lc_tensor *bt = lt_new_f32(&e, 7, 3, NULL, 0, "B_transposed"), *at = lt_new_f32(&e, 3, 5, NULL, 0, "A_transposed");
    lc_tensor *a16 = lt_new_raw(&e, LC_F16, 5, 3, NULL, 0, "A_f16");
    lc_tensor *wq = lt_new_raw(&e, LC_Q8_0, 32, 7, NULL, LC_TENSOR_FROZEN, "w_q8_0");
    lc_tensor *aq = lt_new_f32(&e, 32, 3, NULL, 0, "A_in32");
    if (!(x && x6 && w && w8 && a && a4 && a6 && b && b8 && bt && at && a16 && wq && aq)) {
        lt_env_free(&e);
        return;
    }
    lc_lora_params lp = {.scaling = 2.0f, .dropout = 0.0f, .module_id = 1, .seed = 1};
    static const char *const what[] = {"A.ne[1]=4 != B.ne[0]=3", "A.ne[0]=6 != in=5", "B.ne[1]=8 != out=7",
                                       "x.ne[0]=6 != w.ne[0]=5", "transposed B [7,3]", "transposed A [3,5]",
                                       "w out 8 != B out 7", "F16 lora_A"};
    lc_tensor *const args[][4] = {{x, w, a4, b}, {x, w, a6, b},  {x, w, a, b8}, {x6, w, a6, b},
                                  {x, w, a, bt}, {x, w, at, b}, {x, w8, a, b}, {x, w, a16, b}};
    for (int k = 0; k < 8; k++) {
        lc_graph *g = lc_graph_new(dev);
        lc_tensor *y = lc_lora(g, args[k][0], args[k][1], args[k][2], args[k][3], &lp);
        lt_check(rep, y == NULL && lc_graph_status(g) != LC_OK, "lc_lora with %s is rejected (status %s: %s)", what[k],
                 lc_status_str(lc_graph_status(g)), lc_graph_error(g));
        lc_graph_free(g);
    }
    /* Bad dropout / module id. */
    static const struct { float p; uint32_t mid; const char *what; } badp[] = {
        {1.0f, 1, "dropout p = 1"}, {-0.1f, 1, "dropout p = -0.1"}, {NAN, 1, "dropout p = NaN"},
        {0.1f, 1u << 24, "module_id = 2^24"}};
    for (int k = 0; k < 4; k++) {
        lc_lora_params bp = lp;
        bp.dropout = badp[k].p;
        bp.module_id = badp[k].mid;
        lc_graph *g = lc_graph_new(dev);
        lc_tensor *y = lc_lora(g, x, w, a, b, &bp);
        lt_check(rep, y == NULL && lc_graph_status(g) != LC_OK, "lc_lora with %s is rejected (status %s)", badp[k].what,
                 lc_status_str(lc_graph_status(g)));
        lc_graph_free(g);
    }
    /* lc_lora_merge / lc_lora_merge_op: errors, and w untouched. */
    float w_fill[35];
    for (int i = 0; i < 35; i++) w_fill[i] = (float)i * 0.25f;
    lc_tensor_set(w, w_fill, 0, sizeof w_fill);
    struct { lc_tensor *w, *a, *b; const char *what; lc_status want; } mm[] = {
        {w, a4, b, "A.ne[1]=4 != B.ne[0]=3", LC_ERR_SHAPE}, {w, a6, b, "A.ne[0]=6 != w in=5", LC_ERR_SHAPE},
        {w, a, b8, "B.ne[1]=8 != w out=7", LC_ERR_SHAPE},   {w, at, bt, "A, B transposed", LC_ERR_SHAPE},
        {wq, aq, b, "quantized w", LC_ERR_DTYPE},           {w, a16, b, "F16 lora_A", LC_ERR_DTYPE}};
    for (size_t k = 0; k < sizeof mm / sizeof mm[0]; k++) {
        lc_status st = lc_lora_merge(mm[k].w, mm[k].a, mm[k].b, 2.0f);
        lt_check(rep, st == mm[k].want, "lc_lora_merge with %s returns %s (got %s: %s)", mm[k].what,
                 lc_status_str(mm[k].want), lc_status_str(st), lc_last_error());
        lc_graph *g = lc_graph_new(dev);
        lc_tensor *res = lc_lora_merge_op(g, mm[k].w, mm[k].a, mm[k].b, 2.0f);
        lt_check(rep, res == NULL && lc_graph_status(g) != LC_OK, "lc_lora_merge_op with %s is rejected", mm[k].what);
        lc_graph_free(g);
    }
    float w_after[35];
    if (lt_check_ok(rep, lc_tensor_get(w, w_after, 0, sizeof w_after), "read w"))
        lt_check(rep, memcmp(w_fill, w_after, sizeof w_fill) == 0, "failed merges leave w unchanged");
    lc_status st = lc_lora_merge(w, a, b, NAN);
    lt_check(rep, st != LC_OK, "lc_lora_merge with a NaN scale is an error (got %s)", lc_status_str(st));
    st = lc_lora_merge(NULL, a, b, 1.0f);
    lt_check(rep, st != LC_OK, "lc_lora_merge with a NULL w is an error (got %s)", lc_status_str(st));
    lt_env_free(&e);
}

/* ---- Check plumbing ------------------------------------------------------------------------- */
#define LORA_TEST(name)                                                                  \
    START_TEST(test_##name) { ck_assert_int_eq(lt_for_each_device("lora." #name, run_##name, NULL), 0); } \
    END_TEST

LORA_TEST(scaling)
LORA_TEST(orientation)
LORA_TEST(merge_unmerge)
LORA_TEST(per_module)
LORA_TEST(init)
LORA_TEST(shape_errors)

static const float first_step_dropout[] = {0.0f, 0.3f};
START_TEST(test_first_step) {
    char name[64];
    snprintf(name, sizeof name, "lora.first_step_dropout%g", first_step_dropout[_i]);
    ck_assert_int_eq(lt_for_each_device(name, run_first_step, (void *)&first_step_dropout[_i]), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("lora");
    struct { const char *name; const TTest *fn; } tests[] = {
        {"scaling", test_scaling},   {"orientation", test_orientation}, {"merge_unmerge", test_merge_unmerge},
        {"per_module", test_per_module}, {"init", test_init},          {"shape_errors", test_shape_errors}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        TCase *tc = tcase_create(tests[i].name);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, tests[i].fn);
        suite_add_tcase(s, tc);
    }
    TCase *tc = tcase_create("first_step");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_first_step, 0, 2);
    suite_add_tcase(s, tc);
    const int failed = lt_run_suite(s);
    return failed == 0 ? 0 : 1;
}
