/* lorac — internal layout of a graph, shared by graph.c (builders, execution), graph_backward.c
 * (autodiff) and graph_plan.c (support check and memory planner). Not part of the public API.
 */
#ifndef LORAC_GRAPH_INTERNAL_H
#define LORAC_GRAPH_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "device_internal.h"
#include "lorac/graph.h"

/* Per graph-owned tensor marks (lc_graph.marks[t->id]). */
enum {
    LC_MARK_PERSISTENT = 1u << 0, /* own memory, never reused: inputs, outputs, param grads, in-place targets */
    LC_MARK_PARAM_GRAD = 1u << 1, /* gradient of a PARAM leaf (zeroed by lc_graph_zero_grad) */
    LC_MARK_CHECKPOINT = 1u << 2, /* lc_graph_checkpoint: kept activation, segment boundary */
};

/* Offsets in both planned buffers are multiples of this many bytes. */
#define LC_GRAPH_ALIGN 256

struct lc_graph {
    lc_device *dev;
    lc_status status;   /* first builder error */
    char error[1024];   /* its message */
    bool planned;
    bool has_backward;
    bool recompute;     /* lc_graph_set_recompute: lc_graph_backward recomputes segments */

    /* Recompute copies appended by lc_graph_backward and the forward nodes they copy. */
    lc_node **rc_copy, **rc_orig;
    int n_rc, cap_rc;

    lc_node **nodes;    /* execution order */
    int n_nodes, cap_nodes;

    lc_tensor **tensors; /* graph-owned tensors, tensors[i]->id == i */
    uint32_t *marks;     /* LC_MARK_* per graph-owned tensor */
    int n_tensors, cap_tensors;

    lc_tensor **params;  /* PARAM leaves in first-use order */
    int n_params, cap_params;

    lc_buffer *arena;      /* planned activations (reused memory) */
    lc_buffer *persistent; /* inputs, outputs, parameter gradients */
    uint64_t arena_bytes, unplanned_bytes, persistent_bytes;
};

/* Record `st` (first one wins) on the graph and as the thread's last error; returns st. */
lc_status lc_graph_fail_(lc_graph *g, lc_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* New graph-owned F32/any tensor with packed layout, or NULL (error recorded on g). */
lc_tensor *lc_graph_new_tensor_(lc_graph *g, lc_dtype dtype, int ndims, const int64_t *ne, const char *name);

/* Append a zeroed node with `op` (index set), or NULL (LC_ERR_NOMEM recorded on g). */
lc_node *lc_graph_new_node_(lc_graph *g, lc_op op);

/* Copy `a` then `b` into dst[LC_NAME_MAX], truncating. */
void lc_graph_name_(char *dst, const char *a, const char *b);

/* Plan with or without memory reuse (graph_plan.c). */
lc_status lc_graph_plan_impl_(lc_graph *g, bool reuse);

#endif
