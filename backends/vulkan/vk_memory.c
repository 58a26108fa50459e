/* lorac Vulkan backend — device buffers, host transfers and per-op scratch memory.
 *
 * Every lorac buffer is one VkBuffer with its own VkDeviceMemory (usage: storage buffer,
 * uniform texel buffer, transfer source and destination), sized up to a multiple of 256 bytes so
 * that kernels may read whole 32-bit words and 16-byte texels at the end of a tensor.
 *
 * Unified devices (lavapipe, integrated GPUs with a DEVICE_LOCAL | HOST_VISIBLE | HOST_COHERENT
 * type, see vk_device.c): memory is mapped once; upload / download / clear wait for the work in
 * flight (vk_finish) and then memcpy / memset. Discrete devices: transfers go through one
 * host-visible staging buffer (VK_STAGING_BYTES, chunked), recorded as vkCmdCopyBuffer and waited
 * for; clears are vkCmdFillBuffer over the 4-byte aligned middle plus copies from a zero buffer
 * for unaligned ends, recorded into the current batch like any dispatch.
 *
 * Scratch: ops that need temporaries (packed GEMM operands, partial sums, dropout masks) take
 * 256-byte aligned ranges from one growing scratch buffer with a bump pointer that is reset at the
 * start of every op; hazard tracking (vk_record.c) orders reuse across ops. When it grows, the old
 * buffer is retired (freed when the batch that may use it completes).
 */
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define VK_STAGING_BYTES ((VkDeviceSize)16 << 20)
#define VK_ZERO_BYTES ((VkDeviceSize)64 << 10)
#define VK_SCRATCH_MIN ((VkDeviceSize)16 << 20)

static VkDeviceSize round_up(VkDeviceSize x, VkDeviceSize a) { return (x + a - 1) / a * a; }

lc_status vk_buf_create(vk_ctx *c, VkDeviceSize size, bool staging, vk_buf **out) {
    *out = NULL;
    VkDeviceSize padded = round_up(size ? size : 1, 256);
    if (padded > c->max_alloc)
        return lc_error(LC_ERR_DEVICE_NOMEM,
                        "vkAllocateMemory on %s: %llu bytes is more than the device's maxMemoryAllocationSize %llu",
                        c->label, (unsigned long long)size, (unsigned long long)c->max_alloc);
    vk_buf *b = calloc(1, sizeof *b);
    if (!b) return lc_error(LC_ERR_NOMEM, "vulkan buffer_alloc: out of host memory");
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = padded,
        .usage = staging ? (VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT)
                         : (VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                            VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT),
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vkCreateBuffer(c->device, &bci, NULL, &b->buffer);
    if (r != VK_SUCCESS) {
        free(b);
        return vk_fail(c, r, "vkCreateBuffer");
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->device, b->buffer, &req);
    uint32_t type = staging ? c->mem_staging : c->mem_device;
    if (!(req.memoryTypeBits & (1u << type))) {
        vkDestroyBuffer(c->device, b->buffer, NULL);
        free(b);
        return lc_error(LC_ERR_BACKEND, "vkGetBufferMemoryRequirements on %s: memory type %u is not allowed for a buffer",
                        c->label, type);
    }
    VkMemoryAllocateInfo mai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = type,
    };
    r = vkAllocateMemory(c->device, &mai, NULL, &b->memory);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(c->device, b->buffer, NULL);
        free(b);
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
            return lc_error(LC_ERR_DEVICE_NOMEM, "vkAllocateMemory failed on %s: %s for %llu bytes", c->label,
                            vk_result_name(r), (unsigned long long)padded);
        return vk_fail(c, r, "vkAllocateMemory");
    }
    r = vkBindBufferMemory(c->device, b->buffer, b->memory, 0);
    if (r != VK_SUCCESS) {
        vkFreeMemory(c->device, b->memory, NULL);
        vkDestroyBuffer(c->device, b->buffer, NULL);
        free(b);
        return vk_fail(c, r, "vkBindBufferMemory");
    }
    b->size = padded;
    b->id = ++c->next_buf_id;
    VkMemoryPropertyFlags f = c->memprops.memoryTypes[type].propertyFlags;
    if ((staging || c->unified) && (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)) {
        r = vkMapMemory(c->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped);
        if (r != VK_SUCCESS) {
            vk_buf_destroy(c, b);
            return vk_fail(c, r, "vkMapMemory");
        }
    }
    *out = b;
    return LC_OK;
}

void vk_buf_destroy(vk_ctx *c, vk_buf *b) {
    if (!b) return;
    if (b->mapped) vkUnmapMemory(c->device, b->memory);
    if (b->buffer) vkDestroyBuffer(c->device, b->buffer, NULL);
    if (b->memory) vkFreeMemory(c->device, b->memory, NULL);
    free(b);
}

void vk_buf_release(vk_ctx *c, vk_buf *b) {
    if (!b) return;
    if (vk_retire(c, b) != LC_OK) {
        /* could not queue it: wait for everything, then free */
        vk_finish(c);
        vk_buf_destroy(c, b);
    }
}

/* ---- transfers --------------------------------------------------------------------------- */

static lc_status ensure_staging(vk_ctx *c) {
    if (c->staging) return LC_OK;
    return vk_buf_create(c, VK_STAGING_BYTES, true, &c->staging);
}

static void copy_cmd(vk_ctx *c, vk_buf *src, VkDeviceSize so, vk_buf *dst, VkDeviceSize doff, VkDeviceSize n) {
    vk_hazard(c, src, so, n, false);
    vk_hazard(c, dst, doff, n, true);
    VkBufferCopy reg = {.srcOffset = so, .dstOffset = doff, .size = n};
    vkCmdCopyBuffer(vk_cmd(c), src->buffer, dst->buffer, 1, &reg);
}

lc_status vk_upload(vk_ctx *c, vk_buf *b, size_t off, const void *src, size_t size) {
    if (size == 0) return LC_OK;
    if (off > b->size || size > b->size - off)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan buffer_upload on %s: range [%zu, +%zu) is past the %llu-byte buffer",
                        c->label, off, size, (unsigned long long)b->size);
    lc_status st = vk_finish(c);
    if (st != LC_OK) return st;
    if (b->mapped) {
        memcpy((char *)b->mapped + off, src, size);
        return LC_OK;
    }
    if ((st = ensure_staging(c)) != LC_OK) return st;
    for (size_t done = 0; done < size;) {
        size_t n = size - done < VK_STAGING_BYTES ? size - done : (size_t)VK_STAGING_BYTES;
        memcpy(c->staging->mapped, (const char *)src + done, n);
        if ((st = vk_begin(c)) != LC_OK) return st;
        copy_cmd(c, c->staging, 0, b, off + done, n);
        if ((st = vk_finish(c)) != LC_OK) return st;
        done += n;
    }
    return LC_OK;
}

lc_status vk_download(vk_ctx *c, vk_buf *b, size_t off, void *dst, size_t size) {
    if (size == 0) return LC_OK;
    if (off > b->size || size > b->size - off)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan buffer_download on %s: range [%zu, +%zu) is past the %llu-byte buffer",
                        c->label, off, size, (unsigned long long)b->size);
    lc_status st = vk_finish(c);
    if (st != LC_OK) return st;
    if (b->mapped) {
        memcpy(dst, (const char *)b->mapped + off, size);
        return LC_OK;
    }
    if ((st = ensure_staging(c)) != LC_OK) return st;
    for (size_t done = 0; done < size;) {
        size_t n = size - done < VK_STAGING_BYTES ? size - done : (size_t)VK_STAGING_BYTES;
        if ((st = vk_begin(c)) != LC_OK) return st;
        copy_cmd(c, b, off + done, c->staging, 0, n);
        if ((st = vk_finish(c)) != LC_OK) return st;
        memcpy((char *)dst + done, c->staging->mapped, n);
        done += n;
    }
    return LC_OK;
}

static lc_status ensure_zero(vk_ctx *c) {
    if (c->zero) return LC_OK;
    lc_status st = vk_buf_create(c, VK_ZERO_BYTES, false, &c->zero);
    if (st != LC_OK) return st;
    if (c->zero->mapped) {
        memset(c->zero->mapped, 0, (size_t)c->zero->size);
        return LC_OK;
    }
    if ((st = vk_begin(c)) != LC_OK) return st;
    vk_hazard(c, c->zero, 0, c->zero->size, true);
    vkCmdFillBuffer(vk_cmd(c), c->zero->buffer, 0, VK_WHOLE_SIZE, 0);
    return LC_OK;
}

/* Zero [off, off+size) with copies from the zero buffer (any alignment). */
static lc_status clear_by_copy(vk_ctx *c, vk_buf *b, VkDeviceSize off, VkDeviceSize size) {
    lc_status st = ensure_zero(c);
    if (st != LC_OK) return st;
    while (size > 0) {
        VkDeviceSize n = size < c->zero->size ? size : c->zero->size;
        copy_cmd(c, c->zero, 0, b, off, n);
        off += n;
        size -= n;
    }
    return LC_OK;
}

lc_status vk_clear(vk_ctx *c, vk_buf *b, size_t off, size_t size) {
    if (size == 0) return LC_OK;
    if (off > b->size || size > b->size - off)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan buffer_clear on %s: range [%zu, +%zu) is past the %llu-byte buffer",
                        c->label, off, size, (unsigned long long)b->size);
    lc_status st;
    if (b->mapped && c->cur < 0) {
        if ((st = vk_finish(c)) != LC_OK) return st;
        memset((char *)b->mapped + off, 0, size);
        return LC_OK;
    }
    if ((st = vk_begin(c)) != LC_OK) return st;
    VkDeviceSize a0 = round_up(off, 4), a1 = (off + size) / 4 * 4;
    if (a1 > a0) {
        if (a0 > off && (st = clear_by_copy(c, b, off, a0 - off)) != LC_OK) return st;
        vk_hazard(c, b, a0, a1 - a0, true);
        vkCmdFillBuffer(vk_cmd(c), b->buffer, a0, a1 - a0, 0);
        if (off + size > a1 && (st = clear_by_copy(c, b, a1, off + size - a1)) != LC_OK) return st;
        return LC_OK;
    }
    return clear_by_copy(c, b, off, size);
}

/* ---- scratch ------------------------------------------------------------------------------ */

lc_status vk_scratch(vk_ctx *c, VkDeviceSize size, vk_buf **buf, VkDeviceSize *off) {
    VkDeviceSize need = round_up(size ? size : 16, 256);
    if (!c->scratch || c->scratch_used + need > c->scratch->size) {
        VkDeviceSize cap = c->scratch ? c->scratch->size * 2 : VK_SCRATCH_MIN;
        while (cap < need) cap *= 2;
        if (cap > c->max_alloc) cap = c->max_alloc;
        if (need > cap)
            return lc_error(LC_ERR_DEVICE_NOMEM, "vulkan scratch on %s: %llu bytes of temporaries exceed the "
                            "maxMemoryAllocationSize %llu", c->label, (unsigned long long)need,
                            (unsigned long long)c->max_alloc);
        vk_buf *nb = NULL;
        lc_status st = vk_buf_create(c, cap, false, &nb);
        if (st != LC_OK) return st;
        if (c->scratch) {
            /* ranges already handed out for this op stay valid: the old buffer lives until its
             * batch completes. New ranges come from the new buffer. */
            vk_buf_release(c, c->scratch);
        }
        c->scratch = nb;
        c->scratch_used = 0;
    }
    *buf = c->scratch;
    *off = c->scratch_used;
    c->scratch_used += need;
    return LC_OK;
}

void vk_scratch_reset(vk_ctx *c) { c->scratch_used = 0; }

/* ---- error flags -------------------------------------------------------------------------- */

lc_status vk_bind_flags(vk_ctx *c, vk_bind *b) {
    if (!c->flags) {
        lc_status st = vk_buf_create(c, 256, false, &c->flags);
        if (st != LC_OK) return st;
        if ((st = vk_clear(c, c->flags, 0, 256)) != LC_OK) return st;
    }
    c->flags_armed = true;
    return vk_bind_range(c, c->flags, 0, 4, true, "error flags", b, NULL, 4);
}

lc_status vk_check_flags(vk_ctx *c) {
    if (!c->flags_armed || !c->flags) return LC_OK;
    c->flags_armed = false;
    uint32_t v = 0;
    lc_status st = vk_download(c, c->flags, 0, &v, sizeof v);
    if (st != LC_OK) return st;
    if (v == 0) return LC_OK;
    uint32_t zero = 0;
    if ((st = vk_upload(c, c->flags, 0, &zero, sizeof zero)) != LC_OK) return st;
    return lc_error(LC_ERR_INVALID_ARG, "vulkan on %s: %s read an id outside the table [0, V) (its row was set to 0)",
                    c->label, (v & 1u) ? "get_rows" : "get_rows_back");
}
