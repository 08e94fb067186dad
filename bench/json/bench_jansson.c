/* bench_jansson.c: parse+walk throughput of jansson (see bench_common.h). */
#include <jansson.h>

#include "bench_common.h"

static void walk(json_t *v, totals *t)
{
    t->values++;
    switch (json_typeof(v)) {
    case JSON_STRING:
        t->strings++;
        t->str_bytes += json_string_length(v);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        t->numbers++;
        break;
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) walk(json_array_get(v, i), t);
        break;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m) {
            t->keys++;
            t->key_bytes += strlen(k);
            walk(m, t);
        }
        break;
    }
    default:
        break;
    }
}

static int parse_walk(const char *text, size_t n, totals *t)
{
    json_error_t err;
    json_t *v = json_loadb(text, n, 0, &err);
    if (!v) {
        fprintf(stderr, "jansson: %s\n", err.text);
        return -1;
    }
    walk(v, t);
    json_decref(v);
    return 0;
}

int main(int argc, char **argv) { return bench_main(argc, argv, "jansson", parse_walk); }
