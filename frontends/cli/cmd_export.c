/* lorac export — convert a LoRA adapter between the Hugging Face PEFT directory format and the
 * llama.cpp GGUF LoRA format (lorac/adapter.h), and, as a debugging aid for cross-checks with other
 * tools (tests/tools/check_peft_logits.py), dump the logits of a prompt (--format logits).
 *
 * Logits file (--format logits): a NumPy .npy file, format version 1.0 (numpy.lib.format: magic
 * "\x93NUMPY", version 1 0, u16 little-endian header length, a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (T, V), } padded with spaces and ended by '\n'
 * so that the data starts at a multiple of 64 bytes), then T*V little-endian float32: row t holds
 * the logits after token t of the prompt. The token ids are printed on stdout ("ids: 2 9259 ...").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lorac/adapter.h"
#include "lorac/infer.h"
#include "lorac/lorac.h"
#include "lorac/model.h"
#include "lorac/tokenizer.h"

static const char *CMD = "export";

void cli_export_help(void) {
    printf("Usage: lorac export --model BASE.gguf --adapter ADAPTER --format gguf|peft --out PATH [options]\n"
           "       lorac export --model BASE.gguf [--adapter ADAPTER] --format logits --prompt TEXT --out F.npy\n\n"
           "Converts a LoRA adapter (a PEFT directory or a llama.cpp GGUF LoRA file; the base model is needed to\n"
           "check the shapes and, for Llama models, the q/k row order) into:\n"
           "  gguf    a llama.cpp GGUF LoRA adapter file (llama.cpp --lora, llama-cpp-python lora_path)\n"
           "  peft    a Hugging Face PEFT directory (adapter_config.json + adapter_model.safetensors;\n"
           "          PeftModel.from_pretrained)\n"
           "Both are written atomically. --out must not be the base model, the adapter or one of its files\n"
           "(compared by device and inode: also through ./, .., and links).\n"
           "Debugging aid: --format logits writes the F32 logits of every token of --prompt (tokenized\n"
           "with BOS) under the model and adapter as a NumPy .npy array [tokens, vocab] and prints the\n"
           "token ids, for comparisons with other implementations.\n\n"
           "Options:\n"
           "  --model PATH        base GGUF model\n"
           "  --adapter PATH      LoRA adapter to convert (optional for --format logits)\n"
           "  --format F          gguf, peft or logits\n"
           "  --out PATH          file (gguf, logits) or directory (peft) to write\n"
           "  --name TEXT         general.name of a GGUF adapter (default: the base model's general.name, else\n"
           "                      its file name, + \" LoRA\"; base_model_name_or_path follows\n"
           "                      lc_adapter_meta_from_model: the Hugging Face id the GGUF was converted from\n"
           "                      when its metadata has one, else its general.name, else its file name)\n"
           "  --prompt TEXT       prompt for --format logits\n"
           "  --device SPEC       cpu | opencl[:N] | vulkan[:N] | auto (default: $LORAC_DEVICE, else auto)\n"
           "  --threads N         CPU threads (sets LORAC_THREADS; default: all cores)\n"
           "  -h, --help          this help\n");
}

/* Write a float32 [rows, cols] .npy file (see the top of this file). */
static int write_npy(const char *path, const float *data, int64_t rows, int64_t cols) {
    char hdr[256];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                      (long long)rows, (long long)cols);
    const int pre = 10; /* magic 6 + version 2 + length 2 */
    int total = pre + hl + 1;
    const int padded = (total + 63) / 64 * 64;
    while (hl < padded - pre - 1) hdr[hl++] = ' ';
    hdr[hl++] = '\n';
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "lorac %s: cannot create '%s'\n", CMD, tmp);
        return CLI_EXIT_FAIL;
    }
    const unsigned char pre_bytes[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff),
                                         (unsigned char)(hl >> 8)};
    bool ok = fwrite(pre_bytes, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)hl, f) == (size_t)hl &&
              fwrite(data, sizeof(float), (size_t)(rows * cols), f) == (size_t)(rows * cols);
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        fprintf(stderr, "lorac %s: cannot write '%s'\n", CMD, path);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static int dump_logits(const char *device, int threads, const char *model, const char *adapter, const char *prompt,
                       const char *out) {
    cli_model cm;
    int rc = cli_model_open(CMD, device, threads, model, adapter, &cm);
    if (rc != CLI_EXIT_OK) return rc;
    int32_t *ids = NULL;
    size_t n = 0;
    float *logits = NULL;
    lc_infer *s = NULL;
    if (lc_tokenize(cm.tok, prompt, strlen(prompt), true, true, &ids, &n) != LC_OK) {
        rc = cli_lib_error(CMD, "tokenizing the prompt");
        goto done;
    }
    if (n == 0) {
        fprintf(stderr, "lorac %s: the prompt has no tokens\n", CMD);
        rc = CLI_EXIT_FAIL;
        goto done;
    }
    const int64_t V = cm.model->cfg.n_vocab;
    logits = malloc((size_t)n * (size_t)V * sizeof(float));
    if (!logits) {
        fprintf(stderr, "lorac %s: out of memory for %zu x %lld logits\n", CMD, n, (long long)V);
        rc = CLI_EXIT_FAIL;
        goto done;
    }
    if (lc_infer_new(cm.model, cm.lora, (int)n, 0, &s) != LC_OK) {
        rc = cli_lib_error(CMD, "creating the KV cache");
        goto done;
    }
    if (lc_infer_decode(s, ids, (int)n, LC_LOGITS_ALL, logits) != LC_OK) {
        rc = cli_lib_error(CMD, "computing the logits");
        goto done;
    }
    printf("ids:");
    for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\n");
    rc = write_npy(out, logits, (int64_t)n, V);
    if (rc == CLI_EXIT_OK) fprintf(stderr, "export: logits [%zu, %lld] written to %s\n", n, (long long)V, out);
done:
    lc_infer_free(s);
    free(logits);
    free(ids);
    cli_model_close(&cm);
    return rc;
}

int cli_export(int argc, char **argv) {
    const char *device = NULL, *model = NULL, *adapter = NULL, *out = NULL, *format = NULL, *prompt = NULL;
    const char *name = NULL, *v = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_export_help();
            return CLI_EXIT_OK;
        } else if (cli_opt(argc, argv, &i, "--model", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--model needs a path to a GGUF file");
            model = v;
        } else if (cli_opt(argc, argv, &i, "--adapter", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--adapter needs a path (PEFT directory or GGUF file)");
            adapter = v;
        } else if (cli_opt(argc, argv, &i, "--out", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--out needs a path");
            out = v;
        } else if (cli_opt(argc, argv, &i, "--format", &v)) {
            if (!v || (strcmp(v, "gguf") != 0 && strcmp(v, "peft") != 0 && strcmp(v, "logits") != 0))
                return cli_usage_error(CMD, "--format must be gguf, peft or logits (got '%s')", v ? v : "");
            format = v;
        } else if (cli_opt(argc, argv, &i, "--name", &v)) {
            if (!v) return cli_usage_error(CMD, "--name needs a value");
            name = v;
        } else if (cli_opt(argc, argv, &i, "--prompt", &v)) {
            if (!v) return cli_usage_error(CMD, "--prompt needs a value");
            prompt = v;
        } else if (cli_opt(argc, argv, &i, "--device", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--device needs a value: cpu, opencl[:N], vulkan[:N] or auto");
            device = v;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(CMD, "--threads", v, 1, 1024, &threads)) return CLI_EXIT_USAGE;
        } else if (a[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s'", a);
        }
    }
    if (!model) return cli_usage_error(CMD, "--model is required");
    if (!format) return cli_usage_error(CMD, "--format is required (gguf, peft or logits)");
    if (!out) return cli_usage_error(CMD, "--out is required");
    /* Never overwrite an input (the base model, the adapter or one of its files), whatever the format. */
    if (lc_adapter_check_out_path(out, strcmp(format, "peft") == 0, model, adapter, CMD) != LC_OK) {
        const char *msg = lc_last_error();
        if (strncmp(msg, "export: ", 8) == 0) msg += 8; /* the library's prefix; ours says it already */
        fprintf(stderr, "lorac %s: %s\n", CMD, msg);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(format, "logits") == 0) {
        if (!prompt) return cli_usage_error(CMD, "--format logits needs --prompt");
        return dump_logits(device, threads, model, adapter, prompt, out);
    }
    if (!adapter) return cli_usage_error(CMD, "--adapter is required");
    if (threads > 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", threads);
        setenv("LORAC_THREADS", buf, 1);
    }
    lc_device *dev = NULL;
    lc_gguf *f = NULL;
    lc_model *m = NULL;
    lc_lora_set *set = NULL;
    int rc = CLI_EXIT_OK;
    if ((rc = cli_open_device(CMD, device, &dev)) != CLI_EXIT_OK) return rc;
    if (lc_gguf_open(model, &f) != LC_OK || lc_model_from_gguf(dev, f, &m, NULL) != LC_OK) {
        rc = cli_lib_error(CMD, "loading the model");
        goto done;
    }
    if (lc_adapter_load(m, adapter, &set) != LC_OK) {
        rc = cli_lib_error(CMD, "loading the adapter");
        goto done;
    }
    lc_adapter_meta_buf mb;
    lc_adapter_meta meta;
    if (lc_adapter_meta_from_model(model, &mb, &meta) != LC_OK) {
        rc = cli_lib_error(CMD, "reading the model's metadata");
        goto done;
    }
    if (name) meta.name = name;
    const lc_status st = strcmp(format, "gguf") == 0 ? lc_adapter_save_gguf(m, set, out, &meta)
                                                     : lc_adapter_save_peft(m, set, out, &meta);
    if (st != LC_OK) {
        rc = cli_lib_error(CMD, "writing the adapter");
        goto done;
    }
    fprintf(stderr, "export: %s (%d modules, r %d, lora_alpha %g) -> %s %s\n", adapter, set->n_modules, set->cfg.r,
            (double)set->cfg.lora_alpha, format, out);
done:
    lc_lora_set_free(set);
    lc_model_free(m);
    lc_gguf_close(f);
    lc_device_close(dev);
    return rc;
}
