/*
 * ref.h — private to the oracle (backends/cpu/ref_*.c): element access in fp64 and the few
 * scalar functions several op families share.
 *
 * Every kernel reads and writes one element at a time through ref_get/ref_set, which go through
 * the tensor's own byte strides and sisa_load_elem/sisa_store_elem. That is slow and deliberate:
 * one code path serves every dtype and every strided view, and the kernels read like the math.
 */
#ifndef SISA_CPU_REF_H
#define SISA_CPU_REF_H

#include <math.h>
#include <stdlib.h>

#include "cpu.h"

static inline double ref_get(const sisa_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return sisa_load_elem((const char *)sisa_cpu_data(t) + sisa_tensor_offset_of(t, i0, i1, i2, i3),
                          t->dtype);
}

static inline void ref_set(const sisa_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3,
                           double v) {
    sisa_store_elem((char *)sisa_cpu_data(t) + sisa_tensor_offset_of(t, i0, i1, i2, i3), t->dtype,
                    v);
}

/* Visit every index (i0, i1, i2, i3) of t's shape, outermost first. */
#define REF_FOR_EACH(t, i0, i1, i2, i3)                                                            \
    for (int64_t i0 = 0; i0 < (t)->shape[0]; i0++)                                                 \
        for (int64_t i1 = 0; i1 < (t)->shape[1]; i1++)                                             \
            for (int64_t i2 = 0; i2 < (t)->shape[2]; i2++)                                         \
                for (int64_t i3 = 0; i3 < (t)->shape[3]; i3++)

/* softplus(x) = log(1 + e^x), written so that it neither overflows for large x nor loses the
 * tail for very negative x. NaN stays NaN (the log1p term carries it). */
static inline double ref_softplus(double x) { return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x))); }

/* Rotate the pair (x0, x1) by angle a: (x0 cos a - x1 sin a, x0 sin a + x1 cos a).
 * The one rotation of the op set (ROPE and SSM_CHANNELS' Rot(Phi) both use it). */
static inline void ref_rotate(double a, double *x0, double *x1) {
    double c = cos(a), s = sin(a);
    double r0 = *x0 * c - *x1 * s;
    double r1 = *x0 * s + *x1 * c;
    *x0 = r0;
    *x1 = r1;
}

/* Per-family entry points (the node has passed sisa_node_check and has host storage). */
sisa_status sisa_ref_cpy(const sisa_tensor *node);
sisa_status sisa_ref_add(const sisa_tensor *node);
sisa_status sisa_ref_scale(const sisa_tensor *node);
sisa_status sisa_ref_swiglu(const sisa_tensor *node);
sisa_status sisa_ref_rms_norm(const sisa_tensor *node);
sisa_status sisa_ref_softmax(const sisa_tensor *node);
sisa_status sisa_ref_argmax(const sisa_tensor *node);
sisa_status sisa_ref_embed(const sisa_tensor *node);
sisa_status sisa_ref_rope(const sisa_tensor *node);
sisa_status sisa_ref_matmul(const sisa_tensor *node);
sisa_status sisa_ref_ssm_decay(const sisa_tensor *node);
sisa_status sisa_ref_ssm_channels(const sisa_tensor *node);
sisa_status sisa_ref_augment(const sisa_tensor *node);
sisa_status sisa_ref_sdpa(const sisa_tensor *node);

/* Scratch memory for a kernel; on failure sets the error naming the node and returns NULL. */
double *sisa_ref_scratch(const sisa_tensor *node, int64_t n);

#endif
