/* op_export.c: the HTTP surface of $viewdefinition-export — kick-off (Parameters ->
 * jobs_spec, synchronous 400 for bad input), the status URL
 * /fhir/ViewDefinition/$viewdefinition-export/status/<id> (GET: 202 + X-Progress while
 * running, 200 + manifest when finished; DELETE: cancel), on top of jobs/jobs.h. */
#include "op_view.h"
#include "../lake/databricks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CHUNKS 1 /* each chunk scans the whole type (see jobs.h): more only pays with idle cores */

#pragma GCC diagnostic ignored "-Wformat-truncation" /* cut element paths are fine */

static const char *status_id(const http_req *req)
{
    const char *p = strstr(req->path, "/status/");
    if (!p) return NULL;
    p += strlen("/status/");
    return *p && !strchr(p, '/') ? p : NULL;
}

static int do_status(op_view_ctx *c, const http_req *req, http_resp *resp, const char *id)
{
    fl_err err;
    fl_err_clear(&err);
    if (!strcmp(req->method, "DELETE")) {
        if (jobs_cancel(c->jobs, id, &err)) {
            http_outcome(resp, err.status == 404 ? 404 : err.status, err.status == 404 ? "unknown export id" : err.msg, NULL);
            return resp->status;
        }
        resp->status = 202;
        return 202;
    }
    if (strcmp(req->method, "GET")) {
        http_outcome(resp, 405, "use GET (status) or DELETE (cancel) on the status URL", NULL);
        return 405;
    }
    char progress[64] = "";
    int rc = jobs_status(c->jobs, id, &resp->body, progress, sizeof progress, &err);
    if (rc < 0) {
        http_outcome(resp, err.status == 404 ? 404 : 500,
                     err.status == 404 ? "unknown export id" : err.msg, NULL);
        return resp->status;
    }
    if (rc == JOBS_RUNNING) {
        http_resp_header(resp, "X-Progress", arena_strdup(req->a, progress));
        http_resp_header(resp, "Retry-After", "1");
        resp->status = 202;
        return 202;
    }
    resp->status = 200;
    return 200;
}

/* Fills one jobs_view from a `view` parameter (parts name, viewReference | viewResource,
 * tablePath). */
static bool one_view(const http_req *req, const json_val *p, size_t i, jobs_view *out,
                     fl_err *err)
{
    char where[80];
    const json_val *res = json_get(opv_param(p, "viewResource", 0), "resource");
    const char *ref = opv_value(req, opv_param(p, "viewReference", 0));
    const json_val *vj = NULL;
    if (json_is(res, JSON_OBJECT)) vj = res;
    else if (ref) {
        snprintf(where, sizeof where, "view[%zu].viewReference", i);
        vj = opv_read_view(req, ref, arena_strdup(req->a, where), err);
        if (!vj) return false;
    } else {
        snprintf(where, sizeof where, "view[%zu]", i);
        fl_err_set(err, 400, where, "a view needs a viewReference or a viewResource part");
        return false;
    }
    sof_view *v = sof_compile(vj, 0, err);
    if (!v) {
        char w[256];
        snprintf(w, sizeof w, "view[%zu].%s", i, err->where);
        memcpy(err->where, w, sizeof err->where);
        err->where[sizeof err->where - 1] = 0;
        if (err->status == 422) err->status = 400; /* an invalid view is bad input here */
        return false;
    }
    const char *name = opv_value(req, opv_param(p, "name", 0));
    if (!name) name = sof_view_name(v) ? arena_strdup(req->a, sof_view_name(v)) : json_get_str(vj, "id");
    sof_free(v);
    out->name = name;
    out->view = vj;
    out->table = opv_value(req, opv_param(p, "tablePath", 0));
    return true;
}

static bool parse_views(const http_req *req, const json_val *body, jobs_spec *sp, fl_err *err)
{
    size_t n = 0;
    while (body && opv_param(body, "view", n)) n++;
    if (!n && req->id) n = 1; /* ViewDefinition/{id}/$viewdefinition-export */
    sp->views = arena_calloc(req->a, (n + 1) * sizeof *sp->views);
    for (size_t i = 0; body && i < n && opv_param(body, "view", i); i++)
        if (!one_view(req, opv_param(body, "view", i), i, &sp->views[sp->n_views++], err))
            return false;
    if (!sp->n_views && req->id) {
        const json_val *vj = opv_read_view(req, req->id, "id", err);
        if (!vj) return false;
        sp->views[0] = (jobs_view){.name = req->id, .view = vj};
        sp->n_views = 1;
    }
    const char *table = opv_get(req, body, "tablePath");
    if (table && sp->n_views == 1 && !sp->views[0].table) sp->views[0].table = table;
    else if (table && sp->n_views > 1) {
        fl_err_set(err, 400, "tablePath", "with several views give tablePath as a part of each view");
        return false;
    }
    return true;
}

static bool parse_options(const http_req *req, const json_val *body, jobs_spec *sp, fl_err *err)
{
    const char *kind = opv_get(req, body, "kind"), *mode = opv_get(req, body, "writeMode");
    const char *since = opv_get(req, body, "_since"), *cc = opv_get(req, body, "chunkCount");
    const char *hdr = opv_get(req, body, "header");
    const char *dv = opv_get(req, body, "deletionVectors");
    if (kind && strcmp(kind, "data-lakehouse")) {
        fl_err_set(err, 400, "kind", "unknown kind '%s' (data-lakehouse, or none for files)", kind);
        return false;
    }
    sp->lakehouse = kind != NULL;
    bool managed = mode && !strcmp(mode, "managed-sql");
    if (mode && (!sp->lakehouse || (strcmp(mode, "external-direct") && !managed))) {
        fl_err_set(err, 400, "writeMode", "unsupported writeMode '%s' (external-direct or "
                                          "managed-sql, with kind data-lakehouse)", mode);
        return false;
    }
    if (managed) {   /* Databricks Unity Catalog; checked (token included) by jobs_submit */
        dbx_target *t = arena_calloc(req->a, sizeof *t);
        t->workspace = opv_get(req, body, "databricksWorkspaceUrl");
        t->warehouse = opv_get(req, body, "databricksWarehouseId");
        t->table = opv_get(req, body, "tableName");
        t->staging = opv_get(req, body, "stagingTablePath");
        sp->dbx = t;
    }
    sp->s3_endpoint = opv_get(req, body, "s3Endpoint");
    sp->aws_region = opv_get(req, body, "awsRegion");
    sp->aws_key_id_ref = opv_get(req, body, "awsAccessKeyId");
    sp->aws_secret_ref = opv_get(req, body, "awsSecretAccessKey");
    sp->format = opv_get(req, body, "_format");
    sp->header = !hdr || strcmp(hdr, "false");
    if (dv && strcmp(dv, "true") && strcmp(dv, "false")) {
        fl_err_set(err, 400, "deletionVectors", "deletionVectors must be a boolean");
        return false;
    }
    sp->copy_on_write = dv && !strcmp(dv, "false");
    if (since && fl_time_parse(since, strlen(since), &sp->since)) {
        fl_err_set(err, 400, "_since", "_since must be an instant, e.g. 2026-01-01T00:00:00Z");
        return false;
    }
    if (since && sp->since <= 0) sp->since = 1; /* the epoch itself: everything after it */
    sp->chunk_count = DEFAULT_CHUNKS;
    if (cc) {
        char *end;
        long v = strtol(cc, &end, 10);
        sp->chunk_count = *end || v < 1 || v > JOBS_MAX_CHUNKS ? -1 : (int)v;
        if (sp->chunk_count < 0) {
            fl_err_set(err, 400, "chunkCount", "chunkCount must be an integer in 1..%d", JOBS_MAX_CHUNKS);
            return false;
        }
    }
    sp->client_tracking_id = opv_get(req, body, "clientTrackingId");
    size_t np = 0;
    while (body && opv_param(body, "patient", np)) np++;
    sp->patients = arena_calloc(req->a, (np + 1) * sizeof *sp->patients);
    for (size_t i = 0; i < np; i++) {
        const char *p = opv_value(req, opv_param(body, "patient", i));
        if (!p || !*p) {
            fl_err_set(err, 400, "patient", "patient needs a valueReference or an id");
            return false;
        }
        sp->patients[sp->n_patients++] = strncmp(p, "Patient/", 8) ? p : p + 8;
    }
    return true;
}

static int kick_off(op_view_ctx *c, const http_req *req, http_resp *resp)
{
    if (strcmp(req->method, "POST")) {
        http_outcome(resp, 405, "kick off an export with POST (Prefer: respond-async)", NULL);
        return 405;
    }
    bool bad;
    const json_val *body = opv_body(req, resp, &bad);
    if (bad) return resp->status;
    jobs_spec sp = {0};
    fl_err err;
    fl_err_clear(&err);
    char id[37];
    if (!parse_views(req, body, &sp, &err) || !parse_options(req, body, &sp, &err) ||
        jobs_submit(c->jobs, &sp, id, &err)) {
        if (err.status != 404 && err.status < 500) err.status = 400;
        http_outcome_err(resp, &err);
        return resp->status;
    }
    const char *loc = arena_printf(req->a, "%s/ViewDefinition/$viewdefinition-export/status/%s",
                                   req->base, id);
    http_resp_header(resp, "Content-Location", loc);
    buf_printf(&resp->body, "{\"resourceType\":\"Parameters\",\"parameter\":["
                            "{\"name\":\"exportId\",\"valueString\":\"%s\"},"
                            "{\"name\":\"status\",\"valueCode\":\"in-progress\"},"
                            "{\"name\":\"location\",\"valueUri\":\"%s\"}]}", id, loc);
    resp->status = 202;
    return 202;
}

static int op_export(void *ctx, const http_req *req, http_resp *resp)
{
    op_view_ctx *c = ctx;
    if (strstr(req->path, "/status")) {
        const char *id = status_id(req);
        if (!id) {
            http_outcome(resp, 404, "unknown export id", NULL);
            return 404;
        }
        return do_status(c, req, resp, id);
    }
    return kick_off(c, req, resp);
}

void op_export_register(op_view_ctx *c)
{
    http_register_operation("viewdefinition-export", HTTP_OP_TYPE | HTTP_OP_INSTANCE,
                            "ViewDefinition", op_export, c);
    http_register_operation("viewdefinition-export", HTTP_OP_SYSTEM, NULL, op_export, c);
}
