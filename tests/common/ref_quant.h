/* lorac tests — independent plain-loop number formats: fp16 / bf16 rounding and the block
 * dequantisers of Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K, written from reference/formats.md §2 (layouts of
 * ggml-common.h / ggml-quants.c), plus random valid blocks for kernel tests.
 *
 * Rounding is done arithmetically in double (scale by a power of two, rint with the default
 * round-to-nearest-even mode), not with bit tricks, so it is independent of dtype.c.
 */
#ifndef REF_QUANT_H
#define REF_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/dtype.h"
#include "lt_util.h"

/* IEEE binary16 -> double (subnormals, inf, NaN). */
double ref_fp16_to_double(uint16_t h);
/* float -> binary16 bits, round to nearest even, overflow to inf, NaN -> quiet NaN. */
uint16_t ref_float_to_fp16(float f);
/* bfloat16 bits (upper half of binary32) -> double. */
double ref_bf16_to_double(uint16_t b);
/* float -> bfloat16 bits, round to nearest even, overflow to inf, NaN -> quiet NaN. */
uint16_t ref_float_to_bf16(float f);

/* Bytes of one row of n elements (n a multiple of the block size), as formats.md §2's table. */
size_t ref_row_bytes(lc_dtype dt, int64_t n);
/* Block size of a dtype (1 for F32/F16/BF16). */
int64_t ref_block_size(lc_dtype dt);
/* Dequantise n elements of dt at src into double dst. Supports F32, F16, BF16, Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; returns 0 on success, -1 for another dtype or a bad n.
 * Every value is computed exactly in double (fp16 scales times small integers), so rounding it
 * to float gives the correctly rounded result of the formats.md formula; for Q4_1/Q5_1 this
 * holds while |d| and |m| lie within a factor 2^37 of each other (so for ref_random_blocks and
 * for the lc_quantize_row output of the tests' moderate random rows). */
int ref_dequant(lc_dtype dt, const void *src, double *dst, int64_t n);

/* Fill `n` elements' worth of dt blocks at dst with random valid data: random quants (and random
 * high bits qh), fp16 scales of moderate size (values up to about `scale`; Q4_1/Q5_1 get a
 * negative m of about -scale and d > 0), every K-quant sub-block scale and min different. F32/F16/
 * BF16 get uniform values in [-scale, 1.3*scale). */
void ref_random_blocks(lc_dtype dt, void *dst, int64_t n, double scale, lt_rng *r);

#endif
