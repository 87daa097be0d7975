/*
 * test_compute_dtype.c — bf16 activations (sisa_load_options.compute_dtype) give the f32 model's
 * logits within bf16 rounding on every backend present, and f16 activations are refused with the
 * range reason (SISA.md §3).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sisa.h"
#include "test_util.h"

static int failures;

static int forward(const char *dir, const char *backend, sisa_dtype_public cdt, const int32_t *ids,
                   int T, float *logits) {
    sisa_load_options o = {.backend = backend, .max_tokens = T, .compute_dtype = cdt};
    sisa_model *m = NULL;
    sisa_status st = sisa_model_load(dir, &o, &m);
    if (st == SISA_OK) st = sisa_model_forward(m, ids, 1, T, logits, NULL);
    sisa_model_free(m);
    if (st != SISA_OK) printf("  %s (%s): %s\n", backend, cdt == SISA_DTYPE_BF16 ? "bf16" : "f32", sisa_last_error());
    return st;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden/sisa_ds16";
    enum { T = 24 };
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = (i * 7 + 3) % 97;
    const char *backends[] = {"cpu-ref", "cpu", "vulkan", "opencl", "cuda"};
    size_t n = (size_t)T * 97;
    float *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got);
    if (!ref || !got || forward(dir, "cpu-ref", SISA_DTYPE_F32, ids, T, ref) != SISA_OK) return 1;
    for (size_t b = 0; b < sizeof backends / sizeof *backends; b++) {
        sisa_device_info di;
        if (sisa_device_get_info(backends[b], 0, &di) != SISA_OK) {
            printf("skip %-8s %s\n", backends[b], sisa_last_error());
            continue;
        }
        if (!di.has_bf16) {
            printf("skip %-8s no bf16 storage on this device\n", backends[b]);
            continue;
        }
        sisa_status st = forward(dir, backends[b], SISA_DTYPE_BF16, ids, T, got);
        if (st == SISA_UNSUPPORTED) {
            printf("skip %-8s declines a bf16 node (strict placement)\n", backends[b]);
            continue;
        }
        double e = st == SISA_OK ? tu_norm_err_f32(got, ref, n) : INFINITY;
        /* bf16 keeps 8 significant bits (2^-9 relative rounding); a few roundings per layer */
        int ok = e < 2e-2;
        printf("%s %-8s bf16 activations vs f32 oracle: normalised logit error %.3g (bound 2e-2)\n",
               ok ? "ok  " : "FAIL", backends[b], e);
        failures += !ok;
    }
    sisa_load_options o = {.backend = "cpu", .compute_dtype = SISA_DTYPE_F16};
    sisa_model *m = NULL;
    sisa_status st = sisa_model_load(dir, &o, &m);
    int ok = st == SISA_UNSUPPORTED && strstr(sisa_last_error(), "s·Cbar") != NULL;
    printf("%s f16 activations refused: %s\n", ok ? "ok  " : "FAIL", sisa_last_error());
    failures += !ok;
    sisa_model_free(m);
    free(ref);
    free(got);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
