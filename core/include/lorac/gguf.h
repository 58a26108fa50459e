/* lorac — GGUF v3 files: a validating, memory-mapped reader and an atomic writer.
 *
 * Format: reference/formats.md §1 (from ggml-org/llama.cpp ggml/src/gguf.cpp and
 * ggml/include/gguf.h). All values are little-endian:
 *   "GGUF", u32 version, i64 n_tensors, i64 n_kv,
 *   n_kv x [key string, i32 value type, value],
 *   n_tensors x [name string, u32 n_dims, i64 ne[n_dims], i32 ggml type, u64 offset],
 *   zero padding to the alignment, then the data blob.
 * A string is a u64 byte length and the bytes (no NUL). An array is an i32 element type, a u64
 * count and the elements. Tensor offsets count from the start of the data blob; each equals the
 * running sum of PAD(nbytes, alignment) over the tensors before it. The alignment is the u32
 * key "general.alignment" (a nonzero power of two), 32 when absent.
 *
 * Reading: lc_gguf_open maps the file and validates all of it before returning (every check of
 * formats.md §1: magic; version (0, byte-swapped, 1 and >3 refused; 2 and 3 accepted); counts;
 * keys non-empty and unique; strings <= 1 GiB; arrays <= 2^30 elements, no arrays of arrays;
 * known value types; alignment; tensor names < 64 bytes and unique; 1 <= n_dims <= 4; ne >= 0;
 * and, stricter than ggml, no NUL byte inside a key or tensor name, so lookups by C string are
 * exact;
 * element and byte counts without overflow; known ggml type ids; ne[0] a multiple of the block
 * size; offsets equal to the running padded sum; data inside the file). Nothing is read past the
 * mapped size. Every error is LC_ERR_FORMAT (LC_ERR_IO for open/stat/mmap failures,
 * LC_ERR_NOMEM for host allocations) with a message that names the file, the byte offset and the
 * field, e.g. "gguf: m.gguf: offset 40: kv[1] 'general.name' value: string length 5000 runs past
 * the end of the file (60 bytes)".
 *
 * Tensor types: a tensor whose ggml type id is known to ggml but not supported by lorac (for
 * example q5_K) does NOT make lc_gguf_open fail: its info is listed with `supported = false` so
 * metadata and listings still work, and lc_gguf_tensor_load of that tensor fails with
 * LC_ERR_DTYPE naming the tensor and its type id. An id that ggml does not define (or has
 * removed: 4, 5, 31-33, 36-38, or past the newest known) makes lc_gguf_open fail, since the
 * size of such a tensor, and so the layout of the data blob, is unknown.
 *
 * Strings returned by the reader are NUL-terminated copies owned by the lc_gguf; they may also
 * contain NUL bytes of their own, so functions that return a string also give its length.
 * Pointers returned by the reader stay valid until lc_gguf_close.
 */
#ifndef LORAC_GGUF_H
#define LORAC_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/status.h"
#include "lorac/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LC_GGUF_MAGIC "GGUF"
#define LC_GGUF_VERSION 3
#define LC_GGUF_DEFAULT_ALIGNMENT 32
#define LC_GGUF_NAME_MAX 64                      /* tensor names are shorter than this (bytes) */
#define LC_GGUF_MAX_STRING ((uint64_t)1 << 30)   /* bytes in one string */
#define LC_GGUF_MAX_ARRAY ((uint64_t)1 << 30)    /* elements in one array */
#define LC_GGUF_MAX_DIMS 4

/* Metadata value types (ids as stored in the file). */
typedef enum lc_gguf_type {
    LC_GGUF_UINT8   = 0,
    LC_GGUF_INT8    = 1,
    LC_GGUF_UINT16  = 2,
    LC_GGUF_INT16   = 3,
    LC_GGUF_UINT32  = 4,
    LC_GGUF_INT32   = 5,
    LC_GGUF_FLOAT32 = 6,
    LC_GGUF_BOOL    = 7,  /* 1 byte; nonzero is true */
    LC_GGUF_STRING  = 8,
    LC_GGUF_ARRAY   = 9,
    LC_GGUF_UINT64  = 10,
    LC_GGUF_INT64   = 11,
    LC_GGUF_FLOAT64 = 12,
    LC_GGUF_TYPE_COUNT = 13
} lc_gguf_type;

typedef struct lc_gguf lc_gguf;
typedef struct lc_gguf_writer lc_gguf_writer;

/* One tensor of an open file. */
typedef struct lc_gguf_tensor_info {
    const char *name;     /* NUL-terminated, fewer than LC_GGUF_NAME_MAX bytes */
    int type;             /* ggml type id as stored; equals the lc_dtype id for supported types */
    bool supported;       /* lorac supports this dtype (lc_dtype_get(type) != NULL) */
    int n_dims;           /* as stored, 1..4 (writers may keep trailing 1s) */
    int64_t ne[LC_GGUF_MAX_DIMS]; /* elements per dimension, ne[0] contiguous; dims >= n_dims are 1 */
    uint64_t offset;      /* absolute byte offset of the data within the file */
    uint64_t size;        /* bytes: type_size * ne[0]/block_size * ne[1] * ne[2] * ne[3] */
    const void *data;     /* the bytes, inside the mapping: aligned to the file's alignment
                             relative to the start of the file */
} lc_gguf_tensor_info;

/* ---- ggml type traits ------------------------------------------------------------------ */

/* Block size (elements), block bytes and name of ggml type id `type` (ggml.c type_traits:
 * f32 1/4, f16 1/2, q4_0 32/18, q8_0 32/34, q4_K 256/144, q6_K 256/210, bf16 1/2, ...). Any
 * output may be NULL. Returns false (outputs untouched) for ids ggml does not define. */
bool lc_gguf_ggml_type_traits(int type, int64_t *block_size, size_t *type_size, const char **name);

/* Name of a metadata value type ("u32", "string", "array", ...); "unknown" when out of range. */
const char *lc_gguf_type_name(int type);

/* ---- reading ----------------------------------------------------------------------------- */

/* Map `path` read-only, parse and validate it (see the top of this file). On success `*out` is
 * a handle to release with lc_gguf_close; on failure `*out` is NULL.
 * Errors: LC_ERR_INVALID_ARG (NULL argument), LC_ERR_IO (open/stat/mmap, not a regular file),
 * LC_ERR_FORMAT (any check failed), LC_ERR_NOMEM. */
lc_status lc_gguf_open(const char *path, lc_gguf **out);

/* As lc_gguf_open for a GGUF image already in memory. `data` is borrowed: it must stay valid and
 * unchanged until lc_gguf_close. `name` (may be NULL: "<memory>") is used in error messages.
 * Errors as lc_gguf_open, without LC_ERR_IO. */
lc_status lc_gguf_open_memory(const void *data, size_t size, const char *name, lc_gguf **out);

/* Unmap and free. NULL is a no-op. Tensors loaded from the file stay valid. */
void lc_gguf_close(lc_gguf *f);

/* File name given to open, version (2 or 3), alignment in bytes, byte offset of the data blob
 * (file size when the file has no tensors and no padding), file size in bytes. */
const char *lc_gguf_path(const lc_gguf *f);
uint32_t lc_gguf_version(const lc_gguf *f);
uint32_t lc_gguf_alignment(const lc_gguf *f);
uint64_t lc_gguf_data_offset(const lc_gguf *f);
uint64_t lc_gguf_file_size(const lc_gguf *f);

/* ---- metadata ---------------------------------------------------------------------------- */

/* Number of key/value pairs; key ids are 0 .. n_kv-1 in file order. */
int64_t lc_gguf_n_kv(const lc_gguf *f);

/* Id of `key`, or -1 when the file has no such key (or an argument is NULL). */
int64_t lc_gguf_find_key(const lc_gguf *f, const char *key);

/* Key name of id `kid` (NULL when out of range). */
const char *lc_gguf_key(const lc_gguf *f, int64_t kid);

/* Value type of id `kid` (an lc_gguf_type), -1 when out of range. */
int lc_gguf_kv_type(const lc_gguf *f, int64_t kid);

/* Typed scalar getters by key name. The stored type must be exactly the one named (a u32 key is
 * not returned by lc_gguf_get_i32; use lc_gguf_get_int for "any integer").
 * Errors: LC_ERR_INVALID_ARG (NULL argument), LC_ERR_FORMAT when the key is absent ("key
 * 'x' not found"; use lc_gguf_find_key for optional keys) or has another type (the message
 * names the key, the expected and the found type, and the value's byte offset). */
lc_status lc_gguf_get_u8(const lc_gguf *f, const char *key, uint8_t *out);
lc_status lc_gguf_get_i8(const lc_gguf *f, const char *key, int8_t *out);
lc_status lc_gguf_get_u16(const lc_gguf *f, const char *key, uint16_t *out);
lc_status lc_gguf_get_i16(const lc_gguf *f, const char *key, int16_t *out);
lc_status lc_gguf_get_u32(const lc_gguf *f, const char *key, uint32_t *out);
lc_status lc_gguf_get_i32(const lc_gguf *f, const char *key, int32_t *out);
lc_status lc_gguf_get_u64(const lc_gguf *f, const char *key, uint64_t *out);
lc_status lc_gguf_get_i64(const lc_gguf *f, const char *key, int64_t *out);
lc_status lc_gguf_get_f32(const lc_gguf *f, const char *key, float *out);
lc_status lc_gguf_get_f64(const lc_gguf *f, const char *key, double *out);
lc_status lc_gguf_get_bool(const lc_gguf *f, const char *key, bool *out);
/* `*out` is NUL-terminated; `len` (may be NULL) receives the byte length. */
lc_status lc_gguf_get_string(const lc_gguf *f, const char *key, const char **out, size_t *len);

/* Any integer or bool scalar, as int64 (a u64 above INT64_MAX is LC_ERR_FORMAT). Errors as above. */
lc_status lc_gguf_get_int(const lc_gguf *f, const char *key, int64_t *out);

/* Scalar value of key id `kid` regardless of its exact type, for listings and tools:
 * _i64: any integer or bool scalar; _f64: any numeric or bool scalar; _str: a string scalar.
 * Errors: LC_ERR_INVALID_ARG (NULL argument or kid out of range), LC_ERR_FORMAT (wrong kind). */
lc_status lc_gguf_kv_get_i64(const lc_gguf *f, int64_t kid, int64_t *out);
lc_status lc_gguf_kv_get_f64(const lc_gguf *f, int64_t kid, double *out);
lc_status lc_gguf_kv_get_str(const lc_gguf *f, int64_t kid, const char **out, size_t *len);

/* ---- metadata arrays ----------------------------------------------------------------------- */

/* Element type of array key id `kid`, or -1 when it is not an array (or out of range). */
int lc_gguf_arr_type(const lc_gguf *f, int64_t kid);

/* Element count of array key id `kid` (0 when not an array). */
uint64_t lc_gguf_arr_count(const lc_gguf *f, int64_t kid);

/* The elements of a numeric or bool array as a packed little-endian C array, aligned for its
 * element type (bool: one byte each, as stored). NULL for string arrays, non-arrays and empty
 * arrays. */
const void *lc_gguf_arr_data(const lc_gguf *f, int64_t kid);

/* Element `i` of array key id `kid`: _i64 for integer and bool arrays (u64 above INT64_MAX is an
 * error), _f64 for every numeric or bool array, _str for string arrays (NUL-terminated; `len`
 * may be NULL).
 * Errors: LC_ERR_INVALID_ARG (NULL argument, kid or i out of range), LC_ERR_FORMAT (not an array
 * of a matching kind; the message names the key and the types). */
lc_status lc_gguf_arr_get_i64(const lc_gguf *f, int64_t kid, uint64_t i, int64_t *out);
lc_status lc_gguf_arr_get_f64(const lc_gguf *f, int64_t kid, uint64_t i, double *out);
lc_status lc_gguf_arr_get_str(const lc_gguf *f, int64_t kid, uint64_t i, const char **out, size_t *len);

/* Numeric array by key name whose element type must be exactly `elem_type`
 * (e.g. tokenizer.ggml.scores with LC_GGUF_FLOAT32): `*data` as lc_gguf_arr_data, `*count` the
 * element count. Errors: LC_ERR_INVALID_ARG, LC_ERR_FORMAT (absent, not an array, other element
 * type, or a string array). */
lc_status lc_gguf_get_arr(const lc_gguf *f, const char *key, lc_gguf_type elem_type,
                          const void **data, uint64_t *count);

/* ---- tensors ----------------------------------------------------------------------------- */

/* Number of tensors; tensor ids are 0 .. n-1 in file order. */
int64_t lc_gguf_n_tensors(const lc_gguf *f);

/* Info of tensor id `i`, NULL when out of range. */
const lc_gguf_tensor_info *lc_gguf_tensor(const lc_gguf *f, int64_t i);

/* Id of the tensor named `name`, -1 when absent. */
int64_t lc_gguf_find_tensor(const lc_gguf *f, const char *name);

/* Create a standalone tensor on `dev` with the SAME dtype and ne as tensor id `i` (quantized
 * stays quantized), named like it, flagged LC_TENSOR_FROZEN, and upload its bytes once
 * (lc_tensor_new + lc_tensor_set). Release it with lc_tensor_free.
 * Errors: LC_ERR_INVALID_ARG (NULL argument, i out of range), LC_ERR_DTYPE (type not supported
 * by lorac: the message names the tensor, its type id and name, and lorac's dtypes),
 * LC_ERR_SHAPE (a zero-sized dimension), device errors (LC_ERR_DEVICE_NOMEM, ...) with the
 * tensor named in the message. */
lc_status lc_gguf_tensor_load(const lc_gguf *f, int64_t i, lc_device *dev, lc_tensor **out);

/* As lc_gguf_tensor_load for the tensor named `name`; LC_ERR_FORMAT when there is none. */
lc_status lc_gguf_tensor_load_named(const lc_gguf *f, const char *name, lc_device *dev,
                                    lc_tensor **out);

/* ---- writing ----------------------------------------------------------------------------- */
/* A writer collects key/value pairs and tensors, then writes a GGUF v3 file: keys in the order
 * first set, tensors in the order added, n_dims written as ggml_n_dims (trailing 1s dropped,
 * at least 1), every tensor's data zero-padded to the alignment ("general.alignment" when set,
 * which must then be a u32 nonzero power of two; 32 otherwise). */

/* Errors: LC_ERR_INVALID_ARG (out is NULL), LC_ERR_NOMEM. */
lc_status lc_gguf_writer_new(lc_gguf_writer **out);
/* NULL is a no-op. */
void lc_gguf_writer_free(lc_gguf_writer *w);

/* Set a scalar value. A key that is already set is replaced (it keeps its position).
 * Keys must be non-empty and at most 1 GiB. Errors: LC_ERR_INVALID_ARG, LC_ERR_NOMEM. */
lc_status lc_gguf_writer_set_u8(lc_gguf_writer *w, const char *key, uint8_t v);
lc_status lc_gguf_writer_set_i8(lc_gguf_writer *w, const char *key, int8_t v);
lc_status lc_gguf_writer_set_u16(lc_gguf_writer *w, const char *key, uint16_t v);
lc_status lc_gguf_writer_set_i16(lc_gguf_writer *w, const char *key, int16_t v);
lc_status lc_gguf_writer_set_u32(lc_gguf_writer *w, const char *key, uint32_t v);
lc_status lc_gguf_writer_set_i32(lc_gguf_writer *w, const char *key, int32_t v);
lc_status lc_gguf_writer_set_u64(lc_gguf_writer *w, const char *key, uint64_t v);
lc_status lc_gguf_writer_set_i64(lc_gguf_writer *w, const char *key, int64_t v);
lc_status lc_gguf_writer_set_f32(lc_gguf_writer *w, const char *key, float v);
lc_status lc_gguf_writer_set_f64(lc_gguf_writer *w, const char *key, double v);
lc_status lc_gguf_writer_set_bool(lc_gguf_writer *w, const char *key, bool v);
/* `v` NUL-terminated (a string with NUL bytes inside: lc_gguf_writer_set_string_n). */
lc_status lc_gguf_writer_set_string(lc_gguf_writer *w, const char *key, const char *v);
lc_status lc_gguf_writer_set_string_n(lc_gguf_writer *w, const char *key, const char *v, size_t len);

/* Array of `n` numeric or bool elements of `elem_type` (not STRING or ARRAY), copied from the
 * packed C array `data` (may be NULL when n is 0). n <= 2^30. Errors as the scalar setters. */
lc_status lc_gguf_writer_set_arr(lc_gguf_writer *w, const char *key, lc_gguf_type elem_type,
                                 const void *data, uint64_t n);

/* Array of `n` strings, copied; `lens` may be NULL (then each string is NUL-terminated). */
lc_status lc_gguf_writer_set_arr_str(lc_gguf_writer *w, const char *key, const char *const *strs,
                                     const size_t *lens, uint64_t n);

/* Copy key id `kid` of an open file (any type, arrays included) into the writer.
 * Errors: LC_ERR_INVALID_ARG (kid out of range), LC_ERR_NOMEM. */
lc_status lc_gguf_writer_copy_kv(lc_gguf_writer *w, const lc_gguf *f, int64_t kid);

/* Remove `key` if it is set (no error when it is not). Errors: LC_ERR_INVALID_ARG. */
lc_status lc_gguf_writer_remove_kv(lc_gguf_writer *w, const char *key);

/* Add a tensor: ggml type id `type` (any type lc_gguf_ggml_type_traits knows), `n_dims` in 1..4,
 * ne in ne order (ne[0] contiguous, each >= 0, ne[0] a multiple of the block size), and its
 * `size` bytes, which must equal type_size * ne[0]/block_size * ne[1]*ne[2]*ne[3].
 * _add_tensor copies `data`; _add_tensor_ref only keeps the pointer, which must stay valid until
 * the writer is written or freed (for large weights, e.g. an lc_gguf_tensor_info's data).
 * Errors: LC_ERR_INVALID_ARG (name empty, >= 64 bytes or already added; bad n_dims/ne/type;
 * size mismatch), LC_ERR_NOMEM. */
lc_status lc_gguf_writer_add_tensor(lc_gguf_writer *w, const char *name, int type, int n_dims,
                                    const int64_t *ne, const void *data, size_t size);
lc_status lc_gguf_writer_add_tensor_ref(lc_gguf_writer *w, const char *name, int type, int n_dims,
                                        const int64_t *ne, const void *data, size_t size);

/* Write the file atomically: to "<path>.tmp", flushed and fsync'ed, then renamed over `path`.
 * On failure the temporary file is removed and `path` is untouched.
 * Errors: LC_ERR_INVALID_ARG (bad general.alignment), LC_ERR_IO (naming the path and the
 * system error), LC_ERR_NOMEM. */
lc_status lc_gguf_writer_write(const lc_gguf_writer *w, const char *path);

/* Write the file image into a new malloc'd buffer (release with free()).
 * Errors: LC_ERR_INVALID_ARG, LC_ERR_NOMEM. */
lc_status lc_gguf_writer_write_memory(const lc_gguf_writer *w, void **data, size_t *size);

#ifdef __cplusplus
}
#endif
#endif
