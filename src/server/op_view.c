/* op_view.c: ViewDefinition validation on write, $viewdefinition-run (alias $run) at system,
 * type and instance level, the Parameters/view helpers the other op_*.c share, and the
 * registration of all SQL-on-FHIR operations (op_view.h). */
#include "op_view.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../format/parquet.h"
#include "../format/text.h"

#pragma GCC diagnostic ignored "-Wformat-truncation" /* cut messages are fine */

#define FMT_PARQUET 100
#define RUN_BATCH 1024

/* ---- Parameters helpers ---- */
const json_val *opv_body(const http_req *req, http_resp *resp, bool *bad)
{
    *bad = false;
    if (strcmp(req->method, "POST") || !req->body_len) return NULL;
    fl_err err;
    fl_err_clear(&err);
    json_val *v = json_parse(req->a, req->body, req->body_len, NULL, &err);
    const char *rt = v ? json_get_str(v, "resourceType") : NULL;
    if (!v || !rt || strcmp(rt, "Parameters")) {
        http_outcome(resp, 400, v ? "the body must be a Parameters resource" : err.msg,
                     v ? "resourceType" : NULL);
        *bad = true;
        return NULL;
    }
    return v;
}

const json_val *opv_param(const json_val *params, const char *name, size_t i)
{
    const json_val *arr = json_get(params, "parameter");
    if (!json_is(arr, JSON_ARRAY)) arr = json_get(params, "part");
    for (uint32_t k = 0; json_is(arr, JSON_ARRAY) && k < arr->len; k++) {
        const char *n = json_get_str(&arr->u.a[k], "name");
        if (n && !strcmp(n, name) && i-- == 0) return &arr->u.a[k];
    }
    return NULL;
}

const char *opv_value(const http_req *req, const json_val *p)
{
    if (!p) return NULL;
    for (uint32_t k = 0; json_is(p, JSON_OBJECT) && k < p->len; k++) {
        const json_kv *kv = &p->u.o[k];
        if (strncmp(kv->key, "value", 5)) continue;
        if (kv->val.type == JSON_STRING || kv->val.type == JSON_NUMBER)
            return arena_strndup(req->a, kv->val.u.s, kv->val.len);
        if (kv->val.type == JSON_TRUE) return "true";
        if (kv->val.type == JSON_FALSE) return "false";
        if (kv->val.type == JSON_OBJECT) return json_get_str(&kv->val, "reference");
    }
    return NULL;
}

const char *opv_get(const http_req *req, const json_val *body, const char *name)
{
    const char *v = body ? opv_value(req, opv_param(body, name, 0)) : NULL;
    return v ? v : http_param_get(req, name);
}

const json_val *opv_read_view(const http_req *req, const char *ref, const char *where,
                              fl_err *err)
{
    const char *id = strstr(ref, "ViewDefinition/");
    id = id ? id + strlen("ViewDefinition/") : ref;
    size_t n = strcspn(id, "/|");
    if (!http_valid_id(id, n)) {
        fl_err_set(err, 400, where, "bad view reference '%s' (expected ViewDefinition/<id>)", ref);
        return NULL;
    }
    store_res r;
    if (store_read(req->store, req->a, "ViewDefinition", arena_strndup(req->a, id, n), 0, &r,
                   err)) {
        fl_err_set(err, 400, where, "unknown view: ViewDefinition/%.*s %s", (int)n, id,
                   err->status == 410 ? "is deleted" : "does not exist");
        return NULL;
    }
    json_val *v = json_parse(req->a, r.body, r.body_len, NULL, err);
    if (!v) fl_err_set(err, 500, where, "stored ViewDefinition is not JSON");
    return v;
}

const json_val *opv_request_view(const http_req *req, const json_val *body, fl_err *err)
{
    if (req->id) return opv_read_view(req, req->id, "id", err);
    const json_val *p = body ? opv_param(body, "viewResource", 0) : NULL;
    if (p) {
        const json_val *res = json_get(p, "resource");
        if (!json_is(res, JSON_OBJECT)) {
            fl_err_set(err, 400, "viewResource", "viewResource must carry a resource");
            return NULL;
        }
        return res;
    }
    const char *ref = opv_get(req, body, "viewReference");
    if (ref) return opv_read_view(req, ref, "viewReference", err);
    fl_err_set(err, 400, "viewReference",
               "no view given: use viewReference, viewResource or ViewDefinition/{id}/$op");
    return NULL;
}

/* ---- validation hook ---- */
static int validate_view(void *ctx, const json_val *res, fl_err *err)
{
    (void)ctx;
    sof_view *v = sof_compile(res, 0, err);
    if (!v) return -1;
    sof_free(v);
    return 0;
}

/* ---- $viewdefinition-run ---- */
typedef struct run {
    const http_req *req;
    const sof_view *v;
    sof_ctx *ctx;
    arena *pa;
    rows_batch *b;
    int fmt;
    text_writer tw;
    pq_writer *pq;
    buf *out;
    long limit, rows;
    int64_t since;
    const char **patients;
    size_t n_patients;
    fl_err err;
} run;

static bool run_flush(run *r)
{
    if (!r->b->n_rows) return true;
    bool ok = true;
    if (r->pq) ok = pq_write_batch(r->pq, r->b, &r->err) == 0;
    else text_batch(&r->tw, r->b, r->out);
    rows_batch_clear(r->b);
    return ok;
}

static bool ref_match(const json_val *res, const char *key, const run *r)
{
    const char *ref = json_get_str(json_get(res, key), "reference");
    for (size_t i = 0; ref && !strncmp(ref, "Patient/", 8) && i < r->n_patients; i++)
        if (!strcmp(ref + 8, r->patients[i])) return true;
    return false;
}

static bool patient_ok(const run *r, const json_val *res)
{
    if (!r->n_patients) return true;
    const char *rt = json_get_str(res, "resourceType"), *id = json_get_str(res, "id");
    if (rt && id && !strcmp(rt, "Patient")) {
        for (size_t i = 0; i < r->n_patients; i++)
            if (!strcmp(id, r->patients[i])) return true;
        return false;
    }
    return ref_match(res, "subject", r) || ref_match(res, "patient", r) ||
           ref_match(res, "beneficiary", r);
}

/* Evaluates one resource; returns false to stop (error or _limit reached). */
static bool run_one(run *r, const json_val *res, const char *where)
{
    if (!patient_ok(r, res)) return true;
    size_t before = r->b->n_rows;
    long n = sof_eval(r->v, r->ctx, res, r->b, &r->err);
    if (n < 0) {
        char w[256];
        snprintf(w, sizeof w, "%s%s%s", where, r->err.where[0] ? "." : "", r->err.where);
        snprintf(r->err.where, sizeof r->err.where, "%s", w);
        return false;
    }
    if (r->limit >= 0 && r->rows + n > r->limit) { /* drop the rows past the limit */
        r->b->n_rows = before + (size_t)(r->limit - r->rows);
        n = r->limit - r->rows;
    }
    r->rows += n;
    if (r->b->n_rows >= RUN_BATCH && !run_flush(r)) return false;
    return r->limit < 0 || r->rows < r->limit;
}

static int on_stored(void *ctx, const store_res *sr)
{
    run *r = ctx;
    if (sr->ts <= r->since) return 0;
    arena_reset(r->pa);
    json_val *res = json_parse(r->pa, sr->body, sr->body_len, NULL, &r->err);
    if (!res) return 1;
    char txid[24];
    snprintf(txid, sizeof txid, "%lld", (long long)sr->txid);
    r->ctx->has_ts = true;
    r->ctx->ts_us = sr->ts;
    r->ctx->has_cts = sr->cts > 0; /* getAidboxCts(): ts of version 1 */
    r->ctx->cts_us = sr->cts;
    r->ctx->txid = txid;
    char where[200];
    snprintf(where, sizeof where, "%s/%s", sr->type, sr->id);
    return run_one(r, res, where) ? 0 : 1;
}

static int run_format(const char *f)
{
    if (!f) return TEXT_JSON;
    if (!strcmp(f, "parquet") || !strcmp(f, "application/vnd.apache.parquet")) return FMT_PARQUET;
    if (!strcmp(f, "application/fhir+json")) return TEXT_JSON;
    return text_format_parse(f);
}

static bool run_params(run *r, const json_val *body, http_resp *resp)
{
    const http_req *req = r->req;
    const char *lim = opv_get(req, body, "_limit"), *since = opv_get(req, body, "_since");
    r->limit = -1;
    if (lim) {
        char *end;
        r->limit = strtol(lim, &end, 10);
        if (*end || r->limit < 1) {
            http_outcome(resp, 400, "_limit must be a positive integer", "_limit");
            return false;
        }
    }
    if (since && fl_time_parse(since, strlen(since), &r->since)) {
        http_outcome(resp, 400, "_since must be an instant (e.g. 2026-01-01T00:00:00Z)", "_since");
        return false;
    }
    size_t np = 0;
    for (size_t i = 0; i < req->n_params; i++) np += !strcmp(req->params[i].key, "patient");
    for (size_t i = 0; body && opv_param(body, "patient", i); i++) np++;
    r->patients = arena_calloc(req->a, (np + 1) * sizeof *r->patients);
    for (size_t i = 0; body && opv_param(body, "patient", i); i++)
        r->patients[r->n_patients++] = opv_value(req, opv_param(body, "patient", i));
    for (size_t i = 0; i < req->n_params; i++)
        if (!strcmp(req->params[i].key, "patient")) r->patients[r->n_patients++] = req->params[i].val;
    for (size_t i = 0; i < r->n_patients; i++) {
        const char *p = r->patients[i];
        if (!p) {
            http_outcome(resp, 400, "patient needs a reference or id", "patient");
            return false;
        }
        if (!strncmp(p, "Patient/", 8)) r->patients[i] = p + 8;
    }
    return true;
}

static void run_output(run *r, const json_val *body, http_resp *resp)
{
    const http_req *req = r->req;
    bool inline_res = body && opv_param(body, "resource", 0);
    if (inline_res) {
        for (size_t i = 0; opv_param(body, "resource", i); i++) {
            const json_val *res = json_get(opv_param(body, "resource", i), "resource");
            char where[64];
            snprintf(where, sizeof where, "resource[%zu]", i);
            if (!json_is(res, JSON_OBJECT)) {
                fl_err_set(&r->err, 400, where, "resource parameter without a resource");
                break;
            }
            r->ctx->has_ts = false;
            if (!run_one(r, res, where)) break;
        }
    } else {
        store_scan(req->store, sof_view_resource_type(r->v), store_max_ts(req->store), 0,
                   on_stored, r, &r->err);
    }
    if (FL_OK(&r->err)) run_flush(r);
    if (!FL_OK(&r->err)) {
        buf_reset(&resp->body);
        http_outcome_err(resp, &r->err);
    }
}

static int parquet_body(run *r, http_resp *resp, bool open)
{
    static const char tmpl[] = "/tmp/fhirlake-run-XXXXXX";
    static __thread char path[sizeof tmpl];
    if (open) {
        memcpy(path, tmpl, sizeof tmpl);
        int fd = mkstemp(path);
        if (fd < 0) return -1;
        close(fd);
        pq_options o;
        pq_options_init(&o);
        r->pq = pq_writer_open(path, sof_view_schema(r->v), &o, &r->err);
        return r->pq ? 0 : -1;
    }
    int rc = -1;
    if (FL_OK(&r->err) && pq_writer_close(r->pq, NULL, &r->err) == 0) {
        FILE *f = fopen(path, "rb");
        char chunk[65536];
        size_t n;
        buf_reset(&resp->body);
        while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_put(&resp->body, chunk, n);
        if (f) fclose(f), rc = 0;
    } else if (r->pq && !FL_OK(&r->err)) {
        pq_writer_abort(r->pq);
    }
    unlink(path);
    return rc;
}

static int op_run(void *ctx, const http_req *req, http_resp *resp)
{
    (void)ctx;
    bool bad;
    const json_val *body = opv_body(req, resp, &bad);
    if (bad) return resp->status;
    run r = {.req = req};
    fl_err_clear(&r.err);
    const json_val *vj = opv_request_view(req, body, &r.err);
    const char *f = opv_get(req, body, "_format");
    r.fmt = run_format(f);
    if (r.fmt < 0) {
        http_outcome(resp, 400, "unknown _format (json, ndjson, csv, parquet)", "_format");
        return resp->status;
    }
    sof_view *v = vj ? sof_compile(vj, r.fmt == FMT_PARQUET ? 0 : SOF_KEEP_TEXT, &r.err) : NULL;
    if (!v) {
        http_outcome_err(resp, &r.err);
        return resp->status;
    }
    if (!run_params(&r, body, resp)) {
        sof_free(v);
        return resp->status;
    }
    const char *hdr = opv_get(req, body, "header");
    r.v = v;
    r.ctx = sof_ctx_new();
    r.pa = arena_new(0);
    r.b = rows_batch_new(sof_view_schema(v));
    r.out = &resp->body;
    resp->status = 200;
    if (r.fmt == FMT_PARQUET) {
        if (parquet_body(&r, resp, true)) http_outcome_err(resp, &r.err);
        else {
            run_output(&r, body, resp);
            if (parquet_body(&r, resp, false) == 0) resp->content_type = "application/vnd.apache.parquet";
            else if (FL_OK(&r.err)) http_outcome(resp, 500, "cannot write parquet output", NULL);
            else http_outcome_err(resp, &r.err);
        }
    } else {
        text_begin(&r.tw, (text_format)r.fmt, sof_view_schema(v), !hdr || strcmp(hdr, "false"),
                   &resp->body);
        text_set_raw(&r.tw, sof_view_json_columns(v));
        run_output(&r, body, resp);
        if (resp->status == 200) {
            text_end(&r.tw, &resp->body);
            resp->content_type = r.fmt == TEXT_JSON ? "application/json" : text_format_mime((text_format)r.fmt);
        }
    }
    rows_batch_free(r.b);
    arena_free(r.pa);
    sof_ctx_free(r.ctx);
    sof_free(v);
    return resp->status;
}

/* ---- registration ---- */
op_view_ctx *op_view_register(store *s, const char *data_dir, fl_err *err)
{
    op_view_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->s = s;
    char abs[PATH_MAX];
    c->data = strdup(realpath(data_dir, abs) ? abs : data_dir);
    http_register_type("ViewDefinition");
    http_register_validator("ViewDefinition", validate_view, c);
    static const char *const run_names[] = {"viewdefinition-run", "run"};
    for (int i = 0; i < 2; i++) {
        http_register_operation(run_names[i], HTTP_OP_SYSTEM, NULL, op_run, c);
        http_register_operation(run_names[i], HTTP_OP_TYPE | HTTP_OP_INSTANCE, "ViewDefinition",
                                op_run, c);
    }
    c->jobs = jobs_start(s, c->data, 0, err);
    if (!c->jobs || op_materialize_register(c, err)) {
        op_view_shutdown(c);
        return NULL;
    }
    op_export_register(c);
    return c;
}

void op_view_shutdown(op_view_ctx *c)
{
    if (!c) return;
    jobs_stop(c->jobs);
    op_materialize_shutdown(c);
    free(c->data);
    free(c);
}
