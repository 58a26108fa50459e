/* Tests of the training data pipeline (lorac/data.h; core/src/data*.c).
 *
 * Most cases use a hand-made character-level SPM vocabulary (every character is its own token,
 * plus one merge "qu" used only to test a token that straddles the prompt/completion boundary),
 * so the right ids, labels and masks are written out by hand below. The chat case on real ids
 * uses tests/fixtures/tokenizer_gemma3.txt, whose "chat" case holds the ids that
 * sentencepiece and transformers gave for the Gemma-rendered conversation
 * "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n".
 * Rendered templates are checked byte for byte by decoding the ids (show_special), and loss
 * masks by decoding the labels that are not -100.
 */
#include <check.h>

#include "common/lt_suite.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lorac/data.h"
#include "lorac/tokenizer.h"

#ifndef LORAC_FIXTURE_DIR
#error "LORAC_FIXTURE_DIR must name tests/fixtures"
#endif

#define IGN LC_DATA_IGNORE_INDEX

/* ---- the character-level vocabulary -------------------------------------------------------- */

enum { PAD = 0, BOS = 1, EOS = 2, UNK = 3, SOT = 4, EOT = 5, IMS = 6, IME = 7, SP = 8, NL = 9, CH0 = 10 };
static const char CHARS[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789?!.,':-+()/";
#define N_CHARS ((int)sizeof CHARS - 1)
#define QU (CH0 + N_CHARS) /* the merge "qu" */
#define BYTE0 (QU + 1)        /* <0x00>..<0xFF>: byte fallback for every other character */

static int32_t C(char c) {
    const char *p = strchr(CHARS, c);
    ck_assert_msg(p && c, "test vocabulary has no '%c'", c);
    return CH0 + (int32_t)(p - CHARS);
}

/* Ids of s in the character vocabulary (no "qu" in s): ' ' -> SP, '\n' -> NL. */
static size_t enc(const char *s, int32_t *out) {
    size_t n = 0;
    for (; *s; s++) out[n++] = *s == ' ' ? SP : *s == '\n' ? NL : C(*s);
    return n;
}

typedef struct tiny_opts {
    bool gemma_markers;  /* <start_of_turn>/<end_of_turn> exist (else UNUSED placeholders) */
    bool add_bos;
    bool space_prefix;
    int32_t pad;
} tiny_opts;

static lc_tokenizer *tiny_tok(tiny_opts o) {
    static char text[512][16];
    const char *tokens[512];
    int32_t types[512];
    float scores[512];
    int n = 0;
    const char *specials[CH0] = {"<pad>", "<bos>", "<eos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
                                 "<|im_start|>", "<|im_end|>", "\xE2\x96\x81", "\n"};
    for (int i = 0; i < CH0; i++) {
        tokens[n] = specials[i];
        types[n] = i == UNK ? LC_TOKEN_TYPE_UNKNOWN : i < SP ? LC_TOKEN_TYPE_CONTROL : LC_TOKEN_TYPE_NORMAL;
        scores[n++] = 0.0f;
    }
    if (!o.gemma_markers) {
        tokens[SOT] = "[unused-4]";
        tokens[EOT] = "[unused-5]";
        types[SOT] = types[EOT] = LC_TOKEN_TYPE_UNUSED;
    }
    for (int i = 0; i < N_CHARS; i++) {
        text[i][0] = CHARS[i];
        text[i][1] = '\0';
        tokens[n] = text[i];
        types[n] = LC_TOKEN_TYPE_NORMAL;
        scores[n++] = -1.0f;
    }
    tokens[n] = "qu";
    types[n] = LC_TOKEN_TYPE_NORMAL;
    scores[n++] = 0.0f;
    for (int b = 0; b < 256; b++) {
        snprintf(text[N_CHARS + b], sizeof text[0], "<0x%02X>", b);
        tokens[n] = text[N_CHARS + b];
        types[n] = LC_TOKEN_TYPE_BYTE;
        scores[n++] = 0.0f;
    }
    lc_tokenizer_spm_opts so = lc_tokenizer_spm_opts_default();
    so.bos_id = BOS;
    so.eos_id = EOS;
    so.unk_id = UNK;
    so.pad_id = o.pad;
    so.add_bos = o.add_bos;
    so.add_eos = false;
    so.add_space_prefix = o.space_prefix;
    lc_tokenizer *tok = NULL;
    lc_status st = lc_tokenizer_new_spm(tokens, scores, types, n, &so, &tok);
    ck_assert_msg(st == LC_OK, "tiny tokenizer: %s", lc_last_error());
    return tok;
}

static lc_tokenizer *tok_gemma_like(void) { return tiny_tok((tiny_opts){true, true, false, PAD}); }
static lc_tokenizer *tok_plain(void) { return tiny_tok((tiny_opts){false, true, false, PAD}); }

/* ---- helpers ------------------------------------------------------------------------------ */

static lc_data_config cfg_of(int seq_len, bool packing) {
    lc_data_config c = lc_data_config_default();
    c.seq_len = seq_len;
    c.packing = packing;
    c.shuffle = false;
    return c;
}

static lc_data *new_data(const lc_tokenizer *tok, const lc_data_config *c) {
    lc_data *d = NULL;
    lc_status st = lc_data_new(tok, c, &d);
    ck_assert_msg(st == LC_OK, "lc_data_new: %s", lc_last_error());
    return d;
}

static void add_mem(lc_data *d, const char *name, const char *text, lc_data_format fmt, lc_data_split split) {
    lc_status st = lc_data_add_memory(d, name, text, strlen(text), fmt, split);
    ck_assert_msg(st == LC_OK, "lc_data_add_memory(%s): %s", name, lc_last_error());
}

static void finalize(lc_data *d) {
    lc_status st = lc_data_finalize(d);
    ck_assert_msg(st == LC_OK, "lc_data_finalize: %s", lc_last_error());
}

/* One-source data set, finalized. */
static lc_data *data_of(const lc_tokenizer *tok, const lc_data_config *c, const char *text, lc_data_format fmt) {
    lc_data *d = new_data(tok, c);
    add_mem(d, "mem", text, fmt, LC_DATA_TRAIN);
    finalize(d);
    return d;
}

static void print_ids(const char *what, const int32_t *v, int n) {
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", (int)v[i]);
    fprintf(stderr, "\n");
}

/* Sequence i of split equals want_ids / want_labels (L values each); positions 0..L-1. */
static void expect_seq(const lc_data *d, lc_data_split split, int64_t i, int L, const int32_t *want_ids,
                       const int32_t *want_labels, const char *what) {
    int32_t ids[256], labels[256], pos[256];
    ck_assert(L <= 256);
    lc_status st = lc_data_sequence(d, split, i, ids, labels, pos);
    ck_assert_msg(st == LC_OK, "%s: lc_data_sequence: %s", what, lc_last_error());
    bool same = memcmp(ids, want_ids, (size_t)L * sizeof *ids) == 0 &&
                memcmp(labels, want_labels, (size_t)L * sizeof *labels) == 0;
    if (!same) {
        fprintf(stderr, "%s: sequence %lld differs\n", what, (long long)i);
        print_ids("ids got   ", ids, L);
        print_ids("ids want  ", want_ids, L);
        print_ids("labels got ", labels, L);
        print_ids("labels want", want_labels, L);
    }
    ck_assert_msg(same, "%s: sequence %lld differs", what, (long long)i);
    for (int t = 0; t < L; t++) ck_assert_int_eq(pos[t], t);
}

/* Build want arrays from a token list: ids padded with pad; labels from the target flags. */
typedef struct seqb {
    int32_t ids[256], labels[256];
    int n, L;
} seqb;

static void sb_init(seqb *b, int L, int32_t pad) {
    b->n = 0;
    b->L = L;
    for (int t = 0; t < L; t++) {
        b->ids[t] = pad;
        b->labels[t] = IGN;
    }
}

/* Append token `id`; when `target`, it is the label of the position before it. */
static void sb_tok(seqb *b, int32_t id, bool target) {
    ck_assert(b->n < b->L);
    b->ids[b->n] = id;
    if (target && b->n > 0) b->labels[b->n - 1] = id;
    b->n++;
}

static void sb_text(seqb *b, const char *s, bool target) {
    int32_t v[256];
    size_t n = enc(s, v);
    for (size_t i = 0; i < n; i++) sb_tok(b, v[i], target);
}

static char *decode(const lc_tokenizer *tok, const int32_t *ids, size_t n) {
    char *text = NULL;
    size_t len = 0;
    lc_status st = lc_detokenize(tok, ids, n, true, &text, &len);
    ck_assert_msg(st == LC_OK, "lc_detokenize: %s", lc_last_error());
    return text;
}

/* Decoded ids of sequence i (without trailing padding) and decoded labels that carry loss. */
static void decode_seq(const lc_tokenizer *tok, const lc_data *d, int64_t i, int L, char **text, char **trained) {
    int32_t ids[256], labels[256], kept[256];
    ck_assert(L <= 256);
    ck_assert_msg(lc_data_sequence(d, LC_DATA_TRAIN, i, ids, labels, NULL) == LC_OK, "%s", lc_last_error());
    int n = L;
    while (n > 0 && ids[n - 1] == PAD) n--;
    size_t k = 0;
    for (int t = 0; t < L; t++)
        if (labels[t] != IGN) {
            ck_assert_msg(t + 1 < L && labels[t] == ids[t + 1], "label at %d is not the next id", t);
            kept[k++] = labels[t];
        }
    *text = decode(tok, ids, (size_t)n);
    *trained = decode(tok, kept, k);
}

static void expect_error(lc_status got, lc_status want, const char *const *needles, const char *what) {
    const char *msg = lc_last_error();
    ck_assert_msg(got == want, "%s: status %d (%s), want %d; message: %s", what, (int)got, lc_status_str(got),
                  (int)want, msg);
    for (const char *const *n = needles; *n; n++)
        ck_assert_msg(strstr(msg, *n) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, *n);
}

/* Add `text` as source `name` and expect an error whose message holds every needle. */
static void expect_add_error(const lc_tokenizer *tok, const char *name, const char *text, size_t len,
                             lc_data_format fmt, lc_status want, const char *const *needles) {
    lc_data_config c = cfg_of(16, false);
    lc_data *d = new_data(tok, &c);
    add_mem(d, "good", "ok\n", LC_DATA_FORMAT_TEXT, LC_DATA_TRAIN);
    lc_status st = lc_data_add_memory(d, name, text, len, fmt, LC_DATA_TRAIN);
    expect_error(st, want, needles, name);
    /* The failed source left nothing behind: the good one alone makes the data set. */
    lc_data_stats s;
    ck_assert(lc_data_get_stats(d, &s) == LC_OK);
    ck_assert_int_eq(s.n_examples[LC_DATA_TRAIN], 1);
    finalize(d);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 1);
    lc_data_free(d);
}

/* ---- plain text ---------------------------------------------------------------------------- */

START_TEST(test_plain_text) {
    lc_tokenizer *tok = tok_plain();
    const char *text = "ab cd\r\n \n\nef\n";
    const int L = 8;
    seqb b;
    /* packing off: one document per sequence: [BOS a b ▁ c d EOS pad], labels shifted by one */
    lc_data_config c = cfg_of(L, false);
    lc_data *d = data_of(tok, &c, text, LC_DATA_FORMAT_AUTO);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 2);
    static const int32_t ids0[8] = {BOS, 10 + 0, 10 + 1, SP, 10 + 2, 10 + 3, EOS, PAD};
    static const int32_t lab0[8] = {10 + 0, 10 + 1, SP, 10 + 2, 10 + 3, EOS, IGN, IGN};
    expect_seq(d, LC_DATA_TRAIN, 0, L, ids0, lab0, "plain doc 1 (by hand)");
    sb_init(&b, L, PAD);
    sb_tok(&b, BOS, false);
    sb_text(&b, "ef", true);
    sb_tok(&b, EOS, true);
    expect_seq(d, LC_DATA_TRAIN, 1, L, b.ids, b.labels, "plain doc 2");
    lc_data_stats s;
    ck_assert(lc_data_get_stats(d, &s) == LC_OK);
    ck_assert_int_eq(s.n_examples[LC_DATA_TRAIN], 2);
    ck_assert_int_eq(s.n_tokens[LC_DATA_TRAIN], 7 + 4);
    ck_assert_int_eq(s.n_label_tokens[LC_DATA_TRAIN], 6 + 3);
    ck_assert_int_eq(s.pad_id, PAD);
    lc_data_free(d);

    /* packing on: [BOS a b ▁ c d EOS BOS] then the second document opens the next window with its
     * own BOS (no second BOS), and the EOS -> BOS step carries no loss. */
    c = cfg_of(L, true);
    d = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 2);
    sb_init(&b, L, PAD);
    sb_tok(&b, BOS, false);
    sb_text(&b, "ab cd", true);
    sb_tok(&b, EOS, true);
    sb_tok(&b, BOS, false);
    expect_seq(d, LC_DATA_TRAIN, 0, L, b.ids, b.labels, "packed window 1");
    sb_init(&b, L, PAD);
    sb_tok(&b, BOS, false);
    sb_text(&b, "ef", true);
    sb_tok(&b, EOS, true);
    expect_seq(d, LC_DATA_TRAIN, 1, L, b.ids, b.labels, "packed window 2");
    lc_data_free(d);

    /* one file = one document: blank lines stay inside */
    c = cfg_of(16, false);
    c.text_docs = LC_TEXT_DOCS_FILE;
    d = data_of(tok, &c, "ab\n\ncd\n\n", LC_DATA_FORMAT_TEXT);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 1);
    sb_init(&b, 16, PAD);
    sb_tok(&b, BOS, false);
    sb_text(&b, "ab\n\ncd", true);
    sb_tok(&b, EOS, true);
    expect_seq(d, LC_DATA_TRAIN, 0, 16, b.ids, b.labels, "whole-file document");
    lc_data_free(d);
    lc_tokenizer_free(tok);
}
END_TEST

/* A document longer than seq_len, packing off: split; each window after the first starts with BOS
 * and the previous window's last token, whose label is masked. Worked out by hand:
 * [BOS a b c d e f g h i j EOS], L = 5:
 *   [BOS a b c d]  labels a b c d -
 *   [BOS d e f g]  labels - e f g -
 *   [BOS g h i j]  labels - h i j -
 *   [BOS j EOS . .] labels - EOS - - -                                                      */
START_TEST(test_split_long_text) {
    lc_tokenizer *tok = tok_plain();
    lc_data_config c = cfg_of(5, false);
    lc_data *d = data_of(tok, &c, "abcdefghij", LC_DATA_FORMAT_TEXT);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 4);
    int32_t a = C('a');
    const int32_t want_ids[4][5] = {{BOS, a, a + 1, a + 2, a + 3},
                                    {BOS, a + 3, a + 4, a + 5, a + 6},
                                    {BOS, a + 6, a + 7, a + 8, a + 9},
                                    {BOS, a + 9, EOS, PAD, PAD}};
    const int32_t want_lab[4][5] = {{a, a + 1, a + 2, a + 3, IGN},
                                    {IGN, a + 4, a + 5, a + 6, IGN},
                                    {IGN, a + 7, a + 8, a + 9, IGN},
                                    {IGN, EOS, IGN, IGN, IGN}};
    for (int i = 0; i < 4; i++) expect_seq(d, LC_DATA_TRAIN, i, 5, want_ids[i], want_lab[i], "split text");
    lc_data_free(d);
    lc_tokenizer_free(tok);
}
END_TEST

/* Property over many window lengths, packing on and off, with and without BOS: every token that
 * carries loss is the label of exactly one position, in order; every sequence starts with one
 * BOS (when the tokenizer adds it); padding has label -100; labels are the next ids. */
START_TEST(test_every_target_once) {
    static const char *text = "the cat sat\n\non the mat.\n\na\n\nlonger line with more words in it\n\nok";
    static const char *docs[] = {"the cat sat", "on the mat.", "a", "longer line with more words in it", "ok"};
    for (int with_bos = 0; with_bos < 2; with_bos++) {
        lc_tokenizer *tok = tiny_tok((tiny_opts){false, with_bos != 0, false, PAD});
        /* The targets: each document's tokens and EOS, less its first token without BOS. */
        int32_t want[512];
        size_t nw = 0;
        for (size_t k = 0; k < sizeof docs / sizeof *docs; k++) {
            size_t m = enc(docs[k], want + nw);
            if (!with_bos) memmove(want + nw, want + nw + 1, --m * sizeof *want);
            nw += m;
            want[nw++] = EOS;
        }
        for (int packing = 0; packing < 2; packing++) {
            for (int L = 3; L <= 40; L++) {
                lc_data_config c = cfg_of(L, packing != 0);
                lc_data *d = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
                int64_t n = lc_data_n_sequences(d, LC_DATA_TRAIN);
                int32_t got[512], ids[64], labels[64];
                size_t ng = 0;
                for (int64_t i = 0; i < n; i++) {
                    ck_assert(lc_data_sequence(d, LC_DATA_TRAIN, i, ids, labels, NULL) == LC_OK);
                    if (with_bos) {
                        ck_assert_msg(ids[0] == BOS && ids[1] != BOS, "L=%d packing=%d seq %lld: not one BOS first", L,
                                      packing, (long long)i);
                    } else {
                        ck_assert_msg(ids[0] != BOS, "L=%d: BOS without add_bos", L);
                    }
                    ck_assert_int_eq(labels[L - 1], IGN);
                    for (int t = 0; t < L; t++) {
                        if (labels[t] == IGN) continue;
                        ck_assert_int_eq(labels[t], ids[t + 1]);
                        ck_assert(ng < 512);
                        got[ng++] = labels[t];
                    }
                }
                ck_assert_msg(ng == nw && memcmp(got, want, nw * sizeof *got) == 0,
                              "L=%d packing=%d bos=%d: labels are not the targets once each (%zu vs %zu)", L, packing,
                              with_bos, ng, nw);
                lc_data_stats s;
                lc_data_get_stats(d, &s);
                ck_assert_int_eq(s.n_label_tokens[LC_DATA_TRAIN], (int64_t)nw);
                lc_data_free(d);
            }
        }
        lc_tokenizer_free(tok);
    }
}
END_TEST

/* ---- prompt + completion ------------------------------------------------------------------- */

START_TEST(test_prompt_completion) {
    lc_tokenizer *tok = tok_plain();
    const int L = 8;
    /* [BOS a b c d EOS]: labels only on c, d and EOS (the completion), shifted by one */
    lc_data_config c = cfg_of(L, false);
    lc_data *d = data_of(tok, &c, "{\"prompt\": \"ab\", \"completion\": \"cd\"}\n", LC_DATA_FORMAT_AUTO);
    int32_t a = C('a');
    const int32_t ids[8] = {BOS, a, a + 1, a + 2, a + 3, EOS, PAD, PAD};
    const int32_t lab[8] = {IGN, IGN, a + 2, a + 3, EOS, IGN, IGN, IGN};
    expect_seq(d, LC_DATA_TRAIN, 0, L, ids, lab, "prompt-completion (by hand)");
    lc_data_free(d);

    /* A token that straddles the boundary ("qu": prompt "xq", completion "u") carries loss. */
    d = data_of(tok, &c, "{\"prompt\": \"xq\", \"completion\": \"u\"}", LC_DATA_FORMAT_JSONL);
    const int32_t ids2[8] = {BOS, C('x'), QU, EOS, PAD, PAD, PAD, PAD};
    const int32_t lab2[8] = {IGN, QU, EOS, IGN, IGN, IGN, IGN, IGN};
    expect_seq(d, LC_DATA_TRAIN, 0, L, ids2, lab2, "straddling token");
    lc_data_free(d);

    /* The whole text is tokenized at once: with add_space_prefix the completion gets no ▁ of its
     * own: "▁abcd" -> [BOS ▁ a b c d EOS]. */
    lc_tokenizer *tsp = tiny_tok((tiny_opts){false, true, true, PAD});
    d = data_of(tsp, &c, "{\"prompt\": \"ab\", \"completion\": \"cd\"}", LC_DATA_FORMAT_JSONL);
    const int32_t ids3[8] = {BOS, SP, a, a + 1, a + 2, a + 3, EOS, PAD};
    const int32_t lab3[8] = {IGN, IGN, IGN, a + 2, a + 3, EOS, IGN, IGN};
    expect_seq(d, LC_DATA_TRAIN, 0, L, ids3, lab3, "space prefix once");
    lc_data_free(d);
    lc_tokenizer_free(tsp);

    /* Truncation keep_start (packing off): a prompt-completion example longer than seq_len keeps
     * its first L tokens; one whose prompt fills the window has nothing to learn and is dropped. */
    c = cfg_of(6, false);
    d = new_data(tok, &c);
    add_mem(d, "pc.jsonl",
            "{\"prompt\": \"ab\", \"completion\": \"cdefg\"}\n"
            "{\"prompt\": \"abcdefgh\", \"completion\": \"x\"}\n",
            LC_DATA_FORMAT_JSONL, LC_DATA_TRAIN);
    finalize(d);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 1);
    const int32_t ids4[6] = {BOS, a, a + 1, a + 2, a + 3, a + 4};
    const int32_t lab4[6] = {IGN, IGN, a + 2, a + 3, a + 4, IGN};
    expect_seq(d, LC_DATA_TRAIN, 0, 6, ids4, lab4, "keep_start truncation");
    lc_data_stats s;
    lc_data_get_stats(d, &s);
    ck_assert_int_eq(s.n_truncated, 2);
    ck_assert_int_eq(s.n_dropped, 1);
    lc_data_free(d);

    /* Only such examples: zero tokens carry loss -> a clean error naming the file. */
    d = new_data(tok, &c);
    add_mem(d, "long_prompts.jsonl", "{\"prompt\": \"abcdefgh\", \"completion\": \"x\"}\n", LC_DATA_FORMAT_JSONL,
            LC_DATA_TRAIN);
    static const char *const need[] = {"long_prompts.jsonl", "zero tokens carry loss", "seq_len", NULL};
    expect_error(lc_data_finalize(d), LC_ERR_FORMAT, need, "all prompts truncated");
    lc_data_free(d);
    lc_tokenizer_free(tok);
}
END_TEST

/* ---- chat ---------------------------------------------------------------------------------- */

static const char CHAT_ROW[] = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
                               " {\"role\": \"user\", \"content\": \"  hi  \"},"
                               " {\"role\": \"assistant\", \"content\": \" yo\\n\"},"
                               " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"ok\"}, {\"type\": "
                               "\"text\", \"text\": \"?\"}]},"
                               " {\"role\": \"assistant\", \"content\": \"fine.\"}]}\n";

START_TEST(test_chat_gemma_render) {
    lc_tokenizer *tok = tok_gemma_like();
    lc_data_config c = cfg_of(160, false);
    lc_data *d = data_of(tok, &c, CHAT_ROW, LC_DATA_FORMAT_AUTO);
    lc_data_stats s;
    lc_data_get_stats(d, &s);
    ck_assert_int_eq(s.chat_template, LC_CHAT_TEMPLATE_GEMMA);
    char *text, *trained;
    decode_seq(tok, d, 0, 160, &text, &trained);
    /* System folded into the first user turn, content trimmed, assistant -> model, one BOS. */
    const char *want = "<bos><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n"
                       "<start_of_turn>model\nyo<end_of_turn>\n"
                       "<start_of_turn>user\nok?<end_of_turn>\n"
                       "<start_of_turn>model\nfine.<end_of_turn>\n";
    ck_assert_str_eq(text, want);
    /* Loss on the assistant turns and their <end_of_turn> only. */
    ck_assert_str_eq(trained, "yo<end_of_turn>fine.<end_of_turn>");
    free(text);
    free(trained);
    lc_data_free(d);

    /* Conversational prompt-completion: loss only on the completion's assistant turns. */
    d = data_of(
        tok, &c,
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"a\"},"
        " {\"role\": \"user\", \"content\": \"b\"}],"
        " \"completion\": [{\"role\": \"assistant\", \"content\": \"c\"}]}",
        LC_DATA_FORMAT_JSONL);
    decode_seq(tok, d, 0, 160, &text, &trained);
    ck_assert_str_eq(text, "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\na<end_of_turn>\n"
                           "<start_of_turn>user\nb<end_of_turn>\n<start_of_turn>model\nc<end_of_turn>\n");
    ck_assert_str_eq(trained, "c<end_of_turn>");
    free(text);
    free(trained);
    lc_data_free(d);
    lc_tokenizer_free(tok);
}
END_TEST

START_TEST(test_chat_chatml_render) {
    lc_tokenizer *tok = tok_plain(); /* no Gemma markers: the default ChatML template */
    lc_data_config c = cfg_of(200, false);
    lc_data *d = data_of(tok, &c, CHAT_ROW, LC_DATA_FORMAT_JSONL);
    lc_data_stats s;
    lc_data_get_stats(d, &s);
    ck_assert_int_eq(s.chat_template, LC_CHAT_TEMPLATE_CHATML);
    char *text, *trained;
    decode_seq(tok, d, 0, 200, &text, &trained);
    const char *want = "<bos><|im_start|>system\nBe brief.<|im_end|>\n"
                       "<|im_start|>user\n  hi  <|im_end|>\n"
                       "<|im_start|>assistant\n yo\n<|im_end|>\n"
                       "<|im_start|>user\nok?<|im_end|>\n"
                       "<|im_start|>assistant\nfine.<|im_end|>\n";
    ck_assert_str_eq(text, want);
    ck_assert_str_eq(trained, " yo\n<|im_end|>fine.<|im_end|>");
    free(text);
    free(trained);
    lc_data_free(d);

    /* An explicit template beats detection; a model template with Gemma markers selects Gemma. */
    c.chat_template_text = "{{ bos_token }}{% for m in messages %}<start_of_turn>...<end_of_turn>{% endfor %}";
    d = new_data(tok, &c);
    lc_data_get_stats(d, &s);
    ck_assert_int_eq(s.chat_template, LC_CHAT_TEMPLATE_GEMMA);
    lc_data_free(d);
    c.chat_template_text = NULL;
    c.chat_template = LC_CHAT_TEMPLATE_CHATML;
    lc_tokenizer *tg = tok_gemma_like();
    d = new_data(tg, &c);
    lc_data_get_stats(d, &s);
    ck_assert_int_eq(s.chat_template, LC_CHAT_TEMPLATE_CHATML);
    lc_data_free(d);
    lc_tokenizer_free(tg);
    lc_tokenizer_free(tok);
}
END_TEST

START_TEST(test_chat_template_detect) {
    lc_tokenizer *tg = tok_gemma_like(), *tp = tok_plain();
    ck_assert_int_eq(lc_chat_template_detect("x<start_of_turn>y<end_of_turn>", NULL), LC_CHAT_TEMPLATE_GEMMA);
    ck_assert_int_eq(lc_chat_template_detect("<|im_start|>{{ m }}<|im_end|>", tg), LC_CHAT_TEMPLATE_CHATML);
    ck_assert_int_eq(lc_chat_template_detect("only <start_of_turn>", NULL), LC_CHAT_TEMPLATE_CHATML);
    ck_assert_int_eq(lc_chat_template_detect(NULL, tg), LC_CHAT_TEMPLATE_GEMMA);
    ck_assert_int_eq(lc_chat_template_detect(NULL, tp), LC_CHAT_TEMPLATE_CHATML);
    ck_assert_int_eq(lc_chat_template_detect(NULL, NULL), LC_CHAT_TEMPLATE_CHATML);
    ck_assert_int_eq(lc_chat_template_from_gguf(NULL, tg), LC_CHAT_TEMPLATE_GEMMA);
    ck_assert_str_eq(lc_chat_template_name(LC_CHAT_TEMPLATE_GEMMA), "gemma");
    lc_data_format f;
    ck_assert(lc_data_format_parse("fortune", &f) == LC_OK && f == LC_DATA_FORMAT_FORTUNE);
    ck_assert(lc_data_format_parse("csv", &f) == LC_ERR_INVALID_ARG);
    lc_tokenizer_free(tg);
    lc_tokenizer_free(tp);
}
END_TEST

/* ---- the Gemma 3 vocabulary fixture -------------------------------------------------------- */

typedef struct gemma_vocab {
    char **tokens;
    float *scores;
    int32_t *types;
    char *pool;
    int32_t n_vocab;
    lc_tokenizer_spm_opts opts;
} gemma_vocab;

static int hexdigit(int c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Load the vocabulary part of tokenizer_gemma3.txt ("key value" header lines up to "vocab N",
 * then N lines "id type score hex-text"); ids it does not list become UNUSED placeholders. */
static lc_tokenizer *gemma_tokenizer(gemma_vocab *g) {
    memset(g, 0, sizeof *g);
    const char *path = LORAC_FIXTURE_DIR "/tokenizer_gemma3.txt";
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    g->opts = lc_tokenizer_spm_opts_default();
    char line[8192];
    long n_list = -1;
    while (fgets(line, sizeof line, f)) {
        char key[64];
        long v;
        if (sscanf(line, "%63s %ld", key, &v) != 2) continue;
        if (!strcmp(key, "n_vocab")) g->n_vocab = (int32_t)v;
        else if (!strcmp(key, "bos")) g->opts.bos_id = (int32_t)v;
        else if (!strcmp(key, "eos")) g->opts.eos_id = (int32_t)v;
        else if (!strcmp(key, "unk")) g->opts.unk_id = (int32_t)v;
        else if (!strcmp(key, "pad")) g->opts.pad_id = (int32_t)v;
        else if (!strcmp(key, "add_bos")) g->opts.add_bos = v != 0;
        else if (!strcmp(key, "add_eos")) g->opts.add_eos = v != 0;
        else if (!strcmp(key, "add_space_prefix")) g->opts.add_space_prefix = v != 0;
        else if (!strcmp(key, "vocab")) {
            n_list = v;
            break;
        }
    }
    ck_assert_msg(g->n_vocab > 0 && n_list > 0, "tokenizer fixture header");
    g->tokens = calloc((size_t)g->n_vocab, sizeof *g->tokens);
    g->scores = calloc((size_t)g->n_vocab, sizeof *g->scores);
    g->types = calloc((size_t)g->n_vocab, sizeof *g->types);
    g->pool = malloc((size_t)g->n_vocab * 24);
    ck_assert(g->tokens && g->scores && g->types && g->pool);
    for (long k = 0; k < n_list; k++) {
        ck_assert(fgets(line, sizeof line, f) != NULL);
        int id, type, off = 0;
        float score;
        ck_assert(sscanf(line, "%d %d %f %n", &id, &type, &score, &off) == 3);
        ck_assert(id >= 0 && id < g->n_vocab && g->tokens[id] == NULL);
        const char *h = line + off;
        size_t hn = strcspn(h, "\r\n");
        char *t = malloc(hn / 2 + 1);
        ck_assert(t != NULL);
        for (size_t i = 0; i < hn / 2; i++) t[i] = (char)(hexdigit(h[2 * i]) * 16 + hexdigit(h[2 * i + 1]));
        t[hn / 2] = '\0';
        g->tokens[id] = t;
        g->scores[id] = score;
        g->types[id] = type;
    }
    fclose(f);
    for (int32_t i = 0; i < g->n_vocab; i++) {
        if (g->tokens[i]) continue;
        char *p = g->pool + (size_t)i * 24;
        snprintf(p, 24, "[data-test-%d]", (int)i);
        g->tokens[i] = p;
        g->types[i] = LC_TOKEN_TYPE_UNUSED;
    }
    lc_tokenizer *tok = NULL;
    lc_status st =
        lc_tokenizer_new_spm((const char *const *)g->tokens, g->scores, g->types, g->n_vocab, &g->opts, &tok);
    ck_assert_msg(st == LC_OK, "gemma tokenizer: %s", lc_last_error());
    return tok;
}

static void gemma_free(gemma_vocab *g) {
    for (int32_t i = 0; i < g->n_vocab; i++)
        if (g->tokens[i] < g->pool || g->tokens[i] >= g->pool + (size_t)g->n_vocab * 24) free(g->tokens[i]);
    free(g->tokens);
    free(g->scores);
    free(g->types);
    free(g->pool);
}

START_TEST(test_chat_gemma_fixture_ids) {
    gemma_vocab g;
    lc_tokenizer *tok = gemma_tokenizer(&g);
    ck_assert_int_eq(lc_chat_template_detect(NULL, tok), LC_CHAT_TEMPLATE_GEMMA);
    lc_data_config c = cfg_of(24, false);
    /* The template's {{ bos_token }} and the tokenizer's add_bos must give one BOS, not two:
     * a leading "<bos>" in a JSONL text is folded into the single BOS as well. */
    lc_data *d = new_data(tok, &c);
    add_mem(d, "chat.jsonl",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"What is 2+2?\"},"
            " {\"role\": \"assistant\", \"content\": \"4\"}]}\n"
            "{\"text\": \"<bos><start_of_turn>user\\nWhat is "
            "2+2?<end_of_turn>\\n<start_of_turn>model\\n4<end_of_turn>\\n\"}\n",
            LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN);
    finalize(d);
    /* ids from the fixture's "chat" case (sentencepiece and transformers agree), BOS = 2, pad = 0 */
    static const int32_t chat[18] = {105, 2364, 107, 3689, 563, 236743, 236778, 236862, 236778,
                                     236881, 106, 107, 105, 4368, 107, 236812, 106, 107};
    int32_t ids[24], lab[24];
    for (int t = 0; t < 24; t++) {
        ids[t] = 0;
        lab[t] = IGN;
    }
    ids[0] = 2;
    memcpy(ids + 1, chat, sizeof chat);
    lab[15] = 236812; /* "4" after "model\n" */
    lab[16] = 106;    /* <end_of_turn> */
    expect_seq(d, LC_DATA_TRAIN, 0, 24, ids, lab, "gemma chat ids");
    /* The same conversation as a pre-rendered text with "<bos>": one BOS, loss on every token
     * after it, EOS (1) appended. */
    for (int t = 0; t < 24; t++) lab[t] = IGN;
    for (int t = 0; t < 18; t++) lab[t] = ids[t + 1];
    ids[19] = 1;
    lab[18] = 1;
    expect_seq(d, LC_DATA_TRAIN, 1, 24, ids, lab, "gemma text with <bos>");
    lc_data_free(d);
    lc_tokenizer_free(tok);
    gemma_free(&g);
}
END_TEST

START_TEST(test_one_bos) {
    lc_tokenizer *tok = tok_plain();
    lc_data_config c = cfg_of(8, false);
    /* "<bos><bos>ab" parsed as special (JSONL): still one BOS */
    lc_data *d = data_of(tok, &c, "{\"text\": \"<bos><bos>ab\"}", LC_DATA_FORMAT_JSONL);
    int32_t a = C('a');
    const int32_t ids[8] = {BOS, a, a + 1, EOS, PAD, PAD, PAD, PAD};
    const int32_t lab[8] = {a, a + 1, EOS, IGN, IGN, IGN, IGN, IGN};
    expect_seq(d, LC_DATA_TRAIN, 0, 8, ids, lab, "leading <bos> folded");
    lc_data_free(d);
    /* In a plain text file "<bos>" is text, not a control token (text_parse_special off). */
    d = data_of(tok, &c, "<bos>", LC_DATA_FORMAT_TEXT);
    int32_t got[8];
    ck_assert(lc_data_sequence(d, LC_DATA_TRAIN, 0, got, NULL, NULL) == LC_OK);
    ck_assert_int_eq(got[0], BOS);
    ck_assert_int_eq(got[1], BYTE0 + '<');
    lc_data_free(d);
    /* A text that already ends with EOS gets no second one. */
    d = data_of(tok, &c, "{\"text\": \"ab<eos>\"}", LC_DATA_FORMAT_JSONL);
    expect_seq(d, LC_DATA_TRAIN, 0, 8, ids, lab, "one EOS");
    lc_data_free(d);
    lc_tokenizer_free(tok);
    /* No add_bos: no BOS at all, the pad id falls back to EOS when the tokenizer has none. */
    tok = tiny_tok((tiny_opts){false, false, false, -1});
    d = data_of(tok, &c, "ab\n", LC_DATA_FORMAT_TEXT);
    const int32_t ids2[8] = {a, a + 1, EOS, EOS, EOS, EOS, EOS, EOS};
    const int32_t lab2[8] = {a + 1, EOS, IGN, IGN, IGN, IGN, IGN, IGN};
    expect_seq(d, LC_DATA_TRAIN, 0, 8, ids2, lab2, "no BOS, pad = EOS");
    lc_data_free(d);
    lc_tokenizer_free(tok);
}
END_TEST

/* ---- batches, shuffling, cursor ----------------------------------------------------------- */

/* n documents "d<k> ..." of different lengths, one per paragraph. */
static char *docs_text(int n) {
    size_t cap = (size_t)n * 64 + 1, k = 0;
    char *s = malloc(cap);
    ck_assert(s != NULL);
    for (int i = 0; i < n; i++) {
        k += (size_t)snprintf(s + k, cap - k, "d%d", i);
        for (int j = 0; j < i % 5; j++) k += (size_t)snprintf(s + k, cap - k, " x");
        k += (size_t)snprintf(s + k, cap - k, "\n\n");
    }
    return s;
}

START_TEST(test_batches_and_shuffle) {
    lc_tokenizer *tok = tok_plain();
    char *text = docs_text(10);
    lc_data_config c = cfg_of(16, false);
    c.shuffle = true;
    c.n_seq = 3;
    c.seed = 7;
    lc_data *d1 = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    lc_data *d2 = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    c.seed = 8;
    lc_data *d3 = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    const int64_t n = lc_data_n_sequences(d1, LC_DATA_TRAIN);
    ck_assert_int_eq(n, 10);
    int64_t o1[10], o2[10], o3[10], e1[10];
    ck_assert(lc_data_epoch_order(d1, 0, o1) == LC_OK);
    ck_assert(lc_data_epoch_order(d2, 0, o2) == LC_OK);
    ck_assert(lc_data_epoch_order(d3, 0, o3) == LC_OK);
    ck_assert(lc_data_epoch_order(d1, 1, e1) == LC_OK);
    ck_assert_msg(memcmp(o1, o2, sizeof o1) == 0, "same seed, different order");
    ck_assert_msg(memcmp(o1, o3, sizeof o1) != 0, "seeds 7 and 8 give the same order");
    ck_assert_msg(memcmp(o1, e1, sizeof o1) != 0, "epochs 0 and 1 have the same order");
    int seen[10] = {0};
    for (int i = 0; i < 10; i++) seen[o1[i]]++;
    for (int i = 0; i < 10; i++) ck_assert_int_eq(seen[i], 1);
    /* Batches follow the order and run on into the next epoch: 4 batches of 3 = 12 sequences. */
    int32_t ids[3 * 16], lab[3 * 16], pos[3 * 16], one[16], onel[16];
    lc_data_batch_info bi;
    for (int b = 0; b < 4; b++) {
        ck_assert(lc_data_next_batch(d1, ids, lab, pos, &bi) == LC_OK);
        ck_assert_int_eq(bi.n_real, 3);
        ck_assert_int_eq(bi.epoch_end, b == 3);
        ck_assert_int_eq(bi.epoch, 0);
        for (int s = 0; s < 3; s++) {
            int k = b * 3 + s;
            int64_t want = k < 10 ? o1[k] : e1[k - 10];
            ck_assert(lc_data_sequence(d1, LC_DATA_TRAIN, want, one, onel, NULL) == LC_OK);
            ck_assert_msg(memcmp(ids + s * 16, one, sizeof one) == 0, "batch %d row %d: wrong sequence", b, s);
            ck_assert(memcmp(lab + s * 16, onel, sizeof onel) == 0);
            for (int t = 0; t < 16; t++) ck_assert_int_eq(pos[s * 16 + t], t);
        }
    }
    lc_data_cursor cur;
    lc_data_get_cursor(d1, &cur);
    ck_assert_int_eq(cur.epoch, 1);
    ck_assert_int_eq(cur.position, 2);
    /* shuffle off: file order */
    c.shuffle = false;
    lc_data *d4 = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    ck_assert(lc_data_epoch_order(d4, 3, o3) == LC_OK);
    for (int i = 0; i < 10; i++) ck_assert_int_eq(o3[i], i);
    lc_data_free(d1);
    lc_data_free(d2);
    lc_data_free(d3);
    lc_data_free(d4);
    free(text);
    lc_tokenizer_free(tok);
}
END_TEST

/* The shuffle is uniform: over 6000 epochs of 3 sequences each of the 6 orders appears about
 * 1000 times (binomial sd ~ 29; the bound of +-150 is over 5 sd). */
START_TEST(test_shuffle_uniform) {
    lc_tokenizer *tok = tok_plain();
    lc_data_config c = cfg_of(8, false);
    c.shuffle = true;
    lc_data *d = data_of(tok, &c, "a\n\nb\n\nc\n", LC_DATA_FORMAT_TEXT);
    int count[3][3][3] = {{{0}}};
    for (int64_t e = 0; e < 6000; e++) {
        int64_t o[3];
        ck_assert(lc_data_epoch_order(d, e, o) == LC_OK);
        count[o[0]][o[1]][o[2]]++;
    }
    int perms = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int k = 0; k < 3; k++) {
                if (a == b || b == k || a == k) {
                    ck_assert_int_eq(count[a][b][k], 0);
                    continue;
                }
                perms++;
                ck_assert_msg(count[a][b][k] > 850 && count[a][b][k] < 1150, "order %d%d%d seen %d times of 6000", a, b,
                              k, count[a][b][k]);
            }
    ck_assert_int_eq(perms, 6);
    lc_data_free(d);
    lc_tokenizer_free(tok);
}
END_TEST

START_TEST(test_cursor_resume) {
    lc_tokenizer *tok = tok_plain();
    char *text = docs_text(7);
    lc_data_config c = cfg_of(12, true);
    c.shuffle = true;
    c.n_seq = 2;
    c.seed = 1234;
    enum { K = 4, M = 9, SZ = 2 * 12 };
    /* straight run: K + M batches */
    lc_data *a = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    int32_t straight[K + M][SZ], ids[SZ], lab[SZ], labs[K + M][SZ];
    for (int b = 0; b < K + M; b++) ck_assert(lc_data_next_batch(a, straight[b], labs[b], NULL, NULL) == LC_OK);
    lc_data_free(a);
    /* K batches, save the cursor, a fresh data set from the same input, restore, M more */
    a = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    for (int b = 0; b < K; b++) ck_assert(lc_data_next_batch(a, ids, lab, NULL, NULL) == LC_OK);
    lc_data_cursor cur;
    ck_assert(lc_data_get_cursor(a, &cur) == LC_OK);
    ck_assert(cur.fingerprint != 0);
    ck_assert_msg(cur.position != 0 && (K + M) * 2 > lc_data_n_sequences(a, LC_DATA_TRAIN),
                  "the test needs a cursor inside an epoch and a run that crosses into the next one");
    lc_data_free(a);
    lc_data *r = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    ck_assert(lc_data_fingerprint(r) == cur.fingerprint);
    ck_assert_msg(lc_data_set_cursor(r, &cur) == LC_OK, "%s", lc_last_error());
    for (int b = K; b < K + M; b++) {
        ck_assert(lc_data_next_batch(r, ids, lab, NULL, NULL) == LC_OK);
        ck_assert_msg(memcmp(ids, straight[b], sizeof ids) == 0, "resumed batch %d differs", b);
        ck_assert(memcmp(lab, labs[b], sizeof lab) == 0);
    }
    lc_data_free(r);
    /* A cursor of other data (another seed) is refused; a bad position too. */
    c.seed = 99;
    r = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    static const char *const need[] = {"fingerprint", NULL};
    expect_error(lc_data_set_cursor(r, &cur), LC_ERR_STATE, need, "foreign cursor");
    lc_data_cursor bad = {0, lc_data_n_sequences(r, LC_DATA_TRAIN), 0};
    static const char *const need2[] = {"position", NULL};
    expect_error(lc_data_set_cursor(r, &bad), LC_ERR_INVALID_ARG, need2, "position out of range");
    lc_data_free(r);
    free(text);
    lc_tokenizer_free(tok);
}
END_TEST

/* ---- held-out split ------------------------------------------------------------------------ */

/* Each document's sequence starts [BOS 'd' digits...]: read its number back. */
static int doc_number(const int32_t *ids) {
    ck_assert_int_eq(ids[0], BOS);
    ck_assert_int_eq(ids[1], C('d'));
    int v = 0;
    for (int t = 2; ids[t] >= C('0') && ids[t] <= C('9'); t++) v = v * 10 + (ids[t] - C('0'));
    return v;
}

static void split_members(const lc_data *d, lc_data_split s, int *member, int n) {
    for (int i = 0; i < n; i++) member[i] = 0;
    int32_t ids[16];
    for (int64_t i = 0; i < lc_data_n_sequences(d, s); i++) {
        ck_assert(lc_data_sequence(d, s, i, ids, NULL, NULL) == LC_OK);
        member[doc_number(ids)]++;
    }
}

START_TEST(test_heldout_split) {
    lc_tokenizer *tok = tok_plain();
    enum { N = 40 };
    char *text = docs_text(N);
    lc_data_config c = cfg_of(16, false);
    c.eval_fraction = 0.2;
    c.split_seed = 5;
    lc_data *d1 = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    c.seed = 1000; /* another shuffle seed: the same held-out examples */
    c.shuffle = true;
    lc_data *d2 = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    c.split_seed = 6;
    lc_data *d3 = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    lc_data_stats s;
    lc_data_get_stats(d1, &s);
    ck_assert_int_eq(s.n_examples[LC_DATA_EVAL], 8);
    ck_assert_int_eq(s.n_examples[LC_DATA_TRAIN], 32);
    int tr1[N], ev1[N], ev2[N], ev3[N];
    split_members(d1, LC_DATA_TRAIN, tr1, N);
    split_members(d1, LC_DATA_EVAL, ev1, N);
    split_members(d2, LC_DATA_EVAL, ev2, N);
    split_members(d3, LC_DATA_EVAL, ev3, N);
    int n_ev = 0, differ = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_msg(tr1[i] + ev1[i] == 1, "document %d is in %d splits", i, tr1[i] + ev1[i]);
        ck_assert_int_eq(ev1[i], ev2[i]);
        n_ev += ev1[i];
        differ += ev1[i] != ev3[i];
    }
    ck_assert_int_eq(n_ev, 8);
    ck_assert_msg(differ > 0, "split seeds 5 and 6 hold out the same documents");
    /* Eval batches: file order, the last one padded with all-ignored rows. */
    c = cfg_of(16, false);
    c.eval_fraction = 0.2;
    c.split_seed = 5;
    c.n_seq = 3;
    lc_data *d4 = data_of(tok, &c, text, LC_DATA_FORMAT_TEXT);
    ck_assert_int_eq(lc_data_n_eval_batches(d4), 3);
    int32_t ids[3 * 16], lab[3 * 16];
    lc_data_batch_info bi;
    ck_assert(lc_data_eval_batch(d4, 2, ids, lab, NULL, &bi) == LC_OK);
    ck_assert_int_eq(bi.n_real, 2);
    for (int t = 0; t < 16; t++) {
        ck_assert_int_eq(ids[2 * 16 + t], PAD);
        ck_assert_int_eq(lab[2 * 16 + t], IGN);
    }
    int last = -1;
    for (int64_t b = 0; b < 3; b++) {
        ck_assert(lc_data_eval_batch(d4, b, ids, lab, NULL, &bi) == LC_OK);
        for (int k = 0; k < bi.n_real; k++) {
            int v = doc_number(ids + k * 16);
            ck_assert_msg(ev1[v] && v > last, "eval batch %lld: document %d out of order or not held out", (long long)b,
                          v);
            last = v;
        }
    }
    ck_assert(lc_data_eval_batch(d4, 3, ids, lab, NULL, NULL) == LC_ERR_INVALID_ARG);
    lc_data_free(d1);
    lc_data_free(d2);
    lc_data_free(d3);
    lc_data_free(d4);

    /* A separate eval file */
    c = cfg_of(16, false);
    lc_data *d = new_data(tok, &c);
    add_mem(d, "train.txt", "d1\n\nd2\n", LC_DATA_FORMAT_TEXT, LC_DATA_TRAIN);
    add_mem(d, "eval.txt", "d3\n", LC_DATA_FORMAT_TEXT, LC_DATA_EVAL);
    finalize(d);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 2);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_EVAL), 1);
    ck_assert(lc_data_sequence(d, LC_DATA_EVAL, 0, ids, NULL, NULL) == LC_OK);
    ck_assert_int_eq(doc_number(ids), 3);
    lc_data_free(d);

    /* eval_fraction with a single example cannot hold anything out */
    c.eval_fraction = 0.5;
    d = new_data(tok, &c);
    add_mem(d, "one.txt", "d1\n", LC_DATA_FORMAT_TEXT, LC_DATA_TRAIN);
    static const char *const need[] = {"eval_fraction", "at least 2", NULL};
    expect_error(lc_data_finalize(d), LC_ERR_FORMAT, need, "eval_fraction with one example");
    lc_data_free(d);
    free(text);
    lc_tokenizer_free(tok);
}
END_TEST

/* ---- fortunes ------------------------------------------------------------------------------ */

START_TEST(test_fortunes) {
    const char *path = LORAC_FIXTURE_DIR "/data_fortunes.txt";
    char **docs = NULL;
    size_t n = 0;
    ck_assert_msg(lc_data_read_fortunes(path, &docs, &n) == LC_OK, "%s", lc_last_error());
    ck_assert_int_eq(n, 4);
    ck_assert_str_eq(docs[0], "The first entry has one line.");
    ck_assert_str_eq(docs[1], "A second entry\n  keeps its indentation\nand spans three lines.");
    ck_assert_str_eq(docs[2], "Third entry, after an empty one and a blank line.\n\nIt has a blank line inside.");
    ck_assert_str_eq(docs[3], "Last entry, without a closing delimiter.");
    lc_data_docs_free(docs, n);

    /* As training data: one TEXT example per entry. */
    lc_tokenizer *tok = tok_plain();
    lc_data_config c = cfg_of(128, false);
    lc_data *d = new_data(tok, &c);
    ck_assert_msg(lc_data_add_fortunes(d, path, LC_DATA_TRAIN) == LC_OK, "%s", lc_last_error());
    finalize(d);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 4);
    char *text, *trained;
    decode_seq(tok, d, 1, 128, &text, &trained);
    ck_assert_str_eq(text, "<bos>A second entry\n  keeps its indentation\nand spans three lines.<eos>");
    ck_assert_str_eq(trained, "A second entry\n  keeps its indentation\nand spans three lines.<eos>");
    free(text);
    free(trained);
    lc_data_free(d);

    /* A directory: regular files in name order; *.dat, hidden files and symbolic links skipped. */
    char dir[] = "/tmp/lorac_test_data_XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    char p1[128], p2[128], p3[128], p4[128];
    snprintf(p1, sizeof p1, "%s/b", dir);
    snprintf(p2, sizeof p2, "%s/a", dir);
    snprintf(p3, sizeof p3, "%s/a.dat", dir);
    snprintf(p4, sizeof p4, "%s/a.u8", dir);
    FILE *f = fopen(p1, "wb");
    fputs("bee\n%\nbe\n%\n", f);
    fclose(f);
    f = fopen(p2, "wb");
    fputs("ant\n%\n", f);
    fclose(f);
    f = fopen(p3, "wb");
    fputs("\x01\x02\x00\x03", f);
    fclose(f);
    ck_assert(symlink("a", p4) == 0);
    d = new_data(tok, &c);
    ck_assert_msg(lc_data_add_fortunes(d, dir, LC_DATA_TRAIN) == LC_OK, "%s", lc_last_error());
    finalize(d);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 3);
    decode_seq(tok, d, 0, 128, &text, &trained);
    ck_assert_str_eq(text, "<bos>ant<eos>");
    free(text);
    free(trained);
    decode_seq(tok, d, 2, 128, &text, &trained);
    ck_assert_str_eq(text, "<bos>be<eos>");
    free(text);
    free(trained);
    lc_data_free(d);
    unlink(p1);
    unlink(p2);
    unlink(p3);
    unlink(p4);
    rmdir(dir);

    /* Debian's fortunes, when installed: the default training text reads. */
    struct stat sb;
    if (stat(LC_DATA_FORTUNES_DIR "/fortunes", &sb) == 0) {
        ck_assert_msg(lc_data_read_fortunes(LC_DATA_FORTUNES_DIR "/fortunes", &docs, &n) == LC_OK, "%s",
                      lc_last_error());
        ck_assert(n > 100);
        lc_data_docs_free(docs, n);
    }
    lc_tokenizer_free(tok);
}
END_TEST

START_TEST(test_fixture_files) {
    lc_tokenizer *tok = tok_plain();
    lc_data_config c = cfg_of(64, false);
    lc_data *d = new_data(tok, &c);
    ck_assert_msg(lc_data_add_file(d, LORAC_FIXTURE_DIR "/data_chat.jsonl", LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN) ==
                      LC_OK,
                  "%s", lc_last_error());
    finalize(d);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 3);
    char *text, *trained;
    decode_seq(tok, d, 0, 64, &text, &trained);
    ck_assert_str_eq(text, "<bos><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n");
    ck_assert_str_eq(trained, "yo<|im_end|>");
    free(text);
    free(trained);
    decode_seq(tok, d, 1, 64, &text, &trained);
    ck_assert_str_eq(text, "<bos>abcd<eos>");
    ck_assert_str_eq(trained, "cd<eos>");
    free(text);
    free(trained);
    decode_seq(tok, d, 2, 64, &text, &trained);
    ck_assert_str_eq(text, "<bos>ef<eos>");
    ck_assert_str_eq(trained, "ef<eos>");
    free(text);
    free(trained);
    /* adding after finalize is a state error */
    ck_assert(lc_data_add_memory(d, "late", "x", 1, LC_DATA_FORMAT_TEXT, LC_DATA_TRAIN) == LC_ERR_STATE);
    ck_assert(lc_data_finalize(d) == LC_ERR_STATE);
    lc_data_free(d);

    /* A text file whose first character is '{' is JSONL unless the format is given. */
    d = new_data(tok, &c);
    ck_assert(lc_data_add_memory(d, "brace.txt", "{curly}\n", 8, LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN) == LC_ERR_FORMAT);
    ck_assert(lc_data_add_memory(d, "brace.txt", "{curly}\n", 8, LC_DATA_FORMAT_TEXT, LC_DATA_TRAIN) == LC_OK);
    finalize(d);
    decode_seq(tok, d, 0, 64, &text, &trained);
    ck_assert_str_eq(text, "<bos>{curly}<eos>");
    free(text);
    free(trained);
    lc_data_free(d);
    lc_tokenizer_free(tok);
}
END_TEST

/* ---- bad input --------------------------------------------------------------------------- */

START_TEST(test_bad_files) {
    lc_tokenizer *tok = tok_plain();
    lc_data_config c = cfg_of(16, false);
    lc_data *d = new_data(tok, &c);
    static const char *const missing[] = {"/nonexistent/lorac/data.txt", "No such file", NULL};
    expect_error(lc_data_add_file(d, "/nonexistent/lorac/data.txt", LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN), LC_ERR_IO,
                 missing, "missing file");
    static const char *const empty[] = {"data_empty.txt", "empty", NULL};
    expect_error(lc_data_add_file(d, LORAC_FIXTURE_DIR "/data_empty.txt", LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN),
                 LC_ERR_FORMAT, empty, "empty file");
    static const char *const dir[] = {"directory", NULL};
    expect_error(lc_data_add_file(d, LORAC_FIXTURE_DIR, LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN), LC_ERR_IO, dir,
                 "a directory");
    static const char *const syn[] = {"data_bad_syntax.jsonl:3", "JSON syntax error", NULL};
    expect_error(lc_data_add_file(d, LORAC_FIXTURE_DIR "/data_bad_syntax.jsonl", LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN),
                 LC_ERR_FORMAT, syn, "JSONL syntax error");
    static const char *const none[] = {"no example", NULL};
    expect_error(lc_data_finalize(d), LC_ERR_FORMAT, none, "nothing added");
    lc_data_free(d);
    lc_tokenizer_free(tok);
}
END_TEST

START_TEST(test_bad_bytes) {
    lc_tokenizer *tok = tok_plain();
    static const char *const nul[] = {"nul.txt", "byte offset 5", "line 2", "NUL", NULL};
    expect_add_error(tok, "nul.txt", "abc\nd\0ef", 8, LC_DATA_FORMAT_AUTO, LC_ERR_FORMAT, nul);
    /* 0xC3 0x28: a lead byte followed by a non-continuation byte, at offset 7 */
    static const char *const utf[] = {"bad_utf8.txt", "byte offset 7", "invalid UTF-8", "line 2", NULL};
    expect_add_error(tok, "bad_utf8.txt", "hello\nx\xC3\x28yz", 11, LC_DATA_FORMAT_TEXT, LC_ERR_FORMAT, utf);
    static const char *const overlong[] = {"overlong.txt", "byte offset 1", NULL};
    expect_add_error(tok, "overlong.txt", "a\xC0\xAF", 3, LC_DATA_FORMAT_TEXT, LC_ERR_FORMAT, overlong);
    static const char *const surrogate[] = {"surrogate.txt", "byte offset 0", NULL};
    expect_add_error(tok, "surrogate.txt", "\xED\xA0\x80", 3, LC_DATA_FORMAT_TEXT, LC_ERR_FORMAT, surrogate);
    static const char *const truncated[] = {"cut.txt", "byte offset 2", NULL};
    expect_add_error(tok, "cut.txt", "ab\xE2\x96", 4, LC_DATA_FORMAT_TEXT, LC_ERR_FORMAT, truncated);
    static const char *const blank[] = {"blank.txt", "no document", NULL};
    expect_add_error(tok, "blank.txt", " \n\t\n", 4, LC_DATA_FORMAT_TEXT, LC_ERR_FORMAT, blank);
    static const char *const nofort[] = {"f.txt", "no fortune", NULL};
    expect_add_error(tok, "f.txt", "%\n%\n", 4, LC_DATA_FORMAT_FORTUNE, LC_ERR_FORMAT, nofort);
    static const char *const empty[] = {"e.txt", "empty", NULL};
    expect_add_error(tok, "e.txt", "", 0, LC_DATA_FORMAT_TEXT, LC_ERR_FORMAT, empty);
    /* A BOM and valid multi-byte text are fine (byte fallback covers the characters). */
    lc_data_config c = cfg_of(16, false);
    lc_data *d = new_data(tok, &c);
    add_mem(d, "bom.txt", "\xEF\xBB\xBFok \xE2\x96\x81\xF0\x9F\x98\x80\n", LC_DATA_FORMAT_AUTO, LC_DATA_TRAIN);
    lc_data_free(d);
    lc_tokenizer_free(tok);
}
END_TEST

static void jsonl_error(const lc_tokenizer *tok, const char *rows, const char *const *needles) {
    expect_add_error(tok, "rows.jsonl", rows, strlen(rows), LC_DATA_FORMAT_JSONL, LC_ERR_FORMAT, needles);
}

START_TEST(test_bad_jsonl) {
    lc_tokenizer *tok = tok_gemma_like();
    const char *ok = "{\"text\": \"ab\"}\n\n";
    char rows[4096];
#define ROWS(third) (snprintf(rows, sizeof rows, "%s%s\n%s", ok, "{\"text\": \"c\"}", third), rows)
    /* the bad row is on line 4 (line 2 is blank) */
    static const char *const syn[] = {"rows.jsonl:4", "JSON syntax error", "byte 12", NULL};
    jsonl_error(tok, ROWS("{\"text\": 1,}\n"), syn);
    static const char *const trail[] = {"rows.jsonl:4", "text after the object", NULL};
    jsonl_error(tok, ROWS("{\"text\": \"a\"} {\"text\": \"b\"}\n"), trail);
    static const char *const notobj[] = {"rows.jsonl:4", "must be an object", "an array", NULL};
    jsonl_error(tok, ROWS("[1, 2]\n"), notobj);
    static const char *const nofield[] = {"rows.jsonl:4", "\"text\"", "\"messages\"", NULL};
    jsonl_error(tok, ROWS("{\"txt\": \"a\"}\n"), nofield);
    static const char *const texttype[] = {"rows.jsonl:4", "field \"text\" must be a string", "a number", NULL};
    jsonl_error(tok, ROWS("{\"text\": 5}\n"), texttype);
    {
        static char deep[2 * 1100 + 64];
        size_t k = 0;
        k += (size_t)sprintf(deep + k, "{\"text\": \"a\", \"x\": ");
        for (int d = 0; d < 1100; d++) deep[k++] = '[';
        for (int d = 0; d < 1100; d++) deep[k++] = ']';
        sprintf(deep + k, "}\n");
        static const char *const nest[] = {"rows.jsonl:4", "nested deeper than", NULL};
        jsonl_error(tok, ROWS(deep), nest);
    }
    static const char *const dupkey[] = {"rows.jsonl:4", "the key \"text\" twice", NULL};
    jsonl_error(tok, ROWS("{\"text\": \"a\", \"text\": \"b\"}\n"), dupkey);
    static const char *const dupmsg[] = {"rows.jsonl:4", "messages[0] has the key \"content\" twice", NULL};
    jsonl_error(tok, ROWS("{\"messages\": [{\"role\": \"user\", \"content\": \"a\", \"content\": \"b\"}]}\n"), dupmsg);
    static const char *const emptytext[] = {"rows.jsonl:4", "\"text\" is an empty string", NULL};
    jsonl_error(tok, ROWS("{\"text\": \"\"}\n"), emptytext);
    static const char *const nocomp[] = {"rows.jsonl:4", "without the field \"completion\"", NULL};
    jsonl_error(tok, ROWS("{\"prompt\": \"a\"}\n"), nocomp);
    static const char *const comptype[] = {"rows.jsonl:4", "field \"completion\" must be a string", "null", NULL};
    jsonl_error(tok, ROWS("{\"prompt\": \"a\", \"completion\": null}\n"), comptype);
    static const char *const msgtype[] = {"rows.jsonl:4", "field \"messages\" must be an array", NULL};
    jsonl_error(tok, ROWS("{\"messages\": \"hi\"}\n"), msgtype);
    static const char *const msgempty[] = {"rows.jsonl:4", "empty array", NULL};
    jsonl_error(tok, ROWS("{\"messages\": []}\n"), msgempty);
    static const char *const role[] = {"rows.jsonl:4", "messages[1].role", "\"tool\"", "not a known role", NULL};
    jsonl_error(
        tok,
        ROWS("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"tool\", \"content\": \"b\"}]}\n"),
        role);
    static const char *const norole[] = {"rows.jsonl:4", "messages[0] lacks the field \"role\"", NULL};
    jsonl_error(tok, ROWS("{\"messages\": [{\"content\": \"a\"}]}\n"), norole);
    static const char *const roletype[] = {"rows.jsonl:4", "messages[0].role must be a string", NULL};
    jsonl_error(tok, ROWS("{\"messages\": [{\"role\": 1, \"content\": \"a\"}]}\n"), roletype);
    static const char *const content[] = {"rows.jsonl:4", "messages[0].content must be a string", "a number", NULL};
    jsonl_error(tok, ROWS("{\"messages\": [{\"role\": \"user\", \"content\": 3}]}\n"), content);
    static const char *const part[] = {"rows.jsonl:4", "messages[0].content[1]", NULL};
    jsonl_error(tok,
                ROWS("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, "
                     "{\"type\": \"image\"}]}]}\n"),
                part);
    static const char *const noasst[] = {"rows.jsonl:4", "zero tokens carry loss", "no assistant turn", NULL};
    jsonl_error(tok, ROWS("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\n"), noasst);
    static const char *const order[] = {"rows.jsonl:4", "messages[2]", "alternate", NULL};
    jsonl_error(tok,
                ROWS("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": "
                     "\"b\"}, {\"role\": \"assistant\", \"content\": \"c\"}]}\n"),
                order);
    static const char *const first[] = {"rows.jsonl:4", "messages[1]", "alternate", NULL};
    jsonl_error(
        tok,
        ROWS("{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"assistant\", \"content\": "
             "\"b\"}]}\n"),
        first);
#undef ROWS
    lc_tokenizer_free(tok);
}
END_TEST

START_TEST(test_bad_config) {
    lc_tokenizer *tok = tok_plain();
    lc_data *d = NULL;
    lc_data_config c = lc_data_config_default();
    static const char *const sl[] = {"seq_len", NULL};
    expect_error(lc_data_new(tok, &c, &d), LC_ERR_INVALID_ARG, sl, "seq_len 0");
    ck_assert(d == NULL);
    c.seq_len = 2;
    expect_error(lc_data_new(tok, &c, &d), LC_ERR_INVALID_ARG, sl, "seq_len 2");
    c.seq_len = 8;
    c.n_seq = 0;
    static const char *const ns[] = {"n_seq", NULL};
    expect_error(lc_data_new(tok, &c, &d), LC_ERR_INVALID_ARG, ns, "n_seq 0");
    c.n_seq = 1;
    c.eval_fraction = 1.0;
    static const char *const ef[] = {"eval_fraction", NULL};
    expect_error(lc_data_new(tok, &c, &d), LC_ERR_INVALID_ARG, ef, "eval_fraction 1");
    c.eval_fraction = 0.0;
    c.ignore_index = 0;
    static const char *const ii[] = {"ignore_index", NULL};
    expect_error(lc_data_new(tok, &c, &d), LC_ERR_INVALID_ARG, ii, "ignore_index 0");
    c.ignore_index = IGN;
    c.pad_id = 100000;
    static const char *const pd[] = {"pad_id", NULL};
    expect_error(lc_data_new(tok, &c, &d), LC_ERR_INVALID_ARG, pd, "pad_id");
    c.pad_id = -1;
    ck_assert(lc_data_new(tok, &c, &d) == LC_OK);
    int32_t ids[8], lab[8];
    ck_assert(lc_data_next_batch(d, ids, lab, NULL, NULL) == LC_ERR_STATE);
    ck_assert(lc_data_add_memory(d, "x", "a", 1, (lc_data_format)9, LC_DATA_TRAIN) == LC_ERR_INVALID_ARG);
    ck_assert_int_eq(lc_data_n_sequences(d, LC_DATA_TRAIN), 0);
    ck_assert(lc_data_fingerprint(d) == 0);
    lc_data_free(d);
    lc_data_free(NULL);
    lc_tokenizer_free(tok);
}
END_TEST

static Suite *data_suite(void) {
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_plain_text);
    tcase_add_test(tc, test_split_long_text);
    tcase_add_test(tc, test_every_target_once);
    tcase_add_test(tc, test_prompt_completion);
    tcase_add_test(tc, test_chat_gemma_render);
    tcase_add_test(tc, test_chat_chatml_render);
    tcase_add_test(tc, test_chat_template_detect);
    tcase_add_test(tc, test_chat_gemma_fixture_ids);
    tcase_add_test(tc, test_one_bos);
    tcase_add_test(tc, test_batches_and_shuffle);
    tcase_add_test(tc, test_shuffle_uniform);
    tcase_add_test(tc, test_cursor_resume);
    tcase_add_test(tc, test_heldout_split);
    tcase_add_test(tc, test_fortunes);
    tcase_add_test(tc, test_fixture_files);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_bad_bytes);
    tcase_add_test(tc, test_bad_jsonl);
    tcase_add_test(tc, test_bad_config);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    const int failed = lt_run_suite(data_suite());
    return failed == 0 ? 0 : 1;
}
