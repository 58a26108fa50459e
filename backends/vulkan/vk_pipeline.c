/* lorac Vulkan backend — compute pipelines from the embedded SPIR-V, and the pipeline cache.
 *
 * Every pipeline of VK_PIPE_LIST has one descriptor set layout (its binding signature: storage
 * buffers 'S' and uniform texel buffers 'T', all in set 0, compute stage), one pipeline layout
 * with VK_PUSH_BYTES of push constants, and up to VK_MAX_VARIANTS pipelines that differ in their
 * specialisation constants (tile sizes, workgroup sizes, subgroup use). Modules and pipelines are
 * created on first use and kept until close.
 *
 * Pipeline cache (Vulkan 1.1 spec §10.6): one VkPipelineCache per device, loaded at open from
 *   $LORAC_VULKAN_CACHE_DIR, else $XDG_CACHE_HOME/lorac/vulkan, else ~/.cache/lorac/vulkan,
 * file "<deviceUUID>-<pipelineCacheUUID>-<vendor>-<device>-<driverVersion>.bin", used only when
 * its VkPipelineCacheHeaderVersionOne header matches the device; written back at close (to a
 * temporary file renamed over the old one) when new pipelines were created. LORAC_VULKAN_CACHE_DIR
 * set to an empty string disables the file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "vk_internal.h"
#include "vk_spirv.h"

static const char *const pipe_files[VK_PIPE_COUNT] = {
#define VK_X_PIPE(id, file, sig) file,
    VK_PIPE_LIST(VK_X_PIPE)
#undef VK_X_PIPE
};
static const char *const pipe_sigs[VK_PIPE_COUNT] = {
#define VK_X_PIPE(id, file, sig) sig,
    VK_PIPE_LIST(VK_X_PIPE)
#undef VK_X_PIPE
};

const char *vk_pipe_name(vk_pipe_id id) { return (unsigned)id < VK_PIPE_COUNT ? pipe_files[id] : "?"; }
const char *vk_pipe_signature(vk_pipe_id id) { return (unsigned)id < VK_PIPE_COUNT ? pipe_sigs[id] : ""; }

static const vk_spirv_entry *find_spirv(const char *name) {
    for (const vk_spirv_entry *e = vk_spirv_table; e->name; e++)
        if (strcmp(e->name, name) == 0) return e;
    return NULL;
}

/* ---- cache file ---------------------------------------------------------------------------- */

static void hex(char *out, const uint8_t *p, int n) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* mkdir -p; true when the directory exists afterwards. */
static bool make_dirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return false;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return false;
    return true;
}

static void cache_path(vk_ctx *c, char *dir, size_t dir_size) {
    c->pcache_path[0] = 0;
    dir[0] = 0;
    const char *env = getenv("LORAC_VULKAN_CACHE_DIR");
    if (env) {
        if (!*env) return; /* disabled */
        snprintf(dir, dir_size, "%s", env);
    } else if (getenv("XDG_CACHE_HOME") && *getenv("XDG_CACHE_HOME")) {
        snprintf(dir, dir_size, "%s/lorac/vulkan", getenv("XDG_CACHE_HOME"));
    } else if (getenv("HOME") && *getenv("HOME")) {
        snprintf(dir, dir_size, "%s/.cache/lorac/vulkan", getenv("HOME"));
    } else {
        return;
    }
    char du[2 * VK_UUID_SIZE + 1], pu[2 * VK_UUID_SIZE + 1];
    hex(du, c->device_uuid, VK_UUID_SIZE);
    hex(pu, c->props.pipelineCacheUUID, VK_UUID_SIZE);
    snprintf(c->pcache_path, sizeof c->pcache_path, "%s/%s-%s-%04x-%04x-%08x.bin", dir, du, pu, c->props.vendorID,
             c->props.deviceID, c->props.driverVersion);
}

/* Bytes of a cache file whose header matches this device, or NULL. */
static void *load_cache(vk_ctx *c, size_t *size) {
    *size = 0;
    if (!c->pcache_path[0]) return NULL;
    FILE *f = fopen(c->pcache_path, "rb");
    if (!f) return NULL;
    void *data = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 32 && n < (1L << 30) && fseek(f, 0, SEEK_SET) == 0) {
            data = malloc((size_t)n);
            if (data && fread(data, 1, (size_t)n, f) == (size_t)n) {
                *size = (size_t)n;
            } else {
                free(data);
                data = NULL;
            }
        }
    }
    fclose(f);
    if (!data) return NULL;
    /* VkPipelineCacheHeaderVersionOne: length, version, vendorID, deviceID, pipelineCacheUUID */
    const uint8_t *p = data;
    uint32_t hlen, ver, vendor, device;
    memcpy(&hlen, p, 4);
    memcpy(&ver, p + 4, 4);
    memcpy(&vendor, p + 8, 4);
    memcpy(&device, p + 12, 4);
    if (hlen < 32 || ver != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || vendor != c->props.vendorID ||
        device != c->props.deviceID || memcmp(p + 16, c->props.pipelineCacheUUID, VK_UUID_SIZE) != 0) {
        free(data);
        *size = 0;
        return NULL;
    }
    return data;
}

static void save_cache(vk_ctx *c) {
    if (!c->pcache || !c->pcache_path[0] || c->pipelines_created == 0) return;
    size_t n = 0;
    if (vkGetPipelineCacheData(c->device, c->pcache, &n, NULL) != VK_SUCCESS || n == 0) return;
    void *data = malloc(n);
    if (!data) return;
    if (vkGetPipelineCacheData(c->device, c->pcache, &n, data) != VK_SUCCESS) {
        free(data);
        return;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", c->pcache_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    if (!make_dirs(dir)) {
        free(data);
        return;
    }
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", c->pcache_path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(data, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = false;
    if (ok) ok = rename(tmp, c->pcache_path) == 0;
    if (!ok) remove(tmp);
    free(data);
}

/* ---- init / destroy ---------------------------------------------------------------------- */

lc_status vk_pipelines_init(vk_ctx *c) {
    char dir[1024];
    cache_path(c, dir, sizeof dir);
    size_t n = 0;
    void *data = load_cache(c, &n);
    VkPipelineCacheCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
        .initialDataSize = n,
        .pInitialData = data,
    };
    VkResult r = vkCreatePipelineCache(c->device, &pci, NULL, &c->pcache);
    if (r != VK_SUCCESS && data) {
        pci.initialDataSize = 0;
        pci.pInitialData = NULL;
        n = 0;
        r = vkCreatePipelineCache(c->device, &pci, NULL, &c->pcache);
    }
    free(data);
    if (r != VK_SUCCESS) return vk_fail(c, r, "vkCreatePipelineCache");
    c->pcache_loaded_bytes = n;

    for (int p = 0; p < VK_PIPE_COUNT; p++) {
        const char *sig = pipe_sigs[p];
        VkDescriptorSetLayoutBinding bindings[VK_MAX_BINDINGS];
        int nb = (int)strlen(sig);
        for (int i = 0; i < nb; i++) {
            bindings[i] = (VkDescriptorSetLayoutBinding){
                .binding = (uint32_t)i,
                .descriptorType = sig[i] == 'T' ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                .descriptorCount = 1,
                .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
            };
        }
        VkDescriptorSetLayoutCreateInfo lci = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
            .flags = c->push_descriptors ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0,
            .bindingCount = (uint32_t)nb,
            .pBindings = bindings,
        };
        r = vkCreateDescriptorSetLayout(c->device, &lci, NULL, &c->set_layouts[p]);
        if (r != VK_SUCCESS) return vk_fail(c, r, "vkCreateDescriptorSetLayout");
        VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = VK_PUSH_BYTES};
        VkPipelineLayoutCreateInfo plci = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
            .setLayoutCount = 1,
            .pSetLayouts = &c->set_layouts[p],
            .pushConstantRangeCount = 1,
            .pPushConstantRanges = &pr,
        };
        r = vkCreatePipelineLayout(c->device, &plci, NULL, &c->layouts[p]);
        if (r != VK_SUCCESS) return vk_fail(c, r, "vkCreatePipelineLayout");
    }
    return LC_OK;
}

void vk_pipelines_destroy(vk_ctx *c) {
    if (!c->device) return;
    save_cache(c);
    for (int p = 0; p < VK_PIPE_COUNT; p++) {
        for (int v = 0; v < c->n_variants[p]; v++)
            if (c->variants[p][v].pipeline) vkDestroyPipeline(c->device, c->variants[p][v].pipeline, NULL);
        c->n_variants[p] = 0;
        if (c->modules[p]) vkDestroyShaderModule(c->device, c->modules[p], NULL);
        if (c->layouts[p]) vkDestroyPipelineLayout(c->device, c->layouts[p], NULL);
        if (c->set_layouts[p]) vkDestroyDescriptorSetLayout(c->device, c->set_layouts[p], NULL);
        c->modules[p] = VK_NULL_HANDLE;
        c->layouts[p] = VK_NULL_HANDLE;
        c->set_layouts[p] = VK_NULL_HANDLE;
    }
    if (c->pcache) vkDestroyPipelineCache(c->device, c->pcache, NULL);
    c->pcache = VK_NULL_HANDLE;
}

/* ---- lookup / creation ------------------------------------------------------------------- */

static bool same_spec(const vk_spec *a, const vk_spec *b) {
    if (a->n != b->n) return false;
    for (int i = 0; i < a->n; i++)
        if (a->values[i] != b->values[i]) return false;
    return true;
}

lc_status vk_pipeline_get(vk_ctx *c, vk_pipe_id id, const vk_spec *spec, VkPipeline *out) {
    static const vk_spec none = {0, {0}};
    if (!spec) spec = &none;
    for (int v = 0; v < c->n_variants[id]; v++)
        if (same_spec(&c->variants[id][v].spec, spec)) {
            *out = c->variants[id][v].pipeline;
            return LC_OK;
        }
    if (c->n_variants[id] >= VK_MAX_VARIANTS)
        return lc_error(LC_ERR_BACKEND, "vulkan: internal error: more than %d variants of pipeline %s", VK_MAX_VARIANTS,
                        pipe_files[id]);
    VkResult r;
    if (!c->modules[id]) {
        const vk_spirv_entry *e = find_spirv(pipe_files[id]);
        if (!e) return lc_error(LC_ERR_BACKEND, "vulkan: shader %s.comp is not embedded in the plugin", pipe_files[id]);
        VkShaderModuleCreateInfo mci = {
            .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
            .codeSize = e->size,
            .pCode = e->code,
        };
        r = vkCreateShaderModule(c->device, &mci, NULL, &c->modules[id]);
        if (r != VK_SUCCESS) {
            char call[96];
            snprintf(call, sizeof call, "vkCreateShaderModule(%s)", pipe_files[id]);
            return vk_fail(c, r, call);
        }
    }
    VkSpecializationMapEntry map[VK_MAX_SPEC];
    for (int i = 0; i < spec->n; i++) map[i] = (VkSpecializationMapEntry){(uint32_t)i, (uint32_t)(4 * i), 4};
    VkSpecializationInfo si = {
        .mapEntryCount = (uint32_t)spec->n,
        .pMapEntries = map,
        .dataSize = (size_t)spec->n * 4,
        .pData = spec->values,
    };
    VkComputePipelineCreateInfo cci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage =
            {
                .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = c->modules[id],
                .pName = "main",
                .pSpecializationInfo = spec->n ? &si : NULL,
            },
        .layout = c->layouts[id],
    };
    VkPipeline pl = VK_NULL_HANDLE;
    r = vkCreateComputePipelines(c->device, c->pcache, 1, &cci, NULL, &pl);
    if (r != VK_SUCCESS) {
        char call[96];
        snprintf(call, sizeof call, "vkCreateComputePipelines(%s)", pipe_files[id]);
        return vk_fail(c, r, call);
    }
    vk_pipeline *vp = &c->variants[id][c->n_variants[id]++];
    vp->spec = *spec;
    vp->pipeline = pl;
    c->pipelines_created++;
    *out = pl;
    return LC_OK;
}
