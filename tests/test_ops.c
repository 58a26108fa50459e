/* lorac — op tests (Check suite "op"): every op of lorac/graph.h, forward and backward, on every
 * device lc_device_list offers, against the plain-loop double-precision references of
 * tests/common/ref_ops.c (written from graph.h, not from the kernels).
 *
 * Backward: inputs are LC_TENSOR_PARAM leaves, lc_graph_backward(g, out, seed) is seeded with a
 * random tensor, and every gradient is compared with the hand-derived plain-loop backward.
 * Each graph is then replayed and must give bit-identical results.
 *
 * Error measure: max_rel = max|got - ref| / max|ref| (lt_util.h). Tolerances:
 *  TOL_F32 = 1e-5 for every F32 op. A float dot product or reduction of length n carries a
 *    rounding error of about sqrt(n) * 2^-24 relative to its largest terms (~2e-6 for n = 1025,
 *    the longest reduction here apart from V and sum_sq); 1e-5 leaves room for blocked / BLAS
 *    summation orders, while an indexing, transpose, scaling or masking fault gives >= 1e-3.
 *    Quantized and half weights use the same tolerance: the reference multiplies by exactly the
 *    values lc_dequantize_row produces, so only the float accumulation differs. Q4_1, Q5_0, Q5_1
 *    and Q5_K weights are made by lc_quantize_row from random rows and their reference values come
 *    from the independent ref_dequant (tests/common/ref_quant.c), which must equal
 *    lc_dequantize_row bit for bit (checked on those weights and on random blocks).
 *  TOL_SUMSQ = 1e-4: sum_sq reduces up to 2e5 positive terms; a sequential float sum drifts by
 *    about 2^-24 * sqrt(n/3) ~ 1.5e-5 relative.
 *  CPY and F16/BF16 merge results are compared in units of the target format (exact RNE).
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
#include "common/lt_suite.h"
#include "lorac/lorac.h"

#define TOL_F32 1e-5
#define TOL_SUMSQ 1e-4

static float *rnd(lt_rng *r, int64_t n, float lo, float hi) {
    float *x = lt_falloc(n);
    lt_fill_uniform(r, x, n, lo, hi);
    return x;
}

static const char *dtn(lc_dtype dt) { return lc_dtype_name(dt); }

/* True for the dtypes whose test weights are made by lc_quantize_row and checked against
 * ref_dequant (formats.md §2, written in tests/common/ref_quant.c) rather than lc_dequantize_row. */
static bool quantize_path(lc_dtype dt) {
    return dt == LC_Q4_1 || dt == LC_Q5_0 || dt == LC_Q5_1 || dt == LC_Q5_K;
}

/* Bit-exact comparison of ref_dequant (rounded to float) with lc_dequantize_row on n elements of
 * dt at raw; returns the number of differing elements (-1 if a call fails). */
static int64_t dequant_mismatches(lt_report *rep, lc_dtype dt, const void *raw, int64_t n, const char *what) {
    double *mine = lt_dalloc(n);
    float *lib = lt_falloc(n);
    int64_t bad = -1;
    if (ref_dequant(dt, raw, mine, n) != 0) {
        lt_check(rep, false, "ref_dequant(%s, n=%lld) (%s)", dtn(dt), (long long)n, what);
    } else if (lt_check_ok(rep, lc_dequantize_row(dt, raw, lib, n), "lc_dequantize_row(%s, n=%lld) (%s)", dtn(dt),
                           (long long)n, what)) {
        bad = 0;
        int64_t first = -1;
        for (int64_t i = 0; i < n; i++) {
            float m = (float)mine[i];
            if (memcmp(&m, &lib[i], sizeof m) != 0) {
                if (first < 0) first = i;
                bad++;
            }
        }
        lt_check(rep, bad == 0,
                 "%s: ref_dequant %s == lc_dequantize_row bit for bit (%lld of %lld differ; first at %lld: %.9g vs %.9g)",
                 what, dtn(dt), (long long)bad, (long long)n, (long long)first, first >= 0 ? mine[first] : 0.0,
                 first >= 0 ? (double)lib[first] : 0.0);
    }
    free(mine);
    free(lib);
    return bad;
}

/* Random weight [K, N] of dtype dt: raw bytes (for upload) and the reference values as doubles.
 * F32: the floats themselves. Q4_1/Q5_0/Q5_1/Q5_K (quantize_path): random floats quantised row by
 * row with lc_quantize_row, reference = ref_dequant (formats.md §2), also checked bit-exact
 * against lc_dequantize_row. Other dtypes: ref_random_blocks, dequantised with lc_dequantize_row. */
static void make_weight(lt_report *rep, lc_dtype dt, int64_t K, int64_t N, lt_rng *r, void **raw_out,
                        double **ref_out) {
    size_t rb = ref_row_bytes(dt, K);
    uint8_t *raw = calloc(rb * (size_t)N, 1);
    double *ref = lt_dalloc(K * N);
    float *row = lt_falloc(K);
    if (dt == LC_F32) {
        lt_fill_uniform(r, (float *)raw, K * N, -0.6f, 1.0f);
        lt_f2d(ref, (float *)raw, K * N);
    } else if (quantize_path(dt)) {
        for (int64_t n = 0; n < N; n++) {
            lt_fill_uniform(r, row, K, -0.6f, 1.0f);
            lc_status st = lc_quantize_row(dt, row, raw + rb * (size_t)n, K);
            lt_check_ok(rep, st, "lc_quantize_row(%s, n=%lld)", dtn(dt), (long long)K);
        }
        lt_check(rep, ref_dequant(dt, raw, ref, K * N) == 0, "ref_dequant(%s, n=%lld)", dtn(dt), (long long)(K * N));
        dequant_mismatches(rep, dt, raw, K * N, "quantised weight");
    } else {
        ref_random_blocks(dt, raw, K * N, 1.0, r);
        for (int64_t n = 0; n < N; n++) {
            lc_status st = lc_dequantize_row(dt, raw + rb * (size_t)n, row, K);
            lt_check_ok(rep, st, "lc_dequantize_row(%s, n=%lld)", dtn(dt), (long long)K);
            lt_f2d(ref + n * K, row, K);
        }
    }
    free(row);
    *raw_out = raw;
    *ref_out = ref;
}

/* ---- backends: the device list itself ------------------------------------------------------ */
static void run_backends(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)user;
    lt_check(rep, strcmp(info->spec, lc_device_get_info(dev)->spec) == 0, "device info spec '%s'", info->spec);
    lt_check(rep, info->backend[0] != 0 && info->name[0] != 0, "device %s names its backend and device",
             info->spec);
    lt_log("  device %s: backend %s, '%s', %s, %d compute units%s\n", info->spec, info->backend, info->name,
           info->api_version, info->compute_units, info->is_cpu ? ", runs on the CPU" : "");
}

/* ---- fill ---------------------------------------------------------------------------------- */
static void run_fill(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const int64_t shapes[][2] = {{1, 1}, {257, 3}, {1025, 31}};
    static const float values[] = {-2.5f, 3.0e-3f, 1.0e30f};
    lt_env e;
    lt_env_init(&e, dev, rep);
    for (int s = 0; s < 3; s++)
        for (int v = 0; v < 3; v++) {
            int64_t n = shapes[s][0] * shapes[s][1];
            double *ref = lt_dalloc(n);
            for (int64_t i = 0; i < n; i++) ref[i] = values[v];
            lt_case c;
            lt_case_begin(&c, &e, "fill [%lld,%lld] %g", (long long)shapes[s][0], (long long)shapes[s][1], values[v]);
            lc_tensor *y = lc_fill(c.g, shapes[s][0], shapes[s][1], values[v]);
            if (lt_case_built(&c, y, "lc_fill")) {
                lt_check(rep, y->ne[0] == shapes[s][0] && y->ne[1] == shapes[s][1], "%s: ne", c.name);
                lt_case_expect(&c, y, ref, 0.0, "y");
            }
            lt_case_run(&c);
            free(ref);
        }
    lt_env_free(&e);
}

/* ---- get_rows ------------------------------------------------------------------------------- */
static void run_get_rows(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 101);
    /* The last shape is past the CPU backend's OpenMP threshold (32768 elements). */
    static const int64_t f32_cases[][3] = {{1, 1, 1}, {257, 13, 31}, {200, 1025, 7}, {7, 3, 511}, {1025, 50, 41}};
    for (int ci = 0; ci < 5; ci++) {
        int64_t E = f32_cases[ci][0], V = f32_cases[ci][1], N = f32_cases[ci][2];
        float *table = rnd(&r, E * V, -1.0f, 1.5f);
        int32_t *ids = lt_ialloc(N);
        for (int64_t n = 0; n < N; n++) ids[n] = lt_rng_int(&r, (int32_t)V);
        if (N > 2) ids[N - 1] = ids[0]; /* a repeated id: its gradient must accumulate */
        double *td = lt_dup_d(table, E * V), *y = lt_dalloc(E * N), *dt = lt_dalloc(E * V);
        bool graph_ids = (ci % 2) == 1; /* ids as a graph input uploaded after planning */
        lt_case c;
        lt_case_begin(&c, &e, "get_rows f32 E=%lld V=%lld N=%lld%s", (long long)E, (long long)V, (long long)N,
                      graph_ids ? " (graph input ids)" : "");
        lc_tensor *tt = lt_new_f32(&e, E, V, table, LC_TENSOR_PARAM, "table");
        lc_tensor *ti = graph_ids ? lc_graph_input(c.g, LC_I32, N, 1, "ids") : lt_new_i32(&e, N, ids, "ids");
        if (graph_ids) lt_case_upload(&c, ti, ids, (size_t)N * sizeof(int32_t));
        lc_tensor *out = lc_get_rows(c.g, tt, ti);
        if (lt_case_built(&c, out, "lc_get_rows")) {
            ref_get_rows(y, td, ids, E, N);
            lt_case_expect(&c, out, y, TOL_F32, "y");
            const double *seed = lt_case_backward(&c, out, &r, 0.0f);
            if (seed) {
                ref_get_rows_back(dt, seed, ids, E, V, N);
                lt_case_expect_grad(&c, tt, dt, TOL_F32, "dtable");
            }
        }
        lt_case_run(&c);
        free(table); free(ids); free(td); free(y); free(dt);
    }
    /* Half and quantized tables (frozen; forward only). */
    static const struct { lc_dtype dt; int64_t E; } qcases[] = {
        {LC_F16, 257}, {LC_BF16, 257}, {LC_Q8_0, 224}, {LC_Q4_0, 1056}, {LC_Q4_K, 768}, {LC_Q6_K, 256}, {LC_Q6_K, 768},
        {LC_Q4_1, 32}, {LC_Q4_1, 1056}, {LC_Q5_0, 224}, {LC_Q5_1, 1056}, {LC_Q5_K, 256}, {LC_Q5_K, 768}};
    for (size_t ci = 0; ci < sizeof qcases / sizeof qcases[0]; ci++) {
        lc_dtype dt = qcases[ci].dt;
        int64_t E = qcases[ci].E, V = 13, N = 31;
        void *raw;
        double *td;
        make_weight(rep, dt, E, V, &r, &raw, &td);
        int32_t *ids = lt_ialloc(N);
        for (int64_t n = 0; n < N; n++) ids[n] = lt_rng_int(&r, (int32_t)V);
        double *y = lt_dalloc(E * N);
        lt_case c;
        lt_case_begin(&c, &e, "get_rows %s E=%lld V=%lld N=%lld", dtn(dt), (long long)E, (long long)V, (long long)N);
        lc_tensor *tt = lt_new_raw(&e, dt, E, V, raw, LC_TENSOR_FROZEN, "table");
        lc_tensor *ti = lt_new_i32(&e, N, ids, "ids");
        lc_tensor *out = lc_get_rows(c.g, tt, ti);
        if (lt_case_built(&c, out, "lc_get_rows")) {
            lt_check(rep, out->dtype == LC_F32 && out->ne[0] == E && out->ne[1] == N, "%s: dst is F32 [E, N]", c.name);
            ref_get_rows(y, td, ids, E, N);
            lt_case_expect(&c, out, y, TOL_F32, "y");
        }
        lt_case_run(&c);
        free(raw); free(td); free(ids); free(y);
    }
    lt_env_free(&e);
}

/* ---- mul_mat -------------------------------------------------------------------------------- */
static void run_mul_mat(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const struct { lc_dtype dt; int64_t K, M, N; } cases[] = {
        {LC_F32, 1, 1, 1},      {LC_F32, 7, 1, 13},     {LC_F32, 257, 7, 511},  {LC_F32, 1025, 31, 200},
        {LC_F32, 200, 257, 1},  {LC_F32, 511, 2, 3},    {LC_F16, 257, 7, 511},  {LC_F16, 1, 3, 5},
        {LC_BF16, 257, 7, 200}, {LC_BF16, 31, 1, 1},    {LC_Q8_0, 32, 1, 1},    {LC_Q8_0, 1056, 7, 200},
        {LC_Q4_0, 32, 1, 3},    {LC_Q4_0, 1056, 7, 13}, {LC_Q4_K, 256, 1, 1},   {LC_Q4_K, 768, 7, 257},
        {LC_Q6_K, 256, 1, 1},   {LC_Q6_K, 768, 7, 31},  {LC_Q4_1, 32, 1, 3},    {LC_Q4_1, 1056, 7, 13},
        {LC_Q5_0, 32, 1, 1},    {LC_Q5_0, 1056, 7, 200}, {LC_Q5_1, 32, 3, 1},   {LC_Q5_1, 1056, 7, 31},
        {LC_Q5_K, 256, 1, 1},   {LC_Q5_K, 768, 7, 257}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 202);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        lc_dtype dt = cases[ci].dt;
        int64_t K = cases[ci].K, M = cases[ci].M, N = cases[ci].N;
        float *x = rnd(&r, K * M, -1.0f, 1.2f);
        void *wraw;
        double *wd;
        make_weight(rep, dt, K, N, &r, &wraw, &wd);
        double *xd = lt_dup_d(x, K * M), *y = lt_dalloc(N * M), *dx = lt_dalloc(K * M), *dw = lt_dalloc(K * N);
        bool train_w = dt == LC_F32;
        lt_case c;
        lt_case_begin(&c, &e, "mul_mat %s K=%lld M=%lld N=%lld", dtn(dt), (long long)K, (long long)M, (long long)N);
        lc_tensor *tx = lt_new_f32(&e, K, M, x, LC_TENSOR_PARAM, "x");
        lc_tensor *tw = lt_new_raw(&e, dt, K, N, wraw, train_w ? LC_TENSOR_PARAM : LC_TENSOR_FROZEN, "w");
        lc_tensor *out = lc_mul_mat(c.g, tx, tw);
        if (lt_case_built(&c, out, "lc_mul_mat")) {
            lt_check(rep, out->ne[0] == N && out->ne[1] == M, "%s: y is [N, M]", c.name);
            ref_mul_mat(y, xd, wd, K, M, N);
            lt_case_expect(&c, out, y, TOL_F32, "y");
            const double *seed = lt_case_backward(&c, out, &r, 0.0f);
            if (seed) {
                ref_mul_mat_back(dx, train_w ? dw : NULL, seed, xd, wd, K, M, N);
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
                if (train_w) lt_case_expect_grad(&c, tw, dw, TOL_F32, "dw");
                else lt_check(rep, tw->grad == NULL, "%s: frozen weight has no gradient", c.name);
            }
        }
        lt_case_run(&c);
        free(x); free(wraw); free(wd); free(xd); free(y); free(dx); free(dw);
    }
    lt_env_free(&e);
}

/* ---- lora ------------------------------------------------------------------------------------ */
static void run_lora(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const struct { lc_dtype dt; int64_t in, out, r, T; float p; } cases[] = {
        {LC_F32, 5, 7, 3, 1, 0.0f},       {LC_F32, 5, 7, 3, 4, 0.5f},      {LC_F32, 1, 1, 1, 1, 0.0f},
        {LC_F32, 257, 200, 8, 31, 0.0f},  {LC_F32, 257, 200, 8, 31, 0.1f}, {LC_F32, 1025, 511, 16, 7, 0.25f},
        {LC_F32, 200, 13, 1, 257, 0.05f}, {LC_F32, 1025, 64, 8, 41, 0.25f}, {LC_F16, 31, 17, 5, 2, 0.3f},    {LC_BF16, 33, 7, 2, 3, 0.0f},
        {LC_Q8_0, 64, 31, 2, 3, 0.0f},    {LC_Q4_K, 256, 13, 4, 5, 0.2f},  {LC_Q6_K, 512, 7, 3, 2, 0.0f},
        {LC_Q4_1, 96, 17, 3, 4, 0.0f},    {LC_Q5_0, 64, 31, 2, 3, 0.2f},   {LC_Q5_1, 160, 7, 4, 5, 0.0f},
        {LC_Q5_K, 256, 13, 4, 5, 0.2f},   {LC_Q5_K, 512, 7, 3, 2, 0.0f}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 303);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        lc_dtype dt = cases[ci].dt;
        int64_t in = cases[ci].in, out = cases[ci].out, rk = cases[ci].r, T = cases[ci].T;
        float p = cases[ci].p;
        lc_lora_params lp = {.scaling = 1.75f, .dropout = p, .module_id = (uint32_t)(5 + ci), .seed = 0xC0FFEEu + ci};
        uint64_t step = 3 + ci;
        float *x = rnd(&r, in * T, -1.0f, 1.3f), *A = rnd(&r, in * rk, -0.4f, 0.6f), *B = rnd(&r, rk * out, -0.7f, 0.5f);
        void *wraw;
        double *wd;
        make_weight(rep, dt, in, out, &r, &wraw, &wd);
        double *xd = lt_dup_d(x, in * T), *Ad = lt_dup_d(A, in * rk), *Bd = lt_dup_d(B, rk * out);
        double *mult = lt_dalloc(in * T), *y = lt_dalloc(out * T), *u = lt_dalloc(rk * T);
        double *dx = lt_dalloc(in * T), *dA = lt_dalloc(in * rk), *dB = lt_dalloc(rk * out);
        ref_lora_dropout_mult(mult, lp.seed, step, lp.module_id, p, in, T);
        lt_case c;
        lt_case_begin(&c, &e, "lora %s in=%lld out=%lld r=%lld T=%lld p=%g", dtn(dt), (long long)in, (long long)out,
                      (long long)rk, (long long)T, p);
        lc_tensor *tx = lt_new_f32(&e, in, T, x, LC_TENSOR_PARAM, "x");
        lc_tensor *tw = lt_new_raw(&e, dt, in, out, wraw, LC_TENSOR_FROZEN, "w");
        lc_tensor *ta = lt_new_f32(&e, in, rk, A, LC_TENSOR_PARAM, "lora_A");
        lc_tensor *tb = lt_new_f32(&e, rk, out, B, LC_TENSOR_PARAM, "lora_B");
        lc_tensor *ty = lc_lora(c.g, tx, tw, ta, tb, &lp);
        if (lt_case_built(&c, ty, "lc_lora")) {
            lc_node *node = lc_tensor_node(ty);
            lc_tensor *tu = node ? node->dst[1] : NULL;
            lt_check(rep, ty->ne[0] == out && ty->ne[1] == T && tu && tu->ne[0] == rk && tu->ne[1] == T,
                     "%s: y is [out, T] and u is [r, T]", c.name);
            /* Odd cases set the step before backward (LORA_BACK must copy it), even ones after. */
            if (ci % 2) lc_graph_set_step(c.g, step);
            ref_lora(y, u, xd, wd, Ad, Bd, mult, lp.scaling, in, out, rk, T);
            lt_case_expect(&c, ty, y, TOL_F32, "y");
            if (tu) lt_case_expect(&c, tu, u, TOL_F32, "u");
            const double *seed = lt_case_backward(&c, ty, &r, 0.0f);
            if (!(ci % 2)) lc_graph_set_step(c.g, step);
            if (seed) {
                ref_lora_back(dx, NULL, dA, dB, seed, xd, wd, Ad, Bd, mult, lp.scaling, in, out, rk, T);
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
                lt_case_expect_grad(&c, ta, dA, TOL_F32, "dA");
                lt_case_expect_grad(&c, tb, dB, TOL_F32, "dB");
                lt_check(rep, tw->grad == NULL, "%s: frozen base weight has no gradient", c.name);
            }
        }
        lt_case_run(&c);
        free(x); free(A); free(B); free(wraw); free(wd); free(xd); free(Ad); free(Bd);
        free(mult); free(y); free(u); free(dx); free(dA); free(dB);
    }
    lt_env_free(&e);
}

/* ---- add / mul ----------------------------------------------------------------------------- */
static void run_binary(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const int64_t shapes[][4] = {{1, 1, 1, 1},   {257, 31, 257, 31}, {200, 7, 200, 1}, {200, 7, 1, 7},
                                        {511, 13, 1, 1}, {200, 6, 40, 3},   {1025, 3, 5, 1},  {7, 511, 7, 1},
                                        {1025, 41, 1025, 1}, {1025, 41, 5, 41}, {257, 200, 257, 200}, {1025, 41, 1, 1}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 404);
    for (int op = 0; op < 2; op++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            int64_t n0 = shapes[si][0], n1 = shapes[si][1], m0 = shapes[si][2], m1 = shapes[si][3];
            bool mul = op == 1;
            float *a = rnd(&r, n0 * n1, -1.0f, 1.4f), *b = rnd(&r, m0 * m1, -0.8f, 1.1f);
            double *ad = lt_dup_d(a, n0 * n1), *bd = lt_dup_d(b, m0 * m1);
            double *y = lt_dalloc(n0 * n1), *da = lt_dalloc(n0 * n1), *db = lt_dalloc(m0 * m1);
            lt_case c;
            lt_case_begin(&c, &e, "%s a=[%lld,%lld] b=[%lld,%lld]", mul ? "mul" : "add", (long long)n0, (long long)n1,
                          (long long)m0, (long long)m1);
            lc_tensor *ta = lt_new_f32(&e, n0, n1, a, LC_TENSOR_PARAM, "a");
            lc_tensor *tb = lt_new_f32(&e, m0, m1, b, LC_TENSOR_PARAM, "b");
            lc_tensor *out = mul ? lc_mul(c.g, ta, tb) : lc_add(c.g, ta, tb);
            if (lt_case_built(&c, out, mul ? "lc_mul" : "lc_add")) {
                ref_binary(y, ad, bd, mul, n0, n1, m0, m1);
                lt_case_expect(&c, out, y, TOL_F32, "y");
                const double *seed = lt_case_backward(&c, out, &r, 0.0f);
                if (seed) {
                    ref_binary_back(da, db, seed, ad, bd, mul, n0, n1, m0, m1);
                    lt_case_expect_grad(&c, ta, da, TOL_F32, "da");
                    lt_case_expect_grad(&c, tb, db, TOL_F32, "db");
                }
            }
            lt_case_run(&c);
            free(a); free(b); free(ad); free(bd); free(y); free(da); free(db);
        }
    lt_env_free(&e);
}

/* ---- scale ------------------------------------------------------------------------------------ */
static void run_scale(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const int64_t shapes[][2] = {{1, 1}, {257, 31}, {1025, 7}, {1025, 37}};
    static const float scales[] = {-1.75f, 0.125f, 3.0f, -0.3f};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 505);
    for (int si = 0; si < 4; si++) {
        int64_t n0 = shapes[si][0], n1 = shapes[si][1], n = n0 * n1;
        float s = scales[si];
        float *x = rnd(&r, n, -1.0f, 2.0f);
        double *y = lt_dalloc(n), *dx = lt_dalloc(n);
        lt_case c;
        lt_case_begin(&c, &e, "scale [%lld,%lld] s=%g", (long long)n0, (long long)n1, s);
        lc_tensor *tx = lt_new_f32(&e, n0, n1, x, LC_TENSOR_PARAM, "x");
        lc_tensor *out = lc_scale(c.g, tx, s);
        if (lt_case_built(&c, out, "lc_scale")) {
            for (int64_t i = 0; i < n; i++) y[i] = (double)x[i] * s;
            lt_case_expect(&c, out, y, TOL_F32, "y");
            const double *seed = lt_case_backward(&c, out, &r, 0.0f);
            if (seed) {
                for (int64_t i = 0; i < n; i++) dx[i] = seed[i] * s;
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
            }
        }
        lt_case_run(&c);
        free(x); free(y); free(dx);
    }
    lt_env_free(&e);
}

/* ---- rms_norm ----------------------------------------------------------------------------- */
static void run_rms_norm(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    /* mag: input magnitude; at 1e-3 mean(x^2) is comparable to eps, so eps placement matters. */
    static const struct { int64_t n, R, group; bool weight; float eps, mag; } cases[] = {
        {1025, 7, 0, true, 1e-6f, 1.0f}, {257, 31, 0, false, 1e-5f, 1.0f}, {64, 13, 16, true, 1e-6f, 1.0f},
        {200, 5, 8, false, 1e-6f, 1.0f}, {1, 1, 0, true, 1e-6f, 1.0f},     {511, 3, 511, true, 1e-5f, 1.0f},
        {12, 257, 4, true, 1e-6f, 1.0f}, {257, 5, 0, true, 1e-5f, 1e-3f},  {64, 3, 16, false, 1e-6f, 1e-3f},
        {1025, 31, 0, true, 1e-6f, 1.0f}, {64, 513, 16, true, 1e-6f, 1.0f}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 606);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int64_t n = cases[ci].n, R = cases[ci].R, gsz = cases[ci].group ? cases[ci].group : n;
        float *x = rnd(&r, n * R, -cases[ci].mag, 1.6f * cases[ci].mag), *w = rnd(&r, gsz, 0.5f, 1.5f);
        double *xd = lt_dup_d(x, n * R), *wd = lt_dup_d(w, gsz);
        double *y = lt_dalloc(n * R), *dx = lt_dalloc(n * R), *dw = lt_dalloc(gsz);
        lt_case c;
        lt_case_begin(&c, &e, "rms_norm n=%lld R=%lld group=%lld %s eps=%g |x|~%g", (long long)n, (long long)R,
                      (long long)cases[ci].group, cases[ci].weight ? "weight" : "no weight", cases[ci].eps,
                      cases[ci].mag);
        lc_tensor *tx = lt_new_f32(&e, n, R, x, LC_TENSOR_PARAM, "x");
        lc_tensor *tw = cases[ci].weight ? lt_new_f32(&e, gsz, 1, w, LC_TENSOR_PARAM, "w") : NULL;
        lc_tensor *out = lc_rms_norm(c.g, tx, tw, cases[ci].group, cases[ci].eps);
        if (lt_case_built(&c, out, "lc_rms_norm")) {
            const double *wr = cases[ci].weight ? wd : NULL;
            ref_rms_norm(y, xd, wr, n, R, gsz, cases[ci].eps);
            lt_case_expect(&c, out, y, TOL_F32, "y");
            const double *seed = lt_case_backward(&c, out, &r, 0.0f);
            if (seed) {
                ref_rms_norm_back(dx, dw, seed, xd, wr, n, R, gsz, cases[ci].eps);
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
                if (tw) lt_case_expect_grad(&c, tw, dw, TOL_F32, "dw");
            }
        }
        lt_case_run(&c);
        free(x); free(w); free(xd); free(wd); free(y); free(dx); free(dw);
    }
    lt_env_free(&e);
}

/* ---- rope ------------------------------------------------------------------------------------ */
static void run_rope(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const struct { int64_t hd, n_head, T; int n_rot, mode; float base, scale; } cases[] = {
        {16, 3, 31, 16, LC_ROPE_NORM, 10000.0f, 1.0f},  {16, 3, 31, 8, LC_ROPE_NEOX, 10000.0f, 1.0f},
        {16, 3, 31, 8, LC_ROPE_NORM, 10000.0f, 1.0f},   {64, 2, 7, 32, LC_ROPE_NORM, 1.0e6f, 0.125f},
        {128, 1, 5, 128, LC_ROPE_NEOX, 1.0e6f, 1.0f},   {2, 1, 1, 2, LC_ROPE_NORM, 10000.0f, 1.0f},
        {256, 4, 13, 256, LC_ROPE_NEOX, 10000.0f, 0.25f}, {6, 5, 257, 4, LC_ROPE_NEOX, 500.0f, 1.0f},
        {128, 8, 31, 64, LC_ROPE_NORM, 1.0e6f, 1.0f}, {128, 8, 31, 96, LC_ROPE_NEOX, 10000.0f, 0.5f}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 707);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int64_t hd = cases[ci].hd, nh = cases[ci].n_head, T = cases[ci].T, C = hd * nh;
        float *x = rnd(&r, C * T, -1.0f, 1.5f);
        int32_t *pos = lt_ialloc(T);
        for (int64_t t = 0; t < T; t++) pos[t] = t < 2 ? (int32_t)t : lt_rng_int(&r, 3000);
        double *xd = lt_dup_d(x, C * T), *y = lt_dalloc(C * T), *dx = lt_dalloc(C * T);
        lt_case c;
        lt_case_begin(&c, &e, "rope %s hd=%lld heads=%lld T=%lld n_rot=%d base=%g scale=%g",
                      cases[ci].mode == LC_ROPE_NEOX ? "neox" : "norm", (long long)hd, (long long)nh, (long long)T,
                      cases[ci].n_rot, cases[ci].base, cases[ci].scale);
        lc_tensor *tx = lt_new_f32(&e, C, T, x, LC_TENSOR_PARAM, "x");
        lc_tensor *tp = lt_new_i32(&e, T, pos, "pos");
        lc_tensor *out = lc_rope(c.g, tx, tp, (int)nh, cases[ci].n_rot, cases[ci].mode, cases[ci].base, cases[ci].scale);
        if (lt_case_built(&c, out, "lc_rope")) {
            ref_rope(y, xd, pos, hd, nh, T, cases[ci].n_rot, cases[ci].mode, cases[ci].base, cases[ci].scale, false);
            lt_case_expect(&c, out, y, TOL_F32, "y");
            const double *seed = lt_case_backward(&c, out, &r, 0.0f);
            if (seed) {
                ref_rope(dx, seed, pos, hd, nh, T, cases[ci].n_rot, cases[ci].mode, cases[ci].base, cases[ci].scale,
                         true);
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
            }
        }
        lt_case_run(&c);
        free(x); free(pos); free(xd); free(y); free(dx);
    }
    lt_env_free(&e);
}

/* ---- attention ------------------------------------------------------------------------------ */
static void run_attention(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const ref_attn_shape cases[] = {
        /* hd, n_head, n_kv, S, Tq, Tk, causal, window, scale */
        {8, 4, 2, 2, 7, 7, true, 0, 0.0},      /* GQA 4/2, two sequences */
        {16, 4, 1, 1, 5, 31, true, 0, 0.0},    /* GQA 4/1, Tq < Tk */
        {4, 4, 4, 3, 13, 13, true, 4, 0.0},    /* sliding window, three sequences */
        {8, 2, 2, 2, 7, 11, false, 0, 0.3},    /* not causal, Tq < Tk */
        {8, 4, 2, 1, 5, 3, true, 0, 0.0},      /* Tq > Tk: first queries see no key */
        {6, 3, 1, 2, 9, 17, false, 5, 0.0},    /* window without causality */
        {1, 1, 1, 1, 1, 1, true, 0, 0.0},      /* the smallest */
        {64, 2, 1, 1, 200, 257, true, 0, 0.0}, /* long rows around a workgroup size */
        {32, 2, 2, 1, 31, 511, true, 64, 0.0}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 808);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        ref_attn_shape a = cases[ci];
        if (a.scale == 0.0) a.scale = (double)(1.0f / sqrtf((float)a.hd));
        int64_t nq = a.hd * a.n_head * a.Tq * a.S, nk = a.hd * a.n_kv * a.Tk * a.S, nl = a.n_head * a.Tq * a.S;
        float *q = rnd(&r, nq, -1.5f, 2.0f), *k = rnd(&r, nk, -1.5f, 2.0f), *v = rnd(&r, nk, -1.0f, 1.2f);
        double *qd = lt_dup_d(q, nq), *kd = lt_dup_d(k, nk), *vd = lt_dup_d(v, nk);
        double *o = lt_dalloc(nq), *lse = lt_dalloc(nl), *dq = lt_dalloc(nq), *dk = lt_dalloc(nk), *dv = lt_dalloc(nk);
        lc_attention_params ap = {.n_head = (int)a.n_head, .n_kv = (int)a.n_kv, .n_seq = (int)a.S,
                                  .causal = a.causal, .window = (int)a.window, .scale = (float)a.scale};
        lt_case c;
        lt_case_begin(&c, &e, "attention hd=%lld heads=%lld/%lld S=%lld Tq=%lld Tk=%lld %s window=%lld",
                      (long long)a.hd, (long long)a.n_head, (long long)a.n_kv, (long long)a.S, (long long)a.Tq,
                      (long long)a.Tk, a.causal ? "causal" : "full", (long long)a.window);
        lc_tensor *tq = lt_new_f32(&e, a.hd * a.n_head, a.Tq * a.S, q, LC_TENSOR_PARAM, "q");
        lc_tensor *tk = lt_new_f32(&e, a.hd * a.n_kv, a.Tk * a.S, k, LC_TENSOR_PARAM, "k");
        lc_tensor *tv = lt_new_f32(&e, a.hd * a.n_kv, a.Tk * a.S, v, LC_TENSOR_PARAM, "v");
        lc_tensor *out = lc_attention(c.g, tq, tk, tv, &ap);
        if (lt_case_built(&c, out, "lc_attention")) {
            lc_node *node = lc_tensor_node(out);
            ref_attention(o, lse, qd, kd, vd, &a);
            lt_case_expect(&c, out, o, TOL_F32, "o");
            if (node && node->dst[1]) lt_case_expect(&c, node->dst[1], lse, TOL_F32, "lse");
            else lt_check(rep, false, "%s: no lse output", c.name);
            const double *seed = lt_case_backward(&c, out, &r, 0.0f);
            if (seed) {
                ref_attention_back(dq, dk, dv, seed, qd, kd, vd, &a);
                lt_case_expect_grad(&c, tq, dq, TOL_F32, "dq");
                lt_case_expect_grad(&c, tk, dk, TOL_F32, "dk");
                lt_case_expect_grad(&c, tv, dv, TOL_F32, "dv");
            }
        }
        lt_case_run(&c);
        free(q); free(k); free(v); free(qd); free(kd); free(vd); free(o); free(lse); free(dq); free(dk); free(dv);
    }
    lt_env_free(&e);
}

/* ---- gelu_tanh, silu, geglu, swiglu ---------------------------------------------------------- */
static void run_activations(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const int64_t shapes[][2] = {{1, 1}, {257, 31}, {1025, 3}, {1025, 37}};
    static const char *const names[] = {"gelu_tanh", "silu", "geglu", "swiglu"};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 909);
    for (int op = 0; op < 4; op++)
        for (int si = 0; si < 4; si++) {
            int64_t n0 = shapes[si][0], n1 = shapes[si][1], n = n0 * n1;
            bool gated = op >= 2, gelu = op == 0 || op == 2;
            float *x = rnd(&r, n, -6.0f, 7.0f), *up = rnd(&r, n, -1.5f, 1.0f);
            double *y = lt_dalloc(n), *dx = lt_dalloc(n), *dup = lt_dalloc(n);
            lt_case c;
            lt_case_begin(&c, &e, "%s [%lld,%lld]", names[op], (long long)n0, (long long)n1);
            lc_tensor *tx = lt_new_f32(&e, n0, n1, x, LC_TENSOR_PARAM, gated ? "gate" : "x");
            lc_tensor *tu = gated ? lt_new_f32(&e, n0, n1, up, LC_TENSOR_PARAM, "up") : NULL;
            lc_tensor *out = op == 0 ? lc_gelu_tanh(c.g, tx)
                             : op == 1 ? lc_silu(c.g, tx)
                             : op == 2 ? lc_geglu(c.g, tx, tu)
                                       : lc_swiglu(c.g, tx, tu);
            if (lt_case_built(&c, out, names[op])) {
                for (int64_t i = 0; i < n; i++) {
                    double f = gelu ? ref_gelu_tanh(x[i]) : ref_silu(x[i]);
                    y[i] = gated ? f * up[i] : f;
                }
                lt_case_expect(&c, out, y, TOL_F32, "y");
                const double *seed = lt_case_backward(&c, out, &r, 0.0f);
                if (seed) {
                    for (int64_t i = 0; i < n; i++) {
                        double d = gelu ? ref_gelu_tanh_d(x[i]) : ref_silu_d(x[i]);
                        double f = gelu ? ref_gelu_tanh(x[i]) : ref_silu(x[i]);
                        dx[i] = seed[i] * d * (gated ? up[i] : 1.0);
                        dup[i] = seed[i] * f;
                    }
                    lt_case_expect_grad(&c, tx, dx, TOL_F32, gated ? "dgate" : "dx");
                    if (gated) lt_case_expect_grad(&c, tu, dup, TOL_F32, "dup");
                }
            }
            lt_case_run(&c);
            free(x); free(up); free(y); free(dx); free(dup);
        }
    lt_env_free(&e);
}

/* ---- cross_entropy ------------------------------------------------------------------------- */
static void run_cross_entropy(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const struct { int64_t V, N; int ignore; float denom; int label_kind; float offset; } cases[] = {
        /* label_kind 0: all valid; 1: some ignored / out of range / negative; 2: all ignored */
        {1025, 7, -100, 0.0f, 1, 0.0f},  {32768, 3, -100, 0.0f, 0, 0.0f}, {11, 5, -100, 13.0f, 1, 0.0f},
        {37, 4, -100, 0.0f, 2, 0.0f},    {37, 4, 3, 6.0f, 2, 0.0f},       {1, 2, -1, 0.0f, 0, 0.0f},
        {257, 31, 7, 0.0f, 1, 100.0f},   {200, 1, -100, 0.0f, 0, -50.0f}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 1010);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int64_t V = cases[ci].V, N = cases[ci].N;
        int ign = cases[ci].ignore;
        float *l = rnd(&r, V * N, -4.0f, 5.0f);
        for (int64_t i = 0; i < V * N; i++) l[i] += cases[ci].offset; /* stability: large common offset */
        int32_t *lab = lt_ialloc(N);
        for (int64_t n = 0; n < N; n++) {
            lab[n] = lt_rng_int(&r, (int32_t)V);
            if (cases[ci].label_kind == 2) lab[n] = ign;
            if (cases[ci].label_kind == 1 && n % 3 == 1) lab[n] = (n % 2) ? ign : (int32_t)V; /* ignored / V */
            if (cases[ci].label_kind == 1 && n == 2) lab[n] = -5;                            /* negative */
        }
        double *ld = lt_dup_d(l, V * N), loss = 0.0, *lse = lt_dalloc(N), *dl = lt_dalloc(V * N);
        const float dloss = 0.37f;
        lt_case c;
        lt_case_begin(&c, &e, "cross_entropy V=%lld N=%lld ignore=%d denom=%g%s", (long long)V, (long long)N, ign,
                      cases[ci].denom, cases[ci].label_kind == 2 ? " (all masked)" : "");
        lc_tensor *tl = lt_new_f32(&e, V, N, l, LC_TENSOR_PARAM, "logits");
        lc_tensor *tlab = lt_new_i32(&e, N, lab, "labels");
        lc_tensor *out = lc_cross_entropy(c.g, tl, tlab, ign);
        if (lt_case_built(&c, out, "lc_cross_entropy")) {
            lc_node *node = lc_tensor_node(out);
            if (node && cases[ci].denom > 0.0f) node->fp[0] = cases[ci].denom;
            ref_cross_entropy(&loss, lse, ld, lab, V, N, ign, cases[ci].denom);
            bool masked = cases[ci].label_kind == 2;
            lt_check(rep, lc_nelements(out) == 1, "%s: loss has one element", c.name);
            lt_case_expect(&c, out, &loss, masked ? 0.0 : TOL_F32, "loss");
            if (node && node->dst[1] && !masked) lt_case_expect(&c, node->dst[1], lse, TOL_F32, "lse (counted rows)");
            const double *seed = lt_case_backward(&c, out, &r, dloss);
            if (seed) {
                ref_cross_entropy_back(dl, seed[0], ld, lab, V, N, ign, cases[ci].denom);
                lt_case_expect_grad(&c, tl, dl, masked ? 0.0 : TOL_F32, "dlogits");
            }
        }
        lt_case_run(&c);
        free(l); free(lab); free(ld); free(lse); free(dl);
    }
    lt_env_free(&e);
}

/* ---- dequantize ----------------------------------------------------------------------------- */
static void run_dequantize(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const struct { lc_dtype dt; int64_t ne0, ne1; } cases[] = {
        {LC_F32, 257, 3},  {LC_F16, 1025, 2}, {LC_BF16, 1, 1},  {LC_BF16, 511, 3}, {LC_Q8_0, 32, 1},
        {LC_Q8_0, 224, 5}, {LC_Q4_0, 1056, 2}, {LC_Q4_K, 256, 1}, {LC_Q4_K, 768, 3}, {LC_Q6_K, 256, 7},
        {LC_Q4_K, 768, 50}, {LC_Q6_K, 256, 140}, {LC_F16, 1025, 33}, {LC_Q8_0, 1024, 37},
        {LC_Q4_1, 32, 1},  {LC_Q4_1, 1056, 37}, {LC_Q5_0, 32, 1}, {LC_Q5_0, 224, 150}, {LC_Q5_1, 32, 1},
        {LC_Q5_1, 1056, 37}, {LC_Q5_K, 256, 1}, {LC_Q5_K, 768, 50}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 1111);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        lc_dtype dt = cases[ci].dt;
        int64_t ne0 = cases[ci].ne0, ne1 = cases[ci].ne1, n = ne0 * ne1;
        size_t rb = ref_row_bytes(dt, ne0);
        uint8_t *raw = malloc(rb * (size_t)ne1);
        ref_random_blocks(dt, raw, n, 2.0, &r);
        double *mine = lt_dalloc(n), *lib = lt_dalloc(n);
        float *row = lt_falloc(ne0);
        /* lc_dequantize_row (the reference the other tests use) against formats.md §2 written here. */
        ref_dequant(dt, raw, mine, n);
        for (int64_t j = 0; j < ne1; j++) {
            lt_check_ok(rep, lc_dequantize_row(dt, raw + rb * (size_t)j, row, ne0), "lc_dequantize_row(%s)", dtn(dt));
            lt_f2d(lib + j * ne0, row, ne0);
        }
        float *libf = lt_falloc(n);
        for (int64_t i = 0; i < n; i++) libf[i] = (float)lib[i];
        lt_check_err(rep, lt_max_rel(libf, mine, n), 1e-6, "lc_dequantize_row %s [%lld,%lld] vs formats.md plain loop",
                     dtn(dt), (long long)ne0, (long long)ne1);
        free(libf);
        /* The newer block types must match bit for bit (ref_quant.h: every value is exact in double). */
        if (quantize_path(dt)) dequant_mismatches(rep, dt, raw, n, "random blocks");
        lt_case c;
        lt_case_begin(&c, &e, "dequantize %s [%lld,%lld]", dtn(dt), (long long)ne0, (long long)ne1);
        lc_tensor *t = lt_new_raw(&e, dt, ne0, ne1, raw, LC_TENSOR_FROZEN, "src");
        lc_tensor *out = lc_dequantize(c.g, t);
        if (lt_case_built(&c, out, "lc_dequantize")) {
            lt_check(rep, out->dtype == LC_F32 && out->ne[0] == ne0 && out->ne[1] == ne1, "%s: F32, same ne", c.name);
            lt_case_expect(&c, out, lib, 0.0, "y (exactly lc_dequantize_row)");
        }
        lt_case_run(&c);
        free(raw); free(mine); free(lib); free(row);
    }
    lt_env_free(&e);
}

/* ---- cpy ---------------------------------------------------------------------------------- */
static uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Value of element i of a raw buffer of dtype dt (F32/F16/BF16) as a float. */
static float raw_value(lc_dtype dt, const uint8_t *raw, int64_t i) {
    if (dt == LC_F32) {
        float f;
        memcpy(&f, raw + 4 * i, 4);
        return f;
    }
    uint16_t h = rd_u16(raw + 2 * i);
    return (float)(dt == LC_F16 ? ref_fp16_to_double(h) : ref_bf16_to_double(h));
}

/* Expected bits of float f in dt. */
static uint32_t expect_bits(lc_dtype dt, float f) {
    if (dt == LC_F16) return ref_float_to_fp16(f);
    if (dt == LC_BF16) return ref_float_to_bf16(f);
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void run_cpy(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const lc_dtype types[] = {LC_F32, LC_F16, LC_BF16};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 1212);
    const int64_t ne0 = 257, ne1 = 130, n = ne0 * ne1; /* past the OpenMP threshold */
    float *vals = lt_falloc(n);
    /* Specials: ties in fp16 and bf16, fp16 subnormals and overflow, bf16 subnormals, inf, -0. */
    static const float special[] = {1.0f + 0x1p-11f, 1.0f + 0x1p-11f + 0x1p-23f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-8f,
                                    1.0f + 3 * 0x1p-8f, 3.0e-8f, -6.0e-6f, 6.1e-5f, 65504.0f, 65519.0f, 65520.0f,
                                    -70000.0f, 1.0e-40f, 3.0e38f, -0.0f, INFINITY, -INFINITY, 0x1p-24f, 0x1p-25f,
                                    0x1.8p-25f};
    int n_special = (int)(sizeof special / sizeof special[0]);
    for (int64_t i = 0; i < n; i++) {
        double mag = pow(2.0, -30.0 + 48.0 * lt_rng_uniform(&r)); /* wide exponent range */
        vals[i] = (float)((lt_rng_uniform(&r) < 0.5 ? -1.0 : 1.0) * mag);
        if (i < n_special) vals[i] = special[i];
    }
    /* lorac's scalar converters against the plain ones here. */
    int64_t bad16 = 0, badb = 0;
    for (int64_t i = 0; i < n; i++) {
        bad16 += lc_fp32_to_fp16(vals[i]) != ref_float_to_fp16(vals[i]);
        badb += lc_fp32_to_bf16(vals[i]) != ref_float_to_bf16(vals[i]);
    }
    lt_check(rep, bad16 == 0, "lc_fp32_to_fp16 round-to-nearest-even: %lld of %lld differ", (long long)bad16, (long long)n);
    lt_check(rep, badb == 0, "lc_fp32_to_bf16 round-to-nearest-even: %lld of %lld differ", (long long)badb, (long long)n);
    for (int si = 0; si < 3; si++)
        for (int di = 0; di < 3; di++) {
            lc_dtype st = types[si], dt = types[di];
            /* Source bytes: the values rounded into the source dtype by the plain converters. */
            size_t ss = st == LC_F32 ? 4 : 2, ds = dt == LC_F32 ? 4 : 2;
            uint8_t *src = malloc(ss * (size_t)n), *got = malloc(ds * (size_t)n);
            for (int64_t i = 0; i < n; i++) {
                uint32_t b = expect_bits(st, vals[i]);
                memcpy(src + ss * i, &b, ss); /* little-endian low bytes */
            }
            lt_case c;
            lt_case_begin(&c, &e, "cpy %s -> %s [%lld,%lld]", dtn(st), dtn(dt), (long long)ne0, (long long)ne1);
            lc_tensor *t = lt_new_raw(&e, st, ne0, ne1, src, 0, "src");
            lc_tensor *out = lc_cpy(c.g, t, dt);
            if (lt_case_built(&c, out, "lc_cpy")) {
                lc_graph_set_output(c.g, out);
                lt_check(rep, out->dtype == dt && out->ne[0] == ne0 && out->ne[1] == ne1, "%s: dtype and ne", c.name);
                if (lt_case_compute(&c) &&
                    lt_check_ok(rep, lc_tensor_get(out, got, 0, ds * (size_t)n), "%s: lc_tensor_get", c.name)) {
                    int64_t bad = 0, first = -1;
                    for (int64_t i = 0; i < n; i++) {
                        float sv = raw_value(st, src, i);
                        uint32_t want = expect_bits(dt, sv), have = 0;
                        memcpy(&have, got + ds * i, ds);
                        if (have != want && !(isnan(sv) && isnan(raw_value(dt, got, i)))) {
                            if (first < 0) first = i;
                            bad++;
                        }
                    }
                    if (!lt_check(rep, bad == 0, "%s: %lld of %lld elements not bit-exact RNE", c.name, (long long)bad,
                                  (long long)n)) {
                        uint32_t have = 0;
                        memcpy(&have, got + ds * first, ds);
                        lt_log("    first at %lld: src %a -> got 0x%x, want 0x%x\n", (long long)first,
                               raw_value(st, src, first), have, expect_bits(dt, raw_value(st, src, first)));
                    }
                }
            }
            lt_case_end(&c);
            free(src); free(got);
        }
    free(vals);
    lt_env_free(&e);
}

/* ---- sum_sq ------------------------------------------------------------------------------- */
static void run_sum_sq(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const int64_t shapes[][2] = {{1, 1}, {257, 1}, {511, 7}, {1025, 200}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 1313);
    for (int si = 0; si < 4; si++) {
        int64_t n0 = shapes[si][0], n1 = shapes[si][1], n = n0 * n1;
        float *x = rnd(&r, n, -1.0f, 2.0f);
        double *xd = lt_dup_d(x, n), ref = ref_sum_sq(xd, n);
        lt_case c;
        lt_case_begin(&c, &e, "sum_sq [%lld,%lld]", (long long)n0, (long long)n1);
        lc_tensor *tx = lt_new_f32(&e, n0, n1, x, 0, "x");
        lc_tensor *out = lc_sum_sq(c.g, tx);
        if (lt_case_built(&c, out, "lc_sum_sq")) lt_case_expect(&c, out, &ref, TOL_SUMSQ, "sum");
        lt_case_run(&c);
        free(x); free(xd);
    }
    lt_env_free(&e);
}

/* ---- adamw -------------------------------------------------------------------------------- */
static void run_adamw(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    /* gmag: gradient magnitude; at 1e-7 sqrt(v_hat) is comparable to eps = 1e-8, so the place of
     * eps in the update matters. */
    static const struct { int64_t n0, n1; float wd, gmag; } cases[] = {
        {1025, 1, 0.01f, 1.0f}, {7, 31, 0.1f, 1.0f}, {1, 1, 0.0f, 1.0f}, {31, 1, 0.0f, 1e-7f}, {1025, 131, 0.05f, 1.0f}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 1414);
    for (int ci = 0; ci < 5; ci++) {
        int64_t n0 = cases[ci].n0, n1 = cases[ci].n1, n = n0 * n1;
        float *p = rnd(&r, n, -1.0f, 1.3f), *g = lt_falloc(n);
        double *pd = lt_dup_d(p, n), *md = lt_dalloc(n), *vd = lt_dalloc(n), *gd = lt_dalloc(n);
        lc_adamw_params ap = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = cases[ci].wd};
        lt_case c;
        lt_case_begin(&c, &e, "adamw [%lld,%lld] wd=%g |g|~%g", (long long)n0, (long long)n1, cases[ci].wd,
                      cases[ci].gmag);
        c.no_replay = true;
        lc_tensor *tp = lt_new_f32(&e, n0, n1, p, LC_TENSOR_PARAM, "param");
        lc_tensor *tg = lt_new_f32(&e, n0, n1, NULL, 0, "grad");
        lc_tensor *tm = lt_new_f32(&e, n0, n1, NULL, 0, "m");
        lc_tensor *tv = lt_new_f32(&e, n0, n1, NULL, 0, "v");
        lc_tensor *out = lc_adamw(c.g, tp, tg, tm, tv, &ap);
        if (lt_case_built(&c, out, "lc_adamw")) {
            lt_check(rep, out == tp, "%s: lc_adamw returns param", c.name);
            bool planned = false;
            for (int t = 1; t <= 5 && c.ok; t++) {
                float lr = t == 3 ? 3e-2f : 1e-2f * (float)t, gs = t == 4 ? 0.5f : 1.0f;
                lt_fill_uniform(&r, g, n, -2.0f * cases[ci].gmag, 1.5f * cases[ci].gmag);
                if (t == 2) g[0] = 0.0f;
                lt_f2d(gd, g, n);
                if (!lt_check_ok(rep, lc_tensor_set(tg, g, 0, (size_t)n * 4), "%s: set grad", c.name)) break;
                lc_graph_set_adamw(c.g, lr, t, gs);
                if (!planned) {
                    if (!lt_case_compute(&c)) break;
                    planned = true;
                } else if (!lt_check_ok(rep, lc_graph_compute(c.g), "%s: compute step %d", c.name, t)) {
                    break;
                }
                ref_adamw_step(pd, md, vd, gd, n, lr, ap.beta1, ap.beta2, ap.eps, ap.weight_decay, gs, t);
                float *gp = lt_read_f32(&e, tp, "param"), *gm = lt_read_f32(&e, tm, "m"), *gv = lt_read_f32(&e, tv, "v");
                if (gp && gm && gv) {
                    lt_check_err(rep, lt_max_rel(gp, pd, n), TOL_F32, "%s: param after step %d", c.name, t);
                    lt_check_err(rep, lt_max_rel(gm, md, n), TOL_F32, "%s: m after step %d", c.name, t);
                    lt_check_err(rep, lt_max_rel(gv, vd, n), TOL_F32, "%s: v after step %d", c.name, t);
                }
                free(gp); free(gm); free(gv);
            }
        }
        lt_case_end(&c);
        free(p); free(g); free(pd); free(md); free(vd); free(gd);
    }
    lt_env_free(&e);
}

/* ---- lora_merge ----------------------------------------------------------------------------- */
/* Error of value `got` against exact `ref` in units of the spacing of dtype dt at ref. */
static double ulp_error(lc_dtype dt, double got, double ref) {
    int mant = dt == LC_F16 ? 10 : dt == LC_BF16 ? 7 : 23, emin = dt == LC_F16 ? -14 : -126;
    int ex;
    frexp(fabs(ref) > 0 ? fabs(ref) : ldexp(1.0, emin), &ex);
    int E = ex - 1 < emin ? emin : ex - 1;
    return fabs(got - ref) / ldexp(1.0, E - mant);
}

static void run_lora_merge(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const struct { lc_dtype dt; int64_t in, out, r; float scale; int via_op; } cases[] = {
        {LC_F32, 5, 7, 3, 2.0f, 1},     {LC_F32, 257, 200, 8, 0.5f, 0}, {LC_F32, 1025, 31, 1, -3.0f, 1},
        {LC_F32, 1, 1, 1, 1.0f, 0},     {LC_F16, 257, 31, 4, 1.5f, 1},  {LC_F16, 5, 7, 3, -0.25f, 0},
        {LC_BF16, 200, 13, 16, 2.0f, 1}, {LC_BF16, 33, 7, 2, 0.75f, 0}};
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 1515);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        lc_dtype dt = cases[ci].dt;
        int64_t in = cases[ci].in, out = cases[ci].out, rk = cases[ci].r, n = in * out;
        float s = cases[ci].scale;
        void *wraw;
        double *wd;
        make_weight(rep, dt, in, out, &r, &wraw, &wd);
        float *A = rnd(&r, in * rk, -0.5f, 0.7f), *B = rnd(&r, rk * out, -0.3f, 0.4f);
        double *Ad = lt_dup_d(A, in * rk), *Bd = lt_dup_d(B, rk * out), *ref = lt_dalloc(n);
        ref_lora_delta(ref, Ad, Bd, s, in, out, rk);
        for (int64_t i = 0; i < n; i++) ref[i] += wd[i];
        char name[128];
        snprintf(name, sizeof name, "lora_merge %s in=%lld out=%lld r=%lld s=%g (%s)", dtn(dt), (long long)in,
                 (long long)out, (long long)rk, s, cases[ci].via_op ? "graph op" : "lc_lora_merge");
        lc_tensor *tw = lt_new_raw(&e, dt, in, out, wraw, LC_TENSOR_FROZEN, "w");
        lc_tensor *ta = lt_new_f32(&e, in, rk, A, 0, "lora_A");
        lc_tensor *tb = lt_new_f32(&e, rk, out, B, 0, "lora_B");
        bool ran = false;
        if (tw && ta && tb) {
            if (cases[ci].via_op) {
                lt_case c;
                lt_case_begin(&c, &e, "%s", name);
                c.no_replay = true;
                lc_tensor *res = lc_lora_merge_op(c.g, tw, ta, tb, s);
                if (lt_case_built(&c, res, "lc_lora_merge_op")) {
                    lt_check(rep, res == tw, "%s: returns w", name);
                    ran = lt_case_compute(&c);
                }
                lt_case_end(&c);
            } else {
                ran = lt_check_ok(rep, lc_lora_merge(tw, ta, tb, s), "%s", name);
            }
        }
        float *got = ran ? lt_read_f32(&e, tw, "w") : NULL;
        if (got) {
            if (dt == LC_F32) {
                lt_check_err(rep, lt_max_rel(got, ref, n), 1e-6, "%s: w + s*B*A", name);
            } else {
                /* Rounded once from an F32 sum: within half a unit of the target format, plus a hair
                 * for the F32 accumulation of the delta. */
                double worst = 0.0;
                for (int64_t i = 0; i < n; i++) {
                    double u = ulp_error(dt, got[i], ref[i]);
                    if (u > worst) worst = u;
                }
                lt_check_err(rep, worst, 0.5 + 1e-3, "%s: w + s*B*A rounded once (ulps)", name);
            }
        }
        free(got); free(wraw); free(wd); free(A); free(B); free(Ad); free(Bd); free(ref);
    }
    lt_env_free(&e);
}

/* ---- lc_device_gemm ------------------------------------------------------------------------ */
static void run_gemm(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    static const int sizes[] = {1, 7, 31, 33, 257};
    lt_rng r;
    lt_rng_seed(&r, 1616);
    const size_t off_a = 3 * 4, off_b = 5 * 4, off_c = 7 * 4; /* byte offsets into the buffers */
    double worst = 0.0;
    int runs = 0;
    for (int tr = 0; tr < 4; tr++)
        for (int mi = 0; mi < 5; mi++)
            for (int ni = 0; ni < 5; ni++)
                for (int ki = 0; ki < 5; ki++) {
                    bool ta = tr & 1, tb = tr & 2;
                    int M = sizes[mi], N = sizes[ni], K = sizes[ki];
                    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
                    int64_t na = (int64_t)(ta ? K : M) * lda, nb = (int64_t)(tb ? N : K) * ldb, nc = (int64_t)M * ldc;
                    float *a = rnd(&r, na, -1.0f, 1.2f), *b = rnd(&r, nb, -0.9f, 1.0f), *c0 = rnd(&r, nc, -1.0f, 1.0f);
                    float *c = lt_falloc(nc);
                    const float alpha = 0.75f, beta = (K % 2) ? -0.5f : 0.0f;
                    lc_buffer *ba = NULL, *bb = NULL, *bc = NULL;
                    bool ok = lt_check_ok(rep, lc_buffer_alloc(dev, off_a + 4 * (size_t)na, &ba), "gemm alloc A") &&
                              lt_check_ok(rep, lc_buffer_alloc(dev, off_b + 4 * (size_t)nb, &bb), "gemm alloc B") &&
                              lt_check_ok(rep, lc_buffer_alloc(dev, off_c + 4 * (size_t)nc, &bc), "gemm alloc C") &&
                              lt_check_ok(rep, lc_buffer_upload(ba, off_a, a, 4 * (size_t)na), "gemm upload A") &&
                              lt_check_ok(rep, lc_buffer_upload(bb, off_b, b, 4 * (size_t)nb), "gemm upload B") &&
                              lt_check_ok(rep, lc_buffer_upload(bc, off_c, c0, 4 * (size_t)nc), "gemm upload C");
                    if (ok)
                        ok = lt_check_ok(rep,
                                         lc_device_gemm(dev, ta, tb, M, N, K, alpha, ba, off_a, lda, bb, off_b, ldb,
                                                        beta, bc, off_c, ldc),
                                         "lc_device_gemm(%c%c M=%d N=%d K=%d)", ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K) &&
                             lt_check_ok(rep, lc_device_synchronize(dev), "synchronize") &&
                             lt_check_ok(rep, lc_buffer_download(bc, off_c, c, 4 * (size_t)nc), "gemm download C");
                    if (ok) {
                        double *ref = lt_dalloc(M * (int64_t)N);
                        for (int m = 0; m < M; m++)
                            for (int n = 0; n < N; n++) {
                                double acc = 0.0;
                                for (int k = 0; k < K; k++) {
                                    double av = ta ? a[(int64_t)k * lda + m] : a[(int64_t)m * lda + k];
                                    double bv = tb ? b[(int64_t)n * ldb + k] : b[(int64_t)k * ldb + n];
                                    acc += av * bv;
                                }
                                ref[(int64_t)m * N + n] = alpha * acc + (beta != 0.0f ? beta * c0[(int64_t)m * ldc + n] : 0.0);
                            }
                        float *packed = lt_falloc(M * (int64_t)N);
                        int64_t pad_changed = 0;
                        for (int m = 0; m < M; m++)
                            for (int n = 0; n < ldc; n++) {
                                if (n < N) packed[(int64_t)m * N + n] = c[(int64_t)m * ldc + n];
                                else pad_changed += memcmp(&c[(int64_t)m * ldc + n], &c0[(int64_t)m * ldc + n], 4) != 0;
                            }
                        double err = lt_max_rel(packed, ref, M * (int64_t)N);
                        if (err > worst) worst = err;
                        lt_check_err(rep, err, TOL_F32, "gemm %c%c M=%d N=%d K=%d lda=%d ldb=%d ldc=%d beta=%g",
                                     ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, lda, ldb, ldc, beta);
                        lt_check(rep, pad_changed == 0, "gemm %c%c M=%d N=%d K=%d: %lld padding elements of C changed",
                                 ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, (long long)pad_changed);
                        free(ref); free(packed);
                        runs++;
                    }
                    lc_buffer_free(ba); lc_buffer_free(bb); lc_buffer_free(bc);
                    free(a); free(b); free(c0); free(c);
                }
    lt_log("  gemm: %d products (4 transpose combinations x sizes {1,7,31,33,257}^3), max err %.3g\n", runs, worst);
    /* Bad leading dimensions are an error, not a crash. */
    lc_buffer *buf = NULL;
    if (lt_check_ok(rep, lc_buffer_alloc(dev, 4096, &buf), "gemm alloc")) {
        lc_status st = lc_device_gemm(dev, false, false, 4, 4, 8, 1.0f, buf, 0, 7, buf, 0, 4, 0.0f, buf, 0, 4);
        lt_check(rep, st == LC_ERR_INVALID_ARG, "gemm lda=7 < K=8 returns LC_ERR_INVALID_ARG (got %s)", lc_status_str(st));
        st = lc_device_gemm(dev, false, false, 64, 64, 64, 1.0f, buf, 0, 64, buf, 0, 64, 0.0f, buf, 0, 64);
        lt_check(rep, st == LC_ERR_INVALID_ARG, "gemm past the end of the buffer returns LC_ERR_INVALID_ARG (got %s)",
                 lc_status_str(st));
        lc_buffer_free(buf);
    }
}

/* ---- builders reject bad input ------------------------------------------------------------- */
static void expect_reject(lt_report *rep, lc_graph *g, const lc_tensor *t, const char *what) {
    lc_status st = lc_graph_status(g);
    lt_check(rep, t == NULL && st != LC_OK, "%s is rejected (returned %s, status %s: %s)", what,
             t ? "a tensor" : "NULL", lc_status_str(st), lc_graph_error(g));
}

static void run_errors(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    lt_env e;
    lt_env_init(&e, dev, rep);
    lc_tensor *x = lt_new_f32(&e, 8, 3, NULL, LC_TENSOR_PARAM, "x");       /* [8, 3] */
    lc_tensor *w = lt_new_f32(&e, 7, 5, NULL, LC_TENSOR_FROZEN, "w");      /* [7, 5]: K mismatch */
    lc_tensor *b = lt_new_f32(&e, 3, 3, NULL, 0, "b");                     /* 8 % 3 != 0 */
    lc_tensor *ids_f = lt_new_f32(&e, 3, 1, NULL, 0, "ids_f32");
    lc_tensor *tab = lt_new_f32(&e, 8, 4, NULL, 0, "table");
    lc_tensor *lab = lt_new_i32(&e, 5, NULL, "labels5");
    lc_tensor *pos = lt_new_i32(&e, 3, NULL, "pos");
    lc_tensor *kv = lt_new_f32(&e, 6, 3, NULL, 0, "kv");
    if (!(x && w && b && ids_f && tab && lab && pos && kv)) {
        lt_env_free(&e);
        return;
    }
#define REJECT(expr, what)                                   \
    do {                                                     \
        lc_graph *g_ = lc_graph_new(dev);                    \
        lc_graph *g = g_;                                    \
        lc_tensor *t_ = (expr);                              \
        expect_reject(rep, g_, t_, what);                    \
        lc_graph_free(g_);                                   \
        (void)g;                                             \
    } while (0)
    REJECT(lc_mul_mat(g, x, w), "mul_mat with x.ne[0]=8 != w.ne[0]=7");
    REJECT(lc_add(g, x, b), "add with 8 % 3 != 0");
    REJECT(lc_mul(g, x, b), "mul with 8 % 3 != 0");
    REJECT(lc_get_rows(g, tab, ids_f), "get_rows with F32 ids");
    REJECT(lc_cross_entropy(g, x, lab, -100), "cross_entropy with 5 labels for 3 rows");
    REJECT(lc_rms_norm(g, x, NULL, 3, 1e-6f), "rms_norm with group 3 not dividing 8");
    REJECT(lc_rms_norm(g, x, b, 0, 1e-6f), "rms_norm with a [3,3] weight for rows of 8");
    REJECT(lc_rope(g, x, pos, 2, 3, LC_ROPE_NORM, 10000.0f, 1.0f), "rope with odd n_rot");
    REJECT(lc_rope(g, x, pos, 2, 6, LC_ROPE_NORM, 10000.0f, 1.0f), "rope with n_rot 6 > head_dim 4");
    REJECT(lc_rope(g, x, pos, 3, 2, LC_ROPE_NORM, 10000.0f, 1.0f), "rope with 8 channels for 3 heads");
    REJECT(lc_rope(g, x, lab, 2, 4, LC_ROPE_NORM, 10000.0f, 1.0f), "rope with 5 positions for 3 tokens");
    REJECT(lc_geglu(g, x, b), "geglu with different shapes");
    {
        /* A NULL input gives NULL (the error was recorded by whichever builder failed first). */
        lc_graph *g = lc_graph_new(dev);
        lt_check(rep, lc_swiglu(g, x, NULL) == NULL && lc_silu(g, NULL) == NULL,
                 "builders given a NULL input return NULL");
        lc_graph_free(g);
    }
    REJECT(lc_cpy(g, x, LC_Q4_K), "cpy to q4_K");
    REJECT(lc_fill(g, 0, 3, 1.0f), "fill with ne0 = 0");
    {
        lc_attention_params ap = {.n_head = 4, .n_kv = 3, .n_seq = 1, .causal = true, .window = 0, .scale = 0.5f};
        REJECT(lc_attention(g, x, x, x, &ap), "attention with n_head 4 % n_kv 3 != 0");
        ap.n_kv = 2;
        REJECT(lc_attention(g, x, kv, kv, &ap), "attention with k channels 6 != head_dim 2 * n_kv 2");
        ap.n_kv = 4;
        ap.n_seq = 2;
        REJECT(lc_attention(g, x, x, x, &ap), "attention with 3 tokens for 2 sequences");
    }
#undef REJECT
    /* A builder after planning: LC_ERR_STATE. */
    {
        lc_graph *g = lc_graph_new(dev);
        lc_tensor *y = lc_scale(g, x, 2.0f);
        if (lt_check(rep, y != NULL, "scale builds") &&
            lt_check_ok(rep, lc_graph_plan(g), "plan")) {
            lc_tensor *z = lc_scale(g, y, 2.0f);
            lt_check(rep, z == NULL && lc_graph_status(g) == LC_ERR_STATE,
                     "a builder after lc_graph_plan returns NULL with LC_ERR_STATE (got %s)",
                     lc_status_str(lc_graph_status(g)));
        }
        lc_graph_free(g);
    }
    /* ids outside [0, V) at compute time: an error status, never a crash. */
    {
        int32_t bad_ids[3] = {0, 4, 1}; /* V = 4 */
        lc_tensor *ti = lt_new_i32(&e, 3, bad_ids, "bad_ids");
        lc_graph *g = lc_graph_new(dev);
        lc_tensor *y = ti ? lc_get_rows(g, tab, ti) : NULL;
        if (y) lc_graph_set_output(g, y);
        if (lt_check(rep, y != NULL, "get_rows builds") && lt_check_ok(rep, lc_graph_plan(g), "plan")) {
            lc_status st = lc_graph_compute(g);
            lt_check(rep, st != LC_OK, "get_rows with id 4 >= V=4 returns an error at compute (got %s)",
                     lc_status_str(st));
        }
        lc_graph_free(g);
    }
    /* lc_graph_backward misuse. */
    {
        lc_graph *g = lc_graph_new(dev);
        lc_tensor *y = lc_scale(g, x, 2.0f); /* 24 elements */
        lc_status st = lc_graph_backward(g, y, NULL);
        lt_check(rep, st != LC_OK, "backward of a 24-element output without a seed is an error (got %s)", lc_status_str(st));
        lc_graph_free(g);
        g = lc_graph_new(dev);
        y = lc_sum_sq(g, lc_scale(g, b, 2.0f)); /* b is not a parameter */
        st = lc_graph_backward(g, y, NULL);
        lt_check(rep, st == LC_ERR_INVALID_ARG, "backward with no parameter reaching out returns LC_ERR_INVALID_ARG (got %s)",
                 lc_status_str(st));
        lc_graph_free(g);
        g = lc_graph_new(dev);
        lc_tensor *seed = lt_new_f32(&e, 8, 3, NULL, 0, "seed");
        y = lc_scale(g, x, 2.0f);
        if (lt_check_ok(rep, lc_graph_backward(g, y, seed), "backward")) {
            st = lc_graph_backward(g, y, seed);
            lt_check(rep, st == LC_ERR_STATE, "a second lc_graph_backward returns LC_ERR_STATE (got %s)", lc_status_str(st));
        }
        lc_graph_free(g);
        g = lc_graph_new(dev);
        y = lc_scale(g, x, 2.0f);
        if (lt_check_ok(rep, lc_graph_plan(g), "plan")) {
            st = lc_graph_backward(g, y, seed);
            lt_check(rep, st == LC_ERR_STATE, "lc_graph_backward after plan returns LC_ERR_STATE (got %s)", lc_status_str(st));
        }
        lc_graph_free(g);
    }
    /* compute before plan */
    {
        lc_graph *g = lc_graph_new(dev);
        lc_scale(g, x, 2.0f);
        lc_status st = lc_graph_compute(g);
        lt_check(rep, st == LC_ERR_STATE, "compute before plan returns LC_ERR_STATE (got %s)", lc_status_str(st));
        lc_graph_free(g);
    }
    lt_env_free(&e);
}

/* ---- replay semantics: gradients accumulate until zero_grad; a new step draws a new mask ------- */
static void run_replay(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info; (void)user;
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 1717);
    /* Parameter gradients are persistent and ADDED into (graph.h lc_graph_backward). */
    {
        const int64_t K = 33, M = 5, N = 7;
        float *x = rnd(&r, K * M, -1.0f, 1.2f), *w = rnd(&r, K * N, -0.8f, 1.0f);
        double *xd = lt_dup_d(x, K * M), *wd = lt_dup_d(w, K * N), *dx = lt_dalloc(K * M), *dw = lt_dalloc(K * N);
        lt_case c;
        lt_case_begin(&c, &e, "mul_mat gradient accumulation");
        lc_tensor *tx = lt_new_f32(&e, K, M, x, LC_TENSOR_PARAM, "x"), *tw = lt_new_f32(&e, K, N, w, LC_TENSOR_PARAM, "w");
        lc_tensor *y = lc_mul_mat(c.g, tx, tw);
        const double *seed = lt_case_built(&c, y, "lc_mul_mat") ? lt_case_backward(&c, y, &r, 0.0f) : NULL;
        if (seed && lt_case_compute(&c)) {
            ref_mul_mat_back(dx, dw, seed, xd, wd, K, M, N);
            static const char *const phase[] = {"first compute", "second compute without zero_grad (2x)",
                                                "after lc_graph_zero_grad"};
            for (int ph = 0; ph < 3; ph++) {
                if (ph == 1 && !lt_check_ok(rep, lc_graph_compute(c.g), "compute again")) break;
                if (ph == 2 && !(lt_check_ok(rep, lc_graph_zero_grad(c.g), "zero_grad") &&
                                 lt_check_ok(rep, lc_graph_compute(c.g), "compute after zero_grad")))
                    break;
                double f = ph == 1 ? 2.0 : 1.0;
                double *ex = lt_dalloc(K * M), *ew = lt_dalloc(K * N);
                for (int64_t i = 0; i < K * M; i++) ex[i] = f * dx[i];
                for (int64_t i = 0; i < K * N; i++) ew[i] = f * dw[i];
                float *gx = lt_read_f32(&e, tx->grad, "dx"), *gw = lt_read_f32(&e, tw->grad, "dw");
                if (gx) lt_check_err(rep, lt_max_rel(gx, ex, K * M), TOL_F32, "%s: dx %s", c.name, phase[ph]);
                if (gw) lt_check_err(rep, lt_max_rel(gw, ew, K * N), TOL_F32, "%s: dw %s", c.name, phase[ph]);
                free(gx); free(gw); free(ex); free(ew);
            }
        }
        lt_case_end(&c);
        free(x); free(w); free(xd); free(wd); free(dx); free(dw);
    }
    /* lc_graph_set_step: the same graph draws the mask of the step it is told. */
    {
        const int64_t in = 31, out = 13, rk = 4, T = 9;
        const float p = 0.4f;
        lc_lora_params lp = {.scaling = 0.75f, .dropout = p, .module_id = 77, .seed = 0xABCDEFu};
        float *x = rnd(&r, in * T, -1.0f, 1.2f), *w = rnd(&r, in * out, -0.5f, 0.6f);
        float *A = rnd(&r, in * rk, -0.3f, 0.4f), *B = rnd(&r, rk * out, -0.5f, 0.4f);
        double *xd = lt_dup_d(x, in * T), *wd = lt_dup_d(w, in * out), *Ad = lt_dup_d(A, in * rk), *Bd = lt_dup_d(B, rk * out);
        double *mult = lt_dalloc(in * T), *y = lt_dalloc(out * T), *dA = lt_dalloc(in * rk), *dB = lt_dalloc(rk * out);
        lt_case c;
        lt_case_begin(&c, &e, "lora dropout across steps");
        lc_tensor *ta = lt_new_f32(&e, in, rk, A, LC_TENSOR_PARAM, "lora_A"), *tb = lt_new_f32(&e, rk, out, B, LC_TENSOR_PARAM, "lora_B");
        lc_tensor *ty = lc_lora(c.g, lt_new_f32(&e, in, T, x, 0, "x"), lt_new_f32(&e, in, out, w, LC_TENSOR_FROZEN, "w"), ta,
                                tb, &lp);
        if (lt_case_built(&c, ty, "lc_lora")) lc_graph_set_output(c.g, ty);
        const double *seed = lt_case_built(&c, ty, "lc_lora") ? lt_case_backward(&c, ty, &r, 0.0f) : NULL;
        float *prev = NULL;
        for (uint64_t step = 1; seed && step <= 3; step++) {
            lc_graph_set_step(c.g, step * 1000 + 1);
            bool ok = step == 1 ? lt_case_compute(&c)
                                : lt_check_ok(rep, lc_graph_zero_grad(c.g), "zero_grad") &&
                                      lt_check_ok(rep, lc_graph_compute(c.g), "compute step %llu", (unsigned long long)step);
            if (!ok) break;
            ref_lora_dropout_mult(mult, lp.seed, step * 1000 + 1, lp.module_id, p, in, T);
            ref_lora(y, NULL, xd, wd, Ad, Bd, mult, lp.scaling, in, out, rk, T);
            ref_lora_back(NULL, NULL, dA, dB, seed, xd, wd, Ad, Bd, mult, lp.scaling, in, out, rk, T);
            float *gy = lt_read_f32(&e, ty, "y"), *ga = lt_read_f32(&e, ta->grad, "dA"), *gb = lt_read_f32(&e, tb->grad, "dB");
            if (gy) lt_check_err(rep, lt_max_rel(gy, y, out * T), TOL_F32, "%s: y at step %llu", c.name, (unsigned long long)step * 1000 + 1);
            if (ga) lt_check_err(rep, lt_max_rel(ga, dA, in * rk), TOL_F32, "%s: dA at step %llu", c.name, (unsigned long long)step * 1000 + 1);
            if (gb) lt_check_err(rep, lt_max_rel(gb, dB, rk * out), TOL_F32, "%s: dB at step %llu", c.name, (unsigned long long)step * 1000 + 1);
            if (gy && prev) lt_check(rep, memcmp(gy, prev, (size_t)(out * T) * 4) != 0, "%s: a new step gives a new mask", c.name);
            free(prev);
            prev = gy;
            free(ga); free(gb);
        }
        free(prev);
        lt_case_end(&c);
        free(x); free(w); free(A); free(B); free(xd); free(wd); free(Ad); free(Bd); free(mult); free(y); free(dA); free(dB);
    }
    lt_env_free(&e);
}

/* ---- Check plumbing ------------------------------------------------------------------------- */
#define OP_TEST(name)                                                              \
    START_TEST(test_##name) { ck_assert_int_eq(lt_for_each_device("op." #name, run_##name, NULL), 0); } \
    END_TEST

OP_TEST(backends)
OP_TEST(fill)
OP_TEST(get_rows)
OP_TEST(mul_mat)
OP_TEST(lora)
OP_TEST(binary)
OP_TEST(scale)
OP_TEST(rms_norm)
OP_TEST(rope)
OP_TEST(attention)
OP_TEST(activations)
OP_TEST(cross_entropy)
OP_TEST(dequantize)
OP_TEST(cpy)
OP_TEST(sum_sq)
OP_TEST(adamw)
OP_TEST(lora_merge)
OP_TEST(gemm)
OP_TEST(errors)
OP_TEST(replay)

static Suite *op_suite(void) {
    Suite *s = suite_create("op");
    struct { const char *name; const TTest *fn; } tests[] = {
        {"backends", test_backends},     {"fill", test_fill},         {"get_rows", test_get_rows},
        {"mul_mat", test_mul_mat},       {"lora", test_lora},         {"add_mul", test_binary},
        {"scale", test_scale},           {"rms_norm", test_rms_norm}, {"rope", test_rope},
        {"attention", test_attention},   {"activations", test_activations},
        {"cross_entropy", test_cross_entropy}, {"dequantize", test_dequantize}, {"cpy", test_cpy},
        {"sum_sq", test_sum_sq},         {"adamw", test_adamw},       {"lora_merge", test_lora_merge},
        {"gemm", test_gemm},             {"errors", test_errors},     {"replay", test_replay}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        TCase *tc = tcase_create(tests[i].name);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, tests[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) {
    const int failed = lt_run_suite(op_suite());
    return failed == 0 ? 0 : 1;
}
