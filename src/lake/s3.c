/* s3.c: the S3 backend of the object store (see s3.h). Owns: URL and key encoding, one
 * signed request with retries (libcurl + CURLOPT_AWS_SIGV4), conditional PUT, multipart
 * upload, ListObjectsV2 parsing, the local spool directory. */
#include "s3.h"

#include <curl/curl.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ATTEMPTS 6
#define PART_BYTES ((size_t)16 << 20)

struct s3store {
    char *bucket;
    char *prefix;        /* "" or "dir/sub/" (always ends with '/') */
    char *base;          /* "https://bucket.s3.region.amazonaws.com/" or "endpoint/bucket/" */
    char *sigv4;         /* "aws:amz:<region>:s3" */
    char *userpwd;       /* "akid:secret" — never logged */
    char *token_hdr;     /* "x-amz-security-token: ..." or NULL */
    char *spool;
};

/* One request and what came back. */
typedef struct s3_req {
    const char *method;
    const char *key;          /* relative to prefix; NULL = the bucket itself */
    const char *query;        /* already canonical: sorted, encoded, "a=b&c=" */
    const void *body;
    size_t body_len;
    FILE *body_file;          /* instead of body: upload body_len bytes from here */
    long body_file_off;
    const char *hdr;          /* one extra header or NULL */
    buf *resp;                /* response body (may be NULL) */
    FILE *resp_file;          /* instead of resp */
    long status;
    char etag[128];
    int64_t length;
    int64_t mtime_ms;
    size_t sent;
    int attempts;             /* how many times it was sent */
} s3_req;

/* ---- settings registered per URL prefix (s3_register) ---- */
typedef struct reg_entry {
    struct reg_entry *next;
    char *prefix;
    char *f[5];   /* endpoint, region, access key id, secret, session token */
    s3_config cfg;
} reg_entry;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static reg_entry *reg_head;

static char *dup_or_null(const char *s)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static void wipe_free(char *s)
{
    if (s) explicit_bzero(s, strlen(s));
    free(s);
}

void s3_register(const char *url_prefix, const s3_config *cfg)
{
    pthread_mutex_lock(&reg_mu);
    reg_entry *e = reg_head;
    while (e && strcmp(e->prefix, url_prefix)) e = e->next;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) abort();
        e->prefix = dup_or_null(url_prefix);
        e->next = reg_head;
        reg_head = e;
    }
    for (int i = 0; i < 5; i++) wipe_free(e->f[i]);
    e->f[0] = dup_or_null(cfg->endpoint);
    e->f[1] = dup_or_null(cfg->region);
    e->f[2] = dup_or_null(cfg->access_key_id);
    e->f[3] = dup_or_null(cfg->secret_access_key);
    e->f[4] = dup_or_null(cfg->session_token);
    e->cfg = (s3_config){e->f[0], e->f[1], e->f[2], e->f[3], e->f[4]};
    pthread_mutex_unlock(&reg_mu);
}

/* Copies the registered settings for url into *out (strings dup'd into f). */
static bool registered(const char *url, s3_config *out, char *f[5])
{
    pthread_mutex_lock(&reg_mu);
    reg_entry *best = NULL;
    for (reg_entry *e = reg_head; e; e = e->next)
        if (!strncmp(url, e->prefix, strlen(e->prefix)) &&
            (!best || strlen(e->prefix) > strlen(best->prefix)))
            best = e;
    if (best) {
        for (int i = 0; i < 5; i++) f[i] = dup_or_null(best->f[i]);
        *out = (s3_config){f[0], f[1], f[2], f[3], f[4]};
    }
    pthread_mutex_unlock(&reg_mu);
    return best != NULL;
}

/* One connection cache (and DNS / TLS session cache) shared by every request of the
 * process: each request uses its own easy handle, but reuses a kept-alive connection
 * instead of a new TCP + TLS handshake per object. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLSH *share;
static pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
    (void)h, (void)a, (void)u;
    pthread_mutex_lock(&share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
    (void)h, (void)u;
    pthread_mutex_unlock(&share_mu[d]);
}

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&share_mu[i], NULL);
    share = curl_share_init();
    if (!share) return;   /* requests then simply do not share connections */
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
}

static const char *pick(const char *a, const char *env1, const char *env2)
{
    if (a && *a) return a;
    const char *v = env1 ? getenv(env1) : NULL;
    if (v && *v) return v;
    v = env2 ? getenv(env2) : NULL;
    return v && *v ? v : NULL;
}

/* Makes b a valid C string even when nothing was ever written to it. */
static void terminate(buf *b)
{
    buf_reserve(b, 1);
    b->p[b->len] = 0;
}

/* ---- encoding ---- */
void s3_uri_encode(buf *out, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/'))
            buf_putc(out, (char)c);
        else {
            buf_putc(out, '%');
            buf_putc(out, hex[c >> 4]);
            buf_putc(out, hex[c & 15]);
        }
    }
    terminate(out);
}

int s3_parse_url(const char *url, char **bucket, char **prefix, fl_err *err)
{
    if (strncmp(url, "s3://", 5) != 0) {
        fl_err_set(err, 400, url, "not an s3:// URL");
        return -1;
    }
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t bn = slash ? (size_t)(slash - b) : strlen(b);
    if (bn < 3 || bn > 63 || strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") < bn) {
        fl_err_set(err, 400, url, "bad S3 bucket name (3-63 lowercase letters, digits, '.', '-')");
        return -1;
    }
    *bucket = strndup(b, bn);
    buf p = BUF_INIT;
    for (const char *seg = slash ? slash + 1 : ""; *seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n) {
            buf_put(&p, seg, n);
            buf_putc(&p, '/');
        }
        seg = end ? end + 1 : seg + n;
    }
    terminate(&p);
    *prefix = buf_detach(&p);
    if (!*bucket) abort();
    return 0;
}

/* ---- spool ---- */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    remove(path);
    return 0;
}

static s3store *open_with(const char *url, const s3_config *cfg, fl_err *err);

s3store *s3_open(const char *url, const s3_config *cfg, fl_err *err)
{
    if (cfg) return open_with(url, cfg, err);
    s3_config reg = {0};
    char *f[5] = {0};
    registered(url, &reg, f);
    s3store *s = open_with(url, &reg, err);
    for (int i = 0; i < 5; i++) wipe_free(f[i]);
    return s;
}

static s3store *open_with(const char *url, const s3_config *cfg, fl_err *err)
{
    pthread_once(&curl_once, curl_init_once);
    char *bucket, *prefix;
    if (s3_parse_url(url, &bucket, &prefix, err) != 0) return NULL;
    const char *akid = pick(cfg->access_key_id, "AWS_ACCESS_KEY_ID", NULL);
    const char *secret = pick(cfg->secret_access_key, "AWS_SECRET_ACCESS_KEY", NULL);
    if (!akid || !secret) {
        fl_err_set(err, 400, url, "no S3 credentials: set AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY (or awsAccessKeyId/awsSecretAccessKey "
                                  "secret references)");
        free(bucket);
        free(prefix);
        return NULL;
    }
    s3store *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->bucket = bucket;
    s->prefix = prefix;
    const char *region = pick(cfg->region, "AWS_REGION", "AWS_DEFAULT_REGION");
    if (!region) region = "us-east-1";
    const char *endpoint = pick(cfg->endpoint, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
    buf b = BUF_INIT;
    if (endpoint) {   /* path style: MinIO and other S3-compatible servers */
        buf_puts(&b, endpoint);
        while (b.len && b.p[b.len - 1] == '/') b.p[--b.len] = 0;
        buf_printf(&b, "/%s/", bucket);
    } else
        buf_printf(&b, "https://%s.s3.%s.amazonaws.com/", bucket, region);
    s->base = buf_detach(&b);
    buf_printf(&b, "aws:amz:%s:s3", region);
    s->sigv4 = buf_detach(&b);
    buf_printf(&b, "%s:%s", akid, secret);
    s->userpwd = buf_detach(&b);
    const char *tok = pick(cfg->session_token, "AWS_SESSION_TOKEN", NULL);
    if (tok) {
        buf_printf(&b, "x-amz-security-token: %s", tok);
        s->token_hdr = buf_detach(&b);
    }
    const char *tmp = getenv("TMPDIR");
    buf_printf(&b, "%s/fhirlake-s3-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    s->spool = buf_detach(&b);
    if (!mkdtemp(s->spool)) {
        fl_err_set(err, 500, url, "cannot create spool directory: %s", strerror(errno));
        s3_close(s);
        return NULL;
    }
    return s;
}

void s3_close(s3store *s)
{
    if (!s) return;
    if (s->spool && access(s->spool, F_OK) == 0)
        nftw(s->spool, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (s->userpwd) explicit_bzero(s->userpwd, strlen(s->userpwd));
    free(s->bucket);
    free(s->prefix);
    free(s->base);
    free(s->sigv4);
    free(s->userpwd);
    free(s->token_hdr);
    free(s->spool);
    free(s);
}

const char *s3_spool_dir(const s3store *s) { return s->spool; }

/* ---- one request ---- */
static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    s3_req *r = ud;
    if (r->resp_file) return fwrite(p, 1, sz * n, r->resp_file);
    if (r->resp) buf_put(r->resp, p, sz * n);
    return sz * n;
}

static size_t on_read(char *p, size_t sz, size_t n, void *ud)
{
    s3_req *r = ud;
    size_t want = sz * n, left = r->body_len - r->sent;
    if (want > left) want = left;
    if (r->body_file) want = fread(p, 1, want, r->body_file);
    else memcpy(p, (const char *)r->body + r->sent, want);
    r->sent += want;
    return want;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    s3_req *r = ud;
    size_t len = sz * n;
    if (len > 5 && !strncasecmp(p, "ETag:", 5)) {
        const char *v = p + 5;
        while (*v == ' ') v++;
        size_t vn = (size_t)(p + len - v);
        while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n')) vn--;
        if (vn < sizeof r->etag) {
            memcpy(r->etag, v, vn);
            r->etag[vn] = 0;
        }
    } else if (len > 15 && !strncasecmp(p, "Content-Length:", 15)) {
        r->length = strtoll(p + 15, NULL, 10);
    } else if (len > 14 && !strncasecmp(p, "Last-Modified:", 14)) {
        char v[96];
        size_t vn = len - 14 < sizeof v - 1 ? len - 14 : sizeof v - 1;
        memcpy(v, p + 14, vn);
        v[vn] = 0;
        time_t t = curl_getdate(v, NULL);
        if (t > 0) r->mtime_ms = (int64_t)t * 1000;
    }
    return len;
}

static char *request_url(const s3store *s, const s3_req *r)
{
    buf u = BUF_INIT;
    buf_puts(&u, s->base);
    if (r->key) {
        buf k = BUF_INIT;
        buf_printf(&k, "%s%s", s->prefix, r->key);
        s3_uri_encode(&u, k.p, true);
        buf_free(&k);
    }
    if (r->query) buf_printf(&u, "?%s", r->query);
    return buf_detach(&u);
}

static bool retryable(CURLcode cc, long status)
{
    if (cc != CURLE_OK) return cc != CURLE_WRITE_ERROR && cc != CURLE_READ_ERROR;
    return status >= 500 || status == 429;
}

static CURLcode perform_once(s3store *s, s3_req *r, const char *url)
{
    CURL *c = curl_easy_init();
    if (!c) return CURLE_FAILED_INIT;
    struct curl_slist *h = NULL;
    /* curl signs with this header's value as the payload hash: streaming bodies cannot be
     * hashed up front, and TLS already protects the payload. */
    h = curl_slist_append(h, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    /* no "Expect:" here to turn off 100-continue: curl 7.88 signs that empty header but does
     * not send it, so S3 would reject the signature (test_s3_sigv4.py caught it) */
    if (s->token_hdr) h = curl_slist_append(h, s->token_hdr);
    if (r->hdr) h = curl_slist_append(h, r->hdr);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (share) curl_easy_setopt(c, CURLOPT_SHARE, share);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(c, CURLOPT_USERPWD, s->userpwd);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    bool has_body = r->body || r->body_file;
    if (!strcmp(r->method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (!strcmp(r->method, "PUT") || (has_body && !strcmp(r->method, "POST"))) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, r);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        if (strcmp(r->method, "PUT")) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (!strcmp(r->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (strcmp(r->method, "GET"))
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return cc;
}

/* Pulls "<Code>X</Code><Message>Y</Message>" out of an S3 error body. */
static void s3_error_text(const buf *b, char *out, size_t n)
{
    out[0] = 0;
    if (!b || !b->p) return;
    const char *c = strstr(b->p, "<Code>"), *m = strstr(b->p, "<Message>");
    const char *ce = c ? strstr(c, "</Code>") : NULL, *me = m ? strstr(m, "</Message>") : NULL;
    if (c && ce && m && me)
        snprintf(out, n, ": %.*s: %.*s", (int)(ce - c - 6), c + 6, (int)(me - m - 9), m + 9);
    else if (c && ce)
        snprintf(out, n, ": %.*s", (int)(ce - c - 6), c + 6);
}

/* Runs r with retries. Returns 0 once an HTTP answer that is not retryable arrived (the
 * caller looks at r->status), -1 with err after the last failed attempt. */
static int perform(s3store *s, s3_req *r, fl_err *err)
{
    char *url = request_url(s, r);
    long delay_ms = 100;
    CURLcode cc = CURLE_OK;
    long resp_off = r->resp_file ? ftell(r->resp_file) : 0;
    for (int attempt = 1;; attempt++) {
        r->sent = 0;
        r->etag[0] = 0;
        r->length = -1;
        r->status = 0;
        if (r->resp) buf_reset(r->resp);
        if (r->resp_file) {
            fflush(r->resp_file);
            if (ftruncate(fileno(r->resp_file), resp_off) == 0) fseek(r->resp_file, resp_off, SEEK_SET);
        }
        if (r->body_file) fseek(r->body_file, r->body_file_off, SEEK_SET);
        cc = perform_once(s, r, url);
        r->attempts = attempt;
        if (!retryable(cc, r->status) || attempt == MAX_ATTEMPTS) break;
        fl_log(FL_LOG_WARN, "s3: %s %s: %s (attempt %d), retrying", r->method,
               r->key ? r->key : "/", cc ? curl_easy_strerror(cc) : "server error", attempt);
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (delay_ms < 5000) delay_ms *= 2;
    }
    free(url);
    const char *where = r->key ? r->key : s->bucket;
    if (cc != CURLE_OK) {
        fl_err_set(err, 502, where, "S3 %s failed: %s", r->method, curl_easy_strerror(cc));
        return -1;
    }
    if (r->status >= 500 || r->status == 429) {
        char t[256];
        s3_error_text(r->resp, t, sizeof t);
        fl_err_set(err, 502, where, "S3 %s: HTTP %ld%s", r->method, r->status, t);
        return -1;
    }
    return 0;
}

/* Turns an unexpected status into err. */
static int fail_status(s3store *s, s3_req *r, fl_err *err)
{
    char t[256];
    s3_error_text(r->resp, t, sizeof t);
    int st = r->status == 403 || r->status == 401 ? 403 : r->status == 404 ? 404 : 502;
    fl_err_set(err, st, r->key ? r->key : s->bucket, "S3 %s s3://%s/%s%s: HTTP %ld%s",
               r->method, s->bucket, s->prefix, r->key ? r->key : "", r->status, t);
    return -1;
}

/* ---- object operations ---- */
int s3_get(s3store *s, const char *key, buf *out, fl_err *err)
{
    s3_req r = {.method = "GET", .key = key, .resp = out};
    if (perform(s, &r, err) != 0) return -1;
    if (r.status == 404) {
        fl_err_set(err, 404, key, "object not found");
        buf_reset(out);
        return OBJSTORE_NOT_FOUND;
    }
    if (r.status != 200) return fail_status(s, &r, err);
    terminate(out);
    return 0;
}

int s3_put(s3store *s, const char *key, const void *p, size_t n, bool if_absent, fl_err *err)
{
    buf resp = BUF_INIT;
    s3_req r = {.method = "PUT", .key = key, .body = p ? p : "", .body_len = n, .resp = &resp,
                .hdr = if_absent ? "If-None-Match: *" : NULL};
    int rc = perform(s, &r, err);
    if (rc == 0 && if_absent && (r.status == 412 || r.status == 409)) {
        rc = OBJSTORE_EXISTS;
        /* after a lost answer our own first attempt may be what exists: same bytes = ours */
        if (r.attempts > 1 && s3_get(s, key, &resp, &(fl_err){0}) == 0 && resp.len == n &&
            (n == 0 || !memcmp(resp.p, p, n)))
            rc = 0;
    } else if (rc == 0 && r.status != 200) rc = fail_status(s, &r, err);
    buf_free(&resp);
    return rc;
}

int s3_delete(s3store *s, const char *key, fl_err *err)
{
    buf resp = BUF_INIT;
    s3_req r = {.method = "DELETE", .key = key, .resp = &resp};
    int rc = perform(s, &r, err);
    if (rc == 0 && r.status != 204 && r.status != 200 && r.status != 404)
        rc = fail_status(s, &r, err);
    buf_free(&resp);
    return rc;
}

int s3_stat(s3store *s, const char *key, objstore_entry *out, fl_err *err)
{
    s3_req r = {.method = "HEAD", .key = key};
    if (perform(s, &r, err) != 0) return -1;
    if (r.status == 404) return OBJSTORE_NOT_FOUND;
    if (r.status != 200) return fail_status(s, &r, err);
    out->key = NULL;
    out->size = r.length;
    out->mtime_ms = r.mtime_ms;
    return 0;
}

/* ---- listing ---- */
static char *xml_unescape(const char *p, size_t n)
{
    static const struct { const char *e; char c; } ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    buf b = BUF_INIT;
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        if (p[i] == '&')
            for (; k < sizeof ents / sizeof ents[0]; k++)
                if (!strncmp(p + i, ents[k].e, strlen(ents[k].e))) break;
        if (p[i] == '&' && k < sizeof ents / sizeof ents[0]) {
            buf_putc(&b, ents[k].c);
            i += strlen(ents[k].e);
        } else buf_putc(&b, p[i++]);
    }
    terminate(&b);
    return buf_detach(&b);
}

/* The text of the first <tag> inside [p, end), or NULL; *len gets its length. */
static const char *xml_find(const char *p, const char *end, const char *tag, size_t *len)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = memmem(p, (size_t)(end - p), open, strlen(open));
    if (!a) return NULL;
    a += strlen(open);
    const char *b = memmem(a, (size_t)(end - a), close, strlen(close));
    if (!b) return NULL;
    *len = (size_t)(b - a);
    return a;
}

static void push_entry(objstore_listing *out, size_t *cap, objstore_entry e)
{
    if (out->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        out->e = realloc(out->e, *cap * sizeof *out->e);
        if (!out->e) abort();
    }
    out->e[out->n++] = e;
}

/* Parses one ListObjectsV2 page; returns the continuation token (malloc'd) or NULL. */
static char *parse_page(const s3store *s, const buf *b, objstore_listing *out, size_t *cap)
{
    const char *p = b->p, *end = b->p + b->len;
    size_t plen = strlen(s->prefix), n;
    for (const char *c; (c = memmem(p, (size_t)(end - p), "<Contents>", 10));) {
        const char *ce = memmem(c, (size_t)(end - c), "</Contents>", 11);
        if (!ce) break;
        const char *k = xml_find(c, ce, "Key", &n);
        if (k) {
            char *full = xml_unescape(k, n);
            if (strlen(full) > plen && !strncmp(full, s->prefix, plen)) {
                objstore_entry e = {.key = strdup(full + plen)};
                if (!e.key) abort();
                const char *v = xml_find(c, ce, "Size", &n);
                e.size = v ? strtoll(v, NULL, 10) : 0;
                int64_t us;
                if ((v = xml_find(c, ce, "LastModified", &n)) && fl_time_parse(v, n, &us) == 0)
                    e.mtime_ms = us / 1000;
                push_entry(out, cap, e);
            }
            free(full);
        }
        p = ce + 11;
    }
    const char *t = xml_find(b->p, end, "IsTruncated", &n);
    if (!t || n != 4 || strncmp(t, "true", 4)) return NULL;
    t = xml_find(b->p, end, "NextContinuationToken", &n);
    return t ? xml_unescape(t, n) : NULL;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const objstore_entry *)a)->key, ((const objstore_entry *)b)->key);
}

int s3_list(s3store *s, const char *prefix, const char *start_after, objstore_listing *out,
            fl_err *err)
{
    out->n = 0;
    out->e = NULL;
    size_t cap = 0;
    buf body = BUF_INIT, q = BUF_INIT, tmp = BUF_INIT;
    char *token = NULL;
    int rc = 0;
    do {
        /* parameters in canonical (sorted) order: SigV4 signs the query as sent */
        buf_reset(&q);
        if (token) {
            buf_puts(&q, "continuation-token=");
            s3_uri_encode(&q, token, false);
            buf_putc(&q, '&');
        }
        buf_puts(&q, "delimiter=%2F&list-type=2&prefix=");
        buf_reset(&tmp);
        buf_printf(&tmp, "%s%s", s->prefix, prefix);
        s3_uri_encode(&q, tmp.p, false);
        if (start_after && *start_after) {
            buf_reset(&tmp);
            buf_printf(&tmp, "%s%s", s->prefix, start_after);
            buf_puts(&q, "&start-after=");
            s3_uri_encode(&q, tmp.p, false);
        }
        s3_req r = {.method = "GET", .query = q.p, .resp = &body};
        free(token);
        token = NULL;
        if (perform(s, &r, err) != 0 || (r.status != 200 && fail_status(s, &r, err))) {
            rc = -1;
            break;
        }
        token = parse_page(s, &body, out, &cap);
    } while (token);
    free(token);
    buf_free(&body);
    buf_free(&q);
    buf_free(&tmp);
    if (rc != 0) objstore_list_free(out);
    else if (out->n) qsort(out->e, out->n, sizeof *out->e, entry_cmp);
    return rc;
}

/* ---- files ---- */
static int multipart_abort(s3store *s, const char *key, const char *upload_id)
{
    buf q = BUF_INIT, resp = BUF_INIT;
    buf_puts(&q, "uploadId=");
    s3_uri_encode(&q, upload_id, false);
    s3_req r = {.method = "DELETE", .key = key, .query = q.p, .resp = &resp};
    fl_err e = {0};
    int rc = perform(s, &r, &e);
    buf_free(&q);
    buf_free(&resp);
    return rc;
}

static char *multipart_start(s3store *s, const char *key, fl_err *err)
{
    buf resp = BUF_INIT;
    s3_req r = {.method = "POST", .key = key, .query = "uploads=", .resp = &resp};
    char *id = NULL;
    size_t n;
    const char *v;
    if (perform(s, &r, err) == 0) {
        if (r.status != 200) fail_status(s, &r, err);
        else if ((v = xml_find(resp.p, resp.p + resp.len, "UploadId", &n)))
            id = xml_unescape(v, n);
        else fl_err_set(err, 502, key, "S3 multipart upload: no UploadId in the answer");
    }
    buf_free(&resp);
    return id;
}

/* Sends the file as parts and completes the upload; on any failure aborts it, so no
 * partial object ever becomes visible. */
static int upload_multipart(s3store *s, const char *key, FILE *f, int64_t size, fl_err *err)
{
    char *id = multipart_start(s, key, err);
    if (!id) return -1;
    buf done = BUF_INIT, q = BUF_INIT, resp = BUF_INIT;
    buf_puts(&done, "<CompleteMultipartUpload>");
    int rc = 0;
    int part = 1;
    for (int64_t off = 0; off < size && rc == 0; off += (int64_t)PART_BYTES, part++) {
        size_t len = size - off < (int64_t)PART_BYTES ? (size_t)(size - off) : PART_BYTES;
        buf_reset(&q);
        buf_printf(&q, "partNumber=%d&uploadId=", part);
        s3_uri_encode(&q, id, false);
        s3_req r = {.method = "PUT", .key = key, .query = q.p, .body_file = f,
                    .body_file_off = (long)off, .body_len = len, .resp = &resp};
        rc = perform(s, &r, err);
        if (rc == 0 && (r.status != 200 || !r.etag[0])) rc = fail_status(s, &r, err);
        if (rc == 0)
            buf_printf(&done, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", part,
                       r.etag);
    }
    buf_puts(&done, "</CompleteMultipartUpload>");
    if (rc == 0) {
        buf_reset(&q);
        buf_puts(&q, "uploadId=");
        s3_uri_encode(&q, id, false);
        s3_req r = {.method = "POST", .key = key, .query = q.p, .body = done.p,
                    .body_len = done.len, .resp = &resp};
        rc = perform(s, &r, err);
        /* S3 may answer 200 with an <Error> body when completion fails late */
        if (rc == 0 && (r.status != 200 || (resp.p && strstr(resp.p, "<Error>"))))
            rc = fail_status(s, &r, err);
    }
    if (rc != 0) multipart_abort(s, key, id);
    free(id);
    buf_free(&done);
    buf_free(&q);
    buf_free(&resp);
    return rc;
}

int s3_upload_file(s3store *s, const char *key, const char *path, fl_err *err)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        fl_err_set(err, 500, key, "cannot read %s: %s", path, strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    int rc;
    if (st.st_size > S3_MULTIPART_BYTES)
        rc = upload_multipart(s, key, f, st.st_size, err);
    else {
        buf resp = BUF_INIT;
        s3_req r = {.method = "PUT", .key = key, .body_file = f, .body_len = (size_t)st.st_size,
                    .resp = &resp};
        rc = perform(s, &r, err);
        if (rc == 0 && r.status != 200) rc = fail_status(s, &r, err);
        buf_free(&resp);
    }
    fclose(f);
    return rc;
}

int s3_download_file(s3store *s, const char *key, const char *path, fl_err *err)
{
    buf tmp = BUF_INIT;
    buf_printf(&tmp, "%s.part", path);
    FILE *f = fopen(tmp.p, "wb+");
    if (!f) {
        fl_err_set(err, 500, key, "cannot create %s: %s", tmp.p, strerror(errno));
        buf_free(&tmp);
        return -1;
    }
    s3_req r = {.method = "GET", .key = key, .resp_file = f};
    int rc = perform(s, &r, err);
    if (rc == 0 && r.status == 404) {
        fl_err_set(err, 404, key, "object not found");
        rc = OBJSTORE_NOT_FOUND;
    } else if (rc == 0 && r.status != 200) {
        rc = fail_status(s, &r, err);
    }
    if (fclose(f) != 0 && rc == 0) {
        fl_err_set(err, 500, key, "write %s: %s", tmp.p, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp.p, path) != 0) {
        fl_err_set(err, 500, key, "rename %s: %s", tmp.p, strerror(errno));
        rc = -1;
    }
    if (rc != 0) unlink(tmp.p);
    buf_free(&tmp);
    return rc;
}
