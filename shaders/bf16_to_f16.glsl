/*
 * bf16_to_f16.glsl — THE bf16 -> f16 conversion of MATMUL operands on matrix units, in one place:
 * matmul_coopmat.comp applies it to bf16 slices on their way into shared memory, and
 * bf16_shadow.comp to a constant weight once (its f16 shadow, backends/vulkan/vk_shadow.c), so the
 * MATMUL that reads the shadow stages exactly the f16 bits it would have converted itself.
 *
 * The conversion: exact for |x| in [2^-14, 65504] (f16 has more significand bits than bf16);
 * smaller values keep fewer bits (f16 subnormals, zero below 2^-25); finite values beyond 65504
 * saturate to +-65504 (inf and NaN stay).
 *
 * Specialization constant 23 (CVT_FLOAT): 1 = every word through fp32 (what the host passes
 * unless SISA_VK_CVT_INT=1; the path measured on the H100), 0 = the integer re-bias where both
 * halves are f16 normals. Same bits either way. The including shader enables GL_EXT_shader_explicit_arithmetic_types_float16.
 */
#ifndef SISA_BF16_TO_F16_GLSL
#define SISA_BF16_TO_F16_GLSL

layout(constant_id = 23) const uint CVT_FLOAT = 0;

/* two values as an f16 pair, finite values beyond the f16 range saturated */
uint pack_sat(vec2 f) {
    vec2 a = abs(f);
    bvec2 big = bvec2(a.x > 65504.0 && a.x <= 3.4028235e38, a.y > 65504.0 && a.y <= 3.4028235e38);
    f = mix(f, sign(f) * 65504.0, big);
    return packFloat2x16(f16vec2(f));
}

/* 2 bf16 (one raw word) -> 2 f16. Where both are f16 normals (bf16 biased exponent 113..142:
 * 2^-14 <= |x| <= 65280, the largest such bf16) the conversion is a re-bias of the exponent in
 * integer arithmetic, both halves at once: f16 = sign | ((bits & 0x7fff) - (112 << 7)) << 3 (bf16's
 * 7 mantissa bits become the top of f16's 10: exact). Per half the difference is below 2^12, so
 * the shift never carries into the other half. Everything else (zero, f16 subnormals, beyond
 * 65504, inf, NaN) takes the fp32 path. Same bits as the fp32 path for every input (checked
 * exhaustively per half against it). Why: the fp32 path costs ~20 instructions per word, two of
 * them f32->f16 conversions; the integer one ~8. CVT_FLOAT = 1 keeps the fp32 path for every
 * word. */
uint bf16x2_to_f16(uint w) {
    uint mag = w & 0x7fff7fffu;
    uint lo = (mag & 0xffffu) - 0x3880u, hi = (mag >> 16) - 0x3880u; /* wrap below the range */
    [[dont_flatten]] if (CVT_FLOAT == 0u && max(lo, hi) < 0x0f00u)
        return (w & 0x80008000u) | ((mag - 0x38003800u) << 3);
    return pack_sat(vec2(uintBitsToFloat(w << 16), uintBitsToFloat(w & 0xffff0000u)));
}

/* 8 bf16 (raw words) -> 8 f16 */
uvec4 bf16x8_to_f16(uvec4 w) {
    uvec4 o;
    [[unroll]] for (uint x = 0u; x < 4u; x++) o[x] = bf16x2_to_f16(w[x]);
    return o;
}

#endif
