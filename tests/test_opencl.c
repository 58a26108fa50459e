/* lorac — OpenCL backend tests (Check suite "opencl").
 *
 * For every OpenCL device lc_device_list offers (none: a visible SKIP with the reason, a failure
 * when LORAC_REQUIRE_BACKENDS names "opencl"):
 *  - enumeration and device info;
 *  - every op of lorac/graph.h, forward and backward, on the backend shapes of TESTCASES.md
 *    ("Backends": sizes 1, odd primes, just under / over powers of two, leading dimensions larger
 *    than the minimum, reductions around and past the work-group size, every weight dtype): the
 *    same graph with the same inputs runs on the CPU device and on the OpenCL device and every
 *    output and parameter gradient must agree with NMSE <= 1e-7 (DESIGN.md §4); the OpenCL graph
 *    is then replayed and must give the same bits (results stable across repeated runs);
 *  - lc_device_gemm with all four transpose combinations and padded leading dimensions, through
 *    the device's own kernel, the local-memory tiled kernel and CLBlast (forced with
 *    $LORAC_OPENCL_GEMM / $LORAC_OPENCL_GEMM_KERNEL, read when a device is opened);
 *  - the quantized and attention products again through the tiled kernel the GPUs use;
 *  - the program cache: a first open in an empty cache directory builds and writes binaries and
 *    times the GEMM engines once, a second open loads the binaries (cache hits, files untouched)
 *    and the engine choice, a corrupt binary is rebuilt;
 *  - errors: ids outside the table, allocations past the device limit.
 * Check forks every test, and devices are opened inside the test, never in the parent process.
 * The CPU backend is the reference (backends/cpu, itself checked against plain loops by
 * tests/test_ops.c).
 */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/lt_device.h"
#include "common/lt_util.h"
#include "common/ref_quant.h"
#include "common/lt_suite.h"
#include "lorac/lorac.h"

#define NMSE_TOL 1e-7
#define MAX_OCL 8
#define MAX_LEAF 8
#define MAX_COLLECT 16

/* ---- devices ---------------------------------------------------------------------------------- */

/* OpenCL device specs; prints the SKIP reason when there are none. Returns the count, or -1 when
 * none exist although LORAC_REQUIRE_BACKENDS names opencl. */
static int ocl_devices(const char *test, char specs[][32]) {
    lc_device_info infos[32];
    int count = 0, n = 0;
    if (lc_device_list(infos, 32, &count) != LC_OK) return 0;
    for (int i = 0; i < count && i < 32; i++)
        if (strcmp(infos[i].backend, "opencl") == 0 && n < MAX_OCL) snprintf(specs[n++], 32, "%s", infos[i].spec);
    if (n == 0) {
        const char *why = lc_device_skipped("opencl");
        lt_log("[%s] SKIP opencl: %s\n", test, why ? why : "no OpenCL device");
        if (lt_missing_required_backends(infos, count > 32 ? 32 : count) > 0) return -1;
    }
    return n;
}

typedef void (*ocl_test_fn)(lc_device *cpu, lc_device *dev, lt_report *rep);

/* Run fn on every OpenCL device next to the CPU device; the number of failures. */
static int for_each_ocl(const char *test, ocl_test_fn fn) {
    char specs[MAX_OCL][32];
    int n = ocl_devices(test, specs);
    if (n < 0) return 1;
    int failures = 0;
    lc_device *cpu = NULL;
    if (n > 0 && lc_device_open("cpu", &cpu) != LC_OK) {
        lt_log("  FAIL [%s] cannot open the CPU device: %s\n", test, lc_last_error());
        return 1;
    }
    for (int i = 0; i < n; i++) {
        lc_device *dev = NULL;
        if (lc_device_open(specs[i], &dev) != LC_OK) {
            lt_log("  FAIL [%s] lc_device_open(%s): %s\n", test, specs[i], lc_last_error());
            failures++;
            continue;
        }
        lt_report rep;
        lt_report_begin(&rep, test, specs[i]);
        fn(cpu, dev, &rep);
        lt_report_end(&rep);
        failures += rep.failures;
        lc_device_close(dev);
    }
    lc_device_close(cpu);
    return failures;
}

/* ---- one graph on two devices ------------------------------------------------------------------ */

typedef struct leaf {
    lc_dtype dt;
    int64_t ne0, ne1;
    uint32_t flags;
    void *data;   /* host bytes (owned by the case) */
    bool collect; /* compare this leaf's contents after compute (in-place ops) */
} leaf;

typedef lc_tensor *(*build_fn)(lc_graph *g, lc_tensor *const *lv, const void *arg);

typedef struct ocase {
    char name[160];
    int nleaf;
    leaf lf[MAX_LEAF];
    build_fn build;
    const void *arg;
    bool backward; /* seed the output with random values and compare parameter gradients */
    bool replay;   /* second compute must give the same bits (false for in-place ops) */
} ocase;

typedef struct results {
    int n;
    float *v[MAX_COLLECT];
    int64_t len[MAX_COLLECT];
    char what[MAX_COLLECT][48];
} results;

static void results_free(results *r) {
    for (int i = 0; i < r->n; i++) free(r->v[i]);
    r->n = 0;
}

static void collect(results *r, const lc_tensor *t, const char *what) {
    if (r->n >= MAX_COLLECT || !t) return;
    int64_t n = lc_nelements(t);
    float *v = lt_falloc(n);
    if (lc_tensor_get_f32(t, v, n) != LC_OK) {
        free(v);
        return;
    }
    r->v[r->n] = v;
    r->len[r->n] = n;
    snprintf(r->what[r->n], sizeof r->what[0], "%s", what);
    r->n++;
}

static size_t leaf_bytes(const leaf *l) { return lc_row_size(l->dt, l->ne0) * (size_t)l->ne1; }

/* Build, plan, compute (and replay) the case on dev; results in out. False after a failure. */
static bool run_on(lc_device *dev, const ocase *oc, const float *seed, results *out, lt_report *rep) {
    const lc_device_info *info = lc_device_get_info(dev);
    lc_tensor *t[MAX_LEAF] = {0}, *seed_t = NULL;
    lc_graph *g = NULL;
    bool ok = true;
    out->n = 0;
    for (int i = 0; i < oc->nleaf && ok; i++) {
        const leaf *l = &oc->lf[i];
        int64_t ne[2] = {l->ne0, l->ne1};
        char nm[16];
        snprintf(nm, sizeof nm, "leaf%d", i);
        ok = lt_check_ok(rep, lc_tensor_new(dev, l->dt, 2, ne, nm, l->flags, &t[i]), "%s: %s leaf %d", oc->name, info->spec, i) &&
             lt_check_ok(rep, lc_tensor_set(t[i], l->data, 0, leaf_bytes(l)), "%s: upload leaf %d", oc->name, i);
    }
    lc_tensor *y = NULL;
    if (ok) {
        g = lc_graph_new(dev);
        y = oc->build(g, t, oc->arg);
        ok = lt_check(rep, y != NULL, "%s: build on %s (%s)", oc->name, info->spec, lc_graph_error(g));
    }
    const lc_node *node = y ? lc_tensor_node(y) : NULL;
    if (ok && y->graph) {
        lc_graph_set_output(g, y);
        for (int i = 1; node && i < 4; i++)
            if (node->dst[i] && node->dst[i]->graph) lc_graph_set_output(g, node->dst[i]);
    }
    if (ok && oc->backward) {
        int64_t ne[2] = {y->ne[0], lc_nelements(y) / y->ne[0]};
        ok = lt_check_ok(rep, lc_tensor_new(dev, LC_F32, 2, ne, "seed", 0, &seed_t), "%s: seed", oc->name) &&
             lt_check_ok(rep, lc_tensor_set_f32(seed_t, seed, lc_nelements(y)), "%s: seed upload", oc->name) &&
             lt_check_ok(rep, lc_graph_backward(g, y, seed_t), "%s: backward on %s", oc->name, info->spec);
    }
    ok = ok && lt_check_ok(rep, lc_graph_plan(g), "%s: plan on %s", oc->name, info->spec) &&
         lt_check_ok(rep, lc_graph_zero_grad(g), "%s: zero_grad", oc->name) &&
         lt_check_ok(rep, lc_graph_compute(g), "%s: compute on %s", oc->name, info->spec);
    for (int pass = 0; ok && pass < (oc->replay ? 2 : 1); pass++) {
        results r = {0};
        results *dst = pass == 0 ? out : &r;
        if (pass == 1)
            ok = lt_check_ok(rep, lc_graph_zero_grad(g), "%s: zero_grad", oc->name) &&
                 lt_check_ok(rep, lc_graph_compute(g), "%s: replay on %s", oc->name, info->spec);
        if (!ok) break;
        collect(dst, y, "y");
        for (int i = 1; node && i < 4; i++)
            if (node->dst[i] && node->dst[i] != y) collect(dst, node->dst[i], i == 1 ? "dst1" : "dst2+");
        for (int i = 0; i < oc->nleaf; i++) {
            char w[48];
            if (t[i]->grad) {
                snprintf(w, sizeof w, "grad of leaf %d", i);
                collect(dst, t[i]->grad, w);
            }
            if (oc->lf[i].collect) {
                snprintf(w, sizeof w, "leaf %d after compute", i);
                collect(dst, t[i], w);
            }
        }
        if (pass == 1) {
            bool same = r.n == out->n;
            for (int i = 0; same && i < r.n; i++)
                same = r.len[i] == out->len[i] && memcmp(r.v[i], out->v[i], (size_t)r.len[i] * sizeof(float)) == 0;
            lt_check(rep, same, "%s: replay on %s gives the same bits", oc->name, info->spec);
            results_free(&r);
        }
    }
    lc_graph_free(g);
    lc_tensor_free(seed_t);
    for (int i = 0; i < oc->nleaf; i++) lc_tensor_free(t[i]);
    return ok;
}

/* Run on the CPU and on dev; every collected array must agree (NMSE <= 1e-7). */
static void run_case(lc_device *cpu, lc_device *dev, ocase *oc, lt_report *rep, lt_rng *r) {
    float *seed = NULL;
    if (oc->backward) {
        /* the output shape is only known after building: 1M floats cover every case here */
        seed = lt_falloc(1 << 20);
        lt_fill_uniform(r, seed, 1 << 20, -1.0f, 1.0f);
    }
    results a = {0}, b = {0};
    bool ok = run_on(cpu, oc, seed, &a, rep) && run_on(dev, oc, seed, &b, rep);
    if (ok && lt_check(rep, a.n == b.n && a.n > 0, "%s: same outputs on both devices (%d, %d)", oc->name, a.n, b.n))
        for (int i = 0; i < a.n; i++) {
            if (!lt_check(rep, a.len[i] == b.len[i], "%s: %s length", oc->name, a.what[i])) continue;
            double *ref = lt_dup_d(a.v[i], a.len[i]);
            lt_check_err(rep, lt_nmse(b.v[i], ref, a.len[i]), NMSE_TOL, "%s: %s vs cpu (NMSE)", oc->name, a.what[i]);
            free(ref);
        }
    results_free(&a);
    results_free(&b);
    free(seed);
    for (int i = 0; i < oc->nleaf; i++) free(oc->lf[i].data);
    oc->nleaf = 0;
}

static void case_begin(ocase *oc, build_fn fn, const void *arg, bool backward, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void case_begin(ocase *oc, build_fn fn, const void *arg, bool backward, const char *fmt, ...) {
    memset(oc, 0, sizeof *oc);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(oc->name, sizeof oc->name, fmt, ap);
    va_end(ap);
    oc->build = fn;
    oc->arg = arg;
    oc->backward = backward;
    oc->replay = true;
}

/* Random F32 leaf [ne0, ne1] with values in [lo, hi). */
static void add_f32(ocase *oc, lt_rng *r, int64_t ne0, int64_t ne1, uint32_t flags, float lo, float hi) {
    leaf *l = &oc->lf[oc->nleaf++];
    l->dt = LC_F32;
    l->ne0 = ne0;
    l->ne1 = ne1;
    l->flags = flags;
    l->data = lt_falloc(ne0 * ne1);
    lt_fill_uniform(r, l->data, ne0 * ne1, lo, hi);
}

/* I32 leaf [n] with the given values (copied). */
static void add_i32(ocase *oc, const int32_t *v, int64_t n) {
    leaf *l = &oc->lf[oc->nleaf++];
    l->dt = LC_I32;
    l->ne0 = n;
    l->ne1 = 1;
    l->data = lt_ialloc(n);
    memcpy(l->data, v, (size_t)n * sizeof(int32_t));
}

/* Leaf of any dtype [ne0, ne1] filled with random valid blocks (F32 / F16 / BF16: values). */
static void add_weight(ocase *oc, lt_rng *r, lc_dtype dt, int64_t ne0, int64_t ne1, uint32_t flags) {
    leaf *l = &oc->lf[oc->nleaf++];
    l->dt = dt;
    l->ne0 = ne0;
    l->ne1 = ne1;
    l->flags = flags;
    l->data = calloc(1, leaf_bytes(l) + 1);
    if (dt == LC_F32) lt_fill_uniform(r, l->data, ne0 * ne1, -0.6f, 1.0f);
    else ref_random_blocks(dt, l->data, ne0 * ne1, 0.5, r);
}

/* Weight dtypes this liblorac knows, in a fixed order. */
static int weight_dtypes(lc_dtype *out) {
    static const int ids[] = {0, 1, 30, 2, 3, 6, 7, 8, 12, 13, 14};
    int n = 0;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (lc_dtype_get(ids[i])) out[n++] = (lc_dtype)ids[i];
    return n;
}

/* ---- builders ---------------------------------------------------------------------------------- */

static lc_tensor *b_mul_mat(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    (void)arg;
    return lc_mul_mat(g, lv[0], lv[1]);
}
static lc_tensor *b_lora(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    return lc_lora(g, lv[0], lv[1], lv[2], lv[3], (const lc_lora_params *)arg);
}
static lc_tensor *b_add(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    (void)arg;
    return lc_add(g, lv[0], lv[1]);
}
static lc_tensor *b_mul(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    (void)arg;
    return lc_mul(g, lv[0], lv[1]);
}
static lc_tensor *b_unary(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    const int op = *(const int *)arg;
    return op == 0 ? lc_scale(g, lv[0], -0.75f) : op == 1 ? lc_gelu_tanh(g, lv[0]) : lc_silu(g, lv[0]);
}
static lc_tensor *b_glu(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    return *(const int *)arg ? lc_geglu(g, lv[0], lv[1]) : lc_swiglu(g, lv[0], lv[1]);
}
typedef struct rms_arg {
    int64_t group;
    bool weight;
    float eps;
} rms_arg;
static lc_tensor *b_rms(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    const rms_arg *a = arg;
    return lc_rms_norm(g, lv[0], a->weight ? lv[1] : NULL, a->group, a->eps);
}
typedef struct rope_arg {
    int n_head, n_rot, mode;
    float base, scale;
} rope_arg;
static lc_tensor *b_rope(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    const rope_arg *a = arg;
    return lc_rope(g, lv[0], lv[1], a->n_head, a->n_rot, a->mode, a->base, a->scale);
}
static lc_tensor *b_attn(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    return lc_attention(g, lv[0], lv[1], lv[2], (const lc_attention_params *)arg);
}
typedef struct ce_arg {
    int ignore;
    float denom;
} ce_arg;
static lc_tensor *b_ce(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    const ce_arg *a = arg;
    lc_tensor *y = lc_cross_entropy(g, lv[0], lv[1], a->ignore);
    if (y && a->denom > 0.0f) lc_tensor_node(y)->fp[0] = a->denom;
    return y;
}
static lc_tensor *b_get_rows(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    (void)arg;
    return lc_get_rows(g, lv[0], lv[1]);
}
static lc_tensor *b_dequant(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    (void)arg;
    return lc_dequantize(g, lv[0]);
}
static lc_tensor *b_cpy(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    return lc_cpy(g, lv[0], *(const lc_dtype *)arg);
}
static lc_tensor *b_sum_sq(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    (void)arg;
    return lc_sum_sq(g, lv[0]);
}
static lc_tensor *b_fill(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    (void)lv;
    const int64_t *ne = arg;
    return lc_fill(g, ne[0], ne[1], -1.25f);
}
static lc_tensor *b_adamw(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    lc_tensor *p = lc_adamw(g, lv[0], lv[1], lv[2], lv[3], (const lc_adamw_params *)arg);
    if (p) lc_graph_set_adamw(g, 1e-2f, 3, 0.5f);
    return p;
}
static lc_tensor *b_merge(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    return lc_lora_merge_op(g, lv[0], lv[1], lv[2], *(const float *)arg);
}
/* A small chain whose backward produces accumulating gradients: y = rms_norm(silu(x) * x + x). */
static lc_tensor *b_chain(lc_graph *g, lc_tensor *const *lv, const void *arg) {
    (void)arg;
    lc_tensor *s = lc_mul(g, lc_silu(g, lv[0]), lv[0]);
    return lc_rms_norm(g, lc_add(g, s, lv[0]), lv[1], 0, 1e-6f);
}

/* ---- tests: enumeration ------------------------------------------------------------------------ */

static void t_enumerate(lc_device *cpu, lc_device *dev, lt_report *rep) {
    (void)cpu;
    const lc_device_info *in = lc_device_get_info(dev);
    lt_check(rep, strncmp(in->spec, "opencl:", 7) == 0 && strcmp(in->backend, "opencl") == 0, "spec '%s' backend '%s'",
             in->spec, in->backend);
    lt_check(rep, in->name[0] && in->vendor[0] && in->driver[0], "name '%s', vendor '%s', driver '%s'", in->name, in->vendor,
             in->driver);
    lt_check(rep, strncmp(in->api_version, "OpenCL", 6) == 0, "api_version '%s' names the OpenCL version", in->api_version);
    lt_check(rep, in->memory_bytes > 0 && in->compute_units > 0, "memory %llu bytes, %d compute units",
             (unsigned long long)in->memory_bytes, in->compute_units);
    lt_check(rep, strstr(in->extra, "platform") != NULL && strstr(in->extra, "ext:") != NULL, "extra '%s'", in->extra);
    lt_log("  %s: '%s' (%s), %s, driver %s, %llu MiB, %d CUs%s; %s\n", in->spec, in->name, in->vendor, in->api_version,
           in->driver, (unsigned long long)(in->memory_bytes >> 20), in->compute_units, in->is_cpu ? ", CPU device" : "",
           in->extra);
    /* the spec a second time opens an independent context */
    lc_device *again = NULL;
    if (lt_check_ok(rep, lc_device_open(in->spec, &again), "open %s twice", in->spec)) lc_device_close(again);
    lc_device *none = NULL;
    lc_status st = lc_device_open("opencl:97", &none);
    lt_check(rep, st == LC_ERR_NO_DEVICE && none == NULL, "opencl:97 gives LC_ERR_NO_DEVICE (got %s)", lc_status_str(st));
}

/* ---- tests: products --------------------------------------------------------------------------- */

static void t_mul_mat(lc_device *cpu, lc_device *dev, lt_report *rep) {
    lt_rng r;
    lt_rng_seed(&r, 71);
    ocase oc;
    /* F32: sizes 1, primes, just under / over powers of two, long K; backward gives dx and dw */
    static const int64_t f32[][3] = {{1, 1, 1}, {7, 3, 5}, {31, 17, 1}, {255, 33, 63}, {257, 65, 129},
                                     {1025, 9, 31}, {64, 129, 16}, {33, 1, 257}, {640, 130, 8}};
    for (size_t i = 0; i < sizeof f32 / sizeof f32[0]; i++) {
        const int64_t K = f32[i][0], M = f32[i][1], N = f32[i][2];
        case_begin(&oc, b_mul_mat, NULL, true, "mul_mat f32 K=%lld M=%lld N=%lld", (long long)K, (long long)M, (long long)N);
        add_f32(&oc, &r, K, M, LC_TENSOR_PARAM, -1.0f, 1.2f);
        add_f32(&oc, &r, K, N, LC_TENSOR_PARAM, -0.8f, 1.0f);
        run_case(cpu, dev, &oc, rep, &r);
    }
    /* every weight dtype, K a multiple of its block, odd M and N; backward gives dx */
    lc_dtype dts[16];
    int nd = weight_dtypes(dts);
    for (int d = 1; d < nd; d++) {
        const int64_t bs = lc_dtype_get(dts[d])->block_size;
        const int64_t shapes[][3] = {{bs, 1, 1}, {bs * 3, 17, 31}, {bs == 1 ? 257 : bs * 9, 65, 129}};
        for (int s = 0; s < 3; s++) {
            const int64_t K = shapes[s][0], M = shapes[s][1], N = shapes[s][2];
            case_begin(&oc, b_mul_mat, NULL, true, "mul_mat %s K=%lld M=%lld N=%lld", lc_dtype_name(dts[d]), (long long)K,
                       (long long)M, (long long)N);
            add_f32(&oc, &r, K, M, LC_TENSOR_PARAM, -1.0f, 1.2f);
            add_weight(&oc, &r, dts[d], K, N, LC_TENSOR_FROZEN);
            run_case(cpu, dev, &oc, rep, &r);
        }
    }
}

static void t_lora(lc_device *cpu, lc_device *dev, lt_report *rep) {
    lt_rng r;
    lt_rng_seed(&r, 72);
    static const struct { int64_t in, out, rk, T; float p; } sh[] = {
        {32, 1, 1, 1, 0.0f}, {64, 33, 8, 17, 0.1f}, {256, 129, 4, 31, 0.0f}, {640, 65, 16, 9, 0.25f}};
    lc_dtype dts[16];
    int nd = weight_dtypes(dts);
    ocase oc;
    for (int d = 0; d < nd; d++)
        for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++) {
            const int64_t bs = lc_dtype_get(dts[d])->block_size;
            if (sh[i].in % bs) continue;
            if (d > 0 && d % 2 == (int)(i % 2)) continue; /* every dtype, half the shapes each */
            static lc_lora_params lp[4];
            lp[i] = (lc_lora_params){.scaling = 1.5f, .dropout = sh[i].p, .module_id = 5 + (uint32_t)i, .seed = 0x1234 + i};
            case_begin(&oc, b_lora, &lp[i], true, "lora %s in=%lld out=%lld r=%lld T=%lld p=%g", lc_dtype_name(dts[d]),
                       (long long)sh[i].in, (long long)sh[i].out, (long long)sh[i].rk, (long long)sh[i].T, sh[i].p);
            add_f32(&oc, &r, sh[i].in, sh[i].T, LC_TENSOR_PARAM, -1.0f, 1.1f);
            add_weight(&oc, &r, dts[d], sh[i].in, sh[i].out, LC_TENSOR_FROZEN);
            add_f32(&oc, &r, sh[i].in, sh[i].rk, LC_TENSOR_PARAM, -0.3f, 0.4f);
            add_f32(&oc, &r, sh[i].rk, sh[i].out, LC_TENSOR_PARAM, -0.5f, 0.4f);
            run_case(cpu, dev, &oc, rep, &r);
        }
}

/* C = alpha op(A) op(B) + beta C for the four transpose combinations, padded leading dims, byte
 * offsets, compared with the CPU device's GEMM (NMSE) and padding untouched. */
static void gemm_sweep(lc_device *cpu, lc_device *dev, lt_report *rep, const char *engine) {
    static const int sizes[] = {1, 7, 33, 64, 65, 257};
    const int ns = (int)(sizeof sizes / sizeof sizes[0]);
    lt_rng r;
    lt_rng_seed(&r, 73);
    int runs = 0;
    for (int tr = 0; tr < 4; tr++)
        for (int mi = 0; mi < ns; mi++)
            for (int ni = 0; ni < ns; ni++)
                for (int ki = 0; ki < ns; ki++) {
                    if ((mi + 2 * ni + 3 * ki + tr) % 3 != 0 && !(mi == ns - 1 && ni == ns - 1 && ki == ns - 1)) continue;
                    const bool ta = tr & 1, tb = tr & 2;
                    const int M = sizes[mi], N = sizes[ni], K = sizes[ki];
                    const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 5;
                    const int64_t na = (int64_t)(ta ? K : M) * lda, nb = (int64_t)(tb ? N : K) * ldb, nc = (int64_t)M * ldc;
                    const size_t oa = 4 * 3, ob = 4 * 2, ocf = 4 * 7;
                    float *a = lt_falloc(na), *b = lt_falloc(nb), *c0 = lt_falloc(nc), *c1 = lt_falloc(nc), *c2 = lt_falloc(nc);
                    lt_fill_uniform(&r, a, na, -1.0f, 1.2f);
                    lt_fill_uniform(&r, b, nb, -0.9f, 1.0f);
                    lt_fill_uniform(&r, c0, nc, -1.0f, 1.0f);
                    const float alpha = 0.75f, beta = (K % 2) ? -0.5f : 0.0f;
                    lc_device *devs[2] = {cpu, dev};
                    float *outs[2] = {c1, c2};
                    bool ok = true;
                    for (int d = 0; d < 2 && ok; d++) {
                        lc_buffer *ba = NULL, *bb = NULL, *bc = NULL;
                        ok = lc_buffer_alloc(devs[d], oa + 4 * (size_t)na, &ba) == LC_OK &&
                             lc_buffer_alloc(devs[d], ob + 4 * (size_t)nb, &bb) == LC_OK &&
                             lc_buffer_alloc(devs[d], ocf + 4 * (size_t)nc, &bc) == LC_OK &&
                             lc_buffer_upload(ba, oa, a, 4 * (size_t)na) == LC_OK &&
                             lc_buffer_upload(bb, ob, b, 4 * (size_t)nb) == LC_OK &&
                             lc_buffer_upload(bc, ocf, c0, 4 * (size_t)nc) == LC_OK;
                        ok = ok && lt_check_ok(rep,
                                               lc_device_gemm(devs[d], ta, tb, M, N, K, alpha, ba, oa, lda, bb, ob, ldb, beta,
                                                              bc, ocf, ldc),
                                               "gemm[%s] %c%c M=%d N=%d K=%d", engine, ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K);
                        ok = ok && lc_device_synchronize(devs[d]) == LC_OK &&
                             lc_buffer_download(bc, ocf, outs[d], 4 * (size_t)nc) == LC_OK;
                        lc_buffer_free(ba);
                        lc_buffer_free(bb);
                        lc_buffer_free(bc);
                    }
                    if (ok) {
                        float *p1 = lt_falloc((int64_t)M * N), *p2 = lt_falloc((int64_t)M * N);
                        int64_t pad = 0;
                        for (int m = 0; m < M; m++)
                            for (int n = 0; n < ldc; n++) {
                                if (n < N) {
                                    p1[(int64_t)m * N + n] = c1[(int64_t)m * ldc + n];
                                    p2[(int64_t)m * N + n] = c2[(int64_t)m * ldc + n];
                                } else {
                                    pad += memcmp(&c2[(int64_t)m * ldc + n], &c0[(int64_t)m * ldc + n], 4) != 0;
                                }
                            }
                        double *ref = lt_dup_d(p1, (int64_t)M * N);
                        lt_check_err(rep, lt_nmse(p2, ref, (int64_t)M * N), NMSE_TOL, "gemm[%s] %c%c M=%d N=%d K=%d beta=%g",
                                     engine, ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, beta);
                        lt_check(rep, pad == 0, "gemm[%s] %c%c M=%d N=%d K=%d: %lld padding elements changed", engine,
                                 ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, (long long)pad);
                        free(ref);
                        free(p1);
                        free(p2);
                        runs++;
                    }
                    free(a);
                    free(b);
                    free(c0);
                    free(c1);
                    free(c2);
                }
    lt_log("  gemm[%s]: %d products over 4 transpose combinations\n", engine, runs);
}

static void t_gemm(lc_device *cpu, lc_device *dev, lt_report *rep) { gemm_sweep(cpu, dev, rep, getenv("LORAC_OPENCL_GEMM")); }

/* ---- tests: element-wise, norms, rope, attention, loss ----------------------------------------- */

static void t_elementwise(lc_device *cpu, lc_device *dev, lt_report *rep) {
    lt_rng r;
    lt_rng_seed(&r, 74);
    ocase oc;
    static const int64_t bin[][4] = {{1, 1, 1, 1}, {257, 3, 257, 3}, {255, 33, 1, 1}, {640, 31, 640, 1},
                                     {1025, 7, 5, 7}, {64, 65, 1, 65}, {63, 257, 21, 1}};
    for (size_t i = 0; i < sizeof bin / sizeof bin[0]; i++)
        for (int op = 0; op < 2; op++) {
            case_begin(&oc, op ? b_mul : b_add, NULL, true, "%s a=[%lld,%lld] b=[%lld,%lld]", op ? "mul" : "add",
                       (long long)bin[i][0], (long long)bin[i][1], (long long)bin[i][2], (long long)bin[i][3]);
            add_f32(&oc, &r, bin[i][0], bin[i][1], LC_TENSOR_PARAM, -1.0f, 1.3f);
            add_f32(&oc, &r, bin[i][2], bin[i][3], LC_TENSOR_PARAM, -0.7f, 1.1f);
            run_case(cpu, dev, &oc, rep, &r);
        }
    static const int64_t un[][2] = {{1, 1}, {257, 3}, {1025, 33}};
    static const int ops[3] = {0, 1, 2};
    static const char *const names[3] = {"scale", "gelu_tanh", "silu"};
    for (size_t i = 0; i < 3; i++)
        for (int op = 0; op < 3; op++) {
            case_begin(&oc, b_unary, &ops[op], true, "%s [%lld,%lld]", names[op], (long long)un[i][0], (long long)un[i][1]);
            add_f32(&oc, &r, un[i][0], un[i][1], LC_TENSOR_PARAM, -6.0f, 5.0f);
            run_case(cpu, dev, &oc, rep, &r);
        }
    for (size_t i = 0; i < 3; i++)
        for (int op = 0; op < 2; op++) {
            case_begin(&oc, b_glu, &ops[1 - op + 0], true, "%s [%lld,%lld]", op ? "swiglu" : "geglu", (long long)un[i][0],
                       (long long)un[i][1]);
            add_f32(&oc, &r, un[i][0], un[i][1], LC_TENSOR_PARAM, -5.0f, 4.0f);
            add_f32(&oc, &r, un[i][0], un[i][1], LC_TENSOR_PARAM, -1.0f, 1.0f);
            run_case(cpu, dev, &oc, rep, &r);
        }
    /* a chain: gradients of x from three consumers accumulate */
    case_begin(&oc, b_chain, NULL, true, "chain rms_norm(silu(x)*x + x)");
    add_f32(&oc, &r, 257, 9, LC_TENSOR_PARAM, -2.0f, 2.0f);
    add_f32(&oc, &r, 257, 1, LC_TENSOR_PARAM, 0.5f, 1.5f);
    run_case(cpu, dev, &oc, rep, &r);
    static const int64_t fill_ne[2] = {1025, 7};
    case_begin(&oc, b_fill, fill_ne, false, "fill [1025,7]");
    run_case(cpu, dev, &oc, rep, &r);
}

static void t_norm_rope(lc_device *cpu, lc_device *dev, lt_report *rep) {
    lt_rng r;
    lt_rng_seed(&r, 75);
    ocase oc;
    /* rows around and past the work-group size, groups, tiny rows */
    static const int64_t rows[][3] = {{1, 1, 0}, {7, 5, 0}, {255, 3, 0}, {256, 2, 0}, {257, 5, 0},
                                      {1025, 3, 0}, {4097, 2, 0}, {512, 4, 128}, {96, 7, 32}, {6, 9, 1}};
    static rms_arg ra[10][2];
    for (int i = 0; i < 10; i++)
        for (int w = 0; w < 2; w++) {
            ra[i][w] = (rms_arg){rows[i][2], w == 1, 1e-6f};
            const int64_t g = rows[i][2] ? rows[i][2] : rows[i][0];
            case_begin(&oc, b_rms, &ra[i][w], true, "rms_norm n=%lld R=%lld group=%lld %s", (long long)rows[i][0],
                       (long long)rows[i][1], (long long)rows[i][2], w ? "weight" : "no weight");
            add_f32(&oc, &r, rows[i][0], rows[i][1], LC_TENSOR_PARAM, -1.5f, 1.7f);
            if (w) add_f32(&oc, &r, g, 1, LC_TENSOR_PARAM, 0.2f, 1.4f);
            run_case(cpu, dev, &oc, rep, &r);
        }
    static const struct { int hd, n_head, n_rot, T, mode; float base, scale; } rp[] = {
        {2, 1, 2, 1, 0, 10000.0f, 1.0f},     {64, 3, 64, 33, 0, 10000.0f, 1.0f}, {64, 2, 32, 17, 2, 1e6f, 0.125f},
        {130, 2, 128, 7, 2, 10000.0f, 1.0f}, {256, 4, 256, 5, 2, 1e6f, 1.0f}};
    static rope_arg rpa[5];
    for (int i = 0; i < 5; i++) {
        rpa[i] = (rope_arg){rp[i].n_head, rp[i].n_rot, rp[i].mode, rp[i].base, rp[i].scale};
        case_begin(&oc, b_rope, &rpa[i], true, "rope %s hd=%d heads=%d n_rot=%d T=%d", rp[i].mode ? "neox" : "norm", rp[i].hd,
                   rp[i].n_head, rp[i].n_rot, rp[i].T);
        add_f32(&oc, &r, (int64_t)rp[i].hd * rp[i].n_head, rp[i].T, LC_TENSOR_PARAM, -1.0f, 1.0f);
        int32_t pos[64];
        for (int t = 0; t < rp[i].T; t++) pos[t] = t * 37 + (t % 3) * 1000; /* large positions too */
        add_i32(&oc, pos, rp[i].T);
        run_case(cpu, dev, &oc, rep, &r);
    }
}

static void t_attention(lc_device *cpu, lc_device *dev, lt_report *rep) {
    lt_rng r;
    lt_rng_seed(&r, 76);
    static const struct { int hd, n_head, n_kv, S, Tq, Tk, causal, window; } at[] = {
        {1, 1, 1, 1, 1, 1, 1, 0},  {16, 4, 2, 2, 33, 33, 1, 0}, {64, 2, 1, 1, 17, 65, 1, 8}, {8, 3, 3, 3, 7, 7, 0, 0},
        {32, 4, 1, 1, 65, 65, 1, 16}, {4, 2, 2, 1, 9, 5, 1, 0}, {256, 1, 1, 1, 5, 257, 0, 0}};
    static lc_attention_params ap[7];
    ocase oc;
    for (int i = 0; i < 7; i++) {
        ap[i] = (lc_attention_params){.n_head = at[i].n_head, .n_kv = at[i].n_kv, .n_seq = at[i].S,
                                      .causal = at[i].causal != 0, .window = at[i].window,
                                      .scale = 1.0f / sqrtf((float)at[i].hd)};
        case_begin(&oc, b_attn, &ap[i], true, "attention hd=%d heads=%d/%d S=%d Tq=%d Tk=%d causal=%d window=%d", at[i].hd,
                   at[i].n_head, at[i].n_kv, at[i].S, at[i].Tq, at[i].Tk, at[i].causal, at[i].window);
        add_f32(&oc, &r, (int64_t)at[i].hd * at[i].n_head, (int64_t)at[i].Tq * at[i].S, LC_TENSOR_PARAM, -1.0f, 1.0f);
        add_f32(&oc, &r, (int64_t)at[i].hd * at[i].n_kv, (int64_t)at[i].Tk * at[i].S, LC_TENSOR_PARAM, -1.0f, 1.0f);
        add_f32(&oc, &r, (int64_t)at[i].hd * at[i].n_kv, (int64_t)at[i].Tk * at[i].S, LC_TENSOR_PARAM, -1.0f, 1.0f);
        run_case(cpu, dev, &oc, rep, &r);
    }
    /* score buffers smaller than one sequence: chunks over sequences and blocks of query rows */
    static const char *const limits[] = {"5000", "2000", "300"};
    for (int l = 0; l < 3; l++) {
        setenv("LORAC_OPENCL_ATTN_SCORES", limits[l], 1);
        const int i = 1; /* hd=16 heads=4/2 S=2 T=33 */
        case_begin(&oc, b_attn, &ap[i], true, "attention hd=16 heads=4/2 S=2 T=33 in score chunks of %s", limits[l]);
        add_f32(&oc, &r, (int64_t)at[i].hd * at[i].n_head, (int64_t)at[i].Tq * at[i].S, LC_TENSOR_PARAM, -1.0f, 1.0f);
        add_f32(&oc, &r, (int64_t)at[i].hd * at[i].n_kv, (int64_t)at[i].Tk * at[i].S, LC_TENSOR_PARAM, -1.0f, 1.0f);
        add_f32(&oc, &r, (int64_t)at[i].hd * at[i].n_kv, (int64_t)at[i].Tk * at[i].S, LC_TENSOR_PARAM, -1.0f, 1.0f);
        run_case(cpu, dev, &oc, rep, &r);
    }
    unsetenv("LORAC_OPENCL_ATTN_SCORES");
}

static void t_loss(lc_device *cpu, lc_device *dev, lt_report *rep) {
    lt_rng r;
    lt_rng_seed(&r, 77);
    static const struct { int64_t V, N; int ignore; float denom; } ce[] = {
        {1, 1, -100, 0.0f}, {255, 7, -100, 0.0f}, {257, 33, 3, 0.0f}, {4099, 5, -100, 0.0f}, {1025, 17, -100, 40.0f},
        {64, 3, -1, 0.0f}};
    static ce_arg ca[6];
    ocase oc;
    for (int i = 0; i < 6; i++) {
        ca[i] = (ce_arg){ce[i].ignore, ce[i].denom};
        case_begin(&oc, b_ce, &ca[i], true, "cross_entropy V=%lld N=%lld ignore=%d denom=%g", (long long)ce[i].V,
                   (long long)ce[i].N, ce[i].ignore, ce[i].denom);
        add_f32(&oc, &r, ce[i].V, ce[i].N, LC_TENSOR_PARAM, -8.0f, 8.0f);
        int32_t lab[64];
        for (int64_t n = 0; n < ce[i].N; n++) {
            lab[n] = lt_rng_int(&r, (int32_t)ce[i].V);
            if (n % 5 == 4) lab[n] = ce[i].ignore;          /* ignored */
            if (n % 7 == 6) lab[n] = (int32_t)ce[i].V + 3;  /* out of range: not counted */
        }
        add_i32(&oc, lab, ce[i].N);
        run_case(cpu, dev, &oc, rep, &r);
    }
    /* every label ignored: loss 0, zero gradients */
    case_begin(&oc, b_ce, &ca[0], true, "cross_entropy all ignored");
    add_f32(&oc, &r, 33, 4, LC_TENSOR_PARAM, -2.0f, 2.0f);
    int32_t ig[4] = {-100, -100, -100, -100};
    add_i32(&oc, ig, 4);
    run_case(cpu, dev, &oc, rep, &r);
    /* sum_sq around the partition sizes */
    static const int64_t ss[] = {1, 255, 4097, 100003, 2097153};
    for (size_t i = 0; i < sizeof ss / sizeof ss[0]; i++) {
        case_begin(&oc, b_sum_sq, NULL, false, "sum_sq n=%lld", (long long)ss[i]);
        add_f32(&oc, &r, ss[i], 1, 0, -1.0f, 1.0f);
        run_case(cpu, dev, &oc, rep, &r);
    }
}

static void t_misc(lc_device *cpu, lc_device *dev, lt_report *rep) {
    lt_rng r;
    lt_rng_seed(&r, 78);
    ocase oc;
    lc_dtype dts[16];
    int nd = weight_dtypes(dts);
    for (int d = 0; d < nd; d++) {
        const int64_t bs = lc_dtype_get(dts[d])->block_size, E = bs == 1 ? 257 : bs * 3, V = 31, N = 9;
        int32_t ids[9];
        for (int n = 0; n < N; n++) ids[n] = lt_rng_int(&r, (int32_t)V);
        ids[N - 1] = ids[0]; /* repeated id: gradients add */
        case_begin(&oc, b_get_rows, NULL, dts[d] == LC_F32, "get_rows %s E=%lld V=%lld N=%lld", lc_dtype_name(dts[d]),
                   (long long)E, (long long)V, (long long)N);
        add_weight(&oc, &r, dts[d], E, V, dts[d] == LC_F32 ? LC_TENSOR_PARAM : LC_TENSOR_FROZEN);
        add_i32(&oc, ids, N);
        run_case(cpu, dev, &oc, rep, &r);
        case_begin(&oc, b_dequant, NULL, false, "dequantize %s [%lld,%lld]", lc_dtype_name(dts[d]), (long long)E, (long long)V);
        add_weight(&oc, &r, dts[d], E, V, 0);
        run_case(cpu, dev, &oc, rep, &r);
    }
    static const lc_dtype cp[][2] = {{LC_F32, LC_F16}, {LC_F32, LC_BF16}, {LC_F16, LC_F32},
                                     {LC_BF16, LC_F32}, {LC_F16, LC_BF16}, {LC_F32, LC_F32}};
    for (int i = 0; i < 6; i++) {
        case_begin(&oc, b_cpy, &cp[i][1], false, "cpy %s -> %s [257,3]", lc_dtype_name(cp[i][0]), lc_dtype_name(cp[i][1]));
        add_weight(&oc, &r, cp[i][0], 257, 3, 0);
        run_case(cpu, dev, &oc, rep, &r);
    }
    static const lc_adamw_params aw = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    static const int64_t an[] = {1, 257, 65537};
    for (int i = 0; i < 3; i++) {
        case_begin(&oc, b_adamw, &aw, false, "adamw n=%lld t=3", (long long)an[i]);
        oc.replay = false;
        add_f32(&oc, &r, an[i], 1, 0, -1.0f, 1.0f);
        add_f32(&oc, &r, an[i], 1, 0, -0.1f, 0.1f);
        add_f32(&oc, &r, an[i], 1, 0, -0.01f, 0.01f);
        add_f32(&oc, &r, an[i], 1, 0, 0.0f, 1e-4f);
        for (int l = 0; l < 4; l++) oc.lf[l].collect = l != 1;
        run_case(cpu, dev, &oc, rep, &r);
    }
    static const float scales[] = {2.0f, -0.5f};
    static const lc_dtype mw[] = {LC_F32, LC_F16, LC_BF16};
    for (int i = 0; i < 3; i++) {
        case_begin(&oc, b_merge, &scales[i % 2], false, "lora_merge %s in=257 out=33 r=8", lc_dtype_name(mw[i]));
        oc.replay = false;
        add_weight(&oc, &r, mw[i], 257, 33, LC_TENSOR_FROZEN);
        add_f32(&oc, &r, 257, 8, 0, -0.5f, 0.7f);
        add_f32(&oc, &r, 8, 33, 0, -0.3f, 0.4f);
        oc.lf[0].collect = true;
        run_case(cpu, dev, &oc, rep, &r);
    }
}

/* Raw bits of cpy src -> dst on a device (n elements); NULL after a failure. */
static void *cpy_bits(lc_device *dev, lc_dtype ts, lc_dtype td, const void *src, int64_t n, lt_report *rep) {
    int64_t ne[1] = {n};
    lc_tensor *t = NULL;
    void *out = NULL;
    if (!lt_check_ok(rep, lc_tensor_new(dev, ts, 1, ne, "src", 0, &t), "cpy src") ||
        !lt_check_ok(rep, lc_tensor_set(t, src, 0, lc_row_size(ts, n)), "cpy upload")) {
        lc_tensor_free(t);
        return NULL;
    }
    lc_graph *g = lc_graph_new(dev);
    lc_tensor *y = lc_cpy(g, t, td);
    if (y) lc_graph_set_output(g, y);
    if (lt_check(rep, y != NULL, "cpy build") && lt_check_ok(rep, lc_graph_plan(g), "cpy plan") &&
        lt_check_ok(rep, lc_graph_compute(g), "cpy compute")) {
        out = calloc(1, lc_row_size(td, n));
        if (!lt_check_ok(rep, lc_tensor_get(y, out, 0, lc_row_size(td, n)), "cpy download")) {
            free(out);
            out = NULL;
        }
    }
    lc_graph_free(g);
    lc_tensor_free(t);
    return out;
}

/* Conversions bit for bit against the CPU: every binary16 and bfloat16 pattern to F32 (NaN
 * payloads, subnormals, infinities), and F32 values at the rounding boundaries back. */
static void t_convert(lc_device *cpu, lc_device *dev, lt_report *rep) {
    const int64_t n16 = 65536;
    uint16_t *h = malloc((size_t)n16 * 2);
    for (int64_t i = 0; i < n16; i++) h[i] = (uint16_t)i;
    static const lc_dtype halves[2] = {LC_F16, LC_BF16};
    for (int k = 0; k < 2; k++) {
        void *a = cpy_bits(cpu, halves[k], LC_F32, h, n16, rep), *b = cpy_bits(dev, halves[k], LC_F32, h, n16, rep);
        if (a && b)
            lt_check(rep, memcmp(a, b, (size_t)n16 * 4) == 0, "%s -> f32: all 65536 patterns bit-identical to the CPU",
                     lc_dtype_name(halves[k]));
        free(a);
        free(b);
    }
    free(h);
    /* F32 inputs: every float16 value, the midpoints between neighbours (ties to even), +-1 ulp
     * around them, values past the ranges, subnormals, zeros, infinities and NaNs */
    const int64_t nf = 65536 * 4 + 16;
    float *f = malloc((size_t)nf * sizeof(float));
    int64_t m = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t bits = i << 16 | (uint32_t)((i * 2654435761u) & 0xffffu); /* upper halves = bf16 patterns */
        float v;
        memcpy(&v, &bits, 4);
        f[m++] = v;
        uint32_t mid = i << 16 | 0x8000u; /* bf16 tie */
        memcpy(&v, &mid, 4);
        f[m++] = v;
        const float fv = ldexpf((float)(i & 0x3ff) + 1024.0f, (int)(i >> 10) - 25); /* f16 ties and neighbours */
        f[m++] = (i & 0x8000u) ? -fv : fv;
        f[m++] = nextafterf(fv, INFINITY);
    }
    static const float special[16] = {0.0f, -0.0f, 65504.0f, 65520.0f, 65519.99f, 1e-8f, -3e-8f, 5.9604645e-8f,
                                      2.9802322e-8f, 6.1035156e-5f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN, -NAN};
    for (int i = 0; i < 16; i++) f[m++] = special[i];
    for (int k = 0; k < 2; k++) {
        void *a = cpy_bits(cpu, LC_F32, halves[k], f, m, rep), *b = cpy_bits(dev, LC_F32, halves[k], f, m, rep);
        if (a && b)
            lt_check(rep, memcmp(a, b, (size_t)m * 2) == 0, "f32 -> %s: %lld values bit-identical to the CPU (round to nearest even)",
                     lc_dtype_name(halves[k]), (long long)m);
        free(a);
        free(b);
    }
    free(f);
}

/* The products through the local-memory tiled kernel (what GPUs run), on this device too. */
static void t_tiled(lc_device *cpu, lc_device *dev, lt_report *rep) {
    lt_rng r;
    lt_rng_seed(&r, 79);
    ocase oc;
    lc_dtype dts[16];
    int nd = weight_dtypes(dts);
    for (int d = 0; d < nd; d++) {
        const int64_t bs = lc_dtype_get(dts[d])->block_size, K = bs == 1 ? 257 : bs * 3;
        case_begin(&oc, b_mul_mat, NULL, true, "tiled mul_mat %s K=%lld M=33 N=65", lc_dtype_name(dts[d]), (long long)K);
        add_f32(&oc, &r, K, 33, LC_TENSOR_PARAM, -1.0f, 1.2f);
        add_weight(&oc, &r, dts[d], K, 65, dts[d] == LC_F32 ? LC_TENSOR_PARAM : LC_TENSOR_FROZEN);
        run_case(cpu, dev, &oc, rep, &r);
    }
    static lc_lora_params lp = {.scaling = 2.0f, .dropout = 0.2f, .module_id = 9, .seed = 99};
    case_begin(&oc, b_lora, &lp, true, "tiled lora q8_0 in=64 out=33 r=8 T=17");
    add_f32(&oc, &r, 64, 17, LC_TENSOR_PARAM, -1.0f, 1.0f);
    add_weight(&oc, &r, LC_Q8_0, 64, 33, LC_TENSOR_FROZEN);
    add_f32(&oc, &r, 64, 8, LC_TENSOR_PARAM, -0.3f, 0.4f);
    add_f32(&oc, &r, 8, 33, LC_TENSOR_PARAM, -0.5f, 0.4f);
    run_case(cpu, dev, &oc, rep, &r);
    static lc_attention_params ap = {.n_head = 4, .n_kv = 2, .n_seq = 2, .causal = true, .window = 5, .scale = 0.25f};
    case_begin(&oc, b_attn, &ap, true, "tiled attention hd=16 heads=4/2 S=2 T=33 window=5");
    add_f32(&oc, &r, 64, 66, LC_TENSOR_PARAM, -1.0f, 1.0f);
    add_f32(&oc, &r, 32, 66, LC_TENSOR_PARAM, -1.0f, 1.0f);
    add_f32(&oc, &r, 32, 66, LC_TENSOR_PARAM, -1.0f, 1.0f);
    run_case(cpu, dev, &oc, rep, &r);
    gemm_sweep(cpu, dev, rep, "tiled");
}

/* ---- tests: errors ----------------------------------------------------------------------------- */

static void t_errors(lc_device *cpu, lc_device *dev, lt_report *rep) {
    (void)cpu;
    /* ids outside the table: an error when the step completes, naming get_rows */
    float tab[8 * 4] = {0};
    int32_t ids[3] = {0, 4, 1};
    int64_t ne_t[2] = {8, 4}, ne_i[1] = {3};
    lc_tensor *t = NULL, *i = NULL;
    if (lt_check_ok(rep, lc_tensor_new(dev, LC_F32, 2, ne_t, "table", 0, &t), "table") &&
        lt_check_ok(rep, lc_tensor_new(dev, LC_I32, 1, ne_i, "ids", 0, &i), "ids") &&
        lt_check_ok(rep, lc_tensor_set_f32(t, tab, 32), "upload") && lt_check_ok(rep, lc_tensor_set(i, ids, 0, 12), "upload")) {
        lc_graph *g = lc_graph_new(dev);
        lc_tensor *y = lc_get_rows(g, t, i);
        lc_graph_set_output(g, y);
        if (lt_check_ok(rep, lc_graph_plan(g), "plan")) {
            lc_status st = lc_graph_compute(g);
            lt_check(rep, st == LC_ERR_INVALID_ARG && strstr(lc_last_error(), "get_rows") != NULL,
                     "id 4 >= V=4 gives LC_ERR_INVALID_ARG naming get_rows (got %s: %s)", lc_status_str(st), lc_last_error());
            ids[1] = 3;
            lt_check_ok(rep, lc_tensor_set(i, ids, 0, 12), "fix ids");
            lt_check_ok(rep, lc_graph_compute(g), "compute after fixing the ids (the error is not sticky)");
        }
        lc_graph_free(g);
    }
    lc_tensor_free(t);
    lc_tensor_free(i);
    /* an allocation past the device: LC_ERR_DEVICE_NOMEM naming the device, not a crash */
    lc_buffer *b = NULL;
    lc_status st = lc_buffer_alloc(dev, (size_t)1 << 60, &b);
    lt_check(rep, st == LC_ERR_DEVICE_NOMEM && b == NULL && strstr(lc_last_error(), "opencl") != NULL,
             "a 2^60-byte buffer gives LC_ERR_DEVICE_NOMEM (got %s: %s)", lc_status_str(st), lc_last_error());
    /* the device still works afterwards */
    st = lc_buffer_alloc(dev, 64, &b);
    lt_check(rep, st == LC_OK, "a small buffer after the failure");
    lc_buffer_free(b);
}

/* ---- tests: program cache ---------------------------------------------------------------------- */

/* Open and close `spec` with stderr going to `log`; the open's status. */
static lc_status open_logged(const char *spec, const char *log, double *seconds) {
    fflush(stderr);
    int saved = dup(2);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || saved < 0) return LC_ERR_IO;
    dup2(fd, 2);
    close(fd);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    lc_device *dev = NULL;
    lc_status st = lc_device_open(spec, &dev);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st == LC_OK) {
        /* one small op, so the device is shown to work after the open */
        lc_graph *g = lc_graph_new(dev);
        lc_tensor *y = lc_fill(g, 33, 3, 2.0f);
        lc_graph_set_output(g, y);
        if (lc_graph_plan(g) != LC_OK || lc_graph_compute(g) != LC_OK) st = LC_ERR_BACKEND;
        lc_graph_free(g);
        /* and one product large enough for the GEMM engine choice (own kernel or CLBlast) */
        const int n = 160;
        lc_buffer *a = NULL, *c = NULL;
        if (st == LC_OK && (lc_buffer_alloc(dev, (size_t)n * n * 4, &a) != LC_OK ||
                            lc_buffer_alloc(dev, (size_t)n * n * 4, &c) != LC_OK ||
                            lc_device_gemm(dev, false, true, n, n, n, 1.0f, a, 0, n, a, 0, n, 0.0f, c, 0, n) != LC_OK ||
                            lc_device_synchronize(dev) != LC_OK))
            st = LC_ERR_BACKEND;
        lc_buffer_free(a);
        lc_buffer_free(c);
        lc_device_close(dev);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    *seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return st;
}

static int count_in_file(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

/* The .bin files of dir with their modification times; the count. */
static int list_bins(const char *dir, char names[][400], struct timespec *mtime, int max) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    int n = 0;
    char line[128];
    while (n < max && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        if (!strstr(line, ".bin")) continue;
        snprintf(names[n], 400, "%s/%s", dir, line);
        struct stat st;
        if (stat(names[n], &st) == 0) {
            mtime[n] = st.st_mtim;
            n++;
        }
    }
    pclose(p);
    return n;
}

static void t_cache_dev(lt_report *rep, const char *spec) {
    char dir[] = "/tmp/lorac-ocl-cache-XXXXXX";
    if (!lt_check(rep, mkdtemp(dir) != NULL, "mkdtemp")) return;
    char log[300];
    snprintf(log, sizeof log, "%s.log", dir);
    setenv("LORAC_OPENCL_CACHE_DIR", dir, 1);
    setenv("LORAC_OPENCL_VERBOSE", "1", 1);
    double t1 = 0, t2 = 0, t3 = 0;
    char names[8][400], names2[8][400];
    struct timespec m1[8], m2[8];
    /* first open: every program misses and is written */
    if (lt_check_ok(rep, open_logged(spec, log, &t1), "first open of %s", spec)) {
        int miss = count_in_file(log, "cache miss"), wrote = count_in_file(log, "wrote program binary");
        lt_check(rep, miss >= 2 && wrote == miss, "first open: %d misses, %d binaries written", miss, wrote);
        lt_check(rep, count_in_file(log, "gemm class") == 1, "first run: the GEMM engine is chosen by timing once");
    }
    int n1 = list_bins(dir, names, m1, 8);
    lt_check(rep, n1 >= 2, "%d program binaries in %s", n1, dir);
    /* second open: every program loads from the cache, nothing is rewritten */
    if (lt_check_ok(rep, open_logged(spec, log, &t2), "second open of %s", spec)) {
        int hit = count_in_file(log, "cache hit"), miss = count_in_file(log, "cache miss"),
            wrote = count_in_file(log, "wrote program binary");
        lt_check(rep, hit == n1 && miss == 0 && wrote == 0, "second open: %d hits, %d misses, %d writes", hit, miss, wrote);
        lt_check(rep, count_in_file(log, "gemm class") == 0, "second run: the GEMM engine choice comes from the cache");
    }
    int n2 = list_bins(dir, names2, m2, 8);
    bool same = n2 == n1;
    for (int i = 0; same && i < n1; i++)
        same = strcmp(names[i], names2[i]) == 0 && m1[i].tv_sec == m2[i].tv_sec && m1[i].tv_nsec == m2[i].tv_nsec;
    lt_check(rep, same, "the cached binaries are untouched by the second open");
    /* a corrupt binary is rejected and rebuilt, and the device still works */
    if (n1 > 0) {
        FILE *f = fopen(names[0], "r+b");
        if (f) {
            fseek(f, 20, SEEK_SET);
            for (int i = 0; i < 4096; i++) fputc(0xA5, f);
            fclose(f);
        }
        if (lt_check_ok(rep, open_logged(spec, log, &t3), "open with a corrupt cached binary")) {
            int rebuilt = count_in_file(log, "rejected, rebuilding") + count_in_file(log, "cache miss");
            lt_check(rep, rebuilt >= 1 && count_in_file(log, "wrote program binary") >= 1,
                     "the corrupt binary is rebuilt and rewritten");
        }
    }
    lt_log("  %s: open %.2f s with an empty cache, %.2f s from the cache, %.2f s after corruption\n", spec, t1, t2, t3);
    unsetenv("LORAC_OPENCL_VERBOSE");
    unsetenv("LORAC_OPENCL_CACHE_DIR");
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, log);
    if (system(cmd) != 0) lt_log("  (could not remove %s)\n", dir);
}

/* ---- Check plumbing ---------------------------------------------------------------------------- */

#define OCL_TEST(name, fn)                                                                 \
    START_TEST(test_##name) { ck_assert_int_eq(for_each_ocl("opencl." #name, fn), 0); } \
    END_TEST

OCL_TEST(enumerate, t_enumerate)
OCL_TEST(mul_mat, t_mul_mat)
OCL_TEST(lora, t_lora)
OCL_TEST(elementwise, t_elementwise)
OCL_TEST(norm_rope, t_norm_rope)
OCL_TEST(attention, t_attention)
OCL_TEST(loss, t_loss)
OCL_TEST(misc, t_misc)
OCL_TEST(convert, t_convert)
OCL_TEST(errors, t_errors)

START_TEST(test_gemm_own) {
    setenv("LORAC_OPENCL_GEMM", "own", 1);
    ck_assert_int_eq(for_each_ocl("opencl.gemm_own", t_gemm), 0);
}
END_TEST

START_TEST(test_gemm_clblast) {
    setenv("LORAC_OPENCL_GEMM", "clblast", 1);
    ck_assert_int_eq(for_each_ocl("opencl.gemm_clblast", t_gemm), 0);
}
END_TEST

START_TEST(test_tiled) {
    setenv("LORAC_OPENCL_GEMM", "own", 1);
    setenv("LORAC_OPENCL_GEMM_KERNEL", "tiled", 1);
    ck_assert_int_eq(for_each_ocl("opencl.tiled", t_tiled), 0);
}
END_TEST

START_TEST(test_cache) {
    char specs[MAX_OCL][32];
    int n = ocl_devices("opencl.cache", specs);
    ck_assert_int_ge(n, 0);
    int failures = 0;
    for (int i = 0; i < n; i++) {
        lt_report rep;
        lt_report_begin(&rep, "opencl.cache", specs[i]);
        t_cache_dev(&rep, specs[i]);
        lt_report_end(&rep);
        failures += rep.failures;
    }
    ck_assert_int_eq(failures, 0);
}
END_TEST

static Suite *opencl_suite(void) {
    Suite *s = suite_create("opencl");
    struct { const char *name; const TTest *fn; } tests[] = {
        {"enumerate", test_enumerate}, {"mul_mat", test_mul_mat},       {"lora", test_lora},
        {"gemm_own", test_gemm_own},   {"gemm_clblast", test_gemm_clblast}, {"tiled", test_tiled},
        {"elementwise", test_elementwise}, {"norm_rope", test_norm_rope}, {"attention", test_attention},
        {"loss", test_loss},           {"misc", test_misc},             {"convert", test_convert},
        {"errors", test_errors},
        {"cache", test_cache}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        TCase *tc = tcase_create(tests[i].name);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, tests[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) {
    const int failed = lt_run_suite(opencl_suite());
    return failed == 0 ? 0 : 1;
}
