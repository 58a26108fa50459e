/* lorac-bench — one whole LoRA training step (forward, cross-entropy, backward, clipping norm,
 * AdamW) through train.h's trainer on a random model of the bench configuration.
 *
 * Useful FLOPs of a step (T tokens in one sequence; q = head_dim*n_head, kv = head_dim*n_head_kv,
 * E = n_embd, F = n_ff, V = n_vocab, L = layers, P = visible causal pairs, r = LoRA rank):
 *   forward   base  2*T*L*(E*q + 2*E*kv + q*E + 3*E*F) + 2*T*E*V (logits)
 *             lora  2*T*r*(in+out) per targeted module
 *             attn  4*head_dim*n_head*P per layer
 *   backward  base  the same dx products except layer 0's q, k, v (their input gradient is not
 *                   needed: the path ends in the frozen embedding); no dW for frozen weights
 *             lora  2x the LoRA forward (dA, dB, du, dx; layer 0 q/k/v without dx)
 *             attn  8*head_dim*n_head*P per layer (recomputed scores not counted)
 * Element-wise ops (norms, rope, activations, softmax) and AdamW are not counted.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static double pairs_causal(int T, int window) {
    double p = 0;
    for (int i = 0; i < T; i++) p += (window > 0 && i + 1 > window) ? window : i + 1;
    return p;
}

double bench_train_flops(const lc_model_config *c, int r, uint32_t mask, int T) {
    const double E = c->n_embd, q = (double)c->head_dim * c->n_head, kv = (double)c->head_dim * c->n_head_kv;
    const double F = c->n_ff, V = c->n_vocab;
    const double in_[LC_MOD_COUNT] = {E, E, E, q, E, E, F};
    const double out_[LC_MOD_COUNT] = {q, kv, kv, E, F, F, E};
    double fwd = 0, bwd = 0;
    for (int il = 0; il < c->n_layer; il++) {
        const bool local = lc_model_layer_is_local(c, il);
        const double P = pairs_causal(T, local ? c->sliding_window : 0);
        for (int m = 0; m < LC_MOD_COUNT; m++) {
            const double base = 2.0 * T * in_[m] * out_[m];
            const bool first_qkv = il == 0 && m <= LC_MOD_ATTN_V;
            fwd += base;
            if (!first_qkv) bwd += base;
            if (mask & (1u << m)) {
                const double lf = 2.0 * T * r * (in_[m] + out_[m]);
                fwd += lf;
                bwd += first_qkv ? 2.0 * lf - 2.0 * T * in_[m] * r : 2.0 * lf;
            }
        }
        fwd += 4.0 * c->head_dim * c->n_head * P;
        bwd += 8.0 * c->head_dim * c->n_head * P;
    }
    fwd += 2.0 * T * E * V;
    bwd += 2.0 * T * E * V;
    return fwd + bwd;
}

void bench_train_run(bench_train *out, lc_device *dev, const bench_options *opt) {
    const int T = opt->tokens;
    lc_model_config cfg = opt->cfg.model;
    out->n_layer_full = cfg.n_layer;
    if (opt->train_layers > 0 && opt->train_layers < cfg.n_layer) cfg.n_layer = opt->train_layers;
    out->n_layer = cfg.n_layer;
    out->r = 8;
    out->tokens = T;
    out->steps = opt->train_steps;
    snprintf(out->targets, sizeof out->targets, "q_proj,k_proj,v_proj,o_proj");
    const uint32_t mask = (1u << LC_MOD_ATTN_Q) | (1u << LC_MOD_ATTN_K) | (1u << LC_MOD_ATTN_V) |
                          (1u << LC_MOD_ATTN_OUTPUT);
    out->flops_per_step = bench_train_flops(&cfg, out->r, mask, T);

    lc_model *model = NULL;
    lc_lora_set *lora = NULL;
    lc_trainer *tr = NULL;
    int32_t *ids = NULL, *labels = NULL;
    double *times = NULL;
    lc_status st = lc_model_new_random(dev, &cfg, 42, &model);
    if (st == LC_OK) {
        const lc_lora_config lc = {.r = out->r, .lora_alpha = 16, .use_rslora = false, .dropout = 0,
                                   .target_mask = mask, .seed = 3};
        st = lc_lora_set_new(model, &lc, &lora);
    }
    ids = malloc((size_t)T * sizeof *ids);
    labels = malloc((size_t)T * sizeof *labels);
    times = malloc((size_t)(opt->train_steps + 1) * sizeof *times);
    if (st == LC_OK && (!ids || !labels || !times)) st = lc_error(LC_ERR_NOMEM, "lorac-bench: train step buffers");
    if (st == LC_OK) {
        uint64_t s = 99;
        for (int i = 0; i < T; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            ids[i] = (int32_t)((s >> 33) % (uint64_t)cfg.n_vocab);
        }
        for (int i = 0; i < T; i++) labels[i] = i + 1 < T ? ids[i + 1] : ids[0];
        lc_train_config tc = lc_train_config_default();
        tc.n_seq = 1;
        tc.seq_len = T;
        tc.steps = opt->train_steps + 1;
        const double t0 = bench_now();
        st = lc_trainer_new(model, lora, &tc, &tr);
        lc_train_stats ts;
        if (st == LC_OK) st = lc_trainer_step(tr, ids, labels, NULL, &ts);
        out->first_s = bench_now() - t0;
        if (st == LC_OK) out->first_loss = ts.loss;
        int n = 0;
        for (int k = 0; st == LC_OK && k < opt->train_steps; k++) {
            const double t1 = bench_now();
            st = lc_trainer_step(tr, ids, labels, NULL, &ts);
            times[n++] = bench_now() - t1;
        }
        if (st == LC_OK) {
            bench_stats(times, n, &out->median_s, &out->min_s, &out->max_s);
            out->tokens_per_s = out->median_s > 0 ? T / out->median_s : 0;
            out->gflops = out->median_s > 0 ? out->flops_per_step / out->median_s * 1e-9 : 0;
        }
    }
    out->peak_bytes = lc_device_peak_allocated(dev);
    if (st == LC_OK) {
        out->status = RES_OK;
    } else {
        out->status = st == LC_ERR_UNSUPPORTED ? RES_UNSUPPORTED : RES_ERROR;
        snprintf(out->error, sizeof out->error, "%s: %s", lc_status_str(st), lc_last_error());
    }
    lc_trainer_free(tr);
    lc_lora_set_free(lora);
    lc_model_free(model);
    free(ids);
    free(labels);
    free(times);
}
