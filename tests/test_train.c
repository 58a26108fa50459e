/* lorac tests — suite "train": the model description (lorac/model.h) and the trainer
 * (lorac/train.h) on the CPU device.
 *
 *  - the toy task lowers the loss by >= 90% within 200 steps, over several seeds and options;
 *  - the same run twice with one seed gives bit-identical losses and gradient norms;
 *  - bad model / LoRA / training configurations are clean errors that name the field;
 *  - lr schedule values worked out by hand from transformers' get_cosine_schedule_with_warmup;
 *  - lc_model_forward for every architecture preset (NORM and NEOX rope, GQA, q/k/v biases,
 *    qk_norm, post norms, embedding scale, sliding-window local layers, tied and untied output,
 *    LoRA with non-zero B) against a double-precision reference built from the plain-loop ops of
 *    tests/common/ref_ops.c;
 *  - after one optimizer step every lora_B is non-zero, with dropout on and off.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/lt_util.h"
#include "common/ref_ops.h"
#include "common/lt_suite.h"
#include "lorac/lorac.h"
#include "lorac/model.h"
#include "lorac/train.h"

static lc_device *open_cpu(void) {
    lc_device *dev = NULL;
    ck_assert_msg(lc_device_open("cpu", &dev) == LC_OK, "open cpu: %s", lc_last_error());
    return dev;
}

/* ---- toy training --------------------------------------------------------------------- */

#define MAX_STEPS 400

typedef struct loss_log {
    int n;
    float loss[MAX_STEPS], grad_norm[MAX_STEPS], lr[MAX_STEPS], clip[MAX_STEPS];
} loss_log;

static bool record(const lc_train_stats *s, void *user) {
    loss_log *log = user;
    if (log->n < MAX_STEPS) {
        log->loss[log->n] = s->loss;
        log->grad_norm[log->n] = s->grad_norm;
        log->lr[log->n] = s->lr;
        log->clip[log->n] = s->clip_scale;
        log->n++;
    }
    return true;
}

static void run_toy(const lc_toy_options *o, loss_log *log, lc_toy_result *res) {
    lc_device *dev = open_cpu();
    memset(log, 0, sizeof *log);
    lc_status st = lc_train_toy(dev, o, record, log, res);
    ck_assert_msg(st == LC_OK, "lc_train_toy: %s", lc_last_error());
    lc_device_close(dev);
}

/* ln(64) = 4.159: the untrained loss of a random model over 64 tokens is about that. */
static void check_drop(const lc_toy_options *o, const char *what) {
    loss_log log;
    lc_toy_result res;
    run_toy(o, &log, &res);
    ck_assert_int_eq(log.n, o->steps);
    ck_assert_int_eq(res.steps, o->steps);
    for (int i = 0; i < log.n; i++) {
        ck_assert_msg(isfinite(log.loss[i]) && isfinite(log.grad_norm[i]), "%s: step %d loss %g grad_norm %g", what,
                      i + 1, (double)log.loss[i], (double)log.grad_norm[i]);
        /* torch clip_grad_norm_: clip = min(1, max_norm / (norm + 1e-6)) with max_norm = 1. */
        const float want = log.grad_norm[i] + 1e-6f > 1.0f ? 1.0f / (log.grad_norm[i] + 1e-6f) : 1.0f;
        ck_assert_msg(fabsf(log.clip[i] - want) <= 1e-6f * want, "%s: step %d clip %g, want %g", what, i + 1,
                      (double)log.clip[i], (double)want);
    }
    ck_assert_msg(res.first_loss == log.loss[0], "first_loss %g != step 1 loss %g", (double)res.first_loss,
                  (double)log.loss[0]);
    ck_assert_msg(res.first_loss > 3.0f && res.first_loss < 8.0f, "%s: untrained loss %g, expected near ln(64)", what,
                  (double)res.first_loss);
    const float last = log.loss[log.n - 1];
    lt_log("[train] %s: loss %.4f -> %.4f (step %d), eval %.4f, drop %.1f%%\n", what, (double)res.first_loss,
           (double)last, log.n, (double)res.final_loss, (double)res.drop_percent);
    ck_assert_msg(last <= 0.1f * res.first_loss, "%s: loss at step %d is %g, not below 10%% of %g", what, log.n,
                  (double)last, (double)res.first_loss);
    ck_assert_msg(res.final_loss <= 0.1f * res.first_loss, "%s: final loss %g, not below 10%% of %g", what,
                  (double)res.final_loss, (double)res.first_loss);
    ck_assert_msg(fabsf(res.drop_percent - 100.0f * (res.first_loss - res.final_loss) / res.first_loss) < 1e-3f,
                  "drop_percent %g inconsistent", (double)res.drop_percent);
}

START_TEST(test_toy_loss_drops) {
    lc_toy_options o = lc_toy_options_default();
    ck_assert_int_eq(o.steps, 200);
    check_drop(&o, "defaults");
    const uint64_t seeds[] = {1, 2, 3, 77};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        o.seed = seeds[i];
        char what[64];
        snprintf(what, sizeof what, "seed %llu", (unsigned long long)seeds[i]);
        check_drop(&o, what);
    }
    o = lc_toy_options_default();
    o.dropout = 0.1f;
    check_drop(&o, "dropout 0.1");
    o = lc_toy_options_default();
    o.r = 4;
    o.lora_alpha = 8.0f;
    check_drop(&o, "r 4");
}
END_TEST

START_TEST(test_toy_deterministic) {
    lc_toy_options o = lc_toy_options_default();
    o.seed = 4242;
    o.dropout = 0.05f;
    loss_log *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    lc_toy_result ra, rb;
    run_toy(&o, a, &ra);
    run_toy(&o, b, &rb);
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        ck_assert_msg(memcmp(&a->loss[i], &b->loss[i], sizeof(float)) == 0, "step %d: loss %.9g vs %.9g", i + 1,
                      (double)a->loss[i], (double)b->loss[i]);
        ck_assert_msg(memcmp(&a->grad_norm[i], &b->grad_norm[i], sizeof(float)) == 0,
                      "step %d: grad_norm %.9g vs %.9g", i + 1, (double)a->grad_norm[i], (double)b->grad_norm[i]);
    }
    ck_assert(memcmp(&ra.final_loss, &rb.final_loss, sizeof(float)) == 0);
    /* A different seed is a different run. */
    o.seed = 4243;
    run_toy(&o, b, &rb);
    ck_assert_msg(a->loss[0] != b->loss[0], "seeds 4242 and 4243 gave the same first loss %g", (double)a->loss[0]);
    free(a);
    free(b);
}
END_TEST

/* ---- configuration errors ----------------------------------------------------------------- */

static void expect_cfg_error(const lc_model_config *c, lc_status want, const char *field) {
    lc_clear_error();
    lc_status st = lc_model_config_check(c);
    ck_assert_msg(st == want, "expected %s for %s, got %s (%s)", lc_status_str(want), field, lc_status_str(st),
                  lc_last_error());
    ck_assert_msg(strstr(lc_last_error(), field) != NULL, "message '%s' does not name '%s'", lc_last_error(), field);
}

START_TEST(test_config_errors) {
    const lc_model_config ok = lc_model_config_default(LC_ARCH_TOY);
    ck_assert_int_eq(lc_model_config_check(&ok), LC_OK);
    lc_model_config c;
    c = ok; c.n_head_kv = 3; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "n_head_kv");
    c = ok; c.n_vocab = 0; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "n_vocab");
    c = ok; c.n_layer = -1; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "n_layer");
    c = ok; c.head_dim = 0; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "head_dim");
    c = ok; c.n_rot = 3; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "n_rot");
    c = ok; c.n_rot = 18; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "n_rot");
    c = ok; c.rms_eps = 0.0f; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "rms_eps");
    c = ok; c.rms_eps = NAN; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "rms_eps");
    c = ok; c.rope_mode = 1; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "rope_mode");
    c = ok; c.rope_base = -1.0f; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "rope_base");
    c = ok; c.rope_scale = INFINITY; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "rope_scale");
    c = ok; c.sliding_window = -4; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "sliding_window");
    c = ok; c.act = (lc_activation)7; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "act");
    c = ok; c.arch = (lc_arch)99; expect_cfg_error(&c, LC_ERR_INVALID_ARG, "arch");
    c = ok; c.wtype = LC_I32; expect_cfg_error(&c, LC_ERR_DTYPE, "wtype");
    c = ok; c.wtype = LC_Q4_K; expect_cfg_error(&c, LC_ERR_DTYPE, "n_embd"); /* 64 % 256 != 0 */
    c = ok; c.wtype = LC_Q8_0; c.n_ff = 120; expect_cfg_error(&c, LC_ERR_DTYPE, "n_ff");

    /* The constructors refuse the same configs and leave *out NULL. */
    lc_device *dev = open_cpu();
    lc_model *m = (lc_model *)&c; /* non-NULL sentinel */
    c = ok;
    c.n_head_kv = 3;
    ck_assert_int_eq(lc_model_new_random(dev, &c, 1, &m), LC_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(lc_model_new_random(NULL, &ok, 1, &m), LC_ERR_INVALID_ARG);

    /* LoRA and training configs. */
    ck_assert_int_eq(lc_model_new_random(dev, &ok, 1, &m), LC_OK);
    lc_lora_config lc = {.r = 0, .lora_alpha = 16, .target_mask = LC_MOD_MASK_ALL};
    lc_lora_set *ls = NULL;
    ck_assert_int_eq(lc_lora_set_new(m, &lc, &ls), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "r = 0"));
    lc.r = 4;
    lc.dropout = 1.0f;
    ck_assert_int_eq(lc_lora_set_new(m, &lc, &ls), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "dropout"));
    lc.dropout = 0.0f;
    lc.target_mask = 0;
    ck_assert_int_eq(lc_lora_set_new(m, &lc, &ls), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "target_mask"));
    lc.target_mask = LC_MOD_MASK_ALL;
    ck_assert_int_eq(lc_lora_set_new(m, &lc, &ls), LC_OK);
    ck_assert_int_eq(ls->n_modules, 2 * LC_MOD_COUNT);

    lc_train_config tc = lc_train_config_default();
    tc.seq_len = 8;
    tc.steps = 0;
    lc_trainer *tr = NULL;
    ck_assert_int_eq(lc_trainer_new(m, ls, &tc, &tr), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "steps"));
    tc.steps = 10;
    tc.warmup_steps = 11;
    ck_assert_int_eq(lc_trainer_new(m, ls, &tc, &tr), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "warmup_steps"));
    tc.warmup_steps = 0;
    tc.lr = NAN;
    ck_assert_int_eq(lc_trainer_new(m, ls, &tc, &tr), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "lr"));
    tc.lr = 1e-3f;
    tc.steps = 1;
    ck_assert_int_eq(lc_trainer_new(m, ls, &tc, &tr), LC_OK);
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 64}, labels[8] = {2, 3, 4, 5, 6, 7, 8, -100};
    ck_assert_int_eq(lc_trainer_step(tr, ids, labels, NULL, NULL), LC_ERR_INVALID_ARG); /* id 64 >= n_vocab */
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "64"));
    ids[7] = 9;
    ck_assert_int_eq(lc_trainer_step(tr, ids, labels, NULL, NULL), LC_OK);
    ck_assert_int_eq(lc_trainer_step(tr, ids, labels, NULL, NULL), LC_ERR_STATE); /* schedule done */
    ck_assert_int_eq(lc_trainer_steps_done(tr), 1);
    lc_trainer_free(tr);
    lc_lora_set_free(ls);
    lc_model_free(m);

    /* Toy options. */
    lc_toy_options o = lc_toy_options_default();
    o.seq_len = 1;
    ck_assert_int_eq(lc_train_toy(dev, &o, NULL, NULL, NULL), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "seq_len"));
    lc_device_close(dev);
}
END_TEST

START_TEST(test_target_names) {
    uint32_t mask = 0;
    ck_assert_int_eq(lc_module_mask_parse("q_proj,v_proj", &mask), LC_OK);
    ck_assert_uint_eq(mask, (1u << LC_MOD_ATTN_Q) | (1u << LC_MOD_ATTN_V));
    ck_assert_int_eq(lc_module_mask_parse(" attn_output , ffn_down,up_proj", &mask), LC_OK);
    ck_assert_uint_eq(mask, (1u << LC_MOD_ATTN_OUTPUT) | (1u << LC_MOD_FFN_DOWN) | (1u << LC_MOD_FFN_UP));
    ck_assert_int_eq(lc_module_mask_parse("all-linear", &mask), LC_OK);
    ck_assert_uint_eq(mask, LC_MOD_MASK_ALL);
    ck_assert_int_eq(lc_module_mask_parse("q_proj,lm_head", &mask), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "lm_head"));
    ck_assert_int_eq(lc_module_mask_parse("", &mask), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_module_mask_parse("q_proj,,v_proj", &mask), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_module_mask_parse("q_proj,", &mask), LC_ERR_INVALID_ARG);
    char path[96];
    ck_assert_str_eq(lc_module_hf_path(path, sizeof path, 3, LC_MOD_FFN_GATE), "model.layers.3.mlp.gate_proj");
    ck_assert_str_eq(lc_module_hf_path(path, sizeof path, 0, LC_MOD_ATTN_OUTPUT), "model.layers.0.self_attn.o_proj");
    lc_arch a;
    ck_assert_int_eq(lc_arch_from_name("gemma3", &a), LC_OK);
    ck_assert_int_eq(a, LC_ARCH_GEMMA3);
    ck_assert_int_eq(lc_arch_from_name("gpt2", &a), LC_ERR_INVALID_ARG);
}
END_TEST

/* ---- schedule ----------------------------------------------------------------------------- */

START_TEST(test_schedule) {
    /* warmup 10 of 110: k/10 below 10, then 0.5 (1 + cos(pi (k - 10) / 100)). */
    ck_assert_float_eq(lc_lr_cosine_with_warmup(0, 10, 110), 0.0f);
    ck_assert_float_eq_tol(lc_lr_cosine_with_warmup(5, 10, 110), 0.5f, 1e-7f);
    ck_assert_float_eq_tol(lc_lr_cosine_with_warmup(10, 10, 110), 1.0f, 1e-7f);
    ck_assert_float_eq_tol(lc_lr_cosine_with_warmup(60, 10, 110), 0.5f, 1e-6f);
    ck_assert_float_eq_tol(lc_lr_cosine_with_warmup(35, 10, 110), 0.5f * (1.0f + (float)cos(M_PI * 0.25)), 1e-6f);
    ck_assert_float_eq_tol(lc_lr_cosine_with_warmup(109, 10, 110), 0.5f * (1.0f + (float)cos(M_PI * 0.99)), 1e-6f);
    ck_assert_float_eq(lc_lr_cosine_with_warmup(110, 10, 110), 0.0f);
    ck_assert_float_eq_tol(lc_lr_cosine_with_warmup(0, 0, 4), 1.0f, 1e-7f);
    ck_assert_float_eq_tol(lc_lr_cosine_with_warmup(2, 0, 4), 0.5f, 1e-6f);
    /* The trainer uses it: step s (1-based) runs with lr * mult(s - 1). */
    lc_toy_options o = lc_toy_options_default();
    o.steps = 30;
    o.warmup_steps = 4;
    o.lr = 0.02f;
    loss_log log;
    lc_toy_result res;
    run_toy(&o, &log, &res);
    for (int s = 0; s < 30; s++)
        ck_assert_float_eq_tol(log.lr[s], 0.02f * lc_lr_cosine_with_warmup(s, 4, 30), 1e-9f);
}
END_TEST

/* ---- forward against a double-precision reference ------------------------------------------ */

static double *dget(const lc_tensor *t) {
    if (!t) return NULL;
    int64_t n = lc_nelements(t);
    float *f = lt_falloc(n);
    ck_assert_msg(lc_tensor_get_f32(t, f, n) == LC_OK, "get %s: %s", t->name, lc_last_error());
    double *d = lt_dup_d(f, n);
    free(f);
    return d;
}

/* y [out, T] = x·Wᵀ (+ s·B·A·x) (+ bias), in double. */
static double *ref_proj(const lc_model *m, const lc_lora_set *ls, const double *x, int il, lc_module mod,
                        const lc_tensor *bias, int64_t T) {
    const lc_tensor *w = lc_model_module_weight(m, il, mod);
    const int64_t in = w->ne[0], out = w->ne[1];
    double *wd = dget(w), *y = lt_dalloc(out * T);
    const lc_lora_module *lm = lc_lora_set_find(ls, il, mod);
    if (lm) {
        double *A = dget(lm->lora_a), *B = dget(lm->lora_b);
        ref_lora(y, NULL, x, wd, A, B, NULL, lm->scaling, in, out, lm->r, T);
        free(A);
        free(B);
    } else {
        ref_mul_mat(y, x, wd, in, T, out);
    }
    if (bias) {
        double *b = dget(bias), *y2 = lt_dalloc(out * T);
        ref_binary(y2, y, b, false, out, T, out, 1);
        free(b);
        free(y);
        y = y2;
    }
    free(wd);
    return y;
}

static double *ref_norm(const double *x, const lc_tensor *w, int64_t n, int64_t T, int64_t g, double eps) {
    double *wd = dget(w), *y = lt_dalloc(n * T);
    ref_rms_norm(y, x, wd, n, T, g, eps);
    free(wd);
    return y;
}

static void add_into(double *x, double *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
    free(y);
}

static double *ref_forward(const lc_model *m, const lc_lora_set *ls, const int32_t *ids, const int32_t *pos,
                           int n_seq, int seq) {
    const lc_model_config *c = &m->cfg;
    const int64_t T = (int64_t)n_seq * seq, E = c->n_embd, hd = c->head_dim;
    const int64_t nq = hd * c->n_head, nkv = hd * c->n_head_kv, F = c->n_ff;
    const int n_rot = c->n_rot ? c->n_rot : c->head_dim;
    const double eps = c->rms_eps;
    double *embd = dget(m->token_embd), *x = lt_dalloc(E * T);
    ref_get_rows(x, embd, ids, E, T);
    if (c->embd_scale)
        for (int64_t i = 0; i < E * T; i++) x[i] *= (double)sqrtf((float)E);
    for (int il = 0; il < c->n_layer; il++) {
        const lc_layer_weights *L = &m->layers[il];
        const bool local = lc_model_layer_is_local(c, il);
        double *h = ref_norm(x, L->attn_norm, E, T, E, eps);
        double *q = ref_proj(m, ls, h, il, LC_MOD_ATTN_Q, L->attn_q_bias, T);
        double *k = ref_proj(m, ls, h, il, LC_MOD_ATTN_K, L->attn_k_bias, T);
        double *v = ref_proj(m, ls, h, il, LC_MOD_ATTN_V, L->attn_v_bias, T);
        free(h);
        if (c->qk_norm) {
            double *q2 = ref_norm(q, L->attn_q_norm, nq, T, hd, eps);
            double *k2 = ref_norm(k, L->attn_k_norm, nkv, T, hd, eps);
            free(q);
            free(k);
            q = q2;
            k = k2;
        }
        double *qr = lt_dalloc(nq * T), *kr = lt_dalloc(nkv * T);
        const float base = local ? c->rope_base_local : c->rope_base, fs = local ? 1.0f : c->rope_scale;
        ref_rope(qr, q, pos, hd, c->n_head, T, n_rot, c->rope_mode, base, fs, false);
        ref_rope(kr, k, pos, hd, c->n_head_kv, T, n_rot, c->rope_mode, base, fs, false);
        ref_attn_shape as = {.hd = hd, .n_head = c->n_head, .n_kv = c->n_head_kv, .S = n_seq, .Tq = seq, .Tk = seq,
                             .causal = true, .window = local ? c->sliding_window : 0,
                             .scale = c->attn_scale > 0 ? c->attn_scale : 1.0 / sqrt((double)hd)};
        double *a = lt_dalloc(nq * T);
        ref_attention(a, NULL, qr, kr, v, &as);
        double *o = ref_proj(m, ls, a, il, LC_MOD_ATTN_OUTPUT, NULL, T);
        if (c->post_norms) {
            double *o2 = ref_norm(o, L->post_attention_norm, E, T, E, eps);
            free(o);
            o = o2;
        }
        add_into(x, o, E * T);
        free(q);
        free(k);
        free(v);
        free(qr);
        free(kr);
        free(a);
        h = ref_norm(x, L->ffn_norm, E, T, E, eps);
        double *gt = ref_proj(m, ls, h, il, LC_MOD_FFN_GATE, NULL, T);
        double *up = ref_proj(m, ls, h, il, LC_MOD_FFN_UP, NULL, T);
        for (int64_t i = 0; i < F * T; i++)
            gt[i] = (c->act == LC_ACT_GELU_TANH ? ref_gelu_tanh(gt[i]) : ref_silu(gt[i])) * up[i];
        double *f = ref_proj(m, ls, gt, il, LC_MOD_FFN_DOWN, NULL, T);
        if (c->post_norms) {
            double *f2 = ref_norm(f, L->post_ffw_norm, E, T, E, eps);
            free(f);
            f = f2;
        }
        add_into(x, f, E * T);
        free(h);
        free(gt);
        free(up);
    }
    double *xn = ref_norm(x, m->output_norm, E, T, E, eps);
    double *wo = m->output ? dget(m->output) : embd;
    double *logits = lt_dalloc((int64_t)c->n_vocab * T);
    ref_mul_mat(logits, xn, wo, E, T, c->n_vocab);
    if (wo != embd) free(wo);
    free(embd);
    free(x);
    free(xn);
    return logits;
}

static void check_forward(lc_model_config c, uint32_t targets, const char *what) {
    lc_device *dev = open_cpu();
    lc_model *m = NULL;
    ck_assert_msg(lc_model_new_random(dev, &c, 99, &m) == LC_OK, "%s: %s", what, lc_last_error());
    /* Norm weights other than 1 so that a missing norm weight shows. */
    lt_rng rng;
    lt_rng_seed(&rng, 5);
    lc_tensor *ts[256];
    const int nt = lc_model_tensors(m, ts, 256);
    ck_assert_int_le(nt, 256);
    for (int i = 0; i < nt; i++) {
        const size_t ln = strlen(ts[i]->name);
        if (ln < 11 || strcmp(ts[i]->name + ln - 11, "norm.weight") != 0) continue;
        float *w = lt_falloc(lc_nelements(ts[i]));
        lt_fill_uniform(&rng, w, lc_nelements(ts[i]), 0.5f, 1.5f);
        ck_assert_int_eq(lc_tensor_set_f32(ts[i], w, lc_nelements(ts[i])), LC_OK);
        free(w);
    }
    lc_lora_set *ls = NULL;
    lc_lora_config lcfg = {.r = 3, .lora_alpha = 5.0f, .target_mask = targets, .seed = 8};
    ck_assert_int_eq(lc_lora_set_new(m, &lcfg, &ls), LC_OK);
    for (int i = 0; i < ls->n_modules; i++) { /* non-zero B so the LoRA path counts */
        lc_tensor *b = ls->modules[i].lora_b;
        float *w = lt_falloc(lc_nelements(b));
        lt_fill_uniform(&rng, w, lc_nelements(b), -0.3f, 0.4f);
        ck_assert_int_eq(lc_tensor_set_f32(b, w, lc_nelements(b)), LC_OK);
        free(w);
    }
    const int n_seq = 2, seq = 7, T = n_seq * seq;
    int32_t ids[14], pos[14];
    for (int i = 0; i < T; i++) {
        ids[i] = lt_rng_int(&rng, c.n_vocab);
        pos[i] = i % seq;
    }
    lc_graph *g = lc_graph_new(dev);
    lc_tensor *tid = lc_graph_input(g, LC_I32, T, 1, "ids"), *tpos = lc_graph_input(g, LC_I32, T, 1, "pos");
    lc_tensor *logits = lc_model_forward(g, m, ls, tid, tpos, n_seq, seq, 0.0f);
    ck_assert_msg(logits && lc_graph_status(g) == LC_OK, "%s: %s", what, lc_graph_error(g));
    ck_assert_int_eq(logits->ne[0], c.n_vocab);
    ck_assert_int_eq(logits->ne[1], T);
    lc_graph_set_output(g, logits);
    ck_assert_msg(lc_graph_plan(g) == LC_OK, "%s: %s", what, lc_last_error());
    ck_assert_int_eq(lc_tensor_set(tid, ids, 0, sizeof ids), LC_OK);
    ck_assert_int_eq(lc_tensor_set(tpos, pos, 0, sizeof pos), LC_OK);
    ck_assert_msg(lc_graph_compute(g) == LC_OK, "%s: %s", what, lc_last_error());
    const int64_t n = (int64_t)c.n_vocab * T;
    float *got = lt_falloc(n);
    ck_assert_int_eq(lc_tensor_get_f32(logits, got, n), LC_OK);
    double *ref = ref_forward(m, ls, ids, pos, n_seq, seq);
    const double err = lt_max_rel(got, ref, n), nmse = lt_nmse(got, ref, n);
    lt_log("[train] forward %s: max_rel %.3g, nmse %.3g\n", what, err, nmse);
    ck_assert_msg(err < 1e-4 && nmse < 1e-9, "%s: logits max_rel %g nmse %g against the reference", what, err, nmse);
    free(got);
    free(ref);
    lc_graph_free(g);
    lc_lora_set_free(ls);
    lc_model_free(m);
    lc_device_close(dev);
}

static lc_model_config tiny(lc_arch arch) {
    lc_model_config c = lc_model_config_default(arch);
    c.n_vocab = 13;
    c.n_embd = 16;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.head_dim = 6; /* != n_embd / n_head on purpose */
    c.n_ff = 20;
    return c;
}

START_TEST(test_forward_llama) {
    lc_model_config c = tiny(LC_ARCH_LLAMA);
    check_forward(c, LC_MOD_MASK_ALL, "llama (NORM rope, untied)");
    c.n_rot = 4; /* partial rotation */
    c.tied_output = true;
    c.sliding_window = 3; /* Mistral: every layer local */
    check_forward(c, (1u << LC_MOD_ATTN_Q) | (1u << LC_MOD_ATTN_V), "llama n_rot 4, tied, window 3, q/v LoRA");
}
END_TEST

START_TEST(test_forward_qwen2) {
    check_forward(tiny(LC_ARCH_QWEN2), LC_MOD_MASK_ALL, "qwen2 (NEOX rope, q/k/v bias)");
}
END_TEST

START_TEST(test_forward_gemma3) {
    lc_model_config c = tiny(LC_ARCH_GEMMA3);
    c.n_layer = 3;
    c.sliding_window = 3;
    c.swa_pattern = 2; /* layers 0, 2 local; 1 global */
    c.rope_scale = 0.125f;
    c.attn_scale = 0.3f;
    ck_assert(lc_model_layer_is_local(&c, 0) && !lc_model_layer_is_local(&c, 1) && lc_model_layer_is_local(&c, 2));
    check_forward(c, LC_MOD_MASK_ALL, "gemma3 (geglu, qk_norm, post norms, embd scale, swa)");
    lc_model_config g6 = lc_model_config_default(LC_ARCH_GEMMA3);
    for (int il = 0; il < 12; il++) ck_assert(lc_model_layer_is_local(&g6, il) == (il % 6 < 5));
}
END_TEST

START_TEST(test_forward_toy_q8_0) {
    lc_model_config c = lc_model_config_default(LC_ARCH_TOY);
    c.wtype = LC_Q8_0;
    check_forward(c, LC_MOD_MASK_ALL, "toy, q8_0 weights");
}
END_TEST

/* ---- every lora_B moves after one step ---------------------------------------------------- */

START_TEST(test_lora_b_nonzero_after_step) {
    const float drops[2] = {0.0f, 0.2f};
    for (int d = 0; d < 2; d++) {
        lc_device *dev = open_cpu();
        lc_model_config c = lc_model_config_default(LC_ARCH_TOY);
        lc_model *m = NULL;
        ck_assert_int_eq(lc_model_new_random(dev, &c, 3, &m), LC_OK);
        lc_lora_config lcfg = {.r = 4, .lora_alpha = 8, .dropout = drops[d], .target_mask = LC_MOD_MASK_ALL, .seed = 3};
        lc_lora_set *ls = NULL;
        ck_assert_int_eq(lc_lora_set_new(m, &lcfg, &ls), LC_OK);
        lc_train_config tc = lc_train_config_default();
        tc.seq_len = 16;
        tc.n_seq = 2;
        tc.steps = 1;
        tc.lr = 1e-3f;
        lc_trainer *tr = NULL;
        ck_assert_msg(lc_trainer_new(m, ls, &tc, &tr) == LC_OK, "%s", lc_last_error());
        int32_t ids[32], labels[32];
        for (int i = 0; i < 32; i++) {
            ids[i] = (i * 7 + 3) % 64;
            labels[i] = (i % 16 == 15) ? -100 : (i * 5 + 1) % 64;
        }
        lc_train_stats s;
        ck_assert_int_eq(lc_trainer_step(tr, ids, labels, NULL, &s), LC_OK);
        ck_assert_int_eq(s.n_tokens, 30);
        ck_assert(s.grad_norm > 0.0f);
        for (int i = 0; i < ls->n_modules; i++) {
            double *b = dget(ls->modules[i].lora_b);
            const int64_t n = lc_nelements(ls->modules[i].lora_b);
            int64_t nz = 0;
            for (int64_t k = 0; k < n; k++) nz += b[k] != 0.0;
            ck_assert_msg(nz > 0, "dropout %g: %s is still zero after one step", (double)drops[d],
                          ls->modules[i].lora_b->name);
            free(b);
        }
        float eval = 0.0f;
        ck_assert_int_eq(lc_trainer_eval(tr, ids, labels, NULL, &eval), LC_OK);
        ck_assert(isfinite(eval));
        lc_trainer_free(tr);
        lc_lora_set_free(ls);
        lc_model_free(m);
        lc_device_close(dev);
    }
}
END_TEST

static Suite *train_suite(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("toy");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_toy_loss_drops);
    tcase_add_test(tc, test_toy_deterministic);
    tcase_add_test(tc, test_schedule);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("model");
    tcase_set_timeout(tm, 300);
    tcase_add_test(tm, test_config_errors);
    tcase_add_test(tm, test_target_names);
    tcase_add_test(tm, test_forward_llama);
    tcase_add_test(tm, test_forward_qwen2);
    tcase_add_test(tm, test_forward_gemma3);
    tcase_add_test(tm, test_forward_toy_q8_0);
    tcase_add_test(tm, test_lora_b_nonzero_after_step);
    suite_add_tcase(s, tm);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(train_suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
