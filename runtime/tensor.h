/*
 * tensor.h — the engine's tensor: dtype, 4-D shape in PyTorch order, byte strides, and where its
 * bytes live (buffer + offset). A tensor is also a graph node: `op` and `src` say how it is
 * computed (SISA_OP_NONE for leaves such as weights and inputs).
 *
 * Shapes are always 4-D, outermost first: shape[0] is the outermost dimension, shape[3] the
 * innermost (the row). Tensors of lower rank carry leading 1s, e.g. an activation (Bt, T, d) is
 * {1, Bt, T, d}. stride[i] is in bytes; a contiguous tensor has stride[3] = element size.
 */
#ifndef SISA_TENSOR_H
#define SISA_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sisa.h"

typedef enum sisa_dtype {
    SISA_F32 = 0,
    SISA_F16 = 1,
    SISA_BF16 = 2,
    SISA_I32 = 3,
    SISA_F64 = 4, /* host-side only: golden files, oracle tests */
    SISA_DTYPE_COUNT
} sisa_dtype;

size_t sisa_dtype_size(sisa_dtype t);
const char *sisa_dtype_name(sisa_dtype t);
bool sisa_dtype_is_float(sisa_dtype t);

/* Scalar conversions, round-to-nearest-even, NaN/Inf preserved. */
float sisa_bf16_to_f32(uint16_t h);
uint16_t sisa_f32_to_bf16(float f);
float sisa_f16_to_f32(uint16_t h);
uint16_t sisa_f32_to_f16(float f);
/* Read/write one element of any dtype as double (the oracle's view of memory). */
double sisa_load_elem(const void *p, sisa_dtype t);
void sisa_store_elem(void *p, sisa_dtype t, double v);

#define SISA_MAX_DIMS 4
#define SISA_MAX_SRC 6
#define SISA_MAX_PARAMS 8
#define SISA_NAME_LEN 64

typedef enum sisa_op sisa_op;
struct sisa_buffer;

enum sisa_tensor_flags {
    SISA_TENSOR_INPUT = 1 << 0,  /* written by the caller before compute (arena-allocated) */
    SISA_TENSOR_OUTPUT = 1 << 1, /* read by the caller after compute: lives to the end */
    SISA_TENSOR_PARAM = 1 << 2,  /* weight: storage provided by the model, not the arena */
};

typedef struct sisa_tensor {
    char name[SISA_NAME_LEN];
    sisa_dtype dtype;
    int64_t shape[SISA_MAX_DIMS];
    int64_t stride[SISA_MAX_DIMS]; /* bytes */

    /* how it is computed */
    int op;                               /* enum sisa_op */
    struct sisa_tensor *src[SISA_MAX_SRC];
    float fparams[SISA_MAX_PARAMS];
    int32_t iparams[SISA_MAX_PARAMS];

    /* a VIEW aliases view_src's storage, starting view_offset bytes into it */
    struct sisa_tensor *view_src;
    size_t view_offset;

    /* where its bytes live: set by the allocator (nodes, inputs) or the model (weights).
     * For a view: the base's buffer and offset + view_offset. */
    struct sisa_buffer *buffer;
    size_t offset;
    size_t nbytes_alloc; /* bytes reserved for it (0 for views) */
    int chunk;           /* allocator: which arena chunk holds it */

    int flags;
    int index;  /* position in its graph's node or leaf list */
    int device; /* placement: index into the scheduler's device list (0 = primary) */
} sisa_tensor;

int64_t sisa_tensor_nelements(const sisa_tensor *t);
/* Bytes spanned from the first to one past the last element (what a buffer must hold). */
size_t sisa_tensor_span_bytes(const sisa_tensor *t);
bool sisa_tensor_is_contiguous(const sisa_tensor *t);
/* Set contiguous strides for t's shape and dtype. */
void sisa_tensor_set_contiguous(sisa_tensor *t);
/* "name f32[1,2,17,64]" into buf; returns buf. */
const char *sisa_tensor_describe(const sisa_tensor *t, char *buf, size_t len);
/* Byte offset of element (i0,i1,i2,i3). */
static inline size_t sisa_tensor_offset_of(const sisa_tensor *t, int64_t i0, int64_t i1,
                                           int64_t i2, int64_t i3) {
    return (size_t)(i0 * t->stride[0] + i1 * t->stride[1] + i2 * t->stride[2] +
                    i3 * t->stride[3]);
}

#endif
