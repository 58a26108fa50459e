#version 450
#extension GL_EXT_control_flow_attributes : enable
// lorac — ATTENTION forward softmax over a score block (attention_softmax.glsl): for each row,
// m = max over the visible keys, sum = sum exp(sc - m), P = exp(sc - m) * (1 / sum) on visible
// keys and 0 elsewhere (written over the scores), lse = m + log(sum); a row without a visible
// key gets P = 0 and lse = -inf (lorac/graph.h). The product kernel then forms o = P · V.
#include "attention_softmax.glsl"
layout(std430, binding = 0) buffer Sc { float sc[]; };
layout(std430, binding = 1) writeonly buffer L { float lse[]; };
void main() {
    uint t = gl_LocalInvocationID.x;
    for (uint r = gl_WorkGroupID.x; r < pc.nb; r += gl_NumWorkGroups.x) {
        uint row = pc.sc_off + r * pc.nk;
        int lo, hi;
        visible(r, lo, hi);
        float m = uintBitsToFloat(0xff800000u);
        for (int j = lo + int(t); j <= hi; j += 256) m = max(m, sc[row + uint(j)]);
        m = wg_reduce(m, true);
        float s = 0.0;
        for (int j = lo + int(t); j <= hi; j += 256) s += exp(sc[row + uint(j)] - m);
        s = wg_reduce(s, false);
        float inv = 1.0 / s;
        for (uint j = t; j < pc.nk; j += 256u) {
            float p = 0.0;
            if (int(j) >= lo && int(j) <= hi) {
                precise float e = exp(sc[row + j] - m) * inv;
                p = e;
            }
            sc[row + j] = p;
        }
        if (t == 0u) lse[pc.lse_off + pc.lse_row0 + r * pc.n_head] = lo <= hi ? m + log(s) : uintBitsToFloat(0xff800000u);
    }
}
