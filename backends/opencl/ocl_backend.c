/* lorac OpenCL backend — the plugin's lc_backend_iface (lorac/backend.h): device enumeration
 * and info, open/close, buffers, supports, compute/run, synchronize and the GEMM entry
 * (launch helpers: ocl_launch.c; tensor checks: ocl_tensor.c).
 *
 * Devices: every device of every platform whose OpenCL version is at least 1.2 and that has a
 * compiler, in platform order then device order, as "opencl:N". is_cpu is CL_DEVICE_TYPE_CPU
 * (PoCL), so `auto` prefers a real GPU. A device context holds one in-order queue: compute
 * enqueues a whole step without waiting, synchronize is clFinish (plus the check of the error
 * word that kernels meeting bad input set, e.g. get_rows ids outside the table).
 * Buffers are plain cl_mem objects (the buffer impl); tensors address them with byte offsets.
 * Kernels are built at open from the embedded sources (kernels/NAME.cl) through the binary cache of
 * ocl_program.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_internal.h"

#define OCL_MAX_DEVICES 64

/* ---- enumeration -------------------------------------------------------------------------- */

typedef struct ocl_devent {
    cl_platform_id platform;
    cl_device_id device;
} ocl_devent;

static ocl_devent g_devs[OCL_MAX_DEVICES];
static int g_ndev;
static char g_why[256];
static pthread_once_t g_enum_once = PTHREAD_ONCE_INIT;

/* "OpenCL 1.2 ..." / "OpenCL C 1.2 ..." -> 102; 0 when unparsable. */
static int parse_version(const char *s, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0) return 0;
    int major = 0, minor = 0;
    if (sscanf(s + n, "%d.%d", &major, &minor) != 2) return 0;
    return major * 100 + minor;
}

static void dev_str(cl_device_id d, cl_device_info what, char *out, size_t cap) {
    out[0] = '\0';
    if (clGetDeviceInfo(d, what, cap, out, NULL) != CL_SUCCESS) out[0] = '\0';
    out[cap - 1] = '\0';
}

static void plat_str(cl_platform_id p, cl_platform_info what, char *out, size_t cap) {
    out[0] = '\0';
    if (clGetPlatformInfo(p, what, cap, out, NULL) != CL_SUCCESS) out[0] = '\0';
    out[cap - 1] = '\0';
}

static void enumerate_devices(void) {
    cl_uint np = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &np);
    if (err != CL_SUCCESS || np == 0) {
        snprintf(g_why, sizeof g_why, "no OpenCL platform: the ICD loader found no driver (%s)",
                 err != CL_SUCCESS ? ocl_err_name(err) : "0 platforms");
        return;
    }
    cl_platform_id plats[16];
    if (np > 16) np = 16;
    if (clGetPlatformIDs(np, plats, NULL) != CL_SUCCESS) {
        snprintf(g_why, sizeof g_why, "clGetPlatformIDs failed");
        return;
    }
    int skipped = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0) continue;
        cl_device_id devs[OCL_MAX_DEVICES];
        if (nd > OCL_MAX_DEVICES) nd = OCL_MAX_DEVICES;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL) != CL_SUCCESS) continue;
        for (cl_uint i = 0; i < nd && g_ndev < OCL_MAX_DEVICES; i++) {
            char ver[128];
            cl_bool compiler = CL_FALSE;
            dev_str(devs[i], CL_DEVICE_VERSION, ver, sizeof ver);
            clGetDeviceInfo(devs[i], CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL);
            if (parse_version(ver, "OpenCL ") < 102 || !compiler) {
                skipped++;
                continue;
            }
            g_devs[g_ndev].platform = plats[p];
            g_devs[g_ndev].device = devs[i];
            g_ndev++;
        }
    }
    if (g_ndev == 0)
        snprintf(g_why, sizeof g_why, "%u OpenCL platform(s) but no device with OpenCL >= 1.2 and a compiler (%d skipped)",
                 (unsigned)np, skipped);
}

static int ocl_device_count(char *why, size_t why_size) {
    pthread_once(&g_enum_once, enumerate_devices);
    if (g_ndev == 0 && why && why_size) snprintf(why, why_size, "%s", g_why);
    return g_ndev;
}

static lc_status ocl_device_info(int index, lc_device_info *info) {
    pthread_once(&g_enum_once, enumerate_devices);
    if (!info) return lc_error(LC_ERR_INVALID_ARG, "opencl device_info: info is NULL");
    if (index < 0 || index >= g_ndev)
        return lc_error(LC_ERR_INVALID_ARG, "opencl device_info: index %d out of range (%d devices)", index, g_ndev);
    cl_device_id d = g_devs[index].device;
    memset(info, 0, sizeof *info);
    snprintf(info->spec, sizeof info->spec, "opencl:%d", index);
    snprintf(info->backend, sizeof info->backend, "opencl");
    dev_str(d, CL_DEVICE_NAME, info->name, sizeof info->name);
    dev_str(d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    dev_str(d, CL_DRIVER_VERSION, info->driver, sizeof info->driver);
    char ver[128], cver[128], plat[96], ext[4096];
    dev_str(d, CL_DEVICE_VERSION, ver, sizeof ver);
    dev_str(d, CL_DEVICE_OPENCL_C_VERSION, cver, sizeof cver);
    dev_str(d, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
    plat_str(g_devs[index].platform, CL_PLATFORM_NAME, plat, sizeof plat);
    /* "OpenCL 3.0 <vendor text>" and "OpenCL C 1.2 <vendor text>" -> "OpenCL 3.0, C 1.2" */
    const int v = parse_version(ver, "OpenCL "), cv = parse_version(cver, "OpenCL C ");
    if (v > 0 && v < 10000 && cv >= 0 && cv < 10000)
        snprintf(info->api_version, sizeof info->api_version, "OpenCL %d.%d, C %d.%d", v / 100 % 100, v % 100, cv / 100 % 100,
                 cv % 100);
    else
        snprintf(info->api_version, sizeof info->api_version, "%.31s", ver);
    cl_ulong mem = 0, alloc = 0, local = 0;
    cl_uint cu = 0;
    cl_device_type type = 0;
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    info->memory_bytes = mem;
    info->compute_units = (int)cu;
    info->threads = 0;
    info->subgroup_size = 0;
    info->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    static const char *const interesting[] = {"cl_khr_fp16", "cl_khr_fp64", "cl_khr_subgroups", "cl_intel_subgroups",
                                              "cl_khr_int64_base_atomics", "cl_nv_device_attribute_query",
                                              "cl_amd_device_attribute_query"};
    char exts[160] = "";
    for (size_t i = 0; i < sizeof interesting / sizeof interesting[0]; i++)
        if (strstr(ext, interesting[i])) {
            size_t used = strlen(exts);
            snprintf(exts + used, sizeof exts - used, "%s%s", used ? " " : "", interesting[i] + 3);
        }
    snprintf(info->extra, sizeof info->extra, "platform %.40s; %.20s; max alloc %llu MiB; local %llu KiB; ext: %s", plat,
             cver, (unsigned long long)(alloc >> 20), (unsigned long long)(local >> 10), exts[0] ? exts : "none");
    return LC_OK;
}

/* ---- open / close ------------------------------------------------------------------------- */

static void ocl_close(void *ctx) {
    ocl_ctx *c = ctx;
    if (!c) return;
    if (c->queue) clFinish(c->queue);
    for (int i = 0; i < OCL_K_COUNT; i++)
        if (c->k[i]) clReleaseKernel(c->k[i]);
    for (int i = 0; i < OCL_W_COUNT; i++)
        if (c->gemm[i]) clReleaseKernel(c->gemm[i]);
    if (c->gemm_bc) clReleaseKernel(c->gemm_bc);
    if (c->gemm_dot) clReleaseKernel(c->gemm_dot);
    if (c->gemm_pack) clReleaseKernel(c->gemm_pack);
    if (c->gemm_tacc) clReleaseKernel(c->gemm_tacc);
    for (int i = 0; i < OCL_SCR_COUNT; i++)
        if (c->scr[i]) clReleaseMemObject(c->scr[i]);
    for (int i = 0; i < c->n_rope; i++) clReleaseMemObject(c->rope[i].mem);
    if (c->err_buf) clReleaseMemObject(c->err_buf);
    if (c->prog_ops) clReleaseProgram(c->prog_ops);
    if (c->prog_gemm) clReleaseProgram(c->prog_gemm);
    if (c->queue) clReleaseCommandQueue(c->queue);
    if (c->context) clReleaseContext(c->context);
    free(c);
}

static lc_status open_fail(ocl_ctx *c, lc_status st) {
    ocl_close(c);
    return st;
}

static lc_status ocl_open(int index, void **ctx) {
    pthread_once(&g_enum_once, enumerate_devices);
    if (!ctx) return lc_error(LC_ERR_INVALID_ARG, "opencl open: ctx is NULL");
    *ctx = NULL;
    if (index < 0 || index >= g_ndev)
        return lc_error(LC_ERR_NO_DEVICE, "opencl open: device %d does not exist (%d devices)", index, g_ndev);
    ocl_ctx *c = calloc(1, sizeof *c);
    if (!c) return lc_error(LC_ERR_NOMEM, "opencl open: out of host memory");
    c->index = index;
    c->platform = g_devs[index].platform;
    c->device = g_devs[index].device;
    snprintf(c->spec, sizeof c->spec, "opencl:%d", index);
    dev_str(c->device, CL_DEVICE_NAME, c->name, sizeof c->name);
    const char *verbose = getenv("LORAC_OPENCL_VERBOSE");
    c->verbose = verbose && verbose[0] && strcmp(verbose, "0") != 0;
    const char *profile = getenv("LORAC_OPENCL_PROFILE");
    c->profile = profile && profile[0] && strcmp(profile, "0") != 0;

    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)c->platform, 0};
    c->context = clCreateContext(props, 1, &c->device, NULL, NULL, &err);
    if (!c->context || err != CL_SUCCESS) return open_fail(c, ocl_fail(c, err, "clCreateContext"));
    c->queue = clCreateCommandQueue(c->context, c->device, 0, &err);
    if (!c->queue || err != CL_SUCCESS) return open_fail(c, ocl_fail(c, err, "clCreateCommandQueue"));

    size_t items[3] = {0, 0, 0};
    cl_device_fp_config fp = 0;
    cl_device_type type = 0;
    clGetDeviceInfo(c->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof c->max_wg, &c->max_wg, NULL);
    clGetDeviceInfo(c->device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof items, items, NULL);
    clGetDeviceInfo(c->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof c->max_alloc, &c->max_alloc, NULL);
    clGetDeviceInfo(c->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof c->global_mem, &c->global_mem, NULL);
    clGetDeviceInfo(c->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof c->local_mem, &c->local_mem, NULL);
    clGetDeviceInfo(c->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    clGetDeviceInfo(c->device, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    for (int d = 0; d < 3; d++) c->max_items[d] = items[d] ? items[d] : 1;
    if (items[0] && items[0] < c->max_wg) c->max_wg = items[0];
    if (c->max_wg == 0) c->max_wg = 1;
    c->has_fma = (fp & CL_FP_FMA) != 0;
    c->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;

    char pname[128], pver[128], dver[128], drv[128], cver[128];
    plat_str(c->platform, CL_PLATFORM_NAME, pname, sizeof pname);
    plat_str(c->platform, CL_PLATFORM_VERSION, pver, sizeof pver);
    dev_str(c->device, CL_DEVICE_VERSION, dver, sizeof dver);
    dev_str(c->device, CL_DRIVER_VERSION, drv, sizeof drv);
    dev_str(c->device, CL_DEVICE_OPENCL_C_VERSION, cver, sizeof cver);
    snprintf(c->key, sizeof c->key, "%s|%s|%s|%s|%s|%s", pname, pver, c->name, dver, drv, cver);
    ocl_cache_dir(c->cache_dir, sizeof c->cache_dir);

    char options[256];
    snprintf(options, sizeof options, "%s%s%s", parse_version(cver, "OpenCL C ") >= 102 ? "-cl-std=CL1.2" : "",
             c->has_fma ? " -DLC_HAVE_FMA=1" : "",
             (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) ? " -cl-fp32-correctly-rounded-divide-sqrt" : "");

    const char *ops_src[] = {ocl_src_common, ocl_src_elementwise, ocl_src_norm_rope, ocl_src_attention, ocl_src_loss,
                             ocl_src_misc};
    lc_status st = ocl_build_program(c, "ops", ops_src, (int)(sizeof ops_src / sizeof ops_src[0]), options, &c->prog_ops);
    if (st != LC_OK) return open_fail(c, st);
    static const char *const knames[OCL_K_COUNT] = {
#define OCL_X_KNAME(name) #name,
        OCL_KERNEL_LIST(OCL_X_KNAME)
#undef OCL_X_KNAME
    };
    for (int i = 0; i < OCL_K_COUNT; i++) {
        c->k[i] = clCreateKernel(c->prog_ops, knames[i], &err);
        if (!c->k[i] || err != CL_SUCCESS) return open_fail(c, ocl_fail(c, err, "clCreateKernel(%s)", knames[i]));
        size_t wg = 0;
        clGetKernelWorkGroupInfo(c->k[i], c->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
        c->kwg[i] = wg && wg < c->max_wg ? wg : c->max_wg;
    }
    if ((st = ocl_gemm_build(c, options)) != LC_OK) return open_fail(c, st);

    c->err_buf = clCreateBuffer(c->context, CL_MEM_READ_WRITE, 4 * sizeof(cl_int), NULL, &err);
    if (!c->err_buf || err != CL_SUCCESS) return open_fail(c, ocl_fail(c, err, "clCreateBuffer(error word)"));
    if ((st = ocl_fill_zero(c, c->err_buf, 0, 4 * sizeof(cl_int))) != LC_OK) return open_fail(c, st);
    if ((st = ocl_gemm_init(c)) != LC_OK) return open_fail(c, st);
    err = clFinish(c->queue);
    if (err != CL_SUCCESS) return open_fail(c, ocl_fail(c, err, "clFinish(open)"));
    *ctx = c;
    return LC_OK;
}

/* ---- buffers ------------------------------------------------------------------------------ */

lc_status ocl_fill_zero(ocl_ctx *c, cl_mem mem, size_t off, size_t bytes) {
    if (bytes == 0) return LC_OK;
    const cl_uchar zero = 0;
    cl_int err = clEnqueueFillBuffer(c->queue, mem, &zero, 1, off, bytes, 0, NULL, NULL);
    return err == CL_SUCCESS ? LC_OK : ocl_fail(c, err, "clEnqueueFillBuffer(%zu bytes at %zu)", bytes, off);
}

static lc_status ocl_buffer_alloc(void *ctx, size_t size, void **impl) {
    ocl_ctx *c = ctx;
    if (!c || !impl) return lc_error(LC_ERR_INVALID_ARG, "opencl buffer_alloc: NULL context or impl");
    *impl = NULL;
    if (size == 0) size = 4;
    if (size > c->max_alloc)
        return lc_error(LC_ERR_DEVICE_NOMEM,
                        "opencl buffer_alloc: %zu bytes exceed CL_DEVICE_MAX_MEM_ALLOC_SIZE (%llu bytes) of %s '%s'", size,
                        (unsigned long long)c->max_alloc, c->spec, c->name);
    cl_int err;
    cl_mem m = clCreateBuffer(c->context, CL_MEM_READ_WRITE, size, NULL, &err);
    if (!m || err != CL_SUCCESS) return ocl_fail(c, err, "clCreateBuffer(%zu bytes)", size);
    lc_status st = ocl_fill_zero(c, m, 0, size);
    if (st == LC_OK) {
        /* wait here so that a lazily committed allocation fails now, not in the middle of a step */
        err = clFinish(c->queue);
        if (err != CL_SUCCESS) st = ocl_fail(c, err, "clFinish(zeroing a new %zu-byte buffer)", size);
    }
    if (st != LC_OK) {
        clReleaseMemObject(m);
        return st;
    }
    *impl = m;
    return LC_OK;
}

static void ocl_buffer_free(void *ctx, void *impl) {
    (void)ctx;
    if (impl) clReleaseMemObject((cl_mem)impl);
}

static lc_status ocl_buffer_upload(void *ctx, void *impl, size_t offset, const void *src, size_t size) {
    ocl_ctx *c = ctx;
    if (!c || !impl || (!src && size)) return lc_error(LC_ERR_INVALID_ARG, "opencl buffer_upload: NULL argument");
    if (!size) return LC_OK;
    cl_int err = clEnqueueWriteBuffer(c->queue, (cl_mem)impl, CL_TRUE, offset, size, src, 0, NULL, NULL);
    return err == CL_SUCCESS ? LC_OK : ocl_fail(c, err, "clEnqueueWriteBuffer(%zu bytes at %zu)", size, offset);
}

static lc_status ocl_buffer_download(void *ctx, void *impl, size_t offset, void *dst, size_t size) {
    ocl_ctx *c = ctx;
    if (!c || !impl || (!dst && size)) return lc_error(LC_ERR_INVALID_ARG, "opencl buffer_download: NULL argument");
    if (!size) return LC_OK;
    cl_int err = clEnqueueReadBuffer(c->queue, (cl_mem)impl, CL_TRUE, offset, size, dst, 0, NULL, NULL);
    return err == CL_SUCCESS ? LC_OK : ocl_fail(c, err, "clEnqueueReadBuffer(%zu bytes at %zu)", size, offset);
}

static lc_status ocl_buffer_clear(void *ctx, void *impl, size_t offset, size_t size) {
    ocl_ctx *c = ctx;
    if (!c || !impl) return lc_error(LC_ERR_INVALID_ARG, "opencl buffer_clear: NULL argument");
    return ocl_fill_zero(c, (cl_mem)impl, offset, size);
}

/* ---- supports ----------------------------------------------------------------------------- */

static const ocl_op_fn g_ops[LC_OP_COUNT] = {
    [LC_OP_FILL] = ocl_op_fill,
    [LC_OP_GET_ROWS] = ocl_op_get_rows,
    [LC_OP_MUL_MAT] = ocl_op_mul_mat,
    [LC_OP_LORA] = ocl_op_lora,
    [LC_OP_ADD] = ocl_op_add,
    [LC_OP_MUL] = ocl_op_mul,
    [LC_OP_SCALE] = ocl_op_scale,
    [LC_OP_RMS_NORM] = ocl_op_rms_norm,
    [LC_OP_ROPE] = ocl_op_rope,
    [LC_OP_ATTENTION] = ocl_op_attention,
    [LC_OP_GELU_TANH] = ocl_op_gelu_tanh,
    [LC_OP_SILU] = ocl_op_silu,
    [LC_OP_GEGLU] = ocl_op_geglu,
    [LC_OP_SWIGLU] = ocl_op_swiglu,
    [LC_OP_CROSS_ENTROPY] = ocl_op_cross_entropy,
    [LC_OP_DEQUANTIZE] = ocl_op_dequantize,
    [LC_OP_CPY] = ocl_op_cpy,
    [LC_OP_SUM_SQ] = ocl_op_sum_sq,
    [LC_OP_ADAMW] = ocl_op_adamw,
    [LC_OP_LORA_MERGE] = ocl_op_lora_merge,
    [LC_OP_GET_ROWS_BACK] = ocl_op_get_rows_back,
    [LC_OP_MUL_MAT_BACK] = ocl_op_mul_mat_back,
    [LC_OP_LORA_BACK] = ocl_op_lora_back,
    [LC_OP_ADD_BACK] = ocl_op_add_back,
    [LC_OP_MUL_BACK] = ocl_op_mul_back,
    [LC_OP_SCALE_BACK] = ocl_op_scale_back,
    [LC_OP_RMS_NORM_BACK] = ocl_op_rms_norm_back,
    [LC_OP_ROPE_BACK] = ocl_op_rope_back,
    [LC_OP_ATTENTION_BACK] = ocl_op_attention_back,
    [LC_OP_GELU_TANH_BACK] = ocl_op_gelu_tanh_back,
    [LC_OP_SILU_BACK] = ocl_op_silu_back,
    [LC_OP_GEGLU_BACK] = ocl_op_geglu_back,
    [LC_OP_SWIGLU_BACK] = ocl_op_swiglu_back,
    [LC_OP_CROSS_ENTROPY_BACK] = ocl_op_cross_entropy_back,
};

int ocl_wslot_of(int dtype) {
    switch (dtype) {
#define OCL_X_SLOTOF(name, id, expr) case id: return OCL_W_##name;
        OCL_WTYPE_LIST(OCL_X_SLOTOF)
#undef OCL_X_SLOTOF
    default: return -1;
    }
}

/* Weight dtypes: those the kernels decode and this liblorac knows (lc_dtype_get). */
static bool weight_dtype(lc_dtype t) { return ocl_wslot_of(t) >= 0 && lc_dtype_get(t) != NULL && t != LC_I32; }
static bool ocl_supports(void *ctx, const lc_node *node) {
    (void)ctx;
    if (!node || (int)node->op <= (int)LC_OP_NONE || (int)node->op >= (int)LC_OP_COUNT || !g_ops[node->op]) return false;
    return lc_node_dtypes_ok(node, weight_dtype);
}

/* ---- compute ------------------------------------------------------------------------------ */

static lc_status ocl_compute(void *ctx, lc_node *const *nodes, int n) {
    ocl_ctx *c = ctx;
    if (!c || (n > 0 && !nodes)) return lc_error(LC_ERR_INVALID_ARG, "opencl compute: NULL context or node list");
    for (int i = 0; i < n; i++) {
        const lc_node *node = nodes[i];
        if (!node || (int)node->op <= (int)LC_OP_NONE || (int)node->op >= (int)LC_OP_COUNT || !g_ops[node->op])
            return lc_error(LC_ERR_UNSUPPORTED, "opencl compute: node %d has an op this backend does not run (%d)", i,
                            node ? (int)node->op : -1);
        for (int j = 0; j < LC_MAX_SRC + LC_MAX_DST; j++) {
            const lc_tensor *t = j < LC_MAX_SRC ? node->src[j] : node->dst[j - LC_MAX_SRC];
            if (t && (!t->buffer || !t->buffer->impl))
                return lc_error(LC_ERR_STATE, "opencl %s (node %d): tensor '%s' has no device memory (graph not planned?)",
                                lc_op_name(node->op), node->index, t->name);
        }
        lc_status st = g_ops[node->op](c, node);
        if (st != LC_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", lc_last_error());
            return lc_error(st, "node %d (%s, output '%s'): %s", node->index, lc_op_name(node->op),
                            node->dst[0] ? node->dst[0]->name : "-", msg);
        }
    }
    return LC_OK;
}

static lc_status ocl_run(void *ctx, const lc_node *node) {
    lc_node *one = (lc_node *)node;
    return ocl_compute(ctx, &one, 1);
}

static lc_status ocl_synchronize(void *ctx) {
    ocl_ctx *c = ctx;
    if (!c) return lc_error(LC_ERR_INVALID_ARG, "opencl synchronize: NULL context");
    cl_int err = clFinish(c->queue);
    if (err != CL_SUCCESS) return ocl_fail(c, err, "clFinish");
    cl_int word[4] = {0, 0, 0, 0};
    err = clEnqueueReadBuffer(c->queue, c->err_buf, CL_TRUE, 0, sizeof word, word, 0, NULL, NULL);
    if (err != CL_SUCCESS) return ocl_fail(c, err, "clEnqueueReadBuffer(error word)");
    if (word[0]) {
        lc_status st = ocl_fill_zero(c, c->err_buf, 0, sizeof word);
        if (st == LC_OK) clFinish(c->queue);
        return lc_error(LC_ERR_INVALID_ARG, "opencl get_rows: id %d at position %d is outside the table [0, %d) on %s '%s'",
                        word[1], word[2], word[3], c->spec, c->name);
    }
    return LC_OK;
}

/* ---- the table ---------------------------------------------------------------------------- */

static const lc_backend_iface ocl_iface = {
    .abi_version = LC_BACKEND_ABI_VERSION,
    .name = "opencl",
    .device_count = ocl_device_count,
    .device_info = ocl_device_info,
    .open = ocl_open,
    .close = ocl_close,
    .buffer_alloc = ocl_buffer_alloc,
    .buffer_free = ocl_buffer_free,
    .buffer_upload = ocl_buffer_upload,
    .buffer_download = ocl_buffer_download,
    .buffer_clear = ocl_buffer_clear,
    .supports = ocl_supports,
    .run = ocl_run,
    .compute = ocl_compute,
    .synchronize = ocl_synchronize,
    .gemm = ocl_gemm_entry,
};

__attribute__((visibility("default"))) const lc_backend_iface *lorac_backend_entry(void) { return &ocl_iface; }
