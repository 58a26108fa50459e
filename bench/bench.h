/* lorac-bench — shared types of the benchmark tool: options, the per-op cases, the measured
 * results and the report writers.
 *
 * Units used throughout: times in seconds (printed as ms), FLOPs as counts of multiply-adds x 2
 * (a product C[M,N] += A[M,K] B[K,N] is 2*M*N*K), bytes as the bytes a kernel must read plus
 * write at least once (element-wise ops), rates in GFLOP/s and GB/s (1e9).
 */
#ifndef LORAC_BENCH_H
#define LORAC_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lorac/lorac.h"

#define BENCH_MAX_DEVICES 16
#define BENCH_MAX_LEAVES 16
#define BENCH_MAX_CHECK 4

/* Model shapes the ops are measured at (a subset of lc_model_config plus the name shown). */
typedef struct bench_config {
    char name[128];          /* "tiny", "gemma3-270m", "1b" or the GGUF path */
    lc_model_config model;   /* full model configuration (training step) */
} bench_config;

typedef struct bench_options {
    char devices[512];       /* "all" or a comma-separated list of specs */
    char ops[512];           /* "all" or a comma-separated list of op names */
    bench_config cfg;
    bool quick;
    int repeat;              /* timed repeats per op (median reported) */
    int tokens;              /* T: tokens per op / per training step */
    int gemm_n;              /* ceiling GEMM size n (n x n x n) */
    int64_t copy_bytes;      /* ceiling copy size in bytes (F32 source) */
    int train_layers;        /* layers of the training-step model (<= cfg n_layer) */
    int train_steps;         /* timed training steps */
    enum { OUT_TABLE, OUT_JSON, OUT_CSV, OUT_MARKDOWN } format;
    char plot[512];          /* SVG path or "" */
    bool no_train;           /* skip the training step */
} bench_options;

/* Metric a case is judged by. */
typedef enum { METRIC_FLOPS = 0, METRIC_BYTES = 1 } bench_metric;

/* Status of one measurement. */
typedef enum { RES_OK = 0, RES_WRONG, RES_UNSUPPORTED, RES_ERROR, RES_SKIPPED } bench_res_status;
const char *bench_status_name(bench_res_status s);

/* One op built as a small graph on one device. */
typedef struct bench_graph {
    lc_graph *g;
    lc_tensor *leaves[BENCH_MAX_LEAVES]; /* standalone tensors, freed after the graph */
    int n_leaves;
    lc_tensor *check[BENCH_MAX_CHECK];   /* results compared against the CPU */
    int n_check;
    lc_op timed_op;          /* LC_OP_NONE: time lc_graph_compute; else time this node alone */
    double flops, bytes;     /* per timed run */
    char shape[128];         /* human-readable shapes in ne order */
} bench_graph;

/* Static description of an op case. */
typedef struct bench_case {
    const char *name;        /* "lora_fwd", "mul_mat_q4_K", ... */
    const char *what;        /* one line for --help */
    bench_metric metric;
    /* Build the graph on dev for configuration cfg and T tokens (not planned). */
    lc_status (*build)(bench_graph *bg, lc_device *dev, const lc_model_config *cfg, int tokens);
} bench_case;

extern const bench_case bench_cases[];
extern const int bench_n_cases;

/* Free a bench_graph's graph and leaves (safe on a partly built one). */
void bench_graph_free(bench_graph *bg);

/* Per-device information and ceilings. */
typedef struct bench_device {
    lc_device_info info;
    lc_device *dev;          /* open handle while measuring */
    bench_res_status status; /* open / ceiling status */
    char error[512];
    double gemm_gflops;      /* ceiling: lc_device_gemm n^3, median */
    double copy_gbps;        /* ceiling: SCALE graph over copy_bytes, median */
    double gemm_first_s, copy_first_s;
} bench_device;

/* One op on one device. */
typedef struct bench_result {
    int case_index, device_index;
    bench_res_status status;
    char error[512];
    char shape[128];
    double nmse;             /* vs the CPU result (0 on the CPU itself); -1 when not checked */
    double first_s;          /* plan + first compute (kernel/pipeline compilation included) */
    double median_s, min_s, max_s;
    double flops, bytes;
    double rate;             /* GFLOP/s or GB/s per the case's metric */
    double ratio_ceiling;    /* rate / device ceiling of the same metric */
    double ratio_cpu;        /* CPU median time / this median time (>1: faster than the CPU) */
} bench_result;

/* Whole training step on one device. */
typedef struct bench_train {
    int device_index;
    bench_res_status status;
    char error[512];
    int n_layer, n_layer_full, r, tokens, steps;
    char targets[64];
    double first_s;          /* lc_trainer_new + first step */
    double median_s, min_s, max_s;
    double flops_per_step;   /* useful FLOPs (bench_train_flops) */
    double tokens_per_s, gflops;
    uint64_t peak_bytes;
    float first_loss;
} bench_train;

typedef struct bench_run {
    bench_options opt;
    bench_device devices[BENCH_MAX_DEVICES];
    int n_devices;
    int case_sel[64];        /* indices into bench_cases of the selected ops */
    int n_sel;
    bench_result *results;   /* n_sel * n_devices, op-major */
    int n_results;
    bench_train train[BENCH_MAX_DEVICES];
    int n_train;
    bool train_reduced;      /* the training-step model has fewer layers than the config */
} bench_run;

/* ---- helpers (bench_util.c) --------------------------------------------------------------- */
double bench_now(void);
/* Fill t (any shape, any dtype lc_tensor_set_f32 accepts) with uniform values in [lo, hi) from a
 * splitmix64 stream keyed by `seed`: the same seed gives the same data on every device.
 * Errors: LC_ERR_NOMEM, lc_tensor_set_f32's errors. */
lc_status bench_fill_random(lc_tensor *t, uint64_t seed, float lo, float hi);
/* New standalone tensor {ne0, ne1} (ne1 = 1: a vector) of dtype dt with `flags`, filled by
 * bench_fill_random (I32 tensors are left zero), recorded in bg->leaves. Does nothing and returns
 * NULL when *st is already an error; on failure sets *st (LC_ERR_INVALID_ARG when bg->leaves is
 * full, lc_tensor_new's and bench_fill_random's errors) and returns NULL. */
lc_tensor *bench_leaf(bench_graph *bg, lc_device *dev, lc_dtype dt, int64_t ne0, int64_t ne1, uint32_t flags,
                      const char *name, uint64_t seed, float lo, float hi, lc_status *st);
/* Median / min / max of n samples (sorts in place). */
void bench_stats(double *v, int n, double *median, double *min, double *max);
/* Normalised mean square error of n floats: sum((a-ref)^2) / max(sum(ref^2), 1e-30), computed in
 * double; INFINITY when `a` holds a non-finite value where `ref` is finite. */
double bench_nmse(const float *a, const float *ref, int64_t n);

/* ---- training step (bench_train.c) -------------------------------------------------------- */
/* Useful FLOPs of one forward+backward step of cfg with LoRA rank r on `mask`, T tokens in one
 * sequence (formula in README "lorac-bench JSON schema" / --help). */
double bench_train_flops(const lc_model_config *cfg, int r, uint32_t mask, int tokens);
/* Build a random model of opt->cfg (at most opt->train_layers layers) on `dev`, LoRA r 8 on
 * q,k,v,o, and time lc_trainer_new + the first step (out->first_s) and opt->train_steps more steps
 * of opt->tokens tokens. Never fails: errors land in out->status / out->error. */
void bench_train_run(bench_train *out, lc_device *dev, const bench_options *opt);

/* ---- output (bench_report.c, bench_plot.c) ----------------------------------------------- */
/* Write the whole run to f as an aligned text table, Markdown tables, CSV (RFC 4180, one row per
 * measurement) or JSON (RFC 8259; schema "lorac-bench/1" in README.md). */
void bench_report_table(FILE *f, const bench_run *run);
void bench_report_markdown(FILE *f, const bench_run *run);
void bench_report_csv(FILE *f, const bench_run *run);
void bench_report_json(FILE *f, const bench_run *run);
/* Grouped bar chart (one group per op, one bar per device). Errors: LC_ERR_IO naming the file. */
lc_status bench_plot_svg(const char *path, const bench_run *run);

#endif
