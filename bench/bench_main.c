/* lorac-bench — measure every device side by side on the kernels of LoRA training and on whole
 * training steps: argument parsing, the device registry walk, the ceilings, the op loop with its
 * correctness check against the CPU, and the progress line. See `lorac-bench --help`.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bench.h"

static const char *usage_text =
    "usage: lorac-bench [--device all|LIST] [--ops all|LIST] [--config tiny|gemma3-270m|1b|MODEL.gguf]\n"
    "                   [--quick] [--repeat N] [--tokens T] [--wtype DTYPE] [--train-layers N]\n"
    "                   [--train-steps N] [--no-train] [--tol X] [--json|--csv|--markdown]\n"
    "                   [--plot FILE.svg] [--help]\n";

static void help(void) {
    printf("%s", usage_text);
    printf(
        "\n"
        "Measures every device lorac can open (CPU, OpenCL, Vulkan plugins) on the kernels of LoRA\n"
        "training and on whole training steps, side by side in one run.\n"
        "\n"
        "Options\n"
        "  --device all|LIST   devices to measure: 'all' (default: every device of lc_device_list) or\n"
        "                      comma-separated specs (cpu, opencl, opencl:N, vulkan, vulkan:N). The CPU\n"
        "                      is always measured too: it is the reference every result is checked\n"
        "                      against and the denominator of 'x CPU'.\n"
        "  --ops all|LIST      comma-separated ops to measure (default all; shapes follow --config):\n");
    for (int i = 0; i < bench_n_cases; i++)
        printf("    %-18s %s [%s]\n", bench_cases[i].name, bench_cases[i].what,
               bench_cases[i].metric == METRIC_FLOPS ? "GFLOP/s" : "GB/s");
    printf(
        "                      The training step is controlled by --no-train.\n"
        "  --config C          shapes: tiny (the toy model), gemma3-270m (default: n_embd 640, 4 heads,\n"
        "                      1 kv head, head_dim 256, n_ff 2048, vocab 262144, 18 layers), 1b (Llama\n"
        "                      family: n_embd 2048, 32 heads, 8 kv, head_dim 64, n_ff 8192, vocab 128256,\n"
        "                      16 layers), or a GGUF file whose configuration is read (its weights are\n"
        "                      not loaded: the step uses random weights of the same shapes).\n"
        "  --quick             smaller run: T 128 tokens, 3 repeats, GEMM ceiling 1024^3, copy ceiling\n"
        "                      32 MiB, training step on at most 2 layers, 2 timed steps.\n"
        "  --repeat N          timed repeats per op after the warm-up run (default 10; quick 3).\n"
        "  --tokens T          tokens per op and per training step (default 512; quick 128).\n"
        "  --wtype DTYPE       weight dtype of the training-step model (default q8_0; tiny: f32).\n"
        "  --train-layers N    layers of the training-step model (default all; quick min(2, all)).\n"
        "  --train-steps N     timed training steps after the first (default 3; quick 2).\n"
        "  --no-train          skip the training step.\n"
        "  --tol X             largest accepted NMSE against the CPU (default 1e-6).\n"
        "  --json, --csv, --markdown   output format on stdout (default: a plain table).\n"
        "  --plot FILE.svg     also draw a grouped bar chart (one group per op, one bar per device).\n"
        "\n"
        "What is measured\n"
        "  Each op is a tiny lorac graph at the configuration's shapes with seeded random leaves. It\n"
        "  is planned and run once (first use: planning, buffer allocation, kernel / pipeline\n"
        "  compilation; shown as 'first ms'), its result is compared with the CPU's (normalised\n"
        "  error NMSE = sum((x-ref)^2)/sum(ref^2)), and only a correct result is then timed over N\n"
        "  repeats: 'median ms' and the spread 'min-max'. Backward ops time the backward node alone.\n"
        "  Products report GFLOP/s (2*M*N*K; LoRA adds its low-rank products); memory-bound ops\n"
        "  (rms_norm, rope, cross_entropy, lora_merge, adamw) report GB/s of bytes read + written.\n"
        "  Ceilings per device, measured in the same run: a large F32 GEMM through lc_device_gemm\n"
        "  (2048^3) and a 64 MiB SCALE (copy) graph.\n"
        "  The training step is train.h's trainer (forward, cross-entropy, backward, AdamW) on a\n"
        "  random model of the configuration with LoRA r 8 on q_proj, k_proj, v_proj, o_proj, one\n"
        "  sequence of T tokens: tokens/s, useful GFLOP/s (the forward and backward matrix products\n"
        "  of the LoRA model, attention included; no dW for frozen weights), peak device memory of a\n"
        "  freshly opened device, and first use (trainer build + first step) apart.\n"
        "  Work counted (T tokens, P visible causal query-key pairs, D = head_dim*n_head):\n"
        "  lora_fwd 2T*in*out + 2T*r*(in+out); lora_bwd 2T*in*out + 4T*r*(in+out); mul_mat 2T*K*N;\n"
        "  attn_fwd 4*D*P; attn_bwd 8*D*P; bytes: rms_norm 8*n_embd*T + 4*n_embd, rope 8*D*T + 4*T,\n"
        "  cross_entropy 4*V*T + 8*T, cross_entropy_bwd 8*V*T (+4*V*T when it accumulates),\n"
        "  lora_merge 8*in*out + 4*r*(in+out), adamw 28*n. Training-step FLOPs: README.md,\n"
        "  section 'lorac-bench JSON schema'.\n"
        "\n"
        "How to read the ratios\n"
        "  'of peak' = this op's rate / the device's ceiling of the same kind (GEMM GFLOP/s for\n"
        "  products, copy GB/s for memory-bound ops): near 100%% the kernel uses the device well; a\n"
        "  low value on a large op means the kernel leaves speed on the table. Values above 100%%\n"
        "  happen when data stays in cache or when the device's own GEMM / copy is its weak spot.\n"
        "  'x CPU' = CPU median time / this device's median time: above 1 the device beats the CPU.\n"
        "  WRONG: the result disagreed with the CPU (NMSE above --tol); it was not timed; do not use\n"
        "  that device for that op. UNSUPPORTED: the device has no kernel for it. skipped: the\n"
        "  configuration's shapes do not fit the case (a block size that does not divide K).\n"
        "  ERROR: see the note under the table.\n"
        "  First use matters for short runs: it is paid once per process.\n"
        "\n"
        "Exit status: 0 when every measurement ran (WRONG and UNSUPPORTED included), 1 when a run\n"
        "failed (no device, out of memory, an output file not written), 2 for bad arguments.\n");
}

static int bad_arg(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "lorac-bench: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n%sTry 'lorac-bench --help'.\n", usage_text);
    return 2;
}

static bool parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Preset configurations of the issue (Gemma 3 270M; a 1B Llama-family model: Llama 3.2 1B). */
static lc_status config_named(const char *name, bench_config *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    lc_model_config c;
    if (strcmp(name, "tiny") == 0) {
        c = lc_model_config_default(LC_ARCH_TOY);
    } else if (strcmp(name, "gemma3-270m") == 0) {
        c = lc_model_config_default(LC_ARCH_GEMMA3);
        c.n_vocab = 262144;
        c.n_embd = 640;
        c.n_layer = 18;
        c.n_head = 4;
        c.n_head_kv = 1;
        c.head_dim = 256;
        c.n_ff = 2048;
        c.tied_output = true;
        c.wtype = LC_Q8_0;
    } else if (strcmp(name, "1b") == 0) {
        c = lc_model_config_default(LC_ARCH_LLAMA);
        c.n_vocab = 128256;
        c.n_embd = 2048;
        c.n_layer = 16;
        c.n_head = 32;
        c.n_head_kv = 8;
        c.head_dim = 64;
        c.n_ff = 8192;
        c.rope_base = 500000.0f;
        c.tied_output = true;
        c.wtype = LC_Q8_0;
    } else if (ends_with(name, ".gguf")) {
        lc_gguf *f = NULL;
        lc_status st = lc_gguf_open(name, &f);
        if (st != LC_OK) return st;
        st = lc_model_config_from_gguf(f, &c);
        lc_gguf_close(f);
        if (st != LC_OK) return st;
    } else {
        return lc_error(LC_ERR_INVALID_ARG, "--config '%s': expected tiny, gemma3-270m, 1b or a path ending in .gguf",
                        name);
    }
    out->model = c;
    return lc_model_config_check(&c);
}

static lc_status dtype_from_name(const char *s, lc_dtype *out) {
    for (int i = 0; i < LC_DTYPE_MAX; i++) {
        const lc_dtype_info *di = lc_dtype_get(i);
        if (di && i != LC_I32 && strcasecmp(di->name, s) == 0) {
            *out = (lc_dtype)i;
            return LC_OK;
        }
    }
    return lc_error(LC_ERR_INVALID_ARG, "--wtype '%s': not a dtype (f32, f16, bf16, q8_0, q4_0, q4_K, q6_K, ...)", s);
}

/* ---- progress ------------------------------------------------------------------------------ */
typedef struct progress {
    int done, total;
    double t0;
    bool tty;
} progress;

static void progress_show(progress *p, const char *what, const char *dev) {
    const double el = bench_now() - p->t0;
    char eta[32] = "?";
    if (p->done > 0) snprintf(eta, sizeof eta, "%.0fs", el / p->done * (p->total - p->done));
    fprintf(stderr, "%s[%d/%d] %-18s on %-10s elapsed %.0fs, ETA %s%s", p->tty ? "\r\033[K" : "", p->done + 1, p->total,
            what, dev, el, eta, p->tty ? "" : "\n");
    fflush(stderr);
}

/* ---- ceilings ------------------------------------------------------------------------------ */
static lc_status measure_gemm(bench_device *bd, const bench_options *opt) {
    const int n = opt->gemm_n;
    const size_t bytes = (size_t)n * n * sizeof(float);
    lc_buffer *a = NULL, *b = NULL, *c = NULL;
    float *h = malloc(bytes);
    double *t = malloc((size_t)opt->repeat * sizeof *t);
    lc_status st = (h && t) ? LC_OK : lc_error(LC_ERR_NOMEM, "lorac-bench: GEMM ceiling host buffers");
    if (st == LC_OK) st = lc_buffer_alloc(bd->dev, bytes, &a);
    if (st == LC_OK) st = lc_buffer_alloc(bd->dev, bytes, &b);
    if (st == LC_OK) st = lc_buffer_alloc(bd->dev, bytes, &c);
    if (st == LC_OK) {
        for (size_t i = 0; i < (size_t)n * n; i++) h[i] = (float)((i * 7919u) % 1000u) * 1e-3f - 0.5f;
        st = lc_buffer_upload(a, 0, h, bytes);
        if (st == LC_OK) st = lc_buffer_upload(b, 0, h, bytes);
    }
    double t0 = bench_now();
    if (st == LC_OK) st = lc_device_gemm(bd->dev, false, false, n, n, n, 1.0f, a, 0, n, b, 0, n, 0.0f, c, 0, n);
    if (st == LC_OK) st = lc_device_synchronize(bd->dev);
    bd->gemm_first_s = bench_now() - t0;
    for (int r = 0; st == LC_OK && r < opt->repeat; r++) {
        t0 = bench_now();
        st = lc_device_gemm(bd->dev, false, false, n, n, n, 1.0f, a, 0, n, b, 0, n, 0.0f, c, 0, n);
        if (st == LC_OK) st = lc_device_synchronize(bd->dev);
        t[r] = bench_now() - t0;
    }
    if (st == LC_OK) {
        double med, mn, mx;
        bench_stats(t, opt->repeat, &med, &mn, &mx);
        bd->gemm_gflops = 2.0 * n * (double)n * n / med * 1e-9;
    }
    lc_buffer_free(a);
    lc_buffer_free(b);
    lc_buffer_free(c);
    free(h);
    free(t);
    return st;
}

static lc_status measure_copy(bench_device *bd, const bench_options *opt) {
    bench_graph bg;
    memset(&bg, 0, sizeof bg);
    const int64_t row = 1 << 20, rows = opt->copy_bytes / (4 * row) > 0 ? opt->copy_bytes / (4 * row) : 1;
    double *t = malloc((size_t)opt->repeat * sizeof *t);
    lc_status st = t ? LC_OK : lc_error(LC_ERR_NOMEM, "lorac-bench: copy ceiling");
    bg.g = st == LC_OK ? lc_graph_new(bd->dev) : NULL;
    if (st == LC_OK && !bg.g) st = lc_error(LC_ERR_NOMEM, "lorac-bench: lc_graph_new");
    lc_tensor *x = bench_leaf(&bg, bd->dev, LC_F32, row, rows, 0, "copy_src", 71, -1, 1, &st);
    if (st == LC_OK) {
        lc_tensor *y = lc_scale(bg.g, x, 1.0f);
        lc_graph_set_output(bg.g, y);
        st = lc_graph_status(bg.g);
    }
    double t0 = bench_now();
    if (st == LC_OK) st = lc_graph_plan(bg.g);
    if (st == LC_OK) st = lc_graph_compute(bg.g);
    bd->copy_first_s = bench_now() - t0;
    for (int r = 0; st == LC_OK && r < opt->repeat; r++) {
        t0 = bench_now();
        st = lc_graph_compute(bg.g);
        t[r] = bench_now() - t0;
    }
    if (st == LC_OK) {
        double med, mn, mx;
        bench_stats(t, opt->repeat, &med, &mn, &mx);
        bd->copy_gbps = 2.0 * 4.0 * (double)row * rows / med * 1e-9;
    }
    bench_graph_free(&bg);
    free(t);
    return st;
}

/* ---- one op on one device ------------------------------------------------------------------ */
typedef struct reference {
    float *data[BENCH_MAX_CHECK];
    int64_t n[BENCH_MAX_CHECK];
    int count;
    bool valid;
} reference;

static void reference_clear(reference *r) {
    for (int i = 0; i < r->count; i++) free(r->data[i]);
    memset(r, 0, sizeof *r);
}

static void set_failure(bench_result *res, lc_status st) {
    res->status = st == LC_ERR_UNSUPPORTED ? RES_UNSUPPORTED : RES_ERROR;
    snprintf(res->error, sizeof res->error, "%s", lc_last_error());
}

static void measure_op(bench_result *res, const bench_case *bc, bench_device *bd, bool is_ref, reference *ref,
                       const bench_options *opt, double tol) {
    bench_graph bg;
    memset(&bg, 0, sizeof bg);
    res->nmse = -1;
    lc_status st = bc->build(&bg, bd->dev, &opt->cfg.model, opt->tokens);
    snprintf(res->shape, sizeof res->shape, "%s", bg.shape);
    res->flops = bg.flops;
    res->bytes = bg.bytes;
    if (st != LC_OK) {
        /* a shape the configuration cannot have (a block size that does not divide K) is not a
         * device failure: report it as skipped */
        set_failure(res, st);
        if (st == LC_ERR_SHAPE && !bg.g) res->status = RES_SKIPPED;
        if (st == LC_ERR_SHAPE && bg.g && lc_graph_n_nodes(bg.g) == 0) res->status = RES_SKIPPED;
        bench_graph_free(&bg);
        return;
    }
    double t0 = bench_now();
    if (st == LC_OK) st = lc_graph_plan(bg.g);
    if (st == LC_OK) st = lc_graph_compute(bg.g);
    res->first_s = bench_now() - t0;
    if (st != LC_OK) {
        set_failure(res, st);
        bench_graph_free(&bg);
        return;
    }
    /* correctness before timing */
    for (int i = 0; i < bg.n_check && st == LC_OK; i++) {
        const int64_t n = lc_nelements(bg.check[i]);
        float *h = malloc((size_t)n * sizeof *h);
        if (!h) {
            st = lc_error(LC_ERR_NOMEM, "lorac-bench: %s: reading %lld results", bc->name, (long long)n);
            break;
        }
        st = lc_tensor_get_f32(bg.check[i], h, n);
        if (st != LC_OK) {
            free(h);
            break;
        }
        if (is_ref) {
            ref->data[ref->count] = h;
            ref->n[ref->count++] = n;
        } else if (ref->valid && i < ref->count && ref->n[i] == n) {
            const double e = bench_nmse(h, ref->data[i], n);
            if (!(e <= res->nmse) || res->nmse < 0) res->nmse = e;
            free(h);
        } else {
            free(h);
        }
    }
    if (is_ref && st == LC_OK) {
        ref->valid = true;
        res->nmse = 0;
    }
    if (st != LC_OK) {
        set_failure(res, st);
        bench_graph_free(&bg);
        return;
    }
    if (!is_ref && res->nmse >= 0 && !(res->nmse <= tol)) {
        res->status = RES_WRONG;
        snprintf(res->error, sizeof res->error, "NMSE %.3g vs the CPU exceeds %.3g; not timed", res->nmse, tol);
        bench_graph_free(&bg);
        return;
    }
    const lc_node *node = NULL;
    if (bg.timed_op != LC_OP_NONE)
        for (int i = 0; i < lc_graph_n_nodes(bg.g); i++)
            if (lc_graph_node(bg.g, i)->op == bg.timed_op) node = lc_graph_node(bg.g, i);
    double *t = malloc((size_t)opt->repeat * sizeof *t);
    if (!t) st = lc_error(LC_ERR_NOMEM, "lorac-bench: timings");
    for (int r = 0; st == LC_OK && r < opt->repeat; r++) {
        t0 = bench_now();
        if (node) {
            st = lc_device_run_node(bd->dev, node);
            if (st == LC_OK) st = lc_device_synchronize(bd->dev);
        } else {
            st = lc_graph_compute(bg.g);
        }
        t[r] = bench_now() - t0;
    }
    if (st == LC_OK) {
        bench_stats(t, opt->repeat, &res->median_s, &res->min_s, &res->max_s);
        const double work = bc->metric == METRIC_FLOPS ? res->flops : res->bytes;
        res->rate = res->median_s > 0 ? work / res->median_s * 1e-9 : 0;
        res->status = RES_OK;
        if (!is_ref && res->nmse < 0) snprintf(res->error, sizeof res->error, "not checked: the CPU reference failed");
    } else {
        set_failure(res, st);
    }
    free(t);
    bench_graph_free(&bg);
}

/* ---- devices ------------------------------------------------------------------------------- */
static int add_device(bench_run *run, const lc_device_info *info) {
    for (int i = 0; i < run->n_devices; i++)
        if (strcmp(run->devices[i].info.spec, info->spec) == 0) return 0;
    if (run->n_devices >= BENCH_MAX_DEVICES) return 0;
    run->devices[run->n_devices++].info = *info;
    return 0;
}

static int select_devices(bench_run *run) {
    int count = 0;
    lc_status st = lc_device_list(NULL, 0, &count);
    lc_device_info *all = count > 0 ? calloc((size_t)count, sizeof *all) : NULL;
    if (st == LC_OK && count > 0) st = lc_device_list(all, count, &count);
    if (st != LC_OK || count == 0) {
        fprintf(stderr, "lorac-bench: no devices: %s\n", lc_last_error());
        free(all);
        return 1;
    }
    for (int i = 0; i < count; i++)
        if (strcmp(all[i].backend, "cpu") == 0) add_device(run, &all[i]);
    if (run->n_devices == 0) {
        fprintf(stderr, "lorac-bench: the CPU device is missing from the registry\n");
        free(all);
        return 1;
    }
    if (strcmp(run->opt.devices, "all") == 0) {
        for (int i = 0; i < count; i++) add_device(run, &all[i]);
    } else {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", run->opt.devices);
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (isspace((unsigned char)*tok)) tok++;
            lc_device *d = NULL;
            if (lc_device_open(tok, &d) != LC_OK) {
                fprintf(stderr, "lorac-bench: --device '%s': %s\n", tok, lc_last_error());
                free(all);
                return 2;
            }
            lc_device_info info = *lc_device_get_info(d);
            lc_device_close(d);
            add_device(run, &info);
        }
    }
    free(all);
    return 0;
}

static int select_ops(bench_run *run) {
    if (strcmp(run->opt.ops, "all") == 0) {
        for (int i = 0; i < bench_n_cases; i++) run->case_sel[run->n_sel++] = i;
        return 0;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", run->opt.ops);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        int found = -1;
        for (int i = 0; i < bench_n_cases; i++)
            if (strcasecmp(bench_cases[i].name, tok) == 0) found = i;
        if (found < 0) {
            fprintf(stderr, "lorac-bench: --ops: unknown op '%s'; known ops:", tok);
            for (int i = 0; i < bench_n_cases; i++) fprintf(stderr, " %s", bench_cases[i].name);
            fprintf(stderr, "\n");
            return 2;
        }
        bool dup = false;
        for (int i = 0; i < run->n_sel; i++) dup |= run->case_sel[i] == found;
        if (!dup) run->case_sel[run->n_sel++] = found;
    }
    if (run->n_sel == 0) {
        fprintf(stderr, "lorac-bench: --ops: empty list\n");
        return 2;
    }
    return 0;
}

/* ---- arguments ----------------------------------------------------------------------------- */
static int parse_args(int argc, char **argv, bench_options *o, double *tol) {
    memset(o, 0, sizeof *o);
    snprintf(o->devices, sizeof o->devices, "all");
    snprintf(o->ops, sizeof o->ops, "all");
    const char *config = "gemma3-270m", *wtype = NULL;
    int repeat = 0, tokens = 0, train_layers = -1, train_steps = 0;
    *tol = 1e-6;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                              \
    do {                                                                          \
        if (!v) return bad_arg("option %s needs a value%s", a, "");              \
        i++;                                                                      \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return -1;
        } else if (!strcmp(a, "--device")) {
            NEED_VALUE();
            if (!*v || strlen(v) >= sizeof o->devices) return bad_arg("--device '%s': empty or too long%s", v, "");
            snprintf(o->devices, sizeof o->devices, "%s", v);
        } else if (!strcmp(a, "--ops")) {
            NEED_VALUE();
            if (!*v || strlen(v) >= sizeof o->ops) return bad_arg("--ops '%s': empty or too long%s", v, "");
            snprintf(o->ops, sizeof o->ops, "%s", v);
        } else if (!strcmp(a, "--config")) {
            NEED_VALUE();
            config = v;
        } else if (!strcmp(a, "--quick")) {
            o->quick = true;
        } else if (!strcmp(a, "--repeat")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 100000, &repeat)) return bad_arg("--repeat '%s': expected an integer in 1..100000%s", v, "");
        } else if (!strcmp(a, "--tokens")) {
            NEED_VALUE();
            if (!parse_int(v, 2, 65536, &tokens)) return bad_arg("--tokens '%s': expected an integer in 2..65536%s", v, "");
        } else if (!strcmp(a, "--train-layers")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 1000, &train_layers)) return bad_arg("--train-layers '%s': expected an integer in 1..1000%s", v, "");
        } else if (!strcmp(a, "--train-steps")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 100000, &train_steps)) return bad_arg("--train-steps '%s': expected an integer in 1..100000%s", v, "");
        } else if (!strcmp(a, "--wtype")) {
            NEED_VALUE();
            wtype = v;
        } else if (!strcmp(a, "--no-train")) {
            o->no_train = true;
        } else if (!strcmp(a, "--tol")) {
            NEED_VALUE();
            char *end;
            *tol = strtod(v, &end);
            if (end == v || *end || !(*tol >= 0) || !isfinite(*tol)) return bad_arg("--tol '%s': expected a number >= 0%s", v, "");
        } else if (!strcmp(a, "--json")) {
            o->format = OUT_JSON;
        } else if (!strcmp(a, "--csv")) {
            o->format = OUT_CSV;
        } else if (!strcmp(a, "--markdown")) {
            o->format = OUT_MARKDOWN;
        } else if (!strcmp(a, "--plot")) {
            NEED_VALUE();
            if (!*v || strlen(v) >= sizeof o->plot) return bad_arg("--plot '%s': empty or too long%s", v, "");
            snprintf(o->plot, sizeof o->plot, "%s", v);
        } else {
            return bad_arg("unknown argument '%s'%s", a, "");
        }
#undef NEED_VALUE
    }
    if (o->plot[0]) {
        /* fail before a long run, not after it */
        char dir[512];
        snprintf(dir, sizeof dir, "%s", o->plot);
        char *slash = strrchr(dir, '/');
        if (slash) *(slash == dir ? slash + 1 : slash) = 0;
        else snprintf(dir, sizeof dir, ".");
        if (access(dir, W_OK) != 0) return bad_arg("--plot '%s': directory '%s' is not writable", o->plot, dir);
    }
    if (config_named(config, &o->cfg) != LC_OK) return bad_arg("%s%s", lc_last_error(), "");
    if (wtype) {
        lc_dtype dt = LC_F32;
        if (dtype_from_name(wtype, &dt) != LC_OK) return bad_arg("%s%s", lc_last_error(), "");
        o->cfg.model.wtype = dt;
        if (lc_model_config_check(&o->cfg.model) != LC_OK) return bad_arg("--wtype %s: %s", wtype, lc_last_error());
    }
    o->repeat = repeat ? repeat : (o->quick ? 3 : 10);
    o->tokens = tokens ? tokens : (o->quick ? 128 : 512);
    o->gemm_n = o->quick ? 1024 : 2048;
    o->copy_bytes = (int64_t)(o->quick ? 32 : 64) << 20;
    o->train_layers = train_layers > 0 ? train_layers : (o->quick ? 2 : 0);
    o->train_steps = train_steps ? train_steps : (o->quick ? 2 : 3);
    return 0;
}

int main(int argc, char **argv) {
    static bench_run run;
    double tol;
    int rc = parse_args(argc, argv, &run.opt, &tol);
    if (rc < 0) return 0;
    if (rc) return rc;
    if ((rc = select_ops(&run)) != 0) return rc;
    if ((rc = select_devices(&run)) != 0) return rc;
    const bench_options *opt = &run.opt;
    run.train_reduced = opt->train_layers > 0 && opt->train_layers < opt->cfg.model.n_layer;
    const char *backends[] = {"opencl", "vulkan"};
    for (int i = 0; i < 2; i++) {
        const char *why = lc_device_skipped(backends[i]);
        if (why) fprintf(stderr, "lorac-bench: %s: %s\n", backends[i], why);
    }
    run.n_results = run.n_sel * run.n_devices;
    run.results = calloc((size_t)run.n_results, sizeof *run.results);
    if (!run.results) {
        fprintf(stderr, "lorac-bench: out of host memory\n");
        return 1;
    }
    progress pg = {.done = 0, .total = run.n_devices * (1 + run.n_sel + (opt->no_train ? 0 : 1)), .t0 = bench_now(),
                   .tty = isatty(2)};
    /* open every device and measure its ceilings */
    for (int d = 0; d < run.n_devices; d++) {
        bench_device *bd = &run.devices[d];
        progress_show(&pg, "ceilings", bd->info.spec);
        lc_status st = lc_device_open(bd->info.spec, &bd->dev);
        if (st == LC_OK) st = measure_gemm(bd, opt);
        if (st == LC_OK) st = measure_copy(bd, opt);
        if (st != LC_OK) {
            bd->status = st == LC_ERR_UNSUPPORTED ? RES_UNSUPPORTED : RES_ERROR;
            snprintf(bd->error, sizeof bd->error, "%s", lc_last_error());
            if (d == 0 && !bd->dev) {
                fprintf(stderr, "\nlorac-bench: cannot open the CPU device: %s\n", bd->error);
                return 1;
            }
        }
        pg.done++;
    }
    /* every op on every device, the CPU first (it is the reference) */
    for (int s = 0; s < run.n_sel; s++) {
        const bench_case *bc = &bench_cases[run.case_sel[s]];
        reference ref;
        memset(&ref, 0, sizeof ref);
        for (int d = 0; d < run.n_devices; d++) {
            bench_result *res = &run.results[s * run.n_devices + d];
            res->case_index = run.case_sel[s];
            res->device_index = d;
            progress_show(&pg, bc->name, run.devices[d].info.spec);
            if (!run.devices[d].dev) {
                res->status = RES_SKIPPED;
                snprintf(res->error, sizeof res->error, "device did not open");
            } else {
                measure_op(res, bc, &run.devices[d], d == 0, &ref, opt, tol);
            }
            pg.done++;
        }
        reference_clear(&ref);
    }
    /* ratios */
    for (int s = 0; s < run.n_sel; s++) {
        const bench_result *cpu = &run.results[s * run.n_devices];
        for (int d = 0; d < run.n_devices; d++) {
            bench_result *res = &run.results[s * run.n_devices + d];
            if (res->status != RES_OK) continue;
            const double ceil = bench_cases[res->case_index].metric == METRIC_FLOPS ? run.devices[d].gemm_gflops
                                                                                     : run.devices[d].copy_gbps;
            res->ratio_ceiling = ceil > 0 ? res->rate / ceil : 0;
            res->ratio_cpu = cpu->status == RES_OK && res->median_s > 0 ? cpu->median_s / res->median_s : 0;
        }
    }
    /* training step, each on a freshly opened device so that its peak memory is the step's own */
    for (int d = 0; d < run.n_devices; d++) {
        bench_device *bd = &run.devices[d];
        lc_device_close(bd->dev);
        bd->dev = NULL;
        if (opt->no_train) continue;
        bench_train *bt = &run.train[run.n_train++];
        memset(bt, 0, sizeof *bt);
        bt->device_index = d;
        progress_show(&pg, "train_step", bd->info.spec);
        lc_device *dev = NULL;
        lc_status st = lc_device_open(bd->info.spec, &dev);
        if (st == LC_OK) {
            bench_train_run(bt, dev, opt);
        } else {
            bt->status = RES_ERROR;
            snprintf(bt->error, sizeof bt->error, "%s", lc_last_error());
        }
        lc_device_close(dev);
        pg.done++;
    }
    fprintf(stderr, "%sdone in %.1f s\n", pg.tty ? "\r\033[K" : "", bench_now() - pg.t0);
    switch (opt->format) {
    case OUT_JSON: bench_report_json(stdout, &run); break;
    case OUT_CSV: bench_report_csv(stdout, &run); break;
    case OUT_MARKDOWN: bench_report_markdown(stdout, &run); break;
    default: bench_report_table(stdout, &run); break;
    }
    rc = 0;
    if (opt->plot[0] && bench_plot_svg(opt->plot, &run) != LC_OK) {
        fprintf(stderr, "lorac-bench: %s\n", lc_last_error());
        rc = 1;
    }
    free(run.results);
    return rc;
}
