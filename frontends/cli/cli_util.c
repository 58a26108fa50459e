/* lorac CLI — option parsing, number parsing and error printing shared by the subcommands. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lorac/device.h"
#include "lorac/status.h"

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lorac%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'lorac%s%s --help' for the options.\n", cmd ? " " : "", cmd ? cmd : "");
    return CLI_EXIT_USAGE;
}

int cli_lib_error(const char *cmd, const char *what) {
    fprintf(stderr, "lorac %s: %s: %s\n", cmd, what, lc_last_error());
    return CLI_EXIT_FAIL;
}

bool cli_flag(int argc, char **argv, int *i, const char *name) {
    (void)argc;
    return strcmp(argv[*i], name) == 0;
}

bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value) {
    const char *a = argv[*i];
    const size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return false;
    if (a[n] == '=') {
        *value = a + n + 1;
        return true;
    }
    if (a[n] != '\0') return false;
    if (*i + 1 < argc) {
        *value = argv[++*i];
    } else {
        *value = NULL;
    }
    return true;
}

/* Plain decimal notation only: an optional '-', then a digit (or, for decimals, '.'), and for
 * decimals only digits, '.', and an exponent; no spaces, '+', hex ("0x10"), "inf" or "nan". */
static bool plain_decimal(const char *s, bool fraction) {
    const char *p = s + (*s == '-');
    if (!(*p >= '0' && *p <= '9') && !(fraction && *p == '.')) return false;
    for (; *p; p++) {
        const bool digit = *p >= '0' && *p <= '9';
        if (digit) continue;
        if (!fraction) return false;
        if (*p == '.' || *p == 'e' || *p == 'E') continue;
        if ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E')) continue;
        return false;
    }
    return true;
}

bool cli_parse_int(const char *cmd, const char *name, const char *s, long long lo, long long hi, int *out) {
    if (!s || !*s) {
        cli_usage_error(cmd, "%s needs a whole number in %lld..%lld", name, lo, hi);
        return false;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || !plain_decimal(s, false) || v < lo || v > hi) {
        cli_usage_error(cmd, "%s '%s' is not a whole number in %lld..%lld", name, s, lo, hi);
        return false;
    }
    *out = (int)v;
    return true;
}

bool cli_parse_u64(const char *cmd, const char *name, const char *s, uint64_t *out) {
    if (!s || !*s) {
        cli_usage_error(cmd, "%s needs a non-negative whole number", name);
        return false;
    }
    if (*s == '-' || *s == '+') {
        cli_usage_error(cmd, "%s '%s' is not a non-negative whole number", name, s);
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || !plain_decimal(s, false)) {
        cli_usage_error(cmd, "%s '%s' is not a non-negative whole number below 2^64", name, s);
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

bool cli_parse_float(const char *cmd, const char *name, const char *s, double lo, double hi, bool lo_open,
                     float *out) {
    const char *range_lo = lo_open ? "(" : "[";
    if (!s || !*s) {
        cli_usage_error(cmd, "%s needs a number in %s%g, %g]", name, range_lo, lo, hi);
        return false;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !plain_decimal(s, true) || !isfinite(v) || v < lo || (lo_open && v == lo) || v > hi) {
        cli_usage_error(cmd, "%s '%s' is not a number in %s%g, %g]", name, s, range_lo, lo, hi);
        return false;
    }
    *out = (float)v;
    return true;
}

const char *cli_format_bytes(char *buf, int cap, uint64_t bytes) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, (size_t)cap, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]);
    return buf;
}

const char *cli_format_duration(char *buf, int cap, double seconds) {
    if (!(seconds >= 0.0)) seconds = 0.0;
    long long s = (long long)(seconds + 0.5);
    if (seconds < 10.0)
        snprintf(buf, (size_t)cap, "%.1fs", seconds);
    else if (s < 60)
        snprintf(buf, (size_t)cap, "%llds", s);
    else if (s < 3600)
        snprintf(buf, (size_t)cap, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, (size_t)cap, "%lldh%02lldm", s / 3600, (s / 60) % 60);
    return buf;
}

int cli_open_device(const char *cmd, const char *spec, lc_device **dev) {
    if (lc_device_open(spec, dev) == LC_OK) return CLI_EXIT_OK;
    const lc_status st = lc_last_status();
    fprintf(stderr, "lorac %s: cannot open device '%s': %s\nRun 'lorac devices' to see what is available.\n", cmd,
            spec ? spec : (getenv("LORAC_DEVICE") ? getenv("LORAC_DEVICE") : "auto"), lc_last_error());
    return st == LC_ERR_INVALID_ARG ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}
