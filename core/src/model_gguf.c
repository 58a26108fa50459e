/* lorac — models and tokenizers from GGUF files: the mapping of GGUF keys and tensor names onto
 * lc_model_config and lc_model (the layout itself is described in model.c; see lorac/model.h for
 * the keys, their defaults and the errors). Sources: reference/formats.md §1 (GGUF), §3 (Gemma 3
 * keys and hparams), §4 (tokenizer keys), §5 (names); llama.cpp src/llama-model.cpp
 * (load_hparams, load_tensors) and src/llama-vocab.cpp (special ids, flags).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "lorac/dtype.h"
#include "lorac/gguf.h"
#include "lorac/model.h"
#include "lorac/tokenizer.h"
#include "model_internal.h"

#define SUPPORTED_ARCHS "llama, qwen2, gemma3"

/* ---- typed key access with defaults -------------------------------------------------------- */

typedef struct keyset {
    const lc_gguf *f;
    const char *file;  /* for messages */
    char prefix[64];   /* "<arch>." */
} keyset;

static const char *full_key(const keyset *ks, const char *suffix, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s", ks->prefix, suffix);
    return buf;
}

/* Integer key (any integer or bool type) `<arch>.suffix`; *present tells whether it exists.
 * Errors: LC_ERR_FORMAT (another type, out of [lo, hi]). */
static lc_status get_int(const keyset *ks, const char *suffix, bool required, int64_t lo, int64_t hi, int64_t def,
                         int64_t *out, bool *present) {
    char key[192];
    full_key(ks, suffix, key, sizeof key);
    const int64_t kid = lc_gguf_find_key(ks->f, key);
    if (present) *present = kid >= 0;
    if (kid < 0) {
        if (required) return lc_error(LC_ERR_FORMAT, "model %s: required key '%s' is missing", ks->file, key);
        *out = def;
        return LC_OK;
    }
    int64_t v;
    if (lc_gguf_kv_get_i64(ks->f, kid, &v) != LC_OK)
        return lc_error(LC_ERR_FORMAT, "model %s: key '%s' has type %s, expected an integer", ks->file, key,
                        lc_gguf_type_name(lc_gguf_kv_type(ks->f, kid)));
    if (v < lo || v > hi)
        return lc_error(LC_ERR_FORMAT, "model %s: key '%s' = %lld is outside %lld..%lld", ks->file, key, (long long)v,
                        (long long)lo, (long long)hi);
    *out = v;
    return LC_OK;
}

/* Float key (any numeric type). Errors: LC_ERR_FORMAT (another type, not finite). */
static lc_status get_float(const keyset *ks, const char *suffix, double def, double *out, bool *present) {
    char key[192];
    full_key(ks, suffix, key, sizeof key);
    const int64_t kid = lc_gguf_find_key(ks->f, key);
    if (present) *present = kid >= 0;
    if (kid < 0) {
        *out = def;
        return LC_OK;
    }
    double v;
    if (lc_gguf_kv_get_f64(ks->f, kid, &v) != LC_OK)
        return lc_error(LC_ERR_FORMAT, "model %s: key '%s' has type %s, expected a number", ks->file, key,
                        lc_gguf_type_name(lc_gguf_kv_type(ks->f, kid)));
    if (!isfinite(v)) return lc_error(LC_ERR_FORMAT, "model %s: key '%s' = %g is not finite", ks->file, key, v);
    *out = v;
    return LC_OK;
}

/* String key by full name; *out NULL when absent; `what` ("model", "tokenizer") starts messages. Errors: LC_ERR_FORMAT (another type). */
static lc_status get_str_full(const lc_gguf *f, const char *what, const char *file, const char *key,
                              const char **out) {
    *out = NULL;
    const int64_t kid = lc_gguf_find_key(f, key);
    if (kid < 0) return LC_OK;
    if (lc_gguf_kv_get_str(f, kid, out, NULL) != LC_OK)
        return lc_error(LC_ERR_FORMAT, "%s %s: key '%s' has type %s, expected a string", what, file, key,
                        lc_gguf_type_name(lc_gguf_kv_type(f, kid)));
    return LC_OK;
}

#define TRY(expr)                                                                                                      \
    do {                                                                                                               \
        lc_status st_ = (expr);                                                                                        \
        if (st_ != LC_OK) return st_;                                                                                  \
    } while (0)

/* ---- configuration ------------------------------------------------------------------------ */

lc_status lc_model_config_from_gguf(const lc_gguf *f, lc_model_config *cfg) {
    if (!f || !cfg) return lc_error(LC_ERR_INVALID_ARG, "lc_model_config_from_gguf: file or cfg is NULL");
    const char *file = lc_gguf_path(f);
    const char *arch_name = NULL;
    TRY(get_str_full(f, "model", file, "general.architecture", &arch_name));
    if (!arch_name)
        return lc_error(LC_ERR_FORMAT, "model %s: key 'general.architecture' is missing (supported architectures: "
                        SUPPORTED_ARCHS ")", file);
    const char *type = NULL;
    if (lc_gguf_find_key(f, "general.type") >= 0 && lc_gguf_get_string(f, "general.type", &type, NULL) == LC_OK &&
        type && strcmp(type, "adapter") == 0)
        return lc_error(LC_ERR_FORMAT, "model %s: this GGUF is a LoRA adapter (general.type 'adapter'), not a model: "
                        "pass it with --adapter and the base model with --model", file);
    lc_arch arch;
    if (lc_arch_from_name(arch_name, &arch) != LC_OK || arch == LC_ARCH_TOY)
        return lc_error(LC_ERR_UNSUPPORTED, "model %s: architecture '%s' is not supported (supported: " SUPPORTED_ARCHS
                        ")", file, arch_name);
    lc_model_config c = lc_model_config_default(arch);
    keyset ks = {.f = f, .file = file};
    snprintf(ks.prefix, sizeof ks.prefix, "%s.", arch_name);
    const int64_t big = (int64_t)1 << 24;
    int64_t v;
    bool present;

    TRY(get_int(&ks, "embedding_length", true, 1, big, 0, &v, NULL));
    c.n_embd = (int)v;
    TRY(get_int(&ks, "block_count", true, 1, big, 0, &v, NULL));
    c.n_layer = (int)v;
    TRY(get_int(&ks, "feed_forward_length", true, 1, big, 0, &v, NULL));
    c.n_ff = (int)v;
    TRY(get_int(&ks, "attention.head_count", true, 1, big, 0, &v, NULL));
    c.n_head = (int)v;
    TRY(get_int(&ks, "attention.head_count_kv", false, 1, big, c.n_head, &v, NULL));
    c.n_head_kv = (int)v;
    TRY(get_int(&ks, "context_length", false, 0, INT32_MAX, 0, &v, NULL));
    c.n_ctx_train = (int)v;
    TRY(get_int(&ks, "attention.key_length", false, 1, big, c.n_embd / c.n_head, &v, NULL));
    c.head_dim = (int)v;
    TRY(get_int(&ks, "attention.value_length", false, 1, big, c.head_dim, &v, NULL));
    if (v != c.head_dim)
        return lc_error(LC_ERR_UNSUPPORTED, "model %s: %sattention.value_length = %lld differs from key_length = %d; "
                        "not supported yet", file, ks.prefix, (long long)v, c.head_dim);
    if (c.head_dim < 1)
        return lc_error(LC_ERR_FORMAT, "model %s: head_dim = n_embd / n_head = %d / %d is 0; the file needs "
                        "%sattention.key_length", file, c.n_embd, c.n_head, ks.prefix);
    TRY(get_int(&ks, "rope.dimension_count", false, 0, big, c.head_dim, &v, NULL));
    c.n_rot = v == c.head_dim ? 0 : (int)v;

    double d;
    TRY(get_float(&ks, "attention.layer_norm_rms_epsilon", c.rms_eps, &d, NULL));
    c.rms_eps = (float)d;
    TRY(get_float(&ks, "rope.freq_base", c.rope_base, &d, NULL));
    c.rope_base = (float)d;

    /* RoPE scaling: rope.scaling.type (none | linear) with rope.scaling.factor, or the older
     * rope.scale_linear; freq_scale = 1 / factor (llama.cpp load_hparams). */
    char key[192];
    const char *scaling = NULL;
    TRY(get_str_full(f, "model", file, full_key(&ks, "rope.scaling.type", key, sizeof key), &scaling));
    double factor = 0.0;
    bool have_factor = false;
    TRY(get_float(&ks, "rope.scaling.factor", 0.0, &factor, &have_factor));
    if (!have_factor) TRY(get_float(&ks, "rope.scale_linear", 0.0, &factor, &have_factor));
    if (scaling && strcmp(scaling, "none") != 0 && strcmp(scaling, "linear") != 0)
        return lc_error(LC_ERR_UNSUPPORTED, "model %s: %srope.scaling.type '%s' is not supported yet (none, linear)",
                        file, ks.prefix, scaling);
    if (!(scaling && strcmp(scaling, "none") == 0) && have_factor && factor != 0.0) {
        if (!(factor > 0.0))
            return lc_error(LC_ERR_FORMAT, "model %s: rope scaling factor %g must be > 0", file, factor);
        c.rope_scale = (float)(1.0 / factor);
    }

    /* Soft-capping changes the logits; refuse it rather than computing something else. */
    static const char *const softcaps[] = {"final_logit_softcapping", "attn_logit_softcapping"};
    for (size_t i = 0; i < sizeof softcaps / sizeof softcaps[0]; i++) {
        TRY(get_float(&ks, softcaps[i], 0.0, &d, &present));
        if (present && d != 0.0)
            return lc_error(LC_ERR_UNSUPPORTED, "model %s: %s%s = %g: logit soft-capping is not supported yet", file,
                            ks.prefix, softcaps[i], d);
    }

    if (arch == LC_ARCH_GEMMA3) {
        TRY(get_int(&ks, "attention.sliding_window", false, 0, INT32_MAX, 512, &v, NULL));
        c.sliding_window = (int)v;
        c.swa_pattern = 6;
        c.rope_base_local = 10000.0f;
        /* Gemma 3 27B (62 layers): query_pre_attn_scalar = n_embd / n_head (formats.md §3). */
        if (c.n_layer == 62) c.attn_scale = 1.0f / sqrtf((float)c.n_embd / (float)c.n_head);
    } else {
        c.sliding_window = 0; /* llama.cpp's llama / qwen2 do not use the key */
        c.swa_pattern = 0;
    }

    const int64_t embd_id = lc_gguf_find_tensor(f, "token_embd.weight");
    const int64_t out_id = lc_gguf_find_tensor(f, "output.weight");
    const lc_gguf_tensor_info *embd = embd_id >= 0 ? lc_gguf_tensor(f, embd_id) : NULL;
    TRY(get_int(&ks, "vocab_size", false, 1, INT32_MAX, 0, &v, &present));
    if (!present) {
        if (!embd)
            return lc_error(LC_ERR_FORMAT, "model %s: tensor 'token_embd.weight' is missing (and %svocab_size is "
                            "absent, so the vocabulary size is unknown)", file, ks.prefix);
        v = embd->ne[1];
    }
    if (v < 1 || v > INT32_MAX) return lc_error(LC_ERR_FORMAT, "model %s: vocabulary size %lld is out of range", file, (long long)v);
    c.n_vocab = (int)v;
    c.tied_output = out_id < 0;
    c.wtype = LC_F32;
    TRY(lc_model_config_check(&c));
    if (embd && embd->supported && embd->type != LC_I32) {
        lc_model_config t = c;
        t.wtype = (lc_dtype)embd->type;
        if (lc_model_config_check(&t) == LC_OK) c.wtype = t.wtype;
        lc_clear_error();
    }
    *cfg = c;
    return LC_OK;
}

/* ---- tokenizer ---------------------------------------------------------------------------- */

/* Special id key: kept when inside [0, n_vocab), else (or when absent) `def` if that is inside,
 * else LC_TOKEN_NULL (llama.cpp ignores out-of-range ids). */
static lc_status special_id(const lc_gguf *f, const char *file, const char *key, int32_t def, int32_t n_vocab,
                            int32_t *out) {
    *out = (def >= 0 && def < n_vocab) ? def : LC_TOKEN_NULL;
    const int64_t kid = lc_gguf_find_key(f, key);
    if (kid < 0) return LC_OK;
    int64_t v;
    if (lc_gguf_kv_get_i64(f, kid, &v) != LC_OK)
        return lc_error(LC_ERR_FORMAT, "tokenizer %s: key '%s' has type %s, expected an integer", file, key,
                        lc_gguf_type_name(lc_gguf_kv_type(f, kid)));
    if (v >= 0 && v < n_vocab) *out = (int32_t)v;
    else *out = LC_TOKEN_NULL;
    return LC_OK;
}

static lc_status flag(const lc_gguf *f, const char *file, const char *key, bool *out) {
    const int64_t kid = lc_gguf_find_key(f, key);
    if (kid < 0) return LC_OK;
    int64_t v;
    if (lc_gguf_kv_get_i64(f, kid, &v) != LC_OK)
        return lc_error(LC_ERR_FORMAT, "tokenizer %s: key '%s' has type %s, expected a bool", file, key,
                        lc_gguf_type_name(lc_gguf_kv_type(f, kid)));
    *out = v != 0;
    return LC_OK;
}

lc_status lc_model_tokenizer_from_gguf(const lc_gguf *f, lc_tokenizer **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_model_tokenizer_from_gguf: out is NULL");
    *out = NULL;
    if (!f) return lc_error(LC_ERR_INVALID_ARG, "lc_model_tokenizer_from_gguf: file is NULL");
    const char *file = lc_gguf_path(f);
    const char *model = NULL;
    TRY(get_str_full(f, "tokenizer", file, "tokenizer.ggml.model", &model));
    if (!model) return lc_error(LC_ERR_FORMAT, "tokenizer %s: key 'tokenizer.ggml.model' is missing", file);
    if (strcmp(model, "llama") != 0)
        return lc_error(LC_ERR_UNSUPPORTED, "tokenizer %s: tokenizer.ggml.model '%s' is not supported yet (only "
                        "'llama', SentencePiece BPE%s)", file, model,
                        strcmp(model, "gpt2") == 0 ? "; GPT-2 byte-level BPE comes later" : "");
    const int64_t kid = lc_gguf_find_key(f, "tokenizer.ggml.tokens");
    if (kid < 0) return lc_error(LC_ERR_FORMAT, "tokenizer %s: key 'tokenizer.ggml.tokens' is missing", file);
    if (lc_gguf_arr_type(f, kid) != LC_GGUF_STRING)
        return lc_error(LC_ERR_FORMAT, "tokenizer %s: 'tokenizer.ggml.tokens' must be an array of strings", file);
    const uint64_t n = lc_gguf_arr_count(f, kid);
    if (n < 1 || n > (uint64_t)INT32_MAX)
        return lc_error(LC_ERR_FORMAT, "tokenizer %s: 'tokenizer.ggml.tokens' has %llu entries", file,
                        (unsigned long long)n);
    const float *scores = NULL;
    const int32_t *types = NULL;
    const void *data;
    uint64_t cnt;
    if (lc_gguf_find_key(f, "tokenizer.ggml.scores") >= 0) {
        lc_status st = lc_gguf_get_arr(f, "tokenizer.ggml.scores", LC_GGUF_FLOAT32, &data, &cnt);
        if (st != LC_OK) return lc_error(LC_ERR_FORMAT, "tokenizer %s: tokenizer.ggml.scores: %s", file, lc_last_error());
        if (cnt != n)
            return lc_error(LC_ERR_FORMAT, "tokenizer %s: tokenizer.ggml.scores has %llu entries, tokens %llu", file,
                            (unsigned long long)cnt, (unsigned long long)n);
        scores = data;
    }
    if (lc_gguf_find_key(f, "tokenizer.ggml.token_type") >= 0) {
        lc_status st = lc_gguf_get_arr(f, "tokenizer.ggml.token_type", LC_GGUF_INT32, &data, &cnt);
        if (st != LC_OK)
            return lc_error(LC_ERR_FORMAT, "tokenizer %s: tokenizer.ggml.token_type: %s", file, lc_last_error());
        if (cnt != n)
            return lc_error(LC_ERR_FORMAT, "tokenizer %s: tokenizer.ggml.token_type has %llu entries, tokens %llu",
                            file, (unsigned long long)cnt, (unsigned long long)n);
        types = data;
    }
    const char **tokens = malloc((size_t)n * sizeof *tokens);
    if (!tokens) return lc_error(LC_ERR_NOMEM, "tokenizer %s: out of host memory for %llu tokens", file,
                                 (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        if (lc_gguf_arr_get_str(f, kid, i, &tokens[i], NULL) != LC_OK) {
            free(tokens);
            return lc_error(LC_ERR_FORMAT, "tokenizer %s: tokenizer.ggml.tokens[%llu]: %s", file,
                            (unsigned long long)i, lc_last_error());
        }
    }
    const int32_t nv = (int32_t)n;
    lc_tokenizer_spm_opts o = lc_tokenizer_spm_opts_default();
    lc_status st = LC_OK;
    if (st == LC_OK) st = special_id(f, file, "tokenizer.ggml.bos_token_id", o.bos_id, nv, &o.bos_id);
    if (st == LC_OK) st = special_id(f, file, "tokenizer.ggml.eos_token_id", o.eos_id, nv, &o.eos_id);
    if (st == LC_OK) st = special_id(f, file, "tokenizer.ggml.unknown_token_id", o.unk_id, nv, &o.unk_id);
    if (st == LC_OK) st = special_id(f, file, "tokenizer.ggml.padding_token_id", o.pad_id, nv, &o.pad_id);
    if (st == LC_OK) st = flag(f, file, "tokenizer.ggml.add_bos_token", &o.add_bos);
    if (st == LC_OK) st = flag(f, file, "tokenizer.ggml.add_eos_token", &o.add_eos);
    if (st == LC_OK) st = flag(f, file, "tokenizer.ggml.add_space_prefix", &o.add_space_prefix);
    if (st == LC_OK) {
        if (o.bos_id == LC_TOKEN_NULL) o.add_bos = false;
        if (o.eos_id == LC_TOKEN_NULL) o.add_eos = false;
        st = lc_tokenizer_new_spm(tokens, scores, types, nv, &o, out);
        if (st != LC_OK) st = lc_error(st, "tokenizer %s: %s", file, lc_last_error());
    }
    free(tokens);
    return st;
}

/* ---- weights ------------------------------------------------------------------------------ */

/* Whether `dev` can run `op` (MUL_MAT or GET_ROWS) with weight dtype `dt` of ne {ne0, ne1}:
 * asks the backend's supports() with a node of placeholder tensors (dtypes and shapes only, as
 * lc_graph_plan does before memory exists). */
static bool device_takes_weight(lc_device *dev, lc_op op, lc_dtype dt, int64_t ne0, int64_t ne1) {
    if (!dev->iface->supports) return true;
    lc_tensor w, x, y;
    memset(&w, 0, sizeof w);
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    const int64_t wne[2] = {ne0, ne1}, one[2] = {1, 1};
    if (lc_tensor_layout(&w, dt, 2, wne) != LC_OK) return false;
    lc_node n;
    memset(&n, 0, sizeof n);
    n.op = op;
    bool ok;
    if (op == LC_OP_GET_ROWS) {
        const int64_t yne[2] = {ne0, 1};
        ok = lc_tensor_layout(&x, LC_I32, 1, one) == LC_OK && lc_tensor_layout(&y, LC_F32, 2, yne) == LC_OK;
        n.src[0] = &w;
        n.src[1] = &x;
    } else {
        const int64_t xne[2] = {ne0, 1}, yne[2] = {ne1, 1};
        ok = lc_tensor_layout(&x, LC_F32, 2, xne) == LC_OK && lc_tensor_layout(&y, LC_F32, 2, yne) == LC_OK;
        n.src[0] = &x;
        n.src[1] = &w;
    }
    n.dst[0] = &y;
    lc_clear_error();
    return ok && dev->iface->supports(dev->ctx, &n);
}

/* "f32, f16, q4_0, ..." : the dtypes lorac can hold a weight in (lc_dtype_get, I32 excluded). */
static const char *weight_dtype_list(char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int id = 0; id < LC_DTYPE_MAX && len < cap; id++) {
        if (id == LC_I32 || !lc_dtype_get(id)) continue;
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", lc_dtype_name(id));
    }
    return buf;
}

/* Check one tensor of the file against its slot (shape, dtype, device). */
static lc_status check_tensor(lc_device *dev, const lc_model *m, const char *file, const lc_model_slot_ *sl,
                              const lc_gguf_tensor_info *ti) {
    const int64_t want[4] = {sl->ne0, sl->ne1, 1, 1};
    if (ti->ne[0] != want[0] || ti->ne[1] != want[1] || ti->ne[2] != 1 || ti->ne[3] != 1)
        return lc_error(LC_ERR_FORMAT, "model %s: tensor '%s' has ne {%lld, %lld, %lld, %lld}, expected {%lld, %lld, 1, "
                        "1} for this %s configuration", file, sl->name, (long long)ti->ne[0], (long long)ti->ne[1],
                        (long long)ti->ne[2], (long long)ti->ne[3], (long long)want[0], (long long)want[1],
                        lc_arch_name(m->cfg.arch));
    const char *tname = NULL;
    lc_gguf_ggml_type_traits(ti->type, NULL, NULL, &tname);
    if (!ti->supported || ti->type == LC_I32) {
        char list[256];
        return lc_error(LC_ERR_DTYPE, "model %s: tensor '%s' has ggml type %d (%s), which lorac does not support as a "
                        "weight (supported: %s)", file, sl->name, ti->type, tname ? tname : "unknown",
                        weight_dtype_list(list, sizeof list));
    }
    if (!sl->matrix) return LC_OK; /* converted to F32 on the host when needed */
    const lc_dtype dt = (lc_dtype)ti->type;
    const bool is_embd = strcmp(sl->name, "token_embd.weight") == 0;
    if (is_embd && !device_takes_weight(dev, LC_OP_GET_ROWS, dt, ti->ne[0], ti->ne[1]))
        return lc_error(LC_ERR_UNSUPPORTED, "model %s: tensor '%s' is %s, which device %s cannot read rows of "
                        "(get_rows)", file, sl->name, lc_dtype_name(dt), dev->info.spec);
    if ((!is_embd || m->cfg.tied_output) && !device_takes_weight(dev, LC_OP_MUL_MAT, dt, ti->ne[0], ti->ne[1]))
        return lc_error(LC_ERR_UNSUPPORTED, "model %s: tensor '%s' is %s, which device %s cannot multiply (mul_mat)",
                        file, sl->name, lc_dtype_name(dt), dev->info.spec);
    return LC_OK;
}

/* Upload tensor `id` into *sl->field: as stored for matrices and F32 vectors; other vectors are
 * dequantised to F32 on the host first. */
static lc_status upload(lc_device *dev, const lc_gguf *f, int64_t id, const lc_model_slot_ *sl) {
    const lc_gguf_tensor_info *ti = lc_gguf_tensor(f, id);
    if (sl->matrix || ti->type == LC_F32) return lc_gguf_tensor_load(f, id, dev, sl->field);
    const int64_t n = sl->ne0;
    float *h = malloc((size_t)n * sizeof *h);
    if (!h) return lc_error(LC_ERR_NOMEM, "model %s: out of host memory for '%s'", lc_gguf_path(f), sl->name);
    lc_status st = lc_dequantize_row((lc_dtype)ti->type, ti->data, h, n);
    const int64_t ne[1] = {n};
    if (st == LC_OK) st = lc_tensor_new(dev, LC_F32, 1, ne, sl->name, LC_TENSOR_FROZEN, sl->field);
    if (st == LC_OK) st = lc_tensor_set_f32(*sl->field, h, n);
    free(h);
    if (st != LC_OK) st = lc_error(st, "model %s: tensor '%s': %s", lc_gguf_path(f), sl->name, lc_last_error());
    return st;
}

lc_status lc_model_from_gguf(lc_device *dev, const lc_gguf *f, lc_model **model, lc_tokenizer **tok) {
    if (!model) return lc_error(LC_ERR_INVALID_ARG, "lc_model_from_gguf: model is NULL");
    *model = NULL;
    if (tok) *tok = NULL;
    if (!dev || !f) return lc_error(LC_ERR_INVALID_ARG, "lc_model_from_gguf: device or file is NULL");
    const char *file = lc_gguf_path(f);
    lc_model_config cfg;
    TRY(lc_model_config_from_gguf(f, &cfg));
    lc_model *m = lc_model_shell_(dev, &cfg);
    if (!m) return LC_ERR_NOMEM;
    lc_tokenizer *tk = NULL;
    const int n_slots = lc_model_slots_(m, NULL, 0);
    const int64_t n_file = lc_gguf_n_tensors(f);
    lc_model_slot_ *slots = malloc((size_t)n_slots * sizeof *slots);
    int64_t *ids = malloc((size_t)n_slots * sizeof *ids);
    bool *used = calloc((size_t)(n_file > 0 ? n_file : 1), sizeof *used);
    lc_status st = LC_OK;
    if (!slots || !ids || !used) {
        st = lc_error(LC_ERR_NOMEM, "model %s: out of host memory", file);
        goto done;
    }
    lc_model_slots_(m, slots, n_slots);

    /* 1. Every tensor checked before anything is uploaded. */
    int n_missing = 0, first_missing = -1;
    for (int i = 0; i < n_slots; i++) {
        ids[i] = lc_gguf_find_tensor(f, slots[i].name);
        if (ids[i] < 0) {
            if (n_missing++ == 0) first_missing = i;
            continue;
        }
        used[ids[i]] = true;
    }
    if (n_missing) {
        st = lc_error(LC_ERR_FORMAT, "model %s: tensor '%s' is missing (%d tensor%s of the %s layout with %d layers "
                      "missing in all)", file, slots[first_missing].name, n_missing, n_missing > 1 ? "s" : "",
                      lc_arch_name(cfg.arch), cfg.n_layer);
        goto done;
    }
    for (int i = 0; i < n_slots && st == LC_OK; i++) st = check_tensor(dev, m, file, &slots[i], lc_gguf_tensor(f, ids[i]));
    if (st != LC_OK) goto done;
    for (int64_t i = 0; i < n_file; i++) {
        if (used[i]) continue;
        const char *name = lc_gguf_tensor(f, i)->name;
        if (strcmp(name, "rope_freqs.weight") == 0)
            st = lc_error(LC_ERR_UNSUPPORTED, "model %s: tensor 'rope_freqs.weight' (per-dimension rope frequency "
                          "factors, Llama 3.1 rope scaling) is not supported yet", file);
        else
            st = lc_error(LC_ERR_FORMAT, "model %s: unexpected tensor '%s': the %s layout with %d layers%s does not use "
                          "it", file, name, lc_arch_name(cfg.arch), cfg.n_layer,
                          cfg.qkv_bias ? "" : " and no q/k/v biases");
        goto done;
    }
    if (tok) {
        if ((st = lc_model_tokenizer_from_gguf(f, &tk)) != LC_OK) goto done;
        if (lc_tokenizer_n_vocab(tk) > cfg.n_vocab) {
            st = lc_error(LC_ERR_FORMAT, "model %s: the tokenizer has %d tokens but the model only %d rows in "
                          "token_embd", file, lc_tokenizer_n_vocab(tk), cfg.n_vocab);
            goto done;
        }
    }

    /* 2. Upload each tensor once, keeping its dtype. */
    for (int i = 0; i < n_slots && st == LC_OK; i++) st = upload(dev, f, ids[i], &slots[i]);

done:
    free(slots);
    free(ids);
    free(used);
    if (st != LC_OK) {
        lc_model_free(m);
        lc_tokenizer_free(tk);
        return st;
    }
    *model = m;
    if (tok) *tok = tk;
    return LC_OK;
}

lc_status lc_model_load_gguf(lc_device *dev, const char *path, lc_model **model, lc_tokenizer **tok) {
    if (!model) return lc_error(LC_ERR_INVALID_ARG, "lc_model_load_gguf: model is NULL");
    *model = NULL;
    if (tok) *tok = NULL;
    if (!dev || !path) return lc_error(LC_ERR_INVALID_ARG, "lc_model_load_gguf: device or path is NULL");
    lc_gguf *f = NULL;
    TRY(lc_gguf_open(path, &f));
    lc_status st = lc_model_from_gguf(dev, f, model, tok);
    lc_gguf_close(f);
    return st;
}
