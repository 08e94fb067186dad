/* fp_eval.c: FHIRPath evaluation core: items and collections, member navigation over the
 * JSON DOM (typed through the FHIR R4 table when the parent type is known), choice
 * elements, primitive extensions, equality/ordering, operators and the AST walk.
 * Functions live in fp_funcs.c. All temporaries come from ctx->a. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_types.h"
#include "fp_internal.h"

/* ---- collections ---- */

void fp_vec_init(fp_vec *b, arena *a)
{
    b->v = NULL;
    b->n = b->cap = 0;
    b->a = a;
}

void fp_vec_push(fp_vec *b, const fp_item *it)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        fp_item *v = arena_alloc(b->a, cap * sizeof *v);
        if (b->n) memcpy(v, b->v, b->n * sizeof *v);
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = *it;
}

fp_item fp_mk_bool(bool v) { return (fp_item){.kind = FP_BOOL, .i = v}; }
fp_item fp_mk_int(int64_t v) { return (fp_item){.kind = FP_INT, .i = v}; }
fp_item fp_mk_str(const char *s, size_t n) { return (fp_item){.kind = FP_STR, .s = s, .len = (uint32_t)n}; }

/* Shortest text that reads back as the same double. */
fp_item fp_mk_dec_d(arena *a, double d)
{
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    if (strchr(tmp, 'e')) snprintf(tmp, sizeof tmp, "%.17f", d);
    size_t n = strlen(tmp);
    return (fp_item){.kind = FP_DEC, .s = arena_strndup(a, tmp, n), .len = (uint32_t)n};
}

fp_coll fp_one(arena *a, fp_item it)
{
    fp_item *v = arena_alloc(a, sizeof *v);
    *v = it;
    return (fp_coll){v, 1};
}

bool fp_num_value(const fp_item *it, double *d)
{
    if (it->kind == FP_INT) { *d = (double)it->i; return true; }
    if (it->kind == FP_DEC || it->kind == FP_QTY) {
        char tmp[64];
        size_t n = it->len < 63 ? it->len : 63;
        memcpy(tmp, it->s, n);
        tmp[n] = 0;
        *d = strtod(tmp, NULL);
        return true;
    }
    return false;
}

static fp_kind kind_of_fhir_type(const char *t)
{
    if (!t) return FP_NODE;
    switch (t[0]) {
    case 'b': if (!strcmp(t, "boolean")) return FP_BOOL; break;
    case 'i':
        if (!strcmp(t, "integer") || !strcmp(t, "integer64")) return FP_INT;
        if (!strcmp(t, "instant")) return FP_DATETIME;
        break;
    case 'p': if (!strcmp(t, "positiveInt")) return FP_INT; break;
    case 'u': if (!strcmp(t, "unsignedInt")) return FP_INT; break;
    case 'd':
        if (!strcmp(t, "decimal")) return FP_DEC;
        if (!strcmp(t, "date")) return FP_DATE;
        if (!strcmp(t, "dateTime")) return FP_DATETIME;
        break;
    case 't': if (!strcmp(t, "time")) return FP_TIME; break;
    }
    return FP_STR;
}

bool fp_item_from_json(const json_val *v, const json_val *ext, const char *tname, fp_item *out)
{
    memset(out, 0, sizeof *out);
    out->j = v;
    out->ext = ext;
    out->tname = tname;
    switch (v->type) {
    case JSON_OBJECT:
        out->kind = FP_NODE;
        if (!tname || (tname[0] == 'R' && !strcmp(tname, "Resource"))) {
            const json_val *rt = json_get(v, "resourceType");
            if (rt && rt->type == JSON_STRING) out->tname = rt->u.s;
        }
        return true;
    case JSON_TRUE: case JSON_FALSE:
        out->kind = FP_BOOL;
        out->i = v->type == JSON_TRUE;
        return true;
    case JSON_NUMBER: {
        out->s = v->u.s;
        out->len = v->len;
        bool frac = memchr(v->u.s, '.', v->len) || memchr(v->u.s, 'e', v->len) ||
                    memchr(v->u.s, 'E', v->len);
        int64_t iv;
        fp_kind k = tname ? kind_of_fhir_type(tname) : FP_NODE;
        if (k != FP_DEC && !frac && json_num_int64(v, &iv) == 0) {
            out->kind = FP_INT;
            out->i = iv;
        } else out->kind = FP_DEC;
        return true;
    }
    case JSON_STRING: {
        out->s = v->u.s;
        out->len = v->len;
        fp_kind k = tname ? kind_of_fhir_type(tname) : FP_STR;
        out->kind = (k == FP_DATE || k == FP_DATETIME || k == FP_TIME) ? (uint8_t)k : FP_STR;
        return true;
    }
    default:
        return false;
    }
}

/* ---- navigation ---- */

/* A primitive that has only its extension (no value: "_birthDate" alone, or a null in a
 * value array): an element with no value, so extension() and exists() still see it. */
static void push_ext_only(fp_vec *out, const json_val *ext, const char *tname)
{
    fp_item it = {.kind = FP_NODE, .ext = ext, .tname = tname};
    fp_vec_push(out, &it);
}

static void push_json(fp_vec *out, const json_val *v, const json_val *ext, const char *tname)
{
    if (!v && ext && ext->type == JSON_OBJECT) {
        push_ext_only(out, ext, tname);
        return;
    }
    if (!v || v->type == JSON_ARRAY) {
        uint32_t n = v ? v->len : 0;
        if (ext && ext->type == JSON_ARRAY && ext->len > n) n = ext->len;
        for (uint32_t i = 0; i < n; i++) {
            const json_val *e = NULL;
            if (ext && ext->type == JSON_ARRAY && i < ext->len && ext->u.a[i].type == JSON_OBJECT)
                e = &ext->u.a[i];
            fp_item it;
            if (v && i < v->len && fp_item_from_json(&v->u.a[i], e, tname, &it)) fp_vec_push(out, &it);
            else if (e) push_ext_only(out, e, tname);
        }
        return;
    }
    fp_item it;
    const json_val *e = ext && ext->type == JSON_OBJECT ? ext : NULL;
    if (fp_item_from_json(v, e, tname, &it)) fp_vec_push(out, &it);
    else if (e) push_ext_only(out, e, tname);
}

/* Type of a choice variant key ("valueQuantity" -> "Quantity"): from the parent's
 * definition when its type is known, else from Extension.value[x], which allows every
 * open type. NULL when the key is not a choice variant. */
/* ---- element memo ---- */

#define TC_SLOTS 1024
typedef struct tc_ent {
    char parent[64];     /* copies: entries are checked by content, so any pointers work */
    char name[32];
    const fhir_elem_ent *el;   /* static (type table) or NULL */
} tc_ent;

struct fp_type_cache {
    tc_ent e[TC_SLOTS];
};

fp_type_cache *fp_type_cache_new(void)
{
    fp_type_cache *c = calloc(1, sizeof *c);
    if (!c) abort();
    return c;
}

void fp_type_cache_free(fp_type_cache *c) { free(c); }

/* fhir_element() through the memo. The slot is picked from the parent's address and the
 * name's bytes (not its address: choice keys like "valueQuantity" come from each
 * resource's own JSON text, so only their content repeats). */
static const fhir_elem_ent *elem_memo(fp_type_cache *tc, const char *parent, const char *name,
                                      size_t n)
{
    size_t pl = strlen(parent);
    tc_ent *e = NULL;
    if (tc && pl < sizeof e->parent && n > 0 && n < sizeof e->name) {
        uintptr_t h = ((uintptr_t)parent >> 3) * 31 + n * 0x9e37u +
                      (unsigned char)name[0] * 131u + (unsigned char)name[n - 1] * 7u +
                      (unsigned char)name[n / 2];
        e = &tc->e[(h ^ (h >> 11)) % TC_SLOTS];
        if (!memcmp(e->parent, parent, pl + 1) && !memcmp(e->name, name, n) && e->name[n] == 0)
            return e->el;
    }
    const fhir_elem_ent *el = fhir_element(parent, pl, name, n);
    if (e) {
        memcpy(e->parent, parent, pl + 1);
        memcpy(e->name, name, n);
        e->name[n] = 0;
        e->el = el;
    }
    return el;
}

static const char *elem_type(fp_type_cache *tc, const char *parent, const char *name, size_t n)
{
    const fhir_elem_ent *el = elem_memo(tc, parent, name, n);
    return el ? el->type : NULL;
}

static const char *choice_type(fp_type_cache *tc, const char *parent, const char *key,
                               size_t kl)
{
    const fhir_elem_ent *e;
    if (parent) {
        e = elem_memo(tc, parent, key, kl);
        return e && (e->flags & FHIR_ELEM_CHOICE_VARIANT) ? e->type : NULL;
    }
    char tmp[80];
    size_t base = 0;
    while (base < kl && !isupper((unsigned char)key[base])) base++;
    if (base == kl || 5 + kl - base >= sizeof tmp) return NULL;
    memcpy(tmp, "value", 5);
    memcpy(tmp + 5, key + base, kl - base);
    e = fhir_element("Extension", 9, tmp, 5 + kl - base);
    return e && (e->flags & FHIR_ELEM_CHOICE_VARIANT) ? e->type : NULL;
}

/* A primitive's id and extension live in its "_name" twin (kept in it->ext); FHIR's
 * FHIRPath mapping makes them children of the primitive node, so a member step on a
 * primitive (or on a value-less extension holder) navigates that object as an element of
 * the primitive's type ("date".extension is Extension). Kept out of fp_navigate's object
 * path, which stays as it was. */
static void navigate_primitive(const fp_item *it, const char *name, size_t n,
                               fp_type_cache *tc, fp_vec *out)
{
    if (!it->ext || it->ext->type != JSON_OBJECT) return;
    fp_item host = {.kind = FP_NODE, .j = it->ext, .tname = it->tname ? it->tname : "Element"};
    fp_navigate(&host, name, n, tc, out);
}

void fp_navigate(const fp_item *it, const char *name, size_t n, fp_type_cache *tc, fp_vec *out)
{
    if (it->kind != FP_NODE || !it->j || it->j->type != JSON_OBJECT) {
        navigate_primitive(it, name, n, tc, out);
        return;
    }
    const json_val *o = it->j;
    const json_val *val = NULL, *ext = NULL, *cval = NULL, *cext = NULL;
    const char *ctype = NULL;
    /* One pass over the members finds the value, its _extension twin, and a choice
     * variant (valueQuantity for "value") when the plain name is absent. */
    const char c0 = n ? name[0] : 0;
    for (uint32_t i = 0; i < o->len; i++) {
        const json_kv *kv = &o->u.o[i];
        const char *k = kv->key;
        uint32_t kl = kv->key_len;
        if (n && kl && k[0] != c0 && k[0] != '_') continue; /* most keys: no memcmp at all */
        if (kl == n && !memcmp(k, name, n)) { if (!val) val = &kv->val; }
        else if (kl == n + 1 && k[0] == '_' && !memcmp(k + 1, name, n)) { if (!ext) ext = &kv->val; }
        else if (kl > n && !memcmp(k, name, n) && isupper((unsigned char)k[n]) && !cval) {
            const char *ct = choice_type(tc, it->tname, k, kl);
            if (ct) { cval = &kv->val; ctype = ct; }
        } else if (kl > n + 1 && k[0] == '_' && !memcmp(k + 1, name, n) &&
                   isupper((unsigned char)k[n + 1]) && !cext)
            cext = &kv->val;
    }
    if (val || ext) {
        const char *tn = it->tname ? elem_type(tc, it->tname, name, n) : NULL;
        if (ext && ext->type != JSON_OBJECT && ext->type != JSON_ARRAY) ext = NULL;
        if (val || ext) push_json(out, val, ext, tn);
    } else if (cval || cext) {
        push_json(out, cval, cext, ctype);
    }
}

/* ---- date/time ---- */

static int digits(const char *s, size_t n, size_t *p, int cnt, int *out)
{
    int v = 0;
    for (int i = 0; i < cnt; i++) {
        if (*p >= n || !isdigit((unsigned char)s[*p])) return 0;
        v = v * 10 + (s[(*p)++] - '0');
    }
    *out = v;
    return 1;
}

static bool parse_time_part(const char *s, size_t n, size_t *p, fp_dt *o)
{
    if (!digits(s, n, p, 2, &o->h)) return false;
    o->prec = 4;
    o->has_time = true;
    if (*p < n && s[*p] == ':') {
        (*p)++;
        if (!digits(s, n, p, 2, &o->mi)) return false;
        o->prec = 5;
        if (*p < n && s[*p] == ':') {
            (*p)++;
            if (!digits(s, n, p, 2, &o->s)) return false;
            o->prec = 6;
            if (*p < n && s[*p] == '.') {
                (*p)++;
                int ms = 0, nd = 0;
                while (*p < n && isdigit((unsigned char)s[*p])) {
                    if (nd < 3) ms = ms * 10 + (s[*p] - '0');
                    nd++;
                    (*p)++;
                }
                if (!nd) return false;
                for (int k = nd; k < 3; k++) ms *= 10;
                o->ms = ms;
                o->frac_digits = nd;
                o->prec = 7;
            }
        }
    }
    return o->h < 24 && o->mi < 60 && o->s < 61;
}

bool fp_dt_parse(const char *s, size_t n, bool time_only, fp_dt *o)
{
    memset(o, 0, sizeof *o);
    o->mo = o->d = 1;
    size_t p = 0;
    if (time_only) return parse_time_part(s, n, &p, o) && p == n;
    if (!digits(s, n, &p, 4, &o->y)) return false;
    o->prec = 1;
    o->has_date = true;
    if (p < n && s[p] == '-') {
        p++;
        if (!digits(s, n, &p, 2, &o->mo) || o->mo < 1 || o->mo > 12) return false;
        o->prec = 2;
        if (p < n && s[p] == '-') {
            p++;
            if (!digits(s, n, &p, 2, &o->d) || o->d < 1 || o->d > 31) return false;
            o->prec = 3;
        }
    }
    if (p < n && s[p] == 'T') {
        p++;
        if (p == n) return true;      /* @2020-01-01T */
        if (!parse_time_part(s, n, &p, o)) return false;
    }
    if (p < n) {
        if (s[p] == 'Z') { o->has_tz = true; p++; }
        else if (s[p] == '+' || s[p] == '-') {
            int sign = s[p] == '-' ? -1 : 1, th, tm;
            p++;
            if (!digits(s, n, &p, 2, &th) || p >= n || s[p] != ':') return false;
            p++;
            if (!digits(s, n, &p, 2, &tm)) return false;
            o->has_tz = true;
            o->tz_min = sign * (th * 60 + tm);
        }
    }
    return p == n;
}

/* Shift a datetime with a zone to UTC (only meaningful with a time part). */
static void dt_to_utc(fp_dt *d)
{
    if (!d->has_tz || !d->has_time || d->tz_min == 0) return;
    int64_t days = fl_days_from_civil(d->y, (unsigned)d->mo, (unsigned)d->d);
    int64_t mins = days * 1440 + d->h * 60 + d->mi - d->tz_min;
    int64_t dd = mins >= 0 ? mins / 1440 : -((-mins + 1439) / 1440);
    int64_t rem = mins - dd * 1440;
    int64_t y;
    unsigned m, day;
    fl_civil_from_days(dd, &y, &m, &day);
    d->y = (int)y;
    d->mo = (int)m;
    d->d = (int)day;
    d->h = (int)(rem / 60);
    d->mi = (int)(rem % 60);
    d->tz_min = 0;
}

/* Compares two parsed values field by field up to the shared precision.
 * Returns false when equal so far but precisions differ (the result is empty). */
static bool dt_cmp(fp_dt a, fp_dt b, int *cmp)
{
    if (a.has_tz && b.has_tz) { dt_to_utc(&a); dt_to_utc(&b); }
    int fa[7] = {a.y, a.mo, a.d, a.h, a.mi, a.s, a.ms};
    int fb[7] = {b.y, b.mo, b.d, b.h, b.mi, b.s, b.ms};
    int pa = a.prec == 7 ? 6 : a.prec, pb = b.prec == 7 ? 6 : b.prec; /* s and ms: one level */
    int start = a.has_date ? 0 : 3;
    int lim = pa < pb ? pa : pb;
    for (int i = start; i < lim; i++)
        if (fa[i] != fb[i]) { *cmp = fa[i] < fb[i] ? -1 : 1; return true; }
    if (lim == 6 && fa[6] != fb[6]) { *cmp = fa[6] < fb[6] ? -1 : 1; return true; }
    if (pa != pb) return false;
    *cmp = 0;
    return true;
}

static bool is_dt_kind(int k) { return k == FP_DATE || k == FP_DATETIME || k == FP_TIME; }

static bool item_dt(const fp_item *it, int as_kind, fp_dt *d)
{
    return fp_dt_parse(it->s, it->len, as_kind == FP_TIME, d);
}

/* ---- equality and ordering ---- */

static bool both_num(const fp_item *a, const fp_item *b)
{
    return (a->kind == FP_INT || a->kind == FP_DEC) && (b->kind == FP_INT || b->kind == FP_DEC);
}

static int dec_places(const fp_item *it)
{
    if (it->kind != FP_DEC) return 0;
    const char *d = memchr(it->s, '.', it->len);
    return d ? (int)(it->s + it->len - d - 1) : 0;
}

/* A FHIR Quantity element as a FHIRPath Quantity (unit from code, else unit). */
static bool node_qty(const fp_item *it, fp_item *q)
{
    if (it->kind != FP_NODE || !it->j || it->j->type != JSON_OBJECT) return false;
    const json_val *v = json_get(it->j, "value");
    if (!v || v->type != JSON_NUMBER) return false;
    const json_val *u = json_get(it->j, "code");
    if (!u || u->type != JSON_STRING) u = json_get(it->j, "unit");
    *q = (fp_item){.kind = FP_QTY, .s = v->u.s, .len = v->len, .unit = "", .ulen = 0};
    if (u && u->type == JSON_STRING) {
        q->unit = u->u.s;
        q->ulen = u->len;
    }
    return true;
}

/* Brings a Quantity element to a Quantity value when compared with one. */
static void qty_align(const fp_item **a, const fp_item **b, fp_item *ta, fp_item *tb)
{
    if ((*a)->kind == FP_QTY && (*b)->kind == FP_NODE && node_qty(*b, tb)) *b = tb;
    else if ((*b)->kind == FP_QTY && (*a)->kind == FP_NODE && node_qty(*a, ta)) *a = ta;
}

int fp_items_equal(const fp_item *a, const fp_item *b)
{
    fp_item ta, tb;
    qty_align(&a, &b, &ta, &tb);
    if (both_num(a, b)) {
        if (a->kind == FP_INT && b->kind == FP_INT) return a->i == b->i;
        double x, y;
        fp_num_value(a, &x);
        fp_num_value(b, &y);
        return x == y;
    }
    if (is_dt_kind(a->kind) || is_dt_kind(b->kind)) {
        int k = is_dt_kind(a->kind) ? a->kind : b->kind;
        if ((a->kind != k && a->kind != FP_STR && !is_dt_kind(a->kind)) ||
            (b->kind != k && b->kind != FP_STR && !is_dt_kind(b->kind)))
            return 0;
        fp_dt x, y;
        if (!item_dt(a, k, &x) || !item_dt(b, k, &y)) return 0;
        int c;
        if (!dt_cmp(x, y, &c)) return -1;
        return c == 0;
    }
    if (a->kind != b->kind) return 0;
    switch (a->kind) {
    case FP_BOOL: return a->i == b->i;
    case FP_STR: return a->len == b->len && !memcmp(a->s, b->s, a->len);
    case FP_QTY: {
        double x, y;
        fp_num_value(a, &x);
        fp_num_value(b, &y);
        return x == y && a->ulen == b->ulen && !memcmp(a->unit, b->unit, a->ulen);
    }
    case FP_NODE: return a->j && b->j && json_equal(a->j, b->j);
    }
    return 0;
}

static void norm_ws_lower(const char *s, size_t n, buf *o)
{
    bool sp = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) { sp = true; continue; }
        if (sp && o->len) buf_putc(o, ' ');
        sp = false;
        buf_putc(o, (char)tolower(c));
    }
}

int fp_items_equiv(const fp_item *a, const fp_item *b)
{
    if (a->kind == FP_STR && b->kind == FP_STR) {
        buf x = BUF_INIT, y = BUF_INIT;
        norm_ws_lower(a->s, a->len, &x);
        norm_ws_lower(b->s, b->len, &y);
        int r = x.len == y.len && (x.len == 0 || !memcmp(x.p, y.p, x.len));
        buf_free(&x);
        buf_free(&y);
        return r;
    }
    if (both_num(a, b)) {
        double x, y;
        fp_num_value(a, &x);
        fp_num_value(b, &y);
        int p = dec_places(a) < dec_places(b) ? dec_places(a) : dec_places(b);
        double f = pow(10, p);
        return round(x * f) == round(y * f);
    }
    int r = fp_items_equal(a, b);
    return r == 1;
}

bool fp_items_compare(const fp_item *a, const fp_item *b, int *cmp)
{
    fp_item ta, tb;
    qty_align(&a, &b, &ta, &tb);
    if (both_num(a, b)) {
        if (a->kind == FP_INT && b->kind == FP_INT) {
            *cmp = a->i < b->i ? -1 : a->i > b->i;
            return true;
        }
        double x, y;
        fp_num_value(a, &x);
        fp_num_value(b, &y);
        *cmp = x < y ? -1 : x > y;
        return true;
    }
    if (is_dt_kind(a->kind) || is_dt_kind(b->kind)) {
        int k = is_dt_kind(a->kind) ? a->kind : b->kind;
        fp_dt x, y;
        if ((a->kind != FP_STR && !is_dt_kind(a->kind)) || (b->kind != FP_STR && !is_dt_kind(b->kind)))
            return false;
        if (!item_dt(a, k, &x) || !item_dt(b, k, &y)) return false;
        return dt_cmp(x, y, cmp);
    }
    if (a->kind == FP_STR && b->kind == FP_STR) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->s, b->s, n);
        *cmp = c ? (c < 0 ? -1 : 1) : (a->len < b->len ? -1 : a->len > b->len);
        return true;
    }
    if (a->kind == FP_QTY && b->kind == FP_QTY && a->ulen == b->ulen &&
        !memcmp(a->unit, b->unit, a->ulen)) {
        double x, y;
        fp_num_value(a, &x);
        fp_num_value(b, &y);
        *cmp = x < y ? -1 : x > y;
        return true;
    }
    return false;
}

int fp_to_bool(const fp_coll *c)
{
    if (c->n == 0) return -1;
    if (c->n == 1 && c->v[0].kind == FP_BOOL) return (int)c->v[0].i;
    if (c->n == 1) return 1;    /* a single non-boolean item counts as true */
    return -2;
}

/* ---- types ---- */

static bool name_eq(const char *a, size_t an, const char *b)
{
    return strlen(b) == an && !memcmp(a, b, an);
}

static bool name_eq_ci1(const char *a, size_t an, const char *b)
{
    /* "String" matches "string": System types vs FHIR primitives differ in case only */
    return strlen(b) == an && an && tolower((unsigned char)a[0]) == tolower((unsigned char)b[0]) &&
           !memcmp(a + 1, b + 1, an - 1);
}

bool fp_item_is_type(const fp_item *it, const char *t, size_t tn)
{
    if (it->tname) {
        if (name_eq(t, tn, it->tname)) return true;
        if (name_eq(t, tn, "Resource") || name_eq(t, tn, "DomainResource"))
            return it->kind == FP_NODE && it->j && json_get(it->j, "resourceType") != NULL;
        char tmp[64];
        if (tn < sizeof tmp) {
            memcpy(tmp, t, tn);
            tmp[tn] = 0;
            return fhir_type_is_a(it->tname, tmp);
        }
        return false;
    }
    switch (it->kind) {
    case FP_BOOL: return name_eq_ci1(t, tn, "boolean");
    case FP_INT: return name_eq_ci1(t, tn, "integer");
    case FP_DEC: return name_eq_ci1(t, tn, "decimal");
    case FP_STR: return name_eq_ci1(t, tn, "string");
    case FP_DATE: return name_eq_ci1(t, tn, "date");
    case FP_DATETIME: return name_eq_ci1(t, tn, "dateTime");
    case FP_TIME: return name_eq_ci1(t, tn, "time");
    case FP_QTY: return name_eq(t, tn, "Quantity");
    }
    return false;
}

/* ---- errors ---- */

bool fp_err(fp_state *st, const fp_node *n, const char *fmt, ...)
{
    fl_err *e = st->ctx->err;
    if (!e || e->status) return false;
    char m[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    fl_err_set(e, 422, "", "%s (at position %u in '%s')", m, n ? n->pos : 0, st->e->src);
    return false;
}

/* ---- operators ---- */

static bool singleton(fp_state *st, const fp_node *n, const fp_coll *c, const char *what)
{
    if (c->n > 1) return fp_err(st, n, "%s expects a single item, got %zu", what, c->n);
    return true;
}

/* ---- date/time arithmetic ---- */

/* Calendar unit of a quantity: 0 year 1 month 2 week 3 day 4 hour 5 minute 6 second
 * 7 millisecond; -1 if not a time unit. */
static int time_unit(const fp_item *q)
{
    static const char *cal[] = {"year", "month", "week", "day", "hour", "minute", "second",
                                "millisecond"};
    static const char *ucum[] = {"a", "mo", "wk", "d", "h", "min", "s", "ms"};
    size_t n = q->ulen;
    if (n > 1 && q->unit[n - 1] == 's' && strncmp(q->unit, "ms", n) && strncmp(q->unit, "s", n)) n--;
    for (int i = 0; i < 8; i++) {
        if (strlen(cal[i]) == n && !memcmp(q->unit, cal[i], n)) return i;
        if (strlen(ucum[i]) == q->ulen && !memcmp(q->unit, ucum[i], q->ulen)) return i;
    }
    return -1;
}

static char *dt_format(arena *a, const fp_dt *d, int kind, size_t *len)
{
    char tmp[64];
    int n = 0;
    if (kind != FP_TIME) {
        n += snprintf(tmp + n, sizeof tmp - (size_t)n, "%04d", d->y);
        if (d->prec >= 2) n += snprintf(tmp + n, sizeof tmp - (size_t)n, "-%02d", d->mo);
        if (d->prec >= 3) n += snprintf(tmp + n, sizeof tmp - (size_t)n, "-%02d", d->d);
        if (kind == FP_DATETIME && d->prec >= 4) tmp[n++] = 'T';
    }
    if (d->prec >= 4) n += snprintf(tmp + n, sizeof tmp - (size_t)n, "%02d", d->h);
    if (d->prec >= 5) n += snprintf(tmp + n, sizeof tmp - (size_t)n, ":%02d", d->mi);
    if (d->prec >= 6) n += snprintf(tmp + n, sizeof tmp - (size_t)n, ":%02d", d->s);
    if (d->prec >= 7) n += snprintf(tmp + n, sizeof tmp - (size_t)n, ".%03d", d->ms);
    if (kind == FP_DATETIME && d->has_tz && d->prec >= 4) {
        if (d->tz_min == 0) tmp[n++] = 'Z';
        else {
            int t = d->tz_min < 0 ? -d->tz_min : d->tz_min;
            n += snprintf(tmp + n, sizeof tmp - (size_t)n, "%c%02d:%02d", d->tz_min < 0 ? '-' : '+',
                          t / 60, t % 60);
        }
    }
    *len = (size_t)n;
    return arena_strndup(a, tmp, (size_t)n);
}

static int mdays(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return d[m - 1];
}

/* date/dateTime/time +/- a calendar quantity; the result keeps the input's precision. */
static bool date_arith(fp_state *st, const fp_item *dtv, const fp_item *q, bool sub, fp_coll *out)
{
    arena *ar = st->ctx->a;
    *out = (fp_coll){0};
    int u = time_unit(q);
    double qv;
    fp_dt d;
    int kind = dtv->kind == FP_STR ? FP_DATETIME : dtv->kind;
    if (u < 0 || !fp_num_value(q, &qv) || !fp_dt_parse(dtv->s, dtv->len, kind == FP_TIME, &d)) return true;
    int64_t k = (int64_t)qv;
    if (sub) k = -k;
    if (u <= 1) {
        int64_t months = (int64_t)d.y * 12 + (d.mo - 1) + (u == 0 ? k * 12 : k);
        d.y = (int)(months / 12);
        d.mo = (int)(months % 12) + 1;
        if (d.d > mdays(d.y, d.mo)) d.d = mdays(d.y, d.mo);
    } else {
        static const int64_t ms_per[] = {0, 0, 604800000, 86400000, 3600000, 60000, 1000, 1};
        int64_t days = kind == FP_TIME ? 0 : fl_days_from_civil(d.y, (unsigned)d.mo, (unsigned)d.d);
        int64_t ms = days * 86400000 + ((int64_t)d.h * 3600 + d.mi * 60 + d.s) * 1000 + d.ms;
        ms += k * ms_per[u];
        int64_t dd = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
        int64_t rem = ms - dd * 86400000;
        if (kind != FP_TIME) {
            int64_t y;
            unsigned m, day;
            fl_civil_from_days(dd, &y, &m, &day);
            d.y = (int)y;
            d.mo = (int)m;
            d.d = (int)day;
        }
        d.h = (int)(rem / 3600000);
        d.mi = (int)(rem / 60000 % 60);
        d.s = (int)(rem / 1000 % 60);
        d.ms = (int)(rem % 1000);
    }
    size_t len;
    char *txt = dt_format(ar, &d, kind, &len);
    *out = fp_one(ar, (fp_item){.kind = (uint8_t)kind, .s = txt, .len = (uint32_t)len});
    return true;
}

/* Decimal as a scaled integer (mantissa, digits after the point) when it fits in 18
 * digits; false otherwise (exponent forms, long values): the caller falls back to double. */
static bool dec_scaled(const fp_item *it, int64_t *m, int *scale)
{
    if (it->kind == FP_INT) { *m = it->i; *scale = 0; return true; }
    int64_t v = 0;
    int digits = 0, sc = 0;
    bool neg = false, dot = false;
    for (uint32_t i = 0; i < it->len; i++) {
        char c = it->s[i];
        if (i == 0 && (c == '-' || c == '+')) { neg = c == '-'; continue; }
        if (c == '.' && !dot) { dot = true; continue; }
        if (c < '0' || c > '9' || ++digits > 18) return false;
        v = v * 10 + (c - '0');
        if (dot) sc++;
    }
    *m = neg ? -v : v;
    *scale = sc;
    return digits > 0;
}

static bool pow10_mul(int64_t *m, int k)
{
    while (k-- > 0)
        if (__builtin_mul_overflow(*m, 10, m)) return false;
    return true;
}

/* Exact + - * on decimals (FHIRPath decimals are not binary floats: 0.1 + 0.2 = 0.3). */
static bool exact_dec(arena *ar, const fp_item *a, const fp_item *b, int op, fp_coll *out)
{
    int64_t ma, mb, r;
    int sa, sb, sc;
    if (!dec_scaled(a, &ma, &sa) || !dec_scaled(b, &mb, &sb)) return false;
    if (op == OP_MUL) {
        sc = sa + sb;
        if (sc > 18 || __builtin_mul_overflow(ma, mb, &r)) return false;
    } else {
        sc = sa > sb ? sa : sb;
        if (!pow10_mul(&ma, sc - sa) || !pow10_mul(&mb, sc - sb)) return false;
        if (op == OP_ADD ? __builtin_add_overflow(ma, mb, &r) : __builtin_sub_overflow(ma, mb, &r))
            return false;
    }
    char digits[32], txt[48];
    uint64_t u = r < 0 ? (uint64_t)0 - (uint64_t)r : (uint64_t)r;
    int n = snprintf(digits, sizeof digits, "%0*llu", sc + 1, (unsigned long long)u);
    int len = snprintf(txt, sizeof txt, "%s%.*s%s%.*s", r < 0 ? "-" : "", n - sc, digits,
                       sc ? "." : "", sc, digits + n - sc);
    *out = fp_one(ar, (fp_item){.kind = FP_DEC, .s = arena_strndup(ar, txt, (size_t)len),
                                .len = (uint32_t)len});
    return true;
}

static bool arith(fp_state *st, const fp_node *n, const fp_item *a, const fp_item *b, fp_coll *out)
{
    arena *ar = st->ctx->a;
    int op = n->op;
    if ((op == OP_ADD || op == OP_SUB) && b->kind == FP_QTY &&
        (is_dt_kind(a->kind) || a->kind == FP_STR))
        return date_arith(st, a, b, op == OP_SUB, out);
    if (op == OP_ADD && a->kind == FP_STR && b->kind == FP_STR) {
        char *s = arena_alloc(ar, (size_t)a->len + b->len + 1);
        memcpy(s, a->s, a->len);
        memcpy(s + a->len, b->s, b->len);
        *out = fp_one(ar, fp_mk_str(s, (size_t)a->len + b->len));
        return true;
    }
    if (!both_num(a, b)) {
        *out = (fp_coll){0};
        return true;
    }
    if (a->kind == FP_INT && b->kind == FP_INT && op != OP_DIV) {
        int64_t r = 0;
        bool ovf = false;
        switch (op) {
        case OP_ADD: ovf = __builtin_add_overflow(a->i, b->i, &r); break;
        case OP_SUB: ovf = __builtin_sub_overflow(a->i, b->i, &r); break;
        case OP_MUL: ovf = __builtin_mul_overflow(a->i, b->i, &r); break;
        case OP_IDIV: case OP_MOD:
            if (b->i == 0 || (a->i == INT64_MIN && b->i == -1)) { *out = (fp_coll){0}; return true; }
            r = op == OP_IDIV ? a->i / b->i : a->i % b->i;
            break;
        }
        if (ovf) return fp_err(st, n, "integer overflow");
        *out = fp_one(ar, fp_mk_int(r));
        return true;
    }
    if ((op == OP_ADD || op == OP_SUB || op == OP_MUL) && exact_dec(ar, a, b, op, out)) return true;
    double x, y, r = 0;
    fp_num_value(a, &x);
    fp_num_value(b, &y);
    switch (op) {
    case OP_ADD: r = x + y; break;
    case OP_SUB: r = x - y; break;
    case OP_MUL: r = x * y; break;
    case OP_DIV: if (y == 0) { *out = (fp_coll){0}; return true; } r = x / y; break;
    case OP_IDIV:
        if (y == 0) { *out = (fp_coll){0}; return true; }
        *out = fp_one(ar, fp_mk_int((int64_t)trunc(x / y)));
        return true;
    case OP_MOD: if (y == 0) { *out = (fp_coll){0}; return true; } r = fmod(x, y); break;
    }
    *out = fp_one(ar, fp_mk_dec_d(ar, r));
    return true;
}

static bool coll_contains(const fp_coll *c, const fp_item *it)
{
    for (size_t i = 0; i < c->n; i++)
        if (fp_items_equal(&c->v[i], it) == 1) return true;
    return false;
}

static bool eval_logic(fp_state *st, const fp_node *n, const fp_coll *focus, fp_coll *out)
{
    arena *ar = st->ctx->a;
    fp_coll l, r;
    if (!fp_eval_node(st, n->args[0], focus, &l)) return false;
    int a = fp_to_bool(&l);
    if (a == -2) return fp_err(st, n, "logical operator on a collection");
    /* short-circuits keep where(a and b) from evaluating b needlessly */
    if (n->op == OP_AND && a == 0) { *out = fp_one(ar, fp_mk_bool(false)); return true; }
    if (n->op == OP_OR && a == 1) { *out = fp_one(ar, fp_mk_bool(true)); return true; }
    if (n->op == OP_IMPLIES && a == 0) { *out = fp_one(ar, fp_mk_bool(true)); return true; }
    if (!fp_eval_node(st, n->args[1], focus, &r)) return false;
    int b = fp_to_bool(&r);
    if (b == -2) return fp_err(st, n, "logical operator on a collection");
    int res = -1;
    switch (n->op) {
    case OP_AND: res = b == 0 ? 0 : (a == 1 && b == 1) ? 1 : -1; break;
    case OP_OR: res = b == 1 ? 1 : (a == 0 && b == 0) ? 0 : -1; break;
    case OP_XOR: res = (a < 0 || b < 0) ? -1 : a != b; break;
    case OP_IMPLIES: res = a == 1 ? b : (b == 1 ? 1 : -1); break;
    }
    *out = res < 0 ? (fp_coll){0} : fp_one(ar, fp_mk_bool(res));
    return true;
}

static bool eval_bin(fp_state *st, const fp_node *n, const fp_coll *focus, fp_coll *out)
{
    arena *ar = st->ctx->a;
    if (n->op >= OP_AND) return eval_logic(st, n, focus, out);
    fp_coll l, r;
    if (!fp_eval_node(st, n->args[0], focus, &l) || !fp_eval_node(st, n->args[1], focus, &r))
        return false;
    *out = (fp_coll){0};
    switch (n->op) {
    case OP_UNION: {
        fp_vec v;
        fp_vec_init(&v, ar);
        for (int s = 0; s < 2; s++) {
            const fp_coll *c = s ? &r : &l;
            for (size_t i = 0; i < c->n; i++) {
                fp_coll cur = fp_vec_done(&v);
                if (!coll_contains(&cur, &c->v[i])) fp_vec_push(&v, &c->v[i]);
            }
        }
        *out = fp_vec_done(&v);
        return true;
    }
    case OP_CONCAT: {
        if (!singleton(st, n, &l, "&") || !singleton(st, n, &r, "&")) return false;
        size_t la = 0, lb = 0;
        const char *sa = l.n ? fp_item_text(&l.v[0], &la) : "";
        const char *sb = r.n ? fp_item_text(&r.v[0], &lb) : "";
        char *s = arena_alloc(ar, la + lb + 1);
        memcpy(s, sa ? sa : "", la);
        memcpy(s + la, sb ? sb : "", lb);
        *out = fp_one(ar, fp_mk_str(s, la + lb));
        return true;
    }
    case OP_IN: case OP_CONTAINS: {
        const fp_coll *item = n->op == OP_IN ? &l : &r, *coll = n->op == OP_IN ? &r : &l;
        if (item->n == 0) return true;
        if (!singleton(st, n, item, n->op == OP_IN ? "in" : "contains")) return false;
        *out = fp_one(ar, fp_mk_bool(coll_contains(coll, &item->v[0])));
        return true;
    }
    case OP_EQ: case OP_NE: case OP_EQUIV: case OP_NEQUIV: {
        bool equiv = n->op == OP_EQUIV || n->op == OP_NEQUIV;
        bool neg = n->op == OP_NE || n->op == OP_NEQUIV;
        int res;
        if (l.n == 0 || r.n == 0) {
            if (!equiv) return true;
            res = l.n == r.n;
        } else if (l.n != r.n) res = 0;
        else {
            res = 1;
            for (size_t i = 0; i < l.n && res == 1; i++) {
                int e = equiv ? fp_items_equiv(&l.v[i], &r.v[i]) : fp_items_equal(&l.v[i], &r.v[i]);
                res = e;
            }
            if (res < 0) return true;
        }
        *out = fp_one(ar, fp_mk_bool(neg ? !res : res));
        return true;
    }
    case OP_LT: case OP_GT: case OP_LE: case OP_GE: {
        if (l.n == 0 || r.n == 0) return true;
        if (!singleton(st, n, &l, "comparison") || !singleton(st, n, &r, "comparison")) return false;
        int c;
        if (!fp_items_compare(&l.v[0], &r.v[0], &c)) {
            bool typed_mismatch = !(is_dt_kind(l.v[0].kind) || is_dt_kind(r.v[0].kind));
            if (typed_mismatch && l.v[0].kind != r.v[0].kind && !both_num(&l.v[0], &r.v[0]))
                return fp_err(st, n, "cannot compare these types");
            return true;
        }
        bool res = n->op == OP_LT ? c < 0 : n->op == OP_GT ? c > 0 : n->op == OP_LE ? c <= 0 : c >= 0;
        *out = fp_one(ar, fp_mk_bool(res));
        return true;
    }
    default:   /* arithmetic */
        if (l.n == 0 || r.n == 0) return true;
        if (!singleton(st, n, &l, "arithmetic") || !singleton(st, n, &r, "arithmetic")) return false;
        return arith(st, n, &l.v[0], &r.v[0], out);
    }
}

/* ---- the AST walk ---- */

static bool eval_member(fp_state *st, const fp_node *n, const fp_coll *focus, fp_coll *out)
{
    fp_coll in;
    if (n->base) {
        if (!fp_eval_node(st, n->base, focus, &in)) return false;
    } else {
        in = *focus;
        /* A leading type name (Patient.name) selects the focus when it is of that type. */
        if (isupper((unsigned char)n->name[0]) && in.n) {
            bool all = true;
            for (size_t i = 0; i < in.n && all; i++)
                all = in.v[i].tname && !strcmp(in.v[i].tname, n->name);
            if (all) { *out = in; return true; }
        }
    }
    fp_vec v;
    fp_vec_init(&v, st->ctx->a);
    for (size_t i = 0; i < in.n; i++) fp_navigate(&in.v[i], n->name, n->name_len, st->ctx->tcache, &v);
    *out = fp_vec_done(&v);
    return true;
}

static bool eval_type_op(fp_state *st, const fp_node *n, const fp_coll *focus, fp_coll *out)
{
    fp_coll in;
    if (!fp_eval_node(st, n->args[0], focus, &in)) return false;
    *out = (fp_coll){0};
    if (in.n == 0) return true;
    if (!singleton(st, n, &in, n->type == N_IS ? "is" : "as")) return false;
    bool is = fp_item_is_type(&in.v[0], n->name, n->name_len);
    if (n->type == N_IS) *out = fp_one(st->ctx->a, fp_mk_bool(is));
    else if (is) *out = in;
    return true;
}

bool fp_eval_node(fp_state *st, const fp_node *n, const fp_coll *focus, fp_coll *out)
{
    arena *ar = st->ctx->a;
    switch (n->type) {
    case N_EMPTY: *out = (fp_coll){0}; return true;
    case N_LIT: *out = (fp_coll){(fp_item *)&n->lit, 1}; return true;
    case N_THIS: *out = *focus; return true;
    case N_INDEX: *out = fp_one(ar, fp_mk_int(st->index)); return true;
    case N_TOTAL: *out = st->total ? *st->total : (fp_coll){0}; return true;
    case N_VAR: *out = st->ctx->vars ? st->ctx->vars[n->slot] : (fp_coll){0}; return true;
    case N_RESOURCE: case N_CONTEXT:
        *out = st->ctx->resource ? fp_single_node(ar, st->ctx->resource) : (fp_coll){0};
        return true;
    case N_ROWINDEX: *out = fp_one(ar, fp_mk_int(st->ctx->row_index)); return true;
    case N_UCUM: *out = fp_one(ar, fp_mk_str("http://unitsofmeasure.org", 25)); return true;
    case N_MEMBER: return eval_member(st, n, focus, out);
    case N_FUNC: {
        fp_coll in;
        if (n->base) {
            if (!fp_eval_node(st, n->base, focus, &in)) return false;
        } else in = *focus;
        return fp_call(st, n, &in, focus, out);
    }
    case N_INDEXER: {
        fp_coll in, ix;
        if (!fp_eval_node(st, n->base, focus, &in) || !fp_eval_node(st, n->args[0], focus, &ix))
            return false;
        *out = (fp_coll){0};
        if (ix.n == 0) return true;
        if (ix.n != 1 || ix.v[0].kind != FP_INT) return fp_err(st, n, "index must be an integer");
        if (ix.v[0].i >= 0 && (size_t)ix.v[0].i < in.n) *out = (fp_coll){&in.v[ix.v[0].i], 1};
        return true;
    }
    case N_NEG: case N_POS: {
        fp_coll in;
        if (!fp_eval_node(st, n->args[0], focus, &in)) return false;
        if (n->type == N_POS || in.n == 0) { *out = in; return true; }
        if (!singleton(st, n, &in, "unary minus")) return false;
        fp_item it = in.v[0];
        if (it.kind == FP_INT) it.i = -it.i;
        else if (it.kind == FP_DEC || it.kind == FP_QTY) {
            char *s = arena_alloc(ar, (size_t)it.len + 2);
            if (it.len && it.s[0] == '-') { memcpy(s, it.s + 1, it.len - 1); it.len--; }
            else { s[0] = '-'; memcpy(s + 1, it.s, it.len); it.len++; }
            it.s = s;
        } else return fp_err(st, n, "unary minus on a non-number");
        it.j = NULL;
        *out = fp_one(ar, it);
        return true;
    }
    case N_BIN: return eval_bin(st, n, focus, out);
    case N_IS: case N_AS: return eval_type_op(st, n, focus, out);
    }
    return fp_err(st, n, "internal: unknown node");
}

/* ---- public entry points ---- */

fp_coll fp_single_node(arena *a, const json_val *v)
{
    fp_item it;
    if (!v || !fp_item_from_json(v, NULL, NULL, &it)) return (fp_coll){0};
    return fp_one(a, it);
}

bool fp_eval(const fp_expr *e, fp_ctx *ctx, const fp_coll *in, fp_coll *out)
{
    fp_state st = {.ctx = ctx, .e = e};
    fp_coll focus = in ? *in : fp_single_node(ctx->a, ctx->resource);
    return fp_eval_node(&st, e->root, &focus, out);
}

const char *fp_item_text(const fp_item *it, size_t *len)
{
    switch (it->kind) {
    case FP_BOOL:
        *len = it->i ? 4 : 5;
        return it->i ? "true" : "false";
    case FP_INT:
        if (it->j && it->j->type == JSON_NUMBER) { *len = it->j->len; return it->j->u.s; }
        if (it->s) { *len = it->len; return it->s; }
        return NULL;   /* caller formats computed integers */
    case FP_NODE:
        return NULL;
    default:
        *len = it->len;
        return it->s;
    }
}

void fp_item_write_json(jw *w, const fp_item *it)
{
    switch (it->kind) {
    case FP_NODE: if (it->j) jw_val(w, it->j); else jw_null(w); return;
    case FP_BOOL: jw_bool(w, it->i != 0); return;
    case FP_INT: jw_int(w, it->i); return;
    case FP_DEC: jw_raw(w, it->s, it->len); return;
    case FP_QTY:
        jw_obj_begin(w);
        jw_key(w, "value");
        jw_raw(w, it->s, it->len);
        jw_key(w, "unit");
        jw_strn(w, it->unit, it->ulen);
        jw_obj_end(w);
        return;
    default: jw_strn(w, it->s, it->len); return;
    }
}

bool fp_item_from_typed(arena *a, const char *suffix, const json_val *v, fp_item *out)
{
    static const struct { const char *sfx; const char *tname; } t[] = {
        {"Base64Binary", "base64Binary"}, {"Boolean", "boolean"}, {"Canonical", "canonical"},
        {"Code", "code"}, {"Date", "date"}, {"DateTime", "dateTime"}, {"Decimal", "decimal"},
        {"Id", "id"}, {"Instant", "instant"}, {"Integer", "integer"},
        {"Integer64", "integer64"}, {"Markdown", "markdown"}, {"Oid", "oid"},
        {"PositiveInt", "positiveInt"}, {"String", "string"}, {"Time", "time"},
        {"UnsignedInt", "unsignedInt"}, {"Uri", "uri"}, {"Url", "url"}, {"Uuid", "uuid"}};
    (void)a;
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcmp(suffix, t[i].sfx)) {
            if (!fp_item_from_json(v, NULL, t[i].tname, out)) return false;
            fp_kind k = kind_of_fhir_type(t[i].tname);
            if (k == FP_STR && v->type != JSON_STRING) return false;
            if (k == FP_BOOL && out->kind != FP_BOOL) return false;
            if ((k == FP_INT || k == FP_DEC) && v->type != JSON_NUMBER) return false;
            if ((k == FP_DATE || k == FP_DATETIME || k == FP_TIME) && v->type != JSON_STRING) return false;
            return true;
        }
    return false;
}
