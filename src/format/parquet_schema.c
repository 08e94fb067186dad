/* parquet_schema: the Parquet schema tree: building, validation and level computation,
 * the message-text form (parse + print), the flat schema of a rows_schema, and the
 * conversion to and from the footer's SchemaElement list (logical + legacy converted
 * types). */
#include "parquet_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Legacy ConvertedType values (parquet.thrift). */
enum { CT_UTF8 = 0, CT_MAP = 1, CT_MAP_KEY_VALUE = 2, CT_LIST = 3, CT_ENUM = 4, CT_DECIMAL = 5,
       CT_DATE = 6, CT_TIMESTAMP_MILLIS = 9, CT_TIMESTAMP_MICROS = 10, CT_UINT_8 = 11,
       CT_INT_8 = 15, CT_JSON = 19 };

pq_schema *pq_schema_new(void)
{
    pq_schema *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->a = arena_new(0);
    if (!s->a) abort();
    s->root = arena_calloc(s->a, sizeof *s->root);
    s->root->name = "schema";
    s->root->phys = PQ_GROUP;
    s->root->leaf = -1;
    return s;
}

void pq_schema_free(pq_schema *s)
{
    if (!s) return;
    arena_free(s->a);
    free(s);
}

pq_node *pq_schema_add(pq_schema *s, pq_node *parent, const char *name, pq_repetition rep,
                       pq_physical phys, pq_logical logical)
{
    if (!parent) parent = s->root;
    pq_node *n = arena_calloc(s->a, sizeof *n);
    n->name = arena_strdup(s->a, name);
    n->rep = rep;
    n->phys = phys;
    n->logical = logical;
    n->parent = parent;
    n->leaf = -1;
    n->unit = PQ_MICROS;
    n->utc = true;
    n->is_signed = true;
    n->bit_width = 32;
    /* children arrays are arena-grown by doubling; the old copy is simply abandoned */
    size_t cap = 1;
    while (cap < parent->n_children) cap *= 2;
    if (parent->n_children == 0 || parent->n_children == cap) {
        pq_node **c = arena_alloc(s->a, (cap * 2) * sizeof *c);
        if (parent->n_children) memcpy(c, parent->children, parent->n_children * sizeof *c);
        parent->children = c;
    }
    parent->children[parent->n_children++] = n;
    return n;
}

static int finish_node(pq_schema *s, pq_node *n, pq_node ***leaves, size_t *nl, size_t *cap,
                       fl_err *err)
{
    if (n->parent) {
        n->max_def = n->parent->max_def + (n->rep != PQ_REQUIRED);
        n->max_rep = n->parent->max_rep + (n->rep == PQ_REPEATED);
    }
    n->first_leaf = (int)*nl;
    n->index = (int)s->n_nodes++;
    if (n->phys == PQ_GROUP) {
        if (n->n_children == 0) {
            fl_err_set(err, 400, n->name, "parquet schema: group '%s' has no fields", n->name);
            return -1;
        }
        if ((n->logical == PQ_LT_LIST || n->logical == PQ_LT_MAP) &&
            (n->n_children != 1 || n->children[0]->rep != PQ_REPEATED)) {
            fl_err_set(err, 400, n->name,
                       "parquet schema: LIST/MAP group '%s' needs one repeated child", n->name);
            return -1;
        }
        if (n->logical == PQ_LT_MAP) {
            pq_node *kv = n->children[0];
            if (kv->phys != PQ_GROUP || kv->n_children < 1 || kv->n_children > 2) {
                fl_err_set(err, 400, n->name, "parquet schema: MAP '%s' needs key_value{key,value}",
                           n->name);
                return -1;
            }
        }
        for (size_t i = 0; i < n->n_children; i++)
            if (finish_node(s, n->children[i], leaves, nl, cap, err)) return -1;
    } else {
        if (n->phys == PQ_FIXED_LEN_BYTE_ARRAY && n->type_length <= 0) {
            fl_err_set(err, 400, n->name, "parquet schema: '%s' needs a fixed length", n->name);
            return -1;
        }
        if (n->logical == PQ_LT_DECIMAL && (n->precision < 1 || n->scale < 0 ||
                                            n->scale > n->precision || n->precision > 38)) {
            fl_err_set(err, 400, n->name, "parquet schema: bad DECIMAL(%d,%d) for '%s'",
                       n->precision, n->scale, n->name);
            return -1;
        }
        if (*nl == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            pq_node **g = arena_alloc(s->a, *cap * sizeof *g);
            if (*nl) memcpy(g, *leaves, *nl * sizeof *g);
            *leaves = g;
        }
        n->leaf = (int)*nl;
        (*leaves)[(*nl)++] = n;
    }
    n->n_leaves = (int)*nl - n->first_leaf;
    return 0;
}

int pq_schema_finish(pq_schema *s, fl_err *err)
{
    size_t nl = 0, cap = 0;
    pq_node **leaves = NULL;
    s->root->max_def = s->root->max_rep = 0;
    s->n_nodes = 0;
    if (finish_node(s, s->root, &leaves, &nl, &cap, err)) return -1;
    s->leaves = leaves;
    s->n_leaves = nl;
    return 0;
}

/* ---- rows_schema -> flat schema ---- */

static int decimal_bytes(int precision)
{
    int n = 1;
    /* smallest n with 2^(8n-1) > 10^precision, i.e. 8n-1 > precision*log2(10) */
    while ((8.0 * n - 1) < precision * 3.321928094887362) n++;
    return n;
}

static pq_node *add_typed(pq_schema *s, pq_node *parent, const char *name, pq_repetition rep,
                          rows_type t, int prec, int scale)
{
    pq_node *n;
    switch (t) {
    case ROWS_STRING: return pq_schema_add(s, parent, name, rep, PQ_BYTE_ARRAY, PQ_LT_STRING);
    case ROWS_BOOL: return pq_schema_add(s, parent, name, rep, PQ_BOOLEAN, PQ_LT_NONE);
    case ROWS_INT32: return pq_schema_add(s, parent, name, rep, PQ_INT32, PQ_LT_NONE);
    case ROWS_INT64: return pq_schema_add(s, parent, name, rep, PQ_INT64, PQ_LT_NONE);
    case ROWS_DOUBLE: return pq_schema_add(s, parent, name, rep, PQ_DOUBLE, PQ_LT_NONE);
    case ROWS_DATE: return pq_schema_add(s, parent, name, rep, PQ_INT32, PQ_LT_DATE);
    case ROWS_TIMESTAMP:
        n = pq_schema_add(s, parent, name, rep, PQ_INT64, PQ_LT_TIMESTAMP);
        n->unit = PQ_MICROS;
        n->utc = true;
        return n;
    case ROWS_DECIMAL:
    default:
        /* Spark's choice of physical type: the smallest that holds the precision */
        n = pq_schema_add(s, parent, name, rep,
                          prec <= 9 ? PQ_INT32 : prec <= 18 ? PQ_INT64 : PQ_FIXED_LEN_BYTE_ARRAY,
                          PQ_LT_DECIMAL);
        n->precision = prec;
        n->scale = scale;
        if (n->phys == PQ_FIXED_LEN_BYTE_ARRAY) n->type_length = decimal_bytes(prec);
        return n;
    }
}

pq_schema *pq_schema_from_rows(const rows_schema *rs, int prec, int scale)
{
    pq_schema *s = pq_schema_new();
    for (size_t i = 0; i < rs->n; i++) {
        const rows_field *f = &rs->f[i];
        if (!f->list) {
            add_typed(s, NULL, f->name, PQ_OPTIONAL, f->type, prec, scale);
            continue;
        }
        pq_node *g = pq_schema_add(s, NULL, f->name, PQ_OPTIONAL, PQ_GROUP, PQ_LT_LIST);
        pq_node *l = pq_schema_add(s, g, "list", PQ_REPEATED, PQ_GROUP, PQ_LT_NONE);
        add_typed(s, l, "element", PQ_OPTIONAL, f->type, prec, scale);
    }
    fl_err e;
    fl_err_clear(&e);
    if (pq_schema_finish(s, &e)) { /* only an empty rows schema gets here */
        s->leaves = NULL;
        s->n_leaves = 0;
    }
    return s;
}

/* ---- message text ---- */

static const char *phys_name(pq_physical p)
{
    switch (p) {
    case PQ_BOOLEAN: return "boolean";
    case PQ_INT32: return "int32";
    case PQ_INT64: return "int64";
    case PQ_INT96: return "int96";
    case PQ_FLOAT: return "float";
    case PQ_DOUBLE: return "double";
    case PQ_BYTE_ARRAY: return "binary";
    case PQ_FIXED_LEN_BYTE_ARRAY: return "fixed_len_byte_array";
    default: return "group";
    }
}

static void print_node(const pq_node *n, buf *out, int indent)
{
    static const char *reps[] = {"required", "optional", "repeated"};
    static const char *units[] = {"MILLIS", "MICROS", "NANOS"};
    buf_printf(out, "%*s%s %s", indent, "", reps[n->rep], phys_name(n->phys));
    if (n->phys == PQ_FIXED_LEN_BYTE_ARRAY) buf_printf(out, "(%d)", n->type_length);
    buf_printf(out, " %s", n->name);
    switch (n->logical) {
    case PQ_LT_STRING: buf_puts(out, " (STRING)"); break;
    case PQ_LT_DATE: buf_puts(out, " (DATE)"); break;
    case PQ_LT_TIMESTAMP:
        buf_printf(out, " (TIMESTAMP(%s,%s))", units[n->unit], n->utc ? "true" : "false");
        break;
    case PQ_LT_DECIMAL: buf_printf(out, " (DECIMAL(%d,%d))", n->precision, n->scale); break;
    case PQ_LT_INT:
        buf_printf(out, " (INT(%d,%s))", n->bit_width, n->is_signed ? "true" : "false");
        break;
    case PQ_LT_LIST: buf_puts(out, " (LIST)"); break;
    case PQ_LT_MAP: buf_puts(out, " (MAP)"); break;
    case PQ_LT_JSON: buf_puts(out, " (JSON)"); break;
    case PQ_LT_ENUM: buf_puts(out, " (ENUM)"); break;
    case PQ_LT_UUID: buf_puts(out, " (UUID)"); break;
    default: break;
    }
    if (n->phys != PQ_GROUP) {
        buf_puts(out, ";\n");
        return;
    }
    buf_puts(out, " {\n");
    for (size_t i = 0; i < n->n_children; i++) print_node(n->children[i], out, indent + 2);
    buf_printf(out, "%*s}\n", indent, "");
}

void pq_schema_print(const pq_schema *s, buf *out)
{
    buf_printf(out, "message %s {\n", s->root->name);
    for (size_t i = 0; i < s->root->n_children; i++) print_node(s->root->children[i], out, 2);
    buf_puts(out, "}\n");
}

typedef struct lex {
    const char *p;
    char tok[256];
    fl_err *err;
} lex;

/* Next token into l->tok: a word or one of {}();,= ; "" at the end. */
static void next(lex *l)
{
    while (isspace((unsigned char)*l->p)) l->p++;
    size_t n = 0;
    if (*l->p && strchr("{}();,=", *l->p)) {
        l->tok[n++] = *l->p++;
    } else {
        while (*l->p && !isspace((unsigned char)*l->p) && !strchr("{}();,=", *l->p) &&
               n < sizeof l->tok - 1)
            l->tok[n++] = *l->p++;
    }
    l->tok[n] = 0;
}

static int expect(lex *l, const char *t)
{
    if (strcmp(l->tok, t) != 0) {
        fl_err_set(l->err, 400, l->tok, "parquet schema: expected '%s' but found '%s'", t, l->tok);
        return -1;
    }
    next(l);
    return 0;
}

static int parse_int_tok(lex *l, int *out)
{
    char *end;
    long v = strtol(l->tok, &end, 10);
    if (!l->tok[0] || *end) {
        fl_err_set(l->err, 400, l->tok, "parquet schema: expected a number, found '%s'", l->tok);
        return -1;
    }
    *out = (int)v;
    next(l);
    return 0;
}

static int parse_annotation(lex *l, pq_node *n)
{
    char name[sizeof l->tok];
    memcpy(name, l->tok, sizeof name);
    next(l);
    if (!strcasecmp(name, "STRING") || !strcasecmp(name, "UTF8")) n->logical = PQ_LT_STRING;
    else if (!strcasecmp(name, "DATE")) n->logical = PQ_LT_DATE;
    else if (!strcasecmp(name, "LIST")) n->logical = PQ_LT_LIST;
    else if (!strcasecmp(name, "MAP")) n->logical = PQ_LT_MAP;
    else if (!strcasecmp(name, "JSON")) n->logical = PQ_LT_JSON;
    else if (!strcasecmp(name, "ENUM")) n->logical = PQ_LT_ENUM;
    else if (!strcasecmp(name, "UUID")) n->logical = PQ_LT_UUID;
    else if (!strcasecmp(name, "MAP_KEY_VALUE")) n->logical = PQ_LT_NONE;
    else if (!strcasecmp(name, "DECIMAL")) {
        n->logical = PQ_LT_DECIMAL;
        if (expect(l, "(") || parse_int_tok(l, &n->precision) || expect(l, ",") ||
            parse_int_tok(l, &n->scale) || expect(l, ")"))
            return -1;
    } else if (!strcasecmp(name, "TIMESTAMP")) {
        n->logical = PQ_LT_TIMESTAMP;
        if (expect(l, "(")) return -1;
        if (!strcasecmp(l->tok, "MILLIS")) n->unit = PQ_MILLIS;
        else if (!strcasecmp(l->tok, "MICROS")) n->unit = PQ_MICROS;
        else if (!strcasecmp(l->tok, "NANOS")) n->unit = PQ_NANOS;
        else return expect(l, "MICROS");
        next(l);
        if (expect(l, ",")) return -1;
        n->utc = !strcasecmp(l->tok, "true");
        next(l);
        if (expect(l, ")")) return -1;
    } else if (!strcasecmp(name, "INT")) {
        n->logical = PQ_LT_INT;
        if (expect(l, "(") || parse_int_tok(l, &n->bit_width) || expect(l, ",")) return -1;
        n->is_signed = !strcasecmp(l->tok, "true");
        next(l);
        if (expect(l, ")")) return -1;
    } else {
        fl_err_set(l->err, 400, name, "parquet schema: unknown annotation '%s'", name);
        return -1;
    }
    return expect(l, ")");
}

static int parse_fields(lex *l, pq_schema *s, pq_node *parent);

static int parse_field(lex *l, pq_schema *s, pq_node *parent)
{
    pq_repetition rep;
    if (!strcmp(l->tok, "required")) rep = PQ_REQUIRED;
    else if (!strcmp(l->tok, "optional")) rep = PQ_OPTIONAL;
    else if (!strcmp(l->tok, "repeated")) rep = PQ_REPEATED;
    else {
        fl_err_set(l->err, 400, l->tok, "parquet schema: expected required/optional/repeated, found '%s'",
                   l->tok);
        return -1;
    }
    next(l);
    static const char *names[] = {"boolean", "int32", "int64", "int96", "float", "double",
                                  "binary", "fixed_len_byte_array"};
    pq_physical phys = PQ_GROUP;
    if (strcmp(l->tok, "group") != 0) {
        int k = -1;
        for (int i = 0; i < 8; i++)
            if (!strcmp(l->tok, names[i])) k = i;
        if (k < 0) {
            fl_err_set(l->err, 400, l->tok, "parquet schema: unknown type '%s'", l->tok);
            return -1;
        }
        phys = (pq_physical)k;
    }
    next(l);
    int len = 0;
    if (phys == PQ_FIXED_LEN_BYTE_ARRAY &&
        (expect(l, "(") || parse_int_tok(l, &len) || expect(l, ")")))
        return -1;
    if (!l->tok[0] || strchr("{}();,=", l->tok[0])) {
        fl_err_set(l->err, 400, l->tok, "parquet schema: expected a field name, found '%s'", l->tok);
        return -1;
    }
    pq_node *n = pq_schema_add(s, parent, l->tok, rep, phys, PQ_LT_NONE);
    n->type_length = len;
    next(l);
    if (!strcmp(l->tok, "(")) {
        next(l);
        if (parse_annotation(l, n)) return -1;
    }
    if (!strcmp(l->tok, "=")) { /* field id: accepted and ignored */
        next(l);
        next(l);
    }
    if (phys == PQ_GROUP) {
        if (expect(l, "{") || parse_fields(l, s, n) || expect(l, "}")) return -1;
        if (!strcmp(l->tok, ";")) next(l);
        return 0;
    }
    return expect(l, ";");
}

static int parse_fields(lex *l, pq_schema *s, pq_node *parent)
{
    while (l->tok[0] && strcmp(l->tok, "}") != 0)
        if (parse_field(l, s, parent)) return -1;
    return 0;
}

pq_schema *pq_schema_parse(const char *text, fl_err *err)
{
    lex l = {text, {0}, err};
    pq_schema *s = pq_schema_new();
    next(&l);
    if (expect(&l, "message")) goto fail;
    if (strcmp(l.tok, "{") != 0) {
        s->root->name = arena_strdup(s->a, l.tok);
        next(&l);
    }
    if (expect(&l, "{") || parse_fields(&l, s, s->root) || expect(&l, "}")) goto fail;
    if (l.tok[0]) {
        fl_err_set(err, 400, l.tok, "parquet schema: unexpected '%s' after the message", l.tok);
        goto fail;
    }
    if (pq_schema_finish(s, err)) goto fail;
    return s;
fail:
    pq_schema_free(s);
    return NULL;
}

/* ---- footer SchemaElement list ---- */

static void logical_to_thrift(const pq_node *n, tw *w)
{
    if (n->logical == PQ_LT_NONE) return;
    tw_struct_begin(w, 10);
    switch (n->logical) {
    case PQ_LT_STRING: tw_struct_begin(w, 1); break;
    case PQ_LT_MAP: tw_struct_begin(w, 2); break;
    case PQ_LT_LIST: tw_struct_begin(w, 3); break;
    case PQ_LT_ENUM: tw_struct_begin(w, 4); break;
    case PQ_LT_DECIMAL:
        tw_struct_begin(w, 5);
        tw_i32(w, 1, n->scale);
        tw_i32(w, 2, n->precision);
        break;
    case PQ_LT_DATE: tw_struct_begin(w, 6); break;
    case PQ_LT_TIMESTAMP:
        tw_struct_begin(w, 8);
        tw_bool(w, 1, n->utc);
        tw_struct_begin(w, 2);
        tw_struct_begin(w, (int16_t)(n->unit + 1));
        tw_struct_end(w);
        tw_struct_end(w);
        break;
    case PQ_LT_INT:
        tw_struct_begin(w, 10);
        buf_putc(w->b, 0x13); /* field 1, type byte */
        buf_putc(w->b, (char)n->bit_width);
        w->last[w->depth] = 1;
        tw_bool(w, 2, n->is_signed);
        break;
    case PQ_LT_JSON: tw_struct_begin(w, 12); break;
    case PQ_LT_UUID: tw_struct_begin(w, 14); break;
    default: tw_struct_begin(w, 11); break;
    }
    tw_struct_end(w);
    tw_struct_end(w);
}

static int converted_type(const pq_node *n)
{
    switch (n->logical) {
    case PQ_LT_STRING: return CT_UTF8;
    case PQ_LT_MAP: return CT_MAP;
    case PQ_LT_LIST: return CT_LIST;
    case PQ_LT_ENUM: return CT_ENUM;
    case PQ_LT_DECIMAL: return CT_DECIMAL;
    case PQ_LT_DATE: return CT_DATE;
    case PQ_LT_JSON: return CT_JSON;
    case PQ_LT_TIMESTAMP:
        if (!n->utc || n->unit == PQ_NANOS) return -1;
        return n->unit == PQ_MILLIS ? CT_TIMESTAMP_MILLIS : CT_TIMESTAMP_MICROS;
    case PQ_LT_INT: {
        int k = n->bit_width == 8 ? 0 : n->bit_width == 16 ? 1 : n->bit_width == 32 ? 2 : 3;
        return (n->is_signed ? CT_INT_8 : CT_UINT_8) + k;
    }
    default: return -1;
    }
}

static size_t count_nodes(const pq_node *n)
{
    size_t c = 1;
    for (size_t i = 0; i < n->n_children; i++) c += count_nodes(n->children[i]);
    return c;
}

static void element_to_thrift(const pq_node *n, bool root, tw *w)
{
    tw_elem_struct_begin(w);
    if (n->phys != PQ_GROUP) tw_i32(w, 1, n->phys);
    if (n->phys == PQ_FIXED_LEN_BYTE_ARRAY) tw_i32(w, 2, n->type_length);
    if (!root) tw_i32(w, 3, n->rep);
    tw_str(w, 4, n->name);
    if (n->phys == PQ_GROUP) tw_i32(w, 5, (int32_t)n->n_children);
    int ct = converted_type(n);
    if (ct >= 0) tw_i32(w, 6, ct);
    if (n->logical == PQ_LT_DECIMAL) {
        tw_i32(w, 7, n->scale);
        tw_i32(w, 8, n->precision);
    }
    logical_to_thrift(n, w);
    tw_struct_end(w);
    for (size_t i = 0; i < n->n_children; i++) element_to_thrift(n->children[i], false, w);
}

void pq_schema_to_thrift(const pq_schema *s, tw *w, int16_t id)
{
    tw_list_begin(w, id, TH_STRUCT, count_nodes(s->root));
    element_to_thrift(s->root, true, w);
}

static void logical_from_thrift(pq_node *n, const th_val *el)
{
    const th_val *lt = th_get(el, 10);
    if (lt && lt->type == TH_STRUCT && lt->n > 0) {
        const th_field *f = &lt->u.fields[0];
        switch (f->id) {
        case 1: n->logical = PQ_LT_STRING; return;
        case 2: n->logical = PQ_LT_MAP; return;
        case 3: n->logical = PQ_LT_LIST; return;
        case 4: n->logical = PQ_LT_ENUM; return;
        case 5:
            n->logical = PQ_LT_DECIMAL;
            n->scale = (int)th_int(&f->v, 1, 0);
            n->precision = (int)th_int(&f->v, 2, 0);
            return;
        case 6: n->logical = PQ_LT_DATE; return;
        case 8: {
            n->logical = PQ_LT_TIMESTAMP;
            n->utc = th_int(&f->v, 1, 1) != 0;
            const th_val *u = th_get(&f->v, 2);
            if (u && u->type == TH_STRUCT && u->n > 0) n->unit = (pq_time_unit)(u->u.fields[0].id - 1);
            return;
        }
        case 10:
            n->logical = PQ_LT_INT;
            n->bit_width = (int)th_int(&f->v, 1, 32);
            n->is_signed = th_int(&f->v, 2, 1) != 0;
            return;
        case 12: n->logical = PQ_LT_JSON; return;
        case 14: n->logical = PQ_LT_UUID; return;
        default: break;
        }
    }
    switch (th_int(el, 6, -1)) { /* legacy converted type */
    case CT_UTF8: n->logical = PQ_LT_STRING; break;
    case CT_MAP: n->logical = PQ_LT_MAP; break;
    case CT_LIST: n->logical = PQ_LT_LIST; break;
    case CT_ENUM: n->logical = PQ_LT_ENUM; break;
    case CT_JSON: n->logical = PQ_LT_JSON; break;
    case CT_DATE: n->logical = PQ_LT_DATE; break;
    case CT_DECIMAL:
        n->logical = PQ_LT_DECIMAL;
        n->scale = (int)th_int(el, 7, 0);
        n->precision = (int)th_int(el, 8, 0);
        break;
    case CT_TIMESTAMP_MILLIS: n->logical = PQ_LT_TIMESTAMP; n->unit = PQ_MILLIS; break;
    case CT_TIMESTAMP_MICROS: n->logical = PQ_LT_TIMESTAMP; n->unit = PQ_MICROS; break;
    default: break;
    }
}

static int node_from_thrift(pq_schema *s, pq_node *parent, const th_val *list, size_t *i,
                            fl_err *err)
{
    if (*i >= list->n) {
        fl_err_set(err, 500, "parquet footer", "schema element list is too short");
        return -1;
    }
    const th_val *el = &list->u.items[(*i)++];
    char *name = th_str(s->a, el, 4);
    int64_t nch = th_int(el, 5, 0);
    int64_t ty = th_int(el, 1, 0), rep = th_int(el, 3, 0);
    if (parent->max_rep > 60 || ty < 0 || ty > PQ_FIXED_LEN_BYTE_ARRAY || rep < 0 || rep > 2) {
        fl_err_set(err, 500, "parquet footer", "bad schema element (type %lld, repetition %lld, or too deep)",
                   (long long)ty, (long long)rep);
        return -1;
    }
    pq_physical phys = th_get(el, 1) && nch == 0 ? (pq_physical)ty : PQ_GROUP;
    pq_node *n = pq_schema_add(s, parent, name ? name : "", (pq_repetition)rep, phys, PQ_LT_NONE);
    n->max_rep = parent->max_rep + 1; /* nesting depth guard only; recomputed by finish */
    n->type_length = (int)th_int(el, 2, 0);
    logical_from_thrift(n, el);
    if (nch < 0 || nch > (int64_t)list->n) {
        fl_err_set(err, 500, "parquet footer", "bad num_children in schema");
        return -1;
    }
    for (int64_t k = 0; k < nch; k++)
        if (node_from_thrift(s, n, list, i, err)) return -1;
    return 0;
}

pq_schema *pq_schema_from_thrift(const th_val *list, fl_err *err)
{
    if (!list || list->type != TH_LIST || list->n < 1) {
        fl_err_set(err, 500, "parquet footer", "missing schema");
        return NULL;
    }
    pq_schema *s = pq_schema_new();
    const th_val *root = &list->u.items[0];
    char *name = th_str(s->a, root, 4);
    if (name) s->root->name = name;
    size_t i = 1;
    int64_t nch = th_int(root, 5, 0);
    for (int64_t k = 0; k < nch; k++)
        if (node_from_thrift(s, s->root, list, &i, err)) goto fail;
    if (pq_schema_finish(s, err)) goto fail;
    return s;
fail:
    pq_schema_free(s);
    return NULL;
}
