/*
 * safetensors.c — the safetensors reader (mmap + full validation) and writer (see safetensors.h).
 *
 * A model file comes from outside: nothing in it is trusted until the whole header has been
 * checked. Sizes are computed with overflow checks, so a header claiming a 2^62-element tensor
 * is an error message, not a wrapped product that passes the range check.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "error.h"

static const struct {
    const char *name;
    sisa_dtype dt;
} st_dtypes[] = {
    {"F32", SISA_F32}, {"F16", SISA_F16}, {"BF16", SISA_BF16}, {"I32", SISA_I32}, {"F64", SISA_F64},
};
#define N_ST_DTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

const char *sisa_st_dtype_name(sisa_dtype t) {
    for (int i = 0; i < N_ST_DTYPES; i++)
        if (st_dtypes[i].dt == t) return st_dtypes[i].name;
    return NULL;
}

bool sisa_st_dtype_parse(const char *s, sisa_dtype *out) {
    for (int i = 0; s && i < N_ST_DTYPES; i++)
        if (!strcmp(st_dtypes[i].name, s)) {
            *out = st_dtypes[i].dt;
            return true;
        }
    return false;
}

int64_t sisa_st_nelements(const sisa_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->shape[i];
    return n;
}

/* ---- reader ---- */

void sisa_st_close(sisa_st_file *f) {
    if (!f) return;
    if (f->map && f->map != MAP_FAILED) munmap(f->map, f->map_size);
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    free(f);
}

const sisa_st_tensor *sisa_st_find(const sisa_st_file *f, const char *name) {
    for (int i = 0; f && name && i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

/* A JSON number that is a non-negative integer below 2^53. */
static bool json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d != floor(d) || d > 9007199254740992.0) return false;
    *out = (uint64_t)d;
    return true;
}

static void shape_str(const sisa_st_tensor *t, char *buf, size_t len) {
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->n_dims && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (n < len) snprintf(buf + n, len - n, "]");
}

static sisa_status parse_entry(const sisa_st_file *f, const cJSON *e, sisa_st_tensor *t) {
    const char *P = f->path, *N = t->name;
    if (!cJSON_IsObject(e))
        return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': header entry is not a JSON object", P, N);
    const cJSON *dt = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *k = e->child; k; k = k->next) {
        const cJSON **slot = !strcmp(k->string, "dtype")          ? &dt
                             : !strcmp(k->string, "shape")        ? &shape
                             : !strcmp(k->string, "data_offsets") ? &offs
                                                                  : NULL;
        if (!slot)
            return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': unknown header field '%s'", P, N,
                            k->string);
        if (*slot)
            return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': header field '%s' appears twice", P, N,
                            k->string);
        *slot = k;
    }
    if (!dt || !shape || !offs)
        return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': header entry lacks '%s'", P, N,
                        !dt ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!cJSON_IsString(dt))
        return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': dtype is not a string", P, N);
    if (!sisa_st_dtype_parse(dt->valuestring, &t->dtype))
        return sisa_err(SISA_BAD_FILE,
                        "%s: tensor '%s': dtype '%s' is unknown or unsupported (F32, F16, BF16, "
                        "I32, F64)",
                        P, N, dt->valuestring);
    if (!cJSON_IsArray(shape))
        return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': shape is not an array", P, N);
    int nd = cJSON_GetArraySize(shape);
    if (nd > SISA_ST_MAX_DIMS)
        return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': shape has %d dimensions (at most %d)", P,
                        N, nd, SISA_ST_MAX_DIMS);
    t->n_dims = nd;
    uint64_t nbytes = sisa_dtype_size(t->dtype);
    bool overflow = false;
    int i = 0;
    for (const cJSON *s = shape->child; s; s = s->next, i++) {
        uint64_t v;
        if (!json_uint(s, &v) || v > (uint64_t)INT64_MAX)
            return sisa_err(SISA_BAD_FILE,
                            "%s: tensor '%s': shape entry %d is not a non-negative integer", P, N, i);
        t->shape[i] = (int64_t)v;
        if (__builtin_mul_overflow(nbytes, v, &nbytes)) overflow = true;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(cJSON_GetArrayItem(offs, 0), &t->begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &t->end))
        return sisa_err(SISA_BAD_FILE,
                        "%s: tensor '%s': data_offsets must be [begin, end], two non-negative "
                        "integers",
                        P, N);
    char sh[160];
    shape_str(t, sh, sizeof sh);
    if (t->begin > t->end)
        return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                        P, N, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (overflow)
        return sisa_err(SISA_BAD_FILE, "%s: tensor '%s': shape %s of %s needs more than 2^64 bytes",
                        P, N, sh, dt->valuestring);
    if (nbytes != t->end - t->begin)
        return sisa_err(SISA_BAD_FILE,
                        "%s: tensor '%s': shape %s of %s needs %llu bytes but data_offsets "
                        "[%llu, %llu] hold %llu",
                        P, N, sh, dt->valuestring, (unsigned long long)nbytes,
                        (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)(t->end - t->begin));
    if (t->end > f->data_size)
        return sisa_err(SISA_BAD_FILE,
                        "%s: tensor '%s': data_offsets [%llu, %llu] reach past the end of the "
                        "data (%llu bytes; file truncated?)",
                        P, N, (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)f->data_size);
    t->file_offset = f->data_start + t->begin;
    t->data = (const char *)f->map + t->file_offset;
    return SISA_OK;
}

static int cmp_name(const void *a, const void *b) {
    const sisa_st_tensor *x = *(sisa_st_tensor *const *)a, *y = *(sisa_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_range(const void *a, const void *b) {
    const sisa_st_tensor *x = *(sisa_st_tensor *const *)a, *y = *(sisa_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Names unique; tensors tile [0, data_size) exactly. */
static sisa_status check_layout(const sisa_st_file *f) {
    if (f->n_tensors == 0) {
        if (f->data_size)
            return sisa_err(SISA_BAD_FILE, "%s: no tensors, but %llu data bytes follow the header",
                            f->path, (unsigned long long)f->data_size);
        return SISA_OK;
    }
    sisa_st_tensor **idx = malloc((size_t)f->n_tensors * sizeof *idx);
    if (!idx) return sisa_err(SISA_OUT_OF_MEMORY, "%s: out of host memory", f->path);
    for (int i = 0; i < f->n_tensors; i++) idx[i] = &f->tensors[i];
    sisa_status st = SISA_OK;
    qsort(idx, (size_t)f->n_tensors, sizeof *idx, cmp_name);
    for (int i = 1; i < f->n_tensors && st == SISA_OK; i++)
        if (!strcmp(idx[i]->name, idx[i - 1]->name))
            st = sisa_err(SISA_BAD_FILE, "%s: tensor '%s': name appears twice in the header",
                          f->path, idx[i]->name);
    if (st == SISA_OK) {
        qsort(idx, (size_t)f->n_tensors, sizeof *idx, cmp_range);
        uint64_t pos = 0;
        const sisa_st_tensor *prev = NULL;
        for (int i = 0; i < f->n_tensors && st == SISA_OK; i++) {
            const sisa_st_tensor *t = idx[i];
            if (t->begin == t->end) continue; /* empty tensors occupy no bytes */
            if (t->begin < pos)
                st = sisa_err(SISA_BAD_FILE,
                              "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' "
                              "[%llu, %llu]",
                              f->path, t->name, (unsigned long long)t->begin,
                              (unsigned long long)t->end, prev->name,
                              (unsigned long long)prev->begin, (unsigned long long)prev->end);
            else if (t->begin > pos)
                st = sisa_err(SISA_BAD_FILE,
                              "%s: tensor '%s': data bytes [%llu, %llu) before it belong to no "
                              "tensor (the data must be covered without holes)",
                              f->path, t->name, (unsigned long long)pos,
                              (unsigned long long)t->begin);
            pos = t->end;
            prev = t;
        }
        if (st == SISA_OK && pos != f->data_size)
            st = sisa_err(SISA_BAD_FILE,
                          "%s: %llu data bytes after the last tensor belong to no tensor (the data "
                          "must be covered without holes)",
                          f->path, (unsigned long long)(f->data_size - pos));
    }
    free(idx);
    return st;
}

static sisa_status parse_header(sisa_st_file *f, const char *text, size_t len) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root)
        return sisa_err(SISA_BAD_FILE, "%s: header is not valid JSON (error at header byte %zu of %zu)",
                        f->path, end && end >= text ? (size_t)(end - text) : (size_t)0, len);
    sisa_status st = SISA_OK;
    for (const char *p = end; p < text + len && st == SISA_OK; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
            st = sisa_err(SISA_BAD_FILE, "%s: header has bytes after its JSON object (at header byte %zu)",
                          f->path, (size_t)(p - text));
    if (st == SISA_OK && !cJSON_IsObject(root))
        st = sisa_err(SISA_BAD_FILE, "%s: header is JSON but not an object", f->path);
    int n = 0;
    if (st == SISA_OK)
        for (const cJSON *e = root->child; e; e = e->next)
            if (strcmp(e->string, "__metadata__")) n++;
    if (st == SISA_OK && n) {
        f->tensors = calloc((size_t)n, sizeof *f->tensors);
        if (!f->tensors) st = sisa_err(SISA_OUT_OF_MEMORY, "%s: out of host memory", f->path);
    }
    for (const cJSON *e = st == SISA_OK ? root->child : NULL; e && st == SISA_OK; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e))
                st = sisa_err(SISA_BAD_FILE, "%s: __metadata__ is not a JSON object", f->path);
            continue;
        }
        sisa_st_tensor *t = &f->tensors[f->n_tensors++];
        t->name = strdup(e->string);
        if (!t->name) {
            st = sisa_err(SISA_OUT_OF_MEMORY, "%s: out of host memory", f->path);
            break;
        }
        st = parse_entry(f, e, t);
    }
    cJSON_Delete(root);
    if (st == SISA_OK) st = check_layout(f);
    return st;
}

sisa_status sisa_st_open(const char *path, sisa_st_file **out) {
    if (!out) return sisa_err(SISA_INVALID_ARG, "safetensors open: NULL output");
    *out = NULL;
    if (!path) return sisa_err(SISA_INVALID_ARG, "safetensors open: NULL path");
    sisa_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return sisa_err(SISA_OUT_OF_MEMORY, "%s: out of host memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sisa_status st = sisa_err(SISA_BAD_FILE, "%s: cannot open (%s)", path, strerror(errno));
        sisa_st_close(f);
        return st;
    }
    struct stat sb;
    sisa_status st = SISA_OK;
    if (fstat(fd, &sb) != 0)
        st = sisa_err(SISA_BAD_FILE, "%s: cannot stat (%s)", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = sisa_err(SISA_BAD_FILE, "%s: not a regular file", path);
    else if (sb.st_size < 8)
        st = sisa_err(SISA_BAD_FILE,
                      "%s: truncated: %lld bytes, shorter than the 8-byte header length", path,
                      (long long)sb.st_size);
    if (st == SISA_OK) {
        f->map_size = (size_t)sb.st_size;
        f->map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (f->map == MAP_FAILED) {
            f->map = NULL;
            st = sisa_err(SISA_BAD_FILE, "%s: cannot map %zu bytes (%s)", path, f->map_size,
                          strerror(errno));
        }
    }
    close(fd);
    if (st == SISA_OK) {
        const unsigned char *b = f->map;
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
        uint64_t avail = (uint64_t)f->map_size - 8;
        if (n > avail)
            st = sisa_err(SISA_BAD_FILE,
                          "%s: header length %llu reaches past the end of the file (%zu bytes: "
                          "truncated or not safetensors)",
                          path, (unsigned long long)n, f->map_size);
        else if (n > SISA_ST_MAX_HEADER)
            st = sisa_err(SISA_BAD_FILE, "%s: header length %llu exceeds the format's %llu-byte limit",
                          path, (unsigned long long)n, (unsigned long long)SISA_ST_MAX_HEADER);
        else if (n < 2)
            st = sisa_err(SISA_BAD_FILE, "%s: header length %llu is too short for a JSON object",
                          path, (unsigned long long)n);
        else {
            f->data_start = 8 + n;
            f->data_size = avail - n;
            st = parse_header(f, (const char *)b + 8, (size_t)n);
        }
    }
    if (st != SISA_OK) {
        sisa_st_close(f);
        return st;
    }
    *out = f;
    return SISA_OK;
}

/* ---- writer ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *s, const char *fmt, ...) SISA_PRINTF(2, 3);
static void sb_put(sbuf *s, const char *fmt, ...) {
    if (s->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(s->p ? s->p + s->n : NULL, s->p ? s->cap - s->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            s->oom = true;
            return;
        }
        if (s->p && s->n + (size_t)k < s->cap) {
            s->n += (size_t)k;
            return;
        }
        size_t nc = (s->cap ? s->cap * 2 : 4096) + (size_t)k;
        char *np = realloc(s->p, nc);
        if (!np) {
            s->oom = true;
            return;
        }
        s->p = np;
        s->cap = nc;
    }
}

static void sb_json_string(sbuf *s, const char *str) {
    sb_put(s, "\"");
    for (const unsigned char *c = (const unsigned char *)str; *c; c++) {
        if (*c == '"' || *c == '\\') sb_put(s, "\\%c", *c);
        else if (*c < 0x20) sb_put(s, "\\u%04x", *c);
        else sb_put(s, "%c", *c);
    }
    sb_put(s, "\"");
}

static sisa_status entry_bytes(const char *path, const sisa_st_entry *e, uint64_t *out) {
    if (!e->name || !sisa_st_dtype_name(e->dtype) || e->n_dims < 0 || e->n_dims > SISA_ST_MAX_DIMS)
        return sisa_err(SISA_INVALID_ARG, "%s: writing tensor '%s': bad name, dtype or rank", path,
                        e->name ? e->name : "(null)");
    uint64_t n = sisa_dtype_size(e->dtype);
    for (int i = 0; i < e->n_dims; i++)
        if (e->shape[i] < 0 || __builtin_mul_overflow(n, (uint64_t)e->shape[i], &n))
            return sisa_err(SISA_INVALID_ARG, "%s: writing tensor '%s': bad shape", path, e->name);
    if (!e->data && !e->fill)
        return sisa_err(SISA_INVALID_ARG, "%s: writing tensor '%s': neither data nor fill", path,
                        e->name);
    *out = n;
    return SISA_OK;
}

static sisa_status write_all(FILE *fp, const char *path, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, fp) != n)
        return sisa_err(SISA_BAD_FILE, "%s: write failed (%s)", path, strerror(errno));
    return SISA_OK;
}

/* Write into path.tmp, rename over path at the end: no half-written model on failure. */
static sisa_status finish(FILE *fp, const char *tmp, const char *path, sisa_status st) {
    if (fclose(fp) != 0 && st == SISA_OK)
        st = sisa_err(SISA_BAD_FILE, "%s: write failed (%s)", path, strerror(errno));
    if (st == SISA_OK && rename(tmp, path) != 0)
        st = sisa_err(SISA_BAD_FILE, "%s: cannot rename %s into place (%s)", path, tmp,
                      strerror(errno));
    if (st != SISA_OK) remove(tmp);
    return st;
}

static FILE *open_tmp(const char *path, char **tmp) {
    size_t n = strlen(path) + 5;
    *tmp = malloc(n);
    if (!*tmp) return NULL;
    snprintf(*tmp, n, "%s.tmp", path);
    return fopen(*tmp, "wb");
}

sisa_status sisa_st_write(const char *path, const sisa_st_entry *entries, int n,
                          const char *metadata_json) {
    if (!path || (n > 0 && !entries) || n < 0)
        return sisa_err(SISA_INVALID_ARG, "safetensors write: bad arguments");
    int *order = malloc(sizeof(int) * (size_t)(n + 1));
    uint64_t *sizes = malloc(sizeof(uint64_t) * (size_t)(n + 1));
    sbuf h = {0};
    sisa_status st = order && sizes ? SISA_OK : sisa_err(SISA_OUT_OF_MEMORY, "%s: out of host memory", path);
    for (int i = 0; i < n && st == SISA_OK; i++) st = entry_bytes(path, &entries[i], &sizes[i]);
    /* largest element first (stable): every tensor then starts at a multiple of its element size */
    int k = 0;
    for (size_t es = 8; es >= 1 && st == SISA_OK; es /= 2)
        for (int i = 0; i < n; i++)
            if (sisa_dtype_size(entries[i].dtype) == es) order[k++] = i;
    uint64_t off = 0;
    sb_put(&h, "{");
    if (metadata_json) sb_put(&h, "\"__metadata__\":%s", metadata_json);
    for (int j = 0; j < k && st == SISA_OK; j++) {
        const sisa_st_entry *e = &entries[order[j]];
        sb_put(&h, "%s", j || metadata_json ? "," : "");
        sb_json_string(&h, e->name);
        sb_put(&h, ":{\"dtype\":\"%s\",\"shape\":[", sisa_st_dtype_name(e->dtype));
        for (int d = 0; d < e->n_dims; d++) sb_put(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        sb_put(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
               (unsigned long long)(off + sizes[order[j]]));
        off += sizes[order[j]];
    }
    sb_put(&h, "}");
    while (!h.oom && (8 + h.n) % 64) sb_put(&h, " ");
    if (st == SISA_OK && h.oom) st = sisa_err(SISA_OUT_OF_MEMORY, "%s: out of host memory", path);
    char *tmp = NULL;
    FILE *fp = NULL;
    if (st == SISA_OK) {
        fp = open_tmp(path, &tmp);
        if (!fp) st = sisa_err(SISA_BAD_FILE, "%s: cannot create (%s)", path, strerror(errno));
    }
    if (st == SISA_OK) {
        unsigned char len[8];
        for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
        st = write_all(fp, path, len, 8);
        if (st == SISA_OK) st = write_all(fp, path, h.p, h.n);
        for (int j = 0; j < k && st == SISA_OK; j++) {
            const sisa_st_entry *e = &entries[order[j]];
            size_t nb = (size_t)sizes[order[j]];
            if (e->data) {
                st = write_all(fp, path, e->data, nb);
                continue;
            }
            void *buf = malloc(nb ? nb : 1);
            if (!buf) {
                st = sisa_err(SISA_OUT_OF_MEMORY, "%s: tensor '%s': no host memory for %zu bytes",
                              path, e->name, nb);
                break;
            }
            st = e->fill(e->user, e, buf, nb);
            if (st == SISA_OK) st = write_all(fp, path, buf, nb);
            free(buf);
        }
        st = finish(fp, tmp, path, st);
    }
    free(tmp);
    free(h.p);
    free(order);
    free(sizes);
    return st;
}

sisa_status sisa_st_write_raw(const char *path, const char *header, uint64_t header_len_override,
                              const void *data, size_t data_len) {
    if (!path || !header) return sisa_err(SISA_INVALID_ARG, "safetensors write: bad arguments");
    char *tmp = NULL;
    FILE *fp = open_tmp(path, &tmp);
    if (!fp) {
        free(tmp);
        return sisa_err(SISA_BAD_FILE, "%s: cannot create (%s)", path, strerror(errno));
    }
    uint64_t hl = header_len_override ? header_len_override : strlen(header);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(hl >> (8 * i));
    sisa_status st = write_all(fp, path, len, 8);
    if (st == SISA_OK) st = write_all(fp, path, header, strlen(header));
    if (st == SISA_OK) st = write_all(fp, path, data, data_len);
    st = finish(fp, tmp, path, st);
    free(tmp);
    return st;
}
