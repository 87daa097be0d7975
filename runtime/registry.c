/*
 * registry.c — the list of backends compiled in, lazy probing, device opening, and the checked
 * buffer/tensor transfer wrappers every caller goes through.
 *
 * A backend compiled in but unusable here (no driver, no device) is "absent with a reason": the
 * reason comes from its probe and is what `sisa info` prints.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"

#ifdef SISA_HAVE_CUDA
extern const sisa_backend_def sisa_backend_cuda;
#endif
#ifdef SISA_HAVE_VULKAN
extern const sisa_backend_def sisa_backend_vulkan;
#endif
#ifdef SISA_HAVE_OPENCL
extern const sisa_backend_def sisa_backend_opencl;
#endif
extern const sisa_backend_def sisa_backend_cpu_ref;
extern const sisa_backend_def sisa_backend_cpu;

static const sisa_backend_def *const backends[] = {
    &sisa_backend_cpu_ref,
    &sisa_backend_cpu,
#ifdef SISA_HAVE_CUDA
    &sisa_backend_cuda,
#endif
#ifdef SISA_HAVE_VULKAN
    &sisa_backend_vulkan,
#endif
#ifdef SISA_HAVE_OPENCL
    &sisa_backend_opencl,
#endif
};
#define N_BACKENDS ((int)(sizeof backends / sizeof backends[0]))

/* Names the build knows about, compiled in or not, so `sisa info` can say "not compiled". */
static const char *const all_names[] = {"cpu-ref", "cpu", "cuda", "vulkan", "opencl"};
#define N_ALL ((int)(sizeof all_names / sizeof all_names[0]))

typedef struct probe_state {
    int done;
    int n_devices;
    char reason[SISA_REASON_LEN];
} probe_state;

static probe_state probes[N_BACKENDS];
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

static int backend_slot(const sisa_backend_def *b) {
    for (int i = 0; i < N_BACKENDS; i++)
        if (backends[i] == b) return i;
    return -1;
}

const sisa_backend_def *sisa_backend_find(const char *name) {
    for (int i = 0; i < N_BACKENDS; i++)
        if (name && strcmp(backends[i]->name, name) == 0) return backends[i];
    return NULL;
}

int sisa_backend_probe(const sisa_backend_def *b, const char **reason) {
    int slot = backend_slot(b);
    if (slot < 0) return -1;
    pthread_mutex_lock(&probe_lock);
    probe_state *p = &probes[slot];
    if (!p->done) {
        p->reason[0] = '\0';
        p->n_devices = b->probe(p->reason);
        if (p->n_devices == 0 && !p->reason[0]) {
            strcpy(p->reason, "no device found");
        }
        if (p->n_devices == 0) p->n_devices = -1;
        p->done = 1;
    }
    pthread_mutex_unlock(&probe_lock);
    if (reason) *reason = p->reason;
    return p->n_devices;
}

static const char *known_list(void) {
    static char buf[128];
    buf[0] = '\0';
    for (int i = 0; i < N_BACKENDS; i++) {
        strcat(buf, i ? ", " : "");
        strcat(buf, backends[i]->name);
    }
    return buf;
}

sisa_status sisa_device_open(const char *name, int index, sisa_device **out) {
    *out = NULL;
    const sisa_backend_def *b = sisa_backend_find(name);
    if (!b) {
        for (int i = 0; i < N_ALL; i++)
            if (name && strcmp(all_names[i], name) == 0)
                return sisa_err(SISA_UNSUPPORTED,
                                "backend '%s' is not compiled into this build (compiled: %s)", name,
                                known_list());
        return sisa_err(SISA_INVALID_ARG, "unknown backend '%s' (compiled: %s)",
                        name ? name : "(null)", known_list());
    }
    const char *why = NULL;
    int n = sisa_backend_probe(b, &why);
    if (n < 0) return sisa_err(SISA_UNSUPPORTED, "backend '%s' is not available: %s", name, why);
    if (index < 0 || index >= n)
        return sisa_err(SISA_INVALID_ARG, "backend '%s' has %d device(s); device %d does not exist",
                        name, n, index);
    sisa_status st = b->device_open(index, out);
    if (st != SISA_OK) return sisa_err_prefix(st, "backend '%s' device %d", name, index);
    (*out)->backend = b;
    (*out)->index = index;
    return SISA_OK;
}

void sisa_device_free(sisa_device *d) {
    if (d) d->iface->free(d);
}

/* ---- public backend listing ---- */

int sisa_backend_count(void) { return N_ALL; }

sisa_status sisa_backend_get_info(int index, sisa_backend_info *out) {
    if (index < 0 || index >= N_ALL || !out)
        return sisa_err(SISA_INVALID_ARG, "backend index %d out of range [0, %d)", index, N_ALL);
    memset(out, 0, sizeof *out);
    out->name = all_names[index];
    const sisa_backend_def *b = sisa_backend_find(all_names[index]);
    if (!b) {
        out->reason = "not compiled into this build";
        return SISA_OK;
    }
    out->compiled = 1;
    const char *why = NULL;
    int n = sisa_backend_probe(b, &why);
    out->available = n > 0;
    out->n_devices = n > 0 ? n : 0;
    out->reason = n > 0 ? "" : why;
    return SISA_OK;
}

sisa_status sisa_device_get_info(const char *backend, int device, sisa_device_info *out) {
    sisa_device *d = NULL;
    SISA_TRY(sisa_device_open(backend, device, &d));
    *out = d->info;
    sisa_device_free(d);
    return SISA_OK;
}

/* ---- checked wrappers ---- */

sisa_status sisa_buffer_alloc(sisa_device *d, size_t size, sisa_buffer **out) {
    *out = NULL;
    if (d->info.max_buffer_bytes && size > d->info.max_buffer_bytes)
        return sisa_err(SISA_OUT_OF_MEMORY,
                        "backend '%s' device '%s': buffer of %zu bytes exceeds the device's "
                        "largest allocation (%llu bytes)",
                        d->backend->name, d->info.name, size,
                        (unsigned long long)d->info.max_buffer_bytes);
    sisa_status st = d->iface->buffer_alloc(d, size ? size : 1, out);
    if (st != SISA_OK)
        return sisa_err_prefix(st, "backend '%s' device '%s': allocating %zu bytes",
                               d->backend->name, d->info.name, size);
    return SISA_OK;
}

void sisa_buffer_free(sisa_buffer *b) {
    if (b) b->iface->free(b);
}

static sisa_status check_io(const sisa_tensor *t, size_t n, const char *what) {
    char d[160];
    if (!t->buffer)
        return sisa_err(SISA_INVALID_ARG, "%s %s: tensor has no storage", what,
                        sisa_tensor_describe(t, d, sizeof d));
    if (!sisa_tensor_is_contiguous(t))
        return sisa_err(SISA_INVALID_ARG, "%s %s: tensor is not contiguous", what,
                        sisa_tensor_describe(t, d, sizeof d));
    size_t span = sisa_tensor_span_bytes(t);
    if (n != span)
        return sisa_err(SISA_INVALID_ARG, "%s %s: %zu bytes given, tensor holds %zu", what,
                        sisa_tensor_describe(t, d, sizeof d), n, span);
    if (t->offset + n > t->buffer->size)
        return sisa_err(SISA_INTERNAL, "%s %s: bytes [%zu, %zu) outside its buffer of %zu", what,
                        sisa_tensor_describe(t, d, sizeof d), t->offset, t->offset + n,
                        t->buffer->size);
    return SISA_OK;
}

sisa_status sisa_tensor_write(sisa_tensor *t, const void *src, size_t n) {
    SISA_TRY(check_io(t, n, "write to"));
    return t->buffer->iface->write(t->buffer, t->offset, src, n);
}

sisa_status sisa_tensor_read(const sisa_tensor *t, void *dst, size_t n) {
    SISA_TRY(check_io(t, n, "read from"));
    return t->buffer->iface->read(t->buffer, t->offset, dst, n);
}

sisa_status sisa_tensor_read_f64(const sisa_tensor *t, double *dst) {
    char d[160];
    if (!t->buffer)
        return sisa_err(SISA_INVALID_ARG, "read %s: no storage", sisa_tensor_describe(t, d, sizeof d));
    size_t span = sisa_tensor_span_bytes(t);
    unsigned char *raw = malloc(span ? span : 1);
    if (!raw) return sisa_err(SISA_OUT_OF_MEMORY, "read %s: out of host memory", t->name);
    sisa_status st = t->buffer->iface->read(t->buffer, t->offset, raw, span);
    if (st == SISA_OK) {
        size_t k = 0;
        for (int64_t i0 = 0; i0 < t->shape[0]; i0++)
            for (int64_t i1 = 0; i1 < t->shape[1]; i1++)
                for (int64_t i2 = 0; i2 < t->shape[2]; i2++)
                    for (int64_t i3 = 0; i3 < t->shape[3]; i3++)
                        dst[k++] = sisa_load_elem(raw + sisa_tensor_offset_of(t, i0, i1, i2, i3),
                                                  t->dtype);
    }
    free(raw);
    return st;
}
