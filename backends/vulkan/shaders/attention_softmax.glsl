// lorac — the row-wise parts of ATTENTION (lorac/graph.h) between the products, for one block of
// nb query rows [i0, i0+nb) of one (sequence, head) against keys [ja, ja+nk): the scores
// sc[r][j] = scale * q·k were written by the product kernel. Query i sits at position
// Tk - Tq + i; key j is visible when (!causal || j <= pos) && (window == 0 || pos - j < window).
// One workgroup per row (grid-stride), fixed-tree reductions, at most ~nk/256 loop iterations per
// invocation (llvmpipe ends any shader invocation after 65535 loop iterations in total).
#ifndef LORAC_ATTENTION_SOFTMAX_GLSL
#define LORAC_ATTENTION_SOFTMAX_GLSL

layout(local_size_x = 256) in;

layout(push_constant) uniform PC {
    uint sc_off, ds_off, lse_off, do_off, o_off;
    uint nb, nk, ja, i0, Tq, Tk, causal, window;
    uint lse_row0;   // lse index of row i0 of this (sequence, head): (s*Tq + i0) * n_head + h
    uint n_head;     // lse stride between rows
    uint ld_o;       // floats between rows of O / dO
    uint hd, need_ds;
} pc;

shared float red[256];

float wg_reduce(float v, bool is_max) {
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    [[unroll]] for (uint s = 128u; s > 0u; s >>= 1) {
        if (t < s) red[t] = is_max ? max(red[t], red[t + s]) : red[t] + red[t + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

// Visible keys of block row r, relative to ja: [lo, hi] (empty when lo > hi).
void visible(uint r, out int lo, out int hi) {
    int p = int(pc.Tk) - int(pc.Tq) + int(pc.i0 + r);
    int h = pc.causal != 0u ? min(p, int(pc.Tk) - 1) : int(pc.Tk) - 1;
    int l = pc.window > 0u ? max(p - int(pc.window) + 1, 0) : 0;
    lo = max(l, int(pc.ja)) - int(pc.ja);
    hi = min(h, int(pc.ja + pc.nk) - 1) - int(pc.ja);
}

#endif
