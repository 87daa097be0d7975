/*
 * vk_memory.c — device buffers and host transfers.
 *
 * Every sisa_buffer is one VkBuffer (usage: storage + transfer src/dst). Small buffers (up to a
 * quarter of a block) are sub-allocated from 256 MiB memory blocks (first fit, coalescing free
 * list) so a model with hundreds of weight tensors stays far below maxMemoryAllocationCount;
 * larger ones get a dedicated allocation. No buffer exceeds min(maxMemoryAllocationSize,
 * maxBufferSize) (reported as max_buffer_bytes, checked by the registry and here); the
 * maxStorageBufferRange limit is a binding-time concern (vk_split.c).
 *
 * Host access: on unified-memory devices (integrated GPUs, lavapipe) memory is host-visible and
 * coherent and read/write/fill are memcpy/memset on a persistent mapping; elsewhere they go
 * through one host-visible staging buffer in chunks. Both wait for the queue to be idle first,
 * so a read after graph_compute sees its results even without an explicit synchronize. A write or
 * fill makes the f16 shadows of the bytes it touches stale, and a freed buffer's shadows go with it
 * (vk_shadow.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define BLOCK_SIZE ((VkDeviceSize)256 << 20)
#define STAGING_SIZE ((size_t)32 << 20)
#define USAGE (VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | \
               VK_BUFFER_USAGE_TRANSFER_DST_BIT)

typedef struct vk_range {
    VkDeviceSize off, size;
} vk_range;

struct vk_block {
    vk_block *next;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *mapped;
    vk_range *free;
    int n_free, cap_free;
    int live;
};

static sisa_status vk_fail(VkResult r, const char *what, size_t bytes) {
    sisa_status st = (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ||
                      r == VK_ERROR_TOO_MANY_OBJECTS)
                         ? SISA_OUT_OF_MEMORY
                     : r == VK_ERROR_DEVICE_LOST ? SISA_DEVICE_LOST
                                                 : SISA_INTERNAL;
    return sisa_err(st, VKB ": %s (%zu bytes) failed: %s (%d)", what, bytes, sisa_vk_result_name(r), r);
}

static int find_type(const vk_device *d, uint32_t bits, VkMemoryPropertyFlags want,
                     VkMemoryPropertyFlags avoid) {
    for (uint32_t i = 0; i < d->mem.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = d->mem.memoryTypes[i].propertyFlags;
        if ((bits & (1u << i)) && (f & want) == want && !(f & avoid)) return (int)i;
    }
    return -1;
}

static bool type_mappable(const vk_device *d, uint32_t type) {
    VkMemoryPropertyFlags f = d->mem.memoryTypes[type].propertyFlags;
    return (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && (f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
}

static sisa_status alloc_memory(vk_device *d, VkDeviceSize size, uint32_t type, VkDeviceMemory *mem,
                                void **mapped) {
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                               .allocationSize = size, .memoryTypeIndex = type};
    VkResult r = vkf.vkAllocateMemory(d->dev, &ai, NULL, mem);
    if (r != VK_SUCCESS) return vk_fail(r, "vkAllocateMemory", (size_t)size);
    *mapped = NULL;
    if (d->uma && type_mappable(d, type)) {
        r = vkf.vkMapMemory(d->dev, *mem, 0, VK_WHOLE_SIZE, 0, mapped);
        if (r != VK_SUCCESS) {
            vkf.vkFreeMemory(d->dev, *mem, NULL);
            *mem = VK_NULL_HANDLE;
            return vk_fail(r, "vkMapMemory", (size_t)size);
        }
    }
    return SISA_OK;
}

/* ---- block sub-allocation ---- */

static bool block_take(vk_block *b, VkDeviceSize size, VkDeviceSize align, VkDeviceSize *off) {
    for (int i = 0; i < b->n_free; i++) {
        vk_range *f = &b->free[i];
        VkDeviceSize start = (f->off + align - 1) / align * align;
        if (start + size > f->off + f->size) continue;
        VkDeviceSize end = f->off + f->size;
        /* [f->off, start) stays free, [start + size, end) stays free */
        if (start > f->off) {
            VkDeviceSize tail_off = start + size, tail = end - tail_off;
            f->size = start - f->off;
            if (tail) {
                if (b->n_free == b->cap_free) return false; /* caller grows the list first */
                memmove(&b->free[i + 2], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof *f);
                b->free[i + 1] = (vk_range){tail_off, tail};
                b->n_free++;
            }
        } else {
            f->off = start + size;
            f->size = end - f->off;
            if (!f->size) {
                memmove(&b->free[i], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof *f);
                b->n_free--;
            }
        }
        *off = start;
        b->live++;
        return true;
    }
    return false;
}

static bool block_give(vk_block *b, VkDeviceSize off, VkDeviceSize size) {
    int i = 0;
    while (i < b->n_free && b->free[i].off < off) i++;
    bool merge_prev = i > 0 && b->free[i - 1].off + b->free[i - 1].size == off;
    bool merge_next = i < b->n_free && off + size == b->free[i].off;
    if (merge_prev && merge_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(&b->free[i], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof b->free[0]);
        b->n_free--;
    } else if (merge_prev) {
        b->free[i - 1].size += size;
    } else if (merge_next) {
        b->free[i].off = off;
        b->free[i].size += size;
    } else {
        if (b->n_free == b->cap_free) return false;
        memmove(&b->free[i + 1], &b->free[i], (size_t)(b->n_free - i) * sizeof b->free[0]);
        b->free[i] = (vk_range){off, size};
        b->n_free++;
    }
    b->live--;
    return true;
}

static bool block_reserve_list(vk_block *b) {
    if (b->n_free + 1 < b->cap_free) return true;
    int cap = b->cap_free ? b->cap_free * 2 : 16;
    vk_range *f = realloc(b->free, (size_t)cap * sizeof *f);
    if (!f) return false;
    b->free = f;
    b->cap_free = cap;
    return true;
}

static void block_free(vk_device *d, vk_block *b) {
    if (b->mapped) vkf.vkUnmapMemory(d->dev, b->mem);
    vkf.vkFreeMemory(d->dev, b->mem, NULL);
    free(b->free);
    free(b);
}

/* Place a buffer with requirements req in a block (new one if needed); caller holds mem_lock. */
static sisa_status suballoc(vk_device *d, const VkMemoryRequirements *req, vk_buffer *vb) {
    for (vk_block *b = d->blocks; b; b = b->next) {
        if (!block_reserve_list(b)) return sisa_err(SISA_OUT_OF_MEMORY, VKB ": out of host memory");
        VkDeviceSize off;
        if (block_take(b, req->size, req->alignment, &off)) {
            vb->block = b;
            vb->mem = b->mem;
            vb->mem_off = off;
            vb->alloc_size = req->size;
            return SISA_OK;
        }
    }
    vk_block *b = calloc(1, sizeof *b);
    if (!b || !block_reserve_list(b)) {
        free(b);
        return sisa_err(SISA_OUT_OF_MEMORY, VKB ": out of host memory");
    }
    b->size = BLOCK_SIZE < d->max_alloc ? BLOCK_SIZE : d->max_alloc;
    sisa_status st = alloc_memory(d, b->size, d->type_device, &b->mem, &b->mapped);
    if (st != SISA_OK) {
        free(b->free);
        free(b);
        return st;
    }
    b->free[0] = (vk_range){0, b->size};
    b->n_free = 1;
    b->next = d->blocks;
    d->blocks = b;
    VkDeviceSize off = 0;
    block_take(b, req->size, req->alignment, &off);
    vb->block = b;
    vb->mem = b->mem;
    vb->mem_off = off;
    vb->alloc_size = req->size;
    return SISA_OK;
}

sisa_status sisa_vk_buffer_create(vk_device *d, size_t size, vk_buffer **out) {
    *out = NULL;
    uint64_t limit = d->max_alloc < d->max_buffer ? d->max_alloc : d->max_buffer;
    VkDeviceSize vsize = ((VkDeviceSize)(size ? size : 1) + 15) & ~(VkDeviceSize)15;
    if (vsize > limit)
        return sisa_err(SISA_OUT_OF_MEMORY,
                        VKB ": buffer of %zu bytes exceeds the device's largest allocation (%llu)",
                        size, (unsigned long long)limit);
    vk_buffer *vb = calloc(1, sizeof *vb);
    if (!vb) return sisa_err(SISA_OUT_OF_MEMORY, VKB ": out of host memory");
    vb->d = d;
    vb->size = vsize;
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = vsize,
                             .usage = USAGE, .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkf.vkCreateBuffer(d->dev, &bi, NULL, &vb->buf);
    if (r != VK_SUCCESS) {
        free(vb);
        return vk_fail(r, "vkCreateBuffer", size);
    }
    VkMemoryRequirements req;
    vkf.vkGetBufferMemoryRequirements(d->dev, vb->buf, &req);
    sisa_status st;
    pthread_mutex_lock(&d->mem_lock);
    VkDeviceSize block = BLOCK_SIZE < d->max_alloc ? BLOCK_SIZE : d->max_alloc;
    if (d->suballoc && req.size <= block / 4 && (req.memoryTypeBits & (1u << d->type_device))) {
        st = suballoc(d, &req, vb);
    } else {
        void *mapped = NULL;
        int type = find_type(d, req.memoryTypeBits, d->mem.memoryTypes[d->type_device].propertyFlags, 0);
        st = type < 0 ? sisa_err(SISA_UNSUPPORTED, VKB ": no memory type for a storage buffer")
                      : alloc_memory(d, req.size, (uint32_t)type, &vb->mem, &mapped);
        vb->mem_off = 0;
        if (st == SISA_OK) vb->mapped = mapped;
    }
    pthread_mutex_unlock(&d->mem_lock);
    if (st == SISA_OK) {
        r = vkf.vkBindBufferMemory(d->dev, vb->buf, vb->mem, vb->mem_off);
        if (r != VK_SUCCESS) st = vk_fail(r, "vkBindBufferMemory", size);
        if (vb->block && vb->block->mapped) vb->mapped = (char *)vb->block->mapped + vb->mem_off;
    }
    if (st != SISA_OK) {
        sisa_vk_buffer_destroy(vb);
        return st;
    }
    *out = vb;
    return SISA_OK;
}

void sisa_vk_buffer_destroy(vk_buffer *vb) {
    if (!vb) return;
    vk_device *d = vb->d;
    if (vb->buf) vkf.vkDestroyBuffer(d->dev, vb->buf, NULL);
    pthread_mutex_lock(&d->mem_lock);
    if (vb->block) {
        vk_block *b = vb->block;
        if (block_reserve_list(b)) block_give(b, vb->mem_off, vb->alloc_size);
        if (b->live == 0) { /* give an empty block back to the driver */
            vk_block **pp = &d->blocks;
            while (*pp && *pp != b) pp = &(*pp)->next;
            if (*pp) *pp = b->next;
            block_free(d, b);
        }
    } else if (vb->mem) {
        if (vb->mapped) vkf.vkUnmapMemory(d->dev, vb->mem);
        vkf.vkFreeMemory(d->dev, vb->mem, NULL);
    }
    pthread_mutex_unlock(&d->mem_lock);
    free(vb);
}

/* ---- staging transfers (caller holds queue_lock) ---- */

static sisa_status staging_ready(vk_device *d) {
    if (d->staging) return SISA_OK;
    size_t size = STAGING_SIZE < d->max_alloc ? STAGING_SIZE : (size_t)d->max_alloc;
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                             .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkf.vkCreateBuffer(d->dev, &bi, NULL, &d->staging);
    if (r != VK_SUCCESS) return vk_fail(r, "vkCreateBuffer (staging)", size);
    VkMemoryRequirements req;
    vkf.vkGetBufferMemoryRequirements(d->dev, d->staging, &req);
    const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int type = find_type(d, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
    if (type < 0) type = find_type(d, req.memoryTypeBits, hv, 0);
    if (type < 0) return sisa_err(SISA_UNSUPPORTED, VKB ": no host-visible coherent memory for staging");
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                               .allocationSize = req.size, .memoryTypeIndex = (uint32_t)type};
    r = vkf.vkAllocateMemory(d->dev, &ai, NULL, &d->staging_mem);
    if (r == VK_SUCCESS) r = vkf.vkBindBufferMemory(d->dev, d->staging, d->staging_mem, 0);
    if (r == VK_SUCCESS) r = vkf.vkMapMemory(d->dev, d->staging_mem, 0, VK_WHOLE_SIZE, 0, &d->staging_ptr);
    if (r != VK_SUCCESS) return vk_fail(r, "staging memory", size);
    d->staging_size = size;
    return SISA_OK;
}

/* Record cmd(d->xfer_cb, arg), submit, wait. */
static sisa_status xfer_submit(vk_device *d, void (*cmd)(VkCommandBuffer, const void *), const void *arg,
                               const char *what) {
    VkResult r = vkf.vkResetCommandBuffer(d->xfer_cb, 0);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if (r == VK_SUCCESS) r = vkf.vkBeginCommandBuffer(d->xfer_cb, &bi);
    if (r == VK_SUCCESS) {
        cmd(d->xfer_cb, arg);
        r = vkf.vkEndCommandBuffer(d->xfer_cb);
    }
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                       .pCommandBuffers = &d->xfer_cb};
    if (r == VK_SUCCESS) r = vkf.vkResetFences(d->dev, 1, &d->xfer_fence);
    if (r == VK_SUCCESS) r = vkf.vkQueueSubmit(d->queue, 1, &si, d->xfer_fence);
    if (r == VK_SUCCESS) r = vkf.vkWaitForFences(d->dev, 1, &d->xfer_fence, VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS)
        return sisa_err(r == VK_ERROR_DEVICE_LOST ? SISA_DEVICE_LOST : SISA_INTERNAL,
                        VKB ": %s: %s (%d)", what, sisa_vk_result_name(r), r);
    return SISA_OK;
}

typedef struct copy_args {
    VkBuffer src, dst;
    VkBufferCopy region;
    VkBuffer fill_buf;
    VkDeviceSize fill_off, fill_size;
    uint32_t fill_word;
} copy_args;

static void cmd_copy(VkCommandBuffer cb, const void *p) {
    const copy_args *a = p;
    /* earlier compute writes must land before the copy reads them (and vice versa) */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    vkf.vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1,
                             &mb, 0, NULL, 0, NULL);
    if (a->fill_buf) vkf.vkCmdFillBuffer(cb, a->fill_buf, a->fill_off, a->fill_size, a->fill_word);
    else vkf.vkCmdCopyBuffer(cb, a->src, a->dst, 1, &a->region);
}

static sisa_status check_range(const sisa_buffer *b, size_t off, size_t n, const char *what) {
    if (off > b->size || n > b->size - off)
        return sisa_err(SISA_INVALID_ARG, VKB ": buffer %p: %s of bytes [%zu, %zu) outside its %zu bytes",
                        (const void *)b, what, off, off + n, b->size);
    return SISA_OK;
}

static sisa_status wait_idle(vk_device *d, const char *what) {
    VkResult r = vkf.vkQueueWaitIdle(d->queue);
    if (r != VK_SUCCESS)
        return sisa_err(r == VK_ERROR_DEVICE_LOST ? SISA_DEVICE_LOST : SISA_INTERNAL,
                        VKB ": vkQueueWaitIdle before %s: %s (%d)", what, sisa_vk_result_name(r), r);
    return SISA_OK;
}

static sisa_status buf_write(sisa_buffer *b, size_t off, const void *src, size_t n) {
    SISA_TRY(check_range(b, off, n, "write"));
    vk_buffer *vb = b->ctx;
    vk_device *d = vb->d;
    sisa_vk_shadow_written(d, vb, off, off + n);
    pthread_mutex_lock(&d->queue_lock);
    sisa_status st = wait_idle(d, "a buffer write");
    if (st == SISA_OK && vb->mapped) {
        memcpy((char *)vb->mapped + off, src, n);
    } else if (st == SISA_OK) {
        st = staging_ready(d);
        for (size_t done = 0; st == SISA_OK && done < n;) {
            size_t chunk = n - done < d->staging_size ? n - done : d->staging_size;
            memcpy(d->staging_ptr, (const char *)src + done, chunk);
            copy_args a = {.src = d->staging, .dst = vb->buf, .region = {0, off + done, chunk}};
            st = xfer_submit(d, cmd_copy, &a, "buffer write (staging copy)");
            done += chunk;
        }
    }
    pthread_mutex_unlock(&d->queue_lock);
    return st;
}

static sisa_status buf_read(sisa_buffer *b, size_t off, void *dst, size_t n) {
    SISA_TRY(check_range(b, off, n, "read"));
    vk_buffer *vb = b->ctx;
    vk_device *d = vb->d;
    pthread_mutex_lock(&d->queue_lock);
    sisa_status st = wait_idle(d, "a buffer read");
    if (st == SISA_OK && vb->mapped) {
        memcpy(dst, (const char *)vb->mapped + off, n);
    } else if (st == SISA_OK) {
        st = staging_ready(d);
        for (size_t done = 0; st == SISA_OK && done < n;) {
            size_t chunk = n - done < d->staging_size ? n - done : d->staging_size;
            copy_args a = {.src = vb->buf, .dst = d->staging, .region = {off + done, 0, chunk}};
            st = xfer_submit(d, cmd_copy, &a, "buffer read (staging copy)");
            if (st == SISA_OK) memcpy((char *)dst + done, d->staging_ptr, chunk);
            done += chunk;
        }
    }
    pthread_mutex_unlock(&d->queue_lock);
    return st;
}

static sisa_status buf_fill(sisa_buffer *b, size_t off, uint8_t value, size_t n) {
    SISA_TRY(check_range(b, off, n, "fill"));
    vk_buffer *vb = b->ctx;
    vk_device *d = vb->d;
    sisa_vk_shadow_written(d, vb, off, off + n);
    if (!vb->mapped) {
        /* vkCmdFillBuffer needs 4-byte aligned offset and size: the unaligned edges are written */
        size_t a0 = (off + 3) & ~(size_t)3, a1 = (off + n) & ~(size_t)3;
        if (a1 > a0 + 0) {
            uint8_t edge[4];
            memset(edge, value, sizeof edge);
            if (a0 > off) SISA_TRY(buf_write(b, off, edge, a0 - off));
            if (off + n > a1) SISA_TRY(buf_write(b, a1, edge, off + n - a1));
            pthread_mutex_lock(&d->queue_lock);
            uint32_t w = value * 0x01010101u;
            copy_args a = {.fill_buf = vb->buf, .fill_off = a0, .fill_size = a1 - a0, .fill_word = w};
            sisa_status st = wait_idle(d, "a buffer fill");
            if (st == SISA_OK) st = xfer_submit(d, cmd_copy, &a, "buffer fill");
            pthread_mutex_unlock(&d->queue_lock);
            return st;
        }
        uint8_t small[8];
        memset(small, value, sizeof small);
        return buf_write(b, off, small, n); /* n < 8 here */
    }
    pthread_mutex_lock(&d->queue_lock);
    sisa_status st = wait_idle(d, "a buffer fill");
    if (st == SISA_OK) memset((char *)vb->mapped + off, value, n);
    pthread_mutex_unlock(&d->queue_lock);
    return st;
}

static void buf_free(sisa_buffer *b) {
    if (!b) return;
    vk_buffer *vb = b->ctx;
    if (vb) {
        /* the GPU may still read it: wait before the memory goes back */
        pthread_mutex_lock(&vb->d->queue_lock);
        vkf.vkQueueWaitIdle(vb->d->queue);
        pthread_mutex_unlock(&vb->d->queue_lock);
        sisa_vk_shadow_forget(vb->d, vb); /* its f16 shadows go with it */
        sisa_vk_buffer_destroy(vb);
    }
    free(b);
}

static const sisa_buffer_iface vk_buffer_iface = {
    .free = buf_free, .write = buf_write, .read = buf_read, .fill = buf_fill};

sisa_status sisa_vk_buffer_alloc(sisa_device *sd, size_t size, sisa_buffer **out) {
    *out = NULL;
    vk_buffer *vb = NULL;
    SISA_TRY(sisa_vk_buffer_create(vk_dev(sd), size, &vb));
    sisa_buffer *b = calloc(1, sizeof *b);
    if (!b) {
        sisa_vk_buffer_destroy(vb);
        return sisa_err(SISA_OUT_OF_MEMORY, VKB ": out of host memory");
    }
    *b = (sisa_buffer){.iface = &vk_buffer_iface, .ctx = vb, .device = sd, .size = size, .host_ptr = NULL};
    *out = b;
    return SISA_OK;
}

sisa_status sisa_vk_buffer_create_init(vk_device *d, const void *data, size_t size, vk_buffer **out) {
    SISA_TRY(sisa_vk_buffer_create(d, size, out));
    sisa_buffer tmp = {.iface = &vk_buffer_iface, .ctx = *out, .device = d->owner, .size = size};
    sisa_status st = buf_write(&tmp, 0, data, size);
    if (st != SISA_OK) {
        sisa_vk_buffer_destroy(*out);
        *out = NULL;
    }
    return st;
}

/* ---- init / teardown ---- */

sisa_status sisa_vk_memory_init(vk_device *d) {
    /* memory types are chosen once from a probe buffer of the usage every buffer has */
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 256, .usage = USAGE,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkf.vkCreateBuffer(d->dev, &bi, NULL, &d->dummy);
    if (r != VK_SUCCESS) return vk_fail(r, "vkCreateBuffer (probe)", 256);
    VkMemoryRequirements req;
    vkf.vkGetBufferMemoryRequirements(d->dev, d->dummy, &req);
    const VkMemoryPropertyFlags dl = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int type = -1;
    if (d->uma) type = find_type(d, req.memoryTypeBits, dl | hv, 0);
    if (type < 0) {
        d->uma = false;
        type = find_type(d, req.memoryTypeBits, dl, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
        if (type < 0) type = find_type(d, req.memoryTypeBits, dl, 0);
        if (type < 0) type = find_type(d, req.memoryTypeBits, 0, 0);
    }
    if (type < 0) return sisa_err(SISA_UNSUPPORTED, VKB ": no memory type for storage buffers");
    d->type_device = (uint32_t)type;
    void *mapped = NULL;
    SISA_TRY(alloc_memory(d, req.size, d->type_device, &d->dummy_mem, &mapped));
    r = vkf.vkBindBufferMemory(d->dev, d->dummy, d->dummy_mem, 0);
    if (r != VK_SUCCESS) return vk_fail(r, "vkBindBufferMemory (dummy)", 256);

    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = d->queue_family};
    r = vkf.vkCreateCommandPool(d->dev, &pi, NULL, &d->xfer_pool);
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = d->xfer_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    if (r == VK_SUCCESS) r = vkf.vkAllocateCommandBuffers(d->dev, &ai, &d->xfer_cb);
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (r == VK_SUCCESS) r = vkf.vkCreateFence(d->dev, &fi, NULL, &d->xfer_fence);
    if (r != VK_SUCCESS) return vk_fail(r, "transfer command buffer", 0);
    return SISA_OK;
}

void sisa_vk_memory_destroy(vk_device *d) {
    if (d->xfer_fence) vkf.vkDestroyFence(d->dev, d->xfer_fence, NULL);
    if (d->xfer_pool) vkf.vkDestroyCommandPool(d->dev, d->xfer_pool, NULL);
    if (d->staging) vkf.vkDestroyBuffer(d->dev, d->staging, NULL);
    if (d->staging_mem) vkf.vkFreeMemory(d->dev, d->staging_mem, NULL);
    if (d->dummy) vkf.vkDestroyBuffer(d->dev, d->dummy, NULL);
    if (d->dummy_mem) vkf.vkFreeMemory(d->dev, d->dummy_mem, NULL);
    while (d->blocks) { /* buffers the caller never freed: their blocks go with the device */
        vk_block *b = d->blocks;
        d->blocks = b->next;
        block_free(d, b);
    }
}
