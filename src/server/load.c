/* load.c: the bulk-load fast path shared by POST /fhir/$load and `fhirlake load`.
 * NDJSON lines are parsed into a per-batch arena, prepared (meta spliced at commit) and
 * committed `batch` at a time through store_commit (one transaction per batch). */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct batch {
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

static int batch_flush(store *s, batch *b, http_load_stats *st, fl_err *err)
{
    if (b->n && store_commit(s, b->ops, b->n, NULL, err)) return -1;
    st->written += (long)b->n;
    b->n = 0;
    arena_reset(b->a);
    return 0;
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
        fl_uuid4(u);
        id = arena_strdup(b->a, u);
    }
    http_prepared *p = &b->prep[b->n];
    if (http_prepare(v, id, p, where, err)) return -1;
    b->ops[b->n] = (store_op){.kind = STORE_PUT, .type = p->type, .id = p->id,
                              .if_match = -1, .render = http_render, .render_ctx = p};
    return 0;
}

/* Calls fn on each non-blank line; stops at the first failure. */
static int each_line(const char *text, size_t len, batch *b, store *s, bool write,
                     http_load_stats *st, http_progress_fn progress, void *pctx, fl_err *err)
{
    long line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - i;
        line++;
        size_t k = 0;
        while (k < n && (text[i + k] == ' ' || text[i + k] == '\t' || text[i + k] == '\r')) k++;
        if (k < n) {
            char where[32];
            snprintf(where, sizeof where, "line %ld", line);
            if (prepare_one(b, text + i, n, where, err)) return -1;
            b->n++;
            if (write) {
                st->lines++;
                st->bytes += (long)n + 1;
            }
            if (b->n == b->cap) {
                if (write && batch_flush(s, b, st, err)) return -1;
                if (!write) {
                    b->n = 0;
                    arena_reset(b->a);
                }
                if (write && progress) progress(pctx, st);
            }
        }
        i = end + 1;
    }
    if (write) return batch_flush(s, b, st, err);
    b->n = 0;
    arena_reset(b->a);
    return 0;
}

int http_load_ndjson(store *s, const char *text, size_t len, size_t batch_size,
                     bool validate_first, http_load_stats *st, http_progress_fn progress,
                     void *pctx, fl_err *err)
{
    batch b;
    int rc = -1;
    if (batch_init(&b, batch_size ? batch_size : 1000)) {
        fl_err_set(err, 500, "", "load: out of memory");
        batch_free(&b);
        return -1;
    }
    if (!validate_first || each_line(text, len, &b, s, false, st, NULL, NULL, err) == 0)
        rc = each_line(text, len, &b, s, true, st, progress, pctx, err);
    batch_free(&b);
    return rc;
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
    /* sort pairs by from (insertion sort keeps it simple; bundles are small) */
    for (size_t i = 1; i < k; i++) {
        const char *kf = f[i], *kt = t[i];
        size_t j = i;
        for (; j > 0 && strcmp(f[j - 1], kf) > 0; j--) {
            f[j] = f[j - 1];
            t[j] = t[j - 1];
        }
        f[j] = kf;
        t[j] = kt;
    }
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
            fl_uuid4(u);
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
