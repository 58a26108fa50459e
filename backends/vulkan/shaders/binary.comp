#version 450
// lorac — ADD / MUL with broadcast by repetition (lorac/graph.h) and the da part of ADD_BACK /
// MUL_BACK. a, y: [n0, n1]; b: [m0, m1] with n0 % m0 == 0 and n1 % m1 == 0, read at
// (i % m0, j % m1). MODE 0: y = a + b; 1: y = a * b; 2: y (+)= a (a = dy); 3: y (+)= a * b.
// 2-D grid-stride over (i, j): no integer division per element (CPU devices such as lavapipe
// scalarise it), and the modulo only where b is really repeated along that dimension. With
// VEC4 = 1 (host-checked: n0 % 4 == 0, every offset a multiple of 4 floats, b not repeated
// along i) each invocation moves 4 consecutive elements: one 16-byte access instead of four
// (about 4x faster on lavapipe, whose storage-buffer accesses are per-lane gathers).
layout(local_size_x = 64, local_size_y = 4) in;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 0) readonly buffer A4 { vec4 a4[]; };
layout(std430, binding = 1) readonly buffer B4 { vec4 b4[]; };
layout(std430, binding = 2) buffer Y4 { vec4 y4[]; };
layout(push_constant) uniform PC { uint a_off, b_off, y_off, n0, n1, m0, m1; } pc;
// mode, accumulation and the vec4 path are specialisation constants: each combination is its own
// pipeline with the other branches compiled out.
layout(constant_id = 0) const uint MODE = 0;
layout(constant_id = 1) const uint ACCUM = 0;
layout(constant_id = 2) const uint VEC4 = 0;

void main() {
    uint sx = gl_NumWorkGroups.x * 64u, sy = gl_NumWorkGroups.y * 4u;
    if (VEC4 != 0u && pc.m1 == pc.n1) { // no broadcast: one flat loop
        uint n4 = pc.n0 / 4u * pc.n1;
        uint st = sx * sy;
        for (uint e = gl_GlobalInvocationID.y * sx + gl_GlobalInvocationID.x; e < n4; e += st) {
            vec4 av = a4[pc.a_off / 4u + e];
            vec4 v;
            if (MODE == 2u) {
                v = av;
            } else {
                vec4 bv = b4[pc.b_off / 4u + e];
                precise vec4 r = MODE == 0u ? av + bv : av * bv;
                v = r;
            }
            if (ACCUM != 0u) {
                precise vec4 s = y4[pc.y_off / 4u + e] + v;
                v = s;
            }
            y4[pc.y_off / 4u + e] = v;
        }
        return;
    }
    if (VEC4 != 0u) {
        uint n04 = pc.n0 / 4u;
        for (uint j = gl_GlobalInvocationID.y; j < pc.n1; j += sy) {
            uint jb = pc.m1 == pc.n1 ? j : pc.m1 == 1u ? 0u : j % pc.m1;
            for (uint i = gl_GlobalInvocationID.x; i < n04; i += sx) {
                uint e = j * n04 + i;
                vec4 av = a4[pc.a_off / 4u + e];
                vec4 v;
                if (MODE == 2u) {
                    v = av;
                } else {
                    vec4 bv = b4[pc.b_off / 4u + jb * n04 + i];
                    precise vec4 r = MODE == 0u ? av + bv : av * bv;
                    v = r;
                }
                if (ACCUM != 0u) {
                    precise vec4 s = y4[pc.y_off / 4u + e] + v;
                    v = s;
                }
                y4[pc.y_off / 4u + e] = v;
            }
        }
        return;
    }
    for (uint j = gl_GlobalInvocationID.y; j < pc.n1; j += sy) {
        uint jb = pc.m1 == pc.n1 ? j : pc.m1 == 1u ? 0u : j % pc.m1;
        for (uint i = gl_GlobalInvocationID.x; i < pc.n0; i += sx) {
            uint e = j * pc.n0 + i;
            float av = a[pc.a_off + e];
            float v;
            if (MODE == 2u) {
                v = av;
            } else {
                uint ib = pc.m0 == pc.n0 ? i : pc.m0 == 1u ? 0u : i % pc.m0;
                float bv = b[pc.b_off + jb * pc.m0 + ib];
                precise float r = MODE == 0u ? av + bv : av * bv;
                v = r;
            }
            if (ACCUM != 0u) {
                precise float s = y[pc.y_off + e] + v;
                v = s;
            }
            y[pc.y_off + e] = v;
        }
    }
}
