/* lorac Vulkan backend — instance, validation layer, physical device facts, logical device,
 * memory type choice, and the mapping of VkResult onto lorac status codes.
 *
 * Instances: enumeration (device_count / device_info) uses a short-lived instance without
 * layers; every opened device owns its own instance, so no Vulkan state is shared between
 * devices or survives a close (and none is created before a fork by Check).
 *
 * Validation: LORAC_VULKAN_VALIDATION=1 enables VK_LAYER_KHRONOS_validation and a
 * VK_EXT_debug_utils messenger that prints every warning and error to stderr and counts them
 * (vk_validation_errors / _warnings, exported through lorac_vulkan_stats). When the layer is not
 * installed a warning says so (Debian: apt-get install vulkan-validationlayers) and the device
 * opens without it.
 *
 * Memory types (Vulkan 1.1 spec §11.2.1): lorac buffers want DEVICE_LOCAL. When the device is a
 * CPU or an integrated GPU and a DEVICE_LOCAL | HOST_VISIBLE | HOST_COHERENT type exists, buffers
 * are mapped once and upload/download are memcpy (lavapipe has only such memory). Otherwise
 * buffers are DEVICE_LOCAL and transfers go through a HOST_VISIBLE | HOST_COHERENT staging buffer
 * (HOST_CACHED preferred, for fast reads back).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

int vk_validation_errors = 0;
int vk_validation_warnings = 0;

const char *vk_result_name(VkResult r) {
    switch (r) {
#define R(x) case x: return #x;
    R(VK_SUCCESS) R(VK_NOT_READY) R(VK_TIMEOUT) R(VK_EVENT_SET) R(VK_EVENT_RESET) R(VK_INCOMPLETE)
    R(VK_ERROR_OUT_OF_HOST_MEMORY) R(VK_ERROR_OUT_OF_DEVICE_MEMORY) R(VK_ERROR_INITIALIZATION_FAILED)
    R(VK_ERROR_DEVICE_LOST) R(VK_ERROR_MEMORY_MAP_FAILED) R(VK_ERROR_LAYER_NOT_PRESENT)
    R(VK_ERROR_EXTENSION_NOT_PRESENT) R(VK_ERROR_FEATURE_NOT_PRESENT) R(VK_ERROR_INCOMPATIBLE_DRIVER)
    R(VK_ERROR_TOO_MANY_OBJECTS) R(VK_ERROR_FORMAT_NOT_SUPPORTED) R(VK_ERROR_FRAGMENTED_POOL)
    R(VK_ERROR_UNKNOWN) R(VK_ERROR_OUT_OF_POOL_MEMORY) R(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    R(VK_ERROR_FRAGMENTATION) R(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS) R(VK_PIPELINE_COMPILE_REQUIRED)
#undef R
    default: return "VK_RESULT_UNKNOWN";
    }
}

lc_status vk_fail(const vk_ctx *c, VkResult r, const char *call) {
    const char *dev = c ? c->label : "vulkan";
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
        return lc_error(LC_ERR_DEVICE_NOMEM, "%s failed on %s: %s (the device is out of memory)", call, dev,
                        vk_result_name(r));
    if (r == VK_ERROR_OUT_OF_HOST_MEMORY)
        return lc_error(LC_ERR_NOMEM, "%s failed on %s: %s (the driver ran out of host memory)", call, dev,
                        vk_result_name(r));
    if (r == VK_ERROR_DEVICE_LOST)
        return lc_error(LC_ERR_BACKEND,
                        "%s failed on %s: VK_ERROR_DEVICE_LOST (the GPU reset or the driver crashed; results of "
                        "the work in flight are lost, close and reopen the device)",
                        call, dev);
    return lc_error(LC_ERR_BACKEND, "%s failed on %s: %s (%d)", call, dev, vk_result_name(r), (int)r);
}

/* ---- instance ---------------------------------------------------------------------------- */

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                               VkDebugUtilsMessageTypeFlagsEXT types,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    (void)types;
    (void)user;
    const char *kind = "info";
    if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        kind = "ERROR";
        __atomic_add_fetch(&vk_validation_errors, 1, __ATOMIC_RELAXED);
    } else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        kind = "warning";
        __atomic_add_fetch(&vk_validation_warnings, 1, __ATOMIC_RELAXED);
    }
    fprintf(stderr, "lorac vulkan validation %s: %s\n", kind, data && data->pMessage ? data->pMessage : "(no message)");
    fflush(stderr);
    return VK_FALSE;
}

static bool env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static bool have_layer(const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return false;
    VkLayerProperties *p = calloc(n, sizeof *p);
    if (!p) return false;
    bool found = false;
    if (vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (strcmp(p[i].layerName, name) == 0) found = true;
    free(p);
    return found;
}

static bool have_instance_ext(const char *layer, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS || n == 0) return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    if (!p) return false;
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (strcmp(p[i].extensionName, name) == 0) found = true;
    free(p);
    return found;
}

lc_status vk_instance_create(bool for_device, VkInstance *out, bool *validation, VkDebugUtilsMessengerEXT *msgr) {
    *out = VK_NULL_HANDLE;
    if (validation) *validation = false;
    if (msgr) *msgr = VK_NULL_HANDLE;
    uint32_t api = VK_API_VERSION_1_0;
    if (vkEnumerateInstanceVersion(&api) != VK_SUCCESS || api < VK_API_VERSION_1_1)
        return lc_error(LC_ERR_NO_DEVICE, "vulkan: the Vulkan loader supports only version %u.%u (1.1 needed)",
                        VK_API_VERSION_MAJOR(api), VK_API_VERSION_MINOR(api));
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "lorac",
        .applicationVersion = 1,
        .pEngineName = "lorac",
        .engineVersion = 1,
        .apiVersion = VK_API_VERSION_1_1,
    };
    const char *layers[1];
    const char *exts[2];
    bool sync_validation = false;
    uint32_t n_layers = 0, n_exts = 0;
    bool want_validation = for_device && env_flag("LORAC_VULKAN_VALIDATION");
    if (want_validation) {
        const char *vl = "VK_LAYER_KHRONOS_validation";
        if (have_layer(vl) && (have_instance_ext(NULL, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) ||
                               have_instance_ext(vl, VK_EXT_DEBUG_UTILS_EXTENSION_NAME))) {
            layers[n_layers++] = vl;
            exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
            /* synchronization validation checks the barriers vk_record.c derives from hazards */
            if (have_instance_ext(vl, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
                exts[n_exts++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
                sync_validation = true;
            }
        } else {
            fprintf(stderr, "lorac vulkan: LORAC_VULKAN_VALIDATION is set but VK_LAYER_KHRONOS_validation (with "
                            "VK_EXT_debug_utils) is not installed (Debian/Ubuntu: apt-get install "
                            "vulkan-validationlayers); running without validation\n");
            want_validation = false;
        }
    }
    VkDebugUtilsMessengerCreateInfoEXT dci = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = debug_cb,
    };
    VkValidationFeatureEnableEXT vfe[1] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT vf = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .pNext = &dci,
        .enabledValidationFeatureCount = 1,
        .pEnabledValidationFeatures = vfe,
    };
    VkInstanceCreateInfo ici = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = want_validation ? (sync_validation ? (const void *)&vf : (const void *)&dci) : NULL,
        .pApplicationInfo = &app,
        .enabledLayerCount = n_layers,
        .ppEnabledLayerNames = n_layers ? layers : NULL,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = n_exts ? exts : NULL,
    };
    VkInstance inst = VK_NULL_HANDLE;
    VkResult r = vkCreateInstance(&ici, NULL, &inst);
    if (r != VK_SUCCESS) {
        if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
            return lc_error(LC_ERR_NO_DEVICE, "vulkan: vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER (no Vulkan 1.1 "
                                              "driver installed)");
        return vk_fail(NULL, r, "vkCreateInstance");
    }
    if (want_validation && msgr) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(inst, "vkCreateDebugUtilsMessengerEXT");
        if (create) create(inst, &dci, NULL, msgr);
        if (validation) *validation = true;
    }
    *out = inst;
    return LC_OK;
}

void vk_instance_destroy(VkInstance inst, VkDebugUtilsMessengerEXT msgr) {
    if (!inst) return;
    if (msgr) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(inst, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(inst, msgr, NULL);
    }
    vkDestroyInstance(inst, NULL);
}

/* Index of a queue family with VK_QUEUE_COMPUTE_BIT (a compute-only family preferred), -1 if none. */
static int compute_family(VkPhysicalDevice pd) {
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    if (n == 0) return -1;
    VkQueueFamilyProperties *q = calloc(n, sizeof *q);
    if (!q) return -1;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    int best = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0) continue;
        bool graphics = (q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT) != 0;
        if (best < 0 || (!graphics && (q[best].queueFlags & VK_QUEUE_GRAPHICS_BIT))) best = (int)i;
    }
    free(q);
    return best;
}

lc_status vk_list_physical(VkInstance inst, VkPhysicalDevice *out, int max, int *count) {
    *count = 0;
    uint32_t n = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst, &n, NULL);
    if (r != VK_SUCCESS) return vk_fail(NULL, r, "vkEnumeratePhysicalDevices");
    if (n == 0) return LC_OK;
    VkPhysicalDevice *all = calloc(n, sizeof *all);
    if (!all) return lc_error(LC_ERR_NOMEM, "vulkan: out of host memory listing %u devices", n);
    r = vkEnumeratePhysicalDevices(inst, &n, all);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        free(all);
        return vk_fail(NULL, r, "vkEnumeratePhysicalDevices");
    }
    int k = 0;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(all[i], &p);
        if (p.apiVersion < VK_API_VERSION_1_1 || compute_family(all[i]) < 0) continue;
        if (k < max) out[k] = all[i];
        k++;
    }
    free(all);
    *count = k;
    return LC_OK;
}

/* ---- device ------------------------------------------------------------------------------- */

static bool have_device_ext(VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0) return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    if (!p) return false;
    bool found = false;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (strcmp(p[i].extensionName, name) == 0) found = true;
    free(p);
    return found;
}

/* Memory type with all of `want` (and, when possible, all of `prefer`), -1 if none. */
static int find_memory(const VkPhysicalDeviceMemoryProperties *mp, uint32_t type_bits, VkMemoryPropertyFlags want,
                       VkMemoryPropertyFlags prefer) {
    int fallback = -1;
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        if (!(type_bits & (1u << i))) continue;
        VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
        if ((f & want) != want) continue;
        if ((f & prefer) == prefer) return (int)i;
        if (fallback < 0) fallback = (int)i;
    }
    return fallback;
}

lc_status vk_device_create(vk_ctx *c) {
    VkPhysicalDevice pd = c->pdev;
    vkGetPhysicalDeviceProperties(pd, &c->props);
    vkGetPhysicalDeviceMemoryProperties(pd, &c->memprops);
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceIDProperties idp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES, .pNext = &sg};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &idp};
    vkGetPhysicalDeviceProperties2(pd, &p2);
    memcpy(c->device_uuid, idp.deviceUUID, VK_UUID_SIZE);
    c->subgroup_size = sg.subgroupSize;
    c->subgroup_arith = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                        (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) && sg.subgroupSize >= 1;
    c->subgroup_ballot = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                         (sg.supportedOperations & VK_SUBGROUP_FEATURE_BALLOT_BIT);
    c->is_cpu = c->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    c->max_binding = c->props.limits.maxStorageBufferRange;
    /* tests lower the binding limit to exercise the chunked paths with small tensors */
    const char *mb = getenv("LORAC_VULKAN_MAX_BINDING");
    if (mb && *mb) {
        unsigned long long v = strtoull(mb, NULL, 10);
        if (v >= 65536 && v < c->max_binding) c->max_binding = (VkDeviceSize)v;
    }
    c->ssbo_align = c->props.limits.minStorageBufferOffsetAlignment ? c->props.limits.minStorageBufferOffsetAlignment : 16;
    c->texel_align = c->props.limits.minTexelBufferOffsetAlignment ? c->props.limits.minTexelBufferOffsetAlignment : 16;
    if (c->ssbo_align < 4) c->ssbo_align = 4;
    if (c->texel_align < 16) c->texel_align = 16;
    c->max_texels = c->props.limits.maxTexelBufferElements;
    for (int i = 0; i < 3; i++) c->max_wg_count[i] = c->props.limits.maxComputeWorkGroupCount[i];
    c->max_alloc = (VkDeviceSize)1 << 30;
    c->driver_name[0] = c->driver_info[0] = 0;
    if (c->props.apiVersion >= VK_API_VERSION_1_2) {
        VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
        VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &m3};
        VkPhysicalDeviceProperties2 q2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &drv};
        vkGetPhysicalDeviceProperties2(pd, &q2);
        snprintf(c->driver_name, sizeof c->driver_name, "%s", drv.driverName);
        snprintf(c->driver_info, sizeof c->driver_info, "%s", drv.driverInfo);
        c->driver_id = drv.driverID;
        if (m3.maxMemoryAllocationSize) c->max_alloc = m3.maxMemoryAllocationSize;
    } else {
        VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
        VkPhysicalDeviceProperties2 q2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
        vkGetPhysicalDeviceProperties2(pd, &q2);
        if (m3.maxMemoryAllocationSize) c->max_alloc = m3.maxMemoryAllocationSize;
    }

    c->cpu_groups = 256;
    c->loop_cap = 1u << 30;
    if (c->driver_id == VK_DRIVER_ID_MESA_LLVMPIPE || strncmp(c->props.deviceName, "llvmpipe", 8) == 0)
        c->loop_cap = 60000;

    if (c->props.limits.maxPerStageDescriptorStorageBuffers < 5)
        return lc_error(LC_ERR_UNSUPPORTED, "vulkan: %s allows only %u storage buffers per shader stage; lorac's kernels "
                        "bind up to 5", c->label, c->props.limits.maxPerStageDescriptorStorageBuffers);
    int fam = compute_family(pd);
    if (fam < 0) return lc_error(LC_ERR_NO_DEVICE, "vulkan: %s has no compute queue", c->label);
    c->queue_family = (uint32_t)fam;

    /* memory types: probe with the usage lorac buffers have */
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = 256,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                 VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };

    bool push_desc = have_device_ext(pd, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME) && !env_flag("LORAC_VULKAN_NO_PUSH_DESCRIPTORS");
    const char *exts[2];
    uint32_t n_exts = 0;
    if (push_desc) exts[n_exts++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    VkPhysicalDeviceFeatures avail, enable;
    vkGetPhysicalDeviceFeatures(pd, &avail);
    memset(&enable, 0, sizeof enable);
    enable.shaderFloat64 = avail.shaderFloat64 && !env_flag("LORAC_VULKAN_NO_FP64");
    c->has_f64 = enable.shaderFloat64 == VK_TRUE;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = c->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    VkDeviceCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = n_exts ? exts : NULL,
        .pEnabledFeatures = &enable,
    };
    VkResult r = vkCreateDevice(pd, &dci, NULL, &c->device);
    if (r != VK_SUCCESS) return vk_fail(c, r, "vkCreateDevice");
    vkGetDeviceQueue(c->device, c->queue_family, 0, &c->queue);
    if (push_desc) {
        c->cmd_push_descriptor_set =
            (PFN_vkCmdPushDescriptorSetKHR)vkGetDeviceProcAddr(c->device, "vkCmdPushDescriptorSetKHR");
        c->push_descriptors = c->cmd_push_descriptor_set != NULL;
    }

    VkBuffer probe = VK_NULL_HANDLE;
    r = vkCreateBuffer(c->device, &bci, NULL, &probe);
    if (r != VK_SUCCESS) return vk_fail(c, r, "vkCreateBuffer (memory type probe)");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->device, probe, &req);
    vkDestroyBuffer(c->device, probe, NULL);

    const VkMemoryPropertyFlags HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    bool uma_type = c->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU ||
                    c->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
    int mt = -1;
    if (uma_type && !env_flag("LORAC_VULKAN_FORCE_STAGING")) mt = find_memory(&c->memprops, req.memoryTypeBits, DL | HV, 0);
    if (mt >= 0) {
        c->unified = true;
        c->mem_device = (uint32_t)mt;
    } else {
        mt = find_memory(&c->memprops, req.memoryTypeBits, DL, 0);
        if (mt < 0) mt = find_memory(&c->memprops, req.memoryTypeBits, 0, 0);
        if (mt < 0) return lc_error(LC_ERR_BACKEND, "vulkan: %s offers no memory type for storage buffers", c->label);
        c->mem_device = (uint32_t)mt;
        /* a device-local type that is also host-visible can still be used without staging */
        c->unified = (c->memprops.memoryTypes[mt].propertyFlags & HV) == HV && uma_type;
    }
    int st = find_memory(&c->memprops, req.memoryTypeBits, HV, VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
    if (st < 0 && !c->unified)
        return lc_error(LC_ERR_BACKEND, "vulkan: %s offers no host-visible coherent memory for staging", c->label);
    c->mem_staging = st < 0 ? c->mem_device : (uint32_t)st;
    return LC_OK;
}

void vk_device_destroy(vk_ctx *c) {
    if (c->device) {
        vkDeviceWaitIdle(c->device);
        vkDestroyDevice(c->device, NULL);
        c->device = VK_NULL_HANDLE;
    }
}
