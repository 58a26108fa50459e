/* lorac — merge a LoRA adapter into a GGUF model file (lorac/merge.h). */
#include "lorac/merge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorac/adapter.h"
#include "lorac/dtype.h"
#include "lorac/lora.h"
#include "lorac/safetensors.h"
#include "lorac/tensor.h"

static const char *const DTYPE_NAMES[LC_MERGE_DTYPE_COUNT] = {"f16", "f32", "keep"};

const char *lc_merge_dtype_name(lc_merge_dtype d) {
    return (unsigned)d < LC_MERGE_DTYPE_COUNT ? DTYPE_NAMES[d] : "unknown";
}

lc_status lc_merge_dtype_parse(const char *s, lc_merge_dtype *out) {
    if (!s || !out) return lc_error(LC_ERR_INVALID_ARG, "lc_merge_dtype_parse: NULL argument");
    for (int i = 0; i < LC_MERGE_DTYPE_COUNT; i++)
        if (strcmp(s, DTYPE_NAMES[i]) == 0) {
            *out = (lc_merge_dtype)i;
            return LC_OK;
        }
    return lc_error(LC_ERR_INVALID_ARG, "merge: unknown output dtype '%s' (accepted: f16, f32, keep)", s);
}

lc_merge_params lc_merge_params_default(void) {
    lc_merge_params p;
    memset(&p, 0, sizeof p);
    p.dtype = LC_MERGE_F16;
    return p;
}

void lc_merge_report_free(lc_merge_report *report) {
    if (!report) return;
    free(report->tensors);
    memset(report, 0, sizeof *report);
}

/* ggml type written for a merged tensor of base type `src`. */
static int out_type(lc_merge_dtype d, int src) {
    switch (d) {
    case LC_MERGE_F32: return LC_F32;
    case LC_MERGE_KEEP: return src;
    default: return LC_F16;
    }
}

/* Merge one module into the F32 copy of its weight; fill *st and the encoded bytes *enc (malloc'd). */
static lc_status merge_one(const lc_gguf_tensor_info *ti, const lc_lora_module *m, lc_merge_dtype dt,
                           lc_merge_tensor_stats *st, double sums[3], void **enc, size_t *enc_size) {
    lc_status s = LC_OK;
    const int64_t n = ti->ne[0] * ti->ne[1];
    const int dst = out_type(dt, ti->type);
    const size_t out_bytes = lc_row_size((lc_dtype)dst, ti->ne[0]) * (size_t)ti->ne[1];
    float *w = malloc((size_t)n * sizeof(float)), *mg = malloc((size_t)n * sizeof(float));
    void *q = malloc(out_bytes ? out_bytes : 1);
    float *back = NULL;
    lc_tensor *wt = NULL;
    *enc = NULL;
    if (!w || !mg || !q) {
        s = lc_error(LC_ERR_NOMEM, "merge: %s: cannot allocate %lld floats", ti->name, (long long)n);
        goto done;
    }
    if ((s = lc_dequantize_row((lc_dtype)ti->type, ti->data, w, n)) != LC_OK) {
        s = lc_error(s, "merge: %s: cannot dequantise type %s: %s", ti->name, lc_dtype_name(ti->type), lc_last_error());
        goto done;
    }
    lc_device *dev = m->lora_a->buffer ? m->lora_a->buffer->device : NULL;
    if (!dev) {
        s = lc_error(LC_ERR_STATE, "merge: %s: lora_A has no device memory", m->target);
        goto done;
    }
    const int64_t ne[2] = {ti->ne[0], ti->ne[1]};
    if ((s = lc_tensor_new(dev, LC_F32, 2, ne, ti->name, LC_TENSOR_FROZEN, &wt)) != LC_OK) goto done;
    if ((s = lc_tensor_set(wt, w, 0, (size_t)n * sizeof(float))) != LC_OK) goto done;
    if ((s = lc_lora_merge(wt, m->lora_a, m->lora_b, m->scaling)) != LC_OK) goto done;
    if ((s = lc_tensor_get(wt, mg, 0, (size_t)n * sizeof(float))) != LC_OK) goto done;
    lc_tensor_free(wt);
    wt = NULL;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(mg[i])) {
            s = lc_error(LC_ERR_NUMERIC, "merge: %s: merged value %g at element %lld is not finite", ti->name,
                         (double)mg[i], (long long)i);
            goto done;
        }
    if ((s = lc_quantize_row((lc_dtype)dst, mg, q, n)) != LC_OK) {
        s = lc_error(s, "merge: %s: storing the merged weight as %s: %s", ti->name, lc_dtype_name(dst), lc_last_error());
        goto done;
    }
    /* Decode what will be stored, to measure what the storage type lost (reuse w's partner buffer). */
    back = malloc((size_t)n * sizeof(float));
    if (!back) {
        s = lc_error(LC_ERR_NOMEM, "merge: %s: cannot allocate %lld floats", ti->name, (long long)n);
        goto done;
    }
    if ((s = lc_dequantize_row((lc_dtype)dst, q, back, n)) != LC_OK) goto done;
    double dd = 0, ee = 0, kd = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(back[i])) {
            s = lc_error(LC_ERR_NUMERIC, "merge: %s: merged value %g at element %lld overflows %s", ti->name,
                         (double)mg[i], (long long)i, lc_dtype_name(dst));
            goto done;
        }
        const double d = (double)mg[i] - (double)w[i];
        const double e = (double)back[i] - (double)mg[i];
        dd += d * d;
        ee += e * e;
        kd += ((double)back[i] - (double)w[i]) * d;
    }
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", ti->name);
    st->src_type = ti->type;
    st->dst_type = dst;
    st->n = n;
    st->scaling = m->scaling;
    st->delta_norm = sqrt(dd);
    st->store_err = sqrt(ee);
    st->rel_err = dd > 0 ? sqrt(ee / dd) : 0.0;
    st->delta_kept = dd > 0 ? kd / dd : 1.0;
    sums[0] += dd;
    sums[1] += ee;
    sums[2] += kd;
    *enc = q;
    *enc_size = out_bytes;
    q = NULL;
done:
    lc_tensor_free(wt);
    free(w);
    free(mg);
    free(back);
    free(q);
    return s;
}

lc_status lc_merge_gguf(const lc_gguf *base, const lc_lora_set *set, const char *out_path, const lc_merge_params *p,
                        lc_merge_report *report) {
    if (report) memset(report, 0, sizeof *report);
    if (!base || !set || !out_path)
        return lc_error(LC_ERR_INVALID_ARG, "lc_merge_gguf: base, set and out_path must not be NULL");
    const lc_merge_params def = lc_merge_params_default();
    if (!p) p = &def;
    if ((unsigned)p->dtype >= LC_MERGE_DTYPE_COUNT)
        return lc_error(LC_ERR_INVALID_ARG, "lc_merge_gguf: dtype %d out of range", (int)p->dtype);
    const char *bpath = lc_gguf_path(base);
    lc_status cs = lc_adapter_check_out_path(out_path, false, bpath, NULL, "merge");
    if (cs != LC_OK) return cs;

    /* The set must fit this file: layer count and every target's shape. */
    const char *arch = NULL;
    if (lc_gguf_find_key(base, "general.architecture") >= 0 &&
        lc_gguf_get_string(base, "general.architecture", &arch, NULL) == LC_OK) {
        char key[128];
        snprintf(key, sizeof key, "%s.block_count", arch);
        int64_t nl = 0;
        if (lc_gguf_find_key(base, key) >= 0 && lc_gguf_get_int(base, key, &nl) == LC_OK && nl != set->n_layer)
            return lc_error(LC_ERR_INVALID_ARG, "merge: the adapter has %d layers but %s has %lld (%s): an adapter "
                            "for another model", set->n_layer, bpath, (long long)nl, key);
    }
    const int64_t nt = lc_gguf_n_tensors(base);
    int *mod_of = malloc((size_t)(nt > 0 ? nt : 1) * sizeof(int));
    if (!mod_of) return lc_error(LC_ERR_NOMEM, "merge: out of memory");
    for (int64_t i = 0; i < nt; i++) mod_of[i] = -1;
    for (int k = 0; k < set->n_modules; k++) {
        const lc_lora_module *m = &set->modules[k];
        char name[LC_GGUF_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s.weight", m->target);
        const int64_t id = lc_gguf_find_tensor(base, name);
        if (id < 0) {
            free(mod_of);
            return lc_error(LC_ERR_INVALID_ARG, "merge: the adapter targets '%s', which %s does not have: an adapter "
                            "for another model", name, bpath);
        }
        const lc_gguf_tensor_info *ti = lc_gguf_tensor(base, id);
        if (!m->lora_a || !m->lora_b || ti->n_dims > 2 || ti->ne[2] != 1 || ti->ne[3] != 1 ||
            ti->ne[0] != m->lora_a->ne[0] || ti->ne[1] != m->lora_b->ne[1] || m->lora_a->ne[1] != m->lora_b->ne[0]) {
            const int64_t a0 = m->lora_a ? m->lora_a->ne[0] : 0, a1 = m->lora_a ? m->lora_a->ne[1] : 0;
            const int64_t b0 = m->lora_b ? m->lora_b->ne[0] : 0, b1 = m->lora_b ? m->lora_b->ne[1] : 0;
            free(mod_of);
            return lc_error(LC_ERR_INVALID_ARG, "merge: '%s' of %s has ne {%lld, %lld, %lld, %lld}, but its adapter "
                            "has lora_A {%lld, %lld} and lora_B {%lld, %lld} (expected W {in, out}, lora_A {in, r}, "
                            "lora_B {r, out}): an adapter for another model", name, bpath, (long long)ti->ne[0],
                            (long long)ti->ne[1], (long long)ti->ne[2], (long long)ti->ne[3], (long long)a0,
                            (long long)a1, (long long)b0, (long long)b1);
        }
        if (!ti->supported) {
            free(mod_of);
            return lc_error(LC_ERR_DTYPE, "merge: '%s' of %s has ggml type %d, which lorac cannot dequantise", name,
                            bpath, ti->type);
        }
        if (mod_of[id] >= 0) {
            free(mod_of);
            return lc_error(LC_ERR_INVALID_ARG, "merge: two adapter modules target '%s'", name);
        }
        mod_of[id] = k;
    }

    lc_status s = LC_OK;
    lc_gguf_writer *wr = NULL;
    void **bufs = calloc((size_t)(set->n_modules > 0 ? set->n_modules : 1), sizeof(void *));
    lc_merge_tensor_stats *stats = calloc((size_t)(set->n_modules > 0 ? set->n_modules : 1), sizeof *stats);
    int n_merged = 0;
    double sums[3] = {0, 0, 0};
    uint64_t bytes_in = 0, bytes_out = 0;
    if (!bufs || !stats) {
        s = lc_error(LC_ERR_NOMEM, "merge: out of memory");
        goto done;
    }
    if ((s = lc_gguf_writer_new(&wr)) != LC_OK) goto done;
    for (int64_t k = 0; k < lc_gguf_n_kv(base); k++)
        if ((s = lc_gguf_writer_copy_kv(wr, base, k)) != LC_OK) goto done;
    for (int64_t i = 0; i < nt; i++) {
        const lc_gguf_tensor_info *ti = lc_gguf_tensor(base, i);
        bytes_in += ti->size;
        if (mod_of[i] < 0) {
            if (p->progress) p->progress(p->user, (int)i, (int)nt, ti->name, NULL);
            s = lc_gguf_writer_add_tensor_ref(wr, ti->name, ti->type, ti->n_dims, ti->ne, ti->data, (size_t)ti->size);
            if (s != LC_OK) goto done;
            bytes_out += ti->size;
            continue;
        }
        lc_merge_tensor_stats *st = &stats[n_merged];
        size_t sz = 0;
        s = merge_one(ti, &set->modules[mod_of[i]], p->dtype, st, sums, &bufs[n_merged], &sz);
        if (s != LC_OK) goto done;
        if (p->progress) p->progress(p->user, (int)i, (int)nt, ti->name, st);
        const int64_t ne[2] = {ti->ne[0], ti->ne[1]};
        s = lc_gguf_writer_add_tensor_ref(wr, ti->name, st->dst_type, 2, ne, bufs[n_merged], sz);
        n_merged++;
        if (s != LC_OK) goto done;
        bytes_out += sz;
    }
    if ((s = lc_gguf_writer_write(wr, out_path)) != LC_OK) goto done;
    if (report) {
        report->n_tensors = (int)nt;
        report->n_merged = n_merged;
        report->tensors = stats;
        stats = NULL;
        report->delta_norm = sqrt(sums[0]);
        report->store_err = sqrt(sums[1]);
        report->rel_err = sums[0] > 0 ? sqrt(sums[1] / sums[0]) : 0.0;
        report->delta_kept = sums[0] > 0 ? sums[2] / sums[0] : 1.0;
        report->bytes_in = bytes_in;
        report->bytes_out = bytes_out;
    }
done:
    lc_gguf_writer_free(wr);
    if (bufs)
        for (int k = 0; k < n_merged; k++) free(bufs[k]);
    free(bufs);
    free(stats);
    free(mod_of);
    return s;
}

/* Does the adapter at `path` aim at the output layer or the token embedding? Sets *what to a
 * description ("tensor 'output.weight.lora_a'"). Unreadable or unknown files are left to
 * lc_adapter_load, which reports them. */
static bool adapter_targets_output(const char *path, char *what, size_t cap) {
    struct stat sb;
    if (stat(path, &sb) != 0) return false;
    char st_path[4096];
    if (S_ISDIR(sb.st_mode)) {
        snprintf(st_path, sizeof st_path, "%s/%s", path, LC_PEFT_WEIGHTS_FILE);
    } else {
        FILE *f = fopen(path, "rb");
        char magic[4] = {0};
        const bool is_gguf = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, LC_GGUF_MAGIC, 4) == 0;
        if (f) fclose(f);
        if (is_gguf) {
            lc_gguf *g = NULL;
            if (lc_gguf_open(path, &g) != LC_OK) {
                lc_clear_error();
                return false;
            }
            bool hit = false;
            for (int64_t i = 0; i < lc_gguf_n_tensors(g) && !hit; i++) {
                const char *nm = lc_gguf_tensor(g, i)->name;
                if (strncmp(nm, "output.weight", 13) == 0 || strncmp(nm, "token_embd.weight", 17) == 0) {
                    snprintf(what, cap, "tensor '%s'", nm);
                    hit = true;
                }
            }
            lc_gguf_close(g);
            return hit;
        }
        const char *slash = strrchr(path, '/');
        const size_t dl = slash ? (size_t)(slash - path) : 1;
        snprintf(st_path, sizeof st_path, "%.*s/%s", (int)dl, slash ? path : ".", LC_PEFT_WEIGHTS_FILE);
    }
    lc_safetensors *sf = NULL;
    if (lc_safetensors_open(st_path, &sf) != LC_OK) {
        lc_clear_error();
        return false;
    }
    bool hit = false;
    for (int64_t i = 0; i < lc_safetensors_n_tensors(sf) && !hit; i++) {
        const char *nm = lc_safetensors_tensor(sf, i)->name;
        if (strstr(nm, "lm_head.") || strstr(nm, "embed_tokens.")) {
            snprintf(what, cap, "key '%s'", nm);
            hit = true;
        }
    }
    lc_safetensors_close(sf);
    return hit;
}

lc_status lc_merge_files(lc_device *dev, const char *model_path, const char *adapter_path, const char *out_path,
                         const lc_merge_params *p, lc_merge_report *report) {
    if (report) memset(report, 0, sizeof *report);
    if (!dev || !model_path || !adapter_path || !out_path)
        return lc_error(LC_ERR_INVALID_ARG, "lc_merge_files: dev, model_path, adapter_path and out_path must not be NULL");
    /* Neither the base nor the adapter may be overwritten (lc_merge_gguf checks the base again). */
    lc_status s = lc_adapter_check_out_path(out_path, false, model_path, adapter_path, "merge");
    if (s != LC_OK) return s;
    lc_gguf *f = NULL;
    lc_model *model = NULL;
    lc_lora_set *set = NULL;
    s = lc_gguf_open(model_path, &f);
    if (s != LC_OK) return s;
    if ((s = lc_model_from_gguf(dev, f, &model, NULL)) != LC_OK) goto done;
    char what[160];
    if (adapter_targets_output(adapter_path, what, sizeof what)) {
        s = model->cfg.tied_output
                ? lc_error(LC_ERR_UNSUPPORTED, "merge: adapter %s has %s aimed at the output layer, but %s has its "
                           "output tied to token_embd (no output.weight): merging it would change the token embedding "
                           "too; refused", adapter_path, what, model_path)
                : lc_error(LC_ERR_UNSUPPORTED, "merge: adapter %s has %s aimed at the output layer or the token "
                           "embedding, which lorac does not adapt", adapter_path, what);
        goto done;
    }
    if ((s = lc_adapter_load(model, adapter_path, &set)) != LC_OK) goto done;
    s = lc_merge_gguf(f, set, out_path, p, report);
done:
    lc_lora_set_free(set);
    lc_model_free(model);
    lc_gguf_close(f);
    return s;
}
