#version 450
/*
 * RMS_NORM: dst[.., i] = x[.., i] / sqrt(mean_j x[.., j]^2 + eps) * w[i]; one workgroup per row,
 * the mean square in fp32 by a tree reduction (error ~log2(D) ulp). f0 = eps, b = the weight.
 */
#define DST_BINDING 6
#define WG_MAX 1024
#include "common.glsl"
#include "rowwise.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint s0[]; };
layout(binding = 1, std430) readonly buffer S1 { uint s1[]; };
#include "reduce.glsl"

void main() {
    uint g = sisa_group_id();
    if (g >= pc.n) return; /* uniform across the group */
    uint row = pc.row0 + g;
    uvec3 i = row_index(row);
    float ss = 0.0;
    for (uint c = gl_LocalInvocationID.x; c < pc.D3; c += gl_WorkGroupSize.x) {
        float v = LOADF(s0, S0_DT, a_at(i, c));
        ss = fma(v, v, ss);
    }
    ss = wg_sum(ss);
    float inv = 1.0 / sqrt(ss / float(pc.D3) + pc.f0);
    for (uint c = gl_LocalInvocationID.x; c < pc.D3; c += gl_WorkGroupSize.x) {
        float v = LOADF(s0, S0_DT, a_at(i, c));
        D_STORE(pc.d_base + row * pc.D3 + c, v * inv * LOADF(s1, S1_DT, b_at(i, c)));
    }
}
