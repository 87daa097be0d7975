/*
 * sdpa_range.glsl — THE range scaling of bf16 attention operands on matrix units, in one place:
 * sdpa_coopmat.comp applies it to each Q tile and K/V block on their way into shared memory, and
 * sdpa_prepass.comp to whole tensors once (the f16 copies the kernel then reads as f16, with the
 * same exponents: backends/vulkan/vk_sdpa_prepass.c), so both stage the same f16 bits.
 *
 * The rule: a tile or block of bf16 values is scaled by 2^-e before the f16 conversion, e >= 0
 * the smallest exponent that brings its largest finite |x| below 2^15 (scale_exp of the maximum
 * of wmax over its words); inf and NaN do not count. The including shader enables
 * GL_EXT_shader_explicit_arithmetic_types_float16 and includes common.glsl.
 */
#ifndef SISA_SDPA_RANGE_GLSL
#define SISA_SDPA_RANGE_GLSL

/* the 16-bit value of element e (its parity picks the half) of the word w holding it */
uint raw16(uint w, uint e) { return (e & 1u) != 0u ? (w >> 16) : (w & 0xffffu); }

/* the two 16-bit values of a word, decoded (f16 or bf16) */
vec2 dec2(uint w, uint dt) {
    return dt == DT_F16 ? unpackHalf2x16(w) : vec2(uintBitsToFloat(w << 16), uintBitsToFloat(w & 0xffff0000u));
}

/* largest finite |x| of the two values of a word (0 when neither is finite and nonzero) */
float wmax(uint w, uint dt) {
    vec2 a = abs(dec2(w, dt));
    float m = 0.0;
    if (a.x <= 3.4028235e38 && a.x > m) m = a.x;
    if (a.y <= 3.4028235e38 && a.y > m) m = a.y;
    return m;
}

/* the exponent e >= 0 with max * 2^-e < 2^15 */
int scale_exp(float mx) {
    if (mx < 32768.0) return 0;
    int e;
    frexp(mx, e);
    return e - 15;
}

/* 2 bf16 (one raw word) -> 2 f16 scaled by 2^-e. Where both scaled values are f16 normals (bf16
 * biased exponent 113+e .. min(142+e, 254): the upper end is never passed here, the scaling keeps
 * every finite value below 2^15; 254 keeps inf/NaN out when e = 113) the conversion is an integer
 * re-bias of the exponent, both halves at once: sign | ((bits & 0x7fff) - ((112+e) << 7)) << 3
 * (exact: bf16's 7 mantissa bits become the top of f16's 10; per half the difference stays below
 * 2^12, so the shift never carries into the other half). Zero, f16 subnormals, inf and NaN take the
 * fp32 path; cvt_float = true takes it for every word. Same bits as the fp32 path for every input
 * and every e in 0..113 (checked exhaustively per half), so each half's result depends on that half
 * and e only, never on its neighbour in the word. Why the integer path: the fp32 one is ~16
 * instructions per word with two f32->f16 conversions; the re-bias ~8 integer ones. */
uint bf16x2_scaled(uint w, int e, bool cvt_float) {
    uint lo_b = uint(113 + e) << 7, span = uint(min(142 + e, 254) - (113 + e) + 1) << 7;
    uint mag = w & 0x7fff7fffu;
    uint lo = (mag & 0xffffu) - lo_b, hi = (mag >> 16) - lo_b; /* wrap below the range */
    [[dont_flatten]] if (!cvt_float && max(lo, hi) < span)
        return (w & 0x80008000u) | ((mag - (lo_b - 128u) * 0x10001u) << 3);
    return packFloat2x16(f16vec2(ldexp(dec2(w, DT_BF16), ivec2(-e))));
}

#endif
