/* databricks.h: Databricks Unity Catalog managed tables fed from Delta staging tables on
 * S3 (writeMode "managed-sql"), over the workspace's REST API.
 *
 * Contract:
 *  - Service-principal credentials come from the server's environment only:
 *    FHIRLAKE_DATABRICKS_CLIENT_ID / FHIRLAKE_DATABRICKS_CLIENT_SECRET. Never from a request,
 *    never logged, never in an fl_err.
 *  - OAuth M2M: POST {workspace}/oidc/v1/token (grant_type=client_credentials,
 *    scope=all-apis, HTTP Basic); the token is cached per workspace + client id and
 *    fetched again one minute before it expires.
 *  - SQL: POST {workspace}/api/2.0/sql/statements (warehouse_id, statement, wait_timeout,
 *    on_wait_timeout CONTINUE, JSON_ARRAY inline results), then GET .../statements/{id}
 *    until SUCCEEDED / FAILED / CANCELED / CLOSED. A failure becomes an fl_err (status 502)
 *    whose text carries the Databricks error_code and message.
 *  - dbx_apply makes the target table reflect a staged Delta table: CREATE TABLE IF NOT
 *    EXISTS with the view's types (STRING, BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(38,18),
 *    DATE, TIMESTAMP, ARRAY<...>; is_deleted INT), ALTER TABLE ADD COLUMNS for columns the
 *    target lacks, then ONE MERGE INTO that deletes the target rows of every staged key
 *    and inserts every staged row (so views with several rows per resource are replaced
 *    whole). Re-running it with the same staging gives the same table (idempotent), which
 *    is what makes retried batches land exactly once. Without a key column: INSERT
 *    OVERWRITE.
 *  - dbx_append (tableMode append, the destinations' default): every staged row is
 *    inserted with a hidden STRING column _fhirlake_batch = the caller's batch tag, by a
 *    MERGE whose ON clause matches the tag (and the key), WHEN NOT MATCHED THEN INSERT.
 *    The MERGE is one Delta commit, so either the whole batch is there or none of it; a
 *    replay finds its tag and inserts nothing: each batch lands exactly once.
 *  - Identifiers are sent back-quoted: `catalog`.`schema`.`table` (validated), column
 *    names and staging paths with backquotes doubled. Values (the batch tag) travel as the
 *    statement API's named parameters, never inside the SQL text.
 */
#ifndef FL_DATABRICKS_H
#define FL_DATABRICKS_H

#include "../rows/rows.h"
#include "../util/util.h"

typedef struct dbx_target {
    const char *workspace;   /* databricksWorkspaceUrl: https://... (http:// for tests) */
    const char *warehouse;   /* databricksWarehouseId */
    const char *table;       /* tableName: catalog.schema.table */
    const char *staging;     /* stagingTablePath: s3://bucket/prefix */
} dbx_target;

/* Synchronous checks: every parameter present and well formed (where names it), the
 * service-principal credentials configured, and a token obtained from the workspace. */
int dbx_check(const dbx_target *t, fl_err *err);

#define DBX_BATCH_COLUMN "_fhirlake_batch"

/* A named statement parameter (:name in the SQL); type NULL means STRING. */
typedef struct dbx_param {
    const char *name, *value, *type;
} dbx_param;

/* Runs one statement to completion; the final statement response (JSON) goes to out when
 * out is not NULL. */
int dbx_sql(const dbx_target *t, const char *sql, buf *out, fl_err *err);
/* The same with named parameters. */
int dbx_sql_p(const dbx_target *t, const char *sql, const dbx_param *params, size_t n_params,
              buf *out, fl_err *err);

/* Applies the staged Delta table at staging_url (schema s, key column key or NULL) to the
 * target table, as described above. delete_absent (a full export): target rows whose key
 * is not staged become tombstones (is_deleted = 1), as in a local Delta table. */
int dbx_apply(const dbx_target *t, const char *staging_url, const rows_schema *s,
              const char *key, bool delete_absent, fl_err *err);

/* Appends the staged rows to the target once per batch tag (see above); key (or NULL)
 * narrows the replay check's join. */
int dbx_append(const dbx_target *t, const char *staging_url, const rows_schema *s,
               const char *key, const char *batch, fl_err *err);

/* Removes every object of the staged table at staging_url. */
int dbx_drop_staging(const char *staging_url, fl_err *err);

/* The table of view `view`: tableName itself when it is catalog.schema.table, or
 * catalog.schema.<view> when tableName is catalog.schema (several views in one export).
 * Written to out (replacing its content). */
void dbx_view_table(buf *out, const char *table, const char *view);

/* Appends the SQL type of a column ("ARRAY<BIGINT>") to out. */
void dbx_sql_type(buf *out, rows_type t, bool list);
/* Appends `a`.`b`.`c` for a dotted three-part name; -1 if it is not three non-empty parts
 * of letters, digits, '_' or '-'. */
int dbx_quote_table(buf *out, const char *name);

#endif
