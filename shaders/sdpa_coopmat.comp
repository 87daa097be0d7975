#version 450
/*
 * SDPA on matrix units (GL_NV_cooperative_matrix): flash attention with f16 or bf16 Q, K, V
 * (f16 operands on the matrix units, fp32 scores, softmax statistics and output accumulation).
 * Same definition and push constants as sdpa.comp (forms A and B, causal with p0, d_qk != d_v,
 * output (B,Tq,H,Dv)); specialization constants 10..16 as there, 17..19 the device's
 * f16 x f16 -> f32 shape (TM x TN x TK), 20 subgroup size, 21 subgroups per workgroup,
 * 22..24 whether Q / K / V can be read 8 elements (16 bytes) at a time, 25 flags and debugging
 * variants (see below).
 *
 * A workgroup = NW subgroups = BR = NW*TM query rows of one (b, h), BR == BC (host-checked);
 * workgroups take the query blocks last-first (the causal ones with the most keys start first).
 * Q is staged once through the K tile; its fragments stay in registers for the whole key loop.
 * Per block of BC keys:
 *   K and V rows -> registers (prefetched one block ahead, 8 elements per load) -> shared f16
 *   (zero beyond the last visible key and in the padding channels), S = Q.K^T per subgroup on the
 *   matrix units into shared fp32 (form B: content and decayed parts as two products, combined
 *   with exp(gq_i - gk_j)), online softmax by the lanes (SG/TM lanes per row), P rounded to f16,
 *   O += P.V on the matrix units with O kept in accumulator registers for the whole key loop.
 * Lazy rescaling: a row's reference maximum m moves only when a block's maximum exceeds it by
 * more than TAU (natural log), so P <= e^TAU = 2981 fits f16 and O is rescaled (one round trip
 * through shared memory, the only way to scale a cooperative matrix row by row) only on those
 * rare blocks; the final O / l is exact softmax whatever m is.
 * Range (bf16 sources): bf16 values convert to f16 exactly in [2^-14, 65504] but can be larger
 * (SISA's s*Cbar reaches ~1.7e5*sqrt(lambda)). Each Q tile and K block is scaled by a power of
 * two 2^-e (e >= 0, the smallest that brings its largest finite |x| below 2^15) before the f16
 * conversion, and S is multiplied back by 2^(eq+ek) in fp32; V blocks use a running exponent
 * (non-decreasing over the key loop) and O is multiplied by 2^(old-new) when it grows (a uniform
 * scale, which cooperative matrices allow). Values more than 2^29 below the largest one of their
 * tile lose precision (f16 subnormals), i.e. errors stay relative to the tile's largest term.
 * f16 sources skip all of this (specialization). exp is the built-in one: P is rounded to f16
 * (~2^-11 relative per weight) right after it.
 *
 * Shared-memory exchange inside a subgroup (accumulator stored by the matrix unit, read by lanes,
 * or written by lanes and loaded by the matrix unit) is fenced by sg_sync(): a shared-memory
 * barrier plus an execution barrier of the subgroup (lanes are not in lockstep on NVIDIA).
 *
 * CM_EMULATE (the sdpa_coopmat.emu* variants; SISA_VK_COOPMAT=emulate): the same kernel with the
 * matrix-unit operations replaced by plain shared-memory arithmetic, so lavapipe (no cooperative
 * matrices) runs every other line. A "subgroup" is then 32 consecutive invocations, TM = TN = TK =
 * 16; an A/B fragment is a reference (array, offset, stride, order) read when multiplied (the
 * arrays do not change in between: barriers); accumulator element idx = r*16 + c lives in lane
 * idx % 32, slot idx / 32. Every barrier is a workgroup barrier there, so the control flow around
 * them is made workgroup-uniform (no masked-block skip, the O rescale round trip on every block),
 * and Q has its own array Qs (an emulated Q fragment is read from shared memory when multiplied).
 * Flags (spec constant 25): 256 K rows unpadded (the host sets it when only that fits shared
 * memory). Debugging variants (SISA_VK_SDPA_VARIANT, 0 in normal use): 2 workgroup-scope memory
 * barrier in sg_sync, 8 workgroup barriers everywhere (as the emulation), 16 O in a shared array
 * (loaded and stored per block) instead of registers, 64 / 128 the S / P.V products emulated on a
 * real device (64 stages Q in its own array Qs). On the H100 only 64|128 was right before the
 * 16-byte alignment rule below (docs/VULKAN.md). 512: the Q/K/V tiles as float16_t arrays written
 * one half at a time (the kernel before 128-bit stores; kept to time old against new). 1024: the
 * bf16 range maxima of a key block reduced at the top of its own iteration (the kernel before the
 * one-block-ahead reduction below; kept to time old against new). 2048: bf16 -> f16 always through
 * fp32 (the conversion before the integer re-bias in bf16x2_scaled; kept to time old against new).
 * 4096 (flag, set by the host with SISA_VK_SDPA_PREPASS=1): bf16 Q/K/V converted beforehand (below).
 *
 * Shared tiles as uvec4 (8 halves): a chunk of 8 staged values is ONE 128-bit shared store. With
 * float16_t arrays it was 8 16-bit stores whose lanes sit 16 bytes apart (4-way bank conflicts):
 * ~288 shared-memory wavefronts per subgroup per key block for K and V, about as many as all the
 * matrix-unit loads, S and P traffic of the block together, on an SM whose shared memory moves one
 * 128-byte wavefront per clock for all four subgroups. The matrix units read the same bytes
 * (offsets and strides in uvec4 units; all multiples of 8 halves).
 *
 * Range maxima one block ahead (bf16 K or V): the exponents of key block n+1 need the workgroup
 * maximum of its |K| and |V|, which sit in the prefetch registers during block n. Reducing them at
 * the top of iteration n+1 cost a barrier (the previous block is done with red[]), the subgroup
 * reduction (which waits for the prefetched loads right there) and a second barrier before the
 * exponents could be read. Instead every subgroup submits block n+1's maxima at the END of block
 * n (the loads have long arrived), into red[] slots picked by the block's parity (block n+1 uses
 * red[2p], red[2p+1], p = (n+1) & 1), and the top-of-loop barrier that already separates the
 * blocks makes them visible: one workgroup barrier per block boundary, as with f16. A slot pair is
 * zeroed by invocation 0 after the barrier that follows its readers (the one after the puts), two
 * barriers before anyone submits into it again. A subgroup that skips a block (all its keys
 * masked) still holds its share of the next block's prefetch, so it submits before `continue`.
 * Same maxima, same exponents, same results as the reduction at the top.
 *
 * Pre-pass (flag 4096; backends/vulkan/vk_sdpa_prepass.c, shaders/sdpa_prepass.comp): bf16 Q, K, V
 * were converted to f16 copies beforehand by the range rule of sdpa_range.glsl with the exponents
 * this kernel would have computed (per BR-row Q tile, per BC-key block, V's running exponent per
 * block), which the host checked are the same for every workgroup (whole key blocks only). The
 * host binds the copies as f16 sources (S0..S2_DT = f16: no conversion, no maxima, no range
 * barriers, exactly the f16 path) and the exponents at binding 5, per (b, h) unit x_base + bh * XN:
 * [eq per Q tile | ek per key block | V's exponent per block | V's running exponent per block].
 * S is scaled by 2^(eq+ek), O follows V's running exponent, as with the conversion in the loop:
 * the same f16 operands, the same exponents, the same bits.
 */
#ifndef CM_EMULATE
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_shuffle : require
#define DST_BINDING 6
#include "common.glsl"
#include "sdpa_range.glsl"
layout(local_size_x_id = 10) in;
layout(constant_id = 11) const uint DQK = 80;
layout(constant_id = 12) const uint DV = 64;
layout(constant_id = 13) const uint BC = 64;
layout(constant_id = 14) const uint FORM_B = 0;
layout(constant_id = 15) const uint DC = 80;
layout(constant_id = 16) const uint CAUSAL = 1;
layout(constant_id = 17) const uint TM = 16;
layout(constant_id = 18) const uint TN = 16;
layout(constant_id = 19) const uint TK = 16;
layout(constant_id = 20) const uint SG = 32; /* subgroup size the host planned with */
layout(constant_id = 21) const uint NW = 4;  /* subgroups per workgroup */
layout(constant_id = 22) const uint Q_VEC = 0;
layout(constant_id = 23) const uint K_VEC = 0;
layout(constant_id = 24) const uint V_VEC = 0;
layout(constant_id = 25) const uint VARIANT = 0;
const uint BR = NW * TM;                              /* query rows per workgroup (== BC) */
const uint WGS = NW * SG;
const uint DCP = (DC + TK - 1u) / TK * TK;            /* content channels, padded */
const uint DRP = (DQK - DC + TK - 1u) / TK * TK;      /* decayed channels, padded */
const uint DKP = DCP + DRP;
const uint DVP = (DV + TN - 1u) / TN * TN;
const uint KST = DKP + ((VARIANT & 256u) != 0u ? 0u : 8u); /* shared row strides (halves; 256: K unpadded) */
const uint VST = DVP + 8u;
const uint PST = BC + 8u;
const uint SST = (BC > DVP ? BC : DVP) + 4u;          /* fp32 scratch row stride (S and O) */
const uint NQF = DKP / TK, NCF = DCP / TK;            /* Q fragments: all, content part */
const uint NST = BC / TN;                             /* S tiles per subgroup */
const uint NPF = BC / TK;                             /* P fragments per block */
const uint NOT = DVP / TN;                            /* O tiles */
const uint LPR = SG / TM;                             /* lanes per row */
const uint KC8 = DKP / 8u, VC8 = DVP / 8u;            /* 8-element chunks per row */
const uint KCH = (BC * KC8 + WGS - 1u) / WGS;         /* chunks per invocation (<= 16) */
const uint VCH = (BC * VC8 + WGS - 1u) / WGS;
const bool Q_SC = S0_DT != DT_F16, K_SC = S1_DT != DT_F16, V_SC = S2_DT != DT_F16;
const float TAU = 8.0;
#ifdef CM_EMULATE
const bool WG_SYNC = true;
#else
const bool WG_SYNC = (VARIANT & 8u) != 0u;
#endif
#ifdef CM_EMULATE
const uint VAR = VARIANT & (16u | 512u | 1024u | 2048u); /* the emulation checks the logic of variants 16, 512, 1024, 2048 */
#else
const uint VAR = VARIANT;
#endif
const bool O_SHARED = (VAR & 16u) != 0u; /* O in a shared array, loaded and stored per block */
const bool EMU_S = (VAR & 64u) != 0u;    /* S = Q.K^T emulated (debugging) */
const bool EMU_O = (VAR & 128u) != 0u;   /* O += P.V emulated (debugging) */
const bool SH16 = (VAR & 512u) != 0u;    /* Q/K/V tiles as float16_t, 16-bit stores (as before) */
/* bf16 range maxima: reduced one block ahead (default) or at the top of the block (1024, before) */
const bool RANGE_TOP = (VAR & 1024u) != 0u;
const bool RANGE_AHEAD = (K_SC || V_SC) && !RANGE_TOP;
const bool CVT_FLOAT = (VAR & 2048u) != 0u; /* bf16 -> f16 always through fp32 (before) */
const bool PRE = (VARIANT & 4096u) != 0u;   /* f16 copies of bf16 Q/K/V, exponents at binding 5 */
const bool V_EXP = V_SC || PRE;              /* V has a running exponent (O follows it) */
const uint QSL = RANGE_AHEAD ? 2u : 0u; /* red[] slot of Q's maximum (ahead: 0, 1 are block 0's) */
#ifdef CM_EMULATE
const bool Q_OWN = true; /* emulated Q fragments are read from shared memory when multiplied */
#else
const bool Q_OWN = EMU_S; /* else Q is staged through Ks (its fragments stay in registers) */
#endif

layout(binding = 0, std430) readonly buffer S0 { uint qb[]; };
layout(binding = 0, std430) readonly buffer S0v { uvec4 qb4[]; };
layout(binding = 1, std430) readonly buffer S1 { uint kb[]; };
layout(binding = 1, std430) readonly buffer S1v { uvec4 kb4[]; };
layout(binding = 2, std430) readonly buffer S2 { uint vb[]; };
layout(binding = 2, std430) readonly buffer S2v { uvec4 vb4[]; };
layout(binding = 3, std430) readonly buffer S3 { float gqb[]; };
layout(binding = 4, std430) readonly buffer S4 { float gkb[]; };
layout(binding = 5, std430) readonly buffer S5 { int xb[]; }; /* PRE: the exponents */
layout(push_constant) uniform PC {
    uint q_base, q_s0, q_s1, q_s2, q_s3;
    uint k_base, k_s0, k_s1, k_s2, k_s3;
    uint v_base, v_s0, v_s1, v_s2, v_s3;
    uint gq_base, gq_s1, gq_s2, gq_s3;
    uint gk_base, gk_s1, gk_s2, gk_s3;
    uint d_base;
    uint H, Tq, Tk, unit0, p0;
    float scale;
    uint x_base; /* PRE: unit 0's exponents in binding 5 (modulo 2^32) */
} pc;

/* Every shared array is a multiple of 16 bytes long: the matrix-unit loads and stores need
 * 16-byte aligned addresses (row starts and strides are multiples of 16 bytes here), and the
 * driver packs the arrays in an order of its own; one 8-byte array (red[2]) placed before the
 * tiles shifted every tile by 8 bytes and made every product wrong on the H100. */
shared float16_t Qs[Q_OWN && SH16 ? BR * KST : 8u];
shared float16_t Ks[SH16 ? BC * KST : 8u];
shared float16_t Vs[SH16 ? BC * VST : 8u];
shared uvec4 Qs4[Q_OWN && !SH16 ? BR * KST / 8u : 1u];
shared uvec4 Ks4[SH16 ? 1u : BC * KST / 8u];
shared uvec4 Vs4[SH16 ? 1u : BC * VST / 8u];
shared float16_t Ps[BR * PST];
shared float Sc[BR * SST];
shared float gks[BC];
shared uint red[4]; /* workgroup maxima of |x| (float bits) for the range scaling: K, V of a
                     * block ([0], [1]; ahead: [2p], [2p+1] by block parity p), Q (red[QSL]) */
shared float Os[O_SHARED ? BR * SST : 4u];

/* ---- matrix-unit operations (or their emulation) ---- */
#ifdef CM_EMULATE
#define CM_SGID (gl_LocalInvocationID.x / 32u)
#define CM_LANE (gl_LocalInvocationID.x % 32u)
#else
#define CM_SGID gl_SubgroupID
#define CM_LANE gl_SubgroupInvocationID
#endif
/* the emulation (also used by the debug variants 64/128 on a real device) */
struct cm_frag { uint arr; uint off; uint st; uint cmaj; }; /* arr: 0 Qs, 1 Ks, 2 Vs, 3 Ps */
struct cm_acc { float v[8]; };
/* half x of a uvec4 tile */
float half_at(uvec4 v, uint x) {
    uint w = v[(x >> 1) & 3u];
    return unpackHalf2x16((x & 1u) != 0u ? w >> 16 : w).x;
}
float emu_at(cm_frag f, uint i, uint j) {
    uint x = f.cmaj != 0u ? f.off + j * f.st + i : f.off + i * f.st + j;
    if (f.arr == 0u) return SH16 ? float(Qs[x]) : half_at(Qs4[x >> 3], x);
    if (f.arr == 1u) return SH16 ? float(Ks[x]) : half_at(Ks4[x >> 3], x);
    if (f.arr == 2u) return SH16 ? float(Vs[x]) : half_at(Vs4[x >> 3], x);
    return float(Ps[x]);
}
cm_acc emu_zero() {
    cm_acc c;
    [[unroll]] for (uint e = 0u; e < 8u; e++) c.v[e] = 0.0;
    return c;
}
cm_acc emu_mma(cm_frag a, cm_frag b, cm_acc c) {
    [[unroll]] for (uint e = 0u; e < 8u; e++) {
        uint idx = CM_LANE + e * 32u, r = idx / 16u, col = idx % 16u;
        float s = c.v[e];
        for (uint k = 0u; k < 16u; k++) s += emu_at(a, r, k) * emu_at(b, k, col);
        c.v[e] = s;
    }
    return c;
}
void emu_store(cm_acc c, uint off) {
    [[unroll]] for (uint e = 0u; e < 8u; e++) {
        uint idx = CM_LANE + e * 32u;
        Sc[off + (idx / 16u) * SST + idx % 16u] = c.v[e];
    }
}
cm_acc emu_ld(uint off) {
    cm_acc c;
    [[unroll]] for (uint e = 0u; e < 8u; e++) {
        uint idx = CM_LANE + e * 32u;
        c.v[e] = Sc[off + (idx / 16u) * SST + idx % 16u];
    }
    return c;
}
void emu_store_os(cm_acc c, uint off) {
    [[unroll]] for (uint e = 0u; e < 8u; e++) {
        uint idx = CM_LANE + e * 32u;
        Os[off + (idx / 16u) * SST + idx % 16u] = c.v[e];
    }
}
cm_acc emu_ld_os(uint off) {
    cm_acc c;
    [[unroll]] for (uint e = 0u; e < 8u; e++) {
        uint idx = CM_LANE + e * 32u;
        c.v[e] = Os[off + (idx / 16u) * SST + idx % 16u];
    }
    return c;
}
cm_acc emu_scale(cm_acc c, float f) {
    [[unroll]] for (uint e = 0u; e < 8u; e++) c.v[e] *= f;
    return c;
}
#define EMU_Q(f, off) f = cm_frag(0u, off, KST, 0u)
#define EMU_KT(f, off) f = cm_frag(1u, off, KST, 1u)
#define EMU_V(f, off) f = cm_frag(2u, off, VST, 0u)
#define EMU_P(f, off) f = cm_frag(3u, off, PST, 0u)
#ifdef CM_EMULATE
#define FRAG_A cm_frag
#define FRAG_B cm_frag
#define ACC cm_acc
#define LOAD_Q EMU_Q
#define LOAD_KT EMU_KT
#define LOAD_V EMU_V
#define LOAD_P EMU_P
#define acc_zero emu_zero
#define mma emu_mma
#define acc_store emu_store
#define acc_load(c, off) c = emu_ld(off)
#define acc_scale emu_scale
#define OS_LOAD(c, off) c = emu_ld_os(off)
#define OS_STORE(c, off) emu_store_os(c, off)
void sg_sync() {
    memoryBarrierShared();
    barrier();
}
#else
#define FRAG_A fcoopmatNV<16, gl_ScopeSubgroup, TM, TK>
#define FRAG_B fcoopmatNV<16, gl_ScopeSubgroup, TK, TN>
#define ACC fcoopmatNV<32, gl_ScopeSubgroup, TM, TN>
/* offsets and strides in halves; the uvec4 tiles take them in units of 8 halves */
#define LOAD_Q(f, off) { if (SH16) coopMatLoadNV(f, Ks, off, KST, false); else coopMatLoadNV(f, Ks4, (off) / 8u, KST / 8u, false); }
#define LOAD_KT(f, off) { if (SH16) coopMatLoadNV(f, Ks, off, KST, true); else coopMatLoadNV(f, Ks4, (off) / 8u, KST / 8u, true); }
#define LOAD_V(f, off) { if (SH16) coopMatLoadNV(f, Vs, off, VST, false); else coopMatLoadNV(f, Vs4, (off) / 8u, VST / 8u, false); }
#define LOAD_P(f, off) coopMatLoadNV(f, Ps, off, PST, false)
#define acc_zero() ACC(0.0)
#define mma(a, b, c) coopMatMulAddNV(a, b, c)
#define acc_store(c, off) coopMatStoreNV(c, Sc, off, SST, false)
#define acc_load(c, off) coopMatLoadNV(c, Sc, off, SST, false)
#define acc_scale(c, f) ((c) * (f))
#define OS_LOAD(c, off) coopMatLoadNV(c, Os, off, SST, false)
#define OS_STORE(c, off) coopMatStoreNV(c, Os, off, SST, false)
void sg_sync() {
    if (WG_SYNC) {
        memoryBarrierShared();
        barrier();
    } else if ((VARIANT & 2u) != 0u) {
        memoryBarrierShared();
        subgroupBarrier();
    } else {
        subgroupMemoryBarrierShared();
        subgroupBarrier();
    }
}
#endif

/* S[rows of this subgroup][block] over fragments [C0, C1) -> the scratch Sc */
#define S_PRODUCT(C0, C1)                                                                          \
    [[unroll]] for (uint t = 0u; t < NST; t++) {                                                   \
        if (EMU_S) {                                                                               \
            cm_acc se = emu_zero();                                                                \
            [[unroll]] for (uint c = C0; c < C1; c++) {                                            \
                cm_frag qa, kb;                                                                    \
                EMU_Q(qa, (w * TM) * KST + c * TK);                                                \
                EMU_KT(kb, (t * TN) * KST + c * TK);                                               \
                se = emu_mma(qa, kb, se);                                                          \
            }                                                                                      \
            emu_store(se, sbase + t * TN);                                                         \
        } else {                                                                                   \
            ACC sc = acc_zero();                                                                   \
            [[unroll]] for (uint c = C0; c < C1; c++) {                                            \
                FRAG_B kf;                                                                         \
                LOAD_KT(kf, (t * TN) * KST + c * TK);                                              \
                sc = mma(qf[c], kf, sc);                                                           \
            }                                                                                      \
            acc_store(sc, sbase + t * TN);                                                         \
        }                                                                                          \
    }

/* slot s of the regrouped [content | decayed] layout -> channel of Q/K (~0u: padding) */
uint chan(uint s) {
    if (s < DCP) return s < DC ? s : 0xffffffffu;
    uint d = s - DCP + DC;
    return d < DQK ? d : 0xffffffffu;
}

/* 8 slots [s, s+8) of the row starting at element rb of Q (t 0), K (1) or V (2), as raw 16-bit
 * values packed in pairs; zero for padding slots and when !ok. A 16-byte load only where the
 * host checked that the 8 slots are 8 consecutive, aligned channels (groups multiples of 8). */
uvec4 chunk(uint t, uint rb, bool ok, uint s) {
    if (!ok) return uvec4(0u);
    uint d0 = t == 2u ? (s < DV ? s : 0xffffffffu) : chan(s);
    if (d0 == 0xffffffffu) return uvec4(0u);
    if (t == 0u && Q_VEC != 0u) return qb4[(rb + d0) >> 3];
    if (t == 1u && K_VEC != 0u) return kb4[(rb + d0) >> 3];
    if (t == 2u && V_VEC != 0u) return vb4[(rb + d0) >> 3];
    uint st = t == 0u ? pc.q_s3 : (t == 1u ? pc.k_s3 : pc.v_s3);
    uint hv[8];
    [[unroll]] for (uint x = 0u; x < 8u; x++) {
        uint d = t == 2u ? (s + x < DV ? s + x : 0xffffffffu) : chan(s + x);
        uint e = rb + d * st;
        uint w = 0u;
        if (d != 0xffffffffu) w = t == 0u ? qb[e >> 1] : (t == 1u ? kb[e >> 1] : vb[e >> 1]);
        hv[x] = d != 0xffffffffu ? raw16(w, e) : 0u;
    }
    return uvec4(hv[0] | (hv[1] << 16), hv[2] | (hv[3] << 16), hv[4] | (hv[5] << 16), hv[6] | (hv[7] << 16));
}

/* largest finite |x| of a chunk */
float cmax(uvec4 c, uint dt) {
    float m = 0.0;
    [[unroll]] for (uint x = 0u; x < 4u; x++) m = max(m, wmax(c[x], dt));
    return m;
}

/* 2 halves of a word as f16, scaled by 2^-e unless the source is f16 (copied bit for bit) */
f16vec2 half2(uint w, uint dt, bool sc, int e) {
    if (!sc) return unpackFloat2x16(w);
    return f16vec2(ldexp(dec2(w, dt), ivec2(-e)));
}

/* 8 raw values -> 8 f16 (packed in pairs), scaled as half2 does (sources: f16 or bf16) */
uvec4 halves8(uvec4 c, uint dt, bool sc, int e) {
    if (!sc) return c;
    uvec4 o;
    [[unroll]] for (uint x = 0u; x < 4u; x++)
        o[x] = dt == DT_BF16 ? bf16x2_scaled(c[x], e, CVT_FLOAT) : packFloat2x16(half2(c[x], dt, sc, e));
    return o;
}

/* chunk -> tile at half offset idx (a multiple of 8): one 128-bit store (SH16: 8 16-bit ones).
 * t: 0 Qs (Q's own array), 1 Ks, 2 Vs */
void put8(uint t, uint idx, uvec4 h) {
    if (!SH16) {
        if (t == 0u) Qs4[idx >> 3] = h;
        else if (t == 1u) Ks4[idx >> 3] = h;
        else Vs4[idx >> 3] = h;
        return;
    }
    [[unroll]] for (uint x = 0u; x < 4u; x++) {
        f16vec2 p = unpackFloat2x16(h[x]);
        if (t == 0u) { Qs[idx + 2u * x] = p.x; Qs[idx + 2u * x + 1u] = p.y; }
        else if (t == 1u) { Ks[idx + 2u * x] = p.x; Ks[idx + 2u * x + 1u] = p.y; }
        else { Vs[idx + 2u * x] = p.x; Vs[idx + 2u * x + 1u] = p.y; }
    }
}

void put_q(uint idx, uvec4 c, int e) { put8(Q_OWN ? 0u : 1u, idx, halves8(c, S0_DT, Q_SC, e)); }
void put_k(uint idx, uvec4 c, int e) { put8(1u, idx, halves8(c, S1_DT, K_SC, e)); }
void put_v(uint idx, uvec4 c, int e) { put8(2u, idx, halves8(c, S2_DT, V_SC, e)); }

/* workgroup maximum into red[slot] (one atomic per subgroup; per invocation when emulated) */
void submit_max(uint slot, float v) {
#ifdef CM_EMULATE
    atomicMax(red[slot], floatBitsToUint(v));
#else
    for (uint m = 1u; m < SG; m <<= 1) v = max(v, subgroupShuffleXor(v, m));
    if (gl_SubgroupInvocationID == 0u) atomicMax(red[slot], floatBitsToUint(v));
#endif
}

float row_max(float v) {
    for (uint m = 1u; m < LPR; m <<= 1) v = max(v, subgroupShuffleXor(v, m));
    return v;
}

float row_sum(float v) {
    for (uint m = 1u; m < LPR; m <<= 1) v += subgroupShuffleXor(v, m);
    return v;
}

/* the maxima of the prefetched K/V block (registers kr, vr) into slot pair P (ahead only) */
#define RANGE_SUBMIT(P)                                                                            \
    {                                                                                              \
        float mk_ = 0.0, mv_ = 0.0;                                                                \
        if (K_SC) [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) mk_ = max(mk_, cmax(kr[x], S1_DT)); \
        if (V_SC) [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < VCH) mv_ = max(mv_, cmax(vr[x], S2_DT)); \
        if (K_SC) submit_max(2u * (P), mk_);                                                       \
        if (V_SC) submit_max(2u * (P) + 1u, mv_);                                                  \
    }

void main() {
    uint bh = pc.unit0 + gl_WorkGroupID.y, b = bh / pc.H, h = bh % pc.H;
    uint l = gl_LocalInvocationID.x;
    uint w = CM_SGID, lane = CM_LANE;
    uint q0 = (gl_NumWorkGroups.x - 1u - gl_WorkGroupID.x) * BR; /* first query row */
    uint wq0 = q0 + w * TM;                                      /* first row of this subgroup */
    uint i_last = min(q0 + BR, pc.Tq) - 1u;
    uint kv_end = CAUSAL != 0u ? min(pc.p0 + i_last + 1u, pc.Tk) : pc.Tk;
    uint w_kv_end = wq0 >= pc.Tq ? 0u : (CAUSAL != 0u ? min(pc.p0 + min(wq0 + TM, pc.Tq), pc.Tk) : pc.Tk);

    uint qbase = pc.q_base + b * pc.q_s0 + h * pc.q_s1;
    uint kbase = pc.k_base + b * pc.k_s0 + h * pc.k_s1;
    uint vbase = pc.v_base + b * pc.v_s0 + h * pc.v_s1;
    uint gkbase = pc.gk_base + b * pc.gk_s1 + h * pc.gk_s2;
    if (l == 0u) { red[0] = 0u; red[1] = 0u; red[2] = 0u; red[3] = 0u; }

    /* ---- Q (BR rows) -> Ks (Qs where emulated), then the Q fragments ---- */
    uvec4 kr[16], vr[16];
    [[unroll]] for (uint x = 0u; x < 16u; x++) {
        kr[x] = uvec4(0u);
        vr[x] = uvec4(0u);
    }
    [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) {
        uint c = l + x * WGS, rq = c / KC8;
        kr[x] = chunk(0u, qbase + (q0 + rq) * pc.q_s2, c < BR * KC8 && q0 + rq < pc.Tq, (c % KC8) * 8u);
    }
    int eq = 0;
    /* PRE: this unit's exponents (NQT Q tiles, NKB key blocks) */
    uint nqt = (pc.Tq + BR - 1u) / BR, nkb = (pc.Tk + BC - 1u) / BC, xq = pc.x_base + bh * (nqt + 3u * nkb);
    if (PRE) eq = xb[xq + q0 / BR];
    if (Q_SC) {
        float mx = 0.0;
        [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) mx = max(mx, cmax(kr[x], S0_DT));
        barrier(); /* red[] initialised */
        submit_max(QSL, mx);
        barrier();
        eq = scale_exp(uintBitsToFloat(red[QSL]));
    }
    [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) {
        uint c = l + x * WGS;
        if (c < BR * KC8) put_q((c / KC8) * KST + (c % KC8) * 8u, kr[x], eq);
    }
    barrier();
    FRAG_A qf[NQF];
    [[unroll]] for (uint c = 0u; c < NQF; c++) LOAD_Q(qf[c], (w * TM) * KST + c * TK);
    if (l == 0u) red[QSL] = 0u; /* read by all before the barrier above */

    /* per-lane row state: row r = lane / LPR; columns c * LPR + part */
    uint r = lane / LPR, part = lane % LPR;
    uint i = wq0 + r;
    bool row_ok = i < pc.Tq;
    uint lim = CAUSAL != 0u ? min(pc.p0 + i + 1u, pc.Tk) : pc.Tk;
    float gq = (FORM_B != 0u && row_ok) ? gqb[pc.gq_base + b * pc.gq_s1 + h * pc.gq_s2 + i * pc.gq_s3] : 0.0;
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    float m = NEG_INF, lsum = 0.0;
    const uint CPL = BC / LPR, DPL = DVP / LPR; /* S columns and O columns per lane */
    int ev_run = 0, eo = 0;                     /* V's running exponent; the one O is kept in */
    uint srow = (w * TM + r) * SST, sbase = w * TM * SST;

    ACC o[NOT];
    cm_acc oe[NOT]; /* EMU_O */
    [[unroll]] for (uint t = 0u; t < NOT; t++) {
        o[t] = acc_zero();
        oe[t] = emu_zero();
    }
    if (O_SHARED) for (uint c = 0u; c < DPL; c++) Os[srow + c * LPR + part] = 0.0;

    /* prefetch key block 0 */
    float gkr = 0.0;
    [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) {
        uint c = l + x * WGS, jj = c / KC8;
        kr[x] = chunk(1u, kbase + jj * pc.k_s2, c < BC * KC8 && jj < kv_end, (c % KC8) * 8u);
    }
    [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < VCH) {
        uint c = l + x * WGS, jj = c / VC8;
        vr[x] = chunk(2u, vbase + jj * pc.v_s2, c < BC * VC8 && jj < kv_end, (c % VC8) * 8u);
    }
    if (FORM_B != 0u && l < BC && l < kv_end) gkr = gkb[gkbase + l * pc.gk_s3];
    /* block 0's maxima (slot pair 0; zeroed above, a barrier ago); visible after the loop's first barrier */
    if (RANGE_AHEAD && kv_end > 0u) RANGE_SUBMIT(0u);

    for (uint j0 = 0u; j0 < kv_end; j0 += BC) {
        int ek = 0;
        uint par = (j0 / BC) & 1u; /* this block's slot pair (ahead) */
        if (RANGE_TOP && (K_SC || V_SC)) {
            float mk = 0.0, mv = 0.0;
            if (K_SC) [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) mk = max(mk, cmax(kr[x], S1_DT));
            if (V_SC) [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < VCH) mv = max(mv, cmax(vr[x], S2_DT));
            barrier(); /* the previous block is done with Ks/Vs; red[] reset */
            if (K_SC) submit_max(0u, mk);
            if (V_SC) submit_max(1u, mv);
            barrier();
            if (K_SC) ek = scale_exp(uintBitsToFloat(red[0]));
            if (V_SC) ev_run = max(ev_run, scale_exp(uintBitsToFloat(red[1])));
        } else {
            barrier(); /* the previous block is done with Ks/Vs (ahead: this block's maxima are in) */
            if (PRE) {
                ek = xb[xq + nqt + j0 / BC];
                ev_run = xb[xq + nqt + 2u * nkb + j0 / BC];
            }
            if (RANGE_AHEAD) {
                if (K_SC) ek = scale_exp(uintBitsToFloat(red[2u * par]));
                if (V_SC) ev_run = max(ev_run, scale_exp(uintBitsToFloat(red[2u * par + 1u])));
            }
        }
        [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) {
            uint c = l + x * WGS;
            if (c < BC * KC8) put_k((c / KC8) * KST + (c % KC8) * 8u, kr[x], ek);
        }
        [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < VCH) {
            uint c = l + x * WGS;
            if (c < BC * VC8) put_v((c / VC8) * VST + (c % VC8) * 8u, vr[x], ev_run);
        }
        if (FORM_B != 0u && l < BC) gks[l] = gkr;
        barrier();
        /* everyone read this block's maxima before the barrier; the pair is next submitted into at
         * the end of block n+1, after the next top-of-loop barrier */
        if (l == 0u) {
            if (RANGE_AHEAD) { red[2u * par] = 0u; red[2u * par + 1u] = 0u; }
            else { red[0] = 0u; red[1] = 0u; }
        }

        /* prefetch the next block while this one is multiplied */
        uint jn = j0 + BC;
        if (jn < kv_end) {
            [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) {
                uint c = l + x * WGS, j = jn + c / KC8;
                kr[x] = chunk(1u, kbase + j * pc.k_s2, c < BC * KC8 && j < kv_end, (c % KC8) * 8u);
            }
            [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < VCH) {
                uint c = l + x * WGS, j = jn + c / VC8;
                vr[x] = chunk(2u, vbase + j * pc.v_s2, c < BC * VC8 && j < kv_end, (c % VC8) * 8u);
            }
            if (FORM_B != 0u && l < BC) gkr = jn + l < kv_end ? gkb[gkbase + (jn + l) * pc.gk_s3] : 0.0;
        }
        /* every key of the block is masked for this subgroup (not when barriers are workgroup-wide) */
        if (!WG_SYNC && j0 >= w_kv_end) {
            if (RANGE_AHEAD && jn < kv_end) RANGE_SUBMIT(par ^ 1u); /* its share of the next block */
            continue;
        }


        /* S = Q.K^T, content part */
        S_PRODUCT(0u, NCF);
        sg_sync();
        float sv[64]; /* compile-time size (CPL <= 64) */
        [[unroll]] for (uint c = 0u; c < 64u; c++) if (c < CPL) {
            uint jj = c * LPR + part;
            sv[c] = row_ok && j0 + jj < lim ? Sc[srow + jj] : NEG_INF;
        }
        if (DRP > 0u) { /* decayed part: a second product through the same scratch */
            sg_sync(); /* every lane has read the content part */
            S_PRODUCT(NCF, NQF);
            sg_sync();
            [[unroll]] for (uint c = 0u; c < 64u; c++) if (c < CPL) {
                uint jj = c * LPR + part;
                if (sv[c] != NEG_INF) sv[c] += (FORM_B != 0u ? exp(gq - gks[jj]) : 1.0) * Sc[srow + jj];
            }
        }

        /* online softmax with a lazily moved reference maximum */
        float sfac = pc.scale * ldexp(1.0, eq + ek);
        float bmax = NEG_INF;
        [[unroll]] for (uint c = 0u; c < 64u; c++) if (c < CPL) {
            if (sv[c] != NEG_INF) sv[c] *= sfac;
            bmax = max(bmax, sv[c]);
        }
        bmax = row_max(bmax);
        float m_new = bmax > m + TAU ? bmax : m;
        float alpha = m_new == m ? 1.0 : (m == NEG_INF ? 0.0 : exp(m - m_new));
        uint resc = m_new != m && m != NEG_INF ? 1u : 0u;
        float psum = 0.0;
        [[unroll]] for (uint c = 0u; c < 64u; c++) if (c < CPL) {
            float p = sv[c] == NEG_INF ? 0.0 : exp(sv[c] - m_new);
            float16_t ph = float16_t(p);
            Ps[(w * TM + r) * PST + (c * LPR + part)] = ph;
            psum += float(ph);
        }
        lsum = lsum * alpha + row_sum(psum);
        m = m_new;
        if (WG_SYNC) resc = 1u; /* workgroup-uniform: the round trip on every block */
        else for (uint x = 1u; x < SG; x <<= 1) resc = max(resc, subgroupShuffleXor(resc, x));
        if (O_SHARED) { /* the lanes scale their rows of Os (written by the previous block's product) */
            float f = alpha * (V_EXP ? ldexp(1.0, eo - ev_run) : 1.0);
            eo = ev_run;
            sg_sync();
            if (f != 1.0) for (uint c = 0u; c < DPL; c++) Os[srow + c * LPR + part] *= f;
        } else {
            if (resc != 0u) { /* some row of this subgroup moved its maximum: scale O row by row */
                sg_sync(); /* every lane has read S from the scratch */
                if (EMU_O) [[unroll]] for (uint t = 0u; t < NOT; t++) emu_store(oe[t], sbase + t * TN);
                else [[unroll]] for (uint t = 0u; t < NOT; t++) acc_store(o[t], sbase + t * TN);
                sg_sync();
                for (uint c = 0u; c < DPL; c++) Sc[srow + c * LPR + part] *= alpha;
                sg_sync();
                if (EMU_O) [[unroll]] for (uint t = 0u; t < NOT; t++) oe[t] = emu_ld(sbase + t * TN);
                else [[unroll]] for (uint t = 0u; t < NOT; t++) acc_load(o[t], sbase + t * TN);
            }
            if (V_EXP && eo != ev_run) { /* V's exponent grew: bring O to it (uniform scale) */
                float f = ldexp(1.0, eo - ev_run);
                if (EMU_O) [[unroll]] for (uint t = 0u; t < NOT; t++) oe[t] = emu_scale(oe[t], f);
                else [[unroll]] for (uint t = 0u; t < NOT; t++) o[t] = acc_scale(o[t], f);
                eo = ev_run;
            }
        }
        sg_sync(); /* P written by the lanes */

        /* O += P.V */
        if (EMU_O) {
            [[unroll]] for (uint t = 0u; t < NOT; t++) {
                [[unroll]] for (uint k = 0u; k < NPF; k++) {
                    cm_frag pa, vb;
                    EMU_P(pa, w * TM * PST + k * TK);
                    EMU_V(vb, (k * TK) * VST + t * TN);
                    oe[t] = emu_mma(pa, vb, oe[t]);
                }
            }
        } else {
            FRAG_A pf[NPF];
            [[unroll]] for (uint k = 0u; k < NPF; k++) LOAD_P(pf[k], w * TM * PST + k * TK);
            [[unroll]] for (uint t = 0u; t < NOT; t++) {
                ACC ot;
                if (O_SHARED) OS_LOAD(ot, sbase + t * TN);
                else ot = o[t];
                [[unroll]] for (uint k = 0u; k < NPF; k++) {
                    FRAG_B vf;
                    LOAD_V(vf, (k * TK) * VST + t * TN);
                    ot = mma(pf[k], vf, ot);
                }
                if (O_SHARED) OS_STORE(ot, sbase + t * TN);
                else o[t] = ot;
            }
        }
        /* the next block's maxima, now that its loads have arrived (read after the next barrier) */
        if (RANGE_AHEAD && jn < kv_end) RANGE_SUBMIT(par ^ 1u);
    }

    /* O / l (times 2^eo), through the scratch */
    sg_sync(); /* every lane is done with the scratch */
    if (EMU_O) [[unroll]] for (uint t = 0u; t < NOT; t++) emu_store(oe[t], sbase + t * TN);
    else if (!O_SHARED) [[unroll]] for (uint t = 0u; t < NOT; t++) acc_store(o[t], sbase + t * TN);
    sg_sync();
    if (!row_ok) return;
    float inv = lsum == 0.0 ? 0.0 : 1.0 / lsum;
    uint drow = pc.d_base + ((b * pc.Tq + i) * pc.H + h) * DV;
    for (uint c = 0u; c < DPL; c++) {
        uint d = c * LPR + part;
        if (d < DV) D_STORE(drow + d, ldexp((O_SHARED ? Os[srow + d] : Sc[srow + d]) * inv, eo));
    }
}
