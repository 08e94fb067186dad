/* parquet: our own Parquet writer and reader (no third-party Parquet code).
 *
 * Two layers over one engine:
 *  (a) generic nested schema: a schema tree (groups, required/optional/repeated fields,
 *      physical + logical types). Records are json_val DOM values shredded into columns
 *      (Dremel levels) on write, and assembled back into json_val DOM values on read. This
 *      is what the Delta room uses for checkpoint files (add/remove/metaData/... structs,
 *      MAP = repeated key_value group, LIST = three-level list).
 *      JSON mapping: group -> object (members by field name; absent = null); LIST group ->
 *      array; MAP group -> object (keys are the map keys); other repeated field -> array;
 *      STRING/binary -> string; ints -> number; DOUBLE/FLOAT -> number; BOOLEAN -> bool;
 *      DATE -> "YYYY-MM-DD" (numbers = days also accepted on write); TIMESTAMP -> RFC 3339
 *      text (numbers = microseconds also accepted on write); DECIMAL -> number text.
 *  (b) rows layer (src/rows/rows.h): a rows_schema maps to a flat schema: scalar fields are
 *      optional leaves; list fields are standard three-level LIST groups
 *      (optional group f (LIST) { repeated group list { optional T element; } }).
 *
 * Writer: PLAIN and RLE_DICTIONARY (falls back to PLAIN for a column chunk whose dictionary
 * outgrows dict_bytes), RLE/bit-packed hybrid levels, data page v1 (v2 as an option), SNAPPY
 * (default), ZSTD,
 * GZIP or no compression, statistics (min_value/max_value with the logical type's order,
 * null_count; min/max left out for a row group whose extreme value exceeds 4 KiB),
 * row groups cut when buffered bytes reach row_group_bytes. Memory is bounded
 * by one row group. The file is written to a staging path and renamed onto the final path
 * by pq_writer_close(), so a reader never sees a half-written file (and, with `durable`,
 * the bytes are on disk before the name appears).
 *
 * Reader: PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY, RLE booleans, data page v1 and v2,
 * SNAPPY/ZSTD/GZIP/none, INT96 and MILLIS/MICROS/NANOS timestamps, legacy converted types.
 * Reads one row group at a time (memory bounded by one row group).
 *
 * Errors: every function taking fl_err* fills it (status 400 for bad input data / schema,
 * 500 for I/O or corrupt files; `where` names the column or file) and returns -1 / NULL.
 */
#ifndef FL_PARQUET_H
#define FL_PARQUET_H

#include "../json/json.h"
#include "../rows/rows.h"
#include "../util/util.h"

/* ---- schema tree ---- */
typedef enum { PQ_REQUIRED = 0, PQ_OPTIONAL = 1, PQ_REPEATED = 2 } pq_repetition;

typedef enum {
    PQ_BOOLEAN = 0,
    PQ_INT32 = 1,
    PQ_INT64 = 2,
    PQ_INT96 = 3,
    PQ_FLOAT = 4,
    PQ_DOUBLE = 5,
    PQ_BYTE_ARRAY = 6,
    PQ_FIXED_LEN_BYTE_ARRAY = 7,
    PQ_GROUP = 100          /* not a Parquet physical type: marks a group node */
} pq_physical;

typedef enum {
    PQ_LT_NONE = 0,
    PQ_LT_STRING,
    PQ_LT_DATE,
    PQ_LT_TIMESTAMP,        /* unit + utc below */
    PQ_LT_DECIMAL,          /* precision + scale below */
    PQ_LT_INT,              /* bit_width + is_signed below (INT(8,true) ...) */
    PQ_LT_LIST,
    PQ_LT_MAP,
    PQ_LT_JSON,
    PQ_LT_ENUM,
    PQ_LT_UUID
} pq_logical;

typedef enum { PQ_MILLIS = 0, PQ_MICROS = 1, PQ_NANOS = 2 } pq_time_unit;

typedef struct pq_node {
    const char *name;
    pq_repetition rep;
    pq_physical phys;
    pq_logical logical;
    int type_length;              /* FIXED_LEN_BYTE_ARRAY width */
    int precision, scale;         /* DECIMAL */
    pq_time_unit unit;            /* TIMESTAMP */
    bool utc;                     /* TIMESTAMP isAdjustedToUTC */
    int bit_width;                /* INT */
    bool is_signed;               /* INT */
    struct pq_node *parent;
    struct pq_node **children;
    size_t n_children;
    /* Computed by pq_schema_finish(): */
    int max_def, max_rep;         /* levels of this node (root: 0, 0) */
    int leaf;                     /* leaf column index, -1 for groups */
    int first_leaf, n_leaves;     /* leaves under this node, in column order */
    int index;                    /* preorder position, root = 0 */
} pq_node;

typedef struct pq_schema {
    arena *a;                     /* owns every node and name */
    pq_node *root;                /* the message group */
    size_t n_leaves;
    pq_node **leaves;             /* column order */
    size_t n_nodes;               /* nodes, root included (index range) */
} pq_schema;

/* Parses the Parquet message schema text, e.g.
 *   message m { optional group add { required binary path (STRING);
 *     optional group partitionValues (MAP) { repeated group key_value {
 *       required binary key (STRING); optional binary value (STRING); } }
 *     optional int64 size; optional int64 ts (TIMESTAMP(MICROS,true));
 *     optional fixed_len_byte_array(16) d (DECIMAL(38,18)); } }
 * Logical annotations: STRING UTF8 DATE TIMESTAMP(unit,utc) DECIMAL(p,s) INT(bits,signed)
 * LIST MAP JSON ENUM UUID. Returns NULL (err set, 400) when malformed. */
pq_schema *pq_schema_parse(const char *text, fl_err *err);
/* Builds a schema by hand: pq_schema_new(), then pq_schema_add() children under groups,
 * then pq_schema_finish() (validates and computes levels). */
pq_schema *pq_schema_new(void);
pq_node *pq_schema_add(pq_schema *s, pq_node *parent, const char *name, pq_repetition rep,
                       pq_physical phys, pq_logical logical);
int pq_schema_finish(pq_schema *s, fl_err *err);
/* The flat schema for a rows_schema (see layer (b)); decimals use precision/scale. */
pq_schema *pq_schema_from_rows(const rows_schema *rs, int dec_precision, int dec_scale);
/* Message text of a schema (round-trips through pq_schema_parse). */
void pq_schema_print(const pq_schema *s, buf *out);
void pq_schema_free(pq_schema *s);

/* ---- options ---- */
typedef enum { PQ_UNCOMPRESSED = 0, PQ_SNAPPY = 1, PQ_GZIP = 2, PQ_ZSTD = 6 } pq_codec;

typedef struct pq_options {
    pq_codec codec;               /* default PQ_SNAPPY */
    int level;                    /* zstd / gzip level; 0 = codec default */
    size_t row_group_bytes;       /* default 128 MiB (uncompressed, estimated) */
    size_t page_bytes;            /* default 1 MiB */
    size_t dict_bytes;            /* dictionary page limit; default 1 MiB */
    bool dictionary;              /* default true */
    int decimal_precision;        /* rows layer DECIMAL: default 38 */
    int decimal_scale;            /* rows layer DECIMAL: default 18 */
    const char *staging_path;     /* NULL: "<path>.tmp-<uuid>" next to path */
    const char *created_by;       /* NULL: "fhirlake" */
    bool durable;                 /* default true: fsync the file before the rename */
    bool page_v2;                 /* default false: data page v1, as Spark writes */
} pq_options;
void pq_options_init(pq_options *o);
/* "snappy" | "zstd" | "gzip" | "none"/"uncompressed"; -1 if unknown. */
int pq_codec_parse(const char *name, pq_codec *out);

/* ---- per-file statistics returned by pq_writer_close() (rows layer) ---- */
typedef struct pq_col_stats {
    const char *name;
    rows_type type;
    bool list;
    int64_t null_count;           /* rows where the column is null (list: empty) */
    bool has_minmax;              /* false for lists, all-null columns, values over 4 KiB */
    rows_value min, max;          /* rows.h encoding; strings/decimal text owned by stats */
} pq_col_stats;

typedef struct pq_file_stats {
    int64_t num_rows;
    int64_t file_size;
    size_t num_row_groups;
    size_t n_cols;
    pq_col_stats *cols;           /* rows layer only; 0 for the generic layer */
    arena *a;                     /* owns cols and strings */
} pq_file_stats;
void pq_file_stats_free(pq_file_stats *st);

/* ---- writer ---- */
typedef struct pq_writer pq_writer;

/* Generic layer. The schema is copied. */
pq_writer *pq_writer_open_schema(const char *path, const pq_schema *schema,
                                 const pq_options *opt, fl_err *err);
/* Writes one record (a JSON object against the schema). On error nothing of the record is
 * kept and the writer stays usable. */
int pq_write_json(pq_writer *w, const json_val *record, fl_err *err);

/* Rows layer. The rows_schema is copied. */
pq_writer *pq_writer_open(const char *path, const rows_schema *rs, const pq_options *opt,
                          fl_err *err);
/* Batch schema must have the writer's fields in the same order (same names and types). */
int pq_write_batch(pq_writer *w, const rows_batch *b, fl_err *err);

/* Flushes, writes the footer, fsyncs, renames staging -> path, frees w. stats may be NULL
 * (caller frees with pq_file_stats_free). On error the staging file is removed. */
int pq_writer_close(pq_writer *w, pq_file_stats *stats, fl_err *err);
/* Discards everything (removes the staging file) and frees w. */
void pq_writer_abort(pq_writer *w);

/* ---- reader ---- */
typedef struct pq_reader pq_reader;
pq_reader *pq_reader_open(const char *path, fl_err *err);
void pq_reader_close(pq_reader *r);
const pq_schema *pq_reader_schema(const pq_reader *r);
int64_t pq_reader_num_rows(const pq_reader *r);
size_t pq_reader_num_row_groups(const pq_reader *r);
/* The file's schema as a rows_schema: top-level primitive fields and three-level (or
 * two-level legacy) lists of primitives; other nested fields are left out. Caller frees. */
rows_schema *pq_reader_rows_schema(const pq_reader *r);
/* Reads the next row group into out (cleared first); out->schema selects the columns by
 * name: fields absent from the file read as null; a field whose type differs from the
 * file's is an error (INT32 widens to INT64). Returns 1 when a row group was read, 0 at
 * the end, -1 on error. */
int pq_read_batch(pq_reader *r, rows_batch *out, fl_err *err);
/* Calls fn(ctx, row, bytes, len) for every non-null value of the flat string (BYTE_ARRAY)
 * column `name`, row = its position in the file, reading that column only and passing
 * bytes straight from the decoded page (valid during the call). A merge's key scan: no
 * row batch is built. Returns 0 (fn returning non-zero stops it early), or -1 with err
 * set (400 when the column is absent or not a flat string column). */
typedef int (*pq_str_fn)(void *ctx, int64_t row, const char *p, size_t len);
int pq_scan_strings(pq_reader *r, const char *name, pq_str_fn fn, void *ctx, fl_err *err);
/* Reads the next row group as records (generic layer): returns a JSON array of objects
 * allocated in a, or NULL at the end (err untouched) or on error (err set). */
json_val *pq_read_json(pq_reader *r, arena *a, fl_err *err);
/* Restarts reading at the first row group. */
void pq_reader_rewind(pq_reader *r);

#endif
