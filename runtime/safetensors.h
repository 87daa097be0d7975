/*
 * safetensors.h — reading and writing safetensors files.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON header
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
 * then the data; offsets are relative to the first data byte.
 *
 * The reader maps the file (mmap, read-only) and validates everything before anyone touches a
 * byte of data: header length inside the file, header is one JSON object, every entry has exactly
 * dtype/shape/data_offsets, known dtype, end - begin == product(shape) * element size, offsets in
 * range, no duplicate names, and the tensors tile the data exactly (no overlap, no hole, nothing
 * trailing) as the format requires. Every error is SISA_BAD_FILE and names the file and tensor.
 *
 * The writer streams one tensor at a time (a 369M-parameter model never has to sit in memory
 * twice) and orders the data largest element first, so every tensor starts at a multiple of its
 * element size; the header is padded with spaces so the data starts at a multiple of 64 bytes.
 */
#ifndef SISA_SAFETENSORS_H
#define SISA_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#define SISA_ST_MAX_DIMS 8
#define SISA_ST_MAX_HEADER ((uint64_t)100 << 20) /* the format's own limit: 100 MB of header */

typedef struct sisa_st_tensor {
    char *name;
    sisa_dtype dtype;
    int n_dims;
    int64_t shape[SISA_ST_MAX_DIMS];
    uint64_t begin, end;  /* data_offsets, relative to the data section */
    uint64_t file_offset; /* absolute offset of the first byte in the file */
    const void *data;     /* inside the mapping; valid until sisa_st_close */
} sisa_st_tensor;

typedef struct sisa_st_file {
    char *path;
    void *map;
    size_t map_size;
    uint64_t data_start; /* 8 + N */
    uint64_t data_size;
    sisa_st_tensor *tensors; /* in header order */
    int n_tensors;
} sisa_st_file;

/* Map and validate a file. On error *out is NULL and the message names the file. */
sisa_status sisa_st_open(const char *path, sisa_st_file **out);
void sisa_st_close(sisa_st_file *f);
/* The tensor of that name, or NULL. */
const sisa_st_tensor *sisa_st_find(const sisa_st_file *f, const char *name);
int64_t sisa_st_nelements(const sisa_st_tensor *t);
/* "F32", "BF16", ... (the safetensors spelling); NULL for a dtype the format cannot hold. */
const char *sisa_st_dtype_name(sisa_dtype t);
/* Parse a safetensors dtype; false when not one of F32, F16, BF16, I32, F64. */
bool sisa_st_dtype_parse(const char *s, sisa_dtype *out);

/* ---- writer ---- */

/* One tensor to write. Either `data` (nbytes = product(shape) * element size, little-endian) or,
 * when data is NULL, `fill` is called once with a buffer of that size to produce the bytes. */
typedef struct sisa_st_entry {
    const char *name;
    sisa_dtype dtype;
    int n_dims;
    int64_t shape[SISA_ST_MAX_DIMS];
    const void *data;
    sisa_status (*fill)(void *user, const struct sisa_st_entry *e, void *dst, size_t nbytes);
    void *user;
} sisa_st_entry;

/* Write a well-formed file. metadata_json: NULL or a JSON object of strings for "__metadata__". */
sisa_status sisa_st_write(const char *path, const sisa_st_entry *entries, int n,
                          const char *metadata_json);
/* Write a file from a header given verbatim and raw data bytes: for tests that need malformed
 * files. header_len_override != 0 replaces the 8-byte length field (e.g. past the end). */
sisa_status sisa_st_write_raw(const char *path, const char *header, uint64_t header_len_override,
                              const void *data, size_t data_len);

#endif
