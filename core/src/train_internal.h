/* lorac — the trainer's state, shared by train.c (the step loop) and checkpoint.c (saving and
 * restoring it). Not a public header: the trainer stays opaque in lorac/train.h.
 */
#ifndef LORAC_TRAIN_INTERNAL_H
#define LORAC_TRAIN_INTERNAL_H

#include "lorac/graph.h"
#include "lorac/train.h"

struct lc_trainer {
    const lc_model *model;
    const lc_lora_set *lora;
    lc_train_config cfg;
    lc_device *dev;
    int64_t n_tok;              /* n_seq * seq_len */

    lc_graph *g;                /* forward, loss, backward, squared gradient norm */
    lc_tensor *ids, *labels, *pos, *loss, *norm2;

    lc_graph *g_opt;            /* AdamW nodes */
    int n_params;
    lc_tensor **params, **m, **v;

    lc_graph *g_eval;           /* forward and loss without dropout, built on first eval */
    lc_tensor *e_ids, *e_labels, *e_pos, *e_loss;

    int32_t *pos_default;       /* 0..seq_len-1 per sequence */
    int k;                      /* optimizer steps taken */
};

#endif
