/* Tests of the CPU backend's vector helpers (backends/cpu/cpu_exp.c, backends/cpu/cpu_dropout.c):
 *  - lc_cpu_expf against double-precision exp (ulp error for normal results, absolute error for
 *    subnormal ones, special values);
 *  - lc_cpu_exp_sum / lc_cpu_row_max (the AVX2 path where the CPU has it) against plain loops
 *    over lc_cpu_expf: identical exponentials, and the sum equal to the documented 8-lane order;
 *  - lc_cpu_dropout_keep against lc_rng_keep (lorac/rng.h) element by element, including groups
 *    whose counter low word wraps past 2^32.
 * The helpers are internal to the library (backends/cpu/cpu_internal.h); their prototypes are
 * repeated here.
 */
#include <check.h>

#include "common/lt_suite.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/rng.h"

float lc_cpu_expf(float x);
float lc_cpu_row_max(const float *x, int64_t n);
double lc_cpu_exp_sum(const float *x, int64_t n, float shift, float *out);
void lc_cpu_dropout_keep(uint64_t seed, uint64_t stream, uint64_t base, int64_t n, float p, uint8_t *keep);

/* Error of f against the exact e in units of the float spacing at e (normal range). */
static double ulp_err(float f, double e) {
    int ex;
    frexp(e, &ex); /* e = m·2^ex, 0.5 <= m < 1: float spacing 2^(ex-24) */
    return fabs((double)f - e) / ldexp(1.0, ex - 24);
}

static double worst_ulp(float x, double worst) {
    const double e = exp((double)x);
    const float f = lc_cpu_expf(x);
    if (e >= (double)FLT_MIN && e <= (double)FLT_MAX) {
        const double u = ulp_err(f, e);
        if (u > worst) worst = u;
    } else if (e < (double)FLT_MIN) {
        ck_assert_msg(fabs((double)f - e) <= ldexp(1.0, -149), "expf(%a) = %a, exact %a", (double)x, (double)f, e);
    }
    return worst;
}

START_TEST(test_expf_accuracy) {
    double worst = 0.0;
    /* every float in [-1, -0.5] and in [0.5, 1] (the reduced argument's full range) */
    for (float x = 0.5f; x <= 1.0f; x = nextafterf(x, 2.0f)) worst = worst_ulp(-x, worst_ulp(x, worst));
    /* 2^24 evenly spread points over the rest of the range, subnormal results included */
    const double lo = -103.9, hi = 88.72;
    for (int i = 0; i <= (1 << 24); i++) worst = worst_ulp((float)(lo + (hi - lo) * i / (double)(1 << 24)), worst);
    printf("lc_cpu_expf: max error %.3f ulp over normal results\n", worst);
    ck_assert_msg(worst < 1.0, "lc_cpu_expf max error %.3f ulp", worst);
}
END_TEST

START_TEST(test_expf_special) {
    ck_assert(lc_cpu_expf(0.0f) == 1.0f);
    ck_assert(isnan(lc_cpu_expf(NAN)));
    ck_assert(lc_cpu_expf(INFINITY) == INFINITY);
    ck_assert(lc_cpu_expf(-INFINITY) == 0.0f);
    ck_assert(lc_cpu_expf(89.0f) == INFINITY);
    ck_assert(lc_cpu_expf(88.7f) < INFINITY && lc_cpu_expf(88.7f) > 1e38f);
    ck_assert(lc_cpu_expf(-104.0f) == 0.0f);
    ck_assert(lc_cpu_expf(-200.0f) == 0.0f);
}
END_TEST

/* A row like a logits row: values in [-30, 30], a few extremes. */
static void fill_row(float *x, int64_t n, uint32_t seed) {
    uint32_t s = seed;
    for (int64_t j = 0; j < n; j++) {
        s = s * 1664525u + 1013904223u;
        x[j] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 60.0f;
    }
    if (n > 5) {
        x[1] = -INFINITY;
        x[3] = -150.0f;
        x[n - 2] = 40.0f;
    }
}

START_TEST(test_exp_sum_matches_scalar) {
    const int64_t sizes[] = {0, 1, 7, 8, 9, 31, 1000, 262147};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int64_t n = sizes[si];
        float *x = malloc((size_t)(n + 1) * sizeof(float)), *out = malloc((size_t)(n + 1) * sizeof(float));
        ck_assert(x && out);
        fill_row(x, n, (uint32_t)(n + 11));
        float m = -INFINITY;
        for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
        ck_assert(lc_cpu_row_max(x, n) == m);
        const float shift = n ? m : 0.0f;
        double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        double exact = 0.0;
        for (int64_t j = 0; j < n; j++) {
            acc[j % 8] += (double)lc_cpu_expf(x[j] - shift);
            exact += exp((double)x[j] - (double)shift);
        }
        const double want = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
        const double got = lc_cpu_exp_sum(x, n, shift, out);
        ck_assert_msg(got == want, "n=%lld: sum %.17g, lane-order loop %.17g", (long long)n, got, want);
        ck_assert_msg(fabs(got - exact) <= 1e-6 * exact + 1e-300, "n=%lld: sum %.17g, exact %.17g", (long long)n, got,
                      exact);
        for (int64_t j = 0; j < n; j++) {
            const float e = lc_cpu_expf(x[j] - shift);
            ck_assert_msg(memcmp(&out[j], &e, sizeof e) == 0, "n=%lld j=%lld: %a vs %a", (long long)n, (long long)j,
                          (double)out[j], (double)e);
        }
        ck_assert(lc_cpu_exp_sum(x, n, shift, NULL) == got);
        free(x);
        free(out);
    }
}
END_TEST

START_TEST(test_dropout_keep_matches_rng) {
    const struct {
        uint64_t seed, stream, base;
        int64_t n;
        float p;
    } cases[] = {
        {42, 7, 0, 1000, 0.05f},
        {0x123456789abcdefull, (5ull << 24) | 17u, 640 * 255, 640, 0.1f},
        {3, 9, 0xFFFFFFF0ull, 45, 0.5f},          /* the counter low word wraps at a group edge */
        {3, 9, 0xFFFFFFF1ull, 40, 0.5f},          /* ... inside a group of 16 */
        {3, 9, 0xFFFFFFF9ull, 40, 0.5f},          /* ... inside a group of 8 */
        {3, 9, 0x1FFFFFFFAull, 19, 0.25f},         /* ... and with a non-zero high word */
        {1, 2, 5, 13, 0.0f},                      /* p = 0 keeps everything */
        {8, 1, 100, 4099, 0.999f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t *keep = malloc((size_t)cases[c].n);
        ck_assert(keep);
        lc_cpu_dropout_keep(cases[c].seed, cases[c].stream, cases[c].base, cases[c].n, cases[c].p, keep);
        for (int64_t i = 0; i < cases[c].n; i++)
            ck_assert_msg(keep[i] == (uint8_t)lc_rng_keep(cases[c].seed, cases[c].stream, cases[c].base + (uint64_t)i,
                                                          cases[c].p),
                          "case %zu index %lld", c, (long long)i);
        free(keep);
    }
}
END_TEST

static Suite *cpu_exp_suite(void) {
    Suite *s = suite_create("cpu_exp");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_expf_accuracy);
    tcase_add_test(tc, test_expf_special);
    tcase_add_test(tc, test_exp_sum_matches_scalar);
    tcase_add_test(tc, test_dropout_keep_matches_rng);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(cpu_exp_suite());
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
