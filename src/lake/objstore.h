/* objstore: the object-store interface the lake room writes tables through.
 *
 * Contract:
 *  - A store is opened on a root (a local directory path or file:// URL today; s3:// comes
 *    later behind the same functions). Everything below it is addressed by KEYS: relative,
 *    '/'-separated, no leading '/', no "." or ".." segments. Never by filesystem paths.
 *  - Writes are atomic: a reader sees the whole object or none of it. The local backend
 *    writes a hidden temp file beside the target, fsyncs it, then renames (put) or links
 *    (put-if-absent) it into place and fsyncs the directory, so a crash never leaves a
 *    partial object visible.
 *  - put_if_absent is the commit primitive of the Delta log: exactly one of several
 *    concurrent writers of the same key succeeds; the others get OBJSTORE_EXISTS.
 *  - list returns the objects directly under the "directory" part of prefix whose names
 *    start with the rest of prefix and sort strictly after start_after (may be NULL),
 *    in byte order. Temp files of in-flight writes are never listed.
 *  - Errors: functions return 0 on success, OBJSTORE_EXISTS / OBJSTORE_NOT_FOUND where
 *    stated, or -1 with err filled (status 500 for I/O, 404 for a missing object, 400
 *    for a bad key).
 */
#ifndef FL_OBJSTORE_H
#define FL_OBJSTORE_H

#include "../util/util.h"

enum { OBJSTORE_EXISTS = 1, OBJSTORE_NOT_FOUND = 2 };

typedef struct objstore objstore;

typedef struct objstore_entry {
    char *key;            /* full key (prefix included), malloc'd */
    int64_t size;
    int64_t mtime_ms;     /* last modification, ms since the epoch */
} objstore_entry;

typedef struct objstore_listing {
    size_t n;
    objstore_entry *e;    /* sorted by key */
} objstore_listing;

/* Opens a store rooted at url (directory path or file://path). The directory is created
 * if create is true. NULL with err on failure. */
objstore *objstore_open(const char *url, bool create, fl_err *err);
void objstore_close(objstore *s);
const char *objstore_root(const objstore *s);   /* the local root directory */

/* Reads the whole object into out (replacing its content). OBJSTORE_NOT_FOUND (err
 * filled with status 404) if absent. */
int objstore_get(objstore *s, const char *key, buf *out, fl_err *err);
int objstore_put(objstore *s, const char *key, const void *p, size_t n, fl_err *err);
/* OBJSTORE_EXISTS (err untouched) if the key already exists; nothing is changed then. */
int objstore_put_if_absent(objstore *s, const char *key, const void *p, size_t n,
                           fl_err *err);
int objstore_delete(objstore *s, const char *key, fl_err *err); /* absent is fine */
/* OBJSTORE_NOT_FOUND (err untouched) if absent. */
int objstore_stat(objstore *s, const char *key, objstore_entry *out, fl_err *err);
int objstore_list(objstore *s, const char *prefix, const char *start_after,
                  objstore_listing *out, fl_err *err);
void objstore_list_free(objstore_listing *l);

/* Streaming writer for large objects (data files): nothing is visible until commit,
 * abort (or a crash) leaves nothing visible. */
typedef struct objstore_writer objstore_writer;
objstore_writer *objstore_writer_open(objstore *s, const char *key, fl_err *err);
int objstore_writer_write(objstore_writer *w, const void *p, size_t n, fl_err *err);
int64_t objstore_writer_size(const objstore_writer *w);
/* Makes the object visible (replacing any old one) and frees the writer. */
int objstore_writer_commit(objstore_writer *w, fl_err *err);
void objstore_writer_abort(objstore_writer *w);

/* Remote stores (s3://, see s3.h): objstore_root() is then a private local spool
 * directory. Path-based writers (Parquet) write root/key there, and objstore_publish makes
 * it visible in the store (upload, then the spool copy is removed); objstore_fetch copies
 * an object to root/key so that path-based readers can open it. Both are no-ops (0) on a
 * local store, where root/key already is the object. */
int objstore_publish(objstore *s, const char *key, fl_err *err);
int objstore_fetch(objstore *s, const char *key, fl_err *err);

#endif
