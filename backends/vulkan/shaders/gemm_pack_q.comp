#version 450
// lorac — GEMM operand packing for block-quantised weights (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
// Q5_K, Q6_K) without dropout: the same result as gemm_pack.comp (storage row y, columns
// x < ncols become P[y][x], rows of ldp4 = ncols / 4 vec4), but one invocation dequantises a
// whole group of 32 consecutive elements (a block of the 32-element dtypes, a sub-block of a
// K-quant super-block) from a few 32-bit loads of its bytes, instead of gathering single bytes
// per element: on lavapipe every storage-buffer load is a bounds-checked per-lane gather, and
// the per-element path cost ~10 ns per weight (it dominated a Gemma 3 training step).
// ncols is a multiple of 32 (vk_need: rows hold whole blocks; chunks start on block edges).
// Block layouts and formulas: reference/formats.md §2 (ggml-common.h / ggml-quants.c); the float
// operations are those of core/src/dtype.c and shaders/dequant.glsl in the same order, marked
// `precise` so no FMA contraction changes the rounding: both paths give identical floats.
#include "common.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint DTYPE = DT_Q8_0;

layout(std430, binding = 0) readonly buffer Src { uint w_[]; };
layout(std430, binding = 1) writeonly buffer Dst4 { vec4 dst4[]; };

layout(push_constant) uniform PC {
    uint src_off;    // bytes from the binding start to storage element (0, 0)
    uint row_bytes;  // bytes between storage rows
    uint nrows;
    uint ngroups;    // groups of 32 elements per row (ncols / 32)
    uint dst_off4;   // vec4 from the binding start
    uint ldp4;       // vec4 per packed row
    uint last_word;  // last readable word of binding 0
} pc;

#define DQB_WORDS w_
#define DQB_LAST pc.last_word
#include "dequant_block.glsl"

void put(uint base4, float v[32]) {
    [[unroll]] for (uint i = 0u; i < 8u; i++)
        dst4[base4 + i] = vec4(v[4u * i], v[4u * i + 1u], v[4u * i + 2u], v[4u * i + 3u]);
}

void main() {
    uint n = pc.nrows * pc.ngroups, stride = gl_NumWorkGroups.x * 64u;
    for (uint i = gl_GlobalInvocationID.x; i < n; i += stride) {
        uint y = i / pc.ngroups, g = i - y * pc.ngroups;
        float v[32];
        group(pc.src_off + y * pc.row_bytes, g, v);
        put(pc.dst_off4 + y * pc.ldp4 + 8u * g, v);
    }
}
