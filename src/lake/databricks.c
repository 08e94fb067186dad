/* databricks.c: writeMode "managed-sql" (see databricks.h). Owns: the OAuth M2M token
 * cache, the SQL Statement Execution API client (submit + poll), the SQL generated for
 * target creation, schema evolution and the staging MERGE, and staging cleanup. */
#include "databricks.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../json/json.h"
#include "objstore.h"
#include "s3.h"

#define ENV_ID "FHIRLAKE_DATABRICKS_CLIENT_ID"
#define ENV_SECRET "FHIRLAKE_DATABRICKS_CLIENT_SECRET"
#define POLL_LIMIT_US (6LL * 3600 * 1000000)   /* a MERGE on a big table can take a while */
#define TOKEN_SLOTS 8

/* ---- HTTP ---- */
typedef struct http_call {
    const char *method;     /* "GET" or "POST" */
    const char *url;
    const char *body;       /* POST body or NULL */
    const char *ctype;      /* its Content-Type */
    const char *bearer;     /* token or NULL */
    const char *userpwd;    /* HTTP Basic or NULL */
    buf *out;
    long status;
} http_call;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    buf_put(ud, p, sz * n);
    return sz * n;
}

/* One request with a few retries on transport errors, 429 and 5xx. */
static int http_do(http_call *c, fl_err *err)
{
    pthread_once(&curl_once, curl_init_once);
    CURLcode cc = CURLE_OK;
    long delay_ms = 200;
    for (int attempt = 1;; attempt++) {
        CURL *h = curl_easy_init();
        if (!h) abort();
        struct curl_slist *hd = NULL;
        char auth[8192];
        if (c->bearer) {
            snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->bearer);
            hd = curl_slist_append(hd, auth);
        }
        if (c->ctype) {
            snprintf(auth, sizeof auth, "Content-Type: %s", c->ctype);
            hd = curl_slist_append(hd, auth);
        }
        buf_reset(c->out);
        curl_easy_setopt(h, CURLOPT_URL, c->url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, c->out);
        if (c->userpwd) {
            curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(h, CURLOPT_USERPWD, c->userpwd);
        }
        if (!strcmp(c->method, "POST")) curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? c->body : "");
        cc = curl_easy_perform(h);
        c->status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
        curl_easy_cleanup(h);
        curl_slist_free_all(hd);
        bool again = cc != CURLE_OK || c->status == 429 || c->status >= 500;
        if (!again || attempt == 4) break;
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        delay_ms *= 3;
    }
    buf_reserve(c->out, 1);
    c->out->p[c->out->len] = 0;
    if (cc != CURLE_OK) {
        fl_err_set(err, 502, "databricksWorkspaceUrl", "Databricks %s %s: %s", c->method, c->url,
                   curl_easy_strerror(cc));
        return -1;
    }
    return 0;
}

/* "error_code: message" from a Databricks error body, or the HTTP status. */
static void api_error(arena *a, const http_call *c, const char *what, const char *where,
                      fl_err *err)
{
    json_val *v = json_parse(a, c->out->p, c->out->len, NULL, &(fl_err){0});
    const char *code = v ? json_get_str(v, "error_code") : NULL;
    const char *msg = v ? json_get_str(v, "message") : NULL;
    if (!code && v) code = json_get_str(v, "error");   /* OAuth errors */
    if (!msg && v) msg = json_get_str(v, "error_description");
    fl_err_set(err, 502, where, "Databricks %s failed: HTTP %ld%s%s%s%s", what, c->status,
               code ? " " : "", code ? code : "", msg ? ": " : "", msg ? msg : "");
}

/* ---- OAuth M2M token cache ---- */
typedef struct token_slot {
    char key[512];          /* workspace + '\n' + client id */
    char token[4096];
    int64_t expires_us;
} token_slot;

static pthread_mutex_t tok_mu = PTHREAD_MUTEX_INITIALIZER;
static token_slot tok_cache[TOKEN_SLOTS];

static char *trimmed_workspace(arena *a, const char *ws)
{
    char *w = arena_strdup(a, ws);
    size_t n = strlen(w);
    while (n && w[n - 1] == '/') w[--n] = 0;
    return w;
}

static int fetch_token(arena *a, const char *ws, char *out, size_t n, fl_err *err)
{
    const char *id = getenv(ENV_ID), *secret = getenv(ENV_SECRET);
    if (!id || !*id || !secret || !*secret) {
        fl_err_set(err, 400, "databricksWorkspaceUrl", "Databricks service-principal credentials "
                   "are not configured on the server (" ENV_ID " / " ENV_SECRET ")");
        return -1;
    }
    char key[512];
    snprintf(key, sizeof key, "%s\n%s", ws, id);
    int64_t now = fl_now_micros();
    pthread_mutex_lock(&tok_mu);
    for (int i = 0; i < TOKEN_SLOTS; i++)
        if (!strcmp(tok_cache[i].key, key) && tok_cache[i].expires_us > now + 60000000) {
            snprintf(out, n, "%s", tok_cache[i].token);
            pthread_mutex_unlock(&tok_mu);
            return 0;
        }
    pthread_mutex_unlock(&tok_mu);
    buf body = BUF_INIT, resp = BUF_INIT, up = BUF_INIT;
    buf_printf(&up, "%s:%s", id, secret);
    http_call c = {.method = "POST", .url = arena_printf(a, "%s/oidc/v1/token", ws),
                   .body = "grant_type=client_credentials&scope=all-apis",
                   .ctype = "application/x-www-form-urlencoded", .userpwd = up.p, .out = &resp};
    int rc = http_do(&c, err);
    explicit_bzero(up.p, up.len);
    buf_free(&up);
    json_val *v = NULL;
    if (rc == 0 && c.status != 200) {
        api_error(a, &c, "token request (oidc/v1/token)", "databricksWorkspaceUrl", err);
        rc = -1;
    } else if (rc == 0) {
        v = json_parse(a, resp.p, resp.len, NULL, err);
        const char *tok = v ? json_get_str(v, "access_token") : NULL;
        int64_t ttl = 3600;
        if (v && json_get(v, "expires_in")) json_num_int64(json_get(v, "expires_in"), &ttl);
        if (!tok || strlen(tok) >= sizeof tok_cache[0].token) {
            fl_err_clear(err);
            fl_err_set(err, 502, "databricksWorkspaceUrl", "Databricks token endpoint answered "
                                                           "without a usable access_token");
            rc = -1;
        } else {
            snprintf(out, n, "%s", tok);
            pthread_mutex_lock(&tok_mu);
            int slot = 0;   /* same key, else the slot closest to expiry */
            for (int i = 0; i < TOKEN_SLOTS; i++) {
                if (!strcmp(tok_cache[i].key, key)) { slot = i; break; }
                if (tok_cache[i].expires_us < tok_cache[slot].expires_us) slot = i;
            }
            snprintf(tok_cache[slot].key, sizeof tok_cache[slot].key, "%s", key);
            snprintf(tok_cache[slot].token, sizeof tok_cache[slot].token, "%s", tok);
            tok_cache[slot].expires_us = now + ttl * 1000000;
            pthread_mutex_unlock(&tok_mu);
        }
    }
    buf_free(&body);
    buf_free(&resp);
    return rc;
}

/* ---- parameters ---- */
static bool ident_ok(const char *p, size_t n)
{
    if (!n) return false;
    for (size_t i = 0; i < n; i++)
        if (!(p[i] == '_' || p[i] == '-' || (p[i] >= '0' && p[i] <= '9') ||
              (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')))
            return false;
    return true;
}

int dbx_quote_table(buf *out, const char *name)
{
    const char *d1 = name ? strchr(name, '.') : NULL, *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.') || !ident_ok(name, (size_t)(d1 - name)) ||
        !ident_ok(d1 + 1, (size_t)(d2 - d1 - 1)) || !ident_ok(d2 + 1, strlen(d2 + 1)))
        return -1;
    buf_printf(out, "`%.*s`.`%.*s`.`%s`", (int)(d1 - name), name, (int)(d2 - d1 - 1), d1 + 1,
               d2 + 1);
    return 0;
}

void dbx_view_table(buf *out, const char *table, const char *view)
{
    buf_reset(out);
    const char *d = table ? strchr(table, '.') : NULL;
    if (d && !strchr(d + 1, '.')) buf_printf(out, "%s.%s", table, view);
    else buf_puts(out, table ? table : "");
}

int dbx_check(const dbx_target *t, fl_err *err)
{
    if (!t->workspace || (strncmp(t->workspace, "https://", 8) && strncmp(t->workspace, "http://", 7))) {
        fl_err_set(err, 400, "databricksWorkspaceUrl", "databricksWorkspaceUrl is required "
                                                       "(https://<workspace>.cloud.databricks.com)");
        return -1;
    }
    if (!t->warehouse || !*t->warehouse) {
        fl_err_set(err, 400, "databricksWarehouseId", "databricksWarehouseId is required "
                                                      "(the SQL warehouse that runs the MERGE)");
        return -1;
    }
    buf q = BUF_INIT;
    int bad = dbx_quote_table(&q, t->table);
    buf_free(&q);
    if (bad) {
        fl_err_set(err, 400, "tableName", "tableName must be catalog.schema.table (three parts of "
                                          "letters, digits, '_' or '-'), got '%.100s'",
                   t->table ? t->table : "");
        return -1;
    }
    char *bucket = NULL, *prefix = NULL;
    if (!t->staging || strncmp(t->staging, "s3://", 5) ||
        s3_parse_url(t->staging, &bucket, &prefix, err) != 0) {
        fl_err_clear(err);
        fl_err_set(err, 400, "stagingTablePath", "stagingTablePath must be an s3://bucket/prefix "
                                                 "URL the workspace can read, got '%.100s'",
                   t->staging ? t->staging : "");
        return -1;
    }
    free(bucket);
    free(prefix);
    arena *a = arena_new(0);
    char tok[4096];
    int rc = fetch_token(a, trimmed_workspace(a, t->workspace), tok, sizeof tok, err);
    explicit_bzero(tok, sizeof tok);
    arena_free(a);
    return rc;
}

/* ---- statements ---- */
static bool terminal(const char *state)
{
    return state && (!strcmp(state, "SUCCEEDED") || !strcmp(state, "FAILED") ||
                     !strcmp(state, "CANCELED") || !strcmp(state, "CLOSED"));
}

static int statement_outcome(const json_val *v, const char *sql, fl_err *err)
{
    const json_val *st = json_get(v, "status");
    const char *state = json_get_str(st, "state");
    if (state && !strcmp(state, "SUCCEEDED")) return 0;
    const json_val *e = json_get(st, "error");
    const char *code = json_get_str(e, "error_code"), *msg = json_get_str(e, "message");
    fl_err_set(err, 502, "tableName", "Databricks statement %s%s%s%s%s (statement: %.120s)",
               state ? state : "failed", code ? ": " : "", code ? code : "", msg ? ": " : "",
               msg ? msg : "", sql);
    return -1;
}

/* The statement API's named parameters: values that came from users travel apart from
 * the SQL text, so they can never change the statement. */
static void write_params(jw *w, const dbx_param *p, size_t n)
{
    if (!n) return;
    jw_key(w, "parameters");
    jw_arr_begin(w);
    for (size_t i = 0; i < n; i++) {
        jw_obj_begin(w);
        jw_key(w, "name"), jw_str(w, p[i].name);
        jw_key(w, "value"), jw_str(w, p[i].value);
        jw_key(w, "type"), jw_str(w, p[i].type ? p[i].type : "STRING");
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

int dbx_sql(const dbx_target *t, const char *sql, buf *out, fl_err *err)
{
    return dbx_sql_p(t, sql, NULL, 0, out, err);
}

int dbx_sql_p(const dbx_target *t, const char *sql, const dbx_param *params, size_t n_params,
              buf *out, fl_err *err)
{
    arena *a = arena_new(0);
    const char *ws = trimmed_workspace(a, t->workspace);
    char tok[4096];
    if (fetch_token(a, ws, tok, sizeof tok, err) != 0) {
        arena_free(a);
        return -1;
    }
    buf body = BUF_INIT, resp = BUF_INIT;
    jw w;
    jw_init(&w, &body);
    jw_obj_begin(&w);
    jw_key(&w, "warehouse_id"), jw_str(&w, t->warehouse);
    jw_key(&w, "statement"), jw_str(&w, sql);
    jw_key(&w, "wait_timeout"), jw_str(&w, "30s");
    jw_key(&w, "on_wait_timeout"), jw_str(&w, "CONTINUE");
    jw_key(&w, "format"), jw_str(&w, "JSON_ARRAY");
    jw_key(&w, "disposition"), jw_str(&w, "INLINE");
    write_params(&w, params, n_params);
    jw_obj_end(&w);
    http_call c = {.method = "POST", .url = arena_printf(a, "%s/api/2.0/sql/statements", ws),
                   .body = body.p, .ctype = "application/json", .bearer = tok, .out = &resp};
    int rc = http_do(&c, err);
    json_val *v = NULL;
    int64_t deadline = fl_mono_micros() + POLL_LIMIT_US;
    long sleep_ms = 100;
    while (rc == 0) {
        if (c.status != 200) {
            api_error(a, &c, "SQL statement API", "databricksWarehouseId", err);
            rc = -1;
            break;
        }
        v = json_parse(a, resp.p, resp.len, NULL, err);
        const char *id = v ? json_get_str(v, "statement_id") : NULL;
        const char *state = v ? json_get_str(json_get(v, "status"), "state") : NULL;
        if (!v || terminal(state) || !id) {
            rc = v ? statement_outcome(v, sql, err) : -1;
            break;
        }
        if (fl_mono_micros() > deadline) {
            fl_err_set(err, 504, "tableName", "Databricks statement %s still %s after the poll limit",
                       id, state ? state : "running");
            rc = -1;
            break;
        }
        struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (sleep_ms < 2000) sleep_ms *= 2;
        c = (http_call){.method = "GET", .bearer = tok, .out = &resp,
                        .url = arena_printf(a, "%s/api/2.0/sql/statements/%s", ws, id)};
        rc = http_do(&c, err);
    }
    if (rc == 0 && out) {
        buf_reset(out);
        buf_put(out, resp.p, resp.len);
    }
    explicit_bzero(tok, sizeof tok);
    buf_free(&body);
    buf_free(&resp);
    arena_free(a);
    return rc;
}

/* ---- SQL generation ---- */
void dbx_sql_type(buf *out, rows_type t, bool list)
{
    static const char *names[] = {[ROWS_STRING] = "STRING", [ROWS_BOOL] = "BOOLEAN",
                                  [ROWS_INT32] = "INT", [ROWS_INT64] = "BIGINT",
                                  [ROWS_DOUBLE] = "DOUBLE", [ROWS_DECIMAL] = "DECIMAL(38,18)",
                                  [ROWS_DATE] = "DATE", [ROWS_TIMESTAMP] = "TIMESTAMP"};
    const char *n = (unsigned)t <= ROWS_TIMESTAMP ? names[t] : "STRING";
    buf_printf(out, list ? "ARRAY<%s>" : "%s", n);
}

/* `name` with any backquote doubled: column names come from the ViewDefinition, so they
 * are quoted, never pasted (identifiers cannot be statement parameters). */
static void quote_ident(buf *q, const char *qual, const char *name)
{
    buf_puts(q, qual);
    buf_putc(q, '`');
    for (const char *p = name; *p; p++) {
        if (*p == '`') buf_putc(q, '`');
        buf_putc(q, *p);
    }
    buf_putc(q, '`');
}

static void column_defs(buf *q, const rows_schema *s, const bool *only)
{
    bool first = true;
    for (size_t i = 0; i < s->n; i++) {
        if (only && !only[i]) continue;
        if (!first) buf_puts(q, ", ");
        quote_ident(q, "", s->f[i].name);
        buf_putc(q, ' ');
        dbx_sql_type(q, s->f[i].type, s->f[i].list);
        first = false;
    }
}

static void column_list(buf *q, const rows_schema *s, const char *qual)
{
    for (size_t i = 0; i < s->n; i++) {
        if (i) buf_puts(q, ", ");
        quote_ident(q, qual, s->f[i].name);
    }
}

/* Column names of the target from DESCRIBE TABLE (rows: col_name, data_type, comment). */
static void existing_columns(arena *a, const buf *resp, const rows_schema *s, bool *missing)
{
    for (size_t i = 0; i < s->n; i++) missing[i] = true;
    json_val *v = json_parse(a, resp->p, resp->len, NULL, &(fl_err){0});
    const json_val *rows = json_get(json_get(v, "result"), "data_array");
    for (uint32_t r = 0; json_is(rows, JSON_ARRAY) && r < rows->len; r++) {
        const json_val *row = &rows->u.a[r];
        if (!json_is(row, JSON_ARRAY) || !row->len || !json_is(&row->u.a[0], JSON_STRING)) continue;
        const char *name = row->u.a[0].u.s;
        if (!*name || *name == '#') break;   /* partition / detail sections follow */
        for (size_t i = 0; i < s->n; i++)
            if (!strcasecmp(s->f[i].name, name)) missing[i] = false;
    }
}

static void merge_sql(buf *q, const char *target, const char *src, const rows_schema *s,
                      const char *key, bool delete_absent)
{
    buf_printf(q, "MERGE INTO %s AS t USING (SELECT CAST(NULL AS STRING) AS `__fl_key`, ", target);
    column_list(q, s, "");
    buf_printf(q, " FROM %s UNION ALL SELECT ", src);
    quote_ident(q, "", key);
    buf_puts(q, " AS `__fl_key`, ");
    column_list(q, s, "");
    buf_puts(q, " FROM (SELECT ");
    column_list(q, s, "");
    buf_puts(q, ", row_number() OVER (PARTITION BY ");
    quote_ident(q, "", key);
    buf_puts(q, " ORDER BY ");
    quote_ident(q, "", key);
    buf_printf(q, ") AS `__fl_rn` FROM %s) WHERE `__fl_rn` = 1) AS u ON ", src);
    quote_ident(q, "t.", key);
    buf_puts(q, " = u.`__fl_key` WHEN MATCHED THEN DELETE "
                "WHEN NOT MATCHED AND u.`__fl_key` IS NULL THEN INSERT (");
    column_list(q, s, "");
    buf_puts(q, ") VALUES (");
    column_list(q, s, "u.");
    buf_puts(q, ")");
    if (delete_absent && rows_schema_find(s, "is_deleted") >= 0)
        buf_puts(q, " WHEN NOT MATCHED BY SOURCE AND t.`is_deleted` = 0 THEN UPDATE SET "
                    "t.`is_deleted` = 1");
}

/* Append mode: every staged row is inserted, tagged with its batch; a batch whose tag the
 * target already holds was applied before (the MERGE is one Delta commit: all or nothing),
 * so a replay inserts nothing. The key in the join keeps a replay's join small. */
static void append_sql(buf *q, const char *target, const char *src, const rows_schema *s,
                       const char *key)
{
    buf_printf(q, "MERGE INTO %s AS t USING (SELECT ", target);
    column_list(q, s, "");
    /* the target-only conjunct lets Delta prune target files by the tag's min/max stats
     * (each MERGE writes files holding one tag) */
    buf_printf(q, ", CAST(:batch AS STRING) AS `%s` FROM %s) AS u ON t.`%s` = :batch AND "
                  "t.`%s` = u.`%s`",
               DBX_BATCH_COLUMN, src, DBX_BATCH_COLUMN, DBX_BATCH_COLUMN, DBX_BATCH_COLUMN);
    if (key) {
        buf_puts(q, " AND ");
        quote_ident(q, "t.", key);
        buf_puts(q, " <=> ");
        quote_ident(q, "u.", key);
    }
    buf_puts(q, " WHEN NOT MATCHED THEN INSERT (");
    column_list(q, s, "");
    buf_printf(q, ", `%s`) VALUES (", DBX_BATCH_COLUMN);
    column_list(q, s, "u.");
    buf_printf(q, ", u.`%s`)", DBX_BATCH_COLUMN);
}

/* CREATE TABLE IF NOT EXISTS, then ADD COLUMNS for the columns of s the target lacks. */
static int prepare_target(const dbx_target *t, const char *target, const rows_schema *s,
                          fl_err *err)
{
    buf q = BUF_INIT, resp = BUF_INIT;
    arena *a = arena_new(0);
    bool *missing = arena_calloc(a, (s->n + 1) * sizeof *missing);
    buf_printf(&q, "CREATE TABLE IF NOT EXISTS %s (", target);
    column_defs(&q, s, NULL);
    buf_puts(&q, ") USING DELTA");
    int rc = dbx_sql(t, q.p, NULL, err);
    if (rc == 0) {
        buf_reset(&q);
        buf_printf(&q, "DESCRIBE TABLE %s", target);
        rc = dbx_sql(t, q.p, &resp, err);
    }
    if (rc == 0) {
        existing_columns(a, &resp, s, missing);
        bool any = false;
        for (size_t i = 0; i < s->n; i++) any |= missing[i];
        if (any) {   /* the view gained columns since the table was created */
            buf_reset(&q);
            buf_printf(&q, "ALTER TABLE %s ADD COLUMNS (", target);
            column_defs(&q, s, missing);
            buf_puts(&q, ")");
            rc = dbx_sql(t, q.p, NULL, err);
        }
    }
    arena_free(a);
    buf_free(&q);
    buf_free(&resp);
    return rc;
}

/* The target's quoted name and the staged table as delta.`url` (backquotes doubled). */
static int names(const dbx_target *t, const char *staging_url, buf *target, buf *src,
                 fl_err *err)
{
    if (dbx_quote_table(target, t->table) != 0) {
        fl_err_set(err, 400, "tableName", "tableName must be catalog.schema.table");
        return -1;
    }
    quote_ident(src, "delta.", staging_url);
    return 0;
}

int dbx_apply(const dbx_target *t, const char *staging_url, const rows_schema *s,
              const char *key, bool delete_absent, fl_err *err)
{
    buf target = BUF_INIT, src = BUF_INIT, q = BUF_INIT;
    int rc = names(t, staging_url, &target, &src, err);
    if (rc == 0) rc = prepare_target(t, target.p, s, err);
    if (rc == 0) {
        if (key) merge_sql(&q, target.p, src.p, s, key, delete_absent);
        else {
            buf_printf(&q, "INSERT OVERWRITE %s (", target.p);
            column_list(&q, s, "");
            buf_puts(&q, ") SELECT ");
            column_list(&q, s, "");
            buf_printf(&q, " FROM %s", src.p);
        }
        rc = dbx_sql(t, q.p, NULL, err);
    }
    buf_free(&target);
    buf_free(&src);
    buf_free(&q);
    return rc;
}

int dbx_append(const dbx_target *t, const char *staging_url, const rows_schema *s,
               const char *key, const char *batch, fl_err *err)
{
    buf target = BUF_INIT, src = BUF_INIT, q = BUF_INIT;
    rows_schema *ts = rows_schema_copy(s);   /* the target also has the batch tag */
    if (rows_schema_find(ts, DBX_BATCH_COLUMN) < 0)
        rows_schema_add(ts, DBX_BATCH_COLUMN, ROWS_STRING, false);
    int rc = names(t, staging_url, &target, &src, err);
    if (rc == 0) rc = prepare_target(t, target.p, ts, err);
    if (rc == 0) {
        append_sql(&q, target.p, src.p, s, key);
        dbx_param p = {.name = "batch", .value = batch};
        rc = dbx_sql_p(t, q.p, &p, 1, NULL, err);
    }
    rows_schema_free(ts);
    buf_free(&target);
    buf_free(&src);
    buf_free(&q);
    return rc;
}

static int delete_listed(objstore *os, const char *prefix, fl_err *err)
{
    objstore_listing l;
    if (objstore_list(os, prefix, NULL, &l, err) != 0) return -1;
    int rc = 0;
    for (size_t i = 0; i < l.n && rc == 0; i++) rc = objstore_delete(os, l.e[i].key, err);
    objstore_list_free(&l);
    return rc;
}

int dbx_drop_staging(const char *staging_url, fl_err *err)
{
    objstore *os = objstore_open(staging_url, false, err);
    if (!os) return err->status == 404 ? (fl_err_clear(err), 0) : -1;
    int rc = delete_listed(os, "", err);
    if (rc == 0) rc = delete_listed(os, "_delta_log/", err);
    objstore_close(os);
    return rc;
}
