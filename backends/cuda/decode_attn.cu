/*
 * decode_attn.cu — SDPA (ops.h) for a few queries against many keys: a decode step (Tq = 1 per
 * sequence) attending over the KV cache. The general kernels put a block of 64 queries on one
 * (b, h), so a decode step ran 12 blocks on 132 SMs, each walking every key alone. Here the keys
 * are split into chunks of DA_CHUNK (flash-decoding):
 *   k_da_partial  one block per (b, h, query, chunk): scores of the chunk's visible keys (a warp
 *                 per key: lanes split the channels, form B's decay exp(gq_i - gk_j) applied to
 *                 channels >= d_content), the chunk's max m, sum l = Σ exp(s - m) and
 *                 o = Σ exp(s - m)·V_j, written to the workspace
 *   k_da_combine  one block per (b, h, query): M = max m, L = Σ l·exp(m - M), out = Σ o·exp(m - M) / L
 * Keys past the causal limit p0 + i (and chunks wholly past it) are never read: a cache may hold
 * anything there (ops.h). A query with no visible key gives zeros. Any float dtypes and strides;
 * fp32 math throughout.
 */
#include "cuda_decode_kernels.h"
#include "sc_common.cuh"

#define DA_CHUNK 64
#define DA_THREADS 128
#define DA_MAX_D 256
#define DA_MAX_TQ 8

/* Keys [0, visible) are visible to query i. */
__device__ __forceinline__ int64_t da_visible(const sc_node &n, int64_t i, int64_t Tk) {
    if (!n.ip[0]) return Tk;
    const int64_t v = (int64_t)n.ip[1] + i + 1;
    return v < Tk ? (v > 0 ? v : 0) : Tk;
}

__global__ void __launch_bounds__(DA_THREADS) k_da_partial(sc_node n, float *ws, int S) {
    const sc_tensor &Q = n.src[0], &K = n.src[1], &V = n.src[2], &gq = n.src[3], &gk = n.src[4];
    const int64_t H = Q.ne[1], Tq = Q.ne[2], D = Q.ne[3], Tk = K.ne[2], Dv = V.ne[3];
    const int64_t bhq = blockIdx.x, i = bhq % Tq, bh = bhq / Tq, h = bh % H, b = bh / H;
    const int s = blockIdx.y;
    const int64_t vis = da_visible(n, i, Tk), j0 = (int64_t)s * DA_CHUNK;
    if (j0 >= vis) return; /* the combine reads only chunks below vis */
    const int64_t nk = vis - j0 < DA_CHUNK ? vis - j0 : DA_CHUNK;
    __shared__ float q[DA_MAX_D];
    __shared__ float p[DA_CHUNK];
    __shared__ float red[2];
    for (int64_t c = threadIdx.x; c < D; c += blockDim.x) q[c] = sc_ld(Q, sc_off(Q, b, h, i, c));
    const bool formb = gq.p != NULL;
    const int64_t dc = formb ? n.ip[2] : D;
    const float gqi = formb ? sc_ld(gq, sc_off(gq, 0, b, h, i)) : 0.0f;
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = DA_THREADS / 32;
    for (int64_t jj = warp; jj < nk; jj += nw) {
        const int64_t j = j0 + jj, kb = sc_off(K, b, h, j, 0);
        float c1 = 0.0f, c2 = 0.0f;
        for (int64_t c = lane; c < D; c += 32) {
            const float v = q[c] * sc_ld(K, kb + c * K.nb[3]);
            if (c < dc) c1 += v; else c2 += v;
        }
        c1 = sc_warp_sum(c1);
        c2 = sc_warp_sum(c2);
        if (lane == 0) {
            float sc = c1;
            if (formb) sc += expf(gqi - sc_ld(gk, sc_off(gk, 0, b, h, j))) * c2;
            p[jj] = sc * n.fp[0];
        }
    }
    __syncthreads();
    if (warp == 0) {
        float m = -INFINITY;
        for (int64_t jj = lane; jj < nk; jj += 32) m = fmaxf(m, p[jj]);
        m = sc_warp_max(m);
        float l = 0.0f;
        for (int64_t jj = lane; jj < nk; jj += 32) {
            const float e = expf(p[jj] - m);
            p[jj] = e;
            l += e;
        }
        l = sc_warp_sum(l);
        if (lane == 0) {
            red[0] = m;
            red[1] = l;
        }
    }
    __syncthreads();
    float *out = ws + ((size_t)bhq * (size_t)S + (size_t)s) * (size_t)(Dv + 2);
    if (threadIdx.x == 0) {
        out[0] = red[0];
        out[1] = red[1];
    }
    for (int64_t c = threadIdx.x; c < Dv; c += blockDim.x) {
        float acc = 0.0f;
        for (int64_t jj = 0; jj < nk; jj++) acc += p[jj] * sc_ld(V, sc_off(V, b, h, j0 + jj, c));
        out[2 + c] = acc;
    }
}

__global__ void __launch_bounds__(DA_THREADS) k_da_combine(sc_node n, const float *ws, int S) {
    const sc_tensor &Q = n.src[0], &K = n.src[1], &V = n.src[2], &d = n.dst;
    const int64_t H = Q.ne[1], Tq = Q.ne[2], Tk = K.ne[2], Dv = V.ne[3];
    const int64_t bhq = blockIdx.x, i = bhq % Tq, bh = bhq / Tq, h = bh % H, b = bh / H;
    const int64_t vis = da_visible(n, i, Tk);
    const int ns = (int)((vis + DA_CHUNK - 1) / DA_CHUNK);
    const float *in = ws + (size_t)bhq * (size_t)S * (size_t)(Dv + 2);
    float M = -INFINITY;
    for (int s = 0; s < ns; s++) M = fmaxf(M, in[(size_t)s * (Dv + 2)]);
    float L = 0.0f;
    for (int s = 0; s < ns; s++) {
        const float *c = in + (size_t)s * (Dv + 2);
        L += c[1] * expf(c[0] - M);
    }
    const int64_t ob = ((b * Tq + i) * H + h) * Dv; /* dst (B,Tq,H,Dv) contiguous */
    for (int64_t c = threadIdx.x; c < Dv; c += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < ns; s++) {
            const float *cs = in + (size_t)s * (Dv + 2);
            acc += cs[2 + c] * expf(cs[0] - M);
        }
        sc_st(d, ob + c, ns > 0 && L > 0.0f ? acc / L : 0.0f);
    }
}

static int da_chunks(const sc_node *n) { return (int)((n->src[1].ne[2] + DA_CHUNK - 1) / DA_CHUNK); }

extern "C" size_t sc_decode_attn_workspace(const sc_node *n) {
    const sc_tensor &Q = n->src[0], &K = n->src[1], &V = n->src[2];
    if (Q.ne[2] < 1 || Q.ne[2] > DA_MAX_TQ || Q.ne[3] > DA_MAX_D || V.ne[3] > DA_MAX_D) return 0;
    if (K.ne[2] < 1 || Q.ne[3] < 1 || V.ne[3] < 1) return 0;
    if (Q.ne[0] * Q.ne[1] * Q.ne[2] > 0x7fffffff || da_chunks(n) > 65535) return 0;
    if (Q.dt == SC_I32 || K.dt == SC_I32 || V.dt == SC_I32 || n->dst.dt == SC_I32) return 0;
    return (size_t)(Q.ne[0] * Q.ne[1] * Q.ne[2]) * (size_t)da_chunks(n) * (size_t)(V.ne[3] + 2) *
           sizeof(float);
}

extern "C" cudaError_t sc_launch_decode_attn(const sc_node *n, void *workspace, cudaStream_t s) {
    const int64_t bhq = n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2];
    const int S = da_chunks(n);
    if (bhq == 0) return cudaSuccess;
    k_da_partial<<<dim3((unsigned)bhq, (unsigned)S), DA_THREADS, 0, s>>>(*n, (float *)workspace, S);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    k_da_combine<<<(unsigned)bhq, DA_THREADS, 0, s>>>(*n, (const float *)workspace, S);
    return cudaGetLastError();
}
