/* delta_log.c: reading the Delta log. Owns snapshot replay (JSON commits, starting from a
 * classic checkpoint when earlier commits are gone), the reader/writer protocol checks, and
 * lookups on a snapshot. */
#include "delta_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOG_DIR "_delta_log/"

/* ---- a small string -> index map (open addressing), used only while replaying ---- */
typedef struct smap {
    size_t cap, n;
    const char **keys;
    size_t *vals;
} smap;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static void smap_grow(smap *m);

static size_t *smap_slot(smap *m, const char *key, bool insert)
{
    if (insert && (m->n + 1) * 2 > m->cap) smap_grow(m);
    if (!m->cap) return NULL;
    size_t i = hash_str(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (!strcmp(m->keys[i], key)) return &m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    if (!insert) return NULL;
    m->keys[i] = key;
    m->n++;
    return &m->vals[i];
}

static void smap_grow(smap *m)
{
    smap old = *m;
    m->cap = old.cap ? old.cap * 2 : 64;
    m->n = 0;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->vals = calloc(m->cap, sizeof *m->vals);
    if (!m->keys || !m->vals) abort();
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i]) *smap_slot(m, old.keys[i], true) = old.vals[i];
    free(old.keys);
    free(old.vals);
}

static void smap_free(smap *m)
{
    free(m->keys);
    free(m->vals);
}

/* ---- replay state ---- */
struct delta_replay {
    delta_snapshot *snap;
    smap files;      /* path -> index in snap->files (SIZE_MAX = removed) */
    smap removes;    /* path -> index in snap->removes */
    size_t cap_files, cap_removes, cap_txns;
    int64_t version; /* commit being applied (for error messages) */
};

#define GONE SIZE_MAX

static char *dup_str(arena *a, const json_val *v)
{
    return json_is(v, JSON_STRING) ? arena_strndup(a, v->u.s, v->len) : NULL;
}

static int64_t get_i64(const json_val *obj, const char *key, int64_t dflt)
{
    int64_t x;
    json_val *v = json_get(obj, key);
    return v && json_num_int64(v, &x) == 0 ? x : dflt;
}

static char *json_text(arena *a, const json_val *v)
{
    buf b = BUF_INIT;
    json_write(&b, v, false);
    char *s = arena_strndup(a, b.p, b.len);
    buf_free(&b);
    return s;
}

static void grow(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return;
    *cap = *cap ? *cap * 2 : 64;
    *p = realloc(*p, *cap * elem);
    if (!*p) abort();
}

/* Parses an action's deletionVector (absent or null: storage 0). */
static void parse_dv(arena *a, const json_val *act, delta_dv *dv)
{
    memset(dv, 0, sizeof *dv);
    dv->offset = -1;
    json_val *v = json_get(act, "deletionVector");
    const char *st = json_is(v, JSON_OBJECT) ? json_get_str(v, "storageType") : NULL;
    if (!st || !*st) return;
    dv->storage = st[0];
    dv->path_or_inline = dup_str(a, json_get(v, "pathOrInlineDv"));
    dv->offset = get_i64(v, "offset", -1);
    dv->size = get_i64(v, "sizeInBytes", 0);
    dv->cardinality = get_i64(v, "cardinality", -1);
}

/* A logical file is (path, DV uniqueId): the tombstone map's key (arena-owned). */
static const char *logical_key(arena *a, const char *path, const delta_dv *dv)
{
    if (!dv->storage) return path;
    return arena_printf(a, "%s\x01%c%s@%" PRId64, path, dv->storage,
                        dv->path_or_inline ? dv->path_or_inline : "", dv->offset);
}

static bool same_dv(const delta_dv *a, const delta_dv *b)
{
    if (a->storage != b->storage) return false;
    return !a->storage || (a->offset == b->offset && a->path_or_inline && b->path_or_inline &&
                           !strcmp(a->path_or_inline, b->path_or_inline));
}

static void drop_tombstone(delta_replay *r, const char *path)
{
    size_t *slot = smap_slot(&r->removes, path, false);
    if (slot && *slot != GONE) {
        r->snap->removes[*slot].path = NULL;
        *slot = GONE;
    }
}

static int apply_add(delta_replay *r, const json_val *a, fl_err *err)
{
    delta_snapshot *s = r->snap;
    const char *path = json_get_str(a, "path");
    if (!path) {
        fl_err_set(err, 422, "add.path", "add action without path in version %" PRId64,
                   r->version);
        return -1;
    }
    size_t *slot = smap_slot(&r->files, path, false);
    delta_add *f;
    if (slot && *slot != GONE) f = &s->files[*slot];  /* re-add replaces the old entry */
    else {
        grow((void **)&s->files, &r->cap_files, s->n_files, sizeof *s->files);
        f = &s->files[s->n_files];
        f->path = arena_strdup(s->mem, path);
        *smap_slot(&r->files, f->path, true) = s->n_files++;
    }
    f->size = get_i64(a, "size", 0);
    f->mtime = get_i64(a, "modificationTime", 0);
    f->stats = dup_str(s->mem, json_get(a, "stats"));
    json_val *pv = json_get(a, "partitionValues");
    f->pv = pv && pv->type == JSON_OBJECT ? json_text(s->mem, pv) : arena_strdup(s->mem, "{}");
    parse_dv(s->mem, a, &f->dv);
    f->has_dv = f->dv.storage != 0;
    drop_tombstone(r, logical_key(s->mem, path, &f->dv));
    return 0;
}

static int apply_remove(delta_replay *r, const json_val *a, fl_err *err)
{
    delta_snapshot *s = r->snap;
    const char *path = json_get_str(a, "path");
    if (!path) {
        fl_err_set(err, 422, "remove.path", "remove action without path in version %" PRId64,
                   r->version);
        return -1;
    }
    delta_dv dv;
    parse_dv(s->mem, a, &dv);
    size_t *slot = smap_slot(&r->files, path, false);
    /* Only the same logical file goes: a remove of (path, old DV) next to an add of
     * (path, new DV) in one commit leaves the new one live, whatever their order. */
    if (slot && *slot != GONE && same_dv(&s->files[*slot].dv, &dv)) {
        s->files[*slot].path = NULL;  /* compacted after replay */
        *slot = GONE;
    }
    const char *lk = logical_key(s->mem, path, &dv);
    size_t *rs = smap_slot(&r->removes, lk, false);
    delta_remove *t;
    if (rs && *rs != GONE) t = &s->removes[*rs];
    else {
        grow((void **)&s->removes, &r->cap_removes, s->n_removes, sizeof *s->removes);
        t = &s->removes[s->n_removes];
        t->path = arena_strdup(s->mem, path);
        *smap_slot(&r->removes, lk == path ? t->path : lk, true) = s->n_removes++;
    }
    t->dv = dv;
    t->deletion_ts = get_i64(a, "deletionTimestamp", 0);
    t->size = get_i64(a, "size", 0);
    return 0;
}

static char **str_array(arena *a, const json_val *v, size_t *n)
{
    *n = 0;
    if (!json_is(v, JSON_ARRAY)) return NULL;
    char **out = arena_calloc(a, (v->len + 1) * sizeof *out);
    for (uint32_t i = 0; i < v->len; i++)
        if (v->u.a[i].type == JSON_STRING) out[(*n)++] = dup_str(a, &v->u.a[i]);
    return out;
}

static int apply_protocol(delta_replay *r, const json_val *p)
{
    delta_snapshot *s = r->snap;
    s->min_reader = (int)get_i64(p, "minReaderVersion", 1);
    s->min_writer = (int)get_i64(p, "minWriterVersion", 2);
    s->reader_features = str_array(s->mem, json_get(p, "readerFeatures"), &s->n_reader_features);
    s->writer_features = str_array(s->mem, json_get(p, "writerFeatures"), &s->n_writer_features);
    s->protocol_json = json_text(s->mem, p);
    return 0;
}

static int apply_metadata(delta_replay *r, const json_val *m, fl_err *err)
{
    delta_snapshot *s = r->snap;
    s->metadata_json = json_text(s->mem, m);
    s->table_id = dup_str(s->mem, json_get(m, "id"));
    s->schema_string = dup_str(s->mem, json_get(m, "schemaString"));
    json_val *pc = json_get(m, "partitionColumns");
    s->n_partition_cols = json_is(pc, JSON_ARRAY) ? pc->len : 0;
    json_val *cfg = json_get(m, "configuration");
    s->n_config = 0;
    if (json_is(cfg, JSON_OBJECT)) {
        s->config_keys = arena_calloc(s->mem, (cfg->len + 1) * sizeof(char *));
        s->config_vals = arena_calloc(s->mem, (cfg->len + 1) * sizeof(char *));
        for (uint32_t i = 0; i < cfg->len; i++) {
            if (cfg->u.o[i].val.type != JSON_STRING) continue;
            s->config_keys[s->n_config] = arena_strdup(s->mem, cfg->u.o[i].key);
            s->config_vals[s->n_config++] = dup_str(s->mem, &cfg->u.o[i].val);
        }
    }
    if (!s->schema_string) {
        fl_err_set(err, 422, "metaData.schemaString", "metaData without schemaString");
        return -1;
    }
    return delta_schema_parse(s->mem, s->schema_string, &s->fields, &s->n_fields, err);
}

static int apply_txn(delta_replay *r, const json_val *t)
{
    delta_snapshot *s = r->snap;
    const char *app = json_get_str(t, "appId");
    if (!app) return 0;
    int64_t v = get_i64(t, "version", -1);
    for (size_t i = 0; i < s->n_txns; i++)
        if (!strcmp(s->txns[i].app_id, app)) {
            s->txns[i].version = v;
            s->txns[i].last_updated = get_i64(t, "lastUpdated", 0);
            return 0;
        }
    grow((void **)&s->txns, &r->cap_txns, s->n_txns, sizeof *s->txns);
    delta_app_txn *x = &s->txns[s->n_txns++];
    x->app_id = arena_strdup(s->mem, app);
    x->version = v;
    x->last_updated = get_i64(t, "lastUpdated", 0);
    return 0;
}

int delta_replay_apply(delta_replay *r, const json_val *obj, fl_err *err)
{
    if (!json_is(obj, JSON_OBJECT)) {
        fl_err_set(err, 422, "", "log action is not a JSON object (version %" PRId64 ")",
                   r->version);
        return -1;
    }
    for (uint32_t i = 0; i < obj->len; i++) {
        const char *k = obj->u.o[i].key;
        const json_val *v = &obj->u.o[i].val;
        if (v->type != JSON_OBJECT) continue;  /* null columns of a checkpoint record */
        int rc = 0;
        if (!strcmp(k, "add")) rc = apply_add(r, v, err);
        else if (!strcmp(k, "remove")) rc = apply_remove(r, v, err);
        else if (!strcmp(k, "metaData")) rc = apply_metadata(r, v, err);
        else if (!strcmp(k, "protocol")) rc = apply_protocol(r, v);
        else if (!strcmp(k, "txn")) rc = apply_txn(r, v);
        else if (!strcmp(k, "commitInfo")) r->snap->last_commit_ts = get_i64(v, "timestamp", 0);
        /* cdc, domainMetadata, checkpointMetadata...: no effect on what we read or write */
        if (rc) return rc;
    }
    return 0;
}

json_val *delta_commit_parse(arena *a, const char *text, size_t len, const char *key,
                             fl_err *err)
{
    json_val *arr = json_new_array(a);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\r' || *q == '\t')) q++;
        if (q < le) {
            json_val *v = json_parse(a, p, (size_t)(le - p), NULL, err);
            if (!v) {
                char where[256];
                snprintf(where, sizeof where, "%s", key);
                fl_err_set(err, 422, where, "corrupt commit file: %s", err->msg);
                return NULL;
            }
            json_arr_push(a, arr, v);
        }
        p = nl ? nl + 1 : end;
    }
    return arr;
}

/* ---- protocol checks ---- */
static bool column_mapping_on(const delta_snapshot *s)
{
    const char *m = delta_config(s, "delta.columnMapping.mode");
    return m && strcmp(m, "none") != 0;
}

static int check_readable(const delta_snapshot *s, fl_err *err)
{
    static const char *ok_reader[] = {"columnMapping", "timestampNtz", "vacuumProtocolCheck",
                                      "deletionVectors", NULL};
    if (s->min_reader > 3) {
        fl_err_set(err, 422, "protocol.minReaderVersion",
                   "table needs reader version %d; fhirlake reads up to 3", s->min_reader);
        return -1;
    }
    for (size_t i = 0; s->min_reader == 3 && i < s->n_reader_features; i++) {
        bool ok = false;
        for (const char **f = ok_reader; *f; f++) ok |= !strcmp(*f, s->reader_features[i]);
        if (!ok) {
            fl_err_set(err, 422, "protocol.readerFeatures",
                       "table uses reader feature '%s', which fhirlake does not support",
                       s->reader_features[i]);
            return -1;
        }
    }
    if (column_mapping_on(s)) {
        const char *mode = delta_config(s, "delta.columnMapping.mode");
        fl_err_set(err, 422, "delta.columnMapping.mode",
                   "table uses column mapping (mode %s), which fhirlake does not support",
                   mode ? mode : "?");
        return -1;
    }
    for (size_t i = 0; i < s->n_files; i++)  /* we read 'u' and 'i' DVs, not 'p' */
        if (s->files[i].has_dv && s->files[i].dv.storage != 'u' && s->files[i].dv.storage != 'i') {
            fl_err_set(err, 422, s->files[i].path, "deletion vector storage type '%c' is not "
                       "supported", s->files[i].dv.storage);
            return -1;
        }
    return 0;
}

static int refuse_writer(fl_err *err, const char *where, const char *what)
{
    fl_err_set(err, 422, where, "fhirlake cannot write this table: %s", what);
    return -1;
}

static bool config_true(const delta_snapshot *s, const char *key)
{
    const char *v = delta_config(s, key);
    return v && !strcasecmp(v, "true");
}

int delta_check_writable(const delta_snapshot *s, bool removes, fl_err *err)
{
    static const char *ok_writer[] = {"appendOnly", "invariants", "checkConstraints",
                                      "changeDataFeed", "generatedColumns", "columnMapping",
                                      "identityColumns", "timestampNtz", "vacuumProtocolCheck",
                                      "deletionVectors", NULL};
    if (s->version < 0) return 0;
    if (s->min_writer > 7) return refuse_writer(err, "protocol.minWriterVersion",
                                                "writer version above 7");
    for (size_t i = 0; s->min_writer == 7 && i < s->n_writer_features; i++) {
        bool ok = false;
        for (const char **f = ok_writer; *f; f++) ok |= !strcmp(*f, s->writer_features[i]);
        if (!ok) {
            char what[160];
            snprintf(what, sizeof what, "writer feature '%s' is not supported",
                     s->writer_features[i]);
            return refuse_writer(err, "protocol.writerFeatures", what);
        }
    }
    const char *ss = s->schema_string ? s->schema_string : "";
    if (strstr(ss, "delta.invariants"))
        return refuse_writer(err, "schemaString", "column invariants are not enforced");
    if (strstr(ss, "delta.generationExpression"))
        return refuse_writer(err, "schemaString", "generated columns are not computed");
    if (strstr(ss, "delta.identity"))
        return refuse_writer(err, "schemaString", "identity columns are not assigned");
    for (size_t i = 0; i < s->n_config; i++)
        if (!strncmp(s->config_keys[i], "delta.constraints.", 18))
            return refuse_writer(err, s->config_keys[i], "CHECK constraints are not enforced");
    if (s->n_partition_cols)
        return refuse_writer(err, "metaData.partitionColumns", "partitioned tables");
    if (removes && config_true(s, "delta.appendOnly"))
        return refuse_writer(err, "delta.appendOnly", "the table is append-only");
    if (removes && config_true(s, "delta.enableChangeDataFeed"))
        return refuse_writer(err, "delta.enableChangeDataFeed",
                             "change data feed files are not written");
    return 0;
}

/* ---- loading ---- */
void delta_commit_key(int64_t version, char out[64])
{
    snprintf(out, 64, LOG_DIR "%020" PRId64 ".json", version);
}

/* Parses the version out of "_delta_log/<20 digits>.json"; -1 if the key is not a commit. */
static int64_t commit_version(const char *key)
{
    const char *n = key + strlen(LOG_DIR);
    if (strlen(n) != 25 || strcmp(n + 20, ".json")) return -1;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (n[i] < '0' || n[i] > '9') return -1;
        v = v * 10 + (n[i] - '0');
    }
    return v;
}

static int replay_commit(objstore *os, delta_replay *r, int64_t v, arena *scratch, fl_err *err)
{
    char key[64];
    delta_commit_key(v, key);
    buf text = BUF_INIT;
    int rc = objstore_get(os, key, &text, err);
    if (rc != 0) {
        if (rc == OBJSTORE_NOT_FOUND)
            fl_err_set(err, 422, key, "commit %" PRId64 " is missing from the log", v);
        buf_free(&text);
        return -1;
    }
    r->version = v;
    json_val *acts = delta_commit_parse(scratch, text.p ? text.p : "", text.len, key, err);
    buf_free(&text);
    if (!acts) return -1;
    for (uint32_t i = 0; i < acts->len; i++)
        if (delta_replay_apply(r, &acts->u.a[i], err) != 0) return -1;
    r->snap->version = v;
    arena_reset(scratch);
    return 0;
}

static void compact(delta_snapshot *s)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n_files; i++)
        if (s->files[i].path) s->files[k++] = s->files[i];
    s->n_files = k;
    k = 0;
    for (size_t i = 0; i < s->n_removes; i++)
        if (s->removes[i].path) s->removes[k++] = s->removes[i];
    s->n_removes = k;
}

/* What the log directory holds: the first and last commit versions, and the newest
 * single-file checkpoint at or below `upto` (all -1 when absent). partial: the listing
 * started at the checkpoint named by _last_checkpoint, so `first` is not the log's
 * first commit. */
typedef struct log_listing {
    int64_t first, last, checkpoint;
    bool partial;
} log_listing;

static int64_t checkpoint_version(const char *key)
{
    const char *n = key + strlen(LOG_DIR);
    if (strlen(n) != 39 || strcmp(n + 20, ".checkpoint.parquet")) return -1;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (n[i] < '0' || n[i] > '9') return -1;
        v = v * 10 + (n[i] - '0');
    }
    return v;
}

/* Lists the log from just after start_after (NULL: all of it). */
static int list_from(objstore *os, const char *start_after, int64_t upto, log_listing *out,
                     fl_err *err)
{
    objstore_listing l;
    if (objstore_list(os, LOG_DIR, start_after, &l, err) != 0) return -1;
    out->first = out->last = out->checkpoint = -1;
    out->partial = start_after != NULL;
    for (size_t i = 0; i < l.n; i++) {
        int64_t v = commit_version(l.e[i].key), c = checkpoint_version(l.e[i].key);
        if (v >= 0) {
            if (out->first < 0) out->first = v;
            if (v > out->last) out->last = v;
        }
        if (c >= 0 && (upto < 0 || c <= upto) && c > out->checkpoint) out->checkpoint = c;
    }
    objstore_list_free(&l);
    if (out->checkpoint > out->last) out->last = out->checkpoint;
    return 0;
}

/* The version _last_checkpoint names, or -1 (absent or unreadable: only a hint). */
static int64_t last_checkpoint_hint(objstore *os)
{
    buf text = BUF_INIT;
    fl_err e;
    fl_err_clear(&e);
    int64_t v = -1;
    if (objstore_get(os, LOG_DIR "_last_checkpoint", &text, &e) == 0 && text.len) {
        arena *a = arena_new(0);
        json_val *o = json_parse(a, text.p, text.len, NULL, &e);
        if (o) v = get_i64(o, "version", -1);
        arena_free(a);
    }
    buf_free(&text);
    return v;
}

/* Lists the log. With a _last_checkpoint at or below `upto`, only the keys from that
 * checkpoint on are listed (ListObjectsV2 start-after on S3): a long log stays one cheap
 * page. Falls back to the whole listing when the named checkpoint is not there. */
static int list_log(objstore *os, int64_t upto, log_listing *out, fl_err *err)
{
    int64_t cp = last_checkpoint_hint(os);
    if (cp >= 0 && (upto < 0 || cp <= upto)) {
        char after[64];   /* sorts just before "<cp>.checkpoint.parquet" and "<cp>.json" */
        snprintf(after, sizeof after, LOG_DIR "%020" PRId64, cp);
        if (list_from(os, after, upto, out, err) != 0) return -1;
        if (out->checkpoint >= 0) return 0;
    }
    return list_from(os, NULL, upto, out, err);
}

/* Replays up to version `want` (< 0: latest), from the newest checkpoint when use_cp. */
static int replay_all(objstore *os, delta_replay *r, const log_listing *ll, int64_t want,
                      bool use_cp, fl_err *err)
{
    int64_t last = want >= 0 && want < ll->last ? want : ll->last;
    if (want > ll->last) {
        fl_err_set(err, 404, LOG_DIR, "version %" PRId64 " does not exist (latest %" PRId64 ")",
                   want, ll->last);
        return -1;
    }
    int64_t start = 0;
    int rc = 0;
    if (use_cp && ll->checkpoint >= 0) {
        char key[96];
        snprintf(key, sizeof key, LOG_DIR "%020" PRId64 ".checkpoint.parquet", ll->checkpoint);
        r->version = ll->checkpoint;
        rc = delta_checkpoint_read(os, key, r, err);
        r->snap->version = ll->checkpoint;
        r->snap->checkpoint_version = ll->checkpoint;
        start = ll->checkpoint + 1;
    } else if (ll->first > 0) {
        fl_err_set(err, 422, LOG_DIR, "log starts at version %" PRId64 " and no checkpoint "
                   "covers the earlier commits", ll->first);
        return -1;
    }
    arena *scratch = arena_new(0);
    for (int64_t v = start; rc == 0 && v <= last; v++) rc = replay_commit(os, r, v, scratch, err);
    arena_free(scratch);
    return rc;
}

static delta_snapshot *snapshot_new(void)
{
    delta_snapshot *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->mem = arena_new(0);
    s->version = -1;
    s->checkpoint_version = -1;
    return s;
}

/* Replays into a fresh snapshot; NULL with err on failure. */
static delta_snapshot *replay(objstore *os, const log_listing *ll, int64_t want, bool use_cp,
                              fl_err *err)
{
    delta_snapshot *s = snapshot_new();
    delta_replay r = {.snap = s};
    int rc = ll->last < 0 ? 0 : replay_all(os, &r, ll, want, use_cp, err);
    smap_free(&r.files);
    smap_free(&r.removes);
    if (rc != 0) {
        delta_snapshot_free(s);
        return NULL;
    }
    compact(s);
    return s;
}

delta_snapshot *delta_snapshot_load(objstore *os, int64_t version, bool for_write, fl_err *err)
{
    log_listing ll;
    if (list_log(os, version, &ll, err) != 0) return NULL;
    delta_snapshot *s = replay(os, &ll, version, true, err);
    if (!s && ll.checkpoint >= 0 && ll.partial) {   /* the earlier commits may still be there */
        fl_err e2;
        fl_err_clear(&e2);
        if (list_from(os, NULL, version, &ll, &e2) != 0) ll.first = -1;
    }
    if (!s && ll.checkpoint >= 0 && ll.first == 0) {
        /* An unreadable checkpoint is not fatal while every commit is still there. */
        fl_log(FL_LOG_WARN, "delta: checkpoint %" PRId64 " unusable (%s); replaying the log",
               ll.checkpoint, err->msg);
        fl_err_clear(err);
        s = replay(os, &ll, version, false, err);
    }
    int rc = s ? 0 : -1;
    if (rc == 0 && s->version >= 0 && (!s->metadata_json || !s->protocol_json)) {
        fl_err_set(err, 422, LOG_DIR, "log has no %s action",
                   s->metadata_json ? "protocol" : "metaData");
        rc = -1;
    }
    if (rc == 0 && s->version >= 0) rc = check_readable(s, err);
    if (rc == 0 && for_write) rc = delta_check_writable(s, false, err);
    if (rc != 0) {
        delta_snapshot_free(s);
        return NULL;
    }
    return s;
}

void delta_snapshot_free(delta_snapshot *s)
{
    if (!s) return;
    free(s->files);
    free(s->removes);
    free(s->txns);
    arena_free(s->mem);
    free(s);
}

const char *delta_config(const delta_snapshot *s, const char *key)
{
    for (size_t i = 0; i < s->n_config; i++)
        if (!strcmp(s->config_keys[i], key)) return s->config_vals[i];
    return NULL;
}

int delta_field_find(const delta_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (!strcmp(s->fields[i].name, name)) return (int)i;
    return -1;
}

int64_t delta_txn_version(const delta_snapshot *s, const char *app_id)
{
    for (size_t i = 0; i < s->n_txns; i++)
        if (!strcmp(s->txns[i].app_id, app_id)) return s->txns[i].version;
    return -1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *delta_path_key(const char *path)
{
    size_t n = strlen(path);
    char *out = malloc(n + 1);
    if (!out) abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (path[i] == '%' && i + 2 < n && (hi = hexval(path[i + 1])) >= 0 &&
            (lo = hexval(path[i + 2])) >= 0) {
            out[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else out[k++] = path[i];
    }
    out[k] = 0;
    return out;
}
