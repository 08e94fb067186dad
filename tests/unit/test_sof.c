/* test_sof.c: unit tests for ViewDefinition validation (every rule, with the element path
 * in `where`), column typing, evaluation (forEach, forEachOrNull, repeat, unionAll,
 * constants, where, %rowIndex) and the text writers. */
#include <pthread.h>
#include <stdlib.h>

#include "format/text.h"
#include "sof/sof.h"
#include "t.h"

static arena *A;

static json_val *J(const char *s)
{
    fl_err e = {0};
    json_val *v = json_parse(A, s, strlen(s), NULL, &e);
    if (!v) fprintf(stderr, "bad fixture: %s: %s\n", s, e.msg);
    return v;
}

/* Compiles a view expected to fail; checks status and where. */
static void bad_view(const char *view, int status, const char *where)
{
    fl_err e = {0};
    sof_view *v = sof_compile(J(view), 0, &e);
    CHECK(v == NULL);
    if (v) {
        fprintf(stderr, "  accepted: %s\n", view);
        sof_free(v);
        return;
    }
    if (e.status != status || strcmp(e.where, where))
        fprintf(stderr, "  view %s\n  -> %d '%s' %s\n", view, e.status, e.where, e.msg);
    CHECK(e.status == status);
    CHECK_STR(e.where, where);
}

static void test_validation(void)
{
    bad_view("{}", 400, "resource");
    bad_view("[]", 400, "");
    bad_view("{\"resource\":\"Patient\"}", 400, "select");
    bad_view("{\"resource\":\"Nope\",\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"id\"}]}]}", 422, "resource");
    bad_view("{\"resource\":\"Patient\",\"select\":[]}", 400, "select");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"path\":\"id\"}]}]}", 400, "select[0].column[0].name");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"id\"}]},"
             "{\"column\":[{\"name\":\"1x\",\"path\":\"id\"}]}]}", 422, "select[1].column[0].name");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"id\"},"
             "{\"name\":\"a\",\"path\":\"id\"}]}]}", 422, "select");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"@@\"}]}]}", 400, "select[0].column[0].path");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"a\",\"path\":1}]}]}", 400, "select[0].column[0].path");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"forEach\":1}]}", 400, "select[0].forEach");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"forEach\":\"name\",\"forEachOrNull\":\"name\"}]}", 422, "select[0]");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"repeat\":[]}]}", 400, "select[0].repeat");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"unionAll\":[{\"column\":[{\"name\":\"a\",\"path\":\"id\"}]},"
             "{\"column\":[{\"name\":\"b\",\"path\":\"id\"}]}]}]}", 422, "select[0].unionAll[1]");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"%x\"}]}]}", 400, "select[0].column[0].path");
    bad_view("{\"resource\":\"Patient\",\"constant\":[{\"name\":\"x\"}],\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"%x\"}]}]}", 422, "constant[0]");
    bad_view("{\"resource\":\"Patient\",\"constant\":[{\"name\":\"x\",\"valueString\":1}],\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"%x\"}]}]}", 422, "constant[0]");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"id\"}]}],"
             "\"where\":[{\"path\":\"name.family\"}]}", 422, "where[0].path");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"id\",\"collection\":\"yes\"}]}]}", 400, "select[0].column[0].collection");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"nosuch(\"}]}]}]}", 400, "select[0].select[0].column[0].path");
    bad_view("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"id\",\"type\":\"int\"}]}]}", 422, "select[0].column[0].type");
}

static void test_schema_types(void)
{
    fl_err e = {0};
    sof_view *v = sof_compile(J("{\"resource\":\"Patient\",\"name\":\"pt\",\"select\":[{\"column\":["
        "{\"name\":\"id\",\"path\":\"getResourceKey()\"},{\"name\":\"bd\",\"path\":\"birthDate\"},"
        "{\"name\":\"act\",\"path\":\"active\"},{\"name\":\"mb\",\"path\":\"multipleBirthInteger\"},"
        "{\"name\":\"ts\",\"path\":\"getAidboxTs()\"},{\"name\":\"n\",\"path\":\"name.count()\"},"
        "{\"name\":\"dec\",\"path\":\"1.5\",\"type\":\"decimal\"},{\"name\":\"fam\",\"path\":\"name.family\",\"collection\":true},"
        "{\"name\":\"dt\",\"path\":\"deceasedDateTime\"},{\"name\":\"x\",\"path\":\"name.first()\"},"
        "{\"name\":\"bd2\",\"path\":\"birthDate.first()\"}]}]}"), 0, &e);
    CHECK(v != NULL);
    if (!v) { fprintf(stderr, "  %s\n", e.msg); return; }
    const rows_schema *s = sof_view_schema(v);
    CHECK(s->n == 11);
    CHECK(s->f[10].type == ROWS_DATE);
    CHECK(s->f[0].type == ROWS_STRING);
    CHECK(s->f[1].type == ROWS_DATE);
    CHECK(s->f[2].type == ROWS_BOOL);
    CHECK(s->f[3].type == ROWS_INT32);
    CHECK(s->f[4].type == ROWS_TIMESTAMP);
    CHECK(s->f[5].type == ROWS_INT32);
    CHECK(s->f[6].type == ROWS_DOUBLE);
    CHECK(s->f[7].type == ROWS_STRING && s->f[7].list);
    CHECK(s->f[8].type == ROWS_STRING);
    CHECK(s->f[9].type == ROWS_STRING);
    CHECK(sof_view_key_column(v) == 0);
    CHECK(sof_view_ts_column(v) == 4);
    CHECK_STR(sof_view_resource_type(v), "Patient");
    CHECK_STR(sof_view_name(v), "pt");
    CHECK_STR(sof_view_column_fhir_type(v, 1), "date");

    /* evaluate: typed values, server context ts */
    rows_batch *b = rows_batch_new(s);
    sof_ctx *c = sof_ctx_new();
    c->has_ts = true;
    c->ts_us = 86400000000LL;
    json_val *r = J("{\"resourceType\":\"Patient\",\"id\":\"p\",\"birthDate\":\"1970-01-03\","
                    "\"active\":true,\"multipleBirthInteger\":2,\"name\":[{\"family\":\"A\"},{\"family\":\"B\"}]}");
    CHECK(sof_eval(v, c, r, b, &e) == 1);
    CHECK(b->n_rows == 1);
    CHECK(rows_get(b, 1, 0)->i == 2);
    CHECK(rows_get(b, 2, 0)->i == 1);
    CHECK(rows_get(b, 3, 0)->i == 2);
    CHECK(rows_get(b, 4, 0)->i == 86400000000LL);
    CHECK(rows_get(b, 5, 0)->i == 2);
    CHECK(rows_get(b, 6, 0)->d == 1.5);
    CHECK(b->cols[7].offs[1] - b->cols[7].offs[0] == 2);
    CHECK(rows_is_null(b, 8, 0));
    const rows_value *x = rows_get(b, 9, 0);
    CHECK(x->s.len == 14 && !memcmp(x->s.p, "{\"family\":\"A\"}", 14));
    /* microseconds survive exactly, before 1970 too */
    c->ts_us = 1764143172206698LL;
    CHECK(sof_eval(v, c, r, b, &e) == 1 && rows_get(b, 4, 1)->i == 1764143172206698LL);
    c->ts_us = -1000001LL;
    CHECK(sof_eval(v, c, r, b, &e) == 1 && rows_get(b, 4, 2)->i == -1000001LL);
    /* another resource type: no rows */
    CHECK(sof_eval(v, c, J("{\"resourceType\":\"Observation\",\"id\":\"o\"}"), b, &e) == 0);
    rows_batch_free(b);
    sof_ctx_free(c);
    sof_free(v);
}

static char OUT[8192];

/* Runs a view (text mode) over resources; returns NDJSON text or "ERR:<status>:<where>". */
static const char *run(const char *view, const char *resources)
{
    fl_err e = {0};
    sof_view *v = sof_compile(J(view), SOF_KEEP_TEXT, &e);
    if (!v) {
        snprintf(OUT, sizeof OUT, "ERR:%d:%s", e.status, e.where);
        return OUT;
    }
    json_val *rs = J(resources);
    rows_batch *b = rows_batch_new(sof_view_schema(v));
    sof_ctx *c = sof_ctx_new();
    bool ok = true;
    for (uint32_t i = 0; ok && i < rs->len; i++) ok = sof_eval(v, c, &rs->u.a[i], b, &e) >= 0;
    if (!ok) snprintf(OUT, sizeof OUT, "ERR:%d:%s", e.status, e.where);
    else {
        buf o = BUF_INIT;
        text_writer w;
        text_begin(&w, TEXT_NDJSON, sof_view_schema(v), true, &o);
        text_set_raw(&w, sof_view_json_columns(v));
        text_batch(&w, b, &o);
        text_end(&w, &o);
        snprintf(OUT, sizeof OUT, "%s", o.p ? o.p : "");
        buf_free(&o);
    }
    rows_batch_free(b);
    sof_ctx_free(c);
    sof_free(v);
    return OUT;
}

static const char *PTS =
    "[{\"resourceType\":\"Patient\",\"id\":\"a\",\"name\":[{\"family\":\"F1\",\"given\":[\"g1\",\"g2\"]},"
    "{\"family\":\"F2\"}],\"contact\":[{\"telecom\":[{\"value\":\"t1\"}]}]},"
    "{\"resourceType\":\"Patient\",\"id\":\"b\"}]";

static void test_eval(void)
{
    CHECK_STR(run("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"id\",\"path\":\"id\"}]},"
                  "{\"forEach\":\"name\",\"column\":[{\"name\":\"f\",\"path\":\"family\"},{\"name\":\"i\",\"path\":\"%rowIndex\"}]}]}", PTS),
              "{\"id\":\"a\",\"f\":\"F1\",\"i\":0}\n{\"id\":\"a\",\"f\":\"F2\",\"i\":1}\n");
    CHECK_STR(run("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"id\",\"path\":\"id\"}]},"
                  "{\"forEachOrNull\":\"name\",\"column\":[{\"name\":\"f\",\"path\":\"family\"}]}]}", PTS),
              "{\"id\":\"a\",\"f\":\"F1\"}\n{\"id\":\"a\",\"f\":\"F2\"}\n{\"id\":\"b\",\"f\":null}\n");
    CHECK_STR(run("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"id\",\"path\":\"id\"}],"
                  "\"unionAll\":[{\"forEach\":\"name\",\"column\":[{\"name\":\"v\",\"path\":\"family\"}]},"
                  "{\"forEach\":\"contact.telecom\",\"column\":[{\"name\":\"v\",\"path\":\"value\"}]}]}]}", PTS),
              "{\"id\":\"a\",\"v\":\"F1\"}\n{\"id\":\"a\",\"v\":\"F2\"}\n{\"id\":\"a\",\"v\":\"t1\"}\n");
    CHECK_STR(run("{\"resource\":\"Patient\",\"constant\":[{\"name\":\"f\",\"valueString\":\"F2\"}],"
                  "\"select\":[{\"column\":[{\"name\":\"id\",\"path\":\"id\"}]}],\"where\":[{\"path\":\"name.family contains %f\"}]}", PTS),
              "{\"id\":\"a\"}\n");
    CHECK_STR(run("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"g\",\"path\":\"name.given\",\"collection\":true}]}]}", PTS),
              "{\"g\":[\"g1\",\"g2\"]}\n{\"g\":[]}\n");
    CHECK_STR(run("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"g\",\"path\":\"name.given\"}]}]}", PTS),
              "ERR:422:select[0].column[0]");
    CHECK_STR(run("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"g\",\"path\":\"id\"}]}],\"where\":[{\"path\":\"id\"}]}", PTS),
              "ERR:422:where[0].path");
    CHECK_STR(run("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"c\",\"path\":\"address.city\"},"
                  "{\"name\":\"l\",\"path\":\"address.line\",\"collection\":true},{\"name\":\"u\",\"path\":\"address.use\",\"type\":\"code\"}]}]}",
                  "[{\"resourceType\":\"Patient\",\"address\":[{\"line\":[\"a\",null],\"_line\":[null,{\"extension\":[]}],"
                  "\"_city\":{\"extension\":[]}}]}]"),
              "{\"c\":null,\"l\":[\"a\"],\"u\":null}\n");
    const char *qr = "[{\"resourceType\":\"QuestionnaireResponse\",\"id\":\"q\",\"item\":[{\"linkId\":\"1\","
                     "\"item\":[{\"linkId\":\"1.1\",\"answer\":[{\"item\":[{\"linkId\":\"1.1.1\"}]}]}]},{\"linkId\":\"2\"}]}]";
    CHECK_STR(run("{\"resource\":\"QuestionnaireResponse\",\"select\":[{\"repeat\":[\"item\",\"answer.item\"],"
                  "\"column\":[{\"name\":\"l\",\"path\":\"linkId\"}]}]}", qr),
              "{\"l\":\"1\"}\n{\"l\":\"1.1\"}\n{\"l\":\"1.1.1\"}\n{\"l\":\"2\"}\n");
}

static void test_text_formats(void)
{
    rows_schema *s = rows_schema_new();
    rows_schema_add(s, "s", ROWS_STRING, false);
    rows_schema_add(s, "d", ROWS_DATE, false);
    rows_schema_add(s, "b", ROWS_BOOL, false);
    rows_schema_add(s, "l", ROWS_INT32, true);
    rows_batch *b = rows_batch_new(s);
    rows_begin_row(b);
    rows_set_str(b, 0, "a,\"b\"", 5);
    rows_set_int(b, 1, 1);
    rows_set_int(b, 2, 1);
    rows_set_int(b, 3, 7);
    rows_set_int(b, 3, 8);
    rows_end_row(b);
    rows_begin_row(b);
    rows_end_row(b);
    buf o = BUF_INIT;
    text_writer w;
    text_begin(&w, TEXT_CSV, s, true, &o);
    text_batch(&w, b, &o);
    text_end(&w, &o);
    CHECK_STR(o.p, "s,d,b,l\n\"a,\"\"b\"\"\",1970-01-02,true,\"[7,8]\"\n,,,\n");
    buf_reset(&o);
    text_begin(&w, TEXT_JSON, s, true, &o);
    text_batch(&w, b, &o);
    text_end(&w, &o);
    CHECK_STR(o.p, "[{\"s\":\"a,\\\"b\\\"\",\"d\":\"1970-01-02\",\"b\":true,\"l\":[7,8]},"
                   "{\"s\":null,\"d\":null,\"b\":null,\"l\":[]}]\n");
    CHECK(text_format_parse("csv") == TEXT_CSV && text_format_parse("xml") == -1);
    buf_free(&o);
    rows_batch_free(b);
    rows_schema_free(s);
}

/* One compiled view, four threads with their own contexts and batches: same rows. */
typedef struct thr_arg {
    const sof_view *v;
    const json_val *res;
    long rows;
    int64_t sum;
} thr_arg;

static void *thr_main(void *p)
{
    thr_arg *t = p;
    sof_ctx *c = sof_ctx_new();
    rows_batch *b = rows_batch_new(sof_view_schema(t->v));
    fl_err e = {0};
    for (int k = 0; k < 2000; k++) {
        for (uint32_t i = 0; i < t->res->len; i++) t->rows += sof_eval(t->v, c, &t->res->u.a[i], b, &e);
        for (size_t r = 0; r < b->n_rows; r++) t->sum += rows_get(b, 1, r)->s.len;
        rows_batch_clear(b);
    }
    rows_batch_free(b);
    sof_ctx_free(c);
    return NULL;
}

static void test_threads(void)
{
    fl_err e = {0};
    sof_view *v = sof_compile(J("{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"id\",\"path\":\"id\"}]},"
                                "{\"forEach\":\"name\",\"column\":[{\"name\":\"f\",\"path\":\"family + given.join(',')\"}]}]}"), 0, &e);
    CHECK(v != NULL);
    if (!v) return;
    thr_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg){.v = v, .res = J(PTS)};
        pthread_create(&th[i], NULL, thr_main, &args[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK(args[i].rows == 2 * 2000);
        CHECK(args[i].sum == args[0].sum && args[i].sum == (int64_t)(7 + 2) * 2000);
    }
    sof_free(v);
}

int main(void)
{
    A = arena_new(0);
    RUN(test_validation);
    RUN(test_schema_types);
    RUN(test_eval);
    RUN(test_text_formats);
    RUN(test_threads);
    arena_free(A);
    return t_report("sof");
}
