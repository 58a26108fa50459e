/* lorac OpenCL kernels - data movement, optimizer and LoRA helper kernels (lorac/graph.h):
 * get_rows (+ backward), dequantize, cpy, sum_sq, adamw, the LoRA dropout (lorac/rng.h: keep =
 * uniform >= p, kept values x / (1 - p), element index t*in + i) and merges into half weights.
 * Formulas as backends/cpu/ops_misc.c and ops_matmul.c.
 */

/* dst [E, N] = table [E, V] rows ids[n] (any weight dtype, row stride nb1 bytes). An id outside
 * [0, V) is not read: it is recorded in err (flag, id, position, V) for the host to report. */
kernel void get_rows(global float *y, const ulong yo, global const uchar *tab, const ulong to,
                     const ulong nb1, global const int *ids, const ulong io, const uint E, const uint N,
                     const uint V, const int dt, global int *err) {
    const uint e = get_global_id(0), n = get_global_id(1);
    if (e >= E || n >= N) return;
    const int id = LC_CPTR(int, ids, io)[n];
    if (id < 0 || (uint)id >= V) {
        if (e == 0) {
            err[0] = 1;
            err[1] = id;
            err[2] = (int)n;
            err[3] = (int)V;
        }
        return;
    }
    LC_PTR(float, y, yo)[(ulong)n * E + e] = lc_load_elem(tab + to + (ulong)id * nb1, e, dt);
}

/* dtable [E, V] += dy [E, N] columns to rows ids[n], in order of n (one work-item per e, so no
 * two work-items touch the same element and repeated ids add in a fixed order). */
kernel void get_rows_back(global float *dt, const ulong dto, global const float *dy, const ulong dyo,
                          global const int *ids, const ulong io, const uint E, const uint N,
                          const uint V, global int *err) {
    const uint e = get_global_id(0);
    if (e >= E) return;
    global float *d = LC_PTR(float, dt, dto);
    global const float *g = LC_CPTR(float, dy, dyo);
    global const int *pid = LC_CPTR(int, ids, io);
    for (uint n = 0; n < N; n++) {
        const int id = pid[n];
        if (id < 0 || (uint)id >= V) {
            if (e == 0) {
                err[0] = 1;
                err[1] = id;
                err[2] = (int)n;
                err[3] = (int)V;
            }
            continue;
        }
        d[(ulong)id * E + e] += g[(ulong)n * E + e];
    }
}

/* dst [cols, rows] F32 = src rows of any dtype (row stride nb1 bytes). */
kernel void dequantize_rows(global float *y, const ulong yo, global const uchar *src, const ulong so,
                            const ulong nb1, const uint cols, const uint rows, const int dt) {
    const uint c = get_global_id(0), r = get_global_id(1);
    if (c >= cols || r >= rows) return;
    LC_PTR(float, y, yo)[(ulong)r * cols + c] = lc_load_elem(src + so + (ulong)r * nb1, c, dt);
}

/* dst = src converted between F32 / F16 / BF16 (round to nearest even), n elements. */
kernel void cpy_convert(global uchar *dst, const ulong dso, const int ddt, global const uchar *src,
                        const ulong sso, const int sdt, const uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float v = lc_load_elem(src + sso, i, sdt);
    global uchar *d = dst + dso;
    if (ddt == LC_DT_F32) ((global float *)d)[i] = v;
    else if (ddt == LC_DT_F16) ((global ushort *)d)[i] = lc_to_f16(v);
    else ((global ushort *)d)[i] = lc_to_bf16(v);
}

/* Stage 1 of sum_sq: part[g] = sum of squares of chunk g (chunk elements each). */
kernel void sum_sq_part(global float *part, global const float *x, const ulong xo, const ulong n,
                        const uint chunk, local float *buf) {
    const ulong g = get_group_id(0);
    const ulong i0 = g * chunk;
    const ulong i1 = i0 + chunk < n ? i0 + chunk : n;
    global const float *p = LC_CPTR(float, x, xo);
    lc_ksum k = {0.0f, 0.0f};
    for (ulong i = i0 + get_local_id(0); i < i1; i += get_local_size(0)) lc_kadd(&k, p[i] * p[i]);
    const float s = lc_wg_sum(buf, k.s);
    if (get_local_id(0) == 0) part[g] = s;
}

/* Stage 2: y[0] (+)= sum of the np partials, one work-group. */
kernel void sum_sq_final(global float *y, const ulong yo, global const float *part, const uint np,
                         const int acc, local float *buf) {
    lc_ksum k = {0.0f, 0.0f};
    for (uint i = get_local_id(0); i < np; i += get_local_size(0)) lc_kadd(&k, part[i]);
    const float s = lc_wg_sum(buf, k.s);
    if (get_local_id(0) == 0) {
        global float *p = LC_PTR(float, y, yo);
        p[0] = acc ? p[0] + s : s;
    }
}

/* AdamW (Loshchilov & Hutter 2019, as torch.optim.AdamW) in place; bc1 = 1 - b1^t and
 * bc2 = 1 - b2^t, decay = 1 - lr*wd, c1 = 1 - b1, c2 = 1 - b2 come from the host. */
kernel void adamw_f32(global float *p, const ulong po, global const float *g, const ulong go,
                      global float *m, const ulong mo, global float *v, const ulong vo, const uint n,
                      const float lr, const float b1, const float b2, const float eps, const float gs,
                      const float bc1, const float bc2, const float decay, const float c1, const float c2) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    global float *pp = LC_PTR(float, p, po), *pm = LC_PTR(float, m, mo), *pv = LC_PTR(float, v, vo);
    const float gi = LC_CPTR(float, g, go)[i] * gs;
    float pi = pp[i] * decay;
    const float mi = b1 * pm[i] + c1 * gi;
    const float vi = b2 * pv[i] + c2 * (gi * gi);
    pi -= lr * (mi / bc1) / (sqrt(vi / bc2) + eps);
    pm[i] = mi;
    pv[i] = vi;
    pp[i] = pi;
}

/* h [in, T] (packed) = drop(x): x[t*ldx + i] / q when kept, else 0; q = 1 - p. Work-item
 * (b, t) handles i = 16b .. 16b + 15 with one vector Philox evaluation. */
kernel void lora_dropout(global float *h, global const float *x, const ulong xo, const ulong ldx,
                         const uint in, const uint T, const ulong seed, const ulong stream,
                         const float p, const float q) {
    const uint i0 = get_global_id(0) * 16u, t = get_global_id(1);
    if (i0 >= in || t >= T) return;
    const ulong idx0 = (ulong)t * in + i0;
    const uint16 u = lc_philox_u32x16(seed, stream, idx0);
    const int16 keep = convert_float16(u >> 8) * (1.0f / 16777216.0f) >= (float16)(p);
    global const float *xr = LC_CPTR(float, x, xo) + (ulong)t * ldx + i0;
    global float *hr = h + idx0;
    const uint n = min(16u, in - i0);
    int kk[16];
    vstore16(keep, 0, kk);
    for (uint l = 0; l < n; l++) hr[l] = kk[l] ? xr[l] / q : 0.0f;
}

/* dx[t*lddx + i] += g[t*in + i] / q where kept (the dropout mask regenerated as forward). */
kernel void lora_dropout_dx(global float *dx, const ulong dxo, const ulong lddx, global const float *g,
                            const uint in, const uint T, const ulong seed, const ulong stream,
                            const float p, const float q) {
    const uint i0 = get_global_id(0) * 16u, t = get_global_id(1);
    if (i0 >= in || t >= T) return;
    const ulong idx0 = (ulong)t * in + i0;
    const uint16 u = lc_philox_u32x16(seed, stream, idx0);
    const int16 keep = convert_float16(u >> 8) * (1.0f / 16777216.0f) >= (float16)(p);
    global float *dr = LC_PTR(float, dx, dxo) + (ulong)t * lddx + i0;
    global const float *gr = g + idx0;
    const uint n = min(16u, in - i0);
    int kk[16];
    vstore16(keep, 0, kk);
    for (uint l = 0; l < n; l++)
        if (kk[l]) dr[l] += gr[l] / q;
}

/* w [in, out] F16/BF16 (row stride nb1 bytes) += s * sum_j B[o*ldb + j] A[j*lda + i], in F32,
 * rounded once to nearest even. */
kernel void lora_merge_half(global uchar *w, const ulong wo, const ulong nb1, const int dt,
                            global const float *a, const ulong ao, const ulong lda, global const float *b,
                            const ulong bo, const ulong ldb, const uint in, const uint out, const uint r,
                            const float s) {
    const uint i = get_global_id(0), o = get_global_id(1);
    if (i >= in || o >= out) return;
    global const float *pa = LC_CPTR(float, a, ao), *pb = LC_CPTR(float, b, bo) + (ulong)o * ldb;
    float acc = 0.0f;
    for (uint j = 0; j < r; j++) acc = LC_MAC(pb[j], pa[(ulong)j * lda + i], acc);
    global uchar *row = w + wo + (ulong)o * nb1;
    const float v = s * acc + lc_load_elem(row, i, dt);
    if (dt == LC_DT_F16) ((global ushort *)row)[i] = lc_to_f16(v);
    else ((global ushort *)row)[i] = lc_to_bf16(v);
}
