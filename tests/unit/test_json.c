/* Unit tests for the json room: parser, DOM helpers, writers, and JSONTestSuite. */
#include "t.h"
#include "json/json.h"

#include <dirent.h>
#include <stdlib.h>

static arena *A;

static json_val *P(const char *s) { return json_parse(A, s, strlen(s), NULL, NULL); }

/* Parses s expecting failure; returns the message (static) or NULL if it parsed. */
static const char *E(const char *s, size_t n, int *status)
{
    static fl_err err;
    fl_err_clear(&err);
    json_val *v = json_parse(A, s, n, NULL, &err);
    if (status) *status = err.status;
    return v ? NULL : err.msg;
}

static const char *ES(const char *s) { return E(s, strlen(s), NULL); }

/* Compact re-serialization */
static const char *W(const json_val *v, bool pretty)
{
    static buf b = BUF_INIT;
    buf_reset(&b);
    json_write(&b, v, pretty);
    return b.p;
}

static void test_parse_basic(void)
{
    json_val *v = P(" {\"a\": [1, -2.5e3, true, false, null, \"x\"], \"b\": {}, \"c\": []} ");
    CHECK(v && v->type == JSON_OBJECT && v->len == 3);
    json_val *a = json_get(v, "a");
    CHECK(json_is(a, JSON_ARRAY) && a->len == 6);
    CHECK(a->u.a[0].type == JSON_NUMBER && a->u.a[0].len == 1);
    CHECK(a->u.a[1].len == 6 && memcmp(a->u.a[1].u.s, "-2.5e3", 6) == 0);
    CHECK(a->u.a[2].type == JSON_TRUE && a->u.a[3].type == JSON_FALSE);
    CHECK(a->u.a[4].type == JSON_NULL);
    CHECK(a->u.a[5].type == JSON_STRING && a->u.a[5].len == 1);
    CHECK_STR(a->u.a[5].u.s, "x");
    CHECK(json_is(json_get(v, "b"), JSON_OBJECT) && json_get(v, "b")->len == 0);
    CHECK(json_is(json_get(v, "c"), JSON_ARRAY) && json_get(v, "c")->len == 0);
    CHECK(json_get(v, "zz") == NULL);
    CHECK(json_get(a, "a") == NULL);
    /* scalars at top level */
    CHECK(P("1") && P("1")->type == JSON_NUMBER);
    CHECK(P("\"s\"") && P("\"s\"")->type == JSON_STRING);
    CHECK(P(" null ") && P("null")->type == JSON_NULL);
    CHECK(P("true") && P("false"));
    CHECK(P("[[[[]]]]") && P("[{}]"));
    CHECK_STR(W(P("{ \"k\" : [ 1 , { \"x\" : null } ] }\r\n\t"), false), "{\"k\":[1,{\"x\":null}]}");
}

static void test_parse_member_order_dups(void)
{
    json_val *v = P("{\"b\":1,\"a\":2,\"b\":3}");
    CHECK(v && v->len == 3);
    CHECK_STR(v->u.o[0].key, "b");
    CHECK_STR(v->u.o[1].key, "a");
    CHECK_STR(v->u.o[2].key, "b");
    CHECK(json_get(v, "b")->u.s[0] == '1');
    CHECK(json_get_str(v, "b") == NULL);
    CHECK_STR(json_get_str(P("{\"x\":\"y\"}"), "x"), "y");
}

static void test_parse_strings(void)
{
    json_val *v = P("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    CHECK(v && v->len == 12);
    CHECK(v && memcmp(v->u.s, "a\"b\\c/d\b\f\n\r\t", 12) == 0);
    v = P("\"\\u00e9\\u20AC\\ud83d\\ude00\"");
    CHECK(v && v->len == 2 + 3 + 4);
    CHECK_STR(v->u.s, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
    v = P("\"a\\u0000b\"");
    CHECK(v && v->len == 3 && v->u.s[1] == 0 && v->u.s[2] == 'b' && v->u.s[3] == 0);
    /* raw UTF-8 kept */
    v = P("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"");
    CHECK(v && v->len == 10);
    /* long strings cross the 16-byte scan blocks, with escapes late */
    char big[300];
    memset(big, 'x', sizeof big);
    big[0] = '"';
    memcpy(big + 200, "\\n\xC3\xA9", 4);
    big[298] = '"';
    big[299] = 0;
    v = P(big);
    CHECK(v && v->len == 296 && v->u.s[199] == '\n' && (unsigned char)v->u.s[200] == 0xC3);
    /* keys unescaped too */
    v = P("{\"k\\u0041\":1}");
    CHECK(v && v->u.o[0].key_len == 2);
    CHECK_STR(v->u.o[0].key, "kA");
    CHECK(json_getn(v, "kA", 2) != NULL);
}

static void test_parse_reject(void)
{
    const char *bad[] = {
        "", " ", "[", "]", "{", "[1,]", "[,1]", "{\"a\":1,}", "{,}", "{\"a\" 1}", "{1:1}",
        "{'a':1}", "[1 2]", "01", "-01", "1.", ".1", "1e", "1e+", "-", "+1", "0x10",
        "NaN", "Infinity", "-Infinity", "tru", "nul", "True", "[1]x", "{} {}", "\"abc",
        "\"\\x\"", "\"\\u12\"", "\"\\uZZZZ\"", "\"a\tb\"", "\"a\nb\"", "[1]//", "/*c*/1",
        "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"", "[\"\\",
        "\xEF\xBB\xBF{}", "1 2", "[01]", "[-]", "[1e5.1]", "[\"a\":1]", "{\"a\":}",
        "{\"a\"}", "{\"a\":1 \"b\":2}", "nulll", "[true false]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *m = ES(bad[i]);
        if (!m) fprintf(stderr, "  accepted bad input #%zu: %s\n", i, bad[i]);
        CHECK(m != NULL);
    }
    /* embedded NUL bytes */
    CHECK(E("[1]\0", 4, NULL) != NULL);
    CHECK(E("\"a\0b\"", 5, NULL) != NULL);
    CHECK(E("\0", 1, NULL) != NULL);
}

static void test_parse_utf8(void)
{
    const char *bad[] = {
        "\"\xC0\xAF\"",             /* overlong '/' */
        "\"\xC1\xBF\"",             /* overlong */
        "\"\xE0\x80\xAF\"",         /* overlong 3-byte */
        "\"\xF0\x80\x80\xAF\"",     /* overlong 4-byte */
        "\"\xED\xA0\x80\"",         /* UTF-8 encoded surrogate U+D800 */
        "\"\xED\xBF\xBF\"",         /* U+DFFF */
        "\"\xF4\x90\x80\x80\"",     /* above U+10FFFF */
        "\"\xF5\x80\x80\x80\"",
        "\"\xFF\"", "\"\xFE\"", "\"\x80\"", "\"\xBF\"", /* invalid / lone continuation */
        "\"\xC3\"", "\"\xE2\x82\"", "\"\xF0\x9F\x98\"", /* truncated */
        "\"\xC3\x28\"", "[\xC3\xA9]",  /* bad continuation; non-ASCII outside a string */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *m = ES(bad[i]);
        if (!m) fprintf(stderr, "  accepted bad UTF-8 #%zu\n", i);
        CHECK(m != NULL);
    }
    CHECK(ES("\"\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xF0\x90\x80\x80\xF4\x8F\xBF\xBF\"") == NULL);
    /* truncated sequence right at the end of input (no closing quote) */
    CHECK(E("\"\xE2\x82", 3, NULL) != NULL);

    CHECK(json_utf8_valid("", 0));
    CHECK(json_utf8_valid("hello world, plain ascii text", 29));
    CHECK(json_utf8_valid("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9));
    CHECK(!json_utf8_valid("\xC0\xAF", 2));
    CHECK(!json_utf8_valid("\xED\xA0\x80", 3));
    CHECK(!json_utf8_valid("\xF4\x90\x80\x80", 4));
    CHECK(!json_utf8_valid("abc\xE2\x82", 5));
    CHECK(!json_utf8_valid("abcdefghij\x80", 11));
    CHECK(json_utf8_valid("a\0b", 3));
}

static void test_errors(void)
{
    int st = 0;
    const char *m = E("{\n  \"a\": [1,]\n}", 15, &st);
    CHECK(m && st == 400);
    CHECK(m && strstr(m, "offset 12") != NULL);
    CHECK(m && strstr(m, "line 2:11") != NULL);
    m = E("[1, 2", 5, &st);
    CHECK(m && strstr(m, "end of input") && strstr(m, "offset 5"));
    m = E("\"a\tb\"", 5, &st);
    CHECK(m && strstr(m, "control character") && strstr(m, "offset 2"));
    m = E("[01]", 4, &st);
    CHECK(m && strstr(m, "leading zero"));
    m = E("\"\\ud800\"", 8, &st);
    CHECK(m && strstr(m, "surrogate"));
    m = E("\"\xED\xA0\x80\"", 5, &st);
    CHECK(m && strstr(m, "UTF-8") && strstr(m, "offset 1"));

    /* depth */
    char deep[600];
    for (int i = 0; i < 300; i++) deep[i] = '[';
    for (int i = 0; i < 300; i++) deep[300 + i] = ']';
    m = E(deep, 600, &st);
    CHECK(m && st == 400);
    CHECK(m && strncmp(m, "JSON nesting deeper than 256 at offset 256", 42) == 0);
    CHECK(E(deep + 44, 512, &st) == NULL); /* exactly 256 deep is fine */
    json_limits lim = {.max_depth = 3, .max_size = 0};
    fl_err err;
    CHECK(json_parse(A, "[[[1]]]", 7, &lim, &err) != NULL);
    CHECK(json_parse(A, "[[[[1]]]]", 9, &lim, &err) == NULL && err.status == 400);
    CHECK(strstr(err.msg, "deeper than 3"));
    /* deep beyond the local frame stack with a raised limit */
    lim.max_depth = 5000;
    char *d2 = malloc(8000);
    for (int i = 0; i < 4000; i++) {
        d2[i] = i % 2 ? '[' : '[';
        d2[4000 + i] = ']';
    }
    CHECK(json_parse(A, d2, 8000, &lim, &err) != NULL);
    d2[0] = '{';
    CHECK(json_parse(A, d2, 8000, &lim, &err) == NULL);
    free(d2);
    /* size */
    lim.max_depth = 0;
    lim.max_size = 4;
    CHECK(json_parse(A, "[1,2]", 5, &lim, &err) == NULL && err.status == 413);
    CHECK(strstr(err.msg, "limit of 4 bytes"));
    CHECK(json_parse(A, "[12]", 4, &lim, &err) != NULL && err.status == 0);
}

static void test_big_containers(void)
{
    /* more items than the local scratch stacks hold, nested */
    buf b = BUF_INIT;
    buf_puts(&b, "{\"arr\":[");
    for (int i = 0; i < 5000; i++) buf_printf(&b, "%s{\"i\":%d,\"s\":\"v%d\"}", i ? "," : "", i, i);
    buf_puts(&b, "],\"obj\":{");
    for (int i = 0; i < 3000; i++) buf_printf(&b, "%s\"k%d\":[%d]", i ? "," : "", i, i);
    buf_puts(&b, "}}");
    json_val *v = json_parse(A, b.p, b.len, NULL, NULL);
    CHECK(v != NULL);
    json_val *arr = json_get(v, "arr"), *obj = json_get(v, "obj");
    CHECK(arr && arr->len == 5000 && obj && obj->len == 3000);
    int64_t x = -1;
    CHECK(json_num_int64(json_get(&arr->u.a[4321], "i"), &x) == 0 && x == 4321);
    CHECK_STR(json_get_str(&arr->u.a[4999], "s"), "v4999");
    CHECK(json_num_int64(&json_get(obj, "k2999")->u.a[0], &x) == 0 && x == 2999);
    /* round trip */
    CHECK_STR(W(v, false), b.p);
    buf_free(&b);
}

static void test_numbers(void)
{
    int64_t i;
    double d;
    CHECK(json_num_int64(P("0"), &i) == 0 && i == 0);
    CHECK(json_num_int64(P("-0"), &i) == 0 && i == 0);
    CHECK(json_num_int64(P("42"), &i) == 0 && i == 42);
    CHECK(json_num_int64(P("-17"), &i) == 0 && i == -17);
    CHECK(json_num_int64(P("9223372036854775807"), &i) == 0 && i == INT64_MAX);
    CHECK(json_num_int64(P("-9223372036854775808"), &i) == 0 && i == INT64_MIN);
    CHECK(json_num_int64(P("9223372036854775808"), &i) == -1);
    CHECK(json_num_int64(P("-9223372036854775809"), &i) == -1);
    CHECK(json_num_int64(P("123456789012345678901234"), &i) == -1);
    CHECK(json_num_int64(P("1.5"), &i) == -1);
    CHECK(json_num_int64(P("1e-1"), &i) == -1);
    CHECK(json_num_int64(P("1.0"), &i) == 0 && i == 1);
    CHECK(json_num_int64(P("1e2"), &i) == 0 && i == 100);
    CHECK(json_num_int64(P("12.50e1"), &i) == 0 && i == 125);
    CHECK(json_num_int64(P("0.000"), &i) == 0 && i == 0);
    CHECK(json_num_int64(P("1e400"), &i) == -1);
    CHECK(json_num_int64(P("\"1\""), &i) == -1);
    CHECK(json_num_int64(NULL, &i) == -1);
    CHECK(json_num_double(P("1.5"), &d) == 0 && d == 1.5);
    CHECK(json_num_double(P("-2.5E-3"), &d) == 0 && d == -2.5e-3);
    CHECK(json_num_double(P("12345678901234567890"), &d) == 0 && d == 12345678901234567890.0);
    CHECK(json_num_double(P("1e400"), &d) == -1);
    CHECK(json_num_double(P("1e-400"), &d) == 0 && d == 0);
    CHECK(json_num_double(P("null"), &d) == -1);
    /* source text preserved exactly */
    json_val *v = P("[1.50, 1E+2, -0.0]");
    CHECK(v && v->u.a[0].len == 4 && memcmp(v->u.a[0].u.s, "1.50", 4) == 0);
    CHECK_STR(W(v, false), "[1.50,1E+2,-0.0]");
    json_val *n = json_new_number(A, "3.140");
    CHECK(n->len == 5 && json_num_double(n, &d) == 0 && d == 3.14);
}

static void test_equal(void)
{
    CHECK(json_equal(P("{\"a\":1,\"b\":[1,2,{\"c\":null}]}"), P("{\"b\":[1,2,{\"c\":null}],\"a\":1}")));
    CHECK(!json_equal(P("[1,2]"), P("[2,1]")));
    CHECK(json_equal(P("1"), P("1.0")));
    CHECK(json_equal(P("100"), P("1e2")));
    CHECK(json_equal(P("0.5"), P("5E-1")));
    CHECK(json_equal(P("-0"), P("0.0")));
    CHECK(json_equal(P("12.3400"), P("1234e-2")));
    CHECK(!json_equal(P("1"), P("-1")));
    CHECK(!json_equal(P("1.0000000000000000001"), P("1")));
    CHECK(!json_equal(P("1"), P("\"1\"")));
    CHECK(!json_equal(P("{\"a\":1}"), P("{\"a\":1,\"b\":2}")));
    CHECK(!json_equal(P("{\"a\":1,\"c\":2}"), P("{\"a\":1,\"b\":2}")));
    CHECK(json_equal(P("\"a\\u0000b\""), P("\"a\\u0000b\"")));
    CHECK(!json_equal(P("\"a\\u0000b\""), P("\"a\\u0000c\"")));
    CHECK(json_equal(P("true"), P("true")) && !json_equal(P("true"), P("false")));
    CHECK(json_equal(P("[]"), P("[]")) && json_equal(P("{}"), P("{}")));
    CHECK(!json_equal(P("[]"), P("{}")));
}

static void test_build(void)
{
    json_val *o = json_new_object(A);
    json_obj_set(A, o, "resourceType", json_new_string(A, "Patient", 7));
    json_obj_set(A, o, "id", json_new_string(A, "p1", 2));
    json_val *arr = json_new_array(A);
    for (int i = 0; i < 100; i++) {
        char t[16];
        snprintf(t, sizeof t, "%d", i);
        json_arr_push(A, arr, json_new_number(A, t));
    }
    json_obj_set(A, o, "n", arr);
    json_obj_set(A, o, "id", json_new_string(A, "p2", 2)); /* replace */
    CHECK(o->len == 3);
    CHECK_STR(json_get_str(o, "id"), "p2");
    CHECK(json_get(o, "n")->len == 100);
    CHECK(json_get(o, "n")->u.a[99].len == 2);
    json_obj_remove(o, "resourceType");
    CHECK(o->len == 2 && json_get(o, "resourceType") == NULL);
    CHECK_STR(o->u.o[0].key, "id");
    json_obj_remove(o, "absent");
    CHECK(o->len == 2);

    /* push onto a parsed array (exact-size storage) and set on a parsed object */
    json_val *pa = P("[1,2,3]");
    json_val *pv = P("{\"x\":1}");
    for (int i = 0; i < 10; i++) json_arr_push(A, pa, &pa->u.a[0]); /* value from inside */
    CHECK(pa->len == 13);
    CHECK_STR(W(pa, false), "[1,2,3,1,1,1,1,1,1,1,1,1,1]");
    json_obj_set(A, pv, "y", P("[true]"));
    json_obj_set(A, pv, "z", &pv->u.o[0].val);
    CHECK_STR(W(pv, false), "{\"x\":1,\"y\":[true],\"z\":1}");

    /* clone is deep */
    json_val *src = P("{\"a\":[\"s\",{\"b\":2}],\"c\":\"d\"}");
    arena *b = arena_new(0);
    json_val *c = json_clone(b, src);
    CHECK(json_equal(src, c));
    json_obj_set(A, src, "c", json_new_string(A, "e", 1));
    CHECK(!json_equal(src, c));
    CHECK_STR(W(c, false), "{\"a\":[\"s\",{\"b\":2}],\"c\":\"d\"}");
    CHECK(json_clone(b, NULL) == NULL);
    arena_free(b);

    /* builder never touches a non-container */
    json_val *s = json_new_string(A, "x", 1);
    json_arr_push(A, s, s);
    json_obj_set(A, s, "k", s);
    CHECK(s->type == JSON_STRING && s->len == 1);
}

static void test_write(void)
{
    json_val *v = P("{\"a\":[1,{\"b\":null,\"c\":\"x\"},[]],\"d\":{},\"e\":\"\"}");
    CHECK_STR(W(v, false), "{\"a\":[1,{\"b\":null,\"c\":\"x\"},[]],\"d\":{},\"e\":\"\"}");
    CHECK_STR(W(v, true),
              "{\n"
              "  \"a\": [\n"
              "    1,\n"
              "    {\n"
              "      \"b\": null,\n"
              "      \"c\": \"x\"\n"
              "    },\n"
              "    []\n"
              "  ],\n"
              "  \"d\": {},\n"
              "  \"e\": \"\"\n"
              "}");
    CHECK_STR(W(P("[]"), true), "[]");
    CHECK_STR(W(P("\"x\""), true), "\"x\"");
    CHECK_STR(W(NULL, false), "null");

    buf b = BUF_INIT;
    json_write_string(&b, "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f", 14);
    CHECK_STR(b.p, "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
    buf_reset(&b);
    json_write_string(&b, "a\0b", 3);
    CHECK_STR(b.p, "\"a\\u0000b\"");
    buf_reset(&b);
    json_write_string(&b, "caf\xC3\xA9 \xF0\x9F\x98\x80", 10);
    CHECK_STR(b.p, "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"");
    buf_reset(&b);
    json_write_string(&b, "x\xFFy\xED\xA0\x80z\xC3", 8); /* invalid bytes -> U+FFFD */
    CHECK_STR(b.p, "\"x\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz\xEF\xBF\xBD\"");
    CHECK(json_utf8_valid(b.p, b.len));
    buf_free(&b);

    /* parse -> write -> parse keeps strings exactly */
    const char *src = "[\"\\u0000\\u001f\\\"\\\\\\/\xE2\x82\xAC\\ud83d\\ude00\"]";
    json_val *x = P(src);
    CHECK(x != NULL);
    const char *out = W(x, false);
    CHECK_STR(out, "[\"\\u0000\\u001f\\\"\\\\/\xE2\x82\xAC\xF0\x9F\x98\x80\"]");
    CHECK(json_equal(x, P(out)));
}

static void test_jw(void)
{
    buf b = BUF_INIT;
    jw w;
    jw_init(&w, &b);
    jw_obj_begin(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "Bundle");
    jw_key(&w, "total");
    jw_int(&w, -12345);
    jw_key(&w, "entry");
    jw_arr_begin(&w);
    jw_obj_begin(&w);
    jw_obj_end(&w);
    jw_arr_begin(&w);
    jw_arr_end(&w);
    jw_bool(&w, true);
    jw_bool(&w, false);
    jw_null(&w);
    jw_raw(&w, "{\"r\":1}", 7);
    jw_val(&w, P("[1,\"two\"]"));
    jw_strn(&w, "a\"b\nc", 5);
    jw_str(&w, NULL);
    jw_arr_end(&w);
    jw_key(&w, "k\"q");
    jw_double(&w, 0.1);
    jw_key(&w, "min");
    jw_int(&w, INT64_MIN);
    jw_obj_end(&w);
    CHECK_STR(b.p, "{\"resourceType\":\"Bundle\",\"total\":-12345,\"entry\":[{},[],true,false,"
                   "null,{\"r\":1},[1,\"two\"],\"a\\\"b\\nc\",null],\"k\\\"q\":0.1,"
                   "\"min\":-9223372036854775808}");
    CHECK(P(b.p) != NULL);
    CHECK(w.depth == 0);

    /* top-level sequence of values (NDJSON-ish usage: caller adds newlines) */
    buf_reset(&b);
    jw_init(&w, &b);
    jw_int(&w, 0);
    CHECK_STR(b.p, "0");

    /* doubles: shortest round-trip, non-finite -> null */
    const double ds[] = {0.0, -0.0, 1.0, 0.1, 1.0 / 3.0, 1e21, 1e-7, 123456.789,
                         5e-324, 1.7976931348623157e308, 2.0 / 3.0, 100.25};
    const char *want[] = {"0", "-0", "1", "0.1", "0.3333333333333333", "1e+21", "1e-07",
                          "123456.789", "4.94065645841247e-324", "1.7976931348623157e+308",
                          "0.6666666666666666", "100.25"};
    for (size_t i = 0; i < sizeof ds / sizeof *ds; i++) {
        buf_reset(&b);
        jw_init(&w, &b);
        jw_double(&w, ds[i]);
        CHECK_STR(b.p, want[i]);
        CHECK(strtod(b.p, NULL) == ds[i]);
        CHECK(P(b.p) != NULL);
    }
    buf_reset(&b);
    jw_init(&w, &b);
    jw_arr_begin(&w);
    jw_double(&w, 1.0 / 0.0);
    jw_double(&w, 0.0 / 0.0);
    jw_double(&w, 2.5);
    jw_arr_end(&w);
    CHECK_STR(b.p, "[null,null,2.5]");
    buf_free(&b);
}

/* ---- JSONTestSuite ---- */

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)sz + 1);
    *n = fread(p, 1, (size_t)sz, f);
    fclose(f);
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_json_test_suite(void)
{
    const char *dir = "../data/JSONTestSuite/test_parsing";
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    char *names[1024];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 1024) {
        if (strlen(de->d_name) > 5 && strcmp(de->d_name + strlen(de->d_name) - 5, ".json") == 0)
            names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    int y = 0, y_ok = 0, n = 0, n_ok = 0, i_n = 0, i_acc = 0;
    arena *a = arena_new(0);
    for (int k = 0; k < nn; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        size_t len = 0;
        char *text = slurp(path, &len);
        CHECK(text != NULL);
        if (!text) continue;
        fl_err err;
        fl_err_clear(&err);
        json_val *v = json_parse(a, text, len, NULL, &err);
        if (v) {
            /* whatever parses must write back and re-parse to an equal value */
            buf b = BUF_INIT;
            json_write(&b, v, false);
            json_val *v2 = json_parse(a, b.p, b.len, NULL, NULL);
            if (!v2 || !json_equal(v, v2)) {
                fprintf(stderr, "  round trip failed: %s -> %s\n", names[k], b.p);
                CHECK(0);
            }
            buf_free(&b);
        } else {
            CHECK(err.status == 400 || err.status == 413);
            CHECK(strstr(err.msg, "offset") != NULL);
        }
        if (names[k][0] == 'y') {
            y++;
            if (v) y_ok++;
            else fprintf(stderr, "  rejected valid %s: %s\n", names[k], err.msg);
        } else if (names[k][0] == 'n') {
            n++;
            if (!v) n_ok++;
            else fprintf(stderr, "  accepted invalid %s\n", names[k]);
        } else {
            i_n++;
            if (v) i_acc++;
        }
        free(text);
        arena_reset(a);
        free(names[k]);
    }
    arena_free(a);
    printf("  JSONTestSuite: y_ %d/%d accepted, n_ %d/%d rejected, i_ %d ran (%d accepted)\n", y_ok,
           y, n_ok, n, i_n, i_acc);
    CHECK(y > 90 && n > 180 && i_n > 30);
    CHECK(y_ok == y);
    CHECK(n_ok == n);
}

int main(void)
{
    A = arena_new(0);
    RUN(test_parse_basic);
    RUN(test_parse_member_order_dups);
    RUN(test_parse_strings);
    RUN(test_parse_reject);
    RUN(test_parse_utf8);
    RUN(test_errors);
    RUN(test_big_containers);
    RUN(test_numbers);
    RUN(test_equal);
    RUN(test_build);
    RUN(test_write);
    RUN(test_jw);
    RUN(test_json_test_suite);
    arena_free(A);
    return t_report("json");
}
