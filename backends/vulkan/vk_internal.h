/* lorac Vulkan backend — internal interface shared by the plugin's source files.
 *
 * Files (one concept each):
 *   vk_backend.c    the lc_backend_iface table: enumeration, device_info, open/close, supports,
 *                   compute (records every node of a step into one command buffer), synchronize
 *   vk_device.c     instance (+ validation layer and debug messenger), physical device facts,
 *                   logical device, queue, memory type choice, VkResult -> lc_status
 *   vk_memory.c     buffers (device-local + staging, or mapped host-visible memory on UMA
 *                   devices such as lavapipe), upload/download/clear, per-op scratch
 *   vk_pipeline.c   embedded SPIR-V -> compute pipelines (created once, cached) and the
 *                   VkPipelineCache file under ~/.cache/lorac/vulkan
 *   vk_record.c     batches (command buffer + fence + descriptor pools), hazard tracking with
 *                   memory barriers, the dispatch helper
 *   vk_gemm.c       products C = alpha·A·Bᵀ + beta·C for every product op and the gemm entry
 *                   (operand packing, register-blocked texel kernel, shared-memory tiled kernel,
 *                   chunking for binding limits)
 *   vk_ops_*.c      one file per op family: what each node of lorac/graph.h records
 *
 * Conventions: every lc_status error goes through lc_error and names the op or Vulkan call, the
 * VkResult and the device ("vulkan:0 (llvmpipe ...)"). Tensors reach kernels as (buffer, byte
 * offset) pairs; storage-buffer bindings start at the offset rounded down to the device's
 * minStorageBufferOffsetAlignment and the remainder travels in push constants.
 */
#ifndef LORAC_VK_INTERNAL_H
#define LORAC_VK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vulkan/vulkan.h>

#include "lorac/backend.h"
#include "lorac/dtype.h"
#include "lorac/graph.h"
#include "lorac/status.h"
#include "lorac/tensor.h"

#define VK_EXPORT __attribute__((visibility("default")))

/* ---- pipelines ------------------------------------------------------------------------------ */

/* X(id, shader file stem, binding signature): one character per binding of set 0, 'S' = storage
 * buffer, 'T' = uniform texel buffer (R32G32B32A32_SFLOAT view). */
#define VK_PIPE_LIST(X)                                    \
    X(FILL, "fill", "S")                                   \
    X(CONVERT, "convert", "SS")                            \
    X(GET_ROWS, "get_rows", "SSSS")                        \
    X(GET_ROWS_BACK, "get_rows_back", "SSSS")              \
    X(SUM_SQ, "sum_sq", "SS")                              \
    X(SUM_PARTIALS, "sum_partials", "SS")                  \
    X(ADAMW, "adamw", "SSSS")                              \
    X(BINARY, "binary", "SSS")                             \
    X(BCAST_REDUCE, "bcast_reduce", "SSS")                 \
    X(UNARY, "unary", "SSS")                               \
    X(GLU, "glu", "SSSSS")                                 \
    X(RMS_NORM, "rms_norm", "SSSSS")                       \
    X(RMS_NORM_F64, "rms_norm_f64", "SSSSS")               \
    X(RMS_NORM_DW, "rms_norm_dw", "SSSS")                  \
    X(ROPE, "rope", "SSSS")                                \
    X(ATTENTION_SOFTMAX, "attention_softmax", "SS")       \
    X(ATTENTION_SOFTMAX_BACK, "attention_softmax_back", "SSSSS") \
    X(CROSS_ENTROPY, "cross_entropy", "SSSS")              \
    X(CROSS_ENTROPY_LOSS, "cross_entropy_loss", "SSS")     \
    X(CROSS_ENTROPY_BACK, "cross_entropy_back", "SSSSS")   \
    X(DROPOUT, "dropout", "SS")                            \
    X(GEMM_PACK, "gemm_pack", "SS")                        \
    X(GEMM_PACK_Q, "gemm_pack_q", "SS")                    \
    X(GEMM_NT_TEXEL, "gemm_nt", "TTS")                     \
    X(GEMM_NT_SSBO, "gemm_nt_ssbo", "SSS")                 \
    X(GEMM_TILED, "gemm_tiled", "SSS")

typedef enum vk_pipe_id {
#define VK_X_PIPE(id, file, sig) VK_PIPE_##id,
    VK_PIPE_LIST(VK_X_PIPE)
#undef VK_X_PIPE
    VK_PIPE_COUNT
} vk_pipe_id;

/* Specialisation constants of one pipeline variant (constant_id i = values[i]). */
#define VK_MAX_SPEC 8
typedef struct vk_spec {
    int n;
    uint32_t values[VK_MAX_SPEC];
} vk_spec;

#define VK_MAX_VARIANTS 32
#define VK_MAX_BINDINGS 8
#define VK_PUSH_BYTES 128

typedef struct vk_pipeline {
    vk_spec spec;
    VkPipeline pipeline;
} vk_pipeline;

/* ---- memory --------------------------------------------------------------------------------- */

typedef struct vk_buf {
    VkBuffer buffer;
    VkDeviceMemory memory;
    VkDeviceSize size;   /* bytes usable (>= the size asked for, a multiple of 16) */
    void *mapped;        /* host pointer when the memory is host-visible (UMA devices, staging) */
    uint64_t id;         /* unique per context, for hazard tracking */
} vk_buf;

/* ---- batches (one command buffer each) ------------------------------------------------------- */

#define VK_MAX_BATCHES 3

typedef struct vk_batch {
    VkCommandBuffer cb;
    VkFence fence;
    bool recording;
    bool in_flight;
    VkDescriptorPool *pools;
    int n_pools, cap_pools, cur_pool;
    VkBufferView *views;
    int n_views, cap_views;
    vk_buf **retired;    /* freed once the batch's fence signals */
    int n_retired, cap_retired;
    int n_dispatches;
    VkQueryPool queries;  /* LORAC_VULKAN_PROFILE: two timestamps per dispatch */
    int n_queries;
    vk_pipe_id *query_pipe;
    int *query_op;        /* lc_op of the node that recorded the dispatch */
} vk_batch;

#define VK_PROFILE_QUERIES 16384

/* A buffer range touched by a recorded command since the last barrier. */
typedef struct vk_access {
    uint64_t buf_id;
    VkDeviceSize off, size;
    bool write;
} vk_access;

/* ---- the device context ------------------------------------------------------------------ */

typedef struct vk_ctx {
    int index;
    char label[200];     /* "vulkan:0 (llvmpipe (LLVM 15.0.6, 256 bits))" for messages */
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    bool validation;
    VkPhysicalDevice pdev;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memprops;
    uint8_t device_uuid[VK_UUID_SIZE];
    uint32_t driver_id;
    char driver_name[VK_MAX_DRIVER_NAME_SIZE];
    char driver_info[VK_MAX_DRIVER_INFO_SIZE];
    uint32_t subgroup_size;
    bool subgroup_arith;   /* subgroupAdd & co. in compute shaders */
    bool subgroup_ballot;  /* subgroupBroadcast in compute shaders */
    bool is_cpu;
    bool has_f64;          /* shaderFloat64 enabled */
    uint32_t cpu_groups;   /* most workgroups per element-wise dispatch on CPU devices */
    uint32_t loop_cap;     /* loop iterations one invocation may run: llvmpipe ends a shader
                              invocation after 65535 in total (LP_MAX_TGSI_LOOP_ITERATIONS,
                              shared by every loop); kernels split their work to stay below */
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    uint32_t mem_device;   /* memory type for lorac buffers */
    uint32_t mem_staging;  /* host-visible coherent type for staging (discrete devices) */
    bool unified;          /* lorac buffers are host-visible and mapped: no staging */
    VkDeviceSize max_binding;   /* maxStorageBufferRange */
    VkDeviceSize ssbo_align;    /* minStorageBufferOffsetAlignment */
    VkDeviceSize texel_align;   /* minTexelBufferOffsetAlignment */
    uint32_t max_texels;        /* maxTexelBufferElements */
    uint32_t max_wg_count[3];
    VkDeviceSize max_alloc;
    bool push_descriptors;
    PFN_vkCmdPushDescriptorSetKHR cmd_push_descriptor_set;

    /* pipelines */
    VkDescriptorSetLayout set_layouts[VK_PIPE_COUNT];
    VkPipelineLayout layouts[VK_PIPE_COUNT];
    VkShaderModule modules[VK_PIPE_COUNT];
    vk_pipeline variants[VK_PIPE_COUNT][VK_MAX_VARIANTS];
    int n_variants[VK_PIPE_COUNT];
    VkPipelineCache pcache;
    char pcache_path[1024];
    size_t pcache_loaded_bytes;
    int pipelines_created;

    /* command recording */
    VkCommandPool cmd_pool;
    vk_batch batches[VK_MAX_BATCHES];
    int cur;             /* recording batch, -1 when none */
    int next;            /* next batch to use */
    vk_access *acc;      /* accesses since the last barrier */
    int n_acc, cap_acc;
    uint64_t next_buf_id;
    lc_status sticky;    /* first error of the batch being recorded */

    /* memory helpers */
    vk_buf *staging;     /* discrete devices: host-visible transfer buffer */
    vk_buf *zero;        /* small zero-filled buffer for odd-sized clears */
    vk_buf *scratch;     /* per-op temporaries (bump allocated, reset per op) */
    VkDeviceSize scratch_used;
    vk_buf *flags;       /* error flags kernels set (bit 0: get_rows id, bit 1: get_rows_back id) */
    bool flags_armed;    /* a kernel that may set flags was recorded since the last check */

    /* LORAC_VULKAN_PROFILE=1: GPU time per pipeline, printed at close */
    bool profile;
    double timestamp_ns;   /* nanoseconds per timestamp tick */
    double prof_ns[VK_PIPE_COUNT];
    long prof_count[VK_PIPE_COUNT];
    int cur_op;            /* lc_op being recorded (LC_OP_NONE outside compute) */
    double prof_op_ns[LC_OP_COUNT][VK_PIPE_COUNT];  /* the same split by graph op */
    long prof_op_count[LC_OP_COUNT][VK_PIPE_COUNT];

    /* product kernel choice */
    int gemm_kind;       /* VK_GEMM_TEXEL, VK_GEMM_SSBO or VK_GEMM_TILED */
    int gemm_tm, gemm_tn, gemm_wg; /* register block and workgroup of the direct kernels */
    int tile_wg;         /* workgroup side of the shared-memory kernel (16 or 8) */
} vk_ctx;

enum { VK_GEMM_TEXEL = 0, VK_GEMM_SSBO = 1, VK_GEMM_TILED = 2 };

/* ---- vk_device.c ------------------------------------------------------------------------- */

/* Name of a VkResult ("VK_ERROR_DEVICE_LOST"). */
const char *vk_result_name(VkResult r);
/* lc_error for a failed Vulkan call: LC_ERR_DEVICE_NOMEM for out-of-memory results,
 * LC_ERR_BACKEND otherwise; the message names `call`, the VkResult and the device. */
lc_status vk_fail(const vk_ctx *c, VkResult r, const char *call);
/* Instance for enumeration (no validation) or for a device (validation when requested). */
lc_status vk_instance_create(bool for_device, VkInstance *out, bool *validation, VkDebugUtilsMessengerEXT *msgr);
void vk_instance_destroy(VkInstance inst, VkDebugUtilsMessengerEXT msgr);
/* Physical devices usable by lorac (Vulkan >= 1.1 with a compute queue), in driver order. */
lc_status vk_list_physical(VkInstance inst, VkPhysicalDevice *out, int max, int *count);
/* Fill the device facts of c (props, subgroup, memory types) and create device + queue. */
lc_status vk_device_create(vk_ctx *c);
void vk_device_destroy(vk_ctx *c);
/* Validation messages counted since the process loaded the plugin. */
extern int vk_validation_errors;
extern int vk_validation_warnings;

/* ---- vk_memory.c ------------------------------------------------------------------------- */

lc_status vk_buf_create(vk_ctx *c, VkDeviceSize size, bool staging, vk_buf **out);
void vk_buf_destroy(vk_ctx *c, vk_buf *b);
/* Free now if no recorded or in-flight batch may use it, else when its batch completes. */
void vk_buf_release(vk_ctx *c, vk_buf *b);
lc_status vk_upload(vk_ctx *c, vk_buf *b, size_t off, const void *src, size_t size);
lc_status vk_download(vk_ctx *c, vk_buf *b, size_t off, void *dst, size_t size);
lc_status vk_clear(vk_ctx *c, vk_buf *b, size_t off, size_t size);
/* Scratch range of `size` bytes (16-byte aligned) valid until vk_scratch_reset. The returned
 * buffer may change between calls when the scratch grows (the old one is retired). */
lc_status vk_scratch(vk_ctx *c, VkDeviceSize size, vk_buf **buf, VkDeviceSize *off);
void vk_scratch_reset(vk_ctx *c);

/* ---- vk_pipeline.c ----------------------------------------------------------------------- */

lc_status vk_pipelines_init(vk_ctx *c);
void vk_pipelines_destroy(vk_ctx *c);
/* The pipeline of `id` with specialisation `spec` (NULL: none), created on first use. */
lc_status vk_pipeline_get(vk_ctx *c, vk_pipe_id id, const vk_spec *spec, VkPipeline *out);
const char *vk_pipe_name(vk_pipe_id id);
const char *vk_pipe_signature(vk_pipe_id id);

/* ---- vk_record.c ------------------------------------------------------------------------- */

/* One binding of a dispatch: a buffer range. For 'S' bindings `off` must be a multiple of
 * ssbo_align; for 'T' bindings of texel_align and the range a multiple of 16. The hazard range
 * (what the kernel actually reads or writes) is [hz_off, hz_off + hz_size). */
typedef struct vk_bind {
    vk_buf *buf;
    VkDeviceSize off, range;
    VkDeviceSize hz_off, hz_size;
    bool write;
} vk_bind;

lc_status vk_record_init(vk_ctx *c);
void vk_record_destroy(vk_ctx *c);
/* Begin recording if not already. */
lc_status vk_begin(vk_ctx *c);
/* End and submit the recording batch (no wait). No-op when nothing is recorded. */
lc_status vk_submit(vk_ctx *c);
/* Submit what is recorded and wait for every batch in flight. */
lc_status vk_finish(vk_ctx *c);
/* Record one dispatch of `pipe` (specialisation `spec`, may be NULL) over groups gx*gy*gz with
 * the given bindings (in signature order) and push constants. Inserts a memory barrier first
 * when a binding overlaps a range written (or, for writes, read) since the last barrier. */
lc_status vk_dispatch(vk_ctx *c, vk_pipe_id pipe, const vk_spec *spec, const vk_bind *binds, int n_binds,
                      const void *push, size_t push_size, uint32_t gx, uint32_t gy, uint32_t gz);
/* Hazard bookkeeping for transfer commands recorded by vk_memory.c. */
void vk_hazard(vk_ctx *c, const vk_buf *b, VkDeviceSize off, VkDeviceSize size, bool write);
/* Current command buffer (recording). */
VkCommandBuffer vk_cmd(vk_ctx *c);
/* Keep `b` alive until the recording batch completes, then free it. */
lc_status vk_retire(vk_ctx *c, vk_buf *b);
/* Workgroup count for n items of `per` each, clamped to the device limit (kernels loop). */
uint32_t vk_groups(const vk_ctx *c, uint64_t n, uint32_t per);

/* ---- tensors as bindings ------------------------------------------------------------------ */

/* Bind tensor `t` (whole span) for a kernel that addresses it in units of `unit` bytes (4 for
 * F32/I32/uint-addressed data): fills *b and returns in *elem the tensor's first unit relative
 * to the binding start (for quantized/half data addressed in bytes, *elem is in bytes when
 * unit == 1). Errors: LC_ERR_STATE (no buffer), LC_ERR_UNSUPPORTED (span past maxStorageBufferRange),
 * LC_ERR_INVALID_ARG (offset not a multiple of the unit). */
lc_status vk_bind_tensor(vk_ctx *c, const lc_tensor *t, bool write, const char *op, const char *what, vk_bind *b,
                         uint32_t *elem, uint32_t unit);
/* Bind the device's error-flag word (created on first use) and arm the check in synchronize. */
lc_status vk_bind_flags(vk_ctx *c, vk_bind *b);
/* Read, clear and report the error flags: LC_ERR_INVALID_ARG naming the op when one is set. */
lc_status vk_check_flags(vk_ctx *c);
/* Same for an explicit byte range of a buffer. */
lc_status vk_bind_range(vk_ctx *c, vk_buf *buf, VkDeviceSize off, VkDeviceSize size, bool write, const char *op,
                        vk_bind *b, uint32_t *elem, uint32_t unit);
/* Bytes a contiguous tensor spans (lc_nbytes, or from nb for padded rows). */
VkDeviceSize vk_tensor_span(const lc_tensor *t);
static inline vk_buf *vk_tbuf(const lc_tensor *t) { return (vk_buf *)t->buffer->impl; }

/* ---- dtypes -------------------------------------------------------------------------------- */

/* Weight dtypes the kernels dequantise (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
 * Q5_K, Q6_K): bytes per block and elements per block, false for others. */
bool vk_dtype_block(int dtype, uint32_t *block_elems, uint32_t *block_bytes);

/* ---- vk_gemm.c ------------------------------------------------------------------------------ */

/* One operand of a product: a row-major matrix in a buffer. Logically it is [rows][k] for A and
 * B alike (the product is C = A · Bᵀ in that view); `trans` says the storage is the transpose
 * ([k][rows], read k-major by the kernels, never transposed). F32 operands give ld in elements;
 * other dtypes give the storage row stride in bytes, with their blocks along the storage rows.
 * Dropout (p > 0) multiplies stored element (r, c) by keep(seed, stream, r * drop_cols + c, p) /
 * (1 - p), the LoRA mask of lorac/graph.h. */
typedef struct vk_operand {
    vk_buf *buf;
    VkDeviceSize off;    /* bytes */
    int dtype;
    bool trans;          /* storage is [k][rows] */
    uint32_t ld;         /* F32: elements between rows of the storage; quantized: bytes */
    float drop_p;
    uint64_t drop_seed, drop_stream;
    uint32_t drop_cols;
} vk_operand;

/* C[m][n] (row-major, ldc elements, F32 / F16 / BF16 by c_dtype) = alpha · A · Bᵀ + beta · C,
 * A logical [m][k], B logical [n][k]. */
lc_status vk_gemm_record(vk_ctx *c, int m, int n, int k, float alpha, const vk_operand *a, const vk_operand *b,
                         float beta, vk_buf *cbuf, VkDeviceSize c_off, uint32_t ldc, int c_dtype, const char *op);
/* Pick the product kernel and its tiles for the device (env LORAC_VULKAN_GEMM overrides). */
void vk_gemm_choose(vk_ctx *c);

/* ---- ops ------------------------------------------------------------------------------------ */

typedef lc_status (*vk_op_fn)(vk_ctx *c, const lc_node *node);
#define VK_OP_DECL(name) lc_status vk_op_##name(vk_ctx *c, const lc_node *node);
/* vk_ops_misc.c */
VK_OP_DECL(fill) VK_OP_DECL(get_rows) VK_OP_DECL(get_rows_back) VK_OP_DECL(dequantize) VK_OP_DECL(cpy)
VK_OP_DECL(sum_sq) VK_OP_DECL(adamw)
/* vk_ops_matmul.c */
VK_OP_DECL(mul_mat) VK_OP_DECL(mul_mat_back) VK_OP_DECL(lora) VK_OP_DECL(lora_back) VK_OP_DECL(lora_merge)
/* vk_ops_elementwise.c */
VK_OP_DECL(add) VK_OP_DECL(add_back) VK_OP_DECL(mul) VK_OP_DECL(mul_back) VK_OP_DECL(scale)
VK_OP_DECL(scale_back) VK_OP_DECL(gelu_tanh) VK_OP_DECL(gelu_tanh_back) VK_OP_DECL(silu) VK_OP_DECL(silu_back)
VK_OP_DECL(geglu) VK_OP_DECL(geglu_back) VK_OP_DECL(swiglu) VK_OP_DECL(swiglu_back)
/* vk_ops_norm_rope.c */
VK_OP_DECL(rms_norm) VK_OP_DECL(rms_norm_back) VK_OP_DECL(rope) VK_OP_DECL(rope_back)
/* vk_ops_attention.c */
VK_OP_DECL(attention) VK_OP_DECL(attention_back)
/* vk_ops_loss.c */
VK_OP_DECL(cross_entropy) VK_OP_DECL(cross_entropy_back)
#undef VK_OP_DECL

/* vk_ops_elementwise.c: reduce partial sums part[chunks][m] (a scratch range, F32) over the chunks
 * in order into `out` [m] (a binding with element offset out_off), adding to it when accum.
 * Levels of at most VK_REDUCE_GROUP chunks keep every invocation's loop short. */
#define VK_REDUCE_GROUP 2048
lc_status vk_reduce_partials(vk_ctx *c, vk_buf *part, VkDeviceSize part_off, uint32_t m, uint32_t chunks,
                             const vk_bind *out, uint32_t out_off, bool accum, const char *op);

/* Shared checks for op files: a present, allocated tensor of dtype `dt` whose rows are packed
 * (nb[1] = row size, dims 2 and 3 packed); error names op and field. */
lc_status vk_need(const lc_tensor *t, int dt, const char *op, const char *field);
/* As vk_need and the same ne as `like`. */
lc_status vk_need_like(const lc_tensor *t, const lc_tensor *like, const char *op, const char *field);
static inline int64_t vk_nel(const lc_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }
static inline int64_t vk_rows(const lc_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

#endif
