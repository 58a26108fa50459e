/* lorac — transformer description, random initialisation, LoRA module set and the forward graph
 * (see lorac/model.h for the architecture, the tensor names and the formulas' sources).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"
#include "lorac/lora.h"
#include "lorac/model.h"
#include "lorac/rng.h"
#include "model_internal.h"

/* ---- names -------------------------------------------------------------------------------- */

static const char *const arch_names[LC_ARCH_COUNT] = {"llama", "qwen2", "gemma3", "toy"};

const char *lc_arch_name(lc_arch arch) {
    return ((int)arch >= 0 && arch < LC_ARCH_COUNT) ? arch_names[arch] : "unknown";
}

lc_status lc_arch_from_name(const char *name, lc_arch *out) {
    if (!name || !out) return lc_error(LC_ERR_INVALID_ARG, "lc_arch_from_name: name or out is NULL");
    for (int a = 0; a < LC_ARCH_COUNT; a++)
        if (strcmp(name, arch_names[a]) == 0) {
            *out = (lc_arch)a;
            return LC_OK;
        }
    return lc_error(LC_ERR_INVALID_ARG, "unknown architecture '%s' (known: llama, qwen2, gemma3, toy)", name);
}

static const char *const mod_gguf[LC_MOD_COUNT] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                    "ffn_gate", "ffn_up", "ffn_down"};
static const char *const mod_hf[LC_MOD_COUNT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                  "gate_proj", "up_proj", "down_proj"};

const char *lc_module_gguf_name(lc_module m) {
    return ((int)m >= 0 && m < LC_MOD_COUNT) ? mod_gguf[m] : "unknown";
}

const char *lc_module_hf_name(lc_module m) {
    return ((int)m >= 0 && m < LC_MOD_COUNT) ? mod_hf[m] : "unknown";
}

char *lc_module_hf_path(char *dst, size_t cap, int il, lc_module m) {
    if (!dst || cap == 0) return dst;
    const char *block = m <= LC_MOD_ATTN_OUTPUT ? "self_attn" : "mlp";
    snprintf(dst, cap, "model.layers.%d.%s.%s", il, block, lc_module_hf_name(m));
    return dst;
}

lc_status lc_module_mask_parse(const char *list, uint32_t *mask) {
    if (!list || !mask) return lc_error(LC_ERR_INVALID_ARG, "lc_module_mask_parse: list or mask is NULL");
    uint32_t out = 0;
    const char *p = list;
    for (;;) {
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *b = p, *end = e; /* trim blanks */
        while (b < end && (*b == ' ' || *b == '\t')) b++;
        while (end > b && (end[-1] == ' ' || end[-1] == '\t')) end--;
        const size_t len = (size_t)(end - b);
        if (len == 0)
            return lc_error(LC_ERR_INVALID_ARG,
                            "LoRA target list '%s' is empty or has an empty entry; name at least one of q_proj, "
                            "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or all", list);
        bool found = (len == 3 && strncmp(b, "all", 3) == 0) || (len == 10 && strncmp(b, "all-linear", 10) == 0);
        if (found) out |= LC_MOD_MASK_ALL;
        for (int m = 0; m < LC_MOD_COUNT && !found; m++) {
            if ((strlen(mod_hf[m]) == len && strncmp(b, mod_hf[m], len) == 0) ||
                (strlen(mod_gguf[m]) == len && strncmp(b, mod_gguf[m], len) == 0)) {
                out |= 1u << m;
                found = true;
            }
        }
        if (!found)
            return lc_error(LC_ERR_INVALID_ARG,
                            "unknown LoRA target module '%.*s' in '%s'; use a comma-separated list of q_proj, "
                            "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj (or the GGUF names attn_q, "
                            "attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down), or all",
                            (int)len, b, list);
        if (!*e) break;
        p = e + 1;
    }
    *mask = out;
    return LC_OK;
}

/* ---- configuration ------------------------------------------------------------------------ */

lc_model_config lc_model_config_default(lc_arch arch) {
    lc_model_config c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.rms_eps = 1e-5f;
    c.rope_mode = LC_ROPE_NORM;
    c.rope_base = 10000.0f;
    c.rope_scale = 1.0f;
    c.rope_base_local = 10000.0f;
    c.act = LC_ACT_SILU;
    c.wtype = LC_F32;
    switch (arch) {
    case LC_ARCH_LLAMA:
        c.rms_eps = 1e-5f;
        break;
    case LC_ARCH_QWEN2:
        c.rms_eps = 1e-6f;
        c.rope_mode = LC_ROPE_NEOX;
        c.rope_base = 1000000.0f;
        c.qkv_bias = true;
        break;
    case LC_ARCH_GEMMA3:
        c.rms_eps = 1e-6f;
        c.rope_mode = LC_ROPE_NEOX;
        c.rope_base = 1000000.0f;
        c.rope_base_local = 10000.0f;
        c.sliding_window = 512;
        c.swa_pattern = 6;
        c.act = LC_ACT_GELU_TANH;
        c.qk_norm = true;
        c.post_norms = true;
        c.embd_scale = true;
        c.tied_output = true;
        break;
    case LC_ARCH_TOY:
        c.n_vocab = 64;
        c.n_embd = 64;
        c.n_layer = 2;
        c.n_head = 4;
        c.n_head_kv = 2;
        c.head_dim = 16;
        c.n_ff = 128;
        c.rope_mode = LC_ROPE_NEOX;
        c.tied_output = true;
        break;
    default:
        break;
    }
    return c;
}

#define CFG_FAIL(...) lc_error(LC_ERR_INVALID_ARG, "lc_model_config: " __VA_ARGS__)

static bool finite_pos(float x) { return isfinite(x) && x > 0.0f; }

lc_status lc_model_config_check(const lc_model_config *c) {
    if (!c) return CFG_FAIL("config is NULL");
    if ((int)c->arch < 0 || c->arch >= LC_ARCH_COUNT)
        return CFG_FAIL("arch = %d is not one of llama, qwen2, gemma3, toy", (int)c->arch);
    const int limit = 1 << 24;
    struct { const char *name; int v; } sizes[] = {
        {"n_vocab", c->n_vocab}, {"n_embd", c->n_embd}, {"n_layer", c->n_layer}, {"n_head", c->n_head},
        {"n_head_kv", c->n_head_kv}, {"head_dim", c->head_dim}, {"n_ff", c->n_ff},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v < 1 || sizes[i].v > limit)
            return CFG_FAIL("%s = %d must be in 1..%d", sizes[i].name, sizes[i].v, limit);
    if (c->n_head % c->n_head_kv != 0)
        return CFG_FAIL("n_head_kv = %d must divide n_head = %d (grouped-query attention)", c->n_head_kv, c->n_head);
    if ((int64_t)c->head_dim * c->n_head > limit)
        return CFG_FAIL("head_dim * n_head = %lld exceeds %d", (long long)c->head_dim * c->n_head, limit);
    if (c->n_rot != 0 && (c->n_rot < 2 || c->n_rot % 2 != 0 || c->n_rot > c->head_dim))
        return CFG_FAIL("n_rot = %d must be 0 (= head_dim) or even and in 2..head_dim = %d", c->n_rot, c->head_dim);
    if (c->n_rot == 0 && c->head_dim % 2 != 0)
        return CFG_FAIL("head_dim = %d must be even when n_rot = 0 rotates the whole head", c->head_dim);
    if (!finite_pos(c->rms_eps)) return CFG_FAIL("rms_eps = %g must be finite and > 0", (double)c->rms_eps);
    if (c->rope_mode != LC_ROPE_NORM && c->rope_mode != LC_ROPE_NEOX)
        return CFG_FAIL("rope_mode = %d must be LC_ROPE_NORM (0) or LC_ROPE_NEOX (2)", c->rope_mode);
    if (!finite_pos(c->rope_base)) return CFG_FAIL("rope_base = %g must be finite and > 0", (double)c->rope_base);
    if (!finite_pos(c->rope_scale)) return CFG_FAIL("rope_scale = %g must be finite and > 0", (double)c->rope_scale);
    if (c->sliding_window < 0) return CFG_FAIL("sliding_window = %d must be >= 0 (0 = none)", c->sliding_window);
    if (c->swa_pattern < 0) return CFG_FAIL("swa_pattern = %d must be >= 0", c->swa_pattern);
    if (c->sliding_window > 0 && !finite_pos(c->rope_base_local))
        return CFG_FAIL("rope_base_local = %g must be finite and > 0 when sliding_window > 0",
                        (double)c->rope_base_local);
    if (!isfinite(c->attn_scale) || c->attn_scale < 0.0f)
        return CFG_FAIL("attn_scale = %g must be finite and >= 0 (0 = 1/sqrt(head_dim))", (double)c->attn_scale);
    if (c->n_ctx_train < 0) return CFG_FAIL("n_ctx_train = %d must be >= 0 (0 = unknown)", c->n_ctx_train);
    if ((int)c->act < 0 || c->act >= LC_ACT_COUNT)
        return CFG_FAIL("act = %d must be LC_ACT_SILU (swiglu) or LC_ACT_GELU_TANH (geglu)", (int)c->act);
    const lc_dtype_info *wi = lc_dtype_get(c->wtype);
    if (!wi || c->wtype == LC_I32)
        return lc_error(LC_ERR_DTYPE, "lc_model_config: wtype = %d (%s) is not a weight dtype (f32, f16, bf16, q8_0, "
                        "q4_0, q4_K, q6_K)", (int)c->wtype, lc_dtype_name(c->wtype));
    const int64_t bs = wi->block_size;
    struct { const char *name; int64_t v; } rows[] = {
        {"n_embd", c->n_embd}, {"n_ff", c->n_ff}, {"head_dim * n_head", (int64_t)c->head_dim * c->n_head}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].v % bs != 0)
            return lc_error(LC_ERR_DTYPE, "lc_model_config: wtype %s stores rows in blocks of %lld, but %s = %lld is "
                            "not a multiple of it", wi->name, (long long)bs, rows[i].name, (long long)rows[i].v);
    return LC_OK;
}

bool lc_model_layer_is_local(const lc_model_config *cfg, int il) {
    if (!cfg || cfg->sliding_window <= 0) return false;
    if (cfg->swa_pattern == 0) return true;
    return il % cfg->swa_pattern < cfg->swa_pattern - 1;
}

/* ---- model weights ------------------------------------------------------------------------ */

void lc_model_free(lc_model *m) {
    if (!m) return;
    lc_tensor_free(m->token_embd);
    lc_tensor_free(m->output_norm);
    lc_tensor_free(m->output);
    if (m->layers) {
        for (int il = 0; il < m->cfg.n_layer; il++) {
            lc_layer_weights *L = &m->layers[il];
            lc_tensor *lt[] = {L->attn_norm,   L->attn_q,     L->attn_k,      L->attn_v,
                               L->attn_q_bias, L->attn_k_bias, L->attn_v_bias, L->attn_q_norm,
                               L->attn_k_norm, L->attn_output, L->post_attention_norm, L->ffn_norm,
                               L->ffn_gate,    L->ffn_up,     L->ffn_down,    L->post_ffw_norm};
            for (size_t i = 0; i < sizeof lt / sizeof lt[0]; i++) lc_tensor_free(lt[i]);
        }
    }
    free(m->layers);
    free(m);
}

lc_model *lc_model_shell_(lc_device *dev, const lc_model_config *cfg) {
    lc_model *m = calloc(1, sizeof *m);
    if (!m) {
        lc_error(LC_ERR_NOMEM, "lc_model: out of host memory");
        return NULL;
    }
    m->cfg = *cfg;
    m->dev = dev;
    m->layers = calloc((size_t)cfg->n_layer, sizeof *m->layers);
    if (!m->layers) {
        free(m);
        lc_error(LC_ERR_NOMEM, "lc_model: out of host memory for %d layers", cfg->n_layer);
        return NULL;
    }
    return m;
}

int lc_model_slots_(lc_model *m, lc_model_slot_ *out, int max) {
    if (!m) return 0;
    const lc_model_config *cfg = &m->cfg;
    const int64_t E = cfg->n_embd, V = cfg->n_vocab, F = cfg->n_ff, hd = cfg->head_dim;
    const int64_t nq = hd * cfg->n_head, nkv = hd * cfg->n_head_kv;
    int n = 0;
#define SLOT(fld, mat, a, b, ...)                                                                                      \
    do {                                                                                                               \
        if (out && n < max) {                                                                                          \
            snprintf(out[n].name, sizeof out[n].name, __VA_ARGS__);                                                    \
            out[n].ne0 = (a);                                                                                          \
            out[n].ne1 = (b);                                                                                          \
            out[n].matrix = (mat);                                                                                     \
            out[n].field = &(fld);                                                                                     \
        }                                                                                                              \
        n++;                                                                                                           \
    } while (0)
    SLOT(m->token_embd, true, E, V, "token_embd.weight");
    for (int il = 0; il < cfg->n_layer; il++) {
        lc_layer_weights *L = &m->layers[il];
        SLOT(L->attn_norm, false, E, 1, "blk.%d.attn_norm.weight", il);
        SLOT(L->attn_q, true, E, nq, "blk.%d.attn_q.weight", il);
        SLOT(L->attn_k, true, E, nkv, "blk.%d.attn_k.weight", il);
        SLOT(L->attn_v, true, E, nkv, "blk.%d.attn_v.weight", il);
        if (cfg->qkv_bias) {
            SLOT(L->attn_q_bias, false, nq, 1, "blk.%d.attn_q.bias", il);
            SLOT(L->attn_k_bias, false, nkv, 1, "blk.%d.attn_k.bias", il);
            SLOT(L->attn_v_bias, false, nkv, 1, "blk.%d.attn_v.bias", il);
        }
        if (cfg->qk_norm) {
            SLOT(L->attn_q_norm, false, hd, 1, "blk.%d.attn_q_norm.weight", il);
            SLOT(L->attn_k_norm, false, hd, 1, "blk.%d.attn_k_norm.weight", il);
        }
        SLOT(L->attn_output, true, nq, E, "blk.%d.attn_output.weight", il);
        if (cfg->post_norms) SLOT(L->post_attention_norm, false, E, 1, "blk.%d.post_attention_norm.weight", il);
        SLOT(L->ffn_norm, false, E, 1, "blk.%d.ffn_norm.weight", il);
        SLOT(L->ffn_gate, true, E, F, "blk.%d.ffn_gate.weight", il);
        SLOT(L->ffn_up, true, E, F, "blk.%d.ffn_up.weight", il);
        SLOT(L->ffn_down, true, F, E, "blk.%d.ffn_down.weight", il);
        if (cfg->post_norms) SLOT(L->post_ffw_norm, false, E, 1, "blk.%d.post_ffw_norm.weight", il);
    }
    SLOT(m->output_norm, false, E, 1, "output_norm.weight");
    if (!cfg->tied_output) SLOT(m->output, true, E, V, "output.weight");
#undef SLOT
    return n;
}

lc_status lc_model_new(lc_device *dev, const lc_model_config *cfg, lc_model **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_model_new: out is NULL");
    *out = NULL;
    if (!dev) return lc_error(LC_ERR_INVALID_ARG, "lc_model_new: device is NULL");
    lc_status st = lc_model_config_check(cfg);
    if (st != LC_OK) return st;
    lc_model *m = lc_model_shell_(dev, cfg);
    if (!m) return LC_ERR_NOMEM;
    const int n = lc_model_slots_(m, NULL, 0);
    lc_model_slot_ *slots = malloc((size_t)n * sizeof *slots);
    if (!slots) {
        lc_model_free(m);
        return lc_error(LC_ERR_NOMEM, "lc_model_new: out of host memory");
    }
    lc_model_slots_(m, slots, n);
    for (int i = 0; i < n && st == LC_OK; i++) {
        const lc_model_slot_ *sl = &slots[i];
        const int64_t ne[2] = {sl->ne0, sl->ne1};
        st = lc_tensor_new(dev, sl->matrix ? cfg->wtype : LC_F32, sl->ne1 > 1 ? 2 : 1, ne, sl->name, LC_TENSOR_FROZEN,
                           sl->field);
        if (st != LC_OK) st = lc_error(st, "lc_model_new: tensor '%s': %s", sl->name, lc_last_error());
    }
    free(slots);
    if (st != LC_OK) {
        lc_model_free(m);
        return st;
    }
    *out = m;
    return LC_OK;
}

int lc_model_tensors(const lc_model *m, lc_tensor **out, int max) {
    if (!m) return 0;
    int n = 0;
#define PUT(t)                                                                                                         \
    do {                                                                                                               \
        if (t) {                                                                                                       \
            if (out && n < max) out[n] = (t);                                                                          \
            n++;                                                                                                       \
        }                                                                                                              \
    } while (0)
    PUT(m->token_embd);
    for (int il = 0; il < m->cfg.n_layer; il++) {
        const lc_layer_weights *L = &m->layers[il];
        PUT(L->attn_norm);
        PUT(L->attn_q);
        PUT(L->attn_k);
        PUT(L->attn_v);
        PUT(L->attn_q_bias);
        PUT(L->attn_k_bias);
        PUT(L->attn_v_bias);
        PUT(L->attn_q_norm);
        PUT(L->attn_k_norm);
        PUT(L->attn_output);
        PUT(L->post_attention_norm);
        PUT(L->ffn_norm);
        PUT(L->ffn_gate);
        PUT(L->ffn_up);
        PUT(L->ffn_down);
        PUT(L->post_ffw_norm);
    }
    PUT(m->output_norm);
    PUT(m->output);
#undef PUT
    return n;
}

lc_tensor *lc_model_find(const lc_model *m, const char *name) {
    if (!m || !name) return NULL;
    int n = lc_model_tensors(m, NULL, 0);
    lc_tensor **ts = malloc((size_t)n * sizeof *ts);
    if (!ts) return NULL;
    lc_model_tensors(m, ts, n);
    lc_tensor *hit = NULL;
    for (int i = 0; i < n && !hit; i++)
        if (strcmp(ts[i]->name, name) == 0) hit = ts[i];
    free(ts);
    return hit;
}

lc_tensor *lc_model_module_weight(const lc_model *m, int il, lc_module mod) {
    if (!m || il < 0 || il >= m->cfg.n_layer) return NULL;
    const lc_layer_weights *L = &m->layers[il];
    switch (mod) {
    case LC_MOD_ATTN_Q: return L->attn_q;
    case LC_MOD_ATTN_K: return L->attn_k;
    case LC_MOD_ATTN_V: return L->attn_v;
    case LC_MOD_ATTN_OUTPUT: return L->attn_output;
    case LC_MOD_FFN_GATE: return L->ffn_gate;
    case LC_MOD_FFN_UP: return L->ffn_up;
    case LC_MOD_FFN_DOWN: return L->ffn_down;
    default: return NULL;
    }
}

/* Norm weights end in "norm.weight"; biases in ".bias". */
static bool ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

lc_status lc_model_new_random(lc_device *dev, const lc_model_config *cfg, uint64_t seed, lc_model **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_model_new_random: out is NULL");
    *out = NULL;
    lc_model *m = NULL;
    lc_status st = lc_model_new(dev, cfg, &m);
    if (st != LC_OK) return st;
    int n = lc_model_tensors(m, NULL, 0);
    lc_tensor **ts = malloc((size_t)n * sizeof *ts);
    if (!ts) {
        lc_model_free(m);
        return lc_error(LC_ERR_NOMEM, "lc_model_new_random: out of host memory");
    }
    lc_model_tensors(m, ts, n);
    for (int k = 0; k < n && st == LC_OK; k++) {
        lc_tensor *t = ts[k];
        const int64_t ne = lc_nelements(t);
        float *h = malloc((size_t)ne * sizeof *h);
        if (!h) {
            st = lc_error(LC_ERR_NOMEM, "lc_model_new_random: out of host memory for '%s'", t->name);
            break;
        }
        const uint64_t stream = (2ull << 40) | (uint64_t)k;
        if (ends_with(t->name, "norm.weight")) {
            for (int64_t i = 0; i < ne; i++) h[i] = 1.0f;
        } else {
            /* Standard deviation 1/sqrt(in) for matrices; U(-0.1, 0.1) for biases. */
            const float bound = ends_with(t->name, ".bias") ? 0.1f : (float)sqrt(3.0 / (double)t->ne[0]);
            for (int64_t i = 0; i < ne; i++) h[i] = (2.0f * lc_rng_uniform(seed, stream, (uint64_t)i) - 1.0f) * bound;
        }
        st = lc_tensor_set_f32(t, h, ne);
        free(h);
    }
    free(ts);
    if (st != LC_OK) {
        lc_model_free(m);
        return st;
    }
    *out = m;
    return LC_OK;
}

/* ---- LoRA module set ---------------------------------------------------------------------- */

void lc_lora_set_free(lc_lora_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_modules; i++) {
        lc_tensor_free(s->modules[i].lora_a);
        lc_tensor_free(s->modules[i].lora_b);
    }
    free(s->modules);
    free(s->slot);
    free(s);
}

lc_status lc_lora_set_new(const lc_model *m, const lc_lora_config *cfg, lc_lora_set **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_lora_set_new: out is NULL");
    *out = NULL;
    if (!m || !cfg) return lc_error(LC_ERR_INVALID_ARG, "lc_lora_set_new: model or config is NULL");
    if (cfg->r < 1) return lc_error(LC_ERR_INVALID_ARG, "lc_lora_config: r = %d must be >= 1", cfg->r);
    if (!isfinite(cfg->lora_alpha))
        return lc_error(LC_ERR_INVALID_ARG, "lc_lora_config: lora_alpha = %g must be finite", (double)cfg->lora_alpha);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return lc_error(LC_ERR_INVALID_ARG, "lc_lora_config: dropout = %g must be in [0, 1)", (double)cfg->dropout);
    if (cfg->target_mask == 0 || (cfg->target_mask & ~LC_MOD_MASK_ALL))
        return lc_error(LC_ERR_INVALID_ARG, "lc_lora_config: target_mask = 0x%x must select at least one of the %d "
                        "projections and nothing else", (unsigned)cfg->target_mask, LC_MOD_COUNT);
    const int nl = m->cfg.n_layer;
    lc_lora_set *s = calloc(1, sizeof *s);
    if (!s) return lc_error(LC_ERR_NOMEM, "lc_lora_set_new: out of host memory");
    s->cfg = *cfg;
    s->n_layer = nl;
    int per_layer = 0;
    for (int k = 0; k < LC_MOD_COUNT; k++) per_layer += (cfg->target_mask >> k) & 1u;
    s->modules = calloc((size_t)nl * (size_t)per_layer, sizeof *s->modules);
    s->slot = malloc((size_t)nl * LC_MOD_COUNT * sizeof *s->slot);
    if (!s->modules || !s->slot) {
        lc_lora_set_free(s);
        return lc_error(LC_ERR_NOMEM, "lc_lora_set_new: out of host memory");
    }
    lc_status st = LC_OK;
    for (int il = 0; il < nl && st == LC_OK; il++) {
        for (int k = 0; k < LC_MOD_COUNT && st == LC_OK; k++) {
            s->slot[il * LC_MOD_COUNT + k] = -1;
            if (!((cfg->target_mask >> k) & 1u)) continue;
            const lc_tensor *w = lc_model_module_weight(m, il, (lc_module)k);
            lc_lora_module *lm = &s->modules[s->n_modules];
            snprintf(lm->target, sizeof lm->target, "blk.%d.%s", il, mod_gguf[k]);
            lm->layer = il;
            lm->module = (lc_module)k;
            lm->r = cfg->r;
            lm->lora_alpha = cfg->lora_alpha;
            lm->scaling = lc_lora_scaling(cfg->r, cfg->lora_alpha, cfg->use_rslora);
            lm->module_id = (uint32_t)(il * LC_MOD_COUNT + k);
            char name[LC_NAME_MAX];
            const int64_t ne_a[2] = {w->ne[0], cfg->r}, ne_b[2] = {cfg->r, w->ne[1]};
            snprintf(name, sizeof name, "%s.weight.lora_a", lm->target);
            st = lc_tensor_new(m->dev, LC_F32, 2, ne_a, name, LC_TENSOR_PARAM, &lm->lora_a);
            if (st != LC_OK) break;
            snprintf(name, sizeof name, "%s.weight.lora_b", lm->target);
            st = lc_tensor_new(m->dev, LC_F32, 2, ne_b, name, LC_TENSOR_PARAM, &lm->lora_b);
            s->n_modules++; /* counted once A exists, so a failure below frees it */
            if (st != LC_OK) break;
            st = lc_lora_init(lm->lora_a, lm->lora_b, cfg->seed, lm->module_id);
            s->slot[il * LC_MOD_COUNT + k] = s->n_modules - 1;
        }
    }
    if (st != LC_OK) {
        lc_lora_set_free(s);
        return st;
    }
    *out = s;
    return LC_OK;
}

lc_lora_module *lc_lora_set_find(const lc_lora_set *s, int il, lc_module mod) {
    if (!s || il < 0 || il >= s->n_layer || (int)mod < 0 || mod >= LC_MOD_COUNT) return NULL;
    int k = s->slot[il * LC_MOD_COUNT + mod];
    return k >= 0 ? &s->modules[k] : NULL;
}

int64_t lc_lora_set_n_params(const lc_lora_set *s) {
    if (!s) return 0;
    int64_t n = 0;
    for (int i = 0; i < s->n_modules; i++) n += lc_nelements(s->modules[i].lora_a) + lc_nelements(s->modules[i].lora_b);
    return n;
}

/* ---- forward graph ------------------------------------------------------------------------ */

/* x·Wᵀ (+ bias), through the LoRA module of (il, mod) when the set has one. */
static lc_tensor *project(lc_graph *g, const lc_model *model, const lc_lora_set *lora, lc_tensor *x, int il,
                          lc_module mod, lc_tensor *bias, float dropout) {
    lc_tensor *w = lc_model_module_weight(model, il, mod);
    const lc_lora_module *lm = lc_lora_set_find(lora, il, mod);
    lc_tensor *y;
    if (lm) {
        lc_lora_params p = {.scaling = lm->scaling, .dropout = dropout, .module_id = lm->module_id,
                            .seed = lora->cfg.seed};
        y = lc_lora(g, x, w, lm->lora_a, lm->lora_b, &p);
    } else {
        y = lc_mul_mat(g, x, w);
    }
    return bias ? lc_add(g, y, bias) : y;
}

lc_tensor *lc_model_forward(lc_graph *g, const lc_model *model, const lc_lora_set *lora, lc_tensor *ids,
                            lc_tensor *pos, int n_seq, int seq_len, float dropout) {
    return lc_model_build_(g, model, lora, ids, pos, n_seq, seq_len, dropout, NULL);
}

lc_tensor *lc_model_build_(lc_graph *g, const lc_model *model, const lc_lora_set *lora, lc_tensor *ids,
                           lc_tensor *pos, int n_seq, int seq_len, float dropout, const lc_model_build_opts_ *opts) {
    if (!g) {
        lc_error(LC_ERR_INVALID_ARG, "lc_model_forward: graph is NULL");
        return NULL;
    }
    if (lc_graph_status(g) != LC_OK) return NULL;
    if (!model || !ids || !pos) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_model_forward: model, ids or pos is NULL");
        return NULL;
    }
    const lc_model_config *c = &model->cfg;
    if (n_seq < 1 || seq_len < 1) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_model_forward: n_seq = %d and seq_len = %d must be >= 1", n_seq,
                       seq_len);
        return NULL;
    }
    if (!(dropout >= 0.0f && dropout < 1.0f)) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_model_forward: dropout = %g must be in [0, 1)", (double)dropout);
        return NULL;
    }
    const lc_model_kv_hook_ *kv = opts ? opts->kv : NULL;
    const lc_model_out_ out_mode = opts ? opts->out : LC_MODEL_OUT_ALL;
    if ((kv && (n_seq != 1 || !kv->fn)) || (out_mode == LC_MODEL_OUT_ROWS && !opts->rows) ||
        (out_mode == LC_MODEL_OUT_NONE && !kv)) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_model_forward: a KV cache needs n_seq = 1 (got %d); selected "
                       "logits need their rows; no logits only makes sense with a KV cache", n_seq);
        return NULL;
    }
    const int64_t T = (int64_t)n_seq * seq_len;
    const lc_tensor *io[2] = {ids, pos};
    const char *io_name[2] = {"ids", "pos"};
    for (int i = 0; i < 2; i++) {
        if (io[i]->dtype != LC_I32 || lc_nelements(io[i]) != T) {
            lc_graph_fail_(g, io[i]->dtype != LC_I32 ? LC_ERR_DTYPE : LC_ERR_SHAPE,
                           "lc_model_forward: %s '%s' must be i32 with n_seq*seq_len = %lld elements; it is %s with "
                           "%lld", io_name[i], io[i]->name, (long long)T, lc_dtype_name(io[i]->dtype),
                           (long long)lc_nelements(io[i]));
            return NULL;
        }
    }
    if (lora && lora->n_layer != c->n_layer) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_model_forward: the LoRA set has %d layers, the model %d",
                       lora->n_layer, c->n_layer);
        return NULL;
    }
    const float eps = c->rms_eps;
    const int hd = c->head_dim, n_rot = c->n_rot ? c->n_rot : c->head_dim;
    const float attn_scale = c->attn_scale > 0.0f ? c->attn_scale : 1.0f / sqrtf((float)hd);

    lc_tensor *x = lc_get_rows(g, model->token_embd, ids); /* [E, T] */
    if (c->embd_scale) x = lc_scale(g, x, sqrtf((float)c->n_embd));
    x = lc_graph_checkpoint(g, x); /* layer 0's input: layer 0 is recomputed from it too */
    for (int il = 0; il < c->n_layer; il++) {
        const lc_layer_weights *L = &model->layers[il];
        const bool local = lc_model_layer_is_local(c, il);
        const float base = local ? c->rope_base_local : c->rope_base;
        const float fscale = local ? 1.0f : c->rope_scale;

        lc_tensor *h = lc_rms_norm(g, x, L->attn_norm, 0, eps);
        lc_tensor *q = project(g, model, lora, h, il, LC_MOD_ATTN_Q, L->attn_q_bias, dropout);
        lc_tensor *k = project(g, model, lora, h, il, LC_MOD_ATTN_K, L->attn_k_bias, dropout);
        lc_tensor *v = project(g, model, lora, h, il, LC_MOD_ATTN_V, L->attn_v_bias, dropout);
        if (c->qk_norm) {
            q = lc_rms_norm(g, q, L->attn_q_norm, hd, eps);
            k = lc_rms_norm(g, k, L->attn_k_norm, hd, eps);
        }
        q = lc_rope(g, q, pos, c->n_head, n_rot, c->rope_mode, base, fscale);
        k = lc_rope(g, k, pos, c->n_head_kv, n_rot, c->rope_mode, base, fscale);
        if (kv) {
            if (lc_graph_status(g) != LC_OK) return NULL;
            lc_tensor *k_all = NULL, *v_all = NULL;
            if (!kv->fn(kv->user, g, il, k, v, &k_all, &v_all)) return NULL;
            if (out_mode == LC_MODEL_OUT_NONE && il == c->n_layer - 1) return v_all; /* the cache is filled */
            k = k_all;
            v = v_all;
        }
        lc_attention_params ap = {.n_head = c->n_head, .n_kv = c->n_head_kv, .n_seq = n_seq, .causal = true,
                                  .window = local ? c->sliding_window : 0, .scale = attn_scale};
        lc_tensor *a = lc_attention(g, q, k, v, &ap);
        lc_tensor *o = project(g, model, lora, a, il, LC_MOD_ATTN_OUTPUT, NULL, dropout);
        if (c->post_norms) o = lc_rms_norm(g, o, L->post_attention_norm, 0, eps);
        x = lc_add(g, x, o);

        h = lc_rms_norm(g, x, L->ffn_norm, 0, eps);
        lc_tensor *gate = project(g, model, lora, h, il, LC_MOD_FFN_GATE, NULL, dropout);
        lc_tensor *up = project(g, model, lora, h, il, LC_MOD_FFN_UP, NULL, dropout);
        lc_tensor *act = c->act == LC_ACT_GELU_TANH ? lc_geglu(g, gate, up) : lc_swiglu(g, gate, up);
        lc_tensor *f = project(g, model, lora, act, il, LC_MOD_FFN_DOWN, NULL, dropout);
        if (c->post_norms) f = lc_rms_norm(g, f, L->post_ffw_norm, 0, eps);
        /* The residual stream after each layer is a checkpoint: with lc_graph_set_recompute the
         * backward pass recomputes one layer at a time from it (lorac/graph.h). */
        x = lc_graph_checkpoint(g, lc_add(g, x, f));
    }
    /* get_rows on the hidden state [E, T] (an F32 "table" of T columns) keeps only the columns
     * whose logits are wanted, so the [n_vocab, E] output projection runs for them alone. */
    if (out_mode == LC_MODEL_OUT_ROWS) x = lc_get_rows(g, x, opts->rows);
    x = lc_rms_norm(g, x, model->output_norm, 0, eps);
    return lc_mul_mat(g, x, model->output ? model->output : model->token_embd); /* [V, T] or [V, R] */
}
