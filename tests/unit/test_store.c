/* test_store.c: store semantics on the SQLite backend — versions, strictly increasing ts,
 * history, deletes as tombstones, If-Match, atomic multi-op requests, snapshot at a
 * watermark, changes since, outbox via the listener, jobs, concurrent group commit. */
#include "t.h"
#include "store/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof dir, "/tmp/fl_store_test_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void rm_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* Render: {"v":<version>,"ts":<ts>,"x":"<ctx>"} so tests can see what the store passed. */
static void render(void *ctx, int64_t version, int64_t ts, buf *out)
{
    buf_printf(out, "{\"v\":%lld,\"ts\":%lld,\"x\":\"%s\"}", (long long)version,
               (long long)ts, (const char *)ctx);
}

static int put(store *s, const char *type, const char *id, const char *x, int64_t if_match,
               store_op *out, fl_err *err)
{
    store_op op = {.kind = STORE_PUT, .type = type, .id = id, .if_match = if_match,
                   .render = render, .render_ctx = (void *)x};
    int rc = store_commit(s, &op, 1, NULL, err);
    if (out) *out = op;
    return rc;
}

static int del(store *s, const char *type, const char *id, store_op *out, fl_err *err)
{
    store_op op = {.kind = STORE_DELETE, .type = type, .id = id, .if_match = -1};
    int rc = store_commit(s, &op, 1, NULL, err);
    if (out) *out = op;
    return rc;
}

typedef struct collect {
    int n;
    char ids[64][40];
    int64_t versions[64];
    int deleted[64];
    int64_t ts[64];
} collect;

static int collect_row(void *ctx, const store_res *r)
{
    collect *c = ctx;
    if (c->n < 64) {
        snprintf(c->ids[c->n], sizeof c->ids[0], "%s", r->id);
        c->versions[c->n] = r->version;
        c->deleted[c->n] = r->deleted;
        c->ts[c->n] = r->ts;
    }
    c->n++;
    return 0;
}

static void test_versions_and_read(void)
{
    mkdir_tmp();
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (!s) return;
    store_op a, b, c;
    CHECK(put(s, "Patient", "p1", "one", -1, &a, &err) == 0);
    CHECK(a.version == 1 && a.created == 1);
    CHECK(put(s, "Patient", "p1", "two", -1, &b, &err) == 0);
    CHECK(b.version == 2 && b.created == 0);
    CHECK(b.ts > a.ts);
    CHECK(store_max_ts(s) == b.ts);
    arena *ar = arena_new(0);
    store_res r;
    CHECK(store_read(s, ar, "Patient", "p1", 0, &r, &err) == 0);
    CHECK(r.version == 2 && strstr(r.body, "\"x\":\"two\"") != NULL);
    CHECK(store_read(s, ar, "Patient", "p1", 1, &r, &err) == 0);
    CHECK(strstr(r.body, "\"x\":\"one\"") != NULL);
    CHECK(store_read(s, ar, "Patient", "p1", 3, &r, &err) == -1 && err.status == 404);
    CHECK(store_read(s, ar, "Patient", "nope", 0, &r, &err) == -1 && err.status == 404);
    CHECK(store_read(s, ar, "Observation", "p1", 0, &r, &err) == -1 && err.status == 404);
    /* If-Match */
    fl_err_clear(&err);
    CHECK(put(s, "Patient", "p1", "bad", 1, NULL, &err) == -1 && err.status == 412);
    CHECK(put(s, "Patient", "p1", "three", 2, &c, &err) == 0 && c.version == 3);
    CHECK(put(s, "Patient", "new", "x", 0, NULL, &err) == 0);
    CHECK(put(s, "Patient", "new", "x", 0, NULL, &err) == -1 && err.status == 412);
    /* delete, then read 410, then re-create continues the version line */
    store_op d;
    CHECK(del(s, "Patient", "p1", &d, &err) == 0 && d.version == 4 && d.changed);
    CHECK(store_read(s, ar, "Patient", "p1", 0, &r, &err) == -1 && err.status == 410);
    CHECK(store_read(s, ar, "Patient", "p1", 4, &r, &err) == -1 && err.status == 410);
    CHECK(del(s, "Patient", "p1", &d, &err) == 0 && !d.changed);
    CHECK(del(s, "Patient", "ghost", &d, &err) == 0 && !d.changed);
    CHECK(put(s, "Patient", "p1", "back", -1, &c, &err) == 0 && c.version == 5 && c.created);
    /* instance history: newest first, tombstone included */
    collect h = {0};
    long total = 0;
    CHECK(store_history(s, "Patient", "p1", 0, 0, -1, collect_row, &h, &total, &err) == 0);
    CHECK(h.n == 5 && total == 5);
    CHECK(h.versions[0] == 5 && h.versions[1] == 4 && h.deleted[1] == 1);
    CHECK(h.ts[0] > h.ts[1] && h.ts[1] > h.ts[2]);
    collect th = {0};
    CHECK(store_history(s, "Patient", NULL, 0, 1, 2, collect_row, &th, &total, &err) == 0);
    CHECK(th.n == 2 && total == 6);
    collect sh = {0};
    CHECK(store_history(s, NULL, NULL, 0, 0, -1, collect_row, &sh, &total, &err) == 0);
    CHECK(sh.n == 6);
    arena_free(ar);
    store_close(s);
    rm_tmp();
}

static void test_atomic_and_snapshot(void)
{
    mkdir_tmp();
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (!s) return;
    store_op a;
    CHECK(put(s, "Patient", "a", "a1", -1, &a, &err) == 0);
    int64_t W1 = store_max_ts(s);
    /* A request with a failing op writes nothing. */
    store_op ops[3] = {
        {.kind = STORE_PUT, .type = "Patient", .id = "b", .if_match = -1, .render = render,
         .render_ctx = "b1"},
        {.kind = STORE_PUT, .type = "Patient", .id = "a", .if_match = -1, .render = render,
         .render_ctx = "a2"},
        {.kind = STORE_PUT, .type = "Patient", .id = "c", .if_match = 7, .render = render,
         .render_ctx = "c1"},
    };
    int64_t txid = 0;
    CHECK(store_commit(s, ops, 3, &txid, &err) == -1 && err.status == 412);
    CHECK_STR(err.where, "op[2]");
    arena *ar = arena_new(0);
    store_res r;
    CHECK(store_read(s, ar, "Patient", "b", 0, &r, &err) == -1 && err.status == 404);
    CHECK(store_max_ts(s) == W1);
    /* Same request without the bad op: all share one ts and one txid. */
    CHECK(store_commit(s, ops, 2, &txid, &err) == 0);
    CHECK(ops[0].ts == ops[1].ts && ops[0].ts > W1 && txid > 0);
    int64_t W2 = store_max_ts(s);
    CHECK(del(s, "Patient", "b", NULL, &err) == 0);
    CHECK(put(s, "Patient", "d", "d1", -1, NULL, &err) == 0);
    int64_t W3 = store_max_ts(s);
    /* Snapshot at W1: only a@1 */
    collect c1 = {0};
    CHECK(store_scan(s, "Patient", W1, 0, collect_row, &c1, &err) == 0);
    CHECK(c1.n == 1 && c1.versions[0] == 1);
    /* At W2: a@2, b@1 */
    collect c2 = {0};
    CHECK(store_scan(s, "Patient", W2, 0, collect_row, &c2, &err) == 0);
    CHECK(c2.n == 2 && !strcmp(c2.ids[0], "a") && c2.versions[0] == 2 && !strcmp(c2.ids[1], "b"));
    /* At W3 without deleted: a, d; with deleted: a, b (tombstone), d */
    collect c3 = {0}, c3d = {0};
    CHECK(store_scan(s, "Patient", W3, 0, collect_row, &c3, &err) == 0);
    CHECK(c3.n == 2);
    CHECK(store_scan(s, "Patient", W3, 1, collect_row, &c3d, &err) == 0);
    CHECK(c3d.n == 3 && c3d.deleted[1] == 1);
    /* Changes in (W1, W3]: b1, a2 (same ts), b deleted, d1 */
    collect ch = {0};
    CHECK(store_changes(s, "Patient", W1, W3, collect_row, &ch, &err) == 0);
    CHECK(ch.n == 4 && ch.deleted[2] == 1 && !strcmp(ch.ids[3], "d"));
    collect ch2 = {0};
    CHECK(store_changes(s, NULL, W2, W3, collect_row, &ch2, &err) == 0);
    CHECK(ch2.n == 2);
    /* Search: current, non-deleted, by ts */
    collect sr = {0};
    long total = 0;
    store_query q = {.type = "Patient", .ts_min = INT64_MIN, .ts_max = INT64_MAX,
                     .sort = -1, .count = 1};
    CHECK(store_search(s, &q, collect_row, &sr, &total, &err) == 0);
    CHECK(total == 2 && sr.n == 1 && !strcmp(sr.ids[0], "d"));
    const char *ids[] = {"a", "b", "zz"};
    q.ids = ids;
    q.n_ids = 3;
    q.count = -1;
    collect si = {0};
    CHECK(store_search(s, &q, collect_row, &si, &total, &err) == 0);
    CHECK(total == 1 && si.n == 1 && !strcmp(si.ids[0], "a"));
    q.ids = NULL;
    q.ts_min = W3;
    collect sl = {0};
    CHECK(store_search(s, &q, collect_row, &sl, &total, &err) == 0);
    CHECK(total == 1 && !strcmp(sl.ids[0], "d"));
    const char **types;
    size_t nt;
    CHECK(store_types(s, ar, &types, &nt, &err) == 0 && nt == 1 && !strcmp(types[0], "Patient"));
    arena_free(ar);
    store_close(s);
    /* Reopen: data and counters survive; new ts continue after the old ones. */
    s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (s) {
        CHECK(store_max_ts(s) == W3);
        store_op e;
        CHECK(put(s, "Patient", "a", "a3", -1, &e, &err) == 0 && e.version == 3 && e.ts > W3);
        store_close(s);
    }
    rm_tmp();
}

static int listener(void *ctx, store_tx *tx, const store_res *r, fl_err *err)
{
    (void)ctx;
    if (!strcmp(r->id, "reject")) {
        fl_err_set(err, 422, "", "listener refused");
        return -1;
    }
    char p[128];
    int n = snprintf(p, sizeof p, "%s/%s/%lld/%d", r->type, r->id, (long long)r->version,
                     r->deleted);
    return store_outbox_add(tx, "t1", p, (size_t)n, err);
}

static int collect_event(void *ctx, const store_event *e)
{
    collect *c = ctx;
    if (c->n < 64) {
        snprintf(c->ids[c->n], sizeof c->ids[0], "%.*s", (int)e->len, e->payload);
        c->versions[c->n] = e->seq;
    }
    c->n++;
    return 0;
}

static void test_outbox_and_jobs(void)
{
    mkdir_tmp();
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (!s) return;
    CHECK(store_add_listener(s, listener, NULL, &err) == 0);
    CHECK(put(s, "Patient", "p", "x", -1, NULL, &err) == 0);
    CHECK(del(s, "Patient", "p", NULL, &err) == 0);
    CHECK(put(s, "Patient", "reject", "x", -1, NULL, &err) == -1 && err.status == 422);
    CHECK_STR(err.where, "op[0]");
    collect ev = {0};
    CHECK(store_outbox_read(s, "t1", 0, -1, collect_event, &ev, &err) == 0);
    CHECK(ev.n == 2);
    CHECK_STR(ev.ids[0], "Patient/p/1/0");
    CHECK_STR(ev.ids[1], "Patient/p/2/1");
    CHECK(store_outbox_trim(s, "t1", ev.versions[0], &err) == 0);
    collect ev2 = {0};
    CHECK(store_outbox_read(s, "t1", 0, -1, collect_event, &ev2, &err) == 0 && ev2.n == 1);
    arena *ar = arena_new(0);
    store_res r;
    CHECK(store_read(s, ar, "Patient", "reject", 0, &r, &err) == -1 && err.status == 404);
    store_job j = {.id = "j1", .kind = "export", .status = "in-progress", .state = "{}"};
    CHECK(store_job_put(s, &j, &err) == 0);
    j.status = "completed";
    CHECK(store_job_put(s, &j, &err) == 0);
    store_job g;
    CHECK(store_job_get(s, ar, "j1", &g, &err) == 0);
    CHECK_STR(g.status, "completed");
    CHECK(store_job_delete(s, "j1", &err) == 0);
    CHECK(store_job_get(s, ar, "j1", &g, &err) == -1 && err.status == 404);
    arena_free(ar);
    store_close(s);
    rm_tmp();
}

typedef struct worker {
    store *s;
    int k;
    int fails;
    int64_t ts[200];
} worker;

static void *write_many(void *p)
{
    worker *w = p;
    for (int i = 0; i < 200; i++) {
        char id[32];
        snprintf(id, sizeof id, "w%d-%d", w->k, i);
        fl_err err;
        fl_err_clear(&err);
        store_op op;
        if (put(w->s, "Observation", id, "c", -1, &op, &err)) w->fails++;
        w->ts[i] = op.ts;
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent(void)
{
    mkdir_tmp();
    fl_err err;
    fl_err_clear(&err);
    store_opts o = {.sync = STORE_SYNC_NORMAL, .read_conns = 2};
    store *s = store_open(dir, &o, &err);
    CHECK(s != NULL);
    if (!s) return;
    worker w[8];
    pthread_t th[8];
    for (int k = 0; k < 8; k++) {
        w[k] = (worker){.s = s, .k = k};
        pthread_create(&th[k], NULL, write_many, &w[k]);
    }
    int64_t all[1600];
    for (int k = 0; k < 8; k++) {
        pthread_join(th[k], NULL);
        CHECK(w[k].fails == 0);
        memcpy(all + k * 200, w[k].ts, sizeof w[k].ts);
    }
    /* Every request got its own ts: no two equal. */
    qsort(all, 1600, sizeof all[0], cmp64);
    int dup = 0;
    for (int i = 1; i < 1600; i++) dup += all[i] == all[i - 1];
    CHECK(dup == 0);
    store_query q = {.type = "Observation", .ts_min = INT64_MIN, .ts_max = INT64_MAX,
                     .count = 0};
    long total = 0;
    collect c = {0};
    CHECK(store_search(s, &q, collect_row, &c, &total, &err) == 0 && total == 1600);
    store_close(s);
    rm_tmp();
}

typedef struct async_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, failed;
} async_ctx;

static void on_done(void *ctx, int rc, int64_t txid, const fl_err *err)
{
    async_ctx *c = ctx;
    (void)txid;
    (void)err;
    pthread_mutex_lock(&c->mu);
    c->done++;
    c->failed += rc != 0;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void test_async_order(void)
{
    mkdir_tmp();
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (!s) return;
    async_ctx c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    static const char *xs[5] = {"a", "b", "c", "d", "e"};
    store_op ops[5];
    for (int i = 0; i < 5; i++) {
        ops[i] = (store_op){.kind = STORE_PUT, .type = "Patient", .id = "same", .if_match = i,
                            .render = render, .render_ctx = (void *)xs[i]};
        CHECK(store_commit_async(s, &ops[i], 1, on_done, &c, &err) == 0);
    }
    pthread_mutex_lock(&c.mu);
    while (c.done < 5) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    /* queued in order, so each If-Match saw the previous version */
    CHECK(c.failed == 0);
    for (int i = 0; i < 5; i++) CHECK(ops[i].version == i + 1);
    for (int i = 1; i < 5; i++) CHECK(ops[i].ts > ops[i - 1].ts);
    arena *ar = arena_new(0);
    store_res r;
    CHECK(store_read(s, ar, "Patient", "same", 0, &r, &err) == 0 && strstr(r.body, "\"e\""));
    arena_free(ar);
    store_close(s);
    rm_tmp();
}

/* Second listener: writes into an attached database through the writer's connection,
 * refuses id "veto" (after the first listener already wrote its outbox event). */
static int listener2(void *ctx, store_tx *tx, const store_res *r, fl_err *err)
{
    int *calls = ctx;
    (*calls)++;
    if (!strcmp(r->id, "veto")) {
        fl_err_set(err, 409, "", "second listener refused");
        return -1;
    }
    sqlite3 *db = store_tx_sqlite(tx);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO side.seen VALUES (?1, ?2)", -1, &st, NULL)) {
        fl_err_set(err, 500, "", "prepare: %s", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->cts);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    if (rc) fl_err_set(err, 500, "", "insert failed");
    return rc;
}

static int64_t side_count(const char *sql)
{
    char path[300];
    snprintf(path, sizeof path, "%s/side.db", dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_listeners(void)
{
    mkdir_tmp();
    fl_err err;
    fl_err_clear(&err);
    char path[300];
    snprintf(path, sizeof path, "%s/side.db", dir);
    sqlite3 *side = NULL;
    CHECK(sqlite3_open(path, &side) == SQLITE_OK);
    CHECK(sqlite3_exec(side, "CREATE TABLE seen(id TEXT, cts INTEGER)", NULL, NULL, NULL) == 0);
    sqlite3_close(side);
    store *s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (!s) return;
    int calls = 0;
    CHECK(store_attach(s, path, "side", &err) == 0);
    CHECK(store_add_listener(s, listener, NULL, &err) == 0);
    CHECK(store_add_listener(s, listener2, &calls, &err) == 0);
    store_op a;
    CHECK(put(s, "Patient", "p", "x", -1, &a, &err) == 0);
    CHECK(put(s, "Patient", "p", "y", -1, NULL, &err) == 0);
    CHECK(calls == 2);
    /* both listeners ran, in the same transaction; cts = ts of version 1 */
    CHECK(side_count("SELECT count(*) FROM seen WHERE id = 'p'") == 2);
    char q[200];
    snprintf(q, sizeof q, "SELECT count(*) FROM seen WHERE cts = %lld", (long long)a.ts);
    CHECK(side_count(q) == 2);
    /* the second refuses: the request fails and the first one's outbox event rolls back */
    CHECK(put(s, "Patient", "veto", "x", -1, NULL, &err) == -1 && err.status == 409);
    collect ev = {0};
    CHECK(store_outbox_read(s, "t1", 0, -1, collect_event, &ev, &err) == 0 && ev.n == 2);
    arena *ar = arena_new(0);
    store_res r;
    CHECK(store_read(s, ar, "Patient", "veto", 0, &r, &err) == -1 && err.status == 404);
    CHECK(store_read(s, ar, "Patient", "p", 0, &r, &err) == 0 && r.cts == a.ts && r.ts > a.ts);
    arena_free(ar);
    /* removed: no longer called */
    store_remove_listener(s, listener2, &calls);
    CHECK(put(s, "Patient", "veto", "x", -1, NULL, &err) == 0 && calls == 3);
    store_close(s);
    rm_tmp();
}

static int bad_cts;
static int collect_ids(void *ctx, const store_res *r)
{
    if (r->cts <= 0 || r->cts > r->ts) bad_cts++;
    return collect_row(ctx, r);
}

static void test_split_and_range(void)
{
    mkdir_tmp();
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (!s) return;
    for (int i = 0; i < 50; i++) {
        char id[16];
        snprintf(id, sizeof id, "id%02d", i);
        CHECK(put(s, "Patient", id, "x", -1, NULL, &err) == 0);
    }
    CHECK(put(s, "Patient", "id07", "again", -1, NULL, &err) == 0);
    CHECK(del(s, "Patient", "id09", NULL, &err) == 0);
    CHECK(put(s, "Observation", "o1", "x", -1, NULL, &err) == 0);
    int64_t W = store_max_ts(s);
    /* after W: a new id, a third version of id07, a delete of id08 (none of them seen) */
    CHECK(put(s, "Patient", "id99", "late", -1, NULL, &err) == 0);
    CHECK(put(s, "Patient", "id07", "late", -1, NULL, &err) == 0);
    CHECK(del(s, "Patient", "id08", NULL, &err) == 0);
    arena *ar = arena_new(0);
    for (int K = 1; K <= 64; K += 7) {
        const char **b = NULL;
        CHECK(store_split(s, "Patient", K, ar, &b, &err) == 0);
        int with_deleted = K % 2, total = 0, bad = 0, seen[100] = {0};
        for (int k = 0; k < K; k++) {
            const char *lo = k ? b[k - 1] : NULL, *hi = k < K - 1 ? b[k] : NULL;
            collect c = {0};
            CHECK(store_scan_range(s, "Patient", W, with_deleted, lo, hi, collect_ids, &c,
                                   &err) == 0);
            for (int i = 0; i < c.n && i < 64; i++) { /* (rows come in storage order) */
                const char *id = c.ids[i];
                if ((lo && strcmp(id, lo) < 0) || (hi && strcmp(id, hi) >= 0)) bad++;
                if (seen[atoi(id + 2) % 100]++) bad++;  /* disjoint, no repeats */
                if (!strcmp(id, "id07") && c.versions[i] != 2) bad++; /* the version at W */
                if (!strcmp(id, "id08") && c.deleted[i]) bad++;
                if (!strcmp(id, "id09") && !c.deleted[i]) bad++;
            }
            if (K <= 50 && with_deleted) CHECK(c.n >= 50 / K - 1 && c.n <= 50 / K + 2);
            total += c.n;
        }
        CHECK(total == 49 + with_deleted); /* id99 came after W; id09 is a tombstone */
        CHECK(seen[9] == with_deleted && !seen[99]);
        CHECK(bad == 0);
    }
    CHECK(bad_cts == 0);
    arena_free(ar);
    store_close(s);
    rm_tmp();
}

typedef struct counted {
    int n, stop_at, seen[300];
} counted;

static int count_until(void *ctx, const store_res *r)
{
    counted *c = ctx;
    int k = atoi(r->id + 1);
    if (k >= 0 && k < 300) c->seen[k]++;
    return ++c->n == c->stop_at;
}

/* More rows than one fetch batch, some updated after W, and a callback that stops. */
static void test_range_batches(void)
{
    mkdir_tmp();
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (!s) return;
    for (int i = 0; i < 300; i++) {
        char id[16];
        snprintf(id, sizeof id, "e%03d", i);
        CHECK(put(s, "Encounter", id, "x", -1, NULL, &err) == 0);
        if (i % 7 == 0) CHECK(put(s, "Patient", id, "x", -1, NULL, &err) == 0);
    }
    int64_t W = store_max_ts(s);
    CHECK(put(s, "Encounter", "e005", "late", -1, NULL, &err) == 0);
    counted all = {0};
    CHECK(store_scan_range(s, "Encounter", W, 0, NULL, NULL, count_until, &all, &err) == 0);
    int once = 0;
    for (int i = 0; i < 300; i++) once += all.seen[i] == 1;
    CHECK(all.n == 300 && once == 300);
    counted part = {.stop_at = 130};
    CHECK(store_scan_range(s, "Encounter", W, 0, "e100", NULL, count_until, &part, &err) == 0);
    /* storage order: e100..e229, then the stop */
    CHECK(part.n == 130 && !part.seen[99] && part.seen[100] && part.seen[229] && !part.seen[230]);
    store_close(s);
    rm_tmp();
}

static int count_only(void *ctx, const store_res *r)
{
    (void)r;
    ++*(int *)ctx;
    return 0;
}

/* Enough ids for the sampled split: ranges stay within 2 x 1024 ids of equal. */
static void test_split_sampled(void)
{
    mkdir_tmp();
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (!s) return;
    enum { N = 70000, PER = 1000 };
    static char ids[N][12];
    static store_op ops[PER];
    for (int i = 0; i < N; i += PER) {
        for (int j = 0; j < PER; j++) {
            snprintf(ids[i + j], sizeof ids[0], "%08x", (unsigned)(i + j) * 2654435761u);
            ops[j] = (store_op){.kind = STORE_PUT, .type = "Patient", .id = ids[i + j],
                                .if_match = -1, .render = render, .render_ctx = "x"};
        }
        CHECK(store_commit(s, ops, PER, NULL, &err) == 0);
    }
    int64_t W = store_max_ts(s);
    arena *ar = arena_new(0);
    for (int K = 2; K <= 4; K++) {
        const char **b = NULL;
        CHECK(store_split(s, "Patient", K, ar, &b, &err) == 0);
        int total = 0, bad = 0;
        for (int k = 0; k < K; k++) {
            int n = 0;
            CHECK(store_scan_range(s, "Patient", W, 0, k ? b[k - 1] : NULL,
                                   k < K - 1 ? b[k] : NULL, count_only, &n, &err) == 0);
            if (n < N / K - 2 * 1024 || n > N / K + 2 * 1024) bad++;
            if (k && k < K - 1 && strcmp(b[k - 1], b[k]) >= 0) bad++;
            total += n;
        }
        CHECK(total == N && bad == 0);
    }
    arena_free(ar);
    store_close(s);
    rm_tmp();
}

/* store_changes_final: over the K parts, each changed id exactly once, in its final
 * state at W (a deleted one as a tombstone); ids changed only after W or before since
 * are absent. */
static void test_changes_final(void)
{
    mkdir_tmp();
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (!s) return;
    CHECK(put(s, "Patient", "old", "x", -1, NULL, &err) == 0);
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%02d", i);
        CHECK(put(s, "Patient", id, "x", -1, NULL, &err) == 0);
    }
    int64_t since = store_max_ts(s);
    for (int i = 0; i < 20; i += 2) {
        char id[16];
        snprintf(id, sizeof id, "p%02d", i);
        CHECK(put(s, "Patient", id, "y", -1, NULL, &err) == 0);
        CHECK(put(s, "Patient", id, "z", -1, NULL, &err) == 0); /* version 3 */
    }
    CHECK(del(s, "Patient", "p01", NULL, &err) == 0);
    CHECK(put(s, "Observation", "o1", "x", -1, NULL, &err) == 0);
    int64_t W = store_max_ts(s);
    CHECK(put(s, "Patient", "p02", "late", -1, NULL, &err) == 0);  /* after W */
    CHECK(put(s, "Patient", "p03", "late", -1, NULL, &err) == 0);
    for (int K = 1; K <= 5; K += 2) {
        int seen[20] = {0}, total = 0;
        for (int k = 0; k < K; k++) {
            collect c = {0};
            CHECK(store_changes_final(s, "Patient", since, W, k, K, true, collect_row, &c, &err) == 0);
            for (int i = 0; i < c.n && i < 64; i++) {
                int n = atoi(c.ids[i] + 1);
                CHECK(c.ids[i][0] == 'p' && (int)(store_part(c.ids[i]) % (uint32_t)K) == k);
                seen[n]++;
                if (n == 1) CHECK(c.deleted[i] == 1 && c.versions[i] == 2);
                else CHECK(n % 2 == 0 && c.versions[i] == 3 && !c.deleted[i]);
            }
            total += c.n;
        }
        CHECK(total == 11); /* p00, p02, ..., p18 and p01 */
        for (int i = 0; i < 20; i++) CHECK(seen[i] == (i % 2 == 0 || i == 1));
    }
    store_close(s);
    rm_tmp();
}

int main(void)
{
    RUN(test_versions_and_read);
    RUN(test_atomic_and_snapshot);
    RUN(test_outbox_and_jobs);
    RUN(test_concurrent);
    RUN(test_async_order);
    RUN(test_listeners);
    RUN(test_split_and_range);
    RUN(test_changes_final);
    RUN(test_range_batches);
    RUN(test_split_sampled);
    return t_report("store");
}
