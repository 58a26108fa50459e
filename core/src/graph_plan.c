/* lorac — lc_graph_plan: device support check and lifetime-based activation memory planning.
 *
 * Two device buffers per graph:
 *  - persistent: graph inputs (lc_graph_input), outputs (lc_graph_set_output and the tensor given
 *    to lc_graph_backward), parameter gradients and graph-owned in-place targets; each tensor has
 *    its own 256-byte aligned slot, never shared, zeroed at plan time;
 *  - arena: every other graph-owned tensor. A tensor lives from the first node that touches it
 *    (its producer, or the first gradient writer) to the last node that touches it, inclusive.
 *    Walking the nodes in execution order, the tensors born at node i are placed first (best fit
 *    in a free list of dead tensors' ranges, else at the end of the arena), then the tensors whose
 *    life ends at node i are released and coalesced with free neighbours. A node's outputs
 *    therefore never overlap its inputs, with one exception (in_place_heir below): dlogits of
 *    CROSS_ENTROPY_BACK take over the logits' range when that node is the logits' last use.
 *    Offsets are multiples of LC_GRAPH_ALIGN.
 * lc_graph_unplanned_bytes is the sum of the aligned arena tensor sizes (every tensor its own
 * slot); lc_graph_arena_bytes is the arena actually allocated. LORAC_PLAN_NO_REUSE=1 in the
 * environment disables reuse (each arena tensor its own slot), for debugging kernels that write
 * out of bounds.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

typedef struct fl_block {
    uint64_t off, size;
} fl_block;

/* Free list of released arena ranges, sorted by offset, below `top` (current arena end). */
typedef struct free_list {
    fl_block *b;
    int n, cap;
    uint64_t top, peak;
} free_list;

static bool fl_insert_at(free_list *fl, int at, fl_block blk) {
    if (fl->n + 1 > fl->cap) {
        int nc = fl->cap ? fl->cap * 2 : 32;
        fl_block *p = realloc(fl->b, (size_t)nc * sizeof *p);
        if (!p) return false;
        fl->b = p;
        fl->cap = nc;
    }
    memmove(fl->b + at + 1, fl->b + at, (size_t)(fl->n - at) * sizeof *fl->b);
    fl->b[at] = blk;
    fl->n++;
    return true;
}

static void fl_remove(free_list *fl, int at) {
    memmove(fl->b + at, fl->b + at + 1, (size_t)(fl->n - at - 1) * sizeof *fl->b);
    fl->n--;
}

/* Best fit: the smallest free range that holds `size`; else grow the arena. */
static uint64_t fl_alloc(free_list *fl, uint64_t size) {
    int best = -1;
    for (int i = 0; i < fl->n; i++)
        if (fl->b[i].size >= size && (best < 0 || fl->b[i].size < fl->b[best].size)) best = i;
    uint64_t off;
    if (best >= 0) {
        off = fl->b[best].off;
        fl->b[best].off += size;
        fl->b[best].size -= size;
        if (fl->b[best].size == 0) fl_remove(fl, best);
    } else if (fl->n > 0 && fl->b[fl->n - 1].off + fl->b[fl->n - 1].size == fl->top) {
        off = fl->b[fl->n - 1].off; /* extend the trailing free range */
        fl_remove(fl, fl->n - 1);
        fl->top = off + size;
    } else {
        off = fl->top;
        fl->top += size;
    }
    if (fl->top > fl->peak) fl->peak = fl->top;
    return off;
}

static bool fl_free(free_list *fl, uint64_t off, uint64_t size) {
    int at = 0;
    while (at < fl->n && fl->b[at].off < off) at++;
    if (!fl_insert_at(fl, at, (fl_block){off, size})) return false;
    if (at + 1 < fl->n && fl->b[at].off + fl->b[at].size == fl->b[at + 1].off) {
        fl->b[at].size += fl->b[at + 1].size;
        fl_remove(fl, at + 1);
    }
    if (at > 0 && fl->b[at - 1].off + fl->b[at - 1].size == fl->b[at].off) {
        fl->b[at - 1].size += fl->b[at].size;
        fl_remove(fl, at);
        at--;
    }
    if (fl->b[at].off + fl->b[at].size == fl->top) { /* give the tail back to the arena end */
        fl->top = fl->b[at].off;
        fl_remove(fl, at);
    }
    return true;
}

static uint64_t align_up(uint64_t x) { return (x + LC_GRAPH_ALIGN - 1) / LC_GRAPH_ALIGN * LC_GRAPH_ALIGN; }

/* Dtype names of a node's tensors for error messages: "src f32, q4_K; dst f32". */
static void node_dtypes(const lc_node *n, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        int cnt = pass ? LC_MAX_DST : LC_MAX_SRC;
        len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s", pass ? "; dst" : "src");
        int k = 0;
        for (int i = 0; i < cnt && len < cap; i++) {
            const lc_tensor *t = pass ? n->dst[i] : n->src[i];
            if (!t) continue;
            len += (size_t)snprintf(buf + len, cap - len, "%s %s", k++ ? "," : "", lc_dtype_name(t->dtype));
        }
        if (len >= cap) break;
    }
}

static bool is_persistent(const lc_graph *g, const lc_tensor *t) {
    return (g->marks[t->id] & LC_MARK_PERSISTENT) || (t->flags & (LC_TENSOR_INPUT | LC_TENSOR_OUTPUT));
}

static lc_status check_nodes(lc_graph *g) {
    lc_device *dev = g->dev;
    for (int i = 0; i < g->n_nodes; i++) {
        const lc_node *n = g->nodes[i];
        for (int k = 0; k < LC_MAX_SRC + LC_MAX_DST; k++) {
            const lc_tensor *t = k < LC_MAX_SRC ? n->src[k] : n->dst[k - LC_MAX_SRC];
            if (!t || t->graph == g) continue;
            if (!t->buffer)
                return lc_error(LC_ERR_STATE, "lc_graph_plan: node %d (%s) uses '%s' of another graph that is not planned "
                                "yet; plan that graph first", i, lc_op_name(n->op), t->name);
            if (t->buffer->device != dev)
                return lc_error(LC_ERR_INVALID_ARG, "lc_graph_plan: node %d (%s) uses '%s' from device %s, not %s", i,
                                lc_op_name(n->op), t->name, t->buffer->device->info.spec, dev->info.spec);
        }
        if (dev->iface->supports) {
            lc_clear_error();
            if (!dev->iface->supports(dev->ctx, n)) {
                /* A backend may leave its detailed reason (tensor, bytes, limit) in lc_last_error. */
                char types[256], why[1024];
                node_dtypes(n, types, sizeof types);
                snprintf(why, sizeof why, "%s", lc_last_error());
                return lc_error(LC_ERR_UNSUPPORTED, "lc_graph_plan: device %s (%s) does not support node %d: op %s (%s)%s%s",
                                dev->info.spec, dev->info.name, i, lc_op_name(n->op), types, why[0] ? ": " : "", why);
            }
        }
    }
    return LC_OK;
}

/* Backward nodes carry the forward output in src[4] (graph.h), but only ATTENTION_BACK reads it
 * (o, for D = rowsum(do * o)); for every other op it is only the link lc_graph_compute uses to find
 * the forward node, so it does not keep the forward output alive. */
static bool back_reads_output(lc_op op) { return op < LC_OP_GET_ROWS_BACK || op == LC_OP_ATTENTION_BACK; }

/* The one in-place exception to "a node's outputs never overlap its inputs": CROSS_ENTROPY_BACK
 * writing dlogits over the logits when this node is the logits' last use. Every backend computes
 * that op element by element from the same index (dlogits[v,n] from logits[v,n], lse[n] and the
 * label; row sums are complete before the first write), so sharing the memory gives the same
 * bits; for Gemma 3's 262144-entry vocabulary it saves one logits-sized tensor (1 MiB per token)
 * at the peak of the step. Returns dst0's tensor id when it may take over src0's range, else -1:
 * both arena tensors of one size, dst0 first written here without accumulation, src0 last read
 * here, and src0 in no other slot of the node. */
static int in_place_heir(const lc_graph *g, const lc_node *n, int i, const int *first, const int *last) {
    if (n->op != LC_OP_CROSS_ENTROPY_BACK || (n->accum & 1u)) return -1;
    const lc_tensor *s = n->src[0], *d = n->dst[0];
    if (!s || !d || s == d || s->graph != g || d->graph != g || is_persistent(g, s) || is_persistent(g, d)) return -1;
    if (first[d->id] != i || last[s->id] != i || first[s->id] >= i) return -1;
    if (align_up(lc_nbytes(s)) != align_up(lc_nbytes(d))) return -1;
    for (int k = 1; k < LC_MAX_SRC; k++)
        if (n->src[k] == s) return -1;
    for (int k = 1; k < LC_MAX_DST; k++)
        if (n->dst[k] == s || n->dst[k] == d) return -1;
    return d->id;
}

lc_status lc_graph_plan_impl_(lc_graph *g, bool reuse) {
    if (!g) return lc_error(LC_ERR_INVALID_ARG, "lc_graph_plan: graph is NULL");
    if (g->planned) return lc_error(LC_ERR_STATE, "lc_graph_plan: graph is already planned");
    if (g->status != LC_OK) return lc_error(g->status, "lc_graph_plan: the graph has a builder error: %s", g->error);
    lc_status st = check_nodes(g);
    if (st != LC_OK) return st;

    const int nt = g->n_tensors, nn = g->n_nodes;
    int *first = malloc((size_t)(nt ? nt : 1) * sizeof *first);
    int *last = malloc((size_t)(nt ? nt : 1) * sizeof *last);
    uint64_t *off = calloc((size_t)(nt ? nt : 1), sizeof *off);
    int *born_start = calloc((size_t)nn + 2, sizeof *born_start); /* CSR: tensors born / dying per node */
    int *dies_start = calloc((size_t)nn + 2, sizeof *dies_start);
    int *born = malloc((size_t)(nt ? nt : 1) * sizeof *born);
    int *dies = malloc((size_t)(nt ? nt : 1) * sizeof *dies);
    free_list fl = {0};
    if (!first || !last || !off || !born_start || !dies_start || !born || !dies) {
        st = lc_error(LC_ERR_NOMEM, "lc_graph_plan: out of host memory");
        goto done;
    }
    for (int i = 0; i < nt; i++) {
        first[i] = INT_MAX;
        last[i] = -1;
    }
    for (int i = 0; i < nn; i++) {
        const lc_node *n = g->nodes[i];
        for (int k = 0; k < LC_MAX_SRC + LC_MAX_DST; k++) {
            const lc_tensor *t = k < LC_MAX_SRC ? n->src[k] : n->dst[k - LC_MAX_SRC];
            if (!t || t->graph != g) continue;
            if (k == 4 && !back_reads_output(n->op)) continue; /* a link to the forward node only */
            if (i < first[t->id]) first[t->id] = i;
            if (i > last[t->id]) last[t->id] = i;
        }
    }

    /* Persistent tensors: each its own slot. */
    uint64_t pbytes = 0, unplanned = 0;
    for (int i = 0; i < nt; i++) {
        const lc_tensor *t = g->tensors[i];
        uint64_t sz = align_up(lc_nbytes(t));
        if (is_persistent(g, t)) {
            off[i] = pbytes;
            pbytes += sz;
        } else if (first[i] != INT_MAX) {
            unplanned += sz;
            born_start[first[i] + 1]++;
            dies_start[last[i] + 1]++;
        }
    }
    for (int i = 0; i < nn; i++) {
        born_start[i + 1] += born_start[i];
        dies_start[i + 1] += dies_start[i];
    }
    {
        int *bfill = calloc((size_t)nn + 1, sizeof *bfill), *dfill = calloc((size_t)nn + 1, sizeof *dfill);
        if (!bfill || !dfill) {
            free(bfill);
            free(dfill);
            st = lc_error(LC_ERR_NOMEM, "lc_graph_plan: out of host memory");
            goto done;
        }
        for (int i = 0; i < nt; i++) {
            if (is_persistent(g, g->tensors[i]) || first[i] == INT_MAX) continue;
            born[born_start[first[i]] + bfill[first[i]]++] = i;
            dies[dies_start[last[i]] + dfill[last[i]]++] = i;
        }
        free(bfill);
        free(dfill);
    }

    /* Arena tensors: place at birth, release after their last node. */
    uint64_t abytes = 0;
    for (int i = 0; i < nn; i++) {
        const int heir = reuse ? in_place_heir(g, g->nodes[i], i, first, last) : -1;
        for (int j = born_start[i]; j < born_start[i + 1]; j++) {
            int id = born[j];
            uint64_t sz = align_up(lc_nbytes(g->tensors[id]));
            if (id == heir) {
                off[id] = off[g->nodes[i]->src[0]->id]; /* takes over the dying src0's range */
            } else if (reuse) {
                off[id] = fl_alloc(&fl, sz);
            } else {
                off[id] = abytes;
                abytes += sz;
            }
        }
        if (!reuse) continue;
        for (int j = dies_start[i]; j < dies_start[i + 1]; j++) {
            int id = dies[j];
            if (heir >= 0 && id == g->nodes[i]->src[0]->id) continue; /* its range now belongs to dst0 */
            if (!fl_free(&fl, off[id], align_up(lc_nbytes(g->tensors[id])))) {
                st = lc_error(LC_ERR_NOMEM, "lc_graph_plan: out of host memory");
                goto done;
            }
        }
    }
    if (reuse) abytes = fl.peak;

    lc_buffer *arena = NULL, *pers = NULL;
    if (abytes > 0 && (st = lc_buffer_alloc(g->dev, (size_t)abytes, &arena)) != LC_OK) goto done;
    if (pbytes > 0 && (st = lc_buffer_alloc(g->dev, (size_t)pbytes, &pers)) != LC_OK) {
        lc_buffer_free(arena);
        goto done;
    }
    for (int i = 0; i < nt; i++) {
        lc_tensor *t = g->tensors[i];
        if (is_persistent(g, t)) {
            t->buffer = pers;
            t->offset = (size_t)off[i];
        } else if (first[i] != INT_MAX) {
            t->buffer = arena;
            t->offset = (size_t)off[i];
        }
    }
    g->arena = arena;
    g->persistent = pers;
    g->arena_bytes = abytes;
    g->unplanned_bytes = unplanned;
    g->persistent_bytes = pbytes;
    g->planned = true;
done:
    free(first);
    free(last);
    free(off);
    free(born_start);
    free(dies_start);
    free(born);
    free(dies);
    free(fl.b);
    return st;
}

lc_status lc_graph_plan(lc_graph *g) {
    const char *env = getenv("LORAC_PLAN_NO_REUSE");
    bool reuse = !(env && env[0] && strcmp(env, "0") != 0);
    return lc_graph_plan_impl_(g, reuse);
}
