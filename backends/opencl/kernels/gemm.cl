/* lorac OpenCL kernels - register-blocked, tiled matrix product with an on-the-fly weight decoder.
 *
 * This body is compiled once per weight dtype: the host prepends
 *   #define GEMM_NAME   kernel name (gemm_f32, gemm_q4_K, ...)
 *   #define GEMM_LOADW(row, c)  element c (float) of the weight row starting at byte pointer row
 * and the tile geometry GEMM_TM, GEMM_TN (output tile of a work-group), GEMM_TK (depth of a
 * tile step), GEMM_RM, GEMM_RN (outputs per work-item; work-group = (TN/RN) x (TM/RM)).
 *
 * C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C (row-major, BLAS semantics: with beta == 0
 * C is not read). A is F32: op(A)[m,k] = A[m*lda + k], or A[k*lda + m] when mapA.w (transposed).
 * B is a matrix W of rows of any weight dtype (row stride ldb bytes): op(B)[k,n] = W(k, n), or
 * W(n, k) when mapB.w, where W(r, c) is element c of row r; quantized rows are decoded while
 * the tile is loaded into local memory, never whole. Offsets and strides of A and C count
 * floats, of B bytes.
 *
 * Batches: work-group z = get_group_id(2) is split into zs = z / nz1, zh = z % nz1; operand X
 * starts at offX + zs*sXs + ((zh*mapX.x + mapX.y) / mapX.z) * sXh. This covers one plain
 * product (z = 0) and the per-(sequence, head) products of attention, including grouped-query
 * heads (kv head = h / group) and fixed-g sweeps (q head = c*group + g).
 *
 * Sizes that are not multiples of the tile are handled by zero-filled tile loads and guarded
 * stores; the NDRange is padded to whole work-groups by the host.
 */
#define GEMM_WGX (GEMM_TN / GEMM_RN)
#define GEMM_WGY (GEMM_TM / GEMM_RM)
#define GEMM_WG (GEMM_WGX * GEMM_WGY)

__attribute__((reqd_work_group_size(GEMM_WGX, GEMM_WGY, 1)))
kernel void GEMM_NAME(const int M, const int N, const int K, const float alpha, const float beta,
                      global const float *A, const ulong offA, const ulong lda, const ulong sAs,
                      const ulong sAh, const int4 mapA,
                      global const uchar *B, const ulong offB, const ulong ldb, const ulong sBs,
                      const ulong sBh, const int4 mapB,
                      global float *C, const ulong offC, const ulong ldc, const ulong sCs,
                      const ulong sCh, const int4 mapC, const int nz1) {
    /* padding breaks the power-of-two stride of the transposing tile stores (local memory bank
     * conflicts); Bs keeps rows 16-byte aligned for the vector loads */
    local float As[GEMM_TK][GEMM_TM + 1];
    local float Bs[GEMM_TK][GEMM_TN + 4];

    const int tx = get_local_id(0), ty = get_local_id(1);
    const int lid = ty * GEMM_WGX + tx;
    const int m0 = get_group_id(1) * GEMM_TM, n0 = get_group_id(0) * GEMM_TN;
    const uint z = get_group_id(2);
    const uint zs = z / (uint)nz1, zh = z % (uint)nz1;
    const ulong ha = (ulong)((zh * (uint)mapA.x + (uint)mapA.y) / (uint)mapA.z);
    const ulong hb = (ulong)((zh * (uint)mapB.x + (uint)mapB.y) / (uint)mapB.z);
    const ulong hc = (ulong)((zh * (uint)mapC.x + (uint)mapC.y) / (uint)mapC.z);
    global const float *Ab = A + offA + (ulong)zs * sAs + ha * sAh;
    global const uchar *Bb = B + offB + (ulong)zs * sBs + hb * sBh;
    global float *Cb = C + offC + (ulong)zs * sCs + hc * sCh;
    const int ta = mapA.w, tb = mapB.w;

    /* work-item (tx, ty) owns rows ty*RM .. ty*RM+RM-1 and columns tx*RN .. tx*RN+RN-1 of the tile,
     * held as float4 vectors when RN is a multiple of 4 (vector loads from local memory, vector
     * multiply-adds, vector stores) */
#if GEMM_RN % 4 == 0
#define GEMM_NV (GEMM_RN / 4)
    float4 acc[GEMM_RM][GEMM_NV];
#pragma unroll
    for (int i = 0; i < GEMM_RM; i++)
#pragma unroll
        for (int v = 0; v < GEMM_NV; v++) acc[i][v] = (float4)(0.0f);
#else
    float acc[GEMM_RM][GEMM_RN];
#pragma unroll
    for (int i = 0; i < GEMM_RM; i++)
#pragma unroll
        for (int j = 0; j < GEMM_RN; j++) acc[i][j] = 0.0f;
#endif

    /* at least one pass, so that every work-item meets the barriers even for K = 0 */
    for (int k0 = 0; k0 < max(K, 1); k0 += GEMM_TK) {
        /* A tile [TM x TK]: consecutive work-items read consecutive addresses. */
        for (int l = lid; l < GEMM_TM * GEMM_TK; l += GEMM_WG) {
            int mm, kk;
            if (ta) {
                kk = l / GEMM_TM;
                mm = l % GEMM_TM;
            } else {
                mm = l / GEMM_TK;
                kk = l % GEMM_TK;
            }
            const int m = m0 + mm, k = k0 + kk;
            float v = 0.0f;
            if (m < M && k < K) v = ta ? Ab[(ulong)k * lda + m] : Ab[(ulong)m * lda + k];
            As[kk][mm] = v;
        }
        /* B tile [TK x TN], decoded from the weight rows. */
        for (int l = lid; l < GEMM_TN * GEMM_TK; l += GEMM_WG) {
            int nn, kk;
            if (tb) {
                nn = l / GEMM_TK;
                kk = l % GEMM_TK;
            } else {
                kk = l / GEMM_TN;
                nn = l % GEMM_TN;
            }
            const int n = n0 + nn, k = k0 + kk;
            float v = 0.0f;
            if (n < N && k < K)
                v = tb ? GEMM_LOADW(Bb + (ulong)n * ldb, (uint)k) : GEMM_LOADW(Bb + (ulong)k * ldb, (uint)n);
            Bs[kk][nn] = v;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll 4
        for (int kk = 0; kk < GEMM_TK; kk++) {
            float a[GEMM_RM];
#pragma unroll
            for (int i = 0; i < GEMM_RM; i++) a[i] = As[kk][ty * GEMM_RM + i];
#if GEMM_RN % 4 == 0
            float4 b[GEMM_NV];
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++) b[v] = vload4(0, &Bs[kk][tx * GEMM_RN + 4 * v]);
#pragma unroll
            for (int i = 0; i < GEMM_RM; i++)
#pragma unroll
                for (int v = 0; v < GEMM_NV; v++) acc[i][v] = LC_MAC((float4)(a[i]), b[v], acc[i][v]);
#else
            float b[GEMM_RN];
#pragma unroll
            for (int j = 0; j < GEMM_RN; j++) b[j] = Bs[kk][tx * GEMM_RN + j];
#pragma unroll
            for (int i = 0; i < GEMM_RM; i++)
#pragma unroll
                for (int j = 0; j < GEMM_RN; j++) acc[i][j] = LC_MAC(a[i], b[j], acc[i][j]);
#endif
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (int i = 0; i < GEMM_RM; i++) {
        const int m = m0 + ty * GEMM_RM + i;
        if (m >= M) break;
        global float *crow = Cb + (ulong)m * ldc;
#if GEMM_RN % 4 == 0
        for (int v = 0; v < GEMM_NV; v++) {
            const int n = n0 + tx * GEMM_RN + 4 * v;
            if (n >= N) break;
            float4 r = alpha * acc[i][v];
            if (n + 4 <= N) {
                if (beta != 0.0f) r += beta * vload4(0, crow + n);
                vstore4(r, 0, crow + n);
            } else {
                const float t[4] = {r.x, r.y, r.z, r.w};
                for (int l = 0; l < N - n; l++) crow[n + l] = beta == 0.0f ? t[l] : t[l] + beta * crow[n + l];
            }
        }
#else
        for (int j = 0; j < GEMM_RN; j++) {
            const int n = n0 + tx * GEMM_RN + j;
            if (n >= N) break;
            const float v = alpha * acc[i][j];
            crow[n] = beta == 0.0f ? v : v + beta * crow[n];
        }
#endif
    }
#undef GEMM_NV
}
