/* lorac — transformer language models as a small description over the graph API, and the set of
 * LoRA modules attached to them.
 *
 * One decoder-only layout covers the Llama family (Llama, Mistral, Qwen2) and Gemma 3; an
 * architecture is a preset of the switches in lc_model_config (reference/formats.md §3 for
 * Gemma 3, §5 for the Hugging Face config keys and names). Tensor names are the GGUF names
 * (token_embd.weight, blk.N.attn_q.weight, output_norm.weight, output.weight) so weights read
 * from a GGUF file land by name; lc_module_hf_name gives the Hugging Face / PEFT name.
 *
 * Forward pass for T = n_seq * seq_len tokens (shapes in ne order, activations F32 [features, T]):
 *   x = get_rows(token_embd [n_embd, n_vocab], ids)            (* sqrt(n_embd) when embd_scale)
 *   per layer il:
 *     h = rms_norm(x) * attn_norm
 *     q = h·attn_qᵀ (+ bias)  [head_dim*n_head, T];  k, v = ... [head_dim*n_head_kv, T]
 *     q, k = rms_norm per head * attn_q_norm / attn_k_norm       (qk_norm)
 *     q, k = rope(pos; n_rot, rope_mode, base/scale of a global or a local layer)
 *     a = attention(q, k, v; causal, GQA, window when layer il is local, attn_scale)
 *     o = a·attn_outputᵀ        (then rms_norm(o) * post_attention_norm when post_norms)
 *     x = x + o
 *     h = rms_norm(x) * ffn_norm
 *     f = ffn_down(act(ffn_gate·h) * ffn_up·h)   act: silu (swiglu) or gelu_tanh (geglu)
 *                               (then rms_norm(f) * post_ffw_norm when post_norms)
 *     x = x + f
 *   logits = (rms_norm(x) * output_norm)·outputᵀ   [n_vocab, T]   (output = token_embd when tied)
 * Every projection with a LoRA module becomes an lc_lora node (base + scaling·B·A·drop(h)).
 * Sources: llama.cpp llama-model.cpp / models/gemma3.cpp as summarised in reference/formats.md §3;
 * Hugging Face transformers modeling_llama.py / modeling_qwen2.py / modeling_gemma3.py.
 */
#ifndef LORAC_MODEL_H
#define LORAC_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "lorac/device.h"
#include "lorac/gguf.h"
#include "lorac/graph.h"
#include "lorac/status.h"
#include "lorac/tensor.h"
#include "lorac/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lc_arch {
    LC_ARCH_LLAMA = 0,  /* Llama 1-3, Mistral: NORM rope (GGUF q/k row order), swiglu */
    LC_ARCH_QWEN2,      /* NEOX rope, q/k/v biases, swiglu */
    LC_ARCH_GEMMA3,     /* NEOX rope, geglu, qk_norm, post norms, embd scale, local/global layers */
    LC_ARCH_TOY,        /* small random model for tests and `lorac train --toy` (Llama layout) */
    LC_ARCH_COUNT
} lc_arch;

/* "llama", "qwen2", "gemma3", "toy" (the GGUF general.architecture spelling); "unknown" else. */
const char *lc_arch_name(lc_arch arch);
/* Inverse of lc_arch_name; LC_ERR_INVALID_ARG naming the accepted values when unknown. */
lc_status lc_arch_from_name(const char *name, lc_arch *out);

typedef enum lc_activation {
    LC_ACT_SILU = 0,    /* SwiGLU: silu(gate) * up (Llama, Qwen2) */
    LC_ACT_GELU_TANH,   /* GeGLU: gelu_tanh(gate) * up (Gemma "gelu_pytorch_tanh") */
    LC_ACT_COUNT
} lc_activation;

/* The projections a LoRA module can target. Bit (1u << m) of a target mask selects module m. */
typedef enum lc_module {
    LC_MOD_ATTN_Q = 0,  /* q_proj    / attn_q      [n_embd -> head_dim*n_head]    */
    LC_MOD_ATTN_K,      /* k_proj    / attn_k      [n_embd -> head_dim*n_head_kv] */
    LC_MOD_ATTN_V,      /* v_proj    / attn_v      [n_embd -> head_dim*n_head_kv] */
    LC_MOD_ATTN_OUTPUT, /* o_proj    / attn_output [head_dim*n_head -> n_embd]    */
    LC_MOD_FFN_GATE,    /* gate_proj / ffn_gate    [n_embd -> n_ff]               */
    LC_MOD_FFN_UP,      /* up_proj   / ffn_up      [n_embd -> n_ff]               */
    LC_MOD_FFN_DOWN,    /* down_proj / ffn_down    [n_ff -> n_embd]               */
    LC_MOD_COUNT
} lc_module;

#define LC_MOD_MASK_ALL ((1u << LC_MOD_COUNT) - 1u)

/* GGUF name ("attn_q") and Hugging Face name ("q_proj") of a module; "unknown" when out of range. */
const char *lc_module_gguf_name(lc_module m);
const char *lc_module_hf_name(lc_module m);
/* Hugging Face module path of layer il's module ("model.layers.3.self_attn.q_proj",
 * "model.layers.3.mlp.down_proj") into dst (truncated to cap). Returns dst. */
char *lc_module_hf_path(char *dst, size_t cap, int il, lc_module m);

/* Parse a comma-separated target list into a module mask. Accepts the Hugging Face names
 * (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), the GGUF names (attn_q, attn_k,
 * attn_v, attn_output, ffn_gate, ffn_up, ffn_down), and "all" / "all-linear" (every projection).
 * Spaces around names are ignored. Errors: LC_ERR_INVALID_ARG naming the unknown entry and
 * listing the accepted names (an empty list is an error). */
lc_status lc_module_mask_parse(const char *list, uint32_t *mask);

typedef struct lc_model_config {
    lc_arch arch;
    int n_vocab;          /* vocabulary size V */
    int n_embd;           /* hidden size E */
    int n_layer;
    int n_head;           /* query heads */
    int n_head_kv;        /* key/value heads; n_head % n_head_kv == 0 (GQA) */
    int head_dim;         /* per-head size (need not equal n_embd / n_head: Gemma 3) */
    int n_ff;             /* feed-forward (intermediate) size */
    int n_rot;            /* rotated dims per head, even, <= head_dim; 0 = head_dim */
    float rms_eps;        /* rms_norm epsilon, > 0 */
    int rope_mode;        /* LC_ROPE_NORM (adjacent pairs) or LC_ROPE_NEOX (halves) */
    float rope_base;      /* theta base of global layers (rope_theta / rope.freq_base) */
    float rope_scale;     /* freq_scale of global layers = 1 / linear rope_scaling factor */
    float rope_base_local;/* theta base of local (sliding-window) layers, scale 1; Gemma 3: 10000 */
    int sliding_window;   /* keys visible when pos_q - pos_k < window on local layers; 0 = none */
    int swa_pattern;      /* with sliding_window > 0: layer il is local when swa_pattern == 0 (all
                           * layers, Mistral) or il % swa_pattern < swa_pattern - 1 (Gemma 3: 6) */
    float attn_scale;     /* softmax scale; 0 = 1/sqrt(head_dim) (Gemma 3 27B: query_pre_attn_scalar^-0.5) */
    lc_activation act;
    bool qk_norm;         /* per-head rms_norm of q and k (attn_q_norm / attn_k_norm, [head_dim]) */
    bool post_norms;      /* post_attention_norm and post_ffw_norm (Gemma 3) */
    bool embd_scale;      /* x = embedding * sqrt(n_embd) (Gemma 3) */
    bool qkv_bias;        /* biases on q, k, v (Qwen2) */
    bool tied_output;     /* logits use token_embd; no output.weight */
    lc_dtype wtype;       /* dtype of the projection matrices and token_embd made by
                           * lc_model_new / lc_model_new_random (F32, F16, BF16, Q8_0, Q4_0, Q4_K,
                           * Q6_K, ...); norms and biases are always F32. A model loaded from a file
                           * keeps every tensor's own dtype (tensors need not share one): there
                           * wtype is only informative (see lc_model_config_from_gguf) -- read
                           * t->dtype of each tensor */
    int n_ctx_train;      /* context length the model was trained for (GGUF <arch>.context_length);
                           * 0 = unknown. Informative: generation and evaluation may use less */
} lc_model_config;

/* Preset for an architecture: the switches above set as the architecture requires, sizes
 * zero (the caller fills n_vocab ... n_ff); rms_eps 1e-5 (Gemma 3: 1e-6), rope_base 10000
 * (Gemma 3: 1e6, local 10000, window 512 with pattern 6), rope_scale 1, wtype F32.
 * LC_ARCH_TOY returns the complete toy model of `lorac train --toy`: V 64, E 64, 2 layers,
 * 4 heads / 2 kv heads of 16, n_ff 128, NEOX rope, swiglu, tied output. */
lc_model_config lc_model_config_default(lc_arch arch);

/* Check every field (n_ctx_train must be >= 0). Errors: LC_ERR_INVALID_ARG with a message naming the field, its value and
 * the rule ("lc_model_config: n_head_kv = 3 must divide n_head = 4"); LC_ERR_DTYPE when wtype is
 * not a weight dtype or a quantized wtype's block size does not divide n_embd, n_ff or
 * head_dim*n_head (the ne[0] of the matrices). */
lc_status lc_model_config_check(const lc_model_config *cfg);

/* Weights of one layer, F32 unless noted; matrices in ne order {in, out} (PyTorch [out, in]). */
typedef struct lc_layer_weights {
    lc_tensor *attn_norm;            /* [n_embd] */
    lc_tensor *attn_q, *attn_k, *attn_v; /* {n_embd, hd*n_head}, {n_embd, hd*n_kv} x2; wtype */
    lc_tensor *attn_q_bias, *attn_k_bias, *attn_v_bias; /* [out] when qkv_bias, else NULL */
    lc_tensor *attn_q_norm, *attn_k_norm;               /* [head_dim] when qk_norm, else NULL */
    lc_tensor *attn_output;          /* {hd*n_head, n_embd}; wtype */
    lc_tensor *post_attention_norm;  /* [n_embd] when post_norms, else NULL */
    lc_tensor *ffn_norm;             /* [n_embd] (the pre-FFN norm) */
    lc_tensor *ffn_gate, *ffn_up;    /* {n_embd, n_ff}; wtype */
    lc_tensor *ffn_down;             /* {n_ff, n_embd}; wtype */
    lc_tensor *post_ffw_norm;        /* [n_embd] when post_norms, else NULL */
} lc_layer_weights;

typedef struct lc_model {
    lc_model_config cfg;
    lc_device *dev;
    lc_tensor *token_embd;   /* {n_embd, n_vocab}; wtype */
    lc_tensor *output_norm;  /* [n_embd] */
    lc_tensor *output;       /* {n_embd, n_vocab}; NULL when cfg.tied_output */
    lc_layer_weights *layers;/* n_layer entries */
} lc_model;

/* Allocate every weight of `cfg` on `dev` (zeros, LC_TENSOR_FROZEN, GGUF names) without
 * filling them: a loader then sets them by name. Errors: as lc_model_config_check,
 * LC_ERR_INVALID_ARG (NULL dev), LC_ERR_NOMEM, LC_ERR_DEVICE_NOMEM. */
lc_status lc_model_new(lc_device *dev, const lc_model_config *cfg, lc_model **out);

/* lc_model_new, then fill the weights from the counter generator (lorac/rng.h) with
 * seed `seed`, stream (2 << 40) | tensor ordinal, index = element: matrices and token_embd
 * U(-sqrt(3/in), +sqrt(3/in)) (standard deviation 1/sqrt(in), in = ne[0]), biases
 * U(-0.1, 0.1), norm weights 1. Quantized wtypes are quantised from these F32 values.
 * Errors: as lc_model_new, transfer errors. */
lc_status lc_model_new_random(lc_device *dev, const lc_model_config *cfg, uint64_t seed, lc_model **out);

/* ---- loading from GGUF (core/src/model_gguf.c) ------------------------------------------------
 * Supported general.architecture values: "llama" (also Mistral), "qwen2", "gemma3". Keys read
 * (prefix "<arch>.", reference/formats.md §3 and llama.cpp src/llama-model.cpp load_hparams;
 * integers may be stored as any integer type, floats as f32 or f64):
 *   required  embedding_length, block_count, feed_forward_length, attention.head_count
 *   optional  context_length (n_ctx_train; default 0 = unknown)
 *             attention.head_count_kv (default head_count)
 *             attention.key_length (head_dim; default embedding_length / head_count);
 *             attention.value_length must equal it when present
 *             rope.dimension_count (n_rot; default head_dim)
 *             attention.layer_norm_rms_epsilon (default: the preset, 1e-5 llama, 1e-6 qwen2/gemma3)
 *             rope.freq_base (default: the preset, 10000 llama, 1e6 qwen2 and gemma3)
 *             rope.scaling.type "none" or "linear" with rope.scaling.factor f > 0:
 *               rope_scale = 1/f (gemma3: global layers only); any other type is LC_ERR_UNSUPPORTED
 *             vocab_size (default: ne[1] of token_embd.weight)
 *             gemma3 only: attention.sliding_window (default 512; 0 = none), local layers are
 *               il % 6 < 5 with rope base 10000 and scale 1; attention scale 1/sqrt(head_dim), or
 *               1/sqrt(n_embd/n_head) for the 62-layer (27B) model
 *             final_logit_softcapping / attn_logit_softcapping: absent or 0, else
 *               LC_ERR_UNSUPPORTED ("not supported yet") rather than silently wrong logits
 *   llama and qwen2 ignore attention.sliding_window, as llama.cpp does for these architectures.
 * Tensors (GGUF names, reference/formats.md §5): token_embd.weight {E, V}, output_norm.weight {E},
 * output.weight {E, V} optional (absent: tied output, logits use token_embd), per layer
 * attn_norm {E}, attn_q {E, hd*n_head}, attn_k and attn_v {E, hd*n_kv}, attn_output
 * {hd*n_head, E}, ffn_norm {E}, ffn_gate and ffn_up {E, n_ff}, ffn_down {n_ff, E}; qwen2 adds
 * attn_q.bias / attn_k.bias / attn_v.bias; gemma3 adds attn_q_norm and attn_k_norm {hd},
 * post_attention_norm and post_ffw_norm {E} (GGUF gemma3 norm weights already include the +1).
 * Matrices keep their GGUF dtype (quantized stays quantized) and are uploaded once; 1-D tensors
 * (norms, biases) are converted to F32 on the host if stored otherwise.
 */

/* Configuration of the model in an open GGUF file (keys above). On success tied_output says
 * whether output.weight is absent and cfg->wtype is the dtype of token_embd.weight when
 * lc_model_config_check accepts that as wtype, else LC_F32 (informative either way).
 * Errors (messages name the file and the key): LC_ERR_INVALID_ARG (NULL argument),
 * LC_ERR_FORMAT (general.architecture or a required key missing, a key of the wrong type, a
 * value out of range, token_embd.weight missing when vocab_size is absent),
 * LC_ERR_UNSUPPORTED (an architecture other than llama, qwen2, gemma3 -- the message lists
 * them; rope scaling other than linear; logit softcapping; value_length != key_length), and the
 * errors of lc_model_config_check. */
lc_status lc_model_config_from_gguf(const lc_gguf *f, lc_model_config *cfg);

/* Load the model of an open GGUF file onto `dev`: lc_model_config_from_gguf, then every tensor of
 * the layout above checked and uploaded once with its own dtype. Before any upload the whole file
 * is checked: every expected tensor present (the first missing one is named, with the count of
 * the others), each tensor's ne equal to the configuration's (the message names the tensor, the
 * expected and the found ne), no tensor the layout does not use, every matrix of a dtype lorac
 * supports (LC_ERR_DTYPE naming the tensor and its ggml type) that the device can multiply
 * (LC_ERR_UNSUPPORTED naming tensor, dtype and device). When `tok` is not NULL the tokenizer is
 * built too (lc_model_tokenizer_from_gguf) and its vocabulary must not exceed n_vocab.
 * On success *model (free with lc_model_free) and *tok (lc_tokenizer_free) are set; on failure
 * both are NULL and nothing stays allocated. The file may be closed afterwards.
 * Errors: as lc_model_config_from_gguf, the checks above (LC_ERR_FORMAT for missing, unexpected
 * or mis-shaped tensors), lc_model_tokenizer_from_gguf's, device errors (LC_ERR_DEVICE_NOMEM). */
lc_status lc_model_from_gguf(lc_device *dev, const lc_gguf *f, lc_model **model, lc_tokenizer **tok);

/* lc_gguf_open(path) + lc_model_from_gguf + lc_gguf_close. `tok` may be NULL.
 * Errors: lc_gguf_open's (LC_ERR_IO, LC_ERR_FORMAT naming the file) and lc_model_from_gguf's. */
lc_status lc_model_load_gguf(lc_device *dev, const char *path, lc_model **model, lc_tokenizer **tok);

/* Tokenizer of an open GGUF file from tokenizer.ggml.* (reference/formats.md §4, llama.cpp
 * llama-vocab.cpp): model "llama" builds an SPM tokenizer (lc_tokenizer_new_spm) from tokens
 * (string array, required), scores (f32 array, optional), token_type (i32 array, optional), the
 * special ids bos/eos/unknown/padding_token_id (an id outside [0, n_tokens) is ignored, as
 * llama.cpp does, and the default kept only when it is in range) and the flags add_bos_token,
 * add_eos_token, add_space_prefix (defaults of lc_tokenizer_spm_opts_default; add_bos/add_eos are
 * turned off when their token does not exist).
 * Errors: LC_ERR_INVALID_ARG (NULL argument), LC_ERR_FORMAT (tokenizer.ggml.model or tokens
 * missing, wrong key types, array lengths that differ), LC_ERR_UNSUPPORTED (model "gpt2" and any
 * other tokenizer than "llama": "not supported yet"), lc_tokenizer_new_spm's errors. */
lc_status lc_model_tokenizer_from_gguf(const lc_gguf *f, lc_tokenizer **out);

/* Free every weight and the model. NULL is a no-op. */
void lc_model_free(lc_model *m);

/* Weight matrix of layer il for module m (NULL when out of range). */
lc_tensor *lc_model_module_weight(const lc_model *m, int il, lc_module mod);

/* Every weight tensor of the model (token_embd, per layer in the order of lc_layer_weights,
 * output_norm, output), skipping absent ones. Returns the count; writes at most `max`. */
int lc_model_tensors(const lc_model *m, lc_tensor **out, int max);

/* Weight by GGUF name ("blk.3.attn_q.weight"), NULL when the model has no such tensor. */
lc_tensor *lc_model_find(const lc_model *m, const char *name);

/* Whether layer il uses the sliding window and the local rope base (see swa_pattern). */
bool lc_model_layer_is_local(const lc_model_config *cfg, int il);

/* ---- LoRA modules attached to a model ---------------------------------------------------- */

typedef struct lc_lora_config {
    int r;                  /* rank, >= 1 */
    float lora_alpha;       /* scaling = lora_alpha / r (or / sqrt(r) with use_rslora) */
    bool use_rslora;
    float dropout;          /* lora_dropout p in [0, 1) used by training graphs */
    uint32_t target_mask;   /* bit (1u << lc_module); see lc_module_mask_parse */
    uint64_t seed;          /* lora_A init and dropout masks */
} lc_lora_config;

typedef struct lc_lora_module {
    char target[64];          /* GGUF base name of the targeted weight: "blk.0.attn_q" */
    int layer;
    lc_module module;
    lc_tensor *lora_a;        /* F32 {in, r}  (PyTorch [r, in]),  name "<target>.weight.lora_a" */
    lc_tensor *lora_b;        /* F32 {r, out} (PyTorch [out, r]), name "<target>.weight.lora_b" */
    int r;
    float lora_alpha;
    float scaling;            /* lora_alpha / r or lora_alpha / sqrt(r) */
    uint32_t module_id;       /* il * LC_MOD_COUNT + module: the dropout stream and init stream */
} lc_lora_module;

typedef struct lc_lora_set {
    lc_lora_config cfg;
    int n_modules;
    lc_lora_module *modules;  /* layer-major, then module order */
    int n_layer;
    int *slot;                /* [n_layer * LC_MOD_COUNT]: index into modules or -1 */
} lc_lora_set;

/* Create one LoRA module per targeted projection of every layer, on the model's device, with
 * LC_TENSOR_PARAM tensors initialised by lc_lora_init (A ~ U(±1/sqrt(in)), B = 0) from
 * (cfg->seed, module_id). Every module carries its own r, lora_alpha and scaling, so per-module
 * overrides (PEFT rank_pattern / alpha_pattern) fit without a layout change. Errors: LC_ERR_INVALID_ARG
 * naming the field (r < 1, non-finite lora_alpha, dropout outside [0, 1), empty target_mask or
 * bits past LC_MOD_COUNT), LC_ERR_NOMEM, LC_ERR_DEVICE_NOMEM. */
lc_status lc_lora_set_new(const lc_model *m, const lc_lora_config *cfg, lc_lora_set **out);

/* Free the set and its tensors. NULL is a no-op. */
void lc_lora_set_free(lc_lora_set *s);

/* Module of layer il targeting `mod`, or NULL. */
lc_lora_module *lc_lora_set_find(const lc_lora_set *s, int il, lc_module mod);

/* Number of trainable parameters (elements of every lora_A and lora_B). */
int64_t lc_lora_set_n_params(const lc_lora_set *s);

/* ---- forward --------------------------------------------------------------------------- */

/* Record the forward pass (see the top of this header) on `g` and return the logits
 * F32 [n_vocab, n_seq*seq_len]; column s*seq_len + t is token t of sequence s.
 * ids, pos: I32 [n_seq*seq_len] (graph inputs or standalone tensors); pos are the rope
 * positions; attention is causal within each sequence. `lora` may be NULL (base model only);
 * `dropout` is the LoRA dropout p of this graph (0 for evaluation). The embedding output and every
 * layer's output (the residual stream [n_embd, n_seq*seq_len]) are marked with
 * lc_graph_checkpoint, so a graph with
 * lc_graph_set_recompute on recomputes one layer at a time in its backward pass.
 * Errors: returns NULL with the error recorded on g (lc_graph_status): LC_ERR_INVALID_ARG
 * (NULL model, n_seq or seq_len < 1, dropout outside [0, 1), a LoRA set made for another
 * model), LC_ERR_SHAPE / LC_ERR_DTYPE (ids or pos not I32 of n_seq*seq_len elements), and any
 * builder error. */
lc_tensor *lc_model_forward(lc_graph *g, const lc_model *model, const lc_lora_set *lora, lc_tensor *ids,
                            lc_tensor *pos, int n_seq, int seq_len, float dropout);

#ifdef __cplusplus
}
#endif
#endif
