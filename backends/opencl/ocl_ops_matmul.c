/* lorac OpenCL backend — matrix-product ops: mul_mat, lora (base + low-rank path), their
 * backward kernels, and lora_merge. Semantics and parameter slots: lorac/graph.h; LoRA math:
 * reference/peft-lora.md §1.2 (dropout on the LoRA input only) and §1.7 (merge); reference
 * behaviour: backends/cpu/ops_matmul.c.
 *
 * A lorac tensor with ne = {cols, rows} is the row-major matrix [rows][cols] with row stride
 * nb1, so every product is one ocl_gemm call (ocl_gemm.c): weights of any dtype are decoded
 * inside the product kernel, F32 products may run on CLBlast. The dropout mask is regenerated
 * from (seed, lc_rng_dropout_stream(rng_step, module id), t*in + i) by the kernels of
 * kernels/misc.cl, so the backward pass draws exactly the forward's mask without storing it.
 */
#include "ocl_internal.h"

static lc_status check_dims(const lc_node *node, const char *what, const ocl_mat *v, int64_t cols, int64_t rows) {
    if (v->cols != cols || v->rows != rows)
        return lc_error(LC_ERR_SHAPE, "opencl %s: %s is [%lld, %lld] (ne order), expected [%lld, %lld]", lc_op_name(node->op),
                        what, (long long)v->cols, (long long)v->rows, (long long)cols, (long long)rows);
    return LC_OK;
}

/* F32 matrix operand (optionally transposed) of a view. */
static ocl_fop fop(const ocl_mat *v, bool trans) {
    ocl_fop o = {v->mem, v->off, v->nb1 / 4, trans};
    return o;
}

/* Weight operand of a view. */
static ocl_wop wop(const ocl_mat *v, bool trans) {
    ocl_wop o = {v->mem, v->off, v->nb1, v->dtype, trans};
    return o;
}

/* Packed F32 scratch matrix [rows][cols]. */
static ocl_fop sop(cl_mem m, int64_t cols, bool trans) {
    ocl_fop o = {m, 0, (size_t)cols, trans};
    return o;
}

static ocl_wop swop(cl_mem m, int64_t cols, bool trans) {
    ocl_wop o = {m, 0, (size_t)cols * 4, LC_F32, trans};
    return o;
}

static ocl_wop fwop(const ocl_mat *v, bool trans) { return wop(v, trans); }

/* ---- mul_mat ------------------------------------------------------------------------------ */

/* MUL_MAT: src0 x F32 [K, M], src1 w [K, N] (any weight dtype) -> dst0 y F32 [N, M],
 * y[n,m] = sum_k x[k,m] w[k,n]: y[M][N] = x[M][K] · w[N][K]ᵀ.
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_STATE, backend errors. */
lc_status ocl_op_mul_mat(ocl_ctx *c, const lc_node *node) {
    ocl_mat x, w, y;
    lc_status st;
    if ((st = ocl_view(node, node->src[0], "x (src0)", true, &x)) || (st = ocl_view(node, node->src[1], "w (src1)", false, &w)) ||
        (st = ocl_view(node, node->dst[0], "y (dst0)", true, &y)))
        return st;
    if ((st = check_dims(node, "w (src1)", &w, x.cols, w.rows)) || (st = check_dims(node, "y (dst0)", &y, w.rows, x.rows)))
        return st;
    const ocl_fop A = fop(&x, false), C = fop(&y, false);
    const ocl_wop B = wop(&w, true);
    return ocl_gemm(c, "mul_mat", (int)x.rows, (int)w.rows, (int)x.cols, 1.0f, &A, &B, 0.0f, &C, NULL);
}

/* dw[N][K] (+)= dy[M][N]ᵀ · x[M][K]. */
static lc_status grad_weight(ocl_ctx *c, const char *what, const ocl_mat *dy, const ocl_mat *x, const ocl_mat *dw, bool acc) {
    const ocl_fop A = fop(dy, true), C = fop(dw, false);
    const ocl_wop B = fwop(x, false);
    return ocl_gemm(c, what, (int)dy->cols, (int)x->cols, (int)x->rows, 1.0f, &A, &B, acc ? 1.0f : 0.0f, &C, NULL);
}

/* MUL_MAT_BACK: src0 x [K, M], src1 w [K, N], src6 dy [N, M] -> dst0 dx [K, M] (+)= dy·w,
 * dst1 dw [K, N] (+)= dyᵀ·x; either may be NULL. Errors as MUL_MAT. */
lc_status ocl_op_mul_mat_back(ocl_ctx *c, const lc_node *node) {
    ocl_mat x, w, dy, dx, dw;
    lc_status st;
    if ((st = ocl_view(node, node->src[0], "x (src0)", true, &x)) || (st = ocl_view(node, node->src[1], "w (src1)", false, &w)) ||
        (st = ocl_view(node, node->src[6], "dy (src6)", true, &dy)))
        return st;
    if ((st = check_dims(node, "w (src1)", &w, x.cols, w.rows)) || (st = check_dims(node, "dy (src6)", &dy, w.rows, x.rows)))
        return st;
    if (node->dst[0]) {
        if ((st = ocl_view(node, node->dst[0], "dx (dst0)", true, &dx)) || (st = check_dims(node, "dx (dst0)", &dx, x.cols, x.rows)))
            return st;
        /* dx[M][K] = dy[M][N] · w[N][K] */
        const ocl_fop A = fop(&dy, false), C = fop(&dx, false);
        const ocl_wop B = wop(&w, false);
        st = ocl_gemm(c, "mul_mat_back dx", (int)x.rows, (int)x.cols, (int)w.rows, 1.0f, &A, &B,
                      (node->accum & 1u) ? 1.0f : 0.0f, &C, NULL);
        if (st != LC_OK) return st;
    }
    if (node->dst[1]) {
        if ((st = ocl_view(node, node->dst[1], "dw (dst1)", true, &dw)) || (st = check_dims(node, "dw (dst1)", &dw, w.cols, w.rows)))
            return st;
        if ((st = grad_weight(c, "mul_mat_back dw", &dy, &x, &dw, (node->accum & 2u) != 0)) != LC_OK) return st;
    }
    return LC_OK;
}

/* ---- lora --------------------------------------------------------------------------------- */

typedef struct lora_view {
    ocl_mat x, w, a, b;
    int64_t in, t, out, r;
    float s, p;
    uint64_t seed, stream;
} lora_view;

static lc_status lora_inputs(const lc_node *node, lora_view *lv) {
    lc_status st;
    if ((st = ocl_view(node, node->src[0], "x (src0)", true, &lv->x)) ||
        (st = ocl_view(node, node->src[1], "w (src1)", false, &lv->w)) ||
        (st = ocl_view(node, node->src[2], "lora_A (src2)", true, &lv->a)) ||
        (st = ocl_view(node, node->src[3], "lora_B (src3)", true, &lv->b)))
        return st;
    lv->in = lv->x.cols;
    lv->t = lv->x.rows;
    lv->out = lv->w.rows;
    lv->r = lv->a.rows;
    if ((st = check_dims(node, "w (src1)", &lv->w, lv->in, lv->out)) ||
        (st = check_dims(node, "lora_A (src2)", &lv->a, lv->in, lv->r)) ||
        (st = check_dims(node, "lora_B (src3)", &lv->b, lv->r, lv->out)))
        return st;
    lv->s = node->fp[0];
    lv->p = node->fp[1];
    if (!(lv->p >= 0.0f && lv->p < 1.0f))
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: dropout p = %g (fp[1]) must lie in [0, 1)", lc_op_name(node->op),
                        (double)lv->p);
    if (node->ip[0] < 0 || node->ip[0] >= (1 << 24))
        return lc_error(LC_ERR_INVALID_ARG, "opencl %s: module id %d (ip[0]) must lie in [0, 2^24)", lc_op_name(node->op),
                        node->ip[0]);
    lv->seed = node->seed;
    lv->stream = (node->rng_step << 24) | (uint64_t)(uint32_t)node->ip[0]; /* lc_rng_dropout_stream */
    return LC_OK;
}

/* h [T][in] (scratch) = drop(x). */
static lc_status dropout_h(ocl_ctx *c, const lora_view *lv, cl_mem h) {
    ocl_args a;
    oa_begin(&a, c, OCL_K_lora_dropout);
    oa_mem(&a, h);
    oa_mem(&a, lv->x.mem);
    oa_u64(&a, lv->x.off);
    oa_u64(&a, lv->x.nb1 / 4);
    oa_u32(&a, (uint32_t)lv->in);
    oa_u32(&a, (uint32_t)lv->t);
    oa_u64(&a, lv->seed);
    oa_u64(&a, lv->stream);
    oa_f32(&a, lv->p);
    oa_f32(&a, 1.0f - lv->p);
    size_t l0 = c->kwg[OCL_K_lora_dropout] >= 16 ? 16 : c->kwg[OCL_K_lora_dropout];
    const size_t lws[2] = {l0, 1}, gws[2] = {(size_t)(lv->in + 15) / 16, (size_t)lv->t};
    return ocl_launch(&a, 2, gws, lws);
}

/* LORA: src0 x F32 [in, T], src1 w [in, out] (any weight dtype), src2 lora_A F32 [in, r],
 * src3 lora_B F32 [r, out] -> dst0 y F32 [out, T], dst1 u F32 [r, T] (may be NULL):
 * h = drop(x), u = h·Aᵀ, y = x·wᵀ + fp[0] u·Bᵀ (fp[0] scaling, fp[1] dropout p, ip[0] module id).
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_INVALID_ARG (p, module id), LC_ERR_STATE, backend errors. */
lc_status ocl_op_lora(ocl_ctx *c, const lc_node *node) {
    lora_view lv;
    ocl_mat y, u;
    lc_status st = lora_inputs(node, &lv);
    if (st != LC_OK) return st;
    if ((st = ocl_view(node, node->dst[0], "y (dst0)", true, &y)) || (st = check_dims(node, "y (dst0)", &y, lv.out, lv.t)))
        return st;
    ocl_fop U;
    if (node->dst[1]) {
        if ((st = ocl_view(node, node->dst[1], "u (dst1)", true, &u)) || (st = check_dims(node, "u (dst1)", &u, lv.r, lv.t)))
            return st;
        U = fop(&u, false);
    } else {
        cl_mem m;
        if ((st = ocl_scratch(c, OCL_SCR_U, (size_t)(lv.t * lv.r) * 4, &m)) != LC_OK) return st;
        U = sop(m, lv.r, false);
    }
    ocl_fop H = fop(&lv.x, false);
    if (lv.p > 0.0f) {
        cl_mem h;
        if ((st = ocl_scratch(c, OCL_SCR_H, (size_t)(lv.t * lv.in) * 4, &h)) || (st = dropout_h(c, &lv, h))) return st;
        H = sop(h, lv.in, false);
    }
    const int T = (int)lv.t, in = (int)lv.in, out = (int)lv.out, r = (int)lv.r;
    /* u[T][r] = h · A[r][in]ᵀ */
    const ocl_wop At = fwop(&lv.a, true);
    if ((st = ocl_gemm(c, "lora u", T, r, in, 1.0f, &H, &At, 0.0f, &U, NULL)) != LC_OK) return st;
    /* y[T][out] = x · wᵀ */
    const ocl_fop X = fop(&lv.x, false), Y = fop(&y, false);
    const ocl_wop Wt = wop(&lv.w, true);
    if ((st = ocl_gemm(c, "lora base", T, out, in, 1.0f, &X, &Wt, 0.0f, &Y, NULL)) != LC_OK) return st;
    /* y += s · u · B[out][r]ᵀ */
    const ocl_wop Bt = fwop(&lv.b, true);
    return ocl_gemm(c, "lora delta", T, out, r, lv.s, &U, &Bt, 1.0f, &Y, NULL);
}

/* LORA_BACK: src0..3 as LORA, src5 u [r, T] (recomputed when NULL), src6 dy [out, T] ->
 * dst0 dx [in, T], dst1 dw [in, out], dst2 dA [in, r], dst3 dB [r, out] (NULL: not needed;
 * accum bit i adds into dst[i]):
 *   dB = s dyᵀ·u, du = s dy·B, dA = duᵀ·drop(x), dw = dyᵀ·x, dx = dy·w + keep/(1-p) (du·A).
 * Errors as LORA. */
lc_status ocl_op_lora_back(ocl_ctx *c, const lc_node *node) {
    lora_view lv;
    ocl_mat dy, u, dx, dw, da, db;
    lc_status st = lora_inputs(node, &lv);
    if (st != LC_OK) return st;
    if ((st = ocl_view(node, node->src[6], "dy (src6)", true, &dy)) || (st = check_dims(node, "dy (src6)", &dy, lv.out, lv.t)))
        return st;
    const lc_tensor *tdx = node->dst[0], *tdw = node->dst[1], *tda = node->dst[2], *tdb = node->dst[3];
    if (tdx && ((st = ocl_view(node, tdx, "dx (dst0)", true, &dx)) || (st = check_dims(node, "dx (dst0)", &dx, lv.in, lv.t))))
        return st;
    if (tdw && ((st = ocl_view(node, tdw, "dw (dst1)", true, &dw)) || (st = check_dims(node, "dw (dst1)", &dw, lv.in, lv.out))))
        return st;
    if (tda && ((st = ocl_view(node, tda, "lora_A grad (dst2)", true, &da)) ||
                (st = check_dims(node, "lora_A grad (dst2)", &da, lv.in, lv.r))))
        return st;
    if (tdb && ((st = ocl_view(node, tdb, "lora_B grad (dst3)", true, &db)) ||
                (st = check_dims(node, "lora_B grad (dst3)", &db, lv.r, lv.out))))
        return st;
    const bool have_u = node->src[5] != NULL;
    if (have_u && ((st = ocl_view(node, node->src[5], "u (src5)", true, &u)) || (st = check_dims(node, "u (src5)", &u, lv.r, lv.t))))
        return st;
    const int T = (int)lv.t, in = (int)lv.in, out = (int)lv.out, r = (int)lv.r;
    const bool need_du = tdx || tda;
    const bool need_h = tda || (tdb && !have_u);
    const bool dropout = lv.p > 0.0f;
    const ocl_fop DY = fop(&dy, false), DYt = fop(&dy, true);
    ocl_fop H = fop(&lv.x, false);
    ocl_wop Hw = fwop(&lv.x, false);
    cl_mem h = NULL;
    if (dropout && (need_h || tdx)) {
        if ((st = ocl_scratch(c, OCL_SCR_H, (size_t)T * (size_t)in * 4, &h)) != LC_OK) return st;
        if (need_h) {
            if ((st = dropout_h(c, &lv, h)) != LC_OK) return st;
            H = sop(h, in, false);
            Hw = swop(h, in, false);
        }
    }
    if (tdb) {
        ocl_wop Uw;
        if (have_u) {
            Uw = fwop(&u, false);
        } else { /* u[T][r] = h · Aᵀ */
            cl_mem us;
            if ((st = ocl_scratch(c, OCL_SCR_U, (size_t)T * (size_t)r * 4, &us)) != LC_OK) return st;
            const ocl_fop US = sop(us, r, false);
            const ocl_wop At = fwop(&lv.a, true);
            if ((st = ocl_gemm(c, "lora_back u", T, r, in, 1.0f, &H, &At, 0.0f, &US, NULL)) != LC_OK) return st;
            Uw = swop(us, r, false);
        }
        /* dB[out][r] (+)= s · dy[T][out]ᵀ · u[T][r] */
        const ocl_fop DB = fop(&db, false);
        if ((st = ocl_gemm(c, "lora_back dB", out, r, T, lv.s, &DYt, &Uw, (node->accum & 8u) ? 1.0f : 0.0f, &DB, NULL)) != LC_OK)
            return st;
    }
    cl_mem dus = NULL;
    if (need_du) { /* du[T][r] = s · dy[T][out] · B[out][r] */
        if ((st = ocl_scratch(c, OCL_SCR_DU, (size_t)T * (size_t)r * 4, &dus)) != LC_OK) return st;
        const ocl_fop DU = sop(dus, r, false);
        const ocl_wop Bw = fwop(&lv.b, false);
        if ((st = ocl_gemm(c, "lora_back du", T, r, out, lv.s, &DY, &Bw, 0.0f, &DU, NULL)) != LC_OK) return st;
    }
    if (tda) { /* dA[r][in] (+)= du[T][r]ᵀ · h[T][in] */
        const ocl_fop DUt = sop(dus, r, true), DA = fop(&da, false);
        if ((st = ocl_gemm(c, "lora_back dA", r, in, T, 1.0f, &DUt, &Hw, (node->accum & 4u) ? 1.0f : 0.0f, &DA, NULL)) != LC_OK)
            return st;
    }
    if (tdw && (st = grad_weight(c, "lora_back dw", &dy, &lv.x, &dw, (node->accum & 2u) != 0)) != LC_OK) return st;
    if (tdx) {
        /* dx[T][in] (+)= dy[T][out] · w[out][in] */
        const ocl_fop DX = fop(&dx, false);
        const ocl_wop W = wop(&lv.w, false);
        if ((st = ocl_gemm(c, "lora_back dx", T, in, out, 1.0f, &DY, &W, (node->accum & 1u) ? 1.0f : 0.0f, &DX, NULL)) != LC_OK)
            return st;
        const ocl_fop DU = sop(dus, r, false);
        const ocl_wop Aw = fwop(&lv.a, false);
        if (!dropout) /* dx += du[T][r] · A[r][in] */
            return ocl_gemm(c, "lora_back dx lora", T, in, r, 1.0f, &DU, &Aw, 1.0f, &DX, NULL);
        /* g = du · A into the h scratch (h is no longer needed), then dx += keep ? g / (1-p) : 0 */
        const ocl_fop G = sop(h, in, false);
        if ((st = ocl_gemm(c, "lora_back dx lora", T, in, r, 1.0f, &DU, &Aw, 0.0f, &G, NULL)) != LC_OK) return st;
        ocl_args a;
        oa_begin(&a, c, OCL_K_lora_dropout_dx);
        oa_mem(&a, dx.mem);
        oa_u64(&a, dx.off);
        oa_u64(&a, dx.nb1 / 4);
        oa_mem(&a, h);
        oa_u32(&a, (uint32_t)in);
        oa_u32(&a, (uint32_t)T);
        oa_u64(&a, lv.seed);
        oa_u64(&a, lv.stream);
        oa_f32(&a, lv.p);
        oa_f32(&a, 1.0f - lv.p);
        size_t l0 = c->kwg[OCL_K_lora_dropout_dx] >= 16 ? 16 : c->kwg[OCL_K_lora_dropout_dx];
        const size_t lws[2] = {l0, 1}, gws[2] = {(size_t)(in + 15) / 16, (size_t)T};
        return ocl_launch(&a, 2, gws, lws);
    }
    return LC_OK;
}

/* ---- lora_merge --------------------------------------------------------------------------- */

/* LORA_MERGE (in place): src0 = dst0 w [in, out] F32/F16/BF16, src1 lora_A F32 [in, r], src2
 * lora_B F32 [r, out]: w[i,o] += fp[0] sum_j B[j,o] A[i,j] (W += s·B·A in PyTorch order), in F32,
 * rounded once to nearest even into w's dtype. fp[0] = +scaling merges, -scaling unmerges.
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE (quantized w), LC_ERR_STATE, backend errors. */
lc_status ocl_op_lora_merge(ocl_ctx *c, const lc_node *node) {
    ocl_mat w, a, b;
    lc_status st;
    const lc_tensor *tw = node->dst[0] ? node->dst[0] : node->src[0];
    if ((st = ocl_view(node, tw, "w (dst0)", false, &w)) || (st = ocl_view(node, node->src[1], "lora_A (src1)", true, &a)) ||
        (st = ocl_view(node, node->src[2], "lora_B (src2)", true, &b)))
        return st;
    if (w.dtype != LC_F32 && w.dtype != LC_F16 && w.dtype != LC_BF16)
        return lc_error(LC_ERR_DTYPE, "opencl lora_merge: w '%s' is %s; only f32, f16 and bf16 weights can be merged into",
                        tw->name, lc_dtype_name(w.dtype));
    const int64_t in = w.cols, out = w.rows, r = b.cols;
    if ((st = check_dims(node, "lora_A (src1)", &a, in, r)) || (st = check_dims(node, "lora_B (src2)", &b, r, out))) return st;
    const float s = node->fp[0];
    if (w.dtype == LC_F32) { /* w[out][in] += s · B[out][r] · A[r][in] */
        const ocl_fop B = fop(&b, false), W = fop(&w, false);
        const ocl_wop A = fwop(&a, false);
        return ocl_gemm(c, "lora_merge", (int)out, (int)in, (int)r, s, &B, &A, 1.0f, &W, NULL);
    }
    ocl_args ar;
    oa_begin(&ar, c, OCL_K_lora_merge_half);
    oa_mem(&ar, w.mem);
    oa_u64(&ar, w.off);
    oa_u64(&ar, w.nb1);
    oa_i32(&ar, (int32_t)w.dtype);
    oa_mem(&ar, a.mem);
    oa_u64(&ar, a.off);
    oa_u64(&ar, a.nb1 / 4);
    oa_mem(&ar, b.mem);
    oa_u64(&ar, b.off);
    oa_u64(&ar, b.nb1 / 4);
    oa_u32(&ar, (uint32_t)in);
    oa_u32(&ar, (uint32_t)out);
    oa_u32(&ar, (uint32_t)r);
    oa_f32(&ar, s);
    size_t l0 = c->kwg[OCL_K_lora_merge_half] >= 64 ? 64 : c->kwg[OCL_K_lora_merge_half];
    const size_t lws[2] = {l0, 1}, gws[2] = {(size_t)in, (size_t)out};
    return ocl_launch(&ar, 2, gws, lws);
}
