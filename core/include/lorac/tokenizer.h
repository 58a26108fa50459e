/* lorac — tokenizers: text <-> token ids.
 *
 * One opaque lc_tokenizer handle serves every tokenizer kind. Today there is SentencePiece-style
 * BPE ("SPM", GGUF tokenizer.ggml.model = "llama"); GPT-2 style byte-level BPE ("gpt2") is
 * reserved and will sit behind the same calls. The behaviour follows llama.cpp's
 * src/llama-vocab.cpp as summarised in reference/formats.md §4, with the deviations listed at
 * each function (marked "Deviation").
 *
 * The vocabulary is three parallel arrays indexed by token id, exactly as GGUF stores them
 * (tokenizer.ggml.tokens / scores / token_type):
 *   tokens[i]  UTF-8 text of token i, NUL-terminated (SPM spells a space as U+2581 "▁")
 *   scores[i]  f32 merge score; a larger score merges first
 *   types[i]   an lc_token_type
 *
 * Special tokens are the tokens of type CONTROL, USER_DEFINED or UNKNOWN with non-empty text.
 * When text is tokenized they are cut out of the raw text before any merging ("special-token
 * partition"): longest text first (ties: smaller id first), each one at every leftmost
 * non-overlapping occurrence in the text that is still raw. USER_DEFINED tokens are always cut
 * out; CONTROL and UNKNOWN tokens only when parse_special is true. (Deviation: llama.cpp orders
 * equal-length special tokens arbitrarily; lorac breaks the tie by id.)
 *
 * Memory: arrays returned through `int32_t **ids` / `char **text` are allocated with malloc and
 * released by the caller with free(). The tokenizer is immutable after creation, so one handle
 * may be used from several threads at once (error messages are per thread, see status.h).
 */
#ifndef LORAC_TOKENIZER_H
#define LORAC_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lc_tokenizer lc_tokenizer;

/* "No token" (an absent special id, a failed lookup). */
#define LC_TOKEN_NULL (-1)

/* The tokenizer algorithm. Values are stable. */
typedef enum lc_tokenizer_kind {
    LC_TOKENIZER_SPM = 1, /* SentencePiece BPE: ▁ for spaces, score-ordered merges, <0xXX> bytes */
    LC_TOKENIZER_BPE = 2  /* reserved: GPT-2 byte-level BPE with ranked merges and regex pre-split */
} lc_tokenizer_kind;

/* Token types, numbered as GGUF tokenizer.ggml.token_type and SentencePiece's ModelProto. */
typedef enum lc_token_type {
    LC_TOKEN_TYPE_UNDEFINED    = 0,
    LC_TOKEN_TYPE_NORMAL       = 1,
    LC_TOKEN_TYPE_UNKNOWN      = 2, /* <unk> */
    LC_TOKEN_TYPE_CONTROL      = 3, /* <bos>, <eos>, chat markers: hidden when decoding */
    LC_TOKEN_TYPE_USER_DEFINED = 4, /* always matched whole in raw text, decoded verbatim */
    LC_TOKEN_TYPE_UNUSED       = 5,
    LC_TOKEN_TYPE_BYTE         = 6  /* "<0xXX>": one raw byte (SPM byte fallback) */
} lc_token_type;

/* Options of an SPM tokenizer. An id of LC_TOKEN_NULL (-1) means the model has no such token. */
typedef struct lc_tokenizer_spm_opts {
    int32_t bos_id;        /* beginning of sequence; default 1 */
    int32_t eos_id;        /* end of sequence; default 2 */
    int32_t unk_id;        /* unknown; default 0; used only when a byte has no fallback token */
    int32_t pad_id;        /* padding; default -1 (only reported, never produced) */
    bool add_bos;          /* lc_tokenize(add_special=true) puts BOS first; default true */
    bool add_eos;          /* lc_tokenize(add_special=true) puts EOS last; default false */
    bool add_space_prefix; /* prepend " " to the first text fragment and to every text fragment
                              that follows a special token; default true */
} lc_tokenizer_spm_opts;

/* The defaults of llama.cpp for an SPM vocabulary without tokenizer.ggml.* overrides
 * (reference/formats.md §4): bos 1, eos 2, unk 0, pad -1, add_bos, no add_eos, add_space_prefix.
 * Gemma 3 files override them (bos 2, eos 1, unk 3, pad 0, no space prefix). */
lc_tokenizer_spm_opts lc_tokenizer_spm_opts_default(void);

/* Build an SPM tokenizer from the GGUF arrays. Everything is copied; the caller keeps its arrays.
 *   tokens[n_vocab]  required; each non-NULL
 *   scores[n_vocab]  may be NULL (every score 0); no NaN
 *   types[n_vocab]   may be NULL (every token NORMAL); each in 0..6; a BYTE token must be spelled
 *                    "<0xXX>" with two hex digits
 *   opts             may be NULL (lc_tokenizer_spm_opts_default())
 * When two tokens have the same text, lookups by text find the larger id (llama.cpp keeps the last).
 * Errors: LC_ERR_INVALID_ARG (out == NULL, tokens == NULL, n_vocab < 1, a special id outside
 * [-1, n_vocab), add_bos without bos_id, add_eos without eos_id), LC_ERR_FORMAT (tokens[i] NULL,
 * scores[i] NaN, types[i] out of range, a malformed BYTE token), LC_ERR_NOMEM.
 * On error *out is NULL. */
lc_status lc_tokenizer_new_spm(const char *const *tokens, const float *scores, const int32_t *types,
                               int32_t n_vocab, const lc_tokenizer_spm_opts *opts,
                               lc_tokenizer **out);

/* Release a tokenizer; NULL is a no-op. */
void lc_tokenizer_free(lc_tokenizer *tok);

/* ---- accessors (tok must be non-NULL) ------------------------------------------------------ */
lc_tokenizer_kind lc_tokenizer_get_kind(const lc_tokenizer *tok);
int32_t lc_tokenizer_n_vocab(const lc_tokenizer *tok);
int32_t lc_tokenizer_bos(const lc_tokenizer *tok); /* LC_TOKEN_NULL when none */
int32_t lc_tokenizer_eos(const lc_tokenizer *tok);
int32_t lc_tokenizer_unk(const lc_tokenizer *tok);
int32_t lc_tokenizer_pad(const lc_tokenizer *tok);
bool lc_tokenizer_add_bos(const lc_tokenizer *tok);
bool lc_tokenizer_add_eos(const lc_tokenizer *tok);
bool lc_tokenizer_add_space_prefix(const lc_tokenizer *tok);

/* Stored text of token `id` (NUL-terminated, ▁ not unescaped) and its byte length in *len when
 * len != NULL; NULL when id is out of range. Valid until lc_tokenizer_free. */
const char *lc_tokenizer_token_text(const lc_tokenizer *tok, int32_t id, size_t *len);
/* Score of token `id`; 0 when out of range. */
float lc_tokenizer_token_score(const lc_tokenizer *tok, int32_t id);
/* Type of token `id`; LC_TOKEN_TYPE_UNDEFINED when out of range. */
lc_token_type lc_tokenizer_token_type(const lc_tokenizer *tok, int32_t id);
/* Id of the token whose stored text is exactly text[0..len) (bytes; the SPM spelling with ▁),
 * or LC_TOKEN_NULL. */
int32_t lc_tokenizer_find(const lc_tokenizer *tok, const char *text, size_t len);

/* ---- encode / decode ------------------------------------------------------------------------ */

/* Tokenize text[0..len) (bytes; need not be NUL-terminated; invalid UTF-8 is accepted). On
 * success *ids is a malloc'd array of *n token ids (never NULL, even when *n == 0); free() it.
 *
 * SPM algorithm (llama.cpp llm_tokenizer_spm, itself SentencePiece's bpe_model.cc; formats.md §4):
 *  1. special-token partition of the text (see the top of this file; parse_special selects
 *     whether CONTROL/UNKNOWN tokens are matched; USER_DEFINED tokens always are);
 *  2. BOS when add_special and the tokenizer's add_bos;
 *  3. each raw-text fragment: " " is prepended when add_space_prefix and the fragment is the first
 *     one or follows a special token; every 0x20 becomes U+2581 (other whitespace is kept); the
 *     bytes are cut into UTF-8 characters by the lead byte (a stray continuation byte, or a lead
 *     byte whose sequence is cut short by the end, is its own character); adjacent symbols whose
 *     concatenation is a token are merged, highest score first, ties to the leftmost pair, with
 *     stale queue entries skipped; a final symbol that is not a token becomes one <0xXX> token per
 *     byte, else the 1-byte token, else unk_id;
 *  4. special fragments become their token id;
 *  5. EOS when add_special and the tokenizer's add_eos.
 * Exactly one BOS: when step 2 adds BOS, BOS tokens parsed from the very start of the text
 * (parse_special) are dropped, so "<bos>hi" gives [bos, hi], never [bos, bos, hi].
 * (Deviation: llama.cpp keeps both and only warns.) BOS parsed later in the text is kept.
 * Likewise at most one EOS is appended: when step 5 applies and the text already ends with a
 * parsed EOS token, no second EOS is added.
 * Errors: LC_ERR_INVALID_ARG (tok, ids or n NULL; text NULL with len > 0), LC_ERR_FORMAT (a byte
 * with neither a <0xXX> token, a 1-byte token nor unk_id), LC_ERR_NOMEM. On error *ids is NULL
 * and *n is 0. */
lc_status lc_tokenize(const lc_tokenizer *tok, const char *text, size_t len, bool add_special,
                      bool parse_special, int32_t **ids, size_t *n);

/* The bytes token `id` decodes to on its own (no space-prefix removal):
 *   NORMAL: the text with ▁ (U+2581) turned into 0x20; BYTE "<0xXX>": the byte 0xXX;
 *   USER_DEFINED: the text verbatim; CONTROL, UNKNOWN: the text when show_special, else nothing;
 *   UNUSED, UNDEFINED: nothing (llama.cpp token_to_piece).
 * Writes at most cap bytes to buf plus a NUL when there is room, and the piece length to *len.
 * Errors: LC_ERR_INVALID_ARG (tok or len NULL; id out of range; buf NULL with cap > 0; cap too
 * small, in which case *len still holds the length needed, without the NUL). */
lc_status lc_token_to_piece(const lc_tokenizer *tok, int32_t id, bool show_special, char *buf,
                            size_t cap, size_t *len);

/* Decode ids[0..n) to text: the concatenation of lc_token_to_piece(id, show_special), except
 *  - when add_space_prefix is set, one leading 0x20 is removed from the piece of the first
 *    non-special token that is first or follows a special (CONTROL, UNKNOWN, USER_DEFINED)
 *    token -- the exact mirror of step 3 of lc_tokenize. (Deviation: llama.cpp removes only the
 *    very first space, and keeps it after a leading BOS.)
 *  - SPM: in a run of consecutive BYTE tokens the bytes E2 96 81 (U+2581) become 0x20, as in a
 *    NORMAL token: an escaped space that a truncated UTF-8 sequence in the input swallowed into
 *    its byte fallback ("\xF0 " -> <0xF0><0xE2><0x96><0x81>) decodes as the space it was.
 *    (Deviation: llama.cpp outputs the three bytes.)
 * So detokenize(tokenize(t)) == t for every byte string t, with these exceptions: a literal
 * U+2581 in the text decodes as a space; special-token text parsed with parse_special comes back
 * only with show_special; a byte that fell back to unk_id.
 * On success *text is malloc'd, NUL-terminated, *len bytes long without the NUL; free() it.
 * Errors: LC_ERR_INVALID_ARG (tok, text or len NULL; ids NULL with n > 0; ids[i] out of range,
 * naming i), LC_ERR_NOMEM. On error *text is NULL and *len is 0. */
lc_status lc_detokenize(const lc_tokenizer *tok, const int32_t *ids, size_t n, bool show_special,
                        char **text, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
