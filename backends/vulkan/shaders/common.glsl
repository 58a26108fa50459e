// lorac Vulkan shaders — common helpers: exact fp16 / bf16 conversions (integer arithmetic, so no
// driver rounding mode or denormal flushing is involved), 16-bit stores into uint arrays, and the
// dtype ids of lorac/dtype.h. Conversions follow core/src/dtype.c bit for bit: fp16 is IEEE
// binary16 with subnormals, round to nearest even, NaN quietened with its top payload kept; bf16
// is the upper half of a binary32, rounded to nearest even, NaN truncated with the quiet bit set.
#ifndef LORAC_COMMON_GLSL
#define LORAC_COMMON_GLSL

#extension GL_EXT_control_flow_attributes : enable

#define DT_F32 0u
#define DT_F16 1u
#define DT_Q4_0 2u
#define DT_Q4_1 3u
#define DT_Q5_0 6u
#define DT_Q5_1 7u
#define DT_Q8_0 8u
#define DT_Q4_K 12u
#define DT_Q5_K 13u
#define DT_Q6_K 14u
#define DT_BF16 30u

float fp16_to_f32(uint h) {
    uint sign = (h & 0x8000u) << 16;
    uint e = (h >> 10) & 0x1fu;
    uint frac = h & 0x3ffu;
    if (e == 0x1fu) return uintBitsToFloat(sign | 0x7f800000u | (frac << 13));
    if (e == 0u) {
        // subnormal: frac * 2^-24, exact in binary32
        float v = float(frac) * 5.9604644775390625e-8;
        return sign != 0u ? -v : v;
    }
    return uintBitsToFloat(sign | ((e + 112u) << 23) | (frac << 13));
}

uint shift_round_even(uint m, uint s) {
    uint q = m >> s;
    uint rem = m & ((1u << s) - 1u);
    uint half_ = 1u << (s - 1u);
    if (rem > half_ || (rem == half_ && (q & 1u) != 0u)) q++;
    return q;
}

uint f32_to_fp16(float f) {
    uint u = floatBitsToUint(f);
    uint sign = (u >> 16) & 0x8000u;
    uint a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u | ((a >> 13) & 0x3ffu);
    if (a >= 0x38800000u) {
        if (a >= 0x47800000u) return sign | 0x7c00u;
        return sign | shift_round_even(a - 0x38000000u, 13u);
    }
    if (a <= 0x33000000u) return sign;
    uint e = a >> 23;
    uint m = (a & 0x7fffffu) | 0x800000u;
    return sign | shift_round_even(m, 126u - e);
}

float bf16_to_f32(uint b) { return uintBitsToFloat(b << 16); }

uint f32_to_bf16(float f) {
    uint u = floatBitsToUint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return ((u >> 16) | 0x40u) & 0xffffu;
    return ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) & 0xffffu;
}

#endif
