/* http.c: libmicrohttpd plumbing — starts/stops the daemon, collects request bodies under
 * the size limit, checks media types, builds http_req and sends http_resp. FHIR routing
 * lives in fhir.c. Each request owns an arena freed when MHD reports it completed. */
#include "internal.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct http_server {
    struct MHD_Daemon *d;
    store *s;
    size_t max_body;
    int port;
};

typedef struct conn_ctx {
    arena *a;
    buf body;
    int too_big;
    int answered;
} conn_ctx;

typedef struct param_acc {
    arena *a;
    http_param *v;
    size_t n, cap;
} param_acc;

const char *http_param_get(const http_req *r, const char *key)
{
    for (size_t i = 0; i < r->n_params; i++)
        if (!strcmp(r->params[i].key, key)) return r->params[i].val;
    return NULL;
}

const char *http_header_get(const http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void http_resp_header(http_resp *resp, const char *name, const char *val)
{
    if (resp->n_hdr < 8) {
        resp->hdr_name[resp->n_hdr] = name;
        resp->hdr_val[resp->n_hdr++] = val;
    }
}

static const char *issue_code(int status)
{
    switch (status) {
    case 404: case 410: return "not-found";
    case 405: return "not-supported";
    case 409: case 412: return "conflict";
    case 413: return "too-costly";
    case 415: return "not-supported";
    case 422: return "processing";
    default: return status >= 500 ? "exception" : "invalid";
    }
}

void http_outcome(http_resp *resp, int status, const char *msg, const char *where)
{
    resp->status = status;
    resp->content_type = "application/fhir+json";
    buf_reset(&resp->body);
    jw w;
    jw_init(&w, &resp->body);
    jw_obj_begin(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "OperationOutcome");
    jw_key(&w, "issue");
    jw_arr_begin(&w);
    jw_obj_begin(&w);
    jw_key(&w, "severity");
    jw_str(&w, status >= 400 ? "error" : "information");
    jw_key(&w, "code");
    jw_str(&w, status >= 400 ? issue_code(status) : "informational");
    jw_key(&w, "diagnostics");
    jw_str(&w, msg);
    if (where && *where) {
        jw_key(&w, "expression");
        jw_arr_begin(&w);
        jw_str(&w, where);
        jw_arr_end(&w);
    }
    jw_obj_end(&w);
    jw_arr_end(&w);
    jw_obj_end(&w);
}

void http_outcome_err(http_resp *resp, const fl_err *err)
{
    char msg[sizeof err->msg + sizeof err->where + 8];
    if (err->where[0]) snprintf(msg, sizeof msg, "%s: %s", err->where, err->msg);
    else snprintf(msg, sizeof msg, "%s", err->msg);
    http_outcome(resp, err->status ? err->status : 500, msg, err->where);
}

static enum MHD_Result collect_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    param_acc *p = cls;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        http_param *nv = arena_alloc(p->a, cap * sizeof *nv);
        if (p->n) memcpy(nv, p->v, p->n * sizeof *nv);
        p->v = nv;
        p->cap = cap;
    }
    p->v[p->n++] = (http_param){arena_strdup(p->a, key), arena_strdup(p->a, value ? value : "")};
    return MHD_YES;
}

static enum MHD_Result send_resp(struct MHD_Connection *c, http_resp *resp)
{
    size_t len = resp->body.len;
    char *p = buf_detach(&resp->body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(p);
        return MHD_NO;
    }
    if (len || resp->status != 204)
        MHD_add_response_header(r, "Content-Type",
                                resp->content_type ? resp->content_type
                                                   : "application/fhir+json");
    for (int i = 0; i < resp->n_hdr; i++)
        MHD_add_response_header(r, resp->hdr_name[i], resp->hdr_val[i]);
    if (resp->status >= 500) fl_log(FL_LOG_ERROR, "HTTP %d: %.300s", resp->status, p);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_outcome(struct MHD_Connection *c, int status, const char *msg)
{
    http_resp resp = {0};
    http_outcome(&resp, status, msg, NULL);
    return send_resp(c, &resp);
}

/* Media types we take for a body: FHIR JSON, plain JSON, NDJSON (for $load). */
static bool media_ok(const char *ct)
{
    if (!ct) return true; /* lenient: curl -d without -H; the JSON parser still judges it */
    static const char *const ok[] = {"application/fhir+json", "application/json",
                                     "application/fhir+ndjson", "application/x-ndjson",
                                     "application/ndjson", "application/json+fhir"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t n = strlen(ok[i]);
        if (!strncasecmp(ct, ok[i], n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' '))
            return true;
    }
    return false;
}

static enum MHD_Result dispatch(http_server *h, struct MHD_Connection *c, conn_ctx *cc,
                                const char *url, const char *method)
{
    http_req req = {0};
    http_resp resp = {0};
    req.method = method;
    req.path = arena_strdup(cc->a, url + 5); /* below "/fhir" */
    req.body = cc->body.p ? cc->body.p : "";
    req.body_len = cc->body.len;
    req.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    param_acc pa = {cc->a, NULL, 0, 0};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_param, &pa);
    req.params = pa.v;
    req.n_params = pa.n;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    req.base = arena_printf(cc->a, "http://%s/fhir", host ? host : "localhost");
    req.store = h->s;
    req.a = cc->a;
    req.conn = c;
    resp.status = 200;
    fhir_dispatch(&req, &resp);
    enum MHD_Result r = send_resp(c, &resp);
    buf_free(&resp.body);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    http_server *h = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) {
        cc = calloc(1, sizeof *cc);
        if (!cc || !(cc->a = arena_new(0))) {
            free(cc);
            return MHD_NO;
        }
        *con_cls = cc;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > h->max_body) cc->too_big = 1;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cc->too_big && cc->body.len + *upload_size > h->max_body) cc->too_big = 1;
        if (!cc->too_big) buf_put(&cc->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (cc->answered) return MHD_YES;
    cc->answered = 1;
    if (strncmp(url, "/fhir", 5) || (url[5] && url[5] != '/'))
        return send_outcome(c, 404, "not found: the FHIR API is under /fhir");
    if (cc->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body over the limit of %zu bytes", h->max_body);
        return send_outcome(c, 413, msg);
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (cc->body.len && !media_ok(ct))
        return send_outcome(c, 415, "unsupported media type: send application/fhir+json");
    return dispatch(h, c, cc, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    conn_ctx *cc = *con_cls;
    if (!cc) return;
    buf_free(&cc->body);
    arena_free(cc->a);
    free(cc);
    *con_cls = NULL;
}

http_server *http_start(const http_config *cfg, store *s, fl_err *err)
{
    http_server *h = calloc(1, sizeof *h);
    if (!h) {
        fl_err_set(err, 500, "", "out of memory");
        return NULL;
    }
    h->s = s;
    h->max_body = cfg->max_body ? cfg->max_body : 16u << 20;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->port);
    const char *addr = cfg->listen ? cfg->listen : "127.0.0.1";
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fl_err_set(err, 400, "--listen", "not an IPv4 address: %s", addr);
        free(h);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    /* Handlers block (group commit waits for the fsync), so a connection owns its thread
     * by default; a pool would stall every connection sharing a thread with a slow one. */
    bool per_conn = cfg->threads <= 0;
    unsigned threads = per_conn ? 1 : (unsigned)cfg->threads;
    if (per_conn) flags |= MHD_USE_THREAD_PER_CONNECTION;
    else flags |= MHD_USE_EPOLL;
    h->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                            per_conn ? MHD_OPTION_END : MHD_OPTION_THREAD_POOL_SIZE,
                            threads, MHD_OPTION_END);
    if (!h->d) {
        fl_err_set(err, 500, "", "cannot listen on %s:%d", addr, cfg->port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : cfg->port;
    return h;
}

int http_port(const http_server *h) { return h->port; }

void http_stop(http_server *h)
{
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
