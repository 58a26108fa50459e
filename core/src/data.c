/* lorac — training data set: examples -> tokens with loss flags (one BOS, EOS), the held-out
 * split, windows of seq_len tokens with next-token labels (packing, truncation, splitting,
 * padding), the shuffled epoch order, batches and the resumable cursor. The behaviour, and the
 * sources it follows (TRL SFTTrainer, transformers, PyTorch ignore_index), are specified in
 * lorac/data.h; files and documents are in data_source.c, JSONL in data_jsonl.c, chat
 * templates in data_template.c.
 */
#include "data_internal.h"
#include "lorac/rng.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SEQ_LEN_MAX (1 << 24)
#define N_SEQ_MAX (1 << 20)

typedef struct example {
    int32_t *ids;       /* tokens, BOS first when the tokenizer has one */
    uint8_t *target;    /* 1: the token carries loss (it is the label of the position before it) */
    size_t n;
    uint32_t source;    /* index into lc_data.sources */
    int64_t line;
    lc_example_kind kind;
    lc_data_split split; /* the split of its file */
} example;

typedef struct seqset {
    int32_t *ids, *labels; /* n * seq_len each */
    int64_t n, cap;
} seqset;

struct lc_data {
    const lc_tokenizer *tok;
    lc_data_config cfg;
    lc_chat_template tmpl;
    int32_t bos, eos, pad;
    bool add_bos;             /* the tokenizer puts BOS first (lc_tokenizer_add_bos) */
    char **sources;           /* file names, for messages */
    uint32_t n_sources, cap_sources;
    example *ex;
    size_t n_ex, cap_ex;
    bool finalized;
    bool eval_asked;          /* an eval file was added or eval_fraction > 0 */
    seqset seq[2];
    lc_data_stats stats;
    int64_t epoch, position;  /* the cursor */
    int64_t *order;           /* order of epoch order_epoch (-1: none yet) */
    int64_t order_epoch;
    uint64_t fingerprint;
};

/* ---- names and configuration -------------------------------------------------------------- */

const char *lc_data_format_name(lc_data_format f) {
    switch (f) {
    case LC_DATA_FORMAT_AUTO: return "auto";
    case LC_DATA_FORMAT_TEXT: return "text";
    case LC_DATA_FORMAT_JSONL: return "jsonl";
    case LC_DATA_FORMAT_FORTUNE: return "fortune";
    }
    return "unknown";
}

lc_status lc_data_format_parse(const char *name, lc_data_format *out) {
    if (!name || !out) return lc_error(LC_ERR_INVALID_ARG, "lc_data_format_parse: NULL argument");
    for (int f = LC_DATA_FORMAT_AUTO; f <= LC_DATA_FORMAT_FORTUNE; f++) {
        if (strcmp(name, lc_data_format_name((lc_data_format)f)) == 0) {
            *out = (lc_data_format)f;
            return LC_OK;
        }
    }
    return lc_error(LC_ERR_INVALID_ARG, "lc_data_format_parse: unknown data format \"%s\" (auto, text, jsonl, fortune)",
                    name);
}

lc_data_config lc_data_config_default(void) {
    lc_data_config c;
    memset(&c, 0, sizeof c);
    c.seq_len = 0;
    c.n_seq = 1;
    c.packing = true;
    c.shuffle = true;
    c.seed = 42;
    c.eval_fraction = 0.0;
    c.split_seed = 42;
    c.text_docs = LC_TEXT_DOCS_PARAGRAPHS;
    c.chat_template = LC_CHAT_TEMPLATE_AUTO;
    c.chat_template_text = NULL;
    c.text_parse_special = false;
    c.jsonl_parse_special = true;
    c.ignore_index = LC_DATA_IGNORE_INDEX;
    c.pad_id = -1;
    return c;
}

lc_status lc_data_new(const lc_tokenizer *tok, const lc_data_config *cfg, lc_data **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_data_new: out is NULL");
    *out = NULL;
    if (!tok) return lc_error(LC_ERR_INVALID_ARG, "lc_data_new: tokenizer is NULL");
    if (!cfg) return lc_error(LC_ERR_INVALID_ARG, "lc_data_new: config is NULL (start from lc_data_config_default)");
    int32_t n_vocab = lc_tokenizer_n_vocab(tok);
    if (cfg->seq_len < 3 || cfg->seq_len > SEQ_LEN_MAX)
        return lc_error(LC_ERR_INVALID_ARG, "lc_data_new: lc_data_config.seq_len = %d, must be in 3..%d", cfg->seq_len,
                        SEQ_LEN_MAX);
    if (cfg->n_seq < 1 || cfg->n_seq > N_SEQ_MAX)
        return lc_error(LC_ERR_INVALID_ARG, "lc_data_new: lc_data_config.n_seq = %d, must be in 1..%d", cfg->n_seq,
                        N_SEQ_MAX);
    if (!(cfg->eval_fraction >= 0.0 && cfg->eval_fraction < 1.0))
        return lc_error(LC_ERR_INVALID_ARG, "lc_data_new: lc_data_config.eval_fraction = %g, must be in [0, 1)",
                        cfg->eval_fraction);
    if (cfg->ignore_index >= 0)
        return lc_error(
            LC_ERR_INVALID_ARG,
            "lc_data_new: lc_data_config.ignore_index = %d, must be negative (it must never equal a token id)",
            (int)cfg->ignore_index);
    if (cfg->pad_id < -1 || cfg->pad_id >= n_vocab)
        return lc_error(LC_ERR_INVALID_ARG, "lc_data_new: lc_data_config.pad_id = %d, must be -1 or in [0, %d)",
                        (int)cfg->pad_id, (int)n_vocab);
    if (cfg->text_docs != LC_TEXT_DOCS_PARAGRAPHS && cfg->text_docs != LC_TEXT_DOCS_FILE)
        return lc_error(LC_ERR_INVALID_ARG, "lc_data_new: lc_data_config.text_docs = %d is not an lc_text_docs",
                        (int)cfg->text_docs);
    if (cfg->chat_template < LC_CHAT_TEMPLATE_AUTO || cfg->chat_template > LC_CHAT_TEMPLATE_GEMMA)
        return lc_error(LC_ERR_INVALID_ARG, "lc_data_new: lc_data_config.chat_template = %d is not an lc_chat_template",
                        (int)cfg->chat_template);
    lc_data *d = calloc(1, sizeof *d);
    if (!d) return lc_error(LC_ERR_NOMEM, "lc_data_new: out of host memory");
    d->tok = tok;
    d->cfg = *cfg;
    d->cfg.chat_template_text = NULL; /* not kept */
    d->tmpl = cfg->chat_template == LC_CHAT_TEMPLATE_AUTO ? lc_chat_template_detect(cfg->chat_template_text, tok)
                                                           : cfg->chat_template;
    d->bos = lc_tokenizer_bos(tok);
    d->eos = lc_tokenizer_eos(tok);
    d->add_bos = d->bos != LC_TOKEN_NULL && lc_tokenizer_add_bos(tok);
    if (cfg->pad_id >= 0) d->pad = cfg->pad_id;
    else if (lc_tokenizer_pad(tok) != LC_TOKEN_NULL) d->pad = lc_tokenizer_pad(tok);
    else if (d->eos != LC_TOKEN_NULL) d->pad = d->eos;
    else d->pad = 0;
    d->stats.pad_id = d->pad;
    d->stats.chat_template = d->tmpl;
    d->order_epoch = -1;
    *out = d;
    return LC_OK;
}

static void free_examples_from(lc_data *d, size_t from) {
    for (size_t i = from; i < d->n_ex; i++) {
        free(d->ex[i].ids);
        free(d->ex[i].target);
    }
    d->n_ex = from;
}

void lc_data_free(lc_data *d) {
    if (!d) return;
    free_examples_from(d, 0);
    free(d->ex);
    for (uint32_t i = 0; i < d->n_sources; i++) free(d->sources[i]);
    free(d->sources);
    for (int s = 0; s < 2; s++) {
        free(d->seq[s].ids);
        free(d->seq[s].labels);
    }
    free(d->order);
    free(d);
}

/* ---- one example -> tokens with loss flags ----------------------------------------------- */

typedef struct add_ctx {
    lc_data *d;
    uint32_t source;
    lc_data_split split;
} add_ctx;

/* Token index of byte offset `off` of the rendered text: the longest common prefix of the
 * tokens of text[0..off) and the tokens of the whole text (full[0..n)). */
static lc_status token_boundary(const lc_data *d, const lc_data_render *r, size_t off, const int32_t *full, size_t n,
                                size_t *k_out) {
    if (off == 0) {
        *k_out = 0;
        return LC_OK;
    }
    if (off >= r->text.n) {
        *k_out = n;
        return LC_OK;
    }
    int32_t *p = NULL;
    size_t np = 0;
    lc_status st = lc_tokenize(d->tok, r->text.p, off, false, r->parse_special, &p, &np);
    if (st) return st;
    size_t k = 0;
    while (k < np && k < n && p[k] == full[k]) k++;
    free(p);
    *k_out = k;
    return LC_OK;
}

static lc_status push_example(lc_data *d, example *e) {
    if (d->n_ex == d->cap_ex) {
        size_t cap = d->cap_ex ? d->cap_ex * 2 : 256;
        example *p = realloc(d->ex, cap * sizeof *p);
        if (!p) return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %zu examples", cap);
        d->ex = p;
        d->cap_ex = cap;
    }
    d->ex[d->n_ex++] = *e;
    return LC_OK;
}

static lc_status tokenize_example(void *vctx, const lc_data_render *r, lc_data_where where) {
    add_ctx *c = vctx;
    lc_data *d = c->d;
    int32_t *full = NULL;
    size_t n = 0;
    lc_status st = lc_tokenize(d->tok, r->text.p ? r->text.p : "", r->text.n, false, r->parse_special, &full, &n);
    if (st) {
        char why[512];
        snprintf(why, sizeof why, "%s", lc_last_error());
        return lc_error(st, "lc_data: %s:%lld: tokenizing the example failed: %s", where.name, (long long)where.line,
                        why);
    }
    uint8_t *tg = calloc(n ? n : 1, 1);
    if (!tg) {
        free(full);
        return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %zu tokens", n);
    }
    for (size_t s = 0; s < r->n_spans; s++) {
        size_t kb = 0, ke = 0;
        if ((st = token_boundary(d, r, r->spans[2 * s], full, n, &kb)) ||
            (st = token_boundary(d, r, r->spans[2 * s + 1], full, n, &ke))) {
            free(full);
            free(tg);
            return st;
        }
        for (size_t k = kb; k < ke; k++) tg[k] = 1;
    }
    /* Exactly one BOS first: drop the text's leading BOS tokens, put one back. */
    size_t lead = 0;
    if (d->bos != LC_TOKEN_NULL)
        while (lead < n && full[lead] == d->bos) lead++;
    bool put_bos = d->bos != LC_TOKEN_NULL && (d->add_bos || lead > 0);
    bool ends_eos = n > lead && d->eos != LC_TOKEN_NULL && full[n - 1] == d->eos;
    bool put_eos = r->add_eos && d->eos != LC_TOKEN_NULL && !ends_eos;
    size_t m = (put_bos ? 1 : 0) + (n - lead) + (put_eos ? 1 : 0);
    example e = {0};
    e.ids = malloc((m ? m : 1) * sizeof *e.ids);
    e.target = malloc(m ? m : 1);
    if (!e.ids || !e.target) {
        free(e.ids);
        free(e.target);
        free(full);
        free(tg);
        return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %zu tokens", m);
    }
    size_t k = 0;
    if (put_bos) {
        e.ids[k] = d->bos;
        e.target[k++] = 0;
    }
    for (size_t i = lead; i < n; i++) {
        e.ids[k] = full[i];
        e.target[k++] = tg[i];
    }
    if (put_eos) {
        e.ids[k] = d->eos;
        e.target[k++] = 1;
    } else if (r->add_eos && ends_eos) {
        e.target[k - 1] = 1;
    }
    free(full);
    free(tg);
    e.n = k;
    /* BOS never carries loss, nor does an example's first token (nothing of the example comes
     * before it; packed, only the previous example's end would predict it). */
    if (k > 0) e.target[0] = 0;
    int64_t n_loss = 0;
    for (size_t i = 0; i < k; i++) {
        if (e.ids[i] == d->bos) e.target[i] = 0;
        n_loss += e.target[i];
    }
    if (n_loss == 0) {
        free(e.ids);
        free(e.target);
        const char *why = r->kind == LC_EXAMPLE_CHAT ? "the conversation has no assistant turn to train on"
                          : r->kind == LC_EXAMPLE_PROMPT_COMPLETION
                              ? "the completion is empty and the tokenizer has no EOS"
                              : "the text is too short to predict anything and the tokenizer has no EOS";
        return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: zero tokens carry loss after masking: %s", where.name,
                        (long long)where.line, why);
    }
    e.source = c->source;
    e.line = where.line;
    e.kind = r->kind;
    e.split = c->split;
    if ((st = push_example(d, &e))) {
        free(e.ids);
        free(e.target);
        return st;
    }
    d->stats.n_examples[c->split]++;
    return LC_OK;
}

/* ---- adding sources ------------------------------------------------------------------------ */

typedef struct add_mark {
    size_t n_ex;
    uint32_t n_sources;
    int64_t n_examples[2];
} add_mark;

static add_mark mark_of(const lc_data *d) {
    add_mark m = {d->n_ex, d->n_sources, {d->stats.n_examples[0], d->stats.n_examples[1]}};
    return m;
}

static void rollback(lc_data *d, add_mark m) {
    free_examples_from(d, m.n_ex);
    while (d->n_sources > m.n_sources) free(d->sources[--d->n_sources]);
    d->stats.n_examples[0] = m.n_examples[0];
    d->stats.n_examples[1] = m.n_examples[1];
}

static lc_status check_add(lc_data *d, const char *what, const void *p, lc_data_format fmt, lc_data_split split) {
    if (!d || !p) return lc_error(LC_ERR_INVALID_ARG, "%s: NULL argument", what);
    if (d->finalized)
        return lc_error(LC_ERR_STATE, "%s: the data set is finalized; add files before lc_data_finalize", what);
    if (fmt < LC_DATA_FORMAT_AUTO || fmt > LC_DATA_FORMAT_FORTUNE)
        return lc_error(LC_ERR_INVALID_ARG, "%s: format %d is not an lc_data_format", what, (int)fmt);
    if (split != LC_DATA_TRAIN && split != LC_DATA_EVAL)
        return lc_error(LC_ERR_INVALID_ARG, "%s: split %d is not an lc_data_split", what, (int)split);
    return LC_OK;
}

static lc_status add_source_name(lc_data *d, const char *name, uint32_t *index) {
    if (d->n_sources == d->cap_sources) {
        uint32_t cap = d->cap_sources ? d->cap_sources * 2 : 8;
        char **p = realloc(d->sources, cap * sizeof *p);
        if (!p) return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %u file names", cap);
        d->sources = p;
        d->cap_sources = cap;
    }
    size_t len = strlen(name);
    char *s = malloc(len + 1);
    if (!s) return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory");
    memcpy(s, name, len + 1);
    *index = d->n_sources;
    d->sources[d->n_sources++] = s;
    return LC_OK;
}

/* Append the examples of one source (no rollback here). */
static lc_status add_source(lc_data *d, const char *name, const char *buf, size_t len, lc_data_format fmt,
                            lc_data_split split) {
    lc_status st = lc_data_check_bytes(name, buf, len);
    if (st) return st;
    if (fmt == LC_DATA_FORMAT_AUTO) {
        size_t i = lc_data_bom_len(buf, len);
        while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n')) i++;
        size_t nl = name ? strlen(name) : 0;
        bool jsonl_name = (nl >= 6 && strcmp(name + nl - 6, ".jsonl") == 0) ||
                          (nl >= 5 && strcmp(name + nl - 5, ".json") == 0);
        /* A .jsonl / .json file is JSONL whatever it starts with, so a bad first line is an
         * error naming that line instead of the whole file silently becoming plain text. */
        fmt = (jsonl_name || (i < len && buf[i] == '{')) ? LC_DATA_FORMAT_JSONL : LC_DATA_FORMAT_TEXT;
    }
    add_ctx c = {d, 0, split};
    if ((st = add_source_name(d, name, &c.source))) return st;
    switch (fmt) {
    case LC_DATA_FORMAT_JSONL:
        return lc_data_parse_jsonl(name, buf, len, d->tmpl, d->cfg.jsonl_parse_special, tokenize_example, &c);
    case LC_DATA_FORMAT_FORTUNE:
        return lc_data_parse_fortune(name, buf, len, d->cfg.text_parse_special, tokenize_example, &c);
    default:
        return lc_data_parse_text(name, buf, len, d->cfg.text_docs, d->cfg.text_parse_special, tokenize_example, &c);
    }
}

lc_status lc_data_add_memory(lc_data *d, const char *name, const void *data, size_t len, lc_data_format fmt,
                             lc_data_split split) {
    lc_status st = check_add(d, "lc_data_add_memory", name, fmt, split);
    if (st) return st;
    if (!data && len > 0) return lc_error(LC_ERR_INVALID_ARG, "lc_data_add_memory: %s: data is NULL", name);
    add_mark m = mark_of(d);
    st = add_source(d, name, data ? (const char *)data : "", len, fmt, split);
    if (st) rollback(d, m);
    else if (split == LC_DATA_EVAL) d->eval_asked = true;
    return st;
}

lc_status lc_data_add_file(lc_data *d, const char *path, lc_data_format fmt, lc_data_split split) {
    lc_status st = check_add(d, "lc_data_add_file", path, fmt, split);
    if (st) return st;
    char *buf = NULL;
    size_t len = 0;
    if ((st = lc_data_read_file(path, &buf, &len))) return st;
    add_mark m = mark_of(d);
    st = add_source(d, path, buf, len, fmt, split);
    free(buf);
    if (st) rollback(d, m);
    else if (split == LC_DATA_EVAL) d->eval_asked = true;
    return st;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

lc_status lc_data_add_fortunes(lc_data *d, const char *path, lc_data_split split) {
    lc_status st = check_add(d, "lc_data_add_fortunes", path, LC_DATA_FORMAT_FORTUNE, split);
    if (st) return st;
    struct stat sb;
    if (stat(path, &sb) != 0) return lc_error(LC_ERR_IO, "lc_data: cannot open '%s': %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return lc_data_add_file(d, path, LC_DATA_FORMAT_FORTUNE, split);
    DIR *dir = opendir(path);
    if (!dir) return lc_error(LC_ERR_IO, "lc_data: cannot read the directory '%s': %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    size_t plen = strlen(path);
    struct dirent *de;
    st = LC_OK;
    while (st == LC_OK && (de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.' || ends_with(de->d_name, ".dat")) continue;
        size_t len = plen + 1 + strlen(de->d_name) + 1;
        char *full = malloc(len);
        if (!full) {
            st = lc_error(LC_ERR_NOMEM, "lc_data: out of host memory");
            break;
        }
        snprintf(full, len, "%s/%s", path, de->d_name);
        struct stat fs;
        if (lstat(full, &fs) != 0 || !S_ISREG(fs.st_mode)) {
            free(full);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            char **p = realloc(names, ncap * sizeof *p);
            if (!p) {
                free(full);
                st = lc_error(LC_ERR_NOMEM, "lc_data: out of host memory");
                break;
            }
            names = p;
            cap = ncap;
        }
        names[n++] = full;
    }
    closedir(dir);
    if (st == LC_OK && n == 0)
        st = lc_error(LC_ERR_FORMAT, "lc_data: the directory '%s' holds no fortune file", path);
    if (st == LC_OK) {
        qsort(names, n, sizeof *names, cmp_str);
        add_mark m = mark_of(d);
        for (size_t i = 0; i < n && st == LC_OK; i++) {
            char *buf = NULL;
            size_t len = 0;
            st = lc_data_read_file(names[i], &buf, &len);
            if (st == LC_OK) st = add_source(d, names[i], buf, len, LC_DATA_FORMAT_FORTUNE, split);
            free(buf);
        }
        if (st) rollback(d, m);
        else if (split == LC_DATA_EVAL) d->eval_asked = true;
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

/* ---- fortunes without tokenizing ---------------------------------------------------------- */

typedef struct docs_ctx {
    char **docs;
    size_t n, cap;
} docs_ctx;

static lc_status collect_doc(void *vctx, const lc_data_render *r, lc_data_where where) {
    (void)where;
    docs_ctx *c = vctx;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        char **p = realloc(c->docs, cap * sizeof *p);
        if (!p) return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %zu documents", cap);
        c->docs = p;
        c->cap = cap;
    }
    char *s = malloc(r->text.n + 1);
    if (!s) return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory");
    if (r->text.n) memcpy(s, r->text.p, r->text.n);
    s[r->text.n] = '\0';
    c->docs[c->n++] = s;
    return LC_OK;
}

void lc_data_docs_free(char **docs, size_t n_docs) {
    if (!docs) return;
    for (size_t i = 0; i < n_docs; i++) free(docs[i]);
    free(docs);
}

lc_status lc_data_read_fortunes(const char *path, char ***docs, size_t *n_docs) {
    if (!path || !docs || !n_docs) return lc_error(LC_ERR_INVALID_ARG, "lc_data_read_fortunes: NULL argument");
    *docs = NULL;
    *n_docs = 0;
    char *buf = NULL;
    size_t len = 0;
    lc_status st = lc_data_read_file(path, &buf, &len);
    if (st) return st;
    docs_ctx c = {0};
    st = lc_data_check_bytes(path, buf, len);
    if (st == LC_OK) st = lc_data_parse_fortune(path, buf, len, false, collect_doc, &c);
    free(buf);
    if (st) {
        lc_data_docs_free(c.docs, c.n);
        return st;
    }
    *docs = c.docs;
    *n_docs = c.n;
    return LC_OK;
}

/* ---- shuffling ----------------------------------------------------------------------------- */

/* Fisher-Yates over a[0..n) with exactly uniform draws from lc_rng_u32 (see lorac/data.h). */
static void fisher_yates(int64_t *a, int64_t n, uint64_t seed, uint64_t stream) {
    for (int64_t i = n - 1; i >= 1; i--) {
        uint64_t m = (uint64_t)i + 1;
        uint64_t limit = ((uint64_t)1 << 32) - (((uint64_t)1 << 32) % m);
        uint64_t r = 0;
        for (uint64_t attempt = 0; attempt < 0x10000; attempt++) {
            r = lc_rng_u32(seed, stream, ((uint64_t)i << 16) | attempt);
            if (r < limit) break;
        }
        int64_t j = (int64_t)(r % m);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---- sequences ----------------------------------------------------------------------------- */

static lc_status seq_push(lc_data *d, seqset *s, const int32_t *ids, const uint8_t *tg, int k) {
    const int L = d->cfg.seq_len;
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 64;
        int32_t *a = realloc(s->ids, (size_t)cap * (size_t)L * sizeof *a);
        if (!a)
            return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %lld sequences of %d tokens", (long long)cap,
                            L);
        s->ids = a;
        int32_t *b = realloc(s->labels, (size_t)cap * (size_t)L * sizeof *b);
        if (!b)
            return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %lld sequences of %d tokens", (long long)cap,
                            L);
        s->labels = b;
        s->cap = cap;
    }
    int32_t *oi = s->ids + (size_t)s->n * (size_t)L;
    int32_t *ol = s->labels + (size_t)s->n * (size_t)L;
    int64_t n_lab = 0;
    for (int t = 0; t < L; t++) {
        oi[t] = t < k ? ids[t] : d->pad;
        bool lab = t + 1 < k && tg[t + 1];
        ol[t] = lab ? ids[t + 1] : d->cfg.ignore_index;
        n_lab += lab;
    }
    if (n_lab == 0) { /* nothing to learn from: drop it */
        d->stats.n_dropped++;
        return LC_OK;
    }
    s->n++;
    d->stats.n_tokens[s == &d->seq[LC_DATA_EVAL]] += k;
    d->stats.n_label_tokens[s == &d->seq[LC_DATA_EVAL]] += n_lab;
    return LC_OK;
}

/* Cut the token stream S[0..n) (loss flags T, example starts B; B NULL: one example) into windows (lorac/data.h,
 * SEQUENCES): a window that starts inside an example begins with BOS (when the tokenizer adds
 * one) and the previous window's last token, neither carrying loss. */
static lc_status windows(lc_data *d, seqset *s, const int32_t *S, const uint8_t *T, const uint8_t *B, size_t n,
                         int32_t *wid, uint8_t *wtg) {
    const int L = d->cfg.seq_len;
    size_t p = 0;
    while (p < n) {
        int k = 0;
        if (p > 0 && !(B && B[p])) {
            if (B && B[p - 1]) {
                /* The previous window ended on an example's first token (its BOS, which has no
                 * label there): open this window with it. That token was not the first one
                 * the previous window took (a continuation never starts at an example start),
                 * and this window takes seq_len >= 3 tokens from it, so p always moves on. */
                p--;
            } else {
                if (d->add_bos) {
                    wid[k] = d->bos;
                    wtg[k++] = 0;
                }
                wid[k] = S[p - 1];
                wtg[k++] = 0;
            }
        }
        while (k < L && p < n) {
            wid[k] = S[p];
            wtg[k++] = T[p++];
        }
        lc_status st = seq_push(d, s, wid, wtg, k);
        if (st) return st;
    }
    return LC_OK;
}

static lc_status build_split(lc_data *d, lc_data_split split, const uint8_t *in_split) {
    const int L = d->cfg.seq_len;
    seqset *s = &d->seq[split];
    lc_status st = LC_OK;
    int32_t *wid = malloc((size_t)L * sizeof *wid);
    uint8_t *wtg = malloc((size_t)L);
    int32_t *S = NULL;
    uint8_t *T = NULL, *B = NULL;
    if (!wid || !wtg) {
        st = lc_error(LC_ERR_NOMEM, "lc_data: out of host memory");
        goto done;
    }
    if (d->cfg.packing) {
        size_t total = 0;
        for (size_t i = 0; i < d->n_ex; i++)
            if (in_split[i]) total += d->ex[i].n;
        S = malloc((total ? total : 1) * sizeof *S);
        T = malloc(total ? total : 1);
        B = malloc(total ? total : 1);
        if (!S || !T || !B) {
            st = lc_error(LC_ERR_NOMEM, "lc_data: out of host memory packing %zu tokens", total);
            goto done;
        }
        size_t at = 0;
        for (size_t i = 0; i < d->n_ex; i++) {
            if (!in_split[i]) continue;
            const example *e = &d->ex[i];
            memcpy(S + at, e->ids, e->n * sizeof *S);
            memcpy(T + at, e->target, e->n);
            memset(B + at, 0, e->n);
            if (e->n) B[at] = 1;
            at += e->n;
        }
        st = windows(d, s, S, T, B, total, wid, wtg);
    } else {
        for (size_t i = 0; i < d->n_ex && st == LC_OK; i++) {
            if (!in_split[i]) continue;
            const example *e = &d->ex[i];
            if (e->kind == LC_EXAMPLE_TEXT) {
                st = windows(d, s, e->ids, e->target, NULL, e->n, wid, wtg);
            } else {
                int k = e->n > (size_t)L ? L : (int)e->n;
                if (e->n > (size_t)L) d->stats.n_truncated++;
                st = seq_push(d, s, e->ids, e->target, k);
            }
        }
    }
    if (st == LC_OK) d->stats.n_sequences[split] = s->n;
done:
    free(wid);
    free(wtg);
    free(S);
    free(T);
    free(B);
    return st;
}

/* "a, b, c" of the files that hold examples of a split (for messages). */
static void files_of(const lc_data *d, const uint8_t *in_split, char *out, size_t cap) {
    size_t k = 0;
    out[0] = '\0';
    uint32_t last = UINT32_MAX;
    int listed = 0;
    for (size_t i = 0; i < d->n_ex && k + 1 < cap; i++) {
        if (!in_split[i] || d->ex[i].source == last) continue;
        last = d->ex[i].source;
        if (listed == 4) {
            k += (size_t)snprintf(out + k, cap - k, ", ...");
            break;
        }
        k += (size_t)snprintf(out + k, cap - k, "%s%s", listed ? ", " : "", d->sources[last]);
        listed++;
    }
}

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

lc_status lc_data_finalize(lc_data *d) {
    if (!d) return lc_error(LC_ERR_INVALID_ARG, "lc_data_finalize: NULL data set");
    if (d->finalized) return lc_error(LC_ERR_STATE, "lc_data_finalize: called twice");
    if (d->n_ex == 0)
        return lc_error(LC_ERR_FORMAT, "lc_data_finalize: no example: add at least one data file first");
    lc_status st = LC_OK;
    uint8_t *in_eval = calloc(d->n_ex, 1), *in_train = calloc(d->n_ex, 1);
    int64_t *idx = malloc(d->n_ex * sizeof *idx);
    if (!in_eval || !in_train || !idx) {
        st = lc_error(LC_ERR_NOMEM, "lc_data_finalize: out of host memory");
        goto done;
    }
    int64_t n_train_files = 0;
    for (size_t i = 0; i < d->n_ex; i++) {
        if (d->ex[i].split == LC_DATA_EVAL) in_eval[i] = 1;
        else idx[n_train_files++] = (int64_t)i;
    }
    if (d->cfg.eval_fraction > 0.0) {
        if (n_train_files < 2) {
            st = lc_error(LC_ERR_FORMAT,
                          "lc_data_finalize: eval_fraction = %g needs at least 2 training examples to hold some out, "
                          "the training files have %lld",
                          d->cfg.eval_fraction, (long long)n_train_files);
            goto done;
        }
        int64_t n_eval = (int64_t)floor(d->cfg.eval_fraction * (double)n_train_files + 0.5);
        if (n_eval < 1) n_eval = 1;
        if (n_eval > n_train_files - 1) n_eval = n_train_files - 1;
        fisher_yates(idx, n_train_files, d->cfg.split_seed, LC_DATA_STREAM_SPLIT);
        for (int64_t k = 0; k < n_eval; k++) in_eval[idx[k]] = 1;
        d->eval_asked = true;
    }
    int64_t n_ex[2] = {0, 0};
    for (size_t i = 0; i < d->n_ex; i++) {
        in_train[i] = !in_eval[i];
        n_ex[in_eval[i] ? LC_DATA_EVAL : LC_DATA_TRAIN]++;
    }
    d->stats.n_examples[0] = n_ex[0];
    d->stats.n_examples[1] = n_ex[1];
    d->stats.n_truncated = 0;
    d->stats.n_dropped = 0;
    if ((st = build_split(d, LC_DATA_TRAIN, in_train)) || (st = build_split(d, LC_DATA_EVAL, in_eval))) goto done;
    for (int split = 0; split < 2; split++) {
        if (split == LC_DATA_EVAL && !d->eval_asked) continue;
        if (d->seq[split].n > 0) continue;
        char files[512];
        files_of(d, split == LC_DATA_EVAL ? in_eval : in_train, files, sizeof files);
        st = lc_error(LC_ERR_FORMAT,
                      "lc_data_finalize: zero tokens carry loss in the %s split (files: %s; %lld examples): every "
                      "sequence was dropped because its labels are all masked%s",
                      split == LC_DATA_EVAL ? "eval" : "training", files[0] ? files : "none", (long long)n_ex[split],
                      d->stats.n_truncated ? "; prompts were truncated to seq_len, so raise seq_len" : "");
        goto done;
    }
    if (d->seq[LC_DATA_TRAIN].n >= ((int64_t)1 << 32)) {
        st = lc_error(LC_ERR_INVALID_ARG, "lc_data_finalize: %lld training sequences; at most 2^32 - 1 are supported",
                      (long long)d->seq[LC_DATA_TRAIN].n);
        goto done;
    }
    free_examples_from(d, 0);
    free(d->ex);
    d->ex = NULL;
    d->cap_ex = 0;
    {
        const seqset *s = &d->seq[LC_DATA_TRAIN];
        size_t cnt = (size_t)s->n * (size_t)d->cfg.seq_len;
        uint64_t h = 0xcbf29ce484222325ULL;
        int32_t hdr[4] = {d->cfg.seq_len, d->cfg.n_seq, d->cfg.shuffle ? 1 : 0, d->cfg.packing ? 1 : 0};
        h = fnv_bytes(h, hdr, sizeof hdr);
        h = fnv_bytes(h, &d->cfg.seed, sizeof d->cfg.seed);
        h = fnv_bytes(h, s->ids, cnt * sizeof *s->ids);
        h = fnv_bytes(h, s->labels, cnt * sizeof *s->labels);
        d->fingerprint = h ? h : 1;
    }
    d->finalized = true;
done:
    if (st) { /* leave no half-built sequences behind; the examples stay for another try */
        for (int s = 0; s < 2; s++) {
            free(d->seq[s].ids);
            free(d->seq[s].labels);
            memset(&d->seq[s], 0, sizeof d->seq[s]);
            d->stats.n_sequences[s] = d->stats.n_tokens[s] = d->stats.n_label_tokens[s] = 0;
        }
    }
    free(in_eval);
    free(in_train);
    free(idx);
    return st;
}

/* ---- access ------------------------------------------------------------------------------- */

lc_status lc_data_get_stats(const lc_data *d, lc_data_stats *out) {
    if (!d || !out) return lc_error(LC_ERR_INVALID_ARG, "lc_data_get_stats: NULL argument");
    *out = d->stats;
    return LC_OK;
}

int64_t lc_data_n_sequences(const lc_data *d, lc_data_split split) {
    if (!d || !d->finalized || (split != LC_DATA_TRAIN && split != LC_DATA_EVAL)) return 0;
    return d->seq[split].n;
}

static void copy_seq(const lc_data *d, const seqset *s, int64_t i, int32_t *ids, int32_t *labels, int32_t *pos) {
    const int L = d->cfg.seq_len;
    for (int t = 0; t < L; t++) {
        if (ids) ids[t] = i >= 0 ? s->ids[(size_t)i * (size_t)L + (size_t)t] : d->pad;
        if (labels) labels[t] = i >= 0 ? s->labels[(size_t)i * (size_t)L + (size_t)t] : d->cfg.ignore_index;
        if (pos) pos[t] = t;
    }
}

static int64_t count_labels(const lc_data *d, const int32_t *labels, size_t n) {
    int64_t c = 0;
    for (size_t i = 0; i < n; i++) c += labels[i] != d->cfg.ignore_index;
    return c;
}

lc_status lc_data_sequence(const lc_data *d, lc_data_split split, int64_t i, int32_t *ids, int32_t *labels,
                           int32_t *pos) {
    if (!d) return lc_error(LC_ERR_INVALID_ARG, "lc_data_sequence: NULL data set");
    if (!d->finalized) return lc_error(LC_ERR_STATE, "lc_data_sequence: call lc_data_finalize first");
    if (split != LC_DATA_TRAIN && split != LC_DATA_EVAL)
        return lc_error(LC_ERR_INVALID_ARG, "lc_data_sequence: split %d is not an lc_data_split", (int)split);
    if (i < 0 || i >= d->seq[split].n)
        return lc_error(LC_ERR_INVALID_ARG, "lc_data_sequence: index %lld outside the %s split's %lld sequences",
                        (long long)i, split == LC_DATA_EVAL ? "eval" : "training", (long long)d->seq[split].n);
    copy_seq(d, &d->seq[split], i, ids, labels, pos);
    return LC_OK;
}

lc_status lc_data_epoch_order(const lc_data *d, int64_t epoch, int64_t *order) {
    if (!d || !order) return lc_error(LC_ERR_INVALID_ARG, "lc_data_epoch_order: NULL argument");
    if (!d->finalized) return lc_error(LC_ERR_STATE, "lc_data_epoch_order: call lc_data_finalize first");
    if (epoch < 0) return lc_error(LC_ERR_INVALID_ARG, "lc_data_epoch_order: epoch %lld < 0", (long long)epoch);
    int64_t n = d->seq[LC_DATA_TRAIN].n;
    for (int64_t i = 0; i < n; i++) order[i] = i;
    if (d->cfg.shuffle) fisher_yates(order, n, d->cfg.seed, LC_DATA_STREAM_SHUFFLE + (uint64_t)epoch);
    return LC_OK;
}

lc_status lc_data_next_batch(lc_data *d, int32_t *ids, int32_t *labels, int32_t *pos, lc_data_batch_info *info) {
    if (!d || !ids || !labels) return lc_error(LC_ERR_INVALID_ARG, "lc_data_next_batch: NULL argument");
    if (!d->finalized) return lc_error(LC_ERR_STATE, "lc_data_next_batch: call lc_data_finalize first");
    const int L = d->cfg.seq_len;
    const int64_t n = d->seq[LC_DATA_TRAIN].n;
    if (!d->order) {
        d->order = malloc((size_t)n * sizeof *d->order);
        if (!d->order) return lc_error(LC_ERR_NOMEM, "lc_data_next_batch: out of host memory");
    }
    lc_data_batch_info bi = {d->epoch, d->position, d->cfg.n_seq, 0, false};
    for (int s = 0; s < d->cfg.n_seq; s++) {
        if (d->order_epoch != d->epoch) {
            lc_status st = lc_data_epoch_order(d, d->epoch, d->order);
            if (st) return st;
            d->order_epoch = d->epoch;
        }
        size_t off = (size_t)s * (size_t)L;
        copy_seq(d, &d->seq[LC_DATA_TRAIN], d->order[d->position], ids + off, labels + off, pos ? pos + off : NULL);
        if (++d->position == n) {
            d->position = 0;
            d->epoch++;
            bi.epoch_end = true;
        }
    }
    bi.n_label_tokens = count_labels(d, labels, (size_t)d->cfg.n_seq * (size_t)L);
    if (info) *info = bi;
    return LC_OK;
}

int64_t lc_data_n_eval_batches(const lc_data *d) {
    if (!d || !d->finalized) return 0;
    return (d->seq[LC_DATA_EVAL].n + d->cfg.n_seq - 1) / d->cfg.n_seq;
}

lc_status lc_data_eval_batch(const lc_data *d, int64_t b, int32_t *ids, int32_t *labels, int32_t *pos,
                             lc_data_batch_info *info) {
    if (!d || !ids || !labels) return lc_error(LC_ERR_INVALID_ARG, "lc_data_eval_batch: NULL argument");
    if (!d->finalized) return lc_error(LC_ERR_STATE, "lc_data_eval_batch: call lc_data_finalize first");
    int64_t nb = lc_data_n_eval_batches(d);
    if (b < 0 || b >= nb)
        return lc_error(LC_ERR_INVALID_ARG, "lc_data_eval_batch: batch %lld outside the eval split's %lld batches",
                        (long long)b, (long long)nb);
    const int L = d->cfg.seq_len;
    const int64_t n = d->seq[LC_DATA_EVAL].n;
    int real = 0;
    for (int s = 0; s < d->cfg.n_seq; s++) {
        int64_t i = b * d->cfg.n_seq + s;
        size_t off = (size_t)s * (size_t)L;
        copy_seq(d, &d->seq[LC_DATA_EVAL], i < n ? i : -1, ids + off, labels + off, pos ? pos + off : NULL);
        real += i < n;
    }
    if (info) {
        lc_data_batch_info bi = {0, b * d->cfg.n_seq, real,
                                 count_labels(d, labels, (size_t)d->cfg.n_seq * (size_t)L), b == nb - 1};
        *info = bi;
    }
    return LC_OK;
}

lc_status lc_data_get_cursor(const lc_data *d, lc_data_cursor *out) {
    if (!d || !out) return lc_error(LC_ERR_INVALID_ARG, "lc_data_get_cursor: NULL argument");
    out->epoch = d->epoch;
    out->position = d->position;
    out->fingerprint = d->finalized ? d->fingerprint : 0;
    return LC_OK;
}

lc_status lc_data_set_cursor(lc_data *d, const lc_data_cursor *c) {
    if (!d || !c) return lc_error(LC_ERR_INVALID_ARG, "lc_data_set_cursor: NULL argument");
    if (!d->finalized) return lc_error(LC_ERR_STATE, "lc_data_set_cursor: call lc_data_finalize first");
    if (c->fingerprint != 0 && c->fingerprint != d->fingerprint)
        return lc_error(LC_ERR_STATE,
                        "lc_data_set_cursor: the cursor belongs to other data (fingerprint %016llx, this data set "
                        "%016llx): the files, seq_len, packing, n_seq, seed or shuffle changed",
                        (unsigned long long)c->fingerprint, (unsigned long long)d->fingerprint);
    if (c->epoch < 0 || c->position < 0 || c->position >= d->seq[LC_DATA_TRAIN].n)
        return lc_error(LC_ERR_INVALID_ARG,
                        "lc_data_set_cursor: epoch %lld position %lld: position must be in [0, %lld)",
                        (long long)c->epoch, (long long)c->position, (long long)d->seq[LC_DATA_TRAIN].n);
    d->epoch = c->epoch;
    d->position = c->position;
    return LC_OK;
}

uint64_t lc_data_fingerprint(const lc_data *d) {
    return (d && d->finalized) ? d->fingerprint : 0;
}
