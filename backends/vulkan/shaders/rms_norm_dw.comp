#version 450
// lorac — weight gradient of RMS_NORM_BACK: dw_k = sum over groups q of dy_qk x_qk r_q, with r_q
// from rms_norm.comp (write_r). Invocation (k, chunk) sums the groups of its chunk in order into
// part[chunk * g + k] (or, with one chunk, into dw itself with accum); sum_partials.comp adds the
// chunks in order. Fixed partition: bitwise reproducible.
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Dy { float dy[]; };
layout(std430, binding = 2) readonly buffer R { float rbuf[]; };
layout(std430, binding = 3) buffer Out { float outv[]; };
layout(push_constant) uniform PC { uint x_off, dy_off, r_off, out_off, g, n_groups, per_chunk, accum; } pc;
void main() {
    uint k = gl_GlobalInvocationID.x;
    if (k >= pc.g) return;
    uint chunk = gl_WorkGroupID.y;
    uint q0 = chunk * pc.per_chunk, q1 = min(q0 + pc.per_chunk, pc.n_groups);
    precise float s = 0.0, comp = 0.0; // Kahan summation
    for (uint q = q0; q < q1; q++) {
        uint e = q * pc.g + k;
        precise float t = dy[pc.dy_off + e] * x[pc.x_off + e] * rbuf[pc.r_off + q];
        precise float yk = t - comp;
        precise float tk = s + yk;
        comp = (tk - s) - yk;
        s = tk;
    }
    uint o = pc.out_off + chunk * pc.g + k;
    outv[o] = pc.accum != 0u ? outv[o] + s : s;
}
