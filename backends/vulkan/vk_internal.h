/*
 * vk_internal.h — the Vulkan backend's private interface: loader table, instance, device,
 * memory, pipelines, streams, binding/splitting and the per-op kernels.
 *
 * Files (one concern each):
 *   vk_loader.c    libvulkan is dlopen'ed, never linked: a machine without a loader still loads
 *                  libsisa, and the backend reports "absent" with the reason.
 *   vk_instance.c  instance, validation messenger, physical-device listing and selection, probe.
 *   vk_device.c    logical device, device properties -> sisa_device_info, the device vtable.
 *   vk_quirks.c    vendor/driver workaround table and the environment kill switches.
 *   vk_memory.c    buffers with sub-allocation, host-visible staging for read/write/fill.
 *   vk_pipeline.c  embedded SPIR-V, lazy pipelines, the persistent VkPipelineCache.
 *   vk_stream.c    command recording with hazard-tracked barriers, submission, fences.
 *   vk_split.c     binding tensors as sub-ranges; splitting work larger than maxStorageBufferRange.
 *   vk_shadow.c    f16 shadows of constant bf16 MATMUL weights (converted once, invalidated on write).
 *   vk_sdpa_prepass.c  bf16 attention operands -> f16 copies + range exponents before the coopmat
 *                  attention kernel (SISA_VK_SDPA_PREPASS=1), in the stream's scratch buffer.
 *   vk_select.c    THE kernel-selection function (supports_op and the dispatcher both call it).
 *   vk_op_*.c      record functions per op family.
 */
#ifndef SISA_VK_INTERNAL_H
#define SISA_VK_INTERNAL_H

#define VK_NO_PROTOTYPES
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "backend.h"
#include "error.h"

#define VKB "vulkan" /* the backend's name in every message */

/* ---- loader (vk_loader.c) ---------------------------------------------------------------- */

#define SISA_VK_GLOBAL_FUNCS(X)                                                                    \
    X(vkCreateInstance) X(vkEnumerateInstanceExtensionProperties)                                  \
    X(vkEnumerateInstanceLayerProperties) X(vkEnumerateInstanceVersion)

#define SISA_VK_INSTANCE_FUNCS(X)                                                                  \
    X(vkDestroyInstance) X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties)            \
    X(vkGetPhysicalDeviceProperties2) X(vkGetPhysicalDeviceFeatures2)                              \
    X(vkGetPhysicalDeviceMemoryProperties) X(vkGetPhysicalDeviceQueueFamilyProperties)             \
    X(vkEnumerateDeviceExtensionProperties) X(vkCreateDevice) X(vkGetDeviceProcAddr)               \
    X(vkCreateDebugUtilsMessengerEXT) X(vkDestroyDebugUtilsMessengerEXT)                           \
    X(vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)                                            \
    X(vkDestroyDevice) X(vkGetDeviceQueue) X(vkDeviceWaitIdle) X(vkQueueSubmit) X(vkQueueWaitIdle) \
    X(vkCreateBuffer) X(vkDestroyBuffer) X(vkGetBufferMemoryRequirements) X(vkAllocateMemory)      \
    X(vkFreeMemory) X(vkBindBufferMemory) X(vkMapMemory) X(vkUnmapMemory)                          \
    X(vkCreateCommandPool) X(vkDestroyCommandPool) X(vkAllocateCommandBuffers)                     \
    X(vkFreeCommandBuffers) X(vkBeginCommandBuffer) X(vkEndCommandBuffer) X(vkResetCommandBuffer)  \
    X(vkCreateFence) X(vkDestroyFence) X(vkWaitForFences) X(vkResetFences) X(vkGetFenceStatus)     \
    X(vkCmdCopyBuffer) X(vkCmdFillBuffer) X(vkCmdPipelineBarrier) X(vkCmdBindPipeline)             \
    X(vkCmdBindDescriptorSets) X(vkCmdPushConstants) X(vkCmdDispatch)                              \
    X(vkCreateShaderModule) X(vkDestroyShaderModule) X(vkCreateComputePipelines)                   \
    X(vkDestroyPipeline) X(vkCreatePipelineLayout) X(vkDestroyPipelineLayout)                      \
    X(vkCreateDescriptorSetLayout) X(vkDestroyDescriptorSetLayout) X(vkCreateDescriptorPool)       \
    X(vkDestroyDescriptorPool) X(vkResetDescriptorPool) X(vkAllocateDescriptorSets)                \
    X(vkUpdateDescriptorSets) X(vkCreatePipelineCache) X(vkDestroyPipelineCache)                   \
    X(vkGetPipelineCacheData) X(vkCreateQueryPool) X(vkDestroyQueryPool) X(vkCmdResetQueryPool)    \
    X(vkCmdWriteTimestamp) X(vkGetQueryPoolResults)

typedef struct sisa_vk_fns {
#define SISA_VK_DECL(f) PFN_##f f;
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    SISA_VK_GLOBAL_FUNCS(SISA_VK_DECL)
    SISA_VK_INSTANCE_FUNCS(SISA_VK_DECL)
#undef SISA_VK_DECL
} sisa_vk_fns;

extern sisa_vk_fns vkf;

/* dlopen the loader and resolve the global functions; -1 with reason when absent. */
int sisa_vk_loader_open(char *reason);
/* Resolve instance-level functions (missing optional ones stay NULL). */
void sisa_vk_loader_instance(VkInstance inst);
void sisa_vk_loader_close(void);

const char *sisa_vk_result_name(VkResult r);

/* ---- instance (vk_instance.c) ------------------------------------------------------------- */

#define SISA_VK_MAX_DEVICES 16

typedef struct vk_instance {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    bool validation;          /* SISA_VK_VALIDATION=1 and the layer was found */
    bool debug_utils;
    uint32_t api_version;     /* what the instance was created with */
    int n_devices;            /* usable devices, in backend order (selection first) */
    VkPhysicalDevice devices[SISA_VK_MAX_DEVICES];
} vk_instance;

const vk_instance *sisa_vk_instance_get(void); /* valid after a successful probe */
bool sisa_vk_env_flag(const char *name);      /* name set to a non-empty value other than "0" */
bool sisa_vk_debug(void);                      /* SISA_VK_DEBUG: print decisions on stderr */

/* ---- quirks (vk_quirks.c) ----------------------------------------------------------------- */

enum vk_quirk {
    VK_QUIRK_SMALL_TILES = 1 << 0, /* CPU implementations: small matmul tiles */
    VK_QUIRK_NO_COOPMAT = 1 << 1,  /* cooperative matrices known broken on this driver */
    VK_QUIRK_NO_F16 = 1 << 2,      /* 16-bit storage known broken on this driver */
};

typedef struct vk_device vk_device;
/* Apply the workaround table and the kill switches to d's feature flags; notes into d->notes. */
void sisa_vk_apply_quirks(vk_device *d);

/* ---- device (vk_device.c) ----------------------------------------------------------------- */

typedef struct vk_block vk_block;
typedef struct vk_pipeline_entry vk_pipeline_entry;
typedef struct vk_aux vk_aux;
typedef struct vk_shadow vk_shadow;

struct vk_device {
    sisa_device *owner;
    VkPhysicalDevice pd;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    pthread_mutex_t queue_lock; /* the queue, the staging buffer, the transfer command buffer */

    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem;
    VkDriverId driver_id;
    char driver_name[VK_MAX_DRIVER_NAME_SIZE + VK_MAX_DRIVER_INFO_SIZE + 4];
    uint8_t device_uuid[VK_UUID_SIZE];

    /* limits */
    uint64_t max_alloc, max_buffer, max_range;
    uint32_t min_align;  /* storage-buffer offset alignment, at least 16 */
    uint32_t max_shared, max_wg_invocations, max_push;
    uint32_t max_groups[3];
    uint32_t subgroup_size;
    bool subgroup_shuffle; /* subgroupShuffleXor in compute shaders */
    bool coopmat_sdpa;     /* the coopmat flash-attention kernel (default with coopmat; SISA_VK_NO_COOPMAT_SDPA=1 off) */
    bool coopmat_bf16;     /* bf16 operands converted to f16 for the coopmat kernels (off: SISA_VK_NO_BF16_COOPMAT=1) */
    bool timestamps;
    float timestamp_period;

    /* features (after quirks and kill switches) */
    bool storage16;       /* 16-bit storage: f16/bf16 destinations */
    bool allow_f16, allow_bf16;
    bool coopmat;         /* GL_NV_cooperative_matrix path usable */
    uint32_t cm_m, cm_n, cm_k; /* the f16 x f16 -> f32 shape it uses */
    bool cm_emulate;      /* SISA_VK_COOPMAT=emulate: the coopmat MATMUL with emulated matrix units (tests) */
    bool uma;             /* device memory is host-visible: no staging */
    bool suballoc;
    unsigned quirks;
    char notes[512];      /* what quirks/kill switches changed (sisa info, SISA_VK_DEBUG) */

    /* memory (vk_memory.c) */
    pthread_mutex_t mem_lock;
    vk_block *blocks;
    uint32_t type_device, type_staging;
    VkBuffer staging;
    VkDeviceMemory staging_mem;
    void *staging_ptr;
    size_t staging_size;
    VkCommandPool xfer_pool;
    VkCommandBuffer xfer_cb;
    VkFence xfer_fence;
    VkBuffer dummy;        /* bound to bindings a dispatch does not use */
    VkDeviceMemory dummy_mem;

    /* pipelines (vk_pipeline.c) */
    pthread_mutex_t pipe_lock;
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipelineCache cache;
    bool cache_dirty;
    char cache_path[1024];
    VkShaderModule *modules; /* one per shader id, lazily */
    vk_pipeline_entry *pipes;
    int n_pipes, cap_pipes;
    vk_aux *aux;             /* small constant tables (RoPE frequencies) */

    /* f16 shadows of constant bf16 weights (vk_shadow.c) */
    pthread_mutex_t shadow_lock;
    vk_shadow *shadows;
    uint64_t shadow_serial;  /* last recording number handed out */
    uint64_t shadow_bytes;   /* device bytes the shadows hold */
    uint64_t shadow_conversions; /* conversions recorded (tests, benches) */

    uint64_t sdpa_prepass_nodes; /* SDPA nodes recorded with the bf16 pre-pass (tests, benches; atomic) */
};

static inline vk_device *vk_dev(const sisa_device *d) { return (vk_device *)d->ctx; }

sisa_status sisa_vk_device_open(int index, sisa_device **out);

/* ---- memory (vk_memory.c) ----------------------------------------------------------------- */

typedef struct vk_buffer {
    vk_device *d;
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize mem_off, size; /* size: bytes usable through buf (>= the requested size) */
    VkDeviceSize alloc_size;    /* bytes taken from the block (memory requirements) */
    vk_block *block;            /* NULL: dedicated allocation */
    void *mapped;               /* host pointer of the buffer's first byte (UMA), else NULL */
    int shadows;                /* f16 shadows of its bytes (vk_shadow.c; 0: no invalidation scan) */
} vk_buffer;

sisa_status sisa_vk_memory_init(vk_device *d);
void sisa_vk_memory_destroy(vk_device *d);
sisa_status sisa_vk_buffer_alloc(sisa_device *sd, size_t size, sisa_buffer **out);
/* A raw device buffer for the backend's own use (f16 shadows), uninitialised. */
sisa_status sisa_vk_buffer_create(vk_device *d, size_t size, vk_buffer **out);
/* A raw device buffer for the backend's own use (aux tables); filled from host memory. */
sisa_status sisa_vk_buffer_create_init(vk_device *d, const void *data, size_t size, vk_buffer **out);
void sisa_vk_buffer_destroy(vk_buffer *b);

/* ---- pipelines (vk_pipeline.c) -------------------------------------------------------------- */

#define VK_SPEC_N 26   /* specialization constants 0..25 (see shaders/common.glsl) */
#define VK_BINDINGS 8  /* 0..5 sources, 6 destination, 7 aux */
#define VK_PUSH_MAX 128

enum vk_shader_id {
#define SISA_VK_SHADER(id, name, file, variant, needs) id,
#include "vk_shader_list.h"
#undef SISA_VK_SHADER
    VK_SHADER_COUNT
};

enum vk_shader_needs { VK_NEEDS_16BIT = 1, VK_NEEDS_COOPMAT = 2 };

const char *sisa_vk_shader_name(int id);
unsigned sisa_vk_shader_needs(int id);
sisa_status sisa_vk_pipelines_init(vk_device *d);
void sisa_vk_pipelines_destroy(vk_device *d); /* saves the cache to disk when it changed */
/* The pipeline for (shader, specialization), created on first use. */
sisa_status sisa_vk_pipeline_get(vk_device *d, int shader, const uint32_t spec[VK_SPEC_N],
                                 VkPipeline *out);
/* Device-resident RoPE frequency table for (D, base): D/2 (hi, lo) float pairs of the fp64
 * frequencies exp(-(2m/D) ln base). Owned by the device. */
sisa_status sisa_vk_rope_table(vk_device *d, int64_t D, float base, VkBuffer *out, VkDeviceSize *size);

/* ---- streams and recording (vk_stream.c) ----------------------------------------------------- */

typedef struct vk_stream vk_stream;

typedef struct vk_bind {
    VkBuffer buf;  /* VK_NULL_HANDLE: unused (the device's dummy is bound) */
    VkDeviceSize off, range;
} vk_bind;

typedef struct vk_rec {
    vk_stream *s;
    vk_device *d;
    VkCommandBuffer cb;
    const sisa_tensor *node;
    int node_index;
    uint64_t serial; /* this recording's number (vk_shadow.c: conversions recorded in it) */
} vk_rec;

sisa_status sisa_vk_stream_new(sisa_device *sd, sisa_stream **out);
/* Record one dispatch: binds[i] for i < VK_BINDINGS (binding 6 is written, the rest read),
 * push constants pc (pc_size bytes), groups gx x gy x gz. Barriers are inserted from the
 * hazards of the bound ranges. */
sisa_status sisa_vk_dispatch(vk_rec *r, int shader, const uint32_t spec[VK_SPEC_N],
                             const vk_bind binds[VK_BINDINGS], const void *pc, size_t pc_size,
                             uint32_t gx, uint32_t gy, uint32_t gz);
/* The stream's scratch buffer (the backend's own temporaries within one recording, e.g. the SDPA
 * pre-pass's f16 copies), at least bytes long: grown when too small (earlier graphs of the stream
 * are waited for then; the old buffer is freed once this recording's command buffer completes or
 * fails). *out = NULL with why (SISA_REASON_LEN) when no such buffer can be had (device memory,
 * maxMemoryAllocationSize): the caller takes another path. A status other than SISA_OK: waiting
 * for the device failed. Dispatches bind it like any buffer (hazards are tracked as usual). */
sisa_status sisa_vk_stream_scratch(vk_rec *r, uint64_t bytes, vk_buffer **out, char *why);
/* Spread n workgroups over a 2-D grid (shaders use sisa_group_id()). */
void sisa_vk_grid(const vk_device *d, uint64_t n, uint32_t *gx, uint32_t *gy);

/* Timing support for tools/bench: the GPU time of the last completed graph_compute (ms), or a
 * negative value when the device has no timestamps. */
double sisa_vk_stream_last_gpu_ms(sisa_stream *s);

/* ---- binding sub-ranges and splitting (vk_split.c) ------------------------------------------- */

/*
 * An operand of a dispatch seen through the work units of its op: units form an index space of up
 * to 3 dims (rows of a row-wise op, (b, h) pairs of attention, ...). ustride[k] is the operand's
 * byte stride along unit dim k (0 where it does not depend on it); [fix_lo, fix_hi) is the byte
 * span of the part of the operand one unit touches, relative to the operand's first byte.
 * A unit range [u0, u1) then touches bytes within
 *   [sum_k lo_k ustride_k + fix_lo, sum_k hi_k ustride_k + fix_hi)
 * where lo/hi bound the unit multi-indices of the range.
 */
typedef struct vk_operand {
    const sisa_tensor *t;
    int64_t ustride[3];
    int64_t fix_lo, fix_hi;
} vk_operand;

typedef struct vk_units {
    int64_t dims[3]; /* unit index space, outermost first */
    int n_ops;
    vk_operand ops[VK_BINDINGS];
    int slot[VK_BINDINGS]; /* binding index of each operand */
} vk_units;

/* Bytes one binding may span here, keeping room for the alignment of its offset. */
uint64_t sisa_vk_range_limit(const vk_device *d);
/* Largest u1 <= n such that [u0, u1) fits every operand; 0 (reason set) when one unit alone does
 * not fit. */
int64_t sisa_vk_units_next(const vk_device *d, const vk_units *u, int64_t u0, int64_t n, char *reason);
/* Does one unit fit (dry run for supports_op)? */
bool sisa_vk_units_feasible(const vk_device *d, const vk_units *u, char *reason);
/* Bind every operand of u for units [u0, u1): fills binds[slot] and base[slot] (base element of
 * the operand relative to its binding, modulo 2^32). */
sisa_status sisa_vk_units_bind(const vk_rec *r, const vk_units *u, int64_t u0, int64_t u1,
                               vk_bind binds[VK_BINDINGS], uint32_t base[VK_BINDINGS]);
/* Bind a byte span [lo, hi) of tensor t (relative to its first byte). */
sisa_status sisa_vk_bind_span(const vk_rec *r, const sisa_tensor *t, int64_t lo, int64_t hi,
                              vk_bind *b, uint32_t *base);
/* Element stride (bytes / element size) as the uint the shaders take. */
static inline uint32_t vk_es(const sisa_tensor *t, int dim) {
    return (uint32_t)(t->stride[dim] / (int64_t)sisa_dtype_size(t->dtype));
}

/* ---- kernel selection (vk_select.c) and the op families (vk_op_*.c) -------------------------- */

enum vk_kind {
    VK_K_ROWWISE = 1, /* elementwise and row-reduction shaders over dst rows */
    VK_K_EMBED,
    VK_K_ROPE,
    VK_K_MATMUL,
    VK_K_MATMUL_COOPMAT,
    VK_K_SSM_DECAY,
    VK_K_SSM_CHANNELS,
    VK_K_SDPA,
};

typedef struct vk_kernel {
    int kind;
    int shader;
    uint32_t spec[VK_SPEC_N];
    uint32_t wg;            /* workgroup size (spec constant 10) */
    uint32_t tile[8];       /* kind-specific: matmul tiles, attention block sizes */
    int per_group;          /* rowwise: 1 = one workgroup per row, 0 = one invocation per item */
    bool shadow_b;          /* coopmat MATMUL: read the bf16 weight b through its f16 shadow */
    bool prepass;           /* coopmat SDPA: bf16 Q/K/V converted by the pre-pass (vk_sdpa_prepass.c) */
} vk_kernel;

/* THE selection function: fills k and returns true, or returns false with reason. */
bool sisa_vk_select(const vk_device *d, const sisa_tensor *node, vk_kernel *k, char *reason);
sisa_status sisa_vk_record(vk_rec *r, const sisa_tensor *node, const vk_kernel *k);

/* per family: select (fills kind/shader/spec) and record */
bool sisa_vk_select_rowwise(const vk_device *d, const sisa_tensor *n, vk_kernel *k, char *reason);
sisa_status sisa_vk_record_rowwise(vk_rec *r, const sisa_tensor *n, const vk_kernel *k);
bool sisa_vk_select_matmul(const vk_device *d, const sisa_tensor *n, vk_kernel *k, char *reason);
sisa_status sisa_vk_record_matmul(vk_rec *r, const sisa_tensor *n, const vk_kernel *k);
bool sisa_vk_select_ssm(const vk_device *d, const sisa_tensor *n, vk_kernel *k, char *reason);
sisa_status sisa_vk_record_ssm(vk_rec *r, const sisa_tensor *n, const vk_kernel *k);
bool sisa_vk_select_sdpa(const vk_device *d, const sisa_tensor *n, vk_kernel *k, char *reason);
sisa_status sisa_vk_record_sdpa(vk_rec *r, const sisa_tensor *n, const vk_kernel *k);

/* Shader variant for a destination dtype: base id for f32, base + 1 for f16/bf16. */
static inline int vk_variant(int shader_f32, sisa_dtype dst) {
    return dst == SISA_F32 || dst == SISA_I32 ? shader_f32 : shader_f32 + 1;
}

/* Fill spec[0..6] with the destination and source dtypes of n. */
void sisa_vk_spec_dtypes(const sisa_tensor *n, uint32_t spec[VK_SPEC_N]);

/* ---- f16 shadows of constant bf16 MATMUL weights (vk_shadow.c) ---------------------------------
 * A weight (a leaf marked SISA_TENSOR_PARAM, or a view of one) read as MATMUL b on the coopmat
 * kernel is converted to f16 once, by the kernel's own conversion, into a device copy that mirrors
 * its bytes; the MATMUL then reads that copy as f16. The copy is converted again after any write
 * to the weight's bytes (buffer write/fill, a graph node whose destination overlaps them) and freed
 * with the weight's buffer or the device. No copy (allocation refused): the bf16 path of before. */

/* Is t a constant weight (its base leaf is a PARAM leaf)? */
bool sisa_vk_shadow_eligible(const sisa_tensor *t);
/* The f16 stand-in for the bf16 weight b in recording r: *out = b as F16 in the shadow's buffer;
 * records the conversion (spec constant 23 = cvt_float, as the MATMUL's) when the shadow is not
 * current. *got = false: no shadow (today's path, said under SISA_VK_DEBUG=1). */
sisa_status sisa_vk_shadow_get(vk_rec *r, const sisa_tensor *b, uint32_t cvt_float, sisa_tensor *out, bool *got);
/* Bytes [lo, hi) of vb are (about to be) written: shadows of them are stale. */
void sisa_vk_shadow_written(vk_device *d, vk_buffer *vb, uint64_t lo, uint64_t hi);
/* vb is being freed (the queue is idle): its shadows go. */
void sisa_vk_shadow_forget(vk_device *d, vk_buffer *vb);
/* A recording starts (its number) / ends (submitted: its conversions count as done). */
uint64_t sisa_vk_shadow_begin(vk_device *d);
void sisa_vk_shadow_end(vk_device *d, uint64_t serial, bool submitted);
void sisa_vk_shadow_destroy(vk_device *d); /* device teardown, queue idle */
/* Tests and benches: bytes the device's shadows hold, conversions recorded so far. */
void sisa_vk_shadow_stats(const sisa_device *sd, uint64_t *bytes, uint64_t *conversions);

/* ---- bf16 attention pre-pass (vk_sdpa_prepass.c) -------------------------------------------------
 * With SISA_VK_SDPA_PREPASS=1, an SDPA node with bf16 Q, K, V on the coopmat kernel gets its
 * operands converted to f16 copies (scaled by the range exponents the kernel would compute per Q
 * tile / key block) in the stream's scratch buffer by sdpa_prepass.comp, and the kernel reads the
 * copies as f16 and the exponents from binding 5 (its flag 4096): the same bits as converting in
 * its loop. Taken only where every workgroup sees whole key blocks (else the exponents could depend
 * on the query tile); otherwise, or without scratch memory, the node keeps today's path. */

/* The per-unit scratch layout and the chunk size of one node. */
typedef struct vk_prepass {
    vk_buffer *scratch;
    uint32_t slab_w, k_off, v_off; /* words per (b, h) unit: [Q | K | V] f16 copies; K, V offsets */
    uint32_t xn;                   /* exponents per unit: NQT + 3 NKB */
    uint32_t dq, dv;               /* copy row strides (halves): d_qk, d_v rounded up to 8 */
    int64_t cap_units;             /* units per chunk (slabs and exponents within one binding) */
} vk_prepass;

/* How the kernel reads one chunk's copies: one binding (sources 0..2 and 5), bases (halves, and
 * x_base in ints, modulo 2^32 as the shaders index), unit strides (halves). */
typedef struct vk_prepass_view {
    vk_bind bind;
    uint32_t base[3], x_base;
    uint32_t s0, s1; /* per b, per h */
} vk_prepass_view;

/* Does the pre-pass take SDPA node n on kernel k (the switch, the coopmat kernel, bf16 Q/K/V, whole
 * key blocks for every workgroup, one unit within a binding)? why (may be NULL): the reason if not. */
bool sisa_vk_sdpa_prepass_ok(const vk_device *d, const sisa_tensor *n, const vk_kernel *k, char *why);
/* For a node selected with k->prepass: its layout and scratch (*got = false: today's path; both
 * said under SISA_VK_DEBUG=1, as is a bf16 node the switch did not take). */
sisa_status sisa_vk_sdpa_prepass_begin(vk_rec *r, const sisa_tensor *n, const vk_kernel *k, vk_prepass *p, bool *got);
/* Record the pre-pass of units [u0, u1) (sources bound as src/src_base by the kernel's units) and
 * say where the kernel finds the copies. */
sisa_status sisa_vk_sdpa_prepass_record(vk_rec *r, const sisa_tensor *n, const vk_kernel *k, const vk_prepass *p,
                                        int64_t u0, int64_t u1, const vk_bind src[3], const uint32_t src_base[3],
                                        vk_prepass_view *out);
/* Tests and benches: SDPA nodes recorded with the pre-pass so far. */
uint64_t sisa_vk_sdpa_prepass_stats(const sisa_device *sd);

/* Error helper: names the backend, the node and the VkResult. */
sisa_status sisa_vk_node_err(const vk_rec *r, VkResult res, const char *what);

/* Count of validation-layer errors seen so far (SISA_VK_VALIDATION=1); tests fail on > 0. */
int sisa_vk_validation_errors(void);
/* 1 when the validation layer and the counting messenger are active. */
int sisa_vk_validation_enabled(void);

extern const sisa_backend_def sisa_backend_vulkan;

#endif
