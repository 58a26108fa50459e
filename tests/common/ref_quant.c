/* lorac tests — independent fp16/bf16 rounding and block dequantisers (see ref_quant.h).
 * Block layouts and formulas: reference/formats.md §2. */
#include "ref_quant.h"

#include <math.h>
#include <string.h>

/* ---- fp16 / bf16 ------------------------------------------------------------------------ */

/* Round a > 0 (finite) to a binary format with `mant_bits` stored mantissa bits and minimum
 * normal exponent emin (subnormals below), ties to even. */
static double round_binary(double a, int mant_bits, int emin) {
    int e;
    frexp(a, &e); /* a = f * 2^e, f in [0.5, 1) */
    int E = e - 1;
    if (E < emin) E = emin;
    double quantum = ldexp(1.0, E - mant_bits);
    return rint(a / quantum) * quantum;
}

double ref_fp16_to_double(uint16_t h) {
    int sign = h >> 15, ex = (h >> 10) & 31, man = h & 1023;
    double v;
    if (ex == 0) v = ldexp((double)man, -24);
    else if (ex == 31) v = man ? NAN : INFINITY;
    else v = ldexp(1.0 + man / 1024.0, ex - 15);
    return sign ? -v : v;
}

uint16_t ref_float_to_fp16(float f) {
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (isnan(f)) return 0x7E00 | sign;
    double a = fabs((double)f);
    if (isinf(f)) return 0x7C00 | sign;
    if (a == 0.0) return sign;
    double v = round_binary(a, 10, -14);
    if (v >= 65536.0) return 0x7C00 | sign;
    if (v < ldexp(1.0, -14)) return sign | (uint16_t)(v / ldexp(1.0, -24));
    int e;
    frexp(v, &e);
    int E = e - 1;
    uint16_t man = (uint16_t)(v / ldexp(1.0, E - 10) - 1024.0);
    return sign | (uint16_t)((E + 15) << 10) | man;
}

double ref_bf16_to_double(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return (double)f;
}

uint16_t ref_float_to_bf16(float f) {
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (isnan(f)) return 0x7FC0 | sign;
    if (isinf(f)) return 0x7F80 | sign;
    double a = fabs((double)f);
    if (a == 0.0) return sign;
    double v = round_binary(a, 7, -126);
    if (v >= ldexp(1.0, 128)) return 0x7F80 | sign;
    float fv = (float)v; /* exact: v has at most 8 significant bits */
    uint32_t u;
    memcpy(&u, &fv, sizeof u);
    return sign | (uint16_t)(u >> 16);
}

/* ---- blocks ----------------------------------------------------------------------------- */

int64_t ref_block_size(lc_dtype dt) {
    switch (dt) {
    case LC_Q8_0: case LC_Q4_0: case LC_Q4_1: case LC_Q5_0: case LC_Q5_1: return 32;
    case LC_Q4_K: case LC_Q5_K: case LC_Q6_K: return 256;
    default: return 1;
    }
}

static size_t block_bytes(lc_dtype dt) {
    switch (dt) {
    case LC_F32: return 4;
    case LC_F16: case LC_BF16: return 2;
    case LC_Q8_0: return 34;
    case LC_Q4_0: return 18;
    case LC_Q4_1: return 20; /* d; m; qs[16] */
    case LC_Q5_0: return 22; /* d; qh[4]; qs[16] */
    case LC_Q5_1: return 24; /* d; m; qh[4]; qs[16] */
    case LC_Q4_K: return 144;
    case LC_Q5_K: return 176; /* d; dmin; scales[12]; qh[32]; qs[128] */
    case LC_Q6_K: return 210;
    default: return 0;
    }
}

size_t ref_row_bytes(lc_dtype dt, int64_t n) { return block_bytes(dt) * (size_t)(n / ref_block_size(dt)); }

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void scale_min_k4(int j, const uint8_t *s, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

int ref_dequant(lc_dtype dt, const void *src, double *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t bs = ref_block_size(dt);
    if (block_bytes(dt) == 0 || dt == LC_I32 || n % bs != 0) return -1;
    for (int64_t b = 0; b < n / bs; b++) {
        const uint8_t *blk = p + (size_t)b * block_bytes(dt);
        double *y = dst + b * bs;
        switch (dt) {
        case LC_F32: {
            float f;
            memcpy(&f, blk, 4);
            y[0] = f;
            break;
        }
        case LC_F16: y[0] = ref_fp16_to_double(rd16(blk)); break;
        case LC_BF16: y[0] = ref_bf16_to_double(rd16(blk)); break;
        case LC_Q8_0: {
            double d = ref_fp16_to_double(rd16(blk));
            for (int j = 0; j < 32; j++) y[j] = d * (double)(int8_t)blk[2 + j];
            break;
        }
        case LC_Q4_0: {
            double d = ref_fp16_to_double(rd16(blk));
            const uint8_t *qs = blk + 2;
            for (int j = 0; j < 16; j++) {
                y[j] = ((qs[j] & 15) - 8) * d;
                y[j + 16] = ((qs[j] >> 4) - 8) * d;
            }
            break;
        }
        case LC_Q4_1: { /* y = nibble * d + m; element j low nibble of qs[j], j+16 high nibble */
            double d = ref_fp16_to_double(rd16(blk)), m = ref_fp16_to_double(rd16(blk + 2));
            const uint8_t *qs = blk + 4;
            for (int j = 0; j < 16; j++) {
                y[j] = (qs[j] & 15) * d + m;
                y[j + 16] = (qs[j] >> 4) * d + m;
            }
            break;
        }
        case LC_Q5_0: case LC_Q5_1: { /* fifth bit of element j: bit j of the u32 qh */
            int has_m = dt == LC_Q5_1;
            double d = ref_fp16_to_double(rd16(blk)), m = has_m ? ref_fp16_to_double(rd16(blk + 2)) : 0.0;
            uint32_t h = rd32(blk + (has_m ? 4 : 2));
            const uint8_t *qs = blk + (has_m ? 8 : 6);
            for (int j = 0; j < 16; j++) {
                int q0 = (qs[j] & 15) | (int)(((h >> j) & 1u) << 4);
                int q1 = (qs[j] >> 4) | (int)(((h >> (j + 16)) & 1u) << 4);
                if (has_m) {
                    y[j] = q0 * d + m;
                    y[j + 16] = q1 * d + m;
                } else {
                    y[j] = (q0 - 16) * d;
                    y[j + 16] = (q1 - 16) * d;
                }
            }
            break;
        }
        case LC_Q5_K: { /* as Q4_K; chunk c: low half +16 if bit 2c of qh[l], high half bit 2c+1 */
            double d = ref_fp16_to_double(rd16(blk)), dmin = ref_fp16_to_double(rd16(blk + 2));
            const uint8_t *sc = blk + 4, *qh = blk + 16, *qs = blk + 48;
            for (int c = 0; c < 4; c++) {
                int s0, m0, s1, m1;
                scale_min_k4(2 * c, sc, &s0, &m0);
                scale_min_k4(2 * c + 1, sc, &s1, &m1);
                for (int l = 0; l < 32; l++) {
                    uint8_t q = qs[32 * c + l];
                    int lo = (q & 15) + (((qh[l] >> (2 * c)) & 1) ? 16 : 0);
                    int hi = (q >> 4) + (((qh[l] >> (2 * c + 1)) & 1) ? 16 : 0);
                    y[64 * c + l] = d * s0 * lo - dmin * m0;
                    y[64 * c + 32 + l] = d * s1 * hi - dmin * m1;
                }
            }
            break;
        }
        case LC_Q4_K: {
            double d = ref_fp16_to_double(rd16(blk)), dmin = ref_fp16_to_double(rd16(blk + 2));
            const uint8_t *sc = blk + 4, *qs = blk + 16;
            for (int c = 0; c < 4; c++) {
                int s0, m0, s1, m1;
                scale_min_k4(2 * c, sc, &s0, &m0);
                scale_min_k4(2 * c + 1, sc, &s1, &m1);
                for (int l = 0; l < 32; l++) {
                    uint8_t q = qs[32 * c + l];
                    y[64 * c + l] = d * s0 * (q & 15) - dmin * m0;
                    y[64 * c + 32 + l] = d * s1 * (q >> 4) - dmin * m1;
                }
            }
            break;
        }
        case LC_Q6_K: {
            const uint8_t *ql = blk, *qh = blk + 128;
            const int8_t *scales = (const int8_t *)(blk + 192);
            double d = ref_fp16_to_double(rd16(blk + 208));
            int q[256];
            for (int h = 0; h < 2; h++) {
                const uint8_t *L = ql + 64 * h, *H = qh + 32 * h;
                int base = 128 * h;
                for (int l = 0; l < 32; l++) {
                    q[base + l] = ((L[l] & 15) | ((H[l] & 3) << 4)) - 32;
                    q[base + 32 + l] = ((L[l + 32] & 15) | (((H[l] >> 2) & 3) << 4)) - 32;
                    q[base + 64 + l] = ((L[l] >> 4) | (((H[l] >> 4) & 3) << 4)) - 32;
                    q[base + 96 + l] = ((L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)) - 32;
                }
            }
            for (int e = 0; e < 256; e++) y[e] = d * scales[e / 16] * q[e];
            break;
        }
        default: return -1;
        }
    }
    return 0;
}

static void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 255);
    p[1] = (uint8_t)(v >> 8);
}

/* A random fp16 of magnitude in [0.5, 1.5) * scale, random sign when `signed_`. */
static uint16_t rand_half(lt_rng *r, double scale, int signed_) {
    double v = scale * (0.5 + lt_rng_uniform(r));
    if (signed_ && lt_rng_uniform(r) < 0.5) v = -v;
    return ref_float_to_fp16((float)v);
}

void ref_random_blocks(lc_dtype dt, void *dst, int64_t n, double scale, lt_rng *r) {
    uint8_t *p = dst;
    int64_t bs = ref_block_size(dt);
    size_t bb = block_bytes(dt);
    for (int64_t b = 0; b < n / bs; b++) {
        uint8_t *blk = p + (size_t)b * bb;
        if (dt == LC_F32 || dt == LC_F16 || dt == LC_BF16) {
            float v = (float)(scale * (2.3 * lt_rng_uniform(r) - 1.0));
            if (dt == LC_F32) memcpy(blk, &v, 4);
            else wr16(blk, dt == LC_F16 ? ref_float_to_fp16(v) : ref_float_to_bf16(v));
            continue;
        }
        for (size_t i = 0; i < bb; i++) blk[i] = (uint8_t)(lt_rng_next(r) >> 56);
        switch (dt) {
        case LC_Q8_0: case LC_Q4_0:
            wr16(blk, rand_half(r, scale / (dt == LC_Q8_0 ? 127.0 : 8.0), 1));
            break;
        case LC_Q5_0:
            wr16(blk, rand_half(r, scale / 16.0, 1));
            break;
        case LC_Q4_1: case LC_Q5_1: /* y in [m, m + 15d] (31d): m about -scale, d about 2*scale/15 (31) */
            wr16(blk, rand_half(r, 2.0 * scale / (dt == LC_Q4_1 ? 15.0 : 31.0), 0));
            wr16(blk + 2, ref_float_to_fp16((float)-(scale * (0.5 + lt_rng_uniform(r)))));
            break;
        case LC_Q4_K: case LC_Q5_K: {
            /* 6-bit scales 1..63 all different, mins 0..63 all different; d, dmin positive. */
            int sc[8], mn[8];
            for (int j = 0; j < 8; j++) {
                int again;
                do {
                    sc[j] = 1 + lt_rng_int(r, 63);
                    mn[j] = lt_rng_int(r, 64);
                    again = 0;
                    for (int k = 0; k < j; k++) again |= sc[k] == sc[j] || mn[k] == mn[j];
                } while (again);
            }
            uint8_t *s = blk + 4;
            for (int j = 0; j < 4; j++) {
                s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
                s[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
                s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
            }
            wr16(blk, rand_half(r, scale / ((dt == LC_Q5_K ? 31.0 : 15.0) * 40.0), 0));
            wr16(blk + 2, rand_half(r, scale / (2.0 * 40.0), 0));
            break;
        }
        case LC_Q6_K: {
            int8_t *scales = (int8_t *)(blk + 192);
            for (int j = 0; j < 16; j++) {
                int again;
                do {
                    scales[j] = (int8_t)(lt_rng_int(r, 127) - 63);
                    again = scales[j] == 0;
                    for (int k = 0; k < j; k++) again |= scales[k] == scales[j];
                } while (again);
            }
            wr16(blk + 208, rand_half(r, scale / (32.0 * 40.0), 1));
            break;
        }
        default: break;
        }
    }
}
