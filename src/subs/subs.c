/* subs.c: the subscription registry — validation of AidboxSubscriptionTopic and
 * AidboxTopicDestination, the in-memory topics/destinations kept in step with the store by
 * the write listener (which also fills each destination's outbox queue inside the write
 * transaction), startup/shutdown of the delivery workers, and $status. */
#include "subs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../fhirpath/fhir_types.h"
#include "../sof/sof.h"

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) abort();
    return d;
}

/* ---- topics ---- */
static const char *const crit_names[] = {"current", "previous"};
static const fp_env crit_env = {crit_names, 2};

static unsigned interaction_bit(const char *s)
{
    if (!strcmp(s, "create")) return SUBS_CREATE;
    if (!strcmp(s, "update")) return SUBS_UPDATE;
    if (!strcmp(s, "delete")) return SUBS_DELETE;
    return 0;
}

static void topic_free(subs_topic *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->t[i].resource);
        fp_free(t->t[i].criteria);
    }
    free(t->t);
    free(t->id);
    free(t->url);
    free(t);
}

static int parse_trigger(const json_val *tr, size_t i, subs_trigger *out, fl_err *err)
{
    char where[64];
    snprintf(where, sizeof where, "trigger[%zu]", i);
    if (!json_is(tr, JSON_OBJECT)) {
        fl_err_set(err, 400, where, "a trigger must be an object");
        return -1;
    }
    const char *res = json_get_str(tr, "resource");
    if (!res || !fhir_is_resource_type(res, strlen(res))) {
        snprintf(where, sizeof where, "trigger[%zu].resource", i);
        fl_err_set(err, 400, where, "resource must be a FHIR R4 resource type%s%.64s%s",
                   res ? " ('" : "", res ? res : "", res ? "' is not)" : "");
        return -1;
    }
    unsigned mask = 0;
    const json_val *si = json_get(tr, "supportedInteraction");
    if (si && !json_is(si, JSON_ARRAY)) {
        snprintf(where, sizeof where, "trigger[%zu].supportedInteraction", i);
        fl_err_set(err, 400, where, "supportedInteraction must be an array");
        return -1;
    }
    for (uint32_t k = 0; si && k < si->len; k++) {
        const json_val *v = &si->u.a[k];
        unsigned b = json_is(v, JSON_STRING) ? interaction_bit(v->u.s) : 0;
        if (!b) {
            snprintf(where, sizeof where, "trigger[%zu].supportedInteraction[%u]", i, k);
            fl_err_set(err, 400, where, "supportedInteraction must be create, update or delete");
            return -1;
        }
        mask |= b;
    }
    if (!mask) mask = SUBS_CREATE | SUBS_UPDATE | SUBS_DELETE;
    fp_expr *crit = NULL;
    const json_val *fc = json_get(tr, "fhirPathCriteria");
    if (fc) {
        snprintf(where, sizeof where, "trigger[%zu].fhirPathCriteria", i);
        if (!json_is(fc, JSON_STRING)) {
            fl_err_set(err, 400, where, "fhirPathCriteria must be a string");
            return -1;
        }
        fl_err e2;
        fl_err_clear(&e2);
        crit = fp_compile(fc->u.s, &crit_env, &e2);
        if (!crit) {
            fl_err_set(err, 400, where, "invalid FHIRPath: %s", e2.msg);
            return -1;
        }
    }
    if (out) *out = (subs_trigger){xstrdup(res), mask, crit};
    else fp_free(crit);
    return 0;
}

/* Parses a topic; out NULL = validate only. */
static int parse_topic(const json_val *res, subs_topic **out, fl_err *err)
{
    const char *url = json_get_str(res, "url");
    if (!url || !*url) {
        fl_err_set(err, 400, "url", "url is required (a string)");
        return -1;
    }
    const char *status = json_get_str(res, "status");
    if (!status || (strcmp(status, "draft") && strcmp(status, "active") &&
                    strcmp(status, "retired") && strcmp(status, "unknown"))) {
        fl_err_set(err, 400, "status", "status is required: draft, active, retired or unknown");
        return -1;
    }
    const json_val *tr = json_get(res, "trigger");
    if (!json_is(tr, JSON_ARRAY) || !tr->len) {
        fl_err_set(err, 400, "trigger", "trigger must be a non-empty array");
        return -1;
    }
    subs_topic *t = out ? calloc(1, sizeof *t) : NULL;
    if (t) t->t = calloc(tr->len, sizeof *t->t);
    for (uint32_t i = 0; i < tr->len; i++) {
        if (parse_trigger(&tr->u.a[i], i, t ? &t->t[i] : NULL, err)) {
            topic_free(t);
            return -1;
        }
        if (t) t->n++;
    }
    if (t) {
        t->url = xstrdup(url);
        t->id = xstrdup(json_get_str(res, "id"));
        *out = t;
    }
    return 0;
}

int subs_validate_topic(const json_val *res, fl_err *err)
{
    return parse_topic(res, NULL, err);
}

/* ---- destinations ---- */
void subs_conf_free(subs_conf *c)
{
    free(c->topic_url);
    free(c->view);
    free(c->table_path);
    free((char *)c->dbx.workspace);
    free((char *)c->dbx.warehouse);
    free((char *)c->dbx.table);
    free((char *)c->dbx.staging);
    free(c->s3_endpoint);
    free(c->aws_region);
    memset(c, 0, sizeof *c);
}

static bool secret_like(const char *name)
{
    static const char *const words[] = {"secret", "password", "token", "key"};
    for (size_t i = 0; i < 4; i++)
        if (strcasestr(name, words[i])) return true;
    return false;
}

/* The value[x] of a parameter: *suffix gets what follows "value". */
static const json_val *param_value(const json_val *p, const char **suffix)
{
    for (uint32_t k = 0; k < p->len; k++)
        if (!strncmp(p->u.o[k].key, "value", 5)) {
            *suffix = p->u.o[k].key + 5;
            return &p->u.o[k].val;
        }
    return NULL;
}

static int want_string(const json_val *v, const char *sfx, const char *name, fl_err *err)
{
    if (strcmp(sfx, "String") || !json_is(v, JSON_STRING) || !v->len) {
        fl_err_set(err, 400, name, "parameter '%s' takes a non-empty valueString", name);
        return -1;
    }
    return 0;
}

static int want_count(const json_val *v, const char *sfx, const char *name, long min,
                      long *out, fl_err *err)
{
    int64_t n = 0;
    bool ok = (!strcmp(sfx, "UnsignedInt") || !strcmp(sfx, "PositiveInt") ||
               !strcmp(sfx, "Integer")) && json_is(v, JSON_NUMBER) &&
              json_num_int64(v, &n) == 0 && n >= min && n <= 100000000;
    if (!ok) {
        fl_err_set(err, 400, name, "parameter '%s' takes a valueUnsignedInt >= %ld", name, min);
        return -1;
    }
    *out = (long)n;
    return 0;
}

static int conf_param(const char *name, const json_val *v, const char *sfx, subs_conf *c,
                      fl_err *err)
{
    if (!strcmp(name, "viewDefinition")) {
        if (want_string(v, sfx, name, err)) return -1;
        c->view = xstrdup(v->u.s);
    } else if (!strcmp(name, "batchSize")) {
        return want_count(v, sfx, name, 1, &c->batch_size, err);
    } else if (!strcmp(name, "sendIntervalMs")) {
        return want_count(v, sfx, name, 0, &c->send_interval_ms, err);
    } else if (!strcmp(name, "skipInitialExport")) {
        if (strcmp(sfx, "Boolean") || !(json_is(v, JSON_TRUE) || json_is(v, JSON_FALSE))) {
            fl_err_set(err, 400, name, "parameter '%s' takes a valueBoolean", name);
            return -1;
        }
        c->skip_initial = json_is(v, JSON_TRUE);
    } else if (!strcmp(name, "tablePath")) {
        if (want_string(v, sfx, name, err)) return -1;
        c->table_path = xstrdup(v->u.s);
    } else if (!strcmp(name, "writeMode")) {
        if (want_string(v, sfx, name, err)) return -1;
        if (strcmp(v->u.s, "external-direct") && strcmp(v->u.s, "managed-sql")) {
            fl_err_set(err, 400, name, "writeMode '%.60s' is not supported (external-direct "
                                       "or managed-sql)", v->u.s);
            return -1;
        }
        c->managed = !strcmp(v->u.s, "managed-sql");
    } else if (!strcmp(name, "databricksWorkspaceUrl") || !strcmp(name, "databricksWarehouseId") ||
               !strcmp(name, "tableName") || !strcmp(name, "stagingTablePath")) {
        if (want_string(v, sfx, name, err)) return -1;
        const char **slot = !strcmp(name, "tableName")          ? &c->dbx.table
                            : !strcmp(name, "stagingTablePath")   ? &c->dbx.staging
                            : !strcmp(name, "databricksWorkspaceUrl") ? &c->dbx.workspace
                                                                  : &c->dbx.warehouse;
        *slot = xstrdup(v->u.s);
    } else if (!strcmp(name, "awsRegion") || !strcmp(name, "s3Endpoint")) {
        if (want_string(v, sfx, name, err)) return -1;
        char **slot = name[0] == 'a' ? &c->aws_region : &c->s3_endpoint;
        free(*slot);
        *slot = xstrdup(v->u.s);
    } else if (!strcmp(name, "targetFileSizeMb")) {
        return want_count(v, sfx, name, 1, &c->target_file_mb, err);
    } else if (!strcmp(name, "chunkCount") || !strcmp(name, "initialExportChunkCount")) {
        long ignored;   /* sizing hints of the article's API: batches already bound the files */
        return want_count(v, sfx, name, 1, &ignored, err);
    } else if (!strcmp(name, "tableMode")) {
        if (want_string(v, sfx, name, err)) return -1;
        if (strcmp(v->u.s, "append") && strcmp(v->u.s, "current")) {
            fl_err_set(err, 400, name, "tableMode must be append or current");
            return -1;
        }
        c->table_mode = strcmp(v->u.s, "current") ? SUBS_APPEND : SUBS_CURRENT;
    } else if (secret_like(name)) {
        /* credentials: kept out of the stored resource (subs_rewrite_destination); never
         * echo the value, not even in an error */
        if (strcmp(sfx, "String") || !json_is(v, JSON_STRING) || !v->len) {
            fl_err_set(err, 400, name, "parameter '%.100s' takes a non-empty valueString", name);
            return -1;
        }
    } else {
        fl_err_set(err, 400, name, "unknown parameter '%.100s'", name);
        return -1;
    }
    return 0;
}

/* Parses a destination resource into c (caller frees with subs_conf_free). */
static int parse_dest(const json_val *res, subs_conf *c, fl_err *err)
{
    memset(c, 0, sizeof *c);
    c->batch_size = 50;
    c->send_interval_ms = 5000;
    const char *topic = json_get_str(res, "topic");
    if (!topic || !*topic) {
        fl_err_set(err, 400, "topic", "topic is required (the url of an AidboxSubscriptionTopic)");
        return -1;
    }
    const char *kind = json_get_str(res, "kind");
    if (!kind || strcmp(kind, "data-lakehouse-at-least-once")) {
        fl_err_set(err, 400, "kind", "kind must be data-lakehouse-at-least-once");
        return -1;
    }
    const json_val *ps = json_get(res, "parameter");
    if (!json_is(ps, JSON_ARRAY)) {
        fl_err_set(err, 400, "parameter", "parameter must be an array");
        return -1;
    }
    c->topic_url = xstrdup(topic);
    for (uint32_t i = 0; i < ps->len; i++) {
        const json_val *p = &ps->u.a[i];
        const char *name = json_is(p, JSON_OBJECT) ? json_get_str(p, "name") : NULL;
        char where[48];
        snprintf(where, sizeof where, "parameter[%u]", i);
        if (!name || !*name) {
            fl_err_set(err, 400, where, "a parameter needs a name");
            goto fail;
        }
        for (uint32_t k = 0; k < i; k++)
            if (!strcmp(name, json_get_str(&ps->u.a[k], "name"))) {
                fl_err_set(err, 400, name, "parameter '%.100s' is repeated", name);
                goto fail;
            }
        const char *sfx = NULL;
        const json_val *v = param_value(p, &sfx);
        if (!v) {
            fl_err_set(err, 400, name, "parameter '%.100s' has no value[x]", name);
            goto fail;
        }
        if (conf_param(name, v, sfx, c, err)) goto fail;
    }
    if (!c->view) {
        fl_err_set(err, 400, "viewDefinition", "parameter 'viewDefinition' is required");
        goto fail;
    }
    return 0;
fail:
    subs_conf_free(c);
    return -1;
}

typedef struct view_find {
    arena *a;
    const char *name;
    store_res *out;
    bool found;
} view_find;

static int view_by_name(void *ctx, const store_res *r)
{
    view_find *f = ctx;
    fl_err e;
    json_val *v = json_parse(f->a, r->body, r->body_len, NULL, &e);
    const char *n = v ? json_get_str(v, "name") : NULL;
    if (!n || strcmp(n, f->name)) return 0;
    *f->out = *r;
    f->out->type = arena_strdup(f->a, r->type);
    f->out->id = arena_strdup(f->a, r->id);
    f->out->body = arena_strndup(f->a, r->body, r->body_len);
    f->found = true;
    return 1;
}

int subs_find_view(store *s, arena *a, const char *ref, store_res *out, fl_err *err)
{
    fl_err e;
    fl_err_clear(&e);
    if (store_read(s, a, "ViewDefinition", ref, 0, out, &e) == 0) return 0;
    view_find f = {a, ref, out, false};
    store_query q = {.type = "ViewDefinition", .ts_min = INT64_MIN, .ts_max = INT64_MAX,
                     .count = -1};
    if (store_search(s, &q, view_by_name, &f, NULL, err)) return -1;
    if (!f.found) {
        fl_err_set(err, 400, "viewDefinition", "no stored ViewDefinition has the name or id '%.100s'",
                   ref);
        return -1;
    }
    return 0;
}

static subs_topic *topic_by_url(subs *sb, const char *url)
{
    for (subs_topic *t = sb->topics; t; t = t->next)
        if (!strcmp(t->url, url)) return t;
    return NULL;
}

/* Secret-like parameters are never stored in clear: a request must give each as a
 * reference ("secret:NAME") to the server's secrets file (DATA/secrets.json or
 * $FHIRLAKE_SECRETS_FILE). awsAccessKeyId / awsSecretAccessKey must also resolve now (the
 * worker resolves them again from the stored copy, see deliver.c). Runs on requests only:
 * stored destinations hold the references redacted. */
static int check_secret_refs(subs *sb, const json_val *res, fl_err *err)
{
    const json_val *ps = json_get(res, "parameter");
    for (uint32_t i = 0; json_is(ps, JSON_ARRAY) && i < ps->len; i++) {
        const char *name = json_get_str(&ps->u.a[i], "name");
        const char *val = json_get_str(&ps->u.a[i], "valueString");
        if (!name || !secret_like(name)) continue;
        if (!secrets_is_ref(val)) {
            fl_err_set(err, 400, name,
                       "parameter '%.100s' must be a secret reference \"secret:NAME\" resolved "
                       "from the server's secrets file; clear values are not stored", name);
            return -1;
        }
        if (strcmp(name, "awsAccessKeyId") && strcmp(name, "awsSecretAccessKey")) continue;
        char *v = NULL;
        if (secrets_resolve(sb->data_dir, name, val, &v, err)) return -1;
        explicit_bzero(v, strlen(v));
        free(v);
    }
    return 0;
}

int subs_validate_destination(subs *sb, const json_val *res, fl_err *err)
{
    subs_conf c;
    if (parse_dest(res, &c, err)) return -1;
    if (c.managed && dbx_check(&c.dbx, err)) {   /* parameters + a token, synchronously */
        subs_conf_free(&c);
        return -1;
    }
    if (check_secret_refs(sb, res, err)) {
        subs_conf_free(&c);
        return -1;
    }
    pthread_mutex_lock(&sb->mu);
    bool known = topic_by_url(sb, c.topic_url) != NULL;
    pthread_mutex_unlock(&sb->mu);
    int rc = -1;
    arena *a = arena_new(0);
    store_res vr;
    if (!known) {
        fl_err_set(err, 400, "topic", "no AidboxSubscriptionTopic has the url '%.200s'", c.topic_url);
    } else if (subs_find_view(sb->s, a, c.view, &vr, err) == 0) {
        json_val *v = json_parse(a, vr.body, vr.body_len, NULL, err);
        sof_view *sv = v ? sof_compile(v, 0, err) : NULL;
        if (!sv) {
            char m[sizeof err->msg];
            snprintf(m, sizeof m, "%s", err->msg);
            fl_err_set(err, 400, "viewDefinition", "ViewDefinition '%.100s' does not compile: %s",
                       c.view, m);
        } else if (c.table_mode == SUBS_CURRENT && sof_view_key_column(sv) < 0) {
            fl_err_set(err, 400, "tableMode", "tableMode current needs a view with an id or "
                                              "getResourceKey() column");
        } else {
            rc = 0;
        }
        sof_free(sv);
    }
    arena_free(a);
    subs_conf_free(&c);
    return rc;
}

/* ---- secrets ---- */
static subs_dest *live_dest(subs *sb, const char *id)
{
    for (subs_dest *d = sb->dests; d; d = d->next)
        if (!d->deleted && !d->dead && !strcmp(d->id, id)) return d;
    return NULL;
}

#define REDACTED "<redacted>"

int subs_rewrite_destination(subs *sb, const json_val *res, const char *id, arena *a,
                             json_val **out, fl_err *err)
{
    *out = NULL;
    pthread_mutex_lock(&sb->mu);
    bool live = live_dest(sb, id) != NULL;
    pthread_mutex_unlock(&sb->mu);
    if (live) {
        fl_err_set(err, 405, "", "an AidboxTopicDestination is immutable: DELETE it and POST "
                                 "a new one");
        return -1;
    }
    json_val *copy = json_clone(a, res);
    json_val *ps = json_get(copy, "parameter");
    buf secrets = BUF_INIT;
    jw w;
    jw_init(&w, &secrets);
    jw_obj_begin(&w);
    size_t n = 0;
    for (uint32_t i = 0; json_is(ps, JSON_ARRAY) && i < ps->len; i++) {
        json_val *p = &ps->u.a[i];
        const char *name = json_is(p, JSON_OBJECT) ? json_get_str(p, "name") : NULL;
        if (!name || !secret_like(name)) continue;
        for (uint32_t k = 0; k < p->len; k++) {
            json_kv *kv = &p->u.o[k];
            if (strncmp(kv->key, "value", 5) || !json_is(&kv->val, JSON_STRING)) continue;
            jw_key(&w, name);
            jw_strn(&w, kv->val.u.s, kv->val.len);
            kv->val = *json_new_string(a, REDACTED, strlen(REDACTED));
            n++;
        }
    }
    jw_obj_end(&w);
    buf_putc(&secrets, 0);
    char jid[120];
    snprintf(jid, sizeof jid, "subs-secret:%s", id);
    int rc = 0;
    if (n) { /* durable before the resource commits: a destination never lacks its secrets */
        store_job j = {.id = jid, .kind = "subs-secret", .status = "stored", .state = secrets.p};
        rc = store_job_put(sb->s, &j, err);
        *out = copy;
    } else { /* none: forget those of an earlier destination with this id */
        fl_err e;
        store_job_delete(sb->s, jid, &e);
    }
    buf_free(&secrets);
    return rc;
}

/* ---- registry changes (listener, inside the write transaction) ---- */
static void start_worker(subs *sb, subs_dest *d)
{
    d->sb = sb;
    /* status is right from the first moment: persisted state, else the starting values */
    bool found = false;
    if (subs_state_load(sb->s, d->queue, &d->st, &found) || !found)
        snprintf(d->st.export_status, sizeof d->st.export_status, "%s",
                 d->conf.skip_initial ? "skipped" : "not_started");
    d->next = sb->dests;
    sb->dests = d;
    if (pthread_create(&d->thr, NULL, subs_worker, d) == 0) d->started = true;
    else fl_log(FL_LOG_ERROR, "subs: cannot start the worker of %s", d->id);
}

static subs_dest *dest_new(const char *id, int64_t version, int64_t ts, subs_conf *c)
{
    subs_dest *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->id = xstrdup(id);
    d->version = version;
    d->created_ts = ts;
    char q[128];
    snprintf(q, sizeof q, "dest/%s/%lld", id, (long long)version);
    d->queue = xstrdup(q);
    d->conf = *c;
    return d;
}

static int on_topic(subs *sb, const store_res *r, arena *a, fl_err *err)
{
    subs_topic *t = NULL;
    if (!r->deleted) {
        json_val *v = json_parse(a, r->body, r->body_len, NULL, err);
        if (!v || parse_topic(v, &t, err)) return -1;
    }
    /* Replace (or drop) the topic with this id. */
    for (subs_topic **p = &sb->topics; *p; p = &(*p)->next)
        if (!strcmp((*p)->id, r->id)) {
            subs_topic *old = *p;
            *p = old->next;
            topic_free(old);
            break;
        }
    if (t) {
        t->next = sb->topics;
        sb->topics = t;
    }
    return 0;
}

static int on_dest(subs *sb, const store_res *r, arena *a, fl_err *err)
{
    subs_dest *d = live_dest(sb, r->id);
    if (r->deleted) {
        if (d) d->deleted = true;
        pthread_cond_broadcast(&sb->cv);
        return 0;
    }
    if (d) {
        fl_err_set(err, 405, "", "an AidboxTopicDestination is immutable: DELETE it and POST "
                                 "a new one");
        return -1;
    }
    subs_conf c;
    json_val *v = json_parse(a, r->body, r->body_len, NULL, err);
    if (!v || parse_dest(v, &c, err)) return -1;
    if (!topic_by_url(sb, c.topic_url)) {
        fl_err_set(err, 400, "topic", "no AidboxSubscriptionTopic has the url '%.200s'", c.topic_url);
        subs_conf_free(&c);
        return -1;
    }
    start_worker(sb, dest_new(r->id, r->version, r->ts, &c));
    return 0;
}

/* Does trigger tr accept the change? Reads the previous version when it matters. */
static bool trigger_accepts(subs *sb, const subs_trigger *tr, const store_res *r, arena *a)
{
    if (strcmp(tr->resource, r->type)) return false;
    unsigned need_prev = tr->criteria || (tr->interactions & (SUBS_CREATE | SUBS_UPDATE)) !=
                                             (SUBS_CREATE | SUBS_UPDATE);
    store_res prev;
    bool has_prev = false;
    if (need_prev && r->version > 1) {
        fl_err e;
        has_prev = store_read(sb->s, a, r->type, r->id, r->version - 1, &prev, &e) == 0;
    }
    unsigned kind = r->deleted ? SUBS_DELETE : has_prev || (!need_prev && r->version > 1)
                                                   ? SUBS_UPDATE : SUBS_CREATE;
    if (!(tr->interactions & kind)) return false;
    if (!tr->criteria) return true;
    fl_err e;
    fl_err_clear(&e);
    json_val *cur = r->deleted ? NULL : json_parse(a, r->body, r->body_len, NULL, &e);
    json_val *pv = has_prev ? json_parse(a, prev.body, prev.body_len, NULL, &e) : NULL;
    fp_coll vars[2] = {cur ? fp_single_node(a, cur) : (fp_coll){0},
                       pv ? fp_single_node(a, pv) : (fp_coll){0}};
    fp_ctx fc = {.a = a, .resource = cur ? cur : pv, .vars = vars, .err = &e};
    fp_coll in = fc.resource ? fp_single_node(a, fc.resource) : (fp_coll){0};
    fp_coll out;
    if (!fp_eval(tr->criteria, &fc, &in, &out)) return false;
    return out.n == 1 && out.v[0].kind == FP_BOOL && out.v[0].i;
}

static bool topic_accepts(subs *sb, const subs_topic *t, const store_res *r, arena *a)
{
    for (size_t i = 0; i < t->n; i++)
        if (trigger_accepts(sb, &t->t[i], r, a)) return true;
    return false;
}

static int enqueue(subs *sb, store_tx *tx, const store_res *r, arena *a, fl_err *err)
{
    char *payload = NULL;
    bool any = false;
    for (subs_topic *t = sb->topics; t; t = t->next) {
        bool has_dest = false;
        for (subs_dest *d = sb->dests; d && !has_dest; d = d->next)
            has_dest = !d->deleted && !d->dead && !strcmp(d->conf.topic_url, t->url);
        if (!has_dest || !topic_accepts(sb, t, r, a)) continue;
        if (!payload)
            payload = arena_printf(a, "%s\t%s\t%lld\t%d", r->type, r->id, (long long)r->version,
                                   r->deleted ? 1 : 0);
        for (subs_dest *d = sb->dests; d; d = d->next) {
            if (d->deleted || d->dead || strcmp(d->conf.topic_url, t->url)) continue;
            if (store_outbox_add(tx, d->queue, payload, strlen(payload), err)) return -1;
            /* wake the worker only when a batch is full; otherwise its timer serves */
            if (atomic_fetch_add(&d->hint, 1) + 1 == d->conf.batch_size) any = true;
        }
    }
    if (any) pthread_cond_broadcast(&sb->cv);
    return 0;
}

static int on_change(void *ctx, store_tx *tx, const store_res *r, fl_err *err)
{
    subs *sb = ctx;
    bool topic = !strcmp(r->type, SUBS_TOPIC_TYPE), dest = !strcmp(r->type, SUBS_DEST_TYPE);
    pthread_mutex_lock(&sb->mu);
    if (!topic && !dest && !sb->topics) {
        pthread_mutex_unlock(&sb->mu);
        return 0;
    }
    arena *a = arena_new(0);
    int rc = topic ? on_topic(sb, r, a, err)
             : dest ? on_dest(sb, r, a, err)
                    : enqueue(sb, tx, r, a, err);
    pthread_mutex_unlock(&sb->mu);
    arena_free(a);
    return rc;
}

/* ---- open / close ---- */
typedef struct loader {
    subs *sb;
    arena *a;
    int rc;
    fl_err *err;
} loader;

static int load_topic(void *ctx, const store_res *r)
{
    loader *l = ctx;
    if (on_topic(l->sb, r, l->a, l->err)) fl_log(FL_LOG_WARN, "subs: topic %s skipped: %s", r->id, l->err->msg);
    arena_reset(l->a);
    return 0;
}

static int load_dest(void *ctx, const store_res *r)
{
    loader *l = ctx;
    json_val *v = json_parse(l->a, r->body, r->body_len, NULL, l->err);
    subs_conf c;
    if (v && parse_dest(v, &c, l->err) == 0)
        start_worker(l->sb, dest_new(r->id, r->version, r->ts, &c));
    else fl_log(FL_LOG_WARN, "subs: destination %s skipped: %s", r->id, l->err->msg);
    arena_reset(l->a);
    return 0;
}

/* Drops queues and state of destinations deleted while we were down. */
typedef struct orphan {
    char **ids;
    size_t n, cap;
} orphan;

static int note_job(void *ctx, const store_job *j)
{
    orphan *o = ctx;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 8;
        o->ids = realloc(o->ids, o->cap * sizeof *o->ids);
        if (!o->ids) abort();
    }
    o->ids[o->n++] = xstrdup(j->id);
    return 0;
}

static void drop_orphans(subs *sb)
{
    orphan o = {0};
    fl_err e;
    fl_err_clear(&e);
    store_job_list(sb->s, "subs-destination", note_job, &o, &e);
    for (size_t i = 0; i < o.n; i++) {
        const char *queue = o.ids[i] + 5; /* "subs:" */
        bool live = false;
        pthread_mutex_lock(&sb->mu);
        for (subs_dest *d = sb->dests; d && !live; d = d->next) live = !strcmp(d->queue, queue);
        pthread_mutex_unlock(&sb->mu);
        if (!live && !strncmp(o.ids[i], "subs:", 5)) {
            store_outbox_trim(sb->s, queue, INT64_MAX, &e);
            store_job_delete(sb->s, o.ids[i], &e);
        }
        free(o.ids[i]);
    }
    free(o.ids);
    /* secrets of destinations that no longer exist (or never committed) */
    o = (orphan){0};
    store_job_list(sb->s, "subs-secret", note_job, &o, &e);
    for (size_t i = 0; i < o.n; i++) {
        pthread_mutex_lock(&sb->mu);
        bool live = live_dest(sb, o.ids[i] + strlen("subs-secret:")) != NULL;
        pthread_mutex_unlock(&sb->mu);
        if (!live) store_job_delete(sb->s, o.ids[i], &e);
        free(o.ids[i]);
    }
    free(o.ids);
}

subs *subs_open(store *s, const char *data_dir, fl_err *err)
{
    subs *sb = calloc(1, sizeof *sb);
    if (!sb) abort();
    sb->s = s;
    sb->data_dir = xstrdup(data_dir);
    pthread_mutex_init(&sb->mu, NULL);
    pthread_cond_init(&sb->cv, NULL);
    loader l = {sb, arena_new(0), 0, err};
    store_query q = {.type = SUBS_TOPIC_TYPE, .ts_min = INT64_MIN, .ts_max = INT64_MAX, .count = -1};
    pthread_mutex_lock(&sb->mu);
    int rc = store_search(s, &q, load_topic, &l, NULL, err);
    q.type = SUBS_DEST_TYPE;
    if (rc == 0) rc = store_search(s, &q, load_dest, &l, NULL, err);
    pthread_mutex_unlock(&sb->mu);
    arena_free(l.a);
    if (rc) {
        subs_close(sb);
        return NULL;
    }
    fl_err_clear(err);
    drop_orphans(sb);
    if (store_add_listener(s, on_change, sb, err)) {
        subs_close(sb);
        return NULL;
    }
    return sb;
}

void subs_close(subs *sb)
{
    if (!sb) return;
    store_remove_listener(sb->s, on_change, sb);
    pthread_mutex_lock(&sb->mu);
    sb->stopping = true;
    pthread_cond_broadcast(&sb->cv);
    pthread_mutex_unlock(&sb->mu);
    for (subs_dest *d = sb->dests; d; d = d->next)
        if (d->started) pthread_join(d->thr, NULL);
    while (sb->dests) {
        subs_dest *d = sb->dests;
        sb->dests = d->next;
        subs_conf_free(&d->conf);
        free(d->id);
        free(d->queue);
        free(d);
    }
    while (sb->topics) {
        subs_topic *t = sb->topics;
        sb->topics = t->next;
        topic_free(t);
    }
    pthread_cond_destroy(&sb->cv);
    pthread_mutex_destroy(&sb->mu);
    free(sb->data_dir);
    free(sb);
}

/* ---- $status ---- */
typedef struct qcount {
    int64_t n, oldest_ts;
} qcount;

static int count_event(void *ctx, const store_event *e)
{
    qcount *c = ctx;
    if (!c->n) c->oldest_ts = e->ts;
    c->n++;
    return 0;
}

static void param_str(jw *w, const char *name, const char *v)
{
    jw_obj_begin(w);
    jw_key(w, "name");
    jw_str(w, name);
    jw_key(w, "valueString");
    jw_str(w, v);
    jw_obj_end(w);
}

static void param_int(jw *w, const char *name, int64_t v)
{
    jw_obj_begin(w);
    jw_key(w, "name");
    jw_str(w, name);
    jw_key(w, "valueInteger");
    jw_int(w, v);
    jw_obj_end(w);
}

int subs_status(subs *sb, const char *id, buf *out, fl_err *err)
{
    pthread_mutex_lock(&sb->mu);
    subs_dest *d = live_dest(sb, id);
    if (!d) {
        pthread_mutex_unlock(&sb->mu);
        fl_err_set(err, 404, "", "no active AidboxTopicDestination '%.64s'", id);
        return -1;
    }
    subs_state st = d->st;
    int64_t in_proc = d->in_process;
    bool failing = d->failing;
    char *queue = xstrdup(d->queue);
    pthread_mutex_unlock(&sb->mu);
    qcount qc = {0, 0};
    int rc = store_outbox_read(sb->s, queue, st.last_seq, -1, count_event, &qc, err);
    free(queue);
    if (rc) return -1;
    int64_t lag_ms = qc.n ? (fl_now_micros() - qc.oldest_ts) / 1000 : 0;
    jw w;
    jw_init(&w, out);
    jw_obj_begin(&w);
    jw_key(&w, "resourceType");
    jw_str(&w, "Parameters");
    jw_key(&w, "parameter");
    jw_arr_begin(&w);
    param_str(&w, "status", failing ? "error" : "active");
    param_int(&w, "messagesDelivered", st.delivered);
    param_int(&w, "messagesQueued", qc.n > in_proc ? qc.n - in_proc : 0);
    param_int(&w, "messagesInProcess", in_proc);
    param_int(&w, "messagesDeliveryAttempts", st.attempts);
    param_int(&w, "messagesEvaluationErrors", st.eval_errors);
    param_str(&w, "initialExportStatus", st.export_status[0] ? st.export_status : "not_started");
    param_int(&w, "initialExportProgress_rowsSent", st.rows_sent);
    param_int(&w, "lagMs", lag_ms < 0 ? 0 : lag_ms);
    if (st.last_error[0]) param_str(&w, "lastErrorDetail", st.last_error);
    jw_arr_end(&w);
    jw_obj_end(&w);
    return 0;
}
