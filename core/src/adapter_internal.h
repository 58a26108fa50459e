/* lorac — helpers shared by the PEFT (adapter_peft.c) and GGUF (adapter_gguf.c) adapter formats.
 * Not public. See lorac/adapter.h for the formats. */
#ifndef LORAC_ADAPTER_INTERNAL_H
#define LORAC_ADAPTER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "lorac/adapter.h"
#include "lorac/model.h"

/* What a loader found for one (layer, module) slot, index il * LC_MOD_COUNT + module. */
typedef struct lc_adapter_want {
    bool present;
    int r;
    float lora_alpha;
} lc_adapter_want;

/* Check that `set` fits `model`: same layer count, every module's layer/module in range, lora_A
 * F32 ne {W.ne[0], r}, lora_B F32 ne {r, W.ne[1]}. `who` names the caller and file in messages.
 * Errors: LC_ERR_INVALID_ARG naming the module and both shapes. */
lc_status lc_adapter_check_set(const lc_model *model, const lc_lora_set *set, const char *who);

/* A set for `model` with exactly the slots of want[n_layer * LC_MOD_COUNT] that are present, each
 * with its r, lora_alpha and scaling lc_lora_scaling(r, lora_alpha, cfg->use_rslora); other
 * fields of cfg as given (target_mask is replaced by the union of present modules). Tensor
 * contents are lc_lora_init's (the caller overwrites them).
 * Errors: LC_ERR_FORMAT (`who`: no module present), lc_lora_set_new errors, LC_ERR_NOMEM. */
lc_status lc_adapter_new_set(const lc_model *model, const lc_lora_config *cfg, const lc_adapter_want *want,
                             const char *who, lc_lora_set **out);

/* Every value of x[0..n) (the F32 data of tensor `tensor` of file `file`) is finite.
 * Errors: LC_ERR_FORMAT naming the file, the tensor, how many values are NaN or infinite and the
 * first one (element index in the file's row-major order, and its value). */
lc_status lc_adapter_check_finite(const float *x, int64_t n, const char *file, const char *tensor);

/* HF row of GGUF row g inside a block of heads of d rows (formats.md §5):
 * g = h·d + 2j + t  <->  h·d + t·d/2 + j. */
static inline int64_t lc_adapter_qk_hf_row(int64_t g, int64_t d) {
    const int64_t h = g / d, w = g % d;
    return h * d + (w % 2) * (d / 2) + w / 2;
}

/* Whether lora_B rows of module `mod` are in GGUF q/k order for this model (NORM rope, q or k),
 * and the number of heads of that projection. */
bool lc_adapter_qk_permuted(const lc_model *model, lc_module mod, int *n_heads);

#endif
