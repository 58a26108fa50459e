#version 450
#extension GL_EXT_control_flow_attributes : enable
// lorac — ATTENTION_BACK row-wise step (FlashAttention-2, Dao 2023, Algorithm 2, probabilities
// recomputed from lse): on input sc = scale q·k and ds = dO·v for a block; per row
// P = exp(sc - lse) on visible keys (0 elsewhere, and everywhere when lse is not finite),
// D = sum over the head's dims of dO * O, dS = P (ds - D). Writes P over sc and dS over ds
// (need_ds = 0: only P, for dv alone).
#include "attention_softmax.glsl"
layout(std430, binding = 0) buffer Sc { float sc[]; };
layout(std430, binding = 1) buffer Ds { float ds[]; };
layout(std430, binding = 2) readonly buffer L { float lse[]; };
layout(std430, binding = 3) readonly buffer DO { float dout[]; };
layout(std430, binding = 4) readonly buffer O { float o[]; };
void main() {
    uint t = gl_LocalInvocationID.x;
    for (uint r = gl_WorkGroupID.x; r < pc.nb; r += gl_NumWorkGroups.x) {
        uint row = pc.sc_off + r * pc.nk, drow = pc.ds_off + r * pc.nk;
        int lo, hi;
        visible(r, lo, hi);
        float l = lse[pc.lse_off + pc.lse_row0 + r * pc.n_head];
        if (isinf(l) || isnan(l)) {
            lo = 0;
            hi = -1;
        }
        float D = 0.0;
        if (pc.need_ds != 0u) {
            float part = 0.0;
            for (uint d = t; d < pc.hd; d += 256u)
                part += dout[pc.do_off + r * pc.ld_o + d] * o[pc.o_off + r * pc.ld_o + d];
            D = wg_reduce(part, false);
        }
        for (uint j = t; j < pc.nk; j += 256u) {
            float p = 0.0;
            if (int(j) >= lo && int(j) <= hi) p = exp(sc[row + j] - l);
            sc[row + j] = p;
            if (pc.need_ds != 0u) {
                precise float v = p * (ds[drow + j] - D);
                ds[drow + j] = v;
            }
        }
    }
}
