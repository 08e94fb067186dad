/* json_write.c: DOM writer and the jw_* streaming writer (see json.h).
 *
 * Strings: '"' and '\\' are escaped, \b \f \n \r \t use their short forms, other control
 * characters are written as \u00XX; valid UTF-8 is kept as is and any invalid byte is
 * replaced by U+FFFD, so the output is always valid JSON. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 for bytes that need escaping (< 0x20, '"', '\\'), 2 for non-ASCII, 0 otherwise */
static const unsigned char esc_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Length of the valid UTF-8 sequence at p[0..left) (p[0] >= 0x80), 0 if invalid. */
static int utf8_len_at(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    int n;
    if (c >= 0xC2 && c < 0xE0) n = 2;
    else if (c >= 0xE0 && c < 0xF0) n = 3;
    else if (c >= 0xF0 && c < 0xF5) n = 4;
    else return 0;
    if ((size_t)n > left) return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;
    if (c == 0xED && p[1] > 0x9F) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;
    if (c == 0xF4 && p[1] > 0x8F) return 0;
    return n;
}

void json_write_string(buf *out, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str, *e = s + len;
    buf_reserve(out, len + 2);
    out->p[out->len++] = '"';
    while (s < e) {
        const unsigned char *run = s;
        while (s < e && !esc_class[*s]) s++;
        if (s > run) {
            size_t n = (size_t)(s - run);
            buf_reserve(out, n + 1);
            memcpy(out->p + out->len, run, n);
            out->len += n;
        }
        if (s >= e) break;
        unsigned char c = *s;
        buf_reserve(out, 8);
        char *w = out->p + out->len;
        if (esc_class[c] == 2) {
            int n = utf8_len_at(s, (size_t)(e - s));
            if (n) {
                memcpy(w, s, (size_t)n);
                out->len += (size_t)n;
                s += n;
            } else {
                memcpy(w, "\xEF\xBF\xBD", 3);
                out->len += 3;
                s++;
            }
            continue;
        }
        s++;
        switch (c) {
        case '"': memcpy(w, "\\\"", 2); out->len += 2; break;
        case '\\': memcpy(w, "\\\\", 2); out->len += 2; break;
        case '\b': memcpy(w, "\\b", 2); out->len += 2; break;
        case '\f': memcpy(w, "\\f", 2); out->len += 2; break;
        case '\n': memcpy(w, "\\n", 2); out->len += 2; break;
        case '\r': memcpy(w, "\\r", 2); out->len += 2; break;
        case '\t': memcpy(w, "\\t", 2); out->len += 2; break;
        default:
            w[0] = '\\'; w[1] = 'u'; w[2] = '0'; w[3] = '0';
            w[4] = hex[c >> 4];
            w[5] = hex[c & 15];
            out->len += 6;
        }
    }
    buf_reserve(out, 1);
    out->p[out->len++] = '"';
    out->p[out->len] = 0;
}

static void put_indent(buf *out, int level)
{
    buf_reserve(out, 1 + (size_t)level * 2);
    out->p[out->len++] = '\n';
    memset(out->p + out->len, ' ', (size_t)level * 2);
    out->len += (size_t)level * 2;
    out->p[out->len] = 0;
}

static void write_val(buf *out, const json_val *v, bool pretty, int level)
{
    switch (v->type) {
    case JSON_NULL: buf_put(out, "null", 4); break;
    case JSON_TRUE: buf_put(out, "true", 4); break;
    case JSON_FALSE: buf_put(out, "false", 5); break;
    case JSON_NUMBER:
        if (v->len && v->u.s) buf_put(out, v->u.s, v->len);
        else buf_put(out, "0", 1);
        break;
    case JSON_STRING: json_write_string(out, v->u.s ? v->u.s : "", v->len); break;
    case JSON_ARRAY:
        buf_putc(out, '[');
        for (uint32_t i = 0; i < v->len; i++) {
            if (i) buf_putc(out, ',');
            if (pretty) put_indent(out, level + 1);
            write_val(out, &v->u.a[i], pretty, level + 1);
        }
        if (pretty && v->len) put_indent(out, level);
        buf_putc(out, ']');
        break;
    case JSON_OBJECT:
        buf_putc(out, '{');
        for (uint32_t i = 0; i < v->len; i++) {
            const json_kv *m = &v->u.o[i];
            if (i) buf_putc(out, ',');
            if (pretty) put_indent(out, level + 1);
            json_write_string(out, m->key, m->key_len);
            if (pretty) buf_put(out, ": ", 2);
            else buf_putc(out, ':');
            write_val(out, &m->val, pretty, level + 1);
        }
        if (pretty && v->len) put_indent(out, level);
        buf_putc(out, '}');
        break;
    default: buf_put(out, "null", 4); break;
    }
}

void json_write(buf *out, const json_val *v, bool pretty)
{
    if (!v) {
        buf_put(out, "null", 4);
        return;
    }
    write_val(out, v, pretty, 0);
}

/* ---- streaming writer ---- */

#define JW_MAXD ((int)(sizeof(((jw *)0)->need_comma) / sizeof(bool)))

static inline bool *jw_slot(jw *w)
{
    int d = w->depth;
    if (d < 0) d = 0;
    if (d >= JW_MAXD) d = JW_MAXD - 1;
    return &w->need_comma[d];
}

/* before a value (or a key) at the current level */
static inline void jw_pre(jw *w)
{
    bool *nc = jw_slot(w);
    if (*nc) buf_putc(w->out, ',');
    *nc = true;
}

void jw_init(jw *w, buf *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
}

void jw_obj_begin(jw *w)
{
    jw_pre(w);
    buf_putc(w->out, '{');
    w->depth++;
    *jw_slot(w) = false;
}

void jw_obj_end(jw *w)
{
    if (w->depth > 0) w->depth--;
    buf_putc(w->out, '}');
}

void jw_arr_begin(jw *w)
{
    jw_pre(w);
    buf_putc(w->out, '[');
    w->depth++;
    *jw_slot(w) = false;
}

void jw_arr_end(jw *w)
{
    if (w->depth > 0) w->depth--;
    buf_putc(w->out, ']');
}

void jw_key(jw *w, const char *key)
{
    jw_pre(w);
    json_write_string(w->out, key, strlen(key));
    buf_putc(w->out, ':');
    *jw_slot(w) = false; /* the value that follows writes no comma */
}

void jw_strn(jw *w, const char *s, size_t n)
{
    jw_pre(w);
    json_write_string(w->out, s ? s : "", s ? n : 0);
}

void jw_str(jw *w, const char *s)
{
    if (!s) {
        jw_null(w);
        return;
    }
    jw_strn(w, s, strlen(s));
}

void jw_int(jw *w, int64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof tmp, *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    jw_pre(w);
    buf_put(w->out, p, (size_t)(e - p));
}

/* Shortest of %.15g / %.16g / %.17g that reads back as exactly v. */
static int fmt_double(char *out, size_t n, double v)
{
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v) break;
    }
    return len;
}

void jw_double(jw *w, double v)
{
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    char tmp[40];
    int n = fmt_double(tmp, sizeof tmp, v);
    jw_pre(w);
    buf_put(w->out, tmp, (size_t)n);
}

void jw_bool(jw *w, bool v)
{
    jw_pre(w);
    if (v) buf_put(w->out, "true", 4);
    else buf_put(w->out, "false", 5);
}

void jw_null(jw *w)
{
    jw_pre(w);
    buf_put(w->out, "null", 4);
}

void jw_raw(jw *w, const char *json, size_t n)
{
    jw_pre(w);
    buf_put(w->out, json, n);
}

void jw_val(jw *w, const json_val *v)
{
    jw_pre(w);
    json_write(w->out, v, false);
}
