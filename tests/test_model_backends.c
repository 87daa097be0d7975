/*
 * test_model_backends.c — the whole model, forward on "cpu" (the fast path) against "cpu-ref"
 * (the oracle): normalised logit error < 1e-4 in f32, and the same clamp report.
 *
 * Models: tiny SISA and tiny Transformer (§6 init, f32 and bf16 weights), batch 2, odd T; and,
 * when the golden directory is given (argv[1] = tests/golden), its cases — including sisa_clamp,
 * whose clamp is active — where both backends are also held to the fp64 golden logits
 * (normalised error <= 1e-5, tests/golden/README.md) and clamp_max_abs_u (absolute 1e-4).
 * With --gpus the same comparisons run for every GPU-API backend present (tolerance 1e-3).
 * The node-by-node comparison of every intermediate is the conformance suite's job.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "safetensors.h"
#include "test_util.h"

static int failures = 0;

static double rel_err(const float *a, const float *ref, size_t n, bool *finite) {
    double e = 0, r = 0;
    *finite = true;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(ref[i])) *finite = false;
        double d = (double)a[i] - (double)ref[i];
        e += d * d;
        r += (double)ref[i] * (double)ref[i];
    }
    return r > 0 ? sqrt(e / r) : sqrt(e);
}

typedef struct result {
    float *logits;
    sisa_clamp_report rep;
    int64_t V;
    int d_ssm;
} result;

static bool forward(const char *dir, const char *backend, const int32_t *tok, int B, int T, result *r) {
    sisa_load_options o = {.backend = backend, .max_batch = B, .max_tokens = T};
    sisa_model *m = NULL;
    if (sisa_model_load(dir, &o, &m) != SISA_OK) {
        printf("FAIL %s on %s: load: %s\n", dir, backend, sisa_last_error());
        failures++;
        return false;
    }
    r->V = m->cfg.vocab_size;
    r->d_ssm = (int)m->cfg.d_ssm;
    r->logits = malloc((size_t)B * T * (size_t)r->V * sizeof(float));
    sisa_status st = sisa_model_forward(m, tok, B, T, r->logits, &r->rep);
    if (st != SISA_OK) {
        printf("FAIL %s on %s: forward: %s\n", dir, backend, sisa_last_error());
        failures++;
    }
    sisa_model_free(m);
    return st == SISA_OK;
}

/* golden: optional fp64 logits and clamp values to hold both backends to */
static const char *other = "cpu"; /* the backend under test */
static double tol = 1e-4;          /* normalised logit error allowed against cpu-ref */

static void compare(const char *label, const char *dir, const int32_t *tok, int B, int T,
                    const double *golden_logits, const double *golden_clamp) {
    result ref = {0}, fast = {0};
    if (!forward(dir, "cpu-ref", tok, B, T, &ref) || !forward(dir, other, tok, B, T, &fast)) {
        free(ref.logits);
        free(fast.logits);
        return;
    }
    size_t n = (size_t)B * T * (size_t)ref.V;
    bool finite;
    double e = rel_err(fast.logits, ref.logits, n, &finite);
    bool ok = finite && e < tol;
    printf("%-4s %-28s %s vs cpu-ref logits %.2e", ok ? "ok" : "FAIL", label, other, e);
    if (!ok) failures++;
    /* clamp report: same layers, same values, same verdict */
    bool rep_ok = ref.rep.n_layers == fast.rep.n_layers && ref.rep.any_active == fast.rep.any_active;
    double worst = 0;
    for (int l = 0; l < ref.rep.n_layers; l++) {
        double d = fabs((double)ref.rep.max_abs_u[l] - (double)fast.rep.max_abs_u[l]);
        worst = d > worst ? d : worst;
        if (!(d <= tol * fmax(1.0, fabs(ref.rep.max_abs_u[l])))) rep_ok = false;
    }
    printf(", clamp report %s (max diff %.1e, active %d)", rep_ok ? "equal" : "DIFFERS", worst,
           ref.rep.any_active);
    if (!rep_ok) failures++;
    if (golden_logits) {
        float *g = malloc(n * sizeof *g);
        for (size_t i = 0; i < n; i++) g[i] = (float)golden_logits[i];
        double er = rel_err(ref.logits, g, n, &finite), ef = rel_err(fast.logits, g, n, &finite);
        double gtol = tol > 1e-5 ? tol : 1e-5;
        bool gok = finite && er <= 1e-5 && ef <= gtol;
        printf(", vs golden: cpu-ref %.2e %s %.2e", er, other, ef);
        if (!gok) {
            printf(" FAIL (> %.0e)", gtol);
            failures++;
        }
        free(g);
    }
    if (golden_clamp && ref.d_ssm) {
        bool cok = true;
        for (int l = 0; l < ref.rep.n_layers; l++)
            if (!(fabs(ref.rep.max_abs_u[l] - golden_clamp[l]) <= 1e-4 &&
                  fabs(fast.rep.max_abs_u[l] - golden_clamp[l]) <= 1e-4 * fmax(1.0, tol / 1e-4)))
                cok = false;
        printf(", clamp vs golden %s", cok ? "ok" : "FAIL");
        if (!cok) failures++;
    }
    printf("\n");
    free(ref.logits);
    free(fast.logits);
}

/* The copy paths of the loader, on the oracle: a device that is "not a CPU" (no in-place mapping),
 * lacks bf16 (weights converted to f32 at load) and allocates at most 192 KiB per buffer (weights
 * packed into several buffers, the arena split into several chunks). Same logits as the plain
 * load of the same bf16 directory: converting bf16 to f32 is exact. */
static void device_limits(const char *dir, const int32_t *tok, int B, int T) {
    result plain = {0};
    if (!forward(dir, "cpu-ref", tok, B, T, &plain)) return;
    sisa_device *dev = NULL;
    sisa_model *m = NULL;
    sisa_load_options o = {.max_batch = B, .max_tokens = T};
    if (sisa_device_open("cpu-ref", 0, &dev) != SISA_OK) {
        printf("FAIL open cpu-ref: %s\n", sisa_last_error());
        failures++;
        free(plain.logits);
        return;
    }
    dev->info.is_cpu = 0;
    dev->info.has_bf16 = 0;
    dev->info.max_buffer_bytes = 192 << 10;
    if (sisa_model_load_device(dir, dev, &o, &m) != SISA_OK) {
        printf("FAIL load with device limits: %s\n", sisa_last_error());
        failures++;
        free(plain.logits);
        return;
    }
    size_t n = (size_t)B * T * (size_t)plain.V;
    float *lg = malloc(n * sizeof *lg);
    sisa_clamp_report rep;
    bool finite = false;
    double e = 1;
    if (sisa_model_forward(m, tok, B, T, lg, &rep) == SISA_OK) e = rel_err(lg, plain.logits, n, &finite);
    else printf("forward: %s\n", sisa_last_error());
    /* tiny: 2 layers x 15 tensors + embed + final_norm; lambda_raw (2) is f32 already */
    bool ok = finite && e <= 1e-7 && m->n_mapped == 0 && m->n_converted == m->n_weights - 2 &&
              m->n_wbufs > 1 && m->sched->arena.n_chunks > 1;
    printf("%-4s %-28s no bf16, 192 KiB buffers: %d weights converted, %d weight buffers, %d arena "
           "chunks; logits vs plain load %.2e\n",
           ok ? "ok" : "FAIL", "tiny sisa bf16 weights", m->n_converted, m->n_wbufs,
           m->sched->arena.n_chunks, e);
    if (!ok) failures++;
    free(lg);
    free(plain.logits);
    sisa_model_free(m);
}

static void golden_case(const char *root, const char *name) {
    char dir[512], p[600];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    snprintf(p, sizeof p, "%s/golden.safetensors", dir);
    sisa_st_file *gf = NULL;
    if (sisa_st_open(p, &gf) != SISA_OK) {
        printf("FAIL golden %s: %s\n", name, sisa_last_error());
        failures++;
        return;
    }
    const sisa_st_tensor *tk = sisa_st_find(gf, "tokens"), *lg = sisa_st_find(gf, "logits"),
                         *cl = sisa_st_find(gf, "clamp_max_abs_u");
    if (!tk || tk->dtype != SISA_I32 || tk->n_dims != 2 || !lg || lg->dtype != SISA_F64) {
        printf("FAIL golden %s: tokens/logits missing or of the wrong dtype\n", name);
        failures++;
    } else {
        char label[64];
        snprintf(label, sizeof label, "golden/%s", name);
        compare(label, dir, tk->data, (int)tk->shape[0], (int)tk->shape[1], lg->data,
                cl && cl->dtype == SISA_F64 ? cl->data : NULL);
    }
    sisa_st_close(gf);
}

/* Every comparison of this file against one backend. */
static void run_all(const char *root, const char *golden) {
    const int B = 2, T = 33;
    int32_t tok[2 * 33];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)((i * 131 + 17) % 256);
    const struct {
        const char *name;
        sisa_dtype_public dt;
        const char *label;
    } models[] = {
        {"tiny", SISA_DTYPE_F32, "tiny sisa f32"},
        {"tiny-transformer", SISA_DTYPE_F32, "tiny transformer f32"},
        {"tiny", SISA_DTYPE_BF16, "tiny sisa bf16 weights"},
        {"tiny", SISA_DTYPE_F16, "tiny sisa f16 weights"},
    };
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char dir[300];
        snprintf(dir, sizeof dir, "%s/m%zu", root, i);
        sisa_config cfg;
        if (sisa_config_from_name(models[i].name, &cfg) != SISA_OK ||
            sisa_model_init_dir(&cfg, 77 + i, models[i].dt, dir) != SISA_OK) {
            printf("FAIL init %s: %s\n", models[i].label, sisa_last_error());
            failures++;
            continue;
        }
        compare(models[i].label, dir, tok, B, T, NULL, NULL);
        if (models[i].dt == SISA_DTYPE_BF16 && !strcmp(other, "cpu")) device_limits(dir, tok, B, T);
        tu_remove_model_dir(dir);
    }
    struct stat sb;
    if (!golden) return;
    if (stat(golden, &sb) != 0) {
        printf("golden directory %s absent: golden cases skipped\n", golden);
        return;
    }
    const char *cases[] = {"sisa_ds16", "sisa_ds2_batch2", "transformer", "sisa_clamp"};
    for (int i = 0; i < 4; i++) golden_case(golden, cases[i]);
}

static bool available(const char *name, const char **reason) {
    sisa_backend_info info;
    for (int i = 0; i < sisa_backend_count(); i++)
        if (sisa_backend_get_info(i, &info) == SISA_OK && !strcmp(info.name, name)) {
            *reason = info.reason;
            return info.available;
        }
    *reason = "unknown";
    return false;
}

/* test_model_backends [GOLDEN_DIR] [--gpus]
 * Default: "cpu" against "cpu-ref" (1e-4). --gpus: every available GPU-API backend (vulkan,
 * opencl, cuda) against "cpu-ref" (1e-3: their GEMMs may round differently), the same models —
 * this also covers a CPU-type device that is not a host backend (PoCL, lavapipe). */
int main(int argc, char **argv) {
    const char *golden = NULL;
    bool gpus = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--gpus")) gpus = true;
        else golden = argv[i];
    }
    const char *cpu_only[] = {"cpu"}, *gpu_list[] = {"vulkan", "opencl", "cuda"};
    const char **list = gpus ? gpu_list : cpu_only;
    int n_list = gpus ? 3 : 1, ran = 0;
    char root[256];
    snprintf(root, sizeof root, "%s/sisa_backends_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) return 2;
    for (int b = 0; b < n_list; b++) {
        const char *why;
        if (!available(list[b], &why)) {
            printf("skip backend '%s': %s\n", list[b], why);
            continue;
        }
        other = list[b];
        tol = gpus ? 1e-3 : 1e-4;
        ran++;
        run_all(root, golden);
    }
    rmdir(root);
    if (!ran) {
        printf("SKIP: no backend to test\n");
        return 77;
    }
    printf("%d backend(s), %d failure(s)\n", ran, failures);
    return failures ? 1 : 0;
}
