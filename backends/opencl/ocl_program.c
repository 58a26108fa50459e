/* lorac OpenCL backend — program builds with an on-disk binary cache.
 *
 * A program is built once per device and its binary (clGetProgramInfo CL_PROGRAM_BINARIES) is
 * stored as <cache dir>/<label>-<device>-<key>.bin, where device is a 32-bit hash of the device
 * identity (platform name and version, device name and version, driver version) and key a
 * 64-bit FNV-1a hash of that identity, the build options and every source string. Writing a new
 * binary removes the other binaries of the same label and device (older kernel sources or
 * options), so the cache holds one binary per program and device. The next open loads it with clCreateProgramWithBinary, so a
 * second run skips the OpenCL C compiler; a binary the driver rejects (corrupt file, driver
 * update that kept its version string) falls back to a build from source that rewrites it.
 * Files are written atomically (temporary file + rename), so concurrent processes never see a
 * partial binary. The cache directory is $LORAC_OPENCL_CACHE_DIR, else $XDG_CACHE_HOME/lorac/opencl,
 * else $HOME/.cache/lorac/opencl; without a usable directory programs are simply built each time.
 * $LORAC_OPENCL_VERBOSE=1 logs every cache hit, miss and write to stderr.
 * File format: the 8 bytes "LCCLBIN1", the u64 binary size, the binary.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ocl_internal.h"

static const char ocl_bin_magic[8] = {'L', 'C', 'C', 'L', 'B', 'I', 'N', '1'};

uint64_t ocl_fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* mkdir -p; true when the directory exists afterwards. */
static bool mkdir_p(const char *path) {
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return false;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (tmp[i] != '/') continue;
        tmp[i] = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return false;
        tmp[i] = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return false;
    struct stat st;
    return stat(tmp, &st) == 0 && S_ISDIR(st.st_mode);
}

void ocl_cache_dir(char *out, size_t cap) {
    out[0] = '\0';
    const char *env = getenv("LORAC_OPENCL_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char path[PATH_MAX];
    if (env && env[0]) snprintf(path, sizeof path, "%s", env);
    else if (xdg && xdg[0] == '/') snprintf(path, sizeof path, "%s/lorac/opencl", xdg);
    else if (home && home[0]) snprintf(path, sizeof path, "%s/.cache/lorac/opencl", home);
    else return;
    if (mkdir_p(path) && access(path, W_OK | R_OK | X_OK) == 0) snprintf(out, cap, "%s", path);
}

bool ocl_write_file_atomic(const char *path, const void *data, size_t size) {
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) remove(tmp);
    return ok;
}

/* Read a cached binary; NULL when absent or malformed. */
static unsigned char *read_binary(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char magic[8];
    uint64_t n = 0;
    unsigned char *buf = NULL;
    if (fread(magic, 1, 8, f) == 8 && memcmp(magic, ocl_bin_magic, 8) == 0 && fread(&n, sizeof n, 1, f) == 1 &&
        n > 0 && n < ((uint64_t)1 << 31)) {
        buf = malloc((size_t)n);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (buf) *size = (size_t)n;
    return buf;
}

/* Remove <dir>/<prefix>*.bin other than keep_name. */
static void remove_stale(const ocl_ctx *c, const char *prefix, const char *keep_name) {
    DIR *d = opendir(c->cache_dir);
    if (!d) return;
    const size_t np = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const size_t n = strlen(e->d_name);
        if (n <= np + 4 || strncmp(e->d_name, prefix, np) != 0 || strcmp(e->d_name + n - 4, ".bin") != 0 ||
            strcmp(e->d_name, keep_name) == 0)
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", c->cache_dir, e->d_name);
        if (remove(path) == 0 && c->verbose) fprintf(stderr, "lorac opencl: %s: removed stale binary %s\n", c->spec, path);
    }
    closedir(d);
}

static void write_binary(const ocl_ctx *c, cl_program prog, const char *path) {
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS || size == 0) return;
    unsigned char *buf = malloc(16 + size);
    if (!buf) return;
    unsigned char *bin = buf + 16;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS) {
        uint64_t n = size;
        memcpy(buf, ocl_bin_magic, 8);
        memcpy(buf + 8, &n, 8);
        bool ok = ocl_write_file_atomic(path, buf, 16 + size);
        if (c->verbose)
            fprintf(stderr, "lorac opencl: %s: %s program binary %s (%zu bytes)\n", c->spec, ok ? "wrote" : "could not write",
                    path, size);
    }
    free(buf);
}

/* First part of the build log, for the error message (and all of it on stderr when verbose). */
static void build_log(const ocl_ctx *c, cl_program prog, char *out, size_t cap) {
    out[0] = '\0';
    size_t n = 0;
    if (clGetProgramBuildInfo(prog, c->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) != CL_SUCCESS || n == 0) return;
    char *log = malloc(n + 1);
    if (!log) return;
    if (clGetProgramBuildInfo(prog, c->device, CL_PROGRAM_BUILD_LOG, n, log, NULL) == CL_SUCCESS) {
        log[n] = '\0';
        if (c->verbose) fprintf(stderr, "lorac opencl: %s: build log:\n%s\n", c->spec, log);
        snprintf(out, cap, "%s", log);
        for (char *p = out; *p; p++)
            if (*p == '\n') *p = ' ';
    }
    free(log);
}

lc_status ocl_build_program(ocl_ctx *c, const char *label, const char *const *srcs, int nsrc, const char *options,
                            cl_program *out) {
    *out = NULL;
    const uint64_t hd = ocl_fnv(OCL_FNV_INIT, c->key, strlen(c->key));
    uint64_t h = ocl_fnv(hd, options, strlen(options) + 1);
    for (int i = 0; i < nsrc; i++) h = ocl_fnv(h, srcs[i], strlen(srcs[i]) + 1);
    char path[PATH_MAX + 160] = "", prefix[96], name[128];
    snprintf(prefix, sizeof prefix, "%s-%08x-", label, (unsigned)(hd ^ (hd >> 32)));
    snprintf(name, sizeof name, "%s%016llx.bin", prefix, (unsigned long long)h);
    if (c->cache_dir[0]) snprintf(path, sizeof path, "%s/%s", c->cache_dir, name);

    cl_int err;
    if (path[0]) {
        size_t size = 0;
        unsigned char *bin = read_binary(path, &size);
        if (bin) {
            const unsigned char *bp = bin;
            cl_int bstat = CL_SUCCESS;
            cl_program prog = clCreateProgramWithBinary(c->context, 1, &c->device, &size, &bp, &bstat, &err);
            free(bin);
            if (prog && err == CL_SUCCESS && bstat == CL_SUCCESS &&
                clBuildProgram(prog, 1, &c->device, options, NULL, NULL) == CL_SUCCESS) {
                if (c->verbose) fprintf(stderr, "lorac opencl: %s: program %s: cache hit %s\n", c->spec, label, path);
                *out = prog;
                return LC_OK;
            }
            if (prog) clReleaseProgram(prog);
            if (c->verbose)
                fprintf(stderr, "lorac opencl: %s: program %s: cached binary %s rejected, rebuilding\n", c->spec, label,
                        path);
        } else if (c->verbose) {
            fprintf(stderr, "lorac opencl: %s: program %s: cache miss %s\n", c->spec, label, path);
        }
    }
    cl_program prog = clCreateProgramWithSource(c->context, (cl_uint)nsrc, (const char **)srcs, NULL, &err);
    if (!prog || err != CL_SUCCESS) return ocl_fail(c, err, "clCreateProgramWithSource(%s)", label);
    err = clBuildProgram(prog, 1, &c->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        char log[700];
        build_log(c, prog, log, sizeof log);
        clReleaseProgram(prog);
        return lc_error(ocl_status_of(err) == LC_ERR_NOMEM ? LC_ERR_NOMEM : LC_ERR_BACKEND,
                        "opencl clBuildProgram(%s): %s (%d) on %s '%s' with options \"%s\": %s", label, ocl_err_name(err),
                        (int)err, c->spec, c->name, options, log[0] ? log : "(no build log)");
    }
    if (path[0]) {
        write_binary(c, prog, path);
        remove_stale(c, prefix, name);
    }
    *out = prog;
    return LC_OK;
}
