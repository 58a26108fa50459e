/* lorac — element types, block layouts, fp16/bf16 conversion, (de)quantisation.
 *
 * Type ids equal the ggml/GGUF type ids (reference/formats.md §1), so a GGUF tensor's type maps
 * to lc_dtype without a table. Block layouts and dequantisation formulas: reference/formats.md §2
 * (from ggml-common.h / ggml-quants.c). fp16 is IEEE 754 binary16 with subnormals; bf16 is the
 * upper 16 bits of an IEEE binary32.
 */
#ifndef LORAC_DTYPE_H
#define LORAC_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lc_dtype {
    LC_F32  = 0,
    LC_F16  = 1,
    LC_Q4_0 = 2,
    LC_Q4_1 = 3,
    LC_Q5_0 = 6,
    LC_Q5_1 = 7,
    LC_Q8_0 = 8,
    LC_Q4_K = 12,
    LC_Q5_K = 13,
    LC_Q6_K = 14,
    LC_I32  = 26,  /* token ids, labels, positions */
    LC_BF16 = 30,
    LC_DTYPE_MAX = 64 /* exclusive upper bound of ids; not every id below it is supported */
} lc_dtype;

typedef struct lc_dtype_info {
    const char *name;    /* "f32", "q4_K", ... (GGUF spelling) */
    int64_t block_size;  /* elements per block (1 for plain types, 32 for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0,
                          * 256 for K-quants) */
    size_t type_size;    /* bytes per block */
    bool is_quantized;
    bool is_float;       /* F32, F16, BF16 */
} lc_dtype_info;

/* Info for a supported dtype, NULL for an id lorac does not support. */
const lc_dtype_info *lc_dtype_get(int dtype);

/* True if `dtype` is one of the ids above. */
bool lc_dtype_valid(int dtype);

/* Name, or "unknown" for an unsupported id. */
const char *lc_dtype_name(int dtype);

/* Bytes taken by `n` elements of `dtype` (n must be a multiple of the block size; returns 0 if
 * it is not or if the dtype is unsupported). */
size_t lc_row_size(lc_dtype dtype, int64_t n);

/* Scalar conversions. fp32->fp16 and fp32->bf16 round to nearest even; NaN stays NaN,
 * overflow goes to infinity. */
float    lc_fp16_to_fp32(uint16_t h);
uint16_t lc_fp32_to_fp16(float f);
float    lc_bf16_to_fp32(uint16_t b);
uint16_t lc_fp32_to_bf16(float f);

/* Dequantise (or convert) `n` consecutive elements of `dtype` at `src` into F32 `dst`.
 * `n` must be a multiple of the dtype's block size. Works for every supported dtype except I32.
 * Errors: LC_ERR_DTYPE (unsupported), LC_ERR_INVALID_ARG (n not a multiple of the block). */
lc_status lc_dequantize_row(lc_dtype dtype, const void *src, float *dst, int64_t n);

/* Quantise (or convert) `n` F32 values into `dtype` with the reference (round-to-nearest)
 * quantisers of ggml-quants.c: Q8_0 d = amax/127, q = round(x/d); Q4_0 d = max/-8 (signed max
 * by magnitude), q = min(15, trunc(x/d + 8.5)); Q5_0 d = max/-16, q = min(31, trunc(x/d + 16.5));
 * Q4_1 / Q5_1 min-max: m = min, d = (max - min)/15 (/31), q = min(15 (31), trunc((x - m)/d + 0.5));
 * Q4_K, Q5_K and Q6_K by the reference make_qkx2 / make_qx search without importance weights
 * (the fp16 super-block scale is never rounded to 0).
 * Used by merge into quantized weights and by tests.
 * Errors as lc_dequantize_row, plus LC_ERR_NUMERIC for NaN/Inf input to a block type or a block
 * scale (d, dmin, or the Q4_1/Q5_1 min m) that overflows fp16. */
lc_status lc_quantize_row(lc_dtype dtype, const float *src, void *dst, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
