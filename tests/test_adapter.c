/* lorac tests — suite "adapter": PEFT and llama.cpp GGUF LoRA adapter files
 * (core/src/adapter.c, adapter_peft.c, adapter_gguf.c).
 *
 * Expected values come from outside the code under test: real PEFT adapters that the peft package
 * saved for tiny random LlamaForCausalLM / Qwen2ForCausalLM models (tests/fixtures/peft_*, made by
 * tests/tools/make_peft_fixture.py, which also wrote peft_*_expect.txt: each module's r, lora_alpha
 * and PEFT's scaling, sample elements and weighted sums in lorac's layout, with the Llama q/k rows
 * permuted by convert_hf_to_gguf.py's formula in numpy). Round trips check save -> load in both
 * formats; error cases check that every malformed adapter is refused with a message that names the
 * key, module or field (TESTCASES.md "LoRA math and adapters", "Rank-1 adapters").
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/lt_util.h"
#include "common/lt_suite.h"
#include "lorac/adapter.h"
#include "lorac/gguf.h"
#include "lorac/lorac.h"
#include "lorac/safetensors.h"

#ifndef LORAC_FIXTURE_DIR
#define LORAC_FIXTURE_DIR "tests/fixtures"
#endif
#define FIX(name) LORAC_FIXTURE_DIR "/" name

/* ---- helpers ----------------------------------------------------------------------------------- */

/* The fixtures' model: vocab 64, hidden 32, intermediate 48, 2 layers, 4 heads, 2 kv heads of 8. */
static lc_model *tiny_model(lc_device **dev, lc_arch arch, int n_embd, int n_layer) {
    if (!*dev) ck_assert_msg(lc_device_open("cpu", dev) == LC_OK, "%s", lc_last_error());
    lc_model_config c = lc_model_config_default(arch);
    c.n_vocab = 64;
    c.n_embd = n_embd;
    c.n_layer = n_layer;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.head_dim = 8;
    c.n_ff = 48;
    lc_model *m = NULL;
    ck_assert_msg(lc_model_new_random(*dev, &c, 7, &m) == LC_OK, "%s", lc_last_error());
    return m;
}

static float *get_f32(const lc_tensor *t) {
    int64_t n = lc_nelements(t);
    float *p = lt_falloc(n);
    ck_assert_int_eq(lc_tensor_get_f32(t, p, n), LC_OK);
    return p;
}

static lc_module module_by_hf(const char *hf) {
    for (int m = 0; m < LC_MOD_COUNT; m++)
        if (strcmp(lc_module_hf_name((lc_module)m), hf) == 0) return (lc_module)m;
    ck_abort_msg("unknown module %s", hf);
    return LC_MOD_ATTN_Q;
}

static char tmp_root[128];

static const char *tmp_path(const char *name) {
    static char buf[4][256];
    static int k = 0;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "%s/%s", tmp_root, name);
    return p;
}

/* Remove an adapter directory this suite wrote (only the files it writes). */
static void rm_adapter_dir(const char *dir) {
    const char *names[] = {LC_PEFT_CONFIG_FILE, LC_PEFT_WEIGHTS_FILE, "extra.txt"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        remove(p);
    }
    rmdir(dir);
}

static char *slurp(const char *path) {
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(p, 1, (size_t)n, fp), (size_t)n);
    p[n] = 0;
    fclose(fp);
    return p;
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Check a loaded set against peft_<name>_expect.txt; returns the number of checks made. */
static int check_expect(const lc_lora_set *s, const char *expect_path) {
    FILE *fp = fopen(expect_path, "r");
    ck_assert_msg(fp != NULL, "cannot open %s", expect_path);
    char line[512];
    int checks = 0, modules = 0;
    while (fgets(line, sizeof line, fp)) {
        char kind[16], hf[32], tag[4];
        int layer, r, idx;
        double alpha, scaling, v, sum, wsum;
        if (sscanf(line, "module %d %31s %d %lf %lf", &layer, hf, &r, &alpha, &scaling) == 5) {
            const lc_lora_module *lm = lc_lora_set_find(s, layer, module_by_hf(hf));
            ck_assert_msg(lm != NULL, "module %d %s missing", layer, hf);
            ck_assert_msg(lm->r == r, "%d %s: r = %d, PEFT has %d", layer, hf, lm->r, r);
            ck_assert_msg(fabs(lm->lora_alpha - alpha) <= 1e-6 * fabs(alpha), "%d %s: lora_alpha %g, PEFT %g", layer,
                          hf, lm->lora_alpha, alpha);
            ck_assert_msg(fabs(lm->scaling - scaling) <= 1e-6 * fabs(scaling), "%d %s: scaling %.9g, PEFT %.9g", layer,
                          hf, lm->scaling, scaling);
            ck_assert_int_eq(lm->lora_a->ne[1], r);
            ck_assert_int_eq(lm->lora_b->ne[0], r);
            modules++;
            checks += 3;
        } else if (sscanf(line, "value %d %31s %3s %d %lf", &layer, hf, tag, &idx, &v) == 5) {
            const lc_lora_module *lm = lc_lora_set_find(s, layer, module_by_hf(hf));
            float *p = get_f32(tag[0] == 'a' ? lm->lora_a : lm->lora_b);
            ck_assert_msg((float)v == p[idx], "%d %s %s[%d] = %.9g, PEFT/numpy put %.9g there", layer, hf, tag, idx,
                          p[idx], v);
            free(p);
            checks++;
        } else if (sscanf(line, "sum %d %31s %3s %lf %lf", &layer, hf, tag, &sum, &wsum) == 5) {
            const lc_lora_module *lm = lc_lora_set_find(s, layer, module_by_hf(hf));
            const lc_tensor *t = tag[0] == 'a' ? lm->lora_a : lm->lora_b;
            float *p = get_f32(t);
            double s1 = 0, s2 = 0, sa = 0;
            for (int64_t i = 0; i < lc_nelements(t); i++) {
                s1 += p[i];
                s2 += p[i] * (double)(i % 7 + 1);
                sa += fabs(p[i]) * 7;
            }
            ck_assert_msg(fabs(s1 - sum) <= 1e-12 * sa && fabs(s2 - wsum) <= 1e-12 * sa,
                          "%d %s %s: sums %.17g %.17g, numpy %.17g %.17g (orientation or permutation wrong)", layer,
                          hf, tag, s1, s2, sum, wsum);
            free(p);
            checks += 2;
        } else {
            ck_assert_msg(sscanf(line, "%15s", kind) != 1 || kind[0] == '#', "bad expect line: %s", line);
        }
    }
    fclose(fp);
    ck_assert_int_eq(modules, s->n_modules);
    return checks;
}

/* Two sets hold the same modules with bit-identical tensors, r, lora_alpha and scaling. */
static void assert_sets_equal(const lc_lora_set *x, const lc_lora_set *y, bool same_alpha) {
    ck_assert_int_eq(x->n_modules, y->n_modules);
    for (int i = 0; i < x->n_modules; i++) {
        const lc_lora_module *a = &x->modules[i], *b = lc_lora_set_find(y, a->layer, a->module);
        ck_assert_msg(b != NULL, "module %s lost", a->target);
        ck_assert_str_eq(a->target, b->target);
        ck_assert_int_eq(a->r, b->r);
        ck_assert_msg(a->scaling == b->scaling, "%s: scaling %.9g vs %.9g", a->target, a->scaling, b->scaling);
        if (same_alpha) ck_assert_msg(a->lora_alpha == b->lora_alpha, "%s: lora_alpha", a->target);
        for (int k = 0; k < 2; k++) {
            const lc_tensor *ta = k ? a->lora_b : a->lora_a, *tb = k ? b->lora_b : b->lora_a;
            ck_assert(ta->ne[0] == tb->ne[0] && ta->ne[1] == tb->ne[1]);
            float *pa = get_f32(ta), *pb = get_f32(tb);
            ck_assert_msg(memcmp(pa, pb, lc_nbytes(ta)) == 0, "%s: lora_%c differs after the round trip", a->target,
                          k ? 'B' : 'A');
            free(pa);
            free(pb);
        }
    }
}

/* Fill every lora_B (and A) of a set with seeded non-zero values. */
static void randomize(lc_lora_set *s, uint64_t seed) {
    lt_rng rng;
    lt_rng_seed(&rng, seed);
    for (int i = 0; i < s->n_modules; i++)
        for (int k = 0; k < 2; k++) {
            lc_tensor *t = k ? s->modules[i].lora_b : s->modules[i].lora_a;
            float *p = lt_falloc(lc_nelements(t));
            lt_fill_uniform(&rng, p, lc_nelements(t), -0.7f, 0.9f);
            ck_assert_int_eq(lc_tensor_set_f32(t, p, lc_nelements(t)), LC_OK);
            free(p);
        }
}

/* ---- real PEFT adapters ------------------------------------------------------------------------ */

START_TEST(test_peft_fixture_llama) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_LLAMA, 32, 2);
    lc_lora_set *s = NULL;
    ck_assert_msg(lc_adapter_load_peft(m, FIX("peft_llama"), &s) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(s->n_modules, 14);
    ck_assert_int_eq(s->cfg.r, 3);
    ck_assert(s->cfg.lora_alpha == 6.0f && !s->cfg.use_rslora && s->cfg.dropout == 0.05f);
    /* rank_pattern (plain suffix key) and alpha_pattern (regular expression) */
    ck_assert_int_eq(lc_lora_set_find(s, 1, LC_MOD_ATTN_K)->r, 5);
    ck_assert_int_eq(lc_lora_set_find(s, 0, LC_MOD_ATTN_K)->r, 3);
    ck_assert(lc_lora_set_find(s, 0, LC_MOD_FFN_DOWN)->scaling == 4.0f);
    ck_assert(lc_lora_set_find(s, 1, LC_MOD_FFN_DOWN)->scaling == 2.0f);
    int checks = check_expect(s, FIX("peft_llama_expect.txt"));
    lt_log("[adapter] peft_llama: 14 modules, %d checks against PEFT/numpy values (q/k rows permuted)\n", checks);
    lc_lora_set_free(s);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_peft_fixture_qwen2_f16_bf16) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_QWEN2, 32, 2);
    lc_lora_set *s = NULL;
    /* rank 1, saved F16 */
    ck_assert_msg(lc_adapter_load_peft(m, FIX("peft_qwen2_r1"), &s) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(s->n_modules, 4);
    ck_assert_int_eq(s->cfg.r, 1);
    int checks = check_expect(s, FIX("peft_qwen2_r1_expect.txt"));
    lc_lora_set_free(s);
    /* rsLoRA, layer 1 only, saved BF16 */
    ck_assert_msg(lc_adapter_load_peft(m, FIX("peft_qwen2_rslora"), &s) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(s->n_modules, 3);
    ck_assert(s->cfg.use_rslora);
    ck_assert_ptr_null(lc_lora_set_find(s, 0, LC_MOD_ATTN_K));
    ck_assert(lc_lora_set_find(s, 1, LC_MOD_ATTN_K)->scaling == 4.0f); /* 8 / sqrt(4) */
    checks += check_expect(s, FIX("peft_qwen2_rslora_expect.txt"));
    lt_log("[adapter] peft_qwen2_r1 (F16) and peft_qwen2_rslora (BF16): %d checks\n", checks);
    lc_lora_set_free(s);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

/* Load PEFT's adapter and save it again: the weights file is byte-identical to PEFT's (same
 * keys, HF orientation, q/k rows un-permuted, safetensors layout), the config carries the patterns,
 * and loading it back gives identical tensors and scalings. */
START_TEST(test_peft_roundtrip_fixture) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_LLAMA, 32, 2);
    lc_lora_set *s = NULL, *s2 = NULL;
    ck_assert_int_eq(lc_adapter_load_peft(m, FIX("peft_llama"), &s), LC_OK);
    const char *dir = tmp_path("rt_llama");
    rm_adapter_dir(dir);
    lc_adapter_meta meta = {.base_model_name_or_path = "tiny-llama \"test\" \xc3\xa9"};
    ck_assert_msg(lc_adapter_save_peft(m, s, dir, &meta) == LC_OK, "%s", lc_last_error());
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/%s", dir, LC_PEFT_WEIGHTS_FILE);
    snprintf(p2, sizeof p2, "%s/peft_llama/%s", LORAC_FIXTURE_DIR, LC_PEFT_WEIGHTS_FILE);
    lc_safetensors *a = NULL, *b = NULL;
    ck_assert_int_eq(lc_safetensors_open(p1, &a), LC_OK);
    ck_assert_int_eq(lc_safetensors_open(p2, &b), LC_OK);
    ck_assert_int_eq(lc_safetensors_n_tensors(a), 28); /* exactly 2 per module */
    ck_assert_uint_eq(lc_safetensors_file_size(a), lc_safetensors_file_size(b));
    for (int64_t i = 0; i < lc_safetensors_n_tensors(a); i++) {
        const lc_st_tensor_info *ta = lc_safetensors_tensor(a, i);
        ck_assert_msg(strncmp(ta->name, "base_model.model.model.layers.", 30) == 0, "key %s", ta->name);
        ck_assert_msg(strstr(ta->name, "default") == NULL, "adapter name in key %s", ta->name);
        const lc_st_tensor_info *tb = lc_safetensors_tensor(b, lc_safetensors_find(b, ta->name));
        ck_assert_msg(tb != NULL, "key %s not in PEFT's file", ta->name);
        ck_assert(ta->n_dims == 2 && ta->shape[0] == tb->shape[0] && ta->shape[1] == tb->shape[1]);
        ck_assert_msg(memcmp(ta->data, tb->data, ta->size) == 0, "%s differs from PEFT's tensor", ta->name);
    }
    ck_assert_str_eq(lc_safetensors_metadata_get(a, "format"), "pt");
    lc_safetensors_close(a);
    lc_safetensors_close(b);
    struct stat st1, st2;
    ck_assert(stat(p1, &st1) == 0 && stat(p2, &st2) == 0 && st1.st_size == st2.st_size);
    char *x = slurp(p1), *y = slurp(p2);
    ck_assert_msg(memcmp(x, y, (size_t)st1.st_size) == 0, "adapter_model.safetensors is not byte-identical to PEFT's");
    lt_log("[adapter] re-saved peft_llama: adapter_model.safetensors byte-identical to PEFT's (%lld bytes)\n",
           (long long)st1.st_size);
    free(x);
    free(y);

    snprintf(p1, sizeof p1, "%s/%s", dir, LC_PEFT_CONFIG_FILE);
    char *cfg = slurp(p1);
    const char *want[] = {"{\n  \"alpha_pattern\": {\n    \"model.layers.0.mlp.down_proj\": 12\n  },\n",
                          "\"base_model_name_or_path\": \"tiny-llama \\\"test\\\" \\u00e9\",",
                          "\"lora_alpha\": 6,", "\"lora_dropout\": 0.05,", "\"peft_type\": \"LORA\",", "\"r\": 3,",
                          "\"rank_pattern\": {\n    \"model.layers.1.self_attn.k_proj\": 5\n  },",
                          "\"target_modules\": [\n    \"down_proj\",\n    \"gate_proj\",\n    \"k_proj\",\n    \"o_proj\",\n"
                          "    \"q_proj\",\n    \"up_proj\",\n    \"v_proj\"\n  ],",
                          "\"task_type\": \"CAUSAL_LM\",", "\"use_rslora\": false\n}",
                          "\"layers_to_transform\": null,", "\"inference_mode\": true,", "\"bias\": \"none\","};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(cfg, want[i]) != NULL, "adapter_config.json lacks %s:\n%s", want[i], cfg);
    /* keys in sorted order, two-space indent */
    const char *order[] = {"alpha_pattern", "base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode",
                           "init_lora_weights", "layers_pattern", "layers_to_transform", "lora_alpha", "lora_dropout",
                           "modules_to_save", "peft_type", "\"r\"", "rank_pattern", "revision", "target_modules",
                           "task_type", "use_dora", "use_rslora"};
    const char *prev = cfg;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *q = strstr(cfg, order[i]);
        ck_assert_msg(q && q >= prev, "key %s out of order", order[i]);
        prev = q;
    }
    free(cfg);

    ck_assert_msg(lc_adapter_load_peft(m, dir, &s2) == LC_OK, "%s", lc_last_error());
    assert_sets_equal(s, s2, true);
    /* saving over an existing adapter keeps other files in the directory */
    snprintf(p1, sizeof p1, "%s/extra.txt", dir);
    write_text(p1, "keep me");
    ck_assert_int_eq(lc_adapter_save_peft(m, s2, dir, NULL), LC_OK);
    ck_assert_int_eq(access(p1, F_OK), 0);
    snprintf(p1, sizeof p1, "%s/%s.tmp", dir, LC_PEFT_CONFIG_FILE);
    ck_assert_int_ne(access(p1, F_OK), 0);
    rm_adapter_dir(dir);
    lc_lora_set_free(s2);
    lc_lora_set_free(s);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

/* Random sets on both architectures, full rank and rank 1, partial layers, mixed projections,
 * a rank larger than min(in, out): PEFT and GGUF save -> load give identical sets. */
START_TEST(test_roundtrip_random_sets) {
    lc_device *dev = NULL;
    const lc_arch archs[2] = {LC_ARCH_LLAMA, LC_ARCH_QWEN2};
    const int ranks[3] = {1, 4, 40}; /* 40 > min(in, out) of every projection: allowed, as in PEFT */
    int n_sets = 0;
    for (int ai = 0; ai < 2; ai++) {
        lc_model *m = tiny_model(&dev, archs[ai], 32, 2);
        for (int ri = 0; ri < 3; ri++) {
            lc_lora_config c = {.r = ranks[ri], .lora_alpha = 5.0f, .use_rslora = ri == 1, .dropout = 0.1f,
                                .target_mask = LC_MOD_MASK_ALL, .seed = 3};
            lc_lora_set *s = NULL, *p = NULL, *g = NULL;
            ck_assert_msg(lc_lora_set_new(m, &c, &s) == LC_OK, "%s", lc_last_error());
            randomize(s, 100 + (uint64_t)(ai * 10 + ri));
            const char *dir = tmp_path("rt_random"), *gg = tmp_path("rt_random.gguf");
            rm_adapter_dir(dir);
            ck_assert_msg(lc_adapter_save_peft(m, s, dir, NULL) == LC_OK, "%s", lc_last_error());
            ck_assert_msg(lc_adapter_load_peft(m, dir, &p) == LC_OK, "%s", lc_last_error());
            assert_sets_equal(s, p, true);
            ck_assert(p->cfg.use_rslora == c.use_rslora && p->cfg.dropout == c.dropout);
            ck_assert_msg(lc_adapter_save_gguf(m, s, gg, NULL) == LC_OK, "%s", lc_last_error());
            ck_assert_msg(lc_adapter_load_gguf(m, gg, &g) == LC_OK, "%s", lc_last_error());
            assert_sets_equal(s, g, !c.use_rslora); /* rsLoRA: the file's alpha is alpha·sqrt(r) */
            /* lc_adapter_load picks the format */
            lc_lora_set *q = NULL;
            ck_assert_int_eq(lc_adapter_load(m, dir, &q), LC_OK);
            lc_lora_set_free(q);
            ck_assert_int_eq(lc_adapter_load(m, gg, &q), LC_OK);
            lc_lora_set_free(q);
            char wp[512];
            snprintf(wp, sizeof wp, "%s/%s", dir, LC_PEFT_WEIGHTS_FILE);
            ck_assert_int_eq(lc_adapter_load(m, wp, &q), LC_OK);
            lc_lora_set_free(q);
            rm_adapter_dir(dir);
            remove(gg);
            lc_lora_set_free(s);
            lc_lora_set_free(p);
            lc_lora_set_free(g);
            n_sets++;
        }
        lc_model_free(m);
    }
    lt_log("[adapter] %d random sets (llama/qwen2, r = 1, 4 rsLoRA, 40 > min(in,out)) round-trip in both formats\n",
           n_sets);
    lc_device_close(dev);
}
END_TEST

/* Layers with different projections: the config's target_modules becomes a regular expression;
 * only some layers: layers_to_transform. Both read back to the same set. */
START_TEST(test_roundtrip_partial_sets) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_QWEN2, 32, 2);
    lc_lora_set *s = NULL, *p = NULL;
    /* layer 1 only (from the PEFT fixture) */
    ck_assert_int_eq(lc_adapter_load_peft(m, FIX("peft_qwen2_rslora"), &s), LC_OK);
    const char *dir = tmp_path("rt_partial");
    rm_adapter_dir(dir);
    ck_assert_int_eq(lc_adapter_save_peft(m, s, dir, NULL), LC_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, LC_PEFT_CONFIG_FILE);
    char *cfg = slurp(path);
    ck_assert_msg(strstr(cfg, "\"layers_to_transform\": [\n    1\n  ],") != NULL, "%s", cfg);
    free(cfg);
    ck_assert_int_eq(lc_adapter_load_peft(m, dir, &p), LC_OK);
    assert_sets_equal(s, p, true);
    lc_lora_set_free(p);
    lc_lora_set_free(s);
    rm_adapter_dir(dir);

    /* a hand-made PEFT adapter: layer 0 q_proj and layer 1 v_proj, target_modules a regex string */
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/%s", dir, LC_PEFT_CONFIG_FILE);
    write_text(path, "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 3, \"target_modules\": "
                     "\"model\\\\.layers\\\\.(0\\\\.self_attn\\\\.q_proj|1\\\\.self_attn\\\\.v_proj)\"}");
    lc_safetensors_writer *w = NULL;
    ck_assert_int_eq(lc_safetensors_writer_new(&w), LC_OK);
    float buf[64];
    for (int i = 0; i < 64; i++) buf[i] = (float)i - 20.5f;
    const int64_t sa[2] = {2, 32}, sq[2] = {32, 2}, sv[2] = {16, 2};
    lc_safetensors_writer_add(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", LC_ST_F32, 2, sa, buf, 256);
    lc_safetensors_writer_add(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", LC_ST_F32, 2, sq, buf, 256);
    lc_safetensors_writer_add(w, "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight", LC_ST_F32, 2, sa, buf, 256);
    lc_safetensors_writer_add(w, "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", LC_ST_F32, 2, sv, buf, 128);
    snprintf(path, sizeof path, "%s/%s", dir, LC_PEFT_WEIGHTS_FILE);
    ck_assert_int_eq(lc_safetensors_writer_write(w, path), LC_OK);
    lc_safetensors_writer_free(w);
    ck_assert_msg(lc_adapter_load_peft(m, dir, &s) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(s->n_modules, 2);
    ck_assert(lc_lora_set_find(s, 0, LC_MOD_ATTN_Q) && lc_lora_set_find(s, 1, LC_MOD_ATTN_V));
    ck_assert(lc_lora_set_find(s, 0, LC_MOD_ATTN_Q)->scaling == 1.5f);
    const char *dir2 = tmp_path("rt_partial2");
    rm_adapter_dir(dir2);
    ck_assert_int_eq(lc_adapter_save_peft(m, s, dir2, NULL), LC_OK);
    snprintf(path, sizeof path, "%s/%s", dir2, LC_PEFT_CONFIG_FILE);
    cfg = slurp(path);
    ck_assert_msg(strstr(cfg, "\"target_modules\": \"(model\\\\.layers\\\\.0\\\\.self_attn\\\\.q_proj|"
                              "model\\\\.layers\\\\.1\\\\.self_attn\\\\.v_proj)\",") != NULL, "%s", cfg);
    free(cfg);
    ck_assert_msg(lc_adapter_load_peft(m, dir2, &p) == LC_OK, "%s", lc_last_error());
    assert_sets_equal(s, p, true);
    lc_lora_set_free(p);
    lc_lora_set_free(s);
    rm_adapter_dir(dir);
    rm_adapter_dir(dir2);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

/* ---- GGUF adapters ------------------------------------------------------------------------------ */

START_TEST(test_gguf_layout_and_alpha_pattern) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_LLAMA, 32, 2);
    lc_lora_set *s = NULL, *g = NULL;
    ck_assert_int_eq(lc_adapter_load_peft(m, FIX("peft_llama"), &s), LC_OK);
    const char *path = tmp_path("llama_adapter.gguf");
    lc_adapter_meta meta = {.name = "tiny adapter"};
    ck_assert_msg(lc_adapter_save_gguf(m, s, path, &meta) == LC_OK, "%s", lc_last_error());
    /* the file as llama.cpp reads it */
    lc_gguf *f = NULL;
    ck_assert_int_eq(lc_gguf_open(path, &f), LC_OK);
    const char *v;
    ck_assert_int_eq(lc_gguf_get_string(f, "general.type", &v, NULL), LC_OK);
    ck_assert_str_eq(v, "adapter");
    ck_assert_int_eq(lc_gguf_get_string(f, "adapter.type", &v, NULL), LC_OK);
    ck_assert_str_eq(v, "lora");
    ck_assert_int_eq(lc_gguf_get_string(f, "general.architecture", &v, NULL), LC_OK);
    ck_assert_str_eq(v, "llama");
    ck_assert_int_eq(lc_gguf_get_string(f, "general.name", &v, NULL), LC_OK);
    ck_assert_str_eq(v, "tiny adapter");
    float alpha;
    ck_assert_int_eq(lc_gguf_get_f32(f, "adapter.lora.alpha", &alpha), LC_OK);
    ck_assert(alpha == 6.0f);
    ck_assert_int_eq(lc_gguf_n_tensors(f), 28);
    const lc_gguf_tensor_info *ta = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "blk.1.attn_k.weight.lora_a"));
    const lc_gguf_tensor_info *tb = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "blk.1.attn_k.weight.lora_b"));
    ck_assert(ta && tb && ta->type == LC_F32 && tb->type == LC_F32);
    ck_assert(ta->ne[0] == 32 && ta->ne[1] == 5 && tb->ne[0] == 5 && tb->ne[1] == 16);
    /* GGUF holds lorac's bytes (GGUF q/k order): same as the loaded set */
    const lc_lora_module *lq = lc_lora_set_find(s, 0, LC_MOD_ATTN_Q);
    float *bq = get_f32(lq->lora_b);
    ck_assert(memcmp(lc_gguf_tensor(f, lc_gguf_find_tensor(f, "blk.0.attn_q.weight.lora_b"))->data, bq,
                     lc_nbytes(lq->lora_b)) == 0);
    free(bq);
    lc_gguf_close(f);

    ck_assert_msg(lc_adapter_load_gguf(m, path, &g) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(g->n_modules, 14);
    for (int i = 0; i < s->n_modules; i++) {
        const lc_lora_module *a = &s->modules[i], *b = lc_lora_set_find(g, a->layer, a->module);
        ck_assert_int_eq(a->r, b->r); /* rank_pattern: exact, r from the shape */
        float *aa = get_f32(a->lora_a), *ba = get_f32(b->lora_a), *ab = get_f32(a->lora_b), *bb = get_f32(b->lora_b);
        ck_assert(memcmp(aa, ba, lc_nbytes(a->lora_a)) == 0);
        if (a->scaling == b->scaling) {
            ck_assert_msg(memcmp(ab, bb, lc_nbytes(a->lora_b)) == 0, "%s: B changed", a->target);
        } else { /* alpha_pattern module: B carries the ratio, scaling·B is kept */
            ck_assert_msg(a->layer == 0 && a->module == LC_MOD_FFN_DOWN, "%s: scaling %g -> %g", a->target, a->scaling,
                          b->scaling);
            ck_assert(b->scaling == 2.0f && a->scaling == 4.0f);
            for (int64_t k = 0; k < lc_nelements(a->lora_b); k++)
                ck_assert_msg(fabsf(a->scaling * ab[k] - b->scaling * bb[k]) <= 1e-6f * fabsf(a->scaling * ab[k]),
                              "%s: scaling·B[%lld] %g vs %g", a->target, (long long)k, a->scaling * ab[k],
                              b->scaling * bb[k]);
        }
        free(aa);
        free(ba);
        free(ab);
        free(bb);
    }
    remove(path);
    lc_lora_set_free(g);
    lc_lora_set_free(s);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

/* A GGUF adapter written byte by byte as convert_lora_to_gguf.py would (F16 tensors, rank 1,
 * keys in its order), read with scale alpha / r. */
START_TEST(test_gguf_foreign_writer) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_QWEN2, 32, 2);
    lc_gguf_writer *w = NULL;
    ck_assert_int_eq(lc_gguf_writer_new(&w), LC_OK);
    lc_gguf_writer_set_string(w, "general.architecture", "qwen2");
    lc_gguf_writer_set_string(w, "general.type", "adapter");
    lc_gguf_writer_set_string(w, "adapter.type", "lora");
    lc_gguf_writer_set_f32(w, "adapter.lora.alpha", 3.0f);
    uint16_t a[32], b[32];
    for (int i = 0; i < 32; i++) {
        a[i] = lc_fp32_to_fp16((float)i / 8.0f);
        b[i] = lc_fp32_to_fp16(-(float)i / 4.0f);
    }
    const int64_t ne_a[2] = {32, 1}, ne_b[2] = {1, 32};
    lc_gguf_writer_add_tensor(w, "blk.1.attn_output.weight.lora_a", LC_F16, 2, ne_a, a, 64);
    lc_gguf_writer_add_tensor(w, "blk.1.attn_output.weight.lora_b", LC_F16, 2, ne_b, b, 64);
    const char *path = tmp_path("foreign.gguf");
    ck_assert_int_eq(lc_gguf_writer_write(w, path), LC_OK);
    lc_gguf_writer_free(w);
    lc_lora_set *s = NULL;
    ck_assert_msg(lc_adapter_load_gguf(m, path, &s) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(s->n_modules, 1);
    const lc_lora_module *lm = lc_lora_set_find(s, 1, LC_MOD_ATTN_OUTPUT);
    ck_assert(lm && lm->r == 1 && lm->scaling == 3.0f && lm->lora_alpha == 3.0f);
    float *pa = get_f32(lm->lora_a), *pb = get_f32(lm->lora_b);
    for (int i = 0; i < 32; i++) ck_assert(pa[i] == (float)i / 8.0f && pb[i] == -(float)i / 4.0f);
    free(pa);
    free(pb);
    lc_lora_set_free(s);
    remove(path);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

/* ---- errors -------------------------------------------------------------------------------------- */

/* Copy the fixture peft_llama into `dir`, with `config` (NULL: the fixture's), skipping the key
 * `skip` and replacing/adding one tensor `extra` of shape rows x cols (when extra is not NULL). */
static void make_variant(const char *dir, const char *config, const char *skip, const char *extra, int64_t rows,
                         int64_t cols, lc_st_dtype dtype) {
    rm_adapter_dir(dir);
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, LC_PEFT_CONFIG_FILE);
    if (config) {
        write_text(path, config);
    } else {
        char *t = slurp(FIX("peft_llama/" LC_PEFT_CONFIG_FILE));
        write_text(path, t);
        free(t);
    }
    lc_safetensors *f = NULL;
    ck_assert_int_eq(lc_safetensors_open(FIX("peft_llama/" LC_PEFT_WEIGHTS_FILE), &f), LC_OK);
    lc_safetensors_writer *w = NULL;
    ck_assert_int_eq(lc_safetensors_writer_new(&w), LC_OK);
    for (int64_t i = 0; i < lc_safetensors_n_tensors(f); i++) {
        const lc_st_tensor_info *t = lc_safetensors_tensor(f, i);
        if ((skip && strcmp(t->name, skip) == 0) || (extra && strcmp(t->name, extra) == 0)) continue;
        ck_assert_int_eq(lc_safetensors_writer_add(w, t->name, t->dtype, t->n_dims, t->shape, t->data, t->size), LC_OK);
    }
    if (extra) {
        size_t bytes = (size_t)(rows * cols) * (size_t)lc_st_dtype_bits(dtype) / 8;
        void *zero = calloc(1, bytes + 1);
        const int64_t shape[2] = {rows, cols};
        ck_assert_int_eq(lc_safetensors_writer_add(w, extra, dtype, 2, shape, zero, bytes), LC_OK);
        free(zero);
    }
    snprintf(path, sizeof path, "%s/%s", dir, LC_PEFT_WEIGHTS_FILE);
    ck_assert_int_eq(lc_safetensors_writer_write(w, path), LC_OK);
    lc_safetensors_writer_free(w);
    lc_safetensors_close(f);
}

static void expect_load_error(const lc_model *m, const char *dir, lc_status want, const char *frag1, const char *frag2) {
    lc_lora_set *s = (lc_lora_set *)0x1;
    lc_status st = lc_adapter_load_peft(m, dir, &s);
    ck_assert_msg(st == want, "status %d (%s), expected %d", st, lc_last_error(), want);
    ck_assert_ptr_null(s);
    const char *msg = lc_last_error();
    if (frag1) ck_assert_msg(strstr(msg, frag1) != NULL, "message '%s' lacks '%s'", msg, frag1);
    if (frag2) ck_assert_msg(strstr(msg, frag2) != NULL, "message '%s' lacks '%s'", msg, frag2);
    lt_log("  refused as expected: %s\n", msg);
}

#define KEY(path, ab) "base_model.model.model.layers." path ".lora_" ab ".weight"

START_TEST(test_peft_errors) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_LLAMA, 32, 2);
    const char *dir = tmp_path("bad");
    /* a key that matches no module */
    make_variant(dir, NULL, NULL, "base_model.model.lm_head.lora_A.weight", 3, 32, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, "base_model.model.lm_head.lora_A.weight", "matches no module");
    /* the adapter name left inside the key */
    make_variant(dir, NULL, NULL, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", 3, 32,
                 LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, "lora_A.default.weight", "matches no module");
    /* a targeted module without its lora_B */
    make_variant(dir, NULL, KEY("1.mlp.up_proj", "B"), NULL, 0, 0, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, "model.layers.1.mlp.up_proj", "lora_B");
    /* a targeted module without any tensor */
    char cfg[2048];
    snprintf(cfg, sizeof cfg, "{\"peft_type\": \"LORA\", \"r\": 3, \"lora_alpha\": 6, \"target_modules\": [\"q_proj\"]}");
    make_variant(dir, cfg, NULL, NULL, 0, 0, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, "does not target", NULL);
    /* wrong shapes: A of rank 4 where r = 3; B transposed */
    make_variant(dir, NULL, NULL, KEY("0.self_attn.v_proj", "A"), 4, 32, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, KEY("0.self_attn.v_proj", "A"), "[4, 32], expected [3, 32]");
    make_variant(dir, NULL, NULL, KEY("0.self_attn.v_proj", "B"), 3, 16, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, KEY("0.self_attn.v_proj", "B"), "[3, 16], expected [16, 3]");
    /* rank_pattern says 5 for layer 1 k_proj: a rank-3 tensor there is wrong */
    make_variant(dir, NULL, NULL, KEY("1.self_attn.k_proj", "A"), 3, 32, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, KEY("1.self_attn.k_proj", "A"), "expected [5, 32]");
    /* a dtype that is not a float */
    make_variant(dir, NULL, NULL, KEY("0.self_attn.v_proj", "A"), 3, 32, LC_ST_I32);
    expect_load_error(m, dir, LC_ERR_DTYPE, KEY("0.self_attn.v_proj", "A"), "I32");
    /* config errors */
    make_variant(dir, "{\"peft_type\": \"LORA\", \"r\": 3,", NULL, NULL, 0, 0, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, LC_PEFT_CONFIG_FILE, "JSON");
    make_variant(dir, "{\"peft_type\": \"IA3\"}", NULL, NULL, 0, 0, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, "IA3", NULL);
    make_variant(dir, "{\"r\": 3}", NULL, NULL, 0, 0, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, "peft_type", NULL);
    make_variant(dir, "{\"peft_type\": \"LORA\", \"r\": \"3\"}", NULL, NULL, 0, 0, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, "'r'", NULL);
    make_variant(dir, "{\"peft_type\": \"LORA\", \"r\": 3, \"use_dora\": true}", NULL, NULL, 0, 0, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_UNSUPPORTED, "use_dora", NULL);
    make_variant(dir, "{\"peft_type\": \"LORA\", \"r\": 3, \"modules_to_save\": [\"lm_head\"]}", NULL, NULL, 0, 0,
                 LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_UNSUPPORTED, "modules_to_save", NULL);
    make_variant(dir, "{\"peft_type\": \"LORA\", \"r\": 3, \"target_modules\": \"([\"}", NULL, NULL, 0, 0, LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, "regular expression", NULL);
    /* files missing */
    rm_adapter_dir(dir);
    expect_load_error(m, dir, LC_ERR_IO, LC_PEFT_CONFIG_FILE, NULL);
    lc_lora_set *s = NULL;
    ck_assert_int_eq(lc_adapter_load(m, dir, &s), LC_ERR_IO);
    ck_assert_int_eq(lc_adapter_load(m, FIX("peft_llama_expect.txt"), &s), LC_ERR_FORMAT);

    /* adapters for another model: wider hidden size, fewer layers */
    lc_model *wide = tiny_model(&dev, LC_ARCH_LLAMA, 64, 2);
    expect_load_error(wide, FIX("peft_llama"), LC_ERR_FORMAT, "expected [3, 64]", NULL);
    lc_model *shallow = tiny_model(&dev, LC_ARCH_LLAMA, 32, 1);
    expect_load_error(shallow, FIX("peft_llama"), LC_ERR_FORMAT, "layer 1", "another model");

    /* saving a set made for another model */
    lc_lora_config c = {.r = 2, .lora_alpha = 4, .target_mask = 1u << LC_MOD_ATTN_Q};
    ck_assert_int_eq(lc_lora_set_new(wide, &c, &s), LC_OK);
    ck_assert_int_eq(lc_adapter_save_peft(m, s, tmp_path("x"), NULL), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "blk.0.attn_q"));
    ck_assert_int_eq(lc_adapter_save_gguf(m, s, tmp_path("x.gguf"), NULL), LC_ERR_INVALID_ARG);
    lc_lora_set_free(s);
    ck_assert_int_eq(lc_lora_set_new(shallow, &c, &s), LC_OK);
    ck_assert_int_eq(lc_adapter_save_peft(m, s, tmp_path("x"), NULL), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "layers"));
    /* the parent directory must exist */
    lc_lora_set_free(s);
    ck_assert_int_eq(lc_lora_set_new(m, &c, &s), LC_OK);
    ck_assert_int_eq(lc_adapter_save_peft(m, s, "/nonexistent_lorac/adapter", NULL), LC_ERR_IO);
    lc_lora_set_free(s);
    lc_model_free(shallow);
    lc_model_free(wide);
    rm_adapter_dir(dir);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

static void gguf_bad(const lc_model *m, const char *arch, const char *type, const char *name_a, const int64_t *ne_a,
                     const char *name_b, const int64_t *ne_b, lc_status want, const char *frag) {
    lc_gguf_writer *w = NULL;
    ck_assert_int_eq(lc_gguf_writer_new(&w), LC_OK);
    lc_gguf_writer_set_string(w, "general.architecture", arch);
    if (type) lc_gguf_writer_set_string(w, "general.type", type);
    lc_gguf_writer_set_string(w, "adapter.type", "lora");
    lc_gguf_writer_set_f32(w, "adapter.lora.alpha", 4.0f);
    static float zeros[4096];
    if (name_a) lc_gguf_writer_add_tensor(w, name_a, LC_F32, 2, ne_a, zeros, (size_t)(ne_a[0] * ne_a[1]) * 4);
    if (name_b) lc_gguf_writer_add_tensor(w, name_b, LC_F32, 2, ne_b, zeros, (size_t)(ne_b[0] * ne_b[1]) * 4);
    const char *path = tmp_path("bad.gguf");
    ck_assert_int_eq(lc_gguf_writer_write(w, path), LC_OK);
    lc_gguf_writer_free(w);
    lc_lora_set *s = (lc_lora_set *)0x1;
    lc_status st = lc_adapter_load_gguf(m, path, &s);
    ck_assert_msg(st == want, "status %d (%s), expected %d", st, lc_last_error(), want);
    remove(path);
    if (want == LC_OK) {
        lc_lora_set_free(s);
        return;
    }
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(lc_last_error(), frag) != NULL, "message '%s' lacks '%s'", lc_last_error(), frag);
    lt_log("  refused as expected: %s\n", lc_last_error());
}

START_TEST(test_gguf_errors) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_LLAMA, 32, 2);
    const int64_t a_ok[2] = {32, 2}, b_q[2] = {2, 32}, b_bad[2] = {3, 32}, a_wide[2] = {64, 2};
    const char *qa = "blk.0.attn_q.weight.lora_a", *qb = "blk.0.attn_q.weight.lora_b";
    gguf_bad(m, "llama", "adapter", qa, a_ok, qb, b_q, LC_OK, ""); /* control: this one loads */
    gguf_bad(m, "qwen2", "adapter", qa, a_ok, qb, b_q, LC_ERR_FORMAT, "another model");
    gguf_bad(m, "llama", NULL, qa, a_ok, qb, b_q, LC_ERR_FORMAT, "general.type");
    gguf_bad(m, "llama", "model", qa, a_ok, qb, b_q, LC_ERR_FORMAT, "general.type");
    gguf_bad(m, "llama", "adapter", qa, a_ok, NULL, NULL, LC_ERR_FORMAT, "blk.0.attn_q.weight.lora_b");
    gguf_bad(m, "llama", "adapter", qa, a_ok, qb, b_bad, LC_ERR_FORMAT, "blk.0.attn_q");
    gguf_bad(m, "llama", "adapter", qa, a_wide, qb, b_q, LC_ERR_FORMAT, "another model");
    gguf_bad(m, "llama", "adapter", "blk.7.attn_q.weight.lora_a", a_ok, "blk.7.attn_q.weight.lora_b", b_q,
             LC_ERR_FORMAT, "layer 7");
    gguf_bad(m, "llama", "adapter", "token_embd.weight.lora_a", a_ok, "token_embd.weight.lora_b", b_q,
             LC_ERR_UNSUPPORTED, "token_embd.weight.lora_a");
    gguf_bad(m, "llama", "adapter", "blk.0.attn_q.weight", a_ok, NULL, NULL, LC_ERR_FORMAT, "not a LoRA tensor");
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_atomic_dir) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_QWEN2, 32, 2);
    lc_lora_config c = {.r = 1, .lora_alpha = 1, .target_mask = LC_MOD_MASK_ALL};
    lc_lora_set *s = NULL, *p = NULL;
    ck_assert_int_eq(lc_lora_set_new(m, &c, &s), LC_OK);
    const char *dir = tmp_path("atomic");
    rm_adapter_dir(dir);
    /* a stale "<dir>.tmp" from a crash holding a half adapter is cleared */
    char tmp[512], path[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    mkdir(tmp, 0777);
    snprintf(path, sizeof path, "%s/%s", tmp, LC_PEFT_WEIGHTS_FILE);
    write_text(path, "half");
    ck_assert_msg(lc_adapter_save_peft(m, s, dir, NULL) == LC_OK, "%s", lc_last_error());
    ck_assert_int_ne(access(tmp, F_OK), 0);
    ck_assert_int_eq(lc_adapter_load_peft(m, dir, &p), LC_OK);
    assert_sets_equal(s, p, true);
    /* a path that is a file */
    snprintf(path, sizeof path, "%s/%s", dir, LC_PEFT_CONFIG_FILE);
    ck_assert_int_eq(lc_adapter_save_peft(m, s, path, NULL), LC_ERR_IO);
    rm_adapter_dir(dir);
    lc_lora_set_free(p);
    lc_lora_set_free(s);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

/* ---- values, metadata and output paths ---------------------------------------------------------- */

/* A NaN or an infinity in any lora_A / lora_B is refused by both loaders (and lc_adapter_load) with
 * the file, the tensor, the count and the first element named: an adapter whose every output
 * would be NaN must not load (the file is written by lorac's own savers, which keep the bytes). */
START_TEST(test_non_finite_values) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_LLAMA, 32, 2);
    lc_lora_config c = {.r = 2, .lora_alpha = 4, .target_mask = LC_MOD_MASK_ALL};
    const float bad_values[2] = {NAN, -INFINITY};
    for (int k = 0; k < 2; k++) { /* k = 0: NaN in lora_B of layer 1 v_proj; 1: -inf in lora_A of layer 0 q_proj */
        lc_lora_set *s = NULL;
        ck_assert_int_eq(lc_lora_set_new(m, &c, &s), LC_OK);
        randomize(s, 11 + (uint64_t)k);
        const lc_lora_module *lm = lc_lora_set_find(s, k ? 0 : 1, k ? LC_MOD_ATTN_Q : LC_MOD_ATTN_V);
        ck_assert_ptr_nonnull(lm);
        lc_tensor *t = k ? lm->lora_a : lm->lora_b;
        const int64_t n = lc_nelements(t), at = 5; /* A and v_proj's B are stored as they are: file element 5 */
        float *v = get_f32(t);
        v[at] = bad_values[k];
        ck_assert_int_eq(lc_tensor_set_f32(t, v, n), LC_OK);
        free(v);
        const char *dir = tmp_path("nonfinite"), *gg = tmp_path("nonfinite.gguf");
        ck_assert_msg(lc_adapter_save_peft(m, s, dir, NULL) == LC_OK, "%s", lc_last_error());
        ck_assert_msg(lc_adapter_save_gguf(m, s, gg, NULL) == LC_OK, "%s", lc_last_error());
        char expect_count[64], expect_first[64];
        snprintf(expect_count, sizeof expect_count, "holds 1 NaN or infinite value of %lld", (long long)n);
        snprintf(expect_first, sizeof expect_first, "element %lld, is %s", (long long)at, k ? "-inf" : "nan");
        const char *key = k ? KEY("0.self_attn.q_proj", "A") : KEY("1.self_attn.v_proj", "B");
        expect_load_error(m, dir, LC_ERR_FORMAT, key, expect_count);
        ck_assert_msg(strstr(lc_last_error(), expect_first), "%s", lc_last_error());
        ck_assert_msg(strstr(lc_last_error(), LC_PEFT_WEIGHTS_FILE), "%s", lc_last_error());
        lc_lora_set *g = (lc_lora_set *)0x1;
        ck_assert_int_eq(lc_adapter_load_gguf(m, gg, &g), LC_ERR_FORMAT);
        ck_assert_ptr_null(g);
        const char *tname = k ? "blk.0.attn_q.weight.lora_a" : "blk.1.attn_v.weight.lora_b";
        ck_assert_msg(strstr(lc_last_error(), tname) && strstr(lc_last_error(), gg) &&
                      strstr(lc_last_error(), expect_count) && strstr(lc_last_error(), expect_first),
                      "%s", lc_last_error());
        lt_log("  refused as expected: %s\n", lc_last_error());
        ck_assert_int_eq(lc_adapter_load(m, dir, &g), LC_ERR_FORMAT);
        ck_assert_int_eq(lc_adapter_load(m, gg, &g), LC_ERR_FORMAT);
        rm_adapter_dir(dir);
        remove(gg);
        lc_lora_set_free(s);
    }
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

/* The fixture's adapter_config.json with its "lora_alpha": 6 replaced by `alpha` (JSON text). */
static char *config_with_alpha(const char *alpha) {
    char *t = slurp(FIX("peft_llama/" LC_PEFT_CONFIG_FILE));
    const char *key = "\"lora_alpha\": 6,";
    char *at = strstr(t, key);
    ck_assert_ptr_nonnull(at);
    char *out = malloc(strlen(t) + strlen(alpha) + 32);
    sprintf(out, "%.*s\"lora_alpha\": %s,%s", (int)(at - t), t, alpha, at + strlen(key));
    free(t);
    return out;
}

/* lora_alpha is kept as a float32: a JSON value that would round to inf is refused and shown as
 * written; the largest value that rounds to FLT_MAX still loads. The boundary is IEEE 754's
 * (round to nearest, ties to even): FLT_MAX + 2^103 is the first double that becomes inf. */
START_TEST(test_alpha_out_of_float_range) {
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_LLAMA, 32, 2);
    const char *dir = tmp_path("alpha");
    char *cfg = config_with_alpha("1e39");
    make_variant(dir, cfg, NULL, NULL, 0, 0, LC_ST_F32);
    free(cfg);
    expect_load_error(m, dir, LC_ERR_FORMAT, "'lora_alpha' = 1e+39", "float32");
    ck_assert_msg(!strstr(lc_last_error(), "inf"), "%s", lc_last_error());
    cfg = config_with_alpha("-3.5e38");
    make_variant(dir, cfg, NULL, NULL, 0, 0, LC_ST_F32);
    free(cfg);
    expect_load_error(m, dir, LC_ERR_FORMAT, "'lora_alpha' = -3.5e+38", "float32");
    /* the boundary, checked against the C compiler's own conversion */
    const double first_inf = 3.4028235677973366e+38, last_finite = 3.4028235677973362e+38;
    volatile double vi = first_inf, vf = last_finite;
    ck_assert(isinf((float)vi) && (float)vf == FLT_MAX);
    cfg = config_with_alpha("3.4028235677973366e+38");
    make_variant(dir, cfg, NULL, NULL, 0, 0, LC_ST_F32);
    free(cfg);
    expect_load_error(m, dir, LC_ERR_FORMAT, "= 3.4028235677973366e+38", NULL);
    cfg = config_with_alpha("3.4028235677973362e+38");
    make_variant(dir, cfg, NULL, NULL, 0, 0, LC_ST_F32);
    free(cfg);
    lc_lora_set *s = NULL;
    ck_assert_msg(lc_adapter_load_peft(m, dir, &s) == LC_OK, "%s", lc_last_error());
    ck_assert(s->cfg.lora_alpha == FLT_MAX);
    lc_lora_set_free(s);
    /* alpha_pattern values follow the same rule */
    make_variant(dir, "{\"peft_type\": \"LORA\", \"r\": 3, \"alpha_pattern\": {\"q_proj\": 2e40}}", NULL, NULL, 0, 0,
                 LC_ST_F32);
    expect_load_error(m, dir, LC_ERR_FORMAT, "alpha_pattern['q_proj'] = 2e+40", "float32");
    rm_adapter_dir(dir);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

/* A GGUF file at `path` holding only the string keys kv[0..2n) (key, value pairs). */
static void write_meta_gguf(const char *path, const char *const *kv, int n) {
    lc_gguf_writer *w = NULL;
    ck_assert_int_eq(lc_gguf_writer_new(&w), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "general.architecture", "llama"), LC_OK);
    for (int i = 0; i < n; i++) ck_assert_int_eq(lc_gguf_writer_set_string(w, kv[2 * i], kv[2 * i + 1]), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_write(w, path), LC_OK);
    lc_gguf_writer_free(w);
}

static void expect_meta(const char *path, const char *base, const char *name) {
    lc_adapter_meta_buf b;
    lc_adapter_meta meta = {NULL, NULL};
    ck_assert_msg(lc_adapter_meta_from_model(path, &b, &meta) == LC_OK, "%s", lc_last_error());
    ck_assert_msg(strcmp(meta.base_model_name_or_path, base) == 0, "%s: base_model_name_or_path '%s', expected '%s'",
                  path, meta.base_model_name_or_path, base);
    ck_assert_msg(strcmp(meta.name, name) == 0, "%s: name '%s', expected '%s'", path, meta.name, name);
}

/* lc_adapter_meta_from_model, the one rule for base_model_name_or_path and the adapter's name. */
START_TEST(test_meta_from_model) {
    const char *p = tmp_path("meta_model.gguf");
    const char *hf[] = {"general.name", "Foo 1B", "general.source.repo_url", "https://huggingface.co/org/foo-1b"};
    write_meta_gguf(p, hf, 2);
    expect_meta(p, "org/foo-1b", "Foo 1B LoRA");
    const char *url[] = {"general.name", "Foo", "general.source.repo_url", "https://github.com/org/foo",
                         "general.source.url", "http://huggingface.co/Org_2/foo.v2-x/"};
    write_meta_gguf(p, url, 3);
    expect_meta(p, "Org_2/foo.v2-x", "Foo LoRA");
    /* not a model repository id: a dataset URL, a bare organisation, a query string */
    const char *not_id[] = {"general.name", "Bar", "general.source.repo_url", "https://huggingface.co/datasets/a/b",
                            "general.source.url", "https://huggingface.co/org"};
    write_meta_gguf(p, not_id, 3);
    expect_meta(p, "Bar", "Bar LoRA");
    const char *query[] = {"general.name", "Bar", "general.source.url", "https://huggingface.co/a/b?x=1"};
    write_meta_gguf(p, query, 2);
    expect_meta(p, "Bar", "Bar LoRA");
    /* general.base_model.0.* names the model's own parent, never the adapter's base */
    const char *parent[] = {"general.name", "Tuned It", "general.base_model.0.repo_url",
                            "https://huggingface.co/google/base", "general.base_model.0.name", "Base"};
    write_meta_gguf(p, parent, 3);
    expect_meta(p, "Tuned It", "Tuned It LoRA");
    /* no metadata, an empty name, or not a GGUF at all: the file name */
    write_meta_gguf(p, NULL, 0);
    expect_meta(p, "meta_model.gguf", "meta_model.gguf LoRA");
    const char *empty[] = {"general.name", ""};
    write_meta_gguf(p, empty, 1);
    expect_meta(p, "meta_model.gguf", "meta_model.gguf LoRA");
    const char *txt = tmp_path("meta_not_gguf.gguf");
    write_text(txt, "not a gguf");
    expect_meta(txt, "meta_not_gguf.gguf", "meta_not_gguf.gguf LoRA");
    ck_assert_str_eq(lc_last_error(), "");
    /* a name longer than the buffer is cut between characters: 400 two-byte characters */
    char longname[801];
    for (int i = 0; i < 400; i++) memcpy(longname + 2 * i, "\xC3\xA9", 2); /* U+00E9 */
    longname[800] = 0;
    const char *lk[] = {"general.name", longname};
    write_meta_gguf(p, lk, 1);
    lc_adapter_meta_buf b;
    lc_adapter_meta meta;
    ck_assert_int_eq(lc_adapter_meta_from_model(p, &b, &meta), LC_OK);
    const size_t nb = strlen(meta.base_model_name_or_path), nn = strlen(meta.name);
    ck_assert(nb < sizeof b.base_model_name_or_path && nb % 2 == 0 && nb >= sizeof b.base_model_name_or_path - 2);
    ck_assert(nn < sizeof b.name && strcmp(meta.name + nn - 5, " LoRA") == 0 && (nn - 5) % 2 == 0);
    ck_assert_int_eq(lc_adapter_meta_from_model(NULL, &b, &meta), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_adapter_meta_from_model(p, NULL, &meta), LC_ERR_INVALID_ARG);
    /* what a PEFT file then says */
    write_meta_gguf(p, hf, 2);
    ck_assert_int_eq(lc_adapter_meta_from_model(p, &b, &meta), LC_OK);
    lc_device *dev = NULL;
    lc_model *m = tiny_model(&dev, LC_ARCH_QWEN2, 32, 2);
    lc_lora_config c = {.r = 1, .lora_alpha = 1, .target_mask = 1u << LC_MOD_ATTN_Q};
    lc_lora_set *s = NULL;
    ck_assert_int_eq(lc_lora_set_new(m, &c, &s), LC_OK);
    const char *dir = tmp_path("meta_peft");
    ck_assert_int_eq(lc_adapter_save_peft(m, s, dir, &meta), LC_OK);
    char cfgp[512];
    snprintf(cfgp, sizeof cfgp, "%s/%s", dir, LC_PEFT_CONFIG_FILE);
    char *t = slurp(cfgp);
    ck_assert_msg(strstr(t, "\"base_model_name_or_path\": \"org/foo-1b\""), "%s", t);
    free(t);
    rm_adapter_dir(dir);
    lc_lora_set_free(s);
    lc_model_free(m);
    lc_device_close(dev);
    /* the real model, when present: its metadata (read with gguf-py's GGUFReader) has general.name
     * "Gemma 3 270m" and no source URL */
    const char *home = getenv("HOME");
    char gemma[512];
    snprintf(gemma, sizeof gemma, "%s/.cache/lorac/gemma-3-270m-q4_k_m.gguf", home ? home : "");
    if (access(gemma, R_OK) == 0) expect_meta(gemma, "Gemma 3 270m", "Gemma 3 270m LoRA");
    else lt_log("SKIP [model] meta of Gemma 3 270M: %s not found\n", gemma);
    remove(p);
    remove(txt);
}
END_TEST

static void expect_out_refused(const char *out, bool peft, const char *model, const char *adapter, const char *what,
                               const char *in_path) {
    ck_assert_int_eq(lc_adapter_check_out_path(out, peft, model, adapter, "export"), LC_ERR_INVALID_ARG);
    const char *msg = lc_last_error();
    ck_assert_msg(strncmp(msg, "export: ", 8) == 0 && strstr(msg, out) && strstr(msg, what) && strstr(msg, in_path),
                  "message '%s' lacks '%s' / '%s' / '%s'", msg, out, what, in_path);
    lt_log("  refused as expected: %s\n", msg);
}

/* An output that is an input of the job, under any spelling the file system resolves to the same
 * file, is refused; other outputs pass. */
START_TEST(test_out_path_is_input) {
    char model[400], other[400], sub[400], dotdot[440], dotslash[440], slink[440], hard[400], gg[400], dir[400];
    snprintf(model, sizeof model, "%s/base.gguf", tmp_root);
    snprintf(other, sizeof other, "%s/other.gguf", tmp_root);
    snprintf(sub, sizeof sub, "%s/sub", tmp_root);
    snprintf(dotdot, sizeof dotdot, "%s/../base.gguf", sub);
    snprintf(dotslash, sizeof dotslash, "%s/./base.gguf", tmp_root);
    snprintf(slink, sizeof slink, "%s/link.gguf", sub);
    snprintf(hard, sizeof hard, "%s/hard.gguf", tmp_root);
    snprintf(gg, sizeof gg, "%s/adapter.gguf", tmp_root);
    snprintf(dir, sizeof dir, "%s/peft_dir", tmp_root);
    write_text(model, "model bytes");
    write_text(other, "other bytes");
    write_text(gg, "adapter bytes");
    ck_assert_int_eq(mkdir(sub, 0777), 0);
    ck_assert_int_eq(symlink(model, slink), 0);
    ck_assert_int_eq(link(model, hard), 0);
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    char dcfg[440], dw[440], dslash[420];
    snprintf(dcfg, sizeof dcfg, "%s/%s", dir, LC_PEFT_CONFIG_FILE);
    snprintf(dw, sizeof dw, "%s/%s", dir, LC_PEFT_WEIGHTS_FILE);
    snprintf(dslash, sizeof dslash, "%s/", dir);
    write_text(dcfg, "{}");
    write_text(dw, "weights");

    /* the base model: by its own name, ./, /../, a symbolic link, a hard link; every format */
    const char *aliases[] = {model, dotslash, dotdot, slink, hard};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        for (int peft = 0; peft < 2; peft++)
            expect_out_refused(aliases[i], peft, model, gg, "is the base model file", model);
    /* the adapter: a GGUF file; a PEFT directory (also given by one of its files), its files */
    expect_out_refused(gg, false, model, gg, "is the adapter", gg);
    expect_out_refused(dir, true, model, dir, "is the adapter", dir);
    expect_out_refused(dslash, true, model, dcfg, "is the adapter's directory", dir);
    expect_out_refused(dw, false, model, dir, "is the adapter's " LC_PEFT_WEIGHTS_FILE, dw);
    expect_out_refused(dcfg, false, model, dw, "is the adapter's " LC_PEFT_CONFIG_FILE, dcfg);
    /* a PEFT output directory holding the adapter's files, given as the directory of a GGUF out */
    ck_assert_int_eq(lc_adapter_check_out_path(dir, false, model, dw, "merge"), LC_ERR_INVALID_ARG);
    /* a new PEFT directory whose adapter_model.safetensors already is the adapter's (a link) */
    char sw[440];
    snprintf(sw, sizeof sw, "%s/%s", sub, LC_PEFT_WEIGHTS_FILE);
    ck_assert_int_eq(symlink(dw, sw), 0);
    expect_out_refused(sub, true, model, dir, "would write its " LC_PEFT_WEIGHTS_FILE, dw);
    ck_assert_int_eq(lc_adapter_check_out_path(sub, false, model, dir, "export"), LC_OK); /* a GGUF named sub: no */
    remove(sw);
    /* outputs that overwrite nothing of the job */
    char fresh[420];
    snprintf(fresh, sizeof fresh, "%s/fresh.gguf", tmp_root);
    ck_assert_int_eq(lc_adapter_check_out_path(fresh, false, model, gg, "export"), LC_OK);
    ck_assert_int_eq(lc_adapter_check_out_path(other, false, model, gg, "export"), LC_OK);
    ck_assert_int_eq(lc_adapter_check_out_path(sub, true, model, dir, "export"), LC_OK);
    ck_assert_int_eq(lc_adapter_check_out_path(tmp_root, true, model, gg, "export"), LC_OK); /* base's directory */
    ck_assert_int_eq(lc_adapter_check_out_path(fresh, false, NULL, NULL, NULL), LC_OK);
    ck_assert_int_eq(lc_adapter_check_out_path(NULL, false, model, gg, "export"), LC_ERR_INVALID_ARG);

    remove(dcfg);
    remove(dw);
    rmdir(dir);
    remove(slink);
    rmdir(sub);
    remove(hard);
    remove(model);
    remove(other);
    remove(gg);
}
END_TEST

static Suite *adapter_suite(void) {
    Suite *s = suite_create("adapter");
    TCase *tc = tcase_create("adapter");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_peft_fixture_llama);
    tcase_add_test(tc, test_peft_fixture_qwen2_f16_bf16);
    tcase_add_test(tc, test_peft_roundtrip_fixture);
    tcase_add_test(tc, test_roundtrip_random_sets);
    tcase_add_test(tc, test_roundtrip_partial_sets);
    tcase_add_test(tc, test_gguf_layout_and_alpha_pattern);
    tcase_add_test(tc, test_gguf_foreign_writer);
    tcase_add_test(tc, test_peft_errors);
    tcase_add_test(tc, test_gguf_errors);
    tcase_add_test(tc, test_atomic_dir);
    tcase_add_test(tc, test_non_finite_values);
    tcase_add_test(tc, test_alpha_out_of_float_range);
    tcase_add_test(tc, test_meta_from_model);
    tcase_add_test(tc, test_out_path_is_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/lorac_adapter_%d", (int)getpid());
    mkdir(tmp_root, 0777);
    const int failed = lt_run_suite(adapter_suite());
    if (tmp_root[0]) rmdir(tmp_root);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
