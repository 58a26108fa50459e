/* lorac generate — continue a prompt with a GGUF model (optionally with a LoRA adapter): the
 * prompt is decoded in one step into the KV cache, then one token per step, greedy at --temp 0,
 * else sampled (temperature, top-k, top-p); text streams to stdout as it is produced and a stats
 * line goes to stderr (lc_generate in lorac/infer.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "lorac/infer.h"
#include "lorac/lorac.h"
#include "lorac/model.h"

static const char *CMD = "generate";

void cli_generate_help(void) {
    const lc_sampler_params d = lc_sampler_params_default();
    printf("Usage: lorac generate --model MODEL.gguf --prompt TEXT [options]\n\n"
           "Continues TEXT with the model and prints the new text to stdout as it is produced; a line with the\n"
           "prompt size, prefill and generation speed goes to stderr. The prompt gets the model's BOS and\n"
           "special tokens written in it (e.g. <start_of_turn>) are recognised. Generation stops after -n\n"
           "tokens, at the end-of-sequence token or an end-of-turn marker, or when the context is full.\n\n"
           "Options:\n"
           "  --model PATH        GGUF model (architectures llama, qwen2, gemma3; SentencePiece vocabulary)\n"
           "  --adapter PATH      LoRA adapter: a PEFT directory or a llama.cpp GGUF LoRA file\n"
           "  --prompt TEXT       the prompt (or --prompt-file PATH)\n"
           "  -n, --n-predict N   most tokens to generate (default 128)\n"
           "  --temp T            temperature; 0 = greedy (default %g)\n"
           "  --top-p P           nucleus sampling, in (0, 1]; 1 = off (default %g)\n"
           "  --top-k K           keep the K most likely tokens; 0 = off (default %d)\n"
           "  --seed S            sampling seed (default: from the clock, printed on stderr)\n"
           "  --ctx N             KV cache size in tokens (default: prompt + n, at most the model's context)\n"
           "  --echo              print the prompt before the continuation\n"
           "  --device SPEC       cpu | opencl[:N] | vulkan[:N] | auto (default: $LORAC_DEVICE, else auto)\n"
           "  --threads N         CPU threads (sets LORAC_THREADS; default: all cores)\n"
           "  -h, --help          this help\n\n"
           "Example: lorac generate --model gemma-3-270m-q4_k_m.gguf --prompt \"The capital of France is\" -n 8 --temp 0\n",
           (double)d.temp, (double)d.top_p, d.top_k);
}

static bool print_text(void *user, int32_t id, const char *text, size_t len) {
    (void)user;
    (void)id;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    const bool err = ferror(f) != 0;
    fclose(f);
    if (!buf || err) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int cli_generate(int argc, char **argv) {
    const char *device = NULL, *model = NULL, *adapter = NULL, *prompt = NULL, *prompt_file = NULL, *v = NULL;
    int threads = 0, n_predict = 128, n_ctx = 0;
    bool echo = false, seed_set = false;
    lc_sampler_params sp = lc_sampler_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_generate_help();
            return CLI_EXIT_OK;
        } else if (cli_flag(argc, argv, &i, "--echo")) {
            echo = true;
        } else if (cli_opt(argc, argv, &i, "--model", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--model needs a path to a GGUF file");
            model = v;
        } else if (cli_opt(argc, argv, &i, "--adapter", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--adapter needs a path (PEFT directory or GGUF file)");
            adapter = v;
        } else if (cli_opt(argc, argv, &i, "--prompt", &v)) {
            if (!v) return cli_usage_error(CMD, "--prompt needs a text");
            prompt = v;
        } else if (cli_opt(argc, argv, &i, "--prompt-file", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--prompt-file needs a path");
            prompt_file = v;
        } else if (cli_opt(argc, argv, &i, "-n", &v) || cli_opt(argc, argv, &i, "--n-predict", &v)) {
            if (!cli_parse_int(CMD, "-n", v, 0, 10000000, &n_predict)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--temp", &v)) {
            if (!cli_parse_float(CMD, "--temp", v, 0.0, 100.0, false, &sp.temp)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--top-p", &v)) {
            if (!cli_parse_float(CMD, "--top-p", v, 0.0, 1.0, true, &sp.top_p)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--top-k", &v)) {
            if (!cli_parse_int(CMD, "--top-k", v, 0, 100000000, &sp.top_k)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (!cli_parse_u64(CMD, "--seed", v, &sp.seed)) return CLI_EXIT_USAGE;
            seed_set = true;
        } else if (cli_opt(argc, argv, &i, "--ctx", &v)) {
            if (!cli_parse_int(CMD, "--ctx", v, 1, 1 << 24, &n_ctx)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--device", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--device needs a value: cpu, opencl[:N], vulkan[:N] or auto");
            device = v;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(CMD, "--threads", v, 1, 1024, &threads)) return CLI_EXIT_USAGE;
        } else if (a[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s' (the prompt goes after --prompt)", a);
        }
    }
    if (!model) return cli_usage_error(CMD, "--model is required");
    if (!prompt && !prompt_file) return cli_usage_error(CMD, "--prompt (or --prompt-file) is required");
    if (prompt && prompt_file) return cli_usage_error(CMD, "give either --prompt or --prompt-file, not both");
    char *file_text = NULL;
    size_t prompt_len = prompt ? strlen(prompt) : 0;
    if (prompt_file) {
        if (!(file_text = read_file(prompt_file, &prompt_len))) {
            fprintf(stderr, "lorac %s: cannot read the prompt file '%s'\n", CMD, prompt_file);
            return CLI_EXIT_FAIL;
        }
        prompt = file_text;
    }
    if (!seed_set) sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);

    cli_model cm;
    int rc = cli_model_open(CMD, device, threads, model, adapter, &cm);
    if (rc != CLI_EXIT_OK) {
        free(file_text);
        return rc;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    lc_infer *s = NULL;
    int32_t *out = NULL;
    if (lc_tokenize(cm.tok, prompt, prompt_len, true, true, &ids, &n_ids) != LC_OK) {
        rc = cli_lib_error(CMD, "tokenizing the prompt");
        goto done;
    }
    if (n_ids == 0) {
        fprintf(stderr, "lorac %s: the prompt is empty and the model adds no BOS token; nothing to continue\n", CMD);
        rc = CLI_EXIT_FAIL;
        goto done;
    }
    const int n_train = cm.model->cfg.n_ctx_train;
    if (n_ctx == 0) {
        long long want = (long long)n_ids + n_predict;
        if (n_train > 0 && want > n_train) want = n_train;
        n_ctx = (int)(want > 0 ? want : 1);
    }
    if ((size_t)n_ctx < n_ids) {
        fprintf(stderr, "lorac %s: the prompt has %zu tokens, more than the context of %d (--ctx)\n", CMD, n_ids,
                n_ctx);
        rc = CLI_EXIT_FAIL;
        goto done;
    }
    if (lc_infer_new(cm.model, cm.lora, n_ctx, 0, &s) != LC_OK) {
        rc = cli_lib_error(CMD, "creating the KV cache");
        goto done;
    }
    if (sp.temp > 0.0f)
        fprintf(stderr, "sampling: temp %g, top_p %g, top_k %d, seed %llu\n", (double)sp.temp, (double)sp.top_p,
                sp.top_k, (unsigned long long)sp.seed);
    else
        fprintf(stderr, "sampling: greedy (temp 0)\n");
    if (echo) {
        fwrite(prompt, 1, prompt_len, stdout);
        fflush(stdout);
    }
    lc_generate_params gp = {.n_predict = n_predict, .sampler = sp, .on_text = print_text};
    lc_generate_stats st;
    int n_out = 0;
    if (lc_generate(s, cm.tok, ids, (int)n_ids, &gp, &out, &n_out, &st) != LC_OK) {
        printf("\n");
        rc = cli_lib_error(CMD, "generating");
        goto done;
    }
    printf("\n");
    fflush(stdout);
    const double pf = st.prefill_seconds > 0 ? st.n_prompt / st.prefill_seconds : 0.0;
    const double gen = st.decode_seconds > 0 ? st.n_generated / st.decode_seconds : 0.0;
    fprintf(stderr,
            "lorac generate: prompt %d tokens, prefill %.1f tokens/s (%.2f s); generated %d tokens, %.2f tokens/s "
            "(%.2f s)%s\n",
            st.n_prompt, pf, st.prefill_seconds, st.n_generated, gen, st.decode_seconds,
            st.hit_stop ? "; stopped at an end-of-sequence token" : st.hit_ctx ? "; stopped: context full" : "");
done:
    free(out);
    lc_infer_free(s);
    free(ids);
    free(file_text);
    cli_model_close(&cm);
    return rc;
}
