/*
 * backend.h — the interface every backend implements: registry -> device -> stream -> buffer.
 *
 * Each level is a struct with a const vtable of function pointers (designated initializers) and
 * a void *ctx owned by the backend. Nothing here includes a GPU header: the runtime talks to
 * CUDA, Vulkan and OpenCL only through these tables.
 *
 * Rules every backend follows:
 *  - A backend registers a sisa_backend_def in registry.c; probing is lazy (first use) and a
 *    missing driver/library/device makes the backend absent with a reason — never an abort.
 *  - supports_op must call the same kernel-selection function the dispatcher uses, so the
 *    answer cannot drift from what graph_compute does.
 *  - graph_compute may be asynchronous; synchronize waits and reports errors from the device.
 *  - Every error message names the backend, the node (name + op) or buffer, and the native
 *    code (VkResult, cl_int, cudaError_t, cudnnStatus_t).
 */
#ifndef SISA_BACKEND_H
#define SISA_BACKEND_H

#include "graph.h"

typedef struct sisa_device sisa_device;
typedef struct sisa_buffer sisa_buffer;
typedef struct sisa_stream sisa_stream;

typedef struct sisa_buffer_iface {
    void (*free)(sisa_buffer *buf);
    /* Host <-> buffer copies; blocking (they complete before returning). */
    sisa_status (*write)(sisa_buffer *buf, size_t offset, const void *src, size_t n);
    sisa_status (*read)(sisa_buffer *buf, size_t offset, void *dst, size_t n);
    /* Set n bytes to `value`. */
    sisa_status (*fill)(sisa_buffer *buf, size_t offset, uint8_t value, size_t n);
} sisa_buffer_iface;

struct sisa_buffer {
    const sisa_buffer_iface *iface;
    void *ctx;
    sisa_device *device;
    size_t size;
    void *host_ptr; /* non-NULL when the CPU can address the memory directly */
};

typedef struct sisa_stream_iface {
    void (*free)(sisa_stream *s);
    /* Run nodes [first, last) of g in order. Every node and its sources have storage on this
     * stream's device (buffer + offset). Views have no work. */
    sisa_status (*graph_compute)(sisa_stream *s, sisa_graph *g, int first, int last);
    sisa_status (*synchronize)(sisa_stream *s);
    /* Optional (NULL: not offered) — replay of a recorded node sequence (CUDA graphs). record
     * captures nodes [first, last) of g once without running them (*rec: the backend's handle);
     * replay runs the recording, asynchronously like graph_compute. Between replays the caller may
     * change a recorded node's scalar params and the offsets of its destination and sources —
     * never shapes, strides, dtypes, buffers' sizes or which kernel runs it — and must then name
     * the node in update before the next replay. record or update answer SISA_UNSUPPORTED when
     * they cannot; the caller then releases the recording and computes normally. */
    sisa_status (*graph_record)(sisa_stream *s, sisa_graph *g, int first, int last, void **rec);
    sisa_status (*graph_update)(sisa_stream *s, void *rec, sisa_graph *g, int node);
    sisa_status (*graph_replay)(sisa_stream *s, void *rec);
    void (*graph_release)(sisa_stream *s, void *rec);
} sisa_stream_iface;

struct sisa_stream {
    const sisa_stream_iface *iface;
    void *ctx;
    sisa_device *device;
};

#define SISA_REASON_LEN 256

typedef struct sisa_device_iface {
    void (*free)(sisa_device *d);
    sisa_status (*buffer_alloc)(sisa_device *d, size_t size, sisa_buffer **out);
    sisa_status (*stream_new)(sisa_device *d, sisa_stream **out);
    /* Can this device run the node? When not, write why into reason (SISA_REASON_LEN). */
    bool (*supports_op)(sisa_device *d, const sisa_tensor *node, char *reason);
} sisa_device_iface;

struct sisa_device {
    const sisa_device_iface *iface;
    void *ctx;
    const struct sisa_backend_def *backend;
    int index;
    sisa_device_info info;
    /* Multiple that model graphs zero-pad the augmented width d_h + d_s to (AUGMENT, ops.h: the
     * zeros add nothing); 0 = 16. A backend sets it where its attention runs faster that way. */
    int augment_align;
};

/* One per backend, defined by the backend, listed in registry.c. */
typedef struct sisa_backend_def {
    const char *name;
    /* Probe drivers/devices (called once, lazily). Returns the number of devices, or -1 with
     * reason filled (SISA_REASON_LEN) when the backend is absent here. */
    int (*probe)(char *reason);
    sisa_status (*device_open)(int index, sisa_device **out);
    /* Release what probe acquired (process exit / tests); may be NULL. */
    void (*shutdown)(void);
} sisa_backend_def;

/* ---- registry (registry.c) ---- */
const sisa_backend_def *sisa_backend_find(const char *name);
/* Probe result, cached: n devices or -1 (reason set). */
int sisa_backend_probe(const sisa_backend_def *b, const char **reason);
/* Open device `index` of backend `name` (probing first). Errors name the backend and why. */
sisa_status sisa_device_open(const char *name, int index, sisa_device **out);
void sisa_device_free(sisa_device *d);

/* ---- convenience wrappers that check and name errors ---- */
sisa_status sisa_buffer_alloc(sisa_device *d, size_t size, sisa_buffer **out);
void sisa_buffer_free(sisa_buffer *b);
sisa_status sisa_tensor_write(sisa_tensor *t, const void *src, size_t n); /* contiguous t */
sisa_status sisa_tensor_read(const sisa_tensor *t, void *dst, size_t n);  /* contiguous t */
/* Read any (possibly strided) tensor as doubles, element order (i0,i1,i2,i3). */
sisa_status sisa_tensor_read_f64(const sisa_tensor *t, double *dst);

#endif
