/* lorac — JSONL training data: one JSON object per line, in the three dataset shapes of TRL's
 * SFTTrainer (reference/peft-lora.md §7: language modelling "text", prompt-completion, and
 * conversational "messages"), rendered to text with loss ranges (lorac/data.h, "INPUTS").
 *
 * Format: JSON Lines (jsonlines.org): UTF-8, one JSON value per line, lines ended by "\n" (a
 * "\r" before it is whitespace to the JSON parser). JSON itself: RFC 8259, parsed with cJSON.
 */
#include "data_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef LORAC_HAVE_CJSON
#include <cjson/cJSON.h>

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

/* Parts of one message's content: a string, or an array of {"type": "text", "text": str}. */
typedef struct msg_store {
    lc_chat_msg *msgs;
    lc_chat_part *parts;
    char (*fields)[48];
    size_t n_msgs, cap_msgs, n_parts, cap_parts;
} msg_store;

static lc_status store_grow(msg_store *s, size_t need_msgs, size_t need_parts) {
    if (need_msgs > s->cap_msgs) {
        size_t cap = s->cap_msgs ? s->cap_msgs : 8;
        while (cap < need_msgs) cap *= 2;
        lc_chat_msg *m = realloc(s->msgs, cap * sizeof *m);
        if (!m) return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %zu chat messages", cap);
        s->msgs = m;
        char(*f)[48] = realloc(s->fields, cap * sizeof *f);
        if (!f) return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %zu chat messages", cap);
        s->fields = f;
        s->cap_msgs = cap;
    }
    if (need_parts > s->cap_parts) {
        size_t cap = s->cap_parts ? s->cap_parts : 8;
        while (cap < need_parts) cap *= 2;
        lc_chat_part *p = realloc(s->parts, cap * sizeof *p);
        if (!p) return lc_error(LC_ERR_NOMEM, "lc_data: out of host memory for %zu content parts", cap);
        s->parts = p;
        s->cap_parts = cap;
    }
    return LC_OK;
}

static void store_free(msg_store *s) {
    free(s->msgs);
    free(s->parts);
    free(s->fields);
    memset(s, 0, sizeof *s);
}

/* Deepest nesting of [ and { in buf[0, n), outside strings: cJSON refuses more than
 * CJSON_NESTING_LIMIT levels with the same error as a syntax error, so the caller can say which. */
static int json_depth(const char *buf, size_t n) {
    int depth = 0, deepest = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        const char ch = buf[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > deepest) deepest = depth;
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    return deepest;
}

/* The first key that appears twice among the members of object `obj` (JSON leaves duplicate
 * names undefined, RFC 8259 section 4; cJSON would silently use the first), or NULL. */
static const char *duplicate_key(const cJSON *obj) {
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && strcmp(a->string, b->string) == 0) return a->string;
    return NULL;
}

/* Append the messages of JSON array `arr` (field name `key`), trained when assistant && trained.
 * Each message's parts follow the previous message's in s->parts; store_fix() points at them once
 * the array has stopped growing. */
static lc_status add_messages(msg_store *s, const cJSON *arr, const char *key, bool trained, lc_data_where w) {
    if (!cJSON_IsArray(arr))
        return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: field \"%s\" must be an array of messages, got %s", w.name,
                        (long long)w.line, key, json_type_name(arr));
    int n = cJSON_GetArraySize(arr);
    if (n == 0)
        return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: field \"%s\" is an empty array", w.name, (long long)w.line,
                        key);
    int i = 0;
    for (const cJSON *m = arr->child; m; m = m->next, i++) {
        lc_status st = store_grow(s, s->n_msgs + 1, s->n_parts + 1);
        if (st) return st;
        char field[48];
        snprintf(field, sizeof field, "%.16s[%d]", key, i);
        if (!cJSON_IsObject(m))
            return lc_error(LC_ERR_FORMAT,
                            "lc_data: %s:%lld: %s must be an object with \"role\" and \"content\", got %s", w.name,
                            (long long)w.line, field, json_type_name(m));
        const char *dup = duplicate_key(m);
        if (dup)
            return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: %s has the key \"%.40s\" twice", w.name,
                            (long long)w.line, field, dup);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!role)
            return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: %s lacks the field \"role\"", w.name, (long long)w.line,
                            field);
        if (!cJSON_IsString(role))
            return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: %s.role must be a string, got %s", w.name,
                            (long long)w.line, field, json_type_name(role));
        lc_chat_role r;
        if (!lc_chat_role_parse(role->valuestring, &r))
            return lc_error(LC_ERR_FORMAT,
                            "lc_data: %s:%lld: %s.role \"%.40s\" is not a known role (system, user, assistant)", w.name,
                            (long long)w.line, field, role->valuestring);
        if (!content)
            return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: %s lacks the field \"content\"", w.name,
                            (long long)w.line, field);
        lc_chat_msg *msg = &s->msgs[s->n_msgs];
        memcpy(s->fields[s->n_msgs], field, sizeof field);
        msg->role = r;
        msg->trained = trained && r == LC_CHAT_ASSISTANT;
        msg->field = NULL;
        msg->parts = NULL; /* set by store_fix: the parts array may still move */
        msg->n_parts = 0;
        if (cJSON_IsString(content)) {
            s->parts[s->n_parts].text = content->valuestring;
            s->parts[s->n_parts].len = strlen(content->valuestring);
            s->n_parts++;
            msg->n_parts = 1;
        } else if (cJSON_IsArray(content)) {
            int k = 0;
            for (const cJSON *p = content->child; p; p = p->next, k++) {
                const cJSON *type = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "type") : NULL;
                const cJSON *text = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "text") : NULL;
                if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text))
                    return lc_error(LC_ERR_FORMAT,
                                    "lc_data: %s:%lld: %s.content[%d] must be {\"type\": \"text\", \"text\": string} "
                                    "(lorac trains on text only)",
                                    w.name, (long long)w.line, field, k);
                if ((st = store_grow(s, s->n_msgs + 1, s->n_parts + 1))) return st;
                s->parts[s->n_parts].text = text->valuestring;
                s->parts[s->n_parts].len = strlen(text->valuestring);
                s->n_parts++;
                msg->n_parts++;
            }
        } else {
            return lc_error(LC_ERR_FORMAT,
                            "lc_data: %s:%lld: %s.content must be a string or an array of text parts, got %s", w.name,
                            (long long)w.line, field, json_type_name(content));
        }
        s->n_msgs++;
    }
    return LC_OK;
}

static void store_fix(msg_store *s) {
    size_t off = 0;
    for (size_t i = 0; i < s->n_msgs; i++) {
        s->msgs[i].parts = s->parts + off;
        s->msgs[i].field = s->fields[i];
        off += s->msgs[i].n_parts;
    }
}

static lc_status string_field(const cJSON *v, const char *key, lc_data_where w) {
    if (cJSON_IsString(v)) return LC_OK;
    return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: field \"%s\" must be a string, got %s", w.name, (long long)w.line,
                    key, json_type_name(v));
}

/* Render one parsed row into r. */
static lc_status render_row(const cJSON *row, lc_chat_template tmpl, msg_store *s, lc_data_render *r, lc_data_where w) {
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(row, "messages");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(row, "prompt");
    const cJSON *completion = cJSON_GetObjectItemCaseSensitive(row, "completion");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(row, "text");
    lc_status st;
    s->n_msgs = s->n_parts = 0;
    if (messages) {
        if ((st = add_messages(s, messages, "messages", true, w))) return st;
        store_fix(s);
        r->kind = LC_EXAMPLE_CHAT;
        return lc_chat_render(tmpl, s->msgs, s->n_msgs, r, w);
    }
    if (prompt || completion) {
        if (!prompt)
            return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: field \"completion\" without the field \"prompt\"",
                            w.name, (long long)w.line);
        if (!completion)
            return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: field \"prompt\" without the field \"completion\"",
                            w.name, (long long)w.line);
        if (cJSON_IsArray(prompt) || cJSON_IsArray(completion)) { /* conversational prompt-completion */
            if ((st = add_messages(s, prompt, "prompt", false, w)) ||
                (st = add_messages(s, completion, "completion", true, w)))
                return st;
            store_fix(s);
            r->kind = LC_EXAMPLE_CHAT;
            return lc_chat_render(tmpl, s->msgs, s->n_msgs, r, w);
        }
        if ((st = string_field(prompt, "prompt", w)) || (st = string_field(completion, "completion", w))) return st;
        r->kind = LC_EXAMPLE_PROMPT_COMPLETION;
        r->add_eos = true;
        if ((st = lc_data_render_add(r, prompt->valuestring, strlen(prompt->valuestring), false))) return st;
        return lc_data_render_add(r, completion->valuestring, strlen(completion->valuestring), true);
    }
    if (text) {
        if ((st = string_field(text, "text", w))) return st;
        size_t n = strlen(text->valuestring);
        if (n == 0)
            return lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: field \"text\" is an empty string", w.name,
                            (long long)w.line);
        r->kind = LC_EXAMPLE_TEXT;
        r->add_eos = true;
        return lc_data_render_add(r, text->valuestring, n, true);
    }
    return lc_error(LC_ERR_FORMAT,
                    "lc_data: %s:%lld: the object has none of the fields \"text\", \"prompt\" + \"completion\", "
                    "\"messages\"",
                    w.name, (long long)w.line);
}

lc_status lc_data_parse_jsonl(const char *name, const char *buf, size_t len, lc_chat_template tmpl,
                              bool parse_special, lc_data_sink_fn sink, void *ctx) {
    lc_data_render r = {0};
    msg_store s = {0};
    lc_status st = LC_OK;
    size_t at = lc_data_bom_len(buf, len);
    int64_t line = 1, n_rows = 0;
    while (at < len && st == LC_OK) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t b = at;
        while (b < end && (buf[b] == ' ' || buf[b] == '\t' || buf[b] == '\r')) b++;
        if (b < end) {
            lc_data_where w = {name, line};
            const char *parse_end = NULL;
            cJSON *row = cJSON_ParseWithLengthOpts(buf + at, end - at, &parse_end, 0);
            if (!row && json_depth(buf + at, end - at) > CJSON_NESTING_LIMIT) {
                st = lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: JSON nested deeper than %d levels (the parser's limit)",
                              name, (long long)line, CJSON_NESTING_LIMIT);
                break;
            }
            if (!row) {
                const char *ep = cJSON_GetErrorPtr();
                size_t col = (ep && ep >= buf + at && ep <= buf + end) ? (size_t)(ep - (buf + at)) : 0;
                st = lc_error(LC_ERR_FORMAT,
                              "lc_data: %s:%lld: JSON syntax error at byte %zu of the line (file byte offset %zu)",
                              name, (long long)line, col + 1, at + col);
                break;
            }
            const char *rest = parse_end ? parse_end : buf + end;
            while (rest < buf + end && (*rest == ' ' || *rest == '\t' || *rest == '\r')) rest++;
            if (rest < buf + end) {
                size_t col = (size_t)(rest - (buf + at));
                st = lc_error(LC_ERR_FORMAT,
                              "lc_data: %s:%lld: JSON syntax error at byte %zu of the line (file byte offset %zu): "
                              "text after the object (one object per line)",
                              name, (long long)line, col + 1, at + col);
            } else if (!cJSON_IsObject(row)) {
                st = lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: a JSONL line must be an object, got %s", name,
                              (long long)line, json_type_name(row));
            } else if (duplicate_key(row)) {
                st = lc_error(LC_ERR_FORMAT, "lc_data: %s:%lld: the object has the key \"%.40s\" twice", name,
                              (long long)line, duplicate_key(row));
            } else {
                lc_data_render_reset(&r);
                r.parse_special = parse_special;
                st = render_row(row, tmpl, &s, &r, w);
                if (st == LC_OK) st = sink(ctx, &r, w);
                n_rows++;
            }
            cJSON_Delete(row);
        }
        at = nl ? end + 1 : len;
        line++;
    }
    if (st == LC_OK && n_rows == 0)
        st = lc_error(LC_ERR_FORMAT, "lc_data: %s: no JSON object: the file holds only whitespace", name);
    lc_data_render_free(&r);
    store_free(&s);
    return st;
}

#else /* !LORAC_HAVE_CJSON */

lc_status lc_data_parse_jsonl(const char *name, const char *buf, size_t len, lc_chat_template tmpl,
                              bool parse_special, lc_data_sink_fn sink, void *ctx) {
    (void)buf; (void)len; (void)tmpl; (void)parse_special; (void)sink; (void)ctx;
    return lc_error(LC_ERR_UNSUPPORTED, "lc_data: %s: JSONL needs cJSON, which this build of lorac lacks", name);
}

#endif
