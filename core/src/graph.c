/* lorac — graph lifetime, op builders with shape/dtype checks, execution (see lorac/graph.h).
 *
 * Builders validate their inputs against the op table of lorac/graph.h, record one node and
 * return its main output, a graph-owned tensor without memory until lc_graph_plan. On bad input
 * they record the first error on the graph and return NULL; a NULL input makes them return NULL.
 * Autodiff lives in graph_backward.c, the memory planner in graph_plan.c.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

/* ---- op names ----------------------------------------------------------------------------- */

static const char *const op_names[LC_OP_COUNT] = {
    "none", "fill", "get_rows", "mul_mat", "lora", "add", "mul", "scale", "rms_norm", "rope", "attention",
    "gelu_tanh", "silu", "geglu", "swiglu", "cross_entropy", "dequantize", "cpy", "sum_sq", "adamw",
    "lora_merge", "get_rows_back", "mul_mat_back", "lora_back", "add_back", "mul_back", "scale_back",
    "rms_norm_back", "rope_back", "attention_back", "gelu_tanh_back", "silu_back", "geglu_back",
    "swiglu_back", "cross_entropy_back",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == LC_OP_COUNT, "op_names out of sync with LC_OP_LIST");

const char *lc_op_name(lc_op op) {
    if ((int)op < 0 || op >= LC_OP_COUNT) return "unknown";
    return op_names[op];
}

/* ---- errors, allocation ------------------------------------------------------------------- */

lc_status lc_graph_fail_(lc_graph *g, lc_status st, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g && g->status == LC_OK) {
        g->status = st;
        memcpy(g->error, msg, sizeof msg);
    }
    return lc_error(st, "%s", msg);
}

void lc_graph_name_(char *dst, const char *a, const char *b) {
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    if (la > LC_NAME_MAX - 1) la = LC_NAME_MAX - 1;
    if (lb > LC_NAME_MAX - 1 - la) lb = LC_NAME_MAX - 1 - la;
    if (la) memcpy(dst, a, la);
    if (lb) memcpy(dst + la, b, lb);
    dst[la + lb] = '\0';
}

static bool grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return true;
    int nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

lc_tensor *lc_graph_new_tensor_(lc_graph *g, lc_dtype dtype, int ndims, const int64_t *ne, const char *name) {
    if (g->n_tensors + 1 > g->cap_tensors) {
        int nc = g->cap_tensors ? g->cap_tensors * 2 : 64;
        lc_tensor **ts = realloc(g->tensors, (size_t)nc * sizeof *ts);
        if (!ts) goto nomem;
        g->tensors = ts;
        uint32_t *ms = realloc(g->marks, (size_t)nc * sizeof *ms);
        if (!ms) goto nomem;
        g->marks = ms;
        g->cap_tensors = nc;
    }
    lc_tensor *t = calloc(1, sizeof *t);
    if (!t) goto nomem;
    lc_status st = lc_tensor_layout(t, dtype, ndims, ne);
    if (st != LC_OK) {
        free(t);
        lc_graph_fail_(g, st, "%s (tensor '%s')", lc_last_error(), name ? name : "");
        return NULL;
    }
    lc_graph_name_(t->name, name, NULL);
    t->graph = g;
    t->id = g->n_tensors;
    g->tensors[g->n_tensors] = t;
    g->marks[g->n_tensors] = 0;
    g->n_tensors++;
    return t;
nomem:
    lc_graph_fail_(g, LC_ERR_NOMEM, "graph: out of host memory creating tensor '%s'", name ? name : "");
    return NULL;
}

lc_node *lc_graph_new_node_(lc_graph *g, lc_op op) {
    if (!grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes)) goto nomem;
    lc_node *n = calloc(1, sizeof *n);
    if (!n) goto nomem;
    n->op = op;
    n->index = g->n_nodes;
    g->nodes[g->n_nodes++] = n;
    return n;
nomem:
    lc_graph_fail_(g, LC_ERR_NOMEM, "lc_%s: out of host memory adding a node", lc_op_name(op));
    return NULL;
}

/* ---- lifetime ----------------------------------------------------------------------------- */

lc_graph *lc_graph_new(lc_device *dev) {
    if (!dev) {
        lc_error(LC_ERR_INVALID_ARG, "lc_graph_new: device is NULL");
        return NULL;
    }
    lc_graph *g = calloc(1, sizeof *g);
    if (!g) {
        lc_error(LC_ERR_NOMEM, "lc_graph_new: out of host memory");
        return NULL;
    }
    g->dev = dev;
    return g;
}

void lc_graph_free(lc_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_params; i++) {
        lc_tensor *p = g->params[i];
        if (p->grad && p->grad->graph == g) p->grad = NULL;
    }
    for (int i = 0; i < g->n_nodes; i++) free(g->nodes[i]);
    for (int i = 0; i < g->n_tensors; i++) free(g->tensors[i]);
    lc_buffer_free(g->arena);
    lc_buffer_free(g->persistent);
    free(g->nodes);
    free(g->tensors);
    free(g->marks);
    free(g->params);
    free(g->rc_copy);
    free(g->rc_orig);
    free(g);
}

lc_status lc_graph_status(const lc_graph *g) { return g ? g->status : LC_ERR_INVALID_ARG; }

const char *lc_graph_error(const lc_graph *g) { return g ? g->error : "graph is NULL"; }

lc_device *lc_graph_device(const lc_graph *g) { return g ? g->dev : NULL; }

int lc_graph_n_nodes(const lc_graph *g) { return g ? g->n_nodes : 0; }

lc_node *lc_graph_node(const lc_graph *g, int i) {
    if (!g || i < 0 || i >= g->n_nodes) return NULL;
    return g->nodes[i];
}

int lc_graph_params(const lc_graph *g, lc_tensor **out, int max) {
    if (!g) return 0;
    for (int i = 0; i < g->n_params && i < max && out; i++) out[i] = g->params[i];
    return g->n_params;
}

uint64_t lc_graph_arena_bytes(const lc_graph *g) { return g ? g->arena_bytes : 0; }

uint64_t lc_graph_unplanned_bytes(const lc_graph *g) { return g ? g->unplanned_bytes : 0; }

lc_node *lc_tensor_node(lc_tensor *t) { return t ? t->producer : NULL; }

lc_tensor *lc_graph_input(lc_graph *g, lc_dtype dtype, int64_t ne0, int64_t ne1, const char *name) {
    if (!g) return NULL;
    if (g->planned) {
        lc_graph_fail_(g, LC_ERR_STATE, "lc_graph_input(%s): graph is already planned", name ? name : "");
        return NULL;
    }
    int64_t ne[2] = {ne0, ne1};
    lc_tensor *t = lc_graph_new_tensor_(g, dtype, 2, ne, name);
    if (!t) return NULL;
    t->flags |= LC_TENSOR_INPUT;
    g->marks[t->id] |= LC_MARK_PERSISTENT;
    return t;
}

void lc_graph_set_output(lc_graph *g, lc_tensor *t) {
    if (!g || !t) return;
    if (g->planned) {
        lc_graph_fail_(g, LC_ERR_STATE, "lc_graph_set_output(%s): graph is already planned", t->name);
        return;
    }
    if (t->graph != g) return; /* standalone tensors keep their own memory anyway */
    t->flags |= LC_TENSOR_OUTPUT;
    g->marks[t->id] |= LC_MARK_PERSISTENT;
}

/* ---- activation recomputation marks (the copies are made by graph_backward.c) ------------- */

void lc_graph_set_recompute(lc_graph *g, bool on) {
    if (!g) return;
    if (g->planned || g->has_backward) {
        lc_graph_fail_(g, LC_ERR_STATE, "lc_graph_set_recompute: the graph already has %s; set recompute before "
                       "lc_graph_backward", g->planned ? "been planned" : "its backward pass");
        return;
    }
    g->recompute = on;
}

bool lc_graph_recompute(const lc_graph *g) { return g && g->recompute; }

lc_tensor *lc_graph_checkpoint(lc_graph *g, lc_tensor *t) {
    if (!g || !t) return t;
    if (g->planned || g->has_backward) {
        lc_graph_fail_(g, LC_ERR_STATE, "lc_graph_checkpoint(%s): the graph already has %s; mark checkpoints while "
                       "building the forward pass", t->name, g->planned ? "been planned" : "its backward pass");
        return NULL;
    }
    if (t->graph != g || !t->producer) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_graph_checkpoint(%s): a checkpoint must be the output of a node of "
                       "this graph, not a leaf or another graph's tensor", t->name);
        return NULL;
    }
    g->marks[t->id] |= LC_MARK_CHECKPOINT;
    return t;
}

const lc_node *lc_graph_recompute_source(const lc_graph *g, const lc_node *n) {
    if (!g || !n) return NULL;
    for (int i = 0; i < g->n_rc; i++)
        if (g->rc_copy[i] == n) return g->rc_orig[i];
    return NULL;
}

int lc_graph_n_recomputed(const lc_graph *g) { return g ? g->n_rc : 0; }

/* ---- builder checks ----------------------------------------------------------------------- */

#define NE4(t) (long long)(t)->ne[0], (long long)(t)->ne[1], (long long)(t)->ne[2], (long long)(t)->ne[3]

/* Common prologue: graph usable, every listed input non-NULL and on this graph's device. */
static bool begin(lc_graph *g, const char *op, int n, lc_tensor *const *ts, const char *const *names) {
    if (!g) return false;
    if (g->planned) {
        lc_graph_fail_(g, LC_ERR_STATE, "lc_%s: graph is already planned; no builders after lc_graph_plan", op);
        return false;
    }
    for (int i = 0; i < n; i++) {
        const lc_tensor *t = ts[i];
        if (!t) {
            /* A NULL input usually comes from an earlier failed builder whose error is recorded. */
            if (g->status == LC_OK)
                lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_%s: input %s is NULL", op, names[i]);
            return false;
        }
        lc_device *tdev = t->graph ? t->graph->dev : lc_tensor_device_(t);
        if (!tdev) {
            lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_%s: %s '%s' has no device buffer", op, names[i], t->name);
            return false;
        }
        if (tdev != g->dev) {
            lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_%s: %s '%s' lives on device %s, the graph on %s", op, names[i],
                           t->name, tdev->info.spec, g->dev->info.spec);
            return false;
        }
        if (!lc_is_contiguous(t)) {
            lc_graph_fail_(g, LC_ERR_SHAPE, "lc_%s: %s '%s' is not contiguous", op, names[i], t->name);
            return false;
        }
    }
    return true;
}

static bool need_dtype(lc_graph *g, const char *op, const char *what, const lc_tensor *t, lc_dtype want) {
    if (t->dtype == want) return true;
    lc_graph_fail_(g, LC_ERR_DTYPE, "lc_%s: %s '%s' has dtype %s, expected %s", op, what, t->name,
                   lc_dtype_name(t->dtype), lc_dtype_name(want));
    return false;
}

/* Floating-point dtypes accepted for weights: everything but I32. */
static bool need_weight_dtype(lc_graph *g, const char *op, const char *what, const lc_tensor *t) {
    if (t->dtype != LC_I32 && lc_dtype_get(t->dtype)) return true;
    lc_graph_fail_(g, LC_ERR_DTYPE, "lc_%s: %s '%s' has dtype %s, expected a float or quantized dtype", op, what,
                   t->name, lc_dtype_name(t->dtype));
    return false;
}

static bool is_half_or_f32(lc_dtype d) { return d == LC_F32 || d == LC_F16 || d == LC_BF16; }

/* ne[2] == ne[3] == 1 (the default for graph ops). */
static bool need_2d(lc_graph *g, const char *op, const char *what, const lc_tensor *t) {
    if (t->ne[2] == 1 && t->ne[3] == 1) return true;
    lc_graph_fail_(g, LC_ERR_SHAPE, "lc_%s: %s '%s' has ne = {%lld, %lld, %lld, %lld}; expected a 2-D tensor", op,
                   what, t->name, NE4(t));
    return false;
}

/* ne[1] == ne[2] == ne[3] == 1. */
static bool need_1d(lc_graph *g, const char *op, const char *what, const lc_tensor *t) {
    if (t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1) return true;
    lc_graph_fail_(g, LC_ERR_SHAPE, "lc_%s: %s '%s' has ne = {%lld, %lld, %lld, %lld}; expected a vector", op, what,
                   t->name, NE4(t));
    return false;
}

static bool same_shape(lc_graph *g, const char *op, const lc_tensor *a, const lc_tensor *b) {
    if (a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1] && a->ne[2] == b->ne[2] && a->ne[3] == b->ne[3]) return true;
    lc_graph_fail_(g, LC_ERR_SHAPE,
                   "lc_%s: '%s' ne = {%lld, %lld, %lld, %lld} and '%s' ne = {%lld, %lld, %lld, %lld} must match", op,
                   a->name, NE4(a), b->name, NE4(b));
    return false;
}

/* Record a PARAM leaf in the graph's parameter list (first use order). */
static bool note_param(lc_graph *g, lc_tensor *t) {
    if (!t || !(t->flags & LC_TENSOR_PARAM) || t->graph == g) return true;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i] == t) return true;
    if (!grow((void **)&g->params, &g->cap_params, g->n_params + 1, sizeof *g->params)) {
        lc_graph_fail_(g, LC_ERR_NOMEM, "graph: out of host memory recording parameter '%s'", t->name);
        return false;
    }
    g->params[g->n_params++] = t;
    return true;
}

/* Create the node and its outputs. dst_ne[i] with ndims[i] describe dst i (F32 unless dtypes given). */
static lc_node *make_node(lc_graph *g, lc_op op, lc_tensor *const *srcs, int n_src, int n_dst,
                          const int64_t (*dst_ne)[2], const lc_dtype *dtypes) {
    for (int i = 0; i < n_src; i++)
        if (!note_param(g, srcs[i])) return NULL;
    lc_tensor *outs[LC_MAX_DST] = {0};
    for (int i = 0; i < n_dst; i++) {
        char name[LC_NAME_MAX];
        char suffix[32];
        snprintf(suffix, sizeof suffix, i ? "_%d.%d" : "_%d", g->n_nodes, i);
        lc_graph_name_(name, lc_op_name(op), suffix);
        outs[i] = lc_graph_new_tensor_(g, dtypes ? dtypes[i] : LC_F32, 2, dst_ne[i], name);
        if (!outs[i]) return NULL; /* tensors already appended stay unused; harmless */
    }
    lc_node *n = lc_graph_new_node_(g, op);
    if (!n) return NULL;
    for (int i = 0; i < n_src; i++) n->src[i] = srcs[i];
    for (int i = 0; i < n_dst; i++) {
        n->dst[i] = outs[i];
        outs[i]->producer = n;
    }
    return n;
}

/* Mark a graph-owned in-place target as persistent. */
static void mark_inplace(lc_graph *g, lc_tensor *t) {
    if (t && t->graph == g) g->marks[t->id] |= LC_MARK_PERSISTENT;
}

/* ---- builders ----------------------------------------------------------------------------- */

lc_tensor *lc_fill(lc_graph *g, int64_t ne0, int64_t ne1, float value) {
    if (!begin(g, "fill", 0, NULL, NULL)) return NULL;
    if (ne0 < 1 || ne1 < 1) {
        lc_graph_fail_(g, LC_ERR_SHAPE, "lc_fill: ne = {%lld, %lld}, both must be >= 1", (long long)ne0,
                       (long long)ne1);
        return NULL;
    }
    const int64_t ne[1][2] = {{ne0, ne1}};
    lc_node *n = make_node(g, LC_OP_FILL, NULL, 0, 1, ne, NULL);
    if (!n) return NULL;
    n->fp[0] = value;
    return n->dst[0];
}

lc_tensor *lc_get_rows(lc_graph *g, lc_tensor *table, lc_tensor *ids) {
    lc_tensor *in[2] = {table, ids};
    static const char *const nm[2] = {"table", "ids"};
    const char *op = "get_rows";
    if (!begin(g, op, 2, in, nm)) return NULL;
    if (!need_weight_dtype(g, op, "table", table) || !need_dtype(g, op, "ids", ids, LC_I32)) return NULL;
    if (!need_2d(g, op, "table", table) || !need_1d(g, op, "ids", ids)) return NULL;
    const int64_t ne[1][2] = {{table->ne[0], ids->ne[0]}};
    lc_node *n = make_node(g, LC_OP_GET_ROWS, in, 2, 1, ne, NULL);
    return n ? n->dst[0] : NULL;
}

lc_tensor *lc_mul_mat(lc_graph *g, lc_tensor *x, lc_tensor *w) {
    lc_tensor *in[2] = {x, w};
    static const char *const nm[2] = {"x", "w"};
    const char *op = "mul_mat";
    if (!begin(g, op, 2, in, nm)) return NULL;
    if (!need_dtype(g, op, "x", x, LC_F32) || !need_weight_dtype(g, op, "w", w)) return NULL;
    if (!need_2d(g, op, "x", x) || !need_2d(g, op, "w", w)) return NULL;
    if (x->ne[0] != w->ne[0]) {
        lc_graph_fail_(g, LC_ERR_SHAPE, "lc_mul_mat: x '%s'.ne[0] = %lld != w '%s'.ne[0] = %lld (x [K, M], w [K, N])",
                       x->name, (long long)x->ne[0], w->name, (long long)w->ne[0]);
        return NULL;
    }
    const int64_t ne[1][2] = {{w->ne[1], x->ne[1]}};
    lc_node *n = make_node(g, LC_OP_MUL_MAT, in, 2, 1, ne, NULL);
    return n ? n->dst[0] : NULL;
}

lc_tensor *lc_lora(lc_graph *g, lc_tensor *x, lc_tensor *w, lc_tensor *lora_a, lc_tensor *lora_b,
                   const lc_lora_params *p) {
    lc_tensor *in[4] = {x, w, lora_a, lora_b};
    static const char *const nm[4] = {"x", "w", "lora_A", "lora_B"};
    const char *op = "lora";
    if (!begin(g, op, 4, in, nm)) return NULL;
    if (!p) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_lora: params are NULL");
        return NULL;
    }
    if (!need_dtype(g, op, "x", x, LC_F32) || !need_weight_dtype(g, op, "w", w) ||
        !need_dtype(g, op, "lora_A", lora_a, LC_F32) || !need_dtype(g, op, "lora_B", lora_b, LC_F32))
        return NULL;
    for (int i = 0; i < 4; i++)
        if (!need_2d(g, op, nm[i], in[i])) return NULL;
    const long long in_f = x->ne[0], r = lora_a->ne[1], out_f = w->ne[1];
    if (w->ne[0] != in_f || lora_a->ne[0] != in_f || lora_b->ne[0] != r || lora_b->ne[1] != out_f) {
        lc_graph_fail_(g, LC_ERR_SHAPE,
                       "lc_lora: expected x [in, T], w [in, out], lora_A [in, r], lora_B [r, out]; got x {%lld, %lld}, "
                       "w {%lld, %lld}, lora_A {%lld, %lld}, lora_B {%lld, %lld}",
                       (long long)x->ne[0], (long long)x->ne[1], (long long)w->ne[0], (long long)w->ne[1],
                       (long long)lora_a->ne[0], (long long)lora_a->ne[1], (long long)lora_b->ne[0],
                       (long long)lora_b->ne[1]);
        return NULL;
    }
    if (!isfinite(p->scaling) || !(p->dropout >= 0.0f && p->dropout < 1.0f) || p->module_id >= (1u << 24)) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG,
                       "lc_lora: scaling = %g must be finite, dropout = %g in [0, 1), module_id = %u < 2^24",
                       (double)p->scaling, (double)p->dropout, p->module_id);
        return NULL;
    }
    const int64_t ne[2][2] = {{out_f, x->ne[1]}, {r, x->ne[1]}};
    lc_node *n = make_node(g, LC_OP_LORA, in, 4, 2, ne, NULL);
    if (!n) return NULL;
    n->fp[0] = p->scaling;
    n->fp[1] = p->dropout;
    n->ip[0] = (int32_t)p->module_id;
    n->seed = p->seed;
    return n->dst[0];
}

static lc_tensor *binary_bcast(lc_graph *g, lc_op opc, lc_tensor *a, lc_tensor *b) {
    lc_tensor *in[2] = {a, b};
    static const char *const nm[2] = {"a", "b"};
    const char *op = lc_op_name(opc);
    if (!begin(g, op, 2, in, nm)) return NULL;
    if (!need_dtype(g, op, "a", a, LC_F32) || !need_dtype(g, op, "b", b, LC_F32)) return NULL;
    if (!need_2d(g, op, "a", a) || !need_2d(g, op, "b", b)) return NULL;
    if (a->ne[0] % b->ne[0] != 0 || a->ne[1] % b->ne[1] != 0) {
        lc_graph_fail_(g, LC_ERR_SHAPE,
                       "lc_%s: b '%s' {%lld, %lld} does not broadcast to a '%s' {%lld, %lld} (need a.ne[i] %% b.ne[i] == 0)",
                       op, b->name, (long long)b->ne[0], (long long)b->ne[1], a->name, (long long)a->ne[0],
                       (long long)a->ne[1]);
        return NULL;
    }
    const int64_t ne[1][2] = {{a->ne[0], a->ne[1]}};
    lc_node *n = make_node(g, opc, in, 2, 1, ne, NULL);
    return n ? n->dst[0] : NULL;
}

lc_tensor *lc_add(lc_graph *g, lc_tensor *a, lc_tensor *b) { return binary_bcast(g, LC_OP_ADD, a, b); }

lc_tensor *lc_mul(lc_graph *g, lc_tensor *a, lc_tensor *b) { return binary_bcast(g, LC_OP_MUL, a, b); }

static lc_tensor *unary(lc_graph *g, lc_op opc, lc_tensor *x) {
    lc_tensor *in[1] = {x};
    static const char *const nm[1] = {"x"};
    const char *op = lc_op_name(opc);
    if (!begin(g, op, 1, in, nm)) return NULL;
    if (!need_dtype(g, op, "x", x, LC_F32) || !need_2d(g, op, "x", x)) return NULL;
    const int64_t ne[1][2] = {{x->ne[0], x->ne[1]}};
    lc_node *n = make_node(g, opc, in, 1, 1, ne, NULL);
    return n ? n->dst[0] : NULL;
}

lc_tensor *lc_scale(lc_graph *g, lc_tensor *a, float s) {
    if (g && a && !isfinite(s) && !g->planned) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_scale: factor %g is not finite", (double)s);
        return NULL;
    }
    lc_tensor *y = unary(g, LC_OP_SCALE, a);
    if (y) y->producer->fp[0] = s;
    return y;
}

lc_tensor *lc_gelu_tanh(lc_graph *g, lc_tensor *x) { return unary(g, LC_OP_GELU_TANH, x); }

lc_tensor *lc_silu(lc_graph *g, lc_tensor *x) { return unary(g, LC_OP_SILU, x); }

lc_tensor *lc_rms_norm(lc_graph *g, lc_tensor *x, lc_tensor *weight, int64_t group, float eps) {
    lc_tensor *in[2] = {x, weight};
    static const char *const nm[2] = {"x", "weight"};
    const char *op = "rms_norm";
    if (!begin(g, op, weight ? 2 : 1, in, nm)) return NULL;
    if (!need_dtype(g, op, "x", x, LC_F32) || !need_2d(g, op, "x", x)) return NULL;
    if (group < 0 || group > x->ne[0] || (group > 0 && x->ne[0] % group != 0)) {
        lc_graph_fail_(g, LC_ERR_SHAPE, "lc_rms_norm: group = %lld does not divide x '%s'.ne[0] = %lld",
                       (long long)group, x->name, (long long)x->ne[0]);
        return NULL;
    }
    const int64_t gs = group ? group : x->ne[0];
    if (gs > INT32_MAX) {
        lc_graph_fail_(g, LC_ERR_SHAPE, "lc_rms_norm: group size %lld exceeds 2^31-1", (long long)gs);
        return NULL;
    }
    if (weight) {
        if (!need_dtype(g, op, "weight", weight, LC_F32) || !need_1d(g, op, "weight", weight)) return NULL;
        if (weight->ne[0] != gs) {
            lc_graph_fail_(g, LC_ERR_SHAPE, "lc_rms_norm: weight '%s'.ne[0] = %lld != group size %lld", weight->name,
                           (long long)weight->ne[0], (long long)gs);
            return NULL;
        }
    }
    if (!(eps >= 0.0f) || !isfinite(eps)) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_rms_norm: eps = %g must be finite and >= 0", (double)eps);
        return NULL;
    }
    const int64_t ne[1][2] = {{x->ne[0], x->ne[1]}};
    lc_node *n = make_node(g, LC_OP_RMS_NORM, in, 2, 1, ne, NULL);
    if (!n) return NULL;
    n->ip[0] = (int32_t)gs;
    n->fp[0] = eps;
    return n->dst[0];
}

lc_tensor *lc_rope(lc_graph *g, lc_tensor *x, lc_tensor *pos, int n_head, int n_rot, int mode, float freq_base,
                   float freq_scale) {
    lc_tensor *in[2] = {x, pos};
    static const char *const nm[2] = {"x", "pos"};
    const char *op = "rope";
    if (!begin(g, op, 2, in, nm)) return NULL;
    if (!need_dtype(g, op, "x", x, LC_F32) || !need_dtype(g, op, "pos", pos, LC_I32)) return NULL;
    if (!need_2d(g, op, "x", x) || !need_1d(g, op, "pos", pos)) return NULL;
    if (n_head < 1 || x->ne[0] % n_head != 0) {
        lc_graph_fail_(g, LC_ERR_SHAPE, "lc_rope: x '%s'.ne[0] = %lld is not a multiple of n_head = %d", x->name,
                       (long long)x->ne[0], n_head);
        return NULL;
    }
    const int64_t hd = x->ne[0] / n_head;
    if (n_rot < 2 || n_rot % 2 != 0 || n_rot > hd) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_rope: n_rot = %d must be even, >= 2 and <= head dim %lld", n_rot,
                       (long long)hd);
        return NULL;
    }
    if (pos->ne[0] != x->ne[1]) {
        lc_graph_fail_(g, LC_ERR_SHAPE, "lc_rope: pos '%s'.ne[0] = %lld != x '%s'.ne[1] = %lld tokens", pos->name,
                       (long long)pos->ne[0], x->name, (long long)x->ne[1]);
        return NULL;
    }
    if (mode != LC_ROPE_NORM && mode != LC_ROPE_NEOX) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_rope: mode = %d, expected %d (norm) or %d (neox)", mode,
                       LC_ROPE_NORM, LC_ROPE_NEOX);
        return NULL;
    }
    if (!(freq_base > 0.0f) || !isfinite(freq_base) || !(freq_scale > 0.0f) || !isfinite(freq_scale)) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_rope: freq_base = %g and freq_scale = %g must be finite and > 0",
                       (double)freq_base, (double)freq_scale);
        return NULL;
    }
    const int64_t ne[1][2] = {{x->ne[0], x->ne[1]}};
    lc_node *n = make_node(g, LC_OP_ROPE, in, 2, 1, ne, NULL);
    if (!n) return NULL;
    n->ip[0] = n_head;
    n->ip[1] = n_rot;
    n->ip[2] = mode;
    n->fp[0] = freq_base;
    n->fp[1] = freq_scale;
    return n->dst[0];
}

lc_tensor *lc_attention(lc_graph *g, lc_tensor *q, lc_tensor *k, lc_tensor *v, const lc_attention_params *p) {
    lc_tensor *in[3] = {q, k, v};
    static const char *const nm[3] = {"q", "k", "v"};
    const char *op = "attention";
    if (!begin(g, op, 3, in, nm)) return NULL;
    if (!p) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_attention: params are NULL");
        return NULL;
    }
    for (int i = 0; i < 3; i++)
        if (!need_dtype(g, op, nm[i], in[i], LC_F32) || !need_2d(g, op, nm[i], in[i])) return NULL;
    if (p->n_head < 1 || p->n_kv < 1 || p->n_head % p->n_kv != 0 || p->n_seq < 1 || p->window < 0 ||
        !isfinite(p->scale)) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG,
                       "lc_attention: n_head = %d, n_kv = %d (n_head %% n_kv == 0), n_seq = %d >= 1, window = %d >= 0, "
                       "scale = %g finite",
                       p->n_head, p->n_kv, p->n_seq, p->window, (double)p->scale);
        return NULL;
    }
    if (q->ne[0] % p->n_head != 0) {
        lc_graph_fail_(g, LC_ERR_SHAPE, "lc_attention: q '%s'.ne[0] = %lld is not a multiple of n_head = %d", q->name,
                       (long long)q->ne[0], p->n_head);
        return NULL;
    }
    const int64_t hd = q->ne[0] / p->n_head;
    if (k->ne[0] != hd * p->n_kv || v->ne[0] != hd * p->n_kv || k->ne[1] != v->ne[1]) {
        lc_graph_fail_(g, LC_ERR_SHAPE,
                       "lc_attention: expected k and v [hd*n_kv = %lld, Tk*S]; got k {%lld, %lld}, v {%lld, %lld}",
                       (long long)(hd * p->n_kv), (long long)k->ne[0], (long long)k->ne[1], (long long)v->ne[0],
                       (long long)v->ne[1]);
        return NULL;
    }
    if (q->ne[1] % p->n_seq != 0 || k->ne[1] % p->n_seq != 0) {
        lc_graph_fail_(g, LC_ERR_SHAPE, "lc_attention: q.ne[1] = %lld and k.ne[1] = %lld must be multiples of n_seq = %d",
                       (long long)q->ne[1], (long long)k->ne[1], p->n_seq);
        return NULL;
    }
    const int64_t ne[2][2] = {{q->ne[0], q->ne[1]}, {p->n_head, q->ne[1]}};
    lc_node *n = make_node(g, LC_OP_ATTENTION, in, 3, 2, ne, NULL);
    if (!n) return NULL;
    n->ip[0] = p->n_head;
    n->ip[1] = p->n_kv;
    n->ip[2] = p->n_seq;
    n->ip[3] = p->causal ? 1 : 0;
    n->ip[4] = p->window;
    n->fp[0] = p->scale;
    return n->dst[0];
}

static lc_tensor *gated(lc_graph *g, lc_op opc, lc_tensor *gate, lc_tensor *up) {
    lc_tensor *in[2] = {gate, up};
    static const char *const nm[2] = {"gate", "up"};
    const char *op = lc_op_name(opc);
    if (!begin(g, op, 2, in, nm)) return NULL;
    if (!need_dtype(g, op, "gate", gate, LC_F32) || !need_dtype(g, op, "up", up, LC_F32)) return NULL;
    if (!need_2d(g, op, "gate", gate) || !same_shape(g, op, gate, up)) return NULL;
    const int64_t ne[1][2] = {{gate->ne[0], gate->ne[1]}};
    lc_node *n = make_node(g, opc, in, 2, 1, ne, NULL);
    return n ? n->dst[0] : NULL;
}

lc_tensor *lc_geglu(lc_graph *g, lc_tensor *gate, lc_tensor *up) { return gated(g, LC_OP_GEGLU, gate, up); }

lc_tensor *lc_swiglu(lc_graph *g, lc_tensor *gate, lc_tensor *up) { return gated(g, LC_OP_SWIGLU, gate, up); }

lc_tensor *lc_cross_entropy(lc_graph *g, lc_tensor *logits, lc_tensor *labels, int ignore_index) {
    lc_tensor *in[2] = {logits, labels};
    static const char *const nm[2] = {"logits", "labels"};
    const char *op = "cross_entropy";
    if (!begin(g, op, 2, in, nm)) return NULL;
    if (!need_dtype(g, op, "logits", logits, LC_F32) || !need_dtype(g, op, "labels", labels, LC_I32)) return NULL;
    if (!need_2d(g, op, "logits", logits) || !need_1d(g, op, "labels", labels)) return NULL;
    if (labels->ne[0] != logits->ne[1]) {
        lc_graph_fail_(g, LC_ERR_SHAPE, "lc_cross_entropy: labels '%s'.ne[0] = %lld != logits '%s'.ne[1] = %lld rows",
                       labels->name, (long long)labels->ne[0], logits->name, (long long)logits->ne[1]);
        return NULL;
    }
    const int64_t ne[2][2] = {{1, 1}, {logits->ne[1], 1}};
    lc_node *n = make_node(g, LC_OP_CROSS_ENTROPY, in, 2, 2, ne, NULL);
    if (!n) return NULL;
    n->ip[0] = ignore_index;
    n->fp[0] = 0.0f;
    return n->dst[0];
}

/* Output with the same ne (up to 4-D) as `t`. */
static lc_node *make_same_shape(lc_graph *g, lc_op op, lc_tensor *t, lc_dtype dtype) {
    if (!note_param(g, t)) return NULL;
    char name[LC_NAME_MAX], suffix[32];
    snprintf(suffix, sizeof suffix, "_%d", g->n_nodes);
    lc_graph_name_(name, lc_op_name(op), suffix);
    lc_tensor *y = lc_graph_new_tensor_(g, dtype, 4, t->ne, name);
    if (!y) return NULL;
    lc_node *n = lc_graph_new_node_(g, op);
    if (!n) return NULL;
    n->src[0] = t;
    n->dst[0] = y;
    y->producer = n;
    return n;
}

lc_tensor *lc_dequantize(lc_graph *g, lc_tensor *t) {
    lc_tensor *in[1] = {t};
    static const char *const nm[1] = {"t"};
    if (!begin(g, "dequantize", 1, in, nm)) return NULL;
    if (!need_weight_dtype(g, "dequantize", "t", t)) return NULL;
    lc_node *n = make_same_shape(g, LC_OP_DEQUANTIZE, t, LC_F32);
    return n ? n->dst[0] : NULL;
}

lc_tensor *lc_cpy(lc_graph *g, lc_tensor *t, lc_dtype dtype) {
    lc_tensor *in[1] = {t};
    static const char *const nm[1] = {"t"};
    if (!begin(g, "cpy", 1, in, nm)) return NULL;
    if (!is_half_or_f32(t->dtype) || !is_half_or_f32(dtype)) {
        lc_graph_fail_(g, LC_ERR_DTYPE, "lc_cpy: %s '%s' -> %s; only f32, f16 and bf16 convert", lc_dtype_name(t->dtype),
                       t->name, lc_dtype_name(dtype));
        return NULL;
    }
    lc_node *n = make_same_shape(g, LC_OP_CPY, t, dtype);
    return n ? n->dst[0] : NULL;
}

lc_tensor *lc_cpy_into(lc_graph *g, lc_tensor *src, lc_tensor *dst) {
    lc_tensor *in[2] = {src, dst};
    static const char *const nm[2] = {"src", "dst"};
    if (!begin(g, "cpy_into", 2, in, nm)) return NULL;
    if (!is_half_or_f32(src->dtype) || !is_half_or_f32(dst->dtype)) {
        lc_graph_fail_(g, LC_ERR_DTYPE, "lc_cpy_into: %s '%s' -> %s '%s'; only f32, f16 and bf16 convert",
                       lc_dtype_name(src->dtype), src->name, lc_dtype_name(dst->dtype), dst->name);
        return NULL;
    }
    if (!same_shape(g, "cpy_into", src, dst)) return NULL;
    if (dst == src || dst->producer) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_cpy_into: dst '%s' must be a leaf (view, standalone tensor or input) "
                       "other than src", dst->name);
        return NULL;
    }
    if (!note_param(g, src)) return NULL;
    lc_node *n = lc_graph_new_node_(g, LC_OP_CPY);
    if (!n) return NULL;
    n->src[0] = src;
    n->dst[0] = dst;
    mark_inplace(g, dst);
    return dst;
}

lc_tensor *lc_sum_sq(lc_graph *g, lc_tensor *x) {
    lc_tensor *in[1] = {x};
    static const char *const nm[1] = {"x"};
    if (!begin(g, "sum_sq", 1, in, nm)) return NULL;
    if (!need_dtype(g, "sum_sq", "x", x, LC_F32)) return NULL;
    const int64_t ne[1][2] = {{1, 1}};
    lc_node *n = make_node(g, LC_OP_SUM_SQ, in, 1, 1, ne, NULL);
    return n ? n->dst[0] : NULL;
}

lc_tensor *lc_adamw(lc_graph *g, lc_tensor *param, lc_tensor *grad, lc_tensor *m, lc_tensor *v,
                    const lc_adamw_params *p) {
    lc_tensor *in[4] = {param, grad, m, v};
    static const char *const nm[4] = {"param", "grad", "m", "v"};
    const char *op = "adamw";
    if (!begin(g, op, 4, in, nm)) return NULL;
    if (!p) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_adamw: params are NULL");
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        if (!need_dtype(g, op, nm[i], in[i], LC_F32)) return NULL;
    for (int i = 1; i < 4; i++)
        if (!same_shape(g, op, param, in[i])) return NULL;
    if (param == grad || param == m || param == v || grad == m || grad == v || m == v) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_adamw: param, grad, m and v must be four distinct tensors");
        return NULL;
    }
    if (param->flags & LC_TENSOR_FROZEN) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG,
                       "lc_adamw: param '%s' is frozen (LC_TENSOR_FROZEN: a base weight); only trainable tensors are "
                       "updated", param->name);
        return NULL;
    }
    if (!(p->lr >= 0.0f) || !isfinite(p->lr) || !(p->beta1 >= 0.0f && p->beta1 < 1.0f) ||
        !(p->beta2 >= 0.0f && p->beta2 < 1.0f) || !(p->eps >= 0.0f) || !isfinite(p->eps) ||
        !(p->weight_decay >= 0.0f) || !isfinite(p->weight_decay)) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG,
                       "lc_adamw: lr = %g >= 0, beta1 = %g and beta2 = %g in [0, 1), eps = %g >= 0, weight_decay = %g >= 0 "
                       "required",
                       (double)p->lr, (double)p->beta1, (double)p->beta2, (double)p->eps, (double)p->weight_decay);
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        if (!note_param(g, in[i])) return NULL;
    lc_node *n = lc_graph_new_node_(g, LC_OP_ADAMW);
    if (!n) return NULL;
    for (int i = 0; i < 4; i++) n->src[i] = in[i];
    n->dst[0] = param;
    n->dst[1] = m;
    n->dst[2] = v;
    mark_inplace(g, param);
    mark_inplace(g, m);
    mark_inplace(g, v);
    n->fp[0] = p->lr;
    n->fp[1] = p->beta1;
    n->fp[2] = p->beta2;
    n->fp[3] = p->eps;
    n->fp[4] = p->weight_decay;
    n->fp[5] = 1.0f;
    n->ip[0] = 1;
    return param;
}

lc_tensor *lc_lora_merge_op(lc_graph *g, lc_tensor *w, lc_tensor *lora_a, lc_tensor *lora_b, float scale) {
    lc_tensor *in[3] = {w, lora_a, lora_b};
    static const char *const nm[3] = {"w", "lora_A", "lora_B"};
    const char *op = "lora_merge";
    if (!begin(g, op, 3, in, nm)) return NULL;
    if (!is_half_or_f32(w->dtype)) {
        lc_graph_fail_(g, LC_ERR_DTYPE, "lc_lora_merge_op: w '%s' has dtype %s; merge needs f32, f16 or bf16 "
                       "(dequantize first)", w->name, lc_dtype_name(w->dtype));
        return NULL;
    }
    if (!need_dtype(g, op, "lora_A", lora_a, LC_F32) || !need_dtype(g, op, "lora_B", lora_b, LC_F32)) return NULL;
    for (int i = 0; i < 3; i++)
        if (!need_2d(g, op, nm[i], in[i])) return NULL;
    if (lora_a->ne[0] != w->ne[0] || lora_b->ne[1] != w->ne[1] || lora_b->ne[0] != lora_a->ne[1]) {
        lc_graph_fail_(g, LC_ERR_SHAPE,
                       "lc_lora_merge_op: expected w [in, out], lora_A [in, r], lora_B [r, out]; got w {%lld, %lld}, "
                       "lora_A {%lld, %lld}, lora_B {%lld, %lld}",
                       (long long)w->ne[0], (long long)w->ne[1], (long long)lora_a->ne[0], (long long)lora_a->ne[1],
                       (long long)lora_b->ne[0], (long long)lora_b->ne[1]);
        return NULL;
    }
    if (!isfinite(scale)) {
        lc_graph_fail_(g, LC_ERR_INVALID_ARG, "lc_lora_merge_op: scale %g is not finite", (double)scale);
        return NULL;
    }
    for (int i = 0; i < 3; i++)
        if (!note_param(g, in[i])) return NULL;
    lc_node *n = lc_graph_new_node_(g, LC_OP_LORA_MERGE);
    if (!n) return NULL;
    for (int i = 0; i < 3; i++) n->src[i] = in[i];
    n->dst[0] = w;
    mark_inplace(g, w);
    n->fp[0] = scale;
    return w;
}

/* ---- execution ---------------------------------------------------------------------------- */

lc_status lc_graph_compute(lc_graph *g) {
    if (!g) return lc_error(LC_ERR_INVALID_ARG, "lc_graph_compute: graph is NULL");
    if (!g->planned) return lc_error(LC_ERR_STATE, "lc_graph_compute: call lc_graph_plan first");
    lc_device *dev = g->dev;
    char msg[1024];
    /* Recompute copies first (their parameters feed the backward nodes that read them). */
    for (int i = 0; i < g->n_rc; i++) {
        lc_node *c = g->rc_copy[i];
        const lc_node *f = g->rc_orig[i];
        memcpy(c->ip, f->ip, sizeof c->ip);
        memcpy(c->fp, f->fp, sizeof c->fp);
        c->seed = f->seed;
        c->rng_step = f->rng_step;
    }
    /* Backward nodes carry the forward node's parameters; re-copy them so that a caller who
     * changes a forward node after lc_graph_backward (e.g. the cross-entropy denominator fp[0]
     * of each micro-batch, through lc_tensor_node) gets a consistent backward pass. */
    if (g->has_backward) {
        for (int i = 0; i < g->n_nodes; i++) {
            lc_node *b = g->nodes[i];
            if (b->op < LC_OP_GET_ROWS_BACK || !b->src[4] || !b->src[4]->producer) continue;
            const lc_node *f = b->src[4]->producer;
            memcpy(b->ip, f->ip, sizeof b->ip);
            memcpy(b->fp, f->fp, sizeof b->fp);
            b->seed = f->seed;
            b->rng_step = f->rng_step;
        }
    }
    if (dev->iface->compute) {
        lc_status st = dev->iface->compute(dev->ctx, g->nodes, g->n_nodes);
        if (st != LC_OK) {
            memcpy(msg, lc_last_error(), sizeof msg);
            msg[sizeof msg - 1] = '\0';
            return lc_error(st, "lc_graph_compute on %s (%s): %s", dev->info.spec, dev->info.name, msg);
        }
    } else {
        for (int i = 0; i < g->n_nodes; i++) {
            const lc_node *n = g->nodes[i];
            lc_status st = dev->iface->run(dev->ctx, n);
            if (st != LC_OK) {
                memcpy(msg, lc_last_error(), sizeof msg);
                msg[sizeof msg - 1] = '\0';
                return lc_error(st, "lc_graph_compute on %s: node %d (%s, output '%s'): %s", dev->info.spec, i,
                                lc_op_name(n->op), n->dst[0] ? n->dst[0]->name : "-", msg);
            }
        }
    }
    return lc_device_synchronize(dev);
}

lc_status lc_graph_zero_grad(lc_graph *g) {
    if (!g) return lc_error(LC_ERR_INVALID_ARG, "lc_graph_zero_grad: graph is NULL");
    if (!g->planned) return lc_error(LC_ERR_STATE, "lc_graph_zero_grad: graph is not planned yet");
    for (int i = 0; i < g->n_tensors; i++) {
        if (!(g->marks[i] & LC_MARK_PARAM_GRAD)) continue;
        lc_status st = lc_tensor_zero(g->tensors[i]);
        if (st != LC_OK) return st;
    }
    return LC_OK;
}

void lc_graph_set_step(lc_graph *g, uint64_t step) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == LC_OP_LORA || g->nodes[i]->op == LC_OP_LORA_BACK) g->nodes[i]->rng_step = step;
}

void lc_graph_set_adamw(lc_graph *g, float lr, int t, float grad_scale) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) {
        lc_node *n = g->nodes[i];
        if (n->op != LC_OP_ADAMW) continue;
        n->fp[0] = lr;
        n->ip[0] = t;
        n->fp[5] = grad_scale;
    }
}

static bool float_dtype(lc_dtype t) { return t == LC_F32 || t == LC_F16 || t == LC_BF16; }

static bool slot_dtype_ok(lc_op op, bool is_dst, int slot, lc_dtype t, bool (*weight_ok)(lc_dtype)) {
    if (is_dst) {
        if (op == LC_OP_CPY || op == LC_OP_LORA_MERGE) return slot == 0 && float_dtype(t);
        return t == LC_F32; /* outputs and gradients are F32 */
    }
    switch (op) {
    case LC_OP_GET_ROWS:
    case LC_OP_GET_ROWS_BACK: return slot == 0 ? weight_ok(t) : slot == 1 ? t == LC_I32 : t == LC_F32;
    case LC_OP_MUL_MAT:
    case LC_OP_LORA:
    case LC_OP_MUL_MAT_BACK:
    case LC_OP_LORA_BACK: return slot == 1 ? weight_ok(t) : t == LC_F32;
    case LC_OP_DEQUANTIZE: return slot == 0 ? weight_ok(t) : t == LC_F32;
    case LC_OP_CPY:
    case LC_OP_LORA_MERGE: return slot == 0 ? float_dtype(t) : t == LC_F32;
    case LC_OP_CROSS_ENTROPY:
    case LC_OP_CROSS_ENTROPY_BACK:
    case LC_OP_ROPE:
    case LC_OP_ROPE_BACK: return slot == 1 ? t == LC_I32 : t == LC_F32;
    default: return t == LC_F32;
    }
}

bool lc_node_dtypes_ok(const lc_node *node, bool (*weight_ok)(lc_dtype)) {
    if (!node || !weight_ok || (int)node->op <= (int)LC_OP_NONE || (int)node->op >= (int)LC_OP_COUNT) return false;
    for (int i = 0; i < LC_MAX_SRC; i++)
        if (node->src[i] && !slot_dtype_ok(node->op, false, i, node->src[i]->dtype, weight_ok)) return false;
    for (int i = 0; i < LC_MAX_DST; i++)
        if (node->dst[i] && !slot_dtype_ok(node->op, true, i, node->dst[i]->dtype, weight_ok)) return false;
    return true;
}
