/* lorac — tokenizer interface: vocabulary, special-token partition, BOS/EOS, decoding, and
 * dispatch to the algorithm of each kind (see lorac/tokenizer.h, tokenizer_internal.h).
 *
 * Source of the behaviour: llama.cpp src/llama-vocab.cpp (tokenizer_st_partition, tokenize,
 * token_to_piece, detokenize) as summarised in reference/formats.md §4; the deviations are
 * documented in tokenizer.h.
 */
#include "tokenizer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable arrays ----------------------------------------------------------------------- */

lc_status lc_tok_ids_push(lc_tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(int32_t)) return lc_error(LC_ERR_NOMEM, "lc_tokenize: id array too large");
        int32_t *v = realloc(a->v, cap * sizeof(int32_t));
        if (!v) return lc_error(LC_ERR_NOMEM, "lc_tokenize: out of memory growing the id array to %zu ids", cap);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return LC_OK;
}

lc_status lc_tok_bytes_append(lc_tok_bytes *b, const char *s, size_t n) {
    if (n > SIZE_MAX - 1 - b->n) return lc_error(LC_ERR_NOMEM, "lc_detokenize: text too large");
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap = (cap > SIZE_MAX / 2) ? b->n + n + 1 : cap * 2;
        char *p = realloc(b->p, cap);
        if (!p) return lc_error(LC_ERR_NOMEM, "lc_detokenize: out of memory growing the text to %zu bytes", cap);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return LC_OK;
}

/* ---- text -> id hash (FNV-1a, open addressing with linear probing) ----------------------- */

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int32_t lc_tok_find(const lc_tokenizer *tok, const char *text, size_t len) {
    size_t i = (size_t)fnv1a(text, len) & tok->slot_mask;
    for (;;) {
        int32_t id = tok->slots[i];
        if (id < 0) return LC_TOKEN_NULL;
        if (tok->lens[id] == len && memcmp(lc_tok_text(tok, id), text, len) == 0) return id;
        i = (i + 1) & tok->slot_mask;
    }
}

/* Insert id; a token with the same text is replaced (the larger id wins, as in llama.cpp). */
static void hash_insert(lc_tokenizer *tok, int32_t id) {
    const char *text = lc_tok_text(tok, id);
    size_t len = tok->lens[id];
    size_t i = (size_t)fnv1a(text, len) & tok->slot_mask;
    for (;;) {
        int32_t cur = tok->slots[i];
        if (cur < 0 || (tok->lens[cur] == len && memcmp(lc_tok_text(tok, cur), text, len) == 0)) {
            tok->slots[i] = id;
            return;
        }
        i = (i + 1) & tok->slot_mask;
    }
}

/* ---- vocabulary ---------------------------------------------------------------------------- */

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

typedef struct special_key {
    uint32_t len;
    int32_t id;
} special_key;

static int special_cmp(const void *pa, const void *pb) {
    const special_key *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longer first */
    return (a->id > b->id) - (a->id < b->id);               /* then smaller id */
}

static lc_status trie_new_node(lc_tokenizer *tok, int32_t *cap, uint8_t byte, int32_t *out, const char *fn) {
    if (tok->n_trie == *cap) {
        int32_t ncap = *cap ? *cap * 2 : 256;
        lc_tok_trie_node *t = realloc(tok->trie, (size_t)ncap * sizeof *t);
        if (!t) return lc_error(LC_ERR_NOMEM, "%s: out of memory building the special-token trie", fn);
        tok->trie = t;
        *cap = ncap;
    }
    lc_tok_trie_node *nd = &tok->trie[tok->n_trie];
    nd->first_child = nd->next_sibling = -1;
    nd->rank_all = nd->rank_user = -1;
    nd->byte = byte;
    *out = tok->n_trie++;
    return LC_OK;
}

static lc_status build_specials(lc_tokenizer *tok, const char *fn) {
    int32_t count = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        uint8_t t = tok->types[i];
        if ((t == LC_TOKEN_TYPE_CONTROL || t == LC_TOKEN_TYPE_USER_DEFINED || t == LC_TOKEN_TYPE_UNKNOWN) &&
            tok->lens[i] > 0)
            count++;
    }
    for (int b = 0; b < 256; b++) tok->root_child[b] = -1;
    int32_t cap = 0, root;
    lc_status st = trie_new_node(tok, &cap, 0, &root, fn);
    if (st) return st;
    if (count == 0) return LC_OK;

    special_key *keys = malloc((size_t)count * sizeof *keys);
    tok->special = malloc((size_t)count * sizeof(int32_t));
    if (!keys || !tok->special) {
        free(keys);
        return lc_error(LC_ERR_NOMEM, "%s: out of memory listing %d special tokens", fn, (int)count);
    }
    int32_t k = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        uint8_t t = tok->types[i];
        if ((t == LC_TOKEN_TYPE_CONTROL || t == LC_TOKEN_TYPE_USER_DEFINED || t == LC_TOKEN_TYPE_UNKNOWN) &&
            tok->lens[i] > 0)
            keys[k++] = (special_key){tok->lens[i], i};
    }
    qsort(keys, (size_t)count, sizeof *keys, special_cmp);
    for (int32_t r = 0; r < count; r++) tok->special[r] = keys[r].id;
    tok->n_special = count;
    free(keys);

    for (int32_t r = 0; r < count; r++) {
        int32_t id = tok->special[r];
        const uint8_t *s = (const uint8_t *)lc_tok_text(tok, id);
        uint32_t len = tok->lens[id];
        int32_t node = tok->root_child[s[0]];
        if (node < 0) {
            if ((st = trie_new_node(tok, &cap, s[0], &node, fn))) return st;
            tok->root_child[s[0]] = node;
        }
        for (uint32_t j = 1; j < len; j++) {
            int32_t child = tok->trie[node].first_child;
            while (child >= 0 && tok->trie[child].byte != s[j]) child = tok->trie[child].next_sibling;
            if (child < 0) {
                if ((st = trie_new_node(tok, &cap, s[j], &child, fn))) return st;
                tok->trie[child].next_sibling = tok->trie[node].first_child;
                tok->trie[node].first_child = child;
            }
            node = child;
        }
        if (tok->trie[node].rank_all < 0) tok->trie[node].rank_all = r;
        if (tok->types[id] == LC_TOKEN_TYPE_USER_DEFINED && tok->trie[node].rank_user < 0)
            tok->trie[node].rank_user = r;
    }
    return LC_OK;
}

lc_status lc_tok_vocab_init(lc_tokenizer *tok, const char *const *tokens, const float *scores,
                            const int32_t *types, int32_t n_vocab, const char *fn) {
    size_t n = (size_t)n_vocab;
    tok->n_vocab = n_vocab;
    tok->offs = malloc(n * sizeof *tok->offs);
    tok->lens = malloc(n * sizeof *tok->lens);
    tok->scores = malloc(n * sizeof *tok->scores);
    tok->types = malloc(n);
    tok->byte_of = calloc(n, 1);
    if (!tok->offs || !tok->lens || !tok->scores || !tok->types || !tok->byte_of)
        return lc_error(LC_ERR_NOMEM, "%s: out of memory for a vocabulary of %d tokens", fn, (int)n_vocab);

    size_t pool_size = 0;
    for (size_t i = 0; i < n; i++) {
        if (!tokens[i]) return lc_error(LC_ERR_FORMAT, "%s: tokens[%zu] is NULL", fn, i);
        size_t len = strlen(tokens[i]);
        if (len > UINT32_MAX || pool_size > SIZE_MAX - len - 1)
            return lc_error(LC_ERR_FORMAT, "%s: tokens[%zu] is too long (%zu bytes)", fn, i, len);
        tok->offs[i] = pool_size;
        tok->lens[i] = (uint32_t)len;
        pool_size += len + 1;
    }
    tok->pool = malloc(pool_size);
    if (!tok->pool) return lc_error(LC_ERR_NOMEM, "%s: out of memory for %zu bytes of token text", fn, pool_size);
    for (size_t i = 0; i < n; i++) memcpy(tok->pool + tok->offs[i], tokens[i], tok->lens[i] + 1u);

    for (size_t i = 0; i < n; i++) {
        float s = scores ? scores[i] : 0.0f;
        if (isnan(s)) return lc_error(LC_ERR_FORMAT, "%s: scores[%zu] is NaN", fn, i);
        tok->scores[i] = s;
        int32_t t = types ? types[i] : LC_TOKEN_TYPE_NORMAL;
        if (t < LC_TOKEN_TYPE_UNDEFINED || t > LC_TOKEN_TYPE_BYTE)
            return lc_error(LC_ERR_FORMAT, "%s: types[%zu] = %d is not a token type (0..6)", fn, i, (int)t);
        tok->types[i] = (uint8_t)t;
        if (t == LC_TOKEN_TYPE_BYTE) {
            const char *s6 = tokens[i];
            int hi = tok->lens[i] == 6 ? hex_value(s6[3]) : -1, lo = tok->lens[i] == 6 ? hex_value(s6[4]) : -1;
            if (hi < 0 || lo < 0 || memcmp(s6, "<0x", 3) != 0 || s6[5] != '>')
                return lc_error(LC_ERR_FORMAT, "%s: tokens[%zu] = \"%.40s\" has type BYTE but is not spelled <0xXX>",
                                fn, i, s6);
            tok->byte_of[i] = (uint8_t)(hi * 16 + lo);
        }
    }

    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    tok->slots = malloc(cap * sizeof *tok->slots);
    if (!tok->slots) return lc_error(LC_ERR_NOMEM, "%s: out of memory for the token hash (%zu slots)", fn, cap);
    for (size_t i = 0; i < cap; i++) tok->slots[i] = -1;
    tok->slot_mask = cap - 1;
    for (int32_t i = 0; i < n_vocab; i++) hash_insert(tok, i);

    lc_status st = build_specials(tok, fn);
    if (st) return st;

    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        int32_t id = lc_tok_find(tok, name, 6);
        if (id == LC_TOKEN_NULL) {
            char one = (char)b;
            id = lc_tok_find(tok, &one, 1);
        }
        if (id == LC_TOKEN_NULL) id = tok->unk;
        tok->byte_token[b] = id;
    }
    return LC_OK;
}

void lc_tokenizer_free(lc_tokenizer *tok) {
    if (!tok) return;
    if (tok->vt && tok->vt->destroy) tok->vt->destroy(tok);
    free(tok->pool);
    free(tok->offs);
    free(tok->lens);
    free(tok->scores);
    free(tok->types);
    free(tok->byte_of);
    free(tok->slots);
    free(tok->special);
    free(tok->trie);
    free(tok);
}

/* ---- accessors ----------------------------------------------------------------------------- */

lc_tokenizer_kind lc_tokenizer_get_kind(const lc_tokenizer *tok) { return tok->kind; }
int32_t lc_tokenizer_n_vocab(const lc_tokenizer *tok) { return tok->n_vocab; }
int32_t lc_tokenizer_bos(const lc_tokenizer *tok) { return tok->bos; }
int32_t lc_tokenizer_eos(const lc_tokenizer *tok) { return tok->eos; }
int32_t lc_tokenizer_unk(const lc_tokenizer *tok) { return tok->unk; }
int32_t lc_tokenizer_pad(const lc_tokenizer *tok) { return tok->pad; }
bool lc_tokenizer_add_bos(const lc_tokenizer *tok) { return tok->add_bos; }
bool lc_tokenizer_add_eos(const lc_tokenizer *tok) { return tok->add_eos; }
bool lc_tokenizer_add_space_prefix(const lc_tokenizer *tok) { return tok->add_space_prefix; }

const char *lc_tokenizer_token_text(const lc_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) return NULL;
    if (len) *len = tok->lens[id];
    return lc_tok_text(tok, id);
}

float lc_tokenizer_token_score(const lc_tokenizer *tok, int32_t id) {
    return (id < 0 || id >= tok->n_vocab) ? 0.0f : tok->scores[id];
}

lc_token_type lc_tokenizer_token_type(const lc_tokenizer *tok, int32_t id) {
    return (id < 0 || id >= tok->n_vocab) ? LC_TOKEN_TYPE_UNDEFINED : (lc_token_type)tok->types[id];
}

int32_t lc_tokenizer_find(const lc_tokenizer *tok, const char *text, size_t len) {
    if (!tok || (!text && len)) return LC_TOKEN_NULL;
    return lc_tok_find(tok, text ? text : "", len);
}

/* ---- special-token partition --------------------------------------------------------------- */

/* A piece of the input: raw text (id < 0) or one special token (id >= 0). */
typedef struct tok_seg {
    size_t off, len;
    int32_t id;
} tok_seg;

typedef struct tok_segs {
    tok_seg *v;
    size_t n, cap;
} tok_segs;

static lc_status segs_push(tok_segs *s, size_t off, size_t len, int32_t id) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        tok_seg *v = realloc(s->v, cap * sizeof *v);
        if (!v) return lc_error(LC_ERR_NOMEM, "lc_tokenize: out of memory splitting special tokens");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (tok_seg){off, len, id};
    return LC_OK;
}

/* First offset of needle[0..m) in hay[0..hn), or SIZE_MAX. m >= 1. */
static size_t find_bytes(const char *hay, size_t hn, const char *needle, size_t m) {
    if (m > hn) return SIZE_MAX;
    const char *p = hay, *end = hay + (hn - m) + 1; /* candidate starts lie in [hay, end) */
    while (p < end) {
        p = memchr(p, needle[0], (size_t)(end - p));
        if (!p) return SIZE_MAX;
        if (memcmp(p, needle, m) == 0) return (size_t)(p - hay);
        p++;
    }
    return SIZE_MAX;
}

/* Split text into raw and special segments exactly as llama.cpp's tokenizer_st_partition: for
 * each special token in rank order (longest first), cut every leftmost non-overlapping
 * occurrence out of the segments that are still raw. Only the special tokens that occur in the
 * text at all are visited (found in one pass with the trie), which keeps the cost at
 * O(len * (max special length + number of distinct specials present)). */
static lc_status partition(const lc_tokenizer *tok, const char *text, size_t len, bool parse_special,
                           tok_segs *out) {
    out->n = 0;
    lc_status st = segs_push(out, 0, len, -1);
    if (st || tok->n_special == 0 || len == 0) return st;

    uint8_t *present = calloc((size_t)tok->n_special, 1);
    if (!present) return lc_error(LC_ERR_NOMEM, "lc_tokenize: out of memory");
    const uint8_t *u = (const uint8_t *)text;
    size_t n_present = 0;
    for (size_t pos = 0; pos < len; pos++) {
        int32_t node = tok->root_child[u[pos]];
        size_t q = pos;
        while (node >= 0) {
            const lc_tok_trie_node *nd = &tok->trie[node];
            int32_t r = parse_special ? nd->rank_all : nd->rank_user;
            if (r >= 0 && !present[r]) {
                present[r] = 1;
                n_present++;
            }
            if (++q >= len) break;
            int32_t child = nd->first_child;
            while (child >= 0 && tok->trie[child].byte != u[q]) child = tok->trie[child].next_sibling;
            node = child;
        }
    }

    tok_segs next = {0};
    for (int32_t r = 0; r < tok->n_special && n_present > 0 && !st; r++) {
        if (!present[r]) continue;
        n_present--;
        int32_t sid = tok->special[r];
        const char *s = lc_tok_text(tok, sid);
        size_t m = tok->lens[sid];
        next.n = 0;
        for (size_t k = 0; k < out->n && !st; k++) {
            tok_seg g = out->v[k];
            if (g.id >= 0) {
                st = segs_push(&next, g.off, g.len, g.id);
                continue;
            }
            size_t off = g.off, rem = g.len;
            while (!st) {
                size_t at = find_bytes(text + off, rem, s, m);
                if (at == SIZE_MAX) {
                    if (rem) st = segs_push(&next, off, rem, -1);
                    break;
                }
                if (at) st = segs_push(&next, off, at, -1);
                if (!st) st = segs_push(&next, off + at, m, sid);
                off += at + m;
                rem -= at + m;
            }
        }
        tok_segs t = *out;
        *out = next;
        next = t;
    }
    free(next.v);
    free(present);
    return st;
}

/* ---- encode -------------------------------------------------------------------------------- */

lc_status lc_tokenize(const lc_tokenizer *tok, const char *text, size_t len, bool add_special,
                      bool parse_special, int32_t **ids, size_t *n) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!tok || !ids || !n) return lc_error(LC_ERR_INVALID_ARG, "lc_tokenize: tok, ids and n must be non-NULL");
    if (!text && len) return lc_error(LC_ERR_INVALID_ARG, "lc_tokenize: text is NULL but len = %zu", len);

    tok_segs segs = {0};
    lc_tok_ids out = {0};
    lc_status st = LC_OK;
    if (len) st = partition(tok, text, len, parse_special, &segs);

    bool add_bos = add_special && tok->add_bos;
    bool skip_bos = add_bos; /* drop BOS tokens parsed from the very start of the text */
    bool after_special = true;
    bool ends_with_eos = false;
    if (!st && add_bos) st = lc_tok_ids_push(&out, tok->bos);
    for (size_t k = 0; k < segs.n && !st; k++) {
        const tok_seg *g = &segs.v[k];
        if (g->id >= 0) {
            if (skip_bos && g->id == tok->bos) continue;
            skip_bos = false;
            st = lc_tok_ids_push(&out, g->id);
            after_special = true;
            ends_with_eos = (g->id == tok->eos);
        } else {
            skip_bos = false;
            st = tok->vt->encode(tok, text + g->off, g->len, after_special, &out);
            after_special = false;
            ends_with_eos = false;
        }
    }
    if (!st && add_special && tok->add_eos && !ends_with_eos) st = lc_tok_ids_push(&out, tok->eos);
    if (!st && !out.v) {
        out.v = malloc(sizeof(int32_t));
        if (!out.v) st = lc_error(LC_ERR_NOMEM, "lc_tokenize: out of memory");
    }
    free(segs.v);
    if (st) {
        free(out.v);
        return st;
    }
    *ids = out.v;
    *n = out.n;
    return LC_OK;
}

/* ---- decode -------------------------------------------------------------------------------- */

static bool is_special_type(uint8_t t) {
    return t == LC_TOKEN_TYPE_CONTROL || t == LC_TOKEN_TYPE_UNKNOWN || t == LC_TOKEN_TYPE_USER_DEFINED;
}

/* Append the piece of `id` (already range-checked). */
static lc_status append_piece(const lc_tokenizer *tok, int32_t id, bool show_special, lc_tok_bytes *b) {
    switch ((lc_token_type)tok->types[id]) {
    case LC_TOKEN_TYPE_CONTROL:
    case LC_TOKEN_TYPE_UNKNOWN:
        return show_special ? lc_tok_bytes_append(b, lc_tok_text(tok, id), tok->lens[id]) : LC_OK;
    case LC_TOKEN_TYPE_USER_DEFINED:
        return lc_tok_bytes_append(b, lc_tok_text(tok, id), tok->lens[id]);
    case LC_TOKEN_TYPE_NORMAL:
    case LC_TOKEN_TYPE_BYTE:
        return tok->vt->piece(tok, id, b);
    case LC_TOKEN_TYPE_UNUSED:
    case LC_TOKEN_TYPE_UNDEFINED:
    default:
        return LC_OK;
    }
}

lc_status lc_token_to_piece(const lc_tokenizer *tok, int32_t id, bool show_special, char *buf,
                            size_t cap, size_t *len) {
    if (!tok || !len) return lc_error(LC_ERR_INVALID_ARG, "lc_token_to_piece: tok and len must be non-NULL");
    *len = 0;
    if (id < 0 || id >= tok->n_vocab)
        return lc_error(LC_ERR_INVALID_ARG, "lc_token_to_piece: id %d is outside [0, n_vocab=%d)", (int)id,
                        (int)tok->n_vocab);
    if (!buf && cap) return lc_error(LC_ERR_INVALID_ARG, "lc_token_to_piece: buf is NULL but cap = %zu", cap);
    lc_tok_bytes b = {0};
    lc_status st = append_piece(tok, id, show_special, &b);
    if (st) {
        free(b.p);
        return st;
    }
    *len = b.n;
    if (b.n > cap) {
        free(b.p);
        return lc_error(LC_ERR_INVALID_ARG, "lc_token_to_piece: buffer of %zu bytes is too small for token %d (%zu bytes)",
                        cap, (int)id, *len);
    }
    if (b.n) memcpy(buf, b.p, b.n);
    if (b.n < cap) buf[b.n] = '\0';
    free(b.p);
    return LC_OK;
}

/* End of a run of BYTE tokens that starts at b->p[start]: the bytes E2 96 81 (U+2581, an
 * escaped space that a truncated UTF-8 sequence swallowed, or the escaped space itself when "▁"
 * is no token) become 0x20, then the pending space prefix is removed. */
static void finish_byte_run(lc_tok_bytes *b, size_t start, bool strip) {
    size_t w = start;
    for (size_t r = start; r < b->n;) {
        if (r + 2 < b->n && (uint8_t)b->p[r] == 0xE2 && (uint8_t)b->p[r + 1] == 0x96 && (uint8_t)b->p[r + 2] == 0x81) {
            b->p[w++] = ' ';
            r += 3;
        } else {
            b->p[w++] = b->p[r++];
        }
    }
    b->n = w;
    if (strip && b->n > start && b->p[start] == ' ') {
        memmove(b->p + start, b->p + start + 1, b->n - start - 1);
        b->n--;
    }
    b->p[b->n] = '\0';
}

lc_status lc_detokenize(const lc_tokenizer *tok, const int32_t *ids, size_t n, bool show_special,
                        char **text, size_t *len) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!tok || !text || !len) return lc_error(LC_ERR_INVALID_ARG, "lc_detokenize: tok, text and len must be non-NULL");
    if (!ids && n) return lc_error(LC_ERR_INVALID_ARG, "lc_detokenize: ids is NULL but n = %zu", n);
    lc_tok_bytes b = {0};
    lc_status st = lc_tok_bytes_append(&b, "", 0);
    bool strip = tok->add_space_prefix; /* a space prefix is pending removal */
    bool in_run = false, run_strip = false;
    size_t run_start = 0;
    for (size_t i = 0; i < n && !st; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->n_vocab) {
            st = lc_error(LC_ERR_INVALID_ARG, "lc_detokenize: ids[%zu] = %d is outside [0, n_vocab=%d)", i, (int)id,
                          (int)tok->n_vocab);
            break;
        }
        uint8_t type = tok->types[id];
        if (type == LC_TOKEN_TYPE_BYTE && tok->kind == LC_TOKENIZER_SPM) {
            if (!in_run) {
                in_run = true;
                run_start = b.n;
                run_strip = strip;
                strip = false;
            }
            st = append_piece(tok, id, show_special, &b);
            continue;
        }
        if (in_run) {
            finish_byte_run(&b, run_start, run_strip);
            in_run = false;
        }
        if (is_special_type(type)) {
            st = append_piece(tok, id, show_special, &b);
            strip = tok->add_space_prefix;
            continue;
        }
        size_t start = b.n;
        st = append_piece(tok, id, show_special, &b);
        if (!st && strip && b.n > start && b.p[start] == ' ') {
            memmove(b.p + start, b.p + start + 1, b.n - start - 1);
            b.n--;
            b.p[b.n] = '\0';
        }
        strip = false;
    }
    if (!st && in_run) finish_byte_run(&b, run_start, run_strip);
    if (st) {
        free(b.p);
        return st;
    }
    *text = b.p;
    *len = b.n;
    return LC_OK;
}
