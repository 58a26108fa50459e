/* lorac — training checkpoints: save and restore a trainer's complete state atomically
 * (layout, atomicity and checks: lorac/checkpoint.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef LORAC_HAVE_CJSON
#include <cjson/cJSON.h>
#endif

#include "lorac/adapter.h"
#include "lorac/checkpoint.h"
#include "lorac/safetensors.h"
#include "train_internal.h"

#define CK_PATH_MAX 4096

/* ---- files ------------------------------------------------------------------------------------ */

/* Write n bytes to `path` (created or truncated), fsync and close, every call checked. */
static lc_status write_file(const char *path, const void *data, size_t n) {
    const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return lc_error(LC_ERR_IO, "checkpoint: %s: cannot create: %s", path, strerror(errno));
    const char *p = data;
    size_t left = n;
    lc_status st = LC_OK;
    while (left > 0) {
        const ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            st = lc_error(LC_ERR_IO, "checkpoint: %s: write failed after %zu of %zu bytes: %s", path, n - left, n,
                          w < 0 ? strerror(errno) : "no progress");
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (st == LC_OK && fsync(fd) != 0) st = lc_error(LC_ERR_IO, "checkpoint: %s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && st == LC_OK)
        st = lc_error(LC_ERR_IO, "checkpoint: %s: close failed: %s", path, strerror(errno));
    return st;
}

/* fsync a directory (its entries: the renames into it). */
static lc_status fsync_dir(const char *path) {
    const int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return lc_error(LC_ERR_IO, "checkpoint: %s: cannot open directory: %s", path, strerror(errno));
    lc_status st = LC_OK;
    /* Some file systems refuse fsync on directories (EINVAL); that is not a write error. */
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        st = lc_error(LC_ERR_IO, "checkpoint: %s: fsync of the directory failed: %s", path, strerror(errno));
    close(fd);
    return st;
}

/* rm -r of `path` (files and directories, no symbolic link is followed). 0 or -1 with errno. */
static int remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char sub[CK_PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub) {
            errno = ENAMETOOLONG;
            rc = -1;
            continue;
        }
        if (remove_tree(sub) != 0) rc = -1;
    }
    closedir(d);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}

/* Read a whole file of at most `limit` bytes into a NUL-terminated malloc'd buffer. A larger
 * file is refused before it is read when its size is known (fstat), else once limit + 1 bytes
 * have been read. */
static lc_status read_file(const char *path, size_t limit, char **out, size_t *len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return lc_error(LC_ERR_IO, "checkpoint: %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > (uint64_t)limit) {
        fclose(f);
        return lc_error(LC_ERR_FORMAT, "checkpoint: %s: %lld bytes, more than the limit of %zu bytes (%zu MiB) for a "
                        "trainer state", path, (long long)sb.st_size, limit, limit >> 20);
    }
    size_t cap = 4096, n = 0;
    char *buf = NULL;
    lc_status st = LC_OK;
    for (;;) {
        if (n > limit) {
            st = lc_error(LC_ERR_FORMAT, "checkpoint: %s: more than the limit of %zu bytes (%zu MiB) for a trainer "
                          "state", path, limit, limit >> 20);
            break;
        }
        if (!buf || n + 1 >= cap) { /* room for limit + 1 bytes and the NUL, never more */
            const size_t nc = buf ? (cap < limit / 2 ? cap * 2 : limit + 2) : cap;
            char *nb = realloc(buf, nc);
            if (!nb) {
                st = lc_error(LC_ERR_NOMEM, "checkpoint: %s: out of host memory", path);
                break;
            }
            buf = nb;
            cap = nc;
        }
        const size_t r = fread(buf + n, 1, cap - 1 - n, f);
        n += r;
        if (r == 0) break;
    }
    if (st == LC_OK && ferror(f)) st = lc_error(LC_ERR_IO, "checkpoint: %s: read error", path);
    fclose(f);
    if (st != LC_OK) {
        free(buf);
        return st;
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return LC_OK;
}

/* ---- a growing text buffer --------------------------------------------------------------------- */

typedef struct tbuf {
    char *s;
    size_t n, cap;
    bool oom;
} tbuf;

static void tb_printf(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(tbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 1024;
        while (nc < b->n + (size_t)k + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
}

/* A JSON string literal (ASCII control characters and non-ASCII bytes kept as UTF-8). */
static void tb_json_string(tbuf *b, const char *s) {
    tb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') tb_printf(b, "\\%c", *p);
        else if (*p < 0x20) tb_printf(b, "\\u%04x", *p);
        else tb_printf(b, "%c", *p);
    }
    tb_printf(b, "\"");
}

/* ---- names -------------------------------------------------------------------------------------- */

/* PEFT key of one LoRA tensor without ".weight": "base_model.model.<path>.lora_A". */
static void peft_key(char *dst, size_t cap, const lc_lora_module *lm, bool is_b) {
    char path[160];
    lc_module_hf_path(path, sizeof path, lm->layer, lm->module);
    snprintf(dst, cap, "base_model.model.%s.%s.weight", path, is_b ? "lora_B" : "lora_A");
}

/* Index of `p` among the trainer's parameters, -1 when absent. */
static int param_index(const lc_trainer *t, const lc_tensor *p) {
    for (int i = 0; i < t->n_params; i++)
        if (t->params[i] == p) return i;
    return -1;
}

/* ---- trainer_state.json -------------------------------------------------------------------------- */

static void build_state(const lc_trainer *t, const lc_checkpoint_extra *x, tbuf *b) {
    const lc_train_config *c = &t->cfg;
    const lc_lora_config *l = &t->lora->cfg;
    const lc_model_config *m = &t->model->cfg;
    tb_printf(b, "{\n  \"format\": \"lorac-checkpoint\",\n  \"format_version\": %d,\n  \"step\": %d,\n",
              LC_CHECKPOINT_FORMAT_VERSION, t->k);
    tb_printf(b,
              "  \"train\": {\"steps\": %d, \"warmup_steps\": %d, \"lr\": %.9g, \"beta1\": %.9g, \"beta2\": %.9g, "
              "\"eps\": %.9g, \"weight_decay\": %.9g, \"max_grad_norm\": %.9g, \"grad_accum\": %d, \"n_seq\": %d, "
              "\"seq_len\": %d, \"ignore_index\": %d},\n",
              c->steps, c->warmup_steps, (double)c->lr, (double)c->beta1, (double)c->beta2, (double)c->eps,
              (double)c->weight_decay, (double)c->max_grad_norm, c->grad_accum, c->n_seq, c->seq_len,
              c->ignore_index);
    tb_printf(b, "  \"lora\": {\"r\": %d, \"lora_alpha\": %.9g, \"use_rslora\": %s, \"lora_dropout\": %.9g, "
                 "\"target_modules\": [",
              l->r, (double)l->lora_alpha, l->use_rslora ? "true" : "false", (double)l->dropout);
    bool first = true;
    for (int i = 0; i < LC_MOD_COUNT; i++)
        if (l->target_mask & (1u << i)) {
            tb_printf(b, "%s\"%s\"", first ? "" : ", ", lc_module_hf_name((lc_module)i));
            first = false;
        }
    tb_printf(b, "], \"seed\": \"%" PRIu64 "\"},\n", l->seed);
    tb_printf(b, "  \"model\": {\"arch\": \"%s\", \"n_layer\": %d, \"n_embd\": %d, \"n_vocab\": %d, \"n_head\": %d, "
                 "\"n_head_kv\": %d, \"head_dim\": %d, \"n_ff\": %d, \"file\": ",
              lc_arch_name(m->arch), m->n_layer, m->n_embd, m->n_vocab, m->n_head, m->n_head_kv, m->head_dim,
              m->n_ff);
    tb_json_string(b, x && x->model_file ? x->model_file : "");
    tb_printf(b, ", \"file_bytes\": \"%" PRIu64 "\"},\n", x ? x->model_bytes : 0);
    tb_printf(b, "  \"rng\": {\"seed\": \"%" PRIu64 "\", \"dropout_step\": \"%" PRIu64 "\"},\n", l->seed,
              (uint64_t)t->k * (uint64_t)c->grad_accum);
    if (x && x->has_cursor)
        tb_printf(b, "  \"data\": {\"epoch\": %" PRId64 ", \"position\": %" PRId64 ", \"fingerprint\": \"0x%016" PRIx64
                     "\"}\n}\n",
                  x->cursor.epoch, x->cursor.position, x->cursor.fingerprint);
    else
        tb_printf(b, "  \"data\": null\n}\n");
}

/* ---- optimizer.safetensors ----------------------------------------------------------------------- */

/* Add m and v of one LoRA tensor to the writer. host: scratch of at least nbytes. */
static lc_status add_moments(const lc_trainer *t, lc_safetensors_writer *w, const lc_lora_module *lm, bool is_b,
                             float *host) {
    const lc_tensor *p = is_b ? lm->lora_b : lm->lora_a;
    const int i = param_index(t, p);
    if (i < 0) return lc_error(LC_ERR_STATE, "lc_checkpoint_save: %s is not a parameter of the trainer", p->name);
    char key[224], name[256];
    peft_key(key, sizeof key, lm, is_b);
    const int64_t shape[2] = {p->ne[1], p->ne[0]};
    const size_t bytes = (size_t)p->ne[0] * (size_t)p->ne[1] * sizeof(float);
    lc_status st;
    for (int j = 0; j < 2; j++) {
        if ((st = lc_tensor_get(j ? t->v[i] : t->m[i], host, 0, bytes)) != LC_OK) return st;
        snprintf(name, sizeof name, "%s.%s", key, j ? "exp_avg_sq" : "exp_avg");
        if ((st = lc_safetensors_writer_add(w, name, LC_ST_F32, 2, shape, host, bytes)) != LC_OK) return st;
    }
    return LC_OK;
}

static lc_status write_optimizer(const lc_trainer *t, const char *path) {
    lc_safetensors_writer *w = NULL;
    lc_status st = lc_safetensors_writer_new(&w);
    if (st != LC_OK) return st;
    size_t max_bytes = 0;
    for (int i = 0; i < t->n_params; i++)
        if (lc_nbytes(t->params[i]) > max_bytes) max_bytes = lc_nbytes(t->params[i]);
    float *host = malloc(max_bytes > 0 ? max_bytes : 1);
    char stepbuf[32];
    snprintf(stepbuf, sizeof stepbuf, "%d", t->k);
    if (!host) st = lc_error(LC_ERR_NOMEM, "lc_checkpoint_save: out of host memory");
    if (st == LC_OK) st = lc_safetensors_writer_set_metadata(w, "format", "lorac-adamw");
    if (st == LC_OK) st = lc_safetensors_writer_set_metadata(w, "step", stepbuf);
    for (int mi = 0; st == LC_OK && mi < t->lora->n_modules; mi++) {
        st = add_moments(t, w, &t->lora->modules[mi], false, host);
        if (st == LC_OK) st = add_moments(t, w, &t->lora->modules[mi], true, host);
    }
    free(host);
    void *img = NULL;
    size_t n = 0;
    if (st == LC_OK) st = lc_safetensors_writer_write_memory(w, &img, &n);
    lc_safetensors_writer_free(w);
    if (st == LC_OK) st = write_file(path, img, n);
    free(img);
    return st;
}

/* ---- save ------------------------------------------------------------------------------------------ */

/* Step number of a directory name "checkpoint-<n>" (digits only), -1 otherwise. */
static long long checkpoint_step(const char *name) {
    if (strncmp(name, "checkpoint-", 11) != 0) return -1;
    const char *p = name + 11;
    if (!*p) return -1;
    long long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000000000LL) return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static int cmp_ll_desc(const void *a, const void *b) {
    const long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Remove checkpoint-<n> directories of `root` beyond the `keep` newest, never `current`. */
static void prune(const char *root, int keep, long long current) {
    if (keep <= 0) return;
    DIR *d = opendir(root);
    if (!d) return;
    long long *steps = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const long long s = checkpoint_step(e->d_name);
        if (s < 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            long long *ns = realloc(steps, cap * sizeof *ns);
            if (!ns) break;
            steps = ns;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (steps) qsort(steps, n, sizeof *steps, cmp_ll_desc);
    for (size_t i = (size_t)keep; i < n; i++) {
        if (steps[i] == current) continue;
        char p[CK_PATH_MAX];
        snprintf(p, sizeof p, "%s/checkpoint-%lld", root, steps[i]);
        (void)remove_tree(p);
    }
    free(steps);
}

/* The pid in the name of a save's temporary, "checkpoint-<digits>.tmp-<pid>" or "latest.tmp-<pid>"
 * (<pid> as lc_checkpoint_save writes it: decimal, no leading zero, at most INT_MAX); 0 for any
 * other name. */
static long long temp_pid(const char *name) {
    static const char latest_tmp[] = LC_CHECKPOINT_LATEST_FILE ".tmp-";
    const char *p = NULL;
    if (strncmp(name, latest_tmp, sizeof latest_tmp - 1) == 0) {
        p = name + sizeof latest_tmp - 1;
    } else if (strncmp(name, "checkpoint-", 11) == 0) {
        const char *q = name + 11;
        while (*q >= '0' && *q <= '9') q++;
        if (q > name + 11 && strncmp(q, ".tmp-", 5) == 0) p = q + 5;
    }
    if (!p || *p < '1' || *p > '9') return 0;
    long long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (*p - '0');
        if (v > INT_MAX) return 0;
    }
    return v;
}

/* Remove the temporaries that interrupted saves left in `root` (see ATOMICITY in checkpoint.h):
 * names matching temp_pid whose process is gone (kill(pid, 0) fails with ESRCH) or is this one.
 * Silent: nothing reads them, and lc_checkpoint_save has no channel for notes. */
static void remove_stale_temps(const char *root) {
    DIR *d = opendir(root);
    if (!d) return;
    const long long self = (long long)getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const long long pid = temp_pid(e->d_name);
        if (pid == 0) continue;
        if (pid != self && !(kill((pid_t)pid, 0) != 0 && errno == ESRCH)) continue; /* alive, or not ours to ask */
        char p[CK_PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", root, e->d_name) < (int)sizeof p) (void)remove_tree(p);
    }
    closedir(d);
}

/* The message of the error just recorded, copied (lc_error reuses its buffer). */
static void last_error_copy(char *dst, size_t cap) { snprintf(dst, cap, "%s", lc_last_error()); }

lc_status lc_checkpoint_save(const lc_trainer *t, const char *root, const lc_checkpoint_extra *extra, int keep,
                             char *saved, size_t cap) {
    if (saved && cap) saved[0] = 0;
    if (!t || !root || !*root) return lc_error(LC_ERR_INVALID_ARG, "lc_checkpoint_save: trainer or root is NULL");
    if (keep < 0) return lc_error(LC_ERR_INVALID_ARG, "lc_checkpoint_save: keep = %d must be >= 0", keep);
    if (t->k < 1) return lc_error(LC_ERR_INVALID_ARG, "lc_checkpoint_save: no step taken yet (step 0)");
    if (strlen(root) > CK_PATH_MAX - 128)
        return lc_error(LC_ERR_INVALID_ARG, "lc_checkpoint_save: root path is too long (%zu bytes)", strlen(root));
    const long pid = (long)getpid();
    char tmp[CK_PATH_MAX], fin[CK_PATH_MAX], old[CK_PATH_MAX], file[CK_PATH_MAX + 64], ltmp[CK_PATH_MAX],
        latest[CK_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/checkpoint-%d.tmp-%ld", root, t->k, pid);
    snprintf(fin, sizeof fin, "%s/checkpoint-%d", root, t->k);
    snprintf(old, sizeof old, "%s/checkpoint-%d.old-%ld", root, t->k, pid);
    snprintf(ltmp, sizeof ltmp, "%s/%s.tmp-%ld", root, LC_CHECKPOINT_LATEST_FILE, pid);
    snprintf(latest, sizeof latest, "%s/%s", root, LC_CHECKPOINT_LATEST_FILE);

    if (mkdir(root, 0777) != 0 && errno != EEXIST)
        return lc_error(LC_ERR_IO, "checkpoint: cannot create the directory %s: %s", root, strerror(errno));
    /* Before writing: a stale temporary is as large as a checkpoint, and this save may need the room. */
    remove_stale_temps(root);
    if (mkdir(tmp, 0777) != 0)
        return lc_error(LC_ERR_IO, "checkpoint: cannot create the directory %s: %s", tmp, strerror(errno));

    lc_status st;
    tbuf state = {0};
    bool moved_old = false;
    /* 1. The adapter (PEFT files), the moments, the trainer state, all inside tmp. */
    const lc_adapter_meta meta = {.base_model_name_or_path = extra && extra->model_file && *extra->model_file
                                                                 ? extra->model_file
                                                                 : NULL,
                                  .name = NULL};
    st = lc_adapter_save_peft(t->model, t->lora, tmp, &meta);
    if (st == LC_OK) {
        snprintf(file, sizeof file, "%s/%s", tmp, LC_CHECKPOINT_OPTIMIZER_FILE);
        st = write_optimizer(t, file);
    }
    if (st == LC_OK) {
        build_state(t, extra, &state);
        if (state.oom) st = lc_error(LC_ERR_NOMEM, "lc_checkpoint_save: out of host memory");
    }
    if (st == LC_OK) {
        snprintf(file, sizeof file, "%s/%s", tmp, LC_CHECKPOINT_STATE_FILE);
        st = write_file(file, state.s, state.n);
    }
    if (st == LC_OK) st = fsync_dir(tmp);
    /* 2. tmp -> checkpoint-<k> (an older directory of that name is moved aside first). */
    if (st == LC_OK) {
        struct stat sb;
        if (lstat(fin, &sb) == 0) {
            (void)remove_tree(old);
            if (rename(fin, old) != 0)
                st = lc_error(LC_ERR_IO, "checkpoint: cannot move the existing %s aside: %s", fin, strerror(errno));
            else
                moved_old = true;
        }
    }
    if (st == LC_OK && rename(tmp, fin) != 0) {
        st = lc_error(LC_ERR_IO, "checkpoint: cannot rename %s to %s: %s", tmp, fin, strerror(errno));
        if (moved_old && rename(old, fin) == 0) moved_old = false;
    }
    /* 3. latest -> checkpoint-<k>. */
    if (st == LC_OK) {
        char line[64];
        const int n = snprintf(line, sizeof line, "checkpoint-%d\n", t->k);
        st = write_file(ltmp, line, (size_t)n);
        if (st == LC_OK && rename(ltmp, latest) != 0)
            st = lc_error(LC_ERR_IO, "checkpoint: cannot rename %s to %s: %s", ltmp, latest, strerror(errno));
        if (st != LC_OK) {
            unlink(ltmp);
            /* `latest` still names the previous checkpoint; the new directory is complete but
             * not referenced; remove it so the state on disk is the previous one. */
            (void)remove_tree(fin);
            if (moved_old) rename(old, fin);
            moved_old = false;
        }
    }
    if (st == LC_OK) st = fsync_dir(root);
    free(state.s);
    if (st != LC_OK) {
        char msg[1024];
        last_error_copy(msg, sizeof msg);
        (void)remove_tree(tmp);
        return lc_error(st, "lc_checkpoint_save: step %d into %s failed: %s", t->k, root, msg);
    }
    if (moved_old) (void)remove_tree(old);
    prune(root, keep, t->k);
    if (saved && cap) snprintf(saved, cap, "%s", fin);
    return LC_OK;
}

/* ---- resolve ---------------------------------------------------------------------------------------- */

lc_status lc_checkpoint_resolve(const char *path, char *dir, size_t cap) {
    if (!path || !dir || cap < 2) return lc_error(LC_ERR_INVALID_ARG, "lc_checkpoint_resolve: NULL argument");
    char p[CK_PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", path, LC_CHECKPOINT_STATE_FILE) >= (int)sizeof p)
        return lc_error(LC_ERR_INVALID_ARG, "lc_checkpoint_resolve: path too long");
    struct stat sb;
    if (stat(p, &sb) == 0) {
        if ((size_t)snprintf(dir, cap, "%s", path) >= cap)
            return lc_error(LC_ERR_INVALID_ARG, "lc_checkpoint_resolve: cap too small");
        return LC_OK;
    }
    const int err_state = errno;
    snprintf(p, sizeof p, "%s/%s", path, LC_CHECKPOINT_LATEST_FILE);
    FILE *f = fopen(p, "rb");
    if (!f)
        return lc_error(LC_ERR_IO, "checkpoint %s: neither a checkpoint (%s/%s: %s) nor a checkpoint directory (%s: %s)",
                        path, path, LC_CHECKPOINT_STATE_FILE, strerror(err_state), p, strerror(errno));
    char line[128];
    const size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    size_t len = strcspn(line, "\r\n");
    const bool only_one_line = line[len] == 0 || line[len + strspn(line + len, "\r\n")] == 0;
    line[len] = 0;
    if (len == 0 || !only_one_line || checkpoint_step(line) < 0)
        return lc_error(LC_ERR_FORMAT, "checkpoint %s: %s does not hold one line \"checkpoint-<step>\"", path, p);
    if ((size_t)snprintf(dir, cap, "%s/%s", path, line) >= cap)
        return lc_error(LC_ERR_INVALID_ARG, "lc_checkpoint_resolve: cap too small");
    snprintf(p, sizeof p, "%s/%s/%s", path, line, LC_CHECKPOINT_STATE_FILE);
    if (stat(p, &sb) != 0) {
        const int err = errno;
        snprintf(p, sizeof p, "%s/%s", path, line);
        if (stat(p, &sb) != 0)
            return lc_error(LC_ERR_IO, "checkpoint %s: `%s` in %s names %s, which does not exist (%s: %s)", path,
                            LC_CHECKPOINT_LATEST_FILE, path, line, p, strerror(errno));
        return lc_error(LC_ERR_IO, "checkpoint %s: `%s` in %s names %s, which holds no %s (%s/%s: %s)", path,
                        LC_CHECKPOINT_LATEST_FILE, path, line, LC_CHECKPOINT_STATE_FILE, p, LC_CHECKPOINT_STATE_FILE,
                        strerror(err));
    }
    return LC_OK;
}

/* ---- load ------------------------------------------------------------------------------------------- */

#ifdef LORAC_HAVE_CJSON

typedef struct ck_ctx {
    const char *dir;
    const char *file; /* the state file's path */
} ck_ctx;

static lc_status field_missing(const ck_ctx *c, const char *obj, const char *key, const char *type) {
    return lc_error(LC_ERR_FORMAT, "checkpoint %s: %s: field %s%s%s missing or not %s", c->dir, c->file, obj ? obj : "",
                    obj ? "." : "", key, type);
}

static lc_status get_num(const ck_ctx *c, const cJSON *o, const char *obj, const char *key, double *v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(j)) return field_missing(c, obj, key, "a number");
    *v = j->valuedouble;
    return LC_OK;
}

static lc_status get_int(const ck_ctx *c, const cJSON *o, const char *obj, const char *key, int64_t *v) {
    double d = 0.0;
    lc_status st = get_num(c, o, obj, key, &d);
    if (st != LC_OK) return st;
    /* Checked on the double: casting one outside int64_t's range is undefined behaviour. */
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0)
        return lc_error(LC_ERR_FORMAT, "checkpoint %s: %s: field %s%s%s is %.17g, not an integer in -2^53..2^53",
                        c->dir, c->file, obj ? obj : "", obj ? "." : "", key, d);
    *v = (int64_t)d;
    return LC_OK;
}

static lc_status get_str(const ck_ctx *c, const cJSON *o, const char *obj, const char *key, const char **v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(j) || !j->valuestring) return field_missing(c, obj, key, "a string");
    *v = j->valuestring;
    return LC_OK;
}

static lc_status get_u64(const ck_ctx *c, const cJSON *o, const char *obj, const char *key, uint64_t *v) {
    const char *s = NULL;
    lc_status st = get_str(c, o, obj, key, &s);
    if (st != LC_OK) return st;
    char *end = NULL;
    errno = 0;
    const unsigned long long x = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-') return field_missing(c, obj, key, "an unsigned 64-bit integer string");
    *v = (uint64_t)x;
    return LC_OK;
}

static lc_status mismatch_i(const ck_ctx *c, const char *field, long long saved, long long have) {
    return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s was written with %s %lld, this run has %lld", c->dir, field,
                    saved, have);
}

static lc_status mismatch_f(const ck_ctx *c, const char *field, double saved, double have) {
    return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s was written with %s %.9g, this run has %.9g", c->dir, field,
                    saved, have);
}

/* Integer field `key` of object o must equal `have`. */
static lc_status check_int(const ck_ctx *c, const cJSON *o, const char *obj, const char *key, const char *label,
                           long long have) {
    int64_t v = 0;
    lc_status st = get_int(c, o, obj, key, &v);
    if (st != LC_OK) return st;
    return v == have ? LC_OK : mismatch_i(c, label, (long long)v, have);
}

/* F32 field: the stored 9-digit decimal converts back to the same float. */
static lc_status check_f32(const ck_ctx *c, const cJSON *o, const char *obj, const char *key, const char *label,
                           float have) {
    double v = 0.0;
    lc_status st = get_num(c, o, obj, key, &v);
    if (st != LC_OK) return st;
    return (float)v == have ? LC_OK : mismatch_f(c, label, v, (double)have);
}

static const cJSON *get_obj(const ck_ctx *c, const cJSON *root, const char *key, lc_status *st) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsObject(j)) {
        *st = field_missing(c, NULL, key, "an object");
        return NULL;
    }
    *st = LC_OK;
    return j;
}

static void mask_names(uint32_t mask, char *dst, size_t cap) {
    size_t n = 0;
    dst[0] = 0;
    for (int i = 0; i < LC_MOD_COUNT; i++)
        if (mask & (1u << i)) {
            const int k = snprintf(dst + n, cap - n, "%s%s", n ? "," : "", lc_module_hf_name((lc_module)i));
            if (k < 0 || (size_t)k >= cap - n) return;
            n += (size_t)k;
        }
}

/* Check trainer_state.json against the trainer and `expect`; read step and cursor. */
static lc_status check_state(const ck_ctx *c, const cJSON *root, const lc_trainer *t, const lc_checkpoint_extra *x,
                             int *step, bool *has_cursor, lc_data_cursor *cur) {
    lc_status st;
    const char *s = NULL;
    if (!cJSON_IsObject(root))
        return lc_error(LC_ERR_FORMAT, "checkpoint %s: %s: not a JSON object", c->dir, c->file);
    if ((st = get_str(c, root, NULL, "format", &s)) != LC_OK) return st;
    if (strcmp(s, "lorac-checkpoint") != 0)
        return lc_error(LC_ERR_FORMAT, "checkpoint %s: %s: format \"%s\", expected \"lorac-checkpoint\"", c->dir,
                        c->file, s);
    int64_t ver = 0, k = 0;
    if ((st = get_int(c, root, NULL, "format_version", &ver)) != LC_OK) return st;
    if (ver != LC_CHECKPOINT_FORMAT_VERSION)
        return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s: format_version %lld, this lorac reads version %d", c->dir,
                        (long long)ver, LC_CHECKPOINT_FORMAT_VERSION);
    if ((st = get_int(c, root, NULL, "step", &k)) != LC_OK) return st;

    const cJSON *tr = get_obj(c, root, "train", &st);
    if (!tr) return st;
    const lc_train_config *tc = &t->cfg;
    if ((st = check_int(c, tr, "train", "steps", "steps (--steps)", tc->steps)) != LC_OK) return st;
    if ((st = check_int(c, tr, "train", "warmup_steps", "warmup_steps (--warmup)", tc->warmup_steps)) != LC_OK)
        return st;
    if ((st = check_f32(c, tr, "train", "lr", "lr (--lr)", tc->lr)) != LC_OK) return st;
    if ((st = check_f32(c, tr, "train", "beta1", "beta1", tc->beta1)) != LC_OK) return st;
    if ((st = check_f32(c, tr, "train", "beta2", "beta2", tc->beta2)) != LC_OK) return st;
    if ((st = check_f32(c, tr, "train", "eps", "eps", tc->eps)) != LC_OK) return st;
    if ((st = check_f32(c, tr, "train", "weight_decay", "weight_decay (--weight-decay)", tc->weight_decay)) != LC_OK)
        return st;
    if ((st = check_f32(c, tr, "train", "max_grad_norm", "max_grad_norm (--max-grad-norm)", tc->max_grad_norm)) !=
        LC_OK)
        return st;
    if ((st = check_int(c, tr, "train", "grad_accum", "grad_accum (micro-batches per step: --batch / --micro-batch "
                        "x --grad-accum)", tc->grad_accum)) != LC_OK)
        return st;
    if ((st = check_int(c, tr, "train", "n_seq", "n_seq (sequences per micro-batch: --micro-batch, or "
                        "chosen from --batch when --micro-batch is not given)", tc->n_seq)) !=
        LC_OK)
        return st;
    if ((st = check_int(c, tr, "train", "seq_len", "seq_len (--seq-len)", tc->seq_len)) != LC_OK) return st;
    if ((st = check_int(c, tr, "train", "ignore_index", "ignore_index", tc->ignore_index)) != LC_OK) return st;
    if (k < 1 || k > tc->steps)
        return lc_error(LC_ERR_FORMAT, "checkpoint %s: %s: step %lld outside 1..steps = %d", c->dir, c->file,
                        (long long)k, tc->steps);

    const cJSON *lo = get_obj(c, root, "lora", &st);
    if (!lo) return st;
    const lc_lora_config *lc = &t->lora->cfg;
    if ((st = check_int(c, lo, "lora", "r", "r (--rank)", lc->r)) != LC_OK) return st;
    if ((st = check_f32(c, lo, "lora", "lora_alpha", "lora_alpha (--alpha)", lc->lora_alpha)) != LC_OK) return st;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(lo, "use_rslora");
    if (!cJSON_IsBool(rs)) return field_missing(c, "lora", "use_rslora", "a boolean");
    if ((bool)cJSON_IsTrue(rs) != lc->use_rslora)
        return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s was written %s rsLoRA (--rslora), this run %s", c->dir,
                        cJSON_IsTrue(rs) ? "with" : "without", lc->use_rslora ? "uses it" : "does not");
    if ((st = check_f32(c, lo, "lora", "lora_dropout", "lora_dropout (--dropout)", lc->dropout)) != LC_OK) return st;
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(lo, "target_modules");
    if (!cJSON_IsArray(tm)) return field_missing(c, "lora", "target_modules", "an array");
    uint32_t mask = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, tm) {
        int found = -1;
        for (int i = 0; i < LC_MOD_COUNT && cJSON_IsString(e); i++)
            if (strcmp(e->valuestring, lc_module_hf_name((lc_module)i)) == 0) found = i;
        if (found < 0) return field_missing(c, "lora", "target_modules", "a list of projection names");
        mask |= 1u << found;
    }
    if (mask != lc->target_mask) {
        char a[160], b[160];
        mask_names(mask, a, sizeof a);
        mask_names(lc->target_mask, b, sizeof b);
        return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s was written with target_modules (--targets) %s, this run "
                        "has %s", c->dir, a, b);
    }
    uint64_t seed = 0;
    if ((st = get_u64(c, lo, "lora", "seed", &seed)) != LC_OK) return st;
    if (seed != lc->seed)
        return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s was written with seed (--seed) %" PRIu64 ", this run has %"
                        PRIu64, c->dir, seed, lc->seed);

    const cJSON *mo = get_obj(c, root, "model", &st);
    if (!mo) return st;
    const lc_model_config *mc = &t->model->cfg;
    if ((st = get_str(c, mo, "model", "arch", &s)) != LC_OK) return st;
    if (strcmp(s, lc_arch_name(mc->arch)) != 0)
        return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s was written for a %s model (--model), this run has a %s "
                        "model", c->dir, s, lc_arch_name(mc->arch));
    if ((st = check_int(c, mo, "model", "n_layer", "a model (--model) with n_layer", mc->n_layer)) != LC_OK ||
        (st = check_int(c, mo, "model", "n_embd", "a model (--model) with n_embd", mc->n_embd)) != LC_OK ||
        (st = check_int(c, mo, "model", "n_vocab", "a model (--model) with n_vocab", mc->n_vocab)) != LC_OK ||
        (st = check_int(c, mo, "model", "n_head", "a model (--model) with n_head", mc->n_head)) != LC_OK ||
        (st = check_int(c, mo, "model", "n_head_kv", "a model (--model) with n_head_kv", mc->n_head_kv)) != LC_OK ||
        (st = check_int(c, mo, "model", "head_dim", "a model (--model) with head_dim", mc->head_dim)) != LC_OK ||
        (st = check_int(c, mo, "model", "n_ff", "a model (--model) with n_ff", mc->n_ff)) != LC_OK)
        return st;
    const char *file = NULL;
    uint64_t fbytes = 0;
    if ((st = get_str(c, mo, "model", "file", &file)) != LC_OK) return st;
    if ((st = get_u64(c, mo, "model", "file_bytes", &fbytes)) != LC_OK) return st;
    if (x && x->model_file && *x->model_file && *file && strcmp(file, x->model_file) != 0)
        return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s was written with the model file (--model) %s, this run has "
                        "%s", c->dir, file, x->model_file);
    if (x && x->model_bytes && fbytes && fbytes != x->model_bytes)
        return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s was written with a model file (--model) of %" PRIu64
                        " bytes, this run's has %" PRIu64 " bytes", c->dir, fbytes, x->model_bytes);

    const cJSON *da = cJSON_GetObjectItemCaseSensitive(root, "data");
    memset(cur, 0, sizeof *cur);
    *has_cursor = false;
    if (cJSON_IsObject(da)) {
        int64_t ep = 0, po = 0;
        uint64_t fp = 0;
        if ((st = get_int(c, da, "data", "epoch", &ep)) != LC_OK) return st;
        if ((st = get_int(c, da, "data", "position", &po)) != LC_OK) return st;
        if ((st = get_u64(c, da, "data", "fingerprint", &fp)) != LC_OK) return st;
        if (ep < 0 || po < 0) return field_missing(c, "data", "epoch/position", "non-negative");
        cur->epoch = ep;
        cur->position = po;
        cur->fingerprint = fp;
        *has_cursor = true;
    } else if (!cJSON_IsNull(da)) {
        return field_missing(c, NULL, "data", "an object or null");
    }
    if (x && x->has_cursor) {
        if (!*has_cursor)
            return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s holds no data position, this run reads a data set",
                            c->dir);
        if (x->cursor.fingerprint && cur->fingerprint != x->cursor.fingerprint)
            return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s was written with other training data (fingerprint "
                            "0x%016" PRIx64 ", this run's is 0x%016" PRIx64 "): other files (--data), seq_len, "
                            "packing, sequences per micro-batch, seed or shuffle", c->dir, cur->fingerprint,
                            x->cursor.fingerprint);
    }
    *step = (int)k;
    return LC_OK;
}

/* Find tensor `name` in the optimizer file: F32, shape [ne1, ne0] of p. */
static lc_status find_moment(const ck_ctx *c, const lc_safetensors *sf, const char *name, const lc_tensor *p,
                             const lc_st_tensor_info **out) {
    const int64_t id = lc_safetensors_find(sf, name);
    if (id < 0)
        return lc_error(LC_ERR_FORMAT, "checkpoint %s: %s: tensor '%s' missing", c->dir, LC_CHECKPOINT_OPTIMIZER_FILE,
                        name);
    const lc_st_tensor_info *ti = lc_safetensors_tensor(sf, id);
    if (ti->dtype != LC_ST_F32)
        return lc_error(LC_ERR_FORMAT, "checkpoint %s: %s: tensor '%s' is %s, expected F32", c->dir,
                        LC_CHECKPOINT_OPTIMIZER_FILE, name, lc_st_dtype_name(ti->dtype));
    if (ti->n_dims != 2 || ti->shape[0] != p->ne[1] || ti->shape[1] != p->ne[0])
        return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s: %s: tensor '%s' has shape [%lld, %lld] (%d dims), this "
                        "run's LoRA tensor needs [%lld, %lld]", c->dir, LC_CHECKPOINT_OPTIMIZER_FILE, name,
                        (long long)ti->shape[0], (long long)(ti->n_dims > 1 ? ti->shape[1] : 0), ti->n_dims,
                        (long long)p->ne[1], (long long)p->ne[0]);
    *out = ti;
    return LC_OK;
}

/* Index of the first element of x[n] that is not finite or, when nonneg, is negative; -1 if none. */
static int64_t first_bad(const float *x, int64_t n, bool nonneg) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]) || (nonneg && x[i] < 0.0f)) return i;
    return -1;
}

/* The moments of one module (mom: A exp_avg, A exp_avg_sq, B exp_avg, B exp_avg_sq): exp_avg finite,
 * exp_avg_sq finite and >= 0 (AdamW divides by sqrt(exp_avg_sq) + eps: one NaN or negative value
 * would reach every later update). host: scratch of the largest. (Non-finite lora_A / lora_B
 * values are refused by lc_adapter_load_peft.) */
static lc_status check_moments(const ck_ctx *c, const lc_lora_module *lm, const lc_st_tensor_info *const *mom,
                               float *host) {
    for (int k = 0; k < 4; k++) {
        const bool is_sq = k % 2;
        const lc_tensor *p = k < 2 ? lm->lora_a : lm->lora_b;
        const int64_t n = lc_nelements(p);
        memcpy(host, mom[k]->data, (size_t)n * sizeof(float)); /* the mapping may be unaligned */
        const int64_t i = first_bad(host, n, is_sq);
        if (i >= 0)
            return lc_error(LC_ERR_FORMAT, "checkpoint %s: %s: tensor '%s' element %lld (row %lld, column %lld) is "
                            "%.9g; %s", c->dir, LC_CHECKPOINT_OPTIMIZER_FILE, mom[k]->name, (long long)i,
                            (long long)(i / p->ne[0]), (long long)(i % p->ne[0]), (double)host[i],
                            is_sq ? "exp_avg_sq must be finite and >= 0" : "exp_avg must be finite");
    }
    return LC_OK;
}

/* The loaded adapter must have the trainer's modules with the same shapes. */
static lc_status check_adapter(const ck_ctx *c, const lc_lora_set *got, const lc_lora_set *have) {
    if (got->n_modules != have->n_modules)
        return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s: the adapter has %d LoRA modules, this run has %d", c->dir,
                        got->n_modules, have->n_modules);
    for (int i = 0; i < have->n_modules; i++) {
        const lc_lora_module *a = &got->modules[i], *b = &have->modules[i];
        const lc_tensor *ta[2] = {a->lora_a, a->lora_b}, *tb[2] = {b->lora_a, b->lora_b};
        if (a->layer != b->layer || a->module != b->module)
            return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s: adapter module %d is %s, this run's is %s", c->dir, i,
                            a->target, b->target);
        for (int j = 0; j < 2; j++)
            if (ta[j]->dtype != tb[j]->dtype || ta[j]->ne[0] != tb[j]->ne[0] || ta[j]->ne[1] != tb[j]->ne[1])
                return lc_error(LC_ERR_INVALID_ARG, "checkpoint %s: adapter tensor %s has ne {%lld, %lld}, this run's "
                                "{%lld, %lld}", c->dir, tb[j]->name, (long long)ta[j]->ne[0], (long long)ta[j]->ne[1],
                                (long long)tb[j]->ne[0], (long long)tb[j]->ne[1]);
    }
    return LC_OK;
}

lc_status lc_checkpoint_load(lc_trainer *t, const char *path, const lc_checkpoint_extra *expect,
                             lc_data_cursor *cursor) {
    if (cursor) memset(cursor, 0, sizeof *cursor);
    if (!t || !path) return lc_error(LC_ERR_INVALID_ARG, "lc_checkpoint_load: trainer or path is NULL");
    char dir[CK_PATH_MAX], file[CK_PATH_MAX + 64];
    lc_status st = lc_checkpoint_resolve(path, dir, sizeof dir);
    if (st != LC_OK) return st;
    snprintf(file, sizeof file, "%s/%s", dir, LC_CHECKPOINT_STATE_FILE);
    const ck_ctx c = {.dir = dir, .file = LC_CHECKPOINT_STATE_FILE};

    char *text = NULL;
    cJSON *root = NULL;
    lc_safetensors *sf = NULL;
    lc_lora_set *loaded = NULL;
    float *host = NULL;
    int step = 0;
    bool has_cursor = false;
    lc_data_cursor cur;
    memset(&cur, 0, sizeof cur);

    size_t text_len = 0;
    if ((st = read_file(file, LC_CHECKPOINT_STATE_MAX_BYTES, &text, &text_len)) != LC_OK) goto done;
    /* One JSON value and nothing after it but whitespace (a NUL byte or a second value is damage). */
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, text_len, &end, false);
    if (root && end) end += strspn(end, " \t\r\n");
    if (!root || end != text + text_len) {
        const char *at = root ? end : cJSON_GetErrorPtr();
        st = lc_error(LC_ERR_FORMAT, "checkpoint %s: %s is not valid JSON (near byte %td)", dir,
                      LC_CHECKPOINT_STATE_FILE, at ? at - text : (ptrdiff_t)0);
        goto done;
    }
    if ((st = check_state(&c, root, t, expect, &step, &has_cursor, &cur)) != LC_OK) goto done;

    /* The moments: every LoRA tensor's m and v, checked before anything changes. */
    snprintf(file, sizeof file, "%s/%s", dir, LC_CHECKPOINT_OPTIMIZER_FILE);
    if ((st = lc_safetensors_open(file, &sf)) != LC_OK) {
        char msg[1024];
        last_error_copy(msg, sizeof msg);
        st = lc_error(st, "checkpoint %s: %s", dir, msg);
        goto done;
    }
    const int nt = 4 * t->lora->n_modules;
    if (lc_safetensors_n_tensors(sf) != nt) {
        st = lc_error(LC_ERR_FORMAT, "checkpoint %s: %s holds %lld tensors, this run's optimizer has %d", dir,
                      LC_CHECKPOINT_OPTIMIZER_FILE, (long long)lc_safetensors_n_tensors(sf), nt);
        goto done;
    }
    const lc_st_tensor_info **info = calloc((size_t)(nt > 0 ? nt : 1), sizeof *info);
    if (!info) {
        st = lc_error(LC_ERR_NOMEM, "lc_checkpoint_load: out of host memory");
        goto done;
    }
    size_t max_bytes = 0;
    for (int mi = 0; st == LC_OK && mi < t->lora->n_modules; mi++) {
        const lc_lora_module *lm = &t->lora->modules[mi];
        for (int ab = 0; st == LC_OK && ab < 2; ab++) {
            const lc_tensor *p = ab ? lm->lora_b : lm->lora_a;
            if (param_index(t, p) < 0) {
                st = lc_error(LC_ERR_STATE, "lc_checkpoint_load: %s is not a parameter of the trainer", p->name);
                break;
            }
            if (lc_nbytes(p) > max_bytes) max_bytes = lc_nbytes(p);
            char key[224], name[256];
            peft_key(key, sizeof key, lm, ab);
            for (int j = 0; st == LC_OK && j < 2; j++) {
                snprintf(name, sizeof name, "%s.%s", key, j ? "exp_avg_sq" : "exp_avg");
                st = find_moment(&c, sf, name, p, &info[4 * mi + 2 * ab + j]);
            }
        }
    }
    /* The adapter: loaded into a separate set, then compared module by module. */
    if (st == LC_OK) {
        st = lc_adapter_load_peft(t->model, dir, &loaded);
        if (st != LC_OK) {
            char msg[1024];
            last_error_copy(msg, sizeof msg);
            st = lc_error(st, "checkpoint %s: adapter: %s", dir, msg);
        }
    }
    if (st == LC_OK) st = check_adapter(&c, loaded, t->lora);
    if (st == LC_OK && !(host = malloc(max_bytes > 0 ? max_bytes : 1)))
        st = lc_error(LC_ERR_NOMEM, "lc_checkpoint_load: out of host memory");
    for (int mi = 0; st == LC_OK && mi < t->lora->n_modules; mi++)
        st = check_moments(&c, &t->lora->modules[mi], info + 4 * mi, host);

    /* Everything checked: copy the LoRA tensors and the moments into the trainer. */
    for (int mi = 0; st == LC_OK && mi < t->lora->n_modules; mi++) {
        const lc_lora_module *lm = &t->lora->modules[mi];
        for (int ab = 0; st == LC_OK && ab < 2; ab++) {
            lc_tensor *p = ab ? lm->lora_b : lm->lora_a;
            const lc_tensor *src = ab ? loaded->modules[mi].lora_b : loaded->modules[mi].lora_a;
            const size_t bytes = lc_nbytes(p);
            const int pi = param_index(t, p);
            st = lc_tensor_get(src, host, 0, bytes);
            if (st == LC_OK) st = lc_tensor_set(p, host, 0, bytes);
            for (int j = 0; st == LC_OK && j < 2; j++) {
                const lc_st_tensor_info *ti = info[4 * mi + 2 * ab + j];
                memcpy(host, ti->data, bytes);
                st = lc_tensor_set(j ? t->v[pi] : t->m[pi], host, 0, bytes);
            }
        }
    }
    free(info);
    if (st == LC_OK) {
        t->k = step;
        if (cursor && has_cursor) *cursor = cur;
    }
done:
    free(host);
    lc_lora_set_free(loaded);
    lc_safetensors_close(sf);
    cJSON_Delete(root);
    free(text);
    return st;
}

#else /* !LORAC_HAVE_CJSON */

lc_status lc_checkpoint_load(lc_trainer *t, const char *path, const lc_checkpoint_extra *expect,
                             lc_data_cursor *cursor) {
    (void)t;
    (void)path;
    (void)expect;
    if (cursor) memset(cursor, 0, sizeof *cursor);
    return lc_error(LC_ERR_UNSUPPORTED, "lc_checkpoint_load: lorac was built without cJSON");
}

#endif /* LORAC_HAVE_CJSON */
