#version 450
// lorac — the dropout term of LORA_BACK's dx (lorac/graph.h, reference/peft-lora.md §1.2):
// dx[t][i] += keep(t*in + i) ? g[t][i] / (1 - p) : 0, with keep = Philox4x32-10 uniform >= p on
// (seed, stream = (rng_step << 24) | module_id, index t*in + i), the same mask the forward used.
#include "philox.glsl"
layout(local_size_x = 64, local_size_y = 4) in;
layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) buffer Dx { float dx[]; };
layout(push_constant) uniform PC {
    uint g_off, dx_off, in_, T;
    float p, q;
    uint seed_lo, seed_hi, stream_lo, stream_hi;
} pc;
// 2-D grid (i, t): no integer division per element.
void main() {
    uint sx = gl_NumWorkGroups.x * 64u, sy = gl_NumWorkGroups.y * 4u;
    uvec2 seed = uvec2(pc.seed_lo, pc.seed_hi), stream = uvec2(pc.stream_lo, pc.stream_hi);
    for (uint t = gl_GlobalInvocationID.y; t < pc.T; t += sy)
        for (uint i = gl_GlobalInvocationID.x; i < pc.in_; i += sx) {
            uint e = t * pc.in_ + i;
            if (philox_keep(seed, stream, idx64(t, pc.in_, i), pc.p)) {
                precise float v = dx[pc.dx_off + e] + g[pc.g_off + e] / pc.q;
                dx[pc.dx_off + e] = v;
            }
        }
}
