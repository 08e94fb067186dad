/* delta_int.h: lake-room internals shared by delta_log.c and delta_checkpoint.c (log
 * replay). Not a public contract: nothing outside src/lake includes it. */
#ifndef FL_DELTA_INT_H
#define FL_DELTA_INT_H

#include "../json/json.h"
#include "delta.h"

typedef struct delta_replay delta_replay;

/* Applies every action found in obj: a commit line ({"add":{...}}) or a checkpoint
 * record (one non-null member among add/remove/metaData/protocol/txn). */
int delta_replay_apply(delta_replay *r, const json_val *obj, fl_err *err);

/* Parses one whole commit file into its actions (DOM in a) for conflict checks. */
json_val *delta_commit_parse(arena *a, const char *text, size_t len, const char *key,
                             fl_err *err);

/* A fast 64-bit hash of bytes, eight a step (keyidx.c); in memory only, never persisted:
 * merge key sets and key indexes. */
uint64_t lake_hash64(const char *p, size_t n, uint64_t seed);

/* Replays a classic checkpoint's actions (delta_checkpoint.c). */
int delta_checkpoint_read(objstore *s, const char *key, delta_replay *r, fl_err *err);

#endif
