/* lorac tests — a tiny two-layer transformer with LoRA on every projection, built twice: with
 * lorac's graph API (float, on a device) and as a double-precision plain-loop forward (ref_ops.c)
 * that returns the loss for any LoRA values, so gradients can be checked by central differences.
 *
 * Architecture (Llama / Gemma style, pre-norm; shapes in ne order, T = n_seq * seq tokens):
 *   x = get_rows(embd [E, V], ids) * sqrt(E)
 *   per layer l:  h = rms_norm(x) * attn_norm
 *                 q = lora(h, Wq), k = lora(h, Wk), v = lora(h, Wv)
 *                 layer 1 only: q = rms_norm(q, group head_dim) * q_norm   (per-head norm)
 *                 q, k = rope(q, k)  (layer 0 NEOX, layer 1 NORM; n_rot = head_dim)
 *                 a = attention(q, k, v; causal, GQA; layer 1 sliding window 3)
 *                 x = x + lora(a, Wo)
 *                 h = rms_norm(x) * ffn_norm
 *                 x = x + lora(act(lora(h, Wgate), lora(h, Wup)), Wdown)  (layer 0 swiglu, 1 geglu)
 *   logits = tied ? mul_mat(rms_norm(x) * out_norm, embd) : lora(rms_norm(x) * out_norm, Wout)
 *   loss = cross_entropy(logits, labels, ignore -100)   (labels: next token; last of each seq ignored)
 */
#ifndef TOY_MODEL_H
#define TOY_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "lorac/lorac.h"
#include "lt_graph.h"
#include "lt_util.h"

#define TOY_MAX_LAYERS 2
#define TOY_N_MOD 7 /* q, k, v, o, gate, up, down */
#define TOY_MAX_LORA (TOY_MAX_LAYERS * TOY_N_MOD + 1)

typedef struct toy_config {
    int vocab, n_embd, n_layer, n_head, n_kv, head_dim, n_ff, seq, n_seq;
    int r;            /* LoRA rank of every module (the output module uses r + 1) */
    float lora_alpha; /* scaling = lora_alpha / r per module */
    bool tied;        /* output = embedding (no LoRA on it) or an untied output with LoRA */
    float dropout;    /* LoRA dropout p */
    uint64_t seed;    /* data / weights seed, also the dropout seed */
    uint64_t step;    /* dropout step */
    bool zero_b;      /* lora_B = 0 (fresh adapter) instead of random */
} toy_config;

/* The sizes of the brief: vocab 11, n_embd 16, 2 layers, 4 heads / 2 kv heads, head_dim 4,
 * ff 24, seq 5, 2 sequences, r 2. */
toy_config toy_default_config(void);

typedef struct toy_lora {
    char name[32];         /* "blk.0.attn_q" */
    int64_t in, out, r;
    uint32_t module_id;
    float scaling;
    float *w;              /* base weight [in, out] (host) */
    double *wd;            /* same, double */
    float *A, *B;          /* host values [in, r], [r, out] */
    lc_tensor *tw, *tA, *tB;
} toy_lora;

typedef struct toy_model {
    toy_config cfg;
    int64_t T;
    float *embd, *out_norm;
    float *attn_norm[TOY_MAX_LAYERS], *ffn_norm[TOY_MAX_LAYERS], *q_norm[TOY_MAX_LAYERS];
    int32_t *ids, *labels, *pos;
    int n_lora;
    toy_lora lora[TOY_MAX_LORA];
    lc_tensor *loss; /* after toy_build */
} toy_model;

/* Random model and data from cfg->seed. lora_A ~ U(±1/sqrt(in)) scaled, lora_B random nonzero
 * (or zero when cfg->zero_b). */
void toy_init(toy_model *m, const toy_config *cfg);
void toy_free(toy_model *m);

/* Build the forward graph on g with standalone tensors from env (A/B: LC_TENSOR_PARAM, the rest
 * frozen or input) and return the loss tensor (NULL on a builder failure: see lc_graph_status).
 * Also calls lc_graph_set_step(g, cfg.step). */
lc_tensor *toy_build(toy_model *m, lt_env *env, lc_graph *g);

/* Double-precision loss with the LoRA values A[i], B[i] (arrays of m->n_lora pointers, in the
 * order of m->lora). */
double toy_ref_loss(const toy_model *m, double *const *A, double *const *B);

#endif
