/* op_view.h: the SQL-on-FHIR operations of the server room (owned apart from its core):
 *   ViewDefinition validation on create/update (sof_compile, 400/422 naming the element),
 *   $viewdefinition-run / $run (op_view.c), $materialize (op_materialize.c),
 *   $viewdefinition-export + status polling / cancel (op_export.c, engine in jobs/).
 * Also the request helpers those files share (Parameters access, view resolution).
 */
#ifndef FL_OP_VIEW_H
#define FL_OP_VIEW_H

#include "../jobs/jobs.h"
#include "../sof/sof.h"
#include "server.h"

typedef struct op_view_ctx {
    store *s;
    char *data;              /* data directory (sof.db, lake/, exports/ live there) */
    jobs_engine *jobs;
    void *mat;               /* op_materialize.c's state */
} op_view_ctx;

/* Registers the validator and every operation above and starts the export engine (which
 * resumes unfinished jobs). Call before http_start(). NULL with err on failure. */
op_view_ctx *op_view_register(store *s, const char *data_dir, fl_err *err);
/* Stops the export workers; call after http_stop() and before store_close(). */
void op_view_shutdown(op_view_ctx *c);

/* ---- shared by op_*.c ---- */
/* The request's Parameters body (POST with a JSON body), or NULL when there is none.
 * On a malformed body fills resp with 400 and sets *bad. */
const json_val *opv_body(const http_req *req, http_resp *resp, bool *bad);
/* The i-th parameter called name in a Parameters resource (or part list), or NULL. */
const json_val *opv_param(const json_val *params, const char *name, size_t i);
/* A parameter's primitive value as text (value[x] of string-like, number and boolean
 * types; valueReference.reference), or NULL. */
const char *opv_value(const http_req *req, const json_val *p);
/* First value of name: from the body Parameters, else the query string. */
const char *opv_get(const http_req *req, const json_val *body, const char *name);
/* Reads ViewDefinition/<id> from a reference ("ViewDefinition/x", "x", or an absolute
 * URL ending in ViewDefinition/x). err 400/404 naming `where`. */
const json_val *opv_read_view(const http_req *req, const char *ref, const char *where,
                              fl_err *err);
/* The view a request names: the instance (ViewDefinition/{id}/$op), else viewResource,
 * else viewReference (body or query). err 400 when none is given. */
const json_val *opv_request_view(const http_req *req, const json_val *body, fl_err *err);

void op_export_register(op_view_ctx *c);
int op_materialize_register(op_view_ctx *c, fl_err *err);
void op_materialize_shutdown(op_view_ctx *c);

#endif
