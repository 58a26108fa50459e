/* lorac OpenCL kernels - element-wise ops, forward and backward (lorac/graph.h op table):
 * fill, add / mul with broadcast by repetition, scale, gelu_tanh, silu, geglu, swiglu.
 * Formulas as backends/cpu/ops_elementwise.c (the reference): gelu_tanh and its derivative
 * through 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)) (Hendrycks & Gimpel 2016), silu = x / (1 +
 * exp(-x)) (Elfwing et al. 2018). Every kernel reads all its inputs of an element before
 * writing it, so a gradient output may share memory with dy. One work-item per element; the
 * NDRange is padded, so every kernel checks its index against n.
 * acc != 0 means "add into the output" (the accum bit of a backward node).
 */

#define LC_SQRT_2_OVER_PI 0.7978845608028654f
#define LC_GELU_COEF 0.044715f

/* s = 1 / (1 + exp(-z)) and 1 - s without cancellation or overflow. */
inline void lc_logistic2(float z, float *s, float *oms) {
    if (z >= 0.0f) {
        const float e = exp(-z), r = 1.0f / (1.0f + e);
        *s = r;
        *oms = e * r;
    } else {
        const float e = exp(z), r = 1.0f / (1.0f + e);
        *s = e * r;
        *oms = r;
    }
}

inline float lc_gelu(float x) {
    float s, oms;
    lc_logistic2(2.0f * LC_SQRT_2_OVER_PI * (x + LC_GELU_COEF * x * x * x), &s, &oms);
    return x * s;
}

inline float lc_gelu_grad(float x) {
    const float x2 = x * x;
    float s, oms;
    lc_logistic2(2.0f * LC_SQRT_2_OVER_PI * (x + LC_GELU_COEF * x2 * x), &s, &oms);
    const float du = LC_SQRT_2_OVER_PI * (1.0f + 3.0f * LC_GELU_COEF * x2);
    return s + 2.0f * x * s * oms * du;
}

inline float lc_silu(float x) { return x / (1.0f + exp(-x)); }

inline float lc_silu_grad(float x) {
    float s, oms;
    lc_logistic2(x, &s, &oms);
    return s * (1.0f + x * oms);
}

/* y[n] = v */
kernel void fill_f32(global float *y, const ulong yo, const uint n, const float v) {
    const uint i = get_global_id(0);
    if (i < n) LC_PTR(float, y, yo)[i] = v;
}

/* y[r*ld + c] = v for c < cols, r < rows (padding between rows untouched). */
kernel void fill_2d_f32(global float *y, const ulong yo, const ulong ld, const uint cols, const uint rows,
                        const float v) {
    const uint c = get_global_id(0), r = get_global_id(1);
    if (c < cols && r < rows) LC_PTR(float, y, yo)[(ulong)r * ld + c] = v;
}

/* y [n0, n1] = a (+ or *) b [m0, m1] repeated: y[i,j] = a[i,j] op b[i % m0, j % m1]. */
kernel void binary_f32(global float *y, const ulong yo, global const float *a, const ulong ao,
                       global const float *b, const ulong bo, const uint n0, const uint n,
                       const uint m0, const uint m1, const int is_mul) {
    const uint e = get_global_id(0);
    if (e >= n) return;
    const uint i = e % n0, j = e / n0;
    const float av = LC_CPTR(float, a, ao)[e];
    const float bv = LC_CPTR(float, b, bo)[(j % m1) * m0 + i % m0];
    LC_PTR(float, y, yo)[e] = is_mul ? av * bv : av + bv;
}

/* da [n0, n1] (+)= dy (add) or dy * b[i % m0, j % m1] (mul). */
kernel void binary_back_a(global float *da, const ulong dao, global const float *dy, const ulong dyo,
                          global const float *b, const ulong bo, const uint n0, const uint n,
                          const uint m0, const uint m1, const int is_mul, const int acc) {
    const uint e = get_global_id(0);
    if (e >= n) return;
    const uint i = e % n0, j = e / n0;
    float v = LC_CPTR(float, dy, dyo)[e];
    if (is_mul) v = v * LC_CPTR(float, b, bo)[(j % m1) * m0 + i % m0];
    global float *d = LC_PTR(float, da, dao);
    d[e] = acc ? d[e] + v : v;
}

/* db [m0, m1] (+)= sum over the repetitions (i, j) of element (i', j') of b of dy[i,j] (add) or
 * dy[i,j] * a[i,j] (mul). One work-group per element of db; repetition q = r1 * (n0/m0) + r0 is
 * position (r0*m0 + i', r1*m1 + j'). Kahan sums per work-item, then a tree: the order of
 * additions is fixed, so results are identical on every run. */
kernel void binary_back_b(global float *db, const ulong dbo, global const float *dy, const ulong dyo,
                          global const float *a, const ulong ao, const uint n0, const uint n1,
                          const uint m0, const uint m1, const int is_mul, const int acc,
                          local float *buf) {
    const uint e = get_group_id(0);
    const uint ip = e % m0, jp = e / m0;
    const uint reps0 = n0 / m0, reps = reps0 * (n1 / m1);
    global const float *pdy = LC_CPTR(float, dy, dyo);
    global const float *pa = LC_CPTR(float, a, ao);
    lc_ksum k = {0.0f, 0.0f};
    for (uint q = get_local_id(0); q < reps; q += get_local_size(0)) {
        const uint r0 = q % reps0, r1 = q / reps0;
        const ulong idx = (ulong)(r1 * m1 + jp) * n0 + r0 * m0 + ip;
        lc_kadd(&k, is_mul ? pdy[idx] * pa[idx] : pdy[idx]);
    }
    const float s = lc_wg_sum(buf, k.s);
    if (get_local_id(0) == 0) {
        global float *d = LC_PTR(float, db, dbo);
        d[e] = acc ? d[e] + s : s;
    }
}

/* op 0: y = x * s (scale); 1: gelu_tanh; 2: silu. */
kernel void unary_f32(global float *y, const ulong yo, global const float *x, const ulong xo,
                      const uint n, const int op, const float s) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float v = LC_CPTR(float, x, xo)[i];
    LC_PTR(float, y, yo)[i] = op == 0 ? v * s : op == 1 ? lc_gelu(v) : lc_silu(v);
}

/* dx (+)= dy * f'(x) (scale: dy * s). */
kernel void unary_back_f32(global float *dx, const ulong dxo, global const float *x, const ulong xo,
                           global const float *dy, const ulong dyo, const uint n, const int op,
                           const float s, const int acc) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float d = LC_CPTR(float, dy, dyo)[i];
    float v;
    if (op == 0) v = d * s;
    else {
        const float xv = LC_CPTR(float, x, xo)[i];
        v = d * (op == 1 ? lc_gelu_grad(xv) : lc_silu_grad(xv));
    }
    global float *p = LC_PTR(float, dx, dxo);
    p[i] = acc ? p[i] + v : v;
}

/* op 1: y = gelu_tanh(gate) * up (geglu); 2: silu(gate) * up (swiglu). */
kernel void glu_f32(global float *y, const ulong yo, global const float *g, const ulong go,
                    global const float *u, const ulong uo, const uint n, const int op) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float gv = LC_CPTR(float, g, go)[i], uv = LC_CPTR(float, u, uo)[i];
    LC_PTR(float, y, yo)[i] = (op == 1 ? lc_gelu(gv) : lc_silu(gv)) * uv;
}

/* dgate (+)= dy * up * act'(gate) when has_dg, dup (+)= dy * act(gate) when has_du;
 * acc bit 0 / bit 1 add into dgate / dup. */
kernel void glu_back_f32(global float *dg, const ulong dgo, global float *du, const ulong duo,
                         global const float *g, const ulong go, global const float *u, const ulong uo,
                         global const float *dy, const ulong dyo, const uint n, const int op,
                         const int has_dg, const int has_du, const int acc) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float gv = LC_CPTR(float, g, go)[i], uv = LC_CPTR(float, u, uo)[i];
    const float d = LC_CPTR(float, dy, dyo)[i];
    const float act = op == 1 ? lc_gelu(gv) : lc_silu(gv);
    const float dact = op == 1 ? lc_gelu_grad(gv) : lc_silu_grad(gv);
    if (has_dg) {
        global float *p = LC_PTR(float, dg, dgo);
        const float v = d * uv * dact;
        p[i] = (acc & 1) ? p[i] + v : v;
    }
    if (has_du) {
        global float *p = LC_PTR(float, du, duo);
        const float v = d * act;
        p[i] = (acc & 2) ? p[i] + v : v;
    }
}
