#version 450
// lorac — GET_ROWS_BACK (lorac/graph.h backward layout): dtable[:, ids[n]] += dy[:, n] for every
// n in order (repeated ids add up). Invocation (i, chunk) owns column i of the table rows
// [chunk * rows_per_chunk, ...) and walks all n in index order, so no two invocations touch the
// same element and the order of additions is fixed (bitwise reproducible). Out-of-range ids set
// bit 2 of the error flags.
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Ids { int ids[]; };
layout(std430, binding = 1) readonly buffer Dy { float dy[]; };
layout(std430, binding = 2) buffer Dt { float dt[]; };
layout(std430, binding = 3) buffer Flags { uint flags[]; };
layout(push_constant) uniform PC {
    uint E, V, N;
    uint ids_off, dy_off, dt_off;
    uint rows_per_chunk;
    uint n_begin, n_end; // ids handled by this dispatch (bounded loops, see vk_internal.h loop_cap)
} pc;
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= pc.E) return;
    uint v0 = gl_WorkGroupID.y * pc.rows_per_chunk;
    uint v1 = min(v0 + pc.rows_per_chunk, pc.V);
    for (uint n = pc.n_begin; n < pc.n_end; n++) {
        int id = ids[pc.ids_off + n];
        if (id < 0 || uint(id) >= pc.V) {
            if (i == 0u && gl_WorkGroupID.y == 0u) atomicOr(flags[0], 2u);
            continue;
        }
        uint v = uint(id);
        if (v < v0 || v >= v1) continue;
        dt[pc.dt_off + v * pc.E + i] += dy[pc.dy_off + n * pc.E + i];
    }
}
