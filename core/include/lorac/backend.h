/* lorac — the backend interface, for backend authors (CPU built in; OpenCL, Vulkan plugins).
 *
 * A backend is a versioned table of function pointers plus a per-device context pointer.
 * A plugin shared library exports `const lc_backend_iface *lorac_backend_entry(void);`.
 * Entries marked optional may be NULL; the default used then is documented beside each.
 * Kernels receive whole nodes (lorac/graph.h) whose tensors carry buffer + offset + strides.
 */
#ifndef LORAC_BACKEND_H
#define LORAC_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "lorac/device.h"
#include "lorac/graph.h"
#include "lorac/status.h"
#include "lorac/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LC_BACKEND_ABI_VERSION 1

typedef struct lc_backend_iface {
    unsigned abi_version; /* LC_BACKEND_ABI_VERSION */
    const char *name;     /* "cpu", "opencl", "vulkan" */

    /* Enumerate. `device_count` returns the number of devices (0 when the runtime is missing);
     * when it returns 0 it may write a reason into why[why_size]. */
    int (*device_count)(char *why, size_t why_size);
    lc_status (*device_info)(int index, lc_device_info *info);

    lc_status (*open)(int index, void **ctx);
    void (*close)(void *ctx);

    /* Memory. `impl` is whatever the backend needs to find the allocation again. alloc returns
     * zeroed memory. upload/download are synchronous from the caller's view. */
    lc_status (*buffer_alloc)(void *ctx, size_t size, void **impl);
    void (*buffer_free)(void *ctx, void *impl);
    lc_status (*buffer_upload)(void *ctx, void *impl, size_t offset, const void *src, size_t size);
    lc_status (*buffer_download)(void *ctx, void *impl, size_t offset, void *dst, size_t size);
    lc_status (*buffer_clear)(void *ctx, void *impl, size_t offset, size_t size);

    /* True when the backend can run this node (op and dtypes). Checked for every node by
     * lc_graph_plan, so an unsupported op is reported before a run starts. */
    bool (*supports)(void *ctx, const lc_node *node);

    /* Run one node. Optional when `compute` is set. */
    lc_status (*run)(void *ctx, const lc_node *node);

    /* Run `n` nodes in order (a whole graph step). Optional: NULL means call `run` per node.
     * A backend may queue work and return before it finishes; `synchronize` waits. */
    lc_status (*compute)(void *ctx, lc_node *const *nodes, int n);

    /* Optional: NULL means every call is synchronous. */
    lc_status (*synchronize)(void *ctx);

    /* Optional F32 row-major GEMM (see lc_device_gemm). NULL: LC_ERR_UNSUPPORTED. */
    lc_status (*gemm)(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                      void *a, size_t off_a, int lda, void *b, size_t off_b, int ldb, float beta,
                      void *c, size_t off_c, int ldc);
} lc_backend_iface;

/* The built-in CPU backend. */
const lc_backend_iface *lc_backend_cpu(void);

/* Symbol a plugin exports. */
typedef const lc_backend_iface *(*lc_backend_entry_fn)(void);
#define LC_BACKEND_ENTRY_SYMBOL "lorac_backend_entry"

#ifdef __cplusplus
}
#endif
#endif
