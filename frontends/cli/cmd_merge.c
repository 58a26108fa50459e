/* lorac merge — write a GGUF model with a LoRA adapter merged into its weights (lorac/merge.h):
 * W' = W + scaling·B·A for every targeted projection, everything else copied byte for byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "lorac/adapter.h"
#include "lorac/gguf.h"
#include "lorac/lorac.h"
#include "lorac/merge.h"

static const char *CMD = "merge";

void cli_merge_help(void) {
    printf("Usage: lorac merge --model BASE.gguf --adapter ADAPTER --out MERGED.gguf [options]\n\n"
           "Writes MERGED.gguf: the base model with the adapter merged into its weights, W' = W + scaling*B*A\n"
           "(Hugging Face PEFT's merge_and_unload). Every metadata key of the base is copied, every tensor the\n"
           "adapter does not target is copied byte for byte in its own type, and each targeted weight is\n"
           "dequantised to F32, merged in F32 on the device (the lora_merge op) and stored as --dtype says.\n"
           "The file is written to MERGED.gguf.tmp and renamed when complete: never half a file.\n"
           "An adapter aimed at the output layer of a model whose output is tied to token_embd is refused.\n\n"
           "Options:\n"
           "  --model PATH        base GGUF model\n"
           "  --adapter PATH      LoRA adapter: a PEFT directory or a llama.cpp GGUF LoRA file\n"
           "  --out PATH          merged GGUF to write (not the base file itself)\n"
           "  --dtype T           type of the merged weights: f16 (default), f32, or keep (the base tensor's\n"
           "                      own type: quantised weights are re-quantised, and the report says how much\n"
           "                      of the update the quantisation lost). F16 and F32 files are 3-7x the size\n"
           "                      of a Q4 model, and generation, which reads every weight per token, is\n"
           "                      slower by about as much (Gemma 3 270M on 2 cores: 20 -> 3 tokens/s);\n"
           "                      keep stays fast but loses part of the update\n"
           "  --device SPEC       cpu | opencl[:N] | vulkan[:N] | auto (default: $LORAC_DEVICE, else auto)\n"
           "  --threads N         CPU threads (sets LORAC_THREADS; default: all cores)\n"
           "  -q, --quiet         no per-tensor lines\n"
           "  -h, --help          this help\n\n"
           "Precision report (stderr, one line per merged tensor and a total): with M = W + D the F32 merge and\n"
           "S = M as stored, rel_err = ||S - M|| / ||D|| (storage error in units of the update) and\n"
           "kept = <S - W, D> / ||D||^2 (share of the update the stored weight still carries; 1 = all).\n");
}

/* A PEFT adapter names its base in adapter_config.json (base_model_name_or_path); shapes alone
 * cannot tell two models of one size apart, so warn when that name is neither the GGUF's
 * general.name nor its file name. Crude string scan: the value is only compared, never trusted. */
static void warn_base_name(const char *adapter, const char *model) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", adapter, LC_PEFT_CONFIG_FILE);
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char buf[8192];
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *k = strstr(buf, "\"base_model_name_or_path\": \"");
    if (!k) return;
    k += strlen("\"base_model_name_or_path\": \"");
    const char *e = strchr(k, '"');
    if (!e || e == k) return;
    char want[512];
    snprintf(want, sizeof want, "%.*s", (int)(e - k), k);
    const char *gname = NULL, *base = strrchr(model, '/');
    base = base ? base + 1 : model;
    lc_gguf *g = NULL;
    if (lc_gguf_open(model, &g) != LC_OK) return;
    if (lc_gguf_find_key(g, "general.name") >= 0) lc_gguf_get_string(g, "general.name", &gname, NULL);
    const char *slash = strrchr(want, '/');
    const char *want_tail = slash ? slash + 1 : want;
    lc_adapter_meta_buf mb;
    lc_adapter_meta meta;
    lc_adapter_meta_from_model(model, &mb, &meta);
    const bool ours = meta.base_model_name_or_path && strcmp(want, meta.base_model_name_or_path) == 0;
    if (!ours && strcmp(want, base) != 0 &&
        (!gname || (strcasecmp(want, gname) != 0 && strcasecmp(want_tail, gname) != 0)))
        fprintf(stderr, "lorac %s: warning: the adapter was made for '%s', but %s is '%s'; merged anyway, since every "
                "shape fits (check that this is the model you meant)\n", CMD, want, model, gname ? gname : base);
    lc_gguf_close(g);
}

typedef struct progress {
    bool quiet;
    double t0;
} progress;

static void on_tensor(void *user, int i, int n, const char *name, const lc_merge_tensor_stats *st) {
    const progress *p = user;
    if (p->quiet) return;
    if (!st) {
        fprintf(stderr, "merge: tensor %d/%d %-28s copied\n", i + 1, n, name);
        return;
    }
    fprintf(stderr, "merge: tensor %d/%d %-28s %s -> %s, scaling %g, |D| %.4g, rel_err %.3g, kept %.6f\n", i + 1, n,
            name, lc_dtype_name(st->src_type), lc_dtype_name(st->dst_type), (double)st->scaling, st->delta_norm,
            st->rel_err, st->delta_kept);
}

int cli_merge(int argc, char **argv) {
    const char *device = NULL, *model = NULL, *adapter = NULL, *out = NULL, *v = NULL;
    int threads = 0;
    lc_merge_params mp = lc_merge_params_default();
    progress pr = {false, 0.0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_merge_help();
            return CLI_EXIT_OK;
        } else if (cli_opt(argc, argv, &i, "--model", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--model needs a path to a GGUF file");
            model = v;
        } else if (cli_opt(argc, argv, &i, "--adapter", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--adapter needs a path (PEFT directory or GGUF file)");
            adapter = v;
        } else if (cli_opt(argc, argv, &i, "--out", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--out needs a path for the merged GGUF");
            out = v;
        } else if (cli_opt(argc, argv, &i, "--dtype", &v)) {
            if (!v || lc_merge_dtype_parse(v, &mp.dtype) != LC_OK)
                return cli_usage_error(CMD, "--dtype must be f16, f32 or keep (got '%s')", v ? v : "");
        } else if (cli_opt(argc, argv, &i, "--device", &v)) {
            if (!v || !*v) return cli_usage_error(CMD, "--device needs a value: cpu, opencl[:N], vulkan[:N] or auto");
            device = v;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(CMD, "--threads", v, 1, 1024, &threads)) return CLI_EXIT_USAGE;
        } else if (cli_flag(argc, argv, &i, "--quiet") || cli_flag(argc, argv, &i, "-q")) {
            pr.quiet = true;
        } else if (a[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s'", a);
        }
    }
    if (!model) return cli_usage_error(CMD, "--model is required");
    if (!adapter) return cli_usage_error(CMD, "--adapter is required");
    if (!out) return cli_usage_error(CMD, "--out is required");
    if (threads > 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", threads);
        setenv("LORAC_THREADS", buf, 1);
    }
    lc_device *dev = NULL;
    const int opened = cli_open_device(CMD, device, &dev);
    if (opened != CLI_EXIT_OK) return opened;
    fprintf(stderr, "device: %s (%s)\n", lc_device_get_info(dev)->spec, lc_device_get_info(dev)->name);
    mp.progress = on_tensor;
    mp.user = &pr;
    pr.t0 = cli_now();
    lc_merge_report rep;
    const lc_status st = lc_merge_files(dev, model, adapter, out, &mp, &rep);
    lc_device_close(dev);
    if (st != LC_OK) {
        const char *msg = lc_last_error();
        if (strncmp(msg, "merge: ", 7) == 0) msg += 7; /* the library's prefix; ours says it already */
        fprintf(stderr, "lorac %s: %s\n", CMD, msg);
        return st == LC_ERR_INVALID_ARG ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    warn_base_name(adapter, model);
    char b1[32], b2[32];
    fprintf(stderr, "merge: %d of %d tensors merged (%s), %d copied; %s -> %s of tensor data in %.2f s\n", rep.n_merged,
            rep.n_tensors, lc_merge_dtype_name(mp.dtype), rep.n_tensors - rep.n_merged,
            cli_format_bytes(b1, sizeof b1, rep.bytes_in), cli_format_bytes(b2, sizeof b2, rep.bytes_out),
            cli_now() - pr.t0);
    printf("merged %d tensors into %s: |D| %.6g, storage rel_err %.4g, update kept %.6f (dtype %s)\n", rep.n_merged,
           out, rep.delta_norm, rep.rel_err, rep.delta_kept, lc_merge_dtype_name(mp.dtype));
    if (mp.dtype == LC_MERGE_KEEP && rep.rel_err > 0.5)
        fprintf(stderr, "lorac %s: warning: re-quantising lost much of the update (rel_err %.3g); --dtype f16 keeps "
                "it\n", CMD, rep.rel_err);
    lc_merge_report_free(&rep);
    return CLI_EXIT_OK;
}
