/* lorac-bench — the report: a plain aligned table, Markdown, CSV and JSON (schema in README.md,
 * section "lorac-bench JSON schema"). Tables are built as string cells first, then printed. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_COLS 14
#define CELL 96

typedef struct table {
    int n_cols, n_rows, cap;
    uint32_t right;                /* bit c: right-align column c (numbers) */
    char (*cells)[MAX_COLS][CELL]; /* row 0 is the header */
} table;

static void t_row(table *t) {
    if (t->n_rows == t->cap) {
        int cap = t->cap ? 2 * t->cap : 32;
        void *p = realloc(t->cells, (size_t)cap * sizeof *t->cells);
        if (!p) return;
        t->cells = p;
        t->cap = cap;
    }
    memset(t->cells[t->n_rows], 0, sizeof t->cells[0]);
    t->n_rows++;
}

static void t_set(table *t, int col, const char *fmt, ...) {
    if (t->n_rows == 0 || col >= MAX_COLS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->cells[t->n_rows - 1][col], CELL, fmt, ap);
    va_end(ap);
}

static void t_header(table *t, int n, const char *const *names) {
    t->n_cols = n;
    t_row(t);
    for (int i = 0; i < n; i++) t_set(t, i, "%s", names[i]);
}

static void t_print(FILE *f, const table *t, bool markdown) {
    int w[MAX_COLS] = {0};
    for (int r = 0; r < t->n_rows; r++)
        for (int c = 0; c < t->n_cols; c++) {
            int n = (int)strlen(t->cells[r][c]);
            if (n > w[c]) w[c] = n;
        }
    for (int r = 0; r < t->n_rows; r++) {
        if (markdown) fputs("|", f);
        for (int c = 0; c < t->n_cols; c++) {
            const bool right = r > 0 && (t->right & (1u << c));
            if (markdown) fprintf(f, right ? " %*s |" : " %-*s |", w[c], t->cells[r][c]);
            else if (right) fprintf(f, "%s%*s", c ? "  " : "", w[c], t->cells[r][c]);
            else fprintf(f, "%s%-*s", c ? "  " : "", c + 1 < t->n_cols ? w[c] : 0, t->cells[r][c]);
        }
        fputs("\n", f);
        if (r == 0) {
            if (markdown) {
                fputs("|", f);
                for (int c = 0; c < t->n_cols; c++) {
                    fputc(' ', f);
                    for (int k = 0; k < w[c]; k++) fputc('-', f);
                    fputs(t->right & (1u << c) ? ":|" : " |", f);
                }
                fputs("\n", f);
            } else {
                int tot = 0;
                for (int c = 0; c < t->n_cols; c++) tot += w[c] + (c ? 2 : 0);
                for (int k = 0; k < tot; k++) fputc('-', f);
                fputs("\n", f);
            }
        }
    }
    free(t->cells);
}

static const char *unit_of(const bench_result *r) {
    return bench_cases[r->case_index].metric == METRIC_FLOPS ? "GFLOP/s" : "GB/s";
}

static void fmt_ms(char *dst, size_t n, double s) {
    const double ms = s * 1e3;
    snprintf(dst, n, ms >= 100 ? "%.0f" : ms >= 1 ? "%.2f" : "%.3f", ms);
}

static void devices_table(table *t, const bench_run *run) {
    static const char *const h[] = {"device", "backend", "name", "GEMM GFLOP/s", "copy GB/s", "GEMM first ms", "note"};
    t_header(t, 7, h);
    t->right = 0x38;
    for (int d = 0; d < run->n_devices; d++) {
        const bench_device *bd = &run->devices[d];
        t_row(t);
        t_set(t, 0, "%s", bd->info.spec);
        t_set(t, 1, "%s", bd->info.backend);
        t_set(t, 2, "%.40s", bd->info.name);
        t_set(t, 3, "%.1f", bd->gemm_gflops);
        t_set(t, 4, "%.1f", bd->copy_gbps);
        t_set(t, 5, "%.0f", bd->gemm_first_s * 1e3);
        t_set(t, 6, "%s%s %.40s", bd->info.is_cpu && strcmp(bd->info.backend, "cpu") ? "emulated on the CPU " : "",
               bd->status != RES_OK ? bench_status_name(bd->status) : "", bd->status != RES_OK ? bd->error : "");
    }
}

static void ops_table(table *t, const bench_run *run) {
    static const char *const h[] = {"op", "device", "median ms", "min-max ms", "rate", "of peak", "x CPU",
                                    "first ms", "NMSE", "status"};
    t_header(t, 10, h);
    t->right = 0x1fc & ~0x2u;
    for (int i = 0; i < run->n_results; i++) {
        const bench_result *r = &run->results[i];
        char a[32], b[32];
        t_row(t);
        t_set(t, 0, "%s", bench_cases[r->case_index].name);
        t_set(t, 1, "%s", run->devices[r->device_index].info.spec);
        if (r->status == RES_OK) {
            fmt_ms(a, sizeof a, r->median_s);
            t_set(t, 2, "%s", a);
            fmt_ms(a, sizeof a, r->min_s);
            fmt_ms(b, sizeof b, r->max_s);
            t_set(t, 3, "%s-%s", a, b);
            t_set(t, 4, "%.1f %s", r->rate, unit_of(r));
            t_set(t, 5, "%.0f%%", 100.0 * r->ratio_ceiling);
            t_set(t, 6, "%.2fx", r->ratio_cpu);
        }
        if (r->first_s > 0) {
            fmt_ms(a, sizeof a, r->first_s);
            t_set(t, 7, "%s", a);
        }
        if (r->nmse >= 0 && r->device_index > 0) t_set(t, 8, "%.1e", r->nmse);
        t_set(t, 9, "%s", bench_status_name(r->status));
    }
}

static void train_table(table *t, const bench_run *run) {
    static const char *const h[] = {"device", "layers", "tokens", "step ms", "min-max ms", "tokens/s", "GFLOP/s",
                                    "x CPU", "peak MiB", "first s", "status"};
    t_header(t, 11, h);
    t->right = 0x3fe;
    const bench_train *cpu = run->n_train > 0 ? &run->train[0] : NULL;
    for (int i = 0; i < run->n_train; i++) {
        const bench_train *b = &run->train[i];
        char x[32], y[32];
        t_row(t);
        t_set(t, 0, "%s", run->devices[b->device_index].info.spec);
        t_set(t, 1, "%d/%d", b->n_layer, b->n_layer_full);
        t_set(t, 2, "%d", b->tokens);
        if (b->status == RES_OK) {
            fmt_ms(x, sizeof x, b->median_s);
            t_set(t, 3, "%s", x);
            fmt_ms(x, sizeof x, b->min_s);
            fmt_ms(y, sizeof y, b->max_s);
            t_set(t, 4, "%s-%s", x, y);
            t_set(t, 5, "%.0f", b->tokens_per_s);
            t_set(t, 6, "%.1f", b->gflops);
            if (cpu && cpu->status == RES_OK) t_set(t, 7, "%.2fx", cpu->median_s / b->median_s);
            t_set(t, 8, "%.0f", (double)b->peak_bytes / (1024.0 * 1024.0));
            t_set(t, 9, "%.2f", b->first_s);
        }
        t_set(t, 10, "%s", bench_status_name(b->status));
    }
}

static bool has_notes(const bench_run *run) {
    for (int i = 0; i < run->n_results; i++)
        if (run->results[i].error[0]) return true;
    for (int i = 0; i < run->n_train; i++)
        if (run->train[i].error[0]) return true;
    return false;
}

static void notes(FILE *f, const bench_run *run, const char *bullet) {
    for (int i = 0; i < run->n_results; i++) {
        const bench_result *r = &run->results[i];
        if (r->error[0])
            fprintf(f, "%s%s on %s: %s: %s\n", bullet, bench_cases[r->case_index].name,
                    run->devices[r->device_index].info.spec, bench_status_name(r->status), r->error);
    }
    for (int i = 0; i < run->n_train; i++)
        if (run->train[i].error[0])
            fprintf(f, "%strain_step on %s: %s: %s\n", bullet, run->devices[run->train[i].device_index].info.spec,
                    bench_status_name(run->train[i].status), run->train[i].error);
}

static void shapes(FILE *f, const bench_run *run, const char *bullet) {
    for (int s = 0; s < run->n_sel; s++) {
        const bench_result *r = &run->results[s * run->n_devices];
        fprintf(f, "%s%s: %s\n", bullet, bench_cases[r->case_index].name, r->shape[0] ? r->shape : "-");
    }
}

static void header_line(FILE *f, const bench_run *run, const char *pre) {
    const bench_options *o = &run->opt;
    fprintf(f, "%slorac-bench: config %s (n_embd %d, heads %d/%d, head_dim %d, n_ff %d, vocab %d), T %d tokens, "
               "%d repeats%s\n",
            pre, o->cfg.name, o->cfg.model.n_embd, o->cfg.model.n_head, o->cfg.model.n_head_kv, o->cfg.model.head_dim,
            o->cfg.model.n_ff, o->cfg.model.n_vocab, o->tokens, o->repeat, o->quick ? ", quick" : "");
}

static void train_line(FILE *f, const bench_run *run, const char *pre) {
    if (run->n_train == 0) return;
    const bench_train *b = &run->train[0];
    fprintf(f, "%sTraining step: train.h trainer (forward, cross-entropy, backward, AdamW), random %s weights, LoRA r %d "
               "on %s, 1 sequence of %d tokens, %d timed steps; useful FLOPs/step %.4g G%s.\n",
            pre, lc_dtype_name(run->opt.cfg.model.wtype), b->r, b->targets, b->tokens, b->steps, b->flops_per_step * 1e-9,
            run->train_reduced ? "; REDUCED layer count (see 'layers')" : "");
}

void bench_report_table(FILE *f, const bench_run *run) {
    table t = {0};
    header_line(f, run, "");
    fprintf(f, "\nDevices (ceilings measured in this run: GEMM %d^3 via lc_device_gemm, copy %lld MiB SCALE graph)\n",
            run->opt.gemm_n, (long long)(run->opt.copy_bytes >> 20));
    devices_table(&t, run);
    t_print(f, &t, false);
    fprintf(f, "\nOps (of peak: rate / the device's ceiling; x CPU: CPU time / device time)\n");
    memset(&t, 0, sizeof t);
    ops_table(&t, run);
    t_print(f, &t, false);
    fprintf(f, "\nShapes (ne order)\n");
    shapes(f, run, "  ");
    if (run->n_train) {
        fprintf(f, "\n");
        train_line(f, run, "");
        memset(&t, 0, sizeof t);
        train_table(&t, run);
        t_print(f, &t, false);
    }
    if (has_notes(run)) {
        fprintf(f, "\nNotes\n");
        notes(f, run, "  ");
    }
}

void bench_report_markdown(FILE *f, const bench_run *run) {
    table t = {0};
    header_line(f, run, "");
    fprintf(f, "\nDevices (ceilings: GEMM %d^3 via lc_device_gemm, copy %lld MiB SCALE graph)\n\n", run->opt.gemm_n,
            (long long)(run->opt.copy_bytes >> 20));
    devices_table(&t, run);
    t_print(f, &t, true);
    fprintf(f, "\nOps (of peak: rate / the device's ceiling; x CPU: CPU time / device time)\n\n");
    memset(&t, 0, sizeof t);
    ops_table(&t, run);
    t_print(f, &t, true);
    fprintf(f, "\nShapes (ne order):\n\n");
    shapes(f, run, "- ");
    if (run->n_train) {
        fprintf(f, "\n");
        train_line(f, run, "");
        fprintf(f, "\n");
        memset(&t, 0, sizeof t);
        train_table(&t, run);
        t_print(f, &t, true);
    }
    if (has_notes(run)) {
        fprintf(f, "\nNotes:\n\n");
        notes(f, run, "- ");
    }
}

/* CSV: one row per measurement; kind = ceiling | op | train. RFC 4180 quoting. */
static void csv_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void bench_report_csv(FILE *f, const bench_run *run) {
    fprintf(f, "kind,name,device,backend,status,shape,median_s,min_s,max_s,first_s,flops,bytes,rate,unit,"
               "ratio_ceiling,ratio_cpu,nmse,tokens_per_s,peak_bytes,error\n");
    for (int d = 0; d < run->n_devices; d++) {
        const bench_device *bd = &run->devices[d];
        fprintf(f, "ceiling,gemm,%s,%s,%s,%d^3,,,,%.6g,%.6g,,%.6g,GFLOP/s,1,,,,,", bd->info.spec, bd->info.backend,
                bench_status_name(bd->status), run->opt.gemm_n, bd->gemm_first_s, 2.0 * pow(run->opt.gemm_n, 3),
                bd->gemm_gflops);
        csv_str(f, bd->error);
        fprintf(f, "\nceiling,copy,%s,%s,%s,%lld bytes,,,,%.6g,,%.6g,%.6g,GB/s,1,,,,,", bd->info.spec, bd->info.backend,
                bench_status_name(bd->status), (long long)run->opt.copy_bytes, bd->copy_first_s,
                2.0 * (double)run->opt.copy_bytes, bd->copy_gbps);
        csv_str(f, bd->error);
        fputc('\n', f);
    }
    for (int i = 0; i < run->n_results; i++) {
        const bench_result *r = &run->results[i];
        const lc_device_info *in = &run->devices[r->device_index].info;
        fprintf(f, "op,%s,%s,%s,%s,", bench_cases[r->case_index].name, in->spec, in->backend, bench_status_name(r->status));
        csv_str(f, r->shape);
        fprintf(f, ",%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%s,%.6g,%.6g,%.3g,,,", r->median_s, r->min_s, r->max_s,
                r->first_s, r->flops, r->bytes, r->rate, unit_of(r), r->ratio_ceiling, r->ratio_cpu, r->nmse);
        csv_str(f, r->error);
        fputc('\n', f);
    }
    for (int i = 0; i < run->n_train; i++) {
        const bench_train *b = &run->train[i];
        const lc_device_info *in = &run->devices[b->device_index].info;
        char shape[96];
        snprintf(shape, sizeof shape, "%d/%d layers, T %d, r %d on %s", b->n_layer, b->n_layer_full, b->tokens, b->r,
                 b->targets);
        fprintf(f, "train,train_step,%s,%s,%s,", in->spec, in->backend, bench_status_name(b->status));
        csv_str(f, shape);
        fprintf(f, ",%.6g,%.6g,%.6g,%.6g,%.6g,,%.6g,GFLOP/s,,,,%.6g,%llu,", b->median_s, b->min_s, b->max_s, b->first_s,
                b->flops_per_step, b->gflops, b->tokens_per_s, (unsigned long long)b->peak_bytes);
        csv_str(f, b->error);
        fputc('\n', f);
    }
}

/* JSON string with the escapes of RFC 8259. */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* Finite numbers as is; NaN / Inf become null (JSON has neither). */
static void json_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.6g", v);
    else fputs("null", f);
}

void bench_report_json(FILE *f, const bench_run *run) {
    const bench_options *o = &run->opt;
    const lc_model_config *c = &o->cfg.model;
    fprintf(f, "{\n  \"schema\": \"lorac-bench/1\",\n  \"config\": {\"name\": ");
    json_str(f, o->cfg.name);
    fprintf(f, ", \"arch\": \"%s\", \"n_vocab\": %d, \"n_embd\": %d, \"n_layer\": %d, \"n_head\": %d, \"n_head_kv\": %d, "
               "\"head_dim\": %d, \"n_ff\": %d, \"wtype\": \"%s\"},\n",
            lc_arch_name(c->arch), c->n_vocab, c->n_embd, c->n_layer, c->n_head, c->n_head_kv, c->head_dim, c->n_ff,
            lc_dtype_name(c->wtype));
    fprintf(f, "  \"quick\": %s, \"repeat\": %d, \"tokens\": %d, \"gemm_n\": %d, \"copy_bytes\": %lld,\n",
            o->quick ? "true" : "false", o->repeat, o->tokens, o->gemm_n, (long long)o->copy_bytes);
    fprintf(f, "  \"devices\": [\n");
    for (int d = 0; d < run->n_devices; d++) {
        const bench_device *bd = &run->devices[d];
        fprintf(f, "    {\"spec\": ");
        json_str(f, bd->info.spec);
        fprintf(f, ", \"backend\": ");
        json_str(f, bd->info.backend);
        fprintf(f, ", \"name\": ");
        json_str(f, bd->info.name);
        fprintf(f, ", \"driver\": ");
        json_str(f, bd->info.driver);
        fprintf(f, ", \"is_cpu\": %s, \"status\": \"%s\", \"gemm_gflops\": ", bd->info.is_cpu ? "true" : "false",
                bench_status_name(bd->status));
        json_num(f, bd->gemm_gflops);
        fprintf(f, ", \"copy_gbps\": ");
        json_num(f, bd->copy_gbps);
        fprintf(f, ", \"gemm_first_s\": ");
        json_num(f, bd->gemm_first_s);
        fprintf(f, ", \"copy_first_s\": ");
        json_num(f, bd->copy_first_s);
        fprintf(f, ", \"error\": ");
        json_str(f, bd->error);
        fprintf(f, "}%s\n", d + 1 < run->n_devices ? "," : "");
    }
    fprintf(f, "  ],\n  \"ops\": [\n");
    for (int i = 0; i < run->n_results; i++) {
        const bench_result *r = &run->results[i];
        fprintf(f, "    {\"op\": \"%s\", \"device\": ", bench_cases[r->case_index].name);
        json_str(f, run->devices[r->device_index].info.spec);
        fprintf(f, ", \"shape\": ");
        json_str(f, r->shape);
        fprintf(f, ", \"status\": \"%s\", \"unit\": \"%s\", \"flops\": ", bench_status_name(r->status), unit_of(r));
        json_num(f, r->flops);
        fprintf(f, ", \"bytes\": ");
        json_num(f, r->bytes);
        const double vals[] = {r->first_s, r->median_s, r->min_s, r->max_s, r->rate, r->ratio_ceiling, r->ratio_cpu};
        const char *names[] = {"first_s", "median_s", "min_s", "max_s", "rate", "ratio_ceiling", "ratio_cpu"};
        for (int k = 0; k < 7; k++) {
            fprintf(f, ", \"%s\": ", names[k]);
            if (k > 0 && r->status != RES_OK) fputs("null", f);
            else json_num(f, vals[k]);
        }
        fprintf(f, ", \"nmse\": ");
        if (r->nmse >= 0) json_num(f, r->nmse);
        else fputs("null", f);
        fprintf(f, ", \"error\": ");
        json_str(f, r->error);
        fprintf(f, "}%s\n", i + 1 < run->n_results ? "," : "");
    }
    fprintf(f, "  ],\n  \"train\": [\n");
    for (int i = 0; i < run->n_train; i++) {
        const bench_train *b = &run->train[i];
        fprintf(f, "    {\"device\": ");
        json_str(f, run->devices[b->device_index].info.spec);
        fprintf(f, ", \"status\": \"%s\", \"n_layer\": %d, \"n_layer_full\": %d, \"r\": %d, \"targets\": \"%s\", "
                   "\"tokens\": %d, \"steps\": %d, \"flops_per_step\": ",
                bench_status_name(b->status), b->n_layer, b->n_layer_full, b->r, b->targets, b->tokens, b->steps);
        json_num(f, b->flops_per_step);
        const double vals[] = {b->first_s, b->median_s, b->min_s, b->max_s, b->tokens_per_s, b->gflops};
        const char *names[] = {"first_s", "median_s", "min_s", "max_s", "tokens_per_s", "gflops"};
        for (int k = 0; k < 6; k++) {
            fprintf(f, ", \"%s\": ", names[k]);
            if (b->status != RES_OK) fputs("null", f);
            else json_num(f, vals[k]);
        }
        fprintf(f, ", \"peak_bytes\": %llu, \"first_loss\": ", (unsigned long long)b->peak_bytes);
        json_num(f, b->status == RES_OK ? b->first_loss : NAN);
        fprintf(f, ", \"error\": ");
        json_str(f, b->error);
        fprintf(f, "}%s\n", i + 1 < run->n_train ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
}
