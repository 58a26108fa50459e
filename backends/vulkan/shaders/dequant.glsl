// lorac Vulkan shaders — element-wise dequantisation of every weight dtype from a uint array with
// byte addressing (blocks of Q4_0 / Q5_0 / Q8_0 are 18 / 22 / 34 bytes, so their fields are not
// 4-byte aligned). Before including, #define DQ_WORDS as the name of a `uint[]` buffer member.
// Block layouts and formulas: reference/formats.md §2 (ggml-common.h / ggml-quants.c); the float
// operations are those of core/src/dtype.c in the same order, marked `precise` so no FMA
// contraction changes the rounding.
#ifndef LORAC_DEQUANT_GLSL
#define LORAC_DEQUANT_GLSL

#include "common.glsl"

uint rd_u8(uint a) { return (DQ_WORDS[a >> 2] >> ((a & 3u) * 8u)) & 0xffu; }

uint rd_u16(uint a) {
    uint s = a & 3u;
    if (s != 3u) return (DQ_WORDS[a >> 2] >> (s * 8u)) & 0xffffu;
    return rd_u8(a) | (rd_u8(a + 1u) << 8);
}

uint rd_u32(uint a) {
    uint s = (a & 3u) * 8u;
    if (s == 0u) return DQ_WORDS[a >> 2];
    return (DQ_WORDS[a >> 2] >> s) | (DQ_WORDS[(a >> 2) + 1u] << (32u - s));
}

int rd_i8(uint a) { return int(rd_u8(a) << 24) >> 24; }

// 6-bit scale and min of sub-block j (0..7) of a K-quant super-block; scales at byte s.
void scale_min_k4(uint j, uint s, out uint sc, out uint mn) {
    if (j < 4u) {
        sc = rd_u8(s + j) & 63u;
        mn = rd_u8(s + j + 4u) & 63u;
    } else {
        sc = (rd_u8(s + j + 4u) & 15u) | ((rd_u8(s + j - 4u) >> 6) << 4);
        mn = (rd_u8(s + j + 4u) >> 4) | ((rd_u8(s + j) >> 6) << 4);
    }
}

// Element i (0-based) of the row of dtype `dt` that starts at byte `row`.
float dq_elem(uint dt, uint row, uint i) {
    if (dt == DT_F32) return uintBitsToFloat(rd_u32(row + 4u * i));
    if (dt == DT_F16) return fp16_to_f32(rd_u16(row + 2u * i));
    if (dt == DT_BF16) return bf16_to_f32(rd_u16(row + 2u * i));
    if (dt == DT_Q8_0) {
        uint b = row + (i >> 5) * 34u;
        float d = fp16_to_f32(rd_u16(b));
        precise float y = float(rd_i8(b + 2u + (i & 31u))) * d;
        return y;
    }
    if (dt == DT_Q4_0 || dt == DT_Q4_1 || dt == DT_Q5_0 || dt == DT_Q5_1) {
        uint bs = dt == DT_Q4_0 ? 18u : dt == DT_Q4_1 ? 20u : dt == DT_Q5_0 ? 22u : 24u;
        uint b = row + (i >> 5) * bs;
        uint j = i & 31u;
        uint qs = b + (dt == DT_Q4_0 ? 2u : dt == DT_Q4_1 ? 4u : dt == DT_Q5_0 ? 6u : 8u);
        uint byte_ = rd_u8(qs + (j & 15u));
        uint q = j < 16u ? (byte_ & 15u) : (byte_ >> 4);
        float d = fp16_to_f32(rd_u16(b));
        if (dt == DT_Q4_0) {
            precise float y = float(int(q) - 8) * d;
            return y;
        }
        if (dt == DT_Q4_1) {
            float m = fp16_to_f32(rd_u16(b + 2u));
            precise float y = float(q) * d + m;
            return y;
        }
        uint qh = rd_u32(b + (dt == DT_Q5_0 ? 2u : 4u));
        q |= ((qh >> j) & 1u) << 4;
        if (dt == DT_Q5_0) {
            precise float y = float(int(q) - 16) * d;
            return y;
        }
        float m = fp16_to_f32(rd_u16(b + 2u));
        precise float y = float(q) * d + m;
        return y;
    }
    if (dt == DT_Q4_K || dt == DT_Q5_K) {
        uint bs = dt == DT_Q4_K ? 144u : 176u;
        uint b = row + (i >> 8) * bs;
        uint e = i & 255u;
        uint c = e >> 6, hi = (e >> 5) & 1u, l = e & 31u;
        uint sc, mn;
        scale_min_k4(2u * c + hi, b + 4u, sc, mn);
        float d = fp16_to_f32(rd_u16(b));
        float dmin = fp16_to_f32(rd_u16(b + 2u));
        uint qs = b + (dt == DT_Q4_K ? 16u : 48u);
        uint byte_ = rd_u8(qs + 32u * c + l);
        uint q = hi != 0u ? (byte_ >> 4) : (byte_ & 15u);
        if (dt == DT_Q5_K) q |= ((rd_u8(b + 16u + l) >> (2u * c + hi)) & 1u) << 4;
        precise float d1 = d * float(sc);
        precise float m1 = dmin * float(mn);
        precise float y = d1 * float(q) - m1;
        return y;
    }
    if (dt == DT_Q6_K) {
        uint b = row + (i >> 8) * 210u;
        uint e = i & 255u;
        uint n = e >> 7, quarter = (e >> 5) & 3u, l = e & 31u;
        uint L = b + 64u * n, H = b + 128u + 32u * n;
        uint h = rd_u8(H + l);
        uint lo = rd_u8(L + l + ((quarter & 1u) != 0u ? 32u : 0u));
        lo = quarter >= 2u ? (lo >> 4) : (lo & 15u);
        uint hb = (h >> (2u * quarter)) & 3u;
        int q = int(lo | (hb << 4)) - 32;
        float d = fp16_to_f32(rd_u16(b + 208u));
        precise float y = d * float(rd_i8(b + 192u + (e >> 4))) * float(q);
        return y;
    }
    return 0.0;
}

#endif
