/*
 * test_ffn_pad.c — GPU devices get the FFN width padded with zeros to a multiple of 64 at load
 * (runtime/model.c FFN_PAD, for the matrix units' aligned paths). The padding must not change the
 * function: a model with an odd d_ff gives the oracle's logits on every backend present.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sisa.h"
#include "test_util.h"

static sisa_status forward(const char *dir, const char *backend, const int32_t *ids, int T, float *out) {
    sisa_load_options o = {.backend = backend, .max_tokens = T};
    sisa_model *m = NULL;
    sisa_status st = sisa_model_load(dir, &o, &m);
    if (st == SISA_OK) st = sisa_model_forward(m, ids, 1, T, out, NULL);
    sisa_model_free(m);
    return st;
}

int main(void) {
    char dir[] = "/tmp/sisa-ffnpad-XXXXXX";
    if (!mkdtemp(dir)) return 2;
    sisa_config cfg;
    if (sisa_config_from_name("tiny", &cfg) != SISA_OK) return 2;
    cfg.d_ff = 203; /* odd, far from a multiple of 64 */
    int failures = 0;
    if (sisa_model_init_dir(&cfg, 7, SISA_DTYPE_F32, dir) != SISA_OK) {
        printf("FAIL init: %s\n", sisa_last_error());
        return 1;
    }
    enum { T = 19 };
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = (i * 31 + 5) % (int32_t)cfg.vocab_size;
    size_t n = (size_t)T * (size_t)cfg.vocab_size;
    float *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got);
    if (!ref || !got || forward(dir, "cpu-ref", ids, T, ref) != SISA_OK) {
        printf("FAIL oracle forward: %s\n", sisa_last_error());
        return 1;
    }
    const char *backends[] = {"cpu", "vulkan", "opencl", "cuda"};
    for (size_t b = 0; b < sizeof backends / sizeof *backends; b++) {
        sisa_device_info di;
        if (sisa_device_get_info(backends[b], 0, &di) != SISA_OK) {
            printf("skip %-7s %s\n", backends[b], sisa_last_error());
            continue;
        }
        sisa_status st = forward(dir, backends[b], ids, T, got);
        double e = st == SISA_OK ? tu_norm_err_f32(got, ref, n) : INFINITY;
        int ok = e <= 1e-5;
        printf("%s %-7s d_ff=203: normalised logit error vs oracle %.3g (bound 1e-5)%s%s\n",
               ok ? "ok  " : "FAIL", backends[b], e, st == SISA_OK ? "" : ": ",
               st == SISA_OK ? "" : sisa_last_error());
        failures += !ok;
    }
    tu_remove_model_dir(dir);
    free(ref);
    free(got);
    return failures ? 1 : 0;
}
