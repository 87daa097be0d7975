#version 450
/*
 * SSM_CHANNELS (ops.h): for every (b, h, t)
 *   Phi[m] = Phi0[b,h,m] + sum_{k<=t} theta[b,k,h*ds/2+m]
 *   u      = clamp(g[b,h,t] - c[b,h], -L, L)   (mode 0, form A; c = (max_t g + min_t g)/2)
 *          = 0                                 (mode 1, form B)
 *   dst[b,h,t, 0:ds]   = s_h Rot(Phi) (e^{+u} Cs[b,t,h*ds:(h+1)*ds])
 *   dst[b,h,t, ds:2ds] = s_h Rot(Phi) (e^{-u} Bs[b,t,h*ds:(h+1)*ds])
 *   s_h = d_h^(1/4) sqrt(softplus(lambda_raw[h]))
 * One workgroup per (b, h). Positions are processed in chunks of WG; for each rotation pair the
 * chunk's theta is prefix-summed across the workgroup and the running Phi carried between chunks
 * with compensated summation (the per-pair carries live in shared memory).
 */
#define WG_MAX 1024
#define HALF_MAX 128
#define DST_BINDING 6
#include "common.glsl"
layout(local_size_x_id = 10) in;
layout(binding = 0, std430) readonly buffer S0 { uint bs[]; };
layout(binding = 1, std430) readonly buffer S1 { uint cs[]; };
layout(binding = 2, std430) readonly buffer S2 { uint th[]; };
layout(binding = 3, std430) readonly buffer S3 { float gd[]; };
layout(binding = 4, std430) readonly buffer S4 { float lam[]; };
layout(binding = 5, std430) readonly buffer S5 { uint phi0[]; };
layout(push_constant) uniform PC {
    uint unit0, n_units;             /* (b, h) pairs */
    uint H, T, ds, mode;
    uint bs_base, bs_s1, bs_s2, bs_s3; /* Bs (1,B,T,H*ds): strides of b, t, channel */
    uint cs_base, cs_s1, cs_s2, cs_s3;
    uint th_base, th_s1, th_s2, th_s3;
    uint g_base, g_s1, g_s2, g_s3;     /* g (1,B,H,T): strides of b, h, t */
    uint lam_base, lam_s3;
    uint p0_base, p0_s2, p0_s3, has_phi0;
    uint d_base;
    float clamp_l, d_h;
} pc;
#include "scan.glsl"
shared float carry_s[HALF_MAX], comp_s[HALF_MAX];
shared float red_max[WG_MAX], red_min[WG_MAX];

float g_at(uint b, uint h, uint t) { return gd[pc.g_base + b * pc.g_s1 + h * pc.g_s2 + t * pc.g_s3]; }

void main() {
    uint u = sisa_group_id();
    if (u >= pc.n_units) return;
    uint bh = pc.unit0 + u, b = bh / pc.H, h = bh % pc.H, l = gl_LocalInvocationID.x;
    uint half_ds = pc.ds / 2u;

    float c = 0.0;
    if (pc.mode == 0u) {
        float mx = uintBitsToFloat(0xff800000u), mn = uintBitsToFloat(0x7f800000u);
        for (uint t = l; t < pc.T; t += gl_WorkGroupSize.x) {
            float v = g_at(b, h, t);
            if (v > mx) mx = v;
            if (v < mn) mn = v;
        }
        red_max[l] = mx; red_min[l] = mn;
        barrier();
        for (uint st = gl_WorkGroupSize.x / 2u; st > 0u; st >>= 1) {
            if (l < st) {
                if (red_max[l + st] > red_max[l]) red_max[l] = red_max[l + st];
                if (red_min[l + st] < red_min[l]) red_min[l] = red_min[l + st];
            }
            barrier();
        }
        c = (red_max[0] + red_min[0]) * 0.5;
    }
    float s = sqrt(sqrt(pc.d_h)) * sqrt(sisa_softplus(lam[pc.lam_base + h * pc.lam_s3]));

    for (uint m = l; m < half_ds; m += gl_WorkGroupSize.x) {
        carry_s[m] = pc.has_phi0 != 0u ? LOADF(phi0, S5_DT, pc.p0_base + b * pc.p0_s2 + (h * half_ds + m) * pc.p0_s3) : 0.0;
        comp_s[m] = 0.0;
    }
    barrier();

    uint row_len = 2u * pc.ds;
    for (uint t0 = 0u; t0 < pc.T; t0 += gl_WorkGroupSize.x) {
        uint t = t0 + l;
        bool live = t < pc.T;
        float up = 1.0, down = 1.0;
        if (live && pc.mode == 0u) {
            float x = g_at(b, h, t) - c;
            float uu = x < -pc.clamp_l ? -pc.clamp_l : x > pc.clamp_l ? pc.clamp_l : x;
            up = sisa_exp(uu);
            down = sisa_exp(-uu);
        }
        uint drow = pc.d_base + (bh * pc.T + t) * row_len;
        for (uint m = 0u; m < half_ds; m++) {
            float cm = carry_s[m], cc = comp_s[m];
            float x = live ? LOADF(th, S2_DT, pc.th_base + b * pc.th_s1 + t * pc.th_s2 + (h * half_ds + m) * pc.th_s3) : 0.0;
            float incl = wg_inclusive_scan(x);
            if (live) {
                float phi = cm + (incl - cc);
                float sn, co;
                sisa_sincos(phi, sn, co);
                uint e = h * pc.ds + 2u * m;
                float c0 = up * LOADF(cs, S1_DT, pc.cs_base + b * pc.cs_s1 + t * pc.cs_s2 + e * pc.cs_s3);
                float c1 = up * LOADF(cs, S1_DT, pc.cs_base + b * pc.cs_s1 + t * pc.cs_s2 + (e + 1u) * pc.cs_s3);
                float b0 = down * LOADF(bs, S0_DT, pc.bs_base + b * pc.bs_s1 + t * pc.bs_s2 + e * pc.bs_s3);
                float b1 = down * LOADF(bs, S0_DT, pc.bs_base + b * pc.bs_s1 + t * pc.bs_s2 + (e + 1u) * pc.bs_s3);
                D_STORE(drow + 2u * m, s * (c0 * co - c1 * sn));
                D_STORE(drow + 2u * m + 1u, s * (c0 * sn + c1 * co));
                D_STORE(drow + pc.ds + 2u * m, s * (b0 * co - b1 * sn));
                D_STORE(drow + pc.ds + 2u * m + 1u, s * (b0 * sn + b1 * co));
            }
            if (l == gl_WorkGroupSize.x - 1u) {
                float cs_ = carry_s[m], cp_ = comp_s[m];
                kahan_add(cs_, cp_, incl);
                carry_s[m] = cs_;
                comp_s[m] = cp_;
            }
            barrier();
        }
    }
}
