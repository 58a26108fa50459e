/* lorac-bench — the op cases: each builds one LoRA-training kernel as a tiny lorac graph at the
 * shapes of a model configuration (ne order, T tokens), with seeded random leaves, and states
 * the work it does (FLOPs for products, bytes read + written for memory-bound ops).
 *
 * FLOP counts (a product of [M,K] by [K,N] is 2*M*N*K):
 *   lora_fwd   2*T*in*out (base) + 2*T*r*(in+out) (u = A·x, then B·u)
 *   lora_bwd   2*T*in*out (dx through the frozen base) + 4*T*r*(in+out) (dA, dB, du, dx low-rank)
 *   mul_mat    2*T*K*N
 *   attn_fwd   4*head_dim*n_head*P, P = visible (query, key) pairs (causal: T(T+1)/2)
 *   attn_bwd   8*head_dim*n_head*P (dV, dP, dQ, dK; the recomputed scores are not counted)
 * Bytes: rms_norm 8*E*T + 4*E; rope 8*D*T + 4*T; cross_entropy 4*V*T + 8*T; cross_entropy_bwd
 * 8*V*T (+4*V*T when it accumulates); adamw 28*n (read p, g, m, v; write p, m, v);
 * lora_merge 8*in*out + 4*r*(in+out) (read and write W in place, read A and B).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define BENCH_R 8
#define BENCH_SCALING 2.0f /* lora_alpha 16 / r 8 */

static int n_ff_in(const lc_model_config *c) { return c->n_ff; }

static lc_status finish(bench_graph *bg, lc_status st) {
    if (st != LC_OK) return st;
    if (lc_graph_status(bg->g) != LC_OK) return lc_error(lc_graph_status(bg->g), "%s", lc_graph_error(bg->g));
    return LC_OK;
}

static lc_status new_graph(bench_graph *bg, lc_device *dev) {
    memset(bg, 0, sizeof *bg);
    bg->g = lc_graph_new(dev);
    return bg->g ? LC_OK : lc_error(LC_ERR_NOMEM, "lorac-bench: lc_graph_new failed");
}

static void add_check(bench_graph *bg, lc_tensor *t) {
    if (t && bg->n_check < BENCH_MAX_CHECK) bg->check[bg->n_check++] = t;
}

/* ---- LoRA on ffn_up: in = n_embd, out = n_ff ---------------------------------------------- */
static lc_status build_lora(bench_graph *bg, lc_device *dev, const lc_model_config *c, int T, bool backward) {
    lc_status st = new_graph(bg, dev);
    if (st != LC_OK) return st;
    const int64_t in = c->n_embd, out = c->n_ff, r = BENCH_R;
    const float aw = sqrtf(3.0f / (float)in);
    lc_tensor *x = bench_leaf(bg, dev, LC_F32, in, T, backward ? LC_TENSOR_PARAM : 0, "x", 1, -1, 1, &st);
    lc_tensor *w = bench_leaf(bg, dev, LC_F32, in, out, LC_TENSOR_FROZEN, "w", 2, -aw, aw, &st);
    lc_tensor *a = bench_leaf(bg, dev, LC_F32, in, r, LC_TENSOR_PARAM, "lora_A", 3, -aw, aw, &st);
    lc_tensor *b = bench_leaf(bg, dev, LC_F32, r, out, LC_TENSOR_PARAM, "lora_B", 4, -0.1f, 0.1f, &st);
    if (st != LC_OK) return st;
    const lc_lora_params p = {.scaling = BENCH_SCALING, .dropout = 0, .module_id = 1, .seed = 7};
    lc_tensor *y = lc_lora(bg->g, x, w, a, b, &p);
    snprintf(bg->shape, sizeof bg->shape, "x[%lld,%d] w[%lld,%lld] r=%lld", (long long)in, T, (long long)in,
             (long long)out, (long long)r);
    if (!backward) {
        lc_graph_set_output(bg->g, y);
        add_check(bg, y);
        bg->flops = 2.0 * T * in * out + 2.0 * T * r * (in + out);
        return finish(bg, st);
    }
    lc_tensor *seed = bench_leaf(bg, dev, LC_F32, out, T, 0, "dy", 5, -1, 1, &st);
    if ((st = finish(bg, st)) != LC_OK) return st;
    if ((st = lc_graph_backward(bg->g, y, seed)) != LC_OK) return st;
    add_check(bg, x->grad);
    add_check(bg, a->grad);
    add_check(bg, b->grad);
    bg->timed_op = LC_OP_LORA_BACK;
    bg->flops = 2.0 * T * in * out + 4.0 * T * r * (in + out);
    return finish(bg, st);
}
static lc_status build_lora_fwd(bench_graph *bg, lc_device *d, const lc_model_config *c, int T) {
    return build_lora(bg, d, c, T, false);
}
static lc_status build_lora_bwd(bench_graph *bg, lc_device *d, const lc_model_config *c, int T) {
    return build_lora(bg, d, c, T, true);
}

static lc_status build_lora_merge(bench_graph *bg, lc_device *dev, const lc_model_config *c, int T) {
    (void)T;
    lc_status st = new_graph(bg, dev);
    if (st != LC_OK) return st;
    const int64_t in = c->n_embd, out = c->n_ff, r = BENCH_R;
    const float aw = sqrtf(3.0f / (float)in);
    lc_tensor *w = bench_leaf(bg, dev, LC_F32, in, out, 0, "w", 2, -aw, aw, &st);
    lc_tensor *a = bench_leaf(bg, dev, LC_F32, in, r, 0, "lora_A", 3, -aw, aw, &st);
    lc_tensor *b = bench_leaf(bg, dev, LC_F32, r, out, 0, "lora_B", 4, -0.1f, 0.1f, &st);
    if (st != LC_OK) return st;
    lc_lora_merge_op(bg->g, w, a, b, BENCH_SCALING);
    add_check(bg, w);
    snprintf(bg->shape, sizeof bg->shape, "W[%lld,%lld] r=%lld", (long long)in, (long long)out, (long long)r);
    bg->flops = 2.0 * in * out * r;
    bg->bytes = 8.0 * in * out + 4.0 * r * (in + out);
    return finish(bg, st);
}

/* ---- mul_mat on ffn_down: x [n_ff, T], w [n_ff, n_embd] ----------------------------------- */
static lc_status build_mul_mat(bench_graph *bg, lc_device *dev, const lc_model_config *c, int T, lc_dtype dt) {
    lc_status st = new_graph(bg, dev);
    if (st != LC_OK) return st;
    const int64_t K = n_ff_in(c), N = c->n_embd;
    const lc_dtype_info *di = lc_dtype_get(dt);
    snprintf(bg->shape, sizeof bg->shape, "x[%lld,%d] w[%lld,%lld] %s", (long long)K, T, (long long)K, (long long)N,
             lc_dtype_name(dt));
    if (di && K % di->block_size != 0)
        return lc_error(LC_ERR_SHAPE, "mul_mat_%s: K = n_ff = %lld is not a multiple of the block size %lld", di->name,
                        (long long)K, (long long)di->block_size);
    const float aw = sqrtf(3.0f / (float)K);
    lc_tensor *x = bench_leaf(bg, dev, LC_F32, K, T, 0, "x", 11, -1, 1, &st);
    lc_tensor *w = bench_leaf(bg, dev, dt, K, N, LC_TENSOR_FROZEN, "w", 12, -aw, aw, &st);
    if (st != LC_OK) return st;
    lc_tensor *y = lc_mul_mat(bg->g, x, w);
    lc_graph_set_output(bg->g, y);
    add_check(bg, y);
    snprintf(bg->shape, sizeof bg->shape, "x[%lld,%d] w[%lld,%lld] %s", (long long)K, T, (long long)K, (long long)N,
             lc_dtype_name(dt));
    bg->flops = 2.0 * T * K * N;
    return finish(bg, st);
}
static lc_status build_mm_f32(bench_graph *bg, lc_device *d, const lc_model_config *c, int T) {
    return build_mul_mat(bg, d, c, T, LC_F32);
}
static lc_status build_mm_q8_0(bench_graph *bg, lc_device *d, const lc_model_config *c, int T) {
    return build_mul_mat(bg, d, c, T, LC_Q8_0);
}
static lc_status build_mm_q4_k(bench_graph *bg, lc_device *d, const lc_model_config *c, int T) {
    return build_mul_mat(bg, d, c, T, LC_Q4_K);
}
static lc_status build_mm_q6_k(bench_graph *bg, lc_device *d, const lc_model_config *c, int T) {
    return build_mul_mat(bg, d, c, T, LC_Q6_K);
}

/* ---- rms_norm over n_embd, rope over the query heads ------------------------------------- */
static lc_status build_rms_norm(bench_graph *bg, lc_device *dev, const lc_model_config *c, int T) {
    lc_status st = new_graph(bg, dev);
    if (st != LC_OK) return st;
    const int64_t E = c->n_embd;
    lc_tensor *x = bench_leaf(bg, dev, LC_F32, E, T, 0, "x", 21, -1, 1, &st);
    lc_tensor *w = bench_leaf(bg, dev, LC_F32, E, 1, 0, "weight", 22, 0.5f, 1.5f, &st);
    if (st != LC_OK) return st;
    lc_tensor *y = lc_rms_norm(bg->g, x, w, 0, c->rms_eps);
    lc_graph_set_output(bg->g, y);
    add_check(bg, y);
    snprintf(bg->shape, sizeof bg->shape, "x[%lld,%d]", (long long)E, T);
    bg->bytes = 8.0 * E * T + 4.0 * E;
    return finish(bg, st);
}

static lc_tensor *positions(bench_graph *bg, lc_device *dev, int T, lc_status *st) {
    lc_tensor *pos = bench_leaf(bg, dev, LC_I32, T, 1, 0, "pos", 0, 0, 0, st);
    if (*st != LC_OK) return NULL;
    int32_t *h = malloc((size_t)T * sizeof *h);
    if (!h) {
        *st = lc_error(LC_ERR_NOMEM, "lorac-bench: out of host memory (positions)");
        return NULL;
    }
    for (int i = 0; i < T; i++) h[i] = i;
    *st = lc_tensor_set(pos, h, 0, (size_t)T * sizeof *h);
    free(h);
    return pos;
}

static lc_status build_rope(bench_graph *bg, lc_device *dev, const lc_model_config *c, int T) {
    lc_status st = new_graph(bg, dev);
    if (st != LC_OK) return st;
    const int64_t D = (int64_t)c->head_dim * c->n_head;
    lc_tensor *x = bench_leaf(bg, dev, LC_F32, D, T, 0, "q", 31, -1, 1, &st);
    lc_tensor *pos = positions(bg, dev, T, &st);
    if (st != LC_OK) return st;
    const int n_rot = c->n_rot ? c->n_rot : c->head_dim;
    lc_tensor *y = lc_rope(bg->g, x, pos, c->n_head, n_rot, c->rope_mode, c->rope_base, c->rope_scale);
    lc_graph_set_output(bg->g, y);
    add_check(bg, y);
    snprintf(bg->shape, sizeof bg->shape, "q[%lld,%d] heads=%d %s", (long long)D, T, c->n_head,
             c->rope_mode == LC_ROPE_NEOX ? "neox" : "norm");
    bg->bytes = 8.0 * D * T + 4.0 * T;
    return finish(bg, st);
}

/* ---- causal GQA attention, one sequence of T tokens ------------------------------------- */
static double visible_pairs(int T, int window) {
    double p = 0;
    for (int i = 0; i < T; i++) p += (window > 0 && i + 1 > window) ? window : i + 1;
    return p;
}

static lc_status build_attention(bench_graph *bg, lc_device *dev, const lc_model_config *c, int T, bool backward) {
    lc_status st = new_graph(bg, dev);
    if (st != LC_OK) return st;
    const int64_t Dq = (int64_t)c->head_dim * c->n_head, Dkv = (int64_t)c->head_dim * c->n_head_kv;
    const uint32_t fl = backward ? LC_TENSOR_PARAM : 0;
    lc_tensor *q = bench_leaf(bg, dev, LC_F32, Dq, T, fl, "q", 41, -1, 1, &st);
    lc_tensor *k = bench_leaf(bg, dev, LC_F32, Dkv, T, fl, "k", 42, -1, 1, &st);
    lc_tensor *v = bench_leaf(bg, dev, LC_F32, Dkv, T, fl, "v", 43, -1, 1, &st);
    if (st != LC_OK) return st;
    const lc_attention_params p = {.n_head = c->n_head, .n_kv = c->n_head_kv, .n_seq = 1, .causal = true,
                                   .window = 0, .scale = 1.0f / sqrtf((float)c->head_dim)};
    lc_tensor *o = lc_attention(bg->g, q, k, v, &p);
    snprintf(bg->shape, sizeof bg->shape, "q[%lld,%d] kv[%lld,%d] hd=%d causal", (long long)Dq, T, (long long)Dkv, T,
             c->head_dim);
    const double pairs = visible_pairs(T, 0);
    if (!backward) {
        lc_graph_set_output(bg->g, o);
        add_check(bg, o);
        lc_node *n = lc_tensor_node(o);
        if (n && n->dst[1]) {
            lc_graph_set_output(bg->g, n->dst[1]);
            add_check(bg, n->dst[1]);
        }
        bg->flops = 4.0 * c->head_dim * c->n_head * pairs;
        return finish(bg, st);
    }
    lc_tensor *seed = bench_leaf(bg, dev, LC_F32, Dq, T, 0, "do", 44, -1, 1, &st);
    if ((st = finish(bg, st)) != LC_OK) return st;
    if ((st = lc_graph_backward(bg->g, o, seed)) != LC_OK) return st;
    add_check(bg, q->grad);
    add_check(bg, k->grad);
    add_check(bg, v->grad);
    bg->timed_op = LC_OP_ATTENTION_BACK;
    bg->flops = 8.0 * c->head_dim * c->n_head * pairs;
    return finish(bg, st);
}
static lc_status build_attn_fwd(bench_graph *bg, lc_device *d, const lc_model_config *c, int T) {
    return build_attention(bg, d, c, T, false);
}
static lc_status build_attn_bwd(bench_graph *bg, lc_device *d, const lc_model_config *c, int T) {
    return build_attention(bg, d, c, T, true);
}

/* ---- cross_entropy over the vocabulary --------------------------------------------------- */
static lc_status build_ce(bench_graph *bg, lc_device *dev, const lc_model_config *c, int T, bool backward) {
    lc_status st = new_graph(bg, dev);
    if (st != LC_OK) return st;
    const int64_t V = c->n_vocab;
    lc_tensor *logits = bench_leaf(bg, dev, LC_F32, V, T, backward ? LC_TENSOR_PARAM : 0, "logits", 51, -4, 4, &st);
    lc_tensor *labels = bench_leaf(bg, dev, LC_I32, T, 1, 0, "labels", 0, 0, 0, &st);
    if (st != LC_OK) return st;
    int32_t *h = malloc((size_t)T * sizeof *h);
    if (!h) return lc_error(LC_ERR_NOMEM, "lorac-bench: out of host memory (labels)");
    for (int i = 0; i < T; i++) h[i] = (int32_t)(((uint64_t)i * 2654435761u) % (uint64_t)V);
    st = lc_tensor_set(labels, h, 0, (size_t)T * sizeof *h);
    free(h);
    if (st != LC_OK) return st;
    lc_tensor *loss = lc_cross_entropy(bg->g, logits, labels, -100);
    snprintf(bg->shape, sizeof bg->shape, "logits[%lld,%d]", (long long)V, T);
    if (!backward) {
        lc_graph_set_output(bg->g, loss);
        add_check(bg, loss);
        lc_node *n = lc_tensor_node(loss);
        if (n && n->dst[1]) {
            lc_graph_set_output(bg->g, n->dst[1]);
            add_check(bg, n->dst[1]);
        }
        bg->bytes = 4.0 * V * T + 8.0 * T;
        return finish(bg, st);
    }
    if ((st = finish(bg, st)) != LC_OK) return st;
    if ((st = lc_graph_backward(bg->g, loss, NULL)) != LC_OK) return st;
    add_check(bg, logits->grad);
    bg->timed_op = LC_OP_CROSS_ENTROPY_BACK;
    bg->bytes = 8.0 * V * T;
    for (int i = 0; i < lc_graph_n_nodes(bg->g); i++) {
        const lc_node *n = lc_graph_node(bg->g, i);
        if (n->op == LC_OP_CROSS_ENTROPY_BACK && (n->accum & 1u)) bg->bytes += 4.0 * V * T;
    }
    return finish(bg, st);
}
static lc_status build_ce_fwd(bench_graph *bg, lc_device *d, const lc_model_config *c, int T) {
    return build_ce(bg, d, c, T, false);
}
static lc_status build_ce_bwd(bench_graph *bg, lc_device *d, const lc_model_config *c, int T) {
    return build_ce(bg, d, c, T, true);
}

/* ---- adamw over every LoRA parameter of the model (r 8 on q, k, v, o), as one tensor ----- */
static int64_t lora_qkvo_params(const lc_model_config *c) {
    const int64_t E = c->n_embd, q = (int64_t)c->head_dim * c->n_head, kv = (int64_t)c->head_dim * c->n_head_kv;
    const int64_t per_layer = BENCH_R * ((E + q) + 2 * (E + kv) + (q + E));
    return per_layer * c->n_layer;
}

static lc_status build_adamw(bench_graph *bg, lc_device *dev, const lc_model_config *c, int T) {
    (void)T;
    lc_status st = new_graph(bg, dev);
    if (st != LC_OK) return st;
    const int64_t n = lora_qkvo_params(c);
    lc_tensor *p = bench_leaf(bg, dev, LC_F32, n, 1, LC_TENSOR_PARAM, "param", 61, -0.1f, 0.1f, &st);
    lc_tensor *g = bench_leaf(bg, dev, LC_F32, n, 1, 0, "grad", 62, -0.01f, 0.01f, &st);
    lc_tensor *m = bench_leaf(bg, dev, LC_F32, n, 1, 0, "m", 63, -0.001f, 0.001f, &st);
    lc_tensor *v = bench_leaf(bg, dev, LC_F32, n, 1, 0, "v", 64, 0.0f, 1e-5f, &st);
    if (st != LC_OK) return st;
    const lc_adamw_params ap = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    lc_adamw(bg->g, p, g, m, v, &ap);
    if ((st = finish(bg, st)) != LC_OK) return st;
    lc_graph_set_adamw(bg->g, 1e-4f, 1, 1.0f);
    add_check(bg, p);
    add_check(bg, m);
    add_check(bg, v);
    snprintf(bg->shape, sizeof bg->shape, "n=%lld (all LoRA q,k,v,o r=8)", (long long)n);
    bg->bytes = 28.0 * n;
    return LC_OK;
}

const bench_case bench_cases[] = {
    {"lora_fwd", "LoRA forward on ffn_up (in n_embd, out n_ff, r 8): base + scaling*B*A*x", METRIC_FLOPS,
     build_lora_fwd},
    {"lora_bwd", "LoRA backward node alone (dx, dA, dB) on the same shapes", METRIC_FLOPS, build_lora_bwd},
    {"lora_merge", "W += scaling*B*A in place on ffn_up (memory bound)", METRIC_BYTES, build_lora_merge},
    {"mul_mat_f32", "x*W^T, ffn_down shape (K n_ff, N n_embd), F32 weight", METRIC_FLOPS, build_mm_f32},
    {"mul_mat_q8_0", "same with a Q8_0 weight", METRIC_FLOPS, build_mm_q8_0},
    {"mul_mat_q4_K", "same with a Q4_K weight", METRIC_FLOPS, build_mm_q4_k},
    {"mul_mat_q6_K", "same with a Q6_K weight", METRIC_FLOPS, build_mm_q6_k},
    {"rms_norm", "rms_norm over n_embd with a weight", METRIC_BYTES, build_rms_norm},
    {"rope", "rope of the query heads (the config's mode and base)", METRIC_BYTES, build_rope},
    {"attn_fwd", "causal GQA attention forward (o and lse)", METRIC_FLOPS, build_attn_fwd},
    {"attn_bwd", "attention backward node alone (dq, dk, dv)", METRIC_FLOPS, build_attn_bwd},
    {"cross_entropy", "fused log-softmax + NLL over the whole vocabulary", METRIC_BYTES, build_ce_fwd},
    {"cross_entropy_bwd", "cross-entropy backward node alone (dlogits)", METRIC_BYTES, build_ce_bwd},
    {"adamw", "AdamW in place over every LoRA parameter (q,k,v,o, r 8) as one tensor", METRIC_BYTES, build_adamw},
};
const int bench_n_cases = (int)(sizeof bench_cases / sizeof bench_cases[0]);
