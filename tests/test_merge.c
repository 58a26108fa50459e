/* lorac tests — suite "merge": merging a LoRA adapter into a GGUF model (lorac/merge.h) and
 * unmerging (lc_lora_merge with -scaling).
 *
 * Models: tests/fixtures/tiny_llama.gguf (NORM rope, untied, Q8_0 blk.1.attn_v / blk.1.ffn_up)
 * and tiny_qwen2.gguf (NEOX rope, tied output, Q8_0 blk.0.attn_k, blk.1.ffn_gate,
 * blk.1.attn_output), made by tests/tools/make_tiny_llama.py. Adapter: lc_lora_set_new on every
 * projection with r = 3 (so A {in, 3} is non-square and a transposed or swapped merge fails) and
 * lora_alpha 6 (scaling 2), A from lc_lora_init and B random non-zero.
 * Checks, each against an independent value:
 *  - every targeted tensor of the merged file equals W + s·B·A computed here by plain double loops
 *    from the base file's bytes (F32 output: to F32 rounding; F16 output: to half rounding);
 *  - every other tensor is byte-identical (same type, ne, bytes); every metadata key is equal;
 *  - logits of the merged model (F32) through lc_model_forward equal those of the base model with
 *    the adapter applied (1e-4 relative to the largest logit);
 *  - the same merge through the adapter files: PEFT directory (q/k rows permuted on save and back
 *    on load for the llama model) and llama.cpp GGUF give the same merged weights;
 *  - --dtype keep re-quantises Q8_0 weights and reports a non-zero loss for them, zero for F32;
 *  - merge then unmerge on the device restores W to rounding;
 *  - errors: an adapter for another model (shapes, layer count, architecture), an adapter aimed
 *    at the output of a tied model, an unwritable output path and the base file as output: a clean
 *    error and no output file, no temporary file;
 *  - an output that is an input (the base through ./, dir/../, a symbolic link; the adapter's GGUF
 *    file; a file of its PEFT directory) is refused and the input stays byte-identical.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/lt_util.h"
#include "common/lt_suite.h"
#include "lorac/adapter.h"
#include "lorac/dtype.h"
#include "lorac/gguf.h"
#include "lorac/lora.h"
#include "lorac/lorac.h"
#include "lorac/merge.h"
#include "lorac/model.h"

#define FIX(name) LORAC_FIXTURE_DIR "/" name

static char tmpdir[256];

static void setup_tmp(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lorac_test_merge_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_rf_tmp(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static lc_device *open_cpu(void) {
    lc_device *dev = NULL;
    ck_assert_msg(lc_device_open("cpu", &dev) == LC_OK, "open cpu: %s", lc_last_error());
    return dev;
}

/* A set on every projection, r 3, alpha 6, A from lc_lora_init, B uniform in ±0.5 (seeded). */
static lc_lora_set *random_set(const lc_model *m, uint64_t seed) {
    lc_lora_config cfg = {.r = 3, .lora_alpha = 6.0f, .use_rslora = false, .dropout = 0.0f,
                          .target_mask = LC_MOD_MASK_ALL, .seed = seed};
    lc_lora_set *set = NULL;
    ck_assert_msg(lc_lora_set_new(m, &cfg, &set) == LC_OK, "lc_lora_set_new: %s", lc_last_error());
    lt_rng rng;
    lt_rng_seed(&rng, seed * 7919u + 1);
    for (int k = 0; k < set->n_modules; k++) {
        lc_tensor *b = set->modules[k].lora_b;
        const int64_t n = lc_nelements(b);
        float *v = lt_falloc(n);
        lt_fill_uniform(&rng, v, n, -0.5f, 0.5f);
        ck_assert_int_eq(lc_tensor_set_f32(b, v, n), LC_OK);
        free(v);
    }
    return set;
}

/* Host copy of a tensor's F32 values. */
static float *get_f32(const lc_tensor *t) {
    const int64_t n = lc_nelements(t);
    float *v = lt_falloc(n);
    ck_assert_int_eq(lc_tensor_get_f32(t, v, n), LC_OK);
    return v;
}

/* W + s·B·A by plain double loops; W from the base file's bytes. Returns [in*out] doubles. */
static double *ref_merge(const lc_gguf_tensor_info *ti, const lc_lora_module *m) {
    const int64_t in = ti->ne[0], out = ti->ne[1], r = m->r;
    float *w = lt_falloc(in * out);
    ck_assert_int_eq(lc_dequantize_row((lc_dtype)ti->type, ti->data, w, in * out), LC_OK);
    float *a = get_f32(m->lora_a), *b = get_f32(m->lora_b);
    double *res = lt_dalloc(in * out);
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            double acc = 0;
            for (int64_t k = 0; k < r; k++) acc += (double)b[o * r + k] * (double)a[k * in + i];
            res[o * in + i] = (double)w[o * in + i] + (double)m->scaling * acc;
        }
    free(w);
    free(a);
    free(b);
    return res;
}

/* Every metadata key of a equals b's (name, type, value; arrays element by element). */
static void check_same_metadata(const lc_gguf *a, const lc_gguf *b) {
    ck_assert_int_eq(lc_gguf_n_kv(a), lc_gguf_n_kv(b));
    for (int64_t k = 0; k < lc_gguf_n_kv(a); k++) {
        const char *key = lc_gguf_key(a, k);
        ck_assert_str_eq(key, lc_gguf_key(b, k));
        const int t = lc_gguf_kv_type(a, k);
        ck_assert_msg(t == lc_gguf_kv_type(b, k), "key %s: type differs", key);
        if (t == LC_GGUF_ARRAY) {
            const int et = lc_gguf_arr_type(a, k);
            const uint64_t n = lc_gguf_arr_count(a, k);
            ck_assert_int_eq(et, lc_gguf_arr_type(b, k));
            ck_assert_uint_eq(n, lc_gguf_arr_count(b, k));
            for (uint64_t i = 0; i < n; i++) {
                if (et == LC_GGUF_STRING) {
                    const char *sa, *sb;
                    size_t la, lb;
                    ck_assert_int_eq(lc_gguf_arr_get_str(a, k, i, &sa, &la), LC_OK);
                    ck_assert_int_eq(lc_gguf_arr_get_str(b, k, i, &sb, &lb), LC_OK);
                    ck_assert_msg(la == lb && memcmp(sa, sb, la) == 0, "key %s[%llu] differs", key,
                                  (unsigned long long)i);
                } else {
                    double va, vb;
                    ck_assert_int_eq(lc_gguf_arr_get_f64(a, k, i, &va), LC_OK);
                    ck_assert_int_eq(lc_gguf_arr_get_f64(b, k, i, &vb), LC_OK);
                    ck_assert_msg(va == vb, "key %s[%llu] differs", key, (unsigned long long)i);
                }
            }
        } else if (t == LC_GGUF_STRING) {
            const char *sa, *sb;
            size_t la, lb;
            ck_assert_int_eq(lc_gguf_kv_get_str(a, k, &sa, &la), LC_OK);
            ck_assert_int_eq(lc_gguf_kv_get_str(b, k, &sb, &lb), LC_OK);
            ck_assert_msg(la == lb && memcmp(sa, sb, la) == 0, "key %s differs", key);
        } else {
            double va, vb;
            ck_assert_int_eq(lc_gguf_kv_get_f64(a, k, &va), LC_OK);
            ck_assert_int_eq(lc_gguf_kv_get_f64(b, k, &vb), LC_OK);
            ck_assert_msg(va == vb, "key %s differs: %g vs %g", key, va, vb);
        }
    }
}

/* The merged file `mpath` against the base `base` and `set`: targeted tensors equal the plain-loop
 * merge (stored as `want_type`, -1: the base type), the rest byte-identical, metadata equal.
 * Returns the largest error relative to the tolerance (<= 1 passes). */
static void check_merged_file(const lc_gguf *base, const lc_lora_set *set, const char *mpath, int want_type) {
    lc_gguf *mf = NULL;
    ck_assert_msg(lc_gguf_open(mpath, &mf) == LC_OK, "open merged: %s", lc_last_error());
    check_same_metadata(base, mf);
    ck_assert_int_eq(lc_gguf_n_tensors(base), lc_gguf_n_tensors(mf));
    int n_merged = 0;
    double worst = 0;
    for (int64_t i = 0; i < lc_gguf_n_tensors(base); i++) {
        const lc_gguf_tensor_info *bt = lc_gguf_tensor(base, i), *mt = lc_gguf_tensor(mf, i);
        ck_assert_str_eq(bt->name, mt->name);
        for (int d = 0; d < 4; d++) ck_assert_int_eq(bt->ne[d], mt->ne[d]);
        const lc_lora_module *m = NULL;
        for (int k = 0; k < set->n_modules; k++) {
            char nm[80];
            snprintf(nm, sizeof nm, "%s.weight", set->modules[k].target);
            if (strcmp(nm, bt->name) == 0) m = &set->modules[k];
        }
        if (!m) {
            ck_assert_msg(bt->type == mt->type && bt->size == mt->size && memcmp(bt->data, mt->data, bt->size) == 0,
                          "untargeted tensor %s is not byte-identical", bt->name);
            continue;
        }
        n_merged++;
        const int wt = want_type < 0 ? bt->type : want_type;
        ck_assert_msg(mt->type == wt, "%s: type %d, expected %d", bt->name, mt->type, wt);
        const int64_t n = bt->ne[0] * bt->ne[1];
        double *ref = ref_merge(bt, m);
        float *got = lt_falloc(n);
        ck_assert_int_eq(lc_dequantize_row((lc_dtype)mt->type, mt->data, got, n), LC_OK);
        /* tolerance per element: F32 a few ulps of |W|+|D| summed terms; F16 half an ulp + the F32 part */
        const double eps = mt->type == LC_F32 ? 4.0 * 0x1p-24 : (mt->type == LC_F16 ? 0x1p-11 * 1.001 : -1);
        ck_assert_msg(eps > 0, "unexpected merged type %d", mt->type);
        for (int64_t j = 0; j < n; j++) {
            const double tol = eps * fabs(ref[j]) + 1e-6 * 0x1p-10 + 8.0 * 0x1p-24 * (1.0 + fabs(ref[j]));
            const double e = fabs((double)got[j] - ref[j]) / tol;
            if (e > worst) worst = e;
            ck_assert_msg(e <= 1.0, "%s[%lld]: merged %.9g, plain loops %.9g", bt->name, (long long)j, (double)got[j],
                          ref[j]);
        }
        free(ref);
        free(got);
    }
    ck_assert_int_eq(n_merged, set->n_modules);
    lt_log("merge: %s: %d tensors merged, worst error %.3f of tolerance\n", mpath, n_merged, worst);
    lc_gguf_close(mf);
}

static void merge_model_test(const char *fixture, int n_expect_modules) {
    setup_tmp();
    lc_device *dev = open_cpu();
    lc_gguf *base = NULL;
    ck_assert_msg(lc_gguf_open(fixture, &base) == LC_OK, "%s", lc_last_error());
    lc_model *m = NULL;
    ck_assert_msg(lc_model_from_gguf(dev, base, &m, NULL) == LC_OK, "%s", lc_last_error());
    lc_lora_set *set = random_set(m, 11);
    ck_assert_int_eq(set->n_modules, n_expect_modules);
    char p32[400], p16[400];
    snprintf(p32, sizeof p32, "%s/merged_f32.gguf", tmpdir);
    snprintf(p16, sizeof p16, "%s/merged_f16.gguf", tmpdir);
    lc_merge_params mp = lc_merge_params_default();
    mp.dtype = LC_MERGE_F32;
    lc_merge_report rep;
    ck_assert_msg(lc_merge_gguf(base, set, p32, &mp, &rep) == LC_OK, "merge f32: %s", lc_last_error());
    ck_assert_int_eq(rep.n_merged, set->n_modules);
    ck_assert_int_eq(rep.n_tensors, (int)lc_gguf_n_tensors(base));
    ck_assert(rep.delta_norm > 0);
    ck_assert(rep.rel_err < 1e-5);
    lc_merge_report_free(&rep);
    check_merged_file(base, set, p32, LC_F32);
    ck_assert_msg(lc_merge_gguf(base, set, p16, NULL, &rep) == LC_OK, "merge f16: %s", lc_last_error());
    ck_assert(rep.rel_err > 0 && rep.rel_err < 1e-2);
    lt_log("merge: %s f16: |D| %.4g rel_err %.3g kept %.6f\n", fixture, rep.delta_norm, rep.rel_err, rep.delta_kept);
    lc_merge_report_free(&rep);
    check_merged_file(base, set, p16, LC_F16);
    ck_assert(!exists(strcat(strcpy((char[420]){0}, p32), ".tmp")));

    /* Logits: merged F32 model alone == base model + adapter. */
    lc_model *mm = NULL;
    ck_assert_msg(lc_model_load_gguf(dev, p32, &mm, NULL) == LC_OK, "load merged: %s", lc_last_error());
    const int32_t ids[7] = {1, 14, 63, 37, 5, 22, 50};
    const int T = 7, V = m->cfg.n_vocab;
    float *la = NULL, *lb = NULL;
    for (int pass = 0; pass < 2; pass++) {
        lc_graph *g = lc_graph_new(dev);
        lc_tensor *tid = lc_graph_input(g, LC_I32, T, 1, "ids"), *tpos = lc_graph_input(g, LC_I32, T, 1, "pos");
        lc_tensor *lg = pass == 0 ? lc_model_forward(g, m, set, tid, tpos, 1, T, 0.0f)
                                  : lc_model_forward(g, mm, NULL, tid, tpos, 1, T, 0.0f);
        ck_assert_msg(lg != NULL, "forward: %s", lc_graph_error(g));
        lc_graph_set_output(g, lg);
        ck_assert_msg(lc_graph_plan(g) == LC_OK, "plan: %s", lc_last_error());
        int32_t pos[7];
        for (int i = 0; i < T; i++) pos[i] = i;
        ck_assert_int_eq(lc_tensor_set(tid, ids, 0, sizeof ids), LC_OK);
        ck_assert_int_eq(lc_tensor_set(tpos, pos, 0, sizeof pos), LC_OK);
        ck_assert_msg(lc_graph_compute(g) == LC_OK, "compute: %s", lc_last_error());
        float *out = lt_falloc((int64_t)V * T);
        ck_assert_int_eq(lc_tensor_get_f32(lg, out, (int64_t)V * T), LC_OK);
        if (pass == 0) la = out;
        else lb = out;
        lc_graph_free(g);
    }
    double mx = 0, md = 0;
    for (int64_t i = 0; i < (int64_t)V * T; i++) {
        mx = fmax(mx, fabs((double)la[i]));
        md = fmax(md, fabs((double)la[i] - (double)lb[i]));
    }
    lt_log("merge: %s: logits merged vs adapter: max abs diff %.3g, max |logit| %.3g\n", fixture, md, mx);
    ck_assert_msg(md <= 1e-4 * mx, "merged logits differ: max abs diff %g, max |logit| %g", md, mx);
    free(la);
    free(lb);
    lc_model_free(mm);

    /* The same merge through the adapter files (PEFT: q/k permutation for llama; GGUF). */
    char pd[400], pg[400], out1[400], out2[400];
    snprintf(pd, sizeof pd, "%s/peft", tmpdir);
    snprintf(pg, sizeof pg, "%s/adapter.gguf", tmpdir);
    snprintf(out1, sizeof out1, "%s/merged_peft.gguf", tmpdir);
    snprintf(out2, sizeof out2, "%s/merged_gguf.gguf", tmpdir);
    ck_assert_msg(lc_adapter_save_peft(m, set, pd, NULL) == LC_OK, "%s", lc_last_error());
    ck_assert_msg(lc_adapter_save_gguf(m, set, pg, NULL) == LC_OK, "%s", lc_last_error());
    ck_assert_msg(lc_merge_files(dev, fixture, pd, out1, &mp, NULL) == LC_OK, "merge peft: %s", lc_last_error());
    ck_assert_msg(lc_merge_files(dev, fixture, pg, out2, &mp, NULL) == LC_OK, "merge gguf: %s", lc_last_error());
    check_merged_file(base, set, out1, LC_F32);
    check_merged_file(base, set, out2, LC_F32);

    lc_lora_set_free(set);
    lc_model_free(m);
    lc_gguf_close(base);
    lc_device_close(dev);
    rm_rf_tmp();
}

START_TEST(merge_llama) {
    merge_model_test(FIX("tiny_llama.gguf"), 2 * LC_MOD_COUNT);
}
END_TEST

START_TEST(merge_qwen2_tied) {
    merge_model_test(FIX("tiny_qwen2.gguf"), 2 * LC_MOD_COUNT);
}
END_TEST

/* keep: Q8_0 targets are re-quantised and their loss reported; F32 targets lose nothing. */
START_TEST(merge_keep_reports_loss) {
    setup_tmp();
    lc_device *dev = open_cpu();
    lc_gguf *base = NULL;
    ck_assert_int_eq(lc_gguf_open(FIX("tiny_llama.gguf"), &base), LC_OK);
    lc_model *m = NULL;
    ck_assert_int_eq(lc_model_from_gguf(dev, base, &m, NULL), LC_OK);
    lc_lora_set *set = random_set(m, 5);
    char p[400];
    snprintf(p, sizeof p, "%s/keep.gguf", tmpdir);
    lc_merge_params mp = lc_merge_params_default();
    mp.dtype = LC_MERGE_KEEP;
    lc_merge_report rep;
    ck_assert_msg(lc_merge_gguf(base, set, p, &mp, &rep) == LC_OK, "%s", lc_last_error());
    int n_q = 0;
    for (int k = 0; k < rep.n_merged; k++) {
        const lc_merge_tensor_stats *st = &rep.tensors[k];
        ck_assert_int_eq(st->src_type, st->dst_type);
        ck_assert(st->delta_norm > 0);
        if (st->src_type == LC_Q8_0) {
            n_q++;
            lt_log("merge: keep %s (q8_0): rel_err %.4g, kept %.5f\n", st->name, st->rel_err, st->delta_kept);
            ck_assert(st->rel_err > 1e-4 && st->rel_err < 0.5);
            ck_assert(st->delta_kept > 0.5 && st->delta_kept < 1.5);
        } else {
            ck_assert(st->src_type == LC_F32);
            ck_assert(st->rel_err == 0.0);
            ck_assert(fabs(st->delta_kept - 1.0) < 1e-6);
        }
    }
    ck_assert_int_eq(n_q, 2); /* blk.1.attn_v, blk.1.ffn_up */
    ck_assert(rep.rel_err > 0 && rep.delta_kept < 1.5);
    /* The file holds Q8_0 blocks that decode to what the report measured: Q(W + D). */
    lc_gguf *mf = NULL;
    ck_assert_int_eq(lc_gguf_open(p, &mf), LC_OK);
    const lc_gguf_tensor_info *ti = lc_gguf_tensor(mf, lc_gguf_find_tensor(mf, "blk.1.attn_v.weight"));
    ck_assert_int_eq(ti->type, LC_Q8_0);
    const lc_gguf_tensor_info *bi = lc_gguf_tensor(base, lc_gguf_find_tensor(base, "blk.1.attn_v.weight"));
    double *ref = ref_merge(bi, lc_lora_set_find(set, 1, LC_MOD_ATTN_V));
    const int64_t n = bi->ne[0] * bi->ne[1];
    float *rf = lt_falloc(n), *got = lt_falloc(n);
    for (int64_t i = 0; i < n; i++) rf[i] = (float)ref[i];
    void *q = malloc(ti->size);
    ck_assert_int_eq(lc_quantize_row(LC_Q8_0, rf, q, n), LC_OK);
    float *qd = lt_falloc(n);
    ck_assert_int_eq(lc_dequantize_row(LC_Q8_0, q, qd, n), LC_OK);
    ck_assert_int_eq(lc_dequantize_row(LC_Q8_0, ti->data, got, n), LC_OK);
    for (int64_t i = 0; i < n; i++) {
        /* one Q8_0 step at most apart (the F32 merge may round a value across a step boundary) */
        ck_assert_msg(fabs((double)got[i] - (double)qd[i]) <= 1.01 * fabs((double)qd[i] - ref[i]) + 2e-2,
                      "blk.1.attn_v[%lld]: %g vs Q(ref) %g", (long long)i, (double)got[i], (double)qd[i]);
    }
    free(q);
    free(qd);
    free(rf);
    free(got);
    free(ref);
    lc_gguf_close(mf);
    lc_merge_report_free(&rep);
    lc_lora_set_free(set);
    lc_model_free(m);
    lc_gguf_close(base);
    lc_device_close(dev);
    rm_rf_tmp();
}
END_TEST

/* Merge then unmerge (lc_lora_merge with -s) restores W; the merge matches plain loops with a
 * non-square A (catches a transposed or swapped merge). */
START_TEST(merge_unmerge_restores) {
    lc_device *dev = open_cpu();
    const int64_t in = 13, out = 7, r = 3;
    lt_rng rng;
    lt_rng_seed(&rng, 99);
    float *w = lt_falloc(in * out), *a = lt_falloc(in * r), *b = lt_falloc(r * out), *got = lt_falloc(in * out);
    lt_fill_uniform(&rng, w, in * out, -1, 1);
    lt_fill_uniform(&rng, a, in * r, -1, 1);
    lt_fill_uniform(&rng, b, r * out, -1, 1);
    lc_tensor *tw, *ta, *tb;
    ck_assert_int_eq(lc_tensor_new(dev, LC_F32, 2, (int64_t[]){in, out}, "w", 0, &tw), LC_OK);
    ck_assert_int_eq(lc_tensor_new(dev, LC_F32, 2, (int64_t[]){in, r}, "a", 0, &ta), LC_OK);
    ck_assert_int_eq(lc_tensor_new(dev, LC_F32, 2, (int64_t[]){r, out}, "b", 0, &tb), LC_OK);
    ck_assert_int_eq(lc_tensor_set_f32(tw, w, in * out), LC_OK);
    ck_assert_int_eq(lc_tensor_set_f32(ta, a, in * r), LC_OK);
    ck_assert_int_eq(lc_tensor_set_f32(tb, b, r * out), LC_OK);
    const float s = 0.75f;
    ck_assert_int_eq(lc_lora_merge(tw, ta, tb, s), LC_OK);
    ck_assert_int_eq(lc_tensor_get_f32(tw, got, in * out), LC_OK);
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            double acc = 0;
            for (int64_t k = 0; k < r; k++) acc += (double)b[o * r + k] * (double)a[k * in + i];
            const double ref = w[o * in + i] + s * acc;
            ck_assert_msg(fabs(got[o * in + i] - ref) <= 1e-6 * (1 + fabs(ref)), "merged [%lld,%lld]: %g vs %g",
                          (long long)o, (long long)i, (double)got[o * in + i], ref);
        }
    ck_assert_int_eq(lc_lora_merge(tw, ta, tb, -s), LC_OK);
    ck_assert_int_eq(lc_tensor_get_f32(tw, got, in * out), LC_OK);
    double worst = 0;
    for (int64_t j = 0; j < in * out; j++) worst = fmax(worst, fabs((double)got[j] - (double)w[j]));
    lt_log("merge: unmerge restores W: max abs diff %.3g\n", worst);
    ck_assert(worst <= 4e-7 * 4);
    lc_tensor_free(tw);
    lc_tensor_free(ta);
    lc_tensor_free(tb);
    free(w);
    free(a);
    free(b);
    free(got);
    lc_device_close(dev);
}
END_TEST

/* The bytes of a file (malloc'd; *n its size). */
static unsigned char *file_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    const long len = ftell(f);
    ck_assert_int_ge(len, 0);
    rewind(f);
    unsigned char *p = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

static void copy_file(const char *from, const char *to) {
    size_t n = 0;
    unsigned char *p = file_bytes(from, &n);
    FILE *f = fopen(to, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
    free(p);
}

/* lc_merge_files with an output that is one of its inputs: refused (LC_ERR_INVALID_ARG naming
 * both), the input byte-identical afterwards and no temporary file left. */
static void expect_input_kept(lc_device *dev, const char *model, const char *adapter, const char *out,
                              const char *input, const char *what) {
    size_t n0 = 0, n1 = 0;
    unsigned char *before = file_bytes(input, &n0);
    ck_assert_int_eq(lc_merge_files(dev, model, adapter, out, NULL, NULL), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), what) && strstr(lc_last_error(), out), "%s", lc_last_error());
    lt_log("merge: output is an input: %s\n", lc_last_error());
    unsigned char *after = file_bytes(input, &n1);
    ck_assert(n0 == n1 && memcmp(before, after, n0) == 0);
    char tmpf[600];
    snprintf(tmpf, sizeof tmpf, "%s.tmp", out);
    ck_assert(!exists(tmpf));
    free(before);
    free(after);
}

/* The merged file may overwrite neither the base model nor the adapter, however the path is
 * spelled: ./, dir/../, a symbolic link, the adapter's GGUF file, a file of its PEFT directory. */
START_TEST(merge_output_is_input) {
    setup_tmp();
    lc_device *dev = open_cpu();
    char base[400], sub[400], dotdot[440], dotslash[440], slink[440], ag[400], ap[400], apw[460];
    snprintf(base, sizeof base, "%s/base.gguf", tmpdir);
    snprintf(sub, sizeof sub, "%s/sub", tmpdir);
    snprintf(dotdot, sizeof dotdot, "%s/../base.gguf", sub);
    snprintf(dotslash, sizeof dotslash, "%s/./base.gguf", tmpdir);
    snprintf(slink, sizeof slink, "%s/link.gguf", sub);
    snprintf(ag, sizeof ag, "%s/adapter.gguf", tmpdir);
    snprintf(ap, sizeof ap, "%s/adapter_peft", tmpdir);
    snprintf(apw, sizeof apw, "%s/%s", ap, LC_PEFT_WEIGHTS_FILE);
    copy_file(FIX("tiny_llama.gguf"), base);
    ck_assert_int_eq(mkdir(sub, 0777), 0);
    ck_assert_int_eq(symlink(base, slink), 0);
    lc_gguf *g = NULL;
    ck_assert_int_eq(lc_gguf_open(base, &g), LC_OK);
    lc_model *m = NULL;
    ck_assert_int_eq(lc_model_from_gguf(dev, g, &m, NULL), LC_OK);
    lc_lora_set *set = random_set(m, 5);
    ck_assert_int_eq(lc_adapter_save_gguf(m, set, ag, NULL), LC_OK);
    ck_assert_int_eq(lc_adapter_save_peft(m, set, ap, NULL), LC_OK);
    const char *aliases[] = {base, dotdot, dotslash, slink};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        expect_input_kept(dev, base, ag, aliases[i], base, "is the base model file");
        ck_assert_int_eq(lc_merge_gguf(g, set, aliases[i], NULL, NULL), LC_ERR_INVALID_ARG);
    }
    expect_input_kept(dev, base, ag, ag, ag, "is the adapter");
    expect_input_kept(dev, base, ap, apw, apw, "is the adapter's " LC_PEFT_WEIGHTS_FILE);
    /* control: the same job into a new file works */
    char out[420];
    snprintf(out, sizeof out, "%s/merged.gguf", sub);
    ck_assert_msg(lc_merge_files(dev, base, ag, out, NULL, NULL) == LC_OK, "%s", lc_last_error());
    ck_assert(exists(out));
    lc_lora_set_free(set);
    lc_model_free(m);
    lc_gguf_close(g);
    lc_device_close(dev);
    rm_rf_tmp();
}
END_TEST

START_TEST(merge_errors) {
    setup_tmp();
    lc_device *dev = open_cpu();
    lc_gguf *base = NULL;
    ck_assert_int_eq(lc_gguf_open(FIX("tiny_llama.gguf"), &base), LC_OK);
    lc_model *m = NULL;
    ck_assert_int_eq(lc_model_from_gguf(dev, base, &m, NULL), LC_OK);
    char out[400], tmpf[420];
    snprintf(out, sizeof out, "%s/out.gguf", tmpdir);
    snprintf(tmpf, sizeof tmpf, "%s.tmp", out);

    /* An adapter for another model: the toy model (n_embd 64) in memory, as a GGUF file (another
     * architecture) and as a PEFT directory (other shapes). */
    lc_model_config tc = lc_model_config_default(LC_ARCH_TOY);
    lc_model *toy = NULL;
    ck_assert_int_eq(lc_model_new_random(dev, &tc, 1, &toy), LC_OK);
    lc_lora_set *tset = random_set(toy, 3);
    ck_assert_int_eq(lc_merge_gguf(base, tset, out, NULL, NULL), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "another model"), "%s", lc_last_error());
    ck_assert(!exists(out) && !exists(tmpf));
    char tg[400], tp[400];
    snprintf(tg, sizeof tg, "%s/toy.gguf", tmpdir);
    snprintf(tp, sizeof tp, "%s/toy_peft", tmpdir);
    ck_assert_int_eq(lc_adapter_save_gguf(toy, tset, tg, NULL), LC_OK);
    ck_assert_int_eq(lc_adapter_save_peft(toy, tset, tp, NULL), LC_OK);
    ck_assert(lc_merge_files(dev, FIX("tiny_llama.gguf"), tg, out, NULL, NULL) != LC_OK);
    lt_log("merge: toy GGUF adapter into tiny_llama: %s\n", lc_last_error());
    ck_assert(lc_merge_files(dev, FIX("tiny_llama.gguf"), tp, out, NULL, NULL) != LC_OK);
    lt_log("merge: toy PEFT adapter into tiny_llama: %s\n", lc_last_error());
    ck_assert(!exists(out) && !exists(tmpf));
    lc_lora_set_free(tset);
    lc_model_free(toy);

    /* A set with another layer count (a 1-layer model of the same sizes). */
    lc_model_config c1 = m->cfg;
    c1.n_layer = 1;
    lc_model *m1 = NULL;
    ck_assert_int_eq(lc_model_new_random(dev, &c1, 1, &m1), LC_OK);
    lc_lora_set *s1 = random_set(m1, 3);
    ck_assert_int_eq(lc_merge_gguf(base, s1, out, NULL, NULL), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "layers"), "%s", lc_last_error());
    lc_lora_set_free(s1);
    lc_model_free(m1);

    /* Output-targeting adapter on the tied qwen2 model: refused, embedding untouched (no file). */
    lc_gguf_writer *w = NULL;
    ck_assert_int_eq(lc_gguf_writer_new(&w), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "general.type", "adapter"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "general.architecture", "qwen2"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "adapter.type", "lora"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_f32(w, "adapter.lora.alpha", 4.0f), LC_OK);
    float za[32 * 2] = {0.5f}, zb[2 * 64] = {0.25f};
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "output.weight.lora_a", LC_F32, 2, (int64_t[]){32, 2}, za, sizeof za),
                     LC_OK);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "output.weight.lora_b", LC_F32, 2, (int64_t[]){2, 64}, zb, sizeof zb),
                     LC_OK);
    char po[400];
    snprintf(po, sizeof po, "%s/output_lora.gguf", tmpdir);
    ck_assert_int_eq(lc_gguf_writer_write(w, po), LC_OK);
    lc_gguf_writer_free(w);
    ck_assert_int_eq(lc_merge_files(dev, FIX("tiny_qwen2.gguf"), po, out, NULL, NULL), LC_ERR_UNSUPPORTED);
    lt_log("merge: output adapter on a tied model: %s\n", lc_last_error());
    ck_assert_msg(strstr(lc_last_error(), "tied") && strstr(lc_last_error(), "token_embd"), "%s", lc_last_error());
    ck_assert(!exists(out) && !exists(tmpf));

    /* Unwritable output: a missing directory, an existing directory, the base file itself. */
    lc_lora_set *set = random_set(m, 2);
    char bad[400];
    snprintf(bad, sizeof bad, "%s/no/such/dir/m.gguf", tmpdir);
    ck_assert_int_eq(lc_merge_gguf(base, set, bad, NULL, NULL), LC_ERR_IO);
    ck_assert_msg(strstr(lc_last_error(), bad), "%s", lc_last_error());
    ck_assert_int_eq(lc_merge_gguf(base, set, tmpdir, NULL, NULL), LC_ERR_IO);
    char dtmp[300];
    snprintf(dtmp, sizeof dtmp, "%s.tmp", tmpdir);
    ck_assert(!exists(dtmp));
    ck_assert_int_eq(lc_merge_gguf(base, set, FIX("tiny_llama.gguf"), NULL, NULL), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_merge_gguf(NULL, set, out, NULL, NULL), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_merge_gguf(base, NULL, out, NULL, NULL), LC_ERR_INVALID_ARG);
    ck_assert(!exists(out) && !exists(tmpf));
    lc_merge_dtype d;
    ck_assert_int_eq(lc_merge_dtype_parse("q4", &d), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_merge_dtype_parse("keep", &d), LC_OK);
    ck_assert_int_eq(d, LC_MERGE_KEEP);
    lc_lora_set_free(set);
    lc_model_free(m);
    lc_gguf_close(base);
    lc_device_close(dev);
    rm_rf_tmp();
}
END_TEST

static Suite *merge_suite(void) {
    Suite *s = suite_create("merge");
    TCase *tc = tcase_create("merge");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, merge_llama);
    tcase_add_test(tc, merge_qwen2_tied);
    tcase_add_test(tc, merge_keep_reports_loss);
    tcase_add_test(tc, merge_unmerge_restores);
    tcase_add_test(tc, merge_errors);
    tcase_add_test(tc, merge_output_is_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(merge_suite());
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
