#version 450
// lorac — CROSS_ENTROPY, per row (lorac/graph.h): one workgroup per row n of logits [V, N]:
// m = max_v x, lse = m + log(sum_v exp(x - m)) (reductions with a fixed tree); lse[n] is
// written when requested and nll[n] = lse - x[label] for counted rows (label != ignore_index and
// 0 <= label < V), else 0. cross_entropy_loss.comp then sums nll in order.
// VEC4 (specialisation constant; V and the row offset multiples of 4) reads the row as vec4,
// four times fewer loads (lavapipe gathers every storage-buffer load per lane).
#extension GL_EXT_control_flow_attributes : enable
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint VEC4 = 0;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
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
        if (VEC4 != 0u) {
            vec4 m4 = vec4(m);
            for (uint v = t; v < pc.V / 4u; v += 256u) m4 = max(m4, x4[row / 4u + v]);
            m = max(max(m4.x, m4.y), max(m4.z, m4.w));
        } else {
            for (uint v = t; v < pc.V; v += 256u) m = max(m, x[row + v]);
        }
        m = wg_max(m);
        float l;
        if (isinf(m)) {
            l = m;
        } else {
            float s = 0.0;
            if (VEC4 != 0u) {
                vec4 s4 = vec4(0.0);
                for (uint v = t; v < pc.V / 4u; v += 256u) s4 += exp(x4[row / 4u + v] - m);
                s = (s4.x + s4.y) + (s4.z + s4.w);
            } else {
                for (uint v = t; v < pc.V; v += 256u) s += exp(x[row + v] - m);
            }
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
