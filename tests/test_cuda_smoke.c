/*
 * test_cuda_smoke.c — the CUDA backend against the oracle on a handful of small graphs.
 *
 * Each case builds the same graph twice, runs one copy on "cpu-ref" (sisa_cpu_ref_compute, fp64)
 * and one on "cuda" through the scheduler in strict mode (no fallback), with identical seeded
 * inputs, and compares every output by the normalised error ||cuda - ref|| / ||ref|| (exact match
 * for ARGMAX). It covers MATMUL (cuBLASLt f32/bf16, batched with broadcast, the fallback kernel on
 * views and mixed dtypes), SDPA form A and B on both own kernels (fp32 scalar; bf16 tensor-core
 * wmma, d_qk 80 != d_v 64) and cuDNN where it takes the shape, decode with p0, SSM_DECAY ->
 * SSM_CHANNELS in both modes, and the smaller ops. The conformance suite is the full check.
 * Also the persistent decode kernel's grid barrier (mega.cu): many barriers in one launch, and a
 * block that never arrives must end the launch with a report, not hang.
 *
 * Exit 77 (meson: skipped) with the reason when the machine has no CUDA device (CI: the stub
 * libcuda makes cudaGetDeviceCount fail with error 35).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backends/cuda/cuda_internal.h"
#include "error.h"
#include "graph.h"
#include "smoke_common.h"

/* The shared cases and the runner are in smoke_common.c; these are CUDA's own. */

/* ---- bf16 cases: tensor-core paths (cuBLASLt bf16, own wmma flash attention, cuDNN) ---- */

static void c_matmul_bf16_lt(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_BF16, 1, 4, 64, 96), *w = IN(g, "w", SISA_BF16, 1, 1, 80, 96);
    smoke_out(o, sisa_matmul(g, x, w), 5e-3); /* f32 dst */
    g->act_dtype = SISA_BF16;
    smoke_out(o, sisa_matmul(g, x, w), SMOKE_BF16_TOL);
    sisa_tensor *a = IN(g, "a", SISA_BF16, 2, 3, 17, 32), *b = IN(g, "b", SISA_BF16, 2, 3, 19, 32);
    smoke_out(o, sisa_matmul(g, a, b), SMOKE_BF16_TOL);
    g->act_dtype = SISA_F32;
}

static void c_sdpa_a_bf16(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_BF16, 2, 3, 113, 80), *k = IN(g, "big_k", SISA_BF16, 2, 3, 113, 80);
    sisa_tensor *v = IN(g, "v", SISA_BF16, 2, 3, 113, 64);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), SMOKE_BF16_TOL);
    g->act_dtype = SISA_BF16;
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), SMOKE_BF16_TOL);
    smoke_out(o, smoke_sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), SMOKE_BF16_TOL);
    g->act_dtype = SISA_F32;
}

static void c_sdpa_decode_bf16(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_BF16, 1, 2, 1, 80), *k = IN(g, "big_k", SISA_BF16, 1, 2, 150, 80);
    sisa_tensor *v = IN(g, "v", SISA_BF16, 1, 2, 150, 64);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 149, NULL, NULL, 0), SMOKE_BF16_TOL);
    sisa_tensor *q3 = IN(g, "big_q3", SISA_BF16, 1, 2, 17, 80);
    smoke_out(o, smoke_sdpa(g, q3, k, v, 1, 120, NULL, NULL, 0), SMOKE_BF16_TOL);
}

/* SISA attention in bf16: both forms on the own kernels (form B: decayed segment of width 16) */
static void c_sdpa_b_bf16(sisa_graph *g, smoke_outs *o) {
    smoke_sisa_attention_on(g, o, 2, 130, SISA_BF16, SMOKE_BOTH_MODES, SMOKE_BF16_TOL);
}

/* Longer sequences through the fast kernel's shapes: several key tiles, partial last tiles, f16,
 * d_s 32 (d_qk 96), Tk > Tq with p0 (chunked prefill), form B with dc = 64 over 300 positions. */
static void c_sdpa_long(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_BF16, 1, 2, 517, 80), *k = IN(g, "big_k", SISA_BF16, 1, 2, 517, 80);
    sisa_tensor *v = IN(g, "v", SISA_BF16, 1, 2, 517, 64);
    g->act_dtype = SISA_BF16;
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), SMOKE_BF16_TOL);
    sisa_tensor *qh = IN(g, "qh", SISA_F16, 1, 3, 200, 96), *kh = IN(g, "kh", SISA_F16, 1, 3, 330, 96);
    sisa_tensor *vh = IN(g, "vh", SISA_F16, 1, 3, 330, 64);
    g->act_dtype = SISA_F16;
    smoke_out(o, smoke_sdpa(g, qh, kh, vh, 1, 130, NULL, NULL, 0), 4e-3);
    smoke_out(o, smoke_sdpa(g, qh, kh, vh, 0, 0, NULL, NULL, 0), 4e-3);
    g->act_dtype = SISA_F32;
}

static void c_sdpa_long_b(sisa_graph *g, smoke_outs *o) {
    smoke_sisa_attention_on(g, o, 1, 300, SISA_BF16, 1 << SISA_SSM_FACTORED, SMOKE_BF16_TOL);
}

/* the bf16 SDPA cases, run after the shared ones under each SDPA selection */
static const smoke_case bf16_sdpa_cases[] = {
    {"SDPA A bf16 80/64", c_sdpa_a_bf16},
    {"SDPA A bf16 decode p0", c_sdpa_decode_bf16},
    {"SISA attention A and B bf16", c_sdpa_b_bf16},
    {"SDPA long bf16/f16, p0, d_qk 96", c_sdpa_long},
    {"SISA attention B bf16 T300", c_sdpa_long_b},
};

/* ---- decode SDPA (decode_attn.cu): the split kernel's paths, run under default selection with
 * the split kernel, its one-block form (SISA_CUDA_ATTN_ONE=0) and the old chunk kernels ----
 * A leaf named "nan<P>d<dim>..." holds NaN at positions >= P along dimension dim: the rows past the
 * causal limit, which no kernel may read (ops.h). Other leaves take smoke_value. */
static double poison_value(const sisa_tensor *t, int idx, int64_t k) {
    if (strncmp(t->name, "nan", 3) == 0) {
        char *e = NULL;
        const long P = strtol(t->name + 3, &e, 10);
        const int dim = e && e[0] == 'd' && e[1] >= '0' && e[1] <= '3' ? e[1] - '0' : 2;
        int64_t inner = 1;
        for (int d = dim + 1; d < 4; d++) inner *= t->shape[d];
        if ((k / inner) % t->shape[dim] >= P) return NAN;
    }
    return smoke_value(t, idx, k);
}

/* the 152M step's layout: f32 caches (Tk,B,H,W) viewed (B,H,Tk,W), gk a view of the (Tk,B,H) g
 * cache; Tq = 8 at p0 = 250 (queries see 251..258 of 300 keys), d_qk 80 / d_v 64, form B */
static void c_decode_cache_b(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_F32, 1, 3, 8, 80);
    sisa_tensor *kc = IN(g, "nan258d0_k", SISA_F32, 300, 1, 3, 80);
    sisa_tensor *vc = IN(g, "nan258d0_v", SISA_F32, 300, 1, 3, 64);
    sisa_tensor *gc = IN(g, "nan258d1_g", SISA_F32, 1, 300, 1, 3);
    sisa_tensor *gq = IN(g, "gq", SISA_F32, 1, 1, 3, 8);
    sisa_tensor *k = sisa_permute(g, kc, 1, 2, 0, 3), *v = sisa_permute(g, vc, 1, 2, 0, 3);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 250, gq, sisa_permute(g, gc, 0, 2, 3, 1), 64), SMOKE_SDPA_TOL);
    /* one query, the first key only; and form A over the same caches at p0 = 257 */
    sisa_tensor *q1 = IN(g, "big_q1", SISA_F32, 1, 3, 1, 80);
    smoke_out(o, smoke_sdpa(g, q1, k, v, 1, 0, NULL, NULL, 0), SMOKE_SDPA_TOL);
    smoke_out(o, smoke_sdpa(g, q1, k, v, 1, 257, NULL, NULL, 0), SMOKE_SDPA_TOL);
}

/* the wider register layouts: d_qk 192 (d_s 128), d_v 128; 2 batch rows; form B with dc = 64 */
static void c_decode_wide(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_F32, 2, 2, 2, 192), *k = IN(g, "nan101d2_k", SISA_F32, 2, 2, 130, 192);
    sisa_tensor *v = IN(g, "nan101d2_v", SISA_F32, 2, 2, 130, 64);
    sisa_tensor *gq = IN(g, "gq", SISA_F32, 1, 2, 2, 2), *gk = IN(g, "nan101d3_g", SISA_F32, 1, 2, 2, 130);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 99, gq, gk, 64), SMOKE_SDPA_TOL);
    sisa_tensor *q2 = IN(g, "big_q2", SISA_F32, 1, 2, 1, 64), *k2 = IN(g, "big_k2", SISA_F32, 1, 2, 77, 64);
    sisa_tensor *v2 = IN(g, "v2", SISA_F32, 1, 2, 77, 128);
    smoke_out(o, smoke_sdpa(g, q2, k2, v2, 0, 0, NULL, NULL, 0), SMOKE_SDPA_TOL);
}

/* per-element loads: bf16 K/V with NaN past the limit, Tq = 4, form B; an f16 d_qk 18 (not a
 * multiple of 4) / d_v 33 case, causal, p0 = 3 */
static void c_decode_generic(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_BF16, 1, 2, 4, 80), *k = IN(g, "nan203d2_k", SISA_BF16, 1, 2, 256, 80);
    sisa_tensor *v = IN(g, "nan203d2_v", SISA_BF16, 1, 2, 256, 64);
    sisa_tensor *gq = IN(g, "gq", SISA_F32, 1, 1, 2, 4), *gk = IN(g, "nan203d3_g", SISA_F32, 1, 1, 2, 256);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 199, gq, gk, 64), SMOKE_BF16_TOL);
    sisa_tensor *qh = IN(g, "qh", SISA_F16, 1, 3, 2, 18), *kh = IN(g, "nan5d2_kh", SISA_F16, 1, 3, 40, 18);
    sisa_tensor *vh = IN(g, "nan5d2_vh", SISA_F16, 1, 3, 40, 33);
    smoke_out(o, smoke_sdpa(g, qh, kh, vh, 1, 3, NULL, NULL, 0), 4e-3);
}

static const smoke_case decode_cases[] = {
    {"decode SDPA cache layout B Tq8", c_decode_cache_b},
    {"decode SDPA d_qk 192, d_v 128", c_decode_wide},
    {"decode SDPA bf16/f16 generic", c_decode_generic},
};

/* The persistent decode kernel's grid barrier (cuda_mega.c's self-test): n tasks with a barrier
 * after each, every block checking that all blocks counted themselves into the task before; then
 * block 0 leaves after the first task: the others must give up after the 100 ms timeout and
 * synchronize report it (the task, "persistent decode kernel"); then the barrier works again. */
static void mega_barrier_checks(smoke_runner *r) {
    sisa_device *d = NULL;
    sisa_stream *st = NULL;
    printf("-- persistent decode kernel: grid barrier self-test\n");
    if (sisa_device_open("cuda", 0, &d) != SISA_OK || d->iface->stream_new(d, &st) != SISA_OK) {
        printf("FAIL opening a CUDA stream: %s\n", sisa_last_error());
        r->checks++;
        r->failures++;
        sisa_device_free(d);
        return;
    }
    struct {
        int n;
        bool stall;
        sisa_status want;
        const char *text;
    } runs[] = {{300, false, SISA_OK, NULL},
                {4, true, SISA_INTERNAL, "grid barrier after task 1 of 4"},
                {64, false, SISA_OK, NULL}};
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        sisa_status got = sc_mega_selftest(st, runs[i].n, runs[i].stall, runs[i].stall ? 100 : 2000);
        const bool ok = got == runs[i].want && (!runs[i].text || strstr(sisa_last_error(), runs[i].text));
        printf("  %s %d tasks%s: %s%s%s\n", ok ? "ok  " : "FAIL", runs[i].n, runs[i].stall ? ", block 0 leaves" : "",
               sisa_status_name(got), got != SISA_OK ? ": " : "", got != SISA_OK ? sisa_last_error() : "");
        r->checks++;
        r->failures += !ok;
    }
    st->iface->free(st);
    sisa_device_free(d);
}

int main(void) {
    if (smoke_probe("cuda", "CUDA")) return 77;
    sisa_device_info info;
    if (sisa_device_get_info("cuda", 0, &info) != SISA_OK) {
        printf("FAIL: opening CUDA device 0 failed: %s\n", sisa_last_error());
        return 1;
    }
    printf("cuda device 0: %s (%s), %s, bf16 %d, tensor cores %d, memory %llu MiB\n", info.name,
           info.vendor, info.driver, info.has_bf16, info.has_coopmat,
           (unsigned long long)(info.memory_bytes >> 20));
    smoke_runner r = {.backend = "cuda", .value = poison_value, .name_width = 30,
                      .err_word = " err"};
    const char *modes[] = {NULL, "own", "wmma", "scalar"};
    for (int m = 0; m < 4; m++) {
        if (modes[m]) setenv("SISA_CUDA_SDPA", modes[m], 1);
        printf("-- SDPA selection: %s\n", modes[m] ? modes[m] : "default (cuDNN where it accepts)");
        smoke_run_cases(&r, smoke_sdpa_cases, SMOKE_N(smoke_sdpa_cases));
        smoke_run_case(&r, "SISA attention A and B", smoke_sisa_attention);
        smoke_run_cases(&r, bf16_sdpa_cases, SMOKE_N(bf16_sdpa_cases));
    }
    unsetenv("SISA_CUDA_SDPA");
    /* the decode SDPA kernels (default selection takes them for Tq <= 8): the split kernel, its
     * one-block form, the chunk kernels in one and in two kernels */
    static const char *const da[4][2] = {{NULL, NULL}, {NULL, "0"}, {"old", NULL}, {"old", "0"}};
    for (int m = 0; m < 4; m++) {
        if (da[m][0]) setenv("SISA_CUDA_DECODE_ATTN", da[m][0], 1);
        if (da[m][1]) setenv("SISA_CUDA_ATTN_ONE", da[m][1], 1);
        printf("-- decode SDPA: %s%s\n", da[m][0] ? "old chunk kernels" : "split kernel",
               da[m][1] ? ", SISA_CUDA_ATTN_ONE=0" : "");
        smoke_run_cases(&r, decode_cases, SMOKE_N(decode_cases));
        smoke_run_cases(&r, smoke_sdpa_cases, SMOKE_N(smoke_sdpa_cases));
        unsetenv("SISA_CUDA_DECODE_ATTN");
        unsetenv("SISA_CUDA_ATTN_ONE");
    }
    smoke_run_cases(&r, smoke_matmul_cases, SMOKE_N(smoke_matmul_cases));
    smoke_run_case(&r, "MATMUL bf16 cuBLASLt", c_matmul_bf16_lt);
    setenv("SISA_CUDA_MATMUL", "fallback", 1);
    smoke_run_case(&r, "MATMUL fallback kernel", smoke_matmul_batched);
    smoke_run_case(&r, "MATMUL fallback bf16", c_matmul_bf16_lt);
    unsetenv("SISA_CUDA_MATMUL");
    smoke_run_case(&r, "RMS_NORM f32, bf16", smoke_rms_norm);
    smoke_run_cases(&r, smoke_ssm_cases, SMOKE_N(smoke_ssm_cases));
    smoke_run_cases(&r, smoke_small_cases, SMOKE_N(smoke_small_cases));
    mega_barrier_checks(&r);
    /* last (a fault would spoil the cases after it): the decode SDPA's cluster form (sm_90; on
     * older devices the backend takes the split kernel for it) */
    setenv("SISA_CUDA_DECODE_ATTN", "cluster", 1);
    printf("-- decode SDPA: cluster form (SISA_CUDA_DECODE_ATTN=cluster)\n");
    smoke_run_cases(&r, decode_cases, SMOKE_N(decode_cases));
    smoke_run_cases(&r, smoke_sdpa_cases, SMOKE_N(smoke_sdpa_cases));
    unsetenv("SISA_CUDA_DECODE_ATTN");
    printf("%d/%d cuda smoke cases passed\n", r.checks - r.failures, r.checks);
    return r.failures ? 1 : 0;
}
