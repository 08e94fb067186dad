/* load.c: the bulk-load fast path shared by POST /fhir/$load and `fhirlake load`.
 * NDJSON lines are parsed into a per-batch arena, prepared (meta spliced at commit) and
 * committed `batch` at a time through store_commit (one transaction per batch). */
#include "server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct batch {
    struct loader *owner;
    arena *a;
    store_op *ops;
    http_prepared *prep;
    size_t n, cap;
} batch;

static int batch_init(batch *b, size_t cap)
{
    b->a = arena_new(1 << 20);
    b->ops = calloc(cap, sizeof *b->ops);
    b->prep = calloc(cap, sizeof *b->prep);
    b->n = 0;
    b->cap = cap;
    return b->a && b->ops && b->prep ? 0 : -1;
}

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->cap && b->prep; i++) http_prepared_free(&b->prep[i]);
    free(b->ops);
    free(b->prep);
    arena_free(b->a);
}

/* Parses and prepares one resource into slot b->n (not yet counted). */
static int prepare_one(batch *b, const char *text, size_t len, const char *where,
                       fl_err *err)
{
    json_val *v = json_parse(b->a, text, len, NULL, err);
    if (!v) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        fl_err_set(err, 400, where, "malformed JSON: %s", msg);
        return -1;
    }
    const char *id = NULL;
    if (json_is(v, JSON_OBJECT) && !json_get(v, "id")) {
        char u[37];
        http_new_id(u);
        id = arena_strdup(b->a, u);
    }
    http_prepared *p = &b->prep[b->n];
    if (http_prepare_raw(v, text, len, id, p, where, err)) return -1;
    b->ops[b->n] = (store_op){.kind = STORE_PUT, .type = p->type, .id = p->id,
                              .if_match = -1, .render = http_render, .render_ctx = p};
    return 0;
}

/* Three batches, up to two of them committing (store_commit_async) while the caller
 * parses and prepares the next: parsing, SQLite work and the WAL fsync overlap, and the
 * store still commits the batches in file order. */
#define NB 3
typedef struct loader {
    store *s;
    batch b[NB];
    bool in_flight[NB];
    int cur;
    bool write;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool failed;
    fl_err err;          /* the first failed batch */
    long committed;
} loader;


static void on_batch_done(void *ctx, int rc, int64_t txid, const fl_err *err)
{
    (void)txid;
    batch *b = ctx;
    loader *L = b->owner;
    pthread_mutex_lock(&L->mu);
    if (rc && !L->failed) {
        L->failed = true;
        L->err = *err;
    } else if (!rc) {
        L->committed += (long)b->n;
    }
    L->in_flight[b - L->b] = false;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
}

static int loader_init(loader *L, store *s, size_t cap, bool write)
{
    memset(L, 0, sizeof *L);
    L->s = s;
    L->write = write;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    for (int i = 0; i < NB; i++) {
        if (batch_init(&L->b[i], cap)) return -1;
        L->b[i].owner = L;
    }
    return 0;
}

/* Waits until slot is free (or, with slot < 0, every slot); -1 (err set) after a failure. */
static int loader_wait(loader *L, int slot, fl_err *err)
{
    pthread_mutex_lock(&L->mu);
    for (;;) {
        bool busy = false;
        for (int i = 0; i < NB; i++) busy |= L->in_flight[i] && (slot < 0 || i == slot);
        if (!busy) break;
        pthread_cond_wait(&L->cv, &L->mu);
    }
    int rc = L->failed ? -1 : 0;
    if (rc) *err = L->err;
    pthread_mutex_unlock(&L->mu);
    return rc;
}

/* Queues the current batch (or drops it when only validating) and moves to a free one. */
static int loader_flush(loader *L, fl_err *err)
{
    batch *b = &L->b[L->cur];
    if (L->write && b->n) {
        pthread_mutex_lock(&L->mu);
        L->in_flight[L->cur] = true;
        pthread_mutex_unlock(&L->mu);
        if (store_commit_async(L->s, b->ops, b->n, on_batch_done, b, err)) {
            L->in_flight[L->cur] = false;
            return -1;
        }
        L->cur = (L->cur + 1) % NB;
        if (loader_wait(L, L->cur, err)) return -1;
    }
    b = &L->b[L->cur];
    b->n = 0;
    arena_reset(b->a);
    return 0;
}

static void loader_free(loader *L)
{
    fl_err ignored;
    loader_wait(L, -1, &ignored); /* nothing may still point into the batches */
    for (int i = 0; i < NB; i++) batch_free(&L->b[i]);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
}

static void loader_progress(loader *L, http_load_stats *st)
{
    pthread_mutex_lock(&L->mu);
    st->written = L->committed;
    pthread_mutex_unlock(&L->mu);
}

/* Prepares every non-blank line, flushing full batches; stops at the first failure. */
static int each_line(loader *L, const char *text, size_t len, http_load_stats *st,
                     http_progress_fn progress, void *pctx, fl_err *err)
{
    long line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - i;
        line++;
        size_t k = 0;
        while (k < n && (text[i + k] == ' ' || text[i + k] == '\t' || text[i + k] == '\r')) k++;
        if (k < n) {
            batch *b = &L->b[L->cur];
            char where[32];
            snprintf(where, sizeof where, "line %ld", line);
            if (prepare_one(b, text + i, n, where, err)) return -1;
            b->n++;
            if (L->write) {
                st->lines++;
                st->bytes += (long)n + 1;
            }
            if (b->n == b->cap) {
                if (loader_flush(L, err)) return -1;
                if (L->write && progress) {
                    loader_progress(L, st);
                    progress(pctx, st);
                }
            }
        }
        i = end + 1;
    }
    if (loader_flush(L, err) || (L->write && loader_wait(L, -1, err))) return -1;
    return 0;
}

static int load_pass(store *s, const char *text, size_t len, size_t cap, bool write,
                     http_load_stats *st, http_progress_fn progress, void *pctx, fl_err *err)
{
    loader L;
    int rc = -1;
    if (loader_init(&L, s, cap, write)) fl_err_set(err, 500, "", "load: out of resources");
    else rc = each_line(&L, text, len, st, progress, pctx, err);
    loader_free(&L);
    if (write) st->written = L.committed;
    return rc;
}

int http_load_ndjson(store *s, const char *text, size_t len, size_t batch_size,
                     bool validate_first, http_load_stats *st, http_progress_fn progress,
                     void *pctx, fl_err *err)
{
    size_t cap = batch_size ? batch_size : 5000;
    if (validate_first && load_pass(s, text, len, cap, false, st, NULL, NULL, err)) return -1;
    return load_pass(s, text, len, cap, true, st, progress, pctx, err);
}

/* Maps each urn fullUrl to Type/id so references inside the Bundle resolve. */
static void bundle_ref_map(arena *a, json_val *entries, const char ***from, const char ***to,
                           size_t *n)
{
    size_t cap = entries->len, k = 0;
    const char **f = arena_alloc(a, (cap + 1) * sizeof *f);
    const char **t = arena_alloc(a, (cap + 1) * sizeof *t);
    for (uint32_t i = 0; i < entries->len; i++) {
        json_val *e = &entries->u.a[i], *res = json_get(e, "resource");
        const char *fu = json_get_str(e, "fullUrl");
        const char *rt = json_get_str(res, "resourceType"), *id = json_get_str(res, "id");
        if (fu && rt && id && !strncmp(fu, "urn:", 4)) {
            f[k] = fu;
            t[k++] = arena_printf(a, "%s/%s", rt, id);
        }
    }
    http_sort_refs(f, t, k);
    *from = f;
    *to = t;
    *n = k;
}

int http_load_bundle(store *s, arena *a, json_val *bundle, http_load_stats *st, fl_err *err)
{
    json_val *entries = json_get(bundle, "entry");
    if (!entries) return 0;
    if (!json_is(entries, JSON_ARRAY)) {
        fl_err_set(err, 400, "Bundle.entry", "entry must be an array");
        return -1;
    }
    const char **from, **to;
    size_t nmap;
    bundle_ref_map(a, entries, &from, &to, &nmap);
    size_t n = entries->len;
    store_op *ops = calloc(n ? n : 1, sizeof *ops);
    http_prepared *prep = calloc(n ? n : 1, sizeof *prep);
    int rc = ops && prep ? 0 : -1;
    if (rc) fl_err_set(err, 500, "", "load: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_val *res = json_get(&entries->u.a[i], "resource");
        if (!res) continue;
        http_rewrite_refs(a, res, from, to, nmap);
        char where[48];
        snprintf(where, sizeof where, "Bundle.entry[%zu]", i);
        const char *id = NULL;
        if (json_is(res, JSON_OBJECT) && !json_get(res, "id")) {
            char u[37];
            http_new_id(u);
            id = arena_strdup(a, u);
        }
        rc = http_prepare(res, id, &prep[k], where, err);
        ops[k] = (store_op){.kind = STORE_PUT, .type = prep[k].type, .id = prep[k].id,
                            .if_match = -1, .render = http_render, .render_ctx = &prep[k]};
        k++;
    }
    st->lines += (long)k;
    if (rc == 0 && k && store_commit(s, ops, k, NULL, err)) rc = -1;
    if (rc == 0) st->written += (long)k;
    for (size_t i = 0; prep && i < n; i++) http_prepared_free(&prep[i]);
    free(ops);
    free(prep);
    return rc;
}
