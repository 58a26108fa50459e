/* lorac — the device registry: enumerate and open compute devices by spec string.
 *
 * Specs: "cpu", "opencl", "opencl:N", "vulkan", "vulkan:N", "auto". NULL or "" means the
 * environment variable LORAC_DEVICE, or "auto" when it is unset. "auto" picks the first device
 * that is a real GPU (not a CPU emulation such as PoCL or lavapipe) and otherwise the CPU.
 * The CPU backend is built in; the OpenCL and Vulkan backends are shared-library plugins
 * (liblorac-opencl.so, liblorac-vulkan.so) looked up at run time in $LORAC_PLUGIN_DIR, the
 * build tree and the install libdir, so one binary runs where their runtimes are absent.
 */
#ifndef LORAC_DEVICE_H
#define LORAC_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lc_device lc_device;

typedef struct lc_device_info {
    char spec[32];         /* how to open it: "cpu", "opencl:0", "vulkan:1" */
    char backend[16];      /* "cpu", "opencl", "vulkan" */
    char name[128];        /* device name as the driver reports it */
    char vendor[64];
    char driver[128];      /* driver / runtime version */
    char api_version[32];  /* OpenCL / Vulkan version, BLAS name for the CPU */
    uint64_t memory_bytes; /* global memory (CPU: physical RAM) */
    int compute_units;     /* CPU: hardware threads; GPU: compute units */
    int threads;           /* CPU: threads the backend will use; GPU: 0 */
    int subgroup_size;     /* Vulkan: subgroup size; others 0 */
    bool is_cpu;           /* runs on the host CPU (the CPU backend, PoCL, lavapipe) */
    char extra[256];       /* backend-specific notes (extensions, ...) */
} lc_device_info;

/* Enumerate every device of every backend that loads. Writes at most `max` entries to `out`
 * (may be NULL when max is 0) and the total count to `*count`. Plugins that fail to load are
 * not an error; their reason is available from lc_device_skipped().
 * Errors: LC_ERR_NOMEM. */
lc_status lc_device_list(lc_device_info *out, int max, int *count);

/* For backend "opencl" or "vulkan": a sentence saying why it offered no devices (plugin not
 * built, runtime missing, no devices), or NULL when it has devices. */
const char *lc_device_skipped(const char *backend);

/* Open a device by spec (see above). Errors: LC_ERR_NO_DEVICE with a message that lists the
 * devices found, LC_ERR_INVALID_ARG for a malformed spec, LC_ERR_PLUGIN, backend errors. */
lc_status lc_device_open(const char *spec, lc_device **out);

/* Close a device. Every tensor and graph on it must be freed first. NULL is a no-op. */
void lc_device_close(lc_device *dev);

/* Info of an open device. */
const lc_device_info *lc_device_get_info(const lc_device *dev);

/* Wait until all queued work on the device has finished. */
lc_status lc_device_synchronize(lc_device *dev);

/* Bytes currently allocated on the device through lorac, and the peak since open. */
uint64_t lc_device_allocated(const lc_device *dev);
uint64_t lc_device_peak_allocated(const lc_device *dev);

/* Row-major single-precision GEMM on device buffers, CLBlast style:
 * C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, where op(A) = A ([M,K], lda >= K) or Aᵀ
 * (A stored [K,M], lda >= M), likewise B; ldc >= N. Offsets are in bytes. Used by the backend
 * tests (every transpose combination, padded leading dimensions) and the bench.
 * Errors: LC_ERR_INVALID_ARG (bad sizes / ld / range), LC_ERR_UNSUPPORTED, backend errors. */
struct lc_buffer;
lc_status lc_device_gemm(lc_device *dev, bool trans_a, bool trans_b, int m, int n, int k,
                         float alpha, const struct lc_buffer *a, size_t off_a, int lda,
                         const struct lc_buffer *b, size_t off_b, int ldb, float beta,
                         struct lc_buffer *c, size_t off_c, int ldc);

/* Allocate / free a raw device buffer (zeroed). Errors: LC_ERR_DEVICE_NOMEM, LC_ERR_NOMEM. */
lc_status lc_buffer_alloc(lc_device *dev, size_t size, struct lc_buffer **out);
void lc_buffer_free(struct lc_buffer *buf);
lc_status lc_buffer_upload(struct lc_buffer *buf, size_t offset, const void *src, size_t size);
lc_status lc_buffer_download(const struct lc_buffer *buf, size_t offset, void *dst, size_t size);
lc_status lc_buffer_clear(struct lc_buffer *buf, size_t offset, size_t size);

#ifdef __cplusplus
}
#endif
#endif
