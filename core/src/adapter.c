/* lorac — adapter files: what the PEFT and GGUF formats share (checking a set against a model,
 * building a set with per-module ranks, the Llama q/k row order, refusing non-finite values),
 * lc_adapter_load, which picks the format of a path, and what every tool that writes an adapter
 * or a merged model shares: the adapter's descriptive metadata (lc_adapter_meta_from_model) and
 * the refusal to overwrite an input (lc_adapter_check_out_path). Formats: lorac/adapter.h.
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
#include "lorac/gguf.h"
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

/* ---- values ---------------------------------------------------------------------------------- */

lc_status lc_adapter_check_finite(const float *x, int64_t n, const char *file, const char *tensor) {
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            if (first < 0) first = i;
            bad++;
        }
    if (bad == 0) return LC_OK;
    return lc_error(LC_ERR_FORMAT, "adapter: %s: tensor '%s' holds %lld NaN or infinite value%s of %lld (the first, "
                    "element %lld, is %g); such an adapter (from a diverged training run?) would make every output "
                    "NaN", file, tensor, (long long)bad, bad == 1 ? "" : "s", (long long)n, (long long)first,
                    (double)x[first]);
}

/* ---- outputs that would overwrite an input --------------------------------------------------- */

/* Both paths exist and are one file (device and inode, after symbolic links). */
static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

#define OUT_PATH_MAX 4200

typedef struct named_path {
    char path[OUT_PATH_MAX];
    const char *what;
} named_path;

/* dir + "/" + name (name NULL: dir alone) into p->path; false when it does not fit (a path that
 * long cannot be opened, and a cut one must not be compared). */
static bool set_named(named_path *p, const char *dir, const char *name, const char *what) {
    const int k = name ? snprintf(p->path, sizeof p->path, "%s/%s", dir, name)
                       : snprintf(p->path, sizeof p->path, "%s", dir);
    p->what = what;
    return k > 0 && (size_t)k < sizeof p->path;
}

lc_status lc_adapter_check_out_path(const char *out_path, bool out_is_peft_dir, const char *model_path,
                                    const char *adapter_path, const char *who) {
    if (!who) who = "adapter";
    if (!out_path) return lc_error(LC_ERR_INVALID_ARG, "%s: the output path is NULL", who);
    named_path in[6], out[3];
    int n_in = 0, n_out = 0;
    if (model_path && set_named(&in[n_in], model_path, NULL, "the base model file")) n_in++;
    if (adapter_path) {
        if (set_named(&in[n_in], adapter_path, NULL, "the adapter")) n_in++;
        /* A PEFT adapter is a directory with two files; lc_adapter_load also takes either file. */
        char dir[OUT_PATH_MAX] = "";
        struct stat sb;
        const char *slash = strrchr(adapter_path, '/');
        const char *base = slash ? slash + 1 : adapter_path;
        if (stat(adapter_path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            snprintf(dir, sizeof dir, "%s", adapter_path);
        } else if (strcmp(base, LC_PEFT_WEIGHTS_FILE) == 0 || strcmp(base, LC_PEFT_CONFIG_FILE) == 0) {
            if (!slash) snprintf(dir, sizeof dir, ".");
            else if (slash == adapter_path) snprintf(dir, sizeof dir, "/");
            else snprintf(dir, sizeof dir, "%.*s", (int)(slash - adapter_path), adapter_path);
            if (set_named(&in[n_in], dir, NULL, "the adapter's directory")) n_in++;
        }
        if (dir[0]) {
            if (set_named(&in[n_in], dir, LC_PEFT_CONFIG_FILE, "the adapter's " LC_PEFT_CONFIG_FILE)) n_in++;
            if (set_named(&in[n_in], dir, LC_PEFT_WEIGHTS_FILE, "the adapter's " LC_PEFT_WEIGHTS_FILE)) n_in++;
        }
    }
    if (set_named(&out[n_out], out_path, NULL, NULL)) n_out++;
    if (out_is_peft_dir) {
        if (set_named(&out[n_out], out_path, LC_PEFT_CONFIG_FILE, LC_PEFT_CONFIG_FILE)) n_out++;
        if (set_named(&out[n_out], out_path, LC_PEFT_WEIGHTS_FILE, LC_PEFT_WEIGHTS_FILE)) n_out++;
    }
    for (int o = 0; o < n_out; o++)
        for (int i = 0; i < n_in; i++) {
            if (!same_file(out[o].path, in[i].path)) continue;
            if (!out[o].what)
                return lc_error(LC_ERR_INVALID_ARG, "%s: the output '%s' is %s '%s' itself (the same file); writing "
                                "it would destroy its input: write to another path", who, out_path, in[i].what,
                                in[i].path);
            return lc_error(LC_ERR_INVALID_ARG, "%s: the output '%s' would write its %s '%s', which is %s '%s' "
                            "itself (the same file); write to another directory", who, out_path, out[o].what,
                            out[o].path, in[i].what, in[i].path);
        }
    return LC_OK;
}

/* ---- descriptive metadata -------------------------------------------------------------------- */

/* Copy src into dst[cap], cut at a UTF-8 character boundary when it does not fit. */
static void copy_utf8(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--; /* src[n] would start the cut char */
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool repo_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

/* "http(s)://huggingface.co/<org>/<name>[/]" -> "<org>/<name>" in out[cap]. */
static bool hf_repo_id(const char *url, char *out, size_t cap) {
    static const char *const prefixes[] = {"https://huggingface.co/", "http://huggingface.co/"};
    const char *p = NULL;
    for (size_t k = 0; k < 2 && !p; k++)
        if (strncmp(url, prefixes[k], strlen(prefixes[k])) == 0) p = url + strlen(prefixes[k]);
    if (!p) return false;
    size_t n = strlen(p);
    if (n > 0 && p[n - 1] == '/') n--;
    int slashes = 0;
    size_t seg = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '/') {
            if (seg == 0) return false;
            slashes++;
            seg = 0;
        } else if (repo_char(p[i])) {
            seg++;
        } else {
            return false;
        }
    }
    if (slashes != 1 || seg == 0 || n >= cap) return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* The non-empty string value of `key`, or NULL. */
static const char *gguf_str(const lc_gguf *f, const char *key) {
    const char *v = NULL;
    if (!f || lc_gguf_find_key(f, key) < 0) return NULL;
    if (lc_gguf_get_string(f, key, &v, NULL) != LC_OK) {
        lc_clear_error();
        return NULL;
    }
    return v && *v ? v : NULL;
}

lc_status lc_adapter_meta_from_model(const char *model_path, lc_adapter_meta_buf *buf, lc_adapter_meta *meta) {
    if (!model_path || !buf || !meta)
        return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_meta_from_model: model_path, buf and meta must not be NULL");
    const char *slash = strrchr(model_path, '/');
    const char *file = slash ? slash + 1 : model_path;
    lc_gguf *f = NULL;
    if (lc_gguf_open(model_path, &f) != LC_OK) {
        lc_clear_error();
        f = NULL;
    }
    const char *gname = gguf_str(f, "general.name");
    const char *urls[2] = {gguf_str(f, "general.source.repo_url"), gguf_str(f, "general.source.url")};
    bool have_id = false;
    for (int k = 0; k < 2 && !have_id; k++)
        have_id = urls[k] && hf_repo_id(urls[k], buf->base_model_name_or_path, sizeof buf->base_model_name_or_path);
    if (!have_id) copy_utf8(buf->base_model_name_or_path, sizeof buf->base_model_name_or_path, gname ? gname : file);
    static const char suffix[] = " LoRA";
    copy_utf8(buf->name, sizeof buf->name - (sizeof suffix - 1), gname ? gname : file);
    memcpy(buf->name + strlen(buf->name), suffix, sizeof suffix);
    lc_gguf_close(f);
    meta->base_model_name_or_path = buf->base_model_name_or_path;
    meta->name = buf->name;
    return LC_OK;
}
