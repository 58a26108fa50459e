#version 450
// lorac — gradient of a broadcast operand b [m0, m1] of ADD / MUL (db part of ADD_BACK /
// MUL_BACK): db[ib, jb] = sum over the repeats of dy[i, j] (* a[i, j] when use_a), repeats
// (i0, r) at i = i0*m0 + ib, j = r*m1 + jb, enumerated as q = r * (n0/m0) + i0. Invocation
// (element, chunk) sums q in [chunk*per_chunk, ...) in order into part[chunk * m0*m1 + element];
// sum_partials.comp adds the chunks in order (or, with one chunk, this kernel writes db itself,
// honouring accum). Fixed partition: bitwise reproducible.
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Dy { float dy[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) buffer Out { float outv[]; };
layout(push_constant) uniform PC {
    uint dy_off, a_off, out_off;
    uint n0, n1, m0, m1;
    uint per_chunk, use_a, accum;
} pc;
void main() {
    uint mb = pc.m0 * pc.m1;
    uint el = gl_GlobalInvocationID.x;
    if (el >= mb) return;
    uint chunk = gl_WorkGroupID.y;
    uint jb = el / pc.m0, ib = el - jb * pc.m0;
    uint reps0 = pc.n0 / pc.m0, reps = reps0 * (pc.n1 / pc.m1);
    uint q0 = chunk * pc.per_chunk, q1 = min(q0 + pc.per_chunk, reps);
    precise float s = 0.0, comp = 0.0; // Kahan: the repeats may cancel (random-sign gradients)
    for (uint q = q0; q < q1; q++) {
        uint r = q / reps0, i0 = q - r * reps0;
        uint e = (r * pc.m1 + jb) * pc.n0 + i0 * pc.m0 + ib;
        precise float t = pc.use_a != 0u ? dy[pc.dy_off + e] * a[pc.a_off + e] : dy[pc.dy_off + e];
        precise float yk = t - comp;
        precise float tk = s + yk;
        comp = (tk - s) - yk;
        s = tk;
    }
    uint o = pc.out_off + chunk * mb + el;
    outv[o] = pc.accum != 0u ? outv[o] + s : s;
}
