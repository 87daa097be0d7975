/*
 * sdpa.cu — the backend's own flash attention for SDPA (ops.h), both SISA forms:
 *   form A: s[i,j] = scale · Q_i·K_j                       (Qhat/Khat, d_qk != d_v)
 *   form B: s[i,j] = scale · (Q_i[:dc]·K_j[:dc] + exp(gq_i - gk_j) · Q_i[dc:]·K_j[dc:])
 * causal by absolute position (key j visible iff j <= p0 + i), output (B, Tq, H, Dv).
 *
 * Online softmax over key tiles (running max m, running sum l, rescaled accumulator): no Tq×Tk
 * matrix ever exists, memory is O(tile). Form B's decay factor exp(gq_i - gk_j) is applied per
 * score inside the tile; under the causal mask gq_i - gk_j = g_i - g_j <= 0 (g is a running sum
 * of non-positive terms), so it never overflows — the property that lets form B run at any length.
 *
 * Two kernels behind one launcher:
 *   k_sdpa_wmma<T>  Q, K, V all bf16 (or all f16): 64 queries × 64 keys per step on 4 warps,
 *                   S = Q·Kᵀ and O += P·V on tensor cores (wmma 16x16x16, fp32 accumulate);
 *                   S, P and O live in shared memory so the softmax can address rows directly.
 *                   Form B splits Q/K into two zero-padded segments [0,dc) and [dc,D), giving
 *                   two score tiles that the softmax step combines with the decay.
 *   k_sdpa_scalar   any float dtypes (f32, mixed): one warp per query, 8 queries per block share
 *                   32-key tiles of K and V in shared memory (fp32), lanes own keys for the
 *                   scores and value channels for the accumulation. Exact fp32 path.
 */
#include <mma.h>

#include "sc_common.cuh"

using namespace nvcuda;

static __host__ __device__ inline int pad16(int x) { return (x + 15) & ~15; }
static __host__ __device__ inline size_t al128(size_t x) { return (x + 127) & ~(size_t)127; }

/* ------------------------------------------------------------------ scalar (fp32) kernel ---- */

#define SQ 8  /* queries (warps) per block */
#define SK 32 /* keys per tile */

template <int DVR>
__global__ void k_sdpa_scalar(sc_node n) {
    extern __shared__ float sm[];
    const sc_tensor &Q = n.src[0], &K = n.src[1], &V = n.src[2], &gq = n.src[3], &gk = n.src[4];
    const int D = (int)Q.ne[3], Dv = (int)V.ne[3];
    const int64_t H = Q.ne[1], Tq = Q.ne[2], Tk = K.ne[2];
    const bool formB = gq.p != nullptr, causal = n.ip[0] != 0;
    const int dc = formB ? n.ip[2] : D;
    const int64_t p0 = n.ip[1];
    const float scale = n.fp[0];
    const int64_t bh = blockIdx.y, b = bh / H, h = bh % H;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float *Ks = sm;                      /* SK × (D+1) */
    float *Vs = Ks + SK * (D + 1);       /* SK × Dv */
    float *qs = Vs + SK * Dv;            /* SQ × D */
    float *gks = qs + SQ * D;            /* SK */

    const int64_t q0 = (int64_t)blockIdx.x * SQ, i = q0 + warp;
    const bool valid = i < Tq;
    const int64_t nvis = !valid ? 0 : causal ? min(Tk, p0 + i + 1) : Tk;
    const int64_t qlast = min(Tq, q0 + SQ) - 1;
    const int64_t kend = causal ? min(Tk, p0 + qlast + 1) : Tk;
    const float gqi = (formB && valid) ? sc_ld(gq, sc_off(gq, 0, b, h, i)) : 0.0f;

    for (int c = lane; c < D; c += 32) qs[warp * D + c] = valid ? sc_ld(Q, sc_off(Q, b, h, i, c)) : 0.0f;

    float m = -INFINITY, l = 0.0f, acc[DVR];
#pragma unroll
    for (int r = 0; r < DVR; r++) acc[r] = 0.0f;

    for (int64_t kt = 0; kt < kend; kt += SK) {
        __syncthreads();
        for (int e = threadIdx.x; e < SK * D; e += blockDim.x) {
            const int j = e / D, c = e % D;
            Ks[j * (D + 1) + c] = kt + j < kend ? sc_ld(K, sc_off(K, b, h, kt + j, c)) : 0.0f;
        }
        for (int e = threadIdx.x; e < SK * Dv; e += blockDim.x) {
            const int j = e / Dv, c = e % Dv;
            Vs[j * Dv + c] = kt + j < kend ? sc_ld(V, sc_off(V, b, h, kt + j, c)) : 0.0f;
        }
        if (formB && threadIdx.x < SK)
            gks[threadIdx.x] = kt + threadIdx.x < kend ? sc_ld(gk, sc_off(gk, 0, b, h, kt + threadIdx.x)) : 0.0f;
        __syncthreads();
        if (kt >= nvis) continue;
        const int64_t j = kt + lane;
        float s = -INFINITY;
        if (j < nvis) {
            const float *kr = Ks + lane * (D + 1), *qr = qs + warp * D;
            float sc = 0.0f, sd = 0.0f;
            for (int c = 0; c < dc; c++) sc += qr[c] * kr[c];
            for (int c = dc; c < D; c++) sd += qr[c] * kr[c];
            s = scale * (formB && dc < D ? sc + expf(gqi - gks[lane]) * sd : sc);
        }
        const float mnew = fmaxf(m, sc_warp_max(s));
        if (mnew == -INFINITY) continue;
        const float alpha = expf(m - mnew);
        const float p = s == -INFINITY ? 0.0f : expf(s - mnew);
        l = l * alpha + sc_warp_sum(p);
#pragma unroll
        for (int r = 0; r < DVR; r++) acc[r] *= alpha;
        for (int jj = 0; jj < SK; jj++) {
            const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
            for (int r = 0; r < DVR; r++) {
                const int c = lane + 32 * r;
                if (c < Dv) acc[r] += pj * Vs[jj * Dv + c];
            }
        }
        m = mnew;
    }
    if (!valid) return;
    const int64_t od = ((b * Tq + i) * H + h) * Dv;
#pragma unroll
    for (int r = 0; r < DVR; r++) {
        const int c = lane + 32 * r;
        if (c < Dv) sc_st(n.dst, od + c, l == 0.0f ? 0.0f : acc[r] / l);
    }
}

static size_t scalar_smem(int D, int Dv) {
    return sizeof(float) * ((size_t)SK * (D + 1) + (size_t)SK * Dv + (size_t)SQ * D + SK);
}

/* ------------------------------------------------------------ tensor-core (wmma) kernel ---- */

#define WQ 64 /* queries per block (4 warps × 16 rows) */
#define WK 64 /* keys per tile */

struct wmma_layout {
    int dcp, ddp, dqp, dvp; /* padded content / decayed / total qk widths, padded v width */
    int lq, lv, ls, lp, lo; /* leading dimensions (elements) */
    size_t oQ, oK, oV, oSc, oSd, oP, oO, oM, oL, oG, total;
};

static __host__ __device__ wmma_layout make_layout(int D, int dc, int Dv, bool formB) {
    wmma_layout L;
    L.dcp = pad16(dc);
    L.ddp = formB ? pad16(D - dc) : 0;
    L.dqp = L.dcp + L.ddp;
    L.dvp = pad16(Dv);
    L.lq = L.dqp + 8;
    L.lv = L.dvp + 8;
    L.ls = WK + 4;
    L.lp = WK + 8;
    L.lo = L.dvp + 4;
    size_t o = 0;
    L.oQ = o; o = al128(o + (size_t)WQ * L.lq * 2);
    L.oK = o; o = al128(o + (size_t)WK * L.lq * 2);
    L.oV = o; o = al128(o + (size_t)WK * L.lv * 2);
    L.oSc = o; o = al128(o + (size_t)WQ * L.ls * 4);
    L.oSd = o; if (formB) o = al128(o + (size_t)WQ * L.ls * 4);
    L.oP = o; o = al128(o + (size_t)WQ * L.lp * 2);
    L.oO = o; o = al128(o + (size_t)WQ * L.lo * 4);
    L.oM = o; o = al128(o + WQ * 4);
    L.oL = o; o = al128(o + WQ * 4);
    L.oG = o; o = al128(o + WK * 4);
    L.total = o;
    return L;
}

template <typename T> __device__ __forceinline__ T to_t(float v);
template <> __device__ __forceinline__ __nv_bfloat16 to_t<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half to_t<__half>(float v) { return __float2half_rn(v); }

/* Q/K channel of padded column c (segments [0,dc) and [dc,D), each zero-padded to 16). */
__device__ __forceinline__ int qk_channel(int c, int dc, int dcp, int D) {
    if (c < dcp) return c < dc ? c : -1;
    const int e = dc + (c - dcp);
    return e < D ? e : -1;
}

template <typename T>
__global__ void __launch_bounds__(128) k_sdpa_wmma(sc_node n) {
    extern __shared__ __align__(128) unsigned char smraw[];
    const sc_tensor &Q = n.src[0], &K = n.src[1], &V = n.src[2], &gq = n.src[3], &gk = n.src[4];
    const int D = (int)Q.ne[3], Dv = (int)V.ne[3];
    const int64_t H = Q.ne[1], Tq = Q.ne[2], Tk = K.ne[2];
    const bool formB = gq.p != nullptr, causal = n.ip[0] != 0;
    const int dc = formB ? n.ip[2] : D;
    const int64_t p0 = n.ip[1];
    const float scale = n.fp[0];
    const wmma_layout L = make_layout(D, dc, Dv, formB);
    T *Qs = (T *)(smraw + L.oQ), *Ks = (T *)(smraw + L.oK), *Vs = (T *)(smraw + L.oV);
    T *Ps = (T *)(smraw + L.oP);
    float *Sc = (float *)(smraw + L.oSc), *Sd = (float *)(smraw + L.oSd), *Os = (float *)(smraw + L.oO);
    float *rowm = (float *)(smraw + L.oM), *rowl = (float *)(smraw + L.oL), *gks = (float *)(smraw + L.oG);

    const int64_t bh = blockIdx.y, b = bh / H, h = bh % H;
    const int64_t q0 = (int64_t)(gridDim.x - 1 - blockIdx.x) * WQ; /* heavy (late) tiles first */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nt = blockDim.x;

    for (int e = threadIdx.x; e < WQ * L.dqp; e += nt) {
        const int r = e / L.dqp, c = e % L.dqp, ch = qk_channel(c, dc, L.dcp, D);
        const int64_t i = q0 + r;
        Qs[r * L.lq + c] = to_t<T>(i < Tq && ch >= 0 ? sc_ld(Q, sc_off(Q, b, h, i, ch)) : 0.0f);
    }
    for (int e = threadIdx.x; e < WQ * L.lo; e += nt) Os[e] = 0.0f;
    if (threadIdx.x < WQ) { rowm[threadIdx.x] = -INFINITY; rowl[threadIdx.x] = 0.0f; }

    const int64_t qlast = min(Tq, q0 + WQ) - 1;
    const int64_t kend = causal ? min(Tk, p0 + qlast + 1) : Tk;
    /* my softmax row and half */
    const int r = warp * 16 + lane / 2, half = lane & 1;
    const int64_t i = q0 + r;
    const int64_t nvis = i >= Tq ? 0 : causal ? min(Tk, p0 + i + 1) : Tk;
    const float gqi = (formB && i < Tq) ? sc_ld(gq, sc_off(gq, 0, b, h, i)) : 0.0f;
    const int64_t warp_last_q = min(Tq - 1, q0 + warp * 16 + 15);
    const int64_t warp_nvis = causal ? min(Tk, p0 + warp_last_q + 1) : Tk;

    for (int64_t kt = 0; kt < kend; kt += WK) {
        __syncthreads();
        for (int e = threadIdx.x; e < WK * L.dqp; e += nt) {
            const int j = e / L.dqp, c = e % L.dqp, ch = qk_channel(c, dc, L.dcp, D);
            Ks[j * L.lq + c] = to_t<T>(kt + j < kend && ch >= 0 ? sc_ld(K, sc_off(K, b, h, kt + j, ch)) : 0.0f);
        }
        for (int e = threadIdx.x; e < WK * L.dvp; e += nt) {
            const int j = e / L.dvp, c = e % L.dvp;
            Vs[j * L.lv + c] = to_t<T>(kt + j < kend && c < Dv ? sc_ld(V, sc_off(V, b, h, kt + j, c)) : 0.0f);
        }
        if (formB && threadIdx.x < WK)
            gks[threadIdx.x] = kt + threadIdx.x < kend ? sc_ld(gk, sc_off(gk, 0, b, h, kt + threadIdx.x)) : 0.0f;
        __syncthreads();
        if (kt >= warp_nvis) continue; /* every row of this warp is masked for this tile */

        /* S = Q·Kᵀ (content segment, and the decayed one in form B) */
        for (int nb = 0; nb < WK / 16; nb++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;
            wmma::fill_fragment(acc, 0.0f);
            for (int k = 0; k < L.dcp; k += 16) {
                wmma::load_matrix_sync(fa, Qs + warp * 16 * L.lq + k, L.lq);
                wmma::load_matrix_sync(fb, Ks + nb * 16 * L.lq + k, L.lq);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Sc + warp * 16 * L.ls + nb * 16, acc, L.ls, wmma::mem_row_major);
            if (formB) {
                wmma::fill_fragment(acc, 0.0f);
                for (int k = L.dcp; k < L.dqp; k += 16) {
                    wmma::load_matrix_sync(fa, Qs + warp * 16 * L.lq + k, L.lq);
                    wmma::load_matrix_sync(fb, Ks + nb * 16 * L.lq + k, L.lq);
                    wmma::mma_sync(acc, fa, fb, acc);
                }
                wmma::store_matrix_sync(Sd + warp * 16 * L.ls + nb * 16, acc, L.ls, wmma::mem_row_major);
            }
        }
        __syncwarp();

        /* online softmax: two lanes per row, 32 columns each */
        float s[32];
        float tmax = -INFINITY;
#pragma unroll
        for (int c = 0; c < 32; c++) {
            const int col = half * 32 + c;
            const int64_t j = kt + col;
            float v = -INFINITY;
            if (j < nvis) {
                v = Sc[r * L.ls + col];
                if (formB) v += expf(gqi - gks[col]) * Sd[r * L.ls + col];
                v *= scale;
            }
            s[c] = v;
            tmax = fmaxf(tmax, v);
        }
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
        const float mold = rowm[r];
        const float mnew = fmaxf(mold, tmax);
        const float alpha = mnew == -INFINITY ? 1.0f : expf(mold - mnew);
        float psum = 0.0f;
#pragma unroll
        for (int c = 0; c < 32; c++) {
            const float p = (s[c] == -INFINITY) ? 0.0f : expf(s[c] - mnew);
            psum += p;
            Ps[r * L.lp + half * 32 + c] = to_t<T>(p);
        }
        psum += __shfl_xor_sync(0xffffffffu, psum, 1);
        const int ohalf = L.dvp / 2;
        for (int c = half * ohalf; c < (half + 1) * ohalf; c++) Os[r * L.lo + c] *= alpha;
        __syncwarp();
        if (half == 0) {
            rowl[r] = rowl[r] * alpha + psum;
            rowm[r] = mnew;
        }
        __syncwarp();

        /* O += P·V */
        for (int nb = 0; nb < L.dvp / 16; nb++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
            wmma::load_matrix_sync(acc, Os + warp * 16 * L.lo + nb * 16, L.lo, wmma::mem_row_major);
            for (int k = 0; k < WK; k += 16) {
                wmma::load_matrix_sync(fa, Ps + warp * 16 * L.lp + k, L.lp);
                wmma::load_matrix_sync(fb, Vs + k * L.lv + nb * 16, L.lv);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Os + warp * 16 * L.lo + nb * 16, acc, L.lo, wmma::mem_row_major);
        }
        __syncwarp();
    }
    __syncthreads();
    for (int e = threadIdx.x; e < WQ * Dv; e += nt) {
        const int rr = e / Dv, c = e % Dv;
        const int64_t ii = q0 + rr;
        if (ii >= Tq) continue;
        const float l = rowl[rr];
        sc_st(n.dst, ((b * Tq + ii) * H + h) * Dv + c, l == 0.0f ? 0.0f : Os[rr * L.lo + c] / l);
    }
}

/* ------------------------------------------------------------------------------ launcher ---- */

extern "C" size_t sc_sdpa_smem(const sc_node *n, int kind) {
    const int D = (int)n->src[0].ne[3], Dv = (int)n->src[2].ne[3];
    const bool formB = n->src[3].p != nullptr;
    const int dc = formB ? n->ip[2] : D;
    if (kind == SC_SDPA_SCALAR) return Dv <= 256 ? scalar_smem(D, Dv) : 0;
    const int dt = n->src[0].dt;
    if ((dt != SC_BF16 && dt != SC_F16) || n->src[1].dt != dt || n->src[2].dt != dt) return 0;
    if (pad16(dc) + (formB ? pad16(D - dc) : 0) > 256 || pad16(Dv) > 256) return 0;
    return make_layout(D, dc, Dv, formB).total;
}

template <typename Kern>
static cudaError_t launch(Kern k, dim3 grid, int threads, size_t smem, const sc_node *n, cudaStream_t s) {
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    k<<<grid, threads, smem, s>>>(*n);
    return cudaGetLastError();
}

extern "C" cudaError_t sc_launch_sdpa(const sc_node *n, int kind, cudaStream_t s) {
    const int64_t B = n->src[0].ne[0], H = n->src[0].ne[1], Tq = n->src[0].ne[2];
    const int Dv = (int)n->src[2].ne[3];
    if (B * H == 0 || Tq == 0) return cudaSuccess;
    if (B * H > 65535) return cudaErrorInvalidConfiguration;
    const size_t smem = sc_sdpa_smem(n, kind);
    if (smem == 0) return cudaErrorInvalidValue;
    if (kind == SC_SDPA_WMMA) {
        dim3 grid((unsigned)((Tq + WQ - 1) / WQ), (unsigned)(B * H));
        if (n->src[0].dt == SC_BF16) return launch(k_sdpa_wmma<__nv_bfloat16>, grid, 128, smem, n, s);
        return launch(k_sdpa_wmma<__half>, grid, 128, smem, n, s);
    }
    dim3 grid((unsigned)((Tq + SQ - 1) / SQ), (unsigned)(B * H));
    const int dvr = (Dv + 31) / 32;
    if (dvr <= 1) return launch(k_sdpa_scalar<1>, grid, SQ * 32, smem, n, s);
    if (dvr <= 2) return launch(k_sdpa_scalar<2>, grid, SQ * 32, smem, n, s);
    if (dvr <= 4) return launch(k_sdpa_scalar<4>, grid, SQ * 32, smem, n, s);
    return launch(k_sdpa_scalar<8>, grid, SQ * 32, smem, n, s);
}
