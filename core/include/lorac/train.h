/* lorac — LoRA training: the step loop over one graph built once, the learning-rate schedule,
 * gradient clipping, AdamW, and the toy task of `lorac train --toy`.
 *
 * A trainer builds, once, on the model's device:
 *   graph 1: forward (lc_model_forward) -> cross_entropy loss -> lc_graph_backward ->
 *            sum_sq of every LoRA gradient, summed into one scalar (the squared global norm);
 *   graph 2: one in-place lc_adamw node per LoRA tensor, reading graph 1's gradients.
 * Each step uploads ids / labels / positions, zeroes the gradients, sets the dropout step,
 * runs graph 1, reads back the loss and the squared norm (the only device->host traffic), then
 * sets lr, t and the clipping factor on graph 2 and runs it.
 *
 * Schedule: transformers get_cosine_schedule_with_warmup (reference/peft-lora.md §7):
 * lr(k) = lr * k / warmup for k < warmup, else lr * max(0, 0.5 (1 + cos(pi * progress))),
 * progress = (k - warmup) / (total - warmup), where k counts the optimizer steps taken before
 * this one (the first step uses k = 0, as torch's LambdaLR does).
 * Clipping: torch.nn.utils.clip_grad_norm_: norm = sqrt(sum of g^2 over every LoRA gradient),
 * gradients are multiplied by min(1, max_grad_norm / (norm + 1e-6)); grad_norm is reported
 * before clipping, as transformers' Trainer logs it.
 * AdamW: decoupled weight decay, torch.optim.AdamW (lorac/graph.h, op ADAMW).
 *
 * Later issues add data loaders, gradient accumulation, evaluation sets, checkpoints and PEFT
 * export on top of this API; the trainer is opaque so its state can grow. Saving and restoring
 * the complete state (LoRA tensors, AdamW moments, step) is lorac/checkpoint.h.
 */
#ifndef LORAC_TRAIN_H
#define LORAC_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "lorac/device.h"
#include "lorac/model.h"
#include "lorac/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lc_train_config {
    int n_seq;            /* sequences per step */
    int seq_len;          /* tokens per sequence */
    int steps;            /* total optimizer steps (the schedule's length) */
    int warmup_steps;     /* linear warmup steps, 0..steps */
    float lr;             /* peak learning rate */
    float beta1, beta2;   /* AdamW moment decays */
    float eps;            /* AdamW epsilon */
    float weight_decay;   /* decoupled weight decay */
    float max_grad_norm;  /* clip the global gradient norm to this; 0 disables clipping */
    int ignore_index;     /* labels equal to this carry no loss (-100, as PyTorch) */
    int grad_accum;       /* micro-batches of n_seq sequences per optimizer step, >= 1 (1; 0 counts as 1) */
    bool checkpointing;   /* gradient checkpointing (false): keep only the embedding and each layer's
                           * output during the forward pass and recompute the rest of a layer just
                           * before its backward nodes (lc_graph_set_recompute, lorac/graph.h; Chen et
                           * al. 2016). Same results, less activation memory, about one more forward. */
} lc_train_config;

/* Defaults: n_seq 1, seq_len 0 (caller sets it), steps 0 (caller sets it), warmup 0,
 * lr 2e-4, beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0, max_grad_norm 1,
 * ignore_index -100, grad_accum 1, checkpointing false (transformers TrainingArguments / torch AdamW defaults). LoRA dropout is the
 * LoRA set's (lc_lora_config.dropout, PEFT's lora_dropout); evaluation runs without it. */
lc_train_config lc_train_config_default(void);

/* Multiplier of the peak lr before optimizer step k (0-based) of `total`, cosine with linear
 * warmup (formula above). Returns 1 for total <= 0, and 0 for k >= total. */
float lc_lr_cosine_with_warmup(int k, int warmup, int total);

typedef struct lc_train_stats {
    int step;             /* 1-based number of the step just taken */
    float loss;           /* mean cross-entropy over counted tokens, before this step's update */
    float lr;             /* learning rate used by this step */
    float grad_norm;      /* global L2 norm of the LoRA gradients, before clipping */
    float clip_scale;     /* factor applied to the gradients (1 = not clipped) */
    int64_t n_tokens;     /* labels that carried loss in this step */
    double seconds;       /* wall time of this step (upload, compute, optimizer), seconds */
} lc_train_stats;

typedef struct lc_trainer lc_trainer;

/* Build the training graphs for `model` with the LoRA set `lora` (both must outlive the
 * trainer; the training graph uses lora->cfg.dropout) and allocate the AdamW moments (F32
 * zeros shaped like each LoRA tensor).
 * Errors: LC_ERR_INVALID_ARG naming the lc_train_config field (n_seq, seq_len < 1; steps < 1;
 * warmup_steps outside 0..steps; lr, betas, eps, weight_decay, max_grad_norm non-finite or out
 * of range), LC_ERR_UNSUPPORTED (the device lacks an op), graph and
 * device errors. */
lc_status lc_trainer_new(const lc_model *model, const lc_lora_set *lora, const lc_train_config *cfg,
                         lc_trainer **out);

/* One optimizer step on a batch. ids, labels, pos: grad_accum*n_seq*seq_len values,
 * sequence-major (entry s*seq_len + t is token t of sequence s); micro-batch m is sequences
 * m*n_seq .. (m+1)*n_seq-1. labels[n] is the target of the logits at token n (already shifted:
 * usually ids[n+1]) or ignore_index. pos NULL means 0..seq_len-1 in every sequence. Fills
 * `stats` when non-NULL.
 * Gradient accumulation (transformers Trainer with num_items_in_batch): the gradients of the
 * grad_accum micro-batches are summed into the LoRA gradients, and every micro-batch's
 * cross-entropy divides by D = the number of labels that carry loss in the WHOLE step (the
 * cross-entropy node's fp[0]), so k micro-batches of n sequences give the gradient of one batch
 * of k*n sequences, and a micro-batch whose labels are all ignore_index adds nothing and does
 * not dilute the others. The reported loss is the sum of the micro-batch losses (= the mean
 * over the step's counted labels). Dropout masks differ per micro-batch (dropout step
 * k*grad_accum + m; with grad_accum 1 this is the optimizer step k).
 * Errors: LC_ERR_INVALID_ARG (NULL ids or labels, an id outside [0, n_vocab)), LC_ERR_STATE
 * (more than cfg.steps steps), LC_ERR_NUMERIC (loss or gradient norm not finite; the LoRA
 * weights are left unchanged), device errors. */
lc_status lc_trainer_step(lc_trainer *t, const int32_t *ids, const int32_t *labels, const int32_t *pos,
                          lc_train_stats *stats);

/* Loss of the current adapter on a batch without dropout and without changing anything
 * (a forward-only graph built on first use). Arguments as lc_trainer_step; errors likewise. */
lc_status lc_trainer_eval(lc_trainer *t, const int32_t *ids, const int32_t *labels, const int32_t *pos,
                          float *loss);

/* Check a LoRA configuration against a model before training (the cheap mistakes that would
 * otherwise waste a run): target_mask empty, with bits past LC_MOD_COUNT, or selecting no
 * projection the model has (LC_ERR_INVALID_ARG "targets match no module of the model"); r < 1;
 * r larger than min(in, out) of a targeted projection (LC_ERR_INVALID_ARG naming the module,
 * its in/out sizes and the largest usable r). PEFT and lc_lora_set_new accept such a rank, but
 * the update B·A then has rank at most min(in, out), so the extra parameters only cost memory
 * and time; the trainer refuses them.
 * Errors: LC_ERR_INVALID_ARG as above or for a NULL argument. */
lc_status lc_train_check_lora(const lc_model *model, const lc_lora_config *lcfg);

/* Optimizer steps taken so far. */
int lc_trainer_steps_done(const lc_trainer *t);

/* Free the graphs and moments (not the model or the LoRA set). NULL is a no-op. */
void lc_trainer_free(lc_trainer *t);

/* ---- the toy task ------------------------------------------------------------------------ */

/* Train LoRA on a random, frozen two-layer transformer (lc_model_config_default(LC_ARCH_TOY))
 * to reproduce a fixed pseudo-random token sequence: the sequence has seq_len + 1 tokens drawn
 * from the counter generator (seed, stream 3 << 40), ids are its first seq_len tokens and
 * labels the next ones. LoRA on every projection. Same options and device: same losses. */
typedef struct lc_toy_options {
    int steps;            /* optimizer steps (200) */
    int r;                /* LoRA rank (8) */
    float lora_alpha;     /* (16): scaling 2 */
    float dropout;        /* LoRA dropout (0) */
    float lr;             /* peak learning rate (1e-2) */
    int warmup_steps;     /* (10) */
    int seq_len;          /* tokens per step (48) */
    uint64_t seed;        /* base weights, sequence and LoRA init (1234) */
} lc_toy_options;

/* The defaults in parentheses above. */
lc_toy_options lc_toy_options_default(void);

typedef struct lc_toy_result {
    float first_loss;     /* loss at step 1 (the frozen base model: lora_B = 0) */
    float final_loss;     /* lc_trainer_eval after the last step */
    float drop_percent;   /* 100 * (first_loss - final_loss) / first_loss */
    int steps;
    double seconds;       /* wall time of all steps */
    int64_t n_params;     /* trainable LoRA parameters */
} lc_toy_result;

/* Called after every step; return false to stop early. */
typedef bool (*lc_train_callback)(const lc_train_stats *stats, void *user);

/* Run the toy task on `dev`. `cb` may be NULL. Errors: LC_ERR_INVALID_ARG naming the option
 * (steps < 1, r < 1, seq_len outside 2..4096, ...), and those of lc_model_new_random,
 * lc_lora_set_new, lc_trainer_new and lc_trainer_step. */
lc_status lc_train_toy(lc_device *dev, const lc_toy_options *opt, lc_train_callback cb, void *user,
                       lc_toy_result *result);

#ifdef __cplusplus
}
#endif
#endif
