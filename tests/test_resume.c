/* lorac tests — suite "resume": training checkpoints (lorac/checkpoint.h).
 *
 *  - exactness, on every device: the tiny llama fixture (NORM rope, so the PEFT lora_B row
 *    permutation is exercised) with LoRA dropout 0.1 on every projection, grad_accum 2, batches
 *    from lc_data over an in-memory text (shuffled, several epochs). 2N steps straight vs N steps,
 *    save, free everything (trainer, LoRA set, data, model, tokenizer), rebuild from scratch,
 *    restore (LoRA tensors, AdamW moments, step, data cursor), N more steps: every step's loss
 *    within 1e-5 of the straight run (the maximum difference is printed; it should be 0) and the
 *    final LoRA tensors equal;
 *  - a full disk while saving: RLIMIT_FSIZE makes the kernel fail writes with EFBIG (SIGXFSZ
 *    ignored), once inside the adapter and once inside optimizer.safetensors, and, when the test
 *    may mount (root with CAP_SYS_ADMIN in a private mount namespace), a real ENOSPC on a small
 *    tmpfs: the save is a clean LC_ERR_IO naming the file, no temporary directory is left,
 *    `latest` still names the previous checkpoint, whose files are byte-identical and which
 *    restores bit-identically;
 *  - mismatches (seq_len, r, other data, n_seq naming --batch and --micro-batch) name the field; a
 *    truncated optimizer.safetensors, a corrupted or incomplete trainer_state.json and a bad
 *    `latest` (junk, or naming a checkpoint that is not there) are clean errors that leave the
 *    trainer untouched;
 *  - damaged values, poked into the files in place: NaN / inf moments, negative exp_avg_sq, NaN
 *    lora_A / lora_B are LC_ERR_FORMAT naming the file, the tensor and the element (computed by
 *    hand from the PyTorch shape and, for q_proj lora_B, the file's HF row order);
 *  - integers of trainer_state.json out of range, fractional, infinite, strings or not JSON, and
 *    trailing data after the object, are clean LC_ERR_FORMAT (no undefined double -> int cast);
 *    a state file one byte over 64 MiB is refused by its size, one of exactly 64 MiB restores;
 *  - stale temporaries of killed saves (a reaped child's pid, this process's own) are removed by
 *    the next save, even one that then fails; a live process's (a sleeping child, the parent)
 *    and every name outside the two patterns are kept byte for byte.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/lt_device.h"
#include "common/lt_util.h"
#include "common/lt_suite.h"
#include "lorac/lorac.h"

#define TINY LORAC_FIXTURE_DIR "/tiny_llama.gguf"
#define N_HALF 4          /* N: steps before the checkpoint */
#define GRAD_ACCUM 2
#define N_SEQ 2
#define SEQ_LEN 16

/* ---- a complete training setup, built from nothing -------------------------------------- */

typedef struct setup {
    int n_seq;
    lc_model *model;
    lc_tokenizer *tok;
    lc_lora_set *lora;
    lc_data *data;
    lc_trainer *tr;
    int seq_len;
    int32_t *ids, *labels, *pos;
} setup;

typedef struct setup_opts {
    int seq_len, r;
    uint64_t text_seed;
    int n_seq;
} setup_opts;

static const setup_opts DEFAULT_OPTS = {SEQ_LEN, 4, 11, N_SEQ};

/* Deterministic English-like text (SplitMix64, not lorac's generator): paragraphs of words made
 * of the fixture vocabulary's letters and merges, blank lines between paragraphs. */
static char *make_text(uint64_t seed, size_t *len) {
    static const char *const words[] = {"the", "and", "of", "to", "in", "is", "it", "that", "for", "on",
                                        "tea", "cat", "sing", "rest", "note", "ant", "ten", "stone"};
    const int nw = (int)(sizeof words / sizeof words[0]);
    lt_rng r;
    lt_rng_seed(&r, seed);
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    for (int p = 0; p < 6; p++) {
        const int nwords = 8 + lt_rng_int(&r, 10);
        for (int w = 0; w < nwords; w++) {
            const char *word = words[lt_rng_int(&r, nw)];
            n += (size_t)snprintf(s + n, cap - n, "%s%s", w ? " " : "", word);
        }
        n += (size_t)snprintf(s + n, cap - n, "\n\n");
    }
    *len = n;
    return s;
}

static lc_status setup_new(lc_device *dev, const setup_opts *o, setup *s) {
    memset(s, 0, sizeof *s);
    s->seq_len = o->seq_len;
    s->n_seq = o->n_seq;
    lc_status st = lc_model_load_gguf(dev, TINY, &s->model, &s->tok);
    if (st != LC_OK) return st;
    const lc_lora_config lc = {.r = o->r, .lora_alpha = 8.0f, .use_rslora = false, .dropout = 0.1f,
                               .target_mask = LC_MOD_MASK_ALL, .seed = 7};
    if ((st = lc_lora_set_new(s->model, &lc, &s->lora)) != LC_OK) return st;
    lc_data_config dc = lc_data_config_default();
    dc.seq_len = o->seq_len;
    dc.n_seq = o->n_seq;
    dc.shuffle = true;
    dc.seed = 5;
    if ((st = lc_data_new(s->tok, &dc, &s->data)) != LC_OK) return st;
    size_t len = 0;
    char *text = make_text(o->text_seed, &len);
    st = lc_data_add_memory(s->data, "resume-text", text, len, LC_DATA_FORMAT_TEXT, LC_DATA_TRAIN);
    free(text);
    if (st == LC_OK) st = lc_data_finalize(s->data);
    if (st != LC_OK) return st;
    lc_train_config tc = lc_train_config_default();
    tc.n_seq = o->n_seq;
    tc.seq_len = o->seq_len;
    tc.steps = 2 * N_HALF;
    tc.warmup_steps = 2;
    tc.lr = 1e-2f;
    tc.weight_decay = 0.01f;
    tc.grad_accum = GRAD_ACCUM;
    tc.ignore_index = LC_DATA_IGNORE_INDEX;
    if ((st = lc_trainer_new(s->model, s->lora, &tc, &s->tr)) != LC_OK) return st;
    const size_t n = (size_t)GRAD_ACCUM * o->n_seq * o->seq_len;
    s->ids = lt_ialloc((int64_t)n);
    s->labels = lt_ialloc((int64_t)n);
    s->pos = lt_ialloc((int64_t)n);
    return LC_OK;
}

static void setup_free(setup *s) {
    lc_trainer_free(s->tr);
    lc_lora_set_free(s->lora);
    lc_data_free(s->data);
    lc_tokenizer_free(s->tok);
    lc_model_free(s->model);
    free(s->ids);
    free(s->labels);
    free(s->pos);
    memset(s, 0, sizeof *s);
}


/* One optimizer step on the next GRAD_ACCUM batches of the data. */
static lc_status setup_step(setup *s, float *loss) {
    const int64_t micro = (int64_t)s->n_seq * s->seq_len;
    for (int m = 0; m < GRAD_ACCUM; m++) {
        lc_status st = lc_data_next_batch(s->data, s->ids + m * micro, s->labels + m * micro, s->pos + m * micro, NULL);
        if (st != LC_OK) return st;
    }
    lc_train_stats ts;
    lc_status st = lc_trainer_step(s->tr, s->ids, s->labels, s->pos, &ts);
    if (st == LC_OK && loss) *loss = ts.loss;
    return st;
}

/* Every lora_A and lora_B of the set, concatenated (host copy; *n values). */
static float *lora_snapshot(const lc_lora_set *set, int64_t *n) {
    int64_t total = 0;
    for (int i = 0; i < set->n_modules; i++)
        total += lc_nelements(set->modules[i].lora_a) + lc_nelements(set->modules[i].lora_b);
    float *x = lt_falloc(total);
    int64_t off = 0;
    for (int i = 0; i < set->n_modules; i++) {
        const lc_tensor *t[2] = {set->modules[i].lora_a, set->modules[i].lora_b};
        for (int j = 0; j < 2; j++) {
            ck_assert_msg(lc_tensor_get_f32(t[j], x + off, lc_nelements(t[j])) == LC_OK, "get: %s", lc_last_error());
            off += lc_nelements(t[j]);
        }
    }
    *n = total;
    return x;
}

static lc_checkpoint_extra extra_of(const setup *s) {
    lc_checkpoint_extra x = {.model_file = "tiny_llama.gguf", .has_cursor = true};
    struct stat sb;
    if (stat(TINY, &sb) == 0) x.model_bytes = (uint64_t)sb.st_size;
    ck_assert(lc_data_get_cursor(s->data, &x.cursor) == LC_OK);
    return x;
}

static char *make_tmpdir(void) {
    char tmpl[] = "/tmp/lorac-resume-XXXXXX";
    char *d = mkdtemp(tmpl);
    ck_assert_msg(d != NULL, "mkdtemp: %s", strerror(errno));
    return strdup(d);
}

static void rm_rf(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Whole file into a malloc'd buffer (NUL-terminated); NULL when it cannot be read. */
static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(b);
    const size_t got = fread(b, 1, (size_t)len, f);
    fclose(f);
    b[got] = 0;
    if (n) *n = got;
    return b;
}

static void write_all(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert(fwrite(data, 1, n, f) == n);
    ck_assert(fclose(f) == 0);
}

/* Number of entries of `root` whose name contains ".tmp-" or ".old-" (leftovers of a save). */
static int leftovers(const char *root) {
    DIR *d = opendir(root);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp-") || strstr(e->d_name, ".old-")) {
            lt_log("  leftover: %s/%s\n", root, e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

static const char *const CK_FILES[] = {"adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors",
                                       "trainer_state.json"};
#define N_CK_FILES 4

/* ---- exactness on every device ------------------------------------------------------------ */

static void exact_on_device(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)user;
    (void)info;
    float straight[2 * N_HALF], resumed[2 * N_HALF];
    setup s;
    lc_status st = setup_new(dev, &DEFAULT_OPTS, &s);
    if (!lt_check_ok(rep, st, "setup")) {
        setup_free(&s);
        return;
    }
    const int64_t nseq = lc_data_n_sequences(s.data, LC_DATA_TRAIN);
    const int64_t used = (int64_t)2 * N_HALF * GRAD_ACCUM * N_SEQ;
    lt_check(rep, nseq >= 3 && 2 * nseq < used, "the run covers several epochs: %lld sequences, %lld read",
             (long long)nseq, (long long)used);
    for (int k = 0; k < 2 * N_HALF; k++)
        if (!lt_check_ok(rep, setup_step(&s, &straight[k]), "straight step %d", k + 1)) break;
    int64_t n_a = 0, n_b = 0;
    float *final_a = lora_snapshot(s.lora, &n_a);
    setup_free(&s);

    char *root = make_tmpdir();
    char saved[4096];
    lt_check_ok(rep, setup_new(dev, &DEFAULT_OPTS, &s), "setup 2");
    for (int k = 0; k < N_HALF; k++) lt_check_ok(rep, setup_step(&s, &resumed[k]), "first half step %d", k + 1);
    lc_checkpoint_extra x = extra_of(&s);
    lt_check_ok(rep, lc_checkpoint_save(s.tr, root, &x, 2, saved, sizeof saved), "save");
    setup_free(&s);

    /* From nothing: a new model, LoRA set, data set and trainer. */
    lt_check_ok(rep, setup_new(dev, &DEFAULT_OPTS, &s), "setup 3");
    lc_checkpoint_extra want = extra_of(&s);
    lc_data_cursor cur;
    lt_check_ok(rep, lc_checkpoint_load(s.tr, root, &want, &cur), "load %s", root);
    lt_check_ok(rep, lc_data_set_cursor(s.data, &cur), "set cursor");
    lt_check(rep, lc_trainer_steps_done(s.tr) == N_HALF, "steps done after load %d", lc_trainer_steps_done(s.tr));
    lt_check(rep, cur.epoch == x.cursor.epoch && cur.position == x.cursor.position, "cursor %lld/%lld, saved %lld/%lld",
             (long long)cur.epoch, (long long)cur.position, (long long)x.cursor.epoch, (long long)x.cursor.position);
    for (int k = N_HALF; k < 2 * N_HALF; k++) lt_check_ok(rep, setup_step(&s, &resumed[k]), "resumed step %d", k + 1);
    float *final_b = lora_snapshot(s.lora, &n_b);
    setup_free(&s);

    double max_diff = 0.0;
    for (int k = 0; k < 2 * N_HALF; k++) {
        const double d = fabs((double)straight[k] - (double)resumed[k]);
        if (!(d <= max_diff)) max_diff = d;
        lt_log("  %-10s step %d  straight %.7f  resumed %.7f  diff %.3g\n", info->spec, k + 1, (double)straight[k],
               (double)resumed[k], d);
    }
    lt_check_err(rep, max_diff, 1e-5, "per-step loss, 2N straight vs N + resume + N");
    double max_t = 0.0;
    int64_t n_diff = 0;
    lt_check(rep, n_a == n_b, "LoRA sizes %lld / %lld", (long long)n_a, (long long)n_b);
    for (int64_t i = 0; i < n_a && n_a == n_b; i++) {
        const double d = fabs((double)final_a[i] - (double)final_b[i]);
        if (memcmp(&final_a[i], &final_b[i], sizeof(float)) != 0) n_diff++;
        if (!(d <= max_t)) max_t = d;
    }
    lt_check_err(rep, max_t, 1e-6, "final LoRA tensors");
    lt_log("  %-10s max loss diff %.3g, final LoRA max diff %.3g (%lld of %lld values not bit-identical)\n",
           info->spec, max_diff, max_t, (long long)n_diff, (long long)n_a);
    free(final_a);
    free(final_b);
    rm_rf(root);
    free(root);
}

START_TEST(test_exact_every_device) {
    ck_assert_int_eq(lt_for_each_device("resume-exact", exact_on_device, NULL), 0);
}
END_TEST

/* ---- full disk ----------------------------------------------------------------------------- */

static lc_device *open_cpu(void) {
    lc_device *dev = NULL;
    ck_assert_msg(lc_device_open("cpu", &dev) == LC_OK, "open cpu: %s", lc_last_error());
    return dev;
}

typedef struct saved_ck {
    char *files[N_CK_FILES];
    size_t sizes[N_CK_FILES];
    char *latest;
    float *lora;
    int64_t n_lora;
} saved_ck;

/* Train N steps on a fresh setup and save checkpoint-N into root; remember its bytes. */
static void first_checkpoint(lc_device *dev, setup *s, const char *root, saved_ck *c) {
    ck_assert_msg(setup_new(dev, &DEFAULT_OPTS, s) == LC_OK, "setup: %s", lc_last_error());
    for (int k = 0; k < N_HALF; k++) ck_assert_msg(setup_step(s, NULL) == LC_OK, "step: %s", lc_last_error());
    lc_checkpoint_extra x = extra_of(s);
    ck_assert_msg(lc_checkpoint_save(s->tr, root, &x, 2, NULL, 0) == LC_OK, "save: %s", lc_last_error());
    char p[4096];
    for (int i = 0; i < N_CK_FILES; i++) {
        snprintf(p, sizeof p, "%s/checkpoint-%d/%s", root, N_HALF, CK_FILES[i]);
        c->files[i] = read_all(p, &c->sizes[i]);
        ck_assert_msg(c->files[i] != NULL, "%s missing", p);
    }
    snprintf(p, sizeof p, "%s/latest", root);
    c->latest = read_all(p, NULL);
    ck_assert_ptr_nonnull(c->latest);
    char want[64];
    snprintf(want, sizeof want, "checkpoint-%d\n", N_HALF);
    ck_assert_str_eq(c->latest, want);
    c->lora = lora_snapshot(s->lora, &c->n_lora);
}

/* After a failed save of step N+1: nothing left behind, checkpoint-N intact and restorable. */
static void check_intact(lc_device *dev, const char *root, const saved_ck *c) {
    ck_assert_int_eq(leftovers(root), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/checkpoint-%d", root, N_HALF + 1);
    struct stat sb;
    ck_assert_msg(stat(p, &sb) != 0, "%s exists after a failed save", p);
    snprintf(p, sizeof p, "%s/latest", root);
    char *latest = read_all(p, NULL);
    ck_assert_ptr_nonnull(latest);
    ck_assert_str_eq(latest, c->latest);
    free(latest);
    for (int i = 0; i < N_CK_FILES; i++) {
        size_t n = 0;
        snprintf(p, sizeof p, "%s/checkpoint-%d/%s", root, N_HALF, CK_FILES[i]);
        char *b = read_all(p, &n);
        ck_assert_msg(b && n == c->sizes[i] && memcmp(b, c->files[i], n) == 0, "%s changed", p);
        free(b);
    }
    setup s2;
    ck_assert_msg(setup_new(dev, &DEFAULT_OPTS, &s2) == LC_OK, "setup: %s", lc_last_error());
    lc_checkpoint_extra want = extra_of(&s2);
    ck_assert_msg(lc_checkpoint_load(s2.tr, root, &want, NULL) == LC_OK, "load: %s", lc_last_error());
    ck_assert_int_eq(lc_trainer_steps_done(s2.tr), N_HALF);
    int64_t n = 0;
    float *x = lora_snapshot(s2.lora, &n);
    ck_assert_int_eq(n, c->n_lora);
    ck_assert_msg(memcmp(x, c->lora, (size_t)n * sizeof(float)) == 0, "restored LoRA tensors differ");
    free(x);
    setup_free(&s2);
}

static void saved_free(saved_ck *c) {
    for (int i = 0; i < N_CK_FILES; i++) free(c->files[i]);
    free(c->latest);
    free(c->lora);
}

/* Save the trainer's next checkpoint into root (keep 2); the status, with lc_last_error copied
 * to msg. */
static lc_status save_next(setup *s, const char *root, char *msg, size_t cap) {
    lc_checkpoint_extra x = extra_of(s);
    const lc_status st = lc_checkpoint_save(s->tr, root, &x, 2, NULL, 0);
    snprintf(msg, cap, "%s", lc_last_error());
    return st;
}

/* A failed save: LC_ERR_IO, and a message holding strerror(err), the directory and, when not
 * NULL, the file the write failed in. */
static void check_save_error(lc_status st, const char *msg, int err, const char *root, const char *file) {
    ck_assert_int_eq(st, LC_ERR_IO);
    ck_assert_msg(strstr(msg, strerror(err)) != NULL, "message lacks '%s': %s", strerror(err), msg);
    if (file) ck_assert_msg(strstr(msg, file) != NULL, "message does not name %s: %s", file, msg);
    ck_assert_msg(strstr(msg, root) != NULL, "message does not name the directory %s: %s", root, msg);
}

/* Save step N+1 under RLIMIT_FSIZE = limit bytes: must fail with EFBIG inside `file`. The limit
 * is lifted again before anything is asserted. */
static void save_with_fsize_limit(setup *s, const char *root, rlim_t limit, const char *file) {
    struct rlimit old, lim;
    ck_assert(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = limit;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    char msg[2048];
    const lc_status st = save_next(s, root, msg, sizeof msg);
    ck_assert(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, prev);
    lt_log("  RLIMIT_FSIZE %llu: %s\n", (unsigned long long)limit, msg);
    check_save_error(st, msg, EFBIG, root, file);
}

START_TEST(test_full_disk_fsize) {
    lc_device *dev = open_cpu();
    char *root = make_tmpdir();
    setup s;
    saved_ck c = {0};
    first_checkpoint(dev, &s, root, &c);
    ck_assert_msg(setup_step(&s, NULL) == LC_OK, "step: %s", lc_last_error());
    /* 4 KiB: the adapter's weights (about 15 KB) cannot be written. */
    save_with_fsize_limit(&s, root, 4096, "adapter_model.safetensors");
    check_intact(dev, root, &c);
    /* Room for the adapter but not for the moments (twice its size). */
    const rlim_t mid = (rlim_t)c.sizes[1] + 2048;
    ck_assert_msg(c.sizes[2] > mid, "optimizer file %zu bytes, limit %llu", c.sizes[2], (unsigned long long)mid);
    save_with_fsize_limit(&s, root, mid, "optimizer.safetensors");
    check_intact(dev, root, &c);
    /* Without a limit the same save succeeds and moves `latest`. */
    char msg[2048];
    ck_assert_msg(save_next(&s, root, msg, sizeof msg) == LC_OK, "save: %s", msg);
    char p[4096];
    snprintf(p, sizeof p, "%s/latest", root);
    char *latest = read_all(p, NULL);
    char want[64];
    snprintf(want, sizeof want, "checkpoint-%d\n", N_HALF + 1);
    ck_assert_str_eq(latest, want);
    free(latest);
    saved_free(&c);
    setup_free(&s);
    lc_device_close(dev);
    rm_rf(root);
    free(root);
}
END_TEST

/* A real ENOSPC: a tmpfs just large enough for one checkpoint, in a private mount namespace. */
START_TEST(test_full_disk_enospc) {
    if (unshare(CLONE_NEWNS) != 0) {
        lt_log("SKIP resume: real ENOSPC case: unshare(CLONE_NEWNS): %s (needs root with CAP_SYS_ADMIN); the "
               "RLIMIT_FSIZE case covers the same code\n", strerror(errno));
        return;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        lt_log("SKIP resume: real ENOSPC case: making / private: %s\n", strerror(errno));
        return;
    }
    lc_device *dev = open_cpu();
    /* The size of one checkpoint, in 4 KiB pages, measured on the normal file system. */
    char *probe = make_tmpdir();
    setup s;
    saved_ck c = {0};
    first_checkpoint(dev, &s, probe, &c);
    size_t pages = 2; /* latest and slack */
    for (int i = 0; i < N_CK_FILES; i++) pages += (c.sizes[i] + 4095) / 4096;
    saved_free(&c);
    setup_free(&s);
    rm_rf(probe);
    free(probe);

    char *root = make_tmpdir();
    char opts[64];
    snprintf(opts, sizeof opts, "size=%zuk", (pages + pages / 2) * 4);
    if (mount("tmpfs", root, "tmpfs", 0, opts) != 0) {
        lt_log("SKIP resume: real ENOSPC case: mount -t tmpfs -o %s: %s\n", opts, strerror(errno));
        lc_device_close(dev);
        rmdir(root);
        free(root);
        return;
    }
    lt_log("  tmpfs %s at %s (one checkpoint: %zu pages)\n", opts, root, pages);
    memset(&c, 0, sizeof c);
    first_checkpoint(dev, &s, root, &c);
    ck_assert_msg(setup_step(&s, NULL) == LC_OK, "step: %s", lc_last_error());
    char msg[2048];
    const lc_status st = save_next(&s, root, msg, sizeof msg);
    lt_log("  full tmpfs: %s\n", msg);
    check_save_error(st, msg, ENOSPC, root, NULL);
    check_intact(dev, root, &c);
    saved_free(&c);
    setup_free(&s);
    lc_device_close(dev);
    umount2(root, MNT_DETACH);
    rmdir(root);
    free(root);
}
END_TEST

/* ---- mismatches and damaged files ------------------------------------------------------------ */

/* A CPU device, a fresh temporary root holding one checkpoint (first_checkpoint; the setup
 * that wrote it is freed again), for the tests that only load or damage that checkpoint. */
static lc_device *begin_with_checkpoint(char **root, saved_ck *c) {
    lc_device *dev = open_cpu();
    *root = make_tmpdir();
    setup s;
    first_checkpoint(dev, &s, *root, c);
    setup_free(&s);
    return dev;
}

static void end_with_checkpoint(lc_device *dev, char *root, saved_ck *c) {
    saved_free(c);
    lc_device_close(dev);
    rm_rf(root);
    free(root);
}

/* Load into a fresh setup with options o: must fail with `want_st` and a message holding every
 * string of want[] (NULL-terminated); the trainer and its LoRA tensors stay as they were. */
static void expect_load_errors(lc_device *dev, const setup_opts *o, const char *path, lc_status want_st,
                               const char *const *want) {
    setup s;
    ck_assert_msg(setup_new(dev, o, &s) == LC_OK, "setup: %s", lc_last_error());
    int64_t n0 = 0, n1 = 0;
    float *before = lora_snapshot(s.lora, &n0);
    lc_checkpoint_extra x = extra_of(&s);
    lc_data_cursor cur;
    const lc_status st = lc_checkpoint_load(s.tr, path, &x, &cur);
    lt_log("  load %s: %s\n", path, lc_last_error());
    ck_assert_msg(st == want_st, "status %d, want %d: %s", (int)st, (int)want_st, lc_last_error());
    for (int i = 0; want[i]; i++)
        ck_assert_msg(strstr(lc_last_error(), want[i]) != NULL, "message lacks '%s': %s", want[i], lc_last_error());
    ck_assert_int_eq(lc_trainer_steps_done(s.tr), 0);
    float *after = lora_snapshot(s.lora, &n1);
    ck_assert(n0 == n1 && memcmp(before, after, (size_t)n0 * sizeof(float)) == 0);
    free(before);
    free(after);
    setup_free(&s);
}

static void expect_load_error(lc_device *dev, const setup_opts *o, const char *path, lc_status want_st,
                              const char *want) {
    const char *const w[] = {want, NULL};
    expect_load_errors(dev, o, path, want_st, w);
}

/* Copy checkpoint-N of `root` into dst (a new checkpoint directory). */
static void copy_checkpoint(const char *root, const char *dst);

/* Copy checkpoint-N (whose files c holds) into dst, then replace in dst's trainer_state.json the
 * value of the first "<key>": (the text up to the next ',', '}' or newline) by `value`. */
static void copy_edit_state(const char *root, const char *dst, const saved_ck *c, const char *key, const char *value) {
    copy_checkpoint(root, dst);
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *at = strstr(c->files[3], pat);
    ck_assert_msg(at != NULL, "trainer_state.json has no %s", pat);
    at += strlen(pat);
    const size_t head = (size_t)(at - c->files[3]), old = strcspn(at, ",}\n");
    char *e = malloc(c->sizes[3] + strlen(value) + 1);
    ck_assert_ptr_nonnull(e);
    memcpy(e, c->files[3], head);
    strcpy(e + head, value);
    strcat(e, at + old);
    char p[4200];
    snprintf(p, sizeof p, "%s/trainer_state.json", dst);
    write_all(p, e, strlen(e));
    free(e);
}

static void copy_checkpoint(const char *root, const char *dst) {
    ck_assert(mkdir(dst, 0777) == 0);
    char a[4096], b[4096];
    for (int i = 0; i < N_CK_FILES; i++) {
        snprintf(a, sizeof a, "%s/checkpoint-%d/%s", root, N_HALF, CK_FILES[i]);
        snprintf(b, sizeof b, "%s/%s", dst, CK_FILES[i]);
        size_t n = 0;
        char *d = read_all(a, &n);
        ck_assert_ptr_nonnull(d);
        write_all(b, d, n);
        free(d);
    }
}

START_TEST(test_mismatch_and_damage) {
    char *root = NULL;
    saved_ck c = {0};
    lc_device *dev = begin_with_checkpoint(&root, &c);
    char msg[128];

    setup_opts o = DEFAULT_OPTS;
    o.seq_len = 2 * SEQ_LEN;
    snprintf(msg, sizeof msg, "seq_len (--seq-len) %d, this run has %d", SEQ_LEN, 2 * SEQ_LEN);
    expect_load_error(dev, &o, root, LC_ERR_INVALID_ARG, msg);
    o = DEFAULT_OPTS;
    o.r = 8;
    expect_load_error(dev, &o, root, LC_ERR_INVALID_ARG, "r (--rank) 4, this run has 8");
    o = DEFAULT_OPTS;
    o.text_seed = 12;
    expect_load_error(dev, &o, root, LC_ERR_INVALID_ARG, "other training data");
    /* Sequences per micro-batch: the CLI sets them with --micro-batch, or from --batch. */
    o = DEFAULT_OPTS;
    o.n_seq = 1;
    {
        snprintf(msg, sizeof msg, "n_seq (sequences per micro-batch");
        const char *const w[] = {msg, "--batch", "--micro-batch", NULL};
        expect_load_errors(dev, &o, root, LC_ERR_INVALID_ARG, w);
    }

    char dir[4096], p[4200];
    /* A truncated optimizer.safetensors. */
    snprintf(dir, sizeof dir, "%s/trunc", root);
    copy_checkpoint(root, dir);
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    ck_assert(truncate(p, (off_t)(c.sizes[2] / 2)) == 0);
    expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, "optimizer.safetensors");
    /* trainer_state.json cut in the middle. */
    snprintf(dir, sizeof dir, "%s/badjson", root);
    copy_checkpoint(root, dir);
    snprintf(p, sizeof p, "%s/trainer_state.json", dir);
    write_all(p, c.files[3], c.sizes[3] / 2);
    expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, "trainer_state.json is not valid JSON");
    /* A field of the wrong type. */
    snprintf(dir, sizeof dir, "%s/badfield", root);
    {
        char v[32];
        snprintf(v, sizeof v, "\"%d\"", SEQ_LEN);
        copy_edit_state(root, dir, &c, "seq_len", v);
    }
    expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, "train.seq_len");
    /* A missing optimizer file. */
    snprintf(dir, sizeof dir, "%s/noopt", root);
    copy_checkpoint(root, dir);
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    ck_assert(unlink(p) == 0);
    expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_IO, "optimizer.safetensors");
    /* A root whose `latest` is junk, and a path that is nothing. */
    snprintf(dir, sizeof dir, "%s/badlatest", root);
    ck_assert(mkdir(dir, 0777) == 0);
    snprintf(p, sizeof p, "%s/latest", dir);
    write_all(p, "../../etc\n", 10);
    expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, "latest");
    snprintf(dir, sizeof dir, "%s/nothing", root);
    expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_IO, "nothing");
    /* `latest` naming a checkpoint that is not there, or a directory without a trainer state. */
    snprintf(dir, sizeof dir, "%s/gone", root);
    ck_assert(mkdir(dir, 0777) == 0);
    snprintf(p, sizeof p, "%s/latest", dir);
    write_all(p, "checkpoint-9\n", 13);
    {
        char want[4200];
        snprintf(want, sizeof want, "`latest` in %s names checkpoint-9, which does not exist", dir);
        expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_IO, want);
        char out[4200];
        ck_assert(lc_checkpoint_resolve(dir, out, sizeof out) == LC_ERR_IO);
        ck_assert_msg(strstr(lc_last_error(), want) != NULL, "resolve: %s", lc_last_error());
        snprintf(p, sizeof p, "%s/checkpoint-9", dir);
        ck_assert(mkdir(p, 0777) == 0);
        snprintf(want, sizeof want, "`latest` in %s names checkpoint-9, which holds no trainer_state.json", dir);
        expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_IO, want);
    }

    end_with_checkpoint(dev, root, &c);
}
END_TEST

/* keep: only the newest `keep` checkpoints stay; resolve follows `latest`. */
START_TEST(test_keep_and_resolve) {
    lc_device *dev = open_cpu();
    char *root = make_tmpdir();
    setup s;
    ck_assert_msg(setup_new(dev, &DEFAULT_OPTS, &s) == LC_OK, "setup: %s", lc_last_error());
    for (int k = 1; k <= 5; k++) {
        ck_assert_msg(setup_step(&s, NULL) == LC_OK, "step: %s", lc_last_error());
        lc_checkpoint_extra x = extra_of(&s);
        char saved[4096];
        ck_assert_msg(lc_checkpoint_save(s.tr, root, &x, 2, saved, sizeof saved) == LC_OK, "save: %s", lc_last_error());
        char want[4096];
        snprintf(want, sizeof want, "%s/checkpoint-%d", root, k);
        ck_assert_str_eq(saved, want);
    }
    char p[4200], dir[4200];
    struct stat sb;
    for (int k = 1; k <= 5; k++) {
        snprintf(p, sizeof p, "%s/checkpoint-%d", root, k);
        ck_assert_msg((stat(p, &sb) == 0) == (k >= 4), "checkpoint-%d %s", k, k >= 4 ? "missing" : "not removed");
    }
    ck_assert(lc_checkpoint_resolve(root, dir, sizeof dir) == LC_OK);
    snprintf(p, sizeof p, "%s/checkpoint-5", root);
    ck_assert_str_eq(dir, p);
    ck_assert(lc_checkpoint_resolve(p, dir, sizeof dir) == LC_OK);
    ck_assert_str_eq(dir, p);
    ck_assert_int_eq(leftovers(root), 0);
    setup_free(&s);
    lc_device_close(dev);
    rm_rf(root);
    free(root);
}
END_TEST

/* ---- damaged values: non-finite weights and moments, negative exp_avg_sq -------------------- */

/* Overwrite float element `index` (-1: every element) of tensor `name` of the safetensors file
 * `path` with v, in place. name NULL: every byte after the header (every tensor; all of them F32
 * in these files), located from the format's first 8 bytes (little-endian header length N). The
 * tensor's offset comes from the reader; the bytes are written with plain stdio. */
static void poke_floats(const char *path, const char *name, int64_t index, float v) {
    int64_t begin = 0, n = 0;
    if (name) {
        lc_safetensors *sf = NULL;
        ck_assert_msg(lc_safetensors_open(path, &sf) == LC_OK, "%s: %s", path, lc_last_error());
        const int64_t id = lc_safetensors_find(sf, name);
        ck_assert_msg(id >= 0, "%s: no tensor %s", path, name);
        const lc_st_tensor_info *ti = lc_safetensors_tensor(sf, id);
        ck_assert(ti->dtype == LC_ST_F32 && index < ti->numel);
        begin = (int64_t)ti->offset;
        n = ti->numel;
        lc_safetensors_close(sf);
    } else {
        size_t size = 0;
        unsigned char *b = (unsigned char *)read_all(path, &size);
        ck_assert(b != NULL && size >= 8);
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
        free(b);
        begin = 8 + (int64_t)hl;
        n = ((int64_t)size - begin) / 4;
    }
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    for (int64_t i = index < 0 ? 0 : index; i < (index < 0 ? n : index + 1); i++) {
        ck_assert(fseek(f, (long)(begin + 4 * i), SEEK_SET) == 0);
        ck_assert(fwrite(&v, 4, 1, f) == 1);
    }
    ck_assert(fclose(f) == 0);
}

/* Every exp_avg_sq tensor of the optimizer file of dir set to v. */
static void poke_all_exp_avg_sq(const char *dir, float v) {
    char p[4200];
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    lc_safetensors *sf = NULL;
    ck_assert_msg(lc_safetensors_open(p, &sf) == LC_OK, "%s: %s", p, lc_last_error());
    const int64_t nt = lc_safetensors_n_tensors(sf);
    char **names = calloc((size_t)nt, sizeof *names);
    for (int64_t i = 0; i < nt; i++) names[i] = strdup(lc_safetensors_tensor(sf, i)->name);
    lc_safetensors_close(sf);
    int hits = 0;
    for (int64_t i = 0; i < nt; i++) {
        const size_t len = strlen(names[i]);
        if (len > 11 && strcmp(names[i] + len - 11, ".exp_avg_sq") == 0) {
            poke_floats(p, names[i], -1, v);
            hits++;
        }
        free(names[i]);
    }
    free(names);
    ck_assert_int_eq(hits * 2, (int)nt);
}

#define KEY(layer, path, ab) "base_model.model.model.layers." #layer "." path ".lora_" ab ".weight"

START_TEST(test_bad_values) {
    char *root = NULL;
    saved_ck c = {0};
    lc_device *dev = begin_with_checkpoint(&root, &c);
    char dir[4096], p[4200];

    /* Every float of the moments NaN (what the tester did): the first bad value is element 0 of
     * some exp_avg / exp_avg_sq. */
    snprintf(dir, sizeof dir, "%s/nan_all", root);
    copy_checkpoint(root, dir);
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    poke_floats(p, NULL, -1, NAN);
    {
        const char *const w[] = {dir, "optimizer.safetensors: tensor 'base_model.model.", ".exp_avg",
                                 "element 0 (row 0, column 0) is nan", "must be finite", NULL};
        expect_load_errors(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, w);
    }
    /* Every exp_avg_sq -1. */
    snprintf(dir, sizeof dir, "%s/neg_all", root);
    copy_checkpoint(root, dir);
    poke_all_exp_avg_sq(dir, -1.0f);
    {
        const char *const w[] = {"optimizer.safetensors: tensor '", ".exp_avg_sq' element 0 (row 0, column 0) is -1",
                                 "finite and >= 0", NULL};
        expect_load_errors(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, w);
    }
    /* One negative exp_avg_sq: lora_B of down_proj is [out, r = 4]; element 5 is row 1, column 1. */
    snprintf(dir, sizeof dir, "%s/neg_one", root);
    copy_checkpoint(root, dir);
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    poke_floats(p, KEY(1, "mlp.down_proj", "B") ".exp_avg_sq", 5, -0.5f);
    expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT,
                      "optimizer.safetensors: tensor '" KEY(1, "mlp.down_proj", "B")
                      ".exp_avg_sq' element 5 (row 1, column 1) is -0.5");
    /* One infinite exp_avg: lora_A of v_proj is [r, in = 32]; element 33 is row 1, column 1. */
    snprintf(dir, sizeof dir, "%s/inf_one", root);
    copy_checkpoint(root, dir);
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    poke_floats(p, KEY(0, "self_attn.v_proj", "A") ".exp_avg", 33, INFINITY);
    expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT,
                      "optimizer.safetensors: tensor '" KEY(0, "self_attn.v_proj", "A")
                      ".exp_avg' element 33 (row 1, column 1) is inf");
    /* A NaN lora_B of q_proj, row 2 / column 3 of the PEFT file (HF row order; lorac holds it as
     * row 4 in GGUF order): the message names the file's element, 2 * 4 + 3 = 11. The adapter
     * loader finds it; the point here is that the checkpoint load fails cleanly. */
    snprintf(dir, sizeof dir, "%s/nan_b", root);
    copy_checkpoint(root, dir);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    poke_floats(p, KEY(0, "self_attn.q_proj", "B"), 11, NAN);
    {
        const char *const w[] = {"adapter_model.safetensors", "'" KEY(0, "self_attn.q_proj", "B") "'", "element 11",
                                 "nan", NULL};
        expect_load_errors(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, w);
    }
    /* A NaN lora_A of gate_proj. */
    snprintf(dir, sizeof dir, "%s/nan_a", root);
    copy_checkpoint(root, dir);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    poke_floats(p, KEY(1, "mlp.gate_proj", "A"), 0, NAN);
    {
        const char *const w[] = {"adapter_model.safetensors", "'" KEY(1, "mlp.gate_proj", "A") "'", "element 0",
                                 "nan", NULL};
        expect_load_errors(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, w);
    }

    end_with_checkpoint(dev, root, &c);
}
END_TEST

/* ---- integers of trainer_state.json: range and integrality on the double ----------------------- */

START_TEST(test_bad_integers) {
    char *root = NULL;
    saved_ck c = {0};
    lc_device *dev = begin_with_checkpoint(&root, &c);
    static const struct {
        const char *key, *value, *want;
    } cases[] = {
        {"step", "1e300", "field step is 1.0000000000000001e+300, not an integer"},
        {"step", "-1e300", "field step is -1.0000000000000001e+300, not an integer"},
        {"step", "1e999", "field step is inf, not an integer"},
        {"step", "1.5", "field step is 1.5, not an integer"},
        {"step", "9223372036854775808", "field step is 9.2233720368547758e+18, not an integer"},
        {"step", "9007199254740993", "step 9007199254740992 outside 1..steps"}, /* 2^53 + 1 reads as 2^53 */
        {"step", "0", "step 0 outside 1..steps"},
        {"step", "\"NaN\"", "field step missing or not a number"},
        {"step", "\"4\"", "field step missing or not a number"},
        {"step", "NaN", "trainer_state.json is not valid JSON"},
        {"step", "Infinity", "trainer_state.json is not valid JSON"},
        {"steps", "-1e300", "field train.steps is -1.0000000000000001e+300, not an integer"},
        {"n_layer", "1e19", "field model.n_layer is 1e+19, not an integer"},
        {"epoch", "1e300", "field data.epoch is 1.0000000000000001e+300, not an integer"},
        {"position", "-0.5", "field data.position is -0.5, not an integer"},
    };
    char dir[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(dir, sizeof dir, "%s/int%zu", root, i);
        copy_edit_state(root, dir, &c, cases[i].key, cases[i].value);
        expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, cases[i].want);
    }
    /* Anything after the JSON object is damage, not ignored. */
    snprintf(dir, sizeof dir, "%s/trailing", root);
    copy_checkpoint(root, dir);
    char p[4200];
    snprintf(p, sizeof p, "%s/trainer_state.json", dir);
    char *e = malloc(c.sizes[3] + 8);
    memcpy(e, c.files[3], c.sizes[3]);
    memcpy(e + c.sizes[3], " {}\n", 4);
    write_all(p, e, c.sizes[3] + 4);
    free(e);
    expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, "trainer_state.json is not valid JSON");
    end_with_checkpoint(dev, root, &c);
}
END_TEST

/* ---- the 64 MiB limit of trainer_state.json ------------------------------------------------------ */

START_TEST(test_state_size_limit) {
    const size_t limit = (size_t)64 * 1024 * 1024; /* documented in checkpoint.h */
    char *root = NULL;
    saved_ck c = {0};
    lc_device *dev = begin_with_checkpoint(&root, &c);
    char dir[4096], p[4200], want[256];
    /* One byte over: the real state followed by a hole (sparse, nothing to write). */
    snprintf(dir, sizeof dir, "%s/big", root);
    copy_checkpoint(root, dir);
    snprintf(p, sizeof p, "%s/trainer_state.json", dir);
    ck_assert(truncate(p, (off_t)limit + 1) == 0);
    snprintf(want, sizeof want, "trainer_state.json: %zu bytes, more than the limit of %zu bytes (64 MiB)", limit + 1,
             limit);
    expect_load_error(dev, &DEFAULT_OPTS, dir, LC_ERR_FORMAT, want);
    /* Exactly the limit: the real state padded with spaces (valid JSON) restores. */
    char *e = malloc(limit);
    ck_assert_ptr_nonnull(e);
    memcpy(e, c.files[3], c.sizes[3]);
    memset(e + c.sizes[3], ' ', limit - c.sizes[3]);
    write_all(p, e, limit);
    free(e);
    setup s;
    ck_assert_msg(setup_new(dev, &DEFAULT_OPTS, &s) == LC_OK, "setup: %s", lc_last_error());
    lc_checkpoint_extra x = extra_of(&s);
    ck_assert_msg(lc_checkpoint_load(s.tr, dir, &x, NULL) == LC_OK, "load of a %zu-byte state: %s", limit,
                  lc_last_error());
    ck_assert_int_eq(lc_trainer_steps_done(s.tr), N_HALF);
    setup_free(&s);
    end_with_checkpoint(dev, root, &c);
}
END_TEST

/* ---- stale temporaries of killed saves ---------------------------------------------------------- */

static void make_file(const char *root, const char *name, const char *text) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", root, name);
    write_all(p, text, strlen(text));
}

/* A directory root/name holding a file and a subdirectory with a file. */
static void make_tree(const char *root, const char *name) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", root, name);
    ck_assert_msg(mkdir(p, 0777) == 0, "%s: %s", p, strerror(errno));
    snprintf(p, sizeof p, "%s/%s/sub", root, name);
    ck_assert(mkdir(p, 0777) == 0);
    char rel[160];
    snprintf(rel, sizeof rel, "%s/adapter_model.safetensors", name);
    make_file(root, rel, "partial");
    snprintf(rel, sizeof rel, "%s/sub/x", name);
    make_file(root, rel, name);
}

static bool exists(const char *root, const char *name) {
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", root, name);
    return lstat(p, &sb) == 0;
}

START_TEST(test_stale_temporaries) {
    /* A dead pid: a child that has exited and been reaped. A live one: a child that sleeps. */
    const pid_t dead = fork();
    ck_assert(dead >= 0);
    if (dead == 0) _exit(0);
    ck_assert(waitpid(dead, NULL, 0) == dead);
    ck_assert_msg(kill(dead, 0) != 0 && errno == ESRCH, "pid %d should be gone", (int)dead);
    const pid_t live = fork();
    ck_assert(live >= 0);
    if (live == 0) { /* killed at the end; alarm() ends it anyway if the test dies first */
        alarm(120);
        pause();
        _exit(0);
    }
    const long parent = (long)getppid();

    lc_device *dev = open_cpu();
    char *root = make_tmpdir();
    setup s;
    saved_ck c = {0};
    first_checkpoint(dev, &s, root, &c);
    ck_assert_msg(setup_step(&s, NULL) == LC_OK, "step: %s", lc_last_error());

    char gone[8][64], kept[16][64];
    int n_gone = 0, n_kept = 0;
    snprintf(gone[n_gone++], 64, "checkpoint-7.tmp-%ld", (long)dead);
    snprintf(gone[n_gone++], 64, "checkpoint-123.tmp-%ld", (long)dead);
    snprintf(gone[n_gone++], 64, "checkpoint-3.tmp-%ld", (long)getpid()); /* this process's own: stale */
    snprintf(kept[n_kept++], 64, "checkpoint-7.tmp-%ld", (long)live);
    snprintf(kept[n_kept++], 64, "checkpoint-7.tmp-%ld", parent);
    snprintf(kept[n_kept++], 64, "checkpoint-7.tmp-%ldx", (long)dead);
    snprintf(kept[n_kept++], 64, "checkpoint-7.tmp-0%ld", (long)dead);
    snprintf(kept[n_kept++], 64, "checkpoint-.tmp-%ld", (long)dead);
    snprintf(kept[n_kept++], 64, "checkpoint-7.old-%ld", (long)dead);
    snprintf(kept[n_kept++], 64, "checkpoint-7x.tmp-%ld", (long)dead);
    snprintf(kept[n_kept++], 64, "checkpoint-7.tmpfoo");
    for (int i = 0; i < n_gone; i++) make_tree(root, gone[i]);
    for (int i = 0; i < n_kept; i++) make_tree(root, kept[i]);
    /* Files: latest.tmp-<pid> of a dead and of a live process, and unrelated names. */
    char lgone[64], lkept[4][64];
    snprintf(lgone, sizeof lgone, "latest.tmp-%ld", (long)dead);
    snprintf(lkept[0], 64, "latest.tmp-%ld", (long)live);
    snprintf(lkept[1], 64, "latest.tmp-");
    snprintf(lkept[2], 64, "notes.txt");
    snprintf(lkept[3], 64, "latest.tmp-%ld.bak", (long)dead);
    make_file(root, lgone, "checkpoint-7\n");
    for (int i = 0; i < 4; i++) make_file(root, lkept[i], lkept[i]);

    /* A save that fails (file-size limit) has already removed the stale ones: the cleanup comes
     * before the new checkpoint is written, when the room is needed. */
    struct rlimit old, lim;
    ck_assert(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    lc_checkpoint_extra x = extra_of(&s);
    const lc_status st = lc_checkpoint_save(s.tr, root, &x, 2, NULL, 0);
    ck_assert(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, prev);
    ck_assert_int_eq(st, LC_ERR_IO);
    for (int i = 0; i < n_gone; i++) ck_assert_msg(!exists(root, gone[i]), "%s/%s not removed", root, gone[i]);
    ck_assert_msg(!exists(root, lgone), "%s/%s not removed", root, lgone);
    /* Stale ones again, then a save that succeeds. */
    make_tree(root, gone[0]);
    make_file(root, lgone, "checkpoint-7\n");
    ck_assert_msg(lc_checkpoint_save(s.tr, root, &x, 2, NULL, 0) == LC_OK, "save: %s", lc_last_error());
    ck_assert(!exists(root, gone[0]) && !exists(root, lgone));
    /* Everything else untouched, contents included. */
    char p[4200];
    for (int i = 0; i < n_kept; i++) {
        snprintf(p, sizeof p, "%s/%s/sub/x", root, kept[i]);
        char *b = read_all(p, NULL);
        ck_assert_msg(b && strcmp(b, kept[i]) == 0, "%s changed or removed", p);
        free(b);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", root, lkept[i]);
        char *b = read_all(p, NULL);
        ck_assert_msg(b && strcmp(b, lkept[i]) == 0, "%s changed or removed", p);
        free(b);
    }
    snprintf(p, sizeof p, "%s/latest", root);
    char *latest = read_all(p, NULL);
    char want[64];
    snprintf(want, sizeof want, "checkpoint-%d\n", N_HALF + 1);
    ck_assert_str_eq(latest, want);
    free(latest);

    kill(live, SIGKILL);
    waitpid(live, NULL, 0);
    saved_free(&c);
    setup_free(&s);
    lc_device_close(dev);
    rm_rf(root);
    free(root);
}
END_TEST

static Suite *resume_suite(void) {
    Suite *s = suite_create("resume");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_exact_every_device);
    tcase_add_test(tc, test_full_disk_fsize);
    tcase_add_test(tc, test_full_disk_enospc);
    tcase_add_test(tc, test_mismatch_and_damage);
    tcase_add_test(tc, test_keep_and_resolve);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_bad_integers);
    tcase_add_test(tc, test_state_size_limit);
    tcase_add_test(tc, test_stale_temporaries);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(resume_suite());
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
