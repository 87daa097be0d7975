/*
 * fast_vec.c — the fast path's small vector toolbox: which instruction set to use, dtype
 * conversion of rows (any float dtype, any element stride -> contiguous f32 and back), exp,
 * and sums that stay accurate for long rows.
 *
 * SIMD code is compiled per function with __attribute__((target)) and chosen at run time with
 * __builtin_cpu_supports, so the library is built for the baseline target and still runs the
 * AVX-512 code on CPUs that have it (and never on ones that do not).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fast_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define SISA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define SISA_X86 0
#endif

/* ---- ISA choice ---- */

static int g_isa = -1;      /* in use */
static int g_isa_hw = -1;   /* best the CPU supports */

#if SISA_X86
/* F16C from CPUID leaf 1 (ECX bit 29): not every compiler's __builtin_cpu_supports knows it.
 * Its register state is AVX's, which the "avx2" check below already requires of the OS. */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

static int detect_hw(void) {
#if SISA_X86
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return SISA_FAST_ISA_AVX512;
    if (avx2) return SISA_FAST_ISA_AVX2;
#endif
    return SISA_FAST_ISA_C;
}

static void isa_init(void) {
    if (g_isa >= 0) return;
    int hw = detect_hw();
    int use = hw;
    const char *e = getenv("SISA_CPU_ISA");
    if (e) {
        if (!strcmp(e, "c") || !strcmp(e, "scalar")) use = SISA_FAST_ISA_C;
        else if (!strcmp(e, "avx2")) use = SISA_FAST_ISA_AVX2;
        else if (!strcmp(e, "avx512")) use = SISA_FAST_ISA_AVX512;
        if (use > hw) use = hw;
    }
    g_isa_hw = hw;
    g_isa = use;
}

sisa_fast_isa sisa_fast_get_isa(void) {
    isa_init();
    return (sisa_fast_isa)g_isa;
}

sisa_fast_isa sisa_fast_set_isa(sisa_fast_isa want) {
    isa_init();
    g_isa = (int)want < g_isa_hw ? (int)want : g_isa_hw;
    if (g_isa < 0) g_isa = 0;
    return (sisa_fast_isa)g_isa;
}

const char *sisa_fast_isa_name(sisa_fast_isa isa) {
    switch (isa) {
    case SISA_FAST_ISA_AVX512: return "avx512";
    case SISA_FAST_ISA_AVX2: return "avx2";
    default: return "c";
    }
}

/* ---- rows ---- */

static inline float bf16_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#if SISA_X86
__attribute__((target("avx2,fma,f16c"))) static void f16_to_f32_f16c(float *dst, const uint16_t *src,
                                                                     int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = sisa_f16_to_f32(src[i]);
}

__attribute__((target("avx2,fma,f16c"))) static void f32_to_f16_f16c(uint16_t *dst, const float *src,
                                                                     int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = sisa_f32_to_f16(src[i]);
}
#endif

void sisa_fast_load_row(float *dst, const void *p, sisa_dtype dt, int64_t stride, int64_t n) {
    const char *c = p;
    switch (dt) {
    case SISA_F32:
        if (stride == 4) {
            memcpy(dst, p, (size_t)n * 4);
        } else {
            for (int64_t i = 0; i < n; i++) memcpy(dst + i, c + i * stride, 4);
        }
        return;
    case SISA_BF16:
        if (stride == 2) {
            const uint16_t *h = p;
            for (int64_t i = 0; i < n; i++) dst[i] = bf16_f32(h[i]);
        } else {
            for (int64_t i = 0; i < n; i++) {
                uint16_t h;
                memcpy(&h, c + i * stride, 2);
                dst[i] = bf16_f32(h);
            }
        }
        return;
    case SISA_F16:
#if SISA_X86
        if (stride == 2 && sisa_fast_get_isa() >= SISA_FAST_ISA_AVX2) {
            f16_to_f32_f16c(dst, p, n);
            return;
        }
#endif
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, c + i * stride, 2);
            dst[i] = sisa_f16_to_f32(h);
        }
        return;
    default:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)sisa_load_elem(c + i * stride, dt);
        return;
    }
}

const float *sisa_fast_row_f32(float *scratch, const void *p, sisa_dtype dt, int64_t stride,
                               int64_t n) {
    if (dt == SISA_F32 && (stride == 4 || n == 1) && ((uintptr_t)p & 3) == 0) return p;
    sisa_fast_load_row(scratch, p, dt, stride, n);
    return scratch;
}

void sisa_fast_store_row(void *p, sisa_dtype dt, const float *src, int64_t n) {
    switch (dt) {
    case SISA_F32:
        if (p != (const void *)src) memmove(p, src, (size_t)n * 4);
        return;
    case SISA_BF16: {
        uint16_t *h = p;
        for (int64_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, src + i, 4);
            /* round to nearest even; NaN stays a (quiet) NaN — as sisa_f32_to_bf16 */
            uint32_t r = ((u & 0x7fffffffu) > 0x7f800000u) ? (u | 0x00400000u)
                                                            : u + 0x7fffu + ((u >> 16) & 1u);
            h[i] = (uint16_t)(r >> 16);
        }
        return;
    }
    case SISA_F16:
#if SISA_X86
        if (sisa_fast_get_isa() >= SISA_FAST_ISA_AVX2) {
            f32_to_f16_f16c(p, src, n);
            return;
        }
#endif
        for (int64_t i = 0; i < n; i++) ((uint16_t *)p)[i] = sisa_f32_to_f16(src[i]);
        return;
    default: {
        size_t es = sisa_dtype_size(dt);
        for (int64_t i = 0; i < n; i++) sisa_store_elem((char *)p + (size_t)i * es, dt, src[i]);
        return;
    }
    }
}

/* ---- exp ----
 * Cephes expf: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact product),
 * e^r = 1 + r + r^2 P(r), P of degree 5; 2^n applied exactly (scalef / exponent bits).
 * About 1 ulp on the whole range; -inf -> 0, +inf -> inf, NaN -> NaN. */
#define EXP_HI 88.72283935546875f
#define EXP_LO -103.972084045410f /* below: 0 (after denormals) */
#define LOG2E 1.44269504088896341f
#define C1 0.693359375f
#define C2 -2.12194440e-4f
#define P0 1.9875691500E-4f
#define P1 1.3981999507E-3f
#define P2 8.3334519073E-3f
#define P3 4.1665795894E-2f
#define P4 1.6666665459E-1f
#define P5 5.0000001201E-1f

#if SISA_X86
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma"))) static inline __m512
exp512(__m512 x) {
    /* max/min return their second operand when one is NaN: keep x second so NaN survives */
    x = _mm512_min_ps(_mm512_set1_ps(EXP_HI + 1.0f), x);
    x = _mm512_max_ps(_mm512_set1_ps(EXP_LO - 1.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C1), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C2), r);
    __m512 z = _mm512_mul_ps(r, r);
    __m512 y = _mm512_set1_ps(P0);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(P1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(P2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(P3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(P4));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(P5));
    y = _mm512_fmadd_ps(y, z, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n); /* overflow -> inf, underflow -> denormal/0 */
}

__attribute__((target("avx2,fma,f16c"))) static inline __m256 exp256(__m256 x) {
    __m256 xin = x;
    x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), x);
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(C1), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(C2), r);
    __m256 z = _mm256_mul_ps(r, r);
    __m256 y = _mm256_set1_ps(P0);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(P1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(P2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(P3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(P4));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(P5));
    y = _mm256_fmadd_ps(y, z, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* 2^n through the exponent bits; n in [-126, 128] after the clamp above.  2^128 is not
     * representable: split n into two halves. */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i h1 = _mm256_srai_epi32(ni, 1);
    __m256i h2 = _mm256_sub_epi32(ni, h1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h1, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h2, _mm256_set1_epi32(127)), 23));
    y = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
    /* the tails the clamp cut off: true underflow and overflow, and NaN */
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(xin, _mm256_set1_ps(-87.0f), _CMP_LT_OQ));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(xin, _mm256_set1_ps(EXP_HI), _CMP_GT_OQ));
    y = _mm256_blendv_ps(y, xin, _mm256_cmp_ps(xin, xin, _CMP_UNORD_Q));
    return y;
}

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma"))) static void
exp_avx512(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, exp512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

__attribute__((target("avx2,fma,f16c"))) static void exp_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float t[8] = {0};
        memcpy(t, x + i, (size_t)(n - i) * 4);
        _mm256_storeu_ps(t, exp256(_mm256_loadu_ps(t)));
        memcpy(y + i, t, (size_t)(n - i) * 4);
    }
}
#endif

/* y = exp(x - sub), returning the sum of y: one pass for softmax rows. */
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma"))) static float
exp_sum_avx512(float *y, const float *x, float sub, int64_t n) {
    __m512 acc = _mm512_setzero_ps(), sv = _mm512_set1_ps(sub);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), sv));
        _mm512_storeu_ps(y + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), sv));
        _mm512_mask_storeu_ps(y + i, m, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, e));
    }
    return _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma"))) static float
max_avx512(const float *x, int64_t n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_max_ps(m, v);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_max_ps(m, v);
    }
    return nan ? NAN : _mm512_reduce_max_ps(m);
}

__attribute__((target("avx2,fma,f16c"))) static float exp_sum_avx2(float *y, const float *x,
                                                                   float sub, int64_t n) {
    __m256 acc = _mm256_setzero_ps(), sv = _mm256_set1_ps(sub);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), sv));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float t[8];
    _mm256_storeu_ps(t, acc);
    float s = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    for (; i < n; i++) {
        y[i] = expf(x[i] - sub);
        s += y[i];
    }
    return s;
}

void sisa_fast_exp(float *y, const float *x, int64_t n) {
#if SISA_X86
    sisa_fast_isa isa = sisa_fast_get_isa();
    if (isa == SISA_FAST_ISA_AVX512) {
        exp_avx512(y, x, n);
        return;
    }
    if (isa == SISA_FAST_ISA_AVX2) {
        exp_avx2(y, x, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

/* ---- sums: 16 independent partial sums over blocks of 256, blocks combined pairwise ---- */

#define SUM_BLOCK 256

static float sum_block(const float *x, int64_t n, int sq) {
    float acc[16] = {0};
    int64_t i = 0;
    if (sq) {
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) acc[k] += x[i + k] * x[i + k];
        for (; i < n; i++) acc[0] += x[i] * x[i];
    } else {
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) acc[k] += x[i + k];
        for (; i < n; i++) acc[0] += x[i];
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) acc[k] += acc[k + w];
    return acc[0];
}

static float sum_rec(const float *x, int64_t n, int sq) {
    if (n <= SUM_BLOCK) return sum_block(x, n, sq);
    int64_t half = ((n / 2) + SUM_BLOCK - 1) / SUM_BLOCK * SUM_BLOCK;
    return sum_rec(x, half, sq) + sum_rec(x + half, n - half, sq);
}

float sisa_fast_sum(const float *x, int64_t n) { return n > 0 ? sum_rec(x, n, 0) : 0.0f; }
float sisa_fast_sumsq(const float *x, int64_t n) { return n > 0 ? sum_rec(x, n, 1) : 0.0f; }

float sisa_fast_exp_sum(float *y, const float *x, float sub, int64_t n) {
#if SISA_X86
    sisa_fast_isa isa = sisa_fast_get_isa();
    if (n <= 1024) { /* 16 lanes of <= 64 terms: accurate; longer rows take the blocked sum */
        if (isa == SISA_FAST_ISA_AVX512) return exp_sum_avx512(y, x, sub, n);
        if (isa == SISA_FAST_ISA_AVX2) return exp_sum_avx2(y, x, sub, n);
    }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = x[i] - sub;
    sisa_fast_exp(y, y, n);
    return sisa_fast_sum(y, n);
}

float sisa_fast_max(const float *x, int64_t n) {
#if SISA_X86
    if (sisa_fast_get_isa() == SISA_FAST_ISA_AVX512) return max_avx512(x, n);
#endif
    float m[16];
    for (int k = 0; k < 16; k++) m[k] = -INFINITY;
    int64_t i = 0;
    int nan = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) {
            float v = x[i + k];
            nan |= v != v;
            m[k] = v > m[k] ? v : m[k];
        }
    for (; i < n; i++) {
        nan |= x[i] != x[i];
        m[0] = x[i] > m[0] ? x[i] : m[0];
    }
    if (nan) return NAN;
    for (int k = 1; k < 16; k++) m[0] = m[k] > m[0] ? m[k] : m[0];
    return m[0];
}
