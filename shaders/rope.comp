#version 450
/*
 * ROPE: x (B,T,H,D), interleaved pairs: pair m of position p0 + t rotated by (p0 + t) * freq_m.
 * freq_m = exp(-(2m/D) ln base) comes from the host in fp64, split into a float pair (hi, lo) in
 * binding 7, so the angle (p0 + t) * freq is formed with an exact (Dekker) product and reduced before
 * the sine: at t = 4096 a float angle alone would carry an error of ~2e-4 rad. u0 = p0.
 * One invocation per pair.
 */
#define DST_BINDING 6
#include "common.glsl"
#include "rowwise.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint s0[]; };
layout(binding = 7, std430) readonly buffer Freq { vec2 freq[]; };

void main() {
    uint e = sisa_group_id() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (e >= pc.n) return;
    uint half_d = pc.D3 / 2u;
    uint row = pc.row0 + e / half_d, m = e % half_d;
    uvec3 i = row_index(row);
    float pos = float(pc.u0 + i.y);
    vec2 f = freq[m];
    float ah, ae;
    sisa_two_prod(pos, f.x, ah, ae);
    precise float al = ae + pos * f.y;
    float sn, cs;
    sisa_sincos2(ah, al, sn, cs);
    float x0 = LOADF(s0, S0_DT, a_at(i, 2u * m));
    float x1 = LOADF(s0, S0_DT, a_at(i, 2u * m + 1u));
    uint d = pc.d_base + row * pc.D3 + 2u * m;
    D_STORE(d, x0 * cs - x1 * sn);
    D_STORE(d + 1u, x0 * sn + x1 * cs);
}
