/* lorac — adapter files: what the PEFT and GGUF formats share (checking a set against a model,
 * building a set with per-module ranks, the Llama q/k row order) and lc_adapter_load, which picks
 * the format of a path. Formats: lorac/adapter.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_internal.h"
#include "lorac/lora.h"

lc_status lc_adapter_check_set(const lc_model *model, const lc_lora_set *set, const char *who) {
    if (set->n_layer != model->cfg.n_layer)
        return lc_error(LC_ERR_INVALID_ARG, "%s: the LoRA set was made for a model with %d layers, this model has %d",
                        who, set->n_layer, model->cfg.n_layer);
    if (set->n_modules < 0 || (set->n_modules > 0 && !set->modules))
        return lc_error(LC_ERR_INVALID_ARG, "%s: the LoRA set has no module array", who);
    for (int i = 0; i < set->n_modules; i++) {
        const lc_lora_module *lm = &set->modules[i];
        const lc_tensor *w = lc_model_module_weight(model, lm->layer, lm->module);
        if (!w)
            return lc_error(LC_ERR_INVALID_ARG, "%s: LoRA module %d ('%s') names layer %d module %d, which the model "
                            "does not have", who, i, lm->target, lm->layer, (int)lm->module);
        const lc_tensor *a = lm->lora_a, *b = lm->lora_b;
        if (!a || !b || a->dtype != LC_F32 || b->dtype != LC_F32)
            return lc_error(LC_ERR_INVALID_ARG, "%s: LoRA module '%s': lora_A and lora_B must be F32 tensors", who,
                            lm->target);
        if (lm->r < 1 || a->ne[0] != w->ne[0] || a->ne[1] != lm->r || b->ne[0] != lm->r || b->ne[1] != w->ne[1] ||
            a->ne[2] * a->ne[3] != 1 || b->ne[2] * b->ne[3] != 1 || !lc_is_contiguous(a) || !lc_is_contiguous(b))
            return lc_error(LC_ERR_INVALID_ARG, "%s: LoRA module '%s' (r = %d): lora_A ne {%lld, %lld}, lora_B ne "
                            "{%lld, %lld}; the model's weight ne {%lld, %lld} needs lora_A {%lld, %d} and lora_B "
                            "{%d, %lld} (a set made for another model?)", who, lm->target, lm->r,
                            (long long)a->ne[0], (long long)a->ne[1], (long long)b->ne[0], (long long)b->ne[1],
                            (long long)w->ne[0], (long long)w->ne[1], (long long)w->ne[0], lm->r, lm->r,
                            (long long)w->ne[1]);
    }
    return LC_OK;
}

lc_status lc_adapter_new_set(const lc_model *model, const lc_lora_config *cfg, const lc_adapter_want *want,
                             const char *who, lc_lora_set **out) {
    *out = NULL;
    const int nl = model->cfg.n_layer;
    lc_lora_config c = *cfg;
    c.target_mask = 0;
    for (int il = 0; il < nl; il++)
        for (int k = 0; k < LC_MOD_COUNT; k++)
            if (want[il * LC_MOD_COUNT + k].present) c.target_mask |= 1u << k;
    if (!c.target_mask) return lc_error(LC_ERR_FORMAT, "%s: the adapter holds no LoRA module", who);
    lc_lora_set *s = NULL;
    lc_status st = lc_lora_set_new(model, &c, &s);
    if (st) return st;
    /* Drop the modules of layers the adapter does not cover (the set is layer-major). */
    int kept = 0;
    for (int i = 0; i < s->n_modules; i++) {
        lc_lora_module *lm = &s->modules[i];
        if (!want[lm->layer * LC_MOD_COUNT + lm->module].present) {
            lc_tensor_free(lm->lora_a);
            lc_tensor_free(lm->lora_b);
            continue;
        }
        if (kept != i) s->modules[kept] = *lm;
        kept++;
    }
    s->n_modules = kept;
    for (int j = 0; j < nl * LC_MOD_COUNT; j++) s->slot[j] = -1;
    for (int i = 0; i < kept && st == LC_OK; i++) {
        lc_lora_module *lm = &s->modules[i];
        const lc_adapter_want *wt = &want[lm->layer * LC_MOD_COUNT + lm->module];
        s->slot[lm->layer * LC_MOD_COUNT + lm->module] = i;
        lm->lora_alpha = wt->lora_alpha;
        if (wt->r != lm->r) {
            const lc_tensor *w = lc_model_module_weight(model, lm->layer, lm->module);
            char na[LC_NAME_MAX], nb[LC_NAME_MAX];
            snprintf(na, sizeof na, "%s", lm->lora_a->name);
            snprintf(nb, sizeof nb, "%s", lm->lora_b->name);
            const uint32_t flags = lm->lora_a->flags;
            lc_tensor_free(lm->lora_a);
            lc_tensor_free(lm->lora_b);
            lm->lora_a = lm->lora_b = NULL;
            lm->r = wt->r;
            const int64_t ne_a[2] = {w->ne[0], wt->r}, ne_b[2] = {wt->r, w->ne[1]};
            st = lc_tensor_new(model->dev, LC_F32, 2, ne_a, na, flags, &lm->lora_a);
            if (!st) st = lc_tensor_new(model->dev, LC_F32, 2, ne_b, nb, flags, &lm->lora_b);
            if (!st) st = lc_lora_init(lm->lora_a, lm->lora_b, c.seed, lm->module_id);
        }
        lm->scaling = lc_lora_scaling(lm->r, lm->lora_alpha, c.use_rslora);
    }
    if (st) {
        lc_lora_set_free(s);
        return st;
    }
    *out = s;
    return LC_OK;
}

bool lc_adapter_qk_permuted(const lc_model *model, lc_module mod, int *n_heads) {
    if (model->cfg.rope_mode != LC_ROPE_NORM) return false;
    if (mod == LC_MOD_ATTN_Q) {
        *n_heads = model->cfg.n_head;
        return true;
    }
    if (mod == LC_MOD_ATTN_K) {
        *n_heads = model->cfg.n_head_kv;
        return true;
    }
    return false;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

lc_status lc_adapter_load(const lc_model *model, const char *path, lc_lora_set **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_load: out is NULL");
    *out = NULL;
    if (!model || !path) return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_load: model or path is NULL");
    struct stat sb;
    if (stat(path, &sb) != 0) return lc_error(LC_ERR_IO, "adapter: %s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return lc_adapter_load_peft(model, path, out);
    if (ends_with(path, "/" LC_PEFT_WEIGHTS_FILE) || ends_with(path, "/" LC_PEFT_CONFIG_FILE) ||
        strcmp(path, LC_PEFT_WEIGHTS_FILE) == 0 || strcmp(path, LC_PEFT_CONFIG_FILE) == 0) {
        const char *slash = strrchr(path, '/');
        if (!slash) return lc_adapter_load_peft(model, ".", out);
        size_t n = (size_t)(slash - path);
        char *dir = malloc(n + 2);
        if (!dir) return lc_error(LC_ERR_NOMEM, "adapter: %s: out of host memory", path);
        if (n == 0)
            strcpy(dir, "/");
        else {
            memcpy(dir, path, n);
            dir[n] = 0;
        }
        lc_status st = lc_adapter_load_peft(model, dir, out);
        free(dir);
        return st;
    }
    char magic[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lc_error(LC_ERR_IO, "adapter: %s: cannot open: %s", path, strerror(errno));
    ssize_t got = read(fd, magic, 4);
    close(fd);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return lc_adapter_load_gguf(model, path, out);
    return lc_error(LC_ERR_FORMAT, "adapter: %s is neither a PEFT adapter directory (adapter_config.json + "
                    "adapter_model.safetensors) nor a GGUF file", path);
}
