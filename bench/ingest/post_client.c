/* post_client.c: the ingest benchmark's load generator (bench/ingest/run.sh).
 *
 *   post_client http HOST PORT NDJSON THREADS TOTAL
 *       THREADS keep-alive HTTP/1.1 connections (raw sockets, one thread each) POST
 *       TOTAL resources taken round-robin from NDJSON to /fhir/<resourceType>; prints
 *       "N ok, E errors, S s, R resources/s".
 *   post_client sqlite DBFILE NDJSON THREADS TOTAL
 *       the peer: the same threads insert the same resources straight into a plain
 *       SQLite table (WAL, synchronous=FULL), one transaction per resource — what a
 *       durable one-commit-per-request store costs without any HTTP or FHIR work.
 * Written for the benchmark only; not part of fhirlake. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

typedef struct line { const char *p; size_t n; char type[64]; } line;
static line *lines;
static size_t n_lines;
static const char *host, *dbfile;
static int port, threads;
static long total;

typedef struct worker { int k; long ok, err; } worker;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void load_lines(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb)) { perror(path); exit(1); }
    const char *t = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    size_t len = (size_t)sb.st_size, cap = 1024;
    lines = malloc(cap * sizeof *lines);
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(t + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - t) : len;
        if (e > i) {
            if (n_lines == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
            line *l = &lines[n_lines++];
            l->p = t + i;
            l->n = e - i;
            const char *rt = memmem(l->p, l->n, "\"resourceType\":\"", 16);
            size_t k = 0;
            if (rt) for (rt += 16; k < 63 && rt[k] != '"'; k++) l->type[k] = rt[k];
            l->type[k] = 0;
        }
        i = e + 1;
    }
}

static int connect_to(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) { perror("connect"); exit(1); }
    return fd;
}

/* Reads one response; returns its status or -1. */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    char *hdr_end = NULL;
    while (!hdr_end) {
        ssize_t r = read(fd, buf + have, cap - 1 - have);
        if (r <= 0) return -1;
        have += (size_t)r;
        buf[have] = 0;
        hdr_end = strstr(buf, "\r\n\r\n");
    }
    int status = atoi(buf + 9);
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t body = cl ? (size_t)atol(cl + 15) : 0;
    size_t got = have - (size_t)(hdr_end + 4 - buf);
    while (got < body) {
        ssize_t r = read(fd, buf, cap - 1);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return status;
}

static void *http_worker(void *arg)
{
    worker *w = arg;
    int fd = connect_to();
    char *resp = malloc(1 << 20), head[256];
    for (long j = w->k; j < total; j += threads) {
        line *l = &lines[(size_t)j % n_lines];
        int hn = snprintf(head, sizeof head,
                          "POST /fhir/%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: "
                          "application/fhir+json\r\nContent-Length: %zu\r\n\r\n",
                          l->type, host, port, l->n);
        struct iovec iov[2] = {{head, (size_t)hn}, {(void *)l->p, l->n}};
        if (writev(fd, iov, 2) != (ssize_t)(hn + l->n) || read_response(fd, resp, 1 << 20) != 201)
            w->err++;
        else w->ok++;
    }
    close(fd);
    free(resp);
    return NULL;
}

static void *sqlite_worker(void *arg)
{
    worker *w = arg;
    sqlite3 *db;
    sqlite3_open(dbfile, &db);
    sqlite3_busy_timeout(db, 60000);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", 0, 0, 0);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT INTO res(rtype, id, body) VALUES(?1, ?2, ?3)", -1, &st, 0);
    char id[32];
    for (long j = w->k; j < total; j += threads) {
        line *l = &lines[(size_t)j % n_lines];
        snprintf(id, sizeof id, "r%ld", j);
        sqlite3_bind_text(st, 1, l->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, l->p, (int)l->n, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_DONE) w->ok++;
        else w->err++;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: post_client http HOST PORT NDJSON THREADS TOTAL\n"
                        "       post_client sqlite DBFILE NDJSON THREADS TOTAL\n");
        return 2;
    }
    int is_http = !strcmp(argv[1], "http");
    int a = 2;
    if (is_http) { host = argv[a++]; port = atoi(argv[a++]); }
    else dbfile = argv[a++];
    load_lines(argv[a++]);
    threads = atoi(argv[a++]);
    total = atol(argv[a]);
    if (!is_http) {
        sqlite3 *db;
        sqlite3_open(dbfile, &db);
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS res(rtype TEXT, "
                         "id TEXT, body TEXT, PRIMARY KEY(rtype, id))", 0, 0, 0);
        sqlite3_close(db);
    }
    pthread_t th[256];
    worker w[256];
    double t0 = now();
    for (int k = 0; k < threads && k < 256; k++) {
        w[k] = (worker){.k = k};
        pthread_create(&th[k], NULL, is_http ? http_worker : sqlite_worker, &w[k]);
    }
    long ok = 0, err = 0;
    for (int k = 0; k < threads && k < 256; k++) {
        pthread_join(th[k], NULL);
        ok += w[k].ok;
        err += w[k].err;
    }
    double s = now() - t0;
    printf("%ld ok, %ld errors, %.2f s, %.0f resources/s\n", ok, err, s, ok / s);
    return err ? 1 : 0;
}
