/* lorac CPU backend — helpers shared by the kernels (argument checks, thread counts). */
#include "cpu_internal.h"

int lc_cpu_threads(const lc_cpu_ctx *ctx) { return (ctx && ctx->n_threads > 0) ? ctx->n_threads : 1; }

lc_status lc_cpu_check_packed(const lc_tensor *t, lc_dtype dtype, const char *op, const char *field) {
    if (!t) return lc_error(LC_ERR_INVALID_ARG, "cpu %s: %s is missing", op, field);
    if (!t->buffer || !t->buffer->impl)
        return lc_error(LC_ERR_STATE, "cpu %s: %s '%s' has no buffer", op, field, t->name);
    if (t->dtype != dtype)
        return lc_error(LC_ERR_DTYPE, "cpu %s: %s '%s' has dtype %s, expected %s", op, field, t->name,
                        lc_dtype_name(t->dtype), lc_dtype_name(dtype));
    size_t want = 4; /* F32 and I32 elements */
    for (int d = 0; d < LC_MAX_DIMS; d++) {
        if (t->ne[d] < 1)
            return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' has ne[%d]=%lld", op, field, t->name, d,
                            (long long)t->ne[d]);
        if (t->ne[d] > 1 && t->nb[d] != want)
            return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' is not contiguous (nb[%d]=%zu, expected %zu)", op,
                            field, t->name, d, t->nb[d], want);
        want *= (size_t)t->ne[d];
    }
    return LC_OK;
}
