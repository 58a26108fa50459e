/* lorac tests — suite "train_real": training on a real GGUF model (Gemma 3 270M) and the checks
 * that `lorac train` makes before a run.
 *
 * Always (toy model, CPU):
 *  - gradient accumulation: 2 micro-batches of 1 sequence give the loss, gradient norm and LoRA
 *    weights of one batch of 2 sequences (lorac/train.h: loss denominator = the step's label
 *    count), and an all-masked micro-batch neither adds to nor dilutes its step;
 *  - lc_train_check_lora: r > min(in, out), an empty target mask, unknown target names are
 *    clean errors naming the module / value.
 * With the model (LORAC_TEST_MODEL=path, else the file scripts/get-model.sh caches at
 * ${XDG_CACHE_HOME:-$HOME/.cache}/lorac/gemma-3-270m-q4_k_m.gguf; otherwise a visible SKIP, a
 * FAIL when LORAC_REQUIRE_MODEL=1):
 *  - 3 steps at tiny size (1 sequence of 16 tokens, r 4, all projections) on a fixed fortune-like
 *    text: every loss finite, the last below the first, every lora_B non-zero afterwards;
 *  - data errors with the model's tokenizer: empty file, binary data (NUL byte), a JSONL syntax
 *    error naming its line; r above min(in, out) of Gemma's projections.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/lt_util.h"
#include "common/lt_suite.h"
#include "lorac/data.h"
#include "lorac/lorac.h"
#include "lorac/model.h"
#include "lorac/train.h"

static lc_device *open_cpu(void) {
    lc_device *dev = NULL;
    ck_assert_msg(lc_device_open("cpu", &dev) == LC_OK, "open cpu: %s", lc_last_error());
    return dev;
}

static float *fget(const lc_tensor *t) {
    const int64_t n = lc_nelements(t);
    float *f = lt_falloc(n);
    ck_assert_msg(lc_tensor_get_f32(t, f, n) == LC_OK, "get %s: %s", t->name, lc_last_error());
    return f;
}

/* ---- gradient accumulation (toy model) -------------------------------------------------- */

typedef struct accum_run {
    float loss, grad_norm;
    int64_t n_tokens;
    float *b0;       /* lora_B of the first module after the step */
    int64_t nb;
} accum_run;

/* One step of n_seq x grad_accum sequences of 12 tokens on the toy model, seed 5, lr 1e-2. */
static accum_run run_accum(int n_seq, int grad_accum, const int32_t *ids, const int32_t *labels) {
    lc_device *dev = open_cpu();
    lc_model_config c = lc_model_config_default(LC_ARCH_TOY);
    lc_model *m = NULL;
    ck_assert_int_eq(lc_model_new_random(dev, &c, 5, &m), LC_OK);
    lc_lora_config lcfg = {.r = 4, .lora_alpha = 8, .target_mask = LC_MOD_MASK_ALL, .seed = 5};
    lc_lora_set *ls = NULL;
    ck_assert_int_eq(lc_lora_set_new(m, &lcfg, &ls), LC_OK);
    lc_train_config tc = lc_train_config_default();
    tc.seq_len = 12;
    tc.n_seq = n_seq;
    tc.grad_accum = grad_accum;
    tc.steps = 2;
    tc.lr = 1e-2f;
    tc.max_grad_norm = 0.0f;
    lc_trainer *tr = NULL;
    ck_assert_msg(lc_trainer_new(m, ls, &tc, &tr) == LC_OK, "%s", lc_last_error());
    lc_train_stats s;
    ck_assert_msg(lc_trainer_step(tr, ids, labels, NULL, &s) == LC_OK, "%s", lc_last_error());
    accum_run r = {.loss = s.loss, .grad_norm = s.grad_norm, .n_tokens = s.n_tokens};
    r.b0 = fget(ls->modules[0].lora_b);
    r.nb = lc_nelements(ls->modules[0].lora_b);
    lc_trainer_free(tr);
    lc_lora_set_free(ls);
    lc_model_free(m);
    lc_device_close(dev);
    return r;
}

START_TEST(test_grad_accum_equivalence) {
    int32_t ids[24], labels[24];
    for (int i = 0; i < 24; i++) {
        ids[i] = (i * 11 + 5) % 64;
        /* sequence 0 has 3 masked labels, sequence 1 has 9: unequal counts expose a per-micro mean */
        labels[i] = (i < 12 ? (i % 12 >= 9) : (i % 12 >= 3)) ? -100 : (i * 13 + 7) % 64;
    }
    accum_run one = run_accum(2, 1, ids, labels), two = run_accum(1, 2, ids, labels);
    ck_assert_int_eq(one.n_tokens, 12);
    ck_assert_int_eq(two.n_tokens, 12);
    ck_assert_msg(fabsf(one.loss - two.loss) <= 1e-5f * fabsf(one.loss), "loss %.7g vs %.7g", (double)one.loss,
                  (double)two.loss);
    ck_assert_msg(fabsf(one.grad_norm - two.grad_norm) <= 1e-4f * one.grad_norm, "grad_norm %.7g vs %.7g",
                  (double)one.grad_norm, (double)two.grad_norm);
    for (int64_t k = 0; k < one.nb; k++)
        ck_assert_msg(fabsf(one.b0[k] - two.b0[k]) <= 1e-5f + 1e-3f * fabsf(one.b0[k]), "lora_B[%lld] %.7g vs %.7g",
                      (long long)k, (double)one.b0[k], (double)two.b0[k]);
    lt_log("grad_accum: loss %.6f vs %.6f, grad_norm %.6f vs %.6f\n", (double)one.loss, (double)two.loss,
           (double)one.grad_norm, (double)two.grad_norm);

    /* An all-masked micro-batch: (seq 0, masked seq) with accumulation == seq 0 alone. */
    int32_t ids2[24], labels2[24];
    memcpy(ids2, ids, sizeof ids2);
    memcpy(labels2, labels, sizeof labels2);
    for (int i = 12; i < 24; i++) labels2[i] = -100;
    accum_run masked = run_accum(1, 2, ids2, labels2), alone = run_accum(1, 1, ids2, labels2);
    ck_assert_int_eq(masked.n_tokens, 9);
    ck_assert(isfinite(masked.loss));
    ck_assert_msg(fabsf(masked.loss - alone.loss) <= 1e-5f * fabsf(alone.loss), "masked micro-batch diluted the loss: "
                  "%.7g vs %.7g", (double)masked.loss, (double)alone.loss);
    ck_assert_msg(fabsf(masked.grad_norm - alone.grad_norm) <= 1e-4f * alone.grad_norm, "grad_norm %.7g vs %.7g",
                  (double)masked.grad_norm, (double)alone.grad_norm);
    free(one.b0);
    free(two.b0);
    free(masked.b0);
    free(alone.b0);
}
END_TEST

START_TEST(test_check_lora_errors) {
    lc_device *dev = open_cpu();
    lc_model_config c = lc_model_config_default(LC_ARCH_TOY);
    lc_model *m = NULL;
    ck_assert_int_eq(lc_model_new_random(dev, &c, 1, &m), LC_OK);
    lc_lora_config ok = {.r = 8, .lora_alpha = 16, .target_mask = LC_MOD_MASK_ALL, .seed = 1};
    ck_assert_msg(lc_train_check_lora(m, &ok) == LC_OK, "%s", lc_last_error());
    /* toy: k_proj / v_proj are {64 -> 32}: r 33 is too large for them, fine for q_proj {64 -> 64} */
    lc_lora_config big = ok;
    big.r = 33;
    ck_assert_int_eq(lc_train_check_lora(m, &big), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "k_proj") && strstr(lc_last_error(), "min(in, out) = 32"), "%s",
                  lc_last_error());
    big.target_mask = 1u << LC_MOD_ATTN_Q;
    ck_assert_msg(lc_train_check_lora(m, &big) == LC_OK, "%s", lc_last_error());
    big.r = 65;
    ck_assert_int_eq(lc_train_check_lora(m, &big), LC_ERR_INVALID_ARG);
    lc_lora_config none = ok;
    none.target_mask = 0;
    ck_assert_int_eq(lc_train_check_lora(m, &none), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "match no module"), "%s", lc_last_error());
    none.target_mask = 1u << 20;
    ck_assert_int_eq(lc_train_check_lora(m, &none), LC_ERR_INVALID_ARG);
    uint32_t mask = 0;
    ck_assert_int_eq(lc_module_mask_parse("q_proj,qproj", &mask), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "qproj"), "%s", lc_last_error());
    ck_assert_int_eq(lc_train_check_lora(NULL, &ok), LC_ERR_INVALID_ARG);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

/* ---- the real model -------------------------------------------------------------------- */

/* Path of the test model, or NULL. */
static const char *model_path(void) {
    static char buf[4096];
    const char *env = getenv("LORAC_TEST_MODEL");
    if (env && *env) return env;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(buf, sizeof buf, "%s/lorac/gemma-3-270m-q4_k_m.gguf", xdg);
    else
        snprintf(buf, sizeof buf, "%s/.cache/lorac/gemma-3-270m-q4_k_m.gguf", home ? home : "/root");
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

/* Model and tokenizer on the CPU, or a SKIP / FAIL. Returns false when skipped. */
static bool load_model(lc_device **dev, lc_model **m, lc_tokenizer **tok) {
    const char *path = model_path();
    if (!path) {
        const char *req = getenv("LORAC_REQUIRE_MODEL");
        ck_assert_msg(!(req && strcmp(req, "1") == 0),
                      "LORAC_REQUIRE_MODEL=1 but no model: set LORAC_TEST_MODEL or run scripts/get-model.sh");
        fprintf(stderr, "SKIP train_real: no model (set LORAC_TEST_MODEL=path.gguf or run scripts/get-model.sh)\n");
        return false;
    }
    *dev = open_cpu();
    ck_assert_msg(lc_model_load_gguf(*dev, path, m, tok) == LC_OK, "load %s: %s", path, lc_last_error());
    return true;
}

static const char TEXT[] =
    "The best way to predict the future is to invent it. A journey of a thousand miles begins with a single step, "
    "and a fortune cookie always has the last word.";

START_TEST(test_real_three_steps) {
    lc_device *dev = NULL;
    lc_model *m = NULL;
    lc_tokenizer *tok = NULL;
    if (!load_model(&dev, &m, &tok)) return;
    int32_t *t = NULL;
    size_t n = 0;
    ck_assert_int_eq(lc_tokenize(tok, TEXT, strlen(TEXT), true, false, &t, &n), LC_OK);
    enum { L = 16 };
    ck_assert_uint_ge(n, L + 1);
    int32_t ids[L], labels[L];
    for (int i = 0; i < L; i++) {
        ids[i] = t[i];
        labels[i] = t[i + 1];
    }
    free(t);
    lc_lora_config lcfg = {.r = 4, .lora_alpha = 8, .dropout = 0.0f, .target_mask = LC_MOD_MASK_ALL, .seed = 7};
    ck_assert_msg(lc_train_check_lora(m, &lcfg) == LC_OK, "%s", lc_last_error());
    lc_lora_set *ls = NULL;
    ck_assert_int_eq(lc_lora_set_new(m, &lcfg, &ls), LC_OK);
    lc_train_config tc = lc_train_config_default();
    tc.seq_len = L;
    tc.steps = 3;
    tc.lr = 2e-3f;
    lc_trainer *tr = NULL;
    ck_assert_msg(lc_trainer_new(m, ls, &tc, &tr) == LC_OK, "%s", lc_last_error());
    float loss[3];
    for (int s = 0; s < 3; s++) {
        lc_train_stats st;
        ck_assert_msg(lc_trainer_step(tr, ids, labels, NULL, &st) == LC_OK, "step %d: %s", s + 1, lc_last_error());
        ck_assert_msg(isfinite(st.loss) && isfinite(st.grad_norm), "step %d: loss %g", s + 1, (double)st.loss);
        loss[s] = st.loss;
        lt_log("gemma3 step %d: loss %.4f grad_norm %.4f (%.2f s)\n", s + 1, (double)st.loss, (double)st.grad_norm,
               st.seconds);
    }
    float after = 0.0f;
    ck_assert_int_eq(lc_trainer_eval(tr, ids, labels, NULL, &after), LC_OK);
    ck_assert_msg(after < loss[0] && loss[2] < loss[0], "loss did not fall: %g %g %g, after %g", (double)loss[0],
                  (double)loss[1], (double)loss[2], (double)after);
    for (int i = 0; i < ls->n_modules; i++) {
        float *b = fget(ls->modules[i].lora_b);
        const int64_t nb = lc_nelements(ls->modules[i].lora_b);
        int64_t nz = 0;
        for (int64_t k = 0; k < nb; k++) nz += b[k] != 0.0f;
        ck_assert_msg(nz > 0, "%s is still zero after 3 steps", ls->modules[i].lora_b->name);
        free(b);
    }
    lc_trainer_free(tr);
    lc_lora_set_free(ls);
    lc_tokenizer_free(tok);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_real_bad_input) {
    lc_device *dev = NULL;
    lc_model *m = NULL;
    lc_tokenizer *tok = NULL;
    if (!load_model(&dev, &m, &tok)) return;
    lc_data_config dc = lc_data_config_default();
    dc.seq_len = 32;
    lc_data *d = NULL;
    ck_assert_int_eq(lc_data_new(tok, &dc, &d), LC_OK);
    ck_assert_int_eq(lc_data_add_memory(d, "empty.txt", "", 0, LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "empty.txt"), "%s", lc_last_error());
    static const char bin[] = "hello\0world\n";
    ck_assert_int_eq(lc_data_add_memory(d, "bin.txt", bin, sizeof bin - 1, LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN),
                     LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "bin.txt"), "%s", lc_last_error());
    static const char jl[] = "{\"text\": \"ok\"}\n{\"text\": \"broken}\n";
    ck_assert_int_eq(lc_data_add_memory(d, "bad.jsonl", jl, sizeof jl - 1, LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN),
                     LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "bad.jsonl:2") || strstr(lc_last_error(), "line 2"), "%s", lc_last_error());
    lt_log("JSONL error: %s\n", lc_last_error());
    lc_data_free(d);
    /* Gemma 3 270M: n_embd 640, k/v projections 640 -> 256: r 257 is refused */
    lc_lora_config big = {.r = 257, .lora_alpha = 16, .target_mask = LC_MOD_MASK_ALL};
    ck_assert_int_eq(lc_train_check_lora(m, &big), LC_ERR_INVALID_ARG);
    lt_log("rank error: %s\n", lc_last_error());
    lc_tokenizer_free(tok);
    lc_model_free(m);
    lc_device_close(dev);
}
END_TEST

static Suite *train_real_suite(void) {
    Suite *s = suite_create("train_real");
    TCase *tc = tcase_create("toy");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_grad_accum_equivalence);
    tcase_add_test(tc, test_check_lora_errors);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("gemma3");
    tcase_set_timeout(tr, 600);
    tcase_add_test(tr, test_real_three_steps);
    tcase_add_test(tr, test_real_bad_input);
    suite_add_tcase(s, tr);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(train_real_suite());
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
