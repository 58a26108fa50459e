/* lorac tests — the tiny LoRA transformer, lorac graph and double reference (see toy_model.h). */
#include "toy_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_ops.h"

#define TOY_EPS 1e-5f
#define TOY_ROPE_BASE 10000.0f
#define TOY_IGNORE (-100)

static const char *const toy_mod_names[TOY_N_MOD] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                      "ffn_gate", "ffn_up", "ffn_down"};

toy_config toy_default_config(void) {
    toy_config c = {.vocab = 11, .n_embd = 16, .n_layer = 2, .n_head = 4, .n_kv = 2, .head_dim = 4, .n_ff = 24,
                    .seq = 5, .n_seq = 2, .r = 2, .lora_alpha = 4.0f, .tied = true, .dropout = 0.0f,
                    .seed = 2024, .step = 7, .zero_b = false};
    return c;
}

static float *rand_arr(lt_rng *r, int64_t n, float lo, float hi) {
    float *x = lt_falloc(n);
    lt_fill_uniform(r, x, n, lo, hi);
    return x;
}

static void toy_add_lora(toy_model *m, lt_rng *r, const char *name, int64_t in, int64_t out, int64_t rank) {
    toy_lora *L = &m->lora[m->n_lora];
    snprintf(L->name, sizeof L->name, "%s", name);
    L->in = in;
    L->out = out;
    L->r = rank;
    L->module_id = (uint32_t)(m->n_lora + 1);
    L->scaling = m->cfg.lora_alpha / (float)rank;
    float wb = 1.5f / sqrtf((float)in), ab = 1.0f / sqrtf((float)in);
    L->w = rand_arr(r, in * out, -wb, wb);
    L->wd = lt_dup_d(L->w, in * out);
    L->A = rand_arr(r, in * rank, -ab, 1.2f * ab);
    L->B = rand_arr(r, rank * out, -0.5f, 0.45f);
    if (m->cfg.zero_b) memset(L->B, 0, (size_t)(rank * out) * sizeof(float));
    m->n_lora++;
}

void toy_init(toy_model *m, const toy_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->T = (int64_t)cfg->seq * cfg->n_seq;
    lt_rng r;
    lt_rng_seed(&r, cfg->seed);
    int64_t E = cfg->n_embd, V = cfg->vocab, hd = cfg->head_dim;
    m->embd = rand_arr(&r, E * V, -1.0f, 1.1f);
    m->out_norm = rand_arr(&r, E, 0.8f, 1.2f);
    char name[32];
    for (int l = 0; l < cfg->n_layer; l++) {
        m->attn_norm[l] = rand_arr(&r, E, 0.8f, 1.2f);
        m->ffn_norm[l] = rand_arr(&r, E, 0.8f, 1.2f);
        m->q_norm[l] = rand_arr(&r, hd, 0.8f, 1.2f);
        const int64_t ins[TOY_N_MOD] = {E, E, E, hd * cfg->n_head, E, E, cfg->n_ff};
        const int64_t outs[TOY_N_MOD] = {hd * cfg->n_head, hd * cfg->n_kv, hd * cfg->n_kv, E, cfg->n_ff, cfg->n_ff, E};
        for (int k = 0; k < TOY_N_MOD; k++) {
            snprintf(name, sizeof name, "blk.%d.%s", l, toy_mod_names[k]);
            toy_add_lora(m, &r, name, ins[k], outs[k], cfg->r);
        }
    }
    if (!cfg->tied) toy_add_lora(m, &r, "output", E, V, cfg->r + 1);
    m->ids = lt_ialloc(m->T);
    m->labels = lt_ialloc(m->T);
    m->pos = lt_ialloc(m->T);
    for (int64_t t = 0; t < m->T; t++) {
        m->ids[t] = lt_rng_int(&r, (int32_t)V);
        m->pos[t] = (int32_t)(t % cfg->seq);
    }
    for (int64_t t = 0; t < m->T; t++)
        m->labels[t] = (t % cfg->seq == cfg->seq - 1) ? TOY_IGNORE : m->ids[t + 1];
}

void toy_free(toy_model *m) {
    free(m->embd);
    free(m->out_norm);
    for (int l = 0; l < TOY_MAX_LAYERS; l++) {
        free(m->attn_norm[l]);
        free(m->ffn_norm[l]);
        free(m->q_norm[l]);
    }
    for (int i = 0; i < m->n_lora; i++) {
        free(m->lora[i].w);
        free(m->lora[i].wd);
        free(m->lora[i].A);
        free(m->lora[i].B);
    }
    free(m->ids);
    free(m->labels);
    free(m->pos);
    memset(m, 0, sizeof *m);
}

/* ---- lorac graph ---------------------------------------------------------------------------- */

static lc_tensor *toy_lora_node(toy_model *m, lt_env *env, lc_graph *g, int idx, lc_tensor *x) {
    toy_lora *L = &m->lora[idx];
    char nm[48];
    snprintf(nm, sizeof nm, "%s.weight", L->name);
    L->tw = lt_new_f32(env, L->in, L->out, L->w, LC_TENSOR_FROZEN, nm);
    snprintf(nm, sizeof nm, "%s.lora_A", L->name);
    L->tA = lt_new_f32(env, L->in, L->r, L->A, LC_TENSOR_PARAM, nm);
    snprintf(nm, sizeof nm, "%s.lora_B", L->name);
    L->tB = lt_new_f32(env, L->r, L->out, L->B, LC_TENSOR_PARAM, nm);
    lc_lora_params p = {.scaling = L->scaling, .dropout = m->cfg.dropout, .module_id = L->module_id,
                        .seed = m->cfg.seed};
    return lc_lora(g, x, L->tw, L->tA, L->tB, &p);
}

lc_tensor *toy_build(toy_model *m, lt_env *env, lc_graph *g) {
    const toy_config *c = &m->cfg;
    int64_t E = c->n_embd, V = c->vocab, T = m->T, hd = c->head_dim;
    lc_tensor *embd = lt_new_f32(env, E, V, m->embd, LC_TENSOR_FROZEN, "token_embd");
    lc_tensor *ids = lt_new_i32(env, T, m->ids, "ids");
    lc_tensor *labels = lt_new_i32(env, T, m->labels, "labels");
    lc_tensor *pos = lt_new_i32(env, T, m->pos, "pos");
    lc_tensor *x = lc_scale(g, lc_get_rows(g, embd, ids), sqrtf((float)E));
    for (int l = 0; l < c->n_layer; l++) {
        int base = l * TOY_N_MOD;
        lc_tensor *an = lt_new_f32(env, E, 1, m->attn_norm[l], LC_TENSOR_FROZEN, "attn_norm");
        lc_tensor *fn = lt_new_f32(env, E, 1, m->ffn_norm[l], LC_TENSOR_FROZEN, "ffn_norm");
        lc_tensor *h = lc_rms_norm(g, x, an, 0, TOY_EPS);
        lc_tensor *q = toy_lora_node(m, env, g, base + 0, h);
        lc_tensor *k = toy_lora_node(m, env, g, base + 1, h);
        lc_tensor *v = toy_lora_node(m, env, g, base + 2, h);
        if (l == 1) {
            lc_tensor *qn = lt_new_f32(env, hd, 1, m->q_norm[l], LC_TENSOR_FROZEN, "q_norm");
            q = lc_rms_norm(g, q, qn, hd, TOY_EPS);
        }
        int mode = l == 0 ? LC_ROPE_NEOX : LC_ROPE_NORM;
        q = lc_rope(g, q, pos, c->n_head, (int)hd, mode, TOY_ROPE_BASE, 1.0f);
        k = lc_rope(g, k, pos, c->n_kv, (int)hd, mode, TOY_ROPE_BASE, 1.0f);
        lc_attention_params ap = {.n_head = c->n_head, .n_kv = c->n_kv, .n_seq = c->n_seq, .causal = true,
                                  .window = l == 1 ? 3 : 0, .scale = 1.0f / sqrtf((float)hd)};
        lc_tensor *a = lc_attention(g, q, k, v, &ap);
        x = lc_add(g, x, toy_lora_node(m, env, g, base + 3, a));
        lc_tensor *h2 = lc_rms_norm(g, x, fn, 0, TOY_EPS);
        lc_tensor *gate = toy_lora_node(m, env, g, base + 4, h2);
        lc_tensor *up = toy_lora_node(m, env, g, base + 5, h2);
        lc_tensor *f = l == 0 ? lc_swiglu(g, gate, up) : lc_geglu(g, gate, up);
        x = lc_add(g, x, toy_lora_node(m, env, g, base + 6, f));
    }
    lc_tensor *on = lt_new_f32(env, E, 1, m->out_norm, LC_TENSOR_FROZEN, "output_norm");
    lc_tensor *h = lc_rms_norm(g, x, on, 0, TOY_EPS);
    lc_tensor *logits = c->tied ? lc_mul_mat(g, h, embd) : toy_lora_node(m, env, g, m->n_lora - 1, h);
    m->loss = lc_cross_entropy(g, logits, labels, TOY_IGNORE);
    lc_graph_set_step(g, c->step);
    return m->loss;
}

/* ---- double reference ------------------------------------------------------------------------ */

static void toy_ref_lora(const toy_model *m, int idx, double *y, const double *x, double *const *A,
                         double *const *B) {
    const toy_lora *L = &m->lora[idx];
    double *mult = NULL;
    if (m->cfg.dropout > 0.0f) {
        mult = lt_dalloc(L->in * m->T);
        ref_lora_dropout_mult(mult, m->cfg.seed, m->cfg.step, L->module_id, m->cfg.dropout, L->in, m->T);
    }
    ref_lora(y, NULL, x, L->wd, A[idx], B[idx], mult, L->scaling, L->in, L->out, L->r, m->T);
    free(mult);
}

double toy_ref_loss(const toy_model *m, double *const *A, double *const *B) {
    const toy_config *c = &m->cfg;
    int64_t E = c->n_embd, V = c->vocab, T = m->T, hd = c->head_dim, F = c->n_ff;
    int64_t Cq = hd * c->n_head, Ck = hd * c->n_kv;
    double *embd = lt_dup_d(m->embd, E * V), *x = lt_dalloc(E * T), *h = lt_dalloc(E * T), *t1 = lt_dalloc(E * T);
    double *q = lt_dalloc(Cq * T), *k = lt_dalloc(Ck * T), *v = lt_dalloc(Ck * T), *qr = lt_dalloc(Cq * T),
           *kr = lt_dalloc(Ck * T), *a = lt_dalloc(Cq * T);
    double *gt = lt_dalloc(F * T), *up = lt_dalloc(F * T), *f = lt_dalloc(F * T), *logits = lt_dalloc(V * T);
    double *w = lt_dalloc(E > hd ? E : hd);
    ref_get_rows(x, embd, m->ids, E, T);
    double es = (double)sqrtf((float)E);
    for (int64_t i = 0; i < E * T; i++) x[i] *= es;
    for (int l = 0; l < c->n_layer; l++) {
        int base = l * TOY_N_MOD;
        lt_f2d(w, m->attn_norm[l], E);
        ref_rms_norm(h, x, w, E, T, E, TOY_EPS);
        toy_ref_lora(m, base + 0, q, h, A, B);
        toy_ref_lora(m, base + 1, k, h, A, B);
        toy_ref_lora(m, base + 2, v, h, A, B);
        if (l == 1) {
            lt_f2d(w, m->q_norm[l], hd);
            ref_rms_norm(qr, q, w, Cq, T, hd, TOY_EPS);
            memcpy(q, qr, (size_t)(Cq * T) * sizeof(double));
        }
        int mode = l == 0 ? LC_ROPE_NEOX : LC_ROPE_NORM;
        ref_rope(qr, q, m->pos, hd, c->n_head, T, (int)hd, mode, TOY_ROPE_BASE, 1.0f, false);
        ref_rope(kr, k, m->pos, hd, c->n_kv, T, (int)hd, mode, TOY_ROPE_BASE, 1.0f, false);
        ref_attn_shape as = {.hd = hd, .n_head = c->n_head, .n_kv = c->n_kv, .S = c->n_seq, .Tq = c->seq,
                             .Tk = c->seq, .causal = true, .window = l == 1 ? 3 : 0,
                             .scale = (double)(1.0f / sqrtf((float)hd))};
        ref_attention(a, NULL, qr, kr, v, &as);
        toy_ref_lora(m, base + 3, t1, a, A, B);
        for (int64_t i = 0; i < E * T; i++) x[i] += t1[i];
        lt_f2d(w, m->ffn_norm[l], E);
        ref_rms_norm(h, x, w, E, T, E, TOY_EPS);
        toy_ref_lora(m, base + 4, gt, h, A, B);
        toy_ref_lora(m, base + 5, up, h, A, B);
        for (int64_t i = 0; i < F * T; i++)
            f[i] = (l == 0 ? ref_silu(gt[i]) : ref_gelu_tanh(gt[i])) * up[i];
        toy_ref_lora(m, base + 6, t1, f, A, B);
        for (int64_t i = 0; i < E * T; i++) x[i] += t1[i];
    }
    lt_f2d(w, m->out_norm, E);
    ref_rms_norm(h, x, w, E, T, E, TOY_EPS);
    if (c->tied) ref_mul_mat(logits, h, embd, E, T, V);
    else toy_ref_lora(m, m->n_lora - 1, logits, h, A, B);
    double loss = 0.0;
    ref_cross_entropy(&loss, NULL, logits, m->labels, V, T, TOY_IGNORE, 0.0);
    free(embd); free(x); free(h); free(t1); free(q); free(k); free(v); free(qr); free(kr); free(a);
    free(gt); free(up); free(f); free(logits); free(w);
    return loss;
}
