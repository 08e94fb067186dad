/* bundle.c: batch and transaction Bundles (POST /fhir).
 * A transaction is validated entry by entry, urn:uuid fullUrls of POSTed resources get
 * server ids and references to them are rewritten, then every write goes to the store
 * as one atomic request: one bad entry -> nothing written, and the OperationOutcome names
 * the entry ("Bundle.entry[3]"). A batch runs each entry as its own request and reports
 * per-entry status. GET entries support read and vread. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry_op {
    int kind;               /* STORE_PUT, STORE_DELETE, 0 for GET */
    bool is_post;
    const char *type, *id;
    int64_t vread;          /* GET: version or 0 */
    int64_t if_match;
    json_val *res;
    http_prepared p;
    store_op op;
    fl_err err;             /* batch: this entry's failure */
    store_res got;          /* GET result once read */
    bool read_done;
} entry_op;

/* Runs a GET entry (read / vread); failures land in e->err. */
static void read_entry_now(http_req *req, entry_op *e)
{
    fl_err_clear(&e->err);
    store_read(req->store, req->a, e->type, e->id, e->vread, &e->got, &e->err);
    e->read_done = true;
}

/* Splits entry.request.url into type and id (and a vread version); false if malformed. */
static bool parse_entry_url(arena *a, const char *url, entry_op *e)
{
    const char *p = strstr(url, "/fhir/");
    p = p ? p + 6 : url;
    while (*p == '/') p++;
    if (strchr(p, '?')) return false; /* conditional interactions/search: not supported */
    char *copy = arena_strdup(a, p), *seg[5], *save = NULL;
    int n = 0;
    for (char *t = strtok_r(copy, "/", &save); t && n < 5; t = strtok_r(NULL, "/", &save))
        seg[n++] = t;
    if (n < 1 || n == 3 || n > 4 || !http_known_type(seg[0])) return false;
    e->type = seg[0];
    e->id = n >= 2 ? seg[1] : NULL;
    if (e->id && !http_valid_id(e->id, strlen(e->id))) return false;
    if (n == 4) {
        if (strcmp(seg[2], "_history")) return false;
        e->vread = strtoll(seg[3], NULL, 10);
        if (e->vread <= 0) return false;
    }
    return true;
}

/* Reads entry i's request and resource into e (no store access). */
static int read_entry(arena *a, json_val *entry, entry_op *e, const char *where, fl_err *err)
{
    json_val *rq = json_get(entry, "request");
    const char *method = json_get_str(rq, "method"), *url = json_get_str(rq, "url");
    e->if_match = -1;
    if (!method || !url) {
        fl_err_set(err, 400, where, "entry.request.method and entry.request.url are required");
        return -1;
    }
    if (!parse_entry_url(a, url, e)) {
        fl_err_set(err, 400, where, "unsupported request url '%.200s'", url);
        return -1;
    }
    const char *im = json_get_str(rq, "ifMatch");
    if (im && (e->if_match = fhir_parse_etag(im)) < 0) {
        fl_err_set(err, 400, where, "malformed ifMatch '%.60s'", im);
        return -1;
    }
    bool id_ok = true;
    if (!strcmp(method, "POST")) e->kind = STORE_PUT, e->is_post = true, id_ok = !e->id;
    else if (!strcmp(method, "PUT")) e->kind = STORE_PUT, id_ok = e->id && !e->vread;
    else if (!strcmp(method, "DELETE")) e->kind = STORE_DELETE, id_ok = e->id && !e->vread;
    else if (!strcmp(method, "GET")) e->kind = 0, id_ok = e->id != NULL;
    else {
        fl_err_set(err, 405, where, "method %.20s not supported in a Bundle", method);
        return -1;
    }
    if (!id_ok) {
        fl_err_set(err, 400, where, "url '%.200s' does not fit method %s", url, method);
        return -1;
    }
    e->res = json_get(entry, "resource");
    if (e->kind == STORE_PUT && !json_is(e->res, JSON_OBJECT)) {
        fl_err_set(err, 400, where, "entry.resource is required for %s", method);
        return -1;
    }
    if (e->is_post) {
        char u[37];
        http_new_id(u);
        e->id = arena_strdup(a, u);
    }
    return 0;
}

/* Checks the resource against the entry url and prepares it for the store. */
static int prepare_entry(entry_op *e, const char *where, fl_err *err)
{
    if (e->kind != STORE_PUT) return 0;
    const char *rt = json_get_str(e->res, "resourceType");
    if (!rt || strcmp(rt, e->type)) {
        fl_err_set(err, 400, where, "resourceType '%.60s' does not match the url type '%s'",
                   rt ? rt : "(missing)", e->type);
        return -1;
    }
    const char *bid = json_get_str(e->res, "id");
    if (!e->is_post && bid && strcmp(bid, e->id)) {
        fl_err_set(err, 400, where, "resource id '%.64s' does not match the url id '%s'", bid,
                   e->id);
        return -1;
    }
    if (e->is_post) json_obj_remove(e->res, "id");
    if (http_prepare(e->res, e->id, &e->p, where, err)) return -1;
    e->op = (store_op){.kind = STORE_PUT, .type = e->p.type, .id = e->p.id,
                       .if_match = e->if_match, .render = http_render, .render_ctx = &e->p};
    return 0;
}

/* fullUrl (urn:...) of each POST entry -> Type/newid, sorted for http_rewrite_refs. */
static size_t build_ref_map(arena *a, json_val *entries, entry_op *eo, const char ***from,
                            const char ***to)
{
    size_t n = entries->len, k = 0;
    const char **f = arena_alloc(a, (n + 1) * sizeof *f), **t = arena_alloc(a, (n + 1) * sizeof *t);
    for (size_t i = 0; i < n; i++) {
        const char *fu = json_get_str(&entries->u.a[i], "fullUrl");
        if (!fu || !eo[i].type || !eo[i].id) continue;
        if (eo[i].is_post || !strncmp(fu, "urn:", 4)) {
            f[k] = fu;
            t[k++] = arena_printf(a, "%s/%s", eo[i].type, eo[i].id);
        }
    }
    http_sort_refs(f, t, k);
    *from = f;
    *to = t;
    return k;
}

static const char *status_text(int st)
{
    switch (st) {
    case 200: return "200 OK";
    case 201: return "201 Created";
    case 204: return "204 No Content";
    case 400: return "400 Bad Request";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    case 409: return "409 Conflict";
    case 410: return "410 Gone";
    case 412: return "412 Precondition Failed";
    default: return st >= 500 ? "500 Internal Server Error" : "400 Bad Request";
    }
}

/* One response entry. For failures (err set) the outcome goes in response.outcome. */
static void response_entry(jw *w, http_req *req, entry_op *e, const fl_err *err)
{
    jw_obj_begin(w);
    int st = err && err->status ? err->status : 0;
    if (!st && e->kind == 0) {
        if (!e->read_done) read_entry_now(req, e);
        if (e->err.status) {
            st = e->err.status;
            err = &e->err;
        } else {
            jw_key(w, "resource");
            jw_raw(w, e->got.body, e->got.body_len);
        }
    }
    if (!st && e->kind == STORE_PUT) {
        jw_key(w, "resource");
        buf tmp = BUF_INIT;
        http_render(&e->p, e->op.version, e->op.ts, &tmp);
        jw_raw(w, tmp.p, tmp.len);
        buf_free(&tmp);
    }
    jw_key(w, "response");
    jw_obj_begin(w);
    if (!st) st = e->kind == STORE_DELETE ? 204 : e->kind == 0 ? 200 : e->op.created ? 201 : 200;
    jw_key(w, "status");
    jw_str(w, status_text(st));
    if (st < 300 && e->kind == STORE_PUT) {
        char t[40];
        jw_key(w, "location");
        jw_str(w, arena_printf(req->a, "%s/_history/%lld", arena_printf(req->a, "%s/%s", e->type,
                               e->id), (long long)e->op.version));
        jw_key(w, "etag");
        jw_str(w, arena_printf(req->a, "W/\"%lld\"", (long long)e->op.version));
        fl_time_format(e->op.ts, t);
        jw_key(w, "lastModified");
        jw_str(w, t);
    }
    if (err && err->status) {
        http_resp tmp = {0};
        http_outcome_err(&tmp, err);
        jw_key(w, "outcome");
        jw_raw(w, tmp.body.p, tmp.body.len);
        buf_free(&tmp.body);
    }
    jw_obj_end(w);
    jw_obj_end(w);
}

static void response_bundle(http_req *req, http_resp *resp, const char *type, entry_op *eo,
                            size_t n, bool batch)
{
    buf_reset(&resp->body);
    jw w;
    jw_init(&w, &resp->body);
    jw_obj_begin(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "Bundle");
    jw_key(&w, "type");
    jw_str(&w, type);
    jw_key(&w, "entry");
    jw_arr_begin(&w);
    for (size_t i = 0; i < n; i++) response_entry(&w, req, &eo[i], batch ? &eo[i].err : NULL);
    jw_arr_end(&w);
    jw_obj_end(&w);
    resp->status = 200;
}

/* Store errors name "op[k]"; turn that into the Bundle entry it came from. */
static void op_err_to_entry(fl_err *err, const size_t *op_entry, size_t n_ops)
{
    unsigned long k;
    if (sscanf(err->where, "op[%lu]", &k) == 1 && k < n_ops) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        fl_err_set(err, err->status, "", "%s", msg);
        snprintf(err->where, sizeof err->where, "Bundle.entry[%zu]", op_entry[k]);
    }
}

static void run_transaction(http_req *req, http_resp *resp, entry_op *eo, size_t n)
{
    store_op *ops = calloc(n ? n : 1, sizeof *ops);
    size_t *op_entry = calloc(n ? n : 1, sizeof *op_entry), k = 0;
    fl_err err;
    fl_err_clear(&err);
    for (size_t i = 0; i < n; i++) {
        if (eo[i].kind == STORE_DELETE)
            eo[i].op = (store_op){.kind = STORE_DELETE, .type = eo[i].type, .id = eo[i].id,
                                  .if_match = eo[i].if_match};
        if (!eo[i].kind) continue;
        ops[k] = eo[i].op;
        op_entry[k++] = i;
    }
    if (k && store_commit(req->store, ops, k, NULL, &err)) {
        op_err_to_entry(&err, op_entry, k);
        http_outcome_err(resp, &err);
    } else {
        for (size_t j = 0; j < k; j++) eo[op_entry[j]].op = ops[j];
        response_bundle(req, resp, "transaction-response", eo, n, false);
    }
    free(ops);
    free(op_entry);
}

static void run_batch(http_req *req, http_resp *resp, entry_op *eo, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        entry_op *e = &eo[i];
        if (e->err.status) continue;
        if (!e->kind) {
            read_entry_now(req, e); /* in order: a later write must not show here */
            continue;
        }
        if (e->kind == STORE_DELETE)
            e->op = (store_op){.kind = STORE_DELETE, .type = e->type, .id = e->id,
                               .if_match = e->if_match};
        if (store_commit(req->store, &e->op, 1, NULL, &e->err)) {
            char where[48];
            snprintf(where, sizeof where, "Bundle.entry[%zu]", i);
            snprintf(e->err.where, sizeof e->err.where, "%s", where);
        }
    }
    response_bundle(req, resp, "batch-response", eo, n, true);
}

void fhir_bundle(http_req *req, json_val *bundle, http_resp *resp)
{
    const char *type = json_get_str(bundle, "type");
    bool tx = type && !strcmp(type, "transaction"), batch = type && !strcmp(type, "batch");
    if (!tx && !batch) {
        http_outcome(resp, 400, "Bundle.type must be batch or transaction", "Bundle.type");
        return;
    }
    json_val *entries = json_get(bundle, "entry"), empty = {.type = JSON_ARRAY};
    if (!entries) entries = &empty;
    if (!json_is(entries, JSON_ARRAY)) {
        http_outcome(resp, 400, "Bundle.entry must be an array", "Bundle.entry");
        return;
    }
    size_t n = entries->len;
    entry_op *eo = calloc(n ? n : 1, sizeof *eo);
    fl_err err;
    fl_err_clear(&err);
    char where[48];
    /* Pass 1: requests and ids (so the reference map knows every new id). */
    for (size_t i = 0; i < n && FL_OK(&err); i++) {
        snprintf(where, sizeof where, "Bundle.entry[%zu]", i);
        if (read_entry(req->a, &entries->u.a[i], &eo[i], where, tx ? &err : &eo[i].err)) {
            if (!tx) eo[i].kind = 0, eo[i].err.status = eo[i].err.status ? eo[i].err.status : 400;
        }
    }
    const char **from = NULL, **to = NULL;
    size_t nmap = FL_OK(&err) ? build_ref_map(req->a, entries, eo, &from, &to) : 0;
    /* Pass 2: rewrite references, validate and prepare resources. */
    for (size_t i = 0; i < n && FL_OK(&err); i++) {
        if (eo[i].err.status || eo[i].kind != STORE_PUT) continue;
        snprintf(where, sizeof where, "Bundle.entry[%zu]", i);
        http_rewrite_refs(req->a, eo[i].res, from, to, nmap);
        if (prepare_entry(&eo[i], where, tx ? &err : &eo[i].err) && !tx) eo[i].kind = 0;
    }
    if (!FL_OK(&err)) http_outcome_err(resp, &err);
    else if (tx) run_transaction(req, resp, eo, n);
    else run_batch(req, resp, eo, n);
    for (size_t i = 0; i < n; i++) http_prepared_free(&eo[i].p);
    free(eo);
}
