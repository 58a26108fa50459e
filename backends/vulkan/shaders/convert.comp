#version 450
// lorac — DEQUANTIZE and CPY (lorac/graph.h): element e of rows of ne0 elements of any weight
// dtype (dequantised with dq_elem, reference/formats.md §2) -> F32, F16 or BF16 (round to
// nearest even, core/src/dtype.c). 16-bit results are written with atomic and/or on their
// 32-bit word so neighbouring elements written by other invocations are never lost.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Src { uint src_words[]; };
layout(std430, binding = 1) buffer Dst { uint dst_words[]; };
#define DQ_WORDS src_words
#include "dequant.glsl"
layout(push_constant) uniform PC {
    uint src_off;    // bytes
    uint src_type;
    uint row_bytes;
    uint ne0;
    uint n;          // elements
    uint dst_off;    // elements of the destination dtype
    uint dst_type;
} pc;
void main() {
    for (uint e = gl_GlobalInvocationID.x; e < pc.n; e += gl_NumWorkGroups.x * 256u) {
        uint row = e / pc.ne0, i = e - row * pc.ne0;
        float v = dq_elem(pc.src_type, pc.src_off + row * pc.row_bytes, i);
        uint d = pc.dst_off + e;
        if (pc.dst_type == DT_F32) {
            dst_words[d] = floatBitsToUint(v);
        } else {
            uint bits = pc.dst_type == DT_F16 ? f32_to_fp16(v) : f32_to_bf16(v);
            uint w = d >> 1, s = (d & 1u) * 16u;
            atomicAnd(dst_words[w], ~(0xffffu << s));
            atomicOr(dst_words[w], bits << s);
        }
    }
}
