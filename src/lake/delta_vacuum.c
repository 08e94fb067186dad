/* delta_vacuum.c: removes data files no snapshot within the retention period needs: files
 * at the table's top level that are neither live nor removed by a tombstone younger than
 * the retention, and themselves older than it (so a writer's uncommitted files survive).
 * Deletion vector files (deletion_vector_*.bin) go by the same rule: kept while a live
 * file or a young tombstone names them. */
#include "delta.h"

#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted store keys of the files some snapshot within the retention still reads. */
static char **needed_keys(const delta_snapshot *s, int64_t horizon, size_t *n)
{
    char **k = malloc((2 * (s->n_files + s->n_removes) + 1) * sizeof *k);
    if (!k) abort();
    *n = 0;
    for (size_t i = 0; i < s->n_files; i++) {
        k[(*n)++] = delta_path_key(s->files[i].path);
        if ((k[*n] = delta_dv_key(&s->files[i].dv))) (*n)++;
    }
    for (size_t i = 0; i < s->n_removes; i++)
        if (s->removes[i].deletion_ts >= horizon) {
            k[(*n)++] = delta_path_key(s->removes[i].path);
            if ((k[*n] = delta_dv_key(&s->removes[i].dv))) (*n)++;
        }
    qsort(k, *n, sizeof *k, cmp_str);
    return k;
}

int delta_vacuum(objstore *os, const delta_snapshot *s, int64_t retention_ms, bool dry_run,
                 int64_t *deleted, fl_err *err)
{
    *deleted = 0;
    if (s->version < 0) {
        fl_err_set(err, 404, "_delta_log/", "not a Delta table");
        return -1;
    }
    int64_t horizon = fl_now_micros() / 1000 - retention_ms;
    size_t n;
    char **keep = needed_keys(s, horizon, &n);
    objstore_listing l;
    int rc = objstore_list(os, "", NULL, &l, err);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        const objstore_entry *e = &l.e[i];
        if (!strcmp(e->key, "_delta_log") || e->mtime_ms >= horizon) continue;
        bool dv = !strncmp(e->key, "deletion_vector_", 16) && strstr(e->key, ".bin");
        if (!dv && !strstr(e->key, ".parquet")) continue;  /* data files, staging files */
        if (bsearch(&e->key, keep, n, sizeof *keep, cmp_str)) continue;
        if (!dry_run && objstore_delete(os, e->key, err) != 0) rc = -1;
        else (*deleted)++;
    }
    objstore_list_free(&l);
    for (size_t i = 0; i < n; i++) free(keep[i]);
    free(keep);
    return rc;
}
