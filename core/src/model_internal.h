/* lorac — internal pieces of the model description shared by model.c (layout, forward graph),
 * model_gguf.c (GGUF loader) and infer.c (KV-cache decoding). Not part of the public API.
 */
#ifndef LORAC_MODEL_INTERNAL_H
#define LORAC_MODEL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "lorac/model.h"

/* One weight of the layout of a configuration: its GGUF name, ne {ne0, ne1} (ne1 = 1 for a
 * vector), whether it is a matrix (dtype wtype for lc_model_new; any dtype when loaded) or a
 * vector (norm weight or bias, always F32), and the model field that holds it. */
typedef struct lc_model_slot_ {
    char name[LC_NAME_MAX];
    int64_t ne0, ne1;
    bool matrix;
    lc_tensor **field;
} lc_model_slot_;

/* A model with cfg, dev and the layers array but no tensors (every field NULL); freed with
 * lc_model_free. cfg must have passed lc_model_config_check. NULL when out of host memory
 * (error recorded). */
lc_model *lc_model_shell_(lc_device *dev, const lc_model_config *cfg);

/* The weights of m's configuration in lc_model_tensors order (output.weight only when
 * !cfg.tied_output), with `field` pointing into m. Returns the count; writes at most max
 * (out may be NULL to count). */
int lc_model_slots_(lc_model *m, lc_model_slot_ *out, int max);

/* Where the keys and values of layer il come from when a KV cache is used: called once per
 * layer with k, v F32 [hd*n_kv, T] (after rope) for the T new tokens; sets *k_all, *v_all to
 * the keys and values attention reads, F32 [hd*n_kv, Tk] whose last T columns are k and v
 * (attention puts query i at position Tk - T + i). Returns false after recording an error on g. */
typedef struct lc_model_kv_hook_ {
    bool (*fn)(void *user, lc_graph *g, int il, lc_tensor *k, lc_tensor *v, lc_tensor **k_all, lc_tensor **v_all);
    void *user;
} lc_model_kv_hook_;

/* Which logits the forward graph produces. */
typedef enum lc_model_out_ {
    LC_MODEL_OUT_ALL = 0, /* logits [n_vocab, T] */
    LC_MODEL_OUT_ROWS,    /* logits [n_vocab, R] of the token columns listed in `rows` (I32 [R]),
                           * selected with get_rows from the last hidden state, so the output
                           * projection runs only for them */
    LC_MODEL_OUT_NONE     /* no logits: only what fills the KV cache (the graph stops after the last
                           * layer's kv hook); returns the last layer's v_all */
} lc_model_out_;

typedef struct lc_model_build_opts_ {
    const lc_model_kv_hook_ *kv; /* NULL: attention over the T tokens of each sequence */
    lc_model_out_ out;
    lc_tensor *rows;             /* LC_MODEL_OUT_ROWS: I32 [R] token columns in 0..T-1 */
} lc_model_build_opts_;

/* lc_model_forward with options (NULL opts = lc_model_forward). With a kv hook n_seq must be 1.
 * Errors: as lc_model_forward; LC_ERR_INVALID_ARG for inconsistent options. */
lc_tensor *lc_model_build_(lc_graph *g, const lc_model *model, const lc_lora_set *lora, lc_tensor *ids,
                           lc_tensor *pos, int n_seq, int seq_len, float dropout, const lc_model_build_opts_ *opts);

#endif
