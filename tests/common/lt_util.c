/* lorac tests — RNG, fills, error measures, report (see lt_util.h). */
#include "lt_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lt_rng_seed(lt_rng *r, uint64_t seed) { r->state = seed ^ 0x5DEECE66DULL; }

uint64_t lt_rng_next(lt_rng *r) {
    /* SplitMix64 */
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double lt_rng_uniform(lt_rng *r) { return (double)(lt_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

int32_t lt_rng_int(lt_rng *r, int32_t n) { return (int32_t)(lt_rng_uniform(r) * (double)n); }

void lt_fill_uniform(lt_rng *r, float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * lt_rng_uniform(r));
}

static void *lt_calloc(int64_t n, size_t size) {
    void *p = calloc((size_t)(n > 0 ? n : 1), size);
    if (!p) {
        fprintf(stderr, "lorac tests: out of host memory allocating %lld x %zu bytes\n", (long long)n, size);
        abort();
    }
    return p;
}

float *lt_falloc(int64_t n) { return lt_calloc(n, sizeof(float)); }
double *lt_dalloc(int64_t n) { return lt_calloc(n, sizeof(double)); }
int32_t *lt_ialloc(int64_t n) { return lt_calloc(n, sizeof(int32_t)); }

void lt_f2d(double *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = (double)src[i];
}

double *lt_dup_d(const float *src, int64_t n) {
    double *d = lt_dalloc(n);
    lt_f2d(d, src, n);
    return d;
}

double lt_max_abs_d(const double *ref, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(ref[i]) && fabs(ref[i]) > m) m = fabs(ref[i]);
    return m;
}

/* |got - ref| with the NaN / infinity rules of lt_util.h; -1 means "skip". */
static double lt_abs_diff(float got, double ref) {
    if (isnan(ref)) return -1.0;
    if (isinf(ref)) return ((double)got == ref) ? 0.0 : INFINITY;
    if (!isfinite(got)) return INFINITY;
    return fabs((double)got - ref);
}

double lt_max_rel(const float *got, const double *ref, int64_t n) {
    double maxref = lt_max_abs_d(ref, n), maxdiff = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = lt_abs_diff(got[i], ref[i]);
        if (d > maxdiff) maxdiff = d;
    }
    return maxref > 0.0 ? maxdiff / maxref : maxdiff;
}

double lt_nmse(const float *got, const double *ref, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = lt_abs_diff(got[i], ref[i]);
        if (d < 0.0) continue;
        if (isinf(d)) return INFINITY;
        num += d * d;
        if (isfinite(ref[i])) den += ref[i] * ref[i];
    }
    return den > 0.0 ? num / den : num;
}

void lt_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

void lt_report_begin(lt_report *rep, const char *test, const char *device) {
    memset(rep, 0, sizeof *rep);
    snprintf(rep->test, sizeof rep->test, "%s", test);
    snprintf(rep->device, sizeof rep->device, "%s", device);
}

static void lt_vrecord(lt_report *rep, bool ok, double err, double tol, const char *fmt, va_list ap) {
    char what[200];
    vsnprintf(what, sizeof what, fmt, ap);
    rep->checks++;
    double ratio = tol > 0.0 ? err / tol : err;
    if (isnan(ratio)) ratio = INFINITY;
    if (ratio > rep->worst_ratio || !rep->worst_what[0]) {
        rep->worst_ratio = ratio;
        rep->worst_err = err;
        snprintf(rep->worst_what, sizeof rep->worst_what, "%s", what);
    }
    if (!ok) {
        rep->failures++;
        lt_log("  FAIL [%s] %s: %s (err %.3g, tol %.3g)\n", rep->test, rep->device, what, err, tol);
    }
}

bool lt_check_err(lt_report *rep, double err, double tol, const char *fmt, ...) {
    bool ok = !isnan(err) && err <= tol;
    va_list ap;
    va_start(ap, fmt);
    lt_vrecord(rep, ok, err, tol, fmt, ap);
    va_end(ap);
    return ok;
}

bool lt_check(lt_report *rep, bool ok, const char *fmt, ...) {
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    rep->checks++;
    if (!ok) {
        rep->failures++;
        lt_log("  FAIL [%s] %s: %s\n", rep->test, rep->device, what);
    }
    return ok;
}

bool lt_check_ok(lt_report *rep, lc_status st, const char *fmt, ...) {
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    rep->checks++;
    if (st != LC_OK) {
        rep->failures++;
        lt_log("  FAIL [%s] %s: %s returned %s: %s\n", rep->test, rep->device, what, lc_status_str(st),
               lc_last_error());
        return false;
    }
    return true;
}

void lt_report_end(const lt_report *rep) {
    if (rep->worst_what[0])
        lt_log("[%s] %s: %d checks, max err %.3g (%s), %d failures\n", rep->test, rep->device, rep->checks,
               rep->worst_err, rep->worst_what, rep->failures);
    else
        lt_log("[%s] %s: %d checks, %d failures\n", rep->test, rep->device, rep->checks, rep->failures);
}
