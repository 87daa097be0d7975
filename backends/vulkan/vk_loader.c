/*
 * vk_loader.c — the Vulkan loader, opened at run time.
 *
 * libsisa does not link libvulkan: an application embedding the engine must start on a machine
 * without any Vulkan stack. The loader is dlopen'ed on the first probe and every entry point is
 * resolved through vkGetInstanceProcAddr into one table (vkf). A missing loader or a missing
 * core function makes the backend absent with a reason; it never aborts.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

sisa_vk_fns vkf;
static void *loader_handle;

const char *sisa_vk_result_name(VkResult r) {
    switch (r) {
#define C(x) case x: return #x;
        C(VK_SUCCESS) C(VK_NOT_READY) C(VK_TIMEOUT) C(VK_EVENT_SET) C(VK_EVENT_RESET)
        C(VK_INCOMPLETE) C(VK_ERROR_OUT_OF_HOST_MEMORY) C(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        C(VK_ERROR_INITIALIZATION_FAILED) C(VK_ERROR_DEVICE_LOST) C(VK_ERROR_MEMORY_MAP_FAILED)
        C(VK_ERROR_LAYER_NOT_PRESENT) C(VK_ERROR_EXTENSION_NOT_PRESENT)
        C(VK_ERROR_FEATURE_NOT_PRESENT) C(VK_ERROR_INCOMPATIBLE_DRIVER)
        C(VK_ERROR_TOO_MANY_OBJECTS) C(VK_ERROR_FORMAT_NOT_SUPPORTED) C(VK_ERROR_FRAGMENTED_POOL)
        C(VK_ERROR_UNKNOWN) C(VK_ERROR_OUT_OF_POOL_MEMORY) C(VK_ERROR_INVALID_EXTERNAL_HANDLE)
        C(VK_ERROR_FRAGMENTATION) C(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
        C(VK_PIPELINE_COMPILE_REQUIRED)
#undef C
    default: return "VkResult(unknown)";
    }
}

int sisa_vk_loader_open(char *reason) {
    if (loader_handle) return 0;
    const char *names[] = {getenv("SISA_VK_LOADER"), "libvulkan.so.1", "libvulkan.so"};
    const char *tried = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !loader_handle; i++) {
        if (!names[i] || !names[i][0]) continue;
        tried = names[i];
        loader_handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    }
    if (!loader_handle) {
        snprintf(reason, SISA_REASON_LEN, "Vulkan loader not found (dlopen %s: %s)",
                 tried ? tried : "libvulkan.so.1", dlerror());
        return -1;
    }
    memset(&vkf, 0, sizeof vkf);
    *(void **)&vkf.vkGetInstanceProcAddr = dlsym(loader_handle, "vkGetInstanceProcAddr");
    if (!vkf.vkGetInstanceProcAddr) {
        snprintf(reason, SISA_REASON_LEN, "Vulkan loader has no vkGetInstanceProcAddr");
        sisa_vk_loader_close();
        return -1;
    }
#define LOAD_GLOBAL(f) vkf.f = (PFN_##f)vkf.vkGetInstanceProcAddr(VK_NULL_HANDLE, #f);
    SISA_VK_GLOBAL_FUNCS(LOAD_GLOBAL)
#undef LOAD_GLOBAL
    if (!vkf.vkCreateInstance || !vkf.vkEnumerateInstanceExtensionProperties) {
        snprintf(reason, SISA_REASON_LEN, "Vulkan loader lacks vkCreateInstance");
        sisa_vk_loader_close();
        return -1;
    }
    return 0;
}

void sisa_vk_loader_instance(VkInstance inst) {
    /* Device-level functions resolved here go through the loader's trampolines: one table serves
     * every device. Optional extension functions may stay NULL. */
#define LOAD_INST(f) vkf.f = (PFN_##f)vkf.vkGetInstanceProcAddr(inst, #f);
    SISA_VK_INSTANCE_FUNCS(LOAD_INST)
#undef LOAD_INST
}

void sisa_vk_loader_close(void) {
    if (loader_handle) dlclose(loader_handle);
    loader_handle = NULL;
    memset(&vkf, 0, sizeof vkf);
}
