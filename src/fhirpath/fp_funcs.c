/* fp_funcs.c: the FHIRPath function library: the name table used by the parser and the
 * implementations used by the evaluator (existence, filtering, subsetting, combining,
 * boolean, string, conversion, boundary, type, extension, SQL-on-FHIR key functions and
 * the server-context getAidbox*() functions). */
#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_types.h"
#include "fp_internal.h"

enum {
    F_EMPTY, F_EXISTS, F_ALL, F_ALLTRUE, F_ANYTRUE, F_ALLFALSE, F_ANYFALSE, F_COUNT,
    F_DISTINCT, F_ISDISTINCT, F_WHERE, F_SELECT, F_REPEAT, F_OFTYPE, F_FIRST, F_LAST, F_TAIL,
    F_SKIP, F_TAKE, F_SINGLE, F_UNION, F_COMBINE, F_INTERSECT, F_EXCLUDE, F_SUBSETOF,
    F_SUPERSETOF, F_NOT, F_IIF, F_EXTENSION, F_JOIN, F_LOWB, F_HIGHB, F_STARTSWITH,
    F_ENDSWITH, F_CONTAINS, F_INDEXOF, F_SUBSTRING, F_LOWER, F_UPPER, F_REPLACE, F_MATCHES,
    F_REPLACEMATCHES, F_LENGTH, F_SPLIT, F_TRIM, F_TOSTRING, F_TOINTEGER, F_TODECIMAL,
    F_TODATE, F_TODATETIME, F_TOBOOLEAN, F_TOTIME, F_IS, F_AS, F_GETRESOURCEKEY,
    F_GETREFERENCEKEY, F_AIDBOXTS, F_AIDBOXCTS, F_AIDBOXTXID, F_CHILDREN, F_DESCENDANTS,
    F_HASVALUE, F_ABS, F_CEILING, F_FLOOR, F_ROUND, F_TRUNCATE, F_TRACE, F_NOW, F_TODAY,
    F_ANY, F_CVT_BOOL, F_CVT_INT, F_CVT_DEC, F_CVT_STR, F_CVT_DATE, F_CVT_DATETIME,
    F_CVT_TIME, F_AGGREGATE, F_LASTINDEXOF, F_SQRT, F_EXP, F_LN, F_LOG, F_POWER, F_TOCHARS,
    F_ENCODE, F_DECODE, F_COUNT_
};

static const fp_fninfo fns[] = {
    [F_EMPTY] = {"empty", 0, 0, 0, 0},        [F_EXISTS] = {"exists", 0, 1, 1, 0},
    [F_ALL] = {"all", 1, 1, 1, 0},            [F_ALLTRUE] = {"allTrue", 0, 0, 0, 0},
    [F_ANYTRUE] = {"anyTrue", 0, 0, 0, 0},    [F_ALLFALSE] = {"allFalse", 0, 0, 0, 0},
    [F_ANYFALSE] = {"anyFalse", 0, 0, 0, 0},  [F_COUNT] = {"count", 0, 0, 0, 0},
    [F_DISTINCT] = {"distinct", 0, 0, 0, 0},  [F_ISDISTINCT] = {"isDistinct", 0, 0, 0, 0},
    [F_WHERE] = {"where", 1, 1, 1, 0},        [F_SELECT] = {"select", 1, 1, 1, 0},
    [F_REPEAT] = {"repeat", 1, 1, 1, 0},      [F_OFTYPE] = {"ofType", 1, 1, 0, 1},
    [F_FIRST] = {"first", 0, 0, 0, 0},        [F_LAST] = {"last", 0, 0, 0, 0},
    [F_TAIL] = {"tail", 0, 0, 0, 0},          [F_SKIP] = {"skip", 1, 1, 0, 0},
    [F_TAKE] = {"take", 1, 1, 0, 0},          [F_SINGLE] = {"single", 0, 0, 0, 0},
    [F_UNION] = {"union", 1, 1, 0, 0},        [F_COMBINE] = {"combine", 1, 1, 0, 0},
    [F_INTERSECT] = {"intersect", 1, 1, 0, 0}, [F_EXCLUDE] = {"exclude", 1, 1, 0, 0},
    [F_SUBSETOF] = {"subsetOf", 1, 1, 0, 0},  [F_SUPERSETOF] = {"supersetOf", 1, 1, 0, 0},
    [F_NOT] = {"not", 0, 0, 0, 0},            [F_IIF] = {"iif", 2, 3, 7, 0},
    [F_EXTENSION] = {"extension", 1, 1, 0, 0}, [F_JOIN] = {"join", 0, 1, 0, 0},
    [F_LOWB] = {"lowBoundary", 0, 1, 0, 0},   [F_HIGHB] = {"highBoundary", 0, 1, 0, 0},
    [F_STARTSWITH] = {"startsWith", 1, 1, 0, 0}, [F_ENDSWITH] = {"endsWith", 1, 1, 0, 0},
    [F_CONTAINS] = {"contains", 1, 1, 0, 0},  [F_INDEXOF] = {"indexOf", 1, 1, 0, 0},
    [F_SUBSTRING] = {"substring", 1, 2, 0, 0}, [F_LOWER] = {"lower", 0, 0, 0, 0},
    [F_UPPER] = {"upper", 0, 0, 0, 0},        [F_REPLACE] = {"replace", 2, 2, 0, 0},
    [F_MATCHES] = {"matches", 1, 1, 0, 0},    [F_REPLACEMATCHES] = {"replaceMatches", 2, 2, 0, 0},
    [F_LENGTH] = {"length", 0, 0, 0, 0},      [F_SPLIT] = {"split", 1, 1, 0, 0},
    [F_TRIM] = {"trim", 0, 0, 0, 0},          [F_TOSTRING] = {"toString", 0, 0, 0, 0},
    [F_TOINTEGER] = {"toInteger", 0, 0, 0, 0}, [F_TODECIMAL] = {"toDecimal", 0, 0, 0, 0},
    [F_TODATE] = {"toDate", 0, 0, 0, 0},      [F_TODATETIME] = {"toDateTime", 0, 0, 0, 0},
    [F_TOBOOLEAN] = {"toBoolean", 0, 0, 0, 0}, [F_TOTIME] = {"toTime", 0, 0, 0, 0},
    [F_IS] = {"is", 1, 1, 0, 1},              [F_AS] = {"as", 1, 1, 0, 1},
    [F_GETRESOURCEKEY] = {"getResourceKey", 0, 0, 0, 0},
    [F_GETREFERENCEKEY] = {"getReferenceKey", 0, 1, 0, 1},
    [F_AIDBOXTS] = {"getAidboxTs", 0, 0, 0, 0}, [F_AIDBOXCTS] = {"getAidboxCts", 0, 0, 0, 0},
    [F_AIDBOXTXID] = {"getAidboxTxid", 0, 0, 0, 0},
    [F_CHILDREN] = {"children", 0, 0, 0, 0},  [F_DESCENDANTS] = {"descendants", 0, 0, 0, 0},
    [F_HASVALUE] = {"hasValue", 0, 0, 0, 0},  [F_ABS] = {"abs", 0, 0, 0, 0},
    [F_CEILING] = {"ceiling", 0, 0, 0, 0},    [F_FLOOR] = {"floor", 0, 0, 0, 0},
    [F_ROUND] = {"round", 0, 1, 0, 0},        [F_TRUNCATE] = {"truncate", 0, 0, 0, 0},
    [F_TRACE] = {"trace", 1, 2, 0, 0},        [F_NOW] = {"now", 0, 0, 0, 0},
    [F_TODAY] = {"today", 0, 0, 0, 0},        [F_ANY] = {"anyOf", 1, 1, 1, 0},
    [F_CVT_BOOL] = {"convertsToBoolean", 0, 0, 0, 0},
    [F_CVT_INT] = {"convertsToInteger", 0, 0, 0, 0},
    [F_CVT_DEC] = {"convertsToDecimal", 0, 0, 0, 0},
    [F_CVT_STR] = {"convertsToString", 0, 0, 0, 0},
    [F_CVT_DATE] = {"convertsToDate", 0, 0, 0, 0},
    [F_CVT_DATETIME] = {"convertsToDateTime", 0, 0, 0, 0},
    [F_CVT_TIME] = {"convertsToTime", 0, 0, 0, 0},
    [F_AGGREGATE] = {"aggregate", 1, 2, 1, 0},
    [F_LASTINDEXOF] = {"lastIndexOf", 1, 1, 0, 0}, [F_SQRT] = {"sqrt", 0, 0, 0, 0},
    [F_EXP] = {"exp", 0, 0, 0, 0},            [F_LN] = {"ln", 0, 0, 0, 0},
    [F_LOG] = {"log", 1, 1, 0, 0},            [F_POWER] = {"power", 1, 1, 0, 0},
    [F_TOCHARS] = {"toChars", 0, 0, 0, 0},    [F_ENCODE] = {"encode", 1, 1, 0, 0},
    [F_DECODE] = {"decode", 1, 1, 0, 0},
};

int fp_fn_lookup(const char *name, size_t len)
{
    for (int i = 0; i < F_COUNT_; i++)
        if (fns[i].name && strlen(fns[i].name) == len && !memcmp(fns[i].name, name, len)) return i;
    return -1;
}

const fp_fninfo *fp_fn_info(int id) { return &fns[id]; }

/* ---- helpers ---- */

static bool lambda(fp_state *st, const fp_node *arg, const fp_coll *in, size_t i, fp_coll *out)
{
    fp_coll one = {&in->v[i], 1};
    int64_t save = st->index;
    const fp_coll *tot = st->total;
    st->index = (int64_t)i;
    bool ok = fp_eval_node(st, arg, &one, out);
    st->index = save;
    st->total = tot;
    return ok;
}

static bool arg_str(fp_state *st, const fp_node *n, int k, const fp_coll *focus,
                    const char **s, size_t *len, bool *empty)
{
    fp_coll c;
    if (!fp_eval_node(st, n->args[k], focus, &c)) return false;
    *empty = c.n == 0;
    if (c.n == 0) return true;
    if (c.n != 1 || c.v[0].kind != FP_STR)
        return fp_err(st, n, "%s() expects a string argument", n->name);
    *s = c.v[0].s;
    *len = c.v[0].len;
    return true;
}

static bool arg_int(fp_state *st, const fp_node *n, int k, const fp_coll *focus, int64_t *v,
                    bool *empty)
{
    fp_coll c;
    if (!fp_eval_node(st, n->args[k], focus, &c)) return false;
    *empty = c.n == 0;
    if (c.n == 0) return true;
    if (c.n != 1 || c.v[0].kind != FP_INT)
        return fp_err(st, n, "%s() expects an integer argument", n->name);
    *v = c.v[0].i;
    return true;
}

static fp_coll one_bool(fp_state *st, bool b) { return fp_one(st->ctx->a, fp_mk_bool(b)); }

/* The input must be one string-like item; *ok false means "empty result". */
static bool in_string(fp_state *st, const fp_node *n, const fp_coll *in, const char **s,
                      size_t *len, bool *has)
{
    *has = false;
    if (in->n == 0) return true;
    if (in->n > 1) return fp_err(st, n, "%s() expects a single item, got %zu", n->name, in->n);
    const fp_item *it = &in->v[0];
    if (it->kind == FP_NODE || it->kind == FP_BOOL) {
        if (it->kind == FP_BOOL) { *s = it->i ? "true" : "false"; *len = strlen(*s); *has = true; }
        return true;
    }
    const char *t = fp_item_text(it, len);
    if (!t) {
        char *tmp = arena_printf(st->ctx->a, "%lld", (long long)it->i);
        t = tmp;
        *len = strlen(tmp);
    }
    *s = t;
    *has = true;
    return true;
}

static char *text_of(arena *a, const fp_item *it, size_t *len)
{
    const char *t = fp_item_text(it, len);
    if (t) return (char *)t;
    if (it->kind == FP_INT) {
        char *s = arena_printf(a, "%lld", (long long)it->i);
        *len = strlen(s);
        return s;
    }
    *len = 0;
    return NULL;
}

static bool coll_has(const fp_coll *c, const fp_item *it)
{
    for (size_t i = 0; i < c->n; i++)
        if (fp_items_equal(&c->v[i], it) == 1) return true;
    return false;
}

static fp_coll distinct_of(arena *a, const fp_coll *in)
{
    fp_vec v;
    fp_vec_init(&v, a);
    for (size_t i = 0; i < in->n; i++) {
        fp_coll cur = fp_vec_done(&v);
        if (!coll_has(&cur, &in->v[i])) fp_vec_push(&v, &in->v[i]);
    }
    return fp_vec_done(&v);
}

/* ---- boundaries ---- */

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return d[m - 1];
}

static bool boundary(fp_state *st, const fp_node *n, const fp_item *it, bool high,
                     int64_t prec, bool has_prec, fp_coll *out)
{
    arena *a = st->ctx->a;
    *out = (fp_coll){0};
    if (it->kind == FP_DEC || it->kind == FP_INT) {
        double x;
        fp_num_value(it, &x);
        const char *dot = it->kind == FP_DEC ? memchr(it->s, '.', it->len) : NULL;
        int p = dot ? (int)(it->s + it->len - dot - 1) : 0;
        double half = 0.5 * pow(10, -p);
        double r = high ? x + half : x - half;
        int outp = has_prec ? (int)prec : p + 1;
        if (outp < 0 || outp > 17) return true;
        char *s = arena_printf(a, "%.*f", outp, r);
        *out = fp_one(a, (fp_item){.kind = FP_DEC, .s = s, .len = (uint32_t)strlen(s)});
        return true;
    }
    if (it->kind == FP_DATE || it->kind == FP_DATETIME || it->kind == FP_TIME) {
        fp_dt d;
        if (!fp_dt_parse(it->s, it->len, it->kind == FP_TIME, &d)) return true;
        if (d.prec < 2) d.mo = high ? 12 : 1;
        if (d.prec < 3) d.d = high ? days_in_month(d.y, d.mo) : 1;
        if (d.prec < 4) d.h = high ? 23 : 0;
        if (d.prec < 5) d.mi = high ? 59 : 0;
        if (d.prec < 6) d.s = high ? 59 : 0;
        if (d.prec < 7) d.ms = high ? 999 : 0;
        char *s;
        fp_item r = {.kind = it->kind};
        if (it->kind == FP_DATE) {
            s = arena_printf(a, "%04d-%02d-%02d", d.y, d.mo, d.d);
        } else if (it->kind == FP_TIME) {
            s = arena_printf(a, "%02d:%02d:%02d.%03d", d.h, d.mi, d.s, d.ms);
        } else {
            int tz = d.has_tz ? d.tz_min : (high ? -12 * 60 : 14 * 60);
            int at = tz < 0 ? -tz : tz;
            s = arena_printf(a, "%04d-%02d-%02dT%02d:%02d:%02d.%03d%c%02d:%02d", d.y, d.mo, d.d,
                             d.h, d.mi, d.s, d.ms, tz < 0 ? '-' : '+', at / 60, at % 60);
        }
        r.s = s;
        r.len = (uint32_t)strlen(s);
        *out = fp_one(a, r);
        return true;
    }
    (void)n;
    return true;
}

/* ---- references ---- */

/* "Patient/123", "http://x/fhir/Patient/123/_history/2" -> type and id slices. */
static bool split_reference(const char *r, size_t n, const char **ty, size_t *tyn,
                            const char **id, size_t *idn)
{
    const char *h = memmem(r, n, "/_history/", 10); /* (not a memcmp at every byte) */
    if (h) n = (size_t)(h - r);
    const char *slash = NULL;
    for (size_t i = n; i > 0; i--)
        if (r[i - 1] == '/') { slash = r + i - 1; break; }
    if (!slash) return false;
    *id = slash + 1;
    *idn = n - (size_t)(slash + 1 - r);
    const char *ts = slash;
    while (ts > r && ts[-1] != '/') ts--;
    *ty = ts;
    *tyn = (size_t)(slash - ts);
    return *idn > 0 && *tyn > 0;
}

/* ---- conversions ---- */

static bool conv(fp_state *st, int fn, const fp_item *it, fp_coll *out)
{
    arena *a = st->ctx->a;
    *out = (fp_coll){0};
    size_t len;
    const char *t;
    switch (fn) {
    case F_TOSTRING:
        if (it->kind == FP_NODE) return true;
        if (it->kind == FP_QTY) {
            char *s = arena_printf(a, "%.*s '%.*s'", (int)it->len, it->s, (int)it->ulen, it->unit);
            *out = fp_one(a, fp_mk_str(s, strlen(s)));
            return true;
        }
        t = text_of(a, it, &len);
        if (t) *out = fp_one(a, fp_mk_str(t, len));
        return true;
    case F_TOINTEGER:
        if (it->kind == FP_INT) *out = fp_one(a, fp_mk_int(it->i));
        else if (it->kind == FP_BOOL) *out = fp_one(a, fp_mk_int(it->i));
        else if (it->kind == FP_STR && it->len && it->len < 20) {
            char tmp[24], *end;
            memcpy(tmp, it->s, it->len);
            tmp[it->len] = 0;
            long long v = strtoll(tmp, &end, 10);
            if (*end == 0 && (isdigit((unsigned char)tmp[0]) || tmp[0] == '-' || tmp[0] == '+'))
                *out = fp_one(a, fp_mk_int(v));
        }
        return true;
    case F_TODECIMAL:
        if (it->kind == FP_DEC) *out = fp_one(a, *it);
        else if (it->kind == FP_INT) {
            char *s = arena_printf(a, "%lld", (long long)it->i);
            *out = fp_one(a, (fp_item){.kind = FP_DEC, .s = s, .len = (uint32_t)strlen(s)});
        } else if (it->kind == FP_BOOL) {
            *out = fp_one(a, (fp_item){.kind = FP_DEC, .s = it->i ? "1.0" : "0.0", .len = 3});
        } else if (it->kind == FP_STR && it->len && it->len < 60) {
            char tmp[64], *end;
            memcpy(tmp, it->s, it->len);
            tmp[it->len] = 0;
            strtod(tmp, &end);
            if (*end == 0 && (isdigit((unsigned char)tmp[0]) || tmp[0] == '-' || tmp[0] == '+'))
                *out = fp_one(a, (fp_item){.kind = FP_DEC, .s = it->s, .len = it->len});
        }
        return true;
    case F_TOBOOLEAN:
        if (it->kind == FP_BOOL) *out = fp_one(a, *it);
        else if (it->kind == FP_INT && (it->i == 0 || it->i == 1)) *out = one_bool(st, it->i);
        else if (it->kind == FP_STR) {
            static const char *tv[] = {"true", "t", "yes", "y", "1", "1.0"};
            static const char *fv[] = {"false", "f", "no", "n", "0", "0.0"};
            for (int i = 0; i < 6; i++) {
                if (strlen(tv[i]) == it->len && !strncasecmp(it->s, tv[i], it->len)) *out = one_bool(st, true);
                if (strlen(fv[i]) == it->len && !strncasecmp(it->s, fv[i], it->len)) *out = one_bool(st, false);
            }
        }
        return true;
    case F_TODATE: case F_TODATETIME: case F_TOTIME: {
        if (it->kind != FP_STR && it->kind != FP_DATE && it->kind != FP_DATETIME && it->kind != FP_TIME)
            return true;
        fp_dt d;
        bool time = fn == F_TOTIME;
        if (time != (it->kind == FP_TIME) && it->kind != FP_STR) return true;
        if (!fp_dt_parse(it->s, it->len, time, &d)) return true;
        fp_item r = {.kind = fn == F_TODATE ? FP_DATE : time ? FP_TIME : FP_DATETIME};
        r.s = it->s;
        r.len = it->len;
        if (fn == F_TODATE && d.prec > 3) r.len = 10;
        *out = fp_one(a, r);
        return true;
    }
    }
    return true;
}

/* ---- encode()/decode(): hex, base64, urlbase64 ---- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char c, bool url)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url ? '-' : '+')) return 62;
    if (c == (url ? '_' : '/')) return 63;
    return -1;
}

static bool codec(fp_state *st, const fp_node *n, const char *s, size_t sl, const char *fmt,
                  size_t fl, fp_coll *out)
{
    bool hex = fl == 3 && !memcmp(fmt, "hex", 3);
    bool url = fl == 9 && !memcmp(fmt, "urlbase64", 9);
    if (!hex && !url && !(fl == 6 && !memcmp(fmt, "base64", 6)))
        return fp_err(st, n, "%s(): unknown format (hex, base64, urlbase64)", n->name);
    buf b = BUF_INIT;
    if (n->fn == F_ENCODE && hex) {
        for (size_t i = 0; i < sl; i++) buf_printf(&b, "%02x", (unsigned char)s[i]);
    } else if (n->fn == F_ENCODE) {
        for (size_t i = 0; i < sl; i += 3) {
            unsigned v = (unsigned char)s[i] << 16;
            if (i + 1 < sl) v |= (unsigned char)s[i + 1] << 8;
            if (i + 2 < sl) v |= (unsigned char)s[i + 2];
            for (int k = 0; k < 4; k++) {
                char c = B64[(v >> (18 - 6 * k)) & 63];
                if (url && c == '+') c = '-';
                if (url && c == '/') c = '_';
                buf_putc(&b, (size_t)k <= (sl - i) ? c : '=');
            }
        }
    } else if (hex) {
        if (sl % 2) goto bad;
        for (size_t i = 0; i < sl; i += 2) {
            char h[3] = {s[i], s[i + 1], 0};
            char *end;
            long v = strtol(h, &end, 16);
            if (*end) goto bad;
            buf_putc(&b, (char)v);
        }
    } else {
        unsigned acc = 0;
        int bits = 0;
        for (size_t i = 0; i < sl && s[i] != '='; i++) {
            int v = b64_val(s[i], url);
            if (v < 0) goto bad;
            acc = (acc << 6) | (unsigned)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                buf_putc(&b, (char)((acc >> bits) & 0xFF));
            }
        }
    }
    *out = fp_one(st->ctx->a, fp_mk_str(arena_strndup(st->ctx->a, b.p ? b.p : "", b.len), b.len));
    buf_free(&b);
    return true;
bad:
    buf_free(&b);
    *out = (fp_coll){0};
    return true;
}

/* ---- string functions (UTF-8 aware: lengths and offsets count code points) ---- */

static size_t cp_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* byte offset of code point k (n if past the end) */
static size_t cp_offset(const char *s, size_t n, size_t k)
{
    size_t i = 0;
    while (i < n && k) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        k--;
    }
    return i;
}

/* Case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic: the scripts that
 * appear in names; other code points are left alone. */
static unsigned map_case(unsigned c, bool up)
{
    if (c < 0x80) return (unsigned)(up ? toupper((int)c) : tolower((int)c));
    if (up) {
        if ((c >= 0xE0 && c <= 0xFE && c != 0xF7) || (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) ||
            (c >= 0x430 && c <= 0x44F))
            return c - 0x20;
        if (c >= 0x450 && c <= 0x45F) return c - 0x50;
        if (c >= 0x100 && c <= 0x17F && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
            bool odd_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
            if (odd_lower ? (c & 1) == 0 : (c & 1) == 1) return c - 1;
        }
    } else {
        if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3A9) ||
            (c >= 0x410 && c <= 0x42F))
            return c + 0x20;
        if (c >= 0x400 && c <= 0x40F) return c + 0x50;
        if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x138 && c != 0x149 && c != 0x17F) {
            bool odd_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
            if (odd_lower ? (c & 1) == 1 : (c & 1) == 0) return c + 1;
        }
    }
    return c;
}

static char *utf8_case(arena *a, const char *s, size_t n, bool up, size_t *olen)
{
    char *r = arena_alloc(a, n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char b = (unsigned char)s[i];
        if (b < 0x80) { r[o++] = (char)map_case(b, up); i++; continue; }
        if ((b & 0xE0) == 0xC0 && i + 1 < n) {   /* 2-byte sequences hold all mapped ranges */
            unsigned c = ((b & 0x1Fu) << 6) | ((unsigned char)s[i + 1] & 0x3Fu);
            unsigned m = map_case(c, up);
            if (m >= 0x80 && m < 0x800) {
                r[o++] = (char)(0xC0 | (m >> 6));
                r[o++] = (char)(0x80 | (m & 0x3F));
                i += 2;
                continue;
            }
        }
        r[o++] = s[i++];
    }
    r[o] = 0;
    *olen = o;
    return r;
}

static bool string_fn(fp_state *st, const fp_node *n, const fp_coll *in, const fp_coll *focus,
                      fp_coll *out)
{
    arena *a = st->ctx->a;
    const char *s = NULL, *x = NULL, *y = NULL;
    size_t sl = 0, xl = 0, yl = 0;
    bool has, ex = false, ey = false;
    *out = (fp_coll){0};
    if (!in_string(st, n, in, &s, &sl, &has)) return false;
    if (!has) return true;
    int fn = n->fn;
    if (n->nargs >= 1 && fn != F_SUBSTRING) {
        if (!arg_str(st, n, 0, focus, &x, &xl, &ex)) return false;
        if (ex) return true;
    }
    if (n->nargs == 2 && fn != F_SUBSTRING) {
        if (!arg_str(st, n, 1, focus, &y, &yl, &ey)) return false;
        if (ey) return true;
    }
    switch (fn) {
    case F_STARTSWITH: *out = one_bool(st, xl <= sl && !memcmp(s, x, xl)); return true;
    case F_ENDSWITH: *out = one_bool(st, xl <= sl && !memcmp(s + sl - xl, x, xl)); return true;
    case F_CONTAINS: *out = one_bool(st, xl == 0 || memmem(s, sl, x, xl) != NULL); return true;
    case F_INDEXOF: {
        const char *p = xl ? memmem(s, sl, x, xl) : s;
        *out = fp_one(a, fp_mk_int(p ? (int64_t)cp_count(s, (size_t)(p - s)) : -1));
        return true;
    }
    case F_LENGTH: *out = fp_one(a, fp_mk_int((int64_t)cp_count(s, sl))); return true;
    case F_LASTINDEXOF: {
        const char *last = NULL;
        for (const char *p = s; xl <= (size_t)(s + sl - p); p++) {
            if (!memcmp(p, x, xl)) last = p;
            if (p == s + sl) break;
        }
        *out = fp_one(a, fp_mk_int(last ? (int64_t)cp_count(s, (size_t)(last - s)) : -1));
        return true;
    }
    case F_TOCHARS: {
        fp_vec v;
        fp_vec_init(&v, a);
        for (size_t i = 0; i < sl;) {
            size_t k = cp_offset(s + i, sl - i, 1);
            fp_item it = fp_mk_str(s + i, k);
            fp_vec_push(&v, &it);
            i += k;
        }
        *out = fp_vec_done(&v);
        return true;
    }
    case F_ENCODE: case F_DECODE: return codec(st, n, s, sl, x, xl, out);
    case F_LOWER: case F_UPPER: {
        size_t rl;
        char *r = utf8_case(a, s, sl, fn == F_UPPER, &rl);
        *out = fp_one(a, fp_mk_str(r, rl));
        return true;
    }
    case F_TRIM: {
        while (sl && isspace((unsigned char)*s)) { s++; sl--; }
        while (sl && isspace((unsigned char)s[sl - 1])) sl--;
        *out = fp_one(a, fp_mk_str(s, sl));
        return true;
    }
    case F_SUBSTRING: {
        int64_t start, cnt = INT64_MAX;
        bool e1, e2 = false;
        if (!arg_int(st, n, 0, focus, &start, &e1)) return false;
        if (e1) return true;
        if (n->nargs == 2 && !arg_int(st, n, 1, focus, &cnt, &e2)) return false;
        size_t ncp = cp_count(s, sl);
        if (start < 0 || (size_t)start >= ncp) return true;
        size_t rem = ncp - (size_t)start;
        size_t take = (!e2 && cnt >= 0 && (uint64_t)cnt < rem) ? (size_t)cnt : rem;
        if (cnt < 0) take = 0;
        size_t b0 = cp_offset(s, sl, (size_t)start);
        size_t b1 = b0 + cp_offset(s + b0, sl - b0, take);
        *out = fp_one(a, fp_mk_str(s + b0, b1 - b0));
        return true;
    }
    case F_REPLACE: {
        buf b = BUF_INIT;
        buf_reserve(&b, sl);
        for (size_t i = 0; i < sl;) {
            if (xl == 0) {   /* empty pattern: insert between characters */
                buf_put(&b, y, yl);
                buf_putc(&b, s[i++]);
                if (i == sl) buf_put(&b, y, yl);
                continue;
            }
            if (i + xl <= sl && !memcmp(s + i, x, xl)) { buf_put(&b, y, yl); i += xl; }
            else buf_putc(&b, s[i++]);
        }
        *out = fp_one(a, fp_mk_str(arena_strndup(a, b.p ? b.p : "", b.len), b.len));
        buf_free(&b);
        return true;
    }
    case F_SPLIT: {
        fp_vec v;
        fp_vec_init(&v, a);
        size_t st0 = 0;
        for (size_t i = 0; xl && i + xl <= sl;) {
            if (!memcmp(s + i, x, xl)) {
                fp_item it = fp_mk_str(s + st0, i - st0);
                fp_vec_push(&v, &it);
                i += xl;
                st0 = i;
            } else i++;
        }
        fp_item it = fp_mk_str(s + st0, sl - st0);
        fp_vec_push(&v, &it);
        *out = fp_vec_done(&v);
        return true;
    }
    case F_MATCHES: case F_REPLACEMATCHES: {
        regex_t own;
        const regex_t *rp = n->re;     /* literal pattern: compiled at parse time */
        char *subj = arena_strndup(a, s, sl);
        if (!rp) {
            char *pat = arena_strndup(a, x, xl);
            if (regcomp(&own, pat, REG_EXTENDED | (fn == F_MATCHES ? REG_NOSUB : 0)))
                return fp_err(st, n, "invalid regular expression '%s'", pat);
            rp = &own;
        }
        if (fn == F_MATCHES) {
            *out = one_bool(st, regexec(rp, subj, 0, NULL, 0) == 0);
        } else {
            buf b = BUF_INIT;
            regmatch_t m;
            const char *p = subj;
            while (*p && regexec(rp, p, 1, &m, 0) == 0 && m.rm_eo > 0) {
                buf_put(&b, p, (size_t)m.rm_so);
                buf_put(&b, y, yl);
                p += m.rm_eo;
            }
            buf_puts(&b, p);
            *out = fp_one(a, fp_mk_str(arena_strndup(a, b.p, b.len), b.len));
            buf_free(&b);
        }
        if (rp == &own) regfree(&own);
        return true;
    }
    }
    return true;
}

/* ---- tree walking ---- */

/* Children of an item: every member of a JSON object node; of a primitive (or a value-less
 * "_x" holder), the id and extension of its "_x" twin. A "_x" member whose "x" is absent
 * is a primitive with only extensions: a child of its own, reached by navigating "x". */
static void children_of(const fp_item *it, fp_vec *v)
{
    if (it->kind != FP_NODE || !it->j) {
        if (!it->ext || it->ext->type != JSON_OBJECT) return;
        fp_item host = {.kind = FP_NODE, .j = it->ext, .tname = it->tname ? it->tname : "Element"};
        children_of(&host, v);
        return;
    }
    const json_val *o = it->j;
    if (o->type != JSON_OBJECT) return;
    for (uint32_t i = 0; i < o->len; i++) {
        const json_kv *kv = &o->u.o[i];
        if (kv->key[0] == '_') {
            if (kv->key_len > 1 && !json_getn(o, kv->key + 1, kv->key_len - 1))
                fp_navigate(it, kv->key + 1, kv->key_len - 1, NULL, v);
            continue;
        }
        if (!strcmp(kv->key, "resourceType")) continue;
        fp_navigate(it, kv->key, kv->key_len, NULL, v);
    }
}

/* ---- dispatcher ---- */

static bool agg_bools(fp_state *st, const fp_node *n, const fp_coll *in, fp_coll *out)
{
    bool any_t = false, any_f = false;
    for (size_t i = 0; i < in->n; i++) {
        if (in->v[i].kind != FP_BOOL) return fp_err(st, n, "%s() expects booleans", n->name);
        if (in->v[i].i) any_t = true;
        else any_f = true;
    }
    bool r = n->fn == F_ALLTRUE ? !any_f : n->fn == F_ANYTRUE ? any_t
           : n->fn == F_ALLFALSE ? !any_t : any_f;
    *out = one_bool(st, r);
    return true;
}

static bool set_fn(fp_state *st, const fp_node *n, const fp_coll *in, const fp_coll *focus,
                   fp_coll *out)
{
    arena *a = st->ctx->a;
    fp_coll other;
    if (!fp_eval_node(st, n->args[0], focus, &other)) return false;
    fp_vec v;
    fp_vec_init(&v, a);
    switch (n->fn) {
    case F_UNION: case F_COMBINE:
        for (size_t i = 0; i < in->n; i++) fp_vec_push(&v, &in->v[i]);
        for (size_t i = 0; i < other.n; i++) fp_vec_push(&v, &other.v[i]);
        *out = fp_vec_done(&v);
        if (n->fn == F_UNION) *out = distinct_of(a, out);
        return true;
    case F_INTERSECT: case F_EXCLUDE:
        for (size_t i = 0; i < in->n; i++)
            if (coll_has(&other, &in->v[i]) == (n->fn == F_INTERSECT)) fp_vec_push(&v, &in->v[i]);
        *out = fp_vec_done(&v);
        if (n->fn == F_INTERSECT) *out = distinct_of(a, out);
        return true;
    case F_SUBSETOF: case F_SUPERSETOF: {
        const fp_coll *sub = n->fn == F_SUBSETOF ? in : &other, *sup = n->fn == F_SUBSETOF ? &other : in;
        bool r = true;
        for (size_t i = 0; i < sub->n && r; i++) r = coll_has(sup, &sub->v[i]);
        *out = one_bool(st, r);
        return true;
    }
    }
    return true;
}

static bool filter_fn(fp_state *st, const fp_node *n, const fp_coll *in, fp_coll *out)
{
    arena *a = st->ctx->a;
    fp_vec v;
    fp_vec_init(&v, a);
    for (size_t i = 0; i < in->n; i++) {
        fp_coll r;
        if (!lambda(st, n->args[0], in, i, &r)) return false;
        if (n->fn == F_SELECT) {
            for (size_t k = 0; k < r.n; k++) fp_vec_push(&v, &r.v[k]);
            continue;
        }
        int b = fp_to_bool(&r);
        if (b == -2) return fp_err(st, n, "%s() criteria must be boolean", n->name);
        if (n->fn == F_WHERE && b == 1) fp_vec_push(&v, &in->v[i]);
        if (n->fn == F_ALL && b != 1) { *out = one_bool(st, false); return true; }
        if ((n->fn == F_EXISTS || n->fn == F_ANY) && b == 1) { *out = one_bool(st, true); return true; }
    }
    if (n->fn == F_ALL) *out = one_bool(st, true);
    else if (n->fn == F_EXISTS || n->fn == F_ANY) *out = one_bool(st, false);
    else *out = fp_vec_done(&v);
    return true;
}

static bool repeat_fn(fp_state *st, const fp_node *n, const fp_coll *in, fp_coll *out)
{
    fp_vec v;
    fp_vec_init(&v, st->ctx->a);
    fp_coll cur = *in;
    for (int guard = 0; cur.n && guard < 1000; guard++) {
        fp_vec next;
        fp_vec_init(&next, st->ctx->a);
        for (size_t i = 0; i < cur.n; i++) {
            fp_coll r;
            if (!lambda(st, n->args[0], &cur, i, &r)) return false;
            for (size_t k = 0; k < r.n; k++) {
                fp_coll seen = fp_vec_done(&v);
                if (r.v[k].kind == FP_NODE ? false : coll_has(&seen, &r.v[k])) continue;
                fp_vec_push(&v, &r.v[k]);
                fp_vec_push(&next, &r.v[k]);
            }
        }
        cur = fp_vec_done(&next);
    }
    *out = fp_vec_done(&v);
    return true;
}

static bool aidbox_fn(fp_state *st, const fp_node *n, fp_coll *out)
{
    fp_ctx *c = st->ctx;
    arena *a = c->a;
    *out = (fp_coll){0};
    if (n->fn == F_AIDBOXTXID) {
        if (c->txid) *out = fp_one(a, fp_mk_str(c->txid, strlen(c->txid)));
        return true;
    }
    bool has = n->fn == F_AIDBOXTS ? c->has_ts : c->has_cts;
    int64_t us = n->fn == F_AIDBOXTS ? c->ts_us : c->cts_us;
    if (has) {
        char *s = arena_alloc(a, 40);
        int len = fl_time_format(us, s);
        *out = fp_one(a, (fp_item){.kind = FP_DATETIME, .s = s, .len = (uint32_t)len,
                                   .tname = "instant", .has_us = 1, .i = us});
        return true;
    }
    if (n->fn == F_AIDBOXTS && c->resource) {   /* file mode: meta.lastUpdated */
        const json_val *m = json_get(c->resource, "meta");
        const json_val *lu = m ? json_get(m, "lastUpdated") : NULL;
        if (lu && lu->type == JSON_STRING)
            *out = fp_one(a, (fp_item){.kind = FP_DATETIME, .s = lu->u.s, .len = lu->len,
                                       .j = lu, .tname = "instant"});
    }
    return true;
}

/* sqrt/exp/ln/log/power: decimal results; empty where undefined (sqrt(-1), ln(0)). */
static bool real_fn(fp_state *st, const fp_node *n, const fp_item *it, double x,
                    const fp_coll *focus, fp_coll *out)
{
    arena *a = st->ctx->a;
    double r, y = 0;
    bool ints = false;
    if (n->fn == F_LOG || n->fn == F_POWER) {
        fp_coll c;
        if (!fp_eval_node(st, n->args[0], focus, &c)) return false;
        if (c.n != 1 || !fp_num_value(&c.v[0], &y) || c.v[0].kind == FP_QTY) return true;
        ints = it->kind == FP_INT && c.v[0].kind == FP_INT;   /* Integer.power(Integer) */
    }
    switch (n->fn) {
    case F_SQRT: r = sqrt(x); break;
    case F_EXP: r = exp(x); break;
    case F_LN: r = log(x); break;
    case F_LOG: r = log(x) / log(y); break;
    default: r = pow(x, y); break;
    }
    if (!isfinite(r)) return true;
    if (ints && n->fn == F_POWER && r == trunc(r) && fabs(r) < 9e18)
        *out = fp_one(a, fp_mk_int((int64_t)r));
    else *out = fp_one(a, fp_mk_dec_d(a, r));
    return true;
}

static bool math_fn(fp_state *st, const fp_node *n, const fp_item *it, const fp_coll *focus,
                    fp_coll *out)
{
    arena *a = st->ctx->a;
    *out = (fp_coll){0};
    if (n->fn >= F_SQRT && n->fn <= F_POWER) {
        double x;
        if (!fp_num_value(it, &x) || it->kind == FP_QTY) return fp_err(st, n, "%s() expects a number", n->name);
        return real_fn(st, n, it, x, focus, out);
    }
    if (it->kind == FP_INT) {
        if (n->fn == F_ABS) *out = fp_one(a, fp_mk_int(it->i < 0 ? -it->i : it->i));
        else if (n->fn == F_ROUND) *out = fp_one(a, fp_mk_dec_d(a, (double)it->i));
        else *out = fp_one(a, fp_mk_int(it->i));
        return true;
    }
    double x;
    if (!fp_num_value(it, &x) || it->kind == FP_QTY) return fp_err(st, n, "%s() expects a number", n->name);
    switch (n->fn) {
    case F_ABS: *out = fp_one(a, fp_mk_dec_d(a, fabs(x))); break;
    case F_CEILING: *out = fp_one(a, fp_mk_int((int64_t)ceil(x))); break;
    case F_FLOOR: *out = fp_one(a, fp_mk_int((int64_t)floor(x))); break;
    case F_TRUNCATE: *out = fp_one(a, fp_mk_int((int64_t)trunc(x))); break;
    case F_ROUND: {
        int64_t p = 0;
        bool e = true;
        if (n->nargs && !arg_int(st, n, 0, focus, &p, &e)) return false;
        if (p < 0 || p > 15) return fp_err(st, n, "round() precision out of range");
        double f = pow(10, (double)p);
        char *s = arena_printf(a, "%.*f", (int)p, round(x * f) / f);
        *out = fp_one(a, (fp_item){.kind = FP_DEC, .s = s, .len = (uint32_t)strlen(s)});
        break;
    }
    }
    return true;
}

bool fp_call(fp_state *st, const fp_node *n, const fp_coll *in, const fp_coll *focus,
             fp_coll *out)
{
    arena *a = st->ctx->a;
    *out = (fp_coll){0};
    switch (n->fn) {
    case F_EMPTY: *out = one_bool(st, in->n == 0); return true;
    case F_EXISTS:
        if (!n->nargs) { *out = one_bool(st, in->n > 0); return true; }
        return filter_fn(st, n, in, out);
    case F_WHERE: case F_SELECT: case F_ALL: case F_ANY: return filter_fn(st, n, in, out);
    case F_REPEAT: return repeat_fn(st, n, in, out);
    case F_ALLTRUE: case F_ANYTRUE: case F_ALLFALSE: case F_ANYFALSE: return agg_bools(st, n, in, out);
    case F_COUNT: *out = fp_one(a, fp_mk_int((int64_t)in->n)); return true;
    case F_DISTINCT: *out = distinct_of(a, in); return true;
    case F_ISDISTINCT: *out = one_bool(st, distinct_of(a, in).n == in->n); return true;
    case F_OFTYPE: case F_IS: case F_AS: {
        if (n->fn != F_OFTYPE && in->n > 1) return fp_err(st, n, "%s() expects a single item", n->name);
        fp_vec v;
        fp_vec_init(&v, a);
        size_t tl = strlen(n->tname);
        for (size_t i = 0; i < in->n; i++)
            if (fp_item_is_type(&in->v[i], n->tname, tl)) fp_vec_push(&v, &in->v[i]);
        if (n->fn == F_IS) *out = in->n ? one_bool(st, v.n == 1) : (fp_coll){0};
        else *out = fp_vec_done(&v);
        return true;
    }
    case F_FIRST: if (in->n) *out = (fp_coll){in->v, 1}; return true;
    case F_LAST: if (in->n) *out = (fp_coll){in->v + in->n - 1, 1}; return true;
    case F_TAIL: if (in->n > 1) *out = (fp_coll){in->v + 1, in->n - 1}; return true;
    case F_SINGLE:
        if (in->n > 1) return fp_err(st, n, "single() on a collection of %zu items", in->n);
        *out = *in;
        return true;
    case F_SKIP: case F_TAKE: {
        int64_t k;
        bool e;
        if (!arg_int(st, n, 0, focus, &k, &e)) return false;
        if (e) return true;
        if (k < 0) k = 0;
        size_t kk = (size_t)k < in->n ? (size_t)k : in->n;
        if (n->fn == F_SKIP) *out = (fp_coll){in->v + kk, in->n - kk};
        else *out = (fp_coll){in->v, kk};
        return true;
    }
    case F_UNION: case F_COMBINE: case F_INTERSECT: case F_EXCLUDE: case F_SUBSETOF:
    case F_SUPERSETOF:
        return set_fn(st, n, in, focus, out);
    case F_NOT: {
        int b = fp_to_bool(in);
        if (b == -2) return fp_err(st, n, "not() on a collection");
        if (b >= 0) *out = one_bool(st, !b);
        return true;
    }
    case F_IIF: {
        if (in->n > 1) return fp_err(st, n, "iif() on a collection");
        fp_coll c;
        if (!fp_eval_node(st, n->args[0], in->n ? in : focus, &c)) return false;
        int b = fp_to_bool(&c);
        if (b == -2) return fp_err(st, n, "iif() criterion must be boolean");
        if (b == 1) return fp_eval_node(st, n->args[1], in->n ? in : focus, out);
        if (n->nargs == 3) return fp_eval_node(st, n->args[2], in->n ? in : focus, out);
        return true;
    }
    case F_EXTENSION: {
        const char *url;
        size_t ul;
        bool e;
        if (!arg_str(st, n, 0, focus, &url, &ul, &e)) return false;
        if (e) return true;
        fp_vec v;
        fp_vec_init(&v, a);
        for (size_t i = 0; i < in->n; i++) {
            const json_val *host = in->v[i].kind == FP_NODE && in->v[i].j ? in->v[i].j : in->v[i].ext;
            const json_val *ex = host ? json_get(host, "extension") : NULL;
            if (!ex || ex->type != JSON_ARRAY) continue;
            for (uint32_t k = 0; k < ex->len; k++) {
                const json_val *u = json_get(&ex->u.a[k], "url");
                if (u && u->type == JSON_STRING && u->len == ul && !memcmp(u->u.s, url, ul)) {
                    fp_item it;
                    if (fp_item_from_json(&ex->u.a[k], NULL, "Extension", &it)) fp_vec_push(&v, &it);
                }
            }
        }
        *out = fp_vec_done(&v);
        return true;
    }
    case F_JOIN: {
        const char *sep = "";
        size_t sl = 0;
        bool e = false;
        if (n->nargs && !arg_str(st, n, 0, focus, &sep, &sl, &e)) return false;
        buf b = BUF_INIT;
        size_t nj = 0;
        for (size_t i = 0; i < in->n; i++) {
            size_t tl;
            if (in->v[i].kind == FP_NODE && !in->v[i].j) continue;   /* no value to join */
            const char *t = text_of(a, &in->v[i], &tl);
            if (!t) return fp_err(st, n, "join() on a non-primitive item");
            if (nj++) buf_put(&b, sep, sl);
            buf_put(&b, t, tl);
        }
        *out = fp_one(a, fp_mk_str(arena_strndup(a, b.p ? b.p : "", b.len), b.len));
        buf_free(&b);
        return true;
    }
    case F_LOWB: case F_HIGHB: {
        if (in->n == 0) return true;
        if (in->n > 1) return fp_err(st, n, "%s() expects a single item", n->name);
        int64_t p = 0;
        bool e = true;
        if (n->nargs && !arg_int(st, n, 0, focus, &p, &e)) return false;
        return boundary(st, n, &in->v[0], n->fn == F_HIGHB, p, !e, out);
    }
    case F_STARTSWITH: case F_ENDSWITH: case F_CONTAINS: case F_INDEXOF: case F_SUBSTRING:
    case F_LOWER: case F_UPPER: case F_REPLACE: case F_MATCHES: case F_REPLACEMATCHES:
    case F_LENGTH: case F_SPLIT: case F_TRIM: case F_LASTINDEXOF: case F_TOCHARS:
    case F_ENCODE: case F_DECODE:
        return string_fn(st, n, in, focus, out);
    case F_TOSTRING: case F_TOINTEGER: case F_TODECIMAL: case F_TODATE: case F_TODATETIME:
    case F_TOBOOLEAN: case F_TOTIME:
        if (in->n == 0) return true;
        if (in->n > 1) return fp_err(st, n, "%s() expects a single item", n->name);
        return conv(st, n->fn, &in->v[0], out);
    case F_GETRESOURCEKEY: {
        fp_vec v;
        fp_vec_init(&v, a);
        for (size_t i = 0; i < in->n; i++) {
            const json_val *id = in->v[i].j ? json_get(in->v[i].j, "id") : NULL;
            if (id && id->type == JSON_STRING) {
                fp_item it = fp_mk_str(id->u.s, id->len);
                fp_vec_push(&v, &it);
            }
        }
        *out = fp_vec_done(&v);
        return true;
    }
    case F_GETREFERENCEKEY: {
        fp_vec v;
        fp_vec_init(&v, a);
        for (size_t i = 0; i < in->n; i++) {
            const json_val *r = in->v[i].j ? json_get(in->v[i].j, "reference") : NULL;
            const char *ty, *id;
            size_t tyn, idn;
            if (!r || r->type != JSON_STRING || !split_reference(r->u.s, r->len, &ty, &tyn, &id, &idn))
                continue;
            if (n->tname && (strlen(n->tname) != tyn || memcmp(n->tname, ty, tyn))) continue;
            fp_item it = fp_mk_str(id, idn);
            fp_vec_push(&v, &it);
        }
        *out = fp_vec_done(&v);
        return true;
    }
    case F_AIDBOXTS: case F_AIDBOXCTS: case F_AIDBOXTXID: return aidbox_fn(st, n, out);
    case F_CHILDREN: case F_DESCENDANTS: {
        fp_vec v;
        fp_vec_init(&v, a);
        for (size_t i = 0; i < in->n; i++) children_of(&in->v[i], &v);
        if (n->fn == F_DESCENDANTS)
            for (size_t i = 0; i < v.n; i++) {
                fp_item cur = v.v[i];   /* v grows (and moves) while we walk it */
                children_of(&cur, &v);
            }
        *out = fp_vec_done(&v);
        return true;
    }
    case F_HASVALUE:
        *out = one_bool(st, in->n == 1 && in->v[0].kind != FP_NODE);
        return true;
    case F_ABS: case F_CEILING: case F_FLOOR: case F_ROUND: case F_TRUNCATE: case F_SQRT:
    case F_EXP: case F_LN: case F_LOG: case F_POWER:
        if (in->n == 0) return true;
        if (in->n > 1) return fp_err(st, n, "%s() expects a single item", n->name);
        return math_fn(st, n, &in->v[0], focus, out);
    case F_CVT_BOOL: case F_CVT_INT: case F_CVT_DEC: case F_CVT_STR: case F_CVT_DATE:
    case F_CVT_DATETIME: case F_CVT_TIME: {
        static const int to[] = {F_TOBOOLEAN, F_TOINTEGER, F_TODECIMAL, F_TOSTRING, F_TODATE,
                                 F_TODATETIME, F_TOTIME};
        if (in->n == 0) return true;
        if (in->n > 1) return fp_err(st, n, "%s() expects a single item", n->name);
        fp_coll r;
        if (!conv(st, to[n->fn - F_CVT_BOOL], &in->v[0], &r)) return false;
        *out = one_bool(st, r.n == 1);
        return true;
    }
    case F_AGGREGATE: {
        fp_coll total = {0};
        if (n->nargs == 2 && !fp_eval_node(st, n->args[1], focus, &total)) return false;
        for (size_t i = 0; i < in->n; i++) {
            fp_coll r;
            st->total = &total;
            if (!lambda(st, n->args[0], in, i, &r)) return false;
            total = r;
        }
        st->total = NULL;
        *out = total;
        return true;
    }
    case F_TRACE: *out = *in; return true;
    case F_NOW: case F_TODAY: {
        char *s = arena_alloc(a, 40);
        int len = fl_time_format(fl_now_micros(), s);
        fp_item it = {.kind = n->fn == F_NOW ? FP_DATETIME : FP_DATE, .s = s,
                      .len = (uint32_t)(n->fn == F_NOW ? len : 10)};
        *out = fp_one(a, it);
        return true;
    }
    }
    return fp_err(st, n, "function %s() is not implemented", n->name);
}
