/* subs_bench.c: open-loop write load against `fhirlake serve` with a data-lakehouse
 * destination active, measuring the latency from each write's acknowledgement to its
 * visibility in the Delta table.
 *
 *   subs_bench --port P --rate R --secs S [--conns C] [--table DIR] [--ids N]
 *
 * C sender threads share a fixed schedule (request i is due at t0 + i/R; a late sender
 * sends at once, so a slow server shows up as latency, not as a lower offered rate). Half
 * the requests POST a new Patient, half PUT one of N ids (create-then-update). Each ack's
 * meta.lastUpdated is the commit ts t of the write.
 * A watcher thread polls the table's _delta_log for the next commit file every 2 ms; the
 * commit's add actions carry per-file stats whose maxValues.ts bounds the commit ts of the
 * rows in it (batches are delivered in commit order), so a write is visible at the first
 * commit whose max ts >= t. Without --table only the write side is measured (the peer).
 * Prints: offered/achieved rate, ack latency p50/p99, visibility latency p50/p99, and the
 * visibility p50 of the first and last third (flat lag = last third not growing). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json/json.h"
#include "util/util.h"

typedef struct sample {
    int64_t due, ack, ts;   /* wall-clock micros; ts = commit ts of the write */
    int64_t vis;            /* when a commit covering ts appeared; 0 = not seen */
} sample;

static int port;
static double rate;
static int secs, conns = 8, n_ids = 5000;
static const char *table;
static sample *samples;
static long n_total;
static atomic_long next_req;
static atomic_long errors;
static int64_t t0;

/* commits seen by the watcher: appearance time and max ts */
typedef struct commit_seen {
    int64_t at, max_ts;
} commit_seen;
static commit_seen *commits;
static size_t n_commits, cap_commits;
static pthread_mutex_t commits_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool watching = true;

static int64_t now_us(void) { return fl_now_micros(); }

static void sleep_until(int64_t t)
{
    int64_t d = t - now_us();
    if (d <= 0) return;
    struct timespec ts = {d / 1000000, (d % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Sends one request and reads the whole response into rb. Returns the status or -1. */
static int roundtrip(int fd, const char *req, size_t n, buf *rb)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    buf_reset(rb);
    size_t body_at = 0, clen = 0;
    for (;;) {
        buf_reserve(rb, 4096);
        ssize_t r = recv(fd, rb->p + rb->len, 4096, 0);
        if (r <= 0) return -1;
        rb->len += (size_t)r;
        rb->p[rb->len] = 0;
        if (!body_at) {
            char *e = strstr(rb->p, "\r\n\r\n");
            if (!e) continue;
            body_at = (size_t)(e - rb->p) + 4;
            char *cl = strcasestr(rb->p, "content-length:");
            clen = cl ? strtoul(cl + 15, NULL, 10) : 0;
        }
        if (rb->len >= body_at + clen) break;
    }
    return atoi(rb->p + 9);
}

static int64_t last_updated(const char *body)
{
    const char *p = strstr(body, "\"lastUpdated\":\"");
    if (!p) return 0;
    p += 15;
    const char *e = strchr(p, '"');
    int64_t t = 0;
    return e && fl_time_parse(p, (size_t)(e - p), &t) == 0 ? t : 0;
}

static void *sender(void *arg)
{
    (void)arg;
    int fd = dial();
    buf req = BUF_INIT, body = BUF_INIT, rb = BUF_INIT;
    for (;;) {
        long i = atomic_fetch_add(&next_req, 1);
        if (i >= n_total) break;
        sample *s = &samples[i];
        s->due = t0 + (int64_t)((double)i * 1e6 / rate);
        sleep_until(s->due);
        buf_reset(&body);
        buf_printf(&body, "{\"resourceType\":\"Patient\",%s\"gender\":\"%s\",\"birthDate\":"
                          "\"1990-01-15\",\"name\":[{\"family\":\"F%ld\",\"given\":[\"G\"]}]}",
                   "", i % 3 ? "male" : "female", i);
        buf_reset(&req);
        if (i % 2) {
            char id[32];
            snprintf(id, sizeof id, "b%ld", (i / 2) % n_ids);
            buf_reset(&body);
            buf_printf(&body, "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"gender\":\"male\","
                              "\"name\":[{\"family\":\"F%ld\"}]}", id, i);
            buf_printf(&req, "PUT /fhir/Patient/%s HTTP/1.1\r\n", id);
        } else {
            buf_puts(&req, "POST /fhir/Patient HTTP/1.1\r\n");
        }
        buf_printf(&req, "Host: x\r\nContent-Type: application/fhir+json\r\nContent-Length: %zu"
                         "\r\n\r\n", body.len);
        buf_put(&req, body.p, body.len);
        int st = fd >= 0 ? roundtrip(fd, req.p, req.len, &rb) : -1;
        if (st < 0) { /* reconnect once */
            if (fd >= 0) close(fd);
            fd = dial();
            st = fd >= 0 ? roundtrip(fd, req.p, req.len, &rb) : -1;
        }
        s->ack = now_us();
        if (st != 200 && st != 201) {
            atomic_fetch_add(&errors, 1);
            continue;
        }
        char *b = strstr(rb.p, "\r\n\r\n");
        s->ts = b ? last_updated(b) : 0;
    }
    if (fd >= 0) close(fd);
    buf_free(&req);
    buf_free(&body);
    buf_free(&rb);
    return NULL;
}

/* Max of maxValues.ts over the add actions of one commit file (0 if none). */
static int64_t commit_max_ts(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    int64_t best = 0;
    arena *a = arena_new(0);
    while (getline(&line, &cap, f) > 0) {
        fl_err e;
        json_val *v = json_parse(a, line, strlen(line), NULL, &e);
        json_val *add = v ? json_get(v, "add") : NULL;
        const char *stats = add ? json_get_str(add, "stats") : NULL;
        json_val *sv = stats ? json_parse(a, stats, strlen(stats), NULL, &e) : NULL;
        const char *mx = sv ? json_get_str(json_get(sv, "maxValues"), "ts") : NULL;
        int64_t t;
        if (mx && fl_time_parse(mx, strlen(mx), &t) == 0 && t > best) best = t;
        arena_reset(a);
    }
    arena_free(a);
    free(line);
    fclose(f);
    return best;
}

static void *watcher(void *arg)
{
    (void)arg;
    long v = 0;
    char path[1024];
    /* start after the commits already present (initial export) */
    for (;; v++) {
        snprintf(path, sizeof path, "%s/_delta_log/%020ld.json", table, v);
        struct stat st;
        if (stat(path, &st)) break;
    }
    while (watching) {
        snprintf(path, sizeof path, "%s/_delta_log/%020ld.json", table, v);
        struct stat st;
        if (stat(path, &st)) {
            usleep(2000);
            continue;
        }
        int64_t at = now_us();
        int64_t mx = commit_max_ts(path);
        pthread_mutex_lock(&commits_mu);
        if (n_commits == cap_commits) {
            cap_commits = cap_commits ? cap_commits * 2 : 256;
            commits = realloc(commits, cap_commits * sizeof *commits);
        }
        commits[n_commits++] = (commit_seen){at, mx};
        pthread_mutex_unlock(&commits_mu);
        v++;
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double p)
{
    if (!n) return -1;
    qsort(v, n, sizeof *v, cmp64);
    size_t k = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[k] / 1000.0;
}

/* Latest write ts covered so far. */
static int64_t covered(void)
{
    int64_t m = 0;
    pthread_mutex_lock(&commits_mu);
    for (size_t i = 0; i < n_commits; i++)
        if (commits[i].max_ts > m) m = commits[i].max_ts;
    pthread_mutex_unlock(&commits_mu);
    return m;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--secs")) secs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--conns")) conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--table")) table = argv[i + 1];
        else if (!strcmp(argv[i], "--ids")) n_ids = atoi(argv[i + 1]);
    }
    if (!port || rate <= 0 || secs <= 0) {
        fprintf(stderr, "usage: subs_bench --port P --rate R --secs S [--conns C] [--table DIR]\n");
        return 2;
    }
    n_total = (long)(rate * secs);
    samples = calloc((size_t)n_total, sizeof *samples);
    pthread_t wt, st[64];
    if (table) pthread_create(&wt, NULL, watcher, NULL);
    t0 = now_us() + 100000;
    if (conns > 64) conns = 64;
    for (int i = 0; i < conns; i++) pthread_create(&st[i], NULL, sender, NULL);
    for (int i = 0; i < conns; i++) pthread_join(st[i], NULL);
    int64_t end = now_us();
    int64_t max_ts = 0;
    for (long i = 0; i < n_total; i++)
        if (samples[i].ts > max_ts) max_ts = samples[i].ts;
    if (table) { /* wait (bounded) for the table to catch up */
        int64_t limit = now_us() + 60 * 1000000LL;
        while (covered() < max_ts && now_us() < limit) usleep(5000);
        watching = false;
        pthread_join(wt, NULL);
    }
    int64_t *ack = malloc((size_t)n_total * sizeof *ack), *vis = malloc((size_t)n_total * sizeof *vis);
    int64_t *first = malloc((size_t)n_total * sizeof *first), *last = malloc((size_t)n_total * sizeof *last);
    size_t na = 0, nv = 0, nf = 0, nl = 0, unseen = 0;
    for (long i = 0; i < n_total; i++) {
        sample *s = &samples[i];
        if (!s->ts) continue;
        ack[na++] = s->ack - s->due;
        if (!table) continue;
        for (size_t k = 0; k < n_commits; k++)
            if (commits[k].max_ts >= s->ts) {
                s->vis = commits[k].at;
                break;
            }
        if (!s->vis) {
            unseen++;
            continue;
        }
        int64_t l = s->vis > s->ack ? s->vis - s->ack : 0;
        vis[nv++] = l;
        if (i < n_total / 3) first[nf++] = l;
        else if (i >= 2 * n_total / 3) last[nl++] = l;
    }
    double secs_run = (double)(end - t0) / 1e6;
    printf("offered %.0f writes/s for %d s: %zu acked (%.0f/s), %ld errors\n", rate, secs, na,
           (double)na / secs_run, (long)errors);
    printf("ack latency ms: p50 %.1f p99 %.1f\n", pct(ack, na, 0.5), pct(ack, na, 0.99));
    if (table) {
        printf("visibility ms (ack -> Delta commit): p50 %.1f p99 %.1f max %.1f; "
               "first third p50 %.1f, last third p50 %.1f; %zu commits; %zu never seen\n",
               pct(vis, nv, 0.5), pct(vis, nv, 0.99), pct(vis, nv, 1.0), pct(first, nf, 0.5),
               pct(last, nl, 0.5), n_commits, unseen);
    }
    free(ack);
    free(vis);
    free(first);
    free(last);
    free(samples);
    free(commits);
    return 0;
}
