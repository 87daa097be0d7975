#version 450
/*
 * MATMUL on matrix units (GL_NV_cooperative_matrix; f16 operands, fp32 accumulation), for devices
 * that report an f16 x f16 -> f32 subgroup-scope shape (TM x TN x TK, specialization constants).
 * Same definition and push constants as matmul.comp: dst = a.b^T, b broadcast over batch dims.
 * A workgroup computes a BM x BN tile with (BM/WM) x (BN/WN) subgroups, each owning a WM x WN
 * block of accumulators. BK-deep slices of a (row-major [m][k]) and b ([n][k], i.e. b^T read
 * column-major) go through shared memory; the next slice is fetched into registers while the
 * current one is multiplied. Slices are moved 8 halves (one uvec4) at a time when the host found
 * the operand contiguous along k and 16-byte aligned (VEC8), element by element otherwise. The
 * epilogue stages each accumulator tile in shared memory so edges, the destination dtype and the
 * rounding are handled by ordinary stores.
 * bf16 operands are converted to f16 on the way into shared memory: exact for |x| in
 * [2^-14, 65504] (f16 has more significand bits than bf16); smaller values keep fewer bits (f16
 * subnormals, zero below 2^-25); finite values beyond 65504 saturate to +-65504 (inf and NaN stay).
 */
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#define DST_BINDING 6
#include "common.glsl"
layout(local_size_x_id = 10) in;
layout(constant_id = 11) const uint BM = 128;
layout(constant_id = 12) const uint BN = 128;
layout(constant_id = 13) const uint BK = 32;
layout(constant_id = 14) const uint WM = 64;
layout(constant_id = 15) const uint WN = 32;
layout(constant_id = 16) const uint TM = 16;
layout(constant_id = 17) const uint TN = 16;
layout(constant_id = 18) const uint TK = 16;
layout(constant_id = 19) const uint A_VEC8 = 0;
layout(constant_id = 20) const uint B_VEC8 = 0;
const uint BKP = BK + 8u;          /* padded row of a shared slice */
const uint NWN = BN / WN;          /* subgroups along n */
const uint FM = WM / TM, FN = WN / TN;
const uint CHUNKS_A = BM * BK / 8u, CHUNKS_B = BN * BK / 8u;

layout(binding = 0, std430) readonly buffer S0 { uint ab[]; };
layout(binding = 0, std430) readonly buffer S0v { uvec4 ab4[]; };
layout(binding = 1, std430) readonly buffer S1 { uint bb[]; };
layout(binding = 1, std430) readonly buffer S1v { uvec4 bb4[]; };
layout(push_constant) uniform PC {
    uint a_base, a_s0, a_s1, a_s2, a_s3;
    uint b_base, b_s0, b_s1, b_s2, b_s3;
    uint d_base;
    uint A1, M, N, K;
    uint batch0, m0, n0, m_end, n_end;
} pc;

shared float16_t As[BM * BKP];
shared float16_t Bs[BN * BKP];
shared float Cs[(BM / WM) * (BN / WN) * TM * TN];

/* two values as an f16 pair, finite values beyond the f16 range saturated */
uint pack_sat(vec2 f) {
    vec2 a = abs(f);
    bvec2 big = bvec2(a.x > 65504.0 && a.x <= 3.4028235e38, a.y > 65504.0 && a.y <= 3.4028235e38);
    f = mix(f, sign(f) * 65504.0, big);
    return packFloat2x16(f16vec2(f));
}

/* 8 bf16 (raw words) -> 8 f16 */
uvec4 bf16x8_to_f16(uvec4 w) {
    uvec4 o;
    [[unroll]] for (uint x = 0u; x < 4u; x++)
        o[x] = pack_sat(vec2(uintBitsToFloat(w[x] << 16), uintBitsToFloat(w[x] & 0xffff0000u)));
    return o;
}

/* 8 consecutive k of one row of an operand, packed as 4 words of f16 pairs */
uvec4 fetch8(bool isA, uint base, uint row, uint row_end, uint k, uint s2, uint s3) {
    if (row >= row_end) return uvec4(0u);
    uint e = base + row * s2 + k * s3;
    if (k + 8u <= pc.K && (isA ? A_VEC8 : B_VEC8) != 0u) {
        uvec4 w = isA ? ab4[e >> 3] : bb4[e >> 3];
        return (isA ? S0_DT : S1_DT) == DT_BF16 ? bf16x8_to_f16(w) : w;
    }
    float v[8];
    [[unroll]] for (uint x = 0u; x < 8u; x++) {
        v[x] = 0.0;
        if (k + x < pc.K) v[x] = isA ? LOADF(ab, S0_DT, e + x * s3) : LOADF(bb, S1_DT, e + x * s3);
    }
    return uvec4(pack_sat(vec2(v[0], v[1])), pack_sat(vec2(v[2], v[3])), pack_sat(vec2(v[4], v[5])),
                 pack_sat(vec2(v[6], v[7])));
}

void put8(bool isA, uint idx, uvec4 w) {
    [[unroll]] for (uint x = 0u; x < 4u; x++) {
        f16vec2 h = unpackFloat2x16(w[x]);
        if (isA) { As[idx + 2u * x] = h.x; As[idx + 2u * x + 1u] = h.y; }
        else { Bs[idx + 2u * x] = h.x; Bs[idx + 2u * x + 1u] = h.y; }
    }
}

void main() {
    uint l = gl_LocalInvocationID.x, WG = gl_WorkGroupSize.x;
    uint batch = pc.batch0 + gl_WorkGroupID.z, p = batch / pc.A1, q = batch % pc.A1;
    uint tile_m = pc.m0 + gl_WorkGroupID.y * BM, tile_n = pc.n0 + gl_WorkGroupID.x * BN;
    uint abase = pc.a_base + p * pc.a_s0 + q * pc.a_s1;
    uint bbase = pc.b_base + p * pc.b_s0 + q * pc.b_s1;
    uint sg = gl_SubgroupID, wm = sg / NWN, wn = sg % NWN;

    fcoopmatNV<32, gl_ScopeSubgroup, TM, TN> acc[FM * FN];
    [[unroll]] for (uint x = 0u; x < FM * FN; x++) acc[x] = fcoopmatNV<32, gl_ScopeSubgroup, TM, TN>(0.0);

    /* chunk c of a slice: row c / (BK/8), k offset (c % (BK/8)) * 8; the host keeps
     * CHUNKS_A and CHUNKS_B <= 4 * WG so four register slots hold a slice */
    uvec4 ra[4], rb[4];
    [[unroll]] for (uint x = 0u; x < 4u; x++) {
        uint c = l + x * WG;
        ra[x] = c < CHUNKS_A ? fetch8(true, abase, tile_m + c / (BK / 8u), pc.m_end, (c % (BK / 8u)) * 8u, pc.a_s2, pc.a_s3) : uvec4(0u);
        rb[x] = c < CHUNKS_B ? fetch8(false, bbase, tile_n + c / (BK / 8u), pc.n_end, (c % (BK / 8u)) * 8u, pc.b_s2, pc.b_s3) : uvec4(0u);
    }
    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        barrier();
        [[unroll]] for (uint x = 0u; x < 4u; x++) {
            uint c = l + x * WG;
            if (c < CHUNKS_A) put8(true, (c / (BK / 8u)) * BKP + (c % (BK / 8u)) * 8u, ra[x]);
            if (c < CHUNKS_B) put8(false, (c / (BK / 8u)) * BKP + (c % (BK / 8u)) * 8u, rb[x]);
        }
        barrier();
        uint kn = k0 + BK;
        if (kn < pc.K) {
            [[unroll]] for (uint x = 0u; x < 4u; x++) {
                uint c = l + x * WG;
                ra[x] = c < CHUNKS_A ? fetch8(true, abase, tile_m + c / (BK / 8u), pc.m_end, kn + (c % (BK / 8u)) * 8u, pc.a_s2, pc.a_s3) : uvec4(0u);
                rb[x] = c < CHUNKS_B ? fetch8(false, bbase, tile_n + c / (BK / 8u), pc.n_end, kn + (c % (BK / 8u)) * 8u, pc.b_s2, pc.b_s3) : uvec4(0u);
            }
        }
        [[unroll]] for (uint kk = 0u; kk < BK; kk += TK) {
            fcoopmatNV<16, gl_ScopeSubgroup, TM, TK> af[FM];
            fcoopmatNV<16, gl_ScopeSubgroup, TK, TN> bf[FN];
            [[unroll]] for (uint i = 0u; i < FM; i++)
                coopMatLoadNV(af[i], As, (wm * WM + i * TM) * BKP + kk, BKP, false);
            [[unroll]] for (uint j = 0u; j < FN; j++)
                coopMatLoadNV(bf[j], Bs, (wn * WN + j * TN) * BKP + kk, BKP, true);
            [[unroll]] for (uint i = 0u; i < FM; i++)
                [[unroll]] for (uint j = 0u; j < FN; j++)
                    acc[i * FN + j] = coopMatMulAddNV(af[i], bf[j], acc[i * FN + j]);
        }
    }

    uint cbase = sg * TM * TN;
    [[unroll]] for (uint i = 0u; i < FM; i++) {
        [[unroll]] for (uint j = 0u; j < FN; j++) {
            coopMatStoreNV(acc[i * FN + j], Cs, cbase, TN, false);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            uint r0 = tile_m + wm * WM + i * TM, c0 = tile_n + wn * WN + j * TN;
            for (uint e = gl_SubgroupInvocationID; e < TM * TN; e += gl_SubgroupSize) {
                uint row = r0 + e / TN, col = c0 + e % TN;
                if (row < pc.m_end && col < pc.n_end)
                    D_STORE(pc.d_base + (batch * pc.M + row) * pc.N + col, Cs[cbase + e]);
            }
            subgroupBarrier();
        }
    }
}
