/* lorac — Vulkan backend tests (Check suite "vulkan"): enumeration and device info, buffers at odd
 * offsets (mapped and staging paths), the row-major GEMM with every product kernel the backend
 * has (texel, storage-buffer, shared-memory tiles), every op forward and backward on shapes that
 * stress the kernels' tiling, workgroup sizes and chunking (sizes 1, odd primes, just under and
 * over powers of two, reductions around and past the workgroup size, leading dimensions larger
 * than the minimum), the fallback paths (descriptor pools instead of push descriptors, staging
 * transfers, no fp64, tiled GEMM), the pipeline cache file, and a validation-layer run.
 *
 * Every result is compared with a double-precision plain loop (tests/common/ref_ops.c, max_rel)
 * and with the CPU device (NMSE <= 1e-7, lt_graph.h), and re-run: the replay must be bitwise
 * identical. Devices are opened inside each test (Check forks); environment switches of the
 * plugin (LORAC_VULKAN_*) are set in the child before the device opens.
 *
 * No Vulkan device: every test prints a SKIP line with lc_device_skipped("vulkan")'s reason and
 * passes, unless LORAC_REQUIRE_BACKENDS names vulkan, which makes it a failure.
 */
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../backends/vulkan/vk_stats.h"
#include "common/lt_device.h"
#include "common/lt_graph.h"
#include "common/lt_util.h"
#include "common/ref_ops.h"
#include "common/ref_quant.h"
#include "common/lt_suite.h"
#include "device_internal.h"
#include "lorac/lorac.h"

#define TOL_F32 1e-5
#define MAX_VK 16

/* ---- devices --------------------------------------------------------------------------------- */

/* Specs of the Vulkan devices. 0 with a SKIP line when there are none, -1 when
 * LORAC_REQUIRE_BACKENDS names vulkan and there are none. */
static int vk_specs(const char *test, char specs[][32]) {
    lc_device_info infos[32];
    int n = 0, k = 0;
    if (lc_device_list(infos, 32, &n) != LC_OK) {
        lt_log("  FAIL [%s] lc_device_list: %s\n", test, lc_last_error());
        return -1;
    }
    for (int i = 0; i < n && i < 32; i++)
        if (strcmp(infos[i].backend, "vulkan") == 0 && k < MAX_VK) snprintf(specs[k++], 32, "%s", infos[i].spec);
    if (k == 0) {
        const char *why = lc_device_skipped("vulkan");
        lt_log("[%s] SKIP vulkan: %s\n", test, why ? why : "no Vulkan device");
        if (lt_missing_required_backends(infos, n < 32 ? n : 32) > 0) return -1;
    }
    return k;
}

/* The plugin's test counters (vk_stats.h), or NULL when the plugin is not loaded. */
static lorac_vulkan_stats_fn stats_fn(void) {
    void *h = dlopen("liblorac-vulkan.so", RTLD_NOW | RTLD_NOLOAD);
    if (!h) return NULL;
    lorac_vulkan_stats_fn f = (lorac_vulkan_stats_fn)dlsym(h, "lorac_vulkan_stats");
    dlclose(h);
    return f;
}

static bool get_stats(lc_device *dev, lorac_vulkan_stats_t *s) {
    lorac_vulkan_stats_fn f = stats_fn();
    memset(s, 0, sizeof *s);
    if (!f) return false;
    f(dev ? dev->ctx : NULL, s);
    return true;
}

/* Run `fn` on the CPU device and then every Vulkan device (lt_for_each_device restricted by
 * LORAC_TEST_DEVICES), so each Vulkan result is also compared with the CPU's. */
static int on_cpu_and_vulkan(const char *test, lt_device_fn fn, void *user) {
    char specs[MAX_VK][32];
    int nv = vk_specs(test, specs);
    if (nv <= 0) return nv < 0 ? 1 : 0;
    setenv("LORAC_TEST_DEVICES", "cpu,vulkan", 1);
    return lt_for_each_device(test, fn, user);
}

static float *rnd(lt_rng *r, int64_t n, float lo, float hi) {
    float *x = lt_falloc(n);
    lt_fill_uniform(r, x, n, lo, hi);
    return x;
}

/* ---- enumeration -------------------------------------------------------------------------------- */

START_TEST(test_enumerate) {
    char specs[MAX_VK][32];
    int nv = vk_specs("vulkan.enumerate", specs);
    ck_assert_msg(nv >= 0, "LORAC_REQUIRE_BACKENDS names vulkan but no Vulkan device exists");
    lt_report rep;
    lt_report_begin(&rep, "vulkan.enumerate", "all");
    for (int i = 0; i < nv; i++) {
        lc_device *dev = NULL;
        if (!lt_check_ok(&rep, lc_device_open(specs[i], &dev), "open %s", specs[i])) continue;
        const lc_device_info *in = lc_device_get_info(dev);
        char want[32];
        snprintf(want, sizeof want, "vulkan:%d", i);
        lt_check(&rep, strcmp(in->spec, want) == 0, "spec '%s' is '%s'", in->spec, want);
        lt_check(&rep, strcmp(in->backend, "vulkan") == 0, "backend '%s'", in->backend);
        lt_check(&rep, in->name[0] && in->vendor[0] && in->driver[0], "%s names device, vendor and driver", in->spec);
        lt_check(&rep, strncmp(in->api_version, "Vulkan 1.", 9) == 0, "%s api version '%s'", in->spec, in->api_version);
        lt_check(&rep, in->memory_bytes > 0, "%s reports its memory", in->spec);
        lt_check(&rep, in->subgroup_size >= 1 && (in->subgroup_size & (in->subgroup_size - 1)) == 0,
                 "%s subgroup size %d is a power of two", in->spec, in->subgroup_size);
        if (strstr(in->name, "llvmpipe")) lt_check(&rep, in->is_cpu, "%s (lavapipe) is_cpu", in->spec);
        lt_log("  %s: '%s' (%s), %s, driver %s, %.1f GiB, subgroup %d%s; %s\n", in->spec, in->name, in->vendor,
               in->api_version, in->driver, (double)in->memory_bytes / (1 << 30), in->subgroup_size,
               in->is_cpu ? ", runs on the CPU" : "", in->extra);
        lt_check_ok(&rep, lc_device_synchronize(dev), "%s: synchronize with nothing queued", in->spec);
        lc_device_close(dev);
    }
    if (nv > 0) {
        lc_device *dev = NULL;
        char bad[32];
        snprintf(bad, sizeof bad, "vulkan:%d", nv + 7);
        lc_status st = lc_device_open(bad, &dev);
        lt_check(&rep, st == LC_ERR_NO_DEVICE && dev == NULL, "open %s: LC_ERR_NO_DEVICE (got %s: %s)", bad,
                 lc_status_str(st), lc_last_error());
    }
    lt_report_end(&rep);
    ck_assert_int_eq(rep.failures, 0);
}
END_TEST

/* ---- buffers ----------------------------------------------------------------------------------- */

static void check_buffers(lt_report *rep, const char *spec, const char *mode) {
    lc_device *dev = NULL;
    if (!lt_check_ok(rep, lc_device_open(spec, &dev), "open %s (%s)", spec, mode)) return;
    const size_t size = 3000017; /* odd, a few MB */
    uint8_t *host = malloc(size), *back = malloc(size);
    struct lc_buffer *b = NULL;
    if (lt_check_ok(rep, lc_buffer_alloc(dev, size, &b), "%s %s: alloc %zu bytes", spec, mode, size)) {
        lt_check_ok(rep, lc_buffer_download(b, 0, back, size), "%s: download", spec);
        size_t nz = 0;
        for (size_t i = 0; i < size; i++) nz += back[i] != 0;
        lt_check(rep, nz == 0, "%s %s: a new buffer is zeroed (%zu non-zero bytes)", spec, mode, nz);
        for (size_t i = 0; i < size; i++) host[i] = (uint8_t)(i * 2654435761u >> 13);
        const size_t off = 3, n = 2000003;
        lt_check_ok(rep, lc_buffer_upload(b, off, host, n), "%s: upload at offset 3", spec);
        lt_check_ok(rep, lc_buffer_download(b, 1, back, n + 5), "%s: download at offset 1", spec);
        size_t bad = 0;
        for (size_t i = 0; i < n + 5; i++) {
            size_t at = i + 1;
            uint8_t want = (at >= off && at < off + n) ? host[at - off] : 0;
            bad += back[i] != want;
        }
        lt_check(rep, bad == 0, "%s %s: upload/download round trip at odd offsets (%zu bad bytes)", spec, mode, bad);
        const size_t c0 = 5, cn = 100001;
        lt_check_ok(rep, lc_buffer_clear(b, c0, cn), "%s: clear", spec);
        lt_check_ok(rep, lc_buffer_download(b, 0, back, off + n), "%s: download", spec);
        bad = 0;
        for (size_t i = 0; i < off + n; i++) {
            uint8_t want = (i >= c0 && i < c0 + cn) ? 0 : (i >= off ? host[i - off] : 0);
            bad += back[i] != want;
        }
        lt_check(rep, bad == 0, "%s %s: clear of [5, 100006) touches exactly those bytes (%zu bad)", spec, mode, bad);
        lc_status st = lc_buffer_upload(b, size - 2, host, 3);
        lt_check(rep, st == LC_ERR_INVALID_ARG, "%s: upload past the end is LC_ERR_INVALID_ARG (got %s)", spec,
                 lc_status_str(st));
        lc_buffer_free(b);
    }
    /* out of device memory is LC_ERR_DEVICE_NOMEM naming the Vulkan call and the device */
    struct lc_buffer *huge = NULL;
    lc_status st = lc_buffer_alloc(dev, (size_t)1 << 42, &huge);
    lt_check(rep, st == LC_ERR_DEVICE_NOMEM && huge == NULL, "%s: a 4 TiB buffer is LC_ERR_DEVICE_NOMEM (got %s)", spec,
             lc_status_str(st));
    lt_check(rep, strstr(lc_last_error(), "vkAllocateMemory") && strstr(lc_last_error(), spec),
             "%s: the message names vkAllocateMemory and the device: %s", spec, lc_last_error());
    lt_check(rep, lc_device_allocated(dev) == 0, "%s: nothing left allocated", spec);
    free(host);
    free(back);
    lc_device_close(dev);
}

START_TEST(test_buffers) {
    char specs[MAX_VK][32];
    int nv = vk_specs("vulkan.buffers", specs);
    ck_assert_msg(nv >= 0, "LORAC_REQUIRE_BACKENDS names vulkan but no Vulkan device exists");
    lt_report rep;
    lt_report_begin(&rep, "vulkan.buffers", "all");
    for (int i = 0; i < nv; i++) {
        check_buffers(&rep, specs[i], "default memory");
        setenv("LORAC_VULKAN_FORCE_STAGING", "1", 1); /* the discrete-GPU path, also on UMA devices */
        check_buffers(&rep, specs[i], "staging transfers");
        unsetenv("LORAC_VULKAN_FORCE_STAGING");
    }
    lt_report_end(&rep);
    ck_assert_int_eq(rep.failures, 0);
}
END_TEST

/* ---- GEMM ------------------------------------------------------------------------------------------ */

/* C[m][n] = alpha op(A) op(B) + beta C in double, row-major with leading dimensions. */
static void ref_gemm(double *c, bool ta, bool tb, int m, int n, int k, double alpha, const float *a, int lda,
                     const float *b, int ldb, double beta, const float *c0, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int p = 0; p < k; p++) {
                double av = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double bv = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += av * bv;
            }
            c[(size_t)i * n + j] = alpha * s + (beta != 0.0 ? beta * c0[(size_t)i * ldc + j] : 0.0);
        }
}

typedef struct gemm_case {
    int m, n, k;
} gemm_case;

static void run_gemm_kind(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info;
    (void)user;
    /* 1, odd primes, just under and over powers of two, one very long k (split into chunks) */
    static const gemm_case cases[] = {{1, 1, 1},     {1, 257, 3},   {7, 1, 129},    {31, 61, 255}, {127, 129, 128},
                                      {128, 255, 257}, {61, 7, 1025}, {257, 31, 17}, {3, 5, 70001}, {64, 64, 64}};
    lc_device *cpu = NULL;
    if (!lt_check_ok(rep, lc_device_open("cpu", &cpu), "open cpu")) return;
    lt_rng r;
    lt_rng_seed(&r, 4242);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int t = 0; t < 4; t++) {
            const bool ta = t & 1, tb = (t >> 1) & 1;
            const int m = cases[ci].m, n = cases[ci].n, k = cases[ci].k;
            const int pad = (int)((ci + (size_t)t) % 3); /* leading dimensions larger than the minimum */
            const int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + 2 * pad, ldc = n + pad;
            const size_t off_a = 4 * (size_t)pad, off_b = 12, off_c = 4 * (size_t)(t % 2); /* bytes */
            const size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb, nc = (size_t)m * ldc;
            const float alpha = 1.25f, beta = (t == 1 || t == 2) ? -0.5f : 0.0f;
            float *a = rnd(&r, (int64_t)na, -1.0f, 1.1f), *b = rnd(&r, (int64_t)nb, -0.9f, 1.0f);
            float *c0 = rnd(&r, (int64_t)nc, -1.0f, 1.0f), *got = lt_falloc((int64_t)nc), *again = lt_falloc((int64_t)nc);
            float *cpu_c = lt_falloc((int64_t)nc);
            double *ref = lt_dalloc((int64_t)m * n);
            ref_gemm(ref, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc);
            struct lc_buffer *A = NULL, *B = NULL, *C = NULL, *A2 = NULL, *B2 = NULL, *C2 = NULL;
            bool ok = lt_check_ok(rep, lc_buffer_alloc(dev, off_a + na * 4, &A), "alloc A") &&
                      lt_check_ok(rep, lc_buffer_alloc(dev, off_b + nb * 4, &B), "alloc B") &&
                      lt_check_ok(rep, lc_buffer_alloc(dev, off_c + nc * 4, &C), "alloc C") &&
                      lt_check_ok(rep, lc_buffer_alloc(cpu, off_a + na * 4, &A2), "alloc A cpu") &&
                      lt_check_ok(rep, lc_buffer_alloc(cpu, off_b + nb * 4, &B2), "alloc B cpu") &&
                      lt_check_ok(rep, lc_buffer_alloc(cpu, off_c + nc * 4, &C2), "alloc C cpu");
            char name[160];
            snprintf(name, sizeof name, "gemm %c%c M=%d N=%d K=%d lda=%d ldb=%d ldc=%d beta=%g", ta ? 'T' : 'N',
                     tb ? 'T' : 'N', m, n, k, lda, ldb, ldc, beta);
            for (int run = 0; ok && run < 2; run++) {
                ok = lt_check_ok(rep, lc_buffer_upload(A, off_a, a, na * 4), "upload") &&
                     lt_check_ok(rep, lc_buffer_upload(B, off_b, b, nb * 4), "upload") &&
                     lt_check_ok(rep, lc_buffer_upload(C, off_c, c0, nc * 4), "upload") &&
                     lt_check_ok(rep, lc_device_gemm(dev, ta, tb, m, n, k, alpha, A, off_a, lda, B, off_b, ldb, beta, C,
                                                     off_c, ldc), "%s", name) &&
                     lt_check_ok(rep, lc_buffer_download(C, off_c, run ? again : got, nc * 4), "download");
            }
            if (ok) {
                ok = lt_check_ok(rep, lc_buffer_upload(A2, off_a, a, na * 4), "upload") &&
                     lt_check_ok(rep, lc_buffer_upload(B2, off_b, b, nb * 4), "upload") &&
                     lt_check_ok(rep, lc_buffer_upload(C2, off_c, c0, nc * 4), "upload") &&
                     lt_check_ok(rep, lc_device_gemm(cpu, ta, tb, m, n, k, alpha, A2, off_a, lda, B2, off_b, ldb, beta,
                                                     C2, off_c, ldc), "cpu %s", name) &&
                     lt_check_ok(rep, lc_buffer_download(C2, off_c, cpu_c, nc * 4), "download");
            }
            if (ok) {
                float *packed = lt_falloc((int64_t)m * n), *cpu_p = lt_falloc((int64_t)m * n);
                size_t bad_pad = 0, diff = 0;
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < ldc; j++) {
                        size_t e = (size_t)i * ldc + j;
                        if (j < n) {
                            packed[(size_t)i * n + j] = got[e];
                            cpu_p[(size_t)i * n + j] = cpu_c[e];
                        } else {
                            bad_pad += memcmp(&got[e], &c0[e], 4) != 0; /* padding columns untouched */
                        }
                        diff += memcmp(&got[e], &again[e], 4) != 0;
                    }
                /* float error grows like sqrt(k) * 2^-24 relative to the largest terms */
                double tol = TOL_F32 * (k > 2000 ? sqrt(k / 2000.0) : 1.0);
                lt_check_err(rep, lt_max_rel(packed, ref, (int64_t)m * n), tol, "%s", name);
                double *cd = lt_dup_d(cpu_p, (int64_t)m * n);
                lt_check_err(rep, lt_nmse(packed, cd, (int64_t)m * n), LT_TOL_NMSE_CPU, "%s vs the cpu device (NMSE)", name);
                lt_check(rep, bad_pad == 0, "%s: %zu padding elements of C changed", name, bad_pad);
                lt_check(rep, diff == 0, "%s: a second run differs in %zu elements", name, diff);
                free(cd);
                free(packed);
                free(cpu_p);
            }
            lc_buffer_free(A); lc_buffer_free(B); lc_buffer_free(C);
            lc_buffer_free(A2); lc_buffer_free(B2); lc_buffer_free(C2);
            free(a); free(b); free(c0); free(got); free(again); free(cpu_c); free(ref);
        }
    lc_device_close(cpu);
}

static void gemm_test(const char *kind) {
    char specs[MAX_VK][32], test[64];
    snprintf(test, sizeof test, "vulkan.gemm_%s", kind);
    int nv = vk_specs(test, specs);
    ck_assert_msg(nv >= 0, "LORAC_REQUIRE_BACKENDS names vulkan but no Vulkan device exists");
    setenv("LORAC_VULKAN_GEMM", kind, 1);
    int failures = 0;
    for (int i = 0; i < nv; i++) {
        lc_device *dev = NULL;
        lt_report rep;
        lt_report_begin(&rep, test, specs[i]);
        if (lt_check_ok(&rep, lc_device_open(specs[i], &dev), "open %s", specs[i])) {
            lorac_vulkan_stats_t s;
            if (get_stats(dev, &s)) {
                int want = strcmp(kind, "texel") == 0 ? 0 : strcmp(kind, "ssbo") == 0 ? 1 : 2;
                if (!(want == 0 && s.gemm_kind == 1)) /* texel falls back to ssbo on small texel limits */
                    lt_check(&rep, s.gemm_kind == want, "%s: LORAC_VULKAN_GEMM=%s selects kernel %d (got %d)",
                             specs[i], kind, want, s.gemm_kind);
            }
            run_gemm_kind(dev, lc_device_get_info(dev), &rep, NULL);
            lc_device_close(dev);
        }
        lt_report_end(&rep);
        failures += rep.failures;
    }
    ck_assert_int_eq(failures, 0);
}

START_TEST(test_gemm_texel) { gemm_test("texel"); }
END_TEST
START_TEST(test_gemm_ssbo) { gemm_test("ssbo"); }
END_TEST
START_TEST(test_gemm_tiled) { gemm_test("tiled"); }
END_TEST

/* ---- ops on backend shapes ------------------------------------------------------------------------- */

/* Random weight [K, N] of dtype dt: raw bytes and the reference values (lc_dequantize_row). */
static void make_weight(lt_report *rep, lc_dtype dt, int64_t K, int64_t N, lt_rng *r, void **raw_out,
                        double **ref_out) {
    size_t rb = ref_row_bytes(dt, K);
    uint8_t *raw = malloc(rb * (size_t)N);
    double *ref = lt_dalloc(K * N);
    float *row = lt_falloc(K);
    if (dt == LC_F32) {
        lt_fill_uniform(r, (float *)raw, K * N, -0.6f, 1.0f);
        lt_f2d(ref, (float *)raw, K * N);
    } else {
        ref_random_blocks(dt, raw, K * N, 1.0, r);
        for (int64_t n = 0; n < N; n++) {
            lt_check_ok(rep, lc_dequantize_row(dt, raw + rb * (size_t)n, row, K), "lc_dequantize_row(%s)",
                        lc_dtype_name(dt));
            lt_f2d(ref + n * K, row, K);
        }
    }
    free(row);
    *raw_out = raw;
    *ref_out = ref;
}

/* Products: every weight dtype through mul_mat (forward, dx, F32 dw) and lora (with dropout),
 * sizes around the register blocks (16 x 8 x 8) and tiles (64 x 64 x 16). */
static void run_products(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info;
    (void)user;
    static const lc_dtype dts[] = {LC_F32,  LC_F16,  LC_BF16, LC_Q8_0, LC_Q4_0, LC_Q4_1,
                                   LC_Q5_0, LC_Q5_1, LC_Q4_K, LC_Q5_K, LC_Q6_K};
    static const int64_t shapes[][3] = {{1, 1, 1}, {129, 17, 63}, {127, 65, 257}}; /* (K mult, M, N) */
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 7001);
    for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++)
        for (int si = 0; si < 3; si++) {
            lc_dtype dt = dts[di];
            int64_t bs = ref_block_size(dt);
            int64_t K = bs == 1 ? shapes[si][0] : bs * (si == 0 ? 1 : si + 1), M = shapes[si][1], N = shapes[si][2];
            float *x = rnd(&r, K * M, -1.0f, 1.2f);
            void *wraw;
            double *wd;
            make_weight(rep, dt, K, N, &r, &wraw, &wd);
            double *xd = lt_dup_d(x, K * M), *y = lt_dalloc(N * M), *dx = lt_dalloc(K * M), *dw = lt_dalloc(K * N);
            bool train_w = dt == LC_F32;
            lt_case c;
            lt_case_begin(&c, &e, "mul_mat %s K=%lld M=%lld N=%lld", lc_dtype_name(dt), (long long)K, (long long)M,
                          (long long)N);
            lc_tensor *tx = lt_new_f32(&e, K, M, x, LC_TENSOR_PARAM, "x");
            lc_tensor *tw = lt_new_raw(&e, dt, K, N, wraw, train_w ? LC_TENSOR_PARAM : LC_TENSOR_FROZEN, "w");
            lc_tensor *out = lc_mul_mat(c.g, tx, tw);
            if (lt_case_built(&c, out, "lc_mul_mat")) {
                ref_mul_mat(y, xd, wd, K, M, N);
                lt_case_expect(&c, out, y, TOL_F32, "y");
                const double *seed = lt_case_backward(&c, out, &r, 0.0f);
                if (seed) {
                    ref_mul_mat_back(dx, train_w ? dw : NULL, seed, xd, wd, K, M, N);
                    lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
                    if (train_w) lt_case_expect_grad(&c, tw, dw, TOL_F32, "dw");
                }
            }
            lt_case_run(&c);
            free(x); free(wraw); free(wd); free(xd); free(y); free(dx); free(dw);
        }
    static const struct { lc_dtype dt; int64_t in, out, r, T; float p; } lcases[] = {
        {LC_F32, 640, 129, 8, 17, 0.1f}, {LC_Q5_0, 256, 255, 1, 33, 0.0f}, {LC_Q4_K, 512, 65, 16, 9, 0.25f},
        {LC_F32, 257, 1, 3, 129, 0.05f}};
    for (size_t ci = 0; ci < sizeof lcases / sizeof lcases[0]; ci++) {
        lc_dtype dt = lcases[ci].dt;
        int64_t in = lcases[ci].in, out = lcases[ci].out, rk = lcases[ci].r, T = lcases[ci].T;
        float p = lcases[ci].p;
        lc_lora_params lp = {.scaling = 2.0f, .dropout = p, .module_id = (uint32_t)(11 + ci), .seed = 0x5EEDu + ci};
        const uint64_t step = 17 + ci;
        float *x = rnd(&r, in * T, -1.0f, 1.3f), *A = rnd(&r, in * rk, -0.4f, 0.6f), *B = rnd(&r, rk * out, -0.7f, 0.5f);
        void *wraw;
        double *wd;
        make_weight(rep, dt, in, out, &r, &wraw, &wd);
        double *xd = lt_dup_d(x, in * T), *Ad = lt_dup_d(A, in * rk), *Bd = lt_dup_d(B, rk * out);
        double *mult = lt_dalloc(in * T), *y = lt_dalloc(out * T), *u = lt_dalloc(rk * T);
        double *dx = lt_dalloc(in * T), *dA = lt_dalloc(in * rk), *dB = lt_dalloc(rk * out);
        ref_lora_dropout_mult(mult, lp.seed, step, lp.module_id, p, in, T);
        lt_case c;
        lt_case_begin(&c, &e, "lora %s in=%lld out=%lld r=%lld T=%lld p=%g", lc_dtype_name(dt), (long long)in,
                      (long long)out, (long long)rk, (long long)T, p);
        lc_tensor *tx = lt_new_f32(&e, in, T, x, LC_TENSOR_PARAM, "x");
        lc_tensor *tw = lt_new_raw(&e, dt, in, out, wraw, LC_TENSOR_FROZEN, "w");
        lc_tensor *ta = lt_new_f32(&e, in, rk, A, LC_TENSOR_PARAM, "lora_A");
        lc_tensor *tb = lt_new_f32(&e, rk, out, B, LC_TENSOR_PARAM, "lora_B");
        lc_tensor *ty = lc_lora(c.g, tx, tw, ta, tb, &lp);
        if (lt_case_built(&c, ty, "lc_lora")) {
            lc_graph_set_step(c.g, step);
            ref_lora(y, u, xd, wd, Ad, Bd, mult, lp.scaling, in, out, rk, T);
            lt_case_expect(&c, ty, y, TOL_F32, "y");
            const double *seed = lt_case_backward(&c, ty, &r, 0.0f);
            lc_graph_set_step(c.g, step);
            if (seed) {
                ref_lora_back(dx, NULL, dA, dB, seed, xd, wd, Ad, Bd, mult, lp.scaling, in, out, rk, T);
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
                lt_case_expect_grad(&c, ta, dA, TOL_F32, "dA");
                lt_case_expect_grad(&c, tb, dB, TOL_F32, "dB");
            }
        }
        lt_case_run(&c);
        free(x); free(A); free(B); free(wraw); free(wd); free(xd); free(Ad); free(Bd);
        free(mult); free(y); free(u); free(dx); free(dA); free(dB);
    }
    lt_env_free(&e);
}

/* Reductions around and past the workgroup sizes (128 for rms_norm, 256 elsewhere), including
 * partial workgroups, and broadcast gradients with more repeats than one reduction chunk. */
static void run_reductions(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info;
    (void)user;
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 7002);
    /* group sizes around the workgroup (32 on CPU devices, 128 on GPUs); the last has 140000
     * groups of one, so the weight gradient needs two reduction levels */
    static const int64_t groups[] = {1, 31, 32, 33, 127, 128, 129, 255, 256, 257, 1025, 1};
    for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
        const bool many = gi + 1 == sizeof groups / sizeof groups[0];
        int64_t g = groups[gi], n = g * (gi % 2 ? 2 : 1), R = many ? 140000 : 5;
        bool weight = gi % 3 != 1 || many;
        float *x = rnd(&r, n * R, -1.0f, 1.6f), *w = rnd(&r, g, 0.5f, 1.5f);
        double *xd = lt_dup_d(x, n * R), *wd = lt_dup_d(w, g), *y = lt_dalloc(n * R), *dx = lt_dalloc(n * R),
               *dw = lt_dalloc(g);
        lt_case c;
        lt_case_begin(&c, &e, "rms_norm n=%lld R=%lld group=%lld%s", (long long)n, (long long)R, (long long)g,
                      weight ? " weight" : "");
        lc_tensor *tx = lt_new_f32(&e, n, R, x, LC_TENSOR_PARAM, "x");
        lc_tensor *tw = weight ? lt_new_f32(&e, g, 1, w, LC_TENSOR_PARAM, "w") : NULL;
        lc_tensor *out = lc_rms_norm(c.g, tx, tw, g == n ? 0 : g, 1e-5f);
        if (lt_case_built(&c, out, "lc_rms_norm")) {
            ref_rms_norm(y, xd, weight ? wd : NULL, n, R, g, 1e-5f);
            lt_case_expect(&c, out, y, TOL_F32, "y");
            const double *seed = lt_case_backward(&c, out, &r, 0.0f);
            if (seed) {
                ref_rms_norm_back(dx, dw, seed, xd, weight ? wd : NULL, n, R, g, 1e-5f);
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
                if (weight) lt_case_expect_grad(&c, tw, dw, TOL_F32, "dw");
            }
        }
        lt_case_run(&c);
        free(x); free(w); free(xd); free(wd); free(y); free(dx); free(dw);
    }
    static const int64_t vocab[][2] = {{1, 3}, {255, 1}, {256, 7}, {257, 129}, {4097, 3}};
    for (size_t vi = 0; vi < sizeof vocab / sizeof vocab[0]; vi++) {
        int64_t V = vocab[vi][0], N = vocab[vi][1];
        float *l = rnd(&r, V * N, -4.0f, 5.0f);
        int32_t *lab = lt_ialloc(N);
        for (int64_t i = 0; i < N; i++) lab[i] = i % 5 == 3 ? -100 : lt_rng_int(&r, (int32_t)V);
        double *ld = lt_dup_d(l, V * N), loss = 0.0, *lse = lt_dalloc(N), *dl = lt_dalloc(V * N);
        lt_case c;
        lt_case_begin(&c, &e, "cross_entropy V=%lld N=%lld", (long long)V, (long long)N);
        lc_tensor *tl = lt_new_f32(&e, V, N, l, LC_TENSOR_PARAM, "logits");
        lc_tensor *tlab = lt_new_i32(&e, N, lab, "labels");
        lc_tensor *out = lc_cross_entropy(c.g, tl, tlab, -100);
        if (lt_case_built(&c, out, "lc_cross_entropy")) {
            ref_cross_entropy(&loss, lse, ld, lab, V, N, -100, 0.0);
            lt_case_expect(&c, out, &loss, TOL_F32, "loss");
            const double *seed = lt_case_backward(&c, out, &r, 0.61f);
            if (seed) {
                ref_cross_entropy_back(dl, seed[0], ld, lab, V, N, -100, 0.0);
                lt_case_expect_grad(&c, tl, dl, TOL_F32, "dlogits");
            }
        }
        lt_case_run(&c);
        free(l); free(lab); free(ld); free(lse); free(dl);
    }
    static const int64_t sums[] = {1, 255, 256, 257, 65537, 300007};
    for (size_t si = 0; si < sizeof sums / sizeof sums[0]; si++) {
        int64_t n = sums[si];
        float *x = rnd(&r, n, -1.0f, 1.0f);
        double *xd = lt_dup_d(x, n), s = ref_sum_sq(xd, n);
        lt_case c;
        lt_case_begin(&c, &e, "sum_sq n=%lld", (long long)n);
        lc_tensor *tx = lt_new_f32(&e, n, 1, x, 0, "x");
        lc_tensor *out = lc_sum_sq(c.g, tx);
        if (lt_case_built(&c, out, "lc_sum_sq")) lt_case_expect(&c, out, &s, 1e-5, "sum");
        lt_case_run(&c);
        free(x); free(xd);
    }
    /* the last: 307200 repeats of a scalar, more chunks than one reduction level takes */
    static const int64_t bshapes[][4] = {{257, 129, 1, 1}, {257, 129, 257, 1}, {255, 129, 1, 129}, {256, 3, 2, 1},
                                         {1024, 300, 1, 1}};
    for (size_t bi = 0; bi < sizeof bshapes / sizeof bshapes[0]; bi++)
        for (int op = 0; op < 2; op++) {
            int64_t n0 = bshapes[bi][0], n1 = bshapes[bi][1], m0 = bshapes[bi][2], m1 = bshapes[bi][3];
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
            if (lt_case_built(&c, out, "binary")) {
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
    /* attention rows around the softmax workgroup size; head dims 1 and odd */
    static const ref_attn_shape acases[] = {
        {65, 2, 1, 1, 255, 255, true, 0, 0.0}, {1, 3, 3, 2, 256, 257, true, 0, 0.0}, {16, 4, 2, 1, 9, 257, false, 100, 0.0}};
    for (size_t ci = 0; ci < sizeof acases / sizeof acases[0]; ci++) {
        ref_attn_shape a = acases[ci];
        a.scale = (double)(1.0f / sqrtf((float)a.hd));
        int64_t nq = a.hd * a.n_head * a.Tq * a.S, nk = a.hd * a.n_kv * a.Tk * a.S, nl = a.n_head * a.Tq * a.S;
        float *q = rnd(&r, nq, -1.5f, 2.0f), *k = rnd(&r, nk, -1.5f, 2.0f), *v = rnd(&r, nk, -1.0f, 1.2f);
        double *qd = lt_dup_d(q, nq), *kd = lt_dup_d(k, nk), *vd = lt_dup_d(v, nk);
        double *o = lt_dalloc(nq), *lse = lt_dalloc(nl), *dq = lt_dalloc(nq), *dk = lt_dalloc(nk), *dv = lt_dalloc(nk);
        lc_attention_params ap = {.n_head = (int)a.n_head, .n_kv = (int)a.n_kv, .n_seq = (int)a.S,
                                  .causal = a.causal, .window = (int)a.window, .scale = (float)a.scale};
        lt_case c;
        lt_case_begin(&c, &e, "attention hd=%lld heads=%lld/%lld S=%lld Tq=%lld Tk=%lld window=%lld", (long long)a.hd,
                      (long long)a.n_head, (long long)a.n_kv, (long long)a.S, (long long)a.Tq, (long long)a.Tk,
                      (long long)a.window);
        lc_tensor *tq = lt_new_f32(&e, a.hd * a.n_head, a.Tq * a.S, q, LC_TENSOR_PARAM, "q");
        lc_tensor *tk = lt_new_f32(&e, a.hd * a.n_kv, a.Tk * a.S, k, LC_TENSOR_PARAM, "k");
        lc_tensor *tv = lt_new_f32(&e, a.hd * a.n_kv, a.Tk * a.S, v, LC_TENSOR_PARAM, "v");
        lc_tensor *out = lc_attention(c.g, tq, tk, tv, &ap);
        if (lt_case_built(&c, out, "lc_attention")) {
            ref_attention(o, lse, qd, kd, vd, &a);
            lt_case_expect(&c, out, o, TOL_F32, "o");
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

/* Element-wise and data movement ops: get_rows of every dtype (and its scatter backward with
 * repeated ids), rope at large positions (the kernels' own sin/cos range reduction), activations,
 * cpy into half types at odd lengths, adamw, and inputs that are views at unaligned offsets. */
static void run_elementwise(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info;
    (void)user;
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 7003);
    static const lc_dtype dts[] = {LC_F32,  LC_F16,  LC_BF16, LC_Q8_0, LC_Q4_0, LC_Q4_1,
                                   LC_Q5_0, LC_Q5_1, LC_Q4_K, LC_Q5_K, LC_Q6_K};
    for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++) {
        lc_dtype dt = dts[di];
        int64_t E = ref_block_size(dt) == 1 ? 257 : ref_block_size(dt) * 3, V = 13, N = 257;
        void *raw;
        double *td;
        make_weight(rep, dt, E, V, &r, &raw, &td);
        int32_t *ids = lt_ialloc(N);
        for (int64_t n = 0; n < N; n++) ids[n] = lt_rng_int(&r, (int32_t)V);
        double *y = lt_dalloc(E * N), *dt_ = lt_dalloc(E * V);
        bool train = dt == LC_F32;
        lt_case c;
        lt_case_begin(&c, &e, "get_rows %s E=%lld V=%lld N=%lld", lc_dtype_name(dt), (long long)E, (long long)V,
                      (long long)N);
        lc_tensor *tt = lt_new_raw(&e, dt, E, V, raw, train ? LC_TENSOR_PARAM : LC_TENSOR_FROZEN, "table");
        lc_tensor *ti = lt_new_i32(&e, N, ids, "ids");
        lc_tensor *out = lc_get_rows(c.g, tt, ti);
        if (lt_case_built(&c, out, "lc_get_rows")) {
            ref_get_rows(y, td, ids, E, N);
            lt_case_expect(&c, out, y, TOL_F32, "y");
            if (train) {
                const double *seed = lt_case_backward(&c, out, &r, 0.0f);
                if (seed) {
                    ref_get_rows_back(dt_, seed, ids, E, V, N);
                    lt_case_expect_grad(&c, tt, dt_, TOL_F32, "dtable");
                }
            }
        }
        lt_case_run(&c);
        free(raw); free(td); free(ids); free(y); free(dt_);
    }
    static const struct { int64_t hd, n_head, T; int n_rot, mode; float base, scale; int32_t pmax; } rc[] = {
        {256, 1, 7, 256, LC_ROPE_NEOX, 1.0e6f, 1.0f, 32768}, {6, 5, 257, 4, LC_ROPE_NORM, 10000.0f, 0.125f, 131072},
        {130, 2, 3, 128, LC_ROPE_NORM, 10000.0f, 1.0f, 8192}};
    for (size_t ci = 0; ci < sizeof rc / sizeof rc[0]; ci++) {
        int64_t n = rc[ci].hd * rc[ci].n_head * rc[ci].T;
        float *x = rnd(&r, n, -1.0f, 1.0f);
        int32_t *pos = lt_ialloc(rc[ci].T);
        for (int64_t t = 0; t < rc[ci].T; t++) pos[t] = t == 0 ? rc[ci].pmax - 1 : lt_rng_int(&r, rc[ci].pmax);
        double *xd = lt_dup_d(x, n), *y = lt_dalloc(n), *dx = lt_dalloc(n);
        lt_case c;
        lt_case_begin(&c, &e, "rope hd=%lld heads=%lld T=%lld n_rot=%d mode=%d positions < %d", (long long)rc[ci].hd,
                      (long long)rc[ci].n_head, (long long)rc[ci].T, rc[ci].n_rot, rc[ci].mode, rc[ci].pmax);
        lc_tensor *tx = lt_new_f32(&e, rc[ci].hd * rc[ci].n_head, rc[ci].T, x, LC_TENSOR_PARAM, "x");
        lc_tensor *tp = lt_new_i32(&e, rc[ci].T, pos, "pos");
        lc_tensor *out = lc_rope(c.g, tx, tp, (int)rc[ci].n_head, rc[ci].n_rot, rc[ci].mode, rc[ci].base, rc[ci].scale);
        if (lt_case_built(&c, out, "lc_rope")) {
            ref_rope(y, xd, pos, rc[ci].hd, rc[ci].n_head, rc[ci].T, rc[ci].n_rot, rc[ci].mode, rc[ci].base,
                     rc[ci].scale, false);
            lt_case_expect(&c, out, y, TOL_F32, "y");
            const double *seed = lt_case_backward(&c, out, &r, 0.0f);
            if (seed) {
                ref_rope(dx, seed, pos, rc[ci].hd, rc[ci].n_head, rc[ci].T, rc[ci].n_rot, rc[ci].mode, rc[ci].base,
                         rc[ci].scale, true);
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
            }
        }
        lt_case_run(&c);
        free(x); free(pos); free(xd); free(y); free(dx);
    }
    for (int op = 0; op < 4; op++) {
        int64_t n0 = 255, n1 = 257, n = n0 * n1;
        bool gated = op >= 2, gelu = op == 0 || op == 2;
        float *x = rnd(&r, n, -9.0f, 9.0f), *up = rnd(&r, n, -1.5f, 1.0f);
        double *y = lt_dalloc(n), *dx = lt_dalloc(n), *dup = lt_dalloc(n);
        lt_case c;
        lt_case_begin(&c, &e, "activation %d [%lld,%lld]", op, (long long)n0, (long long)n1);
        lc_tensor *tx = lt_new_f32(&e, n0, n1, x, LC_TENSOR_PARAM, "x");
        lc_tensor *tu = gated ? lt_new_f32(&e, n0, n1, up, LC_TENSOR_PARAM, "up") : NULL;
        lc_tensor *out = op == 0 ? lc_gelu_tanh(c.g, tx) : op == 1 ? lc_silu(c.g, tx) : op == 2 ? lc_geglu(c.g, tx, tu)
                                                                                             : lc_swiglu(c.g, tx, tu);
        if (lt_case_built(&c, out, "activation")) {
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
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
                if (gated) lt_case_expect_grad(&c, tu, dup, TOL_F32, "dup");
            }
        }
        lt_case_run(&c);
        free(x); free(up); free(y); free(dx); free(dup);
    }
    /* cpy to half types at an odd length (neighbouring halves share a 32-bit word) */
    for (int dti = 0; dti < 2; dti++) {
        lc_dtype dt = dti ? LC_BF16 : LC_F16;
        int64_t n0 = 257, n1 = 3, n = n0 * n1;
        float *x = rnd(&r, n, -70.0f, 70.0f);
        double *y = lt_dalloc(n);
        for (int64_t i = 0; i < n; i++)
            y[i] = dt == LC_F16 ? ref_fp16_to_double(ref_float_to_fp16(x[i])) : ref_bf16_to_double(ref_float_to_bf16(x[i]));
        lt_case c;
        lt_case_begin(&c, &e, "cpy f32 -> %s [%lld,%lld]", lc_dtype_name(dt), (long long)n0, (long long)n1);
        lc_tensor *tx = lt_new_f32(&e, n0, n1, x, 0, "x");
        lc_tensor *out = lc_cpy(c.g, tx, dt);
        if (lt_case_built(&c, out, "lc_cpy")) lt_case_expect(&c, out, y, 0.0, "y (exact)");
        lt_case_run(&c);
        free(x); free(y);
    }
    /* a product whose input is a view starting 12 bytes into its buffer */
    {
        int64_t K = 37, M = 5, N = 11;
        float *base = rnd(&r, K * M + 3, -1.0f, 1.0f), *w = rnd(&r, K * N, -1.0f, 1.0f);
        double *xd = lt_dup_d(base + 3, K * M), *wd = lt_dup_d(w, K * N), *y = lt_dalloc(N * M);
        ref_mul_mat(y, xd, wd, K, M, N);
        lc_tensor *tb = lt_new_f32(&e, K * M + 3, 1, base, 0, "base");
        lc_tensor *view = NULL;
        int64_t ne[2] = {K, M};
        if (tb && lt_check_ok(rep, lc_tensor_view(tb, 12, 2, ne, &view), "lc_tensor_view at 12 bytes")) {
            lt_case c;
            lt_case_begin(&c, &e, "mul_mat of a view at byte 12 K=%lld M=%lld N=%lld", (long long)K, (long long)M,
                          (long long)N);
            lc_tensor *out = lc_mul_mat(c.g, view, lt_new_f32(&e, K, N, w, 0, "w"));
            if (lt_case_built(&c, out, "lc_mul_mat")) lt_case_expect(&c, out, y, TOL_F32, "y");
            lt_case_run(&c);
            lc_tensor_free(view);
        }
        free(base); free(w); free(xd); free(wd); free(y);
    }
    lt_env_free(&e);
}

/* cross_entropy (ignore_index -100) over random logits [V, N] with one ignored row, forward
 * loss and backward dlogits against plain double loops. */
static void case_cross_entropy(lt_env *e, lt_rng *rng, int64_t V, int64_t N, int64_t ignored_row, const char *title) {
    float *l = rnd(rng, V * N, -4.0f, 5.0f);
    int32_t *lab = lt_ialloc(N);
    for (int64_t i = 0; i < N; i++) lab[i] = i == ignored_row ? -100 : lt_rng_int(rng, (int32_t)V);
    double *ld = lt_dup_d(l, V * N), loss = 0.0, *lse = lt_dalloc(N), *dl = lt_dalloc(V * N);
    lt_case c;
    lt_case_begin(&c, e, "%s V=%lld N=%lld", title, (long long)V, (long long)N);
    lc_tensor *tl = lt_new_f32(e, V, N, l, LC_TENSOR_PARAM, "logits");
    lc_tensor *out = lc_cross_entropy(c.g, tl, lt_new_i32(e, N, lab, "labels"), -100);
    if (lt_case_built(&c, out, "lc_cross_entropy")) {
        ref_cross_entropy(&loss, lse, ld, lab, V, N, -100, 0.0);
        lt_case_expect(&c, out, &loss, TOL_F32, "loss");
        const double *seed = lt_case_backward(&c, out, rng, 0.5f);
        if (seed) {
            ref_cross_entropy_back(dl, seed[0], ld, lab, V, N, -100, 0.0);
            lt_case_expect_grad(&c, tl, dl, TOL_F32, "dlogits");
        }
    }
    lt_case_run(&c);
    free(l); free(lab); free(ld); free(lse); free(dl);
}

/* Tensors larger than one binding, with the binding limit lowered to 1 MiB
 * (LORAC_VULKAN_MAX_BINDING) so the chunked paths run on small shapes: products split along M,
 * N and K, get_rows over a table in row chunks, cross_entropy over logits in row chunks. */
static void run_chunked(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info;
    (void)user;
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 7004);
    /* the last: rows of y (12 KB) force chunks of M below 256 and the quantized weight is packed
     * once per chunk of N with the M chunks inside (vk_gemm.c loop order) */
    static const struct { lc_dtype dt; int64_t K, M, N; } mm[] = {
        {LC_F32, 640, 33, 1000}, {LC_Q5_0, 640, 9, 3000}, {LC_Q8_0, 256, 200, 3000}};
    for (size_t ci = 0; ci < sizeof mm / sizeof mm[0]; ci++) {
        lc_dtype dt = mm[ci].dt;
        int64_t K = mm[ci].K, M = mm[ci].M, N = mm[ci].N;
        float *x = rnd(&r, K * M, -1.0f, 1.2f);
        void *wraw;
        double *wd;
        make_weight(rep, dt, K, N, &r, &wraw, &wd);
        double *xd = lt_dup_d(x, K * M), *y = lt_dalloc(N * M), *dx = lt_dalloc(K * M), *dw = lt_dalloc(K * N);
        bool train_w = dt == LC_F32;
        lt_case c;
        lt_case_begin(&c, &e, "chunked mul_mat %s K=%lld M=%lld N=%lld", lc_dtype_name(dt), (long long)K, (long long)M,
                      (long long)N);
        lc_tensor *tx = lt_new_f32(&e, K, M, x, LC_TENSOR_PARAM, "x");
        lc_tensor *tw = lt_new_raw(&e, dt, K, N, wraw, train_w ? LC_TENSOR_PARAM : LC_TENSOR_FROZEN, "w");
        lc_tensor *out = lc_mul_mat(c.g, tx, tw);
        if (lt_case_built(&c, out, "lc_mul_mat")) {
            ref_mul_mat(y, xd, wd, K, M, N);
            lt_case_expect(&c, out, y, TOL_F32, "y");
            const double *seed = lt_case_backward(&c, out, &r, 0.0f);
            if (seed) {
                ref_mul_mat_back(dx, train_w ? dw : NULL, seed, xd, wd, K, M, N);
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
                if (train_w) lt_case_expect_grad(&c, tw, dw, TOL_F32, "dw");
            }
        }
        lt_case_run(&c);
        free(x); free(wraw); free(wd); free(xd); free(y); free(dx); free(dw);
    }
    {
        const int64_t in = 640, out = 1000, rk = 8, T = 9;
        lc_lora_params lp = {.scaling = 2.0f, .dropout = 0.1f, .module_id = 3, .seed = 77};
        float *x = rnd(&r, in * T, -1.0f, 1.3f), *A = rnd(&r, in * rk, -0.4f, 0.6f), *B = rnd(&r, rk * out, -0.7f, 0.5f);
        void *wraw;
        double *wd;
        make_weight(rep, LC_F32, in, out, &r, &wraw, &wd);
        double *xd = lt_dup_d(x, in * T), *Ad = lt_dup_d(A, in * rk), *Bd = lt_dup_d(B, rk * out);
        double *mult = lt_dalloc(in * T), *y = lt_dalloc(out * T), *dx = lt_dalloc(in * T), *dA = lt_dalloc(in * rk),
               *dB = lt_dalloc(rk * out);
        ref_lora_dropout_mult(mult, lp.seed, 5, lp.module_id, lp.dropout, in, T);
        lt_case c;
        lt_case_begin(&c, &e, "chunked lora in=%lld out=%lld r=%lld T=%lld", (long long)in, (long long)out, (long long)rk,
                      (long long)T);
        lc_tensor *tx = lt_new_f32(&e, in, T, x, LC_TENSOR_PARAM, "x");
        lc_tensor *ta = lt_new_f32(&e, in, rk, A, LC_TENSOR_PARAM, "lora_A");
        lc_tensor *tb = lt_new_f32(&e, rk, out, B, LC_TENSOR_PARAM, "lora_B");
        lc_tensor *ty = lc_lora(c.g, tx, lt_new_raw(&e, LC_F32, in, out, wraw, LC_TENSOR_FROZEN, "w"), ta, tb, &lp);
        if (lt_case_built(&c, ty, "lc_lora")) {
            ref_lora(y, NULL, xd, wd, Ad, Bd, mult, lp.scaling, in, out, rk, T);
            lt_case_expect(&c, ty, y, TOL_F32, "y");
            const double *seed = lt_case_backward(&c, ty, &r, 0.0f);
            lc_graph_set_step(c.g, 5);
            if (seed) {
                ref_lora_back(dx, NULL, dA, dB, seed, xd, wd, Ad, Bd, mult, lp.scaling, in, out, rk, T);
                lt_case_expect_grad(&c, tx, dx, TOL_F32, "dx");
                lt_case_expect_grad(&c, ta, dA, TOL_F32, "dA");
                lt_case_expect_grad(&c, tb, dB, TOL_F32, "dB");
            }
        }
        lt_case_run(&c);
        free(x); free(A); free(B); free(wraw); free(wd); free(xd); free(Ad); free(Bd);
        free(mult); free(y); free(dx); free(dA); free(dB);
    }
    {
        const int64_t E = 640, V = 1600, N = 40;
        void *raw;
        double *td;
        make_weight(rep, LC_Q8_0, E, V, &r, &raw, &td);
        int32_t *ids = lt_ialloc(N);
        for (int64_t n = 0; n < N; n++) ids[n] = n == 0 ? (int32_t)V - 1 : lt_rng_int(&r, (int32_t)V);
        double *y = lt_dalloc(E * N);
        ref_get_rows(y, td, ids, E, N);
        lt_case c;
        lt_case_begin(&c, &e, "chunked get_rows q8_0 E=%lld V=%lld N=%lld", (long long)E, (long long)V, (long long)N);
        lc_tensor *out = lc_get_rows(c.g, lt_new_raw(&e, LC_Q8_0, E, V, raw, LC_TENSOR_FROZEN, "table"),
                                     lt_new_i32(&e, N, ids, "ids"));
        if (lt_case_built(&c, out, "lc_get_rows")) lt_case_expect(&c, out, y, TOL_F32, "y");
        lt_case_run(&c);
        free(raw); free(td); free(ids); free(y);
    }
    case_cross_entropy(&e, &r, 20000, 17, 4, "chunked cross_entropy");
    lt_env_free(&e);
}

/* Tensors larger than one storage-buffer binding at the device's real limit (lavapipe: 128 MiB):
 * an ADD of two 40M-element F32 tensors (160 MB each), which binds its tensors whole, is refused
 * by lc_graph_plan with LC_ERR_UNSUPPORTED naming the op, the device, the tensor and the binding
 * limit, before any memory is allocated; the ops that split such tensors into bindings (a product and get_rows over a
 * 153.6 MB F32 weight, cross_entropy and its backward over 136 MB of logits) plan and match
 * plain double-precision loops. Skipped on devices whose limit exceeds the sizes used. */
static void run_oversize(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)user;
    const int64_t big0 = 10000, big1 = 4000; /* 40M F32 = 160 MB */
    lc_graph *g = lc_graph_new(dev);
    if (!lt_check(rep, g != NULL, "lc_graph_new")) return;
    lc_tensor *a = lc_graph_input(g, LC_F32, big0, big1, "big_a"), *b = lc_graph_input(g, LC_F32, big0, big1, "big_b");
    lc_tensor *sum = a && b ? lc_add(g, a, b) : NULL;
    lt_check(rep, sum != NULL, "lc_add of two [%lld, %lld] inputs builds", (long long)big0, (long long)big1);
    lc_status st = lc_graph_plan(g);
    const char *msg = lc_last_error();
    if (st == LC_OK) {
        lt_log("[vulkan.oversize] %s: a 160 MB binding fits this device; refusal not tested\n", info->spec);
    } else {
        lt_log("[vulkan.oversize] %s refuses: %s\n", info->spec, msg);
        lt_check(rep, st == LC_ERR_UNSUPPORTED, "plan of an ADD of 160 MB tensors: LC_ERR_UNSUPPORTED (got %s: %s)",
                 lc_status_str(st), msg);
        lt_check(rep, strstr(msg, "add") != NULL && strstr(msg, info->spec) != NULL,
                 "the refusal names the op and the device: '%s'", msg);
        lt_check(rep, strstr(msg, "big_a") != NULL && strstr(msg, "maxStorageBufferRange") != NULL,
                 "the refusal keeps the backend's reason (tensor name and binding limit): '%s'", msg);
    }
    lc_graph_free(g);

    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 7005);
    {
        const int64_t K = 640, N = 60000, M = 3, NI = 5; /* w: 153.6 MB */
        float *w = rnd(&r, K * N, -1.0f, 1.0f), *x = rnd(&r, K * M, -1.0f, 1.0f);
        double *wd = lt_dup_d(w, K * N), *xd = lt_dup_d(x, K * M), *y = lt_dalloc(N * M), *rows = lt_dalloc(K * NI);
        int32_t ids[5] = {(int32_t)N - 1, 0, 31337, (int32_t)N / 2, 59999};
        ref_mul_mat(y, xd, wd, K, M, N);
        ref_get_rows(rows, wd, ids, K, NI);
        lt_case c;
        lt_case_begin(&c, &e, "mul_mat and get_rows over a 153.6 MB F32 weight K=%lld N=%lld", (long long)K, (long long)N);
        lc_tensor *tw = lt_new_f32(&e, K, N, w, 0, "w_big");
        lc_tensor *out = lc_mul_mat(c.g, lt_new_f32(&e, K, M, x, 0, "x"), tw);
        lc_tensor *got = lc_get_rows(c.g, tw, lt_new_i32(&e, NI, ids, "ids"));
        if (lt_case_built(&c, out, "lc_mul_mat") && lt_case_built(&c, got, "lc_get_rows")) {
            lt_case_expect(&c, out, y, TOL_F32, "y");
            lt_case_expect(&c, got, rows, TOL_F32, "rows");
        }
        lt_case_run(&c);
        free(w); free(x); free(wd); free(xd); free(y); free(rows);
    }
    case_cross_entropy(&e, &r, 262144, 130, 7, "cross_entropy over 136 MB of logits"); /* 136 MB */
    lt_env_free(&e);
}

START_TEST(test_oversize) {
    char specs[MAX_VK][32];
    int nv = vk_specs("vulkan.oversize", specs);
    ck_assert_msg(nv >= 0, "LORAC_REQUIRE_BACKENDS names vulkan but no Vulkan device exists");
    if (nv == 0) return;
    setenv("LORAC_TEST_DEVICES", "vulkan", 1);
    ck_assert_int_eq(lt_for_each_device("vulkan.oversize", run_oversize, NULL), 0);
}
END_TEST

START_TEST(test_ops_chunked) {
    setenv("LORAC_VULKAN_MAX_BINDING", "1048576", 1);
    ck_assert_int_eq(on_cpu_and_vulkan("vulkan.chunked", run_chunked, NULL), 0);
}
END_TEST

START_TEST(test_ops_products) { ck_assert_int_eq(on_cpu_and_vulkan("vulkan.products", run_products, NULL), 0); }
END_TEST
START_TEST(test_ops_reductions) { ck_assert_int_eq(on_cpu_and_vulkan("vulkan.reductions", run_reductions, NULL), 0); }
END_TEST
START_TEST(test_ops_elementwise) { ck_assert_int_eq(on_cpu_and_vulkan("vulkan.elementwise", run_elementwise, NULL), 0); }
END_TEST

/* The fallback paths a GPU without the conveniences of lavapipe takes: descriptor pools, staging
 * transfers, float-only sums, the shared-memory GEMM. */
START_TEST(test_ops_fallbacks) {
    setenv("LORAC_VULKAN_NO_PUSH_DESCRIPTORS", "1", 1);
    setenv("LORAC_VULKAN_FORCE_STAGING", "1", 1);
    setenv("LORAC_VULKAN_NO_FP64", "1", 1);
    setenv("LORAC_VULKAN_GEMM", "tiled", 1);
    int failures = on_cpu_and_vulkan("vulkan.fallbacks", run_products, NULL);
    failures += on_cpu_and_vulkan("vulkan.fallbacks", run_reductions, NULL);
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---- pipeline cache ---------------------------------------------------------------------------- */

static bool run_small_graph(lt_report *rep, lc_device *dev) {
    lt_env e;
    lt_env_init(&e, dev, rep);
    lt_rng r;
    lt_rng_seed(&r, 99);
    float *x = rnd(&r, 64 * 8, -1.0f, 1.0f), *w = rnd(&r, 64 * 16, -1.0f, 1.0f);
    double *xd = lt_dup_d(x, 64 * 8), *wd = lt_dup_d(w, 64 * 16), *y = lt_dalloc(16 * 8);
    ref_mul_mat(y, xd, wd, 64, 8, 16);
    lt_case c;
    lt_case_begin(&c, &e, "pipeline cache probe");
    lc_tensor *out = lc_mul_mat(c.g, lt_new_f32(&e, 64, 8, x, 0, "x"), lt_new_f32(&e, 64, 16, w, 0, "w"));
    if (lt_case_built(&c, out, "lc_mul_mat")) lt_case_expect(&c, out, y, TOL_F32, "y");
    bool ok = lt_case_run(&c);
    lt_env_free(&e);
    free(x); free(w); free(xd); free(wd); free(y);
    return ok;
}

START_TEST(test_pipeline_cache) {
    char specs[MAX_VK][32];
    int nv = vk_specs("vulkan.pipeline_cache", specs);
    ck_assert_msg(nv >= 0, "LORAC_REQUIRE_BACKENDS names vulkan but no Vulkan device exists");
    char dir[] = "/tmp/lorac-vkcache-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char sub[256];
    snprintf(sub, sizeof sub, "%s/nested/dir", dir); /* created by the plugin */
    setenv("LORAC_VULKAN_CACHE_DIR", sub, 1);
    lt_report rep;
    lt_report_begin(&rep, "vulkan.pipeline_cache", "all");
    for (int i = 0; i < nv; i++) {
        lc_device *dev = NULL;
        lorac_vulkan_stats_t s;
        if (!lt_check_ok(&rep, lc_device_open(specs[i], &dev), "open %s", specs[i])) continue;
        lt_check(&rep, get_stats(dev, &s), "the plugin exports lorac_vulkan_stats");
        char path[1024];
        snprintf(path, sizeof path, "%s", s.pipeline_cache_path);
        lt_check(&rep, strncmp(path, sub, strlen(sub)) == 0, "cache file '%s' lies in LORAC_VULKAN_CACHE_DIR", path);
        lt_check(&rep, s.pipeline_cache_loaded_bytes == 0, "%s: nothing to load on the first open", specs[i]);
        run_small_graph(&rep, dev);
        lc_device_close(dev);
        struct stat sb;
        bool written = stat(path, &sb) == 0 && sb.st_size >= 32;
        lt_check(&rep, written, "%s: pipeline cache written at close (%s)", specs[i], path);
        /* second open reuses it */
        if (!lt_check_ok(&rep, lc_device_open(specs[i], &dev), "reopen %s", specs[i])) continue;
        get_stats(dev, &s);
        lt_check(&rep, written && s.pipeline_cache_loaded_bytes == (long long)sb.st_size,
                 "%s: the second open loads the %lld-byte cache (loaded %lld)", specs[i],
                 written ? (long long)sb.st_size : -1LL, s.pipeline_cache_loaded_bytes);
        run_small_graph(&rep, dev);
        lc_device_close(dev);
        /* a corrupt file is ignored, the device still works, and it is replaced */
        FILE *f = fopen(path, "wb");
        if (f) {
            fputs("not a pipeline cache, but at least thirty-two bytes long", f);
            fclose(f);
        }
        if (lt_check_ok(&rep, lc_device_open(specs[i], &dev), "open %s with a corrupt cache", specs[i])) {
            get_stats(dev, &s);
            lt_check(&rep, s.pipeline_cache_loaded_bytes == 0, "%s: a corrupt cache is not loaded", specs[i]);
            lt_check(&rep, run_small_graph(&rep, dev), "%s: works with a corrupt cache file", specs[i]);
            lc_device_close(dev);
            uint32_t hdr[2] = {0, 0};
            f = fopen(path, "rb");
            if (f) {
                lt_check(&rep, fread(hdr, 4, 2, f) == 2 && hdr[0] >= 32 && hdr[1] == 1,
                         "%s: the corrupt file was replaced by a valid cache (header %u %u)", specs[i], hdr[0], hdr[1]);
                fclose(f);
            }
        }
        remove(path);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) lt_log("  (could not remove %s)\n", dir);
    lt_report_end(&rep);
    ck_assert_int_eq(rep.failures, 0);
}
END_TEST

/* ---- validation -------------------------------------------------------------------------------- */

/* A subset of ops under VK_LAYER_KHRONOS_validation with synchronization validation; any
 * validation error fails (the plugin counts them; synchronize also reports them). Also run as
 * its own ctest entry, vulkan_validation. */
START_TEST(test_validation) {
    setenv("LORAC_VULKAN_VALIDATION", "1", 1);
    setenv("LORAC_TEST_DEVICES", "cpu,vulkan", 1);
    char specs[MAX_VK][32];
    int nv = vk_specs("vulkan.validation", specs);
    ck_assert_msg(nv >= 0, "LORAC_REQUIRE_BACKENDS names vulkan but no Vulkan device exists");
    if (nv == 0) return;
    lc_device *dev = NULL;
    ck_assert_msg(lc_device_open(specs[0], &dev) == LC_OK, "open: %s", lc_last_error());
    lorac_vulkan_stats_t s;
    get_stats(dev, &s);
    lc_device_close(dev);
    if (!s.validation_active) {
        lt_log("[vulkan.validation] SKIP: VK_LAYER_KHRONOS_validation is not installed (Debian/Ubuntu: apt-get install "
               "vulkan-validationlayers)\n");
        return;
    }
    int failures = lt_for_each_device("vulkan.validation", run_products, NULL);
    failures += lt_for_each_device("vulkan.validation", run_reductions, NULL);
    get_stats(NULL, &s);
    lt_log("[vulkan.validation] %d validation error(s), %d warning(s)\n", s.validation_errors, s.validation_warnings);
    ck_assert_int_eq(s.validation_errors, 0);
    ck_assert_int_eq(failures, 0);
}
END_TEST

static Suite *vulkan_suite(void) {
    Suite *s = suite_create("vulkan");
    struct { const char *name; const TTest *fn; } tests[] = {
        {"enumerate", test_enumerate},   {"buffers", test_buffers},
        {"gemm_texel", test_gemm_texel}, {"gemm_ssbo", test_gemm_ssbo},
        {"gemm_tiled", test_gemm_tiled}, {"products", test_ops_products},
        {"reductions", test_ops_reductions}, {"elementwise", test_ops_elementwise},
        {"fallbacks", test_ops_fallbacks}, {"chunked", test_ops_chunked},
        {"oversize", test_oversize},
        {"pipeline_cache", test_pipeline_cache},
        {"validation", test_validation}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        TCase *tc = tcase_create(tests[i].name);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, tests[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) {
    const int failed = lt_run_suite(vulkan_suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
