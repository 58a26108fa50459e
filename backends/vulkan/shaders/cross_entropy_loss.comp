#version 450
// lorac — CROSS_ENTROPY total and CROSS_ENTROPY_BACK coefficient (lorac/graph.h), one workgroup:
// counted = number of rows with label != ignore_index and 0 <= label < V; D = fp0 when fp0 > 0,
// else counted. mode 0: out = counted > 0 ? (sum_n nll[n]) / D : 0 (nll summed with a fixed
// tree); mode 1: out = counted > 0 ? dloss / D : 0 (dloss = nll[0] here).
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Nll { float nll[]; };
layout(std430, binding = 1) readonly buffer Lab { int labels[]; };
layout(std430, binding = 2) writeonly buffer Out { float outv[]; };
layout(push_constant) uniform PC { uint nll_off, lab_off, out_off, V, N, mode; int ignore_index; float fp0; } pc;
shared float red[256];
shared uint cnt[256];
void main() {
    uint t = gl_LocalInvocationID.x;
    float s = 0.0;
    uint c = 0u;
    for (uint n = t; n < pc.N; n += 256u) {
        int y = labels[pc.lab_off + n];
        if (y != pc.ignore_index && y >= 0 && uint(y) < pc.V) c++;
        if (pc.mode == 0u) s += nll[pc.nll_off + n];
    }
    red[t] = s;
    cnt[t] = c;
    barrier();
    for (uint w = 128u; w > 0u; w >>= 1) {
        if (t < w) {
            red[t] += red[t + w];
            cnt[t] += cnt[t + w];
        }
        barrier();
    }
    if (t == 0u) {
        float D = pc.fp0 > 0.0 ? pc.fp0 : float(cnt[0]);
        float num = pc.mode == 0u ? red[0] : nll[pc.nll_off];
        outv[pc.out_off] = cnt[0] > 0u ? num / D : 0.0;
    }
}
