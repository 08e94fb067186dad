/* store: the resource store interface. Callers (server, load, jobs, subs) use only the
 * functions below and the opaque `store`. Today sqlite.c implements them directly; when
 * pg.c arrives, the functions move behind a backend vtable chosen by store_open() from
 * its location ("postgres://..." vs a directory), with no change in any caller.
 *
 * Data model and contract:
 *  - A resource is (type, id) with versions 1, 2, ... Every version is kept in history,
 *    deletes included as tombstones (deleted = 1, no body). "current" is the newest
 *    version of each (type, id); a deleted current version means read -> 410.
 *  - Each committed write request (one store_commit call) gets one transaction id `txid`
 *    and one commit timestamp `ts` (int64 microseconds since the epoch, UTC). ts is
 *    allocated under the write lock and is strictly increasing in commit order across the
 *    whole store (ts = max(wall clock, previous ts + 1)), so every change of one request
 *    shares its ts and a watermark W never splits a request: the snapshot at W is every
 *    change with ts <= W and none after. meta.lastUpdated of the stored resources = ts.
 *  - Bodies are stored as JSON text exactly as rendered by the caller's render callback,
 *    which is called inside the write transaction once version and ts are known (so the
 *    caller can put meta.versionId / meta.lastUpdated into the text).
 *  - Durability: store_commit returns only after the transaction is committed. With
 *    sync = STORE_SYNC_FULL (default) it also waits for an fsync of the WAL that started
 *    after the commit (survives power loss); with STORE_SYNC_NORMAL it survives a process
 *    kill (kill -9) but not power loss. In FULL mode a group's fsync overlaps the next
 *    group's commit, so readers may see a write a moment before its writer is
 *    acknowledged.
 *  - Concurrency: all functions are thread safe. Writes from many threads are group-
 *    committed: one backend transaction (one fsync) carries many store_commit requests,
 *    each inside its own savepoint, so a failing request never affects the others.
 *  - Listeners: store_add_listener() registers hooks (up to STORE_MAX_LISTENERS) called,
 *    in registration order, inside the write transaction for every change (after it is
 *    written, before commit). Any one failing fails the request, and whatever the
 *    listeners wrote for it rolls back with it. They may append outbox events with
 *    store_outbox_add(), or (embedded backend) write through store_tx_sqlite() into the
 *    same transaction, including into databases added with store_attach().
 *  - Attached databases: a commit is atomic per database file, NOT across files (SQLite
 *    WAL). The main database commits first, so after a crash an attached database can lag
 *    behind the main one, never lead it; its owner must be able to catch up (e.g. by
 *    replaying store_changes() after a watermark it keeps in that database).
 *  - Memory: everything a read function returns lives in the caller's arena.
 *  - Embedded backend reads: the pooled reader connections map the database file
 *    (PRAGMA mmap_size): a full export's scan reads pages in place instead of copying
 *    them out of the OS cache. Measured on the bench/export data (1.14M rows, 4 views,
 *    2 cores shared with other work, 8 full exports each, interleaved): 6.2-7.7 s with
 *    mmap vs 7.1-11.7 s without.
 *  - Errors: fl_err with an HTTP-ish status (404 not found, 410 gone, 412 version
 *    mismatch, 409 conflict, 500 backend failure); `where` names the op ("op[3]").
 */
#ifndef FL_STORE_H
#define FL_STORE_H

#include "../util/util.h"

typedef struct store store;

enum { STORE_SYNC_FULL = 0, STORE_SYNC_NORMAL = 1 };

typedef struct store_opts {
    int sync;          /* STORE_SYNC_FULL (default) or STORE_SYNC_NORMAL */
    int read_conns;    /* size of the reader pool; 0 = 8 */
} store_opts;

/* Opens (creating if needed) the store in directory dir: "DIR" means the embedded SQLite
 * file DIR/fhirlake.db. opts may be NULL. Returns NULL on failure with err set. */
store *store_open(const char *dir, const store_opts *opts, fl_err *err);
void store_close(store *s);

/* ---- writes ---- */
enum { STORE_PUT = 1, STORE_DELETE = 2 };

/* Renders the stored body of a PUT once its version and ts are known; appends to out. */
typedef void (*store_render_fn)(void *ctx, int64_t version, int64_t ts, buf *out);

typedef struct store_op {
    /* in */
    int kind;               /* STORE_PUT or STORE_DELETE */
    const char *type;       /* resourceType */
    const char *id;         /* always set by the caller (servers assign ids for creates) */
    int64_t if_match;       /* -1: unconditional; else the current version required
                               (0: the resource must not exist / be deleted) -> 412 */
    store_render_fn render; /* PUT only */
    void *render_ctx;
    /* out */
    int64_t version;        /* version written (DELETE: tombstone version, 0 if none) */
    int64_t ts;             /* commit ts of the request */
    int created;            /* PUT: 1 if no live version existed before */
    int changed;            /* 0 for a DELETE of a missing/deleted resource (no-op) */
} store_op;

/* Commits ops[0..n) as one atomic request: all are written or none. On failure nothing
 * is written, err names the failing op ("op[i]") and the return is -1. txid_out may be
 * NULL. Blocks until committed (group commit). */
int store_commit(store *s, store_op *ops, size_t n, int64_t *txid_out, fl_err *err);

/* Same, without waiting: queues the request and returns 0 (or -1 if the store is closing).
 * done(ctx, rc, txid, err) runs on a store thread once the request is durable (rc 0) or
 * failed (rc -1, err set); ops must stay valid until then. done must be quick and must not
 * call store_commit. Requests commit in the order they were queued. */
typedef void (*store_done_fn)(void *ctx, int rc, int64_t txid, const fl_err *err);
int store_commit_async(store *s, store_op *ops, size_t n, store_done_fn done, void *ctx,
                       fl_err *err);

/* ---- reads ---- */
typedef struct store_res {
    const char *type;
    const char *id;
    int64_t version;
    int64_t ts;
    int64_t txid;
    int deleted;            /* tombstone: body is NULL */
    const char *body;       /* JSON text, in the caller's arena */
    size_t body_len;
    int64_t cts;            /* ts of version 1 (creation), set by every read and listener */
} store_res;

/* Reads the current version (version = 0) or one version. Returns 0 and fills out, or -1
 * with err 404 (never existed / no such version) or 410 (current version is deleted; out
 * is still filled with the tombstone). A vread of a deleted version gives 410 as well. */
int store_read(store *s, arena *a, const char *type, const char *id, int64_t version,
               store_res *out, fl_err *err);

/* Row callback for the iterating reads below; return non-zero to stop early. The row's
 * strings live only for the duration of the call unless copied. */
typedef int (*store_row_fn)(void *ctx, const store_res *r);

/* History: every version, newest first. type and id may be NULL (all types / all ids of
 * the type). since > 0 keeps ts >= since. Skips `offset`, returns at most `count`
 * (count < 0 = no limit). *total (may be NULL) receives the number matching. */
int store_history(store *s, const char *type, const char *id, int64_t since, long offset,
                  long count, store_row_fn fn, void *ctx, long *total, fl_err *err);

/* Search over current, non-deleted resources of a type. */
typedef struct store_query {
    const char *type;
    const char **ids;       /* _id: match any of n_ids ids; NULL = no filter */
    size_t n_ids;
    int64_t ts_min;         /* ts >= ts_min (INT64_MIN: none) */
    int64_t ts_max;         /* ts <= ts_max (INT64_MAX: none) */
    int sort;               /* 0: by id, 1: by ts ascending, -1: by ts descending */
    long offset;
    long count;             /* < 0: no limit */
} store_query;
int store_search(store *s, const store_query *q, store_row_fn fn, void *ctx, long *total,
                 fl_err *err);

/* Snapshot at watermark W: for each id of the type, the newest version with ts <= W.
 * Deleted ones are included (deleted = 1) when with_deleted, else skipped. */
int store_scan(store *s, const char *type, int64_t W, int with_deleted, store_row_fn fn,
               void *ctx, fl_err *err);

/* The same, restricted to ids in [lo, hi) (byte order; lo NULL = from the first id, hi
 * NULL = to the last), but in storage order, not id order: it picks the version of each
 * id at W from the (type, id, version) key, then reads those rows sorted by position in
 * the file, so a chunk of an export walks the file forward instead of jumping around it
 * (bench/export data: 786k Observations in 4 ranges, 1.45 s -> 0.85 s of CPU). Cost
 * proportional to the range. */
int store_scan_range(store *s, const char *type, int64_t W, int with_deleted, const char *lo,
                     const char *hi, store_row_fn fn, void *ctx, fl_err *err);

/* Cuts the ids of a type into `parts` ranges of about equal size: fills (*bounds)[0..parts-1)
 * (in a) so that range k is [bounds[k-1], bounds[k]) with bounds[-1] = NULL and
 * bounds[parts-1] = NULL (open ends). Reads ids only (one pass over the key); sizes are
 * exact for small types, within about 2048 ids of equal for large ones. Every id,
 * present or future, falls in exactly one range. */
int store_split(store *s, const char *type, int parts, arena *a, const char ***bounds,
                fl_err *err);

/* Changes of a type (NULL = every type) with since < ts <= W, deletes included, in commit
 * order (ts, then write order). Every version is reported; a caller wanting only the
 * final state per id keeps the last one. */
int store_changes(store *s, const char *type, int64_t since, int64_t W, store_row_fn fn,
                  void *ctx, fl_err *err);
/* The final state at W of each id of a type changed in (since, W] (deletes included),
 * restricted to the ids of one part: store_part(id) % parts == part (parts >= 1). One row
 * per id, in commit order of those final versions. Reads only that part's bodies.
 * Without with_cts, store_res.cts is 0 for versions > 1 (no lookup of version 1). */
int store_changes_final(store *s, const char *type, int64_t since, int64_t W, int part,
                        int parts, bool with_cts, store_row_fn fn, void *ctx, fl_err *err);
/* How many versions of a type were committed in (since, W] (index only). */
int64_t store_count_changes(store *s, const char *type, int64_t since, int64_t W);
/* The hash that assigns an id to a part (FNV-1a, 32 bits). */
uint32_t store_part(const char *id);

/* Largest committed ts (0 for an empty store). */
int64_t store_max_ts(store *s);

/* Distinct resource types that have at least one current, non-deleted resource. */
int store_types(store *s, arena *a, const char ***types_out, size_t *n_out, fl_err *err);

/* ---- listener and outbox (subscriptions, materialized tables) ---- */
typedef struct store_tx store_tx;   /* the open write transaction, valid in the hook only */
/* Called for each change (r->body set for PUTs, NULL for deletes). Returning non-zero
 * (with err set) fails the request that made the change. */
typedef int (*store_listener_fn)(void *ctx, store_tx *tx, const store_res *r, fl_err *err);
#define STORE_MAX_LISTENERS 8
/* Adds / removes a listener (waits for the running batch; never call from a listener). */
int store_add_listener(store *s, store_listener_fn fn, void *ctx, fl_err *err);
void store_remove_listener(store *s, store_listener_fn fn, void *ctx);
/* Embedded backend: the sqlite3 * of the write connection, for listeners that write into
 * the same transaction (statements they prepare on it are theirs to finalize). NULL on a
 * backend without one. */
void *store_tx_sqlite(store_tx *tx);
/* Embedded backend: ATTACHes the SQLite file path as `alias` on the write connection, so
 * every write transaction also locks and commits it (see "Attached databases"). */
int store_attach(store *s, const char *path, const char *alias, fl_err *err);
/* Appends an event to the outbox inside tx; seq is assigned increasing. */
int store_outbox_add(store_tx *tx, const char *topic, const char *payload, size_t len,
                     fl_err *err);
typedef struct store_event {
    int64_t seq;
    int64_t ts;
    const char *topic;
    const char *payload;
    size_t len;
} store_event;
typedef int (*store_event_fn)(void *ctx, const store_event *e);
/* Events of a topic with seq > after_seq, ascending, at most max (< 0: all). */
int store_outbox_read(store *s, const char *topic, int64_t after_seq, long max,
                      store_event_fn fn, void *ctx, fl_err *err);
/* Forgets events of a topic with seq <= upto (after delivery). */
int store_outbox_trim(store *s, const char *topic, int64_t upto, fl_err *err);

/* ---- jobs (export jobs, survive restarts) ---- */
typedef struct store_job {
    const char *id;
    const char *kind;       /* e.g. "viewdefinition-export" */
    const char *status;     /* free text owned by the jobs room: "in-progress", ... */
    const char *state;      /* JSON text owned by the jobs room */
    int64_t created;        /* microseconds */
    int64_t updated;
} store_job;
/* Inserts or replaces the job (created kept on replace). */
int store_job_put(store *s, const store_job *j, fl_err *err);
int store_job_get(store *s, arena *a, const char *id, store_job *out, fl_err *err); /* 404 */
typedef int (*store_job_fn)(void *ctx, const store_job *j);
int store_job_list(store *s, const char *kind, store_job_fn fn, void *ctx, fl_err *err);
int store_job_delete(store *s, const char *id, fl_err *err);

#endif
