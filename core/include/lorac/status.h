/* lorac — status codes and the per-thread last-error message.
 *
 * Every fallible function returns an lc_status; 0 (LC_OK) is success. The codes and their
 * short strings come from one X-macro table (LC_STATUS_LIST). A failing call also records a
 * message on the calling thread that names what failed (file, offset, field, device), read
 * back with lc_last_error(). abort() is used only for broken internal invariants.
 */
#ifndef LORAC_STATUS_H
#define LORAC_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#define LC_STATUS_LIST(X)                                                   \
    X(LC_OK,              "success")                                         \
    X(LC_ERR_INVALID_ARG, "invalid argument")                                \
    X(LC_ERR_SHAPE,       "shape mismatch")                                  \
    X(LC_ERR_DTYPE,       "unsupported data type")                           \
    X(LC_ERR_NOMEM,       "out of host memory")                              \
    X(LC_ERR_DEVICE_NOMEM,"out of device memory")                            \
    X(LC_ERR_NO_DEVICE,   "device not found")                                \
    X(LC_ERR_BACKEND,     "backend error")                                   \
    X(LC_ERR_UNSUPPORTED, "operation not supported by the device")          \
    X(LC_ERR_IO,          "input/output error")                              \
    X(LC_ERR_FORMAT,      "malformed or unsupported file")                   \
    X(LC_ERR_PLUGIN,      "backend plugin could not be loaded")              \
    X(LC_ERR_STATE,       "call made in the wrong state")                    \
    X(LC_ERR_NUMERIC,     "non-finite value")

typedef enum lc_status {
#define LC_X_ENUM(name, str) name,
    LC_STATUS_LIST(LC_X_ENUM)
#undef LC_X_ENUM
    LC_STATUS_COUNT
} lc_status;

/* Short fixed string for a status ("shape mismatch"); "unknown status" when out of range. */
const char *lc_status_str(lc_status st);

/* Record `st` with a printf-style message as this thread's last error and return `st`, so a
 * caller can write `return lc_error(LC_ERR_SHAPE, "lc_mul_mat: x.ne[0]=%lld != w.ne[0]=%lld", ...)`.
 * The message is truncated to 1023 bytes. */
lc_status lc_error(lc_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* This thread's last error message ("" when none was recorded). Valid until the next lc_error. */
const char *lc_last_error(void);

/* Status of this thread's last lc_error (LC_OK when none). */
lc_status lc_last_status(void);

/* Forget this thread's last error. */
void lc_clear_error(void);

#ifdef __cplusplus
}
#endif
#endif
