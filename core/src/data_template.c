/* lorac — chat templates for training data: detection from a model's tokenizer.chat_template and
 * rendering of messages with the loss ranges of assistant turns (lorac/data.h, "CHAT TEMPLATES").
 *
 * Sources: Gemma 3's Hugging Face chat template (tokenizer_config.json "chat_template" of
 * google/gemma-3-*-it; the same Jinja is stored in GGUF as tokenizer.chat_template): BOS, a
 * first system message folded into the first turn as content + "\n\n", the alternation check
 * raising "Conversation roles must alternate user/assistant/user/assistant/...", role
 * "assistant" written "model", content through Jinja's `trim` filter (Python str.strip()), and
 * "<start_of_turn>{role}\n{content}<end_of_turn>\n" per turn. ChatML: OpenAI's chat markup as
 * used by Qwen ("<|im_start|>{role}\n{content}<|im_end|>\n").
 * Deviation: a system message given as several text parts is folded in with all its parts
 * joined (the Gemma template takes content[0]['text'] only).
 */
#include "data_internal.h"

#include <string.h>

static const char GEMMA_START[] = "<start_of_turn>";
static const char GEMMA_END[] = "<end_of_turn>";
static const char CHATML_START[] = "<|im_start|>";
static const char CHATML_END[] = "<|im_end|>";

const char *lc_chat_template_name(lc_chat_template t) {
    switch (t) {
    case LC_CHAT_TEMPLATE_AUTO: return "auto";
    case LC_CHAT_TEMPLATE_CHATML: return "chatml";
    case LC_CHAT_TEMPLATE_GEMMA: return "gemma";
    }
    return "unknown";
}

lc_chat_template lc_chat_template_detect(const char *template_text, const lc_tokenizer *tok) {
    if (template_text) {
        if (strstr(template_text, GEMMA_START) && strstr(template_text, GEMMA_END)) return LC_CHAT_TEMPLATE_GEMMA;
        return LC_CHAT_TEMPLATE_CHATML;
    }
    if (tok && lc_tokenizer_find(tok, GEMMA_START, sizeof GEMMA_START - 1) != LC_TOKEN_NULL &&
        lc_tokenizer_find(tok, GEMMA_END, sizeof GEMMA_END - 1) != LC_TOKEN_NULL)
        return LC_CHAT_TEMPLATE_GEMMA;
    return LC_CHAT_TEMPLATE_CHATML;
}

lc_chat_template lc_chat_template_from_gguf(const lc_gguf *f, const lc_tokenizer *tok) {
    const char *text = NULL;
    if (f && lc_gguf_find_key(f, "tokenizer.chat_template") >= 0) {
        size_t len = 0;
        if (lc_gguf_get_string(f, "tokenizer.chat_template", &text, &len) != LC_OK) {
            text = NULL;
            lc_clear_error();
        }
    }
    return lc_chat_template_detect(text, tok);
}

bool lc_chat_role_parse(const char *s, lc_chat_role *out) {
    if (strcmp(s, "system") == 0) *out = LC_CHAT_SYSTEM;
    else if (strcmp(s, "user") == 0) *out = LC_CHAT_USER;
    else if (strcmp(s, "assistant") == 0) *out = LC_CHAT_ASSISTANT;
    else return false;
    return true;
}

static const char *role_name(lc_chat_role r) {
    return r == LC_CHAT_SYSTEM ? "system" : r == LC_CHAT_USER ? "user" : "assistant";
}

/* Length of the whitespace character (Python str.isspace(): Unicode White_Space and
 * U+001C..U+001F) at s[0..n), 0 when s does not start with one. s is well-formed UTF-8. */
static size_t space_len_at(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
    if (c == 0xC2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2; /* U+0085, U+00A0 */
    if (c == 0xE1 && n >= 3 && s[1] == 0x9A && s[2] == 0x80) return 3;   /* U+1680 */
    if (c == 0xE2 && n >= 3) {
        if (s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
            return 3; /* U+2000..U+200A, U+2028, U+2029, U+202F */
        if (s[1] == 0x81 && s[2] == 0x9F) return 3; /* U+205F */
    }
    if (c == 0xE3 && n >= 3 && s[1] == 0x80 && s[2] == 0x80) return 3; /* U+3000 */
    return 0;
}

/* Python str.strip() on UTF-8 text: the trimmed range [*b, *e) of s[0..n). */
static void py_strip(const char *s, size_t n, size_t *b, size_t *e) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k;
    while (i < n && (k = space_len_at(u + i, n - i)) > 0) i += k;
    /* From the end: step back over whole characters (continuation bytes are 10xxxxxx). */
    size_t j = n;
    while (j > i) {
        size_t start = j - 1;
        while (start > i && (u[start] & 0xC0) == 0x80) start--;
        k = space_len_at(u + start, j - start);
        if (k == 0 || start + k != j) break;
        j = start;
    }
    *b = i;
    *e = j;
}

/* Append a message's content: parts joined; each part trimmed when `trim`. */
static lc_status add_content(lc_data_render *r, const lc_chat_msg *m, bool trim, bool trained) {
    for (size_t k = 0; k < m->n_parts; k++) {
        size_t b = 0, e = m->parts[k].len;
        if (trim) py_strip(m->parts[k].text, m->parts[k].len, &b, &e);
        lc_status st = lc_data_render_add(r, m->parts[k].text + b, e - b, trained);
        if (st) return st;
    }
    return LC_OK;
}

static lc_status add_str(lc_data_render *r, const char *s, bool trained) {
    return lc_data_render_add(r, s, strlen(s), trained);
}

static lc_status render_gemma(const lc_chat_msg *msgs, size_t n, lc_data_render *r, lc_data_where where) {
    size_t first = 0;
    const lc_chat_msg *system = NULL;
    if (n > 0 && msgs[0].role == LC_CHAT_SYSTEM) {
        system = &msgs[0];
        first = 1;
    }
    lc_status st;
    for (size_t i = first; i < n; i++) {
        const lc_chat_msg *m = &msgs[i];
        size_t k = i - first;
        if ((m->role == LC_CHAT_USER) != (k % 2 == 0))
            return lc_error(LC_ERR_FORMAT,
                            "lc_data: %s:%lld: %s: role \"%s\" out of order: the Gemma chat template needs turns "
                            "that alternate user/assistant/user/..., starting with user (after an optional first "
                            "system message)",
                            where.name, (long long)where.line, m->field ? m->field : "messages", role_name(m->role));
        const char *role = m->role == LC_CHAT_ASSISTANT ? "model" : role_name(m->role);
        if ((st = add_str(r, GEMMA_START, false)) || (st = add_str(r, role, false)) || (st = add_str(r, "\n", false)))
            return st;
        if (i == first && system) {
            /* The template adds the system content untrimmed, then "\n\n". */
            if ((st = add_content(r, system, false, false)) || (st = add_str(r, "\n\n", false))) return st;
        }
        bool trained = m->trained && m->role == LC_CHAT_ASSISTANT;
        if ((st = add_content(r, m, true, trained)) || (st = add_str(r, GEMMA_END, trained)) ||
            (st = add_str(r, "\n", false)))
            return st;
    }
    return LC_OK;
}

static lc_status render_chatml(const lc_chat_msg *msgs, size_t n, lc_data_render *r) {
    lc_status st;
    for (size_t i = 0; i < n; i++) {
        const lc_chat_msg *m = &msgs[i];
        bool trained = m->trained && m->role == LC_CHAT_ASSISTANT;
        if ((st = add_str(r, CHATML_START, false)) || (st = add_str(r, role_name(m->role), false)) ||
            (st = add_str(r, "\n", false)) || (st = add_content(r, m, false, trained)) ||
            (st = add_str(r, CHATML_END, trained)) || (st = add_str(r, "\n", false)))
            return st;
    }
    return LC_OK;
}

lc_status lc_chat_render(lc_chat_template t, const lc_chat_msg *msgs, size_t n, lc_data_render *r,
                         lc_data_where where) {
    switch (t) {
    case LC_CHAT_TEMPLATE_GEMMA: return render_gemma(msgs, n, r, where);
    case LC_CHAT_TEMPLATE_CHATML: return render_chatml(msgs, n, r);
    default: break;
    }
    return lc_error(LC_ERR_INVALID_ARG, "lc_data: %s:%lld: chat template %d is not one lorac renders", where.name,
                    (long long)where.line, (int)t);
}
