#version 450
/* AUGMENT: dst[.., w] = a[.., w] (w < Da) | b[.., w - Da] (w < Da + Db) | 0. u0 = Da, u1 = Db. */
#define DST_BINDING 6
#include "common.glsl"
#include "rowwise.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint s0[]; };
layout(binding = 1, std430) readonly buffer S1 { uint s1[]; };

void main() {
    uint e = sisa_group_id() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (e >= pc.n) return;
    uint row = pc.row0 + e / pc.D3, w = e % pc.D3;
    uvec3 i = row_index(row);
    float v = 0.0;
    if (w < pc.u0) v = LOADF(s0, S0_DT, a_at(i, w));
    else if (w < pc.u0 + pc.u1) v = LOADF(s1, S1_DT, b_at(i, w - pc.u0));
    D_STORE(pc.d_base + row * pc.D3 + w, v);
}
