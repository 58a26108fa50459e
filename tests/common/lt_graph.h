/* lorac tests — standalone tensors from host data, and a runner for one-op (or small) graphs
 * that compares outputs and gradients with double-precision references.
 *
 * An lt_env owns the standalone tensors a test makes on one device and frees them at the end.
 * An lt_case wraps one graph: the test builds forward nodes, calls lt_case_backward with a
 * random seed tensor, registers expected values with lt_case_expect / lt_case_expect_grad, and
 * lt_case_run plans, uploads graph inputs, zeroes gradients, computes, compares every expected
 * tensor (max_rel error, see lt_util.h), then replays the graph (zero_grad + compute again) and
 * checks the replay is bit-identical ("results stable across repeated runs"). On a device other
 * than the CPU each result is also compared with the CPU device's result for the same case
 * (NMSE <= LT_TOL_NMSE_CPU, DESIGN.md §4), when the CPU ran that case earlier in the process.
 */
#ifndef LT_GRAPH_H
#define LT_GRAPH_H

#include "lorac/lorac.h"
#include "lt_util.h"

#define LT_MAX_OWNED 256
#define LT_MAX_EXPECT 16
#define LT_MAX_UPLOAD 8
#define LT_TOL_NMSE_CPU 1e-7

typedef struct lt_env {
    lc_device *dev;
    lt_report *rep;
    lc_tensor *owned[LT_MAX_OWNED];
    int n_owned;
} lt_env;

void lt_env_init(lt_env *e, lc_device *dev, lt_report *rep);
/* Free every tensor the env made. Graphs using them must be freed first. */
void lt_env_free(lt_env *e);

/* Standalone F32 tensor ne {ne0, ne1} (ne1 = 1 for a vector), uploaded from `data` (NULL:
 * zeros). NULL after recording a failure in the report. */
lc_tensor *lt_new_f32(lt_env *e, int64_t ne0, int64_t ne1, const float *data, uint32_t flags,
                      const char *name);
/* Standalone I32 vector ne {n}. */
lc_tensor *lt_new_i32(lt_env *e, int64_t n, const int32_t *data, const char *name);
/* Standalone tensor of any dtype ne {ne0, ne1} uploaded byte for byte from `raw`
 * (lc_row_size(dtype, ne0) * ne1 bytes; NULL: zeros). */
lc_tensor *lt_new_raw(lt_env *e, lc_dtype dtype, int64_t ne0, int64_t ne1, const void *raw,
                      uint32_t flags, const char *name);
/* Whole tensor as F32 (dequantised / converted by lc_tensor_get_f32) in a malloc'd array; NULL
 * after recording a failure. */
float *lt_read_f32(lt_env *e, const lc_tensor *t, const char *what);

typedef struct lt_expect {
    const lc_tensor *t;
    const double *ref;
    int64_t n;
    double tol;
    char label[48];
    float *first;  /* values read after the first compute (for the replay comparison) */
} lt_expect;

typedef struct lt_case {
    lt_env *env;
    lc_graph *g;
    char name[160];
    int n_exp;
    lt_expect exp[LT_MAX_EXPECT];
    int n_up;
    struct { lc_tensor *t; const void *src; size_t size; } up[LT_MAX_UPLOAD];
    double *seed_host;   /* dL/d(out) values used by lt_case_backward (owned) */
    bool no_replay;      /* in-place ops: a second compute is a second step, not a replay */
    bool ok;             /* false once building, planning or computing failed */
} lt_case;

/* Start a case on a fresh graph; `fmt` names it in messages ("mul_mat q4_K K=256 M=7 N=13"). */
void lt_case_begin(lt_case *c, lt_env *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Check a builder result; records lc_graph_status and the message when t is NULL. */
bool lt_case_built(lt_case *c, const lc_tensor *t, const char *what);
/* Append the backward pass of `out` seeded with a random F32 tensor shaped like out, values in
 * [-1, 1) (or the value `fixed` for every element when fixed != 0). Returns the seed values as
 * doubles (owned by the case), NULL on failure. */
const double *lt_case_backward(lt_case *c, lc_tensor *out, lt_rng *r, float fixed);
/* Compare tensor `t` (a node output: marked as a graph output here; or a gradient tensor) with
 * ref[n] (the case keeps the pointer; it must live until lt_case_run returns). */
void lt_case_expect(lt_case *c, lc_tensor *t, const double *ref, double tol, const char *label);
/* Compare param->grad with ref. A param without a gradient is a failure. */
void lt_case_expect_grad(lt_case *c, lc_tensor *param, const double *ref, double tol, const char *label);
/* Upload `size` bytes from `src` into graph input `t` after planning, before compute. */
void lt_case_upload(lt_case *c, lc_tensor *t, const void *src, size_t size);
/* Plan, upload, zero grads, compute, compare, replay. Frees the graph. True when all passed. */
bool lt_case_run(lt_case *c);
/* Plan and compute once without comparisons (for tests that read results themselves); the
 * graph stays alive until lt_case_end. */
bool lt_case_compute(lt_case *c);
void lt_case_end(lt_case *c);

#endif
