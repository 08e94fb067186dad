/* lake.c: the Delta table writer (lake.h). Owns schema reconciliation between incoming
 * batches and the table, streaming data files, the merge rewrite (key set, stats-based
 * file skipping, copying surviving rows), and the commit/retry loop. */
#include "lake.h"
#include "delta_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MERGE_ATTEMPTS 20
#define ROW_GROUP_BYTES (64u << 20)

typedef struct added_file {
    char *key;       /* store key == log path (our names need no escaping) */
    int64_t size;
    char *stats;
    lake_keyidx *idx; /* its key index, cached after the commit (NULL: none) */
} added_file;

/* A set of key strings (open addressing; bytes in an arena). */
typedef struct keyset {
    size_t cap, n;
    rows_str *slots;
    uint32_t *tags;
    arena *mem;
} keyset;

/* A data file being written by one thread. */
typedef struct data_slot {
    pq_writer *pw;
    char *key;
    size_t bytes;
    int64_t rows;
    lake_keyidx *idx;    /* merge: the file's key index (lake.h) */
} data_slot;

struct lake_writer {
    objstore *os;
    delta_snapshot *snap;
    lake_options o;
    char *key_col, *app_id;
    rows_schema *in_schema;      /* incoming fields (+ is_deleted when they lack it) */
    bool add_is_deleted;
    rows_schema *tab_schema;     /* table fields after evolution: what rewrites carry */
    char *new_schema_string;     /* NULL: the table's schema is unchanged */
    bool creating, skip;
    char *url;                   /* the table as opened: names its key indexes */
    const char **key_list;       /* the incoming keys as a list, for key index lookups */
    uint32_t *key_lens;
    bool made_root, committed;   /* we created the table directory / a commit landed */
    int in_key;                  /* key column in in_schema (merge) */
    data_slot slots[LAKE_MAX_THREADS];  /* data files being written, one per thread */
    int n_slots;
    added_file *added;           /* new-row files (kept across merge retries) */
    size_t n_added, cap_added;
    added_file *rewritten;       /* rewrite outputs of the current attempt */
    size_t n_rewritten, cap_rewritten;
    bool use_dv;                 /* this attempt merges by deletion vectors */
    delta_dv_file dvf;           /* the attempt's DV file (dvf.n_dvs 0: none) */
    bool dvf_put;                /* ... and it was written to the store */
    delta_dv_cache dv_cache;     /* DV file last read (a commit's DVs share one file) */
    keyset keys;
    char **adopted_src;          /* adopted files whose keys are not read yet (merge) */
    size_t n_adopted_src;
    char *min_key, *max_key;
    rows_str *sorted_keys;       /* merge: the incoming keys in byte order */
    rows_col view_cols_extra;    /* constant is_deleted = 0 column */
    size_t view_cap;
    rows_col *view_cols;
    int seq;
    lake_result res;
};

void lake_options_init(lake_options *o)
{
    memset(o, 0, sizeof *o);
    o->mode = LAKE_MERGE;
    o->codec = PQ_SNAPPY;
    o->file_bytes = (size_t)128 << 20;
    /* operators whose readers cannot read deletion vectors turn them off for every writer */
    const char *dv = getenv("FHIRLAKE_DELETION_VECTORS");
    o->copy_on_write = dv && (!strcmp(dv, "off") || !strcmp(dv, "0") || !strcmp(dv, "false"));
}

/* ---- key set ---- */
/* A merge probes every key of every candidate file (FHIR ids: often 36-byte UUIDs). */
static uint64_t hash_bytes(const char *p, size_t n)
{
    return lake_hash64(p, n, 0x9e3779b97f4a7c15ull);
}

/* Slot i holds a key when slots[i].p is set; tags[i] (the hash's high half) rules out
 * nearly every other key without touching its bytes. */
static bool keyset_has(const keyset *k, const char *p, size_t n)
{
    if (!k->cap) return false;
    uint64_t h = hash_bytes(p, n);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = h & (k->cap - 1); k->slots[i].p; i = (i + 1) & (k->cap - 1))
        if (k->tags[i] == tag && k->slots[i].len == n && !memcmp(k->slots[i].p, p, n))
            return true;
    return false;
}

static void keyset_put_slot(keyset *k, rows_str s)
{
    uint64_t h = hash_bytes(s.p, s.len);
    size_t i = h & (k->cap - 1);
    while (k->slots[i].p) i = (i + 1) & (k->cap - 1);
    k->slots[i] = s;
    k->tags[i] = (uint32_t)(h >> 32);
}

static void keyset_add(keyset *k, const char *p, size_t n)
{
    if (keyset_has(k, p, n)) return;
    if ((k->n + 1) * 2 > k->cap) {
        keyset old = *k;
        k->cap = old.cap ? old.cap * 2 : 1024;
        k->slots = calloc(k->cap, sizeof *k->slots);
        k->tags = malloc(k->cap * sizeof *k->tags);
        if (!k->slots || !k->tags) abort();
        for (size_t i = 0; i < old.cap; i++)
            if (old.slots[i].p) keyset_put_slot(k, old.slots[i]);
        free(old.slots);
        free(old.tags);
    }
    if (!k->mem) k->mem = arena_new(0);
    rows_str s = {arena_strndup(k->mem, p, n), (uint32_t)n};
    keyset_put_slot(k, s);
    k->n++;
}

static void keyset_free(keyset *k)
{
    free(k->slots);
    free(k->tags);
    arena_free(k->mem);
}

static int str_cmp(const rows_str *a, const char *b, size_t bn)
{
    int c = memcmp(a->p, b, a->len < bn ? a->len : bn);
    return c ? c : (a->len > bn) - (a->len < bn);
}

static int rows_str_cmp(const void *x, const void *y)
{
    const rows_str *a = x, *b = y;
    return str_cmp(a, b->p, b->len);
}

/* The keys in byte order (malloc'd, points into the set's arena), for range checks. */
static rows_str *keyset_sorted(const keyset *k)
{
    rows_str *v = malloc((k->n + 1) * sizeof *v);
    if (!v) abort();
    size_t n = 0;
    for (size_t i = 0; i < k->cap; i++)
        if (k->slots[i].p) v[n++] = k->slots[i];
    qsort(v, n, sizeof *v, rows_str_cmp);
    return v;
}

/* Is any of the n sorted keys within [mn, mx]? Binary search for the first key >= mn. */
static bool keys_meet(const rows_str *v, size_t n, const char *mn, const char *mx)
{
    size_t lo = 0, hi = n, ln = strlen(mn);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (str_cmp(&v[mid], mn, ln) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && str_cmp(&v[lo], mx, strlen(mx)) <= 0;
}

/* ---- schema reconciliation ---- */
static const char *type_text(rows_type t, bool list, int p, int s, char out[48])
{
    char tb[32];
    const char *n = delta_type_name(t, p, s, tb);
    snprintf(out, 48, list ? "array<%s>" : "%s", n);
    return out;
}

static int check_field(const delta_field *tf, const rows_field *f, fl_err *err)
{
    pq_options d;
    pq_options_init(&d);
    bool same = tf->supported && tf->type == f->type && tf->list == f->list &&
                (f->type != ROWS_DECIMAL ||
                 (tf->precision == d.decimal_precision && tf->scale == d.decimal_scale));
    if (same) return 0;
    char a[48], b[48];
    fl_err_set(err, 422, f->name,
               "column '%s' is %s in the table but %s in the data; type changes are not "
               "supported (nothing was written)",
               f->name, tf->supported ? type_text(tf->type, tf->list, tf->precision, tf->scale, a)
                                      : "of an unsupported type",
               type_text(f->type, f->list, d.decimal_precision, d.decimal_scale, b));
    return -1;
}

static int reconcile(lake_writer *w, fl_err *err)
{
    pq_options d;
    pq_options_init(&d);
    const delta_snapshot *s = w->snap;
    rows_schema_free(w->tab_schema);
    free(w->new_schema_string);
    w->new_schema_string = NULL;
    w->creating = s->version < 0;
    if (w->creating) {
        w->tab_schema = rows_schema_copy(w->in_schema);
        buf b = BUF_INIT;
        delta_schema_string(&b, w->in_schema, d.decimal_precision, d.decimal_scale);
        w->new_schema_string = buf_detach(&b);
        return 0;
    }
    w->tab_schema = rows_schema_new();
    for (size_t i = 0; i < s->n_fields; i++) {
        const delta_field *tf = &s->fields[i];
        if (tf->supported) rows_schema_add(w->tab_schema, tf->name, tf->type, tf->list);
        else if (w->o.mode == LAKE_MERGE) {
            fl_err_set(err, 422, tf->name, "column '%s' has a type fhirlake cannot rewrite; "
                       "merge into this table is not supported", tf->name);
            return -1;
        }
    }
    buf extra = BUF_INIT;
    for (size_t i = 0; i < w->in_schema->n; i++) {
        const rows_field *f = &w->in_schema->f[i];
        int k = delta_field_find(s, f->name);
        if (k >= 0) {
            if (check_field(&s->fields[k], f, err) != 0) goto fail;
            continue;
        }
        for (size_t j = 0; j < s->n_fields; j++)
            if (!strcasecmp(s->fields[j].name, f->name)) {
                fl_err_set(err, 422, f->name, "column '%s' differs only in case from the "
                           "table's '%s'", f->name, s->fields[j].name);
                goto fail;
            }
        buf_putc(&extra, ',');
        delta_field_json(&extra, f->name, f->type, f->list, d.decimal_precision, d.decimal_scale);
        rows_schema_add(w->tab_schema, f->name, f->type, f->list);
    }
    if (extra.len) {  /* schema evolution: the old fields verbatim, then the new ones */
        buf b = BUF_INIT;
        buf_puts(&b, "{\"type\":\"struct\",\"fields\":[");
        for (size_t i = 0; i < s->n_fields; i++) {
            if (i) buf_putc(&b, ',');
            buf_puts(&b, s->fields[i].json);
        }
        buf_put(&b, extra.p + (s->n_fields ? 0 : 1), extra.len - (s->n_fields ? 0 : 1));
        buf_puts(&b, "]}");
        w->new_schema_string = buf_detach(&b);
    }
    buf_free(&extra);
    return 0;
fail:
    buf_free(&extra);
    return -1;
}

/* A path that holds files but no Delta log is not ours to write into. */
static int check_not_foreign(objstore *os, const char *url, fl_err *err)
{
    objstore_listing l;
    if (objstore_list(os, "", NULL, &l, err) != 0) return -1;
    bool foreign = false;
    for (size_t i = 0; i < l.n; i++)
        if (strcmp(l.e[i].key, "_delta_log")) foreign = true;
    objstore_list_free(&l);
    if (foreign) {
        fl_err_set(err, 422, url, "'%s' is not empty and is not a Delta table (no commits in "
                   "_delta_log)", url);
        return -1;
    }
    return 0;
}

static char *xstrdup(const char *s)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static bool is_local(const char *url)
{
    return !strstr(url, "://") || !strncmp(url, "file://", 7);
}

static int open_table(lake_writer *w, const char *url, fl_err *err)
{
    fl_err probe = {0};
    w->url = xstrdup(strncmp(url, "file://", 7) ? url : url + 7); /* one name per table */
    w->os = objstore_open(url, false, &probe);
    if (!w->os && probe.status == 404 && is_local(url)) {
        w->os = objstore_open(url, true, err);
        w->made_root = w->os != NULL;   /* removed again if nothing gets committed */
    } else if (!w->os) *err = probe;
    if (!w->os) return -1;
    w->snap = delta_snapshot_load(w->os, -1, true, err);
    if (!w->snap) return -1;
    if (w->snap->version < 0 && check_not_foreign(w->os, url, err) != 0) return -1;
    if (delta_check_writable(w->snap, w->o.mode != LAKE_APPEND, err) != 0) return -1;
    if (w->app_id && delta_txn_version(w->snap, w->app_id) >= w->o.app_version) w->skip = true;
    return reconcile(w, err);
}

lake_writer *lake_writer_open(const char *url, const rows_schema *schema,
                              const lake_options *o, fl_err *err)
{
    lake_writer *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->o = *o;
    w->key_col = xstrdup(o->key);
    w->app_id = xstrdup(o->app_id);
    w->o.key = w->key_col;
    w->o.app_id = w->app_id;
    if (!w->o.file_bytes) w->o.file_bytes = (size_t)128 << 20;
    w->n_slots = o->threads < 1 ? 1 : o->threads > LAKE_MAX_THREADS ? LAKE_MAX_THREADS : o->threads;
    w->in_schema = rows_schema_copy(schema);
    if (rows_schema_find(schema, DELTA_IS_DELETED) < 0) {
        rows_schema_add(w->in_schema, DELTA_IS_DELETED, ROWS_INT32, false);
        w->add_is_deleted = true;
    }
    w->in_key = -1;
    if (o->mode == LAKE_MERGE) {
        w->in_key = o->key ? rows_schema_find(schema, o->key) : -1;
        if (w->in_key < 0 || schema->f[w->in_key].type != ROWS_STRING ||
            schema->f[w->in_key].list) {
            fl_err_set(err, 400, o->key ? o->key : "--key",
                       "merge needs a key column of type string in the data%s%s",
                       o->key ? "; not found or not a string: " : "", o->key ? o->key : "");
            lake_abort(w);
            return NULL;
        }
    }
    if (open_table(w, url, err) != 0) {
        lake_abort(w);
        return NULL;
    }
    return w;
}

/* ---- data files ---- */
static void push_file(added_file **arr, size_t *n, size_t *cap, added_file f)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *arr = realloc(*arr, *cap * sizeof **arr);
        if (!*arr) abort();
    }
    (*arr)[(*n)++] = f;
}

static char *store_path(const lake_writer *w, const char *key)
{
    size_t n = strlen(objstore_root(w->os)) + strlen(key) + 2;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s", objstore_root(w->os), key);
    return p;
}

/* A fresh data file name, as Spark names them (malloc'd). */
static char *new_data_key(lake_writer *w, pq_codec codec)
{
    static const char *ext[] = {[PQ_UNCOMPRESSED] = "", [PQ_SNAPPY] = ".snappy",
                                [PQ_GZIP] = ".gz", [PQ_ZSTD] = ".zstd"};
    char id[37], key[128];
    fl_uuid4(id);
    snprintf(key, sizeof key, "part-%05d-%s-c000%s.parquet", w->seq++, id,
             (unsigned)codec <= PQ_ZSTD && ext[codec] ? ext[codec] : "");
    return xstrdup(key);
}

static pq_writer *open_data_file(lake_writer *w, const rows_schema *s, char **key_out,
                                 fl_err *err)
{
    char *key = new_data_key(w, w->o.codec);
    pq_options opt;
    pq_options_init(&opt);
    opt.codec = w->o.codec;
    opt.row_group_bytes = ROW_GROUP_BYTES;
    opt.created_by = "fhirlake";
    char *path = store_path(w, key);
    pq_writer *pw = pq_writer_open(path, s, &opt, err);
    free(path);
    *key_out = key;
    return pw;
}

/* Closes pw into an added_file with Delta stats; on a remote store (s3://) the file is
 * then uploaded from the spool. */
static int close_data_file(objstore *os, pq_writer *pw, char *key, added_file *out,
                           fl_err *err)
{
    pq_file_stats st = {0};
    if (pq_writer_close(pw, &st, err) != 0 || objstore_publish(os, key, err) != 0) {
        pq_file_stats_free(&st);
        free(key);
        return -1;
    }
    buf b = BUF_INIT;
    delta_stats_json(&st, &b);
    *out = (added_file){.key = key, .size = st.file_size, .stats = buf_detach(&b)};
    pq_file_stats_free(&st);
    return 0;
}

static int finish_slot(lake_writer *w, data_slot *d, fl_err *err)
{
    if (!d->pw) return 0;
    added_file f;
    int rc = close_data_file(w->os, d->pw, d->key, &f, err);
    d->pw = NULL;
    d->key = NULL;
    d->bytes = 0;
    d->rows = 0;
    if (rc != 0) {
        lake_keyidx_free(d->idx);
        d->idx = NULL;
        return -1;
    }
    lake_keyidx_sort(d->idx);
    f.idx = d->idx;   /* cached with the file once the commit lands */
    d->idx = NULL;
    push_file(&w->added, &w->n_added, &w->cap_added, f);
    return 0;
}

static int finish_all(lake_writer *w, fl_err *err)
{
    for (int i = 0; i < w->n_slots; i++)
        if (finish_slot(w, &w->slots[i], err) != 0) return -1;
    return 0;
}

/* A borrowed view of b with a constant is_deleted = 0 column appended. */
static const rows_batch *with_is_deleted(lake_writer *w, const rows_batch *b, rows_batch *view)
{
    if (!w->add_is_deleted) return b;
    size_t nc = b->schema->n;
    if (w->view_cap < b->n_rows || !w->view_cols) {
        w->view_cap = b->n_rows > 1024 ? b->n_rows : 1024;
        free(w->view_cols_extra.vals);
        free(w->view_cols_extra.valid);
        w->view_cols_extra.vals = calloc(w->view_cap, sizeof(rows_value));
        w->view_cols_extra.valid = malloc(w->view_cap);
        if (!w->view_cols_extra.vals || !w->view_cols_extra.valid) abort();
        memset(w->view_cols_extra.valid, 1, w->view_cap);
        free(w->view_cols);
        w->view_cols = malloc((nc + 1) * sizeof *w->view_cols);
        if (!w->view_cols) abort();
    }
    memcpy(w->view_cols, b->cols, nc * sizeof *w->view_cols);
    w->view_cols[nc] = w->view_cols_extra;
    w->view_cols[nc].n_vals = b->n_rows;
    *view = *b;
    view->schema = w->in_schema;
    view->cols = w->view_cols;
    return view;
}

static void note_keys(lake_writer *w, const rows_batch *b)
{
    for (size_t r = 0; r < b->n_rows; r++) {
        if (rows_is_null(b, (size_t)w->in_key, r)) continue;
        rows_str s = rows_get(b, (size_t)w->in_key, r)->s;
        keyset_add(&w->keys, s.p, s.len);
    }
}

/* Rows [lo, hi) of b as a borrowed batch: list offsets stay absolute into vals. */
static void slice_view(const rows_batch *b, size_t lo, size_t hi, rows_col *cols, rows_batch *out)
{
    *out = *b;
    out->n_rows = hi - lo;
    out->cols = cols;
    for (size_t c = 0; c < b->schema->n; c++) {
        cols[c] = b->cols[c];
        if (b->schema->f[c].list) cols[c].offs = b->cols[c].offs + lo;
        else {
            cols[c].vals = b->cols[c].vals + lo;
            cols[c].valid = b->cols[c].valid + lo;
        }
    }
}

typedef struct slice_job {
    pq_writer *pw;
    rows_batch view;
    fl_err err;
    int rc;
} slice_job;

static void *slice_run(void *arg)
{
    slice_job *j = arg;
    j->rc = pq_write_batch(j->pw, &j->view, &j->err);
    return NULL;
}

/* A merge writer records where each incoming key lands in its file (rows [lo, hi) of b
 * go to d's file from row d->rows on), so that later merges need not read the file. */
static void index_keys(lake_writer *w, data_slot *d, const rows_batch *b, size_t lo, size_t hi)
{
    if (w->o.mode != LAKE_MERGE || w->in_key < 0) return;
    if (!d->idx) d->idx = lake_keyidx_new();
    for (size_t r = lo; r < hi; r++)
        if (!rows_is_null(b, (size_t)w->in_key, r)) {
            rows_str k = rows_get(b, (size_t)w->in_key, r)->s;
            lake_keyidx_add(d->idx, d->rows + (int64_t)(r - lo), k.p, k.len);
        }
}

/* Writes b across the slots, one contiguous row range per slot, in parallel. */
static int write_slices(lake_writer *w, const rows_batch *b, int n, fl_err *err)
{
    slice_job jobs[LAKE_MAX_THREADS];
    rows_col *cols = malloc((size_t)n * b->schema->n * sizeof *cols);
    pthread_t th[LAKE_MAX_THREADS];
    bool started[LAKE_MAX_THREADS] = {false};
    if (!cols) abort();
    for (int i = 0; i < n; i++) {
        size_t lo = b->n_rows * (size_t)i / (size_t)n, hi = b->n_rows * (size_t)(i + 1) / (size_t)n;
        jobs[i] = (slice_job){.pw = w->slots[i].pw};
        slice_view(b, lo, hi, cols + (size_t)i * b->schema->n, &jobs[i].view);
        index_keys(w, &w->slots[i], b, lo, hi);
        w->slots[i].rows += (int64_t)(hi - lo);
        w->slots[i].bytes += rows_batch_bytes(b) / (size_t)n;
        if (i > 0) started[i] = pthread_create(&th[i], NULL, slice_run, &jobs[i]) == 0;
        if (i > 0 && !started[i]) slice_run(&jobs[i]);  /* no thread: do it here */
    }
    slice_run(&jobs[0]);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        if (jobs[i].rc != 0 && rc == 0) {
            *err = jobs[i].err;
            rc = -1;
        }
    }
    free(cols);
    return rc;
}

int lake_write(lake_writer *w, const rows_batch *b, fl_err *err)
{
    if (w->skip || b->n_rows == 0) return 0;
    if (b->schema->n + (w->add_is_deleted ? 1 : 0) != w->in_schema->n) {
        fl_err_set(err, 500, "", "batch schema differs from the writer's");
        return -1;
    }
    if (w->o.mode == LAKE_MERGE) note_keys(w, b);
    /* Small batches go to one file: splitting them would only make small files. */
    int n = b->n_rows >= (size_t)w->n_slots * 4096 ? w->n_slots : 1;
    for (int i = 0; i < n; i++)
        if (!w->slots[i].pw &&
            !(w->slots[i].pw = open_data_file(w, w->in_schema, &w->slots[i].key, err)))
            return -1;
    rows_batch view;
    if (write_slices(w, with_is_deleted(w, b, &view), n, err) != 0) return -1;
    w->res.rows_added += (int64_t)b->n_rows;
    for (int i = 0; i < n; i++) {
        data_slot *d = &w->slots[i];
        if ((d->bytes >= w->o.file_bytes || (w->o.file_rows && d->rows >= w->o.file_rows)) &&
            finish_slot(w, d, err) != 0)
            return -1;
    }
    return 0;
}

/* ---- adopting files written elsewhere ---- */
static int copy_file(const char *from, const char *to, fl_err *err)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    char b[1 << 16];
    ssize_t n = 0;
    bool ok = out >= 0;
    while (ok && (n = read(in, b, sizeof b)) > 0) ok = write(out, b, (size_t)n) == n;
    ok = ok && n == 0 && fsync(out) == 0;
    if (in >= 0) close(in);
    if (out >= 0 && close(out) != 0) ok = false;
    if (!ok) {
        fl_err_set(err, 500, "", "cannot copy %s to %s: %s", from, to, strerror(errno));
        if (out >= 0) unlink(to);
    }
    return ok ? 0 : -1;
}

/* The file's bytes are already durable (its writer fsynced them); a hard link shares
 * them, and the directory fsync makes the new name durable before any commit names it. */
static int link_into(const char *from, const char *to, fl_err *err)
{
    if (link(from, to) != 0 && copy_file(from, to, err) != 0) return -1;
    char *dir = xstrdup(to);
    *strrchr(dir, '/') = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

static int64_t stats_num_records(const char *stats_json)
{
    const char *p = stats_json ? strstr(stats_json, "\"numRecords\":") : NULL;
    return p ? strtoll(p + 13, NULL, 10) : 0;
}

int lake_adopt(lake_writer *w, const char *path, const char *stats_json, lake_keyidx *idx,
               fl_err *err)
{
    if (w->skip) {
        lake_keyidx_free(idx);
        return 0;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        fl_err_set(err, 500, "", "cannot stat %s: %s", path, strerror(errno));
        lake_keyidx_free(idx);
        return -1;
    }
    char *key = new_data_key(w, w->o.codec);
    char *dst = store_path(w, key);
    int rc = link_into(path, dst, err);
    free(dst);
    if (rc == 0 && objstore_publish(w->os, key, err) != 0) {
        fl_err e = {0};
        objstore_delete(w->os, key, &e);
        rc = -1;
    }
    if (rc != 0) {
        free(key);
        lake_keyidx_free(idx);
        return -1;
    }
    push_file(&w->added, &w->n_added, &w->cap_added,
              (added_file){.key = key, .size = (int64_t)st.st_size, .stats = xstrdup(stats_json),
                           .idx = idx});
    w->res.rows_added += stats_num_records(stats_json);
    if (w->o.mode == LAKE_MERGE) {
        w->adopted_src = realloc(w->adopted_src, (w->n_adopted_src + 1) * sizeof *w->adopted_src);
        if (!w->adopted_src) abort();
        w->adopted_src[w->n_adopted_src++] = xstrdup(path);
    }
    return 0;
}

/* Reads the incoming keys of the adopted files (their key column only). */
static int read_adopted_keys(lake_writer *w, fl_err *err)
{
    rows_schema *ks = rows_schema_new();
    rows_schema_add(ks, w->key_col, ROWS_STRING, false);
    rows_batch *b = rows_batch_new(ks);
    int rc = 0;
    for (size_t i = 0; i < w->n_adopted_src && rc == 0; i++) {
        pq_reader *r = pq_reader_open(w->adopted_src[i], err);
        if (!r) rc = -1;
        int got = 0;
        while (r && (got = pq_read_batch(r, b, err)) == 1)
            for (size_t row = 0; row < b->n_rows; row++)
                if (!rows_is_null(b, 0, row)) {
                    rows_str s = rows_get(b, 0, row)->s;
                    keyset_add(&w->keys, s.p, s.len);
                }
        if (got < 0) rc = -1;
        pq_reader_close(r);
    }
    rows_batch_free(b);
    rows_schema_free(ks);
    for (size_t i = 0; i < w->n_adopted_src; i++) free(w->adopted_src[i]);
    w->n_adopted_src = 0;
    return rc;
}

/* ---- merge rewrite ---- */
static void copy_row(rows_batch *dst, const rows_batch *src, size_t row)
{
    rows_begin_row(dst);
    for (size_t c = 0; c < src->schema->n; c++) {
        const rows_field *f = &src->schema->f[c];
        const rows_col *col = &src->cols[c];
        size_t lo = f->list ? col->offs[row] : row;
        size_t hi = f->list ? col->offs[row + 1] : row + (col->valid[row] ? 1 : 0);
        for (size_t k = lo; k < hi; k++) {
            const rows_value *v = &col->vals[k];
            if (f->type == ROWS_STRING || f->type == ROWS_DECIMAL)
                rows_set_str(dst, c, v->s.p, v->s.len);
            else if (f->type == ROWS_DOUBLE) rows_set_double(dst, c, v->d);
            else rows_set_int(dst, c, v->i);
        }
    }
    rows_end_row(dst);
}

typedef struct rewrite {
    lake_writer *w;
    int key, del;            /* columns in tab_schema */
    rows_batch *in, *out;
    pq_writer *pw;
    char *pw_key;
    bool changed;
    int64_t kept;
    const uint64_t *gone;    /* rows the file's DV deletes (sorted): never copied */
    size_t n_gone, at_gone;
    uint64_t row;            /* position in the file of the next row read */
} rewrite;

/* Is the next row of the file (position rw->row, then advanced) deleted by its DV? */
static bool next_row_gone(rewrite *rw)
{
    uint64_t pos = rw->row++;
    while (rw->at_gone < rw->n_gone && rw->gone[rw->at_gone] < pos) rw->at_gone++;
    return rw->at_gone < rw->n_gone && rw->gone[rw->at_gone] == pos;
}

static int flush_out(rewrite *rw, fl_err *err)
{
    if (!rw->out->n_rows) return 0;
    if (!rw->pw && !(rw->pw = open_data_file(rw->w, rw->w->tab_schema, &rw->pw_key, err)))
        return -1;
    int rc = pq_write_batch(rw->pw, rw->out, err);
    rows_batch_clear(rw->out);
    return rc;
}

/* Filters one row group: drops rows whose key is incoming, tombstones absent keys. */
static void filter_rows(rewrite *rw)
{
    const rows_batch *in = rw->in;
    for (size_t r = 0; r < in->n_rows; r++) {
        if (next_row_gone(rw)) continue;
        bool has_key = !rows_is_null(in, (size_t)rw->key, r);
        rows_str k = has_key ? rows_get(in, (size_t)rw->key, r)->s : (rows_str){"", 0};
        if (has_key && keyset_has(&rw->w->keys, k.p, k.len)) {
            rw->changed = true;
            continue;
        }
        bool tomb = rw->w->o.delete_absent &&
                    (rows_is_null(in, (size_t)rw->del, r) || rows_get(in, (size_t)rw->del, r)->i != 1);
        copy_row(rw->out, in, r);
        if (tomb) {  /* overwrite the copied is_deleted with 1 */
            rows_col *c = &rw->out->cols[rw->del];
            c->vals[rw->out->n_rows - 1].i = 1;
            c->valid[rw->out->n_rows - 1] = 1;
            rw->changed = true;
        }
        rw->kept++;
    }
}

/* Opens data file f for reading (remote store: fetched into the spool first). */
static pq_reader *open_table_file(lake_writer *w, const delta_add *f, fl_err *err)
{
    char *k = delta_path_key(f->path);
    char *path = store_path(w, k);
    int frc = objstore_fetch(w->os, k, err);
    free(k);
    pq_reader *r = frc == 0 ? pq_reader_open(path, err) : NULL;
    free(path);
    return r;
}

static int rewrite_rows(lake_writer *w, const delta_add *f, const uint64_t *gone, size_t n_gone,
                        fl_err *err)
{
    pq_reader *r = open_table_file(w, f, err);
    if (!r) return -1;
    rewrite rw = {.w = w, .key = rows_schema_find(w->tab_schema, w->key_col),
                  .del = rows_schema_find(w->tab_schema, DELTA_IS_DELETED), .gone = gone,
                  .n_gone = n_gone};
    rw.in = rows_batch_new(w->tab_schema);
    rw.out = rows_batch_new(w->tab_schema);
    int rc;
    while ((rc = pq_read_batch(r, rw.in, err)) == 1) {
        filter_rows(&rw);
        if (flush_out(&rw, err) != 0) {
            rc = -1;
            break;
        }
    }
    pq_reader_close(r);
    rows_batch_free(rw.in);
    rows_batch_free(rw.out);
    if (rc < 0 || !rw.changed) {
        if (rw.pw) pq_writer_abort(rw.pw);
        free(rw.pw_key);
        return rc < 0 ? -1 : 0;
    }
    if (rw.pw) {
        added_file nf;
        if (close_data_file(w->os, rw.pw, rw.pw_key, &nf, err) != 0) return -1;
        push_file(&w->rewritten, &w->n_rewritten, &w->cap_rewritten, nf);
    } else free(rw.pw_key);
    w->res.rows_rewritten += rw.kept;
    return 1;
}

/* Rewrites file f without the incoming keys (and without the rows its DV deletes).
 * 0 = untouched, 1 = replaced, -1 = error. */
static int rewrite_file(lake_writer *w, const delta_add *f, fl_err *err)
{
    uint64_t *gone = NULL;
    size_t n_gone = 0;
    if (delta_dv_read(w->os, &f->dv, &w->dv_cache, &gone, &n_gone, err) != 0) return -1;
    int rc = rewrite_rows(w, f, gone, n_gone, err);
    free(gone);
    return rc;
}


/* ---- merge by deletion vectors ---- */
/* Writers may add DVs only where the protocol lists the feature and the table enables it. */
static bool table_uses_dv(const delta_snapshot *s)
{
    bool rd = false, wr = false;
    for (size_t i = 0; s->min_reader >= 3 && i < s->n_reader_features; i++)
        rd |= !strcmp(s->reader_features[i], "deletionVectors");
    for (size_t i = 0; s->min_writer >= 7 && i < s->n_writer_features; i++)
        wr |= !strcmp(s->writer_features[i], "deletionVectors");
    const char *on = delta_config(s, "delta.enableDeletionVectors");
    return rd && wr && on && !strcasecmp(on, "true");
}

typedef struct u64v {
    uint64_t *p;
    size_t n, cap;
} u64v;

static void u64_push(u64v *v, uint64_t x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->p = realloc(v->p, v->cap * sizeof *v->p);
        if (!v->p) abort();
    }
    v->p[v->n++] = x;
}

typedef struct key_scan {
    const keyset *keys;
    const uint64_t *old;
    size_t n_old, at;
    u64v *hit;
} key_scan;

static int key_seen(void *ctx, int64_t row, const char *p, size_t len)
{
    key_scan *k = ctx;
    if (!keyset_has(k->keys, p, len)) return 0;
    while (k->at < k->n_old && k->old[k->at] < (uint64_t)row) k->at++;
    if (k->at == k->n_old || k->old[k->at] != (uint64_t)row) u64_push(k->hit, (uint64_t)row);
    return 0;
}

/* Positions of the rows of f whose key is incoming and that `old` does not delete yet.
 * Reads the key column only, a row group at a time, probing the keys in place. */
static int scan_keys(lake_writer *w, const delta_add *f, const uint64_t *old, size_t n_old,
                     u64v *hit, fl_err *err)
{
    pq_reader *r = open_table_file(w, f, err);
    if (!r) return -1;
    key_scan k = {.keys = &w->keys, .old = old, .n_old = n_old, .hit = hit};
    int rc = pq_scan_strings(r, w->key_col, key_seen, &k, err);
    pq_reader_close(r);
    return rc;
}

/* The positions scan_keys would find, from f's cached key index; false on a miss. */
static bool cached_hits(lake_writer *w, const delta_add *f, const uint64_t *old, size_t n_old,
                        u64v *hit)
{
    if (!w->key_list) {   /* the incoming keys as a list, once per writer */
        w->key_list = malloc((w->keys.n + 1) * sizeof *w->key_list);
        w->key_lens = malloc((w->keys.n + 1) * sizeof *w->key_lens);
        if (!w->key_list || !w->key_lens) abort();
        size_t n = 0;
        for (size_t i = 0; i < w->keys.cap; i++)
            if (w->keys.slots[i].p) {
                w->key_list[n] = w->keys.slots[i].p;
                w->key_lens[n++] = w->keys.slots[i].len;
            }
    }
    int64_t *rows;
    size_t n;
    if (!lake_keyidx_cache_rows(w->url, f->path, w->key_list, w->key_lens, w->keys.n, &rows, &n))
        return false;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && rows[i] == rows[i - 1]) continue;
        while (at < n_old && old[at] < (uint64_t)rows[i]) at++;
        if (at == n_old || old[at] != (uint64_t)rows[i]) u64_push(hit, (uint64_t)rows[i]);
    }
    free(rows);
    return true;
}

/* Sorted union of two sorted, disjoint position lists (malloc'd). */
static uint64_t *union_pos(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    uint64_t *u = malloc((na + nb + 1) * sizeof *u);
    if (!u) abort();
    size_t i = 0, j = 0, k = 0;
    while (i < na || j < nb) u[k++] = j == nb || (i < na && a[i] < b[j]) ? a[i++] : b[j++];
    return u;
}

/* The add's stats with tightBounds false: min/max may now bound deleted rows too. */
static char *wide_stats(const char *stats)
{
    arena *a = arena_new(0);
    fl_err e = {0};
    json_val *o = stats ? json_parse(a, stats, strlen(stats), NULL, &e) : NULL;
    char *out = NULL;
    if (json_is(o, JSON_OBJECT)) {
        json_val no = {.type = JSON_FALSE};
        json_obj_set(a, o, "tightBounds", &no);
        buf b = BUF_INIT;
        json_write(&b, o, false);
        out = buf_detach(&b);
    }
    arena_free(a);
    return out;
}

/* Deletes the incoming keys' rows of candidate f with a DV (old DV rows stay deleted):
 * remove(f, old DV) + add(same path, size, stats, new DV); a file left with no live row is
 * only removed. 0 = no incoming key in f, 1 = changed, -1 = error. */
static int dv_merge_file(lake_writer *w, delta_txn *tx, const delta_add *f, int64_t nrec,
                         fl_err *err)
{
    uint64_t *old = NULL;
    size_t n_old = 0;
    u64v hit = {0};
    int rc = delta_dv_read(w->os, &f->dv, &w->dv_cache, &old, &n_old, err);
    if (rc == 0 && !cached_hits(w, f, old, n_old, &hit)) rc = scan_keys(w, f, old, n_old, &hit, err);
    char *stats = rc == 0 && hit.n ? wide_stats(f->stats) : NULL;
    if (stats) {
        uint64_t *all = union_pos(old, n_old, hit.p, hit.n);
        delta_txn_remove(tx, f, true);
        if ((int64_t)(n_old + hit.n) >= nrec) w->res.files_removed++;
        else {
            delta_dv dv;
            delta_dv_file_add(&w->dvf, all, n_old + hit.n, &dv);
            delta_txn_add_dv(tx, f->path, f->size, f->mtime, stats, true, &dv);
            w->res.files_dv++;
        }
        w->res.rows_deleted += (int64_t)hit.n;
        free(all);
        rc = 1;
    } else if (rc == 0 && hit.n) {
        fl_err_set(err, 422, f->path, "stats of %s are not a JSON object", f->path);
        rc = -1;
    }
    free(stats);
    free(old);
    free(hit.p);
    return rc;
}

/* Forgets the attempt's DV file; a failed attempt's file is deleted from the store. */
static void drop_dv_file(lake_writer *w, bool delete)
{
    fl_err e = {0};
    if (delete && w->dvf_put) objstore_delete(w->os, w->dvf.key, &e);
    w->dvf_put = false;
    delta_dv_file_free(&w->dvf);
}

/* One candidate file: by DV when the table allows it and the stats count the rows
 * (PROTOCOL.md requires numRecords with a DV), else by rewrite. */
static int merge_file(lake_writer *w, delta_txn *tx, const delta_add *f, fl_err *err)
{
    int64_t nrec = w->use_dv ? delta_stats_num_records(f) : -1;
    if (nrec >= 0) return dv_merge_file(w, tx, f, nrec, err) < 0 ? -1 : 0;
    int rc = rewrite_file(w, f, err);
    if (rc == 1) {
        delta_txn_remove(tx, f, true);
        w->res.files_removed++;
    }
    return rc < 0 ? -1 : 0;
}

static void delete_files(lake_writer *w, added_file *files, size_t *n)
{
    fl_err e = {0};
    for (size_t i = 0; i < *n; i++) {
        objstore_delete(w->os, files[i].key, &e);
        free(files[i].key);
        free(files[i].stats);
        lake_keyidx_free(files[i].idx);
    }
    *n = 0;
}

/* Computes the key range and adds the merge's removes and rewrites to tx. */
static int plan_merge(lake_writer *w, delta_txn *tx, arena *a, fl_err *err)
{
    drop_dv_file(w, true);
    w->use_dv = !w->o.copy_on_write && !w->o.delete_absent && table_uses_dv(w->snap);
    if (w->use_dv) delta_dv_file_init(&w->dvf);
    for (size_t i = 0; i < w->snap->n_files; i++) {
        const delta_add *f = &w->snap->files[i];
        const char *mn, *mx;
        if (!w->o.delete_absent && delta_stats_str_range(f, w->key_col, a, &mn, &mx) &&
            !keys_meet(w->sorted_keys, w->keys.n, mn, mx))
            continue;  /* stats prove no incoming key is in this file */
        if (merge_file(w, tx, f, err) != 0) return -1;
    }
    if (w->dvf.n_dvs) {   /* one DV file holds all of this attempt's DVs */
        if (delta_dv_file_put(w->os, &w->dvf, err) != 0) return -1;
        w->dvf_put = true;
    }
    for (size_t i = 0; i < w->n_rewritten; i++)
        delta_txn_add(tx, w->rewritten[i].key, w->rewritten[i].size, fl_now_micros() / 1000,
                      w->rewritten[i].stats, true);
    return 0;
}

static void key_range(lake_writer *w)
{
    free(w->sorted_keys);
    w->sorted_keys = keyset_sorted(&w->keys);
    if (w->keys.n) {
        w->min_key = (char *)w->sorted_keys[0].p;
        w->max_key = (char *)w->sorted_keys[w->keys.n - 1].p;
    }
}

/* The incoming keys and their range. Adopted files are read only when a merge has
 * something to do with them: a full export (delete_absent) into an empty table has not. */
static int merge_keys(lake_writer *w, fl_err *err)
{
    if (w->n_adopted_src && (w->snap->n_files || !w->o.delete_absent)) {
        if (read_adopted_keys(w, err) != 0) return -1;
        free(w->key_list);   /* the key set grew: the list is rebuilt when needed */
        free(w->key_lens);
        w->key_list = NULL;
        w->key_lens = NULL;
    }
    key_range(w);
    return 0;
}

static const char *op_params(const lake_writer *w, buf *b)
{
    buf_reset(b);
    if (w->o.mode == LAKE_MERGE) {
        jw j;
        jw_init(&j, b);
        jw_obj_begin(&j);
        jw_key(&j, "predicate");
        char pred[300];
        snprintf(pred, sizeof pred, "target.%s = source.%s", w->key_col, w->key_col);
        jw_str(&j, pred);
        jw_obj_end(&j);
    } else
        buf_printf(b, "{\"mode\":\"%s\",\"partitionBy\":\"[]\"}",
                   w->o.mode == LAKE_APPEND ? "Append" : "Overwrite");
    return b->p;
}

static int attempt_commit(lake_writer *w, fl_err *err)
{
    delta_txn *tx = delta_txn_begin(w->os, w->snap);
    arena *a = arena_new(0);
    buf params = BUF_INIT;
    int rc = 0;
    /* Tables created by a merge allow DVs (their later merges need them); append and
     * overwrite never delete rows, so their tables stay readable by readers without
     * DV support. */
    bool dv_table = w->creating && w->o.mode == LAKE_MERGE && !w->o.copy_on_write;
    if (w->creating) delta_txn_protocol(tx, dv_table ? 3 : 1, dv_table ? 7 : 2);
    if (dv_table) delta_txn_feature(tx, "deletionVectors", true);
    if (w->new_schema_string) delta_txn_metadata(tx, w->new_schema_string);
    if (dv_table) delta_txn_config(tx, "delta.enableDeletionVectors", "true");
    if (w->app_id) delta_txn_app(tx, w->app_id, w->o.app_version);
    delta_txn_operation(tx, w->o.mode == LAKE_MERGE ? "MERGE" : w->creating ? "CREATE TABLE AS SELECT" : "WRITE",
                        op_params(w, &params));
    if (w->o.mode == LAKE_OVERWRITE) {
        delta_txn_reads(tx, DELTA_READ_ALL, NULL, NULL, NULL);
        for (size_t i = 0; i < w->snap->n_files; i++) delta_txn_remove(tx, &w->snap->files[i], true);
        w->res.files_removed = (int64_t)w->snap->n_files;
    } else if (w->o.mode == LAKE_MERGE) {
        if (w->o.delete_absent || !w->min_key) delta_txn_reads(tx, DELTA_READ_ALL, NULL, NULL, NULL);
        else delta_txn_reads(tx, DELTA_READ_KEYS, w->key_col, w->min_key, w->max_key);
        w->res.files_removed = 0;
        w->res.rows_rewritten = 0;
        w->res.files_dv = 0;
        w->res.rows_deleted = 0;
        rc = plan_merge(w, tx, a, err);
    }
    for (size_t i = 0; rc == 0 && i < w->n_added; i++)
        delta_txn_add(tx, w->added[i].key, w->added[i].size, fl_now_micros() / 1000,
                      w->added[i].stats, true);
    if (rc == 0) rc = delta_txn_commit(tx, &w->res.version, err);
    buf_free(&params);
    arena_free(a);
    delta_txn_free(tx);
    return rc;
}

static void backoff(int attempt)
{
    unsigned char r;
    if (getrandom(&r, 1, 0) != 1) r = 128;
    int cap_ms = attempt < 8 ? 5 << attempt : 1000;
    struct timespec ts = {0, (long)(cap_ms * (r + 1) / 256) * 1000000L};
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec = ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
    }
    nanosleep(&ts, NULL);
}

static int commit_loop(lake_writer *w, fl_err *err)
{
    for (int attempt = 1;; attempt++) {
        w->res.created = w->creating;
        int rc = attempt_commit(w, err);
        if (rc == 0 || rc == DELTA_SKIPPED) return rc;
        delete_files(w, w->rewritten, &w->n_rewritten);
        drop_dv_file(w, true);
        if (err->status != 409 || w->o.mode == LAKE_OVERWRITE || attempt >= MERGE_ATTEMPTS)
            return -1;
        /* A concurrent writer got in first: redo our reads on its snapshot, after a short
         * random pause so that writers colliding again and again spread out. */
        fl_log(FL_LOG_INFO, "lake: %s; retrying on the new snapshot", err->msg);
        backoff(attempt);
        fl_err_clear(err);
        delta_snapshot_free(w->snap);
        w->snap = delta_snapshot_load(w->os, -1, true, err);
        if (!w->snap || delta_check_writable(w->snap, w->o.mode != LAKE_APPEND, err) != 0 ||
            reconcile(w, err) != 0 || (w->o.mode == LAKE_MERGE && merge_keys(w, err) != 0))
            return -1;
    }
}

int lake_commit(lake_writer *w, lake_result *res, fl_err *err)
{
    int rc = 0;
    if (w->skip) {
        w->res.skipped = true;
        w->res.version = w->snap->version;
        w->res.rows_added = 0;
    } else if (finish_all(w, err) != 0) rc = -1;
    else {
        if (w->o.mode == LAKE_MERGE && merge_keys(w, err) != 0) rc = -1;
        w->res.files_added = (int64_t)w->n_added;
        if (rc == 0) rc = commit_loop(w, err);
        if (rc == DELTA_SKIPPED) {
            w->res.skipped = true;
            rc = 0;
            delete_files(w, w->added, &w->n_added);
            delete_files(w, w->rewritten, &w->n_rewritten);
            drop_dv_file(w, true);
        } else if (rc != 0) delete_files(w, w->added, &w->n_added);
        w->res.files_added += (int64_t)w->n_rewritten;
    }
    if (res) *res = w->res;
    w->committed = rc == 0 && !w->res.skipped;
    for (size_t i = 0; rc == 0 && i < w->n_added; i++) {
        if (w->committed) lake_keyidx_cache_put(w->url, w->added[i].key, w->added[i].idx);
        else lake_keyidx_free(w->added[i].idx);
        free(w->added[i].key);
        free(w->added[i].stats);
    }
    if (rc == 0) w->n_added = 0;
    for (size_t i = 0; rc == 0 && i < w->n_rewritten; i++) {
        free(w->rewritten[i].key);
        free(w->rewritten[i].stats);
    }
    if (rc == 0) w->n_rewritten = 0;
    lake_abort(w);
    return rc;
}

/* A failed first write leaves no empty table directory behind (rmdir only removes empty
 * directories, so nothing of anyone else's can go). */
static void remove_empty_root(objstore *os)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/_delta_log", objstore_root(os));
    rmdir(path);
    rmdir(objstore_root(os));
}

void lake_abort(lake_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->n_slots; i++) {
        if (w->slots[i].pw) pq_writer_abort(w->slots[i].pw);
        free(w->slots[i].key);
        lake_keyidx_free(w->slots[i].idx);
    }
    if (w->os) {
        delete_files(w, w->added, &w->n_added);
        delete_files(w, w->rewritten, &w->n_rewritten);
    }
    if (w->os) drop_dv_file(w, !w->committed);
    delta_dv_cache_free(&w->dv_cache);
    free(w->added);
    free(w->rewritten);
    keyset_free(&w->keys);
    free(w->sorted_keys);
    for (size_t i = 0; i < w->n_adopted_src; i++) free(w->adopted_src[i]);
    free(w->adopted_src);
    free(w->url);
    free(w->key_list);
    free(w->key_lens);
    free(w->view_cols_extra.vals);
    free(w->view_cols_extra.valid);
    free(w->view_cols);
    rows_schema_free(w->in_schema);
    rows_schema_free(w->tab_schema);
    free(w->new_schema_string);
    free(w->key_col);
    free(w->app_id);
    delta_snapshot_free(w->snap);
    if (w->made_root && !w->committed) remove_empty_root(w->os);
    objstore_close(w->os);
    free(w);
}
