/* lorac Vulkan backend — rms_norm and rope, forward and backward (lorac/graph.h; formulas and
 * parameter checks as backends/cpu/ops_norm_rope.c).
 *
 * RMS_NORM: shaders/rms_norm.glsl, one workgroup per group; sums in double when the device has
 * shaderFloat64 (rms_norm_f64.comp, as the CPU backend), else in float. The weight gradient
 * takes r per group from the dx pass and is reduced over groups in fixed chunks
 * (rms_norm_dw.comp, then sum_partials.comp): bitwise reproducible.
 * ROPE: shaders/rope.comp, one invocation per rotated pair or passed-through element; the
 * frequency table powf(freq_base, -2i/n_rot) is computed here with the same powf as the CPU
 * backend and written into scratch with vkCmdUpdateBuffer, so theta is bit-identical.
 */
#include <math.h>
#include <stdlib.h>

#include "vk_internal.h"

#define DW_CHUNK 64

static uint32_t u32(int64_t v) { return (uint32_t)v; }

typedef struct rms_geom {
    int64_t g, n_groups;
    float eps;
} rms_geom;

static lc_status rms_check(const lc_node *node, const char *op, rms_geom *p) {
    const lc_tensor *x = node->src[0], *w = node->src[1];
    lc_status st;
    if ((st = vk_need(x, LC_F32, op, "src0 x")) != LC_OK) return st;
    const int64_t n = x->ne[0];
    const int64_t g = node->ip[0] == 0 ? n : (int64_t)node->ip[0];
    if (g < 1 || n % g != 0)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: group size ip[0]=%d does not divide row length %lld", op,
                        node->ip[0], (long long)n);
    if (w) {
        if ((st = vk_need(w, LC_F32, op, "src1 weight")) != LC_OK) return st;
        if (vk_nel(w) != g)
            return lc_error(LC_ERR_SHAPE, "vulkan %s: weight '%s' has %lld elements, group size is %lld", op, w->name,
                            (long long)vk_nel(w), (long long)g);
    }
    const float eps = node->fp[0];
    if (!(eps >= 0.0f) || isinf(eps))
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: eps fp[0]=%g must be finite and >= 0", op, (double)eps);
    p->g = g;
    p->n_groups = vk_nel(x) / g;
    p->eps = eps;
    return LC_OK;
}

typedef struct rms_push {
    uint32_t x_off, w_off, dy_off, out_off, r_off;
    uint32_t g, n_groups, has_w, mode, accum, write_r;
    float eps;
} rms_push;

static lc_status rms_dispatch(vk_ctx *c, vk_bind *b, const rms_push *pc) {
    uint32_t groups = pc->n_groups < 65535 ? pc->n_groups : 65535;
    /* 32 invocations on CPU devices: llvmpipe runs a group's invocations as coroutines that switch
     * at every barrier of the reduction tree; 128 on GPUs */
    const bool v4 = pc->g % 4 == 0 && (pc->x_off | pc->out_off | (pc->has_w ? pc->w_off : 0u)) % 4 == 0;
    vk_spec sp = {2, {c->is_cpu ? 32u : 128u, v4 ? 1u : 0u}};
    return vk_dispatch(c, c->has_f64 ? VK_PIPE_RMS_NORM_F64 : VK_PIPE_RMS_NORM, &sp, b, 5, pc, sizeof *pc, groups, 1, 1);
}

/* RMS_NORM: src0 x F32 [n, R], src1 weight F32 [g] or NULL, ip[0] = g (0: n), fp[0] = eps ->
 * dst0 y = x / sqrt(mean over the group of x^2 + eps) * w. Errors: LC_ERR_INVALID_ARG (group,
 * eps), LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_STATE. */
lc_status vk_op_rms_norm(vk_ctx *c, const lc_node *node) {
    const char *op = "rms_norm";
    rms_geom p = {0};
    lc_status st = rms_check(node, op, &p);
    if (st != LC_OK) return st;
    const lc_tensor *x = node->src[0], *w = node->src[1], *y = node->dst[0];
    if ((st = vk_need_like(y, x, op, "dst0 y")) != LC_OK) return st;
    vk_bind b[5];
    rms_push pc = {.g = u32(p.g), .n_groups = u32(p.n_groups), .has_w = w ? 1u : 0u, .mode = 0, .eps = p.eps};
    if ((st = vk_bind_tensor(c, x, false, op, "src0 x", &b[0], &pc.x_off, 4)) ||
        (st = vk_bind_tensor(c, w ? w : x, false, op, "src1 weight", &b[1], &pc.w_off, 4)) ||
        (st = vk_bind_tensor(c, x, false, op, "src0 x", &b[2], &pc.dy_off, 4)) ||
        (st = vk_bind_tensor(c, y, true, op, "dst0 y", &b[3], &pc.out_off, 4)))
        return st;
    b[4] = b[3];
    pc.r_off = pc.out_off;
    return rms_dispatch(c, b, &pc);
}

/* RMS_NORM_BACK: src0 x, src1 weight or NULL, src6 dy -> dst0 dx [n, R], dst1 dweight [g]
 * (summed over all groups). Errors as vk_op_rms_norm, plus LC_ERR_INVALID_ARG for a dweight
 * without weight. */
lc_status vk_op_rms_norm_back(vk_ctx *c, const lc_node *node) {
    const char *op = "rms_norm_back";
    rms_geom p = {0};
    lc_status st = rms_check(node, op, &p);
    if (st != LC_OK) return st;
    const lc_tensor *x = node->src[0], *w = node->src[1], *dy = node->src[6];
    const lc_tensor *dx = node->dst[0], *dw = node->dst[1];
    if ((st = vk_need_like(dy, x, op, "src6 dy")) != LC_OK) return st;
    if (dx && (st = vk_need_like(dx, x, op, "dst0 dx")) != LC_OK) return st;
    if (dw) {
        if (!w) return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: dst1 dweight given but src1 weight is NULL", op);
        if ((st = vk_need_like(dw, w, op, "dst1 dweight")) != LC_OK) return st;
    }
    if (!dx && !dw) return LC_OK;
    vk_bind b[5];
    rms_push pc = {.g = u32(p.g), .n_groups = u32(p.n_groups), .has_w = w ? 1u : 0u, .mode = dx ? 1u : 2u,
                   .accum = (node->accum & 1u) ? 1u : 0u, .write_r = dw ? 1u : 0u, .eps = p.eps};
    if ((st = vk_bind_tensor(c, x, false, op, "src0 x", &b[0], &pc.x_off, 4)) ||
        (st = vk_bind_tensor(c, w ? w : x, false, op, "src1 weight", &b[1], &pc.w_off, 4)) ||
        (st = vk_bind_tensor(c, dy, false, op, "src6 dy", &b[2], &pc.dy_off, 4)))
        return st;
    vk_buf *rb = NULL;
    VkDeviceSize ro = 0, rbytes = (VkDeviceSize)p.n_groups * 4;
    if (dw) {
        if ((st = vk_scratch(c, rbytes, &rb, &ro)) ||
            (st = vk_bind_range(c, rb, ro, rbytes, true, op, &b[4], &pc.r_off, 4)))
            return st;
    }
    if (dx) {
        if ((st = vk_bind_tensor(c, dx, true, op, "dst0 dx", &b[3], &pc.out_off, 4)) != LC_OK) return st;
    } else {
        b[3] = b[4];
        pc.out_off = pc.r_off;
    }
    if (!dw) {
        b[4] = b[3];
        pc.r_off = pc.out_off;
    }
    if ((st = rms_dispatch(c, b, &pc)) != LC_OK || !dw) return st;

    /* dweight: chunks of DW_CHUNK groups summed in order, then the chunks in order */
    int64_t per = DW_CHUNK, chunks = (p.n_groups + per - 1) / per;
    while (chunks > 65535) { /* the grid's y dimension */
        per *= 2;
        chunks = (p.n_groups + per - 1) / per;
    }
    vk_bind d[4];
    struct { uint32_t x_off, dy_off, r_off, out_off, g, n_groups, per_chunk, accum; } q = {
        .x_off = pc.x_off, .dy_off = pc.dy_off, .g = u32(p.g), .n_groups = u32(p.n_groups), .per_chunk = u32(per)};
    d[0] = b[0];
    d[1] = b[2];
    if ((st = vk_bind_range(c, rb, ro, rbytes, false, op, &d[2], &q.r_off, 4)) != LC_OK) return st;
    vk_bind ob;
    uint32_t o_off;
    if ((st = vk_bind_tensor(c, dw, true, op, "dst1 dweight", &ob, &o_off, 4)) != LC_OK) return st;
    const bool acc = (node->accum & 2u) != 0;
    const uint32_t gx = (uint32_t)((p.g + 255) / 256);
    if (chunks == 1) {
        d[3] = ob;
        q.out_off = o_off;
        q.accum = acc ? 1u : 0u;
        return vk_dispatch(c, VK_PIPE_RMS_NORM_DW, NULL, d, 4, &q, sizeof q, gx, 1, 1);
    }
    vk_buf *pb;
    VkDeviceSize po, pbytes = (VkDeviceSize)chunks * p.g * 4;
    if ((st = vk_scratch(c, pbytes, &pb, &po)) || (st = vk_bind_range(c, pb, po, pbytes, true, op, &d[3], &q.out_off, 4)))
        return st;
    if ((st = vk_dispatch(c, VK_PIPE_RMS_NORM_DW, NULL, d, 4, &q, sizeof q, gx, u32(chunks), 1)) != LC_OK) return st;
    return vk_reduce_partials(c, pb, po, u32(p.g), u32(chunks), &ob, o_off, acc, op);
}

/* ---- rope ------------------------------------------------------------------------------------ */

static lc_status rope(vk_ctx *c, const lc_node *node, bool back) {
    const char *op = back ? "rope_back" : "rope";
    const lc_tensor *x = back ? node->src[6] : node->src[0], *pos = node->src[1], *y = node->dst[0];
    lc_status st;
    if ((st = vk_need(x, LC_F32, op, back ? "src6 dy" : "src0 x")) || (st = vk_need(pos, LC_I32, op, "src1 pos")))
        return st;
    const int64_t n_head = node->ip[0], n_rot = node->ip[1];
    const int mode = node->ip[2];
    if (n_head < 1 || x->ne[0] % n_head != 0)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: n_head ip[0]=%lld does not divide x.ne[0]=%lld", op,
                        (long long)n_head, (long long)x->ne[0]);
    const int64_t hd = x->ne[0] / n_head;
    if (n_rot < 2 || n_rot % 2 != 0 || n_rot > hd)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: n_rot ip[1]=%lld must be even and in [2, head_dim=%lld]", op,
                        (long long)n_rot, (long long)hd);
    if (mode != LC_ROPE_NORM && mode != LC_ROPE_NEOX)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: mode ip[2]=%d is neither NORM (0) nor NEOX (2)", op, mode);
    const int64_t T = vk_rows(x);
    if (vk_nel(pos) != T)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: pos '%s' has %lld elements, x has %lld tokens", op, pos->name,
                        (long long)vk_nel(pos), (long long)T);
    if (!isfinite(node->fp[0]) || !(node->fp[0] > 0.0f) || !isfinite(node->fp[1]))
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: freq_base fp[0]=%g must be > 0 and freq_scale fp[1]=%g finite", op,
                        (double)node->fp[0], (double)node->fp[1]);
    if (back && node->src[0] && (st = vk_need_like(node->src[0], x, op, "src0 x")) != LC_OK) return st;
    if (!y) {
        if (back) return LC_OK;
        return lc_error(LC_ERR_INVALID_ARG, "vulkan rope: dst0 is missing");
    }
    if ((st = vk_need_like(y, x, op, "dst0")) != LC_OK) return st;
    const bool acc = back && (node->accum & 1u) != 0;
    if (acc && y->buffer == x->buffer && y->offset == x->offset)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: accumulating dx must not share memory with dy", op);

    /* the frequency table, exactly as the CPU backend computes it */
    const int64_t half = n_rot / 2;
    float *inv = malloc((size_t)half * sizeof(float));
    if (!inv) return lc_error(LC_ERR_NOMEM, "vulkan %s: no host memory for %lld frequencies", op, (long long)half);
    for (int64_t i = 0; i < half; i++) inv[i] = powf(node->fp[0], -2.0f * (float)i / (float)n_rot);
    vk_buf *fb;
    VkDeviceSize fo, fbytes = (VkDeviceSize)half * 4;
    st = vk_scratch(c, fbytes, &fb, &fo);
    if (st == LC_OK) st = vk_begin(c);
    if (st == LC_OK) {
        vk_hazard(c, fb, fo, fbytes, true);
        for (VkDeviceSize done = 0; done < fbytes; done += 65536) {
            VkDeviceSize n = fbytes - done < 65536 ? fbytes - done : 65536;
            vkCmdUpdateBuffer(vk_cmd(c), fb->buffer, fo + done, n, (const char *)inv + done);
        }
    }
    free(inv);
    if (st != LC_OK) return st;

    vk_bind b[4];
    struct {
        uint32_t x_off, pos_off, f_off, y_off, n_head, hd, n_rot, T, mode, accum;
        float freq_scale, sign_;
    } pc = {.n_head = u32(n_head), .hd = u32(hd), .n_rot = u32(n_rot), .T = u32(T), .mode = (uint32_t)mode,
            .accum = acc ? 1u : 0u, .freq_scale = node->fp[1], .sign_ = back ? -1.0f : 1.0f};
    if ((st = vk_bind_tensor(c, x, false, op, "x", &b[0], &pc.x_off, 4)) ||
        (st = vk_bind_tensor(c, pos, false, op, "src1 pos", &b[1], &pc.pos_off, 4)) ||
        (st = vk_bind_range(c, fb, fo, fbytes, false, op, &b[2], &pc.f_off, 4)) ||
        (st = vk_bind_tensor(c, y, true, op, "dst0", &b[3], &pc.y_off, 4)))
        return st;
    uint64_t total = (uint64_t)T * n_head * (half + (hd - n_rot));
    return vk_dispatch(c, VK_PIPE_ROPE, NULL, b, 4, &pc, sizeof pc, vk_groups(c, total, 256), 1, 1);
}

/* ROPE: src0 x F32 [hd * n_head, T], src1 pos I32 [T] -> dst0 same shape; ip[0] n_head,
 * ip[1] n_rot, ip[2] mode (NORM 0 / NEOX 2), fp[0] freq_base, fp[1] freq_scale.
 * Errors: LC_ERR_INVALID_ARG (n_head, n_rot, mode, freq_base), LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_NOMEM. */
lc_status vk_op_rope(vk_ctx *c, const lc_node *node) { return rope(c, node, false); }

/* ROPE_BACK: src1 pos, src6 dy -> dst0 dx (+)= dy rotated by -theta. Errors as vk_op_rope. */
lc_status vk_op_rope_back(vk_ctx *c, const lc_node *node) { return rope(c, node, true); }
