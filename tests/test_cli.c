/* lorac tests — suite "cli": the `lorac train` command line as a user meets it, run as a child
 * process on the tiny Llama fixture (tests/fixtures/tiny_llama.gguf) on the CPU.
 *
 *  - checkpoints: a 4-step run with --save-every 2 writes checkpoint-2 and checkpoint-4; resuming
 *    it with the same options prints "nothing to do" (exit 0) and trains nothing; resuming with
 *    another --steps is exit 2 and names --init-adapter as the way forward;
 *  - --init-adapter: a new run from checkpoint-4 starts from its weights: its held-out loss before
 *    training equals the first run's held-out loss after training (the same held-out text and
 *    weights, loaded through the checkpoint's PEFT files); another --rank is exit 2 naming --rank;
 *    --init-adapter with --resume is exit 2;
 *  - checks before any work: --out naming an existing file fails (exit 1) before the first step;
 *    a malformed --device and a --seq-len beyond the model's context (128) are exit 2.
 * Expected values come from the first run's own output (the equality above) and from the fixture's
 * metadata (context 128, n_embd 32), not from the code under test.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/lt_suite.h"
#include "lorac/gguf.h"
#include "lorac/lorac.h"

#ifndef LORAC_CLI_PATH
#define LORAC_CLI_PATH ""
#endif

static char tmp_root[256];

typedef struct run_result {
    int status; /* exit status, or -1 when the child did not exit normally */
    char *out;  /* stdout and stderr together */
} run_result;

/* Run lorac with argv (NULL-terminated, without the program name), stdout+stderr to a file. */
static run_result run_lorac(const char *const *args) {
    char log[512];
    snprintf(log, sizeof log, "%s/out.txt", tmp_root);
    const char *argv[64];
    int n = 0;
    argv[n++] = LORAC_CLI_PATH;
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    const pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        const int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || chdir(tmp_root) != 0) _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(LORAC_CLI_PATH, (char *const *)argv);
        _exit(127);
    }
    int ws = 0;
    ck_assert(waitpid(pid, &ws, 0) == pid);
    run_result r = {.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1, .out = NULL};
    FILE *f = fopen(log, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    r.out = calloc((size_t)len + 1, 1);
    ck_assert_ptr_nonnull(r.out);
    ck_assert(fread(r.out, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    printf("$ lorac");
    for (int i = 1; argv[i]; i++) printf(" %s", argv[i]);
    printf("\n  -> exit %d\n", r.status);
    return r;
}

static void expect(const run_result *r, int status, const char *needle) {
    ck_assert_msg(r->status == status, "exit %d, want %d; output:\n%s", r->status, status, r->out);
    if (needle) ck_assert_msg(strstr(r->out, needle) != NULL, "output lacks '%s':\n%s", needle, r->out);
}

/* The number after `key` in `text`. */
static double number_after(const char *text, const char *key) {
    const char *p = strstr(text, key);
    ck_assert_msg(p != NULL, "output lacks '%s':\n%s", key, text);
    return strtod(p + strlen(key), NULL);
}

#define TRAIN(...)                                                                                              \
    ((const char *const[]){"train", "--model", LORAC_FIXTURE_DIR "/tiny_llama.gguf", "--data", "d.txt", "--device", \
                           "cpu", "--seq-len", "16", "--batch", "1", "--eval-batches", "0", "--sample-tokens", "0",  \
                           __VA_ARGS__, NULL})

static void setup(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/lorac_cli_%d", (int)getpid());
    ck_assert_msg(mkdir(tmp_root, 0777) == 0 || errno == EEXIST, "mkdir %s: %s", tmp_root, strerror(errno));
    char p[512];
    snprintf(p, sizeof p, "%s/d.txt", tmp_root);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 40; i++)
        fprintf(f, "Document %d says that the quick brown fox jumps over %d lazy dogs.\n\n", i, i * 3 + 1);
    fclose(f);
}

static void teardown(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", tmp_root);
}

START_TEST(test_resume_and_init_adapter) {
    if (!LORAC_CLI_PATH[0]) {
        printf("SKIP cli: the lorac executable is not part of this build\n");
        return;
    }
    setup();
    run_result r = run_lorac(TRAIN("--steps", "4", "--save-every", "2", "--out", "a/adapter"));
    expect(&r, 0, "held-out loss before");
    const double after = number_after(r.out, ", after: ");
    free(r.out);
    char p[600];
    snprintf(p, sizeof p, "%s/a/checkpoints/checkpoint-4/adapter_model.safetensors", tmp_root);
    struct stat st;
    ck_assert_msg(stat(p, &st) == 0, "%s missing", p);

    r = run_lorac(TRAIN("--steps", "4", "--save-every", "2", "--out", "a/adapter", "--resume", "a/checkpoints"));
    expect(&r, 0, "nothing to do");
    ck_assert_msg(strstr(r.out, "step 1/") == NULL && strstr(r.out, "done:") == NULL, "trained anyway:\n%s", r.out);
    free(r.out);

    r = run_lorac(TRAIN("--steps", "8", "--out", "a/adapter", "--resume", "a/checkpoints"));
    expect(&r, 2, "--init-adapter");
    ck_assert_msg(strstr(r.out, "--steps") != NULL, "the mismatch does not name --steps:\n%s", r.out);
    free(r.out);

    r = run_lorac(TRAIN("--steps", "6", "--out", "b/adapter", "--init-adapter", "a/checkpoints/checkpoint-4"));
    expect(&r, 0, "lora_A and lora_B from");
    const double before = number_after(r.out, "held-out loss before training: ");
    printf("  held-out loss after run 1: %.4f; before run 2 (--init-adapter): %.4f\n", after, before);
    ck_assert_msg(before == after, "run 2 starts at held-out loss %.4f, run 1 ended at %.4f", before, after);
    free(r.out);

    r = run_lorac(TRAIN("--steps", "6", "--rank", "4", "--out", "c/adapter", "--init-adapter",
                        "a/checkpoints/checkpoint-4"));
    expect(&r, 2, "(--rank)");
    free(r.out);

    r = run_lorac(TRAIN("--steps", "6", "--init-adapter", "a/adapter", "--resume", "a/checkpoints"));
    expect(&r, 2, "exclude each other");
    free(r.out);
    teardown();
}
END_TEST

START_TEST(test_checks_before_work) {
    if (!LORAC_CLI_PATH[0]) {
        printf("SKIP cli: the lorac executable is not part of this build\n");
        return;
    }
    setup();
    char p[600];
    snprintf(p, sizeof p, "%s/afile", tmp_root);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    run_result r = run_lorac(TRAIN("--steps", "2", "--out", "afile"));
    expect(&r, 1, "before training");
    ck_assert_msg(strstr(r.out, "step 1/") == NULL, "trained before failing:\n%s", r.out);
    free(r.out);

    r = run_lorac(TRAIN("--steps", "2", "--no-save", "--save-every", "1", "--checkpoint-dir", "afile/sub"));
    expect(&r, 1, "--checkpoint-dir");
    ck_assert_msg(strstr(r.out, "step 1/") == NULL, "trained before failing:\n%s", r.out);
    free(r.out);

    r = run_lorac((const char *const[]){"train", "--model", LORAC_FIXTURE_DIR "/tiny_llama.gguf", "--device", "gpu",
                                        "--no-save", NULL});
    expect(&r, 2, "malformed device spec");
    free(r.out);

    r = run_lorac(TRAIN("--steps", "2", "--no-save", "--seq-len", "200"));
    expect(&r, 2, "context length 128");
    free(r.out);
    teardown();
}
END_TEST

/* ---- lorac export / eval (helper B3) ----------------------------------------------------------
 *  - export never overwrites an input: --out naming the base model (as itself, ./, sub/../, for
 *    --format gguf, peft and logits) or the adapter's own GGUF file is exit 2, and the file's bytes
 *    are unchanged;
 *  - eval refuses an adapter holding NaN (exit 1, naming the tensor), a lora_alpha beyond float32
 *    (shown as written, 1e+39, never "inf"), and data that train refuses: a directory, a NUL byte,
 *    invalid UTF-8 (exit 1, with the reason);
 *  - eval --max-tokens says how many of the file's tokens it kept; the file's token count is the
 *    one an uncapped run of the same file prints. */

/* Bytes of a file under tmp_root (malloc'd). */
static char *tmp_file_bytes(const char *name, size_t *n) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", tmp_root, name);
    FILE *f = fopen(p, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", p);
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert(fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void tmp_write(const char *name, const void *data, size_t n) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", tmp_root, name);
    FILE *f = fopen(p, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", p);
    ck_assert(fwrite(data, 1, n, f) == n);
    fclose(f);
}

/* Run lorac, expect exit 2 naming `what`, and `kept` (under tmp_root) byte-identical afterwards. */
static void expect_refused_kept(const char *const *args, const char *what, const char *kept) {
    size_t n0 = 0, n1 = 0;
    char *before = tmp_file_bytes(kept, &n0);
    run_result r = run_lorac(args);
    expect(&r, 2, what);
    free(r.out);
    char *after = tmp_file_bytes(kept, &n1);
    ck_assert_msg(n0 == n1 && memcmp(before, after, n0) == 0, "%s changed", kept);
    free(before);
    free(after);
}

#define EXPORT(...) ((const char *const[]){"export", "--model", "tl.gguf", "--device", "cpu", __VA_ARGS__, NULL})
#define EVAL(...) ((const char *const[]){"eval", "--model", "tl.gguf", "--device", "cpu", __VA_ARGS__, NULL})

START_TEST(test_export_eval_refusals) {
    if (!LORAC_CLI_PATH[0]) {
        printf("SKIP cli: the lorac executable is not part of this build\n");
        return;
    }
    setup();
    size_t n = 0;
    char *model = NULL;
    {
        FILE *f = fopen(LORAC_FIXTURE_DIR "/tiny_llama.gguf", "rb");
        ck_assert_ptr_nonnull(f);
        fseek(f, 0, SEEK_END);
        n = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        model = malloc(n);
        ck_assert(fread(model, 1, n, f) == n);
        fclose(f);
    }
    tmp_write("tl.gguf", model, n);
    free(model);
    char p[600];
    snprintf(p, sizeof p, "%s/sub", tmp_root);
    ck_assert_int_eq(mkdir(p, 0777), 0);
    const char *peft = LORAC_FIXTURE_DIR "/peft_llama";

    /* export: the base model under three spellings, each format; the adapter's own file */
    expect_refused_kept(EXPORT("--adapter", peft, "--format", "gguf", "--out", "tl.gguf"), "is the base model file",
                        "tl.gguf");
    expect_refused_kept(EXPORT("--adapter", peft, "--format", "peft", "--out", "./tl.gguf"), "is the base model file",
                        "tl.gguf");
    expect_refused_kept(EXPORT("--format", "logits", "--prompt", "hi", "--out", "sub/../tl.gguf"),
                        "is the base model file", "tl.gguf");
    run_result r = run_lorac(EXPORT("--adapter", peft, "--format", "gguf", "--out", "a.gguf"));
    expect(&r, 0, "-> gguf a.gguf");
    free(r.out);
    expect_refused_kept(EXPORT("--adapter", "a.gguf", "--format", "gguf", "--out", "./a.gguf"), "is the adapter",
                        "a.gguf");

    /* eval: an adapter with NaN in a lora_B (written here as a llama.cpp GGUF adapter) */
    lc_gguf_writer *w = NULL;
    ck_assert_int_eq(lc_gguf_writer_new(&w), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "general.type", "adapter"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "general.architecture", "llama"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "adapter.type", "lora"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_f32(w, "adapter.lora.alpha", 2.0f), LC_OK);
    float la[32], lb[32];
    for (int i = 0; i < 32; i++) {
        la[i] = 0.01f * (float)i;
        lb[i] = NAN;
    }
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "blk.0.attn_v.weight.lora_a", LC_F32, 2, (int64_t[]){32, 1}, la,
                                               sizeof la), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "blk.0.attn_v.weight.lora_b", LC_F32, 2, (int64_t[]){1, 16}, lb,
                                               16 * sizeof(float)), LC_OK);
    snprintf(p, sizeof p, "%s/nan.gguf", tmp_root);
    ck_assert_int_eq(lc_gguf_writer_write(w, p), LC_OK);
    lc_gguf_writer_free(w);
    r = run_lorac(EVAL("--adapter", "nan.gguf", "--data", "d.txt"));
    expect(&r, 1, "blk.0.attn_v.weight.lora_b");
    ck_assert_msg(strstr(r.out, "NaN") && !strstr(r.out, "mean loss"), "%s", r.out);
    free(r.out);

    /* eval: lora_alpha 1e39 in adapter_config.json */
    snprintf(p, sizeof p, "%s/alpha", tmp_root);
    ck_assert_int_eq(mkdir(p, 0777), 0);
    const char *cfg = "{\"peft_type\": \"LORA\", \"r\": 3, \"lora_alpha\": 1e39, \"target_modules\": [\"q_proj\"]}";
    tmp_write("alpha/adapter_config.json", cfg, strlen(cfg));
    tmp_write("alpha/adapter_model.safetensors", "", 0);
    r = run_lorac(EVAL("--adapter", "alpha", "--data", "d.txt"));
    expect(&r, 1, "lora_alpha' = 1e+39");
    ck_assert_msg(!strstr(r.out, "= inf"), "%s", r.out);
    free(r.out);

    /* eval: data train would refuse, with the reason */
    r = run_lorac(EVAL("--data", "sub"));
    expect(&r, 1, "is a directory");
    free(r.out);
    tmp_write("bin.txt", "ab\0cd\n", 6);
    r = run_lorac(EVAL("--data", "bin.txt"));
    expect(&r, 1, "NUL byte");
    free(r.out);
    tmp_write("latin1.txt", "caf\xe9\n", 5);
    r = run_lorac(EVAL("--data", "latin1.txt"));
    expect(&r, 1, "invalid UTF-8");
    ck_assert_msg(strstr(r.out, "byte offset 3"), "%s", r.out);
    free(r.out);

    /* eval --max-tokens: "the first 5 of its N tokens", N as an uncapped run counts them */
    r = run_lorac(EVAL("--data", "d.txt"));
    expect(&r, 0, "mean loss");
    const char *bytes_key = strstr(r.out, "bytes, ");
    ck_assert_ptr_nonnull(bytes_key);
    const long all = strtol(bytes_key + strlen("bytes, "), NULL, 10);
    free(r.out);
    ck_assert_int_gt(all, 5);
    r = run_lorac(EVAL("--data", "d.txt", "--max-tokens", "5"));
    char want[96];
    snprintf(want, sizeof want, "the first 5 of its %ld tokens (--max-tokens)", all);
    expect(&r, 0, want);
    ck_assert_msg(strstr(r.out, "tokens 5 "), "%s", r.out);
    free(r.out);
    teardown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_resume_and_init_adapter);
    tcase_add_test(tc, test_checks_before_work);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("export_eval");
    tcase_set_timeout(te, 300);
    tcase_add_test(te, test_export_eval_refusals);
    suite_add_tcase(s, te);
    const int failed = lt_run_suite(s);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
