/* objstore.c: the local-filesystem backend of the object-store interface (objstore.h).
 * Owns: key validation, temp-file + fsync + rename/link writes, directory listing. */
#include "objstore.h"
#include "s3.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct objstore {
    char *root;   /* no trailing '/'; for s3:// the local spool directory */
    s3store *s3;  /* s3:// backend, or NULL for a local directory */
};

struct objstore_writer {
    objstore *s;
    char *final;  /* full path of the target */
    char *tmp;    /* full path of the hidden temp file */
    int fd;
    int64_t size;
    size_t fill;
    char bufr[1 << 18];  /* batches small writes into big write() calls */
};

static bool key_ok(const char *key)
{
    if (!key || !*key || key[0] == '/') return false;
    for (const char *seg = key; seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        seg = end ? end + 1 : NULL;
    }
    return true;
}

static char *full_path(const objstore *s, const char *key)
{
    size_t n = strlen(s->root) + strlen(key) + 2;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s", s->root, key);
    return p;
}

/* mkdir -p for the parent directories of path (not path itself). */
static int mkdirs_for(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int rc = mkdir(path, 0777);
        *p = '/';
        if (rc != 0 && errno != EEXIST) return -1;
    }
    return 0;
}

static void fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return;
    char dir[4096];
    size_t n = (size_t)(slash - path);
    if (n == 0 || n >= sizeof dir) return;
    memcpy(dir, path, n);
    dir[n] = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);  /* makes the new directory entry durable; best effort */
        close(fd);
    }
}

/* Temp name "<dir>/.<name>.<uuid>.tmp": hidden, so listings and readers skip it. */
static char *temp_path_for(const char *final)
{
    const char *slash = strrchr(final, '/');
    size_t dlen = slash ? (size_t)(slash - final + 1) : 0;
    char id[37];
    fl_uuid4(id);
    size_t n = strlen(final) + 48;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%.*s.%s.%s.tmp", (int)dlen, final, final + dlen, id);
    return p;
}

static objstore *open_s3(const char *url, fl_err *err)
{
    s3store *s3 = s3_open(url, NULL, err);
    if (!s3) return NULL;
    objstore *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->s3 = s3;
    s->root = strdup(s3_spool_dir(s3));
    if (!s->root) abort();
    /* path-based writers do not create directories: checkpoints go to _delta_log/ */
    char *probe = full_path(s, "_delta_log/x");
    mkdirs_for(probe);
    free(probe);
    return s;
}

objstore *objstore_open(const char *url, bool create, fl_err *err)
{
    if (!strncmp(url, "s3://", 5)) return open_s3(url, err);
    if (!strncmp(url, "file://", 7)) url += 7;
    else if (strstr(url, "://")) {
        fl_err_set(err, 400, url, "unsupported object store URL scheme (only local paths "
                                  "and file:// for now)");
        return NULL;
    }
    if (!*url) {
        fl_err_set(err, 400, "", "empty table location");
        return NULL;
    }
    objstore *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->root = strdup(url);
    if (!s->root) abort();
    size_t n = strlen(s->root);
    while (n > 1 && s->root[n - 1] == '/') s->root[--n] = 0;
    if (create) {
        char *probe = full_path(s, "x");
        int rc = mkdirs_for(probe);
        free(probe);
        if (rc != 0) {
            fl_err_set(err, 500, url, "cannot create directory: %s", strerror(errno));
            objstore_close(s);
            return NULL;
        }
    }
    struct stat st;
    if (stat(s->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fl_err_set(err, 404, url, "not a directory");
        objstore_close(s);
        return NULL;
    }
    return s;
}

void objstore_close(objstore *s)
{
    if (!s) return;
    s3_close(s->s3);
    free(s->root);
    free(s);
}

const char *objstore_root(const objstore *s) { return s->root; }

int objstore_get(objstore *s, const char *key, buf *out, fl_err *err)
{
    if (!key_ok(key)) {
        fl_err_set(err, 400, key ? key : "", "bad object key");
        return -1;
    }
    if (s->s3) return s3_get(s->s3, key, out, err);
    char *path = full_path(s, key);
    int fd = open(path, O_RDONLY);
    free(path);
    buf_reset(out);
    if (fd < 0) {
        if (errno == ENOENT) {
            fl_err_set(err, 404, key, "object not found");
            return OBJSTORE_NOT_FOUND;
        }
        fl_err_set(err, 500, key, "open: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        buf_reserve(out, 65536);
        ssize_t r = read(fd, out->p + out->len, out->cap - out->len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            fl_err_set(err, 500, key, "read: %s", strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0) break;
        out->len += (size_t)r;
        out->p[out->len] = 0;
    }
    close(fd);
    return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

objstore_writer *objstore_writer_open(objstore *s, const char *key, fl_err *err)
{
    if (!key_ok(key)) {
        fl_err_set(err, 400, key ? key : "", "bad object key");
        return NULL;
    }
    objstore_writer *w = malloc(sizeof *w);
    if (!w) abort();
    w->s = s;
    w->final = full_path(s, key);
    w->tmp = temp_path_for(w->final);
    w->size = 0;
    w->fill = 0;
    if (mkdirs_for(w->tmp) != 0 ||
        (w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) < 0) {
        fl_err_set(err, 500, key, "cannot create: %s", strerror(errno));
        free(w->final);
        free(w->tmp);
        free(w);
        return NULL;
    }
    return w;
}

static int writer_flush(objstore_writer *w, fl_err *err)
{
    if (w->fill && write_all(w->fd, w->bufr, w->fill) != 0) {
        fl_err_set(err, 500, w->final, "write: %s", strerror(errno));
        return -1;
    }
    w->fill = 0;
    return 0;
}

int objstore_writer_write(objstore_writer *w, const void *p, size_t n, fl_err *err)
{
    w->size += (int64_t)n;
    if (w->fill + n <= sizeof w->bufr) {
        memcpy(w->bufr + w->fill, p, n);
        w->fill += n;
        return 0;
    }
    if (writer_flush(w, err) != 0) return -1;
    if (n >= sizeof w->bufr) {
        if (write_all(w->fd, p, n) != 0) {
            fl_err_set(err, 500, w->final, "write: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    memcpy(w->bufr, p, n);
    w->fill = n;
    return 0;
}

int64_t objstore_writer_size(const objstore_writer *w) { return w->size; }

static void writer_free(objstore_writer *w)
{
    free(w->final);
    free(w->tmp);
    free(w);
}

void objstore_writer_abort(objstore_writer *w)
{
    if (!w) return;
    close(w->fd);
    unlink(w->tmp);
    writer_free(w);
}

/* Flushes and fsyncs the temp file; link_only selects put-if-absent semantics. */
static int writer_finish(objstore_writer *w, bool link_only, fl_err *err)
{
    if (writer_flush(w, err) != 0 || fsync(w->fd) != 0) {
        if (FL_OK(err)) fl_err_set(err, 500, w->final, "fsync: %s", strerror(errno));
        objstore_writer_abort(w);
        return -1;
    }
    close(w->fd);
    w->fd = -1;
    int rc = 0;
    if (link_only) {
        /* link() fails with EEXIST atomically: the put-if-absent primitive. */
        if (link(w->tmp, w->final) != 0) {
            if (errno == EEXIST) rc = OBJSTORE_EXISTS;
            else {
                fl_err_set(err, 500, w->final, "link: %s", strerror(errno));
                rc = -1;
            }
        }
        unlink(w->tmp);
    } else if (rename(w->tmp, w->final) != 0) {
        fl_err_set(err, 500, w->final, "rename: %s", strerror(errno));
        unlink(w->tmp);
        rc = -1;
    }
    if (rc == 0) fsync_dir_of(w->final);
    writer_free(w);
    return rc;
}

int objstore_writer_commit(objstore_writer *w, fl_err *err)
{
    objstore *s = w->s;
    if (!s->s3) return writer_finish(w, false, err);
    char *key = strdup(w->final + strlen(s->root) + 1);
    if (!key) abort();
    int rc = writer_finish(w, false, err);   /* into the spool, then up */
    if (rc == 0) rc = objstore_publish(s, key, err);
    free(key);
    return rc;
}

static int put_impl(objstore *s, const char *key, const void *p, size_t n, bool if_absent,
                    fl_err *err)
{
    objstore_writer *w = objstore_writer_open(s, key, err);
    if (!w) return -1;
    if (objstore_writer_write(w, p, n, err) != 0) {
        objstore_writer_abort(w);
        return -1;
    }
    return writer_finish(w, if_absent, err);
}

int objstore_put(objstore *s, const char *key, const void *p, size_t n, fl_err *err)
{
    if (s->s3 && key_ok(key)) return s3_put(s->s3, key, p, n, false, err);
    return put_impl(s, key, p, n, false, err);
}

int objstore_put_if_absent(objstore *s, const char *key, const void *p, size_t n, fl_err *err)
{
    if (s->s3 && key_ok(key)) return s3_put(s->s3, key, p, n, true, err);
    return put_impl(s, key, p, n, true, err);
}

int objstore_delete(objstore *s, const char *key, fl_err *err)
{
    if (!key_ok(key)) {
        fl_err_set(err, 400, key ? key : "", "bad object key");
        return -1;
    }
    if (s->s3) return s3_delete(s->s3, key, err);
    char *path = full_path(s, key);
    int rc = unlink(path);
    int e = errno;
    free(path);
    if (rc != 0 && e != ENOENT) {
        fl_err_set(err, 500, key, "unlink: %s", strerror(e));
        return -1;
    }
    return 0;
}

int objstore_stat(objstore *s, const char *key, objstore_entry *out, fl_err *err)
{
    if (!key_ok(key)) {
        fl_err_set(err, 400, key ? key : "", "bad object key");
        return -1;
    }
    if (s->s3) return s3_stat(s->s3, key, out, err);
    char *path = full_path(s, key);
    struct stat st;
    int rc = stat(path, &st);
    int e = errno;
    free(path);
    if (rc != 0) {
        if (e == ENOENT || e == ENOTDIR) return OBJSTORE_NOT_FOUND;
        fl_err_set(err, 500, key, "stat: %s", strerror(e));
        return -1;
    }
    out->key = NULL;
    out->size = st.st_size;
    out->mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const objstore_entry *)a)->key, ((const objstore_entry *)b)->key);
}

int objstore_list(objstore *s, const char *prefix, const char *start_after,
                  objstore_listing *out, fl_err *err)
{
    out->n = 0;
    out->e = NULL;
    if (s->s3) return s3_list(s->s3, prefix, start_after, out, err);
    const char *slash = strrchr(prefix, '/');
    size_t dlen = slash ? (size_t)(slash - prefix + 1) : 0;  /* "dir/" part, with '/' */
    const char *name_prefix = prefix + dlen;
    char *dirpath = malloc(strlen(s->root) + dlen + 2);
    if (!dirpath) abort();
    sprintf(dirpath, "%s/%.*s", s->root, (int)dlen, prefix);
    DIR *d = opendir(dirpath);
    free(dirpath);
    if (!d) {
        if (errno == ENOENT) return 0;
        fl_err_set(err, 500, prefix, "opendir: %s", strerror(errno));
        return -1;
    }
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;   /* ., .., and in-flight temp files */
        if (strncmp(de->d_name, name_prefix, strlen(name_prefix))) continue;
        size_t kn = dlen + strlen(de->d_name) + 1;
        char *key = malloc(kn);
        if (!key) abort();
        snprintf(key, kn, "%.*s%s", (int)dlen, prefix, de->d_name);
        if (start_after && strcmp(key, start_after) <= 0) {
            free(key);
            continue;
        }
        objstore_entry en = {key, 0, 0};
        if (objstore_stat(s, key, &en, err) != 0) {   /* vanished meanwhile: skip */
            en.key = key;
            free(key);
            fl_err_clear(err);
            continue;
        }
        en.key = key;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 64;
            out->e = realloc(out->e, cap * sizeof *out->e);
            if (!out->e) abort();
        }
        out->e[out->n++] = en;
    }
    closedir(d);
    if (out->n) qsort(out->e, out->n, sizeof *out->e, entry_cmp);
    return 0;
}

void objstore_list_free(objstore_listing *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->e[i].key);
    free(l->e);
    l->n = 0;
    l->e = NULL;
}

/* ---- remote stores: publishing files written under objstore_root() by path ---- */
int objstore_publish(objstore *s, const char *key, fl_err *err)
{
    if (!s->s3) return 0;
    if (!key_ok(key)) {
        fl_err_set(err, 400, key ? key : "", "bad object key");
        return -1;
    }
    char *path = full_path(s, key);
    int rc = s3_upload_file(s->s3, key, path, err);
    unlink(path);   /* the spool copy is not needed any more either way */
    free(path);
    return rc;
}

int objstore_fetch(objstore *s, const char *key, fl_err *err)
{
    if (!s->s3) return 0;
    if (!key_ok(key)) {
        fl_err_set(err, 400, key ? key : "", "bad object key");
        return -1;
    }
    char *path = full_path(s, key);
    int rc = mkdirs_for(path) == 0 ? s3_download_file(s->s3, key, path, err) : -1;
    if (rc == -1 && FL_OK(err)) fl_err_set(err, 500, key, "cannot create spool directory");
    free(path);
    return rc;
}
