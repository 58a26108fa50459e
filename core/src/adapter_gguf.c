/* lorac — llama.cpp GGUF LoRA adapters (format: lorac/adapter.h; reference/formats.md "GGUF LoRA
 * file", from llama.cpp convert_lora_to_gguf.py and src/llama-adapter.cpp).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_internal.h"
#include "lorac/adapter.h"
#include "lorac/dtype.h"
#include "lorac/gguf.h"
#include "lorac/lora.h"

#define SUFFIX_A ".weight.lora_a"
#define SUFFIX_B ".weight.lora_b"

/* llama.cpp's scale for a module of rank r: alpha / r, or 1 when alpha is 0 (float arithmetic). */
static float gguf_scale(float alpha, int r) { return alpha != 0.0f ? alpha / (float)r : 1.0f; }

static bool scale_equal(float a, float b) { return a == b || fabsf(a - b) <= 1e-6f * fabsf(b); }

lc_status lc_adapter_save_gguf(const lc_model *model, const lc_lora_set *set, const char *path,
                               const lc_adapter_meta *meta) {
    if (!model || !set || !path || !path[0])
        return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_save_gguf: model, set or path is NULL or empty");
    lc_status st = lc_adapter_check_set(model, set, "lc_adapter_save_gguf");
    if (st) return st;
    if (set->n_modules < 1) return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_save_gguf: the LoRA set has no module");
    /* One alpha for the file. With rsLoRA, alpha·sqrt(r) of the first module makes alpha / r its
     * scaling (all of them when the ranks agree). */
    const lc_lora_module *m0 = &set->modules[0];
    float alpha = set->cfg.use_rslora ? (float)((double)m0->scaling * m0->r) : set->cfg.lora_alpha;
    if (!isfinite(alpha)) return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_save_gguf: lora_alpha %g is not finite", (double)alpha);
    lc_gguf_writer *w = NULL;
    st = lc_gguf_writer_new(&w);
    if (!st) st = lc_gguf_writer_set_string(w, "general.architecture", lc_arch_name(model->cfg.arch));
    if (!st) st = lc_gguf_writer_set_string(w, "general.type", "adapter");
    if (!st && meta && meta->name) st = lc_gguf_writer_set_string(w, "general.name", meta->name);
    if (!st) st = lc_gguf_writer_set_string(w, "adapter.type", "lora");
    if (!st) st = lc_gguf_writer_set_f32(w, "adapter.lora.alpha", alpha);
    for (int i = 0; i < set->n_modules && !st; i++) {
        const lc_lora_module *lm = &set->modules[i];
        const int64_t r = lm->r, in = lm->lora_a->ne[0], out = lm->lora_b->ne[1];
        float *a = malloc((size_t)(r * in) * sizeof *a), *b = malloc((size_t)(r * out) * sizeof *b);
        if (!a || !b) st = lc_error(LC_ERR_NOMEM, "adapter: out of host memory for module '%s'", lm->target);
        if (!st) st = lc_tensor_get(lm->lora_a, a, 0, lc_nbytes(lm->lora_a));
        if (!st) st = lc_tensor_get(lm->lora_b, b, 0, lc_nbytes(lm->lora_b));
        const float s_file = gguf_scale(alpha, lm->r);
        if (!st && !scale_equal(s_file, lm->scaling)) { /* fold the difference into B: same scaling·B */
            const double c = (double)lm->scaling / (double)s_file;
            for (int64_t k = 0; k < r * out; k++) b[k] = (float)(b[k] * c);
        }
        char name[LC_GGUF_NAME_MAX + 16];
        const int64_t ne_a[2] = {in, r}, ne_b[2] = {r, out};
        snprintf(name, sizeof name, "blk.%d.%s" SUFFIX_A, lm->layer, lc_module_gguf_name(lm->module));
        if (!st) st = lc_gguf_writer_add_tensor(w, name, LC_F32, 2, ne_a, a, (size_t)(r * in) * sizeof *a);
        snprintf(name, sizeof name, "blk.%d.%s" SUFFIX_B, lm->layer, lc_module_gguf_name(lm->module));
        if (!st) st = lc_gguf_writer_add_tensor(w, name, LC_F32, 2, ne_b, b, (size_t)(r * out) * sizeof *b);
        free(a);
        free(b);
    }
    if (!st) st = lc_gguf_writer_write(w, path);
    lc_gguf_writer_free(w);
    return st;
}

/* A string key that must equal `want` (when `want` is NULL, only its presence is checked and the
 * value returned). */
static lc_status want_string(const lc_gguf *f, const char *key, const char *want, const char **val) {
    const char *path = lc_gguf_path(f);
    const int64_t kid = lc_gguf_find_key(f, key);
    if (kid < 0)
        return lc_error(LC_ERR_FORMAT, "adapter: %s: key '%s' missing (%s)", path, key,
                        strcmp(key, "general.type") == 0 ? "not a GGUF adapter; a base model?" : "a GGUF LoRA adapter has it");
    const char *v = NULL;
    lc_status st = lc_gguf_get_string(f, key, &v, NULL);
    if (st) return st;
    if (want && strcmp(v, want) != 0)
        return lc_error(LC_ERR_FORMAT, "adapter: %s: %s is '%s', expected '%s'", path, key, v, want);
    if (val) *val = v;
    return LC_OK;
}

/* "<target>.weight.lora_a" -> layer and module; 1 on success, 0 for a name that is not a
 * projection LoRA tensor (*is_lora tells whether the suffix was right), -1 for a layer past the
 * model's last (*il set). */
static int parse_name(const char *name, int n_layer, bool *is_a, bool *is_lora, int *il, lc_module *mod) {
    size_t n = strlen(name), ns = strlen(SUFFIX_A);
    *is_lora = false;
    if (n <= ns) return 0;
    if (strcmp(name + n - ns, SUFFIX_A) == 0) *is_a = true;
    else if (strcmp(name + n - ns, SUFFIX_B) == 0) *is_a = false;
    else return 0;
    *is_lora = true;
    char base[LC_GGUF_NAME_MAX];
    if (n - ns >= sizeof base) return 0;
    memcpy(base, name, n - ns);
    base[n - ns] = 0;
    int layer = -1, used = 0;
    if (sscanf(base, "blk.%d.%n", &layer, &used) != 1 || used == 0 || layer < 0) return 0;
    char check[32];
    snprintf(check, sizeof check, "blk.%d.", layer);
    if (strncmp(base, check, strlen(check)) != 0) return 0; /* "blk.+1.", "blk.01." */
    for (int k = 0; k < LC_MOD_COUNT; k++)
        if (strcmp(base + used, lc_module_gguf_name((lc_module)k)) == 0) {
            *il = layer;
            *mod = (lc_module)k;
            return layer < n_layer ? 1 : -1;
        }
    return 0;
}

static lc_status tensor_f32(const lc_gguf *f, int64_t id, lc_tensor *dst) {
    const lc_gguf_tensor_info *ti = lc_gguf_tensor(f, id);
    if (!ti->supported || ti->type == LC_I32)
        return lc_error(LC_ERR_DTYPE, "adapter: %s: tensor '%s' has ggml type %d, which lorac cannot convert to F32",
                        lc_gguf_path(f), ti->name, ti->type);
    const int64_t n = ti->ne[0] * ti->ne[1] * ti->ne[2] * ti->ne[3];
    float *buf = malloc((size_t)(n ? n : 1) * sizeof *buf);
    if (!buf) return lc_error(LC_ERR_NOMEM, "adapter: %s: out of host memory for '%s'", lc_gguf_path(f), ti->name);
    lc_status st = lc_dequantize_row((lc_dtype)ti->type, ti->data, buf, n);
    if (!st) st = lc_adapter_check_finite(buf, n, lc_gguf_path(f), ti->name);
    if (!st) st = lc_tensor_set(dst, buf, 0, lc_nbytes(dst));
    free(buf);
    return st;
}

lc_status lc_adapter_load_gguf(const lc_model *model, const char *path, lc_lora_set **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_load_gguf: out is NULL");
    *out = NULL;
    if (!model || !path) return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_load_gguf: model or path is NULL");
    lc_gguf *f = NULL;
    lc_status st = lc_gguf_open(path, &f);
    if (st) return st;
    const int nl = model->cfg.n_layer, n_slots = nl * LC_MOD_COUNT;
    int64_t *ids = malloc((size_t)(2 * n_slots + 1) * sizeof *ids); /* [slot][a, b] */
    lc_adapter_want *want = calloc((size_t)n_slots + 1, sizeof *want);
    lc_lora_set *set = NULL;
    if (!ids || !want) {
        st = lc_error(LC_ERR_NOMEM, "lc_adapter_load_gguf: out of host memory");
        goto done;
    }
    for (int i = 0; i < 2 * n_slots; i++) ids[i] = -1;
    if ((st = want_string(f, "general.type", "adapter", NULL))) goto done;
    if ((st = want_string(f, "adapter.type", "lora", NULL))) goto done;
    const char *arch = NULL;
    if ((st = want_string(f, "general.architecture", NULL, &arch))) goto done;
    if (strcmp(arch, lc_arch_name(model->cfg.arch)) != 0) {
        st = lc_error(LC_ERR_FORMAT, "adapter: %s: general.architecture is '%s' but the model is '%s' (an adapter for "
                      "another model)", path, arch, lc_arch_name(model->cfg.arch));
        goto done;
    }
    float alpha = 0.0f;
    const int64_t kid = lc_gguf_find_key(f, "adapter.lora.alpha");
    if (kid >= 0) {
        double v;
        if ((st = lc_gguf_kv_get_f64(f, kid, &v))) goto done;
        if (!isfinite(v) || fabs(v) >= (double)FLT_MAX + ldexp(1.0, 103)) { /* would be inf as a float */
            st = lc_error(LC_ERR_FORMAT, "adapter: %s: adapter.lora.alpha = %g is %s", path, v,
                          isfinite(v) ? "out of the float32 range llama.cpp and lorac compute in" : "not finite");
            goto done;
        }
        alpha = (float)v;
    }
    const int64_t nt = lc_gguf_n_tensors(f);
    for (int64_t i = 0; i < nt; i++) {
        const lc_gguf_tensor_info *ti = lc_gguf_tensor(f, i);
        bool is_a = false, is_lora = false;
        int il = -1;
        lc_module mod = LC_MOD_ATTN_Q;
        int res = parse_name(ti->name, nl, &is_a, &is_lora, &il, &mod);
        if (res == -1) {
            st = lc_error(LC_ERR_FORMAT, "adapter: %s: tensor '%s' names layer %d, but the model has %d layers (an "
                          "adapter for another model?)", path, ti->name, il, nl);
            goto done;
        }
        if (res == 0) {
            st = is_lora ? lc_error(LC_ERR_UNSUPPORTED, "adapter: %s: tensor '%s' adapts a weight that is not a "
                                    "projection lorac adapts (blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,"
                                    "ffn_up,ffn_down})", path, ti->name)
                         : lc_error(LC_ERR_FORMAT, "adapter: %s: tensor '%s' is not a LoRA tensor "
                                    "(<target>.weight.lora_a / .lora_b)", path, ti->name);
            goto done;
        }
        int64_t *slot = &ids[2 * (il * LC_MOD_COUNT + mod) + (is_a ? 0 : 1)];
        *slot = i; /* names are unique in a valid GGUF, so no duplicates */
    }
    int best_r = 0, best_count = 0;
    for (int s = 0; s < n_slots; s++) {
        const int64_t ia = ids[2 * s], ib = ids[2 * s + 1];
        if (ia < 0 && ib < 0) continue;
        char base[32];
        snprintf(base, sizeof base, "blk.%d.%s", s / LC_MOD_COUNT, lc_module_gguf_name((lc_module)(s % LC_MOD_COUNT)));
        if (ia < 0 || ib < 0) {
            st = lc_error(LC_ERR_FORMAT, "adapter: %s: module '%s' has no tensor '%s%s'", path, base, base,
                          ia < 0 ? SUFFIX_A : SUFFIX_B);
            goto done;
        }
        const lc_gguf_tensor_info *a = lc_gguf_tensor(f, ia), *b = lc_gguf_tensor(f, ib);
        const lc_tensor *w = lc_model_module_weight(model, s / LC_MOD_COUNT, (lc_module)(s % LC_MOD_COUNT));
        if (a->ne[0] != w->ne[0] || b->ne[1] != w->ne[1] || a->ne[1] != b->ne[0] || a->ne[1] < 1 || a->ne[1] > INT32_MAX ||
            a->ne[2] * a->ne[3] != 1 || b->ne[2] * b->ne[3] != 1) {
            st = lc_error(LC_ERR_FORMAT, "adapter: %s: module '%s': lora_a ne {%lld, %lld}, lora_b ne {%lld, %lld}; the "
                          "model's weight ne {%lld, %lld} needs lora_a {%lld, r} and lora_b {r, %lld} (an adapter for "
                          "another model?)", path, base, (long long)a->ne[0], (long long)a->ne[1], (long long)b->ne[0],
                          (long long)b->ne[1], (long long)w->ne[0], (long long)w->ne[1], (long long)w->ne[0],
                          (long long)w->ne[1]);
            goto done;
        }
        const int r = (int)a->ne[1];
        want[s] = (lc_adapter_want){true, r, alpha != 0.0f ? alpha : (float)r};
        /* most frequent rank, ties to the smaller (a linear scan: adapters have few ranks) */
        int count = 0;
        for (int t = 0; t <= s; t++) count += want[t].present && want[t].r == r;
        if (count > best_count || (count == best_count && r < best_r)) {
            best_count = count;
            best_r = r;
        }
    }
    lc_lora_config cfg = {.r = best_r > 0 ? best_r : 1, .use_rslora = false, .dropout = 0.0f, .seed = 0};
    cfg.lora_alpha = alpha != 0.0f ? alpha : (float)cfg.r;
    if ((st = lc_adapter_new_set(model, &cfg, want, path, &set))) goto done;
    for (int i = 0; i < set->n_modules && !st; i++) {
        lc_lora_module *lm = &set->modules[i];
        const int s = lm->layer * LC_MOD_COUNT + lm->module;
        st = tensor_f32(f, ids[2 * s], lm->lora_a);
        if (!st) st = tensor_f32(f, ids[2 * s + 1], lm->lora_b);
        /* llama.cpp's scale, in its float arithmetic */
        lm->scaling = gguf_scale(alpha, lm->r);
    }
    if (st) {
        lc_lora_set_free(set);
        set = NULL;
    }
done:
    *out = set;
    free(want);
    free(ids);
    lc_gguf_close(f);
    return st;
}
