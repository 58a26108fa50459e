/* lorac tests — device iteration (see lt_device.h). */
#include "lt_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LT_MAX_DEVICES 32

/* True when `name` is one item of the comma list `list`. */
static bool lt_list_has(const char *list, const char *name) {
    size_t len = strlen(name);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && t[-1] == ' ') t--;
        if ((size_t)(t - p) == len && strncmp(p, name, len) == 0) return true;
        p = e;
    }
    return false;
}

int lt_missing_required_backends(const lc_device_info *infos, int n) {
    const char *req = getenv("LORAC_REQUIRE_BACKENDS");
    if (!req || !*req) return 0;
    int missing = 0;
    const char *p = req;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char name[32];
        size_t k = 0;
        while (p[k] && p[k] != ',' && k + 1 < sizeof name) {
            name[k] = p[k];
            k++;
        }
        name[k] = 0;
        while (k > 0 && name[k - 1] == ' ') name[--k] = 0;
        p += strcspn(p, ",");
        bool found = false;
        for (int i = 0; i < n; i++)
            if (strcmp(infos[i].backend, name) == 0) found = true;
        if (!found) {
            const char *why = lc_device_skipped(name);
            lt_log("  FAIL LORAC_REQUIRE_BACKENDS names '%s' but it has no device (%s)\n", name,
                   why ? why : "no reason given");
            missing++;
        }
    }
    return missing;
}

int lt_for_each_device(const char *test, lt_device_fn fn, void *user) {
    lc_device_info infos[LT_MAX_DEVICES];
    int count = 0, failures = 0;
    lc_status st = lc_device_list(infos, LT_MAX_DEVICES, &count);
    if (st != LC_OK) {
        lt_log("  FAIL [%s] lc_device_list: %s: %s\n", test, lc_status_str(st), lc_last_error());
        return 1;
    }
    if (count > LT_MAX_DEVICES) count = LT_MAX_DEVICES;
    static const char *const optional[] = {"opencl", "vulkan"};
    for (int b = 0; b < 2; b++) {
        const char *why = lc_device_skipped(optional[b]);
        if (why) lt_log("[%s] SKIP %s: %s\n", test, optional[b], why);
    }
    failures += lt_missing_required_backends(infos, count);

    const char *only = getenv("LORAC_TEST_DEVICES");
    char ran[512] = "";
    int n_ran = 0;
    for (int i = 0; i < count; i++) {
        if (only && *only && !lt_list_has(only, infos[i].spec) && !lt_list_has(only, infos[i].backend)) {
            lt_log("[%s] %s not selected (LORAC_TEST_DEVICES=%s)\n", test, infos[i].spec, only);
            continue;
        }
        lc_device *dev = NULL;
        st = lc_device_open(infos[i].spec, &dev);
        if (st != LC_OK) {
            lt_log("  FAIL [%s] lc_device_open(%s): %s: %s\n", test, infos[i].spec, lc_status_str(st),
                   lc_last_error());
            failures++;
            continue;
        }
        lt_report rep;
        lt_report_begin(&rep, test, infos[i].spec);
        fn(dev, lc_device_get_info(dev), &rep, user);
        lt_report_end(&rep);
        failures += rep.failures;
        lc_device_close(dev);
        size_t used = strlen(ran);
        snprintf(ran + used, sizeof ran - used, "%s%.31s", n_ran ? ", " : "", infos[i].spec);
        n_ran++;
    }
    if (n_ran == 0) {
        lt_log("  FAIL [%s] no device ran\n", test);
        failures++;
    }
    lt_log("[%s] ran on %d device(s): %s; %d failure(s)\n", test, n_ran, ran, failures);
    return failures;
}
