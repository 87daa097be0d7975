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
 * The registers hold the operands' raw 16-bit words (f16 or bf16) while the current slice is
 * multiplied; bf16 is converted to f16 only when the slice is stored to shared memory, so nothing
 * waits for the global loads before the products (converting right after the load made every
 * slice wait for its loads). The conversion (bf16_to_f16.glsl): exact for |x| in [2^-14, 65504];
 * smaller values keep fewer bits (f16 subnormals, zero below 2^-25); finite values beyond 65504
 * saturate to +-65504 (inf and NaN stay). Each operand has its own storage dtype (S0_DT for a,
 * S1_DT for b): a constant bf16 weight arrives as its f16 shadow (bf16_shadow.comp, the same
 * conversion done once; backends/vulkan/vk_shadow.c), so b is then moved without converting
 * while a is still converted here.
 *
 * CM_EMULATE (the matmul_coopmat.emu* variants; SISA_VK_COOPMAT=emulate): the same kernel with the
 * matrix-unit operations replaced by plain shared-memory arithmetic, so implementations without
 * cooperative matrices (lavapipe, CI) run every line of the tiling, the register prefetch, the
 * conversion and the epilogue. A "subgroup" is then 32 consecutive invocations (the host plans
 * with 32), TM = TN = TK = 16; an A/B fragment is its offset in shared memory (the slice does not
 * change between the load and the product: barriers), the product reads As/Bs as fp32 (f16 x f16
 * products are exact there) and sums over k in order; accumulator element idx = r*TN + c lives in
 * lane idx % 32, slot idx / 32.
 *
 * The shared slices are uvec4 arrays (8 halves each): a staged chunk is one 128-bit store, and
 * the matrix units load from them with offsets and strides in uvec4 units (BK and the padding are
 * multiples of 8). As float16_t arrays (SH16 = 1, SISA_VK_SHARED16: the kernel before, kept to
 * time old against new) every chunk was 8 16-bit stores; per slice that was more shared-memory
 * wavefronts than the fragment loads of the products, on a shared memory that moves one 128-byte
 * wavefront per clock per SM.
 */
#ifndef CM_EMULATE
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define DST_BINDING 6
#include "common.glsl"
#include "bf16_to_f16.glsl" /* spec constant 23: CVT_FLOAT */
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
layout(constant_id = 21) const uint STAGES = 1; /* shared slices: 1 (two barriers per slice) or 2 (one) */
layout(constant_id = 22) const uint SH16 = 0;   /* 1: float16_t slices, 16-bit stores (as before) */
const uint BKP = BK + 8u;          /* padded row of a shared slice */
const uint NWN = BN / WN;          /* subgroups along n */
const uint FM = WM / TM, FN = WN / TN;
const uint CHUNKS_A = BM * BK / 8u, CHUNKS_B = BN * BK / 8u;
const uint WGS = gl_WorkGroupSize.x;
/* register slots per invocation for one slice of a / of b (chunk c = l + x * WGS); the arrays
 * have the compile-time size MAXS (loops over them unroll in glslc, so every index is a
 * constant and they stay in registers) and the host keeps SLOTS_A, SLOTS_B <= MAXS */
const uint SLOTS_A = (CHUNKS_A + WGS - 1u) / WGS, SLOTS_B = (CHUNKS_B + WGS - 1u) / WGS;
#define MAXS 8u
uvec4 ra[MAXS], rb[MAXS];

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

shared float16_t As[SH16 != 0u ? STAGES * BM * BKP : 8u];
shared float16_t Bs[SH16 != 0u ? STAGES * BN * BKP : 8u];
shared uvec4 As4[SH16 != 0u ? 1u : STAGES * BM * BKP / 8u];
shared uvec4 Bs4[SH16 != 0u ? 1u : STAGES * BN * BKP / 8u];
shared float Cs[(BM / WM) * (BN / WN) * TM * TN];

#ifdef CM_EMULATE
#define CM_SG 32u
#define CM_SGID (gl_LocalInvocationID.x / CM_SG)
#define CM_LANE (gl_LocalInvocationID.x % CM_SG)
struct cm_acc { float v[8]; }; /* TM * TN / CM_SG */
#define CM_ACC cm_acc
#define CM_FRAG_A uint
#define CM_FRAG_B uint
cm_acc cm_zero() {
    cm_acc c;
    [[unroll]] for (uint e = 0u; e < 8u; e++) c.v[e] = 0.0;
    return c;
}
#define CM_LOAD_A(f, off) f = (off)
#define CM_LOAD_B(f, off) f = (off)
/* half x of a slice */
float sh_a(uint x) {
    if (SH16 != 0u) return float(As[x]);
    uint w = As4[x >> 3][(x >> 1) & 3u];
    return unpackHalf2x16((x & 1u) != 0u ? w >> 16 : w).x;
}
float sh_b(uint x) {
    if (SH16 != 0u) return float(Bs[x]);
    uint w = Bs4[x >> 3][(x >> 1) & 3u];
    return unpackHalf2x16((x & 1u) != 0u ? w >> 16 : w).x;
}
cm_acc cm_mma(uint ao, uint bo, cm_acc c) {
    [[unroll]] for (uint e = 0u; e < 8u; e++) {
        uint idx = CM_LANE + e * CM_SG, r = idx / TN, col = idx % TN;
        float s = c.v[e];
        for (uint k = 0u; k < TK; k++) s += sh_a(ao + r * BKP + k) * sh_b(bo + col * BKP + k);
        c.v[e] = s;
    }
    return c;
}
void cm_store(cm_acc c, uint base) {
    [[unroll]] for (uint e = 0u; e < 8u; e++) Cs[base + CM_LANE + e * CM_SG] = c.v[e];
}
#define CM_SYNC() memoryBarrierShared(); barrier()
#else
#define CM_SG gl_SubgroupSize
#define CM_SGID gl_SubgroupID
#define CM_LANE gl_SubgroupInvocationID
#define CM_ACC fcoopmatNV<32, gl_ScopeSubgroup, TM, TN>
#define CM_FRAG_A fcoopmatNV<16, gl_ScopeSubgroup, TM, TK>
#define CM_FRAG_B fcoopmatNV<16, gl_ScopeSubgroup, TK, TN>
#define cm_zero() CM_ACC(0.0)
/* offsets and strides in halves; the uvec4 slices take them in units of 8 halves */
#define CM_LOAD_A(f, off) { if (SH16 != 0u) coopMatLoadNV(f, As, off, BKP, false); else coopMatLoadNV(f, As4, (off) / 8u, BKP / 8u, false); }
#define CM_LOAD_B(f, off) { if (SH16 != 0u) coopMatLoadNV(f, Bs, off, BKP, true); else coopMatLoadNV(f, Bs4, (off) / 8u, BKP / 8u, true); }
#define cm_mma(a, b, c) coopMatMulAddNV(a, b, c)
#define cm_store(c, base) coopMatStoreNV(c, Cs, base, TN, false)
#define CM_SYNC() subgroupMemoryBarrierShared(); subgroupBarrier()
#endif

/* the raw 16-bit word of element e (relative to the binding) */
uint raw16(bool isA, uint e) {
    uint w = isA ? ab[e >> 1] : bb[e >> 1];
    return (e & 1u) != 0u ? (w >> 16) : (w & 0xffffu);
}

/* 8 consecutive k of one row of an operand as 4 words of raw 16-bit pairs (the operand's dtype);
 * zero beyond the row end and beyond K */
uvec4 fetch8(bool isA, uint base, uint row, uint row_end, uint k, uint s2, uint s3) {
    if (row >= row_end) return uvec4(0u);
    uint e = base + row * s2 + k * s3;
    if (k + 8u <= pc.K && (isA ? A_VEC8 : B_VEC8) != 0u) return isA ? ab4[e >> 3] : bb4[e >> 3];
    uint h[8];
    [[unroll]] for (uint x = 0u; x < 8u; x++) h[x] = k + x < pc.K ? raw16(isA, e + x * s3) : 0u;
    return uvec4(h[0] | (h[1] << 16), h[2] | (h[3] << 16), h[4] | (h[5] << 16), h[6] | (h[7] << 16));
}

/* raw words -> f16 (bf16 converted here, after the products that overlapped the loads) -> shared
 * at half offset idx (a multiple of 8) */
void put8(bool isA, uint idx, uvec4 w) {
    if ((isA ? S0_DT : S1_DT) == DT_BF16) w = bf16x8_to_f16(w);
    if (SH16 == 0u) {
        if (isA) As4[idx >> 3] = w;
        else Bs4[idx >> 3] = w;
        return;
    }
    [[unroll]] for (uint x = 0u; x < 4u; x++) {
        f16vec2 h = unpackFloat2x16(w[x]);
        if (isA) { As[idx + 2u * x] = h.x; As[idx + 2u * x + 1u] = h.y; }
        else { Bs[idx + 2u * x] = h.x; Bs[idx + 2u * x + 1u] = h.y; }
    }
}

/* chunk c of a slice: row c / (BK/8), k offset (c % (BK/8)) * 8; invocation l holds chunks
 * l + x * WGS. The slice at k0 (nothing at or beyond K) into registers: */
void fetch_slices(uint k0, uint l, uint abase, uint bbase, uint tile_m, uint tile_n) {
    [[unroll]] for (uint x = 0u; x < MAXS; x++) {
        uint c = l + x * WGS;
        if (x < SLOTS_A && k0 < pc.K) ra[x] = c < CHUNKS_A ? fetch8(true, abase, tile_m + c / (BK / 8u), pc.m_end, k0 + (c % (BK / 8u)) * 8u, pc.a_s2, pc.a_s3) : uvec4(0u);
    }
    [[unroll]] for (uint x = 0u; x < MAXS; x++) {
        uint c = l + x * WGS;
        if (x < SLOTS_B && k0 < pc.K) rb[x] = c < CHUNKS_B ? fetch8(false, bbase, tile_n + c / (BK / 8u), pc.n_end, k0 + (c % (BK / 8u)) * 8u, pc.b_s2, pc.b_s3) : uvec4(0u);
    }
}

/* the registers into shared stage st */
void put_slices(uint st, uint l) {
    [[unroll]] for (uint x = 0u; x < MAXS; x++) {
        uint c = l + x * WGS;
        if (x < SLOTS_A && c < CHUNKS_A) put8(true, st * BM * BKP + (c / (BK / 8u)) * BKP + (c % (BK / 8u)) * 8u, ra[x]);
    }
    [[unroll]] for (uint x = 0u; x < MAXS; x++) {
        uint c = l + x * WGS;
        if (x < SLOTS_B && c < CHUNKS_B) put8(false, st * BN * BKP + (c / (BK / 8u)) * BKP + (c % (BK / 8u)) * 8u, rb[x]);
    }
}

void main() {
    uint l = gl_LocalInvocationID.x;
    uint batch = pc.batch0 + gl_WorkGroupID.z, p = batch / pc.A1, q = batch % pc.A1;
    uint tile_m = pc.m0 + gl_WorkGroupID.y * BM, tile_n = pc.n0 + gl_WorkGroupID.x * BN;
    uint abase = pc.a_base + p * pc.a_s0 + q * pc.a_s1;
    uint bbase = pc.b_base + p * pc.b_s0 + q * pc.b_s1;
    uint sg = CM_SGID, wm = sg / NWN, wn = sg % NWN;

    CM_ACC acc[FM * FN];
    [[unroll]] for (uint x = 0u; x < FM * FN; x++) acc[x] = cm_zero();

    fetch_slices(0u, l, abase, bbase, tile_m, tile_n);
    /* STAGES = 1: store the slice, barrier, fetch the next into registers, multiply, barrier.
     * STAGES = 2: the slice in stage s is multiplied while the registers (fetched one slice
     * earlier) go to stage s^1 and the slice after that is fetched; one barrier per slice. */
    if (STAGES == 2u) {
        put_slices(0u, l);
        fetch_slices(BK, l, abase, bbase, tile_m, tile_n);
        barrier();
    }
    uint st = 0u;
    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        if (STAGES == 1u) {
            barrier();
            put_slices(0u, l);
            barrier();
            fetch_slices(k0 + BK, l, abase, bbase, tile_m, tile_n);
        }
        uint so_a = st * BM * BKP, so_b = st * BN * BKP;
        [[unroll]] for (uint kk = 0u; kk < BK; kk += TK) {
            CM_FRAG_A af[FM];
            CM_FRAG_B bf[FN];
            [[unroll]] for (uint i = 0u; i < FM; i++) CM_LOAD_A(af[i], so_a + (wm * WM + i * TM) * BKP + kk);
            [[unroll]] for (uint j = 0u; j < FN; j++) CM_LOAD_B(bf[j], so_b + (wn * WN + j * TN) * BKP + kk);
            [[unroll]] for (uint i = 0u; i < FM; i++)
                [[unroll]] for (uint j = 0u; j < FN; j++)
                    acc[i * FN + j] = cm_mma(af[i], bf[j], acc[i * FN + j]);
        }
        if (STAGES == 2u) {
            st ^= 1u;
            if (k0 + BK < pc.K) put_slices(st, l);
            fetch_slices(k0 + 2u * BK, l, abase, bbase, tile_m, tile_n);
            barrier();
        }
    }

    uint cbase = sg * TM * TN;
    [[unroll]] for (uint i = 0u; i < FM; i++) {
        [[unroll]] for (uint j = 0u; j < FN; j++) {
            cm_store(acc[i * FN + j], cbase);
            CM_SYNC();
            uint r0 = tile_m + wm * WM + i * TM, c0 = tile_n + wn * WN + j * TN;
            for (uint e = CM_LANE; e < TM * TN; e += CM_SG) {
                uint row = r0 + e / TN, col = c0 + e % TN;
                if (row < pc.m_end && col < pc.n_end)
                    D_STORE(pc.d_base + (batch * pc.M + row) * pc.N + col, Cs[cbase + e]);
            }
            CM_SYNC();
        }
    }
}
