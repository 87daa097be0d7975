/*
 * model.c — loading a model directory, running the forward, and writing a freshly initialised
 * model (SISA.md §6).
 *
 * Loading trusts nothing: config.json is parsed strictly (config.c), model.safetensors is
 * validated as a file (safetensors.c) and then against the configuration here — every tensor
 * present, nothing extra, shapes and dtypes as config.json implies, lambda_raw in F32, no NaN or
 * Inf anywhere — before a byte reaches a device. Each failure names the file and the tensor.
 *
 * Weights go to the device through the backend interface, packed into buffers no larger than the
 * device's largest allocation. On the CPU backends a weight whose bytes in the file are aligned for
 * its dtype is read in place from the read-only mapping (no copy). A weight whose dtype the device
 * lacks (bf16 on a device without bf16) is converted to f32 at load, and counted.
 *
 * The activation arena is reserved once, at load, from the worst-case graph (max_batch,
 * max_tokens), and that graph is placed right away so that an op the device cannot run is a load
 * error rather than a surprise at the first forward.
 */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../backends/cpu/cpu.h"
#include "error.h"

/* ---- the tensors of a model ---- */

static void spec_add(sisa_weight_spec *s, int *n, const char *name, int n_dims, int64_t d0,
                     int64_t d1, sisa_weight_init init) {
    sisa_weight_spec *w = &s[(*n)++];
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    w->n_dims = n_dims;
    w->shape[0] = d0;
    w->shape[1] = d1;
    w->init = init;
    w->f32_only = init == SISA_INIT_LAMBDA_RAW;
}

sisa_status sisa_model_weight_specs(const sisa_config *cfg, sisa_weight_spec **out, int *n_out) {
    if (!out || !n_out) return sisa_err(SISA_INVALID_ARG, "weight specs: NULL output");
    *out = NULL;
    *n_out = 0;
    SISA_TRY(sisa_config_validate(cfg));
    const int64_t d = cfg->d_model, H = cfg->n_heads, ds = cfg->d_ssm, ff = cfg->d_ff;
    const int per_layer = ds > 0 ? 15 : 9;
    int cap = 2 + (int)cfg->n_layers * per_layer, n = 0;
    sisa_weight_spec *s = calloc((size_t)cap, sizeof *s);
    if (!s) return sisa_err(SISA_OUT_OF_MEMORY, "weight specs: out of host memory");
    spec_add(s, &n, "embed.weight", 2, cfg->vocab_size, d, SISA_INIT_NORMAL_002);
    for (int i = 0; i < cfg->n_layers; i++) {
        char p[SISA_NAME_LEN], nm[SISA_NAME_LEN];
        snprintf(p, sizeof p, "layers.%d.", i);
#define L(suffix) (snprintf(nm, sizeof nm, "%s%s", p, suffix), nm)
        spec_add(s, &n, L("attn_norm.weight"), 1, d, 0, SISA_INIT_ONES);
        spec_add(s, &n, L("W_Q.weight"), 2, d, d, SISA_INIT_NORMAL_002);
        spec_add(s, &n, L("W_K.weight"), 2, d, d, SISA_INIT_NORMAL_002);
        spec_add(s, &n, L("W_V.weight"), 2, d, d, SISA_INIT_NORMAL_002);
        spec_add(s, &n, L("W_O.weight"), 2, d, d, SISA_INIT_NORMAL_002);
        if (ds > 0) {
            spec_add(s, &n, L("W_B.weight"), 2, H * ds, d, SISA_INIT_NORMAL_002);
            spec_add(s, &n, L("W_C.weight"), 2, H * ds, d, SISA_INIT_NORMAL_002);
            spec_add(s, &n, L("alpha_proj.weight"), 2, H, d, SISA_INIT_NORMAL_002);
            spec_add(s, &n, L("alpha_proj.bias"), 1, H, 0, SISA_INIT_ALPHA_BIAS);
            spec_add(s, &n, L("theta_proj.weight"), 2, H * ds / 2, d, SISA_INIT_NORMAL_001);
            spec_add(s, &n, L("lambda_raw"), 1, H, 0, SISA_INIT_LAMBDA_RAW);
        }
        spec_add(s, &n, L("ffn_norm.weight"), 1, d, 0, SISA_INIT_ONES);
        spec_add(s, &n, L("ffn.w_gate.weight"), 2, ff, d, SISA_INIT_NORMAL_002);
        spec_add(s, &n, L("ffn.w_up.weight"), 2, ff, d, SISA_INIT_NORMAL_002);
        spec_add(s, &n, L("ffn.w_down.weight"), 2, d, ff, SISA_INIT_NORMAL_002);
#undef L
    }
    spec_add(s, &n, "final_norm.weight", 1, d, 0, SISA_INIT_ONES);
    *out = s;
    *n_out = n;
    return SISA_OK;
}

const sisa_weight *sisa_model_weight(const sisa_model *m, const char *name) {
    for (int i = 0; m && name && i < m->n_weights; i++)
        if (!strcmp(m->weights[i].name, name)) return &m->weights[i];
    return NULL;
}

/* ---- validation of model.safetensors against the configuration ---- */

static void spec_shape_str(const sisa_weight_spec *s, char *buf, size_t len) {
    if (s->n_dims == 1) snprintf(buf, len, "[%lld]", (long long)s->shape[0]);
    else snprintf(buf, len, "[%lld, %lld]", (long long)s->shape[0], (long long)s->shape[1]);
}

static void st_shape_str(const sisa_st_tensor *t, char *buf, size_t len) {
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->n_dims && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (n < len) snprintf(buf + n, len - n, "]");
}

static sisa_status check_tensor(const char *P, const sisa_weight_spec *s, const sisa_st_tensor *t) {
    char want[64], got[160];
    spec_shape_str(s, want, sizeof want);
    st_shape_str(t, got, sizeof got);
    bool same = t->n_dims == s->n_dims;
    for (int i = 0; same && i < s->n_dims; i++) same = t->shape[i] == s->shape[i];
    if (!same)
        return sisa_err(SISA_BAD_FILE,
                        "%s: tensor '%s': shape %s disagrees with config.json (expected %s)", P,
                        s->name, got, want);
    if (s->f32_only && t->dtype != SISA_F32)
        return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': dtype %s, but lambda_raw must be F32", P,
                        s->name, sisa_st_dtype_name(t->dtype));
    if (t->dtype != SISA_F32 && t->dtype != SISA_F16 && t->dtype != SISA_BF16)
        return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': dtype %s; weights must be F32, F16 or BF16",
                        P, s->name, sisa_st_dtype_name(t->dtype));
    return SISA_OK;
}

/* First element that is NaN or Inf, by bit pattern (no float traps, every dtype). */
static sisa_status check_finite(const char *P, const sisa_st_tensor *t) {
    const int64_t n = sisa_st_nelements(t);
    const unsigned char *p = t->data;
    for (int64_t i = 0; i < n; i++) {
        bool bad = false, nan = false;
        if (t->dtype == SISA_F32) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            bad = (u & 0x7f800000u) == 0x7f800000u;
            nan = bad && (u & 0x007fffffu);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint16_t e = t->dtype == SISA_F16 ? 0x7c00u : 0x7f80u;
            uint16_t mant = t->dtype == SISA_F16 ? 0x03ffu : 0x007fu;
            bad = (h & e) == e;
            nan = bad && (h & mant);
        }
        if (bad) {
            double v = sisa_load_elem(p + (size_t)i * sisa_dtype_size(t->dtype), t->dtype);
            return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': element %lld is %s", P, t->name,
                            (long long)i, nan ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        }
    }
    return SISA_OK;
}

static sisa_status validate_file(const sisa_config *cfg, const sisa_st_file *f,
                                 const sisa_weight_spec *specs, int n_specs) {
    const char *P = f->path;
    for (int i = 0; i < n_specs; i++) {
        const sisa_st_tensor *t = sisa_st_find(f, specs[i].name);
        if (!t) {
            char want[64];
            spec_shape_str(&specs[i], want, sizeof want);
            return sisa_err(SISA_BAD_FILE, "%s: missing tensor '%s' (expected shape %s for a %s model)",
                            P, specs[i].name, want, sisa_config_arch(cfg));
        }
        SISA_TRY(check_tensor(P, &specs[i], t));
    }
    for (int j = 0; j < f->n_tensors; j++) {
        bool known = false;
        for (int i = 0; i < n_specs && !known; i++) known = !strcmp(specs[i].name, f->tensors[j].name);
        if (!known)
            return sisa_err(SISA_BAD_FILE,
                            "%s: unexpected tensor '%s': not part of a %s model with n_layers = %lld "
                            "(config.json; names in docs/FORMAT.md)",
                            P, f->tensors[j].name, sisa_config_arch(cfg), (long long)cfg->n_layers);
    }
    for (int i = 0; i < n_specs; i++) SISA_TRY(check_finite(P, sisa_st_find(f, specs[i].name)));
    return SISA_OK;
}

/* ---- the mapping as a read-only buffer (CPU devices) ---- */

static void map_free(sisa_buffer *b) { free(b); }

static sisa_status map_read(sisa_buffer *b, size_t off, void *dst, size_t n) {
    if (off + n > b->size || off + n < off)
        return sisa_err(SISA_INVALID_ARG, "mapped weights: read [%zu, %zu) past %zu bytes", off,
                        off + n, b->size);
    memcpy(dst, (const char *)b->host_ptr + off, n);
    return SISA_OK;
}

static sisa_status map_write(sisa_buffer *b, size_t off, const void *src, size_t n) {
    (void)src;
    (void)b;
    return sisa_err(SISA_INVALID_ARG, "mapped weights: write of [%zu, %zu): the file mapping is read-only",
                    off, off + n);
}

static sisa_status map_fill(sisa_buffer *b, size_t off, uint8_t v, size_t n) {
    (void)v;
    return map_write(b, off, NULL, n);
}

static const sisa_buffer_iface map_iface = {
    .free = map_free, .read = map_read, .write = map_write, .fill = map_fill};

/* ---- weights to the device ---- */

static sisa_dtype storage_dtype(const sisa_device *d, sisa_dtype file) {
    if (file == SISA_BF16 && !d->info.has_bf16) return SISA_F32;
    if (file == SISA_F16 && !d->info.has_f16) return SISA_F32;
    return file;
}

#define WALIGN 256
#define IN_PLACE (-1)
/* On GPU devices the FFN width is padded with zeros to a multiple of this: a GEMM whose leading
 * dimension is an odd width such as 2908 misses the matrix units' aligned paths (2.6x slower on
 * an H100, docs/CUDA.md). Exact: the padded gate/up rows are 0, silu(0)·0 = 0, and the padded
 * w_down columns are 0. */
#define FFN_PAD 64

static bool is_ffn_in(const char *name) {
    size_t n = strlen(name);
    return (n > 17 && !strcmp(name + n - 17, "ffn.w_gate.weight")) ||
           (n > 15 && !strcmp(name + n - 15, "ffn.w_up.weight"));
}

static bool is_ffn_out(const char *name) {
    size_t n = strlen(name);
    return n > 17 && !strcmp(name + n - 17, "ffn.w_down.weight");
}

/* Can the device's kernels read any host memory through buffer->host_ptr? Only the two CPU
 * backends: PoCL (OpenCL) and lavapipe (Vulkan) are CPU devices too (info.is_cpu), but their
 * kernels read their own buffer objects. Clearing is_cpu turns the in-place path off (tests). */
static bool reads_host_memory(const sisa_device *dev) {
    return dev->info.is_cpu && (dev->backend == &sisa_backend_cpu || dev->backend == &sisa_backend_cpu_ref);
}

/* Packing order inside a layer: the projections of xn back to back (Q, K, V, B, C, alpha,
 * theta), so that their concatenation is one [out, in] matrix and the decode graph can run them
 * as ONE MATMUL (model_decode.c, fused_weight); gate and up are adjacent already. Weights not
 * listed keep their spec position. */
static int pack_rank(const char *name) {
    static const char *const order[] = {"attn_norm.weight", "W_Q.weight", "W_K.weight",
                                        "W_V.weight", "W_B.weight", "W_C.weight",
                                        "alpha_proj.weight", "theta_proj.weight", "W_O.weight",
                                        "alpha_proj.bias", "lambda_raw", "ffn_norm.weight",
                                        "ffn.w_gate.weight", "ffn.w_up.weight", "ffn.w_down.weight"};
    const char *dot = strncmp(name, "layers.", 7) == 0 ? strchr(name + 7, '.') : NULL;
    if (!dot) return -1;
    for (int k = 0; k < (int)(sizeof order / sizeof *order); k++)
        if (!strcmp(dot + 1, order[k])) return k;
    return -1;
}

/* Decide where each weight lives: in place in the mapping (CPU device, no conversion, aligned for
 * its dtype), or at an offset in one of the packed device buffers (chunk_of, chunk_size), packed
 * in spec order except that each layer's weights follow pack_rank. */
static sisa_status plan_weights(sisa_model *m, int *chunk_of, size_t *chunk_size, int *n_chunks) {
    const sisa_device *dev = m->dev;
    const size_t limit = dev->info.max_buffer_bytes ? (size_t)dev->info.max_buffer_bytes : SIZE_MAX;
    *n_chunks = 0;
    int *order = malloc(sizeof(int) * (size_t)(m->n_weights + 1));
    if (!order) return sisa_err(SISA_OUT_OF_MEMORY, "weights: out of host memory");
    for (int i = 0; i < m->n_weights; i++) order[i] = i;
    /* a stable insertion sort of each layer's run of weights by pack_rank */
    for (int i = 1; i < m->n_weights; i++) {
        const int r = pack_rank(m->weights[order[i]].name);
        const char *nm = m->weights[order[i]].name;
        const size_t lp = r >= 0 ? (size_t)(strchr(nm + 7, '.') - nm) : 0;
        int j = i;
        while (r >= 0 && j > 0) {
            const char *pn = m->weights[order[j - 1]].name;
            const int pr = pack_rank(pn);
            if (pr < 0 || strncmp(pn, nm, lp + 1) != 0 || pr <= r) break;
            const int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
            j--;
        }
    }
    sisa_status st = SISA_OK;
    for (int oi = 0; oi < m->n_weights && st == SISA_OK; oi++) {
        const int i = order[oi];
        sisa_weight *w = &m->weights[i];
        const sisa_st_tensor *t = sisa_st_find(m->st, w->name);
        const bool padded = w->shape[2] != w->file_rows || w->shape[3] != w->file_cols;
        if (reads_host_memory(dev) && w->dtype == t->dtype && !padded &&
            t->file_offset % sisa_dtype_size(t->dtype) == 0) {
            chunk_of[i] = IN_PLACE;
            continue;
        }
        size_t nbytes = (size_t)(w->shape[2] * w->shape[3]) * sisa_dtype_size(w->dtype);
        if (nbytes > limit) {
            st = sisa_err(SISA_OUT_OF_MEMORY,
                          "%s: tensor '%s' needs %zu bytes, more than backend '%s' device '%s' "
                          "allows in one buffer (%zu)",
                          m->st->path, w->name, nbytes, dev->backend->name, dev->info.name, limit);
            break;
        }
        int c = *n_chunks - 1;
        size_t off = c >= 0 ? (chunk_size[c] + WALIGN - 1) / WALIGN * WALIGN : 0;
        if (c < 0 || off + nbytes > limit || off + nbytes < off) { /* start the next buffer */
            c = (*n_chunks)++;
            off = 0;
        }
        chunk_of[i] = c;
        w->offset = off;
        chunk_size[c] = off + nbytes;
    }
    free(order);
    return st;
}

/* Copy one weight into its device buffer, converting to f32 when the device lacks its dtype and
 * zero-padding rows/columns where w's shape is larger than the file's (FFN_PAD). */
static sisa_status write_weight(sisa_model *m, sisa_weight *w, const sisa_st_tensor *t) {
    const int64_t ne = sisa_st_nelements(t);
    const size_t es = sisa_dtype_size(t->dtype), ws = sisa_dtype_size(w->dtype);
    const int64_t rows = w->shape[2], cols = w->shape[3];
    sisa_status st;
    if (w->dtype == t->dtype && rows == w->file_rows && cols == w->file_cols) {
        st = w->buffer->iface->write(w->buffer, w->offset, t->data, (size_t)ne * es);
    } else {
        unsigned char *tmp = calloc((size_t)(rows * cols > 0 ? rows * cols : 1), ws);
        if (!tmp) return sisa_err(SISA_OUT_OF_MEMORY, "%s: tensor '%s': out of host memory", m->st->path, w->name);
        for (int64_t r = 0; r < w->file_rows; r++)
            for (int64_t c = 0; c < w->file_cols; c++) {
                const char *src = (const char *)t->data + (size_t)(r * w->file_cols + c) * es;
                unsigned char *dst = tmp + (size_t)(r * cols + c) * ws;
                if (w->dtype == t->dtype) memcpy(dst, src, es);
                else sisa_store_elem(dst, w->dtype, sisa_load_elem(src, t->dtype));
            }
        st = w->buffer->iface->write(w->buffer, w->offset, tmp, (size_t)(rows * cols) * ws);
        free(tmp);
        if (w->dtype != t->dtype) m->n_converted++;
    }
    if (st != SISA_OK)
        return sisa_err_prefix(st, "%s: tensor '%s': upload to backend '%s'", m->st->path, w->name,
                               m->dev->backend->name);
    return SISA_OK;
}

static sisa_status upload(sisa_model *m, const sisa_weight_spec *specs, int n) {
    const char *P = m->st->path;
    m->weights = calloc((size_t)n, sizeof *m->weights);
    size_t *chunk_size = calloc((size_t)n, sizeof *chunk_size); /* at most one buffer per weight */
    int *chunk_of = calloc((size_t)n, sizeof *chunk_of);
    int n_chunks = 0;
    sisa_status st = m->weights && chunk_size && chunk_of
                         ? SISA_OK : sisa_err(SISA_OUT_OF_MEMORY, "%s: out of host memory", P);
    for (int i = 0; i < n && st == SISA_OK; i++) {
        const sisa_st_tensor *t = sisa_st_find(m->st, specs[i].name);
        sisa_weight *w = &m->weights[m->n_weights++];
        snprintf(w->name, sizeof w->name, "%s", specs[i].name);
        w->file_dtype = t->dtype;
        w->dtype = storage_dtype(m->dev, t->dtype);
        w->shape[0] = w->shape[1] = 1;
        w->shape[2] = w->file_rows = specs[i].n_dims == 2 ? specs[i].shape[0] : 1;
        w->shape[3] = w->file_cols = specs[i].n_dims == 2 ? specs[i].shape[1] : specs[i].shape[0];
        if (!reads_host_memory(m->dev) && is_ffn_in(w->name))
            w->shape[2] = (w->shape[2] + FFN_PAD - 1) / FFN_PAD * FFN_PAD;
        if (!reads_host_memory(m->dev) && is_ffn_out(w->name))
            w->shape[3] = (w->shape[3] + FFN_PAD - 1) / FFN_PAD * FFN_PAD;
    }
    if (st == SISA_OK) st = plan_weights(m, chunk_of, chunk_size, &n_chunks);
    if (st == SISA_OK && n_chunks && !(m->wbufs = calloc((size_t)n_chunks, sizeof *m->wbufs)))
        st = sisa_err(SISA_OUT_OF_MEMORY, "%s: out of host memory", P);
    for (int c = 0; c < n_chunks && st == SISA_OK; c++) {
        st = sisa_buffer_alloc(m->dev, chunk_size[c], &m->wbufs[c]);
        if (st == SISA_OK) m->n_wbufs++;
        else st = sisa_err_prefix(st, "%s: weights", P);
    }
    for (int i = 0; i < n && st == SISA_OK; i++) {
        sisa_weight *w = &m->weights[i];
        const sisa_st_tensor *t = sisa_st_find(m->st, w->name);
        if (chunk_of[i] != IN_PLACE) {
            w->buffer = m->wbufs[chunk_of[i]];
            st = write_weight(m, w, t);
            continue;
        }
        if (!m->map_buf) { /* the mapping as one read-only buffer, made on first use */
            if (!(m->map_buf = calloc(1, sizeof *m->map_buf))) {
                st = sisa_err(SISA_OUT_OF_MEMORY, "%s: out of host memory", P);
                break;
            }
            *m->map_buf = (sisa_buffer){.iface = &map_iface, .device = m->dev,
                                        .size = m->st->map_size, .host_ptr = m->st->map};
        }
        w->buffer = m->map_buf;
        w->offset = (size_t)t->file_offset;
        m->n_mapped++;
    }
    free(chunk_size);
    free(chunk_of);
    return st;
}

/* ---- load / free ---- */

void sisa_model_free(sisa_model *m) {
    if (!m) return;
    sisa_model_graph_free(m->cache);
    sisa_sched_free(m->sched);
    for (int i = 0; i < m->n_wbufs; i++) sisa_buffer_free(m->wbufs[i]);
    free(m->wbufs);
    free(m->map_buf);
    sisa_st_close(m->st);
    sisa_device_free(m->dev);
    free(m->weights);
    free(m->dir);
    free(m);
}

const sisa_config *sisa_model_config(const sisa_model *m) { return m ? &m->cfg : NULL; }

static char *join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, file);
    return p;
}

static sisa_status load_files(sisa_model *m, sisa_weight_spec **specs, int *n_specs) {
    char *cpath = join(m->dir, "config.json"), *wpath = join(m->dir, "model.safetensors");
    sisa_status st = cpath && wpath ? SISA_OK : sisa_err(SISA_OUT_OF_MEMORY, "load: out of host memory");
    if (st == SISA_OK) st = sisa_config_load(cpath, &m->cfg);
    if (st == SISA_OK) st = sisa_model_weight_specs(&m->cfg, specs, n_specs);
    if (st == SISA_OK) st = sisa_st_open(wpath, &m->st);
    if (st == SISA_OK) st = validate_file(&m->cfg, m->st, *specs, *n_specs);
    free(cpath);
    free(wpath);
    return st;
}

/* dev: an opened device the model takes over, or NULL to open opts->backend. */
static sisa_status load(const char *dir, const sisa_load_options *opts, sisa_device *dev,
                        sisa_model **out) {
    if (!out) {
        sisa_device_free(dev);
        return sisa_err(SISA_INVALID_ARG, "model load: NULL output");
    }
    *out = NULL;
    sisa_load_options o = {0};
    if (opts) o = *opts;
    const char *backend = dev ? dev->backend->name : o.backend ? o.backend : "cpu";
    sisa_model *m = calloc(1, sizeof *m);
    if (!m || !dir || !(m->dir = strdup(dir))) {
        free(m);
        sisa_device_free(dev);
        return dir ? sisa_err(SISA_OUT_OF_MEMORY, "model load: out of host memory")
                   : sisa_err(SISA_INVALID_ARG, "model load: NULL directory");
    }
    m->dev = dev;
    if (o.max_batch < 0 || o.max_tokens < 0) {
        sisa_model_free(m);
        return sisa_err(SISA_INVALID_ARG, "model load %s: max_batch = %d and max_tokens = %d must be >= 0",
                        dir, o.max_batch, o.max_tokens);
    }
    sisa_weight_spec *specs = NULL;
    int n_specs = 0;
    sisa_status st = load_files(m, &specs, &n_specs);
    m->act_dtype = SISA_F32;
    if (st == SISA_OK && o.compute_dtype == SISA_DTYPE_BF16) m->act_dtype = SISA_BF16;
    else if (st == SISA_OK && o.compute_dtype != SISA_DTYPE_F32)
        st = sisa_err(SISA_UNSUPPORTED,
                      "model load %s: compute_dtype %d: activations are stored in f32 or bf16 "
                      "(f16 cannot hold s·Cbar's range, up to 2.83·sqrt(lambda)·59874: SISA.md §3)",
                      dir, (int)o.compute_dtype);
    if (st == SISA_OK) {
        m->max_batch = o.max_batch ? o.max_batch : 1;
        m->max_tokens = o.max_tokens ? o.max_tokens : (int)m->cfg.max_seq_len;
        size_t n_logits;
        if (m->max_tokens > m->cfg.max_seq_len)
            st = sisa_err(SISA_INVALID_ARG,
                          "model load %s: max_tokens = %d exceeds the model's max_seq_len = %lld "
                          "(config.json)",
                          dir, m->max_tokens, (long long)m->cfg.max_seq_len);
        else if (__builtin_mul_overflow((size_t)m->max_batch * (size_t)m->max_tokens,
                                        (size_t)m->cfg.vocab_size * sizeof(float), &n_logits))
            st = sisa_err(SISA_INVALID_ARG, "model load %s: max_batch = %d is too large", dir,
                          m->max_batch);
    }
    if (st == SISA_OK && !m->dev) {
        st = sisa_device_open(backend, o.device, &m->dev);
        if (st != SISA_OK) st = sisa_err_prefix(st, "model load %s", dir);
    }
    if (st == SISA_OK) st = upload(m, specs, n_specs);
    if (st == SISA_OK && !m->n_mapped) { /* nothing reads the mapping any more */
        sisa_st_close(m->st);
        m->st = NULL;
    }
    if (st == SISA_OK) st = sisa_sched_new(m->dev, o.allow_fallback != 0, &m->sched);
    if (st == SISA_OK) m->sched->profile = o.profile != 0;
    /* reserve the arena once from the worst case, and place it now: strict errors show at load */
    if (st == SISA_OK) st = sisa_model_build_graph(m, m->max_batch, m->max_tokens, false, &m->cache);
    if (st == SISA_OK) st = sisa_arena_reserve(&m->sched->arena, m->cache->graph);
    if (st == SISA_OK) st = sisa_sched_prepare(m->sched, m->cache->graph);
    if (st != SISA_OK && m->sched)
        st = sisa_err_prefix(st, "model load %s on backend '%s'", dir, backend);
    free(specs);
    if (st != SISA_OK) {
        sisa_model_free(m);
        return st;
    }
    *out = m;
    return SISA_OK;
}

sisa_status sisa_model_load(const char *dir, const sisa_load_options *opts, sisa_model **out) {
    return load(dir, opts, NULL, out);
}

sisa_status sisa_model_load_device(const char *dir, sisa_device *dev, const sisa_load_options *opts,
                                   sisa_model **out) {
    if (!dev) {
        if (out) *out = NULL;
        return sisa_err(SISA_INVALID_ARG, "model load: NULL device");
    }
    return load(dir, opts, dev, out);
}

/* ---- forward ---- */

sisa_status sisa_model_check_input(const sisa_model *m, const int32_t *tokens, int batch, int T) {
    if (batch < 1) return sisa_err(SISA_INVALID_ARG, "forward: batch = %d: must be >= 1", batch);
    if (batch > m->max_batch)
        return sisa_err(SISA_INVALID_ARG,
                        "forward: batch = %d exceeds max_batch = %d reserved at load "
                        "(sisa_load_options.max_batch)",
                        batch, m->max_batch);
    if (T < 1) return sisa_err(SISA_INVALID_ARG, "forward: T = %d: must be >= 1", T);
    if (T > m->max_tokens)
        return sisa_err(SISA_INVALID_ARG,
                        "forward: T = %d exceeds max_tokens = %d (sisa_load_options.max_tokens; "
                        "the model's max_seq_len is %lld)",
                        T, m->max_tokens, (long long)m->cfg.max_seq_len);
    if (!tokens) return sisa_err(SISA_INVALID_ARG, "forward: NULL tokens");
    for (int b = 0; b < batch; b++)
        for (int t = 0; t < T; t++) {
            int32_t id = tokens[(size_t)b * (size_t)T + (size_t)t];
            if (id < 0 || id >= m->cfg.vocab_size)
                return sisa_err(SISA_INVALID_ARG,
                                "forward: token id %d at batch row %d, position %d is outside the "
                                "vocabulary [0, %lld)",
                                id, b, t, (long long)m->cfg.vocab_size);
        }
    return SISA_OK;
}

sisa_status sisa_model_graph_run(sisa_model *m, sisa_model_graph *mg, const int32_t *tokens) {
    if (!m || !mg) return sisa_err(SISA_INVALID_ARG, "model run: NULL argument");
    SISA_TRY(sisa_model_check_input(m, tokens, mg->batch, mg->T));
    SISA_TRY(sisa_sched_prepare(m->sched, mg->graph));
    SISA_TRY(sisa_tensor_write(mg->tokens, tokens, (size_t)mg->batch * (size_t)mg->T * sizeof(int32_t)));
    return sisa_sched_compute(m->sched, mg->graph);
}

sisa_status sisa_model_graph_clamp_report(const sisa_model *m, const sisa_model_graph *mg,
                                          sisa_clamp_report *r) {
    memset(r, 0, sizeof *r);
    const int L = mg->n_layers, cap = (int)(sizeof r->max_abs_u / sizeof r->max_abs_u[0]);
    r->n_layers = L < cap ? L : cap;
    const int64_t B = mg->batch, T = mg->T, H = m->cfg.n_heads;
    float *g = NULL;
    for (int i = 0; i < L; i++) {
        if (!mg->g[i]) continue;
        if (!g && !(g = malloc((size_t)(B * H * T) * sizeof *g)))
            return sisa_err(SISA_OUT_OF_MEMORY, "clamp report: out of host memory");
        sisa_status st = sisa_tensor_read(mg->g[i], g, (size_t)(B * H * T) * sizeof *g);
        if (st != SISA_OK) {
            free(g);
            return sisa_err_prefix(st, "clamp report, layer %d", i);
        }
        float worst = 0.0f;
        bool nan = false;
        for (int64_t bh = 0; bh < B * H; bh++) {
            const float *row = g + bh * T;
            float lo = row[0], hi = row[0];
            for (int64_t t = 0; t < T; t++) {
                nan |= isnan(row[t]) != 0;
                lo = fminf(lo, row[t]);
                hi = fmaxf(hi, row[t]);
            }
            /* max_t |g_t - c| with c = (max + min)/2 */
            float u = (float)(((double)hi - (double)lo) / 2.0);
            if (u > worst) worst = u;
        }
        if (nan) worst = NAN;
        if (i < cap) r->max_abs_u[i] = worst;
        if (!(worst <= m->cfg.ssm_clamp)) r->any_active = 1; /* NaN counts as active: never hidden */
    }
    free(g);
    return SISA_OK;
}

sisa_status sisa_model_forward(sisa_model *m, const int32_t *tokens, int batch, int T,
                               float *logits, sisa_clamp_report *report) {
    if (!m) return sisa_err(SISA_INVALID_ARG, "forward: NULL model");
    SISA_TRY(sisa_model_check_input(m, tokens, batch, T));
    if (!m->cache || m->cache->batch != batch || m->cache->T != T) {
        sisa_model_graph_free(m->cache);
        m->cache = NULL;
        SISA_TRY(sisa_model_build_graph(m, batch, T, false, &m->cache));
    }
    sisa_status st = sisa_model_graph_run(m, m->cache, tokens);
    if (st != SISA_OK) return sisa_err_prefix(st, "forward on backend '%s'", m->dev->backend->name);
    size_t n = (size_t)batch * (size_t)T * (size_t)m->cfg.vocab_size;
    if (logits) SISA_TRY(sisa_tensor_read(m->cache->logits, logits, n * sizeof(float)));
    if (report) SISA_TRY(sisa_model_graph_clamp_report(m, m->cache, report));
    return SISA_OK;
}

sisa_status sisa_model_profile(const sisa_model *m, char *buf, size_t len) {
    if (!m || !buf || !len) return sisa_err(SISA_INVALID_ARG, "profile: NULL model or buffer");
    if (!m->sched->profile)
        return sisa_err(SISA_INVALID_ARG, "profile: the model was loaded without sisa_load_options.profile");
    sisa_sched_profile_table(m->sched, buf, len);
    return SISA_OK;
}

/* ---- a freshly initialised model (SISA.md §6) ---- */

/* splitmix64: small, seedable, good enough for an initialisation, and the same everywhere. */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

typedef struct init_ctx {
    const sisa_weight_spec *spec;
    uint64_t seed;
} init_ctx;

/* Each tensor has its own stream (seed, name): values do not depend on tensor order or dtype. */
static sisa_status init_fill(void *user, const sisa_st_entry *e, void *dst, size_t nbytes) {
    const init_ctx *c = user;
    const size_t es = sisa_dtype_size(e->dtype), n = nbytes / es;
    uint64_t s = c->seed ^ fnv1a(c->spec->name);
    splitmix64(&s);
    double sigma = c->spec->init == SISA_INIT_NORMAL_001 ? 0.01 : 0.02;
    for (size_t i = 0; i < n; i += 2) {
        double v[2];
        switch (c->spec->init) {
        case SISA_INIT_ONES: v[0] = v[1] = 1.0; break;
        case SISA_INIT_ALPHA_BIAS: v[0] = v[1] = -5.0; break;
        case SISA_INIT_LAMBDA_RAW: v[0] = v[1] = -1.0; break;
        default: { /* Box-Muller: u1 in (0, 1], u2 in [0, 1) */
            double u1 = ((double)(splitmix64(&s) >> 11) + 1.0) * 0x1.0p-53;
            double u2 = (double)(splitmix64(&s) >> 11) * 0x1.0p-53;
            double r = sqrt(-2.0 * log(u1)) * sigma;
            v[0] = r * cos(2.0 * M_PI * u2);
            v[1] = r * sin(2.0 * M_PI * u2);
        }
        }
        for (size_t k = 0; k < 2 && i + k < n; k++)
            sisa_store_elem((char *)dst + (i + k) * es, e->dtype, v[k]);
    }
    return SISA_OK;
}

sisa_status sisa_model_init_dir(const sisa_config *cfg, uint64_t seed, sisa_dtype_public dtype,
                                const char *dir) {
    if (!cfg || !dir) return sisa_err(SISA_INVALID_ARG, "init: NULL argument");
    sisa_dtype dt = dtype == SISA_DTYPE_F32 ? SISA_F32 : dtype == SISA_DTYPE_F16 ? SISA_F16
                    : dtype == SISA_DTYPE_BF16 ? SISA_BF16 : SISA_DTYPE_COUNT;
    if (dt == SISA_DTYPE_COUNT)
        return sisa_err(SISA_INVALID_ARG, "init %s: dtype %d is not f32, f16 or bf16", dir, (int)dtype);
    SISA_TRY(sisa_config_validate(cfg));
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return sisa_err(SISA_BAD_FILE, "init %s: cannot create the directory (%s)", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return sisa_err(SISA_BAD_FILE, "init %s: not a directory", dir);
    sisa_weight_spec *specs = NULL;
    int n = 0;
    SISA_TRY(sisa_model_weight_specs(cfg, &specs, &n));
    sisa_st_entry *e = calloc((size_t)n, sizeof *e);
    init_ctx *ctx = calloc((size_t)n, sizeof *ctx);
    char *cpath = join(dir, "config.json"), *wpath = join(dir, "model.safetensors");
    sisa_status st = e && ctx && cpath && wpath ? SISA_OK
                                                : sisa_err(SISA_OUT_OF_MEMORY, "init: out of host memory");
    for (int i = 0; i < n && st == SISA_OK; i++) {
        ctx[i] = (init_ctx){.spec = &specs[i], .seed = seed};
        e[i] = (sisa_st_entry){.name = specs[i].name, .dtype = specs[i].f32_only ? SISA_F32 : dt,
                               .n_dims = specs[i].n_dims, .fill = init_fill, .user = &ctx[i]};
        e[i].shape[0] = specs[i].shape[0];
        e[i].shape[1] = specs[i].shape[1];
    }
    char meta[128];
    snprintf(meta, sizeof meta, "{\"format\":\"pt\",\"generator\":\"sisa init\",\"seed\":\"%llu\"}",
             (unsigned long long)seed);
    if (st == SISA_OK) st = sisa_config_save(cfg, cpath);
    if (st == SISA_OK) st = sisa_st_write(wpath, e, n, meta);
    free(cpath);
    free(wpath);
    free(e);
    free(ctx);
    free(specs);
    return st;
}
