/*
 * test_opencl_smoke.c — the OpenCL backend against the oracle on a handful of small graphs.
 *
 * Each case builds the same graph twice, runs one copy on "cpu-ref" (sisa_cpu_ref_compute, fp64)
 * and one on "opencl" through the scheduler in strict mode (no fallback), with identical seeded
 * inputs, and compares every output by the normalised error ||cl - ref|| / ||ref|| (exact match
 * for ARGMAX). It covers MATMUL (flat, batched with broadcast, bf16 weight, transposed and
 * sliced views), SDPA form A (prefill, decode with p0, non-causal Tq != Tk) and form B,
 * SSM_DECAY -> SSM_CHANNELS in both modes, RMS_NORM and the smaller ops. The conformance suite
 * (tests/conformance) is the full check; this is the backend's own quick one.
 *
 * Exit 77 (meson: skipped) with the reason when the machine has no OpenCL device.
 * Runs whichever device SISA_CL_DEVICE selects (default: device 0).
 */
#include <stdio.h>

#include "backend.h"
#include "error.h"
#include "graph.h"
#include "smoke_common.h"

/* The cases and the runner are the shared ones of smoke_common.c. */

int main(void) {
    if (smoke_probe("opencl", "OpenCL")) return 77;
    sisa_device_info info;
    if (sisa_device_get_info("opencl", 0, &info) != SISA_OK) {
        printf("SKIP: opening OpenCL device 0 failed: %s\n", sisa_last_error());
        return 77;
    }
    printf("opencl device 0: %s (%s), driver %s, f16 %d, f64 %d, max alloc %llu MiB\n", info.name,
           info.vendor, info.driver, info.has_f16, info.has_f64,
           (unsigned long long)(info.max_buffer_bytes >> 20));

    smoke_runner r = {.backend = "opencl", .value = smoke_value, .name_width = 30,
                      .err_word = " err"};
    smoke_run_cases(&r, smoke_matmul_cases, SMOKE_N(smoke_matmul_cases));
    smoke_run_case(&r, "RMS_NORM f32, bf16", smoke_rms_norm);
    smoke_run_cases(&r, smoke_sdpa_cases, SMOKE_N(smoke_sdpa_cases));
    smoke_run_cases(&r, smoke_ssm_cases, SMOKE_N(smoke_ssm_cases));
    smoke_run_case(&r, "SISA attention A and B", smoke_sisa_attention);
    smoke_run_cases(&r, smoke_small_cases, SMOKE_N(smoke_small_cases));
    printf("%d/%d opencl smoke cases passed\n", r.checks - r.failures, r.checks);
    return r.failures ? 1 : 0;
}
