#include "t.h"
#include "util/util.h"
#include "rows/rows.h"

static void test_arena(void)
{
    arena *a = arena_new(256);
    char *s = arena_strdup(a, "hello");
    CHECK_STR(s, "hello");
    void *big = arena_alloc(a, 10000);
    CHECK(big != NULL);
    for (int i = 0; i < 1000; i++) CHECK(arena_alloc(a, 24) != NULL);
    CHECK(arena_used(a) >= 10000);
    arena_reset(a);
    CHECK(arena_used(a) == 0);
    CHECK_STR(arena_printf(a, "%d-%s", 7, "x"), "7-x");
    arena_free(a);
}

static void test_buf(void)
{
    buf b = BUF_INIT;
    buf_puts(&b, "ab");
    buf_printf(&b, "%d", 42);
    buf_putc(&b, '!');
    CHECK_STR(b.p, "ab42!");
    CHECK(b.len == 5);
    buf_reset(&b);
    CHECK(b.len == 0 && b.p[0] == 0);
    buf_free(&b);
}

static void test_time(void)
{
    int64_t us;
    char out[40];
    CHECK(fl_time_parse("2026-06-09T10:15:00Z", 20, &us) == 0);
    fl_time_format(us, out);
    CHECK_STR(out, "2026-06-09T10:15:00Z");
    CHECK(fl_time_parse("1970-01-01T00:00:00.5+01:00", 27, &us) == 0);
    CHECK(us == -3600 * 1000000LL + 500000);
    fl_time_format(us, out);
    CHECK_STR(out, "1969-12-31T23:00:00.5Z");
    CHECK(fl_time_parse("1990", 4, &us) == 0);
    CHECK(fl_time_parse("1990-13", 7, &us) == -1);
    CHECK(fl_time_parse("2020-01-01T10:00", 16, &us) == 0);
    CHECK(fl_time_parse("2020-01-01x", 11, &us) == -1);
    CHECK(fl_days_from_civil(1970, 1, 1) == 0);
    CHECK(fl_days_from_civil(2000, 3, 1) == 11017);
    CHECK(fl_time_parse("2026-06-09T10:15:00.000120Z", 27, &us) == 0);
    CHECK(fl_time_format(us, out) == 26 && !strcmp(out, "2026-06-09T10:15:00.00012Z"));
    fl_time_format(us + 999880 - 120, out);
    CHECK_STR(out, "2026-06-09T10:15:00.99988Z");
    fl_time_format(us - 120 + 123456, out);
    CHECK_STR(out, "2026-06-09T10:15:00.123456Z");
    CHECK(fl_time_parse("0005-03-01T01:02:03Z", 20, &us) == 0);
    fl_time_format(us, out);
    CHECK_STR(out, "0005-03-01T01:02:03Z");
    fl_time_format(fl_days_from_civil(12345, 1, 2) * 86400 * 1000000LL + 1, out);
    CHECK_STR(out, "12345-01-02T00:00:00.000001Z");
}

static void test_uuid(void)
{
    char a[37], b[37];
    fl_uuid4(a);
    fl_uuid4(b);
    CHECK(strlen(a) == 36 && a[14] == '4');
    CHECK(strcmp(a, b) != 0);
}

static void test_err(void)
{
    fl_err e;
    fl_err_clear(&e);
    CHECK(FL_OK(&e));
    fl_err_set(&e, 400, "Patient.id", "bad id '%s'", "x y");
    CHECK(e.status == 400);
    CHECK_STR(e.where, "Patient.id");
    CHECK_STR(e.msg, "bad id 'x y'");
    /* wrapping an error in context: the arguments point into e itself */
    fl_err_set(&e, 422, e.where, "corrupt commit file: %s (at %s)", e.msg, e.where);
    CHECK(e.status == 422);
    CHECK_STR(e.where, "Patient.id");
    CHECK_STR(e.msg, "corrupt commit file: bad id 'x y' (at Patient.id)");
}

static void test_rows(void)
{
    rows_schema *s = rows_schema_new();
    rows_schema_add(s, "id", ROWS_STRING, false);
    rows_schema_add(s, "n", ROWS_INT64, false);
    rows_schema_add(s, "given", ROWS_STRING, true);
    rows_batch *b = rows_batch_new(s);
    for (int r = 0; r < 1000; r++) {
        rows_begin_row(b);
        rows_set_str(b, 0, "abc", 3);
        if (r % 2) rows_set_int(b, 1, r);
        for (int k = 0; k < r % 3; k++) rows_set_str(b, 2, "g", 1);
        rows_end_row(b);
    }
    CHECK(b->n_rows == 1000);
    CHECK(rows_is_null(b, 1, 0));
    CHECK(!rows_is_null(b, 1, 1) && rows_get(b, 1, 1)->i == 1);
    CHECK(rows_is_null(b, 2, 0));
    CHECK(b->cols[2].offs[3] - b->cols[2].offs[2] == 2);
    CHECK(rows_get(b, 0, 999)->s.len == 3);
    CHECK(rows_schema_find(s, "given") == 2);
    rows_batch_clear(b);
    CHECK(b->n_rows == 0);
    rows_batch_free(b);
    rows_schema_free(s);
}

int main(void)
{
    RUN(test_arena);
    RUN(test_buf);
    RUN(test_time);
    RUN(test_uuid);
    RUN(test_err);
    RUN(test_rows);
    return t_report("util");
}
