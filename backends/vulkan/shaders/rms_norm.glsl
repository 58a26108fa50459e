// lorac — RMS_NORM forward and the dx part of RMS_NORM_BACK (lorac/graph.h; Zhang & Sennrich
// 2019). One workgroup per group of g consecutive elements of a row (grid-stride over groups):
//   r = 1 / sqrt(mean(x^2) + eps),  y_k = x_k r w_k  (w = 1 without weight)
//   dx_k = r u_k - (r^3 / g) x_k sum_j u_j x_j,  u = dy * w
// Sums are accumulated in ACC (double in rms_norm_f64.comp for devices with shaderFloat64, as
// the CPU backend does; float otherwise) with a fixed tree, so results are reproducible. The
// forward rounds r to float once; the backward keeps r and combines the two nearly cancelling
// terms of dx in ACC (backends/cpu/ops_norm_rope.c). mode 0: forward; 1: dx; 2: only r.
// write_r stores r per group for the weight gradient (rms_norm_dw.comp).
// Without fp64, groups of at most 64 use the cancellation-free form of the same gradient,
//   dx_k = (r / Q) (sum_j x_j (u_k x_j - x_k u_j) + u_k g eps),  Q = sum_j x_j^2 + g eps,
// (r^3 / g = r / Q), whose j = k term vanishes exactly: for g = 1 it is u eps / Q^(3/2), where the
// two-term float form would lose every digit to cancellation. O(g^2), so only for small groups.
#if USE_F64
#extension GL_ARB_gpu_shader_fp64 : enable
#define ACC double
#else
#define ACC float
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;  // power of two; 32 on CPU devices (fewer barrier stops)
layout(constant_id = 1) const uint VEC4 = 0;  // g and every offset multiples of 4: 16-byte loads
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) readonly buffer Dy { float dy[]; };
layout(std430, binding = 3) buffer Out { float outv[]; };
layout(std430, binding = 4) writeonly buffer R { float rbuf[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer W4 { vec4 w4[]; };
layout(std430, binding = 3) buffer Out4 { vec4 out4[]; };
layout(push_constant) uniform PC {
    uint x_off, w_off, dy_off, out_off, r_off;
    uint g, n_groups, has_w, mode, accum, write_r;
    float eps;
} pc;
shared ACC red[WG];

ACC wg_sum(ACC v) {
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (t < s) red[t] += red[t + s];
        barrier();
    }
    ACC r = red[0];
    barrier();
    return r;
}

void main() {
    uint t = gl_LocalInvocationID.x;
    for (uint q = gl_WorkGroupID.x; q < pc.n_groups; q += gl_NumWorkGroups.x) {
        uint base = q * pc.g;
        ACC ss = ACC(0.0);
        if (VEC4 != 0u) {
            for (uint k4 = t; k4 < pc.g / 4u; k4 += WG) {
                vec4 v = x4[(pc.x_off + base) / 4u + k4];
                ss += ACC(v.x) * ACC(v.x) + ACC(v.y) * ACC(v.y) + ACC(v.z) * ACC(v.z) + ACC(v.w) * ACC(v.w);
            }
        } else {
            for (uint k = t; k < pc.g; k += WG) {
                ACC v = ACC(x[pc.x_off + base + k]);
                ss += v * v;
            }
        }
        ss = wg_sum(ss);
        ACC rr = ACC(1.0) / sqrt(ss / ACC(pc.g) + ACC(pc.eps));
        if (pc.mode == 0u && VEC4 != 0u) {
            float r = float(rr);
            for (uint k4 = t; k4 < pc.g / 4u; k4 += WG) {
                precise vec4 y = x4[(pc.x_off + base) / 4u + k4] * r;
                if (pc.has_w != 0u) y = y * w4[pc.w_off / 4u + k4];
                out4[(pc.out_off + base) / 4u + k4] = y;
            }
            continue;
        }
        if (pc.mode == 0u) {
            float r = float(rr);
            for (uint k = t; k < pc.g; k += WG) {
                precise float y = x[pc.x_off + base + k] * r;
                if (pc.has_w != 0u) y = y * w[pc.w_off + k];
                outv[pc.out_off + base + k] = y;
            }
            continue;
        }
        if (pc.write_r != 0u && t == 0u) rbuf[pc.r_off + q] = float(rr);
        if (pc.mode == 2u) continue;
#if !USE_F64
        if (pc.g <= 64u) {
            float Q = float(ss) + float(pc.g) * pc.eps;
            float rq = float(rr) / Q;
            for (uint k = t; k < pc.g; k += WG) {
                float xk = x[pc.x_off + base + k];
                float uk = dy[pc.dy_off + base + k];
                if (pc.has_w != 0u) uk *= w[pc.w_off + k];
                float acc = uk * float(pc.g) * pc.eps;
                for (uint j = 0u; j < pc.g; j++) {
                    float xj = x[pc.x_off + base + j];
                    float uj = dy[pc.dy_off + base + j];
                    if (pc.has_w != 0u) uj *= w[pc.w_off + j];
                    precise float d = uk * xj - xk * uj;
                    acc += xj * d;
                }
                precise float v = rq * acc;
                uint o = pc.out_off + base + k;
                if (pc.accum != 0u) {
                    precise float s2 = outv[o] + v;
                    v = s2;
                }
                outv[o] = v;
            }
            continue;
        }
#endif
        ACC dot = ACC(0.0);
        for (uint k = t; k < pc.g; k += WG) {
            ACC u = ACC(dy[pc.dy_off + base + k]);
            if (pc.has_w != 0u) u *= ACC(w[pc.w_off + k]);
            dot += u * ACC(x[pc.x_off + base + k]);
        }
        dot = wg_sum(dot);
        ACC cc = rr * rr * rr * dot / ACC(pc.g);
        for (uint k = t; k < pc.g; k += WG) {
            ACC u = ACC(dy[pc.dy_off + base + k]);
            if (pc.has_w != 0u) u *= ACC(w[pc.w_off + k]);
            float v = float(rr * u - cc * ACC(x[pc.x_off + base + k]));
            uint o = pc.out_off + base + k;
            if (pc.accum != 0u) {
                precise float s = outv[o] + v;
                v = s;
            }
            outv[o] = v;
        }
    }
}
