/* lorac — LoRA adapter files: Hugging Face PEFT directories and llama.cpp GGUF LoRA adapters.
 *
 * PEFT (reference/peft-lora.md §2, from huggingface/peft peft_model.py::save_pretrained,
 * utils/save_and_load.py, tuners/lora/{config,model}.py): a directory with
 *   adapter_model.safetensors  one pair of F32 tensors per targeted module, keys
 *       base_model.model.<HF module path>.lora_A.weight   PyTorch [r, in]   (lorac ne {in, r})
 *       base_model.model.<HF module path>.lora_B.weight   PyTorch [out, r]  (lorac ne {r, out})
 *     with the HF module path of lc_module_hf_path ("model.layers.3.self_attn.q_proj") and no
 *     adapter name inside the key; metadata {"format": "pt"}; written as lorac/safetensors.h says.
 *   adapter_config.json  json.dumps(config, indent=2, sort_keys=True) (ASCII, no final newline)
 *     with peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha, lora_dropout, use_rslora,
 *     target_modules, bias "none", fan_in_fan_out false, init_lora_weights true, inference_mode
 *     true, use_dora false, modules_to_save null, rank_pattern, alpha_pattern,
 *     layers_to_transform, layers_pattern null, revision null, base_model_name_or_path.
 *   Only these long-standing keys are written (the newest, use_dora, dates from PEFT 0.9; PEFT
 *   >= 0.14 drops unknown keys, older versions raise on them), so old PEFT versions load the file.
 *
 * Orientation: lorac's A bytes (ne {in, r}) are PyTorch's [r, in] bytes and B's (ne {r, out})
 * are [out, r], so tensors are copied as they are, except for models with NORM rope (arch
 * llama): their q and k rows are in the GGUF order that convert_hf_to_gguf.py makes by permuting
 * HF's q_proj / k_proj (reference/formats.md §5: gguf[h·d + 2j + t] = hf[h·d + t·d/2 + j] for head
 * h of d = head_dim rows, j < d/2, t in {0,1}; n_head heads for q, n_head_kv for k). lora_B rows
 * of q and k are permuted the same way (A is untouched): saving applies the inverse so the file
 * matches HF's un-permuted q_proj / k_proj, loading applies the forward map. NEOX models (qwen2,
 * gemma3, toy) need no permutation.
 *
 * Scaling: each module's scaling is lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora
 * (peft-lora.md §1.1), with r and lora_alpha taken per module from rank_pattern / alpha_pattern
 * when a pattern key matches the module path by PEFT's rule re.match(rf"(.*\.)?({key})$", path)
 * (utils/other.py::get_pattern_key; the first matching key in file order wins). Keys made only of
 * [A-Za-z0-9_.-] are matched as plain suffixes ('.' taken literally); other keys are regular
 * expressions (PCRE2 when lorac is built with it, else POSIX extended regex with \d, \D, \w, \s
 * accepted).
 *
 * llama.cpp GGUF LoRA adapter (reference/formats.md "GGUF LoRA file", from llama.cpp
 * convert_lora_to_gguf.py and src/llama-adapter.cpp): a GGUF v3 file with general.type =
 * "adapter", general.architecture = lc_arch_name(arch), adapter.type = "lora",
 * adapter.lora.alpha (f32), and per module the tensors "<target>.weight.lora_a" ne {in, r} (the
 * bytes of A) and "<target>.weight.lora_b" ne {r, out} (the bytes of B), F32, with <target> the
 * GGUF base name ("blk.3.attn_q"). llama.cpp scales every module by alpha / r with r = ne[1] of
 * its lora_a (by 1 when alpha is 0), and q/k are already in GGUF order.
 *
 * Ranks above min(in, out) are allowed when loading and saving, as PEFT allows them (the update
 * then simply has rank min(in, out)); lc_lora_set_new accepts them too.
 */
#ifndef LORAC_ADAPTER_H
#define LORAC_ADAPTER_H

#include <stdbool.h>
#include <stdint.h>

#include "lorac/model.h"
#include "lorac/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LC_PEFT_CONFIG_FILE "adapter_config.json"
#define LC_PEFT_WEIGHTS_FILE "adapter_model.safetensors"

/* Descriptive fields written with an adapter; every pointer may be NULL. lorac's own tools fill
 * them with lc_adapter_meta_from_model. */
typedef struct lc_adapter_meta {
    const char *base_model_name_or_path; /* PEFT base_model_name_or_path; NULL: JSON null */
    const char *name;                    /* GGUF general.name of the adapter file; NULL: none */
} lc_adapter_meta;

/* Storage for the strings of an lc_adapter_meta filled by lc_adapter_meta_from_model (longer
 * values are cut at a UTF-8 character boundary). */
typedef struct lc_adapter_meta_buf {
    char base_model_name_or_path[512];
    char name[512];
} lc_adapter_meta_buf;

/* The one rule for the descriptive fields of an adapter trained on or exported for the GGUF model
 * file `model_path` (the file is opened, its metadata read, and closed again):
 *   base_model_name_or_path  1. the Hugging Face repository id "org/name" of the model the GGUF was
 *                               converted from, when general.source.repo_url or general.source.url
 *                               (in that order) is "http(s)://huggingface.co/<org>/<name>" (a
 *                               trailing '/' allowed; org and name of [A-Za-z0-9._-]; gguf-py
 *                               metadata.py writes these from the model card): the value
 *                               AutoPeftModel / PeftModel.from_pretrained load the base with;
 *                            2. else the model's general.name ("Gemma 3 270m");
 *                            3. else the basename of model_path ("gemma-3-270m-q4_k_m.gguf").
 *                            general.base_model.N.* is NOT used: gguf-py writes there the models the
 *                            GGUF's model was itself fine-tuned or merged from (the model card's
 *                            base_model), so an adapter trained on an instruct model would name
 *                            the pretrained one.
 *   name                     general.name + " LoRA", else the basename of model_path + " LoRA".
 * meta's pointers are set into *buf. When the file cannot be read as GGUF the basename rules apply
 * (the metadata is descriptive; saving must not fail for it) and the error is cleared.
 * Errors: LC_ERR_INVALID_ARG (a NULL argument). */
lc_status lc_adapter_meta_from_model(const char *model_path, lc_adapter_meta_buf *buf, lc_adapter_meta *meta);

/* Refuse an output path that would overwrite an input of the job (lorac export, lorac merge, and
 * anything else that reads a model and an adapter and writes a file or adapter directory).
 * The written paths are `out_path` and, when `out_is_peft_dir`, out_path/adapter_config.json and
 * out_path/adapter_model.safetensors. The inputs are `model_path` (may be NULL) and the adapter
 * `adapter_path` (may be NULL): the path itself and, for a PEFT adapter (a directory, or its
 * adapter_config.json / adapter_model.safetensors as lc_adapter_load accepts), its directory and
 * both files. Two paths are the same when both exist and stat(2) gives the same st_dev and st_ino,
 * so "./m.gguf", "dir/../m.gguf", symbolic links and hard links to an input are all caught; paths
 * that do not exist are never inputs.
 * Errors: LC_ERR_INVALID_ARG (NULL out_path; an output that is an input: "<who>: the output 'X'
 * is the base model file 'Y' itself ..." or "... is the adapter 'Y' itself ...", naming both paths). */
lc_status lc_adapter_check_out_path(const char *out_path, bool out_is_peft_dir, const char *model_path,
                                    const char *adapter_path, const char *who);

/* ---- PEFT ---------------------------------------------------------------------------------- */

/* Write `set` (made for `model`) as a PEFT adapter directory `dir` (see the top of this file).
 * Config: r and lora_alpha are set->cfg.r and set->cfg.lora_alpha; every module whose r differs
 * gets a rank_pattern entry and every module whose lora_alpha differs an alpha_pattern entry,
 * keyed by its full HF module path; a module whose scaling does not follow from its r and
 * lora_alpha (lc_lora_scaling) is written with the lora_alpha that reproduces its scaling.
 * target_modules lists the HF names of the targeted projections (sorted); when only some layers
 * have modules it adds layers_to_transform, and when layers differ in their projections it is a
 * regular expression naming every module path instead.
 * Atomicity: when `dir` does not exist, both files are written into "<dir>.tmp/" (fsync'ed) which
 * is then renamed to `dir`; when `dir` exists (a directory: other files in it are kept), each file
 * is written to "<file>.tmp", fsync'ed and renamed, the weights first. The parent of `dir` must
 * exist.
 * Errors: LC_ERR_INVALID_ARG (NULL model, set or dir; a set made for another model: layer count,
 * a module's shape, or an lora_A/lora_B not F32 ne {in, r} / {r, out}: the message names the
 * module), LC_ERR_IO (naming the path and the system error), LC_ERR_NOMEM, device transfer errors. */
lc_status lc_adapter_save_peft(const lc_model *model, const lc_lora_set *set, const char *dir,
                               const lc_adapter_meta *meta);

/* Read the PEFT adapter directory `dir` (adapter_config.json + adapter_model.safetensors) for
 * `model` into a new LoRA set on the model's device (free with lc_lora_set_free). Tensors may be
 * F32, F16, BF16 (or F64) and are converted to F32. The set's cfg takes r, lora_alpha,
 * use_rslora and lora_dropout from the config (seed 0); each module has its own r, lora_alpha and
 * scaling (see the top of this file).
 * Accepted keys: "base_model.model." + <path> + ".lora_A.weight" / ".lora_B.weight" where <path>
 * is a module path of the model, "model.layers.N.self_attn.q_proj" (also with the multimodal
 * prefixes "model.language_model.layers.N..." and "language_model.model.layers.N...").
 * Targeted modules: matched by target_modules as PEFT does (a list: path equal to an entry or
 * ending with "." + entry; a string: a regular expression that must match the whole path,
 * "all-linear": every projection; null: PEFT's default for these architectures, q_proj and
 * v_proj), minus exclude_modules, restricted to layers_to_transform.
 * Errors (LC_ERR_FORMAT unless noted; messages name the file and the key or field):
 *   LC_ERR_INVALID_ARG  NULL argument;
 *   LC_ERR_IO           a file missing or unreadable;
 *   config              not JSON, peft_type not "LORA", r / lora_alpha / lora_dropout /
 *                       rank_pattern / alpha_pattern / target_modules / layers_to_transform of
 *                       the wrong type, a lora_alpha or alpha_pattern value outside the float32
 *                       range (|v| > FLT_MAX; the message shows the value as written), a regular
 *                       expression that does not compile;
 *   LC_ERR_UNSUPPORTED  use_dora, lora_bias, bias other than "none", modules_to_save,
 *                       layer_replication, target_parameters or trainable_token_indices set;
 *   keys                a key that matches no module of the model ("adapter for another model"
 *                       when the layer does not exist), a key of a module the config does not
 *                       target, two keys for one tensor, a targeted module without both tensors,
 *                       a shape other than [r, in] / [out, r] for the module's r (expected and
 *                       found are named), LC_ERR_DTYPE for another dtype, no tensors at all;
 *   values              a lora_A / lora_B holding NaN or an infinity (after conversion to F32;
 *                       the key, the count and the first such element are named): such an
 *                       adapter (a diverged run) would turn every output into NaN;
 *   plus safetensors errors (lorac/safetensors.h), LC_ERR_NOMEM and device errors. */
lc_status lc_adapter_load_peft(const lc_model *model, const char *dir, lc_lora_set **out);

/* ---- llama.cpp GGUF ------------------------------------------------------------------------ */

/* Write `set` as a llama.cpp GGUF LoRA adapter at `path` (atomically, lc_gguf_writer_write).
 * adapter.lora.alpha is set->cfg.lora_alpha (with use_rslora: alpha·sqrt(r) of the first module,
 * so that alpha / r gives its scaling). llama.cpp has a single alpha and takes r from each
 * tensor's shape, so per-module ranks (rank_pattern) are exact; a module whose scaling is not
 * alpha / r (an alpha_pattern entry, rsLoRA with mixed ranks) is written with its lora_B
 * multiplied by scaling / (alpha / r), which keeps scaling·B·A, and so the update, the same (to
 * F32 rounding). Loading such a file gives that module lora_alpha = alpha and the scaled B.
 * general.name is meta->name when given.
 * Errors: as lc_adapter_save_peft (the file instead of a directory). */
lc_status lc_adapter_save_gguf(const lc_model *model, const lc_lora_set *set, const char *path,
                               const lc_adapter_meta *meta);

/* Read a llama.cpp GGUF LoRA adapter for `model` into a new set on the model's device. Each module
 * gets r = ne[1] of its lora_a and lora_alpha = adapter.lora.alpha (r when alpha is 0 or absent,
 * i.e. scaling 1, as llama.cpp does); the set's cfg.r is the most frequent r and cfg.lora_alpha
 * the file's alpha. Tensors may be any dtype lorac dequantises (F32, F16, BF16, Q8_0, ...).
 * Errors (LC_ERR_FORMAT unless noted; messages name the file and the tensor or key):
 *   LC_ERR_INVALID_ARG NULL argument; GGUF reader errors (lorac/gguf.h);
 *   general.type not "adapter", adapter.type not "lora", general.architecture not the model's;
 *   a tensor that is not "<target>.weight.lora_a/_b", a target that is not a projection of the
 *   model (LC_ERR_UNSUPPORTED for token_embd / output adapters), a module without both tensors,
 *   shapes that break a.ne0 == W.ne0, b.ne1 == W.ne1, a.ne1 == b.ne0 (expected and found are
 *   named), no tensors, adapter.lora.alpha not a finite float32, a lora_a / lora_b holding NaN or
 *   an infinity (as for PEFT); LC_ERR_DTYPE, LC_ERR_NOMEM, device errors. */
lc_status lc_adapter_load_gguf(const lc_model *model, const char *path, lc_lora_set **out);

/* Load an adapter of either format: a directory (or its adapter_model.safetensors /
 * adapter_config.json) is PEFT, a file starting with "GGUF" is a GGUF adapter.
 * Errors: as the two loaders; LC_ERR_IO when `path` does not exist; LC_ERR_FORMAT naming the
 * path when it is neither. */
lc_status lc_adapter_load(const lc_model *model, const char *path, lc_lora_set **out);

#ifdef __cplusplus
}
#endif
#endif
