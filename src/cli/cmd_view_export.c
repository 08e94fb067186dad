/* cmd_view_export.c: `fhirlake view export VIEW.json INPUT... --to PATH [--mode merge|append|
 * overwrite] [--key COLUMN] [--codec snappy|zstd|none] [--delete-absent] [--file-rows N]
 * [--app ID --app-version N] [--jobs N] [--threads N]`: the offline pipeline. NDJSON
 * files (plain or .gz), Bundles or single resources (a FHIR Bulk Data export, "-" = stdin)
 * go through the ViewDefinition into one atomic Delta commit (lake.h). Default mode merge
 * on the view's key column (its getResourceKey() or id column).
 *
 * Pipeline: the main thread cuts the inputs into chunks of whole lines (regular files are
 * mapped, other inputs read into pooled buffers) and queues them (bounded); --jobs worker threads (default: online CPUs, at most 8) parse and evaluate them,
 * each into its own row batch, and hand full batches to the table writer under a lock.
 * Memory stays bounded: a few chunks, one batch per worker, one row group per data file. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "../lake/lake.h"
#include "../sof/sof.h"
#include "cli.h"

#define BATCH_ROWS 8192
#define BATCH_BYTES (16u << 20)
#define CHUNK_BYTES (4u << 20)
#define MAX_JOBS 8
#define PARSE_ARENA_BLOCK (1u << 20)  /* one resource's DOM fits: no block churn per line */

/* A run of whole NDJSON lines, or (whole = true) one JSON document. */
typedef struct chunk {
    char *p;
    size_t len, cap;
    long first_line;
    const char *name;
    bool whole;
    struct chunk *next;
} chunk;

typedef struct shared {
    const sof_view *v;
    lake_writer *w;
    pthread_mutex_t mu;          /* queue, failure, counters */
    pthread_cond_t changed;
    chunk *head, *tail;
    int queued, max_queued;
    bool done, failed;
    fl_err err;                  /* the first failure */
    long resources;
    pthread_mutex_t write_mu;    /* lake_write is single-threaded */
    char *pool[2 * MAX_JOBS + 4];  /* spare CHUNK_BYTES buffers: no page faults per chunk */
    int n_pool;
} shared;

typedef struct worker {
    shared *sh;
    sof_ctx *ctx;
    rows_batch *b;
    arena *a;
    long resources;
    fl_err err;
} worker;

/* ---- chunk buffers ---- */
static char *take_buffer(shared *sh)
{
    pthread_mutex_lock(&sh->mu);
    char *p = sh->n_pool ? sh->pool[--sh->n_pool] : NULL;
    pthread_mutex_unlock(&sh->mu);
    if (!p && !(p = malloc(CHUNK_BYTES + 1))) abort();
    return p;
}

static void give_buffer(shared *sh, char *p, size_t cap)
{
    if (!cap) return;   /* a range of a mapped file: unmapped by read_mapped */
    pthread_mutex_lock(&sh->mu);
    if (cap == CHUNK_BYTES && sh->n_pool < (int)(sizeof sh->pool / sizeof sh->pool[0])) {
        sh->pool[sh->n_pool++] = p;
        p = NULL;
    }
    pthread_mutex_unlock(&sh->mu);
    free(p);
}

static void free_chunk(shared *sh, chunk *c)
{
    if (!c->cap) cli_release_mapped(c->p, c->len);
    give_buffer(sh, c->p, c->cap);
    free(c);
}

/* ---- queue ---- */
static void fail_shared(shared *sh, const fl_err *e)
{
    pthread_mutex_lock(&sh->mu);
    if (!sh->failed) sh->err = *e;
    sh->failed = true;
    pthread_cond_broadcast(&sh->changed);
    pthread_mutex_unlock(&sh->mu);
}

/* Blocks while the queue is full; false once the run has failed. */
static bool push_chunk(shared *sh, chunk *c)
{
    pthread_mutex_lock(&sh->mu);
    while (sh->queued >= sh->max_queued && !sh->failed) pthread_cond_wait(&sh->changed, &sh->mu);
    bool ok = !sh->failed;
    if (ok) {
        if (sh->tail) sh->tail->next = c;
        else sh->head = c;
        sh->tail = c;
        sh->queued++;
        pthread_cond_broadcast(&sh->changed);
    }
    pthread_mutex_unlock(&sh->mu);
    if (!ok) free_chunk(sh, c);
    return ok;
}

static chunk *pop_chunk(shared *sh)
{
    pthread_mutex_lock(&sh->mu);
    while (!sh->head && !sh->done && !sh->failed) pthread_cond_wait(&sh->changed, &sh->mu);
    chunk *c = sh->failed ? NULL : sh->head;
    if (c) {
        sh->head = c->next;
        if (!sh->head) sh->tail = NULL;
        sh->queued--;
        pthread_cond_broadcast(&sh->changed);
    }
    pthread_mutex_unlock(&sh->mu);
    return c;
}

/* ---- workers ---- */
static bool flush_rows(worker *k)
{
    if (!k->b->n_rows) return true;
    pthread_mutex_lock(&k->sh->write_mu);
    bool ok = lake_write(k->sh->w, k->b, &k->err) == 0;
    pthread_mutex_unlock(&k->sh->write_mu);
    rows_batch_clear(k->b);
    return ok;
}

static bool one_resource(worker *k, const json_val *res, const char *name, long line)
{
    if (res->type != JSON_OBJECT) return true;
    const char *rt = json_get_str(res, "resourceType");
    if (rt && !strcmp(rt, "Bundle")) {
        const json_val *entries = json_get(res, "entry");
        for (uint32_t i = 0; json_is(entries, JSON_ARRAY) && i < entries->len; i++) {
            const json_val *e = json_get(&entries->u.a[i], "resource");
            if (e && !one_resource(k, e, name, line)) return false;
        }
        return true;
    }
    k->resources++;
    if (sof_eval(k->sh->v, k->ctx, res, k->b, &k->err) < 0) {
        if (!k->err.where[0]) {
            if (line > 0) snprintf(k->err.where, sizeof k->err.where, "%s line %ld", name, line);
            else snprintf(k->err.where, sizeof k->err.where, "%s", name);
        }
        return false;
    }
    if (k->b->n_rows >= BATCH_ROWS || rows_batch_bytes(k->b) >= BATCH_BYTES) return flush_rows(k);
    return true;
}

static bool one_text(worker *k, const char *p, size_t len, const char *name, long line)
{
    arena_reset(k->a);
    fl_err e = {0};
    json_val *v = json_parse(k->a, p, len, NULL, &e);
    if (!v) {
        if (line > 0) fl_err_set(&k->err, 400, name, "%s line %ld: %s", name, line, e.msg);
        else fl_err_set(&k->err, 400, name, "%s: %s", name, e.msg);
        return false;
    }
    return one_resource(k, v, name, line);
}

static bool run_chunk(worker *k, const chunk *c)
{
    if (c->whole) return one_text(k, c->p, c->len, c->name, 0);
    long line = c->first_line;
    for (const char *p = c->p, *end = c->p + c->len; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t len = (size_t)(le - p);
        while (len && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (len && !one_text(k, p, len, c->name, line)) return false;
        p = nl ? nl + 1 : end;
    }
    return true;
}

static void *worker_main(void *arg)
{
    worker *k = arg;
    bool ok = true;
    chunk *c;
    while (ok && (c = pop_chunk(k->sh)) != NULL) {
        ok = run_chunk(k, c);
        free_chunk(k->sh, c);
    }
    if (ok) ok = flush_rows(k);
    if (!ok) fail_shared(k->sh, &k->err);
    pthread_mutex_lock(&k->sh->mu);
    k->sh->resources += k->resources;
    pthread_mutex_unlock(&k->sh->mu);
    return NULL;
}

/* ---- reading ---- */
static chunk *new_chunk(char *p, size_t len, size_t cap, long first_line, const char *name,
                        bool whole)
{
    chunk *c = calloc(1, sizeof *c);
    if (!c) abort();
    *c = (chunk){p, len, cap, first_line, name, whole, NULL};
    return c;
}

/* Reads one input into chunks: NDJSON cut after the last line end of each full buffer
 * (the partial line moves to the next buffer), else one whole document. Buffers come from
 * the pool and are read into directly. */
/* An input: a plain stream, or a gzip file (NAME.gz, read through zlib). */
typedef struct input {
    FILE *f;
    gzFile gz;
} input;

/* Fills p[0..n) as far as the input goes; 0 at the end. -1 on a read error. */
static long input_read(input *in, char *p, size_t n)
{
    if (!in->gz) {
        size_t got = fread(p, 1, n, in->f);
        return ferror(in->f) ? -1 : (long)got;
    }
    size_t total = 0;
    while (total < n) {
        unsigned want = n - total > (1u << 30) ? 1u << 30 : (unsigned)(n - total);
        int got = gzread(in->gz, p + total, want);
        if (got < 0) return -1;
        if (got == 0) break;
        total += (size_t)got;
    }
    return (long)total;
}

static bool read_input(shared *sh, input *in, const char *name)
{
    size_t cap = CHUNK_BYTES, len = 0;
    char *p = take_buffer(sh);
    long line = 1;
    bool first = true, ndjson = true, ok = true;
    for (;;) {
        if (len == cap) {           /* a line longer than a buffer, or a whole document */
            cap *= 2;
            if (!(p = realloc(p, cap + 1))) abort();
        }
        long r = input_read(in, p + len, cap - len);
        if (r < 0) {
            fl_err e;
            fl_err_set(&e, 500, name, "cannot read %s", name);
            fail_shared(sh, &e);
            ok = false;
            break;
        }
        size_t got = (size_t)r;
        len += got;
        bool eof = got == 0;
        if (first && (len == cap || eof || memchr(p, '\n', len))) {
            ndjson = cli_looks_ndjson(p, len, eof);
            first = false;
        }
        if (!eof && (first || !ndjson || len < cap)) continue;
        char *nl = eof ? p + len : memrchr(p, '\n', len);
        if (!nl) continue;
        size_t take = eof ? len : (size_t)(nl - p) + 1, rest = len - take;
        char *np = take_buffer(sh);
        size_t ncap = CHUNK_BYTES;
        if (rest > ncap) {
            ncap = rest * 2;
            if (!(np = realloc(np, ncap + 1))) abort();
        }
        memcpy(np, p + take, rest);
        long lines = cli_count_lines(p, take);
        if (take) ok = push_chunk(sh, new_chunk(p, take, cap, line, name, !ndjson));
        else give_buffer(sh, p, cap);
        line += lines;
        p = np;
        len = rest;
        cap = ncap;
        if (eof || !ok) break;
    }
    give_buffer(sh, p, cap);
    return ok;
}

/* Regular files are mapped and cut into line-aligned ranges: no read() copy. The mapping
 * lives until every chunk pointing into it has been parsed. */
static bool read_mapped(shared *sh, const char *name, const char *p, size_t len)
{
    if (!cli_looks_ndjson(p, len, true))
        return push_chunk(sh, new_chunk((char *)p, len, 0, 1, name, true));
    long line = 1;
    for (size_t off = 0; off < len;) {
        size_t end = cli_cut_lines(p, len, off, CHUNK_BYTES);
        long lines = cli_count_lines(p + off, end - off);
        if (!push_chunk(sh, new_chunk((char *)p + off, end - off, 0, line, name, false)))
            return false;
        line += lines;
        off = end;
    }
    return true;
}

static bool read_all(shared *sh, const char **inputs, int n, cli_mapping *maps)
{
    for (int i = 0; i < n; i++) {
        const char *name = inputs[i];
        size_t nl = strlen(name);
        bool gz = nl > 3 && !strcmp(name + nl - 3, ".gz");
        if (!gz && strcmp(name, "-") && cli_map_file(name, &maps[i])) {
            if (!read_mapped(sh, name, maps[i].p, maps[i].len)) return false;
            continue;
        }
        input in = {NULL, NULL};
        if (nl > 3 && !strcmp(name + nl - 3, ".gz")) in.gz = gzopen(name, "rb");
        else in.f = strcmp(name, "-") ? fopen(name, "rb") : stdin;
        if (!in.f && !in.gz) {
            fl_err e;
            fl_err_set(&e, 404, name, "cannot open input %s", name);
            fail_shared(sh, &e);
            return false;
        }
        if (in.gz) gzbuffer(in.gz, 1u << 20);
        bool ok = read_input(sh, &in, name);
        if (in.gz) gzclose(in.gz);
        else if (in.f != stdin) fclose(in.f);
        if (!ok) return false;
    }
    return true;
}

/* ---- command ---- */
static int usage(void)
{
    fprintf(stderr, "usage: fhirlake view export VIEW.json INPUT... --to PATH [--mode merge|append|"
                    "overwrite]\n       [--key COLUMN] [--codec snappy|zstd|none] "
                    "[--delete-absent] [--file-rows N] [--app ID --app-version N]\n"
                    "       [--jobs N] (parse/evaluate threads) [--threads N] (parallel data "
                    "files)\n");
    return 2;
}

typedef struct args {
    const char *view, *to, *mode, *key, *codec, *app;
    int64_t app_version, file_rows;
    int threads, jobs;
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
        else if (!strcmp(s, "--jobs") && has) a->jobs = atoi(argv[++i]);
        else if (!strcmp(s, "--delete-absent")) a->delete_absent = true;
        else if (s[0] == '-' && s[1] == '-') {
            fprintf(stderr, "fhirlake view export: unknown option %s\n", s);
            return -1;
        } else if (!a->view) a->view = s;
        else a->inputs[a->n_inputs++] = s;
    }
    if (!a->view || !a->to || !a->n_inputs) return -1;
    if (a->jobs <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        a->jobs = cpus > 0 ? (int)cpus : 1;
    }
    if (a->jobs > MAX_JOBS) a->jobs = MAX_JOBS;
    return 0;
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

/* Runs the reader and the workers; true when every input went into the writer. */
static bool pump(shared *sh, const args *a)
{
    worker ws[MAX_JOBS];
    pthread_t th[MAX_JOBS];
    int started = 0;
    cli_mapping *maps = calloc((size_t)a->n_inputs + 1, sizeof *maps);
    if (!maps) abort();
    for (int i = 0; i < a->jobs; i++)
        ws[i] = (worker){.sh = sh, .ctx = sof_ctx_new(), .a = arena_new(PARSE_ARENA_BLOCK),
                         .b = rows_batch_new(sof_view_schema(sh->v))};
    while (started < a->jobs && pthread_create(&th[started], NULL, worker_main, &ws[started]) == 0)
        started++;
    if (started == 0) {
        fl_err e;
        fl_err_set(&e, 500, "", "cannot start worker threads");
        fail_shared(sh, &e);
    } else read_all(sh, a->inputs, a->n_inputs, maps);
    pthread_mutex_lock(&sh->mu);
    sh->done = true;
    pthread_cond_broadcast(&sh->changed);
    pthread_mutex_unlock(&sh->mu);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < a->jobs; i++) {
        sof_ctx_free(ws[i].ctx);
        arena_free(ws[i].a);
        rows_batch_free(ws[i].b);
    }
    for (chunk *c = sh->head, *n; c; c = n) {   /* left over after a failure */
        n = c->next;
        free_chunk(sh, c);
    }
    for (int i = 0; i < sh->n_pool; i++) free(sh->pool[i]);
    sh->n_pool = 0;
    for (int i = 0; i < a->n_inputs; i++)   /* every chunk is gone: unmap */
        cli_unmap(&maps[i]);
    free(maps);
    return !sh->failed;
}

int cmd_view_export(int argc, char **argv)
{
    args a;
    if (parse_args(argc, argv, &a) != 0) {
        free(a.inputs);
        return usage();
    }
    shared sh = {.max_queued = 2 * a.jobs};
    pthread_mutex_init(&sh.mu, NULL);
    pthread_mutex_init(&sh.write_mu, NULL);
    pthread_cond_init(&sh.changed, NULL);
    lake_options o;
    sof_view *v = cli_load_view(a.view, 0, &sh.err);
    int rc = 1;
    if (v && options_from(&a, v, &o, &sh.err) == 0) {
        sh.v = v;
        sh.w = lake_writer_open(a.to, sof_view_schema(v), &o, &sh.err);
    }
    lake_result res;
    if (sh.w && !pump(&sh, &a)) lake_abort(sh.w);
    else if (sh.w && lake_commit(sh.w, &res, &sh.err) == 0) {
        printf("{\"table\":\"%s\",\"version\":%lld,\"skipped\":%s,\"resources\":%ld,"
               "\"rows\":%lld,\"rows_rewritten\":%lld,\"files_added\":%lld,"
               "\"files_removed\":%lld}\n",
               a.to, (long long)res.version, res.skipped ? "true" : "false", sh.resources,
               (long long)res.rows_added, (long long)res.rows_rewritten,
               (long long)res.files_added, (long long)res.files_removed);
        rc = 0;
    }
    sof_free(v);
    free(a.inputs);
    pthread_mutex_destroy(&sh.mu);
    pthread_mutex_destroy(&sh.write_mu);
    pthread_cond_destroy(&sh.changed);
    return rc ? fail(&sh.err) : 0;
}
