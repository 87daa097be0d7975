/*
 * bench_vulkan.c — Vulkan backend timings at the shapes of SISA-152M:
 *   MATMUL x.W^T with M = 8*2048 rows, K = 768, N = 768 / 2908 (SISA-152M d_s=16 FFN) / 50277
 *   (logits), in f16 (cooperative-matrix kernel where the device has one), bf16 and f32;
 *   SDPA causal B=8 H=12 T=4096, SISA form A (d_qk 80, d_v 64), form B (d_content 64, gq/gk),
 *   the Transformer's 64/64, in f16, bf16 and f32 (form A).
 * MATMUL's b is a weight, as in a model (a PARAM leaf in a buffer of its own): a bf16 b on the
 * coopmat kernel is read through its f16 shadow (converted once, in the warm-up; the kernel column
 * says "+ f16 shadow" with SISA_VK_SHADOW=1; without it the kernel converts b in its loop).
 * With SISA_VK_SDPA_PREPASS=1 a bf16 attention node on the coopmat kernel first has Q/K/V converted
 * to f16 by the pre-pass (backends/vulkan/vk_sdpa_prepass.c): its dispatches are recorded in the
 * same command buffer, so the time includes them (the kernel column says "+ bf16 pre-pass").
 * Each case is one node run through the scheduler (strict placement), repeated for
 * SISA_BENCH_WARMUP_MS (default 1000) of wall time before the timed reps (GPU clock ramp); time =
 * median of the GPU timestamps around the submitted command buffer (wall clock around
 * compute+synchronize is printed too). FLOPs: 2MNK; attention 2*B*H*(T(T+1)/2)*(d_qk + d_v) (visible pairs only).
 * Usage: bench_vulkan [reps (default 10)] [--quick: small shapes, for lavapipe] [--sdpa: attention only]
 *        [--matmul: MATMUL only (f16 and bf16, plus f32 unless --no-f32)] [--bf16: bf16 rows only
 *        (old-against-new timings of a bf16-only switch)]; SISA_VK_MM_TILES picks the
 *        coopmat tiles (tools/bench/vk_matmul_sweep.sh)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "error.h"
#include "graph.h"
#include "sched.h"

double sisa_vk_stream_last_gpu_ms(sisa_stream *s);
const char *sisa_vk_kernel_name(const sisa_device *sd, const sisa_tensor *n);
void sisa_vk_shadow_stats(const sisa_device *sd, uint64_t *bytes, uint64_t *conversions);
uint64_t sisa_vk_sdpa_prepass_stats(const sisa_device *sd);

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static sisa_status fill(sisa_tensor *t) {
    int64_t n = sisa_tensor_nelements(t);
    size_t es = sisa_dtype_size(t->dtype);
    unsigned char *buf = malloc((size_t)n * es);
    if (!buf) return sisa_err(SISA_OUT_OF_MEMORY, "bench: out of host memory");
    bool decay = strncmp(t->name, "g", 1) == 0; /* cumulative log decay: -0.0067 per position */
    for (int64_t k = 0; k < n; k++) {
        double v = decay ? -0.0067 * (double)(k % t->shape[3]) : urand();
        sisa_store_elem(buf + (size_t)k * es, t->dtype, v);
    }
    sisa_status st = sisa_tensor_write(t, buf, (size_t)n * es);
    free(buf);
    return st;
}

typedef struct bcase {
    const char *name;
    int op;           /* SISA_OP_MATMUL or SISA_OP_SDPA */
    sisa_dtype dt;    /* inputs and output */
    int64_t M, N, K;  /* matmul */
    int64_t B, H, T, dqk, dv, dc; /* sdpa; dc > 0: form B */
} bcase;

static void run(sisa_device *dev, const bcase *c, int reps) {
    sisa_graph *g = sisa_graph_new();
    sisa_sched *s = NULL;
    g->act_dtype = c->dt;
    sisa_tensor *node;
    sisa_buffer *wbuf = NULL;
    sisa_status st = SISA_OK;
    uint64_t bytes = 0, conv0 = 0, conv1 = 0;
    sisa_vk_shadow_stats(dev, &bytes, &conv0);
    const uint64_t pre0 = sisa_vk_sdpa_prepass_stats(dev);
    double flop;
    if (c->op == SISA_OP_MATMUL) {
        sisa_tensor *a = sisa_graph_input(g, "x", c->dt, 1, 1, c->M, c->K);
        sisa_tensor *w = sisa_graph_leaf(g, "w", c->dt, (int64_t[4]){1, 1, c->N, c->K}, SISA_TENSOR_PARAM);
        st = sisa_buffer_alloc(dev, (size_t)(c->N * c->K) * sisa_dtype_size(c->dt), &wbuf);
        if (w) w->buffer = wbuf;
        node = sisa_matmul(g, a, w);
        flop = 2.0 * c->M * c->N * c->K;
    } else {
        sisa_tensor *q = sisa_graph_input(g, "q", c->dt, c->B, c->H, c->T, c->dqk);
        sisa_tensor *k = sisa_graph_input(g, "k", c->dt, c->B, c->H, c->T, c->dqk);
        sisa_tensor *v = sisa_graph_input(g, "v", c->dt, c->B, c->H, c->T, c->dv);
        sisa_sdpa_params p = {.scale = 0.125f, .causal = 1};
        if (c->dc > 0) {
            p.gq = sisa_graph_input(g, "gq", SISA_F32, 1, c->B, c->H, c->T);
            p.gk = sisa_graph_input(g, "gk", SISA_F32, 1, c->B, c->H, c->T);
            p.d_content = (int32_t)c->dc;
        }
        node = sisa_sdpa(g, q, k, v, &p);
        flop = 2.0 * c->B * c->H * (c->T * (c->T + 1) / 2.0) * (double)(c->dqk + c->dv);
    }
    sisa_tensor_set_output(node);
    if (st == SISA_OK) st = sisa_graph_status(g);
    if (st == SISA_OK) st = sisa_sched_new(dev, false, &s);
    if (st == SISA_OK) st = sisa_sched_prepare(s, g);
    for (int i = 0; st == SISA_OK && i < g->n_leafs; i++) st = fill(g->leafs[i]);
    double *gpu = calloc((size_t)reps, sizeof *gpu), *wall = calloc((size_t)reps, sizeof *wall);
    /* warm-up: the first compute creates the pipelines; then the node repeats until warm_ms of
     * wall time have passed, because a GPU that idled (the H100 sits at 345 MHz between
     * processes and during pipeline creation) reaches its working clock only after some load:
     * without it the first rows of a run were timed at a fraction of the clock (docs/VULKAN.md) */
    const char *we = getenv("SISA_BENCH_WARMUP_MS");
    const double warm_ms = we && we[0] ? atof(we) : 1000.0;
    for (double w0 = now_ms(); st == SISA_OK;) {
        st = sisa_sched_compute(s, g);
        if (now_ms() - w0 >= warm_ms) break;
    }
    for (int r = 0; st == SISA_OK && r < reps; r++) {
        double t0 = now_ms();
        st = sisa_sched_compute(s, g);
        double t1 = now_ms();
        gpu[r] = sisa_vk_stream_last_gpu_ms(s->stream);
        wall[r] = t1 - t0;
    }
    sisa_vk_shadow_stats(dev, &bytes, &conv1);
    char kernel[64];
    snprintf(kernel, sizeof kernel, "%s%s%s", sisa_vk_kernel_name(dev, node), conv1 > conv0 ? " + f16 shadow" : "",
             sisa_vk_sdpa_prepass_stats(dev) > pre0 ? " + bf16 pre-pass" : "");
    if (st != SISA_OK) {
        printf("| %-44s | %-4s | %-38s | error: %s |\n", c->name, sisa_dtype_name(c->dt), "-", sisa_last_error());
    } else {
        qsort(gpu, (size_t)reps, sizeof *gpu, cmp_d);
        qsort(wall, (size_t)reps, sizeof *wall, cmp_d);
        double ms = gpu[reps / 2] > 0 ? gpu[reps / 2] : wall[reps / 2];
        printf("| %-44s | %-4s | %-38s | %9.3f | %9.3f | %8.3f |\n", c->name, sisa_dtype_name(c->dt), kernel, ms,
               wall[reps / 2], flop / ms * 1e-9);
    }
    fflush(stdout);
    free(gpu);
    free(wall);
    sisa_sched_free(s);
    sisa_graph_free(g);
    sisa_buffer_free(wbuf); /* and its shadow */
}

int main(int argc, char **argv) {
    int reps = argc > 1 && argv[1][0] != '-' ? atoi(argv[1]) : 10;
    bool quick = false, sdpa_only = false, mm_only = false, no_f32 = false, bf16_only = false;
    for (int i = 1; i < argc; i++) {
        quick = quick || strcmp(argv[i], "--quick") == 0;
        sdpa_only = sdpa_only || strcmp(argv[i], "--sdpa") == 0;
        mm_only = mm_only || strcmp(argv[i], "--matmul") == 0;
        no_f32 = no_f32 || strcmp(argv[i], "--no-f32") == 0;
        bf16_only = bf16_only || strcmp(argv[i], "--bf16") == 0;
    }
    if (reps < 1) reps = 1;
    sisa_device *dev = NULL;
    if (sisa_device_open("vulkan", 0, &dev) != SISA_OK) {
        printf("SKIP: %s\n", sisa_last_error());
        return 77;
    }
    printf("device: %s (%s), driver %s; coopmat %d, subgroup %d, storage range %llu, max buffer %llu\n",
           dev->info.name, dev->info.vendor, dev->info.driver, dev->info.has_coopmat, dev->info.subgroup_size,
           (unsigned long long)dev->info.max_storage_range, (unsigned long long)dev->info.max_buffer_bytes);
    printf("reps %d (median); ms = GPU timestamps, wall = host clock around compute + synchronize\n\n", reps);
    printf("| case | dtype | kernel | ms | wall ms | TFLOP/s |\n|---|---|---|---|---|---|\n");
    const int64_t M = quick ? 256 : 8 * 2048, T = quick ? 256 : 4096, B = quick ? 1 : 8;
    const sisa_dtype mm_dt[] = {SISA_F16, SISA_BF16, SISA_F32};
    const int64_t Ns[] = {768, 2908, 50277};
    const char *Nn[] = {"MATMUL 152M W_Q  %lldx768x768", "MATMUL 152M FFN  %lldx2908x768",
                        "MATMUL 152M logits %lldx50277x768"};
    static char names[16][64];
    int ni = 0;
    for (int d = 0; d < (no_f32 ? 2 : 3) && !sdpa_only; d++)
        for (int k = 0; k < 3; k++) {
            if ((quick && k == 2) || (bf16_only && mm_dt[d] != SISA_BF16)) continue;
            snprintf(names[ni], sizeof names[ni], Nn[k], (long long)M);
            bcase c = {.name = names[ni], .op = SISA_OP_MATMUL, .dt = mm_dt[d], .M = M, .N = Ns[k], .K = 768};
            ni = (ni + 1) % 16;
            run(dev, &c, k == 2 ? (reps < 5 ? reps : 5) : reps);
        }
    /* the FFN down projection: K = the FFN width, padded to 2944 on GPU devices (runtime/model.c) */
    for (int d = 0; d < 2 && !sdpa_only; d++) {
        if (bf16_only && mm_dt[d] != SISA_BF16) continue;
        static char dn[64];
        snprintf(dn, sizeof dn, "MATMUL 152M FFN down %lldx768x%d", (long long)M, quick ? 320 : 2944);
        bcase c = {.name = dn, .op = SISA_OP_MATMUL, .dt = mm_dt[d], .M = M, .N = 768, .K = quick ? 320 : 2944};
        run(dev, &c, reps);
    }
    if (!quick && !sdpa_only && !bf16_only) {
        bcase c = {.name = "MATMUL ceiling 8192^3", .op = SISA_OP_MATMUL, .dt = SISA_F16, .M = 8192, .N = 8192, .K = 8192};
        run(dev, &c, reps < 5 ? reps : 5);
    }
    if (mm_only) {
        sisa_device_free(dev);
        return 0;
    }
    char an[4][96];
    snprintf(an[0], sizeof an[0], "SDPA SISA A B%lld H12 T%lld 80/64 causal", (long long)B, (long long)T);
    snprintf(an[1], sizeof an[1], "SDPA SISA B (dc 64) B%lld H12 T%lld 80/64", (long long)B, (long long)T);
    snprintf(an[2], sizeof an[2], "SDPA Transformer B%lld H12 T%lld 64/64", (long long)B, (long long)T);
    snprintf(an[3], sizeof an[3], "SDPA SISA A B%lld H12 T2048 80/64 causal", (long long)B);
    bcase att[] = {
        {.name = an[0], .op = SISA_OP_SDPA, .dt = SISA_F16, .B = B, .H = 12, .T = T, .dqk = 80, .dv = 64},
        {.name = an[1], .op = SISA_OP_SDPA, .dt = SISA_F16, .B = B, .H = 12, .T = T, .dqk = 80, .dv = 64, .dc = 64},
        {.name = an[2], .op = SISA_OP_SDPA, .dt = SISA_F16, .B = B, .H = 12, .T = T, .dqk = 64, .dv = 64},
        {.name = an[3], .op = SISA_OP_SDPA, .dt = SISA_F16, .B = B, .H = 12, .T = quick ? T : 2048, .dqk = 80, .dv = 64},
        {.name = an[0], .op = SISA_OP_SDPA, .dt = SISA_BF16, .B = B, .H = 12, .T = T, .dqk = 80, .dv = 64},
        {.name = an[1], .op = SISA_OP_SDPA, .dt = SISA_BF16, .B = B, .H = 12, .T = T, .dqk = 80, .dv = 64, .dc = 64},
        {.name = an[2], .op = SISA_OP_SDPA, .dt = SISA_BF16, .B = B, .H = 12, .T = T, .dqk = 64, .dv = 64},
        {.name = an[3], .op = SISA_OP_SDPA, .dt = SISA_BF16, .B = B, .H = 12, .T = quick ? T : 2048, .dqk = 80, .dv = 64},
        {.name = an[0], .op = SISA_OP_SDPA, .dt = SISA_F32, .B = B, .H = 12, .T = T, .dqk = 80, .dv = 64},
    };
    for (size_t i = 0; i < sizeof att / sizeof att[0]; i++)
        if (!bf16_only || att[i].dt == SISA_BF16) run(dev, &att[i], reps < 5 ? reps : 5);
    sisa_device_free(dev);
    return 0;
}
