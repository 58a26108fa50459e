/* lorac tests — run a test body on every device lorac offers.
 *
 * lt_for_each_device lists devices with lc_device_list (inside the calling test, never in the
 * parent process: Check forks and OpenCL / Vulkan state must not cross a fork), prints a SKIP
 * line with lc_device_skipped()'s reason for each backend that offered no device, opens every
 * device, runs `fn` with a fresh lt_report, prints the report's summary line, and closes it.
 *
 * Environment:
 *   LORAC_REQUIRE_BACKENDS  comma list ("cpu,opencl,vulkan"): a named backend with no device is
 *                           a test failure, not a skip.
 *   LORAC_TEST_DEVICES      optional comma list of specs or backend names ("cpu", "vulkan:0") to
 *                           restrict which devices run (for debugging one backend).
 */
#ifndef LT_DEVICE_H
#define LT_DEVICE_H

#include "lorac/lorac.h"
#include "lt_util.h"

typedef void (*lt_device_fn)(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user);

/* Returns the total number of failures (check failures, open failures, no device at all,
 * required backends that are absent). */
int lt_for_each_device(const char *test, lt_device_fn fn, void *user);

/* Number of backends named in LORAC_REQUIRE_BACKENDS that have no device (each printed). */
int lt_missing_required_backends(const lc_device_info *infos, int n);

#endif
