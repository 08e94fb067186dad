/* cmd_sof_test.c: `fhirlake sof-test FILE... [--report REPORT.json] [-v]` runs SQL-on-FHIR
 * v2 conformance test files (the official suite format: resources + tests with expect /
 * expectCount / expectError), compares rows as multisets, writes the official test-report
 * format and prints "N passed, N failed". Exit 1 on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../format/text.h"
#include "../sof/sof.h"
#include "cli.h"

static char *read_file(const char *path, size_t *len)
{
    buf b = BUF_INIT;
    if (buf_read_file(&b, path)) {
        buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return buf_detach(&b);
}

/* Runs the view over the file's resources; the rows come back as a JSON array DOM. */
static bool run_view(const sof_view *v, const json_val *resources, arena *a, json_val **rows,
                     fl_err *err)
{
    rows_batch *b = rows_batch_new(sof_view_schema(v));
    sof_ctx *c = sof_ctx_new();
    bool ok = true;
    for (uint32_t i = 0; ok && resources && i < resources->len; i++)
        ok = sof_eval(v, c, &resources->u.a[i], b, err) >= 0;
    if (ok) {
        buf out = BUF_INIT;
        jw w;
        jw_init(&w, &out);
        jw_arr_begin(&w);
        for (size_t r = 0; r < b->n_rows; r++) text_row_json(&w, b, sof_view_json_columns(v), r);
        jw_arr_end(&w);
        *rows = json_parse(a, out.p, out.len, NULL, err);
        ok = *rows != NULL;
        buf_free(&out);
    }
    sof_ctx_free(c);
    rows_batch_free(b);
    return ok;
}

/* Multiset comparison: every expected row matches a distinct actual row. */
static bool rows_match(const json_val *got, const json_val *want)
{
    if (!want || want->type != JSON_ARRAY || got->len != want->len) return false;
    bool *used = calloc(got->len + 1, 1);
    bool ok = true;
    for (uint32_t i = 0; ok && i < want->len; i++) {
        ok = false;
        for (uint32_t k = 0; k < got->len && !ok; k++)
            if (!used[k] && json_equal(&got->u.a[k], &want->u.a[i])) used[k] = ok = true;
    }
    free(used);
    return ok;
}

static bool run_test(const json_val *t, const json_val *resources, arena *a, bool verbose,
                     const char *file)
{
    const char *title = json_get_str(t, "title");
    const json_val *view = json_get(t, "view");
    bool want_err = json_get(t, "expectError") != NULL;
    fl_err err = {0};
    sof_view *v = view ? sof_compile(view, SOF_KEEP_TEXT, &err) : NULL;
    json_val *rows = NULL;
    bool ran = v && run_view(v, resources, a, &rows, &err);
    bool pass;
    if (want_err) pass = !ran;
    else if (!ran) pass = false;
    else if (json_get(t, "expectCount")) {
        int64_t n = -1;
        json_num_int64(json_get(t, "expectCount"), &n);
        pass = (int64_t)rows->len == n;
    } else pass = rows_match(rows, json_get(t, "expect"));
    if (!pass && verbose) {
        fprintf(stderr, "FAIL %s: %s\n", file, title ? title : "?");
        if (!ran) fprintf(stderr, "  error: %s (where: %s)\n", err.msg, err.where);
        else if (want_err) fprintf(stderr, "  expected an error, got %u rows\n", rows->len);
        else {
            buf o = BUF_INIT;
            json_write(&o, rows, false);
            fprintf(stderr, "  got: %s\n", o.p);
            buf_reset(&o);
            json_write(&o, json_get(t, "expect"), false);
            fprintf(stderr, "  want: %s\n", o.p);
            buf_free(&o);
        }
    }
    sof_free(v);
    return pass;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int run_file(const char *path, jw *rep, int *npass, int *nfail, bool verbose)
{
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        fprintf(stderr, "fhirlake sof-test: cannot read %s\n", path);
        return -1;
    }
    arena *a = arena_new(0);
    fl_err err = {0};
    json_val *doc = json_parse(a, text, len, NULL, &err);
    const json_val *tests = doc ? json_get(doc, "tests") : NULL;
    if (!tests || tests->type != JSON_ARRAY) {
        fprintf(stderr, "fhirlake sof-test: %s: %s\n", path, doc ? "no tests array" : err.msg);
        arena_free(a);
        free(text);
        return -1;
    }
    const json_val *resources = json_get(doc, "resources");
    jw_key(rep, base_name(path));
    jw_obj_begin(rep);
    jw_key(rep, "tests");
    jw_arr_begin(rep);
    for (uint32_t i = 0; i < tests->len; i++) {
        const json_val *t = &tests->u.a[i];
        bool pass = run_test(t, resources, a, verbose, base_name(path));
        *(pass ? npass : nfail) += 1;
        jw_obj_begin(rep);
        jw_key(rep, "name");
        const char *title = json_get_str(t, "title");
        jw_str(rep, title ? title : "");
        jw_key(rep, "result");
        jw_obj_begin(rep);
        jw_key(rep, "passed");
        jw_bool(rep, pass);
        jw_obj_end(rep);
        jw_obj_end(rep);
    }
    jw_arr_end(rep);
    jw_obj_end(rep);
    arena_free(a);
    free(text);
    return 0;
}

int cmd_sof_test(int argc, char **argv)
{
    const char *report = NULL;
    bool verbose = true;
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--report") && i + 1 < argc) report = argv[++i];
        else if (!strcmp(argv[i], "-q")) verbose = false;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: fhirlake sof-test FILE... [--report REPORT.json] [-q]\n");
            return 2;
        } else nfiles++;
    }
    if (!nfiles) {
        fprintf(stderr, "usage: fhirlake sof-test FILE... [--report REPORT.json] [-q]\n");
        return 2;
    }
    buf out = BUF_INIT;
    jw rep;
    jw_init(&rep, &out);
    jw_obj_begin(&rep);
    int npass = 0, nfail = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--report")) { i++; continue; }
        if (argv[i][0] == '-') continue;
        const char *b = base_name(argv[i]);
        if (!strcmp(b, "tests.schema.json")) continue;   /* the suite's schema, not tests */
        if (run_file(argv[i], &rep, &npass, &nfail, verbose) < 0) bad++;
    }
    jw_obj_end(&rep);
    buf_putc(&out, '\n');
    if (report) {
        FILE *f = fopen(report, "wb");
        if (!f || fwrite(out.p, 1, out.len, f) != out.len) {
            fprintf(stderr, "fhirlake sof-test: cannot write %s\n", report);
            bad++;
        }
        if (f) fclose(f);
    }
    buf_free(&out);
    printf("%d passed, %d failed\n", npass, nfail);
    return (nfail || bad) ? 1 : 0;
}
