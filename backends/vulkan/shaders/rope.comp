#version 450
// lorac — ROPE and ROPE_BACK (lorac/graph.h; Su et al. 2021; ggml pairing, reference/formats.md
// §3). x, y [hd * n_head, T], pos I32 [T]. For pair i < n_rot/2 of every head:
//   theta = (float)pos * freq_scale * inv_freq[i],  inv_freq[i] = powf(freq_base, -2i/n_rot)
// (the table is computed on the host with the same powf as the CPU backend and placed in a
// buffer), (a, b) -> (a cos - b s, a s + b cos) with s = sign * sin(theta) (sign -1 for the
// backward, the transposed rotation). NORM pairs (2i, 2i+1), NEOX pairs (i, i + n_rot/2); dims
// >= n_rot pass through. sin / cos use Cody-Waite reduction by pi/4 in three parts and the
// Cephes single-precision minimax polynomials (S. L. Moshier, Cephes sinf.c / cosf.c), not the
// driver's sin / cos whose accuracy Vulkan leaves loose outside [-pi, pi].
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Pos { int pos[]; };
layout(std430, binding = 2) readonly buffer F { float inv_freq[]; };
layout(std430, binding = 3) buffer Y { float y[]; };
layout(push_constant) uniform PC {
    uint x_off, pos_off, f_off, y_off;
    uint n_head, hd, n_rot, T, mode, accum;
    float freq_scale, sign_;
} pc;

void sincos_precise(float v, out float s, out float c) {
    float sgn_s = 1.0, sgn_c = 1.0;
    float a = abs(v);
    if (v < 0.0) sgn_s = -1.0;
    float fj = floor(a * 1.27323954473516); // 4 / pi
    uint j = uint(fj);
    if ((j & 1u) != 0u) {
        j += 1u;
        fj += 1.0;
    }
    j &= 7u;
    if (j > 3u) {
        sgn_s = -sgn_s;
        sgn_c = -sgn_c;
        j -= 4u;
    }
    if (j > 1u) sgn_c = -sgn_c;
    precise float r = ((a - fj * 0.78515625) - fj * 2.4187564849853515625e-4) - fj * 3.77489497744594108e-8;
    precise float z = r * r;
    precise float ps = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
    precise float pcs = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
    if (j == 1u || j == 2u) {
        s = sgn_s * pcs;
        c = sgn_c * ps;
    } else {
        s = sgn_s * ps;
        c = sgn_c * pcs;
    }
}

void main() {
    uint half_ = pc.n_rot / 2u;
    uint per_head = half_ + (pc.hd - pc.n_rot);
    uint total = pc.T * pc.n_head * per_head;
    uint row = pc.hd * pc.n_head;
    for (uint e = gl_GlobalInvocationID.x; e < total; e += gl_NumWorkGroups.x * 256u) {
        uint t = e / (pc.n_head * per_head);
        uint rem = e - t * (pc.n_head * per_head);
        uint h = rem / per_head, d = rem - h * per_head;
        uint base = t * row + h * pc.hd;
        if (d >= half_) { // pass-through dims
            uint k = pc.n_rot + (d - half_);
            float v = x[pc.x_off + base + k];
            if (pc.accum != 0u) {
                precise float sacc = y[pc.y_off + base + k] + v;
                v = sacc;
            }
            y[pc.y_off + base + k] = v;
            continue;
        }
        uint i = d;
        precise float theta = float(pos[pc.pos_off + t]) * pc.freq_scale * inv_freq[pc.f_off + i];
        float sn, cs;
        sincos_precise(theta, sn, cs);
        sn *= pc.sign_;
        uint ia = pc.mode == 2u ? i : 2u * i;
        uint ib = pc.mode == 2u ? i + half_ : 2u * i + 1u;
        float a = x[pc.x_off + base + ia], b = x[pc.x_off + base + ib];
        precise float ra = a * cs - b * sn;
        precise float rb = a * sn + b * cs;
        if (pc.accum != 0u) {
            precise float ta = y[pc.y_off + base + ia] + ra;
            precise float tb = y[pc.y_off + base + ib] + rb;
            ra = ta;
            rb = tb;
        }
        y[pc.y_off + base + ia] = ra;
        y[pc.y_off + base + ib] = rb;
    }
}
