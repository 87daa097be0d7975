/*
 * cpu_backend.c — the two CPU backends' devices, buffers and streams.
 *
 * "cpu-ref" runs every node through the oracle (sisa_cpu_ref_compute); "cpu" runs the fast
 * kernels chosen by sisa_cpu_fast_select, whose answer is also what supports_op reports.
 * Buffers are ordinary aligned host memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu.h"
#include "error.h"

/* ---- buffers ---- */

static void buf_free(sisa_buffer *b) {
    free(b->host_ptr);
    free(b);
}

static sisa_status buf_write(sisa_buffer *b, size_t off, const void *src, size_t n) {
    if (off + n > b->size)
        return sisa_err(SISA_INVALID_ARG, "cpu buffer: write [%zu, %zu) past its %zu bytes", off,
                        off + n, b->size);
    memcpy((char *)b->host_ptr + off, src, n);
    return SISA_OK;
}

static sisa_status buf_read(sisa_buffer *b, size_t off, void *dst, size_t n) {
    if (off + n > b->size)
        return sisa_err(SISA_INVALID_ARG, "cpu buffer: read [%zu, %zu) past its %zu bytes", off,
                        off + n, b->size);
    memcpy(dst, (char *)b->host_ptr + off, n);
    return SISA_OK;
}

static sisa_status buf_fill(sisa_buffer *b, size_t off, uint8_t v, size_t n) {
    if (off + n > b->size)
        return sisa_err(SISA_INVALID_ARG, "cpu buffer: fill [%zu, %zu) past its %zu bytes", off,
                        off + n, b->size);
    memset((char *)b->host_ptr + off, v, n);
    return SISA_OK;
}

static const sisa_buffer_iface cpu_buffer_iface = {
    .free = buf_free, .write = buf_write, .read = buf_read, .fill = buf_fill};

static sisa_status cpu_buffer_alloc(sisa_device *d, size_t size, sisa_buffer **out) {
    sisa_buffer *b = calloc(1, sizeof *b);
    size_t rounded = (size + 63) & ~(size_t)63;
    void *mem = rounded ? aligned_alloc(64, rounded) : NULL;
    if (!b || !mem) {
        free(b);
        free(mem);
        return sisa_err(SISA_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes of host memory", size);
    }
    *b = (sisa_buffer){.iface = &cpu_buffer_iface, .device = d, .size = size, .host_ptr = mem};
    *out = b;
    return SISA_OK;
}

/* ---- streams: synchronous; errors name the node ---- */

static void stream_free(sisa_stream *s) {
    sisa_cpu_pool_free(s->ctx);
    free(s);
}

static sisa_status stream_sync(sisa_stream *s) {
    (void)s;
    return SISA_OK;
}

static sisa_status node_error(sisa_status st, const char *backend, const sisa_tensor *n, int i) {
    char d[160];
    return sisa_err_prefix(st, "backend '%s' node %d %s (op %s)", backend, i,
                           sisa_tensor_describe(n, d, sizeof d), sisa_op_name(n->op));
}

static sisa_status ref_compute(sisa_stream *s, sisa_graph *g, int first, int last) {
    (void)s;
    for (int i = first; i < last; i++) {
        sisa_tensor *n = g->nodes[i];
        if (n->op == SISA_OP_VIEW) continue;
        sisa_status st = sisa_cpu_ref_compute(n);
        if (st != SISA_OK) return node_error(st, "cpu-ref", n, i);
    }
    return SISA_OK;
}

static sisa_status fast_compute(sisa_stream *s, sisa_graph *g, int first, int last) {
    for (int i = first; i < last; i++) {
        sisa_tensor *n = g->nodes[i];
        if (n->op == SISA_OP_VIEW) continue;
        char reason[SISA_REASON_LEN] = "";
        sisa_cpu_fast_kernel k = sisa_cpu_fast_select(n, reason);
        if (!k) return node_error(sisa_err(SISA_UNSUPPORTED, "%s", reason), "cpu", n, i);
        sisa_status st = k(s->ctx, n);
        if (st != SISA_OK) return node_error(st, "cpu", n, i);
    }
    return SISA_OK;
}

static const sisa_stream_iface ref_stream_iface = {
    .free = stream_free, .graph_compute = ref_compute, .synchronize = stream_sync};
static const sisa_stream_iface fast_stream_iface = {
    .free = stream_free, .graph_compute = fast_compute, .synchronize = stream_sync};

static int env_threads(void) {
    const char *e = getenv("SISA_CPU_THREADS");
    return e ? atoi(e) : 0;
}

static sisa_status stream_new(sisa_device *d, const sisa_stream_iface *iface, bool pool,
                              sisa_stream **out) {
    sisa_stream *s = calloc(1, sizeof *s);
    if (!s) return sisa_err(SISA_OUT_OF_MEMORY, "cpu: out of host memory for a stream");
    s->iface = iface;
    s->device = d;
    if (pool) {
        sisa_status st = sisa_cpu_pool_new(env_threads(), (sisa_cpu_pool **)&s->ctx);
        if (st != SISA_OK) {
            free(s);
            return st;
        }
    }
    *out = s;
    return SISA_OK;
}

static sisa_status ref_stream_new(sisa_device *d, sisa_stream **out) {
    return stream_new(d, &ref_stream_iface, false, out);
}

static sisa_status fast_stream_new(sisa_device *d, sisa_stream **out) {
    return stream_new(d, &fast_stream_iface, true, out);
}

/* ---- devices ---- */

static bool ref_supports(sisa_device *d, const sisa_tensor *n, char *reason) {
    (void)d;
    if (n->dtype == SISA_F64) {
        snprintf(reason, SISA_REASON_LEN, "f64 tensors are host-side only");
        return false;
    }
    return true;
}

static bool fast_supports(sisa_device *d, const sisa_tensor *n, char *reason) {
    (void)d;
    return sisa_cpu_fast_select(n, reason) != NULL;
}

static void dev_free(sisa_device *d) { free(d); }

static const sisa_device_iface ref_device_iface = {
    .free = dev_free, .buffer_alloc = cpu_buffer_alloc, .stream_new = ref_stream_new,
    .supports_op = ref_supports};
static const sisa_device_iface fast_device_iface = {
    .free = dev_free, .buffer_alloc = cpu_buffer_alloc, .stream_new = fast_stream_new,
    .supports_op = fast_supports};

static void cpu_name(char *out, size_t len) {
    snprintf(out, len, "host CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                v += 1 + (v[1] == ' ');
                v[strcspn(v, "\n")] = '\0';
                snprintf(out, len, "%s", v);
            }
            break;
        }
    }
    fclose(f);
}

static sisa_status cpu_device_open(const sisa_device_iface *iface, sisa_device **out) {
    sisa_device *d = calloc(1, sizeof *d);
    if (!d) return sisa_err(SISA_OUT_OF_MEMORY, "cpu: out of host memory");
    d->iface = iface;
    cpu_name(d->info.name, sizeof d->info.name);
    snprintf(d->info.vendor, sizeof d->info.vendor, "host");
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    d->info.memory_bytes = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
    d->info.max_buffer_bytes = 0; /* no limit beyond memory */
    d->info.max_storage_range = 0;
    d->info.has_f16 = d->info.has_bf16 = d->info.has_f64 = 1;
    d->info.is_cpu = 1;
    *out = d;
    return SISA_OK;
}

static int cpu_probe(char *reason) {
    (void)reason;
    return 1;
}

static sisa_status ref_open(int index, sisa_device **out) {
    (void)index;
    return cpu_device_open(&ref_device_iface, out);
}

static sisa_status fast_open(int index, sisa_device **out) {
    (void)index;
    sisa_status st = cpu_device_open(&fast_device_iface, out);
    if (st == SISA_OK) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        size_t len = strlen((*out)->info.name);
        snprintf((*out)->info.name + len, sizeof (*out)->info.name - len, " (%ld threads)",
                 env_threads() > 0 ? (long)env_threads() : n);
    }
    return st;
}

const sisa_backend_def sisa_backend_cpu_ref = {.name = "cpu-ref", .probe = cpu_probe, .device_open = ref_open};
const sisa_backend_def sisa_backend_cpu = {.name = "cpu", .probe = cpu_probe, .device_open = fast_open};
