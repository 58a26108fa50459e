/* lorac OpenCL kernels - rms_norm and rope, forward and backward (lorac/graph.h; formulas as
 * backends/cpu/ops_norm_rope.c).
 *
 * RMS_NORM (Zhang & Sennrich 2019): groups of g consecutive elements, r = 1/sqrt(mean(x^2) +
 * eps), y = x * r * w[k % g]. One work-group per group; sums of squares by Kahan per work-item
 * and a fixed tree, so results are identical run to run.
 * Backward: with u = dy * w, dx = r u - (r^3 / g) x sum(u x); dw = sum over groups of dy x r.
 *
 * ROPE (Su et al. 2021; ggml pairing, reference/formats.md section 3): theta = (float)pos * freq_scale *
 * inv_freq[i], inv_freq[i] = powf(freq_base, -2.0f*i/n_rot) computed once on the host with the
 * C library (so the angle is bit-identical to the CPU backend's), (a, b) -> (a cos - b sin,
 * a sin + b cos); NORM pairs (2i, 2i+1), NEOX pairs (i, i + n_rot/2); dims >= n_rot pass through.
 * The backward rotates by -theta (sign = -1).
 */

/* x, y [n, R] as ng groups of g; w [g] when has_w. One work-group per group. */
kernel void rms_norm_f32(global float *y, const ulong yo, global const float *x, const ulong xo,
                         global const float *w, const ulong wo, const int has_w, const uint g,
                         const float eps, local float *buf) {
    const ulong q = get_group_id(0);
    global const float *xq = LC_CPTR(float, x, xo) + q * g;
    global float *yq = LC_PTR(float, y, yo) + q * g;
    lc_ksum k = {0.0f, 0.0f};
    for (uint i = get_local_id(0); i < g; i += get_local_size(0)) lc_kadd(&k, xq[i] * xq[i]);
    const float ss = lc_wg_sum(buf, k.s);
    const float r = 1.0f / sqrt(ss / (float)g + eps);
    global const float *pw = LC_CPTR(float, w, wo);
    for (uint i = get_local_id(0); i < g; i += get_local_size(0))
        yq[i] = has_w ? xq[i] * r * pw[i] : xq[i] * r;
}

/* ---- float-float arithmetic for the backward (no fp64 on many devices) -------------------
 * dx = r u - (r^3/g) x sum(u x) cancels almost completely when the group is small (g = 1 gives
 * r u eps / (x^2 + eps)), so it is evaluated as r (u - x q), q = sum(u x) / (g (mean(x^2) + eps)),
 * in unevaluated sums of two floats (Dekker 1971; error-free two_sum / two_prod with fma, which
 * OpenCL requires to be correctly rounded). That keeps about 44 bits where the CPU backend uses
 * double. */
typedef struct lc_ff {
    float hi, lo;
} lc_ff;

inline lc_ff lc_ff_make(float hi, float lo) {
    lc_ff r;
    r.hi = hi;
    r.lo = lo;
    return r;
}

inline lc_ff lc_ff_quick(float a, float b) {
    const float s = a + b;
    return lc_ff_make(s, b - (s - a));
}

inline lc_ff lc_ff_two_sum(float a, float b) {
    const float s = a + b, bb = s - a;
    return lc_ff_make(s, (a - (s - bb)) + (b - bb));
}

inline lc_ff lc_ff_two_prod(float a, float b) {
    const float p = a * b;
    return lc_ff_make(p, fma(a, b, -p));
}

inline lc_ff lc_ff_add(lc_ff a, lc_ff b) {
    lc_ff s = lc_ff_two_sum(a.hi, b.hi);
    return lc_ff_quick(s.hi, s.lo + (a.lo + b.lo));
}

inline lc_ff lc_ff_neg(lc_ff a) { return lc_ff_make(-a.hi, -a.lo); }

inline lc_ff lc_ff_mul(lc_ff a, lc_ff b) {
    lc_ff p = lc_ff_two_prod(a.hi, b.hi);
    return lc_ff_quick(p.hi, p.lo + (a.hi * b.lo + a.lo * b.hi));
}

inline lc_ff lc_ff_mul_f(lc_ff a, float b) {
    lc_ff p = lc_ff_two_prod(a.hi, b);
    return lc_ff_quick(p.hi, p.lo + a.lo * b);
}

inline lc_ff lc_ff_div(lc_ff a, lc_ff b) {
    const float q0 = a.hi / b.hi;
    const lc_ff r = lc_ff_add(a, lc_ff_neg(lc_ff_mul_f(b, q0)));
    return lc_ff_quick(q0, r.hi / b.hi);
}

/* 1 / sqrt(m), one Newton step from the float estimate. */
inline lc_ff lc_ff_rsqrt(lc_ff m) {
    const float y0 = 1.0f / sqrt(m.hi);
    const lc_ff t = lc_ff_mul_f(lc_ff_mul_f(m, y0), y0);
    const lc_ff e = lc_ff_add(lc_ff_make(1.0f, 0.0f), lc_ff_neg(t));
    return lc_ff_two_sum(y0, y0 * e.hi * 0.5f);
}

/* Work-group sum of float-float values (buf holds 2 * local size floats). */
inline lc_ff lc_wg_sum_ff(local float *buf, lc_ff v) {
    const uint lid = get_local_id(0), n = get_local_size(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    buf[2 * lid] = v.hi;
    buf[2 * lid + 1] = v.lo;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = n >> 1; s > 0u; s >>= 1) {
        if (lid < s) {
            const lc_ff a = lc_ff_make(buf[2 * lid], buf[2 * lid + 1]);
            const lc_ff b = lc_ff_make(buf[2 * (lid + s)], buf[2 * (lid + s) + 1]);
            const lc_ff r = lc_ff_add(a, b);
            buf[2 * lid] = r.hi;
            buf[2 * lid + 1] = r.lo;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return lc_ff_make(buf[0], buf[1]);
}

/* dx [n, R] (+)= r (u - x q); rstd[q] = r (rounded) for the dweight kernel. buf: 2 floats per
 * work-item. */
kernel void rms_norm_back_f32(global float *dx, const ulong dxo, global const float *x, const ulong xo,
                              global const float *w, const ulong wo, global const float *dy,
                              const ulong dyo, global float *rstd, const int has_w, const int has_dx,
                              const int acc, const uint g, const float eps, local float *buf) {
    const ulong q = get_group_id(0);
    global const float *xq = LC_CPTR(float, x, xo) + q * g;
    global const float *dyq = LC_CPTR(float, dy, dyo) + q * g;
    global const float *pw = LC_CPTR(float, w, wo);
    lc_ff ss = lc_ff_make(0.0f, 0.0f), dot = lc_ff_make(0.0f, 0.0f);
    for (uint i = get_local_id(0); i < g; i += get_local_size(0)) {
        const float xv = xq[i];
        const lc_ff u = has_w ? lc_ff_two_prod(dyq[i], pw[i]) : lc_ff_make(dyq[i], 0.0f);
        ss = lc_ff_add(ss, lc_ff_two_prod(xv, xv));
        dot = lc_ff_add(dot, lc_ff_mul_f(u, xv));
    }
    ss = lc_wg_sum_ff(buf, ss);
    dot = lc_wg_sum_ff(buf, dot);
    /* m = mean(x^2) + eps; r = 1/sqrt(m); qq = dot / (g m) */
    const lc_ff m = lc_ff_add(lc_ff_div(ss, lc_ff_make((float)g, 0.0f)), lc_ff_make(eps, 0.0f));
    const lc_ff r = lc_ff_rsqrt(m);
    if (get_local_id(0) == 0) rstd[q] = r.hi + r.lo;
    if (!has_dx) return;
    const lc_ff qq = lc_ff_div(dot, lc_ff_mul_f(m, (float)g));
    global float *dxq = LC_PTR(float, dx, dxo) + q * g;
    for (uint i = get_local_id(0); i < g; i += get_local_size(0)) {
        const lc_ff u = has_w ? lc_ff_two_prod(dyq[i], pw[i]) : lc_ff_make(dyq[i], 0.0f);
        const lc_ff t = lc_ff_add(u, lc_ff_neg(lc_ff_mul_f(qq, xq[i])));
        const lc_ff d = lc_ff_mul(r, t);
        const float v = d.hi + d.lo;
        dxq[i] = acc ? dxq[i] + v : v;
    }
}

/* dw [g] (+)= sum over the ng groups of dy * x * rstd[q]; one work-item per weight element,
 * Kahan-summed in group order. */
kernel void rms_norm_back_dw_f32(global float *dw, const ulong dwo, global const float *x, const ulong xo,
                                 global const float *dy, const ulong dyo, global const float *rstd,
                                 const uint g, const uint ng, const int acc) {
    const uint k = get_global_id(0);
    if (k >= g) return;
    global const float *px = LC_CPTR(float, x, xo);
    global const float *pdy = LC_CPTR(float, dy, dyo);
    lc_ksum s = {0.0f, 0.0f};
    for (uint q = 0; q < ng; q++) {
        const ulong e = (ulong)q * g + k;
        lc_kadd(&s, pdy[e] * px[e] * rstd[q]);
    }
    global float *p = LC_PTR(float, dw, dwo);
    p[k] = acc ? p[k] + s.s : s.s;
}

/* x, y [hd * n_head, T]; work-item (w, h, t) with w < n_rot/2 rotates pair w of head h of token
 * t, w >= n_rot/2 copies dimension n_rot + (w - n_rot/2). sign = +1 forward, -1 backward. */
kernel void rope_f32(global float *y, const ulong yo, global const float *x, const ulong xo,
                     global const int *pos, const ulong po, global const float *inv_freq,
                     const uint hd, const uint n_head, const uint n_rot, const int neox,
                     const float freq_scale, const float sign, const int acc, const uint T) {
    const uint w = get_global_id(0), h = get_global_id(1), t = get_global_id(2);
    const uint half_rot = n_rot / 2u;
    if (w >= half_rot + (hd - n_rot) || h >= n_head || t >= T) return;
    const ulong base = ((ulong)t * n_head + h) * hd;
    global const float *xs = LC_CPTR(float, x, xo) + base;
    global float *yd = LC_PTR(float, y, yo) + base;
    if (w >= half_rot) {
        const uint d = n_rot + (w - half_rot);
        const float v = xs[d];
        yd[d] = acc ? yd[d] + v : v;
        return;
    }
    const float pf = (float)LC_CPTR(int, pos, po)[t];
    const float theta = pf * freq_scale * inv_freq[w];
    const float c = cos(theta), s = sign * sin(theta);
    const uint ia = neox ? w : 2u * w, ib = neox ? w + half_rot : 2u * w + 1u;
    const float a = xs[ia], b = xs[ib];
    const float ra = a * c - b * s, rb = a * s + b * c;
    if (acc) {
        yd[ia] += ra;
        yd[ib] += rb;
    } else {
        yd[ia] = ra;
        yd[ib] = rb;
    }
}
