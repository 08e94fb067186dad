/* bench_common.h: the driver shared by bench_json.c (fhirlake) and bench_jansson.c
 * (jansson; a separate program because jansson's names clash with json.h's).
 *
 *   <program> FILE [SECONDS]
 *
 * FILE is NDJSON (one FHIR resource per line). Each line is parsed into a DOM and then
 * walked: every value is visited, strings, keys and numbers are counted and string/key
 * byte lengths summed (so a lazy parser cannot skip work). The whole file is parsed
 * repeatedly for at least SECONDS (default 3, at least 3 passes); the best pass gives the
 * MB/s (1 MB = 10^6 bytes of input). Prints one line "<name>: <MB/s> MB/s (...)" with the
 * walk totals, which must agree between parsers. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct totals {
    uint64_t values, strings, numbers, keys, str_bytes, key_bytes;
} totals;

/* Parses text[0..n) and walks it into t; returns 0, or -1 after printing the error. */
typedef int (*parse_walk_fn)(const char *text, size_t n, totals *t);

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_main(int argc, char **argv, const char *name, parse_walk_fn fn)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [SECONDS]\n", argv[0]);
        return 2;
    }
    double min_secs = argc > 2 ? atof(argv[2]) : 3.0;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc(size + 64);
    if (!data || fread(data, 1, size, f) != size) {
        fprintf(stderr, "%s: short read\n", argv[1]);
        return 1;
    }
    fclose(f);
    memset(data + size, 0, 64);

    size_t nlines = 0, cap = 1024;
    const char **lp = malloc(cap * sizeof *lp);
    size_t *ln = malloc(cap * sizeof *ln);
    for (size_t i = 0; i < size;) {
        char *nl = memchr(data + i, '\n', size - i);
        size_t e = nl ? (size_t)(nl - data) : size;
        if (e > i) {
            if (nlines == cap) {
                cap *= 2;
                lp = realloc(lp, cap * sizeof *lp);
                ln = realloc(ln, cap * sizeof *ln);
            }
            lp[nlines] = data + i;
            ln[nlines] = e - i;
            nlines++;
        }
        i = e + 1;
    }

    totals t;
    double best = 1e30, total = 0;
    int passes = 0;
    while (passes < 3 || total < min_secs) {
        memset(&t, 0, sizeof t);
        double t0 = bench_now();
        for (size_t i = 0; i < nlines; i++) {
            if (fn(lp[i], ln[i], &t) != 0) {
                fprintf(stderr, "%s: line %zu failed\n", name, i + 1);
                return 1;
            }
        }
        double dt = bench_now() - t0;
        if (dt < best) best = dt;
        total += dt;
        passes++;
    }
    printf("%s: %.1f MB/s (best of %d passes, %.1f MB, %zu docs; values %llu strings %llu "
           "numbers %llu keys %llu str_bytes %llu key_bytes %llu)\n",
           name, (double)size / 1e6 / best, passes, (double)size / 1e6, nlines,
           (unsigned long long)t.values, (unsigned long long)t.strings,
           (unsigned long long)t.numbers, (unsigned long long)t.keys,
           (unsigned long long)t.str_bytes, (unsigned long long)t.key_bytes);
    free(lp);
    free(ln);
    free(data);
    return 0;
}

#endif
