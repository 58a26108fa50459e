/* lorac OpenCL kernels - shared definitions, prepended to every program.
 *
 * OpenCL C 1.2, single precision only: no double anywhere, every float literal has the f
 * suffix, and no half type at all: binary16 and bfloat16 are converted with integer operations,
 * so nothing depends on cl_khr_fp16 or cl_khr_fp64. Contraction of a*b+c into fma is switched off so that element formulas
 * (dequantisation, AdamW, dropout) round exactly as the CPU reference does; products that want
 * a fused multiply-add ask for it explicitly through LC_MAC.
 *
 * Buffers are passed as (global pointer, byte offset) pairs, as CLBlast does: the kernel adds the
 * offset itself (LC_PTR), so tensors at any aligned position of a buffer need no sub-buffers.
 *
 * Type ids are the ggml / GGUF ids of lorac/dtype.h (reference/formats.md section 1).
 * Block layouts and dequantisation formulas: reference/formats.md section 2 (ggml-common.h,
 * ggml-quants.c), with the operation order of core/src/dtype.c so results are bit-identical.
 */
#pragma OPENCL FP_CONTRACT OFF

#define LC_DT_F32 0
#define LC_DT_F16 1
#define LC_DT_Q4_0 2
#define LC_DT_Q4_1 3
#define LC_DT_Q5_0 6
#define LC_DT_Q5_1 7
#define LC_DT_Q8_0 8
#define LC_DT_Q4_K 12
#define LC_DT_Q5_K 13
#define LC_DT_Q6_K 14
#define LC_DT_BF16 30

#ifdef LC_HAVE_FMA
#define LC_MAC(a, b, c) fma((a), (b), (c))
#else
#define LC_MAC(a, b, c) ((a) * (b) + (c))
#endif

/* Typed pointer `base` + `off` bytes. */
#define LC_PTR(type, base, off) ((global type *)((global char *)(base) + (off)))
#define LC_CPTR(type, base, off) ((global const type *)((global const char *)(base) + (off)))

/* ---- scalar formats ---------------------------------------------------------------------- */

/* IEEE binary16 bits -> float, exact (subnormals, infinities and NaN payloads kept). Done with
 * integer operations, so no half type is needed (devices without cl_khr_fp16). */
inline float lc_half_to_float(uint h) {
    const uint sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return as_float(sign | 0x7f800000u | (m << 13));
    if (e == 0u) {
        const float v = (float)m * 5.9604644775390625e-8f; /* m * 2^-24, exact */
        return sign ? -v : v;
    }
    return as_float(sign | ((e + 112u) << 23) | (m << 13));
}

/* binary16 at p (little-endian) -> float. */
inline float lc_f16(global const uchar *p) { return lc_half_to_float((uint)p[0] | ((uint)p[1] << 8)); }

/* m >> s rounded to nearest, ties to even. */
inline uint lc_shift_rne(uint m, uint s) {
    uint q = m >> s;
    const uint rem = m & ((1u << s) - 1u), halfway = 1u << (s - 1u);
    if (rem > halfway || (rem == halfway && (q & 1u))) q++;
    return q;
}

/* float -> binary16 bits, round to nearest even, overflow to infinity, NaN quiet with its top
 * payload bits, subnormal results rounded correctly (as lc_fp32_to_fp16). */
inline ushort lc_to_f16(float f) {
    const uint u = as_uint(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (ushort)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x38800000u) {
        if (a >= 0x47800000u) return (ushort)(sign | 0x7c00u);
        return (ushort)(sign | lc_shift_rne(a - 0x38000000u, 13u));
    }
    if (a <= 0x33000000u) return (ushort)sign;
    const uint e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    return (ushort)(sign | lc_shift_rne(m, 126u - e));
}

/* bfloat16 at p: the upper half of a binary32. */
inline float lc_bf16(global const uchar *p) {
    return as_float(((uint)p[0] | ((uint)p[1] << 8)) << 16);
}

/* float -> bfloat16 bits, round to nearest even; NaN stays a quiet NaN (as lc_fp32_to_bf16). */
inline ushort lc_to_bf16(float f) {
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u);
    return (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline uint lc_u32le(global const uchar *p) {
    return (uint)p[0] | ((uint)p[1] << 8) | ((uint)p[2] << 16) | ((uint)p[3] << 24);
}

/* ---- block dequantisation: element j of the block at b ----------------------------------- */

/* Q4_0 (32, 18 bytes): d; qs[16]. y = (nib - 8) * d. */
inline float lc_deq_q4_0(global const uchar *b, uint j) {
    const float d = lc_f16(b);
    const uchar q = b[2 + (j & 15u)];
    const int nib = j < 16u ? (int)(q & 15u) : (int)(q >> 4);
    return (float)(nib - 8) * d;
}

/* Q4_1 (32, 20 bytes): d; m; qs[16]. y = nib * d + m. */
inline float lc_deq_q4_1(global const uchar *b, uint j) {
    const float d = lc_f16(b), m = lc_f16(b + 2);
    const uchar q = b[4 + (j & 15u)];
    const int nib = j < 16u ? (int)(q & 15u) : (int)(q >> 4);
    return (float)nib * d + m;
}

/* Q5_0 (32, 22 bytes): d; qh[4] (u32, bit j = fifth bit of element j); qs[16].
 * y = ((nib | bit << 4) - 16) * d. */
inline float lc_deq_q5_0(global const uchar *b, uint j) {
    const float d = lc_f16(b);
    const uint h = lc_u32le(b + 2);
    const uchar q = b[6 + (j & 15u)];
    const int nib = j < 16u ? (int)(q & 15u) : (int)(q >> 4);
    const int x = (nib | (int)(((h >> j) & 1u) << 4)) - 16;
    return (float)x * d;
}

/* Q5_1 (32, 24 bytes): d; m; qh[4]; qs[16]. y = (nib | bit << 4) * d + m. */
inline float lc_deq_q5_1(global const uchar *b, uint j) {
    const float d = lc_f16(b), m = lc_f16(b + 2);
    const uint h = lc_u32le(b + 4);
    const uchar q = b[8 + (j & 15u)];
    const int nib = j < 16u ? (int)(q & 15u) : (int)(q >> 4);
    const int x = nib | (int)(((h >> j) & 1u) << 4);
    return (float)x * d + m;
}

/* Q8_0 (32, 34 bytes): d; i8 qs[32]. y = q * d. */
inline float lc_deq_q8_0(global const uchar *b, uint j) {
    const float d = lc_f16(b);
    return (float)(char)b[2 + j] * d;
}

/* 6-bit scale and min of sub-block is (0..7) of a K-quant super-block (get_scale_min_k4). */
inline void lc_scale_min_k4(global const uchar *s, uint is, float *sc, float *mn) {
    if (is < 4u) {
        *sc = (float)(s[is] & 63u);
        *mn = (float)(s[is + 4u] & 63u);
    } else {
        *sc = (float)((s[is + 4u] & 15u) | ((s[is - 4u] >> 6) << 4));
        *mn = (float)((s[is + 4u] >> 4) | ((s[is] >> 6) << 4));
    }
}

/* Q4_K (256, 144 bytes): d; dmin; scales[12]; qs[128]. Chunk c = j/64 reads qs[32c + l]:
 * low nibbles for j%64 < 32 (sub-block 2c), high nibbles otherwise (sub-block 2c+1).
 * y = (d*sc) * nib - (dmin*mn). */
inline float lc_deq_q4_K(global const uchar *b, uint j) {
    const float d = lc_f16(b), dmin = lc_f16(b + 2);
    const uint c = j >> 6, l = j & 31u, is = j >> 5;
    float sc, mn;
    lc_scale_min_k4(b + 4, is, &sc, &mn);
    const uchar q = b[16 + 32u * c + l];
    const float nib = (float)((is & 1u) ? (q >> 4) : (q & 15u));
    const float d1 = d * sc, m1 = dmin * mn;
    return d1 * nib - m1;
}

/* Q5_K (256, 176 bytes): d; dmin; scales[12]; qh[32]; qs[128]. As Q4_K plus 16 when bit
 * (2c + high half) of qh[l] is set. */
inline float lc_deq_q5_K(global const uchar *b, uint j) {
    const float d = lc_f16(b), dmin = lc_f16(b + 2);
    const uint c = j >> 6, l = j & 31u, is = j >> 5;
    float sc, mn;
    lc_scale_min_k4(b + 4, is, &sc, &mn);
    const uchar q = b[48 + 32u * c + l];
    const uint hbit = (b[16 + l] >> is) & 1u; /* is = 2c + (high half) */
    const float v = (float)(((is & 1u) ? (uint)(q >> 4) : (uint)(q & 15u)) + 16u * hbit);
    const float d1 = d * sc, m1 = dmin * mn;
    return d1 * v - m1;
}

/* Q6_K (256, 210 bytes): ql[128]; qh[64]; i8 scales[16]; d (last). Half n = j/128 uses
 * L = ql + 64n, H = qh + 32n; quarter k = (j%128)/32, l = j%32:
 * q = (L[l + 32(k&1)] nibble (low for k<2) | ((H[l] >> 2k) & 3) << 4) - 32; y = (d*sc[j/16]) * q. */
inline float lc_deq_q6_K(global const uchar *b, uint j) {
    const float d = lc_f16(b + 208);
    const uint n = j >> 7, k = (j >> 5) & 3u, l = j & 31u;
    const uchar lo = b[64u * n + l + 32u * (k & 1u)];
    const uint nib = k < 2u ? (uint)(lo & 15u) : (uint)(lo >> 4);
    const uint hb = ((uint)b[128 + 32u * n + l] >> (2u * k)) & 3u;
    const int q = (int)(nib | (hb << 4)) - 32;
    const float sc = (float)(char)b[192 + (j >> 4)];
    return d * sc * (float)q;
}

/* Element c of a row of any weight dtype (row = first byte of the row). Uniform branch. */
inline float lc_load_elem(global const uchar *row, uint c, int dt) {
    switch (dt) {
    case LC_DT_F32: return ((global const float *)row)[c];
    case LC_DT_F16: return lc_f16(row + 2u * c);
    case LC_DT_BF16: return lc_bf16(row + 2u * c);
    case LC_DT_Q4_0: return lc_deq_q4_0(row + 18u * (c >> 5), c & 31u);
    case LC_DT_Q4_1: return lc_deq_q4_1(row + 20u * (c >> 5), c & 31u);
    case LC_DT_Q5_0: return lc_deq_q5_0(row + 22u * (c >> 5), c & 31u);
    case LC_DT_Q5_1: return lc_deq_q5_1(row + 24u * (c >> 5), c & 31u);
    case LC_DT_Q8_0: return lc_deq_q8_0(row + 34u * (c >> 5), c & 31u);
    case LC_DT_Q4_K: return lc_deq_q4_K(row + 144u * (c >> 8), c & 255u);
    case LC_DT_Q5_K: return lc_deq_q5_K(row + 176u * (c >> 8), c & 255u);
    case LC_DT_Q6_K: return lc_deq_q6_K(row + 210u * (c >> 8), c & 255u);
    default: return 0.0f;
    }
}

/* ---- Philox4x32-10 (lorac/rng.h, Salmon et al. SC 2011) ---------------------------------- */

/* First output word for key = seed (lo, hi) and counter = (index lo, index hi, stream lo,
 * stream hi). */
inline uint lc_philox_u32(ulong seed, ulong stream, ulong index) {
    uint c0 = (uint)index, c1 = (uint)(index >> 32), c2 = (uint)stream, c3 = (uint)(stream >> 32);
    uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        const uint hi0 = mul_hi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        const uint hi1 = mul_hi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        const uint n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c1 = lo1;
        c3 = lo0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c0;
}

/* lc_philox_u32 for the 16 indices idx0 .. idx0 + 15 at once (vector form, so the 10 rounds of
 * multiplies run as vector operations on devices that have them). */
inline uint16 lc_philox_u32x16(ulong seed, ulong stream, ulong idx0) {
    const uint16 lane = (uint16)(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u);
    const uint base = (uint)idx0;
    uint16 c0 = (uint16)(base) + lane;
    /* carry into the high word where base + lane wrapped (compare gives -1 for true) */
    uint16 c1 = (uint16)((uint)(idx0 >> 32)) - as_uint16(c0 < (uint16)(base));
    uint16 c2 = (uint16)((uint)stream), c3 = (uint16)((uint)(stream >> 32));
    uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        const uint16 hi0 = mul_hi((uint16)(0xD2511F53u), c0), lo0 = (uint16)(0xD2511F53u) * c0;
        const uint16 hi1 = mul_hi((uint16)(0xCD9E8D57u), c2), lo1 = (uint16)(0xCD9E8D57u) * c2;
        const uint16 n0 = hi1 ^ c1 ^ (uint16)(k0), n2 = hi0 ^ c3 ^ (uint16)(k1);
        c1 = lo1;
        c3 = lo0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c0;
}

/* Dropout keep decision: uniform (u >> 8) * 2^-24 >= p (lc_rng_keep). */
inline int lc_keep(ulong seed, ulong stream, ulong index, float p) {
    return (float)(lc_philox_u32(seed, stream, index) >> 8) * (1.0f / 16777216.0f) >= p;
}

/* ---- work-group reductions (local buffer of get_local_size(0) floats, a power of two) ---- */

inline float lc_wg_sum(local float *buf, float v) {
    const uint lid = get_local_id(0), n = get_local_size(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    buf[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = n >> 1; s > 0u; s >>= 1) {
        if (lid < s) buf[lid] += buf[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return buf[0];
}

inline float lc_wg_max(local float *buf, float v) {
    const uint lid = get_local_id(0), n = get_local_size(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    buf[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = n >> 1; s > 0u; s >>= 1) {
        if (lid < s) buf[lid] = fmax(buf[lid], buf[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return buf[0];
}

/* Kahan-compensated running sum (no fast-math, so the compensation survives). */
typedef struct lc_ksum {
    float s, c;
} lc_ksum;

inline void lc_kadd(lc_ksum *k, float v) {
    const float y = v - k->c;
    const float t = k->s + y;
    k->c = (t - k->s) - y;
    k->s = t;
}
