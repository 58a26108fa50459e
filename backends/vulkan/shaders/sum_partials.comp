#version 450
// lorac — out[i] (+)= sum over c < chunks of part[c * m + i], c in increasing order (the second
// stage of the deterministic reductions: broadcast-operand gradients, rms_norm weight gradient).
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Part { float part[]; };
layout(std430, binding = 1) buffer Out { float outv[]; };
layout(push_constant) uniform PC { uint part_off, m, chunks, out_off, accum; } pc;
void main() {
    for (uint i = gl_GlobalInvocationID.x; i < pc.m; i += gl_NumWorkGroups.x * 256u) {
        float s = 0.0;
        for (uint c = 0u; c < pc.chunks; c++) s += part[pc.part_off + c * pc.m + i];
        uint o = pc.out_off + i;
        outv[o] = pc.accum != 0u ? outv[o] + s : s;
    }
}
