/*
 * cuda_mega.h — the persistent decode kernel's task list: what mega.cu executes and cuda_mega.c
 * builds (docs/CUDA.md "Persistent decode kernel (SISA_CUDA_MEGA=1)").
 *
 * A task is one kernel launch the dispatcher would have made, with the same by-value arguments:
 * the kernel's grid becomes the task's "virtual blocks" (GEMVs are re-gridded to the persistent
 * grid, which changes no value: gemv.cu's plan fixes the K segments, the columns only move between
 * blocks). Each op family's .cu fills its tasks from the same plan its launcher uses
 * (sc_mega_<family> below), so the two cannot drift.
 */
#ifndef SISA_CUDA_MEGA_H
#define SISA_CUDA_MEGA_H

#include "cuda_decode_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SC_MEGA_THREADS 256              /* the block size: that of the GEMV, SSM and split-attention kernels */
#define SC_MEGA_SMEM (48 * 1024 + 128)   /* dynamic shared memory a task may use, at most */
#define SC_MEGA_PF 4                     /* GEMV tasks one barrier may prefetch */
#define SC_MEGA_GEMV_ROWS 1              /* the GEMV rows (batch) the kernel is compiled for */
#define SC_MEGA_RED_BYTES 64             /* a GEMV task's block-sum floats, before its staged rows */

enum sc_mega_kind {
    SC_MT_ELEMENTWISE = 1, /* sub = op (elementwise.cu); rows */
    SC_MT_RMS_NORM,        /* rows */
    SC_MT_ROPE,            /* rows; gx = the kernel's blocks in x */
    SC_MT_SSM_DECAY,
    SC_MT_SSM_CHANNELS,
    SC_MT_SSM_AUGMENT,     /* sub = 16-byte rows (vec_ok) */
    SC_MT_GEMV,            /* one warp per column; sub = pro·2 + epi; i[0] = vec */
    SC_MT_GEMV_STREAM,     /* sub = pro·2 + epi; i[0] = nseg, i[1] = seglen */
    SC_MT_DECODE_ATTN,     /* the split kernel; gx = B·H·Tq, i[0] = S; p[0] workspace, p[1] counters */
    SC_MT_CHECK,           /* self-test: p[0] = counters, checks the barrier's order */
    SC_MT_STALL,           /* self-test: block 0 leaves the kernel, the others must time out */
};

typedef struct sc_mega_task {
    int32_t kind, sub;
    int32_t nvb;     /* virtual blocks (the blocks the kernel would have launched) */
    int32_t gx;      /* x extent of a 2-D virtual grid: virtual block v = (v % gx, v / gx) */
    int32_t first;   /* the physical block that runs virtual block 0 (spreads a phase's tasks) */
    int32_t smem;    /* dynamic shared memory the body uses */
    int32_t barrier; /* a grid barrier after this task (else the next one is independent of it) */
    int32_t pf_ok;   /* a streaming GEMV whose weight slices may be prefetched into L2 */
    int32_t pad_[2];
    int32_t pf[SC_MEGA_PF]; /* tasks whose weight slices to prefetch at the barrier after this one, -1 */
    int32_t i[4];
    int64_t rows;
    void *p[2];
    union {
        sc_node n;         /* every kind but these two */
        sc_gemv_fused g;   /* SC_MT_GEMV, SC_MT_GEMV_STREAM (g.mm is the MATMUL) */
        sc_ssm_augment a;  /* SC_MT_SSM_AUGMENT */
    } u;
} sc_mega_task;

/* The grid barrier's state and the error record, in device memory (one per recording). */
typedef struct sc_mega_sync {
    unsigned arrive; /* bit 31 flips when every block has arrived (cooperative groups' scheme) */
    unsigned abort;  /* set by the first block that times out: the others leave too */
    int pad_[30];    /* arrive alone in its 128-byte line */
} sc_mega_sync;

/* What a stalled barrier reports (host memory mapped into the device; cuda_mega.c reads it). */
typedef struct sc_mega_err {
    int flag;         /* 1: a barrier timed out */
    int task;         /* the barrier after this task */
    int block;        /* the block that gave up */
    unsigned counter; /* the barrier's arrive word then */
} sc_mega_err;

/* Fill t (kind, sub, nvb, gx, smem, rows, i, p, u) as the family's launcher would launch the node.
 * 1: filled (nvb 0 = the launcher would launch nothing); 0: the persistent kernel has no task
 * for it (another variant, rows or shared memory than it is compiled for). */
int sc_mega_elementwise(const sc_node *n, sc_mega_task *t);
int sc_mega_rms_norm(const sc_node *n, sc_mega_task *t);
int sc_mega_rope(const sc_node *n, sc_mega_task *t);
int sc_mega_ssm_decay(const sc_node *n, sc_mega_task *t);
int sc_mega_ssm_channels(const sc_node *n, sc_mega_task *t);
int sc_mega_ssm_augment(const sc_ssm_augment *f, sc_mega_task *t);
/* A GEMV (f->pro = f->epi = 0 for a plain one) for a persistent grid of `grid` blocks on n_sm SMs. */
int sc_mega_gemv(const sc_gemv_fused *f, int n_sm, int grid, sc_mega_task *t);
/* The split decode attention, as sc_launch_decode_attn_split with cluster = 0. */
int sc_mega_decode_attn(const sc_node *n, void *workspace, unsigned *count, int64_t n_count, int n_sm, int split,
                        sc_mega_task *t);

/* mega.cu: the kernel comes in two register budgets, minb = 1 (what its bodies want) and 2 (at most
 * 128 registers, for 2 blocks per SM). Blocks of it that fit on one SM
 * (cudaOccupancyMaxActiveBlocksPerMultiprocessor at SC_MEGA_SMEM), after raising its limit. */
cudaError_t sc_mega_occupancy(int minb, int *blocks_per_sm);
/* Run tasks[0, n) (device memory) with `grid` co-resident blocks (cooperative launch). pf0: the
 * tasks to prefetch before the first one (-1 ends); timeout_ns: a barrier's patience. */
cudaError_t sc_mega_launch(int minb, const sc_mega_task *tasks, int n, const int32_t pf0[SC_MEGA_PF],
                           sc_mega_sync *sync, sc_mega_err *err, long long timeout_ns, int grid, size_t smem,
                           cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
