/*
 * vk_stream.c — batched command submission.
 *
 * graph_compute records every node of [first, last) into ONE command buffer and submits it with a
 * fence; synchronize waits for the fences. Between dispatches a barrier is inserted only when the
 * next dispatch touches bytes an earlier unbarriered one wrote (RAW/WAW) or writes bytes an
 * earlier one read (WAR), tracked per VkBuffer byte range, so independent nodes (the Q, K and V
 * projections) may overlap on the GPU. A small ring of command buffers lets the host record the
 * next graph while the previous one runs. Descriptor sets come from per-command-buffer pools that
 * are reset when its fence has signalled.
 *
 * Scratch: one device buffer per stream for the backend's own temporaries inside a recording (the
 * SDPA pre-pass's f16 copies), reused by every node and graph; ordering against earlier users is
 * the usual hazard tracking within a command buffer and the full barrier at the start of each one.
 * It only grows: then the other command buffers of the ring are waited for (they may read the old
 * buffer) and the old buffer is freed when the current one has completed (or failed to record).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define N_SLOTS 3
#define SETS_PER_POOL 256
#define MAX_HZ 96

typedef struct vk_slot {
    VkCommandBuffer cb;
    VkFence fence;
    bool pending;
    VkDescriptorPool *pools;
    int n_pools, cur;
    VkQueryPool qp;
    vk_buffer **retired; /* old scratch buffers the recording in this slot may use */
    int n_retired, cap_retired;
} vk_slot;

typedef struct hz_range {
    VkBuffer buf;
    VkDeviceSize lo, hi;
} hz_range;

struct vk_stream {
    vk_device *d;
    VkCommandPool pool;
    vk_slot slots[N_SLOTS];
    int next;
    hz_range writes[MAX_HZ], reads[MAX_HZ];
    int n_writes, n_reads;
    VkPipeline bound;
    int cur;               /* slot being recorded */
    double last_gpu_ms;
    vk_buffer *scratch;    /* sisa_vk_stream_scratch */
};

static sisa_status vk_status(VkResult r) {
    switch (r) {
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
    case VK_ERROR_OUT_OF_HOST_MEMORY: return SISA_OUT_OF_MEMORY;
    case VK_ERROR_DEVICE_LOST: return SISA_DEVICE_LOST;
    default: return SISA_INTERNAL;
    }
}

sisa_status sisa_vk_node_err(const vk_rec *r, VkResult res, const char *what) {
    char d[160];
    if (res == VK_SUCCESS)
        return sisa_err(SISA_INTERNAL, VKB ": node %d %s (op %s): %s", r->node_index,
                        sisa_tensor_describe(r->node, d, sizeof d), sisa_op_name(r->node->op), what);
    return sisa_err(vk_status(res), VKB ": node %d %s (op %s): %s: %s (%d)", r->node_index,
                    sisa_tensor_describe(r->node, d, sizeof d), sisa_op_name(r->node->op), what,
                    sisa_vk_result_name(res), res);
}

void sisa_vk_grid(const vk_device *d, uint64_t n, uint32_t *gx, uint32_t *gy) {
    uint64_t mx = d->max_groups[0] < 65535u ? d->max_groups[0] : 65535u;
    if (n == 0) n = 1;
    *gx = (uint32_t)(n < mx ? n : mx);
    *gy = (uint32_t)((n + *gx - 1) / *gx);
}

/* ---- slots ---- */

static void slot_free_retired(vk_slot *sl) {
    for (int i = 0; i < sl->n_retired; i++) sisa_vk_buffer_destroy(sl->retired[i]);
    sl->n_retired = 0;
}

static sisa_status slot_wait(vk_stream *s, vk_slot *sl) {
    if (!sl->pending) {
        slot_free_retired(sl); /* nothing submitted uses them (a failed recording) */
        return SISA_OK;
    }
    vk_device *d = s->d;
    VkResult r = vkf.vkWaitForFences(d->dev, 1, &sl->fence, VK_TRUE, UINT64_MAX);
    sl->pending = false;
    if (r != VK_SUCCESS)
        return sisa_err(vk_status(r), VKB ": waiting for device '%s': %s (%d)", d->props.deviceName,
                        sisa_vk_result_name(r), r);
    if (sl->qp) {
        uint64_t ts[2] = {0, 0};
        if (vkf.vkGetQueryPoolResults(d->dev, sl->qp, 0, 2, sizeof ts, ts, sizeof ts[0],
                                      VK_QUERY_RESULT_64_BIT) == VK_SUCCESS)
            s->last_gpu_ms = (double)(ts[1] - ts[0]) * d->timestamp_period * 1e-6;
    }
    for (int i = 0; i < sl->n_pools; i++) vkf.vkResetDescriptorPool(d->dev, sl->pools[i], 0);
    sl->cur = 0;
    slot_free_retired(sl);
    return SISA_OK;
}

/* ---- scratch ---- */

sisa_status sisa_vk_stream_scratch(vk_rec *r, uint64_t bytes, vk_buffer **out, char *why) {
    vk_stream *s = r->s;
    *out = NULL;
    if (s->scratch && s->scratch->size >= bytes) {
        *out = s->scratch;
        return SISA_OK;
    }
    vk_slot *sl = &s->slots[s->cur];
    if (s->scratch && sl->n_retired == sl->cap_retired) { /* room to retire the old one first */
        int cap = sl->cap_retired ? 2 * sl->cap_retired : 4;
        vk_buffer **nr = realloc(sl->retired, (size_t)cap * sizeof *nr);
        if (!nr) return sisa_err(SISA_OUT_OF_MEMORY, VKB ": out of host memory");
        sl->retired = nr, sl->cap_retired = cap;
    }
    /* earlier graphs may still read the old buffer: wait for them (growing is rare) */
    if (s->scratch)
        for (int k = 0; k < N_SLOTS; k++)
            if (k != s->cur) SISA_TRY(slot_wait(s, &s->slots[k]));
    vk_buffer *nb = NULL;
    if (sisa_vk_buffer_create(s->d, (size_t)bytes, &nb) != SISA_OK) {
        snprintf(why, SISA_REASON_LEN, "scratch of %llu bytes: %s", (unsigned long long)bytes, sisa_last_error());
        return SISA_OK;
    }
    if (s->scratch) sl->retired[sl->n_retired++] = s->scratch;
    s->scratch = nb;
    if (sisa_vk_debug()) fprintf(stderr, "sisa vulkan: stream scratch now %llu bytes\n", (unsigned long long)nb->size);
    *out = nb;
    return SISA_OK;
}

static sisa_status alloc_set(vk_rec *rec, vk_slot *sl, VkDescriptorSet *set) {
    vk_device *d = rec->d;
    for (;;) {
        if (sl->cur < sl->n_pools) {
            VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                              .descriptorPool = sl->pools[sl->cur], .descriptorSetCount = 1,
                                              .pSetLayouts = &d->dsl};
            VkResult r = vkf.vkAllocateDescriptorSets(d->dev, &ai, set);
            if (r == VK_SUCCESS) return SISA_OK;
            if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
                return sisa_vk_node_err(rec, r, "vkAllocateDescriptorSets");
            sl->cur++;
            continue;
        }
        VkDescriptorPool *np = realloc(sl->pools, (size_t)(sl->n_pools + 1) * sizeof *np);
        if (!np) return sisa_err(SISA_OUT_OF_MEMORY, VKB ": out of host memory");
        sl->pools = np;
        VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * VK_BINDINGS};
        VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                         .maxSets = SETS_PER_POOL, .poolSizeCount = 1, .pPoolSizes = &ps};
        VkResult r = vkf.vkCreateDescriptorPool(d->dev, &pi, NULL, &sl->pools[sl->n_pools]);
        if (r != VK_SUCCESS) return sisa_vk_node_err(rec, r, "vkCreateDescriptorPool");
        sl->n_pools++;
    }
}

/* ---- hazards ---- */

static bool overlaps(const hz_range *list, int n, VkBuffer buf, VkDeviceSize lo, VkDeviceSize hi) {
    for (int i = 0; i < n; i++)
        if (list[i].buf == buf && list[i].lo < hi && lo < list[i].hi) return true;
    return false;
}

static void barrier(vk_stream *s, VkCommandBuffer cb) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    vkf.vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0,
                             1, &mb, 0, NULL, 0, NULL);
    s->n_writes = s->n_reads = 0;
}

static void track(vk_stream *s, VkCommandBuffer cb, const vk_bind b[VK_BINDINGS]) {
    bool need = false;
    for (int i = 0; i < VK_BINDINGS && !need; i++) {
        if (!b[i].buf) continue;
        VkDeviceSize lo = b[i].off, hi = b[i].off + b[i].range;
        if (i == 6) need = overlaps(s->writes, s->n_writes, b[i].buf, lo, hi) ||
                           overlaps(s->reads, s->n_reads, b[i].buf, lo, hi);
        else need = overlaps(s->writes, s->n_writes, b[i].buf, lo, hi);
    }
    int n_r = 0;
    for (int i = 0; i < VK_BINDINGS; i++) n_r += b[i].buf && i != 6;
    if (need || s->n_writes + 1 > MAX_HZ || s->n_reads + n_r > MAX_HZ) barrier(s, cb);
    for (int i = 0; i < VK_BINDINGS; i++) {
        if (!b[i].buf) continue;
        hz_range h = {b[i].buf, b[i].off, b[i].off + b[i].range};
        if (i == 6) s->writes[s->n_writes++] = h;
        else s->reads[s->n_reads++] = h;
    }
}

/* ---- dispatch ---- */

sisa_status sisa_vk_dispatch(vk_rec *r, int shader, const uint32_t spec[VK_SPEC_N],
                             const vk_bind binds[VK_BINDINGS], const void *pc, size_t pc_size,
                             uint32_t gx, uint32_t gy, uint32_t gz) {
    vk_device *d = r->d;
    vk_stream *s = r->s;
    if (gx == 0 || gy == 0 || gz == 0) return SISA_OK;
    if (gx > d->max_groups[0] || gy > d->max_groups[1] || gz > d->max_groups[2])
        return sisa_vk_node_err(r, VK_SUCCESS, "workgroup grid exceeds maxComputeWorkGroupCount");
    if (pc_size > VK_PUSH_MAX || pc_size > d->max_push)
        return sisa_vk_node_err(r, VK_SUCCESS, "push constants exceed the device limit");
    VkPipeline pipe;
    sisa_status st = sisa_vk_pipeline_get(d, shader, spec, &pipe);
    if (st != SISA_OK) {
        char desc[160];
        return sisa_err_prefix(st, "node %d %s (op %s)", r->node_index,
                               sisa_tensor_describe(r->node, desc, sizeof desc), sisa_op_name(r->node->op));
    }
    vk_slot *sl = &s->slots[s->cur];
    VkDescriptorSet set;
    SISA_TRY(alloc_set(r, sl, &set));
    VkDescriptorBufferInfo info[VK_BINDINGS];
    VkWriteDescriptorSet w[VK_BINDINGS];
    for (uint32_t i = 0; i < VK_BINDINGS; i++) {
        info[i] = binds[i].buf ? (VkDescriptorBufferInfo){binds[i].buf, binds[i].off, binds[i].range}
                               : (VkDescriptorBufferInfo){d->dummy, 0, VK_WHOLE_SIZE};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set,
                                      .dstBinding = i, .descriptorCount = 1,
                                      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &info[i]};
    }
    vkf.vkUpdateDescriptorSets(d->dev, VK_BINDINGS, w, 0, NULL);
    track(s, r->cb, binds);
    if (pipe != s->bound) {
        vkf.vkCmdBindPipeline(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
        s->bound = pipe;
    }
    vkf.vkCmdBindDescriptorSets(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, d->layout, 0, 1, &set, 0, NULL);
    if (pc_size) vkf.vkCmdPushConstants(r->cb, d->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, (uint32_t)pc_size, pc);
    vkf.vkCmdDispatch(r->cb, gx, gy, gz);
    return SISA_OK;
}

/* ---- stream vtable ---- */

static sisa_status check_storage(const vk_rec *r, const sisa_tensor *t, const char *role) {
    char desc[160];
    if (!t->buffer)
        return sisa_err(SISA_INVALID_ARG, VKB ": node %d (op %s): %s %s has no storage", r->node_index,
                        sisa_op_name(r->node->op), role, sisa_tensor_describe(t, desc, sizeof desc));
    if (!t->buffer->device || t->buffer->device->ctx != r->d)
        return sisa_err(SISA_INVALID_ARG, VKB ": node %d (op %s): %s %s lives on another device", r->node_index,
                        sisa_op_name(r->node->op), role, sisa_tensor_describe(t, desc, sizeof desc));
    return SISA_OK;
}

static sisa_status record_nodes(vk_stream *s, vk_rec *rec, sisa_graph *g, int first, int last) {
    for (int i = first; i < last; i++) {
        sisa_tensor *n = g->nodes[i];
        if (n->op == SISA_OP_VIEW || n->op == SISA_OP_NONE) continue;
        rec->node = n;
        rec->node_index = i;
        char reason[SISA_REASON_LEN] = "";
        vk_kernel k;
        if (!sisa_vk_select(s->d, n, &k, reason)) {
            char desc[160];
            return sisa_err(SISA_UNSUPPORTED, VKB ": node %d %s (op %s) cannot run here: %s", i,
                            sisa_tensor_describe(n, desc, sizeof desc), sisa_op_name(n->op), reason);
        }
        SISA_TRY(check_storage(rec, n, "destination"));
        for (int j = 0; j < SISA_MAX_SRC; j++)
            if (n->src[j]) SISA_TRY(check_storage(rec, n->src[j], "source"));
        SISA_TRY(sisa_vk_record(rec, n, &k));
        /* a node writing a weight's bytes (a KV cache, a pinned buffer) makes their f16 shadows
         * stale: a later MATMUL in this command buffer converts again, after this write */
        sisa_vk_shadow_written(s->d, n->buffer->ctx, n->offset, n->offset + sisa_tensor_span_bytes(n));
    }
    return SISA_OK;
}

static sisa_status stream_compute(sisa_stream *ss, sisa_graph *g, int first, int last) {
    vk_stream *s = ss->ctx;
    vk_device *d = s->d;
    if (first >= last) return SISA_OK;
    vk_slot *sl = &s->slots[s->next];
    SISA_TRY(slot_wait(s, sl));
    s->cur = s->next;
    s->next = (s->next + 1) % N_SLOTS;
    vk_rec rec = {.s = s, .d = d, .cb = sl->cb};
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkf.vkResetCommandBuffer(sl->cb, 0);
    if (r == VK_SUCCESS) r = vkf.vkBeginCommandBuffer(sl->cb, &bi);
    if (r != VK_SUCCESS)
        return sisa_err(vk_status(r), VKB ": vkBeginCommandBuffer: %s (%d)", sisa_vk_result_name(r), r);
    /* everything submitted before (transfers, earlier graphs) is visible to this graph */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT |
                                           VK_ACCESS_HOST_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    vkf.vkCmdPipelineBarrier(sl->cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                             VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    s->n_writes = s->n_reads = 0;
    s->bound = VK_NULL_HANDLE;
    if (sl->qp) {
        vkf.vkCmdResetQueryPool(sl->cb, sl->qp, 0, 2);
        vkf.vkCmdWriteTimestamp(sl->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, sl->qp, 0);
    }
    rec.serial = sisa_vk_shadow_begin(d); /* f16 shadows converted in this command buffer */
    sisa_status st = record_nodes(s, &rec, g, first, last);
    if (sl->qp) vkf.vkCmdWriteTimestamp(sl->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, sl->qp, 1);
    r = vkf.vkEndCommandBuffer(sl->cb);
    if (st != SISA_OK) {
        sisa_vk_shadow_end(d, rec.serial, false);
        vkf.vkResetCommandBuffer(sl->cb, 0);
        for (int i = 0; i < sl->n_pools; i++) vkf.vkResetDescriptorPool(d->dev, sl->pools[i], 0);
        sl->cur = 0;
        slot_free_retired(sl);
        return st;
    }
    if (r != VK_SUCCESS) {
        sisa_vk_shadow_end(d, rec.serial, false);
        slot_free_retired(sl);
        return sisa_err(vk_status(r), VKB ": vkEndCommandBuffer: %s (%d)", sisa_vk_result_name(r), r);
    }
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &sl->cb};
    pthread_mutex_lock(&d->queue_lock);
    r = vkf.vkResetFences(d->dev, 1, &sl->fence);
    if (r == VK_SUCCESS) r = vkf.vkQueueSubmit(d->queue, 1, &si, sl->fence);
    pthread_mutex_unlock(&d->queue_lock);
    sisa_vk_shadow_end(d, rec.serial, r == VK_SUCCESS);
    if (r != VK_SUCCESS)
        return sisa_err(vk_status(r), VKB ": vkQueueSubmit of nodes [%d, %d) on '%s': %s (%d)", first, last,
                        d->props.deviceName, sisa_vk_result_name(r), r);
    sl->pending = true;
    return SISA_OK;
}

static sisa_status stream_sync(sisa_stream *ss) {
    vk_stream *s = ss->ctx;
    sisa_status first_err = SISA_OK;
    /* oldest first, so timings refer to the last graph */
    for (int k = 0; k < N_SLOTS; k++) {
        sisa_status st = slot_wait(s, &s->slots[(s->next + k) % N_SLOTS]);
        if (st != SISA_OK && first_err == SISA_OK) first_err = st;
    }
    return first_err;
}

static void stream_free(sisa_stream *ss) {
    if (!ss) return;
    vk_stream *s = ss->ctx;
    if (s) {
        vk_device *d = s->d;
        stream_sync(ss);
        for (int k = 0; k < N_SLOTS; k++) {
            vk_slot *sl = &s->slots[k];
            for (int i = 0; i < sl->n_pools; i++) vkf.vkDestroyDescriptorPool(d->dev, sl->pools[i], NULL);
            free(sl->pools);
            if (sl->fence) vkf.vkDestroyFence(d->dev, sl->fence, NULL);
            if (sl->qp) vkf.vkDestroyQueryPool(d->dev, sl->qp, NULL);
            slot_free_retired(sl);
            free(sl->retired);
        }
        if (s->scratch) sisa_vk_buffer_destroy(s->scratch);
        if (s->pool) vkf.vkDestroyCommandPool(d->dev, s->pool, NULL);
        free(s);
    }
    free(ss);
}

double sisa_vk_stream_last_gpu_ms(sisa_stream *ss) {
    vk_stream *s = ss->ctx;
    return s->d->timestamps ? s->last_gpu_ms : -1.0;
}

static const sisa_stream_iface vk_stream_iface = {
    .free = stream_free, .graph_compute = stream_compute, .synchronize = stream_sync};

sisa_status sisa_vk_stream_new(sisa_device *sd, sisa_stream **out) {
    *out = NULL;
    vk_device *d = vk_dev(sd);
    sisa_stream *ss = calloc(1, sizeof *ss);
    vk_stream *s = calloc(1, sizeof *s);
    if (!ss || !s) {
        free(ss);
        free(s);
        return sisa_err(SISA_OUT_OF_MEMORY, VKB ": out of host memory for a stream");
    }
    *ss = (sisa_stream){.iface = &vk_stream_iface, .ctx = s, .device = sd};
    s->d = d;
    s->last_gpu_ms = -1.0;
    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = d->queue_family};
    VkResult r = vkf.vkCreateCommandPool(d->dev, &pi, NULL, &s->pool);
    for (int k = 0; k < N_SLOTS && r == VK_SUCCESS; k++) {
        VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .commandPool = s->pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                          .commandBufferCount = 1};
        r = vkf.vkAllocateCommandBuffers(d->dev, &ai, &s->slots[k].cb);
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        if (r == VK_SUCCESS) r = vkf.vkCreateFence(d->dev, &fi, NULL, &s->slots[k].fence);
        if (r == VK_SUCCESS && d->timestamps) {
            VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                        .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = 2};
            if (vkf.vkCreateQueryPool(d->dev, &qi, NULL, &s->slots[k].qp) != VK_SUCCESS) s->slots[k].qp = VK_NULL_HANDLE;
        }
    }
    if (r != VK_SUCCESS) {
        stream_free(ss);
        return sisa_err(vk_status(r), VKB ": creating a stream on '%s': %s (%d)", d->props.deviceName,
                        sisa_vk_result_name(r), r);
    }
    *out = ss;
    return SISA_OK;
}
