/*
 * common.cl — prepended to every program: storage-type macros, tensor arguments, rounding.
 *
 * Storage dtypes are chosen per argument at build time (-DT_D, -DT_S0.. = 0 f32, 1 f16, 2 bf16,
 * 3 i32), so one source serves every dtype combination. All arithmetic is fp32 (fp64 where the
 * host passes USE_F64=1 and a kernel wants it for scans and angles): f16 is read and written
 * with the core vload_half/vstore_half_rte (no cl_khr_fp16 needed), bf16 as the upper 16 bits
 * of an f32 with round-to-nearest-even on store (tensor.c's rule, bit for bit).
 *
 * A tensor argument is three kernel arguments: pointer, element offset, element strides
 * (long4, outermost first) — any strided view the graph can express.
 */
#if USE_F64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double acc_t; /* precise scalar type: prefix sums, angles */
#else
typedef float acc_t;
#endif
#if HAS_FP16
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif

#ifndef T_D
#define T_D 0
#endif
#ifndef T_S0
#define T_S0 0
#endif
#ifndef T_S1
#define T_S1 0
#endif
#ifndef T_S2
#define T_S2 0
#endif
#ifndef T_S5
#define T_S5 0
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

#define STORAGE_0 float
#define STORAGE_1 half
#define STORAGE_2 ushort
#define STORAGE_3 int
#define GPTR(T) __global CAT(STORAGE_, T) *
#define CGPTR(T) __global const CAT(STORAGE_, T) *

#define LD_0(p, i) ((p)[i])
#define LD_1(p, i) vload_half((size_t)(i), (p))
#define LD_2(p, i) as_float((uint)(p)[i] << 16)
#define LD_3(p, i) ((float)(p)[i])
/* element i (already offset) of pointer p whose storage dtype is T, as float */
#define LD(T, p, i) CAT(LD_, T)(p, i)

inline ushort sisa_f32_to_bf16(float f) {
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

#define STORE_0(p, i, v) ((p)[i] = (v))
#define STORE_1(p, i, v) vstore_half_rte((v), (size_t)(i), (p))
#define STORE_2(p, i, v) ((p)[i] = sisa_f32_to_bf16(v))
#define STORE_3(p, i, v) ((p)[i] = (int)(v))
#define STORE(T, p, i, v) CAT(STORE_, T)(p, i, v)

/* Tensor arguments: a source (any strides) and a contiguous destination. */
#define TARG(T, n) CGPTR(T) n, const long n##_off, const long4 n##_st
#define FARG(n) __global const float *n, const long n##_off, const long4 n##_st
#define DARG(T, n) GPTR(T) n, const long n##_off
#define AT(n, i0, i1, i2, i3) \
    (n##_off + (long)(i0) * n##_st.s0 + (long)(i1) * n##_st.s1 + (long)(i2) * n##_st.s2 + \
     (long)(i3) * n##_st.s3)

/* softplus(x) = log(1 + e^x) without overflow (ref.h's form) */
inline acc_t sisa_softplus(acc_t x) {
    return (x > (acc_t)0 ? x : (acc_t)0) + log1p(exp(-fabs(x)));
}
