#version 450
/*
 * EMBED: dst[0,b,t,:] = table[ids[b,t], :]; an id outside [0, V) gives zeros.
 * The table may be larger than one storage binding can address (a 50277 x 768 f32 embedding is
 * 154 MB; lavapipe binds 128 MiB): the host then binds vocabulary blocks [u0, u1) one dispatch at a
 * time and each dispatch writes only the rows whose id falls in its block; the dispatch with
 * u2 = 1 also writes the zero rows of invalid ids. a_s2 is the table's row stride (per id),
 * b_s1/b_s2 address ids by the destination's (b, t); u3 = V.
 */
#define DST_BINDING 6
#include "common.glsl"
#include "rowwise.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint s0[]; };
layout(binding = 1, std430) readonly buffer S1 { int ids[]; };

void main() {
    uint e = sisa_group_id() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (e >= pc.n) return;
    uint row = pc.row0 + e / pc.D3, c = e % pc.D3;
    uvec3 i = row_index(row);
    int id = ids[pc.b_base + i.y * pc.b_s1 + i.z * pc.b_s2];
    bool valid = id >= 0 && uint(id) < pc.u3;
    if (valid && uint(id) >= pc.u0 && uint(id) < pc.u1) {
        D_STORE(pc.d_base + row * pc.D3 + c, LOADF(s0, S0_DT, pc.a_base + uint(id) * pc.a_s2 + c * pc.a_s3));
    } else if (!valid && pc.u2 != 0u) {
        D_STORE(pc.d_base + row * pc.D3 + c, 0.0);
    }
}
