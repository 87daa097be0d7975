/*
 * decode_attn.cu — SDPA (ops.h) for a few queries against many keys: a decode step (Tq = 1 per
 * sequence) attending over the KV cache. The general kernels put a block of 64 queries on one
 * (b, h), so a decode step ran 12 blocks on 132 SMs, each walking every key alone. Two designs
 * here: the split kernel at the end of the file (k_ds, the default: a few fat blocks per (b, h,
 * query) sized from the SM count), and the first one, kept for comparison
 * (SISA_CUDA_DECODE_ATTN=old), where the keys are split into chunks of DA_CHUNK (flash-decoding):
 *   k_da_partial  one block per (b, h, query, chunk of 32 keys): scores of the chunk's visible keys
 *                 (4 threads per key split the channels; form B's decay exp(gq_i - gk_j) applied
 *                 to channels >= d_content), the chunk's max m, sum l = Σ exp(s - m) and
 *                 o = Σ exp(s - m)·V_j, written to the workspace
 *   k_da_combine  one block per (b, h, query): M = max m, L = Σ l·exp(m - M), out = Σ o·exp(m - M) / L
 *   k_da_one      both in one grid (the last block of each (b, h, query) combines; counters given
 *                 by the caller; the default, SISA_CUDA_ATTN_ONE=0 off — see the kernel)
 * Keys past the causal limit p0 + i (and chunks wholly past it) are never read: a cache may hold
 * anything there (ops.h). A query with no visible key gives zeros. Any float dtypes and strides;
 * fp32 math throughout.
 */
#include <cooperative_groups.h>

#include "cuda_mega.h"
#include "decode_attn.cuh"

#define DA_CHUNK 32   /* keys per block */
#define DA_THREADS 128 /* 4 threads per key for the scores, 2 x 64 channels for P·V */
#define DA_MAX_D 256
#define DA_MAX_TQ 8

/* Scores: thread t scores key t/4 of the chunk over channel quarter t%4 (float4 groups
 * interleaved when K is f32 with unit channel stride and D % 4 == 0, else single channels), the
 * four partial sums meet by shuffles. P·V: thread t owns channel t%64 (and +64, +128, ...) for the
 * key half t/64 when Dv <= 64, else all keys; the halves meet in shared memory. Every load in a
 * thread's loop is independent of the others, so they are in flight together. */
__device__ __forceinline__ void da_partial(const sc_node &n, float *ws, int S, int64_t bhq, int s) {
    const sc_tensor &Q = n.src[0], &K = n.src[1], &V = n.src[2], &gq = n.src[3], &gk = n.src[4];
    const int64_t H = Q.ne[1], Tq = Q.ne[2], D = Q.ne[3], Tk = K.ne[2], Dv = V.ne[3];
    const int64_t i = bhq % Tq, bh = bhq / Tq, h = bh % H, b = bh / H;
    const int64_t vis = da_visible(n, i, Tk), j0 = (int64_t)s * DA_CHUNK;
    const int nk = (int)(vis - j0 < DA_CHUNK ? vis - j0 : DA_CHUNK);
    __shared__ __align__(16) float q[DA_MAX_D];
    __shared__ float p[DA_CHUNK];
    __shared__ float oh[64];
    __shared__ float red[2];
    const int t = threadIdx.x;
    for (int64_t c = t; c < D; c += DA_THREADS) q[c] = sc_ld(Q, sc_off(Q, b, h, i, c));
    const bool formb = gq.p != NULL;
    const int64_t dc = formb ? n.ip[2] : D;
    __syncthreads();
    {
        const int jj = t >> 2, part = t & 3;
        float c1 = 0.0f, c2 = 0.0f;
        if (jj < nk) {
            const int64_t kb = sc_off(K, b, h, j0 + jj, 0);
            if (K.dt == SC_F32 && K.nb[3] == 1 && D % 4 == 0 && (kb % 4) == 0 && ((uintptr_t)K.p % 16) == 0) {
                const float4 *kr = (const float4 *)((const float *)K.p + kb);
#pragma unroll 4
                for (int64_t g = part; g < D / 4; g += 4) {
                    const float4 kv = __ldg(kr + g), qv = *(const float4 *)&q[4 * g];
                    if (4 * g + 4 <= dc) {
                        c1 += kv.x * qv.x + kv.y * qv.y + kv.z * qv.z + kv.w * qv.w;
                    } else if (4 * g >= dc) {
                        c2 += kv.x * qv.x + kv.y * qv.y + kv.z * qv.z + kv.w * qv.w;
                    } else { /* a group straddling d_content (dc % 4 != 0) */
                        const float kk[4] = {kv.x, kv.y, kv.z, kv.w}, qq[4] = {qv.x, qv.y, qv.z, qv.w};
                        for (int e = 0; e < 4; e++) {
                            if (4 * g + e < dc) c1 += kk[e] * qq[e]; else c2 += kk[e] * qq[e];
                        }
                    }
                }
            } else {
                for (int64_t c = part; c < D; c += 4) {
                    const float v = q[c] * sc_ld(K, kb + c * K.nb[3]);
                    if (c < dc) c1 += v; else c2 += v;
                }
            }
        }
        c1 += __shfl_xor_sync(0xffffffffu, c1, 1);
        c2 += __shfl_xor_sync(0xffffffffu, c2, 1);
        c1 += __shfl_xor_sync(0xffffffffu, c1, 2);
        c2 += __shfl_xor_sync(0xffffffffu, c2, 2);
        if (jj < nk && part == 0) {
            float sc = c1;
            if (formb) sc += expf(sc_ld(gq, sc_off(gq, 0, b, h, i)) - sc_ld(gk, sc_off(gk, 0, b, h, j0 + jj))) * c2;
            p[jj] = sc * n.fp[0];
        }
    }
    __syncthreads();
    const int lane = t & 31, warp = t >> 5;
    if (warp == 0) {
        float m = lane < nk ? p[lane] : -INFINITY;
        m = sc_warp_max(m);
        const float e = lane < nk ? expf(p[lane] - m) : 0.0f;
        if (lane < nk) p[lane] = e;
        const float l = sc_warp_sum(e);
        if (lane == 0) {
            red[0] = m;
            red[1] = l;
        }
    }
    __syncthreads();
    float *out = ws + ((size_t)bhq * (size_t)S + (size_t)s) * (size_t)(Dv + 2);
    if (t == 0) {
        out[0] = red[0];
        out[1] = red[1];
    }
    const bool vfast = V.dt == SC_F32 && V.nb[3] == 1;
    if (Dv <= 64) { /* two key halves */
        const int c = t & 63, half = t >> 6, mid = (nk + 1) / 2;
        const int ja = half ? mid : 0, jb = half ? nk : mid;
        float acc = 0.0f;
        if (c < Dv) {
            if (vfast) {
                const float *vp = (const float *)V.p + sc_off(V, b, h, j0, c);
#pragma unroll 8
                for (int jj = ja; jj < jb; jj++) acc += p[jj] * __ldg(vp + jj * V.nb[2]);
            } else {
                for (int jj = ja; jj < jb; jj++) acc += p[jj] * sc_ld(V, sc_off(V, b, h, j0 + jj, c));
            }
        }
        if (half) oh[c] = acc;
        __syncthreads();
        if (!half && c < Dv) out[2 + c] = acc + oh[c];
    } else {
        for (int64_t c = t; c < Dv; c += DA_THREADS) {
            float acc = 0.0f;
            for (int jj = 0; jj < nk; jj++) acc += p[jj] * sc_ld(V, sc_off(V, b, h, j0 + jj, c));
            out[2 + c] = acc;
        }
    }
}

__global__ void __launch_bounds__(DA_THREADS) k_da_partial(sc_node n, float *ws, int S) {
    sc_pdl_wait();
    const int64_t Tq = n.src[0].ne[2], bhq = blockIdx.x, i = bhq % Tq;
    if ((int64_t)blockIdx.y * DA_CHUNK >= da_visible(n, i, n.src[1].ne[2]))
        return; /* the combine reads only chunks below vis */
    da_partial(n, ws, S, bhq, (int)blockIdx.y);
}

/* The combine of (b, h, query) bhq. The partials are read through L2 (__ldcg): in the one-kernel
 * form other blocks of the same grid wrote them. */
__device__ __forceinline__ void da_combine(const sc_node &n, const float *ws, int S, int64_t bhq) {
    const sc_tensor &Q = n.src[0], &K = n.src[1], &V = n.src[2], &d = n.dst;
    const int64_t H = Q.ne[1], Tq = Q.ne[2], Tk = K.ne[2], Dv = V.ne[3];
    const int64_t i = bhq % Tq, bh = bhq / Tq, h = bh % H, b = bh / H;
    const int64_t vis = da_visible(n, i, Tk);
    const int ns = (int)((vis + DA_CHUNK - 1) / DA_CHUNK);
    const float *in = ws + (size_t)bhq * (size_t)S * (size_t)(Dv + 2);
    float M = -INFINITY;
    for (int s = 0; s < ns; s++) M = fmaxf(M, __ldcg(in + (size_t)s * (Dv + 2)));
    float L = 0.0f;
    for (int s = 0; s < ns; s++) {
        const float *c = in + (size_t)s * (Dv + 2);
        L += __ldcg(c + 1) * expf(__ldcg(c) - M);
    }
    const int64_t ob = ((b * Tq + i) * H + h) * Dv; /* dst (B,Tq,H,Dv) contiguous */
    for (int64_t c = threadIdx.x; c < Dv; c += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < ns; s++) {
            const float *cs = in + (size_t)s * (Dv + 2);
            acc += __ldcg(cs + 2 + c) * expf(__ldcg(cs) - M);
        }
        sc_st(d, ob + c, ns > 0 && L > 0.0f ? acc / L : 0.0f);
    }
}

__global__ void __launch_bounds__(DA_THREADS) k_da_combine(sc_node n, const float *ws, int S) {
    sc_pdl_wait();
    da_combine(n, ws, S, blockIdx.x);
}

/* Both in one grid: each block that holds visible keys writes its partial, then counts itself
 * done on its (b, h, query)'s counter; the block that counts last (every other partial is then
 * written: each was made visible by __threadfence before its count) combines them and sets the
 * counter back to 0 for the next launch. A query with no visible key: block 0 writes its zeros.
 * Same partials, same combine, same order: the same values as the two kernels. */
__global__ void __launch_bounds__(DA_THREADS) k_da_one(sc_node n, float *ws, int S, unsigned *count) {
    sc_pdl_wait();
    __shared__ bool last;
    const int64_t Tq = n.src[0].ne[2], bhq = blockIdx.x, i = bhq % Tq;
    const int64_t vis = da_visible(n, i, n.src[1].ne[2]);
    const int s = (int)blockIdx.y, ns = (int)((vis + DA_CHUNK - 1) / DA_CHUNK);
    if (s >= ns) {
        if (ns == 0 && s == 0) da_combine(n, ws, S, bhq);
        return;
    }
    da_partial(n, ws, S, bhq, s);
    __syncthreads(); /* the block's partial is written */
    if (threadIdx.x == 0) {
        __threadfence();
        last = atomicAdd(&count[bhq], 1u) == (unsigned)ns - 1u;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    da_combine(n, ws, S, bhq);
    if (threadIdx.x == 0) count[bhq] = 0u;
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

extern "C" cudaError_t sc_launch_decode_attn(const sc_node *n, void *workspace, unsigned *count,
                                             int64_t n_count, cudaStream_t s) {
    const int64_t bhq = n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2];
    const int S = da_chunks(n);
    if (bhq == 0) return cudaSuccess;
    if (count && bhq <= n_count)
        return sc_launch(k_da_one, dim3((unsigned)bhq, (unsigned)S), dim3(DA_THREADS), 0, s, *n,
                         (float *)workspace, S, count);
    cudaError_t e = sc_launch(k_da_partial, dim3((unsigned)bhq, (unsigned)S), dim3(DA_THREADS), 0, s, *n, (float *)workspace, S);
    if (e == cudaSuccess) e = sc_launch(k_da_combine, dim3((unsigned)bhq), dim3(DA_THREADS), 0, s, *n, (const float *)workspace, S);
    return e;
}

/* ==== the split kernel (the default; SISA_CUDA_DECODE_ATTN=old: the chunk kernels above) ====
 *
 * Why: the chunk kernels run one 128-thread block per 32 keys with four barrier-separated phases
 * (q, scores, softmax, P·V), each a dependent memory round trip, then a serial combine of ~24
 * partials by one block: ~17 us per 152M layer for a few MB. Here:
 *   grid (B·H·Tq, S), S = min(32, ceil(n_SM / (B·H·Tq)), ceil(Tk / 32)) from the device's SM count
 *   (11 at B=1, H=12 on 132 SMs: one block per SM); block s takes the groups of 8 visible keys
 *   [s·G/S, (s+1)·G/S), G = ceil(visible / 8) — computed in the kernel from p0, so the grid
 *   depends only on shapes and the recorded graph stays valid as p0 moves.
 *   Block = 8 warps. A warp takes every 8th group of its block (two at a time): 4 lanes per key
 *   hold the key's K row as float4 slots (lane part p: slots p, p+4, ..); for P·V lane l holds V
 *   slot l%16 of the group's keys of parity l/16. Every load of both groups (Q, gq, K, gk, V) is
 *   issued before the first use, so a warp waits for memory once per two groups. Online softmax
 *   per warp (max and rescale by shuffles); the 8 warps meet in shared memory; then either the
 *   block writes dst (S = 1) or its partial (max, sum, o) and the last block of its (b, h, query)
 *   (a counter, as k_da_one) combines the S partials: lane s reads partial s, the max and the sum
 *   by a fixed shuffle tree, each lane one output channel — fixed order, deterministic.
 * Bytes and floor (prediction, METHOD: the lead measures): a 152M decode layer at 640 visible
 * keys reads K 640·12·80·4 = 2.46 MB + V 640·12·64·4 = 1.97 MB + gk 31 KB ≈ 4.4 MB from DRAM
 * (the 305 MB of weights per step evict the previous step's cache from the 50 MB L2): 1.3 us at
 * 3.35 TB/s. Predicted ~3-4 us per layer (the read at ~2.5 TB/s plus the partial write, fence,
 * counter and combine, ~1 us), vs ~17 us for the chunk kernels.
 * Same semantics as the chunk kernels (ops.h): fp32 math, both forms, causal with p0, keys past
 * the limit never read, any float dtype and strides (per-element loads where K or V is not f32
 * with unit channel stride and 16-byte aligned rows), L = 0 (no visible key or all scores -inf)
 * gives zeros and a NaN score gives NaN (the oracle's rules). */
template <int NK4, int NVR, int UNR>
__global__ void __launch_bounds__(DS_THREADS) k_ds(sc_node n, float *ws, unsigned *count) {
    sc_pdl_wait();
    __shared__ ds_split_smem<NVR> sm;
    ds_split_body<NK4, NVR, UNR>(n, ws, count, blockIdx.x, (int)gridDim.y, (int)blockIdx.y, sm);
}

/* The cluster form (sm_90; SISA_CUDA_DECODE_ATTN=cluster, for measurement): the DC_CLUSTER blocks
 * of one (b, h, query) form a thread-block cluster (compile-time dims, so a CUDA-graph update of
 * the arguments cannot lose them); each leaves its partial in its shared memory, and after
 * cluster.sync block 0 combines them through distributed shared memory — no workspace, counter,
 * fence or L2 round trips. The second cluster.sync keeps every block's shared memory alive until
 * block 0 has read it. */
#define DC_CLUSTER 8
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define DC_CLUSTER_DIMS /* no clusters before sm_90: the body is empty there, never launched */
#else
#define DC_CLUSTER_DIMS __cluster_dims__(1, DC_CLUSTER, 1)
#endif
template <int NK4, int NVR, int UNR>
__global__ void DC_CLUSTER_DIMS __launch_bounds__(DS_THREADS) k_dsc(sc_node n) {
    sc_pdl_wait();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    cg::cluster_group cl = cg::this_cluster();
    const int64_t bhq = blockIdx.x, Dv = n.src[2].ne[3];
    const int s = (int)blockIdx.y; /* = the block's rank in its (1, DC_CLUSTER, 1) cluster */
    __shared__ float s_part[2 + 64 * NVR];
    __shared__ ds_smem<NVR> sm;
    float M, L;
    int64_t ob;
    ds_block<NK4, NVR, UNR, true>(n, bhq, DC_CLUSTER, s, M, L, &ob, sm,
                                  [&](int64_t c, float o) { s_part[2 + c] = o; });
    if (threadIdx.x == 0) {
        s_part[0] = M;
        s_part[1] = L;
    }
    cl.sync(); /* every block's partial is in its shared memory (cluster-scope release/acquire) */
    if (s == 0)
        ds_combine(n, DC_CLUSTER, ob, [&](int r, int64_t e) { return cl.map_shared_rank(s_part, (unsigned)r)[e]; });
    cl.sync();
    (void)Dv;
#endif
}

template <int NK4, int NVR, int UNR>
static cudaError_t ds_go(const sc_node *n, dim3 grid, bool cluster, float *ws, unsigned *count, cudaStream_t s) {
    if (cluster) return sc_launch(k_dsc<NK4, NVR, UNR>, dim3(grid.x, DC_CLUSTER), dim3(DS_THREADS), 0, s, *n);
    return sc_launch(k_ds<NK4, NVR, UNR>, grid, dim3(DS_THREADS), 0, s, *n, ws, count);
}

/* Blocks per (b, h, query) of the split kernel: enough to cover the SMs once; at most 32 (one
 * partial per lane in the combine) and one per 32 keys (the workspace sc_decode_attn_workspace
 * sizes); 1 without counters. */
static int64_t ds_split(const sc_node *n, const unsigned *count, int64_t n_count, int n_sm, int split) {
    const int64_t bhq = n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2];
    int64_t S = 1;
    if (count && bhq <= n_count && (n_sm > 0 || split > 0)) {
        S = split > 0 ? split : ((int64_t)n_sm + bhq - 1) / bhq;
        if (S > DS_MAX_SPLIT) S = DS_MAX_SPLIT;
        if (S > da_chunks(n)) S = da_chunks(n);
        if (S < 1) S = 1;
    }
    return S;
}

extern "C" cudaError_t sc_launch_decode_attn_split(const sc_node *n, void *workspace, unsigned *count,
                                                   int64_t n_count, int n_sm, int split, int cluster,
                                                   cudaStream_t s) {
    const int64_t bhq = n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2];
    const int64_t D = n->src[0].ne[3], Dv = n->src[2].ne[3];
    if (bhq == 0) return cudaSuccess;
    if (D > DA_MAX_D || Dv > DA_MAX_D) return cudaErrorInvalidValue;
    const int64_t S = ds_split(n, count, n_count, n_sm, split);
    const dim3 grid((unsigned)bhq, (unsigned)S);
    float *ws = (float *)workspace;
    const bool cl = cluster != 0;
    if (D <= 80 && Dv <= 64) return ds_go<5, 1, 2>(n, grid, cl, ws, count, s);
    if (D <= 128 && Dv <= 64) return ds_go<8, 1, 2>(n, grid, cl, ws, count, s);
    if (Dv <= 64) return ds_go<16, 1, 1>(n, grid, cl, ws, count, s);
    return ds_go<16, 4, 1>(n, grid, cl, ws, count, s);
}

/* The persistent kernel's task: the split kernel's grid (bhq, S), its block body compiled for
 * DS_MEGA_NK4/DS_MEGA_NVR (d_qk <= 128, d_v <= 64). For d_qk <= 80 the kernel above takes
 * <5, 1, 2>: the extra K/Q slots are zeros that add nothing and the groups are met in the same
 * order, so the values are the same. */
extern "C" int sc_mega_decode_attn(const sc_node *n, void *workspace, unsigned *count, int64_t n_count, int n_sm,
                                   int split, sc_mega_task *t) {
    const int64_t bhq = n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2];
    const int64_t D = n->src[0].ne[3], Dv = n->src[2].ne[3];
    if (D > 16 * DS_MEGA_NK4 || Dv > 64 * DS_MEGA_NVR) return 0;
    const int64_t S = ds_split(n, count, n_count, n_sm, split);
    if (bhq * S > 0x7fffffff) return 0;
    t->kind = SC_MT_DECODE_ATTN;
    t->gx = (int32_t)bhq;
    t->nvb = (int32_t)(bhq * S);
    t->i[0] = (int32_t)S;
    t->p[0] = workspace;
    t->p[1] = S > 1 ? count : NULL;
    t->smem = sizeof(ds_split_smem<DS_MEGA_NVR>);
    t->u.n = *n;
    return 1;
}
