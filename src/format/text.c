/* text.c: CSV / NDJSON / JSON writers over row batches (see text.h). */
#include <stdio.h>
#include <string.h>

#include "text.h"

int text_format_parse(const char *s)
{
    if (!s) return -1;
    if (!strcmp(s, "ndjson") || !strcmp(s, "application/x-ndjson") ||
        !strcmp(s, "application/fhir+ndjson") || !strcmp(s, "application/ndjson"))
        return TEXT_NDJSON;
    if (!strcmp(s, "csv") || !strcmp(s, "text/csv")) return TEXT_CSV;
    if (!strcmp(s, "json") || !strcmp(s, "application/json") || !strcmp(s, "application/fhir+json"))
        return TEXT_JSON;
    return -1;
}

const char *text_format_mime(text_format f)
{
    switch (f) {
    case TEXT_CSV: return "text/csv";
    case TEXT_JSON: return "application/json";
    default: return "application/x-ndjson";
    }
}

static void value_json(jw *w, rows_type t, bool raw, const rows_value *v)
{
    char tmp[48];
    if (raw && t == ROWS_STRING) {
        jw_raw(w, v->s.p, v->s.len);
        return;
    }
    switch (t) {
    case ROWS_BOOL: jw_bool(w, v->i != 0); return;
    case ROWS_INT32: case ROWS_INT64: jw_int(w, v->i); return;
    case ROWS_DOUBLE: jw_double(w, v->d); return;
    case ROWS_DECIMAL: jw_raw(w, v->s.p, v->s.len); return;
    case ROWS_DATE: {
        int64_t y;
        unsigned m, d;
        fl_civil_from_days(v->i, &y, &m, &d);
        int n = snprintf(tmp, sizeof tmp, "%04lld-%02u-%02u", (long long)y, m, d);
        jw_strn(w, tmp, (size_t)n);
        return;
    }
    case ROWS_TIMESTAMP: {
        int n = fl_time_format(v->i, tmp);
        jw_strn(w, tmp, (size_t)n);
        return;
    }
    case ROWS_STRING: jw_strn(w, v->s.p, v->s.len); return;
    }
    jw_null(w);
}

void text_cell_json(jw *w, const rows_batch *b, const bool *raw, size_t col, size_t row)
{
    const rows_field *f = &b->schema->f[col];
    bool r = raw && raw[col];
    const rows_col *c = &b->cols[col];
    if (f->list) {
        jw_arr_begin(w);
        for (uint32_t i = c->offs[row]; i < c->offs[row + 1]; i++) value_json(w, f->type, r, &c->vals[i]);
        jw_arr_end(w);
        return;
    }
    if (!c->valid[row]) { jw_null(w); return; }
    value_json(w, f->type, r, &c->vals[row]);
}

void text_row_json(jw *w, const rows_batch *b, const bool *raw, size_t row)
{
    jw_obj_begin(w);
    for (size_t c = 0; c < b->schema->n; c++) {
        jw_key(w, b->schema->f[c].name);
        text_cell_json(w, b, raw, c, row);
    }
    jw_obj_end(w);
}

static void csv_field(buf *out, const char *s, size_t n)
{
    bool q = false;
    for (size_t i = 0; i < n && !q; i++) q = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!q) { buf_put(out, s, n); return; }
    buf_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') buf_putc(out, '"');
        buf_putc(out, s[i]);
    }
    buf_putc(out, '"');
}

static void csv_cell(buf *out, const rows_batch *b, const bool *raw, size_t col, size_t row,
                     buf *tmp)
{
    const rows_field *f = &b->schema->f[col];
    if (rows_is_null(b, col, row)) return;
    if (!f->list && f->type == ROWS_STRING && raw && raw[col]) {
        const rows_value *v = rows_get(b, col, row);
        if (v->s.len && v->s.p[0] == '"') {   /* a JSON string: its value, unescaped */
            arena *a = arena_new(0);
            fl_err e = {0};
            json_val *j = json_parse(a, v->s.p, v->s.len, NULL, &e);
            if (j && j->type == JSON_STRING) csv_field(out, j->u.s, j->len);
            arena_free(a);
        } else csv_field(out, v->s.p, v->s.len);
        return;
    }
    if (!f->list && f->type == ROWS_STRING) {
        const rows_value *v = rows_get(b, col, row);
        csv_field(out, v->s.p, v->s.len);
        return;
    }
    buf_reset(tmp);
    jw w;
    jw_init(&w, tmp);
    text_cell_json(&w, b, raw, col, row);
    const char *s = tmp->p;
    size_t n = tmp->len;
    if (!f->list && n >= 2 && s[0] == '"') { s++; n -= 2; }   /* dates: unquoted */
    csv_field(out, s, n);
}

void text_set_raw(text_writer *w, const bool *raw) { w->raw = raw; }

void text_begin(text_writer *w, text_format f, const rows_schema *s, bool header, buf *out)
{
    w->f = f;
    w->raw = NULL;
    w->header = header;
    w->rows = 0;
    if (f == TEXT_JSON) buf_putc(out, '[');
    if (f == TEXT_CSV && header) {
        for (size_t c = 0; c < s->n; c++) {
            if (c) buf_putc(out, ',');
            csv_field(out, s->f[c].name, strlen(s->f[c].name));
        }
        buf_putc(out, '\n');
    }
}

void text_batch(text_writer *w, const rows_batch *b, buf *out)
{
    buf tmp = BUF_INIT;
    for (size_t r = 0; r < b->n_rows; r++) {
        if (w->f == TEXT_CSV) {
            for (size_t c = 0; c < b->schema->n; c++) {
                if (c) buf_putc(out, ',');
                csv_cell(out, b, w->raw, c, r, &tmp);
            }
            buf_putc(out, '\n');
        } else {
            if (w->f == TEXT_JSON && w->rows) buf_putc(out, ',');
            jw jwr;
            jw_init(&jwr, out);
            text_row_json(&jwr, b, w->raw, r);
            if (w->f == TEXT_NDJSON) buf_putc(out, '\n');
        }
        w->rows++;
    }
    buf_free(&tmp);
}

void text_end(text_writer *w, buf *out)
{
    if (w->f == TEXT_JSON) buf_puts(out, "]\n");
}
