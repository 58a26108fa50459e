/* lorac Vulkan backend — matrix products C = alpha · A · Bᵀ + beta · C.
 *
 * Both operands are described logically as row-major [rows][k] matrices (vk_operand): stored as
 * is or transposed, F32 or any weight dtype (quantized blocks run along the storage rows), with
 * optional LoRA dropout. Every product op (mul_mat, lora and their backward, lora_merge, the
 * row-major `gemm` entry) is expressed in that form.
 *
 * Kernels (shaders/gemm_pack.comp, gemm_nt.glsl, gemm_tiled.comp):
 *  - The kernels read each operand as vec4 in either orientation: k-contiguous (stored as is) or
 *    k-major (stored transposed), so no operand is ever transposed. An F32 operand without
 *    dropout whose rows are 16-byte aligned (and, k-contiguous, K % 4 == 0) is read in place; any
 *    other is first packed in its own orientation (dequantised, masked, rows padded to a multiple
 *    of 4 floats) into scratch: O((M + N)·K) next to the O(M·N·K) product. Block-quantised weights
 *    without dropout are packed by shaders/gemm_pack_q.comp (one invocation per 32 elements, a few
 *    word loads per block: ~4x faster on lavapipe than the per-element gemm_pack.comp, which was
 *    80% of a Gemma 3 training step); F32 with dropout, F16 and BF16 by gemm_pack.comp. (Packing
 *    with a transpose cost more than the product itself on lavapipe, where scattered stores are
 *    slow. Products that dequantised the weight in registers without the F32 copy (16x4 blocks;
 *    or one weight row x all 32 rows of A per invocation) ran at 0.5-0.8x the speed of pack +
 *    texel kernel on lavapipe at T = 32 and 128, so they were dropped.)
 *  - VK_GEMM_TEXEL: register-blocked kernel (TM x TN outputs per invocation, no shared memory)
 *    reading vec4 texels through uniform texel buffers. Measured fastest on lavapipe, where
 *    storage-buffer loads are bounds-checked per lane. VK_GEMM_SSBO: the same kernel through
 *    storage buffers (devices whose texel buffers are small). VK_GEMM_TILED: shared-memory tiles
 *    (BM x BN x BK, register blocks), the usual GPU kernel.
 *  - The choice and the tile sizes come from the device (vk_gemm_choose): CPU devices take
 *    TEXEL with 16x8 blocks; GPUs take TILED with tiles from specialisation constants. The
 *    environment variable LORAC_VULKAN_GEMM = texel | ssbo | tiled overrides it (tests run all).
 *  - Operands larger than one binding (maxStorageBufferRange, maxTexelBufferElements) or than the
 *    packing budget are split into chunks of rows of A (and C), rows of B (columns of C) and of
 *    k (later k-chunks accumulate into C with beta = 1). Chunks of k, and of rows that run across
 *    the blocks of a transposed quantized operand, are multiples of 256 so that quantized blocks
 *    never straddle a chunk edge; other row chunks are multiples of 4 (a 512 x 262144 logits C
 *    needs chunks of fewer than 128 rows). The loop over chunks packs the operand of the outer
 *    loop once per k chunk: N is outer when that repeats fewer packed elements.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define PACK_BUDGET ((VkDeviceSize)32 << 20) /* bytes per packed operand chunk (smaller, cache-sized
                                                chunks measured no faster on lavapipe: 1-4 MiB) */

typedef struct gemm_push {
    uint32_t M, N, K4, K, lda4, ldb4, a_off4, b_off4, c_off, ldc, c_dtype;
    float alpha, beta;
    uint32_t c_vec4;
} gemm_push;

typedef struct pack_push {
    uint32_t src_off, row_bytes, nrows, ncols, dst_off4, ldp4;
    float drop_p, drop_q;
    uint32_t seed_lo, seed_hi, stream_lo, stream_hi, drop_cols, r_base, c_base;
} pack_push;

void vk_gemm_choose(vk_ctx *c) {
    c->gemm_kind = c->is_cpu ? VK_GEMM_TEXEL : VK_GEMM_TILED;
    /* register-blocked kernel (CPU devices): 16 x 8 outputs per invocation, 8 invocations per
     * group (one AVX2 SIMD row on lavapipe). Measured on lavapipe, 1024^3 F32, GFLOP per CPU
     * second: 16x8 28, 16x4 23, 8x8 22, 32x4 27, 16x16 20; workgroups of 16 or 32: no better. */
    c->gemm_tm = 16;
    c->gemm_tn = 8;
    c->gemm_wg = 8;
    /* shared-memory kernel (GPUs): 16 x 16 invocations of 4 x 4 outputs (64 x 64 tiles, 8 KiB of
     * shared memory), 8 x 8 where a device allows fewer than 256 invocations per group */
    c->tile_wg = c->props.limits.maxComputeWorkGroupInvocations >= 256 ? 16 : 8;
    const char *env = getenv("LORAC_VULKAN_GEMM");
    if (env && strcmp(env, "texel") == 0) c->gemm_kind = VK_GEMM_TEXEL;
    else if (env && strcmp(env, "ssbo") == 0) c->gemm_kind = VK_GEMM_SSBO;
    else if (env && strcmp(env, "tiled") == 0) c->gemm_kind = VK_GEMM_TILED;
    /* LORAC_VULKAN_GEMM_BLOCK=TMxTNxWG overrides the register block (TM, TN multiples of 4) */
    const char *blk = getenv("LORAC_VULKAN_GEMM_BLOCK");
    int tm, tn, wg;
    if (blk && sscanf(blk, "%dx%dx%d", &tm, &tn, &wg) == 3 && tm >= 4 && tm <= 64 && tm % 4 == 0 && tn >= 4 && tn <= 64 &&
        tn % 4 == 0 && wg >= 1 && (uint32_t)wg <= c->props.limits.maxComputeWorkGroupInvocations) {
        c->gemm_tm = tm;
        c->gemm_tn = tn;
        c->gemm_wg = wg;
    }
    if (c->gemm_kind == VK_GEMM_TEXEL && c->max_texels < (1u << 20)) c->gemm_kind = VK_GEMM_SSBO;
}

static VkDeviceSize round_up(VkDeviceSize x, VkDeviceSize a) { return (x + a - 1) / a * a; }

/* Element bytes of a dtype seen as rows (blocks): bytes of `cols` elements. */
static VkDeviceSize row_span_bytes(int dtype, uint64_t cols) {
    uint32_t be = 1, bb = 4;
    vk_dtype_block(dtype, &be, &bb);
    return (VkDeviceSize)((cols + be - 1) / be) * bb;
}

/* Bytes between storage rows. */
static VkDeviceSize row_stride(const vk_operand *o) {
    return o->dtype == LC_F32 ? (VkDeviceSize)o->ld * 4 : (VkDeviceSize)o->ld;
}

/* Bytes a sub-block (rows r0.., count nr; k0.., count nk) of operand o spans in storage, and its
 * start offset. Storage rows are logical rows unless trans. */
static void sub_span(const vk_operand *o, uint64_t r0, uint64_t nr, uint64_t k0, uint64_t nk, VkDeviceSize *off,
                     VkDeviceSize *span) {
    uint64_t sr0 = o->trans ? k0 : r0, nsr = o->trans ? nk : nr;
    uint64_t sc0 = o->trans ? r0 : k0, nsc = o->trans ? nr : nk;
    VkDeviceSize rs = row_stride(o);
    *off = o->off + sr0 * rs + row_span_bytes(o->dtype, sc0);
    *span = (nsr - 1) * rs + row_span_bytes(o->dtype, nsc);
}

/* Read in place: F32, no dropout, rows 16-byte aligned; a k-contiguous operand needs K % 4 == 0. */
static bool direct_ok(const vk_operand *o, uint64_t k) {
    return o->dtype == LC_F32 && !(o->drop_p > 0.0f) && o->ld % 4 == 0 && o->off % 16 == 0 && (o->trans || k % 4 == 0);
}

/* Bind an F32 vec4-readable range for the product kernel: a texel view or a storage buffer. */
static lc_status bind_vec4(vk_ctx *c, bool texel, vk_buf *buf, VkDeviceSize off, VkDeviceSize span, vk_bind *b,
                           uint32_t *off4, const char *op) {
    if (!texel) {
        uint32_t e = 0;
        /* whole vec4s: the last one of a k-major row may reach past the operand's last column */
        VkDeviceSize end = round_up(off + span, 16);
        if (end <= buf->size) span = end - off;
        lc_status st = vk_bind_range(c, buf, off, span, false, op, b, &e, 16);
        *off4 = e;
        return st;
    }
    VkDeviceSize base = off / c->texel_align * c->texel_align;
    VkDeviceSize range = round_up(off + span - base, 16);
    if (base + range > buf->size) range = (buf->size - base) / 16 * 16;
    if (range / 16 > c->max_texels)
        return lc_error(LC_ERR_UNSUPPORTED, "vulkan %s on %s: %llu texels exceed maxTexelBufferElements %u", op, c->label,
                        (unsigned long long)(range / 16), c->max_texels);
    b->buf = buf;
    b->off = base;
    b->range = range;
    b->hz_off = base;
    b->hz_size = range;
    b->write = false;
    *off4 = (uint32_t)((off - base) / 16);
    return LC_OK;
}

/* Pack rows [r0, r0+nr) x k [k0, k0+nk) of o into scratch in o's orientation: k-contiguous
 * [nr][ld] (ld = nk rounded up to 4) or, for a transposed operand, k-major [nk][ld] (ld = nr
 * rounded up to 4). Returns the scratch range and ld (floats). */
static lc_status pack(vk_ctx *c, const vk_operand *o, uint64_t r0, uint64_t nr, uint64_t k0, uint64_t nk,
                      vk_buf **pbuf, VkDeviceSize *poff, uint32_t *ld_out, const char *op) {
    VkDeviceSize off, span;
    sub_span(o, r0, nr, k0, nk, &off, &span);
    const uint64_t nrows = o->trans ? nk : nr, ncols = o->trans ? nr : nk;
    const uint32_t ldp = (uint32_t)round_up(ncols, 4);
    VkDeviceSize bytes = (VkDeviceSize)nrows * ldp * 4;
    lc_status st = vk_scratch(c, bytes, pbuf, poff);
    if (st != LC_OK) return st;
    vk_bind binds[2];
    uint32_t src_elem = 0, dst_elem = 0;
    if ((st = vk_bind_range(c, o->buf, off, span, false, op, &binds[0], &src_elem, 1)) != LC_OK) return st;
    if ((st = vk_bind_range(c, *pbuf, *poff, bytes, true, op, &binds[1], &dst_elem, 16)) != LC_OK) return st;
    *ld_out = ldp;
    uint32_t be = 1, bb = 4;
    if (vk_dtype_block(o->dtype, &be, &bb) && be >= 32 && !(o->drop_p > 0.0f) && ncols % 32 == 0) {
        /* block-quantised weight: one invocation per group of 32 (shaders/gemm_pack_q.comp) */
        struct { uint32_t src_off, row_bytes, nrows, ngroups, dst_off4, ldp4, last_word; } qp = {
            .src_off = src_elem, .row_bytes = (uint32_t)row_stride(o), .nrows = (uint32_t)nrows,
            .ngroups = (uint32_t)(ncols / 32), .dst_off4 = dst_elem, .ldp4 = ldp / 4,
            .last_word = (uint32_t)((binds[0].range - 1) / 4)};
        vk_spec sq = {1, {(uint32_t)o->dtype}};
        return vk_dispatch(c, VK_PIPE_GEMM_PACK_Q, &sq, binds, 2, &qp, sizeof qp,
                           vk_groups(c, (uint64_t)nrows * (ncols / 32), 64), 1, 1);
    }
    pack_push pc = {
        .src_off = src_elem,
        .row_bytes = (uint32_t)row_stride(o),
        .nrows = (uint32_t)nrows,
        .ncols = (uint32_t)ncols,
        .dst_off4 = dst_elem,
        .ldp4 = ldp / 4,
        .drop_p = o->drop_p > 0.0f ? o->drop_p : 0.0f,
        .drop_q = 1.0f - o->drop_p,
        .seed_lo = (uint32_t)o->drop_seed,
        .seed_hi = (uint32_t)(o->drop_seed >> 32),
        .stream_lo = (uint32_t)o->drop_stream,
        .stream_hi = (uint32_t)(o->drop_stream >> 32),
        .drop_cols = o->drop_cols,
        .r_base = (uint32_t)(o->trans ? k0 : r0),
        .c_base = (uint32_t)(o->trans ? r0 : k0),
    };
    vk_spec sp = {2, {(uint32_t)o->dtype, o->drop_p > 0.0f ? 1u : 0u}};
    uint32_t gx = (ldp / 4 + 63) / 64, gy = (uint32_t)((nrows + 3) / 4), cap = c->is_cpu ? 64 : 65535;
    *ld_out = ldp;
    return vk_dispatch(c, VK_PIPE_GEMM_PACK, &sp, binds, 2, &pc, sizeof pc, gx < cap ? gx : cap, gy < cap ? gy : cap, 1);
}

/* Rows [r0, r0+nr) x k [k0, k0+nk) of operand o as the product kernels read it: packed into
 * scratch when `packed`, else the range of o itself. Returns buffer, byte offset, span and ld
 * (floats). */
static lc_status operand_chunk(vk_ctx *c, bool packed, const vk_operand *o, uint64_t r0, uint64_t nr, uint64_t k0,
                               uint64_t nk, vk_buf **buf, VkDeviceSize *off, VkDeviceSize *span, uint32_t *ld,
                               const char *op) {
    if (packed) {
        lc_status st = pack(c, o, r0, nr, k0, nk, buf, off, ld, op);
        *span = (VkDeviceSize)(o->trans ? nk : nr) * *ld * 4;
        return st;
    }
    sub_span(o, r0, nr, k0, nk, off, span);
    *buf = o->buf;
    *ld = o->ld;
    return LC_OK;
}

/* Largest chunk (a multiple of `gran`, or the whole `total`) for which fits(chunk) holds. */
typedef bool (*fits_fn)(const void *ctx, uint64_t chunk);
static uint64_t pick_chunk(uint64_t total, fits_fn fits, const void *ctx, uint64_t gran) {
    uint64_t ch = total;
    while (ch > gran && !fits(ctx, ch)) ch = round_up((ch + 1) / 2, gran);
    return ch;
}

/* Granularity of row chunks of an operand: 256 where its rows run across the quantized blocks of
 * a transposed storage (blocks never straddle a chunk edge), else 4. Rows of C are chunked with
 * those of A, and C rows can be long (262144 logits: 1 MiB each), so M chunks go below 256. */
static uint64_t row_gran(const vk_operand *o) { return o->trans && o->dtype != LC_F32 ? 256 : 4; }

typedef struct chunk_ctx {
    const vk_ctx *c;
    const vk_operand *a, *b;
    uint64_t M, N, K, kc;
    VkDeviceSize limit, pack_limit;
    uint32_t ldc, c_esize;
    bool pack_a, pack_b;
} chunk_ctx;

static bool k_fits(const void *p, uint64_t kc) {
    const chunk_ctx *x = p;
    VkDeviceSize off, span;
    if (round_up(kc, 4) / 4 > x->c->loop_cap / 4) return false; /* the k loop of the product kernel */
    if (x->pack_a && x->a->trans && kc * 4 * 4 > x->pack_limit) return false; /* >= 4 packed columns */
    if (x->pack_b && x->b->trans && kc * 4 * 4 > x->pack_limit) return false;
    if (x->a->trans) {
        sub_span(x->a, 0, 1, 0, kc, &off, &span);
        if (span > x->limit) return false;
    }
    if (x->b->trans) {
        sub_span(x->b, 0, 1, 0, kc, &off, &span);
        if (span > x->limit) return false;
    }
    if ((x->pack_a || x->pack_b) && 256 * round_up(kc, 4) * 4 > x->pack_limit) return false;
    return true;
}

static bool m_fits(const void *p, uint64_t mc) {
    const chunk_ctx *x = p;
    VkDeviceSize off, span;
    if (!x->a->trans) {
        sub_span(x->a, 0, mc, 0, x->kc, &off, &span);
        if (span > x->limit) return false;
    }
    if (x->pack_a && mc * round_up(x->kc, 4) * 4 > x->pack_limit) return false;
    if (((mc - 1) * x->ldc + x->N) * x->c_esize > x->limit) return false;
    return true;
}

static bool n_fits(const void *p, uint64_t nc) {
    const chunk_ctx *x = p;
    VkDeviceSize off, span;
    if (!x->b->trans) {
        sub_span(x->b, 0, nc, 0, x->kc, &off, &span);
        if (span > x->limit) return false;
    }
    if (x->pack_b && nc * round_up(x->kc, 4) * 4 > x->pack_limit) return false;
    return true;
}

lc_status vk_gemm_record(vk_ctx *c, int m, int n, int k, float alpha, const vk_operand *a, const vk_operand *b,
                         float beta, vk_buf *cbuf, VkDeviceSize c_off, uint32_t ldc, int c_dtype, const char *op) {
    if (m <= 0 || n <= 0) return LC_OK;
    uint32_t c_esize = c_dtype == LC_F32 ? 4 : 2;
    lc_status st;
    if (k <= 0) {
        /* C = beta * C: a product with a zero operand is not worth a kernel; only beta = 0 and 1 occur */
        if (beta == 1.0f) return LC_OK;
        if (beta != 0.0f) return lc_error(LC_ERR_UNSUPPORTED, "vulkan %s: k = 0 with beta = %g", op, (double)beta);
        for (int i = 0; i < m; i++)
            if ((st = vk_clear(c, cbuf, (size_t)(c_off + (VkDeviceSize)i * ldc * c_esize), (size_t)n * c_esize)) != LC_OK)
                return st;
        return LC_OK;
    }
    bool texel = c->gemm_kind == VK_GEMM_TEXEL;
    chunk_ctx x = {
        .c = c, .a = a, .b = b, .M = (uint64_t)m, .N = (uint64_t)n, .K = (uint64_t)k, .ldc = ldc, .c_esize = c_esize,
    };
    x.limit = c->max_binding;
    if (texel && (VkDeviceSize)c->max_texels * 16 < x.limit) x.limit = (VkDeviceSize)c->max_texels * 16;
    x.limit -= x.limit > 1024 ? 1024 : 0; /* room for alignment of binding starts */
    x.pack_limit = PACK_BUDGET < x.limit ? PACK_BUDGET : x.limit;
    x.pack_a = !direct_ok(a, (uint64_t)k);
    x.pack_b = !direct_ok(b, (uint64_t)k);
    x.kc = x.K;
    x.kc = pick_chunk(x.K, k_fits, &x, 256);
    uint64_t mc = pick_chunk(x.M, m_fits, &x, row_gran(a));
    uint64_t nc = pick_chunk(x.N, n_fits, &x, row_gran(b));
    if (!k_fits(&x, x.kc) || !m_fits(&x, mc) || !n_fits(&x, nc))
        return lc_error(LC_ERR_UNSUPPORTED, "vulkan %s on %s: a %d x %d x %d product does not fit the device's binding "
                        "limit (%llu bytes) even in chunks", op, c->label, m, n, k, (unsigned long long)x.limit);
    if (x.kc < x.K) { /* chunks of k must keep k-contiguous direct operands vec4-aligned */
        x.pack_a = x.pack_a || (!a->trans && x.kc % 4 != 0);
        x.pack_b = x.pack_b || (!b->trans && x.kc % 4 != 0);
    }

    vk_pipe_id pipe = c->gemm_kind == VK_GEMM_TEXEL ? VK_PIPE_GEMM_NT_TEXEL
                      : c->gemm_kind == VK_GEMM_SSBO ? VK_PIPE_GEMM_NT_SSBO
                                                     : VK_PIPE_GEMM_TILED;
    /* Loop order: the operand packed in the outer loop is packed once per k chunk, the inner one
     * once per outer chunk. N outer when that repeats fewer packed elements (a 262144-row
     * quantized embedding against 512 tokens in row chunks of C: pack it once, not per M chunk). */
    const uint64_t m_chunks = (x.M + mc - 1) / mc, n_chunks = (x.N + nc - 1) / nc;
    const bool n_outer = x.pack_b && m_chunks > 1 && (!x.pack_a || (m_chunks - 1) * x.N > (n_chunks - 1) * x.M);
    const uint64_t outer_total = n_outer ? x.N : x.M, outer_step = n_outer ? nc : mc;
    const uint64_t inner_total = n_outer ? x.M : x.N, inner_step = n_outer ? mc : nc;
    for (uint64_t k0 = 0; k0 < x.K; k0 += x.kc) {
        uint64_t nk = x.K - k0 < x.kc ? x.K - k0 : x.kc;
        float beta_k = k0 == 0 ? beta : 1.0f;
        for (uint64_t o0 = 0; o0 < outer_total; o0 += outer_step) {
            const uint64_t no = outer_total - o0 < outer_step ? outer_total - o0 : outer_step;
            VkDeviceSize save_scratch = c->scratch_used;
            vk_buf *obuf;
            VkDeviceSize ooff, ospan;
            uint32_t old;
            if ((st = operand_chunk(c, n_outer ? x.pack_b : x.pack_a, n_outer ? b : a, o0, no, k0, nk, &obuf, &ooff,
                                    &ospan, &old, op)) != LC_OK)
                return st;
            for (uint64_t i0 = 0; i0 < inner_total; i0 += inner_step) {
                const uint64_t ni = inner_total - i0 < inner_step ? inner_total - i0 : inner_step;
                VkDeviceSize save_b = c->scratch_used;
                vk_buf *ibuf;
                VkDeviceSize ioff, ispan;
                uint32_t ild;
                const uint64_t m0 = n_outer ? i0 : o0, nm = n_outer ? ni : no;
                const uint64_t n0 = n_outer ? o0 : i0, nn = n_outer ? no : ni;
                if ((st = operand_chunk(c, n_outer ? x.pack_a : x.pack_b, n_outer ? a : b, i0, ni, k0, nk, &ibuf, &ioff,
                                        &ispan, &ild, op)) != LC_OK)
                    return st;
                vk_buf *abuf = n_outer ? ibuf : obuf, *bbuf = n_outer ? obuf : ibuf;
                const VkDeviceSize aoff = n_outer ? ioff : ooff, aspan = n_outer ? ispan : ospan;
                const VkDeviceSize boff = n_outer ? ooff : ioff, bspan = n_outer ? ospan : ispan;
                const uint32_t lda = n_outer ? ild : old, ldb = n_outer ? old : ild;
                vk_bind binds[3];
                gemm_push pc = {.M = (uint32_t)nm, .N = (uint32_t)nn, .K4 = (uint32_t)((nk + 3) / 4), .K = (uint32_t)nk,
                                .lda4 = lda / 4, .ldb4 = ldb / 4, .ldc = ldc, .c_dtype = (uint32_t)c_dtype,
                                .alpha = alpha, .beta = beta_k};
                const bool tex = pipe == VK_PIPE_GEMM_NT_TEXEL;
                if ((st = bind_vec4(c, tex, abuf, aoff, aspan, &binds[0], &pc.a_off4, op)) != LC_OK ||
                    (st = bind_vec4(c, tex, bbuf, boff, bspan, &binds[1], &pc.b_off4, op)) != LC_OK)
                    return st;
                VkDeviceSize coff = c_off + (m0 * ldc + n0) * c_esize;
                VkDeviceSize cspan = ((nm - 1) * ldc + nn) * c_esize;
                if ((st = vk_bind_range(c, cbuf, coff, cspan, true, op, &binds[2], &pc.c_off, c_esize)) != LC_OK) return st;
                pc.c_vec4 = c_dtype == LC_F32 && ldc % 4 == 0 && pc.c_off % 4 == 0;
                if (c_esize == 2 && (coff - binds[2].off) % 2 != 0)
                    return lc_error(LC_ERR_INVALID_ARG, "vulkan %s: half-precision C at an odd byte offset", op);
                const uint32_t akm = a->trans ? 1u : 0u, bkm = b->trans ? 1u : 0u;
                if (pipe == VK_PIPE_GEMM_TILED) {
                    const uint32_t wx = (uint32_t)c->tile_wg, wy = (uint32_t)c->tile_wg, tm = 4, tn = 4;
                    vk_spec sp = {6, {wx, wy, tm, tn, akm, bkm}};
                    if ((st = vk_dispatch(c, pipe, &sp, binds, 3, &pc, sizeof pc, (uint32_t)((nn + wx * tn - 1) / (wx * tn)),
                                          (uint32_t)((nm + wy * tm - 1) / (wy * tm)), 1)) != LC_OK)
                        return st;
                } else {
                    uint32_t tm = (uint32_t)c->gemm_tm, tn = (uint32_t)c->gemm_tn, wx = (uint32_t)c->gemm_wg, wy = 1;
                    vk_spec sp = {6, {wx, wy, tm, tn, akm, bkm}};
                    uint32_t gx = (uint32_t)((nn + (uint64_t)tn * wx - 1) / ((uint64_t)tn * wx));
                    uint32_t gy = (uint32_t)((nm + (uint64_t)tm * wy - 1) / ((uint64_t)tm * wy));
                    if ((st = vk_dispatch(c, pipe, &sp, binds, 3, &pc, sizeof pc, gx, gy, 1)) != LC_OK) return st;
                }
                c->scratch_used = save_b;
            }
            c->scratch_used = save_scratch;
        }
    }
    return LC_OK;
}
