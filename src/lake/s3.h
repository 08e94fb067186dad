/* s3.h: the S3 backend behind objstore.h (s3://bucket/prefix), over libcurl with its
 * built-in SigV4 signing.
 *
 * Contract:
 *  - Settings come from the environment, read once per s3_open:
 *      AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (credentials),
 *      AWS_REGION or AWS_DEFAULT_REGION (default us-east-1),
 *      AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (an endpoint override such as MinIO; path
 *      style {endpoint}/{bucket}/{key} then, else virtual-host style on amazonaws.com).
 *    s3_config lets a caller override them (for instance with secrets resolved from the
 *    server's secrets file); fields left NULL fall back to the environment.
 *    Secrets are never logged and never appear in an fl_err.
 *  - Keys are relative to the URL's prefix, exactly as objstore keys.
 *  - put with if_absent sends `If-None-Match: *`: a 412 answer is OBJSTORE_EXISTS (another
 *    writer won). Files larger than S3_MULTIPART_BYTES are sent by multipart upload (an
 *    aborted upload leaves nothing visible). 5xx, 429 and transport errors are retried with
 *    exponential backoff.
 *  - Every s3store owns a private local spool directory (removed by s3_close): objstore
 *    uses it as objstore_root() so that path-based writers (Parquet) can write there and
 *    then publish the file with s3_upload_file.
 *  - Thread safety: every call makes its own curl handle; one s3store may be shared.
 */
#ifndef FL_S3_H
#define FL_S3_H

#include "../util/util.h"
#include "objstore.h"

#define S3_MULTIPART_BYTES ((int64_t)32 << 20)

typedef struct s3_config {
    const char *endpoint;       /* "http://127.0.0.1:9000"; NULL = env or AWS */
    const char *region;
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
} s3_config;

typedef struct s3store s3store;

/* url is "s3://bucket" or "s3://bucket/prefix". cfg may be NULL: then the settings
 * registered with s3_register for the longest prefix of url apply, if any. */
s3store *s3_open(const char *url, const s3_config *cfg, fl_err *err);

/* Records settings (copied) for every s3:// URL that starts with url_prefix, for the life
 * of the process; registering the same prefix again replaces them. This is how request
 * parameters (s3Endpoint, awsRegion, secret references resolved by secrets.h) reach
 * objstore_open, which takes only a URL. */
void s3_register(const char *url_prefix, const s3_config *cfg);
void s3_close(s3store *s);
const char *s3_spool_dir(const s3store *s);

int s3_get(s3store *s, const char *key, buf *out, fl_err *err);
int s3_put(s3store *s, const char *key, const void *p, size_t n, bool if_absent,
           fl_err *err);
int s3_delete(s3store *s, const char *key, fl_err *err);
int s3_stat(s3store *s, const char *key, objstore_entry *out, fl_err *err);
int s3_list(s3store *s, const char *prefix, const char *start_after, objstore_listing *out,
            fl_err *err);
/* Uploads the local file at path to key (multipart when large). */
int s3_upload_file(s3store *s, const char *key, const char *path, fl_err *err);
/* Downloads key into the local file path (written whole, then renamed into place). */
int s3_download_file(s3store *s, const char *key, const char *path, fl_err *err);

/* Helpers exposed for unit tests. */
void s3_uri_encode(buf *out, const char *s, bool keep_slash);
int s3_parse_url(const char *url, char **bucket, char **prefix, fl_err *err);

#endif
