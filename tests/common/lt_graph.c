/* lorac tests — standalone tensors and the one-graph case runner (see lt_graph.h). */
#include "lt_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lt_env_init(lt_env *e, lc_device *dev, lt_report *rep) {
    memset(e, 0, sizeof *e);
    e->dev = dev;
    e->rep = rep;
}

void lt_env_free(lt_env *e) {
    for (int i = e->n_owned - 1; i >= 0; i--) lc_tensor_free(e->owned[i]);
    e->n_owned = 0;
}

static lc_tensor *lt_own(lt_env *e, lc_tensor *t) {
    if (e->n_owned >= LT_MAX_OWNED) {
        lt_check(e->rep, false, "test harness: more than %d standalone tensors", LT_MAX_OWNED);
        lc_tensor_free(t);
        return NULL;
    }
    e->owned[e->n_owned++] = t;
    return t;
}

lc_tensor *lt_new_raw(lt_env *e, lc_dtype dtype, int64_t ne0, int64_t ne1, const void *raw,
                      uint32_t flags, const char *name) {
    int64_t ne[2] = {ne0, ne1};
    lc_tensor *t = NULL;
    if (!lt_check_ok(e->rep, lc_tensor_new(e->dev, dtype, ne1 > 1 ? 2 : 1, ne, name, flags, &t),
                     "lc_tensor_new(%s %s [%lld, %lld])", name ? name : "?", lc_dtype_name(dtype),
                     (long long)ne0, (long long)ne1))
        return NULL;
    if (raw) {
        size_t size = lc_row_size(dtype, ne0) * (size_t)ne1;
        if (!lt_check_ok(e->rep, lc_tensor_set(t, raw, 0, size), "lc_tensor_set(%s)", name ? name : "?")) {
            lc_tensor_free(t);
            return NULL;
        }
    }
    return lt_own(e, t);
}

lc_tensor *lt_new_f32(lt_env *e, int64_t ne0, int64_t ne1, const float *data, uint32_t flags,
                      const char *name) {
    return lt_new_raw(e, LC_F32, ne0, ne1, data, flags, name);
}

lc_tensor *lt_new_i32(lt_env *e, int64_t n, const int32_t *data, const char *name) {
    return lt_new_raw(e, LC_I32, n, 1, data, LC_TENSOR_INPUT, name);
}

float *lt_read_f32(lt_env *e, const lc_tensor *t, const char *what) {
    if (!t) {
        lt_check(e->rep, false, "%s: tensor is NULL", what);
        return NULL;
    }
    int64_t n = lc_nelements(t);
    float *buf = lt_falloc(n);
    if (!lt_check_ok(e->rep, lc_tensor_get_f32(t, buf, n), "lc_tensor_get_f32(%s)", what)) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- case runner ------------------------------------------------------------------------ */

void lt_case_begin(lt_case *c, lt_env *e, const char *fmt, ...) {
    memset(c, 0, sizeof *c);
    c->env = e;
    c->ok = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    c->g = lc_graph_new(e->dev);
    if (!c->g) c->ok = lt_check(e->rep, false, "%s: lc_graph_new failed", c->name);
}

bool lt_case_built(lt_case *c, const lc_tensor *t, const char *what) {
    if (!c->ok) return false;
    if (t && lc_graph_status(c->g) == LC_OK) return true;
    lt_check(c->env->rep, false, "%s: builder %s failed: %s: %s", c->name, what,
             lc_status_str(lc_graph_status(c->g)), lc_graph_error(c->g));
    c->ok = false;
    return false;
}

const double *lt_case_backward(lt_case *c, lc_tensor *out, lt_rng *r, float fixed) {
    if (!c->ok || !out) return NULL;
    int64_t n = lc_nelements(out);
    float *s = lt_falloc(n);
    for (int64_t i = 0; i < n; i++) s[i] = fixed != 0.0f ? fixed : (float)(2.0 * lt_rng_uniform(r) - 1.0);
    lc_tensor *seed = lt_new_raw(c->env, LC_F32, out->ne[0], n / out->ne[0], s, 0, "seed");
    if (seed && (out->ne[2] > 1 || out->ne[3] > 1)) {
        c->ok = lt_check(c->env->rep, false, "%s: test harness supports 2-D seeds only", c->name);
    }
    if (!seed) c->ok = false;
    if (c->ok)
        c->ok = lt_check_ok(c->env->rep, lc_graph_backward(c->g, out, seed), "%s: lc_graph_backward",
                            c->name);
    free(c->seed_host);
    c->seed_host = lt_dup_d(s, n);
    free(s);
    return c->ok ? c->seed_host : NULL;
}

static void lt_case_add(lt_case *c, const lc_tensor *t, const double *ref, int64_t n, double tol,
                        const char *label) {
    if (c->n_exp >= LT_MAX_EXPECT) {
        c->ok = lt_check(c->env->rep, false, "%s: too many expectations", c->name);
        return;
    }
    lt_expect *x = &c->exp[c->n_exp++];
    x->t = t;
    x->ref = ref;
    x->n = n;
    x->tol = tol;
    snprintf(x->label, sizeof x->label, "%s", label);
}

void lt_case_expect(lt_case *c, lc_tensor *t, const double *ref, double tol, const char *label) {
    if (!c->ok) return;
    if (!t) {
        c->ok = lt_check(c->env->rep, false, "%s: %s: no tensor", c->name, label);
        return;
    }
    if (t->graph) lc_graph_set_output(c->g, t);
    lt_case_add(c, t, ref, lc_nelements(t), tol, label);
}

void lt_case_expect_grad(lt_case *c, lc_tensor *param, const double *ref, double tol, const char *label) {
    if (!c->ok) return;
    if (!param || !param->grad) {
        c->ok = lt_check(c->env->rep, false, "%s: %s: parameter has no gradient after lc_graph_backward",
                         c->name, label);
        return;
    }
    lt_check(c->env->rep, param->grad->dtype == LC_F32 && lc_nelements(param->grad) == lc_nelements(param),
             "%s: %s: gradient is F32 with the parameter's element count", c->name, label);
    lt_case_add(c, param->grad, ref, lc_nelements(param), tol, label);
}

void lt_case_upload(lt_case *c, lc_tensor *t, const void *src, size_t size) {
    if (!c->ok) return;
    if (c->n_up >= LT_MAX_UPLOAD || !t) {
        c->ok = lt_check(c->env->rep, false, "%s: bad upload", c->name);
        return;
    }
    c->up[c->n_up].t = t;
    c->up[c->n_up].src = src;
    c->up[c->n_up].size = size;
    c->n_up++;
}

bool lt_case_compute(lt_case *c) {
    lt_report *rep = c->env->rep;
    if (!c->ok) return false;
    if (lc_graph_status(c->g) != LC_OK) {
        return c->ok = lt_check(rep, false, "%s: graph error: %s", c->name, lc_graph_error(c->g));
    }
    if (!lt_check_ok(rep, lc_graph_plan(c->g), "%s: lc_graph_plan", c->name)) return c->ok = false;
    for (int i = 0; i < c->n_up; i++)
        if (!lt_check_ok(rep, lc_tensor_set(c->up[i].t, c->up[i].src, 0, c->up[i].size), "%s: upload %s",
                         c->name, c->up[i].t->name))
            return c->ok = false;
    if (!lt_check_ok(rep, lc_graph_zero_grad(c->g), "%s: lc_graph_zero_grad", c->name)) return c->ok = false;
    if (!lt_check_ok(rep, lc_graph_compute(c->g), "%s: lc_graph_compute", c->name)) return c->ok = false;
    return true;
}

void lt_case_end(lt_case *c) {
    lc_graph_free(c->g);
    c->g = NULL;
    for (int i = 0; i < c->n_exp; i++) {
        free(c->exp[i].first);
        c->exp[i].first = NULL;
    }
    free(c->seed_host);
    c->seed_host = NULL;
}

/* Results of the "cpu" device, kept for the other devices of the same test (one process per
 * test under Check's fork mode, devices in lc_device_list order with the CPU first). */
typedef struct lt_cpu_result {
    char key[224];
    float *v;
    int64_t n;
} lt_cpu_result;
static lt_cpu_result lt_cpu_results[2048];
static int lt_n_cpu_results;

static void lt_compare_with_cpu(lt_case *c, const lt_expect *x) {
    const lc_device_info *di = lc_device_get_info(c->env->dev);
    char key[224];
    snprintf(key, sizeof key, "%s|%s", c->name, x->label);
    if (strcmp(di->backend, "cpu") == 0) {
        if (lt_n_cpu_results >= (int)(sizeof lt_cpu_results / sizeof lt_cpu_results[0])) return;
        lt_cpu_result *r = &lt_cpu_results[lt_n_cpu_results++];
        snprintf(r->key, sizeof r->key, "%s", key);
        r->n = x->n;
        r->v = lt_falloc(x->n);
        memcpy(r->v, x->first, (size_t)x->n * sizeof(float));
        return;
    }
    for (int i = 0; i < lt_n_cpu_results; i++) {
        lt_cpu_result *r = &lt_cpu_results[i];
        if (strcmp(r->key, key) != 0 || r->n != x->n) continue;
        double *ref = lt_dup_d(r->v, r->n);
        lt_check_err(c->env->rep, lt_nmse(x->first, ref, x->n), LT_TOL_NMSE_CPU, "%s: %s vs the cpu device (NMSE)",
                     c->name, x->label);
        free(ref);
        return;
    }
}

bool lt_case_run(lt_case *c) {
    lt_report *rep = c->env->rep;
    bool all = lt_case_compute(c);
    if (all) {
        for (int i = 0; i < c->n_exp; i++) {
            lt_expect *x = &c->exp[i];
            x->first = lt_read_f32(c->env, x->t, x->label);
            if (!x->first) {
                all = false;
                continue;
            }
            double err = lt_max_rel(x->first, x->ref, x->n);
            all &= lt_check_err(rep, err, x->tol, "%s: %s", c->name, x->label);
            lt_compare_with_cpu(c, x);
        }
    }
    if (all && !c->no_replay) {
        /* Replay: the same graph and inputs must give bit-identical results. */
        bool st = lt_check_ok(rep, lc_graph_zero_grad(c->g), "%s: replay zero_grad", c->name) &&
                  lt_check_ok(rep, lc_graph_compute(c->g), "%s: replay compute", c->name);
        for (int i = 0; st && i < c->n_exp; i++) {
            lt_expect *x = &c->exp[i];
            float *again = lt_read_f32(c->env, x->t, x->label);
            if (!again) {
                all = false;
                continue;
            }
            int64_t diff = 0;
            for (int64_t j = 0; j < x->n; j++)
                if (memcmp(&again[j], &x->first[j], sizeof(float)) != 0) diff++;
            all &= lt_check(rep, diff == 0, "%s: %s: replay differs in %lld of %lld elements", c->name,
                            x->label, (long long)diff, (long long)x->n);
            free(again);
        }
        all &= st;
    }
    lt_case_end(c);
    return all;
}
