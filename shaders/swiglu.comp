#version 450
/* SWIGLU: dst = silu(gate) * up, silu(x) = x / (1 + e^-x). */
#define DST_BINDING 6
#include "common.glsl"
#include "rowwise.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint s0[]; };
layout(binding = 1, std430) readonly buffer S1 { uint s1[]; };

void main() {
    uint e = sisa_group_id() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (e >= pc.n) return;
    uint row = pc.row0 + e / pc.D3, c = e % pc.D3;
    uvec3 i = row_index(row);
    float g = LOADF(s0, S0_DT, a_at(i, c));
    float silu = g / (1.0 + sisa_exp(-g));
    D_STORE(pc.d_base + row * pc.D3 + c, silu * LOADF(s1, S1_DT, b_at(i, c)));
}
