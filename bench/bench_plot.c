/* lorac-bench — a grouped bar chart as hand-written SVG 1.1: one group per op (and one for the
 * training step), one bar per device, bar height = GFLOP/s (products, training step) or GB/s
 * (memory-bound ops; the unit is under each group's name). The value axis is logarithmic when
 * the largest and smallest bars differ by more than 30x, linear otherwise. */
#include <math.h>
#include <string.h>

#include "bench.h"

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

typedef struct bar {
    double v;                 /* > 0 when measured */
    bench_res_status status;
} bar;

lc_status bench_plot_svg(const char *path, const bench_run *run) {
    const int nd = run->n_devices, ng = run->n_sel + (run->n_train > 0 ? 1 : 0);
    if (nd == 0 || ng == 0) return lc_error(LC_ERR_INVALID_ARG, "--plot %s: nothing was measured", path);
    /* collect */
    double vmin = INFINITY, vmax = 0;
    bar bars[64 + 1][BENCH_MAX_DEVICES];
    memset(bars, 0, sizeof bars);
    for (int g = 0; g < ng; g++)
        for (int d = 0; d < nd; d++) {
            bar *b = &bars[g][d];
            if (g < run->n_sel) {
                const bench_result *r = &run->results[g * nd + d];
                b->status = r->status;
                b->v = r->status == RES_OK ? r->rate : 0;
            } else {
                b->status = RES_SKIPPED;
                for (int i = 0; i < run->n_train; i++)
                    if (run->train[i].device_index == d) {
                        b->status = run->train[i].status;
                        b->v = b->status == RES_OK ? run->train[i].gflops : 0;
                    }
            }
            if (b->v > 0) {
                if (b->v < vmin) vmin = b->v;
                if (b->v > vmax) vmax = b->v;
            }
        }
    if (vmax <= 0) vmin = 0.1, vmax = 1;
    const bool logy = vmax / vmin > 30;
    double lo, hi;
    if (logy) {
        lo = pow(10, floor(log10(vmin)));
        hi = pow(10, ceil(log10(vmax)));
    } else {
        lo = 0;
        const double p = pow(10, floor(log10(vmax)));
        hi = ceil(vmax / p) * p;
    }
    const double bw = nd <= 3 ? 14 : nd <= 6 ? 10 : 7, gap = 22, left = 80, top = 60, plot_h = 320, bottom = 140;
    const double gw = nd * bw + gap;
    const double plot_w = ng * gw;
    const double legend_w = 360;
    const double W = left + plot_w + 20 + legend_w, H = top + plot_h + bottom;
    FILE *f = fopen(path, "w");
    if (!f) return lc_error(LC_ERR_IO, "--plot: cannot write '%s'", path);
#define Y(v) (top + plot_h - (logy ? (log10(v) - log10(lo)) / (log10(hi) - log10(lo)) : ((v) - lo) / (hi - lo)) * plot_h)
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"24\" font-size=\"15\" font-weight=\"bold\">lorac-bench: ", left);
    xml_text(f, run->opt.cfg.name);
    fprintf(f, ", T %d tokens%s (higher is better)</text>\n", run->opt.tokens, run->opt.quick ? ", quick" : "");
    fprintf(f, "<text x=\"%.0f\" y=\"42\" fill=\"#555\">bar = GFLOP/s (products, training step) or GB/s "
               "(memory-bound ops), median of the timed repeats; %s scale</text>\n",
            left, logy ? "logarithmic" : "linear");
    /* grid and y ticks */
    if (logy) {
        for (double v = lo; v <= hi * 1.0001; v *= 10) {
            const double y = Y(v);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y, left + plot_w, y);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", left - 6, y + 4, v);
        }
    } else {
        for (int i = 0; i <= 5; i++) {
            const double v = lo + (hi - lo) * i / 5.0, y = Y(v);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y, left + plot_w, y);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", left - 6, y + 4, v);
        }
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, top, left, top + plot_h);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, top + plot_h,
            left + plot_w, top + plot_h);
    fprintf(f, "<text transform=\"translate(18,%.1f) rotate(-90)\" text-anchor=\"middle\">GFLOP/s or GB/s "
               "(see the unit under each op)</text>\n",
            top + plot_h / 2);
    /* bars */
    for (int g = 0; g < ng; g++) {
        const double gx = left + g * gw + gap / 2;
        for (int d = 0; d < nd; d++) {
            const bar *b = &bars[g][d];
            const double x = gx + d * bw;
            if (b->v > 0) {
                const double v = b->v < lo ? lo : b->v, y = Y(v);
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x, y, bw - 1,
                        top + plot_h - y, palette[d % 10]);
                xml_text(f, run->devices[d].info.spec);
                fprintf(f, ": %.3g</title></rect>\n", b->v);
            } else {
                const char *mark = b->status == RES_WRONG ? "WRONG" : b->status == RES_UNSUPPORTED ? "n/a" : "-";
                fprintf(f, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" font-size=\"9\" fill=\"%s\">%s</text>\n",
                        x + bw / 2 + 3, top + plot_h - 4, b->status == RES_WRONG ? "#c00" : "#777", mark);
            }
        }
        const char *name = g < run->n_sel ? bench_cases[run->case_sel[g]].name : "train_step";
        const char *unit = g < run->n_sel ? (bench_cases[run->case_sel[g]].metric == METRIC_FLOPS ? "GFLOP/s" : "GB/s")
                                          : "GFLOP/s";
        const double cx = gx + nd * bw / 2;
        fprintf(f, "<text transform=\"translate(%.1f,%.1f) rotate(-40)\" text-anchor=\"end\">%s (%s)</text>\n",
                cx + 4, top + plot_h + 14, name, unit);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">op (unit)</text>\n", left + plot_w / 2, H - 10);
    /* legend */
    const double lx = left + plot_w + 20;
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">device</text>\n", lx, top);
    for (int d = 0; d < nd; d++) {
        const double y = top + 12 + d * 18;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", lx, y, palette[d % 10]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", lx + 18, y + 10);
        xml_text(f, run->devices[d].info.spec);
        fputs(" ", f);
        char nm[48];
        snprintf(nm, sizeof nm, "%.34s", run->devices[d].info.name);
        xml_text(f, nm);
        fputs("</text>\n", f);
    }
#undef Y
    fputs("</svg>\n", f);
    const bool ok = !ferror(f);
    if (fclose(f) != 0 || !ok) return lc_error(LC_ERR_IO, "--plot: error writing '%s'", path);
    return LC_OK;
}
