#version 450
// lorac — GET_ROWS (lorac/graph.h): y[:, n] = table[:, ids[n]] for a table [E, V] of any weight
// dtype (dequantised, reference/formats.md §2). An id outside [0, V) gives a zero row and sets
// bit 1 of the device's error flags (reported by synchronize as LC_ERR_INVALID_ARG). A table
// larger than one binding is bound in chunks of rows [v0, v1): each dispatch writes the rows
// whose ids fall in its chunk (tab_off addresses row v0); the first one also handles bad ids.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Tab { uint tab_words[]; };
layout(std430, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 3) buffer Flags { uint flags[]; };
#define DQ_WORDS tab_words
#include "dequant.glsl"
layout(push_constant) uniform PC {
    uint tab_off;    // bytes
    uint dtype;
    uint row_bytes;
    uint E, V, N;
    uint ids_off, y_off;
    uint v0, v1, first;
} pc;
void main() {
    uint total = pc.E * pc.N;
    for (uint e = gl_GlobalInvocationID.x; e < total; e += gl_NumWorkGroups.x * 256u) {
        uint n = e / pc.E, i = e - n * pc.E;
        int id = ids[pc.ids_off + n];
        if (id < 0 || uint(id) >= pc.V) {
            if (pc.first != 0u) {
                if (i == 0u) atomicOr(flags[0], 1u);
                y[pc.y_off + e] = 0.0;
            }
        } else if (uint(id) >= pc.v0 && uint(id) < pc.v1) {
            y[pc.y_off + e] = dq_elem(pc.dtype, pc.tab_off + (uint(id) - pc.v0) * pc.row_bytes, i);
        }
    }
}
