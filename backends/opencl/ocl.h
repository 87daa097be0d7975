/*
 * ocl.h — the OpenCL backend's private interface (backends/opencl/ only).
 *
 * Layers: ocl_device.c (platforms, devices, buffers, streams), ocl_program.c (programs built from
 * the embedded .cl sources, with an on-disk binary cache), ocl_select.c (THE kernel-selection
 * function: supports_op and the dispatcher both call ocl_select), ocl_ops.c (launches of our own
 * kernels) and ocl_matmul.c (MATMUL through CLBlast). ocl_error.c turns cl_int and CLBlast codes
 * into the library's statuses with the native name and number in the message.
 */
#ifndef SISA_OCL_H
#define SISA_OCL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <pthread.h>

#include "backend.h"
#include "error.h"

/* One family = one .cl file = one program per option set. */
typedef enum ocl_family {
    OCL_FAM_ELEMENTWISE = 0,
    OCL_FAM_NORM,
    OCL_FAM_EMBED_ROPE,
    OCL_FAM_SSM,
    OCL_FAM_SDPA,
    OCL_FAM_GEMM,     /* gemm.cl (+ mma.cl): 16-bit MATMUL on the tensor cores */
    OCL_FAM_SDPA_MMA, /* sdpa_mma.cl (+ mma.cl): bf16/f16 flash attention on the tensor cores */
    OCL_FAM_COUNT,
    OCL_FAM_CLBLAST = OCL_FAM_COUNT, /* MATMUL: no program of ours */
} ocl_family;

/* The tensor-core path (ocl_device.c decides, ocl_select.c uses): off; inline PTX mma.sync
 * (NVIDIA, compute capability >= 8.0); or its emulation (any device, for tests). */
enum { OCL_MMA_OFF = 0, OCL_MMA_PTX = 1, OCL_MMA_EMULATE = 2 };
/* warps per work-group of sdpa_mma.cl (16 query rows each) */
#define OCL_SDPA_MMA_WARPS 8

typedef struct ocl_program ocl_program; /* ocl_program.c */
typedef struct ocl_stream ocl_stream;

typedef struct ocl_dev {
    cl_platform_id platform;
    cl_device_id id;
    cl_context ctx;
    cl_command_queue xfer_q;   /* blocking host <-> buffer copies */
    pthread_mutex_t lock;      /* programs, kernels (arg setting + enqueue), stream list */
    ocl_program *programs;
    ocl_stream *streams;       /* live streams: transfers wait for their queues */
    char name[256], platform_name[128], driver[128], cl_c_version[64];
    int has_f16, has_f64, is_cpu;
    size_t max_wg;             /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    cl_ulong local_mem;        /* CL_DEVICE_LOCAL_MEM_SIZE */
    int wg_reduce;             /* power-of-two work-group size of the row reductions */
    int sdpa_bq, sdpa_bk;      /* flash-attention tile: queries per group, keys per tile */
    int mma;                   /* warp-mma kernels (kernels/mma.cl): OCL_MMA_* */
    char cache_dir[512];       /* program-binary cache; "" = off */
} ocl_dev;

struct ocl_stream {
    ocl_dev *dev;
    cl_command_queue q;        /* in-order */
    cl_mem scratch[3];         /* MATMUL's contiguous/f32 copies; reused (in-order queue) */
    size_t scratch_size[3];
    ocl_stream *next;
};

/* ---- errors (ocl_error.c) ---- */
const char *ocl_err_name(cl_int err);
sisa_status ocl_status_of(cl_int err);
/* Set the last error: "opencl: <what>: CL_NAME (code)" and return the mapped status. */
sisa_status ocl_fail(cl_int err, const char *fmt, ...) SISA_PRINTF(2, 3);
/* The same for a CLBlast status code. */
sisa_status ocl_clblast_fail(int code, const char *fmt, ...) SISA_PRINTF(2, 3);

/* ---- devices and buffers (ocl_device.c) ---- */
/* The cl_mem behind a tensor's storage, or NULL (error set) when it is not an OpenCL buffer of
 * this device. */
cl_mem ocl_tensor_mem(const ocl_dev *d, const sisa_tensor *t);
/* A scratch buffer of at least `bytes` in the stream's slot (0..2). */
sisa_status ocl_scratch(ocl_stream *s, int slot, size_t bytes, cl_mem *out);

/* ---- programs (ocl_program.c) ---- */
/* The kernel `name` of family `fam` built with `opts` (cached in memory and on disk). Call with
 * d->lock held; the kernel object stays owned by the cache. */
sisa_status ocl_kernel_get(ocl_dev *d, ocl_family fam, const char *opts, const char *name,
                           cl_kernel *out);
void ocl_programs_free(ocl_dev *d);
const char *ocl_family_name(ocl_family fam);

/* ---- kernel selection (ocl_select.c) ---- */
typedef struct ocl_plan {
    ocl_family fam;
    const char *kernel;   /* entry point in the family's .cl (NULL for CLBlast) */
    char opts[320];       /* -D options of this variant (dtype, head dims, tiles) */
    int bk;               /* SDPA: keys per tile actually chosen */
} ocl_plan;
/* The one selection function: which kernel (variant) runs `node` on `d`, or false with the
 * reason (SISA_REASON_LEN). supports_op and graph_compute both call it. */
bool ocl_select(const ocl_dev *d, const sisa_tensor *node, ocl_plan *plan, char *reason);

/* ---- launches ---- */
/* Run one node (already selected) on the stream's queue. */
sisa_status ocl_run_kernel(ocl_stream *s, const sisa_tensor *node, const ocl_plan *plan);
sisa_status ocl_run_matmul(ocl_stream *s, const sisa_tensor *node);
/* Enqueue dst = convert(src) (any strided float view -> contiguous dst), used by MATMUL for
 * copies it hands to CLBlast. dst_mem/dst_off_elems describe a contiguous destination. */
sisa_status ocl_enqueue_cpy(ocl_stream *s, const sisa_tensor *src, sisa_dtype dst_dtype,
                            cl_mem dst_mem, size_t dst_off_elems);
/* Enqueue convert(src contiguous f32 scratch) -> node's destination (dtype of node). */
sisa_status ocl_enqueue_store(ocl_stream *s, cl_mem src, const sisa_tensor *dst);

/* Tensor arguments for our kernels: element offset and element strides, checked. */
typedef struct ocl_targ {
    cl_mem mem;
    cl_long off;
    cl_long4 st;
} ocl_targ;
sisa_status ocl_targ_of(const ocl_dev *d, const sisa_tensor *t, ocl_targ *out);

#endif
