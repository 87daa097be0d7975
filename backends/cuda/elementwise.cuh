/*
 * elementwise.cuh — the body of the elementwise ops (elementwise.cu: CPY, ADD with broadcast,
 * SCALE, SWIGLU, AUGMENT, EMBED), shared by its kernel and the persistent decode kernel
 * (mega.cu). A "block" here is a virtual block: the kernel passes blockIdx.x / gridDim.x, the
 * persistent kernel the task's virtual block index and count. Any block size.
 */
#pragma once
#include "sc_common.cuh"

enum { OP_CPY = SC_OP_CPY, OP_EMBED = SC_OP_EMBED, OP_ADD = SC_OP_ADD, OP_SCALE = SC_OP_SCALE,
       OP_SWIGLU = SC_OP_SWIGLU, OP_AUGMENT = SC_OP_AUGMENT };

/* Rows r0, r0 + rstep, ... of the destination, one row per (virtual) block: the row's coordinates
 * and each source's row base are computed once per row, so the per-element work is one strided
 * load per source and one store — no 64-bit divisions per element (they cost more than the memory
 * traffic). */
template <int OP>
__device__ __forceinline__ void ew_rows(const sc_node &n, int64_t rows, int64_t r0, int64_t rstep) {
    const sc_tensor &d = n.dst, &a = n.src[0], &b = n.src[1];
    const int64_t W = d.ne[3];
    for (int64_t r = r0; r < rows; r += rstep) {
        const int64_t c2 = r % d.ne[2], q = r / d.ne[2], c1 = q % d.ne[1], c0 = q / d.ne[1];
        int64_t ab = 0, bb = 0;
        if (OP == OP_EMBED) { /* dst (1,B,T,D), ids (1,1,B,T), table (1,1,V,D) */
            const int32_t id = ((const int32_t *)b.p)[sc_off(b, 0, 0, c1, c2)];
            ab = (id >= 0 && id < a.ne[2]) ? id * a.nb[2] : -1;
        } else {
            ab = c0 * a.nb[0] + c1 * a.nb[1] + c2 * a.nb[2];
        }
        if (OP == OP_ADD)
            bb = (b.ne[0] == 1 ? 0 : c0) * b.nb[0] + (b.ne[1] == 1 ? 0 : c1) * b.nb[1] +
                 (b.ne[2] == 1 ? 0 : c2) * b.nb[2];
        else if (OP == OP_SWIGLU || OP == OP_AUGMENT)
            bb = c0 * b.nb[0] + c1 * b.nb[1] + c2 * b.nb[2];
        for (int64_t j = threadIdx.x; j < W; j += blockDim.x) {
            float v;
            if (OP == OP_CPY) {
                v = sc_ld(a, ab + j * a.nb[3]);
            } else if (OP == OP_SCALE) {
                v = sc_ld(a, ab + j * a.nb[3]) * n.fp[0];
            } else if (OP == OP_ADD) {
                v = sc_ld(a, ab + j * a.nb[3]) + sc_ld(b, bb + (b.ne[3] == 1 ? 0 : j) * b.nb[3]);
            } else if (OP == OP_SWIGLU) {
                const float g = sc_ld(a, ab + j * a.nb[3]), u = sc_ld(b, bb + j * b.nb[3]);
                v = g / (1.0f + expf(-g)) * u;
            } else if (OP == OP_AUGMENT) {
                const int64_t Da = a.ne[3], Db = b.ne[3];
                v = j < Da ? sc_ld(a, ab + j * a.nb[3])
                  : j < Da + Db ? sc_ld(b, bb + (j - Da) * b.nb[3]) : 0.0f;
            } else { /* EMBED: an id out of range gives a zero row (ops.h) */
                v = ab >= 0 ? sc_ld(a, ab + j * a.nb[3]) : 0.0f;
            }
            sc_st(d, r * W + j, v);
        }
    }
}
