/* lorac tests — activation recomputation (gradient checkpointing, lc_graph_set_recompute).
 *
 *  - chain: a hand-built three-layer chain (no model) x_{l+1} = x_l + lora(silu(x_l·W_lᵀ)) with
 *    every x_{l+1} a checkpoint. Layer 0 reads a plain input, so nothing there depends on a
 *    checkpoint: its nodes are not copied. Layers 1 and 2 need exactly their MUL_MAT, SILU and
 *    LORA nodes recomputed (the ADD's output is the checkpoint, kept), so 6 copies, placed before
 *    the layer's gradient nodes; no gradient node reads an original intermediate activation of
 *    layers 1 and 2 (they die in the forward pass), every one reads layer 0's originals. Loss and
 *    gradients equal those of the same graph without recompute, and the loss equals a
 *    double-precision plain-loop forward (dropout 0).
 *  - model: lc_model_new_random + lc_lora_set_new on every projection with LoRA dropout 0.1, for
 *    the 2-layer toy model, a 6-layer toy model and a 6-layer Gemma 3 layout (geglu, qk norm,
 *    post norms, local/global layers): the loss and every LoRA gradient with recompute on equal
 *    those with it off at two dropout steps (bit-identical on the CPU, max_rel <= 1e-6
 *    elsewhere); the two steps give different losses (dropout really on); the arena is smaller
 *    with recompute and the saving grows with the number of layers.
 *  - errors: checkpoint of a leaf, set_recompute / checkpoint after the backward pass.
 * Runs on every device of lc_device_list (tests/common/lt_device.h).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/lt_device.h"
#include "common/lt_graph.h"
#include "common/lt_util.h"
#include "common/lt_suite.h"
#include "lorac/lorac.h"

static bool is_cpu(const lc_device_info *info) { return strncmp(info->spec, "cpu", 3) == 0; }

/* Compare b (recompute) with a (reference run) element by element: max |a-b|, and the relative
 * error max|a-b| / max|a|. */
static void diff(const float *a, const float *b, int64_t n, double *max_abs, double *max_ref) {
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= *max_abs)) *max_abs = d; /* NaN propagates */
        if (fabs((double)a[i]) > *max_ref) *max_ref = fabs((double)a[i]);
    }
}

/* ==== hand-built chain ========================================================================= */

enum { CH_L = 3, CH_E = 32, CH_T = 8, CH_R = 4, CH_V = 16 };

typedef struct chain_data {
    float x0[CH_E * CH_T];
    float w[CH_L][CH_E * CH_E], w2[CH_L][CH_E * CH_E], a[CH_L][CH_E * CH_R], b[CH_L][CH_R * CH_E];
    float wo[CH_E * CH_V];
    int32_t labels[CH_T];
} chain_data;

static void chain_init(chain_data *d) {
    lt_rng r;
    lt_rng_seed(&r, 77);
    const float s = 1.0f / sqrtf((float)CH_E);
    lt_fill_uniform(&r, d->x0, CH_E * CH_T, -1.0f, 1.0f);
    for (int l = 0; l < CH_L; l++) {
        lt_fill_uniform(&r, d->w[l], CH_E * CH_E, -s, s);
        lt_fill_uniform(&r, d->w2[l], CH_E * CH_E, -s, s);
        lt_fill_uniform(&r, d->a[l], CH_E * CH_R, -s, s);
        lt_fill_uniform(&r, d->b[l], CH_R * CH_E, -0.5f, 0.5f);
    }
    lt_fill_uniform(&r, d->wo, CH_E * CH_V, -s, s);
    for (int t = 0; t < CH_T; t++) d->labels[t] = lt_rng_int(&r, CH_V);
}

/* Double-precision loss of the chain (dropout 0), plain loops. Weights in ne order {in, out}. */
static double chain_ref_loss(const chain_data *d, float scaling) {
    double x[CH_E * CH_T], h[CH_E * CH_T], u[CH_R * CH_T];
    for (int i = 0; i < CH_E * CH_T; i++) x[i] = d->x0[i];
    for (int l = 0; l < CH_L; l++) {
        for (int t = 0; t < CH_T; t++)
            for (int o = 0; o < CH_E; o++) {
                double acc = 0;
                for (int i = 0; i < CH_E; i++) acc += x[t * CH_E + i] * d->w[l][o * CH_E + i];
                h[t * CH_E + o] = acc / (1.0 + exp(-acc)); /* silu */
            }
        for (int t = 0; t < CH_T; t++)
            for (int j = 0; j < CH_R; j++) {
                double acc = 0;
                for (int i = 0; i < CH_E; i++) acc += h[t * CH_E + i] * d->a[l][j * CH_E + i];
                u[t * CH_R + j] = acc;
            }
        for (int t = 0; t < CH_T; t++)
            for (int o = 0; o < CH_E; o++) {
                double base = 0, lo = 0;
                for (int i = 0; i < CH_E; i++) base += h[t * CH_E + i] * d->w2[l][o * CH_E + i];
                for (int j = 0; j < CH_R; j++) lo += u[t * CH_R + j] * d->b[l][o * CH_R + j];
                x[t * CH_E + o] += base + scaling * lo;
            }
    }
    double loss = 0;
    for (int t = 0; t < CH_T; t++) {
        double lg[CH_V], m = -INFINITY, z = 0;
        for (int v = 0; v < CH_V; v++) {
            double acc = 0;
            for (int i = 0; i < CH_E; i++) acc += x[t * CH_E + i] * d->wo[v * CH_E + i];
            lg[v] = acc;
            if (acc > m) m = acc;
        }
        for (int v = 0; v < CH_V; v++) z += exp(lg[v] - m);
        loss += m + log(z) - lg[d->labels[t]];
    }
    return loss / CH_T;
}

typedef struct chain_graph {
    lc_graph *g;
    lc_tensor *loss, *labels;
    lc_tensor *act[CH_L][4]; /* per layer: h (mul_mat), a (silu), y (lora), u (lora dst1) */
    lc_tensor *ckpt[CH_L];
    int n_fwd;
} chain_graph;

static bool chain_build(chain_graph *c, lc_device *dev, lt_env *env, const chain_data *d, lc_tensor **params,
                        bool recompute, lt_report *rep) {
    memset(c, 0, sizeof *c);
    c->g = lc_graph_new(dev);
    lc_graph *g = c->g;
    lc_graph_set_recompute(g, recompute);
    lc_tensor *x = lt_new_f32(env, CH_E, CH_T, d->x0, LC_TENSOR_FROZEN, "x0");
    lc_tensor *wo = lt_new_f32(env, CH_E, CH_V, d->wo, LC_TENSOR_FROZEN, "wo");
    c->labels = lc_graph_input(g, LC_I32, CH_T, 1, "labels");
    for (int l = 0; l < CH_L; l++) {
        lc_tensor *w = lt_new_f32(env, CH_E, CH_E, d->w[l], LC_TENSOR_FROZEN, "w");
        lc_tensor *w2 = lt_new_f32(env, CH_E, CH_E, d->w2[l], LC_TENSOR_FROZEN, "w2");
        lc_tensor *a = params[2 * l], *b = params[2 * l + 1];
        lc_lora_params lp = {.scaling = 0.75f, .dropout = 0.0f, .module_id = (uint32_t)l, .seed = 5};
        lc_tensor *h = lc_mul_mat(g, x, w);
        lc_tensor *s = lc_silu(g, h);
        lc_tensor *y = lc_lora(g, s, w2, a, b, &lp);
        x = lc_graph_checkpoint(g, lc_add(g, x, y));
        c->act[l][0] = h;
        c->act[l][1] = s;
        c->act[l][2] = y;
        c->act[l][3] = y ? lc_tensor_node(y)->dst[1] : NULL;
        c->ckpt[l] = x;
    }
    lc_tensor *logits = lc_mul_mat(g, x, wo);
    c->loss = lc_cross_entropy(g, logits, c->labels, -100);
    if (!lt_check(rep, c->loss && lc_graph_status(g) == LC_OK, "chain build: %s", lc_graph_error(g))) return false;
    lc_graph_set_output(g, c->loss);
    c->n_fwd = lc_graph_n_nodes(g);
    if (!lt_check_ok(rep, lc_graph_backward(g, c->loss, NULL), "chain backward")) return false;
    return lt_check_ok(rep, lc_graph_plan(g), "chain plan");
}

/* Run the chain; returns loss and writes the 2*CH_L gradients (concatenated) to grads. */
static bool chain_run(chain_graph *c, const chain_data *d, lc_tensor **params, float *loss, float *grads,
                      lt_report *rep) {
    if (!lt_check_ok(rep, lc_tensor_set(c->labels, d->labels, 0, sizeof d->labels), "labels")) return false;
    if (!lt_check_ok(rep, lc_graph_zero_grad(c->g), "zero_grad")) return false;
    if (!lt_check_ok(rep, lc_graph_compute(c->g), "chain compute")) return false;
    if (!lt_check_ok(rep, lc_tensor_get_f32(c->loss, loss, 1), "read loss")) return false;
    int64_t off = 0;
    for (int i = 0; i < 2 * CH_L; i++) {
        const int64_t n = lc_nelements(params[i]);
        if (!lt_check(rep, params[i]->grad != NULL, "chain: %s has no gradient", params[i]->name)) return false;
        if (!lt_check_ok(rep, lc_tensor_get_f32(params[i]->grad, grads + off, n), "read grad")) return false;
        off += n;
    }
    return true;
}

static bool reads(const lc_node *n, const lc_tensor *t) {
    for (int k = 0; k < LC_MAX_SRC; k++)
        if (n->src[k] == t) return true;
    return false;
}

static void run_chain(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)user;
    lt_env env;
    lt_env_init(&env, dev, rep);
    chain_data *d = calloc(1, sizeof *d);
    chain_init(d);
    lc_tensor *params[2 * CH_L];
    for (int l = 0; l < CH_L; l++) {
        params[2 * l] = lt_new_f32(&env, CH_E, CH_R, d->a[l], LC_TENSOR_PARAM, "lora_a");
        params[2 * l + 1] = lt_new_f32(&env, CH_R, CH_E, d->b[l], LC_TENSOR_PARAM, "lora_b");
    }
    const int64_t ng = 2 * CH_L * CH_E * CH_R;
    float *g_off = lt_falloc(ng), *g_on = lt_falloc(ng);
    float loss_off = 0, loss_on = 0;
    uint64_t arena_off = 0, arena_on = 0;

    chain_graph c;
    if (chain_build(&c, dev, &env, d, params, false, rep) && chain_run(&c, d, params, &loss_off, g_off, rep)) {
        arena_off = lc_graph_arena_bytes(c.g);
        lt_check(rep, lc_graph_n_recomputed(c.g) == 0, "chain: recompute off made %d copies",
                 lc_graph_n_recomputed(c.g));
    }
    lc_graph_free(c.g);

    if (chain_build(&c, dev, &env, d, params, true, rep) && chain_run(&c, d, params, &loss_on, g_on, rep)) {
        arena_on = lc_graph_arena_bytes(c.g);
        lc_graph *g = c.g;
        const int nn = lc_graph_n_nodes(g);
        /* Exactly MUL_MAT, SILU, LORA of layers 1 and 2 are copied, each once. */
        int copies = 0, copied[CH_L][3] = {{0}};
        int first_copy[CH_L], first_back[CH_L];
        for (int l = 0; l < CH_L; l++) first_copy[l] = first_back[l] = nn;
        for (int i = c.n_fwd; i < nn; i++) {
            const lc_node *n = lc_graph_node(g, i);
            const lc_node *src = lc_graph_recompute_source(g, n);
            if (src) {
                copies++;
                int hit = 0;
                for (int l = 0; l < CH_L; l++)
                    for (int k = 0; k < 3; k++)
                        if (src == lc_tensor_node(c.act[l][k])) {
                            copied[l][k]++;
                            hit = 1;
                            if (i < first_copy[l]) first_copy[l] = i;
                        }
                lt_check(rep, hit && src->op == n->op, "chain: copy %d (%s) of an unexpected node", i,
                         lc_op_name(n->op));
                continue;
            }
            /* Gradient nodes: none reads an original intermediate of layers 1, 2 ... */
            for (int l = 1; l < CH_L; l++)
                for (int k = 0; k < 4; k++)
                    lt_check(rep, !reads(n, c.act[l][k]), "chain: gradient node %d (%s) reads the original %s of "
                             "layer %d", i, lc_op_name(n->op), c.act[l][k]->name, l);
            if (n->op == LC_OP_LORA_BACK)
                for (int l = 0; l < CH_L; l++)
                    if (n->dst[2] == params[2 * l]->grad && i < first_back[l]) first_back[l] = i;
            /* ... and layer 0's LORA_BACK reads the original silu output and u. */
            if (n->op == LC_OP_LORA_BACK && n->dst[2] == params[0]->grad)
                lt_check(rep, n->src[0] == c.act[0][1] && n->src[5] == c.act[0][3],
                         "chain: layer 0's lora_back does not read the original activations");
        }
        lt_check(rep, copies == 3 * (CH_L - 1), "chain: %d recompute copies, expected %d", copies, 3 * (CH_L - 1));
        lt_check(rep, lc_graph_n_recomputed(g) == copies, "chain: lc_graph_n_recomputed %d != %d",
                 lc_graph_n_recomputed(g), copies);
        for (int l = 0; l < CH_L; l++)
            for (int k = 0; k < 3; k++)
                lt_check(rep, copied[l][k] == (l > 0), "chain: layer %d node %d copied %d times", l, k, copied[l][k]);
        for (int l = 1; l < CH_L; l++)
            lt_check(rep, first_copy[l] < first_back[l], "chain: layer %d recomputed at node %d, after its lora_back "
                     "at %d", l, first_copy[l], first_back[l]);
        /* Layer 2 is recomputed before layer 1 (the backward pass reaches it first). */
        lt_check(rep, first_copy[2] < first_copy[1], "chain: layer 2 copies (%d) must precede layer 1's (%d)",
                 first_copy[2], first_copy[1]);
        /* The copies of layer l read checkpoint l-1, never an original of layer l. */
        for (int i = c.n_fwd; i < nn; i++) {
            const lc_node *n = lc_graph_node(g, i);
            const lc_node *src = lc_graph_recompute_source(g, n);
            if (!src || src->op != LC_OP_MUL_MAT) continue;
            lt_check(rep, n->src[0] == c.ckpt[0] || n->src[0] == c.ckpt[1], "chain: copied mul_mat reads '%s', not a "
                     "checkpoint", n->src[0]->name);
        }
    }
    lc_graph_free(c.g);

    double max_abs = 0, max_ref = 0;
    diff(g_off, g_on, ng, &max_abs, &max_ref);
    const double lerr = fabs((double)loss_off - (double)loss_on);
    const double tol = is_cpu(info) ? 0.0 : 1e-6;
    lt_check_err(rep, max_abs / (max_ref > 0 ? max_ref : 1), tol, "chain: gradients recompute vs not (max abs %.3g)",
                 max_abs);
    lt_check_err(rep, lerr / fabs((double)loss_off), tol, "chain: loss recompute vs not");
    const double ref = chain_ref_loss(d, 0.75f);
    lt_check_err(rep, fabs((double)loss_on - ref) / fabs(ref), 1e-5, "chain: loss vs plain-loop reference");
    lt_check(rep, g_off[0] != 0.0f, "chain: zero gradient");
    lt_log("[checkpointing] %s chain: loss %.7g (ref %.7g), grad max abs diff %.3g, arena %llu -> %llu bytes\n",
           info->spec, (double)loss_on, ref, max_abs, (unsigned long long)arena_off, (unsigned long long)arena_on);
    lt_check(rep, arena_on > 0 && arena_on <= arena_off, "chain: arena %llu with recompute > %llu without",
             (unsigned long long)arena_on, (unsigned long long)arena_off);
    free(g_off);
    free(g_on);
    free(d);
    lt_env_free(&env);
}

/* ==== models ==================================================================================== */

typedef struct model_case {
    const char *what;
    lc_arch arch;
    int n_layer;
} model_case;

typedef struct model_result {
    float loss[2];
    float *grads; /* both steps concatenated */
    int64_t n_grads;
    uint64_t arena;
    int n_rc;
} model_result;

enum { MD_SEQ = 9, MD_NSEQ = 2, MD_T = MD_SEQ * MD_NSEQ };
static const uint64_t md_steps[2] = {3, 11};

static lc_model_config model_config(const model_case *mc) {
    lc_model_config c = lc_model_config_default(mc->arch);
    if (mc->arch != LC_ARCH_TOY) {
        c.n_vocab = 40;
        c.n_embd = 32;
        c.n_head = 4;
        c.n_head_kv = 2;
        c.head_dim = 8;
        c.n_ff = 48;
        c.sliding_window = 4;
        c.swa_pattern = 3;
    }
    c.n_layer = mc->n_layer;
    return c;
}

static bool model_run(lc_device *dev, const lc_model *m, const lc_lora_set *ls, bool recompute, model_result *res,
                      lt_report *rep, const char *what) {
    const int32_t V = m->cfg.n_vocab;
    int32_t ids[MD_T], labels[MD_T], pos[MD_T];
    lt_rng r;
    lt_rng_seed(&r, 1234);
    for (int i = 0; i < MD_T; i++) {
        ids[i] = lt_rng_int(&r, V);
        pos[i] = i % MD_SEQ;
    }
    for (int i = 0; i < MD_T; i++) labels[i] = (i % MD_SEQ == MD_SEQ - 1) ? -100 : ids[i + 1];
    bool ok = false;
    lc_graph *g = lc_graph_new(dev);
    lc_graph_set_recompute(g, recompute);
    lc_tensor *tid = lc_graph_input(g, LC_I32, MD_T, 1, "ids"), *tlab = lc_graph_input(g, LC_I32, MD_T, 1, "labels");
    lc_tensor *tpos = lc_graph_input(g, LC_I32, MD_T, 1, "pos");
    lc_tensor *logits = lc_model_forward(g, m, ls, tid, tpos, MD_NSEQ, MD_SEQ, ls->cfg.dropout);
    lc_tensor *loss = lc_cross_entropy(g, logits, tlab, -100);
    if (!lt_check(rep, loss && lc_graph_status(g) == LC_OK, "%s: build: %s", what, lc_graph_error(g))) goto out;
    lc_graph_set_output(g, loss);
    if (!lt_check_ok(rep, lc_graph_backward(g, loss, NULL), "%s: backward", what)) goto out;
    if (!lt_check_ok(rep, lc_graph_plan(g), "%s: plan", what)) goto out;
    res->arena = lc_graph_arena_bytes(g);
    res->n_rc = lc_graph_n_recomputed(g);
    if (!lt_check_ok(rep, lc_tensor_set(tid, ids, 0, sizeof ids), "ids") ||
        !lt_check_ok(rep, lc_tensor_set(tlab, labels, 0, sizeof labels), "labels") ||
        !lt_check_ok(rep, lc_tensor_set(tpos, pos, 0, sizeof pos), "pos"))
        goto out;
    res->n_grads = 0;
    for (int i = 0; i < ls->n_modules; i++)
        res->n_grads += lc_nelements(ls->modules[i].lora_a) + lc_nelements(ls->modules[i].lora_b);
    res->grads = lt_falloc(2 * res->n_grads);
    for (int s = 0; s < 2; s++) {
        lc_graph_set_step(g, md_steps[s]);
        /* The copies of LORA nodes follow the step and keep the original's dropout stream and seed. */
        int n_lora_copies = 0;
        for (int i = 0; i < lc_graph_n_nodes(g); i++) {
            const lc_node *n = lc_graph_node(g, i), *src = lc_graph_recompute_source(g, n);
            if (!src || n->op != LC_OP_LORA) continue;
            n_lora_copies++;
            lt_check(rep, n->rng_step == md_steps[s] && n->seed == src->seed && n->ip[0] == src->ip[0] &&
                              n->fp[1] == src->fp[1],
                     "%s: lora copy %d: step %llu seed %llu module %d p %g, original step %llu seed %llu module %d p %g",
                     what, i, (unsigned long long)n->rng_step, (unsigned long long)n->seed, n->ip[0], (double)n->fp[1],
                     (unsigned long long)src->rng_step, (unsigned long long)src->seed, src->ip[0], (double)src->fp[1]);
        }
        lt_check(rep, !recompute || n_lora_copies == ls->n_modules, "%s: %d lora copies for %d modules", what,
                 n_lora_copies, ls->n_modules);
        if (!lt_check_ok(rep, lc_graph_zero_grad(g), "zero_grad") ||
            !lt_check_ok(rep, lc_graph_compute(g), "%s: compute", what) ||
            !lt_check_ok(rep, lc_tensor_get_f32(loss, &res->loss[s], 1), "loss"))
            goto out;
        float *dst = res->grads + s * res->n_grads;
        for (int i = 0; i < ls->n_modules; i++) {
            lc_tensor *ab[2] = {ls->modules[i].lora_a, ls->modules[i].lora_b};
            for (int k = 0; k < 2; k++) {
                if (!lt_check(rep, ab[k]->grad != NULL, "%s: %s has no gradient", what, ab[k]->name)) goto out;
                if (!lt_check_ok(rep, lc_tensor_get_f32(ab[k]->grad, dst, lc_nelements(ab[k])), "grad")) goto out;
                dst += lc_nelements(ab[k]);
            }
        }
    }
    ok = true;
out:
    lc_graph_free(g);
    return ok;
}

static void run_models(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)user;
    static const model_case cases[] = {
        {"toy 2 layers", LC_ARCH_TOY, 2},
        {"toy 6 layers", LC_ARCH_TOY, 6},
        {"gemma3 6 layers", LC_ARCH_GEMMA3, 6},
    };
    uint64_t saving[3] = {0};
    for (int ci = 0; ci < 3; ci++) {
        const model_case *mc = &cases[ci];
        lc_model_config c = model_config(mc);
        lc_model *m = NULL;
        lc_lora_set *ls = NULL;
        if (!lt_check_ok(rep, lc_model_new_random(dev, &c, 42, &m), "%s: model", mc->what)) return;
        lc_lora_config lcfg = {.r = 4, .lora_alpha = 8.0f, .dropout = 0.1f, .target_mask = LC_MOD_MASK_ALL,
                               .seed = 17};
        if (!lt_check_ok(rep, lc_lora_set_new(m, &lcfg, &ls), "%s: lora set", mc->what)) {
            lc_model_free(m);
            return;
        }
        lt_rng r;
        lt_rng_seed(&r, 99);
        for (int i = 0; i < ls->n_modules; i++) { /* non-zero lora_B: every gradient path carries values */
            lc_tensor *b = ls->modules[i].lora_b;
            float *w = lt_falloc(lc_nelements(b));
            lt_fill_uniform(&r, w, lc_nelements(b), -0.2f, 0.25f);
            lt_check_ok(rep, lc_tensor_set_f32(b, w, lc_nelements(b)), "set lora_B");
            free(w);
        }
        model_result off = {0}, on = {0};
        if (model_run(dev, m, ls, false, &off, rep, mc->what) && model_run(dev, m, ls, true, &on, rep, mc->what)) {
            double max_abs = 0, max_ref = 0;
            diff(off.grads, on.grads, 2 * off.n_grads, &max_abs, &max_ref);
            double lerr = 0;
            for (int s = 0; s < 2; s++)
                lerr = fmax(lerr, fabs((double)off.loss[s] - (double)on.loss[s]) / fabs((double)off.loss[s]));
            const double tol = is_cpu(info) ? 0.0 : 1e-6;
            lt_check_err(rep, max_abs / (max_ref > 0 ? max_ref : 1), tol,
                         "%s: LoRA gradients recompute vs not, steps %llu and %llu (max abs %.3g)", mc->what,
                         (unsigned long long)md_steps[0], (unsigned long long)md_steps[1], max_abs);
            lt_check_err(rep, lerr, tol, "%s: loss recompute vs not", mc->what);
            lt_check(rep, off.loss[0] != off.loss[1], "%s: steps %llu and %llu give the same loss %.9g; dropout is "
                     "not on", mc->what, (unsigned long long)md_steps[0], (unsigned long long)md_steps[1],
                     (double)off.loss[0]);
            lt_check(rep, max_ref > 0, "%s: every LoRA gradient is zero", mc->what);
            lt_check(rep, on.n_rc > 0 && off.n_rc == 0, "%s: %d / %d recompute copies", mc->what, on.n_rc, off.n_rc);
            lt_check(rep, on.arena < off.arena, "%s: arena %llu bytes with recompute, not below %llu without",
                     mc->what, (unsigned long long)on.arena, (unsigned long long)off.arena);
            saving[ci] = off.arena > on.arena ? off.arena - on.arena : 0;
            lt_log("[checkpointing] %s %s: loss %.7g / %.7g (steps %llu / %llu), max abs diff loss %.3g grads %.3g; "
                   "arena %llu -> %llu bytes (%.1f%%), %d copies\n",
                   info->spec, mc->what, (double)on.loss[0], (double)on.loss[1], (unsigned long long)md_steps[0],
                   (unsigned long long)md_steps[1], lerr * fabs((double)off.loss[0]), max_abs,
                   (unsigned long long)off.arena, (unsigned long long)on.arena,
                   100.0 * (double)on.arena / (double)off.arena, on.n_rc);
        }
        free(off.grads);
        free(on.grads);
        lc_lora_set_free(ls);
        lc_model_free(m);
    }
    lt_check(rep, saving[1] > saving[0], "arena saving does not grow with depth: %llu bytes at 2 layers, %llu at 6",
             (unsigned long long)saving[0], (unsigned long long)saving[1]);
}

/* ==== errors ==================================================================================== */

static void run_errors(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)info;
    (void)user;
    lt_env env;
    lt_env_init(&env, dev, rep);
    lc_tensor *a = lt_new_f32(&env, 4, 3, NULL, LC_TENSOR_PARAM, "a");
    lc_graph *g = lc_graph_new(dev);
    lt_check(rep, lc_graph_checkpoint(g, NULL) == NULL && lc_graph_status(g) == LC_OK,
             "checkpoint(NULL) must return NULL without an error");
    lc_graph_set_recompute(g, true);
    lt_check(rep, lc_graph_recompute(g), "recompute flag not set");
    lt_check(rep, lc_graph_checkpoint(g, a) == NULL && lc_graph_status(g) == LC_ERR_INVALID_ARG &&
                      strstr(lc_graph_error(g), "checkpoint") != NULL,
             "checkpoint of a leaf: status %d, '%s'", (int)lc_graph_status(g), lc_graph_error(g));
    lc_graph_free(g);

    lc_tensor *seed = lt_new_f32(&env, 4, 3, NULL, 0, "seed");
    g = lc_graph_new(dev);
    lc_tensor *y = lc_scale(g, a, 2.0f);
    lt_check(rep, lc_graph_checkpoint(g, y) == y && lc_graph_checkpoint(g, y) == y,
             "checkpoint (twice) must return its tensor");
    lc_tensor *z = lc_scale(g, y, 3.0f);
    lt_check_ok(rep, lc_graph_backward(g, z, seed), "errors: backward");
    lc_graph_set_recompute(g, true);
    lt_check(rep, lc_graph_status(g) == LC_ERR_STATE && strstr(lc_graph_error(g), "set_recompute") != NULL,
             "set_recompute after backward: status %d, '%s'", (int)lc_graph_status(g), lc_graph_error(g));
    lc_graph_free(g);

    g = lc_graph_new(dev);
    y = lc_scale(g, a, 2.0f);
    lt_check_ok(rep, lc_graph_backward(g, y, seed), "errors: backward 2");
    lt_check(rep, lc_graph_checkpoint(g, y) == NULL && lc_graph_status(g) == LC_ERR_STATE,
             "checkpoint after backward: status %d, '%s'", (int)lc_graph_status(g), lc_graph_error(g));
    lc_graph_free(g);
    lt_env_free(&env);
}

/* The trainer with lc_train_config.checkpointing: 6 optimizer steps of a 4-layer toy model with
 * LoRA dropout 0.1 and grad_accum 2, once with and once without; every step's loss and the final
 * lora_A / lora_B must agree (bit-identical on the CPU). */
static void run_trainer(lc_device *dev, const lc_device_info *info, lt_report *rep, void *user) {
    (void)user;
    lc_model_config c = lc_model_config_default(LC_ARCH_TOY);
    c.n_layer = 4;
    enum { STEPS = 6, SEQ = 24, NSEQ = 2, ACC = 2 };
    float loss[2][STEPS];
    float *weights[2] = {NULL, NULL};
    int64_t n_w = 0;
    int32_t ids[ACC * NSEQ * SEQ], labels[ACC * NSEQ * SEQ];
    for (int pass = 0; pass < 2; pass++) {
        lc_model *m = NULL;
        lc_lora_set *ls = NULL;
        lc_trainer *tr = NULL;
        if (!lt_check_ok(rep, lc_model_new_random(dev, &c, 7, &m), "trainer: model")) return;
        const lc_lora_config lcfg = {.r = 4, .lora_alpha = 8.0f, .dropout = 0.1f, .target_mask = LC_MOD_MASK_ALL,
                                     .seed = 5};
        lc_train_config tc = lc_train_config_default();
        tc.n_seq = NSEQ;
        tc.seq_len = SEQ;
        tc.steps = STEPS;
        tc.warmup_steps = 1;
        tc.lr = 5e-3f;
        tc.grad_accum = ACC;
        tc.checkpointing = pass == 1;
        bool ok = lt_check_ok(rep, lc_lora_set_new(m, &lcfg, &ls), "trainer: lora set") &&
                  lt_check_ok(rep, lc_trainer_new(m, ls, &tc, &tr), "trainer: new (checkpointing %d)", pass);
        for (int s = 0; ok && s < STEPS; s++) {
            for (int i = 0; i < ACC * NSEQ * SEQ; i++) {
                ids[i] = (int32_t)(lc_rng_u32(11, (uint64_t)s, (uint64_t)i) % (uint32_t)c.n_vocab);
                labels[i] = (i % 7 == 3) ? -100 : (int32_t)(lc_rng_u32(12, (uint64_t)s, (uint64_t)i) % (uint32_t)c.n_vocab);
            }
            lc_train_stats st;
            ok = lt_check_ok(rep, lc_trainer_step(tr, ids, labels, NULL, &st), "trainer: step %d", s + 1);
            if (ok) loss[pass][s] = st.loss;
        }
        if (ok) {
            n_w = 0;
            for (int i = 0; i < ls->n_modules; i++)
                n_w += lc_nelements(ls->modules[i].lora_a) + lc_nelements(ls->modules[i].lora_b);
            weights[pass] = lt_falloc(n_w);
            int64_t off = 0;
            for (int i = 0; i < ls->n_modules && ok; i++) {
                const lc_tensor *ab[2] = {ls->modules[i].lora_a, ls->modules[i].lora_b};
                for (int k = 0; k < 2 && ok; k++) {
                    ok = lt_check_ok(rep, lc_tensor_get_f32(ab[k], weights[pass] + off, lc_nelements(ab[k])),
                                     "trainer: read LoRA");
                    off += lc_nelements(ab[k]);
                }
            }
        }
        lc_trainer_free(tr);
        lc_lora_set_free(ls);
        lc_model_free(m);
        if (!ok) {
            free(weights[0]);
            free(weights[1]);
            return;
        }
    }
    const double tol = is_cpu(info) ? 0.0 : 1e-6;
    double lerr = 0.0, werr = 0.0, wref = 0.0;
    for (int s = 0; s < STEPS; s++)
        lerr = fmax(lerr, fabs((double)loss[0][s] - (double)loss[1][s]) / fabs((double)loss[0][s]));
    for (int64_t i = 0; i < n_w; i++) {
        werr = fmax(werr, fabs((double)weights[0][i] - (double)weights[1][i]));
        wref = fmax(wref, fabs((double)weights[0][i]));
    }
    lt_check_err(rep, lerr, tol, "trainer: %d step losses with vs without checkpointing (first %.6f, last %.6f)", STEPS,
                 (double)loss[0][0], (double)loss[0][STEPS - 1]);
    lt_check_err(rep, werr / (wref > 0 ? wref : 1), tol, "trainer: final lora_A/lora_B with vs without checkpointing");
    lt_check(rep, loss[0][STEPS - 1] < loss[0][0], "trainer: the loss falls (%.4f -> %.4f)", (double)loss[0][0],
             (double)loss[0][STEPS - 1]);
    free(weights[0]);
    free(weights[1]);
}

START_TEST(test_chain) { ck_assert_int_eq(lt_for_each_device("checkpointing.chain", run_chain, NULL), 0); }
END_TEST

START_TEST(test_models) { ck_assert_int_eq(lt_for_each_device("checkpointing.models", run_models, NULL), 0); }
END_TEST

START_TEST(test_errors) { ck_assert_int_eq(lt_for_each_device("checkpointing.errors", run_errors, NULL), 0); }
END_TEST

START_TEST(test_trainer) { ck_assert_int_eq(lt_for_each_device("checkpointing.trainer", run_trainer, NULL), 0); }
END_TEST

int main(void) {
    Suite *s = suite_create("checkpointing");
    struct { const char *name; const TTest *fn; } tests[] = {
        {"chain", test_chain}, {"models", test_models}, {"errors", test_errors}, {"trainer", test_trainer}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        TCase *tc = tcase_create(tests[i].name);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, tests[i].fn);
        suite_add_tcase(s, tc);
    }
    const int failed = lt_run_suite(s);
    return failed == 0 ? 0 : 1;
}
