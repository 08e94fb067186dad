/* sof: SQL-on-FHIR v2 ViewDefinitions: load + validate, compile to a plan, evaluate one
 * resource at a time into typed row batches (rows.h).
 *
 * Contract:
 *  - sof_compile() validates every rule of the spec and fails with an fl_err whose `where`
 *    names the offending element ("select[1].column[0].name"); status 400 for malformed
 *    JSON shapes / FHIRPath syntax, 422 for semantic errors (duplicate column, union
 *    mismatch, unknown resource type, undefined constant...).
 *  - The compiled view is immutable and owns a copy of everything it needs (the caller's
 *    JSON may go away). It may be evaluated by many threads at once, each with its own
 *    sof_ctx.
 *  - Column types: the `type` hint, else the FHIR R4 type of a plain element path, else the
 *    FHIRPath function's type, else string. boolean->BOOL, integer/positiveInt/unsignedInt
 *    ->INT32, integer64->INT64, decimal->DOUBLE, date->DATE, instant->TIMESTAMP, anything
 *    else (dateTime included: partial precision is legal) -> STRING. With SOF_KEEP_TEXT
 *    dates and instants stay STRING and decimals are DECIMAL (exact source text), which is
 *    what the conformance suite and JSON outputs want. Also in that mode, a column with no
 *    known primitive type holds each value's JSON text (7, "a", true, {...}) so text
 *    writers can emit values with their own JSON types (sof_view_json_columns()).
 *  - sof_eval() appends the rows of one resource to a batch built on sof_view_schema();
 *    resources of another type give no rows. Evaluation errors (a collection where a
 *    single value is required, a non-boolean where) fail with status 422.
 */
#ifndef FL_SOF_H
#define FL_SOF_H

#include "../fhirpath/fhirpath.h"
#include "../json/json.h"
#include "../rows/rows.h"

typedef struct sof_view sof_view;

enum { SOF_KEEP_TEXT = 1 };

sof_view *sof_compile(const json_val *view, unsigned flags, fl_err *err);
void sof_free(sof_view *v);

const rows_schema *sof_view_schema(const sof_view *v);
const char *sof_view_resource_type(const sof_view *v);
const char *sof_view_name(const sof_view *v);          /* "name" of the view or NULL */
/* Column whose path is exactly getAidboxTs() (top level), or -1. */
int sof_view_ts_column(const sof_view *v);
/* Top-level column holding the resource key (getResourceKey() or id), or -1. */
int sof_view_key_column(const sof_view *v);
/* Per column: true if it holds JSON text (see SOF_KEEP_TEXT); NULL when none does. */
const bool *sof_view_json_columns(const sof_view *v);
/* FHIR type name the column was declared or inferred with ("date", "string"...). */
const char *sof_view_column_fhir_type(const sof_view *v, size_t col);

/* Per-thread evaluation context. Set the server-context values before each resource when
 * known (commit ts, creation ts, txid); otherwise getAidboxTs() falls back to
 * meta.lastUpdated. */
typedef struct sof_ctx {
    arena *a;           /* temporaries, reset by sof_eval for each resource */
    bool has_ts, has_cts;
    int64_t ts_us, cts_us;
    const char *txid;
    fp_type_cache *tcache;   /* owned: memo of FHIR type lookups */
} sof_ctx;
sof_ctx *sof_ctx_new(void);
void sof_ctx_free(sof_ctx *c);

/* Appends the rows of `resource` to out. Returns the number of rows added, or -1 with err
 * set. */
long sof_eval(const sof_view *v, sof_ctx *c, const json_val *resource, rows_batch *out,
              fl_err *err);

#endif
