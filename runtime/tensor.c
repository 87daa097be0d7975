/*
 * tensor.c — dtypes, scalar conversions and shape helpers (see tensor.h).
 * The bf16/f16 conversions are written out (round-to-nearest-even, NaN kept NaN) so that every
 * backend and the oracle agree bit for bit on what "rounded to bf16" means.
 */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t sisa_dtype_size(sisa_dtype t) {
    switch (t) {
    case SISA_F32: return 4;
    case SISA_F16: return 2;
    case SISA_BF16: return 2;
    case SISA_I32: return 4;
    case SISA_F64: return 8;
    default: return 0;
    }
}

const char *sisa_dtype_name(sisa_dtype t) {
    switch (t) {
    case SISA_F32: return "f32";
    case SISA_F16: return "f16";
    case SISA_BF16: return "bf16";
    case SISA_I32: return "i32";
    case SISA_F64: return "f64";
    default: return "?";
    }
}

bool sisa_dtype_is_float(sisa_dtype t) { return t != SISA_I32 && t < SISA_DTYPE_COUNT; }

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float sisa_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t sisa_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float sisa_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t sisa_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;            /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u;           /* rounds to >= 65520: Inf */
    if (a < 0x38800000u) {                                 /* subnormal or zero in f16 */
        float v = bits_f32(a);
        /* scale so the f16 subnormal unit (2^-24) becomes 1, then round to nearest even */
        float r = nearbyintf(v * 16777216.0f);
        return sign | (uint16_t)r;
    }
    uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
    return sign | (uint16_t)((rounded - 0x38000000u) >> 13);
}

double sisa_load_elem(const void *p, sisa_dtype t) {
    switch (t) {
    case SISA_F32: { float v; memcpy(&v, p, 4); return v; }
    case SISA_F16: { uint16_t h; memcpy(&h, p, 2); return sisa_f16_to_f32(h); }
    case SISA_BF16: { uint16_t h; memcpy(&h, p, 2); return sisa_bf16_to_f32(h); }
    case SISA_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case SISA_F64: { double v; memcpy(&v, p, 8); return v; }
    default: return NAN;
    }
}

void sisa_store_elem(void *p, sisa_dtype t, double v) {
    switch (t) {
    case SISA_F32: { float f = (float)v; memcpy(p, &f, 4); break; }
    case SISA_F16: { uint16_t h = sisa_f32_to_f16((float)v); memcpy(p, &h, 2); break; }
    case SISA_BF16: { uint16_t h = sisa_f32_to_bf16((float)v); memcpy(p, &h, 2); break; }
    case SISA_I32: { int32_t i = (int32_t)v; memcpy(p, &i, 4); break; }
    case SISA_F64: memcpy(p, &v, 8); break;
    default: break;
    }
}

int64_t sisa_tensor_nelements(const sisa_tensor *t) {
    return t->shape[0] * t->shape[1] * t->shape[2] * t->shape[3];
}

size_t sisa_tensor_span_bytes(const sisa_tensor *t) {
    if (sisa_tensor_nelements(t) == 0) return 0;
    size_t last = 0;
    for (int i = 0; i < SISA_MAX_DIMS; i++) last += (size_t)((t->shape[i] - 1) * t->stride[i]);
    return last + sisa_dtype_size(t->dtype);
}

bool sisa_tensor_is_contiguous(const sisa_tensor *t) {
    int64_t expect = (int64_t)sisa_dtype_size(t->dtype);
    for (int i = SISA_MAX_DIMS - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) return false;
        expect *= t->shape[i];
    }
    return true;
}

void sisa_tensor_set_contiguous(sisa_tensor *t) {
    int64_t s = (int64_t)sisa_dtype_size(t->dtype);
    for (int i = SISA_MAX_DIMS - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

const char *sisa_tensor_describe(const sisa_tensor *t, char *buf, size_t len) {
    snprintf(buf, len, "'%s' %s[%lld,%lld,%lld,%lld]%s", t->name[0] ? t->name : "(unnamed)",
             sisa_dtype_name(t->dtype), (long long)t->shape[0], (long long)t->shape[1],
             (long long)t->shape[2], (long long)t->shape[3],
             sisa_tensor_is_contiguous(t) ? "" : " (strided)");
    return buf;
}
