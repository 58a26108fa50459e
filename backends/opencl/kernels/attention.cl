/* lorac OpenCL kernels - the row-wise parts of attention (lorac/graph.h ATTENTION); the
 * products q*k^T, P*v and their backward products are batched runs of the GEMM kernel.
 *
 * Scores of one launch are held as rows of Tk floats: row r = (s_rel * n_head + h) * nb + i_rel
 * for the sequences s0 + s_rel and the query rows i0 + i_rel (i_rel < nb) of one block. Query i
 * sits at position p = Tk - Tq + i; key j is visible when (!causal || j <= p) && (window == 0 ||
 * p - j < window). Softmax with log-sum-exp bookkeeping (FlashAttention, Dao et al. 2022):
 * P = exp(s - m) / sum, lse = m + log(sum); a row with no visible key gets P = 0, lse = -inf.
 * Backward (FlashAttention-2, Dao 2023, Algorithm 2): P = exp(s - lse), D = dO*O,
 * dS = P * (dP - D). One work-group per row; reductions in a fixed order.
 */

inline void lc_attn_range(int i, int Tq, int Tk, int causal, int window, int *lo, int *hi) {
    const int p = Tk - Tq + i;
    int h = causal ? p : Tk - 1;
    int l = window > 0 ? p - window + 1 : 0;
    if (h > Tk - 1) h = Tk - 1;
    if (l < 0) l = 0;
    *lo = l;
    *hi = h;
}

/* In place: scores -> P. lse [n_head, Tq*S] gets row (s0 + s_rel)*Tq + i, head h. */
kernel void attn_softmax(global float *sc, global float *lse, const ulong lseo, const int has_lse,
                         const int n_head, const int nb, const int i0, const int s0, const int Tq,
                         const int Tk, const int causal, const int window, local float *buf) {
    const uint r = get_group_id(0);
    const int i_rel = (int)(r % (uint)nb), h = (int)((r / (uint)nb) % (uint)n_head);
    const int s = s0 + (int)(r / (uint)(nb * n_head));
    const int i = i0 + i_rel;
    global float *row = sc + (ulong)r * (ulong)Tk;
    int lo, hi;
    lc_attn_range(i, Tq, Tk, causal, window, &lo, &hi);
    float l = -INFINITY;
    if (lo <= hi) {
        float m = -INFINITY;
        for (int j = lo + (int)get_local_id(0); j <= hi; j += (int)get_local_size(0)) m = fmax(m, row[j]);
        m = lc_wg_max(buf, m);
        lc_ksum k = {0.0f, 0.0f};
        for (int j = lo + (int)get_local_id(0); j <= hi; j += (int)get_local_size(0)) lc_kadd(&k, exp(row[j] - m));
        const float sum = lc_wg_sum(buf, k.s);
        const float inv = 1.0f / sum;
        for (int j = (int)get_local_id(0); j < Tk; j += (int)get_local_size(0))
            row[j] = (j >= lo && j <= hi) ? exp(row[j] - m) * inv : 0.0f;
        l = m + log(sum);
    } else {
        for (int j = (int)get_local_id(0); j < Tk; j += (int)get_local_size(0)) row[j] = 0.0f;
    }
    if (has_lse && get_local_id(0) == 0) LC_PTR(float, lse, lseo)[((ulong)s * Tq + i) * n_head + h] = l;
}

/* sc: scores -> P = exp(s - lse) on visible keys (0 elsewhere); dp: dO*v^T -> dS = P (dP - D),
 * D = dot(dO_i, O_i) over the head dimension hd (rows of o / do are ldq floats apart). */
kernel void attn_ds(global float *sc, global float *dp, global const float *lse, const ulong lseo,
                    global const float *o, const ulong oo, global const float *dout, const ulong doo,
                    const int need_ds, const int n_head, const int hd, const int ldq, const int nb,
                    const int i0, const int s0, const int Tq, const int Tk, const int causal,
                    const int window, local float *buf) {
    const uint r = get_group_id(0);
    const int i_rel = (int)(r % (uint)nb), h = (int)((r / (uint)nb) % (uint)n_head);
    const int s = s0 + (int)(r / (uint)(nb * n_head));
    const int i = i0 + i_rel;
    global float *row = sc + (ulong)r * (ulong)Tk;
    const float l = LC_CPTR(float, lse, lseo)[((ulong)s * Tq + i) * n_head + h];
    int lo, hi;
    lc_attn_range(i, Tq, Tk, causal, window, &lo, &hi);
    if (lo > hi || !isfinite(l)) {
        lo = 0;
        hi = -1;
    }
    for (int j = (int)get_local_id(0); j < Tk; j += (int)get_local_size(0))
        row[j] = (j >= lo && j <= hi) ? exp(row[j] - l) : 0.0f;
    if (!need_ds) return;
    const ulong qoff = ((ulong)s * Tq + i) * (ulong)ldq + (ulong)h * hd;
    global const float *orow = LC_CPTR(float, o, oo) + qoff;
    global const float *drow = LC_CPTR(float, dout, doo) + qoff;
    lc_ksum k = {0.0f, 0.0f};
    for (int d = (int)get_local_id(0); d < hd; d += (int)get_local_size(0)) lc_kadd(&k, drow[d] * orow[d]);
    const float D = lc_wg_sum(buf, k.s);
    global float *dsr = dp + (ulong)r * (ulong)Tk;
    for (int j = (int)get_local_id(0); j < Tk; j += (int)get_local_size(0)) dsr[j] = row[j] * (dsr[j] - D);
}
