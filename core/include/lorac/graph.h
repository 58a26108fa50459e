/* lorac — the training graph: op builders, reverse-mode autodiff, memory planner, replay.
 *
 * A graph is built once on a device and replayed every step. Builders record nodes and return
 * the node's output tensor; on bad input they return NULL and record the error on the graph
 * (lc_graph_status), and a builder given a NULL input returns NULL, so a chain of builders can be
 * checked once at the end. lc_graph_backward appends gradient nodes and never creates a gradient
 * for a tensor that is not a trainable parameter or on a path from one (no dW for frozen
 * weights). lc_graph_plan checks that the device supports every node, then assigns activation
 * memory with lifetime-based reuse ("reserve, then allocate"): one arena per graph.
 *
 * Conventions (as ggml / GGUF): ne[0] is the contiguous dimension. Activations are F32 2-D
 * tensors [features, tokens] where tokens = n_seq * seq_len; per-head structure is an op
 * parameter, so no view or permute ops are needed. Unless an op says otherwise its tensors are
 * contiguous with ne[2] = ne[3] = 1.
 *
 * ---- Ops (dst = outputs, src = inputs; shapes in ne order) ----------------------------------
 * FILL          dst0 (F32, any shape) = fp[0].
 * GET_ROWS      src0 table [E, V] (F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q6_K), src1 ids I32 [N]
 *               -> dst0 F32 [E, N], dst0[:, n] = table[:, ids[n]]. ids must lie in [0, V).
 * MUL_MAT       src0 x F32 [K, M], src1 w [K, N] any dtype -> dst0 y F32 [N, M],
 *               y[n,m] = sum_k x[k,m] * w[k,n]   (y = x·wᵀ with w in PyTorch [out,in] order).
 * LORA          src0 x F32 [in, T], src1 w [in, out] any dtype, src2 lora_A F32 [in, r]
 *               (PyTorch [r, in]), src3 lora_B F32 [r, out] (PyTorch [out, r])
 *               -> dst0 y F32 [out, T], dst1 u F32 [r, T]:
 *               h = drop(x);  u[j,t] = sum_i A[i,j] h[i,t];
 *               y[o,t] = sum_i w[i,o] x[i,t] + fp[0] * sum_j B[j,o] u[j,t].
 *               fp[0] = scaling (lora_alpha/r or lora_alpha/sqrt(r)), fp[1] = dropout p in [0,1).
 *               drop(x)[i,t] = x[i,t] * keep / (1-p) with keep = lc_rng_keep(seed,
 *               lc_rng_dropout_stream(rng_step, ip[0]), t*in + i, p); ip[0] = module id.
 *               Source: reference/peft-lora.md §1.2 (dropout on the LoRA input only).
 * ADD, MUL      src0 a F32 [n0, n1], src1 b F32 [m0, m1] with n0 % m0 == 0 and n1 % m1 == 0
 *               -> dst0 [n0, n1] = a[i,j] (+ or *) b[i % m0, j % m1]  (b broadcast by repetition).
 * SCALE         dst0 = src0 * fp[0].
 * RMS_NORM      src0 x F32 [n, R], src1 weight F32 [g] or NULL; ip[0] = g (group size, n % g == 0;
 *               0 means g = n), fp[0] = eps. Each group of g consecutive elements of a row is
 *               normalised: y = x / sqrt(mean(x^2 over the group) + eps) * w[i % g].
 * ROPE          src0 x F32 [hd * n_head, T], src1 pos I32 [T] -> dst0 same shape.
 *               ip[0] = n_head, ip[1] = n_rot (even, <= hd; dims >= n_rot pass through),
 *               ip[2] = mode (LC_ROPE_NORM 0: pairs (2i, 2i+1); LC_ROPE_NEOX 2: pairs (i, i+n_rot/2)),
 *               fp[0] = freq_base, fp[1] = freq_scale. For i < n_rot/2:
 *               theta = (float)pos * freq_scale * powf(freq_base, -2.0f*i/n_rot) (single precision),
 *               (a, b) -> (a cos - b sin, a sin + b cos). Source: reference/formats.md §3.
 * ATTENTION     src0 q [hd*n_head, Tq*S], src1 k [hd*n_kv, Tk*S], src2 v [hd*n_kv, Tk*S]
 *               -> dst0 o [hd*n_head, Tq*S], dst1 lse F32 [n_head, Tq*S].
 *               ip[0] = n_head, ip[1] = n_kv (n_head % n_kv == 0), ip[2] = S (sequences),
 *               ip[3] = causal (0/1), ip[4] = window (0: none); fp[0] = scale.
 *               Token t of sequence s is column s*T + t. Query i sits at position Tk - Tq + i, key j
 *               at j; key j is visible when (!causal || j <= pos_i) && (window == 0 ||
 *               pos_i - j < window). Query head h reads kv head h / (n_head / n_kv) (GQA).
 *               o = softmax(scale * q·kᵀ over visible keys) · v; lse = natural log of the
 *               softmax denominator including the max. A query with no visible key: o = 0,
 *               lse = -INFINITY.
 * GELU_TANH     y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 * SILU          y = x / (1 + exp(-x)).
 * GEGLU, SWIGLU src0 gate, src1 up (same shape) -> gelu_tanh(gate) * up, silu(gate) * up.
 * CROSS_ENTROPY src0 logits F32 [V, N], src1 labels I32 [N] -> dst0 loss F32 [1], dst1 lse F32 [N].
 *               ip[0] = ignore_index. Row n counts when labels[n] != ignore_index and
 *               0 <= labels[n] < V. loss = sum over counted rows of (lse[n] - logits[label, n]) / D,
 *               D = fp[0] when fp[0] > 0 (gradient accumulation: the step's label count), else the
 *               number of counted rows; no counted row gives loss 0 and zero gradients.
 * DEQUANTIZE    src0 any dtype -> dst0 F32, same ne.
 * CPY           src0 F32/F16/BF16 -> dst0 F32/F16/BF16 (convert, round to nearest even), same ne.
 * SUM_SQ        src0 F32 any shape -> dst0 F32 [1] = sum of squares (grad norm).
 * ADAMW         in place: src0 = dst0 param F32, src1 grad F32, src2 = dst1 m, src3 = dst2 v.
 *               fp[0] lr, fp[1] beta1, fp[2] beta2, fp[3] eps, fp[4] weight_decay, fp[5] grad_scale
 *               (g = grad * grad_scale; clipping), ip[0] = t (>= 1). Decoupled weight decay
 *               (Loshchilov & Hutter, ICLR 2019; as torch.optim.AdamW):
 *               p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *               p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 * LORA_MERGE    in place: src0 = dst0 w [in, out] F32/F16/BF16, src1 lora_A [in, r], src2 lora_B
 *               [r, out]; w[i,o] += fp[0] * sum_j B[j,o] A[i,j], computed in F32 and rounded once
 *               into w's dtype. fp[0] = +scaling merges, -scaling unmerges.
 *
 * ---- Backward ops (<OP>_BACK) --------------------------------------------------------------
 * src[0..3] = the forward node's src[0..3]; src[4] = forward dst0; src[5] = forward dst1 (aux:
 * LORA u, ATTENTION lse, CROSS_ENTROPY lse; else NULL); src[6] = gradient of forward dst0 (F32,
 * dst0's shape; for CROSS_ENTROPY the scalar dloss [1]). dst[i] = gradient of forward src[i]
 * (F32, src[i]'s ne) or NULL when not needed. Bit i of `accum` set: add into dst[i]; clear:
 * overwrite it. ip, fp, seed and rng_step are the forward node's.
 * Only ATTENTION_BACK may read src[4]: for every other backward op it is just the link to the
 * forward node, and lc_graph_plan does not keep its memory alive for that node.
 * In place: lc_graph_plan may give CROSS_ENTROPY_BACK's dst0 (dlogits, not accumulated) the memory
 * of its src0 (logits) when that node is the logits' last use; a backend computes each dlogits
 * element from the logits element of the same index (after any row reductions), so the result
 * is the same with or without sharing.
 */
#ifndef LORAC_GRAPH_H
#define LORAC_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "lorac/device.h"
#include "lorac/status.h"
#include "lorac/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LC_OP_LIST(X)                                                                       \
    X(NONE) X(FILL) X(GET_ROWS) X(MUL_MAT) X(LORA) X(ADD) X(MUL) X(SCALE) X(RMS_NORM)       \
    X(ROPE) X(ATTENTION) X(GELU_TANH) X(SILU) X(GEGLU) X(SWIGLU) X(CROSS_ENTROPY)           \
    X(DEQUANTIZE) X(CPY) X(SUM_SQ) X(ADAMW) X(LORA_MERGE)                                   \
    X(GET_ROWS_BACK) X(MUL_MAT_BACK) X(LORA_BACK) X(ADD_BACK) X(MUL_BACK) X(SCALE_BACK)     \
    X(RMS_NORM_BACK) X(ROPE_BACK) X(ATTENTION_BACK) X(GELU_TANH_BACK) X(SILU_BACK)          \
    X(GEGLU_BACK) X(SWIGLU_BACK) X(CROSS_ENTROPY_BACK)

typedef enum lc_op {
#define LC_X_OP(name) LC_OP_##name,
    LC_OP_LIST(LC_X_OP)
#undef LC_X_OP
    LC_OP_COUNT
} lc_op;

/* "mul_mat", "lora_back", ... */
const char *lc_op_name(lc_op op);

enum { LC_ROPE_NORM = 0, LC_ROPE_NEOX = 2 };

#define LC_MAX_SRC 8
#define LC_MAX_DST 4

struct lc_node {
    lc_op op;
    lc_tensor *src[LC_MAX_SRC];
    lc_tensor *dst[LC_MAX_DST];
    uint32_t accum;     /* backward ops: bit i set = accumulate into dst[i] */
    int32_t ip[8];      /* integer parameters, per op (see above) */
    float fp[8];        /* float parameters, per op */
    uint64_t seed;      /* LORA dropout seed */
    uint64_t rng_step;  /* LORA dropout step, set by lc_graph_set_step */
    int index;          /* position in the graph */
};

typedef struct lc_lora_params {
    float scaling;      /* lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA */
    float dropout;      /* p in [0, 1); 0 disables dropout */
    uint32_t module_id; /* distinct per LoRA module, < 2^24: selects the dropout stream */
    uint64_t seed;
} lc_lora_params;

typedef struct lc_attention_params {
    int n_head, n_kv, n_seq;
    bool causal;
    int window;         /* 0 = no sliding window */
    float scale;        /* usually 1/sqrt(head_dim) */
} lc_attention_params;

typedef struct lc_adamw_params {
    float lr, beta1, beta2, eps, weight_decay;
} lc_adamw_params;

/* ---- lifetime -------------------------------------------------------------------------- */

/* New empty graph on `dev`. NULL when out of memory. */
lc_graph *lc_graph_new(lc_device *dev);
/* Free the graph, its tensors, gradients and arena. NULL is a no-op. */
void lc_graph_free(lc_graph *g);
/* First error recorded by a builder (LC_OK if none); message via lc_last_error at that time
 * and lc_graph_error(g) afterwards. */
lc_status lc_graph_status(const lc_graph *g);
const char *lc_graph_error(const lc_graph *g);
lc_device *lc_graph_device(const lc_graph *g);

/* Persistent graph-owned leaf (never reused by the planner) that the host fills every step with
 * lc_tensor_set: token ids, labels, positions. 1..2 dims: ne0, ne1 (ne1 = 1 for a vector).
 * Allocated by lc_graph_plan. */
lc_tensor *lc_graph_input(lc_graph *g, lc_dtype dtype, int64_t ne0, int64_t ne1, const char *name);

/* Mark a node output the host will read after compute (its memory is not reused). */
void lc_graph_set_output(lc_graph *g, lc_tensor *t);

/* ---- activation recomputation (gradient checkpointing) ---------------------------------
 * Chen, Xu, Zhang, Guestrin, "Training Deep Nets with Sublinear Memory Cost" (arXiv:1604.06174,
 * 2016); the per-layer scheme of torch.utils.checkpoint. With recompute on, lc_graph_backward
 * splits the forward nodes at the checkpoint tensors into segments: segment j is the nodes after
 * checkpoint j-1's producer up to and including checkpoint j's producer; the nodes after the last
 * checkpoint (logits, loss) form the tail. Walking backwards, just before the gradient nodes of
 * segment j (never the tail), it appends copies of the segment's forward nodes that its gradient
 * nodes need (directly or through other copies) and that depend, inside the segment, on an
 * earlier checkpoint; the copies read the kept checkpoints, and the gradient nodes read the
 * copies' outputs instead of the originals. The original intermediate activations then die after
 * their last forward use, so the planned arena holds about one segment's activations plus the
 * checkpoints instead of every layer's. Not recomputed (read as they are): nodes that do not
 * depend on a checkpoint (weights, dequantised weights, FILL, anything computed from graph
 * inputs only), nodes with a persistent or graph-input output (lc_graph_set_output, lc_graph_input),
 * in-place nodes (lc_cpy_into), nodes reading memory that a node of the graph writes in place
 * (lc_cpy_into's dst or another view of its buffer: a later read could see other values), and
 * the checkpoints themselves. A copy is an ordinary node with the original's op, ip, fp, seed and rng_step (so a
 * LORA copy draws the same dropout mask); lc_graph_set_step updates copies too, and
 * lc_graph_compute re-copies ip, fp, seed and rng_step from the original before every run, so
 * changing a forward node through lc_tensor_node after lc_graph_backward reaches its copy. Same
 * ops on the same inputs: losses and gradients equal those without recompute (bit-identical on a
 * deterministic backend). Cost: about one extra forward pass per step. */

/* Turn recomputation on or off for `g` (default off). Call it before lc_graph_backward (right
 * after lc_graph_new is the intended place); LC_ERR_STATE is recorded on the graph when the
 * backward pass was already built or the graph is planned. NULL g is a no-op. */
void lc_graph_set_recompute(lc_graph *g, bool on);
/* Whether recomputation is on (false for NULL). */
bool lc_graph_recompute(const lc_graph *g);

/* Mark `t`, the output of a node of `g` (any shape and dtype), as a checkpoint: a kept activation
 * and a segment boundary (typically each transformer layer's output, the residual stream
 * [n_embd, T]). Returns t. The mark is always recorded but only used by lc_graph_backward when
 * recompute is on, so calling it with recompute off changes nothing. Marking twice is harmless.
 * A NULL t returns NULL (a builder chain stays checkable once at the end). Errors (recorded on
 * the graph, NULL returned): LC_ERR_INVALID_ARG when t is a leaf or belongs to another graph,
 * LC_ERR_STATE after lc_graph_backward or lc_graph_plan. */
lc_tensor *lc_graph_checkpoint(lc_graph *g, lc_tensor *t);

/* The forward node that node `n` of g recomputes, or NULL when n is not a recompute copy
 * (introspection for tests and tools). */
const lc_node *lc_graph_recompute_source(const lc_graph *g, const lc_node *n);
/* Number of recompute copies lc_graph_backward appended (0 with recompute off). */
int lc_graph_n_recomputed(const lc_graph *g);

/* ---- op builders (see the op table above for shapes and semantics) ---------------------- */
/* Each returns the op's main output, or NULL after recording LC_ERR_SHAPE / LC_ERR_DTYPE /
 * LC_ERR_INVALID_ARG / LC_ERR_STATE (graph already planned) on the graph. Leaves may be
 * standalone tensors (lc_tensor_new) on the graph's device. */
lc_tensor *lc_fill(lc_graph *g, int64_t ne0, int64_t ne1, float value);
lc_tensor *lc_get_rows(lc_graph *g, lc_tensor *table, lc_tensor *ids);
lc_tensor *lc_mul_mat(lc_graph *g, lc_tensor *x, lc_tensor *w);
lc_tensor *lc_lora(lc_graph *g, lc_tensor *x, lc_tensor *w, lc_tensor *lora_a, lc_tensor *lora_b,
                   const lc_lora_params *p);
lc_tensor *lc_add(lc_graph *g, lc_tensor *a, lc_tensor *b);
lc_tensor *lc_mul(lc_graph *g, lc_tensor *a, lc_tensor *b);
lc_tensor *lc_scale(lc_graph *g, lc_tensor *a, float s);
lc_tensor *lc_rms_norm(lc_graph *g, lc_tensor *x, lc_tensor *weight, int64_t group, float eps);
lc_tensor *lc_rope(lc_graph *g, lc_tensor *x, lc_tensor *pos, int n_head, int n_rot, int mode,
                   float freq_base, float freq_scale);
lc_tensor *lc_attention(lc_graph *g, lc_tensor *q, lc_tensor *k, lc_tensor *v,
                        const lc_attention_params *p);
lc_tensor *lc_gelu_tanh(lc_graph *g, lc_tensor *x);
lc_tensor *lc_silu(lc_graph *g, lc_tensor *x);
lc_tensor *lc_geglu(lc_graph *g, lc_tensor *gate, lc_tensor *up);
lc_tensor *lc_swiglu(lc_graph *g, lc_tensor *gate, lc_tensor *up);
lc_tensor *lc_cross_entropy(lc_graph *g, lc_tensor *logits, lc_tensor *labels, int ignore_index);
lc_tensor *lc_dequantize(lc_graph *g, lc_tensor *t);
lc_tensor *lc_cpy(lc_graph *g, lc_tensor *t, lc_dtype dtype);
lc_tensor *lc_sum_sq(lc_graph *g, lc_tensor *x);
/* CPY node that writes `src` (F32/F16/BF16, any graph tensor or leaf) into the EXISTING tensor
 * `dst` (F32/F16/BF16, same ne, converted as lc_cpy) instead of a new output: dst is typically a
 * view (lc_tensor_view) of a persistent buffer such as the columns of a KV cache. dst must be a
 * leaf (no producer; a standalone tensor, a view, or a graph input) other than src; a graph-owned
 * dst is treated as persistent by the planner (its memory is never reused). Nodes run in build
 * order, so a node built after this one that reads the same memory (another view of the same
 * buffer) sees the copy. Not differentiable. Returns dst, or NULL after recording LC_ERR_SHAPE
 * (ne differ), LC_ERR_DTYPE, LC_ERR_INVALID_ARG (dst has a producer or is src), LC_ERR_STATE. */
lc_tensor *lc_cpy_into(lc_graph *g, lc_tensor *src, lc_tensor *dst);
/* In-place update nodes; return `param` / `w`. m and v are F32 tensors shaped like param.
 * lc_adamw records LC_ERR_INVALID_ARG when param is LC_TENSOR_FROZEN (a base weight) or when
 * param, grad, m and v are not four distinct tensors, LC_ERR_SHAPE / LC_ERR_DTYPE for shapes or
 * dtypes other than four F32 tensors of one shape. */
lc_tensor *lc_adamw(lc_graph *g, lc_tensor *param, lc_tensor *grad, lc_tensor *m, lc_tensor *v,
                    const lc_adamw_params *p);
lc_tensor *lc_lora_merge_op(lc_graph *g, lc_tensor *w, lc_tensor *lora_a, lc_tensor *lora_b,
                            float scale);

/* Node that produced `t` (NULL for leaves); lets callers set fp/ip fields after building. */
lc_node *lc_tensor_node(lc_tensor *t);

/* ---- autodiff, planning, execution ---------------------------------------------------- */

/* Append the backward pass of `out`. seed NULL: `out` must have one element and is seeded with
 * 1; else seed is an F32 tensor shaped like `out` holding dL/d(out). Every LC_TENSOR_PARAM leaf
 * that `out` depends on gets t->grad, a persistent F32 tensor that backward nodes ADD into
 * (zero it with lc_graph_zero_grad). Intermediate gradients live in the arena. Frozen and input
 * tensors never get gradients. Errors: LC_ERR_STATE (called twice or after plan),
 * LC_ERR_INVALID_ARG (no parameter reaches out), LC_ERR_NOMEM. */
lc_status lc_graph_backward(lc_graph *g, lc_tensor *out, lc_tensor *seed);

/* Check every node against the device (LC_ERR_UNSUPPORTED naming op, dtypes and device),
 * plan and allocate memory. Must precede lc_graph_compute; no builders after it. */
lc_status lc_graph_plan(lc_graph *g);

/* Run every node in order and wait for the device. Errors: LC_ERR_STATE (not planned),
 * backend errors naming the op. */
lc_status lc_graph_compute(lc_graph *g);

/* Zero the gradients of every parameter leaf. */
lc_status lc_graph_zero_grad(lc_graph *g);

/* Set the dropout step of every LORA / LORA_BACK node (a fresh mask every step). */
void lc_graph_set_step(lc_graph *g, uint64_t step);

/* Set lr, t and grad_scale of every ADAMW node. */
void lc_graph_set_adamw(lc_graph *g, float lr, int t, float grad_scale);

/* Introspection. */
int lc_graph_n_nodes(const lc_graph *g);
lc_node *lc_graph_node(const lc_graph *g, int i);
/* Parameter leaves in first-use order; returns the count, writes at most max. */
int lc_graph_params(const lc_graph *g, lc_tensor **out, int max);
/* Bytes of the planned activation arena, and what it would take without reuse. */
uint64_t lc_graph_arena_bytes(const lc_graph *g);
uint64_t lc_graph_unplanned_bytes(const lc_graph *g);

/* Whether every tensor of `node` has a dtype its op allows (the op table above): weight slots
 * (GET_ROWS / GET_ROWS_BACK and DEQUANTIZE src0, MUL_MAT / LORA and their backward src1) accept
 * the dtypes for which `weight_ok` returns true (the ones a backend's kernels decode); CPY and
 * LORA_MERGE src0 and dst0 are F32/F16/BF16; GET_ROWS ids (src1), ROPE positions and
 * CROSS_ENTROPY labels (src1) are I32; every other slot is F32. Backends call it from supports(). */
bool lc_node_dtypes_ok(const lc_node *node, bool (*weight_ok)(lc_dtype));

/* Run a single node immediately on `dev` (used by one-off operations such as merge). */
lc_status lc_device_run_node(lc_device *dev, const lc_node *node);

#ifdef __cplusplus
}
#endif
#endif
