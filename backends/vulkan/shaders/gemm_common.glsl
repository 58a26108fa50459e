// lorac — shared parts of the product kernels: push constants and the epilogue
// C = alpha * acc + beta * C for C in F32, F16 or BF16 (16-bit results stored with atomic and/or
// on their 32-bit word, computed in F32 and rounded once: lorac/graph.h LORA_MERGE). beta == 0
// never reads C (BLAS semantics). A and B are F32 read as vec4, each either k-contiguous
// ([M][K], [N][K]; K a multiple of 4) or k-major ([K][M], [K][N]: the transposed storage of a
// row-major operand, read along its rows; rows a multiple of 4 floats long, so a vec4 never
// leaves its row), chosen by the specialisation constants A_KM / B_KM.
#ifndef LORAC_GEMM_COMMON_GLSL
#define LORAC_GEMM_COMMON_GLSL

#include "common.glsl"

layout(std430, binding = 2) buffer BufC { uint c_words[]; };
layout(std430, binding = 2) buffer BufC4 { vec4 c4[]; };

layout(push_constant) uniform PC {
    uint M, N, K4;     // K4 = ceil(K / 4) steps of 4
    uint K;
    uint lda4, ldb4;   // vec4 between rows
    uint a_off4, b_off4;
    uint c_off;        // elements of C's dtype from the binding start
    uint ldc;          // elements
    uint c_dtype;
    float alpha, beta;
    uint c_vec4;       // F32 C with ldc and c_off multiples of 4: 16-byte stores (store_c4)
} pc;

void store_half(uint h, uint bits) {
    uint w = h >> 1, s = (h & 1u) * 16u;
    atomicAnd(c_words[w], ~(0xffffu << s));
    atomicOr(c_words[w], bits << s);
}

float load_c(uint e) {
    if (pc.c_dtype == DT_F32) return uintBitsToFloat(c_words[e]);
    uint bits = (c_words[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu;
    return pc.c_dtype == DT_F16 ? fp16_to_f32(bits) : bf16_to_f32(bits);
}

void store_c(uint m, uint n, float acc) {
    uint e = pc.c_off + m * pc.ldc + n;
    precise float v = pc.alpha * acc;
    if (pc.beta != 0.0) {
        precise float w = v + pc.beta * load_c(e);
        v = w;
    }
    if (pc.c_dtype == DT_F32) c_words[e] = floatBitsToUint(v);
    else store_half(e, pc.c_dtype == DT_F16 ? f32_to_fp16(v) : f32_to_bf16(v));
}

// Four consecutive F32 outputs (m, n..n+3), n a multiple of 4, pc.c_vec4 set.
void store_c4(uint m, uint n, vec4 acc) {
    uint e4 = (pc.c_off + m * pc.ldc + n) / 4u;
    precise vec4 v = pc.alpha * acc;
    if (pc.beta != 0.0) {
        precise vec4 w = v + pc.beta * c4[e4];
        v = w;
    }
    c4[e4] = v;
}

#endif
