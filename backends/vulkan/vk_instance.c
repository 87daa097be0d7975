/*
 * vk_instance.c — the Vulkan instance, the validation messenger, and which physical devices the
 * backend offers, in which order.
 *
 * Order: every device with Vulkan >= 1.2 and a compute queue, discrete GPUs first, then
 * integrated, virtual, CPU (lavapipe) — stable within a kind. SISA_VK_DEVICE=<index or name
 * substring> moves one device to the front (index = position in vkEnumeratePhysicalDevices, as
 * vulkaninfo lists them). Probing never aborts: no loader, a failing vkCreateInstance (the
 * VkResult is named) or no device makes the backend absent with that reason.
 *
 * SISA_VK_VALIDATION=1 enables VK_LAYER_KHRONOS_validation and a VK_EXT_debug_utils messenger
 * that prints every warning/error and counts errors, because the layer itself never changes an
 * exit status: tests read sisa_vk_validation_errors().
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

static vk_instance inst;
static bool inst_ok;
static atomic_int validation_errors;

bool sisa_vk_env_flag(const char *name) {
    const char *v = getenv(name);
    return v && v[0] && strcmp(v, "0") != 0;
}

bool sisa_vk_debug(void) { return sisa_vk_env_flag("SISA_VK_DEBUG"); }

int sisa_vk_validation_errors(void) { return atomic_load(&validation_errors); }

int sisa_vk_validation_enabled(void) { return inst_ok && inst.validation && inst.messenger != VK_NULL_HANDLE; }

const vk_instance *sisa_vk_instance_get(void) { return inst_ok ? &inst : NULL; }

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                 VkDebugUtilsMessageTypeFlagsEXT types,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data,
                                                 void *user) {
    (void)types;
    (void)user;
    const char *what = "info";
    if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        atomic_fetch_add(&validation_errors, 1);
        what = "ERROR";
    } else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        what = "warning";
    }
    fprintf(stderr, "sisa vulkan validation %s: %s\n", what,
            data && data->pMessage ? data->pMessage : "(no message)");
    return VK_FALSE;
}

static bool has_layer(const char *name) {
    uint32_t n = 0;
    if (!vkf.vkEnumerateInstanceLayerProperties ||
        vkf.vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkLayerProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkf.vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(p[i].layerName, name) == 0;
    free(p);
    return found;
}

static bool has_instance_ext(const char *name) {
    uint32_t n = 0;
    if (vkf.vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkf.vkEnumerateInstanceExtensionProperties(NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(p[i].extensionName, name) == 0;
    free(p);
    return found;
}

static int kind_rank(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
    }
}

static bool has_compute_queue(VkPhysicalDevice pd) {
    uint32_t n = 0;
    vkf.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties q[32];
    if (n > 32) n = 32;
    vkf.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    for (uint32_t i = 0; i < n; i++)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) return true;
    return false;
}

static bool name_matches(const char *name, const char *want) {
    size_t lw = strlen(want);
    for (const char *p = name; *p; p++) {
        size_t i = 0;
        while (i < lw && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)want[i])) i++;
        if (i == lw) return true;
    }
    return false;
}

/* Order the usable devices; -1 with reason when SISA_VK_DEVICE matches none. */
static int order_devices(VkPhysicalDevice *all, uint32_t n_all, char *reason) {
    VkPhysicalDeviceProperties props[SISA_VK_MAX_DEVICES];
    int usable[SISA_VK_MAX_DEVICES], n_usable = 0;
    char skipped[SISA_REASON_LEN] = "";
    for (uint32_t i = 0; i < n_all && i < SISA_VK_MAX_DEVICES; i++) {
        vkf.vkGetPhysicalDeviceProperties(all[i], &props[i]);
        if (VK_API_VERSION_MINOR(props[i].apiVersion) < 2 && VK_API_VERSION_MAJOR(props[i].apiVersion) == 1) {
            size_t l = strlen(skipped);
            snprintf(skipped + l, sizeof skipped - l, "%s'%s' is Vulkan 1.%u (1.2 needed)",
                     l ? "; " : "", props[i].deviceName, VK_API_VERSION_MINOR(props[i].apiVersion));
            continue;
        }
        if (!has_compute_queue(all[i])) continue;
        usable[n_usable++] = (int)i;
    }
    /* stable sort by kind */
    for (int a = 1; a < n_usable; a++)
        for (int b = a; b > 0 && kind_rank(props[usable[b]].deviceType) <
                                     kind_rank(props[usable[b - 1]].deviceType); b--) {
            int t = usable[b];
            usable[b] = usable[b - 1];
            usable[b - 1] = t;
        }
    const char *want = getenv("SISA_VK_DEVICE");
    if (want && want[0]) {
        char *end = NULL;
        long idx = strtol(want, &end, 10);
        int pick = -1;
        for (int k = 0; k < n_usable && pick < 0; k++) {
            bool hit = (end && *end == '\0') ? usable[k] == idx
                                             : name_matches(props[usable[k]].deviceName, want);
            if (hit) pick = k;
        }
        if (pick < 0) {
            int l = snprintf(reason, SISA_REASON_LEN, "SISA_VK_DEVICE=%s matches no device; have:", want);
            for (uint32_t i = 0; i < n_all && i < SISA_VK_MAX_DEVICES && l < SISA_REASON_LEN; i++)
                l += snprintf(reason + l, SISA_REASON_LEN - (size_t)l, " [%u] %s", i, props[i].deviceName);
            return -1;
        }
        int t = usable[pick];
        memmove(&usable[1], &usable[0], (size_t)pick * sizeof usable[0]);
        usable[0] = t;
    }
    for (int k = 0; k < n_usable; k++) inst.devices[k] = all[usable[k]];
    inst.n_devices = n_usable;
    if (n_usable == 0)
        snprintf(reason, SISA_REASON_LEN, "no usable Vulkan device (%u found%s%s)", n_all,
                 skipped[0] ? ": " : "", skipped);
    if (sisa_vk_debug())
        for (int k = 0; k < n_usable; k++)
            fprintf(stderr, "sisa vulkan: device %d = [%d] %s\n", k, usable[k],
                    props[usable[k]].deviceName);
    return n_usable;
}

static void destroy_instance(void) {
    if (inst.messenger && vkf.vkDestroyDebugUtilsMessengerEXT)
        vkf.vkDestroyDebugUtilsMessengerEXT(inst.instance, inst.messenger, NULL);
    if (inst.instance && vkf.vkDestroyInstance) vkf.vkDestroyInstance(inst.instance, NULL);
    memset(&inst, 0, sizeof inst);
    inst_ok = false;
}

static int vk_probe(char *reason) {
    if (sisa_vk_loader_open(reason) < 0) return -1;
    uint32_t loader_version = VK_API_VERSION_1_0;
    if (vkf.vkEnumerateInstanceVersion) vkf.vkEnumerateInstanceVersion(&loader_version);
    if (VK_API_VERSION_MAJOR(loader_version) == 1 && VK_API_VERSION_MINOR(loader_version) < 2) {
        snprintf(reason, SISA_REASON_LEN, "Vulkan loader is version 1.%u; 1.2 is needed",
                 VK_API_VERSION_MINOR(loader_version));
        sisa_vk_loader_close();
        return -1;
    }
    /* 1.2 on purpose: chaining 1.3 structures under a 1.2 instance is a validation error, and
     * nothing here needs 1.3. */
    inst.api_version = VK_API_VERSION_1_2;

    const char *layers[1];
    const char *exts[1];
    uint32_t n_layers = 0, n_exts = 0;
    if (sisa_vk_env_flag("SISA_VK_VALIDATION")) {
        if (has_layer("VK_LAYER_KHRONOS_validation")) {
            layers[n_layers++] = "VK_LAYER_KHRONOS_validation";
            inst.validation = true;
        } else {
            fprintf(stderr, "sisa vulkan: SISA_VK_VALIDATION is set but VK_LAYER_KHRONOS_validation "
                            "is not installed; running without it\n");
        }
        if (has_instance_ext(VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
            exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
            inst.debug_utils = true;
        }
    }
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "sisa",
                             .pEngineName = "sisa",
                             .engineVersion = VK_MAKE_API_VERSION(0, 0, 1, 0),
                             .apiVersion = inst.api_version};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pApplicationInfo = &app,
                               .enabledLayerCount = n_layers,
                               .ppEnabledLayerNames = layers,
                               .enabledExtensionCount = n_exts,
                               .ppEnabledExtensionNames = exts};
    VkResult r = vkf.vkCreateInstance(&ci, NULL, &inst.instance);
    if (r != VK_SUCCESS) {
        snprintf(reason, SISA_REASON_LEN, "vkCreateInstance failed: %s (%d)", sisa_vk_result_name(r), r);
        memset(&inst, 0, sizeof inst);
        sisa_vk_loader_close();
        return -1;
    }
    sisa_vk_loader_instance(inst.instance);
    if (!vkf.vkCreateDevice || !vkf.vkGetPhysicalDeviceProperties2 || !vkf.vkCreateComputePipelines) {
        snprintf(reason, SISA_REASON_LEN, "Vulkan loader lacks core 1.2 entry points");
        destroy_instance();
        sisa_vk_loader_close();
        return -1;
    }
    if (inst.debug_utils && vkf.vkCreateDebugUtilsMessengerEXT) {
        VkDebugUtilsMessengerCreateInfoEXT mi = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
            .pfnUserCallback = on_message};
        vkf.vkCreateDebugUtilsMessengerEXT(inst.instance, &mi, NULL, &inst.messenger);
    }

    uint32_t n = 0;
    r = vkf.vkEnumeratePhysicalDevices(inst.instance, &n, NULL);
    VkPhysicalDevice all[SISA_VK_MAX_DEVICES];
    if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
        if (n > SISA_VK_MAX_DEVICES) n = SISA_VK_MAX_DEVICES;
        r = vkf.vkEnumeratePhysicalDevices(inst.instance, &n, all);
    }
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        snprintf(reason, SISA_REASON_LEN, "vkEnumeratePhysicalDevices failed: %s (%d)",
                 sisa_vk_result_name(r), r);
        destroy_instance();
        sisa_vk_loader_close();
        return -1;
    }
    if (n == 0) {
        snprintf(reason, SISA_REASON_LEN, "no Vulkan device (vkEnumeratePhysicalDevices found 0)");
        destroy_instance();
        sisa_vk_loader_close();
        return -1;
    }
    int usable = order_devices(all, n, reason);
    if (usable <= 0) {
        destroy_instance();
        sisa_vk_loader_close();
        return -1;
    }
    inst_ok = true;
    return usable;
}

static void vk_shutdown(void) {
    destroy_instance();
    sisa_vk_loader_close();
}

const sisa_backend_def sisa_backend_vulkan = {
    .name = VKB, .probe = vk_probe, .device_open = sisa_vk_device_open, .shutdown = vk_shutdown};
