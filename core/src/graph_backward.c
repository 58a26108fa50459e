/* lorac — reverse-mode automatic differentiation over a recorded graph (lc_graph_backward).
 *
 * requires_grad(t): t is a PARAM leaf (F32/F16/BF16, not FROZEN, not INPUT), or the main output
 * (dst0) of a differentiable node with a requires_grad input in one of its differentiable slots.
 * Walking the forward nodes in reverse order, every node whose dst0 has a gradient and which has a
 * requires_grad input gets one <OP>_BACK node with the uniform layout of lorac/graph.h; nodes
 * whose output never receives a gradient, and inputs that do not require one (frozen weights,
 * token ids, labels, positions) get nothing, so no dW is ever computed for a base weight.
 *
 * Accumulation: an activation gradient is an arena tensor that its first writer in execution
 * order overwrites (accum bit clear) and later writers add into (bit set). When one node reads
 * the same tensor in two differentiable slots and is its first writer, a FILL(0) node precedes it
 * and both slots accumulate. PARAM leaf gradients are persistent and always accumulated into, so
 * several micro-batches add up until lc_graph_zero_grad.
 *
 * Not differentiable (no gradient flows through them): FILL, DEQUANTIZE, CPY, SUM_SQ and the
 * in-place ADAMW / LORA_MERGE; auxiliary outputs (dst1: LORA u, ATTENTION lse, CROSS_ENTROPY lse)
 * carry no gradient either.
 *
 * Recomputation (lc_graph_set_recompute; Chen et al. 2016, arXiv:1604.06174): the checkpoint
 * tensors cut the forward nodes into segments (segment j ends with checkpoint j's producer; the
 * nodes after the last checkpoint are the tail, never recomputed). When the reverse walk enters
 * segment j it first appends copies of the segment's nodes that are
 *   dep:  copyable (produce all their outputs, none persistent, no in-place memory read) and read
 *         a checkpoint or the output of a dep node of the same segment, and
 *   need: read by a gradient node of the segment (src[0..3], dst0, dst1 of its forward node) or
 *         by another needed copy,
 * in forward order, with sources remapped to earlier copies; the segment's gradient nodes then
 * read the copies (rc[] maps an original tensor to its copy). Gradients stay keyed by the
 * original tensors. Checkpoints and persistent tensors are never remapped.
 */
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

/* Bit s set: src[s] of the op is differentiable. 0: op not differentiable. */
static uint32_t diff_slots(lc_op op) {
    switch (op) {
    case LC_OP_GET_ROWS: return 1u << 0;
    case LC_OP_MUL_MAT: return 3u;
    case LC_OP_LORA: return 15u;
    case LC_OP_ADD: return 3u;
    case LC_OP_MUL: return 3u;
    case LC_OP_SCALE: return 1u;
    case LC_OP_RMS_NORM: return 3u;
    case LC_OP_ROPE: return 1u;
    case LC_OP_ATTENTION: return 7u;
    case LC_OP_GELU_TANH: return 1u;
    case LC_OP_SILU: return 1u;
    case LC_OP_GEGLU: return 3u;
    case LC_OP_SWIGLU: return 3u;
    case LC_OP_CROSS_ENTROPY: return 1u;
    default: return 0u;
    }
}

static lc_op back_op(lc_op op) {
    switch (op) {
    case LC_OP_GET_ROWS: return LC_OP_GET_ROWS_BACK;
    case LC_OP_MUL_MAT: return LC_OP_MUL_MAT_BACK;
    case LC_OP_LORA: return LC_OP_LORA_BACK;
    case LC_OP_ADD: return LC_OP_ADD_BACK;
    case LC_OP_MUL: return LC_OP_MUL_BACK;
    case LC_OP_SCALE: return LC_OP_SCALE_BACK;
    case LC_OP_RMS_NORM: return LC_OP_RMS_NORM_BACK;
    case LC_OP_ROPE: return LC_OP_ROPE_BACK;
    case LC_OP_ATTENTION: return LC_OP_ATTENTION_BACK;
    case LC_OP_GELU_TANH: return LC_OP_GELU_TANH_BACK;
    case LC_OP_SILU: return LC_OP_SILU_BACK;
    case LC_OP_GEGLU: return LC_OP_GEGLU_BACK;
    case LC_OP_SWIGLU: return LC_OP_SWIGLU_BACK;
    case LC_OP_CROSS_ENTROPY: return LC_OP_CROSS_ENTROPY_BACK;
    default: return LC_OP_NONE;
    }
}

typedef struct bw_state {
    lc_graph *g;
    int nt;           /* graph-owned tensors before backward */
    bool *rg;         /* requires_grad of graph-owned tensors [nt] */
    bool *hg;         /* phase 1: graph-owned tensor receives a gradient [nt] */
    bool *hp;         /* phase 1: parameter receives a gradient [n_params] */
    lc_tensor **gt;   /* phase 2: gradient tensor of graph-owned tensors [nt] */
    lc_tensor **gp;   /* phase 2: gradient tensor of parameters [n_params] */
    /* recomputation only (NULL otherwise) */
    int *seg_lo;      /* [n_fwd]: first node of the segment node i ends, -1 when i ends none */
    bool *dep, *need; /* [n_fwd] scratch of recompute_segment */
    lc_tensor **rc;   /* [nt]: recomputed copy of a forward tensor, or NULL */
    lc_tensor **inplace; /* tensors some node writes in place */
    int n_inplace;
} bw_state;

static int param_index(const lc_graph *g, const lc_tensor *t) {
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i] == t) return i;
    return -1;
}

static bool is_float_dtype(lc_dtype d) { return d == LC_F32 || d == LC_F16 || d == LC_BF16; }

static bool requires_grad(const bw_state *s, const lc_tensor *t) {
    if (!t) return false;
    if (t->graph == s->g) return t->producer && t->id < s->nt && s->rg[t->id];
    return (t->flags & LC_TENSOR_PARAM) && !(t->flags & (LC_TENSOR_FROZEN | LC_TENSOR_INPUT)) &&
           is_float_dtype(t->dtype);
}

/* Gradient name: "<name>.grad", truncated. */
static void grad_name(char *dst, const lc_tensor *t) { lc_graph_name_(dst, t->name, ".grad"); }

/* Create the gradient tensor of `t` (F32, t's ne). Persistent for parameters. */
static lc_tensor *new_grad(bw_state *s, const lc_tensor *t, bool param) {
    char name[LC_NAME_MAX];
    grad_name(name, t);
    lc_tensor *gr = lc_graph_new_tensor_(s->g, LC_F32, LC_MAX_DIMS, t->ne, name);
    if (gr && param) s->g->marks[gr->id] |= LC_MARK_PERSISTENT | LC_MARK_PARAM_GRAD;
    return gr;
}

static lc_status validate(lc_graph *g, lc_tensor *out, lc_tensor *seed) {
    if (!g) return lc_error(LC_ERR_INVALID_ARG, "lc_graph_backward: graph is NULL");
    if (g->planned) return lc_error(LC_ERR_STATE, "lc_graph_backward: graph is already planned");
    if (g->has_backward) return lc_error(LC_ERR_STATE, "lc_graph_backward: called twice on the same graph");
    if (g->status != LC_OK)
        return lc_error(g->status, "lc_graph_backward: the graph has a builder error: %s", g->error);
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_graph_backward: out is NULL");
    if (out->graph != g || !out->producer || out->producer->dst[0] != out)
        return lc_error(LC_ERR_INVALID_ARG, "lc_graph_backward: out '%s' must be the main output of a node of this graph",
                        out->name);
    if (out->dtype != LC_F32)
        return lc_error(LC_ERR_DTYPE, "lc_graph_backward: out '%s' has dtype %s, expected f32", out->name,
                        lc_dtype_name(out->dtype));
    if (seed) {
        lc_device *sdev = seed->graph ? seed->graph->dev : lc_tensor_device_(seed);
        if (sdev != g->dev)
            return lc_error(LC_ERR_INVALID_ARG, "lc_graph_backward: seed '%s' is not on the graph's device", seed->name);
        if (seed->dtype != LC_F32)
            return lc_error(LC_ERR_DTYPE, "lc_graph_backward: seed '%s' has dtype %s, expected f32", seed->name,
                            lc_dtype_name(seed->dtype));
        for (int i = 0; i < LC_MAX_DIMS; i++)
            if (seed->ne[i] != out->ne[i])
                return lc_error(LC_ERR_SHAPE,
                                "lc_graph_backward: seed '%s' ne = {%lld, %lld, %lld, %lld} must equal out '%s' ne = "
                                "{%lld, %lld, %lld, %lld}",
                                seed->name, (long long)seed->ne[0], (long long)seed->ne[1], (long long)seed->ne[2],
                                (long long)seed->ne[3], out->name, (long long)out->ne[0], (long long)out->ne[1],
                                (long long)out->ne[2], (long long)out->ne[3]);
    } else if (lc_nelements(out) != 1) {
        return lc_error(LC_ERR_SHAPE, "lc_graph_backward: out '%s' has %lld elements; a NULL seed needs a scalar",
                        out->name, (long long)lc_nelements(out));
    }
    for (int i = 0; i < g->n_nodes; i++) {
        lc_op op = g->nodes[i]->op;
        if (op == LC_OP_ADAMW || op == LC_OP_LORA_MERGE)
            return lc_error(LC_ERR_STATE, "lc_graph_backward: node %d (%s) updates in place; build it after the backward pass",
                            i, lc_op_name(op));
    }
    for (int i = 0; i < g->n_params; i++) {
        const lc_tensor *p = g->params[i];
        if (!(p->flags & LC_TENSOR_FROZEN) && !is_float_dtype(p->dtype))
            return lc_error(LC_ERR_DTYPE, "lc_graph_backward: parameter '%s' has dtype %s; trainable tensors must be "
                            "f32, f16 or bf16", p->name, lc_dtype_name(p->dtype));
    }
    return LC_OK;
}

/* Phase 1: which tensors receive a gradient. Returns true when a parameter does. */
static bool mark_reach(bw_state *s, lc_tensor *out, int n_fwd) {
    lc_graph *g = s->g;
    s->hg[out->id] = true;
    for (int i = n_fwd - 1; i >= 0; i--) {
        const lc_node *n = g->nodes[i];
        uint32_t slots = diff_slots(n->op);
        if (!slots || !n->dst[0] || n->dst[0]->graph != g || !s->hg[n->dst[0]->id]) continue;
        for (int k = 0; k < LC_MAX_SRC; k++) {
            lc_tensor *t = n->src[k];
            if (!(slots & (1u << k)) || !requires_grad(s, t)) continue;
            if (t->graph == g) s->hg[t->id] = true;
            else s->hp[param_index(g, t)] = true;
        }
    }
    for (int i = 0; i < g->n_params; i++)
        if (s->hp[i]) return true;
    return false;
}

/* ---- recomputation ------------------------------------------------------------------------ */

/* Whether forward node n gets a gradient node (same test as emit). */
static bool emits(const bw_state *s, const lc_node *n) {
    uint32_t slots = diff_slots(n->op);
    if (!slots || !n->dst[0] || n->dst[0]->graph != s->g || !s->hg[n->dst[0]->id]) return false;
    for (int k = 0; k < LC_MAX_DST && k < LC_MAX_SRC; k++)
        if ((slots & (1u << k)) && requires_grad(s, n->src[k])) return true;
    return false;
}

static bool persistent_t(const lc_graph *g, const lc_tensor *t) {
    return (g->marks[t->id] & LC_MARK_PERSISTENT) || (t->flags & (LC_TENSOR_INPUT | LC_TENSOR_OUTPUT));
}

/* Forward tensor that keeps its own memory through the backward pass: never copied. */
static bool kept_t(const bw_state *s, const lc_tensor *t) {
    return persistent_t(s->g, t) || (s->g->marks[t->id] & LC_MARK_CHECKPOINT);
}

/* `t` is (a view of the memory of) a tensor some node writes in place. */
static bool written_in_place(const bw_state *s, const lc_tensor *t) {
    for (int i = 0; i < s->n_inplace; i++) {
        const lc_tensor *w = s->inplace[i];
        if (w == t) return true;
        if (t->graph != s->g && w->graph != s->g && t->buffer && t->buffer == w->buffer) return true;
    }
    return false;
}

static bool copyable(const bw_state *s, const lc_node *n) {
    if (n->op == LC_OP_NONE || n->op == LC_OP_ADAMW || n->op == LC_OP_LORA_MERGE || !n->dst[0]) return false;
    for (int k = 0; k < LC_MAX_DST; k++) {
        const lc_tensor *t = n->dst[k];
        if (t && (t->graph != s->g || t->producer != n || t->id >= s->nt || persistent_t(s->g, t))) return false;
    }
    for (int k = 0; k < LC_MAX_SRC; k++)
        if (n->src[k] && written_in_place(s, n->src[k])) return false;
    return true;
}

/* The tensor gradient nodes and copies read in place of forward tensor t. */
static lc_tensor *mapped(const bw_state *s, lc_tensor *t) {
    if (s->rc && t && t->graph == s->g && t->id < s->nt && s->rc[t->id]) return s->rc[t->id];
    return t;
}

/* Mark the producer of t needed when it is a dep node of segment [lo, hi] and t is not kept. */
static void need_t(bw_state *s, const lc_tensor *t, int lo, int hi) {
    if (!t || t->graph != s->g || t->id >= s->nt || !t->producer || kept_t(s, t)) return;
    int p = t->producer->index;
    if (p >= lo && p <= hi && s->dep[p]) s->need[p] = true;
}

static bool note_copy(lc_graph *g, lc_node *copy, lc_node *orig) {
    if (g->n_rc + 1 > g->cap_rc) {
        int nc = g->cap_rc ? g->cap_rc * 2 : 64;
        lc_node **a = realloc(g->rc_copy, (size_t)nc * sizeof *a);
        if (!a) return false;
        g->rc_copy = a;
        lc_node **b = realloc(g->rc_orig, (size_t)nc * sizeof *b);
        if (!b) return false;
        g->rc_orig = b;
        g->cap_rc = nc;
    }
    g->rc_copy[g->n_rc] = copy;
    g->rc_orig[g->n_rc] = orig;
    g->n_rc++;
    return true;
}

/* Append the copies of segment [lo, hi] (forward node indices) that its gradient nodes need. */
static lc_status recompute_segment(bw_state *s, int lo, int hi) {
    lc_graph *g = s->g;
    for (int i = lo; i <= hi; i++) {
        s->dep[i] = s->need[i] = false;
        const lc_node *n = g->nodes[i];
        if (!copyable(s, n)) continue;
        for (int k = 0; k < LC_MAX_SRC && !s->dep[i]; k++) {
            const lc_tensor *t = n->src[k];
            if (!t || t->graph != g || t->id >= s->nt) continue;
            if (g->marks[t->id] & LC_MARK_CHECKPOINT) {
                s->dep[i] = true;
            } else if (t->producer && !persistent_t(g, t)) {
                int p = t->producer->index;
                if (p >= lo && p < i && s->dep[p]) s->dep[i] = true;
            }
        }
    }
    for (int i = hi; i >= lo; i--) {
        const lc_node *n = g->nodes[i];
        if (emits(s, n)) {
            for (int k = 0; k < 4; k++) need_t(s, n->src[k], lo, hi);
            need_t(s, n->dst[0], lo, hi);
            need_t(s, n->dst[1], lo, hi);
        }
        if (s->need[i])
            for (int k = 0; k < LC_MAX_SRC; k++) need_t(s, n->src[k], lo, hi);
    }
    for (int i = lo; i <= hi; i++) {
        if (!s->need[i]) continue;
        lc_node *n = g->nodes[i];
        lc_tensor *out[LC_MAX_DST] = {0};
        for (int k = 0; k < LC_MAX_DST; k++) {
            const lc_tensor *t = n->dst[k];
            if (!t) continue;
            char name[LC_NAME_MAX];
            lc_graph_name_(name, t->name, ".rc");
            out[k] = lc_graph_new_tensor_(g, t->dtype, LC_MAX_DIMS, t->ne, name);
            if (!out[k]) return g->status;
        }
        lc_node *c = lc_graph_new_node_(g, n->op);
        if (!c) return g->status;
        if (!note_copy(g, c, n))
            return lc_graph_fail_(g, LC_ERR_NOMEM, "lc_graph_backward: out of host memory recording a recompute copy");
        for (int k = 0; k < LC_MAX_SRC; k++) c->src[k] = mapped(s, n->src[k]);
        for (int k = 0; k < LC_MAX_DST; k++) {
            if (!out[k]) continue;
            c->dst[k] = out[k];
            out[k]->producer = c;
            if (!(g->marks[n->dst[k]->id] & LC_MARK_CHECKPOINT)) s->rc[n->dst[k]->id] = out[k];
        }
        c->accum = n->accum;
        memcpy(c->ip, n->ip, sizeof c->ip);
        memcpy(c->fp, n->fp, sizeof c->fp);
        c->seed = n->seed;
        c->rng_step = n->rng_step;
    }
    return LC_OK;
}

/* Segment boundaries and the in-place list for recomputation. */
static lc_status recompute_init(bw_state *s, int n_fwd) {
    lc_graph *g = s->g;
    size_t nf = (size_t)(n_fwd ? n_fwd : 1);
    s->seg_lo = malloc(nf * sizeof *s->seg_lo);
    s->dep = calloc(nf, sizeof *s->dep);
    s->need = calloc(nf, sizeof *s->need);
    s->rc = calloc((size_t)(s->nt ? s->nt : 1), sizeof *s->rc);
    s->inplace = calloc(nf * LC_MAX_DST, sizeof *s->inplace);
    if (!s->seg_lo || !s->dep || !s->need || !s->rc || !s->inplace)
        return lc_error(LC_ERR_NOMEM, "lc_graph_backward: out of host memory");
    int prev = -1;
    for (int i = 0; i < n_fwd; i++) {
        const lc_node *n = g->nodes[i];
        bool ends = false;
        s->seg_lo[i] = -1;
        for (int k = 0; k < LC_MAX_DST; k++) {
            const lc_tensor *t = n->dst[k];
            if (!t) continue;
            if (t->producer != n) s->inplace[s->n_inplace++] = n->dst[k];
            if (t->graph == g && t->id < s->nt && (g->marks[t->id] & LC_MARK_CHECKPOINT)) ends = true;
        }
        if (ends) {
            s->seg_lo[i] = prev + 1;
            prev = i;
        }
    }
    return LC_OK;
}

/* Phase 2: emit the gradient nodes. */
static lc_status emit(bw_state *s, lc_tensor *out, lc_tensor *seed, int n_fwd) {
    lc_graph *g = s->g;
    if (seed) {
        s->gt[out->id] = seed;
    } else {
        lc_tensor *one = new_grad(s, out, false);
        lc_node *f = one ? lc_graph_new_node_(g, LC_OP_FILL) : NULL;
        if (!f) return g->status;
        f->dst[0] = one;
        f->fp[0] = 1.0f;
        one->producer = f;
        s->gt[out->id] = one;
    }
    for (int i = n_fwd - 1; i >= 0; i--) {
        lc_node *n = g->nodes[i];
        if (s->seg_lo && s->seg_lo[i] >= 0) {
            lc_status st = recompute_segment(s, s->seg_lo[i], i);
            if (st != LC_OK) return st;
        }
        uint32_t slots = diff_slots(n->op);
        if (!slots || !n->dst[0] || n->dst[0]->graph != g || !s->hg[n->dst[0]->id]) continue;
        lc_tensor *dy = s->gt[n->dst[0]->id];
        if (!dy) continue; /* cannot happen: every reached tensor got a writer before its producer */
        lc_tensor *dst[LC_MAX_DST] = {0};
        uint32_t accum = 0, created = 0;
        for (int k = 0; k < LC_MAX_DST && k < LC_MAX_SRC; k++) {
            lc_tensor *t = n->src[k];
            if (!(slots & (1u << k)) || !requires_grad(s, t)) continue;
            bool param = t->graph != g;
            lc_tensor **slot = param ? &s->gp[param_index(g, t)] : &s->gt[t->id];
            if (!*slot) {
                *slot = new_grad(s, t, param);
                if (!*slot) return g->status;
                if (!param) created |= 1u << k;
            }
            dst[k] = *slot;
            if (param || !(created & (1u << k))) accum |= 1u << k;
        }
        if (!dst[0] && !dst[1] && !dst[2] && !dst[3]) continue;
        /* Same tensor in two slots, first written here: zero it first and accumulate in both. */
        for (int a = 0; a < LC_MAX_DST; a++) {
            if (!(created & (1u << a))) continue;
            bool dup = false;
            for (int b = a + 1; b < LC_MAX_DST; b++)
                if (dst[b] == dst[a]) dup = true;
            if (!dup) continue;
            lc_node *z = lc_graph_new_node_(g, LC_OP_FILL);
            if (!z) return g->status;
            z->dst[0] = dst[a];
            z->fp[0] = 0.0f;
            dst[a]->producer = z;
            accum |= 1u << a;
            created &= ~(1u << a);
        }
        lc_node *b = lc_graph_new_node_(g, back_op(n->op));
        if (!b) return g->status;
        for (int k = 0; k < 4; k++) b->src[k] = mapped(s, n->src[k]);
        b->src[4] = mapped(s, n->dst[0]);
        b->src[5] = mapped(s, n->dst[1]);
        b->src[6] = dy;
        for (int k = 0; k < LC_MAX_DST; k++) {
            b->dst[k] = dst[k];
            if (dst[k] && (created & (1u << k))) dst[k]->producer = b;
        }
        b->accum = accum;
        memcpy(b->ip, n->ip, sizeof b->ip);
        memcpy(b->fp, n->fp, sizeof b->fp);
        b->seed = n->seed;
        b->rng_step = n->rng_step;
    }
    return LC_OK;
}

lc_status lc_graph_backward(lc_graph *g, lc_tensor *out, lc_tensor *seed) {
    lc_status st = validate(g, out, seed);
    if (st != LC_OK) return st;
    const int n_fwd = g->n_nodes;
    bw_state s = {.g = g, .nt = g->n_tensors};
    size_t nt = (size_t)s.nt, np = (size_t)g->n_params;
    s.rg = calloc(nt, sizeof *s.rg);
    s.hg = calloc(nt, sizeof *s.hg);
    s.gt = calloc(nt, sizeof *s.gt);
    s.hp = calloc(np ? np : 1, sizeof *s.hp);
    s.gp = calloc(np ? np : 1, sizeof *s.gp);
    if (!s.rg || !s.hg || !s.gt || !s.hp || !s.gp) {
        st = lc_error(LC_ERR_NOMEM, "lc_graph_backward: out of host memory");
        goto done;
    }
    for (int i = 0; i < n_fwd; i++) {
        const lc_node *n = g->nodes[i];
        uint32_t slots = diff_slots(n->op);
        if (!slots || !n->dst[0] || n->dst[0]->graph != g) continue;
        bool any = false;
        for (int k = 0; k < LC_MAX_SRC; k++)
            if ((slots & (1u << k)) && requires_grad(&s, n->src[k])) any = true;
        s.rg[n->dst[0]->id] = any;
    }
    if (!s.rg[out->id] || !mark_reach(&s, out, n_fwd)) {
        st = lc_error(LC_ERR_INVALID_ARG,
                      "lc_graph_backward: no trainable parameter (LC_TENSOR_PARAM, not frozen) reaches '%s' through "
                      "differentiable ops", out->name);
        goto done;
    }
    if (g->recompute && (st = recompute_init(&s, n_fwd)) != LC_OK) goto done;
    st = emit(&s, out, seed, n_fwd);
    if (st != LC_OK) goto done;
    for (int i = 0; i < s.nt; i++)
        if (s.gt[i]) g->tensors[i]->grad = s.gt[i];
    for (int i = 0; i < g->n_params; i++)
        if (s.gp[i]) g->params[i]->grad = s.gp[i];
    out->flags |= LC_TENSOR_OUTPUT;
    g->marks[out->id] |= LC_MARK_PERSISTENT;
    g->has_backward = true;
done:
    free(s.rg);
    free(s.hg);
    free(s.gt);
    free(s.hp);
    free(s.gp);
    free(s.seg_lo);
    free(s.dep);
    free(s.need);
    free(s.rc);
    free(s.inplace);
    return st;
}
