/*
 * vk_split.c — binding tensors as buffer sub-ranges, and splitting work that would make one
 * binding span more than maxStorageBufferRange (128 MiB on lavapipe; a 50277 x 768 f32 embedding
 * is 154 MB, logits B*T*50277 floats are gigabytes).
 *
 * Each op describes its operands through the work units it is split into (vk_internal.h,
 * vk_operand): which bytes a range of units touches. A binding is then the aligned byte range
 * covering those bytes, and the shader gets the operand's first element relative to the binding
 * (modulo 2^32: its index arithmetic wraps, and every element it touches lies inside the
 * binding). Strides are never negative (views cannot make them so), so the bytes of a box of
 * indices lie between its lowest and highest corner.
 */
#include <stdio.h>
#include <string.h>

#include "vk_internal.h"

uint64_t sisa_vk_range_limit(const vk_device *d) {
    /* room for the alignment of the binding's start and the rounding of its end to a word */
    return d->max_range - d->min_align - 4;
}

/* Bounding box (per unit dim, inclusive) of the flat unit range [u0, u1) in dims[3]. */
static void unit_box(const int64_t dims[3], int64_t u0, int64_t u1, int64_t lo[3], int64_t hi[3]) {
    int64_t a[3], b[3];
    int64_t x = u0, y = u1 - 1;
    for (int k = 2; k >= 0; k--) {
        a[k] = x % dims[k];
        x /= dims[k];
        b[k] = y % dims[k];
        y /= dims[k];
    }
    /* once an outer index differs, every inner index may take any value */
    bool full = false;
    for (int k = 0; k < 3; k++) {
        lo[k] = full ? 0 : a[k];
        hi[k] = full ? dims[k] - 1 : b[k];
        if (a[k] != b[k]) full = true;
    }
}

static void op_span(const vk_operand *o, const int64_t lo[3], const int64_t hi[3], int64_t *s_lo, int64_t *s_hi) {
    int64_t l = o->fix_lo, h = o->fix_hi;
    for (int k = 0; k < 3; k++) {
        l += lo[k] * o->ustride[k];
        h += hi[k] * o->ustride[k];
    }
    *s_lo = l;
    *s_hi = h;
}

static bool fits(const vk_device *d, const vk_units *u, int64_t u0, int64_t u1, int *bad, int64_t *bytes) {
    int64_t lo[3], hi[3];
    unit_box(u->dims, u0, u1, lo, hi);
    uint64_t limit = sisa_vk_range_limit(d);
    for (int i = 0; i < u->n_ops; i++) {
        int64_t a, b;
        op_span(&u->ops[i], lo, hi, &a, &b);
        if ((uint64_t)(b - a) > limit) {
            if (bad) *bad = i;
            if (bytes) *bytes = b - a;
            return false;
        }
    }
    return true;
}

static void explain(const vk_device *d, const vk_units *u, int bad, int64_t bytes, char *reason) {
    char desc[160];
    snprintf(reason, SISA_REASON_LEN,
             "one work unit of %s spans %lld bytes, more than maxStorageBufferRange (%llu) allows",
             sisa_tensor_describe(u->ops[bad].t, desc, sizeof desc), (long long)bytes,
             (unsigned long long)d->max_range);
}

int64_t sisa_vk_units_next(const vk_device *d, const vk_units *u, int64_t u0, int64_t n, char *reason) {
    int bad = 0;
    int64_t bytes = 0;
    if (fits(d, u, u0, n, NULL, NULL)) return n;
    if (!fits(d, u, u0, u0 + 1, &bad, &bytes)) {
        if (reason) explain(d, u, bad, bytes, reason);
        return 0;
    }
    /* spans grow with the range: binary search the largest fitting end */
    int64_t ok = u0 + 1, no = n;
    while (no - ok > 1) {
        int64_t mid = ok + (no - ok) / 2;
        if (fits(d, u, u0, mid, NULL, NULL)) ok = mid;
        else no = mid;
    }
    return ok;
}

bool sisa_vk_units_feasible(const vk_device *d, const vk_units *u, char *reason) {
    int64_t total = u->dims[0] * u->dims[1] * u->dims[2];
    /* the worst single unit is the last one along every dim (largest offsets do not matter:
     * spans are differences), so checking unit 0 suffices */
    (void)total;
    int bad = 0;
    int64_t bytes = 0;
    if (fits(d, u, 0, 1, &bad, &bytes)) return true;
    if (reason) explain(d, u, bad, bytes, reason);
    return false;
}

sisa_status sisa_vk_bind_span(const vk_rec *r, const sisa_tensor *t, int64_t lo, int64_t hi, vk_bind *b,
                              uint32_t *base) {
    const vk_device *d = r->d;
    const vk_buffer *vb = t->buffer->ctx;
    int64_t es = (int64_t)sisa_dtype_size(t->dtype);
    uint64_t start = (uint64_t)t->offset + (uint64_t)lo, end = (uint64_t)t->offset + (uint64_t)hi;
    uint64_t off = start / d->min_align * d->min_align;
    uint64_t range = (end - off + 3) & ~(uint64_t)3;
    if (off + range > vb->size) range = vb->size - off;
    if (end > vb->size || t->offset % (size_t)es || range > d->max_range) {
        char desc[160];
        return sisa_err(SISA_INTERNAL, VKB ": node %d (op %s): binding %s bytes [%llu, %llu) of a %llu-byte buffer "
                        "(element offset %zu, range limit %llu)", r->node_index, sisa_op_name(r->node->op),
                        sisa_tensor_describe(t, desc, sizeof desc), (unsigned long long)start,
                        (unsigned long long)end, (unsigned long long)vb->size, t->offset,
                        (unsigned long long)d->max_range);
    }
    *b = (vk_bind){vb->buf, off, range};
    *base = (uint32_t)(((int64_t)t->offset - (int64_t)off) / es);
    return SISA_OK;
}

sisa_status sisa_vk_units_bind(const vk_rec *r, const vk_units *u, int64_t u0, int64_t u1,
                               vk_bind binds[VK_BINDINGS], uint32_t base[VK_BINDINGS]) {
    int64_t lo[3], hi[3];
    unit_box(u->dims, u0, u1, lo, hi);
    for (int i = 0; i < u->n_ops; i++) {
        int64_t a, b;
        op_span(&u->ops[i], lo, hi, &a, &b);
        SISA_TRY(sisa_vk_bind_span(r, u->ops[i].t, a, b, &binds[u->slot[i]], &base[u->slot[i]]));
    }
    return SISA_OK;
}
