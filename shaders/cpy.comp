#version 450
/* CPY: dst[i] = src0[i] for every index, converting the dtype (ops.h). One invocation per element. */
#define DST_BINDING 6
#include "common.glsl"
#include "rowwise.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint s0[]; };

void main() {
    uint e = sisa_group_id() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (e >= pc.n) return;
    uint row = pc.row0 + e / pc.D3, c = e % pc.D3;
    float v = LOADF(s0, S0_DT, a_at(row_index(row), c));
    D_STORE(pc.d_base + row * pc.D3 + c, v);
}
