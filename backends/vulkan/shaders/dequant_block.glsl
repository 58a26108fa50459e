// lorac Vulkan shaders — dequantisation of a group of 32 consecutive elements of a
// block-quantised row (a block of Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0, a 32-element sub-block of a
// Q4_K / Q5_K / Q6_K super-block) from a few 32-bit loads of its bytes (realigned with shifts),
// for gemm_pack_q.comp (and any kernel that dequantises whole groups). Before including: #define DQB_WORDS
// (a uint[] buffer member), DQB_LAST (the last readable word index) and declare the
// specialisation constant DTYPE. Block layouts and formulas: reference/formats.md §2
// (ggml-common.h / ggml-quants.c); the float operations are those of core/src/dtype.c and
// dequant.glsl in the same order, marked `precise`, so every path gives identical floats.
#ifndef LORAC_DEQUANT_BLOCK_GLSL
#define LORAC_DEQUANT_BLOCK_GLSL

#include "common.glsl"

// n consecutive 32-bit words starting at byte address a (any alignment) into the array `o`:
// loads of the covering aligned words, realigned with shifts (indices constant once unrolled).
#define LOAD_WORDS(o, n, a)                                                                     \
    {                                                                                           \
        uint s_ = ((a) & 3u) * 8u, b_ = (a) >> 2;                                               \
        uint p_ = DQB_WORDS[b_];                                                                       \
        [[unroll]] for (uint j_ = 0u; j_ < (n); j_++) {                                         \
            uint x_ = s_ == 0u ? 0u : DQB_WORDS[min(b_ + j_ + 1u, DQB_LAST)];                      \
            o[j_] = s_ == 0u ? (j_ == 0u ? p_ : DQB_WORDS[b_ + j_]) : (p_ >> s_) | (x_ << (32u - s_)); \
            p_ = x_;                                                                            \
        }                                                                                       \
    }

#define BYTE(o, i) ((o[(i) >> 2] >> (((i) & 3u) * 8u)) & 0xffu)

uint rd_byte(uint a) { return (DQB_WORDS[a >> 2] >> ((a & 3u) * 8u)) & 0xffu; }

// The 32 values of group g of the row starting at byte `row`.
void group(uint row, uint g, out float v[32]) {
    if (DTYPE == DT_Q8_0) {
        uint o[9];
        LOAD_WORDS(o, 9u, row + g * 34u);
        float d = fp16_to_f32(o[0] & 0xffffu);
        [[unroll]] for (uint i = 0u; i < 32u; i++) {
            precise float y = float(int(BYTE(o, i + 2u) << 24) >> 24) * d;
            v[i] = y;
        }
    } else if (DTYPE == DT_Q4_0 || DTYPE == DT_Q4_1) {
        uint o[5];
        LOAD_WORDS(o, 5u, row + g * (DTYPE == DT_Q4_0 ? 18u : 20u));
        float d = fp16_to_f32(o[0] & 0xffffu);
        float m = fp16_to_f32(o[0] >> 16);
        const uint qs = DTYPE == DT_Q4_0 ? 2u : 4u;
        [[unroll]] for (uint j = 0u; j < 16u; j++) {
            uint b = BYTE(o, qs + j);
            if (DTYPE == DT_Q4_0) {
                precise float y0 = float(int(b & 15u) - 8) * d;
                precise float y1 = float(int(b >> 4) - 8) * d;
                v[j] = y0;
                v[j + 16u] = y1;
            } else {
                precise float y0 = float(b & 15u) * d + m;
                precise float y1 = float(b >> 4) * d + m;
                v[j] = y0;
                v[j + 16u] = y1;
            }
        }
    } else if (DTYPE == DT_Q5_0 || DTYPE == DT_Q5_1) {
        uint o[6];
        LOAD_WORDS(o, 6u, row + g * (DTYPE == DT_Q5_0 ? 22u : 24u));
        float d = fp16_to_f32(o[0] & 0xffffu);
        float m = fp16_to_f32(o[0] >> 16);
        uint qh = DTYPE == DT_Q5_0 ? (o[0] >> 16) | (o[1] << 16) : o[1];
        const uint qs = DTYPE == DT_Q5_0 ? 6u : 8u;
        [[unroll]] for (uint j = 0u; j < 16u; j++) {
            uint b = BYTE(o, qs + j);
            uint q0 = (b & 15u) | (((qh >> j) & 1u) << 4);
            uint q1 = (b >> 4) | (((qh >> (j + 16u)) & 1u) << 4);
            if (DTYPE == DT_Q5_0) {
                precise float y0 = float(int(q0) - 16) * d;
                precise float y1 = float(int(q1) - 16) * d;
                v[j] = y0;
                v[j + 16u] = y1;
            } else {
                precise float y0 = float(q0) * d + m;
                precise float y1 = float(q1) * d + m;
                v[j] = y0;
                v[j + 16u] = y1;
            }
        }
    } else if (DTYPE == DT_Q4_K || DTYPE == DT_Q5_K) {
        uint b = row + (g >> 3) * (DTYPE == DT_Q4_K ? 144u : 176u);
        uint sub = g & 7u, c = sub >> 1, hi = sub & 1u;
        uint h[4];
        LOAD_WORDS(h, 4u, b);
        uint q[8];
        LOAD_WORDS(q, 8u, b + (DTYPE == DT_Q4_K ? 16u : 48u) + 32u * c);
        // 6-bit scale and min of sub-block `sub` (scales at bytes 4..15 = words h[1..3])
        uint sc, mn;
        if (sub < 4u) {
            sc = (h[1u + (sub >> 2)] >> ((sub & 3u) * 8u)) & 63u;
            mn = (h[1u + ((sub + 4u) >> 2)] >> (((sub + 4u) & 3u) * 8u)) & 63u;
        } else {
            uint e8 = (h[1u + ((sub + 4u) >> 2)] >> (((sub + 4u) & 3u) * 8u)) & 0xffu;
            uint em4 = (h[1u + ((sub - 4u) >> 2)] >> (((sub - 4u) & 3u) * 8u)) & 0xffu;
            uint e0 = (h[1u + (sub >> 2)] >> ((sub & 3u) * 8u)) & 0xffu;
            sc = (e8 & 15u) | ((em4 >> 6) << 4);
            mn = (e8 >> 4) | ((e0 >> 6) << 4);
        }
        float d = fp16_to_f32(h[0] & 0xffffu);
        float dmin = fp16_to_f32(h[0] >> 16);
        precise float d1 = d * float(sc);
        precise float m1 = dmin * float(mn);
        uint qh[8];
        if (DTYPE == DT_Q5_K) LOAD_WORDS(qh, 8u, b + 16u);
        [[unroll]] for (uint l = 0u; l < 32u; l++) {
            uint byte_ = BYTE(q, l);
            uint qq = hi != 0u ? (byte_ >> 4) : (byte_ & 15u);
            if (DTYPE == DT_Q5_K) qq |= ((BYTE(qh, l) >> (2u * c + hi)) & 1u) << 4;
            precise float y = d1 * float(qq) - m1;
            v[l] = y;
        }
    } else { // DT_Q6_K
        uint b = row + (g >> 3) * 210u;
        uint sub = g & 7u, n = sub >> 2, quarter = sub & 3u;
        uint lo[8], hb[8];
        LOAD_WORDS(lo, 8u, b + 64u * n + ((quarter & 1u) != 0u ? 32u : 0u));
        LOAD_WORDS(hb, 8u, b + 128u + 32u * n);
        float d = fp16_to_f32(rd_byte(b + 208u) | (rd_byte(b + 209u) << 8));
        float sc0 = float(int(rd_byte(b + 192u + 2u * sub) << 24) >> 24);
        float sc1 = float(int(rd_byte(b + 193u + 2u * sub) << 24) >> 24);
        [[unroll]] for (uint l = 0u; l < 32u; l++) {
            uint x = BYTE(lo, l);
            x = quarter >= 2u ? (x >> 4) : (x & 15u);
            uint hh = (BYTE(hb, l) >> (2u * quarter)) & 3u;
            int qq = int(x | (hh << 4)) - 32;
            precise float y = d * (l < 16u ? sc0 : sc1) * float(qq);
            v[l] = y;
        }
    }
}

#endif
