#version 450
// lorac — SUM_SQ (lorac/graph.h) in two passes: workgroup g sums (squares of, when square = 1)
// the elements g*WG + t + j*(groups*WG) with a fixed tree, into out[g] (+ out[g] when accum).
// The second pass runs one workgroup over the partial sums (square = 0). The partition depends
// only on n, so results are bitwise reproducible.
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer Out { float outv[]; };
layout(push_constant) uniform PC { uint x_off, n, out_off, square, accum; } pc;
shared float red[256];
void main() {
    uint t = gl_LocalInvocationID.x;
    float s = 0.0;
    for (uint i = gl_WorkGroupID.x * 256u + t; i < pc.n; i += gl_NumWorkGroups.x * 256u) {
        float v = x[pc.x_off + i];
        s += pc.square != 0u ? v * v : v;
    }
    red[t] = s;
    barrier();
    for (uint w = 128u; w > 0u; w >>= 1) {
        if (t < w) red[t] += red[t + w];
        barrier();
    }
    if (t == 0u) {
        uint o = pc.out_off + gl_WorkGroupID.x;
        outv[o] = pc.accum != 0u ? outv[o] + red[0] : red[0];
    }
}
