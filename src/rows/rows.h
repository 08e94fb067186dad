/* rows: the typed columnar row batch every sink consumes (parquet, csv, ndjson, delta).
 *
 * Contract:
 *  - A schema is an ordered list of fields (name, type, list flag). The SQL-on-FHIR engine
 *    builds batches; sinks only read them.
 *  - Scalar column: one value per row plus a null flag. List column (a ViewDefinition
 *    column with collection: true): offs[row]..offs[row+1] index its elements in vals;
 *    elements are never null; a row with no elements is written as null.
 *  - Value encoding: BOOL -> i (0/1); INT32/INT64 -> i; DOUBLE -> d; DATE -> i (days since
 *    1970-01-01); TIMESTAMP -> i (microseconds since the epoch, UTC); STRING -> s (bytes,
 *    not NUL-terminated, owned by the batch's arena); DECIMAL -> s (exact decimal text).
 *  - Memory: column arrays are malloc-grown, string bytes go to the batch arena;
 *    rows_batch_clear() empties a batch for reuse without freeing; rows_batch_free()
 *    releases all. Appending never fails (aborts on OOM like the rest of util).
 *  - Building: for each row call rows_begin_row(), then set each column at most once
 *    (unset scalar columns are null), then rows_end_row().
 */
#ifndef FL_ROWS_H
#define FL_ROWS_H

#include "../util/util.h"

typedef enum {
    ROWS_STRING = 0,
    ROWS_BOOL,
    ROWS_INT32,
    ROWS_INT64,
    ROWS_DOUBLE,
    ROWS_DECIMAL,
    ROWS_DATE,
    ROWS_TIMESTAMP
} rows_type;

const char *rows_type_name(rows_type t);  /* "string", "boolean", "int", "long", ... */

typedef struct rows_field {
    char *name;       /* owned by the schema */
    rows_type type;
    bool list;
} rows_field;

typedef struct rows_schema {
    size_t n;
    rows_field *f;    /* owned by the schema */
} rows_schema;

rows_schema *rows_schema_new(void);
void rows_schema_add(rows_schema *s, const char *name, rows_type t, bool list);
int rows_schema_find(const rows_schema *s, const char *name); /* index or -1 */
rows_schema *rows_schema_copy(const rows_schema *s);
void rows_schema_free(rows_schema *s);

typedef struct rows_str {
    const char *p;
    uint32_t len;
} rows_str;

typedef union rows_value {
    int64_t i;
    double d;
    rows_str s;
} rows_value;

typedef struct rows_col {
    rows_value *vals;  /* scalar: one per row; list: flattened elements */
    uint8_t *valid;    /* scalar: 1 = set, per row (unused for lists) */
    uint32_t *offs;    /* list: n_rows + 1 offsets into vals */
    size_t n_vals;
    size_t cap_vals;
} rows_col;

typedef struct rows_batch {
    const rows_schema *schema;   /* borrowed; must outlive the batch */
    size_t n_rows;
    size_t cap_rows;
    rows_col *cols;              /* schema->n columns */
    arena *strings;              /* string bytes */
} rows_batch;

rows_batch *rows_batch_new(const rows_schema *s);
void rows_batch_clear(rows_batch *b);
void rows_batch_free(rows_batch *b);

void rows_begin_row(rows_batch *b);
void rows_end_row(rows_batch *b);
/* Scalar setters act on the current row; on a list column they append one element. */
void rows_set_int(rows_batch *b, size_t col, int64_t v);     /* BOOL/INT32/INT64/DATE/TIMESTAMP */
void rows_set_double(rows_batch *b, size_t col, double v);
void rows_set_str(rows_batch *b, size_t col, const char *p, size_t n); /* copied */
void rows_set_null(rows_batch *b, size_t col);               /* scalar only; explicit null */

/* Reading helpers for sinks. */
static inline bool rows_is_null(const rows_batch *b, size_t col, size_t row)
{
    const rows_col *c = &b->cols[col];
    if (b->schema->f[col].list) return c->offs[row + 1] == c->offs[row];
    return !c->valid[row];
}
static inline const rows_value *rows_get(const rows_batch *b, size_t col, size_t row)
{
    return &b->cols[col].vals[row];
}
/* Approximate bytes held (for cutting row groups / batches by size). */
size_t rows_batch_bytes(const rows_batch *b);

#endif
