/*
 * vk_device.c — opening a physical device: properties and limits into sisa_device_info, the
 * optional features (16-bit storage, f16 arithmetic, NV cooperative matrices) enabled where the
 * device has them and the quirk table/kill switches allow them, and the device vtable.
 *
 * sisa_device_info: max_buffer_bytes = min(maxMemoryAllocationSize, maxBufferSize) — the
 * allocator's chunks respect it; max_storage_range = maxStorageBufferRange, which the dispatcher
 * handles by binding sub-ranges (vk_split.c). has_bf16 means bf16 *storage* (decoded to fp32 in
 * the shaders, so no bf16 arithmetic extension is needed); has_f16 likewise; math is fp32.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

static bool has_device_ext(VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    if (vkf.vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || !n) return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkf.vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(p[i].extensionName, name) == 0;
    free(p);
    return found;
}

static const char *vendor_name(uint32_t id) {
    switch (id) {
    case 0x10DE: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x8086: return "Intel";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x106B: return "Apple";
    case 0x10005: return "Mesa";
    default: return "unknown vendor";
    }
}

/* The f16 x f16 -> f32 subgroup shape for the coopmat matmul, preferring 16x16x16. */
static bool pick_coopmat_shape(vk_device *d) {
    if (!vkf.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV) return false;
    uint32_t n = 0;
    if (vkf.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(d->pd, &n, NULL) != VK_SUCCESS || !n)
        return false;
    VkCooperativeMatrixPropertiesNV *p = calloc(n, sizeof *p);
    if (!p) return false;
    for (uint32_t i = 0; i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    int best = -1, best_score = -1;
    if (vkf.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(d->pd, &n, p) == VK_SUCCESS) {
        for (uint32_t i = 0; i < n; i++) {
            const VkCooperativeMatrixPropertiesNV *c = &p[i];
            if (c->AType != VK_COMPONENT_TYPE_FLOAT16_NV || c->BType != VK_COMPONENT_TYPE_FLOAT16_NV ||
                c->CType != VK_COMPONENT_TYPE_FLOAT32_NV || c->DType != VK_COMPONENT_TYPE_FLOAT32_NV ||
                c->scope != VK_SCOPE_SUBGROUP_NV)
                continue;
            /* tiles of the shader are multiples of 16 (m), 32 (n) and 32 (k) */
            if (c->MSize == 0 || 16 % c->MSize || c->NSize == 0 || 32 % c->NSize || c->KSize == 0 ||
                32 % c->KSize)
                continue;
            int score = (int)(c->MSize * c->NSize * c->KSize);
            if (score > best_score) {
                best_score = score;
                best = (int)i;
            }
        }
    }
    if (best >= 0) {
        d->cm_m = p[best].MSize;
        d->cm_n = p[best].NSize;
        d->cm_k = p[best].KSize;
    }
    free(p);
    return best >= 0;
}

static void dev_destroy(vk_device *d) {
    if (!d) return;
    if (d->dev) {
        vkf.vkDeviceWaitIdle(d->dev);
        sisa_vk_pipelines_destroy(d);
        sisa_vk_shadow_destroy(d); /* its buffers before the memory blocks */
        sisa_vk_memory_destroy(d);
        vkf.vkDestroyDevice(d->dev, NULL);
    }
    pthread_mutex_destroy(&d->queue_lock);
    pthread_mutex_destroy(&d->mem_lock);
    pthread_mutex_destroy(&d->pipe_lock);
    pthread_mutex_destroy(&d->shadow_lock);
    free(d);
}

static void dev_free(sisa_device *sd) {
    if (!sd) return;
    dev_destroy(vk_dev(sd));
    free(sd);
}

static bool dev_supports(sisa_device *sd, const sisa_tensor *node, char *reason) {
    vk_kernel k;
    return sisa_vk_select(vk_dev(sd), node, &k, reason);
}

static const sisa_device_iface vk_device_iface = {
    .free = dev_free,
    .buffer_alloc = sisa_vk_buffer_alloc,
    .stream_new = sisa_vk_stream_new,
    .supports_op = dev_supports,
};

/* Query everything the backend uses; decide what to enable. */
static void query(vk_device *d, bool *want_cm_ext, bool *want_maint4) {
    VkPhysicalDeviceVulkan11Properties p11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES};
    VkPhysicalDeviceVulkan12Properties p12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES,
                                              .pNext = &p11};
    VkPhysicalDeviceMaintenance4Properties pm4 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES,
                                                  .pNext = &p12};
    *want_maint4 = has_device_ext(d->pd, VK_KHR_MAINTENANCE_4_EXTENSION_NAME);
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                      .pNext = *want_maint4 ? (void *)&pm4 : (void *)&p12};
    vkf.vkGetPhysicalDeviceProperties2(d->pd, &p2);
    d->props = p2.properties;
    vkf.vkGetPhysicalDeviceMemoryProperties(d->pd, &d->mem);
    d->driver_id = p12.driverID;
    snprintf(d->driver_name, sizeof d->driver_name, "%s %s", p12.driverName, p12.driverInfo);
    memcpy(d->device_uuid, p11.deviceUUID, VK_UUID_SIZE);
    d->subgroup_size = p11.subgroupSize;
    d->subgroup_shuffle = (p11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                          (p11.subgroupSupportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    d->max_alloc = p11.maxMemoryAllocationSize;
    d->max_buffer = *want_maint4 ? pm4.maxBufferSize : p11.maxMemoryAllocationSize;
    const VkPhysicalDeviceLimits *L = &d->props.limits;
    d->max_range = L->maxStorageBufferRange;
    /* test knob: pretend bindings are smaller, so every split path runs on small tensors */
    const char *mr = getenv("SISA_VK_MAX_RANGE");
    if (mr && mr[0]) {
        unsigned long long v = strtoull(mr, NULL, 0);
        if (v >= 4096 && v < d->max_range) d->max_range = v;
    }
    d->min_align = (uint32_t)L->minStorageBufferOffsetAlignment;
    if (d->min_align < 16) d->min_align = 16; /* keeps uvec4 views of a binding aligned */
    d->max_shared = L->maxComputeSharedMemorySize;
    d->max_wg_invocations = L->maxComputeWorkGroupInvocations;
    d->max_push = L->maxPushConstantsSize;
    for (int i = 0; i < 3; i++) d->max_groups[i] = L->maxComputeWorkGroupCount[i];
    d->timestamp_period = L->timestampPeriod;
    d->uma = d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
             d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;

    VkPhysicalDeviceCooperativeMatrixFeaturesNV fcm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &f11};
    *want_cm_ext = has_device_ext(d->pd, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    if (*want_cm_ext) fcm.pNext = &f12;
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                    .pNext = *want_cm_ext ? (void *)&fcm : (void *)&f12};
    vkf.vkGetPhysicalDeviceFeatures2(d->pd, &f2);
    d->storage16 = f11.storageBuffer16BitAccess;
    d->allow_f16 = d->allow_bf16 = true;
    /* the NV coopmat shaders are SPIR-V with the Vulkan memory model (GL_KHR_memory_scope_semantics) */
    d->coopmat = *want_cm_ext && fcm.cooperativeMatrix && f12.shaderFloat16 && f12.vulkanMemoryModel &&
                 f11.storageBuffer16BitAccess && d->subgroup_size >= 8 && pick_coopmat_shape(d);
    d->suballoc = true;
    /* coopmat flash attention wherever there are cooperative matrices and subgroup shuffles (H100,
     * driver 580: conformance 271/271 with it; SISA_VK_NO_COOPMAT_SDPA=1 turns it off, vk_quirks.c) */
    d->coopmat_sdpa = d->coopmat && d->subgroup_shuffle;
    /* tests: the coopmat MATMUL kernel with its matrix-unit operations emulated (CPU implementations) */
    const char *cme = getenv("SISA_VK_COOPMAT");
    d->cm_emulate = !d->coopmat && cme && strcmp(cme, "emulate") == 0 && f12.shaderFloat16 &&
                    f11.storageBuffer16BitAccess;
    if (d->cm_emulate) d->cm_m = d->cm_n = d->cm_k = 16;
    d->coopmat_bf16 = d->coopmat || d->cm_emulate;
}

static sisa_status create_device(vk_device *d, bool cm_ext) {
    uint32_t nq = 0;
    vkf.vkGetPhysicalDeviceQueueFamilyProperties(d->pd, &nq, NULL);
    VkQueueFamilyProperties qf[32];
    if (nq > 32) nq = 32;
    vkf.vkGetPhysicalDeviceQueueFamilyProperties(d->pd, &nq, qf);
    int fam = -1;
    for (uint32_t i = 0; i < nq && fam < 0; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) fam = (int)i;
    if (fam < 0) return sisa_err(SISA_UNSUPPORTED, VKB ": device '%s' has no compute queue", d->props.deviceName);
    d->queue_family = (uint32_t)fam;
    d->timestamps = qf[fam].timestampValidBits > 0 && d->props.limits.timestampComputeAndGraphics;

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                  .queueFamilyIndex = d->queue_family, .queueCount = 1,
                                  .pQueuePriorities = &prio};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .storageBuffer16BitAccess = d->storage16};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .pNext = &f11, .shaderFloat16 = d->coopmat || d->cm_emulate,
                                            .vulkanMemoryModel = d->coopmat};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV fcm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV,
                                                       .pNext = &f12, .cooperativeMatrix = VK_TRUE};
    const char *exts[1];
    uint32_t n_exts = 0;
    if (d->coopmat && cm_ext) exts[n_exts++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    VkDeviceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                             .pNext = n_exts ? (void *)&fcm : (void *)&f12,
                             .queueCreateInfoCount = 1, .pQueueCreateInfos = &qi,
                             .enabledExtensionCount = n_exts, .ppEnabledExtensionNames = exts};
    VkResult r = vkf.vkCreateDevice(d->pd, &ci, NULL, &d->dev);
    if (r != VK_SUCCESS)
        return sisa_err(r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY
                            ? SISA_OUT_OF_MEMORY : SISA_UNSUPPORTED,
                        VKB ": vkCreateDevice on '%s' failed: %s (%d)", d->props.deviceName,
                        sisa_vk_result_name(r), r);
    vkf.vkGetDeviceQueue(d->dev, d->queue_family, 0, &d->queue);
    return SISA_OK;
}

static void fill_info(const vk_device *d, sisa_device_info *info) {
    snprintf(info->name, sizeof info->name, "%s", d->props.deviceName);
    snprintf(info->vendor, sizeof info->vendor, "%s", vendor_name(d->props.vendorID));
    snprintf(info->driver, sizeof info->driver, "%s", d->driver_name);
    uint64_t mem = 0;
    for (uint32_t i = 0; i < d->mem.memoryHeapCount; i++)
        if (d->mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) mem += d->mem.memoryHeaps[i].size;
    info->memory_bytes = mem;
    info->max_buffer_bytes = d->max_alloc < d->max_buffer ? d->max_alloc : d->max_buffer;
    info->max_storage_range = d->max_range;
    info->has_f16 = d->storage16 && d->allow_f16;
    info->has_bf16 = d->storage16 && d->allow_bf16;
    info->has_f64 = 0;
    info->subgroup_size = (int)d->subgroup_size;
    info->has_coopmat = d->coopmat;
    info->is_cpu = d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
}

sisa_status sisa_vk_device_open(int index, sisa_device **out) {
    *out = NULL;
    const vk_instance *in = sisa_vk_instance_get();
    if (!in || index < 0 || index >= in->n_devices)
        return sisa_err(SISA_INVALID_ARG, VKB ": no device %d", index);
    sisa_device *sd = calloc(1, sizeof *sd);
    vk_device *d = calloc(1, sizeof *d);
    if (!sd || !d) {
        free(sd);
        free(d);
        return sisa_err(SISA_OUT_OF_MEMORY, VKB ": out of host memory opening device %d", index);
    }
    pthread_mutex_init(&d->queue_lock, NULL);
    pthread_mutex_init(&d->mem_lock, NULL);
    pthread_mutex_init(&d->pipe_lock, NULL);
    pthread_mutex_init(&d->shadow_lock, NULL);
    d->owner = sd;
    d->pd = in->devices[index];
    bool cm_ext = false, maint4 = false;
    query(d, &cm_ext, &maint4);
    sisa_vk_apply_quirks(d);
    sisa_status st = create_device(d, cm_ext);
    if (st == SISA_OK) st = sisa_vk_memory_init(d);
    if (st == SISA_OK) st = sisa_vk_pipelines_init(d);
    if (st != SISA_OK) {
        dev_destroy(d);
        free(sd);
        return st;
    }
    sd->iface = &vk_device_iface;
    sd->ctx = d;
    sd->index = index;
    fill_info(d, &sd->info);
    if (sisa_vk_debug())
        fprintf(stderr,
                "sisa vulkan: opened '%s' (%s), subgroup %u, coopmat %s (%ux%ux%u), 16-bit storage %s, "
                "range %llu, alloc %llu, align %u, uma %d%s%s\n",
                d->props.deviceName, d->driver_name, d->subgroup_size, d->coopmat ? "on" : "off",
                d->cm_m, d->cm_n, d->cm_k, d->storage16 ? "on" : "off",
                (unsigned long long)d->max_range, (unsigned long long)d->max_alloc, d->min_align, d->uma,
                d->notes[0] ? "; " : "", d->notes);
    *out = sd;
    return SISA_OK;
}
