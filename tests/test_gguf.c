/* lorac tests — suite "gguf": the GGUF v3 reader and writer (core/src/gguf.c).
 *
 * Expected values come from outside the code under test: GGUF images written byte by byte here
 * (bb_* helpers, following reference/formats.md §1), and tests/fixtures/gguf_fixture.gguf made
 * by the PyPI gguf package (tests/tools/make_gguf_fixture.py, whose docstring lists its contents).
 * Bad input (every truncation length, hundreds of seeded header mutations, one crafted file per
 * reader check) must give a clean error status with a message naming the file and offset, and
 * no crash or leak; run under -DLORAC_SANITIZE=ON to check the latter.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lorac/lorac.h"
#include "lorac/gguf.h"
#include "common/lt_util.h"
#include "common/lt_suite.h"

#ifndef LORAC_FIXTURE_DIR
#define LORAC_FIXTURE_DIR "tests/fixtures"
#endif
#define FIXTURE LORAC_FIXTURE_DIR "/gguf_fixture.gguf"

/* ---- a byte builder for hand-written GGUF images ------------------------------------------ */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_put(bb *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u32(bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_i32(bb *b, int32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_i64(bb *b, int64_t v) { bb_put(b, &v, 8); }
static void bb_f32(bb *b, float v) { bb_put(b, &v, 4); }
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_header(bb *b, uint32_t version, int64_t n_tensors, int64_t n_kv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_i64(b, n_tensors);
    bb_i64(b, n_kv);
}
static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_i32(b, LC_GGUF_UINT32);
    bb_u32(b, v);
}
static void bb_kv_str(bb *b, const char *key, const char *v) {
    bb_str(b, key);
    bb_i32(b, LC_GGUF_STRING);
    bb_str(b, v);
}
static void bb_tensor(bb *b, const char *name, uint32_t n_dims, const int64_t *ne, int32_t type, uint64_t offset) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) bb_i64(b, ne[i]);
    bb_i32(b, type);
    bb_u64(b, offset);
}
static void bb_pad(bb *b, size_t align) {
    while (b->n % align) bb_u8(b, 0);
}
static void bb_fill(bb *b, size_t n, uint8_t start) {
    for (size_t i = 0; i < n; i++) bb_u8(b, (uint8_t)(start + i));
}

/* Copy of the first n bytes in an exactly sized heap block, so ASan sees any read past n. */
static uint8_t *exact_copy(const void *src, size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    if (n) memcpy(p, src, n);
    return p;
}

/* open_memory of an exact copy must fail with `want` and a message containing `needle`. */
static void expect_fail(const bb *b, lc_status want, const char *needle, const char *what) {
    uint8_t *p = exact_copy(b->p, b->n);
    lc_gguf *f = (lc_gguf *)0x1;
    lc_clear_error();
    lc_status st = lc_gguf_open_memory(p, b->n, what, &f);
    const char *msg = lc_last_error();
    lt_log("  [%s] -> %s: %s\n", what, lc_status_str(st), msg);
    ck_assert_msg(st == want, "%s: status %s, expected %s (%s)", what, lc_status_str(st), lc_status_str(want), msg);
    ck_assert_msg(f == NULL, "%s: *out not NULL on failure", what);
    ck_assert_msg(strstr(msg, what) != NULL, "%s: message does not name the file: %s", what, msg);
    ck_assert_msg(strstr(msg, "offset") != NULL, "%s: message does not give an offset: %s", what, msg);
    ck_assert_msg(strstr(msg, needle) != NULL, "%s: message lacks '%s': %s", what, needle, msg);
    free(p);
}

static lc_gguf *open_ok(const bb *b, const char *what) {
    lc_gguf *f = NULL;
    lc_status st = lc_gguf_open_memory(b->p, b->n, what, &f);
    ck_assert_msg(st == LC_OK, "%s: %s", what, lc_last_error());
    return f;
}

/* ---- hand-written images ------------------------------------------------------------------ */

/* A valid image: 2 kvs (string, u32), tensors "w" F32 ne=[3,2] (bytes 0..23) and "ids" I32 ne=[5]
 * (bytes 100..119) at the default alignment 32. */
static void build_small(bb *b, uint32_t version) {
    bb_header(b, version, 2, 2);
    bb_kv_str(b, "general.name", "hand");
    bb_kv_u32(b, "test.n", 77);
    int64_t ne_w[2] = {3, 2}, ne_ids[1] = {5};
    bb_tensor(b, "w", 2, ne_w, 0, 0);
    bb_tensor(b, "ids", 1, ne_ids, 26, 32);
    bb_pad(b, 32);
    bb_fill(b, 24, 0);
    bb_pad(b, 32);
    bb_fill(b, 20, 100);
}

START_TEST(test_handmade_valid) {
    for (uint32_t version = 2; version <= 3; version++) {
        bb b = {0};
        build_small(&b, version);
        lc_gguf *f = open_ok(&b, "hand.gguf");
        ck_assert_uint_eq(lc_gguf_version(f), version);
        ck_assert_uint_eq(lc_gguf_alignment(f), 32);
        ck_assert_int_eq(lc_gguf_n_kv(f), 2);
        ck_assert_int_eq(lc_gguf_n_tensors(f), 2);
        const char *s = NULL;
        size_t len = 0;
        ck_assert_int_eq(lc_gguf_get_string(f, "general.name", &s, &len), LC_OK);
        ck_assert_str_eq(s, "hand");
        ck_assert_uint_eq(len, 4);
        uint32_t n = 0;
        ck_assert_int_eq(lc_gguf_get_u32(f, "test.n", &n), LC_OK);
        ck_assert_uint_eq(n, 77);
        ck_assert_int_eq(lc_gguf_find_key(f, "test.n"), 1);
        ck_assert_int_eq(lc_gguf_find_key(f, "test.m"), -1);
        ck_assert_int_eq(lc_gguf_find_tensor(f, "ids"), 1);
        ck_assert_int_eq(lc_gguf_find_tensor(f, "nope"), -1);
        uint64_t data_off = lc_gguf_data_offset(f);
        ck_assert_uint_eq(data_off % 32, 0);
        const lc_gguf_tensor_info *w = lc_gguf_tensor(f, 0), *ids = lc_gguf_tensor(f, 1);
        ck_assert_str_eq(w->name, "w");
        ck_assert_int_eq(w->type, LC_F32);
        ck_assert(w->supported);
        ck_assert_int_eq(w->n_dims, 2);
        ck_assert_int_eq(w->ne[0], 3);
        ck_assert_int_eq(w->ne[1], 2);
        ck_assert_int_eq(w->ne[2], 1);
        ck_assert_int_eq(w->ne[3], 1);
        ck_assert_uint_eq(w->size, 24);
        ck_assert_uint_eq(w->offset, data_off);
        ck_assert_ptr_eq(w->data, b.p + data_off);
        ck_assert_str_eq(ids->name, "ids");
        ck_assert_int_eq(ids->type, LC_I32);
        ck_assert_int_eq(ids->n_dims, 1);
        ck_assert_int_eq(ids->ne[0], 5);
        ck_assert_uint_eq(ids->size, 20);
        ck_assert_uint_eq(ids->offset, data_off + 32);
        ck_assert_uint_eq(((const uint8_t *)ids->data)[0], 100);
        ck_assert_uint_eq(((const uint8_t *)ids->data)[19], 119);
        ck_assert_ptr_null(lc_gguf_tensor(f, 2));
        ck_assert_ptr_null(lc_gguf_tensor(f, -1));
        lc_gguf_close(f);
        free(b.p);
    }
    /* empty file body: no tensors, no kvs */
    bb e = {0};
    bb_header(&e, 3, 0, 0);
    lc_gguf *f = open_ok(&e, "empty.gguf");
    ck_assert_int_eq(lc_gguf_n_kv(f), 0);
    ck_assert_int_eq(lc_gguf_n_tensors(f), 0);
    ck_assert_uint_eq(lc_gguf_data_offset(f), 24);
    lc_gguf_close(f);
    free(e.p);
    lc_gguf_close(NULL);
}
END_TEST

/* A numeric array whose bytes are misaligned in the file must come back as an aligned C array. */
START_TEST(test_handmade_unaligned_array) {
    bb b = {0};
    bb_header(&b, 3, 0, 2);
    bb_str(&b, "k"); /* 9 bytes: the array's first element lands at an odd offset */
    bb_i32(&b, LC_GGUF_ARRAY);
    bb_i32(&b, LC_GGUF_FLOAT32);
    bb_u64(&b, 3);
    bb_f32(&b, 1.5f);
    bb_f32(&b, -2.0f);
    bb_f32(&b, 1e-3f);
    bb_str(&b, "u");
    bb_i32(&b, LC_GGUF_ARRAY);
    bb_i32(&b, LC_GGUF_UINT64);
    bb_u64(&b, 2);
    bb_u64(&b, 5);
    bb_u64(&b, UINT64_MAX);
    uint8_t *p = exact_copy(b.p, b.n);
    lc_gguf *f = NULL;
    ck_assert_msg(lc_gguf_open_memory(p, b.n, "unaligned.gguf", &f) == LC_OK, "%s", lc_last_error());
    const void *data = NULL;
    uint64_t count = 0;
    ck_assert_int_eq(lc_gguf_get_arr(f, "k", LC_GGUF_FLOAT32, &data, &count), LC_OK);
    ck_assert_uint_eq(count, 3);
    ck_assert_uint_eq((uintptr_t)data % 4, 0);
    const float *x = data;
    ck_assert(x[0] == 1.5f && x[1] == -2.0f && x[2] == 1e-3f);
    ck_assert_int_eq(lc_gguf_get_arr(f, "u", LC_GGUF_UINT64, &data, &count), LC_OK);
    ck_assert_uint_eq((uintptr_t)data % 8, 0);
    ck_assert(((const uint64_t *)data)[1] == UINT64_MAX);
    int64_t iv = 0;
    ck_assert_int_eq(lc_gguf_arr_get_i64(f, 1, 0, &iv), LC_OK);
    ck_assert_int_eq(iv, 5);
    ck_assert_int_eq(lc_gguf_arr_get_i64(f, 1, 1, &iv), LC_ERR_FORMAT); /* > INT64_MAX */
    double dv = 0;
    ck_assert_int_eq(lc_gguf_arr_get_f64(f, 1, 1, &dv), LC_OK);
    ck_assert(dv == 18446744073709551615.0);
    ck_assert_int_eq(lc_gguf_get_arr(f, "k", LC_GGUF_FLOAT64, &data, &count), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "'k'") && strstr(lc_last_error(), "f64") && strstr(lc_last_error(), "f32"),
                  "%s", lc_last_error());
    lc_gguf_close(f);
    free(p);
    free(b.p);
}
END_TEST

/* ---- writer round trip ------------------------------------------------------------------- */

static const int64_t ne_mat[2] = {5, 3};   /* non-square: 3 rows of 5 */
static const int64_t ne_trail[4] = {4, 2, 1, 1};
static const int64_t ne_q8[2] = {64, 2};
static const int64_t ne_q3k[1] = {256};
static const int64_t ne_empty[2] = {0, 3};

static void fill_writer(lc_gguf_writer *w, float *mat, uint8_t *q8, uint8_t *q3k) {
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "general.architecture", "roundtrip"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_u8(w, "v.u8", 250), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_i8(w, "v.i8", -7), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_u16(w, "v.u16", 65000), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_i16(w, "v.i16", -32000), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_u32(w, "v.u32", 4294967295u), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_i32(w, "v.i32", INT32_MIN), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_u64(w, "v.u64", UINT64_MAX - 1), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_i64(w, "v.i64", INT64_MIN + 1), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_f32(w, "v.f32", 0.1f), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_f64(w, "v.f64", 0.1), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_bool(w, "v.bool", true), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_bool(w, "v.bool0", false), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string_n(w, "v.nul", "a\0b", 3), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "v.empty", ""), LC_OK);
    /* replacing keeps the position and takes the new type */
    ck_assert_int_eq(lc_gguf_writer_set_u32(w, "v.replace", 1), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "v.replace", "now a string"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_u32(w, "v.removed", 9), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_remove_kv(w, "v.removed"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_remove_kv(w, "v.never"), LC_OK);

    const uint8_t a_u8[3] = {0, 128, 255};
    const int8_t a_i8[2] = {-128, 127};
    const uint16_t a_u16[2] = {1, 65535};
    const int16_t a_i16[2] = {-32768, 32767};
    const uint32_t a_u32[2] = {0, 4294967295u};
    const int32_t a_i32[3] = {INT32_MIN, 0, INT32_MAX};
    const uint64_t a_u64[2] = {1, UINT64_MAX};
    const int64_t a_i64[2] = {INT64_MIN, INT64_MAX};
    const float a_f32[3] = {1.0f, -0.0f, 3.5e-38f};
    const double a_f64[2] = {1e300, -2.5};
    const uint8_t a_bool[3] = {1, 0, 1};
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.u8", LC_GGUF_UINT8, a_u8, 3), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.i8", LC_GGUF_INT8, a_i8, 2), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.u16", LC_GGUF_UINT16, a_u16, 2), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.i16", LC_GGUF_INT16, a_i16, 2), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.u32", LC_GGUF_UINT32, a_u32, 2), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.i32", LC_GGUF_INT32, a_i32, 3), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.u64", LC_GGUF_UINT64, a_u64, 2), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.i64", LC_GGUF_INT64, a_i64, 2), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.f32", LC_GGUF_FLOAT32, a_f32, 3), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.f64", LC_GGUF_FLOAT64, a_f64, 2), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.bool", LC_GGUF_BOOL, a_bool, 3), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "a.empty", LC_GGUF_INT32, NULL, 0), LC_OK);
    const char *strs[4] = {"<s>", "", "\xe2\x96\x81hi", "x\0y"};
    const size_t lens[4] = {3, 0, 5, 3};
    ck_assert_int_eq(lc_gguf_writer_set_arr_str(w, "a.str", strs, lens, 4), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_arr_str(w, "a.str0", NULL, NULL, 0), LC_OK);

    for (int i = 0; i < 15; i++) mat[i] = (float)(i / 5 * 10 + i % 5);
    mat[1 * 5 + 3] = 42.0f; /* [row 1, col 3] */
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "mat", LC_F32, 2, ne_mat, mat, sizeof(float) * 15), LC_OK);
    float trail[8];
    for (int i = 0; i < 8; i++) trail[i] = (float)i;
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "trail", LC_F32, 4, ne_trail, trail, sizeof trail), LC_OK);
    for (int i = 0; i < 136; i++) q8[i] = (uint8_t)(i * 7);
    ck_assert_int_eq(lc_gguf_writer_add_tensor_ref(w, "q8", LC_Q8_0, 2, ne_q8, q8, 136), LC_OK);
    for (int i = 0; i < 110; i++) q3k[i] = (uint8_t)i;
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "q3k", 11, 1, ne_q3k, q3k, 110), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "empty", LC_F32, 2, ne_empty, NULL, 0), LC_OK);
}

static void check_roundtrip(const lc_gguf *f) {
    ck_assert_uint_eq(lc_gguf_version(f), 3);
    ck_assert_int_eq(lc_gguf_n_kv(f), 30);
    ck_assert_str_eq(lc_gguf_key(f, 0), "general.architecture");
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
    uint64_t u64; int64_t i64; float f32; double f64; bool bo;
    ck_assert_int_eq(lc_gguf_get_u8(f, "v.u8", &u8), LC_OK);
    ck_assert_uint_eq(u8, 250);
    ck_assert_int_eq(lc_gguf_get_i8(f, "v.i8", &i8), LC_OK);
    ck_assert_int_eq(i8, -7);
    ck_assert_int_eq(lc_gguf_get_u16(f, "v.u16", &u16), LC_OK);
    ck_assert_uint_eq(u16, 65000);
    ck_assert_int_eq(lc_gguf_get_i16(f, "v.i16", &i16), LC_OK);
    ck_assert_int_eq(i16, -32000);
    ck_assert_int_eq(lc_gguf_get_u32(f, "v.u32", &u32), LC_OK);
    ck_assert_uint_eq(u32, 4294967295u);
    ck_assert_int_eq(lc_gguf_get_i32(f, "v.i32", &i32), LC_OK);
    ck_assert_int_eq(i32, INT32_MIN);
    ck_assert_int_eq(lc_gguf_get_u64(f, "v.u64", &u64), LC_OK);
    ck_assert(u64 == UINT64_MAX - 1);
    ck_assert_int_eq(lc_gguf_get_i64(f, "v.i64", &i64), LC_OK);
    ck_assert(i64 == INT64_MIN + 1);
    ck_assert_int_eq(lc_gguf_get_f32(f, "v.f32", &f32), LC_OK);
    ck_assert(f32 == 0.1f);
    ck_assert_int_eq(lc_gguf_get_f64(f, "v.f64", &f64), LC_OK);
    ck_assert(f64 == 0.1);
    ck_assert_int_eq(lc_gguf_get_bool(f, "v.bool", &bo), LC_OK);
    ck_assert(bo);
    ck_assert_int_eq(lc_gguf_get_bool(f, "v.bool0", &bo), LC_OK);
    ck_assert(!bo);
    const char *s; size_t len;
    ck_assert_int_eq(lc_gguf_get_string(f, "v.nul", &s, &len), LC_OK);
    ck_assert_uint_eq(len, 3);
    ck_assert(memcmp(s, "a\0b", 4) == 0);
    ck_assert_int_eq(lc_gguf_get_string(f, "v.empty", &s, NULL), LC_OK);
    ck_assert_str_eq(s, "");
    int64_t rid = lc_gguf_find_key(f, "v.replace");
    ck_assert_int_eq(rid, 15);
    ck_assert_int_eq(lc_gguf_kv_type(f, rid), LC_GGUF_STRING);
    ck_assert_int_eq(lc_gguf_find_key(f, "v.removed"), -1);

    /* any-integer and by-id access */
    int64_t iv;
    ck_assert_int_eq(lc_gguf_get_int(f, "v.u16", &iv), LC_OK);
    ck_assert_int_eq(iv, 65000);
    ck_assert_int_eq(lc_gguf_get_int(f, "v.bool", &iv), LC_OK);
    ck_assert_int_eq(iv, 1);
    ck_assert_int_eq(lc_gguf_get_int(f, "v.u64", &iv), LC_ERR_FORMAT); /* > INT64_MAX */
    ck_assert_int_eq(lc_gguf_get_int(f, "v.f32", &iv), LC_ERR_FORMAT);
    double dv;
    ck_assert_int_eq(lc_gguf_kv_get_f64(f, lc_gguf_find_key(f, "v.i16"), &dv), LC_OK);
    ck_assert(dv == -32000.0);
    ck_assert_int_eq(lc_gguf_kv_get_f64(f, lc_gguf_find_key(f, "v.f32"), &dv), LC_OK);
    ck_assert(dv == (double)0.1f);
    ck_assert_int_eq(lc_gguf_kv_get_str(f, 0, &s, &len), LC_OK);
    ck_assert_str_eq(s, "roundtrip");
    ck_assert_int_eq(lc_gguf_kv_get_str(f, 1, &s, &len), LC_ERR_FORMAT);
    ck_assert_int_eq(lc_gguf_kv_get_i64(f, 999, &iv), LC_ERR_INVALID_ARG);

    /* wrong type and missing key: LC_ERR_FORMAT naming key, expected and found */
    ck_assert_int_eq(lc_gguf_get_i32(f, "v.u32", &i32), LC_ERR_FORMAT);
    const char *m = lc_last_error();
    ck_assert_msg(strstr(m, "'v.u32'") && strstr(m, "expected type i32") && strstr(m, "found u32") &&
                  strstr(m, "offset"), "%s", m);
    ck_assert_int_eq(lc_gguf_get_f32(f, "no.such.key", &f32), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "'no.such.key' not found"), "%s", lc_last_error());
    ck_assert_int_eq(lc_gguf_get_string(f, "a.str", &s, NULL), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "found array"), "%s", lc_last_error());

    /* arrays */
    struct { const char *key; int type; uint64_t n; double v_last; } arrs[] = {
        {"a.u8", LC_GGUF_UINT8, 3, 255},           {"a.i8", LC_GGUF_INT8, 2, 127},
        {"a.u16", LC_GGUF_UINT16, 2, 65535},       {"a.i16", LC_GGUF_INT16, 2, 32767},
        {"a.u32", LC_GGUF_UINT32, 2, 4294967295.0}, {"a.i32", LC_GGUF_INT32, 3, INT32_MAX},
        {"a.u64", LC_GGUF_UINT64, 2, 18446744073709551615.0}, {"a.i64", LC_GGUF_INT64, 2, 9223372036854775807.0},
        {"a.f32", LC_GGUF_FLOAT32, 3, (double)3.5e-38f}, {"a.f64", LC_GGUF_FLOAT64, 2, -2.5},
        {"a.bool", LC_GGUF_BOOL, 3, 1},
    };
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        int64_t kid = lc_gguf_find_key(f, arrs[i].key);
        ck_assert_msg(kid >= 0, "%s", arrs[i].key);
        ck_assert_int_eq(lc_gguf_kv_type(f, kid), LC_GGUF_ARRAY);
        ck_assert_int_eq(lc_gguf_arr_type(f, kid), arrs[i].type);
        ck_assert_uint_eq(lc_gguf_arr_count(f, kid), arrs[i].n);
        ck_assert_ptr_nonnull(lc_gguf_arr_data(f, kid));
        ck_assert_int_eq(lc_gguf_arr_get_f64(f, kid, arrs[i].n - 1, &dv), LC_OK);
        ck_assert_msg(dv == arrs[i].v_last, "%s: %g != %g", arrs[i].key, dv, arrs[i].v_last);
        ck_assert_int_eq(lc_gguf_arr_get_f64(f, kid, arrs[i].n, &dv), LC_ERR_INVALID_ARG);
        ck_assert_int_eq(lc_gguf_arr_get_str(f, kid, 0, &s, NULL), LC_ERR_FORMAT);
    }
    const void *data; uint64_t count;
    ck_assert_int_eq(lc_gguf_get_arr(f, "a.i64", LC_GGUF_INT64, &data, &count), LC_OK);
    ck_assert(((const int64_t *)data)[0] == INT64_MIN);
    ck_assert_int_eq(lc_gguf_get_arr(f, "a.i16", LC_GGUF_INT16, &data, &count), LC_OK);
    ck_assert_int_eq(((const int16_t *)data)[0], -32768);
    ck_assert_int_eq(lc_gguf_get_arr(f, "a.f32", LC_GGUF_FLOAT32, &data, &count), LC_OK);
    ck_assert(signbit(((const float *)data)[1]) && ((const float *)data)[1] == 0.0f);
    ck_assert_int_eq(lc_gguf_arr_get_i64(f, lc_gguf_find_key(f, "a.i8"), 0, &iv), LC_OK);
    ck_assert_int_eq(iv, -128);
    ck_assert_int_eq(lc_gguf_arr_get_i64(f, lc_gguf_find_key(f, "a.f64"), 0, &iv), LC_ERR_FORMAT);
    int64_t ek = lc_gguf_find_key(f, "a.empty");
    ck_assert_int_eq(lc_gguf_arr_type(f, ek), LC_GGUF_INT32);
    ck_assert_uint_eq(lc_gguf_arr_count(f, ek), 0);
    ck_assert_ptr_null(lc_gguf_arr_data(f, ek));
    int64_t sk = lc_gguf_find_key(f, "a.str");
    ck_assert_int_eq(lc_gguf_arr_type(f, sk), LC_GGUF_STRING);
    ck_assert_uint_eq(lc_gguf_arr_count(f, sk), 4);
    ck_assert_ptr_null(lc_gguf_arr_data(f, sk));
    ck_assert_int_eq(lc_gguf_get_arr(f, "a.str", LC_GGUF_STRING, &data, &count), LC_ERR_FORMAT);
    const char *want[4] = {"<s>", "", "\xe2\x96\x81hi", "x\0y"};
    const size_t wlen[4] = {3, 0, 5, 3};
    for (uint64_t i = 0; i < 4; i++) {
        ck_assert_int_eq(lc_gguf_arr_get_str(f, sk, i, &s, &len), LC_OK);
        ck_assert_uint_eq(len, wlen[i]);
        ck_assert(memcmp(s, want[i], wlen[i] + 1) == 0);
    }
    ck_assert_int_eq(lc_gguf_arr_get_str(f, sk, 4, &s, &len), LC_ERR_INVALID_ARG);
    ck_assert_uint_eq(lc_gguf_arr_count(f, lc_gguf_find_key(f, "a.str0")), 0);
    ck_assert_int_eq(lc_gguf_arr_type(f, lc_gguf_find_key(f, "v.u8")), -1);

    /* tensors */
    ck_assert_int_eq(lc_gguf_n_tensors(f), 5);
    uint32_t align = lc_gguf_alignment(f);
    const lc_gguf_tensor_info *t = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "mat"));
    ck_assert_int_eq(t->n_dims, 2);
    ck_assert(t->ne[0] == 5 && t->ne[1] == 3 && t->ne[2] == 1 && t->ne[3] == 1);
    ck_assert_uint_eq(t->size, 60);
    ck_assert_uint_eq(t->offset % align, 0);
    float v;
    memcpy(&v, (const uint8_t *)t->data + sizeof(float) * (1 * 5 + 3), sizeof v); /* i0 = col 3, i1 = row 1 */
    ck_assert(v == 42.0f);
    t = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "trail"));
    ck_assert_int_eq(t->n_dims, 2); /* the writer drops trailing 1s, like ggml_n_dims */
    ck_assert(t->ne[0] == 4 && t->ne[1] == 2 && t->ne[2] == 1 && t->ne[3] == 1);
    t = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "q8"));
    ck_assert_int_eq(t->type, LC_Q8_0);
    ck_assert(t->supported);
    ck_assert_uint_eq(t->size, 136);
    ck_assert_uint_eq(((const uint8_t *)t->data)[135], (uint8_t)(135 * 7));
    t = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "q3k"));
    ck_assert_int_eq(t->type, 11);
    ck_assert(!t->supported);
    ck_assert_uint_eq(t->size, 110);
    ck_assert_uint_eq(((const uint8_t *)t->data)[109], 109);
    t = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "empty"));
    ck_assert(t->ne[0] == 0 && t->ne[1] == 3);
    ck_assert_uint_eq(t->size, 0);
    for (int64_t i = 1; i < 5; i++) /* packed in order, each on the alignment */
        ck_assert_uint_eq(lc_gguf_tensor(f, i)->offset % align, 0);
}

START_TEST(test_writer_roundtrip) {
    lc_gguf_writer *w = NULL;
    ck_assert_int_eq(lc_gguf_writer_new(&w), LC_OK);
    float mat[15];
    uint8_t q8[136], q3k[110];
    fill_writer(w, mat, q8, q3k);

    void *img = NULL;
    size_t size = 0;
    ck_assert_msg(lc_gguf_writer_write_memory(w, &img, &size) == LC_OK, "%s", lc_last_error());
    lc_gguf *f = NULL;
    ck_assert_msg(lc_gguf_open_memory(img, size, "roundtrip.gguf", &f) == LC_OK, "%s", lc_last_error());
    check_roundtrip(f);

    /* copying every kv and every tensor of the file into a new writer reproduces the bytes */
    lc_gguf_writer *w2 = NULL;
    ck_assert_int_eq(lc_gguf_writer_new(&w2), LC_OK);
    for (int64_t i = 0; i < lc_gguf_n_kv(f); i++) ck_assert_int_eq(lc_gguf_writer_copy_kv(w2, f, i), LC_OK);
    for (int64_t i = 0; i < lc_gguf_n_tensors(f); i++) {
        const lc_gguf_tensor_info *t = lc_gguf_tensor(f, i);
        ck_assert_msg(lc_gguf_writer_add_tensor_ref(w2, t->name, t->type, t->n_dims, t->ne, t->data,
                                                    (size_t)t->size) == LC_OK, "%s", lc_last_error());
    }
    void *img2 = NULL;
    size_t size2 = 0;
    ck_assert_int_eq(lc_gguf_writer_write_memory(w2, &img2, &size2), LC_OK);
    ck_assert_uint_eq(size2, size);
    ck_assert(memcmp(img, img2, size) == 0);
    free(img2);
    lc_gguf_writer_free(w2);
    lc_gguf_close(f);

    /* the same through a file: written atomically, read back through mmap */
    char dir[] = "/tmp/lorac_gguf_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128], tmp[160];
    snprintf(path, sizeof path, "%s/rt.gguf", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_msg(lc_gguf_writer_write(w, path) == LC_OK, "%s", lc_last_error());
    ck_assert_int_ne(access(tmp, F_OK), 0);
    ck_assert_msg(lc_gguf_open(path, &f) == LC_OK, "%s", lc_last_error());
    ck_assert_str_eq(lc_gguf_path(f), path);
    ck_assert_uint_eq(lc_gguf_file_size(f), size);
    check_roundtrip(f);
    lc_gguf_close(f);
    remove(path);
    rmdir(dir);
    free(img);

    /* a custom alignment is honoured */
    ck_assert_int_eq(lc_gguf_writer_set_u32(w, "general.alignment", 256), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_write_memory(w, &img, &size), LC_OK);
    ck_assert_msg(lc_gguf_open_memory(img, size, "align256.gguf", &f) == LC_OK, "%s", lc_last_error());
    ck_assert_uint_eq(lc_gguf_alignment(f), 256);
    ck_assert_uint_eq(lc_gguf_data_offset(f) % 256, 0);
    for (int64_t i = 0; i < lc_gguf_n_tensors(f); i++) ck_assert_uint_eq(lc_gguf_tensor(f, i)->offset % 256, 0);
    lc_gguf_close(f);
    free(img);
    lc_gguf_writer_free(w);
    lc_gguf_writer_free(NULL);
}
END_TEST

START_TEST(test_writer_errors) {
    lc_gguf_writer *w = NULL;
    ck_assert_int_eq(lc_gguf_writer_new(&w), LC_OK);
    float x[8] = {0};
    int64_t ne2[2] = {4, 2};
    ck_assert_int_eq(lc_gguf_writer_set_u32(w, "", 1), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_writer_set_u32(w, NULL, 1), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "k", LC_GGUF_ARRAY, x, 1), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "k", LC_GGUF_STRING, x, 1), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "k", LC_GGUF_UINT8, NULL, 4), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "k", LC_GGUF_UINT8, x, ((uint64_t)1 << 30) + 1), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "t", LC_F32, 2, ne2, x, sizeof x), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "t", LC_F32, 2, ne2, x, sizeof x), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "already added"), "%s", lc_last_error());
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "", LC_F32, 2, ne2, x, sizeof x), LC_ERR_INVALID_ARG);
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = 0;
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, longname, LC_F32, 2, ne2, x, sizeof x), LC_ERR_INVALID_ARG);
    longname[63] = 0; /* 63 bytes is allowed */
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, longname, LC_F32, 2, ne2, x, sizeof x), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "u", LC_F32, 2, ne2, x, sizeof x - 4), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "u", 4, 2, ne2, x, sizeof x), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "u", LC_F32, 5, ne2, x, sizeof x), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "u", LC_Q8_0, 2, ne2, x, sizeof x), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "block size"), "%s", lc_last_error());
    int64_t neg[2] = {-4, 2};
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "u", LC_F32, 2, neg, x, sizeof x), LC_ERR_INVALID_ARG);
    int64_t huge[4] = {(int64_t)1 << 40, (int64_t)1 << 40, 1, 1};
    ck_assert_int_eq(lc_gguf_writer_add_tensor_ref(w, "u", LC_F32, 4, huge, x, sizeof x), LC_ERR_INVALID_ARG);

    /* bad alignment refused at write time; an unwritable path is LC_ERR_IO and leaves nothing */
    ck_assert_int_eq(lc_gguf_writer_set_u32(w, "general.alignment", 48), LC_OK);
    void *img = NULL;
    size_t size = 0;
    ck_assert_int_eq(lc_gguf_writer_write_memory(w, &img, &size), LC_ERR_INVALID_ARG);
    ck_assert_ptr_null(img);
    ck_assert_int_eq(lc_gguf_writer_set_i32(w, "general.alignment", 64), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_write(w, "/tmp/x.gguf"), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_writer_remove_kv(w, "general.alignment"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_write(w, "/nonexistent-dir-lorac/x.gguf"), LC_ERR_IO);
    ck_assert_msg(strstr(lc_last_error(), "/nonexistent-dir-lorac/x.gguf.tmp"), "%s", lc_last_error());
    lc_gguf_writer_free(w);
}
END_TEST

/* ---- the gguf-py fixture ----------------------------------------------------------------- */

START_TEST(test_fixture_gguf_py) {
    lc_gguf *f = NULL;
    ck_assert_msg(lc_gguf_open(FIXTURE, &f) == LC_OK, "%s", lc_last_error());
    ck_assert_uint_eq(lc_gguf_version(f), 3);
    ck_assert_uint_eq(lc_gguf_alignment(f), 64);
    ck_assert_int_eq(lc_gguf_n_kv(f), 27);
    ck_assert_int_eq(lc_gguf_n_tensors(f), 5);
    const char *s; size_t len;
    ck_assert_int_eq(lc_gguf_get_string(f, "general.architecture", &s, NULL), LC_OK);
    ck_assert_str_eq(s, "lorac-test");

    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
    uint64_t u64; int64_t i64; float f32; double f64; bool bo;
    ck_assert_int_eq(lc_gguf_get_u8(f, "test.u8", &u8), LC_OK);
    ck_assert_uint_eq(u8, 200);
    ck_assert_int_eq(lc_gguf_get_i8(f, "test.i8", &i8), LC_OK);
    ck_assert_int_eq(i8, -100);
    ck_assert_int_eq(lc_gguf_get_u16(f, "test.u16", &u16), LC_OK);
    ck_assert_uint_eq(u16, 60000);
    ck_assert_int_eq(lc_gguf_get_i16(f, "test.i16", &i16), LC_OK);
    ck_assert_int_eq(i16, -30000);
    ck_assert_int_eq(lc_gguf_get_u32(f, "test.u32", &u32), LC_OK);
    ck_assert_uint_eq(u32, 4000000000u);
    ck_assert_int_eq(lc_gguf_get_i32(f, "test.i32", &i32), LC_OK);
    ck_assert_int_eq(i32, -2000000000);
    ck_assert_int_eq(lc_gguf_get_f32(f, "test.f32", &f32), LC_OK);
    ck_assert(f32 == 3.25f);
    ck_assert_int_eq(lc_gguf_get_bool(f, "test.bool", &bo), LC_OK);
    ck_assert(bo);
    ck_assert_int_eq(lc_gguf_get_string(f, "test.string", &s, &len), LC_OK);
    ck_assert_str_eq(s, "h\xc3\xa9llo w\xc3\xb6rld");
    ck_assert_uint_eq(len, 13);
    ck_assert_int_eq(lc_gguf_get_u64(f, "test.u64", &u64), LC_OK);
    ck_assert(u64 == ((uint64_t)1 << 63) + 5);
    ck_assert_int_eq(lc_gguf_get_i64(f, "test.i64", &i64), LC_OK);
    ck_assert(i64 == -((int64_t)1 << 62) - 3);
    ck_assert_int_eq(lc_gguf_get_f64(f, "test.f64", &f64), LC_OK);
    ck_assert(f64 == -1.0 / 3.0);

    struct { const char *key; int type; uint64_t n; double first, last; } arrs[] = {
        {"test.arr.u8", LC_GGUF_UINT8, 3, 1, 255},
        {"test.arr.i8", LC_GGUF_INT8, 3, -128, 127},
        {"test.arr.u16", LC_GGUF_UINT16, 2, 0, 65535},
        {"test.arr.i16", LC_GGUF_INT16, 3, -32768, -1},
        {"test.arr.u32", LC_GGUF_UINT32, 2, 7, 4294967295.0},
        {"test.arr.i32", LC_GGUF_INT32, 4, -5, 2147483647.0},
        {"test.arr.f32", LC_GGUF_FLOAT32, 3, 0.5, (double)1e30f},
        {"test.arr.bool", LC_GGUF_BOOL, 3, 1, 1},
        {"test.arr.u64", LC_GGUF_UINT64, 2, 0, 18446744073709551615.0},
        {"test.arr.i64", LC_GGUF_INT64, 2, -9223372036854775808.0, 9223372036854775807.0},
        {"test.arr.f64", LC_GGUF_FLOAT64, 2, 1.5, -2.25e-300},
    };
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        int64_t kid = lc_gguf_find_key(f, arrs[i].key);
        ck_assert_msg(kid >= 0, "%s", arrs[i].key);
        ck_assert_int_eq(lc_gguf_arr_type(f, kid), arrs[i].type);
        ck_assert_uint_eq(lc_gguf_arr_count(f, kid), arrs[i].n);
        double v0, v1;
        ck_assert_int_eq(lc_gguf_arr_get_f64(f, kid, 0, &v0), LC_OK);
        ck_assert_int_eq(lc_gguf_arr_get_f64(f, kid, arrs[i].n - 1, &v1), LC_OK);
        ck_assert_msg(v0 == arrs[i].first && v1 == arrs[i].last, "%s: %g %g", arrs[i].key, v0, v1);
    }
    int64_t kb = lc_gguf_find_key(f, "test.arr.bool"), iv;
    ck_assert_int_eq(lc_gguf_arr_get_i64(f, kb, 1, &iv), LC_OK);
    ck_assert_int_eq(iv, 0);
    int64_t ks = lc_gguf_find_key(f, "test.arr.string");
    ck_assert_int_eq(lc_gguf_arr_type(f, ks), LC_GGUF_STRING);
    ck_assert_uint_eq(lc_gguf_arr_count(f, ks), 4);
    const char *want[4] = {"alpha", "", "\xce\xb2" "eta", "with space"};
    for (uint64_t i = 0; i < 4; i++) {
        ck_assert_int_eq(lc_gguf_arr_get_str(f, ks, i, &s, &len), LC_OK);
        ck_assert_str_eq(s, want[i]);
        ck_assert_uint_eq(len, strlen(want[i]));
    }

    /* "matrix": numpy [3, 5] -> ne = [5, 3]; numpy[r, c] is element c + 5 r */
    const lc_gguf_tensor_info *t = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "matrix"));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->type, LC_F32);
    ck_assert_int_eq(t->n_dims, 2);
    ck_assert(t->ne[0] == 5 && t->ne[1] == 3 && t->ne[2] == 1 && t->ne[3] == 1);
    ck_assert_uint_eq(t->size, 60);
    ck_assert_uint_eq(t->offset % 64, 0);
    float m[15];
    memcpy(m, t->data, sizeof m);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 5; c++) {
            float want_v = (float)(r * 10 + c);
            if (r == 1 && c == 3) want_v = 42.0f;
            if (r == 2 && c == 0) want_v = -7.5f;
            ck_assert_msg(m[c + 5 * r] == want_v, "matrix[%d,%d] = %g, want %g", r, c, m[c + 5 * r], want_v);
        }
    t = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "trailing"));
    ck_assert_int_eq(t->n_dims, 4); /* gguf-py keeps trailing 1s */
    ck_assert(t->ne[0] == 4 && t->ne[1] == 2 && t->ne[2] == 1 && t->ne[3] == 1);
    ck_assert_uint_eq(t->size, 32);
    memcpy(m, t->data, 32);
    for (int i = 0; i < 8; i++) ck_assert(m[i] == (float)i);
    t = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "q8"));
    ck_assert_int_eq(t->type, LC_Q8_0);
    ck_assert(t->ne[0] == 64 && t->ne[1] == 2);
    ck_assert_uint_eq(t->size, 4 * 34);
    t = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "half"));
    ck_assert_int_eq(t->type, LC_F16);
    ck_assert(t->ne[0] == 3 && t->ne[1] == 2);
    t = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "q3k"));
    ck_assert_int_eq(t->type, 11);
    ck_assert(!t->supported);
    ck_assert(t->ne[0] == 256 && t->ne[1] == 1);
    ck_assert_uint_eq(t->size, 110);
    ck_assert_uint_eq(((const uint8_t *)t->data)[100], 100);
    ck_assert_uint_le(t->offset + t->size, lc_gguf_file_size(f));
    lc_gguf_close(f);
}
END_TEST

START_TEST(test_tensor_load_cpu) {
    lc_device *dev = NULL;
    ck_assert_msg(lc_device_open("cpu", &dev) == LC_OK, "%s", lc_last_error());
    lc_gguf *f = NULL;
    ck_assert_msg(lc_gguf_open(FIXTURE, &f) == LC_OK, "%s", lc_last_error());

    lc_tensor *t = NULL;
    ck_assert_msg(lc_gguf_tensor_load_named(f, "matrix", dev, &t) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(t->dtype, LC_F32);
    ck_assert(t->ne[0] == 5 && t->ne[1] == 3 && t->ne[2] == 1 && t->ne[3] == 1);
    ck_assert_str_eq(t->name, "matrix");
    ck_assert(t->flags & LC_TENSOR_FROZEN);
    float m[15];
    ck_assert_int_eq(lc_tensor_get(t, m, 0, sizeof m), LC_OK);
    ck_assert(m[3 + 5 * 1] == 42.0f && m[0 + 5 * 2] == -7.5f);
    lc_tensor_free(t);

    /* quantized stays quantized: same bytes; dequantised values match gguf-py's */
    ck_assert_msg(lc_gguf_tensor_load_named(f, "q8", dev, &t) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(t->dtype, LC_Q8_0);
    ck_assert(t->ne[0] == 64 && t->ne[1] == 2);
    const lc_gguf_tensor_info *info = lc_gguf_tensor(f, lc_gguf_find_tensor(f, "q8"));
    uint8_t raw[136];
    ck_assert_int_eq(lc_tensor_get(t, raw, 0, sizeof raw), LC_OK);
    ck_assert(memcmp(raw, info->data, sizeof raw) == 0);
    float deq[128];
    ck_assert_int_eq(lc_tensor_get_f32(t, deq, 128), LC_OK);
    const void *ref = NULL;
    uint64_t n = 0;
    ck_assert_int_eq(lc_gguf_get_arr(f, "test.q8_0.dequant", LC_GGUF_FLOAT32, &ref, &n), LC_OK);
    ck_assert_uint_eq(n, 128);
    double worst = 0;
    for (int i = 0; i < 128; i++) {
        double r = ((const float *)ref)[i], d = fabs(deq[i] - r) / (fabs(r) + 1e-30);
        if (d > worst) worst = d;
    }
    lt_log("q8_0 dequant vs gguf-py: max rel err %.3g\n", worst);
    ck_assert(worst <= 1e-6);
    lc_tensor_free(t);

    ck_assert_int_eq(lc_gguf_tensor_load_named(f, "half", dev, &t), LC_OK);
    ck_assert_int_eq(t->dtype, LC_F16);
    uint16_t h[6];
    ck_assert_int_eq(lc_tensor_get(t, h, 0, sizeof h), LC_OK);
    ck_assert(lc_fp16_to_fp32(h[0]) == 1.0f && lc_fp16_to_fp32(h[1]) == -2.0f && lc_fp16_to_fp32(h[2]) == 0.5f);
    ck_assert(lc_fp16_to_fp32(h[3]) == 65504.0f && lc_fp16_to_fp32(h[4]) == ldexpf(1.0f, -24));
    ck_assert(lc_fp16_to_fp32(h[5]) == 0.0f && signbit(lc_fp16_to_fp32(h[5])));
    lc_tensor_free(t);

    ck_assert_int_eq(lc_gguf_tensor_load_named(f, "trailing", dev, &t), LC_OK);
    ck_assert(t->ne[0] == 4 && t->ne[1] == 2 && t->ne[2] == 1 && t->ne[3] == 1);
    lc_tensor_free(t);

    /* an unsupported ggml type: listing works, loading fails naming the tensor and its type */
    t = (lc_tensor *)0x1;
    ck_assert_int_eq(lc_gguf_tensor_load_named(f, "q3k", dev, &t), LC_ERR_DTYPE);
    ck_assert_ptr_null(t);
    const char *msg = lc_last_error();
    lt_log("q3k: %s\n", msg);
    ck_assert_msg(strstr(msg, "'q3k'") && strstr(msg, "11") && strstr(msg, "q3_K") && strstr(msg, FIXTURE), "%s",
                  msg);
    ck_assert_int_eq(lc_gguf_tensor_load_named(f, "absent", dev, &t), LC_ERR_FORMAT);
    ck_assert_int_eq(lc_gguf_tensor_load(f, 99, dev, &t), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_tensor_load(f, 0, NULL, &t), LC_ERR_INVALID_ARG);
    lc_gguf_close(f);

    /* a zero-sized dimension is listed but cannot become a lorac tensor */
    bb b = {0};
    bb_header(&b, 3, 1, 0);
    int64_t ne0[2] = {0, 3};
    bb_tensor(&b, "void", 2, ne0, LC_F32, 0);
    bb_pad(&b, 32);
    f = open_ok(&b, "void.gguf");
    ck_assert_int_eq(lc_gguf_tensor_load(f, 0, dev, &t), LC_ERR_SHAPE);
    ck_assert_msg(strstr(lc_last_error(), "'void'"), "%s", lc_last_error());
    lc_gguf_close(f);
    free(b.p);
    ck_assert_uint_eq(lc_device_allocated(dev), 0);
    lc_device_close(dev);
}
END_TEST

/* ---- bad input --------------------------------------------------------------------------- */

START_TEST(test_bad_header) {
    bb b = {0};
    lc_gguf *f = NULL;
    /* too short for the magic, wrong magic */
    bb_put(&b, "GG", 2);
    expect_fail(&b, LC_ERR_FORMAT, "truncated", "short.gguf");
    b.n = 0;
    bb_put(&b, "GGML", 4);
    bb_u32(&b, 3);
    bb_i64(&b, 0);
    bb_i64(&b, 0);
    expect_fail(&b, LC_ERR_FORMAT, "magic", "magic.gguf");
    /* versions */
    uint32_t bad_versions[] = {0, 1, 4, 0x03000000u, 0x00010000u, 0xFFFFFFFFu};
    const char *needles[] = {"version", "v1", "newer", "byte-swapped", "byte-swapped", "newer"};
    for (int i = 0; i < 6; i++) {
        b.n = 0;
        bb_header(&b, bad_versions[i], 0, 0);
        char what[32];
        snprintf(what, sizeof what, "version%d.gguf", i);
        expect_fail(&b, LC_ERR_FORMAT, needles[i], what);
    }
    /* negative and absurd counts */
    b.n = 0;
    bb_header(&b, 3, -1, 0);
    expect_fail(&b, LC_ERR_FORMAT, "n_tensors", "neg_tensors.gguf");
    b.n = 0;
    bb_header(&b, 3, 0, -5);
    expect_fail(&b, LC_ERR_FORMAT, "n_kv", "neg_kv.gguf");
    b.n = 0;
    bb_header(&b, 3, INT64_MAX, INT64_MAX);
    expect_fail(&b, LC_ERR_FORMAT, "cannot fit", "huge_counts.gguf");
    b.n = 0;
    bb_header(&b, 3, 0, 1000);
    bb_kv_u32(&b, "a", 1);
    expect_fail(&b, LC_ERR_FORMAT, "cannot fit", "many_kv.gguf");
    b.n = 0;
    bb_header(&b, 3, 0, 2);
    bb_kv_u32(&b, "a", 1);
    bb_kv_u32(&b, "b", 1);
    bb_u8(&b, 0); /* counts fit, the file has 1 spare byte: fine */
    f = open_ok(&b, "spare.gguf");
    lc_gguf_close(f);
    free(b.p);
}
END_TEST

START_TEST(test_bad_kv) {
    bb b = {0};
    /* empty key */
    bb_header(&b, 3, 0, 1);
    bb_kv_u32(&b, "", 1);
    expect_fail(&b, LC_ERR_FORMAT, "empty key", "emptykey.gguf");
    /* duplicate keys */
    b.n = 0;
    bb_header(&b, 3, 0, 3);
    bb_kv_u32(&b, "dup", 1);
    bb_kv_str(&b, "other", "x");
    bb_kv_u32(&b, "dup", 2);
    expect_fail(&b, LC_ERR_FORMAT, "duplicate key 'dup'", "dupkey.gguf");
    /* NUL inside a key */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 3);
    bb_put(&b, "a\0b", 3);
    bb_i32(&b, LC_GGUF_UINT8);
    bb_u8(&b, 1);
    expect_fail(&b, LC_ERR_FORMAT, "contains a NUL byte", "nulkey.gguf");
    /* unknown value types */
    int32_t bad_types[] = {13, -1, 1000};
    for (int i = 0; i < 3; i++) {
        b.n = 0;
        bb_header(&b, 3, 0, 1);
        bb_str(&b, "k");
        bb_i32(&b, bad_types[i]);
        bb_u64(&b, 0);
        expect_fail(&b, LC_ERR_FORMAT, "unknown value type", "valtype.gguf");
    }
    /* array of arrays, unknown element type, too many elements, past the end of file */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_i32(&b, LC_GGUF_ARRAY);
    bb_i32(&b, LC_GGUF_ARRAY);
    bb_u64(&b, 1);
    bb_i32(&b, LC_GGUF_UINT8);
    bb_u64(&b, 1);
    bb_u8(&b, 1);
    expect_fail(&b, LC_ERR_FORMAT, "arrays of arrays", "arrarr.gguf");
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_i32(&b, LC_GGUF_ARRAY);
    bb_i32(&b, 77);
    bb_u64(&b, 1);
    bb_u8(&b, 1);
    expect_fail(&b, LC_ERR_FORMAT, "unknown array element type", "arrtype.gguf");
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_i32(&b, LC_GGUF_ARRAY);
    bb_i32(&b, LC_GGUF_UINT8);
    bb_u64(&b, ((uint64_t)1 << 30) + 1);
    bb_u8(&b, 1);
    expect_fail(&b, LC_ERR_FORMAT, "exceeds the limit", "arrbig.gguf");
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_i32(&b, LC_GGUF_ARRAY);
    bb_i32(&b, LC_GGUF_FLOAT64);
    bb_u64(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 0); /* only 2 of 3 */
    expect_fail(&b, LC_ERR_FORMAT, "runs past the end", "arrshort.gguf");
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_i32(&b, LC_GGUF_ARRAY);
    bb_i32(&b, LC_GGUF_STRING);
    bb_u64(&b, 1000);
    bb_str(&b, "only one");
    expect_fail(&b, LC_ERR_FORMAT, "cannot fit", "strarrshort.gguf");
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_i32(&b, LC_GGUF_ARRAY);
    bb_i32(&b, LC_GGUF_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "one");
    bb_u64(&b, 500); /* second string claims 500 bytes */
    bb_put(&b, "abc", 3);
    expect_fail(&b, LC_ERR_FORMAT, "element 1: string length 500 runs past the end", "strarrelem.gguf");
    /* string length past the end of file, over 1 GiB, and a truncated length */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_i32(&b, LC_GGUF_STRING);
    bb_u64(&b, 5000);
    bb_put(&b, "short", 5);
    expect_fail(&b, LC_ERR_FORMAT, "string length 5000 runs past the end", "strpast.gguf");
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, ((uint64_t)1 << 30) + 1); /* key length */
    bb_put(&b, "kkkkkkkkkkkkkkkkkkkk", 20);
    expect_fail(&b, LC_ERR_FORMAT, "exceeds the limit", "strhuge.gguf");
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, UINT64_MAX); /* key length */
    bb_put(&b, "kkkkkkkkkkkkkkkkkkkk", 20);
    expect_fail(&b, LC_ERR_FORMAT, "exceeds the limit", "strmax.gguf");
    /* alignment: wrong type, zero, not a power of two */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_i32(&b, LC_GGUF_INT32);
    bb_i32(&b, 32);
    expect_fail(&b, LC_ERR_FORMAT, "expected u32", "aligntype.gguf");
    uint32_t bad_align[] = {0, 3, 48, 0x80000001u};
    for (int i = 0; i < 4; i++) {
        b.n = 0;
        bb_header(&b, 3, 0, 1);
        bb_kv_u32(&b, "general.alignment", bad_align[i]);
        expect_fail(&b, LC_ERR_FORMAT, "power of two", "alignval.gguf");
    }
    free(b.p);
}
END_TEST

/* One F32 tensor info with the given fields, data padded to 32, then `data_bytes` of data. */
static void build_one_tensor(bb *b, const char *name, uint32_t n_dims, const int64_t *ne, int32_t type,
                             uint64_t offset, size_t data_bytes) {
    b->n = 0;
    bb_header(b, 3, 1, 0);
    bb_tensor(b, name, n_dims, ne, type, offset);
    bb_pad(b, 32);
    bb_fill(b, data_bytes, 0);
}

START_TEST(test_bad_tensor_info) {
    bb b = {0};
    int64_t ne[4] = {4, 2, 1, 1};
    build_one_tensor(&b, "ok", 2, ne, LC_F32, 0, 32);
    lc_gguf *f = open_ok(&b, "ok.gguf");
    lc_gguf_close(f);

    char name64[65];
    memset(name64, 'a', 64);
    name64[64] = 0;
    build_one_tensor(&b, name64, 2, ne, LC_F32, 0, 32);
    expect_fail(&b, LC_ERR_FORMAT, "exceeds the limit of 63", "longname.gguf");
    name64[63] = 0; /* 63 bytes: allowed */
    build_one_tensor(&b, name64, 2, ne, LC_F32, 0, 32);
    f = open_ok(&b, "name63.gguf");
    ck_assert_uint_eq(strlen(lc_gguf_tensor(f, 0)->name), 63);
    lc_gguf_close(f);

    b.n = 0;
    bb_header(&b, 3, 1, 0);
    bb_u64(&b, 3);
    bb_put(&b, "t\0x", 3); /* name with a NUL inside */
    bb_u32(&b, 1);
    bb_i64(&b, 8);
    bb_i32(&b, LC_F32);
    bb_u64(&b, 0);
    bb_pad(&b, 32);
    bb_fill(&b, 32, 0);
    expect_fail(&b, LC_ERR_FORMAT, "contains a NUL byte", "nulname.gguf");
    build_one_tensor(&b, "t", 0, ne, LC_F32, 0, 32);
    expect_fail(&b, LC_ERR_FORMAT, "n_dims", "ndims0.gguf");
    build_one_tensor(&b, "t", 5, (int64_t[5]){1, 1, 1, 1, 1}, LC_F32, 0, 32);
    expect_fail(&b, LC_ERR_FORMAT, "n_dims", "ndims5.gguf");
    build_one_tensor(&b, "t", 2, (int64_t[2]){4, -2}, LC_F32, 0, 32);
    expect_fail(&b, LC_ERR_FORMAT, "ne[1]: -2 is negative", "neneg.gguf");
    /* absurd dimensions: element count overflow (also with a zero dimension), byte overflow */
    build_one_tensor(&b, "t", 2, (int64_t[2]){(int64_t)1 << 40, (int64_t)1 << 40}, LC_F32, 0, 32);
    expect_fail(&b, LC_ERR_FORMAT, "element count overflows", "absurd.gguf");
    build_one_tensor(&b, "t", 4, (int64_t[4]){0, (int64_t)1 << 40, (int64_t)1 << 40, 1}, LC_F32, 0, 32);
    expect_fail(&b, LC_ERR_FORMAT, "element count overflows", "absurd0.gguf");
    build_one_tensor(&b, "t", 1, (int64_t[1]){INT64_MAX}, LC_F32, 0, 32);
    expect_fail(&b, LC_ERR_FORMAT, "overflows", "max.gguf");
    build_one_tensor(&b, "t", 2, (int64_t[2]){(int64_t)1 << 61, 1}, LC_F32, 0, 32);
    expect_fail(&b, LC_ERR_FORMAT, "byte size overflows", "bytes.gguf");
    build_one_tensor(&b, "t", 2, (int64_t[2]){(int64_t)1 << 30, (int64_t)1 << 20}, LC_F32, 0, 32);
    expect_fail(&b, LC_ERR_FORMAT, "run past the end of the file", "bigdata.gguf");
    /* type ids: removed, unknown, negative, and the deliberately unknown q2_0 (42) */
    int32_t bad_types[] = {4, 5, 31, 33, 36, 38, 42, 43, 1000, -1};
    for (int i = 0; i < 10; i++) {
        build_one_tensor(&b, "qt", 2, ne, bad_types[i], 0, 32);
        expect_fail(&b, LC_ERR_FORMAT, "unknown ggml type id", "qtype.gguf");
    }
    /* ne[0] not a multiple of the block size */
    build_one_tensor(&b, "q", 2, (int64_t[2]){33, 1}, LC_Q8_0, 0, 64);
    expect_fail(&b, LC_ERR_FORMAT, "not a multiple of the q8_0 block size 32", "block.gguf");
    /* first offset not 0, data past the end */
    build_one_tensor(&b, "t", 2, ne, LC_F32, 32, 64);
    expect_fail(&b, LC_ERR_FORMAT, "expected 0", "offset0.gguf");
    build_one_tensor(&b, "t", 2, ne, LC_F32, 0, 31);
    expect_fail(&b, LC_ERR_FORMAT, "run past the end", "datashort.gguf");
    /* no room for the padding to the data blob */
    b.n = 0;
    bb_header(&b, 3, 1, 0);
    bb_tensor(&b, "t", 1, (int64_t[1]){0}, LC_F32, 0);
    f = NULL;
    expect_fail(&b, LC_ERR_FORMAT, "past the end of the file", "nopad.gguf");

    /* two tensors: duplicate names, misaligned and overlapping offsets */
    const char *names2[2] = {"a", "a"};
    uint64_t offs[][2] = {{0, 32}, {0, 16}, {0, 0}, {0, 64}};
    const char *needles[] = {"duplicate tensor name 'a'", "offset: 16, expected 32", "offset: 0, expected 32",
                             "offset: 64, expected 32"};
    for (int c = 0; c < 4; c++) {
        b.n = 0;
        bb_header(&b, 3, 2, 0);
        bb_tensor(&b, c == 0 ? names2[0] : "a", 2, ne, LC_F32, offs[c][0]);
        bb_tensor(&b, c == 0 ? names2[1] : "b", 2, ne, LC_F32, offs[c][1]);
        bb_pad(&b, 32);
        bb_fill(&b, 128, 0);
        expect_fail(&b, LC_ERR_FORMAT, needles[c], "two.gguf");
    }
    /* with alignment 16 the packed offset of the second 32-byte tensor is 32, 16 is misaligned */
    b.n = 0;
    bb_header(&b, 3, 2, 1);
    bb_kv_u32(&b, "general.alignment", 16);
    bb_tensor(&b, "a", 1, (int64_t[1]){5}, LC_F32, 0);
    bb_tensor(&b, "b", 1, (int64_t[1]){4}, LC_F32, 20);
    bb_pad(&b, 16);
    bb_fill(&b, 48, 0);
    expect_fail(&b, LC_ERR_FORMAT, "offset: 20, expected 32", "align16.gguf");
    free(b.p);
}
END_TEST

START_TEST(test_bad_paths) {
    lc_gguf *f = (lc_gguf *)0x1;
    ck_assert_int_eq(lc_gguf_open("/nonexistent/lorac.gguf", &f), LC_ERR_IO);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(lc_last_error(), "/nonexistent/lorac.gguf"), "%s", lc_last_error());
    ck_assert_int_eq(lc_gguf_open("/tmp", &f), LC_ERR_IO);
    ck_assert_int_eq(lc_gguf_open(NULL, &f), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_open(FIXTURE, NULL), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_open_memory(NULL, 10, NULL, &f), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_gguf_open_memory(NULL, 0, NULL, &f), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "<memory>"), "%s", lc_last_error());
    /* empty and short files through the mmap path */
    char path[] = "/tmp/lorac_gguf_short_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(lc_gguf_open(path, &f), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), path) && strstr(lc_last_error(), "offset 0"), "%s", lc_last_error());
    FILE *fp = fopen(path, "wb");
    fwrite("GGUF\3\0\0\0", 1, 8, fp);
    fclose(fp);
    ck_assert_int_eq(lc_gguf_open(path, &f), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "offset 8") && strstr(lc_last_error(), "n_tensors"), "%s", lc_last_error());
    remove(path);
    /* accessors tolerate NULL */
    ck_assert_int_eq(lc_gguf_n_kv(NULL), 0);
    ck_assert_int_eq(lc_gguf_find_key(NULL, "x"), -1);
    ck_assert_int_eq(lc_gguf_find_tensor(NULL, "x"), -1);
    ck_assert_ptr_null(lc_gguf_tensor(NULL, 0));
    uint32_t u;
    ck_assert_int_eq(lc_gguf_get_u32(NULL, "x", &u), LC_ERR_INVALID_ARG);
}
END_TEST

/* A small writer-made image with every kind of metadata and two tensors. *end receives the
 * byte just past the last tensor's data (the trailing padding may be cut without harm). */
static void *small_image(size_t *size, size_t *end, size_t *data_offset) {
    lc_gguf_writer *w = NULL;
    ck_assert_int_eq(lc_gguf_writer_new(&w), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_string(w, "general.name", "trunc"), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_u32(w, "general.alignment", 16), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_f64(w, "x.f64", 2.5), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_set_bool(w, "x.bool", true), LC_OK);
    const float sc[3] = {0.1f, 0.2f, 0.3f};
    ck_assert_int_eq(lc_gguf_writer_set_arr(w, "x.scores", LC_GGUF_FLOAT32, sc, 3), LC_OK);
    const char *toks[3] = {"<unk>", "a", "bc"};
    ck_assert_int_eq(lc_gguf_writer_set_arr_str(w, "x.tokens", toks, NULL, 3), LC_OK);
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint8_t q[34];
    for (int i = 0; i < 34; i++) q[i] = (uint8_t)(3 * i + 1);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "a", LC_F32, 2, (int64_t[2]){3, 2}, a, sizeof a), LC_OK);
    ck_assert_int_eq(lc_gguf_writer_add_tensor(w, "q", LC_Q8_0, 1, (int64_t[1]){32}, q, sizeof q), LC_OK);
    void *img = NULL;
    ck_assert_int_eq(lc_gguf_writer_write_memory(w, &img, size), LC_OK);
    lc_gguf_writer_free(w);
    lc_gguf *f = NULL;
    ck_assert_int_eq(lc_gguf_open_memory(img, *size, "small", &f), LC_OK);
    const lc_gguf_tensor_info *t = lc_gguf_tensor(f, 1);
    *end = (size_t)(t->offset + t->size);
    *data_offset = (size_t)lc_gguf_data_offset(f);
    lc_gguf_close(f);
    return img;
}

/* Touch everything an open file offers (so ASan sees any bad pointer); returns a checksum.
 * `strict`: names have no NUL inside, so every lookup by name finds its own id. */
static uint64_t walk(const lc_gguf *f, bool strict) {
    uint64_t sum = 0;
    for (int64_t k = 0; k < lc_gguf_n_kv(f); k++) {
        const char *key = lc_gguf_key(f, k);
        sum += strlen(key);
        int64_t found = lc_gguf_find_key(f, key);
        ck_assert(found >= -1 && found < lc_gguf_n_kv(f));
        if (strict) ck_assert_int_eq(found, k);
        int64_t iv;
        double dv;
        const char *s;
        size_t len;
        if (lc_gguf_kv_get_i64(f, k, &iv) == LC_OK) sum += (uint64_t)iv;
        if (lc_gguf_kv_get_f64(f, k, &dv) == LC_OK) sum += (uint64_t)(dv == dv);
        if (lc_gguf_kv_get_str(f, k, &s, &len) == LC_OK) sum += len + strlen(s);
        uint64_t n = lc_gguf_arr_count(f, k);
        const uint8_t *data = lc_gguf_arr_data(f, k);
        size_t es = 0;
        switch (lc_gguf_arr_type(f, k)) {
        case LC_GGUF_UINT8: case LC_GGUF_INT8: case LC_GGUF_BOOL: es = 1; break;
        case LC_GGUF_UINT16: case LC_GGUF_INT16: es = 2; break;
        case LC_GGUF_UINT32: case LC_GGUF_INT32: case LC_GGUF_FLOAT32: es = 4; break;
        case LC_GGUF_UINT64: case LC_GGUF_INT64: case LC_GGUF_FLOAT64: es = 8; break;
        default: break;
        }
        if (data)
            for (uint64_t i = 0; i < n * es; i++) sum += data[i];
        for (uint64_t i = 0; i < n; i++) {
            if (lc_gguf_arr_get_f64(f, k, i, &dv) == LC_OK) sum += 1;
            if (lc_gguf_arr_get_str(f, k, i, &s, &len) == LC_OK) sum += len + strlen(s);
        }
    }
    for (int64_t i = 0; i < lc_gguf_n_tensors(f); i++) {
        const lc_gguf_tensor_info *t = lc_gguf_tensor(f, i);
        int64_t found = lc_gguf_find_tensor(f, t->name);
        ck_assert(found >= -1 && found < lc_gguf_n_tensors(f));
        if (strict) ck_assert_int_eq(found, i);
        ck_assert(t->offset + t->size <= lc_gguf_file_size(f));
        for (uint64_t j = 0; j < t->size; j++) sum += ((const uint8_t *)t->data)[j];
    }
    return sum;
}

START_TEST(test_truncation_every_length) {
    size_t size, end, data_offset;
    uint8_t *img = small_image(&size, &end, &data_offset);
    lt_log("small image: %zu bytes, data at %zu, last tensor ends at %zu\n", size, data_offset, end);
    ck_assert_uint_lt(end, size + 1);
    int fails = 0, oks = 0;
    for (size_t len = 0; len <= size; len++) {
        uint8_t *p = exact_copy(img, len);
        lc_gguf *f = NULL;
        lc_clear_error();
        lc_status st = lc_gguf_open_memory(p, len, "trunc.gguf", &f);
        if (len < end) {
            ck_assert_msg(st == LC_ERR_FORMAT, "length %zu: status %s", len, lc_status_str(st));
            ck_assert_ptr_null(f);
            const char *msg = lc_last_error();
            ck_assert_msg(strstr(msg, "gguf: trunc.gguf: offset ") == msg, "length %zu: %s", len, msg);
            fails++;
        } else {
            ck_assert_msg(st == LC_OK, "length %zu: %s", len, lc_last_error());
            walk(f, true);
            lc_gguf_close(f);
            oks++;
        }
        free(p);
    }
    lt_log("truncation: %d lengths refused, %d accepted (only cuts inside the final padding)\n", fails, oks);
    free(img);
}
END_TEST

START_TEST(test_random_header_corruption) {
    size_t size, end, data_offset;
    uint8_t *img = small_image(&size, &end, &data_offset);
    lt_rng rng;
    lt_rng_seed(&rng, 20240611);
    int refused = 0, accepted = 0;
    int by_status[LC_STATUS_COUNT] = {0};
    const int n_mut = 800;
    for (int m = 0; m < n_mut; m++) {
        uint8_t *p = exact_copy(img, size);
        int edits = 1 + lt_rng_int(&rng, 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)lt_rng_int(&rng, (int32_t)data_offset);
            switch (lt_rng_int(&rng, 4)) {
            case 0: p[at] = (uint8_t)lt_rng_int(&rng, 256); break;        /* random byte */
            case 1: p[at] ^= (uint8_t)(1u << lt_rng_int(&rng, 8)); break; /* one bit */
            case 2: p[at] = 0xFF; break;                                   /* large lengths */
            default: /* an 8-byte field overwritten with a random value */
                for (size_t j = at; j < at + 8 && j < data_offset; j++) p[j] = (uint8_t)lt_rng_int(&rng, 256);
            }
        }
        lc_gguf *f = NULL;
        lc_clear_error();
        lc_status st = lc_gguf_open_memory(p, size, "mutant.gguf", &f);
        ck_assert_int_ge((int)st, 0);
        ck_assert_int_lt((int)st, LC_STATUS_COUNT);
        by_status[st]++;
        if (st == LC_OK) {
            walk(f, true);
            lc_gguf_close(f);
            accepted++;
        } else {
            ck_assert_msg(st == LC_ERR_FORMAT, "mutation %d: %s: %s", m, lc_status_str(st), lc_last_error());
            ck_assert_ptr_null(f);
            ck_assert_msg(strstr(lc_last_error(), "gguf: mutant.gguf: offset ") == lc_last_error(), "mutation %d: %s",
                          m, lc_last_error());
            refused++;
        }
        free(p);
    }
    lt_log("corruption: %d mutations, %d refused (format), %d still valid (e.g. a changed value byte)\n", n_mut,
           refused, accepted);
    ck_assert_int_gt(refused, n_mut / 2);
    free(img);
}
END_TEST

static Suite *gguf_suite(void) {
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("gguf");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_handmade_valid);
    tcase_add_test(tc, test_handmade_unaligned_array);
    tcase_add_test(tc, test_writer_roundtrip);
    tcase_add_test(tc, test_writer_errors);
    tcase_add_test(tc, test_fixture_gguf_py);
    tcase_add_test(tc, test_tensor_load_cpu);
    tcase_add_test(tc, test_bad_header);
    tcase_add_test(tc, test_bad_kv);
    tcase_add_test(tc, test_bad_tensor_info);
    tcase_add_test(tc, test_bad_paths);
    tcase_add_test(tc, test_truncation_every_length);
    tcase_add_test(tc, test_random_header_corruption);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(gguf_suite());
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
