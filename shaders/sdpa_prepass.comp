#version 450
/*
 * sdpa_prepass.comp — bf16 Q, K, V of an attention node -> f16 copies for sdpa_coopmat.comp (its
 * flag 4096), scaled by the exponents that kernel would compute in its loop (sdpa_range.glsl's
 * rule), plus those exponents; host side and exactness: backends/vulkan/vk_sdpa_prepass.c.
 *
 * Work: a chunk of (b, h) units [unit0, unit0 + gy). Destination (binding 6, raw words): per unit
 * lu a slab of f16 copies [Q: Tq rows | K: Tk rows | V: Tk rows] (rows of DQK / DV channels padded
 * to 8 halves, zero padding; K at k_off, V at v_off words into the slab), then after the chunk's
 * slabs, from x_off, per unit NQT + 3 NKB exponents (ints): eq per BC-row Q tile, ek per BC-key
 * block, V's exponent per block, V's running exponent per block (the maximum over blocks 0..n:
 * the kernel's V exponent never decreases along its key loop).
 *
 * Two dispatches (phase, push constant), one workgroup per (tile or block n, unit lu):
 *   phase 0, z = 0 Q / 1 K / 2 V: the block's largest finite |x| (a shared atomic on the float
 *            bits: an exact maximum, any order) -> its exponent; Q and K blocks are converted
 *            right away, V only records its exponent;
 *   phase 1: V block n's running exponent from the phase-0 exponents of blocks 0..n, then V is
 *            converted with it.
 * Sources (bindings 0..2) are read through their strides (any view), two channels per word (one
 * load where the two are one word).
 */
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#include "common.glsl"
#include "sdpa_range.glsl"
layout(local_size_x_id = 10) in;
layout(constant_id = 11) const uint DQK = 80;
layout(constant_id = 12) const uint DV = 64;
layout(constant_id = 13) const uint BC = 64; /* the kernel's key block == its query tile */
layout(constant_id = 25) const uint VARIANT = 0; /* 2048: bf16 -> f16 through fp32 (as the kernel's) */
const bool CVT_FLOAT = (VARIANT & 2048u) != 0u;
const uint DQW = (DQK + 7u) / 8u * 4u, DVW = (DV + 7u) / 8u * 4u; /* words per copy row */

layout(binding = 0, std430) readonly buffer S0 { uint qb[]; };
layout(binding = 1, std430) readonly buffer S1 { uint kb[]; };
layout(binding = 2, std430) readonly buffer S2 { uint vb[]; };
layout(binding = 6, std430) buffer D { uint dw[]; };
layout(push_constant) uniform PC {
    uint q_base, q_s0, q_s1, q_s2, q_s3;
    uint k_base, k_s0, k_s1, k_s2, k_s3;
    uint v_base, v_s0, v_s1, v_s2, v_s3;
    uint H, Tq, Tk, unit0, phase;
    uint slab, k_off, v_off, x_off; /* words (see the header) */
} pc;

shared uint smax;

/* channels 2c, 2c+1 (zero beyond d) of source t's row starting at element rb, stride s3: one word
 * where they are one (contiguous channels, even element index), else two 16-bit extractions */
uint src2(uint t, uint rb, uint s3, uint c, uint d) {
    if (s3 == 1u && (rb & 1u) == 0u && 2u * c + 1u < d) {
        uint e = (rb >> 1) + c;
        return t == 0u ? qb[e] : (t == 1u ? kb[e] : vb[e]);
    }
    uint w = 0u;
    [[unroll]] for (uint x = 0u; x < 2u; x++) {
        uint ch = 2u * c + x, e = rb + ch * s3;
        if (ch < d) w |= raw16(t == 0u ? qb[e >> 1] : (t == 1u ? kb[e >> 1] : vb[e >> 1]), e) << (16u * x);
    }
    return w;
}

void main() {
    uint n = gl_WorkGroupID.x, lu = gl_WorkGroupID.y, t = pc.phase == 0u ? gl_WorkGroupID.z : 2u;
    uint l = gl_LocalInvocationID.x, wgs = gl_WorkGroupSize.x;
    uint T = t == 0u ? pc.Tq : pc.Tk, r0 = n * BC;
    if (r0 >= T) return; /* the whole workgroup */
    uint rows = min(BC, T - r0);
    uint bh = pc.unit0 + lu, b = bh / pc.H, h = bh % pc.H;
    uint d = t == 2u ? DV : DQK, rw = t == 2u ? DVW : DQW;
    uint rb = t == 0u ? pc.q_base + b * pc.q_s0 + h * pc.q_s1 + r0 * pc.q_s2
            : (t == 1u ? pc.k_base + b * pc.k_s0 + h * pc.k_s1 + r0 * pc.k_s2
                       : pc.v_base + b * pc.v_s0 + h * pc.v_s1 + r0 * pc.v_s2);
    uint s2 = t == 0u ? pc.q_s2 : (t == 1u ? pc.k_s2 : pc.v_s2);
    uint s3 = t == 0u ? pc.q_s3 : (t == 1u ? pc.k_s3 : pc.v_s3);
    uint nqt = (pc.Tq + BC - 1u) / BC, nkb = (pc.Tk + BC - 1u) / BC;
    uint xo = pc.x_off + lu * (nqt + 3u * nkb); /* [eq | ek | ev | ev running] */
    uint co = lu * pc.slab + (t == 0u ? 0u : (t == 1u ? pc.k_off : pc.v_off)) + r0 * rw;
    int e = 0;
    if (pc.phase == 0u) {
        if (l == 0u) smax = 0u;
        barrier();
        float m = 0.0;
        for (uint i = l; i < rows * rw; i += wgs) m = max(m, wmax(src2(t, rb + (i / rw) * s2, s3, i % rw, d), DT_BF16));
        atomicMax(smax, floatBitsToUint(m));
        barrier();
        e = scale_exp(uintBitsToFloat(smax));
        if (l == 0u) dw[xo + (t == 0u ? n : (t == 1u ? nqt + n : nqt + nkb + n))] = uint(e);
        if (t == 2u) return; /* V: converted in phase 1, with its running exponent */
    } else {
        for (uint j = 0u; j <= n; j++) e = max(e, int(dw[xo + nqt + nkb + j]));
        if (l == 0u) dw[xo + nqt + 2u * nkb + n] = uint(e);
    }
    for (uint i = l; i < rows * rw; i += wgs)
        dw[co + i] = bf16x2_scaled(src2(t, rb + (i / rw) * s2, s3, i % rw, d), e, CVT_FLOAT);
}
