/* delta_checkpoint.c: classic single-file Parquet checkpoints of the Delta log. Owns the
 * checkpoint schema (the same struct columns Spark writes: txn, add, remove, metaData,
 * protocol; add/remove carry deletionVector), writing a snapshot's actions as records
 * through the generic Parquet layer, _last_checkpoint, and replaying a checkpoint's
 * records on load. */
#include "delta_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_MAP(n)                                                                     \
    "optional group " n " (MAP) { repeated group key_value { required binary key (STRING); " \
    "optional binary value (STRING); } } "
#define DV_STRUCT                                                                        \
    "optional group deletionVector { optional binary storageType (STRING); "              \
    "optional binary pathOrInlineDv (STRING); optional int32 offset; "                    \
    "optional int32 sizeInBytes; optional int64 cardinality; } "
#define STR_LIST(n) \
    "optional group " n " (LIST) { repeated group list { optional binary element (STRING); } } "

static const char CHECKPOINT_SCHEMA[] =
    "message spark_schema { "
    "optional group txn { optional binary appId (STRING); optional int64 version; "
    "optional int64 lastUpdated; } "
    "optional group add { optional binary path (STRING); " STR_MAP("partitionValues")
    "optional int64 size; optional int64 modificationTime; optional boolean dataChange; "
    "optional binary stats (STRING); " STR_MAP("tags") DV_STRUCT "} "
    "optional group remove { optional binary path (STRING); optional int64 deletionTimestamp; "
    "optional boolean dataChange; optional boolean extendedFileMetadata; "
    STR_MAP("partitionValues") "optional int64 size; " DV_STRUCT "} "
    "optional group metaData { optional binary id (STRING); optional binary name (STRING); "
    "optional binary description (STRING); optional group format { optional binary provider "
    "(STRING); " STR_MAP("options") "} optional binary schemaString (STRING); "
    STR_LIST("partitionColumns") STR_MAP("configuration") "optional int64 createdTime; } "
    "optional group protocol { optional int32 minReaderVersion; optional int32 "
    "minWriterVersion; " STR_LIST("readerFeatures") STR_LIST("writerFeatures") "} "
    "}";

#define TOMBSTONE_RETENTION_MS (7LL * 24 * 3600 * 1000)

static char *store_path(objstore *os, const char *key)
{
    size_t n = strlen(objstore_root(os)) + strlen(key) + 2;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s", objstore_root(os), key);
    return p;
}

static json_val *parse_or_empty(arena *a, const char *text)
{
    fl_err e = {0};
    json_val *v = text ? json_parse(a, text, strlen(text), NULL, &e) : NULL;
    return v ? v : json_new_object(a);
}

static json_val *num(arena *a, int64_t x)
{
    char t[32];
    snprintf(t, sizeof t, "%" PRId64, x);
    return json_new_number(a, t);
}

static json_val *str(arena *a, const char *s)
{
    return json_new_string(a, s, strlen(s));
}

static json_val *wrap(arena *a, const char *kind, json_val *inner)
{
    json_val *rec = json_new_object(a);
    json_obj_set(a, rec, kind, inner);
    return rec;
}

/* The metaData record keeps only the members the checkpoint schema has. */
static json_val *metadata_record(arena *a, const delta_snapshot *s)
{
    static const char *keep[] = {"id", "name", "description", "format", "schemaString",
                                 "partitionColumns", "configuration", "createdTime", NULL};
    json_val *m = parse_or_empty(a, s->metadata_json), *out = json_new_object(a);
    for (const char **k = keep; *k; k++) {
        json_val *v = json_get(m, *k);
        if (v && v->type != JSON_NULL) json_obj_set(a, out, *k, v);
    }
    json_val *fmt = json_get(out, "format");
    if (fmt && !json_get(fmt, "options"))  /* delta-rs wants the map present, even empty */
        json_obj_set(a, fmt, "options", json_new_object(a));
    return wrap(a, "metaData", out);
}

static json_val *protocol_record(arena *a, const delta_snapshot *s)
{
    static const char *keep[] = {"minReaderVersion", "minWriterVersion", "readerFeatures",
                                 "writerFeatures", NULL};
    json_val *p = parse_or_empty(a, s->protocol_json), *out = json_new_object(a);
    for (const char **k = keep; *k; k++) {
        json_val *v = json_get(p, *k);
        if (v && v->type != JSON_NULL) json_obj_set(a, out, *k, v);
    }
    return wrap(a, "protocol", out);
}

/* The deletionVector struct of an add/remove record (nothing when the file has none). */
static void dv_member(arena *a, json_val *o, const delta_dv *dv)
{
    if (!dv->storage) return;
    char st[2] = {dv->storage, 0};
    json_val *d = json_new_object(a);
    json_obj_set(a, d, "storageType", str(a, st));
    json_obj_set(a, d, "pathOrInlineDv", str(a, dv->path_or_inline ? dv->path_or_inline : ""));
    if (dv->offset >= 0) json_obj_set(a, d, "offset", num(a, dv->offset));
    json_obj_set(a, d, "sizeInBytes", num(a, dv->size));
    json_obj_set(a, d, "cardinality", num(a, dv->cardinality));
    json_obj_set(a, o, "deletionVector", d);
}

static json_val *add_record(arena *a, const delta_add *f)
{
    json_val *o = json_new_object(a);
    json_obj_set(a, o, "path", str(a, f->path));
    json_obj_set(a, o, "partitionValues", parse_or_empty(a, f->pv));
    json_obj_set(a, o, "size", num(a, f->size));
    json_obj_set(a, o, "modificationTime", num(a, f->mtime));
    json_val dc = {.type = JSON_FALSE};
    json_obj_set(a, o, "dataChange", &dc);
    if (f->stats) json_obj_set(a, o, "stats", str(a, f->stats));
    dv_member(a, o, &f->dv);
    return wrap(a, "add", o);
}

static json_val *remove_record(arena *a, const delta_remove *r)
{
    json_val *o = json_new_object(a);
    json_obj_set(a, o, "path", str(a, r->path));
    json_obj_set(a, o, "deletionTimestamp", num(a, r->deletion_ts));
    json_val f = {.type = JSON_FALSE}, t = {.type = JSON_TRUE};
    json_obj_set(a, o, "dataChange", &f);
    json_obj_set(a, o, "extendedFileMetadata", &t);
    json_obj_set(a, o, "partitionValues", json_new_object(a));
    json_obj_set(a, o, "size", num(a, r->size));
    dv_member(a, o, &r->dv);
    return wrap(a, "remove", o);
}

static json_val *txn_record(arena *a, const delta_app_txn *t)
{
    json_val *o = json_new_object(a);
    json_obj_set(a, o, "appId", str(a, t->app_id));
    json_obj_set(a, o, "version", num(a, t->version));
    json_obj_set(a, o, "lastUpdated", num(a, t->last_updated));
    return wrap(a, "txn", o);
}

/* Writes one record; the arena is reset every few records to bound memory. */
static int put(pq_writer *w, arena *a, json_val *rec, int64_t *count, fl_err *err)
{
    int rc = pq_write_json(w, rec, err);
    (*count)++;
    if (*count % 1024 == 0) arena_reset(a);
    return rc;
}

static int write_records(pq_writer *w, const delta_snapshot *s, int64_t *count, fl_err *err)
{
    arena *a = arena_new(0);
    int rc = put(w, a, protocol_record(a, s), count, err);
    if (rc == 0) rc = put(w, a, metadata_record(a, s), count, err);
    for (size_t i = 0; rc == 0 && i < s->n_txns; i++)
        rc = put(w, a, txn_record(a, &s->txns[i]), count, err);
    int64_t horizon = fl_now_micros() / 1000 - TOMBSTONE_RETENTION_MS;
    for (size_t i = 0; rc == 0 && i < s->n_removes; i++)
        if (s->removes[i].deletion_ts > horizon)
            rc = put(w, a, remove_record(a, &s->removes[i]), count, err);
    for (size_t i = 0; rc == 0 && i < s->n_files; i++)
        rc = put(w, a, add_record(a, &s->files[i]), count, err);
    arena_free(a);
    return rc;
}

int delta_checkpoint_write(objstore *os, const delta_snapshot *s, fl_err *err)
{
    char key[96];
    snprintf(key, sizeof key, "_delta_log/%020" PRId64 ".checkpoint.parquet", s->version);
    pq_schema *schema = pq_schema_parse(CHECKPOINT_SCHEMA, err);
    if (!schema) return -1;
    pq_options opt;
    pq_options_init(&opt);
    char *path = store_path(os, key);
    pq_writer *w = pq_writer_open_schema(path, schema, &opt, err);
    free(path);
    pq_schema_free(schema);
    if (!w) return -1;
    int64_t count = 0;
    if (write_records(w, s, &count, err) != 0) {
        pq_writer_abort(w);
        return -1;
    }
    pq_file_stats st = {0};
    if (pq_writer_close(w, &st, err) != 0) return -1;
    if (objstore_publish(os, key, err) != 0) {   /* remote store: upload from the spool */
        pq_file_stats_free(&st);
        return -1;
    }
    buf last = BUF_INIT;
    buf_printf(&last, "{\"version\":%" PRId64 ",\"size\":%" PRId64 ",\"sizeInBytes\":%" PRId64
                      ",\"numOfAddFiles\":%zu}",
               s->version, count, st.file_size, s->n_files);
    pq_file_stats_free(&st);
    int rc = objstore_put(os, "_delta_log/_last_checkpoint", last.p, last.len, err);
    buf_free(&last);
    return rc;
}

int delta_checkpoint_read(objstore *os, const char *key, delta_replay *r, fl_err *err)
{
    if (objstore_fetch(os, key, err) != 0) return -1;   /* remote store: into the spool */
    char *path = store_path(os, key);
    pq_reader *rd = pq_reader_open(path, err);
    free(path);
    if (!rd) return -1;
    arena *a = arena_new(0);
    int rc = 0;
    json_val *recs;
    while (rc == 0 && (recs = pq_read_json(rd, a, err)) != NULL) {
        for (uint32_t i = 0; rc == 0 && i < recs->len; i++)
            rc = delta_replay_apply(r, &recs->u.a[i], err);
        arena_reset(a);
    }
    if (rc == 0 && !FL_OK(err)) rc = -1;
    arena_free(a);
    pq_reader_close(rd);
    return rc;
}
