/* lorac — status strings and the per-thread last-error message (see lorac/status.h). */
#include "lorac/status.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const status_strings[] = {
#define LC_X_STR(name, str) str,
    LC_STATUS_LIST(LC_X_STR)
#undef LC_X_STR
};

static _Thread_local char last_message[1024];
static _Thread_local lc_status last_status = LC_OK;

const char *lc_status_str(lc_status st) {
    if ((int)st < 0 || st >= LC_STATUS_COUNT) return "unknown status";
    return status_strings[st];
}

lc_status lc_error(lc_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_status = st;
    return st;
}

const char *lc_last_error(void) { return last_message; }

lc_status lc_last_status(void) { return last_status; }

void lc_clear_error(void) {
    last_message[0] = '\0';
    last_status = LC_OK;
}
