#version 450
// lorac — FILL (lorac/graph.h): y[i] = value for i < n (F32); 16-byte stores for the aligned
// middle of the range, single floats for the ends.
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 0) writeonly buffer Y4 { vec4 y4[]; };
layout(push_constant) uniform PC { uint off, n; float value; } pc;
void main() {
    uint stride = gl_NumWorkGroups.x * 256u;
    uint head = min((4u - (pc.off & 3u)) & 3u, pc.n);   // floats before the first aligned vec4
    uint body = (pc.n - head) / 4u;
    uint tail0 = head + body * 4u;
    uint g = gl_GlobalInvocationID.x;
    if (g < head) y[pc.off + g] = pc.value;
    if (g < pc.n - tail0) y[pc.off + tail0 + g] = pc.value;
    uint base4 = (pc.off + head) / 4u;
    for (uint i = g; i < body; i += stride) y4[base4 + i] = vec4(pc.value);
}
