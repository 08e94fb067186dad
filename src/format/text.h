/* format/text: CSV, NDJSON and JSON writers for row batches (rows.h).
 *
 * Contract:
 *  - Streaming: text_begin() once, text_batch() per batch, text_end() once; output is
 *    appended to a caller's buf (flush it between batches to keep memory bounded).
 *  - Values: BOOL true/false, INT32/INT64 numbers, DOUBLE shortest round-trip number,
 *    DECIMAL its exact text as a JSON number, DATE "YYYY-MM-DD", TIMESTAMP RFC 3339 UTC,
 *    STRING as is. Null scalars are JSON null / an empty CSV field; list columns are JSON
 *    arrays (in CSV: the JSON array text in one field).
 *  - CSV follows RFC 4180 (CRLF-free: rows end with \n; fields with , " \r \n quoted).
 */
#ifndef FL_FORMAT_TEXT_H
#define FL_FORMAT_TEXT_H

#include "../json/json.h"
#include "../rows/rows.h"

typedef enum { TEXT_NDJSON = 0, TEXT_CSV, TEXT_JSON } text_format;

/* "ndjson", "csv", "json" (also "application/x-ndjson", "text/csv", "application/json");
 * -1 if unknown. */
int text_format_parse(const char *s);
const char *text_format_mime(text_format f);

typedef struct text_writer {
    text_format f;
    bool header;       /* CSV header line */
    size_t rows;       /* rows written so far */
    const bool *raw;   /* per column: STRING values are JSON text to emit as is; or NULL */
} text_writer;

void text_begin(text_writer *w, text_format f, const rows_schema *s, bool header, buf *out);
/* Optional, after text_begin: raw[col] marks STRING columns whose values are already JSON
 * text (sof_view_json_columns()): written as is in JSON/NDJSON; in CSV JSON strings are
 * unquoted. NULL = none. */
void text_set_raw(text_writer *w, const bool *raw);
void text_batch(text_writer *w, const rows_batch *b, buf *out);
void text_end(text_writer *w, buf *out);

/* One row as a JSON object (keys in schema order); raw as for text_begin. */
void text_row_json(jw *w, const rows_batch *b, const bool *raw, size_t row);
/* One cell as a JSON value (null, scalar or array). */
void text_cell_json(jw *w, const rows_batch *b, const bool *raw, size_t col, size_t row);

#endif
