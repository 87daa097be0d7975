/*
 * ocl_device.c — the OpenCL backend's registry entry: platforms and devices through the ICD
 * loader, device properties, buffers and streams (one in-order queue each), graph execution.
 *
 * Devices are listed across every platform, GPUs and accelerators first (so device 0 on a
 * machine with NVIDIA + PoCL is the GPU), then CPUs, each group in the loader's order.
 * SISA_CL_DEVICE=<index> keeps only that entry of the full list; SISA_CL_DEVICE=<text> keeps
 * every device whose "platform / device" name contains the text (case-insensitive).
 * No platform, no device or no match: probe returns -1 with the reason, never aborts.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl.h" /* first: it sets CL_TARGET_OPENCL_VERSION */

#include <clblast_c.h>

/* ---- enumeration ---- */

#define OCL_MAX_DEVICES 32

typedef struct ocl_entry {
    cl_platform_id platform;
    cl_device_id device;
    cl_device_type type;
    char label[384]; /* "platform / device" */
} ocl_entry;

static ocl_entry entries[OCL_MAX_DEVICES];
static int n_entries;
static atomic_int n_open_devices;

static void get_str(cl_device_id d, cl_device_info what, char *out, size_t len) {
    out[0] = '\0';
    if (clGetDeviceInfo(d, what, len, out, NULL) != CL_SUCCESS) out[0] = '\0';
    out[len - 1] = '\0';
}

static bool contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return true;
    }
    return n == 0;
}

static int enumerate(ocl_entry *all, char *reason) {
    cl_uint np = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &np);
    if (err != CL_SUCCESS || np == 0) {
        snprintf(reason, SISA_REASON_LEN,
                 "no OpenCL platform: clGetPlatformIDs returned %s (%d) with %u platforms "
                 "(is an ICD registered in /etc/OpenCL/vendors or OCL_ICD_VENDORS?)",
                 ocl_err_name(err), (int)err, np);
        return -1;
    }
    cl_platform_id plats[16];
    if (np > 16) np = 16;
    err = clGetPlatformIDs(np, plats, NULL);
    if (err != CL_SUCCESS) {
        snprintf(reason, SISA_REASON_LEN, "clGetPlatformIDs returned %s (%d)", ocl_err_name(err),
                 (int)err);
        return -1;
    }
    int n = 0;
    cl_int last_err = CL_SUCCESS;
    /* two passes: GPUs/accelerators, then CPUs (and anything else) */
    for (int pass = 0; pass < 2; pass++) {
        for (cl_uint p = 0; p < np; p++) {
            char pname[128] = "";
            clGetPlatformInfo(plats[p], CL_PLATFORM_NAME, sizeof pname, pname, NULL);
            pname[sizeof pname - 1] = '\0';
            cl_device_id devs[OCL_MAX_DEVICES];
            cl_uint nd = 0;
            err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, OCL_MAX_DEVICES, devs, &nd);
            if (err != CL_SUCCESS) {
                last_err = err;
                continue;
            }
            for (cl_uint i = 0; i < nd && n < OCL_MAX_DEVICES; i++) {
                cl_device_type t = 0;
                clGetDeviceInfo(devs[i], CL_DEVICE_TYPE, sizeof t, &t, NULL);
                bool gpu_like = (t & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) != 0;
                if ((pass == 0) != gpu_like) continue;
                char dname[256];
                get_str(devs[i], CL_DEVICE_NAME, dname, sizeof dname);
                all[n].platform = plats[p];
                all[n].device = devs[i];
                all[n].type = t;
                snprintf(all[n].label, sizeof all[n].label, "%s / %s", pname, dname);
                n++;
            }
        }
    }
    if (n == 0)
        snprintf(reason, SISA_REASON_LEN,
                 "%u OpenCL platform(s) but no device: clGetDeviceIDs returned %s (%d)", np,
                 ocl_err_name(last_err ? last_err : CL_DEVICE_NOT_FOUND),
                 (int)(last_err ? last_err : CL_DEVICE_NOT_FOUND));
    return n;
}

static int ocl_probe(char *reason) {
    ocl_entry all[OCL_MAX_DEVICES];
    int n = enumerate(all, reason);
    n_entries = 0;
    if (n <= 0) return -1;
    const char *sel = getenv("SISA_CL_DEVICE");
    if (!sel || !*sel) {
        memcpy(entries, all, (size_t)n * sizeof all[0]);
        n_entries = n;
        return n;
    }
    char *end = NULL;
    long idx = strtol(sel, &end, 10);
    if (end && *end == '\0') {
        if (idx < 0 || idx >= n) {
            snprintf(reason, SISA_REASON_LEN, "SISA_CL_DEVICE=%s: only %d device(s) (0 = %s)", sel,
                     n, all[0].label);
            return -1;
        }
        entries[0] = all[idx];
        n_entries = 1;
        return 1;
    }
    for (int i = 0; i < n; i++)
        if (contains_ci(all[i].label, sel)) entries[n_entries++] = all[i];
    if (n_entries == 0) {
        int k = snprintf(reason, SISA_REASON_LEN, "SISA_CL_DEVICE=%s matches none of:", sel);
        for (int i = 0; i < n && k > 0 && k < SISA_REASON_LEN; i++)
            k += snprintf(reason + k, SISA_REASON_LEN - (size_t)k, " [%d] %s", i, all[i].label);
        return -1;
    }
    return n_entries;
}

static void ocl_shutdown(void) {
    n_entries = 0;
    if (atomic_load(&n_open_devices) == 0) CLBlastClearCache();
}

/* ---- buffers ---- */

typedef struct ocl_buffer {
    cl_mem mem;
    ocl_dev *dev;
} ocl_buffer;

static const sisa_buffer_iface ocl_buffer_iface;

cl_mem ocl_tensor_mem(const ocl_dev *d, const sisa_tensor *t) {
    if (!t->buffer || t->buffer->iface != &ocl_buffer_iface) {
        sisa_err(SISA_INTERNAL, "opencl: tensor '%s' has no OpenCL storage", t->name);
        return NULL;
    }
    ocl_buffer *b = t->buffer->ctx;
    if (b->dev != d) {
        sisa_err(SISA_INTERNAL, "opencl: tensor '%s' lives on another OpenCL device", t->name);
        return NULL;
    }
    return b->mem;
}

/* Transfers run on the device's transfer queue; they first wait for every stream so that a
 * read sees the kernels' results and a write does not race kernels still reading. */
static sisa_status finish_streams(ocl_dev *d) {
    for (ocl_stream *s = d->streams; s; s = s->next) {
        cl_int err = clFinish(s->q);
        if (err != CL_SUCCESS) return ocl_fail(err, "device '%s': clFinish on a stream", d->name);
    }
    return SISA_OK;
}

static void buf_free(sisa_buffer *buf) {
    ocl_buffer *b = buf->ctx;
    if (b) {
        clReleaseMemObject(b->mem);
        free(b);
    }
    free(buf);
}

static sisa_status buf_range(sisa_buffer *buf, size_t off, size_t n, const char *what) {
    if (off + n > buf->size || off + n < off)
        return sisa_err(SISA_INVALID_ARG, "opencl buffer: %s [%zu, %zu) past its %zu bytes", what,
                        off, off + n, buf->size);
    return SISA_OK;
}

/* A blocking host <-> buffer copy on the transfer queue, after the streams finished their work:
 * write: src -> buffer, else buffer -> dst. */
static sisa_status buf_copy(sisa_buffer *buf, size_t off, bool write, const void *src, void *dst,
                            size_t n) {
    const char *what = write ? "write" : "read";
    SISA_TRY(buf_range(buf, off, n, what));
    if (n == 0) return SISA_OK;
    ocl_buffer *b = buf->ctx;
    const cl_command_queue q = b->dev->xfer_q;
    pthread_mutex_lock(&b->dev->lock);
    sisa_status st = finish_streams(b->dev);
    cl_int err = CL_SUCCESS;
    if (st == SISA_OK)
        err = write ? clEnqueueWriteBuffer(q, b->mem, CL_TRUE, off, n, src, 0, NULL, NULL)
                    : clEnqueueReadBuffer(q, b->mem, CL_TRUE, off, n, dst, 0, NULL, NULL);
    pthread_mutex_unlock(&b->dev->lock);
    if (st != SISA_OK) return st;
    if (err != CL_SUCCESS)
        return ocl_fail(err, "device '%s': %s %zu bytes at offset %zu", b->dev->name,
                        write ? "writing" : "reading", n, off);
    return SISA_OK;
}

static sisa_status buf_write(sisa_buffer *buf, size_t off, const void *src, size_t n) {
    return buf_copy(buf, off, true, src, NULL, n);
}

static sisa_status buf_read(sisa_buffer *buf, size_t off, void *dst, size_t n) {
    return buf_copy(buf, off, false, NULL, dst, n);
}

static sisa_status buf_fill(sisa_buffer *buf, size_t off, uint8_t value, size_t n) {
    SISA_TRY(buf_range(buf, off, n, "fill"));
    if (n == 0) return SISA_OK;
    ocl_buffer *b = buf->ctx;
    pthread_mutex_lock(&b->dev->lock);
    sisa_status st = finish_streams(b->dev);
    cl_int err = CL_SUCCESS;
    if (st == SISA_OK) {
        err = clEnqueueFillBuffer(b->dev->xfer_q, b->mem, &value, 1, off, n, 0, NULL, NULL);
        if (err == CL_SUCCESS) err = clFinish(b->dev->xfer_q);
    }
    pthread_mutex_unlock(&b->dev->lock);
    if (st != SISA_OK) return st;
    if (err != CL_SUCCESS)
        return ocl_fail(err, "device '%s': filling %zu bytes at offset %zu", b->dev->name, n, off);
    return SISA_OK;
}

static const sisa_buffer_iface ocl_buffer_iface = {
    .free = buf_free, .write = buf_write, .read = buf_read, .fill = buf_fill};

static sisa_status dev_buffer_alloc(sisa_device *sd, size_t size, sisa_buffer **out) {
    ocl_dev *d = sd->ctx;
    *out = NULL;
    sisa_buffer *buf = calloc(1, sizeof *buf);
    ocl_buffer *b = calloc(1, sizeof *b);
    if (!buf || !b) {
        free(buf);
        free(b);
        return sisa_err(SISA_OUT_OF_MEMORY, "opencl: out of host memory for a buffer");
    }
    cl_int err = CL_SUCCESS;
    b->mem = clCreateBuffer(d->ctx, CL_MEM_READ_WRITE, size, NULL, &err);
    if (err != CL_SUCCESS || !b->mem) {
        free(buf);
        free(b);
        return ocl_fail(err, "device '%s': clCreateBuffer(%zu bytes)", d->name, size);
    }
    b->dev = d;
    *buf = (sisa_buffer){.iface = &ocl_buffer_iface, .ctx = b, .device = sd, .size = size};
    *out = buf;
    return SISA_OK;
}

sisa_status ocl_scratch(ocl_stream *s, int slot, size_t bytes, cl_mem *out) {
    if (bytes == 0) bytes = 4;
    if (s->scratch_size[slot] < bytes) {
        /* Release is deferred by OpenCL until queued commands using it complete. */
        if (s->scratch[slot]) clReleaseMemObject(s->scratch[slot]);
        s->scratch[slot] = NULL;
        s->scratch_size[slot] = 0;
        cl_int err = CL_SUCCESS;
        cl_mem m = clCreateBuffer(s->dev->ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
        if (err != CL_SUCCESS || !m)
            return ocl_fail(err, "device '%s': scratch buffer of %zu bytes", s->dev->name, bytes);
        s->scratch[slot] = m;
        s->scratch_size[slot] = bytes;
    }
    *out = s->scratch[slot];
    return SISA_OK;
}

/* ---- streams ---- */

static void stream_free(sisa_stream *ss) {
    ocl_stream *s = ss->ctx;
    if (s) {
        ocl_dev *d = s->dev;
        pthread_mutex_lock(&d->lock);
        for (ocl_stream **p = &d->streams; *p; p = &(*p)->next)
            if (*p == s) {
                *p = s->next;
                break;
            }
        pthread_mutex_unlock(&d->lock);
        clFinish(s->q);
        for (int i = 0; i < 3; i++)
            if (s->scratch[i]) clReleaseMemObject(s->scratch[i]);
        clReleaseCommandQueue(s->q);
        free(s);
    }
    free(ss);
}

static sisa_status node_error(sisa_status st, const sisa_tensor *n, int i) {
    char desc[160];
    return sisa_err_prefix(st, "backend 'opencl' node %d %s (op %s)", i,
                           sisa_tensor_describe(n, desc, sizeof desc), sisa_op_name(n->op));
}

static sisa_status stream_compute(sisa_stream *ss, sisa_graph *g, int first, int last) {
    ocl_stream *s = ss->ctx;
    ocl_dev *d = s->dev;
    for (int i = first; i < last; i++) {
        const sisa_tensor *n = g->nodes[i];
        if (n->op == SISA_OP_VIEW || n->op == SISA_OP_NONE) continue;
        ocl_plan plan;
        char reason[SISA_REASON_LEN] = "";
        if (!ocl_select(d, n, &plan, reason))
            return node_error(sisa_err(SISA_UNSUPPORTED, "%s", reason), n, i);
        pthread_mutex_lock(&d->lock);
        sisa_status st = plan.fam == OCL_FAM_CLBLAST ? ocl_run_matmul(s, n)
                                                     : ocl_run_kernel(s, n, &plan);
        pthread_mutex_unlock(&d->lock);
        if (st != SISA_OK) return node_error(st, n, i);
    }
    /* start the work now; synchronize waits for it */
    cl_int err = clFlush(s->q);
    if (err != CL_SUCCESS) return ocl_fail(err, "device '%s': clFlush", d->name);
    return SISA_OK;
}

static sisa_status stream_sync(sisa_stream *ss) {
    ocl_stream *s = ss->ctx;
    cl_int err = clFinish(s->q);
    if (err != CL_SUCCESS)
        return ocl_fail(err, "device '%s': clFinish (a queued kernel failed)", s->dev->name);
    return SISA_OK;
}

static const sisa_stream_iface ocl_stream_iface = {
    .free = stream_free, .graph_compute = stream_compute, .synchronize = stream_sync};

static sisa_status dev_stream_new(sisa_device *sd, sisa_stream **out) {
    ocl_dev *d = sd->ctx;
    *out = NULL;
    sisa_stream *ss = calloc(1, sizeof *ss);
    ocl_stream *s = calloc(1, sizeof *s);
    if (!ss || !s) {
        free(ss);
        free(s);
        return sisa_err(SISA_OUT_OF_MEMORY, "opencl: out of host memory for a stream");
    }
    cl_int err = CL_SUCCESS;
    s->q = clCreateCommandQueue(d->ctx, d->id, 0, &err);
    if (err != CL_SUCCESS || !s->q) {
        free(ss);
        free(s);
        return ocl_fail(err, "device '%s': clCreateCommandQueue", d->name);
    }
    s->dev = d;
    pthread_mutex_lock(&d->lock);
    s->next = d->streams;
    d->streams = s;
    pthread_mutex_unlock(&d->lock);
    *ss = (sisa_stream){.iface = &ocl_stream_iface, .ctx = s, .device = sd};
    *out = ss;
    return SISA_OK;
}

/* ---- devices ---- */

static bool dev_supports(sisa_device *sd, const sisa_tensor *n, char *reason) {
    ocl_plan plan;
    if (n->op == SISA_OP_VIEW || n->op == SISA_OP_NONE) return true;
    return ocl_select(sd->ctx, n, &plan, reason);
}

static void dev_release(ocl_dev *d) {
    ocl_programs_free(d);
    if (d->xfer_q) clReleaseCommandQueue(d->xfer_q);
    if (d->ctx) clReleaseContext(d->ctx);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static void dev_free(sisa_device *sd) {
    if (!sd) return;
    ocl_dev *d = sd->ctx;
    if (d) {
        dev_release(d);
        /* CLBlast keeps programs (holding our contexts) in a process-wide cache. */
        if (atomic_fetch_sub(&n_open_devices, 1) == 1) CLBlastClearCache();
    }
    free(sd);
}

static const sisa_device_iface ocl_device_iface = {
    .free = dev_free,
    .buffer_alloc = dev_buffer_alloc,
    .stream_new = dev_stream_new,
    .supports_op = dev_supports,
};

static bool has_ext(const char *exts, const char *name) {
    size_t n = strlen(name);
    for (const char *p = strstr(exts, name); p; p = strstr(p + 1, name))
        if ((p == exts || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return true;
    return false;
}

static int env_int(const char *name, int def, int lo, int hi) {
    const char *e = getenv(name);
    if (!e || !*e) return def;
    long v = strtol(e, NULL, 10);
    return v < lo || v > hi ? def : (int)v;
}

/* Vendor table — the one place where a device gets a vendor-specific path:
 *   NVIDIA, compute capability >= 8.0 (cl_nv_device_attribute_query), warp 32: the warp-mma
 *     kernels (kernels/mma.cl) through inline PTX mma.sync for bf16/f16 MATMUL and SDPA.
 *   everything else: the portable kernels and CLBlast.
 * SISA_CL_MMA=0 turns the PTX path off; SISA_CL_MMA=emulate runs the same kernels with an
 * emulated mma on any device (slow; the tests use it on PoCL to check the kernels' indexing). */
static int mma_mode(cl_uint cc_major, int warp) {
    const char *e = getenv("SISA_CL_MMA");
    if (e && !strcmp(e, "emulate")) return OCL_MMA_EMULATE;
    if (e && *e && !strcmp(e, "0")) return OCL_MMA_OFF;
    return cc_major >= 8 && warp == 32 ? OCL_MMA_PTX : OCL_MMA_OFF;
}

static void cache_dir_init(ocl_dev *d) {
    d->cache_dir[0] = '\0';
    const char *off = getenv("SISA_CL_NO_CACHE");
    if (off && *off && strcmp(off, "0") != 0) return;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) snprintf(d->cache_dir, sizeof d->cache_dir, "%s/sisa/opencl", xdg);
    else if (home && *home) snprintf(d->cache_dir, sizeof d->cache_dir, "%s/.cache/sisa/opencl", home);
}

static void fill_info(ocl_dev *d, sisa_device_info *info, cl_device_type type) {
    char exts[8192], vendor[64], drv[64], ver[128];
    get_str(d->id, CL_DEVICE_NAME, d->name, sizeof d->name);
    get_str(d->id, CL_DEVICE_EXTENSIONS, exts, sizeof exts);
    get_str(d->id, CL_DEVICE_VENDOR, vendor, sizeof vendor);
    get_str(d->id, CL_DRIVER_VERSION, drv, sizeof drv);
    get_str(d->id, CL_DEVICE_VERSION, ver, sizeof ver);
    get_str(d->id, CL_DEVICE_OPENCL_C_VERSION, d->cl_c_version, sizeof d->cl_c_version);
    clGetPlatformInfo(d->platform, CL_PLATFORM_NAME, sizeof d->platform_name, d->platform_name, NULL);
    d->platform_name[sizeof d->platform_name - 1] = '\0';
    snprintf(d->driver, sizeof d->driver, "%s %s (%s)", d->platform_name, drv, ver);

    cl_ulong gmem = 0, maxalloc = 0, lmem = 0;
    size_t maxwg = 0;
    cl_device_fp_config dfp = 0;
    clGetDeviceInfo(d->id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof maxalloc, &maxalloc, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lmem, &lmem, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof maxwg, &maxwg, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof dfp, &dfp, NULL);

    d->has_f16 = has_ext(exts, "cl_khr_fp16");
    d->has_f64 = has_ext(exts, "cl_khr_fp64") || dfp != 0;
    d->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    d->max_wg = maxwg ? maxwg : 64;
    d->local_mem = lmem;
    int wg = d->is_cpu ? 64 : 256;
    while ((size_t)wg > d->max_wg) wg /= 2;
    d->wg_reduce = wg < 1 ? 1 : wg;
    /* queries per SDPA work-group: 128 measured 1.57x faster than 64 (and 2.8x than 32) on the
     * H100 at d_qk 80 / d_v 64 (docs/BENCHMARKS.md, ## OpenCL); CPUs keep 64 */
    d->sdpa_bq = env_int("SISA_CL_SDPA_BQ", d->is_cpu ? 64 : 128, 1, 1024);
    while ((size_t)d->sdpa_bq > d->max_wg) d->sdpa_bq /= 2;
    d->sdpa_bk = env_int("SISA_CL_SDPA_BK", 32, 1, 256);

    snprintf(info->name, sizeof info->name, "%s", d->name);
    snprintf(info->vendor, sizeof info->vendor, "%s", vendor);
    snprintf(info->driver, sizeof info->driver, "%s", d->driver);
    info->memory_bytes = gmem;
    info->max_buffer_bytes = maxalloc;
    info->max_storage_range = maxalloc;
    /* storage: every kernel reads and writes f16 (vload_half/vstore_half_rte, core OpenCL) and
     * bf16 (as ushort) and computes in f32, as the CPU backend does; d->has_f16 (cl_khr_fp16,
     * half arithmetic) is another thing and only enables the pragma */
    info->has_f16 = 1;
    info->has_bf16 = 1;
    info->has_f64 = d->has_f64;
    info->is_cpu = d->is_cpu;
    info->subgroup_size = 0;
#ifndef CL_DEVICE_WARP_SIZE_NV
#define CL_DEVICE_WARP_SIZE_NV 0x4003
#endif
#ifndef CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV
#define CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV 0x4000
#endif
    cl_uint cc_major = 0;
    if (has_ext(exts, "cl_nv_device_attribute_query")) {
        cl_uint warp = 0;
        if (clGetDeviceInfo(d->id, CL_DEVICE_WARP_SIZE_NV, sizeof warp, &warp, NULL) == CL_SUCCESS)
            info->subgroup_size = (int)warp;
        if (clGetDeviceInfo(d->id, CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV, sizeof cc_major,
                            &cc_major, NULL) != CL_SUCCESS)
            cc_major = 0;
    }
    d->mma = mma_mode(cc_major, info->subgroup_size);
    info->has_coopmat = d->mma == OCL_MMA_PTX;
}

static sisa_status ocl_open(int index, sisa_device **out) {
    *out = NULL;
    if (index < 0 || index >= n_entries)
        return sisa_err(SISA_INVALID_ARG, "opencl: device %d does not exist (%d found)", index,
                        n_entries);
    const ocl_entry *e = &entries[index];
    sisa_device *sd = calloc(1, sizeof *sd);
    ocl_dev *d = calloc(1, sizeof *d);
    if (!sd || !d) {
        free(sd);
        free(d);
        return sisa_err(SISA_OUT_OF_MEMORY, "opencl: out of host memory");
    }
    pthread_mutex_init(&d->lock, NULL);
    d->platform = e->platform;
    d->id = e->device;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)e->platform, 0};
    cl_int err = CL_SUCCESS;
    d->ctx = clCreateContext(props, 1, &d->id, NULL, NULL, &err);
    if (err != CL_SUCCESS || !d->ctx) {
        d->ctx = NULL;
        dev_release(d);
        free(sd);
        return ocl_fail(err, "clCreateContext for %s", e->label);
    }
    d->xfer_q = clCreateCommandQueue(d->ctx, d->id, 0, &err);
    if (err != CL_SUCCESS || !d->xfer_q) {
        d->xfer_q = NULL;
        dev_release(d);
        free(sd);
        return ocl_fail(err, "clCreateCommandQueue for %s", e->label);
    }
    fill_info(d, &sd->info, e->type);
    cache_dir_init(d);
    sd->iface = &ocl_device_iface;
    sd->ctx = d;
    atomic_fetch_add(&n_open_devices, 1);
    *out = sd;
    return SISA_OK;
}

const sisa_backend_def sisa_backend_opencl = {
    .name = "opencl", .probe = ocl_probe, .device_open = ocl_open, .shutdown = ocl_shutdown};
