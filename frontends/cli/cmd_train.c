/* lorac train — train a LoRA adapter. For now on the built-in toy model (--toy): a random,
 * frozen two-layer transformer learns a fixed token sequence through LoRA on every projection
 * (lc_train_toy in lorac/train.h). Real models (--model, --data) come with the GGUF issue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lorac/lorac.h"
#include "lorac/model.h"
#include "lorac/train.h"

static const char *CMD = "train";

void cli_train_help(void) {
    const lc_toy_options d = lc_toy_options_default();
    printf("Usage: lorac train --toy [options]\n\n"
           "Trains a LoRA adapter. Until real models land (--model, --data), the only job is --toy: a random,\n"
           "frozen two-layer transformer (vocab 64, n_embd 64, 4 heads / 2 kv heads) learns to reproduce a\n"
           "fixed pseudo-random token sequence through LoRA on q,k,v,o,gate,up,down. The loss should fall by\n"
           "more than 90%% within 200 steps.\n\n"
           "Options:\n"
           "  --toy               train on the built-in toy model (required for now)\n"
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
           "  --log-every N       progress line every N steps (default 10)\n"
           "  -h, --help          this help\n\n"
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

int cli_train(int argc, char **argv) {
    lc_toy_options opt = lc_toy_options_default();
    bool toy = false, warmup_set = false;
    const char *device = NULL, *model = NULL, *v = NULL;
    int log_every = 10, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_train_help();
            return CLI_EXIT_OK;
        } else if (cli_flag(argc, argv, &i, "--toy")) {
            toy = true;
        } else if (cli_opt(argc, argv, &i, "--device", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--device needs a value: cpu, opencl[:N], vulkan[:N] or auto");
            device = v;
        } else if (cli_opt(argc, argv, &i, "--model", &v)) {
            model = v ? v : "";
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
    if (model)
        return cli_usage_error(CMD, "--model is not available yet (loading GGUF / safetensors models comes in a later "
                               "release); use --toy to train LoRA on the built-in toy model");
    if (!toy)
        return cli_usage_error(CMD, "nothing to train: add --toy (the built-in toy model; real models come later)");
    if (!warmup_set && opt.warmup_steps > opt.steps / 10) opt.warmup_steps = opt.steps / 10;
    if (opt.warmup_steps > opt.steps)
        return cli_usage_error(CMD, "--warmup %d is more than --steps %d", opt.warmup_steps, opt.steps);
    if (threads > 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", threads);
        setenv("LORAC_THREADS", buf, 1);
    }

    lc_device *dev = NULL;
    if (lc_device_open(device, &dev) != LC_OK) {
        fprintf(stderr, "lorac train: cannot open device '%s': %s\nRun 'lorac devices' to see what is available.\n",
                device ? device : (getenv("LORAC_DEVICE") ? getenv("LORAC_DEVICE") : "auto"), lc_last_error());
        return CLI_EXIT_FAIL;
    }
    const lc_device_info *di = lc_device_get_info(dev);
    const lc_model_config mc = lc_model_config_default(LC_ARCH_TOY);
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
