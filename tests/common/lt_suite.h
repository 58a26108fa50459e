/* lorac tests — the Check runner every suite's main() shares.
 *
 * lt_run_suite(s) makes stdout line-buffered (so the per-device summary lines of forked test
 * processes arrive whole and in order), runs every test of `s` in Check's normal mode (each test
 * in its own process, CK_DEFAULT_TIMEOUT honoured), frees the runner and returns the number of
 * tests that failed or errored. */
#ifndef LT_SUITE_H
#define LT_SUITE_H

#include <check.h>

int lt_run_suite(Suite *s);

#endif
