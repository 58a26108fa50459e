/* lorac — counter-based random numbers keyed by (seed, stream, index).
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011): key = (seed lo 32, seed hi 32), counter = (index lo, index hi, stream lo, stream hi);
 * lc_rng_u32 returns the first output word. Being a pure function of its key and counter, every
 * backend draws identical numbers (OpenCL and Vulkan kernels implement the same rounds).
 * Constants: multipliers 0xD2511F53, 0xCD9E8D57; Weyl increments 0x9E3779B9, 0xBB67AE85.
 */
#ifndef LORAC_RNG_H
#define LORAC_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Uniform 32-bit integer. */
uint32_t lc_rng_u32(uint64_t seed, uint64_t stream, uint64_t index);

/* Uniform float in [0, 1): (lc_rng_u32(...) >> 8) * 2^-24. */
float lc_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);

/* Dropout keep decision: 1 when lc_rng_uniform(seed, stream, index) >= p, else 0. */
int lc_rng_keep(uint64_t seed, uint64_t stream, uint64_t index, float p);

/* Stream used by a LoRA node's dropout at training step `step`: (step << 24) | module_id.
 * module_id < 2^24. */
uint64_t lc_rng_dropout_stream(uint64_t step, uint32_t module_id);

#ifdef __cplusplus
}
#endif
#endif
