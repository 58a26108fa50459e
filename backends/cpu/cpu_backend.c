/* lorac CPU backend — the built-in device: host memory, OpenBLAS for GEMM, OpenMP for loops.
 *
 * One device ("cpu"). Buffers are 64-byte aligned, zeroed host allocations whose `impl` is the
 * host pointer itself (cpu_internal.h's LC_CPU_DATA relies on that). Nodes run synchronously,
 * one at a time, through a table indexed by lc_op that points at the lc_cpu_op_* kernels.
 * Threads: $LORAC_THREADS when it is a valid count (1..LC_CPU_MAX_THREADS), else the number of
 * online cores; OpenBLAS (openblas_set_num_threads) and every OpenMP kernel use that number.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cblas.h>

#include "cpu_internal.h"
#include "lorac/dtype.h"
#include "lorac/status.h"

#define LC_CPU_MAX_THREADS 4096
#define LC_CPU_ALIGN 64

/* ---- host facts --------------------------------------------------------------------------- */

static int cpu_online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > LC_CPU_MAX_THREADS ? LC_CPU_MAX_THREADS : n) : 1;
}

/* Threads the backend uses: $LORAC_THREADS when it is a whole number in 1..LC_CPU_MAX_THREADS,
 * else the online core count. */
static int cpu_thread_count(void) {
    const char *s = getenv("LORAC_THREADS");
    if (s && *s) {
        char *end = NULL;
        errno = 0;
        long v = strtol(s, &end, 10);
        while (end && isspace((unsigned char)*end)) end++;
        if (errno == 0 && end && *end == '\0' && v >= 1 && v <= LC_CPU_MAX_THREADS) return (int)v;
        fprintf(stderr, "lorac: ignoring LORAC_THREADS='%s' (need a whole number in 1..%d); using %d threads\n", s,
                LC_CPU_MAX_THREADS, cpu_online_cores());
    }
    return cpu_online_cores();
}

static uint64_t cpu_physical_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return (pages > 0 && page > 0) ? (uint64_t)pages * (uint64_t)page : 0;
}

/* Copy the value of the first "key : value" line of /proc/cpuinfo whose key is `key`. */
static bool cpuinfo_field(const char *key, char *out, size_t out_size) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return false;
    char line[512];
    size_t klen = strlen(key);
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) != 0) continue;
        const char *p = line + klen;
        while (*p == ' ' || *p == '\t') p++;
        if (*p != ':') continue;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        size_t n = strcspn(p, "\r\n");
        while (n > 0 && isspace((unsigned char)p[n - 1])) n--;
        if (n == 0) continue;
        snprintf(out, out_size, "%.*s", (int)n, p);
        found = true;
    }
    fclose(f);
    return found;
}

/* ---- enumeration ---------------------------------------------------------------------------- */

static int cpu_device_count(char *why, size_t why_size) {
    (void)why;
    (void)why_size;
    return 1;
}

static lc_status cpu_device_info(int index, lc_device_info *info) {
    if (!info) return lc_error(LC_ERR_INVALID_ARG, "cpu device_info: info is NULL");
    if (index != 0)
        return lc_error(LC_ERR_INVALID_ARG, "cpu device_info: device index %d out of range (the CPU backend has 1 device)",
                        index);
    memset(info, 0, sizeof *info);
    snprintf(info->spec, sizeof info->spec, "cpu");
    snprintf(info->backend, sizeof info->backend, "cpu");

    struct utsname un;
    bool have_uname = uname(&un) == 0;
    if (!cpuinfo_field("model name", info->name, sizeof info->name) &&
        !cpuinfo_field("Model", info->name, sizeof info->name))
        snprintf(info->name, sizeof info->name, "%s", have_uname ? un.machine : "unknown CPU");
    if (!cpuinfo_field("vendor_id", info->vendor, sizeof info->vendor) &&
        !cpuinfo_field("CPU implementer", info->vendor, sizeof info->vendor))
        snprintf(info->vendor, sizeof info->vendor, "unknown");

    const char *cfg = openblas_get_config();
    snprintf(info->driver, sizeof info->driver, "%s", cfg ? cfg : "OpenBLAS");
    snprintf(info->api_version, sizeof info->api_version, "OpenBLAS");
    info->memory_bytes = cpu_physical_memory();
    info->compute_units = cpu_online_cores();
    info->threads = cpu_thread_count();
    info->subgroup_size = 0;
    info->is_cpu = true;
    int par = openblas_get_parallel();
    snprintf(info->extra, sizeof info->extra, "OpenBLAS threading: %s; OpenMP kernels; %s",
             par == 0 ? "sequential" : par == 1 ? "pthreads" : par == 2 ? "OpenMP" : "unknown",
             have_uname ? un.machine : "unknown arch");
    return LC_OK;
}

/* ---- open / close --------------------------------------------------------------------------- */

static lc_status cpu_open(int index, void **ctx) {
    if (!ctx) return lc_error(LC_ERR_INVALID_ARG, "cpu open: ctx is NULL");
    *ctx = NULL;
    if (index != 0)
        return lc_error(LC_ERR_NO_DEVICE, "cpu open: device index %d out of range (the CPU backend has 1 device)", index);
    lc_cpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return lc_error(LC_ERR_NOMEM, "cpu open: out of host memory for the device context");
    c->n_threads = cpu_thread_count();
    openblas_set_num_threads(c->n_threads);
    *ctx = c;
    return LC_OK;
}

static void cpu_close(void *ctx) { free(ctx); }

/* ---- buffers -------------------------------------------------------------------------------- */

static lc_status cpu_buffer_alloc(void *ctx, size_t size, void **impl) {
    (void)ctx;
    if (!impl) return lc_error(LC_ERR_INVALID_ARG, "cpu buffer_alloc: impl is NULL");
    *impl = NULL;
    if (size > SIZE_MAX - LC_CPU_ALIGN)
        return lc_error(LC_ERR_DEVICE_NOMEM, "cpu buffer_alloc: %zu bytes is too large", size);
    size_t padded = (size + LC_CPU_ALIGN - 1) / LC_CPU_ALIGN * LC_CPU_ALIGN;
    if (padded == 0) padded = LC_CPU_ALIGN;
    void *p = aligned_alloc(LC_CPU_ALIGN, padded);
    if (!p) return lc_error(LC_ERR_DEVICE_NOMEM, "cpu buffer_alloc: could not allocate %zu bytes of host memory", size);
    memset(p, 0, padded);
    *impl = p;
    return LC_OK;
}

static void cpu_buffer_free(void *ctx, void *impl) {
    (void)ctx;
    free(impl);
}

static lc_status cpu_buffer_upload(void *ctx, void *impl, size_t offset, const void *src, size_t size) {
    (void)ctx;
    if (!impl || (!src && size))
        return lc_error(LC_ERR_INVALID_ARG, "cpu buffer_upload: %s is NULL", impl ? "src" : "buffer");
    if (size) memcpy((char *)impl + offset, src, size);
    return LC_OK;
}

static lc_status cpu_buffer_download(void *ctx, void *impl, size_t offset, void *dst, size_t size) {
    (void)ctx;
    if (!impl || (!dst && size))
        return lc_error(LC_ERR_INVALID_ARG, "cpu buffer_download: %s is NULL", impl ? "dst" : "buffer");
    if (size) memcpy(dst, (const char *)impl + offset, size);
    return LC_OK;
}

static lc_status cpu_buffer_clear(void *ctx, void *impl, size_t offset, size_t size) {
    (void)ctx;
    if (!impl) return lc_error(LC_ERR_INVALID_ARG, "cpu buffer_clear: buffer is NULL");
    if (size) memset((char *)impl + offset, 0, size);
    return LC_OK;
}

/* ---- kernels -------------------------------------------------------------------------------- */

static const lc_cpu_kernel_fn cpu_kernels[LC_OP_COUNT] = {
    [LC_OP_FILL] = lc_cpu_op_fill,
    [LC_OP_GET_ROWS] = lc_cpu_op_get_rows,
    [LC_OP_MUL_MAT] = lc_cpu_op_mul_mat,
    [LC_OP_LORA] = lc_cpu_op_lora,
    [LC_OP_ADD] = lc_cpu_op_add,
    [LC_OP_MUL] = lc_cpu_op_mul,
    [LC_OP_SCALE] = lc_cpu_op_scale,
    [LC_OP_RMS_NORM] = lc_cpu_op_rms_norm,
    [LC_OP_ROPE] = lc_cpu_op_rope,
    [LC_OP_ATTENTION] = lc_cpu_op_attention,
    [LC_OP_GELU_TANH] = lc_cpu_op_gelu_tanh,
    [LC_OP_SILU] = lc_cpu_op_silu,
    [LC_OP_GEGLU] = lc_cpu_op_geglu,
    [LC_OP_SWIGLU] = lc_cpu_op_swiglu,
    [LC_OP_CROSS_ENTROPY] = lc_cpu_op_cross_entropy,
    [LC_OP_DEQUANTIZE] = lc_cpu_op_dequantize,
    [LC_OP_CPY] = lc_cpu_op_cpy,
    [LC_OP_SUM_SQ] = lc_cpu_op_sum_sq,
    [LC_OP_ADAMW] = lc_cpu_op_adamw,
    [LC_OP_LORA_MERGE] = lc_cpu_op_lora_merge,
    [LC_OP_GET_ROWS_BACK] = lc_cpu_op_get_rows_back,
    [LC_OP_MUL_MAT_BACK] = lc_cpu_op_mul_mat_back,
    [LC_OP_LORA_BACK] = lc_cpu_op_lora_back,
    [LC_OP_ADD_BACK] = lc_cpu_op_add_back,
    [LC_OP_MUL_BACK] = lc_cpu_op_mul_back,
    [LC_OP_SCALE_BACK] = lc_cpu_op_scale_back,
    [LC_OP_RMS_NORM_BACK] = lc_cpu_op_rms_norm_back,
    [LC_OP_ROPE_BACK] = lc_cpu_op_rope_back,
    [LC_OP_ATTENTION_BACK] = lc_cpu_op_attention_back,
    [LC_OP_GELU_TANH_BACK] = lc_cpu_op_gelu_tanh_back,
    [LC_OP_SILU_BACK] = lc_cpu_op_silu_back,
    [LC_OP_GEGLU_BACK] = lc_cpu_op_geglu_back,
    [LC_OP_SWIGLU_BACK] = lc_cpu_op_swiglu_back,
    [LC_OP_CROSS_ENTROPY_BACK] = lc_cpu_op_cross_entropy_back,
};

/* ---- supports ------------------------------------------------------------------------------- */

/* Frozen weight dtypes the product ops read directly (dequantising tiles on the fly with
 * lc_dequantize_row, so every block type of lorac/dtype.h). */
static bool cpu_weight_dtype(lc_dtype t) {
    switch (t) {
    case LC_F32: case LC_F16: case LC_BF16: case LC_Q8_0: case LC_Q4_0: case LC_Q4_1: case LC_Q5_0:
    case LC_Q5_1: case LC_Q4_K: case LC_Q5_K: case LC_Q6_K:
        return true;
    default:
        return false;
    }
}

static bool cpu_supports(void *ctx, const lc_node *node) {
    (void)ctx;
    if (!node || (int)node->op <= (int)LC_OP_NONE || (int)node->op >= (int)LC_OP_COUNT) return false;
    if (!cpu_kernels[node->op]) return false;
    return lc_node_dtypes_ok(node, cpu_weight_dtype);
}

/* ---- run ------------------------------------------------------------------------------------ */

static lc_status cpu_run(void *ctx, const lc_node *node) {
    if (!ctx || !node) return lc_error(LC_ERR_INVALID_ARG, "cpu run: %s is NULL", ctx ? "node" : "device context");
    if ((int)node->op <= (int)LC_OP_NONE || (int)node->op >= (int)LC_OP_COUNT || !cpu_kernels[node->op])
        return lc_error(LC_ERR_UNSUPPORTED, "cpu run: node %d has unknown op %d", node->index, (int)node->op);
    for (int i = 0; i < LC_MAX_SRC + LC_MAX_DST; i++) {
        const lc_tensor *t = i < LC_MAX_SRC ? node->src[i] : node->dst[i - LC_MAX_SRC];
        if (t && (!t->buffer || !t->buffer->impl))
            return lc_error(LC_ERR_STATE, "cpu run: %s (node %d) %s[%d] '%s' has no memory (graph not planned?)",
                            lc_op_name(node->op), node->index, i < LC_MAX_SRC ? "src" : "dst",
                            i < LC_MAX_SRC ? i : i - LC_MAX_SRC, t->name);
    }
    return cpu_kernels[node->op]((lc_cpu_ctx *)ctx, node);
}

/* ---- gemm ----------------------------------------------------------------------------------- */

/* Row-major C = alpha op(A) op(B) + beta C with cblas_sgemm; offsets are bytes (multiples of 4),
 * ranges and leading dimensions were checked by lc_device_gemm. */
static lc_status cpu_gemm(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha, void *a,
                          size_t off_a, int lda, void *b, size_t off_b, int ldb, float beta, void *c,
                          size_t off_c, int ldc) {
    (void)ctx;
    if (!a || !b || !c) return lc_error(LC_ERR_INVALID_ARG, "cpu gemm: buffer %s is NULL", !a ? "A" : !b ? "B" : "C");
    if (off_a % sizeof(float) || off_b % sizeof(float) || off_c % sizeof(float))
        return lc_error(LC_ERR_INVALID_ARG, "cpu gemm: byte offsets (%zu, %zu, %zu) must be multiples of 4", off_a,
                        off_b, off_c);
    if (m < 0 || n < 0 || k < 0) return lc_error(LC_ERR_INVALID_ARG, "cpu gemm: negative size m=%d n=%d k=%d", m, n, k);
    if (m == 0 || n == 0) return LC_OK;
    const float *pa = (const float *)((const char *)a + off_a);
    const float *pb = (const float *)((const char *)b + off_b);
    float *pc = (float *)((char *)c + off_c);
    if (k == 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) pc[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * pc[(size_t)i * ldc + j];
        return LC_OK;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha,
                pa, lda, pb, ldb, beta, pc, ldc);
    return LC_OK;
}

/* ---- the table ------------------------------------------------------------------------------ */

static const lc_backend_iface cpu_iface = {
    .abi_version = LC_BACKEND_ABI_VERSION,
    .name = "cpu",
    .device_count = cpu_device_count,
    .device_info = cpu_device_info,
    .open = cpu_open,
    .close = cpu_close,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_upload = cpu_buffer_upload,
    .buffer_download = cpu_buffer_download,
    .buffer_clear = cpu_buffer_clear,
    .supports = cpu_supports,
    .run = cpu_run,
    .compute = NULL,     /* the core calls run per node */
    .synchronize = NULL, /* every call is synchronous */
    .gemm = cpu_gemm,
};

const lc_backend_iface *lc_backend_cpu(void) { return &cpu_iface; }
