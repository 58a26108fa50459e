#version 450
// lorac — CROSS_ENTROPY_BACK (lorac/graph.h): for counted rows
//   dlogits[v,n] (+)= coef * e_v / sum_u e_u - [v == label] coef,  e_v = exp(x[v,n] - lse[n]),
// coef = dloss / D (cross_entropy_loss.comp, mode 1); uncounted rows get 0 (or are left as they
// are when accumulating). Dividing by the recomputed sum removes the rounding of the stored F32
// lse, as in the CPU backend. Without a stored lse it is recomputed (max, then sum). One
// workgroup per row, fixed-tree sums. VEC4 (specialisation constant; V and the row offsets of
// logits and dlogits multiples of 4) moves vec4s: four times fewer (per-lane gathered) loads.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint VEC4 = 0;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer Lab { int labels[]; };
layout(std430, binding = 2) readonly buffer L { float lse[]; };
layout(std430, binding = 3) readonly buffer Coef { float coefv[]; };
layout(std430, binding = 4) buffer Dx { float dx[]; };
layout(std430, binding = 4) buffer Dx4 { vec4 dx4[]; };
layout(push_constant) uniform PC {
    uint x_off, lab_off, lse_off, coef_off, dx_off, V, N, has_lse, accum;
    int ignore_index;
} pc;
shared float red[256];

float wg_reduce(float v, bool is_max) {
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint s = 128u; s > 0u; s >>= 1) {
        if (t < s) red[t] = is_max ? max(red[t], red[t + s]) : red[t] + red[t + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

void main() {
    uint t = gl_LocalInvocationID.x;
    float coef = coefv[pc.coef_off];
    for (uint n = gl_WorkGroupID.x; n < pc.N; n += gl_NumWorkGroups.x) {
        uint row = pc.x_off + n * pc.V, drow = pc.dx_off + n * pc.V;
        int y = labels[pc.lab_off + n];
        bool counted = y != pc.ignore_index && y >= 0 && uint(y) < pc.V && coef != 0.0;
        if (!counted) {
            if (pc.accum == 0u)
                for (uint v = t; v < pc.V; v += 256u) dx[drow + v] = 0.0;
            continue;
        }
        float l;
        if (pc.has_lse != 0u) {
            l = lse[pc.lse_off + n];
        } else {
            float m = uintBitsToFloat(0xff800000u);
            for (uint v = t; v < pc.V; v += 256u) m = max(m, x[row + v]);
            m = wg_reduce(m, true);
            if (isinf(m)) {
                l = m;
            } else {
                float s = 0.0;
                for (uint v = t; v < pc.V; v += 256u) s += exp(x[row + v] - m);
                l = m + log(wg_reduce(s, false));
            }
        }
        float s = 0.0;
        if (VEC4 != 0u) {
            vec4 s4 = vec4(0.0);
            for (uint v = t; v < pc.V / 4u; v += 256u) s4 += exp(x4[row / 4u + v] - l);
            s = (s4.x + s4.y) + (s4.z + s4.w);
        } else {
            for (uint v = t; v < pc.V; v += 256u) s += exp(x[row + v] - l);
        }
        s = wg_reduce(s, false);
        precise float c = coef / s;
        if (VEC4 != 0u) {
            for (uint v = t; v < pc.V / 4u; v += 256u) {
                precise vec4 g = exp(x4[row / 4u + v] - l) * c;
                if (pc.accum != 0u) {
                    precise vec4 a = dx4[drow / 4u + v] + g;
                    g = a;
                }
                if (uint(y) / 4u == v) {
                    precise float b = g[uint(y) & 3u] - coef;
                    g[uint(y) & 3u] = b;
                }
                dx4[drow / 4u + v] = g;
            }
            continue;
        }
        for (uint v = t; v < pc.V; v += 256u) {
            precise float g = exp(x[row + v] - l) * c;
            if (pc.accum != 0u) {
                precise float a = dx[drow + v] + g;
                g = a;
            }
            if (v == uint(y)) {
                precise float b = g - coef;
                g = b;
            }
            dx[drow + v] = g;
        }
    }
}
