/* op_materialize.c: $materialize — writes a ViewDefinition's rows into DATA/sof.db, a plain
 * SQLite file the user ATTACHes as `sof`:
 *     sqlite3 DATA/fhirlake.db "ATTACH 'DATA/sof.db' AS sof" "SELECT * FROM sof.patient_flat"
 * (or opens sof.db directly). Types:
 *   materialized-view  a table filled from the snapshot at the call, refreshed on request;
 *   view (default)     the same, said so in the response: a live SQL view over the store's
 *                      JSON would need the view compiled to SQLite json_* SQL, not done;
 *   table              filled now, then kept current by an applier thread that follows
 *                      store_changes() (lag: its poll interval). It is NOT in the same
 *                      transaction as the resource write: the store has one listener hook
 *                      (taken by subscriptions) and a second SQLite file cannot join the
 *                      store's transaction atomically in WAL mode anyway.
 * The registry table sof._fhirlake_views (name, type, view, watermark) lists them. */
#include "op_view.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../format/text.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

#define APPLY_INTERVAL_MS 200

typedef struct mat {
    sqlite3 *db;
    pthread_mutex_t mu;
    pthread_t th;
    bool stop, started;
    pthread_cond_t cv;
    store *s;
} mat;

static int exec(sqlite3 *db, const char *sql, fl_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    fl_err_set(err, 500, "sof.db", "sqlite: %s", msg ? msg : "error");
    sqlite3_free(msg);
    return -1;
}

static const char *sql_type(const rows_field *f)
{
    if (f->list) return "TEXT";
    switch (f->type) {
    case ROWS_BOOL: case ROWS_INT32: case ROWS_INT64: return "INTEGER";
    case ROWS_DOUBLE: return "REAL";
    default: return "TEXT";
    }
}

/* ---- filling a table ---- */
typedef struct fill {
    mat *m;
    const sof_view *v;
    sof_ctx *ctx;
    arena *pa;
    rows_batch *b;
    sqlite3_stmt *ins, *del;
    int key;
    int64_t rows, max_ts;
    bool changes;            /* applying store_changes: replace rows of each id */
    const bool *json;        /* JSON-text columns */
    fl_err err;
} fill;

/* A JSON-text column (SOF_KEEP_TEXT): strings are stored unquoted, numbers as numbers,
 * anything else as its JSON text. */
static void bind_json(fill *f, int i, rows_str s)
{
    fl_err err;
    fl_err_clear(&err);
    arena_reset(f->pa);
    json_val *v = json_parse(f->pa, s.p, s.len, NULL, &err);
    int64_t n;
    double d;
    if (v && v->type == JSON_STRING) sqlite3_bind_text(f->ins, i, v->u.s, (int)v->len, SQLITE_TRANSIENT);
    else if (v && v->type == JSON_NUMBER && !json_num_int64(v, &n)) sqlite3_bind_int64(f->ins, i, n);
    else if (v && v->type == JSON_NUMBER && !json_num_double(v, &d)) sqlite3_bind_double(f->ins, i, d);
    else if (v && (v->type == JSON_TRUE || v->type == JSON_FALSE)) sqlite3_bind_int(f->ins, i, v->type == JSON_TRUE);
    else sqlite3_bind_text(f->ins, i, s.p, (int)s.len, SQLITE_TRANSIENT);
}

static bool bind_row(fill *f, size_t row)
{
    const rows_schema *s = f->b->schema;
    sqlite3_reset(f->ins);
    for (size_t c = 0; c < s->n; c++) {
        int i = (int)c + 1;
        const rows_value *v = rows_get(f->b, c, row);
        if (rows_is_null(f->b, c, row)) sqlite3_bind_null(f->ins, i);
        else if (s->f[c].list) {
            buf t = BUF_INIT;
            jw w;
            jw_init(&w, &t);
            text_cell_json(&w, f->b, NULL, c, row);
            sqlite3_bind_text(f->ins, i, t.p, (int)t.len, SQLITE_TRANSIENT);
            buf_free(&t);
        } else if (!strcmp(sql_type(&s->f[c]), "INTEGER")) sqlite3_bind_int64(f->ins, i, v->i);
        else if (s->f[c].type == ROWS_DOUBLE) sqlite3_bind_double(f->ins, i, v->d);
        else if (f->json && f->json[c]) bind_json(f, i, v->s);
        else sqlite3_bind_text(f->ins, i, v->s.p, (int)v->s.len, SQLITE_TRANSIENT);
    }
    if (sqlite3_step(f->ins) != SQLITE_DONE) {
        fl_err_set(&f->err, 500, "sof.db", "insert: %s", sqlite3_errmsg(f->m->db));
        return false;
    }
    return true;
}

static bool fill_flush(fill *f)
{
    f->json = sof_view_json_columns(f->v);
    for (size_t r = 0; r < f->b->n_rows; r++)
        if (!bind_row(f, r)) return false;
    f->rows += (int64_t)f->b->n_rows;
    rows_batch_clear(f->b);
    return true;
}

static int on_res(void *ctx, const store_res *r)
{
    fill *f = ctx;
    if (r->ts > f->max_ts) f->max_ts = r->ts;
    if (f->changes && f->key >= 0) { /* the new state of this id replaces its rows */
        if (!fill_flush(f)) return 1;
        sqlite3_reset(f->del);
        sqlite3_bind_text(f->del, 1, r->id, -1, SQLITE_TRANSIENT);
        sqlite3_step(f->del);
    }
    if (r->deleted) return 0;
    arena_reset(f->pa);
    json_val *res = json_parse(f->pa, r->body, r->body_len, NULL, &f->err);
    if (!res) return 1;
    f->ctx->has_ts = true;
    f->ctx->ts_us = r->ts;
    if (sof_eval(f->v, f->ctx, res, f->b, &f->err) < 0) {
        char w[256];
        snprintf(w, sizeof w, "%s/%s.%s", r->type, r->id, f->err.where);
        snprintf(f->err.where, sizeof f->err.where, "%s", w);
        return 1;
    }
    return f->b->n_rows >= 1024 && !fill_flush(f);
}

static void quote_ident(buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"') buf_putc(b, '"');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

static bool fill_prepare(fill *f, const char *name)
{
    const rows_schema *s = sof_view_schema(f->v);
    buf q = BUF_INIT;
    buf_puts(&q, "INSERT INTO ");
    quote_ident(&q, name);
    buf_puts(&q, " VALUES (");
    for (size_t c = 0; c < s->n; c++) buf_puts(&q, c ? ",?" : "?");
    buf_puts(&q, ")");
    bool ok = sqlite3_prepare_v2(f->m->db, q.p, -1, &f->ins, NULL) == SQLITE_OK;
    f->key = sof_view_key_column(f->v);
    if (ok && f->key >= 0) {
        buf_reset(&q);
        buf_puts(&q, "DELETE FROM ");
        quote_ident(&q, name);
        buf_puts(&q, " WHERE ");
        quote_ident(&q, s->f[f->key].name);
        buf_puts(&q, " = ?");
        ok = sqlite3_prepare_v2(f->m->db, q.p, -1, &f->del, NULL) == SQLITE_OK;
    }
    if (!ok) fl_err_set(&f->err, 500, "sof.db", "prepare: %s", sqlite3_errmsg(f->m->db));
    buf_free(&q);
    return ok;
}

static void fill_free(fill *f)
{
    sqlite3_finalize(f->ins);
    sqlite3_finalize(f->del);
    rows_batch_free(f->b);
    arena_free(f->pa);
    sof_ctx_free(f->ctx);
}

/* (Re)creates table name from the snapshot at W, in one sof.db transaction. mu held. */
static int materialize(mat *m, const sof_view *v, const json_val *vj, const char *name,
                       const char *type, int64_t W, int64_t *rows, fl_err *err)
{
    buf q = BUF_INIT;
    buf_puts(&q, "BEGIN IMMEDIATE; DROP TABLE IF EXISTS ");
    quote_ident(&q, name);
    buf_puts(&q, "; CREATE TABLE ");
    quote_ident(&q, name);
    buf_puts(&q, " (");
    const rows_schema *s = sof_view_schema(v);
    for (size_t c = 0; c < s->n; c++) {
        if (c) buf_puts(&q, ", ");
        quote_ident(&q, s->f[c].name);
        buf_printf(&q, " %s", sql_type(&s->f[c]));
    }
    buf_puts(&q, ");");
    int rc = exec(m->db, q.p, err);
    buf_free(&q);
    if (rc) return -1;
    fill f = {.m = m, .v = v, .ctx = sof_ctx_new(), .pa = arena_new(0),
              .b = rows_batch_new(sof_view_schema(v))};
    fl_err_clear(&f.err);
    bool ok = fill_prepare(&f, name) &&
              store_scan(m->s, sof_view_resource_type(v), W, 0, on_res, &f, &f.err) == 0 &&
              FL_OK(&f.err) && fill_flush(&f);
    if (ok) {
        sqlite3_stmt *st = NULL;
        buf vt = BUF_INIT;
        json_write(&vt, vj, false);
        ok = sqlite3_prepare_v2(m->db, "INSERT OR REPLACE INTO _fhirlake_views VALUES (?,?,?,?)",
                                -1, &st, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, type, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 3, vt.p, (int)vt.len, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 4, W);
            ok = sqlite3_step(st) == SQLITE_DONE;
        }
        sqlite3_finalize(st);
        buf_free(&vt);
        if (!ok) fl_err_set(&f.err, 500, "sof.db", "registry: %s", sqlite3_errmsg(m->db));
    }
    *rows = f.rows;
    fill_free(&f);
    if (!ok) {
        *err = f.err;
        exec(m->db, "ROLLBACK", &f.err);
        return -1;
    }
    return exec(m->db, "COMMIT", err);
}

/* ---- the `table` applier ---- */
typedef struct reg_row {
    char *name, *view;
    int64_t wm;
} reg_row;

/* Applies the changes after each `table` view's watermark. mu held. */
static void apply_changes(mat *m)
{
    int64_t W = store_max_ts(m->s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(m->db, "SELECT name, view, watermark FROM _fhirlake_views WHERE "
                                  "type = 'table' AND watermark < ?", -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, W);
    reg_row rows[64];
    int n = 0;
    while (n < 64 && sqlite3_step(st) == SQLITE_ROW)
        rows[n++] = (reg_row){strdup((const char *)sqlite3_column_text(st, 0)),
                              strdup((const char *)sqlite3_column_text(st, 1)),
                              sqlite3_column_int64(st, 2)};
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++) {
        fl_err err;
        fl_err_clear(&err);
        arena *a = arena_new(0);
        json_val *vj = json_parse(a, rows[i].view, strlen(rows[i].view), NULL, &err);
        sof_view *v = vj ? sof_compile(vj, SOF_KEEP_TEXT, &err) : NULL;
        fill f = {.m = m, .v = v, .changes = true, .ctx = sof_ctx_new(), .pa = arena_new(0),
                  .b = v ? rows_batch_new(sof_view_schema(v)) : NULL};
        fl_err_clear(&f.err);
        bool ok = v && exec(m->db, "BEGIN IMMEDIATE", &err) == 0;
        if (ok) {
            ok = fill_prepare(&f, rows[i].name) &&
                 store_changes(m->s, sof_view_resource_type(v), rows[i].wm, W, on_res, &f,
                               &f.err) == 0 && FL_OK(&f.err) && fill_flush(&f);
            char q[600];
            snprintf(q, sizeof q, "UPDATE _fhirlake_views SET watermark = %lld WHERE name = '%s'",
                     (long long)W, rows[i].name); /* name is a validated sql name */
            ok = ok && exec(m->db, q, &err) == 0;
            exec(m->db, ok ? "COMMIT" : "ROLLBACK", &err);
        }
        if (!ok) fl_log(FL_LOG_WARN, "materialize: table %s not applied: %s", rows[i].name, f.err.msg);
        fill_free(&f);
        sof_free(v);
        arena_free(a);
        free(rows[i].name);
        free(rows[i].view);
    }
}

static void *applier(void *arg)
{
    mat *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += APPLY_INTERVAL_MS * 1000000L;
        t.tv_sec += t.tv_nsec / 1000000000L;
        t.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&m->cv, &m->mu, &t);
        if (!m->stop) apply_changes(m);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- the operation ---- */
static void str_param(jw *w, const char *name, const char *vt, const char *v)
{
    jw_obj_begin(w);
    jw_key(w, "name");
    jw_str(w, name);
    jw_key(w, vt);
    jw_str(w, v);
    jw_obj_end(w);
}

static void schema_param(jw *w, const sof_view *v)
{
    const rows_schema *s = sof_view_schema(v);
    jw_obj_begin(w);
    jw_key(w, "name");
    jw_str(w, "viewSchema");
    jw_key(w, "part");
    jw_arr_begin(w);
    for (size_t c = 0; c < s->n; c++) {
        jw_obj_begin(w);
        jw_key(w, "name");
        jw_str(w, "column");
        jw_key(w, "part");
        jw_arr_begin(w);
        str_param(w, "name", "valueString", s->f[c].name);
        const char *ft = sof_view_column_fhir_type(v, c);
        str_param(w, "type", "valueString", ft ? ft : "string");
        str_param(w, "sqlType", "valueString", sql_type(&s->f[c]));
        jw_arr_end(w);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_obj_end(w);
}

static const char *type_note(const char *type)
{
    if (!strcmp(type, "view"))
        return "view: materialized at call time like materialized-view (a live SQL view over the "
               "stored JSON is not implemented); call $materialize again to refresh";
    if (!strcmp(type, "table"))
        return "table: kept current by an applier following the store's changes (eventually "
               "consistent, not in the write's transaction)";
    return "materialized-view: refreshed on request (call $materialize again)";
}

static bool sql_name_ok(const char *n)
{
    if (!n || !*n || strlen(n) > 100 || (*n >= '0' && *n <= '9')) return false;
    for (; *n; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') || *n == '_'))
            return false;
    return true;
}

static int op_materialize(void *ctx, const http_req *req, http_resp *resp)
{
    op_view_ctx *c = ctx;
    mat *m = c->mat;
    bool bad;
    const json_val *body = opv_body(req, resp, &bad);
    if (bad) return resp->status;
    fl_err err;
    fl_err_clear(&err);
    const char *type = opv_get(req, body, "type");
    if (!type) type = "view";
    if (strcmp(type, "view") && strcmp(type, "materialized-view") && strcmp(type, "table")) {
        http_outcome(resp, 400, "type must be view, materialized-view or table", "type");
        return 400;
    }
    const json_val *vj = opv_request_view(req, body, &err);
    sof_view *v = vj ? sof_compile(vj, SOF_KEEP_TEXT, &err) : NULL;
    const char *name = v && sof_view_name(v) ? sof_view_name(v) : vj ? json_get_str(vj, "id") : NULL;
    if (v && !sql_name_ok(name))
        fl_err_set(&err, 400, "name", "the view needs a name (or id) that is a sql name");
    int64_t rows = 0, W = store_max_ts(c->s);
    if (FL_OK(&err)) {
        pthread_mutex_lock(&m->mu);
        materialize(m, v, vj, name, type, W, &rows, &err);
        pthread_mutex_unlock(&m->mu);
    }
    if (!FL_OK(&err)) {
        sof_free(v);
        http_outcome_err(resp, &err);
        return resp->status;
    }
    jw w;
    jw_init(&w, &resp->body);
    jw_obj_begin(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "Parameters");
    jw_key(&w, "parameter");
    jw_arr_begin(&w);
    str_param(&w, "viewName", "valueString", arena_printf(req->a, "sof.%s", name));
    str_param(&w, "viewType", "valueCode", type);
    schema_param(&w, v);
    str_param(&w, "database", "valueString", arena_printf(req->a, "%s/sof.db", c->data));
    char t[40];
    fl_time_format(W, t);
    str_param(&w, "watermark", "valueInstant", t);
    str_param(&w, "rowCount", "valueString", arena_printf(req->a, "%lld", (long long)rows));
    str_param(&w, "note", "valueString", type_note(type));
    jw_arr_end(&w);
    jw_obj_end(&w);
    sof_free(v);
    return 200;
}

int op_materialize_register(op_view_ctx *c, fl_err *err)
{
    mat *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->s = c->s;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    c->mat = m;
    char *path = NULL;
    if (asprintf(&path, "%s/sof.db", c->data) < 0) abort();
    int rc = sqlite3_open(path, &m->db);
    free(path);
    if (rc != SQLITE_OK ||
        exec(m->db, "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; CREATE TABLE IF NOT "
                    "EXISTS _fhirlake_views (name TEXT PRIMARY KEY, type TEXT, view TEXT, "
                    "watermark INTEGER)", err))
        return -1;
    pthread_create(&m->th, NULL, applier, m);
    m->started = true;
    http_register_operation("materialize", HTTP_OP_INSTANCE | HTTP_OP_TYPE, "ViewDefinition",
                            op_materialize, c);
    return 0;
}

void op_materialize_shutdown(op_view_ctx *c)
{
    mat *m = c->mat;
    if (!m) return;
    if (m->started) {
        pthread_mutex_lock(&m->mu);
        m->stop = true;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->th, NULL);
    }
    sqlite3_close(m->db);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
    c->mat = NULL;
}
