/* lorac tests — plain-loop reference ops in double precision, forward and backward.
 *
 * Written from the op table of lorac/graph.h (semantics, shapes, parameters) and the cited
 * sources, not from any kernel. Shapes are given in ne order (ne[0] contiguous): element [i, j]
 * of a tensor with ne = {n0, n1} is at i + j*n0. Arguments go outputs first, inputs next, sizes
 * last (llm.c convention). Backward functions OVERWRITE their outputs (zeroing first) and skip
 * NULL outputs. All arithmetic is double except where graph.h prescribes single precision
 * (the RoPE angle).
 */
#ifndef REF_OPS_H
#define REF_OPS_H

#include <stdbool.h>
#include <stdint.h>

/* GET_ROWS: y [E, N] = table [E, V] columns ids[n]; backward dtable[:, ids[n]] += dy[:, n]. */
void ref_get_rows(double *y, const double *table, const int32_t *ids, int64_t E, int64_t N);
void ref_get_rows_back(double *dtable, const double *dy, const int32_t *ids, int64_t E, int64_t V, int64_t N);

/* MUL_MAT: y [N, M] = sum_k x [K, M] * w [K, N]. */
void ref_mul_mat(double *y, const double *x, const double *w, int64_t K, int64_t M, int64_t N);
void ref_mul_mat_back(double *dx, double *dw, const double *dy, const double *x, const double *w,
                      int64_t K, int64_t M, int64_t N);

/* LoRA dropout multiplier keep/(1-p) for x [in, T] (all 1 when p == 0):
 * keep = lc_rng_keep(seed, lc_rng_dropout_stream(step, module_id), t*in + i, p). */
void ref_lora_dropout_mult(double *mult, uint64_t seed, uint64_t step, uint32_t module_id, float p,
                           int64_t in, int64_t T);
/* LORA: x [in, T], w [in, out], A [in, r], B [r, out], mult [in, T] (NULL: no dropout)
 * -> y [out, T], u [r, T] (u may be NULL). h = x*mult; u = Aᵀh; y = wᵀx + s·Bᵀu. */
void ref_lora(double *y, double *u, const double *x, const double *w, const double *A, const double *B,
              const double *mult, double s, int64_t in, int64_t out, int64_t r, int64_t T);
void ref_lora_back(double *dx, double *dw, double *dA, double *dB, const double *dy, const double *x,
                   const double *w, const double *A, const double *B, const double *mult, double s,
                   int64_t in, int64_t out, int64_t r, int64_t T);

/* ADD / MUL with broadcast: a [n0, n1], b [m0, m1] repeated. */
void ref_binary(double *y, const double *a, const double *b, bool mul, int64_t n0, int64_t n1, int64_t m0,
                int64_t m1);
void ref_binary_back(double *da, double *db, const double *dy, const double *a, const double *b, bool mul,
                     int64_t n0, int64_t n1, int64_t m0, int64_t m1);

/* RMS_NORM: x [n, R], w [g] or NULL, groups of g (g divides n). */
void ref_rms_norm(double *y, const double *x, const double *w, int64_t n, int64_t R, int64_t g, double eps);
void ref_rms_norm_back(double *dx, double *dw, const double *dy, const double *x, const double *w, int64_t n,
                       int64_t R, int64_t g, double eps);

/* ROPE angle exactly as graph.h: float theta = (float)pos * freq_scale * powf(base, -2.0f*i/n_rot). */
float ref_rope_theta(int32_t pos, int i, int n_rot, float freq_base, float freq_scale);
/* ROPE on x [hd*n_head, T]; inverse rotates by -theta (the backward of the forward). */
void ref_rope(double *y, const double *x, const int32_t *pos, int64_t hd, int64_t n_head, int64_t T, int n_rot,
              int mode, float freq_base, float freq_scale, bool inverse);

/* ATTENTION (see graph.h): q [hd*n_head, Tq*S], k, v [hd*n_kv, Tk*S] -> o [hd*n_head, Tq*S],
 * lse [n_head, Tq*S] (may be NULL). */
typedef struct ref_attn_shape {
    int64_t hd, n_head, n_kv, S, Tq, Tk;
    bool causal;
    int64_t window;
    double scale;
} ref_attn_shape;
void ref_attention(double *o, double *lse, const double *q, const double *k, const double *v,
                   const ref_attn_shape *a);
void ref_attention_back(double *dq, double *dk, double *dv, const double *dout, const double *q,
                        const double *k, const double *v, const ref_attn_shape *a);

/* Activations and their derivatives. */
double ref_gelu_tanh(double x);
double ref_gelu_tanh_d(double x);
double ref_silu(double x);
double ref_silu_d(double x);

/* CROSS_ENTROPY: logits [V, N], labels [N]; D = denom > 0 ? denom : counted rows.
 * loss [1]; lse [N] (NaN for rows that do not count: not specified there). */
void ref_cross_entropy(double *loss, double *lse, const double *logits, const int32_t *labels, int64_t V,
                       int64_t N, int32_t ignore_index, double denom);
void ref_cross_entropy_back(double *dlogits, double dloss, const double *logits, const int32_t *labels,
                            int64_t V, int64_t N, int32_t ignore_index, double denom);

/* SUM_SQ. */
double ref_sum_sq(const double *x, int64_t n);

/* One AdamW step (graph.h ADAMW; torch.optim.AdamW). Updates p, m, v in place. */
void ref_adamw_step(double *p, double *m, double *v, const double *grad, int64_t n, double lr, double beta1,
                    double beta2, double eps, double weight_decay, double grad_scale, int t);

/* LORA_MERGE delta: dw [in, out] = s * sum_j B[j,o] A[i,j]. */
void ref_lora_delta(double *dw, const double *A, const double *B, double s, int64_t in, int64_t out, int64_t r);

#endif
