/* lorac — tensors: dtype, shape ne[4], byte strides nb[4], a device buffer plus offset.
 *
 * ne[0] is the contiguous dimension, as in GGUF and ggml (reference/formats.md §1): a PyTorch
 * weight of shape [out, in] is a lorac tensor with ne = {in, out, 1, 1} and the same bytes.
 * For quantized dtypes nb[0] is the block size in bytes and nb[1] = row_size(ne[0]).
 * The core never dereferences device memory: data crosses the host/device boundary only through
 * lc_tensor_set / lc_tensor_get (and the _f32 helpers), which call the backend's upload/download.
 */
#ifndef LORAC_TENSOR_H
#define LORAC_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/dtype.h"
#include "lorac/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LC_MAX_DIMS 4
#define LC_NAME_MAX 96

typedef struct lc_device lc_device;
typedef struct lc_node lc_node;
typedef struct lc_graph lc_graph;

/* A block of device memory. `impl` is the backend's handle (the host pointer for the CPU
 * backend, a cl_mem for OpenCL, a VkBuffer wrapper for Vulkan). */
typedef struct lc_buffer {
    lc_device *device;
    size_t size;     /* bytes */
    void *impl;
} lc_buffer;

enum {
    LC_TENSOR_PARAM  = 1u << 0, /* trainable: gets a gradient (LoRA A/B) */
    LC_TENSOR_FROZEN = 1u << 1, /* never gets a gradient (base weights) */
    LC_TENSOR_INPUT  = 1u << 2, /* uploaded by the host every step (ids, labels, positions) */
    LC_TENSOR_OUTPUT = 1u << 3, /* read back by the host; its memory is never reused by the planner */
    LC_TENSOR_OWNS_BUFFER = 1u << 4 /* internal: lc_tensor_free releases the buffer */
};

typedef struct lc_tensor {
    lc_dtype dtype;
    int64_t ne[LC_MAX_DIMS];   /* elements per dimension; unused dimensions are 1 */
    size_t nb[LC_MAX_DIMS];    /* bytes between consecutive indices in each dimension */
    lc_buffer *buffer;         /* NULL until allocated (graph tensors: by lc_graph_plan) */
    size_t offset;             /* byte offset into buffer */
    char name[LC_NAME_MAX];
    uint32_t flags;
    struct lc_tensor *grad;    /* F32 gradient, same ne; set by lc_graph_backward, else NULL */
    lc_node *producer;         /* node whose dst this tensor is; NULL for leaves */
    lc_graph *graph;           /* owning graph, NULL for standalone tensors */
    int id;                    /* index within its graph, -1 for standalone */
} lc_tensor;

/* Number of elements (product of ne). */
int64_t lc_nelements(const lc_tensor *t);

/* Bytes spanned by a contiguous tensor: row_size(ne[0]) * ne[1] * ne[2] * ne[3]. */
size_t lc_nbytes(const lc_tensor *t);

/* Number of rows: ne[1] * ne[2] * ne[3]. */
int64_t lc_nrows(const lc_tensor *t);

/* True when nb are the packed strides for ne and dtype. */
bool lc_is_contiguous(const lc_tensor *t);

/* Fill dtype, ne (missing dims = 1) and packed nb of `t`; other fields untouched.
 * Errors: LC_ERR_DTYPE (unsupported dtype), LC_ERR_SHAPE (ne[i] < 1, ne[0] not a multiple of the
 * block size, or byte size overflow). */
lc_status lc_tensor_layout(lc_tensor *t, lc_dtype dtype, int ndims, const int64_t *ne);

/* Standalone tensor with its own device buffer (weights, LoRA parameters, optimizer state).
 * `ndims` in 1..4, ne in ne order; `name` may be NULL. Contents are zero.
 * Errors: as lc_tensor_layout; LC_ERR_DEVICE_NOMEM; LC_ERR_NOMEM. */
lc_status lc_tensor_new(lc_device *dev, lc_dtype dtype, int ndims, const int64_t *ne,
                        const char *name, uint32_t flags, lc_tensor **out);

/* Non-owning view of `base`'s memory: a new standalone tensor with base's dtype, `ndims` (1..4)
 * dimensions `ne` (ne order, packed strides) starting `offset` bytes after base's first byte. It
 * shares base's device buffer (no copy, no allocation of device memory) and is freed with
 * lc_tensor_free, which releases only the view; free every view before its base. The view has
 * no flags, no gradient, no producer; it is a leaf that graph builders accept like any
 * standalone tensor (for example the columns of a KV cache that lc_cpy_into writes, or the first
 * n columns that attention reads). Typical use, F32 base [n0, n1]: columns [c0, c0+k) are
 * offset c0*nb[1], ne {n0, k}.
 * Errors: LC_ERR_INVALID_ARG (NULL base/ne/out, base without memory yet, offset not a multiple
 * of base's block size in bytes nb[0], or the range [offset, offset + view bytes) past base's
 * lc_nbytes, naming base, the range and the size), errors of lc_tensor_layout, LC_ERR_NOMEM. */
lc_status lc_tensor_view(lc_tensor *base, size_t offset, int ndims, const int64_t *ne, lc_tensor **out);

/* Release a standalone tensor (and its buffer when it owns it). NULL is a no-op. Graph tensors
 * are released by lc_graph_free and must not be passed here. */
void lc_tensor_free(lc_tensor *t);

/* Copy `size` bytes from host `src` into the tensor's data starting `offset` bytes in.
 * Errors: LC_ERR_STATE (no buffer yet), LC_ERR_INVALID_ARG (range past the tensor), backend errors. */
lc_status lc_tensor_set(lc_tensor *t, const void *src, size_t offset, size_t size);
/* Copy `size` bytes of tensor data starting at `offset` into host `dst`. Errors as lc_tensor_set. */
lc_status lc_tensor_get(const lc_tensor *t, void *dst, size_t offset, size_t size);

/* Whole-tensor F32 transfer with conversion: set quantises/converts from F32 into the tensor's
 * dtype (lc_quantize_row), get dequantises into F32. `n` must equal lc_nelements(t).
 * For I32 tensors use lc_tensor_set/get directly. */
lc_status lc_tensor_set_f32(lc_tensor *t, const float *src, int64_t n);
lc_status lc_tensor_get_f32(const lc_tensor *t, float *dst, int64_t n);

/* Set all bytes of the tensor to zero. */
lc_status lc_tensor_zero(lc_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
