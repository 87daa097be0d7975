#version 450
/*
 * SDPA on matrix units (GL_NV_cooperative_matrix): flash attention with f16 or bf16 Q, K, V
 * (f16 operands on the matrix units, fp32 scores, softmax statistics and output accumulation).
 * Same definition and push constants as sdpa.comp (forms A and B, causal with p0, d_qk != d_v,
 * output (B,Tq,H,Dv)); specialization constants 10..16 as there, 17..19 the device's
 * f16 x f16 -> f32 shape (TM x TN x TK), 20 subgroup size, 21 subgroups per workgroup,
 * 22..24 whether Q / K / V can be read 8 elements (16 bytes) at a time.
 *
 * A workgroup = NW subgroups = BR = NW*TM query rows of one (b, h), BR == BC (host-checked);
 * workgroups take the query blocks last-first (the causal ones with the most keys start first).
 * Q fragments are loaded once (staged through shared memory). Per block of BC keys:
 *   K and V rows -> registers (prefetched one block ahead, 8 elements per load) -> shared f16
 *   (zero beyond the last visible key), S = Q.K^T per subgroup on the matrix units into shared
 *   fp32 (form B: content and decayed parts as two products, combined with exp(gq_i - gk_j)),
 *   online softmax by the lanes (SG/TM lanes per row), P rounded to f16, O += P.V on the matrix
 *   units with O kept in accumulator registers for the whole key loop.
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
 * f16 sources skip all of this (specialization).
 * STATUS: WRONG on the H100 (driver 580.159.04): outputs uncorrelated with the reference
 * (normalised error ~1.4) in every conformance case; bisected without effect: eager instead of
 * lazy rescaling, no masked-block skip, contiguous instead of interleaved columns, scratch stride,
 * no register prefetch, element-wise instead of 16-byte loads. See docs/VULKAN.md. exp is the built-in one: P is rounded to f16
 * (~2^-11 relative per weight) right after it.
 */
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#define DST_BINDING 6
#include "common.glsl"
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
const uint BR = NW * TM;                              /* query rows per workgroup (== BC) */
const uint WGS = NW * SG;
const uint DCP = (DC + TK - 1u) / TK * TK;            /* content channels, padded */
const uint DRP = (DQK - DC + TK - 1u) / TK * TK;      /* decayed channels, padded */
const uint DKP = DCP + DRP;
const uint DVP = (DV + TN - 1u) / TN * TN;
const uint KST = DKP + 8u;                            /* shared row strides (halves) */
const uint VST = DVP + 8u;
const uint PST = BC + 8u;
const uint SST = BC + 4u;                             /* fp32 scratch row stride (S, O; host: DVP <= BC) */
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

layout(binding = 0, std430) readonly buffer S0 { uint qb[]; };
layout(binding = 0, std430) readonly buffer S0v { uvec4 qb4[]; };
layout(binding = 1, std430) readonly buffer S1 { uint kb[]; };
layout(binding = 1, std430) readonly buffer S1v { uvec4 kb4[]; };
layout(binding = 2, std430) readonly buffer S2 { uint vb[]; };
layout(binding = 2, std430) readonly buffer S2v { uvec4 vb4[]; };
layout(binding = 3, std430) readonly buffer S3 { float gqb[]; };
layout(binding = 4, std430) readonly buffer S4 { float gkb[]; };
layout(push_constant) uniform PC {
    uint q_base, q_s0, q_s1, q_s2, q_s3;
    uint k_base, k_s0, k_s1, k_s2, k_s3;
    uint v_base, v_s0, v_s1, v_s2, v_s3;
    uint gq_base, gq_s1, gq_s2, gq_s3;
    uint gk_base, gk_s1, gk_s2, gk_s3;
    uint d_base;
    uint H, Tq, Tk, unit0, p0;
    float scale;
} pc;

shared float16_t Ks[BC * KST];
shared float16_t Vs[BC * VST];
shared float16_t Ps[BR * PST];
shared float Sc[BR * SST];
shared float gks[BC];
shared uint red[2]; /* workgroup maxima of |x| (float bits) for the range scaling */

/* slot s of the regrouped [content | decayed] layout -> channel of Q/K (~0u: padding) */
uint chan(uint s) {
    if (s < DCP) return s < DC ? s : 0xffffffffu;
    uint d = s - DCP + DC;
    return d < DQK ? d : 0xffffffffu;
}

uint raw16(uint w, uint e) { return (e & 1u) != 0u ? (w >> 16) : (w & 0xffffu); }

/* 8 slots [s, s+8) of the row starting at element rb of Q (t 0), K (1) or V (2), as raw 16-bit
 * values packed in pairs; zero for padding slots and when !ok. */
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

vec2 dec2(uint w, uint dt) {
    return dt == DT_F16 ? unpackHalf2x16(w) : vec2(uintBitsToFloat(w << 16), uintBitsToFloat(w & 0xffff0000u));
}

/* largest finite |x| of a chunk */
float cmax(uvec4 c, uint dt) {
    float m = 0.0;
    [[unroll]] for (uint x = 0u; x < 4u; x++) {
        vec2 a = abs(dec2(c[x], dt));
        if (a.x <= 3.4028235e38 && a.x > m) m = a.x;
        if (a.y <= 3.4028235e38 && a.y > m) m = a.y;
    }
    return m;
}

/* the exponent e >= 0 with max * 2^-e < 2^15 */
int scale_exp(float mx) {
    if (mx < 32768.0) return 0;
    int e;
    frexp(mx, e);
    return e - 15;
}

/* 8 halves of a chunk as f16, scaled by 2^-e unless the source is f16 (copied bit for bit) */
f16vec2 half2(uint w, uint dt, bool sc, int e) {
    if (!sc) return unpackFloat2x16(w);
    return f16vec2(ldexp(dec2(w, dt), ivec2(-e)));
}

void put_k(uint idx, uvec4 c, uint dt, bool sc, int e) {
    [[unroll]] for (uint x = 0u; x < 4u; x++) {
        f16vec2 h = half2(c[x], dt, sc, e);
        Ks[idx + 2u * x] = h.x;
        Ks[idx + 2u * x + 1u] = h.y;
    }
}

void put_v(uint idx, uvec4 c, int e) {
    [[unroll]] for (uint x = 0u; x < 4u; x++) {
        f16vec2 h = half2(c[x], S2_DT, V_SC, e);
        Vs[idx + 2u * x] = h.x;
        Vs[idx + 2u * x + 1u] = h.y;
    }
}

/* subgroup maximum (all SG lanes) then one atomic per subgroup into red[slot] */
void submit_max(uint slot, float v) {
    for (uint m = 1u; m < SG; m <<= 1) v = max(v, subgroupShuffleXor(v, m));
    if (gl_SubgroupInvocationID == 0u) atomicMax(red[slot], floatBitsToUint(v));
}

float row_max(float v) {
    for (uint m = 1u; m < LPR; m <<= 1) v = max(v, subgroupShuffleXor(v, m));
    return v;
}

float row_sum(float v) {
    for (uint m = 1u; m < LPR; m <<= 1) v += subgroupShuffleXor(v, m);
    return v;
}

void main() {
    uint bh = pc.unit0 + gl_WorkGroupID.y, b = bh / pc.H, h = bh % pc.H;
    uint l = gl_LocalInvocationID.x;
    uint w = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint q0 = (gl_NumWorkGroups.x - 1u - gl_WorkGroupID.x) * BR; /* first query row */
    uint wq0 = q0 + w * TM;                                      /* first row of this subgroup */
    uint i_last = min(q0 + BR, pc.Tq) - 1u;
    uint kv_end = CAUSAL != 0u ? min(pc.p0 + i_last + 1u, pc.Tk) : pc.Tk;
    uint w_kv_end = wq0 >= pc.Tq ? 0u : (CAUSAL != 0u ? min(pc.p0 + min(wq0 + TM, pc.Tq), pc.Tk) : pc.Tk);

    uint qbase = pc.q_base + b * pc.q_s0 + h * pc.q_s1;
    uint kbase = pc.k_base + b * pc.k_s0 + h * pc.k_s1;
    uint vbase = pc.v_base + b * pc.v_s0 + h * pc.v_s1;
    uint gkbase = pc.gk_base + b * pc.gk_s1 + h * pc.gk_s2;
    if (l == 0u) { red[0] = 0u; red[1] = 0u; }

    /* ---- Q fragments (BR rows), staged through Ks ---- */
    uvec4 kr[16], vr[16];
    [[unroll]] for (uint x = 0u; x < 16u; x++) {
        kr[x] = uvec4(0u);
        vr[x] = uvec4(0u);
    }
    [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) {
        uint c = l + x * WGS, r = c / KC8;
        kr[x] = chunk(0u, qbase + (q0 + r) * pc.q_s2, c < BR * KC8 && q0 + r < pc.Tq, (c % KC8) * 8u);
    }
    int eq = 0;
    if (Q_SC) {
        float mx = 0.0;
        [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) mx = max(mx, cmax(kr[x], S0_DT));
        barrier(); /* red[] initialised */
        submit_max(0u, mx);
        barrier();
        eq = scale_exp(uintBitsToFloat(red[0]));
    }
    [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) {
        uint c = l + x * WGS;
        if (c < BR * KC8) put_k((c / KC8) * KST + (c % KC8) * 8u, kr[x], S0_DT, Q_SC, eq);
    }
    barrier();
    fcoopmatNV<16, gl_ScopeSubgroup, TM, TK> qf[NQF];
    [[unroll]] for (uint c = 0u; c < NQF; c++) coopMatLoadNV(qf[c], Ks, (w * TM) * KST + c * TK, KST, false);
    if (l == 0u) red[0] = 0u; /* read by all before the barrier above */

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

    fcoopmatNV<32, gl_ScopeSubgroup, TM, TN> o[NOT];
    [[unroll]] for (uint t = 0u; t < NOT; t++) o[t] = fcoopmatNV<32, gl_ScopeSubgroup, TM, TN>(0.0);

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

    for (uint j0 = 0u; j0 < kv_end; j0 += BC) {
        int ek = 0;
        if (K_SC || V_SC) {
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
            barrier(); /* the previous block is done with Ks/Vs */
        }
        [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < KCH) {
            uint c = l + x * WGS;
            if (c < BC * KC8) put_k((c / KC8) * KST + (c % KC8) * 8u, kr[x], S1_DT, K_SC, ek);
        }
        [[unroll]] for (uint x = 0u; x < 16u; x++) if (x < VCH) {
            uint c = l + x * WGS;
            if (c < BC * VC8) put_v((c / VC8) * VST + (c % VC8) * 8u, vr[x], ev_run);
        }
        if (FORM_B != 0u && l < BC) gks[l] = gkr;
        barrier();
        if (l == 0u) { red[0] = 0u; red[1] = 0u; } /* everyone read them before the barrier */

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
        if (j0 >= w_kv_end) continue; /* every key of the block is masked for this subgroup */

        /* S = Q.K^T, content part */
        uint srow = (w * TM + r) * SST;
        [[unroll]] for (uint t = 0u; t < NST; t++) {
            fcoopmatNV<32, gl_ScopeSubgroup, TM, TN> sc = fcoopmatNV<32, gl_ScopeSubgroup, TM, TN>(0.0);
            [[unroll]] for (uint c = 0u; c < NCF; c++) {
                fcoopmatNV<16, gl_ScopeSubgroup, TK, TN> kf;
                coopMatLoadNV(kf, Ks, (t * TN) * KST + c * TK, KST, true);
                sc = coopMatMulAddNV(qf[c], kf, sc);
            }
            coopMatStoreNV(sc, Sc, w * TM * SST + t * TN, SST, false);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        float sv[64]; /* compile-time size (CPL <= 64) */
        [[unroll]] for (uint c = 0u; c < 64u; c++) if (c < CPL) {
            uint jj = c * LPR + part;
            sv[c] = row_ok && j0 + jj < lim ? Sc[srow + jj] : NEG_INF;
        }
        if (DRP > 0u) { /* decayed part: a second product through the same scratch */
            subgroupBarrier();
            [[unroll]] for (uint t = 0u; t < NST; t++) {
                fcoopmatNV<32, gl_ScopeSubgroup, TM, TN> sd = fcoopmatNV<32, gl_ScopeSubgroup, TM, TN>(0.0);
                [[unroll]] for (uint c = NCF; c < NQF; c++) {
                    fcoopmatNV<16, gl_ScopeSubgroup, TK, TN> kf;
                    coopMatLoadNV(kf, Ks, (t * TN) * KST + c * TK, KST, true);
                    sd = coopMatMulAddNV(qf[c], kf, sd);
                }
                coopMatStoreNV(sd, Sc, w * TM * SST + t * TN, SST, false);
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier();
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
        for (uint x = 1u; x < SG; x <<= 1) resc = max(resc, subgroupShuffleXor(resc, x));
        if (resc != 0u) { /* some row of this subgroup moved its maximum: scale O row by row */
            subgroupBarrier();
            [[unroll]] for (uint t = 0u; t < NOT; t++) coopMatStoreNV(o[t], Sc, w * TM * SST + t * TN, SST, false);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint c = 0u; c < DPL; c++) Sc[srow + c * LPR + part] *= alpha;
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            [[unroll]] for (uint t = 0u; t < NOT; t++) coopMatLoadNV(o[t], Sc, w * TM * SST + t * TN, SST, false);
        }
        if (V_SC && eo != ev_run) { /* V's exponent grew: bring O to it (uniform scale) */
            float f = ldexp(1.0, eo - ev_run);
            [[unroll]] for (uint t = 0u; t < NOT; t++) o[t] = o[t] * f;
            eo = ev_run;
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        /* O += P.V */
        fcoopmatNV<16, gl_ScopeSubgroup, TM, TK> pf[NPF];
        [[unroll]] for (uint k = 0u; k < NPF; k++) coopMatLoadNV(pf[k], Ps, w * TM * PST + k * TK, PST, false);
        [[unroll]] for (uint t = 0u; t < NOT; t++) {
            [[unroll]] for (uint k = 0u; k < NPF; k++) {
                fcoopmatNV<16, gl_ScopeSubgroup, TK, TN> vf;
                coopMatLoadNV(vf, Vs, (k * TK) * VST + t * TN, VST, false);
                o[t] = coopMatMulAddNV(pf[k], vf, o[t]);
            }
        }
    }

    /* O / l (times 2^eo), through the scratch */
    subgroupBarrier();
    [[unroll]] for (uint t = 0u; t < NOT; t++) coopMatStoreNV(o[t], Sc, w * TM * SST + t * TN, SST, false);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    if (!row_ok) return;
    float inv = lsum == 0.0 ? 0.0 : 1.0 / lsum;
    uint drow = pc.d_base + ((b * pc.Tq + i) * pc.H + h) * DV;
    for (uint c = 0u; c < DPL; c++) {
        uint d = c * LPR + part;
        if (d < DV) D_STORE(drow + d, ldexp(Sc[(w * TM + r) * SST + d] * inv, eo));
    }
}
