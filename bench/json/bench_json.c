/* bench_json.c: parse+walk throughput of fhirlake's JSON parser (see bench_common.h).
 * Each line is parsed into a fresh arena DOM (arena_reset between documents). */
#include "json/json.h"

#include "bench_common.h"

static arena *A;

static void walk(const json_val *v, totals *t)
{
    t->values++;
    switch (v->type) {
    case JSON_STRING:
        t->strings++;
        t->str_bytes += v->len;
        break;
    case JSON_NUMBER:
        t->numbers++;
        break;
    case JSON_ARRAY:
        for (uint32_t i = 0; i < v->len; i++) walk(&v->u.a[i], t);
        break;
    case JSON_OBJECT:
        for (uint32_t i = 0; i < v->len; i++) {
            t->keys++;
            t->key_bytes += v->u.o[i].key_len;
            walk(&v->u.o[i].val, t);
        }
        break;
    default:
        break;
    }
}

static int parse_walk(const char *text, size_t n, totals *t)
{
    fl_err err;
    json_val *v = json_parse(A, text, n, NULL, &err);
    if (!v) {
        fprintf(stderr, "fhirlake: %s\n", err.msg);
        return -1;
    }
    walk(v, t);
    arena_reset(A);
    return 0;
}

int main(int argc, char **argv)
{
    A = arena_new(1 << 20);
    int rc = bench_main(argc, argv, "fhirlake", parse_walk);
    arena_free(A);
    return rc;
}
