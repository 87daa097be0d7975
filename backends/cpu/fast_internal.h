/*
 * fast_internal.h — what the CPU fast path's files (fast_*.c) share: the pool's thread-indexed
 * run, the instruction-set choice, row loaders/storers that turn any float dtype and any element
 * stride into contiguous f32, a few vector primitives (exp, sums), and the SGEMM core that
 * MATMUL and SDPA both use. Nothing here is public API; tests include it to reach the pieces.
 */
#ifndef SISA_CPU_FAST_INTERNAL_H
#define SISA_CPU_FAST_INTERNAL_H

#include "cpu.h"

/* ---- pool (fast_pool.c) ---- */

/* Like sisa_cpu_pool_run, but fn also gets the index of the thread running it, in
 * [0, sisa_cpu_pool_size(p)), so tasks can use per-thread scratch without locks. p may be NULL
 * (run inline on the caller, tid 0). */
typedef void (*sisa_fast_task)(int64_t i, int tid, void *arg);
void sisa_fast_pool_run(sisa_cpu_pool *p, int64_t n, sisa_fast_task fn, void *arg);
int sisa_fast_pool_threads(const sisa_cpu_pool *p); /* 1 for NULL */

/* Scratch memory that the pool keeps between runs (64-byte aligned, grown on demand, freed with
 * the pool): buffer `slot` of thread `tid`. A kernel uses slot SISA_FAST_SLOT_TASK of its own tid
 * inside tasks, and the caller's (tid 0) other slots for buffers shared by a whole run, got
 * before the run starts. The contents are not kept. NULL when out of memory. With a NULL pool
 * it is plain aligned_alloc memory; either way hand it back with sisa_fast_scratch_done (which
 * frees only in the NULL-pool case). */
enum { SISA_FAST_SLOT_TASK = 0, SISA_FAST_SLOT_SHARED0 = 1, SISA_FAST_SLOTS = 5 };
void *sisa_fast_scratch(sisa_cpu_pool *p, int tid, int slot, size_t bytes);
void sisa_fast_scratch_done(sisa_cpu_pool *p, void *ptr);

/* ---- instruction set (fast_vec.c) ---- */

typedef enum sisa_fast_isa {
    SISA_FAST_ISA_C = 0,   /* plain C: whatever the compiler's baseline target allows */
    SISA_FAST_ISA_AVX2 = 1, /* AVX2 + FMA + F16C */
    SISA_FAST_ISA_AVX512 = 2, /* AVX-512 F (+ BW/DQ/VL where used) */
} sisa_fast_isa;

/* The ISA the kernels use: the best the CPU has, capped by the environment variable
 * SISA_CPU_ISA=c|avx2|avx512 and by sisa_fast_set_isa (tests use it to cover every path). */
sisa_fast_isa sisa_fast_get_isa(void);
/* Cap the ISA (clamped to what the CPU supports); returns the one now in use. Not thread-safe
 * with respect to running kernels: call it between computes. */
sisa_fast_isa sisa_fast_set_isa(sisa_fast_isa want);
const char *sisa_fast_isa_name(sisa_fast_isa isa);

/* ---- rows (fast_vec.c) ---- */

/* Load n elements of dtype dt starting at p, `stride` bytes apart, as f32 into dst. */
void sisa_fast_load_row(float *dst, const void *p, sisa_dtype dt, int64_t stride, int64_t n);
/* As above, but return p itself when it already is contiguous f32 (dst is then untouched). */
const float *sisa_fast_row_f32(float *scratch, const void *p, sisa_dtype dt, int64_t stride,
                               int64_t n);
/* Store n f32 values into contiguous dtype dt at p (round to nearest even). */
void sisa_fast_store_row(void *p, sisa_dtype dt, const float *src, int64_t n);

/* y[i] = exp(x[i]) (x may equal y). Max relative error ~2 ulp in the SIMD paths; exp(-inf) = 0,
 * exp(+inf) = inf, NaN stays NaN. */
void sisa_fast_exp(float *y, const float *x, int64_t n);
/* Sum and sum of squares with blocked (pairwise) accumulation: error O(log n) ulp, not O(n). */
float sisa_fast_sum(const float *x, int64_t n);
float sisa_fast_sumsq(const float *x, int64_t n);
float sisa_fast_max(const float *x, int64_t n); /* -inf for n = 0; NaN if any is NaN */
/* y[i] = exp(x[i] - sub) (x may equal y); returns sum_i y[i]. */
float sisa_fast_exp_sum(float *y, const float *x, float sub, int64_t n);

/* ---- SGEMM core (fast_gemm.c) ---- */

/* A matrix operand: element (r, c) is at p + r*rs + c*cs (bytes), dtype dt (f32, f16, bf16). */
typedef struct sisa_fast_mat {
    const void *p;
    sisa_dtype dt;
    int64_t rs, cs;
} sisa_fast_mat;

/* C[M,N] (f32, row stride ldc elements) = A[M,K] · B[N,K]ᵀ (+ C when accumulate), fp32
 * accumulation, threads from pool (NULL: the caller only). Any strides, any float dtype. */
sisa_status sisa_fast_gemm(sisa_cpu_pool *pool, int64_t M, int64_t N, int64_t K, sisa_fast_mat A,
                           sisa_fast_mat B, float *C, int64_t ldc, int accumulate);

/* Building blocks for fused kernels (SDPA): the register tile of the current ISA, a panel
 * packer and the micro-kernel, all on one thread.
 *   packed B panel: for each k, NR consecutive floats (columns j0..j0+NR of row k of Bᵀ),
 *   zero-padded past n. Its size is kc*NR floats. */
typedef struct sisa_fast_gemm_kit {
    int mr, nr;
    /* Bp[kk*nr + jj] = B(j0 + jj, k0 + kk) for jj < n, 0 for n <= jj < nr; kk < kc. */
    void (*pack_b)(float *Bp, sisa_fast_mat B, int64_t j0, int64_t n, int64_t k0, int64_t kc);
    /* C[i, j] (+)= sum_kk A[i*lda + kk] * Bp[kk*nr + j] for i < m (<= mr), j < n (<= nr).
     * A is contiguous f32 in k (row stride lda elements). */
    void (*kernel)(int64_t kc, const float *A, int64_t lda, const float *Bp, float *C,
                   int64_t ldc, int m, int n, int accumulate);
} sisa_fast_gemm_kit;
const sisa_fast_gemm_kit *sisa_fast_gemm_kit_get(void);

/* ---- kernels (one per op family; selected in fast_select.c) ---- */

sisa_status sisa_fast_matmul(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_sdpa(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_ssm_decay(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_ssm_channels(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_cpy(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_embed(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_rms_norm(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_rope(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_add(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_scale(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_softmax(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_argmax(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_swiglu(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_status sisa_fast_augment(sisa_cpu_pool *pool, const sisa_tensor *node);

/* Row iteration helper: a node's rows are indexed r in [0, shape0*shape1*shape2). */
static inline void sisa_fast_row_index(const sisa_tensor *t, int64_t r, int64_t idx[3]) {
    idx[2] = r % t->shape[2];
    r /= t->shape[2];
    idx[1] = r % t->shape[1];
    idx[0] = r / t->shape[1];
}
static inline const char *sisa_fast_row_ptr(const sisa_tensor *t, const int64_t idx[3]) {
    return (const char *)sisa_cpu_data(t) + idx[0] * t->stride[0] + idx[1] * t->stride[1] +
           idx[2] * t->stride[2];
}

#endif
