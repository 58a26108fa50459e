/* lorac — LoRA scaling, initialisation and merge (see lorac/lora.h).
 *
 * Semantics of Hugging Face PEFT (reference/peft-lora.md §1.1, §1.3, §1.7): scaling =
 * lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA (arXiv:2312.03732); lora_A ~
 * U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5)) and lora_B = 0; merge adds
 * scaling · B·A to the base weight, computed in F32 and rounded once into the weight's dtype.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "lorac/graph.h"
#include "lorac/lora.h"
#include "lorac/rng.h"

float lc_lora_scaling(int r, float lora_alpha, bool rslora) {
    if (r <= 0) return 0.0f;
    /* Computed in double as Python does, then rounded once to F32. */
    return (float)(rslora ? (double)lora_alpha / sqrt((double)r) : (double)lora_alpha / (double)r);
}

static bool is_2d(const lc_tensor *t) { return t->ne[2] == 1 && t->ne[3] == 1; }

lc_status lc_lora_init(lc_tensor *lora_a, lc_tensor *lora_b, uint64_t seed, uint32_t module_id) {
    if (!lora_a || !lora_b) return lc_error(LC_ERR_INVALID_ARG, "lc_lora_init: lora_A or lora_B is NULL");
    if (lora_a->dtype != LC_F32 || lora_b->dtype != LC_F32)
        return lc_error(LC_ERR_DTYPE, "lc_lora_init: lora_A '%s' (%s) and lora_B '%s' (%s) must be f32", lora_a->name,
                        lc_dtype_name(lora_a->dtype), lora_b->name, lc_dtype_name(lora_b->dtype));
    if (!is_2d(lora_a) || !is_2d(lora_b) || lora_a->ne[1] != lora_b->ne[0])
        return lc_error(LC_ERR_SHAPE,
                        "lc_lora_init: expected lora_A [in, r] and lora_B [r, out]; got lora_A '%s' {%lld, %lld, %lld, "
                        "%lld}, lora_B '%s' {%lld, %lld, %lld, %lld}",
                        lora_a->name, (long long)lora_a->ne[0], (long long)lora_a->ne[1], (long long)lora_a->ne[2],
                        (long long)lora_a->ne[3], lora_b->name, (long long)lora_b->ne[0], (long long)lora_b->ne[1],
                        (long long)lora_b->ne[2], (long long)lora_b->ne[3]);
    const int64_t in = lora_a->ne[0], n = lc_nelements(lora_a);
    float *host = malloc((size_t)n * sizeof *host);
    if (!host) return lc_error(LC_ERR_NOMEM, "lc_lora_init(%s): out of host memory", lora_a->name);
    /* bound = gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + a^2)), a = sqrt(5): 1 / sqrt(in). */
    const float bound = (float)(1.0 / sqrt((double)in));
    const uint64_t stream = (1ull << 40) | (uint64_t)module_id;
    /* Element index = position in storage = PyTorch [r, in] row-major index j*in + i. */
    for (int64_t e = 0; e < n; e++) {
        float u = lc_rng_uniform(seed, stream, (uint64_t)e);
        host[e] = (2.0f * u - 1.0f) * bound;
    }
    lc_status st = lc_tensor_set_f32(lora_a, host, n);
    free(host);
    if (st != LC_OK) return st;
    return lc_tensor_zero(lora_b);
}

lc_status lc_lora_merge(lc_tensor *w, const lc_tensor *lora_a, const lc_tensor *lora_b, float scale) {
    if (!w || !lora_a || !lora_b) return lc_error(LC_ERR_INVALID_ARG, "lc_lora_merge: w, lora_A or lora_B is NULL");
    if (w->dtype != LC_F32 && w->dtype != LC_F16 && w->dtype != LC_BF16)
        return lc_error(LC_ERR_DTYPE, "lc_lora_merge: w '%s' has dtype %s; merge needs f32, f16 or bf16 (dequantize a "
                        "quantized weight first)", w->name, lc_dtype_name(w->dtype));
    if (lora_a->dtype != LC_F32 || lora_b->dtype != LC_F32)
        return lc_error(LC_ERR_DTYPE, "lc_lora_merge(%s): lora_A (%s) and lora_B (%s) must be f32", w->name,
                        lc_dtype_name(lora_a->dtype), lc_dtype_name(lora_b->dtype));
    if (!is_2d(w) || !is_2d(lora_a) || !is_2d(lora_b) || lora_a->ne[0] != w->ne[0] || lora_b->ne[1] != w->ne[1] ||
        lora_b->ne[0] != lora_a->ne[1])
        return lc_error(LC_ERR_SHAPE,
                        "lc_lora_merge: expected w [in, out], lora_A [in, r], lora_B [r, out]; got w '%s' {%lld, %lld}, "
                        "lora_A {%lld, %lld}, lora_B {%lld, %lld}",
                        w->name, (long long)w->ne[0], (long long)w->ne[1], (long long)lora_a->ne[0],
                        (long long)lora_a->ne[1], (long long)lora_b->ne[0], (long long)lora_b->ne[1]);
    if (!isfinite(scale)) return lc_error(LC_ERR_INVALID_ARG, "lc_lora_merge(%s): scale %g is not finite", w->name, (double)scale);
    lc_device *dev = lc_tensor_device_(w);
    if (!dev) return lc_error(LC_ERR_STATE, "lc_lora_merge: w '%s' has no device memory", w->name);
    if (lc_tensor_device_(lora_a) != dev || lc_tensor_device_(lora_b) != dev)
        return lc_error(LC_ERR_INVALID_ARG, "lc_lora_merge(%s): lora_A and lora_B must live on %s", w->name,
                        dev->info.spec);
    lc_node node;
    memset(&node, 0, sizeof node);
    node.op = LC_OP_LORA_MERGE;
    node.src[0] = w;
    node.src[1] = (lc_tensor *)lora_a;
    node.src[2] = (lc_tensor *)lora_b;
    node.dst[0] = w;
    node.fp[0] = scale;
    node.index = 0;
    return lc_device_run_node(dev, &node);
}
