/*
 * common.glsl — what every SISA compute shader shares: dtype decoding, rounding stores, the
 * workgroup-grid helpers and accurate fp32 math.
 *
 * Storage types. Sources are bound as raw 32-bit words (uint[]) and decoded by the dtype the host
 * passes as a specialization constant (SISA's enum: 0 f32, 1 f16, 2 bf16), so one SPIR-V module
 * reads every source dtype without needing 16-bit storage, bf16 included, and a driver folds the
 * branch away when it specialises the pipeline. Destinations are compiled twice from the same
 * source: -DOUT_F32 (float[]) and -DOUT_16 (uint16_t[], f16 or bf16 by OUT_DT), the only variant
 * that needs storageBuffer16BitAccess. Rounding to 16 bits is written out (round to nearest even,
 * NaN stays NaN) so it matches tensor.c bit for bit on every vendor.
 *
 * Addressing. The host binds each tensor at an aligned byte offset and passes a "base" element
 * index relative to that binding plus element strides; indices are uint and may wrap: the sum
 * base + i0*s0 + ... is exact modulo 2^32, and the true value always lies inside the binding.
 *
 * Math. Vulkan only bounds exp/log/sin/cos loosely (sin/cos: 2^-11 absolute), so the functions
 * the oracle comparison depends on (exp, log1p, softplus, sincos) are written here with
 * Cody-Waite reduction and fixed polynomials: about 1-2 ulp on every device, fused fma or not.
 */
#ifndef SISA_COMMON_GLSL
#define SISA_COMMON_GLSL

#extension GL_EXT_control_flow_attributes : enable
#ifdef OUT_16
#extension GL_EXT_shader_16bit_storage : require
#endif

#define DT_F32 0u
#define DT_F16 1u
#define DT_BF16 2u

/* specialization constants 0..7: destination and source dtypes */
layout(constant_id = 0) const uint OUT_DT = 0;
layout(constant_id = 1) const uint S0_DT = 0;
layout(constant_id = 2) const uint S1_DT = 0;
layout(constant_id = 3) const uint S2_DT = 0;
layout(constant_id = 4) const uint S3_DT = 0;
layout(constant_id = 5) const uint S4_DT = 0;
layout(constant_id = 6) const uint S5_DT = 0;

float sisa_half_to_float(uint h) {
    uint s = (h & 0x8000u) << 16;
    uint e = (h >> 10) & 0x1fu;
    uint m = h & 0x3ffu;
    if (e == 0x1fu) return uintBitsToFloat(s | 0x7f800000u | (m << 13));
    if (e == 0u) {
        float v = float(m) * (1.0 / 16777216.0);
        return s != 0u ? -v : v;
    }
    return uintBitsToFloat(s | ((e + 112u) << 23) | (m << 13));
}

uint sisa_float_to_half(float f) {
    uint u = floatBitsToUint(f);
    uint sign = (u >> 16) & 0x8000u;
    uint a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;
    if (a >= 0x477ff000u) return sign | 0x7c00u;
    if (a < 0x38800000u) return sign | uint(roundEven(uintBitsToFloat(a) * 16777216.0));
    uint r = a + 0xfffu + ((a >> 13) & 1u);
    return sign | ((r - 0x38000000u) >> 13);
}

uint sisa_float_to_bf16(float f) {
    uint u = floatBitsToUint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return ((u >> 16) | 0x40u) & 0xffffu;
    u += 0x7fffu + ((u >> 16) & 1u);
    return u >> 16;
}

/* Decode element e of a word array holding dtype dt, given the word that contains it. */
float sisa_decode(uint w, uint dt, uint e) {
    if (dt == DT_F32) return uintBitsToFloat(w);
    uint h = (e & 1u) != 0u ? (w >> 16) : (w & 0xffffu);
    if (dt == DT_F16) return sisa_half_to_float(h);
    return uintBitsToFloat(h << 16);
}

#define SISA_WORD(dt, e) ((dt) == DT_F32 ? (e) : ((e) >> 1))
/* Element e (relative to the binding) of source array arr whose dtype is dt. */
#define LOADF(arr, dt, e) sisa_decode(arr[SISA_WORD(dt, e)], dt, e)

/* NaN test on the bits: immune to fast-math folding of isnan(). */
bool sisa_isnan(float x) { return (floatBitsToUint(x) & 0x7fffffffu) > 0x7f800000u; }

/* The destination at binding DST_BINDING: D_STORE(e, v) rounds v once to the destination dtype. */
#ifdef DST_BINDING
#ifdef OUT_16
layout(binding = DST_BINDING, std430) writeonly buffer DstBuf { uint16_t d_out[]; };
#define D_STORE(e, v) d_out[e] = uint16_t(OUT_DT == DT_F16 ? sisa_float_to_half(v) : sisa_float_to_bf16(v))
#else
layout(binding = DST_BINDING, std430) writeonly buffer DstBuf { float d_out[]; };
#define D_STORE(e, v) d_out[e] = (v)
#endif
#endif

/* Flat workgroup id over a 2-D grid (x is capped by maxComputeWorkGroupCount). */
uint sisa_group_id() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }

/* ---- accurate fp32 math ----
 * GLSL's fma() is not guaranteed to be fused (lavapipe may split it), so nothing here relies on
 * it: range reductions use constants with few significant bits, whose products with the
 * (integer) reduction multiple are exact, and `precise` keeps compilers from reassociating. */

float sisa_exp(float x) {
    if (x > 88.72283935546875) return uintBitsToFloat(0x7f800000u);
    if (x < -103.972084045410) return 0.0;
    float k = roundEven(x * 1.44269504088896341);
    precise float r = x - k * 0.693359375;  /* ln 2 = 0.693359375 - 2.12194440e-4 (cephes) */
    r = r - k * -2.12194440e-4;
    float p = 1.9875691500e-4;
    p = p * r + 1.3981999507e-3;
    p = p * r + 8.3334519073e-3;
    p = p * r + 4.1665795894e-2;
    p = p * r + 1.6666665459e-1;
    p = p * r + 5.0000001201e-1;
    float y = p * (r * r) + r + 1.0;
    int ki = int(k);
    if (ki < -125) return ldexp(y, ki + 64) * 5.421010862427522e-20;
    if (ki > 127) return ldexp(y * 2.0, ki - 1);
    return ldexp(y, ki);
}

/* log(1 + y) for y in [0, 1]: 2 atanh(y / (2 + y)) as a series, ~2 ulp. */
float sisa_log1p_unit(float y) {
    float z = y / (2.0 + y);
    float z2 = z * z;
    float p = 1.0 / 19.0;
    p = p * z2 + 1.0 / 17.0;
    p = p * z2 + 1.0 / 15.0;
    p = p * z2 + 1.0 / 13.0;
    p = p * z2 + 1.0 / 11.0;
    p = p * z2 + 1.0 / 9.0;
    p = p * z2 + 1.0 / 7.0;
    p = p * z2 + 1.0 / 5.0;
    p = p * z2 + 1.0 / 3.0;
    p = p * z2 + 1.0;
    return 2.0 * z * p;
}

/* softplus(x) = max(x, 0) + log1p(exp(-|x|)); NaN stays NaN. */
float sisa_softplus(float x) {
    if (sisa_isnan(x)) return x;
    return max(x, 0.0) + sisa_log1p_unit(sisa_exp(-abs(x)));
}

/* Exact product a * b = p + e (Dekker/Veltkamp, no fma needed). */
void sisa_two_prod(float a, float b, out float p, out float e) {
    precise float ca = 4097.0 * a, cb = 4097.0 * b;
    precise float ah = ca - (ca - a), al = a - ah;
    precise float bh = cb - (cb - b), bl = b - bh;
    precise float pp = a * b;
    precise float ee = ((ah * bh - pp) + ah * bl + al * bh) + al * bl;
    p = pp;
    e = ee;
}

/* sin and cos of xh + xl (xl a small correction, 0 for a plain float): reduction by multiples of
 * pi/2 = C1 + C2 + C3 + C4, C1..C3 of 8 significant bits each, so k * Ci and the subtractions are
 * exact for |k| < 2^16 (|x| < ~1e5); then minimax polynomials on [-pi/4, pi/4]. ~1e-7 absolute. */
void sisa_sincos2(float xh, float xl, out float s, out float c) {
    float k = roundEven(xh * 0.636619772367581343);
    precise float r = xh - k * 1.5703125;
    r = r - k * 0.000484466552734375;
    r = r - k * -6.407499313354492e-07;
    r = r + xl;
    r = r - k * 9.92093629470503e-10;
    float r2 = r * r;
    float sp = ((-1.9515295891e-4 * r2 + 8.3321608736e-3) * r2 - 1.6666654611e-1) * r2 * r + r;
    float cp = ((2.443315711809948e-5 * r2 - 1.388731625493765e-3) * r2 + 4.166664568298827e-2) * r2 * r2 +
               (-0.5 * r2 + 1.0);
    uint q = uint(int(k)) & 3u;
    if (q == 0u) { s = sp; c = cp; }
    else if (q == 1u) { s = cp; c = -sp; }
    else if (q == 2u) { s = -sp; c = -cp; }
    else { s = -cp; c = sp; }
}

void sisa_sincos(float x, out float s, out float c) { sisa_sincos2(x, 0.0, s, c); }

#endif
