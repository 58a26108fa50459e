/* lorac — training data internals shared by data.c (examples -> sequences, batches, cursor),
 * data_source.c (files, byte checks, TEXT and FORTUNE documents), data_jsonl.c (JSONL rows) and
 * data_template.c (chat templates). The behaviour is specified in lorac/data.h.
 */
#ifndef LORAC_DATA_INTERNAL_H
#define LORAC_DATA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorac/data.h"

/* Growable byte string, always NUL-terminated when p != NULL. */
typedef struct lc_dbuf {
    char *p;
    size_t n, cap;
} lc_dbuf;

lc_status lc_dbuf_append(lc_dbuf *b, const char *s, size_t n);
void lc_dbuf_free(lc_dbuf *b);

/* Example kinds: TEXT may be split over several sequences without packing, the others are
 * truncated (keep_start). */
typedef enum lc_example_kind {
    LC_EXAMPLE_TEXT = 0,
    LC_EXAMPLE_PROMPT_COMPLETION = 1,
    LC_EXAMPLE_CHAT = 2
} lc_example_kind;

/* One example rendered to text, with the byte ranges whose tokens carry loss. */
typedef struct lc_data_render {
    lc_dbuf text;
    size_t *spans;          /* [begin, end) byte pairs, increasing and disjoint: 2*n_spans values */
    size_t n_spans, cap_spans;
    lc_example_kind kind;
    bool add_eos;           /* end with EOS (text, prompt-completion) */
    bool parse_special;     /* lc_tokenize's parse_special */
} lc_data_render;

/* Empty r for reuse (keeps its memory). */
void lc_data_render_reset(lc_data_render *r);
void lc_data_render_free(lc_data_render *r);
/* Append text; when trained, the bytes are a loss range (merged with an adjacent range). */
lc_status lc_data_render_add(lc_data_render *r, const char *s, size_t n, bool trained);

/* Where an example came from, for messages: "name:line". */
typedef struct lc_data_where {
    const char *name;
    int64_t line; /* 1-based */
} lc_data_where;

/* Receives each example of a source, in order. The render is reused after the call returns. */
typedef lc_status (*lc_data_sink_fn)(void *ctx, const lc_data_render *r, lc_data_where where);

/* ---- data_source.c ---------------------------------------------------------------------- */

/* Read a whole file (malloc'd, NUL-terminated copy in *buf, *len bytes without the NUL).
 * Errors: LC_ERR_IO naming path and errno text (missing, a directory, unreadable), LC_ERR_NOMEM. */
lc_status lc_data_read_file(const char *path, char **buf, size_t *len);

/* Checks every source passes: not empty, no NUL byte, well-formed UTF-8 (Unicode 15 Table 3-7:
 * no overlong forms, surrogates or code points past U+10FFFF). Errors: LC_ERR_FORMAT naming
 * `name`, the byte offset and the line. */
lc_status lc_data_check_bytes(const char *name, const char *buf, size_t len);

/* 1-based line number of byte offset `off`. */
int64_t lc_data_line_of(const char *buf, size_t off);

/* Length of a leading UTF-8 byte-order mark (3 or 0). */
size_t lc_data_bom_len(const char *buf, size_t len);

/* Documents of a TEXT or FORTUNE source, each as a TEXT example to the sink.
 * Errors: LC_ERR_FORMAT (no document in the source), and the sink's. */
lc_status lc_data_parse_text(const char *name, const char *buf, size_t len, lc_text_docs mode, bool parse_special,
                             lc_data_sink_fn sink, void *ctx);
lc_status lc_data_parse_fortune(const char *name, const char *buf, size_t len, bool parse_special,
                                lc_data_sink_fn sink, void *ctx);

/* ---- data_jsonl.c ----------------------------------------------------------------------- */

/* Every line of a JSONL source, as an example to the sink.
 * Errors: LC_ERR_FORMAT naming name:line and the field, LC_ERR_UNSUPPORTED (built without cJSON),
 * and the sink's. */
lc_status lc_data_parse_jsonl(const char *name, const char *buf, size_t len, lc_chat_template tmpl,
                              bool parse_special, lc_data_sink_fn sink, void *ctx);

/* ---- data_template.c -------------------------------------------------------------------- */

typedef enum lc_chat_role {
    LC_CHAT_SYSTEM = 0,
    LC_CHAT_USER = 1,
    LC_CHAT_ASSISTANT = 2
} lc_chat_role;

/* A piece of a message's content (a string, or one {"type":"text"} part). */
typedef struct lc_chat_part {
    const char *text;
    size_t len;
} lc_chat_part;

typedef struct lc_chat_msg {
    lc_chat_role role;
    const lc_chat_part *parts;
    size_t n_parts;
    bool trained;   /* loss on this turn (an assistant turn that is trained) */
    const char *field; /* for messages: "messages[3]" */
} lc_chat_msg;

/* Role from its name ("system", "user", "assistant"); false when unknown. */
bool lc_chat_role_parse(const char *s, lc_chat_role *out);

/* Render msgs[0..n) with template t (GEMMA or CHATML) into r (appended; r->kind, add_eos and
 * parse_special are left to the caller). Errors: LC_ERR_FORMAT naming where and the message
 * field (Gemma's turn order), LC_ERR_NOMEM. */
lc_status lc_chat_render(lc_chat_template t, const lc_chat_msg *msgs, size_t n, lc_data_render *r,
                         lc_data_where where);

#endif
