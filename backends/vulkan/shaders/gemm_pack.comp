#version 450
// lorac — GEMM operand packing: copies a block of a stored operand (any weight dtype, optionally
// with LoRA dropout) into an F32 matrix the product kernels read as vec4, keeping the storage
// orientation (never transposing): storage rows y < nrows, columns x < ncols become
// P[y][x] with rows of ldp4 vec4, zero-padded past ncols. A k-contiguous operand (rows = logical
// rows) thus gets its k padded to a multiple of 4; a transposed one (rows = k) becomes a k-major
// operand. Storage element (y, x) is dequantised with dq_elem (reference/formats.md §2); with
// dropout it is multiplied by keep(seed, stream, (y + r_base) * drop_cols + x + c_base, p) / (1 - p),
// the LoRA mask of lorac/graph.h (index t*in + i). DTYPE and DROP are specialisation constants
// (F32 reads plain floats). Each invocation writes one vec4.
#include "common.glsl"

layout(local_size_x = 64, local_size_y = 4) in;
layout(constant_id = 0) const uint DTYPE = 0;
layout(constant_id = 1) const uint DROP = 0;

layout(std430, binding = 0) readonly buffer Src { uint src_words[]; };
layout(std430, binding = 0) readonly buffer SrcF { float src_f[]; };
layout(std430, binding = 1) writeonly buffer Dst4 { vec4 dst4[]; };

#define DQ_WORDS src_words
#include "dequant.glsl"
#include "philox.glsl"

layout(push_constant) uniform PC {
    uint src_off;    // bytes from the binding start to storage element (0, 0)
    uint row_bytes;  // bytes between storage rows
    uint nrows, ncols;
    uint dst_off4;   // vec4 from the binding start
    uint ldp4;       // vec4 per packed row
    float drop_p;
    float drop_q;    // 1 - p (divisor)
    uint seed_lo, seed_hi, stream_lo, stream_hi;
    uint drop_cols;  // storage columns of the dropout index (LoRA: in)
    uint r_base, c_base; // storage coordinates of this block inside the whole tensor
} pc;

float load(uint y, uint x) {
    float v = DTYPE == DT_F32 ? src_f[(pc.src_off + y * pc.row_bytes) / 4u + x]
                              : dq_elem(DTYPE, pc.src_off + y * pc.row_bytes, x);
    if (DROP != 0u) {
        uvec2 idx = idx64(y + pc.r_base, pc.drop_cols, x + pc.c_base);
        bool keep = philox_keep(uvec2(pc.seed_lo, pc.seed_hi), uvec2(pc.stream_lo, pc.stream_hi), idx, pc.drop_p);
        v = keep ? v / pc.drop_q : 0.0;
    }
    return v;
}

void main() {
    uint sx = gl_NumWorkGroups.x * 64u, sy = gl_NumWorkGroups.y * 4u;
    for (uint y = gl_GlobalInvocationID.y; y < pc.nrows; y += sy)
        for (uint x4 = gl_GlobalInvocationID.x; x4 < pc.ldp4; x4 += sx) {
            vec4 v = vec4(0.0);
            uint x = 4u * x4;
            if (x + 3u < pc.ncols) {
                v = vec4(load(y, x), load(y, x + 1u), load(y, x + 2u), load(y, x + 3u));
            } else {
                [[unroll]] for (uint q = 0; q < 4u; q++)
                    if (x + q < pc.ncols) v[q] = load(y, x + q);
            }
            dst4[pc.dst_off4 + y * pc.ldp4 + x4] = v;
        }
}
