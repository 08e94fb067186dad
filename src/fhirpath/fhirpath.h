/* fhirpath: FHIRPath compiler and evaluator over the json DOM.
 *
 * Contract:
 *  - fp_compile() parses an expression once into an immutable fp_expr (names resolved,
 *    functions bound, constants' slots fixed). A compiled expression may be shared by any
 *    number of threads; each thread evaluates with its own fp_ctx.
 *  - Evaluation results are collections of fp_item living in ctx->a (the per-thread
 *    temporaries arena, reset by the caller, typically once per resource). Items point
 *    into the JSON DOM of the resource; nothing is copied for plain paths.
 *  - Errors: compile errors give status 400 and name the expression and the byte
 *    position; evaluation errors (e.g. a singleton expected) give status 422.
 *  - Types: Boolean, Integer, Decimal (keeps source text), String, Date, DateTime, Time,
 *    Quantity, and FHIR elements (JSON objects). Primitives read from JSON keep a pointer
 *    to their JSON value and their primitive extension (_elem) for extension().
 */
#ifndef FL_FHIRPATH_H
#define FL_FHIRPATH_H

#include "../json/json.h"

typedef enum {
    FP_NODE = 0, /* a FHIR complex element / resource (JSON object) */
    FP_BOOL,
    FP_INT,
    FP_DEC,      /* s/len: decimal text (source precision kept) */
    FP_STR,
    FP_DATE,     /* s/len: text as written */
    FP_DATETIME,
    FP_TIME,
    FP_QTY       /* s/len: value text; unit/ulen: unit */
} fp_kind;

typedef struct fp_item {
    uint8_t kind;            /* fp_kind */
    uint8_t has_us;          /* DATETIME computed from a clock value (getAidboxTs()...): i
                              * holds it as microseconds since the epoch, UTC, so typed
                              * sinks need not parse s back */
    const char *tname;       /* FHIR type name if known ("Quantity", "code"...), else NULL */
    const json_val *j;       /* JSON element this item was read from, or NULL if computed;
                              * FP_NODE with j NULL: a primitive with only extensions */
    const json_val *ext;     /* primitive extension object (the "_elem" value) or NULL */
    int64_t i;               /* BOOL (0/1), INT; DATETIME with has_us */
    const char *s;           /* STR/DEC/DATE/DATETIME/TIME/QTY text (not NUL-terminated) */
    uint32_t len;
    uint32_t ulen;
    const char *unit;        /* QTY */
} fp_item;

typedef struct fp_coll {
    fp_item *v;
    size_t n;
} fp_coll;

typedef struct fp_expr fp_expr;

/* Names of the %constants an expression may use (besides the built-ins %resource,
 * %rootResource, %context, %rowIndex, %ucum). At evaluation the value of names[i] is
 * ctx->vars[i]. */
typedef struct fp_env {
    const char *const *names;
    size_t n;
} fp_env;

/* Parses expr (NUL-terminated). env may be NULL. Returns NULL and fills err on error.
 * The result owns its memory; free with fp_free(). */
fp_expr *fp_compile(const char *expr, const fp_env *env, fl_err *err);
void fp_free(fp_expr *e);
const char *fp_source(const fp_expr *e);

/* What a compiled expression is, for column type inference and planning. */
typedef enum {
    FP_SHAPE_OTHER = 0,
    FP_SHAPE_PATH,       /* a plain member path a.b.c (names via fp_path_names) */
    FP_SHAPE_BOOL_FN,    /* ends in exists()/empty()/not()/all.../comparison/and/or */
    FP_SHAPE_INT_FN,     /* count(), length(), indexOf(), toInteger(), %rowIndex */
    FP_SHAPE_DEC_FN,     /* toDecimal(), lowBoundary/highBoundary of a decimal */
    FP_SHAPE_STR_FN,     /* join(), toString(), string functions, getResourceKey() */
    FP_SHAPE_TS_FN,      /* getAidboxTs() / getAidboxCts() */
    FP_SHAPE_RESOURCE_KEY, /* exactly getResourceKey() or id */
} fp_shape;
fp_shape fp_expr_shape(const fp_expr *e);
/* For FP_SHAPE_PATH (and id): the member names, in order; returns count (<= max). */
size_t fp_path_names(const fp_expr *e, const char **names, size_t max);
/* Static FHIR type of the result when the focus has FHIR type focus_type (a resource or
 * element type; may be NULL): element paths through the R4 model, ofType()/as(),
 * functions and operators with a known result type. NULL if it cannot be known. The
 * name is static ("date", "string", "HumanName"...). */
const char *fp_infer_type(const fp_expr *e, const char *focus_type);
/* True when the expression is exactly getAidboxTs(). */
bool fp_is_aidbox_ts(const fp_expr *e);

/* Optional per-thread memo of FHIR element type lookups (parent type, element) -> type;
 * makes typed navigation cheap on hot paths. Owned by whoever owns the fp_ctx. */
typedef struct fp_type_cache fp_type_cache;
fp_type_cache *fp_type_cache_new(void);
void fp_type_cache_free(fp_type_cache *c);

typedef struct fp_ctx {
    arena *a;                    /* temporaries; caller resets */
    fp_type_cache *tcache;       /* optional (NULL = look types up every time) */
    const json_val *resource;    /* %resource / %rootResource */
    const fp_coll *vars;         /* values of env names, by index */
    int64_t row_index;           /* %rowIndex */
    /* server context (getAidboxTs etc.); has_* false -> file mode fallbacks */
    bool has_ts, has_cts;
    int64_t ts_us, cts_us;
    const char *txid;            /* NULL = none */
    fl_err *err;
} fp_ctx;

/* Evaluates e with focus `in` (NULL = the resource as a singleton). Returns false on error
 * (ctx->err filled). out lives in ctx->a. */
bool fp_eval(const fp_expr *e, fp_ctx *ctx, const fp_coll *in, fp_coll *out);

/* Helpers. */
fp_coll fp_single_node(arena *a, const json_val *v);   /* a JSON value as a collection */
/* Text of a primitive item (string, number text, true/false, date text...); NULL for
 * nodes. */
const char *fp_item_text(const fp_item *it, size_t *len);
/* Typed constant from a ViewDefinition constant value[x] (suffix "String", "Integer",
 * "Date"...). Returns false if the type is unknown. */
bool fp_item_from_typed(arena *a, const char *suffix, const json_val *v, fp_item *out);
/* Writes an item as JSON (nodes as their JSON, primitives as string/number/bool). */
void fp_item_write_json(jw *w, const fp_item *it);

/* Collection building in the eval arena. */
typedef struct fp_vec {
    fp_item *v;
    size_t n, cap;
    arena *a;
} fp_vec;
void fp_vec_init(fp_vec *b, arena *a);
void fp_vec_push(fp_vec *b, const fp_item *it);
static inline fp_coll fp_vec_done(fp_vec *b) { return (fp_coll){b->v, b->n}; }

fp_coll fp_one(arena *a, fp_item it);
/* Numeric value of an INT/DEC/QTY item; false for others. */
bool fp_num_value(const fp_item *it, double *d);

/* Date/time text parsing shared by comparisons and boundaries. */
typedef struct fp_dt {
    int y, mo, d, h, mi, s, ms;
    int prec;            /* 1 year .. 3 day, 4 hour, 5 minute, 6 second, 7 millisecond */
    bool has_date, has_time, has_tz;
    int tz_min;          /* offset minutes */
    int frac_digits;
} fp_dt;
bool fp_dt_parse(const char *s, size_t n, bool time_only, fp_dt *out);

#endif
