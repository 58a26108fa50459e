/* lorac tests — suite "safetensors": the safetensors reader and writer (core/src/safetensors.c).
 *
 * Expected values come from outside the code under test: tests/fixtures/safetensors_fixture.safetensors
 * written by the PyPI safetensors package (tests/tools/make_peft_fixture.py, whose docstring lists
 * its contents), and images written byte by byte here following reference/peft-lora.md §3.
 * Bad input (each rule of §3.2, every truncation length, seeded header mutations) must give a clean
 * LC_ERR_FORMAT with a message naming the file and the tensor, never a crash.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lorac/lorac.h"
#include "lorac/safetensors.h"
#include "common/lt_util.h"
#include "common/lt_suite.h"

#ifndef LORAC_FIXTURE_DIR
#define LORAC_FIXTURE_DIR "tests/fixtures"
#endif
#define FIXTURE LORAC_FIXTURE_DIR "/safetensors_fixture.safetensors"

static uint8_t *read_file(const char *path, size_t *size) {
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fread(p, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *size = (size_t)n;
    return p;
}

/* An image: u64 N, the header text (not padded unless the text is), then `data_len` bytes 0,1,2,... */
static uint8_t *image(const char *header, size_t data_len, size_t *size) {
    size_t n = strlen(header);
    uint8_t *p = malloc(8 + n + data_len + 1);
    ck_assert_ptr_nonnull(p);
    uint64_t hn = n;
    memcpy(p, &hn, 8);
    memcpy(p + 8, header, n);
    for (size_t i = 0; i < data_len; i++) p[8 + n + i] = (uint8_t)i;
    *size = 8 + n + data_len;
    return p;
}

/* Open an image that must fail with `want` status and a message containing every given fragment. */
static void expect_bad(const char *header, size_t data_len, lc_status want, const char *frag1, const char *frag2) {
    size_t size;
    uint8_t *img = image(header, data_len, &size);
    lc_safetensors *f = (lc_safetensors *)0x1;
    lc_status st = lc_safetensors_open_memory(img, size, "bad.safetensors", &f);
    ck_assert_msg(st == want, "header %s: status %d (%s), expected %d", header, st, lc_last_error(), want);
    ck_assert_ptr_null(f);
    const char *msg = lc_last_error();
    ck_assert_msg(strstr(msg, "bad.safetensors") != NULL, "message '%s' does not name the file", msg);
    if (frag1) ck_assert_msg(strstr(msg, frag1) != NULL, "message '%s' lacks '%s'", msg, frag1);
    if (frag2) ck_assert_msg(strstr(msg, frag2) != NULL, "message '%s' lacks '%s'", msg, frag2);
    lt_log("  refused as expected: %s\n", msg);
    free(img);
}

START_TEST(test_fixture_values) {
    lc_safetensors *f = NULL;
    ck_assert_msg(lc_safetensors_open(FIXTURE, &f) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(lc_safetensors_n_tensors(f), 10);
    ck_assert_int_eq(lc_safetensors_header_size(f) % 8, 0);
    ck_assert_str_eq(lc_safetensors_metadata_get(f, "format"), "pt");
    ck_assert_str_eq(lc_safetensors_metadata_get(f, "source"), "lorac fixture");
    ck_assert_ptr_null(lc_safetensors_metadata_get(f, "nothing"));

    /* matrix F32 [3, 5], r*10+c with markers at [1,3] and [2,0] */
    int64_t id = lc_safetensors_find(f, "matrix");
    ck_assert_int_ge(id, 0);
    const lc_st_tensor_info *t = lc_safetensors_tensor(f, id);
    ck_assert_int_eq(t->dtype, LC_ST_F32);
    ck_assert_int_eq(t->n_dims, 2);
    ck_assert_int_eq(t->shape[0], 3);
    ck_assert_int_eq(t->shape[1], 5);
    ck_assert_int_eq(t->numel, 15);
    ck_assert_uint_eq(t->size, 60);
    ck_assert_uint_eq(t->offset, 8 + lc_safetensors_header_size(f) + t->begin);
    float m[15];
    ck_assert_int_eq(lc_safetensors_read_f32(f, id, m, 15), LC_OK);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 5; c++) {
            float want = (float)(r * 10 + c);
            if (r == 1 && c == 3) want = 42.0f;
            if (r == 2 && c == 0) want = -7.5f;
            ck_assert_msg(m[r * 5 + c] == want, "matrix[%d,%d] = %g, want %g", r, c, m[r * 5 + c], want);
        }
    ck_assert_int_eq(lc_safetensors_read_f32(f, id, m, 14), LC_ERR_INVALID_ARG);

    float h[6];
    id = lc_safetensors_find(f, "half");
    ck_assert_int_eq(lc_safetensors_tensor(f, id)->dtype, LC_ST_F16);
    ck_assert_int_eq(lc_safetensors_read_f32(f, id, h, 6), LC_OK);
    const float hw[6] = {1, -2, 0.5f, 65504, 5.9604644775390625e-8f, -0.0f};
    for (int i = 0; i < 6; i++) ck_assert_msg(h[i] == hw[i], "half[%d] = %g", i, h[i]);
    ck_assert(signbit(h[5]));

    float b[4];
    id = lc_safetensors_find(f, "brain");
    ck_assert_int_eq(lc_safetensors_tensor(f, id)->dtype, LC_ST_BF16);
    ck_assert_int_eq(lc_safetensors_read_f32(f, id, b, 4), LC_OK);
    ck_assert(b[0] == 1.0f && b[1] == -3.140625f && b[3] == 65280.0f);
    ck_assert(b[2] == lc_bf16_to_fp32(lc_fp32_to_bf16(1e-3f)));

    float d[2];
    id = lc_safetensors_find(f, "double");
    ck_assert_int_eq(lc_safetensors_read_f32(f, id, d, 2), LC_OK);
    ck_assert(d[0] == 0.1f && d[1] == -2.5f);

    /* metadata-only dtypes: raw bytes */
    t = lc_safetensors_tensor(f, lc_safetensors_find(f, "ids"));
    ck_assert_int_eq(t->dtype, LC_ST_I32);
    int32_t ids[4];
    memcpy(ids, t->data, 16);
    ck_assert(ids[0] == 1 && ids[1] == -2 && ids[2] == 3 && ids[3] == 2147483647);
    ck_assert_int_eq(lc_safetensors_read_f32(f, lc_safetensors_find(f, "ids"), m, 4), LC_ERR_DTYPE);
    t = lc_safetensors_tensor(f, lc_safetensors_find(f, "big"));
    int64_t big[2];
    memcpy(big, t->data, 16);
    ck_assert(t->dtype == LC_ST_I64 && big[0] == -((int64_t)1 << 40) && big[1] == ((int64_t)1 << 62));
    t = lc_safetensors_tensor(f, lc_safetensors_find(f, "bytes"));
    const uint8_t *u = t->data;
    ck_assert(t->dtype == LC_ST_U8 && u[0] == 0 && u[1] == 1 && u[2] == 127 && u[3] == 128 && u[4] == 255);
    t = lc_safetensors_tensor(f, lc_safetensors_find(f, "flags"));
    u = t->data;
    ck_assert(t->dtype == LC_ST_BOOL && u[0] == 1 && u[1] == 0 && u[2] == 1);
    t = lc_safetensors_tensor(f, lc_safetensors_find(f, "scalar"));
    ck_assert(t->n_dims == 0 && t->numel == 1);
    float sc;
    ck_assert_int_eq(lc_safetensors_read_f32(f, lc_safetensors_find(f, "scalar"), &sc, 1), LC_OK);
    ck_assert(sc == 3.5f);
    t = lc_safetensors_tensor(f, lc_safetensors_find(f, "empty"));
    ck_assert(t->n_dims == 2 && t->shape[0] == 0 && t->shape[1] == 4 && t->numel == 0 && t->size == 0);
    lc_safetensors_close(f);
}
END_TEST

/* lorac's writer, given the fixture's tensors and metadata, writes the fixture's exact bytes. */
START_TEST(test_writer_matches_reference_bytes) {
    size_t ref_size;
    uint8_t *ref = read_file(FIXTURE, &ref_size);
    lc_safetensors *f = NULL;
    ck_assert_int_eq(lc_safetensors_open_memory(ref, ref_size, "fixture", &f), LC_OK);
    lc_safetensors_writer *w = NULL;
    ck_assert_int_eq(lc_safetensors_writer_new(&w), LC_OK);
    /* add in reverse file order so the writer's sort does the work */
    for (int64_t i = lc_safetensors_n_tensors(f) - 1; i >= 0; i--) {
        const lc_st_tensor_info *t = lc_safetensors_tensor(f, i);
        ck_assert_int_eq(lc_safetensors_writer_add_ref(w, t->name, t->dtype, t->n_dims, t->shape, t->data, t->size),
                         LC_OK);
    }
    ck_assert_int_eq(lc_safetensors_writer_set_metadata(w, "source", "lorac fixture"), LC_OK);
    ck_assert_int_eq(lc_safetensors_writer_set_metadata(w, "format", "pt"), LC_OK);
    void *img = NULL;
    size_t size = 0;
    ck_assert_int_eq(lc_safetensors_writer_write_memory(w, &img, &size), LC_OK);
    ck_assert_uint_eq(size, ref_size);
    ck_assert_msg(memcmp(img, ref, size) == 0, "lorac's safetensors bytes differ from the safetensors package's");
    lt_log("[safetensors] writer reproduces the %zu bytes of the safetensors package's file\n", size);
    free(img);
    lc_safetensors_writer_free(w);
    lc_safetensors_close(f);
    free(ref);
}
END_TEST

START_TEST(test_roundtrip_file) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/lorac_st_%d.safetensors", (int)getpid());
    lc_safetensors_writer *w = NULL;
    ck_assert_int_eq(lc_safetensors_writer_new(&w), LC_OK);
    float a[2 * 7];
    for (int i = 0; i < 14; i++) a[i] = (float)i * 0.25f - 1.0f;
    const int64_t sa[2] = {2, 7}, s1[1] = {1}, s0[1] = {0};
    uint16_t hb[1] = {0x3C00};
    const char *odd = "we\"ird\\name\n\x01 \xc3\xa9";
    ck_assert_int_eq(lc_safetensors_writer_add(w, "a.lora_A.weight", LC_ST_F32, 2, sa, a, sizeof a), LC_OK);
    ck_assert_int_eq(lc_safetensors_writer_add(w, odd, LC_ST_F16, 1, s1, hb, 2), LC_OK);
    ck_assert_int_eq(lc_safetensors_writer_add(w, "zero", LC_ST_BF16, 1, s0, NULL, 0), LC_OK);
    ck_assert_int_eq(lc_safetensors_writer_set_metadata(w, "format", "pt"), LC_OK);
    ck_assert_int_eq(lc_safetensors_writer_write(w, path), LC_OK);
    lc_safetensors_writer_free(w);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    lc_safetensors *f = NULL;
    ck_assert_msg(lc_safetensors_open(path, &f) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(lc_safetensors_n_tensors(f), 3);
    int64_t id = lc_safetensors_find(f, "a.lora_A.weight");
    float back[14];
    ck_assert_int_eq(lc_safetensors_read_f32(f, id, back, 14), LC_OK);
    ck_assert_mem_eq(back, a, sizeof a);
    id = lc_safetensors_find(f, odd);
    ck_assert_int_ge(id, 0);
    ck_assert_int_eq(lc_safetensors_read_f32(f, id, back, 1), LC_OK);
    ck_assert(back[0] == 1.0f);
    ck_assert_int_eq(lc_safetensors_tensor(f, lc_safetensors_find(f, "zero"))->numel, 0);
    /* the F32 tensor sorts first (dtype descending) and its data starts 8-aligned */
    ck_assert_uint_eq(lc_safetensors_tensor(f, lc_safetensors_find(f, "a.lora_A.weight"))->begin, 0);
    ck_assert_uint_eq(lc_safetensors_header_size(f) % 8, 0);
    lc_safetensors_close(f);
    remove(path);

    /* a directory that does not exist: LC_ERR_IO naming the path, nothing left behind */
    ck_assert_int_eq(lc_safetensors_writer_new(&w), LC_OK);
    ck_assert_int_eq(lc_safetensors_writer_write(w, "/nonexistent_dir_lorac/x.safetensors"), LC_ERR_IO);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "/nonexistent_dir_lorac/x.safetensors"));
    /* an empty file is "{}" padded to 8 */
    void *img;
    size_t size;
    ck_assert_int_eq(lc_safetensors_writer_write_memory(w, &img, &size), LC_OK);
    ck_assert_uint_eq(size, 16);
    ck_assert_mem_eq((char *)img + 8, "{}      ", 8);
    free(img);
    lc_safetensors_writer_free(w);
}
END_TEST

START_TEST(test_writer_errors) {
    lc_safetensors_writer *w = NULL;
    ck_assert_int_eq(lc_safetensors_writer_new(&w), LC_OK);
    float x[6] = {0};
    const int64_t s[2] = {2, 3}, neg[1] = {-1};
    ck_assert_int_eq(lc_safetensors_writer_add(w, "x", LC_ST_F32, 2, s, x, 24), LC_OK);
    ck_assert_int_eq(lc_safetensors_writer_add(w, "x", LC_ST_F32, 2, s, x, 24), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_safetensors_writer_add(w, "y", LC_ST_F32, 2, s, x, 20), LC_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "'y'"));
    ck_assert_int_eq(lc_safetensors_writer_add(w, "__metadata__", LC_ST_F32, 2, s, x, 24), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_safetensors_writer_add(w, "", LC_ST_F32, 2, s, x, 24), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_safetensors_writer_add(w, "z", LC_ST_F32, 9, s, x, 24), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_safetensors_writer_add(w, "z", LC_ST_F32, 1, neg, x, 0), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_safetensors_writer_add(w, "z", (lc_st_dtype)99, 2, s, x, 24), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_safetensors_writer_add(w, "z", LC_ST_F4, 1, (const int64_t[]){3}, x, 1), LC_ERR_INVALID_ARG);
    lc_safetensors_writer_free(w);
}
END_TEST

/* Headers of any length (other writers do not pad): offsets count from 8 + N. */
START_TEST(test_unpadded_header_any_length) {
    for (int pad = 0; pad < 9; pad++) {
        char hdr[256];
        snprintf(hdr, sizeof hdr, "{\"t\":{\"dtype\":\"U8\",\"shape\":[2,3],\"data_offsets\":[0,6]}}%*s", pad, "");
        size_t size;
        uint8_t *img = image(hdr, 6, &size);
        lc_safetensors *f = NULL;
        ck_assert_msg(lc_safetensors_open_memory(img, size, "pad", &f) == LC_OK, "pad %d: %s", pad, lc_last_error());
        const lc_st_tensor_info *t = lc_safetensors_tensor(f, 0);
        ck_assert_uint_eq(t->offset, 8 + strlen(hdr));
        const uint8_t *p = t->data;
        for (int i = 0; i < 6; i++) ck_assert_int_eq(p[i], i);
        lc_safetensors_close(f);
        free(img);
    }
    /* tensors listed out of data order, and a zero-sized one sharing an offset */
    size_t size;
    uint8_t *img = image("{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                         "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                         "\"a\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 6, &size);
    lc_safetensors *f = NULL;
    ck_assert_msg(lc_safetensors_open_memory(img, size, "order", &f) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(((const uint8_t *)lc_safetensors_tensor(f, lc_safetensors_find(f, "b"))->data)[0], 4);
    lc_safetensors_close(f);
    free(img);
}
END_TEST

START_TEST(test_bad_files) {
    /* offsets that disagree with shape x dtype */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[3,5],\"data_offsets\":[0,20]}}", 20, LC_ERR_FORMAT, "'w'", "60");
    expect_bad("{\"w\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, LC_ERR_FORMAT, "'w'", "needs 8");
    /* overlap */
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6, LC_ERR_FORMAT, "overlap", "'b'");
    /* gap (at the start, and between tensors) */
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6, LC_ERR_FORMAT, "gap", "'a'");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
               "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}", 5, LC_ERR_FORMAT, "gap", "'b'");
    /* past the end of the file */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12, LC_ERR_FORMAT, "past the end", "'a'");
    /* bytes left over after the last tensor */
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 7, LC_ERR_FORMAT, "cover", NULL);
    /* begin > end */
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, LC_ERR_FORMAT, "begin > end", "'a'");
    /* JSON problems */
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}", 4, LC_ERR_FORMAT, "JSON", NULL);
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}} x", 4, LC_ERR_FORMAT, "after", NULL);
    expect_bad(" {}", 0, LC_ERR_FORMAT, "'{'", NULL);
    expect_bad("", 0, LC_ERR_FORMAT, "'{'", NULL);
    expect_bad("{\"a\":1}", 0, LC_ERR_FORMAT, "'a'", "object");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, LC_ERR_FORMAT, "twice", "'a'");
    expect_bad("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, LC_ERR_FORMAT, "F33", "'a'");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, LC_ERR_FORMAT, "shape", "'a'");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, LC_ERR_FORMAT, "shape", "'a'");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, LC_ERR_FORMAT,
               "dimensions", "'a'");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0]}}", 4, LC_ERR_FORMAT, "data_offsets", "'a'");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4]}}", 4, LC_ERR_FORMAT, "data_offsets", "'a'");
    expect_bad("{\"a\":{\"shape\":[4],\"data_offsets\":[0,4]}}", 4, LC_ERR_FORMAT, "dtype", "'a'");
    expect_bad("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2, LC_ERR_FORMAT, "whole", "'a'");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, LC_ERR_FORMAT,
               "overflow", "'a'");
    expect_bad("{\"__metadata__\":{\"format\":1}}", 0, LC_ERR_FORMAT, "__metadata__", "format");
    expect_bad("{\"bad\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, LC_ERR_FORMAT, "UTF-8", NULL);

    /* header length past EOF, above the limit, and files shorter than the length field */
    uint8_t raw[16] = {0};
    uint64_t n = 100;
    memcpy(raw, &n, 8);
    memcpy(raw + 8, "{}      ", 8);
    lc_safetensors *f = NULL;
    ck_assert_int_eq(lc_safetensors_open_memory(raw, 16, "len.safetensors", &f), LC_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "past the end"));
    n = 200000000;
    memcpy(raw, &n, 8);
    ck_assert_int_eq(lc_safetensors_open_memory(raw, 16, "len.safetensors", &f), LC_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lc_last_error(), "limit"));
    for (size_t k = 0; k < 8; k++) {
        ck_assert_int_eq(lc_safetensors_open_memory(raw, k, "short.safetensors", &f), LC_ERR_FORMAT);
        ck_assert_ptr_null(f);
    }
    ck_assert_int_eq(lc_safetensors_open("/nonexistent/x.safetensors", &f), LC_ERR_IO);
    ck_assert_int_eq(lc_safetensors_open("/tmp", &f), LC_ERR_IO);
    ck_assert_int_eq(lc_safetensors_open(NULL, &f), LC_ERR_INVALID_ARG);
}
END_TEST

/* Every truncation of the fixture is an error; seeded single-byte header mutations never crash. */
START_TEST(test_truncation_and_mutation) {
    size_t size;
    uint8_t *ref = read_file(FIXTURE, &size);
    for (size_t k = 0; k < size; k++) {
        uint8_t *cut = malloc(k + 1);
        memcpy(cut, ref, k);
        lc_safetensors *f = NULL;
        ck_assert_msg(lc_safetensors_open_memory(cut, k, "cut", &f) == LC_ERR_FORMAT, "length %zu accepted", k);
        ck_assert_ptr_null(f);
        free(cut);
    }
    uint64_t hn;
    memcpy(&hn, ref, 8);
    lt_rng rng;
    lt_rng_seed(&rng, 1234);
    int refused = 0, accepted = 0;
    uint8_t *mut = malloc(size);
    for (int i = 0; i < 3000; i++) {
        memcpy(mut, ref, size);
        size_t pos = (size_t)lt_rng_int(&rng, (int32_t)(8 + hn));
        mut[pos] = (uint8_t)lt_rng_int(&rng, 256);
        lc_safetensors *f = NULL;
        lc_status st = lc_safetensors_open_memory(mut, size, "mut", &f);
        if (st == LC_OK) {
            accepted++;
            for (int64_t t = 0; t < lc_safetensors_n_tensors(f); t++) { /* what is accepted is in bounds */
                const lc_st_tensor_info *ti = lc_safetensors_tensor(f, t);
                ck_assert(ti->offset + ti->size <= size);
            }
            lc_safetensors_close(f);
        } else {
            ck_assert_int_eq(st, LC_ERR_FORMAT);
            refused++;
        }
    }
    lt_log("[safetensors] mutations: %d refused, %d accepted (harmless edits such as digits of equal value or "
           "name letters)\n", refused, accepted);
    ck_assert_int_gt(refused, 1000);
    free(mut);
    free(ref);
}
END_TEST

static Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fixture_values);
    tcase_add_test(tc, test_writer_matches_reference_bytes);
    tcase_add_test(tc, test_roundtrip_file);
    tcase_add_test(tc, test_writer_errors);
    tcase_add_test(tc, test_unpadded_header_any_length);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_truncation_and_mutation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(safetensors_suite());
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
