/* lorac-bench — small helpers: wall clock, seeded random leaves, statistics, normalised error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

const char *bench_status_name(bench_res_status s) {
    switch (s) {
    case RES_OK: return "ok";
    case RES_WRONG: return "WRONG";
    case RES_UNSUPPORTED: return "UNSUPPORTED";
    case RES_ERROR: return "ERROR";
    case RES_SKIPPED: return "skipped";
    }
    return "?";
}

/* Monotonic wall clock in seconds. */
double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014):
 * a fast host generator for bench data; the same seed gives the same data on every device. */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

lc_status bench_fill_random(lc_tensor *t, uint64_t seed, float lo, float hi) {
    const int64_t n = lc_nelements(t);
    float *h = malloc((size_t)n * sizeof *h);
    if (!h) return lc_error(LC_ERR_NOMEM, "lorac-bench: out of host memory filling '%s' (%lld elements)", t->name,
                            (long long)n);
    uint64_t s = seed * 0x2545F4914F6CDD1Dull + 1;
    for (int64_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * (float)((splitmix64(&s) >> 40) * 0x1p-24);
    lc_status st = lc_tensor_set_f32(t, h, n);
    free(h);
    return st;
}

lc_tensor *bench_leaf(bench_graph *bg, lc_device *dev, lc_dtype dt, int64_t ne0, int64_t ne1, uint32_t flags,
                      const char *name, uint64_t seed, float lo, float hi, lc_status *st) {
    if (*st != LC_OK) return NULL;
    if (bg->n_leaves >= BENCH_MAX_LEAVES) {
        *st = lc_error(LC_ERR_INVALID_ARG, "lorac-bench: too many leaves building '%s'", name);
        return NULL;
    }
    const int64_t ne[2] = {ne0, ne1};
    lc_tensor *t = NULL;
    *st = lc_tensor_new(dev, dt, ne1 > 1 ? 2 : 1, ne, name, flags, &t);
    if (*st != LC_OK) return NULL;
    bg->leaves[bg->n_leaves++] = t;
    if (dt != LC_I32) *st = bench_fill_random(t, seed, lo, hi);
    return *st == LC_OK ? t : NULL;
}

void bench_graph_free(bench_graph *bg) {
    lc_graph_free(bg->g);
    bg->g = NULL;
    for (int i = bg->n_leaves - 1; i >= 0; i--) lc_tensor_free(bg->leaves[i]);
    bg->n_leaves = 0;
    bg->n_check = 0;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_stats(double *v, int n, double *median, double *min, double *max) {
    if (n <= 0) {
        *median = *min = *max = 0;
        return;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *min = v[0];
    *max = v[n - 1];
    *median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_nmse(const float *a, const float *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
        if (!isfinite(a[i]) && isfinite(ref[i])) return INFINITY;
    }
    return num / (den > 1e-30 ? den : 1e-30);
}
