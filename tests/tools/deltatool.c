/* deltatool.c: a small test driver for the lake room (not installed): writes rows given as
 * NDJSON objects into a Delta table through lake.h, and prints a snapshot as JSON, so the
 * integration tests can drive the C code directly.
 *
 *   deltatool write TABLE --schema "id:string,n:long,tags:string[]" [--mode merge|append|
 *             overwrite] [--key COL] [--codec snappy|zstd|none] [--delete-absent]
 *             [--app ID --app-version N] [--file-rows N] [--batch N] [--threads N]
 *             [--copy-on-write] < rows.ndjson
 *   deltatool read TABLE          the live rows as NDJSON (strings, numbers), DVs honoured
 *   deltatool snapshot TABLE [--version N]
 *   deltatool checkpoint TABLE
 *   deltatool vacuum TABLE [--retention-hours H] [--dry-run]
 * Types: string bool int long double decimal date timestamp; a trailing [] makes a list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "lake/lake.h"

static int parse_schema(const char *spec, rows_schema *s)
{
    static const struct { const char *n; rows_type t; } types[] = {
        {"string", ROWS_STRING}, {"bool", ROWS_BOOL},       {"int", ROWS_INT32},
        {"long", ROWS_INT64},    {"double", ROWS_DOUBLE},   {"decimal", ROWS_DECIMAL},
        {"date", ROWS_DATE},     {"timestamp", ROWS_TIMESTAMP}};
    char *copy = strdup(spec), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (!colon) goto bad;
        *colon = 0;
        char *tn = colon + 1;
        size_t n = strlen(tn);
        bool list = n > 2 && !strcmp(tn + n - 2, "[]");
        if (list) tn[n - 2] = 0;
        size_t i = 0;
        while (i < sizeof types / sizeof types[0] && strcmp(types[i].n, tn)) i++;
        if (i == sizeof types / sizeof types[0]) goto bad;
        rows_schema_add(s, tok, types[i].t, list);
    }
    free(copy);
    return 0;
bad:
    fprintf(stderr, "deltatool: bad --schema '%s'\n", spec);
    free(copy);
    return -1;
}

static int set_value(rows_batch *b, size_t c, const json_val *v, fl_err *err)
{
    const rows_field *f = &b->schema->f[c];
    int64_t i;
    double d;
    switch (f->type) {
    case ROWS_STRING:
        if (v->type != JSON_STRING) break;
        rows_set_str(b, c, v->u.s, v->len);
        return 0;
    case ROWS_DECIMAL:
        if (v->type != JSON_NUMBER && v->type != JSON_STRING) break;
        rows_set_str(b, c, v->u.s, v->len);
        return 0;
    case ROWS_BOOL:
        if (v->type != JSON_TRUE && v->type != JSON_FALSE) break;
        rows_set_int(b, c, v->type == JSON_TRUE);
        return 0;
    case ROWS_INT32:
    case ROWS_INT64:
        if (json_num_int64(v, &i) != 0) break;
        rows_set_int(b, c, i);
        return 0;
    case ROWS_DOUBLE:
        if (json_num_double(v, &d) != 0) break;
        rows_set_double(b, c, d);
        return 0;
    case ROWS_DATE:
    case ROWS_TIMESTAMP:
        if (v->type != JSON_STRING || fl_time_parse(v->u.s, v->len, &i) != 0) break;
        rows_set_int(b, c, f->type == ROWS_DATE ? i / 86400000000LL : i);
        return 0;
    }
    fl_err_set(err, 400, f->name, "bad value for column %s", f->name);
    return -1;
}

static int add_row(rows_batch *b, const json_val *obj, fl_err *err)
{
    rows_begin_row(b);
    for (size_t c = 0; c < b->schema->n; c++) {
        const json_val *v = json_get(obj, b->schema->f[c].name);
        if (!v || v->type == JSON_NULL) continue;
        if (b->schema->f[c].list) {
            for (uint32_t k = 0; v->type == JSON_ARRAY && k < v->len; k++)
                if (set_value(b, c, &v->u.a[k], err) != 0) return -1;
        } else if (set_value(b, c, v, err) != 0) return -1;
    }
    rows_end_row(b);
    return 0;
}

static const char *arg(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return NULL;
}

static bool flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], name)) return true;
    return false;
}

static int fail(const fl_err *e)
{
    fprintf(stderr, "deltatool: error %d%s%s: %s\n", e->status, e->where[0] ? " at " : "",
            e->where, e->msg);
    return 1;
}

static int cmd_write(const char *table, int argc, char **argv)
{
    rows_schema *s = rows_schema_new();
    const char *spec = arg(argc, argv, "--schema");
    if (!spec || parse_schema(spec, s) != 0) return 2;
    lake_options o;
    lake_options_init(&o);
    const char *mode = arg(argc, argv, "--mode");
    if (mode) o.mode = !strcmp(mode, "append") ? LAKE_APPEND
                     : !strcmp(mode, "overwrite") ? LAKE_OVERWRITE : LAKE_MERGE;
    o.key = arg(argc, argv, "--key");
    if (!o.key && o.mode == LAKE_MERGE) o.key = "id";
    const char *codec = arg(argc, argv, "--codec");
    if (codec && pq_codec_parse(codec, &o.codec) != 0) return 2;
    o.delete_absent = flag(argc, argv, "--delete-absent");
    if (flag(argc, argv, "--copy-on-write")) o.copy_on_write = true;   /* else: the env default */
    o.app_id = arg(argc, argv, "--app");
    const char *av = arg(argc, argv, "--app-version");
    o.app_version = av ? atoll(av) : 0;
    const char *fr = arg(argc, argv, "--file-rows");
    o.file_rows = fr ? atoll(fr) : 0;
    const char *th = arg(argc, argv, "--threads");
    o.threads = th ? atoi(th) : 1;
    const char *bs = arg(argc, argv, "--batch");
    size_t batch_rows = bs ? (size_t)atoll(bs) : 10000;
    fl_err err = {0};
    lake_writer *w = lake_writer_open(table, s, &o, &err);
    if (!w) {
        rows_schema_free(s);
        return fail(&err);
    }
    rows_batch *b = rows_batch_new(s);
    arena *a = arena_new(0);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, stdin)) > 0) {
        if (n <= 1) continue;
        json_val *obj = json_parse(a, line, (size_t)n, NULL, &err);
        rc = obj ? add_row(b, obj, &err) : -1;
        arena_reset(a);
        if (rc == 0 && b->n_rows >= batch_rows) {
            rc = lake_write(w, b, &err);
            rows_batch_clear(b);
        }
    }
    if (rc == 0 && b->n_rows) rc = lake_write(w, b, &err);
    lake_result res;
    if (rc == 0) rc = lake_commit(w, &res, &err);
    else lake_abort(w);
    if (rc == 0)
        printf("{\"version\":%lld,\"skipped\":%s,\"created\":%s,\"rows_added\":%lld,"
               "\"rows_rewritten\":%lld,\"files_added\":%lld,\"files_removed\":%lld,"
               "\"files_dv\":%lld,\"rows_deleted\":%lld}\n",
               (long long)res.version, res.skipped ? "true" : "false",
               res.created ? "true" : "false", (long long)res.rows_added,
               (long long)res.rows_rewritten, (long long)res.files_added,
               (long long)res.files_removed, (long long)res.files_dv,
               (long long)res.rows_deleted);
    free(line);
    arena_free(a);
    rows_batch_free(b);
    rows_schema_free(s);
    return rc == 0 ? 0 : fail(&err);
}

static int cmd_snapshot(const char *table, int argc, char **argv, bool checkpoint)
{
    fl_err err = {0};
    objstore *os = objstore_open(table, false, &err);
    if (!os) return fail(&err);
    const char *v = arg(argc, argv, "--version");
    delta_snapshot *s = delta_snapshot_load(os, v ? atoll(v) : -1, false, &err);
    int rc = s ? 0 : 1;
    if (s && checkpoint) rc = delta_checkpoint_write(os, s, &err) == 0 ? 0 : 1;
    if (s && rc == 0 && !checkpoint) {
        buf out = BUF_INIT;
        jw j;
        jw_init(&j, &out);
        jw_obj_begin(&j);
        jw_key(&j, "version");
        jw_int(&j, s->version);
        jw_key(&j, "checkpoint_version");
        jw_int(&j, s->checkpoint_version);
        jw_key(&j, "schema");
        jw_str(&j, s->schema_string ? s->schema_string : "");
        jw_key(&j, "files");
        jw_arr_begin(&j);
        for (size_t i = 0; i < s->n_files; i++) jw_str(&j, s->files[i].path);
        jw_arr_end(&j);
        jw_key(&j, "dv_cardinality");   /* path -> rows its DV deletes (files with a DV) */
        jw_obj_begin(&j);
        for (size_t i = 0; i < s->n_files; i++)
            if (s->files[i].dv.storage) {
                jw_key(&j, s->files[i].path);
                jw_int(&j, s->files[i].dv.cardinality);
            }
        jw_obj_end(&j);
        jw_key(&j, "protocol");
        jw_raw(&j, s->protocol_json, strlen(s->protocol_json));
        jw_key(&j, "txns");
        jw_obj_begin(&j);
        for (size_t i = 0; i < s->n_txns; i++) {
            jw_key(&j, s->txns[i].app_id);
            jw_int(&j, s->txns[i].version);
        }
        jw_obj_end(&j);
        jw_obj_end(&j);
        puts(out.p);
        buf_free(&out);
    }
    if (rc) fail(&err);
    delta_snapshot_free(s);
    objstore_close(os);
    return rc;
}

/* One value of a row batch as JSON (strings and decimals as strings, times as numbers). */
static void put_value(jw *j, const rows_batch *b, size_t c, const rows_value *v)
{
    rows_type t = b->schema->f[c].type;
    if (t == ROWS_STRING || t == ROWS_DECIMAL) jw_strn(j, v->s.p, v->s.len);
    else if (t == ROWS_DOUBLE) jw_double(j, v->d);
    else if (t == ROWS_BOOL) jw_bool(j, v->i != 0);
    else jw_int(j, v->i);
}

static void put_row(buf *out, const rows_batch *b, size_t r)
{
    jw j;
    jw_init(&j, out);
    jw_obj_begin(&j);
    for (size_t c = 0; c < b->schema->n; c++) {
        const rows_field *f = &b->schema->f[c];
        const rows_col *col = &b->cols[c];
        jw_key(&j, f->name);
        if (f->list) {
            jw_arr_begin(&j);
            for (size_t k = col->offs[r]; k < col->offs[r + 1]; k++)
                put_value(&j, b, c, &col->vals[k]);
            jw_arr_end(&j);
        } else if (rows_is_null(b, c, r)) jw_null(&j);
        else put_value(&j, b, c, rows_get(b, c, r));
    }
    jw_obj_end(&j);
    buf_putc(out, '\n');
}

/* Prints the live rows of one data file: the rows its DV deletes are skipped. */
static int read_file(objstore *os, const delta_add *f, delta_dv_cache *cache, fl_err *err)
{
    uint64_t *gone = NULL;
    size_t n_gone = 0, at = 0;
    if (delta_dv_read(os, &f->dv, cache, &gone, &n_gone, err) != 0) return -1;
    char *key = delta_path_key(f->path);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", objstore_root(os), key);
    pq_reader *r = objstore_fetch(os, key, err) == 0 ? pq_reader_open(path, err) : NULL;
    free(key);
    int rc = r ? 0 : -1;
    rows_schema *s = r ? pq_reader_rows_schema(r) : NULL;
    rows_batch *b = s ? rows_batch_new(s) : NULL;
    uint64_t pos = 0;
    buf out = BUF_INIT;
    while (b && (rc = pq_read_batch(r, b, err)) == 1) {
        for (size_t i = 0; i < b->n_rows; i++, pos++) {
            while (at < n_gone && gone[at] < pos) at++;
            if (at == n_gone || gone[at] != pos) put_row(&out, b, i);
        }
        fwrite(out.p, 1, out.len, stdout);
        buf_reset(&out);
    }
    buf_free(&out);
    rows_batch_free(b);
    rows_schema_free(s);
    if (r) pq_reader_close(r);
    free(gone);
    return rc < 0 ? -1 : 0;
}

static int cmd_read(const char *table)
{
    fl_err err = {0};
    objstore *os = objstore_open(table, false, &err);
    if (!os) return fail(&err);
    delta_snapshot *s = delta_snapshot_load(os, -1, false, &err);
    int rc = s ? 0 : -1;
    delta_dv_cache cache = {0};
    for (size_t i = 0; rc == 0 && i < s->n_files; i++)
        rc = read_file(os, &s->files[i], &cache, &err);
    delta_dv_cache_free(&cache);
    if (rc) fail(&err);
    delta_snapshot_free(s);
    objstore_close(os);
    return rc ? 1 : 0;
}

static int cmd_vacuum(const char *table, int argc, char **argv)
{
    fl_err err = {0};
    objstore *os = objstore_open(table, false, &err);
    if (!os) return fail(&err);
    delta_snapshot *s = delta_snapshot_load(os, -1, true, &err);
    const char *h = arg(argc, argv, "--retention-hours");
    int64_t deleted = 0;
    int rc = s ? delta_vacuum(os, s, (int64_t)((h ? atof(h) : 168.0) * 3600 * 1000),
                              flag(argc, argv, "--dry-run"), &deleted, &err)
               : -1;
    if (rc == 0) printf("{\"deleted\":%lld}\n", (long long)deleted);
    else fail(&err);
    delta_snapshot_free(s);
    objstore_close(os);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: deltatool write|snapshot|checkpoint|vacuum|read TABLE [options]\n");
        return 2;
    }
    if (!strcmp(argv[1], "write")) return cmd_write(argv[2], argc - 3, argv + 3);
    if (!strcmp(argv[1], "snapshot")) return cmd_snapshot(argv[2], argc - 3, argv + 3, false);
    if (!strcmp(argv[1], "checkpoint")) return cmd_snapshot(argv[2], argc - 3, argv + 3, true);
    if (!strcmp(argv[1], "vacuum")) return cmd_vacuum(argv[2], argc - 3, argv + 3);
    if (!strcmp(argv[1], "read")) return cmd_read(argv[2]);
    fprintf(stderr, "deltatool: unknown command %s\n", argv[1]);
    return 2;
}
