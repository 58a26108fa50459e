/* lorac OpenCL backend — matrix products.
 *
 * Two engines compute C[M,N] = alpha op(A) op(B) + beta C (row-major, BLAS semantics):
 *  - the own kernels, batched over (sequence, head) for attention:
 *    on GPUs kernels/gemm.cl: tiles of A and B in local memory, each work-item holding a
 *    GEMM_RM x GEMM_RN register block of C as float4 vectors; compiled once per weight dtype so
 *    quantized, half and bfloat16 weights are decoded while their tile is loaded, never whole;
 *    on devices that run on a CPU (CL_DEVICE_TYPE_CPU: PoCL) kernels/gemm_cpu.cl: C blocks in
 *    vector registers of the device's native width, k in cache-sized chunks, no local memory.
 *    There a B that is not an F32 [K][N] matrix (a transposed one, half, bfloat16, quantized) is
 *    first decoded panel by panel into a bounded F32 scratch by gemm_pack_b (O(K N) work next to
 *    the O(M N K) product, as the CPU backend dequantises tiles), except for batched attention
 *    products (dot-product kernel) and products with few columns (dot-product kernel, or the
 *    product computed transposed). $LORAC_OPENCL_GEMM_KERNEL=tiled|direct overrides the
 *    device-type choice; $LORAC_OPENCL_GEMM_TILE / $LORAC_OPENCL_GEMM_CPU override geometries;
 *  - CLBlast's CLBlastSgemm (row-major layout, element offsets and leading dimensions) for F32
 *    products.
 * For a single F32 product the engine is chosen per shape class (transposes and the magnitude
 * of M, N, K) by timing both on the first product of that class, on a scratch output, and the
 * choice is kept in memory and in <cache dir>/gemm-<device key>.txt so later runs do not measure
 * again. Products below OCL_GEMM_TIME_MIN multiply-adds use the own kernel without measuring.
 * $LORAC_OPENCL_GEMM=own|clblast forces an engine (tests, benchmarks).
 * CLBlast reads C even when beta == 0 (0 * NaN = NaN), so C is zeroed first in that case.
 */
#include <clblast_c.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_internal.h"

#define OCL_GEMM_TIME_MIN (1u << 21)

/* ---- tile geometry and program ------------------------------------------------------------ */

static const ocl_gemm_cfg g_cfgs[] = {
    {64, 64, 16, 4, 4}, /* work-group 16 x 16 */
    {32, 32, 16, 4, 4}, /* 8 x 8 */
    {16, 16, 16, 4, 4}, /* 4 x 4 */
    {8, 8, 8, 2, 2},    /* 4 x 4 */
};

static bool cfg_fits(const ocl_ctx *c, const ocl_gemm_cfg *g) {
    size_t wg = (size_t)(g->tn / g->rn) * (size_t)(g->tm / g->rm);
    size_t local = (size_t)g->tk * (size_t)(g->tm + 1 + g->tn + 4) * sizeof(float);
    return wg <= c->max_wg && (size_t)(g->tn / g->rn) <= c->max_items[0] && (size_t)(g->tm / g->rm) <= c->max_items[1] &&
           local + 256 <= c->local_mem;
}

/* $LORAC_OPENCL_GEMM_TILE="TM,TN,TK,RM,RN" overrides the geometry (for tuning). */
static bool cfg_from_env(ocl_gemm_cfg *g) {
    const char *s = getenv("LORAC_OPENCL_GEMM_TILE");
    ocl_gemm_cfg t;
    if (!s || sscanf(s, "%d,%d,%d,%d,%d", &t.tm, &t.tn, &t.tk, &t.rm, &t.rn) != 5) return false;
    if (t.tm < 1 || t.tn < 1 || t.tk < 1 || t.rm < 1 || t.rn < 1 || t.tm % t.rm || t.tn % t.rn || t.tm > 256 || t.tn > 256 ||
        t.tk > 64)
        return false;
    *g = t;
    return true;
}

static lc_status build_with(ocl_ctx *c, const char *options, const ocl_gemm_cfg *g, bool *too_big) {
    static const struct { const char *name, *expr; } wt[OCL_W_COUNT] = {
#define OCL_X_WSRC(name, id, expr) {#name, expr},
        OCL_WTYPE_LIST(OCL_X_WSRC)
#undef OCL_X_WSRC
    };
    *too_big = false;
    char geom[512];
    const ocl_gemm_cpu_cfg *cc = &c->ccfg;
    snprintf(geom, sizeof geom,
             "#define GEMM_TM %d\n#define GEMM_TN %d\n#define GEMM_TK %d\n#define GEMM_RM %d\n#define GEMM_RN %d\n"
             "#define GC_VW %d\n#define GC_RM %d\n#define GC_NV %d\n#define GC_DM %d\n#define GC_DN %d\n#define GC_KC %d\n",
             g->tm, g->tn, g->tk, g->rm, g->rn, cc->vw, cc->rm, cc->nv, cc->dm, cc->dn, cc->kc);
    enum { NS = 3 + 3 * OCL_W_COUNT };
    const char *srcs[NS];
    char heads[OCL_W_COUNT][256];
    int ns = 0;
    srcs[ns++] = ocl_src_common;
    srcs[ns++] = geom;
    static const char tail[] = "\n#undef GEMM_NAME\n#undef GEMM_LOADW\n";
    for (int i = 0; i < OCL_W_COUNT; i++) {
        snprintf(heads[i], sizeof heads[i], "#define GEMM_NAME gemm_%s\n#define GEMM_LOADW(row, c) %s\n", wt[i].name,
                 wt[i].expr);
        srcs[ns++] = heads[i];
        srcs[ns++] = ocl_src_gemm;
        srcs[ns++] = tail;
    }
    srcs[ns++] = ocl_src_gemm_cpu;
    lc_status st = ocl_build_program(c, "gemm", srcs, ns, options, &c->prog_gemm);
    if (st != LC_OK) return st;
    static const char *const cpu_names[4] = {"gemm_cpu_bc", "gemm_cpu_dot", "gemm_pack_b", "gemm_cpu_tacc"};
    cl_kernel *cpu_k[4] = {&c->gemm_bc, &c->gemm_dot, &c->gemm_pack, &c->gemm_tacc};
    for (int i = 0; i < 4; i++) {
        cl_int err;
        *cpu_k[i] = clCreateKernel(c->prog_gemm, cpu_names[i], &err);
        if (!*cpu_k[i] || err != CL_SUCCESS) return ocl_fail(c, err, "clCreateKernel(%s)", cpu_names[i]);
    }
    const size_t wg = (size_t)(g->tn / g->rn) * (size_t)(g->tm / g->rm);
    for (int i = 0; i < OCL_W_COUNT; i++) {
        char kname[32];
        snprintf(kname, sizeof kname, "gemm_%s", wt[i].name);
        cl_int err;
        c->gemm[i] = clCreateKernel(c->prog_gemm, kname, &err);
        if (!c->gemm[i] || err != CL_SUCCESS) return ocl_fail(c, err, "clCreateKernel(%s)", kname);
        size_t kwg = 0;
        clGetKernelWorkGroupInfo(c->gemm[i], c->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg, NULL);
        if (kwg && kwg < wg) *too_big = true;
    }
    c->gcfg = *g;
    return LC_OK;
}

static void release_gemm(ocl_ctx *c) {
    for (int i = 0; i < OCL_W_COUNT; i++)
        if (c->gemm[i]) {
            clReleaseKernel(c->gemm[i]);
            c->gemm[i] = NULL;
        }
    cl_kernel *cpu_k[4] = {&c->gemm_bc, &c->gemm_dot, &c->gemm_pack, &c->gemm_tacc};
    for (int i = 0; i < 4; i++)
        if (*cpu_k[i]) {
            clReleaseKernel(*cpu_k[i]);
            *cpu_k[i] = NULL;
        }
    if (c->prog_gemm) {
        clReleaseProgram(c->prog_gemm);
        c->prog_gemm = NULL;
    }
}

/* Vector width and register blocks of the CPU-device kernels: the device's preferred float
 * vector width; $LORAC_OPENCL_GEMM_CPU="VW,RM,NV,DM,DN" overrides (for tuning). */
static void cpu_cfg(ocl_ctx *c) {
    cl_uint pref = 0;
    clGetDeviceInfo(c->device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof pref, &pref, NULL);
    static const ocl_gemm_cpu_cfg by_width[3] = {
        {16, 8, 2, 4, 4, 256, 2, 16}, {8, 6, 2, 3, 3, 256, 2, 16}, {4, 4, 2, 3, 3, 256, 2, 16}};
    c->ccfg = pref >= 16 ? by_width[0] : pref >= 8 ? by_width[1] : by_width[2];
    const char *s = getenv("LORAC_OPENCL_GEMM_CPU");
    ocl_gemm_cpu_cfg t;
    if (s && sscanf(s, "%d,%d,%d,%d,%d,%d,%d,%d", &t.vw, &t.rm, &t.nv, &t.dm, &t.dn, &t.kc, &t.wx, &t.wy) == 8 &&
        (t.vw == 4 || t.vw == 8 || t.vw == 16) && t.rm >= 1 && t.rm <= 16 && t.nv >= 1 && t.nv <= 8 && t.dm >= 1 &&
        t.dm <= 8 && t.dn >= 1 && t.dn <= 8 && t.kc >= 16 && t.wx >= 1 && t.wy >= 1 && t.wx * t.wy <= 256)
        c->ccfg = t;
    while ((size_t)(c->ccfg.wx * c->ccfg.wy) > c->max_wg || (size_t)c->ccfg.wy > c->max_items[1]) {
        if (c->ccfg.wy > 1) c->ccfg.wy /= 2;
        else c->ccfg.wx /= 2;
    }
    const char *k = getenv("LORAC_OPENCL_GEMM_KERNEL");
    c->gemm_direct = k && strcmp(k, "direct") == 0 ? true : k && strcmp(k, "tiled") == 0 ? false : c->is_cpu;
}

lc_status ocl_gemm_build(ocl_ctx *c, const char *options) {
    cpu_cfg(c);
    ocl_gemm_cfg env;
    const bool have_env = cfg_from_env(&env);
    const int ncfg = (int)(sizeof g_cfgs / sizeof g_cfgs[0]);
    lc_status st = LC_ERR_BACKEND;
    for (int i = have_env ? -1 : 0; i < ncfg; i++) {
        const ocl_gemm_cfg *g = i < 0 ? &env : &g_cfgs[i];
        if (!cfg_fits(c, g)) continue;
        bool too_big = false;
        st = build_with(c, options, g, &too_big);
        if (st == LC_OK && !too_big) {
            if (c->verbose)
                fprintf(stderr, "lorac opencl: %s: own gemm %s: tiles %dx%dx%d, %dx%d per work-item; CPU kernels %d-wide, "
                        "%dx%d vectors, dot %dx%d\n", c->spec, c->gemm_direct ? "direct (CPU device)" : "tiled", g->tm,
                        g->tn, g->tk, g->rm, g->rn, c->ccfg.vw, c->ccfg.rm, c->ccfg.nv, c->ccfg.dm, c->ccfg.dn);
            return LC_OK;
        }
        release_gemm(c);
        if (st != LC_OK) return st;
    }
    return lc_error(LC_ERR_UNSUPPORTED, "opencl: no GEMM tile geometry fits %s '%s' (max work-group %zu, local memory %llu bytes)",
                    c->spec, c->name, c->max_wg, (unsigned long long)c->local_mem);
}

/* ---- engine choice ------------------------------------------------------------------------ */

static int size_class(int x) { return x < 64 ? 0 : x < 512 ? 1 : x < 2048 ? 2 : 3; }

static int shape_class(bool ta, bool tb, int m, int n, int k) {
    return (((ta ? 2 : 0) + (tb ? 1 : 0)) * 4 + size_class(m)) * 16 + size_class(n) * 4 + size_class(k);
}

static void choice_path(const ocl_ctx *c, char *out, size_t cap) {
    uint64_t h = ocl_fnv(OCL_FNV_INIT, c->key, strlen(c->key));
    char geom[64];
    snprintf(geom, sizeof geom, "%d,%d,%d,%d,%d/%d:%d,%d,%d,%d,%d,%d,%d,%d", c->gcfg.tm, c->gcfg.tn, c->gcfg.tk, c->gcfg.rm,
             c->gcfg.rn, c->gemm_direct, c->ccfg.vw, c->ccfg.rm, c->ccfg.nv, c->ccfg.dm, c->ccfg.dn, c->ccfg.kc, c->ccfg.wx,
             c->ccfg.wy);
    h = ocl_fnv(h, geom, strlen(geom));
    snprintf(out, cap, "%s/gemm-%016llx.txt", c->cache_dir, (unsigned long long)h);
}

lc_status ocl_gemm_init(ocl_ctx *c) {
    memset(c->gemm_choice, 0, sizeof c->gemm_choice);
    const char *force = getenv("LORAC_OPENCL_GEMM");
    c->gemm_force = force && strcmp(force, "own") == 0 ? 1 : force && strcmp(force, "clblast") == 0 ? 2 : 0;
    if (!c->cache_dir[0]) return LC_OK;
    char path[PATH_MAX + 64];
    choice_path(c, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return LC_OK;
    char line[128];
    while (fgets(line, sizeof line, f)) {
        int cls = -1;
        char eng[16];
        if (sscanf(line, "%d %15s", &cls, eng) == 2 && cls >= 0 && cls < OCL_GEMM_CLASSES)
            c->gemm_choice[cls] = strcmp(eng, "clblast") == 0 ? 2 : strcmp(eng, "own") == 0 ? 1 : 0;
    }
    fclose(f);
    return LC_OK;
}

static void save_choices(const ocl_ctx *c, int cls, double gf_own, double gf_blast) {
    if (!c->cache_dir[0]) return;
    char path[PATH_MAX + 64];
    choice_path(c, path, sizeof path);
    char *buf = malloc((size_t)OCL_GEMM_CLASSES * 64 + 256);
    if (!buf) return;
    size_t n = (size_t)snprintf(buf, 256, "# lorac OpenCL GEMM engine per shape class on %s\n", c->name);
    for (int i = 0; i < OCL_GEMM_CLASSES; i++) {
        if (!c->gemm_choice[i]) continue;
        if (i == cls)
            n += (size_t)sprintf(buf + n, "%d %s %.1f %.1f\n", i, c->gemm_choice[i] == 2 ? "clblast" : "own", gf_own, gf_blast);
        else
            n += (size_t)sprintf(buf + n, "%d %s\n", i, c->gemm_choice[i] == 2 ? "clblast" : "own");
    }
    ocl_write_file_atomic(path, buf, n);
    free(buf);
}

/* ---- the two engines ---------------------------------------------------------------------- */

static const ocl_batch g_single = {1, 1, {0, 0}, {0, 0}, {0, 0}, {1, 0, 1}, {1, 0, 1}, {1, 0, 1}};

static void set_int4(ocl_args *ar, const int *map, int w) {
    const cl_int4 v = {{map[0], map[1], map[2], w}};
    if (ar->err == CL_SUCCESS) {
        ar->err = clSetKernelArg(ar->k, ar->n, sizeof v, &v);
        if (ar->err != CL_SUCCESS) ar->bad = ar->n;
    }
    ar->n++;
}

/* One launch of gemm_cpu_bc or gemm_cpu_dot; B is F32 with offsets / strides in floats. */
static lc_status launch_direct(ocl_ctx *c, const char *what, bool dot, int m, int n, int k, float alpha, const ocl_fop *a,
                               cl_mem bmem, uint64_t boff, uint64_t ldb, bool btrans, float beta, const ocl_fop *cm,
                               const ocl_batch *bt) {
    char kname[64];
    snprintf(kname, sizeof kname, "%s for %s", dot ? "gemm_cpu_dot" : "gemm_cpu_bc", what);
    ocl_args ar = {c, -1, dot ? c->gemm_dot : c->gemm_bc, kname, 0, CL_SUCCESS, 0};
    oa_i32(&ar, m);
    oa_i32(&ar, n);
    oa_i32(&ar, k);
    oa_f32(&ar, alpha);
    oa_f32(&ar, beta);
    oa_mem(&ar, a->mem);
    oa_u64(&ar, a->off / 4);
    oa_u64(&ar, a->ld);
    oa_u64(&ar, bt->sa[0]);
    oa_u64(&ar, bt->sa[1]);
    set_int4(&ar, bt->mapa, a->trans);
    oa_mem(&ar, bmem);
    oa_u64(&ar, boff);
    oa_u64(&ar, ldb);
    oa_u64(&ar, bt->sb[0] / 4);
    oa_u64(&ar, bt->sb[1] / 4);
    set_int4(&ar, bt->mapb, btrans);
    oa_mem(&ar, cm->mem);
    oa_u64(&ar, cm->off / 4);
    oa_u64(&ar, cm->ld);
    oa_u64(&ar, bt->sc[0]);
    oa_u64(&ar, bt->sc[1]);
    set_int4(&ar, bt->mapc, 0);
    oa_i32(&ar, bt->nz1);
    const ocl_gemm_cpu_cfg *g = &c->ccfg;
    const int bn = dot ? g->dn : g->vw * g->nv, bm = dot ? g->dm : g->rm;
    const size_t bx = (size_t)((n + bn - 1) / bn), by = (size_t)((m + bm - 1) / bm);
    size_t lws[3] = {(size_t)g->wx, (size_t)g->wy, 1};
    if (lws[0] > bx) lws[0] = bx;
    if (lws[1] > by) lws[1] = by;
    const size_t gws[3] = {bx, by, (size_t)bt->nz};
    return ocl_launch(&ar, 3, gws, lws);
}

/* Columns [n0, n0 + cols) of op(B) decoded to F32: layout [K][ldp] (nk false) or [cols][ldp]
 * (nk true). */
static lc_status pack_b(ocl_ctx *c, cl_mem dst, size_t ldp, const ocl_wop *b, int k, int n, int64_t n0, int cols, bool nk) {
    ocl_args ar = {c, -1, c->gemm_pack, "gemm_pack_b", 0, CL_SUCCESS, 0};
    oa_mem(&ar, dst);
    oa_u64(&ar, ldp);
    oa_mem(&ar, b->mem);
    oa_u64(&ar, b->off);
    oa_u64(&ar, b->nb1);
    oa_i32(&ar, (int32_t)b->dtype);
    oa_i32(&ar, b->trans);
    oa_i32(&ar, k);
    oa_i32(&ar, n);
    oa_i32(&ar, (int32_t)n0);
    oa_i32(&ar, cols);
    oa_i32(&ar, nk);
    /* work-items decode 32-element chunks of W rows (see kernels/gemm_cpu.cl) */
    size_t gws[2];
    if (b->trans && !nk) { /* 32 x 32 blocks */
        gws[0] = (size_t)(k + 31) / 32;
        gws[1] = (size_t)(cols + 31) / 32;
    } else if (b->trans) {
        gws[0] = (size_t)(k + 31) / 32;
        gws[1] = (size_t)cols;
    } else {
        gws[0] = (size_t)((n0 + cols + 31) / 32 - n0 / 32);
        gws[1] = (size_t)k;
    }
    const size_t lws[2] = {gws[0] < 8 ? gws[0] : 8, 1};
    return ocl_launch(&ar, 2, gws, lws);
}

/* Few output columns (n <= OCL_GEMM_SMALL_N), one product: a dot-product form or the product
 * computed transposed, so the vector kernels run on full vectors instead of edge paths. */
#define OCL_GEMM_SMALL_N 16
static lc_status run_direct_small_n(ocl_ctx *c, const char *what, int m, int n, int k, float alpha, const ocl_fop *a,
                                    const ocl_wop *b, float beta, const ocl_fop *cm) {
    lc_status st;
    if (!a->trans) { /* C[i][j] = dot(A row i, op(B) column j) with op(B) columns as rows [n][k] */
        if (b->dtype == LC_F32 && b->trans)
            return launch_direct(c, what, true, m, n, k, alpha, a, b->mem, b->off / 4, b->nb1 / 4, true, beta, cm, &g_single);
        cl_mem pan;
        if ((st = ocl_scratch(c, OCL_SCR_PACK, (size_t)n * (size_t)k * sizeof(float), &pan)) ||
            (st = pack_b(c, pan, (size_t)k, b, k, n, 0, n, true)))
            return st;
        return launch_direct(c, what, true, m, n, k, alpha, a, pan, 0, (uint64_t)k, true, beta, cm, &g_single);
    }
    /* Cᵀ[n][m] = op(B)ᵀ · Aᵀ, where Aᵀ is A as stored ([k][m], contiguous along m) */
    ocl_fop left;
    if (b->dtype == LC_F32) {
        left.mem = b->mem;
        left.off = b->off;
        left.ld = b->nb1 / 4;
        left.trans = !b->trans; /* left(j, kk) = op(B)[kk][j] */
    } else {
        cl_mem pan;
        if ((st = ocl_scratch(c, OCL_SCR_PACK, (size_t)n * (size_t)k * sizeof(float), &pan)) ||
            (st = pack_b(c, pan, (size_t)k, b, k, n, 0, n, true)))
            return st;
        left.mem = pan;
        left.off = 0;
        left.ld = (size_t)k;
        left.trans = false;
    }
    cl_mem tmp;
    if ((st = ocl_scratch(c, OCL_SCR_TMP, (size_t)n * (size_t)m * sizeof(float), &tmp)) != LC_OK) return st;
    const ocl_fop ct = {tmp, 0, (size_t)m, false};
    if ((st = launch_direct(c, what, false, n, m, k, 1.0f, &left, a->mem, a->off / 4, a->ld, false, 0.0f, &ct, &g_single)))
        return st;
    ocl_args ar = {c, -1, c->gemm_tacc, "gemm_cpu_tacc", 0, CL_SUCCESS, 0};
    oa_mem(&ar, cm->mem);
    oa_u64(&ar, cm->off / 4);
    oa_u64(&ar, cm->ld);
    oa_mem(&ar, tmp);
    oa_u64(&ar, (uint64_t)m);
    oa_i32(&ar, m);
    oa_i32(&ar, n);
    oa_f32(&ar, alpha);
    oa_f32(&ar, beta);
    const size_t lws[2] = {(size_t)(n < 16 ? n : 16), 1}, gws[2] = {(size_t)n, (size_t)m};
    return ocl_launch(&ar, 2, gws, lws);
}

/* Products on a CPU device: F32 B straight from memory, anything else through F32 panels. */
static lc_status run_direct(ocl_ctx *c, const char *what, int m, int n, int k, float alpha, const ocl_fop *a,
                            const ocl_wop *b, float beta, const ocl_fop *cm, const ocl_batch *batch) {
    const ocl_batch *bt = batch ? batch : &g_single;
    if (b->dtype == LC_F32 && (b->off % 4 || b->nb1 % 4 || bt->sb[0] % 4 || bt->sb[1] % 4))
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: F32 weight operand is not 4-byte aligned", what);
    if (bt->nz <= 1 && n <= OCL_GEMM_SMALL_N && m > n && k >= 16)
        return run_direct_small_n(c, what, m, n, k, alpha, a, b, beta, cm);
    if (b->dtype == LC_F32 && !b->trans)
        return launch_direct(c, what, false, m, n, k, alpha, a, b->mem, b->off / 4, b->nb1 / 4, false, beta, cm, bt);
    /* a batched Bᵀ (attention) goes to the dot-product kernel; a single one is packed below:
     * transposing B into a panel costs O(KN) and lets the faster broadcast kernel run */
    if (b->dtype == LC_F32 && !a->trans && bt->nz > 1)
        return launch_direct(c, what, true, m, n, k, alpha, a, b->mem, b->off / 4, b->nb1 / 4, true, beta, cm, bt);
    if (batch && batch->nz > 1)
        return lc_error(LC_ERR_UNSUPPORTED, "opencl %s: batched products need an F32 B that is not transposed with A", what);
    /* panels of np columns of op(B), decoded to F32 [K][ldp] */
    const int vec = c->ccfg.vw * c->ccfg.nv;
    int64_t np = ((int64_t)1 << 22) / (k > 0 ? k : 1);
    np = np / vec * vec;
    if (np < vec) np = vec;
    if (np > n) np = (n + vec - 1) / vec * vec;
    const size_t ldp = (size_t)np;
    cl_mem pan;
    lc_status st = ocl_scratch(c, OCL_SCR_PACK, ldp * (size_t)(k > 0 ? k : 1) * sizeof(float), &pan);
    if (st != LC_OK) return st;
    for (int64_t n0 = 0; n0 < n; n0 += np) {
        const int cols = (int)(n - n0 < np ? n - n0 : np);
        if ((st = pack_b(c, pan, ldp, b, k, n, n0, cols, false)) != LC_OK) return st;
        ocl_fop cpart = *cm;
        cpart.off += (size_t)n0 * 4;
        if ((st = launch_direct(c, what, false, m, cols, k, alpha, a, pan, 0, ldp, false, beta, &cpart, bt)) != LC_OK)
            return st;
    }
    return LC_OK;
}

static lc_status run_own(ocl_ctx *c, const char *what, int m, int n, int k, float alpha, const ocl_fop *a,
                         const ocl_wop *b, float beta, const ocl_fop *cm, const ocl_batch *batch) {
    if (c->gemm_direct) return run_direct(c, what, m, n, k, alpha, a, b, beta, cm, batch);
    const int slot = ocl_wslot_of(b->dtype);
    if (slot < 0) return lc_error(LC_ERR_DTYPE, "opencl %s: no product kernel for weight dtype %s", what, lc_dtype_name(b->dtype));
    const ocl_batch *bt = batch ? batch : &g_single;
    ocl_args ar = {c, -1, c->gemm[slot], "gemm", 0, CL_SUCCESS, 0};
    char kname[48];
    snprintf(kname, sizeof kname, "gemm_%s for %s", lc_dtype_name(b->dtype), what);
    ar.name = kname;
    oa_i32(&ar, m);
    oa_i32(&ar, n);
    oa_i32(&ar, k);
    oa_f32(&ar, alpha);
    oa_f32(&ar, beta);
    oa_mem(&ar, a->mem);
    oa_u64(&ar, a->off / 4);
    oa_u64(&ar, a->ld);
    oa_u64(&ar, bt->sa[0]);
    oa_u64(&ar, bt->sa[1]);
    set_int4(&ar, bt->mapa, a->trans);
    oa_mem(&ar, b->mem);
    oa_u64(&ar, b->off);
    oa_u64(&ar, b->nb1);
    oa_u64(&ar, bt->sb[0]);
    oa_u64(&ar, bt->sb[1]);
    set_int4(&ar, bt->mapb, b->trans);
    oa_mem(&ar, cm->mem);
    oa_u64(&ar, cm->off / 4);
    oa_u64(&ar, cm->ld);
    oa_u64(&ar, bt->sc[0]);
    oa_u64(&ar, bt->sc[1]);
    set_int4(&ar, bt->mapc, 0);
    oa_i32(&ar, bt->nz1);
    const ocl_gemm_cfg *g = &c->gcfg;
    const size_t lws[3] = {(size_t)(g->tn / g->rn), (size_t)(g->tm / g->rm), 1};
    const size_t gws[3] = {(size_t)((n + g->tn - 1) / g->tn) * lws[0], (size_t)((m + g->tm - 1) / g->tm) * lws[1],
                           (size_t)bt->nz};
    return ocl_launch(&ar, 3, gws, lws);
}

static lc_status zero_c(ocl_ctx *c, const ocl_fop *cm, int m, int n) {
    ocl_args ar;
    oa_begin(&ar, c, OCL_K_fill_2d_f32);
    oa_mem(&ar, cm->mem);
    oa_u64(&ar, cm->off);
    oa_u64(&ar, cm->ld);
    oa_u32(&ar, (uint32_t)n);
    oa_u32(&ar, (uint32_t)m);
    oa_f32(&ar, 0.0f);
    size_t lw = c->kwg[OCL_K_fill_2d_f32] >= 64 ? 64 : c->kwg[OCL_K_fill_2d_f32];
    const size_t lws[2] = {lw, 1}, gws[2] = {(size_t)n, (size_t)m};
    return ocl_launch(&ar, 2, gws, lws);
}

static lc_status run_clblast(ocl_ctx *c, const char *what, int m, int n, int k, float alpha, const ocl_fop *a,
                             const ocl_wop *b, float beta, const ocl_fop *cm) {
    if (beta == 0.0f) {
        lc_status st = zero_c(c, cm, m, n);
        if (st != LC_OK) return st;
    }
    cl_command_queue q = c->queue;
    CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor, a->trans ? CLBlastTransposeYes : CLBlastTransposeNo,
                                       b->trans ? CLBlastTransposeYes : CLBlastTransposeNo, (size_t)m, (size_t)n, (size_t)k,
                                       alpha, a->mem, a->off / 4, a->ld, b->mem, b->off / 4, b->nb1 / 4, beta, cm->mem,
                                       cm->off / 4, cm->ld, &q, NULL);
    if (s != CLBlastSuccess)
        return lc_error(s == CLBlastTempBufferAllocFailure || s == CLBlastOpenCLOutOfResources ? LC_ERR_DEVICE_NOMEM
                                                                                               : LC_ERR_BACKEND,
                        "opencl CLBlastSgemm(%s, %c%c M=%d N=%d K=%d): %s (%d) on %s '%s'", what, a->trans ? 'T' : 'N',
                        b->trans ? 'T' : 'N', m, n, k, ocl_clblast_err_name((int)s), (int)s, c->spec, c->name);
    return LC_OK;
}

/* Seconds for one product by `engine` into a scratch C (best of two after a warm-up); < 0 when
 * the engine failed. */
static double time_engine(ocl_ctx *c, int engine, int m, int n, int k, const ocl_fop *a, const ocl_wop *b,
                          const ocl_fop *scr) {
    double best = -1.0;
    for (int rep = 0; rep < 3; rep++) {
        if (clFinish(c->queue) != CL_SUCCESS) return -1.0;
        double t0 = ocl_now();
        lc_status st = engine == 2 ? run_clblast(c, "timing", m, n, k, 1.0f, a, b, 0.0f, scr)
                                   : run_own(c, "timing", m, n, k, 1.0f, a, b, 0.0f, scr, NULL);
        if (st != LC_OK || clFinish(c->queue) != CL_SUCCESS) {
            lc_clear_error();
            return -1.0;
        }
        double t = ocl_now() - t0;
        if (rep > 0 && (best < 0 || t < best)) best = t;
    }
    return best;
}

static int choose_engine(ocl_ctx *c, bool ta, bool tb, int m, int n, int k, const ocl_fop *a, const ocl_wop *b) {
    if (c->gemm_force) return c->gemm_force;
    if ((double)m * (double)n * (double)k < (double)OCL_GEMM_TIME_MIN) return 1;
    const int cls = shape_class(ta, tb, m, n, k);
    if (c->gemm_choice[cls]) return c->gemm_choice[cls];
    cl_mem scr;
    if (ocl_scratch(c, OCL_SCR_GEMM, (size_t)m * (size_t)n * sizeof(float), &scr) != LC_OK) {
        lc_clear_error();
        return 1;
    }
    const ocl_fop sc = {scr, 0, (size_t)n, false};
    double t_own = time_engine(c, 1, m, n, k, a, b, &sc);
    double t_blast = time_engine(c, 2, m, n, k, a, b, &sc);
    int pick = (t_blast > 0 && (t_own < 0 || t_blast < t_own)) ? 2 : 1;
    c->gemm_choice[cls] = (signed char)pick;
    const double flop = 2.0 * (double)m * (double)n * (double)k;
    double gf_own = t_own > 0 ? flop / t_own * 1e-9 : 0.0, gf_blast = t_blast > 0 ? flop / t_blast * 1e-9 : 0.0;
    if (c->verbose)
        fprintf(stderr, "lorac opencl: %s: gemm class %d (%c%c %dx%dx%d): own %.1f GFLOP/s, CLBlast %.1f GFLOP/s -> %s\n",
                c->spec, cls, ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, gf_own, gf_blast, pick == 2 ? "CLBlast" : "own");
    save_choices(c, cls, gf_own, gf_blast);
    return pick;
}

lc_status ocl_gemm(ocl_ctx *c, const char *what, int m, int n, int k, float alpha, const ocl_fop *a, const ocl_wop *b,
                   float beta, const ocl_fop *cm, const ocl_batch *batch) {
    if (m <= 0 || n <= 0) return LC_OK;
    if (k <= 0) { /* C = beta C */
        if (beta == 0.0f) return zero_c(c, cm, m, n);
        if (beta == 1.0f) return LC_OK;
        k = 0;
    }
    if (a->off % 4 || cm->off % 4 || (b->dtype == LC_F32 && (b->off % 4 || b->nb1 % 4)))
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: F32 operands must start at multiples of 4 bytes", what);
    if (!batch && b->dtype == LC_F32 && k > 0) {
        int engine = choose_engine(c, a->trans, b->trans, m, n, k, a, b);
        if (engine == 2) return run_clblast(c, what, m, n, k, alpha, a, b, beta, cm);
    }
    return run_own(c, what, m, n, k, alpha, a, b, beta, cm, batch);
}

lc_status ocl_gemm_entry(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha, void *a, size_t off_a,
                         int lda, void *b, size_t off_b, int ldb, float beta, void *cbuf, size_t off_c, int ldc) {
    ocl_ctx *c = ctx;
    if (!c || !a || !b || !cbuf) return lc_error(LC_ERR_INVALID_ARG, "opencl gemm: NULL context or buffer");
    if (off_a % 4 || off_b % 4 || off_c % 4)
        return lc_error(LC_ERR_INVALID_ARG, "opencl gemm: byte offsets (%zu, %zu, %zu) must be multiples of 4", off_a, off_b,
                        off_c);
    if (m < 0 || n < 0 || k < 0 || lda < 1 || ldb < 1 || ldc < 1)
        return lc_error(LC_ERR_INVALID_ARG, "opencl gemm: bad sizes m=%d n=%d k=%d lda=%d ldb=%d ldc=%d", m, n, k, lda, ldb, ldc);
    const ocl_fop A = {(cl_mem)a, off_a, (size_t)lda, trans_a};
    const ocl_wop B = {(cl_mem)b, off_b, (size_t)ldb * 4, LC_F32, trans_b};
    const ocl_fop C = {(cl_mem)cbuf, off_c, (size_t)ldc, false};
    return ocl_gemm(c, "gemm", m, n, k, alpha, &A, &B, beta, &C, NULL);
}
