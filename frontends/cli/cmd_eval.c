/* lorac eval — perplexity of a GGUF model (optionally with a LoRA adapter) on a plain text file,
 * with the windowing protocol of lc_eval (lorac/infer.h) that tests/tools/make_reference_logits.py
 * uses for its reference: the file, read as it is, is tokenized without BOS and with special-token
 * parsing off; the token stream is cut into chunks of ctx-1 tokens; each window is BOS + chunk
 * from an empty cache; every chunk token is scored once; the result is the mean over all scored
 * tokens.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lorac/data.h"
#include "lorac/infer.h"
#include "lorac/lorac.h"
#include "lorac/model.h"

static const char *CMD = "eval";

void cli_eval_help(void) {
    printf("Usage: lorac eval --model MODEL.gguf --data FILE [options]\n\n"
           "Prints the mean loss (negative log-likelihood per token, nats) and the perplexity exp(loss) of the\n"
           "model on the text of FILE, and the evaluation speed. Protocol: FILE is read as it is (UTF-8) and\n"
           "tokenized without BOS and without special-token parsing; the tokens are cut into consecutive\n"
           "chunks of ctx-1 (the last may be shorter); each window is BOS + chunk, decoded from an empty KV\n"
           "cache; every chunk token is predicted from the tokens before it in its window (the first from the\n"
           "BOS alone), so each token is scored once; the loss is the mean over all scored tokens. This is\n"
           "the protocol of tests/tools/make_reference_logits.py (gemma3_ref_eval.txt: ctx 256).\n\n"
           "Options:\n"
           "  --model PATH        GGUF model\n"
           "  --adapter PATH      LoRA adapter: a PEFT directory or a llama.cpp GGUF LoRA file\n"
           "  --data FILE         UTF-8 plain text to evaluate on (checked as train checks its data: an empty\n"
           "                      file, a NUL byte or invalid UTF-8 is refused, naming the byte offset and line)\n"
           "  --ctx N             window length in tokens including the BOS, >= 2 (default 512, at most the\n"
           "                      model's context)\n"
           "  --max-tokens N      evaluate only the first N tokens of the file (default: all)\n"
           "  --device SPEC       cpu | opencl[:N] | vulkan[:N] | auto (default: $LORAC_DEVICE, else auto)\n"
           "  --threads N         CPU threads (sets LORAC_THREADS; default: all cores)\n"
           "  -h, --help          this help\n\n"
           "A progress line (tokens, tokens/s, time left) goes to stderr after each window; the result goes to\n"
           "stdout: mean loss, perplexity, scored tokens, windows and tokens/s.\n");
}

typedef struct progress {
    double last_print;
} progress;

static bool on_progress(void *user, int64_t done, int64_t total, double seconds) {
    progress *p = user;
    if (done < total && seconds - p->last_print < 2.0) return true;
    p->last_print = seconds;
    const double tps = seconds > 0 ? (double)done / seconds : 0.0;
    const double eta = tps > 0 ? (double)(total - done) / tps : 0.0;
    char e[32];
    fprintf(stderr, "eval: %lld/%lld tokens (%.0f%%), %.1f tokens/s, %s left\n", (long long)done, (long long)total,
            100.0 * (double)done / (double)total, tps, cli_format_duration(e, sizeof e, eta));
    return true;
}

int cli_eval(int argc, char **argv) {
    const char *device = NULL, *model = NULL, *adapter = NULL, *data = NULL, *v = NULL;
    int threads = 0, n_ctx = 0;
    long long max_tokens = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_eval_help();
            return CLI_EXIT_OK;
        } else if (cli_opt(argc, argv, &i, "--model", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--model needs a path to a GGUF file");
            model = v;
        } else if (cli_opt(argc, argv, &i, "--adapter", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--adapter needs a path (PEFT directory or GGUF file)");
            adapter = v;
        } else if (cli_opt(argc, argv, &i, "--data", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--data needs a path to a text file");
            data = v;
        } else if (cli_opt(argc, argv, &i, "--ctx", &v)) {
            if (!cli_parse_int(CMD, "--ctx", v, 2, 1 << 24, &n_ctx)) return CLI_EXIT_USAGE;
        } else if (cli_opt(argc, argv, &i, "--max-tokens", &v)) {
            int mt = 0;
            if (!cli_parse_int(CMD, "--max-tokens", v, 1, 2147483647, &mt)) return CLI_EXIT_USAGE;
            max_tokens = mt;
        } else if (cli_opt(argc, argv, &i, "--device", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--device needs a value: cpu, opencl[:N], vulkan[:N] or auto");
            device = v;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(CMD, "--threads", v, 1, 1024, &threads)) return CLI_EXIT_USAGE;
        } else if (a[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s' (the text file goes after --data)", a);
        }
    }
    if (!model) return cli_usage_error(CMD, "--model is required");
    if (!data) return cli_usage_error(CMD, "--data is required");

    /* The same reading and byte checks as train's data loader (lorac/data.h): the reason of a
     * failure (missing, a directory, binary, invalid UTF-8 with its byte offset and line) is named. */
    char *text = NULL;
    size_t len = 0;
    if (lc_data_read_file(data, &text, &len) != LC_OK || lc_data_check_bytes(data, text, len) != LC_OK) {
        free(text);
        return cli_lib_error(CMD, "cannot use the data file");
    }

    cli_model cm;
    int rc = cli_model_open(CMD, device, threads, model, adapter, &cm);
    if (rc != CLI_EXIT_OK) {
        free(text);
        return rc;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    lc_infer *s = NULL;
    const int32_t bos = lc_tokenizer_bos(cm.tok);
    const int n_train = cm.model->cfg.n_ctx_train;
    if (n_ctx == 0) n_ctx = n_train > 0 && n_train < 512 ? n_train : 512;
    if (n_train > 0 && n_ctx > n_train)
        fprintf(stderr, "lorac %s: warning: --ctx %d is longer than the model's context %d\n", CMD, n_ctx, n_train);
    if (lc_tokenize(cm.tok, text, len, false, false, &ids, &n_ids) != LC_OK) {
        rc = cli_lib_error(CMD, "tokenizing the data");
        goto done;
    }
    const size_t n_all = n_ids;
    const bool capped = max_tokens > 0 && (size_t)max_tokens < n_ids;
    if (capped) n_ids = (size_t)max_tokens;
    if (n_ids == 0) {
        fprintf(stderr, "lorac %s: '%s' has no tokens to evaluate\n", CMD, data);
        rc = CLI_EXIT_FAIL;
        goto done;
    }
    if (lc_infer_new(cm.model, cm.lora, n_ctx, 0, &s) != LC_OK) {
        rc = cli_lib_error(CMD, "creating the KV cache");
        goto done;
    }
    if (capped)
        fprintf(stderr, "data: %s, %zu bytes, the first %zu of its %zu tokens (--max-tokens); windows of %d tokens "
                "(BOS + %d)\n", data, len, n_ids, n_all, n_ctx, bos == LC_TOKEN_NULL ? n_ctx : n_ctx - 1);
    else
        fprintf(stderr, "data: %s, %zu bytes, %zu tokens; windows of %d tokens (BOS + %d)\n", data, len, n_ids, n_ctx,
                bos == LC_TOKEN_NULL ? n_ctx : n_ctx - 1);
    progress pr = {.last_print = 0.0};
    lc_eval_params ep = {.n_ctx = n_ctx, .bos = bos, .progress = on_progress, .user = &pr};
    lc_eval_result r;
    if (lc_eval(s, ids, (int64_t)n_ids, &ep, &r) != LC_OK) {
        rc = cli_lib_error(CMD, "evaluating");
        goto done;
    }
    char dur[32];
    printf("mean loss %.6f  perplexity %.4f  tokens %lld  windows %d  %.1f tokens/s (%s)\n", r.mean_nll, r.ppl,
           (long long)r.n_scored, r.n_windows, r.seconds > 0 ? (double)r.n_scored / r.seconds : 0.0,
           cli_format_duration(dur, sizeof dur, r.seconds));
done:
    lc_infer_free(s);
    free(ids);
    free(text);
    cli_model_close(&cm);
    return rc;
}
