#version 450
// lorac — one level of the deterministic reductions (broadcast-operand gradients, rms_norm weight
// gradient): out[y*m + i] (+)= sum over c in [y*group, min((y+1)*group, chunks)) of
// part[c*m + i], c in increasing order. vk_reduce_partials repeats it until one row is left, so
// no invocation loops more than `group` times (llvmpipe's per-invocation loop limit).
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Part { float part[]; };
layout(std430, binding = 1) buffer Out { float outv[]; };
layout(push_constant) uniform PC { uint part_off, m, chunks, group, out_off, accum; } pc;
void main() {
    uint y = gl_WorkGroupID.y;
    uint c0 = y * pc.group, c1 = min(c0 + pc.group, pc.chunks);
    for (uint i = gl_GlobalInvocationID.x; i < pc.m; i += gl_NumWorkGroups.x * 256u) {
        precise float s = 0.0, comp = 0.0; // Kahan summation
        for (uint c = c0; c < c1; c++) {
            precise float yk = part[pc.part_off + c * pc.m + i] - comp;
            precise float tk = s + yk;
            comp = (tk - s) - yk;
            s = tk;
        }
        uint o = pc.out_off + y * pc.m + i;
        outv[o] = pc.accum != 0u ? outv[o] + s : s;
    }
}
