/* test_fhirpath.c: unit tests for the FHIRPath lexer, parser, evaluator and function
 * library, including bad input. Results are compared as compact JSON arrays. */
#include <stdlib.h>

#include "fhirpath/fhirpath.h"
#include "t.h"

static const char *PT =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true,"
    "\"meta\":{\"lastUpdated\":\"2024-01-02T03:04:05Z\"},"
    "\"birthDate\":\"1970-06\",\"_birthDate\":{\"extension\":[{\"url\":\"http://x/time\","
    "\"valueTime\":\"10:00:00\"}]},"
    "\"gender\":\"female\","
    "\"name\":[{\"use\":\"official\",\"family\":\"Smith\",\"given\":[\"Ann\",\"B\"]},"
    "{\"use\":\"usual\",\"family\":\"Jones\",\"given\":[\"Annie\"]}],"
    "\"deceasedBoolean\":false,"
    "\"multipleBirthInteger\":2,"
    "\"extension\":[{\"url\":\"http://x/race\",\"extension\":[{\"url\":\"ombCategory\","
    "\"valueCoding\":{\"code\":\"2106-3\"}}]},{\"url\":\"http://x/sex\",\"valueCode\":\"F\"}],"
    "\"link\":[{\"other\":{\"reference\":\"Patient/p2\"}},"
    "{\"other\":{\"reference\":\"http://s/fhir/Observation/o1/_history/2\"}}],"
    "\"address\":[{\"line\":[\"Main St\",null],\"_line\":[null,{\"extension\":[{\"url\":\"http://x/absent\","
    "\"valueCode\":\"unknown\"}]}],\"_city\":{\"extension\":[{\"url\":\"http://x/absent\",\"valueCode\":\"asked\"}]}}],"
    "\"contact\":[{\"telecom\":[{\"system\":\"phone\",\"value\":\"1\"}]}]}";

static arena *A;
static json_val *RES;
static char OUT[4096];
static fl_err ERR;

/* Evaluates expr over the test patient; returns the JSON text of the result or
 * "ERR:<status>" on error. */
static const char *ev_env(const char *expr, const fp_env *env, const fp_coll *vars, int64_t row)
{
    fl_err_clear(&ERR);
    fp_expr *e = fp_compile(expr, env, &ERR);
    if (!e) {
        snprintf(OUT, sizeof OUT, "ERR:%d", ERR.status);
        return OUT;
    }
    arena *ta = arena_new(0);
    fp_ctx c = {.a = ta, .resource = RES, .vars = vars, .row_index = row, .err = &ERR};
    fp_coll r;
    if (!fp_eval(e, &c, NULL, &r)) snprintf(OUT, sizeof OUT, "ERR:%d", ERR.status);
    else {
        buf b = BUF_INIT;
        jw w;
        jw_init(&w, &b);
        jw_arr_begin(&w);
        for (size_t i = 0; i < r.n; i++) fp_item_write_json(&w, &r.v[i]);
        jw_arr_end(&w);
        snprintf(OUT, sizeof OUT, "%s", b.p);
        buf_free(&b);
    }
    arena_free(ta);
    fp_free(e);
    return OUT;
}

static const char *ev(const char *expr) { return ev_env(expr, NULL, NULL, 0); }

static void test_paths(void)
{
    CHECK_STR(ev("id"), "[\"p1\"]");
    CHECK_STR(ev("Patient.id"), "[\"p1\"]");
    CHECK_STR(ev("name.family"), "[\"Smith\",\"Jones\"]");
    CHECK_STR(ev("name.given"), "[\"Ann\",\"B\",\"Annie\"]");
    CHECK_STR(ev("name[1].family"), "[\"Jones\"]");
    CHECK_STR(ev("name[5].family"), "[]");
    CHECK_STR(ev("nothing.here"), "[]");
    CHECK_STR(ev("active"), "[true]");
    CHECK_STR(ev("`gender`"), "[\"female\"]");
    CHECK_STR(ev("contact.telecom.value"), "[\"1\"]");
}

static void test_literals_and_math(void)
{
    CHECK_STR(ev("1 + 2 * 3"), "[7]");
    CHECK_STR(ev("(1 + 2) * 3"), "[9]");
    CHECK_STR(ev("7 div 2"), "[3]");
    CHECK_STR(ev("7 mod 2"), "[1]");
    CHECK_STR(ev("3 / 2"), "[1.5]");
    CHECK_STR(ev("1.5 + 1"), "[2.5]");
    CHECK_STR(ev("0.1 + 0.2"), "[0.3]");
    CHECK_STR(ev("1.10 - 2"), "[-0.90]");
    CHECK_STR(ev("0.05 * 3"), "[0.15]");
    CHECK_STR(ev("-0.5 * 0.5"), "[-0.25]");
    CHECK_STR(ev("2.0 * 3"), "[6.0]");
    CHECK_STR(ev("-5 + 2"), "[-3]");
    CHECK_STR(ev("1 / 0"), "[]");
    CHECK_STR(ev("'a' + 'b'"), "[\"ab\"]");
    CHECK_STR(ev("'a' & {}"), "[\"a\"]");
    CHECK_STR(ev("{} + 1"), "[]");
    CHECK_STR(ev("1.0 = 1"), "[true]");
    CHECK_STR(ev("'x' = 'y'"), "[false]");
    CHECK_STR(ev("'Ab  c' ~ 'ab c'"), "[true]");
    CHECK_STR(ev("'a' !~ 'A'"), "[false]");
    CHECK_STR(ev("2 > 1 and 1 <= 1"), "[true]");
    CHECK_STR(ev("'abc' < 'abd'"), "[true]");
    CHECK_STR(ev("1 'mg' = 1 'mg'"), "[true]");
    CHECK_STR(ev("9223372036854775807 + 1"), "ERR:422");
}

static void test_logic(void)
{
    CHECK_STR(ev("true and {}"), "[]");
    CHECK_STR(ev("false and {}"), "[false]");
    CHECK_STR(ev("true or {}"), "[true]");
    CHECK_STR(ev("{} or false"), "[]");
    CHECK_STR(ev("true xor true"), "[false]");
    CHECK_STR(ev("false implies {}"), "[true]");
    CHECK_STR(ev("{} implies true"), "[true]");
    CHECK_STR(ev("(1 = 1).not()"), "[false]");
    CHECK_STR(ev("{}.not()"), "[]");
    CHECK_STR(ev("name.family and true"), "ERR:422");
}

static void test_existence(void)
{
    CHECK_STR(ev("name.exists()"), "[true]");
    CHECK_STR(ev("identifier.exists()"), "[false]");
    CHECK_STR(ev("identifier.empty()"), "[true]");
    CHECK_STR(ev("name.exists(use = 'usual')"), "[true]");
    CHECK_STR(ev("name.all(family.exists())"), "[true]");
    CHECK_STR(ev("name.given.count()"), "[3]");
    CHECK_STR(ev("(1 | 2 | 1).count()"), "[2]");
    CHECK_STR(ev("(1 | 2).combine(1).count()"), "[3]");
    CHECK_STR(ev("(true | false).allTrue()"), "[false]");
    CHECK_STR(ev("(true | false).anyTrue()"), "[true]");
    CHECK_STR(ev("name.use.distinct().count()"), "[2]");
    CHECK_STR(ev("contact.descendants().count()"), "[3]");
    CHECK_STR(ev("contact.telecom.children().count()"), "[2]");
    CHECK_STR(ev("name.given.isDistinct()"), "[true]");
}

static void test_filtering(void)
{
    CHECK_STR(ev("name.where(use = 'official').family"), "[\"Smith\"]");
    CHECK_STR(ev("name.select(given.first())"), "[\"Ann\",\"Annie\"]");
    CHECK_STR(ev("name.given.where($this.startsWith('An'))"), "[\"Ann\",\"Annie\"]");
    CHECK_STR(ev("name.given.where($index = 1)"), "[\"B\"]");
    CHECK_STR(ev("name.first().family"), "[\"Smith\"]");
    CHECK_STR(ev("name.last().family"), "[\"Jones\"]");
    CHECK_STR(ev("name.given.tail()"), "[\"B\",\"Annie\"]");
    CHECK_STR(ev("name.given.skip(2)"), "[\"Annie\"]");
    CHECK_STR(ev("name.given.take(1)"), "[\"Ann\"]");
    CHECK_STR(ev("name.single()"), "ERR:422");
    CHECK_STR(ev("name.where(1)"), "[{\"use\":\"official\",\"family\":\"Smith\",\"given\":[\"Ann\",\"B\"]},"
                                   "{\"use\":\"usual\",\"family\":\"Jones\",\"given\":[\"Annie\"]}]");
    CHECK_STR(ev("iif(active, 'y', 'n')"), "[\"y\"]");
    CHECK_STR(ev("iif({}, 'y', 'n')"), "[\"n\"]");
    CHECK_STR(ev("iif(false, 'y')"), "[]");
}

static void test_types(void)
{
    CHECK_STR(ev("deceased.ofType(boolean)"), "[false]");
    CHECK_STR(ev("deceased.ofType(integer)"), "[]");
    CHECK_STR(ev("multipleBirth.ofType(integer) + 1"), "[3]");
    CHECK_STR(ev("multipleBirth is integer"), "[true]");
    CHECK_STR(ev("multipleBirth.is(boolean)"), "[false]");
    CHECK_STR(ev("(multipleBirth as integer) * 2"), "[4]");
    CHECK_STR(ev("extension('http://x/sex').value.ofType(code)"), "[\"F\"]");
    CHECK_STR(ev("extension('http://x/race').extension('ombCategory').value.ofType(Coding).code"),
              "[\"2106-3\"]");
    CHECK_STR(ev("birthDate.extension('http://x/time').value.ofType(time)"), "[\"10:00:00\"]");
    CHECK_STR(ev("birthDate is date"), "[true]");
    /* primitives carrying only an extension (no value) */
    CHECK_STR(ev("deceasedDateTime.exists()"), "[false]");
    CHECK_STR(ev("maritalStatus.exists()"), "[false]");
    CHECK_STR(ev("address.line.count()"), "[2]");
    CHECK_STR(ev("address.line.extension('http://x/absent').value.ofType(code)"), "[\"unknown\"]");
    CHECK_STR(ev("address.line.join('|')"), "[\"Main St\"]");
    CHECK_STR(ev("address.line.hasValue()"), "[false]");
    CHECK_STR(ev("address.line.last().hasValue()"), "[false]");
    CHECK_STR(ev("address.line.first().hasValue()"), "[true]");
    CHECK_STR(ev("address.city.exists()"), "[true]");
    CHECK_STR(ev("address.city.extension('http://x/absent').exists()"), "[true]");
    CHECK_STR(ev("address.city"), "[null]");
    CHECK_STR(ev("'a' is String"), "[true]");
    CHECK_STR(ev("name.ofType(HumanName).count()"), "[2]");
    CHECK_STR(ev("gender is code"), "[true]");
    CHECK_STR(ev("gender.is(string)"), "[true]");
    CHECK_STR(ev("gender is boolean"), "[false]");
    CHECK_STR(ev("Patient.is(Resource)"), "[true]");
}

/* FHIR's FHIRPath mapping: a primitive's id and extension (from the "_x" twin, or the
 * aligned "_x" array) are its children, for path steps, children() and descendants(). */
static const char *PX =
    "{\"resourceType\":\"Patient\",\"birthDate\":\"1990-01-15\","
    "\"_birthDate\":{\"id\":\"bd\",\"extension\":[{\"url\":\"http://x\",\"valueString\":\"y\"}]},"
    "\"_gender\":{\"extension\":[{\"url\":\"http://g\",\"valueCode\":\"asked\"}]},"
    "\"name\":[{\"given\":[\"A\",\"B\"],\"_given\":[null,{\"id\":\"g2\",\"extension\":"
    "[{\"url\":\"http://n\",\"valueString\":\"nick\"}]}]}],"
    "\"active\":true}";

static void test_primitive_extensions(void)
{
    json_val *saved = RES;
    fl_err e = {0};
    RES = json_parse(A, PX, strlen(PX), NULL, &e);
    CHECK(RES != NULL);
    if (!RES) { RES = saved; return; }
    CHECK_STR(ev("birthDate"), "[\"1990-01-15\"]");
    CHECK_STR(ev("birthDate.extension.url"), "[\"http://x\"]");
    CHECK_STR(ev("birthDate.extension.count()"), "[1]");
    CHECK_STR(ev("birthDate.extension.valueString"), "[\"y\"]");
    CHECK_STR(ev("birthDate.extension.value.ofType(string)"), "[\"y\"]");
    CHECK_STR(ev("birthDate.extension('http://x').value"), "[\"y\"]");
    CHECK_STR(ev("birthDate.id"), "[\"bd\"]");
    CHECK_STR(ev("birthDate.children().count()"), "[2]");
    CHECK_STR(ev("birthDate.children().url"), "[\"http://x\"]");
    CHECK_STR(ev("birthDate.extension is Extension"), "[true]");
    CHECK_STR(ev("birthDate.hasValue()"), "[true]");
    /* only "_gender": a node without a value, with children */
    CHECK_STR(ev("gender.exists()"), "[true]");
    CHECK_STR(ev("gender.hasValue()"), "[false]");
    CHECK_STR(ev("gender.extension.url"), "[\"http://g\"]");
    CHECK_STR(ev("gender.extension.value.ofType(code)"), "[\"asked\"]");
    /* "_given" aligned by index with "given" */
    CHECK_STR(ev("name.given.extension.url"), "[\"http://n\"]");
    CHECK_STR(ev("name.given.id"), "[\"g2\"]");
    CHECK_STR(ev("name.given[1].extension.valueString"), "[\"nick\"]");
    CHECK_STR(ev("name.given[0].extension.exists()"), "[false]");
    CHECK_STR(ev("name.given.where(extension.exists())"), "[\"B\"]");
    /* a primitive without "_x" has no such children */
    CHECK_STR(ev("active.extension"), "[]");
    CHECK_STR(ev("active.id"), "[]");
    CHECK_STR(ev("active.children()"), "[]");
    /* birthDate, gender (extension only), name, active */
    CHECK_STR(ev("children().count()"), "[4]");
    /* 4 + birthDate: id, extension, url, valueString + gender: extension, url, valueCode
     * + name: given x2 + given[1]: id, extension, url, valueString */
    CHECK_STR(ev("descendants().count()"), "[17]");
    CHECK_STR(ev("descendants().ofType(Extension).url"), "[\"http://x\",\"http://g\",\"http://n\"]");
    RES = saved;
    /* the main fixture: "_line" array with a null value, "_city" alone */
    CHECK_STR(ev("address.line.extension.url"), "[\"http://x/absent\"]");
    CHECK_STR(ev("address.city.extension.valueCode"), "[\"asked\"]");
    CHECK_STR(ev("address.children().count()"), "[3]");
}

static void test_strings(void)
{
    CHECK_STR(ev("name.given.join(',')"), "[\"Ann,B,Annie\"]");
    CHECK_STR(ev("name.given.join()"), "[\"AnnBAnnie\"]");
    CHECK_STR(ev("'abc'.startsWith('ab')"), "[true]");
    CHECK_STR(ev("'abc'.endsWith('bc')"), "[true]");
    CHECK_STR(ev("'abc'.contains('d')"), "[false]");
    CHECK_STR(ev("'abc'.indexOf('c')"), "[2]");
    CHECK_STR(ev("'abcdef'.substring(2, 3)"), "[\"cde\"]");
    CHECK_STR(ev("'abc'.substring(5)"), "[]");
    CHECK_STR(ev("'AbC'.lower() + 'AbC'.upper()"), "[\"abcABC\"]");
    CHECK_STR(ev("'a-b-c'.replace('-', '+')"), "[\"a+b+c\"]");
    CHECK_STR(ev("'abc123'.matches('^[a-z]+[0-9]+$')"), "[true]");
    CHECK_STR(ev("'a1b22'.replaceMatches('[0-9]+', '#')"), "[\"a#b#\"]");
    CHECK_STR(ev("'hello'.length()"), "[5]");
    CHECK_STR(ev("'a,b'.split(',')"), "[\"a\",\"b\"]");
    CHECK_STR(ev("'  x '.trim()"), "[\"x\"]");
    CHECK_STR(ev("'abcabc'.lastIndexOf('bc')"), "[4]");
    CHECK_STR(ev("'abc'.lastIndexOf('x')"), "[-1]");
    CHECK_STR(ev("'ab'.toChars()"), "[\"a\",\"b\"]");
    CHECK_STR(ev("'hello'.encode('base64')"), "[\"aGVsbG8=\"]");
    CHECK_STR(ev("'aGVsbG8='.decode('base64')"), "[\"hello\"]");
    CHECK_STR(ev("'hi'.encode('hex')"), "[\"6869\"]");
    CHECK_STR(ev("'6869'.decode('hex')"), "[\"hi\"]");
    CHECK_STR(ev("('?' + '?>').encode('urlbase64')"), "[\"Pz8-\"]");
    CHECK_STR(ev("'x'.encode('rot13')"), "ERR:422");
    CHECK_STR(ev("16.sqrt()"), "[4]");
    CHECK_STR(ev("(-1).sqrt()"), "[]");
    CHECK_STR(ev("2.power(10)"), "[1024]");
    CHECK_STR(ev("100.log(10)"), "[2]");
    CHECK_STR(ev("0.ln()"), "[]");
    CHECK_STR(ev("name.given.startsWith('A')"), "ERR:422");
    CHECK_STR(ev("'x'.matches('(')"), "ERR:400");
    CHECK_STR(ev("'x'.matches('(' + '')"), "ERR:422");
    CHECK_STR(ev("name.given.where(matches('^A.n'))"), "[\"Ann\",\"Annie\"]");
    CHECK_STR(ev("'it''s'"), "ERR:400");
    CHECK_STR(ev("'it\\'s \\u0041'"), "[\"it's A\"]");
    CHECK_STR(ev("'\\uD83D\\uDE00'.length()"), "[1]");
    CHECK_STR(ev("'\\u00e9'.upper() = '\\u00c9'"), "[true]");
}

static void test_conversions(void)
{
    CHECK_STR(ev("'12'.toInteger() + 1"), "[13]");
    CHECK_STR(ev("'x'.toInteger()"), "[]");
    CHECK_STR(ev("'1.50'.toDecimal()"), "[1.50]");
    CHECK_STR(ev("5.toString()"), "[\"5\"]");
    CHECK_STR(ev("true.toString()"), "[\"true\"]");
    CHECK_STR(ev("'2020-01-02T10:00:00Z'.toDate()"), "[\"2020-01-02\"]");
    CHECK_STR(ev("'2020-01-02'.toDateTime() = @2020-01-02"), "[true]");
    CHECK_STR(ev("'yes'.toBoolean()"), "[true]");
    CHECK_STR(ev("2.5.round()"), "[3]");
    CHECK_STR(ev("(-2.5).abs()"), "[2.5]");
    CHECK_STR(ev("2.1.ceiling()"), "[3]");
    CHECK_STR(ev("'12'.convertsToInteger()"), "[true]");
    CHECK_STR(ev("'1x'.convertsToInteger()"), "[false]");
    CHECK_STR(ev("'2020-02'.convertsToDate()"), "[true]");
    CHECK_STR(ev("{}.convertsToString()"), "[]");
    CHECK_STR(ev("(1 | 2 | 3).aggregate($this + $total, 0)"), "[6]");
    CHECK_STR(ev("name.given.aggregate(iif($total.empty(), $this, $total + '-' + $this))"),
              "[\"Ann-B-Annie\"]");
}

static void test_dates(void)
{
    CHECK_STR(ev("birthDate = @1970-06"), "[true]");
    CHECK_STR(ev("birthDate = @1970-06-01"), "[]");
    CHECK_STR(ev("birthDate < @1971"), "[true]");
    CHECK_STR(ev("@2020-01-01T10:00:00+02:00 = @2020-01-01T08:00:00Z"), "[true]");
    CHECK_STR(ev("@2020-01-01T10:00:00.000 = @2020-01-01T10:00:00"), "[true]");
    CHECK_STR(ev("@T10:00 < @T11:00"), "[true]");
    CHECK_STR(ev("birthDate.lowBoundary()"), "[\"1970-06-01\"]");
    CHECK_STR(ev("birthDate.highBoundary()"), "[\"1970-06-30\"]");
    CHECK_STR(ev("@2010-10-10T.lowBoundary()"), "[\"2010-10-10T00:00:00.000+14:00\"]");
    CHECK_STR(ev("@2012-02.highBoundary()"), "[\"2012-02-29\"]");
    CHECK_STR(ev("1.0.lowBoundary()"), "[0.95]");
    CHECK_STR(ev("1.0.highBoundary()"), "[1.05]");
    CHECK_STR(ev("@T12:34.highBoundary()"), "[\"12:34:59.999\"]");
    CHECK_STR(ev("@2020-13-01"), "ERR:400");
    CHECK_STR(ev("@2020-01-31 + 1 month"), "[\"2020-02-29\"]");
    CHECK_STR(ev("@2020-01-01 - 1 day"), "[\"2019-12-31\"]");
    CHECK_STR(ev("@2020-01-01T10:00:00Z + 2 hours"), "[\"2020-01-01T12:00:00Z\"]");
    CHECK_STR(ev("@2020-01-01T10:00:00+02:00 + 30 'min'"), "[\"2020-01-01T10:30:00+02:00\"]");
    CHECK_STR(ev("birthDate + 1 year"), "[\"1971-06\"]");
    CHECK_STR(ev("@T23:00 + 2 hours"), "[\"01:00\"]");
    CHECK_STR(ev("@2020-01-01 + 1 'kg'"), "[]");
}

static void test_quantity_nodes(void)
{
    arena *a = arena_new(0);
    fl_err e = {0};
    const char *obs = "{\"resourceType\":\"Observation\",\"valueQuantity\":{\"value\":5.5,"
                      "\"unit\":\"milligram\",\"code\":\"mg\"}}";
    json_val *saved = RES;
    RES = json_parse(a, obs, strlen(obs), NULL, &e);
    CHECK_STR(ev("value.ofType(Quantity) > 5 'mg'"), "[true]");
    CHECK_STR(ev("value.ofType(Quantity) = 5.5 'mg'"), "[true]");
    CHECK_STR(ev("value.ofType(Quantity) = 5.5 'g'"), "[false]");
    CHECK_STR(ev("value.ofType(Quantity).value * 2"), "[11.0]");
    CHECK_STR(ev("value is Quantity"), "[true]");
    RES = saved;
    arena_free(a);
}

static void test_sof_functions(void)
{
    CHECK_STR(ev("getResourceKey()"), "[\"p1\"]");
    CHECK_STR(ev("link.other.getReferenceKey()"), "[\"p2\",\"o1\"]");
    CHECK_STR(ev("link.other.getReferenceKey(Patient)"), "[\"p2\"]");
    CHECK_STR(ev("link.other.getReferenceKey(Encounter)"), "[]");
    CHECK_STR(ev("getAidboxTs()"), "[\"2024-01-02T03:04:05Z\"]");
    CHECK_STR(ev("getAidboxCts()"), "[]");
    CHECK_STR(ev("getAidboxTxid()"), "[]");
    CHECK_STR(ev_env("%rowIndex + 1", NULL, NULL, 4), "[5]");
    CHECK_STR(ev("%resource.id"), "[\"p1\"]");

    fl_err e = {0};
    fp_expr *x = fp_compile("getAidboxTs()", NULL, &e);
    CHECK(x && fp_is_aidbox_ts(x));
    arena *ta = arena_new(0);
    fp_ctx c = {.a = ta, .resource = RES, .has_ts = true, .ts_us = 1000000, .txid = "42", .err = &e};
    fp_coll r;
    CHECK(fp_eval(x, &c, NULL, &r) && r.n == 1);
    if (r.n == 1) CHECK(r.v[0].len == 20 && !memcmp(r.v[0].s, "1970-01-01T00:00:01Z", 20));
    fp_free(x);
    x = fp_compile("getAidboxTxid()", NULL, &e);
    CHECK(x && fp_eval(x, &c, NULL, &r) && r.n == 1 && r.v[0].len == 2);
    fp_free(x);
    arena_free(ta);
}

static void test_constants(void)
{
    const char *names[] = {"use", "n"};
    fp_env env = {names, 2};
    fp_coll vars[2];
    fp_item a = {.kind = FP_STR, .s = "usual", .len = 5}, b = {.kind = FP_INT, .i = 1};
    vars[0] = (fp_coll){&a, 1};
    vars[1] = (fp_coll){&b, 1};
    CHECK_STR(ev_env("name.where(use = %use).family", &env, vars, 0), "[\"Jones\"]");
    CHECK_STR(ev_env("name[%n].family", &env, vars, 0), "[\"Jones\"]");
    CHECK_STR(ev_env("%nope", &env, vars, 0), "ERR:400");
    CHECK(strstr(ERR.msg, "nope") != NULL);
}

static void test_syntax_errors(void)
{
    const char *bad[] = {"", "name.", "@@", "name.where(", "'open", "foo()", "1 +", "name[0",
                         "name..x", "where(", "(1", "name.where()", "first(1)", "$that",
                         "1 2", "ofType(1)", "%", "`x", "a /* b", "#"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fl_err e = {0};
        fp_expr *x = fp_compile(bad[i], NULL, &e);
        CHECK(x == NULL);
        CHECK(e.status == 400);
        if (x) {
            fprintf(stderr, "  accepted bad expression: %s\n", bad[i]);
            fp_free(x);
        }
    }
    /* nesting limits instead of stack exhaustion */
    char deep[2100];
    memset(deep, '-', 2000);
    strcpy(deep + 2000, "1");
    fl_err d = {0};
    CHECK(fp_compile(deep, NULL, &d) == NULL && d.status == 400);
    memset(deep, '(', 2000);
    strcpy(deep + 2000, "1");
    fl_err_clear(&d);
    CHECK(fp_compile(deep, NULL, &d) == NULL && d.status == 400);
    fl_err e = {0};
    CHECK(fp_compile("name.where(use = )", NULL, &e) == NULL);
    CHECK(strstr(e.msg, "position 17") != NULL);
    CHECK(strstr(e.msg, "name.where(use = )") != NULL);
}

static void test_shapes(void)
{
    fl_err e = {0};
    struct { const char *x; fp_shape s; } cases[] = {
        {"name.family", FP_SHAPE_PATH}, {"id", FP_SHAPE_RESOURCE_KEY},
        {"getResourceKey()", FP_SHAPE_RESOURCE_KEY}, {"name.exists()", FP_SHAPE_BOOL_FN},
        {"name.count()", FP_SHAPE_INT_FN}, {"name.given.join(' ')", FP_SHAPE_STR_FN},
        {"getAidboxTs()", FP_SHAPE_TS_FN}, {"a = b", FP_SHAPE_BOOL_FN},
        {"name.first()", FP_SHAPE_OTHER}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fp_expr *x = fp_compile(cases[i].x, NULL, &e);
        CHECK(x && fp_expr_shape(x) == cases[i].s);
        fp_free(x);
    }
    struct { const char *x, *focus, *t; } inf[] = {
        {"birthDate", "Patient", "date"}, {"Patient.name.first().family", "Patient", "string"},
        {"value.ofType(Quantity).value", "Observation", "decimal"},
        {"issued", "Observation", "instant"}, {"name", "Patient", "HumanName"},
        {"contact.name.given", "Patient", "string"}, {"multipleBirth.ofType(integer) + 1", "Patient", "integer"},
        {"1 / 2", NULL, "decimal"}, {"name.exists()", "Patient", "boolean"},
        {"value.ofType(String)", "Observation", "string"}, {"value", "Observation", NULL},
        {"nosuch", "Patient", NULL}, {"iif(active, 1, 2)", "Patient", "integer"}};
    for (size_t i = 0; i < sizeof inf / sizeof *inf; i++) {
        fp_expr *x = fp_compile(inf[i].x, NULL, &e);
        const char *t = x ? fp_infer_type(x, inf[i].focus) : "?";
        if (inf[i].t) CHECK_STR(t, inf[i].t);
        else CHECK(t == NULL);
        fp_free(x);
    }
    fp_expr *x = fp_compile("Patient.name.family", NULL, &e);
    const char *nm[8];
    CHECK(fp_path_names(x, nm, 8) == 3 && !strcmp(nm[2], "family"));
    fp_free(x);
}

/* Token soup with a fixed seed: every expression must either fail to compile (400) or
 * evaluate to a result or a 422; never crash (this file also runs under ASan/UBSan). */
static void test_fuzz_token_soup(void)
{
    static const char *tok[] = {"name", "given", "family", ".", "(", ")", "[", "]", "0", "1",
                                "2.5", "'x'", "where", "select", "exists", "first", "join",
                                "ofType", "Quantity", "string", "+", "-", "*", "/", "=",
                                "!=", "~", "<", ">=", "and", "or", "implies", "|", "&", "$this",
                                "$index", "%resource", "%rowIndex", "@2020", "@T10:00",
                                "@2020-01-01T10:00:00Z", "{", "}", ",", " ", "is", "as", "div",
                                "mod", "iif", "count", "extension", "'http://x/race'", "value",
                                "lowBoundary", "substring", "`", "'", "\\", "1 year", "birthDate"};
    unsigned seed = 12345;
    int compiled = 0, evaluated = 0;
    for (int i = 0; i < 3000; i++) {
        char expr[256];
        size_t n = 0;
        int ntok = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 12;
        for (int k = 0; k < ntok; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *t = tok[(seed >> 16) % (sizeof tok / sizeof *tok)];
            size_t tl = strlen(t);
            if (n + tl + 1 >= sizeof expr) break;
            memcpy(expr + n, t, tl);
            n += tl;
        }
        expr[n] = 0;
        const char *r = ev(expr);
        if (strcmp(r, "ERR:400") != 0) compiled++;
        if (strncmp(r, "ERR:", 4) != 0) evaluated++;
        CHECK(strncmp(r, "ERR:", 4) != 0 || !strcmp(r, "ERR:400") || !strcmp(r, "ERR:422"));
    }
    CHECK(compiled > 100 && evaluated > 100);
}

int main(void)
{
    A = arena_new(0);
    fl_err e = {0};
    RES = json_parse(A, PT, strlen(PT), NULL, &e);
    if (!RES) {
        fprintf(stderr, "fixture: %s\n", e.msg);
        return 1;
    }
    RUN(test_paths);
    RUN(test_literals_and_math);
    RUN(test_logic);
    RUN(test_existence);
    RUN(test_filtering);
    RUN(test_types);
    RUN(test_primitive_extensions);
    RUN(test_strings);
    RUN(test_conversions);
    RUN(test_dates);
    RUN(test_quantity_nodes);
    RUN(test_sof_functions);
    RUN(test_constants);
    RUN(test_syntax_errors);
    RUN(test_shapes);
    RUN(test_fuzz_token_soup);
    arena_free(A);
    return t_report("fhirpath");
}
