#version 450
/*
 * SOFTMAX over the row: exp(x - max) / sum exp(x - max); a row of -inf only gives zeros, a NaN
 * anywhere makes the row NaN. One workgroup per row; each invocation keeps an online (max, sum)
 * pair that the tree reduction merges.
 */
#define DST_BINDING 6
#define WG_MAX 1024
#include "common.glsl"
#include "rowwise.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint s0[]; };
shared float red_m[WG_MAX];
shared float red_s[WG_MAX];
shared uint red_nan[WG_MAX];

void main() {
    uint g = sisa_group_id();
    if (g >= pc.n) return;
    uint row = pc.row0 + g, l = gl_LocalInvocationID.x;
    uvec3 i = row_index(row);
    float m = uintBitsToFloat(0xff800000u), s = 0.0;
    uint nan = 0u;
    for (uint c = l; c < pc.D3; c += gl_WorkGroupSize.x) {
        float v = LOADF(s0, S0_DT, a_at(i, c));
        if (sisa_isnan(v)) { nan = 1u; continue; }
        if (v > m) { s = s * exp(m - v); m = v; }
        if (v != uintBitsToFloat(0xff800000u)) s += exp(v - m);
    }
    red_m[l] = m; red_s[l] = s; red_nan[l] = nan;
    barrier();
    for (uint st = gl_WorkGroupSize.x / 2u; st > 0u; st >>= 1) {
        if (l < st) {
            float m1 = red_m[l], m2 = red_m[l + st];
            float mm = max(m1, m2);
            float s1 = m1 == mm ? red_s[l] : red_s[l] * exp(m1 - mm);
            float s2 = m2 == mm ? red_s[l + st] : red_s[l + st] * exp(m2 - mm);
            red_m[l] = mm; red_s[l] = s1 + s2; red_nan[l] |= red_nan[l + st];
        }
        barrier();
    }
    float mx = red_m[0], sum = red_s[0];
    bool any_nan = red_nan[0] != 0u;
    bool all_masked = !any_nan && mx == uintBitsToFloat(0xff800000u);
    float inv = 1.0 / sum;
    for (uint c = l; c < pc.D3; c += gl_WorkGroupSize.x) {
        float v = LOADF(s0, S0_DT, a_at(i, c));
        float r = any_nan ? uintBitsToFloat(0x7fc00000u) : all_masked ? 0.0 : exp(v - mx) * inv;
        D_STORE(pc.d_base + row * pc.D3 + c, r);
    }
}
