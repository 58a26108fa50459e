/* lorac — internal view of an open device, shared by device.c, tensor.c and graph*.c.
 *
 * Not installed and not part of the public API: frontends and plugins go through
 * lorac/device.h and lorac/backend.h only.
 */
#ifndef LORAC_DEVICE_INTERNAL_H
#define LORAC_DEVICE_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "lorac/backend.h"
#include "lorac/device.h"

struct lc_device {
    const lc_backend_iface *iface; /* the backend's function table */
    void *ctx;                     /* what iface->open returned */
    int index;                     /* device index within its backend */
    lc_device_info info;           /* as iface->device_info reported, spec/backend set by us */
    _Atomic uint64_t allocated;    /* bytes currently held through lc_buffer_alloc */
    _Atomic uint64_t peak;         /* high-water mark of `allocated` since open */
};

/* Device that owns a tensor's buffer, or NULL when it has none yet. */
static inline lc_device *lc_tensor_device_(const lc_tensor *t) {
    return (t && t->buffer) ? t->buffer->device : NULL;
}

#endif
