/* cmd_view_export.c: `fhirlake view export VIEW.json INPUT... --to PATH [--mode merge|append|
 * overwrite] [--key COLUMN] [--codec snappy|zstd|none] [--delete-absent] [--file-rows N]
 * [--app ID --app-version N] [--threads N]`: the offline pipeline. NDJSON files, Bundles or single
 * resources (a FHIR Bulk Data export, "-" = stdin) go through the ViewDefinition into one
 * atomic Delta commit (lake.h). Default mode merge on the view's key column (its
 * getResourceKey() or id column). Memory stays bounded: input is read line by line, rows go
 * to the table writer in batches, data files are cut at ~128 MB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lake/lake.h"
#include "../sof/sof.h"
#include "cli.h"

#define BATCH_ROWS 8192
#define BATCH_BYTES (16u << 20)

typedef struct xport {
    const sof_view *v;
    sof_ctx *ctx;
    rows_batch *b;
    lake_writer *w;
    long resources;
    fl_err err;
} xport;

static bool flush_rows(xport *x)
{
    if (!x->b->n_rows) return true;
    bool ok = lake_write(x->w, x->b, &x->err) == 0;
    rows_batch_clear(x->b);
    return ok;
}

static bool one_resource(xport *x, const json_val *res, const char *where)
{
    if (res->type != JSON_OBJECT) return true;
    const char *rt = json_get_str(res, "resourceType");
    if (rt && !strcmp(rt, "Bundle")) {
        const json_val *entries = json_get(res, "entry");
        for (uint32_t i = 0; json_is(entries, JSON_ARRAY) && i < entries->len; i++) {
            const json_val *e = json_get(&entries->u.a[i], "resource");
            if (e && !one_resource(x, e, where)) return false;
        }
        return true;
    }
    x->resources++;
    if (sof_eval(x->v, x->ctx, res, x->b, &x->err) < 0) {
        if (!x->err.where[0]) snprintf(x->err.where, sizeof x->err.where, "%s", where);
        return false;
    }
    if (x->b->n_rows >= BATCH_ROWS || rows_batch_bytes(x->b) >= BATCH_BYTES) return flush_rows(x);
    return true;
}

/* Reads the rest of `in` after `first` and parses it as one JSON document. */
static bool whole_document(xport *x, arena *a, const char *first, size_t n, FILE *in,
                           const char *name)
{
    buf all = BUF_INIT;
    buf_put(&all, first, n);
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, in)) > 0) buf_put(&all, tmp, k);
    fl_err e = {0};
    json_val *v = json_parse(a, all.p, all.len, NULL, &e);
    buf_free(&all);
    if (!v) {
        fl_err_set(&x->err, 400, name, "%s: %s", name, e.msg);
        return false;
    }
    return one_resource(x, v, name);
}

/* NDJSON line by line; if the first line is not a whole JSON value the input is one JSON
 * document (a Bundle or a pretty-printed resource). */
static bool read_input(xport *x, FILE *in, const char *name)
{
    arena *a = arena_new(0);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    bool ok = true;
    while (ok && (n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            len--;
        if (!len) continue;
        arena_reset(a);
        fl_err e = {0};
        json_val *v = json_parse(a, line, len, NULL, &e);
        if (!v && lineno == 1) {
            ok = whole_document(x, a, line, (size_t)n, in, name);
            break;
        }
        if (!v) {
            fl_err_set(&x->err, 400, name, "%s line %ld: %s", name, lineno, e.msg);
            ok = false;
            break;
        }
        char where[300];
        snprintf(where, sizeof where, "%s line %ld", name, lineno);
        ok = one_resource(x, v, where);
    }
    free(line);
    arena_free(a);
    return ok;
}

static int usage(void)
{
    fprintf(stderr, "usage: fhirlake view export VIEW.json INPUT... --to PATH [--mode merge|append|"
                    "overwrite]\n       [--key COLUMN] [--codec snappy|zstd|none] "
                    "[--delete-absent] [--file-rows N] [--app ID --app-version N]\n"
                    "       [--threads N]  (data files written in parallel)\n");
    return 2;
}

typedef struct args {
    const char *view, *to, *mode, *key, *codec, *app;
    int64_t app_version, file_rows;
    int threads;
    bool delete_absent;
    const char **inputs;
    int n_inputs;
} args;

static int parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->inputs = calloc((size_t)argc, sizeof *a->inputs);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(s, "--to") && has) a->to = argv[++i];
        else if (!strcmp(s, "--mode") && has) a->mode = argv[++i];
        else if (!strcmp(s, "--key") && has) a->key = argv[++i];
        else if (!strcmp(s, "--codec") && has) a->codec = argv[++i];
        else if (!strcmp(s, "--app") && has) a->app = argv[++i];
        else if (!strcmp(s, "--app-version") && has) a->app_version = atoll(argv[++i]);
        else if (!strcmp(s, "--file-rows") && has) a->file_rows = atoll(argv[++i]);
        else if (!strcmp(s, "--threads") && has) a->threads = atoi(argv[++i]);
        else if (!strcmp(s, "--delete-absent")) a->delete_absent = true;
        else if (s[0] == '-' && s[1] == '-') {
            fprintf(stderr, "fhirlake view export: unknown option %s\n", s);
            return -1;
        } else if (!a->view) a->view = s;
        else a->inputs[a->n_inputs++] = s;
    }
    if (!a->view || !a->to || !a->n_inputs) return -1;
    return 0;
}

static sof_view *load_view(const char *path, fl_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fl_err_set(err, 404, path, "cannot open view %s", path);
        return NULL;
    }
    buf text = BUF_INIT;
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) buf_put(&text, tmp, k);
    fclose(f);
    arena *a = arena_new(0);
    json_val *j = json_parse(a, text.p ? text.p : "", text.len, NULL, err);
    sof_view *v = j ? sof_compile(j, 0, err) : NULL;
    buf_free(&text);
    arena_free(a);
    return v;
}

static int options_from(const args *a, const sof_view *v, lake_options *o, fl_err *err)
{
    lake_options_init(o);
    if (a->mode && !strcmp(a->mode, "append")) o->mode = LAKE_APPEND;
    else if (a->mode && !strcmp(a->mode, "overwrite")) o->mode = LAKE_OVERWRITE;
    else if (a->mode && strcmp(a->mode, "merge")) {
        fl_err_set(err, 400, "--mode", "unknown mode '%s' (merge, append, overwrite)", a->mode);
        return -1;
    }
    if (a->codec && pq_codec_parse(a->codec, &o->codec) != 0) {
        fl_err_set(err, 400, "--codec", "unknown codec '%s'", a->codec);
        return -1;
    }
    o->key = a->key;
    if (!o->key && o->mode == LAKE_MERGE) {
        int k = sof_view_key_column(v);
        if (k < 0) {
            fl_err_set(err, 400, "--key", "the view has no getResourceKey() or id column: pass "
                       "--key COLUMN or use --mode append");
            return -1;
        }
        o->key = sof_view_schema(v)->f[k].name;
    }
    o->delete_absent = a->delete_absent;
    o->file_rows = a->file_rows;
    o->threads = a->threads;
    o->app_id = a->app;
    o->app_version = a->app_version;
    return 0;
}

static int fail(const fl_err *e)
{
    fprintf(stderr, "fhirlake view export: %s%s%s\n", e->msg, e->where[0] ? " at " : "",
            e->where);
    return 1;
}

static bool read_all(xport *x, const args *a)
{
    for (int i = 0; i < a->n_inputs; i++) {
        const char *name = a->inputs[i];
        FILE *in = strcmp(name, "-") ? fopen(name, "rb") : stdin;
        if (!in) {
            fl_err_set(&x->err, 404, name, "cannot open input %s", name);
            return false;
        }
        bool ok = read_input(x, in, name);
        if (in != stdin) fclose(in);
        if (!ok) return false;
    }
    return flush_rows(x);
}

int cmd_view_export(int argc, char **argv)
{
    args a;
    if (parse_args(argc, argv, &a) != 0) {
        free(a.inputs);
        return usage();
    }
    xport x = {0};
    lake_options o;
    sof_view *v = load_view(a.view, &x.err);
    if (!v || options_from(&a, v, &o, &x.err) != 0) {
        sof_free(v);
        free(a.inputs);
        return fail(&x.err);
    }
    x.v = v;
    x.w = lake_writer_open(a.to, sof_view_schema(v), &o, &x.err);
    int rc = 1;
    if (x.w) {
        x.ctx = sof_ctx_new();
        x.b = rows_batch_new(sof_view_schema(v));
        lake_result res;
        if (!read_all(&x, &a)) lake_abort(x.w);
        else if (lake_commit(x.w, &res, &x.err) == 0) {
            printf("{\"table\":\"%s\",\"version\":%lld,\"skipped\":%s,\"resources\":%ld,"
                   "\"rows\":%lld,\"rows_rewritten\":%lld,\"files_added\":%lld,"
                   "\"files_removed\":%lld}\n",
                   a.to, (long long)res.version, res.skipped ? "true" : "false", x.resources,
                   (long long)res.rows_added, (long long)res.rows_rewritten,
                   (long long)res.files_added, (long long)res.files_removed);
            rc = 0;
        }
        rows_batch_free(x.b);
        sof_ctx_free(x.ctx);
    }
    sof_free(v);
    free(a.inputs);
    return rc ? fail(&x.err) : 0;
}
