/* lorac train — train a LoRA adapter: on a GGUF model with text / JSONL / fortune data
 * (lorac/data.h -> lorac/train.h -> lorac/adapter.h), or on the built-in toy model (--toy: a
 * random, frozen two-layer transformer learns a fixed token sequence through LoRA on every
 * projection, lc_train_toy in lorac/train.h).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "cli.h"
#include "lorac/adapter.h"
#include "lorac/checkpoint.h"
#include "lorac/data.h"
#include "lorac/infer.h"
#include "lorac/lorac.h"
#include "lorac/model.h"
#include "lorac/train.h"

static const char *CMD = "train";

static int train_model(int argc, char **argv);
static void model_help(void);

static void toy_help(void) {
    const lc_toy_options d = lc_toy_options_default();
    printf("Toy job: lorac train --toy [options]\n\n"
           "A random, frozen two-layer transformer (vocab 64, n_embd 64, 4 heads / 2 kv heads) learns to\n"
           "reproduce a fixed pseudo-random token sequence through LoRA on q,k,v,o,gate,up,down. The loss\n"
           "should fall by more than 90%% within 200 steps. Options of the toy job:\n"
           "  --toy               train on the built-in toy model\n"
           "  --device SPEC       cpu | opencl[:N] | vulkan[:N] | auto (default: $LORAC_DEVICE, else auto)\n"
           "  --steps N           optimizer steps (default %d)\n"
           "  --rank R            LoRA rank r (default %d)\n"
           "  --alpha A           lora_alpha; scaling = alpha / r (default %g)\n"
           "  --dropout P         LoRA dropout probability in [0, 1) (default %g)\n"
           "  --lr LR             peak learning rate, AdamW, warmup then cosine (default %g)\n"
           "  --warmup N          linear warmup steps (default %d, at most steps/10)\n"
           "  --seq-len N         tokens in the sequence to learn, 2..4096 (default %d)\n"
           "  --seed S            seed of the base weights, the sequence and the LoRA init (default %llu)\n"
           "  --threads N         CPU threads (sets LORAC_THREADS; default: all cores)\n"
           "  --log-every N       progress line every N steps (default 10)\n\n"
           "Each progress line shows the loss, the learning rate, the gradient norm before clipping\n"
           "(clipped to 1.0), tokens per second and the estimated time left.\n",
           d.steps, d.r, (double)d.lora_alpha, (double)d.dropout, (double)d.lr, d.warmup_steps, d.seq_len,
           (unsigned long long)d.seed);
}

typedef struct progress {
    int total_steps, log_every;
    int64_t tokens;
    double seconds;
} progress;

static bool on_step(const lc_train_stats *s, void *user) {
    progress *p = user;
    p->tokens += s->n_tokens;
    p->seconds += s->seconds;
    if (s->step == 1 || s->step % p->log_every == 0 || s->step == p->total_steps) {
        const double tps = p->seconds > 0.0 ? (double)p->tokens / p->seconds : 0.0;
        const double eta = p->seconds / s->step * (p->total_steps - s->step);
        char eta_s[32];
        printf("step %*d/%d  loss %.4f  lr %.3e  grad_norm %.4f  tok/s %.0f  eta %s\n",
               (int)snprintf(NULL, 0, "%d", p->total_steps), s->step, p->total_steps, (double)s->loss,
               (double)s->lr, (double)s->grad_norm, tps, cli_format_duration(eta_s, sizeof eta_s, eta));
        fflush(stdout);
    }
    return true;
}

/* LoRA parameters of the toy model with rank r: r * (in + out) per projection. */
static long long toy_lora_params(const lc_model_config *c, int r) {
    const long long E = c->n_embd, F = c->n_ff, nq = (long long)c->head_dim * c->n_head,
                    nkv = (long long)c->head_dim * c->n_head_kv;
    return (long long)c->n_layer * r * ((E + nq) + 2 * (E + nkv) + (nq + E) + 2 * (E + F) + (F + E));
}

static int train_toy(int argc, char **argv) {
    lc_toy_options opt = lc_toy_options_default();
    bool toy = false, warmup_set = false;
    const char *device = NULL, *v = NULL;
    int log_every = 10, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_flag(argc, argv, &i, "--toy")) {
            toy = true;
        } else if (cli_opt(argc, argv, &i, "--device", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--device needs a value: cpu, opencl[:N], vulkan[:N] or auto");
            device = v;
        } else if (cli_opt(argc, argv, &i, "--steps", &v)) {
            if (!cli_parse_int(CMD, "--steps", v, 1, 10000000, &opt.steps)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--rank", &v)) {
            if (!cli_parse_int(CMD, "--rank", v, 1, 4096, &opt.r)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--alpha", &v)) {
            if (!cli_parse_float(CMD, "--alpha", v, 0.0, 1e6, true, &opt.lora_alpha)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--dropout", &v)) {
            if (!cli_parse_float(CMD, "--dropout", v, 0.0, 1.0, false, &opt.dropout)) return CLI_EXIT_USAGE;
            if (opt.dropout >= 1.0f) return cli_usage_error(CMD, "--dropout '%s' must be below 1", v);
        } else if (cli_opt(argc, argv, &i, "--lr", &v)) {
            if (!cli_parse_float(CMD, "--lr", v, 0.0, 10.0, true, &opt.lr)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--warmup", &v)) {
            if (!cli_parse_int(CMD, "--warmup", v, 0, 10000000, &opt.warmup_steps)) return CLI_EXIT_USAGE;
            warmup_set = true;
        } else if (cli_opt(argc, argv, &i, "--seq-len", &v)) {
            if (!cli_parse_int(CMD, "--seq-len", v, 2, 4096, &opt.seq_len)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (!cli_parse_u64(CMD, "--seed", v, &opt.seed)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(CMD, "--threads", v, 1, 1024, &threads)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--log-every", &v)) {
            if (!cli_parse_int(CMD, "--log-every", v, 1, 100000000, &log_every)) return CLI_EXIT_USAGE;
        } else if (a[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s' (options start with --)", a);
        }
    }
    if (!toy) return cli_usage_error(CMD, "internal: the toy job without --toy");
    if (!warmup_set && opt.warmup_steps > opt.steps / 10) opt.warmup_steps = opt.steps / 10;
    if (opt.warmup_steps > opt.steps)
        return cli_usage_error(CMD, "--warmup %d is more than --steps %d", opt.warmup_steps, opt.steps);
    if (threads > 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", threads);
        setenv("LORAC_THREADS", buf, 1);
    }

    lc_device *dev = NULL;
    const int opened = cli_open_device(CMD, device, &dev);
    if (opened != CLI_EXIT_OK) return opened;
    const lc_device_info *di = lc_device_get_info(dev);
    const lc_model_config mc = lc_model_config_default(LC_ARCH_TOY);
    int min_dim = mc.n_embd < mc.n_ff ? mc.n_embd : mc.n_ff;
    if (mc.head_dim * mc.n_head_kv < min_dim) min_dim = mc.head_dim * mc.n_head_kv;
    if (mc.head_dim * mc.n_head < min_dim) min_dim = mc.head_dim * mc.n_head;
    if (opt.r > min_dim) {
        lc_device_close(dev);
        return cli_usage_error(CMD, "--rank %d is more than %d, the smallest in/out size of the toy model's projections",
                               opt.r, min_dim);
    }
    const float scaling = lc_lora_scaling(opt.r, opt.lora_alpha, false);
    printf("device: %s (%s", di->spec, di->name);
    if (strcmp(di->backend, "cpu") == 0) printf(", threads %d", di->threads);
    printf(")\n");
    printf("model: toy, %d layers, n_embd %d, %d heads / %d kv heads of %d, n_ff %d, vocab %d, random and frozen\n",
           mc.n_layer, mc.n_embd, mc.n_head, mc.n_head_kv, mc.head_dim, mc.n_ff, mc.n_vocab);
    printf("lora: r %d, lora_alpha %g (scaling %g), dropout %g, on q,k,v,o,gate,up,down: %lld trainable parameters\n",
           opt.r, (double)opt.lora_alpha, (double)scaling, (double)opt.dropout, toy_lora_params(&mc, opt.r));
    printf("task: reproduce a fixed %d-token sequence; %d steps, lr %g (warmup %d, cosine), max_grad_norm 1, seed "
           "%llu\n",
           opt.seq_len, opt.steps, (double)opt.lr, opt.warmup_steps, (unsigned long long)opt.seed);
    fflush(stdout);

    progress p = {.total_steps = opt.steps, .log_every = log_every};
    lc_toy_result res;
    lc_status st = lc_train_toy(dev, &opt, on_step, &p, &res);
    if (st != LC_OK) {
        int rc = cli_lib_error(CMD, "training failed");
        lc_device_close(dev);
        return rc;
    }
    char dur[32];
    printf("done: %d steps in %s; loss %.4f -> %.4f, loss drop %.1f%%\n", res.steps,
           cli_format_duration(dur, sizeof dur, res.seconds), (double)res.first_loss, (double)res.final_loss,
           (double)res.drop_percent);
    lc_device_close(dev);
    return CLI_EXIT_OK;
}

/* `lorac train`: the toy job with --toy, else a real model (train_model below). */
int cli_train(int argc, char **argv) {
    bool toy = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_train_help();
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--toy") == 0) toy = true;
    }
    return toy ? train_toy(argc, argv) : train_model(argc, argv);
}

void cli_train_help(void) {
    model_help();
    printf("\n");
    toy_help();
}

/* ---- real models --------------------------------------------------------------------------- */

/* Logits and their gradient dominate the memory of a training graph: 2 * 4 * n_vocab bytes per
 * token (Gemma 3: 262144 entries, 2 MiB per token). A step of --batch sequences is split into
 * micro-batches of at most this many logits bytes (one buffer), run one after the other with
 * gradient accumulation; the result is the same step (lorac/train.h, grad_accum). */
#define TRAIN_MICRO_LOGITS_BYTES ((uint64_t)256 << 20)

#define DEFAULT_TARGETS "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
#define DEFAULT_PROMPT "The best advice I ever got was"

typedef struct real_opts {
    const char *model, *data, *eval_data, *device, *targets, *out, *log, *prompt;
    const char *checkpoint_dir, *resume, *init_adapter;
    int save_every, keep_checkpoints;
    lc_data_format data_format;
    double eval_split;
    bool eval_split_set;
    int threads, steps, seq_len, batch, grad_accum, micro, rank, warmup, eval_every, eval_batches, log_every;
    int sample_tokens;
    float alpha, dropout, lr, weight_decay, max_grad_norm;
    bool rslora, warmup_set, no_save, checkpointing;
    uint64_t seed;
} real_opts;

static real_opts real_defaults(void) {
    real_opts o = {.targets = DEFAULT_TARGETS, .out = "lorac-out/adapter", .prompt = DEFAULT_PROMPT,
                   .data_format = LC_DATA_FORMAT_AUTO, .eval_split = 0.05, .steps = 100, .seq_len = 128,
                   .batch = 8, .grad_accum = 1, .rank = 8, .eval_batches = 16, .log_every = 1,
                   .sample_tokens = 32, .keep_checkpoints = 2, .alpha = 16.0f, .dropout = 0.05f, .lr = 2e-4f, .max_grad_norm = 1.0f,
                   .seed = 42};
    return o;
}

static void model_help(void) {
    const real_opts d = real_defaults();
    printf("Usage: lorac train --model M.gguf [--data FILE|DIR] [options]\n"
           "       lorac train --toy [options]\n\n"
           "Trains a LoRA adapter on a GGUF model (llama, qwen2, gemma3; base weights frozen, quantized\n"
           "weights stay quantized) and saves it as a PEFT directory and a llama.cpp GGUF adapter.\n\n"
           "Data:\n"
           "  --data FILE|DIR     training text: plain text (blank lines separate documents), JSONL\n"
           "                      ({\"text\"}, {\"prompt\",\"completion\"}, {\"messages\"}), or fortune files; a\n"
           "                      directory adds its regular files in name order (a directory holding\n"
           "                      *.dat files is read as fortune files). Default: Debian's fortunes\n"
           "                      (%s, package fortunes-min / fortunes)\n"
           "  --data-format F     auto | text | jsonl | fortune (default auto: '{' first = JSONL, else text)\n"
           "  --eval-data FILE    held-out data (same formats); default: hold out --eval-split of --data\n"
           "  --eval-split P      share of the training examples held out, fixed seed 42 (default %g)\n"
           "  --eval-batches N    held-out batches evaluated, 0 = all (default %d)\n"
           "  --seq-len N         tokens per sequence; documents are packed (default %d)\n"
           "Model and device:\n"
           "  --model FILE        GGUF model (scripts/get-model.sh fetches Gemma 3 270M)\n"
           "  --device SPEC       cpu | opencl[:N] | vulkan[:N] | auto (default: $LORAC_DEVICE, else auto)\n"
           "  --threads N         CPU threads (sets LORAC_THREADS; default: all cores)\n"
           "LoRA:\n"
           "  --rank R            r (default %d); must not exceed min(in, out) of a targeted projection\n"
           "  --alpha A           lora_alpha; scaling = alpha / r (default %g)\n"
           "  --rslora            scaling = alpha / sqrt(r) (rsLoRA)\n"
           "  --dropout P         lora_dropout in [0, 1) (default %g; off during evaluation)\n"
           "  --targets LIST      projections, HF or GGUF names or all (default %s:\n"
           "                      every attention and MLP projection, as QLoRA found best. The cost is\n"
           "                      small: the gradient must pass through every base projection anyway to\n"
           "                      reach the LoRA of earlier layers; on Gemma 3 270M LoRA r 8 on all seven\n"
           "                      adds 1.9M multiply-adds per token to the base 268M (100M in the layers,\n"
           "                      168M in the 262144-entry vocabulary's logits), q,k,v,o alone 0.7M)\n"
           "Optimisation (AdamW, linear warmup then cosine decay, as transformers' Trainer):\n"
           "  --steps N           optimizer steps (default %d)\n"
           "  --batch N           sequences per optimizer step (default %d)\n"
           "  --grad-accum N      batches accumulated per optimizer step (default %d); the loss is the\n"
           "                      mean over every label-carrying token of the whole step\n"
           "  --micro-batch N     sequences per forward/backward graph (default: as many as keep the\n"
           "                      logits under 256 MiB; the step stays the same, only memory changes)\n"
           "  --checkpointing     gradient checkpointing: keep only each layer's output in the forward\n"
           "                      pass and recompute the rest of the layer during the backward pass\n"
           "                      (same results, less activation memory, about one more forward)\n"
           "  --lr LR             peak learning rate (default %g)\n"
           "  --warmup N          warmup steps (default steps/10); lr rises linearly from 0, so with\n"
           "                      warmup the first step's lr is 0, as in transformers' schedule\n"
           "  --weight-decay W    decoupled weight decay (default 0)\n"
           "  --max-grad-norm N   clip the global gradient norm, 0 = off (default %g)\n"
           "  --seed S            LoRA init, dropout and shuffle seed (default %llu)\n"
           "Output:\n"
           "  --eval-every N      held-out loss every N steps (default 0: before and after training only)\n"
           "  --log FILE.jsonl    one JSON object per step: step, loss, lr, grad_norm, tokens_per_s,\n"
           "                      eval_loss (when evaluated), device_peak_bytes, peak_rss_bytes\n"
           "  --log-every N       progress line on stderr every N steps (default %d)\n"
           "  --out DIR           PEFT adapter directory, plus DIR/adapter.gguf (default %s)\n"
           "  --no-save           do not save the adapter\n"
           "  --prompt TEXT       prompt of the greedy sample printed before/after (default \"%s\")\n"
           "  --sample-tokens N   tokens of that sample, 0 = no sample (default %d)\n"
           "Checkpoints and resuming:\n"
           "  --save-every N      write a checkpoint after every N-th step (default 0: none). A checkpoint\n"
           "                      is a directory checkpoint-<step> holding the adapter (PEFT files, usable\n"
           "                      as an adapter), optimizer.safetensors (AdamW moments) and\n"
           "                      trainer_state.json (step, schedule, LoRA and batch options, model\n"
           "                      identity, data position); it is written to a temporary directory and\n"
           "                      renamed, then DIR/latest is switched to it, so a crash or a full disk\n"
           "                      never damages the previous one. A failed save stops training (exit 1)\n"
           "  --checkpoint-dir D  where checkpoints go (default: 'checkpoints' next to --out, i.e.\n"
           "                      <parent of --out>/checkpoints: lorac-out/checkpoints)\n"
           "  --keep-checkpoints K  keep the K newest checkpoints, 0 = all (default %d)\n"
           "  --resume PATH       continue a run: PATH is a checkpoint-<step> directory or a checkpoint\n"
           "                      directory whose 'latest' names one. Restores the adapter, the AdamW\n"
           "                      moments, the step and the data position, then runs steps step+1..--steps\n"
           "                      exactly as the interrupted run would have. Every option that shapes the\n"
           "                      run (--model, --data, --seq-len, --batch, --micro-batch, --grad-accum,\n"
           "                      --steps, --warmup, --lr, --weight-decay, --max-grad-norm, --rank,\n"
           "                      --alpha, --rslora, --dropout, --targets, --seed) must be the same; a\n"
           "                      difference is an error naming the option. --log is appended to (its\n"
           "                      lines after the checkpoint's step are dropped first)\n"
           "  --init-adapter PATH start from the lora_A / lora_B of an adapter (PEFT directory, .gguf or a\n"
           "                      checkpoint-<step> directory) instead of a fresh init: to train an adapter\n"
           "                      further with new options (more --steps, other data or lr). --rank,\n"
           "                      --alpha, --rslora and --targets must match it; AdamW moments, the\n"
           "                      schedule and the data position start afresh\n"
           "  -h, --help          this help\n",
           LC_DATA_FORTUNES_DIR, d.eval_split, d.eval_batches, d.seq_len, d.rank, (double)d.alpha,
           (double)d.dropout, DEFAULT_TARGETS, d.steps, d.batch, d.grad_accum, (double)d.lr,
           (double)d.max_grad_norm, (unsigned long long)d.seed, d.log_every, d.out, DEFAULT_PROMPT, d.sample_tokens,
           d.keep_checkpoints);
}

/* Peak resident set size of this process in bytes (VmHWM of /proc/self/status), 0 if unknown. */
static uint64_t peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kib = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib * 1024;
}

/* mkdir -p of `path` (mode 0777 & umask). 0 on success, -1 with errno. */
static int mkdir_p(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            const char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            buf[i] = c;
        }
    }
    struct stat stt;
    if (stat(path, &stt) != 0) return -1;
    if (!S_ISDIR(stt.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* Add --data / --eval-data: a file with its format, or a directory (fortune files when it holds
 * *.dat files or the format is fortune, else every regular, non-hidden file in name order). */
static lc_status add_data_path(lc_data *d, const char *path, lc_data_format fmt, lc_data_split split) {
    struct stat st;
    if (stat(path, &st) != 0)
        return lc_error(LC_ERR_IO, "data '%s': %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return lc_error(LC_ERR_IO, "data '%s': not a regular file or a directory (a pipe or device would be read "
                        "without end)", path);
    if (!S_ISDIR(st.st_mode)) {
        if (fmt == LC_DATA_FORMAT_FORTUNE) return lc_data_add_fortunes(d, path, split);
        return lc_data_add_file(d, path, fmt, split);
    }
    struct dirent **list = NULL;
    const int n = scandir(path, &list, NULL, name_cmp);
    if (n < 0) return lc_error(LC_ERR_IO, "data directory '%s': %s", path, strerror(errno));
    bool has_dat = false;
    for (int i = 0; i < n; i++) {
        const size_t len = strlen(list[i]->d_name);
        if (len > 4 && strcmp(list[i]->d_name + len - 4, ".dat") == 0) has_dat = true;
    }
    lc_status rc = LC_OK;
    int added = 0;
    if (has_dat || fmt == LC_DATA_FORMAT_FORTUNE) {
        rc = lc_data_add_fortunes(d, path, split);
        added = 1;
    } else {
        for (int i = 0; i < n && rc == LC_OK; i++) {
            if (list[i]->d_name[0] == '.') continue;
            char full[4096];
            if (snprintf(full, sizeof full, "%s/%s", path, list[i]->d_name) >= (int)sizeof full) continue;
            struct stat fs;
            if (lstat(full, &fs) != 0 || !S_ISREG(fs.st_mode)) continue;
            rc = lc_data_add_file(d, full, fmt, split);
            added++;
        }
    }
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    if (rc == LC_OK && added == 0)
        rc = lc_error(LC_ERR_FORMAT, "data directory '%s' holds no regular file", path);
    return rc;
}

typedef struct eval_bufs {
    int32_t *ids, *labels, *pos;
} eval_bufs;

/* Held-out loss: the mean cross-entropy over every label-carrying token of the first
 * `max_batches` held-out batches (all when 0), dropout off. Weighting each batch's mean by its
 * label count makes it the mean over tokens, as transformers' evaluation loss over a packed set. */
static lc_status held_out_loss(lc_trainer *tr, const lc_data *d, int max_batches, eval_bufs *b, double *out,
                               int64_t *n_labels) {
    int64_t nb = lc_data_n_eval_batches(d);
    if (max_batches > 0 && nb > max_batches) nb = max_batches;
    double sum = 0.0;
    int64_t count = 0;
    for (int64_t i = 0; i < nb; i++) {
        lc_data_batch_info info;
        lc_status st = lc_data_eval_batch(d, i, b->ids, b->labels, b->pos, &info);
        if (st != LC_OK) return st;
        if (info.n_label_tokens == 0) continue;
        float loss = 0.0f;
        if ((st = lc_trainer_eval(tr, b->ids, b->labels, b->pos, &loss)) != LC_OK) return st;
        sum += (double)loss * (double)info.n_label_tokens;
        count += info.n_label_tokens;
    }
    *out = count > 0 ? sum / (double)count : NAN;
    if (n_labels) *n_labels = count;
    return LC_OK;
}

typedef struct sample_ctx {
    FILE *f;
} sample_ctx;

static bool sample_text(void *user, int32_t id, const char *text, size_t len) {
    (void)id;
    sample_ctx *c = user;
    fwrite(text, 1, len, c->f);
    fflush(c->f);
    return true;
}

/* Greedy continuation of `prompt` with `lora` (NULL: the base model), printed on stdout. */
static lc_status print_sample(const lc_model *model, const lc_lora_set *lora, const lc_tokenizer *tok,
                              const char *prompt, int n_predict, const char *label) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    lc_status st = lc_tokenize(tok, prompt, strlen(prompt), true, false, &ids, &n_ids);
    if (st != LC_OK) return st;
    if (n_ids == 0) {
        free(ids);
        return lc_error(LC_ERR_INVALID_ARG, "--prompt: tokenizes to nothing");
    }
    lc_infer *s = NULL;
    st = lc_infer_new(model, lora, (int)n_ids + n_predict + 1, 0, &s);
    if (st == LC_OK) {
        sample_ctx c = {stdout};
        lc_generate_params gp = {.n_predict = n_predict, .sampler = lc_sampler_params_default(),
                                 .on_text = sample_text, .user = &c};
        gp.sampler.temp = 0.0f;
        printf("%s: %s", label, prompt);
        fflush(stdout);
        st = lc_generate(s, tok, ids, (int)n_ids, &gp, NULL, NULL, NULL);
        printf("\n");
    }
    lc_infer_free(s);
    free(ids);
    return st;
}

static int parse_real(int argc, char **argv, real_opts *o) {
    const char *v = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_opt(argc, argv, &i, "--model", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--model needs a GGUF file");
            o->model = v;
        } else if (cli_opt(argc, argv, &i, "--data", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--data needs a file or a directory");
            o->data = v;
        } else if (cli_opt(argc, argv, &i, "--data-format", &v)) {
            if (!v || lc_data_format_parse(v, &o->data_format) != LC_OK)
                return cli_usage_error(CMD, "--data-format '%s': use auto, text, jsonl or fortune", v ? v : "");
        } else if (cli_opt(argc, argv, &i, "--eval-data", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--eval-data needs a file or a directory");
            o->eval_data = v;
        } else if (cli_opt(argc, argv, &i, "--eval-split", &v)) {
            float f;
            if (!cli_parse_float(CMD, "--eval-split", v, 0.0, 0.9, false, &f)) return CLI_EXIT_USAGE;
            o->eval_split = f;
            o->eval_split_set = true;
        } else if (cli_opt(argc, argv, &i, "--eval-batches", &v)) {
            if (!cli_parse_int(CMD, "--eval-batches", v, 0, 100000000, &o->eval_batches)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--device", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--device needs a value: cpu, opencl[:N], vulkan[:N] or auto");
            o->device = v;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(CMD, "--threads", v, 1, 1024, &o->threads)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--steps", &v)) {
            if (!cli_parse_int(CMD, "--steps", v, 1, 100000000, &o->steps)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--seq-len", &v)) {
            if (!cli_parse_int(CMD, "--seq-len", v, 3, 1 << 20, &o->seq_len)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--batch", &v)) {
            if (!cli_parse_int(CMD, "--batch", v, 1, 1 << 16, &o->batch)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--grad-accum", &v)) {
            if (!cli_parse_int(CMD, "--grad-accum", v, 1, 1 << 16, &o->grad_accum)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--micro-batch", &v)) {
            if (!cli_parse_int(CMD, "--micro-batch", v, 1, 1 << 16, &o->micro)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--rank", &v)) {
            if (!cli_parse_int(CMD, "--rank", v, 1, 65536, &o->rank)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--alpha", &v)) {
            if (!cli_parse_float(CMD, "--alpha", v, 0.0, 1e6, true, &o->alpha)) return CLI_EXIT_USAGE;
        } else if (cli_flag(argc, argv, &i, "--rslora")) {
            o->rslora = true;
        } else if (cli_opt(argc, argv, &i, "--dropout", &v)) {
            if (!cli_parse_float(CMD, "--dropout", v, 0.0, 1.0, false, &o->dropout)) return CLI_EXIT_USAGE;
            if (o->dropout >= 1.0f) return cli_usage_error(CMD, "--dropout '%s' must be below 1", v);
        } else if (cli_opt(argc, argv, &i, "--targets", &v)) {
            if (!v) return cli_usage_error(CMD, "--targets needs a list such as q_proj,v_proj or all");
            o->targets = v;
        } else if (cli_opt(argc, argv, &i, "--lr", &v)) {
            if (!cli_parse_float(CMD, "--lr", v, 0.0, 10.0, true, &o->lr)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--warmup", &v)) {
            if (!cli_parse_int(CMD, "--warmup", v, 0, 100000000, &o->warmup)) return CLI_EXIT_USAGE;
            o->warmup_set = true;
        } else if (cli_opt(argc, argv, &i, "--weight-decay", &v)) {
            if (!cli_parse_float(CMD, "--weight-decay", v, 0.0, 10.0, false, &o->weight_decay)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--max-grad-norm", &v)) {
            if (!cli_parse_float(CMD, "--max-grad-norm", v, 0.0, 1e9, false, &o->max_grad_norm)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--eval-every", &v)) {
            if (!cli_parse_int(CMD, "--eval-every", v, 0, 100000000, &o->eval_every)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (!cli_parse_u64(CMD, "--seed", v, &o->seed)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--out", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--out needs a directory");
            o->out = v;
        } else if (cli_flag(argc, argv, &i, "--checkpointing")) {
            o->checkpointing = true;
        } else if (cli_flag(argc, argv, &i, "--no-save")) {
            o->no_save = true;
        } else if (cli_opt(argc, argv, &i, "--save-every", &v)) {
            if (!cli_parse_int(CMD, "--save-every", v, 0, 100000000, &o->save_every)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--keep-checkpoints", &v)) {
            if (!cli_parse_int(CMD, "--keep-checkpoints", v, 0, 1000000, &o->keep_checkpoints)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--checkpoint-dir", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--checkpoint-dir needs a directory");
            o->checkpoint_dir = v;
        } else if (cli_opt(argc, argv, &i, "--resume", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--resume needs a checkpoint directory");
            o->resume = v;
        } else if (cli_opt(argc, argv, &i, "--init-adapter", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--init-adapter needs an adapter directory or .gguf file");
            o->init_adapter = v;
        } else if (cli_opt(argc, argv, &i, "--log", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--log needs a file name");
            o->log = v;
        } else if (cli_opt(argc, argv, &i, "--log-every", &v)) {
            if (!cli_parse_int(CMD, "--log-every", v, 1, 100000000, &o->log_every)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--prompt", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--prompt needs a text");
            o->prompt = v;
        } else if (cli_opt(argc, argv, &i, "--sample-tokens", &v)) {
            if (!cli_parse_int(CMD, "--sample-tokens", v, 0, 4096, &o->sample_tokens)) return CLI_EXIT_USAGE;
        } else if (a[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s' (options start with --)", a);
        }
    }
    if (!o->model)
        return cli_usage_error(CMD, "no model: add --model FILE.gguf (scripts/get-model.sh fetches Gemma 3 270M), "
                               "or --toy for the built-in toy model");
    if (!o->warmup_set) o->warmup = o->steps / 10;
    if (o->warmup > o->steps) return cli_usage_error(CMD, "--warmup %d is more than --steps %d", o->warmup, o->steps);
    if (o->eval_data && o->eval_split_set)
        return cli_usage_error(CMD, "--eval-data and --eval-split exclude each other");
    if (o->micro > o->batch) return cli_usage_error(CMD, "--micro-batch %d is more than --batch %d", o->micro, o->batch);
    if (o->init_adapter && o->resume)
        return cli_usage_error(CMD, "--init-adapter and --resume exclude each other (a checkpoint already holds the "
                               "adapter; --init-adapter starts a new run from one)");
    if (o->micro > 0 && o->batch % o->micro != 0)
        return cli_usage_error(CMD, "--micro-batch %d must divide --batch %d", o->micro, o->batch);
    return CLI_EXIT_OK;
}


/* ---- checkpoints ------------------------------------------------------------------------------ */

/* Default --checkpoint-dir: "checkpoints" in the parent of --out ("lorac-out/adapter" ->
 * "lorac-out/checkpoints"; "adapter" -> "checkpoints"). */
static void default_checkpoint_dir(const char *out, char *dst, size_t cap) {
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') n--;
    size_t slash = n;
    while (slash > 0 && out[slash - 1] != '/') slash--;
    if (slash == 0) {
        snprintf(dst, cap, "checkpoints");
        return;
    }
    snprintf(dst, cap, "%.*scheckpoints", (int)slash, out);
}

/* What the trainer does not know: the model file's name and size, the data position. */
static void checkpoint_extra(const char *model_path, const lc_data *data, lc_checkpoint_extra *x) {
    memset(x, 0, sizeof *x);
    const char *base = strrchr(model_path, '/');
    x->model_file = base ? base + 1 : model_path;
    struct stat sb;
    if (stat(model_path, &sb) == 0) x->model_bytes = (uint64_t)sb.st_size;
    x->has_cursor = lc_data_get_cursor(data, &x->cursor) == LC_OK;
}

/* Resuming at step k: drop the lines of the JSONL log that belong to steps after k (written by
 * the interrupted run after its last checkpoint), so that appending continues it cleanly. The
 * file is rewritten through "<log>.tmp" and a rename. A missing log is fine. 0 or -1 (errno). */
static int trim_log(const char *path, int k) {
    FILE *in = fopen(path, "r");
    if (!in) return errno == ENOENT ? 0 : -1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return -1;
    }
    char line[4096];
    int dropped = 0, err = 0;
    bool skipping = false; /* the rest of an over-long line being dropped */
    while (fgets(line, sizeof line, in)) {
        const bool whole = strchr(line, '\n') != NULL;
        int step = -1;
        if (!skipping && sscanf(line, "{\"step\": %d", &step) == 1 && step > k) {
            dropped++;
            skipping = !whole;
            continue;
        }
        if (skipping) {
            skipping = !whole;
            continue;
        }
        if (fputs(line, out) == EOF) err = errno;
    }
    if (ferror(in)) err = EIO;
    fclose(in);
    if (fflush(out) != 0 && !err) err = errno;
    if (fclose(out) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        remove(tmp);
        errno = err;
        return -1;
    }
    if (dropped) fprintf(stderr, "log: %s: dropped %d line(s) of steps after %d\n", path, dropped, k);
    return 0;
}

/* --init-adapter: copy lora_A / lora_B of the adapter at `path` (lc_adapter_load: PEFT directory,
 * .gguf, or a checkpoint directory, which holds PEFT files) into the fresh set `lora`. The adapter
 * must have the same modules, r and scaling. Errors: those of lc_adapter_load (LC_ERR_IO,
 * LC_ERR_FORMAT, LC_ERR_SHAPE for another model), LC_ERR_INVALID_ARG naming the first module and
 * field that differ, LC_ERR_NOMEM. */
static lc_status init_from_adapter(const lc_model *model, lc_lora_set *lora, const char *path) {
    lc_lora_set *src = NULL;
    lc_status st = lc_adapter_load(model, path, &src);
    if (st != LC_OK) return st;
    if (src->n_modules != lora->n_modules) {
        st = lc_error(LC_ERR_INVALID_ARG, "the adapter has %d LoRA modules, this run %d (--targets)", src->n_modules,
                      lora->n_modules);
        goto out;
    }
    for (int i = 0; i < lora->n_modules && st == LC_OK; i++) {
        const lc_lora_module *a = &src->modules[i];
        lc_lora_module *b = &lora->modules[i];
        if (strcmp(a->target, b->target) != 0) {
            st = lc_error(LC_ERR_INVALID_ARG, "module %d is %s in the adapter, %s in this run (--targets)", i, a->target,
                          b->target);
        } else if (a->r != b->r) {
            st = lc_error(LC_ERR_INVALID_ARG, "%s: r %d in the adapter, %d in this run (--rank)", a->target, a->r, b->r);
        } else if (a->scaling != b->scaling) {
            st = lc_error(LC_ERR_INVALID_ARG, "%s: scaling %g in the adapter, %g in this run (--alpha, --rslora)",
                          a->target, (double)a->scaling, (double)b->scaling);
        } else {
            const lc_tensor *from[2] = {a->lora_a, a->lora_b};
            lc_tensor *to[2] = {b->lora_a, b->lora_b};
            for (int k = 0; k < 2 && st == LC_OK; k++) {
                const size_t n = lc_nbytes(to[k]);
                void *buf = malloc(n ? n : 1);
                if (!buf) {
                    st = lc_error(LC_ERR_NOMEM, "no host memory for %s", to[k]->name);
                    break;
                }
                st = lc_tensor_get(from[k], buf, 0, n);
                if (st == LC_OK) st = lc_tensor_set(to[k], buf, 0, n);
                free(buf);
            }
        }
    }
out:
    lc_lora_set_free(src);
    return st;
}

/* Write checkpoint-<step> into `root`. On failure say what happened, that the previous checkpoint
 * is intact and how to resume, and return false. */
static bool save_checkpoint(const lc_trainer *tr, const lc_data *data, const real_opts *o, const char *root) {
    const double t0 = cli_now();
    const int step = lc_trainer_steps_done(tr);
    char saved[4200], msg[2048], prev[4200];
    lc_checkpoint_extra x;
    checkpoint_extra(o->model, data, &x);
    lc_status st = LC_OK;
    if (mkdir_p(root) != 0)
        st = lc_error(LC_ERR_IO, "--checkpoint-dir '%s': %s", root, strerror(errno));
    if (st == LC_OK) st = lc_checkpoint_save(tr, root, &x, o->keep_checkpoints, saved, sizeof saved);
    if (st == LC_OK) {
        fprintf(stderr, "checkpoint: %s (%.1f s)\n", saved, cli_now() - t0);
        return true;
    }
    snprintf(msg, sizeof msg, "%s", lc_last_error());
    fprintf(stderr, "lorac %s: the checkpoint after step %d failed: %s\n", CMD, step, msg);
    if (lc_checkpoint_resolve(root, prev, sizeof prev) == LC_OK)
        fprintf(stderr,
                "lorac %s: training stopped; the previous checkpoint %s is intact. Free space (or fix the cause) and "
                "continue with the same options plus --resume %s\n",
                CMD, prev, root);
    else
        fprintf(stderr, "lorac %s: training stopped at step %d; there is no earlier checkpoint in %s\n", CMD, step,
                root);
    return false;
}

/* Create `dir` (and its parents) and prove it writable by creating and removing a file in it, so
 * a bad --out or --checkpoint-dir fails before any training instead of after it. Prints the
 * error naming `opt` and returns false. */
static bool writable_dir(const char *dir, const char *opt) {
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.lorac-write-test-%ld", dir, (long)getpid());
    FILE *f = NULL;
    if (mkdir_p(dir) != 0 || !(f = fopen(probe, "w"))) {
        fprintf(stderr, "lorac %s: %s '%s': %s (checked before training, so no work is lost)\n", CMD, opt, dir,
                strerror(errno));
        return false;
    }
    fclose(f);
    remove(probe);
    return true;
}

/* The first non-finite lora_A / lora_B value of the set: its tensor name in *bad (NULL when all
 * are finite). False when a tensor cannot be read (lc_last_error says why). */
static bool lora_finite(const lc_lora_set *lora, const char **bad) {
    *bad = NULL;
    for (int i = 0; i < lora->n_modules && !*bad; i++) {
        const lc_tensor *ts[2] = {lora->modules[i].lora_a, lora->modules[i].lora_b};
        for (int k = 0; k < 2 && !*bad; k++) {
            const int64_t n = lc_nelements(ts[k]);
            float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
            if (!v || lc_tensor_get_f32(ts[k], v, n) != LC_OK) {
                free(v);
                return false;
            }
            for (int64_t j = 0; j < n; j++)
                if (!isfinite(v[j])) {
                    *bad = ts[k]->name;
                    break;
                }
            free(v);
        }
    }
    return true;
}

static int train_model(int argc, char **argv) {
    real_opts o = real_defaults();
    int rc = parse_real(argc, argv, &o);
    if (rc != CLI_EXIT_OK) return rc;
    uint32_t mask = 0;
    if (lc_module_mask_parse(o.targets, &mask) != LC_OK) return cli_usage_error(CMD, "--targets: %s", lc_last_error());
    if (!o.no_save && !writable_dir(o.out, "--out")) return CLI_EXIT_FAIL;
    if (o.save_every > 0) {
        char root[4096];
        if (o.checkpoint_dir) snprintf(root, sizeof root, "%s", o.checkpoint_dir);
        else default_checkpoint_dir(o.out, root, sizeof root);
        if (!writable_dir(root, "--checkpoint-dir")) return CLI_EXIT_FAIL;
    }
    if (o.save_every > o.steps)
        fprintf(stderr, "lorac %s: note: --save-every %d is more than --steps %d, so no checkpoint will be written\n",
                CMD, o.save_every, o.steps);

    cli_model cm;
    if ((rc = cli_model_open(CMD, o.device, o.threads, o.model, NULL, &cm)) != CLI_EXIT_OK) return rc;
    lc_data *data = NULL;
    lc_lora_set *lora = NULL;
    lc_trainer *tr = NULL;
    FILE *logf = NULL;
    int32_t *ids = NULL, *labels = NULL, *pos = NULL;
    eval_bufs eb = {0};
    rc = CLI_EXIT_FAIL;
    const lc_model_config *mc = &cm.model->cfg;
    if (mc->n_ctx_train > 0 && o.seq_len > mc->n_ctx_train) {
        cli_usage_error(CMD, "--seq-len %d is more than the model's context length %d (%s.context_length): positions "
                        "past it were never trained", o.seq_len, mc->n_ctx_train, lc_arch_name(mc->arch));
        rc = CLI_EXIT_USAGE;
        goto done;
    }

    /* Micro-batch: the most sequences (a divisor of --batch) whose logits fit the budget. */
    int micro = o.micro;
    if (micro == 0) {
        micro = 1;
        for (int m = o.batch; m >= 1; m--)
            if (o.batch % m == 0 &&
                (uint64_t)m * (uint64_t)o.seq_len * (uint64_t)mc->n_vocab * 4u <= TRAIN_MICRO_LOGITS_BYTES) {
                micro = m;
                break;
            }
    }
    const int n_micro = (o.batch / micro) * o.grad_accum;

    const lc_lora_config lcfg = {.r = o.rank, .lora_alpha = o.alpha, .use_rslora = o.rslora, .dropout = o.dropout,
                                 .target_mask = mask, .seed = o.seed};
    if (lc_train_check_lora(cm.model, &lcfg) != LC_OK) {
        fprintf(stderr, "lorac %s: %s\n", CMD, lc_last_error());
        goto done;
    }

    /* Data: --data (default: the fortunes), held out by --eval-split unless --eval-data. */
    lc_data_config dc = lc_data_config_default();
    dc.seq_len = o.seq_len;
    dc.n_seq = micro;
    dc.seed = o.seed;
    dc.split_seed = 42;
    dc.eval_fraction = o.eval_data ? 0.0 : o.eval_split;
    dc.chat_template = lc_chat_template_detect(NULL, cm.tok);
    if (lc_data_new(cm.tok, &dc, &data) != LC_OK) {
        cli_lib_error(CMD, "data");
        goto done;
    }
    const char *train_path = o.data ? o.data : LC_DATA_FORTUNES_DIR;
    const double t_data = cli_now();
    lc_status st = o.data ? add_data_path(data, o.data, o.data_format, LC_DATA_TRAIN)
                          : lc_data_add_fortunes(data, LC_DATA_FORTUNES_DIR, LC_DATA_TRAIN);
    if (st == LC_OK && o.eval_data) st = add_data_path(data, o.eval_data, o.data_format, LC_DATA_EVAL);
    if (st == LC_OK) st = lc_data_finalize(data);
    if (st != LC_OK) {
        fprintf(stderr, "lorac %s: data: %s\n", CMD, lc_last_error());
        if (!o.data) fprintf(stderr, "(the default data is Debian's fortunes; install fortunes-min or pass --data)\n");
        goto done;
    }
    lc_data_stats ds;
    lc_data_get_stats(data, &ds);
    fprintf(stderr,
            "data: %s%s: %lld train / %lld held-out examples, %lld / %lld sequences of %d tokens, %lld / %lld "
            "label tokens (%.1f s)\n",
            train_path, o.eval_data ? " + eval file" : "", (long long)ds.n_examples[0], (long long)ds.n_examples[1],
            (long long)ds.n_sequences[0], (long long)ds.n_sequences[1], o.seq_len, (long long)ds.n_label_tokens[0],
            (long long)ds.n_label_tokens[1], cli_now() - t_data);

    if (lc_lora_set_new(cm.model, &lcfg, &lora) != LC_OK) {
        cli_lib_error(CMD, "creating the LoRA modules");
        goto done;
    }
    if (o.init_adapter) {
        if (init_from_adapter(cm.model, lora, o.init_adapter) != LC_OK) {
            fprintf(stderr, "lorac %s: --init-adapter %s: %s\n", CMD, o.init_adapter, lc_last_error());
            if (lc_last_status() == LC_ERR_INVALID_ARG) rc = CLI_EXIT_USAGE;
            goto done;
        }
        fprintf(stderr, "lora: lora_A and lora_B from %s\n", o.init_adapter);
    }
    lc_train_config tc = lc_train_config_default();
    tc.n_seq = micro;
    tc.seq_len = o.seq_len;
    tc.steps = o.steps;
    tc.warmup_steps = o.warmup;
    tc.lr = o.lr;
    tc.weight_decay = o.weight_decay;
    tc.max_grad_norm = o.max_grad_norm;
    tc.grad_accum = n_micro;
    tc.ignore_index = LC_DATA_IGNORE_INDEX;
    tc.checkpointing = o.checkpointing;
    if (lc_trainer_new(cm.model, lora, &tc, &tr) != LC_OK) {
        cli_lib_error(CMD, "building the training graph");
        goto done;
    }
    fprintf(stderr,
            "lora: r %d, lora_alpha %g (scaling %g%s), dropout %g, targets %s: %d modules, %lld trainable parameters\n",
            o.rank, (double)o.alpha, (double)lc_lora_scaling(o.rank, o.alpha, o.rslora), o.rslora ? ", rsLoRA" : "",
            (double)o.dropout, o.targets, lora->n_modules, (long long)lc_lora_set_n_params(lora));
    fprintf(stderr,
            "train: %d steps of %d x %d sequences of %d tokens (%d micro-batch%s of %d per step), lr %g, warmup %d, "
            "cosine, weight_decay %g, max_grad_norm %g, seed %llu%s\n",
            o.steps, o.grad_accum, o.batch, o.seq_len, n_micro, n_micro == 1 ? "" : "es", micro, (double)o.lr, o.warmup,
            (double)o.weight_decay, (double)o.max_grad_norm, (unsigned long long)o.seed,
            o.checkpointing ? ", gradient checkpointing" : "");
    /* Useful work of a step (products only, cli_flops.c) and the OpenBLAS sgemm rate it is
     * compared with, measured now, in this process, on this machine. */
    const double step_flops = cli_train_step_flops(cm.model, &lcfg, o.batch * o.grad_accum, o.seq_len);
    const double sgemm_gflops = cli_sgemm_gflops(1024, 10);
    fprintf(stderr, "work: %.2f GFLOP of products per token (%.1f TFLOP per step); OpenBLAS sgemm 1024^3: %.1f GFLOP/s\n",
            step_flops / ((double)o.batch * o.grad_accum * o.seq_len) * 1e-9, step_flops * 1e-12, sgemm_gflops);

    /* --resume: the adapter, the moments, the step and the data position of a checkpoint. */
    char ck_root[4096];
    if (o.checkpoint_dir) snprintf(ck_root, sizeof ck_root, "%s", o.checkpoint_dir);
    else default_checkpoint_dir(o.out, ck_root, sizeof ck_root);
    int start = 0;
    if (o.resume) {
        char ck_dir[4200];
        lc_checkpoint_extra want;
        checkpoint_extra(o.model, data, &want);
        lc_data_cursor cur;
        if (lc_checkpoint_resolve(o.resume, ck_dir, sizeof ck_dir) != LC_OK) {
            fprintf(stderr, "lorac %s: --resume %s: %s\n", CMD, o.resume, lc_last_error());
            goto done;
        }
        if (lc_checkpoint_load(tr, ck_dir, &want, &cur) != LC_OK) {
            fprintf(stderr, "lorac %s: --resume %s: %s\n", CMD, o.resume, lc_last_error());
            if (lc_last_status() == LC_ERR_INVALID_ARG) { /* an option differs from the checkpoint's run */
                fprintf(stderr, "(--resume continues the interrupted run with its own options; to train its adapter "
                        "further with new ones, start a new run with --init-adapter %s)\n", ck_dir);
                rc = CLI_EXIT_USAGE;
            }
            goto done;
        }
        if (lc_data_set_cursor(data, &cur) != LC_OK) {
            fprintf(stderr, "lorac %s: --resume %s: data position: %s\n", CMD, ck_dir, lc_last_error());
            goto done;
        }
        start = lc_trainer_steps_done(tr);
        if (start >= o.steps) {
            printf("nothing to do: %s is step %d of %d, the end of that run; its adapter files are in that directory "
                   "(lorac generate --adapter %s). To train further, start a new run with --init-adapter %s\n",
                   ck_dir, start, o.steps, ck_dir, ck_dir);
            rc = CLI_EXIT_OK;
            goto done;
        }
        fprintf(stderr, "resumed from %s: %d of %d steps done; data epoch %lld, sequence %lld\n", ck_dir, start,
                o.steps, (long long)cur.epoch, (long long)cur.position);
        if (o.log && trim_log(o.log, start) != 0) {
            fprintf(stderr, "lorac %s: --log '%s': %s\n", CMD, o.log, strerror(errno));
            goto done;
        }
    }
    if (o.save_every > 0) fprintf(stderr, "checkpoints: every %d steps into %s, keeping %d%s\n", o.save_every,
                                  ck_root, o.keep_checkpoints, o.keep_checkpoints == 0 ? " (all)" : "");

    if (o.log) {
        logf = fopen(o.log, o.resume ? "a" : "w");
        if (!logf) {
            fprintf(stderr, "lorac %s: --log '%s': %s\n", CMD, o.log, strerror(errno));
            goto done;
        }
    }
    const int64_t step_tok = (int64_t)n_micro * micro * o.seq_len;
    const int64_t micro_tok = (int64_t)micro * o.seq_len;
    ids = malloc((size_t)step_tok * sizeof *ids);
    labels = malloc((size_t)step_tok * sizeof *labels);
    pos = malloc((size_t)step_tok * sizeof *pos);
    eb.ids = malloc((size_t)micro_tok * sizeof *ids);
    eb.labels = malloc((size_t)micro_tok * sizeof *labels);
    eb.pos = malloc((size_t)micro_tok * sizeof *pos);
    if (!ids || !labels || !pos || !eb.ids || !eb.labels || !eb.pos) {
        fprintf(stderr, "lorac %s: out of host memory\n", CMD);
        goto done;
    }

    const bool have_eval = lc_data_n_eval_batches(data) > 0;
    if (!have_eval && o.eval_every > 0)
        fprintf(stderr, "lorac %s: note: --eval-every %d has no effect: there is no held-out data (--eval-split 0 and "
                "no --eval-data)\n", CMD, o.eval_every);
    double eval_before = NAN, eval_after = NAN;
    if (have_eval) {
        int64_t nl = 0;
        const double t0 = cli_now();
        if (held_out_loss(tr, data, o.eval_batches, &eb, &eval_before, &nl) != LC_OK) {
            cli_lib_error(CMD, "held-out loss");
            goto done;
        }
        if (start > 0)
            fprintf(stderr, "held-out loss at step %d (resumed): %.4f over %lld tokens (%.1f s)\n", start, eval_before,
                    (long long)nl, cli_now() - t0);
        else
            fprintf(stderr, "held-out loss before training: %.4f over %lld tokens (%.1f s)\n", eval_before,
                    (long long)nl, cli_now() - t0);
        if (logf && start == 0) {
            fprintf(logf, "{\"step\": 0, \"eval_loss\": %.6f}\n", eval_before);
            fflush(logf);
        }
    }

    double t_sum = 0.0, t_steady = 0.0;
    int64_t tok_steady = 0;
    float first_loss = NAN, last_loss = NAN;
    const int w = snprintf(NULL, 0, "%d", o.steps);
    for (int s = start; s < o.steps; s++) {
        for (int m = 0; m < n_micro; m++) {
            const int64_t off = (int64_t)m * micro_tok;
            if (lc_data_next_batch(data, ids + off, labels + off, pos + off, NULL) != LC_OK) {
                cli_lib_error(CMD, "reading a batch");
                goto done;
            }
        }
        lc_train_stats ts;
        if (lc_trainer_step(tr, ids, labels, pos, &ts) != LC_OK) {
            cli_lib_error(CMD, "training step");
            goto done;
        }
        if (!isfinite(ts.loss) || !isfinite(ts.grad_norm)) {
            fprintf(stderr,
                    "lorac %s: step %d: loss %g, grad_norm %g: training diverged (not finite); stopping without "
                    "saving. Try a lower --lr or --max-grad-norm 1%s\n",
                    CMD, ts.step, (double)ts.loss, (double)ts.grad_norm,
                    o.save_every > 0 ? "; earlier checkpoints are intact" : "");
            goto done;
        }
        if (s == start) first_loss = ts.loss;
        last_loss = ts.loss;
        t_sum += ts.seconds;
        if (s > start) {
            t_steady += ts.seconds;
            tok_steady += step_tok;
        }
        const double tps = ts.seconds > 0.0 ? (double)step_tok / ts.seconds : 0.0;
        const double gflops = ts.seconds > 0.0 ? step_flops / ts.seconds * 1e-9 : 0.0;
        const double mean_t = s > start ? t_steady / (s - start) : t_sum;
        double eval_loss = NAN;
        if (have_eval && o.eval_every > 0 && ts.step % o.eval_every == 0 && ts.step < o.steps) {
            if (held_out_loss(tr, data, o.eval_batches, &eb, &eval_loss, NULL) != LC_OK) {
                cli_lib_error(CMD, "held-out loss");
                goto done;
            }
        }
        if (ts.step == o.steps && have_eval) {
            if (held_out_loss(tr, data, o.eval_batches, &eb, &eval_after, NULL) != LC_OK) {
                cli_lib_error(CMD, "held-out loss");
                goto done;
            }
            eval_loss = eval_after;
        }
        const uint64_t dev_peak = lc_device_peak_allocated(cm.dev), rss = peak_rss_bytes();
        if (ts.step == 1 || ts.step % o.log_every == 0 || ts.step == o.steps || !isnan(eval_loss)) {
            char eta[32], b1[32];
            fprintf(stderr, "step %*d/%d  loss %.4f  lr %.3e  grad_norm %.4f  tok/s %.0f  %.2fx sgemm  eta %s  rss %s", w,
                    ts.step, o.steps, (double)ts.loss, (double)ts.lr, (double)ts.grad_norm, tps,
                    sgemm_gflops > 0.0 ? gflops / sgemm_gflops : 0.0,
                    cli_format_duration(eta, sizeof eta, mean_t * (o.steps - ts.step)),
                    cli_format_bytes(b1, sizeof b1, rss));
            if (!isnan(eval_loss)) fprintf(stderr, "  eval_loss %.4f", eval_loss);
            fprintf(stderr, "\n");
        }
        if (logf) {
            fprintf(logf,
                    "{\"step\": %d, \"loss\": %.6f, \"lr\": %.6e, \"grad_norm\": %.6f, \"tokens_per_s\": %.1f, "
                    "\"label_tokens\": %lld, \"seconds\": %.4f, \"useful_gflops_per_s\": %.2f, \"sgemm_gflops_per_s\": %.2f",
                    ts.step, (double)ts.loss, (double)ts.lr, (double)ts.grad_norm, tps, (long long)ts.n_tokens,
                    ts.seconds, gflops, sgemm_gflops);
            if (!isnan(eval_loss)) fprintf(logf, ", \"eval_loss\": %.6f", eval_loss);
            fprintf(logf, ", \"device_peak_bytes\": %llu, \"peak_rss_bytes\": %llu}\n", (unsigned long long)dev_peak,
                    (unsigned long long)rss);
            fflush(logf);
        }
        if (o.save_every > 0 && ts.step % o.save_every == 0 && !save_checkpoint(tr, data, &o, ck_root)) goto done;
    }
    {
        char dur[32], b1[32], b2[32];
        char resumed[48] = "";
        if (start > 0) snprintf(resumed, sizeof resumed, " (resumed after step %d)", start);
        const double steady_tps = tok_steady > 0 && t_steady > 0.0 ? (double)tok_steady / t_steady
                                  : t_sum > 0.0                    ? (double)step_tok / t_sum
                                                                   : 0.0;
        const double useful = steady_tps * step_flops / (double)step_tok * 1e-9;
        /* Timed again now: on a busy machine the start's figure can be low, and the ratio is
         * taken to the better of the two. */
        const double sgemm_end = cli_sgemm_gflops(1024, 10), sgemm_best = sgemm_end > sgemm_gflops ? sgemm_end : sgemm_gflops;
        printf("done: %d steps%s in %s; training loss %.4f -> %.4f; steady %.0f tokens/s; peak RSS %s, device peak "
               "%s\n",
               o.steps - start, resumed, cli_format_duration(dur, sizeof dur, t_sum), (double)first_loss,
               (double)last_loss, steady_tps, cli_format_bytes(b1, sizeof b1, peak_rss_bytes()),
               cli_format_bytes(b2, sizeof b2, lc_device_peak_allocated(cm.dev)));
        printf("useful work: %.1f GFLOP/s of products = %.2fx OpenBLAS sgemm (%.1f GFLOP/s at 1024^3, the better of "
               "%.1f at start and %.1f at the end%s)\n",
               useful, sgemm_best > 0.0 ? useful / sgemm_best : 0.0, sgemm_best, sgemm_gflops, sgemm_end,
               fabs(sgemm_end - sgemm_gflops) > 0.2 * sgemm_best ? "; they differ: the machine was busy, so the ratio is rough" : "");
        if (have_eval)
            printf("held-out loss %s: %.4f, after: %.4f (%+.1f%%)\n", start > 0 ? "at resume" : "before", eval_before,
                   eval_after,
                   100.0 * (eval_after - eval_before) / eval_before);
        else
            printf("held-out loss: no held-out data (--eval-split 0 without --eval-data)\n");
        fflush(stdout);
    }

    const char *bad = NULL;
    if (!lora_finite(lora, &bad)) {
        cli_lib_error(CMD, "reading the LoRA weights");
        goto done;
    }
    if (bad) {
        fprintf(stderr, "lorac %s: %s holds a value that is not finite after training; the adapter is not saved\n", CMD,
                bad);
        goto done;
    }
    if (!o.no_save) {
        char gguf_path[4200];
        snprintf(gguf_path, sizeof gguf_path, "%s/adapter.gguf", o.out);
        lc_adapter_meta_buf mb;
        lc_adapter_meta meta;
        lc_adapter_meta_from_model(o.model, &mb, &meta);
        if (mkdir_p(o.out) != 0) {
            fprintf(stderr, "lorac %s: --out '%s': %s\n", CMD, o.out, strerror(errno));
            goto done;
        }
        if (lc_adapter_save_peft(cm.model, lora, o.out, &meta) != LC_OK) {
            cli_lib_error(CMD, "saving the PEFT adapter");
            goto done;
        }
        if (lc_adapter_save_gguf(cm.model, lora, gguf_path, &meta) != LC_OK) {
            cli_lib_error(CMD, "saving the GGUF adapter");
            goto done;
        }
        printf("saved: %s/ (PEFT: adapter_config.json, adapter_model.safetensors) and %s (llama.cpp)\n", o.out,
               gguf_path);
        fflush(stdout);
    }
    if (o.sample_tokens > 0) {
        if (print_sample(cm.model, NULL, cm.tok, o.prompt, o.sample_tokens, "sample without adapter") != LC_OK ||
            print_sample(cm.model, lora, cm.tok, o.prompt, o.sample_tokens, "sample with adapter") != LC_OK)
            fprintf(stderr, "lorac %s: sample skipped: %s\n", CMD, lc_last_error());
    }
    rc = CLI_EXIT_OK;
done:
    if (logf) fclose(logf);
    free(ids);
    free(labels);
    free(pos);
    free(eb.ids);
    free(eb.labels);
    free(eb.pos);
    lc_trainer_free(tr);
    lc_lora_set_free(lora);
    lc_data_free(data);
    cli_model_close(&cm);
    return rc;
}
