/* lorac — the LoRA training step: graphs built once, schedule, clipping, AdamW; the toy task
 * (see lorac/train.h for the formulas and their sources).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lorac/graph.h"
#include "lorac/rng.h"
#include "lorac/train.h"
#include "train_internal.h"


lc_train_config lc_train_config_default(void) {
    lc_train_config c = {.n_seq = 1, .seq_len = 0, .steps = 0, .warmup_steps = 0, .lr = 2e-4f,
                         .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f,
                         .max_grad_norm = 1.0f, .ignore_index = -100, .grad_accum = 1};
    return c;
}

float lc_lr_cosine_with_warmup(int k, int warmup, int total) {
    if (total <= 0) return 1.0f;
    if (k >= total) return 0.0f;
    if (k < warmup) return (float)k / (float)(warmup > 1 ? warmup : 1);
    const double progress = (double)(k - warmup) / (double)(total - warmup > 1 ? total - warmup : 1);
    const double num_cycles = 0.5;
    const double mult = 0.5 * (1.0 + cos(3.14159265358979323846 * 2.0 * num_cycles * progress));
    return (float)(mult > 0.0 ? mult : 0.0);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define TCFG_FAIL(...) lc_error(LC_ERR_INVALID_ARG, "lc_train_config: " __VA_ARGS__)

static lc_status check_config(const lc_train_config *c) {
    if (c->n_seq < 1) return TCFG_FAIL("n_seq = %d must be >= 1", c->n_seq);
    if (c->seq_len < 1) return TCFG_FAIL("seq_len = %d must be >= 1", c->seq_len);
    if ((int64_t)c->n_seq * c->seq_len > (1 << 24))
        return TCFG_FAIL("n_seq * seq_len = %lld tokens per step exceeds %d", (long long)c->n_seq * c->seq_len,
                         1 << 24);
    if (c->steps < 1) return TCFG_FAIL("steps = %d must be >= 1", c->steps);
    if (c->warmup_steps < 0 || c->warmup_steps > c->steps)
        return TCFG_FAIL("warmup_steps = %d must be in 0..steps = %d", c->warmup_steps, c->steps);
    if (!isfinite(c->lr) || c->lr < 0.0f) return TCFG_FAIL("lr = %g must be finite and >= 0", (double)c->lr);
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f)) return TCFG_FAIL("beta1 = %g must be in [0, 1)", (double)c->beta1);
    if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f)) return TCFG_FAIL("beta2 = %g must be in [0, 1)", (double)c->beta2);
    if (!isfinite(c->eps) || c->eps <= 0.0f) return TCFG_FAIL("eps = %g must be finite and > 0", (double)c->eps);
    if (!isfinite(c->weight_decay) || c->weight_decay < 0.0f)
        return TCFG_FAIL("weight_decay = %g must be finite and >= 0", (double)c->weight_decay);
    if (c->grad_accum < 0 || c->grad_accum > (1 << 20))
        return TCFG_FAIL("grad_accum = %d must be in 1..%d (0 counts as 1)", c->grad_accum, 1 << 20);
    if ((int64_t)c->n_seq * c->seq_len * (c->grad_accum > 0 ? c->grad_accum : 1) > ((int64_t)1 << 31) - 1)
        return TCFG_FAIL("grad_accum * n_seq * seq_len = %lld tokens per step is too many",
                         (long long)c->n_seq * c->seq_len * c->grad_accum);
    if (!isfinite(c->max_grad_norm) || c->max_grad_norm < 0.0f)
        return TCFG_FAIL("max_grad_norm = %g must be finite and >= 0 (0 = no clipping)", (double)c->max_grad_norm);
    return LC_OK;
}

void lc_trainer_free(lc_trainer *t) {
    if (!t) return;
    lc_graph_free(t->g_eval);
    lc_graph_free(t->g_opt);
    lc_graph_free(t->g);
    for (int i = 0; i < t->n_params; i++) {
        lc_tensor_free(t->m[i]);
        lc_tensor_free(t->v[i]);
    }
    free(t->params);
    free(t->m);
    free(t->v);
    free(t->pos_default);
    free(t);
}

/* Graph status as the function's error, with `what` in front. */
static lc_status graph_failed(lc_graph *g, const char *what) {
    return lc_error(lc_graph_status(g), "%s: %s", what, lc_graph_error(g));
}

/* Forward + loss on a fresh graph with its own inputs. */
static lc_status build_forward(lc_trainer *t, lc_graph *g, float dropout, lc_tensor **ids, lc_tensor **labels,
                               lc_tensor **pos, lc_tensor **loss) {
    *ids = lc_graph_input(g, LC_I32, t->n_tok, 1, "ids");
    *labels = lc_graph_input(g, LC_I32, t->n_tok, 1, "labels");
    *pos = lc_graph_input(g, LC_I32, t->n_tok, 1, "pos");
    lc_tensor *logits = (*ids && *labels && *pos)
                            ? lc_model_forward(g, t->model, t->lora, *ids, *pos, t->cfg.n_seq, t->cfg.seq_len, dropout)
                            : NULL;
    *loss = lc_cross_entropy(g, logits, *labels, t->cfg.ignore_index);
    if (lc_graph_status(g) != LC_OK || !*loss) return graph_failed(g, "lc_trainer: building the forward pass");
    lc_graph_set_output(g, *loss);
    return LC_OK;
}

lc_status lc_trainer_new(const lc_model *model, const lc_lora_set *lora, const lc_train_config *cfg,
                         lc_trainer **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_trainer_new: out is NULL");
    *out = NULL;
    if (!model || !lora || !cfg) return lc_error(LC_ERR_INVALID_ARG, "lc_trainer_new: model, lora or config is NULL");
    lc_status st = check_config(cfg);
    if (st != LC_OK) return st;
    lc_trainer *t = calloc(1, sizeof *t);
    if (!t) return lc_error(LC_ERR_NOMEM, "lc_trainer_new: out of host memory");
    t->model = model;
    t->lora = lora;
    t->cfg = *cfg;
    if (t->cfg.grad_accum < 1) t->cfg.grad_accum = 1;
    t->dev = model->dev;
    t->n_tok = (int64_t)cfg->n_seq * cfg->seq_len;
    t->pos_default = malloc((size_t)t->n_tok * sizeof *t->pos_default);
    const int cap = 2 * lora->n_modules;
    t->params = calloc((size_t)(cap > 0 ? cap : 1), sizeof *t->params);
    t->m = calloc((size_t)(cap > 0 ? cap : 1), sizeof *t->m);
    t->v = calloc((size_t)(cap > 0 ? cap : 1), sizeof *t->v);
    t->g = lc_graph_new(t->dev);
    t->g_opt = lc_graph_new(t->dev);
    if (t->g) lc_graph_set_recompute(t->g, cfg->checkpointing);
    if (!t->pos_default || !t->params || !t->m || !t->v || !t->g || !t->g_opt) {
        lc_trainer_free(t);
        return lc_error(LC_ERR_NOMEM, "lc_trainer_new: out of host memory");
    }
    for (int64_t i = 0; i < t->n_tok; i++) t->pos_default[i] = (int32_t)(i % cfg->seq_len);

    /* Graph 1: forward, loss, backward, squared global gradient norm. */
    if ((st = build_forward(t, t->g, lora->cfg.dropout, &t->ids, &t->labels, &t->pos, &t->loss)) != LC_OK) goto fail;
    if ((st = lc_graph_backward(t->g, t->loss, NULL)) != LC_OK) goto fail;
    t->n_params = lc_graph_params(t->g, t->params, cap);
    if (t->n_params > cap) {
        st = lc_error(LC_ERR_STATE, "lc_trainer_new: the graph has %d parameters, the LoRA set %d tensors", t->n_params,
                      cap);
        t->n_params = 0;
        goto fail;
    }
    for (int i = 0; i < t->n_params; i++) {
        lc_tensor *s = lc_sum_sq(t->g, t->params[i]->grad);
        t->norm2 = t->norm2 ? lc_add(t->g, t->norm2, s) : s;
    }
    if (lc_graph_status(t->g) != LC_OK || !t->norm2) {
        st = lc_graph_status(t->g) != LC_OK ? graph_failed(t->g, "lc_trainer_new: gradient norm")
                                            : lc_error(LC_ERR_STATE, "lc_trainer_new: no LoRA gradient");
        goto fail;
    }
    lc_graph_set_output(t->g, t->norm2);
    if ((st = lc_graph_plan(t->g)) != LC_OK) goto fail;

    /* Graph 2: AdamW per LoRA tensor, in place, reading graph 1's gradients. */
    const lc_adamw_params ap = {.lr = cfg->lr, .beta1 = cfg->beta1, .beta2 = cfg->beta2, .eps = cfg->eps,
                                .weight_decay = cfg->weight_decay};
    for (int i = 0; i < t->n_params; i++) {
        lc_tensor *p = t->params[i];
        char name[LC_NAME_MAX];
        size_t len = strlen(p->name);
        if (len > LC_NAME_MAX - 8) len = LC_NAME_MAX - 8;
        memcpy(name, p->name, len);
        memcpy(name + len, ".adam_m", 8);
        if ((st = lc_tensor_new(t->dev, LC_F32, 2, p->ne, name, 0, &t->m[i])) != LC_OK) goto fail;
        name[len + 6] = 'v';
        if ((st = lc_tensor_new(t->dev, LC_F32, 2, p->ne, name, 0, &t->v[i])) != LC_OK) goto fail;
        lc_adamw(t->g_opt, p, p->grad, t->m[i], t->v[i], &ap);
    }
    if (lc_graph_status(t->g_opt) != LC_OK) {
        st = graph_failed(t->g_opt, "lc_trainer_new: optimizer graph");
        goto fail;
    }
    if ((st = lc_graph_plan(t->g_opt)) != LC_OK) goto fail;
    *out = t;
    return LC_OK;
fail:
    lc_trainer_free(t);
    return st;
}

/* Check ids and upload ids, labels and positions to the graph inputs. */
static lc_status upload_batch(lc_trainer *t, lc_tensor *ids, lc_tensor *labels, lc_tensor *pos, const int32_t *h_ids,
                              const int32_t *h_labels, const int32_t *h_pos, int64_t *n_counted) {
    if (!h_ids || !h_labels) return lc_error(LC_ERR_INVALID_ARG, "lc_trainer: ids or labels is NULL");
    const int V = t->model->cfg.n_vocab;
    int64_t counted = 0;
    for (int64_t i = 0; i < t->n_tok; i++) {
        if (h_ids[i] < 0 || h_ids[i] >= V)
            return lc_error(LC_ERR_INVALID_ARG, "lc_trainer: token id %d at position %lld is outside the vocabulary "
                            "[0, %d)", (int)h_ids[i], (long long)i, V);
        if (h_labels[i] != t->cfg.ignore_index && h_labels[i] >= 0 && h_labels[i] < V) counted++;
    }
    if (n_counted) *n_counted = counted;
    const size_t bytes = (size_t)t->n_tok * sizeof(int32_t);
    lc_status st = lc_tensor_set(ids, h_ids, 0, bytes);
    if (st == LC_OK) st = lc_tensor_set(labels, h_labels, 0, bytes);
    if (st == LC_OK) st = lc_tensor_set(pos, h_pos ? h_pos : t->pos_default, 0, bytes);
    return st;
}

lc_status lc_trainer_step(lc_trainer *t, const int32_t *ids, const int32_t *labels, const int32_t *pos,
                          lc_train_stats *stats) {
    if (!t) return lc_error(LC_ERR_INVALID_ARG, "lc_trainer_step: trainer is NULL");
    if (t->k >= t->cfg.steps)
        return lc_error(LC_ERR_STATE, "lc_trainer_step: all %d steps of the schedule are done", t->cfg.steps);
    const double t0 = now_seconds();
    if (!ids || !labels) return lc_error(LC_ERR_INVALID_ARG, "lc_trainer_step: ids or labels is NULL");
    const int n_micro = t->cfg.grad_accum;
    /* The loss denominator of every micro-batch: the labels that carry loss in the whole step. */
    const int V = t->model->cfg.n_vocab;
    int64_t counted = 0;
    for (int64_t i = 0; i < t->n_tok * n_micro; i++)
        if (labels[i] != t->cfg.ignore_index && labels[i] >= 0 && labels[i] < V) counted++;
    lc_node *ce = lc_tensor_node(t->loss);
    if (!ce) return lc_error(LC_ERR_STATE, "lc_trainer_step: the loss tensor has no cross_entropy node");
    ce->fp[0] = n_micro > 1 ? (float)counted : 0.0f;
    lc_status st = lc_graph_zero_grad(t->g);
    if (st != LC_OK) return st;
    float loss_sum = 0.0f;
    for (int m = 0; m < n_micro; m++) {
        const int64_t off = (int64_t)m * t->n_tok;
        st = upload_batch(t, t->ids, t->labels, t->pos, ids + off, labels + off, pos ? pos + off : NULL, NULL);
        if (st != LC_OK) return st;
        lc_graph_set_step(t->g, (uint64_t)t->k * (uint64_t)n_micro + (uint64_t)m);
        if ((st = lc_graph_compute(t->g)) != LC_OK) return st;
        float lm = 0.0f;
        if ((st = lc_tensor_get(t->loss, &lm, 0, sizeof lm)) != LC_OK) return st;
        loss_sum += lm;
    }
    /* The squared norm computed by the last micro-batch's graph sees the accumulated gradients. */
    const float loss = loss_sum;
    float norm2 = 0.0f;
    if ((st = lc_tensor_get(t->norm2, &norm2, 0, sizeof norm2)) != LC_OK) return st;
    const float norm = sqrtf(norm2);
    if (!isfinite(loss) || !isfinite(norm))
        return lc_error(LC_ERR_NUMERIC, "lc_trainer_step: step %d: loss = %g, gradient norm = %g; the LoRA weights are "
                        "left unchanged (lower the learning rate?)", t->k + 1, (double)loss, (double)norm);
    /* torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1. */
    float clip = 1.0f;
    if (t->cfg.max_grad_norm > 0.0f) {
        const float coef = t->cfg.max_grad_norm / (norm + 1e-6f);
        if (coef < 1.0f) clip = coef;
    }
    const float lr = t->cfg.lr * lc_lr_cosine_with_warmup(t->k, t->cfg.warmup_steps, t->cfg.steps);
    lc_graph_set_adamw(t->g_opt, lr, t->k + 1, clip);
    if ((st = lc_graph_compute(t->g_opt)) != LC_OK) return st;
    t->k++;
    if (stats) {
        stats->step = t->k;
        stats->loss = loss;
        stats->lr = lr;
        stats->grad_norm = norm;
        stats->clip_scale = clip;
        stats->n_tokens = counted;
        stats->seconds = now_seconds() - t0;
    }
    return LC_OK;
}

lc_status lc_trainer_eval(lc_trainer *t, const int32_t *ids, const int32_t *labels, const int32_t *pos,
                          float *loss) {
    if (!t || !loss) return lc_error(LC_ERR_INVALID_ARG, "lc_trainer_eval: trainer or loss is NULL");
    lc_status st;
    if (!t->g_eval) {
        t->g_eval = lc_graph_new(t->dev);
        if (!t->g_eval) return lc_error(LC_ERR_NOMEM, "lc_trainer_eval: out of host memory");
        st = build_forward(t, t->g_eval, 0.0f, &t->e_ids, &t->e_labels, &t->e_pos, &t->e_loss);
        if (st == LC_OK) st = lc_graph_plan(t->g_eval);
        if (st != LC_OK) {
            lc_graph_free(t->g_eval);
            t->g_eval = NULL;
            return st;
        }
    }
    if ((st = upload_batch(t, t->e_ids, t->e_labels, t->e_pos, ids, labels, pos, NULL)) != LC_OK) return st;
    if ((st = lc_graph_compute(t->g_eval)) != LC_OK) return st;
    return lc_tensor_get(t->e_loss, loss, 0, sizeof *loss);
}

lc_status lc_train_check_lora(const lc_model *model, const lc_lora_config *lcfg) {
    if (!model || !lcfg) return lc_error(LC_ERR_INVALID_ARG, "lc_train_check_lora: model or LoRA config is NULL");
    if (lcfg->r < 1) return lc_error(LC_ERR_INVALID_ARG, "lc_lora_config: r = %d must be >= 1", lcfg->r);
    if (lcfg->target_mask == 0 || (lcfg->target_mask & ~LC_MOD_MASK_ALL) != 0)
        return lc_error(LC_ERR_INVALID_ARG, "lc_lora_config: target_mask 0x%x %s", (unsigned)lcfg->target_mask,
                        lcfg->target_mask == 0 ? "is empty: the targets match no module of the model"
                                               : "has bits past the last projection");
    int n_found = 0;
    for (int il = 0; il < model->cfg.n_layer; il++) {
        for (int m = 0; m < LC_MOD_COUNT; m++) {
            if (!(lcfg->target_mask & (1u << m))) continue;
            const lc_tensor *w = lc_model_module_weight(model, il, (lc_module)m);
            if (!w) continue;
            n_found++;
            const int64_t in = w->ne[0], out = w->ne[1], lim = in < out ? in : out;
            if (lcfg->r > lim)
                return lc_error(LC_ERR_INVALID_ARG, "LoRA rank r = %d is larger than min(in, out) = %lld of layer %d's "
                                "%s (in %lld, out %lld): B·A cannot have a rank above %lld; use r <= %lld or drop "
                                "that target", lcfg->r, (long long)lim, il, lc_module_hf_name((lc_module)m),
                                (long long)in, (long long)out, (long long)lim, (long long)lim);
        }
    }
    if (n_found == 0)
        return lc_error(LC_ERR_INVALID_ARG, "LoRA targets (mask 0x%x) match no module of the %s model",
                        (unsigned)lcfg->target_mask, lc_arch_name(model->cfg.arch));
    return LC_OK;
}

int lc_trainer_steps_done(const lc_trainer *t) { return t ? t->k : 0; }

/* ---- the toy task ------------------------------------------------------------------------- */

lc_toy_options lc_toy_options_default(void) {
    lc_toy_options o = {.steps = 200, .r = 8, .lora_alpha = 16.0f, .dropout = 0.0f, .lr = 1e-2f,
                        .warmup_steps = 10, .seq_len = 48, .seed = 1234};
    return o;
}

lc_status lc_train_toy(lc_device *dev, const lc_toy_options *opt, lc_train_callback cb, void *user,
                       lc_toy_result *result) {
    if (!dev || !opt) return lc_error(LC_ERR_INVALID_ARG, "lc_train_toy: device or options is NULL");
    if (opt->steps < 1) return lc_error(LC_ERR_INVALID_ARG, "lc_train_toy: steps = %d must be >= 1", opt->steps);
    if (opt->seq_len < 2 || opt->seq_len > 4096)
        return lc_error(LC_ERR_INVALID_ARG, "lc_train_toy: seq_len = %d must be in 2..4096", opt->seq_len);
    if (opt->warmup_steps < 0 || opt->warmup_steps > opt->steps)
        return lc_error(LC_ERR_INVALID_ARG, "lc_train_toy: warmup_steps = %d must be in 0..steps = %d",
                        opt->warmup_steps, opt->steps);

    const lc_model_config mcfg = lc_model_config_default(LC_ARCH_TOY);
    lc_model *model = NULL;
    lc_lora_set *lora = NULL;
    lc_trainer *tr = NULL;
    int32_t *ids = NULL, *labels = NULL;
    lc_status st = lc_model_new_random(dev, &mcfg, opt->seed, &model);
    if (st != LC_OK) return st;

    const lc_lora_config lcfg = {.r = opt->r, .lora_alpha = opt->lora_alpha, .use_rslora = false,
                                 .dropout = opt->dropout, .target_mask = LC_MOD_MASK_ALL, .seed = opt->seed};
    if ((st = lc_lora_set_new(model, &lcfg, &lora)) != LC_OK) goto done;

    lc_train_config tcfg = lc_train_config_default();
    tcfg.seq_len = opt->seq_len;
    tcfg.steps = opt->steps;
    tcfg.warmup_steps = opt->warmup_steps;
    tcfg.lr = opt->lr;
    if ((st = lc_trainer_new(model, lora, &tcfg, &tr)) != LC_OK) goto done;

    ids = malloc((size_t)opt->seq_len * sizeof *ids);
    labels = malloc((size_t)opt->seq_len * sizeof *labels);
    if (!ids || !labels) {
        st = lc_error(LC_ERR_NOMEM, "lc_train_toy: out of host memory");
        goto done;
    }
    /* The fixed sequence: seq_len + 1 tokens; ids are the first seq_len, labels the next. */
    for (int i = 0; i <= opt->seq_len; i++) {
        const int32_t tok = (int32_t)(lc_rng_u32(opt->seed, 3ull << 40, (uint64_t)i) % (uint32_t)mcfg.n_vocab);
        if (i < opt->seq_len) ids[i] = tok;
        if (i > 0) labels[i - 1] = tok;
    }

    lc_toy_result res;
    memset(&res, 0, sizeof res);
    res.n_params = lc_lora_set_n_params(lora);
    for (int s = 0; s < opt->steps; s++) {
        lc_train_stats stats;
        if ((st = lc_trainer_step(tr, ids, labels, NULL, &stats)) != LC_OK) goto done;
        if (s == 0) res.first_loss = stats.loss;
        res.steps = stats.step;
        res.seconds += stats.seconds;
        if (cb && !cb(&stats, user)) break;
    }
    if ((st = lc_trainer_eval(tr, ids, labels, NULL, &res.final_loss)) != LC_OK) goto done;
    res.drop_percent = res.first_loss > 0.0f ? 100.0f * (res.first_loss - res.final_loss) / res.first_loss : 0.0f;
    if (result) *result = res;
done:
    free(ids);
    free(labels);
    lc_trainer_free(tr);
    lc_lora_set_free(lora);
    lc_model_free(model);
    return st;
}
