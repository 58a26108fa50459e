/* lorac CPU backend — internal interface between the dispatcher (cpu_backend.c) and the kernels.
 *
 * Every op of lorac/graph.h has one kernel `lc_cpu_op_<name>(ctx, node)` (name in lower case as in
 * LC_OP_LIST, e.g. lc_cpu_op_mul_mat_back). Kernels read tensor data through LC_CPU_DATA, honour the
 * `accum` bits of backward nodes, skip NULL gradient outputs, parallelise with OpenMP using
 * ctx->n_threads, and return LC_OK or an lc_error status naming the op. Plain loops live in the
 * tests as references; kernels here may block and vectorise but must not use fast-math.
 */
#ifndef LORAC_CPU_INTERNAL_H
#define LORAC_CPU_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/backend.h"
#include "lorac/graph.h"
#include "lorac/tensor.h"

typedef struct lc_cpu_ctx {
    int n_threads;  /* OpenMP threads: $LORAC_THREADS, else the number of cores */
} lc_cpu_ctx;

/* Host pointer to a tensor's first element; NULL for a NULL tensor. */
#define LC_CPU_DATA(t) ((t) ? (void *)((char *)(t)->buffer->impl + (t)->offset) : NULL)
#define LC_CPU_F32(t) ((float *)LC_CPU_DATA(t))
#define LC_CPU_I32(t) ((int32_t *)LC_CPU_DATA(t))

typedef lc_status (*lc_cpu_kernel_fn)(lc_cpu_ctx *ctx, const lc_node *node);

#define LC_CPU_DECL(name) lc_status lc_cpu_op_##name(lc_cpu_ctx *ctx, const lc_node *node);
/* ops_misc.c */
LC_CPU_DECL(fill) LC_CPU_DECL(get_rows) LC_CPU_DECL(get_rows_back) LC_CPU_DECL(dequantize)
LC_CPU_DECL(cpy) LC_CPU_DECL(sum_sq) LC_CPU_DECL(adamw)
/* ops_matmul.c */
LC_CPU_DECL(mul_mat) LC_CPU_DECL(mul_mat_back) LC_CPU_DECL(lora) LC_CPU_DECL(lora_back)
LC_CPU_DECL(lora_merge)
/* ops_elementwise.c */
LC_CPU_DECL(add) LC_CPU_DECL(add_back) LC_CPU_DECL(mul) LC_CPU_DECL(mul_back)
LC_CPU_DECL(scale) LC_CPU_DECL(scale_back) LC_CPU_DECL(gelu_tanh) LC_CPU_DECL(gelu_tanh_back)
LC_CPU_DECL(silu) LC_CPU_DECL(silu_back) LC_CPU_DECL(geglu) LC_CPU_DECL(geglu_back)
LC_CPU_DECL(swiglu) LC_CPU_DECL(swiglu_back)
/* ops_norm_rope.c */
LC_CPU_DECL(rms_norm) LC_CPU_DECL(rms_norm_back) LC_CPU_DECL(rope) LC_CPU_DECL(rope_back)
/* ops_attention.c */
LC_CPU_DECL(attention) LC_CPU_DECL(attention_back)
/* ops_loss.c */
LC_CPU_DECL(cross_entropy) LC_CPU_DECL(cross_entropy_back)
#undef LC_CPU_DECL

/* cpu_util.c: OpenMP threads to use (>= 1). */
int lc_cpu_threads(const lc_cpu_ctx *ctx);
/* cpu_util.c: `t` present, allocated, of `dtype` (F32 or I32) and packed; else an lc_error naming
 * the op and the field (LC_ERR_INVALID_ARG, LC_ERR_STATE, LC_ERR_DTYPE, LC_ERR_SHAPE). */
lc_status lc_cpu_check_packed(const lc_tensor *t, lc_dtype dtype, const char *op, const char *field);

/* ops_matmul.c: y[M,N] (row-major, ldy) = x[M,K] · w[N,K]ᵀ (+ y when accumulate), where w is
 * given as rows of any dtype (row stride w_nb1 bytes). Quantized or half w is never dequantised
 * whole: for M <= 8 each block is decoded and dotted with x directly (rows of w split over the
 * OpenMP threads), for larger M tiles of rows are dequantised into per-thread scratch and
 * multiplied by single-threaded sgemm in parallel. Results agree with the dequantise-then-sgemm
 * product to float rounding and do not depend on scheduling. Used by mul_mat and lora.
 * Errors: LC_ERR_INVALID_ARG (NULL pointers, sizes, leading dimensions), LC_ERR_DTYPE, LC_ERR_SHAPE
 * (row length not a multiple of the block, row stride), LC_ERR_NOMEM. */
lc_status lc_cpu_matmul_xwT(lc_cpu_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx,
                            const void *w, lc_dtype w_type, size_t w_nb1, int64_t m, int64_t n,
                            int64_t k, bool accumulate);
/* dx[M,K] (+)= dy[M,N] · w[N,K], w rows of any dtype as above: the columns of dx (whole blocks of
 * w) are split over the threads, each dequantising its slice of w tile by tile. Errors as above. */
lc_status lc_cpu_matmul_dyW(lc_cpu_ctx *ctx, float *dx, int64_t lddx, const float *dy, int64_t lddy,
                            const void *w, lc_dtype w_type, size_t w_nb1, int64_t m, int64_t n,
                            int64_t k, bool accumulate);

/* cpu_dropout.c: keep[i] = lc_rng_keep(seed, stream, base + i, p) for 0 <= i < n (lorac/rng.h),
 * one byte 0/1 each; vectorised with AVX-512 or AVX2 where available, bit-identical to lc_rng_keep. */
void lc_cpu_dropout_keep(uint64_t seed, uint64_t stream, uint64_t base, int64_t n, float p, uint8_t *keep);

/* cpu_exp.c: exp(x) in single precision, under 1 ulp from the exact value for normal results
 * (algorithm, range and accuracy in cpu_exp.c); NaN gives NaN, +inf +inf, -inf 0. */
float lc_cpu_expf(float x);
/* cpu_exp.c: max_j x[j] over n >= 0 elements (NaN elements ignored; -inf for n == 0). */
float lc_cpu_row_max(const float *x, int64_t n);
/* cpu_exp.c: sum_j lc_cpu_expf(x[j] - shift) in double (fixed 8-lane order, see cpu_exp.c), and
 * out[j] = lc_cpu_expf(x[j] - shift) when out != NULL (out may equal x). AVX2 when available,
 * bit-identical to the scalar path (lc_cpu_expf). */
double lc_cpu_exp_sum(const float *x, int64_t n, float shift, float *out);
/* cpu_exp.c: out[j] = lc_cpu_expf(x[j]) for j < n (out may equal x); AVX2 when available. */
void lc_cpu_exp_array(float *out, const float *x, int64_t n);

#endif
