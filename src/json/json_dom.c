/* json_dom.c: DOM access, numbers, equality and building (see json.h). */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- access ---- */

json_val *json_getn(const json_val *obj, const char *key, size_t klen)
{
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    json_kv *m = obj->u.o;
    for (uint32_t i = 0; i < obj->len; i++) {
        if (m[i].key_len == klen && memcmp(m[i].key, key, klen) == 0) return &m[i].val;
    }
    return NULL;
}

json_val *json_get(const json_val *obj, const char *key)
{
    return json_getn(obj, key, strlen(key));
}

const char *json_get_str(const json_val *obj, const char *key)
{
    json_val *v = json_get(obj, key);
    return v && v->type == JSON_STRING ? v->u.s : NULL;
}

/* ---- numbers ---- */

/* A JSON number's value as sign * 0.DIGITS * 10^exp, DIGITS without leading or trailing
 * zeros (empty for zero). Returns false if the text is not a JSON number. */
typedef struct decnum {
    bool neg;
    const char *int_p; /* integer part digits */
    size_t int_n;
    const char *frac_p; /* fraction digits */
    size_t frac_n;
    int64_t exp; /* exponent as written (saturated) */
} decnum;

static bool dec_split(const char *s, size_t n, decnum *d)
{
    size_t i = 0;
    memset(d, 0, sizeof *d);
    if (i < n && s[i] == '-') {
        d->neg = true;
        i++;
    }
    d->int_p = s + i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    d->int_n = (size_t)(s + i - d->int_p);
    if (d->int_n == 0) return false;
    if (d->int_n > 1 && d->int_p[0] == '0') return false;
    if (i < n && s[i] == '.') {
        i++;
        d->frac_p = s + i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        d->frac_n = (size_t)(s + i - d->frac_p);
        if (d->frac_n == 0) return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        size_t st = i;
        int64_t e = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (e < (int64_t)1 << 50) e = e * 10 + (s[i] - '0');
            i++;
        }
        if (i == st) return false;
        d->exp = eneg ? -e : e;
    }
    return i == n;
}

/* digit k of the concatenated int+frac digit string */
static inline char dec_digit(const decnum *d, size_t k)
{
    return k < d->int_n ? d->int_p[k] : d->frac_p[k - d->int_n];
}

/* Normalized form: first significant digit index, count of significant digits, and the
 * decimal exponent e such that value = 0.D1D2..Dn * 10^e. */
static void dec_norm(const decnum *d, size_t *first, size_t *count, int64_t *e)
{
    size_t total = d->int_n + d->frac_n, f = 0;
    while (f < total && dec_digit(d, f) == '0') f++;
    size_t l = total;
    while (l > f && dec_digit(d, l - 1) == '0') l--;
    *first = f;
    *count = l - f;
    /* position of the decimal point counted from digit 0 is int_n */
    *e = (int64_t)d->int_n - (int64_t)f + d->exp;
}

static bool val_is_num(const json_val *v) { return v && v->type == JSON_NUMBER && v->u.s; }

int json_num_int64(const json_val *v, int64_t *out)
{
    if (!val_is_num(v)) return -1;
    decnum d;
    if (!dec_split(v->u.s, v->len, &d)) return -1;
    size_t f, cnt;
    int64_t e;
    dec_norm(&d, &f, &cnt, &e);
    if (cnt == 0) {
        *out = 0;
        return 0;
    }
    /* value = D * 10^(e - cnt), must be an integer */
    if (e < (int64_t)cnt) return -1; /* fraction */
    if (e > 19) return -1;
    uint64_t acc = 0;
    for (int64_t k = 0; k < e; k++) {
        unsigned dig = k < (int64_t)cnt ? (unsigned)(dec_digit(&d, f + (size_t)k) - '0') : 0;
        if (acc > (UINT64_MAX - dig) / 10) return -1;
        acc = acc * 10 + dig;
    }
    if (d.neg) {
        if (acc > (uint64_t)INT64_MAX + 1) return -1;
        *out = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
    } else {
        if (acc > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)acc;
    }
    return 0;
}

int json_num_double(const json_val *v, double *out)
{
    if (!val_is_num(v)) return -1;
    decnum d;
    if (!dec_split(v->u.s, v->len, &d)) return -1;
    char local[128];
    char *tmp = v->len < sizeof local ? local : malloc((size_t)v->len + 1);
    if (!tmp) return -1;
    memcpy(tmp, v->u.s, v->len);
    tmp[v->len] = 0;
    errno = 0;
    double x = strtod(tmp, NULL);
    if (tmp != local) free(tmp);
    if (isinf(x)) return -1;
    *out = x;
    return 0;
}

static bool num_equal(const json_val *a, const json_val *b)
{
    if (a->len == b->len && memcmp(a->u.s, b->u.s, a->len) == 0) return true;
    decnum da, db;
    if (!dec_split(a->u.s, a->len, &da) || !dec_split(b->u.s, b->len, &db)) return false;
    size_t fa, ca, fb, cb;
    int64_t ea, eb;
    dec_norm(&da, &fa, &ca, &ea);
    dec_norm(&db, &fb, &cb, &eb);
    if (ca == 0 || cb == 0) return ca == cb; /* zero (either sign) */
    if (da.neg != db.neg || ca != cb || ea != eb) return false;
    for (size_t k = 0; k < ca; k++)
        if (dec_digit(&da, fa + k) != dec_digit(&db, fb + k)) return false;
    return true;
}

bool json_equal(const json_val *a, const json_val *b)
{
    if (a == b) return true;
    if (!a || !b || a->type != b->type) return false;
    switch (a->type) {
    case JSON_NULL:
    case JSON_TRUE:
    case JSON_FALSE:
        return true;
    case JSON_NUMBER:
        return num_equal(a, b);
    case JSON_STRING:
        return a->len == b->len && (a->len == 0 || memcmp(a->u.s, b->u.s, a->len) == 0);
    case JSON_ARRAY:
        if (a->len != b->len) return false;
        for (uint32_t i = 0; i < a->len; i++)
            if (!json_equal(&a->u.a[i], &b->u.a[i])) return false;
        return true;
    case JSON_OBJECT:
        if (a->len != b->len) return false;
        for (uint32_t i = 0; i < a->len; i++) {
            const json_kv *m = &a->u.o[i];
            const json_val *o = json_getn(b, m->key, m->key_len);
            /* compare against the first member with that key on both sides */
            if (!o || !json_equal(json_getn(a, m->key, m->key_len), o)) return false;
        }
        for (uint32_t i = 0; i < b->len; i++) {
            const json_kv *m = &b->u.o[i];
            if (!json_getn(a, m->key, m->key_len)) return false;
        }
        return true;
    }
    return false;
}

/* ---- building ----
 * Arrays and members built here get a hidden header in front of their storage that
 * records the capacity, so pushes are amortized O(1). Storage without a valid header
 * (from the parser) is treated as full: the first push moves it into a new block. */

#define CAP_MAGIC 0x4A534E43u /* "JSNC" */

typedef struct cap_hdr {
    uint32_t magic;
    uint32_t cap;
    uintptr_t self; /* address of the storage, as a check */
} cap_hdr;

static uint32_t storage_cap(const void *items, uint32_t len)
{
    if (!items) return 0;
    const cap_hdr *h = (const cap_hdr *)items - 1;
    if (h->magic == CAP_MAGIC && h->self == (uintptr_t)items && h->cap >= len) return h->cap;
    return len;
}

static void *storage_grow(arena *a, void *items, uint32_t len, size_t elem)
{
    uint32_t cap = storage_cap(items, len);
    if (len < cap) return items;
    uint32_t ncap = cap < 4 ? 4 : cap * 2;
    cap_hdr *h = arena_alloc(a, sizeof(cap_hdr) + (size_t)ncap * elem);
    void *n = h + 1;
    h->magic = CAP_MAGIC;
    h->cap = ncap;
    h->self = (uintptr_t)n;
    if (len) memcpy(n, items, (size_t)len * elem);
    return n;
}

json_val *json_new_string(arena *a, const char *s, size_t len)
{
    json_val *v = arena_alloc(a, sizeof *v);
    v->type = JSON_STRING;
    v->len = (uint32_t)len;
    v->u.s = arena_strndup(a, s, len);
    return v;
}

json_val *json_new_number(arena *a, const char *text)
{
    json_val *v = arena_alloc(a, sizeof *v);
    v->type = JSON_NUMBER;
    v->len = (uint32_t)strlen(text);
    v->u.s = arena_strndup(a, text, v->len);
    return v;
}

json_val *json_new_object(arena *a)
{
    json_val *v = arena_alloc(a, sizeof *v);
    v->type = JSON_OBJECT;
    v->len = 0;
    v->u.o = NULL;
    return v;
}

json_val *json_new_array(arena *a)
{
    json_val *v = arena_alloc(a, sizeof *v);
    v->type = JSON_ARRAY;
    v->len = 0;
    v->u.a = NULL;
    return v;
}

void json_obj_set(arena *a, json_val *obj, const char *key, const json_val *val)
{
    if (!obj || obj->type != JSON_OBJECT || !val) return;
    size_t klen = strlen(key);
    json_val *cur = json_getn(obj, key, klen);
    if (cur) {
        *cur = *val;
        return;
    }
    json_val copy = *val; /* val may live inside the storage being moved */
    obj->u.o = storage_grow(a, obj->u.o, obj->len, sizeof(json_kv));
    json_kv *m = &obj->u.o[obj->len++];
    m->key = arena_strndup(a, key, klen);
    m->key_len = (uint32_t)klen;
    m->val = copy;
}

void json_obj_remove(json_val *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT) return;
    size_t klen = strlen(key);
    uint32_t w = 0;
    for (uint32_t i = 0; i < obj->len; i++) {
        json_kv *m = &obj->u.o[i];
        if (m->key_len == klen && memcmp(m->key, key, klen) == 0) continue;
        if (w != i) obj->u.o[w] = *m;
        w++;
    }
    obj->len = w;
}

void json_arr_push(arena *a, json_val *arr, const json_val *val)
{
    if (!arr || arr->type != JSON_ARRAY || !val) return;
    json_val copy = *val;
    arr->u.a = storage_grow(a, arr->u.a, arr->len, sizeof(json_val));
    arr->u.a[arr->len++] = copy;
}

static void clone_into(arena *a, json_val *dst, const json_val *v)
{
    *dst = *v;
    switch (v->type) {
    case JSON_STRING:
    case JSON_NUMBER:
        dst->u.s = v->u.s ? arena_strndup(a, v->u.s, v->len) : NULL;
        break;
    case JSON_ARRAY:
        if (v->len) {
            dst->u.a = arena_alloc(a, (size_t)v->len * sizeof(json_val));
            for (uint32_t i = 0; i < v->len; i++) clone_into(a, &dst->u.a[i], &v->u.a[i]);
        } else {
            dst->u.a = NULL;
        }
        break;
    case JSON_OBJECT:
        if (v->len) {
            dst->u.o = arena_alloc(a, (size_t)v->len * sizeof(json_kv));
            for (uint32_t i = 0; i < v->len; i++) {
                dst->u.o[i].key = arena_strndup(a, v->u.o[i].key, v->u.o[i].key_len);
                dst->u.o[i].key_len = v->u.o[i].key_len;
                clone_into(a, &dst->u.o[i].val, &v->u.o[i].val);
            }
        } else {
            dst->u.o = NULL;
        }
        break;
    default:
        break;
    }
}

json_val *json_clone(arena *a, const json_val *v)
{
    if (!v) return NULL;
    json_val *d = arena_alloc(a, sizeof *d);
    clone_into(a, d, v);
    return d;
}
