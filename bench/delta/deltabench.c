/* deltabench.c: times a Delta append of N flat rows through lake.h (bench/delta/run.sh).
 * The rows (the same deterministic values bench/delta/peer_append.py gives delta-rs) are
 * built in memory first, untimed, in batches of 65536; then one lake writer appends them
 * all and commits, timed; best of R runs, each into a fresh table directory.
 *   deltabench N TABLE_DIR CODEC R [THREADS] -> prints {"rows":N,"seconds":S,"bytes":B}
 * Merge (bench/delta/merge_dv.sh): a fresh table of N rows in files of FILE_ROWS rows
 * (untimed, every run), then a merge of every STRIDE-th key (new values) is timed, by
 * deletion vectors (dv) or by rewriting the files (cow); best of R runs.
 *   deltabench merge N TABLE_DIR CODEC R FILE_ROWS STRIDE dv|cow
 *     -> {"rows":N,"merged":M,"seconds":S,"files_removed":..,"files_dv":..,"rows_rewritten":..}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lake/lake.h"

#define BATCH 65536

static rows_schema *schema(void)
{
    rows_schema *s = rows_schema_new();
    rows_schema_add(s, "id", ROWS_STRING, false);
    rows_schema_add(s, "gender", ROWS_STRING, false);
    rows_schema_add(s, "birth_date", ROWS_DATE, false);
    rows_schema_add(s, "family_name", ROWS_STRING, false);
    rows_schema_add(s, "given_name", ROWS_STRING, false);
    rows_schema_add(s, "n", ROWS_INT64, false);
    rows_schema_add(s, "x", ROWS_DOUBLE, false);
    rows_schema_add(s, "ts", ROWS_TIMESTAMP, false);
    return s;
}

static void fill_step(rows_batch *b, int64_t from, int64_t to, int64_t step, int64_t salt)
{
    char t[64];
    for (int64_t i = from; i < to; i += step) {
        rows_begin_row(b);
        int n = snprintf(t, sizeof t, "pat-%08lld", (long long)i);
        rows_set_str(b, 0, t, (size_t)n);
        rows_set_str(b, 1, i % 2 ? "male" : "female", i % 2 ? 4 : 6);
        rows_set_int(b, 2, (i * 7919) % 36500 - 10000);
        n = snprintf(t, sizeof t, "Fam%lld", (long long)(i % 5000));
        rows_set_str(b, 3, t, (size_t)n);
        n = snprintf(t, sizeof t, "Giv%lld", (long long)(i % 3000));
        rows_set_str(b, 4, t, (size_t)n);
        rows_set_int(b, 5, i * 3 + salt);
        rows_set_double(b, 6, (double)i / 7.0);
        rows_set_int(b, 7, 1700000000000000LL + i * 1000003LL);
        rows_end_row(b);
    }
}

static void fill(rows_batch *b, int64_t from, int64_t to)
{
    fill_step(b, from, to, 1, 0);
}

/* Writes all batches into dir in one commit with options o; -1 with a message on failure. */
static int write_all(const char *dir, rows_schema *s, rows_batch **bs, size_t nb,
                     const lake_options *o, lake_result *res)
{
    fl_err e = {0};
    lake_writer *w = lake_writer_open(dir, s, o, &e);
    int rc = w ? 0 : -1;
    for (size_t k = 0; rc == 0 && k < nb; k++) rc = lake_write(w, bs[k], &e);
    if (rc == 0) rc = lake_commit(w, res, &e);
    else lake_abort(w);
    if (rc != 0) fprintf(stderr, "deltabench: %s\n", e.msg);
    return rc;
}

static int bench_merge(int argc, char **argv)
{
    if (argc < 9) {
        fprintf(stderr, "usage: deltabench merge N TABLE_DIR CODEC RUNS FILE_ROWS STRIDE dv|cow\n");
        return 2;
    }
    int64_t n = atoll(argv[2]), file_rows = atoll(argv[6]), stride = atoll(argv[7]);
    int runs = atoi(argv[5]);
    bool cow = !strcmp(argv[8], "cow");
    rows_schema *s = schema();
    size_t nb = (size_t)((n + BATCH - 1) / BATCH);
    rows_batch **bs = calloc(nb, sizeof *bs);
    for (size_t k = 0; k < nb; k++) {
        bs[k] = rows_batch_new(s);
        int64_t lo = (int64_t)k * BATCH, hi = lo + BATCH < n ? lo + BATCH : n;
        fill(bs[k], lo, hi);
    }
    rows_batch *upd = rows_batch_new(s);   /* every stride-th key, new values */
    fill_step(upd, stride / 2, n, stride, 1);
    lake_options o;
    lake_options_init(&o);
    o.mode = LAKE_APPEND;
    o.file_rows = file_rows;
    o.copy_on_write = cow;
    if (pq_codec_parse(argv[4], &o.codec) != 0) return 2;
    lake_options m = o;
    m.mode = LAKE_MERGE;
    m.key = "id";
    double best = 1e30;
    lake_result res = {0};
    for (int r = 0; r < runs; r++) {
        char dir[1024], cmd[1100];
        snprintf(dir, sizeof dir, "%s/run%d", argv[3], r);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0 || write_all(dir, s, bs, nb, &o, &res) != 0) return 1;
        int64_t t0 = fl_mono_micros();
        if (write_all(dir, s, &upd, 1, &m, &res) != 0) return 1;
        double sec = (double)(fl_mono_micros() - t0) / 1e6;
        if (sec < best) best = sec;
    }
    printf("{\"rows\":%lld,\"merged\":%zu,\"seconds\":%.4f,\"files_removed\":%lld,"
           "\"files_dv\":%lld,\"rows_rewritten\":%lld,\"rows_deleted\":%lld}\n",
           (long long)n, upd->n_rows, best, (long long)res.files_removed,
           (long long)res.files_dv, (long long)res.rows_rewritten, (long long)res.rows_deleted);
    for (size_t k = 0; k < nb; k++) rows_batch_free(bs[k]);
    free(bs);
    rows_batch_free(upd);
    rows_schema_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "merge")) return bench_merge(argc, argv);
    if (argc < 5) {
        fprintf(stderr, "usage: deltabench N TABLE_DIR CODEC RUNS [THREADS]\n");
        return 2;
    }
    int64_t n = atoll(argv[1]);
    int runs = atoi(argv[4]);
    rows_schema *s = schema();
    size_t nb = (size_t)((n + BATCH - 1) / BATCH);
    rows_batch **bs = calloc(nb, sizeof *bs);
    for (size_t k = 0; k < nb; k++) {
        bs[k] = rows_batch_new(s);
        int64_t lo = (int64_t)k * BATCH, hi = lo + BATCH < n ? lo + BATCH : n;
        fill(bs[k], lo, hi);
    }
    lake_options o;
    lake_options_init(&o);
    o.mode = LAKE_APPEND;
    o.threads = argc > 5 ? atoi(argv[5]) : 1;
    if (pq_codec_parse(argv[3], &o.codec) != 0) return 2;
    double best = 1e30;
    int64_t bytes = 0;
    for (int r = 0; r < runs; r++) {
        char dir[1024], cmd[1100];
        snprintf(dir, sizeof dir, "%s/run%d", argv[2], r);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) return 1;
        fl_err e = {0};
        int64_t t0 = fl_mono_micros();
        lake_writer *w = lake_writer_open(dir, s, &o, &e);
        int rc = w ? 0 : -1;
        for (size_t k = 0; rc == 0 && k < nb; k++) rc = lake_write(w, bs[k], &e);
        lake_result res;
        if (rc == 0) rc = lake_commit(w, &res, &e);
        else lake_abort(w);
        double sec = (double)(fl_mono_micros() - t0) / 1e6;
        if (rc != 0) {
            fprintf(stderr, "deltabench: %s\n", e.msg);
            return 1;
        }
        if (sec < best) best = sec;
        objstore *os = objstore_open(dir, false, &e);
        objstore_listing l;
        bytes = 0;
        if (os && objstore_list(os, "", NULL, &l, &e) == 0) {
            for (size_t i = 0; i < l.n; i++)
                if (strstr(l.e[i].key, ".parquet")) bytes += l.e[i].size;
            objstore_list_free(&l);
        }
        objstore_close(os);
    }
    printf("{\"rows\":%lld,\"seconds\":%.4f,\"bytes\":%lld}\n", (long long)n, best,
           (long long)bytes);
    for (size_t k = 0; k < nb; k++) rows_batch_free(bs[k]);
    free(bs);
    rows_schema_free(s);
    return 0;
}
