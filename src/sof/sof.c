/* sof.c: ViewDefinition validation, compilation to a select tree (columns, nested selects,
 * unionAll branches, forEach/forEachOrNull/repeat iterators, where filters, constants) and
 * evaluation of one resource into rows. Rows are built as arrays of FHIRPath collections
 * (one per column) in the context arena, combined by cartesian product per the spec, and
 * only then converted to typed values in the batch. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fhirpath/fhir_types.h"
#include "sof.h"

enum { IT_NONE, IT_FOREACH, IT_FOREACH_NULL, IT_REPEAT };

typedef struct sof_col {
    const char *name;
    const char *where;    /* element path, "select[0].column[1]", for evaluation errors */
    fp_expr *e;
    int idx;              /* schema column */
    bool collection;
    bool json;            /* holds each value's JSON text (untyped, text mode) */
    rows_type type;
    const char *ftype;    /* FHIR type name (declared or inferred), may be NULL */
} sof_col;

typedef struct sof_sel sof_sel;
struct sof_sel {
    int it;               /* IT_* */
    fp_expr *iter;        /* forEach / forEachOrNull */
    fp_expr **rep;        /* repeat paths */
    size_t nrep;
    sof_col *cols;
    size_t ncols;
    sof_sel *sub;
    size_t nsub;
    sof_sel *uni;
    size_t nuni;
    int lo, hi;           /* schema columns covered by this node */
};

struct sof_view {
    arena *a;
    json_val *json;       /* our copy of the view */
    const char *resource;
    const char *name;
    sof_sel root;
    fp_expr **where;
    size_t nwhere;
    const char **const_names;
    fp_coll *const_vals;
    size_t nconst;
    fp_env env;
    rows_schema *schema;
    const char **col_ftype;
    bool *col_json;
    bool any_json;
    int ts_col, key_col;
    unsigned flags;
    /* every compiled expression, to free */
    fp_expr **all;
    size_t nall, capall;
};

/* ---- compile ---- */

typedef struct cc {
    sof_view *v;
    fl_err *err;
    char where[256];
} cc;

static bool verr(cc *c, int status, const char *where, const char *fmt, const char *arg)
{
    if (!c->err->status) fl_err_set(c->err, status, where, fmt, arg ? arg : "", where);
    return false;
}

static fp_expr *compile_expr(cc *c, const json_val *p, const char *where)
{
    if (!p || p->type != JSON_STRING) {
        verr(c, 400, where, "%s%s must be a FHIRPath string", "");
        return NULL;
    }
    fl_err e = {0};
    fp_expr *x = fp_compile(p->u.s, &c->v->env, &e);
    if (!x) {
        fl_err_set(c->err, e.status, where, "%s: %s", where, e.msg);
        return NULL;
    }
    sof_view *v = c->v;
    if (v->nall == v->capall) {
        v->capall = v->capall ? v->capall * 2 : 16;
        fp_expr **n = realloc(v->all, v->capall * sizeof *n);
        if (!n) abort();
        v->all = n;
    }
    v->all[v->nall++] = x;
    return x;
}

/* snprintf for element paths; truncation of a very long path is harmless */
static void pathf(char *o, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *o, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o, n, fmt, ap);
    va_end(ap);
}

static bool sql_name_ok(const char *s)
{
    if (!isalpha((unsigned char)s[0])) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') return false;
    return true;
}

static rows_type map_type(const char *t, unsigned flags)
{
    if (!t) return ROWS_STRING;
    bool text = flags & SOF_KEEP_TEXT;
    if (!strcmp(t, "boolean")) return ROWS_BOOL;
    if (!strcmp(t, "integer") || !strcmp(t, "positiveInt") || !strcmp(t, "unsignedInt")) return ROWS_INT32;
    if (!strcmp(t, "integer64")) return ROWS_INT64;
    if (!strcmp(t, "decimal")) return text ? ROWS_DECIMAL : ROWS_DOUBLE;
    if (!strcmp(t, "date")) return text ? ROWS_STRING : ROWS_DATE;
    if (!strcmp(t, "instant")) return text ? ROWS_STRING : ROWS_TIMESTAMP;
    return ROWS_STRING;
}

static const char *infer_ftype(const fp_expr *e, const char *focus_type)
{
    return fp_infer_type(e, focus_type);
}

/* names of the columns of a node, in schema order */
typedef struct names {
    const char **v;
    size_t n, cap;
} names;

static void names_push(names *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        const char **n = realloc(l->v, l->cap * sizeof *n);
        if (!n) abort();
        l->v = n;
    }
    l->v[l->n++] = s;
}

static bool compile_sel(cc *c, const json_val *j, sof_sel *s, const char *path,
                        const char *focus_type, names *out_cols);

static bool compile_columns(cc *c, const json_val *cols, sof_sel *s, const char *path,
                            const char *focus_type, names *out)
{
    char w[256];
    pathf(w, sizeof w, "%s.column", path);
    if (cols->type != JSON_ARRAY) return verr(c, 400, w, "%s%s must be an array", "");
    s->ncols = cols->len;
    s->cols = arena_calloc(c->v->a, (cols->len ? cols->len : 1) * sizeof *s->cols);
    for (uint32_t i = 0; i < cols->len; i++) {
        const json_val *cj = &cols->u.a[i];
        sof_col *col = &s->cols[i];
        pathf(w, sizeof w, "%s.column[%u]", path, i);
        if (cj->type != JSON_OBJECT) return verr(c, 400, w, "%s%s must be an object", "");
        const json_val *nm = json_get(cj, "name");
        char wn[300];
        pathf(wn, sizeof wn, "%s.name", w);
        if (!nm || nm->type != JSON_STRING) return verr(c, 400, wn, "%s%s is required (a string)", "");
        if (!sql_name_ok(nm->u.s))
            return verr(c, 422, wn, "column name '%s' is not a valid SQL name (%s)", nm->u.s);
        col->name = nm->u.s;
        col->where = arena_strdup(c->v->a, w);
        pathf(wn, sizeof wn, "%s.path", w);
        col->e = compile_expr(c, json_get(cj, "path"), wn);
        if (!col->e) return false;
        const json_val *coll = json_get(cj, "collection");
        if (coll && coll->type != JSON_TRUE && coll->type != JSON_FALSE && coll->type != JSON_NULL) {
            pathf(wn, sizeof wn, "%s.collection", w);
            return verr(c, 400, wn, "%s%s must be a boolean", "");
        }
        col->collection = coll && coll->type == JSON_TRUE;
        const json_val *ty = json_get(cj, "type");
        if (ty && ty->type != JSON_STRING) {
            pathf(wn, sizeof wn, "%s.type", w);
            return verr(c, 400, wn, "%s%s must be a string", "");
        }
        if (ty && !fhir_is_type(ty->u.s, ty->len) && strcmp(ty->u.s, "integer64")) {
            pathf(wn, sizeof wn, "%s.type", w);
            return verr(c, 422, wn, "unknown FHIR type '%s' (%s)", ty->u.s);
        }
        col->ftype = ty ? ty->u.s : infer_ftype(col->e, focus_type);
        col->type = map_type(col->ftype, c->v->flags);
        col->json = (c->v->flags & SOF_KEEP_TEXT) &&
                    (!col->ftype || !fhir_is_primitive_type(col->ftype, strlen(col->ftype)));
        names_push(out, col->name);
    }
    return true;
}

static bool same_names(const names *a, const names *b)
{
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i])) return false;
    return true;
}

static bool compile_sel_list(cc *c, const json_val *arr, sof_sel **out, size_t *nout,
                             const char *path, const char *key, const char *focus_type,
                             names *cols, bool is_union)
{
    char w[256];
    pathf(w, sizeof w, "%s%s%s", path, *path ? "." : "", key);
    if (arr->type != JSON_ARRAY) return verr(c, 400, w, "%s%s must be an array", "");
    *nout = arr->len;
    *out = arena_calloc(c->v->a, (arr->len ? arr->len : 1) * sizeof **out);
    names first = {0};
    for (uint32_t i = 0; i < arr->len; i++) {
        pathf(w, sizeof w, "%s%s%s[%u]", path, *path ? "." : "", key, i);
        names mine = {0};
        bool ok = compile_sel(c, &arr->u.a[i], &(*out)[i], w, focus_type, is_union ? &mine : cols);
        if (ok && is_union) {
            if (i == 0) first = mine;
            else {
                ok = same_names(&first, &mine);
                if (!ok) verr(c, 422, w, "unionAll branches must have the same columns in the same order (%s%s)", "");
                free(mine.v);
            }
        }
        if (!ok) {
            free(first.v);
            return false;
        }
    }
    if (is_union) {
        for (size_t i = 0; i < first.n; i++) names_push(cols, first.v[i]);
        free(first.v);
    }
    return true;
}

static bool compile_sel(cc *c, const json_val *j, sof_sel *s, const char *path,
                        const char *focus_type, names *out_cols)
{
    if (j->type != JSON_OBJECT) return verr(c, 400, path, "%s%s must be an object", "");
    const json_val *fe = json_get(j, "forEach"), *fen = json_get(j, "forEachOrNull"),
                   *rep = json_get(j, "repeat");
    char w[300];
    if ((fe != NULL) + (fen != NULL) + (rep != NULL) > 1)
        return verr(c, 422, path, "%s%s: only one of forEach, forEachOrNull and repeat is allowed", "");
    if (fe || fen) {
        pathf(w, sizeof w, "%s.%s", path, fe ? "forEach" : "forEachOrNull");
        s->it = fe ? IT_FOREACH : IT_FOREACH_NULL;
        s->iter = compile_expr(c, fe ? fe : fen, w);
        if (!s->iter) return false;
        focus_type = fp_infer_type(s->iter, focus_type);
    } else if (rep) {
        pathf(w, sizeof w, "%s.repeat", path);
        if (rep->type != JSON_ARRAY || rep->len == 0)
            return verr(c, 400, w, "%s%s must be a non-empty array of FHIRPath strings", "");
        s->it = IT_REPEAT;
        s->nrep = rep->len;
        s->rep = arena_calloc(c->v->a, rep->len * sizeof *s->rep);
        for (uint32_t i = 0; i < rep->len; i++) {
            pathf(w, sizeof w, "%s.repeat[%u]", path, i);
            if (!(s->rep[i] = compile_expr(c, &rep->u.a[i], w))) return false;
        }
        focus_type = NULL;
    }
    s->lo = (int)out_cols->n;
    const json_val *cols = json_get(j, "column"), *sub = json_get(j, "select"),
                   *uni = json_get(j, "unionAll");
    if (cols && !compile_columns(c, cols, s, path, focus_type, out_cols)) return false;
    if (sub && !compile_sel_list(c, sub, &s->sub, &s->nsub, path, "select", focus_type, out_cols, false))
        return false;
    if (uni && !compile_sel_list(c, uni, &s->uni, &s->nuni, path, "unionAll", focus_type, out_cols, true))
        return false;
    s->hi = (int)out_cols->n;
    return true;
}

/* Gives every column its schema index; unionAll branches share the first branch's. */
static void assign_indices(sof_sel *s, int *next)
{
    s->lo = *next;
    for (size_t i = 0; i < s->ncols; i++) s->cols[i].idx = (*next)++;
    for (size_t i = 0; i < s->nsub; i++) assign_indices(&s->sub[i], next);
    int start = *next, end = start;
    for (size_t i = 0; i < s->nuni; i++) {
        int n = start;
        assign_indices(&s->uni[i], &n);
        end = n;
    }
    *next = end;
    s->hi = end;
}

/* Column definitions in schema order (first union branch stands for all). */
static void collect_cols(const sof_sel *s, const sof_col **out, size_t *n)
{
    for (size_t i = 0; i < s->ncols; i++) out[(*n)++] = &s->cols[i];
    for (size_t i = 0; i < s->nsub; i++) collect_cols(&s->sub[i], out, n);
    if (s->nuni) collect_cols(&s->uni[0], out, n);
}

static bool compile_constants(cc *c, const json_val *arr)
{
    sof_view *v = c->v;
    char w[64];
    if (arr->type != JSON_ARRAY) return verr(c, 400, "constant", "%s%s must be an array", "");
    v->nconst = arr->len;
    v->const_names = arena_calloc(v->a, (arr->len + 1) * sizeof *v->const_names);
    v->const_vals = arena_calloc(v->a, (arr->len + 1) * sizeof *v->const_vals);
    for (uint32_t i = 0; i < arr->len; i++) {
        const json_val *cj = &arr->u.a[i];
        pathf(w, sizeof w, "constant[%u]", i);
        const json_val *nm = cj->type == JSON_OBJECT ? json_get(cj, "name") : NULL;
        if (!nm || nm->type != JSON_STRING || !sql_name_ok(nm->u.s))
            return verr(c, 400, w, "%s%s.name is required and must be a valid name", "");
        for (uint32_t k = 0; k < i; k++)
            if (!strcmp(v->const_names[k], nm->u.s))
                return verr(c, 422, w, "duplicate constant name '%s' (%s)", nm->u.s);
        v->const_names[i] = nm->u.s;
        const json_kv *val = NULL;
        int nvals = 0;
        for (uint32_t k = 0; k < cj->len; k++)
            if (!strncmp(cj->u.o[k].key, "value", 5) && isupper((unsigned char)cj->u.o[k].key[5])) {
                val = &cj->u.o[k];
                nvals++;
            }
        if (nvals != 1)
            return verr(c, 422, w, "%s%s must have exactly one value[x]", "");
        fp_item it;
        if (!fp_item_from_typed(v->a, val->key + 5, &val->val, &it))
            return verr(c, 422, w, "constant %s has an unsupported or malformed value (%s)", val->key);
        v->const_vals[i] = fp_one(v->a, it);
    }
    v->env.names = v->const_names;
    v->env.n = v->nconst;
    return true;
}

static bool compile_view(cc *c, const json_val *j)
{
    sof_view *v = c->v;
    if (j->type != JSON_OBJECT) return verr(c, 400, "", "a ViewDefinition must be a JSON object%s%s", "");
    const json_val *rt = json_get(j, "resource");
    if (!rt || rt->type != JSON_STRING)
        return verr(c, 400, "resource", "%s%s is required (the FHIR resource type)", "");
    if (!fhir_is_resource_type(rt->u.s, rt->len))
        return verr(c, 422, "resource", "unknown FHIR resource type '%s' (%s)", rt->u.s);
    v->resource = rt->u.s;
    const json_val *nm = json_get(j, "name");
    v->name = nm && nm->type == JSON_STRING ? nm->u.s : NULL;
    const json_val *cn = json_get(j, "constant");
    if (cn && !compile_constants(c, cn)) return false;
    const json_val *sel = json_get(j, "select");
    if (!sel) return verr(c, 400, "select", "%s%s is required", "");
    if (sel->type != JSON_ARRAY || sel->len == 0)
        return verr(c, 400, "select", "%s%s must be a non-empty array", "");
    names cols = {0};
    bool ok = compile_sel_list(c, sel, &v->root.sub, &v->root.nsub, "", "select", v->resource,
                               &cols, false);
    v->root.lo = 0;
    v->root.hi = (int)cols.n;
    for (size_t i = 0; ok && i < cols.n; i++)
        for (size_t k = 0; k < i; k++)
            if (!strcmp(cols.v[i], cols.v[k])) {
                ok = verr(c, 422, "select", "duplicate column name '%s' (%s)", cols.v[i]);
                break;
            }
    free(cols.v);
    if (!ok) return false;
    const json_val *wh = json_get(j, "where");
    if (wh) {
        if (wh->type != JSON_ARRAY) return verr(c, 400, "where", "%s%s must be an array", "");
        v->nwhere = wh->len;
        v->where = arena_calloc(v->a, (wh->len + 1) * sizeof *v->where);
        for (uint32_t i = 0; i < wh->len; i++) {
            char w[64];
            pathf(w, sizeof w, "where[%u].path", i);
            const json_val *p = wh->u.a[i].type == JSON_OBJECT ? json_get(&wh->u.a[i], "path") : NULL;
            if (!(v->where[i] = compile_expr(c, p, w))) return false;
            const char *t = infer_ftype(v->where[i], v->resource);
            if (t && strcmp(t, "boolean"))
                return verr(c, 422, w, "%s%s must return a boolean", "");
        }
    }
    int next = 0;
    assign_indices(&v->root, &next);
    const sof_col **defs = arena_calloc(v->a, ((size_t)next + 1) * sizeof *defs);
    size_t nd = 0;
    collect_cols(&v->root, defs, &nd);
    v->schema = rows_schema_new();
    v->col_ftype = arena_calloc(v->a, (nd + 1) * sizeof *v->col_ftype);
    v->col_json = arena_calloc(v->a, nd + 1);
    v->ts_col = v->key_col = -1;
    for (size_t i = 0; i < nd; i++) {
        rows_schema_add(v->schema, defs[i]->name, defs[i]->type, defs[i]->collection);
        v->col_ftype[i] = defs[i]->ftype;
        v->col_json[i] = defs[i]->json;
        v->any_json |= defs[i]->json;
    }
    /* key / ts columns: only top-level plain selects (one row per resource there) */
    for (size_t i = 0; i < v->root.nsub; i++) {
        const sof_sel *s = &v->root.sub[i];
        if (s->it != IT_NONE) continue;
        for (size_t k = 0; k < s->ncols; k++) {
            if (fp_is_aidbox_ts(s->cols[k].e) && v->ts_col < 0) v->ts_col = s->cols[k].idx;
            if (fp_expr_shape(s->cols[k].e) == FP_SHAPE_RESOURCE_KEY && v->key_col < 0)
                v->key_col = s->cols[k].idx;
        }
    }
    return true;
}

sof_view *sof_compile(const json_val *view, unsigned flags, fl_err *err)
{
    sof_view *v = calloc(1, sizeof *v);
    if (!v) abort();
    v->a = arena_new(0);
    v->flags = flags;
    v->json = json_clone(v->a, view);
    cc c = {.v = v, .err = err};
    if (!compile_view(&c, v->json)) {
        sof_free(v);
        return NULL;
    }
    return v;
}

void sof_free(sof_view *v)
{
    if (!v) return;
    for (size_t i = 0; i < v->nall; i++) fp_free(v->all[i]);
    free(v->all);
    rows_schema_free(v->schema);
    arena_free(v->a);
    free(v);
}

const rows_schema *sof_view_schema(const sof_view *v) { return v->schema; }
const char *sof_view_resource_type(const sof_view *v) { return v->resource; }
const char *sof_view_name(const sof_view *v) { return v->name; }
int sof_view_ts_column(const sof_view *v) { return v->ts_col; }
int sof_view_key_column(const sof_view *v) { return v->key_col; }
const bool *sof_view_json_columns(const sof_view *v) { return v->any_json ? v->col_json : NULL; }

const char *sof_view_column_fhir_type(const sof_view *v, size_t col)
{
    return col < v->schema->n ? v->col_ftype[col] : NULL;
}

/* ---- evaluate ---- */

sof_ctx *sof_ctx_new(void)
{
    sof_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->a = arena_new(0);
    c->tcache = fp_type_cache_new();
    return c;
}

void sof_ctx_free(sof_ctx *c)
{
    if (!c) return;
    arena_free(c->a);
    fp_type_cache_free(c->tcache);
    free(c);
}

typedef struct ev {
    const sof_view *v;
    fp_ctx fc;
    size_t width;
} ev;

/* A list of rows; each row is `width` collections (empty = null). */
typedef struct rowset {
    fp_coll **r;
    size_t n, cap;
} rowset;

static void rs_push(ev *e, rowset *s, fp_coll *row)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        fp_coll **n = arena_alloc(e->fc.a, cap * sizeof *n);
        if (s->n) memcpy(n, s->r, s->n * sizeof *n);
        s->r = n;
        s->cap = cap;
    }
    s->r[s->n++] = row;
}

static fp_coll *row_new(ev *e) { return arena_calloc(e->fc.a, e->width * sizeof(fp_coll)); }

/* Every pair (a, b): a's values plus b's columns [lo, hi). */
static rowset product(ev *e, const rowset *a, const rowset *b, int lo, int hi)
{
    rowset out = {0};
    for (size_t i = 0; i < a->n; i++)
        for (size_t k = 0; k < b->n; k++) {
            fp_coll *r = row_new(e);
            memcpy(r, a->r[i], e->width * sizeof *r);
            for (int c = lo; c < hi; c++) r[c] = b->r[k][c];
            rs_push(e, &out, r);
        }
    return out;
}

static bool eval_sel(ev *e, const sof_sel *s, const fp_item *focus, int64_t idx, rowset *out);

/* Rows of a node for one focus item (NULL = the null row of forEachOrNull). */
static bool eval_body(ev *e, const sof_sel *s, const fp_item *focus, int64_t idx, rowset *out)
{
    fp_coll *row = row_new(e);
    rowset cur = {0};
    rs_push(e, &cur, row);
    /* forEachOrNull with nothing: columns see an empty focus (%rowIndex still 0), nested
     * selects stay null */
    fp_coll in = {(fp_item *)focus, focus ? 1 : 0};
    for (size_t i = 0; i < s->ncols; i++) {
        const sof_col *c = &s->cols[i];
        e->fc.row_index = idx;
        if (!fp_eval(c->e, &e->fc, &in, &row[c->idx])) return false;
        if (!c->collection && row[c->idx].n > 1) {
            fl_err_set(e->fc.err, 422, c->where,
                       "column '%s' returned %zu values; set collection: true or select one "
                       "(path '%s')", c->name, row[c->idx].n, fp_source(c->e));
            return false;
        }
    }
    if (!focus) {
        *out = cur;
        return true;
    }
    for (size_t i = 0; i < s->nsub; i++) {
        rowset sub;
        if (!eval_sel(e, &s->sub[i], focus, idx, &sub)) return false;
        cur = product(e, &cur, &sub, s->sub[i].lo, s->sub[i].hi);
        if (!cur.n) break;
    }
    if (s->nuni && cur.n) {
        rowset u = {0};
        for (size_t i = 0; i < s->nuni; i++) {
            rowset b;
            if (!eval_sel(e, &s->uni[i], focus, idx, &b)) return false;
            for (size_t k = 0; k < b.n; k++) rs_push(e, &u, b.r[k]);
        }
        cur = product(e, &cur, &u, s->uni[0].lo, s->uni[0].hi);
    }
    *out = cur;
    return true;
}

static void append(ev *e, rowset *dst, const rowset *src)
{
    for (size_t i = 0; i < src->n; i++) rs_push(e, dst, src->r[i]);
}

/* repeat: depth-first, each node followed by its descendants through every path */
static bool repeat_walk(ev *e, const sof_sel *s, const fp_item *it, fp_vec *acc, int depth)
{
    if (depth > 200) {
        fl_err_set(e->fc.err, 422, "repeat", "repeat nested deeper than 200 levels");
        return false;
    }
    fp_coll in = {(fp_item *)it, 1};
    for (size_t p = 0; p < s->nrep; p++) {
        fp_coll r;
        if (!fp_eval(s->rep[p], &e->fc, &in, &r)) return false;
        for (size_t i = 0; i < r.n; i++) {
            fp_vec_push(acc, &r.v[i]);
            if (!repeat_walk(e, s, &r.v[i], acc, depth + 1)) return false;
        }
    }
    return true;
}

static bool eval_sel(ev *e, const sof_sel *s, const fp_item *focus, int64_t idx, rowset *out)
{
    *out = (rowset){0};
    if (s->it == IT_NONE) return eval_body(e, s, focus, idx, out);
    fp_coll items = {0};
    if (focus) {
        fp_coll in = {(fp_item *)focus, 1};
        if (s->it == IT_REPEAT) {
            fp_vec acc;
            fp_vec_init(&acc, e->fc.a);
            if (!repeat_walk(e, s, focus, &acc, 0)) return false;
            items = fp_vec_done(&acc);
        } else if (!fp_eval(s->iter, &e->fc, &in, &items)) return false;
    }
    if (items.n == 0) {
        if (s->it == IT_FOREACH_NULL) return eval_body(e, s, NULL, 0, out);
        return true;
    }
    for (size_t i = 0; i < items.n; i++) {
        rowset r;
        if (!eval_body(e, s, &items.v[i], (int64_t)i, &r)) return false;
        append(e, out, &r);
    }
    return true;
}

/* ---- typed output ---- */

static void put_json(rows_batch *b, size_t col, const fp_item *it)
{
    buf o = BUF_INIT;
    jw w;
    jw_init(&w, &o);
    fp_item_write_json(&w, it);
    rows_set_str(b, col, o.p ? o.p : "", o.len);
    buf_free(&o);
}

static void put_string(rows_batch *b, size_t col, const fp_item *it)
{
    size_t len;
    const char *t = fp_item_text(it, &len);
    if (t) { rows_set_str(b, col, t, len); return; }
    if (it->kind == FP_INT) {
        char tmp[32];
        int n = snprintf(tmp, sizeof tmp, "%lld", (long long)it->i);
        rows_set_str(b, col, tmp, (size_t)n);
        return;
    }
    put_json(b, col, it);   /* complex element: its JSON text */
}

/* Sets one value; returns false if the item does not fit the column type (left null). */
static bool put_value(rows_batch *b, size_t col, rows_type t, const fp_item *it)
{
    if (it->kind == FP_NODE && !it->j) return false;   /* a primitive with only extensions */
    double d;
    size_t len;
    const char *s;
    int64_t us;
    switch (t) {
    case ROWS_STRING: put_string(b, col, it); return true;
    case ROWS_BOOL:
        if (it->kind != FP_BOOL) return false;
        rows_set_int(b, col, it->i);
        return true;
    case ROWS_INT32: case ROWS_INT64:
        if (it->kind != FP_INT) return false;
        if (t == ROWS_INT32 && (it->i < INT32_MIN || it->i > INT32_MAX)) return false;
        rows_set_int(b, col, it->i);
        return true;
    case ROWS_DOUBLE:
        if (!fp_num_value(it, &d)) return false;
        rows_set_double(b, col, d);
        return true;
    case ROWS_DECIMAL:
        if (it->kind != FP_DEC && it->kind != FP_INT) return false;
        put_string(b, col, it);
        return true;
    case ROWS_DATE: {
        fp_dt dt;
        s = fp_item_text(it, &len);
        if (!s || it->kind == FP_NODE || !fp_dt_parse(s, len, false, &dt)) return false;
        rows_set_int(b, col, fl_days_from_civil(dt.y, (unsigned)dt.mo, (unsigned)dt.d));
        return true;
    }
    case ROWS_TIMESTAMP:
        if (it->kind == FP_DATETIME && it->has_us) { /* getAidboxTs(): no text round trip */
            rows_set_int(b, col, it->i);
            return true;
        }
        s = fp_item_text(it, &len);
        if (!s || it->kind == FP_NODE || fl_time_parse(s, len, &us) != 0) return false;
        rows_set_int(b, col, us);
        return true;
    }
    return false;
}

static void emit_row(ev *e, const fp_coll *row, rows_batch *out)
{
    const rows_schema *sc = e->v->schema;
    rows_begin_row(out);
    for (size_t c = 0; c < sc->n; c++) {
        const fp_coll *v = &row[c];
        if (!v->n) continue;
        if (!sc->f[c].list && v->v[0].kind == FP_NODE && !v->v[0].j) continue;  /* no value */
        if (e->v->col_json[c]) {
            for (size_t i = 0; i < (sc->f[c].list ? v->n : 1); i++)
                if (v->v[i].kind != FP_NODE || v->v[i].j) put_json(out, c, &v->v[i]);
        } else if (sc->f[c].list) {
            for (size_t i = 0; i < v->n; i++) put_value(out, c, sc->f[c].type, &v->v[i]);
        } else if (!put_value(out, c, sc->f[c].type, &v->v[0])) {
            rows_set_null(out, c);
        }
    }
    rows_end_row(out);
}

long sof_eval(const sof_view *v, sof_ctx *c, const json_val *resource, rows_batch *out,
              fl_err *err)
{
    const json_val *rt = json_get(resource, "resourceType");
    if (!rt || rt->type != JSON_STRING || strcmp(rt->u.s, v->resource)) return 0;
    arena_reset(c->a);
    ev e = {.v = v, .width = v->schema->n ? v->schema->n : 1};
    e.fc = (fp_ctx){.a = c->a, .tcache = c->tcache, .resource = resource, .vars = v->const_vals,
                    .has_ts = c->has_ts, .has_cts = c->has_cts, .ts_us = c->ts_us,
                    .cts_us = c->cts_us, .txid = c->txid, .err = err};
    fp_coll root = fp_single_node(c->a, resource);
    for (size_t i = 0; i < v->nwhere; i++) {
        fp_coll r;
        if (!fp_eval(v->where[i], &e.fc, &root, &r)) return -1;
        if (r.n > 1 || (r.n == 1 && r.v[0].kind != FP_BOOL)) {
            char w[64];
            pathf(w, sizeof w, "where[%zu].path", i);
            fl_err_set(err, 422, w, "where path '%s' must return a boolean",
                       fp_source(v->where[i]));
            return -1;
        }
        if (r.n == 0 || !r.v[0].i) return 0;
    }
    rowset rows;
    if (!eval_sel(&e, &v->root, &root.v[0], 0, &rows)) return -1;
    for (size_t i = 0; i < rows.n; i++) emit_row(&e, rows.r[i], out);
    return (long)rows.n;
}
