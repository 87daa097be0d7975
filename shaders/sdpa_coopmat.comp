#version 450
/*
 * SDPA on matrix units (GL_NV_cooperative_matrix): flash attention with f16 Q, K, V and fp32
 * scores, softmax statistics and output accumulation. Same definition, push constants and
 * specialization constants 10..16 as sdpa.comp (forms A and B, causal with p0, d_qk != d_v,
 * output (B,Tq,H,Dv)); 17..19 are the device's f16 x f16 -> f32 shape (TM x TN x TK).
 *
 * A workgroup = NW subgroups = BR = NW*TM query rows of one (b, h); each subgroup owns TM rows.
 * Q is staged once through shared memory into per-subgroup fragments (channels regrouped as
 * [content | decayed], each padded to TK, as in sdpa.comp). For each block of BC keys:
 *   K and V tiles -> shared (zero beyond the last visible key; masked keys are never read),
 *   S = Q.K^T per subgroup on the matrix units (form B: the content and decayed parts as two
 *   products, combined with exp(gq_i - gk_j) in fp32),
 *   online softmax in fp32 by the lanes (each row shared by SG/TM lanes, combined by shuffles),
 *   P rounded to f16, the fp32 O rows (kept in shared memory, since a cooperative matrix cannot be
 *   scaled row by row) rescaled and then O += P.V on the matrix units.
 * P in f16 is the only rounding beyond the f16 inputs (~2^-11 relative per weight).
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
layout(constant_id = 13) const uint BC = 32;
layout(constant_id = 14) const uint FORM_B = 0;
layout(constant_id = 15) const uint DC = 80;
layout(constant_id = 16) const uint CAUSAL = 1;
layout(constant_id = 17) const uint TM = 16;
layout(constant_id = 18) const uint TN = 16;
layout(constant_id = 19) const uint TK = 16;
layout(constant_id = 20) const uint SG = 32; /* subgroup size the host planned with */
layout(constant_id = 21) const uint NW = 4;  /* subgroups per workgroup */
const uint BR = NW * TM;
const uint DCP = (DC + TK - 1u) / TK * TK;            /* content channels, padded */
const uint DRP = (DQK - DC + TK - 1u) / TK * TK;      /* decayed channels, padded */
const uint DKP = DCP + DRP;
const uint DVP = (DV + TN - 1u) / TN * TN;
const uint KST = DKP + 8u;                            /* shared row strides (halves) */
const uint VST = DVP + 8u;
const uint PST = BC + 8u;
const uint NQF = DKP / TK, NCF = DCP / TK;            /* Q fragments: all, content part */
const uint NST = BC / TN;                             /* S tiles per subgroup */
const uint NPF = BC / TK;                             /* P fragments per block */
const uint NOT = DVP / TN;                            /* O tiles */
const uint LPR = SG / TM;                             /* lanes per row */

layout(binding = 0, std430) readonly buffer S0 { uint qb[]; };
layout(binding = 1, std430) readonly buffer S1 { uint kb[]; };
layout(binding = 2, std430) readonly buffer S2 { uint vb[]; };
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
shared float16_t Ps[NW * TM * PST];
shared float Ss[NW * TM * BC];
shared float Sd[NW * TM * BC]; /* decayed part of S (form B); unused when DRP = 0 */
shared float Os[NW * TM * DVP];
shared float gks[BC];

/* slot s of the regrouped [content | decayed] layout -> channel of Q/K (~0u: padding) */
uint chan(uint s) {
    if (s < DCP) return s < DC ? s : 0xffffffffu;
    uint d = s - DCP + DC;
    return d < DQK ? d : 0xffffffffu;
}

float shfl_max(float v) {
    for (uint m = 1u; m < LPR; m <<= 1) {
        float o = subgroupShuffleXor(v, m);
        if (o > v) v = o;
    }
    return v;
}

float shfl_sum(float v) {
    for (uint m = 1u; m < LPR; m <<= 1) v += subgroupShuffleXor(v, m);
    return v;
}

void main() {
    uint bh = pc.unit0 + gl_WorkGroupID.y, b = bh / pc.H, h = bh % pc.H;
    uint l = gl_LocalInvocationID.x, WG = gl_WorkGroupSize.x;
    uint w = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint q0 = gl_WorkGroupID.x * BR;                  /* first query row of the workgroup */
    uint wq0 = q0 + w * TM;                           /* first row of this subgroup */
    uint i_last = min(q0 + BR, pc.Tq) - 1u;
    uint kv_end = CAUSAL != 0u ? min(pc.p0 + i_last + 1u, pc.Tk) : pc.Tk;
    /* this subgroup's last visible key (+1) over its rows */
    uint w_last = min(wq0 + TM, pc.Tq);
    uint w_kv_end = wq0 >= pc.Tq ? 0u : (CAUSAL != 0u ? min(pc.p0 + w_last, pc.Tk) : pc.Tk);

    uint qbase = pc.q_base + b * pc.q_s0 + h * pc.q_s1;
    uint kbase = pc.k_base + b * pc.k_s0 + h * pc.k_s1;
    uint vbase = pc.v_base + b * pc.v_s0 + h * pc.v_s1;

    /* ---- Q fragments, staged through Ks in chunks of BC rows ---- */
    fcoopmatNV<16, gl_ScopeSubgroup, TM, TK> qf[NQF];
    for (uint r0 = 0u; r0 < BR; r0 += BC) {
        barrier();
        for (uint x = l; x < BC * DKP; x += WG) {
            uint r = x / DKP, s = x % DKP, i = q0 + r0 + r, d = chan(s);
            float v = 0.0;
            if (i < pc.Tq && d != 0xffffffffu) v = LOADF(qb, S0_DT, qbase + i * pc.q_s2 + d * pc.q_s3);
            Ks[r * KST + s] = float16_t(v);
        }
        barrier();
        if (w * TM >= r0 && w * TM < r0 + BC) {
            [[unroll]] for (uint c = 0u; c < NQF; c++)
                coopMatLoadNV(qf[c], Ks, (w * TM - r0) * KST + c * TK, KST, false);
        }
    }
    for (uint x = lane; x < TM * DVP; x += SG) Os[w * TM * DVP + x] = 0.0;

    /* per-lane row state: row r = lane / LPR, columns part * (BC / LPR) ... */
    uint r = lane / LPR, part = lane % LPR;
    uint i = wq0 + r;
    bool row_ok = i < pc.Tq;
    uint lim = CAUSAL != 0u ? min(pc.p0 + i + 1u, pc.Tk) : pc.Tk;
    float gq = (FORM_B != 0u && row_ok) ? gqb[pc.gq_base + b * pc.gq_s1 + h * pc.gq_s2 + i * pc.gq_s3] : 0.0;
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    float m = NEG_INF, lsum = 0.0;
    const uint CPL = BC / LPR, DPL = DVP / LPR;      /* S columns and O columns per lane */

    for (uint j0 = 0u; j0 < kv_end; j0 += BC) {
        barrier();
        for (uint x = l; x < BC * DKP; x += WG) {
            uint jj = x / DKP, s = x % DKP, j = j0 + jj, d = chan(s);
            float v = 0.0;
            if (j < kv_end && d != 0xffffffffu) v = LOADF(kb, S1_DT, kbase + j * pc.k_s2 + d * pc.k_s3);
            Ks[jj * KST + s] = float16_t(v);
        }
        for (uint x = l; x < BC * DVP; x += WG) {
            uint jj = x / DVP, d = x % DVP, j = j0 + jj;
            float v = 0.0;
            if (j < kv_end && d < DV) v = LOADF(vb, S2_DT, vbase + j * pc.v_s2 + d * pc.v_s3);
            Vs[jj * VST + d] = float16_t(v);
        }
        if (FORM_B != 0u) {
            for (uint jj = l; jj < BC; jj += WG) {
                uint j = j0 + jj;
                gks[jj] = j < kv_end ? gkb[pc.gk_base + b * pc.gk_s1 + h * pc.gk_s2 + j * pc.gk_s3] : 0.0;
            }
        }
        barrier();
        if (j0 >= w_kv_end) continue; /* every key of the block is masked for this subgroup */

        /* S = Q.K^T (content part; form B: decayed part separately) */
        [[unroll]] for (uint t = 0u; t < NST; t++) {
            fcoopmatNV<32, gl_ScopeSubgroup, TM, TN> sc = fcoopmatNV<32, gl_ScopeSubgroup, TM, TN>(0.0);
            [[unroll]] for (uint c = 0u; c < NCF; c++) {
                fcoopmatNV<16, gl_ScopeSubgroup, TK, TN> kf;
                coopMatLoadNV(kf, Ks, (t * TN) * KST + c * TK, KST, true);
                sc = coopMatMulAddNV(qf[c], kf, sc);
            }
            coopMatStoreNV(sc, Ss, w * TM * BC + t * TN, BC, false);
            if (DRP > 0u) {
                fcoopmatNV<32, gl_ScopeSubgroup, TM, TN> sd = fcoopmatNV<32, gl_ScopeSubgroup, TM, TN>(0.0);
                [[unroll]] for (uint c = NCF; c < NQF; c++) {
                    fcoopmatNV<16, gl_ScopeSubgroup, TK, TN> kf;
                    coopMatLoadNV(kf, Ks, (t * TN) * KST + c * TK, KST, true);
                    sd = coopMatMulAddNV(qf[c], kf, sd);
                }
                coopMatStoreNV(sd, Sd, w * TM * BC + t * TN, BC, false);
            }
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        /* online softmax on this lane's share of its row */
        float sv[64]; /* compile-time size (CPL <= 64): see sdpa.comp */
        float bmax = NEG_INF;
        [[unroll]] for (uint c = 0u; c < CPL; c++) {
            uint jj = part * CPL + c, j = j0 + jj;
            float s = NEG_INF;
            if (row_ok && j < lim) {
                s = Ss[(w * TM + r) * BC + jj];
                if (DRP > 0u) s += (FORM_B != 0u ? exp(gq - gks[jj]) : 1.0) * Sd[(w * TM + r) * BC + jj];
                s *= pc.scale;
            }
            sv[c] = s;
            if (s > bmax) bmax = s;
        }
        bmax = shfl_max(bmax);
        float m_new = bmax > m ? bmax : m;
        float alpha = m_new == m ? 1.0 : exp(m - m_new);
        float psum = 0.0;
        [[unroll]] for (uint c = 0u; c < CPL; c++) {
            float p = sv[c] == NEG_INF ? 0.0 : exp(sv[c] - m_new);
            float16_t ph = float16_t(p);
            Ps[(w * TM + r) * PST + part * CPL + c] = ph;
            psum += float(ph);
        }
        psum = shfl_sum(psum);
        lsum = lsum * alpha + psum;
        m = m_new;
        if (alpha != 1.0) {
            for (uint c = 0u; c < DPL; c++) Os[(w * TM + r) * DVP + part * DPL + c] *= alpha;
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        /* O += P.V */
        fcoopmatNV<16, gl_ScopeSubgroup, TM, TK> pf[NPF];
        [[unroll]] for (uint k = 0u; k < NPF; k++) coopMatLoadNV(pf[k], Ps, w * TM * PST + k * TK, PST, false);
        [[unroll]] for (uint t = 0u; t < NOT; t++) {
            fcoopmatNV<32, gl_ScopeSubgroup, TM, TN> o;
            coopMatLoadNV(o, Os, w * TM * DVP + t * TN, DVP, false);
            [[unroll]] for (uint k = 0u; k < NPF; k++) {
                fcoopmatNV<16, gl_ScopeSubgroup, TK, TN> vf;
                coopMatLoadNV(vf, Vs, (k * TK) * VST + t * TN, VST, false);
                o = coopMatMulAddNV(pf[k], vf, o);
            }
            coopMatStoreNV(o, Os, w * TM * DVP + t * TN, DVP, false);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
    }

    if (!row_ok) return;
    float inv = lsum == 0.0 ? 0.0 : 1.0 / lsum;
    uint drow = pc.d_base + ((b * pc.Tq + i) * pc.H + h) * DV;
    for (uint c = 0u; c < DPL; c++) {
        uint d = part * DPL + c;
        if (d < DV) D_STORE(drow + d, Os[(w * TM + r) * DVP + d] * inv);
    }
}
