/* subs_int.h: what subs.c (registry, validation, listener, status) and deliver.c (the
 * delivery worker, initial export, persisted state) share. Not a public contract. */
#ifndef FL_SUBS_INT_H
#define FL_SUBS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "../fhirpath/fhirpath.h"
#include "subs.h"
#include "../lake/databricks.h"
#include "../lake/s3.h"
#include "../lake/secrets.h"

enum { SUBS_CREATE = 1, SUBS_UPDATE = 2, SUBS_DELETE = 4 };
enum { SUBS_APPEND = 0, SUBS_CURRENT = 1 };

typedef struct subs_trigger {
    char *resource;
    unsigned interactions;  /* SUBS_* mask */
    fp_expr *criteria;      /* NULL = every change; env: %current, %previous */
} subs_trigger;

typedef struct subs_topic {
    char *id, *url;
    subs_trigger *t;
    size_t n;
    struct subs_topic *next;
} subs_topic;

/* Destination configuration, parsed from the resource. */
typedef struct subs_conf {
    char *topic_url;
    char *view;             /* name or id of a stored ViewDefinition */
    long batch_size;        /* default 50 */
    long send_interval_ms;  /* default 5000 */
    bool skip_initial;
    char *table_path;       /* NULL: DATA/lake/<view name> */
    int table_mode;         /* SUBS_APPEND / SUBS_CURRENT */
    long target_file_mb;    /* targetFileSizeMb: data files cut at about this size; 0 = default */
    /* writeMode managed-sql: batches are staged as a Delta table under dbx.staging and
     * applied to the Databricks table dbx.table (lake/databricks.h): appended once per
     * batch (SUBS_APPEND, dbx_append) or merged per key (SUBS_CURRENT, dbx_apply).
     * Strings malloc'd. */
    bool managed;
    dbx_target dbx;
    char *s3_endpoint, *aws_region;   /* s3:// tables; NULL = the environment's AWS_* */
} subs_conf;

/* Persisted per-destination progress (store job "subs:<queue>"). */
typedef struct subs_state {
    int64_t last_seq;       /* outbox events up to here are in the table */
    int64_t next_batch;     /* txn version of the next Delta commit */
    int64_t pending_batch;  /* > 0: batch planned as events (last_seq, pending_upto] */
    int64_t pending_upto;
    int64_t delivered, attempts, eval_errors;
    char export_status[24]; /* not_started, export-in-progress, completed, skipped, failed */
    int64_t export_chunks, rows_sent;
    int64_t chunk_size;     /* resources per export chunk, fixed when the export starts */
    char view_id[72];
    int64_t view_version;
    char last_error[512];
} subs_state;

typedef struct subs_dest {
    char *id;
    int64_t version;        /* version of the creating write (destinations are immutable) */
    int64_t created_ts;     /* W of the initial export */
    char *queue;            /* outbox topic: "dest/<id>/<version>" */
    subs_conf conf;
    subs *sb;
    atomic_bool deleted;    /* DELETE seen: stop and drop the queue */
    atomic_bool dead;       /* worker finished */
    atomic_long hint;       /* events enqueued since the worker last read (approximate) */
    pthread_t thr;
    bool started;
    /* live status, guarded by sb->mu */
    subs_state st;
    int64_t in_process;
    bool failing;
    struct subs_dest *next;
} subs_dest;

struct subs {
    store *s;
    char *data_dir;
    pthread_mutex_t mu;     /* registry and live status */
    pthread_cond_t cv;      /* wakes workers (new events, stop) */
    subs_topic *topics;
    subs_dest *dests;
    atomic_bool stopping;
};

/* deliver.c */
void *subs_worker(void *arg);
int subs_state_load(store *s, const char *queue, subs_state *st, bool *found);
int subs_state_save(store *s, const char *queue, const subs_state *st, fl_err *err);
/* subs.c */
void subs_conf_free(subs_conf *c);
/* Finds a stored ViewDefinition by id, else by name; body in a. 404 if none. */
int subs_find_view(store *s, arena *a, const char *ref, store_res *out, fl_err *err);

#endif
