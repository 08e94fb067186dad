/* test_jobs.c: unit tests of the export engine (jobs.h) over a real store in a temp dir —
 * file output (ndjson, csv) of a full export with chunks, _since, the manifest, a Delta
 * export with tombstones, synchronous validation errors, cancel/status of unknown ids,
 * and resume of a job persisted by an earlier engine. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/jobs.h"
#include "t.h"

static char dir[64];

static void rm_rf(const char *p)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", p);
}

typedef struct body {
    const char *text;
} body;

static void render(void *ctx, int64_t version, int64_t ts, buf *out)
{
    (void)version;
    (void)ts;
    buf_puts(out, ((body *)ctx)->text);
}

static void put(store *s, const char *id, const char *gender)
{
    char text[256];
    snprintf(text, sizeof text,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"gender\":\"%s\"}", id, gender);
    body b = {text};
    store_op op = {.kind = STORE_PUT, .type = "Patient", .id = id, .if_match = -1,
                   .render = render, .render_ctx = &b};
    fl_err err;
    fl_err_clear(&err);
    CHECK(store_commit(s, &op, 1, NULL, &err) == 0);
}

static void del(store *s, const char *id)
{
    store_op op = {.kind = STORE_DELETE, .type = "Patient", .id = id, .if_match = -1};
    fl_err err;
    fl_err_clear(&err);
    CHECK(store_commit(s, &op, 1, NULL, &err) == 0);
}

static const char VIEW[] =
    "{\"resourceType\":\"ViewDefinition\",\"name\":\"pf\",\"resource\":\"Patient\","
    "\"select\":[{\"column\":[{\"name\":\"id\",\"path\":\"id\"},"
    "{\"name\":\"ts\",\"path\":\"getAidboxTs()\"},{\"name\":\"gender\",\"path\":\"gender\"}]}]}";

static const char NO_TS_VIEW[] =
    "{\"resourceType\":\"ViewDefinition\",\"name\":\"nt\",\"resource\":\"Patient\","
    "\"select\":[{\"column\":[{\"name\":\"id\",\"path\":\"id\"}]}]}";

/* Waits for a job to finish; returns the manifest text (caller frees) or NULL. */
static char *wait_job(jobs_engine *e, const char *id)
{
    for (int i = 0; i < 2000; i++) {
        buf out = BUF_INIT;
        char progress[64];
        fl_err err;
        fl_err_clear(&err);
        int rc = jobs_status(e, id, &out, progress, sizeof progress, &err);
        if (rc == JOBS_FINISHED) return buf_detach(&out);
        buf_free(&out);
        if (rc < 0) return NULL;
        usleep(5000);
    }
    return NULL;
}

static long count_lines(const char *path, const char *needle, long *matches)
{
    FILE *f = fopen(path, "r");
    char line[512];
    long n = 0;
    *matches = 0;
    while (f && fgets(line, sizeof line, f)) {
        n++;
        if (needle && strstr(line, needle)) (*matches)++;
    }
    if (f) fclose(f);
    return f ? n : -1;
}

static jobs_spec spec_of(arena *a, const char *view_text, jobs_view *jv)
{
    fl_err err;
    fl_err_clear(&err);
    jv->name = "pf";
    jv->view = json_parse(a, view_text, strlen(view_text), NULL, &err);
    jv->table = NULL;
    jobs_spec sp = {.views = jv, .n_views = 1, .format = "ndjson", .header = true,
                    .chunk_count = 3};
    return sp;
}

static void test_file_export_and_since(void)
{
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    CHECK(s);
    if (!s) return;
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        put(s, id, i % 2 ? "female" : "male");
    }
    jobs_engine *e = jobs_start(s, dir, 2, &err);
    CHECK(e);
    arena *a = arena_new(0);
    jobs_view jv;
    jobs_spec sp = spec_of(a, VIEW, &jv);
    char id[37];
    CHECK(jobs_submit(e, &sp, id, &err) == 0);
    char *m = wait_job(e, id);
    CHECK(m && strstr(m, "\"completed\""));
    CHECK(m && strstr(m, "exportEndTime"));
    long total = 0, males = 0;
    for (int c = 0; c < 3; c++) {
        char path[256];
        long mm;
        snprintf(path, sizeof path, "%s/exports/%s/pf-%d.ndjson", dir, id, c);
        long n = count_lines(path, "\"male\"", &mm);
        CHECK(n >= 0);
        total += n;
        males += mm;
    }
    CHECK(total == 20);
    CHECK(males == 10);
    free(m);

    /* _since: only what changed after the first export's watermark */
    int64_t since = store_max_ts(s);
    put(s, "p3", "other");
    put(s, "p3", "unknown"); /* two versions: only the last one is exported */
    put(s, "new", "male");
    sp.since = since;
    sp.chunk_count = 1;
    sp.format = "csv";
    CHECK(jobs_submit(e, &sp, id, &err) == 0);
    m = wait_job(e, id);
    CHECK(m && strstr(m, "\"completed\""));
    char path[256];
    long hits;
    snprintf(path, sizeof path, "%s/exports/%s/pf.csv", dir, id);
    CHECK(count_lines(path, "p3,", &hits) == 3); /* header + p3 + new */
    CHECK(hits == 1);
    CHECK(count_lines(path, "unknown", &hits) == 3 && hits == 1);
    free(m);
    jobs_stop(e);
    arena_free(a);
    store_close(s);
}

static void test_delta_export_tombstones(void)
{
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    jobs_engine *e = s ? jobs_start(s, dir, 2, &err) : NULL;
    CHECK(e);
    if (!e) return;
    arena *a = arena_new(0);
    jobs_view jv;
    jobs_spec sp = spec_of(a, VIEW, &jv);
    sp.lakehouse = true;
    char id[37];
    CHECK(jobs_submit(e, &sp, id, &err) == 0);
    char *m = wait_job(e, id);
    CHECK(m && strstr(m, "\"completed\"") && strstr(m, "lake/pf"));
    CHECK(m && strstr(m, "\"valueInteger\":21"));
    free(m);
    char log[256];
    snprintf(log, sizeof log, "%s/lake/pf/_delta_log/00000000000000000000.json", dir);
    CHECK(access(log, F_OK) == 0);
    int64_t since = store_max_ts(s);
    del(s, "p1");
    sp.since = since;
    CHECK(jobs_submit(e, &sp, id, &err) == 0);
    m = wait_job(e, id);
    CHECK(m && strstr(m, "\"completed\"") && strstr(m, "\"valueInteger\":1"));
    free(m);
    snprintf(log, sizeof log, "%s/lake/pf/_delta_log/00000000000000000001.json", dir);
    CHECK(access(log, F_OK) == 0);
    jobs_stop(e);
    arena_free(a);
    store_close(s);
}

static void test_validation_and_unknown(void)
{
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    jobs_engine *e = s ? jobs_start(s, dir, 1, &err) : NULL;
    CHECK(e);
    if (!e) return;
    arena *a = arena_new(0);
    jobs_view jv;
    char id[37];
    jobs_spec sp = spec_of(a, VIEW, &jv);
    sp.chunk_count = 0;
    CHECK(jobs_submit(e, &sp, id, &err) < 0 && err.status == 400);
    CHECK_STR(err.where, "chunkCount");
    fl_err_clear(&err);
    sp = spec_of(a, NO_TS_VIEW, &jv);
    sp.since = 5;
    CHECK(jobs_submit(e, &sp, id, &err) < 0 && err.status == 400);
    CHECK(strstr(err.msg, "getAidboxTs()") != NULL);
    fl_err_clear(&err);
    sp = spec_of(a, VIEW, &jv);
    sp.lakehouse = true;
    jv.table = "s3x://bucket/t";
    CHECK(jobs_submit(e, &sp, id, &err) < 0 && err.status == 400);
    CHECK(strstr(err.where, "tablePath") != NULL);
    fl_err_clear(&err);
    sp = spec_of(a, VIEW, &jv);
    jv.name = "bad name";
    CHECK(jobs_submit(e, &sp, id, &err) < 0 && err.status == 400);
    fl_err_clear(&err);
    sp.n_views = 0;
    CHECK(jobs_submit(e, &sp, id, &err) < 0 && err.status == 400);
    fl_err_clear(&err);
    buf out = BUF_INIT;
    char progress[64];
    CHECK(jobs_status(e, "no-such-job", &out, progress, sizeof progress, &err) < 0);
    CHECK(err.status == 404);
    fl_err_clear(&err);
    CHECK(jobs_cancel(e, "no-such-job", &err) < 0 && err.status == 404);
    buf_free(&out);
    jobs_stop(e);
    arena_free(a);
    store_close(s);
}

/* A job persisted as in-progress (as after a crash) is picked up by the next engine. */
static void test_resume(void)
{
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(dir, NULL, &err);
    if (!s) return;
    buf st = BUF_INIT;
    buf_printf(&st, "{\"spec\":{\"views\":[{\"name\":\"pf\",\"view\":%s}],\"lakehouse\":false,"
                    "\"format\":\"ndjson\",\"header\":true,\"since\":0,\"chunks\":2,"
                    "\"patients\":[]},\"W\":%lld,\"start\":1,\"done\":[0,0],\"rows\":[0,0]}",
               VIEW, (long long)store_max_ts(s));
    store_job j = {.id = "resume-job", .kind = JOBS_KIND_EXPORT, .status = "in-progress",
                   .state = st.p, .created = 1, .updated = 1};
    CHECK(store_job_put(s, &j, &err) == 0);
    jobs_engine *e = jobs_start(s, dir, 2, &err);
    char *m = e ? wait_job(e, "resume-job") : NULL;
    CHECK(m && strstr(m, "\"completed\""));
    free(m);
    jobs_stop(e);
    buf_free(&st);
    store_close(s);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/fl-test-jobs-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    fl_log_level = FL_LOG_WARN;
    RUN(test_file_export_and_since);
    RUN(test_delta_export_tombstones);
    RUN(test_validation_and_unknown);
    RUN(test_resume);
    rm_rf(dir);
    return t_report("jobs");
}
