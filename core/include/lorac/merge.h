/* lorac — merge a LoRA adapter into a GGUF model file.
 *
 * The merged file is the base GGUF with each targeted weight W (ne {in, out}, PyTorch [out, in])
 * replaced by
 *     W' = W + scaling · B·A        (B ne {r, out}, A ne {in, r}; scaling per module, lorac/lora.h)
 * which is what Hugging Face PEFT's merge_and_unload computes (reference/peft-lora.md §1.7:
 * `base.weight.data += ΔW`, ΔW computed in F32). Everything else is kept:
 *   - every metadata key/value of the base, in its order and with its type (arrays included),
 *     general.alignment included, so the merged file loads wherever the base loads;
 *   - every tensor that no module targets, byte for byte in its original ggml type (token_embd,
 *     norms, biases, output, and any tensor lorac does not interpret);
 *   - the tensor order and names.
 * Arithmetic: W is dequantised to F32 on the host (lc_dequantize_row), uploaded to the device that
 * holds the adapter, merged there with lc_lora_merge (the LORA_MERGE op: w += scale·B·A in F32) and
 * read back; the F32 result is then stored as F16 (default), F32, or re-quantised into W's own
 * type (LC_MERGE_KEEP; lc_quantize_row, ggml's reference round-to-nearest quantisers), so the
 * result is rounded once, as PEFT's unsafe merge does.
 * Tied embeddings: a model without output.weight computes its logits with token_embd. LoRA modules
 * exist only for the projections of lc_module, so a merge never writes token_embd; an adapter that
 * aims at the output layer (GGUF "output.weight.lora_a", PEFT "lm_head") of a tied model is
 * refused by lc_merge_files instead of silently changing the embedding (TESTCASES.md).
 * Precision report: for each merged tensor, with M = W + Δ the F32 merge, Δ = M - W, S = M as
 * stored (rounded to F16/F32 or quantised, then decoded back to F32), in double precision:
 *   rel_err    = ||S - M||₂ / ||Δ||₂   the storage error measured in units of the update
 *                                       (0: exact; 1: an error as large as the whole update)
 *   delta_kept = <S - W, Δ> / ||Δ||₂²  the share of Δ the stored weight still carries along Δ
 *                                       (1: all of it; 0: the update vanished in the rounding)
 * and the same over all merged tensors together (sums of the squares and products).
 * Memory: the host holds the merged tensors in their output type until the file is written, plus
 * two F32 copies of the tensor being merged; the device holds the model (lc_merge_files), the
 * adapter and one F32 weight.
 */
#ifndef LORAC_MERGE_H
#define LORAC_MERGE_H

#include <stdbool.h>
#include <stdint.h>

#include "lorac/device.h"
#include "lorac/gguf.h"
#include "lorac/model.h"
#include "lorac/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Type of the merged weights in the output file. */
typedef enum lc_merge_dtype {
    LC_MERGE_F16 = 0, /* IEEE binary16, round to nearest even (default) */
    LC_MERGE_F32,     /* exact F32 merge result */
    LC_MERGE_KEEP,    /* the base tensor's own type (F32/F16/BF16, or re-quantised: Q8_0, Q4_K, ...) */
    LC_MERGE_DTYPE_COUNT
} lc_merge_dtype;

/* "f16", "f32", "keep"; "unknown" when out of range. */
const char *lc_merge_dtype_name(lc_merge_dtype d);
/* Inverse of lc_merge_dtype_name. Errors: LC_ERR_INVALID_ARG naming the value and the accepted ones. */
lc_status lc_merge_dtype_parse(const char *s, lc_merge_dtype *out);

/* Precision of one merged tensor (see the top of this file). */
typedef struct lc_merge_tensor_stats {
    char name[LC_GGUF_NAME_MAX]; /* GGUF name, "blk.0.attn_q.weight" */
    int src_type;                /* ggml type id in the base file */
    int dst_type;                /* ggml type id written */
    int64_t n;                   /* elements (in * out) */
    float scaling;               /* the module's scaling */
    double delta_norm;           /* ||Δ||₂ */
    double store_err;            /* ||S - M||₂ */
    double rel_err;              /* store_err / delta_norm; 0 when delta_norm is 0 */
    double delta_kept;           /* <S - W, Δ> / ||Δ||₂²; 1 when delta_norm is 0 */
} lc_merge_tensor_stats;

/* Called before tensor i (0-based) of n is written: `st` is its precision report when it was
 * merged, NULL when it is copied as it is. */
typedef void (*lc_merge_progress_cb)(void *user, int i, int n, const char *name, const lc_merge_tensor_stats *st);

typedef struct lc_merge_params {
    lc_merge_dtype dtype;
    lc_merge_progress_cb progress; /* may be NULL */
    void *user;
} lc_merge_params;

/* lc_merge_params with dtype F16 and no callback. */
lc_merge_params lc_merge_params_default(void);

typedef struct lc_merge_report {
    int n_tensors;                  /* tensors written */
    int n_merged;                   /* tensors replaced by W + Δ */
    lc_merge_tensor_stats *tensors; /* n_merged entries in file order (malloc'd) */
    double delta_norm, store_err, rel_err, delta_kept; /* over all merged tensors together */
    uint64_t bytes_in, bytes_out;   /* tensor data bytes of the base and of the merged file */
} lc_merge_report;

/* Release report->tensors and zero the report. NULL is a no-op. */
void lc_merge_report_free(lc_merge_report *report);

/* Merge `set` into the base model of the open GGUF file `base` and write the merged file to
 * `out_path` atomically (lc_gguf_writer_write: "<out_path>.tmp", fsync, rename; on failure no
 * file is left). The merge runs on the device holding the set's lora_A / lora_B. `p` may be NULL
 * (lc_merge_params_default); `report` may be NULL, else it is filled (free with
 * lc_merge_report_free; zeroed on failure).
 * Each module's target "<target>.weight" must be a 2-D tensor of the file with ne
 * {A.ne[0], B.ne[1]}, and the file's "<arch>.block_count" (when present) must equal the set's
 * layer count.
 * Errors: LC_ERR_INVALID_ARG (NULL base/set/out_path; out_path is the base file itself, by device
 * and inode (lc_adapter_check_out_path: also through "./", "..", symbolic and hard links); a set for
 * another model: missing target tensor, shape or layer count differ -- the message names the
 * tensor and both shapes), LC_ERR_DTYPE (a target whose type lorac cannot dequantise),
 * LC_ERR_NUMERIC (a merged value that is not finite, or overflows the output type's range:
 * F16 above 65504 or a quantised block scale), LC_ERR_IO (writing; the message names the path),
 * LC_ERR_NOMEM, device errors of lc_lora_merge and the transfers. */
lc_status lc_merge_gguf(const lc_gguf *base, const lc_lora_set *set, const char *out_path, const lc_merge_params *p,
                        lc_merge_report *report);

/* The whole job of `lorac merge`: open the GGUF `model_path`, load its model onto `dev`
 * (lc_model_from_gguf, without the tokenizer), load the adapter `adapter_path` (a PEFT directory
 * or a llama.cpp GGUF LoRA file, lc_adapter_load) for that model, lc_merge_gguf into `out_path`.
 * Before loading the adapter it is checked for modules aimed at the output layer or the token
 * embedding (GGUF tensors "output.weight.lora_*" / "token_embd.weight.lora_*", PEFT keys with
 * ".lm_head." / ".embed_tokens."): refused with LC_ERR_UNSUPPORTED, and with a message that says
 * the output is tied to token_embd when the model has no output.weight.
 * Errors: LC_ERR_INVALID_ARG (NULL argument; out_path is the base model file or the adapter, one
 * of its files or its directory: lc_adapter_check_out_path, checked first), lc_gguf_open's, lc_model_from_gguf's,
 * lc_adapter_load's (an adapter for another model), the refusal above, lc_merge_gguf's. */
lc_status lc_merge_files(lc_device *dev, const char *model_path, const char *adapter_path, const char *out_path,
                         const lc_merge_params *p, lc_merge_report *report);

#ifdef __cplusplus
}
#endif
#endif
