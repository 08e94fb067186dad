/* cmd_view_run.c: `fhirlake view run VIEW.json [INPUT...] [--format ndjson|csv|json|parquet]
 * [--out FILE] [--no-header]`: evaluates a ViewDefinition over NDJSON files, Bundles or
 * single resources (stdin when no INPUT or "-") and writes the rows. Memory stays bounded:
 * NDJSON is read line by line, rows go out in batches of 1024 and arenas are reset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static bool flush_rows(run *r)
{
    if (r->b->n_rows == 0) return true;
#ifdef HAVE_PARQUET
    if (r->fmt == FMT_PARQUET) {
        bool ok = pq_write_batch(r->pq, r->b, &r->err) == 0;
        rows_batch_clear(r->b);
        return ok;
    }
#endif
    text_batch(&r->tw, r->b, &r->ob);
    rows_batch_clear(r->b);
    if (fwrite(r->ob.p, 1, r->ob.len, r->out) != r->ob.len) {
        fl_err_set(&r->err, 500, "", "write failed");
        return false;
    }
    buf_reset(&r->ob);
    return true;
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
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, L->in)) > 0) buf_put(&all, tmp, k);
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
            buf w = BUF_INIT;   /* "file:line" then the element the view failed on */
            buf_printf(&w, "%s:%ld", name, lineno);
            if (r->err.where[0]) buf_printf(&w, ": %s", r->err.where);
            size_t n = w.len < sizeof r->err.where - 1 ? w.len : sizeof r->err.where - 1;
            memcpy(r->err.where, w.p, n);
            r->err.where[n] = 0;
            buf_free(&w);
        }
    }
    free(L.buf);
    arena_free(a);
    return ok;
}

static int usage(void)
{
    fprintf(stderr, "usage: fhirlake view run VIEW.json [INPUT...] [--format ndjson|csv|json|parquet] "
                    "[--out FILE] [--no-header]\n");
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
        ok = fwrite(r->ob.p, 1, r->ob.len, r->out) == r->ob.len;
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
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) fmt = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out_path = argv[++i];
        else if (!strcmp(argv[i], "--no-header")) header = false;
        else if (argv[i][0] == '-' && argv[i][1]) return usage();
        else if (!view_path) view_path = argv[i];
        else if (nin < 256) inputs[nin++] = argv[i];
        else return usage();
    }
    if (!view_path) return usage();
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
    for (int i = 0; ok && i < nin; i++) {
        bool is_stdin = !strcmp(inputs[i], "-");
        FILE *in = is_stdin ? stdin : fopen(inputs[i], "rb");
        if (!in) {
            fl_err_set(&r.err, 404, inputs[i], "cannot open %s", inputs[i]);
            ok = false;
            break;
        }
        ok = run_stream(&r, in, is_stdin ? "stdin" : inputs[i]);
        if (!is_stdin) fclose(in);
    }
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
