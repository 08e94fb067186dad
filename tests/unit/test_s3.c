/* test_s3.c: unit tests of the S3 / Databricks / secrets helpers that need no network:
 * URL and key encoding, s3:// parsing, per-prefix settings, SQL identifiers and types,
 * secret references. The network paths are covered by tests/integration/test_s3*.py and
 * test_databricks.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lake/databricks.h"
#include "lake/s3.h"
#include "lake/secrets.h"
#include "t.h"

static void test_uri_encode(void)
{
    buf b = BUF_INIT;
    s3_uri_encode(&b, "a b/c~d_e.f-g+h=i&j%", true);
    CHECK_STR(b.p, "a%20b/c~d_e.f-g%2Bh%3Di%26j%25");
    buf_reset(&b);
    s3_uri_encode(&b, "t/_delta_log/0001.json", false);
    CHECK_STR(b.p, "t%2F_delta_log%2F0001.json");
    buf_reset(&b);
    s3_uri_encode(&b, "\xc3\xa9", true);   /* UTF-8 bytes, upper-case hex */
    CHECK_STR(b.p, "%C3%A9");
    buf_free(&b);
}

static void test_parse_url(void)
{
    fl_err e = {0};
    char *bucket, *prefix;
    CHECK(s3_parse_url("s3://my-bucket/a//b/", &bucket, &prefix, &e) == 0);
    CHECK_STR(bucket, "my-bucket");
    CHECK_STR(prefix, "a/b/");
    free(bucket);
    free(prefix);
    CHECK(s3_parse_url("s3://lake", &bucket, &prefix, &e) == 0);
    CHECK_STR(prefix, "");
    free(bucket);
    free(prefix);
    CHECK(s3_parse_url("s3://Bad_Bucket/x", &bucket, &prefix, &e) == -1 && e.status == 400);
    fl_err_clear(&e);
    CHECK(s3_parse_url("s3://ab/x", &bucket, &prefix, &e) == -1);
    fl_err_clear(&e);
    CHECK(s3_parse_url("gs://bucket/x", &bucket, &prefix, &e) == -1);
}

static void test_open_uses_registered_settings(void)
{
    /* no credentials anywhere: refused, and the message names what to set */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    fl_err e = {0};
    s3store *s = s3_open("s3://unit-bucket/t1", NULL, &e);
    CHECK(!s && e.status == 400 && strstr(e.msg, "AWS_ACCESS_KEY_ID"));
    fl_err_clear(&e);
    s3_config c = {.endpoint = "http://127.0.0.1:1", .access_key_id = "k", .secret_access_key = "sek"};
    s3_register("s3://unit-bucket/t1", &c);
    s = s3_open("s3://unit-bucket/t1/sub", NULL, &e);   /* longest prefix applies */
    CHECK(s != NULL);
    if (s) {
        CHECK(access(s3_spool_dir(s), F_OK) == 0);
        char spool[256];
        snprintf(spool, sizeof spool, "%s", s3_spool_dir(s));
        s3_close(s);
        CHECK(access(spool, F_OK) != 0);   /* spool removed */
    }
    CHECK(!s3_open("s3://unit-bucket/other", NULL, &e));   /* not under the prefix */
    CHECK(!strstr(e.msg, "sek"));
}

static void test_dbx_identifiers_and_types(void)
{
    buf b = BUF_INIT;
    CHECK(dbx_quote_table(&b, "main.fhir.patient_flat") == 0);
    CHECK_STR(b.p, "`main`.`fhir`.`patient_flat`");
    buf_reset(&b);
    CHECK(dbx_quote_table(&b, "fhir.patient_flat") == -1);
    CHECK(dbx_quote_table(&b, "a.b.c.d") == -1);
    CHECK(dbx_quote_table(&b, "a..c") == -1);
    CHECK(dbx_quote_table(&b, "a.b.c`; DROP") == -1);
    buf_reset(&b);
    dbx_sql_type(&b, ROWS_INT64, true);
    CHECK_STR(b.p, "ARRAY<BIGINT>");
    buf_reset(&b);
    dbx_sql_type(&b, ROWS_DECIMAL, false);
    CHECK_STR(b.p, "DECIMAL(38,18)");
    /* several views: catalog.schema + the view's name; a full name stays as it is */
    dbx_view_table(&b, "main.fhir", "patient_flat");
    CHECK_STR(b.p, "main.fhir.patient_flat");
    dbx_view_table(&b, "main.fhir.patients", "patient_flat");
    CHECK_STR(b.p, "main.fhir.patients");
    buf_free(&b);
}

static void test_dbx_check_params(void)
{
    fl_err e = {0};
    dbx_target t = {"https://x.cloud.databricks.com", NULL, "a.b.c", "s3://bkt/p"};
    CHECK(dbx_check(&t, &e) == -1 && !strcmp(e.where, "databricksWarehouseId"));
    fl_err_clear(&e);
    t.warehouse = "wh";
    t.table = "b.c";
    CHECK(dbx_check(&t, &e) == -1 && !strcmp(e.where, "tableName"));
    fl_err_clear(&e);
    t.table = "a.b.c";
    t.staging = "/tmp/x";
    CHECK(dbx_check(&t, &e) == -1 && !strcmp(e.where, "stagingTablePath"));
    fl_err_clear(&e);
    t.staging = "s3://bkt/p";
    unsetenv("FHIRLAKE_DATABRICKS_CLIENT_ID");
    CHECK(dbx_check(&t, &e) == -1 && strstr(e.msg, "FHIRLAKE_DATABRICKS_CLIENT_ID"));
}

static void test_secrets(void)
{
    char dir[] = "/tmp/fhirlake-secrets-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/secrets.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"k\": \"the-value\"}", f);
    fclose(f);
    unsetenv("FHIRLAKE_SECRETS_FILE");
    fl_err e = {0};
    char *v = NULL;
    CHECK(secrets_resolve(dir, "awsSecretAccessKey", "secret:k", &v, &e) == 0);
    CHECK_STR(v, "the-value");
    free(v);
    CHECK(secrets_resolve(dir, "awsSecretAccessKey", "plain-value", &v, &e) == -1);
    CHECK(e.status == 400 && !strstr(e.msg, "plain-value"));
    fl_err_clear(&e);
    CHECK(secrets_resolve(dir, "awsSecretAccessKey", "secret:nope", &v, &e) == -1 && !v);
    CHECK(strstr(e.msg, "nope") != NULL);
    CHECK(!secrets_is_ref("secret:") && secrets_is_ref("secret:x"));
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    RUN(test_uri_encode);
    RUN(test_parse_url);
    RUN(test_open_uses_registered_settings);
    RUN(test_dbx_identifiers_and_types);
    RUN(test_dbx_check_params);
    RUN(test_secrets);
    return t_report("s3");
}
