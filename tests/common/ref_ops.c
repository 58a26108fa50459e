/* lorac tests — plain-loop double-precision reference ops (see ref_ops.h).
 *
 * Formulas: lorac/graph.h op table; LoRA: reference/peft-lora.md §1.2 and Hu et al.
 * (arXiv:2106.09685); RMSNorm: Zhang & Sennrich (arXiv:1910.07467); RoPE: Su et al.
 * (arXiv:2104.09864) with the NORM/NEOX pairings of reference/formats.md §3; GELU (tanh form):
 * Hendrycks & Gimpel (arXiv:1606.08415); SiLU: Elfwing et al. (arXiv:1702.03118); AdamW:
 * Loshchilov & Hutter (ICLR 2019) as torch.optim.AdamW. Backward formulas are derived by hand
 * (chain rule) and are checked against central differences in test_grad.c.
 */
#include "ref_ops.h"

#include <math.h>
#include <string.h>

#include "lorac/rng.h"

static void zero(double *p, int64_t n) {
    if (p) memset(p, 0, (size_t)n * sizeof(double));
}

/* ---- get_rows --------------------------------------------------------------------------- */
void ref_get_rows(double *y, const double *table, const int32_t *ids, int64_t E, int64_t N) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t e = 0; e < E; e++) y[e + n * E] = table[e + (int64_t)ids[n] * E];
}

void ref_get_rows_back(double *dtable, const double *dy, const int32_t *ids, int64_t E, int64_t V, int64_t N) {
    zero(dtable, E * V);
    for (int64_t n = 0; n < N; n++)
        for (int64_t e = 0; e < E; e++) dtable[e + (int64_t)ids[n] * E] += dy[e + n * E];
}

/* ---- mul_mat ---------------------------------------------------------------------------- */
void ref_mul_mat(double *y, const double *x, const double *w, int64_t K, int64_t M, int64_t N) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) s += x[k + m * K] * w[k + n * K];
            y[n + m * N] = s;
        }
}

void ref_mul_mat_back(double *dx, double *dw, const double *dy, const double *x, const double *w,
                      int64_t K, int64_t M, int64_t N) {
    zero(dx, K * M);
    zero(dw, K * N);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double g = dy[n + m * N];
            if (dx)
                for (int64_t k = 0; k < K; k++) dx[k + m * K] += g * w[k + n * K];
            if (dw)
                for (int64_t k = 0; k < K; k++) dw[k + n * K] += g * x[k + m * K];
        }
}

/* ---- lora ------------------------------------------------------------------------------- */
void ref_lora_dropout_mult(double *mult, uint64_t seed, uint64_t step, uint32_t module_id, float p,
                           int64_t in, int64_t T) {
    uint64_t stream = lc_rng_dropout_stream(step, module_id);
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < in; i++) {
            int64_t idx = t * in + i;
            int keep = p > 0.0f ? lc_rng_keep(seed, stream, (uint64_t)idx, p) : 1;
            mult[idx] = keep ? 1.0 / (1.0 - (double)p) : 0.0;
        }
}

void ref_lora(double *y, double *u, const double *x, const double *w, const double *A, const double *B,
              const double *mult, double s, int64_t in, int64_t out, int64_t r, int64_t T) {
    double uj[512];
    for (int64_t t = 0; t < T; t++) {
        for (int64_t j = 0; j < r; j++) {
            double acc = 0.0;
            for (int64_t i = 0; i < in; i++) {
                double h = x[i + t * in] * (mult ? mult[i + t * in] : 1.0);
                acc += A[i + j * in] * h;
            }
            uj[j] = acc;
            if (u) u[j + t * r] = acc;
        }
        for (int64_t o = 0; o < out; o++) {
            double base = 0.0, low = 0.0;
            for (int64_t i = 0; i < in; i++) base += w[i + o * in] * x[i + t * in];
            for (int64_t j = 0; j < r; j++) low += B[j + o * r] * uj[j];
            y[o + t * out] = base + s * low;
        }
    }
}

void ref_lora_back(double *dx, double *dw, double *dA, double *dB, const double *dy, const double *x,
                   const double *w, const double *A, const double *B, const double *mult, double s,
                   int64_t in, int64_t out, int64_t r, int64_t T) {
    double uj[512], du[512];
    zero(dx, in * T);
    zero(dw, in * out);
    zero(dA, in * r);
    zero(dB, r * out);
    for (int64_t t = 0; t < T; t++) {
        /* recompute u = Aᵀ h */
        for (int64_t j = 0; j < r; j++) {
            double acc = 0.0;
            for (int64_t i = 0; i < in; i++) acc += A[i + j * in] * x[i + t * in] * (mult ? mult[i + t * in] : 1.0);
            uj[j] = acc;
        }
        /* du = s · B dy */
        for (int64_t j = 0; j < r; j++) {
            double acc = 0.0;
            for (int64_t o = 0; o < out; o++) acc += B[j + o * r] * dy[o + t * out];
            du[j] = s * acc;
        }
        if (dB)
            for (int64_t o = 0; o < out; o++)
                for (int64_t j = 0; j < r; j++) dB[j + o * r] += s * uj[j] * dy[o + t * out];
        for (int64_t i = 0; i < in; i++) {
            double m = mult ? mult[i + t * in] : 1.0;
            double h = x[i + t * in] * m;
            double dh = 0.0;
            for (int64_t j = 0; j < r; j++) {
                dh += A[i + j * in] * du[j];
                if (dA) dA[i + j * in] += h * du[j];
            }
            if (dx) {
                double base = 0.0;
                for (int64_t o = 0; o < out; o++) base += w[i + o * in] * dy[o + t * out];
                dx[i + t * in] = base + dh * m;
            }
            if (dw)
                for (int64_t o = 0; o < out; o++) dw[i + o * in] += x[i + t * in] * dy[o + t * out];
        }
    }
}

/* ---- add / mul -------------------------------------------------------------------------- */
void ref_binary(double *y, const double *a, const double *b, bool mul, int64_t n0, int64_t n1, int64_t m0,
                int64_t m1) {
    for (int64_t j = 0; j < n1; j++)
        for (int64_t i = 0; i < n0; i++) {
            double bv = b[(i % m0) + (j % m1) * m0];
            y[i + j * n0] = mul ? a[i + j * n0] * bv : a[i + j * n0] + bv;
        }
}

void ref_binary_back(double *da, double *db, const double *dy, const double *a, const double *b, bool mul,
                     int64_t n0, int64_t n1, int64_t m0, int64_t m1) {
    zero(da, n0 * n1);
    zero(db, m0 * m1);
    for (int64_t j = 0; j < n1; j++)
        for (int64_t i = 0; i < n0; i++) {
            int64_t ib = (i % m0) + (j % m1) * m0;
            double g = dy[i + j * n0];
            if (da) da[i + j * n0] = mul ? g * b[ib] : g;
            if (db) db[ib] += mul ? g * a[i + j * n0] : g;
        }
}

/* ---- rms_norm --------------------------------------------------------------------------- */
void ref_rms_norm(double *y, const double *x, const double *w, int64_t n, int64_t R, int64_t g, double eps) {
    for (int64_t row = 0; row < R; row++)
        for (int64_t g0 = 0; g0 < n; g0 += g) {
            const double *xr = x + row * n + g0;
            double ss = 0.0;
            for (int64_t i = 0; i < g; i++) ss += xr[i] * xr[i];
            double rs = 1.0 / sqrt(ss / (double)g + eps);
            for (int64_t i = 0; i < g; i++) y[row * n + g0 + i] = xr[i] * rs * (w ? w[i] : 1.0);
        }
}

void ref_rms_norm_back(double *dx, double *dw, const double *dy, const double *x, const double *w, int64_t n,
                       int64_t R, int64_t g, double eps) {
    zero(dx, n * R);
    zero(dw, g);
    for (int64_t row = 0; row < R; row++)
        for (int64_t g0 = 0; g0 < n; g0 += g) {
            const double *xr = x + row * n + g0, *dyr = dy + row * n + g0;
            double ss = 0.0, dot = 0.0;
            for (int64_t i = 0; i < g; i++) {
                ss += xr[i] * xr[i];
                dot += dyr[i] * (w ? w[i] : 1.0) * xr[i];
            }
            double rs = 1.0 / sqrt(ss / (double)g + eps);
            for (int64_t i = 0; i < g; i++) {
                double wi = w ? w[i] : 1.0;
                if (dx) dx[row * n + g0 + i] = rs * dyr[i] * wi - rs * rs * rs * xr[i] * dot / (double)g;
                if (dw) dw[i] += dyr[i] * xr[i] * rs;
            }
        }
}

/* ---- rope ------------------------------------------------------------------------------- */
float ref_rope_theta(int32_t pos, int i, int n_rot, float freq_base, float freq_scale) {
    float e = -2.0f * (float)i / (float)n_rot;
    float theta = (float)pos * freq_scale * powf(freq_base, e);
    return theta;
}

void ref_rope(double *y, const double *x, const int32_t *pos, int64_t hd, int64_t n_head, int64_t T, int n_rot,
              int mode, float freq_base, float freq_scale, bool inverse) {
    int64_t C = hd * n_head;
    memcpy(y, x, (size_t)(C * T) * sizeof(double));
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < n_head; h++)
            for (int i = 0; i < n_rot / 2; i++) {
                double th = (double)ref_rope_theta(pos[t], i, n_rot, freq_base, freq_scale);
                double c = cos(th), s = inverse ? -sin(th) : sin(th);
                int64_t ia, ib;
                if (mode == 2) { /* NEOX: (i, i + n_rot/2) */
                    ia = i;
                    ib = i + n_rot / 2;
                } else { /* NORM: (2i, 2i+1) */
                    ia = 2 * i;
                    ib = 2 * i + 1;
                }
                int64_t base = t * C + h * hd;
                double a = x[base + ia], b = x[base + ib];
                y[base + ia] = a * c - b * s;
                y[base + ib] = a * s + b * c;
            }
}

/* ---- attention -------------------------------------------------------------------------- */
static bool attn_visible(const ref_attn_shape *a, int64_t i, int64_t j) {
    int64_t pos = a->Tk - a->Tq + i;
    return (!a->causal || j <= pos) && (a->window == 0 || pos - j < a->window);
}

void ref_attention(double *o, double *lse, const double *q, const double *k, const double *v,
                   const ref_attn_shape *a) {
    int64_t hd = a->hd, Cq = hd * a->n_head, Ck = hd * a->n_kv, grp = a->n_head / a->n_kv;
    double z[4096];
    for (int64_t s = 0; s < a->S; s++)
        for (int64_t h = 0; h < a->n_head; h++)
            for (int64_t i = 0; i < a->Tq; i++) {
                const double *qi = q + (s * a->Tq + i) * Cq + h * hd;
                double *oi = o + (s * a->Tq + i) * Cq + h * hd;
                int64_t hk = h / grp;
                double mx = -INFINITY;
                for (int64_t j = 0; j < a->Tk; j++) {
                    if (!attn_visible(a, i, j)) continue;
                    const double *kj = k + (s * a->Tk + j) * Ck + hk * hd;
                    double d = 0.0;
                    for (int64_t c = 0; c < hd; c++) d += qi[c] * kj[c];
                    z[j] = a->scale * d;
                    if (z[j] > mx) mx = z[j];
                }
                for (int64_t c = 0; c < hd; c++) oi[c] = 0.0;
                if (mx == -INFINITY) {
                    if (lse) lse[h + (s * a->Tq + i) * a->n_head] = -INFINITY;
                    continue;
                }
                double den = 0.0;
                for (int64_t j = 0; j < a->Tk; j++)
                    if (attn_visible(a, i, j)) den += exp(z[j] - mx);
                for (int64_t j = 0; j < a->Tk; j++) {
                    if (!attn_visible(a, i, j)) continue;
                    double p = exp(z[j] - mx) / den;
                    const double *vj = v + (s * a->Tk + j) * Ck + hk * hd;
                    for (int64_t c = 0; c < hd; c++) oi[c] += p * vj[c];
                }
                if (lse) lse[h + (s * a->Tq + i) * a->n_head] = mx + log(den);
            }
}

void ref_attention_back(double *dq, double *dk, double *dv, const double *dout, const double *q,
                        const double *k, const double *v, const ref_attn_shape *a) {
    int64_t hd = a->hd, Cq = hd * a->n_head, Ck = hd * a->n_kv, grp = a->n_head / a->n_kv;
    zero(dq, Cq * a->Tq * a->S);
    zero(dk, Ck * a->Tk * a->S);
    zero(dv, Ck * a->Tk * a->S);
    double z[4096], p[4096], dp[4096];
    for (int64_t s = 0; s < a->S; s++)
        for (int64_t h = 0; h < a->n_head; h++)
            for (int64_t i = 0; i < a->Tq; i++) {
                const double *qi = q + (s * a->Tq + i) * Cq + h * hd;
                const double *doi = dout + (s * a->Tq + i) * Cq + h * hd;
                int64_t hk = h / grp;
                double mx = -INFINITY;
                for (int64_t j = 0; j < a->Tk; j++) {
                    if (!attn_visible(a, i, j)) continue;
                    const double *kj = k + (s * a->Tk + j) * Ck + hk * hd;
                    double d = 0.0;
                    for (int64_t c = 0; c < hd; c++) d += qi[c] * kj[c];
                    z[j] = a->scale * d;
                    if (z[j] > mx) mx = z[j];
                }
                if (mx == -INFINITY) continue;
                double den = 0.0, sum_pdp = 0.0;
                for (int64_t j = 0; j < a->Tk; j++)
                    if (attn_visible(a, i, j)) den += exp(z[j] - mx);
                for (int64_t j = 0; j < a->Tk; j++) {
                    if (!attn_visible(a, i, j)) continue;
                    p[j] = exp(z[j] - mx) / den;
                    const double *vj = v + (s * a->Tk + j) * Ck + hk * hd;
                    double d = 0.0;
                    for (int64_t c = 0; c < hd; c++) d += doi[c] * vj[c];
                    dp[j] = d;
                    sum_pdp += p[j] * d;
                }
                for (int64_t j = 0; j < a->Tk; j++) {
                    if (!attn_visible(a, i, j)) continue;
                    double dz = p[j] * (dp[j] - sum_pdp);
                    const double *kj = k + (s * a->Tk + j) * Ck + hk * hd;
                    int64_t kvoff = (s * a->Tk + j) * Ck + hk * hd;
                    for (int64_t c = 0; c < hd; c++) {
                        if (dv) dv[kvoff + c] += p[j] * doi[c];
                        if (dq) dq[(s * a->Tq + i) * Cq + h * hd + c] += a->scale * dz * kj[c];
                        if (dk) dk[kvoff + c] += a->scale * dz * qi[c];
                    }
                }
            }
}

/* ---- activations ------------------------------------------------------------------------ */
#define REF_SQRT_2_OVER_PI 0.79788456080286535588 /* sqrt(2/pi) */
#define REF_GELU_C 0.044715

double ref_gelu_tanh(double x) {
    return 0.5 * x * (1.0 + tanh(REF_SQRT_2_OVER_PI * (x + REF_GELU_C * x * x * x)));
}

double ref_gelu_tanh_d(double x) {
    double u = REF_SQRT_2_OVER_PI * (x + REF_GELU_C * x * x * x);
    double t = tanh(u);
    double du = REF_SQRT_2_OVER_PI * (1.0 + 3.0 * REF_GELU_C * x * x);
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
}

double ref_silu(double x) { return x / (1.0 + exp(-x)); }

double ref_silu_d(double x) {
    double sg = 1.0 / (1.0 + exp(-x));
    return sg * (1.0 + x * (1.0 - sg));
}

/* ---- cross_entropy ---------------------------------------------------------------------- */
static bool ce_counts(int32_t label, int64_t V, int32_t ignore_index) {
    return label != ignore_index && label >= 0 && label < V;
}

static double ce_lse(const double *l, int64_t V) {
    double mx = -INFINITY, s = 0.0;
    for (int64_t v = 0; v < V; v++)
        if (l[v] > mx) mx = l[v];
    for (int64_t v = 0; v < V; v++) s += exp(l[v] - mx);
    return mx + log(s);
}

void ref_cross_entropy(double *loss, double *lse, const double *logits, const int32_t *labels, int64_t V,
                       int64_t N, int32_t ignore_index, double denom) {
    double sum = 0.0;
    int64_t count = 0;
    for (int64_t n = 0; n < N; n++) {
        const double *l = logits + n * V;
        bool c = ce_counts(labels[n], V, ignore_index);
        double z = ce_lse(l, V);
        if (lse) lse[n] = c ? z : NAN;
        if (!c) continue;
        count++;
        sum += z - l[labels[n]];
    }
    double D = denom > 0.0 ? denom : (double)count;
    *loss = count > 0 ? sum / D : 0.0;
}

void ref_cross_entropy_back(double *dlogits, double dloss, const double *logits, const int32_t *labels,
                            int64_t V, int64_t N, int32_t ignore_index, double denom) {
    int64_t count = 0;
    for (int64_t n = 0; n < N; n++) count += ce_counts(labels[n], V, ignore_index);
    double D = denom > 0.0 ? denom : (double)count;
    zero(dlogits, V * N);
    if (count == 0) return;
    for (int64_t n = 0; n < N; n++) {
        if (!ce_counts(labels[n], V, ignore_index)) continue;
        const double *l = logits + n * V;
        double z = ce_lse(l, V);
        for (int64_t v = 0; v < V; v++)
            dlogits[v + n * V] = dloss / D * (exp(l[v] - z) - (v == labels[n] ? 1.0 : 0.0));
    }
}

/* ---- sum_sq, adamw, merge delta --------------------------------------------------------- */
double ref_sum_sq(const double *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

void ref_adamw_step(double *p, double *m, double *v, const double *grad, int64_t n, double lr, double beta1,
                    double beta2, double eps, double weight_decay, double grad_scale, int t) {
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    for (int64_t i = 0; i < n; i++) {
        double g = grad[i] * grad_scale;
        p[i] *= 1.0 - lr * weight_decay;
        m[i] = beta1 * m[i] + (1.0 - beta1) * g;
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
        p[i] -= lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + eps);
    }
}

void ref_lora_delta(double *dw, const double *A, const double *B, double s, int64_t in, int64_t out, int64_t r) {
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            double acc = 0.0;
            for (int64_t j = 0; j < r; j++) acc += B[j + o * r] * A[i + j * in];
            dw[i + o * in] = s * acc;
        }
}
