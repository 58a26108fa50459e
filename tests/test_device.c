/* lorac tests — suite "device": registry, spec parsing, buffers, tensors and GEMM validation.
 *
 * Every test opens its devices itself (Check forks each test; OpenCL / Vulkan state must not be
 * created in the parent process). Expected values are computed here by hand or by plain loops.
 */
#include <check.h>

#include "common/lt_suite.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/lorac.h"

static lc_device *open_cpu(void) {
    lc_device *dev = NULL;
    lc_status st = lc_device_open("cpu", &dev);
    ck_assert_msg(st == LC_OK, "open cpu: %s", lc_last_error());
    ck_assert_ptr_nonnull(dev);
    return dev;
}

START_TEST(test_cpu_info) {
    lc_device *dev = open_cpu();
    const lc_device_info *info = lc_device_get_info(dev);
    ck_assert_ptr_nonnull(info);
    ck_assert(info->is_cpu);
    ck_assert_int_gt(info->threads, 0);
    ck_assert_int_gt(info->compute_units, 0);
    ck_assert_uint_gt(info->memory_bytes, 0);
    ck_assert_str_eq(info->spec, "cpu");
    ck_assert_str_eq(info->backend, "cpu");
    ck_assert_int_eq(lc_device_synchronize(dev), LC_OK);
    ck_assert_uint_eq(lc_device_allocated(dev), 0);
    lc_device_close(dev);
    lc_device_close(NULL); /* no-op */
}
END_TEST

START_TEST(test_list_has_cpu) {
    int count = -1;
    ck_assert_int_eq(lc_device_list(NULL, 0, &count), LC_OK);
    ck_assert_int_ge(count, 1);
    lc_device_info *infos = calloc((size_t)count, sizeof *infos);
    int count2 = -1;
    ck_assert_int_eq(lc_device_list(infos, count, &count2), LC_OK);
    ck_assert_int_eq(count, count2);
    int cpus = 0;
    for (int i = 0; i < count; i++) {
        printf("device %d: %s [%s] %s (%s), is_cpu=%d\n", i, infos[i].spec, infos[i].backend, infos[i].name,
               infos[i].api_version, (int)infos[i].is_cpu);
        if (strcmp(infos[i].spec, "cpu") == 0) {
            cpus++;
            ck_assert(infos[i].is_cpu);
        }
        /* every listed spec opens */
        lc_device *dev = NULL;
        ck_assert_msg(lc_device_open(infos[i].spec, &dev) == LC_OK, "%s: %s", infos[i].spec, lc_last_error());
        ck_assert_str_eq(lc_device_get_info(dev)->spec, infos[i].spec);
        lc_device_close(dev);
    }
    ck_assert_int_eq(cpus, 1);
    /* A short output array still reports the total. */
    lc_device_info one;
    ck_assert_int_eq(lc_device_list(&one, 1, &count2), LC_OK);
    ck_assert_int_eq(count2, count);
    ck_assert_str_eq(one.spec, infos[0].spec);
    ck_assert_int_eq(lc_device_list(NULL, 1, &count2), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_list(infos, 1, NULL), LC_ERR_INVALID_ARG);
    /* Skipped backends give a reason exactly when they list no device. */
    const char *backends[2] = {"opencl", "vulkan"};
    for (int b = 0; b < 2; b++) {
        int have = 0;
        for (int i = 0; i < count; i++) have += strcmp(infos[i].backend, backends[b]) == 0;
        const char *why = lc_device_skipped(backends[b]);
        printf("%s: %d device(s)%s%s\n", backends[b], have, why ? "; skipped: " : "", why ? why : "");
        if (have == 0) {
            ck_assert_ptr_nonnull(why);
            ck_assert(strlen(why) > 10);
        }
    }
    ck_assert_ptr_null(lc_device_skipped("cpu"));
    ck_assert_ptr_null(lc_device_skipped(NULL));
    free(infos);
}
END_TEST

START_TEST(test_spec_parsing) {
    lc_device *dev = NULL;
    ck_assert_int_eq(lc_device_open("cpu", &dev), LC_OK);
    lc_device_close(dev);
    dev = NULL;
    ck_assert_int_eq(lc_device_open("cpu:0", &dev), LC_OK);
    ck_assert(lc_device_get_info(dev)->is_cpu);
    lc_device_close(dev);

    static const char *const malformed[] = {"cpu:x", "vulkan:-1", "foo", "opencl:", "cpu:0x1", "vulkan:1:2",
                                            " cpu", "auto:0", "opencl:99999999999", "cpux"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        dev = (lc_device *)1;
        lc_status st = lc_device_open(malformed[i], &dev);
        ck_assert_msg(st == LC_ERR_INVALID_ARG, "spec \"%s\" gave %s", malformed[i], lc_status_str(st));
        ck_assert_ptr_null(dev);
        ck_assert_msg(strstr(lc_last_error(), malformed[i]) != NULL, "message names the spec: %s", lc_last_error());
    }
    /* Well formed but absent: no device, and the message lists what exists. */
    static const char *const absent[] = {"cpu:1", "opencl:97", "vulkan:98"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        lc_status st = lc_device_open(absent[i], &dev);
        ck_assert_msg(st == LC_ERR_NO_DEVICE, "spec \"%s\" gave %s", absent[i], lc_status_str(st));
        ck_assert_ptr_null(dev);
        const char *msg = lc_last_error();
        ck_assert_msg(strstr(msg, "cpu") && strstr(msg, absent[i]), "message: %s", msg);
    }
    ck_assert_int_eq(lc_device_open("cpu", NULL), LC_ERR_INVALID_ARG);
}
END_TEST

START_TEST(test_env_device) {
    lc_device *dev = NULL;
    setenv("LORAC_DEVICE", "cpu", 1);
    ck_assert_int_eq(lc_device_open(NULL, &dev), LC_OK);
    ck_assert(lc_device_get_info(dev)->is_cpu);
    lc_device_close(dev);
    ck_assert_int_eq(lc_device_open("", &dev), LC_OK);
    ck_assert_str_eq(lc_device_get_info(dev)->spec, "cpu");
    lc_device_close(dev);
    setenv("LORAC_DEVICE", "foo", 1);
    ck_assert_int_eq(lc_device_open(NULL, &dev), LC_ERR_INVALID_ARG);
    setenv("LORAC_DEVICE", "vulkan:55", 1);
    ck_assert_int_eq(lc_device_open("", &dev), LC_ERR_NO_DEVICE);
    ck_assert_msg(strstr(lc_last_error(), "cpu") != NULL, "message: %s", lc_last_error());
    /* an explicit spec wins over the environment */
    ck_assert_int_eq(lc_device_open("cpu", &dev), LC_OK);
    lc_device_close(dev);
    unsetenv("LORAC_DEVICE");
    ck_assert_int_eq(lc_device_open(NULL, &dev), LC_OK); /* auto */
    lc_device_close(dev);
}
END_TEST

START_TEST(test_auto) {
    int count = 0;
    ck_assert_int_eq(lc_device_list(NULL, 0, &count), LC_OK);
    lc_device_info *infos = calloc((size_t)count, sizeof *infos);
    ck_assert_int_eq(lc_device_list(infos, count, &count), LC_OK);
    const char *want = "cpu"; /* first device that is not a CPU (emulation), else the CPU */
    for (int i = 0; i < count; i++)
        if (!infos[i].is_cpu) {
            want = infos[i].spec;
            break;
        }
    lc_device *dev = NULL;
    ck_assert_msg(lc_device_open("auto", &dev) == LC_OK, "%s", lc_last_error());
    printf("auto -> %s (%s)\n", lc_device_get_info(dev)->spec, lc_device_get_info(dev)->name);
    ck_assert_str_eq(lc_device_get_info(dev)->spec, want);
    lc_device_close(dev);
    free(infos);
}
END_TEST

START_TEST(test_buffers) {
    lc_device *dev = open_cpu();
    lc_buffer *buf = NULL;
    ck_assert_int_eq(lc_buffer_alloc(dev, 0, &buf), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_buffer_alloc(dev, 1000, &buf), LC_OK);
    ck_assert_uint_eq(lc_device_allocated(dev), 1000);
    unsigned char host[1000], back[1000];
    ck_assert_int_eq(lc_buffer_download(buf, 0, back, sizeof back), LC_OK);
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(back[i], 0); /* zeroed at alloc */
    for (int i = 0; i < 1000; i++) host[i] = (unsigned char)(i * 7 + 3);
    ck_assert_int_eq(lc_buffer_upload(buf, 0, host, sizeof host), LC_OK);
    ck_assert_int_eq(lc_buffer_clear(buf, 100, 50), LC_OK);
    ck_assert_int_eq(lc_buffer_download(buf, 0, back, sizeof back), LC_OK);
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(back[i], (i >= 100 && i < 150) ? 0 : host[i]);
    /* partial upload at an offset, partial download */
    unsigned char patch[3] = {9, 8, 7}, got[5];
    ck_assert_int_eq(lc_buffer_upload(buf, 997, patch, 3), LC_OK);
    ck_assert_int_eq(lc_buffer_download(buf, 995, got, 5), LC_OK);
    ck_assert_int_eq(got[0], host[995]);
    ck_assert_int_eq(got[2], 9);
    ck_assert_int_eq(got[4], 7);
    /* out-of-range requests */
    ck_assert_int_eq(lc_buffer_upload(buf, 998, patch, 3), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_buffer_download(buf, 1001, got, 0), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_buffer_clear(buf, (size_t)-1, 2), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_buffer_download(buf, 0, NULL, 4), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_buffer_upload(NULL, 0, patch, 1), LC_ERR_INVALID_ARG);
    /* counters */
    lc_buffer *b2 = NULL;
    ck_assert_int_eq(lc_buffer_alloc(dev, 24, &b2), LC_OK);
    ck_assert_uint_eq(lc_device_allocated(dev), 1024);
    lc_buffer_free(buf);
    ck_assert_uint_eq(lc_device_allocated(dev), 24);
    ck_assert_uint_eq(lc_device_peak_allocated(dev), 1024);
    lc_buffer_free(b2);
    lc_buffer_free(NULL);
    ck_assert_uint_eq(lc_device_allocated(dev), 0);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_tensors) {
    lc_device *dev = open_cpu();
    lc_tensor *t = NULL;
    const int64_t ne[2] = {64, 3};
    ck_assert_int_eq(lc_tensor_new(dev, LC_F32, 2, ne, "w", LC_TENSOR_FROZEN, &t), LC_OK);
    ck_assert_int_eq(t->nb[0], 4);
    ck_assert_int_eq(t->nb[1], 256);
    ck_assert_int_eq(t->nb[2], 768);
    ck_assert_int_eq(t->nb[3], 768);
    ck_assert_int_eq(t->ne[2], 1);
    ck_assert(lc_is_contiguous(t));
    ck_assert_int_eq(lc_nelements(t), 192);
    ck_assert_int_eq(lc_nrows(t), 3);
    ck_assert_uint_eq(lc_nbytes(t), 768);
    ck_assert_str_eq(t->name, "w");
    ck_assert(t->flags & LC_TENSOR_OWNS_BUFFER);
    float x[192], y[192];
    ck_assert_int_eq(lc_tensor_get_f32(t, y, 192), LC_OK);
    for (int i = 0; i < 192; i++) ck_assert(y[i] == 0.0f);
    for (int i = 0; i < 192; i++) x[i] = (float)i * 0.25f - 7.0f;
    ck_assert_int_eq(lc_tensor_set_f32(t, x, 192), LC_OK);
    ck_assert_int_eq(lc_tensor_get_f32(t, y, 192), LC_OK);
    for (int i = 0; i < 192; i++) ck_assert(y[i] == x[i]);
    ck_assert_int_eq(lc_tensor_set_f32(t, x, 191), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_tensor_set(t, x, 700, 69), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_tensor_get(t, y, 764, 4), LC_OK);
    ck_assert(y[0] == x[191]);
    ck_assert_int_eq(lc_tensor_zero(t), LC_OK);
    ck_assert_int_eq(lc_tensor_get_f32(t, y, 192), LC_OK);
    for (int i = 0; i < 192; i++) ck_assert(y[i] == 0.0f);
    lc_tensor_free(t);

    /* Quantized layout: nb[0] = block bytes, nb[1] = row size; round trip within Q8_0 error. */
    const int64_t nq[2] = {64, 2};
    ck_assert_int_eq(lc_tensor_new(dev, LC_Q8_0, 2, nq, "q", LC_TENSOR_FROZEN, &t), LC_OK);
    ck_assert_int_eq(t->nb[0], 34);
    ck_assert_int_eq(t->nb[1], 68);
    ck_assert_uint_eq(lc_nbytes(t), 136);
    ck_assert(lc_is_contiguous(t));
    float q[128], qb[128];
    for (int i = 0; i < 128; i++) q[i] = sinf((float)i);
    ck_assert_int_eq(lc_tensor_set_f32(t, q, 128), LC_OK);
    ck_assert_int_eq(lc_tensor_get_f32(t, qb, 128), LC_OK);
    for (int i = 0; i < 128; i++) ck_assert_msg(fabsf(q[i] - qb[i]) <= 1.0f / 127.0f, "q8_0 %d: %g vs %g", i, q[i], qb[i]);
    lc_tensor_free(t);

    /* F16 */
    const int64_t nh[1] = {5};
    ck_assert_int_eq(lc_tensor_new(dev, LC_F16, 1, nh, NULL, 0, &t), LC_OK);
    ck_assert_int_eq(t->nb[0], 2);
    float h[5] = {1.0f, -2.5f, 0.1f, 65504.0f, 3.0f}, hb[5];
    ck_assert_int_eq(lc_tensor_set_f32(t, h, 5), LC_OK);
    ck_assert_int_eq(lc_tensor_get_f32(t, hb, 5), LC_OK);
    ck_assert(hb[0] == 1.0f && hb[1] == -2.5f && hb[3] == 65504.0f);
    ck_assert(fabsf(hb[2] - 0.1f) < 1e-4f);
    lc_tensor_free(t);

    /* I32 has no F32 conversion */
    ck_assert_int_eq(lc_tensor_new(dev, LC_I32, 1, nh, "ids", LC_TENSOR_INPUT, &t), LC_OK);
    ck_assert_int_eq(lc_tensor_set_f32(t, h, 5), LC_ERR_DTYPE);
    int32_t ids[5] = {1, 2, 3, 4, -5}, idb[5];
    ck_assert_int_eq(lc_tensor_set(t, ids, 0, sizeof ids), LC_OK);
    ck_assert_int_eq(lc_tensor_get(t, idb, 0, sizeof idb), LC_OK);
    ck_assert_int_eq(idb[4], -5);
    lc_tensor_free(t);

    /* layout errors */
    const int64_t bad0[2] = {0, 4}, badq[2] = {33, 1};
    t = (lc_tensor *)1;
    ck_assert_int_eq(lc_tensor_new(dev, LC_F32, 2, bad0, "z", 0, &t), LC_ERR_SHAPE);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(lc_tensor_new(dev, LC_Q4_0, 2, badq, "z", 0, &t), LC_ERR_SHAPE);
    ck_assert_int_eq(lc_tensor_new(dev, (lc_dtype)5, 2, ne, "z", 0, &t), LC_ERR_DTYPE);
    ck_assert_int_eq(lc_tensor_new(dev, LC_F32, 5, ne, "z", 0, &t), LC_ERR_SHAPE);
    ck_assert_int_eq(lc_tensor_new(dev, LC_F32, 0, ne, "z", 0, &t), LC_ERR_SHAPE);
    const int64_t huge[4] = {INT64_C(1) << 40, INT64_C(1) << 30, 1, 1};
    ck_assert_int_eq(lc_tensor_new(dev, LC_F32, 4, huge, "z", 0, &t), LC_ERR_SHAPE);
    ck_assert_int_eq(lc_tensor_new(dev, LC_F32, 2, ne, "z", LC_TENSOR_PARAM | LC_TENSOR_FROZEN, &t), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_tensor_new(NULL, LC_F32, 2, ne, "z", 0, &t), LC_ERR_INVALID_ARG);
    ck_assert_uint_eq(lc_device_allocated(dev), 0);
    lc_tensor_free(NULL);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_gemm) {
    lc_device *dev = open_cpu();
    /* C[2,3] = A[2,4] B[4,3], row-major, lda 5 (padded), ldb 3, ldc 4 (padded). */
    enum { M = 2, N = 3, K = 4, LDA = 5, LDB = 3, LDC = 4 };
    float a[M * LDA], b[K * LDB], c[M * LDC];
    for (int i = 0; i < M * LDA; i++) a[i] = (float)(i % 7) - 2.0f;
    for (int i = 0; i < K * LDB; i++) b[i] = (float)(i % 5) * 0.5f - 1.0f;
    for (int i = 0; i < M * LDC; i++) c[i] = 100.0f;
    lc_buffer *ba, *bb, *bc;
    ck_assert_int_eq(lc_buffer_alloc(dev, sizeof a, &ba), LC_OK);
    ck_assert_int_eq(lc_buffer_alloc(dev, sizeof b, &bb), LC_OK);
    ck_assert_int_eq(lc_buffer_alloc(dev, sizeof c, &bc), LC_OK);
    ck_assert_int_eq(lc_buffer_upload(ba, 0, a, sizeof a), LC_OK);
    ck_assert_int_eq(lc_buffer_upload(bb, 0, b, sizeof b), LC_OK);
    ck_assert_int_eq(lc_buffer_upload(bc, 0, c, sizeof c), LC_OK);
    lc_status st = lc_device_gemm(dev, false, false, M, N, K, 2.0f, ba, 0, LDA, bb, 0, LDB, 0.5f, bc, 0, LDC);
    if (st == LC_ERR_UNSUPPORTED) {
        printf("cpu gemm unsupported: %s\n", lc_last_error());
    } else {
        ck_assert_msg(st == LC_OK, "%s", lc_last_error());
        float got[M * LDC];
        ck_assert_int_eq(lc_buffer_download(bc, 0, got, sizeof got), LC_OK);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < LDC; j++) {
                double ref = 100.0;
                if (j < N) {
                    double s = 0;
                    for (int k = 0; k < K; k++) s += (double)a[i * LDA + k] * b[k * LDB + j];
                    ref = 2.0 * s + 0.5 * 100.0;
                }
                ck_assert_msg(fabs(got[i * LDC + j] - ref) < 1e-4, "C[%d,%d] = %g, want %g", i, j, got[i * LDC + j], ref);
            }
    }
    /* argument validation */
    ck_assert_int_eq(lc_device_gemm(dev, false, false, 0, N, K, 1, ba, 0, LDA, bb, 0, LDB, 0, bc, 0, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(dev, false, false, M, N, -1, 1, ba, 0, LDA, bb, 0, LDB, 0, bc, 0, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(dev, false, false, M, N, K, 1, ba, 0, K - 1, bb, 0, LDB, 0, bc, 0, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(dev, true, false, M, N, K, 1, ba, 0, M - 1, bb, 0, LDB, 0, bc, 0, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(dev, false, true, M, N, K, 1, ba, 0, LDA, bb, 0, K - 1, 0, bc, 0, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(dev, false, false, M, N, K, 1, ba, 0, LDA, bb, 0, LDB, 0, bc, 0, N - 1), LC_ERR_INVALID_ARG);
    /* ranges: A needs (M-1)*lda + K floats; an offset of one float runs past the end */
    ck_assert_int_eq(lc_device_gemm(dev, false, false, M, N, K, 1, ba, 8, LDA, bb, 0, LDB, 0, bc, 0, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(dev, false, false, M, N, K, 1, ba, 0, LDA, bb, 0, LDB, 0, bc, 4, LDC), LC_OK == st ? LC_OK : LC_ERR_UNSUPPORTED);
    ck_assert_int_eq(lc_device_gemm(dev, false, false, M, N, K, 1, ba, 0, LDA, bb, 0, LDB, 0, bc, 8, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(dev, false, false, M, N, K, 1, ba, 2, LDA, bb, 0, LDB, 0, bc, 0, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(dev, false, false, M, N, 6, 1, ba, 0, LDA, bb, 0, LDB, 0, bc, 0, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(dev, false, false, M, N, K, 1, NULL, 0, LDA, bb, 0, LDB, 0, bc, 0, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(NULL, false, false, M, N, K, 1, ba, 0, LDA, bb, 0, LDB, 0, bc, 0, LDC), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_device_gemm(dev, false, false, 1 << 30, 1 << 30, 1 << 30, 1, ba, 0, 1 << 30, bb, 0, 1 << 30, 0, bc,
                                    0, 1 << 30), LC_ERR_INVALID_ARG);
    /* a buffer from another device handle is refused */
    lc_device *dev2 = open_cpu();
    lc_buffer *other;
    ck_assert_int_eq(lc_buffer_alloc(dev2, sizeof c, &other), LC_OK);
    ck_assert_int_eq(lc_device_gemm(dev, false, false, M, N, K, 1, ba, 0, LDA, bb, 0, LDB, 0, other, 0, LDC), LC_ERR_INVALID_ARG);
    lc_buffer_free(other);
    lc_device_close(dev2);
    lc_buffer_free(ba);
    lc_buffer_free(bb);
    lc_buffer_free(bc);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_plugin_dir_missing) {
    /* A plugin directory without plugins: the reason names the file and the directory. */
    setenv("LORAC_PLUGIN_DIR", "/nonexistent/lorac-plugins", 1);
    const char *why = lc_device_skipped("opencl");
    if (why) {
        printf("opencl skipped: %s\n", why);
        ck_assert(strstr(why, "OpenCL") != NULL);
    }
    int count = 0;
    ck_assert_int_eq(lc_device_list(NULL, 0, &count), LC_OK);
    ck_assert_int_ge(count, 1);
    unsetenv("LORAC_PLUGIN_DIR");
}
END_TEST

static Suite *device_suite(void) {
    Suite *s = suite_create("device");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cpu_info);
    tcase_add_test(tc, test_list_has_cpu);
    tcase_add_test(tc, test_spec_parsing);
    tcase_add_test(tc, test_env_device);
    tcase_add_test(tc, test_auto);
    tcase_add_test(tc, test_buffers);
    tcase_add_test(tc, test_tensors);
    tcase_add_test(tc, test_gemm);
    tcase_add_test(tc, test_plugin_dir_missing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(device_suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
