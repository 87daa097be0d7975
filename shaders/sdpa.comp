#version 450
/*
 * SDPA as flash attention (scalar/portable path): online softmax over blocks of BC keys, never a
 * Tq x Tk matrix. ops.h:
 *   form A: s[i,j] = scale Q_i.K_j
 *   form B: s[i,j] = scale (Q_i[:dc].K_j[:dc] + exp(gq_i - gk_j) Q_i[dc:].K_j[dc:])
 *   causal: key j visible iff j <= p0 + i (masked keys are never read); dst (B,Tq,H,Dv).
 * One workgroup = BR query rows of one (b, h); one invocation = one row, holding its (scaled)
 * query and output accumulator in registers as vec4s. Each key block is staged in shared memory
 * with the channels regrouped as [content | decayed], each part padded to a multiple of 4, so the
 * two dot products are plain vec4 loops (form A has no decayed part). Head dims, block sizes,
 * the form and causality are specialization constants; shapes and strides are push constants.
 * Accumulation in fp32; a row with no visible key gives zeros; NaN scores propagate.
 */
#define DST_BINDING 6
#include "common.glsl"
layout(local_size_x_id = 10) in; /* BR */
layout(constant_id = 11) const uint DQK = 64;
layout(constant_id = 12) const uint DV = 64;
layout(constant_id = 13) const uint BC = 32;
layout(constant_id = 14) const uint FORM_B = 0;
layout(constant_id = 15) const uint DC = 64; /* content channels (= DQK in form A) */
layout(constant_id = 16) const uint CAUSAL = 1;
const uint DC4 = (DC + 3u) / 4u;
const uint DR4 = (DQK - DC + 3u) / 4u;
const uint DK4 = DC4 + DR4;
const uint DV4 = (DV + 3u) / 4u;
/* Register arrays get a compile-time size (d_qk, d_v <= 256, checked by the host): an array whose
 * length is a specialization-constant expression was kept in local memory by the NVIDIA compiler
 * (the matmul kernel ran at 2 TFLOP/s that way). Loops run over the compile-time size with specialization-constant guards, which fold away. */
#define MAXD4 64u

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

shared vec4 Ks[BC * DK4];
shared vec4 Vs[BC * DV4];
shared float gks[BC];

/* slot s of the regrouped [content | decayed] layout -> channel of Q/K (~0u: padding) */
uint chan(uint s) {
    if (s < DC4 * 4u) return s < DC ? s : 0xffffffffu;
    uint d = s - DC4 * 4u + DC;
    return d < DQK ? d : 0xffffffffu;
}

void main() {
    uint bh = pc.unit0 + gl_WorkGroupID.y, b = bh / pc.H, h = bh % pc.H;
    uint l = gl_LocalInvocationID.x, BR = gl_WorkGroupSize.x;
    uint i = gl_WorkGroupID.x * BR + l;
    bool row_ok = i < pc.Tq;
    uint i_last = min(gl_WorkGroupID.x * BR + BR, pc.Tq) - 1u;
    uint kv_end = CAUSAL != 0u ? min(pc.p0 + i_last + 1u, pc.Tk) : pc.Tk;
    uint lim = CAUSAL != 0u ? min(pc.p0 + i + 1u, pc.Tk) : pc.Tk;

    vec4 q[MAXD4];
    [[unroll]] for (uint c = 0u; c < MAXD4; c++) q[c] = vec4(0.0);
    float gq = 0.0;
    if (row_ok) {
        uint qrow = pc.q_base + b * pc.q_s0 + h * pc.q_s1 + i * pc.q_s2;
        /* unrolled with constant indices so q stays in registers */
        [[unroll]] for (uint c = 0u; c < MAXD4; c++) {
            [[unroll]] for (uint k = 0u; k < 4u; k++) {
                uint d = c < DK4 ? chan(c * 4u + k) : 0xffffffffu;
                if (d != 0xffffffffu) q[c][k] = pc.scale * LOADF(qb, S0_DT, qrow + d * pc.q_s3);
            }
        }
        if (FORM_B != 0u) gq = gqb[pc.gq_base + b * pc.gq_s1 + h * pc.gq_s2 + i * pc.gq_s3];
    }
    vec4 o[MAXD4];
    [[unroll]] for (uint c = 0u; c < MAXD4; c++) o[c] = vec4(0.0);
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    float m = NEG_INF, lsum = 0.0;

    uint kbase = pc.k_base + b * pc.k_s0 + h * pc.k_s1;
    uint vbase = pc.v_base + b * pc.v_s0 + h * pc.v_s1;
    for (uint j0 = 0u; j0 < kv_end; j0 += BC) {
        barrier();
        for (uint x = l; x < BC * DK4 * 4u; x += BR) {
            uint jj = x / (DK4 * 4u), s = x % (DK4 * 4u), j = j0 + jj;
            /* slot s -> channel d (padding slots stay 0) */
            uint d = chan(s);
            float v = 0.0;
            if (j < kv_end && d != 0xffffffffu) v = LOADF(kb, S1_DT, kbase + j * pc.k_s2 + d * pc.k_s3);
            Ks[jj * DK4 + s / 4u][s % 4u] = v;
        }
        for (uint x = l; x < BC * DV4 * 4u; x += BR) {
            uint jj = x / (DV4 * 4u), d = x % (DV4 * 4u), j = j0 + jj;
            float v = 0.0;
            if (j < kv_end && d < DV) v = LOADF(vb, S2_DT, vbase + j * pc.v_s2 + d * pc.v_s3);
            Vs[jj * DV4 + d / 4u][d % 4u] = v;
        }
        if (FORM_B != 0u) {
            for (uint jj = l; jj < BC; jj += BR) {
                uint j = j0 + jj;
                gks[jj] = j < kv_end ? gkb[pc.gk_base + b * pc.gk_s1 + h * pc.gk_s2 + j * pc.gk_s3] : 0.0;
            }
        }
        barrier();
        if (!row_ok) continue;
        uint jn = min(BC, lim > j0 ? lim - j0 : 0u);
        for (uint jj = 0u; jj < jn; jj++) {
            float sc = 0.0;
            [[unroll]] for (uint c = 0u; c < MAXD4; c++) if (c < DC4) sc += dot(q[c], Ks[jj * DK4 + c]);
            if (DR4 > 0u) {
                float dr = 0.0;
                [[unroll]] for (uint c = 0u; c < MAXD4; c++) if (c >= DC4 && c < DK4) dr += dot(q[c], Ks[jj * DK4 + c]);
                sc += FORM_B != 0u ? exp(gq - gks[jj]) * dr : dr;
            }
            if (sc > m) { /* new running max: rescale what was accumulated */
                float alpha = m == NEG_INF ? 0.0 : exp(m - sc);
                lsum *= alpha;
                [[unroll]] for (uint c = 0u; c < MAXD4; c++) if (c < DV4) o[c] *= alpha;
                m = sc;
            }
            float p = sc == NEG_INF ? 0.0 : exp(sc - m);
            lsum += p;
            [[unroll]] for (uint c = 0u; c < MAXD4; c++) if (c < DV4) o[c] += p * Vs[jj * DV4 + c];
        }
    }
    if (!row_ok) return;
    float inv = lsum == 0.0 ? 0.0 : 1.0 / lsum;
    uint drow = pc.d_base + ((b * pc.Tq + i) * pc.H + h) * DV;
    [[unroll]] for (uint c = 0u; c < MAXD4; c++) {
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            if (c * 4u + k < DV) D_STORE(drow + c * 4u + k, o[c][k] * inv);
        }
    }
}
