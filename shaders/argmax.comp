#version 450
/*
 * ARGMAX over the row -> i32: the first index of the largest value; NaN beats everything (the
 * first NaN wins). One workgroup per row; (value, index) pairs merged by a tree reduction.
 */
#define WG_MAX 1024
#include "common.glsl"
#include "rowwise.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint s0[]; };
layout(binding = 6, std430) writeonly buffer Dst { int d_out[]; };
shared float red_v[WG_MAX];
shared uint red_i[WG_MAX];

/* does candidate (v2, i2) beat (v1, i1)? i = 0xffffffff marks "no element" */
bool beats(float v1, uint i1, float v2, uint i2) {
    if (i2 == 0xffffffffu) return false;
    if (i1 == 0xffffffffu) return true;
    bool n1 = sisa_isnan(v1), n2 = sisa_isnan(v2);
    if (n1 || n2) return n2 && (!n1 || i2 < i1);
    return v2 > v1 || (v2 == v1 && i2 < i1);
}

void main() {
    uint g = sisa_group_id();
    if (g >= pc.n) return;
    uint row = pc.row0 + g, l = gl_LocalInvocationID.x;
    uvec3 i = row_index(row);
    float bv = 0.0;
    uint bi = 0xffffffffu;
    for (uint c = l; c < pc.u0; c += gl_WorkGroupSize.x) {
        float v = LOADF(s0, S0_DT, a_at(i, c));
        if (beats(bv, bi, v, c)) { bv = v; bi = c; }
    }
    red_v[l] = bv; red_i[l] = bi;
    barrier();
    for (uint st = gl_WorkGroupSize.x / 2u; st > 0u; st >>= 1) {
        if (l < st && beats(red_v[l], red_i[l], red_v[l + st], red_i[l + st])) {
            red_v[l] = red_v[l + st]; red_i[l] = red_i[l + st];
        }
        barrier();
    }
    if (l == 0u) d_out[pc.d_base + row] = int(red_i[0]);
}
