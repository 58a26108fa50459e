/* lorac — element types: the info table, fp16/bf16 conversion, row sizes, and the reference
 * (de)quantisers for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K (see lorac/dtype.h).
 *
 * Block layouts and dequantisation formulas: reference/formats.md §2 (ggml-common.h,
 * ggml-quants.c). fp16 is IEEE 754 binary16 (1 sign, 5 exponent bits with bias 15, 10 fraction
 * bits, subnormals below 2^-14); bf16 is the upper half of an IEEE binary32. The quantisers
 * follow the reference round-to-nearest algorithms of ggml-quants.c (quantize_row_*_ref):
 * Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 give the same bytes as ggml (and as gguf-py's numpy
 * quantisers); Q4_K, Q5_K and Q6_K use the same weighted least-squares
 * scale/min search (make_qkx2_quants, weights av_x + |x|) and symmetric scale search
 * (make_qx_quants, weights x^2) without importance weights. One deliberate difference: the K-quant
 * sub-block scales are quantised against the STORED fp16 super-block scale, which is never
 * flushed to 0 (fp16_scale), so blocks whose d is an fp16 subnormal keep their precision;
 * elsewhere the results agree with ggml up to rare rounding ties. The block quantisers refuse
 * NaN/Inf input and scales (d, dmin, the Q4_1/Q5_1 minimum m) beyond the fp16 range with
 * LC_ERR_NUMERIC; float-to-integer conversions are clamped first, so inputs near the float
 * limits or in its subnormal range never reach an undefined conversion.
 *
 * Every multi-byte field is little-endian (GGUF), so the host must be little-endian. Blocks are
 * copied through memcpy, so `src`/`dst` need no particular alignment.
 */
#include "lorac/dtype.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* Dequantisation must round like ggml's (d·sc)·q - dmin·m, so no FMA contraction (GCC in ISO C
 * mode, -std=c11, already has -ffp-contract=off; clang contracts by default). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lorac reads GGUF/ggml blocks in place and needs a little-endian host"
#endif

/* ---- block layouts (formats.md §2; ggml-common.h) ----------------------------------------- */

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK_K 256
#define K_SCALE_SIZE 12

/* Q4_0: 32 weights; y = (nibble - 8)·d. qs[j] holds element j (low nibble) and j+16 (high). */
typedef struct {
    uint16_t d;              /* fp16 scale */
    uint8_t qs[QK4_0 / 2];
} lc_block_q4_0;
static_assert(sizeof(lc_block_q4_0) == 18, "Q4_0 block must be 18 bytes");

/* Q4_1: 32 weights; y = nibble·d + m (nibble 0..15). Nibble order as Q4_0. */
typedef struct {
    uint16_t d;              /* fp16 scale */
    uint16_t m;              /* fp16 offset (the block minimum) */
    uint8_t qs[QK4_1 / 2];
} lc_block_q4_1;
static_assert(sizeof(lc_block_q4_1) == 20, "Q4_1 block must be 20 bytes");

/* Q5_0: 32 weights; y = ((nibble | bit << 4) - 16)·d. Nibbles as Q4_0; the fifth bit of element
 * j is bit j of the little-endian u32 in qh. */
typedef struct {
    uint16_t d;              /* fp16 scale */
    uint8_t qh[4];           /* fifth bits of the 32 elements */
    uint8_t qs[QK5_0 / 2];
} lc_block_q5_0;
static_assert(sizeof(lc_block_q5_0) == 22, "Q5_0 block must be 22 bytes");

/* Q5_1: 32 weights; y = (nibble | bit << 4)·d + m, bits and nibbles as Q5_0. */
typedef struct {
    uint16_t d;              /* fp16 scale */
    uint16_t m;              /* fp16 offset (the block minimum) */
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} lc_block_q5_1;
static_assert(sizeof(lc_block_q5_1) == 24, "Q5_1 block must be 24 bytes");

/* Q8_0: 32 weights; y = qs·d. */
typedef struct {
    uint16_t d;              /* fp16 scale */
    int8_t qs[QK8_0];
} lc_block_q8_0;
static_assert(sizeof(lc_block_q8_0) == 34, "Q8_0 block must be 34 bytes");

/* Q4_K: 256 weights in 8 sub-blocks of 32; y = d·sc·q - dmin·m with 6-bit sc, m per sub-block
 * packed into scales[12] (get_scale_min_k4 below). */
typedef struct {
    uint16_t d;              /* fp16 super-block scale of the sub-block scales */
    uint16_t dmin;           /* fp16 super-block scale of the sub-block mins */
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];    /* 4-bit quants, 4 chunks of 64 weights in 32 bytes */
} lc_block_q4_K;
static_assert(sizeof(lc_block_q4_K) == 144, "Q4_K block must be 144 bytes");

/* Q5_K: as Q4_K with 5-bit q: y = d·sc·(nibble + 16·bit) - dmin·m. In chunk c of 64 weights
 * the low half (sub-block 2c) reads bit 2c of qh[l], the high half (2c+1) bit 2c+1. */
typedef struct {
    uint16_t d;              /* fp16 super-block scale of the sub-block scales */
    uint16_t dmin;           /* fp16 super-block scale of the sub-block mins */
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];    /* fifth bits: qh[l] bit k belongs to sub-block k, element l */
    uint8_t qs[QK_K / 2];    /* low 4 bits, laid out as in Q4_K */
} lc_block_q5_K;
static_assert(sizeof(lc_block_q5_K) == 176, "Q5_K block must be 176 bytes");

/* Q6_K: 256 weights in 16 sub-blocks of 16; y = d·scales[e/16]·(q - 32), 6-bit q split into a
 * low nibble (ql) and 2 high bits (qh). d comes LAST. */
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;              /* fp16 super-block scale */
} lc_block_q6_K;
static_assert(sizeof(lc_block_q6_K) == 210, "Q6_K block must be 210 bytes");

/* ---- info table --------------------------------------------------------------------------- */

static const lc_dtype_info dtype_info[LC_DTYPE_MAX] = {
    [LC_F32]  = {"f32",  1,     4,                     false, true},
    [LC_F16]  = {"f16",  1,     2,                     false, true},
    [LC_Q4_0] = {"q4_0", QK4_0, sizeof(lc_block_q4_0), true,  false},
    [LC_Q4_1] = {"q4_1", QK4_1, sizeof(lc_block_q4_1), true,  false},
    [LC_Q5_0] = {"q5_0", QK5_0, sizeof(lc_block_q5_0), true,  false},
    [LC_Q5_1] = {"q5_1", QK5_1, sizeof(lc_block_q5_1), true,  false},
    [LC_Q8_0] = {"q8_0", QK8_0, sizeof(lc_block_q8_0), true,  false},
    [LC_Q4_K] = {"q4_K", QK_K,  sizeof(lc_block_q4_K), true,  false},
    [LC_Q5_K] = {"q5_K", QK_K,  sizeof(lc_block_q5_K), true,  false},
    [LC_Q6_K] = {"q6_K", QK_K,  sizeof(lc_block_q6_K), true,  false},
    [LC_I32]  = {"i32",  1,     4,                     false, false},
    [LC_BF16] = {"bf16", 1,     2,                     false, true},
};

const lc_dtype_info *lc_dtype_get(int dtype) {
    if (dtype < 0 || dtype >= LC_DTYPE_MAX) return NULL;
    const lc_dtype_info *info = &dtype_info[dtype];
    return info->name ? info : NULL;
}

bool lc_dtype_valid(int dtype) { return lc_dtype_get(dtype) != NULL; }

const char *lc_dtype_name(int dtype) {
    const lc_dtype_info *info = lc_dtype_get(dtype);
    return info ? info->name : "unknown";
}

size_t lc_row_size(lc_dtype dtype, int64_t n) {
    const lc_dtype_info *info = lc_dtype_get((int)dtype);
    if (!info || n < 0 || n % info->block_size != 0) return 0;
    uint64_t blocks = (uint64_t)(n / info->block_size);
    if (blocks > SIZE_MAX / info->type_size) return 0; /* byte count overflows size_t */
    return (size_t)blocks * info->type_size;
}

/* ---- fp16 / bf16 ------------------------------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Shift `m` right by `s` (1..31) bits, rounding to nearest with ties to even. */
static uint32_t shift_round_even(uint32_t m, unsigned s) {
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1u);
    uint32_t half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return q;
}

float lc_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t frac = h & 0x3ffu;
    if (exp == 0x1fu) /* Inf, or NaN with its payload kept */
        return f32_from_bits(sign | 0x7f800000u | (frac << 13));
    if (exp == 0) {
        if (frac == 0) return f32_from_bits(sign); /* ±0 */
        /* subnormal: frac·2^-24, exact in binary32 */
        float v = ldexpf((float)frac, -24);
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((exp + 112u) << 23) | (frac << 13)); /* rebias 15 -> 127 */
}

uint16_t lc_fp32_to_fp16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet it, keep the top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x38800000u) { /* |f| >= 2^-14: normal range (or overflow to Inf) */
        if (a >= 0x47800000u) return (uint16_t)(sign | 0x7c00u); /* >= 2^16: Inf (also f = Inf) */
        /* rebias the exponent 127 -> 15 and round the 23-bit fraction to 10 bits; a carry out
         * of the fraction correctly bumps the exponent (up to Inf above 65504). */
        return (uint16_t)(sign | shift_round_even(a - 0x38000000u, 13));
    }
    if (a <= 0x33000000u) return sign; /* |f| <= 2^-25: rounds to ±0 (2^-25 is a tie to even 0) */
    /* subnormal result: value = m·2^(e-150) with the implicit bit; in units of 2^-24 that is
     * m >> (126 - e), where 14 <= 126 - e <= 24. A round-up to 0x400 is the smallest normal. */
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | shift_round_even(m, 126u - e));
}

float lc_bf16_to_fp32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

uint16_t lc_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: truncate and force the quiet bit */
        return (uint16_t)((u >> 16) | 0x40u);
    /* round to nearest even on the low 16 bits; overflow carries into Inf */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* ---- dequantisation (formats.md §2) ------------------------------------------------------ */

/* 6-bit scale sc and min m of sub-block j (0..7) of a K-quant super-block (get_scale_min_k4). */
static void get_scale_min_k4(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63u;
        *m = s[j + 4] & 63u;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0fu) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

static void dequantize_q4_0(const uint8_t *src, float *y, int64_t nblocks) {
    for (int64_t i = 0; i < nblocks; i++, y += QK4_0) {
        lc_block_q4_0 b;
        memcpy(&b, src + (size_t)i * sizeof b, sizeof b);
        const float d = lc_fp16_to_fp32(b.d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[j] = (float)((int)(b.qs[j] & 0x0fu) - 8) * d;
            y[j + QK4_0 / 2] = (float)((int)(b.qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequantize_q4_1(const uint8_t *src, float *y, int64_t nblocks) {
    for (int64_t i = 0; i < nblocks; i++, y += QK4_1) {
        lc_block_q4_1 b;
        memcpy(&b, src + (size_t)i * sizeof b, sizeof b);
        const float d = lc_fp16_to_fp32(b.d), m = lc_fp16_to_fp32(b.m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[j] = (float)(b.qs[j] & 0x0fu) * d + m;
            y[j + QK4_1 / 2] = (float)(b.qs[j] >> 4) * d + m;
        }
    }
}

/* The 5-bit values 0..31 of a Q5_0/Q5_1 block: nibbles from qs, bit j of the u32 qh on top. */
static void unpack_q5(const uint8_t qh_bytes[4], const uint8_t qs[16], int q[32]) {
    const uint32_t qh = (uint32_t)qh_bytes[0] | (uint32_t)qh_bytes[1] << 8 | (uint32_t)qh_bytes[2] << 16 |
                        (uint32_t)qh_bytes[3] << 24;
    for (int j = 0; j < 16; j++) {
        q[j] = (int)((qs[j] & 0x0fu) | (((qh >> j) & 1u) << 4));
        q[j + 16] = (int)((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
    }
}

static void dequantize_q5_0(const uint8_t *src, float *y, int64_t nblocks) {
    int q[QK5_0];
    for (int64_t i = 0; i < nblocks; i++, y += QK5_0) {
        lc_block_q5_0 b;
        memcpy(&b, src + (size_t)i * sizeof b, sizeof b);
        const float d = lc_fp16_to_fp32(b.d);
        unpack_q5(b.qh, b.qs, q);
        for (int j = 0; j < QK5_0; j++) y[j] = (float)(q[j] - 16) * d;
    }
}

static void dequantize_q5_1(const uint8_t *src, float *y, int64_t nblocks) {
    int q[QK5_1];
    for (int64_t i = 0; i < nblocks; i++, y += QK5_1) {
        lc_block_q5_1 b;
        memcpy(&b, src + (size_t)i * sizeof b, sizeof b);
        const float d = lc_fp16_to_fp32(b.d), m = lc_fp16_to_fp32(b.m);
        unpack_q5(b.qh, b.qs, q);
        for (int j = 0; j < QK5_1; j++) y[j] = (float)q[j] * d + m;
    }
}

static void dequantize_q8_0(const uint8_t *src, float *y, int64_t nblocks) {
    for (int64_t i = 0; i < nblocks; i++, y += QK8_0) {
        lc_block_q8_0 b;
        memcpy(&b, src + (size_t)i * sizeof b, sizeof b);
        const float d = lc_fp16_to_fp32(b.d);
        for (int j = 0; j < QK8_0; j++) y[j] = (float)b.qs[j] * d;
    }
}

static void dequantize_q4_K(const uint8_t *src, float *y, int64_t nblocks) {
    for (int64_t i = 0; i < nblocks; i++) {
        lc_block_q4_K b;
        memcpy(&b, src + (size_t)i * sizeof b, sizeof b);
        const float d = lc_fp16_to_fp32(b.d);
        const float dmin = lc_fp16_to_fp32(b.dmin);
        const uint8_t *q = b.qs;
        for (int c = 0; c < 4; c++, q += 32) { /* chunk c: sub-blocks 2c (low) and 2c+1 (high) */
            uint8_t sc, m;
            get_scale_min_k4(2 * c, b.scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            get_scale_min_k4(2 * c + 1, b.scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0x0fu) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

static void dequantize_q5_K(const uint8_t *src, float *y, int64_t nblocks) {
    for (int64_t i = 0; i < nblocks; i++) {
        lc_block_q5_K b;
        memcpy(&b, src + (size_t)i * sizeof b, sizeof b);
        const float d = lc_fp16_to_fp32(b.d);
        const float dmin = lc_fp16_to_fp32(b.dmin);
        const uint8_t *q = b.qs;
        for (int c = 0; c < 4; c++, q += 32) { /* chunk c: sub-blocks 2c (low) and 2c+1 (high) */
            uint8_t sc, m;
            get_scale_min_k4(2 * c, b.scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            get_scale_min_k4(2 * c + 1, b.scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            const unsigned lo_bit = 2u * (unsigned)c, hi_bit = lo_bit + 1u;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((q[l] & 0x0fu) | (((b.qh[l] >> lo_bit) & 1u) << 4)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)((q[l] >> 4) | (((b.qh[l] >> hi_bit) & 1u) << 4)) - m2;
        }
    }
}

static void dequantize_q6_K(const uint8_t *src, float *y, int64_t nblocks) {
    for (int64_t i = 0; i < nblocks; i++, y += QK_K) {
        lc_block_q6_K b;
        memcpy(&b, src + (size_t)i * sizeof b, sizeof b);
        const float d = lc_fp16_to_fp32(b.d);
        for (int n = 0; n < 2; n++) { /* halves of 128: ql + 64n, qh + 32n */
            const uint8_t *ql = b.ql + 64 * n, *qh = b.qh + 32 * n;
            float *out = y + 128 * n;
            const int8_t *sc = b.scales + 8 * n;
            for (int l = 0; l < 32; l++) {
                const int q0 = (int)((ql[l] & 0x0fu) | ((qh[l] & 3u) << 4)) - 32;
                const int q1 = (int)((ql[l + 32] & 0x0fu) | (((qh[l] >> 2) & 3u) << 4)) - 32;
                const int q2 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3u) << 4)) - 32;
                const int q3 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3u) << 4)) - 32;
                const int is = l / 16; /* element e = 128n + 32k + l has scale index e/16 */
                out[l] = d * (float)sc[is + 0] * (float)q0;
                out[l + 32] = d * (float)sc[is + 2] * (float)q1;
                out[l + 64] = d * (float)sc[is + 4] * (float)q2;
                out[l + 96] = d * (float)sc[is + 6] * (float)q3;
            }
        }
    }
}

/* Common argument checks of lc_dequantize_row / lc_quantize_row. */
static lc_status check_row_args(const char *fn, lc_dtype dtype, const void *src, const void *dst,
                                int64_t n, const lc_dtype_info **out) {
    const lc_dtype_info *info = lc_dtype_get((int)dtype);
    if (!info)
        return lc_error(LC_ERR_DTYPE, "%s: unsupported dtype id %d (n=%lld)", fn, (int)dtype, (long long)n);
    if (dtype == LC_I32)
        return lc_error(LC_ERR_DTYPE, "%s: dtype i32 holds integers, not values to convert (n=%lld)",
                        fn, (long long)n);
    if (n < 0 || n % info->block_size != 0)
        return lc_error(LC_ERR_INVALID_ARG,
                        "%s: n=%lld is not a non-negative multiple of the %s block size %lld", fn,
                        (long long)n, info->name, (long long)info->block_size);
    if (n > 0 && (!src || !dst))
        return lc_error(LC_ERR_INVALID_ARG, "%s: NULL %s for %s, n=%lld", fn, src ? "dst" : "src",
                        info->name, (long long)n);
    *out = info;
    return LC_OK;
}

lc_status lc_dequantize_row(lc_dtype dtype, const void *src, float *dst, int64_t n) {
    const lc_dtype_info *info = NULL;
    lc_status st = check_row_args("lc_dequantize_row", dtype, src, dst, n, &info);
    if (st != LC_OK || n == 0) return st;
    const uint8_t *s = src;
    const int64_t nblocks = n / info->block_size;
    switch (dtype) {
    case LC_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case LC_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = lc_fp16_to_fp32(h);
        }
        break;
    case LC_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t b;
            memcpy(&b, s + 2 * i, 2);
            dst[i] = lc_bf16_to_fp32(b);
        }
        break;
    case LC_Q4_0: dequantize_q4_0(s, dst, nblocks); break;
    case LC_Q4_1: dequantize_q4_1(s, dst, nblocks); break;
    case LC_Q5_0: dequantize_q5_0(s, dst, nblocks); break;
    case LC_Q5_1: dequantize_q5_1(s, dst, nblocks); break;
    case LC_Q8_0: dequantize_q8_0(s, dst, nblocks); break;
    case LC_Q4_K: dequantize_q4_K(s, dst, nblocks); break;
    case LC_Q5_K: dequantize_q5_K(s, dst, nblocks); break;
    case LC_Q6_K: dequantize_q6_K(s, dst, nblocks); break;
    default:
        return lc_error(LC_ERR_DTYPE, "lc_dequantize_row: no dequantiser for dtype %s", info->name);
    }
    return LC_OK;
}

/* ---- reference quantisers (ggml-quants.c quantize_row_*_ref) ------------------------------ */

/* Round v to the nearest integer (ties to even, as ggml's nearest_int), after clamping it to
 * [lo, hi] so that no out-of-range float reaches the integer conversion. */
static int round_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo; /* also catches NaN */
    if (v > (float)hi) return hi;
    return (int)lrintf(v);
}

/* trunc(v) clamped to [0, hi], as ggml's MIN(hi, (int8_t)v) for the v >= 0 its legacy
 * quantisers produce; NaN and out-of-range v (from a scale near the float limits) are clamped
 * instead of reaching an undefined float-to-integer conversion. */
static int trunc_clamp(float v, int hi) {
    if (!(v >= 1.0f)) return 0; /* also catches NaN */
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* fp16 of the super-block scale d of a K-quant whose sub-block scales are stored as integers
 * in [-limit, limit] (largest = the sub-block scale of largest magnitude). Above the fp16
 * subnormal range this is plain rounding. Below it the rounding error of d reaches several
 * percent, so d is never flushed to 0 (tiny blocks keep scales relative to 2^-24 instead of
 * vanishing) and is moved one ulp away from zero when rounding it down would push
 * largest/d past the integer range. 0 stays 0. */
static uint16_t fp16_scale(float d, float largest, float limit) {
    if (d == 0.0f) return 0;
    uint16_t h = lc_fp32_to_fp16(d);
    /* a flushed ±0 gives largest/0 = Inf and becomes the smallest subnormal ±2^-24 */
    if ((h & 0x7c00u) != 0x7c00u && fabsf(largest / lc_fp16_to_fp32(h)) >= limit + 0.5f) h++;
    return h;
}

/* Q8_0: d = amax/127, q = roundf(x·(1/d)) (round half away from zero). */
static void quantize_block_q8_0(const float *x, lc_block_q8_0 *y) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y->d = lc_fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; j++) y->qs[j] = (int8_t)roundf(x[j] * id);
}

/* Q4_0: d = max/-8 with max the first element of largest magnitude (signed), so that it maps to
 * nibble 0; nibble = min(15, trunc(x·(1/d) + 8.5)). */
static void quantize_block_q4_0(const float *x, lc_block_q4_0 *y) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK4_0; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y->d = lc_fp32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; j++) {
        /* x·id lies in [-8, 8] up to rounding, so x·id + 8.5 is positive */
        const int q0 = trunc_clamp(x[j] * id + 8.5f, 15), q1 = trunc_clamp(x[j + QK4_0 / 2] * id + 8.5f, 15);
        y->qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
}

/* Q5_0: as Q4_0 with 32 levels: d = max/-16, q = min(31, trunc(x·(1/d) + 16.5)); the low
 * nibbles go to qs as in Q4_0, the fifth bits to the u32 qh (bit j for element j). */
static void quantize_block_q5_0(const float *x, lc_block_q5_0 *y) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK5_0; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const float d = max / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y->d = lc_fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; j++) {
        const int q0 = trunc_clamp(x[j] * id + 16.5f, 31), q1 = trunc_clamp(x[j + QK5_0 / 2] * id + 16.5f, 31);
        y->qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
        qh |= (uint32_t)(q0 >> 4) << j;
        qh |= (uint32_t)(q1 >> 4) << (j + QK5_0 / 2);
    }
    for (int k = 0; k < 4; k++) y->qh[k] = (uint8_t)(qh >> (8 * k));
}

/* Min-max quantisation of one 32-element block shared by Q4_1 (nmax 15) and Q5_1 (nmax 31):
 * m = min, d = (max - min)/nmax, q = min(nmax, trunc((x - min)·(1/d) + 0.5)). Stores the fp16
 * d and m and returns the levels in q. */
static void quantize_minmax(const float *x, int nmax, uint16_t *d_out, uint16_t *m_out, int q[32]) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / (float)nmax;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    *d_out = lc_fp32_to_fp16(d);
    *m_out = lc_fp32_to_fp16(min);
    for (int j = 0; j < 32; j++) q[j] = trunc_clamp((x[j] - min) * id + 0.5f, nmax);
}

static void quantize_block_q4_1(const float *x, lc_block_q4_1 *y) {
    int q[QK4_1];
    quantize_minmax(x, 15, &y->d, &y->m, q);
    for (int j = 0; j < QK4_1 / 2; j++) y->qs[j] = (uint8_t)(q[j] | (q[j + QK4_1 / 2] << 4));
}

static void quantize_block_q5_1(const float *x, lc_block_q5_1 *y) {
    int q[QK5_1];
    quantize_minmax(x, 31, &y->d, &y->m, q);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; j++) {
        y->qs[j] = (uint8_t)((q[j] & 0x0f) | ((q[j + QK5_1 / 2] & 0x0f) << 4));
        qh |= (uint32_t)(q[j] >> 4) << j;
        qh |= (uint32_t)(q[j + QK5_1 / 2] >> 4) << (j + QK5_1 / 2);
    }
    for (int k = 0; k < 4; k++) y->qh[k] = (uint8_t)(qh >> (8 * k));
}

/* Asymmetric fit x ≈ scale·L - the_min with L in [0, nmax], minimising sum w·(scale·L + min - x)^2
 * (make_qkx2_quants). Starts from the min/max grid, then tries nstep+1 grids of
 * iscale = (rmin + rdelta·k + nmax)/(max - min), solving the weighted least-squares problem for
 * (scale, min) on each (min clamped to <= 0), and keeps the best. Returns scale; *the_min = -min
 * (>= 0). n <= 32. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *the_min, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = 0.0f, sum_x = 0.0f;
    for (int i = 0; i < n; i++) {
        min = fminf(min, x[i]);
        max = fmaxf(max, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0.0f) min = 0.0f;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1.0f / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)round_clamp(iscale * (x[i] - min), 0, nmax);
        const float diff = scale * (float)L[i] + min - x[i];
        best_error += w[i] * diff * diff;
    }
    uint8_t trial[32];
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * (float)k + (float)nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = round_clamp(iscale * (x[i] - min), 0, nmax);
            trial[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0.0f)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (this_min > 0.0f) { /* a positive offset is not representable: refit scale alone */
            this_min = 0.0f;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            const float diff = this_scale * (float)trial[i] + this_min - x[i];
            err += w[i] * diff * diff;
        }
        if (err < best_error) {
            memcpy(L, trial, (size_t)n);
            best_error = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *the_min = -min;
    return scale;
}

/* Symmetric fit x ≈ scale·(L - nmax), L - nmax in [-nmax, nmax-1], with weights x^2
 * (make_qx_quants, rmse_type 1): starts from iscale = -nmax/max (max the signed value of largest
 * magnitude), then tries iscale = -(nmax + 0.1k)/max for k = -9..9 and keeps the grid with the
 * largest (sum w·x·l)^2 / sum w·l^2, i.e. the smallest weighted error at the optimal scale.
 * Returns scale (0 for an all-zero group). n <= 16. */
static float fit_scale_symmetric(int n, int nmax, const float *x, uint8_t *L) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-15f) { /* GROUP_MAX_EPS */
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    int8_t trial[16];
    float best_scale = 0.0f, best = 0.0f;
    for (int k = 0; k <= 19; k++) {
        /* k = 0 is the plain grid; k = 1..19 are the offsets -9..9 without 0 */
        const int off = k == 0 ? 0 : (k <= 9 ? k - 10 : k - 9);
        const float iscale = -((float)nmax + 0.1f * (float)off) / max;
        float sumlx = 0.0f, suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = round_clamp(iscale * x[i], -nmax, nmax - 1);
            trial[i] = (int8_t)l;
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (k == 0 || (suml2 > 0.0f && sumlx * sumlx > best * suml2)) {
            best_scale = suml2 > 0.0f ? sumlx / suml2 : 0.0f;
            best = best_scale * sumlx;
            for (int i = 0; i < n; i++) L[i] = (uint8_t)(trial[i] + nmax);
        }
    }
    return best_scale;
}

/* The scale part of Q4_K and Q5_K (quantize_row_q4_K_ref / q5_K_ref): per sub-block of 32 an
 * asymmetric (scale, min) fit with weights av_x + |x| (av_x = RMS of the sub-block) over levels
 * 0..nmax, searched with fit_scale_min(rmin, rdelta 0.1, nstep) (Q4_K: nmax 15, rmin -1, 20
 * steps; Q5_K: nmax 31, rmin -0.5, 15 steps); scales and mins are then quantised to 6 bits
 * against the super-block maxima (d = max_scale/63, dmin = max_min/63), packed into
 * scales_out[12], and the levels L[256] recomputed with the stored scales. */
static void quantize_kquant_scales(const float *x, int nmax, float rmin, int nstep, uint8_t L[QK_K],
                                   uint16_t *d_out, uint16_t *dmin_out, uint8_t scales_out[K_SCALE_SIZE]) {
    float scales[QK_K / 32], mins[QK_K / 32], w[32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < QK_K / 32; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        const float av_x = sqrtf(sum_x2 / 32.0f);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep);
        max_scale = fmaxf(max_scale, scales[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    *d_out = fp16_scale(max_scale / 63.0f, max_scale, 63.0f);
    *dmin_out = fp16_scale(max_min / 63.0f, max_min, 63.0f);
    const float d_all = lc_fp16_to_fp32(*d_out), dmin_all = lc_fp16_to_fp32(*dmin_out);
    uint8_t *sp = scales_out;
    memset(sp, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; j++) {
        /* 6-bit sc, m against the STORED fp16 d, dmin (ggml divides by the unrounded ones; the
         * two agree except where fp16 rounding of d matters, e.g. subnormal d) */
        const uint8_t ls = (uint8_t)(d_all > 0.0f ? round_clamp(scales[j] / d_all, 0, 63) : 0);
        const uint8_t lm = (uint8_t)(dmin_all > 0.0f ? round_clamp(mins[j] / dmin_all, 0, 63) : 0);
        if (j < 4) { /* the inverse of get_scale_min_k4 */
            sp[j] = ls;
            sp[j + 4] = lm;
        } else {
            sp[j + 4] = (uint8_t)((ls & 0x0fu) | ((lm & 0x0fu) << 4));
            sp[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sp[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        get_scale_min_k4(j, sp, &sc, &m);
        const float d = d_all * (float)sc;
        if (d == 0.0f) continue; /* every q gives -dmin·m: keep the fit's quants */
        const float dm = dmin_all * (float)m;
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)round_clamp((x[32 * j + l] + dm) / d, 0, nmax);
    }
}

/* Q4_K: quantize_kquant_scales with 4-bit levels; chunk c of 64 weights packs sub-block 2c in
 * the low and 2c+1 in the high nibbles of qs[32c..32c+31]. */
static void quantize_block_q4_K(const float *x, lc_block_q4_K *y) {
    uint8_t L[QK_K];
    quantize_kquant_scales(x, 15, -1.0f, 20, L, &y->d, &y->dmin, y->scales);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            y->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

/* Q5_K: quantize_kquant_scales with 5-bit levels; the low nibbles are packed as in Q4_K and the
 * fifth bit of element l of sub-block k goes to bit k of qh[l]. */
static void quantize_block_q5_K(const float *x, lc_block_q5_K *y) {
    uint8_t L[QK_K];
    quantize_kquant_scales(x, 31, -0.5f, 15, L, &y->d, &y->dmin, y->scales);
    memset(y->qh, 0, sizeof y->qh);
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            const uint8_t lo = L[64 * c + l], hi = L[64 * c + 32 + l];
            y->qs[32 * c + l] = (uint8_t)((lo & 0x0fu) | ((hi & 0x0fu) << 4));
            y->qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
        }
    }
}

/* Q6_K: per sub-block of 16 a symmetric scale fit; the 16 scales are quantised to int8 against
 * the one of largest magnitude (iscale = -128/max_scale, d = 1/iscale), then the 6-bit quants
 * are recomputed with the stored scales. */
static void quantize_block_q6_K(const float *x, lc_block_q6_K *y) {
    uint8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0.0f, max_abs_scale = 0.0f;
    for (int ib = 0; ib < QK_K / 16; ib++) {
        scales[ib] = fit_scale_symmetric(16, 32, x + 16 * ib, L + 16 * ib);
        if (fabsf(scales[ib]) > max_abs_scale) {
            max_abs_scale = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }
    if (max_abs_scale < 1e-15f) { /* all (near) zero: an all-zero block dequantises to 0 */
        memset(y, 0, sizeof *y);
        return;
    }
    /* d = max_scale/-128 so that the largest scale is stored as -128; the int8 scales are
     * taken against the STORED fp16 d (ggml uses the unrounded one) */
    y->d = fp16_scale(max_scale / -128.0f, max_scale, 128.0f);
    const float d_all = lc_fp16_to_fp32(y->d);
    for (int ib = 0; ib < QK_K / 16; ib++) y->scales[ib] = (int8_t)round_clamp(scales[ib] / d_all, -128, 127);
    for (int j = 0; j < QK_K / 16; j++) {
        const float d = d_all * (float)y->scales[j];
        if (d == 0.0f) continue;
        for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)(round_clamp(x[16 * j + l] / d, -32, 31) + 32);
    }
    for (int n = 0; n < 2; n++) { /* the inverse of the unpacking in dequantize_q6_K */
        const uint8_t *Ln = L + 128 * n;
        uint8_t *ql = y->ql + 64 * n, *qh = y->qh + 32 * n;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((Ln[l] & 0x0fu) | ((Ln[l + 64] & 0x0fu) << 4));
            ql[l + 32] = (uint8_t)((Ln[l + 32] & 0x0fu) | ((Ln[l + 96] & 0x0fu) << 4));
            qh[l] = (uint8_t)((Ln[l] >> 4) | ((Ln[l + 32] >> 4) << 2) | ((Ln[l + 64] >> 4) << 4) |
                              ((Ln[l + 96] >> 4) << 6));
        }
    }
}

/* False when an fp16 scale field (d, dmin) of the block just written overflowed to Inf: such a
 * block would dequantise to Inf/NaN. */
static bool block_scales_finite(lc_dtype dtype, const uint8_t *blk) {
    uint16_t h[2];
    int count = 1;
    switch (dtype) {
    case LC_Q4_0:
    case LC_Q5_0:
    case LC_Q8_0: memcpy(&h[0], blk, 2); break;
    case LC_Q4_1:
    case LC_Q5_1: /* d, m */
    case LC_Q4_K:
    case LC_Q5_K: memcpy(h, blk, 4); count = 2; break; /* d, dmin */
    case LC_Q6_K: memcpy(&h[0], blk + offsetof(lc_block_q6_K, d), 2); break;
    default: return true;
    }
    for (int i = 0; i < count; i++)
        if ((h[i] & 0x7c00u) == 0x7c00u) return false;
    return true;
}

lc_status lc_quantize_row(lc_dtype dtype, const float *src, void *dst, int64_t n) {
    const lc_dtype_info *info = NULL;
    lc_status st = check_row_args("lc_quantize_row", dtype, src, dst, n, &info);
    if (st != LC_OK || n == 0) return st;
    uint8_t *out = dst;
    switch (dtype) {
    case LC_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return LC_OK;
    case LC_F16:
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h = lc_fp32_to_fp16(src[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        return LC_OK;
    case LC_BF16:
        for (int64_t i = 0; i < n; i++) {
            const uint16_t b = lc_fp32_to_bf16(src[i]);
            memcpy(out + 2 * i, &b, 2);
        }
        return LC_OK;
    default: break;
    }
    /* block quantisers: the input must be finite and every scale must fit in fp16 */
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return lc_error(LC_ERR_NUMERIC, "lc_quantize_row: %s input element %lld of n=%lld is %s",
                            info->name, (long long)i, (long long)n, isnan(src[i]) ? "NaN" : "infinite");
    const int64_t bs = info->block_size, nblocks = n / bs;
    for (int64_t i = 0; i < nblocks; i++) {
        const float *x = src + i * bs;
        uint8_t *blk = out + (size_t)i * info->type_size;
        switch (dtype) {
        case LC_Q4_0: { lc_block_q4_0 b; quantize_block_q4_0(x, &b); memcpy(blk, &b, sizeof b); break; }
        case LC_Q4_1: { lc_block_q4_1 b; quantize_block_q4_1(x, &b); memcpy(blk, &b, sizeof b); break; }
        case LC_Q5_0: { lc_block_q5_0 b; quantize_block_q5_0(x, &b); memcpy(blk, &b, sizeof b); break; }
        case LC_Q5_1: { lc_block_q5_1 b; quantize_block_q5_1(x, &b); memcpy(blk, &b, sizeof b); break; }
        case LC_Q8_0: { lc_block_q8_0 b; quantize_block_q8_0(x, &b); memcpy(blk, &b, sizeof b); break; }
        case LC_Q4_K: { lc_block_q4_K b; quantize_block_q4_K(x, &b); memcpy(blk, &b, sizeof b); break; }
        case LC_Q5_K: { lc_block_q5_K b; quantize_block_q5_K(x, &b); memcpy(blk, &b, sizeof b); break; }
        case LC_Q6_K: { lc_block_q6_K b; quantize_block_q6_K(x, &b); memcpy(blk, &b, sizeof b); break; }
        default:
            return lc_error(LC_ERR_DTYPE, "lc_quantize_row: no quantiser for dtype %s", info->name);
        }
        if (!block_scales_finite(dtype, blk))
            return lc_error(LC_ERR_NUMERIC,
                            "lc_quantize_row: %s block %lld (n=%lld): values too large, the block "
                            "scale overflows fp16",
                            info->name, (long long)i, (long long)n);
    }
    return LC_OK;
}
