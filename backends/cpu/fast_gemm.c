/*
 * fast_gemm.c — SGEMM for the CPU fast path: C = A·Bᵀ (MATMUL's a·bᵀ, y = x·Wᵀ with W stored
 * [out, in]), fp32 accumulation, B in f32, bf16 or f16 (converted while packing).
 *
 * Own kernel, not a BLAS (DESIGN.md allows an optional one; the default build has none):
 *  - No dependency: a BLAS is one more library to find, version and ship, and its threading
 *    (OpenMP or its own pthreads) fights with ours — the graph already runs kernels on our pool.
 *  - Weights are bf16/f16 in published checkpoints. sgemm needs f32 operands, so a BLAS would
 *    need the whole weight converted to f32 first (2x the memory or a conversion pass per call);
 *    here the conversion happens inside the B packing that any blocked GEMM does anyway.
 *  - The same packer + register kernel are reused by SDPA (S = Q·Kᵀ and O += P·V per tile),
 *    which a BLAS call per tile would make slow.
 *  - It is as fast as a tuned BLAS on the shapes that matter. tools/bench/bench_gemm (OpenBLAS by
 *    dlopen, no link dependency), 2026-11-23, the 2-core AVX-512 CI machine (AMD EPYC, Zen 5),
 *    2 threads, GFLOP/s, `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE bench_gemm` (the machine's
 *    environment forces OPENBLAS_CORETYPE=Haswell; unset, OpenBLAS 0.3.21 picks Cooperlake):
 *        M x N x K             ours f32   ours bf16-B   OpenBLAS
 *        512 x 2304 x 768        384.2       419.1        419.9
 *        512 x  768 x 768        445.9       454.0        431.0
 *        512 x 2908 x 768        421.4       436.7        404.3
 *        512 x  768 x 2908       416.1       423.7        397.3
 *        512 x 50277 x 768       423.2       439.6        410.4
 *        2048^3                  384.6       404.7        445.2
 *    (run-to-run noise on this shared machine is ~5%). One thread: 204-233 vs OpenBLAS 210-226;
 *    the register kernel alone reaches ~256 GFLOP/s per core from L2. The SISA-152M (d_s = 16)
 *    forward at T = 512 then runs at 417 GFLOP/s (`sisa bench`, 0.386 s), ~90% of the best
 *    SGEMM rate measured on the machine.
 *
 * Structure (Goto/BLIS style, with A left unpacked):
 *  - B is packed into panels of NR columns: for each k, NR consecutive floats (so the kernel's
 *    B loads are aligned vectors). Packing B[N,K] is a transpose; the AVX-512 packer does it
 *    16x16 in registers, converting bf16/f16 on the way.
 *  - A stays where it is when it is f32 with unit stride in k: the kernel broadcasts A[i][k]
 *    straight from MR rows (hardware prefetch follows MR streams fine), so activations are
 *    never copied. Other A (strided, f16/bf16) is converted once into a contiguous f32 copy.
 *  - Register tile MR x NR: AVX-512 12 x 32 (24 zmm accumulators), AVX2 6 x 16 (12 ymm), plain
 *    C 4 x 16. Blocking: KC = 384 (a 48 KiB B panel, L1-sized, reused by every MR-row slice of
 *    A), rows in blocks of 264 (A block 264 x 384 f32 = 396 KiB, plus the task's packed B
 *    chunk, in the 1 MiB L2). Measured against KC = 256 / 528 rows on the bench shapes: 2-6%
 *    faster on every one.
 *  - Threads: tasks = (batch, row block, column chunk); column chunks are balanced (their count
 *    a multiple of the thread count, sizes differing by at most one panel); each task packs its
 *    own B chunk, so tasks share nothing but A (read-only) and write disjoint C.
 *  - Few rows (M < 8: decode) skip packing: each B row is converted once and dotted with the
 *    M rows of A (memory-bound, like any GEMV).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fast_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define SISA_X86 1
#include <immintrin.h>
#else
#define SISA_X86 0
#endif

#define T512 "avx512f,avx512dq,avx512vl,avx512bw,fma,f16c"
#define T256 "avx2,fma,f16c"

#define KC 384
#define MB_ROWS 264 /* multiple of every MR (12, 6, 4) */
#define MAX_PANELS_PER_TASK 8
#define SMALL_M 8

/* ================================================================================================
 * Packing B panels (any dtype, any strides): the generic packer.
 * ============================================================================================== */

static void pack_b_generic(float *Bp, int nr, sisa_fast_mat B, int64_t j0, int64_t n, int64_t k0,
                           int64_t kc) {
    size_t es = sisa_dtype_size(B.dt);
    const char *base = (const char *)B.p;
    if (B.rs == (int64_t)es && n > 1) {
        /* B rows adjacent: each k gives n contiguous values — a plain copy per k */
        for (int64_t kk = 0; kk < kc; kk++) {
            float *dst = Bp + kk * nr;
            const char *src = base + (k0 + kk) * B.cs + j0 * B.rs;
            if (B.dt == SISA_F32) { /* short rows: an inline copy beats a memcpy call */
                const float *sf = (const float *)src;
                for (int64_t jj = 0; jj < n; jj++) dst[jj] = sf[jj];
            } else {
                sisa_fast_load_row(dst, src, B.dt, B.rs, n);
            }
            for (int64_t jj = n; jj < nr; jj++) dst[jj] = 0.0f;
        }
        return;
    }
    float tmp[KC];
    for (int64_t kb = 0; kb < kc; kb += KC) {
        int64_t kn = kc - kb < KC ? kc - kb : KC;
        for (int64_t jj = 0; jj < nr; jj++) {
            if (jj < n) {
                sisa_fast_load_row(tmp, base + (j0 + jj) * B.rs + (k0 + kb) * B.cs, B.dt, B.cs, kn);
                for (int64_t kk = 0; kk < kn; kk++) Bp[(kb + kk) * nr + jj] = tmp[kk];
            } else {
                for (int64_t kk = 0; kk < kn; kk++) Bp[(kb + kk) * nr + jj] = 0.0f;
            }
        }
    }
}

static void pack_b_c16(float *Bp, sisa_fast_mat B, int64_t j0, int64_t n, int64_t k0, int64_t kc) {
    pack_b_generic(Bp, 16, B, j0, n, k0, kc);
}

/* ================================================================================================
 * Plain C: 4 x 16 tile, written so the compiler can vectorise the j loop for any target.
 * ============================================================================================== */

#define C_MR 4
#define C_NR 16

static void kernel_c(int64_t kc, const float *A, int64_t lda, const float *Bp, float *C,
                     int64_t ldc, int m, int n, int accumulate) {
    float acc[C_MR][C_NR] = {{0}};
    const float *a[C_MR];
    for (int r = 0; r < C_MR; r++) a[r] = A + (r < m ? r : 0) * lda;
    for (int64_t k = 0; k < kc; k++) {
        const float *b = Bp + k * C_NR;
        for (int r = 0; r < C_MR; r++) {
            float av = a[r][k];
            for (int j = 0; j < C_NR; j++) acc[r][j] += av * b[j];
        }
    }
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) C[r * ldc + j] = accumulate ? C[r * ldc + j] + acc[r][j] : acc[r][j];
}

static void dots_c(const float *b, const float *A, int64_t lda, int m, int64_t K, float *out) {
    for (int r = 0; r < m; r++) {
        float acc[16] = {0};
        const float *a = A + r * lda;
        int64_t k = 0;
        for (; k + 16 <= K; k += 16)
            for (int t = 0; t < 16; t++) acc[t] += a[k + t] * b[k + t];
        for (; k < K; k++) acc[0] += a[k] * b[k];
        for (int w = 8; w >= 1; w /= 2)
            for (int t = 0; t < w; t++) acc[t] += acc[t + w];
        out[r] = acc[0];
    }
}

#if SISA_X86
/* ================================================================================================
 * AVX2: 6 x 16 tile (12 ymm accumulators + 2 B vectors + 1 broadcast of 16 registers).
 * ============================================================================================== */

#define A2_MR 6
#define A2_NR 16

__attribute__((target(T256))) static void kernel_avx2(int64_t kc, const float *A, int64_t lda,
                                                      const float *Bp, float *C, int64_t ldc, int m,
                                                      int n, int accumulate) {
    __m256 acc[A2_MR][2];
    const float *a[A2_MR];
#pragma GCC unroll 8
    for (int r = 0; r < A2_MR; r++) {
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        a[r] = A + (r < m ? r : 0) * lda;
    }
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(Bp + k * A2_NR), b1 = _mm256_load_ps(Bp + k * A2_NR + 8);
#pragma GCC unroll 8
        for (int r = 0; r < A2_MR; r++) {
            __m256 av = _mm256_broadcast_ss(a[r] + k);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    if (m == A2_MR && n == A2_NR) {
#pragma GCC unroll 8
        for (int r = 0; r < A2_MR; r++) {
            float *c = C + r * ldc;
            if (accumulate) {
                acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_loadu_ps(c));
                acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_loadu_ps(c + 8));
            }
            _mm256_storeu_ps(c, acc[r][0]);
            _mm256_storeu_ps(c + 8, acc[r][1]);
        }
        return;
    }
    float t[A2_MR][A2_NR];
#pragma GCC unroll 8
    for (int r = 0; r < A2_MR; r++) {
        _mm256_storeu_ps(t[r], acc[r][0]);
        _mm256_storeu_ps(t[r] + 8, acc[r][1]);
    }
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) C[r * ldc + j] = accumulate ? C[r * ldc + j] + t[r][j] : t[r][j];
}

__attribute__((target(T256))) static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target(T256))) static void dots_avx2(const float *b, const float *A, int64_t lda,
                                                    int m, int64_t K, float *out) {
    for (int r = 0; r < m; r++) {
        const float *a = A + r * lda;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), s1);
        }
        float s = hsum256(_mm256_add_ps(s0, s1));
        for (; k < K; k++) s += a[k] * b[k];
        out[r] = s;
    }
}

static void pack_b_avx2(float *Bp, sisa_fast_mat B, int64_t j0, int64_t n, int64_t k0, int64_t kc) {
    pack_b_generic(Bp, A2_NR, B, j0, n, k0, kc);
}

/* ================================================================================================
 * AVX-512: 12 x 32 tile (24 zmm accumulators, 2 B vectors, 1 broadcast). At this tile the loop
 * issues 24 FMAs per 14 loads, so it is FMA-bound: measured at the core's peak (2 x 512-bit FMA
 * per cycle) with A streaming from L2.
 * ============================================================================================== */

#define A5_MR 12
#define A5_NR 32

__attribute__((target(T512))) static void kernel_avx512(int64_t kc, const float *A, int64_t lda,
                                                        const float *Bp, float *C, int64_t ldc,
                                                        int m, int n, int accumulate) {
    __m512 acc[A5_MR][2];
    const float *a[A5_MR];
#pragma GCC unroll 16
    for (int r = 0; r < A5_MR; r++) {
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
        a[r] = A + (r < m ? r : 0) * lda;
        /* C is read (or written) after the loop: start fetching its lines now */
        _mm_prefetch((const char *)(C + (r < m ? r : 0) * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + (r < m ? r : 0) * ldc + 16), _MM_HINT_T0);
    }
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(Bp + k * A5_NR), b1 = _mm512_load_ps(Bp + k * A5_NR + 16);
#pragma GCC unroll 16
        for (int r = 0; r < A5_MR; r++) {
            __m512 av = _mm512_set1_ps(a[r][k]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    __mmask16 m0 = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
    __mmask16 m1 = n >= 32 ? 0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
#pragma GCC unroll 16
    for (int r = 0; r < A5_MR; r++) {
        if (r >= m) break;
        float *c = C + r * ldc;
        if (accumulate) {
            acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(m0, c));
            acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, acc[r][0]);
        _mm512_mask_storeu_ps(c + 16, m1, acc[r][1]);
    }
}

__attribute__((target(T512))) static void dots_avx512(const float *b, const float *A, int64_t lda,
                                                      int m, int64_t K, float *out) {
    int r = 0;
    for (; r + 4 <= m; r += 4) {
        const float *a0 = A + r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            __m512 bv = _mm512_loadu_ps(b + k);
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a0 + k), bv, s0);
            s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a1 + k), bv, s1);
            s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a2 + k), bv, s2);
            s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a3 + k), bv, s3);
        }
        if (k < K) {
            __mmask16 mk = (__mmask16)((1u << (K - k)) - 1);
            __m512 bv = _mm512_maskz_loadu_ps(mk, b + k);
            s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a0 + k), bv, s0);
            s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a1 + k), bv, s1);
            s2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a2 + k), bv, s2);
            s3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a3 + k), bv, s3);
        }
        out[r] = _mm512_reduce_add_ps(s0);
        out[r + 1] = _mm512_reduce_add_ps(s1);
        out[r + 2] = _mm512_reduce_add_ps(s2);
        out[r + 3] = _mm512_reduce_add_ps(s3);
    }
    for (; r < m; r++) {
        const float *a0 = A + r * lda;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0;
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a0 + k), _mm512_loadu_ps(b + k), s0);
            s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a0 + k + 16), _mm512_loadu_ps(b + k + 16), s1);
        }
        for (; k < K; k += 16) {
            __mmask16 mk = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
            s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a0 + k), _mm512_maskz_loadu_ps(mk, b + k), s0);
        }
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    }
}

/* 16 rows of 16 values (rows = B rows j, values along k) -> 16 vectors along j, one per k. */
__attribute__((target(T512))) static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    __m512 u[16];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* u[4g + c] lane L = column 4L + c of rows 4g..4g+3 */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512 x0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
        __m512 x1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xee);
        __m512 y0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
        __m512 y1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xee);
        r[c] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(x0, y0, 0xdd);
        r[8 + c] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(x1, y1, 0xdd);
    }
}

__attribute__((target(T512))) static inline __m512 load16(const char *p, sisa_dtype dt, __mmask16 mk) {
    switch (dt) {
    case SISA_BF16:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, p)), 16));
    case SISA_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, p));
    default: return _mm512_maskz_loadu_ps(mk, p);
    }
}

/* Transposing packer for B with unit stride along k (the weight layout [N, K]). */
__attribute__((target(T512))) static void pack_b_avx512(float *Bp, sisa_fast_mat B, int64_t j0,
                                                        int64_t n, int64_t k0, int64_t kc) {
    size_t es = sisa_dtype_size(B.dt);
    if (B.cs != (int64_t)es || (B.dt != SISA_F32 && B.dt != SISA_BF16 && B.dt != SISA_F16)) {
        pack_b_generic(Bp, A5_NR, B, j0, n, k0, kc);
        return;
    }
    const char *base = (const char *)B.p + j0 * B.rs + k0 * B.cs;
    for (int64_t kb = 0; kb < kc; kb += 16) {
        int kn = kc - kb >= 16 ? 16 : (int)(kc - kb);
        __mmask16 mk = (__mmask16)(kn == 16 ? 0xffff : (1u << kn) - 1);
        for (int g = 0; g < 2; g++) {
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) {
                int64_t jj = g * 16 + i;
                if (jj < n) _mm_prefetch(base + jj * B.rs + (kb + 64) * (int64_t)es, _MM_HINT_T0);
                r[i] = jj < n ? load16(base + jj * B.rs + kb * (int64_t)es, B.dt, mk)
                              : _mm512_setzero_ps();
            }
            transpose16(r);
            float *dst = Bp + kb * A5_NR + g * 16;
            for (int i = 0; i < kn; i++) _mm512_store_ps(dst + i * A5_NR, r[i]);
        }
    }
}
#endif /* SISA_X86 */

/* ================================================================================================
 * Kits and dispatch
 * ============================================================================================== */

typedef void (*dots_fn)(const float *b, const float *A, int64_t lda, int m, int64_t K, float *out);

typedef struct gemm_impl {
    sisa_fast_gemm_kit kit;
    dots_fn dots;
} gemm_impl;

static const gemm_impl impl_c = {{C_MR, C_NR, pack_b_c16, kernel_c}, dots_c};
#if SISA_X86
static const gemm_impl impl_avx2 = {{A2_MR, A2_NR, pack_b_avx2, kernel_avx2}, dots_avx2};
static const gemm_impl impl_avx512 = {{A5_MR, A5_NR, pack_b_avx512, kernel_avx512}, dots_avx512};
#endif

static const gemm_impl *impl_get(void) {
#if SISA_X86
    switch (sisa_fast_get_isa()) {
    case SISA_FAST_ISA_AVX512: return &impl_avx512;
    case SISA_FAST_ISA_AVX2: return &impl_avx2;
    default: break;
    }
#endif
    return &impl_c;
}

const sisa_fast_gemm_kit *sisa_fast_gemm_kit_get(void) { return &impl_get()->kit; }

/* ================================================================================================
 * Driver
 * ============================================================================================== */

typedef struct gemm_job {
    const gemm_impl *im;
    int64_t M, N, K;
    int64_t nbatch;
    /* per batch b: A rows at a_base + a_off(b) (f32, k contiguous, row stride lda elements) */
    const float *A;
    int64_t lda;
    int64_t a_bstride; /* elements between batches of A */
    sisa_fast_mat B;
    int64_t b_bstride; /* bytes between batches of B (0: broadcast) */
    float *C;
    int64_t ldc, c_bstride; /* elements */
    int accumulate;
    /* tiling */
    int64_t n_panels, n_chunks, n_mblocks, mb_rows;
    sisa_cpu_pool *pool; /* per-thread packing buffers: its SISA_FAST_SLOT_TASK scratch */
    int failed;
} gemm_job;

static void gemm_task(int64_t t, int tid, void *varg) {
    gemm_job *J = varg;
    const sisa_fast_gemm_kit *kit = &J->im->kit;
    const int mr = kit->mr, nr = kit->nr;
    int64_t chunk = t % J->n_chunks;
    int64_t rest = t / J->n_chunks;
    int64_t mb = rest % J->n_mblocks;
    int64_t b = rest / J->n_mblocks;

    int64_t p0 = chunk * J->n_panels / J->n_chunks, p1 = (chunk + 1) * J->n_panels / J->n_chunks;
    int64_t j0 = p0 * nr, j1 = p1 * nr < J->N ? p1 * nr : J->N;
    int64_t i0 = mb * J->mb_rows, i1 = i0 + J->mb_rows < J->M ? i0 + J->mb_rows : J->M;
    if (j0 >= j1) return;

    size_t bytes = (size_t)KC * (MAX_PANELS_PER_TASK + 1) * (size_t)nr * sizeof(float);
    float *Bp = sisa_fast_scratch(J->pool, tid, SISA_FAST_SLOT_TASK, bytes);
    if (!Bp) {
        J->failed = 1;
        return;
    }
    const float *A = J->A + b * J->a_bstride;
    sisa_fast_mat B = J->B;
    B.p = (const char *)B.p + b * J->b_bstride;
    float *C = J->C + b * J->c_bstride;

    for (int64_t pc = 0; pc < J->K; pc += KC) {
        int64_t kc = J->K - pc < KC ? J->K - pc : KC;
        int acc = J->accumulate || pc > 0;
        int64_t np = (j1 - j0 + nr - 1) / nr;
        for (int64_t p = 0; p < np; p++) {
            int64_t jj = j0 + p * nr;
            int64_t nn = j1 - jj < nr ? j1 - jj : nr;
            kit->pack_b(Bp + p * kc * nr, B, jj, nn, pc, kc);
        }
        for (int64_t p = 0; p < np; p++) {
            int64_t jj = j0 + p * nr;
            int nn = (int)(j1 - jj < nr ? j1 - jj : nr);
            const float *panel = Bp + p * kc * nr;
            for (int64_t i = i0; i < i1; i += mr) {
                int mm = (int)(i1 - i < mr ? i1 - i : mr);
                kit->kernel(kc, A + i * J->lda + pc, J->lda, panel, C + i * J->ldc + jj, J->ldc, mm,
                            nn, acc);
            }
        }
    }
    sisa_fast_scratch_done(J->pool, Bp);
}

/* Few rows: no packing. Task = (batch, chunk of B rows). */
#define DOT_CHUNK 64

static void dots_task(int64_t t, int tid, void *varg) {
    gemm_job *J = varg;
    int64_t nch = (J->N + DOT_CHUNK - 1) / DOT_CHUNK;
    int64_t b = t / nch, j0 = (t % nch) * DOT_CHUNK;
    int64_t j1 = j0 + DOT_CHUNK < J->N ? j0 + DOT_CHUNK : J->N;
    float *row = sisa_fast_scratch(J->pool, tid, SISA_FAST_SLOT_TASK, (size_t)(J->K + 16) * sizeof(float));
    if (!row) {
        J->failed = 1;
        return;
    }
    const float *A = J->A + b * J->a_bstride;
    const char *Bb = (const char *)J->B.p + b * J->b_bstride;
    float *C = J->C + b * J->c_bstride;
    float out[SMALL_M];
    for (int64_t j = j0; j < j1; j++) {
        const float *brow = sisa_fast_row_f32(row, Bb + j * J->B.rs, J->B.dt, J->B.cs, J->K);
        J->im->dots(brow, A, J->lda, (int)J->M, J->K, out);
        for (int64_t i = 0; i < J->M; i++)
            C[i * J->ldc + j] = J->accumulate ? C[i * J->ldc + j] + out[i] : out[i];
    }
    sisa_fast_scratch_done(J->pool, row);
}

/* Convert A (any dtype/strides) to contiguous f32, one task per (batch, row). */
typedef struct conv_job {
    const char *src;
    sisa_dtype dt;
    int64_t rs, cs, bstride_bytes;
    int64_t rows, K, ld; /* ld: row stride of the copy, in floats */
    float *dst;
} conv_job;

static void conv_task(int64_t t, int tid, void *varg) {
    (void)tid;
    conv_job *cj = varg;
    int64_t b = t / cj->rows, i = t % cj->rows;
    sisa_fast_load_row(cj->dst + t * cj->ld, cj->src + b * cj->bstride_bytes + i * cj->rs, cj->dt,
                       cj->cs, cj->K);
}

/* Batched: batch b uses A.p + b*a_bstride (bytes), B.p + b*b_bstride (bytes), C + b*c_bstride. */
static sisa_status gemm_batched(sisa_cpu_pool *pool, int64_t nbatch, int64_t M, int64_t N,
                                int64_t K, sisa_fast_mat A, int64_t a_bstride, sisa_fast_mat B,
                                int64_t b_bstride, float *C, int64_t ldc, int64_t c_bstride,
                                int accumulate) {
    if (M <= 0 || N <= 0 || nbatch <= 0) return SISA_OK;
    const gemm_impl *im = impl_get();
    int nth = sisa_fast_pool_threads(pool);
    gemm_job J = {.im = im, .M = M, .N = N, .K = K, .nbatch = nbatch, .B = B,
                  .b_bstride = b_bstride, .C = C, .ldc = ldc, .c_bstride = c_bstride,
                  .accumulate = accumulate};
    if (K <= 0) { /* empty sum */
        for (int64_t b = 0; b < nbatch; b++)
            for (int64_t i = 0; i < M; i++)
                if (!accumulate) memset(C + b * c_bstride + i * ldc, 0, (size_t)N * sizeof(float));
        return SISA_OK;
    }

    /* A is used in place when it is f32 with unit stride along k; otherwise it is converted
     * once into a contiguous f32 copy (rows padded to a multiple of 16 floats). (A copy with
     * rows padded off a 2 KiB multiple, against cache-set aliasing at K = 1024/2048, measured
     * no gain at 2048^3 and is not done.) */
    float *aconv = NULL;
    bool usable = A.dt == SISA_F32 && (A.cs == 4 || K == 1) && (A.rs % 4) == 0 &&
                  (a_bstride % 4) == 0 && ((uintptr_t)A.p & 3) == 0;
    if (usable) {
        J.A = A.p;
        J.lda = A.rs / 4;
        J.a_bstride = a_bstride / 4;
    } else {
        int64_t ld = (K + 15) / 16 * 16;
        aconv = sisa_fast_scratch(pool, 0, SISA_FAST_SLOT_SHARED0, (size_t)(nbatch * M * ld) * sizeof(float));
        if (!aconv)
            return sisa_err(SISA_OUT_OF_MEMORY, "cpu gemm: no memory to convert A (%lld x %lld)",
                            (long long)M, (long long)K);
        conv_job cj = {A.p, A.dt, A.rs, A.cs, a_bstride, M, K, ld, aconv};
        sisa_fast_pool_run(pool, nbatch * M, conv_task, &cj);
        J.A = aconv;
        J.lda = ld;
        J.a_bstride = M * ld;
    }

    J.pool = pool;

    if (M < SMALL_M) {
        int64_t nch = (N + DOT_CHUNK - 1) / DOT_CHUNK;
        sisa_fast_pool_run(pool, nbatch * nch, dots_task, &J);
    } else {
        const int nr = im->kit.nr, mr = im->kit.mr;
        J.n_panels = (N + nr - 1) / nr;
        J.mb_rows = MB_ROWS;
        J.n_mblocks = (M + MB_ROWS - 1) / MB_ROWS;
        /* Column chunks: a multiple of the thread count when the other dims do not already give
         * every thread work; never more than MAX_PANELS_PER_TASK panels each. */
        int64_t outer = nbatch * J.n_mblocks;
        int64_t per = (J.n_panels + MAX_PANELS_PER_TASK - 1) / MAX_PANELS_PER_TASK;
        if (outer < 4 * nth) {
            int64_t want = (4 * nth + outer - 1) / outer; /* ~4 tasks per thread in total */
            if (per < want) per = want;
            per = (per + nth - 1) / nth * nth;
        }
        if (per > J.n_panels) per = J.n_panels;
        J.n_chunks = per;
        /* Few columns (the SSM projections: N = 12..192): split the rows finer instead, each
         * task packing its own copy of the (small) B chunk. */
        if (outer * J.n_chunks < 4 * nth && M >= 8 * mr) {
            int64_t want_m = (4 * nth + nbatch * J.n_chunks - 1) / (nbatch * J.n_chunks);
            int64_t rows = (M + want_m - 1) / want_m;
            rows = (rows + mr - 1) / mr * mr;
            if (rows < 4 * mr) rows = 4 * mr;
            if (rows < J.mb_rows) {
                J.mb_rows = rows;
                J.n_mblocks = (M + rows - 1) / rows;
                outer = nbatch * J.n_mblocks;
            }
        }
        sisa_fast_pool_run(pool, outer * J.n_chunks, gemm_task, &J);
    }
    int failed = J.failed;
    if (aconv) sisa_fast_scratch_done(pool, aconv);
    if (failed) return sisa_err(SISA_OUT_OF_MEMORY, "cpu gemm: out of host memory for packing");
    return SISA_OK;
}

sisa_status sisa_fast_gemm(sisa_cpu_pool *pool, int64_t M, int64_t N, int64_t K, sisa_fast_mat A,
                           sisa_fast_mat B, float *C, int64_t ldc, int accumulate) {
    return gemm_batched(pool, 1, M, N, K, A, 0, B, 0, C, ldc, 0, accumulate);
}

/* ================================================================================================
 * MATMUL node: dst (A0,A1,M,N) = a (A0,A1,M,K) · b (B0,B1,N,K)ᵀ, b broadcast over batch dims.
 * ============================================================================================== */

struct round_job {
    const float *src;
    void *dst;
    sisa_dtype dt;
    int64_t n;
};

static void round_task(int64_t r, int tid, void *arg) {
    (void)tid;
    struct round_job *rj = arg;
    sisa_fast_store_row((char *)rj->dst + (size_t)(r * rj->n) * sisa_dtype_size(rj->dt), rj->dt,
                        rj->src + r * rj->n, rj->n);
}

static sisa_status matmul_f32(sisa_cpu_pool *pool, const sisa_tensor *node, float *C);

sisa_status sisa_fast_matmul(sisa_cpu_pool *pool, const sisa_tensor *node) {
    /* An f16/bf16 result is accumulated in f32 scratch and rounded once at the end. */
    bool f32_out = node->dtype == SISA_F32;
    float *C = f32_out ? sisa_cpu_data(node)
                       : sisa_fast_scratch(pool, 0, SISA_FAST_SLOT_SHARED0 + 2,
                                           (size_t)sisa_tensor_nelements(node) * sizeof(float));
    if (!C) return sisa_err(SISA_OUT_OF_MEMORY, "cpu MATMUL: out of host memory for the f32 result");
    sisa_status st = matmul_f32(pool, node, C);
    if (!f32_out) {
        if (st == SISA_OK) {
            struct round_job rj = {C, sisa_cpu_data(node), node->dtype, node->shape[3]};
            int64_t rows = sisa_tensor_nelements(node) / node->shape[3];
            sisa_fast_pool_run(rows * node->shape[3] >= 32768 ? pool : NULL, rows, round_task, &rj);
        }
        sisa_fast_scratch_done(pool, C);
    }
    return st;
}

static sisa_status matmul_f32(sisa_cpu_pool *pool, const sisa_tensor *node, float *C) {
    const sisa_tensor *a = node->src[0], *b = node->src[1];
    int64_t A0 = a->shape[0], A1 = a->shape[1], M = a->shape[2], K = a->shape[3];
    int64_t N = b->shape[2];
    sisa_fast_mat Am = {sisa_cpu_data(a), a->dtype, a->stride[2], a->stride[3]};
    sisa_fast_mat Bm = {sisa_cpu_data(b), b->dtype, b->stride[2], b->stride[3]};
    /* Batch (p, q) reads a at p*as0 + q*as1 and b at p*bs0 + q*bs1 (0 where b broadcasts). One
     * batched call covers all A0*A1 batches when those offsets are linear in p*A1 + q (always for
     * A0 == 1 or A1 == 1, and for contiguous batches); otherwise one call per p. */
    bool b_bcast0 = b->shape[0] == 1, b_bcast1 = b->shape[1] == 1;
    int64_t as0 = a->stride[0], as1 = a->stride[1];
    int64_t bs0 = b_bcast0 ? 0 : b->stride[0], bs1 = b_bcast1 ? 0 : b->stride[1];
    if (A0 == 1) return gemm_batched(pool, A1, M, N, K, Am, as1, Bm, bs1, C, N, M * N, 0);
    if (A1 == 1) return gemm_batched(pool, A0, M, N, K, Am, as0, Bm, bs0, C, N, M * N, 0);
    if (as0 == A1 * as1 && bs0 == A1 * bs1)
        return gemm_batched(pool, A0 * A1, M, N, K, Am, as1, Bm, bs1, C, N, M * N, 0);
    for (int64_t p = 0; p < A0; p++) {
        sisa_fast_mat Ap = Am, Bq = Bm;
        Ap.p = (const char *)Am.p + p * a->stride[0];
        Bq.p = (const char *)Bm.p + (b_bcast0 ? 0 : p * b->stride[0]);
        SISA_TRY(gemm_batched(pool, A1, M, N, K, Ap, a->stride[1], Bq, b_bcast1 ? 0 : b->stride[1],
                              C + p * A1 * M * N, N, M * N, 0));
    }
    return SISA_OK;
}
