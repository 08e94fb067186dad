/* fp_internal.h: the FHIRPath AST shared by the parser (fp_parse.c), the evaluator
 * (fp_eval.c) and the function library (fp_funcs.c). Not part of the public contract. */
#ifndef FL_FP_INTERNAL_H
#define FL_FP_INTERNAL_H

#include "fhirpath.h"

typedef enum {
    N_EMPTY, N_LIT,              /* N_LIT: lit holds a ready-made item */
    N_THIS, N_INDEX, N_TOTAL,
    N_VAR,                       /* env slot */
    N_RESOURCE, N_ROWINDEX, N_CONTEXT, N_UCUM,
    N_MEMBER,                    /* base (may be NULL = focus) . name */
    N_FUNC,                      /* base (may be NULL) . fn(args) */
    N_INDEXER,                   /* base [ args[0] ] */
    N_NEG, N_POS,                /* unary minus / plus on args[0] */
    N_BIN,                       /* args[0] op args[1] */
    N_IS, N_AS                   /* args[0] is/as tname */
} fp_ntype;

typedef enum {
    OP_MUL, OP_DIV, OP_IDIV, OP_MOD, OP_ADD, OP_SUB, OP_CONCAT, OP_UNION,
    OP_LT, OP_GT, OP_LE, OP_GE, OP_EQ, OP_NE, OP_EQUIV, OP_NEQUIV,
    OP_IN, OP_CONTAINS, OP_AND, OP_OR, OP_XOR, OP_IMPLIES
} fp_op;

typedef struct fp_node fp_node;
struct fp_node {
    uint8_t type;       /* fp_ntype */
    uint8_t op;         /* fp_op for N_BIN */
    uint16_t fn;        /* function id for N_FUNC */
    uint32_t pos;       /* byte offset in the source, for errors */
    uint32_t nargs;
    uint32_t slot;      /* N_VAR */
    const char *name;   /* N_MEMBER name; N_IS/N_AS type name; N_FUNC: function name */
    uint32_t name_len;
    const char *tname;  /* function type argument (ofType(X), getReferenceKey(X)) */
    fp_node *base;
    fp_node **args;
    fp_item lit;
    void *re;           /* matches()/replaceMatches() with a literal pattern: regex_t */
};

struct fp_expr {
    arena *a;           /* owns nodes, names, the source copy */
    char *src;
    fp_node *root;
    void **regex;       /* malloc'd regex_t compiled at parse time, freed by fp_free */
    size_t nregex;
};

/* Function ids; the table in fp_funcs.c maps names to ids, arity and lambda flags. */
typedef struct fp_fninfo {
    const char *name;
    uint8_t min_args, max_args;
    uint8_t lambda;     /* bit i set: argument i is evaluated per input item */
    uint8_t type_arg;   /* 1: the single argument is a type specifier */
} fp_fninfo;
int fp_fn_lookup(const char *name, size_t len);   /* id or -1 */
const fp_fninfo *fp_fn_info(int id);

/* Evaluation state shared by evaluator and functions. */
typedef struct fp_state {
    fp_ctx *ctx;
    const fp_expr *e;
    int64_t index;           /* $index */
    const fp_coll *total;    /* $total */
} fp_state;

bool fp_eval_node(fp_state *st, const fp_node *n, const fp_coll *focus, fp_coll *out);
bool fp_call(fp_state *st, const fp_node *n, const fp_coll *in, const fp_coll *focus,
             fp_coll *out);
bool fp_err(fp_state *st, const fp_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Item helpers. */
fp_item fp_mk_bool(bool v);
fp_item fp_mk_int(int64_t v);
fp_item fp_mk_str(const char *s, size_t n);
fp_item fp_mk_dec_d(arena *a, double d);
/* Converts a JSON value into an item (false for null/arrays). */
bool fp_item_from_json(const json_val *v, const json_val *ext, const char *tname, fp_item *out);
/* Singleton boolean evaluation: 1 true, 0 false, -1 empty, -2 error (not boolean). */
int fp_to_bool(const fp_coll *c);
/* Equality: 1 equal, 0 not equal, -1 empty (incomparable precision). */
int fp_items_equal(const fp_item *a, const fp_item *b);
int fp_items_equiv(const fp_item *a, const fp_item *b);
/* Ordering: sets *cmp; returns false if incomparable. */
bool fp_items_compare(const fp_item *a, const fp_item *b, int *cmp);
/* Type test: does item have type T (a FHIR or System type name)? */
bool fp_item_is_type(const fp_item *it, const char *t, size_t tlen);
/* Member navigation of one item, appending children to out. */
void fp_navigate(const fp_item *it, const char *name, size_t n, fp_type_cache *tc, fp_vec *out);

#endif
