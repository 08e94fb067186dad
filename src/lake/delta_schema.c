/* delta_schema.c: Delta schemas and per-file statistics. Owns the mapping between rows
 * types and Spark SQL type names in schemaString, and the stats JSON of add actions. */
#include "../json/json.h"
#include "delta.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *delta_type_name(rows_type t, int precision, int scale, char out[32])
{
    switch (t) {
    case ROWS_STRING: return "string";
    case ROWS_BOOL: return "boolean";
    case ROWS_INT32: return "integer";
    case ROWS_INT64: return "long";
    case ROWS_DOUBLE: return "double";
    case ROWS_DATE: return "date";
    case ROWS_TIMESTAMP: return "timestamp";
    case ROWS_DECIMAL:
        snprintf(out, 32, "decimal(%d,%d)", precision, scale);
        return out;
    }
    return "string";
}

void delta_field_json(buf *out, const char *name, rows_type t, bool list, int precision,
                      int scale)
{
    char tb[32];
    const char *tn = delta_type_name(t, precision, scale, tb);
    jw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "name");
    jw_str(&w, name);
    jw_key(&w, "type");
    if (list) {
        /* containsNull true: the rows layer writes optional list elements */
        jw_obj_begin(&w);
        jw_key(&w, "type");
        jw_str(&w, "array");
        jw_key(&w, "elementType");
        jw_str(&w, tn);
        jw_key(&w, "containsNull");
        jw_bool(&w, true);
        jw_obj_end(&w);
    } else jw_str(&w, tn);
    jw_key(&w, "nullable");
    jw_bool(&w, true);
    jw_key(&w, "metadata");
    jw_obj_begin(&w);
    jw_obj_end(&w);
    jw_obj_end(&w);
}

void delta_schema_string(buf *out, const rows_schema *s, int precision, int scale)
{
    buf_puts(out, "{\"type\":\"struct\",\"fields\":[");
    for (size_t i = 0; i < s->n; i++) {
        if (i) buf_putc(out, ',');
        delta_field_json(out, s->f[i].name, s->f[i].type, s->f[i].list, precision, scale);
    }
    buf_puts(out, "]}");
}

/* Maps a Spark primitive type name; false if rows has no such type. */
static bool map_type(const char *tn, delta_field *f)
{
    static const struct { const char *n; rows_type t; } m[] = {
        {"string", ROWS_STRING}, {"boolean", ROWS_BOOL}, {"integer", ROWS_INT32},
        {"long", ROWS_INT64},    {"double", ROWS_DOUBLE}, {"date", ROWS_DATE},
        {"timestamp", ROWS_TIMESTAMP}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (!strcmp(tn, m[i].n)) {
            f->type = m[i].t;
            return true;
        }
    int p, s;
    if (sscanf(tn, "decimal(%d,%d)", &p, &s) == 2 || sscanf(tn, "decimal(%d, %d)", &p, &s) == 2) {
        f->type = ROWS_DECIMAL;
        f->precision = p;
        f->scale = s;
        return true;
    }
    return false;
}

static void parse_field(arena *a, const json_val *fj, delta_field *f)
{
    buf b = BUF_INIT;
    json_write(&b, fj, false);
    f->json = arena_strndup(a, b.p, b.len);
    buf_free(&b);
    f->name = arena_strdup(a, json_get_str(fj, "name"));
    f->type = ROWS_STRING;
    f->list = false;
    f->supported = false;
    json_val *t = json_get(fj, "type");
    if (json_is(t, JSON_STRING)) f->supported = map_type(t->u.s, f);
    else if (json_is(t, JSON_OBJECT)) {
        const char *kind = json_get_str(t, "type");
        const char *et = json_get_str(t, "elementType");
        if (kind && !strcmp(kind, "array") && et) {
            f->list = true;
            f->supported = map_type(et, f);
        }
    }
}

int delta_schema_parse(arena *a, const char *schema_string, delta_field **out, size_t *n,
                       fl_err *err)
{
    arena *tmp = arena_new(0);
    json_val *j = json_parse(tmp, schema_string, strlen(schema_string), NULL, err);
    json_val *fs = j ? json_get(j, "fields") : NULL;
    if (!json_is(fs, JSON_ARRAY)) {
        if (FL_OK(err)) fl_err_set(err, 422, "metaData.schemaString", "schema has no fields");
        else fl_err_set(err, 422, "metaData.schemaString", "bad schemaString: %s", err->msg);
        arena_free(tmp);
        return -1;
    }
    *n = fs->len;
    *out = arena_calloc(a, (fs->len + 1) * sizeof **out);
    for (uint32_t i = 0; i < fs->len; i++) {
        if (!json_get_str(&fs->u.a[i], "name")) {
            fl_err_set(err, 422, "metaData.schemaString", "schema field %u has no name", i);
            arena_free(tmp);
            return -1;
        }
        parse_field(a, &fs->u.a[i], &(*out)[i]);
    }
    arena_free(tmp);
    return 0;
}

/* ---- stats ---- */
/* Strings up to STR_FULL_CHARS code points are kept whole (FHIR ids are UUIDs, 36 chars:
 * merge needs their max to skip files); a longer min is cut to STR_STATS_CHARS (a prefix is
 * still a lower bound) and a longer max is left out (a cut max would be no bound). */
#define STR_STATS_CHARS 32
#define STR_FULL_CHARS 64

/* Byte length of the first `chars` UTF-8 code points of s[0..n). */
static size_t utf8_prefix(const char *s, size_t n, size_t chars, size_t *count)
{
    size_t i = 0, c = 0;
    while (i < n && c < chars) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        c++;
    }
    while (i < n && c == chars && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    *count = c + (i < n ? 1 : 0);  /* > chars means truncated */
    return i;
}

static void ts_ms_text(int64_t us, bool round_up, char out[48])
{
    int64_t ms = us / 1000 - (us % 1000 < 0 ? 1 : 0);
    if (round_up && ms * 1000 != us) ms++;
    int64_t secs = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);
    int64_t frac = ms - secs * 1000;
    char t[40];
    fl_time_format(secs * 1000000, t);
    size_t n = strlen(t);
    if (n && t[n - 1] == 'Z') t[n - 1] = 0;
    snprintf(out, 48, "%s.%03dZ", t, (int)frac);
}

/* Writes one bound; returns false when this column gets no bound on that side. */
static bool stat_value(jw *w, const pq_col_stats *c, bool is_max)
{
    const rows_value *v = is_max ? &c->max : &c->min;
    char t[48];
    switch (c->type) {
    case ROWS_STRING: {
        size_t cnt, k = utf8_prefix(v->s.p, v->s.len, STR_FULL_CHARS, &cnt);
        if (cnt > STR_FULL_CHARS) {
            if (is_max) return false;
            k = utf8_prefix(v->s.p, v->s.len, STR_STATS_CHARS, &cnt);
        }
        jw_key(w, c->name);
        jw_strn(w, v->s.p, k);
        return true;
    }
    case ROWS_INT32:
    case ROWS_INT64:
        jw_key(w, c->name);
        jw_int(w, v->i);
        return true;
    case ROWS_DOUBLE:
        if (!isfinite(v->d)) return false;
        jw_key(w, c->name);
        jw_double(w, v->d);
        return true;
    case ROWS_DATE: {
        int64_t y;
        unsigned m, d;
        fl_civil_from_days(v->i, &y, &m, &d);
        snprintf(t, sizeof t, "%04lld-%02u-%02u", (long long)y, m, d);
        jw_key(w, c->name);
        jw_str(w, t);
        return true;
    }
    case ROWS_TIMESTAMP:
        ts_ms_text(v->i, is_max, t);  /* millisecond bounds, widened outwards */
        jw_key(w, c->name);
        jw_str(w, t);
        return true;
    default:
        return false;  /* booleans, decimals: null counts only */
    }
}

void delta_stats_json(const pq_file_stats *st, buf *out)
{
    jw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "numRecords");
    jw_int(&w, st->num_rows);
    for (int side = 0; side < 2; side++) {
        jw_key(&w, side ? "maxValues" : "minValues");
        jw_obj_begin(&w);
        for (size_t i = 0; i < st->n_cols; i++) {
            const pq_col_stats *c = &st->cols[i];
            if (c->list || !c->has_minmax) continue;
            stat_value(&w, c, side == 1);
        }
        jw_obj_end(&w);
    }
    jw_key(&w, "nullCount");
    jw_obj_begin(&w);
    for (size_t i = 0; i < st->n_cols; i++) {
        jw_key(&w, st->cols[i].name);
        jw_int(&w, st->cols[i].null_count);
    }
    jw_obj_end(&w);
    jw_obj_end(&w);
}

bool delta_stats_str_range(const delta_add *f, const char *col, arena *a, const char **min,
                           const char **max)
{
    if (!f->stats) return false;
    fl_err e = {0};
    json_val *j = json_parse(a, f->stats, strlen(f->stats), NULL, &e);
    if (!j) return false;
    int64_t nr;
    json_val *n = json_get(j, "numRecords");
    json_val *nc = json_get(json_get(j, "nullCount"), col);
    int64_t nulls;
    /* An all-null key column has no min/max but holds no keys either. */
    if (n && json_num_int64(n, &nr) == 0 && nc && json_num_int64(nc, &nulls) == 0 &&
        nulls == nr) {
        *min = "\x01";
        *max = "";
        return true;
    }
    *min = json_get_str(json_get(j, "minValues"), col);
    *max = json_get_str(json_get(j, "maxValues"), col);
    return *min && *max;
}

int64_t delta_stats_num_records(const delta_add *f)
{
    if (!f->stats) return -1;
    const char *p = strstr(f->stats, "\"numRecords\":");
    return p ? strtoll(p + 13, NULL, 10) : -1;
}
