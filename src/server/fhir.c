/* fhir.c: FHIR R4 REST routing under /fhir and the interactions on one resource type —
 * create, read, vread, update, delete, history (system, type, instance), search,
 * metadata, $load — plus the operation registry other rooms add $operations to. */
#include "internal.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- operation registry ---- */
typedef struct op_entry {
    const char *name;
    int levels;
    const char *type;
    http_op_fn fn;
    void *ctx;
} op_entry;
static op_entry ops[64];
static int n_ops;
static pthread_mutex_t ops_mu = PTHREAD_MUTEX_INITIALIZER;

int http_register_operation(const char *name, int levels, const char *type, http_op_fn fn,
                            void *ctx)
{
    pthread_mutex_lock(&ops_mu);
    int rc = -1;
    if (n_ops < (int)(sizeof ops / sizeof ops[0])) {
        ops[n_ops++] = (op_entry){name, levels, type, fn, ctx};
        rc = 0;
    }
    pthread_mutex_unlock(&ops_mu);
    return rc;
}

static const op_entry *find_op(const char *name, int level, const char *type)
{
    for (int i = 0; i < n_ops; i++) {
        const op_entry *o = &ops[i];
        if (!strcmp(o->name, name) && (o->levels & level) &&
            (!o->type || (type && !strcmp(o->type, type))))
            return o;
    }
    return NULL;
}

/* ---- small helpers ---- */
int64_t fhir_parse_etag(const char *h)
{
    if (!h) return 0;
    while (*h == ' ') h++;
    if (!strncmp(h, "W/", 2)) h += 2;
    if (*h == '"') h++;
    char *end;
    long long v = strtoll(h, &end, 10);
    if (end == h || v < 0) return -2;
    if (*end == '"') end++;
    while (*end == ' ') end++;
    return *end ? -2 : v;
}

static void http_date(int64_t ts, char *out, size_t n)
{
    time_t t = (time_t)(ts / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

void fhir_put_resource_headers(http_req *req, http_resp *resp, const char *type,
                               const char *id, int64_t version, int64_t ts, bool location)
{
    char date[64];
    http_date(ts, date, sizeof date);
    http_resp_header(resp, "ETag", arena_printf(req->a, "W/\"%lld\"", (long long)version));
    http_resp_header(resp, "Last-Modified", arena_strdup(req->a, date));
    if (location)
        http_resp_header(resp, "Location",
                         arena_printf(req->a, "%s/%s/%s/_history/%lld", req->base, type, id,
                                      (long long)version));
}

static json_val *parse_body(http_req *req, http_resp *resp)
{
    fl_err err;
    fl_err_clear(&err);
    if (!req->body_len) {
        http_outcome(resp, 400, "request body is empty: a JSON resource is required", NULL);
        return NULL;
    }
    json_val *v = json_parse(req->a, req->body, req->body_len, NULL, &err);
    if (!v) {
        char msg[600];
        snprintf(msg, sizeof msg, "malformed JSON: %s", err.msg);
        http_outcome(resp, err.status == 413 ? 413 : 400, msg, NULL);
    } else if (!json_is(v, JSON_OBJECT)) {
        http_outcome(resp, 400, "the body must be a JSON object (a FHIR resource)", NULL);
        v = NULL;
    }
    return v;
}

/* Checks body resourceType against the URL type. */
static bool type_matches(const json_val *v, const char *type, http_resp *resp)
{
    const char *rt = json_get_str(v, "resourceType");
    if (!rt || strcmp(rt, type)) {
        char msg[300];
        snprintf(msg, sizeof msg, "resourceType '%.100s' does not match the URL type '%.100s'",
                 rt ? rt : "(missing)", type);
        http_outcome(resp, 400, msg, "resourceType");
        return false;
    }
    return true;
}

/* Commits one PUT of prepared p and answers with the stored resource. */
static void write_and_answer(http_req *req, http_resp *resp, http_prepared *p,
                             int64_t if_match, bool is_create)
{
    fl_err err;
    fl_err_clear(&err);
    store_op op = {.kind = STORE_PUT, .type = p->type, .id = p->id, .if_match = if_match,
                   .render = http_render, .render_ctx = p};
    if (store_commit(req->store, &op, 1, NULL, &err)) {
        if (is_create && err.status == 412)
            fl_err_set(&err, 409, "id", "%s/%s already exists; PUT updates it", p->type, p->id);
        http_outcome_err(resp, &err);
        return;
    }
    resp->status = is_create || op.created ? 201 : 200;
    buf_reset(&resp->body);
    const char *prefer = http_header_get(req, "Prefer");
    if (!prefer || !strstr(prefer, "return=minimal")) http_render(p, op.version, op.ts, &resp->body);
    fhir_put_resource_headers(req, resp, p->type, p->id, op.version, op.ts, resp->status == 201);
}

/* The article POSTs its ViewDefinition, topic and destination with the id it then uses in
 * URLs (Aidbox keeps a client id on create). For these configuration types fhirlake does the
 * same; every other type follows FHIR: the server assigns the id. */
static bool keeps_client_id(const char *type)
{
    return !strcmp(type, "ViewDefinition") || !strcmp(type, "AidboxSubscriptionTopic") ||
           !strcmp(type, "AidboxTopicDestination");
}

static void do_create(http_req *req, http_resp *resp)
{
    json_val *v = parse_body(req, resp);
    if (!v || !type_matches(v, req->type, resp)) return;
    char id[72];
    const json_val *bid = json_get(v, "id");
    bool keep = keeps_client_id(req->type) && json_is(bid, JSON_STRING);
    if (keep) {
        if (!http_valid_id(bid->u.s, bid->len)) {
            http_outcome(resp, 400, "invalid id: must match [A-Za-z0-9\\-\\._]{1,64}", "id");
            return;
        }
        snprintf(id, sizeof id, "%s", bid->u.s);
    } else {
        http_new_id(id);
        json_obj_remove(v, "id"); /* the server assigns ids on create (the raw path skips it) */
    }
    http_prepared p = {0};
    fl_err err;
    fl_err_clear(&err);
    if (http_prepare_raw(v, req->body, req->body_len, id, &p, "", &err))
        http_outcome_err(resp, &err);
    else write_and_answer(req, resp, &p, keep ? 0 : -1, true);
    http_prepared_free(&p);
}

static bool if_match_of(http_req *req, http_resp *resp, int64_t *out)
{
    const char *h = http_header_get(req, "If-Match");
    *out = -1;
    if (!h) return true;
    int64_t v = fhir_parse_etag(h);
    if (v < 0) {
        http_outcome(resp, 400, "malformed If-Match header (expected W/\"<version>\")", NULL);
        return false;
    }
    *out = v;
    return true;
}

static void do_update(http_req *req, http_resp *resp)
{
    json_val *v = parse_body(req, resp);
    if (!v || !type_matches(v, req->type, resp)) return;
    const json_val *bid = json_get(v, "id");
    if (!json_is(bid, JSON_STRING) || strcmp(bid->u.s, req->id)) {
        char msg[200];
        snprintf(msg, sizeof msg, "the resource id (%.64s) must equal the URL id (%.64s)",
                 json_is(bid, JSON_STRING) ? bid->u.s : "missing", req->id);
        http_outcome(resp, 400, msg, "id");
        return;
    }
    int64_t if_match;
    if (!if_match_of(req, resp, &if_match)) return;
    http_prepared p = {0};
    fl_err err;
    fl_err_clear(&err);
    if (http_prepare_raw(v, req->body, req->body_len, req->id, &p, "", &err))
        http_outcome_err(resp, &err);
    else write_and_answer(req, resp, &p, if_match, false);
    http_prepared_free(&p);
}

static void do_delete(http_req *req, http_resp *resp)
{
    int64_t if_match;
    if (!if_match_of(req, resp, &if_match)) return;
    store_op op = {.kind = STORE_DELETE, .type = req->type, .id = req->id, .if_match = if_match};
    fl_err err;
    fl_err_clear(&err);
    if (store_commit(req->store, &op, 1, NULL, &err)) {
        http_outcome_err(resp, &err);
        return;
    }
    resp->status = 204;
    if (op.changed)
        http_resp_header(resp, "ETag", arena_printf(req->a, "W/\"%lld\"", (long long)op.version));
}

static void do_read(http_req *req, http_resp *resp, int64_t version)
{
    store_res r;
    fl_err err;
    fl_err_clear(&err);
    if (store_read(req->store, req->a, req->type, req->id, version, &r, &err)) {
        http_outcome_err(resp, &err);
        if (err.status == 410)
            http_resp_header(resp, "ETag", arena_printf(req->a, "W/\"%lld\"", (long long)r.version));
        return;
    }
    resp->status = 200;
    buf_put(&resp->body, r.body, r.body_len);
    fhir_put_resource_headers(req, resp, req->type, req->id, r.version, r.ts, false);
}

/* ---- bundles for history and search ---- */
static void url_encode(buf *b, const char *s)
{
    static const char hx[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~:,$", c))
            buf_putc(b, (char)c);
        else buf_printf(b, "%%%c%c", hx[c >> 4], hx[c & 15]);
    }
}

/* The request URL with _offset set to offset (and the other parameters kept). */
static const char *page_url(http_req *req, long offset)
{
    buf b = BUF_INIT;
    buf_printf(&b, "%s%s?", req->base, req->path);
    for (size_t i = 0; i < req->n_params; i++) {
        if (!strcmp(req->params[i].key, "_offset")) continue;
        url_encode(&b, req->params[i].key);
        buf_putc(&b, '=');
        url_encode(&b, req->params[i].val);
        buf_putc(&b, '&');
    }
    buf_printf(&b, "_offset=%ld", offset);
    const char *s = arena_strdup(req->a, b.p);
    buf_free(&b);
    return s;
}

typedef struct bundle_ctx {
    http_req *req;
    jw *w;
    bool history;
} bundle_ctx;

static void history_request(jw *w, arena *a, const store_res *r)
{
    jw_key(w, "request");
    jw_obj_begin(w);
    jw_key(w, "method");
    jw_str(w, r->deleted ? "DELETE" : r->version == 1 ? "POST" : "PUT");
    jw_key(w, "url");
    jw_str(w, r->version == 1 && !r->deleted ? r->type : arena_printf(a, "%s/%s", r->type, r->id));
    jw_obj_end(w);
    jw_key(w, "response");
    jw_obj_begin(w);
    jw_key(w, "status");
    jw_str(w, r->deleted ? "204" : r->version == 1 ? "201" : "200");
    jw_key(w, "etag");
    char t[48];
    snprintf(t, sizeof t, "W/\"%lld\"", (long long)r->version);
    jw_str(w, t);
    fl_time_format(r->ts, t);
    jw_key(w, "lastModified");
    jw_str(w, t);
    jw_obj_end(w);
}

static int bundle_row(void *ctx, const store_res *r)
{
    bundle_ctx *b = ctx;
    jw *w = b->w;
    jw_obj_begin(w);
    jw_key(w, "fullUrl");
    char *full = arena_printf(b->req->a, "%s/%s/%s", b->req->base, r->type, r->id);
    jw_str(w, full);
    if (!r->deleted) {
        jw_key(w, "resource");
        jw_raw(w, r->body, r->body_len);
    }
    if (b->history) {
        history_request(w, b->req->a, r);
    } else {
        jw_key(w, "search");
        jw_obj_begin(w);
        jw_key(w, "mode");
        jw_str(w, "match");
        jw_obj_end(w);
    }
    jw_obj_end(w);
    return 0;
}

static void bundle_open(jw *w, http_req *req, const char *type, long total, long offset,
                        long count)
{
    jw_obj_begin(w);
    jw_key(w, "resourceType");
    jw_str(w, "Bundle");
    jw_key(w, "type");
    jw_str(w, type);
    jw_key(w, "total");
    jw_int(w, total);
    jw_key(w, "link");
    jw_arr_begin(w);
    jw_obj_begin(w);
    jw_key(w, "relation");
    jw_str(w, "self");
    jw_key(w, "url");
    jw_str(w, page_url(req, offset));
    jw_obj_end(w);
    if (count > 0 && offset + count < total) {
        jw_obj_begin(w);
        jw_key(w, "relation");
        jw_str(w, "next");
        jw_key(w, "url");
        jw_str(w, page_url(req, offset + count));
        jw_obj_end(w);
    }
    if (offset > 0) {
        jw_obj_begin(w);
        jw_key(w, "relation");
        jw_str(w, "previous");
        jw_key(w, "url");
        jw_str(w, page_url(req, offset > count ? offset - count : 0));
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* Reads a non-negative integer parameter; false (with a 400) if malformed. */
static bool int_param(http_req *req, http_resp *resp, const char *key, long max, long *out)
{
    const char *v = http_param_get(req, key);
    if (!v) return true;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be a non-negative integer", key);
        http_outcome(resp, 400, msg, key);
        return false;
    }
    *out = n > max ? max : n;
    return true;
}

static void do_history(http_req *req, http_resp *resp)
{
    long count = 100, offset = 0;
    if (!int_param(req, resp, "_count", 1000, &count) ||
        !int_param(req, resp, "_offset", LONG_MAX, &offset))
        return;
    int64_t since = 0;
    const char *s = http_param_get(req, "_since");
    char *fixed = s ? arena_strdup(req->a, s) : NULL;
    for (char *p = fixed; p && *p; p++)
        if (*p == ' ') *p = '+'; /* a literal '+' in a query string decodes as a space */
    if (fixed && fl_time_parse(fixed, strlen(fixed), &since)) {
        http_outcome(resp, 400, "_since must be an instant", "_since");
        return;
    }
    buf body = BUF_INIT;
    jw w;
    jw_init(&w, &body);
    long total = 0;
    fl_err err;
    fl_err_clear(&err);
    /* Count first so the Bundle header can carry total and links. */
    bundle_ctx bc = {req, &w, true};
    buf rows = BUF_INIT;
    jw rw;
    jw_init(&rw, &rows);
    rw.depth = 1; /* rows are written as array items, commas handled by this writer */
    bc.w = &rw;
    if (store_history(req->store, req->type, req->id, since, offset, count, bundle_row, &bc,
                      &total, &err)) {
        http_outcome_err(resp, &err);
    } else {
        bundle_open(&w, req, "history", total, offset, count);
        jw_key(&w, "entry");
        buf_putc(&body, '[');
        buf_put(&body, rows.p ? rows.p : "", rows.len);
        buf_puts(&body, "]}");
        resp->status = 200;
        buf_free(&resp->body);
        resp->body = body;
        body = (buf)BUF_INIT;
    }
    buf_free(&rows);
    buf_free(&body);
}

/* ---- search ---- */
/* Span of a partial date/time value, in microseconds, from its precision. */
static int64_t precision_end(const char *v, size_t n, int64_t lo)
{
    int64_t y = 0;
    unsigned m = 1, d = 1;
    if (n == 4 || n == 7) {
        fl_civil_from_days(lo / 86400000000LL, &y, &m, &d);
        if (n == 4) return fl_days_from_civil(y + 1, 1, 1) * 86400000000LL;
        return (m == 12 ? fl_days_from_civil(y + 1, 1, 1) : fl_days_from_civil(y, m + 1, 1)) *
               86400000000LL;
    }
    if (n == 10) return lo + 86400000000LL;
    const char *t = memchr(v, 'T', n);
    if (!t || (size_t)(t - v) + 6 >= n || t[6] != ':') return lo + 60000000LL;
    if ((size_t)(t - v) + 9 >= n || t[9] != '.') return lo + 1000000LL;
    int k = 0;
    for (const char *p = t + 10; p < v + n && *p >= '0' && *p <= '9'; p++) k++;
    int64_t span = 1;
    for (int i = k; i < 6; i++) span *= 10;
    return lo + span;
}

static bool last_updated(const char *raw, store_query *q, http_resp *resp)
{
    char v[80];
    snprintf(v, sizeof v, "%s", raw);
    for (char *p = v; *p; p++)
        if (*p == ' ') *p = '+'; /* a literal '+' in a query string decodes as a space */
    const char *val = v, *pre = "eq";
    if (strlen(v) > 2 && v[0] >= 'a' && v[0] <= 'z' && v[1] >= 'a' && v[1] <= 'z') {
        pre = v[0] == 'e' && v[1] == 'q' ? "eq" : v[0] == 'g' && v[1] == 't' ? "gt"
            : v[0] == 'g' && v[1] == 'e' ? "ge" : v[0] == 'l' && v[1] == 't' ? "lt"
            : v[0] == 'l' && v[1] == 'e' ? "le" : NULL;
        val = v + 2;
    }
    int64_t lo;
    if (!pre || fl_time_parse(val, strlen(val), &lo)) {
        http_outcome(resp, 400, "_lastUpdated: expected [eq|gt|ge|lt|le]<instant or date>",
                     "_lastUpdated");
        return false;
    }
    int64_t hi = precision_end(val, strlen(val), lo);
    if (!strcmp(pre, "gt") && hi > q->ts_min) q->ts_min = hi;
    if ((!strcmp(pre, "ge") || !strcmp(pre, "eq")) && lo > q->ts_min) q->ts_min = lo;
    if (!strcmp(pre, "lt") && lo - 1 < q->ts_max) q->ts_max = lo - 1;
    if ((!strcmp(pre, "le") || !strcmp(pre, "eq")) && hi - 1 < q->ts_max) q->ts_max = hi - 1;
    return true;
}

static void split_ids(http_req *req, const char *v, store_query *q)
{
    size_t n = 1;
    for (const char *p = v; *p; p++) n += *p == ',';
    const char **ids = arena_alloc(req->a, n * sizeof *ids);
    char *copy = arena_strdup(req->a, v), *save = NULL;
    size_t k = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) ids[k++] = t;
    q->ids = ids;
    q->n_ids = k;
}

static bool search_params(http_req *req, http_resp *resp, store_query *q)
{
    for (size_t i = 0; i < req->n_params; i++) {
        const char *k = req->params[i].key, *v = req->params[i].val;
        if (!strcmp(k, "_lastUpdated")) {
            if (!last_updated(v, q, resp)) return false;
        } else if (!strcmp(k, "_id")) {
            if (!q->ids) split_ids(req, v, q);
        } else if (!strcmp(k, "_sort")) {
            if (!strcmp(v, "_lastUpdated")) q->sort = 1;
            else if (!strcmp(v, "-_lastUpdated")) q->sort = -1;
            else if (!strcmp(v, "_id")) q->sort = 0;
            else {
                http_outcome(resp, 400, "_sort supports _lastUpdated, -_lastUpdated, _id", "_sort");
                return false;
            }
        }
    }
    return true;
}

/* Unknown parameters are ignored (FHIR's lenient default) and reported in an outcome entry. */
static void unknown_params_entry(jw *w, http_req *req)
{
    static const char *const known[] = {"_lastUpdated", "_id", "_sort", "_count", "_offset",
                                        "_format", "_pretty", "_total"};
    buf msg = BUF_INIT;
    for (size_t i = 0; i < req->n_params; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0] && !ok; k++)
            ok = !strcmp(req->params[i].key, known[k]);
        if (!ok) buf_printf(&msg, "%s%s", msg.len ? ", " : "", req->params[i].key);
    }
    if (msg.len) {
        jw_obj_begin(w);
        jw_key(w, "resource");
        buf oo = BUF_INIT;
        http_resp tmp = {0};
        buf_printf(&oo, "search parameters not supported and ignored: %s", msg.p);
        http_outcome(&tmp, 200, oo.p, NULL);
        jw_raw(w, tmp.body.p, tmp.body.len);
        buf_free(&tmp.body);
        buf_free(&oo);
        jw_key(w, "search");
        jw_obj_begin(w);
        jw_key(w, "mode");
        jw_str(w, "outcome");
        jw_obj_end(w);
        jw_obj_end(w);
    }
    buf_free(&msg);
}

static void do_search(http_req *req, http_resp *resp)
{
    store_query q = {.type = req->type, .ts_min = INT64_MIN, .ts_max = INT64_MAX,
                     .count = 100};
    if (!int_param(req, resp, "_count", 1000, &q.count) ||
        !int_param(req, resp, "_offset", LONG_MAX, &q.offset) || !search_params(req, resp, &q))
        return;
    buf rows = BUF_INIT;
    jw rw;
    jw_init(&rw, &rows);
    rw.depth = 1;
    bundle_ctx bc = {req, &rw, false};
    long total = 0;
    fl_err err;
    fl_err_clear(&err);
    if (store_search(req->store, &q, bundle_row, &bc, &total, &err)) {
        http_outcome_err(resp, &err);
        buf_free(&rows);
        return;
    }
    unknown_params_entry(&rw, req);
    buf_reset(&resp->body);
    jw w;
    jw_init(&w, &resp->body);
    bundle_open(&w, req, "searchset", total, q.offset, q.count);
    jw_key(&w, "entry");
    buf_putc(&resp->body, '[');
    buf_put(&resp->body, rows.p ? rows.p : "", rows.len);
    buf_puts(&resp->body, "]}");
    buf_free(&rows);
    resp->status = 200;
}

/* ---- metadata ---- */
static void cs_codes(jw *w, const char *key, const char *const *codes, size_t n)
{
    jw_key(w, key);
    jw_arr_begin(w);
    for (size_t k = 0; k < n; k++) {
        jw_obj_begin(w);
        jw_key(w, "code");
        jw_str(w, codes[k]);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

static void cs_resource(void *ctx, const char *type)
{
    static const char *const inter[] = {"read", "vread", "update", "delete", "history-instance",
                                        "history-type", "create", "search-type"};
    static const char *const sp[][2] = {{"_id", "token"}, {"_lastUpdated", "date"}};
    jw *w = ctx;
    jw_obj_begin(w);
    jw_key(w, "type");
    jw_str(w, type);
    jw_key(w, "versioning");
    jw_str(w, "versioned-update");
    cs_codes(w, "interaction", inter, sizeof inter / sizeof inter[0]);
    jw_key(w, "searchParam");
    jw_arr_begin(w);
    for (int k = 0; k < 2; k++) {
        jw_obj_begin(w);
        jw_key(w, "name");
        jw_str(w, sp[k][0]);
        jw_key(w, "type");
        jw_str(w, sp[k][1]);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_obj_end(w);
}

static void cs_operation(jw *w, arena *a, const char *name)
{
    jw_obj_begin(w);
    jw_key(w, "name");
    jw_str(w, name);
    jw_key(w, "definition");
    jw_str(w, arena_printf(a, "urn:fhirlake:operation:%s", name));
    jw_obj_end(w);
}

static void do_metadata(http_req *req, http_resp *resp)
{
    static const char *const sys[] = {"transaction", "batch", "history-system"};
    jw w;
    buf_reset(&resp->body);
    jw_init(&w, &resp->body);
    jw_obj_begin(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "CapabilityStatement");
    jw_key(&w, "status");
    jw_str(&w, "active");
    jw_key(&w, "kind");
    jw_str(&w, "instance");
    jw_key(&w, "date");
    char t[40];
    fl_time_format(fl_now_micros() / 1000000 * 1000000, t);
    jw_str(&w, t);
    jw_key(&w, "software");
    jw_obj_begin(&w);
    jw_key(&w, "name");
    jw_str(&w, "fhirlake");
    jw_obj_end(&w);
    jw_key(&w, "fhirVersion");
    jw_str(&w, "4.0.1");
    jw_key(&w, "format");
    jw_arr_begin(&w);
    jw_str(&w, "json");
    jw_arr_end(&w);
    jw_key(&w, "rest");
    jw_arr_begin(&w);
    jw_obj_begin(&w);
    jw_key(&w, "mode");
    jw_str(&w, "server");
    jw_key(&w, "documentation");
    jw_str(&w, "Bulk load: POST [base]/$load with NDJSON (application/fhir+ndjson) or a Bundle.");
    jw_key(&w, "resource");
    jw_arr_begin(&w);
    http_each_type(cs_resource, &w);
    jw_arr_end(&w);
    cs_codes(&w, "interaction", sys, 3);
    jw_key(&w, "operation");
    jw_arr_begin(&w);
    cs_operation(&w, req->a, "load");
    pthread_mutex_lock(&ops_mu);
    for (int i = 0; i < n_ops; i++) cs_operation(&w, req->a, ops[i].name);
    pthread_mutex_unlock(&ops_mu);
    jw_arr_end(&w);
    jw_obj_end(&w);
    jw_arr_end(&w);
    jw_obj_end(&w);
    resp->status = 200;
}

/* ---- $load ---- */
static void do_load(http_req *req, http_resp *resp)
{
    http_load_stats st = {0};
    fl_err err;
    fl_err_clear(&err);
    const char *ct = req->content_type ? req->content_type : "";
    int rc;
    if (strstr(ct, "ndjson")) {
        rc = http_load_ndjson(req->store, req->body, req->body_len, 0, true, &st, NULL, NULL,
                              &err);
    } else {
        json_val *v = parse_body(req, resp);
        if (!v) return;
        const char *rt = json_get_str(v, "resourceType");
        if (!rt || strcmp(rt, "Bundle")) {
            http_outcome(resp, 400, "$load takes NDJSON (application/fhir+ndjson) or a Bundle",
                         NULL);
            return;
        }
        rc = http_load_bundle(req->store, req->a, v, &st, &err);
    }
    if (rc) {
        http_outcome_err(resp, &err);
        return;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "loaded %ld resources", st.written);
    http_outcome(resp, 200, msg, NULL);
}

/* ---- routing ---- */
static void method_not_allowed(http_resp *resp, const char *method, const char *allow)
{
    char msg[160];
    snprintf(msg, sizeof msg, "method %s not allowed here (allowed: %s)", method, allow);
    http_outcome(resp, 405, msg, NULL);
    http_resp_header(resp, "Allow", allow);
}

static bool is(const http_req *r, const char *m) { return !strcmp(r->method, m); }

static void run_op(http_req *req, http_resp *resp, const char *name, int level)
{
    if (level == HTTP_OP_SYSTEM && !strcmp(name, "load")) {
        if (is(req, "POST")) do_load(req, resp);
        else method_not_allowed(resp, req->method, "POST");
        return;
    }
    const op_entry *o = find_op(name, level, req->type);
    if (!o) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown operation $%.100s", name);
        http_outcome(resp, 404, msg, NULL);
        return;
    }
    resp->status = o->fn(o->ctx, req, resp);
}

static void route_instance(http_req *req, http_resp *resp, char **seg, int n)
{
    if (!http_valid_id(req->id, strlen(req->id))) {
        http_outcome(resp, 400, "invalid id: must match [A-Za-z0-9\\-\\._]{1,64} (FHIR id, plus '_' as Aidbox allows)", "id");
        return;
    }
    if (n == 2) {
        if (is(req, "GET")) do_read(req, resp, 0);
        else if (is(req, "PUT")) do_update(req, resp);
        else if (is(req, "DELETE")) do_delete(req, resp);
        else method_not_allowed(resp, req->method, "GET, PUT, DELETE");
    } else if (seg[2][0] == '$') {
        run_op(req, resp, seg[2] + 1, HTTP_OP_INSTANCE);
    } else if (!strcmp(seg[2], "_history") && n <= 4) {
        if (!is(req, "GET")) {
            method_not_allowed(resp, req->method, "GET");
        } else if (n == 3) {
            do_history(req, resp);
        } else {
            char *end;
            long long v = strtoll(seg[3], &end, 10);
            if (*end || v <= 0) http_outcome(resp, 404, "no such version", NULL);
            else do_read(req, resp, v);
        }
    } else {
        http_outcome(resp, 404, "not found", NULL);
    }
}

static void route_type(http_req *req, http_resp *resp, char **seg, int n)
{
    if (!http_known_type(seg[0])) {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown resource type '%.100s'", seg[0]);
        http_outcome(resp, 404, msg, NULL);
        return;
    }
    req->type = seg[0];
    if (n == 1) {
        if (is(req, "GET")) do_search(req, resp);
        else if (is(req, "POST")) do_create(req, resp);
        else method_not_allowed(resp, req->method, "GET, POST");
    } else if (seg[1][0] == '$') {
        run_op(req, resp, seg[1] + 1, HTTP_OP_TYPE);
    } else if (!strcmp(seg[1], "_history") && n == 2) {
        if (is(req, "GET")) do_history(req, resp);
        else method_not_allowed(resp, req->method, "GET");
    } else if (!strcmp(seg[1], "_search") && n == 2) {
        if (is(req, "POST") || is(req, "GET")) do_search(req, resp);
        else method_not_allowed(resp, req->method, "POST");
    } else {
        req->id = seg[1];
        route_instance(req, resp, seg, n);
    }
}

static void route_system(http_req *req, http_resp *resp, char **seg, int n)
{
    if (n == 0) {
        if (!is(req, "POST")) {
            method_not_allowed(resp, req->method, "POST");
            return;
        }
        json_val *v = parse_body(req, resp);
        if (!v) return;
        const char *rt = json_get_str(v, "resourceType");
        if (!rt || strcmp(rt, "Bundle")) {
            http_outcome(resp, 400, "POST to the base takes a batch or transaction Bundle",
                         "resourceType");
            return;
        }
        fhir_bundle(req, v, resp);
    } else if (seg[0][0] == '$') {
        run_op(req, resp, seg[0] + 1, HTTP_OP_SYSTEM);
    } else if (!strcmp(seg[0], "metadata") && n == 1) {
        if (is(req, "GET")) do_metadata(req, resp);
        else method_not_allowed(resp, req->method, "GET");
    } else if (!strcmp(seg[0], "_history") && n == 1) {
        if (is(req, "GET")) do_history(req, resp);
        else method_not_allowed(resp, req->method, "GET");
    } else {
        route_type(req, resp, seg, n);
    }
}

void fhir_dispatch(http_req *req, http_resp *resp)
{
    char *path = arena_strdup(req->a, req->path), *seg[8], *save = NULL;
    int n = 0;
    for (char *t = strtok_r(path, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == 8) {
            http_outcome(resp, 404, "not found", NULL);
            return;
        }
        seg[n++] = t;
    }
    route_system(req, resp, seg, n);
}
