/* lorac — safetensors files: a validating, memory-mapped reader and a writer that produces the
 * bytes the reference implementation writes.
 *
 * Format: reference/peft-lora.md §3 and reference/formats.md §5 (from huggingface/safetensors
 * README.md "Format" and safetensors/src/tensor.rs). All values are little-endian:
 *   bytes 0..8      u64 N, the byte length of the header
 *   bytes 8..8+N    a UTF-8 JSON object, starting with '{', possibly padded at the end with
 *                   spaces: {"__metadata__": {str: str, ...},
 *                            "NAME": {"dtype": "F32", "shape": [d0, d1, ...],
 *                                     "data_offsets": [BEGIN, END]}, ...}
 *   bytes 8+N..     the data buffer; BEGIN and END (exclusive) count from its first byte, i.e.
 *                   from file offset 8+N. Tensors are C-order (row-major): shape[n_dims-1] is the
 *                   contiguous dimension, so a PyTorch [out, in] weight is lorac ne {in, out}
 *                   with the same bytes.
 *
 * Reading: lc_safetensors_open maps the file and validates all of it before returning (every
 * rule of peft-lora.md §3.2 and a few more): file at least 8 bytes; N <= 100,000,000 and
 * 8 + N <= file size; header valid UTF-8 JSON starting with '{' followed only by whitespace;
 * top level an object without duplicate keys; "__metadata__" (optional) an object of strings or
 * null; every tensor entry an object with a known "dtype", a "shape" array of at most
 * LC_ST_MAX_DIMS non-negative integers, a "data_offsets" array of two non-negative integers with
 * BEGIN <= END, END - BEGIN == numel * bits(dtype) / 8 (a whole number of bytes), END within the
 * data buffer; and, with the entries sorted by offsets, offsets contiguous from 0 with no gap and
 * no overlap, the last END equal to the data buffer size. The header may have any length (other
 * writers do not pad it to a multiple of 8). Every error is LC_ERR_FORMAT (LC_ERR_IO for
 * open/stat/mmap, LC_ERR_NOMEM, LC_ERR_UNSUPPORTED when lorac was built without cJSON) with a
 * message naming the file, the tensor and the field, e.g. "safetensors: a.safetensors: tensor
 * 'w' data_offsets [0, 20]: 20 bytes, but shape [3, 5] of F32 needs 60".
 *
 * Writing: tensors sorted by dtype descending (the order of lc_st_dtype, which is the
 * safetensors Dtype enum), then by name ascending as byte strings; data laid out in that order;
 * header compact JSON (serde_json style: no spaces, "__metadata__" first with its keys in
 * ascending order, then the tensors in data order, fields "dtype", "shape", "data_offsets"),
 * padded with spaces to a multiple of 8 bytes. This is what safetensors' save_file (the Rust
 * serialize_to_file that PEFT calls) writes, byte for byte.
 */
#ifndef LORAC_SAFETENSORS_H
#define LORAC_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LC_ST_MAX_HEADER 100000000ull   /* bytes; safetensors MAX_HEADER_SIZE */
#define LC_ST_MAX_DIMS 8                /* lorac's limit on the rank of one tensor */

/* safetensors dtypes in the order of the reference Dtype enum (increasing alignment); the writer
 * sorts by this order, descending. */
typedef enum lc_st_dtype {
    LC_ST_BOOL = 0,
    LC_ST_F4,
    LC_ST_F6_E2M3,
    LC_ST_F6_E3M2,
    LC_ST_U8,
    LC_ST_I8,
    LC_ST_F8_E5M2,
    LC_ST_F8_E4M3,
    LC_ST_F8_E8M0,
    LC_ST_F8_E4M3FNUZ,
    LC_ST_F8_E5M2FNUZ,
    LC_ST_I16,
    LC_ST_U16,
    LC_ST_F16,
    LC_ST_BF16,
    LC_ST_I32,
    LC_ST_U32,
    LC_ST_F32,
    LC_ST_C64,
    LC_ST_F64,
    LC_ST_I64,
    LC_ST_U64,
    LC_ST_DTYPE_COUNT
} lc_st_dtype;

/* The file spelling ("F32", "BF16", "F8_E4M3", ...); "unknown" when out of range. */
const char *lc_st_dtype_name(int dtype);
/* Bits per element (BOOL 8, F4 4, F6_* 6, 8-bit types 8, ... C64/F64/I64/U64 64); 0 when out of range. */
int lc_st_dtype_bits(int dtype);
/* Inverse of lc_st_dtype_name (exact, case-sensitive). Returns -1 for an unknown name. */
int lc_st_dtype_from_name(const char *name);

typedef struct lc_safetensors lc_safetensors;
typedef struct lc_safetensors_writer lc_safetensors_writer;

/* One tensor of an open file. */
typedef struct lc_st_tensor_info {
    const char *name;        /* NUL-terminated, owned by the lc_safetensors */
    lc_st_dtype dtype;
    int n_dims;              /* 0 for a scalar */
    int64_t shape[LC_ST_MAX_DIMS]; /* PyTorch order: shape[n_dims-1] is contiguous; unused = 1 */
    int64_t numel;           /* product of shape (1 for a scalar; 0 when a dimension is 0) */
    uint64_t begin, end;     /* data_offsets as stored: relative to the data buffer (8 + N) */
    uint64_t offset;         /* absolute byte offset of the data in the file: 8 + N + begin */
    uint64_t size;           /* end - begin bytes */
    const void *data;        /* the bytes, inside the mapping (alignment not guaranteed) */
} lc_st_tensor_info;

/* ---- reading ----------------------------------------------------------------------------- */

/* Map `path` read-only, parse and validate it (see the top of this file). On success `*out` is
 * a handle to release with lc_safetensors_close; on failure `*out` is NULL.
 * Errors: LC_ERR_INVALID_ARG (NULL argument), LC_ERR_IO (open/stat/mmap, not a regular file),
 * LC_ERR_FORMAT (any check failed), LC_ERR_NOMEM, LC_ERR_UNSUPPORTED (built without cJSON). */
lc_status lc_safetensors_open(const char *path, lc_safetensors **out);

/* As lc_safetensors_open for an image in memory. `data` is borrowed and must stay valid and
 * unchanged until lc_safetensors_close; `name` (NULL: "<memory>") is used in messages.
 * Errors as lc_safetensors_open, without LC_ERR_IO. */
lc_status lc_safetensors_open_memory(const void *data, size_t size, const char *name, lc_safetensors **out);

/* Unmap and free. NULL is a no-op. */
void lc_safetensors_close(lc_safetensors *f);

/* Name given to open; header length N in bytes; file size in bytes. */
const char *lc_safetensors_path(const lc_safetensors *f);
uint64_t lc_safetensors_header_size(const lc_safetensors *f);
uint64_t lc_safetensors_file_size(const lc_safetensors *f);

/* Number of tensors; ids 0 .. n-1 in the order of the header's JSON object. */
int64_t lc_safetensors_n_tensors(const lc_safetensors *f);
/* Info of tensor id `i`, NULL when out of range. */
const lc_st_tensor_info *lc_safetensors_tensor(const lc_safetensors *f, int64_t i);
/* Id of the tensor named `name`, -1 when absent. */
int64_t lc_safetensors_find(const lc_safetensors *f, const char *name);

/* "__metadata__" entries: count, key/value of entry i (NULL when out of range), value by key
 * (NULL when absent). */
int64_t lc_safetensors_n_metadata(const lc_safetensors *f);
const char *lc_safetensors_metadata_key(const lc_safetensors *f, int64_t i);
const char *lc_safetensors_metadata_value(const lc_safetensors *f, int64_t i);
const char *lc_safetensors_metadata_get(const lc_safetensors *f, const char *key);

/* Convert tensor id `i` (F32, F16, BF16 or F64; C order) into `n` F32 values at `dst`;
 * n must equal its numel. F16 and BF16 widen exactly; F64 rounds to nearest.
 * Errors: LC_ERR_INVALID_ARG (NULL argument, i out of range, n != numel: the message names the
 * tensor and both counts), LC_ERR_DTYPE (another dtype; the message names tensor and dtype). */
lc_status lc_safetensors_read_f32(const lc_safetensors *f, int64_t i, float *dst, int64_t n);

/* ---- writing ----------------------------------------------------------------------------- */

/* Errors: LC_ERR_INVALID_ARG (out is NULL), LC_ERR_NOMEM. */
lc_status lc_safetensors_writer_new(lc_safetensors_writer **out);
/* NULL is a no-op. */
void lc_safetensors_writer_free(lc_safetensors_writer *w);

/* Set a "__metadata__" string entry (PEFT writes exactly {"format": "pt"}). A key that is set
 * again is replaced. Errors: LC_ERR_INVALID_ARG (NULL), LC_ERR_NOMEM. */
lc_status lc_safetensors_writer_set_metadata(lc_safetensors_writer *w, const char *key, const char *value);

/* Add a tensor: dtype (lc_st_dtype), n_dims in 0..LC_ST_MAX_DIMS, shape in PyTorch order (each
 * >= 0), and its `size` bytes in C order, which must equal numel * bits / 8.
 * _add copies `data`; _add_ref keeps the pointer, which must stay valid until the writer is
 * written or freed. `data` may be NULL when size is 0.
 * Errors: LC_ERR_INVALID_ARG (name NULL, empty, "__metadata__" or already added; bad dtype,
 * n_dims or shape; size mismatch, naming the tensor and both sizes), LC_ERR_NOMEM. */
lc_status lc_safetensors_writer_add(lc_safetensors_writer *w, const char *name, lc_st_dtype dtype, int n_dims,
                                    const int64_t *shape, const void *data, size_t size);
lc_status lc_safetensors_writer_add_ref(lc_safetensors_writer *w, const char *name, lc_st_dtype dtype,
                                        int n_dims, const int64_t *shape, const void *data, size_t size);

/* Write the file atomically: to "<path>.tmp", flushed and fsync'ed, then renamed over `path`
 * (and the directory fsync'ed). On failure the temporary file is removed and `path` is untouched.
 * Errors: LC_ERR_INVALID_ARG, LC_ERR_IO (naming the path and the system error), LC_ERR_NOMEM. */
lc_status lc_safetensors_writer_write(const lc_safetensors_writer *w, const char *path);

/* Write the file image into a new malloc'd buffer (release with free()).
 * Errors: LC_ERR_INVALID_ARG, LC_ERR_NOMEM. */
lc_status lc_safetensors_writer_write_memory(const lc_safetensors_writer *w, void **data, size_t *size);

#ifdef __cplusplus
}
#endif
#endif
