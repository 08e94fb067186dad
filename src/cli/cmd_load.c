/* cmd_load.c: `fhirlake load FILE... --data DIR [--batch N] [--sync full|normal]` — bulk
 * loads NDJSON files (one resource a line) and Bundle files (*.json) into the store through
 * the batched fast path (server/load.c). Shows a progress line on a terminal and a summary
 * at the end. A bad line stops that file (earlier batches stay committed) and fails the run. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "json/json.h"
#include "server/server.h"
#include "store/store.h"

typedef struct progress {
    int tty;
    int64_t t0;
    long base;      /* resources of earlier files */
} progress;

static void show(void *ctx, const http_load_stats *st)
{
    progress *p = ctx;
    if (!p->tty) return;
    double s = (double)(fl_mono_micros() - p->t0) / 1e6;
    long n = p->base + st->written;
    fprintf(stderr, "\r%ld resources, %.0f/s   ", n, s > 0 ? n / s : 0.0);
}

/* A Bundle file is one JSON document (usually pretty-printed over many lines); NDJSON has
 * one resource a line. A one-line file counts as a Bundle only if it is a Bundle. */
static bool is_bundle_file(const char *text, size_t len)
{
    const char *nl = memchr(text, '\n', len);
    size_t first = nl ? (size_t)(nl - text) : len;
    while (first && (text[first - 1] == '\r' || text[first - 1] == ' ')) first--;
    if (first == 0 || text[first - 1] != '}') return true;
    for (size_t i = nl ? (size_t)(nl - text) + 1 : len; i < len; i++)
        if (text[i] != ' ' && text[i] != '\n' && text[i] != '\r' && text[i] != '\t') return false;
    return memmem(text, first, "\"Bundle\"", 8) != NULL &&
           memmem(text, first, "\"entry\"", 7) != NULL;
}

static int load_file(store *s, const char *path, size_t batch, progress *pg,
                     http_load_stats *total)
{
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb)) {
        perror(path);
        if (fd >= 0) close(fd);
        return -1;
    }
    size_t len = (size_t)sb.st_size;
    const char *text = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : "";
    close(fd);
    if (text == MAP_FAILED) {
        perror(path);
        return -1;
    }
    fl_err err;
    fl_err_clear(&err);
    http_load_stats st = {0};
    int rc;
    if (len && is_bundle_file(text, len)) {
        arena *a = arena_new(1 << 20);
        json_val *v = json_parse(a, text, len, NULL, &err);
        rc = v ? http_load_bundle(s, a, v, &st, &err) : -1;
        arena_free(a);
    } else {
        rc = http_load_ndjson(s, text, len, batch, false, &st, show, pg, &err);
    }
    if (len) munmap((void *)text, len);
    if (rc) fprintf(stderr, "%sfhirlake: %s: %s%s%s\n", pg->tty ? "\n" : "", path,
                    err.where, err.where[0] ? ": " : "", err.msg);
    total->lines += st.lines;
    total->written += st.written;
    total->bytes += (long)len;
    pg->base += st.written;
    return rc;
}

int cmd_load(int argc, char **argv)
{
    const char *data = NULL;
    size_t batch = 5000; /* big batches: random ids touch each index page once per batch */
    store_opts so = {.sync = STORE_SYNC_FULL};
    const char **files = calloc((size_t)argc, sizeof *files);
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--sync") && i + 1 < argc)
            so.sync = !strcmp(argv[++i], "normal") ? STORE_SYNC_NORMAL : STORE_SYNC_FULL;
        else files[nf++] = argv[i];
    }
    if (!data || !nf) {
        fprintf(stderr, "usage: fhirlake load FILE... --data DIR [--batch N] [--sync full|normal]\n");
        free(files);
        return 2;
    }
    mkdir(data, 0755);
    fl_err err;
    fl_err_clear(&err);
    store *s = store_open(data, &so, &err);
    if (!s) {
        fprintf(stderr, "fhirlake: %s\n", err.msg);
        free(files);
        return 1;
    }
    progress pg = {isatty(2), fl_mono_micros(), 0};
    http_load_stats total = {0};
    int failed = 0;
    for (int i = 0; i < nf; i++) failed += load_file(s, files[i], batch, &pg, &total) != 0;
    store_close(s);
    double secs = (double)(fl_mono_micros() - pg.t0) / 1e6;
    if (pg.tty) fprintf(stderr, "\r%60s\r", "");
    printf("loaded %ld resources from %d file(s) in %.2f s (%.0f resources/s, %.1f MB/s)%s\n",
           total.written, nf, secs, secs > 0 ? total.written / secs : 0.0,
           secs > 0 ? total.bytes / secs / 1e6 : 0.0, failed ? "; some files failed" : "");
    free(files);
    return failed ? 1 : 0;
}
