/* lorac CPU backend — single-precision exp for softmax rows: a scalar lc_cpu_expf and row
 * kernels (maximum; exponentials of a shifted row with their sum) vectorised with AVX2.
 *
 * Algorithm (Cody & Waite range reduction with the Cephes expf polynomial; S. L. Moshier, Cephes
 * Mathematical Library, expf.c; W. J. Cody, W. Waite, "Software Manual for the Elementary
 * Functions", 1980):
 *   x is clamped to [-104, 89] (NaN passes through);
 *   n = round-to-nearest-even(x·log2(e)) by adding and subtracting 1.5·2^23;
 *   r = (x - n·C1) - n·C2 with C1 = 0.693359375 (exact, 9 bits: n·C1 is exact), C2 = -2.12194440e-4;
 *   p = ((((((1.9875691500e-4·r + 1.3981999507e-3)·r + 8.3334519073e-3)·r + 4.1665795894e-2)·r
 *         + 1.6666665459e-1)·r + 5.0000001201e-1)·r²) + r + 1;
 *   exp(x) = (p·2^(n - n/2))·2^(n/2), n/2 rounded toward -inf, each power of two built from its
 *   exponent bits; the second product rounds once, so results below FLT_MIN are correctly
 *   rounded subnormals, x > 88.7228 gives +inf and x < -103.98 gives 0.
 * Every step is a separate IEEE single-precision multiply or add (no FMA: C11 mode compiles
 * with -ffp-contract=off and the intrinsics used are plain mul/add), so the scalar and the AVX2
 * code give bit-identical results. Accuracy against double exp, measured by tests/test_cpu_exp.c
 * (every float in [-1, -0.5] and [0.5, 1], 2^24 evenly spread points of [-103.9, 88.72]): below
 * 1 ulp for normal results (0.98 ulp observed over every float in [-1, 1] as well), absolute
 * error at most 2^-149 for subnormal results; the test asserts < 1 ulp. glibc's expf, which it
 * replaces, is correctly rounded in most cases (< 1 ulp); the cross-entropy tests compare against
 * double-precision loops with tolerances far above 1 ulp.
 *
 * Row sums are accumulated in double, in 8 lanes: element j goes to lane j mod 8 in index order,
 * and the lanes are added as ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)). The AVX2 and the scalar paths
 * follow the same order, so the sums are identical too.
 */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define LC_EXP_AVX2 1
#else
#define LC_EXP_AVX2 0
#endif

#define EXP_LO (-104.0f)
#define EXP_HI 89.0f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_MAGIC 12582912.0f /* 1.5 * 2^23 */
#define EXP_C1 0.693359375f
#define EXP_C2 (-2.12194440e-4f)
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

static inline float pow2i(int32_t k) { /* 2^k for -126 <= k <= 127 */
    const uint32_t bits = (uint32_t)(k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float lc_cpu_expf(float x) {
    if (x != x) return x;
    x = x < EXP_LO ? EXP_LO : x;
    x = x > EXP_HI ? EXP_HI : x;
    const float t = x * EXP_LOG2E + EXP_MAGIC;
    const float nf = t - EXP_MAGIC;
    const int32_t n = (int32_t)nf;
    const float r = (x - nf * EXP_C1) - nf * EXP_C2;
    float p = EXP_P0;
    p = p * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    p = p * (r * r);
    p = (p + r) + 1.0f;
    const int32_t n1 = n >> 1; /* arithmetic shift: floor(n / 2) on GCC/Clang */
    return (p * pow2i(n - n1)) * pow2i(n1);
}

static inline double lane_total(const double acc[8]) {
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

static float row_max_portable(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

static double exp_sum_portable(const float *x, int64_t n, float shift, float *out, int64_t j0, double acc[8]) {
    for (int64_t j = j0; j < n; j++) {
        const float e = lc_cpu_expf(x[j] - shift);
        if (out) out[j] = e;
        acc[j & 7] += (double)e;
    }
    return lane_total(acc);
}

#if LC_EXP_AVX2
__attribute__((target("avx2"))) static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(EXP_LO), x); /* maxps returns the 2nd operand for NaN */
    x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), x);
    const __m256 t = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)), _mm256_set1_ps(EXP_MAGIC));
    const __m256 nf = _mm256_sub_ps(t, _mm256_set1_ps(EXP_MAGIC));
    const __m256i n = _mm256_cvttps_epi32(nf); /* nf is an integer: truncation is exact */
    const __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(nf, _mm256_set1_ps(EXP_C1))),
                                   _mm256_mul_ps(nf, _mm256_set1_ps(EXP_C2)));
    __m256 p = _mm256_set1_ps(EXP_P0);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P1));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P2));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P3));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P4));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(EXP_P5));
    p = _mm256_mul_ps(p, _mm256_mul_ps(r, r));
    p = _mm256_add_ps(_mm256_add_ps(p, r), _mm256_set1_ps(1.0f));
    const __m256i n1 = _mm256_srai_epi32(n, 1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(n, n1), bias), 23));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s2), s1);
}

__attribute__((target("avx2"))) static float row_max_avx2(const float *x, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + j), m); /* x > m ? x : m */
    float l[8];
    _mm256_storeu_ps(l, m);
    float r = row_max_portable(l, 8);
    for (; j < n; j++) r = x[j] > r ? x[j] : r;
    return r;
}

__attribute__((target("avx2"))) static double exp_sum_avx2(const float *x, int64_t n, float shift, float *out) {
    const __m256 sh = _mm256_set1_ps(shift);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), sh));
        if (out) _mm256_storeu_ps(out + j, e);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double acc[8];
    _mm256_storeu_pd(acc, lo);
    _mm256_storeu_pd(acc + 4, hi);
    return exp_sum_portable(x, n, shift, out, j, acc);
}
#endif

float lc_cpu_row_max(const float *x, int64_t n) {
#if LC_EXP_AVX2
    if (__builtin_cpu_supports("avx2")) return row_max_avx2(x, n);
#endif
    return row_max_portable(x, n);
}

#if LC_EXP_AVX2
__attribute__((target("avx2"))) static void exp_array_avx2(float *out, const float *x, int64_t n) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(out + j, exp8(_mm256_loadu_ps(x + j)));
    for (; j < n; j++) out[j] = lc_cpu_expf(x[j]);
}
#endif

void lc_cpu_exp_array(float *out, const float *x, int64_t n) {
#if LC_EXP_AVX2
    if (__builtin_cpu_supports("avx2")) {
        exp_array_avx2(out, x, n);
        return;
    }
#endif
    for (int64_t j = 0; j < n; j++) out[j] = lc_cpu_expf(x[j]);
}

double lc_cpu_exp_sum(const float *x, int64_t n, float shift, float *out) {
#if LC_EXP_AVX2
    if (__builtin_cpu_supports("avx2")) return exp_sum_avx2(x, n, shift, out);
#endif
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    return exp_sum_portable(x, n, shift, out, 0, acc);
}
