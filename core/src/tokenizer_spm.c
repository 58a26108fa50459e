/* lorac — SentencePiece-style BPE tokenizer ("SPM", GGUF tokenizer.ggml.model = "llama").
 *
 * Algorithm (reference/formats.md §4; llama.cpp src/llama-vocab.cpp llm_tokenizer_spm_session,
 * which follows SentencePiece src/bpe_model.cc):
 *   - escape: optional " " prefix, then every 0x20 -> U+2581 "▁" (E2 96 81);
 *   - symbols: one per UTF-8 character, its byte length taken from the lead byte's high nibble
 *     (0x0-0xB: 1, 0xC-0xD: 2, 0xE: 3, 0xF: 4) and cut at the end of the text, so any byte
 *     string is accepted and a stray continuation byte is a 1-byte symbol;
 *   - merge: a max-priority queue of adjacent pairs whose concatenation is a token, keyed by
 *     that token's score, ties to the smaller left symbol index; a popped pair is stale and
 *     skipped when either side was consumed or its byte size changed since it was queued;
 *     after a merge the pairs (prev, left) and (left, next) are queued;
 *   - output: each remaining symbol's token, else one byte-fallback token per byte.
 * llama.cpp also keeps a "rev_merge" map to re-split a symbol that is not a token; it is never
 * used, because a symbol is either a single character or the result of a merge (which is a
 * token), and no pair text can equal a single character (a character's length is fixed by its
 * first byte, which a pair shares with its shorter left part). lorac therefore omits it.
 */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct spm_sym {
    size_t off, n;      /* bytes [off, off+n) of the escaped text; n == 0: merged away */
    int64_t prev, next; /* -1 = none */
} spm_sym;

typedef struct spm_bigram {
    float score;
    int64_t left, right;
    size_t size; /* byte size of the pair when queued */
} spm_bigram;

typedef struct spm_heap {
    spm_bigram *v;
    size_t n, cap;
} spm_heap;

/* True when a should be popped before b. */
static inline bool bigram_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static lc_status heap_push(spm_heap *h, spm_bigram x) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        spm_bigram *v = realloc(h->v, cap * sizeof *v);
        if (!v) return lc_error(LC_ERR_NOMEM, "lc_tokenize: out of memory for the SPM merge queue");
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&x, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
    return LC_OK;
}

static spm_bigram heap_pop(spm_heap *h) {
    spm_bigram top = h->v[0];
    spm_bigram x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bigram_before(&h->v[c], &x)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = x;
    return top;
}

static lc_status try_add_bigram(const lc_tokenizer *tok, const char *buf, const spm_sym *sym, int64_t left,
                                int64_t right, spm_heap *h) {
    if (left < 0 || right < 0) return LC_OK;
    size_t size = sym[left].n + sym[right].n; /* adjacent symbols are contiguous in buf */
    int32_t id = lc_tok_find(tok, buf + sym[left].off, size);
    if (id == LC_TOKEN_NULL) return LC_OK;
    return heap_push(h, (spm_bigram){tok->scores[id], left, right, size});
}

static size_t utf8_len(uint8_t lead) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

static lc_status spm_encode(const lc_tokenizer *tok, const char *text, size_t len, bool after_special,
                            lc_tok_ids *out) {
    bool prefix = tok->add_space_prefix && after_special;
    size_t spaces = prefix ? 1 : 0;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    size_t elen = len + (prefix ? 1 : 0) + 2 * spaces;
    if (elen < len) return lc_error(LC_ERR_NOMEM, "lc_tokenize: text fragment of %zu bytes is too large", len);

    char *buf = malloc(elen ? elen : 1);
    spm_sym *sym = malloc((elen ? elen : 1) * sizeof *sym);
    spm_heap heap = {0};
    lc_status st = LC_OK;
    if (!buf || !sym) {
        st = lc_error(LC_ERR_NOMEM, "lc_tokenize: out of memory for a text fragment of %zu bytes", len);
        goto done;
    }

    /* escape: " " prefix, 0x20 -> U+2581 */
    size_t e = 0;
    for (size_t i = 0; i < len + (prefix ? 1 : 0); i++) {
        char c = prefix ? (i == 0 ? ' ' : text[i - 1]) : text[i];
        if (c == ' ') {
            buf[e++] = (char)0xE2;
            buf[e++] = (char)0x96;
            buf[e++] = (char)0x81;
        } else {
            buf[e++] = c;
        }
    }

    /* symbols: one per UTF-8 character */
    int64_t ns = 0;
    for (size_t off = 0; off < elen;) {
        size_t n = utf8_len((uint8_t)buf[off]);
        if (n > elen - off) n = elen - off;
        sym[ns] = (spm_sym){off, n, ns - 1, (off + n == elen) ? -1 : ns + 1};
        off += n;
        ns++;
    }

    for (int64_t i = 1; i < ns && !st; i++) st = try_add_bigram(tok, buf, sym, i - 1, i, &heap);

    while (heap.n && !st) {
        spm_bigram bg = heap_pop(&heap);
        spm_sym *l = &sym[bg.left], *r = &sym[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = bg.left;
        st = try_add_bigram(tok, buf, sym, l->prev, bg.left, &heap);
        if (!st) st = try_add_bigram(tok, buf, sym, bg.left, l->next, &heap);
    }

    for (int64_t i = ns ? 0 : -1; i != -1 && !st; i = sym[i].next) {
        int32_t id = lc_tok_find(tok, buf + sym[i].off, sym[i].n);
        if (id != LC_TOKEN_NULL) {
            st = lc_tok_ids_push(out, id);
            continue;
        }
        for (size_t j = 0; j < sym[i].n && !st; j++) {
            uint8_t byte = (uint8_t)buf[sym[i].off + j];
            int32_t bid = tok->byte_token[byte];
            if (bid == LC_TOKEN_NULL)
                st = lc_error(LC_ERR_FORMAT,
                              "lc_tokenize: byte 0x%02X has no <0x%02X> token, no 1-byte token and the vocabulary "
                              "has no unk_id",
                              byte, byte);
            else
                st = lc_tok_ids_push(out, bid);
        }
    }

done:
    free(heap.v);
    free(sym);
    free(buf);
    return st;
}

/* NORMAL: ▁ -> ' '; BYTE: the byte. */
static lc_status spm_piece(const lc_tokenizer *tok, int32_t id, lc_tok_bytes *out) {
    if (tok->types[id] == LC_TOKEN_TYPE_BYTE) {
        char c = (char)tok->byte_of[id];
        return lc_tok_bytes_append(out, &c, 1);
    }
    const char *s = lc_tok_text(tok, id);
    size_t n = tok->lens[id], start = 0;
    lc_status st = LC_OK;
    for (size_t i = 0; i + 2 < n && !st; i++) {
        if ((uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 && (uint8_t)s[i + 2] == 0x81) {
            st = lc_tok_bytes_append(out, s + start, i - start);
            if (!st) st = lc_tok_bytes_append(out, " ", 1);
            start = i + 3;
            i += 2;
        }
    }
    if (!st) st = lc_tok_bytes_append(out, s + start, n - start);
    return st;
}

const lc_tok_vtable lc_tok_spm_vtable = {
    .name = "spm",
    .encode = spm_encode,
    .piece = spm_piece,
    .destroy = NULL,
};

lc_tokenizer_spm_opts lc_tokenizer_spm_opts_default(void) {
    return (lc_tokenizer_spm_opts){
        .bos_id = 1,
        .eos_id = 2,
        .unk_id = 0,
        .pad_id = LC_TOKEN_NULL,
        .add_bos = true,
        .add_eos = false,
        .add_space_prefix = true,
    };
}

static lc_status check_id(int32_t id, int32_t n_vocab, const char *field) {
    if (id < LC_TOKEN_NULL || id >= n_vocab)
        return lc_error(LC_ERR_INVALID_ARG, "lc_tokenizer_new_spm: opts.%s = %d is outside [-1, n_vocab=%d)", field,
                        (int)id, (int)n_vocab);
    return LC_OK;
}

lc_status lc_tokenizer_new_spm(const char *const *tokens, const float *scores, const int32_t *types,
                               int32_t n_vocab, const lc_tokenizer_spm_opts *opts, lc_tokenizer **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_tokenizer_new_spm: out is NULL");
    *out = NULL;
    if (!tokens) return lc_error(LC_ERR_INVALID_ARG, "lc_tokenizer_new_spm: tokens is NULL");
    if (n_vocab < 1) return lc_error(LC_ERR_INVALID_ARG, "lc_tokenizer_new_spm: n_vocab = %d < 1", (int)n_vocab);
    lc_tokenizer_spm_opts o = opts ? *opts : lc_tokenizer_spm_opts_default();
    lc_status st;
    if ((st = check_id(o.bos_id, n_vocab, "bos_id")) || (st = check_id(o.eos_id, n_vocab, "eos_id")) ||
        (st = check_id(o.unk_id, n_vocab, "unk_id")) || (st = check_id(o.pad_id, n_vocab, "pad_id")))
        return st;
    if (o.add_bos && o.bos_id == LC_TOKEN_NULL)
        return lc_error(LC_ERR_INVALID_ARG, "lc_tokenizer_new_spm: opts.add_bos is set but opts.bos_id is -1");
    if (o.add_eos && o.eos_id == LC_TOKEN_NULL)
        return lc_error(LC_ERR_INVALID_ARG, "lc_tokenizer_new_spm: opts.add_eos is set but opts.eos_id is -1");

    lc_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return lc_error(LC_ERR_NOMEM, "lc_tokenizer_new_spm: out of memory");
    tok->kind = LC_TOKENIZER_SPM;
    tok->vt = &lc_tok_spm_vtable;
    tok->bos = o.bos_id;
    tok->eos = o.eos_id;
    tok->unk = o.unk_id;
    tok->pad = o.pad_id;
    tok->add_bos = o.add_bos;
    tok->add_eos = o.add_eos;
    tok->add_space_prefix = o.add_space_prefix;
    st = lc_tok_vocab_init(tok, tokens, scores, types, n_vocab, "lc_tokenizer_new_spm");
    if (st) {
        lc_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return LC_OK;
}
