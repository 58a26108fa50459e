/* lorac OpenCL kernels - fused log-softmax + negative log-likelihood (lorac/graph.h
 * CROSS_ENTROPY; formulas as backends/cpu/ops_loss.c; mean token NLL as
 * torch.nn.functional.cross_entropy with ignore_index).
 *
 * logits [V, N], labels I32 [N]. Row n counts when labels[n] != ignore and 0 <= label < V.
 * lse[n] = m + log(sum_v exp(x - m)); loss = sum over counted rows of (lse - x[label]) / D,
 * D = denom when denom > 0, else the counted rows; 0 when nothing counts.
 * Backward: dlogits = dloss/D * (softmax - onehot) on counted rows (softmax renormalised by its
 * recomputed sum), 0 (or unchanged with acc) on the others.
 * All reductions are work-group trees over Kahan partial sums in a fixed order.
 */

inline int lc_ce_counted(int label, int ignore, uint V) {
    return label != ignore && label >= 0 && (uint)label < V;
}

/* Row max, then log-sum-exp of row x[V] (one work-group). */
inline float lc_row_lse(global const float *x, uint V, local float *buf) {
    float m = -INFINITY;
    for (uint v = get_local_id(0); v < V; v += get_local_size(0)) m = fmax(m, x[v]);
    m = lc_wg_max(buf, m);
    if (isinf(m)) return m;
    lc_ksum k = {0.0f, 0.0f};
    for (uint v = get_local_id(0); v < V; v += get_local_size(0)) lc_kadd(&k, exp(x[v] - m));
    const float sum = lc_wg_sum(buf, k.s);
    return m + log(sum);
}

/* One work-group per row: lse[n] (when has_lse) and nll[n] (0 for rows that do not count). */
kernel void ce_rows(global const float *x, const ulong xo, global const int *labels, const ulong lo,
                    global float *lse, const ulong lseo, const int has_lse, global float *nll,
                    const uint V, const int ignore, local float *buf) {
    const ulong n = get_group_id(0);
    global const float *row = LC_CPTR(float, x, xo) + n * V;
    const float l = lc_row_lse(row, V, buf);
    if (get_local_id(0) != 0) return;
    if (has_lse) LC_PTR(float, lse, lseo)[n] = l;
    const int y = LC_CPTR(int, labels, lo)[n];
    nll[n] = lc_ce_counted(y, ignore, V) ? l - row[y] : 0.0f;
}

/* One work-group: counted rows and the mean loss. */
kernel void ce_loss(global float *loss, const ulong losso, global const float *nll,
                    global const int *labels, const ulong lo, const uint N, const uint V,
                    const int ignore, const float denom, local float *buf) {
    global const int *lab = LC_CPTR(int, labels, lo);
    lc_ksum k = {0.0f, 0.0f};
    float cnt = 0.0f; /* exact up to 2^24 rows per work-item */
    for (uint n = get_local_id(0); n < N; n += get_local_size(0)) {
        lc_kadd(&k, nll[n]);
        cnt += lc_ce_counted(lab[n], ignore, V) ? 1.0f : 0.0f;
    }
    const float total = lc_wg_sum(buf, k.s);
    const float counted = lc_wg_sum(buf, cnt);
    if (get_local_id(0) == 0) {
        const float D = denom > 0.0f ? denom : counted;
        LC_PTR(float, loss, losso)[0] = counted > 0.0f ? total / D : 0.0f;
    }
}

/* One work-group: coef[0] = dloss / D (0 when no row counts). */
kernel void ce_coef(global float *coef, global const float *dloss, const ulong dlo, global const int *labels,
                    const ulong lo, const uint N, const uint V, const int ignore, const float denom,
                    local float *buf) {
    global const int *lab = LC_CPTR(int, labels, lo);
    float cnt = 0.0f;
    for (uint n = get_local_id(0); n < N; n += get_local_size(0))
        cnt += lc_ce_counted(lab[n], ignore, V) ? 1.0f : 0.0f;
    const float counted = lc_wg_sum(buf, cnt);
    if (get_local_id(0) == 0) {
        const float D = denom > 0.0f ? denom : counted;
        coef[0] = counted > 0.0f ? LC_CPTR(float, dloss, dlo)[0] / D : 0.0f;
    }
}

/* One work-group per row: dlogits[:, n] (+)= coef * (softmax - onehot). */
kernel void ce_back_rows(global float *dx, const ulong dxo, global const float *x, const ulong xo,
                         global const int *labels, const ulong lo, global const float *lse,
                         const ulong lseo, const int has_lse, global const float *coefp, const uint V,
                         const int ignore, const int acc, local float *buf) {
    const ulong n = get_group_id(0);
    global const float *row = LC_CPTR(float, x, xo) + n * V;
    global float *drow = LC_PTR(float, dx, dxo) + n * V;
    const int y = LC_CPTR(int, labels, lo)[n];
    const float coef = coefp[0];
    if (!lc_ce_counted(y, ignore, V) || coef == 0.0f) {
        if (!acc)
            for (uint v = get_local_id(0); v < V; v += get_local_size(0)) drow[v] = 0.0f;
        return;
    }
    const float l = has_lse ? LC_CPTR(float, lse, lseo)[n] : lc_row_lse(row, V, buf);
    lc_ksum k = {0.0f, 0.0f};
    for (uint v = get_local_id(0); v < V; v += get_local_size(0)) lc_kadd(&k, exp(row[v] - l));
    const float sum = lc_wg_sum(buf, k.s);
    const float c = coef / sum;
    for (uint v = get_local_id(0); v < V; v += get_local_size(0)) {
        const float g = exp(row[v] - l) * c - ((int)v == y ? coef : 0.0f);
        drow[v] = acc ? drow[v] + g : g;
    }
}
