/* lorac OpenCL backend — internal interface shared by the plugin's files.
 *
 * ocl_backend.c   the lc_backend_iface table: enumeration, device info, open/close, buffers,
 *                 supports, compute/run, synchronize, the gemm entry
 * ocl_launch.c    kernel arguments and launches, scratch buffers, rope frequency tables
 * ocl_tensor.c    tensor checks and matrix views for the op dispatchers
 * ocl_error.c     OpenCL / CLBlast error names and their mapping to lc_status
 * ocl_program.c   program builds with the on-disk binary cache
 * ocl_gemm.c      matrix products: the own tiled kernel and CLBlast, chosen per shape class
 * ocl_ops_*.c     one dispatcher per op of lorac/graph.h (ocl_op_<name>)
 * kernels/NAME.cl OpenCL C 1.2 sources, embedded at build time by embed_cl.cmake
 *
 * Everything runs on one in-order command queue per device: nodes are enqueued back to back and
 * ocl_sync (clFinish) waits. Tensor data is addressed as (cl_mem, byte offset): a tensor's
 * buffer impl is its cl_mem, and kernels add the offset themselves.
 */
#ifndef LORAC_OCL_INTERNAL_H
#define LORAC_OCL_INTERNAL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/backend.h"
#include "lorac/dtype.h"
#include "lorac/graph.h"
#include "lorac/status.h"
#include "lorac/tensor.h"

/* Type ids that dtype.h may not name yet in every tree (ggml ids, reference/formats.md §1). */
#define OCL_DT_Q4_1 3
#define OCL_DT_Q5_0 6
#define OCL_DT_Q5_1 7
#define OCL_DT_Q5_K 13

/* Kernels of the "ops" program, by function name. */
#define OCL_KERNEL_LIST(X)                                                                        \
    X(fill_f32) X(fill_2d_f32) X(binary_f32) X(binary_back_a) X(binary_back_b) X(unary_f32) X(unary_back_f32)    \
    X(glu_f32) X(glu_back_f32) X(rms_norm_f32) X(rms_norm_back_f32) X(rms_norm_back_dw_f32)       \
    X(rope_f32) X(attn_softmax) X(attn_ds) X(ce_rows) X(ce_loss) X(ce_coef) X(ce_back_rows)       \
    X(get_rows) X(get_rows_back) X(dequantize_rows) X(cpy_convert) X(sum_sq_part) X(sum_sq_final) \
    X(adamw_f32) X(lora_dropout) X(lora_dropout_dx) X(lora_merge_half)

typedef enum ocl_kid {
#define OCL_X_KID(name) OCL_K_##name,
    OCL_KERNEL_LIST(OCL_X_KID)
#undef OCL_X_KID
    OCL_K_COUNT
} ocl_kid;

/* Weight dtypes the product kernels decode: (slot name, lorac dtype id, element expression). */
#define OCL_WTYPE_LIST(X)                                                          \
    X(f32, 0, "(((global const float *)(row))[(c)])")                              \
    X(f16, 1, "lc_f16((row) + 2u * (c))")                                          \
    X(bf16, 30, "lc_bf16((row) + 2u * (c))")                                       \
    X(q4_0, 2, "lc_deq_q4_0((row) + 18u * ((c) >> 5), (c) & 31u)")                \
    X(q4_1, 3, "lc_deq_q4_1((row) + 20u * ((c) >> 5), (c) & 31u)")                \
    X(q5_0, 6, "lc_deq_q5_0((row) + 22u * ((c) >> 5), (c) & 31u)")                \
    X(q5_1, 7, "lc_deq_q5_1((row) + 24u * ((c) >> 5), (c) & 31u)")                \
    X(q8_0, 8, "lc_deq_q8_0((row) + 34u * ((c) >> 5), (c) & 31u)")                \
    X(q4_K, 12, "lc_deq_q4_K((row) + 144u * ((c) >> 8), (c) & 255u)")             \
    X(q5_K, 13, "lc_deq_q5_K((row) + 176u * ((c) >> 8), (c) & 255u)")             \
    X(q6_K, 14, "lc_deq_q6_K((row) + 210u * ((c) >> 8), (c) & 255u)")

typedef enum ocl_wslot {
#define OCL_X_WSLOT(name, id, expr) OCL_W_##name,
    OCL_WTYPE_LIST(OCL_X_WSLOT)
#undef OCL_X_WSLOT
    OCL_W_COUNT
} ocl_wslot;

/* Slot of a weight dtype, -1 when the product kernels cannot decode it. */
int ocl_wslot_of(int dtype);

/* Scratch buffers, grown on demand; one per purpose so a node can hold several at once. */
enum { OCL_SCR_H, OCL_SCR_U, OCL_SCR_DU, OCL_SCR_S0, OCL_SCR_S1, OCL_SCR_RED, OCL_SCR_GEMM, OCL_SCR_PACK, OCL_SCR_TMP, OCL_SCR_COUNT };

/* Geometry of the own GEMM kernel (see kernels/gemm.cl). */
typedef struct ocl_gemm_cfg {
    int tm, tn, tk, rm, rn;
} ocl_gemm_cfg;

/* Geometry of the CPU-device kernels (see kernels/gemm_cpu.cl). */
typedef struct ocl_gemm_cpu_cfg {
    int vw, rm, nv, dm, dn; /* vector width; bc block GC_RM x GC_NV vectors; dot block GC_DM x GC_DN */
    int kc, wx, wy;         /* k chunk; work-group GC_WX x GC_WY items */
} ocl_gemm_cpu_cfg;

#define OCL_GEMM_CLASSES 256
#define OCL_ROPE_CACHE 8

typedef struct ocl_ctx {
    int index;
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    cl_program prog_ops, prog_gemm;
    cl_kernel k[OCL_K_COUNT];
    size_t kwg[OCL_K_COUNT];     /* CL_KERNEL_WORK_GROUP_SIZE of each kernel */
    cl_kernel gemm[OCL_W_COUNT];
    cl_kernel gemm_bc, gemm_dot, gemm_pack, gemm_tacc; /* kernels/gemm_cpu.cl */
    ocl_gemm_cfg gcfg;
    ocl_gemm_cpu_cfg ccfg;
    bool gemm_direct;            /* own products use the CPU-device kernels (no local memory) */
    char name[128];              /* device name, for messages */
    char spec[24];               /* "opencl:N", N up to 10 digits */
    char key[512];               /* platform/device/driver identity, part of every cache key */
    size_t max_wg;
    size_t max_items[3];         /* CL_DEVICE_MAX_WORK_ITEM_SIZES */
    cl_ulong max_alloc, global_mem, local_mem;
    bool has_fma, is_cpu;
    cl_mem err_buf;              /* 4 ints written by kernels that meet bad input (get_rows ids) */
    cl_mem scr[OCL_SCR_COUNT];
    size_t scr_size[OCL_SCR_COUNT];
    struct { float base; int n_rot; cl_mem mem; } rope[OCL_ROPE_CACHE];
    int n_rope;
    /* GEMM choice per shape class: 0 unknown, 1 own kernel, 2 CLBlast. */
    signed char gemm_choice[OCL_GEMM_CLASSES];
    int gemm_force;              /* 0 auto, 1 own, 2 CLBlast ($LORAC_OPENCL_GEMM) */
    char cache_dir[PATH_MAX];    /* "" when there is no usable cache directory */
    bool verbose;                /* $LORAC_OPENCL_VERBOSE: log cache hits and GEMM choices */
    bool profile;                /* $LORAC_OPENCL_PROFILE: wait for and time every kernel (stderr) */
} ocl_ctx;

/* ---- errors (ocl_error.c) ---------------------------------------------------------------- */
const char *ocl_err_name(cl_int err);
const char *ocl_clblast_err_name(int status);
/* lc_status for an OpenCL error: allocation failures -> LC_ERR_DEVICE_NOMEM, host allocation
 * failures -> LC_ERR_NOMEM, everything else LC_ERR_BACKEND. */
lc_status ocl_status_of(cl_int err);
/* Record "opencl <what>: <CL error name> (<code>) on <spec> '<device>'" and return its status. */
lc_status ocl_fail(const ocl_ctx *c, cl_int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- programs (ocl_program.c) ------------------------------------------------------------ */
/* Build `label` from nsrc source strings with `options`, through the on-disk binary cache
 * (ocl_cache_dir). Errors: LC_ERR_BACKEND with the build log's start, LC_ERR_NOMEM. */
lc_status ocl_build_program(ocl_ctx *c, const char *label, const char *const *srcs, int nsrc,
                            const char *options, cl_program *out);
/* Directory for cached binaries and GEMM choices: $LORAC_OPENCL_CACHE_DIR, else
 * $XDG_CACHE_HOME/lorac/opencl, else $HOME/.cache/lorac/opencl; created if needed. Writes "" when
 * none is usable. */
void ocl_cache_dir(char *out, size_t cap);
/* 64-bit FNV-1a over `n` bytes, continuing from h (start with OCL_FNV_INIT). */
#define OCL_FNV_INIT 0xcbf29ce484222325ull
uint64_t ocl_fnv(uint64_t h, const void *data, size_t n);
/* Write `size` bytes to `path` atomically (temporary file + rename); false on failure. */
bool ocl_write_file_atomic(const char *path, const void *data, size_t size);

/* ---- launching (ocl_launch.c) ------------------------------------------------------------- */
double ocl_now(void); /* monotonic seconds */
typedef struct ocl_args {
    ocl_ctx *c;
    int kid;     /* ocl_kid, or -1 for a GEMM kernel */
    cl_kernel k;
    const char *name;
    cl_uint n;
    cl_int err;
    cl_uint bad; /* index of the argument that failed */
} ocl_args;

void oa_begin(ocl_args *a, ocl_ctx *c, ocl_kid kid);
void oa_mem(ocl_args *a, cl_mem m);
void oa_u64(ocl_args *a, uint64_t v);
void oa_u32(ocl_args *a, uint32_t v);
void oa_i32(ocl_args *a, int32_t v);
void oa_f32(ocl_args *a, float v);
void oa_local(ocl_args *a, size_t bytes);
/* Enqueue with dims 1..3, global sizes rounded up to multiples of lws (lws may not be NULL). */
lc_status ocl_launch(ocl_args *a, cl_uint dims, const size_t *gws, const size_t *lws);
/* One work-item per element of n (padded), work-group chosen by the kernel's limit. */
lc_status ocl_launch_1d(ocl_args *a, size_t n);
/* ngroups work-groups of wg items along dimension 0. */
lc_status ocl_launch_groups(ocl_args *a, size_t ngroups, size_t wg);
/* Power-of-two work-group size for a reduction over `len` elements with kernel kid. */
size_t ocl_red_wg(const ocl_ctx *c, ocl_kid kid, size_t len);

/* Scratch buffer `slot` of at least `bytes` bytes (grown; contents undefined). */
lc_status ocl_scratch(ocl_ctx *c, int slot, size_t bytes, cl_mem *out);
/* Zero `bytes` bytes at `off` of mem, enqueued (ocl_backend.c). */
lc_status ocl_fill_zero(ocl_ctx *c, cl_mem mem, size_t off, size_t bytes);
/* Device buffer with the rope frequencies powf(base, -2.0f*i/n_rot), i < n_rot/2 (cached). */
lc_status ocl_rope_freqs(ocl_ctx *c, float base, int n_rot, cl_mem *out);

/* ---- tensor checks (ocl_tensor.c) --------------------------------------------------------- */
static inline cl_mem ocl_mem(const lc_tensor *t) { return (cl_mem)t->buffer->impl; }
int64_t ocl_nel(const lc_tensor *t);
bool ocl_same_ne(const lc_tensor *a, const lc_tensor *b);
/* t present, allocated, of dtype `dt` (any dtype when dt < 0) and packed (contiguous). */
lc_status ocl_need(const lc_node *node, const lc_tensor *t, const char *field, int dt);
/* ocl_need(F32) plus the same ne as `like`. */
lc_status ocl_need_like(const lc_node *node, const lc_tensor *t, const char *field, const lc_tensor *like);

/* A tensor seen as a row-major matrix [rows][cols] with row stride nb1 bytes (dims 2, 3 packed
 * after dim 1; rows may be padded). */
typedef struct ocl_mat {
    cl_mem mem;
    size_t off;     /* bytes */
    int64_t rows, cols;
    size_t nb1;     /* bytes between rows */
    lc_dtype dtype;
} ocl_mat;
lc_status ocl_view(const lc_node *node, const lc_tensor *t, const char *field, bool f32_only, ocl_mat *v);

/* ---- GEMM (ocl_gemm.c) -------------------------------------------------------------------- */
/* F32 operand: element (r, c) of the stored matrix is at off + (r*ld + c)*4 bytes. */
typedef struct ocl_fop {
    cl_mem mem;
    size_t off;     /* bytes, multiple of 4 */
    size_t ld;      /* floats */
    bool trans;     /* A: op(A) = Aᵀ */
} ocl_fop;

/* Weight operand: rows of `dtype`, row stride nb1 bytes. op(B)[k,n] = W(k,n), or W(n,k) when trans. */
typedef struct ocl_wop {
    cl_mem mem;
    size_t off;     /* bytes */
    size_t nb1;     /* bytes */
    lc_dtype dtype;
    bool trans;
} ocl_wop;

/* Batch of products (see kernels/gemm.cl): nz = work-group layers, nz1 = heads per sequence;
 * per operand: s[0] sequence stride, s[1] head stride (A, C floats; B bytes), map = (mul, add,
 * div) giving the operand head from the head index zh. */
typedef struct ocl_batch {
    int nz, nz1;
    uint64_t sa[2], sb[2], sc[2];
    int mapa[3], mapb[3], mapc[3];
} ocl_batch;

lc_status ocl_gemm_init(ocl_ctx *c);   /* choices from disk, $LORAC_OPENCL_GEMM */
/* C[M,N] = alpha op(A) op(B) + beta C. `what` names the op in errors. batch NULL: one product,
 * F32 B may go to CLBlast when it measured faster for the shape class. */
lc_status ocl_gemm(ocl_ctx *c, const char *what, int m, int n, int k, float alpha, const ocl_fop *a,
                   const ocl_wop *b, float beta, const ocl_fop *cm, const ocl_batch *batch);
/* The vtable entry (lorac/backend.h), offsets in bytes. */
lc_status ocl_gemm_entry(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha, void *a,
                         size_t off_a, int lda, void *b, size_t off_b, int ldb, float beta, void *cbuf,
                         size_t off_c, int ldc);
/* Pick the tile geometry for the device, build the GEMM program (one kernel per weight dtype)
 * with `options` and create its kernels. Errors: as ocl_build_program. */
lc_status ocl_gemm_build(ocl_ctx *c, const char *options);

/* ---- ops (ocl_ops_*.c) --------------------------------------------------------------------- */
typedef lc_status (*ocl_op_fn)(ocl_ctx *c, const lc_node *node);
#define OCL_DECL(name) lc_status ocl_op_##name(ocl_ctx *c, const lc_node *node);
/* ocl_ops_elementwise.c */
OCL_DECL(fill) OCL_DECL(add) OCL_DECL(mul) OCL_DECL(add_back) OCL_DECL(mul_back) OCL_DECL(scale)
OCL_DECL(scale_back) OCL_DECL(gelu_tanh) OCL_DECL(gelu_tanh_back) OCL_DECL(silu) OCL_DECL(silu_back)
OCL_DECL(geglu) OCL_DECL(geglu_back) OCL_DECL(swiglu) OCL_DECL(swiglu_back)
/* ocl_ops_norm.c */
OCL_DECL(rms_norm) OCL_DECL(rms_norm_back) OCL_DECL(rope) OCL_DECL(rope_back)
/* ocl_ops_attention.c */
OCL_DECL(attention) OCL_DECL(attention_back)
/* ocl_ops_misc.c */
OCL_DECL(get_rows) OCL_DECL(get_rows_back) OCL_DECL(dequantize) OCL_DECL(cpy) OCL_DECL(sum_sq)
OCL_DECL(adamw) OCL_DECL(cross_entropy) OCL_DECL(cross_entropy_back)
/* ocl_ops_matmul.c */
OCL_DECL(mul_mat) OCL_DECL(mul_mat_back) OCL_DECL(lora) OCL_DECL(lora_back) OCL_DECL(lora_merge)
#undef OCL_DECL

/* Embedded kernel sources (generated by embed_cl.cmake into the build directory). */
#include "ocl_kernels_src.h"

#endif
