/* lorac — helpers shared by the GGUF reader (gguf.c) and writer (gguf_writer.c). Not public.
 * Format: reference/formats.md §1. */
#ifndef LORAC_GGUF_INTERNAL_H
#define LORAC_GGUF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/gguf.h"

/* Bytes of one scalar of metadata value type `type`; 0 for STRING, ARRAY and unknown ids. */
size_t lc_gguf_value_size(int type);

/* Bytes of a tensor of ggml type `type` with shape ne[4] (ne[0] contiguous; unused dims 1;
 * each ne >= 0): type_size * ne[0]/block_size * ne[1]*ne[2]*ne[3]. Zero-sized dimensions count
 * as 1 in the element-count check, so an absurd shape is refused even when the tensor is empty.
 * Returns 0 on success, 1 when the element count reaches INT64_MAX, 2 when ne[0] is not a
 * multiple of the block size, 3 when the byte size overflows int64/size_t, 4 for an unknown type. */
int lc_gguf_tensor_nbytes(int type, const int64_t ne[4], uint64_t *bytes);

/* The little-endian bytes of scalar key id `kid` as stored (8 bytes, zero-filled past the value's
 * size); NULL when out of range. Meaningless for STRING and ARRAY keys. */
const uint8_t *lc_gguf_kv_raw(const lc_gguf *f, int64_t kid);

static inline bool lc_gguf_is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* *out = PAD(x, a) = x rounded up to a multiple of the power of two `a`; false on overflow. */
static inline bool lc_gguf_pad(uint64_t x, uint64_t a, uint64_t *out) {
    if (x > UINT64_MAX - (a - 1)) return false;
    *out = (x + a - 1) & ~(a - 1);
    return true;
}

#endif
