/* test_subs.c: the subs room on a real store in a temp dir — topic/destination validation,
 * the listener's immutability rule, initial export + live delivery into a Delta table
 * (txn per batch), $status counters, DELETE dropping the destination. Also runs under
 * ASan+UBSan (make asan-unit), which is where the worker threads get checked. */
#include "t.h"
#include "lake/delta.h"
#include "lake/objstore.h"
#include "store/store.h"
#include "subs/subs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void render(void *ctx, int64_t version, int64_t ts, buf *out)
{
    (void)version;
    (void)ts;
    buf_puts(out, ctx);
}

static int put(store *s, const char *type, const char *id, const char *body, fl_err *err)
{
    store_op op = {.kind = STORE_PUT, .type = type, .id = id, .if_match = -1,
                   .render = render, .render_ctx = (void *)body};
    fl_err_clear(err);
    return store_commit(s, &op, 1, NULL, err);
}

static int del(store *s, const char *type, const char *id, fl_err *err)
{
    store_op op = {.kind = STORE_DELETE, .type = type, .id = id, .if_match = -1};
    fl_err_clear(err);
    return store_commit(s, &op, 1, NULL, err);
}

static int check_json(subs *sb, const char *text, bool topic, fl_err *err)
{
    arena *a = arena_new(0);
    fl_err_clear(err);
    json_val *v = json_parse(a, text, strlen(text), NULL, err);
    int rc = !v ? -1 : topic ? subs_validate_topic(v, err) : subs_validate_destination(sb, v, err);
    arena_free(a);
    return rc;
}

static const char *TOPIC =
    "{\"resourceType\":\"AidboxSubscriptionTopic\",\"id\":\"t\",\"url\":\"urn:t\","
    "\"status\":\"active\",\"trigger\":[{\"resource\":\"Patient\","
    "\"supportedInteraction\":[\"create\",\"update\",\"delete\"]}]}";
static const char *VIEW =
    "{\"resourceType\":\"ViewDefinition\",\"id\":\"pv\",\"name\":\"pflat\",\"resource\":\"Patient\","
    "\"status\":\"active\",\"select\":[{\"column\":[{\"name\":\"id\",\"path\":\"id\"},"
    "{\"name\":\"ts\",\"path\":\"getAidboxTs()\"},{\"name\":\"gender\",\"path\":\"gender\"}]}]}";

static void test_topic_validation(void)
{
    fl_err err;
    CHECK(check_json(NULL, TOPIC, true, &err) == 0);
    CHECK(check_json(NULL, "{\"status\":\"active\",\"trigger\":[{\"resource\":\"Patient\"}]}", true,
                     &err) == -1);
    CHECK_STR(err.where, "url");
    CHECK(check_json(NULL, "{\"url\":\"u\",\"status\":\"active\",\"trigger\":[]}", true, &err) == -1);
    CHECK_STR(err.where, "trigger");
    CHECK(check_json(NULL, "{\"url\":\"u\",\"status\":\"active\",\"trigger\":[{\"resource\":\"Patient\","
                           "\"supportedInteraction\":[\"read\"]}]}", true, &err) == -1);
    CHECK_STR(err.where, "trigger[0].supportedInteraction[0]");
    CHECK(check_json(NULL, "{\"url\":\"u\",\"status\":\"active\",\"trigger\":[{\"resource\":\"Patient\","
                           "\"fhirPathCriteria\":\"((\"}]}", true, &err) == -1);
    CHECK_STR(err.where, "trigger[0].fhirPathCriteria");
    CHECK(check_json(NULL, "{\"url\":\"u\",\"status\":\"active\",\"trigger\":[{\"resource\":\"Patient\","
                           "\"fhirPathCriteria\":\"%current.gender != %previous.gender\"}]}",
                     true, &err) == 0);
}

static const char *dest_body(const char *params)
{
    static char b[1024];
    snprintf(b, sizeof b, "{\"resourceType\":\"AidboxTopicDestination\",\"id\":\"d1\","
                          "\"topic\":\"urn:t\",\"kind\":\"data-lakehouse-at-least-once\","
                          "\"parameter\":[%s]}", params);
    return b;
}

static bool status_has(subs *sb, const char *id, const char *what)
{
    buf b = BUF_INIT;
    fl_err err;
    fl_err_clear(&err);
    bool ok = subs_status(sb, id, &b, &err) == 0;
    if (ok) {
        buf_putc(&b, 0);
        ok = strstr(b.p, what) != NULL;
    }
    buf_free(&b);
    return ok;
}

static bool wait_status(subs *sb, const char *id, const char *what)
{
    for (int i = 0; i < 400; i++) {
        if (status_has(sb, id, what)) return true;
        usleep(50000);
    }
    return false;
}

static void test_delivery(void)
{
    snprintf(dir, sizeof dir, "/tmp/fl_subs_test_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    CHECK(s != NULL);
    if (!s) return;
    subs *sb = subs_open(s, dir, &err);
    CHECK(sb != NULL);
    CHECK(put(s, "ViewDefinition", "pv", VIEW, &err) == 0);
    CHECK(put(s, SUBS_TOPIC_TYPE, "t", TOPIC, &err) == 0);
    CHECK(put(s, "Patient", "p0", "{\"resourceType\":\"Patient\",\"id\":\"p0\",\"gender\":\"male\"}",
              &err) == 0);
    /* destination validation */
    const char *vd = "{\"name\":\"viewDefinition\",\"valueString\":\"pflat\"}";
    CHECK(check_json(sb, dest_body(vd), false, &err) == 0);
    CHECK(check_json(sb, dest_body("{\"name\":\"batchSize\",\"valueUnsignedInt\":5}"), false, &err) == -1);
    CHECK_STR(err.where, "viewDefinition");
    CHECK(check_json(sb, dest_body("{\"name\":\"viewDefinition\",\"valueString\":\"nope\"}"), false,
                     &err) == -1);
    CHECK_STR(err.where, "viewDefinition");
    char two[512];
    snprintf(two, sizeof two, "%s,{\"name\":\"apiToken\",\"valueString\":\"s3cr3t\"}", vd);
    CHECK(check_json(sb, dest_body(two), false, &err) == -1); /* clear credentials: refused */
    CHECK_STR(err.where, "apiToken");
    CHECK(strstr(err.msg, "s3cr3t") == NULL);
    snprintf(two, sizeof two, "%s,{\"name\":\"apiToken\",\"valueInteger\":987654}", vd);
    CHECK(check_json(sb, dest_body(two), false, &err) == -1);
    CHECK_STR(err.where, "apiToken");
    CHECK(strstr(err.msg, "987654") == NULL);
    snprintf(two, sizeof two, "%s,{\"name\":\"bogus\",\"valueString\":\"x\"}", vd);
    CHECK(check_json(sb, dest_body(two), false, &err) == -1);
    CHECK_STR(err.where, "bogus");
    snprintf(two, sizeof two, "%s,{\"name\":\"tableMode\",\"valueString\":\"upsert\"}", vd);
    CHECK(check_json(sb, dest_body(two), false, &err) == -1);
    CHECK_STR(err.where, "tableMode");
    /* create: initial export of p0, then live changes */
    snprintf(two, sizeof two, "%s,{\"name\":\"sendIntervalMs\",\"valueUnsignedInt\":10}", vd);
    char body[1024];
    snprintf(body, sizeof body, "%s", dest_body(two));
    CHECK(put(s, SUBS_DEST_TYPE, "d1", body, &err) == 0);
    CHECK(put(s, SUBS_DEST_TYPE, "d1", body, &err) == -1); /* immutable */
    CHECK(err.status == 405);
    CHECK(put(s, "Patient", "p1", "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"gender\":\"female\"}",
              &err) == 0);
    CHECK(put(s, "Patient", "p1", "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"gender\":\"other\"}",
              &err) == 0);
    CHECK(del(s, "Patient", "p0", &err) == 0);
    CHECK(wait_status(sb, "d1", "\"messagesDelivered\",\"valueInteger\":3"));
    CHECK(status_has(sb, "d1", "\"initialExportStatus\",\"valueString\":\"completed\""));
    CHECK(status_has(sb, "d1", "\"initialExportProgress_rowsSent\",\"valueInteger\":1"));
    /* the table: every commit carries txn d1; the last batch number is the version */
    char table[400];
    snprintf(table, sizeof table, "%s/lake/pflat", dir);
    objstore *os = objstore_open(table, false, &err);
    CHECK(os != NULL);
    delta_snapshot *snap = os ? delta_snapshot_load(os, -1, false, &err) : NULL;
    CHECK(snap && snap->version >= 1);
    CHECK(snap && delta_txn_version(snap, "d1") >= 2);
    delta_snapshot_free(snap);
    objstore_close(os);
    /* DELETE stops it */
    CHECK(del(s, SUBS_DEST_TYPE, "d1", &err) == 0);
    fl_err_clear(&err);
    buf b = BUF_INIT;
    CHECK(subs_status(sb, "d1", &b, &err) == -1 && err.status == 404);
    buf_free(&b);
    subs_close(sb);
    store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    fl_log_level = FL_LOG_ERROR;
    RUN(test_topic_validation);
    RUN(test_delivery);
    return t_report("subs");
}
