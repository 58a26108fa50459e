/* lorac tests — suite "graph": builder validation, autodiff structure and accumulation, the
 * memory planner, replay, and the LoRA helpers (scaling, init, merge).
 *
 * Runs on the CPU device (the graph core is device independent; every backend's kernels are
 * checked by the op suites). Expected numbers are derived by hand in the comments or by plain
 * loops here.
 */
#include <check.h>

#include "common/lt_suite.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/lorac.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static lc_device *open_cpu(void) {
    lc_device *dev = NULL;
    ck_assert_msg(lc_device_open("cpu", &dev) == LC_OK, "open cpu: %s", lc_last_error());
    return dev;
}

static lc_tensor *mk(lc_device *dev, lc_dtype dt, int64_t ne0, int64_t ne1, uint32_t flags, const char *name) {
    lc_tensor *t = NULL;
    const int64_t ne[2] = {ne0, ne1};
    ck_assert_msg(lc_tensor_new(dev, dt, 2, ne, name, flags, &t) == LC_OK, "%s: %s", name, lc_last_error());
    return t;
}

static lc_tensor *mk_f32(lc_device *dev, int64_t ne0, int64_t ne1, uint32_t flags, const char *name,
                         const float *data) {
    lc_tensor *t = mk(dev, LC_F32, ne0, ne1, flags, name);
    if (data) ck_assert_int_eq(lc_tensor_set_f32(t, data, ne0 * ne1), LC_OK);
    return t;
}

static float *get_all(const lc_tensor *t) {
    int64_t n = lc_nelements(t);
    float *v = malloc((size_t)n * sizeof *v);
    ck_assert_msg(lc_tensor_get_f32(t, v, n) == LC_OK, "get %s: %s", t->name, lc_last_error());
    return v;
}

/* Deterministic test values (not lorac's RNG): a small LCG in [-1, 1). */
static void fill_vals(float *x, int64_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
}

/* Count nodes with `op`. */
static int count_op(const lc_graph *g, lc_op op) {
    int c = 0;
    for (int i = 0; i < lc_graph_n_nodes(g); i++) c += lc_graph_node(g, i)->op == op;
    return c;
}

static lc_node *find_back_of(const lc_graph *g, lc_op op, const lc_tensor *fwd_dst0) {
    for (int i = 0; i < lc_graph_n_nodes(g); i++) {
        lc_node *n = lc_graph_node(g, i);
        if (n->op == op && n->src[4] == fwd_dst0) return n;
    }
    return NULL;
}

/* ---- builder validation ------------------------------------------------------------------- */

/* Each case builds one bad node in a fresh graph: NULL result and the expected status. */
#define EXPECT_FAIL(expr, want)                                                                                  \
    do {                                                                                                        \
        lc_graph *g = lc_graph_new(dev);                                                                        \
        ck_assert_ptr_nonnull(g);                                                                               \
        lc_tensor *r_ = (expr);                                                                                 \
        ck_assert_msg(r_ == NULL, "%s: expected NULL", #expr);                                                  \
        ck_assert_msg(lc_graph_status(g) == (want), "%s: status %s, want %s (%s)", #expr,                       \
                      lc_status_str(lc_graph_status(g)), lc_status_str(want), lc_graph_error(g));              \
        ck_assert_msg(strlen(lc_graph_error(g)) > 0, "%s: empty message", #expr);                               \
        lc_graph_free(g);                                                                                       \
    } while (0)

#define EXPECT_OK(expr)                                                                                          \
    do {                                                                                                        \
        lc_graph *g = lc_graph_new(dev);                                                                        \
        lc_tensor *r_ = (expr);                                                                                 \
        ck_assert_msg(r_ != NULL && lc_graph_status(g) == LC_OK, "%s: %s", #expr, lc_graph_error(g));           \
        lc_graph_free(g);                                                                                       \
    } while (0)

START_TEST(test_builder_errors) {
    lc_device *dev = open_cpu();
    lc_tensor *x = mk(dev, LC_F32, 8, 5, LC_TENSOR_INPUT, "x");       /* [K=8, M=5] */
    lc_tensor *w = mk(dev, LC_F32, 8, 6, LC_TENSOR_FROZEN, "w");      /* [K=8, N=6] */
    lc_tensor *w7 = mk(dev, LC_F32, 7, 6, LC_TENSOR_FROZEN, "w7");
    lc_tensor *wq = mk(dev, LC_Q8_0, 32, 6, LC_TENSOR_FROZEN, "wq");
    lc_tensor *a = mk(dev, LC_F32, 8, 2, LC_TENSOR_PARAM, "lora_A");  /* [in=8, r=2] */
    lc_tensor *b = mk(dev, LC_F32, 2, 6, LC_TENSOR_PARAM, "lora_B");  /* [r=2, out=6] */
    lc_tensor *b3 = mk(dev, LC_F32, 3, 6, LC_TENSOR_PARAM, "lora_B3");
    lc_tensor *ids = mk(dev, LC_I32, 5, 1, LC_TENSOR_INPUT, "ids");
    lc_tensor *ids2d = mk(dev, LC_I32, 5, 2, LC_TENSOR_INPUT, "ids2d");
    lc_tensor *xh = mk(dev, LC_F16, 8, 5, 0, "xh");
    lc_tensor *bias3 = mk(dev, LC_F32, 3, 1, 0, "bias3");
    lc_tensor *bias8 = mk(dev, LC_F32, 8, 1, 0, "bias8");
    lc_tensor *nw8 = mk(dev, LC_F32, 8, 1, 0, "norm_w8");
    lc_tensor *nw3 = mk(dev, LC_F32, 3, 1, 0, "norm_w3");
    lc_tensor *q = mk(dev, LC_F32, 16, 6, 0, "q");   /* hd 4, 4 heads, T 6 */
    lc_tensor *kv = mk(dev, LC_F32, 8, 6, 0, "kv");  /* hd 4, 2 kv heads */
    lc_tensor *kv5 = mk(dev, LC_F32, 8, 5, 0, "kv5");
    lc_tensor *pos6 = mk(dev, LC_I32, 6, 1, 0, "pos6");
    lc_tensor *lab5 = mk(dev, LC_I32, 5, 1, 0, "labels5");
    lc_tensor *lab4 = mk(dev, LC_I32, 4, 1, 0, "labels4");
    lc_tensor *m8x5 = mk(dev, LC_F32, 8, 5, 0, "m");
    lc_tensor *v8x5 = mk(dev, LC_F32, 8, 5, 0, "v");
    lc_tensor *g8x4 = mk(dev, LC_F32, 8, 4, 0, "g84");
    lc_tensor *x3d = NULL;
    const int64_t ne3[3] = {8, 5, 2};
    ck_assert_int_eq(lc_tensor_new(dev, LC_F32, 3, ne3, "x3d", 0, &x3d), LC_OK);
    lc_lora_params lp = {.scaling = 2.0f, .dropout = 0.0f, .module_id = 1, .seed = 7};
    lc_lora_params lp_bad = {.scaling = 2.0f, .dropout = 1.0f, .module_id = 1, .seed = 7};
    lc_attention_params ap = {.n_head = 4, .n_kv = 2, .n_seq = 1, .causal = true, .window = 0, .scale = 0.5f};
    lc_attention_params ap_bad = {.n_head = 4, .n_kv = 3, .n_seq = 1, .causal = true, .window = 0, .scale = 0.5f};
    lc_adamw_params adp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};

    /* valid versions build */
    EXPECT_OK(lc_mul_mat(g, x, w));
    lc_tensor *x32 = mk(dev, LC_F32, 32, 5, 0, "x32");
    EXPECT_OK(lc_mul_mat(g, x32, wq)); /* quantized weight */
    EXPECT_OK(lc_lora(g, x, w, a, b, &lp));
    EXPECT_OK(lc_get_rows(g, w, ids));
    EXPECT_OK(lc_attention(g, q, kv, kv, &ap));
    EXPECT_OK(lc_rope(g, q, pos6, 4, 4, LC_ROPE_NEOX, 10000.0f, 1.0f));
    EXPECT_OK(lc_cross_entropy(g, x, lab5, -100));
    EXPECT_OK(lc_add(g, x, bias8));
    EXPECT_OK(lc_rms_norm(g, x, nw8, 0, 1e-6f));
    EXPECT_OK(lc_rms_norm(g, x, NULL, 4, 1e-6f));
    EXPECT_OK(lc_dequantize(g, wq));
    EXPECT_OK(lc_cpy(g, x, LC_BF16));
    EXPECT_OK(lc_sum_sq(g, x3d));
    lc_tensor *v2 = mk(dev, LC_F32, 8, 5, 0, "v2");
    EXPECT_OK(lc_adamw(g, m8x5, x, v8x5, v2, &adp));

    /* mul_mat */
    EXPECT_FAIL(lc_mul_mat(g, x, w7), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_mul_mat(g, xh, w), LC_ERR_DTYPE);
    EXPECT_FAIL(lc_mul_mat(g, x, ids), LC_ERR_DTYPE);
    EXPECT_FAIL(lc_mul_mat(g, x3d, w), LC_ERR_SHAPE);
    /* lora */
    EXPECT_FAIL(lc_lora(g, x, w, a, b3, &lp), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_lora(g, x, w7, a, b, &lp), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_lora(g, x, w, b, a, &lp), LC_ERR_SHAPE); /* A and B swapped */
    EXPECT_FAIL(lc_lora(g, x, w, a, b, &lp_bad), LC_ERR_INVALID_ARG);
    EXPECT_FAIL(lc_lora(g, x, w, a, b, NULL), LC_ERR_INVALID_ARG);
    EXPECT_FAIL(lc_lora(g, xh, w, a, b, &lp), LC_ERR_DTYPE);
    /* get_rows */
    EXPECT_FAIL(lc_get_rows(g, w, x), LC_ERR_DTYPE);
    EXPECT_FAIL(lc_get_rows(g, w, ids2d), LC_ERR_SHAPE);
    /* add / mul broadcast */
    EXPECT_FAIL(lc_add(g, x, bias3), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_mul(g, bias8, x), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_add(g, x, ids), LC_ERR_DTYPE);
    /* scale, unary */
    EXPECT_FAIL(lc_scale(g, xh, 2.0f), LC_ERR_DTYPE);
    EXPECT_FAIL(lc_scale(g, x, NAN), LC_ERR_INVALID_ARG);
    EXPECT_FAIL(lc_gelu_tanh(g, ids), LC_ERR_DTYPE);
    EXPECT_FAIL(lc_silu(g, x3d), LC_ERR_SHAPE);
    /* gated */
    EXPECT_FAIL(lc_geglu(g, x, g8x4), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_swiglu(g, x, xh), LC_ERR_DTYPE);
    /* rms_norm */
    EXPECT_FAIL(lc_rms_norm(g, x, nw3, 0, 1e-6f), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_rms_norm(g, x, NULL, 3, 1e-6f), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_rms_norm(g, x, nw8, 0, -1.0f), LC_ERR_INVALID_ARG);
    /* rope */
    EXPECT_FAIL(lc_rope(g, q, pos6, 3, 4, LC_ROPE_NORM, 10000.0f, 1.0f), LC_ERR_SHAPE); /* 16 % 3 */
    EXPECT_FAIL(lc_rope(g, q, pos6, 4, 3, LC_ROPE_NORM, 10000.0f, 1.0f), LC_ERR_INVALID_ARG); /* odd n_rot */
    EXPECT_FAIL(lc_rope(g, q, pos6, 4, 6, LC_ROPE_NORM, 10000.0f, 1.0f), LC_ERR_INVALID_ARG); /* n_rot > hd */
    EXPECT_FAIL(lc_rope(g, q, ids, 4, 4, LC_ROPE_NORM, 10000.0f, 1.0f), LC_ERR_SHAPE);        /* 5 positions */
    EXPECT_FAIL(lc_rope(g, q, pos6, 4, 4, 1, 10000.0f, 1.0f), LC_ERR_INVALID_ARG);            /* mode */
    EXPECT_FAIL(lc_rope(g, q, q, 4, 4, LC_ROPE_NORM, 10000.0f, 1.0f), LC_ERR_DTYPE);
    /* attention */
    EXPECT_FAIL(lc_attention(g, q, kv, kv, &ap_bad), LC_ERR_INVALID_ARG);
    EXPECT_FAIL(lc_attention(g, q, kv, kv5, &ap), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_attention(g, q, q, q, &ap), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_attention(g, q, kv, kv, NULL), LC_ERR_INVALID_ARG);
    /* cross_entropy */
    EXPECT_FAIL(lc_cross_entropy(g, x, lab4, -100), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_cross_entropy(g, x, x, -100), LC_ERR_DTYPE);
    /* dequantize, cpy, sum_sq */
    EXPECT_FAIL(lc_dequantize(g, ids), LC_ERR_DTYPE);
    EXPECT_FAIL(lc_cpy(g, wq, LC_F32), LC_ERR_DTYPE);
    EXPECT_FAIL(lc_cpy(g, x, LC_Q8_0), LC_ERR_DTYPE);
    EXPECT_FAIL(lc_sum_sq(g, ids), LC_ERR_DTYPE);
    /* adamw, lora_merge */
    EXPECT_FAIL(lc_adamw(g, x, g8x4, m8x5, v8x5, &adp), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_adamw(g, x, x, m8x5, v8x5, &adp), LC_ERR_INVALID_ARG);
    EXPECT_FAIL(lc_adamw(g, x, m8x5, v8x5, g8x4, NULL), LC_ERR_INVALID_ARG);
    lc_tensor *frozen8x5 = mk(dev, LC_F32, 8, 5, LC_TENSOR_FROZEN, "frozen8x5");
    EXPECT_FAIL(lc_adamw(g, frozen8x5, x, m8x5, v8x5, &adp), LC_ERR_INVALID_ARG);
    EXPECT_FAIL(lc_lora_merge_op(g, w, a, b3, 1.0f), LC_ERR_SHAPE);
    EXPECT_FAIL(lc_lora_merge_op(g, wq, a, b, 1.0f), LC_ERR_DTYPE);
    /* fill */
    EXPECT_FAIL(lc_fill(g, 0, 3, 1.0f), LC_ERR_SHAPE);
    /* NULL inputs: NULL, recorded as INVALID_ARG when no earlier error explains them */
    EXPECT_FAIL(lc_mul_mat(g, NULL, w), LC_ERR_INVALID_ARG);
    {
        lc_graph *g = lc_graph_new(dev);
        lc_tensor *y = lc_mul_mat(g, x, w7); /* first error: shape */
        lc_tensor *z = lc_silu(g, y);
        lc_tensor *u = lc_add(g, z, x);
        ck_assert_ptr_null(y);
        ck_assert_ptr_null(z);
        ck_assert_ptr_null(u);
        ck_assert_int_eq(lc_graph_status(g), LC_ERR_SHAPE);
        ck_assert_msg(strstr(lc_graph_error(g), "mul_mat") && strstr(lc_graph_error(g), "7") &&
                          strstr(lc_graph_error(g), "8"),
                      "message names op and ne: %s", lc_graph_error(g));
        ck_assert_int_eq(lc_graph_plan(g), LC_ERR_SHAPE); /* a failed build cannot be planned */
        lc_graph_free(g);
    }
    /* a tensor from another device handle is rejected */
    {
        lc_device *dev2 = open_cpu();
        lc_tensor *w2 = mk(dev2, LC_F32, 8, 6, LC_TENSOR_FROZEN, "w_other");
        lc_graph *g = lc_graph_new(dev);
        ck_assert_ptr_null(lc_mul_mat(g, x, w2));
        ck_assert_int_eq(lc_graph_status(g), LC_ERR_INVALID_ARG);
        lc_graph_free(g);
        lc_tensor_free(w2);
        lc_device_close(dev2);
    }
    lc_tensor *all[] = {x, w, w7, wq, a, b, b3, ids, ids2d, xh, bias3, bias8, nw8, nw3, q, kv, kv5, pos6, lab5, lab4,
                        m8x5, v8x5, g8x4, x3d, v2, x32, frozen8x5};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) lc_tensor_free(all[i]);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_state_errors) {
    lc_device *dev = open_cpu();
    lc_graph *g = lc_graph_new(dev);
    lc_tensor *in = lc_graph_input(g, LC_F32, 4, 2, "in");
    ck_assert_ptr_nonnull(in);
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ck_assert_int_eq(lc_tensor_set_f32(in, v, 8), LC_ERR_STATE); /* no memory before plan */
    lc_tensor *y = lc_scale(g, in, 2.0f);
    ck_assert_ptr_nonnull(y);
    lc_graph_set_output(g, y);
    ck_assert_int_eq(lc_graph_compute(g), LC_ERR_STATE); /* not planned */
    ck_assert_int_eq(lc_graph_zero_grad(g), LC_ERR_STATE);
    ck_assert_int_eq(lc_graph_plan(g), LC_OK);
    ck_assert_int_eq(lc_graph_plan(g), LC_ERR_STATE);
    ck_assert_ptr_null(lc_scale(g, y, 3.0f));
    ck_assert_int_eq(lc_graph_status(g), LC_ERR_STATE);
    ck_assert_int_eq(lc_graph_backward(g, y, NULL), LC_ERR_STATE);
    /* the graph still computes */
    ck_assert_int_eq(lc_tensor_set_f32(in, v, 8), LC_OK);
    ck_assert_int_eq(lc_graph_compute(g), LC_OK);
    float *r = get_all(y);
    for (int i = 0; i < 8; i++) ck_assert(r[i] == 2.0f * v[i]);
    free(r);
    lc_graph_free(g);

    /* a kernel error during compute names the node index and op */
    lc_tensor *table = mk(dev, LC_F32, 4, 3, LC_TENSOR_FROZEN, "table");
    g = lc_graph_new(dev);
    lc_tensor *gi = lc_graph_input(g, LC_I32, 2, 1, "ids");
    lc_tensor *rows = lc_get_rows(g, lc_scale(g, lc_fill(g, 1, 1, 0.0f), 1.0f) ? table : NULL, gi);
    ck_assert_ptr_nonnull(rows);
    ck_assert_int_eq(lc_graph_plan(g), LC_OK);
    int32_t bad_ids[2] = {1, 7}; /* 7 is outside [0, 3) */
    ck_assert_int_eq(lc_tensor_set(gi, bad_ids, 0, sizeof bad_ids), LC_OK);
    lc_status cst = lc_graph_compute(g);
    ck_assert_int_ne(cst, LC_OK);
    ck_assert_msg(strstr(lc_last_error(), "node 2") && strstr(lc_last_error(), "get_rows"), "message: %s",
                  lc_last_error());
    lc_graph_free(g);
    lc_tensor_free(table);

    /* backward errors */
    lc_tensor *p = mk(dev, LC_F32, 4, 1, LC_TENSOR_PARAM, "p");
    lc_tensor *fz = mk(dev, LC_F32, 4, 1, LC_TENSOR_FROZEN, "frozen");
    g = lc_graph_new(dev);
    lc_tensor *s1 = lc_sum_sq(g, lc_scale(g, fz, 2.0f));
    ck_assert_int_eq(lc_graph_backward(g, s1, NULL), LC_ERR_INVALID_ARG); /* no parameter reaches it */
    lc_graph_free(g);
    g = lc_graph_new(dev);
    lc_tensor *s2 = lc_sum_sq(g, lc_scale(g, p, 2.0f)); /* SUM_SQ is not differentiable */
    ck_assert_int_eq(lc_graph_backward(g, s2, NULL), LC_ERR_INVALID_ARG);
    lc_tensor *vec = lc_scale(g, p, 3.0f);
    ck_assert_int_eq(lc_graph_backward(g, vec, NULL), LC_ERR_SHAPE); /* 4 elements, no seed */
    ck_assert_int_eq(lc_graph_backward(g, p, NULL), LC_ERR_INVALID_ARG); /* a leaf */
    lc_graph_free(g);
    lc_tensor_free(p);
    lc_tensor_free(fz);
    lc_device_close(dev);
}
END_TEST

/* ---- autodiff ----------------------------------------------------------------------------- */

START_TEST(test_backward_prunes_frozen) {
    lc_device *dev = open_cpu();
    enum { IN = 8, HID = 6, R = 2, V = 5, T = 4 };
    lc_tensor *x = mk(dev, LC_F32, IN, T, LC_TENSOR_INPUT, "x");
    lc_tensor *w0 = mk(dev, LC_F32, IN, IN, LC_TENSOR_FROZEN, "w0");
    lc_tensor *w1 = mk(dev, LC_F32, IN, HID, LC_TENSOR_FROZEN, "w1");
    lc_tensor *a = mk(dev, LC_F32, IN, R, LC_TENSOR_PARAM, "lora_A");
    lc_tensor *b = mk(dev, LC_F32, R, HID, LC_TENSOR_PARAM, "lora_B");
    lc_tensor *w2 = mk(dev, LC_F32, HID, V, LC_TENSOR_FROZEN, "w2");
    lc_tensor *labels = mk(dev, LC_I32, T, 1, LC_TENSOR_INPUT, "labels");
    float buf[IN * IN];
    fill_vals(buf, IN * T, 1);
    lc_tensor_set_f32(x, buf, IN * T);
    fill_vals(buf, IN * IN, 2);
    lc_tensor_set_f32(w0, buf, IN * IN);
    fill_vals(buf, IN * HID, 3);
    lc_tensor_set_f32(w1, buf, IN * HID);
    fill_vals(buf, HID * V, 4);
    lc_tensor_set_f32(w2, buf, HID * V);
    ck_assert_int_eq(lc_lora_init(a, b, 42, 1), LC_OK);
    fill_vals(buf, R * HID, 5); /* non-zero B so every gradient is non-trivial */
    lc_tensor_set_f32(b, buf, R * HID);
    int32_t lab[T] = {0, 3, 4, 1};
    lc_tensor_set(labels, lab, 0, sizeof lab);

    lc_graph *g = lc_graph_new(dev);
    lc_tensor *h = lc_mul_mat(g, x, w0);                      /* no parameter upstream */
    lc_tensor *hs = lc_silu(g, h);
    lc_lora_params lp = {.scaling = 0.5f, .dropout = 0.0f, .module_id = 3, .seed = 1};
    lc_tensor *y = lc_lora(g, hs, w1, a, b, &lp);             /* [HID, T] */
    lc_tensor *side = lc_gelu_tanh(g, y);                     /* does not reach the loss */
    lc_tensor *z = lc_mul_mat(g, y, w2);                      /* [V, T], frozen w2 */
    lc_tensor *loss = lc_cross_entropy(g, z, labels, -100);
    ck_assert_msg(lc_graph_status(g) == LC_OK, "%s", lc_graph_error(g));
    ck_assert_ptr_nonnull(side);
    int n_fwd = lc_graph_n_nodes(g);
    ck_assert_int_eq(lc_graph_backward(g, loss, NULL), LC_OK);
    ck_assert_int_eq(lc_graph_backward(g, loss, NULL), LC_ERR_STATE); /* once only */

    /* FILL seed, CROSS_ENTROPY_BACK, MUL_MAT_BACK (z), LORA_BACK; nothing for h, hs, side. */
    ck_assert_int_eq(lc_graph_n_nodes(g) - n_fwd, 4);
    ck_assert_int_eq(lc_graph_node(g, n_fwd)->op, LC_OP_FILL);
    ck_assert(lc_graph_node(g, n_fwd)->fp[0] == 1.0f);
    ck_assert_int_eq(count_op(g, LC_OP_MUL_MAT_BACK), 1);
    ck_assert_int_eq(count_op(g, LC_OP_SILU_BACK), 0);
    ck_assert_int_eq(count_op(g, LC_OP_GELU_TANH_BACK), 0);
    lc_node *mmb = find_back_of(g, LC_OP_MUL_MAT_BACK, z);
    ck_assert_ptr_nonnull(mmb);
    ck_assert_ptr_nonnull(mmb->dst[0]);  /* dL/dy */
    ck_assert_ptr_null(mmb->dst[1]);     /* never dW for frozen w2 */
    ck_assert_ptr_eq(mmb->src[0], y);
    ck_assert_ptr_eq(mmb->src[1], w2);
    ck_assert_ptr_eq(mmb->src[4], z);
    ck_assert_ptr_eq(mmb->src[6], z->grad);
    ck_assert_uint_eq(mmb->accum & 1u, 0); /* first writer of dL/dy overwrites */
    lc_node *ceb = find_back_of(g, LC_OP_CROSS_ENTROPY_BACK, loss);
    ck_assert_ptr_nonnull(ceb);
    ck_assert_ptr_eq(ceb->src[5], loss->producer->dst[1]); /* lse aux */
    ck_assert_ptr_eq(ceb->src[6], loss->grad);
    ck_assert_int_eq(ceb->ip[0], -100);
    lc_node *lb = find_back_of(g, LC_OP_LORA_BACK, y);
    ck_assert_ptr_nonnull(lb);
    ck_assert_ptr_null(lb->dst[0]);  /* hs does not need a gradient */
    ck_assert_ptr_null(lb->dst[1]);  /* frozen w1 */
    ck_assert_ptr_eq(lb->dst[2], a->grad);
    ck_assert_ptr_eq(lb->dst[3], b->grad);
    ck_assert_uint_eq(lb->accum & 12u, 12u); /* parameter gradients always accumulate */
    ck_assert_ptr_eq(lb->src[5], y->producer->dst[1]); /* u aux */
    ck_assert(lb->fp[0] == 0.5f && lb->ip[0] == 3);
    ck_assert_ptr_null(w0->grad);
    ck_assert_ptr_null(w1->grad);
    ck_assert_ptr_null(w2->grad);
    ck_assert_ptr_null(x->grad);
    ck_assert_ptr_null(h->grad);
    ck_assert_ptr_null(hs->grad);
    ck_assert_ptr_null(side->grad);
    ck_assert_ptr_nonnull(y->grad);
    ck_assert_int_eq(a->grad->dtype, LC_F32);
    ck_assert_int_eq(a->grad->ne[0], IN);
    ck_assert_int_eq(a->grad->ne[1], R);
    lc_tensor *params[4];
    ck_assert_int_eq(lc_graph_params(g, params, 4), 2);
    ck_assert_ptr_eq(params[0], a);
    ck_assert_ptr_eq(params[1], b);

    /* It plans and runs; dropout step reaches LORA and LORA_BACK. */
    lc_graph_set_step(g, 9);
    ck_assert_uint_eq(y->producer->rng_step, 9);
    ck_assert_uint_eq(lb->rng_step, 9);
    ck_assert_msg(lc_graph_plan(g) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(lc_graph_zero_grad(g), LC_OK);
    ck_assert_msg(lc_graph_compute(g) == LC_OK, "%s", lc_last_error());
    float l;
    ck_assert_int_eq(lc_tensor_get_f32(loss, &l, 1), LC_OK);
    ck_assert(isfinite(l) && l > 0.0f);
    float *gb1 = get_all(b->grad);
    /* A forward parameter changed after backward (the loss denominator D) reaches the backward
     * node at the next compute: D = 2 * T halves the loss and the gradients. */
    lc_tensor_node(loss)->fp[0] = 2.0f * T;
    ck_assert_int_eq(lc_graph_zero_grad(g), LC_OK);
    ck_assert_msg(lc_graph_compute(g) == LC_OK, "%s", lc_last_error());
    ck_assert(ceb->fp[0] == 2.0f * T);
    float l2;
    ck_assert_int_eq(lc_tensor_get_f32(loss, &l2, 1), LC_OK);
    ck_assert_msg(fabsf(l2 - 0.5f * l) <= 1e-6f * l, "loss %g -> %g", l, l2);
    float *gb2 = get_all(b->grad);
    for (int i = 0; i < R * HID; i++)
        ck_assert_msg(fabsf(gb2[i] - 0.5f * gb1[i]) <= 1e-6f * (fabsf(gb1[i]) + 1e-6f), "dB[%d] %g -> %g", i, gb1[i],
                      gb2[i]);
    free(gb1);
    free(gb2);
    float *gb = get_all(b->grad);
    double nb = 0;
    for (int i = 0; i < R * HID; i++) nb += fabs(gb[i]);
    ck_assert(nb > 0);
    free(gb);
    lc_graph_free(g);
    ck_assert_ptr_null(a->grad); /* the graph's gradients are gone with it */
    lc_tensor *all[] = {x, w0, w1, a, b, w2, labels};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) lc_tensor_free(all[i]);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_backward_accumulation) {
    lc_device *dev = open_cpu();
    enum { N0 = 4, N1 = 3 };
    float pv[N0 * N1], xv[N0 * N1], bv[N0], sv[N0 * N1];
    fill_vals(pv, N0 * N1, 11);
    fill_vals(xv, N0 * N1, 12);
    fill_vals(bv, N0, 13);
    fill_vals(sv, N0 * N1, 14);
    lc_tensor *p = mk_f32(dev, N0, N1, LC_TENSOR_PARAM, "p", pv);
    lc_tensor *bias = mk_f32(dev, N0, 1, LC_TENSOR_PARAM, "bias", bv);
    lc_tensor *x = mk_f32(dev, N0, N1, LC_TENSOR_INPUT, "x", xv);
    lc_tensor *seed = mk_f32(dev, N0, N1, 0, "seed", sv);

    /* t = 2p; a = 3t; c = 5t; d = t + t; e = a + c + d + (x + bias);  dL/de = seed.
     * dL/dt = 3s + 5s + 2s = 10s; dL/dp = 20s; dL/dbias[i] = sum_j s[i,j]. */
    lc_graph *g = lc_graph_new(dev);
    lc_tensor *t = lc_scale(g, p, 2.0f);
    lc_tensor *a = lc_scale(g, t, 3.0f);
    lc_tensor *c = lc_scale(g, t, 5.0f);
    lc_tensor *d = lc_add(g, t, t);
    lc_tensor *xb = lc_add(g, x, bias);
    lc_tensor *e = lc_add(g, lc_add(g, lc_add(g, a, c), d), xb);
    ck_assert_msg(lc_graph_status(g) == LC_OK, "%s", lc_graph_error(g));
    ck_assert_int_eq(lc_graph_backward(g, e, seed), LC_OK);
    ck_assert_ptr_eq(e->grad, seed);
    /* Writers of dL/dt in execution order: ADD_BACK(d) (first, with a FILL 0 before it since it
     * writes t's gradient twice), SCALE_BACK(c) and SCALE_BACK(a) accumulate. */
    lc_node *db = find_back_of(g, LC_OP_ADD_BACK, d);
    lc_node *cb = find_back_of(g, LC_OP_SCALE_BACK, c);
    lc_node *ab = find_back_of(g, LC_OP_SCALE_BACK, a);
    lc_node *tb = find_back_of(g, LC_OP_SCALE_BACK, t);
    lc_node *xbb = find_back_of(g, LC_OP_ADD_BACK, xb);
    ck_assert(db && cb && ab && tb && xbb);
    ck_assert(db->index < cb->index && cb->index < ab->index && ab->index < tb->index);
    ck_assert_ptr_eq(db->dst[0], t->grad);
    ck_assert_ptr_eq(db->dst[1], t->grad);
    ck_assert_uint_eq(db->accum & 3u, 3u);
    lc_node *z = lc_graph_node(g, db->index - 1);
    ck_assert_int_eq(z->op, LC_OP_FILL);
    ck_assert_ptr_eq(z->dst[0], t->grad);
    ck_assert(z->fp[0] == 0.0f);
    ck_assert_uint_eq(cb->accum & 1u, 1u);
    ck_assert_uint_eq(ab->accum & 1u, 1u);
    ck_assert_ptr_eq(tb->dst[0], p->grad);
    ck_assert_uint_eq(tb->accum & 1u, 1u);
    ck_assert_ptr_null(xbb->dst[0]); /* input x: no gradient */
    ck_assert_ptr_eq(xbb->dst[1], bias->grad);
    ck_assert_ptr_null(x->grad);
    /* dL/da is written once: overwrite */
    lc_node *sum_ac = a->grad->producer;
    ck_assert_ptr_nonnull(sum_ac);
    ck_assert_int_eq(sum_ac->op, LC_OP_ADD_BACK);
    ck_assert_uint_eq(sum_ac->accum & 1u, 0u);

    lc_graph_set_output(g, t->grad);
    ck_assert_msg(lc_graph_plan(g) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(lc_graph_zero_grad(g), LC_OK);
    for (int rep = 1; rep <= 2; rep++) { /* no zero_grad between: parameter gradients add up */
        ck_assert_msg(lc_graph_compute(g) == LC_OK, "%s", lc_last_error());
        float *gt = get_all(t->grad), *gp = get_all(p->grad), *gbias = get_all(bias->grad), *ev = get_all(e);
        for (int i = 0; i < N0 * N1; i++) {
            ck_assert_msg(fabsf(gt[i] - 10.0f * sv[i]) <= 1e-6f * 10.0f, "dt[%d] = %g, want %g", i, gt[i], 10.0f * sv[i]);
            ck_assert_msg(fabsf(gp[i] - rep * 20.0f * sv[i]) <= 1e-5f, "dp[%d] = %g, want %g (rep %d)", i, gp[i],
                          rep * 20.0f * sv[i], rep);
            float tv = 2.0f * pv[i];
            float want_e = 3.0f * tv + 5.0f * tv + (tv + tv) + xv[i] + bv[i % N0];
            ck_assert_msg(fabsf(ev[i] - want_e) <= 1e-5f, "e[%d] = %g, want %g", i, ev[i], want_e);
        }
        for (int i = 0; i < N0; i++) {
            double sb = 0;
            for (int j = 0; j < N1; j++) sb += sv[j * N0 + i];
            ck_assert_msg(fabs(gbias[i] - rep * sb) <= 1e-5, "dbias[%d] = %g, want %g", i, gbias[i], rep * sb);
        }
        free(gt);
        free(gp);
        free(gbias);
        free(ev);
    }
    ck_assert_int_eq(lc_graph_zero_grad(g), LC_OK);
    float *gp = get_all(p->grad);
    for (int i = 0; i < N0 * N1; i++) ck_assert(gp[i] == 0.0f);
    free(gp);
    lc_graph_free(g);
    lc_tensor_free(p);
    lc_tensor_free(bias);
    lc_tensor_free(x);
    lc_tensor_free(seed);
    lc_device_close(dev);
}
END_TEST

/* ---- planner ------------------------------------------------------------------------------ */

enum { CH_N0 = 64, CH_N1 = 16, CH_OPS = 20 };

/* Chain of CH_OPS ops on input x with a parameter p; loss = cross entropy. Outputs: y and p->grad. */
static lc_graph *build_chain(lc_device *dev, lc_tensor *p, lc_tensor *labels, lc_tensor **x_out, lc_tensor **y_out,
                             lc_tensor **loss_out) {
    lc_graph *g = lc_graph_new(dev);
    lc_tensor *x = lc_graph_input(g, LC_F32, CH_N0, CH_N1, "x");
    lc_tensor *y = lc_add(g, x, p);
    for (int i = 1; i < CH_OPS; i++) {
        switch (i % 4) {
        case 0: y = lc_scale(g, y, 0.75f); break;
        case 1: y = lc_silu(g, y); break;
        case 2: y = lc_add(g, y, x); break;
        default: y = lc_mul(g, y, p); break;
        }
    }
    lc_graph_set_output(g, y);
    lc_tensor *loss = lc_cross_entropy(g, y, labels, -1);
    ck_assert_msg(lc_graph_status(g) == LC_OK, "%s", lc_graph_error(g));
    ck_assert_int_eq(lc_graph_backward(g, loss, NULL), LC_OK);
    *x_out = x;
    *y_out = y;
    *loss_out = loss;
    return g;
}

static void run_chain(lc_graph *g, lc_tensor *x, const float *xv, int reps) {
    ck_assert_int_eq(lc_tensor_set_f32(x, xv, CH_N0 * CH_N1), LC_OK);
    for (int r = 0; r < reps; r++) {
        ck_assert_int_eq(lc_graph_zero_grad(g), LC_OK);
        ck_assert_msg(lc_graph_compute(g) == LC_OK, "%s", lc_last_error());
    }
}

START_TEST(test_planner_reuse) {
    lc_device *dev = open_cpu();
    float pv[CH_N0], xv[CH_N0 * CH_N1];
    fill_vals(pv, CH_N0, 21);
    fill_vals(xv, CH_N0 * CH_N1, 22);
    lc_tensor *p = mk_f32(dev, CH_N0, 1, LC_TENSOR_PARAM, "p", pv);
    lc_tensor *labels = mk(dev, LC_I32, CH_N1, 1, LC_TENSOR_INPUT, "labels");
    int32_t lab[CH_N1];
    for (int i = 0; i < CH_N1; i++) lab[i] = (i * 7) % CH_N0;
    lab[3] = -1; /* ignored */
    lc_tensor_set(labels, lab, 0, sizeof lab);

    /* planned with reuse */
    lc_tensor *x1, *y1, *l1;
    lc_graph *g1 = build_chain(dev, p, labels, &x1, &y1, &l1);
    ck_assert_msg(lc_graph_plan(g1) == LC_OK, "%s", lc_last_error());
    uint64_t arena = lc_graph_arena_bytes(g1), unplanned = lc_graph_unplanned_bytes(g1);
    printf("chain of %d ops + backward: arena %llu bytes, unplanned %llu bytes (%.1f%%)\n", CH_OPS,
           (unsigned long long)arena, (unsigned long long)unplanned, 100.0 * (double)arena / (double)unplanned);
    ck_assert_uint_gt(arena, 0);
    ck_assert_uint_lt(arena, unplanned);
    /* Every arena tensor offset is 256-byte aligned. */
    for (int i = 0; i < lc_graph_n_nodes(g1); i++) {
        lc_node *n = lc_graph_node(g1, i);
        for (int k = 0; k < LC_MAX_DST; k++)
            if (n->dst[k]) ck_assert_uint_eq(n->dst[k]->offset % 256, 0);
    }
    run_chain(g1, x1, xv, 1);
    float *ya = get_all(y1), *ga = get_all(p->grad), la;
    ck_assert_int_eq(lc_tensor_get_f32(l1, &la, 1), LC_OK);
    /* replay: identical bits */
    run_chain(g1, x1, xv, 1);
    float *yb = get_all(y1), *gb = get_all(p->grad), lb;
    ck_assert_int_eq(lc_tensor_get_f32(l1, &lb, 1), LC_OK);
    ck_assert(memcmp(ya, yb, sizeof(float) * CH_N0 * CH_N1) == 0);
    ck_assert(memcmp(ga, gb, sizeof(float) * CH_N0) == 0);
    ck_assert(memcmp(&la, &lb, sizeof la) == 0);
    free(yb);
    free(gb);
    lc_graph_free(g1);

    /* the same graph without reuse gives the same bits */
    setenv("LORAC_PLAN_NO_REUSE", "1", 1);
    lc_tensor *x2, *y2, *l2;
    lc_graph *g2 = build_chain(dev, p, labels, &x2, &y2, &l2);
    ck_assert_msg(lc_graph_plan(g2) == LC_OK, "%s", lc_last_error());
    unsetenv("LORAC_PLAN_NO_REUSE");
    ck_assert_uint_eq(lc_graph_arena_bytes(g2), lc_graph_unplanned_bytes(g2));
    ck_assert_uint_eq(lc_graph_unplanned_bytes(g2), unplanned);
    run_chain(g2, x2, xv, 1);
    float *yc = get_all(y2), *gc = get_all(p->grad), lcv;
    ck_assert_int_eq(lc_tensor_get_f32(l2, &lcv, 1), LC_OK);
    ck_assert(memcmp(ya, yc, sizeof(float) * CH_N0 * CH_N1) == 0);
    ck_assert(memcmp(ga, gc, sizeof(float) * CH_N0) == 0);
    ck_assert(memcmp(&la, &lcv, sizeof la) == 0);

    /* and the forward values match a plain-loop reference */
    double *ref = malloc(sizeof(double) * CH_N0 * CH_N1);
    for (int j = 0; j < CH_N1; j++)
        for (int i = 0; i < CH_N0; i++) {
            double xx = xv[j * CH_N0 + i], pp = pv[i], yy = xx + pp;
            for (int k = 1; k < CH_OPS; k++) {
                switch (k % 4) {
                case 0: yy *= 0.75; break;
                case 1: yy = yy / (1.0 + exp(-yy)); break;
                case 2: yy += xx; break;
                default: yy *= pp; break;
                }
            }
            ref[j * CH_N0 + i] = yy;
        }
    for (int i = 0; i < CH_N0 * CH_N1; i++)
        ck_assert_msg(fabs(ya[i] - ref[i]) <= 1e-5 * (1.0 + fabs(ref[i])), "y[%d] = %g, ref %g", i, ya[i], ref[i]);
    free(ref);
    free(ya);
    free(ga);
    free(yc);
    free(gc);
    lc_graph_free(g2);
    lc_tensor_free(p);
    lc_tensor_free(labels);
    ck_assert_uint_eq(lc_device_allocated(dev), 0);
    lc_device_close(dev);
}
END_TEST

/* CROSS_ENTROPY_BACK writes dlogits over the logits when it is their last use (lc_graph_plan's
 * one in-place case): logits = mul_mat(x, w) (not an output), loss = cross_entropy. The dlogits
 * tensor must share the logits' buffer and offset, the arena must be smaller than without that
 * sharing by about one logits tensor, and w's gradient must equal (bit for bit) the no-reuse plan
 * and (within 1e-5) the plain-loop gradient dW[k,v] = sum_t x[k,t] (softmax(l_t)[v] - [v == y_t]) / D. */
enum { IP_K = 16, IP_V = 300, IP_T = 12 };

static lc_graph *build_logits(lc_device *dev, lc_tensor *w, lc_tensor *labels, lc_tensor **x_out, lc_tensor **logits_out) {
    lc_graph *g = lc_graph_new(dev);
    lc_tensor *x = lc_graph_input(g, LC_F32, IP_K, IP_T, "x");
    lc_tensor *logits = lc_mul_mat(g, x, w);
    lc_tensor *loss = lc_cross_entropy(g, logits, labels, -100);
    ck_assert_msg(lc_graph_status(g) == LC_OK, "%s", lc_graph_error(g));
    ck_assert_int_eq(lc_graph_backward(g, loss, NULL), LC_OK);
    *x_out = x;
    *logits_out = logits;
    return g;
}

START_TEST(test_planner_ce_in_place) {
    lc_device *dev = open_cpu();
    float wv[IP_K * IP_V], xv[IP_K * IP_T];
    fill_vals(wv, IP_K * IP_V, 31);
    fill_vals(xv, IP_K * IP_T, 32);
    for (int i = 0; i < IP_K * IP_V; i++) wv[i] *= 3.0f;
    lc_tensor *w = mk_f32(dev, IP_K, IP_V, LC_TENSOR_PARAM, "w", wv);
    lc_tensor *labels = mk(dev, LC_I32, IP_T, 1, LC_TENSOR_INPUT, "labels");
    int32_t lab[IP_T];
    for (int i = 0; i < IP_T; i++) lab[i] = (i * 37 + 5) % IP_V;
    lab[2] = -100;
    lc_tensor_set(labels, lab, 0, sizeof lab);
    const size_t nw = (size_t)IP_K * IP_V;

    float *grads[2];
    uint64_t arenas[2];
    for (int pass = 0; pass < 2; pass++) { /* 0: normal plan, 1: LORAC_PLAN_NO_REUSE */
        if (pass) setenv("LORAC_PLAN_NO_REUSE", "1", 1);
        lc_tensor *x, *logits;
        lc_graph *g = build_logits(dev, w, labels, &x, &logits);
        ck_assert_msg(lc_graph_plan(g) == LC_OK, "%s", lc_last_error());
        unsetenv("LORAC_PLAN_NO_REUSE");
        const lc_tensor *dlogits = NULL;
        for (int i = 0; i < lc_graph_n_nodes(g); i++) {
            const lc_node *n = lc_graph_node(g, i);
            if (n->op == LC_OP_CROSS_ENTROPY_BACK) dlogits = n->dst[0];
        }
        ck_assert_ptr_nonnull(dlogits);
        const bool shared = dlogits->buffer == logits->buffer && dlogits->offset == logits->offset;
        ck_assert_msg(shared == (pass == 0), "pass %d: dlogits %s the logits' memory", pass, shared ? "shares" : "does not share");
        arenas[pass] = lc_graph_arena_bytes(g);
        ck_assert_int_eq(lc_tensor_set_f32(x, xv, IP_K * IP_T), LC_OK);
        ck_assert_int_eq(lc_graph_zero_grad(g), LC_OK);
        ck_assert_msg(lc_graph_compute(g) == LC_OK, "%s", lc_last_error());
        grads[pass] = get_all(w->grad);
        lc_graph_free(g);
    }
    const uint64_t lbytes = (uint64_t)IP_V * IP_T * sizeof(float);
    printf("ce in place: arena %llu bytes, %llu without reuse; logits %llu bytes\n", (unsigned long long)arenas[0],
           (unsigned long long)arenas[1], (unsigned long long)lbytes);
    ck_assert_uint_le(arenas[0] + lbytes, arenas[1]);
    ck_assert(memcmp(grads[0], grads[1], nw * sizeof(float)) == 0);

    /* plain loops in double */
    double *ref = calloc(nw, sizeof(double));
    int counted = 0;
    for (int t = 0; t < IP_T; t++) counted += lab[t] >= 0;
    for (int t = 0; t < IP_T; t++) {
        if (lab[t] < 0) continue;
        double l[IP_V], mx = -INFINITY, sum = 0.0;
        for (int v = 0; v < IP_V; v++) {
            l[v] = 0.0;
            for (int k = 0; k < IP_K; k++) l[v] += (double)xv[t * IP_K + k] * wv[v * IP_K + k];
            if (l[v] > mx) mx = l[v];
        }
        for (int v = 0; v < IP_V; v++) sum += exp(l[v] - mx);
        for (int v = 0; v < IP_V; v++) {
            const double d = (exp(l[v] - mx) / sum - (v == lab[t] ? 1.0 : 0.0)) / counted;
            for (int k = 0; k < IP_K; k++) ref[v * IP_K + k] += (double)xv[t * IP_K + k] * d;
        }
    }
    double worst = 0.0;
    for (size_t i = 0; i < nw; i++) worst = fmax(worst, fabs(grads[0][i] - ref[i]));
    printf("ce in place: max |dW - plain loops| = %.3g\n", worst);
    ck_assert_msg(worst <= 1e-5, "dW differs from the plain loops by %g", worst);
    free(ref);
    free(grads[0]);
    free(grads[1]);
    lc_tensor_free(w);
    lc_tensor_free(labels);
    ck_assert_uint_eq(lc_device_allocated(dev), 0);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_planner_forward_chain) {
    /* Forward only: a 20-op chain needs about two live activations at a time. */
    lc_device *dev = open_cpu();
    lc_graph *g = lc_graph_new(dev);
    lc_tensor *x = lc_graph_input(g, LC_F32, 1000, 8, "x");
    lc_tensor *y = x;
    for (int i = 0; i < 20; i++) y = (i % 2) ? lc_scale(g, y, 1.5f) : lc_silu(g, y);
    lc_graph_set_output(g, y);
    ck_assert_int_eq(lc_graph_plan(g), LC_OK);
    uint64_t one = 32000; /* 1000*8 floats, already a multiple of 256 */
    ck_assert_uint_eq(lc_graph_unplanned_bytes(g), 19 * one); /* the last output is persistent */
    ck_assert_uint_le(lc_graph_arena_bytes(g), 2 * one);
    float xv[8000];
    fill_vals(xv, 8000, 5);
    ck_assert_int_eq(lc_tensor_set_f32(x, xv, 8000), LC_OK);
    ck_assert_int_eq(lc_graph_compute(g), LC_OK);
    float *r = get_all(y);
    for (int i = 0; i < 8000; i += 97) {
        float v = xv[i];
        for (int k = 0; k < 20; k++) v = (k % 2) ? v * 1.5f : v / (1.0f + expf(-v));
        ck_assert_msg(fabsf(r[i] - v) <= 1e-5f * (1.0f + fabsf(v)), "y[%d] = %g, want %g", i, r[i], v);
    }
    free(r);
    lc_graph_free(g);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_adamw_and_step_fields) {
    lc_device *dev = open_cpu();
    lc_tensor *p = mk(dev, LC_F32, 4, 2, LC_TENSOR_PARAM, "p");
    lc_tensor *m = mk(dev, LC_F32, 4, 2, 0, "m");
    lc_tensor *v = mk(dev, LC_F32, 4, 2, 0, "v");
    lc_graph *g = lc_graph_new(dev);
    lc_tensor *s = lc_scale(g, p, 2.0f);
    lc_tensor *seed = lc_fill(g, 4, 2, 1.0f);
    lc_adamw_params ap = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.0f};
    /* an in-place update before the backward pass is refused */
    lc_graph *g0 = lc_graph_new(dev);
    lc_tensor *s0 = lc_scale(g0, p, 2.0f);
    ck_assert_ptr_eq(lc_adamw(g0, p, m, v, lc_scale(g0, p, 1.0f), &ap), p);
    ck_assert_int_eq(lc_graph_backward(g0, lc_sum_sq(g0, s0), NULL), LC_ERR_STATE);
    lc_graph_free(g0);

    ck_assert_int_eq(lc_graph_backward(g, s, seed), LC_OK);
    ck_assert_ptr_eq(lc_adamw(g, p, p->grad, m, v, &ap), p);
    lc_node *ad = lc_graph_node(g, lc_graph_n_nodes(g) - 1);
    ck_assert_int_eq(ad->op, LC_OP_ADAMW);
    ck_assert_ptr_eq(ad->dst[0], p);
    ck_assert_ptr_eq(ad->dst[1], m);
    ck_assert_ptr_eq(ad->dst[2], v);
    lc_graph_set_adamw(g, 0.01f, 7, 0.5f);
    ck_assert(ad->fp[0] == 0.01f && ad->ip[0] == 7 && ad->fp[5] == 0.5f);
    ck_assert(ad->fp[1] == 0.9f && ad->fp[2] == 0.99f);
    ck_assert_int_eq(lc_graph_plan(g), LC_OK);
    lc_graph_set_adamw(g, 0.1f, 1, 1.0f);
    ck_assert_int_eq(lc_graph_zero_grad(g), LC_OK);
    ck_assert_msg(lc_graph_compute(g) == LC_OK, "%s", lc_last_error());
    /* grad = 2 everywhere; step 1 with bias correction moves p by -lr * 2/(2 + eps) ~= -0.1 */
    float *pv = get_all(p);
    for (int i = 0; i < 8; i++) ck_assert_msg(fabsf(pv[i] + 0.1f) < 1e-5f, "p[%d] = %g", i, pv[i]);
    free(pv);
    lc_graph_free(g);
    lc_tensor_free(p);
    lc_tensor_free(m);
    lc_tensor_free(v);
    lc_device_close(dev);
}
END_TEST

/* ---- LoRA helpers ------------------------------------------------------------------------- */

START_TEST(test_lora_scaling) {
    ck_assert(lc_lora_scaling(8, 16.0f, false) == 2.0f);
    ck_assert(lc_lora_scaling(16, 16.0f, true) == 4.0f);
    ck_assert(lc_lora_scaling(3, 1.0f, false) == (float)(1.0 / 3.0));
    ck_assert(lc_lora_scaling(2, 1.0f, true) == (float)(1.0 / sqrt(2.0)));
    ck_assert(lc_lora_scaling(0, 16.0f, false) == 0.0f);
    ck_assert(lc_lora_scaling(-4, 16.0f, true) == 0.0f);
}
END_TEST

START_TEST(test_lora_init) {
    lc_device *dev = open_cpu();
    enum { IN = 37, R = 5, OUT = 11 };
    lc_tensor *a = mk(dev, LC_F32, IN, R, LC_TENSOR_PARAM, "lora_A");
    lc_tensor *b = mk(dev, LC_F32, R, OUT, LC_TENSOR_PARAM, "lora_B");
    float ones[R * OUT];
    for (int i = 0; i < R * OUT; i++) ones[i] = 1.0f;
    lc_tensor_set_f32(b, ones, R * OUT);
    ck_assert_int_eq(lc_lora_init(a, b, 1234, 7), LC_OK);
    float *av = get_all(a), *bv = get_all(b);
    const float bound = (float)(1.0 / sqrt((double)IN));
    double mean = 0;
    for (int i = 0; i < IN * R; i++) {
        ck_assert(av[i] >= -bound && av[i] < bound);
        float u = lc_rng_uniform(1234, (1ull << 40) | 7u, (uint64_t)i);
        ck_assert(av[i] == (2.0f * u - 1.0f) * bound);
        mean += av[i];
    }
    ck_assert(fabs(mean / (IN * R)) < 0.5 * bound);
    for (int i = 0; i < R * OUT; i++) ck_assert(bv[i] == 0.0f);
    /* another module id draws different numbers; the same inputs draw the same */
    lc_tensor *a2 = mk(dev, LC_F32, IN, R, LC_TENSOR_PARAM, "lora_A2");
    ck_assert_int_eq(lc_lora_init(a2, b, 1234, 8), LC_OK);
    float *a2v = get_all(a2);
    ck_assert(memcmp(av, a2v, sizeof(float) * IN * R) != 0);
    free(a2v);
    ck_assert_int_eq(lc_lora_init(a2, b, 1234, 7), LC_OK);
    a2v = get_all(a2);
    ck_assert(memcmp(av, a2v, sizeof(float) * IN * R) == 0);
    /* errors */
    lc_tensor *bbad = mk(dev, LC_F32, R + 1, OUT, LC_TENSOR_PARAM, "lora_B_bad");
    lc_tensor *ah = mk(dev, LC_F16, IN + 3, R, LC_TENSOR_PARAM, "lora_A_f16");
    ck_assert_int_eq(lc_lora_init(a, bbad, 1, 1), LC_ERR_SHAPE);
    ck_assert_int_eq(lc_lora_init(ah, b, 1, 1), LC_ERR_DTYPE);
    ck_assert_int_eq(lc_lora_init(NULL, b, 1, 1), LC_ERR_INVALID_ARG);
    free(av);
    free(bv);
    free(a2v);
    lc_tensor_free(a);
    lc_tensor_free(a2);
    lc_tensor_free(b);
    lc_tensor_free(bbad);
    lc_tensor_free(ah);
    lc_device_close(dev);
}
END_TEST

START_TEST(test_lora_merge) {
    lc_device *dev = open_cpu();
    enum { IN = 7, R = 3, OUT = 5 };
    float wv[IN * OUT], av[IN * R], bv[R * OUT];
    fill_vals(wv, IN * OUT, 31);
    fill_vals(av, IN * R, 32); /* non-square, non-symmetric A */
    fill_vals(bv, R * OUT, 33);
    lc_tensor *w = mk_f32(dev, IN, OUT, LC_TENSOR_FROZEN, "w", wv);
    lc_tensor *a = mk_f32(dev, IN, R, LC_TENSOR_PARAM, "lora_A", av);
    lc_tensor *b = mk_f32(dev, R, OUT, LC_TENSOR_PARAM, "lora_B", bv);
    const float s = lc_lora_scaling(R, 6.0f, false);
    ck_assert_msg(lc_lora_merge(w, a, b, s) == LC_OK, "%s", lc_last_error());
    float *merged = get_all(w);
    /* W'[o, i] (PyTorch) = W[o, i] + s * sum_j B[o, j] A[j, i]; in ne order w[i + IN*o],
     * A[i + IN*j], B[j + R*o]. */
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double d = 0;
            for (int j = 0; j < R; j++) d += (double)bv[j + R * o] * av[i + IN * j];
            double want = wv[i + IN * o] + s * d;
            ck_assert_msg(fabs(merged[i + IN * o] - want) < 1e-6, "w[%d,%d] = %g, want %g", i, o, merged[i + IN * o], want);
        }
    ck_assert_int_eq(lc_lora_merge(w, a, b, -s), LC_OK); /* unmerge */
    float *back = get_all(w);
    for (int i = 0; i < IN * OUT; i++) ck_assert_msg(fabsf(back[i] - wv[i]) < 1e-6f, "unmerge %d", i);
    /* errors: swapped A/B, quantized w, other device */
    ck_assert_int_eq(lc_lora_merge(w, b, a, s), LC_ERR_SHAPE);
    lc_tensor *wq = mk(dev, LC_Q8_0, 32, OUT, LC_TENSOR_FROZEN, "wq");
    ck_assert_int_eq(lc_lora_merge(wq, a, b, s), LC_ERR_DTYPE);
    ck_assert_int_eq(lc_lora_merge(w, a, b, INFINITY), LC_ERR_INVALID_ARG);
    lc_device *dev2 = open_cpu();
    lc_tensor *a_other = mk_f32(dev2, IN, R, 0, "a_other", av);
    ck_assert_int_eq(lc_lora_merge(w, a_other, b, s), LC_ERR_INVALID_ARG);
    lc_tensor_free(a_other);
    lc_device_close(dev2);
    /* the graph-op form is the same node */
    lc_graph *g = lc_graph_new(dev);
    ck_assert_ptr_eq(lc_lora_merge_op(g, w, a, b, s), w);
    ck_assert_int_eq(lc_graph_plan(g), LC_OK);
    ck_assert_int_eq(lc_graph_compute(g), LC_OK);
    float *m2 = get_all(w);
    ck_assert(memcmp(m2, merged, sizeof(float) * IN * OUT) == 0);
    lc_graph_free(g);
    free(m2);
    free(merged);
    free(back);
    lc_tensor_free(w);
    lc_tensor_free(wq);
    lc_tensor_free(a);
    lc_tensor_free(b);
    lc_device_close(dev);
}
END_TEST

static Suite *graph_suite(void) {
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("graph");
    tcase_add_test(tc, test_builder_errors);
    tcase_add_test(tc, test_state_errors);
    tcase_add_test(tc, test_backward_prunes_frozen);
    tcase_add_test(tc, test_backward_accumulation);
    tcase_add_test(tc, test_planner_reuse);
    tcase_add_test(tc, test_planner_ce_in_place);
    tcase_add_test(tc, test_planner_forward_chain);
    tcase_add_test(tc, test_adamw_and_step_fields);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("lora");
    tcase_add_test(tl, test_lora_scaling);
    tcase_add_test(tl, test_lora_init);
    tcase_add_test(tl, test_lora_merge);
    suite_add_tcase(s, tl);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(graph_suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
