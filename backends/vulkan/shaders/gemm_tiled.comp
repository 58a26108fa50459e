#version 450
// lorac — shared-memory tiled product kernel C = alpha · A · Bᵀ + beta · C (gemm_common.glsl),
// the usual GPU arrangement: a workgroup of WX x WY invocations computes a BM x BN tile
// (BM = WY*TM, BN = WX*TN) of C, staging BK = 16 columns of k of A and B in shared memory per
// step; every invocation accumulates TM x TN outputs in registers. Tile sizes are specialisation
// constants chosen per device (vk_gemm.c); BM and BN are multiples of 4. Works with any subgroup
// size (no subgroup ops).
#include "gemm_common.glsl"

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 0) const uint WX = 16;
layout(constant_id = 1) const uint WY = 16;
layout(constant_id = 2) const uint TM = 4;
layout(constant_id = 3) const uint TN = 4;
layout(constant_id = 4) const uint A_KM = 0;  // A stored k-major ([K][M]), see gemm_common.glsl
layout(constant_id = 5) const uint B_KM = 0;
const uint BK = 16;
const uint BM = WY * TM;
const uint BN = WX * TN;

layout(std430, binding = 0) readonly buffer BufA { vec4 a4[]; };
layout(std430, binding = 1) readonly buffer BufB { vec4 b4[]; };

shared float As[BK][BM];
shared float Bs[BK][BN];

void main() {
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint tid = ty * WX + tx, nthreads = WX * WY;
    uint m_tile = gl_WorkGroupID.y * BM, n_tile = gl_WorkGroupID.x * BN;
    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;
    for (uint k4 = 0; k4 < pc.K4; k4 += BK / 4) {
        uint k0 = 4u * k4;
        if (A_KM != 0u) {
            for (uint e = tid; e < BK * (BM / 4u); e += nthreads) {
                uint kk = e / (BM / 4u), q = e - kk * (BM / 4u);
                vec4 v = vec4(0.0);
                if (k0 + kk < pc.K) v = a4[pc.a_off4 + (k0 + kk) * pc.lda4 + min(m_tile / 4u + q, (pc.M - 1u) / 4u)];
                As[kk][4u * q + 0u] = v.x;
                As[kk][4u * q + 1u] = v.y;
                As[kk][4u * q + 2u] = v.z;
                As[kk][4u * q + 3u] = v.w;
            }
        } else {
            for (uint e = tid; e < BM * (BK / 4u); e += nthreads) {
                uint r = e / (BK / 4u), q = e - r * (BK / 4u);
                vec4 v = vec4(0.0);
                if (k4 + q < pc.K4) v = a4[pc.a_off4 + min(m_tile + r, pc.M - 1u) * pc.lda4 + k4 + q];
                As[4u * q + 0u][r] = v.x;
                As[4u * q + 1u][r] = v.y;
                As[4u * q + 2u][r] = v.z;
                As[4u * q + 3u][r] = v.w;
            }
        }
        if (B_KM != 0u) {
            for (uint e = tid; e < BK * (BN / 4u); e += nthreads) {
                uint kk = e / (BN / 4u), q = e - kk * (BN / 4u);
                vec4 v = vec4(0.0);
                if (k0 + kk < pc.K) v = b4[pc.b_off4 + (k0 + kk) * pc.ldb4 + min(n_tile / 4u + q, (pc.N - 1u) / 4u)];
                Bs[kk][4u * q + 0u] = v.x;
                Bs[kk][4u * q + 1u] = v.y;
                Bs[kk][4u * q + 2u] = v.z;
                Bs[kk][4u * q + 3u] = v.w;
            }
        } else {
            for (uint e = tid; e < BN * (BK / 4u); e += nthreads) {
                uint r = e / (BK / 4u), q = e - r * (BK / 4u);
                vec4 v = vec4(0.0);
                if (k4 + q < pc.K4) v = b4[pc.b_off4 + min(n_tile + r, pc.N - 1u) * pc.ldb4 + k4 + q];
                Bs[4u * q + 0u][r] = v.x;
                Bs[4u * q + 1u][r] = v.y;
                Bs[4u * q + 2u][r] = v.z;
                Bs[4u * q + 3u][r] = v.w;
            }
        }
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; kk++) {
            float a[TM];
            float b[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) a[i] = As[kk][ty * TM + i];
            [[unroll]] for (uint j = 0; j < TN; j++) b[j] = Bs[kk][tx * TN + j];
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    [[unroll]] for (uint i = 0; i < TM; i++) {
        uint m = m_tile + ty * TM + i;
        if (m >= pc.M) break;
        [[unroll]] for (uint j = 0; j < TN; j++) {
            uint n = n_tile + tx * TN + j;
            if (n >= pc.N) break;
            store_c(m, n, acc[i][j]);
        }
    }
}
