#version 450
// lorac — GEGLU / SWIGLU and their backward ops (lorac/graph.h): y = act(gate) * up;
// dgate (+)= dy * up * act'(gate), dup (+)= dy * act(gate). MODE 0: geglu, 1: swiglu,
// 2: geglu_back, 3: swiglu_back; HAS0/HAS1 say which gradients are wanted, ACC0/ACC1 whether they
// accumulate; VEC4 as in unary.comp (all specialisation constants). Each invocation reads all its
// inputs before writing, so a gradient output may share memory with dy.
#include "activation.glsl"
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint MODE = 0;
layout(constant_id = 1) const uint HAS0 = 1;
layout(constant_id = 2) const uint HAS1 = 0;
layout(constant_id = 3) const uint ACC0 = 0;
layout(constant_id = 4) const uint ACC1 = 0;
layout(constant_id = 5) const uint VEC4 = 0;
layout(std430, binding = 0) readonly buffer G { float gate[]; };
layout(std430, binding = 1) readonly buffer U { float up[]; };
layout(std430, binding = 2) readonly buffer Dy { float dy[]; };
layout(std430, binding = 3) buffer O0 { float out0[]; };
layout(std430, binding = 4) buffer O1 { float out1[]; };
layout(std430, binding = 0) readonly buffer G4 { vec4 gate4[]; };
layout(std430, binding = 1) readonly buffer U4 { vec4 up4[]; };
layout(std430, binding = 2) readonly buffer Dy4 { vec4 dy4[]; };
layout(std430, binding = 3) buffer O04 { vec4 out04[]; };
layout(std430, binding = 4) buffer O14 { vec4 out14[]; };
layout(push_constant) uniform PC { uint g_off, u_off, dy_off, o0_off, o1_off, n; } pc;

const bool GELU = MODE == 0u || MODE == 2u;

float act(float g) { return GELU ? gelu_tanh_f(g) : silu_f(g); }
float dact(float g) { return GELU ? gelu_tanh_grad(g) : silu_grad(g); }
float fwd(float g, float u) {
    precise float y = act(g) * u;
    return y;
}
float dgate(float g, float u, float d) {
    precise float v = d * u * dact(g);
    return v;
}
float dup(float g, float d) {
    precise float v = d * act(g);
    return v;
}

void main() {
    uint stride = gl_NumWorkGroups.x * 256u;
    if (VEC4 != 0u) {
        uint n4 = pc.n / 4u;
        for (uint e = gl_GlobalInvocationID.x; e < n4; e += stride) {
            vec4 g = gate4[pc.g_off / 4u + e], u = up4[pc.u_off / 4u + e];
            if (MODE < 2u) {
                out04[pc.o0_off / 4u + e] = vec4(fwd(g.x, u.x), fwd(g.y, u.y), fwd(g.z, u.z), fwd(g.w, u.w));
                continue;
            }
            vec4 d = dy4[pc.dy_off / 4u + e];
            vec4 v0 = vec4(0.0), v1 = vec4(0.0);
            if (HAS0 != 0u) v0 = vec4(dgate(g.x, u.x, d.x), dgate(g.y, u.y, d.y), dgate(g.z, u.z, d.z), dgate(g.w, u.w, d.w));
            if (HAS1 != 0u) v1 = vec4(dup(g.x, d.x), dup(g.y, d.y), dup(g.z, d.z), dup(g.w, d.w));
            if (HAS0 != 0u) {
                if (ACC0 != 0u) {
                    precise vec4 t = out04[pc.o0_off / 4u + e] + v0;
                    v0 = t;
                }
                out04[pc.o0_off / 4u + e] = v0;
            }
            if (HAS1 != 0u) {
                if (ACC1 != 0u) {
                    precise vec4 t = out14[pc.o1_off / 4u + e] + v1;
                    v1 = t;
                }
                out14[pc.o1_off / 4u + e] = v1;
            }
        }
        return;
    }
    for (uint e = gl_GlobalInvocationID.x; e < pc.n; e += stride) {
        float g = gate[pc.g_off + e], u = up[pc.u_off + e];
        if (MODE < 2u) {
            out0[pc.o0_off + e] = fwd(g, u);
            continue;
        }
        float d = dy[pc.dy_off + e];
        float v0 = HAS0 != 0u ? dgate(g, u, d) : 0.0;
        float v1 = HAS1 != 0u ? dup(g, d) : 0.0;
        if (HAS0 != 0u) {
            if (ACC0 != 0u) {
                precise float t = out0[pc.o0_off + e] + v0;
                v0 = t;
            }
            out0[pc.o0_off + e] = v0;
        }
        if (HAS1 != 0u) {
            if (ACC1 != 0u) {
                precise float t = out1[pc.o1_off + e] + v1;
                v1 = t;
            }
            out1[pc.o1_off + e] = v1;
        }
    }
}
