/* test_delta.c: unit tests of the lake room — object store, Delta log replay, commit
 * protocol (conflicts, retries, txn skip), schemas, feature refusal, checkpoints and the
 * table writer (merge round trip read back with the Parquet reader). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lake/lake.h"
#include "t.h"

static char g_dir[256];

static const char *fresh_dir(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    return path;
}

static void test_objstore(void)
{
    fl_err e = {0};
    objstore *s = objstore_open(fresh_dir("os"), true, &e);
    CHECK(s != NULL);
    if (!s) return;
    CHECK(objstore_put(s, "a/b/one.txt", "hello", 5, &e) == 0);
    CHECK(objstore_put_if_absent(s, "a/b/two.txt", "x", 1, &e) == 0);
    CHECK(objstore_put_if_absent(s, "a/b/two.txt", "y", 1, &e) == OBJSTORE_EXISTS);
    buf b = BUF_INIT;
    CHECK(objstore_get(s, "a/b/two.txt", &b, &e) == 0 && b.len == 1 && b.p[0] == 'x');
    CHECK(objstore_get(s, "a/b/one.txt", &b, &e) == 0);
    CHECK_STR(b.p, "hello");
    CHECK(objstore_get(s, "a/none", &b, &e) == OBJSTORE_NOT_FOUND && e.status == 404);
    fl_err_clear(&e);
    CHECK(objstore_get(s, "../etc/passwd", &b, &e) == -1 && e.status == 400);
    fl_err_clear(&e);
    objstore_writer *w = objstore_writer_open(s, "a/b/three.txt", &e);
    CHECK(w && objstore_writer_write(w, "abc", 3, &e) == 0);
    objstore_writer_abort(w);   /* nothing visible */
    objstore_listing l;
    CHECK(objstore_list(s, "a/b/", NULL, &l, &e) == 0 && l.n == 2);
    if (l.n == 2) {
        CHECK_STR(l.e[0].key, "a/b/one.txt");
        CHECK(l.e[0].size == 5);
    }
    objstore_list_free(&l);
    CHECK(objstore_list(s, "a/b/t", "a/b/one.txt", &l, &e) == 0 && l.n == 1);
    objstore_list_free(&l);
    objstore_entry st;
    CHECK(objstore_stat(s, "a/b/one.txt", &st, &e) == 0 && st.size == 5);
    CHECK(objstore_delete(s, "a/b/one.txt", &e) == 0);
    CHECK(objstore_stat(s, "a/b/one.txt", &st, &e) == OBJSTORE_NOT_FOUND);
    buf_free(&b);
    objstore_close(s);
}

static void test_schema(void)
{
    rows_schema *rs = rows_schema_new();
    rows_schema_add(rs, "id", ROWS_STRING, false);
    rows_schema_add(rs, "n", ROWS_INT32, false);
    rows_schema_add(rs, "amount", ROWS_DECIMAL, false);
    rows_schema_add(rs, "seen", ROWS_TIMESTAMP, true);
    buf b = BUF_INIT;
    delta_schema_string(&b, rs, 38, 18);
    arena *a = arena_new(0);
    fl_err e = {0};
    delta_field *f;
    size_t n;
    CHECK(delta_schema_parse(a, b.p, &f, &n, &e) == 0 && n == 4);
    if (n == 4) {
        CHECK_STR(f[1].name, "n");
        CHECK(f[1].type == ROWS_INT32 && f[1].supported);
        CHECK(f[2].type == ROWS_DECIMAL && f[2].precision == 38 && f[2].scale == 18);
        CHECK(f[3].type == ROWS_TIMESTAMP && f[3].list);
    }
    CHECK(strstr(b.p, "\"decimal(38,18)\"") && strstr(b.p, "\"integer\""));
    CHECK(delta_schema_parse(a, "{\"type\":\"struct\",\"fields\":[{\"name\":\"m\",\"type\":"
                                "{\"type\":\"map\",\"keyType\":\"string\"}}]}", &f, &n, &e) == 0);
    CHECK(n == 1 && !f[0].supported);
    CHECK(delta_schema_parse(a, "nonsense", &f, &n, &e) == -1 && e.status == 422);
    arena_free(a);
    buf_free(&b);
    rows_schema_free(rs);
}

static const char *SCHEMA1 =
    "{\"type\":\"struct\",\"fields\":[{\"name\":\"id\",\"type\":\"string\",\"nullable\":true,"
    "\"metadata\":{}}]}";

static delta_add fake_add(const char *path)
{
    delta_add f = {0};
    f.path = (char *)path;
    f.pv = "{}";
    f.size = 10;
    return f;
}

/* Creates a table with files f0..f(n-1) at version 0. */
static objstore *make_log_table(const char *name, int n)
{
    fl_err e = {0};
    objstore *s = objstore_open(fresh_dir(name), true, &e);
    delta_snapshot *snap = delta_snapshot_load(s, -1, true, &e);
    delta_txn *tx = delta_txn_begin(s, snap);
    delta_txn_protocol(tx, 1, 2);
    delta_txn_metadata(tx, SCHEMA1);
    for (int i = 0; i < n; i++) {
        char p[32], st[128];
        snprintf(p, sizeof p, "f%d", i);
        snprintf(st, sizeof st, "{\"numRecords\":1,\"minValues\":{\"id\":\"k%d\"},"
                                "\"maxValues\":{\"id\":\"k%d\"},\"nullCount\":{\"id\":0}}", i, i);
        delta_txn_add(tx, p, 10, 0, st, true);
    }
    int64_t v = -1;
    CHECK(delta_txn_commit(tx, &v, &e) == 0 && v == 0);
    delta_txn_free(tx);
    delta_snapshot_free(snap);
    return s;
}

static void test_log_replay_and_txn(void)
{
    fl_err e = {0};
    objstore *s = make_log_table("log1", 3);
    delta_snapshot *snap = delta_snapshot_load(s, -1, true, &e);
    CHECK(snap && snap->version == 0 && snap->n_files == 3 && snap->n_fields == 1);
    if (!snap) return;
    delta_txn *tx = delta_txn_begin(s, snap);
    delta_add f1 = fake_add("f1");
    delta_txn_remove(tx, &f1, true);
    delta_txn_add(tx, "g1", 5, 0, NULL, true);
    delta_txn_app(tx, "app", 7);
    int64_t v;
    CHECK(delta_txn_commit(tx, &v, &e) == 0 && v == 1);
    delta_txn_free(tx);
    delta_snapshot *s1 = delta_snapshot_load(s, -1, false, &e);
    CHECK(s1 && s1->n_files == 3 && s1->n_removes == 1 && delta_txn_version(s1, "app") == 7);
    /* the same txn version again is skipped, a lower one too */
    tx = delta_txn_begin(s, s1);
    delta_txn_app(tx, "app", 7);
    delta_txn_add(tx, "dup", 5, 0, NULL, true);
    CHECK(delta_txn_commit(tx, &v, &e) == DELTA_SKIPPED);
    delta_txn_free(tx);
    /* time travel */
    delta_snapshot *s0 = delta_snapshot_load(s, 0, false, &e);
    CHECK(s0 && s0->version == 0 && s0->n_files == 3 && s0->n_txns == 0);
    delta_snapshot_free(s0);
    delta_snapshot_free(s1);
    delta_snapshot_free(snap);
    objstore_close(s);
}

static void test_conflicts(void)
{
    fl_err e = {0};
    objstore *s = make_log_table("conf", 4);
    delta_snapshot *snap = delta_snapshot_load(s, -1, true, &e);
    if (!snap) return;
    delta_add f0 = fake_add("f0"), f1 = fake_add("f1");
    /* winner: removes f0 and adds a file holding key k2 */
    delta_txn *win = delta_txn_begin(s, snap);
    delta_txn_remove(win, &f0, true);
    delta_txn_add(win, "w", 1, 0, "{\"numRecords\":1,\"minValues\":{\"id\":\"k2\"},"
                                  "\"maxValues\":{\"id\":\"k2\"},\"nullCount\":{\"id\":0}}", true);
    int64_t v;
    CHECK(delta_txn_commit(win, &v, &e) == 0 && v == 1);
    delta_txn_free(win);
    /* a blind append from the old snapshot retries at version 2 */
    delta_txn *app = delta_txn_begin(s, snap);
    delta_txn_add(app, "a", 1, 0, "{\"numRecords\":1,\"minValues\":{\"id\":\"k0\"},"
                                  "\"maxValues\":{\"id\":\"k0\"},\"nullCount\":{\"id\":0}}", true);
    CHECK(delta_txn_commit(app, &v, &e) == 0 && v == 2);
    delta_txn_free(app);
    /* removing the file the winner removed conflicts */
    delta_txn *rm = delta_txn_begin(s, snap);
    delta_txn_remove(rm, &f0, true);
    CHECK(delta_txn_commit(rm, &v, &e) == -1 && e.status == 409 && strstr(e.msg, "removed"));
    delta_txn_free(rm);
    fl_err_clear(&e);
    /* a merge over keys k5..k9 meets neither k2 nor k0 added since: it goes through */
    delta_txn *m1 = delta_txn_begin(s, snap);
    delta_txn_remove(m1, &f1, true);
    delta_txn_reads(m1, DELTA_READ_KEYS, "id", "k5", "k9");
    CHECK(delta_txn_commit(m1, &v, &e) == 0 && v == 3);
    delta_txn_free(m1);
    /* a merge over k1..k3 does: conflict */
    delta_txn *m2 = delta_txn_begin(s, snap);
    delta_txn_reads(m2, DELTA_READ_KEYS, "id", "k1", "k3");
    delta_txn_add(m2, "m2", 1, 0, NULL, true);
    CHECK(delta_txn_commit(m2, &v, &e) == -1 && e.status == 409);
    delta_txn_free(m2);
    fl_err_clear(&e);
    /* a concurrent metadata change conflicts with everyone */
    delta_snapshot *now = delta_snapshot_load(s, -1, true, &e);
    delta_txn *meta = delta_txn_begin(s, now);
    delta_txn_metadata(meta, SCHEMA1);
    CHECK(delta_txn_commit(meta, &v, &e) == 0 && v == 4);
    delta_txn_free(meta);
    delta_txn *late = delta_txn_begin(s, now);
    delta_txn_add(late, "late", 1, 0, NULL, true);
    CHECK(delta_txn_commit(late, &v, &e) == -1 && e.status == 409 && strstr(e.msg, "metadata"));
    delta_txn_free(late);
    delta_snapshot_free(now);
    delta_snapshot_free(snap);
    objstore_close(s);
}

static void write_log(const char *name, const char *line0)
{
    fl_err e = {0};
    objstore *s = objstore_open(fresh_dir(name), true, &e);
    buf b = BUF_INIT;
    buf_printf(&b, "%s\n{\"metaData\":{\"id\":\"x\",\"format\":{\"provider\":\"parquet\"},"
                   "\"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[]}\","
                   "\"partitionColumns\":[],\"configuration\":{}}}\n", line0);
    objstore_put(s, "_delta_log/00000000000000000000.json", b.p, b.len, &e);
    buf_free(&b);
    objstore_close(s);
}

static void test_refuse_features(void)
{
    write_log("dv", "{\"protocol\":{\"minReaderVersion\":3,\"minWriterVersion\":7,"
                    "\"readerFeatures\":[\"deletionVectors\"],\"writerFeatures\":[]}}");
    write_log("rt", "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":7,"
                    "\"writerFeatures\":[\"rowTracking\"]}}");
    write_log("dvp", "{\"protocol\":{\"minReaderVersion\":3,\"minWriterVersion\":7,"
                     "\"readerFeatures\":[\"deletionVectors\"],\"writerFeatures\":"
                     "[\"deletionVectors\"]}}\n{\"add\":{\"path\":\"a.parquet\",\"size\":1,"
                     "\"deletionVector\":{\"storageType\":\"p\",\"pathOrInlineDv\":"
                     "\"s3://x/y.bin\",\"offset\":1,\"sizeInBytes\":40,\"cardinality\":2}}}");
    fl_err e = {0};
    objstore *s = objstore_open(fresh_dir("dv"), false, &e);
    delta_snapshot *snap = delta_snapshot_load(s, -1, true, &e);
    CHECK(snap != NULL);   /* deletion vectors are supported now */
    delta_snapshot_free(snap);
    objstore_close(s);
    s = objstore_open(fresh_dir("dvp"), false, &e);   /* but not absolute-path DVs */
    CHECK(delta_snapshot_load(s, -1, false, &e) == NULL && e.status == 422 &&
          strstr(e.msg, "storage type 'p'"));
    objstore_close(s);
    fl_err_clear(&e);
    s = objstore_open(fresh_dir("rt"), false, &e);
    snap = delta_snapshot_load(s, -1, false, &e);
    CHECK(snap != NULL);  /* readable */
    delta_snapshot_free(snap);
    CHECK(delta_snapshot_load(s, -1, true, &e) == NULL && strstr(e.msg, "rowTracking"));
    objstore_close(s);
}

#define DV_JSON(z, off) "\"deletionVector\":{\"storageType\":\"u\",\"pathOrInlineDv\":\"" z \
    "\",\"offset\":" #off ",\"sizeInBytes\":40,\"cardinality\":1}"
#define DV_A "ab^-aqEH.-t@S}K{vb[*k^"

/* A logical file is (path, DV): remove(p, old DV) next to add(p, new DV) leaves p live with
 * the new DV whatever the order within the commit; a remove naming the live DV drops it. */
static void test_dv_replay(void)
{
    write_log("dvr", "{\"protocol\":{\"minReaderVersion\":3,\"minWriterVersion\":7,"
                     "\"readerFeatures\":[\"deletionVectors\"],\"writerFeatures\":"
                     "[\"deletionVectors\"]}}\n{\"add\":{\"path\":\"p.parquet\",\"size\":9,"
                     "\"stats\":\"{\\\"numRecords\\\":5}\"," DV_JSON(DV_A, 1) "}}");
    fl_err e = {0};
    objstore *s = objstore_open(fresh_dir("dvr"), false, &e);
    const char *c1 = "{\"add\":{\"path\":\"p.parquet\",\"size\":9," DV_JSON(DV_A, 50) "}}\n"
                     "{\"remove\":{\"path\":\"p.parquet\",\"deletionTimestamp\":4102444800000," DV_JSON(DV_A, 1) "}}\n";
    const char *c2 = "{\"remove\":{\"path\":\"p.parquet\",\"deletionTimestamp\":4102444800001," DV_JSON(DV_A, 1) "}}\n";
    CHECK(objstore_put(s, "_delta_log/00000000000000000001.json", c1, strlen(c1), &e) == 0);
    delta_snapshot *snap = delta_snapshot_load(s, -1, true, &e);
    CHECK(snap && snap->n_files == 1 && snap->files[0].dv.offset == 50 && snap->n_removes == 1);
    CHECK(snap && snap->n_removes == 1 && snap->removes[0].dv.offset == 1);
    char *k = snap && snap->n_files ? delta_dv_key(&snap->files[0].dv) : NULL;
    CHECK_STR(k, "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin");
    free(k);
    delta_snapshot_free(snap);
    /* a stale remove (old DV) does not drop the live file */
    CHECK(objstore_put(s, "_delta_log/00000000000000000002.json", c2, strlen(c2), &e) == 0);
    snap = delta_snapshot_load(s, -1, false, &e);
    CHECK(snap && snap->n_files == 1);
    /* our checkpoint keeps both DVs, and the replay from it agrees */
    CHECK(snap && delta_checkpoint_write(s, snap, &e) == 0);
    delta_snapshot_free(snap);
    CHECK(objstore_delete(s, "_delta_log/00000000000000000001.json", &e) == 0);
    snap = delta_snapshot_load(s, -1, false, &e);
    CHECK(snap && snap->checkpoint_version == 2 && snap->n_files == 1 &&
          snap->files[0].dv.offset == 50 && snap->files[0].dv.cardinality == 1 &&
          snap->n_removes == 1 && snap->removes[0].dv.storage == 'u');
    delta_snapshot_free(snap);
    objstore_close(s);
}

static void test_checkpoint_interval_property(void)
{
    fl_err e = {0};
    objstore *s = objstore_open(fresh_dir("cpi"), true, &e);
    const char *log0 =
        "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}\n"
        "{\"metaData\":{\"id\":\"x\",\"format\":{\"provider\":\"parquet\",\"options\":{}},"
        "\"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[]}\","
        "\"partitionColumns\":[],\"configuration\":{\"delta.checkpointInterval\":\"2\"}}}\n";
    CHECK(objstore_put(s, "_delta_log/00000000000000000000.json", log0, strlen(log0), &e) == 0);
    for (int i = 0; i < 2; i++) {
        delta_snapshot *snap = delta_snapshot_load(s, -1, true, &e);
        CHECK(snap != NULL);
        if (!snap) break;
        delta_txn *tx = delta_txn_begin(s, snap);
        char p[16];
        snprintf(p, sizeof p, "f%d", i);
        delta_txn_add(tx, p, 1, 0, NULL, true);
        int64_t v;
        CHECK(delta_txn_commit(tx, &v, &e) == 0 && v == i + 1);
        delta_txn_free(tx);
        delta_snapshot_free(snap);
    }
    objstore_entry st;
    CHECK(objstore_stat(s, "_delta_log/00000000000000000002.checkpoint.parquet", &st, &e) == 0);
    CHECK(objstore_stat(s, "_delta_log/00000000000000000001.checkpoint.parquet", &st, &e) ==
          OBJSTORE_NOT_FOUND);
    delta_snapshot *snap = delta_snapshot_load(s, -1, false, &e);
    CHECK(snap && snap->checkpoint_version == 2 && snap->n_files == 2);
    delta_snapshot_free(snap);
    objstore_close(s);
}

/* The log is listed from the checkpoint _last_checkpoint names; a stale or wrong hint
 * falls back to the whole listing, time travel before the checkpoint still works. */
static void test_last_checkpoint_hint(void)
{
    fl_err e = {0};
    objstore *s = objstore_open(fresh_dir("cpi"), false, &e);   /* checkpoint at 2 */
    CHECK(s != NULL);
    if (!s) return;
    delta_snapshot *snap = delta_snapshot_load(s, 1, false, &e);   /* before the checkpoint */
    CHECK(snap && snap->version == 1 && snap->n_files == 1 && snap->checkpoint_version < 0);
    delta_snapshot_free(snap);
    const char *wrong = "{\"version\":99,\"size\":1}";
    CHECK(objstore_put(s, "_delta_log/_last_checkpoint", wrong, strlen(wrong), &e) == 0);
    snap = delta_snapshot_load(s, -1, false, &e);
    CHECK(snap && snap->version == 2 && snap->checkpoint_version == 2 && snap->n_files == 2);
    delta_snapshot_free(snap);
    const char *ok = "{\"version\":2,\"size\":1}";
    CHECK(objstore_put(s, "_delta_log/_last_checkpoint", ok, strlen(ok), &e) == 0);
    CHECK(objstore_delete(s, "_delta_log/00000000000000000002.checkpoint.parquet", &e) == 0);
    snap = delta_snapshot_load(s, -1, false, &e);   /* named checkpoint gone: whole log */
    CHECK(snap && snap->version == 2 && snap->checkpoint_version < 0 && snap->n_files == 2);
    delta_snapshot_free(snap);
    /* an unreadable checkpoint found by the short listing: the whole log is replayed */
    CHECK(objstore_put(s, "_delta_log/00000000000000000002.checkpoint.parquet", "junk", 4, &e) == 0);
    snap = delta_snapshot_load(s, -1, false, &e);
    CHECK(snap && snap->version == 2 && snap->checkpoint_version < 0 && snap->n_files == 2);
    delta_snapshot_free(snap);
    objstore_close(s);
}

static bool g_cow;   /* lake_rows merges copy-on-write */

/* Writes rows id=k<from..to> with n=val through lake.h. */
static int lake_rows(const char *t, lake_mode mode, int from, int to, int64_t val,
                     lake_result *res)
{
    rows_schema *rs = rows_schema_new();
    rows_schema_add(rs, "id", ROWS_STRING, false);
    rows_schema_add(rs, "n", ROWS_INT64, false);
    rows_schema_add(rs, "tags", ROWS_STRING, true);
    lake_options o;
    lake_options_init(&o);
    o.mode = mode;
    o.key = "id";
    o.file_rows = 10;
    o.copy_on_write = g_cow;
    fl_err e = {0};
    lake_writer *w = lake_writer_open(t, rs, &o, &e);
    int rc = w ? 0 : -1;
    rows_batch *b = rows_batch_new(rs);
    for (int i = from; rc == 0 && i < to; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%03d", i);
        rows_begin_row(b);
        rows_set_str(b, 0, k, strlen(k));
        rows_set_int(b, 1, val);
        if (i % 2) rows_set_str(b, 2, "t", 1);
        rows_end_row(b);
        if (b->n_rows == 10) {
            rc = lake_write(w, b, &e);
            rows_batch_clear(b);
        }
    }
    if (rc == 0 && b->n_rows) rc = lake_write(w, b, &e);
    if (rc == 0) rc = lake_commit(w, res, &e);
    else lake_abort(w);
    if (rc) fprintf(stderr, "  lake: %s (%s)\n", e.msg, e.where);
    rows_batch_free(b);
    rows_schema_free(rs);
    return rc;
}

/* Sums n over the live rows and counts them, reading our files back (DVs honoured). */
static void read_table(const char *t, int64_t *rows, int64_t *sum)
{
    fl_err e = {0};
    objstore *s = objstore_open(t, false, &e);
    delta_snapshot *snap = delta_snapshot_load(s, -1, false, &e);
    *rows = *sum = 0;
    rows_schema *rs = rows_schema_new();
    rows_schema_add(rs, "n", ROWS_INT64, false);
    rows_batch *b = rows_batch_new(rs);
    for (size_t i = 0; snap && i < snap->n_files; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", t, snap->files[i].path);
        pq_reader *r = pq_reader_open(path, &e);
        uint64_t *gone = NULL, pos = 0;
        size_t n_gone = 0, at = 0;
        CHECK(delta_dv_read(s, &snap->files[i].dv, NULL, &gone, &n_gone, &e) == 0);
        while (r && pq_read_batch(r, b, &e) == 1)
            for (size_t k = 0; k < b->n_rows; k++, pos++) {
                while (at < n_gone && gone[at] < pos) at++;
                if (at < n_gone && gone[at] == pos) continue;
                (*rows)++;
                *sum += rows_get(b, 0, k)->i;
            }
        free(gone);
        pq_reader_close(r);
    }
    rows_batch_free(b);
    rows_schema_free(rs);
    delta_snapshot_free(snap);
    objstore_close(s);
}

static void lake_merge_case(bool cow)
{
    g_cow = cow;
    const char *t = fresh_dir(cow ? "lake1" : "lake1dv");
    char tb[512];
    snprintf(tb, sizeof tb, "%s", t);
    lake_result r;
    /* created by a merge: the table allows DVs unless copy-on-write */
    CHECK(lake_rows(tb, LAKE_MERGE, 0, 100, 1, &r) == 0 && r.created && r.files_added == 10);
    CHECK(lake_rows(tb, LAKE_MERGE, 95, 105, 2, &r) == 0 && r.version == 1);
    if (cow) CHECK(r.files_removed == 1 && r.rows_rewritten == 5 && r.files_dv == 0);
    else CHECK(r.files_removed == 0 && r.rows_rewritten == 0 && r.files_dv == 1 &&
               r.rows_deleted == 5 && r.files_added == 1);
    int64_t rows, sum;
    read_table(tb, &rows, &sum);
    CHECK(rows == 105 && sum == 95 + 2 * 10);
    /* the same file again: its DV grows (old ∪ new); then every row of it goes */
    CHECK(lake_rows(tb, LAKE_MERGE, 90, 93, 3, &r) == 0);
    read_table(tb, &rows, &sum);
    CHECK(rows == 105 && sum == 92 + 2 * 10 + 9);
    if (!cow) CHECK(r.files_dv == 1 && r.rows_deleted == 3);
    CHECK(lake_rows(tb, LAKE_MERGE, 93, 95, 4, &r) == 0);
    if (!cow) CHECK(r.files_dv == 0 && r.files_removed == 1 && r.rows_deleted == 2);
    read_table(tb, &rows, &sum);
    CHECK(rows == 105 && sum == 90 + 2 * 10 + 9 + 8);
    CHECK(lake_rows(tb, LAKE_MERGE, 0, 1, 1, &r) == 0);   /* back to the old sums */
    read_table(tb, &rows, &sum);
    CHECK(rows == 105 && sum == 90 + 2 * 10 + 9 + 8);
    CHECK(lake_rows(tb, LAKE_OVERWRITE, 0, 3, 5, &r) == 0);
    read_table(tb, &rows, &sum);
    CHECK(rows == 3 && sum == 15);
    /* more commits: a checkpoint at 10, and the table reads the same from it */
    for (int i = 0; i < 5; i++) CHECK(lake_rows(tb, LAKE_MERGE, 0, 3, 5, &r) == 0);
    CHECK(r.version == 10);
    char p[600];
    snprintf(p, sizeof p, "%s/_delta_log/00000000000000000010.checkpoint.parquet", tb);
    CHECK(access(p, F_OK) == 0);
    for (int v = 0; v < 10; v++) {
        snprintf(p, sizeof p, "%s/_delta_log/%020d.json", tb, v);
        unlink(p);
    }
    read_table(tb, &rows, &sum);
    CHECK(rows == 3 && sum == 15);
}

static void test_lake_merge(void)
{
    lake_merge_case(true);
    lake_merge_case(false);
}

/* Key index cache: the rows of the asked keys, ascending, every row of a key that has
 * several; other tables / files are misses; a dropped (over budget) index is never used. */
static void test_keyidx_cache(void)
{
    lake_keyidx *x = lake_keyidx_new();
    for (int row = 0; row < 3000; row++) {   /* key k<row/3>: three rows a key, shuffled */
        int r = (row * 7919) % 3000;
        char k[16];
        int n = snprintf(k, sizeof k, "k%d", r / 3);
        lake_keyidx_add(x, r, k, (size_t)n);
    }
    lake_keyidx_cache_put("/t/a", "part-1.parquet", x);
    const char *keys[] = {"k5", "k999", "nope", "k0"};
    uint32_t lens[] = {2, 4, 4, 2};
    int64_t *rows = NULL;
    size_t n = 0;
    CHECK(lake_keyidx_cache_rows("/t/a", "part-1.parquet", keys, lens, 4, &rows, &n) == 1);
    int64_t want[] = {0, 1, 2, 15, 16, 17, 2997, 2998, 2999};
    CHECK(n == 9);
    for (size_t i = 0; i < n && i < 9; i++) CHECK(rows[i] == want[i]);
    free(rows);
    CHECK(lake_keyidx_cache_rows("/t/b", "part-1.parquet", keys, lens, 4, &rows, &n) == 0);
    CHECK(lake_keyidx_cache_rows("/t/a", "part-2.parquet", keys, lens, 4, &rows, &n) == 0);
    CHECK(lake_keyidx_cache_rows("/t/a", "part-1.parquet", keys + 2, lens + 2, 1, &rows, &n) == 1);
    CHECK(n == 0);
    free(rows);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/fhirlake-test-delta-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    RUN(test_objstore);
    RUN(test_schema);
    RUN(test_log_replay_and_txn);
    RUN(test_conflicts);
    RUN(test_refuse_features);
    RUN(test_dv_replay);
    RUN(test_checkpoint_interval_property);
    RUN(test_last_checkpoint_hint);
    RUN(test_lake_merge);
    RUN(test_keyidx_cache);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return t_report("delta");
}
