/* lorac OpenCL backend — launching kernels: argument setting, NDRange sizes padded to whole
 * work-groups (kernels check their index against the real size), work-group sizes for
 * reductions, optional per-kernel timing ($LORAC_OPENCL_PROFILE), and the per-device scratch
 * buffers and rope frequency tables the op dispatchers share.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ocl_internal.h"

double ocl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- launching ---------------------------------------------------------------------------- */

static const char *const g_knames[OCL_K_COUNT] = {
#define OCL_X_KNAME2(name) #name,
    OCL_KERNEL_LIST(OCL_X_KNAME2)
#undef OCL_X_KNAME2
};

void oa_begin(ocl_args *a, ocl_ctx *c, ocl_kid kid) {
    a->c = c;
    a->kid = (int)kid;
    a->k = c->k[kid];
    a->name = g_knames[kid];
    a->n = 0;
    a->err = CL_SUCCESS;
    a->bad = 0;
}

static void oa_set(ocl_args *a, size_t size, const void *v) {
    if (a->err == CL_SUCCESS) {
        a->err = clSetKernelArg(a->k, a->n, size, v);
        if (a->err != CL_SUCCESS) a->bad = a->n;
    }
    a->n++;
}

void oa_mem(ocl_args *a, cl_mem m) { oa_set(a, sizeof m, &m); }
void oa_u64(ocl_args *a, uint64_t v) { cl_ulong x = v; oa_set(a, sizeof x, &x); }
void oa_u32(ocl_args *a, uint32_t v) { cl_uint x = v; oa_set(a, sizeof x, &x); }
void oa_i32(ocl_args *a, int32_t v) { cl_int x = v; oa_set(a, sizeof x, &x); }
void oa_f32(ocl_args *a, float v) { cl_float x = v; oa_set(a, sizeof x, &x); }
void oa_local(ocl_args *a, size_t bytes) { oa_set(a, bytes, NULL); }

lc_status ocl_launch(ocl_args *a, cl_uint dims, const size_t *gws, const size_t *lws) {
    if (a->err != CL_SUCCESS) return ocl_fail(a->c, a->err, "clSetKernelArg(%s, argument %u)", a->name, a->bad);
    size_t g[3] = {1, 1, 1};
    if (dims < 1 || dims > 3) return lc_error(LC_ERR_INVALID_ARG, "opencl launch(%s): %u dimensions", a->name, dims);
    for (cl_uint d = 0; d < dims; d++) {
        if (gws[d] == 0) return LC_OK; /* nothing to do */
        g[d] = (gws[d] + lws[d] - 1) / lws[d] * lws[d];
    }
    double t0 = 0.0;
    if (a->c->profile) {
        clFinish(a->c->queue);
        t0 = ocl_now();
    }
    cl_int err = clEnqueueNDRangeKernel(a->c->queue, a->k, dims, NULL, g, lws, 0, NULL, NULL);
    if (a->c->profile && err == CL_SUCCESS) {
        clFinish(a->c->queue);
        fprintf(stderr, "lorac opencl: %s: %.3f ms  %s  global %zu x %zu x %zu\n", a->c->spec, (ocl_now() - t0) * 1e3, a->name,
                g[0], dims > 1 ? g[1] : 1, dims > 2 ? g[2] : 1);
    }
    if (err != CL_SUCCESS)
        return ocl_fail(a->c, err, "clEnqueueNDRangeKernel(%s, global %zu x %zu x %zu, local %zu x %zu x %zu)", a->name,
                        g[0], dims > 1 ? g[1] : 1, dims > 2 ? g[2] : 1, lws[0], dims > 1 ? lws[1] : 1,
                        dims > 2 ? lws[2] : 1);
    return LC_OK;
}

static size_t kernel_wg(const ocl_ctx *c, int kid) {
    size_t w = kid >= 0 ? c->kwg[kid] : c->max_wg;
    return w ? w : 1;
}

lc_status ocl_launch_1d(ocl_args *a, size_t n) {
    size_t lws = kernel_wg(a->c, a->kid);
    if (lws > 256) lws = 256;
    return ocl_launch(a, 1, &n, &lws);
}

lc_status ocl_launch_groups(ocl_args *a, size_t ngroups, size_t wg) {
    size_t gws = ngroups * wg;
    return ocl_launch(a, 1, &gws, &wg);
}

size_t ocl_red_wg(const ocl_ctx *c, ocl_kid kid, size_t len) {
    size_t lim = kernel_wg(c, (int)kid);
    if (lim > 256) lim = 256;
    size_t cap = (size_t)(c->local_mem / sizeof(float) / 2);
    if (cap && lim > cap) lim = cap;
    size_t w = 1;
    while (w * 2 <= lim && w < len) w *= 2;
    while (w * 2 <= lim && w < 32) w *= 2; /* small rows: still a few work-items */
    return w;
}

/* ---- scratch and tables ------------------------------------------------------------------- */

lc_status ocl_scratch(ocl_ctx *c, int slot, size_t bytes, cl_mem *out) {
    if (bytes == 0) bytes = 4;
    if (c->scr_size[slot] < bytes) {
        if (c->scr[slot]) clReleaseMemObject(c->scr[slot]); /* freed once queued work is done */
        c->scr[slot] = NULL;
        c->scr_size[slot] = 0;
        size_t want = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
        if (want > c->max_alloc) want = bytes;
        if (want > c->max_alloc)
            return lc_error(LC_ERR_DEVICE_NOMEM, "opencl scratch: %zu bytes exceed CL_DEVICE_MAX_MEM_ALLOC_SIZE of %s '%s'",
                            bytes, c->spec, c->name);
        cl_int err;
        cl_mem m = clCreateBuffer(c->context, CL_MEM_READ_WRITE, want, NULL, &err);
        if (!m || err != CL_SUCCESS) return ocl_fail(c, err, "clCreateBuffer(scratch, %zu bytes)", want);
        c->scr[slot] = m;
        c->scr_size[slot] = want;
    }
    *out = c->scr[slot];
    return LC_OK;
}

lc_status ocl_rope_freqs(ocl_ctx *c, float base, int n_rot, cl_mem *out) {
    for (int i = 0; i < c->n_rope; i++)
        if (memcmp(&c->rope[i].base, &base, sizeof base) == 0 && c->rope[i].n_rot == n_rot) {
            *out = c->rope[i].mem;
            return LC_OK;
        }
    const int half = n_rot / 2;
    float *f = malloc((size_t)(half > 0 ? half : 1) * sizeof *f);
    if (!f) return lc_error(LC_ERR_NOMEM, "opencl rope: out of host memory");
    /* exactly the CPU backend's expression (lorac/graph.h ROPE) */
    for (int i = 0; i < half; i++) f[i] = powf(base, -2.0f * (float)i / (float)n_rot);
    cl_int err;
    cl_mem m = clCreateBuffer(c->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, (size_t)(half > 0 ? half : 1) * sizeof *f,
                              f, &err);
    free(f);
    if (!m || err != CL_SUCCESS) return ocl_fail(c, err, "clCreateBuffer(rope frequencies)");
    if (c->n_rope == OCL_ROPE_CACHE) { /* evict the oldest entry */
        clReleaseMemObject(c->rope[0].mem);
        memmove(&c->rope[0], &c->rope[1], (OCL_ROPE_CACHE - 1) * sizeof c->rope[0]);
        c->n_rope--;
    }
    c->rope[c->n_rope].base = base;
    c->rope[c->n_rope].n_rot = n_rot;
    c->rope[c->n_rope].mem = m;
    c->n_rope++;
    *out = m;
    return LC_OK;
}
