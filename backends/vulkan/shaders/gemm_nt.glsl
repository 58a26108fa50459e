// lorac — register-blocked product kernel C = alpha · A · Bᵀ + beta · C (gemm_common.glsl) for
// CPU devices such as lavapipe: no shared memory (the caches do the tiling, barriers only cost).
// A workgroup is one row of WG invocations; every invocation computes TM rows x TN columns of C
// in registers. The TM rows are the same for the whole workgroup, so A loads are uniform
// (one load broadcast to all SIMD lanes); B rows differ per invocation. Operands are read as
// vec4 through uniform texel buffers (USE_TEXEL, R32G32B32A32_SFLOAT views) or storage buffers.
// Rows past M / N are clamped on load and skipped on store, so no padding is needed.
// TM and TN are multiples of 4 (k-major operands load 4 rows of A or columns of B per vec4).
// (Measured on lavapipe: sharing A rows across the subgroup with subgroupBroadcast instead of
// uniform loads was slower, 20 against 29 GFLOP/s per core.)
#include "gemm_common.glsl"

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 2) const uint TM = 16;
layout(constant_id = 3) const uint TN = 8;
layout(constant_id = 4) const uint A_KM = 0;
layout(constant_id = 5) const uint B_KM = 0;

#if USE_TEXEL
layout(binding = 0) uniform samplerBuffer A;
layout(binding = 1) uniform samplerBuffer B;
#define LOAD_A(i) texelFetch(A, int(i))
#define LOAD_B(i) texelFetch(B, int(i))
#else
layout(std430, binding = 0) readonly buffer BufA { vec4 a4[]; };
layout(std430, binding = 1) readonly buffer BufB { vec4 b4[]; };
#define LOAD_A(i) a4[i]
#define LOAD_B(i) b4[i]
#endif

void main() {
    uint n0 = gl_GlobalInvocationID.x * TN;
    uint m0 = gl_WorkGroupID.y * TM;
    if (n0 >= pc.N || m0 >= pc.M) return;
    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;
    // k-contiguous: one vec4 per row and step; k-major: the vec4s of a row of k (clamped to the
    // last vec4 holding a valid column; those columns are not stored)
    uint arow[TM];
    uint brow[TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        arow[i] = A_KM != 0u ? pc.a_off4 + min((m0 + i) / 4u, (pc.M - 1u) / 4u)
                             : pc.a_off4 + min(m0 + i, pc.M - 1u) * pc.lda4;
    [[unroll]] for (uint j = 0; j < TN; j++)
        brow[j] = B_KM != 0u ? pc.b_off4 + min((n0 + j) / 4u, (pc.N - 1u) / 4u)
                             : pc.b_off4 + min(n0 + j, pc.N - 1u) * pc.ldb4;
    for (uint k4 = 0; k4 < pc.K4; k4++) {
        vec4 a[TM];  // a[i][q]: A(m0 + i, 4 k4 + q)
        vec4 b[TN];
        if (A_KM != 0u) {
            [[unroll]] for (uint q = 0; q < 4u; q++) {
                uint kq = min(4u * k4 + q, pc.K - 1u);
                float keep = 4u * k4 + q < pc.K ? 1.0 : 0.0; // rows past K do not exist
                [[unroll]] for (uint i4 = 0; i4 < TM / 4u; i4++) {
                    vec4 v = LOAD_A(arow[4u * i4] + kq * pc.lda4) * keep;
                    a[4u * i4 + 0u][q] = v.x;
                    a[4u * i4 + 1u][q] = v.y;
                    a[4u * i4 + 2u][q] = v.z;
                    a[4u * i4 + 3u][q] = v.w;
                }
            }
        } else {
            [[unroll]] for (uint i = 0; i < TM; i++) a[i] = LOAD_A(arow[i] + k4);
        }
        if (B_KM != 0u) {
            [[unroll]] for (uint q = 0; q < 4u; q++) {
                uint kq = min(4u * k4 + q, pc.K - 1u);
                [[unroll]] for (uint j4 = 0; j4 < TN / 4u; j4++) {
                    vec4 v = LOAD_B(brow[4u * j4] + kq * pc.ldb4);
                    b[4u * j4 + 0u][q] = v.x;
                    b[4u * j4 + 1u][q] = v.y;
                    b[4u * j4 + 2u][q] = v.z;
                    b[4u * j4 + 3u][q] = v.w;
                }
            }
        } else {
            [[unroll]] for (uint j = 0; j < TN; j++) b[j] = LOAD_B(brow[j] + k4);
        }
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint j = 0; j < TN; j++)
                acc[i][j] = fma(a[i].w, b[j].w, fma(a[i].z, b[j].z, fma(a[i].y, b[j].y, fma(a[i].x, b[j].x, acc[i][j]))));
    }
    bool full4 = pc.c_vec4 != 0u && (TN & 3u) == 0u;
    [[unroll]] for (uint i = 0; i < TM; i++) {
        if (m0 + i >= pc.M) break;
        [[unroll]] for (uint j = 0; j < TN; j += 4u) {
            if (full4 && n0 + j + 3u < pc.N) {
                store_c4(m0 + i, n0 + j, vec4(acc[i][j], acc[i][j + 1u], acc[i][j + 2u], acc[i][j + 3u]));
            } else {
                [[unroll]] for (uint q = 0; q < 4u; q++)
                    if (j + q < TN && n0 + j + q < pc.N) store_c(m0 + i, n0 + j + q, acc[i][j + q]);
            }
        }
    }
}
