/* server: the HTTP edge of fhirlake — libmicrohttpd plumbing, the FHIR R4 REST API under
 * /fhir on top of store.h, OperationOutcome errors, and the operation registry.
 *
 * REST (any resourceType in the R4 table, plus types registered with http_register_type):
 *   POST   /fhir                          batch / transaction Bundle
 *   GET    /fhir/metadata                 CapabilityStatement
 *   GET    /fhir/_history                 system history
 *   POST   /fhir/$load                    bulk load, NDJSON body (application/fhir+ndjson,
 *                                         application/x-ndjson or application/ndjson), one
 *                                         resource a line, ids kept (generated if absent);
 *                                         all lines are validated before anything is written,
 *                                         then committed 5000 a transaction; or a Bundle
 *                                         (application/fhir+json), one transaction, urn:uuid
 *                                         references resolved. Answers an OperationOutcome.
 *   GET    /fhir/T                        search: _id, _lastUpdated, _count, _offset, _sort
 *   POST   /fhir/T                        create (server id: a time-ordered UUIDv7)
 *   GET    /fhir/T/_history               type history (_since, _count, _offset)
 *   GET    /fhir/T/id                     read;  PUT update (create-on-update, If-Match);
 *                                         DELETE soft delete
 *   GET    /fhir/T/id/_history[/vid]      instance history / vread
 * Errors are OperationOutcome with status 400/404/405/410/412/413/415/500.
 *
 * Writes set meta.versionId and meta.lastUpdated (= the store's commit ts, RFC 3339 with
 * six fraction digits); ETag W/"version", Last-Modified and (on create) Location.
 *
 * Operations: later rooms add $operations without touching this room's code. Call
 * http_register_operation() before http_start() (cmd_serve.c registers them all). A handler gets the parsed request and fills the
 * response; it runs on a server thread and must be thread safe.
 */
#ifndef FL_SERVER_H
#define FL_SERVER_H

#include "../json/json.h"
#include "../store/store.h"
#include "../util/util.h"

typedef struct http_server http_server;

typedef struct http_config {
    const char *listen;     /* address, default "127.0.0.1" */
    int port;               /* 0 = any free port (see http_port) */
    size_t max_body;        /* bytes; default 16 MiB; larger bodies get 413 */
    int threads;            /* <= 0 (default): a thread per connection; N: an epoll pool of N */
} http_config;

/* Starts serving on its own threads. The store stays owned by the caller and must
 * outlive the server. */
http_server *http_start(const http_config *cfg, store *s, fl_err *err);
int http_port(const http_server *h);
/* Stops accepting, finishes in-flight requests, frees the server. */
void http_stop(http_server *h);

/* ---- requests and responses as operation handlers see them ---- */
typedef struct http_param {
    const char *key;
    const char *val;
} http_param;

typedef struct http_req {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* below /fhir, e.g. "/Patient/1/$everything" */
    const char *type;          /* resource type or NULL (system level) */
    const char *id;            /* instance id or NULL */
    const char *body;          /* request body (NUL-terminated), len body_len */
    size_t body_len;
    const char *content_type;  /* may be NULL */
    http_param *params;        /* query parameters in order, repeated keys kept */
    size_t n_params;
    const char *base;          /* "http://host:port/fhir", for absolute links */
    store *store;
    arena *a;                  /* request arena, freed after the response */
    void *conn;                /* internal */
} http_req;

typedef struct http_resp {
    int status;
    buf body;                  /* response body */
    const char *content_type;  /* default application/fhir+json */
    const char *hdr_name[8];   /* extra headers (strings must outlive the request: use
                                  the request arena) */
    const char *hdr_val[8];
    int n_hdr;
} http_resp;

const char *http_param_get(const http_req *r, const char *key);   /* first value or NULL */
const char *http_header_get(const http_req *r, const char *name); /* NULL if absent */
void http_resp_header(http_resp *resp, const char *name, const char *val);
/* Fills resp with an OperationOutcome (issue severity "error"; code from the status). */
void http_outcome(http_resp *resp, int status, const char *msg, const char *where);
void http_outcome_err(http_resp *resp, const fl_err *err);

/* ---- operation registry ---- */
enum { HTTP_OP_SYSTEM = 1, HTTP_OP_TYPE = 2, HTTP_OP_INSTANCE = 4 };
/* Returns the HTTP status; fills resp (body, headers). */
typedef int (*http_op_fn)(void *ctx, const http_req *req, http_resp *resp);
/* name without '$' (e.g. "viewdefinition-run"); levels is a mask of HTTP_OP_*; type may
 * be NULL for any type. Returns 0, or -1 if the table is full. */
int http_register_operation(const char *name, int levels, const char *type, http_op_fn fn,
                            void *ctx);
/* Accepts an extra resource type (e.g. "ViewDefinition") besides the R4 core types. */
void http_register_type(const char *type);
/* Per-type validation hook, run by http_prepare() (so by create, update, batch/transaction
 * and $load) before anything is written. Returns 0, or -1 with err set (status 400/422,
 * where naming the element); register before http_start(). One hook per type. */
typedef int (*http_validate_fn)(void *ctx, const json_val *res, fl_err *err);
void http_register_validator(const char *type, http_validate_fn fn, void *ctx);
/* Per-type rewrite hook, run by http_prepare() after the validator: it may set *out to a
 * replacement of the resource (allocated in `a`, freed once the stored text is built) that
 * is stored instead — e.g. AidboxTopicDestination with its secret values taken out. id is
 * the id being written. Returns 0, or -1 with err set. Register before http_start(). */
typedef int (*http_rewrite_fn)(void *ctx, const json_val *res, const char *id, arena *a,
                               json_val **out, fl_err *err);
void http_register_rewriter(const char *type, http_rewrite_fn fn, void *ctx);

/* ---- FHIR resource helpers shared with `fhirlake load` ---- */
bool http_known_type(const char *type);
/* Calls fn for every accepted resource type (R4 core, then registered ones). */
void http_each_type(void (*fn)(void *ctx, const char *type), void *ctx);
bool http_valid_id(const char *id, size_t n);   /* [A-Za-z0-9\-\._]{1,64} ('_' as Aidbox) */
/* A new server-assigned id: a time-ordered UUIDv7 (lowercase, 36 chars + NUL). */
void http_new_id(char out[37]);

/* A resource ready to store: render() writes it with meta.versionId/lastUpdated set. */
typedef struct http_prepared {
    const char *type;
    const char *id;
    buf head;      /* {"resourceType":"T","id":"X","meta":{"versionId":" */
    buf tail;      /* rest after "lastUpdated":"...", starting with the closing quote */
    buf scratch;   /* reused by http_prepare_raw */
} http_prepared;
void http_prepared_free(http_prepared *p);
/* Builds p from a parsed resource object, with id forced to `id` (NULL: keep the body's
 * id). Validates resourceType (known type) and id; where names the element in errors. */
int http_prepare(const json_val *res, const char *id, http_prepared *p, const char *where,
                 fl_err *err);

/* Same result as http_prepare(), but copies members from raw (the text res was parsed
 * from) instead of re-serializing: the bulk-load fast path. Falls back to http_prepare()
 * when raw spans lines (the stored body stays one line) or a key carries an escape. */
int http_prepare_raw(const json_val *res, const char *raw, size_t len, const char *id,
                     http_prepared *p, const char *where, fl_err *err);
/* Stable render callback for store_op.render with render_ctx = an http_prepared. */
void http_render(void *ctx, int64_t version, int64_t ts, buf *out);

/* Rewrites every "reference" string that equals one of from[i] (e.g. "urn:uuid:...")
 * into to[i] (e.g. "Patient/123"), in place. from must be sorted (strcmp). */
void http_rewrite_refs(arena *a, json_val *v, const char **from, const char **to, size_t n);
/* Sorts the (from[i], to[i]) pairs by from, as http_rewrite_refs needs. */
void http_sort_refs(const char **from, const char **to, size_t n);

/* ---- bulk load (POST /fhir/$load and `fhirlake load`) ---- */
typedef struct http_load_stats {
    long lines;        /* non-empty lines / entries seen */
    long written;      /* resources committed */
    long bytes;
} http_load_stats;
typedef void (*http_progress_fn)(void *ctx, const http_load_stats *st);
/* Loads NDJSON text (one resource a line; ids kept, generated when absent), committing
 * `batch` resources per store transaction (0 = 5000). With validate_first every line is
 * checked before anything is written (all or nothing up to store failures); otherwise
 * it stops at the first bad line with earlier batches committed. Errors name the line
 * ("line 12"). */
int http_load_ndjson(store *s, const char *text, size_t len, size_t batch, bool validate_first,
                     http_load_stats *st, http_progress_fn progress, void *pctx, fl_err *err);
/* Loads a Bundle's entry[].resource (any Bundle type) as one transaction, keeping ids
 * and turning urn:uuid references into Type/id. */
int http_load_bundle(store *s, arena *a, json_val *bundle, http_load_stats *st, fl_err *err);

#endif
