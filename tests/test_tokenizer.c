/* Tests of the tokenizer (lorac/tokenizer.h, core/src/tokenizer.c, core/src/tokenizer_spm.c).
 *
 * Reference ids come from tests/fixtures/tokenizer_gemma3.txt, made by
 * tests/tools/make_tokenizer_fixture.py with two independent tokenizers (Hugging Face
 * transformers' GGUF tokenizer and Google's sentencepiece library) on the Gemma 3 270M
 * vocabulary; its header documents the format. The fixture holds a reduced vocabulary (every
 * token that can take part in tokenizing the test texts); the other ids are filled here with
 * UNUSED placeholders so ids and n_vocab are those of the full model.
 * The remaining cases use hand-made tiny vocabularies whose right answer is worked out by hand
 * in the comments (merge order, ties, stale queue entries, byte fallback, special tokens).
 * When LORAC_TEST_MODEL names the Gemma 3 GGUF, the fixture cases are also run against the full
 * vocabulary read from the file by a minimal GGUF reader below (independent of core/src/gguf.c).
 */
#include <check.h>

#include "common/lt_suite.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lorac/tokenizer.h"

#ifndef LORAC_FIXTURE_DIR
#error "LORAC_FIXTURE_DIR must name tests/fixtures"
#endif

#define FIXTURE_PATH LORAC_FIXTURE_DIR "/tokenizer_gemma3.txt"
#define PH_SLOT 32 /* bytes per placeholder token text */

/* ---- small helpers ------------------------------------------------------------------------ */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_tokenizer: out of host memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

static char *fmt_ids(const int32_t *ids, size_t n) {
    size_t cap = 16 + n * 12;
    char *s = xmalloc(cap);
    size_t k = (size_t)snprintf(s, cap, "[");
    for (size_t i = 0; i < n && k < cap; i++) k += (size_t)snprintf(s + k, cap - k, i ? " %d" : "%d", (int)ids[i]);
    if (k < cap) snprintf(s + k, cap - k, "]");
    return s;
}

/* Tokenize and compare with want[0..nwant). */
static void expect_ids(const lc_tokenizer *tok, const char *text, size_t len, bool add_special, bool parse_special,
                       const int32_t *want, size_t nwant, const char *what) {
    int32_t *ids = NULL;
    size_t n = 0;
    lc_status st = lc_tokenize(tok, text, len, add_special, parse_special, &ids, &n);
    ck_assert_msg(st == LC_OK, "%s: lc_tokenize failed: %s", what, lc_last_error());
    ck_assert_msg(ids != NULL, "%s: ids is NULL on success", what);
    bool same = (n == nwant) && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        char *g = fmt_ids(ids, n), *w = fmt_ids(want, nwant);
        fprintf(stderr, "%s (add_special=%d parse_special=%d):\n  got  %s\n  want %s\n", what, add_special,
                parse_special, g, w);
        free(g);
        free(w);
    }
    free(ids);
    ck_assert_msg(same, "%s: ids differ (add_special=%d parse_special=%d)", what, add_special, parse_special);
}

/* Decode and compare with want[0..wlen). */
static void expect_text(const lc_tokenizer *tok, const int32_t *ids, size_t n, bool show_special, const char *want,
                        size_t wlen, const char *what) {
    char *text = NULL;
    size_t len = 0;
    lc_status st = lc_detokenize(tok, ids, n, show_special, &text, &len);
    ck_assert_msg(st == LC_OK, "%s: lc_detokenize failed: %s", what, lc_last_error());
    ck_assert_msg(text != NULL && text[len] == '\0', "%s: result not NUL-terminated", what);
    bool same = len == wlen && memcmp(text, want, len) == 0;
    if (!same) fprintf(stderr, "%s: decoded %zu bytes \"%s\", want %zu bytes \"%.*s\"\n", what, len, text, wlen, (int)wlen, want);
    free(text);
    ck_assert_msg(same, "%s: decoded text differs", what);
}

/* detokenize(tokenize(text)) == text. */
static void expect_roundtrip(const lc_tokenizer *tok, const char *text, size_t len, bool add_special,
                             bool parse_special, bool show_special, const char *what) {
    int32_t *ids = NULL;
    size_t n = 0;
    ck_assert_msg(lc_tokenize(tok, text, len, add_special, parse_special, &ids, &n) == LC_OK, "%s: %s", what,
                  lc_last_error());
    expect_text(tok, ids, n, show_special, text, len, what);
    free(ids);
}

/* ---- tiny hand-made vocabularies ---------------------------------------------------------- */

typedef struct tv_entry {
    const char *text;
    float score;
    int32_t type;
} tv_entry;

/* Build a tokenizer from entries (ids 0..n-1), followed by the 256 BYTE tokens <0x00>..<0xFF>
 * (ids n..n+255) when with_bytes. */
static lc_tokenizer *tiny(const tv_entry *e, int n, bool with_bytes, const lc_tokenizer_spm_opts *opts) {
    int total = n + (with_bytes ? 256 : 0);
    const char **tokens = xmalloc((size_t)total * sizeof *tokens);
    float *scores = xmalloc((size_t)total * sizeof *scores);
    int32_t *types = xmalloc((size_t)total * sizeof *types);
    char (*bytes)[7] = xmalloc(256 * sizeof *bytes);
    for (int i = 0; i < n; i++) {
        tokens[i] = e[i].text;
        scores[i] = e[i].score;
        types[i] = e[i].type;
    }
    for (int b = 0; with_bytes && b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[n + b] = bytes[b];
        scores[n + b] = 0.0f;
        types[n + b] = LC_TOKEN_TYPE_BYTE;
    }
    lc_tokenizer *tok = NULL;
    lc_status st = lc_tokenizer_new_spm(tokens, scores, types, total, opts, &tok);
    free(tokens);
    free(scores);
    free(types);
    free(bytes);
    ck_assert_msg(st == LC_OK, "lc_tokenizer_new_spm: %s", lc_last_error());
    return tok;
}

/* Id of a token by its text (must exist). */
static int32_t idof(const lc_tokenizer *tok, const char *text) {
    int32_t id = lc_tokenizer_find(tok, text, strlen(text));
    ck_assert_msg(id != LC_TOKEN_NULL, "token \"%s\" not in the test vocabulary", text);
    return id;
}

static lc_tokenizer_spm_opts opts_plain(void) {
    lc_tokenizer_spm_opts o = lc_tokenizer_spm_opts_default();
    o.add_space_prefix = false;
    return o;
}

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define U2581 "\xe2\x96\x81"

/* ---- the Gemma 3 fixture ------------------------------------------------------------------ */

typedef struct fx_case {
    char name[64];
    bool roundtrip;
    char *text;
    size_t len;
    int32_t *plain, *special;
    size_t n_plain, n_special;
} fx_case;

typedef struct fixture {
    int32_t n_vocab, bos, eos, unk, pad;
    bool add_bos, add_eos, add_space_prefix;
    /* full-size arrays (placeholders where the fixture has no token) */
    char **tokens;
    float *scores;
    int32_t *types;
    char *placeholder_pool;
    fx_case *cases;
    int n_cases;
    int n_listed; /* tokens listed in the fixture */
} fixture;

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode a hex string into a malloc'd NUL-terminated buffer. */
static char *unhex(const char *h, size_t *len) {
    size_t n = strlen(h);
    while (n && (h[n - 1] == '\n' || h[n - 1] == '\r')) n--;
    ck_assert_msg(n % 2 == 0, "fixture: odd-length hex string");
    char *s = xmalloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int a = hexval(h[2 * i]), b = hexval(h[2 * i + 1]);
        ck_assert_msg(a >= 0 && b >= 0, "fixture: bad hex digit");
        s[i] = (char)(a * 16 + b);
    }
    s[n / 2] = '\0';
    if (len) *len = n / 2;
    return s;
}

/* Read one line into a growing buffer; false at end of file. */
static bool read_line(FILE *f, char **buf, size_t *cap) {
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (n + 2 > *cap) {
            *cap = *cap ? *cap * 2 : 1024;
            char *b = realloc(*buf, *cap);
            if (!b) abort();
            *buf = b;
        }
        if (c == '\n') break;
        (*buf)[n++] = (char)c;
    }
    if (c == EOF && n == 0) return false;
    (*buf)[n] = '\0';
    return true;
}

static int32_t *parse_ids(const char *line, const char *tag, size_t *n) {
    size_t tl = strlen(tag);
    ck_assert_msg(strncmp(line, tag, tl) == 0 && line[tl] == ' ', "fixture: expected a '%s' line, got '%.40s'", tag, line);
    char *end;
    const char *p = line + tl;
    long cnt = strtol(p, &end, 10);
    ck_assert_msg(end != p && cnt >= 0, "fixture: bad count on '%s' line", tag);
    int32_t *ids = xmalloc((size_t)cnt * sizeof *ids);
    p = end;
    for (long i = 0; i < cnt; i++) {
        long v = strtol(p, &end, 10);
        ck_assert_msg(end != p, "fixture: '%s' line has fewer than %ld ids", tag, cnt);
        ids[i] = (int32_t)v;
        p = end;
    }
    *n = (size_t)cnt;
    return ids;
}

static void fixture_load(fixture *fx) {
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(FIXTURE_PATH, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", FIXTURE_PATH);
    char *line = NULL;
    size_t cap = 0;
    ck_assert(read_line(f, &line, &cap));
    ck_assert_msg(strcmp(line, "lorac-tokenizer-fixture 1") == 0, "fixture: bad magic line '%s'", line);
    int n_vocab = -1, n_list = -1;
    long v;
    char key[64];
    while (read_line(f, &line, &cap)) {
        if (line[0] == '#' || line[0] == '\0') continue;
        if (sscanf(line, "%63s %ld", key, &v) != 2) continue;
        if (!strcmp(key, "n_vocab")) n_vocab = (int)v;
        else if (!strcmp(key, "bos")) fx->bos = (int32_t)v;
        else if (!strcmp(key, "eos")) fx->eos = (int32_t)v;
        else if (!strcmp(key, "unk")) fx->unk = (int32_t)v;
        else if (!strcmp(key, "pad")) fx->pad = (int32_t)v;
        else if (!strcmp(key, "add_bos")) fx->add_bos = v != 0;
        else if (!strcmp(key, "add_eos")) fx->add_eos = v != 0;
        else if (!strcmp(key, "add_space_prefix")) fx->add_space_prefix = v != 0;
        else if (!strcmp(key, "vocab")) {
            n_list = (int)v;
            break;
        }
    }
    ck_assert_msg(n_vocab > 0 && n_list > 0, "fixture: missing n_vocab or vocab");
    fx->n_vocab = n_vocab;
    fx->n_listed = n_list;
    fx->tokens = calloc((size_t)n_vocab, sizeof *fx->tokens);
    fx->scores = calloc((size_t)n_vocab, sizeof *fx->scores);
    fx->types = calloc((size_t)n_vocab, sizeof *fx->types);
    ck_assert(fx->tokens && fx->scores && fx->types);
    for (int k = 0; k < n_list; k++) {
        ck_assert_msg(read_line(f, &line, &cap), "fixture: vocabulary ends early");
        int id, type, off = 0;
        float score;
        ck_assert_msg(sscanf(line, "%d %d %f %n", &id, &type, &score, &off) == 3, "fixture: bad vocab line '%.60s'", line);
        ck_assert_msg(id >= 0 && id < n_vocab && !fx->tokens[id], "fixture: bad or repeated id %d", id);
        fx->tokens[id] = unhex(line + off, NULL);
        fx->scores[id] = score;
        fx->types[id] = type;
    }
    /* placeholders: UNUSED tokens whose text cannot occur in any test text */
    fx->placeholder_pool = xmalloc((size_t)n_vocab * PH_SLOT);
    for (int i = 0; i < n_vocab; i++) {
        if (fx->tokens[i]) continue;
        char *p = fx->placeholder_pool + (size_t)i * PH_SLOT;
        snprintf(p, PH_SLOT, "[lorac-unused-%d]", i);
        fx->tokens[i] = p;
        fx->scores[i] = 0.0f;
        fx->types[i] = LC_TOKEN_TYPE_UNUSED;
    }
    ck_assert(read_line(f, &line, &cap));
    ck_assert_msg(sscanf(line, "cases %d", &fx->n_cases) == 1 && fx->n_cases > 0, "fixture: bad cases line");
    fx->cases = calloc((size_t)fx->n_cases, sizeof *fx->cases);
    ck_assert(fx->cases);
    for (int c = 0; c < fx->n_cases; c++) {
        fx_case *k = &fx->cases[c];
        int rt, off = 0;
        ck_assert(read_line(f, &line, &cap));
        ck_assert_msg(sscanf(line, "case %63s %d %n", k->name, &rt, &off) == 2, "fixture: bad case line '%.60s'", line);
        k->roundtrip = rt != 0;
        k->text = unhex(line + off, &k->len);
        ck_assert(read_line(f, &line, &cap));
        k->plain = parse_ids(line, "plain", &k->n_plain);
        ck_assert(read_line(f, &line, &cap));
        k->special = parse_ids(line, "special", &k->n_special);
    }
    free(line);
    fclose(f);
}

static bool is_placeholder(const fixture *fx, int i) {
    return fx->tokens[i] >= fx->placeholder_pool && fx->tokens[i] < fx->placeholder_pool + (size_t)fx->n_vocab * PH_SLOT;
}

static void fixture_free(fixture *fx) {
    for (int i = 0; i < fx->n_vocab; i++)
        if (!is_placeholder(fx, i)) free(fx->tokens[i]);
    free(fx->tokens);
    free(fx->scores);
    free(fx->types);
    free(fx->placeholder_pool);
    for (int c = 0; c < fx->n_cases; c++) {
        free(fx->cases[c].text);
        free(fx->cases[c].plain);
        free(fx->cases[c].special);
    }
    free(fx->cases);
}

static lc_tokenizer *fixture_tokenizer(const fixture *fx) {
    lc_tokenizer_spm_opts o = {fx->bos, fx->eos, fx->unk, fx->pad, fx->add_bos, fx->add_eos, fx->add_space_prefix};
    lc_tokenizer *tok = NULL;
    lc_status st = lc_tokenizer_new_spm((const char *const *)fx->tokens, fx->scores, fx->types, fx->n_vocab, &o, &tok);
    ck_assert_msg(st == LC_OK, "fixture tokenizer: %s", lc_last_error());
    return tok;
}

static const fx_case *fixture_case(const fixture *fx, const char *name) {
    for (int c = 0; c < fx->n_cases; c++)
        if (!strcmp(fx->cases[c].name, name)) return &fx->cases[c];
    ck_abort_msg("fixture has no case '%s'", name);
    return NULL;
}

/* Every fixture case: ids with special parsing off and on, and with BOS added. */
static void check_fixture_cases(const fixture *fx, const lc_tokenizer *tok, const char *label) {
    char what[160];
    for (int c = 0; c < fx->n_cases; c++) {
        const fx_case *k = &fx->cases[c];
        snprintf(what, sizeof what, "%s/%s/plain", label, k->name);
        expect_ids(tok, k->text, k->len, false, false, k->plain, k->n_plain, what);
        snprintf(what, sizeof what, "%s/%s/special", label, k->name);
        expect_ids(tok, k->text, k->len, false, true, k->special, k->n_special, what);
        /* add_special: BOS in front; a BOS parsed from the start of the text is not repeated */
        const int32_t *sp = k->special;
        size_t nsp = k->n_special;
        while (nsp && sp[0] == fx->bos) sp++, nsp--;
        int32_t *want = xmalloc((nsp + 1) * sizeof *want);
        want[0] = fx->bos;
        memcpy(want + 1, sp, nsp * sizeof *want);
        snprintf(what, sizeof what, "%s/%s/add_special", label, k->name);
        expect_ids(tok, k->text, k->len, true, true, want, nsp + 1, what);
        free(want);
    }
}

START_TEST(test_fixture_ids) {
    fixture fx;
    fixture_load(&fx);
    ck_assert_int_eq(fx.n_vocab, 262144);
    lc_tokenizer *tok = fixture_tokenizer(&fx);
    ck_assert_int_eq(lc_tokenizer_n_vocab(tok), 262144);
    ck_assert_int_eq(lc_tokenizer_bos(tok), fx.bos);
    ck_assert_int_eq(lc_tokenizer_eos(tok), fx.eos);
    ck_assert_int_eq(lc_tokenizer_unk(tok), fx.unk);
    ck_assert_int_eq(lc_tokenizer_pad(tok), fx.pad);
    ck_assert(lc_tokenizer_add_bos(tok) == fx.add_bos);
    ck_assert(lc_tokenizer_add_eos(tok) == fx.add_eos);
    ck_assert(lc_tokenizer_add_space_prefix(tok) == fx.add_space_prefix);
    ck_assert_int_eq(lc_tokenizer_get_kind(tok), LC_TOKENIZER_SPM);
    check_fixture_cases(&fx, tok, "fixture");
    lc_tokenizer_free(tok);
    fixture_free(&fx);
}
END_TEST

START_TEST(test_fixture_roundtrip) {
    fixture fx;
    fixture_load(&fx);
    lc_tokenizer *tok = fixture_tokenizer(&fx);
    char what[160];
    for (int c = 0; c < fx.n_cases; c++) {
        const fx_case *k = &fx.cases[c];
        if (!k->roundtrip) continue;
        snprintf(what, sizeof what, "roundtrip/%s", k->name);
        expect_text(tok, k->plain, k->n_plain, false, k->text, k->len, what);
        expect_roundtrip(tok, k->text, k->len, true, true, false, what); /* BOS is hidden */
    }
    /* texts with control-token text: the text comes back when the pieces were not parsed as
     * special tokens, and with show_special when they were */
    static const char *const controls[] = {"chat", "bos_text", "control_mid"};
    for (int i = 0; i < N_OF(controls); i++) {
        const fx_case *k = fixture_case(&fx, controls[i]);
        snprintf(what, sizeof what, "roundtrip/%s/plain", k->name);
        expect_text(tok, k->plain, k->n_plain, false, k->text, k->len, what);
        snprintf(what, sizeof what, "roundtrip/%s/special+show", k->name);
        expect_text(tok, k->special, k->n_special, true, k->text, k->len, what);
    }
    const fx_case *k = fixture_case(&fx, "chat");
    static const char hidden[] = "user\nWhat is 2+2?\nmodel\n4\n";
    expect_text(tok, k->special, k->n_special, false, hidden, strlen(hidden), "roundtrip/chat/special hidden");
    /* documented exception: a literal U+2581 decodes as a space */
    k = fixture_case(&fx, "lower_one_eighth_block");
    expect_text(tok, k->plain, k->n_plain, false, "a b", 3, "roundtrip/U+2581");
    lc_tokenizer_free(tok);
    fixture_free(&fx);
}
END_TEST

/* Exactly one BOS, whatever the text starts with. */
START_TEST(test_one_bos) {
    fixture fx;
    fixture_load(&fx);
    lc_tokenizer *tok = fixture_tokenizer(&fx);
    const int32_t bos = fx.bos;
    static const char *const texts[] = {"<bos>hi", "<bos><bos>hi", "<bos>", "hi", "", " <bos>hi"};
    for (int i = 0; i < N_OF(texts); i++) {
        for (int ps = 0; ps < 2; ps++) {
            int32_t *ids = NULL;
            size_t n = 0;
            ck_assert_msg(lc_tokenize(tok, texts[i], strlen(texts[i]), true, ps, &ids, &n) == LC_OK, "%s",
                          lc_last_error());
            ck_assert_msg(n >= 1 && ids[0] == bos, "'%s' parse_special=%d: no BOS first", texts[i], ps);
            size_t nb = 0;
            for (size_t j = 0; j < n; j++) nb += ids[j] == bos;
            size_t want = (ps && i == 5) ? 2 : 1; /* " <bos>hi": the BOS is not at the start, kept */
            ck_assert_msg(nb == want, "'%s' parse_special=%d: %zu BOS tokens, want %zu", texts[i], ps, nb, want);
            free(ids);
        }
    }
    /* [bos, hi] for "<bos>hi" with parsing; without add_special the parsed BOS stays */
    int32_t hi = idof(tok, "hi");
    const int32_t w1[] = {bos, hi};
    expect_ids(tok, "<bos>hi", 7, true, true, w1, 2, "one_bos/<bos>hi");
    expect_ids(tok, "<bos>hi", 7, false, true, w1, 2, "one_bos/<bos>hi no add");
    expect_ids(tok, "hi", 2, true, false, w1, 2, "one_bos/hi");
    /* a BOS in the middle of the text is the user's: kept */
    int32_t a = idof(tok, "a"), b = idof(tok, "b");
    const int32_t w2[] = {bos, a, bos, b};
    expect_ids(tok, "a<bos>b", 7, true, true, w2, 4, "one_bos/middle");
    lc_tokenizer_free(tok);
    fixture_free(&fx);
}
END_TEST

/* Bytes that are not valid UTF-8 are tokenized without crashing, and come back unchanged. */
START_TEST(test_invalid_utf8) {
    fixture fx;
    fixture_load(&fx);
    lc_tokenizer *tok = fixture_tokenizer(&fx);
#define BYTES(lit) {lit, sizeof(lit) - 1}
    static const struct {
        const char *s;
        size_t n;
    } texts[] = {
        BYTES("\xff"),
        BYTES("\x80\x80\x80"),
        BYTES("abc\xc3"),          /* lead byte cut short by the end */
        BYTES("\xe2\x96"),         /* two thirds of U+2581 */
        BYTES("\xf0" "abc def"),   /* a 4-byte lead swallows the next 3 bytes */
        BYTES("x\xc3(y \xed\xa0\x80 z\xf8\x88\x80\x80\x80"),
        BYTES("\0nul\0 inside"),   /* NUL bytes are ordinary bytes */
        BYTES("\xf0 a"),            /* the lead byte swallows the escaped space E2 96 81 */
        BYTES("a\xc3 b \xe2  c"),  /* ... or its first byte, or two of them */
        BYTES("\xfd\xf7 \xd0 \xf8"),
    };
#undef BYTES
    char what[64];
    for (int i = 0; i < N_OF(texts); i++) {
        for (int ps = 0; ps < 2; ps++) {
            snprintf(what, sizeof what, "invalid_utf8[%d] parse_special=%d", i, ps);
            expect_roundtrip(tok, texts[i].s, texts[i].n, false, ps, false, what);
            expect_roundtrip(tok, texts[i].s, texts[i].n, true, ps, false, what);
        }
    }
    /* "\xf0abc" is one symbol of 4 bytes that is no token: four byte-fallback tokens */
    int32_t f0 = idof(tok, "<0xF0>"), x61 = idof(tok, "<0x61>"), x62 = idof(tok, "<0x62>"), x63 = idof(tok, "<0x63>");
    const int32_t want[] = {f0, x61, x62, x63};
    expect_ids(tok, "\xf0" "abc", 4, false, false, want, 4, "invalid_utf8/f0abc");
    /* "\xf0 " escapes to F0 E2 96 81: one 4-byte symbol, four byte tokens, decoded as "\xf0 " */
    const int32_t want3[] = {f0, idof(tok, "<0xE2>"), idof(tok, "<0x96>"), idof(tok, "<0x81>")};
    expect_ids(tok, "\xf0 ", 2, false, false, want3, 4, "invalid_utf8/f0 space");
    expect_text(tok, want3, 4, false, "\xf0 ", 2, "invalid_utf8/f0 space decode");
    /* a stray continuation byte is one character of its own */
    const int32_t want2[] = {idof(tok, "<0x80>"), idof(tok, "a")};
    expect_ids(tok, "\x80" "a", 2, false, false, want2, 2, "invalid_utf8/80a");
    lc_tokenizer_free(tok);
    fixture_free(&fx);
}
END_TEST

/* ---- tiny-vocabulary cases ---------------------------------------------------------------- */

/* Merges go highest score first, whatever the position. */
START_TEST(test_merge_order) {
    tv_entry e[] = {
        {"<unk>", 0, LC_TOKEN_TYPE_UNKNOWN}, {"<s>", 0, LC_TOKEN_TYPE_CONTROL}, {"</s>", 0, LC_TOKEN_TYPE_CONTROL},
        {"a", -1, 1}, {"b", -1, 1}, {"c", -1, 1}, {"d", -1, 1},
        {"ab", -5, 1}, {"bc", -2, 1}, {"cd", -3, 1}, {"abcd", -9, 1},
    };
    lc_tokenizer_spm_opts o = opts_plain();
    lc_tokenizer *tok = tiny(e, N_OF(e), false, &o);
    int32_t a = idof(tok, "a"), d = idof(tok, "d"), bc = idof(tok, "bc");
    /* "abcd": pairs ab(-5) bc(-2) cd(-3); bc wins; then (a,bc) and (bc,d) are not tokens: a bc d */
    const int32_t w1[] = {a, bc, d};
    expect_ids(tok, "abcd", 4, false, false, w1, 3, "merge_order/abcd");
    lc_tokenizer_free(tok);

    /* the same vocabulary with ab best: ab, then cd, then ab+cd = abcd */
    e[7].score = -1;
    tok = tiny(e, N_OF(e), false, &o);
    const int32_t w2[] = {idof(tok, "abcd")};
    expect_ids(tok, "abcd", 4, false, false, w2, 1, "merge_order/abcd2");
    /* and "bcd": bc(-2) beats cd(-3): bc d */
    const int32_t w3[] = {idof(tok, "bc"), idof(tok, "d")};
    expect_ids(tok, "bcd", 3, false, false, w3, 2, "merge_order/bcd");
    lc_tokenizer_free(tok);
}
END_TEST

/* Equal scores: the leftmost pair merges first. */
START_TEST(test_merge_ties) {
    tv_entry e[] = {
        {"<unk>", 0, LC_TOKEN_TYPE_UNKNOWN}, {"<s>", 0, LC_TOKEN_TYPE_CONTROL}, {"</s>", 0, LC_TOKEN_TYPE_CONTROL},
        {"a", -1, 1}, {"b", -1, 1}, {"c", -1, 1},
        {"aa", -2, 1}, {"ab", -3, 1}, {"bc", -3, 1},
    };
    lc_tokenizer_spm_opts o = opts_plain();
    lc_tokenizer *tok = tiny(e, N_OF(e), false, &o);
    int32_t a = idof(tok, "a"), aa = idof(tok, "aa"), c = idof(tok, "c"), ab = idof(tok, "ab");
    /* "aaa": two equal pairs (0,1) and (1,2): the left one wins -> aa a */
    const int32_t w1[] = {aa, a};
    expect_ids(tok, "aaa", 3, false, false, w1, 2, "ties/aaa");
    /* "aaaaa" -> aa aa a */
    const int32_t w2[] = {aa, aa, a};
    expect_ids(tok, "aaaaa", 5, false, false, w2, 3, "ties/aaaaa");
    /* "abc": ab and bc tie at -3: ab (left) wins -> ab c */
    const int32_t w3[] = {ab, c};
    expect_ids(tok, "abc", 3, false, false, w3, 2, "ties/abc");
    lc_tokenizer_free(tok);
}
END_TEST

/* Queue entries made stale by a later merge are skipped (checked by byte size). */
START_TEST(test_merge_stale) {
    /* "abcd": ab(5) merges; bc(4) is stale (b consumed); cd(3) merges; (ab,c) queued after the
     * first merge with score 1 is now stale because c grew to "cd". Right answer: ab cd.
     * Merging the stale entry would form "abcd", which is no token, and give 4 byte tokens. */
    tv_entry e[] = {
        {"<unk>", 0, LC_TOKEN_TYPE_UNKNOWN}, {"<s>", 0, LC_TOKEN_TYPE_CONTROL}, {"</s>", 0, LC_TOKEN_TYPE_CONTROL},
        {"a", -1, 1}, {"b", -1, 1}, {"c", -1, 1}, {"d", -1, 1},
        {"ab", 5, 1}, {"bc", 4, 1}, {"cd", 3, 1}, {"abc", 1, 1},
    };
    lc_tokenizer_spm_opts o = opts_plain();
    lc_tokenizer *tok = tiny(e, N_OF(e), true, &o);
    const int32_t w1[] = {idof(tok, "ab"), idof(tok, "cd")};
    expect_ids(tok, "abcd", 4, false, false, w1, 2, "stale/abcd");
    /* "abc": ab merges, then (ab,c) -> abc */
    const int32_t w2[] = {idof(tok, "abc")};
    expect_ids(tok, "abc", 3, false, false, w2, 1, "stale/abc");
    lc_tokenizer_free(tok);
}
END_TEST

/* Symbols that are no token become <0xXX> tokens, else the 1-byte token, else unk. */
START_TEST(test_byte_fallback) {
    tv_entry e[] = {
        {"<unk>", 0, LC_TOKEN_TYPE_UNKNOWN}, {"<s>", 0, LC_TOKEN_TYPE_CONTROL}, {"</s>", 0, LC_TOKEN_TYPE_CONTROL},
        {U2581, -1, 1}, {"a", -1, 1}, {U2581 "a", -2, 1},
    };
    lc_tokenizer_spm_opts o = lc_tokenizer_spm_opts_default(); /* bos 1, eos 2, unk 0, space prefix */
    lc_tokenizer *tok = tiny(e, N_OF(e), true, &o);
    int32_t sp = idof(tok, U2581), spa = idof(tok, U2581 "a");
    /* " é a": "▁é▁a" with the prefix -> ▁ <0xC3> <0xA9> ▁a */
    const int32_t w1[] = {sp, idof(tok, "<0xC3>"), idof(tok, "<0xA9>"), spa};
    expect_ids(tok, "\xc3\xa9 a", 4, false, false, w1, 4, "bytes/e-acute");
    expect_roundtrip(tok, "\xc3\xa9 a", 4, false, false, false, "bytes/e-acute roundtrip");
    /* a 4-byte emoji */
    const int32_t w2[] = {sp, idof(tok, "<0xF0>"), idof(tok, "<0x9F>"), idof(tok, "<0x98>"), idof(tok, "<0x80>")};
    expect_ids(tok, "\xf0\x9f\x98\x80", 4, false, false, w2, 5, "bytes/emoji");
    /* token_to_piece of a BYTE token is the byte */
    char buf[8];
    size_t len = 0;
    ck_assert(lc_token_to_piece(tok, idof(tok, "<0xC3>"), false, buf, sizeof buf, &len) == LC_OK);
    ck_assert(len == 1 && (uint8_t)buf[0] == 0xC3);
    lc_tokenizer_free(tok);

    /* no "▁" token: the space prefix falls back to bytes E2 96 81, and still decodes as the
     * prefix space that the decoder removes */
    tv_entry e3[] = {
        {"<unk>", 0, LC_TOKEN_TYPE_UNKNOWN}, {"<s>", 0, LC_TOKEN_TYPE_CONTROL}, {"</s>", 0, LC_TOKEN_TYPE_CONTROL},
        {"a", -1, 1},
    };
    o = lc_tokenizer_spm_opts_default();
    tok = tiny(e3, N_OF(e3), true, &o);
    const int32_t w4[] = {1, idof(tok, "<0xE2>"), idof(tok, "<0x96>"), idof(tok, "<0x81>"), idof(tok, "a")};
    expect_ids(tok, "a", 1, true, false, w4, 5, "bytes/prefix without a space token");
    expect_text(tok, w4, 5, false, "a", 1, "bytes/prefix without a space token decode");
    expect_roundtrip(tok, "a a", 3, true, false, false, "bytes/prefix without a space token roundtrip");
    lc_tokenizer_free(tok);

    /* no BYTE tokens: the 1-byte token when there is one, else unk */
    tv_entry e2[] = {
        {"<unk>", 0, LC_TOKEN_TYPE_UNKNOWN}, {"<s>", 0, LC_TOKEN_TYPE_CONTROL}, {"</s>", 0, LC_TOKEN_TYPE_CONTROL},
        {"a", -1, 1}, {"\xc3", -1, 1},
    };
    o = opts_plain();
    tok = tiny(e2, N_OF(e2), false, &o);
    const int32_t w3[] = {idof(tok, "a"), idof(tok, "\xc3"), 0};
    expect_ids(tok, "a\xc3\xa9", 3, false, false, w3, 3, "bytes/1-byte token then unk");
    lc_tokenizer_free(tok);

    /* and with no unk either, an error naming the byte */
    o.unk_id = LC_TOKEN_NULL;
    tok = tiny(e2, N_OF(e2), false, &o);
    int32_t *ids = (int32_t *)&o;
    size_t n = 7;
    ck_assert_int_eq(lc_tokenize(tok, "a\xa9", 2, false, false, &ids, &n), LC_ERR_FORMAT);
    ck_assert(ids == NULL && n == 0);
    ck_assert_msg(strstr(lc_last_error(), "0xA9") != NULL, "message: %s", lc_last_error());
    lc_tokenizer_free(tok);
}
END_TEST

/* CONTROL tokens split the text only with parse_special; USER_DEFINED tokens always. */
START_TEST(test_special_parsing) {
    tv_entry e[] = {
        {"<unk>", 0, LC_TOKEN_TYPE_UNKNOWN}, {"<s>", 0, LC_TOKEN_TYPE_CONTROL}, {"</s>", 0, LC_TOKEN_TYPE_CONTROL},
        {"<ctl>", 0, LC_TOKEN_TYPE_CONTROL}, {"<ud>", 0, LC_TOKEN_TYPE_USER_DEFINED},
        {"a", -1, 1}, {"b", -1, 1}, {"c", -1, 1}, {"<", -1, 1}, {">", -1, 1}, {"t", -1, 1}, {"l", -1, 1},
    };
    lc_tokenizer_spm_opts o = opts_plain();
    lc_tokenizer *tok = tiny(e, N_OF(e), true, &o);
    int32_t a = idof(tok, "a"), b = idof(tok, "b"), c = idof(tok, "c"), ctl = idof(tok, "<ctl>"), ud = idof(tok, "<ud>");
    int32_t lt = idof(tok, "<"), gt = idof(tok, ">"), cc = idof(tok, "c"), t = idof(tok, "t"), l = idof(tok, "l");
    const char *text = "a<ctl>b<ud>c";
    const int32_t on[] = {a, ctl, b, ud, c};
    expect_ids(tok, text, strlen(text), false, true, on, 5, "special/on");
    const int32_t off[] = {a, lt, cc, t, l, gt, b, ud, c};
    expect_ids(tok, text, strlen(text), false, false, off, 9, "special/off");
    /* <unk> text is an UNKNOWN token: parsed like CONTROL */
    const int32_t unk_on[] = {a, 0};
    expect_ids(tok, "a<unk>", 6, false, true, unk_on, 2, "special/unk");
    /* decoding: CONTROL hidden unless show_special; USER_DEFINED always shown */
    expect_text(tok, on, 5, false, "ab<ud>c", 7, "special/decode hidden");
    expect_text(tok, on, 5, true, text, strlen(text), "special/decode shown");
    expect_roundtrip(tok, text, strlen(text), true, false, false, "special/roundtrip off");
    lc_tokenizer_free(tok);
}
END_TEST

/* Longer special tokens are cut out first (llama.cpp tokenizer_st_partition order). */
START_TEST(test_special_longest_first) {
    tv_entry e[] = {
        {"<unk>", 0, LC_TOKEN_TYPE_UNKNOWN}, {"<s>", 0, LC_TOKEN_TYPE_CONTROL}, {"</s>", 0, LC_TOKEN_TYPE_CONTROL},
        {"ab", 0, LC_TOKEN_TYPE_USER_DEFINED}, {"bcd", 0, LC_TOKEN_TYPE_USER_DEFINED},
        {"\n", 0, LC_TOKEN_TYPE_USER_DEFINED}, {"\n\n", 0, LC_TOKEN_TYPE_USER_DEFINED},
        {"\n\n\n", 0, LC_TOKEN_TYPE_USER_DEFINED},
        {"a", -1, 1}, {"b", -1, 1}, {"c", -1, 1}, {"d", -1, 1},
    };
    lc_tokenizer_spm_opts o = opts_plain();
    lc_tokenizer *tok = tiny(e, N_OF(e), true, &o);
    int32_t a = idof(tok, "a"), ab = idof(tok, "ab"), bcd = idof(tok, "bcd"), c = idof(tok, "c");
    int32_t n1 = idof(tok, "\n"), n2 = idof(tok, "\n\n"), n3 = idof(tok, "\n\n\n");
    /* "abcd": bcd (3 bytes) is cut first, leaving "a" */
    const int32_t w1[] = {a, bcd};
    expect_ids(tok, "abcd", 4, false, false, w1, 2, "longest/abcd");
    /* "abcab": no bcd; ab at 0 and 3 */
    const int32_t w2[] = {ab, c, ab};
    expect_ids(tok, "abcab", 5, false, false, w2, 3, "longest/abcab");
    /* newline runs: 7 = 3+3+1, 5 = 3+2 */
    const int32_t w3[] = {n3, n3, n1, a, n3, n2};
    expect_ids(tok, "\n\n\n\n\n\n\na\n\n\n\n\n", 13, false, false, w3, 6, "longest/newlines");
    lc_tokenizer_free(tok);
}
END_TEST

/* add_space_prefix: " " before the first fragment and after each special token; decoding
 * removes exactly that space. */
START_TEST(test_space_prefix) {
    tv_entry e[] = {
        {"<unk>", 0, LC_TOKEN_TYPE_UNKNOWN}, {"<s>", 0, LC_TOKEN_TYPE_CONTROL}, {"</s>", 0, LC_TOKEN_TYPE_CONTROL},
        {"<ctl>", 0, LC_TOKEN_TYPE_CONTROL},
        {U2581, -1, 1}, {"h", -1, 1}, {"i", -1, 1}, {"hi", -2, 1}, {U2581 "hi", -3, 1}, {"\t", -1, 1},
    };
    lc_tokenizer_spm_opts o = lc_tokenizer_spm_opts_default();
    o.add_eos = true;
    lc_tokenizer *tok = tiny(e, N_OF(e), true, &o);
    int32_t sp = idof(tok, U2581), hi = idof(tok, "hi"), shi = idof(tok, U2581 "hi"), ctl = idof(tok, "<ctl>");
    int32_t tab = idof(tok, "\t");
    const int32_t w1[] = {1, shi, shi, 2};
    expect_ids(tok, "hi hi", 5, true, true, w1, 4, "prefix/hi hi");
    /* the fragment after <ctl> is " hi hi", prefixed to "▁▁hi▁hi" */
    const int32_t w2[] = {shi, ctl, sp, shi, shi};
    expect_ids(tok, "hi<ctl> hi hi", 13, false, true, w2, 5, "prefix/after special");
    /* only 0x20 is escaped: a tab stays a tab */
    const int32_t w3[] = {sp, tab, hi};
    expect_ids(tok, "\thi", 3, false, false, w3, 3, "prefix/tab");
    /* the decoder strips the prefix space it added, and only that one */
    static const char *const texts[] = {"hi hi", " hi", "  hi ", "hi<ctl>hi", "hi<ctl> hi", "<ctl>", "\thi", ""};
    char what[64];
    for (int i = 0; i < N_OF(texts); i++) {
        snprintf(what, sizeof what, "prefix/roundtrip[%d]", i);
        expect_roundtrip(tok, texts[i], strlen(texts[i]), false, true, true, what);
        expect_roundtrip(tok, texts[i], strlen(texts[i]), true, false, false, what);
        if (!strstr(texts[i], "<ctl>")) /* a parsed <ctl> is hidden without show_special */
            expect_roundtrip(tok, texts[i], strlen(texts[i]), true, true, false, what);
    }
    /* at most one EOS: a parsed EOS at the end is not doubled */
    const int32_t w4[] = {1, shi, 2};
    expect_ids(tok, "hi</s>", 6, true, true, w4, 3, "prefix/eos once");
    lc_tokenizer_free(tok);
}
END_TEST

START_TEST(test_empty_input) {
    fixture fx;
    fixture_load(&fx);
    lc_tokenizer *tok = fixture_tokenizer(&fx);
    int32_t *ids = NULL;
    size_t n = 99;
    ck_assert(lc_tokenize(tok, "", 0, false, true, &ids, &n) == LC_OK);
    ck_assert(ids != NULL && n == 0);
    free(ids);
    ck_assert(lc_tokenize(tok, NULL, 0, true, true, &ids, &n) == LC_OK);
    ck_assert(n == 1 && ids[0] == fx.bos);
    free(ids);
    ck_assert_int_eq(lc_tokenize(tok, NULL, 3, true, true, &ids, &n), LC_ERR_INVALID_ARG);
    ck_assert(ids == NULL && n == 0);
    char *text = NULL;
    size_t len = 5;
    ck_assert(lc_detokenize(tok, NULL, 0, false, &text, &len) == LC_OK);
    ck_assert(text != NULL && len == 0 && text[0] == '\0');
    free(text);
    lc_tokenizer_free(tok);
    fixture_free(&fx);
}
END_TEST

/* token_to_piece per type, buffer sizes, and the lookups. */
START_TEST(test_pieces) {
    tv_entry e[] = {
        {"<unk>", 0, LC_TOKEN_TYPE_UNKNOWN}, {"<s>", 0, LC_TOKEN_TYPE_CONTROL}, {"</s>", 0, LC_TOKEN_TYPE_CONTROL},
        {U2581 "x" U2581 U2581 "y", -1, LC_TOKEN_TYPE_NORMAL}, {"  ", 0, LC_TOKEN_TYPE_USER_DEFINED},
        {"<unused0>", 0, LC_TOKEN_TYPE_UNUSED}, {"<0x41>", 0, LC_TOKEN_TYPE_BYTE}, {"?", 0, LC_TOKEN_TYPE_UNDEFINED},
        {"dup", 1, 1}, {"dup", 2, 1},
    };
    lc_tokenizer_spm_opts o = opts_plain();
    lc_tokenizer *tok = tiny(e, N_OF(e), false, &o);
    static const struct {
        int32_t id;
        bool show;
        const char *want;
    } cases[] = {
        {3, false, " x  y"}, {4, false, "  "}, {5, true, ""}, {6, false, "A"}, {7, true, ""},
        {1, false, ""}, {1, true, "<s>"}, {0, false, ""}, {0, true, "<unk>"},
    };
    char buf[32];
    for (int i = 0; i < N_OF(cases); i++) {
        size_t len = 99;
        memset(buf, 'Z', sizeof buf);
        ck_assert_msg(lc_token_to_piece(tok, cases[i].id, cases[i].show, buf, sizeof buf, &len) == LC_OK, "%s",
                      lc_last_error());
        ck_assert_msg(len == strlen(cases[i].want) && memcmp(buf, cases[i].want, len) == 0 && buf[len] == '\0',
                      "piece of %d: got %zu bytes '%.*s', want '%s'", (int)cases[i].id, len, (int)len, buf,
                      cases[i].want);
    }
    /* too small a buffer: error with the needed size; exactly fitting: no NUL, OK */
    size_t len = 0;
    ck_assert_int_eq(lc_token_to_piece(tok, 3, false, buf, 4, &len), LC_ERR_INVALID_ARG);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(lc_token_to_piece(tok, 3, false, buf, 5, &len), LC_OK);
    ck_assert(len == 5 && memcmp(buf, " x  y", 5) == 0);
    ck_assert_int_eq(lc_token_to_piece(tok, 3, false, NULL, 0, &len), LC_ERR_INVALID_ARG);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(lc_token_to_piece(tok, 10, false, buf, sizeof buf, &len), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_token_to_piece(tok, -1, false, buf, sizeof buf, &len), LC_ERR_INVALID_ARG);
    /* lookups: a duplicated text finds the larger id; accessors */
    ck_assert_int_eq(lc_tokenizer_find(tok, "dup", 3), 9);
    ck_assert_int_eq(lc_tokenizer_find(tok, "du", 2), LC_TOKEN_NULL);
    size_t tl = 0;
    ck_assert_str_eq(lc_tokenizer_token_text(tok, 4, &tl), "  ");
    ck_assert_uint_eq(tl, 2);
    ck_assert(lc_tokenizer_token_text(tok, 10, NULL) == NULL);
    ck_assert(lc_tokenizer_token_score(tok, 9) == 2.0f);
    ck_assert_int_eq(lc_tokenizer_token_type(tok, 6), LC_TOKEN_TYPE_BYTE);
    ck_assert_int_eq(lc_tokenizer_token_type(tok, 99), LC_TOKEN_TYPE_UNDEFINED);
    lc_tokenizer_free(tok);
}
END_TEST

/* Bad input returns an error that names the field; nothing crashes. */
START_TEST(test_errors) {
    const char *toks[] = {"<unk>", "<s>", "</s>", "a", "<0x4G>"};
    float scores[] = {0, 0, 0, 0, 0};
    int32_t types[] = {2, 3, 3, 1, 1};
    lc_tokenizer *tok = (lc_tokenizer *)toks;
    lc_tokenizer_spm_opts o = lc_tokenizer_spm_opts_default();

    ck_assert_int_eq(lc_tokenizer_new_spm(toks, scores, types, 5, &o, NULL), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_tokenizer_new_spm(NULL, scores, types, 5, &o, &tok), LC_ERR_INVALID_ARG);
    ck_assert(tok == NULL);
    ck_assert_int_eq(lc_tokenizer_new_spm(toks, scores, types, 0, &o, &tok), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "n_vocab") != NULL, "%s", lc_last_error());

    o.bos_id = 5;
    ck_assert_int_eq(lc_tokenizer_new_spm(toks, scores, types, 5, &o, &tok), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "bos_id") != NULL, "%s", lc_last_error());
    o = lc_tokenizer_spm_opts_default();
    o.pad_id = -2;
    ck_assert_int_eq(lc_tokenizer_new_spm(toks, scores, types, 5, &o, &tok), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "pad_id") != NULL, "%s", lc_last_error());
    o = lc_tokenizer_spm_opts_default();
    o.add_eos = true;
    o.eos_id = -1;
    ck_assert_int_eq(lc_tokenizer_new_spm(toks, scores, types, 5, &o, &tok), LC_ERR_INVALID_ARG);
    ck_assert_msg(strstr(lc_last_error(), "eos_id") != NULL, "%s", lc_last_error());
    o = lc_tokenizer_spm_opts_default();

    const char *toks_null[] = {"<unk>", "<s>", NULL, "a", "b"};
    ck_assert_int_eq(lc_tokenizer_new_spm(toks_null, scores, types, 5, &o, &tok), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "tokens[2]") != NULL, "%s", lc_last_error());
    float nan_scores[] = {0, 0, 0, NAN, 0};
    ck_assert_int_eq(lc_tokenizer_new_spm(toks, nan_scores, types, 5, &o, &tok), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "scores[3]") != NULL, "%s", lc_last_error());
    int32_t bad_types[] = {2, 3, 3, 7, 1};
    ck_assert_int_eq(lc_tokenizer_new_spm(toks, scores, bad_types, 5, &o, &tok), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "types[3]") != NULL, "%s", lc_last_error());
    int32_t byte_types[] = {2, 3, 3, 1, 6}; /* "<0x4G>" typed BYTE */
    ck_assert_int_eq(lc_tokenizer_new_spm(toks, scores, byte_types, 5, &o, &tok), LC_ERR_FORMAT);
    ck_assert_msg(strstr(lc_last_error(), "tokens[4]") != NULL, "%s", lc_last_error());
    ck_assert(tok == NULL);

    /* NULL scores/types are allowed: scores 0, all NORMAL */
    ck_assert_int_eq(lc_tokenizer_new_spm(toks, NULL, NULL, 5, NULL, &tok), LC_OK);
    int32_t *ids = NULL;
    size_t n = 0;
    ck_assert_int_eq(lc_tokenize(NULL, "a", 1, false, false, &ids, &n), LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_tokenize(tok, "a", 1, false, false, NULL, &n), LC_ERR_INVALID_ARG);
    const int32_t bad_ids[] = {3, 5};
    char *text = (char *)toks;
    size_t len = 3;
    ck_assert_int_eq(lc_detokenize(tok, bad_ids, 2, false, &text, &len), LC_ERR_INVALID_ARG);
    ck_assert(text == NULL && len == 0);
    ck_assert_msg(strstr(lc_last_error(), "ids[1]") != NULL, "%s", lc_last_error());
    ck_assert_int_eq(lc_detokenize(tok, NULL, 2, false, &text, &len), LC_ERR_INVALID_ARG);
    lc_tokenizer_free(tok);
    lc_tokenizer_free(NULL);
}
END_TEST

/* ---- optional: the full vocabulary from the GGUF named by LORAC_TEST_MODEL ---------------- */

/* A minimal reader of GGUF v2/v3 metadata (reference/formats.md §1), enough for the tokenizer
 * keys. Returns false on any malformation. */
typedef struct gg_vocab {
    int64_t n;
    char **tokens;
    float *scores;
    int32_t *types;
    int64_t bos, eos, unk, pad;
    int add_bos, add_eos, add_space_prefix;
} gg_vocab;

static bool gg_read(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

static char *gg_string(FILE *f) {
    uint64_t n;
    if (!gg_read(f, &n, 8) || n > (1u << 20)) return NULL;
    char *s = xmalloc((size_t)n + 1);
    if (!gg_read(f, s, (size_t)n)) {
        free(s);
        return NULL;
    }
    s[n] = '\0';
    return s;
}

static size_t gg_scalar_size(uint32_t t) {
    static const size_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? sz[t] : 0;
}

static bool gg_skip(FILE *f, uint32_t t) {
    if (t == 8) {
        char *s = gg_string(f);
        free(s);
        return s != NULL;
    }
    if (t == 9) {
        uint32_t et;
        uint64_t n;
        if (!gg_read(f, &et, 4) || !gg_read(f, &n, 8)) return false;
        for (uint64_t i = 0; i < n; i++)
            if (!gg_skip(f, et)) return false;
        return true;
    }
    size_t s = gg_scalar_size(t);
    return s && fseek(f, (long)s, SEEK_CUR) == 0;
}

static bool gg_int(FILE *f, uint32_t t, int64_t *v) {
    uint8_t b[8] = {0};
    size_t s = gg_scalar_size(t);
    if (!s || t == 6 || t == 12 || !gg_read(f, b, s)) return false;
    uint64_t u = 0;
    for (size_t i = 0; i < s; i++) u |= (uint64_t)b[i] << (8 * i);
    *v = (int64_t)u;
    return true;
}

static bool gg_load_vocab(const char *path, gg_vocab *v) {
    memset(v, 0, sizeof *v);
    v->bos = 1, v->eos = 2, v->unk = 0, v->pad = -1;
    v->add_bos = 1, v->add_eos = 0, v->add_space_prefix = 1;
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char magic[4];
    uint32_t version;
    uint64_t n_tensors, n_kv;
    bool ok = gg_read(f, magic, 4) && !memcmp(magic, "GGUF", 4) && gg_read(f, &version, 4) && version >= 2 &&
              gg_read(f, &n_tensors, 8) && gg_read(f, &n_kv, 8);
    for (uint64_t k = 0; ok && k < n_kv; k++) {
        char *key = gg_string(f);
        uint32_t t;
        if (!key || !gg_read(f, &t, 4)) {
            free(key);
            ok = false;
            break;
        }
        int64_t iv = 0;
        if (t == 9 && (!strcmp(key, "tokenizer.ggml.tokens") || !strcmp(key, "tokenizer.ggml.scores") ||
                       !strcmp(key, "tokenizer.ggml.token_type"))) {
            uint32_t et;
            uint64_t n;
            ok = gg_read(f, &et, 4) && gg_read(f, &n, 8) && n < (1u << 24);
            if (ok && v->n && (int64_t)n != v->n) ok = false;
            if (ok) v->n = (int64_t)n;
            if (ok && !strcmp(key, "tokenizer.ggml.tokens") && et == 8) {
                v->tokens = calloc(n, sizeof *v->tokens);
                for (uint64_t i = 0; ok && i < n; i++) ok = (v->tokens[i] = gg_string(f)) != NULL;
            } else if (ok && !strcmp(key, "tokenizer.ggml.scores") && et == 6) {
                v->scores = xmalloc(n * sizeof *v->scores);
                ok = gg_read(f, v->scores, n * 4);
            } else if (ok && !strcmp(key, "tokenizer.ggml.token_type") && et == 5) {
                v->types = xmalloc(n * sizeof *v->types);
                ok = gg_read(f, v->types, n * 4);
            } else {
                ok = false;
            }
        } else if (!strcmp(key, "tokenizer.ggml.bos_token_id")) ok = gg_int(f, t, &v->bos);
        else if (!strcmp(key, "tokenizer.ggml.eos_token_id")) ok = gg_int(f, t, &v->eos);
        else if (!strcmp(key, "tokenizer.ggml.unknown_token_id")) ok = gg_int(f, t, &v->unk);
        else if (!strcmp(key, "tokenizer.ggml.padding_token_id")) ok = gg_int(f, t, &v->pad);
        else if (!strcmp(key, "tokenizer.ggml.add_bos_token")) {
            ok = gg_int(f, t, &iv);
            v->add_bos = iv != 0;
        } else if (!strcmp(key, "tokenizer.ggml.add_eos_token")) {
            ok = gg_int(f, t, &iv);
            v->add_eos = iv != 0;
        } else if (!strcmp(key, "tokenizer.ggml.add_space_prefix")) {
            ok = gg_int(f, t, &iv);
            v->add_space_prefix = iv != 0;
        } else {
            ok = gg_skip(f, t);
        }
        free(key);
    }
    fclose(f);
    return ok && v->tokens && v->scores && v->types;
}

static void gg_free(gg_vocab *v) {
    for (int64_t i = 0; v->tokens && i < v->n; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->scores);
    free(v->types);
}

START_TEST(test_full_model) {
    const char *path = getenv("LORAC_TEST_MODEL");
    if (!path || !*path) {
        printf("tokenizer: LORAC_TEST_MODEL not set; full-vocabulary comparison skipped\n");
        return;
    }
    gg_vocab v;
    ck_assert_msg(gg_load_vocab(path, &v), "%s: cannot read the tokenizer metadata", path);
    fixture fx;
    fixture_load(&fx);
    ck_assert_int_eq(v.n, fx.n_vocab);
    ck_assert(v.bos == fx.bos && v.eos == fx.eos && v.unk == fx.unk && v.pad == fx.pad);
    /* every token the fixture lists is the model's */
    for (int i = 0; i < fx.n_vocab; i++) {
        if (is_placeholder(&fx, i)) continue;
        ck_assert_msg(!strcmp(fx.tokens[i], v.tokens[i]) && fx.types[i] == v.types[i] && fx.scores[i] == v.scores[i],
                      "fixture token %d differs from the model's", i);
    }
    lc_tokenizer_spm_opts o = {(int32_t)v.bos, (int32_t)v.eos, (int32_t)v.unk, (int32_t)v.pad,
                               v.add_bos != 0, v.add_eos != 0, v.add_space_prefix != 0};
    lc_tokenizer *tok = NULL;
    clock_t t0 = clock();
    ck_assert_msg(lc_tokenizer_new_spm((const char *const *)v.tokens, v.scores, v.types, (int32_t)v.n, &o, &tok) == LC_OK,
                  "%s", lc_last_error());
    double t_new = (double)(clock() - t0) / CLOCKS_PER_SEC;
    check_fixture_cases(&fx, tok, "full");
    /* throughput on the long paragraph, for the log */
    const fx_case *k = fixture_case(&fx, "long_paragraph");
    t0 = clock();
    size_t total = 0;
    for (int r = 0; r < 200; r++) {
        int32_t *ids;
        size_t n;
        ck_assert(lc_tokenize(tok, k->text, k->len, true, true, &ids, &n) == LC_OK);
        total += n;
        free(ids);
    }
    double t_enc = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("tokenizer: full vocabulary of %lld tokens: %d cases match; build %.3f s; encode %.2f MB/s\n",
           (long long)v.n, fx.n_cases, t_new, 200.0 * (double)k->len / 1e6 / (t_enc > 0 ? t_enc : 1e-9));
    (void)total;
    lc_tokenizer_free(tok);
    fixture_free(&fx);
    gg_free(&v);
}
END_TEST

static Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("spm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fixture_ids);
    tcase_add_test(tc, test_fixture_roundtrip);
    tcase_add_test(tc, test_one_bos);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_merge_order);
    tcase_add_test(tc, test_merge_ties);
    tcase_add_test(tc, test_merge_stale);
    tcase_add_test(tc, test_byte_fallback);
    tcase_add_test(tc, test_special_parsing);
    tcase_add_test(tc, test_special_longest_first);
    tcase_add_test(tc, test_space_prefix);
    tcase_add_test(tc, test_empty_input);
    tcase_add_test(tc, test_pieces);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_full_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(tokenizer_suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
