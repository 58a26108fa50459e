/* lorac — training data sources: reading files, the byte checks every source passes (not empty,
 * no NUL, well-formed UTF-8), and cutting TEXT and FORTUNE sources into documents
 * (lorac/data.h, "INPUTS").
 *
 * UTF-8 well-formedness: The Unicode Standard, chapter 3, Table 3-7 "Well-Formed UTF-8 Byte
 * Sequences" (RFC 3629 §4): overlong forms, surrogates D800..DFFF and code points past
 * U+10FFFF are rejected. Fortune file layout: fortune(6) / strfile(8): entries separated by a
 * line holding only the delimiter "%".
 */
#include "data_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- growable strings and renders --------------------------------------------------------- */

lc_status lc_dbuf_append(lc_dbuf *b, const char *s, size_t n) {
    if (n > SIZE_MAX / 2 - b->n) return lc_error(LC_ERR_NOMEM, "lc_data: text too large (%zu bytes)", b->n);
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory growing a text to %zu bytes", cap);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return LC_OK;
}

void lc_dbuf_free(lc_dbuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

void lc_data_render_reset(lc_data_render *r) {
    r->text.n = 0;
    if (r->text.p) r->text.p[0] = '\0';
    r->n_spans = 0;
    r->kind = LC_EXAMPLE_TEXT;
    r->add_eos = false;
    r->parse_special = false;
}

void lc_data_render_free(lc_data_render *r) {
    lc_dbuf_free(&r->text);
    free(r->spans);
    r->spans = NULL;
    r->n_spans = r->cap_spans = 0;
}

lc_status lc_data_render_add(lc_data_render *r, const char *s, size_t n, bool trained) {
    size_t begin = r->text.n;
    lc_status st = lc_dbuf_append(&r->text, s, n);
    if (st) return st;
    if (!trained) return LC_OK;
    if (r->n_spans > 0 && r->spans[2 * r->n_spans - 1] == begin) { /* extends the previous range */
        r->spans[2 * r->n_spans - 1] = r->text.n;
        return LC_OK;
    }
    if (r->n_spans == r->cap_spans) {
        size_t cap = r->cap_spans ? r->cap_spans * 2 : 8;
        size_t *p = realloc(r->spans, cap * 2 * sizeof *p);
        if (!p) return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %zu loss ranges", cap);
        r->spans = p;
        r->cap_spans = cap;
    }
    r->spans[2 * r->n_spans] = begin;
    r->spans[2 * r->n_spans + 1] = r->text.n;
    r->n_spans++;
    return LC_OK;
}

/* ---- files and byte checks ---------------------------------------------------------------- */

lc_status lc_data_read_file(const char *path, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return lc_error(LC_ERR_IO, "lc_data: cannot open '%s': %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return lc_error(LC_ERR_IO, "lc_data: '%s' is a directory, not a data file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return lc_error(LC_ERR_IO, "lc_data: cannot open '%s': %s", path, strerror(errno));
    size_t cap = (S_ISREG(sb.st_mode) && sb.st_size > 0) ? (size_t)sb.st_size + 1 : 4096;
    char *p = malloc(cap);
    if (!p) {
        fclose(f);
        return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory reading '%s' (%zu bytes)", path, cap);
    }
    size_t n = 0;
    for (;;) {
        if (n + 1 >= cap) {
            size_t ncap = cap * 2;
            char *q = realloc(p, ncap);
            if (!q) {
                free(p);
                fclose(f);
                return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory reading '%s' (%zu bytes)", path, ncap);
            }
            p = q;
            cap = ncap;
        }
        size_t got = fread(p + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        free(p);
        fclose(f);
        return lc_error(LC_ERR_IO, "lc_data: error reading '%s' at byte %zu: %s", path, n, strerror(e));
    }
    fclose(f);
    p[n] = '\0';
    *buf = p;
    *len = n;
    return LC_OK;
}

int64_t lc_data_line_of(const char *buf, size_t off) {
    int64_t line = 1;
    for (size_t i = 0; i < off; i++)
        if (buf[i] == '\n') line++;
    return line;
}

size_t lc_data_bom_len(const char *buf, size_t len) {
    return (len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
            (unsigned char)buf[2] == 0xBF)
               ? 3
               : 0;
}

/* Length of the well-formed UTF-8 sequence at s[0..n), 0 when it is not one (Table 3-7). */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return len;
}

lc_status lc_data_check_bytes(const char *name, const char *buf, size_t len) {
    if (len == 0) return lc_error(LC_ERR_FORMAT, "lc_data: %s: the file is empty", name);
    const void *nul = memchr(buf, 0, len);
    if (nul) {
        size_t off = (size_t)((const char *)nul - buf);
        return lc_error(LC_ERR_FORMAT,
                        "lc_data: %s: byte offset %zu (line %lld): NUL byte: binary data, not UTF-8 text", name, off,
                        (long long)lc_data_line_of(buf, off));
    }
    const unsigned char *u = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) { /* ASCII fast path */
            i++;
            continue;
        }
        size_t k = utf8_seq_len(u + i, len - i);
        if (k == 0)
            return lc_error(LC_ERR_FORMAT, "lc_data: %s: byte offset %zu (line %lld): invalid UTF-8 (byte 0x%02X)",
                            name, i, (long long)lc_data_line_of(buf, i), u[i]);
        i += k;
    }
    return LC_OK;
}

/* ---- TEXT and FORTUNE documents --------------------------------------------------------- */

/* The line starting at `at`: its end (the '\n' or len) in *end, the start of the next in *next. */
static void line_at(const char *buf, size_t len, size_t at, size_t *end, size_t *next) {
    const char *nl = memchr(buf + at, '\n', len - at);
    *end = nl ? (size_t)(nl - buf) : len;
    *next = nl ? *end + 1 : len;
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* Line without its trailing CR. */
static size_t chomp_cr(const char *s, size_t n) {
    return (n > 0 && s[n - 1] == '\r') ? n - 1 : n;
}

typedef struct doc_builder {
    lc_data_render r;
    int64_t first_line; /* 0 while no line is held */
    size_t n_docs;
} doc_builder;

static lc_status doc_add_line(doc_builder *b, const char *s, size_t n, int64_t line) {
    lc_status st;
    if (b->first_line == 0) b->first_line = line;
    else if ((st = lc_data_render_add(&b->r, "\n", 1, true))) return st;
    return lc_data_render_add(&b->r, s, chomp_cr(s, n), true);
}

static lc_status doc_flush(doc_builder *b, const char *name, bool parse_special, lc_data_sink_fn sink, void *ctx) {
    if (b->first_line == 0) return LC_OK;
    b->r.kind = LC_EXAMPLE_TEXT;
    b->r.add_eos = true;
    b->r.parse_special = parse_special;
    lc_data_where where = {name, b->first_line};
    lc_status st = sink(ctx, &b->r, where);
    lc_data_render_reset(&b->r);
    b->first_line = 0;
    b->n_docs++;
    return st;
}

lc_status lc_data_parse_text(const char *name, const char *buf, size_t len, lc_text_docs mode, bool parse_special,
                             lc_data_sink_fn sink, void *ctx) {
    doc_builder b = {0};
    lc_status st = LC_OK;
    size_t at = lc_data_bom_len(buf, len);
    int64_t line = 1;
    /* Blank lines held back inside a document (LC_TEXT_DOCS_FILE keeps them, unless trailing). */
    int64_t pending_blank = 0;
    size_t blank_at = 0;
    while (at < len && st == LC_OK) {
        size_t end, next;
        line_at(buf, len, at, &end, &next);
        if (is_blank(buf + at, end - at)) {
            if (mode == LC_TEXT_DOCS_PARAGRAPHS) {
                st = doc_flush(&b, name, parse_special, sink, ctx);
            } else if (b.first_line != 0) {
                if (pending_blank == 0) blank_at = at;
                pending_blank++;
            }
        } else {
            if (pending_blank > 0) {
                /* Re-add the held blank lines verbatim (one document per file). */
                size_t a = blank_at;
                for (int64_t k = 0; k < pending_blank && st == LC_OK; k++) {
                    size_t e2, n2;
                    line_at(buf, len, a, &e2, &n2);
                    st = doc_add_line(&b, buf + a, e2 - a, line);
                    a = n2;
                }
                pending_blank = 0;
            }
            if (st == LC_OK) st = doc_add_line(&b, buf + at, end - at, line);
        }
        at = next;
        line++;
    }
    if (st == LC_OK) st = doc_flush(&b, name, parse_special, sink, ctx);
    if (st == LC_OK && b.n_docs == 0)
        st = lc_error(LC_ERR_FORMAT, "lc_data: %s: no document: the file holds only whitespace", name);
    lc_data_render_free(&b.r);
    return st;
}

lc_status lc_data_parse_fortune(const char *name, const char *buf, size_t len, bool parse_special,
                                lc_data_sink_fn sink, void *ctx) {
    doc_builder b = {0};
    lc_status st = LC_OK;
    size_t at = lc_data_bom_len(buf, len);
    int64_t line = 1;
    /* Lines of the current entry; trailing blank lines of an entry are dropped. */
    int64_t pending_blank = 0;
    size_t blank_at = 0;
    while (at < len && st == LC_OK) {
        size_t end, next;
        line_at(buf, len, at, &end, &next);
        size_t n = chomp_cr(buf + at, end - at);
        if (n == 1 && buf[at] == '%') {
            st = doc_flush(&b, name, parse_special, sink, ctx);
            pending_blank = 0;
        } else if (is_blank(buf + at, end - at)) {
            if (b.first_line != 0) {
                if (pending_blank == 0) blank_at = at;
                pending_blank++;
            }
        } else {
            size_t a = blank_at;
            for (int64_t k = 0; k < pending_blank && st == LC_OK; k++) {
                size_t e2, n2;
                line_at(buf, len, a, &e2, &n2);
                st = doc_add_line(&b, buf + a, e2 - a, line);
                a = n2;
            }
            pending_blank = 0;
            if (st == LC_OK) st = doc_add_line(&b, buf + at, end - at, line);
        }
        at = next;
        line++;
    }
    if (st == LC_OK) st = doc_flush(&b, name, parse_special, sink, ctx);
    if (st == LC_OK && b.n_docs == 0)
        st = lc_error(LC_ERR_FORMAT, "lc_data: %s: no fortune: the file holds no text between its \"%%\" lines", name);
    lc_data_render_free(&b.r);
    return st;
}
