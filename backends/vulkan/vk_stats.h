/* lorac Vulkan backend — counters the plugin exports for its own test suite (tests/test_vulkan.c
 * finds them with dlsym on the loaded plugin; not part of lorac's public API).
 *
 *   void lorac_vulkan_stats(void *ctx, lorac_vulkan_stats_t *out);
 *
 * ctx is the backend context of an open device (lc_device.ctx) or NULL for the process-wide
 * counters and the values recorded when the last device was closed. */
#ifndef LORAC_VK_STATS_H
#define LORAC_VK_STATS_H

typedef struct lorac_vulkan_stats_t {
    int validation_errors;        /* validation-layer errors printed so far in this process */
    int validation_warnings;
    int validation_active;        /* the device runs with VK_LAYER_KHRONOS_validation */
    long long pipeline_cache_loaded_bytes; /* bytes of the cache file accepted at open */
    int pipelines_created;        /* pipelines created since open */
    int gemm_kind;                /* 0 texel, 1 storage buffer, 2 shared-memory tiles */
    int unified_memory;           /* buffers are mapped host memory (no staging) */
    int push_descriptors;
    int float64;                  /* shaderFloat64 in use (rms_norm sums in double) */
    char pipeline_cache_path[1024];
} lorac_vulkan_stats_t;

typedef void (*lorac_vulkan_stats_fn)(void *ctx, lorac_vulkan_stats_t *out);

#endif
