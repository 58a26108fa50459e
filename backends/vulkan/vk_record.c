/* lorac Vulkan backend — command recording: batches, hazard tracking, descriptors, dispatch.
 *
 * A batch is one primary command buffer with its fence, descriptor pools, buffer views and the
 * buffers retired while it was recorded. `compute` records every node of a step into the current
 * batch and submits it once (no per-op queue wait); `synchronize` waits on the fences. Up to
 * VK_MAX_BATCHES batches are in flight; starting a new one recycles the oldest after its fence.
 *
 * Hazards: the byte ranges that commands read and write since the last barrier are kept in a
 * list. A new command that reads a range written since then (RAW), or writes a range read or
 * written since then (WAR / WAW), gets one global VkMemoryBarrier (compute + transfer stages,
 * shader and transfer read/write access) in front of it, which clears the list. Independent
 * dispatches therefore run without barriers between them. Every batch ends with a barrier that
 * makes device writes visible to the host (mapped memory on unified devices).
 *
 * Descriptors: VK_KHR_push_descriptor when the device has it, else descriptor sets allocated
 * from per-batch pools that are reset when the batch is recycled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define VK_POOL_SETS 512

lc_status vk_record_init(vk_ctx *c) {
    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = c->queue_family,
    };
    VkResult r = vkCreateCommandPool(c->device, &pci, NULL, &c->cmd_pool);
    if (r != VK_SUCCESS) return vk_fail(c, r, "vkCreateCommandPool");
    for (int i = 0; i < VK_MAX_BATCHES; i++) {
        vk_batch *b = &c->batches[i];
        VkCommandBufferAllocateInfo ai = {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
            .commandPool = c->cmd_pool,
            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
            .commandBufferCount = 1,
        };
        r = vkAllocateCommandBuffers(c->device, &ai, &b->cb);
        if (r != VK_SUCCESS) return vk_fail(c, r, "vkAllocateCommandBuffers");
        VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        r = vkCreateFence(c->device, &fci, NULL, &b->fence);
        if (r != VK_SUCCESS) return vk_fail(c, r, "vkCreateFence");
        if (c->profile) {
            VkQueryPoolCreateInfo qci = {
                .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                .queryType = VK_QUERY_TYPE_TIMESTAMP,
                .queryCount = 2 * VK_PROFILE_QUERIES,
            };
            r = vkCreateQueryPool(c->device, &qci, NULL, &b->queries);
            b->query_pipe = calloc(VK_PROFILE_QUERIES, sizeof *b->query_pipe);
            b->query_op = calloc(VK_PROFILE_QUERIES, sizeof *b->query_op);
            if (r != VK_SUCCESS || !b->query_pipe || !b->query_op) c->profile = false;
        }
    }
    c->cur = -1;
    c->next = 0;
    return LC_OK;
}

/* Add the batch's timestamps to the per-pipeline totals (LORAC_VULKAN_PROFILE). */
static void collect_profile(vk_ctx *c, vk_batch *b) {
    if (!c->profile || !b->queries || b->n_queries == 0 || !b->in_flight) return;
    uint64_t *t = malloc((size_t)b->n_queries * 2 * sizeof *t);
    if (t && vkGetQueryPoolResults(c->device, b->queries, 0, (uint32_t)b->n_queries * 2, (size_t)b->n_queries * 16, t, 8,
                                   VK_QUERY_RESULT_64_BIT) == VK_SUCCESS)
        for (int i = 0; i < b->n_queries; i++) {
            const double ns = t[2 * i + 1] >= t[2 * i] ? (double)(t[2 * i + 1] - t[2 * i]) * c->timestamp_ns : 0.0;
            const int op = b->query_op[i] > (int)LC_OP_NONE && b->query_op[i] < (int)LC_OP_COUNT ? b->query_op[i] : 0;
            c->prof_ns[b->query_pipe[i]] += ns;
            c->prof_count[b->query_pipe[i]]++;
            c->prof_op_ns[op][b->query_pipe[i]] += ns;
            c->prof_op_count[op][b->query_pipe[i]]++;
        }
    free(t);
}

/* Free what a completed (or never submitted) batch holds and make it reusable. */
static void batch_recycle(vk_ctx *c, vk_batch *b) {
    collect_profile(c, b);
    b->n_queries = 0;
    for (int i = 0; i < b->n_retired; i++) vk_buf_destroy(c, b->retired[i]);
    b->n_retired = 0;
    for (int i = 0; i < b->n_views; i++) vkDestroyBufferView(c->device, b->views[i], NULL);
    b->n_views = 0;
    for (int i = 0; i < b->n_pools; i++) vkResetDescriptorPool(c->device, b->pools[i], 0);
    b->cur_pool = 0;
    b->in_flight = false;
    b->n_dispatches = 0;
}

void vk_record_destroy(vk_ctx *c) {
    if (!c->device) return;
    vk_finish(c);
    for (int i = 0; i < VK_MAX_BATCHES; i++) {
        vk_batch *b = &c->batches[i];
        if (b->recording) {
            vkEndCommandBuffer(b->cb);
            b->recording = false;
        }
        batch_recycle(c, b);
        for (int j = 0; j < b->n_pools; j++) vkDestroyDescriptorPool(c->device, b->pools[j], NULL);
        free(b->pools);
        free(b->views);
        free(b->retired);
        free(b->query_pipe);
        free(b->query_op);
        if (b->queries) vkDestroyQueryPool(c->device, b->queries, NULL);
        if (b->fence) vkDestroyFence(c->device, b->fence, NULL);
        memset(b, 0, sizeof *b);
    }
    if (c->cmd_pool) vkDestroyCommandPool(c->device, c->cmd_pool, NULL);
    c->cmd_pool = VK_NULL_HANDLE;
    free(c->acc);
    c->acc = NULL;
    c->n_acc = c->cap_acc = 0;
}

static lc_status wait_batch(vk_ctx *c, vk_batch *b) {
    if (!b->in_flight) return LC_OK;
    VkResult r = vkWaitForFences(c->device, 1, &b->fence, VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS) return vk_fail(c, r, "vkWaitForFences");
    r = vkResetFences(c->device, 1, &b->fence);
    batch_recycle(c, b);
    if (r != VK_SUCCESS) return vk_fail(c, r, "vkResetFences");
    return LC_OK;
}

lc_status vk_begin(vk_ctx *c) {
    if (c->cur >= 0) return LC_OK;
    int idx = c->next;
    vk_batch *b = &c->batches[idx];
    lc_status st = wait_batch(c, b);
    if (st != LC_OK) return st;
    VkResult r = vkResetCommandBuffer(b->cb, 0);
    if (r != VK_SUCCESS) return vk_fail(c, r, "vkResetCommandBuffer");
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    r = vkBeginCommandBuffer(b->cb, &bi);
    if (r != VK_SUCCESS) return vk_fail(c, r, "vkBeginCommandBuffer");
    if (c->profile) vkCmdResetQueryPool(b->cb, b->queries, 0, 2 * VK_PROFILE_QUERIES);
    b->recording = true;
    c->cur = idx;
    c->next = (idx + 1) % VK_MAX_BATCHES;
    c->n_acc = 0;
    return LC_OK;
}

VkCommandBuffer vk_cmd(vk_ctx *c) { return c->cur >= 0 ? c->batches[c->cur].cb : VK_NULL_HANDLE; }

static void barrier(vk_ctx *c, VkPipelineStageFlags dst_stage, VkAccessFlags dst_access) {
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = dst_access,
    };
    vkCmdPipelineBarrier(vk_cmd(c), VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, dst_stage, 0,
                         1, &mb, 0, NULL, 0, NULL);
    c->n_acc = 0;
}

lc_status vk_submit(vk_ctx *c) {
    if (c->cur < 0) return LC_OK;
    vk_batch *b = &c->batches[c->cur];
    barrier(c, VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_ACCESS_HOST_READ_BIT | VK_ACCESS_HOST_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
    c->cur = -1;
    b->recording = false;
    VkResult r = vkEndCommandBuffer(b->cb);
    if (r != VK_SUCCESS) {
        batch_recycle(c, b);
        return vk_fail(c, r, "vkEndCommandBuffer");
    }
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &b->cb,
    };
    r = vkQueueSubmit(c->queue, 1, &si, b->fence);
    if (r != VK_SUCCESS) {
        batch_recycle(c, b);
        return vk_fail(c, r, "vkQueueSubmit");
    }
    b->in_flight = true;
    return LC_OK;
}

lc_status vk_finish(vk_ctx *c) {
    lc_status st = vk_submit(c), st2;
    /* oldest first: batches complete in submission order */
    for (int i = 0; i < VK_MAX_BATCHES; i++) {
        vk_batch *b = &c->batches[(c->next + i) % VK_MAX_BATCHES];
        if ((st2 = wait_batch(c, b)) != LC_OK && st == LC_OK) st = st2;
    }
    return st;
}

lc_status vk_retire(vk_ctx *c, vk_buf *b) {
    vk_batch *target = NULL;
    if (c->cur >= 0) {
        target = &c->batches[c->cur];
    } else {
        /* the most recently submitted batch still in flight completes last */
        for (int i = 1; i <= VK_MAX_BATCHES && !target; i++) {
            vk_batch *x = &c->batches[(c->next - i + VK_MAX_BATCHES) % VK_MAX_BATCHES];
            if (x->in_flight) target = x;
        }
    }
    if (!target) {
        vk_buf_destroy(c, b);
        return LC_OK;
    }
    if (target->n_retired == target->cap_retired) {
        int cap = target->cap_retired ? target->cap_retired * 2 : 16;
        vk_buf **p = realloc(target->retired, (size_t)cap * sizeof *p);
        if (!p) return lc_error(LC_ERR_NOMEM, "vulkan: out of host memory retiring a buffer");
        target->retired = p;
        target->cap_retired = cap;
    }
    target->retired[target->n_retired++] = b;
    return LC_OK;
}

/* ---- hazards ------------------------------------------------------------------------------ */

static bool conflicts(const vk_ctx *c, uint64_t id, VkDeviceSize off, VkDeviceSize size, bool write) {
    for (int i = 0; i < c->n_acc; i++) {
        const vk_access *a = &c->acc[i];
        if (a->buf_id != id || (!a->write && !write)) continue;
        if (off < a->off + a->size && a->off < off + size) return true;
    }
    return false;
}

static void add_access(vk_ctx *c, uint64_t id, VkDeviceSize off, VkDeviceSize size, bool write) {
    if (c->n_acc == c->cap_acc) {
        int cap = c->cap_acc ? c->cap_acc * 2 : 64;
        vk_access *p = realloc(c->acc, (size_t)cap * sizeof *p);
        if (!p) { /* cannot track: be safe */
            barrier(c, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                    VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                        VK_ACCESS_TRANSFER_WRITE_BIT);
            return;
        }
        c->acc = p;
        c->cap_acc = cap;
    }
    c->acc[c->n_acc++] = (vk_access){id, off, size, write};
}

static void full_barrier(vk_ctx *c) {
    barrier(c, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                VK_ACCESS_TRANSFER_WRITE_BIT);
}

void vk_hazard(vk_ctx *c, const vk_buf *b, VkDeviceSize off, VkDeviceSize size, bool write) {
    if (conflicts(c, b->id, off, size, write)) full_barrier(c);
    add_access(c, b->id, off, size, write);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static lc_status batch_view(vk_ctx *c, vk_batch *b, const vk_bind *bd, VkBufferView *out) {
    VkBufferViewCreateInfo vci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
        .buffer = bd->buf->buffer,
        .format = VK_FORMAT_R32G32B32A32_SFLOAT,
        .offset = bd->off,
        .range = bd->range,
    };
    if (b->n_views == b->cap_views) {
        int cap = b->cap_views ? b->cap_views * 2 : 64;
        VkBufferView *p = realloc(b->views, (size_t)cap * sizeof *p);
        if (!p) return lc_error(LC_ERR_NOMEM, "vulkan: out of host memory for buffer views");
        b->views = p;
        b->cap_views = cap;
    }
    VkResult r = vkCreateBufferView(c->device, &vci, NULL, out);
    if (r != VK_SUCCESS) return vk_fail(c, r, "vkCreateBufferView");
    b->views[b->n_views++] = *out;
    return LC_OK;
}

static lc_status batch_set(vk_ctx *c, vk_batch *b, vk_pipe_id pipe, VkDescriptorSet *out) {
    for (;;) {
        if (b->cur_pool < b->n_pools) {
            VkDescriptorSetAllocateInfo ai = {
                .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                .descriptorPool = b->pools[b->cur_pool],
                .descriptorSetCount = 1,
                .pSetLayouts = &c->set_layouts[pipe],
            };
            VkResult r = vkAllocateDescriptorSets(c->device, &ai, out);
            if (r == VK_SUCCESS) return LC_OK;
            if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
                return vk_fail(c, r, "vkAllocateDescriptorSets");
            b->cur_pool++;
            continue;
        }
        VkDescriptorPoolSize sizes[2] = {
            {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_POOL_SETS * VK_MAX_BINDINGS},
            {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, VK_POOL_SETS * 2},
        };
        VkDescriptorPoolCreateInfo pci = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
            .maxSets = VK_POOL_SETS,
            .poolSizeCount = 2,
            .pPoolSizes = sizes,
        };
        if (b->n_pools == b->cap_pools) {
            int cap = b->cap_pools ? b->cap_pools * 2 : 4;
            VkDescriptorPool *p = realloc(b->pools, (size_t)cap * sizeof *p);
            if (!p) return lc_error(LC_ERR_NOMEM, "vulkan: out of host memory for descriptor pools");
            b->pools = p;
            b->cap_pools = cap;
        }
        VkResult r = vkCreateDescriptorPool(c->device, &pci, NULL, &b->pools[b->n_pools]);
        if (r != VK_SUCCESS) return vk_fail(c, r, "vkCreateDescriptorPool");
        b->n_pools++;
    }
}

uint32_t vk_groups(const vk_ctx *c, uint64_t n, uint32_t per) {
    uint64_t g = (n + per - 1) / per;
    if (g < 1) g = 1;
    if (g > c->max_wg_count[0]) g = c->max_wg_count[0];
    if (g > 65535) g = 65535;
    /* CPU devices pay per workgroup (llvmpipe: setup of each group's invocations); a few hundred
     * groups keep every core busy and the kernels' grid-stride loops take the rest */
    if (c->is_cpu && g > c->cpu_groups) g = c->cpu_groups;
    return (uint32_t)g;
}

lc_status vk_dispatch(vk_ctx *c, vk_pipe_id pipe, const vk_spec *spec, const vk_bind *binds, int n_binds,
                      const void *push, size_t push_size, uint32_t gx, uint32_t gy, uint32_t gz) {
    const char *sig = vk_pipe_signature(pipe);
    if ((int)strlen(sig) != n_binds || push_size > VK_PUSH_BYTES)
        return lc_error(LC_ERR_BACKEND, "vulkan: internal error: %s dispatched with %d bindings (signature '%s') and "
                        "%zu bytes of push constants", vk_pipe_name(pipe), n_binds, sig, push_size);
    if (gx == 0 || gy == 0 || gz == 0) return LC_OK;
    if (gx > c->max_wg_count[0] || gy > c->max_wg_count[1] || gz > c->max_wg_count[2])
        return lc_error(LC_ERR_UNSUPPORTED, "vulkan %s on %s: %u x %u x %u workgroups exceed the device limit "
                        "(%u x %u x %u)", vk_pipe_name(pipe), c->label, gx, gy, gz, c->max_wg_count[0],
                        c->max_wg_count[1], c->max_wg_count[2]);
    VkPipeline pl;
    lc_status st = vk_pipeline_get(c, pipe, spec, &pl);
    if (st != LC_OK) return st;
    if ((st = vk_begin(c)) != LC_OK) return st;
    vk_batch *b = &c->batches[c->cur];

    VkDescriptorBufferInfo infos[VK_MAX_BINDINGS];
    VkBufferView views[VK_MAX_BINDINGS];
    VkWriteDescriptorSet writes[VK_MAX_BINDINGS];
    for (int i = 0; i < n_binds; i++) {
        const vk_bind *bd = &binds[i];
        if (!bd->buf) return lc_error(LC_ERR_BACKEND, "vulkan: internal error: %s binding %d is empty", vk_pipe_name(pipe), i);
        memset(&writes[i], 0, sizeof writes[i]);
        writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
        writes[i].dstBinding = (uint32_t)i;
        writes[i].descriptorCount = 1;
        if (sig[i] == 'T') {
            if ((st = batch_view(c, b, bd, &views[i])) != LC_OK) return st;
            writes[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
            writes[i].pTexelBufferView = &views[i];
        } else {
            infos[i] = (VkDescriptorBufferInfo){bd->buf->buffer, bd->off, bd->range};
            writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
            writes[i].pBufferInfo = &infos[i];
        }
    }
    /* hazards: first decide on a barrier for all bindings together, then record the accesses */
    bool need = false;
    for (int i = 0; i < n_binds && !need; i++)
        need = conflicts(c, binds[i].buf->id, binds[i].hz_off, binds[i].hz_size, binds[i].write);
    if (need) full_barrier(c);
    for (int i = 0; i < n_binds; i++) add_access(c, binds[i].buf->id, binds[i].hz_off, binds[i].hz_size, binds[i].write);

    VkCommandBuffer cb = b->cb;
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pl);
    if (c->push_descriptors) {
        c->cmd_push_descriptor_set(cb, VK_PIPELINE_BIND_POINT_COMPUTE, c->layouts[pipe], 0, (uint32_t)n_binds, writes);
    } else {
        VkDescriptorSet set;
        if ((st = batch_set(c, b, pipe, &set)) != LC_OK) return st;
        for (int i = 0; i < n_binds; i++) writes[i].dstSet = set;
        vkUpdateDescriptorSets(c->device, (uint32_t)n_binds, writes, 0, NULL);
        vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, c->layouts[pipe], 0, 1, &set, 0, NULL);
    }
    if (push_size) {
        uint8_t pc[VK_PUSH_BYTES];
        memset(pc, 0, sizeof pc);
        memcpy(pc, push, push_size);
        vkCmdPushConstants(cb, c->layouts[pipe], VK_SHADER_STAGE_COMPUTE_BIT, 0, VK_PUSH_BYTES, pc);
    }
    const bool timed = c->profile && b->n_queries < VK_PROFILE_QUERIES;
    if (timed) vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, b->queries, (uint32_t)(2 * b->n_queries));
    vkCmdDispatch(cb, gx, gy, gz);
    if (timed) {
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, b->queries, (uint32_t)(2 * b->n_queries + 1));
        b->query_pipe[b->n_queries] = pipe;
        b->query_op[b->n_queries++] = c->cur_op;
    }
    b->n_dispatches++;
    return LC_OK;
}

/* ---- tensors as bindings ------------------------------------------------------------------ */

VkDeviceSize vk_tensor_span(const lc_tensor *t) {
    /* last byte of the last row + 1; rows may be padded (nb[1] > row size) */
    size_t row = lc_row_size(t->dtype, t->ne[0]);
    if (row == 0) {
        uint32_t be, bb;
        if (vk_dtype_block((int)t->dtype, &be, &bb) && be && t->ne[0] % be == 0) row = (size_t)(t->ne[0] / be) * bb;
    }
    VkDeviceSize span = row;
    for (int d = 1; d < LC_MAX_DIMS; d++) span += (VkDeviceSize)(t->ne[d] - 1) * t->nb[d];
    return span;
}

lc_status vk_bind_range(vk_ctx *c, vk_buf *buf, VkDeviceSize off, VkDeviceSize size, bool write, const char *op,
                        vk_bind *b, uint32_t *elem, uint32_t unit) {
    VkDeviceSize base = off / c->ssbo_align * c->ssbo_align;
    if (unit > 1 && (off - base) % unit != 0)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s on %s: byte offset %llu is not a multiple of %u", op, c->label,
                        (unsigned long long)off, unit);
    /* tight: from the aligned start to the last byte rounded up to a whole 32-bit word (kernels
     * read quantized data as words). The hazard range is the binding range, which is also what
     * the validation layer's synchronization checks see. */
    VkDeviceSize end = (off + (size ? size : 1) + 3) / 4 * 4;
    if (end > buf->size) end = buf->size;
    VkDeviceSize range = end - base;
    if (range > c->max_binding)
        return lc_error(LC_ERR_UNSUPPORTED,
                        "vulkan %s on %s: a binding of %llu bytes exceeds the device's maxStorageBufferRange %llu", op,
                        c->label, (unsigned long long)range, (unsigned long long)c->max_binding);
    b->buf = buf;
    b->off = base;
    b->range = range;
    b->hz_off = base;
    b->hz_size = range;
    b->write = write;
    if (elem) *elem = (uint32_t)((off - base) / (unit ? unit : 1));
    return LC_OK;
}

lc_status vk_bind_tensor(vk_ctx *c, const lc_tensor *t, bool write, const char *op, const char *what, vk_bind *b,
                         uint32_t *elem, uint32_t unit) {
    if (!t) return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: %s is missing", op, what);
    if (!t->buffer || !t->buffer->impl)
        return lc_error(LC_ERR_STATE, "vulkan %s: %s '%s' has no device memory (graph not planned?)", op, what, t->name);
    vk_buf *buf = vk_tbuf(t);
    VkDeviceSize span = vk_tensor_span(t);
    if (t->offset + span > buf->size)
        return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: %s '%s' (offset %zu, %llu bytes) runs past its %llu-byte buffer",
                        op, what, t->name, t->offset, (unsigned long long)span, (unsigned long long)buf->size);
    lc_status st = vk_bind_range(c, buf, t->offset, span, write, op, b, elem, unit);
    if (st != LC_OK && lc_last_status() == LC_ERR_UNSUPPORTED)
        return lc_error(LC_ERR_UNSUPPORTED, "vulkan %s on %s: %s '%s' spans %llu bytes, more than the device's "
                        "maxStorageBufferRange %llu", op, c->label, what, t->name, (unsigned long long)span,
                        (unsigned long long)c->max_binding);
    return st;
}
