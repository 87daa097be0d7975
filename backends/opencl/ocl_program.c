/*
 * ocl_program.c — programs built from the embedded kernels/<family>.cl, one per (family, options), kept
 * for the device's lifetime, with an on-disk cache of program binaries.
 *
 * Why a cache: an OpenCL driver compiles from source at run time (PoCL: LLVM, a second or more
 * per program). The cache key is a 128-bit hash of the sources, the full build options, the
 * device name, the driver version and the OpenCL C version, so a driver update or an edited
 * kernel never reuses a stale binary. Entries live in $XDG_CACHE_HOME/sisa/opencl (else
 * ~/.cache/sisa/opencl; SISA_CL_NO_CACHE=1 turns it off). A missing, truncated or corrupt entry,
 * or one the driver refuses, is ignored and rebuilt from source: the cache can only save time.
 * SISA_CL_VERBOSE=1 prints one line per program build to stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backends/opencl/cl_kernels.h"
#include "ocl.h"

#define OCL_MAX_KERNELS 8

struct ocl_program {
    ocl_family fam;
    char opts[512]; /* full build options */
    cl_program prog;
    int n_kernels;
    struct {
        char name[48];
        cl_kernel k;
    } kernels[OCL_MAX_KERNELS];
    ocl_program *next;
};

static const char *family_source(ocl_family fam) {
    switch (fam) {
    case OCL_FAM_ELEMENTWISE: return sisa_cl_src_elementwise;
    case OCL_FAM_NORM: return sisa_cl_src_norm;
    case OCL_FAM_EMBED_ROPE: return sisa_cl_src_embed_rope;
    case OCL_FAM_SSM: return sisa_cl_src_ssm;
    case OCL_FAM_SDPA: return sisa_cl_src_sdpa;
    case OCL_FAM_GEMM: return sisa_cl_src_gemm;
    case OCL_FAM_SDPA_MMA: return sisa_cl_src_sdpa_mma;
    default: return NULL;
    }
}

/* The sources of a family's program, in order: the prelude, mma.cl where the family uses the warp
 * mma, the family's file. Returns the count. */
static int family_sources(ocl_family fam, const char *srcs[3]) {
    int n = 0;
    srcs[n++] = sisa_cl_src_common;
    if (fam == OCL_FAM_GEMM || fam == OCL_FAM_SDPA_MMA) srcs[n++] = sisa_cl_src_mma;
    srcs[n++] = family_source(fam);
    return n;
}

const char *ocl_family_name(ocl_family fam) {
    static const char *const names[] = {"elementwise", "norm", "embed_rope", "ssm", "sdpa",
                                        "gemm", "sdpa_mma", "clblast"};
    return fam >= 0 && fam <= OCL_FAM_CLBLAST ? names[fam] : "?";
}

static bool verbose(void) {
    const char *e = getenv("SISA_CL_VERBOSE");
    return e && *e && strcmp(e, "0") != 0;
}

/* ---- the disk cache ---- */

typedef struct key128 {
    uint64_t lo, hi;
} key128;

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static key128 program_key(const ocl_dev *d, ocl_family fam, const char *opts) {
    const char *srcs[3] = {"", "", ""};
    family_sources(fam, srcs);
    const char *parts[] = {"sisa-opencl-cache-v1", srcs[0], srcs[1], srcs[2], opts,
                           d->name, d->driver, d->cl_c_version};
    key128 k = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t n = strlen(parts[i]) + 1; /* the NUL separates the parts */
        k.lo = fnv1a(k.lo, parts[i], n);
        k.hi = fnv1a(k.hi ^ 0x9e3779b97f4a7c15ull, parts[i], n);
    }
    return k;
}

#define CACHE_MAGIC "SISACLB1"

typedef struct cache_header {
    char magic[8];
    uint64_t key_lo, key_hi, size, checksum;
} cache_header;

static void cache_path(const ocl_dev *d, key128 k, char *out, size_t len) {
    snprintf(out, len, "%s/%016llx%016llx.bin", d->cache_dir, (unsigned long long)k.hi,
             (unsigned long long)k.lo);
}

/* The binary stored under k, or NULL (malloc'ed; *size set). Never fails loudly. */
static unsigned char *cache_load(const ocl_dev *d, key128 k, size_t *size) {
    if (!d->cache_dir[0]) return NULL;
    char path[700];
    cache_path(d, k, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    cache_header h;
    unsigned char *bin = NULL;
    if (fread(&h, sizeof h, 1, f) == 1 && memcmp(h.magic, CACHE_MAGIC, 8) == 0 &&
        h.key_lo == k.lo && h.key_hi == k.hi && h.size > 0 && h.size < (1ull << 31)) {
        bin = malloc(h.size);
        if (bin && (fread(bin, 1, h.size, f) != h.size ||
                    fnv1a(0xcbf29ce484222325ull, bin, h.size) != h.checksum)) {
            free(bin);
            bin = NULL;
        }
    }
    fclose(f);
    if (bin) *size = h.size;
    else if (verbose()) fprintf(stderr, "[sisa opencl] ignoring corrupt cache entry %s\n", path);
    return bin;
}

static void mkdir_p(const char *dir) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

static void cache_store(const ocl_dev *d, key128 k, cl_program prog) {
    if (!d->cache_dir[0]) return;
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS ||
        size == 0)
        return;
    unsigned char *bin = malloc(size);
    if (!bin) return;
    unsigned char *bins[1] = {bin};
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS) {
        mkdir_p(d->cache_dir);
        char path[700], tmp[760];
        cache_path(d, k, path, sizeof path);
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
        cache_header h = {.key_lo = k.lo, .key_hi = k.hi, .size = size,
                          .checksum = fnv1a(0xcbf29ce484222325ull, bin, size)};
        memcpy(h.magic, CACHE_MAGIC, 8);
        FILE *f = fopen(tmp, "wb");
        if (f) {
            bool ok = fwrite(&h, sizeof h, 1, f) == 1 && fwrite(bin, 1, size, f) == size;
            ok = fclose(f) == 0 && ok;
            if (!ok || rename(tmp, path) != 0) remove(tmp);
        }
    }
    free(bin);
}

/* ---- building ---- */

static sisa_status build_error(ocl_dev *d, cl_program prog, cl_int err, ocl_family fam,
                               const char *opts) {
    char *log = NULL;
    size_t n = 0;
    if (prog && clGetProgramBuildInfo(prog, d->id, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) == CL_SUCCESS &&
        n > 0) {
        log = malloc(n + 1);
        if (log && clGetProgramBuildInfo(prog, d->id, CL_PROGRAM_BUILD_LOG, n, log, NULL) != CL_SUCCESS)
            log[0] = '\0';
        if (log) log[n] = '\0';
    }
    /* the log's head names the first error; keep the message inside the error buffer */
    if (log && strlen(log) > 1200) strcpy(log + 1190, " [...]");
    sisa_status st = ocl_fail(err, "device '%s': building kernels/%s.cl with \"%s\"; build log:\n%s",
                              d->name, ocl_family_name(fam), opts, log && *log ? log : "(empty)");
    free(log);
    return st == SISA_INTERNAL ? SISA_COMPILE_FAILED : st;
}

static cl_program build_from_binary(ocl_dev *d, const unsigned char *bin, size_t size,
                                    const char *opts) {
    cl_int err = CL_SUCCESS, bstatus = CL_SUCCESS;
    cl_program prog = clCreateProgramWithBinary(d->ctx, 1, &d->id, &size, &bin, &bstatus, &err);
    if (err != CL_SUCCESS || bstatus != CL_SUCCESS || !prog) {
        if (prog) clReleaseProgram(prog);
        return NULL;
    }
    if (clBuildProgram(prog, 1, &d->id, opts, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        return NULL;
    }
    return prog;
}

static sisa_status build_program(ocl_dev *d, ocl_family fam, const char *opts, cl_program *out) {
    *out = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    key128 key = program_key(d, fam, opts);
    size_t bsize = 0;
    unsigned char *bin = cache_load(d, key, &bsize);
    cl_program prog = bin ? build_from_binary(d, bin, bsize, opts) : NULL;
    free(bin);
    bool hit = prog != NULL;
    if (!prog) {
        const char *srcs[3];
        const cl_uint nsrc = (cl_uint)family_sources(fam, srcs);
        cl_int err = CL_SUCCESS;
        prog = clCreateProgramWithSource(d->ctx, nsrc, srcs, NULL, &err);
        if (err != CL_SUCCESS || !prog)
            return ocl_fail(err, "device '%s': clCreateProgramWithSource(kernels/%s.cl)", d->name,
                            ocl_family_name(fam));
        err = clBuildProgram(prog, 1, &d->id, opts, NULL, NULL);
        if (err != CL_SUCCESS) {
            sisa_status st = build_error(d, prog, err, fam, opts);
            clReleaseProgram(prog);
            return st;
        }
        cache_store(d, key, prog);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (verbose())
        fprintf(stderr, "[sisa opencl] %s: kernels/%s.cl \"%s\" %s in %.0f ms\n", d->name,
                ocl_family_name(fam), opts, hit ? "loaded from cache" : "built",
                (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    *out = prog;
    return SISA_OK;
}

static void full_options(const ocl_dev *d, const char *opts, char *out, size_t len) {
    int major = 1, minor = 0;
    /* "OpenCL C 1.2 ..." */
    if (sscanf(d->cl_c_version, "OpenCL C %d.%d", &major, &minor) != 2) major = 1, minor = 0;
    const char *std = (major > 1 || minor >= 2) ? "-cl-std=CL1.2 " : "";
    snprintf(out, len, "%s-DUSE_F64=%d -DHAS_FP16=%d %s", std, d->has_f64, d->has_f16, opts);
}

sisa_status ocl_kernel_get(ocl_dev *d, ocl_family fam, const char *opts, const char *name,
                           cl_kernel *out) {
    char full[512];
    full_options(d, opts, full, sizeof full);
    ocl_program *p = d->programs;
    while (p && !(p->fam == fam && strcmp(p->opts, full) == 0)) p = p->next;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) return sisa_err(SISA_OUT_OF_MEMORY, "opencl: out of host memory for a program");
        sisa_status st = build_program(d, fam, full, &p->prog);
        if (st != SISA_OK) {
            free(p);
            return st;
        }
        p->fam = fam;
        snprintf(p->opts, sizeof p->opts, "%s", full);
        p->next = d->programs;
        d->programs = p;
    }
    for (int i = 0; i < p->n_kernels; i++)
        if (strcmp(p->kernels[i].name, name) == 0) {
            *out = p->kernels[i].k;
            return SISA_OK;
        }
    if (p->n_kernels == OCL_MAX_KERNELS)
        return sisa_err(SISA_INTERNAL, "opencl: too many kernels in program %s", ocl_family_name(fam));
    cl_int err = CL_SUCCESS;
    cl_kernel k = clCreateKernel(p->prog, name, &err);
    if (err != CL_SUCCESS || !k)
        return ocl_fail(err, "device '%s': clCreateKernel(%s) from kernels/%s.cl", d->name, name,
                        ocl_family_name(fam));
    snprintf(p->kernels[p->n_kernels].name, sizeof p->kernels[0].name, "%s", name);
    p->kernels[p->n_kernels++].k = k;
    *out = k;
    return SISA_OK;
}

void ocl_programs_free(ocl_dev *d) {
    ocl_program *p = d->programs;
    while (p) {
        ocl_program *next = p->next;
        for (int i = 0; i < p->n_kernels; i++) clReleaseKernel(p->kernels[i].k);
        clReleaseProgram(p->prog);
        free(p);
        p = next;
    }
    d->programs = NULL;
}
