/* jobs: the export engine behind $viewdefinition-export — plans a job as views x chunks,
 * runs the chunks on a pool of worker threads, stages their rows, finalizes with one
 * atomic Delta commit per view (or lists the files written), persists every step in the
 * store's jobs table, resumes unfinished jobs on start, cancels on request.
 *
 * Contract:
 *  - jobs_submit() validates the request (compiles every view, checks targets, _since
 *    needs a getAidboxTs() column and a key column) and fails synchronously with status
 *    400/422 and `where` naming the parameter; on success the job is persisted with its
 *    watermark W = store_max_ts() at submit, so the whole job reads one snapshot at W.
 *  - Full export, K > 1: at submit, store_split() cuts each view's type into K id ranges
 *    of about equal size (bounds persisted in the state, so a resumed job cuts the same
 *    chunks); chunk c reads only its range with store_scan_range(type, W) — no rescan of
 *    the type per chunk. K = 1 reads store_scan(type, W). A _since export uses
 *    K = min(chunkCount, one chunk per 5,000 changes of its busiest view), fixed at
 *    submit: each chunk becomes a data file, and small files only cost. Chunk c of it
 *    reads store_changes_final(type, since, W, c, K): the final state of each changed id
 *    of its hash part, once (a deleted one becomes a tombstone row: key, ts,
 *    is_deleted = 1, other columns null). Rows get getAidboxTs() = ts of the version
 *    and getAidboxCts() = ts of version 1 (store_res.cts).
 *  - Lakehouse output: each chunk writes one staging Parquet file under
 *    DATA/exports/<id>/staging/ with its Delta stats beside it (.stats); when all chunks
 *    are done, the staging files themselves become data files of the Delta table
 *    (lake_adopt: no decode, no re-encode; with the key index each chunk built while
 *    writing, so later merges find old rows without reading the files, lake.h) and are
 *    merged in ONE commit carrying txn(appId "fhirlake-export-<id>-<v>",
 *    version 1), so a finalize repeated after a crash is recognised and skipped. Full
 *    export: merge on the key column with delete_absent (tombstones for keys that are
 *    gone); without a key column, overwrite. _since export: merge without delete_absent.
 *  - File output: each chunk writes DATA/exports/<id>/<name>[-<c>].<ext> (temp + rename).
 *  - The job's state JSON (store_job.state) holds the request, W, the done chunks with
 *    their row counts, and at the end the outputs or the error; status is one of
 *    "in-progress", "completed", "failed", "cancelled". Status survives restarts; a
 *    restarted engine reruns only the chunks not yet done.
 *  - Memory per running chunk is one row batch plus, for _since, the changed ids.
 */
#ifndef FL_JOBS_H
#define FL_JOBS_H

#include "../json/json.h"
#include "../store/store.h"
#include "../util/util.h"

#define JOBS_KIND_EXPORT "viewdefinition-export"
#define JOBS_MAX_CHUNKS 256

typedef struct jobs_engine jobs_engine;

/* Starts `threads` workers (0 = 4) and resumes every in-progress export job of the store.
 * data_dir is where lake/ and exports/ live. */
jobs_engine *jobs_start(store *s, const char *data_dir, int threads, fl_err *err);
/* Stops the workers (a running chunk is abandoned and redone on the next start). */
void jobs_stop(jobs_engine *e);

typedef struct jobs_view {
    const char *name;        /* output name (sql-name) */
    const json_val *view;    /* the ViewDefinition resource */
    const char *table;       /* lakehouse: table path or file:// URI; NULL = DATA/lake/<name> */
} jobs_view;

typedef struct jobs_spec {
    jobs_view *views;
    size_t n_views;
    bool lakehouse;          /* kind = data-lakehouse */
    const char *format;      /* file output: "ndjson" (default), "csv", "json", "parquet" */
    bool header;             /* csv header line */
    int64_t since;           /* 0 = full export */
    int chunk_count;         /* 1..JOBS_MAX_CHUNKS */
    const char *client_tracking_id; /* may be NULL */
    bool copy_on_write;      /* deletionVectors = false: a table the export creates gets
                              * no DV feature and merges rewrite files (lake.h) */
    const char **patients;   /* restrict to these Patient ids (n_patients > 0) */
    size_t n_patients;
    /* writeMode managed-sql (lakehouse, one view): the view is staged as a Delta table
     * under dbx->staging, then applied to the Databricks table dbx->table by
     * lake/databricks.h (output location databricks-uc:<table>). NULL otherwise. */
    const struct dbx_target *dbx;
    /* S3 settings for s3:// tables (NULL = the environment's AWS_*): endpoint override,
     * region, and credentials given only as secret references ("secret:NAME", resolved
     * from the server's secrets file by lake/secrets.h; the state keeps the references). */
    const char *s3_endpoint, *aws_region, *aws_key_id_ref, *aws_secret_ref;
} jobs_spec;

/* Validates and starts a job; id_out receives its id. */
int jobs_submit(jobs_engine *e, const jobs_spec *spec, char id_out[37], fl_err *err);

enum { JOBS_RUNNING = 0, JOBS_FINISHED = 1 };
/* Status of a job (from the store, so it works for jobs of earlier runs). Returns
 * JOBS_RUNNING with progress "done/total chunks" filled, or JOBS_FINISHED with the
 * FHIR Parameters manifest appended to out (exportId, status, clientTrackingId,
 * exportStartTime, exportEndTime, output[name, location, count] or error). -1 with err
 * 404 for an unknown id. */
int jobs_status(jobs_engine *e, const char *id, buf *out, char *progress, size_t n, fl_err *err);
/* Cancels a running job (idempotent; a finished job is left as it is). 404 if unknown. */
int jobs_cancel(jobs_engine *e, const char *id, fl_err *err);

#endif
