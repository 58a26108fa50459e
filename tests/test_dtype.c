/* Tests of the dtype layer (core/src/dtype.c, lorac/dtype.h): the info table, row sizes, fp16 /
 * bf16 conversion, dequantisation against golden vectors from an independent implementation
 * (gguf-py's numpy quantisers, tests/fixtures/quant_golden.bin made by
 * tests/tools/make_quant_fixture.py, whose header documents the file layout), the reference
 * quantisers (bytes equal to gguf's for Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/F16/BF16, round-trip error
 * bounds for all), hand-built Q4_1/Q5_0/Q5_1/Q5_K blocks checked against formats.md §2, and the
 * errors for bad input.
 */
#include <check.h>

#include "common/lt_suite.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/dtype.h"

#ifndef LORAC_FIXTURE_DIR
#error "LORAC_FIXTURE_DIR must name tests/fixtures"
#endif

/* ---- helpers ------------------------------------------------------------------------------ */

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Same value: identical bits, or both NaN. */
static int same_float(float a, float b) { return (isnan(a) && isnan(b)) || bits_of(a) == bits_of(b); }

static int half_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x03ffu) != 0; }
static int bf16_is_nan(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x007fu) != 0; }

/* Deterministic uniform (0,1) and standard normal draws (xorshift64* + Box-Muller). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return ((double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) + 0.5) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand()); }

/* ---- fixture ------------------------------------------------------------------------------ */

enum { REC_DEQUANT = 0, REC_QUANTIZE = 1, LABEL_LEN = 32 };

typedef struct {
    uint32_t kind, dtype, ne0, ne1, nbytes;
    char label[LABEL_LEN + 1];
    const uint8_t *raw;   /* nbytes */
    const uint8_t *f32;   /* ne0*ne1 little-endian floats (may be unaligned) */
} golden_record;

static uint8_t *fixture_data;
static golden_record fixture_recs[64];
static int fixture_count = -1; /* -1: not loaded; on a load error fixture_error says why */
static char fixture_error[256];

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float rd_f32(const uint8_t *p) { return float_of(rd_u32(p)); }

static void load_fixture(void) {
    if (fixture_count >= 0 || fixture_error[0]) return;
    const char *path = LORAC_FIXTURE_DIR "/quant_golden.bin";
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(fixture_error, sizeof fixture_error, "cannot open %s", path);
        return;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    fixture_data = malloc(size > 0 ? (size_t)size : 1);
    size_t got = fixture_data ? fread(fixture_data, 1, (size_t)size, f) : 0;
    fclose(f);
    if (size < 12 || got != (size_t)size || memcmp(fixture_data, "LCQG", 4) != 0 ||
        rd_u32(fixture_data + 4) != 1) {
        snprintf(fixture_error, sizeof fixture_error, "%s: bad magic/version or short read", path);
        return;
    }
    uint32_t n = rd_u32(fixture_data + 8);
    size_t off = 12;
    for (uint32_t i = 0; i < n; i++) {
        if (i >= sizeof fixture_recs / sizeof fixture_recs[0] || off + 20 + LABEL_LEN > (size_t)size) {
            snprintf(fixture_error, sizeof fixture_error, "%s: record %u header past the end", path, i);
            return;
        }
        golden_record *r = &fixture_recs[i];
        const uint8_t *p = fixture_data + off;
        r->kind = rd_u32(p);
        r->dtype = rd_u32(p + 4);
        r->ne0 = rd_u32(p + 8);
        r->ne1 = rd_u32(p + 12);
        r->nbytes = rd_u32(p + 16);
        memcpy(r->label, p + 20, LABEL_LEN);
        r->label[LABEL_LEN] = '\0';
        off += 20 + LABEL_LEN;
        size_t nf = (size_t)r->ne0 * r->ne1 * 4;
        if (off + r->nbytes + nf > (size_t)size) {
            snprintf(fixture_error, sizeof fixture_error, "%s: record %u (%s) data past the end", path, i,
                     r->label);
            return;
        }
        if (r->kind == REC_DEQUANT) {
            r->raw = fixture_data + off;
            r->f32 = fixture_data + off + r->nbytes;
        } else {
            r->f32 = fixture_data + off;
            r->raw = fixture_data + off + nf;
        }
        off += r->nbytes + nf;
    }
    if (off != (size_t)size) {
        snprintf(fixture_error, sizeof fixture_error, "%s: %zu trailing bytes", path, (size_t)size - off);
        return;
    }
    fixture_count = (int)n;
}

static void require_fixture(void) {
    load_fixture();
    ck_assert_msg(fixture_count > 0, "golden fixture: %s", fixture_error);
}

/* ---- info table and row sizes -------------------------------------------------------------- */

START_TEST(test_info_table) {
    static const struct {
        int id;
        const char *name;
        int64_t block;
        size_t size;
        bool quant, is_float;
    } want[] = {
        {LC_F32, "f32", 1, 4, false, true},       {LC_F16, "f16", 1, 2, false, true},
        {LC_BF16, "bf16", 1, 2, false, true},     {LC_Q8_0, "q8_0", 32, 34, true, false},
        {LC_Q4_0, "q4_0", 32, 18, true, false},   {LC_Q4_K, "q4_K", 256, 144, true, false},
        {LC_Q6_K, "q6_K", 256, 210, true, false}, {LC_I32, "i32", 1, 4, false, false},
        {LC_Q4_1, "q4_1", 32, 20, true, false},   {LC_Q5_0, "q5_0", 32, 22, true, false},
        {LC_Q5_1, "q5_1", 32, 24, true, false},   {LC_Q5_K, "q5_K", 256, 176, true, false},
    };
    /* ids equal ggml's (formats.md §1) */
    ck_assert(LC_Q4_1 == 3 && LC_Q5_0 == 6 && LC_Q5_1 == 7 && LC_Q5_K == 13);
    int supported = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const lc_dtype_info *info = lc_dtype_get(want[i].id);
        ck_assert_ptr_nonnull(info);
        ck_assert_str_eq(info->name, want[i].name);
        ck_assert_str_eq(lc_dtype_name(want[i].id), want[i].name);
        ck_assert_int_eq(info->block_size, want[i].block);
        ck_assert_uint_eq(info->type_size, want[i].size);
        ck_assert_int_eq(info->is_quantized, want[i].quant);
        ck_assert_int_eq(info->is_float, want[i].is_float);
        ck_assert(lc_dtype_valid(want[i].id));
    }
    for (int id = -3; id < LC_DTYPE_MAX + 3; id++) supported += lc_dtype_valid(id);
    ck_assert_int_eq(supported, 12);
    /* ggml ids lorac does not support (4, 5 removed; Q8_1, Q2_K, Q3_K, Q8_K, I8, I64, MXFP4), and
     * out-of-range ids */
    const int bad[] = {-1, 4, 5, 9, 10, 11, 15, 24, 27, 39, LC_DTYPE_MAX, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_ptr_null(lc_dtype_get(bad[i]));
        ck_assert(!lc_dtype_valid(bad[i]));
        ck_assert_str_eq(lc_dtype_name(bad[i]), "unknown");
    }
}
END_TEST

START_TEST(test_row_size) {
    ck_assert_uint_eq(lc_row_size(LC_F32, 10), 40);
    ck_assert_uint_eq(lc_row_size(LC_F16, 7), 14);
    ck_assert_uint_eq(lc_row_size(LC_BF16, 3), 6);
    ck_assert_uint_eq(lc_row_size(LC_I32, 5), 20);
    ck_assert_uint_eq(lc_row_size(LC_Q8_0, 64), 68);
    ck_assert_uint_eq(lc_row_size(LC_Q4_0, 32), 18);
    ck_assert_uint_eq(lc_row_size(LC_Q4_0, 4096), 2304);
    ck_assert_uint_eq(lc_row_size(LC_Q4_K, 512), 288);
    ck_assert_uint_eq(lc_row_size(LC_Q6_K, 256), 210);
    ck_assert_uint_eq(lc_row_size(LC_Q6_K, 2048), 1680);
    ck_assert_uint_eq(lc_row_size(LC_Q4_1, 64), 40);
    ck_assert_uint_eq(lc_row_size(LC_Q5_0, 640), 440); /* gemma-3-270m attn_q rows */
    ck_assert_uint_eq(lc_row_size(LC_Q5_1, 32), 24);
    ck_assert_uint_eq(lc_row_size(LC_Q5_K, 512), 352);
    ck_assert_uint_eq(lc_row_size(LC_F32, 0), 0);
    /* not a multiple of the block, negative, unsupported, overflowing: 0 */
    ck_assert_uint_eq(lc_row_size(LC_Q8_0, 33), 0);
    ck_assert_uint_eq(lc_row_size(LC_Q4_0, 16), 0);
    ck_assert_uint_eq(lc_row_size(LC_Q4_K, 255), 0);
    ck_assert_uint_eq(lc_row_size(LC_Q6_K, 257), 0);
    ck_assert_uint_eq(lc_row_size(LC_Q5_0, 48), 0);
    ck_assert_uint_eq(lc_row_size(LC_Q5_K, 128), 0);
    ck_assert_uint_eq(lc_row_size(LC_F32, -4), 0);
    ck_assert_uint_eq(lc_row_size((lc_dtype)11, 256), 0); /* Q3_K */
    ck_assert_uint_eq(lc_row_size((lc_dtype)99, 32), 0);
    ck_assert_uint_eq(lc_row_size(LC_F32, INT64_MAX), 0);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------- */

START_TEST(test_errors) {
    float in[64] = {0}, out[64];
    uint8_t buf[256];
    lc_clear_error();
    /* unsupported dtype ids */
    ck_assert_int_eq(lc_dequantize_row((lc_dtype)9, buf, out, 32), LC_ERR_DTYPE);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "id 9"));
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "lc_dequantize_row"));
    ck_assert_int_eq(lc_quantize_row((lc_dtype)11, in, buf, 32), LC_ERR_DTYPE);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "id 11"));
    ck_assert_int_eq(lc_dequantize_row((lc_dtype)-1, buf, out, 1), LC_ERR_DTYPE);
    ck_assert_int_eq(lc_dequantize_row((lc_dtype)LC_DTYPE_MAX, buf, out, 1), LC_ERR_DTYPE);
    /* I32 holds integers: neither dequantised nor quantised */
    ck_assert_int_eq(lc_dequantize_row(LC_I32, buf, out, 4), LC_ERR_DTYPE);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "i32"));
    ck_assert_int_eq(lc_quantize_row(LC_I32, in, buf, 4), LC_ERR_DTYPE);
    /* n not a multiple of the block: the message names the dtype and n */
    ck_assert_int_eq(lc_dequantize_row(LC_Q8_0, buf, out, 33), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "q8_0"));
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "n=33"));
    ck_assert_int_eq(lc_quantize_row(LC_Q4_K, in, buf, 64), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "q4_K"));
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "n=64"));
    ck_assert_int_eq(lc_dequantize_row(LC_Q6_K, buf, out, 16), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_dequantize_row(LC_Q4_0, buf, out, 40), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_dequantize_row(LC_Q4_1, buf, out, 16), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "q4_1"));
    ck_assert_int_eq(lc_dequantize_row(LC_Q5_0, buf, out, 33), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "q5_0"));
    ck_assert_int_eq(lc_quantize_row(LC_Q5_1, in, buf, 48), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "q5_1"));
    ck_assert_int_eq(lc_quantize_row(LC_Q5_K, in, buf, 64), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "q5_K"));
    ck_assert_int_eq(lc_dequantize_row(LC_F32, buf, out, -1), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_last_status(), LC_ERR_INVALID_ARG);
    /* NULL buffers with n > 0; n == 0 is a no-op */
    ck_assert_int_eq(lc_dequantize_row(LC_F16, NULL, out, 2), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_quantize_row(LC_Q8_0, in, NULL, 32), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_dequantize_row(LC_Q4_K, NULL, NULL, 0), LC_OK);
    ck_assert_int_eq(lc_quantize_row(LC_F16, NULL, NULL, 0), LC_OK);
    /* block quantisers refuse non-finite input and scales beyond the fp16 range */
    in[5] = NAN;
    ck_assert_int_eq(lc_quantize_row(LC_Q8_0, in, buf, 32), LC_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "q8_0"));
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "element 5"));
    in[5] = INFINITY;
    ck_assert_int_eq(lc_quantize_row(LC_Q4_0, in, buf, 32), LC_ERR_NUMERIC);
    in[5] = 1e9f; /* Q8_0 d = 1e9/127 > 65504 */
    ck_assert_int_eq(lc_quantize_row(LC_Q8_0, in, buf, 32), LC_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "fp16"));
    in[5] = 1.0f;
    ck_assert_int_eq(lc_quantize_row(LC_Q8_0, in, buf, 32), LC_OK);
    /* the new block types: NaN input, d beyond fp16, and (Q4_1/Q5_1) a minimum beyond fp16 */
    const lc_dtype legacy[] = {LC_Q4_1, LC_Q5_0, LC_Q5_1};
    for (size_t i = 0; i < sizeof legacy / sizeof legacy[0]; i++) {
        const char *name = lc_dtype_name(legacy[i]);
        in[5] = NAN;
        ck_assert_int_eq(lc_quantize_row(legacy[i], in, buf, 32), LC_ERR_NUMERIC);
        ck_assert_ptr_nonnull(strstr(lc_last_error(), name));
        in[5] = -INFINITY;
        ck_assert_int_eq(lc_quantize_row(legacy[i], in, buf, 32), LC_ERR_NUMERIC);
        in[5] = 3e6f; /* d = 3e6/16 or 3e6/15 or 3e6/31, all > 65504 */
        ck_assert_int_eq(lc_quantize_row(legacy[i], in, buf, 32), LC_ERR_NUMERIC);
        ck_assert_ptr_nonnull(strstr(lc_last_error(), "fp16"));
        in[5] = 3.4e38f; /* near the float limit (Q4_1/Q5_1: max - min overflows to Inf) */
        in[6] = -3.4e38f;
        ck_assert_int_eq(lc_quantize_row(legacy[i], in, buf, 32), LC_ERR_NUMERIC);
        in[6] = 0.0f;
        in[5] = 1.0f;
        ck_assert_int_eq(lc_quantize_row(legacy[i], in, buf, 32), LC_OK);
    }
    for (int i = 0; i < 32; i++) in[i] = -70000.0f + (float)i; /* d = 31/15 fits, m = -70000 does not */
    ck_assert_int_eq(lc_quantize_row(LC_Q4_1, in, buf, 32), LC_ERR_NUMERIC);
    ck_assert_int_eq(lc_quantize_row(LC_Q5_1, in, buf, 32), LC_ERR_NUMERIC);
    ck_assert_int_eq(lc_quantize_row(LC_Q5_0, in, buf, 32), LC_OK); /* no offset: d = 70000/16 fits */
    memset(in, 0, sizeof in);
    float big[256] = {0};
    big[200] = NAN;
    ck_assert_int_eq(lc_quantize_row(LC_Q5_K, big, buf, 256), LC_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "element 200"));
    big[200] = 1.0f;
    ck_assert_int_eq(lc_quantize_row(LC_Q5_K, big, buf, 256), LC_OK);
    /* F16/BF16 carry NaN and Inf */
    in[5] = NAN;
    ck_assert_int_eq(lc_quantize_row(LC_F16, in, buf, 8), LC_OK);
    ck_assert_int_eq(lc_quantize_row(LC_BF16, in, buf, 8), LC_OK);
}
END_TEST

/* ---- fp16 --------------------------------------------------------------------------------- */

START_TEST(test_fp16_hand) {
    static const struct {
        float f;
        uint16_t h;
    } to_half[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.5f, 0x3800},
        {65504.0f, 0x7bff},                      /* largest finite */
        {65519.996f, 0x7bff},                    /* just under the midpoint to 2^16 */
        {65520.0f, 0x7c00},                      /* midpoint 65504..65536: ties to even = Inf */
        {1e6f, 0x7c00},                          /* overflow */
        {-1e6f, 0xfc00},
        {0x1p-14f, 0x0400},                      /* smallest normal */
        {0x1p-24f, 0x0001},                      /* smallest subnormal */
        {-0x1p-24f, 0x8001},
        {0x1.ff8p-15f, 0x03ff},                  /* largest subnormal 1023·2^-24 */
        {0x1p-25f, 0x0000},                      /* tie 0 | 2^-24: even is 0 */
        {0x1.000002p-25f, 0x0001},               /* just above the tie */
        {0x1.8p-24f, 0x0002},                    /* tie 1 | 2 (units of 2^-24): even is 2 */
        {0x1.4p-23f, 0x0002},                    /* 2.5 units: tie 2 | 3, even is 2 */
        {0x1p-26f, 0x0000},
        {0x1.ffcp-15f, 0x0400},                  /* tie 0x3ff | 0x400: even is 0x400 */
        {0x1.002p+0f, 0x3c00},                   /* 1 + 2^-11: tie 0x3c00 | 0x3c01 -> 0x3c00 */
        {0x1.006p+0f, 0x3c02},                   /* 1 + 3·2^-11: tie 0x3c01 | 0x3c02 -> 0x3c02 */
        {0x1.002002p+0f, 0x3c01},                /* just above a tie rounds up */
        {0.333333343f, 0x3555},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof to_half / sizeof to_half[0]; i++)
        ck_assert_msg(lc_fp32_to_fp16(to_half[i].f) == to_half[i].h, "fp32->fp16(%a) = 0x%04x, want 0x%04x",
                      (double)to_half[i].f, lc_fp32_to_fp16(to_half[i].f), to_half[i].h);
    ck_assert(half_is_nan(lc_fp32_to_fp16(NAN)));
    ck_assert(half_is_nan(lc_fp32_to_fp16(-NAN)));
    ck_assert(half_is_nan(lc_fp32_to_fp16(float_of(0x7f800001u)))); /* signalling, low payload */
    ck_assert(half_is_nan(lc_fp32_to_fp16(float_of(0xff800100u))));

    static const struct {
        uint16_t h;
        float f;
    } to_float[] = {
        {0x0000, 0.0f},          {0x3c00, 1.0f},         {0xc000, -2.0f},
        {0x7bff, 65504.0f},      {0xfbff, -65504.0f},    {0x0001, 0x1p-24f},
        {0x8001, -0x1p-24f},     {0x03ff, 0x1.ff8p-15f}, {0x0400, 0x1p-14f},
        {0x3555, 0.33325195f},   {0x7c00, INFINITY},     {0xfc00, -INFINITY},
    };
    for (size_t i = 0; i < sizeof to_float / sizeof to_float[0]; i++)
        ck_assert_msg(bits_of(lc_fp16_to_fp32(to_float[i].h)) == bits_of(to_float[i].f),
                      "fp16->fp32(0x%04x) = %a, want %a", to_float[i].h, (double)lc_fp16_to_fp32(to_float[i].h),
                      (double)to_float[i].f);
    float nz = lc_fp16_to_fp32(0x8000);
    ck_assert(nz == 0.0f && signbit(nz));
    ck_assert(isnan(lc_fp16_to_fp32(0x7e00)));
    ck_assert(isnan(lc_fp16_to_fp32(0x7c01)));
    ck_assert(isnan(lc_fp16_to_fp32(0xfe00)));
}
END_TEST

/* Every fp16 value converts exactly to fp32 and back; at every midpoint between neighbouring
 * fp16 values fp32->fp16 picks the even one, and the floats just below/above a midpoint go to
 * the lower/upper neighbour (this covers all rounding boundaries, subnormals and overflow). */
START_TEST(test_fp16_exhaustive) {
    for (uint32_t h = 0; h < 0x10000u; h++) {
        const float f = lc_fp16_to_fp32((uint16_t)h);
        if (half_is_nan((uint16_t)h)) {
            ck_assert_msg(isnan(f), "fp16 0x%04x must be NaN", h);
            ck_assert_msg(half_is_nan(lc_fp32_to_fp16(f)), "NaN 0x%04x must stay NaN", h);
            continue;
        }
        ck_assert_msg(lc_fp32_to_fp16(f) == h, "round trip of fp16 0x%04x gives 0x%04x", h, lc_fp32_to_fp16(f));
    }
    for (uint32_t sign = 0; sign <= 0x8000u; sign += 0x8000u) {
        for (uint32_t h = 0; h < 0x7c00u; h++) { /* h and h+1 are neighbours (0x7c00 is Inf) */
            const uint16_t lo = (uint16_t)(sign | h), hi = (uint16_t)(sign | (h + 1));
            float a = lc_fp16_to_fp32(lo), b = h + 1 == 0x7c00u ? (sign ? -65536.0f : 65536.0f)
                                                                 : lc_fp16_to_fp32(hi);
            const float mid = (a + b) * 0.5f; /* exact: at most 12 significant bits */
            const uint16_t even = (h & 1u) ? hi : lo;
            ck_assert_msg(lc_fp32_to_fp16(mid) == even, "midpoint %a of 0x%04x/0x%04x gives 0x%04x", (double)mid,
                          lo, hi, lc_fp32_to_fp16(mid));
            ck_assert_msg(lc_fp32_to_fp16(nextafterf(mid, 0.0f)) == lo, "just inside midpoint %a", (double)mid);
            ck_assert_msg(lc_fp32_to_fp16(nextafterf(mid, sign ? -INFINITY : INFINITY)) == hi,
                          "just outside midpoint %a", (double)mid);
        }
    }
}
END_TEST

/* ---- bf16 --------------------------------------------------------------------------------- */

START_TEST(test_bf16_hand) {
    static const struct {
        uint32_t f;
        uint16_t b;
    } to_bf16[] = {
        {0x00000000u, 0x0000}, /* 0 */
        {0x80000000u, 0x8000}, /* -0 */
        {0x3f800000u, 0x3f80}, /* 1 */
        {0x3f808000u, 0x3f80}, /* 1 + 2^-8: tie, even is 0x3f80 */
        {0x3f818000u, 0x3f82}, /* tie 0x3f81 | 0x3f82: even is 0x3f82 */
        {0x3f808001u, 0x3f81}, /* just above a tie */
        {0x3f807fffu, 0x3f80}, /* just below a tie */
        {0x7f7fffffu, 0x7f80}, /* largest float rounds to Inf */
        {0x7f7f7fffu, 0x7f7f}, /* stays finite */
        {0x7f800000u, 0x7f80}, /* Inf */
        {0xff800000u, 0xff80}, /* -Inf */
        {0x00000001u, 0x0000}, /* smallest float subnormal -> 0 */
        {0x00008000u, 0x0000}, /* subnormal tie -> even 0 */
        {0x00018000u, 0x0002}, /* subnormal tie 1 | 2 -> 2 */
        {0x007fffffu, 0x0080}, /* largest subnormal rounds up to the smallest normal */
        {0xc0490fdbu, 0xc049}, /* -pi */
    };
    for (size_t i = 0; i < sizeof to_bf16 / sizeof to_bf16[0]; i++)
        ck_assert_msg(lc_fp32_to_bf16(float_of(to_bf16[i].f)) == to_bf16[i].b, "fp32->bf16(0x%08x) = 0x%04x, want 0x%04x",
                      to_bf16[i].f, lc_fp32_to_bf16(float_of(to_bf16[i].f)), to_bf16[i].b);
    /* NaN stays NaN, including payloads that naive rounding would carry into Inf */
    const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7f80ffffu, 0xff800001u, 0x7fffffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++)
        ck_assert_msg(bf16_is_nan(lc_fp32_to_bf16(float_of(nans[i]))), "NaN 0x%08x gives 0x%04x", nans[i],
                      lc_fp32_to_bf16(float_of(nans[i])));
    ck_assert_uint_eq(lc_fp32_to_bf16(float_of(0x7fc00000u)), 0x7fc0);
    /* bf16 -> fp32 is the upper half */
    for (uint32_t b = 0; b < 0x10000u; b++) {
        const float f = lc_bf16_to_fp32((uint16_t)b);
        if (bf16_is_nan((uint16_t)b)) {
            ck_assert(isnan(f) && bf16_is_nan(lc_fp32_to_bf16(f)));
            continue;
        }
        ck_assert_uint_eq(bits_of(f), b << 16);
        ck_assert_uint_eq(lc_fp32_to_bf16(f), b);
    }
    /* every midpoint between neighbouring bf16 values (an exact f32) rounds to the even one */
    for (uint32_t b = 0; b < 0x7f80u; b++) {
        const uint32_t mid = (b << 16) | 0x8000u;
        const uint16_t even = (uint16_t)((b & 1u) ? b + 1 : b);
        ck_assert_uint_eq(lc_fp32_to_bf16(float_of(mid)), even);
        ck_assert_uint_eq(lc_fp32_to_bf16(float_of(mid | 0x80000000u)), even | 0x8000u);
        ck_assert_uint_eq(lc_fp32_to_bf16(float_of(mid - 1)), b);
        ck_assert_uint_eq(lc_fp32_to_bf16(float_of(mid + 1)), b + 1);
    }
}
END_TEST

/* ---- hand-built blocks (formats.md §2) ---------------------------------------------------- */

/* Q4_1, Q5_0, Q5_1 and Q5_K blocks with chosen fields, dequantised and compared with the
 * formulas of formats.md §2 written out here (all values are exact in float). */
START_TEST(test_hand_blocks) {
    float y[256];
    /* Q4_1: d = 0.5, m = -1; element j < 16 is the low nibble of qs[j], j + 16 the high one */
    uint8_t q41[20] = {0x00, 0x38, 0x00, 0xbc};
    for (int j = 0; j < 16; j++) q41[4 + j] = (uint8_t)(j | ((15 - j) << 4));
    ck_assert_int_eq(lc_dequantize_row(LC_Q4_1, q41, y, 32), LC_OK);
    for (int j = 0; j < 16; j++) {
        ck_assert(y[j] == (float)j * 0.5f - 1.0f);
        ck_assert(y[j + 16] == (float)(15 - j) * 0.5f - 1.0f);
    }
    /* Q5_0 / Q5_1: qh = 0x80010002 (little-endian) sets the fifth bit of elements 1, 16, 31 */
    const uint32_t qh = 0x80010002u;
    uint8_t q50[22] = {0x00, 0x34}, q51[24] = {0x00, 0x34, 0x00, 0x40}; /* d = 0.25; Q5_1 m = 2 */
    for (int k = 0; k < 4; k++) q50[2 + k] = q51[4 + k] = (uint8_t)(qh >> (8 * k));
    for (int j = 0; j < 16; j++) q50[6 + j] = q51[8 + j] = (uint8_t)((j * 3 % 16) | ((j * 5 % 16) << 4));
    float y1[32];
    ck_assert_int_eq(lc_dequantize_row(LC_Q5_0, q50, y, 32), LC_OK);
    ck_assert_int_eq(lc_dequantize_row(LC_Q5_1, q51, y1, 32), LC_OK);
    for (int e = 0; e < 32; e++) {
        const int nib = e < 16 ? e * 3 % 16 : (e - 16) * 5 % 16;
        const int v = nib | (int)((qh >> e) & 1u) << 4;
        ck_assert_msg(y[e] == (float)(v - 16) * 0.25f, "q5_0 elem %d: %g", e, (double)y[e]);
        ck_assert_msg(y1[e] == (float)v * 0.25f + 2.0f, "q5_1 elem %d: %g", e, (double)y1[e]);
    }
    ck_assert(y[1] == 0.75f && y[31] == 2.75f); /* (3 | 16) - 16 and (11 | 16) - 16, times 0.25 */
    /* Q5_K: d = 1, dmin = 0.5, sub-block k has scale k + 1 and min k; qh[l] bit k is the fifth
     * bit of element l of sub-block k */
    uint8_t q5k[176] = {0x00, 0x3c, 0x00, 0x38};
    uint8_t *sc = q5k + 4, *qhk = q5k + 16, *qs = q5k + 48;
    for (int k = 0; k < 4; k++) {
        sc[k] = (uint8_t)(k + 1);                                 /* scales 1..4 */
        sc[k + 4] = (uint8_t)k;                                   /* mins 0..3 */
        sc[k + 8] = (uint8_t)(((k + 5) & 15) | (((k + 4) & 15) << 4)); /* scales 5..8, mins 4..7 */
    }
    for (int l = 0; l < 32; l++) qhk[l] = (uint8_t)(l * 37 + 11);
    for (int i = 0; i < 128; i++) qs[i] = (uint8_t)(i * 11 + 3);
    ck_assert_int_eq(lc_dequantize_row(LC_Q5_K, q5k, y, 256), LC_OK);
    for (int e = 0; e < 256; e++) {
        const int c = e / 64, hi = (e % 64) / 32, l = e % 32, k = 2 * c + hi;
        const int nib = hi ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
        const int v = nib | ((qhk[l] >> k) & 1) << 4;
        ck_assert_msg(y[e] == (float)((k + 1) * v) - 0.5f * (float)k, "q5_K elem %d: %g", e, (double)y[e]);
    }
}
END_TEST

/* ---- golden vectors ----------------------------------------------------------------------- */

/* lc_dequantize_row agrees bit for bit with gguf.quants.dequantize, row by row and over the
 * whole tensor in one call, for every type in the fixture. */
START_TEST(test_golden_dequant) {
    require_fixture();
    int seen[LC_DTYPE_MAX] = {0};
    for (int ri = 0; ri < fixture_count; ri++) {
        const golden_record *r = &fixture_recs[ri];
        if (r->kind != REC_DEQUANT) continue;
        const lc_dtype dt = (lc_dtype)r->dtype;
        ck_assert_msg(lc_dtype_valid((int)dt), "%s: dtype %u", r->label, r->dtype);
        const size_t rs = lc_row_size(dt, r->ne0);
        ck_assert_msg(rs * r->ne1 == r->nbytes, "%s: row size %zu x %u != %u bytes", r->label, rs, r->ne1, r->nbytes);
        const size_t n = (size_t)r->ne0 * r->ne1;
        float *out = malloc(n * sizeof *out), *whole = malloc(n * sizeof *whole);
        ck_assert(out && whole);
        for (uint32_t row = 0; row < r->ne1; row++)
            ck_assert_int_eq(lc_dequantize_row(dt, r->raw + row * rs, out + (size_t)row * r->ne0, r->ne0), LC_OK);
        ck_assert_int_eq(lc_dequantize_row(dt, r->raw, whole, (int64_t)n), LC_OK);
        for (size_t i = 0; i < n; i++) {
            const float want = rd_f32(r->f32 + 4 * i);
            ck_assert_msg(same_float(out[i], want), "%s: row %zu elem %zu: got %a (0x%08x), gguf %a (0x%08x)",
                          r->label, i / r->ne0, i % r->ne0, (double)out[i], bits_of(out[i]), (double)want,
                          bits_of(want));
            ck_assert_msg(same_float(whole[i], want), "%s: whole-tensor call differs at %zu", r->label, i);
        }
        free(out);
        free(whole);
        seen[dt]++;
    }
    const lc_dtype need[] = {LC_Q8_0, LC_Q4_0, LC_Q4_1, LC_Q5_0, LC_Q5_1, LC_Q4_K, LC_Q5_K, LC_Q6_K, LC_F16, LC_BF16};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        ck_assert_msg(seen[need[i]] > 0, "fixture lacks a dequant record for %s", lc_dtype_name(need[i]));
}
END_TEST

/* lc_quantize_row gives gguf.quants.quantize's bytes (ggml's reference quantisers) for Q8_0,
 * Q4_0, Q4_1, Q5_0, Q5_1, F16 and BF16; a NaN input only has to stay a NaN. */
START_TEST(test_golden_quantize) {
    require_fixture();
    int seen[LC_DTYPE_MAX] = {0};
    for (int ri = 0; ri < fixture_count; ri++) {
        const golden_record *r = &fixture_recs[ri];
        if (r->kind != REC_QUANTIZE) continue;
        const lc_dtype dt = (lc_dtype)r->dtype;
        const size_t n = (size_t)r->ne0 * r->ne1, rs = lc_row_size(dt, r->ne0);
        ck_assert_msg(rs * r->ne1 == r->nbytes, "%s: byte count", r->label);
        float *x = malloc(n * sizeof *x);
        uint8_t *q = malloc(r->nbytes), *qrow = malloc(r->nbytes);
        ck_assert(x && q && qrow);
        for (size_t i = 0; i < n; i++) x[i] = rd_f32(r->f32 + 4 * i);
        ck_assert_int_eq(lc_quantize_row(dt, x, q, (int64_t)n), LC_OK);
        for (uint32_t row = 0; row < r->ne1; row++)
            ck_assert_int_eq(lc_quantize_row(dt, x + (size_t)row * r->ne0, qrow + row * rs, r->ne0), LC_OK);
        ck_assert_msg(memcmp(q, qrow, r->nbytes) == 0, "%s: per-row and whole calls differ", r->label);
        const bool half = dt == LC_F16 || dt == LC_BF16;
        for (size_t b = 0; b < r->nbytes; b++) {
            if (half && isnan(x[b / 2])) {
                uint16_t got;
                memcpy(&got, q + (b & ~(size_t)1), 2);
                ck_assert_msg(dt == LC_F16 ? half_is_nan(got) : bf16_is_nan(got), "%s: NaN at %zu became 0x%04x",
                              r->label, b / 2, got);
                continue;
            }
            ck_assert_msg(q[b] == r->raw[b], "%s: row %zu, byte %zu of the row = 0x%02x, gguf 0x%02x", r->label,
                          b / rs, b % rs, q[b], r->raw[b]);
        }
        free(x);
        free(q);
        free(qrow);
        seen[dt]++;
    }
    const lc_dtype need[] = {LC_Q8_0, LC_Q4_0, LC_Q4_1, LC_Q5_0, LC_Q5_1, LC_F16, LC_BF16};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        ck_assert_msg(seen[need[i]] > 0, "fixture lacks a quantize record for %s", lc_dtype_name(need[i]));
}
END_TEST

/* ---- round trips -------------------------------------------------------------------------- */

enum { RT_N = 4096 }; /* 16 K-quant super-blocks, 128 Q8_0/Q4_0 blocks */

/* Input pattern p (0..7) of RT_N values at magnitude `scale`. */
static void fill_pattern(float *x, int p, float scale) {
    for (int i = 0; i < RT_N; i++) {
        double v;
        switch (p) {
        case 0: v = nrand(); break;                                  /* Gaussian */
        case 1: v = 2.0 * urand() - 1.0; break;                      /* uniform */
        case 2: v = (urand() < 0.5 ? -1 : 1) * log(urand()); break;   /* Laplace: heavy tails */
        case 3: v = nrand() * (i % 97 == 0 ? 30.0 : 1.0); break;     /* outliers */
        case 4: v = 0.5 + urand(); break;                            /* all positive */
        case 5: v = -0.5 - urand(); break;                           /* all negative */
        case 6: v = nrand() * exp2((double)(i / 256 % 8) * 2.0 - 8.0); break; /* blocks of varied scale */
        default: v = 0.25 * nrand() + (i / 32 % 2 ? 3.0 : -3.0); break;       /* offset sub-blocks */
        }
        x[i] = (float)(v * scale);
    }
}

/* Round trip of RT_N values through `dt`. Returns the NMSE (sum err^2 / sum x^2) and stores in
 * *excess the worst block ratio max|err| / (max_rel·amax + slack), which must stay <= 1, and in
 * *worst_rel the worst block max|err| / amax. */
static double roundtrip(lc_dtype dt, const float *x, float *y, double max_rel, double slack, double *excess,
                        double *worst_rel) {
    static uint8_t q[RT_N * 2];
    ck_assert_int_eq(lc_quantize_row(dt, x, q, RT_N), LC_OK);
    ck_assert_int_eq(lc_dequantize_row(dt, q, y, RT_N), LC_OK);
    const int64_t bs = lc_dtype_get((int)dt)->block_size;
    double se = 0, sx = 0;
    *excess = *worst_rel = 0;
    for (int64_t b = 0; b < RT_N / bs; b++) {
        double amax = 0, emax = 0;
        for (int64_t i = b * bs; i < (b + 1) * bs; i++) {
            ck_assert_msg(isfinite(y[i]), "%s: non-finite output at %lld", lc_dtype_name(dt), (long long)i);
            const double e = (double)y[i] - (double)x[i];
            se += e * e;
            sx += (double)x[i] * x[i];
            amax = fmax(amax, fabs((double)x[i]));
            emax = fmax(emax, fabs(e));
        }
        *excess = fmax(*excess, emax / (max_rel * amax + slack));
        if (amax > 0) *worst_rel = fmax(*worst_rel, emax / amax);
    }
    return sx > 0 ? se / sx : 0;
}

/* Per dtype, every block's max |err| stays within max_rel·amax + slack, and the NMSE within a
 * bound, over 8 input patterns at magnitudes from 250 down to 1e-7.
 * Q8_0, Q4_0 and Q5_0 bounds are derived: rounding to the grid costs d/2 (Q4_0/Q5_0: the clamped
 * +8/+16 end of the grid costs d), the fp16 rounding of d costs |q|·|d|·2^-11, or |q|·2^-25
 * absolute once d is an fp16 subnormal (slack 127·2^-25, 8·2^-25 and 16·2^-25). Q4_1/Q5_1 too:
 * d = range/nmax <= 2·amax/nmax, so rounding costs amax/nmax; the fp16 rounding of d costs
 * nmax·d·2^-11 <= 2·amax·2^-11 and that of m at most amax·2^-11 (bound 1/nmax + 2^-9); once
 * subnormal, (nmax + 1)·2^-25 absolute. The K-quant bounds are empirical with a
 * margin (observed: Q4_K 0.098·amax, NMSE 9.4e-3; Q6_K 0.018·amax, NMSE 1.2e-3; below the fp16
 * normal range of d at most 7 (Q4_K) and 16 (Q6_K) units of 2^-24 beyond that; Q5_K over 100
 * random repetitions of these patterns: 0.063·amax, NMSE 2.8e-3, Gaussian 1.4e-3, block errors
 * at most 0.79 of the bound). The Q5_0/Q4_1/Q5_1 NMSE bounds are the worst of those 100
 * repetitions (9.0e-3, 1.55e-2, 3.0e-3; Gaussian 2.0e-3, 6.5e-3, 1.55e-3) plus about 30%. A K-quant that
 * flushed a tiny block's d to 0 would miss the slack by orders of magnitude. */
START_TEST(test_roundtrip_bounds) {
    static const struct {
        lc_dtype dt;
        double max_rel, slack_ulp24, nmse, nmse_gauss;
    } cases[] = {
        {LC_Q8_0, 0.5 / 127 + 0x1p-11 * 1.01, 64, 2e-4, 5e-5},
        {LC_Q4_0, 1.0 / 8 + 0x1p-10, 4, 2.5e-2, 1e-2},
        {LC_Q4_K, 0.15, 16, 1.4e-2, 6e-3},
        {LC_Q6_K, 0.03, 32, 1.8e-3, 4e-4},
        {LC_Q5_0, 1.0 / 16 + 0x1p-10, 8, 1.2e-2, 2.6e-3},
        {LC_Q4_1, 1.0 / 15 + 0x1p-9, 8, 2e-2, 8e-3},
        {LC_Q5_1, 1.0 / 31 + 0x1p-9, 16, 4e-3, 2e-3},
        {LC_Q5_K, 0.08, 32, 3.6e-3, 1.8e-3},
    };
    static float x[RT_N], y[RT_N];
    const float scales[] = {1.0f, 250.0f, 0.02f, 2e-3f, 1e-5f, 1e-7f};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *name = lc_dtype_name(cases[c].dt);
        double worst_rel = 0, worst_nmse = 0;
        for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
            for (int p = 0; p < 8; p++) {
                double excess, rel;
                fill_pattern(x, p, scales[k]);
                const double nmse = roundtrip(cases[c].dt, x, y, cases[c].max_rel, cases[c].slack_ulp24 * 0x1p-24,
                                              &excess, &rel);
                ck_assert_msg(excess <= 1.0, "%s pattern %d scale %g: block error %.3f x the bound", name, p,
                              (double)scales[k], excess);
                if (scales[k] < 0.02f) continue; /* NMSE: only where the fp16 scales are normal */
                ck_assert_msg(nmse <= cases[c].nmse, "%s pattern %d scale %g: NMSE %.3e > %.3e", name, p,
                              (double)scales[k], nmse, cases[c].nmse);
                if (p == 0)
                    ck_assert_msg(nmse <= cases[c].nmse_gauss, "%s Gaussian scale %g: NMSE %.3e > %.3e", name,
                                  (double)scales[k], nmse, cases[c].nmse_gauss);
                worst_rel = fmax(worst_rel, rel);
                worst_nmse = fmax(worst_nmse, nmse);
            }
        }
        fprintf(stderr, "dtype round trip %-5s (magnitudes >= 0.02): worst block max|err|/amax %.5f, worst NMSE %.3e\n",
                name, worst_rel, worst_nmse);
    }
    /* Gaussian NMSE ordering: more bits, less error */
    double ex, rel;
    fill_pattern(x, 0, 1.0f);
    const double e8 = roundtrip(LC_Q8_0, x, y, 1, 1, &ex, &rel), e6 = roundtrip(LC_Q6_K, x, y, 1, 1, &ex, &rel);
    const double e4k = roundtrip(LC_Q4_K, x, y, 1, 1, &ex, &rel), e4 = roundtrip(LC_Q4_0, x, y, 1, 1, &ex, &rel);
    const double e5k = roundtrip(LC_Q5_K, x, y, 1, 1, &ex, &rel), e50 = roundtrip(LC_Q5_0, x, y, 1, 1, &ex, &rel);
    const double e51 = roundtrip(LC_Q5_1, x, y, 1, 1, &ex, &rel), e41 = roundtrip(LC_Q4_1, x, y, 1, 1, &ex, &rel);
    fprintf(stderr, "dtype Gaussian NMSE: q8_0 %.3e q6_K %.3e q5_K %.3e q5_1 %.3e q5_0 %.3e q4_K %.3e q4_1 %.3e q4_0 %.3e\n",
            e8, e6, e5k, e51, e50, e4k, e41, e4);
    ck_assert_msg(e8 < e6 && e6 < e4k && e4k < e4, "NMSE q8_0 %.3e q6_K %.3e q4_K %.3e q4_0 %.3e", e8, e6, e4k, e4);
    ck_assert_msg(e6 < e5k && e5k < e50 && e51 < e50 && e50 < e4k, "NMSE q6_K %.3e q5_K %.3e q5_1 %.3e q5_0 %.3e q4_K %.3e",
                  e6, e5k, e51, e50, e4k);
    ck_assert_msg(e51 < e41 && e41 < e4 && e50 < e4, "NMSE q5_1 %.3e q4_1 %.3e q5_0 %.3e q4_0 %.3e", e51, e41, e50, e4);
    /* F16 / BF16: relative error at most half an ulp (normal range) */
    uint16_t h[RT_N];
    ck_assert_int_eq(lc_quantize_row(LC_F16, x, h, RT_N), LC_OK);
    ck_assert_int_eq(lc_dequantize_row(LC_F16, h, y, RT_N), LC_OK);
    for (int i = 0; i < RT_N; i++)
        if (fabsf(x[i]) >= 0x1p-14f) ck_assert(fabs((double)y[i] - x[i]) <= fabs((double)x[i]) * 0x1p-11);
    ck_assert_int_eq(lc_quantize_row(LC_BF16, x, h, RT_N), LC_OK);
    ck_assert_int_eq(lc_dequantize_row(LC_BF16, h, y, RT_N), LC_OK);
    for (int i = 0; i < RT_N; i++) ck_assert(fabs((double)y[i] - x[i]) <= fabs((double)x[i]) * 0x1p-8);
    /* F32 is a copy */
    ck_assert_int_eq(lc_quantize_row(LC_F32, x, y, RT_N), LC_OK);
    ck_assert(memcmp(x, y, sizeof x) == 0);
}
END_TEST

/* Exact cases: zeros give zeros; values already on the Q8_0/Q4_0/Q5_0/Q4_1/Q5_1 grid come back
 * exactly, and re-quantising a dequantised Q8_0/Q4_0/Q5_0 row reproduces it; every quantiser is
 * deterministic. */
START_TEST(test_roundtrip_exact) {
    static float x[RT_N], y[RT_N], z[RT_N];
    static uint8_t q[RT_N * 2], q2[RT_N * 2];
    const lc_dtype all[] = {LC_Q8_0, LC_Q4_0, LC_Q4_1, LC_Q5_0, LC_Q5_1, LC_Q4_K, LC_Q5_K, LC_Q6_K, LC_F16, LC_BF16};
    for (size_t c = 0; c < sizeof all / sizeof all[0]; c++) {
        memset(x, 0, sizeof x);
        ck_assert_int_eq(lc_quantize_row(all[c], x, q, RT_N), LC_OK);
        ck_assert_int_eq(lc_dequantize_row(all[c], q, y, RT_N), LC_OK);
        for (int i = 0; i < RT_N; i++)
            ck_assert_msg(y[i] == 0.0f, "%s: zero input gave %a at %d", lc_dtype_name(all[c]), (double)y[i], i);
        /* constant blocks: K-quants must reproduce a constant closely */
        for (int i = 0; i < RT_N; i++) x[i] = (float)(i / 256) * 0.37f - 2.0f;
        ck_assert_int_eq(lc_quantize_row(all[c], x, q, RT_N), LC_OK);
        ck_assert_int_eq(lc_dequantize_row(all[c], q, y, RT_N), LC_OK);
        for (int i = 0; i < RT_N; i++)
            ck_assert_msg(fabsf(y[i] - x[i]) <= fabsf(x[i]) * 0x1p-7f, "%s: constant %a gave %a",
                          lc_dtype_name(all[c]), (double)x[i], (double)y[i]);
        /* deterministic */
        fill_pattern(x, 2, 1.0f);
        const size_t bytes = lc_row_size(all[c], RT_N);
        ck_assert_int_eq(lc_quantize_row(all[c], x, q, RT_N), LC_OK);
        ck_assert_int_eq(lc_quantize_row(all[c], x, q2, RT_N), LC_OK);
        ck_assert(memcmp(q, q2, bytes) == 0);
    }
    /* on-grid values: Q8_0 integers with amax 127, Q4_0 integers -8..7 with max -8 */
    for (int i = 0; i < RT_N; i++) x[i] = (float)((i * 37) % 255 - 127);
    for (int b = 0; b < RT_N / 32; b++) x[32 * b + (b % 32)] = (b & 1) ? 127.0f : -127.0f;
    ck_assert_int_eq(lc_quantize_row(LC_Q8_0, x, q, RT_N), LC_OK);
    ck_assert_int_eq(lc_dequantize_row(LC_Q8_0, q, y, RT_N), LC_OK);
    ck_assert(memcmp(x, y, sizeof x) == 0);
    for (int i = 0; i < RT_N; i++) x[i] = (float)((i * 7) % 16 - 8);
    for (int b = 0; b < RT_N / 32; b++) x[32 * b + (b % 32)] = -8.0f;
    ck_assert_int_eq(lc_quantize_row(LC_Q4_0, x, q, RT_N), LC_OK);
    ck_assert_int_eq(lc_dequantize_row(LC_Q4_0, q, y, RT_N), LC_OK);
    ck_assert(memcmp(x, y, sizeof x) == 0);
    /* Q5_0: integers -16..15 with max -16 (d = 1) */
    for (int i = 0; i < RT_N; i++) x[i] = (float)((i * 7) % 32 - 16);
    for (int b = 0; b < RT_N / 32; b++) x[32 * b + (b % 32)] = -16.0f;
    ck_assert_int_eq(lc_quantize_row(LC_Q5_0, x, q, RT_N), LC_OK);
    ck_assert_int_eq(lc_dequantize_row(LC_Q5_0, q, y, RT_N), LC_OK);
    ck_assert(memcmp(x, y, sizeof x) == 0);
    /* Q4_1 / Q5_1: integers off + 0..nmax with both ends in every block (m = off, d = 1) */
    const struct { lc_dtype dt; int nmax; } mm[] = {{LC_Q4_1, 15}, {LC_Q5_1, 31}};
    for (size_t c = 0; c < 2; c++) {
        for (int i = 0; i < RT_N; i++) {
            const int b = i / 32, off = b % 9 - 5, j = i % 32;
            int l = (j * 11 + b) % (mm[c].nmax + 1);
            if (j == b % 32) l = 0;
            if (j == (b + 5) % 32) l = mm[c].nmax;
            x[i] = (float)(off + l);
        }
        ck_assert_int_eq(lc_quantize_row(mm[c].dt, x, q, RT_N), LC_OK);
        ck_assert_int_eq(lc_dequantize_row(mm[c].dt, q, y, RT_N), LC_OK);
        ck_assert_msg(memcmp(x, y, sizeof x) == 0, "%s: on-grid values changed", lc_dtype_name(mm[c].dt));
    }
    /* float-subnormal blocks (1/d overflows to Inf) and blocks near the float limit quantise
     * without undefined conversions (the UBSan build checks that) to finite values */
    const lc_dtype blockq[] = {LC_Q8_0, LC_Q4_0, LC_Q4_1, LC_Q5_0, LC_Q5_1, LC_Q4_K, LC_Q5_K, LC_Q6_K};
    for (size_t c = 0; c < sizeof blockq / sizeof blockq[0]; c++) {
        for (int i = 0; i < 256; i++) x[i] = (float)((i % 5) - 2) * 1e-40f;
        ck_assert_int_eq(lc_quantize_row(blockq[c], x, q, 256), LC_OK);
        ck_assert_int_eq(lc_dequantize_row(blockq[c], q, y, 256), LC_OK);
        for (int i = 0; i < 256; i++)
            ck_assert_msg(fabsf(y[i] - x[i]) <= 0x1p-24f, "%s: subnormal input %a gave %a", lc_dtype_name(blockq[c]),
                          (double)x[i], (double)y[i]);
    }
    /* idempotence of the Q8_0 / Q4_0 / Q5_0 grids */
    const lc_dtype grid[] = {LC_Q8_0, LC_Q4_0, LC_Q5_0};
    for (size_t c = 0; c < sizeof grid / sizeof grid[0]; c++) {
        fill_pattern(x, 0, 3.0f);
        ck_assert_int_eq(lc_quantize_row(grid[c], x, q, RT_N), LC_OK);
        ck_assert_int_eq(lc_dequantize_row(grid[c], q, y, RT_N), LC_OK);
        ck_assert_int_eq(lc_quantize_row(grid[c], y, q2, RT_N), LC_OK);
        ck_assert_int_eq(lc_dequantize_row(grid[c], q2, z, RT_N), LC_OK);
        ck_assert_msg(memcmp(y, z, sizeof y) == 0, "%s: re-quantising is not idempotent", lc_dtype_name(grid[c]));
    }
}
END_TEST

/* ---- suite -------------------------------------------------------------------------------- */

static Suite *dtype_suite(void) {
    Suite *s = suite_create("dtype");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_info_table);
    tcase_add_test(tc, test_row_size);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("half");
    tcase_add_test(tc, test_fp16_hand);
    tcase_add_test(tc, test_fp16_exhaustive);
    tcase_add_test(tc, test_bf16_hand);
    suite_add_tcase(s, tc);
    tc = tcase_create("golden");
    tcase_add_unchecked_fixture(tc, load_fixture, NULL);
    tcase_add_test(tc, test_hand_blocks);
    tcase_add_test(tc, test_golden_dequant);
    tcase_add_test(tc, test_golden_quantize);
    suite_add_tcase(s, tc);
    tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_roundtrip_bounds);
    tcase_add_test(tc, test_roundtrip_exact);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(dtype_suite());
    free(fixture_data);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
