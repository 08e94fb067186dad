/* subs: topic subscriptions and their continuous delivery — AidboxSubscriptionTopic,
 * AidboxTopicDestination (kind data-lakehouse-at-least-once), the per-destination outbox
 * queue, delivery workers writing a Delta table, the initial export, and status.
 *
 * Contract:
 *  - subs_open() loads the live topics and destinations from the store, installs the store
 *    listener and starts one delivery worker per destination (workers resume from their
 *    persisted position). Call it before the server accepts writes; subs_close() stops the
 *    workers (a batch in flight finishes or is replayed on the next start) before the
 *    store is closed.
 *  - Inside every write transaction the listener (a) keeps the in-memory registry in step
 *    with topic/destination writes, refusing a PUT over a live destination with 405
 *    (destinations are immutable: DELETE + POST), and (b) appends one outbox event per
 *    matching change per destination, so events commit or roll back with the change.
 *  - A destination created at commit ts W first exports the view's rows of the snapshot at
 *    W (chunked), then delivers the queued changes (all with ts > W): nothing lost or
 *    doubled. Every Delta commit carries txn(appId = destination id, version = batch
 *    number); a batch's event range is persisted before it is written, so a replay after
 *    a crash writes the same batch and Delta skips it: each change lands exactly once.
 *  - Rows carry is_deleted (0; 1 for the tombstone row of a delete: key, ts, is_deleted).
 *  - Errors: fl_err with status 400 and `where` naming the element/parameter.
 */
#ifndef FL_SUBS_H
#define FL_SUBS_H

#include "../json/json.h"
#include "../store/store.h"
#include "../util/util.h"

#define SUBS_TOPIC_TYPE "AidboxSubscriptionTopic"
#define SUBS_DEST_TYPE "AidboxTopicDestination"

typedef struct subs subs;

/* data_dir: default table location DATA/lake/<view name>. NULL with err on failure. */
subs *subs_open(store *s, const char *data_dir, fl_err *err);
void subs_close(subs *sb);

/* Shape checks run before a write (no store access needed): 0 or -1 with err 400. */
int subs_validate_topic(const json_val *res, fl_err *err);
/* Destination checks: parameters, topic known, view stored (by name or id). */
int subs_validate_destination(subs *sb, const json_val *res, fl_err *err);

/* Secret-like parameters (name contains secret/password/token/key, any case; valueString)
 * never reach the stored resource: this write hook keeps their values in the store's job
 * table (job "subs-secret:<id>", not served over REST) and returns in *out a copy of the
 * destination whose values read "<redacted>" (*out NULL when there is nothing to hide).
 * A write over a live destination fails here with 405 (immutable). */
int subs_rewrite_destination(subs *sb, const json_val *res, const char *id, arena *a,
                             json_val **out, fl_err *err);

/* Writes the $status Parameters resource of destination id into out. -1 with 404. */
int subs_status(subs *sb, const char *id, buf *out, fl_err *err);

/* Implemented in server/op_subs.c: registers the two resource types (and ViewDefinition),
 * their validators and $status with the HTTP server. Call before http_start(). */
void subs_register_http(subs *sb);

#endif
