/* lorac — inference: a KV cache with incremental decoding, sampling, text generation and
 * perplexity evaluation. Training does not use any of this.
 *
 * KV cache. Per layer two F32 tensors K and V of ne {head_dim * n_head_kv, n_ctx} on the model's
 * device: column p holds the key / value (after rope, for K) of the token at position p. A
 * decode step of T new tokens at positions n_past .. n_past+T-1 builds one graph:
 *   x = the model's forward for the T tokens (lorac/model.h), where in every layer
 *   k, v [hd*n_kv, T] (k after rope at the new positions) are copied into columns
 *   n_past .. n_past+T-1 of K and V (lc_cpy_into a view, lc_tensor_view) and attention reads the
 *   views of the first n_past+T columns (Tq = T < Tk = n_past+T: query i sits at position
 *   n_past+i; causal, with each layer's sliding window, GQA as in the full forward).
 * The logits are the same as those of lc_model_forward over all n_past+T tokens (up to F32
 * rounding of the different operation order). Graphs are rebuilt for every step (building and
 * planning cost far less than the products). A prompt longer than n_batch is decoded in pieces;
 * pieces whose logits are not wanted skip the last layer's attention, FFN and the output
 * projection, and LC_LOGITS_LAST selects the last hidden column (get_rows) before the output
 * projection, so a prompt costs one [n_vocab, n_embd] product, not T of them.
 *
 * Sampling (lc_sample): greedy (arg max, ties to the smaller id) at temp 0; otherwise the
 * Hugging Face transformers order: logits / temp, then top-k, then top-p (nucleus: the smallest
 * set of most probable tokens whose probability sums to at least top_p, Holtzman et al. 2020,
 * "The Curious Case of Neural Text Degeneration"), renormalised, and one draw from the counter
 * generator (lorac/rng.h) keyed by (seed, stream LC_SAMPLER_STREAM, draw index): the same seed
 * gives the same text on every device whose logits agree.
 */
#ifndef LORAC_INFER_H
#define LORAC_INFER_H

#include <stdbool.h>
#include <stdint.h>

#include "lorac/model.h"
#include "lorac/status.h"
#include "lorac/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lc_infer lc_infer;

/* Default tokens per decode graph (prompt pieces, evaluation pieces). */
#define LC_INFER_DEFAULT_BATCH 512
/* Logits buffers of one graph are kept under this many bytes: a piece that returns the logits
 * of every token holds at most max(1, LC_INFER_MAX_LOGITS_BYTES / (4 * n_vocab)) tokens. */
#define LC_INFER_MAX_LOGITS_BYTES ((size_t)256 << 20)

/* KV-cache state for `model` with the LoRA set `lora` (NULL: base model) applied in every step
 * (both must outlive the state). n_ctx: cache capacity in tokens (>= 1); n_batch: most tokens per
 * graph, 0 = LC_INFER_DEFAULT_BATCH. Device memory: 2 * n_layer * hd*n_kv * n_ctx * 4 bytes.
 * Errors: LC_ERR_INVALID_ARG (NULL model or out, n_ctx < 1, n_batch < 0, a LoRA set with another
 * layer count), LC_ERR_DEVICE_NOMEM (naming the bytes), LC_ERR_NOMEM. */
lc_status lc_infer_new(const lc_model *model, const lc_lora_set *lora, int n_ctx, int n_batch, lc_infer **out);

/* Free the state and its cache. NULL is a no-op. */
void lc_infer_free(lc_infer *s);

/* Forget every cached token (n_past = 0). The cache memory is reused as it is. */
void lc_infer_reset(lc_infer *s);

/* Tokens in the cache (the position of the next token), and the capacity. 0 for NULL. */
int lc_infer_n_past(const lc_infer *s);
int lc_infer_n_ctx(const lc_infer *s);
const lc_model *lc_infer_model(const lc_infer *s);

typedef enum lc_logits_which {
    LC_LOGITS_NONE = 0, /* only fill the cache */
    LC_LOGITS_LAST,     /* logits of the last of the n tokens: F32 [n_vocab] */
    LC_LOGITS_ALL       /* logits of every token: F32 [n_vocab, n], column i = token i */
} lc_logits_which;

/* Decode n >= 1 tokens ids[0..n) at positions n_past .. n_past+n-1, append their keys and values
 * to the cache and advance n_past by n. `logits` receives what `which` says (may be NULL only for
 * LC_LOGITS_NONE). On error the cache keeps n_past as before the call (pieces already decoded are
 * dropped).
 * Errors: LC_ERR_INVALID_ARG (NULL s, ids or logits; n < 1; which out of range; an id outside
 * [0, n_vocab), naming it), LC_ERR_STATE (n_past + n > n_ctx: "KV cache full"), graph and device
 * errors (naming the op and the device). */
lc_status lc_infer_decode(lc_infer *s, const int32_t *ids, int n, lc_logits_which which, float *logits);

/* Decode ids[0..n) as lc_infer_decode and score them: *nll_sum (double) += the sum over tokens i
 * with 0 <= labels[i] < n_vocab of -log softmax(logits_i)[labels[i]] (natural log; the loss is
 * computed on the device with the cross_entropy op, F32 per piece), *n_scored += the number of
 * such tokens. Other labels (e.g. -1) are not scored. Errors: as lc_infer_decode; NULL labels,
 * nll_sum or n_scored is LC_ERR_INVALID_ARG. */
lc_status lc_infer_score(lc_infer *s, const int32_t *ids, const int32_t *labels, int n, double *nll_sum,
                         int64_t *n_scored);

/* ---- sampling ------------------------------------------------------------------------------ */

/* Stream of the counter generator used by lc_sample. */
#define LC_SAMPLER_STREAM ((uint64_t)5 << 40)

typedef struct lc_sampler_params {
    float temp;    /* >= 0; 0 = greedy */
    float top_p;   /* in (0, 1]; 1 = off */
    int top_k;     /* >= 0; 0 = off */
    uint64_t seed;
} lc_sampler_params;

/* temp 0.8, top_p 0.95, top_k 0, seed 0. */
lc_sampler_params lc_sampler_params_default(void);

/* Pick a token from logits[0..n_vocab) (see the top of this file); `draw` indexes the random draw
 * (the generation step), so sampling is reproducible and needs no state. Probabilities are
 * computed in double. Errors: LC_ERR_INVALID_ARG (NULL pointer, n_vocab < 1, temp < 0 or not
 * finite, top_p outside (0, 1], top_k < 0), LC_ERR_NUMERIC (a NaN logit, or every logit -inf). */
lc_status lc_sample(const float *logits, int n_vocab, const lc_sampler_params *p, uint64_t draw, int32_t *out);

/* ---- generation ---------------------------------------------------------------------------- */

/* Tokens that end a generation: the tokenizer's EOS and, when the vocabulary has them as
 * CONTROL tokens, the chat end-of-turn markers "<end_of_turn>" (Gemma), "<|eot_id|>" (Llama 3),
 * "<|im_end|>" (Qwen). Writes at most max ids; returns the count. */
int lc_generate_stop_ids(const lc_tokenizer *tok, int32_t *out, int max);

/* Called with each piece of generated text as soon as it is known: `text[0..len)` are the new
 * bytes (UTF-8; a multi-byte character split over byte tokens is held back until complete),
 * `id` the token that completed them (LC_TOKEN_NULL for the final flush). Return false to stop. */
typedef bool (*lc_generate_cb)(void *user, int32_t id, const char *text, size_t len);

typedef struct lc_generate_params {
    int n_predict;             /* most tokens to generate, >= 0 */
    lc_sampler_params sampler;
    const int32_t *stop_ids;   /* NULL: lc_generate_stop_ids(tok) */
    int n_stop;
    lc_generate_cb on_text;    /* may be NULL */
    void *user;
} lc_generate_params;

typedef struct lc_generate_stats {
    int n_prompt;              /* prompt tokens decoded */
    int n_generated;           /* tokens sampled (a stop token counts, it is not printed) */
    double prefill_seconds;    /* decoding the prompt up to its last logits */
    double decode_seconds;     /* every later step (one token each) */
    bool hit_stop;             /* ended on a stop token */
    bool hit_ctx;              /* ended because the KV cache was full */
} lc_generate_stats;

/* Decode prompt[0..n_prompt) (n_prompt >= 1) after whatever the cache holds, then sample up to
 * n_predict tokens, one decode step each, stopping after a stop token, when the cache is full or
 * when on_text returns false. Text is streamed through on_text: the detokenisation
 * (show_special = false) of prompt + generated ids minus that of the prompt alone.
 * *ids (may be NULL) receives a malloc'd array of the generated ids (free()), *n_ids their count.
 * Errors: LC_ERR_INVALID_ARG (NULL s, tok or p; n_prompt < 1; n_predict < 0; bad sampler
 * params), LC_ERR_STATE (the prompt does not fit in the cache), lc_infer_decode's, LC_ERR_NOMEM. */
lc_status lc_generate(lc_infer *s, const lc_tokenizer *tok, const int32_t *prompt, int n_prompt,
                      const lc_generate_params *p, int32_t **ids, int *n_ids, lc_generate_stats *stats);

/* ---- evaluation (perplexity) ------------------------------------------------------------------ */

/* Progress: `done` of `total` tokens scored after `seconds`. Return false to stop early (the
 * result then covers the chunks finished so far). */
typedef bool (*lc_eval_progress_cb)(void *user, int64_t done, int64_t total, double seconds);

typedef struct lc_eval_params {
    int n_ctx;                 /* window length in tokens including the BOS, >= 2 */
    int32_t bos;               /* BOS id put first in every window; LC_TOKEN_NULL: none */
    lc_eval_progress_cb progress; /* may be NULL */
    void *user;
} lc_eval_params;

typedef struct lc_eval_result {
    double nll_sum;            /* sum of -log p(token) over every scored token (nats) */
    int64_t n_scored;          /* scored tokens */
    double mean_nll;           /* nll_sum / n_scored: the mean loss */
    double ppl;                /* exp(mean_nll): the perplexity */
    int n_windows;
    double seconds;
} lc_eval_result;

/* Perplexity of the token stream tokens[0..n) (tokenized WITHOUT a BOS). Windowing protocol
 * (the one tests/tools/make_reference_logits.py uses for its reference value): the stream is cut
 * into consecutive chunks of n_ctx-1 tokens (the last chunk may be shorter, down to 1 token);
 * each window is [BOS] + chunk, decoded from an empty cache, and every chunk token is scored
 * from the window prefix before it (n_ctx-1 predictions per full window; the BOS is never
 * scored). Without a BOS (bos = LC_TOKEN_NULL) windows are chunks of n_ctx tokens and the first
 * token of each is not scored. The result is the mean over all scored tokens (not a mean of
 * window means). The state's cache must hold n_ctx tokens; it is reset before every window.
 * Errors: LC_ERR_INVALID_ARG (NULL argument, n < 1, n_ctx < 2 or above lc_infer_n_ctx, bos out of
 * range, nothing to score), lc_infer_score's. */
lc_status lc_eval(lc_infer *s, const int32_t *tokens, int64_t n, const lc_eval_params *p, lc_eval_result *r);

#ifdef __cplusplus
}
#endif
#endif
