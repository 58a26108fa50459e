/* lorac Vulkan backend — the plugin entry point and lc_backend_iface table (lorac/backend.h).
 *
 * Devices: every physical device with Vulkan >= 1.1 and a compute queue, in driver order, as
 * "vulkan:N". device_info reports the name, vendor, driver name / info (VK_KHR_driver_properties,
 * core in 1.2), API version, the device-local heap size, the subgroup size
 * (VkPhysicalDeviceSubgroupProperties) and is_cpu = (deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU,
 * e.g. lavapipe).
 *
 * Execution: `compute` records all nodes of a step into one command buffer (vk_record.c inserts
 * the memory barriers the data dependencies need) and submits it once; `synchronize` waits on
 * the fences. `run` is not provided: the core sends single nodes through `compute` too.
 * upload / download wait for the work in flight (they are synchronous from the caller's view).
 *
 * Environment (read when a device opens):
 *   LORAC_VULKAN_VALIDATION=1        VK_LAYER_KHRONOS_validation + synchronization validation,
 *                                    messages on stderr, errors counted (vk_device.c)
 *   LORAC_VULKAN_CACHE_DIR=dir       pipeline cache directory ("" disables it; vk_pipeline.c)
 *   LORAC_VULKAN_GEMM=texel|ssbo|tiled, LORAC_VULKAN_GEMM_BLOCK=TMxTNxWG   product kernel (vk_gemm.c)
 *   LORAC_VULKAN_PROFILE=1           GPU time per pipeline and per (graph op, pipeline) from
 *                                    timestamps, printed at close
 *   for tests of the fallback paths: LORAC_VULKAN_NO_PUSH_DESCRIPTORS=1, LORAC_VULKAN_FORCE_STAGING=1
 *   (staging transfers on unified memory), LORAC_VULKAN_NO_FP64=1, LORAC_VULKAN_MAX_BINDING=bytes
 *   (a lower binding limit, to run the chunked paths on small tensors).
 *
 * lavapipe (llvmpipe) facts the kernels are shaped by: storage-buffer accesses are per-lane
 * gathers with bounds checks, so kernels move 16-byte vec4s where alignment allows and the
 * product kernel reads texel buffers; a shader invocation is ended after 65535 loop iterations
 * in total (LP_MAX_TGSI_LOOP_ITERATIONS), so every kernel bounds its loops (vk_ctx.loop_cap);
 * maxStorageBufferRange is 128 MiB, so large operands are bound in chunks.
 *
 * The plugin also exports `lorac_vulkan_stats` for its own test suite (validation message
 * counts, pipeline cache bytes loaded, pipelines created).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vk_internal.h"
#include "vk_stats.h"

#define VK_MAX_DEVICES 16

/* ---- dtypes ------------------------------------------------------------------------------ */

bool vk_dtype_block(int dtype, uint32_t *block_elems, uint32_t *block_bytes) {
    uint32_t e = 0, b = 0;
    switch (dtype) {
    case LC_F32: e = 1; b = 4; break;
    case LC_F16: e = 1; b = 2; break;
    case LC_BF16: e = 1; b = 2; break;
    case LC_Q4_0: e = 32; b = 18; break;
    case LC_Q4_1: e = 32; b = 20; break;
    case LC_Q5_0: e = 32; b = 22; break;
    case LC_Q5_1: e = 32; b = 24; break;
    case LC_Q8_0: e = 32; b = 34; break;
    case LC_Q4_K: e = 256; b = 144; break;
    case LC_Q5_K: e = 256; b = 176; break;
    case LC_Q6_K: e = 256; b = 210; break;
    default: return false;
    }
    if (block_elems) *block_elems = e;
    if (block_bytes) *block_bytes = b;
    return true;
}

lc_status vk_need(const lc_tensor *t, int dt, const char *op, const char *field) {
    if (!t) return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: %s is missing", op, field);
    if (!t->buffer || !t->buffer->impl)
        return lc_error(LC_ERR_STATE, "vulkan %s: %s '%s' has no device memory (graph not planned?)", op, field, t->name);
    if (dt >= 0 && (int)t->dtype != dt)
        return lc_error(LC_ERR_DTYPE, "vulkan %s: %s '%s' has dtype %s, expected %s", op, field, t->name,
                        lc_dtype_name(t->dtype), lc_dtype_name(dt));
    uint32_t be = 1, bb = 4;
    if (t->dtype != LC_I32 && !vk_dtype_block((int)t->dtype, &be, &bb))
        return lc_error(LC_ERR_DTYPE, "vulkan %s: %s '%s' has unsupported dtype %s", op, field, t->name,
                        lc_dtype_name(t->dtype));
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (t->ne[d] < 1)
            return lc_error(LC_ERR_SHAPE, "vulkan %s: %s '%s' has ne[%d] = %lld", op, field, t->name, d, (long long)t->ne[d]);
    if (t->ne[0] % be != 0)
        return lc_error(LC_ERR_SHAPE, "vulkan %s: %s '%s' row of %lld elements is not a multiple of the %s block (%u)", op,
                        field, t->name, (long long)t->ne[0], lc_dtype_name(t->dtype), be);
    size_t row = (size_t)(t->ne[0] / be) * bb;
    if (t->nb[0] != bb || t->nb[1] != row || t->nb[2] != t->nb[1] * (size_t)t->ne[1] ||
        t->nb[3] != t->nb[2] * (size_t)t->ne[2])
        return lc_error(LC_ERR_SHAPE, "vulkan %s: %s '%s' (%s, ne %lld x %lld x %lld x %lld) is not contiguous (nb %zu %zu "
                        "%zu %zu)", op, field, t->name, lc_dtype_name(t->dtype), (long long)t->ne[0], (long long)t->ne[1],
                        (long long)t->ne[2], (long long)t->ne[3], t->nb[0], t->nb[1], t->nb[2], t->nb[3]);
    if (vk_nel(t) > (int64_t)0xFFFFFFFF / 2)
        return lc_error(LC_ERR_UNSUPPORTED, "vulkan %s: %s '%s' has %lld elements; kernels index with 31 bits", op, field,
                        t->name, (long long)vk_nel(t));
    return LC_OK;
}

lc_status vk_need_like(const lc_tensor *t, const lc_tensor *like, const char *op, const char *field) {
    lc_status st = vk_need(t, LC_F32, op, field);
    if (st != LC_OK) return st;
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (t->ne[d] != like->ne[d])
            return lc_error(LC_ERR_SHAPE, "vulkan %s: %s '%s' ne [%lld, %lld, %lld, %lld] differs from '%s' ne [%lld, %lld, "
                            "%lld, %lld]", op, field, t->name, (long long)t->ne[0], (long long)t->ne[1],
                            (long long)t->ne[2], (long long)t->ne[3], like->name, (long long)like->ne[0],
                            (long long)like->ne[1], (long long)like->ne[2], (long long)like->ne[3]);
    return LC_OK;
}

/* ---- enumeration ------------------------------------------------------------------------- */

static int vkb_device_count(char *why, size_t why_size) {
    VkInstance inst = VK_NULL_HANDLE;
    lc_status st = vk_instance_create(false, &inst, NULL, NULL);
    if (st != LC_OK) {
        if (why && why_size) snprintf(why, why_size, "%s", lc_last_error());
        return 0;
    }
    VkPhysicalDevice pds[VK_MAX_DEVICES];
    int n = 0;
    st = vk_list_physical(inst, pds, VK_MAX_DEVICES, &n);
    vk_instance_destroy(inst, VK_NULL_HANDLE);
    if (st != LC_OK) {
        if (why && why_size) snprintf(why, why_size, "%s", lc_last_error());
        return 0;
    }
    if (n == 0 && why && why_size)
        snprintf(why, why_size, "the Vulkan loader found no device with Vulkan 1.1 and a compute queue (install a driver, "
                                "e.g. mesa-vulkan-drivers for lavapipe)");
    return n > VK_MAX_DEVICES ? VK_MAX_DEVICES : n;
}

static const char *vendor_name(uint32_t id) {
    switch (id) {
    case 0x10DE: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x8086: return "Intel";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x106B: return "Apple";
    case 0x1010: return "Imagination";
    case 0x10005: return "Mesa";
    default: return NULL;
    }
}

static void fill_info(int index, VkPhysicalDevice pd, lc_device_info *info) {
    memset(info, 0, sizeof *info);
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(pd, &p);
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg};
    vkGetPhysicalDeviceProperties2(pd, &p2);
    snprintf(info->spec, sizeof info->spec, "vulkan:%d", index);
    snprintf(info->backend, sizeof info->backend, "vulkan");
    snprintf(info->name, sizeof info->name, "%.127s", p.deviceName);
    const char *vn = vendor_name(p.vendorID);
    if (vn) snprintf(info->vendor, sizeof info->vendor, "%s", vn);
    else snprintf(info->vendor, sizeof info->vendor, "vendor 0x%04x", p.vendorID);
    if (p.apiVersion >= VK_API_VERSION_1_2) {
        VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
        VkPhysicalDeviceProperties2 q2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &drv};
        vkGetPhysicalDeviceProperties2(pd, &q2);
        snprintf(info->driver, sizeof info->driver, "%.60s %.60s", drv.driverName, drv.driverInfo);
    } else {
        snprintf(info->driver, sizeof info->driver, "driver version 0x%08x", p.driverVersion);
    }
    snprintf(info->api_version, sizeof info->api_version, "Vulkan %u.%u.%u", VK_API_VERSION_MAJOR(p.apiVersion),
             VK_API_VERSION_MINOR(p.apiVersion), VK_API_VERSION_PATCH(p.apiVersion));
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    uint64_t best = 0;
    for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
        if ((mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && mp.memoryHeaps[i].size > best)
            best = mp.memoryHeaps[i].size;
    if (best == 0)
        for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
            if (mp.memoryHeaps[i].size > best) best = mp.memoryHeaps[i].size;
    info->memory_bytes = best;
    info->is_cpu = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    if (info->is_cpu) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        info->compute_units = n > 0 ? (int)n : 1;
    }
    info->threads = 0;
    info->subgroup_size = (int)sg.subgroupSize;
    static const char *const types[] = {"other", "integrated GPU", "discrete GPU", "virtual GPU", "CPU"};
    snprintf(info->extra, sizeof info->extra,
             "%s; subgroup %u (arithmetic %s); maxStorageBufferRange %u; maxComputeSharedMemorySize %u; "
             "maxComputeWorkGroupInvocations %u",
             (unsigned)p.deviceType < 5 ? types[p.deviceType] : "unknown type", sg.subgroupSize,
             (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) ? "yes" : "no",
             p.limits.maxStorageBufferRange, p.limits.maxComputeSharedMemorySize,
             p.limits.maxComputeWorkGroupInvocations);
}

static lc_status vkb_device_info(int index, lc_device_info *info) {
    if (!info) return lc_error(LC_ERR_INVALID_ARG, "vulkan device_info: info is NULL");
    VkInstance inst = VK_NULL_HANDLE;
    lc_status st = vk_instance_create(false, &inst, NULL, NULL);
    if (st != LC_OK) return st;
    VkPhysicalDevice pds[VK_MAX_DEVICES];
    int n = 0;
    st = vk_list_physical(inst, pds, VK_MAX_DEVICES, &n);
    if (st == LC_OK && (index < 0 || index >= n || index >= VK_MAX_DEVICES))
        st = lc_error(LC_ERR_INVALID_ARG, "vulkan device_info: device index %d out of range (%d devices)", index, n);
    if (st == LC_OK) fill_info(index, pds[index], info);
    vk_instance_destroy(inst, VK_NULL_HANDLE);
    return st;
}

/* ---- open / close ------------------------------------------------------------------------- */

static void vkb_close(void *ctx);
static lorac_vulkan_stats_t g_last_stats;
static void fill_stats(const vk_ctx *c, lorac_vulkan_stats_t *s);

static lc_status vkb_open(int index, void **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "vulkan open: ctx is NULL");
    *out = NULL;
    vk_ctx *c = calloc(1, sizeof *c);
    if (!c) return lc_error(LC_ERR_NOMEM, "vulkan open: out of host memory for the device context");
    c->index = index;
    c->cur = -1;
    snprintf(c->label, sizeof c->label, "vulkan:%d", index);
    lc_status st = vk_instance_create(true, &c->instance, &c->validation, &c->messenger);
    if (st != LC_OK) {
        free(c);
        return st;
    }
    VkPhysicalDevice pds[VK_MAX_DEVICES];
    int n = 0;
    st = vk_list_physical(c->instance, pds, VK_MAX_DEVICES, &n);
    if (st == LC_OK && (index < 0 || index >= n || index >= VK_MAX_DEVICES))
        st = lc_error(LC_ERR_NO_DEVICE, "vulkan open: device index %d out of range (%d devices)", index, n);
    if (st != LC_OK) {
        vk_instance_destroy(c->instance, c->messenger);
        free(c);
        return st;
    }
    c->pdev = pds[index];
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(c->pdev, &p);
    snprintf(c->label, sizeof c->label, "vulkan:%d (%.150s)", index, p.deviceName);
    const char *prof = getenv("LORAC_VULKAN_PROFILE");
    c->profile = prof && *prof && strcmp(prof, "0") != 0 && p.limits.timestampComputeAndGraphics;
    c->timestamp_ns = p.limits.timestampPeriod;
    if ((st = vk_device_create(c)) == LC_OK && (st = vk_record_init(c)) == LC_OK &&
        (st = vk_pipelines_init(c)) == LC_OK) {
        vk_gemm_choose(c);
        *out = c;
        return LC_OK;
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", lc_last_error());
    vkb_close(c);
    return lc_error(st, "%s", msg);
}

static void vkb_close(void *ctx) {
    vk_ctx *c = ctx;
    if (!c) return;
    fill_stats(c, &g_last_stats);
    if (c->device) {
        vk_finish(c);
        if (c->profile) {
            fprintf(stderr, "lorac vulkan profile on %s (GPU time per pipeline):\n", c->label);
            for (int i = 0; i < VK_PIPE_COUNT; i++)
                if (c->prof_count[i])
                    fprintf(stderr, "  %-24s %8ld dispatches %10.3f ms\n", vk_pipe_name((vk_pipe_id)i), c->prof_count[i],
                            c->prof_ns[i] * 1e-6);
            fprintf(stderr, "lorac vulkan profile on %s (GPU time per graph op and pipeline):\n", c->label);
            for (int o = 0; o < (int)LC_OP_COUNT; o++)
                for (int i = 0; i < VK_PIPE_COUNT; i++)
                    if (c->prof_op_count[o][i])
                        fprintf(stderr, "  %-20s %-24s %8ld dispatches %10.3f ms\n", o ? lc_op_name((lc_op)o) : "(direct)",
                                vk_pipe_name((vk_pipe_id)i), c->prof_op_count[o][i], c->prof_op_ns[o][i] * 1e-6);
        }
        vk_buf_destroy(c, c->scratch);
        vk_buf_destroy(c, c->staging);
        vk_buf_destroy(c, c->zero);
        vk_buf_destroy(c, c->flags);
        c->scratch = c->staging = c->zero = c->flags = NULL;
        vk_record_destroy(c);
        vk_pipelines_destroy(c);
        vk_device_destroy(c);
    }
    vk_instance_destroy(c->instance, c->messenger);
    if (c->validation)
        fprintf(stderr, "lorac vulkan: validation on %s: %d error(s), %d warning(s) so far in this process\n", c->label,
                vk_validation_errors, vk_validation_warnings);
    free(c);
}

/* ---- buffers -------------------------------------------------------------------------------- */

static lc_status vkb_buffer_alloc(void *ctx, size_t size, void **impl) {
    vk_ctx *c = ctx;
    if (!c || !impl) return lc_error(LC_ERR_INVALID_ARG, "vulkan buffer_alloc: NULL argument");
    *impl = NULL;
    vk_buf *b = NULL;
    lc_status st = vk_buf_create(c, size + 16, false, &b);
    if (st != LC_OK) return st;
    st = vk_clear(c, b, 0, (size_t)b->size);
    if (st != LC_OK) {
        vk_buf_destroy(c, b);
        return st;
    }
    *impl = b;
    return LC_OK;
}

static void vkb_buffer_free(void *ctx, void *impl) {
    if (ctx && impl) vk_buf_release(ctx, impl);
}

static lc_status vkb_buffer_upload(void *ctx, void *impl, size_t offset, const void *src, size_t size) {
    if (!ctx || !impl || (!src && size)) return lc_error(LC_ERR_INVALID_ARG, "vulkan buffer_upload: NULL argument");
    return vk_upload(ctx, impl, offset, src, size);
}

static lc_status vkb_buffer_download(void *ctx, void *impl, size_t offset, void *dst, size_t size) {
    if (!ctx || !impl || (!dst && size)) return lc_error(LC_ERR_INVALID_ARG, "vulkan buffer_download: NULL argument");
    return vk_download(ctx, impl, offset, dst, size);
}

static lc_status vkb_buffer_clear(void *ctx, void *impl, size_t offset, size_t size) {
    if (!ctx || !impl) return lc_error(LC_ERR_INVALID_ARG, "vulkan buffer_clear: NULL argument");
    return vk_clear(ctx, impl, offset, size);
}

/* ---- ops ---------------------------------------------------------------------------------- */

static const vk_op_fn vk_ops[LC_OP_COUNT] = {
    [LC_OP_FILL] = vk_op_fill,
    [LC_OP_GET_ROWS] = vk_op_get_rows,
    [LC_OP_MUL_MAT] = vk_op_mul_mat,
    [LC_OP_LORA] = vk_op_lora,
    [LC_OP_ADD] = vk_op_add,
    [LC_OP_MUL] = vk_op_mul,
    [LC_OP_SCALE] = vk_op_scale,
    [LC_OP_RMS_NORM] = vk_op_rms_norm,
    [LC_OP_ROPE] = vk_op_rope,
    [LC_OP_ATTENTION] = vk_op_attention,
    [LC_OP_GELU_TANH] = vk_op_gelu_tanh,
    [LC_OP_SILU] = vk_op_silu,
    [LC_OP_GEGLU] = vk_op_geglu,
    [LC_OP_SWIGLU] = vk_op_swiglu,
    [LC_OP_CROSS_ENTROPY] = vk_op_cross_entropy,
    [LC_OP_DEQUANTIZE] = vk_op_dequantize,
    [LC_OP_CPY] = vk_op_cpy,
    [LC_OP_SUM_SQ] = vk_op_sum_sq,
    [LC_OP_ADAMW] = vk_op_adamw,
    [LC_OP_LORA_MERGE] = vk_op_lora_merge,
    [LC_OP_GET_ROWS_BACK] = vk_op_get_rows_back,
    [LC_OP_MUL_MAT_BACK] = vk_op_mul_mat_back,
    [LC_OP_LORA_BACK] = vk_op_lora_back,
    [LC_OP_ADD_BACK] = vk_op_add_back,
    [LC_OP_MUL_BACK] = vk_op_mul_back,
    [LC_OP_SCALE_BACK] = vk_op_scale_back,
    [LC_OP_RMS_NORM_BACK] = vk_op_rms_norm_back,
    [LC_OP_ROPE_BACK] = vk_op_rope_back,
    [LC_OP_ATTENTION_BACK] = vk_op_attention_back,
    [LC_OP_GELU_TANH_BACK] = vk_op_gelu_tanh_back,
    [LC_OP_SILU_BACK] = vk_op_silu_back,
    [LC_OP_GEGLU_BACK] = vk_op_geglu_back,
    [LC_OP_SWIGLU_BACK] = vk_op_swiglu_back,
    [LC_OP_CROSS_ENTROPY_BACK] = vk_op_cross_entropy_back,
};

static bool weight_dtype(lc_dtype t) { return t != LC_I32 && vk_dtype_block((int)t, NULL, NULL); }

/* Whether the implementation of `op` splits tensor slot `slot` (0..LC_MAX_SRC-1: src, then dst)
 * into bindings within maxStorageBufferRange, so the tensor may be larger than one binding:
 * every operand of the products (vk_gemm.c chunks rows and k) except LORA_BACK's dx with dropout
 * (bound whole by shaders/dropout.comp), the table of GET_ROWS (row chunks), the logits and
 * dlogits of CROSS_ENTROPY(_BACK) (row chunks). Every other op binds each tensor whole. */
static bool slot_chunked(const lc_node *node, int slot) {
    const int dst0 = LC_MAX_SRC;
    switch (node->op) {
    case LC_OP_MUL_MAT:
    case LC_OP_MUL_MAT_BACK:
    case LC_OP_LORA:
    case LC_OP_LORA_MERGE: return true;
    case LC_OP_LORA_BACK: return !(slot == dst0 && node->fp[1] > 0.0f);
    case LC_OP_GET_ROWS: return slot == 0;
    case LC_OP_CROSS_ENTROPY: return slot == 0;
    case LC_OP_CROSS_ENTROPY_BACK: return slot == 0 || slot == dst0;
    default: return false;
    }
}

/* Besides op and dtypes: every tensor the op binds whole must fit one storage-buffer binding
 * (maxStorageBufferRange, 128 MiB on lavapipe), so an oversize tensor is refused when the graph
 * is planned instead of failing in the middle of a step. The reason (op, tensor, bytes, limit,
 * device) is left in lc_last_error for the caller's message. */
static bool vkb_supports(void *ctx, const lc_node *node) {
    const vk_ctx *c = ctx;
    if (!node || (int)node->op <= (int)LC_OP_NONE || (int)node->op >= (int)LC_OP_COUNT || !vk_ops[node->op]) return false;
    if (!lc_node_dtypes_ok(node, weight_dtype)) return false;
    if (!c) return true;
    for (int k = 0; k < LC_MAX_SRC + LC_MAX_DST; k++) {
        const lc_tensor *t = k < LC_MAX_SRC ? node->src[k] : node->dst[k - LC_MAX_SRC];
        if (!t || slot_chunked(node, k)) continue;
        bool empty = false;
        for (int d = 0; d < LC_MAX_DIMS; d++) empty = empty || t->ne[d] < 1;
        if (empty) continue;
        const VkDeviceSize span = vk_tensor_span(t);
        if (span > c->max_binding) {
            lc_error(LC_ERR_UNSUPPORTED,
                     "vulkan %s on %s: %s%d '%s' (%s, ne %lld x %lld x %lld x %lld) spans %llu bytes, more than one "
                     "storage-buffer binding (maxStorageBufferRange %llu bytes) and this op does not split it",
                     lc_op_name(node->op), c->label, k < LC_MAX_SRC ? "src" : "dst", k < LC_MAX_SRC ? k : k - LC_MAX_SRC,
                     t->name, lc_dtype_name(t->dtype), (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                     (long long)t->ne[3], (unsigned long long)span, (unsigned long long)c->max_binding);
            return false;
        }
    }
    return true;
}

static lc_status vkb_compute(void *ctx, lc_node *const *nodes, int n) {
    vk_ctx *c = ctx;
    if (!c || (n > 0 && !nodes)) return lc_error(LC_ERR_INVALID_ARG, "vulkan compute: NULL argument");
    for (int i = 0; i < n; i++) {
        const lc_node *node = nodes[i];
        if (!node || (int)node->op <= (int)LC_OP_NONE || (int)node->op >= (int)LC_OP_COUNT || !vk_ops[node->op]) {
            vk_submit(c);
            return lc_error(LC_ERR_UNSUPPORTED, "vulkan compute on %s: node %d has an unknown op", c->label, i);
        }
        vk_scratch_reset(c);
        c->cur_op = (int)node->op;
        lc_status st = vk_ops[node->op](c, node);
        c->cur_op = (int)LC_OP_NONE;
        if (st != LC_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", lc_last_error());
            vk_submit(c);
            return lc_error(st, "node %d (%s, output '%s'): %s", node->index, lc_op_name(node->op),
                            node->dst[0] ? node->dst[0]->name : "-", msg);
        }
    }
    return vk_submit(c);
}

static int validation_seen = 0;

static lc_status vkb_synchronize(void *ctx) {
    vk_ctx *c = ctx;
    if (!c) return lc_error(LC_ERR_INVALID_ARG, "vulkan synchronize: NULL context");
    lc_status st = vk_finish(c);
    if (st == LC_OK) st = vk_check_flags(c);
    if (st != LC_OK) return st;
    int errs = __atomic_load_n(&vk_validation_errors, __ATOMIC_RELAXED);
    if (c->validation && errs != validation_seen) {
        int fresh = errs - validation_seen;
        validation_seen = errs;
        return lc_error(LC_ERR_BACKEND, "vulkan on %s: the validation layer reported %d error(s) (printed on stderr)",
                        c->label, fresh);
    }
    return LC_OK;
}

static lc_status vkb_gemm(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha, void *a,
                          size_t off_a, int lda, void *b, size_t off_b, int ldb, float beta, void *cbuf, size_t off_c,
                          int ldc) {
    vk_ctx *c = ctx;
    if (!c || !a || !b || !cbuf) return lc_error(LC_ERR_INVALID_ARG, "vulkan gemm: NULL argument");
    if (off_a % 4 || off_b % 4 || off_c % 4)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan gemm: byte offsets (%zu, %zu, %zu) must be multiples of 4", off_a,
                        off_b, off_c);
    if (m < 1 || n < 1 || k < 1 || lda < 1 || ldb < 1 || ldc < n)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan gemm: bad sizes m=%d n=%d k=%d lda=%d ldb=%d ldc=%d", m, n, k, lda,
                        ldb, ldc);
    /* C = A·B with A [m][k] (or stored [k][m]), B [k][n] (or stored [n][k]); in vk_gemm_record's
     * terms C = A·B'ᵀ with B' = Bᵀ logical [n][k]: B' is stored transposed exactly when B is not. */
    vk_operand oa = {.buf = a, .off = off_a, .dtype = LC_F32, .trans = trans_a, .ld = (uint32_t)lda};
    vk_operand ob = {.buf = b, .off = off_b, .dtype = LC_F32, .trans = !trans_b, .ld = (uint32_t)ldb};
    vk_scratch_reset(c);
    lc_status st = vk_gemm_record(c, m, n, k, alpha, &oa, &ob, beta, cbuf, off_c, (uint32_t)ldc, LC_F32, "gemm");
    lc_status st2 = vk_submit(c);
    return st != LC_OK ? st : st2;
}

/* ---- the table -------------------------------------------------------------------------------- */

static const lc_backend_iface vk_iface = {
    .abi_version = LC_BACKEND_ABI_VERSION,
    .name = "vulkan",
    .device_count = vkb_device_count,
    .device_info = vkb_device_info,
    .open = vkb_open,
    .close = vkb_close,
    .buffer_alloc = vkb_buffer_alloc,
    .buffer_free = vkb_buffer_free,
    .buffer_upload = vkb_buffer_upload,
    .buffer_download = vkb_buffer_download,
    .buffer_clear = vkb_buffer_clear,
    .supports = vkb_supports,
    .run = NULL, /* single nodes go through compute */
    .compute = vkb_compute,
    .synchronize = vkb_synchronize,
    .gemm = vkb_gemm,
};

VK_EXPORT const lc_backend_iface *lorac_backend_entry(void) { return &vk_iface; }

/* Counters for the plugin's own tests (vk_stats.h). */

static void fill_stats(const vk_ctx *c, lorac_vulkan_stats_t *s) {
    s->pipeline_cache_loaded_bytes = (long long)c->pcache_loaded_bytes;
    s->pipelines_created = c->pipelines_created;
    s->validation_active = c->validation;
    s->gemm_kind = c->gemm_kind;
    s->unified_memory = c->unified;
    s->push_descriptors = c->push_descriptors;
    s->float64 = c->has_f64;
    snprintf(s->pipeline_cache_path, sizeof s->pipeline_cache_path, "%s", c->pcache_path);
}

VK_EXPORT void lorac_vulkan_stats(void *ctx, lorac_vulkan_stats_t *out) {
    const vk_ctx *c = ctx;
    lorac_vulkan_stats_t s = g_last_stats;
    if (c) fill_stats(c, &s);
    s.validation_errors = __atomic_load_n(&vk_validation_errors, __ATOMIC_RELAXED);
    s.validation_warnings = __atomic_load_n(&vk_validation_warnings, __ATOMIC_RELAXED);
    if (out) *out = s;
}
