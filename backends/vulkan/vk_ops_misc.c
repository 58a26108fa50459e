/* lorac Vulkan backend — data movement and optimizer ops: fill, get_rows (+ backward),
 * dequantize, cpy, sum_sq, adamw. Semantics, shapes and parameter slots: lorac/graph.h; the CPU
 * backend (backends/cpu/ops_misc.c) is the reference these kernels match.
 *
 * Shaders: fill.comp, get_rows.comp, get_rows_back.comp, convert.comp (dequantize and cpy, any
 * weight dtype -> F32/F16/BF16), sum_sq.comp + the same kernel over the partials, adamw.comp.
 * Every tensor must be contiguous (vk_need). Ids outside [0, V) cannot be rejected before the
 * kernels run (they live on the device): the kernels zero those rows and raise an error flag
 * that synchronize turns into LC_ERR_INVALID_ARG.
 */
#include <math.h>
#include <string.h>

#include "vk_internal.h"

static uint32_t u32(int64_t v) { return (uint32_t)v; }

/* Record y[0..n) = value for an F32 range given as a binding. */
static lc_status fill_range(vk_ctx *c, const vk_bind *b, uint32_t off, uint32_t n, float value) {
    struct { uint32_t off, n; float value; } pc = {off, n, value};
    return vk_dispatch(c, VK_PIPE_FILL, NULL, b, 1, &pc, sizeof pc, vk_groups(c, n / 4 + 4, 256), 1, 1);
}

/* FILL: dst0 F32 (any shape, contiguous) = fp[0]. Errors: LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_STATE. */
lc_status vk_op_fill(vk_ctx *c, const lc_node *node) {
    const lc_tensor *y = node->dst[0];
    lc_status st = vk_need(y, LC_F32, "fill", "dst0");
    if (st != LC_OK) return st;
    vk_bind b;
    uint32_t off;
    if ((st = vk_bind_tensor(c, y, true, "fill", "dst0", &b, &off, 4)) != LC_OK) return st;
    return fill_range(c, &b, off, u32(vk_nel(y)), node->fp[0]);
}

/* GET_ROWS: src0 table [E, V] (any weight dtype), src1 ids I32 [N] -> dst0 F32 [E, N].
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE; an id outside [0, V) is reported by synchronize
 * (LC_ERR_INVALID_ARG). */
lc_status vk_op_get_rows(vk_ctx *c, const lc_node *node) {
    const char *op = "get_rows";
    const lc_tensor *tab = node->src[0], *ids = node->src[1], *y = node->dst[0];
    lc_status st;
    if ((st = vk_need(tab, -1, op, "table (src0)")) || (st = vk_need(ids, LC_I32, op, "ids (src1)")) ||
        (st = vk_need(y, LC_F32, op, "dst0")))
        return st;
    if (tab->dtype == LC_I32) return lc_error(LC_ERR_DTYPE, "vulkan get_rows: table '%s' is i32", tab->name);
    const int64_t E = tab->ne[0], V = vk_rows(tab), N = vk_nel(ids);
    if (y->ne[0] != E || vk_rows(y) != N)
        return lc_error(LC_ERR_SHAPE, "vulkan get_rows: dst0 is [%lld, %lld], expected [%lld, %lld]", (long long)y->ne[0],
                        (long long)vk_rows(y), (long long)E, (long long)N);
    vk_bind b[4];
    struct { uint32_t tab_off, dtype, row_bytes, E, V, N, ids_off, y_off, v0, v1, first; } pc = {
        .dtype = (uint32_t)tab->dtype, .row_bytes = (uint32_t)tab->nb[1], .E = u32(E), .V = u32(V), .N = u32(N)};
    if ((st = vk_bind_tensor(c, ids, false, op, "ids (src1)", &b[1], &pc.ids_off, 4)) ||
        (st = vk_bind_tensor(c, y, true, op, "dst0", &b[2], &pc.y_off, 4)) || (st = vk_bind_flags(c, &b[3])))
        return st;
    /* rows of the table per binding (an embedding table may exceed maxStorageBufferRange) */
    int64_t per = (int64_t)((c->max_binding - 1024) / tab->nb[1]);
    if (per < 1) per = 1;
    if (per > V) per = V;
    for (int64_t v0 = 0; v0 < V; v0 += per) {
        const int64_t nv = V - v0 < per ? V - v0 : per;
        if ((st = vk_bind_range(c, vk_tbuf(tab), tab->offset + (VkDeviceSize)v0 * tab->nb[1],
                                (VkDeviceSize)nv * tab->nb[1], false, op, &b[0], &pc.tab_off, 1)) != LC_OK)
            return st;
        pc.v0 = u32(v0);
        pc.v1 = u32(v0 + nv);
        pc.first = v0 == 0;
        if ((st = vk_dispatch(c, VK_PIPE_GET_ROWS, NULL, b, 4, &pc, sizeof pc, vk_groups(c, (uint64_t)E * N, 256), 1, 1)) !=
            LC_OK)
            return st;
    }
    return LC_OK;
}

/* GET_ROWS_BACK: src0 table [E, V], src1 ids [N], src6 dy F32 [E, N] -> dst0 dtable F32 [E, V]
 * (+)= scatter of dy by ids; accum bit 0 clear zeroes dtable first. NULL dst0: nothing to do.
 * Errors as vk_op_get_rows. */
lc_status vk_op_get_rows_back(vk_ctx *c, const lc_node *node) {
    const char *op = "get_rows_back";
    const lc_tensor *tab = node->src[0], *ids = node->src[1], *dy = node->src[6], *dt = node->dst[0];
    if (!dt) return LC_OK;
    lc_status st;
    if ((st = vk_need(tab, -1, op, "table (src0)")) || (st = vk_need(ids, LC_I32, op, "ids (src1)")) ||
        (st = vk_need(dy, LC_F32, op, "dy (src6)")) || (st = vk_need(dt, LC_F32, op, "dtable (dst0)")))
        return st;
    const int64_t E = tab->ne[0], V = vk_rows(tab), N = vk_nel(ids);
    if (dy->ne[0] != E || vk_rows(dy) != N || dt->ne[0] != E || vk_rows(dt) != V)
        return lc_error(LC_ERR_SHAPE, "vulkan get_rows_back: dy [%lld, %lld] / dtable [%lld, %lld] do not match table "
                        "[%lld, %lld] and %lld ids", (long long)dy->ne[0], (long long)vk_rows(dy), (long long)dt->ne[0],
                        (long long)vk_rows(dt), (long long)E, (long long)V, (long long)N);
    vk_bind b[4];
    struct { uint32_t E, V, N, ids_off, dy_off, dt_off, rows_per_chunk, n_begin, n_end; } pc = {.E = u32(E), .V = u32(V), .N = u32(N)};
    if ((st = vk_bind_tensor(c, ids, false, op, "ids (src1)", &b[0], &pc.ids_off, 4)) ||
        (st = vk_bind_tensor(c, dy, false, op, "dy (src6)", &b[1], &pc.dy_off, 4)) ||
        (st = vk_bind_tensor(c, dt, true, op, "dtable (dst0)", &b[2], &pc.dt_off, 4)) || (st = vk_bind_flags(c, &b[3])))
        return st;
    if (!(node->accum & 1u) && (st = fill_range(c, &b[2], pc.dt_off, u32(E * V), 0.0f)) != LC_OK) return st;
    /* enough (column, row-chunk) invocations to fill the device, each walking all ids */
    int64_t chunks = (4096 + E - 1) / E;
    if (chunks > V) chunks = V;
    if (chunks > 65535) chunks = 65535;
    pc.rows_per_chunk = u32((V + chunks - 1) / chunks);
    chunks = (V + pc.rows_per_chunk - 1) / pc.rows_per_chunk;
    const int64_t per = c->loop_cap / 2; /* ids walked by one dispatch */
    for (int64_t n0 = 0; n0 < N; n0 += per) {
        pc.n_begin = u32(n0);
        pc.n_end = u32(N - n0 < per ? N : n0 + per);
        if ((st = vk_dispatch(c, VK_PIPE_GET_ROWS_BACK, NULL, b, 4, &pc, sizeof pc, (uint32_t)((E + 63) / 64), u32(chunks),
                              1)) != LC_OK)
            return st;
    }
    return LC_OK;
}

/* src0 (any weight dtype) -> dst0 (F32, or F16/BF16 for cpy), same ne. */
static lc_status convert(vk_ctx *c, const lc_node *node, const char *op) {
    const lc_tensor *x = node->src[0], *y = node->dst[0];
    lc_status st;
    if ((st = vk_need(x, -1, op, "src0")) || (st = vk_need(y, -1, op, "dst0"))) return st;
    if (x->dtype == LC_I32) return lc_error(LC_ERR_DTYPE, "vulkan %s: src0 '%s' is i32", op, x->name);
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (x->ne[d] != y->ne[d])
            return lc_error(LC_ERR_SHAPE, "vulkan %s: dst0 '%s' ne[%d] = %lld differs from src0 '%s' ne[%d] = %lld", op,
                            y->name, d, (long long)y->ne[d], x->name, d, (long long)x->ne[d]);
    vk_bind b[2];
    const uint32_t esize = y->dtype == LC_F32 ? 4 : 2;
    struct { uint32_t src_off, src_type, row_bytes, ne0, n, dst_off, dst_type; } pc = {
        .src_type = (uint32_t)x->dtype, .row_bytes = (uint32_t)x->nb[1], .ne0 = u32(x->ne[0]), .n = u32(vk_nel(x)),
        .dst_type = (uint32_t)y->dtype};
    if ((st = vk_bind_tensor(c, x, false, op, "src0", &b[0], &pc.src_off, 1)) ||
        (st = vk_bind_tensor(c, y, true, op, "dst0", &b[1], &pc.dst_off, esize)))
        return st;
    return vk_dispatch(c, VK_PIPE_CONVERT, NULL, b, 2, &pc, sizeof pc, vk_groups(c, pc.n, 256), 1, 1);
}

/* DEQUANTIZE: src0 any weight dtype -> dst0 F32, same ne (reference/formats.md §2).
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE. */
lc_status vk_op_dequantize(vk_ctx *c, const lc_node *node) {
    if (node->dst[0] && node->dst[0]->dtype != LC_F32)
        return lc_error(LC_ERR_DTYPE, "vulkan dequantize: dst0 '%s' must be f32", node->dst[0]->name);
    return convert(c, node, "dequantize");
}

/* CPY: src0 F32/F16/BF16 -> dst0 F32/F16/BF16, same ne, round to nearest even.
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE. */
lc_status vk_op_cpy(vk_ctx *c, const lc_node *node) {
    const lc_tensor *x = node->src[0], *y = node->dst[0];
    if (!x || !y) return lc_error(LC_ERR_INVALID_ARG, "vulkan cpy: src0 or dst0 is missing");
    bool fx = x->dtype == LC_F32 || x->dtype == LC_F16 || x->dtype == LC_BF16;
    bool fy = y->dtype == LC_F32 || y->dtype == LC_F16 || y->dtype == LC_BF16;
    if (!fx || !fy)
        return lc_error(LC_ERR_DTYPE, "vulkan cpy: %s -> %s is not supported (f32, f16 and bf16 only)",
                        lc_dtype_name(x->dtype), lc_dtype_name(y->dtype));
    return convert(c, node, "cpy");
}

/* SUM_SQ: src0 F32 (any shape) -> dst0 F32 [1] (+)= sum of squares, two deterministic passes
 * (sum_sq.comp). Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_DEVICE_NOMEM (scratch). */
lc_status vk_op_sum_sq(vk_ctx *c, const lc_node *node) {
    const char *op = "sum_sq";
    const lc_tensor *x = node->src[0], *y = node->dst[0];
    lc_status st;
    if ((st = vk_need(x, LC_F32, op, "src0")) || (st = vk_need(y, LC_F32, op, "dst0"))) return st;
    if (vk_nel(y) != 1)
        return lc_error(LC_ERR_SHAPE, "vulkan sum_sq: dst0 has %lld elements, expected 1", (long long)vk_nel(y));
    const uint32_t n = u32(vk_nel(x));
    uint32_t groups = (n + 255) / 256;
    if (groups > 1024) groups = 1024;
    struct { uint32_t x_off, n, out_off, square, accum; } pc = {.n = n, .square = 1};
    vk_bind b[2];
    if ((st = vk_bind_tensor(c, x, false, op, "src0", &b[0], &pc.x_off, 4)) != LC_OK) return st;
    vk_bind yb;
    uint32_t y_off;
    if ((st = vk_bind_tensor(c, y, true, op, "dst0", &yb, &y_off, 4)) != LC_OK) return st;
    if (groups == 1) {
        b[1] = yb;
        pc.out_off = y_off;
        pc.accum = (node->accum & 1u) ? 1u : 0u;
        return vk_dispatch(c, VK_PIPE_SUM_SQ, NULL, b, 2, &pc, sizeof pc, 1, 1, 1);
    }
    vk_buf *sb;
    VkDeviceSize so;
    if ((st = vk_scratch(c, (VkDeviceSize)groups * 4, &sb, &so)) ||
        (st = vk_bind_range(c, sb, so, (VkDeviceSize)groups * 4, true, op, &b[1], &pc.out_off, 4)))
        return st;
    if ((st = vk_dispatch(c, VK_PIPE_SUM_SQ, NULL, b, 2, &pc, sizeof pc, groups, 1, 1)) != LC_OK) return st;
    vk_bind b2[2] = {b[1], yb};
    b2[0].write = false;
    struct { uint32_t x_off, n, out_off, square, accum; } pc2 = {pc.out_off, groups, y_off, 0,
                                                                 (node->accum & 1u) ? 1u : 0u};
    return vk_dispatch(c, VK_PIPE_SUM_SQ, NULL, b2, 2, &pc2, sizeof pc2, 1, 1, 1);
}

/* ADAMW (in place): src0 = dst0 param, src1 grad, src2 = dst1 m, src3 = dst2 v (F32, param's
 * ne); fp[0..5] = lr, beta1, beta2, eps, weight_decay, grad_scale; ip[0] = t >= 1.
 * Errors: LC_ERR_INVALID_ARG (t < 1), LC_ERR_SHAPE, LC_ERR_DTYPE. */
lc_status vk_op_adamw(vk_ctx *c, const lc_node *node) {
    const char *op = "adamw";
    const lc_tensor *tp = node->dst[0] ? node->dst[0] : node->src[0];
    const lc_tensor *tm = node->dst[1] ? node->dst[1] : node->src[2];
    const lc_tensor *tv = node->dst[2] ? node->dst[2] : node->src[3];
    const lc_tensor *tg = node->src[1];
    lc_status st;
    if ((st = vk_need(tp, LC_F32, op, "param (src0)")) || (st = vk_need(tg, LC_F32, op, "grad (src1)")) ||
        (st = vk_need(tm, LC_F32, op, "m (src2)")) || (st = vk_need(tv, LC_F32, op, "v (src3)")))
        return st;
    const int64_t n = vk_nel(tp);
    if (vk_nel(tg) != n || vk_nel(tm) != n || vk_nel(tv) != n)
        return lc_error(LC_ERR_SHAPE, "vulkan adamw: param '%s' has %lld elements but grad/m/v have %lld/%lld/%lld",
                        tp->name, (long long)n, (long long)vk_nel(tg), (long long)vk_nel(tm), (long long)vk_nel(tv));
    const int t = node->ip[0];
    if (t < 1) return lc_error(LC_ERR_INVALID_ARG, "vulkan adamw: step t = %d (ip[0]) must be >= 1", t);
    const float lr = node->fp[0], b1 = node->fp[1], b2 = node->fp[2];
    struct {
        uint32_t p_off, g_off, m_off, v_off, n;
        float lr, b1, b2, eps, decay, gs, bc1, bc2, c1, c2;
    } pc = {
        .n = u32(n), .lr = lr, .b1 = b1, .b2 = b2, .eps = node->fp[3], .decay = 1.0f - lr * node->fp[4],
        .gs = node->fp[5], .bc1 = (float)(1.0 - pow((double)b1, (double)t)),
        .bc2 = (float)(1.0 - pow((double)b2, (double)t)), .c1 = 1.0f - b1, .c2 = 1.0f - b2,
    };
    vk_bind b[4];
    if ((st = vk_bind_tensor(c, tp, true, op, "param", &b[0], &pc.p_off, 4)) ||
        (st = vk_bind_tensor(c, tg, false, op, "grad", &b[1], &pc.g_off, 4)) ||
        (st = vk_bind_tensor(c, tm, true, op, "m", &b[2], &pc.m_off, 4)) ||
        (st = vk_bind_tensor(c, tv, true, op, "v", &b[3], &pc.v_off, 4)))
        return st;
    const uint32_t v4 = (pc.n | pc.p_off | pc.g_off | pc.m_off | pc.v_off) % 4 == 0;
    vk_spec sp = {1, {v4}};
    return vk_dispatch(c, VK_PIPE_ADAMW, &sp, b, 4, &pc, sizeof pc, vk_groups(c, v4 ? pc.n / 4 : pc.n, 256), 1, 1);
}
