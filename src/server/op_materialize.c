/* op_materialize.c: $materialize — writes a ViewDefinition's rows into DATA/sof.db, a plain
 * SQLite file the user ATTACHes as `sof`:
 *     sqlite3 DATA/fhirlake.db "ATTACH 'DATA/sof.db' AS sof" "SELECT * FROM sof.patient_flat"
 * (or opens sof.db directly). Types:
 *   materialized-view  a table filled from the snapshot at the call, refreshed on request;
 *   view (default)     the same, said so in the response: a live SQL view over the store's
 *                      JSON would need the view compiled to SQLite json_* SQL, not done;
 *   table              filled now, then kept current INSIDE every resource write: sof.db is
 *                      ATTACHed to the store's write connection (store_attach) and a store
 *                      listener evaluates the view for each changed resource of its type,
 *                      deletes the rows of that key and inserts the new ones, and sets the
 *                      table's watermark to the write's ts — all in the write's transaction.
 *                      A view failing on a resource fails that write (the table must stay
 *                      equal to the view over the store). Needs a key column (id or
 *                      getResourceKey()).
 * Guarantee for `table` (SQLite WAL commits atomically per file, not across files):
 *  - a reader of sof.db never sees a partial write request: the rows and the watermark of
 *    one request commit together in sof.db;
 *  - a write acknowledged to its client is in both files; fhirlake.db commits first, so a
 *    crash (kill -9) between the two file commits leaves sof.db BEHIND the store, never
 *    ahead: watermark < the store's newest ts. On the next start, before
 *    the server takes requests, each table is reconciled by re-applying store_changes()
 *    after its watermark (replacing rows per key is idempotent), so after a restart
 *    sof.<name> equals the view over the store again. After a power loss (not a kill),
 *    sof.db's WAL, which the store does not fsync, can also keep a commit whose store
 *    group was lost (unacknowledged writes): a watermark past the store's newest ts makes
 *    the start refill that table from the store's snapshot;
 *  - while a $materialize fill holds sof.db's write lock, writes wait for it (SQLite busy
 *    timeout of the store, 10 s; a longer fill makes them fail with 500 rather than
 *    diverge). An I/O error committing sof.db after fhirlake.db committed reports the
 *    write as failed although the store has it (the next start reconciles the table).
 *    Every write transaction locks sof.db too, so sof.db is for reading: a user holding
 *    a write transaction on it stalls (after 10 s fails) the store's writes.
 * The registry table sof._fhirlake_views (name, type, view, watermark) lists them; for a
 * `table` the watermark is the ts of the last write applied to it. */
#include "op_view.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../format/text.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

typedef struct tab {         /* a `table` view the listener keeps current */
    char *name;
    arena *a;                /* holds the view's JSON */
    sof_view *v;
} tab;

/* Lock order: mu, then sof.db's write lock (BEGIN IMMEDIATE on db), then tmu. The store's
 * writer takes sof.db's write lock before calling the listener, which takes tmu: so tabs
 * only change while no write is between its BEGIN and COMMIT. */
typedef struct mat {
    sqlite3 *db;             /* own connection to sof.db, for fills (under mu) */
    pthread_mutex_t mu;      /* serializes $materialize calls and the use of db */
    pthread_mutex_t tmu;     /* guards tabs */
    tab *tabs;
    size_t n_tabs;
    bool listening;
    store *s;
} mat;

static int exec(sqlite3 *db, const char *sql, fl_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    if (err) fl_err_set(err, 500, "sof.db", "sqlite: %s", msg ? msg : "error");
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
    sqlite3 *db;             /* sof.db's connection, or the store's writer (schema "sof.") */
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
        fl_err_set(&f->err, 500, "sof.db", "insert: %s", sqlite3_errmsg(f->db));
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
    f->ctx->has_cts = r->cts > 0;
    f->ctx->cts_us = r->cts;
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

static bool fill_prepare(fill *f, const char *schema, const char *name)
{
    const rows_schema *s = sof_view_schema(f->v);
    buf q = BUF_INIT;
    buf_puts(&q, "INSERT INTO ");
    buf_puts(&q, schema);
    quote_ident(&q, name);
    buf_puts(&q, " VALUES (");
    for (size_t c = 0; c < s->n; c++) buf_puts(&q, c ? ",?" : "?");
    buf_puts(&q, ")");
    bool ok = sqlite3_prepare_v2(f->db, q.p, -1, &f->ins, NULL) == SQLITE_OK;
    f->key = sof_view_key_column(f->v);
    if (ok && f->key >= 0) {
        buf_reset(&q);
        buf_puts(&q, "DELETE FROM ");
        buf_puts(&q, schema);
        quote_ident(&q, name);
        buf_puts(&q, " WHERE ");
        quote_ident(&q, s->f[f->key].name);
        buf_puts(&q, " = ?");
        ok = sqlite3_prepare_v2(f->db, q.p, -1, &f->del, NULL) == SQLITE_OK;
    }
    if (!ok) fl_err_set(&f->err, 500, "sof.db", "prepare: %s", sqlite3_errmsg(f->db));
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

static void load_tabs(mat *m);

/* (Re)creates table name from the snapshot at *W, in one sof.db transaction. mu held.
 * W is read only once sof.db's write lock is held: every write with ts <= W has then
 * finished its sof.db part, and every later one applies itself to the new table (tabs
 * is reloaded before COMMIT, while the writer still waits for the lock). */
static int materialize(mat *m, const sof_view *v, const json_val *vj, const char *name,
                       const char *type, int64_t *W_out, int64_t *rows, fl_err *err)
{
    if (exec(m->db, "BEGIN IMMEDIATE", err)) return -1;
    int64_t W = *W_out = store_max_ts(m->s);
    buf q = BUF_INIT;
    buf_puts(&q, "DROP TABLE IF EXISTS ");
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
    if (rc) {
        exec(m->db, "ROLLBACK", NULL);
        return -1;
    }
    fill f = {.db = m->db, .v = v, .ctx = sof_ctx_new(), .pa = arena_new(0),
              .b = rows_batch_new(sof_view_schema(v))};
    fl_err_clear(&f.err);
    bool ok = fill_prepare(&f, "", name) &&
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
    pthread_mutex_lock(&m->tmu);
    load_tabs(m);
    rc = exec(m->db, "COMMIT", err);
    if (rc) {
        exec(m->db, "ROLLBACK", NULL);
        load_tabs(m);
    }
    pthread_mutex_unlock(&m->tmu);
    return rc;
}

/* ---- `table`: the listener and the start-up reconciliation ---- */
static void free_tabs(mat *m)
{
    for (size_t i = 0; i < m->n_tabs; i++) {
        free(m->tabs[i].name);
        sof_free(m->tabs[i].v);
        arena_free(m->tabs[i].a);
    }
    free(m->tabs);
    m->tabs = NULL;
    m->n_tabs = 0;
}

/* Rebuilds tabs from the registry as db sees it (inside its transaction). tmu held. */
static void load_tabs(mat *m)
{
    free_tabs(m);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(m->db, "SELECT name, view FROM _fhirlake_views WHERE type = 'table'",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        fl_err err;
        fl_err_clear(&err);
        const char *view = (const char *)sqlite3_column_text(st, 1);
        arena *a = arena_new(0);
        json_val *vj = view ? json_parse(a, view, strlen(view), NULL, &err) : NULL;
        sof_view *v = vj ? sof_compile(vj, SOF_KEEP_TEXT, &err) : NULL;
        if (v && sof_view_key_column(v) < 0) { /* registered by an older version */
            fl_err_set(&err, 400, "", "no key column: cannot replace a resource's rows");
            sof_free(v);
            v = NULL;
        }
        if (!v) {
            fl_log(FL_LOG_WARN, "materialize: table %s is not kept current: %s",
                   sqlite3_column_text(st, 0), err.msg);
            arena_free(a);
            continue;
        }
        m->tabs = realloc(m->tabs, (m->n_tabs + 1) * sizeof *m->tabs);
        if (!m->tabs) abort();
        m->tabs[m->n_tabs++] = (tab){strdup((const char *)sqlite3_column_text(st, 0)), a, v};
    }
    sqlite3_finalize(st);
}

static int set_watermark(sqlite3 *db, const char *schema, const char *name, int64_t ts,
                         fl_err *err)
{
    char q[160];
    snprintf(q, sizeof q, "UPDATE %s_fhirlake_views SET watermark = ?1 WHERE name = ?2", schema);
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int64(st, 1, ts);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    if (!ok) fl_err_set(err, 500, "sof.db", "watermark: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* Replaces, through db, the rows of the resource r in table t, or (r NULL) of every
 * resource of its type changed in (since, W]. */
static int apply_one(sqlite3 *db, const char *schema, const tab *t, const store_res *r,
                     int64_t since, int64_t W, store *s, fl_err *err)
{
    fill f = {.db = db, .v = t->v, .changes = true, .ctx = sof_ctx_new(), .pa = arena_new(0),
              .b = rows_batch_new(sof_view_schema(t->v))};
    fl_err_clear(&f.err);
    bool ok = fill_prepare(&f, schema, t->name);
    if (ok && r) ok = on_res(&f, r) == 0;
    else if (ok) ok = store_changes(s, sof_view_resource_type(t->v), since, W, on_res, &f,
                                    &f.err) == 0;
    ok = ok && FL_OK(&f.err) && fill_flush(&f);
    if (!ok) *err = f.err;
    fill_free(&f);
    return ok ? 0 : -1;
}

/* Store listener: inside the write transaction (sof.db is attached to it as `sof`). */
static int on_change(void *ctx, store_tx *tx, const store_res *r, fl_err *err)
{
    mat *m = ctx;
    sqlite3 *db = store_tx_sqlite(tx);
    int rc = 0;
    pthread_mutex_lock(&m->tmu);
    for (size_t i = 0; rc == 0 && i < m->n_tabs; i++) {
        const tab *t = &m->tabs[i];
        if (strcmp(sof_view_resource_type(t->v), r->type)) continue;
        rc = apply_one(db, "sof.", t, r, 0, 0, NULL, err);
        if (rc == 0) rc = set_watermark(db, "sof.", t->name, r->ts, err);
        if (rc) {
            char w[256];
            snprintf(w, sizeof w, "$materialize table %s: %s", t->name, err->where);
            snprintf(err->where, sizeof err->where, "%s", w);
        }
    }
    pthread_mutex_unlock(&m->tmu);
    return rc;
}

/* Empties table t and fills it from the snapshot at W, through m->db (in its transaction). */
static int refill(mat *m, const tab *t, int64_t W, fl_err *err)
{
    buf q = BUF_INIT;
    buf_puts(&q, "DELETE FROM ");
    quote_ident(&q, t->name);
    int rc = exec(m->db, q.p, err);
    buf_free(&q);
    if (rc) return -1;
    fill f = {.db = m->db, .v = t->v, .ctx = sof_ctx_new(), .pa = arena_new(0),
              .b = rows_batch_new(sof_view_schema(t->v))};
    fl_err_clear(&f.err);
    bool ok = fill_prepare(&f, "", t->name) &&
              store_scan(m->s, sof_view_resource_type(t->v), W, 0, on_res, &f, &f.err) == 0 &&
              FL_OK(&f.err) && fill_flush(&f);
    if (!ok) *err = f.err;
    fill_free(&f);
    return ok ? 0 : -1;
}

/* At start: each `table` catches up with the writes after its watermark (those a crash
 * between the fhirlake.db and sof.db commits left out), under sof.db's write lock so no
 * write slips between the replay and the listener taking over. */
static int reconcile(mat *m, fl_err *err)
{
    pthread_mutex_lock(&m->mu);
    int rc = exec(m->db, "BEGIN IMMEDIATE", err);
    int64_t W = store_max_ts(m->s);
    pthread_mutex_lock(&m->tmu);
    if (rc == 0) load_tabs(m);
    for (size_t i = 0; rc == 0 && i < m->n_tabs; i++) {
        const tab *t = &m->tabs[i];
        sqlite3_stmt *st = NULL;
        int64_t wm = W;
        if (sqlite3_prepare_v2(m->db, "SELECT watermark FROM _fhirlake_views WHERE name = ?1",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW) wm = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
        if (wm == W) continue;
        if (wm > W) { /* ahead: the store lost unsynced commits (power loss), sof.db not */
            fl_log(FL_LOG_WARN, "materialize: table %s ahead of the store (%lld > %lld), "
                   "refilling it from the store", t->name, (long long)wm, (long long)W);
            rc = refill(m, t, W, err);
        } else {
            fl_log(FL_LOG_INFO, "materialize: table %s behind the store, re-applying changes "
                   "after %lld", t->name, (long long)wm);
            rc = apply_one(m->db, "", t, NULL, wm, W, m->s, err);
        }
        if (rc == 0) rc = set_watermark(m->db, "", t->name, W, err);
    }
    if (rc == 0) rc = exec(m->db, "COMMIT", err);
    if (rc) {
        exec(m->db, "ROLLBACK", NULL);
        load_tabs(m);
    }
    pthread_mutex_unlock(&m->tmu);
    pthread_mutex_unlock(&m->mu);
    return rc;
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
        return "table: kept current inside every resource write's transaction (sof.db is "
               "attached to the store's writer; a crash between the two file commits is healed "
               "at the next start from the table's watermark)";
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
    if (v && FL_OK(&err) && !strcmp(type, "table") && sof_view_key_column(v) < 0)
        fl_err_set(&err, 400, "type", "type table needs a key column (path id or "
                   "getResourceKey()) to replace a resource's rows on each write");
    int64_t rows = 0, W = 0;
    if (FL_OK(&err)) {
        pthread_mutex_lock(&m->mu);
        materialize(m, v, vj, name, type, &W, &rows, &err);
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
    pthread_mutex_init(&m->tmu, NULL);
    c->mat = m;
    char *path = NULL;
    if (asprintf(&path, "%s/sof.db", c->data) < 0) abort();
    int rc = sqlite3_open(path, &m->db);
    if (rc != SQLITE_OK ||
        exec(m->db, "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; CREATE TABLE IF NOT "
                    "EXISTS _fhirlake_views (name TEXT PRIMARY KEY, type TEXT, view TEXT, "
                    "watermark INTEGER)", err) ||
        store_attach(c->s, path, "sof", err) || store_add_listener(c->s, on_change, m, err)) {
        free(path);
        return -1;
    }
    free(path);
    m->listening = true;
    if (reconcile(m, err)) return -1;
    http_register_operation("materialize", HTTP_OP_INSTANCE | HTTP_OP_TYPE, "ViewDefinition",
                            op_materialize, c);
    return 0;
}

void op_materialize_shutdown(op_view_ctx *c)
{
    mat *m = c->mat;
    if (!m) return;
    if (m->listening) store_remove_listener(m->s, on_change, m);
    free_tabs(m);
    sqlite3_close(m->db);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->tmu);
    free(m);
    c->mat = NULL;
}
