/*
 * sdpa_fa.cu — the backend's fast own flash attention (FlashAttention-2 style) for SDPA (ops.h),
 * both SISA forms, bf16 or f16 Q/K/V, fp32 accumulation:
 *   form A: s[i,j] = scale · Q_i·K_j
 *   form B: s[i,j] = scale · (Q_i[:dc]·K_j[:dc] + exp(gq_i - gk_j) · Q_i[dc:]·K_j[dc:])
 * causal by absolute position (key j visible iff j <= p0 + i), output (B, Tq, H, Dv) by dst strides.
 *
 * Layout of the work: one block = 16·NW queries of one (b, h) on NW warps (4, or 8 with
 * SISA_CUDA_FA_WARPS=8), one warp = 16 query rows.
 * Key/value tiles of 64 rows stream through shared memory, double-buffered with 16-byte cp.async
 * (zero-filled past Tk and past D). Q lives in registers as mma A fragments for the whole kernel;
 * S = Q·Kᵀ and O += P·V are inline-PTX mma.sync.m16n8k16 (fp32 accumulate), fragments loaded with
 * ldmatrix (.trans for V); the score tile, P and the output accumulator never leave registers.
 * Softmax is online in base 2 (scale·log2 e folded into one multiply, exp2). Causal: tiles past
 * the block's last query are never loaded, tiles past a warp's last query are skipped by that warp,
 * and the element mask is applied only on tiles that straddle the diagonal or Tk.
 * Form B: the content part (channels [0, dc), dc a multiple of 16) and the SSM part ([dc, D))
 * are two mma accumulations over disjoint k-steps; the decay exp(gq_i - gk_j) multiplies the SSM
 * part per score (gk of the tile staged in shared memory). Under the causal mask gq_i - gk_j <= 0,
 * so it never overflows; masked scores are set to -inf AFTER the combine (an inf·0 there is dropped).
 *
 * Requirements (host check sc_sdpa_fa_ok): Q, K, V the same dtype (bf16/f16), channel stride 1,
 * other strides multiples of 8 elements, 16-byte aligned bases, D and Dv multiples of 8,
 * (pad16(D), pad16(Dv)) one of the compiled shapes, form B with dc a multiple of 16 (or >= D).
 * Anything else goes to the older wmma or scalar kernels in sdpa.cu.
 */
#include <stdlib.h>

#include <type_traits>

#include "sc_common.cuh"

#define FA_BK 64 /* keys per tile; queries per block = 16 x warps (NW = 4 or 8) */

static __host__ __device__ inline int fa_pad16(int x) { return (x + 15) & ~15; }

template <int DQ, int DV, int NW> struct fa_smem {
    static constexpr int FA_BQ = 16 * NW;
    static constexpr int LQ = DQ + 8, LV = DV + 8; /* +16 bytes per row: conflict-free ldmatrix */
    static constexpr size_t oQ = 0;
    static constexpr size_t oK = oQ + (size_t)FA_BQ * LQ * 2;
    static constexpr size_t oV = oK + 2 * (size_t)FA_BK * LQ * 2;
    static constexpr size_t oG = oV + 2 * (size_t)FA_BK * LV * 2;
    static constexpr size_t total = oG + 2 * FA_BK * 4;
};

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

template <typename T>
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    if constexpr (sizeof(T) == 2 && std::is_same<T, __nv_bfloat16>::value) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* Copy rows [r0, r0+nrows) x channels [0, WP) of a (rows, width) matrix with row stride rs into
 * shared memory (leading dim ld), zero-filling rows >= rmax and channels >= width. */
template <typename T, int WP, int NROWS, int NW>
__device__ __forceinline__ void load_tile(T *dst, int ld, const T *src, int64_t rs, int64_t r0,
                                          int64_t rmax, int width) {
    constexpr int CPR = WP / 8; /* 16-byte chunks per row */
#pragma unroll 4
    for (int e = threadIdx.x; e < NROWS * CPR; e += NW * 32) {
        const int r = e / CPR, c = (e % CPR) * 8;
        const bool ok = r0 + r < rmax && c < width;
        const T *p = ok ? src + (r0 + r) * rs + c : src;
        cp_async16(smem_u32(dst + r * ld + c), p, ok ? 16 : 0);
    }
}

template <typename T, int DQ, int DV, bool FB, int NW>
__global__ void __launch_bounds__(NW * 32) k_sdpa_fa(sc_node n) {
    using S = fa_smem<DQ, DV, NW>;
    constexpr int FA_BQ = 16 * NW;
    constexpr int LQ = S::LQ, LV = S::LV;
    constexpr int NT = FA_BK / 8;  /* score n-tiles per warp row block */
    constexpr int NO = DV / 8;     /* output n-tiles */
    constexpr int KS = DQ / 16;    /* k-steps of Q·Kᵀ */
    extern __shared__ __align__(16) unsigned char smraw[];
    T *Qs = (T *)(smraw + S::oQ), *Ks = (T *)(smraw + S::oK), *Vs = (T *)(smraw + S::oV);
    float *gks = (float *)(smraw + S::oG);

    const sc_tensor &Q = n.src[0], &K = n.src[1], &V = n.src[2], &gq = n.src[3], &gk = n.src[4];
    const int D = (int)Q.ne[3], Dv = (int)V.ne[3];
    const int64_t H = Q.ne[1], Tq = Q.ne[2], Tk = K.ne[2];
    const bool causal = n.ip[0] != 0;
    const int64_t p0 = n.ip[1];
    const int kc = FB ? (n.ip[2] + 15) / 16 : KS; /* k-steps of the content part */
    const float sl2 = n.fp[0] * 1.4426950408889634f;

    const int64_t bh = blockIdx.y, b = bh / H, h = bh % H;
    const int64_t q0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * FA_BQ; /* heavy tiles first */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane >> 2, t = lane & 3;

    const T *Qb = (const T *)Q.p + b * Q.nb[0] + h * Q.nb[1];
    const T *Kb = (const T *)K.p + b * K.nb[0] + h * K.nb[1];
    const T *Vb = (const T *)V.p + b * V.nb[0] + h * V.nb[1];

    const int64_t qlast = min(Tq, q0 + FA_BQ) - 1;
    /* keys no query of this block sees are never loaded (zero-filled): masked keys contribute
     * nothing, not even 0·V_j, so a decode cache past the position may hold NaN (ops.h) */
    const int64_t kend = causal ? min(Tk, p0 + qlast + 1) : Tk;
    const int ntiles = kend > 0 ? (int)((kend + FA_BK - 1) / FA_BK) : 0;
    const int64_t wq0 = q0 + warp * 16;                 /* this warp's first query */
    const int64_t wlast = min(Tq - 1, wq0 + 15);
    const int64_t wvis = causal ? min(Tk, p0 + wlast + 1) : Tk; /* keys any row of the warp sees */

    /* rows of this thread: i0 = wq0 + g, i1 = wq0 + g + 8 */
    float gq0 = 0.0f, gq1 = 0.0f;
    if (FB) {
        const int64_t i0 = wq0 + g, i1 = i0 + 8;
        if (i0 < Tq) gq0 = sc_ld(gq, sc_off(gq, 0, b, h, i0)) * 1.4426950408889634f;
        if (i1 < Tq) gq1 = sc_ld(gq, sc_off(gq, 0, b, h, i1)) * 1.4426950408889634f;
    }

    load_tile<T, DQ, FA_BQ, NW>(Qs, LQ, Qb, Q.nb[2], q0, Tq, D);
    if (ntiles > 0) {
        load_tile<T, DQ, FA_BK, NW>(Ks, LQ, Kb, K.nb[2], 0, kend, D);
        load_tile<T, DV, FA_BK, NW>(Vs, LV, Vb, V.nb[2], 0, kend, Dv);
        if (FB && threadIdx.x < FA_BK)
            gks[threadIdx.x] = threadIdx.x < kend ? sc_ld(gk, sc_off(gk, 0, b, h, threadIdx.x)) * 1.4426950408889634f : 0.0f;
    }
    cp_commit();

    float o[NO][4];
#pragma unroll
    for (int j = 0; j < NO; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    uint32_t qf[KS][4];

    for (int it = 0; it < ntiles; it++) {
        const int st = it & 1;
        const int64_t kt = (int64_t)it * FA_BK;
        if (it + 1 < ntiles) {
            const int ns = st ^ 1;
            load_tile<T, DQ, FA_BK, NW>(Ks + ns * FA_BK * LQ, LQ, Kb, K.nb[2], kt + FA_BK, kend, D);
            load_tile<T, DV, FA_BK, NW>(Vs + ns * FA_BK * LV, LV, Vb, V.nb[2], kt + FA_BK, kend, Dv);
            if (FB && threadIdx.x < FA_BK) {
                const int64_t j = kt + FA_BK + threadIdx.x;
                gks[ns * FA_BK + threadIdx.x] = j < kend ? sc_ld(gk, sc_off(gk, 0, b, h, j)) * 1.4426950408889634f : 0.0f;
            }
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        if (it == 0) {
#pragma unroll
            for (int ks = 0; ks < KS; ks++)
                ldsm_x4(qf[ks], smem_u32(Qs + (warp * 16 + (lane & 15)) * LQ + ks * 16 + (lane >> 4) * 8));
        }
        if (kt < wvis) {
            const T *Kt = Ks + st * FA_BK * LQ;
            const T *Vt = Vs + st * FA_BK * LV;
            float s[NT][4];
            float sd[FB ? NT : 1][4];
#pragma unroll
            for (int j = 0; j < NT; j++) {
                s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
                if (FB) sd[j][0] = sd[j][1] = sd[j][2] = sd[j][3] = 0.0f;
            }
            /* S = Q·Kᵀ: x4 ldmatrix = keys np*16 + [0,16) x channels ks*16 + [0,16) */
            const int mi = lane >> 3, rr = lane & 7;
#pragma unroll
            for (int ks = 0; ks < KS; ks++) {
#pragma unroll
                for (int np = 0; np < NT / 2; np++) {
                    uint32_t r[4];
                    ldsm_x4(r, smem_u32(Kt + (np * 16 + (mi >> 1) * 8 + rr) * LQ + ks * 16 + (mi & 1) * 8));
                    if (!FB || ks < kc) {
                        mma16816<T>(s[2 * np], qf[ks], r[0], r[1]);
                        mma16816<T>(s[2 * np + 1], qf[ks], r[2], r[3]);
                    } else {
                        mma16816<T>(sd[FB ? 2 * np : 0], qf[ks], r[0], r[1]);
                        mma16816<T>(sd[FB ? 2 * np + 1 : 0], qf[ks], r[2], r[3]);
                    }
                }
            }
            /* scale (base 2), decay, mask */
            const bool need_mask = (causal && kt + FA_BK - 1 > p0 + wq0) || kt + FA_BK > Tk;
            const int64_t i0 = wq0 + g;
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int j = 0; j < NT; j++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int col = j * 8 + 2 * t + (e & 1);
                    float v = s[j][e];
                    if (FB) {
                        const float gr = e < 2 ? gq0 : gq1;
                        v += exp2f(gr - gks[st * FA_BK + col]) * sd[j][e];
                    }
                    v *= sl2;
                    if (need_mask) {
                        const int64_t jj = kt + col, ii = i0 + (e < 2 ? 0 : 8);
                        if (jj >= Tk || (causal && jj > p0 + ii)) v = -INFINITY;
                    }
                    s[j][e] = v;
                }
                mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1]));
                mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
            const float mu0 = mn0 == -INFINITY ? 0.0f : mn0, mu1 = mn1 == -INFINITY ? 0.0f : mn1;
            const float a0 = exp2f(m0 - mu0), a1 = exp2f(m1 - mu1);
            m0 = mn0; m1 = mn1;
            float ps0 = 0.0f, ps1 = 0.0f;
#pragma unroll
            for (int j = 0; j < NT; j++) {
                s[j][0] = exp2f(s[j][0] - mu0);
                s[j][1] = exp2f(s[j][1] - mu0);
                s[j][2] = exp2f(s[j][2] - mu1);
                s[j][3] = exp2f(s[j][3] - mu1);
                ps0 += s[j][0] + s[j][1];
                ps1 += s[j][2] + s[j][3];
            }
            l0 = l0 * a0 + ps0;
            l1 = l1 * a1 + ps1;
#pragma unroll
            for (int j = 0; j < NO; j++) {
                o[j][0] *= a0; o[j][1] *= a0;
                o[j][2] *= a1; o[j][3] *= a1;
            }
            /* O += P·V: P from the score registers (A fragments), V by ldmatrix.trans */
#pragma unroll
            for (int kk = 0; kk < FA_BK / 16; kk++) {
                uint32_t a[4];
                a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
                a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
                a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
                for (int nv = 0; nv < DV / 16; nv++) {
                    uint32_t r[4];
                    ldsm_x4_t(r, smem_u32(Vt + (kk * 16 + (mi & 1) * 8 + rr) * LV + nv * 16 + (mi >> 1) * 8));
                    mma16816<T>(o[2 * nv], a, r[0], r[1]);
                    mma16816<T>(o[2 * nv + 1], a, r[2], r[3]);
                }
            }
        }
        __syncthreads(); /* the stage just read is refilled by the next iteration */
    }
    cp_wait<0>(); /* ntiles == 0: the Q copies are still in flight */

    /* finish: full row sums across the 4 lanes of a row, divide, store */
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    const sc_tensor &O = n.dst; /* (B, Tq, H, Dv) */
    const bool packed = O.dt == Q.dt && O.nb[3] == 1;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int64_t i = wq0 + g + half * 8;
        if (i >= Tq) continue;
        const float inv = half ? inv1 : inv0;
        const int64_t base = b * O.nb[0] + i * O.nb[1] + h * O.nb[2];
#pragma unroll
        for (int j = 0; j < NO; j++) {
            const int c = j * 8 + 2 * t;
            if (c >= Dv) continue;
            const float v0 = o[j][half * 2] * inv, v1 = o[j][half * 2 + 1] * inv;
            if (packed && c + 1 < Dv) {
                *(uint32_t *)((T *)O.p + base + c) = pack2<T>(v0, v1);
            } else {
                sc_st(O, base + c * O.nb[3], v0);
                if (c + 1 < Dv) sc_st(O, base + (c + 1) * O.nb[3], v1);
            }
        }
    }
}

/* ------------------------------------------------------------------------------ host side ---- */

/* The compiled (pad16(D), pad16(Dv)) shapes. */
#define FA_SHAPES(X) \
    X(64, 64) X(80, 64) X(96, 64) X(128, 64) X(192, 64) X(32, 32) X(48, 32) \
    X(128, 128) X(144, 128) X(160, 128) X(192, 128) X(256, 128)

static bool fa_shape_known(int DQ, int DV) {
#define FA_K(a, b) if (DQ == a && DV == b) return true;
    FA_SHAPES(FA_K)
#undef FA_K
    return false;
}

static bool fa_tensor_ok(const sc_tensor &t) {
    if (t.nb[3] != 1 || t.ne[3] % 8) return false;
    for (int k = 0; k < 3; k++)
        if (t.nb[k] % 8) return false;
    return ((uintptr_t)t.p % 16) == 0;
}

/* Warps per block (16 query rows each): 4 unless SISA_CUDA_FA_WARPS=8 (benchmarks, tests). */
static int sc_sdpa_fa_warps(void) {
    const char *e = getenv("SISA_CUDA_FA_WARPS");
    return e && atoi(e) == 8 ? 8 : 4;
}

/* 0 = the fast kernel cannot take this node; else its dynamic shared memory. */
extern "C" size_t sc_sdpa_fa_smem(const sc_node *n) {
    const sc_tensor &Q = n->src[0], &K = n->src[1], &V = n->src[2];
    if ((Q.dt != SC_BF16 && Q.dt != SC_F16) || K.dt != Q.dt || V.dt != Q.dt) return 0;
    if (!fa_tensor_ok(Q) || !fa_tensor_ok(K) || !fa_tensor_ok(V)) return 0;
    const int D = (int)Q.ne[3], Dv = (int)V.ne[3];
    if (K.ne[3] != D) return 0;
    const bool fb = n->src[3].p != nullptr;
    if (fb) {
        const int dc = n->ip[2];
        if (dc < 0 || (dc % 16 != 0 && dc < D)) return 0;
    }
    const int DQ = fa_pad16(D), DV = fa_pad16(Dv);
    if (!fa_shape_known(DQ, DV)) return 0;
    return (size_t)(DQ + 8) * 16 * sc_sdpa_fa_warps() * 2 + 2 * (size_t)FA_BK * (DQ + 8) * 2 +
           2 * (size_t)FA_BK * (DV + 8) * 2 + 2 * FA_BK * 4;
}

template <typename T, int DQ, int DV, bool FB, int NW>
static cudaError_t fa_go(const sc_node *n, cudaStream_t s) {
    const size_t smem = fa_smem<DQ, DV, NW>::total;
    const int64_t B = n->src[0].ne[0], H = n->src[0].ne[1], Tq = n->src[0].ne[2];
    dim3 grid((unsigned)((Tq + 16 * NW - 1) / (16 * NW)), (unsigned)(B * H));
    /* every launch (cheap): the attribute is per device */
    cudaError_t e = cudaFuncSetAttribute(k_sdpa_fa<T, DQ, DV, FB, NW>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    k_sdpa_fa<T, DQ, DV, FB, NW><<<grid, NW * 32, smem, s>>>(*n);
    return cudaGetLastError();
}

template <typename T>
static cudaError_t fa_dispatch(const sc_node *n, int DQ, int DV, bool fb, int nw, cudaStream_t s) {
#define FA_D(a, b)                                                                          \
    if (DQ == a && DV == b) {                                                               \
        if (nw == 8) return fb ? fa_go<T, a, b, true, 8>(n, s) : fa_go<T, a, b, false, 8>(n, s); \
        return fb ? fa_go<T, a, b, true, 4>(n, s) : fa_go<T, a, b, false, 4>(n, s);         \
    }
    FA_SHAPES(FA_D)
#undef FA_D
    return cudaErrorInvalidValue;
}

extern "C" cudaError_t sc_launch_sdpa_fa(const sc_node *n, cudaStream_t s) {
    const int64_t B = n->src[0].ne[0], H = n->src[0].ne[1], Tq = n->src[0].ne[2];
    if (B * H == 0 || Tq == 0) return cudaSuccess;
    if (B * H > 65535) return cudaErrorInvalidConfiguration;
    if (sc_sdpa_fa_smem(n) == 0) return cudaErrorInvalidValue;
    const int DQ = fa_pad16((int)n->src[0].ne[3]), DV = fa_pad16((int)n->src[2].ne[3]);
    const bool fb = n->src[3].p != nullptr;
    const int nw = sc_sdpa_fa_warps();
    if (n->src[0].dt == SC_BF16) return fa_dispatch<__nv_bfloat16>(n, DQ, DV, fb, nw, s);
    return fa_dispatch<__half>(n, DQ, DV, fb, nw, s);
}
