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
 *  - mismatches (seq_len, r, other data) name the field; a truncated optimizer.safetensors, a
 *    corrupted or incomplete trainer_state.json and a bad `latest` are clean errors that leave
 *    the trainer untouched.
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
} setup_opts;

static const setup_opts DEFAULT_OPTS = {SEQ_LEN, 4, 11};

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
    lc_status st = lc_model_load_gguf(dev, TINY, &s->model, &s->tok);
    if (st != LC_OK) return st;
    const lc_lora_config lc = {.r = o->r, .lora_alpha = 8.0f, .use_rslora = false, .dropout = 0.1f,
                               .target_mask = LC_MOD_MASK_ALL, .seed = 7};
    if ((st = lc_lora_set_new(s->model, &lc, &s->lora)) != LC_OK) return st;
    lc_data_config dc = lc_data_config_default();
    dc.seq_len = o->seq_len;
    dc.n_seq = N_SEQ;
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
    tc.n_seq = N_SEQ;
    tc.seq_len = o->seq_len;
    tc.steps = 2 * N_HALF;
    tc.warmup_steps = 2;
    tc.lr = 1e-2f;
    tc.weight_decay = 0.01f;
    tc.grad_accum = GRAD_ACCUM;
    tc.ignore_index = LC_DATA_IGNORE_INDEX;
    if ((st = lc_trainer_new(s->model, s->lora, &tc, &s->tr)) != LC_OK) return st;
    const size_t n = (size_t)GRAD_ACCUM * N_SEQ * o->seq_len;
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
    const int64_t micro = (int64_t)N_SEQ * s->seq_len;
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

/* Load into a fresh setup with options o: must fail with `want_st` and a message holding `want`;
 * the trainer and its LoRA tensors stay as they were. */
static void expect_load_error(lc_device *dev, const setup_opts *o, const char *path, lc_status want_st,
                              const char *want) {
    setup s;
    ck_assert_msg(setup_new(dev, o, &s) == LC_OK, "setup: %s", lc_last_error());
    int64_t n0 = 0, n1 = 0;
    float *before = lora_snapshot(s.lora, &n0);
    lc_checkpoint_extra x = extra_of(&s);
    lc_data_cursor cur;
    const lc_status st = lc_checkpoint_load(s.tr, path, &x, &cur);
    lt_log("  load %s: %s\n", path, lc_last_error());
    ck_assert_msg(st == want_st, "status %d, want %d: %s", (int)st, (int)want_st, lc_last_error());
    ck_assert_msg(strstr(lc_last_error(), want) != NULL, "message lacks '%s': %s", want, lc_last_error());
    ck_assert_int_eq(lc_trainer_steps_done(s.tr), 0);
    float *after = lora_snapshot(s.lora, &n1);
    ck_assert(n0 == n1 && memcmp(before, after, (size_t)n0 * sizeof(float)) == 0);
    free(before);
    free(after);
    setup_free(&s);
}

/* Copy checkpoint-N of `root` into dst (a new checkpoint directory). */
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
    lc_device *dev = open_cpu();
    char *root = make_tmpdir();
    setup s;
    saved_ck c = {0};
    first_checkpoint(dev, &s, root, &c);
    setup_free(&s);
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
    copy_checkpoint(root, dir);
    snprintf(p, sizeof p, "%s/trainer_state.json", dir);
    {
        char key[64];
        snprintf(key, sizeof key, "\"seq_len\": %d", SEQ_LEN);
        const char *at = strstr(c.files[3], key);
        ck_assert_ptr_nonnull(at);
        char *edited = malloc(c.sizes[3] + 16);
        const size_t head = (size_t)(at - c.files[3]);
        memcpy(edited, c.files[3], head);
        const int k = sprintf(edited + head, "\"seq_len\": \"%d\"", SEQ_LEN);
        strcpy(edited + head + k, at + strlen(key));
        write_all(p, edited, strlen(edited));
        free(edited);
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

    saved_free(&c);
    lc_device_close(dev);
    rm_rf(root);
    free(root);
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

static Suite *resume_suite(void) {
    Suite *s = suite_create("resume");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_exact_every_device);
    tcase_add_test(tc, test_full_disk_fsize);
    tcase_add_test(tc, test_full_disk_enospc);
    tcase_add_test(tc, test_mismatch_and_damage);
    tcase_add_test(tc, test_keep_and_resolve);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(resume_suite());
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
