/* deliver.c: one delivery worker per destination — waits for the destination's write to
 * commit, resolves and compiles its view, runs the initial export at W = the creation ts,
 * then turns queued outbox events into Delta commits (one per batch, txn appId =
 * destination id, version = batch number), persisting its position and counters in the
 * store's job table so a restart resumes exactly where the table is. */
#include "subs_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lake/lake.h"
#include "../sof/sof.h"

#define EXPORT_CHUNK 5000     /* resources per initial-export commit (FL_SUBS_EXPORT_CHUNK) */
#define POLL_MS 20            /* queue poll when idle (listener wakes us earlier) */
#define BACKOFF_MAX_MS 10000

/* ---- persisted state ---- */
static int64_t jint(const json_val *o, const char *k)
{
    int64_t v = 0;
    const json_val *j = json_get(o, k);
    if (json_is(j, JSON_NUMBER)) json_num_int64(j, &v);
    return v;
}

static void jstr(const json_val *o, const char *k, char *out, size_t n)
{
    const char *s = json_get_str(o, k);
    snprintf(out, n, "%s", s ? s : "");
}

int subs_state_load(store *s, const char *queue, subs_state *st, bool *found)
{
    arena *a = arena_new(0);
    char id[160];
    snprintf(id, sizeof id, "subs:%s", queue);
    store_job j;
    fl_err e;
    fl_err_clear(&e);
    *found = false;
    int rc = 0;
    if (store_job_get(s, a, id, &j, &e) == 0) {
        json_val *o = json_parse(a, j.state, strlen(j.state), NULL, &e);
        if (o) {
            st->last_seq = jint(o, "lastSeq");
            st->next_batch = jint(o, "nextBatch");
            st->pending_batch = jint(o, "pendingBatch");
            st->pending_upto = jint(o, "pendingUpto");
            st->delivered = jint(o, "delivered");
            st->attempts = jint(o, "attempts");
            st->eval_errors = jint(o, "evalErrors");
            st->export_chunks = jint(o, "exportChunks");
            st->chunk_size = jint(o, "chunkSize");
            st->rows_sent = jint(o, "rowsSent");
            st->view_version = jint(o, "viewVersion");
            jstr(o, "exportStatus", st->export_status, sizeof st->export_status);
            jstr(o, "viewId", st->view_id, sizeof st->view_id);
            jstr(o, "lastError", st->last_error, sizeof st->last_error);
            *found = true;
        } else {
            rc = -1;
        }
    } else if (e.status != 404) {
        rc = -1;
    }
    arena_free(a);
    return rc;
}

int subs_state_save(store *s, const char *queue, const subs_state *st, fl_err *err)
{
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b);
    jw_obj_begin(&w);
#define I(k, v) (jw_key(&w, k), jw_int(&w, v))
    I("lastSeq", st->last_seq);
    I("nextBatch", st->next_batch);
    I("pendingBatch", st->pending_batch);
    I("pendingUpto", st->pending_upto);
    I("delivered", st->delivered);
    I("attempts", st->attempts);
    I("evalErrors", st->eval_errors);
    I("exportChunks", st->export_chunks);
    I("chunkSize", st->chunk_size);
    I("rowsSent", st->rows_sent);
    I("viewVersion", st->view_version);
#undef I
    jw_key(&w, "exportStatus");
    jw_str(&w, st->export_status);
    jw_key(&w, "viewId");
    jw_str(&w, st->view_id);
    jw_key(&w, "lastError");
    jw_str(&w, st->last_error);
    jw_obj_end(&w);
    buf_putc(&b, 0);
    char id[160];
    snprintf(id, sizeof id, "subs:%s", queue);
    store_job j = {.id = id, .kind = "subs-destination", .status = st->export_status,
                   .state = b.p};
    int rc = store_job_put(s, &j, err);
    buf_free(&b);
    return rc;
}

/* ---- worker context ---- */
typedef struct worker {
    subs_dest *d;
    subs *sb;
    store *s;
    sof_view *view;
    rows_schema *schema;     /* view columns + is_deleted */
    int col_key, col_ts, col_del;
    char *table;
    char app_id[160];
    sof_ctx *sc;
    rows_batch *rows;
    arena *a;                /* per batch */
    subs_state st;           /* worker's copy; published to d->st under sb->mu */
    long backoff_ms;
} worker;

static bool stop_requested(const worker *w)
{
    return w->sb->stopping || w->d->deleted;
}

/* Sleeps up to ms, waking early on stop/delete (and on new events when wake_on_event). */
static void nap(worker *w, long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->sb->mu);
    if (!stop_requested(w)) pthread_cond_timedwait(&w->sb->cv, &w->sb->mu, &t);
    pthread_mutex_unlock(&w->sb->mu);
}

static void publish(worker *w, int64_t in_process, bool failing)
{
    pthread_mutex_lock(&w->sb->mu);
    w->d->st = w->st;
    w->d->in_process = in_process;
    w->d->failing = failing;
    pthread_mutex_unlock(&w->sb->mu);
}

static void save(worker *w)
{
    fl_err e;
    fl_err_clear(&e);
    for (int i = 0; i < 50 && subs_state_save(w->s, w->d->queue, &w->st, &e); i++) {
        fl_log(FL_LOG_WARN, "subs %s: saving state: %s", w->d->id, e.msg);
        nap(w, 100);
    }
}

static void fail(worker *w, const char *what, const fl_err *e)
{
    snprintf(w->st.last_error, sizeof w->st.last_error, "%.60s: %.100s%s%.300s", what, e->where,
             e->where[0] ? ": " : "", e->msg);
    fl_log(FL_LOG_WARN, "subs %s: %s", w->d->id, w->st.last_error);
    w->st.attempts++;
    publish(w, w->d->in_process, true);
    save(w);
    nap(w, w->backoff_ms);
    w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
}

/* Waits until the destination's creating write is committed; false if it never will be
 * (rolled back) or we are stopping. */
static bool wait_committed(worker *w)
{
    while (!stop_requested(w)) {
        arena *a = arena_new(0);
        store_res r;
        fl_err e;
        fl_err_clear(&e);
        int rc = store_read(w->s, a, SUBS_DEST_TYPE, w->d->id, w->d->version, &r, &e);
        arena_free(a);
        if (rc == 0) return true;
        if (e.status == 404 && store_max_ts(w->s) >= w->d->created_ts) {
            a = arena_new(0);
            rc = store_read(w->s, a, SUBS_DEST_TYPE, w->d->id, w->d->version, &r, &e);
            arena_free(a);
            return rc == 0;
        }
        nap(w, 5);
    }
    return false;
}

/* Reads and compiles the view (pinned to the version seen at creation). */
static int setup_s3(worker *w, fl_err *err);

static int open_view(worker *w, fl_err *err)
{
    arena *a = arena_new(0);
    store_res r;
    int rc = -1;
    if (!w->st.view_id[0]) {
        if (subs_find_view(w->s, a, w->d->conf.view, &r, err) == 0) {
            snprintf(w->st.view_id, sizeof w->st.view_id, "%s", r.id);
            w->st.view_version = r.version;
            save(w);
            rc = 0;
        }
    } else {
        rc = store_read(w->s, a, "ViewDefinition", w->st.view_id, w->st.view_version, &r, err);
    }
    json_val *v = rc == 0 ? json_parse(a, r.body, r.body_len, NULL, err) : NULL;
    w->view = v ? sof_compile(v, 0, err) : NULL;
    if (w->view) {
        const char *name = sof_view_name(w->view);
        const char *tn = name ? name : w->d->conf.view;
        w->table = w->d->conf.table_path ? strdup(w->d->conf.table_path)
                                         : NULL;
        if (w->d->conf.managed) {   /* managed-sql: the staging table of this destination */
            const char *st = w->d->conf.dbx.staging;
            size_t sl = strlen(st);
            while (sl > 5 && st[sl - 1] == '/') sl--;
            size_t n = sl + strlen(w->d->id) + 40;
            free(w->table);
            w->table = malloc(n);
            if (w->table) snprintf(w->table, n, "%.*s/fhirlake-dest-%s-v%lld", (int)sl, st,
                                   w->d->id, (long long)w->d->version);
        }
        if (!w->table) {
            size_t n = strlen(w->sb->data_dir) + strlen(tn) + 8;
            w->table = malloc(n);
            if (w->table) snprintf(w->table, n, "%s/lake/%s", w->sb->data_dir, tn);
        }
        w->schema = rows_schema_copy(sof_view_schema(w->view));
        w->col_del = rows_schema_find(w->schema, "is_deleted");
        if (w->col_del < 0) {
            rows_schema_add(w->schema, "is_deleted", ROWS_INT32, false);
            w->col_del = (int)w->schema->n - 1;
        }
        w->col_key = sof_view_key_column(w->view);
        w->col_ts = sof_view_ts_column(w->view);
        w->rows = rows_batch_new(w->schema);
        rc = setup_s3(w, err);
    } else {
        rc = -1;
    }
    arena_free(a);
    return rc;
}

/* s3:// tables: registers the destination's S3 settings for its table URL — endpoint and
 * region parameters, credentials from the secret references kept in the store job
 * "subs-secret:<id>" (the stored resource holds them redacted). */
static int resolve(worker *w, const char *param, const char *value, char **out, fl_err *err)
{
    if (secrets_is_ref(value)) return secrets_resolve(w->sb->data_dir, param, value, out, err);
    *out = strdup(value);   /* a clear value, as accepted by subs.c */
    if (!*out) abort();
    return 0;
}

static int setup_s3(worker *w, fl_err *err)
{
    const subs_conf *c = &w->d->conf;
    if (strncmp(w->table, "s3://", 5)) return 0;
    arena *a = arena_new(0);
    char jid[160];
    snprintf(jid, sizeof jid, "subs-secret:%s", w->d->id);
    store_job j;
    fl_err e2 = {0};
    const json_val *refs = store_job_get(w->s, a, jid, &j, &e2) == 0 && j.state
                               ? json_parse(a, j.state, strlen(j.state), NULL, &e2) : NULL;
    const char *kref = json_get_str(refs, "awsAccessKeyId");
    const char *sref = json_get_str(refs, "awsSecretAccessKey");
    char *key = NULL, *secret = NULL;
    int rc = 0;
    if ((kref && resolve(w, "awsAccessKeyId", kref, &key, err)) ||
        (sref && resolve(w, "awsSecretAccessKey", sref, &secret, err)))
        rc = -1;
    else if (c->s3_endpoint || c->aws_region || (key && secret)) {
        s3_config cfg = {.endpoint = c->s3_endpoint, .region = c->aws_region,
                         .access_key_id = key, .secret_access_key = secret};
        s3_register(w->table, &cfg);
    }
    if (key) explicit_bzero(key, strlen(key));
    if (secret) explicit_bzero(secret, strlen(secret));
    free(key);
    free(secret);
    arena_free(a);
    return rc;
}

/* Marks rows [from, n_rows) as live (is_deleted = 0). */
static void mark_live(worker *w, size_t from)
{
    rows_col *c = &w->rows->cols[w->col_del];
    for (size_t r = from; r < w->rows->n_rows; r++) {
        c->vals[r].i = 0;
        c->valid[r] = 1;
    }
}

/* Drops rows [n, n_rows): the columns' arrays stay, list columns lose their elements. */
static void truncate_rows(rows_batch *b, size_t n)
{
    if (b->n_rows <= n) return;
    for (size_t i = 0; i < b->schema->n; i++)
        if (b->schema->f[i].list) b->cols[i].n_vals = b->cols[i].offs[n];
    b->n_rows = n;
}

/* Evaluates one resource version into w->rows. Returns rows added or -1. */
static long eval_body(worker *w, const char *body, size_t len, int64_t ts, fl_err *err)
{
    json_val *v = json_parse(w->a, body, len, NULL, err);
    if (!v) return -1;
    w->sc->has_ts = true;
    w->sc->ts_us = ts;
    size_t before = w->rows->n_rows;
    long n = sof_eval(w->view, w->sc, v, w->rows, err);
    if (n < 0) {
        truncate_rows(w->rows, before); /* no partial row set of a failed resource */
        return -1;
    }
    mark_live(w, before);
    return n;
}

static void tombstone(worker *w, const char *id, int64_t ts)
{
    rows_batch *b = w->rows;
    rows_begin_row(b);
    if (w->col_key >= 0) rows_set_str(b, (size_t)w->col_key, id, strlen(id));
    if (w->col_ts >= 0) {
        if (w->schema->f[w->col_ts].type == ROWS_TIMESTAMP) {
            rows_set_int(b, (size_t)w->col_ts, ts);
        } else {
            char t[40];
            int n = fl_time_format(ts, t);
            rows_set_str(b, (size_t)w->col_ts, t, (size_t)n);
        }
    }
    rows_set_int(b, (size_t)w->col_del, 1);
    rows_end_row(b);
}

/* managed-sql: applies the staged batch to the Databricks table. Append mode tags the
 * rows with "<app id>#<batch>" so that a replayed batch is recognised and lands once. */
static int apply_managed(worker *w, int64_t version, fl_err *err)
{
    const char *key = w->col_key >= 0 ? w->schema->f[w->col_key].name : NULL;
    if (w->d->conf.table_mode == SUBS_CURRENT)
        return dbx_apply(&w->d->conf.dbx, w->table, w->schema, key, false, err);
    char tag[200];
    snprintf(tag, sizeof tag, "%s#%lld", w->app_id, (long long)version);
    return dbx_append(&w->d->conf.dbx, w->table, w->schema, key, tag, err);
}

/* Writes w->rows as one Delta commit with txn (app_id, version). */
static int commit_rows(worker *w, int64_t version, lake_result *res, fl_err *err)
{
    lake_options o;
    lake_options_init(&o);
    o.app_id = w->app_id;
    o.app_version = version;
    o.mode = LAKE_APPEND;
    if (w->d->conf.target_file_mb > 0) o.file_bytes = (size_t)w->d->conf.target_file_mb << 20;
    if (w->d->conf.table_mode == SUBS_CURRENT) {
        o.mode = LAKE_MERGE;
        o.key = w->schema->f[w->col_key].name;
    }
    /* managed-sql: the staging table holds exactly this batch (a retried batch finds it
     * there, its txn already committed); applying it is idempotent (current: a MERGE per
     * key; append: tagged with the batch), so a batch replayed after a crash lands once */
    if (w->d->conf.managed) o.mode = LAKE_OVERWRITE;
    lake_writer *lw = lake_writer_open(w->table, w->schema, &o, err);
    if (!lw) return -1;
    if (w->rows->n_rows && lake_write(lw, w->rows, err)) {
        lake_abort(lw);
        return -1;
    }
    int rc = lake_commit(lw, res, err);
    if (rc == 0 && w->d->conf.managed) rc = apply_managed(w, version, err);
    return rc;
}

/* Fault injection for the crash tests: with FL_SUBS_KILL_AFTER_COMMIT=N in the
 * environment the process kills itself right after its N-th Delta commit (export chunk or batch), before the
 * new position is saved — the worst moment, where only the txn action prevents a double
 * delivery on replay. */
static void crash_point(void)
{
    static atomic_long commits;
    const char *n = getenv("FL_SUBS_KILL_AFTER_COMMIT");
    if (n && atomic_fetch_add(&commits, 1) + 1 == atol(n)) raise(SIGKILL);
}

/* ---- initial export: snapshot at W, chunked, chunk i = batch i ----
 * Two phases so no store connection is held while a chunk is written (a scan callback
 * that wrote state or waited on the registry lock could starve the connection pool):
 * first the (id, version) of every resource live at W, then chunk by chunk each version
 * is read back, evaluated and committed. The id list is in the scan's order (by id), so a
 * resume rebuilds the very same chunks. */
typedef struct idver {
    const char *id;
    int64_t version, ts;
} idver;

typedef struct idlist {
    worker *w;
    idver *v;
    size_t n, cap;
    arena *a;
} idlist;

static int note_idver(void *ctx, const store_res *r)
{
    idlist *l = ctx;
    if (stop_requested(l->w)) return 1;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) abort();
    }
    l->v[l->n++] = (idver){arena_strdup(l->a, r->id), r->version, r->ts};
    return 0;
}

/* Evaluates resources [from, to) of the list into w->rows. */
static void export_rows(worker *w, const char *type, const idver *v, size_t from, size_t to)
{
    rows_batch_clear(w->rows);
    for (size_t i = from; i < to; i++) {
        store_res r;
        fl_err e;
        fl_err_clear(&e);
        if (store_read(w->s, w->a, type, v[i].id, v[i].version, &r, &e) != 0 ||
            eval_body(w, r.body, r.body_len, v[i].ts, &e) < 0) {
            w->st.eval_errors++;
            snprintf(w->st.last_error, sizeof w->st.last_error, "%.60s/%.64s: %.300s", type,
                     v[i].id, e.msg);
        }
        arena_reset(w->a);
    }
}

static int export_chunks(worker *w, const idlist *l, fl_err *err)
{
    const char *type = sof_view_resource_type(w->view);
    size_t cs = (size_t)w->st.chunk_size;
    int64_t n_chunks = l->n ? (int64_t)((l->n + cs - 1) / cs) : 1; /* 1: create the table */
    for (int64_t c = w->st.export_chunks + 1; c <= n_chunks; c++) {
        if (stop_requested(w)) return 1;
        size_t from = (size_t)(c - 1) * cs, to = from + cs < l->n ? from + cs : l->n;
        export_rows(w, type, l->v, from, to);
        lake_result res;
        if (commit_rows(w, c, &res, err)) return -1;
        crash_point();
        w->st.export_chunks = c;
        w->st.next_batch = c + 1;
        w->st.rows_sent += (int64_t)w->rows->n_rows;
        save(w);
        publish(w, 0, false);
    }
    return 0;
}

static int initial_export(worker *w, fl_err *err)
{
    snprintf(w->st.export_status, sizeof w->st.export_status, "export-in-progress");
    if (w->st.chunk_size <= 0) { /* fixed for the whole export: a resume replays the same chunks */
        const char *env = getenv("FL_SUBS_EXPORT_CHUNK");
        w->st.chunk_size = env && atol(env) > 0 ? atol(env) : EXPORT_CHUNK;
        save(w);
    }
    publish(w, 0, false);
    idlist l = {.w = w, .a = arena_new(0)};
    int rc = store_scan(w->s, sof_view_resource_type(w->view), w->d->created_ts, 0, note_idver,
                        &l, err);
    if (rc == 0 && stop_requested(w)) rc = 1;
    if (rc == 0) rc = export_chunks(w, &l, err);
    free(l.v);
    arena_free(l.a);
    rows_batch_clear(w->rows);
    if (rc == 0) {
        snprintf(w->st.export_status, sizeof w->st.export_status, "completed");
        save(w);
        publish(w, 0, false);
    }
    return rc;
}

/* ---- live delivery ---- */
typedef struct ev {
    int64_t seq, ts;
    char *type, *id;
    int64_t version;
    bool deleted;
} ev;

typedef struct evs {
    ev *v;
    size_t n, cap;
    int64_t upto;        /* stop after this seq (pending replay), or INT64_MAX */
    arena *a;
} evs;

static int collect(void *ctx, const store_event *e)
{
    evs *q = ctx;
    if (e->seq > q->upto) return 1;
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 64;
        q->v = realloc(q->v, q->cap * sizeof *q->v);
        if (!q->v) abort();
    }
    char *p = arena_strndup(q->a, e->payload, e->len), *save = NULL;
    ev *x = &q->v[q->n++];
    x->seq = e->seq;
    x->ts = e->ts;
    x->type = strtok_r(p, "\t", &save);
    x->id = strtok_r(NULL, "\t", &save);
    char *ver = strtok_r(NULL, "\t", &save), *del = strtok_r(NULL, "\t", &save);
    x->version = ver ? strtoll(ver, NULL, 10) : 0;
    x->deleted = del && *del == '1';
    if (!x->type || !x->id) q->n--; /* malformed: skip (never produced by us) */
    return 0;
}

/* tableMode current: only the last event of each resource matters. Marks in keep[] the
 * last event per (type, id), with an open-addressing table of event indexes. */
static uint64_t ev_hash(const ev *e)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = e->type; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ '/') * 1099511628211ull;
    for (const char *p = e->id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static void last_per_key(const evs *q, bool *keep)
{
    size_t cap = 16;
    while (cap < q->n * 2) cap *= 2;
    size_t *slot = malloc(cap * sizeof *slot); /* event index + 1; 0 = empty */
    if (!slot) abort();
    memset(slot, 0, cap * sizeof *slot);
    for (size_t i = 0; i < q->n; i++) {
        const ev *e = &q->v[i];
        size_t k = (size_t)ev_hash(e) & (cap - 1);
        while (slot[k]) {
            const ev *o = &q->v[slot[k] - 1];
            if (!strcmp(o->id, e->id) && !strcmp(o->type, e->type)) break;
            k = (k + 1) & (cap - 1);
        }
        if (slot[k]) keep[slot[k] - 1] = false;
        slot[k] = i + 1;
        keep[i] = true;
    }
    free(slot);
}

static void build_rows(worker *w, const evs *q)
{
    rows_batch_clear(w->rows);
    bool *keep = NULL;
    if (w->d->conf.table_mode == SUBS_CURRENT && q->n) {
        keep = malloc(q->n * sizeof *keep);
        if (!keep) abort();
        last_per_key(q, keep);
    }
    const char *vtype = sof_view_resource_type(w->view);
    for (size_t i = 0; i < q->n; i++) {
        const ev *e = &q->v[i];
        if (keep && !keep[i]) continue;
        if (vtype && strcmp(vtype, e->type)) continue; /* the view has no rows for it */
        if (e->deleted) {
            tombstone(w, e->id, e->ts);
            continue;
        }
        store_res r;
        fl_err err;
        fl_err_clear(&err);
        if (store_read(w->s, w->a, e->type, e->id, e->version, &r, &err) != 0 ||
            eval_body(w, r.body, r.body_len, e->ts, &err) < 0) {
            /* recorded, skipped: one bad resource must not block the queue */
            w->st.eval_errors++;
            snprintf(w->st.last_error, sizeof w->st.last_error, "%.60s/%.64s/_history/%lld: %.300s",
                     e->type, e->id, (long long)e->version, err.msg);
        }
    }
    free(keep);
}

/* One step: plan (or replay) a batch and deliver it. Returns 1 when idle. */
static int deliver_step(worker *w)
{
    subs_conf *c = &w->d->conf;
    evs q = {.upto = INT64_MAX, .a = w->a};
    fl_err err;
    fl_err_clear(&err);
    bool replay = w->st.pending_batch > 0;
    if (replay) q.upto = w->st.pending_upto;
    /* Idle check on the oldest event only: a batch is read when it is full (the
     * listener's hint) or its oldest event has waited sendIntervalMs. */
    long max = replay ? -1 : 1;
    if (store_outbox_read(w->s, w->d->queue, w->st.last_seq, max, collect, &q, &err)) {
        fail(w, "reading the queue", &err);
        free(q.v);
        arena_reset(w->a);
        return 0;
    }
    if (!replay) {
        int64_t age_ms = q.n ? (fl_now_micros() - q.v[0].ts) / 1000 : 0;
        if (!q.n || (atomic_load(&w->d->hint) < c->batch_size && age_ms < c->send_interval_ms)) {
            free(q.v);
            arena_reset(w->a);
            long left = q.n ? c->send_interval_ms - (long)age_ms : POLL_MS;
            nap(w, left < POLL_MS ? (left < 1 ? 1 : left) : POLL_MS);
            return 1;
        }
        q.n = 0;
        arena_reset(w->a);
        if (store_outbox_read(w->s, w->d->queue, w->st.last_seq, c->batch_size, collect, &q,
                              &err)) {
            fail(w, "reading the queue", &err);
            free(q.v);
            arena_reset(w->a);
            return 0;
        }
        long got = (long)q.n, h = atomic_load(&w->d->hint);
        atomic_fetch_sub(&w->d->hint, got < h ? got : h);
        /* Plan the batch durably first: a replay must write exactly these events. */
        w->st.pending_batch = w->st.next_batch > 0 ? w->st.next_batch : 1;
        w->st.pending_upto = q.v[q.n - 1].seq;
        save(w);
    }
    publish(w, (int64_t)q.n, w->d->failing);
    w->st.attempts++;
    build_rows(w, &q);
    lake_result res;
    if (commit_rows(w, w->st.pending_batch, &res, &err)) {
        w->st.attempts--; /* fail() counts it */
        fail(w, "writing the Delta table", &err);
    } else {
        crash_point();
        w->st.last_seq = w->st.pending_upto;
        w->st.next_batch = w->st.pending_batch + 1;
        w->st.pending_batch = w->st.pending_upto = 0;
        w->st.delivered += (int64_t)q.n;
        w->backoff_ms = 100;
        save(w);
        publish(w, 0, false);
        store_outbox_trim(w->s, w->d->queue, w->st.last_seq, &err);
    }
    free(q.v);
    arena_reset(w->a);
    rows_batch_clear(w->rows);
    return 0;
}

/* ---- the worker thread ---- */
static void worker_free(worker *w)
{
    rows_batch_free(w->rows);
    rows_schema_free(w->schema);
    sof_free(w->view);
    sof_ctx_free(w->sc);
    arena_free(w->a);
    free(w->table);
}

static void init_state(worker *w)
{
    bool found = false;
    if (subs_state_load(w->s, w->d->queue, &w->st, &found) == 0 && found) return;
    memset(&w->st, 0, sizeof w->st);
    w->st.next_batch = 1;
    snprintf(w->st.export_status, sizeof w->st.export_status, "%s",
             w->d->conf.skip_initial ? "skipped" : "not_started");
    save(w);
}

static void run(worker *w)
{
    fl_err err;
    fl_err_clear(&err);
    while (!stop_requested(w) && open_view(w, &err)) fail(w, "opening the view", &err);
    while (!stop_requested(w) && (!strcmp(w->st.export_status, "not_started") ||
                                  !strcmp(w->st.export_status, "export-in-progress") ||
                                  !strcmp(w->st.export_status, "failed"))) {
        int rc = initial_export(w, &err);
        if (rc < 0) {
            snprintf(w->st.export_status, sizeof w->st.export_status, "failed");
            fail(w, "initial export", &err);
        }
    }
    while (!stop_requested(w)) deliver_step(w);
}

void *subs_worker(void *arg)
{
    subs_dest *d = arg;
    worker w = {.d = d, .sb = d->sb, .s = d->sb->s, .backoff_ms = 100};
    w.a = arena_new(0);
    w.sc = sof_ctx_new();
    if (d->version > 1) snprintf(w.app_id, sizeof w.app_id, "%s@%lld", d->id, (long long)d->version);
    else snprintf(w.app_id, sizeof w.app_id, "%s", d->id);
    if (wait_committed(&w)) {
        init_state(&w);
        publish(&w, 0, false);
        run(&w);
    }
    bool phantom = !d->deleted && !w.sb->stopping && !w.st.next_batch;
    if (d->deleted || phantom) { /* DELETE (or a creation that rolled back): drop the queue
                                  * and the state; the table stays */
        fl_err e;
        fl_err_clear(&e);
        char id[160];
        snprintf(id, sizeof id, "subs:%s", d->queue);
        store_outbox_trim(w.s, d->queue, INT64_MAX, &e);
        store_job_delete(w.s, id, &e);
    }
    worker_free(&w);
    d->dead = true;
    return NULL;
}
