/* lorac — KV-cache decoding, sampling, generation and perplexity evaluation (see lorac/infer.h
 * for the cache layout, the decode graph, the sampling order and the evaluation protocol).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph_internal.h"
#include "lorac/infer.h"
#include "lorac/rng.h"
#include "model_internal.h"

struct lc_infer {
    const lc_model *model;
    const lc_lora_set *lora;
    lc_device *dev;
    int n_ctx, n_batch, n_past;
    lc_tensor **k, **v;   /* per layer F32 {hd*n_kv, n_ctx} */
    /* views made while building the current step's graph */
    lc_tensor **views;
    int n_views, cap_views;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- state ---------------------------------------------------------------------------------- */

void lc_infer_free(lc_infer *s) {
    if (!s) return;
    for (int i = 0; i < s->n_views; i++) lc_tensor_free(s->views[i]);
    free(s->views);
    if (s->k)
        for (int il = 0; il < s->model->cfg.n_layer; il++) {
            lc_tensor_free(s->k[il]);
            lc_tensor_free(s->v[il]);
        }
    free(s->k);
    free(s->v);
    free(s);
}

lc_status lc_infer_new(const lc_model *model, const lc_lora_set *lora, int n_ctx, int n_batch, lc_infer **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_infer_new: out is NULL");
    *out = NULL;
    if (!model) return lc_error(LC_ERR_INVALID_ARG, "lc_infer_new: model is NULL");
    if (n_ctx < 1 || n_batch < 0)
        return lc_error(LC_ERR_INVALID_ARG, "lc_infer_new: n_ctx = %d must be >= 1 and n_batch = %d >= 0", n_ctx,
                        n_batch);
    const lc_model_config *c = &model->cfg;
    if (lora && lora->n_layer != c->n_layer)
        return lc_error(LC_ERR_INVALID_ARG, "lc_infer_new: the LoRA set has %d layers, the model %d", lora->n_layer,
                        c->n_layer);
    lc_infer *s = calloc(1, sizeof *s);
    if (!s) return lc_error(LC_ERR_NOMEM, "lc_infer_new: out of host memory");
    s->model = model;
    s->lora = lora;
    s->dev = model->dev;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch ? n_batch : LC_INFER_DEFAULT_BATCH;
    s->k = calloc((size_t)c->n_layer, sizeof *s->k);
    s->v = calloc((size_t)c->n_layer, sizeof *s->v);
    if (!s->k || !s->v) {
        lc_infer_free(s);
        return lc_error(LC_ERR_NOMEM, "lc_infer_new: out of host memory");
    }
    const int64_t ne[2] = {(int64_t)c->head_dim * c->n_head_kv, n_ctx};
    for (int il = 0; il < c->n_layer; il++) {
        char name[LC_NAME_MAX];
        lc_status st;
        snprintf(name, sizeof name, "cache_k.%d", il);
        st = lc_tensor_new(s->dev, LC_F32, 2, ne, name, 0, &s->k[il]);
        if (st == LC_OK) {
            snprintf(name, sizeof name, "cache_v.%d", il);
            st = lc_tensor_new(s->dev, LC_F32, 2, ne, name, 0, &s->v[il]);
        }
        if (st != LC_OK) {
            const unsigned long long bytes = 2ull * (unsigned long long)c->n_layer * (unsigned long long)ne[0] *
                                             (unsigned long long)n_ctx * 4ull;
            lc_status st2 = lc_error(st, "lc_infer_new: KV cache of %d tokens (%llu bytes in all) on %s: %s", n_ctx,
                                     bytes, lc_device_get_info(s->dev)->spec, lc_last_error());
            lc_infer_free(s);
            return st2;
        }
    }
    *out = s;
    return LC_OK;
}

void lc_infer_reset(lc_infer *s) {
    if (s) s->n_past = 0;
}

int lc_infer_n_past(const lc_infer *s) { return s ? s->n_past : 0; }

int lc_infer_n_ctx(const lc_infer *s) { return s ? s->n_ctx : 0; }

const lc_model *lc_infer_model(const lc_infer *s) { return s ? s->model : NULL; }

/* ---- one decode step ------------------------------------------------------------------------ */

static lc_tensor *make_view(lc_infer *s, lc_graph *g, lc_tensor *base, int64_t col0, int64_t ncol) {
    if (s->n_views + 1 > s->cap_views) {
        int nc = s->cap_views ? 2 * s->cap_views : 64;
        lc_tensor **p = realloc(s->views, (size_t)nc * sizeof *p);
        if (!p) {
            lc_graph_fail_(g, LC_ERR_NOMEM, "lc_infer: out of host memory for cache views");
            return NULL;
        }
        s->views = p;
        s->cap_views = nc;
    }
    const int64_t ne[2] = {base->ne[0], ncol};
    lc_tensor *t = NULL;
    lc_status st = lc_tensor_view(base, (size_t)col0 * base->nb[1], 2, ne, &t);
    if (st != LC_OK) {
        lc_graph_fail_(g, st, "lc_infer: %s", lc_last_error());
        return NULL;
    }
    s->views[s->n_views++] = t;
    return t;
}

/* kv hook (model_internal.h): new keys/values into columns n_past.., attention over 0..n_past+T. */
static bool kv_hook(void *user, lc_graph *g, int il, lc_tensor *k, lc_tensor *v, lc_tensor **k_all,
                    lc_tensor **v_all) {
    lc_infer *s = user;
    const int64_t T = k->ne[1];
    lc_tensor *kd = make_view(s, g, s->k[il], s->n_past, T);
    lc_tensor *vd = make_view(s, g, s->v[il], s->n_past, T);
    if (!kd || !vd) return false;
    if (!lc_cpy_into(g, k, kd) || !lc_cpy_into(g, v, vd)) return false;
    *k_all = make_view(s, g, s->k[il], 0, s->n_past + T);
    *v_all = make_view(s, g, s->v[il], 0, s->n_past + T);
    return *k_all && *v_all;
}

static void drop_views(lc_infer *s) {
    for (int i = 0; i < s->n_views; i++) lc_tensor_free(s->views[i]);
    s->n_views = 0;
}

/* Decode T tokens at n_past in one graph. which: NONE, LAST (logits [V]) or ALL (logits [V, T]
 * into `logits`, or only the loss when `labels` is given and logits is NULL). */
static lc_status step(lc_infer *s, const int32_t *ids, int T, lc_logits_which which, float *logits,
                      const int32_t *labels, double *nll_sum) {
    const lc_model *m = s->model;
    const int V = m->cfg.n_vocab;
    lc_graph *g = lc_graph_new(s->dev);
    if (!g) return lc_last_status() ? lc_last_status() : LC_ERR_NOMEM;
    lc_tensor *tid = lc_graph_input(g, LC_I32, T, 1, "ids");
    lc_tensor *tpos = lc_graph_input(g, LC_I32, T, 1, "pos");
    lc_tensor *trow = which == LC_LOGITS_LAST ? lc_graph_input(g, LC_I32, 1, 1, "last") : NULL;
    lc_tensor *tlab = labels ? lc_graph_input(g, LC_I32, T, 1, "labels") : NULL;
    lc_model_kv_hook_ hook = {.fn = kv_hook, .user = s};
    lc_model_build_opts_ o = {.kv = &hook,
                              .out = which == LC_LOGITS_NONE ? LC_MODEL_OUT_NONE
                                     : which == LC_LOGITS_LAST ? LC_MODEL_OUT_ROWS
                                                               : LC_MODEL_OUT_ALL,
                              .rows = trow};
    lc_tensor *out = lc_model_build_(g, m, s->lora, tid, tpos, 1, T, 0.0f, &o);
    lc_tensor *loss = NULL;
    if (out && labels) {
        loss = lc_cross_entropy(g, out, tlab, -1);
        if (loss) {
            lc_tensor_node(loss)->fp[0] = 1.0f; /* denominator 1: the sum over scored tokens */
            lc_graph_set_output(g, loss);
        }
    }
    if (out && logits && which != LC_LOGITS_NONE) lc_graph_set_output(g, out);
    lc_status st = lc_graph_status(g);
    if (st != LC_OK) st = lc_error(st, "lc_infer_decode: building the step graph: %s", lc_graph_error(g));
    if (st == LC_OK) st = lc_graph_plan(g);
    int32_t *pos = NULL;
    if (st == LC_OK && !(pos = malloc((size_t)T * sizeof *pos)))
        st = lc_error(LC_ERR_NOMEM, "lc_infer_decode: out of host memory");
    if (st == LC_OK) {
        for (int i = 0; i < T; i++) pos[i] = s->n_past + i;
        st = lc_tensor_set(tid, ids, 0, (size_t)T * sizeof *ids);
    }
    if (st == LC_OK) st = lc_tensor_set(tpos, pos, 0, (size_t)T * sizeof *pos);
    if (st == LC_OK && trow) {
        const int32_t last = T - 1;
        st = lc_tensor_set(trow, &last, 0, sizeof last);
    }
    if (st == LC_OK && tlab) st = lc_tensor_set(tlab, labels, 0, (size_t)T * sizeof *labels);
    if (st == LC_OK) st = lc_graph_compute(g);
    if (st == LC_OK && logits && which != LC_LOGITS_NONE)
        st = lc_tensor_get_f32(out, logits, (int64_t)V * (which == LC_LOGITS_LAST ? 1 : T));
    if (st == LC_OK && loss) {
        float l = 0.0f;
        st = lc_tensor_get_f32(loss, &l, 1);
        if (st == LC_OK) *nll_sum += (double)l;
    }
    free(pos);
    lc_graph_free(g);
    drop_views(s);
    if (st == LC_OK) s->n_past += T;
    return st;
}

static lc_status check_ids(const lc_infer *s, const int32_t *ids, int n, const char *fn) {
    const int V = s->model->cfg.n_vocab;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return lc_error(LC_ERR_INVALID_ARG, "%s: token id ids[%d] = %d is outside the vocabulary [0, %d)", fn, i,
                            (int)ids[i], V);
    if (n > s->n_ctx - s->n_past)
        return lc_error(LC_ERR_STATE, "%s: KV cache full: %d cached + %d new tokens exceed n_ctx = %d", fn, s->n_past,
                        n, s->n_ctx);
    return LC_OK;
}

/* Most tokens per piece whose logits are all returned. */
static int all_logits_batch(const lc_infer *s) {
    const size_t per_token = (size_t)s->model->cfg.n_vocab * sizeof(float);
    size_t b = LC_INFER_MAX_LOGITS_BYTES / per_token;
    if (b < 1) b = 1;
    return b < (size_t)s->n_batch ? (int)b : s->n_batch;
}

lc_status lc_infer_decode(lc_infer *s, const int32_t *ids, int n, lc_logits_which which, float *logits) {
    if (!s || !ids || n < 1 || (int)which < LC_LOGITS_NONE || which > LC_LOGITS_ALL ||
        (which != LC_LOGITS_NONE && !logits))
        return lc_error(LC_ERR_INVALID_ARG, "lc_infer_decode: NULL state, ids or logits, n = %d < 1, or which = %d "
                        "out of range", n, (int)which);
    lc_status st = check_ids(s, ids, n, "lc_infer_decode");
    if (st != LC_OK) return st;
    const int n_past0 = s->n_past, V = s->model->cfg.n_vocab;
    const int piece = which == LC_LOGITS_ALL ? all_logits_batch(s) : s->n_batch;
    for (int i0 = 0; i0 < n && st == LC_OK; i0 += piece) {
        const int T = n - i0 < piece ? n - i0 : piece;
        const bool last_piece = i0 + T == n;
        if (which == LC_LOGITS_ALL)
            st = step(s, ids + i0, T, LC_LOGITS_ALL, logits + (size_t)i0 * (size_t)V, NULL, NULL);
        else
            st = step(s, ids + i0, T, last_piece ? which : LC_LOGITS_NONE, last_piece ? logits : NULL, NULL, NULL);
    }
    if (st != LC_OK) s->n_past = n_past0;
    return st;
}

lc_status lc_infer_score(lc_infer *s, const int32_t *ids, const int32_t *labels, int n, double *nll_sum,
                         int64_t *n_scored) {
    if (!s || !ids || !labels || !nll_sum || !n_scored || n < 1)
        return lc_error(LC_ERR_INVALID_ARG, "lc_infer_score: NULL argument or n = %d < 1", n);
    lc_status st = check_ids(s, ids, n, "lc_infer_score");
    if (st != LC_OK) return st;
    const int n_past0 = s->n_past, V = s->model->cfg.n_vocab, piece = all_logits_batch(s);
    double sum = 0.0;
    int64_t cnt = 0;
    for (int i = 0; i < n; i++) cnt += labels[i] >= 0 && labels[i] < V;
    for (int i0 = 0; i0 < n && st == LC_OK; i0 += piece) {
        const int T = n - i0 < piece ? n - i0 : piece;
        st = step(s, ids + i0, T, LC_LOGITS_ALL, NULL, labels + i0, &sum);
    }
    if (st != LC_OK) {
        s->n_past = n_past0;
        return st;
    }
    *nll_sum += sum;
    *n_scored += cnt;
    return LC_OK;
}

/* ---- sampling -------------------------------------------------------------------------------- */

lc_sampler_params lc_sampler_params_default(void) {
    lc_sampler_params p = {.temp = 0.8f, .top_p = 0.95f, .top_k = 0, .seed = 0};
    return p;
}

typedef struct cand {
    double w;
    int32_t id;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->w != y->w) return x->w > y->w ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Uniform double in [0, 1) with 53 random bits from two counter draws. */
static double uniform53(uint64_t seed, uint64_t draw) {
    const uint64_t a = lc_rng_u32(seed, LC_SAMPLER_STREAM, 2 * draw) >> 5;     /* 27 bits */
    const uint64_t b = lc_rng_u32(seed, LC_SAMPLER_STREAM, 2 * draw + 1) >> 6; /* 26 bits */
    return (double)(a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

lc_status lc_sample(const float *logits, int n_vocab, const lc_sampler_params *p, uint64_t draw, int32_t *out) {
    if (!logits || !p || !out || n_vocab < 1)
        return lc_error(LC_ERR_INVALID_ARG, "lc_sample: NULL argument or n_vocab = %d < 1", n_vocab);
    if (!(p->temp >= 0.0f) || !isfinite(p->temp) || !(p->top_p > 0.0f && p->top_p <= 1.0f) || p->top_k < 0)
        return lc_error(LC_ERR_INVALID_ARG, "lc_sample: temp = %g must be finite and >= 0, top_p = %g in (0, 1], "
                        "top_k = %d >= 0", (double)p->temp, (double)p->top_p, p->top_k);
    int32_t best = -1;
    for (int i = 0; i < n_vocab; i++) {
        if (isnan(logits[i])) return lc_error(LC_ERR_NUMERIC, "lc_sample: logit %d is NaN", i);
        if (logits[i] > -INFINITY && (best < 0 || logits[i] > logits[best])) best = i;
    }
    if (best < 0) return lc_error(LC_ERR_NUMERIC, "lc_sample: every logit is -inf");
    if (p->temp == 0.0f || p->top_k == 1) {
        *out = best;
        return LC_OK;
    }
    const double mx = logits[best], inv_t = 1.0 / (double)p->temp;
    double *w = malloc((size_t)n_vocab * sizeof *w);
    cand *c = malloc((size_t)n_vocab * sizeof *c);
    if (!w || !c) {
        free(w);
        free(c);
        return lc_error(LC_ERR_NOMEM, "lc_sample: out of host memory");
    }
    double total = 0.0;
    for (int i = 0; i < n_vocab; i++) total += (w[i] = exp(((double)logits[i] - mx) * inv_t));
    const bool truncate = p->top_k > 0 || p->top_p < 1.0f;
    /* Candidates: every token with weight >= thr, a prefix of the tokens sorted by weight. The
     * threshold is lowered until that prefix holds the top-k tokens and top_p of the mass, so the
     * truncation is exact while usually only a few hundred tokens are sorted. */
    static const double thresholds[] = {4.5399929762484854e-05 /* e^-10 */, 2.061153622438558e-09 /* e^-20 */,
                                        4.248354255291589e-18 /* e^-40 */, 0.0};
    int nc = 0;
    for (size_t t = truncate ? 0 : 3; t < sizeof thresholds / sizeof thresholds[0]; t++) {
        const double thr = thresholds[t];
        double mass = 0.0;
        nc = 0;
        for (int i = 0; i < n_vocab; i++)
            if (w[i] > 0.0 && w[i] >= thr) {
                c[nc].w = w[i];
                c[nc].id = i;
                nc++;
                mass += w[i];
            }
        const bool enough_k = p->top_k == 0 || nc >= p->top_k;
        const bool enough_p = p->top_k > 0 || mass >= (double)p->top_p * total;
        if ((enough_k && enough_p) || thr == 0.0) break;
    }
    int keep = nc;
    if (truncate) {
        qsort(c, (size_t)nc, sizeof *c, cand_cmp);
        if (p->top_k > 0 && keep > p->top_k) keep = p->top_k;
        double kept_mass = total; /* top-p over the whole distribution, or over the top-k */
        if (p->top_k > 0) {
            kept_mass = 0.0;
            for (int i = 0; i < keep; i++) kept_mass += c[i].w;
        }
        if (p->top_p < 1.0f) {
            double cum = 0.0;
            int j = 0;
            while (j < keep) {
                cum += c[j].w;
                j++;
                if (cum >= (double)p->top_p * kept_mass) break;
            }
            keep = j;
        }
    }
    double sum = 0.0;
    for (int i = 0; i < keep; i++) sum += c[i].w;
    const double u = uniform53(p->seed, draw) * sum;
    double cum = 0.0;
    int32_t pick = c[keep - 1].id;
    for (int i = 0; i < keep; i++) {
        cum += c[i].w;
        if (u < cum) {
            pick = c[i].id;
            break;
        }
    }
    free(w);
    free(c);
    *out = pick;
    return LC_OK;
}

/* ---- generation ------------------------------------------------------------------------------ */

int lc_generate_stop_ids(const lc_tokenizer *tok, int32_t *out, int max) {
    if (!tok) return 0;
    int n = 0;
    const int32_t eos = lc_tokenizer_eos(tok);
    if (eos != LC_TOKEN_NULL) {
        if (out && n < max) out[n] = eos;
        n++;
    }
    static const char *const markers[] = {"<end_of_turn>", "<|eot_id|>", "<|im_end|>"};
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++) {
        const int32_t id = lc_tokenizer_find(tok, markers[i], strlen(markers[i]));
        if (id == LC_TOKEN_NULL || id == eos || lc_tokenizer_token_type(tok, id) != LC_TOKEN_TYPE_CONTROL) continue;
        if (out && n < max) out[n] = id;
        n++;
    }
    return n;
}

/* Length of the longest prefix of text[0..len) that does not end inside a UTF-8 sequence. */
static size_t utf8_complete(const char *text, size_t len) {
    size_t i = len, back = 0;
    while (i > 0 && back < 4) {
        const unsigned char ch = (unsigned char)text[i - 1];
        if ((ch & 0xC0) != 0x80) { /* a lead byte or ASCII */
            const size_t need = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : (ch & 0xF8) == 0xF0 ? 4 : 1;
            return back + 1 >= need ? len : i - 1;
        }
        i--;
        back++;
    }
    return len; /* stray continuation bytes: emit them */
}

typedef struct streamer {
    const lc_tokenizer *tok;
    int32_t *all;      /* prompt then generated ids */
    size_t n_all, n_prompt;
    size_t base_len;   /* bytes of the prompt's detokenisation */
    size_t emitted;    /* bytes of the generated text already passed on */
} streamer;

/* Pass on the new complete text; final: everything. Returns false when the callback stops. */
static lc_status stream_text(streamer *sm, const lc_generate_params *p, int32_t id, bool final, bool *stop) {
    if (!p->on_text) return LC_OK;
    char *text = NULL;
    size_t len = 0;
    lc_status st = lc_detokenize(sm->tok, sm->all, sm->n_all, false, &text, &len);
    if (st != LC_OK) return st;
    size_t end = final ? len : utf8_complete(text, len);
    const size_t from = sm->base_len + sm->emitted;
    if (end > from) {
        if (!p->on_text(p->user, id, text + from, end - from)) *stop = true;
        sm->emitted = end - sm->base_len;
    }
    free(text);
    return LC_OK;
}

lc_status lc_generate(lc_infer *s, const lc_tokenizer *tok, const int32_t *prompt, int n_prompt,
                      const lc_generate_params *p, int32_t **ids, int *n_ids, lc_generate_stats *stats) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    lc_generate_stats stt;
    memset(&stt, 0, sizeof stt);
    if (stats) *stats = stt;
    if (!s || !tok || !prompt || !p || n_prompt < 1 || p->n_predict < 0 || (p->n_stop > 0 && !p->stop_ids))
        return lc_error(LC_ERR_INVALID_ARG, "lc_generate: NULL state, tokenizer, prompt or params, n_prompt = %d < 1, "
                        "or n_predict < 0", n_prompt);
    if (!(p->sampler.temp >= 0.0f) || !isfinite(p->sampler.temp) ||
        !(p->sampler.top_p > 0.0f && p->sampler.top_p <= 1.0f) || p->sampler.top_k < 0)
        return lc_error(LC_ERR_INVALID_ARG, "lc_generate: temp = %g must be finite and >= 0, top_p = %g in (0, 1], "
                        "top_k = %d >= 0", (double)p->sampler.temp, (double)p->sampler.top_p, p->sampler.top_k);
    if (n_prompt > s->n_ctx - s->n_past)
        return lc_error(LC_ERR_STATE, "lc_generate: the prompt of %d tokens does not fit in the KV cache (%d of %d "
                        "positions used)", n_prompt, s->n_past, s->n_ctx);
    int32_t stop_buf[8];
    const int32_t *stop = p->stop_ids;
    int n_stop = p->n_stop;
    if (!stop) {
        n_stop = lc_generate_stop_ids(tok, stop_buf, 8);
        stop = stop_buf;
    }
    const int V = s->model->cfg.n_vocab;
    float *logits = malloc((size_t)V * sizeof *logits);
    streamer sm = {.tok = tok, .n_prompt = (size_t)n_prompt};
    sm.all = malloc(((size_t)n_prompt + (size_t)p->n_predict + 1) * sizeof *sm.all);
    if (!logits || !sm.all) {
        free(logits);
        free(sm.all);
        return lc_error(LC_ERR_NOMEM, "lc_generate: out of host memory");
    }
    memcpy(sm.all, prompt, (size_t)n_prompt * sizeof *prompt);
    sm.n_all = (size_t)n_prompt;
    lc_status st = LC_OK;
    if (p->on_text) {
        char *text = NULL;
        st = lc_detokenize(tok, prompt, (size_t)n_prompt, false, &text, &sm.base_len);
        free(text);
    }
    double t0 = now_seconds();
    if (st == LC_OK) st = lc_infer_decode(s, prompt, n_prompt, LC_LOGITS_LAST, logits);
    stt.n_prompt = st == LC_OK ? n_prompt : 0;
    stt.prefill_seconds = now_seconds() - t0;
    t0 = now_seconds();
    bool stop_now = false;
    int32_t last = LC_TOKEN_NULL;
    for (int i = 0; i < p->n_predict && st == LC_OK && !stop_now; i++) {
        if (i > 0) {
            if (s->n_past >= s->n_ctx) {
                stt.hit_ctx = true;
                break;
            }
            st = lc_infer_decode(s, &last, 1, LC_LOGITS_LAST, logits);
            if (st != LC_OK) break;
        }
        int32_t id;
        st = lc_sample(logits, V, &p->sampler, (uint64_t)i, &id);
        if (st != LC_OK) break;
        stt.n_generated++;
        bool is_stop = false;
        for (int j = 0; j < n_stop; j++) is_stop |= stop[j] == id;
        if (is_stop) {
            stt.hit_stop = true;
            break;
        }
        sm.all[sm.n_all++] = id;
        last = id;
        st = stream_text(&sm, p, id, false, &stop_now);
    }
    if (st == LC_OK) {
        bool ignored = false;
        st = stream_text(&sm, p, LC_TOKEN_NULL, true, &ignored);
    }
    stt.decode_seconds = now_seconds() - t0;
    free(logits);
    if (stats) *stats = stt;
    if (st != LC_OK) {
        free(sm.all);
        return st;
    }
    const size_t n_gen = sm.n_all - sm.n_prompt;
    if (ids) {
        *ids = malloc((n_gen ? n_gen : 1) * sizeof **ids);
        if (!*ids) {
            free(sm.all);
            return lc_error(LC_ERR_NOMEM, "lc_generate: out of host memory");
        }
        memcpy(*ids, sm.all + sm.n_prompt, n_gen * sizeof **ids);
    }
    if (n_ids) *n_ids = (int)n_gen;
    free(sm.all);
    return LC_OK;
}

/* ---- evaluation ------------------------------------------------------------------------------- */

lc_status lc_eval(lc_infer *s, const int32_t *tokens, int64_t n, const lc_eval_params *p, lc_eval_result *r) {
    if (!s || !tokens || !p || !r || n < 1)
        return lc_error(LC_ERR_INVALID_ARG, "lc_eval: NULL argument or n = %lld < 1", (long long)n);
    memset(r, 0, sizeof *r);
    const int V = s->model->cfg.n_vocab;
    if (p->n_ctx < 2 || p->n_ctx > s->n_ctx)
        return lc_error(LC_ERR_INVALID_ARG, "lc_eval: n_ctx = %d must be in 2..%d (the KV cache size)", p->n_ctx,
                        s->n_ctx);
    if (p->bos != LC_TOKEN_NULL && (p->bos < 0 || p->bos >= V))
        return lc_error(LC_ERR_INVALID_ARG, "lc_eval: bos = %d is outside the vocabulary [0, %d)", (int)p->bos, V);
    const bool with_bos = p->bos != LC_TOKEN_NULL;
    const int64_t chunk = with_bos ? p->n_ctx - 1 : p->n_ctx; /* stream tokens per window */
    int64_t total = 0;                                          /* tokens that will be scored */
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
        const int64_t len = n - c0 < chunk ? n - c0 : chunk;
        total += with_bos ? len : len - 1;
    }
    if (total < 1) return lc_error(LC_ERR_INVALID_ARG, "lc_eval: %lld tokens leave nothing to score", (long long)n);
    int32_t *ids = malloc((size_t)p->n_ctx * sizeof *ids), *labels = malloc((size_t)p->n_ctx * sizeof *labels);
    if (!ids || !labels) {
        free(ids);
        free(labels);
        return lc_error(LC_ERR_NOMEM, "lc_eval: out of host memory");
    }
    lc_status st = LC_OK;
    const double t0 = now_seconds();
    for (int64_t c0 = 0; c0 < n && st == LC_OK; c0 += chunk) {
        const int64_t len = n - c0 < chunk ? n - c0 : chunk;
        int w = 0;
        if (with_bos) ids[w++] = p->bos;
        for (int64_t i = 0; i < len; i++) ids[w++] = tokens[c0 + i];
        for (int i = 0; i < w; i++) labels[i] = i + 1 < w ? ids[i + 1] : -1;
        if (w < 2) continue; /* a final window of one token without BOS predicts nothing */
        lc_infer_reset(s);
        st = lc_infer_score(s, ids, labels, w, &r->nll_sum, &r->n_scored);
        if (st != LC_OK) break;
        r->n_windows++;
        r->seconds = now_seconds() - t0;
        if (p->progress && !p->progress(p->user, r->n_scored, total, r->seconds)) break;
    }
    lc_infer_reset(s);
    free(ids);
    free(labels);
    r->seconds = now_seconds() - t0;
    if (st != LC_OK) return st;
    if (r->n_scored > 0) {
        r->mean_nll = r->nll_sum / (double)r->n_scored;
        r->ppl = exp(r->mean_nll);
    }
    return LC_OK;
}
