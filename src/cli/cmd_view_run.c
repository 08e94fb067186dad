/* cmd_view_run.c: `fhirlake view run VIEW.json [INPUT...] [--format ndjson|csv|json|parquet]
 * [--out FILE] [--no-header] [--jobs N]`: evaluates a ViewDefinition over NDJSON files,
 * Bundles or single resources (stdin when no INPUT or "-") and writes the rows. Memory stays
 * bounded: NDJSON is read line by line, rows go out in batches of 1024 and arenas are reset.
 *
 * Regular NDJSON files with --jobs N > 1 (default: online CPUs, at most 8) are mapped and cut
 * into chunks of whole lines; N worker threads parse and evaluate chunks into per-chunk row
 * batches, and the main thread writes the chunks' rows in input order, so the output is the
 * same bytes as --jobs 1 (parquet row groups may be cut elsewhere). At most 2N + 2 chunks
 * are in flight (a ring of slots). stdin, Bundles and single documents stay single-threaded. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../format/text.h"
#include "../sof/sof.h"
#include "cli.h"

#if defined(__has_include)
#if __has_include("../format/parquet.h")
#include "../format/parquet.h"
#define HAVE_PARQUET 1
#endif
#endif

#define BATCH_ROWS 1024
#define FMT_PARQUET 100
#define CHUNK_BYTES (1u << 20)
#define MAX_JOBS 8
#define PARSE_ARENA_BLOCK (1u << 20)  /* one resource's DOM fits: no block churn per line */

typedef struct run {
    const sof_view *v;
    sof_ctx *ctx;
    rows_batch *b;
    int fmt;
    text_writer tw;
    FILE *out;
    buf ob;
#ifdef HAVE_PARQUET
    pq_writer *pq;
#endif
    long resources, rows;
    fl_err err;
} run;

/* Writes batch b (then clears it): the only place rows leave, always on the main thread. */
static bool write_batch(run *r, rows_batch *b)
{
    if (b->n_rows == 0) return true;
#ifdef HAVE_PARQUET
    if (r->fmt == FMT_PARQUET) {
        bool ok = pq_write_batch(r->pq, b, &r->err) == 0;
        rows_batch_clear(b);
        return ok;
    }
#endif
    text_batch(&r->tw, b, &r->ob);
    rows_batch_clear(b);
    if (fwrite(r->ob.p, 1, r->ob.len, r->out) != r->ob.len) {
        fl_err_set(&r->err, 500, "", "write failed");
        return false;
    }
    buf_reset(&r->ob);
    return true;
}

static bool flush_rows(run *r)
{
    return write_batch(r, r->b);
}

static bool one_resource(run *r, const json_val *res)
{
    if (res->type != JSON_OBJECT) return true;
    const char *rt = json_get_str(res, "resourceType");
    if (rt && !strcmp(rt, "Bundle")) {
        const json_val *entries = json_get(res, "entry");
        for (uint32_t i = 0; entries && entries->type == JSON_ARRAY && i < entries->len; i++) {
            const json_val *e = json_get(&entries->u.a[i], "resource");
            if (e && !one_resource(r, e)) return false;
        }
        return true;
    }
    r->resources++;
    long n = sof_eval(r->v, r->ctx, res, r->b, &r->err);
    if (n < 0) return false;
    r->rows += n;
    return r->b->n_rows < BATCH_ROWS || flush_rows(r);
}

/* Lines straight out of a big read buffer (no per-line copy). */
typedef struct lines {
    FILE *in;
    char *buf;
    size_t cap, start, end;
    bool eof;
} lines;

static const char *next_line(lines *L, size_t *len)
{
    for (;;) {
        char *p = L->buf + L->start;
        char *nl = memchr(p, '\n', L->end - L->start);
        if (nl) {
            *len = (size_t)(nl - p);
            L->start = (size_t)(nl + 1 - L->buf);
            return p;
        }
        if (L->eof) {
            if (L->start == L->end) return NULL;
            *len = L->end - L->start;
            L->start = L->end;
            return p;
        }
        memmove(L->buf, p, L->end - L->start);   /* keep the partial line, refill */
        L->end -= L->start;
        L->start = 0;
        if (L->end == L->cap) {
            L->cap *= 2;
            L->buf = realloc(L->buf, L->cap);
            if (!L->buf) abort();
        }
        size_t k = fread(L->buf + L->end, 1, L->cap - L->end, L->in);
        if (k == 0) L->eof = true;
        L->end += k;
    }
}

/* The rest of the input from `from` (a pointer into the buffer) as one document. */
static bool run_whole(run *r, lines *L, const char *from, arena *a, const char *name)
{
    buf all = BUF_INIT;
    buf_put(&all, from, (size_t)(L->buf + L->end - from));
    buf_read_stream(&all, L->in);
    fl_err e = {0};
    json_val *v = json_parse(a, all.p, all.len, NULL, &e);
    buf_free(&all);
    if (!v) {
        fl_err_set(&r->err, 400, name, "%s: %s", name, e.msg);
        return false;
    }
    if (!one_resource(r, v) && !r->err.where[0]) snprintf(r->err.where, sizeof r->err.where, "%s", name);
    return r->err.status == 0;
}

/* err's where becomes "file:line" then the element the view failed on. */
static void err_at_line(fl_err *err, const char *name, long lineno)
{
    buf w = BUF_INIT;
    buf_printf(&w, "%s:%ld", name, lineno);
    if (err->where[0]) buf_printf(&w, ": %s", err->where);
    size_t n = w.len < sizeof err->where - 1 ? w.len : sizeof err->where - 1;
    memcpy(err->where, w.p, n);
    err->where[n] = 0;
    buf_free(&w);
}

/* NDJSON line by line; if the first line is not a whole JSON value the input is one JSON
 * document (a Bundle or a pretty-printed resource) and is read whole. */
static bool run_stream(run *r, FILE *in, const char *name)
{
    arena *a = arena_new(0);
    lines L = {.in = in, .cap = 1 << 20};
    L.buf = malloc(L.cap);
    if (!L.buf) abort();
    const char *line;
    size_t len;
    long lineno = 0, seen = 0;
    bool ok = true;
    while (ok && (line = next_line(&L, &len)) != NULL) {
        lineno++;
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
        if (!len) continue;
        arena_reset(a);
        fl_err e = {0};
        json_val *v = json_parse(a, line, len, NULL, &e);
        if (!v && seen == 0) {
            ok = run_whole(r, &L, line, a, name);
            break;
        }
        seen++;
        if (!v) {
            fl_err_set(&r->err, 400, name, "%s line %ld: %s", name, lineno, e.msg);
            ok = false;
        } else if (!one_resource(r, v)) {
            ok = false;
            err_at_line(&r->err, name, lineno);
        }
    }
    free(L.buf);
    arena_free(a);
    return ok;
}

/* ---- parallel NDJSON: chunks evaluated on workers, written in input order ---- */

/* One chunk of whole lines and, once done, its rows: as text for text formats (formatted
 * on the worker), else as batches (kept across reuses). */
typedef struct slot {
    const char *p;
    size_t len;
    long first_line;
    rows_batch **bs;
    int nb, cap_b;
    buf text;
    size_t text_rows;
    long resources, rows;
    bool done, ok;
    fl_err err;
} slot;

typedef struct pool {
    const sof_view *v;
    const char *name;
    bool text;                   /* workers format rows: tw is a copy of the run's writer */
    text_writer tw;
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* a chunk queued, a chunk done, closed */
    slot *ring;
    int n;
    long pushed, taken;          /* chunks handed out by the reader / taken by workers */
    bool closed, stop;           /* no more chunks / a failure: take no more */
} pool;

typedef struct worker {
    pool *pl;
    sof_ctx *ctx;
    arena *a;
} worker;

/* The batch the next resource's rows go into: a new one once the last holds BATCH_ROWS. */
static rows_batch *slot_batch(slot *s, const rows_schema *sc)
{
    if (s->nb && s->bs[s->nb - 1]->n_rows < BATCH_ROWS) return s->bs[s->nb - 1];
    if (s->nb == s->cap_b) {
        int cap = s->cap_b ? 2 * s->cap_b : 4;
        rows_batch **bs = realloc(s->bs, (size_t)cap * sizeof *bs);
        if (!bs) abort();
        memset(bs + s->cap_b, 0, (size_t)(cap - s->cap_b) * sizeof *bs);
        s->bs = bs;
        s->cap_b = cap;
    }
    if (!s->bs[s->nb]) s->bs[s->nb] = rows_batch_new(sc);
    return s->bs[s->nb++];
}

static bool slot_resource(worker *k, slot *s, const json_val *res)
{
    if (res->type != JSON_OBJECT) return true;
    const char *rt = json_get_str(res, "resourceType");
    if (rt && !strcmp(rt, "Bundle")) {
        const json_val *entries = json_get(res, "entry");
        for (uint32_t i = 0; entries && entries->type == JSON_ARRAY && i < entries->len; i++) {
            const json_val *e = json_get(&entries->u.a[i], "resource");
            if (e && !slot_resource(k, s, e)) return false;
        }
        return true;
    }
    s->resources++;
    long n = sof_eval(k->pl->v, k->ctx, res, slot_batch(s, sof_view_schema(k->pl->v)), &s->err);
    if (n < 0) return false;
    s->rows += n;
    return true;
}

/* Same lines, same errors as run_stream (the first line is known to be JSON). */
static bool run_slot(worker *k, slot *s)
{
    const char *name = k->pl->name;
    long lineno = s->first_line;
    for (const char *p = s->p, *end = s->p + s->len; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        const char *line = p;
        p = nl ? nl + 1 : end;
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
        if (!len) continue;
        arena_reset(k->a);
        fl_err e = {0};
        json_val *v = json_parse(k->a, line, len, NULL, &e);
        if (!v) {
            fl_err_set(&s->err, 400, name, "%s line %ld: %s", name, lineno, e.msg);
            return false;
        }
        if (!slot_resource(k, s, v)) {
            err_at_line(&s->err, name, lineno);
            return false;
        }
    }
    return true;
}

/* Text rows depend on the writer only through its row count (JSON's comma before every row
 * but the first): format as if rows came before, and the writer drops the first comma. */
static void format_slot(const pool *pl, slot *s)
{
    text_writer tw = pl->tw;
    tw.rows = 1;
    for (int i = 0; i < s->nb; i++) {
        s->text_rows += s->bs[i]->n_rows;
        text_batch(&tw, s->bs[i], &s->text);
        rows_batch_clear(s->bs[i]);
    }
    s->nb = 0;
}

static void *worker_main(void *arg)
{
    worker *k = arg;
    pool *pl = k->pl;
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        while (pl->taken == pl->pushed && !pl->closed && !pl->stop) pthread_cond_wait(&pl->cv, &pl->mu);
        if (pl->stop || pl->taken == pl->pushed) break;
        slot *s = &pl->ring[pl->taken++ % pl->n];
        pthread_mutex_unlock(&pl->mu);
        s->ok = run_slot(k, s);
        if (s->ok && pl->text) format_slot(pl, s);
        pthread_mutex_lock(&pl->mu);
        s->done = true;
        pthread_cond_broadcast(&pl->cv);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

/* Waits for the oldest chunk in flight and writes its rows (or takes its error). */
static bool write_oldest(run *r, pool *pl, long *written)
{
    slot *s = &pl->ring[*written % pl->n];
    pthread_mutex_lock(&pl->mu);
    while (!s->done) pthread_cond_wait(&pl->cv, &pl->mu);
    pthread_mutex_unlock(&pl->mu);
    (*written)++;
    cli_release_mapped(s->p, s->len);
    if (!s->ok) {
        r->err = s->err;
        return false;
    }
    r->resources += s->resources;
    r->rows += s->rows;
    if (s->text.len) {
        size_t skip = r->fmt == TEXT_JSON && r->tw.rows == 0;   /* see format_slot */
        r->tw.rows += s->text_rows;
        bool ok = !r->ob.len || fwrite(r->ob.p, 1, r->ob.len, r->out) == r->ob.len;   /* header, '[' */
        buf_reset(&r->ob);
        ok = ok && fwrite(s->text.p + skip, 1, s->text.len - skip, r->out) == s->text.len - skip;
        buf_reset(&s->text);
        if (!ok) {
            fl_err_set(&r->err, 500, "", "write failed");
            return false;
        }
    }
    for (int i = 0; i < s->nb; i++)
        if (!write_batch(r, s->bs[i])) return false;
    return true;
}

static void push_slot(pool *pl, const char *p, size_t len, long first_line)
{
    slot *s = &pl->ring[pl->pushed % pl->n];   /* free: written before we got here */
    s->p = p;
    s->len = len;
    s->first_line = first_line;
    s->nb = 0;
    s->resources = s->rows = 0;
    s->text_rows = 0;
    s->done = false;
    s->ok = true;
    memset(&s->err, 0, sizeof s->err);
    pthread_mutex_lock(&pl->mu);
    pl->pushed++;
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
}

/* Cuts the mapping into chunks, keeps at most pl->n in flight, writes them in order. */
static bool feed(run *r, pool *pl, const char *p, size_t len)
{
    long written = 0, line = 1;
    bool ok = true;
    for (size_t off = 0; ok && off < len;) {
        if (pl->pushed - written >= pl->n) {
            ok = write_oldest(r, pl, &written);
            continue;
        }
        size_t end = cli_cut_lines(p, len, off, CHUNK_BYTES);
        push_slot(pl, p + off, end - off, line);
        line += cli_count_lines(p + off, end - off);
        off = end;
    }
    pthread_mutex_lock(&pl->mu);
    pl->closed = true;
    pl->stop = !ok;
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    while (ok && written < pl->pushed) ok = write_oldest(r, pl, &written);
    return ok;
}

static bool run_parallel(run *r, const char *p, size_t len, const char *name, int jobs)
{
    pool pl = {.v = r->v, .name = name, .n = 2 * jobs + 2, .text = r->fmt != FMT_PARQUET,
               .tw = r->tw};
    pl.ring = calloc((size_t)pl.n, sizeof *pl.ring);
    if (!pl.ring) abort();
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.cv, NULL);
    worker ws[MAX_JOBS];
    pthread_t th[MAX_JOBS];
    int started = 0;
    for (int i = 0; i < jobs; i++)
        ws[i] = (worker){.pl = &pl, .ctx = sof_ctx_new(), .a = arena_new(PARSE_ARENA_BLOCK)};
    while (started < jobs && pthread_create(&th[started], NULL, worker_main, &ws[started]) == 0)
        started++;
    bool ok = started > 0;
    if (ok) ok = feed(r, &pl, p, len);
    else fl_err_set(&r->err, 500, name, "cannot start worker threads");
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < jobs; i++) {
        sof_ctx_free(ws[i].ctx);
        arena_free(ws[i].a);
    }
    for (int i = 0; i < pl.n; i++) {
        for (int j = 0; j < pl.ring[i].cap_b; j++)
            if (pl.ring[i].bs[j]) rows_batch_free(pl.ring[i].bs[j]);
        free(pl.ring[i].bs);
        buf_free(&pl.ring[i].text);
    }
    free(pl.ring);
    pthread_mutex_destroy(&pl.mu);
    pthread_cond_destroy(&pl.cv);
    return ok;
}

/* One named input: a mapped NDJSON file on workers when jobs > 1, else run_stream. */
static bool run_input(run *r, const char *name, int jobs)
{
    bool is_stdin = !strcmp(name, "-");
    cli_mapping m = {0};
    if (!is_stdin && jobs > 1 && cli_map_file(name, &m)) {
        if (cli_looks_ndjson(m.p, m.len, true)) {
            /* rows evaluated before this input must go out first */
            bool ok = flush_rows(r) && run_parallel(r, m.p, m.len, name, jobs);
            cli_unmap(&m);
            return ok;
        }
        cli_unmap(&m);
    }
    FILE *in = is_stdin ? stdin : fopen(name, "rb");
    if (!in) {
        fl_err_set(&r->err, 404, name, "cannot open %s", name);
        return false;
    }
    bool ok = run_stream(r, in, is_stdin ? "stdin" : name);
    if (!is_stdin) fclose(in);
    return ok;
}

static int usage(void)
{
    fprintf(stderr, "usage: fhirlake view run VIEW.json [INPUT...] [--format ndjson|csv|json|parquet] "
                    "[--out FILE] [--no-header]\n       [--jobs N] (parse/evaluate threads for "
                    "NDJSON files; default: online CPUs)\n");
    return 2;
}

static bool open_output(run *r, const char *out_path, bool header)
{
    if (r->fmt == FMT_PARQUET) {
#ifdef HAVE_PARQUET
        if (!out_path) {
            fl_err_set(&r->err, 400, "--out", "parquet output needs --out FILE");
            return false;
        }
        pq_options o;
        pq_options_init(&o);
        r->pq = pq_writer_open(out_path, sof_view_schema(r->v), &o, &r->err);
        return r->pq != NULL;
#else
        (void)header;
        fl_err_set(&r->err, 400, "--format", "parquet output not available in this build");
        return false;
#endif
    }
    r->out = out_path ? fopen(out_path, "wb") : stdout;
    if (!r->out) {
        fl_err_set(&r->err, 500, out_path, "cannot write %s", out_path);
        return false;
    }
    text_begin(&r->tw, (text_format)r->fmt, sof_view_schema(r->v), header, &r->ob);
    text_set_raw(&r->tw, sof_view_json_columns(r->v));
    return true;
}

static bool finish(run *r, bool ok)
{
    if (ok) ok = flush_rows(r);
#ifdef HAVE_PARQUET
    if (r->fmt == FMT_PARQUET) {
        if (!r->pq) return false;
        if (ok) return pq_writer_close(r->pq, NULL, &r->err) == 0;
        pq_writer_abort(r->pq);
        return false;
    }
#endif
    if (!r->out) return false;
    if (ok) {
        text_end(&r->tw, &r->ob);
        ok = !r->ob.len || fwrite(r->ob.p, 1, r->ob.len, r->out) == r->ob.len;
    }
    if (r->out != stdout) ok = (fclose(r->out) == 0) && ok;
    else fflush(stdout);
    return ok;
}

int cmd_view_run(int argc, char **argv)
{
    const char *view_path = NULL, *out_path = NULL, *fmt = "ndjson";
    const char *inputs[256];
    int nin = 0;
    bool header = true;
    int jobs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) fmt = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out_path = argv[++i];
        else if (!strcmp(argv[i], "--no-header")) header = false;
        else if (!strcmp(argv[i], "--jobs") && i + 1 < argc) jobs = atoi(argv[++i]);
        else if (argv[i][0] == '-' && argv[i][1]) return usage();
        else if (!view_path) view_path = argv[i];
        else if (nin < 256) inputs[nin++] = argv[i];
        else return usage();
    }
    if (!view_path) return usage();
    if (jobs <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        jobs = cpus > 0 ? (int)cpus : 1;
    }
    if (jobs > MAX_JOBS) jobs = MAX_JOBS;
    run r = {0};
    r.fmt = !strcmp(fmt, "parquet") ? FMT_PARQUET : text_format_parse(fmt);
    if (r.fmt < 0) {
        fprintf(stderr, "fhirlake view run: unknown format '%s'\n", fmt);
        return 2;
    }
    /* text keeps FHIR's own text for dates and decimals; parquet gets typed columns */
    sof_view *v = cli_load_view(view_path, r.fmt == FMT_PARQUET ? 0 : SOF_KEEP_TEXT, &r.err);
    if (!v) {
        fprintf(stderr, "fhirlake view run: %s: %s%s%s\n", view_path, r.err.msg,
                r.err.where[0] ? " at " : "", r.err.where);
        return 1;
    }
    r.v = v;
    r.ctx = sof_ctx_new();
    r.b = rows_batch_new(sof_view_schema(v));
    bool ok = open_output(&r, out_path, header);
    if (nin == 0) inputs[nin++] = "-";
    for (int i = 0; ok && i < nin; i++) ok = run_input(&r, inputs[i], jobs);
    ok = finish(&r, ok);
    if (!ok)
        fprintf(stderr, "fhirlake view run: %s%s%s\n", r.err.msg[0] ? r.err.msg : "failed",
                r.err.where[0] ? " at " : "", r.err.where);
    buf_free(&r.ob);
    rows_batch_free(r.b);
    sof_ctx_free(r.ctx);
    sof_free(v);
    return ok ? 0 : 1;
}
