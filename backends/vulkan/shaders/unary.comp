#version 450
// lorac — SCALE, GELU_TANH, SILU and their backward ops (lorac/graph.h).
// MODE 0: y = x*s; 1: y = gelu_tanh(x); 2: y = silu(x);
// MODE 3: dx (+)= dy*s; 4: dx (+)= dy*gelu_tanh'(x); 5: dx (+)= dy*silu'(x).
// MODE, ACCUM and VEC4 are specialisation constants (one pipeline per combination, the other
// branches compiled out). VEC4 = 1 (host-checked: n and every offset multiples of 4) moves four
// consecutive elements per step with 16-byte accesses.
#include "activation.glsl"
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint MODE = 0;
layout(constant_id = 1) const uint ACCUM = 0;
layout(constant_id = 2) const uint VEC4 = 0;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Dy { float dy[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer Dy4 { vec4 dy4[]; };
layout(std430, binding = 2) buffer Y4 { vec4 y4[]; };
layout(push_constant) uniform PC { uint x_off, dy_off, y_off, n; float s; } pc;

float f(float xv, float d) {
    if (MODE == 0u) {
        precise float r = xv * pc.s;
        return r;
    }
    if (MODE == 1u) return gelu_tanh_f(xv);
    if (MODE == 2u) return silu_f(xv);
    float g = MODE == 3u ? pc.s : MODE == 4u ? gelu_tanh_grad(xv) : silu_grad(xv);
    precise float r = d * g;
    return r;
}

void main() {
    uint stride = gl_NumWorkGroups.x * 256u;
    if (VEC4 != 0u) {
        uint n4 = pc.n / 4u, xo = pc.x_off / 4u, dyo = pc.dy_off / 4u, yo = pc.y_off / 4u;
        for (uint e = gl_GlobalInvocationID.x; e < n4; e += stride) {
            vec4 xv = MODE == 3u ? vec4(0.0) : x4[xo + e];
            vec4 d = MODE >= 3u ? dy4[dyo + e] : vec4(0.0);
            vec4 v = vec4(f(xv.x, d.x), f(xv.y, d.y), f(xv.z, d.z), f(xv.w, d.w));
            if (ACCUM != 0u) {
                precise vec4 t = y4[yo + e] + v;
                v = t;
            }
            y4[yo + e] = v;
        }
        return;
    }
    for (uint e = gl_GlobalInvocationID.x; e < pc.n; e += stride) {
        float xv = MODE == 3u ? 0.0 : x[pc.x_off + e];
        float d = MODE >= 3u ? dy[pc.dy_off + e] : 0.0;
        float v = f(xv, d);
        if (ACCUM != 0u) {
            precise float t = y[pc.y_off + e] + v;
            v = t;
        }
        y[pc.y_off + e] = v;
    }
}
