/* lorac Vulkan backend — fused log-softmax + negative log-likelihood (cross_entropy), forward and
 * backward. Semantics: lorac/graph.h CROSS_ENTROPY (mean over counted rows, ignore_index, labels
 * outside [0, V) not counted, denominator fp[0] for gradient accumulation); the CPU kernels in
 * backends/cpu/ops_loss.c are the reference.
 *
 * Forward: cross_entropy.comp (one workgroup per row: lse and the row's nll into scratch), then
 * cross_entropy_loss.comp (one workgroup: counted rows, the sum of nll in a fixed tree, / D).
 * Backward: cross_entropy_loss.comp in mode 1 computes coef = dloss / D on the device (dloss is
 * a device tensor), then cross_entropy_back.comp writes the gradient row by row.
 * Rows whose length and offsets are multiples of 4 floats are read (and written) as vec4.
 * Logits larger than one binding (a 262144-token vocabulary times 1024 tokens is 1 GiB) are
 * processed in chunks of rows, each within maxStorageBufferRange.
 */
#include <math.h>

#include "vk_internal.h"

static uint32_t u32(int64_t v) { return (uint32_t)v; }

/* Rows of V floats per binding. */
static int64_t rows_per_chunk(const vk_ctx *c, int64_t V, int64_t N) {
    int64_t per = (int64_t)((c->max_binding - 1024) / ((VkDeviceSize)V * 4));
    if (per < 1) per = 1;
    return per < N ? per : N;
}

static lc_status ce_inputs(const lc_node *node, const char *op, int64_t *V, int64_t *N) {
    const lc_tensor *lg = node->src[0], *lb = node->src[1];
    lc_status st;
    if ((st = vk_need(lg, LC_F32, op, "src0 logits")) || (st = vk_need(lb, LC_I32, op, "src1 labels"))) return st;
    *V = lg->ne[0];
    *N = vk_rows(lg);
    if (vk_nel(lb) != *N)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: labels '%s' has %lld elements, logits '%s' has %lld rows", op, lb->name,
                        (long long)vk_nel(lb), lg->name, (long long)*N);
    if (!isfinite(node->fp[0])) return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: denominator fp[0] is not finite", op);
    return LC_OK;
}

typedef struct loss_push {
    uint32_t nll_off, lab_off, out_off, V, N, mode;
    int32_t ignore_index;
    float fp0;
} loss_push;

/* CROSS_ENTROPY: src0 logits F32 [V, N], src1 labels I32 [N] -> dst0 loss F32 [1], dst1 lse F32
 * [N] (may be NULL); ip[0] = ignore_index, fp[0] = denominator (0: counted rows).
 * Errors: LC_ERR_INVALID_ARG (fp[0] not finite), LC_ERR_DTYPE, LC_ERR_SHAPE, LC_ERR_DEVICE_NOMEM. */
lc_status vk_op_cross_entropy(vk_ctx *c, const lc_node *node) {
    const char *op = "cross_entropy";
    int64_t V, N;
    lc_status st = ce_inputs(node, op, &V, &N);
    if (st != LC_OK) return st;
    const lc_tensor *loss = node->dst[0], *lse = node->dst[1];
    if ((st = vk_need(loss, LC_F32, op, "dst0 loss")) != LC_OK) return st;
    if (vk_nel(loss) != 1)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: loss '%s' has %lld elements, expected 1", op, loss->name,
                        (long long)vk_nel(loss));
    if (lse) {
        if ((st = vk_need(lse, LC_F32, op, "dst1 lse")) != LC_OK) return st;
        if (vk_nel(lse) != N)
            return lc_error(LC_ERR_SHAPE, "vulkan %s: lse '%s' has %lld elements, expected N=%lld", op, lse->name,
                            (long long)vk_nel(lse), (long long)N);
    }
    vk_buf *nb;
    VkDeviceSize no, nbytes = (VkDeviceSize)N * 4;
    if ((st = vk_scratch(c, nbytes, &nb, &no)) != LC_OK) return st;
    vk_bind b[4];
    struct { uint32_t x_off, lab_off, lse_off, nll_off, V, N, has_lse; int32_t ignore_index; } pc = {
        .V = u32(V), .N = u32(N), .has_lse = lse ? 1u : 0u, .ignore_index = node->ip[0]};
    uint32_t lab0, lse0, nll0;
    if ((st = vk_bind_tensor(c, node->src[1], false, op, "src1 labels", &b[1], &lab0, 4)) ||
        (st = vk_bind_range(c, nb, no, nbytes, true, op, &b[3], &nll0, 4)))
        return st;
    if (lse) {
        if ((st = vk_bind_tensor(c, lse, true, op, "dst1 lse", &b[2], &lse0, 4)) != LC_OK) return st;
    } else {
        b[2] = b[3];
        lse0 = nll0;
    }
    const lc_tensor *lg = node->src[0];
    const int64_t per = rows_per_chunk(c, V, N);
    for (int64_t n0 = 0; n0 < N; n0 += per) {
        const int64_t nr = N - n0 < per ? N - n0 : per;
        if ((st = vk_bind_range(c, vk_tbuf(lg), lg->offset + (VkDeviceSize)n0 * V * 4, (VkDeviceSize)nr * V * 4, false,
                                op, &b[0], &pc.x_off, 4)) != LC_OK)
            return st;
        pc.lab_off = lab0 + u32(n0);
        pc.lse_off = lse0 + u32(n0);
        pc.nll_off = nll0 + u32(n0);
        pc.N = u32(nr);
        uint32_t groups = nr < 65535 ? u32(nr) : 65535;
        vk_spec sp = {1, {V % 4 == 0 && pc.x_off % 4 == 0 ? 1u : 0u}};
        if ((st = vk_dispatch(c, VK_PIPE_CROSS_ENTROPY, &sp, b, 4, &pc, sizeof pc, groups, 1, 1)) != LC_OK) return st;
    }
    pc.lab_off = lab0;
    pc.nll_off = nll0;
    vk_bind l[3];
    loss_push lp = {.V = u32(V), .N = u32(N), .mode = 0, .ignore_index = node->ip[0], .fp0 = node->fp[0]};
    l[0] = b[3];
    l[0].write = false;
    lp.nll_off = pc.nll_off;
    l[1] = b[1];
    lp.lab_off = pc.lab_off;
    if ((st = vk_bind_tensor(c, loss, true, op, "dst0 loss", &l[2], &lp.out_off, 4)) != LC_OK) return st;
    return vk_dispatch(c, VK_PIPE_CROSS_ENTROPY_LOSS, NULL, l, 3, &lp, sizeof lp, 1, 1, 1);
}

/* CROSS_ENTROPY_BACK: src0 logits, src1 labels, src5 lse (recomputed when NULL), src6 dloss F32
 * [1] -> dst0 dlogits (+)= dloss * (softmax - onehot) / D on counted rows. Errors as
 * vk_op_cross_entropy. */
lc_status vk_op_cross_entropy_back(vk_ctx *c, const lc_node *node) {
    const char *op = "cross_entropy_back";
    int64_t V, N;
    lc_status st = ce_inputs(node, op, &V, &N);
    if (st != LC_OK) return st;
    const lc_tensor *dl = node->src[6], *lse = node->src[5], *dx = node->dst[0];
    if ((st = vk_need(dl, LC_F32, op, "src6 dloss")) != LC_OK) return st;
    if (vk_nel(dl) != 1)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: dloss '%s' has %lld elements, expected 1", op, dl->name,
                        (long long)vk_nel(dl));
    if (lse) {
        if ((st = vk_need(lse, LC_F32, op, "src5 lse")) != LC_OK) return st;
        if (vk_nel(lse) != N)
            return lc_error(LC_ERR_SHAPE, "vulkan %s: lse '%s' has %lld elements, expected N=%lld", op, lse->name,
                            (long long)vk_nel(lse), (long long)N);
    }
    if (!dx) return LC_OK;
    if ((st = vk_need_like(dx, node->src[0], op, "dst0 dlogits")) != LC_OK) return st;
    vk_buf *cb;
    VkDeviceSize co;
    if ((st = vk_scratch(c, 4, &cb, &co)) != LC_OK) return st;
    vk_bind l[3];
    loss_push lp = {.V = u32(V), .N = u32(N), .mode = 1, .ignore_index = node->ip[0], .fp0 = node->fp[0]};
    if ((st = vk_bind_tensor(c, dl, false, op, "src6 dloss", &l[0], &lp.nll_off, 4)) ||
        (st = vk_bind_tensor(c, node->src[1], false, op, "src1 labels", &l[1], &lp.lab_off, 4)) ||
        (st = vk_bind_range(c, cb, co, 4, true, op, &l[2], &lp.out_off, 4)) ||
        (st = vk_dispatch(c, VK_PIPE_CROSS_ENTROPY_LOSS, NULL, l, 3, &lp, sizeof lp, 1, 1, 1)))
        return st;
    vk_bind b[5];
    struct { uint32_t x_off, lab_off, lse_off, coef_off, dx_off, V, N, has_lse, accum; int32_t ignore_index; } pc = {
        .V = u32(V), .N = u32(N), .has_lse = lse ? 1u : 0u, .accum = (node->accum & 1u) ? 1u : 0u,
        .ignore_index = node->ip[0]};
    uint32_t lab0, lse0;
    if ((st = vk_bind_tensor(c, node->src[1], false, op, "src1 labels", &b[1], &lab0, 4)) ||
        (st = vk_bind_range(c, cb, co, 4, false, op, &b[3], &pc.coef_off, 4)))
        return st;
    if (lse) {
        if ((st = vk_bind_tensor(c, lse, false, op, "src5 lse", &b[2], &lse0, 4)) != LC_OK) return st;
    } else {
        b[2] = b[1]; /* not read */
        lse0 = lab0;
    }
    const lc_tensor *lg = node->src[0];
    const int64_t per = rows_per_chunk(c, V, N);
    for (int64_t n0 = 0; n0 < N; n0 += per) {
        const int64_t nr = N - n0 < per ? N - n0 : per;
        const VkDeviceSize bytes = (VkDeviceSize)nr * V * 4, row0 = (VkDeviceSize)n0 * V * 4;
        if ((st = vk_bind_range(c, vk_tbuf(lg), lg->offset + row0, bytes, false, op, &b[0], &pc.x_off, 4)) ||
            (st = vk_bind_range(c, vk_tbuf(dx), dx->offset + row0, bytes, true, op, &b[4], &pc.dx_off, 4)))
            return st;
        pc.lab_off = lab0 + u32(n0);
        pc.lse_off = lse0 + u32(n0);
        pc.N = u32(nr);
        uint32_t groups = nr < 65535 ? u32(nr) : 65535;
        vk_spec sp = {1, {V % 4 == 0 && pc.x_off % 4 == 0 && pc.dx_off % 4 == 0 ? 1u : 0u}};
        if ((st = vk_dispatch(c, VK_PIPE_CROSS_ENTROPY_BACK, &sp, b, 5, &pc, sizeof pc, groups, 1, 1)) != LC_OK)
            return st;
    }
    return LC_OK;
}
