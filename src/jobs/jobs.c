/* jobs.c: the export engine (see jobs.h) — job state persisted in the store, a task queue
 * of (job, view, chunk) served by worker threads, chunk evaluation over one snapshot,
 * staging Parquet files, the final Delta merge, resume after restart, cancel. */
#include "jobs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../format/parquet.h"
#include "../format/text.h"
#include "../lake/databricks.h"
#include "../lake/lake.h"
#include "../lake/secrets.h"
#include "../lake/s3.h"
#include "../sof/sof.h"

#define FMT_PARQUET 100
#define BATCH_ROWS 2048
#define STAGING_ROW_GROUP_BYTES ((size_t)16 << 20)
#define JOBS_MAX_FIN_THREADS 8
#define SINCE_ROWS_PER_CHUNK 5000
/* Truncating messages and element paths into their fixed buffers is intended. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

typedef struct job {
    char id[37];
    arena *a;                /* the parsed state and everything derived from it */
    const json_val *spec;    /* persisted request (see submit) */
    size_t n_views;
    sof_view **views;
    lake_keyidx **kidx;      /* per chunk: its staging file's key index (lake.h), or NULL */
    bool *wants_cts;         /* per view: some expression calls getAidboxCts() */
    rows_schema **stage;     /* lakehouse: view schema + is_deleted */
    const char **names, **tables;   /* managed-sql: tables are the staging tables */
    bool lakehouse, header, copy_on_write;
    bool has_dbx;            /* writeMode managed-sql */
    dbx_target dbx;
    int fmt;                 /* text_format or FMT_PARQUET */
    int64_t since, W, start, end;
    int K;
    /* full export with K > 1: per view, the K-1 id bounds of its chunks (store_split at
     * submit, persisted so a resumed job cuts the same chunks); NULL: hash chunks */
    const char ***bounds;
    uint8_t *done;           /* n_views * K */
    int64_t *rows;
    const char **patients;
    size_t n_patients;
    const char *ctid;
    char status[16];
    char error[768];
    buf outputs;             /* JSON array text of the outputs, set at the end */
    int pending;             /* tasks queued or running */
    bool cancel, finalizing;
    struct job *next;
} job;

typedef struct task {
    job *j;
    int v, c;                /* c = -1: finalize */
} task;

struct jobs_engine {
    store *s;
    char *data;
    pthread_mutex_t mu, persist_mu;
    pthread_cond_t cv;
    task *q;
    size_t qn, qcap;
    bool stop;
    pthread_t *th;
    int nth;
    job *jobs;
    int chunk_delay_ms;      /* FHIRLAKE_EXPORT_CHUNK_DELAY_MS: tests slow chunks down to
                                kill or cancel an export mid-way; 0 in production */
};

/* ---- small helpers ---- */
/* Whether any string in v contains s: a function name used by an expression must appear
 * in it literally (a mention elsewhere only costs the lookups it would save). */
static bool mentions(const json_val *v, const char *s)
{
    if (json_is(v, JSON_STRING)) return strstr(v->u.s, s) != NULL;
    for (uint32_t i = 0; json_is(v, JSON_ARRAY) && i < v->len; i++)
        if (mentions(&v->u.a[i], s)) return true;
    for (uint32_t i = 0; json_is(v, JSON_OBJECT) && i < v->len; i++)
        if (mentions(&v->u.o[i].val, s)) return true;
    return false;
}

static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static void rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char sub[PATH_MAX];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            struct stat st;
            if (!lstat(sub, &st) && S_ISDIR(st.st_mode)) rmtree(sub);
            else unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static const char *fmt_ext(int fmt)
{
    return fmt == FMT_PARQUET ? "parquet" : fmt == TEXT_CSV ? "csv" : fmt == TEXT_JSON ? "json" : "ndjson";
}

static int parse_fmt(const char *s)
{
    if (!s || !*s) return TEXT_NDJSON;
    if (!strcmp(s, "parquet") || !strcmp(s, "application/vnd.apache.parquet")) return FMT_PARQUET;
    return text_format_parse(s);
}

static int64_t num_of(const json_val *o, const char *key)
{
    int64_t v = 0;
    json_val *n = json_get(o, key);
    if (n && json_num_int64(n, &v)) v = 0;
    return v;
}

/* ---- state: persisted JSON of a job ---- */
static void state_write(const job *j, buf *out)
{
    jw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "spec");
    jw_val(&w, j->spec);
    jw_key(&w, "W");
    jw_int(&w, j->W);
    jw_key(&w, "start");
    jw_int(&w, j->start);
    jw_key(&w, "end");
    jw_int(&w, j->end);
    jw_key(&w, "done");
    jw_arr_begin(&w);
    for (size_t i = 0; i < j->n_views * (size_t)j->K; i++) jw_int(&w, j->done[i]);
    jw_arr_end(&w);
    jw_key(&w, "rows");
    jw_arr_begin(&w);
    for (size_t i = 0; i < j->n_views * (size_t)j->K; i++) jw_int(&w, j->rows[i]);
    jw_arr_end(&w);
    if (j->error[0]) {
        jw_key(&w, "error");
        jw_str(&w, j->error);
    }
    if (j->bounds) {
        jw_key(&w, "bounds");
        jw_arr_begin(&w);
        for (size_t v = 0; v < j->n_views; v++) {
            jw_arr_begin(&w);
            for (int k = 0; k + 1 < j->K; k++) jw_str(&w, j->bounds[v][k]);
            jw_arr_end(&w);
        }
        jw_arr_end(&w);
    }
    if (j->outputs.len) {
        jw_key(&w, "outputs");
        jw_raw(&w, j->outputs.p, j->outputs.len);
    }
    jw_obj_end(&w);
}

static void persist(jobs_engine *e, job *j)
{
    buf st = BUF_INIT;
    char status[16];
    pthread_mutex_lock(&e->persist_mu);
    pthread_mutex_lock(&e->mu);
    state_write(j, &st);
    memcpy(status, j->status, sizeof status);
    pthread_mutex_unlock(&e->mu);
    store_job j2 = {.id = j->id, .kind = JOBS_KIND_EXPORT, .status = status, .state = st.p,
                    .created = j->start, .updated = fl_now_micros()};
    fl_err err;
    fl_err_clear(&err);
    if (store_job_put(e->s, &j2, &err))
        fl_log(FL_LOG_ERROR, "export %s: cannot persist job state: %s", j->id, err.msg);
    pthread_mutex_unlock(&e->persist_mu);
    buf_free(&st);
}

static void job_free(job *j)
{
    if (!j) return;
    for (size_t i = 0; i < j->n_views; i++) {
        sof_free(j->views ? j->views[i] : NULL);
        if (j->stage) rows_schema_free(j->stage[i]);
    }
    for (size_t i = 0; j->kidx && i < j->n_views * (size_t)j->K; i++) lake_keyidx_free(j->kidx[i]);
    free(j->kidx);
    free(j->views);
    free(j->stage);
    free(j->done);
    free(j->rows);
    buf_free(&j->outputs);
    arena_free(j->a);
    free(j);
}

static const char *staging_dir(jobs_engine *e, const job *j, arena *a)
{
    return arena_printf(a, "%s/exports/%s/staging", e->data, j->id);
}

/* Builds the in-memory job from its state object (submit and resume share this). */
/* Resolves the job's S3 settings (secret references included) and registers them for its
 * s3:// tables, so objstore_open finds them by URL. */
static int register_s3(jobs_engine *e, job *j, const json_val *s3, fl_err *err)
{
    const char *kref = json_get_str(s3, "keyRef"), *sref = json_get_str(s3, "secretRef");
    char *key = NULL, *secret = NULL;
    if ((kref && secrets_resolve(e->data, "awsAccessKeyId", kref, &key, err)) ||
        (sref && secrets_resolve(e->data, "awsSecretAccessKey", sref, &secret, err))) {
        if (key) explicit_bzero(key, strlen(key));
        free(key);
        return -1;
    }
    s3_config c = {.endpoint = json_get_str(s3, "endpoint"), .region = json_get_str(s3, "region"),
                   .access_key_id = key, .secret_access_key = secret};
    for (size_t v = 0; v < j->n_views; v++)
        if (j->tables[v] && !strncmp(j->tables[v], "s3://", 5)) s3_register(j->tables[v], &c);
    if (key) explicit_bzero(key, strlen(key));
    if (secret) explicit_bzero(secret, strlen(secret));
    free(key);
    free(secret);
    return 0;
}

static job *job_load(jobs_engine *e, const char *id, const char *state_text, fl_err *err)
{
    job *j = calloc(1, sizeof *j);
    if (!j) abort();
    snprintf(j->id, sizeof j->id, "%s", id);
    j->a = arena_new(0);
    json_val *st = json_parse(j->a, state_text, strlen(state_text), NULL, err);
    const json_val *spec = st ? json_get(st, "spec") : NULL;
    const json_val *views = spec ? json_get(spec, "views") : NULL;
    if (!json_is(views, JSON_ARRAY) || !views->len) {
        if (FL_OK(err)) fl_err_set(err, 500, "state", "job state has no views");
        job_free(j);
        return NULL;
    }
    j->spec = spec;
    j->n_views = views->len;
    j->lakehouse = json_is(json_get(spec, "lakehouse"), JSON_TRUE);
    const json_val *dbx = json_get(spec, "dbx");
    if (json_is(dbx, JSON_OBJECT)) {
        j->has_dbx = true;
        j->dbx = (dbx_target){json_get_str(dbx, "workspace"), json_get_str(dbx, "warehouse"),
                              json_get_str(dbx, "table"), json_get_str(dbx, "staging")};
    }
    j->header = !json_is(json_get(spec, "header"), JSON_FALSE);
    j->copy_on_write = json_is(json_get(spec, "copyOnWrite"), JSON_TRUE);
    j->fmt = j->lakehouse ? FMT_PARQUET : parse_fmt(json_get_str(spec, "format"));
    j->since = num_of(spec, "since");
    j->K = (int)num_of(spec, "chunks");
    if (j->K < 1 || j->K > JOBS_MAX_CHUNKS) j->K = 1;
    j->ctid = json_get_str(spec, "ctid");
    const json_val *pats = json_get(spec, "patients");
    if (json_is(pats, JSON_ARRAY) && pats->len) {
        j->patients = arena_alloc(j->a, pats->len * sizeof *j->patients);
        for (uint32_t i = 0; i < pats->len; i++)
            if (json_is(&pats->u.a[i], JSON_STRING)) j->patients[j->n_patients++] = pats->u.a[i].u.s;
    }
    j->W = num_of(st, "W");
    j->start = num_of(st, "start");
    j->end = num_of(st, "end");
    size_t nt = j->n_views * (size_t)j->K;
    j->done = calloc(nt, 1);
    j->rows = calloc(nt, sizeof *j->rows);
    j->kidx = calloc(nt, sizeof *j->kidx);
    j->views = calloc(j->n_views, sizeof *j->views);
    j->wants_cts = arena_calloc(j->a, j->n_views * sizeof *j->wants_cts);
    j->stage = calloc(j->n_views, sizeof *j->stage);
    j->names = arena_calloc(j->a, j->n_views * sizeof *j->names);
    j->tables = arena_calloc(j->a, j->n_views * sizeof *j->tables);
    if (!j->done || !j->rows || !j->views || !j->stage) abort();
    const json_val *done = json_get(st, "done"), *rows = json_get(st, "rows");
    for (size_t i = 0; i < nt; i++) {
        if (json_is(done, JSON_ARRAY) && i < done->len) {
            int64_t d = 0;
            json_num_int64(&done->u.a[i], &d);
            j->done[i] = d != 0;
        }
        if (json_is(rows, JSON_ARRAY) && i < rows->len) json_num_int64(&rows->u.a[i], &j->rows[i]);
    }
    snprintf(j->status, sizeof j->status, "in-progress");
    unsigned flags = j->fmt == FMT_PARQUET ? 0 : SOF_KEEP_TEXT;
    for (size_t v = 0; v < j->n_views; v++) {
        const json_val *vw = &views->u.a[v];
        j->names[v] = json_get_str(vw, "name");
        j->tables[v] = json_get_str(vw, "table");
        j->views[v] = sof_compile(json_get(vw, "view"), flags, err);
        j->wants_cts[v] = mentions(json_get(vw, "view"), "getAidboxCts");
        if (!j->views[v]) {
            char w[256];
            snprintf(w, sizeof w, "view[%zu].%s", v, err->where);
            snprintf(err->where, sizeof err->where, "%s", w);
            job_free(j);
            return NULL;
        }
        if (!j->names[v]) j->names[v] = sof_view_name(j->views[v]);
        if (!j->names[v]) j->names[v] = "view";
        rows_schema *sc = rows_schema_copy(sof_view_schema(j->views[v]));
        if (j->lakehouse) rows_schema_add(sc, "is_deleted", ROWS_INT32, false);
        j->stage[v] = sc;
    }
    const json_val *bounds = json_get(st, "bounds");
    if (json_is(bounds, JSON_ARRAY) && bounds->len == j->n_views) {
        j->bounds = arena_calloc(j->a, j->n_views * sizeof *j->bounds);
        for (size_t v = 0; v < j->n_views; v++) {
            const json_val *b = &bounds->u.a[v];
            if (!json_is(b, JSON_ARRAY) || b->len + 1 != (uint32_t)j->K) {
                j->bounds = NULL; /* malformed: fall back to hash chunks */
                break;
            }
            j->bounds[v] = arena_alloc(j->a, (size_t)j->K * sizeof **j->bounds);
            for (uint32_t k = 0; k < b->len; k++)
                j->bounds[v][k] = json_is(&b->u.a[k], JSON_STRING) ? b->u.a[k].u.s : NULL;
            for (uint32_t k = 0; bounds && k < b->len; k++)
                if (!j->bounds[v][k] || (k && strcmp(j->bounds[v][k - 1], j->bounds[v][k]) > 0))
                    bounds = NULL; /* not ordered strings: state damaged */
            if (!bounds) {
                j->bounds = NULL;
                break;
            }
        }
    }
    const json_val *s3 = json_get(spec, "s3");
    if (json_is(s3, JSON_OBJECT) && register_s3(e, j, s3, err)) {
        job_free(j);
        return NULL;
    }
    return j;
}

/* ---- task queue ---- */
static void push_task(jobs_engine *e, job *j, int v, int c)
{
    if (e->qn == e->qcap) {
        e->qcap = e->qcap ? e->qcap * 2 : 64;
        e->q = realloc(e->q, e->qcap * sizeof *e->q);
        if (!e->q) abort();
    }
    e->q[e->qn++] = (task){j, v, c};
    j->pending++;
    pthread_cond_signal(&e->cv);
}

/* Queues every chunk not yet done (or the finalize when all are); caller holds mu. */
static void plan(jobs_engine *e, job *j)
{
    for (size_t v = 0; v < j->n_views; v++)
        for (int c = 0; c < j->K; c++)
            if (!j->done[v * (size_t)j->K + (size_t)c]) push_task(e, j, (int)v, c);
    if (!j->pending) push_task(e, j, 0, -1); /* every chunk was done: finalize */
    j->next = e->jobs;
    e->jobs = j;
}

/* ---- one chunk ---- */
typedef struct chunk_run {
    jobs_engine *e;
    job *j;
    int v, c;
    const sof_view *view;
    const char *type;
    sof_ctx *ctx;
    arena *pa;
    rows_batch *b;
    pq_writer *pq;
    FILE *f;
    text_writer tw;
    buf ob;
    int64_t rows;
    lake_keyidx *idx;        /* lakehouse with a key column: keys of the staged rows */
    int key;                 /* ... the key column */
    int64_t staged;          /* rows written to the staging file so far */
    bool stopped;
    fl_err err;
} chunk_run;

static bool flush_batch(chunk_run *r)
{
    if (!r->b->n_rows) return true;
    bool ok = true;
    if (r->pq) {
        for (size_t i = 0; r->idx && i < r->b->n_rows; i++)
            if (!rows_is_null(r->b, (size_t)r->key, i)) {
                rows_str k = rows_get(r->b, (size_t)r->key, i)->s;
                lake_keyidx_add(r->idx, r->staged + (int64_t)i, k.p, k.len);
            }
        r->staged += (int64_t)r->b->n_rows;
        ok = pq_write_batch(r->pq, r->b, &r->err) == 0;
    } else {
        text_batch(&r->tw, r->b, &r->ob);
        if (fwrite(r->ob.p, 1, r->ob.len, r->f) != r->ob.len) {
            fl_err_set(&r->err, 500, "", "write failed: %s", strerror(errno));
            ok = false;
        }
        buf_reset(&r->ob);
    }
    rows_batch_clear(r->b);
    return ok;
}

static bool ref_is_patient(const json_val *res, const char *key, const char *const *pats,
                           size_t n)
{
    const char *ref = json_get_str(json_get(res, key), "reference");
    if (!ref || strncmp(ref, "Patient/", 8)) return false;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ref + 8, pats[i])) return true;
    return false;
}

/* patient parameter: a Patient by id, any other resource by its subject/patient/
 * beneficiary reference (the compartment links Synthea data uses). */
static bool patient_match(const job *j, const char *type, const char *id, const json_val *res)
{
    if (!j->n_patients) return true;
    if (!strcmp(type, "Patient")) {
        for (size_t i = 0; i < j->n_patients; i++)
            if (!strcmp(id, j->patients[i])) return true;
        return false;
    }
    return ref_is_patient(res, "subject", j->patients, j->n_patients) ||
           ref_is_patient(res, "patient", j->patients, j->n_patients) ||
           ref_is_patient(res, "beneficiary", j->patients, j->n_patients);
}

static void tombstone(chunk_run *r, const store_res *res)
{
    const rows_schema *s = r->b->schema;
    int key = sof_view_key_column(r->view), ts = sof_view_ts_column(r->view);
    rows_begin_row(r->b);
    if (key >= 0) rows_set_str(r->b, (size_t)key, res->id, strlen(res->id));
    if (ts >= 0) {
        if (s->f[ts].type == ROWS_TIMESTAMP || s->f[ts].type == ROWS_INT64) {
            rows_set_int(r->b, (size_t)ts, res->ts);
        } else {
            char t[40];
            int n = fl_time_format(res->ts, t);
            rows_set_str(r->b, (size_t)ts, t, (size_t)n);
        }
    }
    rows_set_int(r->b, s->n - 1, 1);
    rows_end_row(r->b);
    r->rows++;
}

static int process(chunk_run *r, const store_res *res)
{
    if (res->deleted) {
        if (r->j->lakehouse && r->j->since) tombstone(r, res);
    } else {
        arena_reset(r->pa);
        json_val *doc = json_parse(r->pa, res->body, res->body_len, NULL, &r->err);
        if (!doc) return 1;
        if (!patient_match(r->j, res->type, res->id, doc)) return 0;
        char txid[24];
        snprintf(txid, sizeof txid, "%lld", (long long)res->txid);
        r->ctx->has_ts = true;
        r->ctx->ts_us = res->ts;
        r->ctx->has_cts = res->cts > 0;
        r->ctx->cts_us = res->cts;
        r->ctx->txid = txid;
        size_t before = r->b->n_rows;
        long n = sof_eval(r->view, r->ctx, doc, r->b, &r->err);
        if (n < 0) {
            char w[256];
            snprintf(w, sizeof w, "%s/%s%s%s", res->type, res->id, r->err.where[0] ? "." : "",
                     r->err.where);
            snprintf(r->err.where, sizeof r->err.where, "%s", w);
            return 1;
        }
        if (r->j->lakehouse) { /* the trailing is_deleted column: 0 for live rows */
            rows_col *c = &r->b->cols[r->b->schema->n - 1];
            for (size_t i = before; i < r->b->n_rows; i++) {
                c->vals[i].i = 0;
                c->valid[i] = 1;
            }
        }
        r->rows += n;
    }
    if (r->b->n_rows >= BATCH_ROWS && !flush_batch(r)) return 1;
    return 0;
}

static bool keep_going(chunk_run *r)
{
    /* Unlocked reads of flags only ever set to true: worst case one more row. */
    if (__atomic_load_n(&r->e->stop, __ATOMIC_RELAXED) ||
        __atomic_load_n(&r->j->cancel, __ATOMIC_RELAXED)) {
        r->stopped = true;
        return false;
    }
    return true;
}

static int on_row(void *ctx, const store_res *res)
{
    chunk_run *r = ctx;
    if (!keep_going(r)) return 1;
    /* a full export without id ranges (jobs persisted before ranges existed): by hash */
    if (!r->j->since && !r->j->bounds && (int)(store_part(res->id) % (uint32_t)r->j->K) != r->c)
        return 0;
    return process(r, res);
}

static const char *chunk_file(jobs_engine *e, const job *j, int v, int c, arena *a)
{
    if (j->lakehouse)
        return arena_printf(a, "%s/v%d-c%d.parquet", staging_dir(e, j, a), v, c);
    if (j->K == 1) return arena_printf(a, "%s/exports/%s/%s.%s", e->data, j->id, j->names[v], fmt_ext(j->fmt));
    return arena_printf(a, "%s/exports/%s/%s-%d.%s", e->data, j->id, j->names[v], c, fmt_ext(j->fmt));
}

/* A staging file's Delta stats, kept beside it (path.stats) so that finalize, maybe
 * after a restart, can add the file to the table as it is. Temp + fsync + rename: the
 * stats file exists whole or not at all. */
static int write_stats(const char *path, const pq_file_stats *st, fl_err *err)
{
    buf b = BUF_INIT, name = BUF_INIT;
    delta_stats_json(st, &b);
    buf_printf(&name, "%s.stats", path);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", name.p);
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(b.p, 1, b.len, f) == b.len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0) ok = false;
    ok = ok && rename(tmp, name.p) == 0;
    if (!ok) {
        unlink(tmp);
        fl_err_set(err, 500, "", "cannot write %s: %s", name.p, strerror(errno));
    }
    buf_free(&b);
    buf_free(&name);
    return ok ? 0 : -1;
}

static bool open_sink(chunk_run *r, const char *path, const char *tmp)
{
    if (r->j->fmt == FMT_PARQUET) {
        pq_options o;
        pq_options_init(&o);
        /* small row groups: finalize reads staging back one group at a time */
        if (r->j->lakehouse) o.row_group_bytes = STAGING_ROW_GROUP_BYTES;
        r->pq = pq_writer_open(path, r->b->schema, &o, &r->err);
        return r->pq != NULL;
    }
    r->f = fopen(tmp, "wb");
    if (!r->f) {
        fl_err_set(&r->err, 500, "", "cannot create %s: %s", tmp, strerror(errno));
        return false;
    }
    text_begin(&r->tw, (text_format)r->j->fmt, r->b->schema, r->j->header, &r->ob);
    text_set_raw(&r->tw, sof_view_json_columns(r->view));
    return true;
}

static bool close_sink(chunk_run *r, bool ok, const char *path, const char *tmp)
{
    if (r->pq) {
        pq_writer *pq = r->pq;
        r->pq = NULL;
        if (ok && r->j->lakehouse && !r->rows) { /* empty chunk: no staging file */
            pq_writer_abort(pq);
            return true;
        }
        if (!ok) {
            pq_writer_abort(pq);
            return false;
        }
        if (!r->j->lakehouse) return pq_writer_close(pq, NULL, &r->err) == 0;
        pq_file_stats st = {0};
        ok = pq_writer_close(pq, &st, &r->err) == 0 && write_stats(path, &st, &r->err) == 0;
        pq_file_stats_free(&st);
        return ok;
    }
    if (!r->f) return false;
    if (ok) {
        text_end(&r->tw, &r->ob);
        ok = fwrite(r->ob.p, 1, r->ob.len, r->f) == r->ob.len;
        ok = fflush(r->f) == 0 && fsync(fileno(r->f)) == 0 && ok;
    }
    fclose(r->f);
    r->f = NULL;
    if (ok && rename(tmp, path)) ok = false;
    if (!ok) {
        unlink(tmp);
        if (FL_OK(&r->err) && !r->stopped) fl_err_set(&r->err, 500, "", "cannot write %s", path);
    }
    return ok;
}

/* Runs chunk c of view v. Returns 0 when done, 1 when stopped/cancelled, -1 on error. */
static int run_chunk(jobs_engine *e, job *j, int v, int c, int64_t *rows_out, fl_err *err)
{
    chunk_run r = {.e = e, .j = j, .v = v, .c = c, .view = j->views[v]};
    fl_err_clear(&r.err);
    r.type = sof_view_resource_type(r.view);
    arena *a = arena_new(0);
    r.ctx = sof_ctx_new();
    r.pa = arena_new(0);
    r.b = rows_batch_new(j->stage[v]);
    r.key = sof_view_key_column(r.view);
    if (j->lakehouse && r.key >= 0) r.idx = lake_keyidx_new();
    const char *path = chunk_file(e, j, v, c, a);
    const char *tmp = arena_printf(a, "%s.tmp", path);
    char *dir = arena_strdup(a, path);
    *strrchr(dir, '/') = 0;
    bool ok = mkdirs(dir) == 0;
    if (!ok) fl_err_set(&r.err, 500, "", "cannot create %s", dir);
    ok = ok && open_sink(&r, path, tmp);
    for (int ms = 0; ok && ms < e->chunk_delay_ms && keep_going(&r); ms += 10) usleep(10000);
    if (ok && !j->since && j->bounds) { /* the chunk's id range only: no rescan per chunk */
        const char **b = j->bounds[v];
        ok = store_scan_range(e->s, r.type, j->W, 0, c ? b[c - 1] : NULL,
                              c < j->K - 1 ? b[c] : NULL, on_row, &r, &r.err) == 0;
    } else if (ok && !j->since) {
        ok = store_scan(e->s, r.type, j->W, 0, on_row, &r, &r.err) == 0;
    } else if (ok) { /* the final state of the chunk's changed ids, read once */
        ok = store_changes_final(e->s, r.type, j->since, j->W, c, j->K,
                                 j->wants_cts[v], on_row, &r,
                                 &r.err) == 0;
    }
    ok = ok && !r.stopped && FL_OK(&r.err) && flush_batch(&r);
    ok = close_sink(&r, ok, path, tmp);
    int rc = ok ? 0 : r.stopped ? 1 : -1;
    if (rc < 0) {
        *err = r.err;
        if (FL_OK(err)) fl_err_set(err, 500, "", "chunk failed");
    }
    *rows_out = r.rows;
    if (rc == 0 && r.idx) { /* kept for finalize, which hands it to the table's writer */
        lake_keyidx_sort(r.idx);   /* here, in parallel, not in finalize */
        pthread_mutex_lock(&e->mu);
        size_t i = (size_t)v * (size_t)j->K + (size_t)c;
        lake_keyidx_free(j->kidx[i]);
        j->kidx[i] = r.idx;
        r.idx = NULL;
        pthread_mutex_unlock(&e->mu);
    }
    lake_keyidx_free(r.idx);
    buf_free(&r.ob);
    rows_batch_free(r.b);
    arena_free(r.pa);
    sof_ctx_free(r.ctx);
    arena_free(a);
    return rc;
}

/* ---- finalize ---- */
static void add_output(jw *w, const char *name, const char *loc, int64_t count)
{
    jw_obj_begin(w);
    jw_key(w, "name");
    jw_str(w, name);
    jw_key(w, "location");
    jw_str(w, loc);
    jw_key(w, "count");
    jw_int(w, count);
    jw_obj_end(w);
}

static int64_t view_rows(const job *j, size_t v)
{
    int64_t n = 0;
    for (int c = 0; c < j->K; c++) n += j->rows[v * (size_t)j->K + (size_t)c];
    return n;
}

/* Merges the staging files of view v into its Delta table in one commit. */
static int finalize_view(jobs_engine *e, job *j, size_t v, fl_err *err)
{
    arena *a = arena_new(0);
    const sof_view *view = j->views[v];
    lake_options o;
    lake_options_init(&o);
    int key = sof_view_key_column(view);
    if (key >= 0) {
        o.mode = LAKE_MERGE;
        o.key = sof_view_schema(view)->f[key].name;
        o.delete_absent = j->since == 0;
    } else {
        o.mode = LAKE_OVERWRITE;
    }
    if (j->copy_on_write) o.copy_on_write = true;
    o.app_id = arena_printf(a, "fhirlake-export-%s-%zu", j->id, v);
    o.app_version = 1;
    int rc = 0;
    lake_writer *w = lake_writer_open(j->tables[v], j->stage[v], &o, err);
    rows_batch *b = w ? rows_batch_new(j->stage[v]) : NULL;
    for (int c = 0; w && c < j->K && rc == 0; c++) {
        const char *path = chunk_file(e, j, (int)v, c, a);
        if (access(path, F_OK)) {
            if (!j->rows[v * (size_t)j->K + (size_t)c]) continue; /* empty chunk */
            /* rows were staged but their file is gone: never commit a silent loss */
            fl_err_set(err, 500, "", "staging file of chunk %d is missing: %s", c, path);
            rc = -1;
            break;
        }
        buf stats = BUF_INIT, sp = BUF_INIT;
        buf_printf(&sp, "%s.stats", path);
        bool have = buf_read_file(&stats, sp.p) == 0;
        if (have) { /* no decode, no re-encode */
            lake_keyidx **ki = &j->kidx[v * (size_t)j->K + (size_t)c];
            rc = lake_adopt(w, path, stats.p, *ki, err);
            *ki = NULL;
        }
        buf_free(&stats);
        buf_free(&sp);
        if (have) continue;
        pq_reader *r = pq_reader_open(path, err); /* staged by an older version */
        if (!r) {
            rc = -1;
            break;
        }
        int got;
        while ((got = pq_read_batch(r, b, err)) == 1)
            if (lake_write(w, b, err)) {
                got = -1;
                break;
            }
        if (got < 0) rc = -1;
        pq_reader_close(r);
    }
    if (!w) {
        rc = -1;
    } else if (rc == 0) {
        pthread_mutex_lock(&e->mu);
        bool cancelled = j->cancel;
        j->finalizing = !cancelled; /* from here on a cancel is too late */
        pthread_mutex_unlock(&e->mu);
        if (cancelled) lake_abort(w), rc = 1;
        else {
            lake_result res;
            rc = lake_commit(w, &res, err);
            /* managed-sql: the staging table is now whole; apply it to Databricks (an
             * idempotent MERGE, so a finalize rerun after a crash is harmless), then drop it */
            if (rc == 0 && j->has_dbx) {   /* one MERGE per view, into its own table */
                buf tn = BUF_INIT;
                dbx_view_table(&tn, j->dbx.table, j->names[v]);
                dbx_target vt = j->dbx;
                vt.table = tn.p;
                rc = dbx_apply(&vt, j->tables[v], j->stage[v], o.key, o.delete_absent, err);
                buf_free(&tn);
            }
            if (rc == 0 && j->has_dbx) rc = dbx_drop_staging(j->tables[v], err);
        }
    } else {
        lake_abort(w);
    }
    rows_batch_free(b);
    arena_free(a);
    return rc;
}

/* ---- finalizing the views of a job in parallel ---- */
typedef struct fin_arg {
    jobs_engine *e;
    job *j;
    size_t *next;            /* shared: the next view to take (under e->mu) */
    int rc;
    fl_err err;
} fin_arg;

static void *fin_worker(void *p)
{
    fin_arg *all = p, *me;
    for (;;) {
        pthread_mutex_lock(&all->e->mu);
        size_t v = (*all->next)++;
        pthread_mutex_unlock(&all->e->mu);
        if (v >= all->j->n_views) return NULL;
        me = all + v;
        fl_err_clear(&me->err);
        me->rc = finalize_view(me->e, me->j, v, &me->err);
    }
}

static bool distinct_tables(const job *j)
{
    for (size_t a = 0; a < j->n_views; a++)
        for (size_t b = a + 1; b < j->n_views; b++)
            if (!strcmp(j->tables[a], j->tables[b])) return false;
    return true;
}

/* Each view's table gets its own commit, so views are independent: their finalizes
 * (snapshot load, merge reads, commit) run on up to nth threads. Views sharing a table
 * run one after another (concurrent commits to one table would only conflict). */
static fin_arg *finalize_views(jobs_engine *e, job *j)
{
    fin_arg *fa = arena_calloc(j->a, j->n_views * sizeof *fa);
    size_t next = 0;
    for (size_t v = 0; v < j->n_views; v++) fa[v] = (fin_arg){.e = e, .j = j, .next = &next};
    size_t n = distinct_tables(j) ? j->n_views : 1;
    if (n > (size_t)e->nth) n = (size_t)e->nth;
    pthread_t th[JOBS_MAX_FIN_THREADS];
    size_t started = 0;
    for (size_t i = 1; i < n && i < JOBS_MAX_FIN_THREADS; i++, started++)
        if (pthread_create(&th[started], NULL, fin_worker, fa) != 0) break;
    fin_worker(fa);
    for (size_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    return fa;
}

static void run_finalize(jobs_engine *e, job *j)
{
    fl_err err;
    fl_err_clear(&err);
    buf outs = BUF_INIT;
    jw w;
    jw_init(&w, &outs);
    jw_arr_begin(&w);
    int rc = 0;
    arena *a = arena_new(0);
    fin_arg *fa = j->lakehouse ? finalize_views(e, j) : NULL;
    for (size_t v = 0; v < j->n_views && rc == 0; v++) {
        if (j->lakehouse) {
            rc = fa[v].rc;
            if (rc) err = fa[v].err;
            const char *t = j->tables[v];
            buf tn = BUF_INIT;
            if (j->has_dbx) dbx_view_table(&tn, j->dbx.table, j->names[v]);
            const char *loc = j->has_dbx ? arena_printf(a, "databricks-uc:%s", tn.p)
                              : strncmp(t, "file://", 7) && strncmp(t, "s3://", 5)
                                  ? arena_printf(a, "file://%s", t) : t;
            buf_free(&tn);
            if (rc == 0) add_output(&w, j->names[v], loc, view_rows(j, v));
            continue;
        }
        for (int c = 0; c < j->K; c++)
            add_output(&w, j->names[v],
                       arena_printf(a, "file://%s", chunk_file(e, j, (int)v, c, a)),
                       j->rows[v * (size_t)j->K + (size_t)c]);
    }
    jw_arr_end(&w);
    pthread_mutex_lock(&e->mu);
    if (rc == 0) {
        snprintf(j->status, sizeof j->status, "completed");
        buf_reset(&j->outputs);
        buf_put(&j->outputs, outs.p, outs.len);
    } else if (rc < 0 && !j->cancel) {
        snprintf(j->status, sizeof j->status, "failed");
        snprintf(j->error, sizeof j->error, "%s%s%s", err.msg, err.where[0] ? " at " : "",
                 err.where);
    }
    j->end = fl_now_micros();
    pthread_mutex_unlock(&e->mu);
    if (rc <= 0) persist(e, j);
    buf_free(&outs);
    arena_free(a);
}

/* ---- workers ---- */
static bool all_done(const job *j)
{
    for (size_t i = 0; i < j->n_views * (size_t)j->K; i++)
        if (!j->done[i]) return false;
    return true;
}

/* A task of j ended (caller holds mu): when it was the last one, either queue the
 * finalize (every chunk done) or clean up and forget the finished job. */
static void task_done(jobs_engine *e, job *j)
{
    if (--j->pending || e->stop) return;
    if (!strcmp(j->status, "in-progress") && !j->cancel) {
        if (all_done(j)) push_task(e, j, 0, -1);
        return; /* (a chunk stopped without error: redone on the next start) */
    }
    arena *a = arena_new(0);
    rmtree(staging_dir(e, j, a));
    if (j->lakehouse || strcmp(j->status, "completed")) /* keep only listed files */
        rmtree(arena_printf(a, "%s/exports/%s", e->data, j->id));
    arena_free(a);
    for (job **p = &e->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    job_free(j);
}

static void run_task(jobs_engine *e, task t)
{
    job *j = t.j;
    pthread_mutex_lock(&e->mu);
    bool skip = j->cancel || e->stop || strcmp(j->status, "in-progress");
    pthread_mutex_unlock(&e->mu);
    if (!skip && t.c < 0) {
        int64_t t0 = fl_mono_micros();
        run_finalize(e, j);
        fl_log(FL_LOG_INFO, "export %s: finalize %s, %.2f s", j->id, j->status,
               (double)(fl_mono_micros() - t0) / 1e6);
    } else if (!skip) {
        fl_err err;
        fl_err_clear(&err);
        int64_t rows = 0, t0 = fl_mono_micros();
        int rc = run_chunk(e, j, t.v, t.c, &rows, &err);
        fl_log(FL_LOG_INFO, "export %s: view %s chunk %d/%d: %s, %lld rows, %.2f s", j->id,
               j->names[t.v], t.c, j->K, rc == 0 ? "done" : rc > 0 ? "stopped" : "failed",
               (long long)rows, (double)(fl_mono_micros() - t0) / 1e6);
        pthread_mutex_lock(&e->mu);
        size_t i = (size_t)t.v * (size_t)j->K + (size_t)t.c;
        if (rc == 0) {
            j->done[i] = 1;
            j->rows[i] = rows;
        } else if (rc < 0 && !j->cancel) {
            snprintf(j->status, sizeof j->status, "failed");
            snprintf(j->error, sizeof j->error, "view %s chunk %d: %s%s%s", j->names[t.v], t.c,
                     err.msg, err.where[0] ? " at " : "", err.where);
            j->cancel = true; /* the other chunks stop */
            j->end = fl_now_micros();
        }
        pthread_mutex_unlock(&e->mu);
        if (rc <= 0) persist(e, j); /* j is pinned by this task until task_done */
    }
    pthread_mutex_lock(&e->mu);
    task_done(e, j);
    pthread_mutex_unlock(&e->mu);
}

static void *worker(void *arg)
{
    jobs_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && !e->qn) pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop) break;
        task t = e->q[0];
        memmove(e->q, e->q + 1, (e->qn - 1) * sizeof *e->q);
        e->qn--;
        pthread_mutex_unlock(&e->mu);
        run_task(e, t);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- resume ---- */
typedef struct pending_list {
    arena *a;
    char **ids, **states;
    size_t n, cap;
} pending_list;

static int collect_running(void *ctx, const store_job *sj)
{
    pending_list *l = ctx;
    if (strcmp(sj->status, "in-progress")) return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->ids = realloc(l->ids, l->cap * sizeof *l->ids);
        l->states = realloc(l->states, l->cap * sizeof *l->states);
        if (!l->ids || !l->states) abort();
    }
    l->ids[l->n] = arena_strdup(l->a, sj->id);
    l->states[l->n++] = arena_strdup(l->a, sj->state ? sj->state : "{}");
    return 0;
}

static void resume_all(jobs_engine *e)
{
    pending_list l = {.a = arena_new(0)};
    fl_err err;
    fl_err_clear(&err);
    if (store_job_list(e->s, JOBS_KIND_EXPORT, collect_running, &l, &err))
        fl_log(FL_LOG_ERROR, "export: cannot list jobs: %s", err.msg);
    for (size_t i = 0; i < l.n; i++) {
        fl_err_clear(&err);
        job *j = job_load(e, l.ids[i], l.states[i], &err);
        if (!j) {
            fl_log(FL_LOG_ERROR, "export %s: cannot resume: %s", l.ids[i], err.msg);
            store_job sj = {.id = l.ids[i], .kind = JOBS_KIND_EXPORT, .status = "failed",
                            .state = l.states[i], .updated = fl_now_micros()};
            store_job_put(e->s, &sj, &err);
            continue;
        }
        fl_log(FL_LOG_INFO, "export %s: resuming", j->id);
        pthread_mutex_lock(&e->mu);
        plan(e, j);
        pthread_mutex_unlock(&e->mu);
    }
    free(l.ids);
    free(l.states);
    arena_free(l.a);
}

jobs_engine *jobs_start(store *s, const char *data_dir, int threads, fl_err *err)
{
    jobs_engine *e = calloc(1, sizeof *e);
    if (!e) abort();
    e->s = s;
    char abs[PATH_MAX];
    if (!realpath(data_dir, abs)) {
        fl_err_set(err, 500, "", "data directory %s: %s", data_dir, strerror(errno));
        free(e);
        return NULL;
    }
    e->data = strdup(abs);
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->persist_mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->nth = threads > 0 ? threads : 4;
    const char *delay = getenv("FHIRLAKE_EXPORT_CHUNK_DELAY_MS");
    e->chunk_delay_ms = delay ? atoi(delay) : 0;
    e->th = calloc((size_t)e->nth, sizeof *e->th);
    if (!e->data || !e->th) abort();
    resume_all(e);
    for (int i = 0; i < e->nth; i++) pthread_create(&e->th[i], NULL, worker, e);
    return e;
}

void jobs_stop(jobs_engine *e)
{
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    __atomic_store_n(&e->stop, true, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->nth; i++) pthread_join(e->th[i], NULL);
    while (e->jobs) {
        job *j = e->jobs;
        e->jobs = j->next;
        job_free(j);
    }
    free(e->q);
    free(e->th);
    free(e->data);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->persist_mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

/* ---- submit ---- */
static int check_table(const char *t, const char *where, fl_err *err)
{
    const char *p = t;
    if (!strncmp(t, "s3://", 5)) {   /* object store: bucket syntax checked here, the rest on write */
        char *bucket, *prefix;
        if (s3_parse_url(t, &bucket, &prefix, err) != 0) {
            snprintf(err->where, sizeof err->where, "%s", where);
            return -1;
        }
        free(bucket);
        free(prefix);
        return 0;
    }
    if (!strncmp(p, "file://", 7)) p += 7;
    else if (strstr(t, "://")) {
        fl_err_set(err, 400, where, "unsupported tablePath scheme in '%s' (a path, file:// or s3:// URI)", t);
        return -1;
    }
    if (p[0] != '/' || strstr(p, "/../") || strstr(p, "/./")) {
        fl_err_set(err, 400, where, "tablePath must be an absolute path or file:// URI: '%s'", t);
        return -1;
    }
    struct stat st;
    if (!stat(p, &st)) {
        if (!S_ISDIR(st.st_mode)) {
            fl_err_set(err, 400, where, "tablePath '%s' exists and is not a directory", t);
            return -1;
        }
        char log[PATH_MAX];
        snprintf(log, sizeof log, "%s/_delta_log", p);
        DIR *d = opendir(p);
        int n = 0;
        for (struct dirent *de; d && (de = readdir(d));)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
        if (d) closedir(d);
        if (n && access(log, F_OK)) {
            fl_err_set(err, 400, where, "tablePath '%s' is a non-empty directory that is not a Delta table", t);
            return -1;
        }
    }
    return 0;
}

static void spec_write(jobs_engine *e, const jobs_spec *sp, buf *out)
{
    jw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "views");
    jw_arr_begin(&w);
    for (size_t i = 0; i < sp->n_views; i++) {
        jw_obj_begin(&w);
        jw_key(&w, "name");
        jw_str(&w, sp->views[i].name);
        if (sp->lakehouse) {
            jw_key(&w, "table");
            if (sp->dbx) {   /* a fresh staging table per job */
                char id[37];
                fl_uuid4(id);
                buf t = BUF_INIT;
                size_t sl = strlen(sp->dbx->staging);
                while (sl > 5 && sp->dbx->staging[sl - 1] == '/') sl--;
                buf_printf(&t, "%.*s/fhirlake-export-%s-%s", (int)sl, sp->dbx->staging,
                           sp->views[i].name, id);
                jw_str(&w, t.p);
                buf_free(&t);
            } else if (sp->views[i].table) jw_str(&w, sp->views[i].table);
            else {
                buf t = BUF_INIT;
                buf_printf(&t, "%s/lake/%s", e->data, sp->views[i].name);
                jw_str(&w, t.p);
                buf_free(&t);
            }
        }
        jw_key(&w, "view");
        jw_val(&w, sp->views[i].view);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "lakehouse");
    jw_bool(&w, sp->lakehouse);
    if (sp->s3_endpoint || sp->aws_region || sp->aws_key_id_ref || sp->aws_secret_ref) {
        jw_key(&w, "s3");
        jw_obj_begin(&w);
        const char *k[] = {"endpoint", "region", "keyRef", "secretRef"};
        const char *v[] = {sp->s3_endpoint, sp->aws_region, sp->aws_key_id_ref, sp->aws_secret_ref};
        for (int i = 0; i < 4; i++)
            if (v[i]) jw_key(&w, k[i]), jw_str(&w, v[i]);
        jw_obj_end(&w);
    }
    if (sp->dbx) {
        jw_key(&w, "dbx");
        jw_obj_begin(&w);
        jw_key(&w, "workspace"), jw_str(&w, sp->dbx->workspace);
        jw_key(&w, "warehouse"), jw_str(&w, sp->dbx->warehouse);
        jw_key(&w, "table"), jw_str(&w, sp->dbx->table);
        jw_key(&w, "staging"), jw_str(&w, sp->dbx->staging);
        jw_obj_end(&w);
    }
    jw_key(&w, "format");
    jw_str(&w, sp->format ? sp->format : "ndjson");
    jw_key(&w, "header");
    jw_bool(&w, sp->header);
    jw_key(&w, "copyOnWrite");
    jw_bool(&w, sp->copy_on_write);
    jw_key(&w, "since");
    jw_int(&w, sp->since);
    jw_key(&w, "chunks");
    jw_int(&w, sp->chunk_count);
    if (sp->client_tracking_id) {
        jw_key(&w, "ctid");
        jw_str(&w, sp->client_tracking_id);
    }
    jw_key(&w, "patients");
    jw_arr_begin(&w);
    for (size_t i = 0; i < sp->n_patients; i++) jw_str(&w, sp->patients[i]);
    jw_arr_end(&w);
    jw_obj_end(&w);
}

static int validate(const jobs_spec *sp, fl_err *err)
{
    if (!sp->n_views) {
        fl_err_set(err, 400, "view", "no view given: at least one 'view' parameter is required");
        return -1;
    }
    if (sp->chunk_count < 1 || sp->chunk_count > JOBS_MAX_CHUNKS) {
        fl_err_set(err, 400, "chunkCount", "chunkCount must be between 1 and %d", JOBS_MAX_CHUNKS);
        return -1;
    }
    if (!sp->lakehouse && parse_fmt(sp->format) < 0) {
        fl_err_set(err, 400, "_format", "unknown _format '%s' (ndjson, csv, json, parquet)", sp->format);
        return -1;
    }
    for (size_t i = 0; i < sp->n_views; i++) {
        char where[64];
        snprintf(where, sizeof where, "view[%zu].name", i);
        const char *n = sp->views[i].name;
        bool ok = n && *n && strlen(n) < 128;
        for (const char *p = n; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                 (p != n && *p >= '0' && *p <= '9');
        if (!ok) {
            fl_err_set(err, 400, where, "view name '%s' is not a valid sql name ([A-Za-z_][A-Za-z0-9_]*)", n ? n : "");
            return -1;
        }
        for (size_t k = 0; k < i; k++)
            if (!strcmp(sp->views[k].name, n)) {
                fl_err_set(err, 400, where, "two views are named '%s'", n);
                return -1;
            }
        snprintf(where, sizeof where, "view[%zu].tablePath", i);
        if (sp->lakehouse && sp->views[i].table && check_table(sp->views[i].table, where, err))
            return -1;
    }
    if ((sp->aws_key_id_ref && !secrets_is_ref(sp->aws_key_id_ref)) ||
        (sp->aws_secret_ref && !secrets_is_ref(sp->aws_secret_ref))) {   /* never echo it */
        const char *p = sp->aws_key_id_ref && !secrets_is_ref(sp->aws_key_id_ref)
                            ? "awsAccessKeyId" : "awsSecretAccessKey";
        fl_err_set(err, 400, p, "%s must be a secret reference (\"secret:NAME\" from the "
                                "server's secrets file), not a value", p);
        return -1;
    }
    if (!sp->aws_key_id_ref != !sp->aws_secret_ref) {
        fl_err_set(err, 400, sp->aws_key_id_ref ? "awsSecretAccessKey" : "awsAccessKeyId",
                   "awsAccessKeyId and awsSecretAccessKey go together");
        return -1;
    }
    if (sp->dbx && !sp->lakehouse) {
        fl_err_set(err, 400, "writeMode", "writeMode managed-sql needs kind data-lakehouse");
        return -1;
    }
    const char *tn = sp->dbx ? sp->dbx->table : NULL, *d = tn ? strchr(tn, '.') : NULL;
    if (sp->dbx && sp->n_views > 1 && d && strchr(d + 1, '.')) {
        fl_err_set(err, 400, "tableName", "with several views give tableName as catalog.schema: "
                                          "each view goes to catalog.schema.<view name>");
        return -1;
    }
    int rc = 0;   /* last: dbx_check asks the workspace for a token (cached after the first) */
    for (size_t i = 0; sp->dbx && rc == 0 && i < sp->n_views; i++) {
        buf t = BUF_INIT;
        if (sp->n_views > 1) dbx_view_table(&t, tn, sp->views[i].name);
        else buf_puts(&t, tn ? tn : "");   /* one view: catalog.schema.table */
        dbx_target vt = *sp->dbx;
        vt.table = t.p;
        rc = dbx_check(&vt, err);
        buf_free(&t);
    }
    return rc;
}

/* A _since export with few changes needs few chunks: every chunk of a view becomes a
 * data file of its table (or an output file), and tiny ones only cost, here and in every
 * later read of the table. One chunk per SINCE_ROWS_PER_CHUNK changes, at most K. */
static int since_chunks(jobs_engine *e, const jobs_spec *sp, int64_t W)
{
    int64_t most = 0;
    for (size_t v = 0; v < sp->n_views; v++) {
        const char *type = json_get_str(sp->views[v].view, "resource");
        int64_t n = type ? store_count_changes(e->s, type, sp->since, W) : 0;
        most = n > most ? n : most;
    }
    int64_t k = (most + SINCE_ROWS_PER_CHUNK - 1) / SINCE_ROWS_PER_CHUNK;
    return k < 1 ? 1 : k > sp->chunk_count ? sp->chunk_count : (int)k;
}

int jobs_submit(jobs_engine *e, const jobs_spec *sp_in, char id_out[37], fl_err *err)
{
    if (validate(sp_in, err)) return -1;
    char id[37];
    fl_uuid4(id);
    buf st = BUF_INIT;
    int64_t W = store_max_ts(e->s), start = fl_now_micros();
    jobs_spec spec = *sp_in, *sp = &spec;
    if (sp->since && sp->chunk_count > 1) sp->chunk_count = since_chunks(e, sp, W);
    buf_puts(&st, "{\"spec\":");
    spec_write(e, sp, &st);
    buf_printf(&st, ",\"W\":%lld,\"start\":%lld}", (long long)W, (long long)start);
    job *j = job_load(e, id, st.p, err);
    buf_free(&st);
    if (!j) return -1;
    for (size_t v = 0; v < j->n_views; v++) {
        char where[64];
        snprintf(where, sizeof where, "view[%zu]", v);
        if (sp->since && sof_view_ts_column(j->views[v]) < 0) {
            fl_err_set(err, 400, where, "_since needs the view to have a top-level column with path "
                                        "getAidboxTs() (the change timestamp); view '%s' has none",
                       j->names[v]);
        } else if (j->lakehouse && sp->since && sof_view_key_column(j->views[v]) < 0) {
            fl_err_set(err, 400, where, "_since into a table needs a key column (path id or "
                                        "getResourceKey()) in view '%s'", j->names[v]);
        } else {
            continue;
        }
        job_free(j);
        return -1;
    }
    if (!j->since && j->K > 1) {
        j->bounds = arena_calloc(j->a, j->n_views * sizeof *j->bounds);
        for (size_t v = 0; v < j->n_views; v++) {
            if (store_split(e->s, sof_view_resource_type(j->views[v]), j->K, j->a,
                            &j->bounds[v], err)) {
                job_free(j);
                return -1;
            }
        }
    }
    persist(e, j);
    pthread_mutex_lock(&e->mu);
    plan(e, j);
    pthread_mutex_unlock(&e->mu);
    memcpy(id_out, id, 37);
    return 0;
}

/* ---- status / cancel ---- */
static void param_str(jw *w, const char *name, const char *type, const char *v)
{
    jw_obj_begin(w);
    jw_key(w, "name");
    jw_str(w, name);
    jw_key(w, type);
    jw_str(w, v);
    jw_obj_end(w);
}

static void param_time(jw *w, const char *name, int64_t us)
{
    char t[40];
    fl_time_format(us, t);
    param_str(w, name, "valueInstant", t);
}

static void manifest(const char *id, const char *status, const json_val *st, buf *out)
{
    jw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "Parameters");
    jw_key(&w, "parameter");
    jw_arr_begin(&w);
    param_str(&w, "exportId", "valueString", id);
    param_str(&w, "status", "valueCode", status);
    const json_val *spec = json_get(st, "spec");
    const char *ctid = json_get_str(spec, "ctid");
    if (ctid) param_str(&w, "clientTrackingId", "valueString", ctid);
    param_time(&w, "exportStartTime", num_of(st, "start"));
    param_time(&w, "exportEndTime", num_of(st, "W"));
    const char *error = json_get_str(st, "error");
    if (error) param_str(&w, "error", "valueString", error);
    const json_val *outs = json_get(st, "outputs");
    for (uint32_t i = 0; json_is(outs, JSON_ARRAY) && i < outs->len; i++) {
        const json_val *o = &outs->u.a[i];
        jw_obj_begin(&w);
        jw_key(&w, "name");
        jw_str(&w, "output");
        jw_key(&w, "part");
        jw_arr_begin(&w);
        param_str(&w, "name", "valueString", json_get_str(o, "name"));
        param_str(&w, "location", "valueUri", json_get_str(o, "location"));
        jw_obj_begin(&w);
        jw_key(&w, "name");
        jw_str(&w, "count");
        jw_key(&w, "valueInteger");
        jw_int(&w, num_of(o, "count"));
        jw_obj_end(&w);
        jw_arr_end(&w);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
}

int jobs_status(jobs_engine *e, const char *id, buf *out, char *progress, size_t n, fl_err *err)
{
    arena *a = arena_new(0);
    store_job sj;
    int rc = -1;
    if (store_job_get(e->s, a, id, &sj, err) == 0) {
        json_val *st = json_parse(a, sj.state ? sj.state : "{}", sj.state ? strlen(sj.state) : 2,
                                  NULL, err);
        if (st && !strcmp(sj.status, "in-progress")) {
            const json_val *d = json_get(st, "done");
            uint32_t done = 0, total = json_is(d, JSON_ARRAY) ? d->len : 0;
            for (uint32_t i = 0; i < total; i++) done += d->u.a[i].len == 1 && d->u.a[i].u.s[0] == '1';
            snprintf(progress, n, "%u/%u chunks", done, total);
            rc = JOBS_RUNNING;
        } else if (st) {
            manifest(id, sj.status, st, out);
            rc = JOBS_FINISHED;
        }
    }
    arena_free(a);
    return rc;
}

int jobs_cancel(jobs_engine *e, const char *id, fl_err *err)
{
    /* The state is written while the job is pinned by mu: once mu is released its last
     * task may free it. persist_mu keeps the store writes of one job in order. */
    buf st = BUF_INIT;
    pthread_mutex_lock(&e->persist_mu);
    pthread_mutex_lock(&e->mu);
    job *j = e->jobs;
    while (j && strcmp(j->id, id)) j = j->next;
    bool found = j != NULL, changed = false;
    int64_t start = 0;
    if (j && !strcmp(j->status, "in-progress") && !j->finalizing) {
        j->cancel = true;
        snprintf(j->status, sizeof j->status, "cancelled");
        j->end = fl_now_micros();
        state_write(j, &st);
        start = j->start;
        changed = true;
    }
    pthread_mutex_unlock(&e->mu);
    int rc = 0;
    if (changed) {
        store_job sj = {.id = id, .kind = JOBS_KIND_EXPORT, .status = "cancelled", .state = st.p,
                        .created = start, .updated = fl_now_micros()};
        rc = store_job_put(e->s, &sj, err);
    } else {
        arena *a = arena_new(0);
        store_job sj;
        rc = store_job_get(e->s, a, id, &sj, err);
        if (rc == 0 && !found && !strcmp(sj.status, "in-progress")) { /* not running here */
            sj.status = "cancelled";
            rc = store_job_put(e->s, &sj, err);
        }
        arena_free(a);
    }
    pthread_mutex_unlock(&e->persist_mu);
    buf_free(&st);
    return rc;
}
