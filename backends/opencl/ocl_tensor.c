/* lorac OpenCL backend — tensor checks shared by the op dispatchers: presence, device memory,
 * dtype, packed layout and alignment of the byte offsets the kernels add to their buffers, and
 * the row-major matrix view of a tensor (rows = ne[1]*ne[2]*ne[3], row stride nb[1]) that the
 * products use. Every failure is an lc_error naming the op, the field and the tensor.
 */
#include <string.h>

#include "ocl_internal.h"

int64_t ocl_nel(const lc_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

bool ocl_same_ne(const lc_tensor *a, const lc_tensor *b) {
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (a->ne[d] != b->ne[d]) return false;
    return true;
}

lc_status ocl_need(const lc_node *node, const lc_tensor *t, const char *field, int dt) {
    const char *op = lc_op_name(node->op);
    if (!t) return lc_error(LC_ERR_INVALID_ARG, "opencl %s: %s is missing", op, field);
    if (!t->buffer || !t->buffer->impl)
        return lc_error(LC_ERR_STATE, "opencl %s: %s '%s' has no device memory (graph not planned?)", op, field, t->name);
    if (dt >= 0 && (int)t->dtype != dt)
        return lc_error(LC_ERR_DTYPE, "opencl %s: %s '%s' has dtype %s, expected %s", op, field, t->name,
                        lc_dtype_name(t->dtype), lc_dtype_name((lc_dtype)dt));
    if (!lc_is_contiguous(t))
        return lc_error(LC_ERR_SHAPE, "opencl %s: %s '%s' is not contiguous (nb %zu %zu %zu %zu)", op, field, t->name,
                        t->nb[0], t->nb[1], t->nb[2], t->nb[3]);
    if ((t->dtype == LC_F32 || t->dtype == LC_I32) && t->offset % 4 != 0)
        return lc_error(LC_ERR_SHAPE, "opencl %s: %s '%s' starts at byte offset %zu, not a multiple of 4", op, field,
                        t->name, t->offset);
    return LC_OK;
}

lc_status ocl_need_like(const lc_node *node, const lc_tensor *t, const char *field, const lc_tensor *like) {
    lc_status st = ocl_need(node, t, field, LC_F32);
    if (st != LC_OK) return st;
    if (!ocl_same_ne(t, like))
        return lc_error(LC_ERR_SHAPE, "opencl %s: %s '%s' ne [%lld, %lld, %lld, %lld] differs from '%s' [%lld, %lld, %lld, %lld]",
                        lc_op_name(node->op), field, t->name, (long long)t->ne[0], (long long)t->ne[1],
                        (long long)t->ne[2], (long long)t->ne[3], like->name, (long long)like->ne[0],
                        (long long)like->ne[1], (long long)like->ne[2], (long long)like->ne[3]);
    return LC_OK;
}

lc_status ocl_view(const lc_node *node, const lc_tensor *t, const char *field, bool f32_only, ocl_mat *v) {
    memset(v, 0, sizeof *v);
    const char *op = lc_op_name(node->op);
    if (!t) return lc_error(LC_ERR_INVALID_ARG, "opencl %s: %s is missing", op, field);
    if (!t->buffer || !t->buffer->impl)
        return lc_error(LC_ERR_STATE, "opencl %s: %s '%s' has no device memory (graph not planned?)", op, field, t->name);
    const lc_dtype_info *di = lc_dtype_get(t->dtype);
    if (!di || t->dtype == LC_I32 || (f32_only && t->dtype != LC_F32) || ocl_wslot_of(t->dtype) < 0)
        return lc_error(LC_ERR_DTYPE, "opencl %s: %s '%s' has dtype %s%s", op, field, t->name, lc_dtype_name(t->dtype),
                        f32_only ? ", expected f32" : ", which the product kernels cannot decode");
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (t->ne[d] < 1) return lc_error(LC_ERR_SHAPE, "opencl %s: %s '%s' has ne[%d]=%lld", op, field, t->name, d, (long long)t->ne[d]);
    size_t row_bytes = lc_row_size(t->dtype, t->ne[0]);
    if (row_bytes == 0 || t->nb[0] != di->type_size || t->nb[1] < row_bytes || t->nb[2] != t->nb[1] * (size_t)t->ne[1] ||
        t->nb[3] != t->nb[2] * (size_t)t->ne[2] || (t->dtype == LC_F32 && (t->nb[1] % 4 || t->offset % 4)) ||
        (t->dtype != LC_F32 && t->offset % 2))
        return lc_error(LC_ERR_SHAPE, "opencl %s: %s '%s' (%s, ne %lld x %lld x %lld x %lld) has an unsupported layout "
                        "(nb %zu %zu %zu %zu, offset %zu)", op, field, t->name, lc_dtype_name(t->dtype), (long long)t->ne[0],
                        (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], t->nb[0], t->nb[1], t->nb[2],
                        t->nb[3], t->offset);
    v->rows = t->ne[1] * t->ne[2] * t->ne[3];
    v->cols = t->ne[0];
    if (v->rows > INT_MAX || v->cols > INT_MAX)
        return lc_error(LC_ERR_SHAPE, "opencl %s: %s '%s' has more than 2^31 rows or columns", op, field, t->name);
    v->mem = ocl_mem(t);
    v->off = t->offset;
    v->nb1 = t->nb[1];
    v->dtype = t->dtype;
    return LC_OK;
}
