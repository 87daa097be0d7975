/*
 * test_vulkan_shadow.c — the f16 shadow of constant bf16 MATMUL weights (backends/vulkan/vk_shadow.c)
 * may change speed, never bits.
 *
 * A bf16 x bf16 MATMUL whose b is a weight (a PARAM leaf in a buffer of the test's own, at an
 * offset the shadow has to round) runs on the coopmat kernel with the shadow off
 * (SISA_VK_SHADOW=0: b converted in the MATMUL loop) and on (b converted once by
 * bf16_shadow.comp), and the f32 results must be the same bits. The weight holds EVERY bf16 bit
 * pattern (w[n][k] = n << 8 | k) and a is the identity, so out[m][n] is the converted value of
 * pattern n << 8 | m itself: every branch of the conversion (zero, f16 subnormal range and below,
 * the integer re-bias range, beyond 65504, inf, NaN) is compared, and checked against the
 * documented conversion (exact in [2^-14, 65504], +-65504 beyond, within 2^-24 below; the columns
 * of rows holding inf/NaN are NaN). Then:
 *   - the shadow is reused (no second conversion) and converted by the integer re-bias
 *     (SISA_VK_CVT_INT=1) with the same bits;
 *   - a buffer write of the weight (whole, then 16 rows) makes the next MATMUL follow the new values;
 *   - a graph that multiplies, then CPYs new values into the weight's bytes, then multiplies again
 *     gives old-then-new results (a node's write invalidates the shadow inside one command buffer);
 *   - freeing the weight's buffer frees its shadow; with SISA_VK_SHADOW_MAX_BYTES=1 no shadow is
 *     made and the MATMUL still gives the same bits (the fallback).
 * All of it again on a device with SISA_VK_MAX_RANGE=32768 (conversion and MATMUL split into several
 * bindings). With SISA_VK_VALIDATION=1 any validation-layer error fails the test.
 *
 * Needs the coopmat MATMUL: a device with cooperative matrices, or SISA_VK_COOPMAT=emulate (meson
 * sets it; lavapipe runs the kernel with emulated matrix units). Exit 77 without a Vulkan device or
 * without that kernel.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "graph.h"
#include "kvcache.h"
#include "sched.h"

int sisa_vk_validation_errors(void); /* backends/vulkan/vk_instance.c */
int sisa_vk_validation_enabled(void);
const char *sisa_vk_kernel_name(const sisa_device *sd, const sisa_tensor *n);
void sisa_vk_shadow_stats(const sisa_device *sd, uint64_t *bytes, uint64_t *conversions);

enum { M = 256, N = 256, K = 256, WOFF = 576 }; /* WOFF: not a multiple of the shadow's 256-byte rounding */
#define WBYTES ((size_t)N * K * 2)
#define OUTN ((size_t)M * N)

static int failures, checks;

static void check(bool ok, const char *label, const char *what) {
    checks++;
    if (!ok) failures++;
    printf("%-4s %-18s %s\n", ok ? "ok" : "FAIL", label, what);
}

/* out = a.w^T (one MATMUL); with write: out0 = a.w^T, CPY u into w's bytes, out1 = a.w^T */
typedef struct prog {
    sisa_graph *g;
    sisa_sched *s;
    sisa_tensor *a, *u, *out[2];
    int n_out;
} prog;

static sisa_status prog_build(prog *p, sisa_device *dev, sisa_buffer *wbuf, bool write) {
    memset(p, 0, sizeof *p);
    sisa_graph *g = p->g = sisa_graph_new();
    if (!g) return sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    p->a = sisa_graph_input(g, "a", SISA_BF16, 1, 1, M, K);
    sisa_tensor *w = sisa_graph_leaf(g, "w", SISA_BF16, (int64_t[4]){1, 1, N, K}, SISA_TENSOR_PARAM);
    if (w) w->buffer = wbuf, w->offset = WOFF;
    p->out[p->n_out++] = sisa_tensor_set_output(sisa_matmul(g, p->a, w));
    if (write) {
        p->u = sisa_graph_input(g, "u", SISA_BF16, 1, 1, N, K);
        sisa_kvcache_write_into(g, sisa_cpy(g, p->u, SISA_BF16), w, 0);
        p->out[p->n_out++] = sisa_tensor_set_output(sisa_matmul(g, p->a, w));
    }
    SISA_TRY(sisa_graph_status(g));
    SISA_TRY(sisa_sched_new(dev, false, &p->s));
    return sisa_sched_prepare(p->s, g);
}

static void prog_free(prog *p) {
    sisa_sched_free(p->s);
    sisa_graph_free(p->g);
    memset(p, 0, sizeof *p);
}

/* Compute p with the shadow on or off; outputs into res[i] (M x N f32 each). */
static sisa_status prog_run(prog *p, bool shadow, float res[2][OUTN]) {
    setenv("SISA_VK_SHADOW", shadow ? "1" : "0", 1);
    sisa_status st = sisa_sched_compute(p->s, p->g);
    for (int i = 0; st == SISA_OK && i < p->n_out; i++) st = sisa_tensor_read(p->out[i], res[i], OUTN * sizeof(float));
    unsetenv("SISA_VK_SHADOW");
    return st;
}

static uint64_t conversions(const sisa_device *dev, uint64_t *bytes) {
    uint64_t b, c;
    sisa_vk_shadow_stats(dev, &b, &c);
    if (bytes) *bytes = b;
    return c;
}

static bool same(const float *x, const float *y) { return memcmp(x, y, OUTN * sizeof(float)) == 0; }

/* out[m][n] = the converted bf16 pattern n << 8 | m: exact in [2^-14, 65504], +-65504 beyond,
 * within 2^-24 below; NaN in the columns of rows n = 0x7f, 0xff (they hold inf and NaN). */
static bool conversion_as_documented(const float *out, char *msg, size_t len) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float got = out[(size_t)m * N + n], x = sisa_bf16_to_f32((uint16_t)(n << 8 | m));
            bool ok;
            if ((n & 0x7f) == 0x7f) ok = isnan(got);
            else if (fabsf(x) > 65504.0f) ok = got == copysignf(65504.0f, x);
            else if (fabsf(x) >= 0x1p-14f) ok = got == x;
            else ok = fabsf(got - x) <= 0x1p-24f;
            if (!ok) {
                snprintf(msg, len, "bf16 0x%04x (%g) -> %g", n << 8 | m, (double)x, (double)got);
                return false;
            }
        }
    snprintf(msg, len, "all 65536 bf16 patterns as documented");
    return true;
}

static sisa_status write_w(sisa_buffer *wbuf, const uint16_t *v, int row0, int rows) {
    return wbuf->iface->write(wbuf, WOFF + (size_t)row0 * K * 2, v + (size_t)row0 * K, (size_t)rows * K * 2);
}

/* One device (opened with the environment as it is): every check of the header. 77: no coopmat MATMUL. */
static int scenario(const char *label, float (*r)[2][OUTN]) {
    sisa_device *dev = NULL;
    sisa_buffer *wbuf = NULL;
    prog p1 = {0}, p2 = {0};
    uint16_t *v1 = malloc(WBYTES), *v2 = malloc(WBYTES), *eye = malloc((size_t)M * K * 2);
    char msg[160];
    int rc = 0;
    sisa_status st = v1 && v2 && eye ? SISA_OK : sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    for (size_t i = 0; v1 && v2 && i < (size_t)N * K; i++) {
        v1[i] = (uint16_t)i; /* row n, column k: n << 8 | k */
        v2[i] = sisa_f32_to_bf16((float)((i * 7919) % 1001) / 500.0f - 1.0f);
    }
    for (size_t i = 0; eye && i < (size_t)M * K; i++) eye[i] = i / K == i % K ? 0x3f80 : 0; /* 1.0 on the diagonal */
    if (st == SISA_OK) st = sisa_device_open("vulkan", 0, &dev);
    if (st == SISA_OK) st = sisa_buffer_alloc(dev, WOFF + WBYTES + 256, &wbuf);
    if (st == SISA_OK) st = prog_build(&p1, dev, wbuf, false);
    if (st == SISA_OK) st = prog_build(&p2, dev, wbuf, true);
    if (st == SISA_OK && strncmp(sisa_vk_kernel_name(dev, p1.out[0]), "matmul_coopmat", 14) != 0) {
        printf("SKIP: MATMUL bf16 runs on '%s', not the coopmat kernel (no cooperative matrices; "
               "SISA_VK_COOPMAT=emulate runs it emulated)\n", sisa_vk_kernel_name(dev, p1.out[0]));
        rc = 77;
        goto done;
    }
    if (st == SISA_OK) st = sisa_tensor_write(p1.a, eye, (size_t)M * K * 2);
    if (st == SISA_OK) st = sisa_tensor_write(p2.a, eye, (size_t)M * K * 2);
    if (st == SISA_OK) st = sisa_tensor_write(p2.u, v2, WBYTES);
    if (st == SISA_OK) st = write_w(wbuf, v1, 0, N);

    /* every pattern: off, on (converted once), on again (reused) */
    uint64_t c0 = 0, c1 = 0, bytes = 0;
    if (st == SISA_OK) st = prog_run(&p1, false, r[0]);
    if (st == SISA_OK) c0 = conversions(dev, NULL);
    if (st == SISA_OK) st = prog_run(&p1, true, r[1]);
    if (st == SISA_OK) c1 = conversions(dev, &bytes);
    if (st == SISA_OK) {
        check(c1 == c0 + 1 && bytes >= WBYTES, label, "shadow made and converted once");
        check(same(r[0][0], r[1][0]), label, "every bf16 pattern: shadow on == off (bits)");
        check(conversion_as_documented(r[1][0], msg, sizeof msg), label, msg);
        st = prog_run(&p1, true, r[2]);
    }
    if (st == SISA_OK) {
        check(conversions(dev, NULL) == c1 && same(r[0][0], r[2][0]), label, "shadow reused, same bits");
        /* the integer re-bias path of the conversion shader: a fresh conversion (written weights) */
        setenv("SISA_VK_CVT_INT", "1", 1);
        st = write_w(wbuf, v1, 0, N);
        if (st == SISA_OK) st = prog_run(&p1, true, r[2]);
        if (st == SISA_OK) st = prog_run(&p1, false, r[3]);
        unsetenv("SISA_VK_CVT_INT");
    }
    if (st == SISA_OK) {
        check(conversions(dev, NULL) == c1 + 1 && same(r[0][0], r[2][0]) && same(r[0][0], r[3][0]), label,
              "SISA_VK_CVT_INT=1: on == off == fp32 path (bits)");
        /* host writes: all rows, then 16 rows back */
        st = write_w(wbuf, v2, 0, N);
    }
    if (st == SISA_OK) st = prog_run(&p1, true, r[2]);
    if (st == SISA_OK) st = prog_run(&p1, false, r[3]);
    if (st == SISA_OK) {
        check(same(r[2][0], r[3][0]) && !same(r[2][0], r[0][0]), label, "weights written: result follows (on == off)");
        st = write_w(wbuf, v1, 100, 16);
    }
    if (st == SISA_OK) st = prog_run(&p1, true, r[4]);
    if (st == SISA_OK) st = prog_run(&p1, false, r[5]);
    if (st == SISA_OK) {
        check(same(r[4][0], r[5][0]) && !same(r[4][0], r[2][0]), label, "16 rows written: result follows (on == off)");
        /* a node writes the weight: multiply (old), CPY v2 in, multiply (new) in one command buffer */
        st = write_w(wbuf, v1, 0, N);
    }
    if (st == SISA_OK) st = prog_run(&p1, true, r[4]); /* shadow of v1 current */
    if (st == SISA_OK) st = prog_run(&p2, true, r[4]);
    if (st == SISA_OK) {
        check(same(r[4][0], r[0][0]) && same(r[4][1], r[3][0]), label,
              "CPY into the weight between two MATMULs: old, then new (bits)");
        st = write_w(wbuf, v1, 0, N);
    }
    if (st == SISA_OK) st = prog_run(&p2, false, r[5]);
    if (st == SISA_OK) check(same(r[5][0], r[0][0]) && same(r[5][1], r[3][0]), label, "the same with the shadow off");

    /* the shadow goes with its buffer; then a budget too small for it: the MATMUL loop converts */
    prog_free(&p1);
    prog_free(&p2);
    if (st == SISA_OK) {
        sisa_buffer_free(wbuf);
        wbuf = NULL;
        conversions(dev, &bytes);
        check(bytes == 0, label, "weight buffer freed: its shadow freed");
        setenv("SISA_VK_SHADOW_MAX_BYTES", "1", 1);
        c0 = conversions(dev, NULL);
        st = sisa_buffer_alloc(dev, WOFF + WBYTES + 256, &wbuf);
        if (st == SISA_OK) st = prog_build(&p1, dev, wbuf, false);
        if (st == SISA_OK) st = sisa_tensor_write(p1.a, eye, (size_t)M * K * 2);
        if (st == SISA_OK) st = write_w(wbuf, v1, 0, N);
        if (st == SISA_OK) st = prog_run(&p1, true, r[2]);
        unsetenv("SISA_VK_SHADOW_MAX_BYTES");
    }
    if (st == SISA_OK) {
        conversions(dev, &bytes);
        check(bytes == 0 && conversions(dev, NULL) == c0 && same(r[2][0], r[0][0]), label,
              "no room for a shadow: bf16 path, same bits");
    }
done:
    if (st != SISA_OK) {
        printf("FAIL %-18s %s\n", label, sisa_last_error());
        failures++;
    }
    prog_free(&p1);
    prog_free(&p2);
    sisa_buffer_free(wbuf);
    sisa_device_free(dev);
    free(v1);
    free(v2);
    free(eye);
    return rc;
}

int main(void) {
    const sisa_backend_def *b = sisa_backend_find("vulkan");
    const char *why = NULL;
    if (!b || sisa_backend_probe(b, &why) <= 0) {
        printf("SKIP: no Vulkan backend or device: %s\n", b ? (why ? why : "?") : "not compiled in");
        return 77;
    }
    float (*r)[2][OUTN] = malloc(6 * sizeof *r); /* results: off, on, and scratch */
    if (!r) return 1;
    int rc = scenario("device limits", r);
    if (rc == 0) {
        setenv("SISA_VK_MAX_RANGE", "32768", 1); /* conversion and MATMUL in several bindings */
        rc = scenario("MAX_RANGE=32768", r);
        unsetenv("SISA_VK_MAX_RANGE");
    }
    free(r);
    if (rc == 77) return 77;
    int verrs = sisa_vk_validation_errors();
    printf("validation layer: %s, %d error(s)\n", sisa_vk_validation_enabled() ? "on" : "off", verrs);
    printf("%d/%d shadow checks passed\n", checks - failures, checks);
    return failures || verrs ? 1 : 0;
}
