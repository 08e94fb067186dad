/* rows.c: typed columnar row batches (see rows.h). */
#include "rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "fhirlake: out of memory (rows, %zu bytes)\n", n);
        abort();
    }
    return q;
}

const char *rows_type_name(rows_type t)
{
    static const char *names[] = {"string", "boolean", "integer", "long",
                                  "double", "decimal", "date",    "timestamp"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "?";
}

rows_schema *rows_schema_new(void)
{
    rows_schema *s = calloc(1, sizeof *s);
    if (!s) abort();
    return s;
}

void rows_schema_add(rows_schema *s, const char *name, rows_type t, bool list)
{
    s->f = xrealloc(s->f, (s->n + 1) * sizeof *s->f);
    s->f[s->n].name = strdup(name);
    if (!s->f[s->n].name) abort();
    s->f[s->n].type = t;
    s->f[s->n].list = list;
    s->n++;
}

int rows_schema_find(const rows_schema *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->f[i].name, name) == 0) return (int)i;
    return -1;
}

rows_schema *rows_schema_copy(const rows_schema *s)
{
    rows_schema *c = rows_schema_new();
    for (size_t i = 0; i < s->n; i++) rows_schema_add(c, s->f[i].name, s->f[i].type, s->f[i].list);
    return c;
}

void rows_schema_free(rows_schema *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) free(s->f[i].name);
    free(s->f);
    free(s);
}

rows_batch *rows_batch_new(const rows_schema *s)
{
    rows_batch *b = calloc(1, sizeof *b);
    if (!b) abort();
    b->schema = s;
    b->cols = calloc(s->n ? s->n : 1, sizeof *b->cols);
    if (!b->cols) abort();
    b->strings = arena_new(0);
    return b;
}

void rows_batch_clear(rows_batch *b)
{
    for (size_t i = 0; i < b->schema->n; i++) b->cols[i].n_vals = 0;
    b->n_rows = 0;
    arena_reset(b->strings);
}

void rows_batch_free(rows_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->schema->n; i++) {
        free(b->cols[i].vals);
        free(b->cols[i].valid);
        free(b->cols[i].offs);
    }
    free(b->cols);
    arena_free(b->strings);
    free(b);
}

static void grow_rows(rows_batch *b)
{
    size_t cap = b->cap_rows ? b->cap_rows * 2 : 256;
    for (size_t i = 0; i < b->schema->n; i++) {
        rows_col *c = &b->cols[i];
        if (b->schema->f[i].list) {
            c->offs = xrealloc(c->offs, (cap + 1) * sizeof *c->offs);
        } else {
            c->valid = xrealloc(c->valid, cap);
            c->vals = xrealloc(c->vals, cap * sizeof *c->vals);
            c->cap_vals = cap;
        }
    }
    b->cap_rows = cap;
}

void rows_begin_row(rows_batch *b)
{
    if (b->n_rows + 1 >= b->cap_rows) grow_rows(b);
    size_t r = b->n_rows;
    for (size_t i = 0; i < b->schema->n; i++) {
        rows_col *c = &b->cols[i];
        if (b->schema->f[i].list) {
            if (r == 0) c->offs[0] = 0;
            c->offs[r + 1] = (uint32_t)c->n_vals;
        } else {
            c->valid[r] = 0;
            c->vals[r].i = 0;
        }
    }
}

void rows_end_row(rows_batch *b)
{
    size_t r = b->n_rows;
    for (size_t i = 0; i < b->schema->n; i++) {
        rows_col *c = &b->cols[i];
        if (b->schema->f[i].list) c->offs[r + 1] = (uint32_t)c->n_vals;
        else c->n_vals = r + 1;
    }
    b->n_rows++;
}

static rows_value *slot(rows_batch *b, size_t col)
{
    rows_col *c = &b->cols[col];
    if (!b->schema->f[col].list) {
        c->valid[b->n_rows] = 1;
        return &c->vals[b->n_rows];
    }
    if (c->n_vals == c->cap_vals) {
        c->cap_vals = c->cap_vals ? c->cap_vals * 2 : 256;
        c->vals = xrealloc(c->vals, c->cap_vals * sizeof *c->vals);
    }
    return &c->vals[c->n_vals++];
}

void rows_set_int(rows_batch *b, size_t col, int64_t v) { slot(b, col)->i = v; }
void rows_set_double(rows_batch *b, size_t col, double v) { slot(b, col)->d = v; }

void rows_set_str(rows_batch *b, size_t col, const char *p, size_t n)
{
    rows_value *v = slot(b, col);
    v->s.p = n ? arena_strndup(b->strings, p, n) : "";
    v->s.len = (uint32_t)n;
}

void rows_set_null(rows_batch *b, size_t col)
{
    if (!b->schema->f[col].list) b->cols[col].valid[b->n_rows] = 0;
}

size_t rows_batch_bytes(const rows_batch *b)
{
    size_t n = arena_used(b->strings);
    for (size_t i = 0; i < b->schema->n; i++) n += b->cols[i].n_vals * sizeof(rows_value);
    return n + b->n_rows * b->schema->n;
}
