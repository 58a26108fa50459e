/* lorac CLI — the useful work of a LoRA training step in FLOPs, and the OpenBLAS sgemm rate it is
 * compared with (`lorac train` reports useful FLOP/s as a ratio to sgemm measured in the same run).
 *
 * "Useful" means what any exact implementation of the step must compute in products, counting a
 * multiply-add as 2 FLOPs (the usual convention, e.g. Kaplan et al. 2020 §2.1) and ignoring
 * element-wise work (norms, rope, activations, softmax, cross-entropy), which is O(T·E) or
 * O(T·V) rather than a product:
 *   base projections (frozen): forward 2·T·in·out; backward only the input gradient
 *     dx = dy·W, another 2·T·in·out, except where x needs no gradient (the projections that
 *     read layer 0's input, which comes from the frozen embedding);
 *   output projection over the vocabulary: 2·T·E·V forward + 2·T·E·V for the input gradient;
 *   causal attention over (q, k) pairs p = n_seq · sum over rows of visible keys: forward
 *     QKᵀ and P·V, 4·head_dim·n_head FLOPs per pair; backward dP, dV, dQ, dK: 8·head_dim·n_head;
 *   LoRA on a targeted projection (in -> r -> out): forward 2·T·r·(in + out), backward
 *     dB, d(xA), dA, dx: 2 × forward.
 */
#include <cblas.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "lorac/model.h"

/* Keys visible to the query at position t (0-based) in a sequence: t + 1, or the window. */
static double attention_pairs(int seq_len, int window) {
    double p = 0.0;
    for (int t = 0; t < seq_len; t++) p += (window > 0 && t + 1 > window) ? window : t + 1;
    return p;
}

double cli_train_step_flops(const lc_model *model, const lc_lora_config *lcfg, int n_seq, int seq_len) {
    const lc_model_config *c = &model->cfg;
    const double T = (double)n_seq * seq_len;
    double fl = 0.0;
    for (int il = 0; il < c->n_layer; il++) {
        for (int m = 0; m < LC_MOD_COUNT; m++) {
            const lc_tensor *w = lc_model_module_weight(model, il, (lc_module)m);
            if (!w) continue;
            const double in = (double)w->ne[0], out = (double)w->ne[1];
            fl += 2.0 * T * in * out; /* forward */
            const bool reads_layer0_input =
                il == 0 && (m == LC_MOD_ATTN_Q || m == LC_MOD_ATTN_K || m == LC_MOD_ATTN_V || m == LC_MOD_FFN_GATE ||
                            m == LC_MOD_FFN_UP);
            /* With LoRA on the module, the input gradient is needed only if x needs one. */
            if (!reads_layer0_input) fl += 2.0 * T * in * out;
            if (lcfg && (lcfg->target_mask & (1u << m))) fl += 3.0 * 2.0 * T * lcfg->r * (in + out);
        }
        const int window = lc_model_layer_is_local(c, il) ? c->sliding_window : 0;
        const double pairs = n_seq * attention_pairs(seq_len, window);
        fl += 12.0 * pairs * c->head_dim * c->n_head;
    }
    fl += 2.0 * 2.0 * T * (double)c->n_embd * (double)c->n_vocab;
    return fl;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cli_sgemm_gflops(int n, int reps) {
    if (n < 16) n = 16;
    if (reps < 1) reps = 1;
    const size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *cc = malloc(nn * sizeof *cc);
    if (!a || !b || !cc) {
        free(a);
        free(b);
        free(cc);
        return 0.0;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((i * 7u) % 13u) * 0.01f;
        b[i] = (float)((i * 5u) % 11u) * 0.01f;
    }
    double best = 0.0;
    for (int r = 0; r <= reps; r++) { /* the first call warms up threads and caches */
        const double t0 = seconds_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, cc, n);
        const double dt = seconds_now() - t0;
        if (r > 0 && dt > 0.0) {
            const double g = 2.0 * (double)n * n * n / dt * 1e-9;
            if (g > best) best = g;
        }
    }
    free(a);
    free(b);
    free(cc);
    return best;
}
