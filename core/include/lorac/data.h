/* lorac — training data: text, JSONL and fortune files -> token ids, next-token labels and
 * positions in windows of seq_len tokens, with packing, shuffling, epochs, a resumable cursor and
 * a held-out split.
 *
 * What users of TRL's SFTTrainer / transformers' Trainer expect (reference/peft-lora.md §7) is
 * followed where lorac can; the choices are stated here once and referred to below.
 *
 * INPUTS (one lc_data collects any number of files; each file's format is given or detected)
 *   TEXT     UTF-8 plain text. Documents are separated by blank lines (a line that is empty or
 *            holds only spaces, tabs and CR) -- LC_TEXT_DOCS_PARAGRAPHS, the default -- or the
 *            whole file is one document (LC_TEXT_DOCS_FILE). A document is its lines verbatim,
 *            joined by "\n" (CRLF becomes LF), without the final line break. Special-token text
 *            such as "<eos>" is NOT parsed as a control token (config.text_parse_special).
 *   JSONL    one JSON object per line (blank lines are skipped); per line, by its fields:
 *              {"text": str}                        language modelling: loss on every token
 *              {"prompt": str, "completion": str}   rendered as prompt + completion, no separator
 *                                                   (as TRL); loss on the completion only
 *              {"messages": [{"role","content"},...]}  chat, rendered with the chat template;
 *                                                   loss on assistant turns only
 *              {"prompt": [msgs], "completion": [msgs]}  conversational prompt-completion: the
 *                                                   messages concatenated; loss on the assistant
 *                                                   turns of "completion" only
 *            "messages" wins over "prompt"/"completion", which win over "text"; other fields are
 *            ignored. role is "system", "user" or "assistant". content is a string or an array
 *            of {"type": "text", "text": str} parts (joined). Special-token text is parsed as
 *            control tokens (config.jsonl_parse_special), as Hugging Face tokenizers do.
 *   FORTUNE  a fortune(6) file: entries separated by lines holding only "%"; each non-empty
 *            entry is one TEXT document. lc_data_add_fortunes also takes a directory such as
 *            /usr/share/games/fortunes (every regular file not ending in ".dat").
 *   AUTO     JSONL when the first byte that is not whitespace (after an optional UTF-8 byte-order
 *            mark) is '{', else TEXT.
 *
 * CHAT TEMPLATES (lc_chat_template; rendered exactly, byte for byte)
 *   GEMMA    Gemma's Hugging Face template (the one whose markers are "<start_of_turn>" and
 *            "<end_of_turn>"), per message:
 *              "<start_of_turn>" + role + "\n" + content + "<end_of_turn>\n"
 *            with role "assistant" written "model", content trimmed of leading and trailing
 *            whitespace (Jinja's trim = Python str.strip(): Unicode White_Space plus
 *            U+001C..U+001F), a first "system" message folded into the first remaining turn as
 *            system content + "\n\n" + content, and the template's rule enforced that turns
 *            alternate user/assistant starting with user (after the folded system message).
 *            The template's leading {{ bos_token }} is the single BOS described below.
 *   CHATML   the default for any other template (Qwen, many others), per message:
 *              "<|im_start|>" + role + "\n" + content + "<|im_end|>\n"
 *            with content verbatim; no rule on the order of roles.
 *   Loss is on each trained assistant turn's content and its end-of-turn marker ("<end_of_turn>",
 *   "<|im_end|>"), not on the "\n" after it nor on anything else (TRL assistant_only_loss).
 *   No generation prompt is added after the last message.
 *
 * TOKENIZING ONE EXAMPLE
 *   The rendered text is tokenized whole (lc_tokenize with add_special = false), so tokens merge
 *   across the prompt/completion boundary exactly as they would at inference. The token at which
 *   a loss range starts is found by tokenizing the text before it and taking the longest common
 *   prefix with the whole (TRL does the same); a token that straddles a boundary counts as
 *   inside a range that starts there and outside one that ends there.
 *   BOS: every example starts with exactly one BOS -- leading BOS tokens of the text (a template's
 *   "<bos>", a user's "<bos>") are removed and one BOS is put first when the tokenizer has a BOS
 *   id and either its add_bos is set or the text began with BOS. BOS never carries loss, nor does
 *   the first token of an example without BOS (nothing of the example comes before it).
 *   EOS: text and prompt-completion examples end with the tokenizer's EOS (appended unless the
 *   text already ends with it), which carries loss; chat examples end with the end-of-turn
 *   marker of their last turn and get no EOS.
 *
 * LABELS (the one-token shift, as Hugging Face causal LMs do it, but done here on the host)
 *   ids[t] predicts labels[t] = ids[t+1] when token t+1 carries loss, else ignore_index (-100).
 *   The last position of every sequence, padding, prompts, user and system turns, template text
 *   and BOS all have labels == ignore_index. So the loss of a batch is the mean over positions
 *   whose label != ignore_index (lc_train_step's labels are exactly these).
 *
 * SEQUENCES (windows of seq_len tokens; positions are 0..seq_len-1 in every sequence)
 *   packing on (default; TRL packing_strategy "wrapped"): the examples of a split, in file order,
 *     are concatenated into one token stream that is cut into windows. Attention is causal over
 *     the whole window, so it crosses example boundaries inside a window (as wrapped packing does;
 *     lorac's attention op has no per-example mask); each example still starts with its BOS.
 *   packing off: one example per sequence, padded; a prompt-completion or chat example longer
 *     than seq_len is truncated keeping its start (TRL truncation "keep_start"); a text example
 *     (TEXT, FORTUNE or JSONL "text") longer than seq_len is split over several sequences.
 *   A window that starts inside an example (a split or wrapped continuation) begins with BOS (when
 *   the tokenizer adds BOS) followed by the last token of the previous window, both without loss
 *   (the label at the BOS is masked): every sequence starts with exactly one BOS, and every token
 *   that carries loss is predicted exactly once, always with at least one token of its example
 *   before it. (The last position of a window has no label, hence the one-token overlap.)
 *   Padding: pad id (config.pad_id, else the tokenizer's pad, else EOS, else 0), label
 *   ignore_index. A sequence whose labels are all ignore_index (e.g. a prompt that fills the
 *   whole window) is dropped and counted in lc_data_stats.n_dropped.
 *
 * SPLITS, SHUFFLING, EPOCHS, CURSOR
 *   Held-out split: files added as LC_DATA_EVAL go to the eval split; of the examples of
 *   LC_DATA_TRAIN files, round(eval_fraction * n) (at least 1, at most n - 1) chosen by a
 *   Fisher-Yates permutation keyed by split_seed also go there; both splits keep file order.
 *   The choice depends only on (split_seed, eval_fraction, the list of examples): the same inputs
 *   always give the same split, independent of the shuffle seed, packing and seq_len.
 *   Training order: epoch e visits every training sequence once, in the order of a Fisher-Yates
 *   shuffle (i = n-1 down to 1, swap with j uniform in [0, i]) whose draws are
 *   lc_rng_u32(seed, LC_DATA_STREAM_SHUFFLE + e, (i << 16) | attempt), j = draw mod (i + 1) with
 *   draws >= 2^32 - (2^32 mod (i + 1)) rejected (so j is exactly uniform); shuffle off keeps file
 *   order. Batches are n_seq consecutive sequences of that order and run on into the next
 *   epoch, so every batch is full. The cursor (epoch, position) names the next sequence; saving
 *   it and restoring it with lc_data_set_cursor resumes exactly.
 *
 * ERRORS (each names the file and the line, or the byte offset; all LC_ERR_FORMAT unless said)
 *   missing or unreadable file (LC_ERR_IO); empty file or one without any document; binary data
 *   (a NUL byte: byte offset); invalid UTF-8 (byte offset and line); a JSONL syntax error (line
 *   and byte within the line); a JSONL line that is not an object, lacks the expected fields or
 *   has a field of the wrong type (line and field); a message with an unknown role (line and
 *   field); turns out of the Gemma template's order (line); an example with no token carrying
 *   loss, e.g. chat without an assistant turn (line); no token carrying loss in a whole split
 *   after truncation (the files). Errors from adding a file leave the lc_data as it was.
 *
 * Memory: every sequence of both splits is held in host memory, 8 bytes per token (ids and
 * labels). One lc_data must not be used from two threads at once.
 */
#ifndef LORAC_DATA_H
#define LORAC_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/gguf.h"
#include "lorac/status.h"
#include "lorac/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Label of a position that carries no loss (PyTorch CrossEntropyLoss ignore_index). */
#define LC_DATA_IGNORE_INDEX (-100)

/* Philox streams (lorac/rng.h) of the shuffle (plus the epoch) and of the held-out split. */
#define LC_DATA_STREAM_SHUFFLE 0x5348554600000000ULL /* "SHUF" << 32 */
#define LC_DATA_STREAM_SPLIT   0x53504C5400000000ULL /* "SPLT" << 32 */

/* Debian's fortune files (package fortunes-min / fortunes), the default training text. */
#define LC_DATA_FORTUNES_DIR "/usr/share/games/fortunes"

/* File formats (see the top of this file). Values are stable. */
typedef enum lc_data_format {
    LC_DATA_FORMAT_AUTO    = 0,
    LC_DATA_FORMAT_TEXT    = 1,
    LC_DATA_FORMAT_JSONL   = 2,
    LC_DATA_FORMAT_FORTUNE = 3
} lc_data_format;

/* How a TEXT file is cut into documents. */
typedef enum lc_text_docs {
    LC_TEXT_DOCS_PARAGRAPHS = 0, /* blank lines separate documents */
    LC_TEXT_DOCS_FILE       = 1  /* the whole file is one document */
} lc_text_docs;

/* Chat templates lorac renders (see the top of this file). */
typedef enum lc_chat_template {
    LC_CHAT_TEMPLATE_AUTO   = 0, /* lc_chat_template_detect(config.chat_template_text, tokenizer) */
    LC_CHAT_TEMPLATE_CHATML = 1,
    LC_CHAT_TEMPLATE_GEMMA  = 2
} lc_chat_template;

/* The two splits. */
typedef enum lc_data_split {
    LC_DATA_TRAIN = 0,
    LC_DATA_EVAL  = 1
} lc_data_split;

typedef struct lc_data_config {
    int seq_len;                    /* tokens per sequence, 3..2^24 (no default: caller sets it) */
    int n_seq;                      /* sequences per batch, 1..2^20 (1) */
    bool packing;                   /* wrapped packing (true); false: one example per sequence */
    bool shuffle;                   /* shuffle the training sequences every epoch (true) */
    uint64_t seed;                  /* shuffle seed (42) */
    double eval_fraction;           /* share of the LC_DATA_TRAIN files' examples held out, [0, 1) (0) */
    uint64_t split_seed;            /* seed of the held-out choice (42) */
    lc_text_docs text_docs;         /* TEXT documents (LC_TEXT_DOCS_PARAGRAPHS) */
    lc_chat_template chat_template; /* (LC_CHAT_TEMPLATE_AUTO) */
    const char *chat_template_text; /* the model's tokenizer.chat_template (Jinja source) for AUTO;
                                       NULL when unknown (NULL); read only by lc_data_new */
    bool text_parse_special;        /* parse special-token text in TEXT/FORTUNE documents (false) */
    bool jsonl_parse_special;       /* ... and in JSONL fields (true) */
    int32_t ignore_index;           /* label of positions without loss, < 0 (LC_DATA_IGNORE_INDEX) */
    int32_t pad_id;                 /* padding id; -1: the tokenizer's pad, else EOS, else 0 (-1) */
} lc_data_config;

/* The defaults in parentheses above; seq_len is 0 and must be set. */
lc_data_config lc_data_config_default(void);

/* Which template renders chat data for a model:
 *   template_text contains "<start_of_turn>" and "<end_of_turn>"    -> GEMMA
 *   template_text is non-NULL otherwise                              -> CHATML (the default)
 *   template_text NULL and tok (may be NULL) has both Gemma markers as tokens -> GEMMA
 *   otherwise                                                        -> CHATML.
 * Never fails. */
lc_chat_template lc_chat_template_detect(const char *template_text, const lc_tokenizer *tok);

/* lc_chat_template_detect with the string value of "tokenizer.chat_template" of a GGUF file
 * (f may be NULL; an absent or non-string key counts as NULL). */
lc_chat_template lc_chat_template_from_gguf(const lc_gguf *f, const lc_tokenizer *tok);

/* "auto", "chatml", "gemma"; "unknown" when out of range. */
const char *lc_chat_template_name(lc_chat_template t);

/* "auto", "text", "jsonl", "fortune"; "unknown" when out of range. */
const char *lc_data_format_name(lc_data_format f);

/* Parse a format name as above (for --data-format). Errors: LC_ERR_INVALID_ARG naming it. */
lc_status lc_data_format_parse(const char *name, lc_data_format *out);

typedef struct lc_data lc_data;

/* Start an empty data set. tok must outlive the lc_data. cfg may be NULL only to get an error
 * (seq_len has no default).
 * Errors: LC_ERR_INVALID_ARG naming the lc_data_config field (seq_len outside 3..2^24, n_seq
 * outside 1..2^20, eval_fraction not in [0, 1), ignore_index >= 0, pad_id outside
 * [-1, n_vocab), an unknown enum value), LC_ERR_NOMEM. On error *out is NULL. */
lc_status lc_data_new(const lc_tokenizer *tok, const lc_data_config *cfg, lc_data **out);

/* Read, check and tokenize a whole file into `split` (before lc_data_finalize).
 * fmt LC_DATA_FORMAT_AUTO detects TEXT or JSONL (FORTUNE is never detected).
 * Errors: those listed at the top of this file, each naming `path` and a line or byte offset;
 * LC_ERR_INVALID_ARG (NULL argument, unknown fmt or split); LC_ERR_STATE (after finalize);
 * LC_ERR_UNSUPPORTED (JSONL in a build without cJSON); LC_ERR_NOMEM; tokenizer errors.
 * On error nothing of the file is kept. */
lc_status lc_data_add_file(lc_data *d, const char *path, lc_data_format fmt, lc_data_split split);

/* Same as lc_data_add_file for the bytes data[0..len), called `name` in messages. */
lc_status lc_data_add_memory(lc_data *d, const char *name, const void *data, size_t len, lc_data_format fmt,
                             lc_data_split split);

/* Add fortune files: `path` is one fortune file, or a directory whose regular files (not
 * symbolic links, not "*.dat", not hidden) are added in byte order of their names.
 * Errors: as lc_data_add_file; LC_ERR_IO (directory unreadable); LC_ERR_FORMAT (a directory
 * without fortune files). On error nothing of the directory is kept. */
lc_status lc_data_add_fortunes(lc_data *d, const char *path, lc_data_split split);

/* Read the entries of one fortune file (see FORTUNE above) without tokenizing: *docs is a
 * malloc'd array of *n_docs malloc'd NUL-terminated strings; release it with
 * lc_data_docs_free. Errors: as lc_data_add_file for a FORTUNE file; on error *docs is NULL and
 * *n_docs 0. */
lc_status lc_data_read_fortunes(const char *path, char ***docs, size_t *n_docs);

/* Free what lc_data_read_fortunes returned; NULL is a no-op. */
void lc_data_docs_free(char **docs, size_t n_docs);

/* The file reading and byte checks every source of lc_data_add_file passes, for tools that need
 * a file's text as it is (lorac eval). lc_data_read_file: the whole file in *buf (malloc'd,
 * NUL-terminated; *len bytes without the NUL; free with free()). Errors: LC_ERR_IO naming the
 * path and the system error (missing, unreadable, "is a directory"), LC_ERR_NOMEM.
 * lc_data_check_bytes: not empty, no NUL byte, well-formed UTF-8 (The Unicode Standard, Table
 * 3-7: no overlong forms, surrogates or code points past U+10FFFF). Errors: LC_ERR_FORMAT naming
 * `name`, the byte offset and the line. (Defined in core/src/data_source.c.) */
lc_status lc_data_read_file(const char *path, char **buf, size_t *len);
lc_status lc_data_check_bytes(const char *name, const char *buf, size_t len);

/* Hold out the eval examples, build the sequences of both splits and drop the per-example
 * tokens. After this no file can be added and batches can be read.
 * Errors: LC_ERR_STATE (called twice); LC_ERR_FORMAT (no example at all; eval_fraction > 0 with
 * fewer than 2 training examples; no token carrying loss in the training split, or in an eval
 * split that was asked for -- the message names the files and the cause); LC_ERR_NOMEM. */
lc_status lc_data_finalize(lc_data *d);

typedef struct lc_data_stats {
    int64_t n_examples[2];     /* examples per split (index: lc_data_split) */
    int64_t n_sequences[2];    /* sequences of seq_len tokens per split */
    int64_t n_tokens[2];       /* positions that hold a token, not padding */
    int64_t n_label_tokens[2]; /* labels != ignore_index: the loss denominator of one epoch */
    int64_t n_truncated;       /* examples cut to seq_len (packing off, keep_start) */
    int64_t n_dropped;         /* sequences dropped because no label carried loss */
    int32_t pad_id;            /* the padding id in use */
    lc_chat_template chat_template; /* the template chat data is rendered with (never AUTO) */
} lc_data_stats;

/* Counts so far (examples are counted as they are added; sequences after finalize).
 * Errors: LC_ERR_INVALID_ARG (NULL). */
lc_status lc_data_get_stats(const lc_data *d, lc_data_stats *out);

/* Sequences in a split (0 before finalize). */
int64_t lc_data_n_sequences(const lc_data *d, lc_data_split split);

/* Copy sequence i of a split (in file order, not shuffled):
 *   ids[seq_len], labels[seq_len], pos[seq_len] (I32; each may be NULL when not wanted).
 * Errors: LC_ERR_STATE (before finalize), LC_ERR_INVALID_ARG (i outside [0, n_sequences)). */
lc_status lc_data_sequence(const lc_data *d, lc_data_split split, int64_t i, int32_t *ids, int32_t *labels,
                           int32_t *pos);

typedef struct lc_data_batch_info {
    int64_t epoch;          /* epoch of the batch's first sequence (0-based) */
    int64_t position;       /* its index in that epoch's order */
    int n_real;             /* sequences holding data; the rest (eval's last batch) are padding */
    int64_t n_label_tokens; /* labels != ignore_index in the batch */
    bool epoch_end;         /* the batch completed an epoch */
} lc_data_batch_info;

/* The next training batch at the cursor, which then moves on by n_seq sequences (into the next
 * epoch when this one ends):
 *   ids[n_seq*seq_len], labels[n_seq*seq_len], pos[n_seq*seq_len] (I32, sequence-major: entry
 *   s*seq_len + t is token t of sequence s, as lc_trainer_step takes them); pos may be NULL;
 *   info may be NULL.
 * Errors: LC_ERR_STATE (before finalize), LC_ERR_INVALID_ARG (ids or labels NULL). */
lc_status lc_data_next_batch(lc_data *d, int32_t *ids, int32_t *labels, int32_t *pos, lc_data_batch_info *info);

/* Batches needed to cover the eval split once: ceil(n_sequences(EVAL) / n_seq); 0 without one. */
int64_t lc_data_n_eval_batches(const lc_data *d);

/* Eval batch b (0..n_eval_batches-1), file order, no shuffle; the sequences past the end of the
 * split are padding whose labels are all ignore_index. Shapes as lc_data_next_batch.
 * Errors: LC_ERR_STATE (before finalize), LC_ERR_INVALID_ARG (b out of range, ids/labels NULL). */
lc_status lc_data_eval_batch(const lc_data *d, int64_t b, int32_t *ids, int32_t *labels, int32_t *pos,
                             lc_data_batch_info *info);

/* Where the next training batch starts, for checkpoints. */
typedef struct lc_data_cursor {
    int64_t epoch;        /* epochs completed */
    int64_t position;     /* next sequence's index in this epoch's order, 0..n_sequences-1 */
    uint64_t fingerprint; /* lc_data_fingerprint of the data set it belongs to */
} lc_data_cursor;

/* The cursor ({0, 0, fingerprint} right after finalize). Errors: LC_ERR_INVALID_ARG (NULL). */
lc_status lc_data_get_cursor(const lc_data *d, lc_data_cursor *out);

/* Restore a cursor saved by lc_data_get_cursor.
 * Errors: LC_ERR_STATE (before finalize; c->fingerprint nonzero and different from this data
 * set's: other files, seq_len, packing, n_seq, seed or shuffle), LC_ERR_INVALID_ARG (NULL,
 * epoch < 0, position outside [0, n_sequences)). */
lc_status lc_data_set_cursor(lc_data *d, const lc_data_cursor *c);

/* FNV-1a 64 hash of the training sequences (ids and labels) and of seq_len, n_seq, packing, seed
 * and shuffle; never 0; 0 before finalize. */
uint64_t lc_data_fingerprint(const lc_data *d);

/* Order of the training sequences in epoch `epoch`: order[n_sequences(TRAIN)] (I64 indices as in
 * lc_data_sequence). Errors: LC_ERR_STATE (before finalize), LC_ERR_INVALID_ARG (NULL, epoch < 0). */
lc_status lc_data_epoch_order(const lc_data *d, int64_t epoch, int64_t *order);

/* Free everything; NULL is a no-op. */
void lc_data_free(lc_data *d);

#ifdef __cplusplus
}
#endif
#endif
