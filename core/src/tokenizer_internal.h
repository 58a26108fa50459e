/* lorac — tokenizer internals shared by the interface (tokenizer.c) and the algorithms
 * (tokenizer_spm.c; tokenizer_bpe.c later). Not part of the public API.
 *
 * tokenizer.c owns what every kind has in common: the vocabulary (a string pool, scores,
 * types), the text -> id hash, the special-token partition, BOS/EOS handling and decoding of
 * non-NORMAL tokens. A kind supplies a vtable: how to encode one raw-text fragment and how a
 * NORMAL token decodes to bytes.
 */
#ifndef LORAC_TOKENIZER_INTERNAL_H
#define LORAC_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/tokenizer.h"

/* Growable id array. */
typedef struct lc_tok_ids {
    int32_t *v;
    size_t n, cap;
} lc_tok_ids;

/* Growable byte string. */
typedef struct lc_tok_bytes {
    char *p;
    size_t n, cap;
} lc_tok_bytes;

lc_status lc_tok_ids_push(lc_tok_ids *a, int32_t id);
lc_status lc_tok_bytes_append(lc_tok_bytes *b, const char *s, size_t n);

typedef struct lc_tok_vtable {
    const char *name; /* "spm" */
    /* Append the ids of one raw-text fragment text[0..len) (len >= 1, no special token inside).
     * `after_special` is true when the fragment is the first one or follows a special token. */
    lc_status (*encode)(const lc_tokenizer *tok, const char *text, size_t len, bool after_special,
                        lc_tok_ids *out);
    /* Append the bytes a NORMAL or BYTE token decodes to. */
    lc_status (*piece)(const lc_tokenizer *tok, int32_t id, lc_tok_bytes *out);
    /* Release kind-specific state in tok->impl (may be NULL). */
    void (*destroy)(lc_tokenizer *tok);
} lc_tok_vtable;

/* Special-token trie node (one per byte of special-token text). */
typedef struct lc_tok_trie_node {
    int32_t first_child, next_sibling; /* -1 = none */
    int32_t rank_all;  /* best rank of a special token ending here (any special type), -1 none */
    int32_t rank_user; /* best rank of a USER_DEFINED token ending here, -1 none */
    uint8_t byte;
} lc_tok_trie_node;

struct lc_tokenizer {
    lc_tokenizer_kind kind;
    const lc_tok_vtable *vt;
    void *impl;

    int32_t n_vocab;
    char *pool;       /* every token's text, each NUL-terminated */
    size_t *offs;     /* [n_vocab] start of token i in pool */
    uint32_t *lens;   /* [n_vocab] byte length of token i */
    float *scores;    /* [n_vocab] */
    uint8_t *types;   /* [n_vocab] lc_token_type */
    uint8_t *byte_of; /* [n_vocab] value of a BYTE token (0 for other types) */

    int32_t *slots;   /* open-addressing hash text -> id, -1 = empty */
    size_t slot_mask; /* capacity - 1 (capacity a power of two) */

    /* special tokens sorted by (length desc, id asc); rank = index in this order */
    int32_t *special;
    int32_t n_special;
    lc_tok_trie_node *trie; /* node 0 is the root */
    int32_t n_trie;
    int32_t root_child[256]; /* first-level children by byte, -1 none */

    int32_t byte_token[256]; /* id emitted for a byte with no token: <0xXX>, 1-byte token, unk, -1 */

    int32_t bos, eos, unk, pad;
    bool add_bos, add_eos, add_space_prefix;
};

/* Fill the vocabulary part of `tok` (pool, scores, types, hash, specials, byte table) from the
 * GGUF arrays; `fn` names the calling API function in error messages. On error the partial
 * state is left for lc_tokenizer_free to release. */
lc_status lc_tok_vocab_init(lc_tokenizer *tok, const char *const *tokens, const float *scores,
                            const int32_t *types, int32_t n_vocab, const char *fn);

/* Text of token id (no bounds check). */
static inline const char *lc_tok_text(const lc_tokenizer *tok, int32_t id) { return tok->pool + tok->offs[id]; }

/* Exact lookup, LC_TOKEN_NULL when absent. */
int32_t lc_tok_find(const lc_tokenizer *tok, const char *text, size_t len);

/* The SPM vtable (tokenizer_spm.c). */
extern const lc_tok_vtable lc_tok_spm_vtable;

#endif
