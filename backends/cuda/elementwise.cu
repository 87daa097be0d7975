/*
 * elementwise.cu — ops where each destination element depends on source elements at the same
 * (or a gathered) index: CPY, ADD (with broadcast), SCALE, SWIGLU, AUGMENT, EMBED (ops.h).
 *
 * One grid-stride kernel per op over the contiguous destination; sources are read through their
 * own element strides and dtypes, so views need no copy first. All math in fp32, one rounding on
 * the store. These ops are memory bound: the dtype switch is warp-uniform and costs nothing next
 * to the loads.
 */
#include "sc_common.cuh"

enum { OP_CPY = SC_OP_CPY, OP_EMBED = SC_OP_EMBED, OP_ADD = SC_OP_ADD, OP_SCALE = SC_OP_SCALE,
       OP_SWIGLU = SC_OP_SWIGLU, OP_AUGMENT = SC_OP_AUGMENT };

template <int OP>
__global__ void k_elementwise(sc_node n, int64_t total) {
    const sc_tensor &d = n.dst;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c[4];
        sc_unflatten(d.ne, i, c);
        float v;
        if (OP == OP_CPY) {
            v = sc_ld(n.src[0], sc_off(n.src[0], c[0], c[1], c[2], c[3]));
        } else if (OP == OP_SCALE) {
            v = sc_ld(n.src[0], sc_off(n.src[0], c[0], c[1], c[2], c[3])) * n.fp[0];
        } else if (OP == OP_ADD) {
            const sc_tensor &b = n.src[1];
            float a = sc_ld(n.src[0], sc_off(n.src[0], c[0], c[1], c[2], c[3]));
            float bv = sc_ld(b, sc_off(b, b.ne[0] == 1 ? 0 : c[0], b.ne[1] == 1 ? 0 : c[1],
                                       b.ne[2] == 1 ? 0 : c[2], b.ne[3] == 1 ? 0 : c[3]));
            v = a + bv;
        } else if (OP == OP_SWIGLU) {
            float g = sc_ld(n.src[0], sc_off(n.src[0], c[0], c[1], c[2], c[3]));
            float u = sc_ld(n.src[1], sc_off(n.src[1], c[0], c[1], c[2], c[3]));
            v = g / (1.0f + expf(-g)) * u;
        } else if (OP == OP_AUGMENT) {
            const int64_t Da = n.src[0].ne[3], Db = n.src[1].ne[3];
            if (c[3] < Da)
                v = sc_ld(n.src[0], sc_off(n.src[0], c[0], c[1], c[2], c[3]));
            else if (c[3] < Da + Db)
                v = sc_ld(n.src[1], sc_off(n.src[1], c[0], c[1], c[2], c[3] - Da));
            else
                v = 0.0f;
        } else { /* EMBED: dst (1,B,T,D), ids (1,1,B,T), table (1,1,V,D) */
            const sc_tensor &ids = n.src[1], &tab = n.src[0];
            int32_t id = ((const int32_t *)ids.p)[sc_off(ids, 0, 0, c[1], c[2])];
            v = (id >= 0 && id < tab.ne[2]) ? sc_ld(tab, sc_off(tab, 0, 0, id, c[3])) : 0.0f;
        }
        sc_st(d, i, v);
    }
}

extern "C" cudaError_t sc_launch_elementwise(const sc_node *n, cudaStream_t s) {
    const int64_t total = n->dst.ne[0] * n->dst.ne[1] * n->dst.ne[2] * n->dst.ne[3];
    if (total == 0) return cudaSuccess;
    const int threads = 256;
    unsigned blocks = sc_blocks(total, threads);
    if (blocks > 65535u * 16u) blocks = 65535u * 16u;
    switch (n->op) {
    case OP_CPY: k_elementwise<OP_CPY><<<blocks, threads, 0, s>>>(*n, total); break;
    case OP_EMBED: k_elementwise<OP_EMBED><<<blocks, threads, 0, s>>>(*n, total); break;
    case OP_ADD: k_elementwise<OP_ADD><<<blocks, threads, 0, s>>>(*n, total); break;
    case OP_SCALE: k_elementwise<OP_SCALE><<<blocks, threads, 0, s>>>(*n, total); break;
    case OP_SWIGLU: k_elementwise<OP_SWIGLU><<<blocks, threads, 0, s>>>(*n, total); break;
    case OP_AUGMENT: k_elementwise<OP_AUGMENT><<<blocks, threads, 0, s>>>(*n, total); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
