/*
 * mma.cl — the warp-level matrix multiply-accumulate both tensor-core kernels use (gemm.cl,
 * sdpa_mma.cl): D(16x8, f32) += A(16x16) · B(16x8), operands bf16 (or f16 with MMA_F16=1), two
 * per 32-bit word, f32 accumulation — PTX's mma.sync.aligned.m16n8k16.row.col.
 *
 * MMA_PTX=1: NVIDIA only (compute capability >= 8.0): the instruction itself through inline PTX,
 *            which NVIDIA's OpenCL compiler passes through (the host selects this; ocl_select.c).
 * MMA_PTX=0: an emulation with the same register layout, through local memory and work-group
 *            barriers, so the kernels' fragment indexing runs (slowly) on any device — the tests
 *            force it on PoCL (SISA_CL_MMA=emulate). Every call must be reached by the whole
 *            work-group (uniform control flow), which both kernels guarantee.
 *
 * Fragment layout (PTX ISA, "Matrix Fragments for mma.m16n8k16"), lane = 4·g + t:
 *   A: a0 = (row g,   k 2t..2t+1)  a1 = (row g+8, k 2t..2t+1)
 *      a2 = (row g,   k 2t+8..+9)  a3 = (row g+8, k 2t+8..+9)
 *   B: b0 = (k 2t..2t+1, col g)    b1 = (k 2t+8..+9, col g)       (B stored col-major: N×K)
 *   C: c0, c1 = (row g, cols 2t, 2t+1)   c2, c3 = (row g+8, cols 2t, 2t+1)
 * The lower 16 bits of a word hold the lower k.
 */
#ifndef MMA_PTX
#define MMA_PTX 0
#endif
#ifndef MMA_F16
#define MMA_F16 0
#endif

/* 16-bit storage code -> f32 (bf16: the upper half of an f32; f16: IEEE half) */
inline float mma_h2f(uint h) {
#if MMA_F16
    const uint s = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return as_float(s | 0x7f800000u | (m << 13));
    if (e != 0) return as_float(s | ((e + 112u) << 23) | (m << 13));
    return as_float(s) + (float)m * 5.9604644775390625e-8f; /* subnormal: m · 2^-24 */
#else
    return as_float(h << 16);
#endif
}

/* f32 -> 16-bit storage code, round to nearest even (bf16 as tensor.c; f16 via vstore_half_rte) */
inline uint mma_f2h(float f) {
#if MMA_F16
    ushort h;
    vstore_half_rte(f, 0, (__private half *)&h);
    return h;
#else
    return sisa_f32_to_bf16(f);
#endif
}

inline uint mma_pack(float lo, float hi) { return mma_f2h(lo) | (mma_f2h(hi) << 16); }

#if MMA_PTX
#if MMA_F16
#define MMA_INSN "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
#else
#define MMA_INSN "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
#endif
/* c[0..3] += A·B; scr is unused (the emulation's scratch) */
#define MMA(c, a0, a1, a2, a3, b0, b1, scr)                                                      \
    asm volatile(MMA_INSN "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"             \
                 : "=f"((c)[0]), "=f"((c)[1]), "=f"((c)[2]), "=f"((c)[3])                        \
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"((c)[0]),            \
                   "f"((c)[1]), "f"((c)[2]), "f"((c)[3]))
#define MMA_SCRATCH_DECL
#define MMA_SCR(warp) 0
/* butterfly exchange across the lanes of a warp (all 32 lanes take part) */
inline float warp_xor(float v, int mask) {
    float r;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(mask));
    return r;
}
#define WARP_XOR(v, mask, scr) warp_xor((v), (mask))
#else
/* per warp: A as 16×16 floats, B as 8×16 (col-major) floats, one exchange slot per lane */
#define MMA_SCR_FLOATS (16 * 16 + 8 * 16 + 32)
#define MMA_SCRATCH_DECL __local float mma_scr[(MMA_WG / 32) * MMA_SCR_FLOATS];
#define MMA_SCR(warp) (mma_scr + (warp) * MMA_SCR_FLOATS)
inline void mma_emulate(float *c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1,
                        __local float *scr) {
    const int lane = get_local_id(0) & 31, g = lane >> 2, t = lane & 3;
    __local float *A = scr, *B = scr + 256;
    A[g * 16 + 2 * t] = mma_h2f(a0 & 0xffffu), A[g * 16 + 2 * t + 1] = mma_h2f(a0 >> 16);
    A[(g + 8) * 16 + 2 * t] = mma_h2f(a1 & 0xffffu), A[(g + 8) * 16 + 2 * t + 1] = mma_h2f(a1 >> 16);
    A[g * 16 + 2 * t + 8] = mma_h2f(a2 & 0xffffu), A[g * 16 + 2 * t + 9] = mma_h2f(a2 >> 16);
    A[(g + 8) * 16 + 2 * t + 8] = mma_h2f(a3 & 0xffffu);
    A[(g + 8) * 16 + 2 * t + 9] = mma_h2f(a3 >> 16);
    B[g * 16 + 2 * t] = mma_h2f(b0 & 0xffffu), B[g * 16 + 2 * t + 1] = mma_h2f(b0 >> 16);
    B[g * 16 + 2 * t + 8] = mma_h2f(b1 & 0xffffu), B[g * 16 + 2 * t + 9] = mma_h2f(b1 >> 16);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = 0; k < 16; k++) {
        const float x0 = A[g * 16 + k], x1 = A[(g + 8) * 16 + k];
        const float y0 = B[(2 * t) * 16 + k], y1 = B[(2 * t + 1) * 16 + k];
        c[0] = fma(x0, y0, c[0]);
        c[1] = fma(x0, y1, c[1]);
        c[2] = fma(x1, y0, c[2]);
        c[3] = fma(x1, y1, c[3]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}
#define MMA(c, a0, a1, a2, a3, b0, b1, scr) mma_emulate((c), (a0), (a1), (a2), (a3), (b0), (b1), (scr))
/* the emulation's butterfly: through the warp's exchange slots (uniform control flow) */
inline float warp_xor_emu(float v, int mask, __local float *scr) {
    __local float *x = scr + 256 + 128;
    const int lane = get_local_id(0) & 31;
    x[lane] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    const float r = x[lane ^ mask];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}
#define WARP_XOR(v, mask, scr) warp_xor_emu((v), (mask), (scr))
#endif
