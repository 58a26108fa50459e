#version 450
// lorac — CROSS_ENTROPY, per row (lorac/graph.h): one workgroup per row n of logits [V, N]:
// m = max_v x, lse = m + log(sum_v exp(x - m)) (reductions with a fixed tree); lse[n] is
// written when requested and nll[n] = lse - x[label] for counted rows (label != ignore_index and
// 0 <= label < V), else 0. cross_entropy_loss.comp then sums nll in order.
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Lab { int labels[]; };
layout(std430, binding = 2) writeonly buffer L { float lse[]; };
layout(std430, binding = 3) writeonly buffer Nll { float nll[]; };
layout(push_constant) uniform PC { uint x_off, lab_off, lse_off, nll_off, V, N, has_lse; int ignore_index; } pc;
shared float red[256];

float wg_max(float v) {
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint s = 128u; s > 0u; s >>= 1) {
        if (t < s) red[t] = max(red[t], red[t + s]);
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

float wg_sum(float v) {
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint s = 128u; s > 0u; s >>= 1) {
        if (t < s) red[t] += red[t + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

void main() {
    uint t = gl_LocalInvocationID.x;
    for (uint n = gl_WorkGroupID.x; n < pc.N; n += gl_NumWorkGroups.x) {
        uint row = pc.x_off + n * pc.V;
        float m = uintBitsToFloat(0xff800000u);
        for (uint v = t; v < pc.V; v += 256u) m = max(m, x[row + v]);
        m = wg_max(m);
        float l;
        if (isinf(m)) {
            l = m;
        } else {
            float s = 0.0;
            for (uint v = t; v < pc.V; v += 256u) s += exp(x[row + v] - m);
            s = wg_sum(s);
            l = m + log(s);
        }
        if (t == 0u) {
            if (pc.has_lse != 0u) lse[pc.lse_off + n] = l;
            int y = labels[pc.lab_off + n];
            bool counted = y != pc.ignore_index && y >= 0 && uint(y) < pc.V;
            nll[pc.nll_off + n] = counted ? l - x[row + uint(y)] : 0.0;
        }
    }
}
