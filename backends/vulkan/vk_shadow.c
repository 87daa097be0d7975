/*
 * vk_shadow.c — f16 shadows of constant bf16 MATMUL weights.
 *
 * Why: the coopmat MATMUL (matmul_coopmat.comp) multiplies f16 operands. A bf16 operand is
 * converted on its way into shared memory, by every workgroup that reads it: a weight b (N x K) is
 * read by the M / BM workgroups of each column of tiles, so each weight element is converted M / BM
 * times per MATMUL (128 times for the 152M prefill's 16384 rows with BM = 128) although it never
 * changes. Converting it once on the device and letting the MATMUL read the f16 copy takes half of
 * the conversions out of the loop (a, the activations, is still converted there).
 *
 * What a shadow is: a device buffer mirroring source bytes [lo, hi) of the weight's buffer, each
 * bf16 pair converted by bf16_to_f16.glsl (bf16_shadow.comp) — the kernel's own conversion, so the
 * MATMUL stages the same f16 bits and gives the same results. bf16 and f16 are both 2 bytes: any
 * view of the weight inside [lo, hi) reads the shadow with its own strides. lo is rounded down to
 * SHADOW_ALIGN (or the device's storage alignment when larger), so offsets keep their alignment
 * and the MATMUL binds and vectorises the shadow as it would the weight.
 *
 * Cache: per device, a list keyed by (source buffer, byte range); a lookup takes an entry whose
 * range contains the weight's span (one shadow serves every view of it). State of an entry:
 *   valid   its conversion was submitted and nothing has written the source bytes since;
 *   serial  the recording (vk_rec.serial) that recorded its conversion, not yet submitted: that
 *           recording's later MATMULs use it without converting again (other recordings convert
 *           for themselves); the recording's end makes it valid (submitted) or clears it (failed).
 * A write to the source bytes (buffer write/fill, a recorded node whose destination overlaps them)
 * clears both, so the next MATMUL converts again — in the same command buffer after a writing
 * node (the stream's hazard tracking orders them). The shadow goes with its source buffer
 * (buffer free) or the device.
 *
 * Fallback: when the copy cannot be had (device memory, maxMemoryAllocationSize, a binding limit
 * too small for a chunk, SISA_VK_SHADOW_MAX_BYTES) an entry without a copy remembers it (not
 * retried until the source is freed) and the MATMUL converts bf16 in its loop as before — no error;
 * SISA_VK_DEBUG=1 says so. The conversion is split into chunks within maxStorageBufferRange.
 *
 * Limit: a range that overlaps an existing shadow without lying inside it gets a shadow of its own,
 * the overlapping bytes held twice (e.g. a decode graph's fused projection weight after the
 * prefill's per-projection ones, were decode to run bf16 activations on the coopmat kernel; today
 * its activations are f32, so its MATMULs take the scalar kernel and make no shadows).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define SHADOW_ALIGN 256u

struct vk_shadow {
    vk_shadow *next;
    vk_buffer *src;
    uint64_t lo, hi;  /* source bytes mirrored */
    vk_buffer *copy;  /* NULL: could not be allocated (the bf16 path) */
    sisa_buffer wrap; /* copy as the buffer of the stand-in tensor (vk_split.c binds t->buffer->ctx) */
    bool valid;
    uint64_t serial;
};

bool sisa_vk_shadow_eligible(const sisa_tensor *t) {
    while (t->view_src) t = t->view_src;
    return t->op == SISA_OP_NONE && (t->flags & SISA_TENSOR_PARAM);
}

static uint64_t shadow_align(const vk_device *d) { return d->min_align > SHADOW_ALIGN ? d->min_align : SHADOW_ALIGN; }

/* Bytes one conversion dispatch may bind: within the range limit, a multiple of the binding
 * offset alignment (the next chunk starts there). 0: none fits. */
static uint64_t chunk_bytes(const vk_device *d) { return sisa_vk_range_limit(d) / d->min_align * d->min_align; }

/* SISA_VK_SHADOW_MAX_BYTES: the most device memory all shadows may hold (testing the fallback; a
 * cap where memory is short). Unset: no cap. */
static uint64_t shadow_budget(void) {
    const char *e = getenv("SISA_VK_SHADOW_MAX_BYTES");
    return e && e[0] ? strtoull(e, NULL, 0) : UINT64_MAX;
}

/* The entry covering [lo, hi) of src: a valid copy first, then any copy, then a refusal. */
static vk_shadow *find(const vk_device *d, const vk_buffer *src, uint64_t lo, uint64_t hi) {
    vk_shadow *best = NULL;
    int best_rank = -1;
    for (vk_shadow *s = d->shadows; s; s = s->next) {
        if (s->src != src || s->lo > lo || hi > s->hi) continue;
        int rank = s->copy ? (s->valid ? 2 : 1) : 0;
        if (rank > best_rank) best = s, best_rank = rank;
    }
    return best;
}

/* A new entry for bytes [lo, hi) of src (with a copy, or remembering why there is none); caller
 * holds shadow_lock. NULL only when host memory runs out (*st set). */
static vk_shadow *create(vk_device *d, vk_buffer *src, uint64_t lo, uint64_t hi, const sisa_tensor *b,
                         sisa_status *st) {
    vk_shadow *s = calloc(1, sizeof *s);
    if (!s) {
        *st = sisa_err(SISA_OUT_OF_MEMORY, VKB ": out of host memory for the f16 shadow of '%s'", b->name);
        return NULL;
    }
    s->src = src, s->lo = lo, s->hi = hi;
    const uint64_t bytes = hi - lo, budget = shadow_budget();
    char why[SISA_REASON_LEN] = "";
    if (chunk_bytes(d) == 0)
        snprintf(why, sizeof why, "maxStorageBufferRange %llu leaves no aligned chunk", (unsigned long long)d->max_range);
    else if (budget != UINT64_MAX && d->shadow_bytes + bytes > budget)
        snprintf(why, sizeof why, "SISA_VK_SHADOW_MAX_BYTES=%llu, %llu held already", (unsigned long long)budget,
                 (unsigned long long)d->shadow_bytes);
    else if (sisa_vk_buffer_create(d, (size_t)bytes, &s->copy) != SISA_OK)
        snprintf(why, sizeof why, "%s", sisa_last_error());
    if (s->copy) {
        d->shadow_bytes += s->copy->size;
        s->wrap = (sisa_buffer){.ctx = s->copy, .device = d->owner, .size = (size_t)bytes};
    }
    __atomic_fetch_add(&src->shadows, 1, __ATOMIC_RELEASE);
    s->next = d->shadows;
    d->shadows = s;
    if (sisa_vk_debug() && s->copy)
        fprintf(stderr, "sisa vulkan: f16 shadow of weight '%s': bytes [%llu, %llu) of its buffer, %llu bytes in shadows\n",
                b->name, (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)d->shadow_bytes);
    else if (sisa_vk_debug())
        fprintf(stderr, "sisa vulkan: no f16 shadow for weight '%s' (%llu bytes): %s; its MATMULs convert bf16 "
                "in the loop as without shadows\n", b->name, (unsigned long long)bytes, why);
    return s;
}

/* Record the conversion of s into r: chunks of whole words within the binding limit. */
static sisa_status record_convert(vk_rec *r, const vk_shadow *s, uint32_t cvt_float) {
    vk_device *d = r->d;
    const uint64_t chunk = chunk_bytes(d), size = s->hi - s->lo;
    const uint32_t wg = d->max_wg_invocations < 256 ? d->max_wg_invocations : 256;
    uint32_t spec[VK_SPEC_N];
    memset(spec, 0, sizeof spec);
    spec[10] = wg, spec[23] = cvt_float;
    for (uint64_t off = 0; off < size; off += chunk) {
        const uint64_t n = size - off < chunk ? size - off : chunk;
        vk_bind binds[VK_BINDINGS];
        memset(binds, 0, sizeof binds);
        binds[0] = (vk_bind){s->src->buf, s->lo + off, n};
        binds[6] = (vk_bind){s->copy->buf, off, n};
        const uint32_t words = (uint32_t)(n / 4);
        uint32_t gx, gy;
        sisa_vk_grid(d, (words + wg - 1) / wg, &gx, &gy);
        SISA_TRY(sisa_vk_dispatch(r, VK_SH_BF16_SHADOW, spec, binds, &words, sizeof words, gx, gy, 1));
    }
    d->shadow_conversions++;
    if (sisa_vk_debug())
        fprintf(stderr, "sisa vulkan: node %d: f16 shadow of '%s' converted (%llu bytes)\n", r->node_index,
                r->node->src[1] ? r->node->src[1]->name : "?", (unsigned long long)size);
    return SISA_OK;
}

sisa_status sisa_vk_shadow_get(vk_rec *r, const sisa_tensor *b, uint32_t cvt_float, sisa_tensor *out, bool *got) {
    vk_device *d = r->d;
    vk_buffer *src = b->buffer->ctx;
    const uint64_t A = shadow_align(d), span = sisa_tensor_span_bytes(b);
    const uint64_t lo = b->offset / A * A;
    uint64_t hi = (b->offset + span + 3) & ~(uint64_t)3; /* whole words (the buffer's size is a multiple of 16) */
    if (hi > src->size) hi = src->size;
    *got = false;
    sisa_status st = SISA_OK;
    pthread_mutex_lock(&d->shadow_lock);
    vk_shadow *s = find(d, src, b->offset, b->offset + span);
    if (!s) s = create(d, src, lo, hi, b, &st);
    if (s && s->copy && !s->valid && (r->serial == 0 || s->serial != r->serial)) { /* 0: not a numbered recording */
        st = record_convert(r, s, cvt_float);
        if (st == SISA_OK) s->serial = r->serial;
    }
    if (st == SISA_OK && s && s->copy) {
        *out = *b;
        out->dtype = SISA_F16;
        out->buffer = &s->wrap;
        out->offset = b->offset - s->lo;
        out->view_src = NULL;
        out->view_offset = 0;
        *got = true;
    }
    pthread_mutex_unlock(&d->shadow_lock);
    return st;
}

void sisa_vk_shadow_written(vk_device *d, vk_buffer *vb, uint64_t lo, uint64_t hi) {
    if (!__atomic_load_n(&vb->shadows, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&d->shadow_lock);
    for (vk_shadow *s = d->shadows; s; s = s->next)
        if (s->src == vb && s->lo < hi && lo < s->hi) s->valid = false, s->serial = 0;
    pthread_mutex_unlock(&d->shadow_lock);
}

static void shadow_free(vk_shadow *s) {
    if (s->copy) sisa_vk_buffer_destroy(s->copy);
    __atomic_fetch_sub(&s->src->shadows, 1, __ATOMIC_RELEASE);
    free(s);
}

void sisa_vk_shadow_forget(vk_device *d, vk_buffer *vb) {
    if (!__atomic_load_n(&vb->shadows, __ATOMIC_ACQUIRE)) return;
    vk_shadow *gone = NULL;
    pthread_mutex_lock(&d->shadow_lock);
    for (vk_shadow **pp = &d->shadows; *pp;) {
        vk_shadow *s = *pp;
        if (s->src != vb) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        if (s->copy) d->shadow_bytes -= s->copy->size;
        s->next = gone;
        gone = s;
    }
    pthread_mutex_unlock(&d->shadow_lock);
    while (gone) { /* outside the lock: destroying takes mem_lock */
        vk_shadow *s = gone;
        gone = s->next;
        shadow_free(s);
    }
}

uint64_t sisa_vk_shadow_begin(vk_device *d) {
    pthread_mutex_lock(&d->shadow_lock);
    uint64_t serial = ++d->shadow_serial;
    pthread_mutex_unlock(&d->shadow_lock);
    return serial;
}

void sisa_vk_shadow_end(vk_device *d, uint64_t serial, bool submitted) {
    pthread_mutex_lock(&d->shadow_lock);
    for (vk_shadow *s = d->shadows; s; s = s->next)
        if (s->serial == serial) s->serial = 0, s->valid = submitted;
    pthread_mutex_unlock(&d->shadow_lock);
}

void sisa_vk_shadow_destroy(vk_device *d) {
    while (d->shadows) {
        vk_shadow *s = d->shadows;
        d->shadows = s->next;
        shadow_free(s);
    }
    d->shadow_bytes = 0;
}

void sisa_vk_shadow_stats(const sisa_device *sd, uint64_t *bytes, uint64_t *conversions) {
    vk_device *d = vk_dev(sd);
    pthread_mutex_lock(&d->shadow_lock);
    *bytes = d->shadow_bytes;
    *conversions = d->shadow_conversions;
    pthread_mutex_unlock(&d->shadow_lock);
}
