/* lorac CPU backend — matrix products: mul_mat, lora (fused base + low-rank path), their backward
 * kernels, and lora_merge. Semantics, shapes and parameter slots: lorac/graph.h (op table);
 * LoRA math: reference/peft-lora.md §1.2 (forward, dropout on the LoRA input only) and §1.7
 * (merge). All products go through cblas_sgemm (OpenBLAS) in row-major form: a lorac tensor
 * with ne = {cols, rows} is the row-major matrix [rows][cols] with leading dimension nb[1]/4.
 *
 * Weights that are not F32 (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) are never
 * converted whole. Three paths, all split over ctx->n_threads OpenMP threads:
 *  - x·wᵀ with M <= LC_CPU_SMALL_M rows of x (decoding, short prompts): rows of w split
 *    statically over the threads; per block the quants are decoded once into exact small integers
 *    in float and dotted with each row of x in 8 float lanes, the lanes scaled by the block's (or
 *    sub-block's) d once per group, offsets (Q4_1/Q5_1 m, K-quant dmin·min) added as
 *    offset·sum(x over the group). No F32 row is materialised. F16/BF16 rows are dequantised one
 *    at a time into a per-thread buffer instead. Kernels exist for the baseline ISA and, on
 *    x86-64, for AVX2 (same C, same lane order: identical results).
 *  - x·wᵀ with larger M: tiles of LC_CPU_TILE_MIN..LC_CPU_TILE_MAX rows (about 4 MiB of F32) are
 *    handed out dynamically; each thread dequantises its tile (lc_dequantize_row; Q8_0 by an
 *    AVX2 loop giving the same bits) into its own scratch and runs one single-threaded sgemm on
 *    it (the OpenMP build of OpenBLAS runs single-threaded inside a parallel region). Tiles write disjoint columns of y and every
 *    tile's sgemm is the same whatever thread runs it, so results do not depend on scheduling.
 *  - dx = dy·w: the columns of dx (whole blocks of w) are split statically over the threads;
 *    each thread dequantises its column slice of w tile by tile and accumulates with
 *    single-threaded sgemm, in tile order.
 * With a pthreads OpenBLAS (openblas_get_parallel() != 2) the tile paths fall back to tiles one
 * after the other with OpenBLAS's own threads. Measured on the 2-core (shared, loaded) dev box:
 * Q5_0 w[640, 2048] · x[640, 1024]: 157-216 ms -> 96 ms (xwT), 261-276 ms -> 85-92 ms (dyW);
 * dequantising a tile with OpenMP before a threaded sgemm instead was slower (404-436 ms).
 * Small M: Q8_0 w[640, 262144] · x[640, 1]: 239-334 ms -> 46 ms on one thread (AVX2).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_internal.h"
#include "lorac/dtype.h"
#include "lorac/rng.h"
#include "lorac/status.h"

/* Rows of a non-F32 weight dequantised per tile: as many as fit LC_CPU_TILE_BYTES of F32,
 * clamped to [LC_CPU_TILE_MIN, LC_CPU_TILE_MAX]. */
#define LC_CPU_TILE_MIN 64
#define LC_CPU_TILE_MAX 256
#define LC_CPU_TILE_BYTES ((size_t)4 << 20)
/* Below this many elements a loop runs on one thread. */
#define LC_CPU_PAR_MIN 32768
/* Products with at most this many rows of x take the fused dequantise-and-dot path. */
#define LC_CPU_SMALL_M 8
/* ... and are split over threads only from this many weight elements (N·K): about 0.4-1 ms of
 * work on one core. Below it a parallel region costs more than it saves on a loaded machine, where
 * each fork/join can wait a scheduler time slice for a descheduled worker (measured on the shared
 * 2-core box: Gemma 3 270M decoding 0.7 tokens/s with every product split, see the report). */
#define LC_CPU_SMALL_M_PAR_MIN ((int64_t)4 << 20)

/* ---- helpers ---------------------------------------------------------------------------------- */

/* A tensor seen as a row-major matrix [rows][cols]: rows = ne1*ne2*ne3 (dims 2, 3 must be packed
 * after dim 1), cols = ne0, row stride nb1 bytes. */
typedef struct mat2d {
    void *data;
    int64_t rows, cols;
    size_t nb1;
    lc_dtype type;
} mat2d;

static lc_status view2d(const lc_node *node, const lc_tensor *t, const char *what, mat2d *v) {
    memset(v, 0, sizeof *v);
    const char *op = lc_op_name(node->op);
    if (!t) return lc_error(LC_ERR_INVALID_ARG, "cpu %s: %s is NULL", op, what);
    const lc_dtype_info *di = lc_dtype_get(t->dtype);
    if (!di || t->dtype == LC_I32)
        return lc_error(LC_ERR_DTYPE, "cpu %s: %s '%s' has unsupported dtype %s", op, what, t->name,
                        lc_dtype_name(t->dtype));
    for (int d = 0; d < LC_MAX_DIMS; d++)
        if (t->ne[d] < 1) return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' has ne[%d]=%lld", op, what, t->name, d, (long long)t->ne[d]);
    size_t row_bytes = lc_row_size(t->dtype, t->ne[0]);
    if (row_bytes == 0 || t->nb[0] != di->type_size || t->nb[1] < row_bytes ||
        t->nb[2] != t->nb[1] * (size_t)t->ne[1] || t->nb[3] != t->nb[2] * (size_t)t->ne[2] ||
        (t->nb[1] % di->type_size) != 0)
        return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' (%s, ne %lld x %lld x %lld x %lld) has an unsupported layout "
                        "(nb %zu %zu %zu %zu)", op, what, t->name, lc_dtype_name(t->dtype), (long long)t->ne[0],
                        (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], t->nb[0], t->nb[1], t->nb[2], t->nb[3]);
    v->data = LC_CPU_DATA(t);
    v->cols = t->ne[0];
    v->rows = t->ne[1] * t->ne[2] * t->ne[3];
    v->nb1 = t->nb[1];
    v->type = t->dtype;
    if (v->rows > INT_MAX || v->cols > INT_MAX || v->nb1 / di->type_size > (size_t)INT_MAX)
        return lc_error(LC_ERR_SHAPE, "cpu %s: %s '%s' is too large for 32-bit BLAS indices", op, what, t->name);
    return LC_OK;
}

/* Same as view2d, and the tensor must be F32. */
static lc_status view2d_f32(const lc_node *node, const lc_tensor *t, const char *what, mat2d *v) {
    if (t && t->dtype != LC_F32)
        return lc_error(LC_ERR_DTYPE, "cpu %s: %s '%s' must be f32, not %s", lc_op_name(node->op), what, t->name,
                        lc_dtype_name(t->dtype));
    return view2d(node, t, what, v);
}

static lc_status check_dims(const lc_node *node, const char *what, const mat2d *v, int64_t cols, int64_t rows) {
    if (v->cols != cols || v->rows != rows)
        return lc_error(LC_ERR_SHAPE, "cpu %s: %s is [%lld, %lld] (ne order), expected [%lld, %lld]",
                        lc_op_name(node->op), what, (long long)v->cols, (long long)v->rows, (long long)cols,
                        (long long)rows);
    return LC_OK;
}

static inline int ld_f32(const mat2d *v) { return (int)(v->nb1 / sizeof(float)); }
static inline float *f32(const mat2d *v) { return (float *)v->data; }

/* 64-byte aligned float scratch of `count` elements, NULL when out of memory. */
static float *scratch_f32(size_t count) {
    if (count == 0) count = 1;
    if (count > (SIZE_MAX - 64) / sizeof(float)) return NULL;
    size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes);
}

static int64_t tile_rows(int64_t k) {
    int64_t t = (int64_t)(LC_CPU_TILE_BYTES / ((size_t)k * sizeof(float)));
    if (t < LC_CPU_TILE_MIN) t = LC_CPU_TILE_MIN;
    if (t > LC_CPU_TILE_MAX) t = LC_CPU_TILE_MAX;
    return t;
}

static int n_threads_for(const lc_cpu_ctx *ctx, int64_t work) {
    int n = ctx && ctx->n_threads > 0 ? ctx->n_threads : 1;
    return work < LC_CPU_PAR_MIN ? 1 : n;
}

/* Threads for a tile loop whose sgemm calls run inside an OpenMP region: only the OpenMP build
 * of OpenBLAS (openblas_get_parallel() == 2) then runs each call single-threaded; with another
 * build the tiles run one after the other and OpenBLAS threads each product. */
static int tile_threads(const lc_cpu_ctx *ctx, int64_t work) {
    static int blas_openmp = -1;
    int b;
#pragma omp atomic read
    b = blas_openmp;
    if (b < 0) {
        b = openblas_get_parallel() == 2;
#pragma omp atomic write
        blas_openmp = b;
    }
    return b ? n_threads_for(ctx, work) : 1;
}

/* Dequantise rows [r0, r0+nr) of w (row stride w_nb1, k elements each) into tile[nr][k], the rows
 * split statically over ctx->n_threads OpenMP threads (the OpenMP build of OpenBLAS shares
 * libgomp's pool, so this region does not fight BLAS threads; see the file comment). */
static lc_status dequant_tile(const lc_cpu_ctx *ctx, float *tile, const void *w, lc_dtype w_type, size_t w_nb1,
                              int64_t r0, int64_t nr, int64_t k) {
    int bad = 0;
    int nth = n_threads_for(ctx, nr * k);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t r = 0; r < nr; r++) {
        const void *src = (const char *)w + (size_t)(r0 + r) * w_nb1;
        if (lc_dequantize_row(w_type, src, tile + (size_t)r * (size_t)k, k) != LC_OK) {
#pragma omp atomic write
            bad = 1;
        }
    }
    if (bad)
        return lc_error(LC_ERR_DTYPE, "cpu matmul: could not dequantise %s rows %lld..%lld of length %lld",
                        lc_dtype_name(w_type), (long long)r0, (long long)(r0 + nr - 1), (long long)k);
    return LC_OK;
}

static lc_status check_matmul_args(const char *fn, const void *out, int64_t ldo, const void *in, int64_t ldi,
                                   const void *w, lc_dtype w_type, size_t w_nb1, int64_t m, int64_t n, int64_t k,
                                   int64_t out_cols, int64_t in_cols) {
    if (!out || !in || !w) return lc_error(LC_ERR_INVALID_ARG, "cpu %s: NULL matrix pointer", fn);
    if (m < 0 || n < 0 || k < 0 || m > INT_MAX || n > INT_MAX || k > INT_MAX)
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: sizes m=%lld n=%lld k=%lld out of range", fn, (long long)m,
                        (long long)n, (long long)k);
    if (ldo < (out_cols > 1 ? out_cols : 1) || ldi < (in_cols > 1 ? in_cols : 1) || ldo > INT_MAX || ldi > INT_MAX)
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: leading dimensions %lld / %lld too small or too large", fn,
                        (long long)ldo, (long long)ldi);
    const lc_dtype_info *di = lc_dtype_get(w_type);
    if (!di || w_type == LC_I32)
        return lc_error(LC_ERR_DTYPE, "cpu %s: weight dtype %s is not supported", fn, lc_dtype_name(w_type));
    if (k % di->block_size != 0 || w_nb1 < lc_row_size(w_type, k))
        return lc_error(LC_ERR_SHAPE, "cpu %s: weight rows of %lld %s elements (row stride %zu bytes) are invalid", fn,
                        (long long)k, lc_dtype_name(w_type), w_nb1);
    if (w_type == LC_F32 && (w_nb1 % sizeof(float) != 0 || w_nb1 / sizeof(float) > (size_t)INT_MAX))
        return lc_error(LC_ERR_SHAPE, "cpu %s: f32 weight row stride %zu bytes is invalid", fn, w_nb1);
    return LC_OK;
}

/* ---- tile dequantisation ----------------------------------------------------------------------- */

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
/* Q8_0 (reference/formats.md §2: fp16 d, then 32 int8 q; y = (float)q · d) with AVX2: each q
 * widened to int32, converted exactly to float and multiplied by d once — the same single
 * rounding as lc_dequantize_row, so the result is bit-identical. */
__attribute__((target("avx2"))) static void dequant_q8_0_avx2(const uint8_t *src, float *y, int64_t nblocks) {
    for (int64_t b = 0; b < nblocks; b++, src += 34, y += 32) {
        uint16_t h;
        memcpy(&h, src, sizeof h);
        const __m256 d = _mm256_set1_ps(lc_fp16_to_fp32(h));
        for (int j = 0; j < 32; j += 8) {
            const __m128i q8 = _mm_loadl_epi64((const __m128i *)(const void *)(src + 2 + j));
            _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), d));
        }
    }
}
#define LC_DEQ_AVX2 1
#else
#define LC_DEQ_AVX2 0
#endif

/* lc_dequantize_row(w_type, src, dst, k), with a vectorised path for Q8_0 (the tied output
 * projection of Gemma 3 in Q4_K_M files: 262144 x 640, dequantised twice per micro-batch). */
static lc_status dequant_row(lc_dtype w_type, const void *src, float *dst, int64_t k) {
#if LC_DEQ_AVX2
    if (w_type == LC_Q8_0 && k % 32 == 0 && __builtin_cpu_supports("avx2")) {
        dequant_q8_0_avx2(src, dst, k / 32);
        return LC_OK;
    }
#endif
    return lc_dequantize_row(w_type, src, dst, k);
}

/* ---- small M: fused dequantise-and-dot ------------------------------------------------------- */

/* sum_j a[j]·b[j] for j < n in 8 interleaved float lanes (lane l adds j ≡ l mod 8, in order),
 * then the lanes pairwise; the tail n mod 8 last. Plain C that the compiler vectorises without
 * reassociating (no fast-math). */
static inline float dot_lanes(const float *restrict a, const float *restrict b, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[j + l] * b[j + l];
    float s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (; j < n; j++) s += a[j] * b[j];
    return s;
}

/* Block decoders for the fused path (layouts: reference/formats.md §2, ggml-common.h). Each
 * writes the block's quants as exact small integers in float, vals[0..BS), and per group of G
 * consecutive elements a scale a[g] (and for Q4_1/Q5_1/Q4_K/Q5_K an offset c[g]) such that
 * lc_dequantize_row gives a[g]·vals[e] + c[g] for element e of group g. */
static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
/* IEEE binary16 -> binary32, exact (the same value as lc_fp16_to_fp32), inlined for the hot loops. */
static inline float half_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu;
    uint32_t bits;
    if (em >= 0x7c00u) bits = sign | 0x7f800000u | ((em & 0x3ffu) << 13); /* Inf, NaN */
    else if (em >= 0x0400u) bits = sign | ((em + (112u << 10)) << 13);    /* normal: rebias 15 -> 127 */
    else {                                                                /* zero, subnormal: em·2^-24 */
        float f = (float)em * 0x1p-24f;
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
/* 6-bit scale and min of sub-block j of a K-quant super-block (get_scale_min_k4). */
static inline void k4_scale_min(int j, const uint8_t *s, float *sc, float *mn) {
    if (j < 4) {
        *sc = (float)(s[j] & 63u);
        *mn = (float)(s[j + 4] & 63u);
    } else {
        *sc = (float)((s[j + 4] & 0x0fu) | ((s[j - 4] >> 6) << 4));
        *mn = (float)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}
static inline void dec_q8_0(const uint8_t *b, float *v, float *a, float *c) { /* d, qs[32] */
    (void)c;
    a[0] = half_to_f32(rd16(b));
    const int8_t *q = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) v[j] = (float)q[j];
}
/* The 8 bits of byte b spread over 8 bytes, bit i -> 16 in byte i (little-endian): b copied to
 * every byte, byte i masked to bit i, then 0x7f added (a set bit reaches 0x80, no carry out) and
 * 0x80 shifted down to 0x10. Gives the fifth bits of 8 elements without 8 variable shifts. */
static inline uint64_t spread_bits16(uint8_t b) {
    const uint64_t x = ((uint64_t)b * 0x0101010101010101ull) & 0x8040201008040201ull;
    return ((x + 0x7f7f7f7f7f7f7f7full) & 0x8080808080808080ull) >> 3;
}
/* u[0..32) = the 4-bit quants of a 16-byte qs (element j: low nibble of qs[j], j+16: high
 * nibble), each ORed with 16 where the matching bit of the 32-bit qh is set; eight bytes at a
 * time in 64-bit words. (For Q4_0/Q4_1 the plain
 * nibble loop measured faster.) */
static inline void unpack_nibbles(const uint8_t *q, const uint8_t *qhp, uint8_t u[32]) {
    const uint64_t m4 = 0x0f0f0f0f0f0f0f0full;
    uint64_t w0, w1;
    memcpy(&w0, q, 8);
    memcpy(&w1, q + 8, 8);
    uint64_t o[4] = {w0 & m4, w1 & m4, (w0 >> 4) & m4, (w1 >> 4) & m4};
    for (int i = 0; i < 4; i++) o[i] |= spread_bits16(qhp[i]);
    memcpy(u, o, 32);
}
static inline void dec_q5(const uint8_t *qhp, const uint8_t *q, int bias, float *v) {
    uint8_t u[32];
    unpack_nibbles(q, qhp, u);
    for (int j = 0; j < 32; j++) v[j] = (float)((int)u[j] - bias);
}
static inline void dec_q4_0(const uint8_t *b, float *v, float *a, float *c) { /* d, qs[16] */
    (void)c;
    a[0] = half_to_f32(rd16(b));
    const uint8_t *q = b + 2;
    for (int j = 0; j < 16; j++) {
        v[j] = (float)((int)(q[j] & 15u) - 8);
        v[j + 16] = (float)((int)(q[j] >> 4) - 8);
    }
}
static inline void dec_q4_1(const uint8_t *b, float *v, float *a, float *c) { /* d, m, qs[16] */
    a[0] = half_to_f32(rd16(b));
    c[0] = half_to_f32(rd16(b + 2));
    const uint8_t *q = b + 4;
    for (int j = 0; j < 16; j++) {
        v[j] = (float)(q[j] & 15u);
        v[j + 16] = (float)(q[j] >> 4);
    }
}
static inline void dec_q5_0(const uint8_t *b, float *v, float *a, float *c) { /* d, qh[4], qs[16] */
    (void)c;
    a[0] = half_to_f32(rd16(b));
    dec_q5(b + 2, b + 6, 16, v);
}
static inline void dec_q5_1(const uint8_t *b, float *v, float *a, float *c) { /* d, m, qh[4], qs[16] */
    a[0] = half_to_f32(rd16(b));
    c[0] = half_to_f32(rd16(b + 2));
    dec_q5(b + 4, b + 8, 0, v);
}
static inline void dec_q4_K(const uint8_t *b, float *v, float *a, float *c) { /* d, dmin, scales[12], qs[128] */
    const float d = half_to_f32(rd16(b)), dmin = half_to_f32(rd16(b + 2));
    const uint8_t *s = b + 4, *q = b + 16;
    for (int ch = 0; ch < 4; ch++, q += 32, v += 64) {
        float sc, mn;
        k4_scale_min(2 * ch, s, &sc, &mn);
        a[2 * ch] = d * sc;
        c[2 * ch] = -(dmin * mn);
        k4_scale_min(2 * ch + 1, s, &sc, &mn);
        a[2 * ch + 1] = d * sc;
        c[2 * ch + 1] = -(dmin * mn);
        for (int l = 0; l < 32; l++) {
            v[l] = (float)(q[l] & 15u);
            v[l + 32] = (float)(q[l] >> 4);
        }
    }
}
static inline void dec_q5_K(const uint8_t *b, float *v, float *a, float *c) { /* d, dmin, scales[12], qh[32], qs[128] */
    const float d = half_to_f32(rd16(b)), dmin = half_to_f32(rd16(b + 2));
    const uint8_t *s = b + 4, *qh = b + 16, *q = b + 48;
    for (int ch = 0; ch < 4; ch++, q += 32, v += 64) {
        float sc, mn;
        k4_scale_min(2 * ch, s, &sc, &mn);
        a[2 * ch] = d * sc;
        c[2 * ch] = -(dmin * mn);
        k4_scale_min(2 * ch + 1, s, &sc, &mn);
        a[2 * ch + 1] = d * sc;
        c[2 * ch + 1] = -(dmin * mn);
        const unsigned lo = 2u * (unsigned)ch, hi = lo + 1u;
        for (int l = 0; l < 32; l++) {
            v[l] = (float)((q[l] & 15u) | (((qh[l] >> lo) & 1u) << 4));
            v[l + 32] = (float)((q[l] >> 4) | (((qh[l] >> hi) & 1u) << 4));
        }
    }
}
static inline void dec_q6_K(const uint8_t *b, float *v, float *a, float *c) { /* ql[128], qh[64], scales[16], d */
    (void)c;
    const float d = half_to_f32(rd16(b + 208));
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int g = 0; g < 16; g++) a[g] = d * (float)sc[g];
    for (int h = 0; h < 2; h++) { /* halves of 128 elements: ql + 64h, qh + 32h */
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        float *o = v + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (float)((int)((ql[l] & 15u) | ((qh[l] & 3u) << 4)) - 32);
            o[l + 32] = (float)((int)((ql[l + 32] & 15u) | (((qh[l] >> 2) & 3u) << 4)) - 32);
            o[l + 64] = (float)((int)((ql[l] >> 4) | (((qh[l] >> 4) & 3u) << 4)) - 32);
            o[l + 96] = (float)((int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3u) << 4)) - 32);
        }
    }
}

/* out[i] = x[i]·w for one weight row w of nb blocks and i < m: per block, the quants are decoded
 * once (shared by the m rows of x) and dotted with x in 8 float lanes per group of G, the lanes
 * scaled by the group's a[g]; offsets add c[g]·(sum of x over the group), from xs[i][group]. */
#define LC_QROW_KERNEL_AS(ATTR, NAME, DECODE, BS, BYTES, G, OFF)                                                \
    ATTR static void NAME(const uint8_t *w, int64_t nb, const float *x, int64_t ldx, const float *xs, int64_t ldxs,   \
                     int64_t m, float *out) {                                                                    \
        float acc[LC_CPU_SMALL_M][8], off[LC_CPU_SMALL_M];                                                       \
        float v[BS], a[(BS) / (G)], c[(BS) / (G)];                                                               \
        memset(acc, 0, sizeof acc);                                                                              \
        memset(off, 0, sizeof off);                                                                              \
        for (int64_t b = 0; b < nb; b++) {                                                                       \
            DECODE(w + (size_t)b * (BYTES), v, a, c);                                                            \
            for (int64_t i = 0; i < m; i++) {                                                                    \
                const float *xb = x + i * ldx + b * (BS);                                                        \
                for (int g = 0; g < (BS) / (G); g++) {                                                           \
                    float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                       \
                    for (int j = g * (G); j < (g + 1) * (G); j += 8)                                             \
                        for (int l = 0; l < 8; l++) p[l] += v[j + l] * xb[j + l];                                \
                    for (int l = 0; l < 8; l++) acc[i][l] += a[g] * p[l];                                        \
                    if (OFF) off[i] += c[g] * xs[i * ldxs + b * ((BS) / (G)) + g];                               \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
        for (int64_t i = 0; i < m; i++) {                                                                        \
            const float *q = acc[i];                                                                             \
            out[i] = (((q[0] + q[4]) + (q[2] + q[6])) + ((q[1] + q[5]) + (q[3] + q[7]))) + off[i];               \
        }                                                                                                        \
    }
/* x86-64: every kernel twice, for the baseline ISA and for AVX2 (chosen at run time by
 * __builtin_cpu_supports); the same C and the same lane order, so both give identical results. */
#if defined(__GNUC__) && defined(__x86_64__)
#define LC_QROW_AVX2 1
#define LC_QROW_KERNEL(NAME, ...)                 \
    LC_QROW_KERNEL_AS(, NAME, __VA_ARGS__)        \
    LC_QROW_KERNEL_AS(__attribute__((target("avx2"))), NAME##_avx2, __VA_ARGS__)
#else
#define LC_QROW_AVX2 0
#define LC_QROW_KERNEL(NAME, ...) LC_QROW_KERNEL_AS(, NAME, __VA_ARGS__)
#endif
LC_QROW_KERNEL(qrow_q8_0, dec_q8_0, 32, 34, 32, 0)
LC_QROW_KERNEL(qrow_q4_0, dec_q4_0, 32, 18, 32, 0)
LC_QROW_KERNEL(qrow_q4_1, dec_q4_1, 32, 20, 32, 1)
LC_QROW_KERNEL(qrow_q5_0, dec_q5_0, 32, 22, 32, 0)
LC_QROW_KERNEL(qrow_q5_1, dec_q5_1, 32, 24, 32, 1)
LC_QROW_KERNEL(qrow_q4_K, dec_q4_K, 256, 144, 32, 1)
LC_QROW_KERNEL(qrow_q5_K, dec_q5_K, 256, 176, 32, 1)
LC_QROW_KERNEL(qrow_q6_K, dec_q6_K, 256, 210, 16, 0)
#undef LC_QROW_KERNEL
#undef LC_QROW_KERNEL_AS

typedef void (*qrow_fn)(const uint8_t *w, int64_t nb, const float *x, int64_t ldx, const float *xs, int64_t ldxs,
                        int64_t m, float *out);

/* The fused row kernel of a block type, its block size, and whether it needs group sums of x
 * (groups of 32); NULL for types that take the dequantise-a-row path (F16, BF16). */
static qrow_fn qrow_for(lc_dtype t, int64_t *bs, bool *needs_xsum) {
#if LC_QROW_AVX2
    const bool avx2 = __builtin_cpu_supports("avx2");
#define LC_QROW_PICK(NAME) (avx2 ? NAME##_avx2 : NAME)
#else
#define LC_QROW_PICK(NAME) (NAME)
#endif
    *bs = 32;
    *needs_xsum = false;
    switch (t) {
    case LC_Q8_0: return LC_QROW_PICK(qrow_q8_0);
    case LC_Q4_0: return LC_QROW_PICK(qrow_q4_0);
    case LC_Q5_0: return LC_QROW_PICK(qrow_q5_0);
    case LC_Q4_1: *needs_xsum = true; return LC_QROW_PICK(qrow_q4_1);
    case LC_Q5_1: *needs_xsum = true; return LC_QROW_PICK(qrow_q5_1);
    case LC_Q4_K: *bs = 256; *needs_xsum = true; return LC_QROW_PICK(qrow_q4_K);
    case LC_Q5_K: *bs = 256; *needs_xsum = true; return LC_QROW_PICK(qrow_q5_K);
    case LC_Q6_K: *bs = 256; return LC_QROW_PICK(qrow_q6_K);
    default: return NULL;
    }
#undef LC_QROW_PICK
}

/* y[i][r] (+)= x[i]·w[r] for rows r in [r0, r1) and i < m, w dequantised one row at a time into
 * `row` (k floats, thread-private). Returns false when a row could not be dequantised. */
static bool xwT_rows(float *y, int64_t ldy, const float *x, int64_t ldx, const void *w, lc_dtype w_type, size_t w_nb1,
                     int64_t m, int64_t r0, int64_t r1, int64_t k, bool accumulate, float *row) {
    for (int64_t r = r0; r < r1; r++) {
        if (lc_dequantize_row(w_type, (const char *)w + (size_t)r * w_nb1, row, k) != LC_OK) return false;
        for (int64_t i = 0; i < m; i++) {
            const float d = dot_lanes(row, x + i * ldx, k);
            float *yp = y + i * ldy + r;
            *yp = accumulate ? *yp + d : d;
        }
    }
    return true;
}

/* The small-M product: rows of w split statically over the OpenMP threads. Block types go
 * through their fused row kernel (quants decoded once per block, never a float row); F16/BF16
 * rows are dequantised one at a time into a per-thread k-float buffer and dotted with x. */
static lc_status xwT_small_m(const lc_cpu_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                             lc_dtype w_type, size_t w_nb1, int64_t m, int64_t n, int64_t k, bool accumulate) {
    int nth = n * k >= LC_CPU_SMALL_M_PAR_MIN ? lc_cpu_threads(ctx) : 1;
    if (nth > n) nth = (int)n;
    int64_t bs;
    bool needs_xsum;
    const qrow_fn fn = qrow_for(w_type, &bs, &needs_xsum);
    const int64_t ngroups = k / 32;
    float *xs = NULL, *rows = NULL;
    if (fn && needs_xsum) { /* xs[i][g] = sum of x[i] over elements [32g, 32g + 32), in order */
        xs = scratch_f32((size_t)m * (size_t)ngroups);
        if (!xs) return lc_error(LC_ERR_NOMEM, "cpu matmul_xwT: no memory for group sums of x [%lld, %lld]", (long long)k, (long long)m);
        for (int64_t i = 0; i < m; i++)
            for (int64_t g = 0; g < ngroups; g++) {
                const float *xp = x + i * ldx + 32 * g;
                float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                for (int j = 0; j < 32; j += 8)
                    for (int l = 0; l < 8; l++) p[l] += xp[j + l];
                xs[i * ngroups + g] = ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
            }
    }
    if (!fn) {
        rows = scratch_f32((size_t)nth * (size_t)k);
        if (!rows) return lc_error(LC_ERR_NOMEM, "cpu matmul_xwT: no memory for %d dequantised rows of %lld", nth, (long long)k);
    }
    int bad = 0;
#pragma omp parallel num_threads(nth)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        const int tid = 0, nt = 1;
#endif
        const int64_t r0 = n * tid / nt, r1 = n * (tid + 1) / nt;
        if (fn) {
            float out[LC_CPU_SMALL_M];
            for (int64_t r = r0; r < r1; r++) {
                fn((const uint8_t *)w + (size_t)r * w_nb1, k / bs, x, ldx, xs, ngroups, m, out);
                for (int64_t i = 0; i < m; i++) {
                    float *yp = y + i * ldy + r;
                    *yp = accumulate ? *yp + out[i] : out[i];
                }
            }
        } else if (!xwT_rows(y, ldy, x, ldx, w, w_type, w_nb1, m, r0, r1, k, accumulate, rows + (size_t)tid * (size_t)k)) {
#pragma omp atomic write
            bad = 1;
        }
    }
    free(rows);
    free(xs);
    if (bad)
        return lc_error(LC_ERR_DTYPE, "cpu matmul_xwT: could not dequantise %s rows of length %lld", lc_dtype_name(w_type),
                        (long long)k);
    return LC_OK;
}

/* ---- the two products (cpu_internal.h) ------------------------------------------------------ */

lc_status lc_cpu_matmul_xwT(lc_cpu_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
                            lc_dtype w_type, size_t w_nb1, int64_t m, int64_t n, int64_t k, bool accumulate) {
    lc_status st = check_matmul_args("matmul_xwT", y, ldy, x, ldx, w, w_type, w_nb1, m, n, k, n, k);
    if (st != LC_OK) return st;
    if (m == 0 || n == 0) return LC_OK;
    const float beta = accumulate ? 1.0f : 0.0f;
    if (w_type == LC_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, x, (int)ldx,
                    (const float *)w, (int)(w_nb1 / sizeof(float)), beta, y, (int)ldy);
        return LC_OK;
    }
    if (m <= LC_CPU_SMALL_M) return xwT_small_m(ctx, y, ldy, x, ldx, w, w_type, w_nb1, m, n, k, accumulate);
    int64_t tr = tile_rows(k);
    if (tr > n) tr = n;
    const int64_t ntiles = (n + tr - 1) / tr;
    int nth = tile_threads(ctx, m * n * k / 64);
    if (nth > ntiles) nth = (int)ntiles;
    float *tiles = scratch_f32((size_t)nth * (size_t)tr * (size_t)k);
    if (!tiles) return lc_error(LC_ERR_NOMEM, "cpu matmul_xwT: no memory for %d %lld x %lld dequantisation tiles", nth, (long long)tr, (long long)k);
    int bad = 0;
#pragma omp parallel num_threads(nth)
    {
#ifdef _OPENMP
        float *tile = tiles + (size_t)omp_get_thread_num() * (size_t)tr * (size_t)k;
#else
        float *tile = tiles;
#endif
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntiles; t++) {
            const int64_t n0 = t * tr, nt = n - n0 < tr ? n - n0 : tr;
            bool ok = true;
            for (int64_t r = 0; r < nt && ok; r++)
                ok = dequant_row(w_type, (const char *)w + (size_t)(n0 + r) * w_nb1, tile + (size_t)r * (size_t)k, k) == LC_OK;
            if (!ok) {
#pragma omp atomic write
                bad = 1;
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nt, (int)k, 1.0f, x, (int)ldx, tile,
                            (int)k, beta, y + n0, (int)ldy);
            }
        }
    }
    free(tiles);
    if (bad)
        return lc_error(LC_ERR_DTYPE, "cpu matmul_xwT: could not dequantise %s rows of length %lld", lc_dtype_name(w_type),
                        (long long)k);
    return LC_OK;
}

lc_status lc_cpu_matmul_dyW(lc_cpu_ctx *ctx, float *dx, int64_t lddx, const float *dy, int64_t lddy, const void *w,
                            lc_dtype w_type, size_t w_nb1, int64_t m, int64_t n, int64_t k, bool accumulate) {
    lc_status st = check_matmul_args("matmul_dyW", dx, lddx, dy, lddy, w, w_type, w_nb1, m, n, k, k, n);
    if (st != LC_OK) return st;
    if (m == 0 || k == 0) return LC_OK;
    if (n == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; i++) memset(dx + i * lddx, 0, (size_t)k * sizeof(float));
        return LC_OK;
    }
    if (w_type == LC_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)n, 1.0f, dy, (int)lddy,
                    (const float *)w, (int)(w_nb1 / sizeof(float)), accumulate ? 1.0f : 0.0f, dx, (int)lddx);
        return LC_OK;
    }
    /* Columns of dx (whole blocks of w) split statically over the threads: thread t owns
     * dx[:, k0:k1), dequantises w[n0:n0+nt, k0:k1) tile by tile and adds dy[:, n0:n0+nt] times it
     * with a single-threaded sgemm, in tile order, so no two threads write the same element and the
     * sums do not depend on scheduling. */
    const lc_dtype_info *di = lc_dtype_get(w_type);
    const int64_t bs = di->block_size, nblk = k / bs;
    int nth = tile_threads(ctx, m * n * k / 64);
    if (nth > nblk) nth = (int)nblk;
    const int64_t kc_max = (nblk + nth - 1) / nth * bs;
    int64_t tr = tile_rows(kc_max);
    if (tr > n) tr = n;
    float *tiles = scratch_f32((size_t)nth * (size_t)tr * (size_t)kc_max);
    if (!tiles) return lc_error(LC_ERR_NOMEM, "cpu matmul_dyW: no memory for %d %lld x %lld dequantisation tiles", nth, (long long)tr, (long long)kc_max);
    int bad = 0;
#pragma omp parallel num_threads(nth)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num(), nt_ = omp_get_num_threads();
#else
        const int tid = 0, nt_ = 1;
#endif
        const int64_t b0 = nblk * tid / nt_, b1 = nblk * (tid + 1) / nt_, k0 = b0 * bs, kc = (b1 - b0) * bs;
        float *tile = tiles + (size_t)tid * (size_t)tr * (size_t)kc_max;
        bool ok = true;
        for (int64_t n0 = 0; n0 < n && kc > 0 && ok; n0 += tr) {
            const int64_t nt = n - n0 < tr ? n - n0 : tr;
            for (int64_t r = 0; r < nt && ok; r++)
                ok = dequant_row(w_type, (const char *)w + (size_t)(n0 + r) * w_nb1 + (size_t)b0 * di->type_size,
                                       tile + (size_t)r * (size_t)kc, kc) == LC_OK;
            if (ok)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)kc, (int)nt, 1.0f, dy + n0, (int)lddy,
                            tile, (int)kc, (n0 == 0 && !accumulate) ? 0.0f : 1.0f, dx + k0, (int)lddx);
        }
        if (!ok) {
#pragma omp atomic write
            bad = 1;
        }
    }
    free(tiles);
    if (bad)
        return lc_error(LC_ERR_DTYPE, "cpu matmul_dyW: could not dequantise %s rows of length %lld", lc_dtype_name(w_type),
                        (long long)k);
    return LC_OK;
}

/* ---- mul_mat ---------------------------------------------------------------------------------- */

/* MUL_MAT: src0 x F32 [K, M], src1 w [K, N] (any weight dtype) -> dst0 y F32 [N, M],
 * y[n,m] = sum_k x[k,m] w[k,n]. Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_NOMEM. */
lc_status lc_cpu_op_mul_mat(lc_cpu_ctx *ctx, const lc_node *node) {
    mat2d x, w, y;
    lc_status st;
    if ((st = view2d_f32(node, node->src[0], "x (src0)", &x)) || (st = view2d(node, node->src[1], "w (src1)", &w)) ||
        (st = view2d_f32(node, node->dst[0], "y (dst0)", &y)))
        return st;
    if ((st = check_dims(node, "w (src1)", &w, x.cols, w.rows)) || (st = check_dims(node, "y (dst0)", &y, w.rows, x.rows)))
        return st;
    return lc_cpu_matmul_xwT(ctx, f32(&y), ld_f32(&y), f32(&x), ld_f32(&x), w.data, w.type, w.nb1, x.rows, w.rows,
                             x.cols, false);
}

/* dw[N][K] (+)= dy[M][N]ᵀ · x[M][K]: dw[k,n] = sum_m x[k,m] dy[n,m] (ne order). */
static void grad_weight(const mat2d *dy, const mat2d *x, const mat2d *dw, bool accumulate) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)dy->cols, (int)x->cols, (int)x->rows, 1.0f, f32(dy),
                ld_f32(dy), f32(x), ld_f32(x), accumulate ? 1.0f : 0.0f, f32(dw), ld_f32(dw));
}

/* MUL_MAT_BACK: src0 x [K, M], src1 w [K, N], src6 dy F32 [N, M] -> dst0 dx F32 [K, M] = dy·w
 * (dx[k,m] = sum_n dy[n,m] w[k,n]), dst1 dw F32 [K, N] (dw[k,n] = sum_m x[k,m] dy[n,m]); either
 * output may be NULL; accum bit i adds into dst[i]. Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_NOMEM. */
lc_status lc_cpu_op_mul_mat_back(lc_cpu_ctx *ctx, const lc_node *node) {
    mat2d x, w, dy, dx, dw;
    lc_status st;
    if ((st = view2d_f32(node, node->src[0], "x (src0)", &x)) || (st = view2d(node, node->src[1], "w (src1)", &w)) ||
        (st = view2d_f32(node, node->src[6], "dy (src6)", &dy)))
        return st;
    if ((st = check_dims(node, "w (src1)", &w, x.cols, w.rows)) || (st = check_dims(node, "dy (src6)", &dy, w.rows, x.rows)))
        return st;
    if (node->dst[0]) {
        if ((st = view2d_f32(node, node->dst[0], "dx (dst0)", &dx)) || (st = check_dims(node, "dx (dst0)", &dx, x.cols, x.rows)))
            return st;
        st = lc_cpu_matmul_dyW(ctx, f32(&dx), ld_f32(&dx), f32(&dy), ld_f32(&dy), w.data, w.type, w.nb1, x.rows, w.rows,
                               x.cols, (node->accum & 1u) != 0);
        if (st != LC_OK) return st;
    }
    if (node->dst[1]) {
        if ((st = view2d_f32(node, node->dst[1], "dw (dst1)", &dw)) || (st = check_dims(node, "dw (dst1)", &dw, w.cols, w.rows)))
            return st;
        grad_weight(&dy, &x, &dw, (node->accum & 2u) != 0);
    }
    return LC_OK;
}

/* ---- lora ------------------------------------------------------------------------------------- */

typedef struct lora_view {
    mat2d x, w, a, b;
    int64_t in, t, out, r;
    float s, p;
    uint64_t seed, stream;
} lora_view;

static lc_status lora_inputs(const lc_node *node, lora_view *lv) {
    lc_status st;
    if ((st = view2d_f32(node, node->src[0], "x (src0)", &lv->x)) || (st = view2d(node, node->src[1], "w (src1)", &lv->w)) ||
        (st = view2d_f32(node, node->src[2], "lora_A (src2)", &lv->a)) ||
        (st = view2d_f32(node, node->src[3], "lora_B (src3)", &lv->b)))
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
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: dropout p = %g (fp[1]) must lie in [0, 1)", lc_op_name(node->op),
                        (double)lv->p);
    if (node->ip[0] < 0 || node->ip[0] >= (1 << 24))
        return lc_error(LC_ERR_INVALID_ARG, "cpu %s: module id %d (ip[0]) must lie in [0, 2^24)", lc_op_name(node->op),
                        node->ip[0]);
    lv->seed = node->seed;
    lv->stream = lc_rng_dropout_stream(node->rng_step, (uint32_t)node->ip[0]);
    return LC_OK;
}

/* keep[t][i] = lc_rng_keep(seed, stream, t*in + i, p) (graph.h LORA) and, when h != NULL,
 * h[t][i] = keep ? x[t][i] / (1 - p) : 0. */
static void dropout_mask(const lc_cpu_ctx *ctx, const lora_view *lv, uint8_t *keep, float *h) {
    const int64_t in = lv->in, T = lv->t;
    const int ldx = ld_f32(&lv->x);
    const float *x = f32(&lv->x);
    const float q = 1.0f - lv->p;
    int nth = n_threads_for(ctx, in * T / 4);
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t t = 0; t < T; t++) {
        uint8_t *kr = keep + t * in;
        lc_cpu_dropout_keep(lv->seed, lv->stream, (uint64_t)(t * in), in, lv->p, kr);
        if (h)
            for (int64_t i = 0; i < in; i++) h[t * in + i] = kr[i] ? x[t * ldx + i] / q : 0.0f;
    }
}

/* LORA: src0 x F32 [in, T], src1 w [in, out] (any weight dtype), src2 lora_A F32 [in, r],
 * src3 lora_B F32 [r, out] -> dst0 y F32 [out, T], dst1 u F32 [r, T] (may be NULL).
 * h = drop(x), u = h·Aᵀ (u[j,t] = sum_i A[i,j] h[i,t]), y = x·wᵀ + fp[0]·u·Bᵀ. fp[0] = scaling,
 * fp[1] = dropout p in [0, 1) (0: no mask), ip[0] = module id, mask from node->seed and
 * lc_rng_dropout_stream(rng_step, ip[0]). Source: reference/peft-lora.md §1.2.
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_INVALID_ARG (p, module id), LC_ERR_NOMEM. */
lc_status lc_cpu_op_lora(lc_cpu_ctx *ctx, const lc_node *node) {
    lora_view lv;
    mat2d y, u;
    lc_status st = lora_inputs(node, &lv);
    if (st != LC_OK) return st;
    if ((st = view2d_f32(node, node->dst[0], "y (dst0)", &y)) || (st = check_dims(node, "y (dst0)", &y, lv.out, lv.t)))
        return st;
    float *u_scratch = NULL, *h = NULL;
    uint8_t *keep = NULL;
    float *up;
    int ldu;
    if (node->dst[1]) {
        if ((st = view2d_f32(node, node->dst[1], "u (dst1)", &u)) || (st = check_dims(node, "u (dst1)", &u, lv.r, lv.t)))
            return st;
        up = f32(&u);
        ldu = ld_f32(&u);
    } else {
        u_scratch = scratch_f32((size_t)lv.t * (size_t)lv.r);
        if (!u_scratch) return lc_error(LC_ERR_NOMEM, "cpu lora: no memory for u [%lld, %lld]", (long long)lv.r, (long long)lv.t);
        up = u_scratch;
        ldu = (int)lv.r;
    }
    const float *hp = f32(&lv.x);
    int ldh = ld_f32(&lv.x);
    if (lv.p > 0.0f) {
        h = scratch_f32((size_t)lv.t * (size_t)lv.in);
        keep = malloc((size_t)lv.t * (size_t)lv.in);
        if (!h || !keep) {
            st = lc_error(LC_ERR_NOMEM, "cpu lora: no memory for the dropout of x [%lld, %lld]", (long long)lv.in, (long long)lv.t);
            goto done;
        }
        dropout_mask(ctx, &lv, keep, h);
        hp = h;
        ldh = (int)lv.in;
    }
    /* u[T][r] = h[T][in] · A[r][in]ᵀ */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)lv.t, (int)lv.r, (int)lv.in, 1.0f, hp, ldh, f32(&lv.a),
                ld_f32(&lv.a), 0.0f, up, ldu);
    /* y[T][out] = x · wᵀ */
    st = lc_cpu_matmul_xwT(ctx, f32(&y), ld_f32(&y), f32(&lv.x), ld_f32(&lv.x), lv.w.data, lv.w.type, lv.w.nb1, lv.t,
                           lv.out, lv.in, false);
    if (st != LC_OK) goto done;
    /* y += s · u[T][r] · B[out][r]ᵀ */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)lv.t, (int)lv.out, (int)lv.r, lv.s, up, ldu, f32(&lv.b),
                ld_f32(&lv.b), 1.0f, f32(&y), ld_f32(&y));
done:
    free(u_scratch);
    free(h);
    free(keep);
    return st;
}

/* LORA_BACK: src0..3 = x, w, lora_A, lora_B as LORA; src5 u [r, T] (forward dst1; recomputed
 * when NULL), src6 dy F32 [out, T] -> dst0 dx [in, T], dst1 dw [in, out], dst2 dA [in, r],
 * dst3 dB [r, out] (each F32, NULL when not needed; accum bit i adds into dst[i]):
 *   dB = s·dyᵀ·u            (dB[j,o] = s sum_t dy[o,t] u[j,t])
 *   du = s·dy·B             (du[j,t] = s sum_o B[j,o] dy[o,t])
 *   dA = duᵀ·drop(x)        (dA[i,j] = sum_t du[j,t] h[i,t])
 *   dx = dy·w + keep/(1-p) ⊙ (du·A),  dw = dyᵀ·x.
 * The dropout mask is regenerated from seed, rng_step and ip[0] exactly as in the forward pass.
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE, LC_ERR_INVALID_ARG, LC_ERR_NOMEM. */
lc_status lc_cpu_op_lora_back(lc_cpu_ctx *ctx, const lc_node *node) {
    lora_view lv;
    mat2d dy, u, dx, dw, da, db;
    lc_status st = lora_inputs(node, &lv);
    if (st != LC_OK) return st;
    if ((st = view2d_f32(node, node->src[6], "dy (src6)", &dy)) || (st = check_dims(node, "dy (src6)", &dy, lv.out, lv.t)))
        return st;
    const lc_tensor *tdx = node->dst[0], *tdw = node->dst[1], *tda = node->dst[2], *tdb = node->dst[3];
    if (tdx && ((st = view2d_f32(node, tdx, "dx (dst0)", &dx)) || (st = check_dims(node, "dx (dst0)", &dx, lv.in, lv.t))))
        return st;
    if (tdw && ((st = view2d_f32(node, tdw, "dw (dst1)", &dw)) || (st = check_dims(node, "dw (dst1)", &dw, lv.in, lv.out))))
        return st;
    if (tda && ((st = view2d_f32(node, tda, "lora_A grad (dst2)", &da)) ||
                (st = check_dims(node, "lora_A grad (dst2)", &da, lv.in, lv.r))))
        return st;
    if (tdb && ((st = view2d_f32(node, tdb, "lora_B grad (dst3)", &db)) ||
                (st = check_dims(node, "lora_B grad (dst3)", &db, lv.r, lv.out))))
        return st;
    const bool have_u = node->src[5] != NULL;
    if (have_u && ((st = view2d_f32(node, node->src[5], "u (src5)", &u)) || (st = check_dims(node, "u (src5)", &u, lv.r, lv.t))))
        return st;

    const bool need_du = tdx || tda;
    const bool need_h = tda || (tdb && !have_u);
    const bool dropout = lv.p > 0.0f && (need_h || tdx);
    const int64_t T = lv.t, in = lv.in, r = lv.r, out = lv.out;
    uint8_t *keep = NULL;
    float *h = NULL, *u_s = NULL, *du = NULL;
    const float *hp = f32(&lv.x);
    int ldh = ld_f32(&lv.x);

    if (dropout) {
        keep = malloc((size_t)T * (size_t)in);
        h = scratch_f32((size_t)T * (size_t)in);
        if (!keep || !h) {
            st = lc_error(LC_ERR_NOMEM, "cpu lora_back: no memory for the dropout of x [%lld, %lld]", (long long)in, (long long)T);
            goto done;
        }
        dropout_mask(ctx, &lv, keep, need_h ? h : NULL);
        if (need_h) {
            hp = h;
            ldh = (int)in;
        }
    }
    if (tdb) {
        const float *up = have_u ? f32(&u) : NULL;
        int ldu = have_u ? ld_f32(&u) : (int)r;
        if (!have_u) {
            u_s = scratch_f32((size_t)T * (size_t)r);
            if (!u_s) {
                st = lc_error(LC_ERR_NOMEM, "cpu lora_back: no memory for u [%lld, %lld]", (long long)r, (long long)T);
                goto done;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)r, (int)in, 1.0f, hp, ldh, f32(&lv.a),
                        ld_f32(&lv.a), 0.0f, u_s, (int)r);
            up = u_s;
        }
        /* dB[out][r] (+)= s · dy[T][out]ᵀ · u[T][r] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)r, (int)T, lv.s, f32(&dy), ld_f32(&dy), up,
                    ldu, (node->accum & 8u) ? 1.0f : 0.0f, f32(&db), ld_f32(&db));
    }
    if (need_du) {
        du = scratch_f32((size_t)T * (size_t)r);
        if (!du) {
            st = lc_error(LC_ERR_NOMEM, "cpu lora_back: no memory for du [%lld, %lld]", (long long)r, (long long)T);
            goto done;
        }
        /* du[T][r] = s · dy[T][out] · B[out][r] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)r, (int)out, lv.s, f32(&dy), ld_f32(&dy),
                    f32(&lv.b), ld_f32(&lv.b), 0.0f, du, (int)r);
    }
    if (tda) /* dA[r][in] (+)= du[T][r]ᵀ · h[T][in] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r, (int)in, (int)T, 1.0f, du, (int)r, hp, ldh,
                    (node->accum & 4u) ? 1.0f : 0.0f, f32(&da), ld_f32(&da));
    if (tdw) grad_weight(&dy, &lv.x, &dw, (node->accum & 2u) != 0);
    if (tdx) {
        st = lc_cpu_matmul_dyW(ctx, f32(&dx), ld_f32(&dx), f32(&dy), ld_f32(&dy), lv.w.data, lv.w.type, lv.w.nb1, T, out,
                               in, (node->accum & 1u) != 0);
        if (st != LC_OK) goto done;
        if (!dropout) {
            /* dx[T][in] += du[T][r] · A[r][in] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)in, (int)r, 1.0f, du, (int)r, f32(&lv.a),
                        ld_f32(&lv.a), 1.0f, f32(&dx), ld_f32(&dx));
        } else {
            float *g = h; /* h is no longer needed: reuse it for du·A */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)in, (int)r, 1.0f, du, (int)r, f32(&lv.a),
                        ld_f32(&lv.a), 0.0f, g, (int)in);
            float *dxp = f32(&dx);
            const int lddx = ld_f32(&dx);
            const float q = 1.0f - lv.p;
            int nth = n_threads_for(ctx, T * in);
#pragma omp parallel for num_threads(nth) schedule(static)
            for (int64_t t = 0; t < T; t++)
                for (int64_t i = 0; i < in; i++)
                    if (keep[t * in + i]) dxp[t * lddx + i] += g[t * in + i] / q;
        }
    }
done:
    free(keep);
    free(h);
    free(u_s);
    free(du);
    return st;
}

/* ---- lora_merge ------------------------------------------------------------------------------- */

/* LORA_MERGE (in place): src0 = dst0 w [in, out] F32/F16/BF16, src1 lora_A F32 [in, r],
 * src2 lora_B F32 [r, out]: w[i,o] += fp[0] · sum_j B[j,o] A[i,j] (W[out][in] += s·B·A in PyTorch
 * order), computed in F32 with sgemm and rounded once to nearest even into w's dtype.
 * fp[0] = +scaling merges, -scaling unmerges. Source: reference/peft-lora.md §1.7.
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE (quantized w), LC_ERR_NOMEM. */
lc_status lc_cpu_op_lora_merge(lc_cpu_ctx *ctx, const lc_node *node) {
    (void)ctx;
    mat2d w, a, b;
    lc_status st;
    const lc_tensor *tw = node->dst[0] ? node->dst[0] : node->src[0];
    if ((st = view2d(node, tw, "w (dst0)", &w)) || (st = view2d_f32(node, node->src[1], "lora_A (src1)", &a)) ||
        (st = view2d_f32(node, node->src[2], "lora_B (src2)", &b)))
        return st;
    if (w.type != LC_F32 && w.type != LC_F16 && w.type != LC_BF16)
        return lc_error(LC_ERR_DTYPE, "cpu lora_merge: w '%s' is %s; only f32, f16 and bf16 weights can be merged into",
                        tw->name, lc_dtype_name(w.type));
    const int64_t in = w.cols, out = w.rows, r = b.cols;
    if ((st = check_dims(node, "lora_A (src1)", &a, in, r)) || (st = check_dims(node, "lora_B (src2)", &b, r, out)))
        return st;
    const float s = node->fp[0];
    if (w.type == LC_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)r, s, f32(&b), ld_f32(&b), f32(&a),
                    ld_f32(&a), 1.0f, f32(&w), ld_f32(&w));
        return LC_OK;
    }
    int64_t tr = tile_rows(in);
    if (tr > out) tr = out;
    float *tile = scratch_f32((size_t)tr * (size_t)in);
    if (!tile) return lc_error(LC_ERR_NOMEM, "cpu lora_merge: no memory for a %lld x %lld tile", (long long)tr, (long long)in);
    for (int64_t o0 = 0; o0 < out && st == LC_OK; o0 += tr) {
        int64_t nt = out - o0 < tr ? out - o0 : tr;
        st = dequant_tile(ctx, tile, w.data, w.type, w.nb1, o0, nt, in);
        if (st != LC_OK) break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nt, (int)in, (int)r, s, f32(&b) + o0 * ld_f32(&b),
                    ld_f32(&b), f32(&a), ld_f32(&a), 1.0f, tile, (int)in);
        const bool half = w.type == LC_F16;
        for (int64_t o = 0; o < nt; o++) { /* serial */
            uint16_t *row = (uint16_t *)((char *)w.data + (size_t)(o0 + o) * w.nb1);
            const float *src = tile + o * in;
            for (int64_t i = 0; i < in; i++) row[i] = half ? lc_fp32_to_fp16(src[i]) : lc_fp32_to_bf16(src[i]);
        }
    }
    free(tile);
    return st;
}
