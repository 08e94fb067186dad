/* json: strict RFC 8259 parser into an arena DOM, DOM helpers, and writers.
 *
 * Contract:
 *  - json_parse() accepts exactly RFC 8259 JSON (one value, optional surrounding
 *    whitespace, UTF-8 validated, no trailing commas, no comments, no NaN). Everything
 *    it returns lives in the caller's arena. On error it returns NULL and fills err with
 *    status 400 and a message giving the byte offset (and line:col) of the problem.
 *  - Numbers keep their exact source text (u.s, len): decimal precision matters for
 *    FHIRPath; convert with json_num_*().
 *  - Strings are unescaped, stored NUL-terminated, with len = byte length (a string may
 *    hold U+0000, so trust len, not strlen).
 *  - Objects keep member order and duplicates as written; json_get() returns the first.
 *  - Limits: depth and input size (defaults below); exceeding them is an error naming
 *    the limit, with status 400 (depth) or 413 (size).
 *  - Writers never fail: json_write() emits compact or pretty text of a DOM;
 *    jw_* build JSON text directly into a buf with commas handled for you.
 */
#ifndef FL_JSON_H
#define FL_JSON_H

#include "../util/util.h"

typedef enum {
    JSON_NULL = 0,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

typedef struct json_kv json_kv;
typedef struct json_val {
    uint32_t type;  /* json_type */
    uint32_t len;   /* string bytes, number text bytes, array items, object members */
    union {
        const char *s;     /* JSON_STRING (unescaped) / JSON_NUMBER (source text) */
        struct json_val *a; /* JSON_ARRAY: len items, contiguous */
        json_kv *o;         /* JSON_OBJECT: len members, contiguous, in source order */
    } u;
} json_val;

struct json_kv {
    const char *key;   /* unescaped, NUL-terminated */
    uint32_t key_len;
    json_val val;
};

typedef struct json_limits {
    size_t max_depth;  /* default 256 */
    size_t max_size;   /* bytes; default 64 MiB */
} json_limits;

/* Parses text[0..len). lim may be NULL for the defaults. */
json_val *json_parse(arena *a, const char *text, size_t len, const json_limits *lim,
                     fl_err *err);

/* ---- DOM access ---- */
json_val *json_get(const json_val *obj, const char *key);           /* NULL if absent/not obj */
json_val *json_getn(const json_val *obj, const char *key, size_t klen);
const char *json_get_str(const json_val *obj, const char *key);     /* NULL unless a string */
static inline bool json_is(const json_val *v, json_type t) { return v && v->type == t; }
/* Numbers: return 0 on success, -1 if not representable (not a number, overflow, fraction
 * for the integer form). */
int json_num_int64(const json_val *v, int64_t *out);
int json_num_double(const json_val *v, double *out);
/* Deep equality (numbers compared by value, object members order-insensitive). */
bool json_equal(const json_val *a, const json_val *b);

/* ---- DOM building (all memory from the arena) ---- */
json_val *json_new_string(arena *a, const char *s, size_t len);
json_val *json_new_number(arena *a, const char *text);   /* text must be a JSON number */
json_val *json_new_object(arena *a);
json_val *json_new_array(arena *a);
/* Sets key to a copy of *val: replaces the first member with that key, else appends. */
void json_obj_set(arena *a, json_val *obj, const char *key, const json_val *val);
void json_obj_remove(json_val *obj, const char *key);
void json_arr_push(arena *a, json_val *arr, const json_val *val);
json_val *json_clone(arena *a, const json_val *v);

/* ---- writing ---- */
void json_write(buf *out, const json_val *v, bool pretty);
void json_write_string(buf *out, const char *s, size_t len); /* quoted + escaped */
/* Returns true if s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
bool json_utf8_valid(const char *s, size_t n);

/* Streaming writer: jw_key() before each member value inside an object. */
typedef struct jw {
    buf *out;
    int depth;
    bool need_comma[64];
} jw;
void jw_init(jw *w, buf *out);
void jw_obj_begin(jw *w);
void jw_obj_end(jw *w);
void jw_arr_begin(jw *w);
void jw_arr_end(jw *w);
void jw_key(jw *w, const char *key);
void jw_str(jw *w, const char *s);
void jw_strn(jw *w, const char *s, size_t n);
void jw_int(jw *w, int64_t v);
void jw_double(jw *w, double v);   /* shortest round-trip text; non-finite -> null */
void jw_bool(jw *w, bool v);
void jw_null(jw *w);
void jw_raw(jw *w, const char *json, size_t n); /* already-valid JSON value */
void jw_val(jw *w, const json_val *v);

#endif
