/* json_parse.c: strict RFC 8259 parser into an arena DOM (see json.h).
 *
 * How it works, in one pass and without recursion:
 *  - The input is copied once into the arena (plus zeroed padding), so strings are
 *    unescaped and NUL-terminated in place and numbers point at their source text.
 *  - Items of the containers still open wait on a scratch stack (json_val for arrays,
 *    json_kv for objects); when a container closes, its items are copied into one
 *    contiguous arena block. No per-value malloc.
 *  - Plain string bytes are scanned 16 at a time (SSE2): a block with no '"', '\\',
 *    control byte or non-ASCII byte is skipped whole. Non-ASCII bytes are validated as
 *    strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
 * Errors name the problem, the byte offset and line:col (1-based, col counted in bytes).
 */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define JSON_PAD 64

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

typedef struct frame {
    uint32_t is_obj;
    uint32_t start; /* index into the scratch stack of its kind */
} frame;

typedef struct parser {
    const char *base; /* start of the arena copy */
    const char *end;  /* base + len; padding of zero bytes follows */
    arena *a;
    fl_err *err;
    /* scratch stacks */
    json_val *vs;
    size_t vn, vcap;
    json_kv *ks;
    size_t kn, kcap;
    bool vs_heap, ks_heap;
} parser;

static void where_of(const char *base, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        if (base[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void describe_byte(char *out, size_t n, const char *p, const char *end)
{
    unsigned char c = (unsigned char)*p;
    if (p >= end) snprintf(out, n, "end of input");
    else if (c >= 0x21 && c < 0x7f) snprintf(out, n, "'%c'", c);
    else snprintf(out, n, "byte 0x%02X", c);
}

__attribute__((format(printf, 4, 5), cold, noinline)) static void
perr(parser *ps, const char *at, int status, const char *fmt, ...)
{
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t off = (size_t)(at - ps->base), line, col;
    where_of(ps->base, off, &line, &col);
    fl_err_set(ps->err, status, "", "%s at offset %zu (line %zu:%zu)", what, off, line, col);
}

__attribute__((cold, noinline)) static void perr_unexpected(parser *ps, const char *at,
                                                            const char *expect)
{
    char d[32];
    describe_byte(d, sizeof d, at, ps->end);
    if (at >= ps->end) perr(ps, at, 400, "invalid JSON: unexpected end of input, expected %s", expect);
    else perr(ps, at, 400, "invalid JSON: unexpected %s, expected %s", d, expect);
}

/* ---- scratch stacks ---- */

__attribute__((noinline)) static void grow_vs(parser *ps)
{
    size_t cap = ps->vcap * 2;
    json_val *n = malloc(cap * sizeof *n);
    if (!n) {
        fprintf(stderr, "fhirlake: out of memory (JSON scratch)\n");
        abort();
    }
    memcpy(n, ps->vs, ps->vn * sizeof *n);
    if (ps->vs_heap) free(ps->vs);
    ps->vs = n;
    ps->vcap = cap;
    ps->vs_heap = true;
}

__attribute__((noinline)) static void grow_ks(parser *ps)
{
    size_t cap = ps->kcap * 2;
    json_kv *n = malloc(cap * sizeof *n);
    if (!n) {
        fprintf(stderr, "fhirlake: out of memory (JSON scratch)\n");
        abort();
    }
    memcpy(n, ps->ks, ps->kn * sizeof *n);
    if (ps->ks_heap) free(ps->ks);
    ps->ks = n;
    ps->kcap = cap;
    ps->ks_heap = true;
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence starting at p (lead byte >= 0x80), or 0 if invalid.
 * May read up to 3 bytes past p; callers guarantee that memory exists (padding). */
static inline int utf8_seq(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0xC2) return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0) return (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        unsigned c1 = p[1];
        if ((c1 & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && c1 < 0xA0) return 0;  /* overlong */
        if (c == 0xED && c1 > 0x9F) return 0;  /* UTF-16 surrogate */
        return 3;
    }
    if (c < 0xF5) {
        unsigned c1 = p[1];
        if ((c1 & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && c1 < 0x90) return 0;  /* overlong */
        if (c == 0xF4 && c1 > 0x8F) return 0;  /* above U+10FFFF */
        return 4;
    }
    return 0;
}

bool json_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        /* ASCII run, 8 bytes at a time */
        while (e - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & 0x8080808080808080ULL) break;
            p += 8;
        }
        if (p >= e) break;
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t left = (size_t)(e - p);
        unsigned char tmp[4] = {0, 0, 0, 0};
        const unsigned char *q = p;
        if (left < 4) {
            memcpy(tmp, p, left);
            q = tmp;
        }
        int k = utf8_seq(q);
        if (!k || (size_t)k > left) return false;
        p += k;
    }
    return true;
}

/* ---- strings ---- */

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static inline int hex4(const unsigned char *p)
{
    int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), d = hexval(p[3]);
    if ((a | b | c | d) < 0) return -1;
    return (a << 12) | (b << 8) | (c << 4) | d;
}

static inline char *put_utf8(char *w, uint32_t cp)
{
    if (cp < 0x80) {
        *w++ = (char)cp;
    } else if (cp < 0x800) {
        *w++ = (char)(0xC0 | (cp >> 6));
        *w++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *w++ = (char)(0xE0 | (cp >> 12));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *w++ = (char)(0xF0 | (cp >> 18));
        *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    }
    return w;
}

/* Offset of the first byte in p[0..16) that is '"', '\\', < 0x20 or >= 0x80; 16 if none. */
static inline unsigned special16(const char *p)
{
#if defined(__SSE2__)
    __m128i x = _mm_loadu_si128((const __m128i *)p);
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                          _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                             _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
    unsigned mask = (unsigned)_mm_movemask_epi8(m);
    return mask ? (unsigned)__builtin_ctz(mask) : 16;
#else
    for (unsigned i = 0; i < 16; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) return i;
    }
    return 16;
#endif
}

/* Slow path once an escape was seen: unescape in place, w trailing r. */
static char *string_escaped(parser *ps, char *s, char *w, char *r, uint32_t *out_len)
{
    for (;;) {
        unsigned k = special16(r);
        if (k) {
            memmove(w, r, k);
            w += k;
            r += k;
            if (k == 16) continue;
        }
        unsigned char c = (unsigned char)*r;
        if (c == '"') {
            *w = 0;
            size_t len = (size_t)(w - s);
            if (UNLIKELY(len > UINT32_MAX)) {
                perr(ps, s, 413, "JSON string longer than 4 GiB");
                return NULL;
            }
            *out_len = (uint32_t)len;
            return r + 1;
        }
        if (c == '\\') {
            unsigned char e = (unsigned char)r[1];
            switch (e) {
            case '"': *w++ = '"'; r += 2; break;
            case '\\': *w++ = '\\'; r += 2; break;
            case '/': *w++ = '/'; r += 2; break;
            case 'b': *w++ = '\b'; r += 2; break;
            case 'f': *w++ = '\f'; r += 2; break;
            case 'n': *w++ = '\n'; r += 2; break;
            case 'r': *w++ = '\r'; r += 2; break;
            case 't': *w++ = '\t'; r += 2; break;
            case 'u': {
                int cp = hex4((const unsigned char *)r + 2);
                if (cp < 0) {
                    perr(ps, r, 400, "invalid JSON: bad \\u escape (need 4 hex digits)");
                    return NULL;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    int lo = -1;
                    if (r[6] == '\\' && r[7] == 'u') lo = hex4((const unsigned char *)r + 8);
                    if (lo < 0xDC00 || lo > 0xDFFF) {
                        perr(ps, r, 400,
                             "invalid JSON: lone UTF-16 surrogate \\u%04X (high surrogate "
                             "not followed by a low one)", cp);
                        return NULL;
                    }
                    uint32_t full = 0x10000 + (((uint32_t)cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                    w = put_utf8(w, full);
                    r += 12;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    perr(ps, r, 400, "invalid JSON: lone UTF-16 surrogate \\u%04X (low surrogate "
                         "without a high one)", cp);
                    return NULL;
                } else {
                    w = put_utf8(w, (uint32_t)cp);
                    r += 6;
                }
                break;
            }
            default:
                if (r + 1 >= ps->end) perr(ps, r, 400, "invalid JSON: unterminated string");
                else {
                    char d[32];
                    describe_byte(d, sizeof d, r + 1, ps->end);
                    perr(ps, r, 400, "invalid JSON: invalid escape \\%s in string", d);
                }
                return NULL;
            }
            continue;
        }
        if (c >= 0x80) {
            int n = utf8_seq((const unsigned char *)r);
            if (UNLIKELY(!n || r + n > ps->end)) {
                perr(ps, r, 400, "invalid JSON: invalid UTF-8 in string");
                return NULL;
            }
            memmove(w, r, (size_t)n);
            w += n;
            r += n;
            continue;
        }
        if (r >= ps->end) perr(ps, s - 1, 400, "invalid JSON: unterminated string");
        else perr(ps, r, 400, "invalid JSON: unescaped control character 0x%02X in string", c);
        return NULL;
    }
}

/* p points just past the opening quote. Returns the position after the closing quote,
 * or NULL on error. The string is unescaped and NUL-terminated in place at p. */
static inline char *parse_string(parser *ps, char *p, uint32_t *out_len)
{
    char *s = p;
    for (;;) {
        unsigned k = special16(p);
        p += k;
        if (k == 16) continue;
        unsigned char c = (unsigned char)*p;
        if (LIKELY(c == '"')) {
            *p = 0;
            size_t len = (size_t)(p - s);
            if (UNLIKELY(len > UINT32_MAX)) {
                perr(ps, s, 413, "JSON string longer than 4 GiB");
                return NULL;
            }
            *out_len = (uint32_t)len;
            return p + 1;
        }
        if (c >= 0x80) {
            int n = utf8_seq((const unsigned char *)p);
            if (UNLIKELY(!n || p + n > ps->end)) {
                perr(ps, p, 400, "invalid JSON: invalid UTF-8 in string");
                return NULL;
            }
            p += n;
            continue;
        }
        if (c == '\\') return string_escaped(ps, s, p, p, out_len);
        if (p >= ps->end) perr(ps, s - 1, 400, "invalid JSON: unterminated string");
        else perr(ps, p, 400, "invalid JSON: unescaped control character 0x%02X in string", c);
        return NULL;
    }
}

/* ---- numbers ---- */

static inline bool is_digit(unsigned char c) { return (unsigned)(c - '0') < 10; }

/* p at '-' or a digit. Returns the position after the number, or NULL on error. */
static inline char *parse_number(parser *ps, char *p)
{
    char *s = p;
    if (*p == '-') p++;
    if (*p == '0') {
        p++;
        if (UNLIKELY(is_digit((unsigned char)*p))) {
            perr(ps, s, 400, "invalid JSON: leading zeros are not allowed in numbers");
            return NULL;
        }
    } else if (is_digit((unsigned char)*p)) {
        p++;
        while (is_digit((unsigned char)*p)) p++;
    } else {
        perr(ps, p, 400, "invalid JSON: expected a digit in number");
        return NULL;
    }
    if (*p == '.') {
        p++;
        if (UNLIKELY(!is_digit((unsigned char)*p))) {
            perr(ps, p, 400, "invalid JSON: expected a digit after the decimal point");
            return NULL;
        }
        while (is_digit((unsigned char)*p)) p++;
    }
    if ((*p | 0x20) == 'e') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (UNLIKELY(!is_digit((unsigned char)*p))) {
            perr(ps, p, 400, "invalid JSON: expected a digit in the exponent");
            return NULL;
        }
        while (is_digit((unsigned char)*p)) p++;
    }
    if (UNLIKELY((size_t)(p - s) > UINT32_MAX)) {
        perr(ps, s, 413, "JSON number longer than 4 GiB");
        return NULL;
    }
    return p;
}

static inline char *skip_ws(char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    return p;
}

/* ---- the parser ---- */

#define FRAMES_LOCAL 256
#define VS_LOCAL 256
#define KS_LOCAL 256

json_val *json_parse(arena *a, const char *text, size_t len, const json_limits *lim,
                     fl_err *err)
{
    size_t max_depth = lim && lim->max_depth ? lim->max_depth : 256;
    size_t max_size = lim && lim->max_size ? lim->max_size : (size_t)64 << 20;
    if (len > max_size) {
        fl_err_set(err, 413, "", "JSON input of %zu bytes exceeds the limit of %zu bytes", len,
                   max_size);
        return NULL;
    }
    if (!text && len) {
        fl_err_set(err, 400, "", "invalid JSON: no input");
        return NULL;
    }

    char *copy = arena_alloc(a, len + JSON_PAD);
    if (len) memcpy(copy, text, len);
    memset(copy + len, 0, JSON_PAD);

    parser ps;
    json_val vs_local[VS_LOCAL];
    json_kv ks_local[KS_LOCAL];
    frame fr_local[FRAMES_LOCAL];
    ps.base = copy;
    ps.end = copy + len;
    ps.a = a;
    ps.err = err;
    ps.vs = vs_local;
    ps.vn = 0;
    ps.vcap = VS_LOCAL;
    ps.ks = ks_local;
    ps.kn = 0;
    ps.kcap = KS_LOCAL;
    ps.vs_heap = ps.ks_heap = false;
    frame *fr = fr_local;
    size_t frcap = FRAMES_LOCAL, depth = 0;
    json_val *result = NULL;

    char *p = copy;
    json_val v;
    frame *top = NULL;

    if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF) {
        perr(&ps, p, 400, "invalid JSON: byte order mark (U+FEFF) before the value");
        goto fail;
    }

value:
    p = skip_ws(p);
    switch (*p) {
    case '{':
    case '[': {
        bool obj = *p == '{';
        if (UNLIKELY(depth >= max_depth)) {
            perr(&ps, p, 400, "JSON nesting deeper than %zu", max_depth);
            goto fail;
        }
        if (UNLIKELY(depth == frcap)) {
            frame *n = malloc(frcap * 2 * sizeof *n);
            if (!n) {
                fprintf(stderr, "fhirlake: out of memory (JSON frames)\n");
                abort();
            }
            memcpy(n, fr, depth * sizeof *n);
            if (fr != fr_local) free(fr);
            fr = n;
            frcap *= 2;
        }
        top = &fr[depth++];
        top->is_obj = obj;
        p = skip_ws(p + 1);
        if (obj) {
            top->start = (uint32_t)ps.kn;
            if (*p == '}') {
                p++;
                depth--;
                top = depth ? &fr[depth - 1] : NULL;
                v.type = JSON_OBJECT;
                v.len = 0;
                v.u.o = NULL;
                goto done;
            }
            goto key;
        }
        top->start = (uint32_t)ps.vn;
        if (*p == ']') {
            p++;
            depth--;
            top = depth ? &fr[depth - 1] : NULL;
            v.type = JSON_ARRAY;
            v.len = 0;
            v.u.a = NULL;
            goto done;
        }
        goto value;
    }
    case '"': {
        uint32_t n;
        char *s = p + 1;
        p = parse_string(&ps, s, &n);
        if (UNLIKELY(!p)) goto fail;
        v.type = JSON_STRING;
        v.len = n;
        v.u.s = s;
        goto done;
    }
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': {
        char *s = p;
        p = parse_number(&ps, p);
        if (UNLIKELY(!p)) goto fail;
        v.type = JSON_NUMBER;
        v.len = (uint32_t)(p - s);
        v.u.s = s;
        goto done;
    }
    case 't':
        if (memcmp(p, "true", 4) != 0) goto bad_literal;
        p += 4;
        v.type = JSON_TRUE;
        v.len = 0;
        v.u.s = NULL;
        goto done;
    case 'f':
        if (memcmp(p, "false", 5) != 0) goto bad_literal;
        p += 5;
        v.type = JSON_FALSE;
        v.len = 0;
        v.u.s = NULL;
        goto done;
    case 'n':
        if (memcmp(p, "null", 4) != 0) goto bad_literal;
        p += 4;
        v.type = JSON_NULL;
        v.len = 0;
        v.u.s = NULL;
        goto done;
    default:
        if (top && top->is_obj == 0 && *p == ']' && ps.vn > top->start)
            perr(&ps, p, 400, "invalid JSON: trailing comma before ']'");
        else
            perr_unexpected(&ps, p, "a JSON value");
        goto fail;
    }

bad_literal:
    perr(&ps, p, 400, "invalid JSON: invalid literal (expected true, false or null)");
    goto fail;

key:
    /* p at the first non-space byte where a member key must start */
    if (UNLIKELY(*p != '"')) {
        if (*p == '}' && ps.kn > top->start)
            perr(&ps, p, 400, "invalid JSON: trailing comma before '}'");
        else
            perr_unexpected(&ps, p, "a string key");
        goto fail;
    }
    {
        if (UNLIKELY(ps.kn == ps.kcap)) grow_ks(&ps);
        json_kv *kv = &ps.ks[ps.kn++];
        uint32_t n;
        char *s = p + 1;
        p = parse_string(&ps, s, &n);
        if (UNLIKELY(!p)) goto fail;
        kv->key = s;
        kv->key_len = n;
        if (LIKELY(*p == ':')) {
            p++;
        } else {
            p = skip_ws(p);
            if (UNLIKELY(*p != ':')) {
                perr_unexpected(&ps, p, "':' after an object key");
                goto fail;
            }
            p++;
        }
        goto value;
    }

done:
    /* v is a complete value; hand it to the open container (or finish). */
    if (UNLIKELY(!top)) goto finish;
    if (top->is_obj) {
        ps.ks[ps.kn - 1].val = v;
        if (*p != ',' && *p != '}') p = skip_ws(p);
        if (LIKELY(*p == ',')) {
            p = skip_ws(p + 1);
            goto key;
        }
        if (LIKELY(*p == '}')) {
            p++;
            size_t n = ps.kn - top->start;
            json_kv *items = arena_alloc(a, n * sizeof(json_kv));
            memcpy(items, ps.ks + top->start, n * sizeof(json_kv));
            ps.kn = top->start;
            v.type = JSON_OBJECT;
            v.len = (uint32_t)n;
            v.u.o = items;
            depth--;
            top = depth ? &fr[depth - 1] : NULL;
            goto done;
        }
        perr_unexpected(&ps, p, "',' or '}' after an object member");
        goto fail;
    } else {
        if (UNLIKELY(ps.vn == ps.vcap)) grow_vs(&ps);
        ps.vs[ps.vn++] = v;
        if (*p != ',' && *p != ']') p = skip_ws(p);
        if (LIKELY(*p == ',')) {
            p++;
            goto value;
        }
        if (LIKELY(*p == ']')) {
            p++;
            size_t n = ps.vn - top->start;
            json_val *items = arena_alloc(a, n * sizeof(json_val));
            memcpy(items, ps.vs + top->start, n * sizeof(json_val));
            ps.vn = top->start;
            v.type = JSON_ARRAY;
            v.len = (uint32_t)n;
            v.u.a = items;
            depth--;
            top = depth ? &fr[depth - 1] : NULL;
            goto done;
        }
        perr_unexpected(&ps, p, "',' or ']' after an array item");
        goto fail;
    }

finish:
    p = skip_ws(p);
    if (UNLIKELY(p != ps.end)) {
        if (p > ps.end) p = (char *)ps.end;
        char d[32];
        describe_byte(d, sizeof d, p, ps.end);
        perr(&ps, p, 400, "invalid JSON: unexpected %s after the JSON value", d);
        goto fail;
    }
    result = arena_alloc(a, sizeof *result);
    *result = v;
    if (err) fl_err_clear(err);

fail:
    if (ps.vs_heap) free(ps.vs);
    if (ps.ks_heap) free(ps.ks);
    if (fr != fr_local) free(fr);
    return result;
}
