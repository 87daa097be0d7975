#version 450
/*
 * MATMUL (scalar path, every device): dst[p,q,i,j] = sum_k a[p,q,i,k] b[p',q',j,k] (a.b^T, b
 * broadcast over batch dims by zero strides), fp32 accumulation.
 * Classic shared-memory tiling: a BM x BN tile per workgroup, BK-deep slices of a and b staged in
 * shared memory (padded by one column against bank conflicts), each invocation owning TM x TN
 * outputs spread over the tile (row ty + i*BM/TM, column tx + j*BN/TN) so shared reads broadcast
 * and stores coalesce. The tile (BM x BN) is a specialization constant chosen per problem; a dispatch covers
 * batches [batch0, batch0 + gridZ), rows [m0, m_end) and columns [n0, n_end) — the host splits
 * operands larger than maxStorageBufferRange that way.
 */
#define DST_BINDING 6
#include "common.glsl"
layout(local_size_x_id = 10) in;
layout(constant_id = 11) const uint BM = 64;
layout(constant_id = 12) const uint BN = 64;
/* The per-invocation block and the slice depth are compile-time constants on purpose: with
 * specialization-constant trip counts the NVIDIA compiler kept the 64 accumulators in local
 * memory (2 TFLOP/s on an H100); constant loops keep them in registers. */
#define BK 16u
#define TM 8u
#define TN 8u
const uint NTX = BN / TN, NTY = BM / TM;

layout(binding = 0, std430) readonly buffer S0 { uint ab[]; };
layout(binding = 1, std430) readonly buffer S1 { uint bb[]; };
layout(push_constant) uniform PC {
    uint a_base, a_s0, a_s1, a_s2, a_s3;
    uint b_base, b_s0, b_s1, b_s2, b_s3;
    uint d_base;
    uint A1, M, N, K;
    uint batch0, m0, n0, m_end, n_end;
} pc;

shared float As[BK * (BM + 1u)];
shared float Bs[BK * (BN + 1u)];

void main() {
    uint l = gl_LocalInvocationID.x, WG = gl_WorkGroupSize.x;
    uint batch = pc.batch0 + gl_WorkGroupID.z, p = batch / pc.A1, q = batch % pc.A1;
    uint tile_m = pc.m0 + gl_WorkGroupID.y * BM, tile_n = pc.n0 + gl_WorkGroupID.x * BN;
    uint tx = l % NTX, ty = l / NTX;
    uint abase = pc.a_base + p * pc.a_s0 + q * pc.a_s1;
    uint bbase = pc.b_base + p * pc.b_s0 + q * pc.b_s1;

    float acc[TM * TN];
    [[unroll]] for (uint x = 0u; x < TM * TN; x++) acc[x] = 0.0;
    float ar[TM], br[TN];

    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        for (uint x = l; x < BM * BK; x += WG) {
            uint r = x / BK, kk = x % BK, row = tile_m + r, k = k0 + kk;
            As[kk * (BM + 1u) + r] = row < pc.m_end && k < pc.K ? LOADF(ab, S0_DT, abase + row * pc.a_s2 + k * pc.a_s3) : 0.0;
        }
        for (uint x = l; x < BN * BK; x += WG) {
            uint c = x / BK, kk = x % BK, col = tile_n + c, k = k0 + kk;
            Bs[kk * (BN + 1u) + c] = col < pc.n_end && k < pc.K ? LOADF(bb, S1_DT, bbase + col * pc.b_s2 + k * pc.b_s3) : 0.0;
        }
        barrier();
        for (uint kk = 0u; kk < BK; kk++) {
            [[unroll]] for (uint i = 0u; i < TM; i++) ar[i] = As[kk * (BM + 1u) + ty + i * NTY];
            [[unroll]] for (uint j = 0u; j < TN; j++) br[j] = Bs[kk * (BN + 1u) + tx + j * NTX];
            [[unroll]] for (uint i = 0u; i < TM; i++)
                [[unroll]] for (uint j = 0u; j < TN; j++) acc[i * TN + j] = fma(ar[i], br[j], acc[i * TN + j]);
        }
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < TM; i++) {
        uint row = tile_m + ty + i * NTY;
        if (row >= pc.m_end) continue;
        [[unroll]] for (uint j = 0u; j < TN; j++) {
            uint col = tile_n + tx + j * NTX;
            if (col < pc.n_end) D_STORE(pc.d_base + (batch * pc.M + row) * pc.N + col, acc[i * TN + j]);
        }
    }
}
