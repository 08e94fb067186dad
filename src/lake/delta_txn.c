/* delta_txn.c: writing the Delta log. Owns the optimistic transaction: collecting actions,
 * serialising a commit, put-if-absent on the next version, conflict checks against the
 * winning commits (PROTOCOL.md "Optimistic concurrency"), retries, txn idempotency and the
 * checkpoint every DELTA_CHECKPOINT_INTERVAL versions. */
#include "delta_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ATTEMPTS 1000
#define ENGINE_INFO "fhirlake/0.1.0"

struct delta_txn {
    objstore *os;
    const delta_snapshot *snap;
    arena *mem;
    int min_reader, min_writer;     /* 0 = no protocol action */
    char *reader_features, *writer_features;  /* JSON array bodies ("\"a\",\"b\""), or NULL */
    char *config;                   /* JSON object body of new configuration entries */
    char *schema_string;            /* NULL = no metaData action */
    char *app_id;
    int64_t app_version;
    const char *op, *op_params;
    delta_read_kind reads;
    char *read_col, *read_min, *read_max;
    buf adds;                       /* serialised add lines */
    buf removes;                    /* serialised remove lines */
    size_t n_adds, n_removes;
    char **removed;                 /* paths we remove, for conflict checks */
    size_t cap_removed;
};

delta_txn *delta_txn_begin(objstore *os, const delta_snapshot *snap)
{
    delta_txn *tx = calloc(1, sizeof *tx);
    if (!tx) abort();
    tx->os = os;
    tx->snap = snap;
    tx->mem = arena_new(0);
    tx->op = "WRITE";
    tx->op_params = "{}";
    return tx;
}

void delta_txn_free(delta_txn *tx)
{
    if (!tx) return;
    buf_free(&tx->adds);
    buf_free(&tx->removes);
    free(tx->removed);
    arena_free(tx->mem);
    free(tx);
}

void delta_txn_protocol(delta_txn *tx, int min_reader, int min_writer)
{
    tx->min_reader = min_reader;
    tx->min_writer = min_writer;
}

static char *append_item(arena *a, const char *list, const char *item)
{
    return list ? arena_printf(a, "%s,%s", list, item) : arena_strdup(a, item);
}

void delta_txn_feature(delta_txn *tx, const char *name, bool reader)
{
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b);
    jw_str(&w, name);
    if (reader) tx->reader_features = append_item(tx->mem, tx->reader_features, b.p);
    tx->writer_features = append_item(tx->mem, tx->writer_features, b.p);
    buf_free(&b);
}

void delta_txn_config(delta_txn *tx, const char *key, const char *value)
{
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b);
    jw_key(&w, key);
    jw_str(&w, value);
    tx->config = append_item(tx->mem, tx->config, b.p);
    buf_free(&b);
}

void delta_txn_metadata(delta_txn *tx, const char *schema_string)
{
    tx->schema_string = arena_strdup(tx->mem, schema_string);
}

static void dv_json(jw *w, const delta_dv *dv)
{
    char st[2] = {dv->storage, 0};
    jw_key(w, "deletionVector");
    jw_obj_begin(w);
    jw_key(w, "storageType");
    jw_str(w, st);
    jw_key(w, "pathOrInlineDv");
    jw_str(w, dv->path_or_inline ? dv->path_or_inline : "");
    if (dv->offset >= 0) {
        jw_key(w, "offset");
        jw_int(w, dv->offset);
    }
    jw_key(w, "sizeInBytes");
    jw_int(w, dv->size);
    jw_key(w, "cardinality");
    jw_int(w, dv->cardinality);
    jw_obj_end(w);
}

void delta_txn_add(delta_txn *tx, const char *path, int64_t size, int64_t mtime,
                   const char *stats, bool data_change)
{
    delta_txn_add_dv(tx, path, size, mtime, stats, data_change, NULL);
}

void delta_txn_add_dv(delta_txn *tx, const char *path, int64_t size, int64_t mtime,
                      const char *stats, bool data_change, const delta_dv *dv)
{
    jw w;
    jw_init(&w, &tx->adds);
    jw_obj_begin(&w);
    jw_key(&w, "add");
    jw_obj_begin(&w);
    jw_key(&w, "path");
    jw_str(&w, path);
    jw_key(&w, "partitionValues");
    jw_obj_begin(&w);
    jw_obj_end(&w);
    jw_key(&w, "size");
    jw_int(&w, size);
    jw_key(&w, "modificationTime");
    jw_int(&w, mtime);
    jw_key(&w, "dataChange");
    jw_bool(&w, data_change);
    if (stats) {
        jw_key(&w, "stats");
        jw_str(&w, stats);
    }
    if (dv && dv->storage) dv_json(&w, dv);
    jw_obj_end(&w);
    jw_obj_end(&w);
    buf_putc(&tx->adds, '\n');
    tx->n_adds++;
}

void delta_txn_remove(delta_txn *tx, const delta_add *f, bool data_change)
{
    jw w;
    jw_init(&w, &tx->removes);
    jw_obj_begin(&w);
    jw_key(&w, "remove");
    jw_obj_begin(&w);
    jw_key(&w, "path");
    jw_str(&w, f->path);
    jw_key(&w, "deletionTimestamp");
    jw_int(&w, fl_now_micros() / 1000);
    jw_key(&w, "dataChange");
    jw_bool(&w, data_change);
    jw_key(&w, "extendedFileMetadata");
    jw_bool(&w, true);
    jw_key(&w, "partitionValues");
    jw_raw(&w, f->pv ? f->pv : "{}", f->pv ? strlen(f->pv) : 2);
    jw_key(&w, "size");
    jw_int(&w, f->size);
    if (f->stats && f->dv.storage) {   /* numRecords of a logical file with a DV */
        jw_key(&w, "stats");
        jw_str(&w, f->stats);
    }
    if (f->dv.storage) dv_json(&w, &f->dv);   /* the logical file: path and its DV */
    jw_obj_end(&w);
    jw_obj_end(&w);
    buf_putc(&tx->removes, '\n');
    if (tx->n_removes == tx->cap_removed) {
        tx->cap_removed = tx->cap_removed ? tx->cap_removed * 2 : 16;
        tx->removed = realloc(tx->removed, tx->cap_removed * sizeof *tx->removed);
        if (!tx->removed) abort();
    }
    tx->removed[tx->n_removes++] = arena_strdup(tx->mem, f->path);
}

void delta_txn_app(delta_txn *tx, const char *app_id, int64_t version)
{
    tx->app_id = arena_strdup(tx->mem, app_id);
    tx->app_version = version;
}

void delta_txn_operation(delta_txn *tx, const char *op, const char *params_json)
{
    tx->op = arena_strdup(tx->mem, op);
    tx->op_params = arena_strdup(tx->mem, params_json ? params_json : "{}");
}

void delta_txn_reads(delta_txn *tx, delta_read_kind kind, const char *col, const char *min,
                     const char *max)
{
    tx->reads = kind;
    tx->read_col = col ? arena_strdup(tx->mem, col) : NULL;
    tx->read_min = min ? arena_strdup(tx->mem, min) : NULL;
    tx->read_max = max ? arena_strdup(tx->mem, max) : NULL;
}

/* ---- serialisation ---- */
static void write_commit_info(const delta_txn *tx, buf *out)
{
    char id[37];
    fl_uuid4(id);
    jw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "commitInfo");
    jw_obj_begin(&w);
    jw_key(&w, "timestamp");
    jw_int(&w, fl_now_micros() / 1000);
    jw_key(&w, "operation");
    jw_str(&w, tx->op);
    jw_key(&w, "operationParameters");
    jw_raw(&w, tx->op_params, strlen(tx->op_params));
    if (tx->snap->version >= 0) {
        jw_key(&w, "readVersion");
        jw_int(&w, tx->snap->version);
    }
    jw_key(&w, "isolationLevel");
    jw_str(&w, "Serializable");
    jw_key(&w, "isBlindAppend");
    jw_bool(&w, tx->reads == DELTA_READ_NONE && tx->n_removes == 0);
    jw_key(&w, "engineInfo");
    jw_str(&w, ENGINE_INFO);
    jw_key(&w, "txnId");
    jw_str(&w, id);
    jw_obj_end(&w);
    jw_obj_end(&w);
    buf_putc(out, '\n');
}

static void write_protocol(const delta_txn *tx, buf *out)
{
    buf_printf(out, "{\"protocol\":{\"minReaderVersion\":%d,\"minWriterVersion\":%d",
               tx->min_reader, tx->min_writer);
    if (tx->min_reader >= 3)
        buf_printf(out, ",\"readerFeatures\":[%s]",
                   tx->reader_features ? tx->reader_features : "");
    if (tx->min_writer >= 7)
        buf_printf(out, ",\"writerFeatures\":[%s]",
                   tx->writer_features ? tx->writer_features : "");
    buf_puts(out, "}}\n");
}

/* New metaData: the old one with schemaString replaced, or a fresh one on create. */
static void write_metadata(const delta_txn *tx, buf *out)
{
    arena *a = arena_new(0);
    fl_err e = {0};
    json_val *m = NULL;
    if (tx->snap->metadata_json)
        m = json_parse(a, tx->snap->metadata_json, strlen(tx->snap->metadata_json), NULL, &e);
    if (!m) {
        char id[37];
        fl_uuid4(id);
        buf t = BUF_INIT;
        buf_printf(&t, "{\"id\":\"%s\",\"format\":{\"provider\":\"parquet\",\"options\":{}},"
                       "\"schemaString\":\"\",\"partitionColumns\":[],\"configuration\":{},"
                       "\"createdTime\":%" PRId64 "}",
                   id, fl_now_micros() / 1000);
        m = json_parse(a, t.p, t.len, NULL, &e);
        buf_free(&t);
    }
    json_obj_set(a, m, "schemaString",
                 json_new_string(a, tx->schema_string, strlen(tx->schema_string)));
    json_val *cfg = json_get(m, "configuration");
    if (tx->config) {   /* new entries over the table's */
        char *text = arena_printf(a, "{%s}", tx->config);
        json_val *add = json_parse(a, text, strlen(text), NULL, &e);
        if (!json_is(cfg, JSON_OBJECT))
            json_obj_set(a, m, "configuration", cfg = json_new_object(a));
        for (uint32_t i = 0; add && i < add->len; i++)
            json_obj_set(a, cfg, add->u.o[i].key, &add->u.o[i].val);
    }
    buf_puts(out, "{\"metaData\":");
    json_write(out, m, false);
    buf_puts(out, "}\n");
    arena_free(a);
}

static void write_app_txn(const delta_txn *tx, buf *out)
{
    jw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "txn");
    jw_obj_begin(&w);
    jw_key(&w, "appId");
    jw_str(&w, tx->app_id);
    jw_key(&w, "version");
    jw_int(&w, tx->app_version);
    jw_key(&w, "lastUpdated");
    jw_int(&w, fl_now_micros() / 1000);
    jw_obj_end(&w);
    jw_obj_end(&w);
    buf_putc(out, '\n');
}

static void serialise(const delta_txn *tx, buf *out)
{
    buf_reset(out);
    write_commit_info(tx, out);
    if (tx->min_reader) write_protocol(tx, out);
    if (tx->schema_string) write_metadata(tx, out);
    if (tx->app_id) write_app_txn(tx, out);
    buf_put(out, tx->removes.p ? tx->removes.p : "", tx->removes.len);
    buf_put(out, tx->adds.p ? tx->adds.p : "", tx->adds.len);
}

/* ---- conflict detection ---- */
static bool we_remove(const delta_txn *tx, const char *path)
{
    for (size_t i = 0; i < tx->n_removes; i++)
        if (!strcmp(tx->removed[i], path)) return true;
    return false;
}

/* Could a file added by the winner hold rows our operation read? */
static bool add_meets_reads(const delta_txn *tx, const json_val *add, arena *a)
{
    if (tx->reads == DELTA_READ_NONE) return false;
    json_val *dc = json_get(add, "dataChange");
    if (dc && dc->type == JSON_FALSE) return false;  /* compaction: same rows */
    if (tx->reads == DELTA_READ_ALL) return true;
    delta_add f = {0};
    f.stats = (char *)json_get_str(add, "stats");
    const char *mn, *mx;
    if (!delta_stats_str_range(&f, tx->read_col, a, &mn, &mx)) return true;
    return !(strcmp(mx, tx->read_min) < 0 || strcmp(mn, tx->read_max) > 0);
}

/* Checks the winning commit `v` against ours. 0 = no conflict, DELTA_SKIPPED = our txn
 * version is already in, -1 = conflict (err 409) or read failure. */
static int check_winner(const delta_txn *tx, int64_t v, fl_err *err)
{
    char key[64];
    delta_commit_key(v, key);
    buf text = BUF_INIT;
    if (objstore_get(tx->os, key, &text, err) != 0) {
        buf_free(&text);
        return -1;
    }
    arena *a = arena_new(0);
    json_val *acts = delta_commit_parse(a, text.p ? text.p : "", text.len, key, err);
    buf_free(&text);
    int rc = acts ? 0 : -1;
    for (uint32_t i = 0; rc == 0 && acts && i < acts->len; i++) {
        const json_val *act = &acts->u.a[i];
        const json_val *x;
        if (json_get(act, "protocol") || json_get(act, "metaData")) {
            fl_err_set(err, 409, key, "concurrent commit %" PRId64 " changed the table's %s",
                       v, json_get(act, "protocol") ? "protocol" : "metadata");
            rc = -1;
        } else if ((x = json_get(act, "txn")) && tx->app_id &&
                   json_get_str(x, "appId") && !strcmp(json_get_str(x, "appId"), tx->app_id)) {
            int64_t wv = -1;
            json_num_int64(json_get(x, "version"), &wv);
            if (wv >= tx->app_version) rc = DELTA_SKIPPED;
            else {
                fl_err_set(err, 409, key, "concurrent commit %" PRId64 " by the same appId %s",
                           v, tx->app_id);
                rc = -1;
            }
        } else if ((x = json_get(act, "remove")) && json_get_str(x, "path") &&
                   we_remove(tx, json_get_str(x, "path"))) {
            fl_err_set(err, 409, key, "concurrent commit %" PRId64 " removed file %s too", v,
                       json_get_str(x, "path"));
            rc = -1;
        } else if ((x = json_get(act, "add")) && add_meets_reads(tx, x, a)) {
            fl_err_set(err, 409, key, "concurrent commit %" PRId64 " added rows this %s read "
                       "(file %s)", v, tx->op, json_get_str(x, "path"));
            rc = -1;
        }
    }
    arena_free(a);
    return rc;
}

/* Checkpoints every delta.checkpointInterval versions (table property), else every 10. */
static void maybe_checkpoint(objstore *os, const delta_snapshot *read, int64_t version)
{
    const char *iv = read->version >= 0 ? delta_config(read, "delta.checkpointInterval") : NULL;
    int64_t every = iv ? strtoll(iv, NULL, 10) : DELTA_CHECKPOINT_INTERVAL;
    if (every <= 0) every = DELTA_CHECKPOINT_INTERVAL;
    if (version == 0 || version % every) return;
    fl_err e = {0};
    delta_snapshot *s = delta_snapshot_load(os, version, false, &e);
    if (s && delta_checkpoint_write(os, s, &e) == 0) {
        delta_snapshot_free(s);
        return;
    }
    delta_snapshot_free(s);
    fl_log(FL_LOG_WARN, "delta: checkpoint at version %" PRId64 " not written: %s",
           version, e.msg);
}

int delta_txn_commit(delta_txn *tx, int64_t *version, fl_err *err)
{
    if (tx->app_id && delta_txn_version(tx->snap, tx->app_id) >= tx->app_version)
        return DELTA_SKIPPED;
    if (tx->snap->version < 0 && (!tx->min_reader || !tx->schema_string)) {
        fl_err_set(err, 500, "", "creating a table needs protocol and metaData actions");
        return -1;
    }
    buf body = BUF_INIT;
    serialise(tx, &body);
    int64_t v = tx->snap->version + 1;
    int rc = -1;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++, v++) {
        char key[64];
        delta_commit_key(v, key);
        int put = objstore_put_if_absent(tx->os, key, body.p, body.len, err);
        if (put == 0) {
            *version = v;
            rc = 0;
            break;
        }
        if (put < 0) break;
        int c = check_winner(tx, v, err);   /* someone else holds v: may we go after it? */
        if (c != 0) {
            rc = c;
            break;
        }
    }
    if (rc == -1 && FL_OK(err))
        fl_err_set(err, 409, "_delta_log/", "gave up after %d concurrent commits", MAX_ATTEMPTS);
    buf_free(&body);
    if (rc == 0) maybe_checkpoint(tx->os, tx->snap, *version);
    return rc;
}
