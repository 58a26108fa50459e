/* lorac tests — shared helpers: a deterministic test RNG, random fills, error measures and a
 * per-test report that prints one summary line per device.
 *
 * The test RNG is SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014). It is deliberately NOT lorac's Philox generator, so test data does
 * not depend on the code under test.
 *
 * Error measures (both compare a float result `got` with a double reference `ref`, n elements):
 *   max_rel = max_i |got_i - ref_i| / max_i |ref_i|   (absolute error when every ref_i is 0)
 *   nmse    = sum_i (got_i - ref_i)^2 / sum_i ref_i^2
 * Reference entries that are NaN mean "don't care" and are skipped; a reference of ±inf must be
 * matched exactly (an infinite error otherwise); a NaN or an unmatched infinity in `got` counts
 * as an infinite error.
 */
#ifndef LT_UTIL_H
#define LT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/lorac.h"

/* ---- deterministic test RNG ------------------------------------------------------------ */
typedef struct lt_rng {
    uint64_t state;
} lt_rng;

void lt_rng_seed(lt_rng *r, uint64_t seed);
uint64_t lt_rng_next(lt_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double lt_rng_uniform(lt_rng *r);
/* Uniform integer in [0, n). n >= 1. */
int32_t lt_rng_int(lt_rng *r, int32_t n);
/* Fill x[n] with uniform values in [lo, hi). Values are non-symmetric when lo != -hi. */
void lt_fill_uniform(lt_rng *r, float *x, int64_t n, float lo, float hi);

/* ---- allocation (abort on host out-of-memory: a broken test environment, not bad input) -- */
float *lt_falloc(int64_t n);   /* zeroed */
double *lt_dalloc(int64_t n);  /* zeroed */
int32_t *lt_ialloc(int64_t n); /* zeroed */
/* Widen float to double. */
void lt_f2d(double *dst, const float *src, int64_t n);
double *lt_dup_d(const float *src, int64_t n);

/* ---- error measures --------------------------------------------------------------------- */
double lt_max_rel(const float *got, const double *ref, int64_t n);
double lt_nmse(const float *got, const double *ref, int64_t n);
/* max|ref| over finite, non-NaN entries. */
double lt_max_abs_d(const double *ref, int64_t n);

/* ---- report ----------------------------------------------------------------------------- */
typedef struct lt_report {
    char test[64];
    char device[40];
    int checks;
    int failures;
    double worst_ratio;     /* largest err / tol seen (tol 0: err itself) */
    double worst_err;
    char worst_what[200];
} lt_report;

void lt_report_begin(lt_report *rep, const char *test, const char *device);
/* Record a measured error against its tolerance. Prints a FAIL line when err > tol or err is
 * NaN. Returns true when it passed. */
bool lt_check_err(lt_report *rep, double err, double tol, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Record a boolean condition. */
bool lt_check(lt_report *rep, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Record a lorac status that must be LC_OK; prints lc_last_error() when it is not. */
bool lt_check_ok(lt_report *rep, lc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Print the summary line "[test] device: N checks, max err E (what), F failures". */
void lt_report_end(const lt_report *rep);

/* printf to stdout and flush (Check forks; an unflushed line is lost if the child crashes). */
void lt_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
