/*
 * elementwise.cu — ops where each destination element depends on source elements at the same
 * (or a gathered) index: CPY, ADD (with broadcast), SCALE, SWIGLU, AUGMENT, EMBED (ops.h).
 *
 * One kernel per op, a block per destination row; sources are read through their
 * own element strides and dtypes, so views need no copy first. All math in fp32, one rounding on
 * the store. These ops are memory bound: the dtype switch is warp-uniform and costs nothing next
 * to the loads.
 */
#include "cuda_mega.h"
#include "elementwise.cuh"

/* One block per destination row (grid-stride over rows): elementwise.cuh's ew_rows. */
template <int OP>
__global__ void k_elementwise(sc_node n, int64_t rows) {
    sc_pdl_wait();
    ew_rows<OP>(n, rows, blockIdx.x, gridDim.x);
}

/* Blocks of the launch (one per destination row, capped; 0 = nothing to do); *rows the rows. */
static unsigned ew_blocks(const sc_node *n, int64_t *rows) {
    *rows = n->dst.ne[0] * n->dst.ne[1] * n->dst.ne[2];
    if (*rows == 0 || n->dst.ne[3] == 0) return 0;
    return *rows < (int64_t)65535 * 32 ? (unsigned)*rows : 65535u * 32u;
}

extern "C" cudaError_t sc_launch_elementwise(const sc_node *n, cudaStream_t s) {
    int64_t total;
    const unsigned blocks = ew_blocks(n, &total);
    if (blocks == 0) return cudaSuccess;
    const int64_t W = n->dst.ne[3];
    const int threads = W >= 512 ? 256 : W >= 128 ? 128 : 64;
    cudaError_t e;
    switch (n->op) {
    case OP_CPY: e = sc_launch(k_elementwise<OP_CPY>, dim3(blocks), dim3(threads), 0, s, *n, total); break;
    case OP_EMBED: e = sc_launch(k_elementwise<OP_EMBED>, dim3(blocks), dim3(threads), 0, s, *n, total); break;
    case OP_ADD: e = sc_launch(k_elementwise<OP_ADD>, dim3(blocks), dim3(threads), 0, s, *n, total); break;
    case OP_SCALE: e = sc_launch(k_elementwise<OP_SCALE>, dim3(blocks), dim3(threads), 0, s, *n, total); break;
    case OP_SWIGLU: e = sc_launch(k_elementwise<OP_SWIGLU>, dim3(blocks), dim3(threads), 0, s, *n, total); break;
    case OP_AUGMENT: e = sc_launch(k_elementwise<OP_AUGMENT>, dim3(blocks), dim3(threads), 0, s, *n, total); break;
    default: return cudaErrorInvalidValue;
    }
    return e;
}

/* The persistent kernel's task: the same rows and blocks (any block size gives the same values). */
extern "C" int sc_mega_elementwise(const sc_node *n, sc_mega_task *t) {
    switch (n->op) {
    case OP_CPY: case OP_EMBED: case OP_ADD: case OP_SCALE: case OP_SWIGLU: case OP_AUGMENT: break;
    default: return 0;
    }
    t->kind = SC_MT_ELEMENTWISE;
    t->sub = n->op;
    t->nvb = (int32_t)ew_blocks(n, &t->rows);
    t->u.n = *n;
    return 1;
}
