/* delta: the Delta Lake transaction log (PROTOCOL.md of delta-io/delta), in our own code.
 *
 * Contract:
 *  - A table lives under an objstore root: data files at the top, the log under
 *    "_delta_log/": commits "%020lld.json" (one JSON action per line), classic single-file
 *    checkpoints "%020lld.checkpoint.parquet" and "_last_checkpoint".
 *  - delta_snapshot_load() replays the log into a snapshot: protocol, metaData (schema),
 *    live files (add minus remove; a logical file is its path plus its deletion vector,
 *    so remove(p, old DV) + add(p, new DV) leaves p live with the new DV in any order),
 *    tombstones and txn versions, from JSON commits and classic checkpoints. A path with no commit
 *    gives version -1 (no table yet). Tables whose protocol or features we cannot honour
 *    are refused (status 422) with a message naming the feature; `for_write` also checks
 *    the writer side (appendOnly, invariants, CHECK constraints, generated/identity
 *    columns, column mapping, ...). The deletionVectors feature is supported (DVs stored
 *    'u' and 'i'); whoever reads data files must drop the rows delta_dv_read names.
 *  - delta_txn is one optimistic transaction: actions are collected, then commit writes
 *    version read+1 with put-if-absent. If another writer won that version, its actions
 *    are read and checked as PROTOCOL.md prescribes: a conflict (409) if it changed the
 *    protocol or metadata, removed a file we remove (also by giving it a new DV),
 *    committed the same txn appId, or added files that may hold rows our operation read
 *    (key range for merge, anything for overwrite); otherwise we retry at the next
 *    version. Blind appends never conflict.
 *  - A txn carrying (appId, version) whose version the table already holds is skipped:
 *    commit returns DELTA_SKIPPED and writes nothing (idempotent retries).
 *  - Every 10th version (or the table's delta.checkpointInterval) the committer writes a
 *    checkpoint (delta_checkpoint_write); failure there never fails the commit.
 *  - Ownership: a snapshot owns everything it points to (its arena); free it with
 *    delta_snapshot_free(). A txn copies what it is given.
 */
#ifndef FL_DELTA_H
#define FL_DELTA_H

#include "../format/parquet.h"
#include "../rows/rows.h"
#include "objstore.h"

enum { DELTA_SKIPPED = 3 };

#define DELTA_CHECKPOINT_INTERVAL 10
#define DELTA_IS_DELETED "is_deleted"

/* One column of the table schema. Types we cannot map to rows_type (struct, map, float,
 * timestamp_ntz, ...) are kept (raw JSON) with supported = false. */
typedef struct delta_field {
    char *name;
    char *json;        /* the field's JSON object, compact, as found in schemaString */
    rows_type type;
    bool list;
    bool supported;
    int precision, scale;  /* decimal only */
} delta_field;

/* A deletion vector descriptor (PROTOCOL.md "Deletion Vectors"): the rows of a data file
 * that are logically deleted. storage 0 = the file has none. */
typedef struct delta_dv {
    char storage;          /* 'u' (file under the table, named by a Z85 uuid), 'i' (inline,
                            * Z85 bytes) or 'p' (absolute path); 0 = none */
    char *path_or_inline;
    int64_t offset;        /* of the DV in its file ('u'/'p'); -1 when absent */
    int64_t size;          /* sizeInBytes: the serialized bitmap, before any Z85 */
    int64_t cardinality;   /* rows it deletes */
} delta_dv;

typedef struct delta_add {
    char *path;        /* as in the log (URI-encoded, relative to the table root) */
    int64_t size;
    int64_t mtime;
    char *stats;       /* stats JSON text or NULL */
    char *pv;          /* partitionValues JSON text ("{}" when unpartitioned) */
    bool has_dv;       /* carries a deletion vector (dv) */
    delta_dv dv;
} delta_add;

typedef struct delta_remove {
    char *path;
    int64_t deletion_ts;
    int64_t size;
    delta_dv dv;       /* the DV of the logical file removed (storage 0: none) */
} delta_remove;

typedef struct delta_app_txn {
    char *app_id;
    int64_t version;
    int64_t last_updated;
} delta_app_txn;

typedef struct delta_snapshot {
    int64_t version;           /* -1: no table at this location */
    int64_t checkpoint_version;/* the checkpoint replay started from, or -1 */
    int min_reader, min_writer;
    size_t n_reader_features, n_writer_features;
    char **reader_features, **writer_features;
    char *protocol_json;       /* the protocol action's object */
    char *metadata_json;       /* the metaData action's object */
    char *table_id;
    char *schema_string;
    size_t n_fields;
    delta_field *fields;
    size_t n_partition_cols;
    size_t n_config;
    char **config_keys, **config_vals;
    size_t n_files, n_removes, n_txns;
    delta_add *files;
    delta_remove *removes;
    delta_app_txn *txns;
    int64_t last_commit_ts;    /* commitInfo timestamp of the last commit, ms, or 0 */
    arena *mem;
} delta_snapshot;

/* Loads the latest snapshot (version < 0) or the given one. */
delta_snapshot *delta_snapshot_load(objstore *s, int64_t version, bool for_write, fl_err *err);
void delta_snapshot_free(delta_snapshot *snap);
const char *delta_config(const delta_snapshot *snap, const char *key);  /* NULL if unset */
int delta_field_find(const delta_snapshot *snap, const char *name);     /* index or -1 */
int64_t delta_txn_version(const delta_snapshot *snap, const char *app_id); /* -1 if none */
/* Checks whether a writer may modify this table; `removes` for ops that remove files. */
int delta_check_writable(const delta_snapshot *snap, bool removes, fl_err *err);

/* ---- schema ---- */
/* Spark type name of a rows type ("string", "integer", "decimal(38,9)", ...). */
const char *delta_type_name(rows_type t, int precision, int scale, char out[32]);
/* Appends the JSON of one StructField to out. */
void delta_field_json(buf *out, const char *name, rows_type t, bool list, int precision,
                      int scale);
/* schemaString of a whole rows schema (is_deleted must already be in it if wanted). */
void delta_schema_string(buf *out, const rows_schema *s, int precision, int scale);
/* Parses a schemaString into fields (arena-owned). -1 with err if malformed. */
int delta_schema_parse(arena *a, const char *schema_string, delta_field **out, size_t *n,
                       fl_err *err);

/* ---- per-file statistics ---- */
/* {"numRecords":..,"minValues":{..},"maxValues":{..},"nullCount":{..}} from the writer's
 * per-file stats: strings up to 64 characters are kept whole, longer ones give a 32
 * character min and no max; booleans, decimals and lists get null counts only. */
void delta_stats_json(const pq_file_stats *st, buf *out);
/* Reads the string min/max of column `col` from an add's stats. Returns false when the
 * stats don't bound that column (then the file must be assumed to hold any key). */
bool delta_stats_str_range(const delta_add *f, const char *col, arena *a, const char **min,
                           const char **max);
int64_t delta_stats_num_records(const delta_add *f);   /* -1 if unknown */

/* ---- transactions ---- */
typedef struct delta_txn delta_txn;
typedef enum { DELTA_READ_NONE, DELTA_READ_KEYS, DELTA_READ_ALL } delta_read_kind;

/* snap may be a version -1 snapshot (creating the table). */
delta_txn *delta_txn_begin(objstore *s, const delta_snapshot *snap);
void delta_txn_protocol(delta_txn *tx, int min_reader, int min_writer);
/* Lists a table feature in the protocol action (reader features need reader version 3,
 * writer features writer version 7); reader features are listed as writer ones too. */
void delta_txn_feature(delta_txn *tx, const char *name, bool reader);
/* Sets a table property in the metaData action (needs delta_txn_metadata). */
void delta_txn_config(delta_txn *tx, const char *key, const char *value);
/* New metaData: schema_string replaces the table's; on create a fresh id is made. */
void delta_txn_metadata(delta_txn *tx, const char *schema_string);
void delta_txn_add(delta_txn *tx, const char *path, int64_t size, int64_t mtime,
                   const char *stats, bool data_change);
/* ... with a deletion vector (dv NULL or storage 0: none). */
void delta_txn_add_dv(delta_txn *tx, const char *path, int64_t size, int64_t mtime,
                      const char *stats, bool data_change, const delta_dv *dv);
/* Removes the logical file f: its path and, when it has one, its DV. */
void delta_txn_remove(delta_txn *tx, const delta_add *f, bool data_change);
void delta_txn_app(delta_txn *tx, const char *app_id, int64_t version);
/* operation for commitInfo ("WRITE", "MERGE", "CREATE TABLE"), params a JSON object. */
void delta_txn_operation(delta_txn *tx, const char *op, const char *params_json);
/* What the operation read, for conflict checks against concurrent winners. For
 * DELTA_READ_KEYS: files added by others whose `col` range meets [min, max] conflict. */
void delta_txn_reads(delta_txn *tx, delta_read_kind kind, const char *col, const char *min,
                     const char *max);
/* 0 with *version set; DELTA_SKIPPED; or -1 with err (409 conflict, 500 I/O). */
int delta_txn_commit(delta_txn *tx, int64_t *version, fl_err *err);
void delta_txn_free(delta_txn *tx);

/* ---- checkpoints ---- */
/* Writes the classic checkpoint of snap (all its actions) and _last_checkpoint. */
int delta_checkpoint_write(objstore *s, const delta_snapshot *snap, fl_err *err);

/* ---- vacuum ---- */
/* Deletes top-level data files (and stale Parquet staging files) and deletion vector files
 * that are not live (named by a live add), not removed by (or named by) a tombstone
 * younger than retention_ms, and older than retention_ms themselves.
 * Directories (partitions) are left alone. *deleted counts them (dry_run: would delete). */
int delta_vacuum(objstore *s, const delta_snapshot *snap, int64_t retention_ms, bool dry_run,
                 int64_t *deleted, fl_err *err);

/* ---- deletion vectors (delta_dv.c) ----
 * Bitmap: the RoaringBitmapArray "portable" format (magic 1681511377 LE, then the 64-bit
 * roaring portable format: bucket count, then per bucket its high 32 bits and a 32-bit
 * roaring bitmap). File ('u' storage): a version byte 1, then per DV a big-endian size,
 * the bitmap and a big-endian CRC-32 of the bitmap; the descriptor's offset names the
 * size field. Positions are 0-based row indexes in the data file, sorted, unique. */
void delta_dv_encode(const uint64_t *pos, size_t n, buf *out);
/* Decodes a bitmap into malloc'd sorted positions. -1 with err (422) if malformed. */
int delta_dv_decode(const unsigned char *p, size_t len, uint64_t **pos, size_t *n,
                    fl_err *err);
/* Z85 (ZeroMQ base85): n must be a multiple of 4 (encode; out holds 5n/4+1) or of 5
 * (decode; out holds 4n/5). Decode returns -1 on a character outside the alphabet. */
void delta_z85_encode(const unsigned char *in, size_t n, char *out);
int delta_z85_decode(const char *in, size_t n, unsigned char *out);
/* Store key of a 'u' DV file ("[prefix/]deletion_vector_<uuid>.bin", malloc'd), or NULL
 * for other storage types or a malformed descriptor. */
char *delta_dv_key(const delta_dv *dv);
/* Whole DV files read so far by delta_dv_read (one entry: a commit's DVs share a file). */
typedef struct delta_dv_cache {
    char *key;
    buf data;
} delta_dv_cache;
void delta_dv_cache_free(delta_dv_cache *c);
/* The positions a descriptor deletes ('u' or 'i'; 'p' is refused with 422), checked
 * against its size, CRC and cardinality. storage 0 gives none. cache may be NULL. */
int delta_dv_read(objstore *os, const delta_dv *dv, delta_dv_cache *cache, uint64_t **pos,
                  size_t *n, fl_err *err);
/* A new DV file under the table: DVs are appended in memory, then put in one go. */
typedef struct delta_dv_file {
    char key[64];          /* deletion_vector_<uuid>.bin */
    char z85[21];          /* pathOrInlineDv of its descriptors */
    buf data;
    size_t n_dvs;
} delta_dv_file;
void delta_dv_file_init(delta_dv_file *f);
/* Appends a DV; *out describes it (path_or_inline points into f). */
void delta_dv_file_add(delta_dv_file *f, const uint64_t *pos, size_t n, delta_dv *out);
int delta_dv_file_put(objstore *os, delta_dv_file *f, fl_err *err);
void delta_dv_file_free(delta_dv_file *f);

/* ---- helpers ---- */
/* Percent-decodes a log path into a store key (malloc'd). */
char *delta_path_key(const char *path);
void delta_commit_key(int64_t version, char out[64]);

#endif
