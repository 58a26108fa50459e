/* lorac — Hugging Face PEFT LoRA adapters: adapter_config.json + adapter_model.safetensors
 * (format, key names, orientation and matching rules: lorac/adapter.h; reference/peft-lora.md §2
 * and §8, reference/formats.md §5 for the Llama q/k row order).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "adapter_internal.h"
#include "lorac/adapter.h"
#include "lorac/lora.h"
#include "lorac/safetensors.h"

#ifdef LORAC_HAVE_CJSON
#include <cjson/cJSON.h>
#endif
#ifdef LORAC_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#else
#include <regex.h>
#endif

#define KEY_PREFIX "base_model.model."
#define KEY_SUFFIX_A ".lora_A.weight"
#define KEY_SUFFIX_B ".lora_B.weight"

/* ---- small text buffer ---------------------------------------------------------------------- */

typedef struct tbuf {
    char *p;
    size_t n, cap;
    bool oom;
} tbuf;

static void tb_put(tbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void tb_str(tbuf *b, const char *s) { tb_put(b, s, strlen(s)); }
static void tb_fmt(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_fmt(tbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) tb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* A JSON string as Python's json.dumps writes it (ensure_ascii=True): '"' '\\' and the short
 * escapes \b \f \n \r \t, other code points below 0x20 and every non-ASCII one as \uxxxx
 * (lowercase hex; UTF-16 surrogate pairs above U+FFFF). Bytes that are not valid UTF-8 are taken
 * as Latin-1. */
static void py_json_str(tbuf *b, const char *s) {
    tb_put(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp = *p;
        size_t len = 1;
        if (cp >= 0x80) {
            size_t need = (cp & 0xE0) == 0xC0 ? 2 : (cp & 0xF0) == 0xE0 ? 3 : (cp & 0xF8) == 0xF0 ? 4 : 0;
            uint32_t v = need == 2 ? (cp & 0x1F) : need == 3 ? (cp & 0x0F) : (cp & 0x07);
            bool ok = need > 0;
            for (size_t k = 1; ok && k < need; k++) {
                if ((p[k] & 0xC0) != 0x80) ok = false;
                else v = (v << 6) | (p[k] & 0x3F);
            }
            if (ok && ((need == 2 && v < 0x80) || (need == 3 && v < 0x800) || (need == 4 && v < 0x10000) ||
                       v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)))
                ok = false;
            if (ok) {
                cp = v;
                len = need;
            }
        }
        switch (cp) {
        case '"': tb_str(b, "\\\""); break;
        case '\\': tb_str(b, "\\\\"); break;
        case '\b': tb_str(b, "\\b"); break;
        case '\f': tb_str(b, "\\f"); break;
        case '\n': tb_str(b, "\\n"); break;
        case '\r': tb_str(b, "\\r"); break;
        case '\t': tb_str(b, "\\t"); break;
        default:
            if (cp < 0x20 || cp >= 0x7F) {
                if (cp >= 0x10000) {
                    uint32_t v = cp - 0x10000;
                    tb_fmt(b, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
                } else if (cp == 0x7F) {
                    tb_put(b, "\x7f", 1); /* DEL is ASCII: Python leaves it raw */
                } else {
                    tb_fmt(b, "\\u%04x", cp);
                }
            } else {
                char c = (char)cp;
                tb_put(b, &c, 1);
            }
        }
        p += len;
    }
    tb_put(b, "\"", 1);
}

/* A float32 as a JSON number: integral values as integers (how configs usually spell
 * lora_alpha), others with the fewest significant digits that read back as the same float32. */
static void py_json_float(tbuf *b, float x) {
    if (x == floorf(x) && fabsf(x) < 1e15f) {
        tb_fmt(b, "%lld", (long long)x);
        return;
    }
    char tmp[40];
    for (int p = 1; p <= 9; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, (double)x);
        if (strtof(tmp, NULL) == x) break;
    }
    if (!strchr(tmp, '.') && !strchr(tmp, 'e')) strcat(tmp, ".0");
    tb_str(b, tmp);
}

/* ---- files ------------------------------------------------------------------------------------ */

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), c = strlen(name);
    char *p = malloc(a + c + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, c + 1);
    return p;
}

static void fsync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static void fsync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        fsync_path(".");
        return;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) return;
    memcpy(d, path, n);
    d[n] = 0;
    fsync_path(d);
    free(d);
}

/* Write `n` bytes to "<path>.tmp", fsync, rename over `path`. */
static lc_status write_file_atomic(const char *path, const void *data, size_t n) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return lc_error(LC_ERR_NOMEM, "adapter: %s: out of host memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    lc_status st = LC_OK;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        st = lc_error(LC_ERR_IO, "adapter: %s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    if (n && fwrite(data, 1, n, fp) != n) st = lc_error(LC_ERR_IO, "adapter: %s: write failed: %s", tmp, strerror(errno));
    if (!st && fflush(fp) != 0) st = lc_error(LC_ERR_IO, "adapter: %s: flush failed: %s", tmp, strerror(errno));
    if (!st && fsync(fileno(fp)) != 0) st = lc_error(LC_ERR_IO, "adapter: %s: fsync failed: %s", tmp, strerror(errno));
    if (fclose(fp) != 0 && !st) st = lc_error(LC_ERR_IO, "adapter: %s: close failed: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0)
        st = lc_error(LC_ERR_IO, "adapter: cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st) remove(tmp);
    free(tmp);
    return st;
}

/* ---- module paths and patterns --------------------------------------------------------------- */

/* Module path prefixes of the decoder layers that keys may use: text models, then the language
 * model inside Gemma 3 / Llava-style multimodal models (new and old transformers layouts). */
static const char *const layer_prefixes[] = {"model.layers.", "model.language_model.layers.",
                                             "language_model.model.layers."};
#define N_LAYER_PREFIXES ((int)(sizeof layer_prefixes / sizeof layer_prefixes[0]))

static void module_path(char *dst, size_t cap, int prefix, int il, lc_module m) {
    snprintf(dst, cap, "%s%d.%s.%s", layer_prefixes[prefix], il, m <= LC_MOD_ATTN_OUTPUT ? "self_attn" : "mlp",
             lc_module_hf_name(m));
}

#ifdef LORAC_HAVE_CJSON

/* Parse a module path into (prefix, layer, module). Returns 1 on success, 0 when it is not a
 * decoder projection path, -1 when it is one but the layer index is >= n_layer (*il is set). */
static int parse_module_path(const char *path, int n_layer, int *prefix, int *il, lc_module *mod) {
    for (int p = 0; p < N_LAYER_PREFIXES; p++) {
        size_t n = strlen(layer_prefixes[p]);
        if (strncmp(path, layer_prefixes[p], n) != 0) continue;
        const char *s = path + n;
        if (!isdigit((unsigned char)*s) || (s[0] == '0' && isdigit((unsigned char)s[1]))) return 0;
        long v = 0;
        while (isdigit((unsigned char)*s)) {
            v = v * 10 + (*s - '0');
            if (v > INT_MAX) return 0;
            s++;
        }
        if (*s != '.') return 0;
        s++;
        for (int k = 0; k < LC_MOD_COUNT; k++) {
            char tail[64];
            snprintf(tail, sizeof tail, "%s.%s", k <= LC_MOD_ATTN_OUTPUT ? "self_attn" : "mlp", lc_module_hf_name((lc_module)k));
            if (strcmp(s, tail) == 0) {
                *prefix = p;
                *il = (int)v;
                *mod = (lc_module)k;
                return v < n_layer ? 1 : -1;
            }
        }
        return 0;
    }
    return 0;
}

static bool is_plain_key(const char *k) {
    if (!*k) return false;
    for (const char *p = k; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-') return false;
    return true;
}

static bool ends_with_dot(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && s[n - m - 1] == '.' && strcmp(s + n - m, suffix) == 0;
}

/* Does regular expression `body` match `subject`, anchored as "^(.*\.)?(body)$" (PEFT's
 * get_pattern_key) when `suffix_rule`, else as "^(body)$" (re.fullmatch)? */
static lc_status regex_match(const char *body, bool suffix_rule, const char *subject, bool *matched, const char *what) {
    *matched = false;
#ifdef LORAC_HAVE_PCRE2
    tbuf pat = {0};
    tb_str(&pat, suffix_rule ? "^(?:.*\\.)?(?:" : "^(?:");
    tb_str(&pat, body);
    tb_str(&pat, ")$");
    if (pat.oom) return lc_error(LC_ERR_NOMEM, "%s: out of host memory", what);
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat.p, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    free(pat.p);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return lc_error(LC_ERR_FORMAT, "adapter: %s: regular expression '%s' does not compile: %s", what, body, (char *)msg);
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        pcre2_code_free(re);
        return lc_error(LC_ERR_NOMEM, "%s: out of host memory", what);
    }
    int rc = pcre2_match(re, (PCRE2_SPTR)subject, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    *matched = rc >= 0;
    return LC_OK;
#else
    /* POSIX extended regex, with Python's \d \D (not in POSIX) rewritten as bracket expressions;
     * glibc knows \w \W \s \S. */
    tbuf pat = {0};
    tb_str(&pat, suffix_rule ? "^(.*\\.)?(" : "^(");
    for (const char *p = body; *p; p++) {
        if (p[0] == '\\' && p[1] == 'd') {
            tb_str(&pat, "[0-9]");
            p++;
        } else if (p[0] == '\\' && p[1] == 'D') {
            tb_str(&pat, "[^0-9]");
            p++;
        } else if (p[0] == '\\' && p[1]) {
            tb_put(&pat, p, 2);
            p++;
        } else {
            tb_put(&pat, p, 1);
        }
    }
    tb_str(&pat, ")$");
    if (pat.oom) return lc_error(LC_ERR_NOMEM, "%s: out of host memory", what);
    regex_t re;
    int rc = regcomp(&re, pat.p, REG_EXTENDED | REG_NOSUB);
    free(pat.p);
    if (rc != 0) {
        char msg[160];
        regerror(rc, &re, msg, sizeof msg);
        return lc_error(LC_ERR_FORMAT, "adapter: %s: regular expression '%s' does not compile: %s", what, body, msg);
    }
    *matched = regexec(&re, subject, 0, NULL, 0) == 0;
    regfree(&re);
    return LC_OK;
#endif
}

/* PEFT get_pattern_key: does pattern key `key` select module `path`? */
static lc_status pattern_key_match(const char *key, const char *path, bool *matched, const char *what) {
    if (is_plain_key(key)) {
        *matched = strcmp(path, key) == 0 || ends_with_dot(path, key);
        return LC_OK;
    }
    return regex_match(key, true, path, matched, what);
}

/* ---- loading ----------------------------------------------------------------------------------- */

typedef struct peft_cfg {
    const char *file;      /* adapter_config.json path, for messages */
    int r;
    float lora_alpha;
    bool use_rslora;
    float lora_dropout;
    const cJSON *rank_pattern, *alpha_pattern; /* objects or NULL */
    const cJSON *target;   /* NULL (default), string or array of strings */
    const cJSON *exclude;  /* NULL, string or array of strings */
    const cJSON *layers;   /* NULL, number or array of numbers */
} peft_cfg;

static bool json_int(const cJSON *j, long long lo, long long hi, long long *out) {
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < (double)lo || v > (double)hi) return false;
    *out = (long long)v;
    return true;
}

static const cJSON *field(const cJSON *root, const char *name) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, name);
    return (j && !cJSON_IsNull(j)) ? j : NULL;
}

static bool json_truthy(const cJSON *j) {
    if (!j) return false;
    if (cJSON_IsBool(j)) return cJSON_IsTrue(j);
    if (cJSON_IsArray(j) || cJSON_IsObject(j)) return cJSON_GetArraySize(j) > 0;
    if (cJSON_IsString(j)) return j->valuestring[0] != 0;
    if (cJSON_IsNumber(j)) return j->valuedouble != 0;
    return true;
}

static lc_status string_list_ok(const cJSON *j, const char *file, const char *name) {
    if (!j || cJSON_IsString(j)) return LC_OK;
    if (cJSON_IsArray(j)) {
        int i = 0;
        for (const cJSON *e = j->child; e; e = e->next, i++)
            if (!cJSON_IsString(e)) return lc_error(LC_ERR_FORMAT, "adapter: %s: field '%s'[%d] is not a string", file, name, i);
        return LC_OK;
    }
    return lc_error(LC_ERR_FORMAT, "adapter: %s: field '%s' must be null, a string or a list of strings", file, name);
}

/* A JSON number as written in the file, as far as a double can tell: the shortest %g form that
 * reads back as the same double (1e39 -> "1e+39", not the "inf" of its float32 conversion). */
static void shortest_double(char *dst, size_t cap, double v) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(dst, cap, "%.*g", prec, v);
        if (strtod(dst, NULL) == v) return;
    }
}

/* lorac keeps lora_alpha as a float32: a finite JSON number beyond FLT_MAX would become inf. */
static lc_status alpha_value_ok(const cJSON *j, const char *file, const char *field_name) {
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
        return lc_error(LC_ERR_FORMAT, "adapter: %s: %s must be a finite number", file, field_name);
    /* (float)v is inf from FLT_MAX + half its ulp (2^103) on: IEEE 754 round to nearest, ties to even. */
    if (fabs(j->valuedouble) >= (double)FLT_MAX + ldexp(1.0, 103)) {
        char v[40];
        shortest_double(v, sizeof v, j->valuedouble);
        return lc_error(LC_ERR_FORMAT, "adapter: %s: %s = %s is out of the float32 range lorac computes in "
                        "(|lora_alpha| <= %.9g)", file, field_name, v, (double)FLT_MAX);
    }
    return LC_OK;
}

static lc_status parse_config(const cJSON *root, peft_cfg *c) {
    const char *file = c->file;
    if (!cJSON_IsObject(root)) return lc_error(LC_ERR_FORMAT, "adapter: %s: not a JSON object", file);
    const cJSON *j = field(root, "peft_type");
    if (!cJSON_IsString(j))
        return lc_error(LC_ERR_FORMAT, "adapter: %s: field 'peft_type' missing (PEFT requires it)", file);
    if (strcmp(j->valuestring, "LORA") != 0)
        return lc_error(LC_ERR_FORMAT, "adapter: %s: peft_type is '%s'; lorac reads LORA adapters only", file, j->valuestring);
    long long v;
    c->r = 8; /* PEFT's defaults (LoraConfig) when absent */
    if ((j = field(root, "r"))) {
        if (!json_int(j, 1, INT_MAX, &v)) return lc_error(LC_ERR_FORMAT, "adapter: %s: field 'r' must be an integer >= 1", file);
        c->r = (int)v;
    }
    c->lora_alpha = 8.0f;
    if ((j = field(root, "lora_alpha"))) {
        lc_status ast = alpha_value_ok(j, file, "field 'lora_alpha'");
        if (ast) return ast;
        c->lora_alpha = (float)j->valuedouble;
    }
    c->use_rslora = false;
    if ((j = field(root, "use_rslora"))) {
        if (!cJSON_IsBool(j)) return lc_error(LC_ERR_FORMAT, "adapter: %s: field 'use_rslora' must be true or false", file);
        c->use_rslora = cJSON_IsTrue(j);
    }
    c->lora_dropout = 0.0f;
    if ((j = field(root, "lora_dropout"))) {
        if (!cJSON_IsNumber(j) || !(j->valuedouble >= 0.0 && j->valuedouble < 1.0))
            return lc_error(LC_ERR_FORMAT, "adapter: %s: field 'lora_dropout' must be a number in [0, 1)", file);
        c->lora_dropout = (float)j->valuedouble;
    }
    const char *patterns[2] = {"rank_pattern", "alpha_pattern"};
    for (int k = 0; k < 2; k++) {
        j = field(root, patterns[k]);
        if (j && !cJSON_IsObject(j))
            return lc_error(LC_ERR_FORMAT, "adapter: %s: field '%s' must be an object {module pattern: value}", file,
                            patterns[k]);
        for (const cJSON *e = j ? j->child : NULL; e; e = e->next) {
            if (k == 1) {
                char what[300];
                snprintf(what, sizeof what, "alpha_pattern['%s']", e->string);
                lc_status ast = alpha_value_ok(e, file, what);
                if (ast) return ast;
            } else if (!json_int(e, 1, INT_MAX, &v)) {
                return lc_error(LC_ERR_FORMAT, "adapter: %s: %s['%s'] must be an integer >= 1", file, patterns[k],
                                e->string);
            }
        }
        if (k == 0) c->rank_pattern = j;
        else c->alpha_pattern = j;
    }
    c->target = field(root, "target_modules");
    c->exclude = field(root, "exclude_modules");
    lc_status st = string_list_ok(c->target, file, "target_modules");
    if (!st) st = string_list_ok(c->exclude, file, "exclude_modules");
    if (st) return st;
    c->layers = field(root, "layers_to_transform");
    if (c->layers) {
        if (cJSON_IsArray(c->layers)) {
            for (const cJSON *e = c->layers->child; e; e = e->next)
                if (!json_int(e, 0, INT_MAX, &v))
                    return lc_error(LC_ERR_FORMAT, "adapter: %s: layers_to_transform entries must be integers >= 0", file);
        } else if (!json_int(c->layers, 0, INT_MAX, &v)) {
            return lc_error(LC_ERR_FORMAT, "adapter: %s: field 'layers_to_transform' must be null, an integer or a list "
                            "of integers", file);
        }
    }
    /* Settings whose tensors or semantics lorac's LoRA does not have. */
    if (json_truthy(field(root, "use_dora")))
        return lc_error(LC_ERR_UNSUPPORTED, "adapter: %s: use_dora is true; lorac does not implement DoRA "
                        "(lora_magnitude_vector)", file);
    if (json_truthy(field(root, "lora_bias")))
        return lc_error(LC_ERR_UNSUPPORTED, "adapter: %s: lora_bias is true; lorac's lora_B has no bias", file);
    if ((j = field(root, "bias")) && !(cJSON_IsString(j) && strcmp(j->valuestring, "none") == 0))
        return lc_error(LC_ERR_UNSUPPORTED, "adapter: %s: bias is '%s'; lorac trains no biases (only \"none\")", file,
                        cJSON_IsString(j) ? j->valuestring : "?");
    const char *unsupported[] = {"modules_to_save", "layer_replication", "target_parameters", "trainable_token_indices"};
    for (size_t k = 0; k < sizeof unsupported / sizeof unsupported[0]; k++)
        if (json_truthy(field(root, unsupported[k])))
            return lc_error(LC_ERR_UNSUPPORTED, "adapter: %s: field '%s' is set; lorac adapters hold lora_A/lora_B "
                            "pairs of the decoder projections only", file, unsupported[k]);
    return LC_OK;
}

/* Does the config target module `path` of layer il (target_modules, exclude_modules,
 * layers_to_transform; tuners_utils.py::check_target_module_exists)? */
static lc_status module_targeted(const peft_cfg *c, const char *path, int il, lc_module m, bool *out) {
    *out = false;
    bool hit = false;
    lc_status st;
    if (!c->target) {
        hit = m == LC_MOD_ATTN_Q || m == LC_MOD_ATTN_V; /* TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING */
    } else if (cJSON_IsString(c->target)) {
        if (strcmp(c->target->valuestring, "all-linear") == 0) hit = true;
        else if ((st = regex_match(c->target->valuestring, false, path, &hit, c->file))) return st;
    } else {
        for (const cJSON *e = c->target->child; e && !hit; e = e->next)
            hit = strcmp(path, e->valuestring) == 0 || ends_with_dot(path, e->valuestring);
    }
    if (!hit) return LC_OK;
    if (c->exclude) {
        bool ex = false;
        if (cJSON_IsString(c->exclude)) {
            if ((st = regex_match(c->exclude->valuestring, false, path, &ex, c->file))) return st;
        } else {
            for (const cJSON *e = c->exclude->child; e && !ex; e = e->next)
                ex = strcmp(path, e->valuestring) == 0 || ends_with_dot(path, e->valuestring);
        }
        if (ex) return LC_OK;
    }
    if (c->layers) {
        bool in = false;
        if (cJSON_IsNumber(c->layers)) in = (int)c->layers->valuedouble == il;
        for (const cJSON *e = cJSON_IsArray(c->layers) ? c->layers->child : NULL; e && !in; e = e->next)
            in = (int)e->valuedouble == il;
        if (!in) return LC_OK;
    }
    *out = true;
    return LC_OK;
}

/* Value of the first key of `pattern` (file order) that selects `path`; `*found` false when none. */
static lc_status pattern_lookup(const cJSON *pattern, const char *path, const char *file, double *value, bool *found) {
    *found = false;
    for (const cJSON *e = pattern ? pattern->child : NULL; e; e = e->next) {
        bool m = false;
        lc_status st = pattern_key_match(e->string, path, &m, file);
        if (st) return st;
        if (m) {
            *value = e->valuedouble;
            *found = true;
            return LC_OK;
        }
    }
    return LC_OK;
}

static char *read_text_file(const char *path, size_t max, lc_status *st) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        *st = lc_error(LC_ERR_IO, "adapter: %s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    tbuf b = {0};
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, fp)) > 0 && !b.oom) {
        tb_put(&b, chunk, k);
        if (b.n > max) break;
    }
    bool err = ferror(fp);
    fclose(fp);
    if (err) *st = lc_error(LC_ERR_IO, "adapter: %s: read failed", path);
    else if (b.oom) *st = lc_error(LC_ERR_NOMEM, "adapter: %s: out of host memory", path);
    else if (b.n > max) *st = lc_error(LC_ERR_FORMAT, "adapter: %s: larger than %zu bytes", path, max);
    else if (!b.p) tb_put(&b, "", 0);
    if (*st || b.oom) {
        free(b.p);
        if (!*st) *st = lc_error(LC_ERR_NOMEM, "adapter: %s: out of host memory", path);
        return NULL;
    }
    return b.p;
}

typedef struct key_slot {
    int64_t a, b;  /* safetensors tensor ids, -1 when absent */
    int prefix;    /* layer prefix used by the keys of this slot */
} key_slot;

static lc_status load_tensor_f32(const lc_safetensors *sf, int64_t id, float **out) {
    const lc_st_tensor_info *t = lc_safetensors_tensor(sf, id);
    if (t->dtype != LC_ST_F32 && t->dtype != LC_ST_F16 && t->dtype != LC_ST_BF16 && t->dtype != LC_ST_F64)
        return lc_error(LC_ERR_DTYPE, "adapter: %s: key '%s' has dtype %s; LoRA tensors must be F32, F16 or BF16",
                        lc_safetensors_path(sf), t->name, lc_st_dtype_name(t->dtype));
    float *buf = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *buf);
    if (!buf) return lc_error(LC_ERR_NOMEM, "adapter: %s: out of host memory for '%s'", lc_safetensors_path(sf), t->name);
    lc_status st = lc_safetensors_read_f32(sf, id, buf, t->numel);
    if (st) {
        free(buf);
        return st;
    }
    *out = buf;
    return LC_OK;
}

static lc_status check_shape(const lc_safetensors *sf, int64_t id, int64_t rows, int64_t cols, const char *role,
                             int r) {
    const lc_st_tensor_info *t = lc_safetensors_tensor(sf, id);
    if (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols) return LC_OK;
    char found[160] = "[";
    size_t k = 1;
    for (int d = 0; d < t->n_dims && k < sizeof found; d++)
        k += (size_t)snprintf(found + k, sizeof found - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (k < sizeof found) snprintf(found + k, sizeof found - k, "]");
    return lc_error(LC_ERR_FORMAT, "adapter: %s: key '%s' has shape %s, expected [%lld, %lld] (%s with r = %d; an "
                    "adapter for another model, or a rank that disagrees with adapter_config.json?)",
                    lc_safetensors_path(sf), t->name, found, (long long)rows, (long long)cols, role, r);
}

static lc_status fill_module(const lc_model *model, const lc_safetensors *sf, const key_slot *ks, lc_lora_module *lm) {
    float *a = NULL, *b = NULL;
    lc_status st = load_tensor_f32(sf, ks->a, &a);
    if (!st) st = load_tensor_f32(sf, ks->b, &b);
    if (!st) st = lc_adapter_check_finite(a, lc_nelements(lm->lora_a), lc_safetensors_path(sf),
                                          lc_safetensors_tensor(sf, ks->a)->name);
    if (!st) st = lc_adapter_check_finite(b, lc_nelements(lm->lora_b), lc_safetensors_path(sf),
                                          lc_safetensors_tensor(sf, ks->b)->name);
    if (!st) st = lc_tensor_set(lm->lora_a, a, 0, lc_nbytes(lm->lora_a));
    int n_heads = 0;
    if (!st && lc_adapter_qk_permuted(model, lm->module, &n_heads)) {
        const int64_t r = lm->r, out = lm->lora_b->ne[1], d = model->cfg.head_dim;
        if (d % 2 || (int64_t)n_heads * d != out) {
            st = lc_error(LC_ERR_SHAPE, "adapter: %s: module '%s': %lld rows are not %d heads of an even head_dim %lld",
                          lc_safetensors_path(sf), lm->target, (long long)out, n_heads, (long long)d);
        } else {
            float *p = malloc((size_t)(r * out) * sizeof *p);
            if (!p) st = lc_error(LC_ERR_NOMEM, "adapter: out of host memory");
            for (int64_t g = 0; p && g < out; g++) /* GGUF row g takes HF row qk_hf_row(g) */
                memcpy(p + g * r, b + lc_adapter_qk_hf_row(g, d) * r, (size_t)r * sizeof *p);
            if (p) {
                free(b);
                b = p;
            }
        }
    }
    if (!st) st = lc_tensor_set(lm->lora_b, b, 0, lc_nbytes(lm->lora_b));
    free(a);
    free(b);
    return st;
}

lc_status lc_adapter_load_peft(const lc_model *model, const char *dir, lc_lora_set **out) {
    if (!out) return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_load_peft: out is NULL");
    *out = NULL;
    if (!model || !dir) return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_load_peft: model or dir is NULL");
    const int nl = model->cfg.n_layer, n_slots = nl * LC_MOD_COUNT;
    char *cfg_path = path_join(dir, LC_PEFT_CONFIG_FILE), *st_path = path_join(dir, LC_PEFT_WEIGHTS_FILE);
    key_slot *ks = malloc((size_t)(n_slots ? n_slots : 1) * sizeof *ks);
    lc_adapter_want *want = calloc((size_t)(n_slots ? n_slots : 1), sizeof *want);
    char *text = NULL;
    cJSON *root = NULL;
    lc_safetensors *sf = NULL;
    lc_lora_set *set = NULL;
    lc_status st = LC_OK;
    if (!cfg_path || !st_path || !ks || !want) {
        st = lc_error(LC_ERR_NOMEM, "lc_adapter_load_peft: out of host memory");
        goto done;
    }
    text = read_text_file(cfg_path, (size_t)64 << 20, &st);
    if (st) goto done;
    root = cJSON_Parse(text);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        long off = (ep && ep >= text && ep <= text + strlen(text)) ? (long)(ep - text) : 0;
        st = lc_error(LC_ERR_FORMAT, "adapter: %s: not valid JSON (near byte %ld)", cfg_path, off);
        goto done;
    }
    peft_cfg c = {.file = cfg_path};
    if ((st = parse_config(root, &c))) goto done;
    if ((st = lc_safetensors_open(st_path, &sf))) goto done;

    /* Every key must name the A or B of one projection of this model. */
    for (int i = 0; i < n_slots; i++) ks[i] = (key_slot){-1, -1, -1};
    int used_prefix = 0;
    const int64_t nt = lc_safetensors_n_tensors(sf);
    for (int64_t i = 0; i < nt; i++) {
        const char *key = lc_safetensors_tensor(sf, i)->name;
        size_t n = strlen(key), np = strlen(KEY_PREFIX), ns = strlen(KEY_SUFFIX_A);
        bool is_a = n > np + ns && strcmp(key + n - ns, KEY_SUFFIX_A) == 0;
        bool is_b = n > np + ns && strcmp(key + n - ns, KEY_SUFFIX_B) == 0;
        int prefix = 0, il = -1, res = 0;
        lc_module mod = LC_MOD_ATTN_Q;
        if ((is_a || is_b) && strncmp(key, KEY_PREFIX, np) == 0) {
            char path[256];
            size_t len = n - np - ns;
            if (len < sizeof path) {
                memcpy(path, key + np, len);
                path[len] = 0;
                res = parse_module_path(path, nl, &prefix, &il, &mod);
            }
        }
        if (res == -1) {
            st = lc_error(LC_ERR_FORMAT, "adapter: %s: key '%s' names layer %d, but the model has %d layers (an adapter "
                          "for another model?)", st_path, key, il, nl);
            goto done;
        }
        if (res == 0) {
            st = lc_error(LC_ERR_FORMAT, "adapter: %s: key '%s' matches no module of the model (expected "
                          "base_model.model.model.layers.N.{self_attn.q_proj,...,mlp.down_proj}.lora_A.weight / "
                          ".lora_B.weight)", st_path, key);
            goto done;
        }
        key_slot *k = &ks[il * LC_MOD_COUNT + mod];
        int64_t *slot = is_a ? &k->a : &k->b;
        if (*slot >= 0 || (k->prefix >= 0 && k->prefix != prefix)) {
            st = lc_error(LC_ERR_FORMAT, "adapter: %s: key '%s': module %s of layer %d already has a lora_%c tensor "
                          "('%s')", st_path, key, lc_module_hf_name(mod), il, is_a ? 'A' : 'B',
                          lc_safetensors_tensor(sf, *slot >= 0 ? *slot : (is_a ? k->b : k->a))->name);
            goto done;
        }
        *slot = i;
        k->prefix = prefix;
        used_prefix = prefix;
    }

    /* Targeted modules, ranks and alphas; every key's module targeted, every target complete. */
    for (int il = 0; il < nl; il++) {
        for (int m = 0; m < LC_MOD_COUNT; m++) {
            key_slot *k = &ks[il * LC_MOD_COUNT + m];
            char path[160];
            module_path(path, sizeof path, k->prefix >= 0 ? k->prefix : used_prefix, il, (lc_module)m);
            bool targeted;
            if ((st = module_targeted(&c, path, il, (lc_module)m, &targeted))) goto done;
            const bool has_any = k->a >= 0 || k->b >= 0;
            if (has_any && !targeted) {
                st = lc_error(LC_ERR_FORMAT, "adapter: %s: key '%s' belongs to module '%s', which %s does not target "
                              "(target_modules / exclude_modules / layers_to_transform)", st_path,
                              lc_safetensors_tensor(sf, k->a >= 0 ? k->a : k->b)->name, path, cfg_path);
                goto done;
            }
            if (!targeted) continue;
            if (k->a < 0 || k->b < 0) {
                st = lc_error(LC_ERR_FORMAT, "adapter: %s: module '%s' is targeted by %s but has no %s tensor (key "
                              "'" KEY_PREFIX "%s%s' missing)", st_path, path, cfg_path, k->a < 0 ? "lora_A" : "lora_B",
                              path, k->a < 0 ? KEY_SUFFIX_A : KEY_SUFFIX_B);
                goto done;
            }
            double v;
            bool found;
            int r = c.r;
            float alpha = c.lora_alpha;
            if ((st = pattern_lookup(c.rank_pattern, path, cfg_path, &v, &found))) goto done;
            if (found) r = (int)v;
            if ((st = pattern_lookup(c.alpha_pattern, path, cfg_path, &v, &found))) goto done;
            if (found) alpha = (float)v;
            const lc_tensor *w = lc_model_module_weight(model, il, (lc_module)m);
            if ((st = check_shape(sf, k->a, r, w->ne[0], "[r, in]", r))) goto done;
            if ((st = check_shape(sf, k->b, w->ne[1], r, "[out, r]", r))) goto done;
            want[il * LC_MOD_COUNT + m] = (lc_adapter_want){true, r, alpha};
        }
    }

    lc_lora_config lc = {.r = c.r, .lora_alpha = c.lora_alpha, .use_rslora = c.use_rslora,
                         .dropout = c.lora_dropout, .seed = 0};
    if ((st = lc_adapter_new_set(model, &lc, want, st_path, &set))) goto done;
    for (int i = 0; i < set->n_modules && !st; i++) {
        lc_lora_module *lm = &set->modules[i];
        st = fill_module(model, sf, &ks[lm->layer * LC_MOD_COUNT + lm->module], lm);
    }
    if (st) {
        lc_lora_set_free(set);
        set = NULL;
    }

done:
    *out = set;
    lc_safetensors_close(sf);
    cJSON_Delete(root);
    free(text);
    free(want);
    free(ks);
    free(cfg_path);
    free(st_path);
    return st;
}

#else /* !LORAC_HAVE_CJSON */

lc_status lc_adapter_load_peft(const lc_model *model, const char *dir, lc_lora_set **out) {
    (void)model;
    if (out) *out = NULL;
    return lc_error(LC_ERR_UNSUPPORTED, "adapter: %s: lorac was built without cJSON (libcjson-dev)", dir ? dir : "(null)");
}

#endif /* LORAC_HAVE_CJSON */

/* ---- saving ------------------------------------------------------------------------------------ */

/* lora_alpha that reproduces the module's scaling: its own when consistent, else derived. */
static float module_alpha(const lc_lora_module *lm, bool rslora) {
    float s = lc_lora_scaling(lm->r, lm->lora_alpha, rslora);
    if (s == lm->scaling || fabsf(s - lm->scaling) <= 1e-6f * fabsf(lm->scaling)) return lm->lora_alpha;
    return rslora ? (float)((double)lm->scaling * sqrt((double)lm->r)) : (float)((double)lm->scaling * lm->r);
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Append `"key": {...}` for rank_pattern (alpha == false) or alpha_pattern, sorted keys. */
static void config_pattern(tbuf *t, const lc_lora_set *set, bool alpha) {
    const bool rs = set->cfg.use_rslora;
    int n = 0;
    for (int i = 0; i < set->n_modules; i++) {
        const lc_lora_module *lm = &set->modules[i];
        n += alpha ? module_alpha(lm, rs) != set->cfg.lora_alpha : lm->r != set->cfg.r;
    }
    tb_str(t, alpha ? "  \"alpha_pattern\": " : "  \"rank_pattern\": ");
    if (!n) {
        tb_str(t, "{},\n");
        return;
    }
    /* Layer-major module order is not string order ("layers.10" < "layers.2"): sort the lines. */
    char **lines = calloc((size_t)n, sizeof *lines);
    if (!lines) {
        t->oom = true;
        return;
    }
    int k = 0;
    for (int i = 0; i < set->n_modules; i++) {
        const lc_lora_module *lm = &set->modules[i];
        float a = module_alpha(lm, rs);
        if (alpha ? a == set->cfg.lora_alpha : lm->r == set->cfg.r) continue;
        char path[160];
        module_path(path, sizeof path, 0, lm->layer, lm->module);
        tbuf line = {0};
        tb_str(&line, "    ");
        py_json_str(&line, path);
        tb_str(&line, ": ");
        if (alpha) py_json_float(&line, a);
        else tb_fmt(&line, "%d", lm->r);
        if (line.oom) t->oom = true;
        lines[k++] = line.p;
    }
    qsort(lines, (size_t)k, sizeof *lines, cmp_cstr);
    tb_str(t, "{\n");
    for (int i = 0; i < k; i++) {
        if (lines[i]) tb_str(t, lines[i]);
        tb_str(t, i + 1 < k ? ",\n" : "\n");
        free(lines[i]);
    }
    free(lines);
    tb_str(t, "  },\n");
}

/* Which projections each layer has: the union over layers, whether every layer that has any has
 * the same ones, and whether every layer has some. */
static void layer_masks(const lc_model *model, const lc_lora_set *set, uint32_t *all, bool *uniform, bool *every_layer) {
    uint32_t common = 0;
    *all = 0;
    *uniform = *every_layer = true;
    for (int il = 0; il < model->cfg.n_layer; il++) {
        uint32_t mask = 0;
        for (int m = 0; m < LC_MOD_COUNT; m++)
            if (lc_lora_set_find(set, il, (lc_module)m)) mask |= 1u << m;
        if (!mask) {
            *every_layer = false;
            continue;
        }
        if (!*all) common = mask;
        else if (mask != common) *uniform = false;
        *all |= mask;
    }
}

/* layers_pattern and layers_to_transform: the list of layers with modules when only some layers
 * have them (and all those have the same projections), else null. */
static void config_layers(tbuf *t, const lc_model *model, const lc_lora_set *set) {
    uint32_t all;
    bool uniform, every_layer;
    layer_masks(model, set, &all, &uniform, &every_layer);
    tb_str(t, "  \"layers_pattern\": null,\n");
    if (!uniform || every_layer) {
        tb_str(t, "  \"layers_to_transform\": null,\n");
        return;
    }
    tb_str(t, "  \"layers_to_transform\": [\n");
    bool first = true;
    for (int il = 0; il < model->cfg.n_layer; il++) {
        bool has = false;
        for (int m = 0; m < LC_MOD_COUNT; m++) has = has || lc_lora_set_find(set, il, (lc_module)m);
        if (!has) continue;
        tb_fmt(t, "%s    %d", first ? "" : ",\n", il);
        first = false;
    }
    tb_str(t, "\n  ],\n");
}

/* target_modules: the sorted HF names of the projections, or, when layers differ in their
 * projections, a regular expression that PEFT fullmatches on module paths naming every module. */
static void config_target_modules(tbuf *t, const lc_model *model, const lc_lora_set *set) {
    uint32_t all;
    bool uniform, every_layer;
    layer_masks(model, set, &all, &uniform, &every_layer);
    tb_str(t, "  \"target_modules\": ");
    if (uniform) {
        const char *names[LC_MOD_COUNT];
        int n = 0;
        for (int m = 0; m < LC_MOD_COUNT; m++)
            if (all & (1u << m)) names[n++] = lc_module_hf_name((lc_module)m);
        qsort(names, (size_t)n, sizeof names[0], cmp_cstr);
        tb_str(t, "[\n");
        for (int i = 0; i < n; i++) {
            tb_str(t, "    ");
            py_json_str(t, names[i]);
            tb_str(t, i + 1 < n ? ",\n" : "\n");
        }
        tb_str(t, "  ],\n");
        return;
    }
    tbuf re = {0};
    tb_str(&re, "(");
    for (int i = 0; i < set->n_modules; i++) {
        char path[160];
        module_path(path, sizeof path, 0, set->modules[i].layer, set->modules[i].module);
        if (i) tb_str(&re, "|");
        for (const char *p = path; *p; p++) {
            if (*p == '.') tb_str(&re, "\\");
            tb_put(&re, p, 1);
        }
    }
    tb_str(&re, ")");
    if (re.oom) t->oom = true;
    else py_json_str(t, re.p);
    free(re.p);
    tb_str(t, ",\n");
}

/* adapter_config.json as json.dumps(indent=2, sort_keys=True). */
static lc_status build_config(const lc_model *model, const lc_lora_set *set, const lc_adapter_meta *meta, tbuf *t) {
    tb_str(t, "{\n");
    config_pattern(t, set, true);
    tb_str(t, "  \"base_model_name_or_path\": ");
    if (meta && meta->base_model_name_or_path) py_json_str(t, meta->base_model_name_or_path);
    else tb_str(t, "null");
    tb_str(t, ",\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n  \"inference_mode\": true,\n"
              "  \"init_lora_weights\": true,\n");
    config_layers(t, model, set);
    tb_str(t, "  \"lora_alpha\": ");
    py_json_float(t, set->cfg.lora_alpha);
    tb_str(t, ",\n  \"lora_dropout\": ");
    py_json_float(t, set->cfg.dropout);
    tb_str(t, ",\n  \"modules_to_save\": null,\n  \"peft_type\": \"LORA\",\n");
    tb_fmt(t, "  \"r\": %d,\n", set->cfg.r);
    config_pattern(t, set, false);
    tb_str(t, "  \"revision\": null,\n");
    config_target_modules(t, model, set);
    tb_str(t, "  \"task_type\": \"CAUSAL_LM\",\n  \"use_dora\": false,\n  \"use_rslora\": ");
    tb_str(t, set->cfg.use_rslora ? "true\n}" : "false\n}");
    return t->oom ? lc_error(LC_ERR_NOMEM, "adapter: out of host memory for adapter_config.json") : LC_OK;
}

/* The safetensors writer holding every module's A and B (HF orientation). */
static lc_status build_weights(const lc_model *model, const lc_lora_set *set, lc_safetensors_writer *w) {
    lc_status st = LC_OK;
    for (int i = 0; i < set->n_modules && !st; i++) {
        const lc_lora_module *lm = &set->modules[i];
        const int64_t r = lm->r, in = lm->lora_a->ne[0], out = lm->lora_b->ne[1];
        float *a = malloc((size_t)(r * in) * sizeof *a), *b = malloc((size_t)(r * out) * sizeof *b);
        float *hb = NULL;
        if (!a || !b) st = lc_error(LC_ERR_NOMEM, "adapter: out of host memory for module '%s'", lm->target);
        if (!st) st = lc_tensor_get(lm->lora_a, a, 0, lc_nbytes(lm->lora_a));
        if (!st) st = lc_tensor_get(lm->lora_b, b, 0, lc_nbytes(lm->lora_b));
        int n_heads = 0;
        if (!st && lc_adapter_qk_permuted(model, lm->module, &n_heads)) {
            const int64_t d = model->cfg.head_dim;
            if (d % 2 || (int64_t)n_heads * d != out) {
                st = lc_error(LC_ERR_SHAPE, "adapter: module '%s': %lld rows are not %d heads of an even head_dim %lld",
                              lm->target, (long long)out, n_heads, (long long)d);
            } else if (!(hb = malloc((size_t)(r * out) * sizeof *hb))) {
                st = lc_error(LC_ERR_NOMEM, "adapter: out of host memory for module '%s'", lm->target);
            } else {
                for (int64_t g = 0; g < out; g++) /* HF row qk_hf_row(g) takes GGUF row g */
                    memcpy(hb + lc_adapter_qk_hf_row(g, d) * r, b + g * r, (size_t)r * sizeof *hb);
            }
        }
        char path[160], key[256];
        module_path(path, sizeof path, 0, lm->layer, lm->module);
        if (!st) {
            snprintf(key, sizeof key, KEY_PREFIX "%s" KEY_SUFFIX_A, path);
            const int64_t shape[2] = {r, in};
            st = lc_safetensors_writer_add(w, key, LC_ST_F32, 2, shape, a, (size_t)(r * in) * sizeof *a);
        }
        if (!st) {
            snprintf(key, sizeof key, KEY_PREFIX "%s" KEY_SUFFIX_B, path);
            const int64_t shape[2] = {out, r};
            st = lc_safetensors_writer_add(w, key, LC_ST_F32, 2, shape, hb ? hb : b, (size_t)(r * out) * sizeof *b);
        }
        free(a);
        free(b);
        free(hb);
    }
    if (!st) st = lc_safetensors_writer_set_metadata(w, "format", "pt");
    return st;
}

/* Write both files into `dir` (an existing directory), weights first, each via tmp + rename. */
static lc_status write_files(const char *dir, const lc_safetensors_writer *w, const tbuf *cfg) {
    char *wp = path_join(dir, LC_PEFT_WEIGHTS_FILE), *cp = path_join(dir, LC_PEFT_CONFIG_FILE);
    lc_status st = (!wp || !cp) ? lc_error(LC_ERR_NOMEM, "adapter: out of host memory") : LC_OK;
    if (!st) st = lc_safetensors_writer_write(w, wp);
    if (!st) st = write_file_atomic(cp, cfg->p, cfg->n);
    if (!st) fsync_path(dir);
    free(wp);
    free(cp);
    return st;
}

/* Remove a stale "<dir>.tmp" left by a crash: only the files this writer puts there. */
static lc_status clear_stale_tmp(const char *tmpdir) {
    struct stat sb;
    if (stat(tmpdir, &sb) != 0) return LC_OK;
    const char *names[] = {LC_PEFT_WEIGHTS_FILE, LC_PEFT_CONFIG_FILE, LC_PEFT_WEIGHTS_FILE ".tmp",
                           LC_PEFT_CONFIG_FILE ".tmp"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = path_join(tmpdir, names[i]);
        if (!p) return lc_error(LC_ERR_NOMEM, "adapter: out of host memory");
        remove(p);
        free(p);
    }
    if (rmdir(tmpdir) != 0)
        return lc_error(LC_ERR_IO, "adapter: cannot remove the stale temporary directory %s: %s", tmpdir,
                        strerror(errno));
    return LC_OK;
}

lc_status lc_adapter_save_peft(const lc_model *model, const lc_lora_set *set, const char *dir,
                               const lc_adapter_meta *meta) {
    if (!model || !set || !dir || !dir[0])
        return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_save_peft: model, set or dir is NULL or empty");
    lc_status st = lc_adapter_check_set(model, set, "lc_adapter_save_peft");
    if (st) return st;
    if (set->n_modules < 1) return lc_error(LC_ERR_INVALID_ARG, "lc_adapter_save_peft: the LoRA set has no module");
    /* "out/adapter/" -> "out/adapter" */
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    char *d = malloc(dl + 5);
    if (!d) return lc_error(LC_ERR_NOMEM, "lc_adapter_save_peft: out of host memory");
    memcpy(d, dir, dl);
    d[dl] = 0;
    tbuf cfg = {0};
    lc_safetensors_writer *w = NULL;
    char *tmpdir = NULL;
    st = lc_safetensors_writer_new(&w);
    if (!st) st = build_weights(model, set, w);
    if (!st) st = build_config(model, set, meta, &cfg);
    if (st) goto done;
    struct stat sb;
    if (stat(d, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            st = lc_error(LC_ERR_IO, "adapter: %s exists and is not a directory", d);
            goto done;
        }
        st = write_files(d, w, &cfg);
        goto done;
    }
    tmpdir = malloc(dl + 5);
    if (!tmpdir) {
        st = lc_error(LC_ERR_NOMEM, "lc_adapter_save_peft: out of host memory");
        goto done;
    }
    memcpy(tmpdir, d, dl);
    memcpy(tmpdir + dl, ".tmp", 5);
    if ((st = clear_stale_tmp(tmpdir))) goto done;
    if (mkdir(tmpdir, 0777) != 0) {
        st = lc_error(LC_ERR_IO, "adapter: cannot create directory %s: %s", tmpdir, strerror(errno));
        goto done;
    }
    st = write_files(tmpdir, w, &cfg);
    if (!st && rename(tmpdir, d) != 0)
        st = lc_error(LC_ERR_IO, "adapter: cannot rename %s to %s: %s", tmpdir, d, strerror(errno));
    if (st) clear_stale_tmp(tmpdir);
    else fsync_parent(d);
done:
    lc_safetensors_writer_free(w);
    free(cfg.p);
    free(tmpdir);
    free(d);
    return st;
}
