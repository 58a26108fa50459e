/* lorac OpenCL kernels - matrix products for OpenCL devices that run on a CPU (PoCL & co).
 *
 * A CPU device runs the work-items of a work-group as a loop on one core; values that live
 * across a barrier (the accumulators of a local-memory tiled kernel) are spilled to per-item
 * arrays at every barrier, which makes kernels/gemm.cl slow there. These kernels use no local
 * memory and no barrier: each work-item keeps a block of C in vector registers and streams its
 * operands through the caches, with explicit vectors of GC_VW floats (the device's native width).
 *
 *  gemm_cpu_bc   op(B) stored [K][N] (rows contiguous along n): C block of GC_RM rows x
 *                GC_NV vectors; per k one vector load of B per GC_VW columns and one broadcast
 *                of A per row. A may be transposed.
 *  gemm_cpu_dot  A [M][K] and B = W [N][K] (both contiguous along k): C block of GC_DM x GC_DN,
 *                each a vector of partial dot products over k, summed at the end.
 *  gemm_pack_b   op(B) of any weight dtype (decoded here) -> an F32 panel [K][np] for gemm_cpu_bc.
 *
 * Work-groups of GC_WX x GC_WY items take k in chunks of GC_KC separated by a barrier, so every item
 * of a group works on the same chunk of A and B while it is in the cache (cache blocking).
 * Semantics, operand layout and batching as kernels/gemm.cl (C = alpha op(A) op(B) + beta C, C not
 * read when beta == 0; operand X starts at offX + zs*sXs + ((zh*mapX.x + mapX.y)/mapX.z)*sXh),
 * except that B offsets and strides count floats here. Rows and columns past the edge are read
 * clamped to the last valid one and never stored.
 */
#define GC_VEC_(n) float##n
#define GC_VEC(n) GC_VEC_(n)
#define GC_VLOAD_(n) vload##n
#define GC_VLOAD(n) GC_VLOAD_(n)
#define GC_VSTORE_(n) vstore##n
#define GC_VSTORE(n) GC_VSTORE_(n)
#define GC_V GC_VEC(GC_VW)
#define GC_LD GC_VLOAD(GC_VW)
#define GC_ST GC_VSTORE(GC_VW)

inline float gc_hsum(GC_V v) {
#if GC_VW == 16
    const float8 a = v.lo + v.hi;
    const float4 b = a.lo + a.hi;
#elif GC_VW == 8
    const float4 b = v.lo + v.hi;
#else
    const float4 b = v;
#endif
    const float2 c = b.lo + b.hi;
    return c.x + c.y;
}

inline GC_V gc_load_part(global const float *p, int count) {
    float t[GC_VW];
#pragma unroll
    for (int l = 0; l < GC_VW; l++) t[l] = l < count ? p[l] : 0.0f;
    return GC_LD(0, t);
}

#define GC_BATCH_PTRS                                                                             \
    const uint z = get_global_id(2);                                                              \
    const uint zs = z / (uint)nz1, zh = z % (uint)nz1;                                            \
    global const float *Ab = A + offA + (ulong)zs * sAs +                                          \
                             (ulong)((zh * (uint)mapA.x + (uint)mapA.y) / (uint)mapA.z) * sAh;    \
    global const float *Bb = B + offB + (ulong)zs * sBs +                                          \
                             (ulong)((zh * (uint)mapB.x + (uint)mapB.y) / (uint)mapB.z) * sBh;    \
    global float *Cb = C + offC + (ulong)zs * sCs + (ulong)((zh * (uint)mapC.x + (uint)mapC.y) / (uint)mapC.z) * sCh;

kernel void gemm_cpu_bc(const int M, const int N, const int K, const float alpha, const float beta,
                        global const float *A, const ulong offA, const ulong lda, const ulong sAs,
                        const ulong sAh, const int4 mapA,
                        global const float *B, const ulong offB, const ulong ldb, const ulong sBs,
                        const ulong sBh, const int4 mapB,
                        global float *C, const ulong offC, const ulong ldc, const ulong sCs,
                        const ulong sCh, const int4 mapC, const int nz1) {
    const int n0 = (int)get_global_id(0) * (GC_VW * GC_NV), m0 = (int)get_global_id(1) * GC_RM;
    GC_BATCH_PTRS
    const int ta = mapA.w;
    int mi[GC_RM];
    global const float *ar[GC_RM]; /* rows of A when it is not transposed */
#pragma unroll
    for (int i = 0; i < GC_RM; i++) {
        mi[i] = min(m0 + i, M - 1);
        ar[i] = Ab + (ulong)mi[i] * lda;
    }
    GC_V acc[GC_RM][GC_NV];
#pragma unroll
    for (int i = 0; i < GC_RM; i++)
#pragma unroll
        for (int v = 0; v < GC_NV; v++) acc[i][v] = (GC_V)(0.0f);
    const bool full = n0 + GC_VW * GC_NV <= N;
    /* k in chunks of GC_KC; the barrier makes the work-group's items take each chunk in turn,
     * so a chunk of A and B is reused from the cache by every item of the group */
    for (int kc = 0; kc < max(K, 1); kc += GC_KC) { /* >= 1 pass: see gemm_cpu_dot */
        const int ke = min(kc + GC_KC, K);
        if (full && !ta) {
            global const float *brow = Bb + (ulong)kc * ldb + n0;
            for (int k = kc; k < ke; k++, brow += ldb) {
                GC_V b[GC_NV];
#pragma unroll
                for (int v = 0; v < GC_NV; v++) b[v] = GC_LD(0, brow + v * GC_VW);
#pragma unroll
                for (int i = 0; i < GC_RM; i++) {
                    const GC_V a = (GC_V)(ar[i][k]);
#pragma unroll
                    for (int v = 0; v < GC_NV; v++) acc[i][v] = LC_MAC(a, b[v], acc[i][v]);
                }
            }
        } else if (full) {
            for (int k = kc; k < ke; k++) {
                global const float *brow = Bb + (ulong)k * ldb + n0;
                global const float *acol = Ab + (ulong)k * lda;
                GC_V b[GC_NV];
#pragma unroll
                for (int v = 0; v < GC_NV; v++) b[v] = GC_LD(0, brow + v * GC_VW);
#pragma unroll
                for (int i = 0; i < GC_RM; i++) {
                    const GC_V a = (GC_V)(acol[mi[i]]);
#pragma unroll
                    for (int v = 0; v < GC_NV; v++) acc[i][v] = LC_MAC(a, b[v], acc[i][v]);
                }
            }
        } else if (n0 < N) {
            for (int k = kc; k < ke; k++) {
                global const float *brow = Bb + (ulong)k * ldb + n0;
                GC_V b[GC_NV];
#pragma unroll
                for (int v = 0; v < GC_NV; v++) b[v] = gc_load_part(brow + v * GC_VW, N - n0 - v * GC_VW);
#pragma unroll
                for (int i = 0; i < GC_RM; i++) {
                    const GC_V a = (GC_V)(ta ? Ab[(ulong)k * lda + mi[i]] : Ab[(ulong)mi[i] * lda + k]);
#pragma unroll
                    for (int v = 0; v < GC_NV; v++) acc[i][v] = LC_MAC(a, b[v], acc[i][v]);
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (n0 >= N) return;
#pragma unroll
    for (int i = 0; i < GC_RM; i++) {
        if (m0 + i >= M) break;
        global float *crow = Cb + (ulong)(m0 + i) * ldc + n0;
#pragma unroll
        for (int v = 0; v < GC_NV; v++) {
            const int nv = n0 + v * GC_VW;
            if (nv >= N) break;
            GC_V r = alpha * acc[i][v];
            if (nv + GC_VW <= N) {
                if (beta != 0.0f) r = r + beta * GC_LD(0, crow + v * GC_VW);
                GC_ST(r, 0, crow + v * GC_VW);
            } else {
                float t[GC_VW];
                GC_ST(r, 0, t);
                for (int l = 0; l < N - nv; l++)
                    crow[v * GC_VW + l] = beta == 0.0f ? t[l] : t[l] + beta * crow[v * GC_VW + l];
            }
        }
    }
}

kernel void gemm_cpu_dot(const int M, const int N, const int K, const float alpha, const float beta,
                         global const float *A, const ulong offA, const ulong lda, const ulong sAs,
                         const ulong sAh, const int4 mapA,
                         global const float *B, const ulong offB, const ulong ldb, const ulong sBs,
                         const ulong sBh, const int4 mapB,
                         global float *C, const ulong offC, const ulong ldc, const ulong sCs,
                         const ulong sCh, const int4 mapC, const int nz1) {
    const int n0 = (int)get_global_id(0) * GC_DN, m0 = (int)get_global_id(1) * GC_DM;
    GC_BATCH_PTRS
    global const float *ar[GC_DM];
    global const float *br[GC_DN];
#pragma unroll
    for (int i = 0; i < GC_DM; i++) ar[i] = Ab + (ulong)min(m0 + i, M - 1) * lda;
#pragma unroll
    for (int j = 0; j < GC_DN; j++) br[j] = Bb + (ulong)min(n0 + j, N - 1) * ldb;
    GC_V acc[GC_DM][GC_DN];
#pragma unroll
    for (int i = 0; i < GC_DM; i++)
#pragma unroll
        for (int j = 0; j < GC_DN; j++) acc[i][j] = (GC_V)(0.0f);
    const int kv = K / GC_VW * GC_VW; /* vectorised part of k */
    /* at least one pass, so every item meets the barrier even when K < GC_VW (PoCL mis-runs a
     * kernel whose only barrier sits in a loop that runs zero times) */
    for (int kc = 0; kc < max(kv, 1); kc += GC_KC) {
        const int ke = min(kc + GC_KC, kv);
        for (int k = kc; k < ke; k += GC_VW) {
            GC_V a[GC_DM], b[GC_DN];
#pragma unroll
            for (int i = 0; i < GC_DM; i++) a[i] = GC_LD(0, ar[i] + k);
#pragma unroll
            for (int j = 0; j < GC_DN; j++) b[j] = GC_LD(0, br[j] + k);
#pragma unroll
            for (int i = 0; i < GC_DM; i++)
#pragma unroll
                for (int j = 0; j < GC_DN; j++) acc[i][j] = LC_MAC(a[i], b[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (n0 >= N || m0 >= M) return;
#pragma unroll
    for (int i = 0; i < GC_DM; i++) {
        if (m0 + i >= M) break;
        global float *crow = Cb + (ulong)(m0 + i) * ldc;
#pragma unroll
        for (int j = 0; j < GC_DN; j++) {
            if (n0 + j >= N) break;
            float s = gc_hsum(acc[i][j]);
            for (int kk = kv; kk < K; kk++) s = LC_MAC(ar[i][kk], br[j][kk], s);
            const float r = alpha * s;
            crow[n0 + j] = beta == 0.0f ? r : r + beta * crow[n0 + j];
        }
    }
}

/* Elements c0 .. c0+31 (c0 a multiple of 32) of a row of dtype dt into out[32]; cnt < 32 only for
 * the last chunk of a plain (F32 / F16 / BF16) row. Block scales are read once per chunk; the
 * element formulas and their operation order are those of lc_deq_* in common.cl. */
inline void gc_decode32(global const uchar *row, uint c0, int dt, float *out, uint cnt) {
    if (dt == LC_DT_F32 && cnt == 32u) {
        global const float *p = (global const float *)row + c0;
        vstore16(vload16(0, p), 0, out);
        vstore16(vload16(1, p), 1, out);
        return;
    }
    if (dt == LC_DT_F32 || dt == LC_DT_F16 || dt == LC_DT_BF16) {
        for (uint l = 0; l < cnt; l++) out[l] = lc_load_elem(row, c0 + l, dt);
        return;
    }
    if (dt == LC_DT_Q4_0 || dt == LC_DT_Q4_1 || dt == LC_DT_Q5_0 || dt == LC_DT_Q5_1 || dt == LC_DT_Q8_0) {
        const uint bs = dt == LC_DT_Q4_0 ? 18u : dt == LC_DT_Q4_1 ? 20u : dt == LC_DT_Q5_0 ? 22u : dt == LC_DT_Q5_1 ? 24u : 34u;
        global const uchar *b = row + bs * (c0 >> 5);
        const float d = lc_f16(b);
        if (dt == LC_DT_Q8_0) {
            for (uint l = 0; l < 32u; l++) out[l] = (float)(char)b[2 + l] * d;
            return;
        }
        const bool has_m = dt == LC_DT_Q4_1 || dt == LC_DT_Q5_1, five = dt == LC_DT_Q5_0 || dt == LC_DT_Q5_1;
        const float m = has_m ? lc_f16(b + 2) : 0.0f;
        const uint h = five ? lc_u32le(b + (has_m ? 4 : 2)) : 0u;
        global const uchar *qs = b + (has_m ? 4 : 2) + (five ? 4 : 0);
        for (uint l = 0; l < 16u; l++) {
            const uint q = qs[l];
            int x0 = (int)(q & 15u), x1 = (int)(q >> 4);
            if (five) {
                x0 |= (int)(((h >> l) & 1u) << 4);
                x1 |= (int)(((h >> (l + 16u)) & 1u) << 4);
            }
            if (has_m) {
                out[l] = (float)x0 * d + m;
                out[l + 16] = (float)x1 * d + m;
            } else {
                const int off = five ? 16 : 8;
                out[l] = (float)(x0 - off) * d;
                out[l + 16] = (float)(x1 - off) * d;
            }
        }
        return;
    }
    if (dt == LC_DT_Q4_K || dt == LC_DT_Q5_K) {
        const bool five = dt == LC_DT_Q5_K;
        global const uchar *b = row + (five ? 176u : 144u) * (c0 >> 8);
        const uint j0 = c0 & 255u, c = j0 >> 6, is = j0 >> 5;
        const float d = lc_f16(b), dmin = lc_f16(b + 2);
        float sc, mn;
        lc_scale_min_k4(b + 4, is, &sc, &mn);
        const float d1 = d * sc, m1 = dmin * mn;
        global const uchar *qs = b + (five ? 48 : 16) + 32u * c;
        for (uint l = 0; l < 32u; l++) {
            const uint q = qs[l];
            uint v = (is & 1u) ? (q >> 4) : (q & 15u);
            if (five) v += 16u * ((b[16 + l] >> is) & 1u);
            out[l] = d1 * (float)v - m1;
        }
        return;
    }
    if (dt == LC_DT_Q6_K) {
        global const uchar *b = row + 210u * (c0 >> 8);
        const uint j0 = c0 & 255u, n = j0 >> 7, k = (j0 >> 5) & 3u;
        const float d = lc_f16(b + 208);
        const float s0 = d * (float)(char)b[192 + (j0 >> 4)], s1 = d * (float)(char)b[192 + (j0 >> 4) + 1];
        for (uint l = 0; l < 32u; l++) {
            const uchar lo = b[64u * n + l + 32u * (k & 1u)];
            const uint nib = k < 2u ? (uint)(lo & 15u) : (uint)(lo >> 4);
            const uint hb = ((uint)b[128 + 32u * n + l] >> (2u * k)) & 3u;
            const int q = (int)(nib | (hb << 4)) - 32;
            out[l] = (l < 16u ? s0 : s1) * (float)q;
        }
        return;
    }
    for (uint l = 0; l < cnt; l++) out[l] = 0.0f;
}

/* Panel of op(B) columns n0 .. n0+np-1 as F32: P[k*ldp + j] = op(B)[k, n0 + j] (nk == 0) or
 * P[j*ldp + k] (nk != 0, rows along k for gemm_cpu_dot), 0 for columns past N; op(B)[k,n] = W(k,n)
 * or W(n,k) when tb, W rows of dtype dt with row stride nb1 bytes. Work-item (chunk, r) decodes
 * 32 consecutive elements of W row r: r = n (tb) or k (!tb); for tb with the [K][np] layout it
 * transposes a 32 x 32 block instead (see below). */
kernel void gemm_pack_b(global float *P, const ulong ldp, global const uchar *W, const ulong offw,
                        const ulong nb1, const int dt, const int tb, const int K, const int N,
                        const int n0, const int np, const int nk) {
    const int chunk = get_global_id(0), r = get_global_id(1);
    if (tb && !nk) {
        /* a transposition: work-item (chunk, r) takes the 32 x 32 block of k = 32 chunk .. and
         * panel columns j = 32 r .., decoding 32 row chunks and writing 32 contiguous P rows */
        const int k0 = chunk * 32, j0 = r * 32;
        if (k0 >= K || j0 >= np) return;
        const uint cnt = (uint)min(32, K - k0);
        float tile[32][33];
        for (int jj = 0; jj < 32; jj++) {
            const int n = n0 + j0 + jj;
            if (j0 + jj < np && n < N) gc_decode32(W + offw + (ulong)n * nb1, (uint)k0, dt, tile[jj], cnt);
            else
                for (int l = 0; l < 32; l++) tile[jj][l] = 0.0f;
        }
        const int jn = min(32, np - j0);
        for (uint l = 0; l < cnt; l++) {
            global float *prow = P + (ulong)(k0 + (int)l) * ldp + j0;
            for (int jj = 0; jj < jn; jj++) prow[jj] = tile[jj][l];
        }
        return;
    }
    const int len = tb ? K : N;                 /* elements along a W row */
    const int c0 = tb ? chunk * 32 : (n0 / 32 + chunk) * 32;
    if (tb ? (r >= np || c0 >= K) : (r >= K || c0 >= n0 + np)) return;
    const int rrow = tb ? n0 + r : r;           /* W row */
    const uint cnt = (uint)min(32, len - c0);
    float v[32];
    if (rrow < (tb ? N : K) && cnt > 0) gc_decode32(W + offw + (ulong)rrow * nb1, (uint)c0, dt, v, cnt);
    else
        for (int l = 0; l < 32; l++) v[l] = 0.0f;
    if (tb) { /* column j = r of the panel, k = c0 + l */
        const int j = r;
        for (uint l = 0; l < cnt; l++) {
            const int k = c0 + (int)l;
            const float x = rrow < N ? v[l] : 0.0f;
            if (nk) P[(ulong)j * ldp + k] = x;
            else P[(ulong)k * ldp + j] = x;
        }
    } else { /* row k = r, columns n = c0 + l within [n0, n0 + np) */
        for (uint l = 0; l < 32u; l++) {
            const int n = c0 + (int)l, j = n - n0;
            if (j < 0 || j >= np) continue;
            const float x = n < N ? v[l] : 0.0f;
            if (nk) P[(ulong)j * ldp + r] = x;
            else P[(ulong)r * ldp + j] = x;
        }
    }
}

/* C[i*ldc + j] = alpha * T[j*ldt + i] + beta * C[i*ldc + j] (C not read when beta == 0), for
 * i < M, j < N: the result of a product computed transposed. */
kernel void gemm_cpu_tacc(global float *C, const ulong offC, const ulong ldc, global const float *T,
                          const ulong ldt, const int M, const int N, const float alpha, const float beta) {
    const int j = get_global_id(0), i = get_global_id(1);
    if (i >= M || j >= N) return;
    global float *p = C + offC + (ulong)i * ldc + j;
    const float v = alpha * T[(ulong)j * ldt + i];
    *p = beta == 0.0f ? v : v + beta * *p;
}
