#version 450
/*
 * SSM_DECAY: g[b,h,t] = g0[b,h] + sum_{k<=t} -softplus(a[b,k,h] + bias[h]); dst F32 (1,B,H,T).
 * One workgroup per (b, h): the sequence is scanned in chunks of WG positions, the running total
 * carried between chunks with compensated summation. Units are (b, h) pairs from unit0 on.
 */
#define WG_MAX 1024
#include "common.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint s0[]; };
layout(binding = 1, std430) readonly buffer S1 { uint s1[]; };
layout(binding = 2, std430) readonly buffer S2 { float g0[]; };
layout(binding = 6, std430) writeonly buffer Dst { float d_out[]; };
layout(push_constant) uniform PC {
    uint unit0, n_units; /* (b, h) pairs of this dispatch */
    uint H, T;
    uint a_base, a_s1, a_s2, a_s3;  /* a (1,B,T,H): strides of b, t, h */
    uint bias_base, bias_s3;
    uint g0_base, g0_s2, g0_s3, has_g0;
    uint d_base;
} pc;
#include "scan.glsl"
shared float chunk_total;

void main() {
    uint u = sisa_group_id();
    if (u >= pc.n_units) return;
    uint bh = pc.unit0 + u, b = bh / pc.H, h = bh % pc.H, l = gl_LocalInvocationID.x;
    float bias = LOADF(s1, S1_DT, pc.bias_base + h * pc.bias_s3);
    float carry = pc.has_g0 != 0u ? g0[pc.g0_base + b * pc.g0_s2 + h * pc.g0_s3] : 0.0;
    float comp = 0.0;
    uint dst_row = pc.d_base + bh * pc.T;
    for (uint t0 = 0u; t0 < pc.T; t0 += gl_WorkGroupSize.x) {
        uint t = t0 + l;
        float x = 0.0;
        if (t < pc.T) x = -sisa_softplus(LOADF(s0, S0_DT, pc.a_base + b * pc.a_s1 + t * pc.a_s2 + h * pc.a_s3) + bias);
        float incl = wg_inclusive_scan(x);
        if (t < pc.T) d_out[dst_row + t] = carry + (incl - comp);
        /* the chunk total is the last invocation's inclusive value */
        if (l == gl_WorkGroupSize.x - 1u) chunk_total = incl;
        barrier();
        float total = chunk_total;
        barrier();
        kahan_add(carry, comp, total);
    }
}
