/* lorac — device registry, plugin loader, device handles, raw buffers and GEMM entry point.
 *
 * Backends: the built-in CPU backend (lc_backend_cpu) and two optional plugins,
 * liblorac-opencl.so and liblorac-vulkan.so, each exporting `lorac_backend_entry`
 * (lorac/backend.h). Plugins are searched, in order, in every directory of $LORAC_PLUGIN_DIR
 * (colon separated), the build tree (LORAC_PLUGIN_BUILD_DIR), the install libdir
 * (LORAC_PLUGIN_INSTALL_DIR) and "<directory of liblorac.so>/lorac". The first copy that loads,
 * exports the entry point and has ABI version LC_BACKEND_ABI_VERSION is used. The registry is
 * built once per process (first call of lc_device_list / lc_device_open / lc_device_skipped);
 * plugins stay loaded until the process exits.
 *
 * Spec resolution: devices are listed CPU first, then OpenCL, then Vulkan, each backend in its
 * own index order. "auto" opens the first listed device with !is_cpu, else the CPU backend.
 * "opencl" / "vulkan" without an index open that backend's first device with !is_cpu, else its
 * device 0. "name:N" opens device N of the backend. Backend names are matched case-insensitively;
 * N is decimal digits only. A malformed spec is LC_ERR_INVALID_ARG, a well-formed spec naming no
 * device LC_ERR_NO_DEVICE; both messages list the devices found and why backends were skipped.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "device_internal.h"
#include "lorac/backend.h"
#include "lorac/device.h"
#include "lorac/graph.h"

#ifndef LORAC_PLUGIN_BUILD_DIR
#define LORAC_PLUGIN_BUILD_DIR ""
#endif
#ifndef LORAC_PLUGIN_INSTALL_DIR
#define LORAC_PLUGIN_INSTALL_DIR ""
#endif

enum { BK_CPU = 0, BK_OPENCL = 1, BK_VULKAN = 2, BK_COUNT = 3 };

typedef struct backend_slot {
    const char *name;    /* "cpu", "opencl", "vulkan" (spec prefix) */
    const char *display; /* "CPU", "OpenCL", "Vulkan" (messages) */
    const char *file;    /* plugin file name, NULL for built-in */
    const lc_backend_iface *iface;
    int count;               /* devices the backend reported */
    lc_device_info *infos;   /* count entries; info_ok[i] false where device_info failed */
    bool *info_ok;
    char path[PATH_MAX + 64];  /* the plugin file that was loaded */
    char skipped[768];       /* why it offers no devices ("" when it has some) */
} backend_slot;

static backend_slot g_slots[BK_COUNT] = {
    {.name = "cpu", .display = "CPU", .file = NULL},
    {.name = "opencl", .display = "OpenCL", .file = "liblorac-opencl.so"},
    {.name = "vulkan", .display = "Vulkan", .file = "liblorac-vulkan.so"},
};
static pthread_once_t g_registry_once = PTHREAD_ONCE_INIT;
static lc_status g_registry_status = LC_OK;

/* ---- small helpers ------------------------------------------------------------------------ */

static void copy_str(char *dst, size_t cap, const char *src) {
    if (cap == 0) return;
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Append printf-style text to dst[cap] (always NUL terminated, silently truncated). */
static void append_fmt(char *dst, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void append_fmt(char *dst, size_t cap, const char *fmt, ...) {
    size_t len = strnlen(dst, cap);
    if (len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst + len, cap - len, fmt, ap);
    va_end(ap);
}

/* ---- plugin search ------------------------------------------------------------------------ */

/* Directory holding liblorac.so itself, found through dladdr on one of our objects. */
static bool self_dir(char *out, size_t cap) {
    Dl_info di;
    if (!dladdr((const void *)&g_registry_status, &di) || !di.dli_fname || !di.dli_fname[0]) return false;
    const char *slash = strrchr(di.dli_fname, '/');
    if (!slash) return false;
    size_t n = (size_t)(slash - di.dli_fname);
    if (n + 1 > cap) return false;
    memcpy(out, di.dli_fname, n);
    out[n] = '\0';
    return true;
}

/* Collect the search directories into dirs[] (each up to PATH_MAX). */
static int plugin_dirs(char dirs[][PATH_MAX], int max) {
    int n = 0;
    const char *env = getenv("LORAC_PLUGIN_DIR");
    if (env && env[0]) {
        const char *p = env;
        while (*p && n < max) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            if (len > 0 && len < PATH_MAX) {
                memcpy(dirs[n], p, len);
                dirs[n][len] = '\0';
                n++;
            }
            if (!colon) break;
            p = colon + 1;
        }
    }
    if (n < max && LORAC_PLUGIN_BUILD_DIR[0]) copy_str(dirs[n++], PATH_MAX, LORAC_PLUGIN_BUILD_DIR);
    if (n < max && LORAC_PLUGIN_INSTALL_DIR[0]) copy_str(dirs[n++], PATH_MAX, LORAC_PLUGIN_INSTALL_DIR);
    char self[PATH_MAX];
    if (n < max && self_dir(self, sizeof self - 8)) {
        dirs[n][0] = '\0';
        append_fmt(dirs[n], PATH_MAX, "%s/lorac", self);
        n++;
    }
    return n;
}

/* Check that a plugin's table is usable; writes the reason into why when it is not. */
static bool iface_usable(const lc_backend_iface *it, const char *expect_name, char *why, size_t cap) {
    if (!it) {
        copy_str(why, cap, "its entry point returned NULL");
        return false;
    }
    if (it->abi_version != LC_BACKEND_ABI_VERSION) {
        snprintf(why, cap, "it has backend ABI version %u, this liblorac expects %u",
                 it->abi_version, (unsigned)LC_BACKEND_ABI_VERSION);
        return false;
    }
    if (!it->name || strcmp(it->name, expect_name) != 0) {
        snprintf(why, cap, "it calls itself \"%s\", expected \"%s\"", it->name ? it->name : "(null)",
                 expect_name);
        return false;
    }
    const char *missing = NULL;
    if (!it->device_count) missing = "device_count";
    else if (!it->device_info) missing = "device_info";
    else if (!it->open) missing = "open";
    else if (!it->close) missing = "close";
    else if (!it->buffer_alloc) missing = "buffer_alloc";
    else if (!it->buffer_free) missing = "buffer_free";
    else if (!it->buffer_upload) missing = "buffer_upload";
    else if (!it->buffer_download) missing = "buffer_download";
    else if (!it->buffer_clear) missing = "buffer_clear";
    else if (!it->run && !it->compute) missing = "run (or compute)";
    if (missing) {
        snprintf(why, cap, "its function table lacks the required entry %s", missing);
        return false;
    }
    return true;
}

/* Find and load one plugin; on failure fill slot->skipped. */
static void load_plugin(backend_slot *s) {
    enum { MAX_DIRS = 16 };
    static char dirs[MAX_DIRS][PATH_MAX]; /* only used under pthread_once */
    int nd = plugin_dirs(dirs, MAX_DIRS);
    char fail[512] = "";
    for (int i = 0; i < nd; i++) {
        char path[PATH_MAX + 64];
        path[0] = '\0';
        append_fmt(path, sizeof path, "%s/%s", dirs[i], s->file);
        if (access(path, F_OK) != 0) continue;
        dlerror();
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *e = dlerror();
            fail[0] = '\0';
            append_fmt(fail, sizeof fail, "plugin %s could not be loaded: %s", path, e ? e : "unknown error");
            continue;
        }
        lc_backend_entry_fn entry;
        void *sym = dlsym(h, LC_BACKEND_ENTRY_SYMBOL);
        memcpy(&entry, &sym, sizeof entry); /* object pointer -> function pointer, POSIX-sanctioned */
        if (!sym) {
            fail[0] = '\0';
            append_fmt(fail, sizeof fail, "plugin %s does not export %s", path, LC_BACKEND_ENTRY_SYMBOL);
            dlclose(h);
            continue;
        }
        const lc_backend_iface *it = entry();
        char why[256];
        if (!iface_usable(it, s->name, why, sizeof why)) {
            fail[0] = '\0';
            append_fmt(fail, sizeof fail, "plugin %s is unusable: %s", path, why);
            dlclose(h);
            continue;
        }
        s->iface = it; /* handle intentionally kept open for the life of the process */
        copy_str(s->path, sizeof s->path, path);
        return;
    }
    if (fail[0]) {
        snprintf(s->skipped, sizeof s->skipped, "%s backend: %s", s->display, fail);
        return;
    }
    snprintf(s->skipped, sizeof s->skipped, "%s backend: plugin %s not found in ", s->display, s->file);
    if (nd == 0) append_fmt(s->skipped, sizeof s->skipped, "(no search directory)");
    for (int i = 0; i < nd; i++)
        append_fmt(s->skipped, sizeof s->skipped, "%s%s", i ? ", " : "", dirs[i]);
    append_fmt(s->skipped, sizeof s->skipped, " (set LORAC_PLUGIN_DIR to its directory)");
}

/* Ask a loaded backend for its devices and cache their infos. */
static void enumerate(backend_slot *s, int bk) {
    char why[512] = "";
    int n = s->iface->device_count(why, sizeof why);
    why[sizeof why - 1] = '\0';
    if (n <= 0) {
        if (bk == BK_CPU)
            snprintf(s->skipped, sizeof s->skipped, "CPU backend reported no device: %s",
                     why[0] ? why : "no reason given");
        else
            append_fmt(s->skipped, sizeof s->skipped, "%s backend: plugin %s loaded but found no devices: %s",
                       s->display, s->path, why[0] ? why : "no reason given");
        return;
    }
    s->infos = calloc((size_t)n, sizeof *s->infos);
    s->info_ok = calloc((size_t)n, sizeof *s->info_ok);
    if (!s->infos || !s->info_ok) {
        free(s->infos);
        free(s->info_ok);
        s->infos = NULL;
        s->info_ok = NULL;
        g_registry_status = LC_ERR_NOMEM;
        snprintf(s->skipped, sizeof s->skipped, "%s backend: out of host memory while listing devices",
                 s->display);
        return;
    }
    s->count = n;
    int good = 0;
    for (int i = 0; i < n; i++) {
        lc_device_info *info = &s->infos[i];
        if (s->iface->device_info(i, info) != LC_OK) continue;
        s->info_ok[i] = true;
        good++;
        if (bk == BK_CPU && i == 0) copy_str(info->spec, sizeof info->spec, "cpu");
        else snprintf(info->spec, sizeof info->spec, "%s:%d", s->name, i);
        copy_str(info->backend, sizeof info->backend, s->name);
    }
    if (good == 0)
        snprintf(s->skipped, sizeof s->skipped, "%s backend: found %d device(s) but could not query any: %s",
                 s->display, n, lc_last_error());
}

static void registry_init(void) {
    backend_slot *cpu = &g_slots[BK_CPU];
    cpu->iface = lc_backend_cpu();
    char why[256];
    if (!iface_usable(cpu->iface, "cpu", why, sizeof why)) {
        snprintf(cpu->skipped, sizeof cpu->skipped, "CPU backend is unusable: %s", why);
        cpu->iface = NULL;
    } else {
        enumerate(cpu, BK_CPU);
    }
    for (int b = BK_OPENCL; b < BK_COUNT; b++) {
        load_plugin(&g_slots[b]);
        if (g_slots[b].iface) enumerate(&g_slots[b], b);
    }
}

static void registry(void) { pthread_once(&g_registry_once, registry_init); }

/* ---- listing ------------------------------------------------------------------------------ */

lc_status lc_device_list(lc_device_info *out, int max, int *count) {
    if (!count) return lc_error(LC_ERR_INVALID_ARG, "lc_device_list: count is NULL");
    if (max < 0 || (max > 0 && !out))
        return lc_error(LC_ERR_INVALID_ARG, "lc_device_list: out is NULL or max (%d) < 0", max);
    registry();
    int n = 0;
    for (int b = 0; b < BK_COUNT; b++) {
        const backend_slot *s = &g_slots[b];
        for (int i = 0; i < s->count; i++) {
            if (!s->info_ok[i]) continue;
            if (n < max) out[n] = s->infos[i];
            n++;
        }
    }
    *count = n;
    if (g_registry_status != LC_OK)
        return lc_error(g_registry_status, "lc_device_list: out of host memory while listing devices");
    return LC_OK;
}

const char *lc_device_skipped(const char *backend) {
    if (!backend) return NULL;
    registry();
    for (int b = 0; b < BK_COUNT; b++)
        if (strcmp(backend, g_slots[b].name) == 0) return g_slots[b].skipped[0] ? g_slots[b].skipped : NULL;
    return NULL;
}

/* One line naming every device found and every backend skipped, for error messages. */
static void describe_devices(char *buf, size_t cap) {
    buf[0] = '\0';
    append_fmt(buf, cap, "devices found:");
    int n = 0;
    for (int b = 0; b < BK_COUNT; b++) {
        const backend_slot *s = &g_slots[b];
        for (int i = 0; i < s->count; i++) {
            if (!s->info_ok[i]) continue;
            append_fmt(buf, cap, "%s %s (%s%s)", n ? "," : "", s->infos[i].spec, s->infos[i].name,
                       s->infos[i].is_cpu && b != BK_CPU ? ", runs on the CPU" : "");
            n++;
        }
    }
    if (n == 0) append_fmt(buf, cap, " none");
    for (int b = 0; b < BK_COUNT; b++)
        if (g_slots[b].skipped[0]) append_fmt(buf, cap, "; %s", g_slots[b].skipped);
}

/* ---- spec parsing ------------------------------------------------------------------------- */

/* Parse "name[:N]". *bk = backend slot, -1 for "auto"; *index = N or -1 when absent.
 * Returns false for a malformed spec. */
static bool parse_spec(const char *spec, int *bk, int *index) {
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    *bk = -2;
    *index = -1;
    if (nlen == 4 && strncasecmp(spec, "auto", 4) == 0) *bk = -1;
    for (int b = 0; b < BK_COUNT; b++)
        if (strlen(g_slots[b].name) == nlen && strncasecmp(spec, g_slots[b].name, nlen) == 0) *bk = b;
    if (*bk == -2) return false;
    if (!colon) return true;
    if (*bk == -1) return false; /* "auto:N" is meaningless */
    const char *p = colon + 1;
    if (!*p || strlen(p) > 6) return false;
    int v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
    }
    *index = v;
    return true;
}

static lc_status open_slot(int bk, int index, const char *spec, lc_device **out) {
    backend_slot *s = &g_slots[bk];
    lc_device *dev = calloc(1, sizeof *dev);
    if (!dev) return lc_error(LC_ERR_NOMEM, "lc_device_open(\"%s\"): out of host memory", spec);
    void *ctx = NULL;
    lc_status st = s->iface->open(index, &ctx);
    if (st != LC_OK) {
        char msg[768];
        copy_str(msg, sizeof msg, lc_last_error());
        free(dev);
        return lc_error(st, "lc_device_open(\"%s\"): %s backend failed to open device %d (%s): %s", spec,
                        s->display, index, s->infos[index].name, msg);
    }
    dev->iface = s->iface;
    dev->ctx = ctx;
    dev->index = index;
    dev->info = s->infos[index];
    atomic_init(&dev->allocated, 0);
    atomic_init(&dev->peak, 0);
    *out = dev;
    return LC_OK;
}

lc_status lc_device_open(const char *spec, lc_device **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_device_open: out is NULL");
    *out = NULL;
    const char *from = "";
    if (!spec || !spec[0]) {
        const char *env = getenv("LORAC_DEVICE");
        spec = (env && env[0]) ? env : "auto";
        if (env && env[0]) from = " (from $LORAC_DEVICE: unset it or pass a device explicitly)";
    }
    registry();
    char list[1000];
    int bk, index;
    if (!parse_spec(spec, &bk, &index)) {
        describe_devices(list, sizeof list);
        return lc_error(LC_ERR_INVALID_ARG,
                        "lc_device_open: malformed device spec \"%s\"%s (expected cpu, opencl, opencl:N, "
                        "vulkan, vulkan:N or auto); %s", spec, from, list);
    }
    if (bk == -1) { /* auto: first real GPU, else the CPU backend */
        for (int b = BK_OPENCL; b < BK_COUNT; b++)
            for (int i = 0; i < g_slots[b].count; i++)
                if (g_slots[b].info_ok[i] && !g_slots[b].infos[i].is_cpu) return open_slot(b, i, spec, out);
        bk = BK_CPU;
        index = -1;
    }
    backend_slot *s = &g_slots[bk];
    if (index < 0) { /* backend without index: its first non-CPU device, else its first device */
        for (int i = 0; i < s->count && index < 0; i++)
            if (s->info_ok[i] && !s->infos[i].is_cpu) index = i;
        for (int i = 0; i < s->count && index < 0; i++)
            if (s->info_ok[i]) index = i;
    }
    if (!s->iface || index < 0 || index >= s->count || !s->info_ok[index]) {
        describe_devices(list, sizeof list);
        return lc_error(LC_ERR_NO_DEVICE, "lc_device_open: no device \"%s\"%s; %s", spec, from, list);
    }
    return open_slot(bk, index, spec, out);
}

void lc_device_close(lc_device *dev) {
    if (!dev) return;
    if (dev->iface && dev->iface->close) dev->iface->close(dev->ctx);
    free(dev);
}

const lc_device_info *lc_device_get_info(const lc_device *dev) { return dev ? &dev->info : NULL; }

lc_status lc_device_synchronize(lc_device *dev) {
    if (!dev) return lc_error(LC_ERR_INVALID_ARG, "lc_device_synchronize: device is NULL");
    if (!dev->iface->synchronize) return LC_OK;
    lc_status st = dev->iface->synchronize(dev->ctx);
    if (st != LC_OK) {
        char msg[768];
        copy_str(msg, sizeof msg, lc_last_error());
        return lc_error(st, "lc_device_synchronize on %s (%s): %s", dev->info.spec, dev->info.name, msg);
    }
    return LC_OK;
}

uint64_t lc_device_allocated(const lc_device *dev) {
    return dev ? atomic_load(&((lc_device *)dev)->allocated) : 0;
}

uint64_t lc_device_peak_allocated(const lc_device *dev) {
    return dev ? atomic_load(&((lc_device *)dev)->peak) : 0;
}

/* ---- buffers ------------------------------------------------------------------------------ */

static bool range_ok(size_t total, size_t offset, size_t size) {
    return offset <= total && size <= total - offset;
}

/* Re-record a backend error with the calling function and device in front of it. */
static lc_status wrap_backend(lc_status st, const char *what, const lc_device *dev) {
    char msg[768];
    copy_str(msg, sizeof msg, lc_last_error());
    return lc_error(st, "%s on %s (%s): %s", what, dev->info.spec, dev->info.name, msg);
}

lc_status lc_buffer_alloc(lc_device *dev, size_t size, struct lc_buffer **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_buffer_alloc: out is NULL");
    *out = NULL;
    if (!dev) return lc_error(LC_ERR_INVALID_ARG, "lc_buffer_alloc: device is NULL");
    if (size == 0) return lc_error(LC_ERR_INVALID_ARG, "lc_buffer_alloc: size is 0 bytes on %s", dev->info.spec);
    lc_buffer *buf = calloc(1, sizeof *buf);
    if (!buf) return lc_error(LC_ERR_NOMEM, "lc_buffer_alloc: out of host memory");
    void *impl = NULL;
    lc_status st = dev->iface->buffer_alloc(dev->ctx, size, &impl);
    if (st != LC_OK) {
        free(buf);
        char what[96];
        snprintf(what, sizeof what, "lc_buffer_alloc(%zu bytes)", size);
        return wrap_backend(st, what, dev);
    }
    buf->device = dev;
    buf->size = size;
    buf->impl = impl;
    uint64_t now = atomic_fetch_add(&dev->allocated, (uint64_t)size) + (uint64_t)size;
    uint64_t peak = atomic_load(&dev->peak);
    while (now > peak && !atomic_compare_exchange_weak(&dev->peak, &peak, now)) {
    }
    *out = buf;
    return LC_OK;
}

void lc_buffer_free(struct lc_buffer *buf) {
    if (!buf) return;
    lc_device *dev = buf->device;
    if (dev) {
        dev->iface->buffer_free(dev->ctx, buf->impl);
        atomic_fetch_sub(&dev->allocated, (uint64_t)buf->size);
    }
    free(buf);
}

static lc_status check_buffer(const struct lc_buffer *buf, size_t offset, size_t size, const char *fn) {
    if (!buf || !buf->device) return lc_error(LC_ERR_INVALID_ARG, "%s: buffer is NULL or has no device", fn);
    if (!range_ok(buf->size, offset, size))
        return lc_error(LC_ERR_INVALID_ARG, "%s: range [%zu, +%zu) is past the end of a %zu-byte buffer on %s", fn,
                        offset, size, buf->size, buf->device->info.spec);
    return LC_OK;
}

lc_status lc_buffer_upload(struct lc_buffer *buf, size_t offset, const void *src, size_t size) {
    lc_status st = check_buffer(buf, offset, size, "lc_buffer_upload");
    if (st != LC_OK) return st;
    if (size == 0) return LC_OK;
    if (!src) return lc_error(LC_ERR_INVALID_ARG, "lc_buffer_upload: src is NULL");
    st = buf->device->iface->buffer_upload(buf->device->ctx, buf->impl, offset, src, size);
    return st == LC_OK ? LC_OK : wrap_backend(st, "lc_buffer_upload", buf->device);
}

lc_status lc_buffer_download(const struct lc_buffer *buf, size_t offset, void *dst, size_t size) {
    lc_status st = check_buffer(buf, offset, size, "lc_buffer_download");
    if (st != LC_OK) return st;
    if (size == 0) return LC_OK;
    if (!dst) return lc_error(LC_ERR_INVALID_ARG, "lc_buffer_download: dst is NULL");
    st = buf->device->iface->buffer_download(buf->device->ctx, buf->impl, offset, dst, size);
    return st == LC_OK ? LC_OK : wrap_backend(st, "lc_buffer_download", buf->device);
}

lc_status lc_buffer_clear(struct lc_buffer *buf, size_t offset, size_t size) {
    lc_status st = check_buffer(buf, offset, size, "lc_buffer_clear");
    if (st != LC_OK) return st;
    if (size == 0) return LC_OK;
    st = buf->device->iface->buffer_clear(buf->device->ctx, buf->impl, offset, size);
    return st == LC_OK ? LC_OK : wrap_backend(st, "lc_buffer_clear", buf->device);
}

/* ---- GEMM --------------------------------------------------------------------------------- */

/* Bytes spanned by `rows` rows of `cols` floats with leading dimension ld; false on overflow. */
static bool span_bytes(int rows, int cols, int ld, size_t *out) {
    uint64_t r = (uint64_t)(rows - 1), l = (uint64_t)ld;
    if (l != 0 && r > (UINT64_MAX / 4 - (uint64_t)cols) / l) return false;
    uint64_t elems = r * l + (uint64_t)cols;
    if (elems > SIZE_MAX / 4) return false;
    *out = (size_t)(elems * 4);
    return true;
}

static lc_status check_operand(const lc_device *dev, const char *which, const struct lc_buffer *buf, size_t off,
                               int rows, int cols, int ld) {
    if (!buf) return lc_error(LC_ERR_INVALID_ARG, "lc_device_gemm: buffer %s is NULL", which);
    if (buf->device != dev)
        return lc_error(LC_ERR_INVALID_ARG, "lc_device_gemm: buffer %s lives on %s, not on %s", which,
                        buf->device ? buf->device->info.spec : "(no device)", dev->info.spec);
    if (ld < cols)
        return lc_error(LC_ERR_INVALID_ARG, "lc_device_gemm: ld%s = %d is less than the %d columns of stored %s",
                        which, ld, cols, which);
    if (off % sizeof(float) != 0)
        return lc_error(LC_ERR_INVALID_ARG, "lc_device_gemm: off_%s = %zu bytes is not a multiple of 4", which, off);
    size_t need;
    if (!span_bytes(rows, cols, ld, &need) || !range_ok(buf->size, off, need))
        return lc_error(LC_ERR_INVALID_ARG,
                        "lc_device_gemm: %s (%d rows x %d cols, ld %d, offset %zu) runs past its %zu-byte buffer",
                        which, rows, cols, ld, off, buf->size);
    return LC_OK;
}

lc_status lc_device_gemm(lc_device *dev, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                         const struct lc_buffer *a, size_t off_a, int lda, const struct lc_buffer *b, size_t off_b,
                         int ldb, float beta, struct lc_buffer *c, size_t off_c, int ldc) {
    if (!dev) return lc_error(LC_ERR_INVALID_ARG, "lc_device_gemm: device is NULL");
    if (m < 1 || n < 1 || k < 1)
        return lc_error(LC_ERR_INVALID_ARG, "lc_device_gemm: sizes must be >= 1 (m=%d n=%d k=%d)", m, n, k);
    lc_status st;
    /* stored A: [M,K] (lda >= K) or, transposed, [K,M] (lda >= M); likewise B; C is [M,N]. */
    if ((st = check_operand(dev, "a", a, off_a, trans_a ? k : m, trans_a ? m : k, lda)) != LC_OK) return st;
    if ((st = check_operand(dev, "b", b, off_b, trans_b ? n : k, trans_b ? k : n, ldb)) != LC_OK) return st;
    if ((st = check_operand(dev, "c", c, off_c, m, n, ldc)) != LC_OK) return st;
    if (!dev->iface->gemm)
        return lc_error(LC_ERR_UNSUPPORTED, "lc_device_gemm: the %s backend of %s has no GEMM entry", dev->info.backend,
                        dev->info.spec);
    st = dev->iface->gemm(dev->ctx, trans_a, trans_b, m, n, k, alpha, a->impl, off_a, lda, b->impl, off_b, ldb, beta,
                          c->impl, off_c, ldc);
    return st == LC_OK ? LC_OK : wrap_backend(st, "lc_device_gemm", dev);
}

/* ---- single node -------------------------------------------------------------------------- */

lc_status lc_device_run_node(lc_device *dev, const lc_node *node) {
    if (!dev || !node) return lc_error(LC_ERR_INVALID_ARG, "lc_device_run_node: device or node is NULL");
    if (node->op <= LC_OP_NONE || node->op >= LC_OP_COUNT)
        return lc_error(LC_ERR_INVALID_ARG, "lc_device_run_node: invalid op %d", (int)node->op);
    const char *op = lc_op_name(node->op);
    for (int i = 0; i < LC_MAX_SRC + LC_MAX_DST; i++) {
        const lc_tensor *t = i < LC_MAX_SRC ? node->src[i] : node->dst[i - LC_MAX_SRC];
        if (!t) continue;
        if (!t->buffer)
            return lc_error(LC_ERR_STATE, "lc_device_run_node(%s): tensor '%s' has no memory yet", op, t->name);
        if (t->buffer->device != dev)
            return lc_error(LC_ERR_INVALID_ARG, "lc_device_run_node(%s): tensor '%s' lives on %s, not on %s", op,
                            t->name, t->buffer->device ? t->buffer->device->info.spec : "(none)", dev->info.spec);
    }
    if (dev->iface->supports) {
        lc_clear_error();
        if (!dev->iface->supports(dev->ctx, node)) {
            /* A backend may leave its detailed reason (tensor, bytes, limit) in lc_last_error. */
            char why[1024];
            snprintf(why, sizeof why, "%s", lc_last_error());
            return lc_error(LC_ERR_UNSUPPORTED, "lc_device_run_node: %s (%s) does not support op %s with src0 %s%s%s",
                            dev->info.spec, dev->info.name, op, node->src[0] ? lc_dtype_name(node->src[0]->dtype) : "-",
                            why[0] ? ": " : "", why);
        }
    }
    lc_status st;
    if (dev->iface->run) {
        st = dev->iface->run(dev->ctx, node);
    } else {
        lc_node *one = (lc_node *)node;
        st = dev->iface->compute(dev->ctx, &one, 1);
    }
    if (st != LC_OK) {
        char what[64];
        snprintf(what, sizeof what, "lc_device_run_node(%s)", op);
        return wrap_backend(st, what, dev);
    }
    return lc_device_synchronize(dev);
}
