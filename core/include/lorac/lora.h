/* lorac — LoRA adapters: scaling, initialisation, merge and unmerge.
 *
 * Semantics are Hugging Face PEFT's (reference/peft-lora.md §1): lora_A is PyTorch [r, in]
 * (lorac ne = {in, r}), lora_B is PyTorch [out, r] (ne = {r, out}); the update is
 * ΔW = scaling · B·A ([out, in], ne = {in, out}), scaling = lora_alpha / r or, with rsLoRA
 * (arXiv:2312.03732), lora_alpha / sqrt(r). Init: A ~ U(-1/sqrt(in), +1/sqrt(in))
 * (kaiming_uniform with a = sqrt(5)), B = 0, so a fresh adapter is a no-op.
 */
#ifndef LORAC_LORA_H
#define LORAC_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "lorac/device.h"
#include "lorac/status.h"
#include "lorac/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* lora_alpha / r, or lora_alpha / sqrt(r) when rslora; 0 when r <= 0. */
float lc_lora_scaling(int r, float lora_alpha, bool rslora);

/* Initialise lora_A (F32 ne {in, r}) with U(±1/sqrt(in)) drawn from the counter generator
 * (seed, stream = 1<<40 | module_id, index = element index) and zero lora_B (F32 ne {r, out}).
 * Errors: LC_ERR_SHAPE (a.ne[1] != b.ne[0]), LC_ERR_DTYPE (not F32), transfer errors. */
lc_status lc_lora_init(lc_tensor *lora_a, lc_tensor *lora_b, uint64_t seed, uint32_t module_id);

/* w += scale · B·A in place on the device (LORA_MERGE). w: F32/F16/BF16 ne {in, out}; A ne
 * {in, r}; B ne {r, out}. Use +scaling to merge, -scaling to unmerge.
 * Errors: LC_ERR_SHAPE, LC_ERR_DTYPE (quantized w: dequantise first), device errors. */
lc_status lc_lora_merge(lc_tensor *w, const lc_tensor *lora_a, const lc_tensor *lora_b, float scale);

#ifdef __cplusplus
}
#endif
#endif
