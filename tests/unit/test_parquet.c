/* test_parquet: unit tests of the parquet room: thrift compact round trips, the RLE hybrid
 * codec, round trips of every rows type (nulls, lists, codecs, row groups, dictionary
 * fallback), statistics, schema text, nested JSON records (Delta checkpoint-like) and
 * error handling. Files go to a temporary directory removed at the end. */
#include "format/parquet.h"
#include "format/parquet_int.h"
#include "json/json.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static void test_thrift_roundtrip(void)
{
    buf b = BUF_INIT;
    tw w;
    tw_init(&w, &b);
    tw_i32(&w, 1, -5);
    tw_i64(&w, 2, 1234567890123LL);
    tw_bool(&w, 3, true);
    tw_bool(&w, 4, false);
    tw_str(&w, 5, "hello");
    tw_struct_begin(&w, 40); /* delta > 15: long field header */
    tw_i32(&w, 1, 7);
    tw_struct_end(&w);
    tw_list_begin(&w, 41, TH_I32, 20);
    for (int i = 0; i < 20; i++) tw_elem_i32(&w, i * 1000 - 3);
    tw_list_begin(&w, 42, TH_STRUCT, 2);
    for (int i = 0; i < 2; i++) {
        tw_elem_struct_begin(&w);
        tw_str(&w, 1, i ? "b" : "a");
        tw_struct_end(&w);
    }
    tw_struct_end(&w);
    arena *a = arena_new(0);
    th_val v;
    fl_err e;
    fl_err_clear(&e);
    size_t used = 0;
    CHECK(th_parse(a, (const uint8_t *)b.p, b.len, &used, &v, &e) == 0);
    CHECK(used == b.len);
    CHECK(th_int(&v, 1, 0) == -5);
    CHECK(th_int(&v, 2, 0) == 1234567890123LL);
    CHECK(th_int(&v, 3, 9) == 1);
    CHECK(th_int(&v, 4, 9) == 0);
    CHECK_STR(th_str(a, &v, 5), "hello");
    CHECK(th_int(th_get(&v, 40), 1, 0) == 7);
    const th_val *l = th_get(&v, 41);
    CHECK(l && l->n == 20 && l->u.items[19].u.i == 18997);
    const th_val *sl = th_get(&v, 42);
    CHECK(sl && sl->n == 2);
    if (sl && sl->n == 2) CHECK_STR(th_str(a, &sl->u.items[1], 1), "b");
    /* truncated input is an error, not a crash */
    CHECK(th_parse(a, (const uint8_t *)b.p, b.len - 3, NULL, &v, &e) == -1);
    CHECK(!FL_OK(&e));
    arena_free(a);
    buf_free(&b);
}

static void rle_case(const uint32_t *v, size_t n, int bw)
{
    buf b = BUF_INIT;
    pq_rle_encode(&b, v, n, bw);
    uint32_t *out = calloc(n + 1, sizeof *out);
    CHECK(pq_rle_decode((const uint8_t *)b.p, b.len, bw, out, n) == 0);
    CHECK(memcmp(out, v, n * sizeof *v) == 0);
    free(out);
    buf_free(&b);
}

static void test_rle_hybrid(void)
{
    uint32_t v[5000];
    srand(7);
    for (int bw = 1; bw <= 20; bw++) {
        uint32_t mask = (1u << bw) - 1;
        for (size_t i = 0; i < 5000; i++) v[i] = (uint32_t)rand() & mask;
        rle_case(v, 5000, bw);
        /* runs after odd-length bit-packed stretches */
        for (size_t i = 0; i < 5000; i++) v[i] = (i % 37 < 3) ? (uint32_t)i & mask : (uint32_t)(i / 100) & mask;
        rle_case(v, 5000, bw);
        rle_case(v, 1, bw);
        rle_case(v, 13, bw);
    }
    for (size_t i = 0; i < 5000; i++) v[i] = 0;
    rle_case(v, 5000, 0);
    /* the 16-bit (levels) instance gives the same stream as the 32-bit one */
    uint16_t lv[3000];
    for (size_t i = 0; i < 3000; i++) lv[i] = (uint16_t)(i % 97 < 40 ? 3 : (i * 7) % 4), v[i] = lv[i];
    buf b16 = BUF_INIT, b32 = BUF_INIT;
    pq_rle_encode16(&b16, lv, 3000, 2);
    pq_rle_encode(&b32, v, 3000, 2);
    CHECK(b16.len == b32.len && memcmp(b16.p, b32.p, b16.len) == 0);
    buf_free(&b16);
    buf_free(&b32);
    /* a run of 1000 identical values encodes in a few bytes */
    for (size_t i = 0; i < 1000; i++) v[i] = 3;
    buf b = BUF_INIT;
    pq_rle_encode(&b, v, 1000, 2);
    CHECK(b.len <= 4);
    buf_free(&b);
    /* bad input */
    uint32_t out[8];
    CHECK(pq_rle_decode((const uint8_t *)"\x03", 1, 8, out, 8) == -1);
}

static rows_schema *all_types_schema(void)
{
    rows_schema *s = rows_schema_new();
    rows_schema_add(s, "s", ROWS_STRING, false);
    rows_schema_add(s, "b", ROWS_BOOL, false);
    rows_schema_add(s, "i", ROWS_INT32, false);
    rows_schema_add(s, "l", ROWS_INT64, false);
    rows_schema_add(s, "d", ROWS_DOUBLE, false);
    rows_schema_add(s, "dec", ROWS_DECIMAL, false);
    rows_schema_add(s, "dt", ROWS_DATE, false);
    rows_schema_add(s, "ts", ROWS_TIMESTAMP, false);
    rows_schema_add(s, "tags", ROWS_STRING, true);
    rows_schema_add(s, "nums", ROWS_INT64, true);
    return s;
}

static const char *decs[] = {"1.5", "-0.000000000000000001", "12345678901234567890.123456789012345678",
                             "0", "-99.25"};
static const char *decs_out[] = {"1.500000000000000000", "-0.000000000000000001",
                                 "12345678901234567890.123456789012345678", "0.000000000000000000",
                                 "-99.250000000000000000"};

static void fill_row(rows_batch *b, size_t i)
{
    char tmp[64];
    rows_begin_row(b);
    if (i % 7 != 3) { /* every column null on some rows */
        int n = snprintf(tmp, sizeof tmp, "str-%zu", i % 50);
        rows_set_str(b, 0, tmp, (size_t)n);
        rows_set_int(b, 1, i % 3 == 0);
        rows_set_int(b, 2, (int64_t)i - 500);
        rows_set_int(b, 3, (int64_t)i * 1000000007LL);
        rows_set_double(b, 4, (double)i / 4.0 - 10);
        rows_set_str(b, 5, decs[i % 5], strlen(decs[i % 5]));
        rows_set_int(b, 6, (int64_t)i - 1000);
        rows_set_int(b, 7, 1700000000000000LL + (int64_t)i);
    }
    for (size_t k = 0; k < i % 4; k++) {
        int n = snprintf(tmp, sizeof tmp, "t%zu", (i + k) % 9);
        rows_set_str(b, 8, tmp, (size_t)n);
    }
    for (size_t k = 0; k < i % 3; k++) rows_set_int(b, 9, (int64_t)(i * 10 + k));
    rows_end_row(b);
}

static bool check_row(const rows_batch *b, size_t r, size_t i)
{
    bool ok = true;
    char tmp[64];
    if (i % 7 == 3) {
        for (size_t c = 0; c < 8; c++) ok &= rows_is_null(b, c, r);
    } else {
        int n = snprintf(tmp, sizeof tmp, "str-%zu", i % 50);
        const rows_value *v = rows_get(b, 0, r);
        ok &= v->s.len == (uint32_t)n && !memcmp(v->s.p, tmp, (size_t)n);
        ok &= rows_get(b, 1, r)->i == (i % 3 == 0);
        ok &= rows_get(b, 2, r)->i == (int64_t)i - 500;
        ok &= rows_get(b, 3, r)->i == (int64_t)i * 1000000007LL;
        ok &= rows_get(b, 4, r)->d == (double)i / 4.0 - 10;
        v = rows_get(b, 5, r);
        ok &= v->s.len == strlen(decs_out[i % 5]) && !memcmp(v->s.p, decs_out[i % 5], v->s.len);
        ok &= rows_get(b, 6, r)->i == (int64_t)i - 1000;
        ok &= rows_get(b, 7, r)->i == 1700000000000000LL + (int64_t)i;
    }
    const rows_col *t = &b->cols[8];
    ok &= t->offs[r + 1] - t->offs[r] == i % 4;
    for (size_t k = 0; k < i % 4 && ok; k++) {
        int n = snprintf(tmp, sizeof tmp, "t%zu", (i + k) % 9);
        ok &= t->vals[t->offs[r] + k].s.len == (uint32_t)n && !memcmp(t->vals[t->offs[r] + k].s.p, tmp, (size_t)n);
    }
    const rows_col *nu = &b->cols[9];
    ok &= nu->offs[r + 1] - nu->offs[r] == i % 3;
    for (size_t k = 0; k < i % 3 && ok; k++) ok &= nu->vals[nu->offs[r] + k].i == (int64_t)(i * 10 + k);
    return ok;
}

static bool use_v2; /* roundtrip() writes data page v2 when set */

static void roundtrip(pq_codec codec, size_t nrows, size_t rg_bytes, size_t dict_bytes, bool dict)
{
    rows_schema *s = all_types_schema();
    pq_options o;
    pq_options_init(&o);
    o.codec = codec;
    if (rg_bytes) o.row_group_bytes = rg_bytes;
    if (dict_bytes) o.dict_bytes = dict_bytes;
    o.page_bytes = 4096;
    o.dictionary = dict;
    o.page_v2 = use_v2;
    fl_err e;
    fl_err_clear(&e);
    const char *path = tmp_path("rt.parquet");
    pq_writer *w = pq_writer_open(path, s, &o, &e);
    CHECK(w != NULL);
    if (!w) return;
    rows_batch *b = rows_batch_new(s);
    for (size_t i = 0; i < nrows; i++) {
        fill_row(b, i);
        if (b->n_rows == 333) {
            CHECK(pq_write_batch(w, b, &e) == 0);
            rows_batch_clear(b);
        }
    }
    CHECK(pq_write_batch(w, b, &e) == 0);
    pq_file_stats st;
    CHECK(pq_writer_close(w, &st, &e) == 0);
    CHECK(st.num_rows == (int64_t)nrows);
    CHECK(access(path, F_OK) == 0);
    if (rg_bytes) CHECK(st.num_row_groups > 1);
    if (nrows >= 100) {
        size_t last = nrows - 1;
        while (last % 7 == 3) last--;
        CHECK(st.cols[2].has_minmax && st.cols[2].min.i == -500 && st.cols[2].max.i == (int64_t)last - 500);
        CHECK(st.cols[0].null_count == (int64_t)((nrows + 3) / 7));
        CHECK(st.cols[0].has_minmax && st.cols[0].min.s.len == 5 && !memcmp(st.cols[0].min.s.p, "str-0", 5));
        CHECK(st.cols[5].has_minmax && !strcmp(st.cols[5].min.s.p, "-99.250000000000000000"));
        CHECK(st.cols[1].has_minmax && st.cols[1].min.i == 0 && st.cols[1].max.i == 1);
        CHECK(!st.cols[8].has_minmax);
    }
    pq_file_stats_free(&st);
    pq_reader *r = pq_reader_open(path, &e);
    CHECK(r != NULL);
    if (r) {
        CHECK(pq_reader_num_rows(r) == (int64_t)nrows);
        rows_schema *fs = pq_reader_rows_schema(r);
        CHECK(fs->n == s->n);
        for (size_t i = 0; i < fs->n && i < s->n; i++)
            CHECK(fs->f[i].type == s->f[i].type && fs->f[i].list == s->f[i].list &&
                  !strcmp(fs->f[i].name, s->f[i].name));
        rows_schema_free(fs);
        rows_batch *rb = rows_batch_new(s);
        size_t seen = 0;
        bool all_ok = true;
        int rc;
        while ((rc = pq_read_batch(r, rb, &e)) == 1)
            for (size_t k = 0; k < rb->n_rows; k++, seen++) all_ok &= check_row(rb, k, seen);
        CHECK(rc == 0);
        CHECK(seen == nrows);
        CHECK(all_ok);
        rows_batch_free(rb);
        pq_reader_close(r);
    }
    rows_batch_free(b);
    rows_schema_free(s);
    unlink(path);
}

static void test_roundtrip_codecs(void)
{
    roundtrip(PQ_SNAPPY, 2000, 0, 0, true);
    roundtrip(PQ_ZSTD, 2000, 0, 0, true);
    roundtrip(PQ_GZIP, 2000, 0, 0, true);
    roundtrip(PQ_UNCOMPRESSED, 2000, 0, 0, true);
}

static void test_roundtrip_row_groups_and_fallback(void)
{
    roundtrip(PQ_SNAPPY, 5000, 20000, 0, true);   /* many row groups */
    roundtrip(PQ_SNAPPY, 3000, 0, 64, true);      /* dictionary falls back to plain */
    roundtrip(PQ_ZSTD, 3000, 30000, 0, false);    /* plain only */
    roundtrip(PQ_SNAPPY, 1, 0, 0, true);
}

static void test_roundtrip_page_v2(void)
{
    use_v2 = true;
    roundtrip(PQ_SNAPPY, 3000, 30000, 0, true);
    roundtrip(PQ_ZSTD, 2000, 0, 64, true);
    roundtrip(PQ_UNCOMPRESSED, 500, 0, 0, false);
    use_v2 = false;
}

static void test_empty_file(void)
{
    roundtrip(PQ_SNAPPY, 0, 0, 0, true);
}

static void test_projection_missing_column(void)
{
    rows_schema *s = rows_schema_new();
    rows_schema_add(s, "a", ROWS_INT32, false);
    fl_err e;
    fl_err_clear(&e);
    const char *path = tmp_path("proj.parquet");
    pq_writer *w = pq_writer_open(path, s, NULL, &e);
    rows_batch *b = rows_batch_new(s);
    for (int i = 0; i < 10; i++) {
        rows_begin_row(b);
        rows_set_int(b, 0, i);
        rows_end_row(b);
    }
    CHECK(pq_write_batch(w, b, &e) == 0);
    CHECK(pq_writer_close(w, NULL, &e) == 0);
    rows_schema *want = rows_schema_new();
    rows_schema_add(want, "missing", ROWS_STRING, false);
    rows_schema_add(want, "a", ROWS_INT64, false); /* INT32 widens to INT64 */
    pq_reader *r = pq_reader_open(path, &e);
    rows_batch *rb = rows_batch_new(want);
    CHECK(pq_read_batch(r, rb, &e) == 1);
    CHECK(rb->n_rows == 10 && rows_is_null(rb, 0, 5) && rows_get(rb, 1, 7)->i == 7);
    rows_batch_free(rb);
    rows_schema *bad = rows_schema_new();
    rows_schema_add(bad, "a", ROWS_STRING, false);
    rb = rows_batch_new(bad);
    pq_reader_rewind(r);
    CHECK(pq_read_batch(r, rb, &e) == -1);
    CHECK(strstr(e.msg, "another type") != NULL);
    rows_batch_free(rb);
    rows_schema_free(bad);
    pq_reader_close(r);
    rows_schema_free(want);
    rows_batch_free(b);
    rows_schema_free(s);
    unlink(path);
}

typedef struct scan_seen {
    int n, bad;
    int64_t last;
} scan_seen;

static int scan_check(void *ctx, int64_t row, const char *p, size_t len)
{
    scan_seen *s = ctx;
    char want[32];
    int wl = snprintf(want, sizeof want, "key-%06lld", (long long)row);
    if (row % 7 == 3 || row <= s->last || (size_t)wl != len || memcmp(p, want, len)) s->bad++;
    s->last = row;
    s->n++;
    return 0;
}

/* pq_scan_strings: every non-null value with its row position in the file, across row
 * groups and the dictionary -> PLAIN fallback; absent / non-string columns refused. */
static void test_scan_strings(void)
{
    rows_schema *s = rows_schema_new();
    rows_schema_add(s, "n", ROWS_INT64, false);
    rows_schema_add(s, "k", ROWS_STRING, false);
    fl_err e;
    fl_err_clear(&e);
    const char *path = tmp_path("scan.parquet");
    pq_options o;
    pq_options_init(&o);
    o.row_group_bytes = 100000;  /* several row groups */
    o.dict_bytes = 20000;        /* the dictionary overflows: PLAIN pages follow */
    pq_writer *w = pq_writer_open(path, s, &o, &e);
    rows_batch *b = rows_batch_new(s);
    for (int i = 0; i < 20000; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "key-%06d", i);
        rows_begin_row(b);
        rows_set_int(b, 0, i);
        if (i % 7 != 3) rows_set_str(b, 1, k, (size_t)kl);  /* some nulls */
        rows_end_row(b);
        if (b->n_rows == 1000) {
            CHECK(pq_write_batch(w, b, &e) == 0);
            rows_batch_clear(b);
        }
    }
    CHECK(pq_writer_close(w, NULL, &e) == 0);
    pq_reader *r = pq_reader_open(path, &e);
    CHECK(r && pq_reader_num_row_groups(r) > 1);
    scan_seen seen = {0, 0, -1};
    CHECK(pq_scan_strings(r, "k", scan_check, &seen, &e) == 0);
    CHECK(seen.bad == 0 && seen.n == 20000 - 20000 / 7 - (20000 % 7 > 3));
    CHECK(pq_scan_strings(r, "n", scan_check, &seen, &e) == -1 && e.status == 400);
    CHECK(pq_scan_strings(r, "zz", scan_check, &seen, &e) == -1 && e.status == 400);
    pq_reader_close(r);
    rows_batch_free(b);
    rows_schema_free(s);
    unlink(path);
}

static void test_long_strings_have_no_minmax(void)
{
    rows_schema *s = rows_schema_new();
    rows_schema_add(s, "t", ROWS_STRING, false);
    fl_err e;
    fl_err_clear(&e);
    const char *path = tmp_path("long.parquet");
    pq_writer *w = pq_writer_open(path, s, NULL, &e);
    rows_batch *b = rows_batch_new(s);
    static char big[10000];
    memset(big, 'x', sizeof big);
    rows_begin_row(b);
    rows_set_str(b, 0, "short", 5);
    rows_end_row(b);
    rows_begin_row(b);
    rows_set_str(b, 0, big, sizeof big);
    rows_end_row(b);
    CHECK(pq_write_batch(w, b, &e) == 0);
    pq_file_stats st;
    CHECK(pq_writer_close(w, &st, &e) == 0);
    CHECK(!st.cols[0].has_minmax && st.cols[0].null_count == 0 && st.num_rows == 2);
    CHECK(st.file_size < 8000); /* the 10 kB value compresses; it is not copied to the footer */
    pq_file_stats_free(&st);
    pq_reader *r = pq_reader_open(path, &e);
    rows_batch *rb = rows_batch_new(s);
    CHECK(pq_read_batch(r, rb, &e) == 1 && rb->n_rows == 2 && rows_get(rb, 0, 1)->s.len == sizeof big);
    rows_batch_free(rb);
    pq_reader_close(r);
    rows_batch_free(b);
    rows_schema_free(s);
    unlink(path);
}

static void test_bad_decimal_keeps_writer(void)
{
    rows_schema *s = rows_schema_new();
    rows_schema_add(s, "id", ROWS_STRING, false);
    rows_schema_add(s, "x", ROWS_DECIMAL, false);
    pq_options o;
    pq_options_init(&o);
    o.decimal_precision = 10;
    o.decimal_scale = 2;
    fl_err e;
    fl_err_clear(&e);
    const char *path = tmp_path("dec.parquet");
    pq_writer *w = pq_writer_open(path, s, &o, &e);
    rows_batch *b = rows_batch_new(s);
    rows_begin_row(b);
    rows_set_str(b, 0, "a", 1);
    rows_set_str(b, 1, "123456789.5", 11); /* 11 digits at scale 2: out of range */
    rows_end_row(b);
    CHECK(pq_write_batch(w, b, &e) == -1);
    CHECK(strstr(e.msg, "out of range") != NULL);
    rows_batch_clear(b);
    rows_begin_row(b);
    rows_set_str(b, 0, "b", 1);
    rows_set_str(b, 1, "-1.235", 6); /* rounds to -1.24 */
    rows_end_row(b);
    CHECK(pq_write_batch(w, b, &e) == 0);
    CHECK(pq_writer_close(w, NULL, &e) == 0);
    pq_reader *r = pq_reader_open(path, &e);
    rows_batch *rb = rows_batch_new(s);
    CHECK(pq_read_batch(r, rb, &e) == 1);
    CHECK(rb->n_rows == 1);
    if (rb->n_rows == 1) {
        CHECK(rows_get(rb, 0, 0)->s.len == 1 && rows_get(rb, 0, 0)->s.p[0] == 'b');
        CHECK(rows_get(rb, 1, 0)->s.len == 5 && !memcmp(rows_get(rb, 1, 0)->s.p, "-1.24", 5));
    }
    rows_batch_free(rb);
    pq_reader_close(r);
    rows_batch_free(b);
    rows_schema_free(s);
    unlink(path);
}

static const char *checkpoint_schema =
    "message spark_schema {\n"
    "  optional group txn { optional binary appId (STRING); required int64 version; optional int64 lastUpdated; }\n"
    "  optional group add {\n"
    "    optional binary path (STRING);\n"
    "    optional group partitionValues (MAP) { repeated group key_value {\n"
    "      required binary key (STRING); optional binary value (STRING); } }\n"
    "    optional int64 size; optional int64 modificationTime; optional boolean dataChange;\n"
    "    optional binary stats (STRING);\n"
    "    optional group tags (MAP) { repeated group key_value { required binary key (STRING); optional binary value (STRING); } }\n"
    "  }\n"
    "  optional group remove { optional binary path (STRING); optional int64 deletionTimestamp; optional boolean dataChange; }\n"
    "  optional group metaData {\n"
    "    optional binary id (STRING);\n"
    "    optional group format { optional binary provider (STRING);\n"
    "      optional group options (MAP) { repeated group key_value { required binary key (STRING); optional binary value (STRING); } } }\n"
    "    optional binary schemaString (STRING);\n"
    "    optional group partitionColumns (LIST) { repeated group list { optional binary element (STRING); } }\n"
    "    optional group configuration (MAP) { repeated group key_value { required binary key (STRING); optional binary value (STRING); } }\n"
    "    optional int64 createdTime;\n"
    "  }\n"
    "  optional group protocol { optional int32 minReaderVersion; optional int32 minWriterVersion;\n"
    "    optional group readerFeatures (LIST) { repeated group list { optional binary element (STRING); } } }\n"
    "  optional group nums (LIST) { repeated group list { optional group element {\n"
    "    optional int64 a; optional group inner (LIST) { repeated group list { optional int32 element; } } } } }\n"
    "  optional fixed_len_byte_array(16) dec (DECIMAL(38,6));\n"
    "  optional int32 day (DATE);\n"
    "  optional int64 at (TIMESTAMP(MICROS,true));\n"
    "  optional double dbl;\n"
    "}\n";

static const char *records[] = {
    "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}",
    "{\"metaData\":{\"id\":\"abc\",\"format\":{\"provider\":\"parquet\",\"options\":{}},\"schemaString\":\"{}\","
    "\"partitionColumns\":[],\"configuration\":{\"delta.checkpointInterval\":\"10\",\"k\":\"v\"},\"createdTime\":17}}",
    "{\"add\":{\"path\":\"a.parquet\",\"partitionValues\":{},\"size\":100,\"modificationTime\":5,\"dataChange\":true,"
    "\"stats\":\"{\\\"numRecords\\\":3}\"}}",
    "{\"add\":{\"path\":\"b.parquet\",\"partitionValues\":{\"p\":\"1\",\"q\":null},\"size\":7,\"modificationTime\":6,\"dataChange\":false,"
    "\"tags\":{\"x\":\"y\"}}}",
    "{\"remove\":{\"path\":\"c.parquet\",\"deletionTimestamp\":9,\"dataChange\":true}}",
    "{\"txn\":{\"appId\":\"dest-1\",\"version\":42}}",
    "{\"nums\":[{\"a\":1,\"inner\":[1,2,null]},null,{\"inner\":[]},{\"a\":2}],\"dec\":-12.5,\"day\":\"2024-02-29\","
    "\"at\":\"2024-01-02T03:04:05.123456Z\",\"dbl\":0.1}",
    "{\"protocol\":{\"minReaderVersion\":3,\"minWriterVersion\":7,\"readerFeatures\":[\"a\",\"b\"]}}",
};

/* Expected reading: null members are left out, decimals get their scale. */
static const char *expected[] = {
    NULL, NULL, NULL,
    "{\"add\":{\"path\":\"b.parquet\",\"partitionValues\":{\"p\":\"1\",\"q\":null},\"size\":7,\"modificationTime\":6,\"dataChange\":false,"
    "\"tags\":{\"x\":\"y\"}}}",
    NULL, NULL,
    "{\"nums\":[{\"a\":1,\"inner\":[1,2,null]},null,{\"inner\":[]},{\"a\":2}],\"dec\":-12.500000,\"day\":\"2024-02-29\","
    "\"at\":\"2024-01-02T03:04:05.123456Z\",\"dbl\":0.1}",
    NULL,
};

static void test_nested_json_roundtrip(void)
{
    fl_err e;
    fl_err_clear(&e);
    pq_schema *s = pq_schema_parse(checkpoint_schema, &e);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    /* the text form round-trips */
    buf t1 = BUF_INIT, t2 = BUF_INIT;
    pq_schema_print(s, &t1);
    pq_schema *s2 = pq_schema_parse(t1.p, &e);
    CHECK(s2 != NULL);
    if (s2) pq_schema_print(s2, &t2);
    CHECK(s2 && !strcmp(t1.p, t2.p));
    pq_schema_free(s2);
    buf_free(&t1);
    buf_free(&t2);

    const char *path = tmp_path("ckpt.parquet");
    pq_options o;
    pq_options_init(&o);
    o.row_group_bytes = 200; /* several row groups */
    pq_writer *w = pq_writer_open_schema(path, s, &o, &e);
    CHECK(w != NULL);
    arena *a = arena_new(0);
    size_t n = sizeof records / sizeof *records;
    for (size_t i = 0; i < n; i++) {
        json_val *v = json_parse(a, records[i], strlen(records[i]), NULL, &e);
        CHECK(v != NULL);
        int rc = pq_write_json(w, v, &e);
        if (rc) fprintf(stderr, "  record %zu: %s\n", i, e.msg);
        CHECK(rc == 0);
    }
    /* a record with a wrong type is refused and leaves the writer usable */
    json_val *bad = json_parse(a, "{\"txn\":{\"appId\":\"x\",\"version\":\"nope\"}}",
                               strlen("{\"txn\":{\"appId\":\"x\",\"version\":\"nope\"}}"), NULL, &e);
    CHECK(bad && pq_write_json(w, bad, &e) == -1);
    CHECK(!strcmp(e.where, "txn.version"));
    json_val *miss = json_parse(a, "{\"txn\":{\"appId\":\"x\"}}", strlen("{\"txn\":{\"appId\":\"x\"}}"), NULL, &e);
    CHECK(miss && pq_write_json(w, miss, &e) == -1);
    CHECK(pq_writer_close(w, NULL, &e) == 0);

    pq_reader *r = pq_reader_open(path, &e);
    CHECK(r != NULL);
    if (r) {
        CHECK(pq_reader_num_rows(r) == (int64_t)n);
        CHECK(pq_reader_num_row_groups(r) > 1);
        size_t k = 0;
        json_val *arr;
        arena *ra = arena_new(0);
        while ((arr = pq_read_json(r, ra, &e))) {
            for (uint32_t i = 0; i < arr->len; i++, k++) {
                const char *want = k < n ? (expected[k] ? expected[k] : records[k]) : "{}";
                json_val *wv = json_parse(a, want, strlen(want), NULL, &e);
                bool eq = wv && json_equal(&arr->u.a[i], wv);
                if (!eq) {
                    buf got = BUF_INIT;
                    json_write(&got, &arr->u.a[i], false);
                    fprintf(stderr, "  record %zu: got %s\n", k, got.p);
                    buf_free(&got);
                }
                CHECK(eq);
            }
        }
        CHECK(FL_OK(&e));
        CHECK(k == n);
        arena_free(ra);
        pq_reader_close(r);
    }
    arena_free(a);
    pq_schema_free(s);
    unlink(path);
}

static void test_schema_errors(void)
{
    fl_err e;
    fl_err_clear(&e);
    CHECK(pq_schema_parse("message m { optional int33 x; }", &e) == NULL);
    CHECK(strstr(e.msg, "int33") != NULL);
    fl_err_clear(&e);
    CHECK(pq_schema_parse("message m { optional group g (LIST) { optional int32 x; } }", &e) == NULL);
    fl_err_clear(&e);
    CHECK(pq_schema_parse("message m { optional int32 x (DECIMAL(3,5)); }", &e) == NULL);
    pq_reader *r = pq_reader_open(tmp_path("nope.parquet"), &e);
    CHECK(r == NULL && e.status == 404);
    const char *p = tmp_path("junk.parquet");
    FILE *f = fopen(p, "wb");
    fputs("this is not a parquet file at all", f);
    fclose(f);
    fl_err_clear(&e);
    CHECK(pq_reader_open(p, &e) == NULL);
    CHECK(strstr(e.msg, "PAR1") != NULL);
    unlink(p);
}

static void test_abort_leaves_nothing(void)
{
    rows_schema *s = rows_schema_new();
    rows_schema_add(s, "a", ROWS_STRING, false);
    fl_err e;
    fl_err_clear(&e);
    pq_options o;
    pq_options_init(&o);
    char staging[600];
    snprintf(staging, sizeof staging, "%s/staging.tmp", tmpdir);
    o.staging_path = staging;
    const char *path = tmp_path("ab.parquet");
    pq_writer *w = pq_writer_open(path, s, &o, &e);
    CHECK(access(staging, F_OK) == 0);
    pq_writer_abort(w);
    CHECK(access(staging, F_OK) != 0 && access(path, F_OK) != 0);
    rows_schema_free(s);
}

/* Reads every row group of path through both layers; errors are fine, crashes are not. */
static void read_all(const char *path)
{
    fl_err e;
    fl_err_clear(&e);
    pq_reader *r = pq_reader_open(path, &e);
    if (!r) return;
    rows_schema *rs = pq_reader_rows_schema(r);
    rows_batch *b = rows_batch_new(rs);
    while (pq_read_batch(r, b, &e) == 1) {
    }
    rows_batch_free(b);
    rows_schema_free(rs);
    pq_reader_rewind(r);
    arena *a = arena_new(0);
    while (pq_read_json(r, a, &e)) arena_reset(a);
    arena_free(a);
    pq_reader_close(r);
}

static void mutate_file(const char *src, const char *dst, unsigned seed)
{
    FILE *f = fopen(src, "rb");
    static char data[1 << 20];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    srand(seed);
    int kind = rand() % 3;
    if (kind == 0) { /* flip a few bytes */
        for (int k = 0; k < 1 + rand() % 4; k++) data[(size_t)rand() % n] ^= (char)(1 + rand() % 255);
    } else if (kind == 1) { /* set a byte to an extreme value */
        data[(size_t)rand() % n] = (char)(rand() % 2 ? 0xff : 0x00);
    } else { /* truncate, keeping the tail magic and footer length */
        size_t cut = (size_t)rand() % n;
        memmove(data + cut, data + cut + 1, n - cut - 1);
        n--;
    }
    f = fopen(dst, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* Corrupt files give errors, never crashes or out-of-bounds reads (checked under ASan). */
static void test_corrupt_files_do_not_crash(void)
{
    const char *good[2] = {"fz_rows.parquet", "fz_nested.parquet"};
    char gp[2][512];
    for (int i = 0; i < 2; i++) snprintf(gp[i], sizeof gp[i], "%s", tmp_path(good[i]));
    /* a rows file with every type, nulls and lists */
    rows_schema *s = all_types_schema();
    fl_err e;
    fl_err_clear(&e);
    pq_options o;
    pq_options_init(&o);
    o.page_bytes = 512;
    o.row_group_bytes = 6000;
    pq_writer *w = pq_writer_open(gp[0], s, &o, &e);
    rows_batch *b = rows_batch_new(s);
    for (size_t i = 0; i < 300; i++) fill_row(b, i);
    CHECK(pq_write_batch(w, b, &e) == 0);
    CHECK(pq_writer_close(w, NULL, &e) == 0);
    rows_batch_free(b);
    rows_schema_free(s);
    /* a nested file */
    pq_schema *ns = pq_schema_parse(checkpoint_schema, &e);
    w = pq_writer_open_schema(gp[1], ns, &o, &e);
    arena *a = arena_new(0);
    for (size_t i = 0; i < sizeof records / sizeof *records; i++)
        pq_write_json(w, json_parse(a, records[i], strlen(records[i]), NULL, &e), &e);
    CHECK(pq_writer_close(w, NULL, &e) == 0);
    arena_free(a);
    pq_schema_free(ns);
    read_all(gp[0]);
    read_all(gp[1]);
    const char *bad = tmp_path("fz_bad.parquet");
    char badp[512];
    snprintf(badp, sizeof badp, "%s", bad);
    unsigned rounds = getenv("PQ_FUZZ_ROUNDS") ? (unsigned)atoi(getenv("PQ_FUZZ_ROUNDS")) : 600;
    for (unsigned k = 0; k < rounds; k++) {
        mutate_file(gp[k % 2], badp, k + 1);
        read_all(badp);
    }
    unlink(badp);
    unlink(gp[0]);
    unlink(gp[1]);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fl-pqtest-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(test_thrift_roundtrip);
    RUN(test_rle_hybrid);
    RUN(test_roundtrip_codecs);
    RUN(test_roundtrip_row_groups_and_fallback);
    RUN(test_roundtrip_page_v2);
    RUN(test_empty_file);
    RUN(test_projection_missing_column);
    RUN(test_bad_decimal_keeps_writer);
    RUN(test_long_strings_have_no_minmax);
    RUN(test_scan_strings);
    RUN(test_nested_json_roundtrip);
    RUN(test_schema_errors);
    RUN(test_abort_leaves_nothing);
    RUN(test_corrupt_files_do_not_crash);
    rmdir(tmpdir);
    return t_report("parquet");
}
