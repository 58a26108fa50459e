#version 450
// lorac — ADAMW in place (lorac/graph.h; Loshchilov & Hutter, ICLR 2019, as torch.optim.AdamW),
// the float operations of the CPU kernel in the same order (bias corrections computed on the
// host in double, rounded to float): g = grad * gs; p *= 1 - lr*wd; m = b1 m + (1-b1) g;
// v = b2 v + (1-b2) g^2; p -= lr * (m / bc1) / (sqrt(v / bc2) + eps). VEC4 (specialisation
// constant, host-checked alignment) updates four consecutive elements with 16-byte accesses.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint VEC4 = 0;
layout(std430, binding = 0) buffer P { float p[]; };
layout(std430, binding = 1) readonly buffer G { float g[]; };
layout(std430, binding = 2) buffer M { float m[]; };
layout(std430, binding = 3) buffer V { float v[]; };
layout(std430, binding = 0) buffer P4 { vec4 p4[]; };
layout(std430, binding = 1) readonly buffer G4 { vec4 g4[]; };
layout(std430, binding = 2) buffer M4 { vec4 m4[]; };
layout(std430, binding = 3) buffer V4 { vec4 v4[]; };
layout(push_constant) uniform PC {
    uint p_off, g_off, m_off, v_off, n;
    float lr, b1, b2, eps, decay, gs, bc1, bc2, c1, c2;
} pc;

void step(float gr, inout float pv, inout float mv, inout float vv) {
    precise float gi = gr * pc.gs;
    precise float pi = pv * pc.decay;
    precise float mi = pc.b1 * mv + pc.c1 * gi;
    precise float vi = pc.b2 * vv + pc.c2 * (gi * gi);
    precise float upd = pc.lr * (mi / pc.bc1) / (sqrt(vi / pc.bc2) + pc.eps);
    pi -= upd;
    pv = pi;
    mv = mi;
    vv = vi;
}

void main() {
    uint stride = gl_NumWorkGroups.x * 256u;
    if (VEC4 != 0u) {
        for (uint i = gl_GlobalInvocationID.x; i < pc.n / 4u; i += stride) {
            vec4 pv = p4[pc.p_off / 4u + i], gv = g4[pc.g_off / 4u + i], mv = m4[pc.m_off / 4u + i],
                 vv = v4[pc.v_off / 4u + i];
            step(gv.x, pv.x, mv.x, vv.x);
            step(gv.y, pv.y, mv.y, vv.y);
            step(gv.z, pv.z, mv.z, vv.z);
            step(gv.w, pv.w, mv.w, vv.w);
            m4[pc.m_off / 4u + i] = mv;
            v4[pc.v_off / 4u + i] = vv;
            p4[pc.p_off / 4u + i] = pv;
        }
        return;
    }
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) {
        float pv = p[pc.p_off + i], mv = m[pc.m_off + i], vv = v[pc.v_off + i];
        step(g[pc.g_off + i], pv, mv, vv);
        m[pc.m_off + i] = mv;
        v[pc.v_off + i] = vv;
        p[pc.p_off + i] = pv;
    }
}
