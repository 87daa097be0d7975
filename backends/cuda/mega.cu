/*
 * mega.cu — the persistent decode kernel (SISA_CUDA_MEGA=1; docs/CUDA.md "Persistent decode
 * kernel"): ONE cooperative launch runs a recorded step's task list (cuda_mega.h, built by
 * cuda_mega.c). Every block loops over the tasks; of each task it runs the virtual blocks v with
 * v = blockIdx.x - first (mod gridDim.x), calling the same __device__ body as the task's own
 * kernel (elementwise.cuh, norm.cuh, rope.cuh, gemv.cuh, ...), and after a task that a later one
 * depends on it waits at a grid-wide barrier. Why: a decode step as a CUDA graph is 134 dependent
 * kernels and ~4.5 us of launch/drain latency each (docs/CUDA.md "2026-12-07"); a barrier between
 * co-resident blocks costs about an atomic round trip.
 *
 * The barrier (cooperative groups' grid.sync scheme for sm_70+, cooperative_groups/details/sync.h):
 * after __syncthreads, each block's thread 0 adds 1 to one counter with atom.add.release.gpu —
 * block 0 adds 0x80000000 - (gridDim.x - 1) — so bit 31 of the counter flips exactly when every
 * block has arrived and the low bits return to where they were: reusable any number of times with
 * no reset. It spins on ld.acquire.gpu until bit 31 differs from what its add returned, then
 * releases its block (__syncthreads): the block's writes before the barrier happen before every
 * block's reads after it (release by thread 0 after the CTA barrier, acquire, CTA barrier). The spin is bounded: past timeout_ns of the
 * global timer the block records the stalled task in host-visible memory (sc_mega_err), raises
 * the abort word that makes every other spinning block leave too, and the kernel ends; the host
 * reports it at synchronize (cuda_mega.c). While thread 0 spins, warps 1..7 ask L2 for this
 * block's slices of the weights of the next streaming GEMVs (the task's pf list: hints, the
 * weights are constant during a step). A task's descriptor is copied into shared memory with
 * cp.async while the task before it runs (double buffer).
 *
 * No griddepcontrol: the bodies take their arguments without waiting (the wrappers wait); the
 * launch is an ordinary stream-ordered one. Decode attention's last-block combine works as in
 * its kernel: its counters are left zero by the last block, which the barrier orders before the
 * next attention task.
 */
#include "cuda_mega.h"
#include "decode_attn.cuh"
#include "elementwise.cuh"
#include "gemv.cuh"
#include "norm.cuh"
#include "rope.cuh"
#include "ssm.cuh"
#include "ssm_augment.cuh"

static_assert(SC_MEGA_THREADS == GEMV_WARPS * 32 && SC_MEGA_THREADS == SSM_THREADS && SC_MEGA_THREADS == SA_THREADS &&
                  SC_MEGA_THREADS == DS_THREADS,
              "the block size of the GEMV, SSM and split-attention bodies");
static_assert(SC_MEGA_THREADS >= ROPE_THREADS, "ROPE's threads fit");
static_assert(sizeof(sc_mega_task) % 16 == 0 && sizeof(sc_mega_task) / 16 <= SC_MEGA_THREADS,
              "a task is fetched as one 16-byte piece per thread");

/* Decode attention one group of 8 keys at a time per warp (the split kernel loads two): each warp
 * meets its groups in the same order either way, so the values are the same, with fewer registers. */
#define MEGA_DS_UNR 1

typedef struct mega_pf0 {
    int32_t t[SC_MEGA_PF];
} mega_pf0;

__device__ __forceinline__ unsigned ld_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ unsigned atom_add_release(unsigned *p, unsigned v) {
    unsigned old;
    asm volatile("atom.add.release.gpu.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
    return old;
}

__device__ __forceinline__ long long global_ns() {
    long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

/* dst = *src (global -> shared), asynchronously (cp.async, one 16-byte piece per thread, no
 * registers held): issued before a task runs, waited for (sc_cp_async_wait_all) after it. */
__device__ __forceinline__ void mega_fetch_task(sc_mega_task &dst, const sc_mega_task *src) {
    if (threadIdx.x < sizeof(sc_mega_task) / 16)
        sc_cp_async16((uint4 *)&dst + threadIdx.x, (const uint4 *)src + threadIdx.x);
    sc_cp_async_commit();
}

/* This block's first virtual block of a task (first: the physical block that runs its block 0). */
__device__ __forceinline__ int64_t mega_first_vb(int32_t first) {
    const unsigned G = gridDim.x;
    return ((int64_t)blockIdx.x + G - (unsigned)first % G) % G;
}

/* Ask L2 for this block's slices of b of the streaming GEMV tasks in pf (-1 ends), by threads tid
 * of nthr. Their descriptors are read from global memory (L2) first, all together: one round trip. */
__device__ __forceinline__ void mega_prefetch(const sc_mega_task *tasks, const int32_t *pf, unsigned tid,
                                              unsigned nthr) {
    const void *bp[SC_MEGA_PF];
    int64_t ld[SC_MEGA_PF], N[SC_MEGA_PF], K[SC_MEGA_PF], nvb[SC_MEGA_PF];
    int32_t first[SC_MEGA_PF];
#pragma unroll
    for (int q = 0; q < SC_MEGA_PF; q++) {
        const sc_mega_task *u = tasks + (pf[q] >= 0 ? pf[q] : 0);
        const sc_tensor &b = u->u.g.mm.src[1];
        bp[q] = b.p;
        ld[q] = b.nb[2];
        N[q] = b.ne[2];
        K[q] = b.ne[3];
        nvb[q] = pf[q] >= 0 ? u->nvb : 0;
        first[q] = u->first;
    }
#pragma unroll
    for (int q = 0; q < SC_MEGA_PF; q++) {
        for (int64_t v = mega_first_vb(first[q]); v < nvb[q]; v += gridDim.x) {
            int64_t j0, j1;
            gs_cols(N[q], v, nvb[q], j0, j1);
            if (j1 > j0) gs_prefetch_rows(bp[q], ld[q], j0, j1, K[q], tid, nthr);
        }
    }
}

/* A GEMV task's virtual block v: the block sum's floats, then the staged rows (cuda_mega.h). */
template <int PRO, int EPI>
__device__ __forceinline__ void mega_gemv(const sc_mega_task &t, int64_t v, unsigned char *sm) {
    const sc_gemv_fused &f = t.u.g;
    float *red = (float *)sm, *xs = (float *)(sm + SC_MEGA_RED_BYTES);
    if (t.kind == SC_MT_GEMV_STREAM) {
        int64_t j0, j1;
        gs_cols(f.mm.src[1].ne[2], v, t.nvb, j0, j1);
        gs_main<SC_MEGA_GEMV_ROWS, PRO, EPI, false>(f.mm, &f, t.i[0], t.i[1], j0, j1, xs, red, NULL);
    } else {
        gemv_body<SC_MEGA_GEMV_ROWS, PRO, EPI, false>(f.mm, &f, t.i[0], v, t.nvb, xs, red);
    }
}

/* Self-test (SC_MT_CHECK): every block must have counted itself into task k - 1 before any block
 * runs task k; a miss is counted at c[i[1]]. */
__device__ __forceinline__ void mega_check(const sc_mega_task &t) {
    unsigned *c = (unsigned *)t.p[0];
    const int k = t.i[0];
    if (k > 0 && atomicAdd(&c[k - 1], 0u) != (unsigned)gridDim.x) atomicAdd(&c[t.i[1]], 1u);
    atomicAdd(&c[k], 1u);
}

/* Virtual block v of task t, all threads of the block; sm: the dynamic shared memory. */
__device__ __forceinline__ void mega_run(const sc_mega_task &t, int64_t v, unsigned char *sm) {
    switch (t.kind) {
    case SC_MT_ELEMENTWISE:
        switch (t.sub) {
        case OP_CPY: ew_rows<OP_CPY>(t.u.n, t.rows, v, t.nvb); break;
        case OP_EMBED: ew_rows<OP_EMBED>(t.u.n, t.rows, v, t.nvb); break;
        case OP_ADD: ew_rows<OP_ADD>(t.u.n, t.rows, v, t.nvb); break;
        case OP_SCALE: ew_rows<OP_SCALE>(t.u.n, t.rows, v, t.nvb); break;
        case OP_SWIGLU: ew_rows<OP_SWIGLU>(t.u.n, t.rows, v, t.nvb); break;
        case OP_AUGMENT: ew_rows<OP_AUGMENT>(t.u.n, t.rows, v, t.nvb); break;
        }
        break;
    case SC_MT_RMS_NORM: rms_norm_rows(t.u.n, t.rows, v, t.nvb, (float *)sm); break;
    case SC_MT_ROPE:
        if (threadIdx.x < ROPE_THREADS) rope_body(t.u.n, t.rows, v % t.gx, t.gx, v / t.gx, threadIdx.x);
        break;
    case SC_MT_GEMV:
    case SC_MT_GEMV_STREAM:
        switch (t.sub) {
        case 0: mega_gemv<SC_GEMV_PRO_NONE, SC_GEMV_EPI_NONE>(t, v, sm); break;
        case 1: mega_gemv<SC_GEMV_PRO_NONE, SC_GEMV_EPI_ADD>(t, v, sm); break;
        case 2: mega_gemv<SC_GEMV_PRO_RMS_NORM, SC_GEMV_EPI_NONE>(t, v, sm); break;
        case 3: mega_gemv<SC_GEMV_PRO_RMS_NORM, SC_GEMV_EPI_ADD>(t, v, sm); break;
        case 4: mega_gemv<SC_GEMV_PRO_SWIGLU, SC_GEMV_EPI_NONE>(t, v, sm); break;
        case 5: mega_gemv<SC_GEMV_PRO_SWIGLU, SC_GEMV_EPI_ADD>(t, v, sm); break;
        }
        break;
    case SC_MT_SSM_DECAY: ssm_decay_body(t.u.n, v, *(ssm_decay_smem *)sm); break;
    case SC_MT_SSM_CHANNELS: ssm_channels_body(t.u.n, v, *(ssm_channels_smem *)sm); break;
    case SC_MT_SSM_AUGMENT:
        if (t.sub) ssm_augment_body<true>(t.u.a, v, *(sa_smem *)sm);
        else ssm_augment_body<false>(t.u.a, v, *(sa_smem *)sm);
        break;
    case SC_MT_DECODE_ATTN:
        ds_split_body<DS_MEGA_NK4, DS_MEGA_NVR, MEGA_DS_UNR, false>(t.u.n, (float *)t.p[0], (unsigned *)t.p[1],
                                                                    v % t.gx, t.i[0], (int)(v / t.gx),
                                                                    *(ds_split_smem<DS_MEGA_NVR> *)sm);
        break;
    case SC_MT_CHECK:
        if (threadIdx.x == 0) mega_check(t);
        break;
    }
}

/* The first block to give up on the barrier after task k reports it; every block leaves. */
__device__ __noinline__ void mega_stall(sc_mega_sync *sy, sc_mega_err *err, int k) {
    if (atomicCAS(&sy->abort, 0u, 1u) != 0u) return;
    volatile sc_mega_err *e = err;
    e->task = k;
    e->block = (int)blockIdx.x;
    e->counter = *(volatile unsigned *)&sy->arrive;
    __threadfence_system();
    e->flag = 1;
    __threadfence_system();
}

/* The grid barrier after task k (see the top of the file); meanwhile warps 1.. prefetch the pf
 * list, and the fetch of the next task (mega_fetch_task) completes. false: it timed out (or
 * another block did): leave. */
__device__ __forceinline__ bool mega_barrier(sc_mega_sync *sy, sc_mega_err *err, int k, long long timeout_ns,
                                             const sc_mega_task *tasks, const int32_t *pf, int *s_go) {
    __syncthreads(); /* the block's work of the phase is done */
    if (threadIdx.x == 0) {
        int go = 1;
        const unsigned inc = blockIdx.x == 0 ? 0x80000000u - (gridDim.x - 1u) : 1u;
        const unsigned old = atom_add_release(&sy->arrive, inc);
        long long t0 = 0;
        unsigned polls = 0;
        while (((ld_acquire(&sy->arrive) ^ old) & 0x80000000u) == 0u) {
            if ((++polls & 255u) != 0u) continue;
            if (*(volatile unsigned *)&sy->abort) {
                go = 0;
                break;
            }
            const long long now = global_ns();
            if (t0 == 0) {
                t0 = now;
            } else if (now - t0 > timeout_ns) {
                mega_stall(sy, err, k);
                go = 0;
                break;
            }
        }
        *s_go = go;
    } else if (threadIdx.x >= 32) {
        mega_prefetch(tasks, pf, threadIdx.x - 32, blockDim.x - 32);
    }
    sc_cp_async_wait_all(); /* the next task's descriptor */
    __syncthreads();
    return *s_go != 0;
}

/* MINB: the blocks per SM its registers must allow (__launch_bounds__): 1 takes what the bodies
 * want (the decode attention's set the count, ptxas: 210 on sm_90, no spills); 2 caps them at
 * 128 (the attention body spills) for twice the warps per SM (SISA_CUDA_MEGA_BPS=2). */
template <int MINB>
__global__ void __launch_bounds__(SC_MEGA_THREADS, MINB)
    k_mega(const sc_mega_task *__restrict__ tasks, int n, mega_pf0 pf0, sc_mega_sync *sync, sc_mega_err *err,
           long long timeout_ns) {
    extern __shared__ __align__(16) unsigned char mega_smem[];
    __shared__ __align__(16) sc_mega_task desc[2];
    __shared__ int s_go;
    mega_fetch_task(desc[0], tasks);
    if (threadIdx.x >= 32) mega_prefetch(tasks, pf0.t, threadIdx.x - 32, blockDim.x - 32);
    sc_cp_async_wait_all();
    __syncthreads();
    for (int k = 0; k < n; k++) {
        const sc_mega_task &t = desc[k & 1];
        if (k + 1 < n) mega_fetch_task(desc[(k + 1) & 1], tasks + k + 1); /* lands while task k runs */
        if (t.kind == SC_MT_STALL && blockIdx.x == 0) return; /* self-test: never arrives */
        for (int64_t v = mega_first_vb(t.first); v < t.nvb; v += gridDim.x) {
            mega_run(t, v, mega_smem);
            __syncthreads(); /* shared memory is reused by the next virtual block */
        }
        if (k + 1 == n) break;
        if (t.barrier) {
            if (!mega_barrier(sync, err, k, timeout_ns, tasks, t.pf, &s_go)) return;
        } else { /* independent of the next task: no barrier */
            sc_cp_async_wait_all();
            __syncthreads();
        }
    }
}

static void (*mega_kernel(int minb))(const sc_mega_task *, int, mega_pf0, sc_mega_sync *, sc_mega_err *, long long) {
    return minb >= 2 ? k_mega<2> : k_mega<1>;
}

extern "C" cudaError_t sc_mega_occupancy(int minb, int *blocks_per_sm) {
    *blocks_per_sm = 0;
    cudaError_t e =
        cudaFuncSetAttribute(mega_kernel(minb), cudaFuncAttributeMaxDynamicSharedMemorySize, SC_MEGA_SMEM);
    if (e == cudaSuccess)
        e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_sm, mega_kernel(minb), SC_MEGA_THREADS,
                                                          SC_MEGA_SMEM);
    return sc_launched(e);
}

extern "C" cudaError_t sc_mega_launch(int minb, const sc_mega_task *tasks, int n, const int32_t pf0[SC_MEGA_PF],
                                      sc_mega_sync *sync, sc_mega_err *err, long long timeout_ns, int grid,
                                      size_t smem, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    mega_pf0 p0;
    for (int q = 0; q < SC_MEGA_PF; q++) p0.t[q] = pf0[q];
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)grid);
    cfg.blockDim = dim3(SC_MEGA_THREADS);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeCooperative; /* every block co-resident, or the launch fails */
    at[0].val.cooperative = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    return sc_launched(cudaLaunchKernelEx(&cfg, mega_kernel(minb), tasks, n, p0, sync, err, timeout_ns));
}
