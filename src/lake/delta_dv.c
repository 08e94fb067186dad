/* delta_dv.c: Delta deletion vectors (PROTOCOL.md "Deletion Vectors" and "Deletion Vector
 * Format"; the roaring layout per RoaringFormatSpec). Owns the bitmap codec (positions <->
 * RoaringBitmapArray bytes), Z85, DV file naming, reading a descriptor's positions and
 * writing a DV file. Written from the specs; only array and bitmap containers are written,
 * run containers are also read (other writers use them). */
#include "delta.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define DV_MAGIC 1681511377u     /* portable format (what we write) */
#define DV_MAGIC_NATIVE 1681511376u /* older "native" format: big-endian count, sizes */
#define COOKIE_NO_RUN 12346u
#define COOKIE_RUN 12347u
#define ARRAY_MAX 4096u          /* containers above this cardinality are bitmaps */
#define BITMAP_BYTES 8192u

static const char Z85[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/* ---- little helpers for byte order ---- */
static void put_le(buf *b, uint64_t v, int bytes)
{
    char t[8];
    for (int i = 0; i < bytes; i++) t[i] = (char)(v >> (8 * i));
    buf_put(b, t, (size_t)bytes);
}

static void put_be32(buf *b, uint32_t v)
{
    char t[4] = {(char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v};
    buf_put(b, t, 4);
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set_le(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (char)(v >> (8 * i));
}

/* ---- encode ---- */
/* Number of positions from i on that share the high `shift` bits of pos[i]. */
static size_t run_of(const uint64_t *pos, size_t i, size_t n, int shift)
{
    size_t j = i;
    while (j < n && pos[j] >> shift == pos[i] >> shift) j++;
    return j - i;
}

static void put_container(buf *b, const uint64_t *pos, size_t card)
{
    if (card <= ARRAY_MAX) {
        for (size_t i = 0; i < card; i++) put_le(b, pos[i] & 0xffff, 2);
        return;
    }
    uint64_t words[BITMAP_BYTES / 8] = {0};
    for (size_t i = 0; i < card; i++) words[(pos[i] & 0xffff) >> 6] |= 1ull << (pos[i] & 63);
    for (size_t i = 0; i < BITMAP_BYTES / 8; i++) put_le(b, words[i], 8);
}

/* One 32-bit roaring bitmap (no-run cookie, with offset header) of the low 32 bits. */
static void put_bucket(buf *b, const uint64_t *pos, size_t n)
{
    size_t start = b->len, nc = 0;
    for (size_t i = 0; i < n; i += run_of(pos, i, n, 16)) nc++;
    put_le(b, COOKIE_NO_RUN, 4);
    put_le(b, nc, 4);
    for (size_t i = 0, c; i < n; i += c) {
        c = run_of(pos, i, n, 16);
        put_le(b, (pos[i] >> 16) & 0xffff, 2);
        put_le(b, c - 1, 2);
    }
    size_t offs = b->len, at = offs + 4 * nc - start;
    buf_reserve(b, 4 * nc);
    b->len += 4 * nc;
    size_t k = 0;
    for (size_t i = 0, c; i < n; i += c, k++) {
        c = run_of(pos, i, n, 16);
        set_le(b->p + offs + 4 * k, (uint32_t)at);
        at += c <= ARRAY_MAX ? 2 * c : BITMAP_BYTES;
    }
    for (size_t i = 0, c; i < n; i += c) {
        c = run_of(pos, i, n, 16);
        put_container(b, pos + i, c);
    }
}

void delta_dv_encode(const uint64_t *pos, size_t n, buf *out)
{
    put_le(out, DV_MAGIC, 4);
    size_t nb = 0;
    for (size_t i = 0; i < n; i += run_of(pos, i, n, 32)) nb++;
    put_le(out, nb, 8);
    for (size_t i = 0, c; i < n; i += c) {
        c = run_of(pos, i, n, 32);
        put_le(out, pos[i] >> 32, 4);
        put_bucket(out, pos + i, c);
    }
}

/* ---- decode ---- */
typedef struct reader {
    const unsigned char *p;
    size_t len, at;
    uint64_t *out;
    size_t n, cap;
} reader;

static bool take(reader *r, size_t k, const unsigned char **p)
{
    if (r->len - r->at < k) return false;
    *p = r->p + r->at;
    r->at += k;
    return true;
}

static void emit(reader *r, uint64_t v)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->out = realloc(r->out, r->cap * sizeof *r->out);
        if (!r->out) abort();
    }
    r->out[r->n++] = v;
}

static bool read_container(reader *r, uint64_t base, uint32_t card, bool run)
{
    const unsigned char *p;
    if (run) {
        if (!take(r, 2, &p)) return false;
        uint32_t nr = (uint32_t)get_le(p, 2);
        if (!take(r, 4 * (size_t)nr, &p)) return false;
        for (uint32_t i = 0; i < nr; i++) {
            uint32_t s = (uint32_t)get_le(p + 4 * i, 2), l = (uint32_t)get_le(p + 4 * i + 2, 2);
            if (s + l > 0xffff) return false;
            for (uint32_t v = s; v <= s + l; v++) emit(r, base | v);
        }
        return true;
    }
    if (card <= ARRAY_MAX) {
        if (!take(r, 2 * (size_t)card, &p)) return false;
        for (uint32_t i = 0; i < card; i++) emit(r, base | get_le(p + 2 * i, 2));
        return true;
    }
    if (!take(r, BITMAP_BYTES, &p)) return false;
    for (uint32_t w = 0; w < BITMAP_BYTES / 8; w++) {
        uint64_t bits = get_le(p + 8 * w, 8);
        for (int k = 0; bits && k < 64; k++, bits >>= 1)
            if (bits & 1) emit(r, base | (uint64_t)(w * 64 + (uint32_t)k));
    }
    return true;
}

/* One 32-bit roaring bitmap, its values or'ed with hi << 32. */
static bool read_bucket(reader *r, uint64_t hi)
{
    const unsigned char *p, *runs = NULL, *hdr;
    if (!take(r, 4, &p)) return false;
    uint32_t cookie = (uint32_t)get_le(p, 4), nc;
    bool has_run = (cookie & 0xffff) == COOKIE_RUN;
    if (has_run) {
        nc = (cookie >> 16) + 1;
        if (!take(r, (nc + 7) / 8, &runs)) return false;
    } else if (cookie == COOKIE_NO_RUN) {
        if (!take(r, 4, &p)) return false;
        nc = (uint32_t)get_le(p, 4);
    } else return false;
    if (nc > 65536 || !take(r, 4 * (size_t)nc, &hdr)) return false;
    if ((!has_run || nc >= 4) && !take(r, 4 * (size_t)nc, &p)) return false;  /* offsets */
    for (uint32_t i = 0; i < nc; i++) {
        uint64_t base = hi << 32 | get_le(hdr + 4 * i, 2) << 16;
        uint32_t card = (uint32_t)get_le(hdr + 4 * i + 2, 2) + 1;
        bool run = runs && (runs[i / 8] >> (i % 8) & 1);
        if (!read_container(r, base, card, run)) return false;
    }
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The native layout (PROTOCOL.md's inline example uses it): magic and bitmap count
 * big-endian, then per bitmap i (high bits i) its size big-endian and the bitmap. */
static bool read_native(reader *r)
{
    const unsigned char *h;
    if (!take(r, 4, &h)) return false;
    uint32_t nb = get_be32(h);
    for (uint32_t b = 0; b < nb; b++) {
        if (!take(r, 4, &h)) return false;
        size_t end = r->at + get_be32(h);
        if (end > r->len || !read_bucket(r, b) || r->at != end) return false;
    }
    return true;
}

int delta_dv_decode(const unsigned char *p, size_t len, uint64_t **pos, size_t *n, fl_err *err)
{
    reader r = {.p = p, .len = len};
    const unsigned char *h;
    bool ok = take(&r, 4, &h);
    if (ok && get_be32(h) == DV_MAGIC_NATIVE) ok = read_native(&r);
    else if ((ok = ok && get_le(h, 4) == DV_MAGIC && take(&r, 8, &h))) {
        uint64_t nb = get_le(h, 8);
        for (uint64_t b = 0; ok && b < nb; b++) {
            const unsigned char *k;
            ok = take(&r, 4, &k) && read_bucket(&r, get_le(k, 4));
        }
    }
    if (!ok) {
        free(r.out);
        fl_err_set(err, 422, "deletionVector", "malformed deletion vector bitmap");
        return -1;
    }
    if (r.n) qsort(r.out, r.n, sizeof *r.out, cmp_u64);  /* buckets may come unsorted */
    *pos = r.out;
    *n = r.n;
    return 0;
}

/* ---- Z85 ---- */
void delta_z85_encode(const unsigned char *in, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        uint32_t v = get_be32(in + i);
        for (int d = 4; d >= 0; d--) {
            out[k + (size_t)d] = Z85[v % 85];
            v /= 85;
        }
        k += 5;
    }
    out[k] = 0;
}

int delta_z85_decode(const char *in, size_t n, unsigned char *out)
{
    for (size_t i = 0; i + 5 <= n; i += 5) {
        uint64_t v = 0;
        for (size_t d = 0; d < 5; d++) {
            const char *c = in[i + d] ? strchr(Z85, in[i + d]) : NULL;
            if (!c) return -1;
            v = v * 85 + (uint64_t)(c - Z85);
        }
        if (v > 0xffffffffull) return -1;
        unsigned char *o = out + i / 5 * 4;
        o[0] = (unsigned char)(v >> 24), o[1] = (unsigned char)(v >> 16);
        o[2] = (unsigned char)(v >> 8), o[3] = (unsigned char)v;
    }
    return 0;
}

/* ---- DV files ---- */
char *delta_dv_key(const delta_dv *dv)
{
    size_t n = dv->path_or_inline ? strlen(dv->path_or_inline) : 0;
    unsigned char u[16];
    if (dv->storage != 'u' || n < 20 || delta_z85_decode(dv->path_or_inline + n - 20, 20, u))
        return NULL;
    char *key = malloc(n + 64);
    if (!key) abort();
    int k = n > 20 ? snprintf(key, n + 64, "%.*s/", (int)(n - 20), dv->path_or_inline) : 0;
    k += snprintf(key + k, n + 64 - (size_t)k, "deletion_vector_");
    for (int i = 0; i < 16; i++) {
        k += snprintf(key + k, n + 64 - (size_t)k, "%02x", u[i]);
        if (i == 3 || i == 5 || i == 7 || i == 9) key[k++] = '-';
    }
    snprintf(key + k, n + 64 - (size_t)k, ".bin");
    return key;
}

void delta_dv_cache_free(delta_dv_cache *c)
{
    free(c->key);
    buf_free(&c->data);
    c->key = NULL;
}

/* The whole DV file a 'u' descriptor names, through the cache. */
static const buf *dv_file_bytes(objstore *os, const char *key, delta_dv_cache *cache,
                                buf *own, fl_err *err)
{
    if (cache && cache->key && !strcmp(cache->key, key)) return &cache->data;
    buf *b = cache ? &cache->data : own;
    buf_reset(b);
    if (cache) {
        free(cache->key);
        cache->key = NULL;
    }
    int rc = objstore_get(os, key, b, err);
    if (rc != 0) {
        if (rc == OBJSTORE_NOT_FOUND)
            fl_err_set(err, 422, key, "deletion vector file %s is missing", key);
        return NULL;
    }
    if (cache) {
        cache->key = strdup(key);
        if (!cache->key) abort();
    }
    return b;
}

/* The bitmap bytes of a 'u' DV: checks the size prefix and the CRC. */
static int dv_from_file(const buf *f, const delta_dv *dv, const char *key, const unsigned char **p,
                        fl_err *err)
{
    const unsigned char *d = (const unsigned char *)f->p;
    uint64_t off = dv->offset < 0 ? 1 : (uint64_t)dv->offset, sz = (uint64_t)dv->size;
    if (f->len < 1 || d[0] != 1 || off + 8 + sz > f->len || get_be32(d + off) != sz) {
        fl_err_set(err, 422, key, "deletion vector at offset %" PRIu64 " of %s does not match "
                   "its descriptor", off, key);
        return -1;
    }
    *p = d + off + 4;
    if ((uint32_t)crc32(0, *p, (uInt)sz) != get_be32(*p + sz)) {
        fl_err_set(err, 422, key, "deletion vector checksum mismatch in %s", key);
        return -1;
    }
    return 0;
}

static int dv_inline(const delta_dv *dv, unsigned char **raw, fl_err *err)
{
    size_t n = strlen(dv->path_or_inline);
    *raw = malloc(n / 5 * 4 + 1);
    if (!*raw) abort();
    if (n % 5 || (int64_t)(n / 5 * 4) < dv->size ||
        delta_z85_decode(dv->path_or_inline, n, *raw) != 0) {
        fl_err_set(err, 422, "deletionVector.pathOrInlineDv", "malformed inline deletion vector");
        return -1;
    }
    return 0;
}

int delta_dv_read(objstore *os, const delta_dv *dv, delta_dv_cache *cache, uint64_t **pos,
                  size_t *n, fl_err *err)
{
    *pos = NULL;
    *n = 0;
    if (!dv->storage) return 0;
    if (dv->size < 12 || !dv->path_or_inline || (dv->storage != 'u' && dv->storage != 'i')) {
        fl_err_set(err, 422, "deletionVector", "deletion vector storage type '%c' is not "
                   "supported (only 'u' and 'i')", dv->storage ? dv->storage : '?');
        return -1;
    }
    const unsigned char *bits = NULL;
    unsigned char *raw = NULL;
    buf own = BUF_INIT;
    char *key = dv->storage == 'u' ? delta_dv_key(dv) : NULL;
    int rc = 0;
    if (dv->storage == 'i') rc = dv_inline(dv, &raw, err), bits = raw;
    else if (!key) {
        fl_err_set(err, 422, "deletionVector.pathOrInlineDv", "malformed deletion vector path");
        rc = -1;
    } else {
        const buf *f = dv_file_bytes(os, key, cache, &own, err);
        rc = f ? dv_from_file(f, dv, key, &bits, err) : -1;
    }
    if (rc == 0) rc = delta_dv_decode(bits, (size_t)dv->size, pos, n, err);
    if (rc == 0 && dv->cardinality >= 0 && (int64_t)*n != dv->cardinality) {
        fl_err_set(err, 422, key ? key : "deletionVector", "deletion vector holds %zu rows, "
                   "its descriptor says %" PRId64, *n, dv->cardinality);
        free(*pos);
        *pos = NULL;
        rc = -1;
    }
    free(raw);
    free(key);
    buf_free(&own);
    return rc;
}

void delta_dv_file_init(delta_dv_file *f)
{
    memset(f, 0, sizeof *f);
    char id[37];
    fl_uuid4(id);
    snprintf(f->key, sizeof f->key, "deletion_vector_%s.bin", id);
    unsigned char u[16];
    for (int i = 0, k = 0; i < 16; i++, k += 2) {
        if (id[k] == '-') k++;
        unsigned x;
        sscanf(id + k, "%2x", &x);
        u[i] = (unsigned char)x;
    }
    delta_z85_encode(u, 16, f->z85);
    buf_putc(&f->data, 1);   /* format version */
}

void delta_dv_file_add(delta_dv_file *f, const uint64_t *pos, size_t n, delta_dv *out)
{
    size_t at = f->data.len;
    put_be32(&f->data, 0);   /* size, filled in below */
    delta_dv_encode(pos, n, &f->data);
    size_t sz = f->data.len - at - 4;
    unsigned char *d = (unsigned char *)f->data.p + at;
    d[0] = (unsigned char)(sz >> 24), d[1] = (unsigned char)(sz >> 16);
    d[2] = (unsigned char)(sz >> 8), d[3] = (unsigned char)sz;
    put_be32(&f->data, (uint32_t)crc32(0, d + 4, (uInt)sz));
    *out = (delta_dv){.storage = 'u', .path_or_inline = f->z85, .offset = (int64_t)at,
                      .size = (int64_t)sz, .cardinality = (int64_t)n};
    f->n_dvs++;
}

int delta_dv_file_put(objstore *os, delta_dv_file *f, fl_err *err)
{
    return objstore_put(os, f->key, f->data.p, f->data.len, err);
}

void delta_dv_file_free(delta_dv_file *f)
{
    buf_free(&f->data);
    f->n_dvs = 0;
}
