// lorac Vulkan shaders — Philox4x32-10 exactly as core/src/rng.c (Salmon et al., SC 2011):
// key = (seed lo, seed hi), counter = (index lo, index hi, stream lo, stream hi), 10 rounds with
// multipliers 0xD2511F53 / 0xCD9E8D57 and Weyl increments 0x9E3779B9 / 0xBB67AE85; the first
// output word is the draw. uniform = (u >> 8) * 2^-24; keep = uniform >= p (lorac/rng.h).
#ifndef LORAC_PHILOX_GLSL
#define LORAC_PHILOX_GLSL

#extension GL_EXT_control_flow_attributes : enable

uint philox_u32(uvec2 seed, uvec2 stream, uvec2 index) {
    uint c0 = index.x, c1 = index.y, c2 = stream.x, c3 = stream.y;
    uint k0 = seed.x, k1 = seed.y;
    [[unroll]] for (int r = 0; r < 10; r++) {
        uint hi0, lo0, hi1, lo1;
        umulExtended(0xD2511F53u, c0, hi0, lo0);
        umulExtended(0xCD9E8D57u, c2, hi1, lo1);
        uint n0 = hi1 ^ c1 ^ k0;
        uint n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c0;
}

// 64-bit index a * b + c as (lo, hi).
uvec2 idx64(uint a, uint b, uint c) {
    uint hi, lo;
    umulExtended(a, b, hi, lo);
    uint carry;
    lo = uaddCarry(lo, c, carry);
    return uvec2(lo, hi + carry);
}

bool philox_keep(uvec2 seed, uvec2 stream, uvec2 index, float p) {
    uint u = philox_u32(seed, stream, index);
    return float(u >> 8) * (1.0 / 16777216.0) >= p;
}

#endif
