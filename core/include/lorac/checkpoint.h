/* lorac — training checkpoints: the complete state of a trainer (lorac/train.h) in a directory,
 * written atomically, so that a run that stops can continue exactly where it stopped.
 *
 * LAYOUT. lc_checkpoint_save(t, ROOT, ...) after optimizer step k writes ROOT/checkpoint-<k>/:
 *   adapter_config.json, adapter_model.safetensors
 *       the LoRA set as a PEFT adapter (lc_adapter_save_peft), so a checkpoint is also a usable
 *       adapter (lorac/adapter.h; for llama q/k lora_B the rows are in HF order there).
 *   optimizer.safetensors
 *       the AdamW moments, F32, for every LoRA tensor "<PEFT key without .weight>" two entries
 *       "<base_model.model.<HF module path>.lora_A|lora_B>.weight.exp_avg" (m) and ".exp_avg_sq"
 *       (v) -- torch.optim.AdamW's state names -- shaped as the PEFT tensor (PyTorch [r, in] /
 *       [out, r]); metadata {"format": "lorac-adamw", "step": "<k>"}. The values are in lorac's
 *       row order (for llama q/k lora_B that is the GGUF-permuted order, not HF's; the file is
 *       meant for lc_checkpoint_load, not for torch).
 *   trainer_state.json
 *       {"format": "lorac-checkpoint", "format_version": 1, "step": k,
 *        "train": {steps, warmup_steps, lr, beta1, beta2, eps, weight_decay, max_grad_norm,
 *                  grad_accum, n_seq, seq_len, ignore_index},
 *        "lora": {r, lora_alpha, use_rslora, lora_dropout, target_modules [HF names], seed},
 *        "model": {arch, n_layer, n_embd, n_vocab, n_head, n_head_kv, head_dim, n_ff, file,
 *                  file_bytes},
 *        "rng": {seed, dropout_step},
 *        "data": {epoch, position, fingerprint} or null}
 *       Floats are written with 9 significant digits (so the F32 value reads back exactly);
 *       64-bit integers (seeds, file_bytes, fingerprint) are decimal strings, as JSON numbers
 *       are doubles. The RNG state is (seed, k): lr(k) is a pure function of k
 *       (lc_lr_cosine_with_warmup) and dropout masks are counter-based (Philox keyed by the
 *       LoRA seed, counter = dropout step k * grad_accum + micro-batch), so nothing else is
 *       needed. The data position is the caller's (lc_data_get_cursor after step k).
 *   ROOT/latest
 *       a text file holding "checkpoint-<k>\n": the newest complete checkpoint.
 *
 * ATOMICITY. Every file goes into ROOT/checkpoint-<k>.tmp-<pid>/, each written, flushed, fsync'ed
 * and checked for errors; the temporary directory is fsync'ed and renamed to ROOT/checkpoint-<k>
 * (an existing ROOT/checkpoint-<k>, e.g. from an earlier run, is first renamed aside and removed
 * afterwards); then ROOT/latest is replaced by writing ROOT/latest.tmp-<pid> and renaming it;
 * ROOT is fsync'ed; then checkpoint-<n> directories beyond the `keep` newest are removed (never
 * the one `latest` names). Pruning comes after the new checkpoint is complete, so that the
 * previous one is safe until then: the disk holds keep + 1 checkpoints at the peak of a save.
 * On any failure before the rename of `latest`, the temporary directory is removed and `latest`
 * and every earlier checkpoint are untouched. A crash (power loss, kill -9) leaves at worst a
 * stale "checkpoint-<k>.tmp-<pid>" directory (as large as a checkpoint) and a
 * "latest.tmp-<pid>" file, which nothing reads and the pruning never counts; `latest` always
 * names a complete checkpoint (a crash while re-saving an existing step k, between its two
 * renames, can also leave "checkpoint-<k>.old-<pid>", the earlier checkpoint-<k>; it is kept).
 *
 * STALE TEMPORARIES. Every save first removes, in ROOT, the entries named exactly
 * "checkpoint-<digits>.tmp-<pid>" or "latest.tmp-<pid>" (<pid>: decimal, no leading zero) whose
 * process is gone -- kill(pid, 0) fails with ESRCH -- or is the calling process (whose own saves
 * never leave one behind, so it is from an earlier process that had the same pid). A live
 * process's temporaries (kill succeeds or fails with EPERM) and every other name are never
 * touched. This happens before the new checkpoint is written, so that the room a stale
 * temporary takes is free for it (and a save that then fails still cleans up). It is silent
 * (the API has no channel for notes); a failure to remove one is ignored. Pids are this
 * machine's (this pid namespace's): saving into one ROOT from two machines or containers at
 * once, or from two threads of one process, is not supported.
 *
 * RESTORING checks the format version, every train, lora and model field and the data
 * fingerprint against the running trainer before changing anything, then every tensor's name,
 * dtype and shape; a mismatch is LC_ERR_INVALID_ARG naming the field, e.g. "checkpoint
 * ckpt/checkpoint-3 was written with seq_len (--seq-len) 64, this run has 128". Then every
 * value: exp_avg must be finite and exp_avg_sq finite and >= 0 (AdamW divides by
 * sqrt(exp_avg_sq) + eps, so one NaN or negative value reaches every later update), else
 * LC_ERR_FORMAT naming optimizer.safetensors, the tensor, the first bad element (flat index and
 * [row, column] of its [r, in] / [out, r] shape) and its value; lora_A and lora_B must be finite
 * (checked by the adapter loader, lc_adapter_load_peft, whose LC_ERR_FORMAT names
 * adapter_model.safetensors, the tensor and the element). trainer_state.json is read
 * only up to LC_CHECKPOINT_STATE_MAX_BYTES and must be one JSON object with nothing but
 * whitespace after it; its integers must be integral doubles in -2^53..2^53.
 */
#ifndef LORAC_CHECKPOINT_H
#define LORAC_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/data.h"
#include "lorac/status.h"
#include "lorac/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LC_CHECKPOINT_FORMAT_VERSION 1
#define LC_CHECKPOINT_STATE_FILE "trainer_state.json"
#define LC_CHECKPOINT_OPTIMIZER_FILE "optimizer.safetensors"
#define LC_CHECKPOINT_LATEST_FILE "latest"
/* The largest trainer_state.json lc_checkpoint_load reads, in bytes (64 MiB; lorac writes ~1 KiB). */
#define LC_CHECKPOINT_STATE_MAX_BYTES ((size_t)64 << 20)

/* What the trainer does not know: the model's file and the data position. */
typedef struct lc_checkpoint_extra {
    const char *model_file;  /* basename of the model's GGUF file; NULL or "": unknown, not checked */
    uint64_t model_bytes;    /* that file's size in bytes; 0: unknown, not checked */
    bool has_cursor;         /* whether `cursor` is set */
    lc_data_cursor cursor;   /* where the next training batch starts (lc_data_get_cursor) */
} lc_checkpoint_extra;

/* Write the state of `t` after its lc_trainer_steps_done(t) = k steps as root/checkpoint-<k>
 * (see LAYOUT and ATOMICITY above), creating `root` (one level) if needed, and point
 * root/latest at it. `extra` may be NULL. keep: how many checkpoint-<n> directories to keep
 * (the newest; 0 keeps all; pruning follows the save, so keep + 1 exist for a moment). Stale
 * temporaries of interrupted saves are removed first (STALE TEMPORARIES above). When `saved` is
 * not NULL it receives the checkpoint's path (truncated to cap bytes).
 * Errors: LC_ERR_INVALID_ARG (NULL t or root, keep < 0, k = 0, a path too long); LC_ERR_IO naming
 * the file and the system error ("No space left on device", "File too large", ...) -- then the
 * temporary directory is removed and `latest` and the earlier checkpoints are as they were;
 * LC_ERR_NOMEM; device transfer errors. A failure to remove an old checkpoint is not an error
 * (it is left). */
lc_status lc_checkpoint_save(const lc_trainer *t, const char *root, const lc_checkpoint_extra *extra, int keep,
                             char *saved, size_t cap);

/* The checkpoint directory `path` names: `path` itself when it holds trainer_state.json, else
 * path/<the name in path/latest>. Writes it to dir[cap].
 * Errors: LC_ERR_IO (neither exists, naming both paths and the system error; or `latest` names a
 * checkpoint-<n> that does not exist or holds no trainer_state.json, naming both), LC_ERR_FORMAT
 * (`latest` empty, longer than a line or naming something other than "checkpoint-<n>"),
 * LC_ERR_INVALID_ARG (NULL, cap too small). */
lc_status lc_checkpoint_resolve(const char *path, char *dir, size_t cap);

/* Restore checkpoint directory `dir` (resolved as lc_checkpoint_resolve) into `t`, which must be
 * a trainer built like the one that saved it: same model, LoRA configuration and
 * lc_train_config. Sets the LoRA tensors, the AdamW moments and the step count; the next
 * lc_trainer_step is step k+1 with the schedule, dropout masks and moments it would have had.
 * `expect` (may be NULL) gives the model file / size and the data cursor of this run: fields set
 * there are checked against the checkpoint (the cursor by its fingerprint: other data, seq_len,
 * packing, n_seq, seed or shuffle). `cursor` (may be NULL) receives the saved data position,
 * for lc_data_set_cursor; it is {0, 0, 0} when the checkpoint holds none.
 * Everything is read and checked before `t` changes; only a device transfer error while copying
 * can leave it half restored.
 * Errors: LC_ERR_INVALID_ARG naming the mismatching field and both values (format version, a
 * train / lora / model field, the data fingerprint), or the missing data position;
 * LC_ERR_IO (a missing file); LC_ERR_FORMAT (trainer_state.json larger than
 * LC_CHECKPOINT_STATE_MAX_BYTES, not JSON, or a field missing, of the wrong type or, for an
 * integer, not integral or outside -2^53..2^53; optimizer.safetensors truncated or not
 * safetensors, a tensor missing or of another dtype, a non-finite moment or a negative
 * exp_avg_sq -- naming the file, the tensor and the element; a tensor of another shape is
 * LC_ERR_INVALID_ARG); the adapter loader's errors (a non-finite lora_A / lora_B among them)
 * (lc_adapter_load_peft); LC_ERR_UNSUPPORTED (lorac built without cJSON); LC_ERR_NOMEM; device
 * errors. */
lc_status lc_checkpoint_load(lc_trainer *t, const char *dir, const lc_checkpoint_extra *expect,
                             lc_data_cursor *cursor);

#ifdef __cplusplus
}
#endif
#endif
