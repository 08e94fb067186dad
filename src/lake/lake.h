/* lake: writing row batches into a Delta table, one atomic commit per writer.
 *
 * Contract:
 *  - lake_writer_open() opens (or creates) the table at url, reconciles the batch schema
 *    with the table's (new columns are added to the table; a type change is refused with
 *    status 422 before anything is written), and refuses a non-empty directory that is not
 *    a Delta table, and tables we cannot write (see delta_check_writable).
 *  - lake_write() streams batches into Parquet data files (cut at file_bytes / file_rows);
 *    memory stays bounded by one row group per thread plus, for merge, the set of
 *    incoming keys (and, with deletion vectors, the deleted row positions of one file
 *    plus the commit's DV file). With threads > 1 each big batch is split into row
 *    ranges written to `threads` files at once; lake_write returns when all are done (b
 *    may then be reused).
 *    Every row gets is_deleted = 0 unless the batch carries that column itself.
 *  - lake_commit() makes it all visible in one Delta commit:
 *      append    add the new files;
 *      overwrite remove every live file, add the new ones;
 *      merge     rows whose key is in the incoming data replace the old rows of that key;
 *                only files whose key range (stats) meets the incoming keys are read.
 *                On a table that supports and enables deletion vectors (every table
 *                a merge creates, unless copy_on_write), only the key column of those files
 *                is read and their old rows are deleted with a DV: remove(file, old DV) +
 *                add(same file, stats with tightBounds false, old ∪ new DV), all DVs of a
 *                commit in one deletion_vector_<uuid>.bin; a file with no live row left
 *                is just removed. Otherwise (and always with delete_absent, whose old rows
 *                with keys absent from the source are rewritten as tombstones,
 *                is_deleted = 1) the files' other rows are rewritten to new files and the
 *                old files removed. Rewrites never copy rows a file's DV deletes.
 *    A concurrent commit that conflicts (PROTOCOL.md) makes the writer redo its reads and
 *    rewrite on the new snapshot (up to 20 times, with a random growing pause) before
 *    giving up with status 409. Overwrite never retries: it would drop the winner's rows.
 *  - app_id/app_version: a Delta txn action; a version the table already holds is skipped
 *    (nothing written, result.skipped = true).
 *  - lake_abort() (or a crash) leaves the table as it was; orphan data and DV files may
 *    remain (vacuum's business), never a half-visible commit. A conflicting attempt's DV
 *    file is deleted before the retry re-reads the winner's DVs.
 *  - New tables created by a merge: protocol reader 3 / writer 7 with the
 *    deletionVectors feature and delta.enableDeletionVectors = true; created by append or
 *    overwrite, or with copy_on_write: reader 1 / writer 2 (no reader needs DV support).
 *    lake_options_init() sets copy_on_write when the environment has
 *    FHIRLAKE_DELETION_VECTORS=off (or 0/false): for readers without DV support.
 */
#ifndef FL_LAKE_H
#define FL_LAKE_H

#include "../format/parquet.h"
#include "../rows/rows.h"
#include "delta.h"

typedef enum { LAKE_APPEND = 0, LAKE_MERGE, LAKE_OVERWRITE } lake_mode;

#define LAKE_MAX_THREADS 16

typedef struct lake_options {
    lake_mode mode;
    const char *key;          /* merge: key column (a string column); required */
    bool delete_absent;       /* merge: tombstone keys absent from the source */
    pq_codec codec;           /* default snappy */
    size_t file_bytes;        /* cut data files at about this many (raw) bytes; 128 MiB */
    int64_t file_rows;        /* ... or rows; 0 = no row limit */
    int threads;              /* data files written in parallel (each batch is split in
                               * row ranges, one file per thread); default 1 */
    bool copy_on_write;       /* merge: rewrite files even where the table allows deletion
                               * vectors; a table this writer creates gets no DV feature */
    const char *app_id;       /* txn action, NULL for none */
    int64_t app_version;
} lake_options;
void lake_options_init(lake_options *o);

typedef struct lake_result {
    int64_t version;          /* committed version (or current when skipped) */
    bool skipped;
    bool created;
    int64_t rows_added;       /* incoming rows */
    int64_t rows_rewritten;   /* old rows copied into rewritten files */
    int64_t files_added, files_removed;
    int64_t files_dv;         /* merge: files given a new deletion vector (not rewritten) */
    int64_t rows_deleted;     /* merge: old rows deleted by deletion vectors */
} lake_result;

typedef struct lake_writer lake_writer;
typedef struct lake_keyidx lake_keyidx;   /* a data file's key index, see below */
/* schema: the incoming batches' schema (copied). */
lake_writer *lake_writer_open(const char *url, const rows_schema *schema,
                              const lake_options *o, fl_err *err);
int lake_write(lake_writer *w, const rows_batch *b, fl_err *err);
/* Adds a Parquet file already written with the writer's schema (the incoming fields plus
 * is_deleted) as if its rows had gone through lake_write, without decoding or re-encoding
 * them: the file is hard-linked (or copied) into the table under a new data file name and,
 * on a remote store, uploaded. stats_json is its Delta stats (delta_stats_json of the
 * pq_file_stats its writer returned); idx (may be NULL, taken over in any case) is the
 * file's key index, cached once the commit lands (see "key index" below). path stays the caller's and must stay in place until
 * lake_commit returns: a merge reads the incoming keys back from it (the key column only)
 * when the table has files to merge into. */
int lake_adopt(lake_writer *w, const char *path, const char *stats_json,
               lake_keyidx *idx, fl_err *err);
/* Commits and frees w (whatever the outcome). */
int lake_commit(lake_writer *w, lake_result *res, fl_err *err);
void lake_abort(lake_writer *w);

/* ---- key index ----
 * A DV merge must find the rows of the incoming keys in every candidate file; without
 * help it reads the file's key column. A writer that sees its rows' keys as it writes them
 * (the export chunks, and lake_write() itself in merge mode) builds a key index instead: a 128-bit hash of each row's key with
 * the row's position in the file. lake_adopt() hands it over; once the commit lands, the
 * index is kept in a process-wide cache under (table url, file path), and later merges
 * into that table look keys up there (binary search) instead of scanning. Data files are
 * immutable and their names unique, so an entry is never stale; a miss (a restart, an
 * eviction, a file written by another process) just means a scan. Memory: indexes being
 * built plus cached ones stay within FHIRLAKE_KEY_CACHE_MB (default 256; least recently
 * used first out); an index that would exceed it is dropped while being built. */
lake_keyidx *lake_keyidx_new(void);
/* Row `row` (position in the file) has this key; rows may come in any order. */
void lake_keyidx_add(lake_keyidx *x, int64_t row, const char *key, size_t len);
void lake_keyidx_free(lake_keyidx *x);
/* Sorts it now (else lake_keyidx_cache_put does): the writer's thread can pay for it. */
void lake_keyidx_sort(lake_keyidx *x);
/* Takes x over (sorts it, caches it; frees it if it was dropped). */
void lake_keyidx_cache_put(const char *table, const char *file, lake_keyidx *x);
/* 1 when the cache has the file: *rows (malloc'd, ascending) are the positions of the rows
 * whose key is one of keys[0..n_keys); 0 when it has not (nothing allocated). */
int lake_keyidx_cache_rows(const char *table, const char *file, const char *const *keys,
                           const uint32_t *lens, size_t n_keys, int64_t **rows, size_t *n_rows);

#endif
