/* parquet_write: the Parquet writer. Owns the column chunk buffers of the open row group
 * (levels, dictionary or plain values, statistics), page assembly (data page v1, dictionary
 * page, compression), the footer, the staging file and its atomic rename, and the two
 * input layers: JSON records shredded against a schema tree, and rows batches.
 * Values are little-endian in memory and on disk (the host is assumed little-endian). */
#include "parquet_int.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Min/max of one column (raw value bytes: LE ints/doubles, string bytes, BE decimals). */
typedef struct stat_mm {
    bool has;
    buf min, max;
} stat_mm;

/* Longest min/max value written to the footer (Arrow's default limit too). */
#define MAX_STAT_BYTES 4096

typedef struct chunk_meta {
    int64_t num_values, uncompressed, compressed, data_off, dict_off, null_count;
    bool dict;
    bool has_minmax;
    char *min, *max;      /* malloc'd raw bytes */
    size_t min_len, max_len;
} chunk_meta;

typedef struct colw {
    const pq_node *node;
    int vsize;            /* fixed raw value size, 0 for BYTE_ARRAY */
    uint16_t *def, *rep;
    size_t n_lv, cap_lv;
    size_t n_vals;        /* non-null values in the row group */
    int64_t null_count;
    bool use_dict;
    uint32_t *idx;        /* dictionary index per value */
    size_t cap_idx;
    buf dict;             /* plain-encoded dictionary entries */
    uint32_t *doff;       /* n_dict + 1 offsets into dict */
    size_t n_dict, cap_dict;
    uint32_t *ht;         /* open addressing: entry + 1, 0 = empty */
    size_t ht_cap;
    buf plain;            /* plain values (booleans one byte each) when !use_dict */
    stat_mm rg, file;     /* row group and file min/max */
    int64_t file_nulls;
    bool file_unbounded;  /* a row group's min/max was left out (too long): no file min/max */
    chunk_meta *chunks;   /* one per flushed row group */
} colw;

typedef struct mark {
    size_t n_lv, n_vals, plain_len;
    int64_t nulls;
} mark;

struct pq_writer {
    pq_options opt;
    mark *marks;           /* per leaf: state before the record/row being written */
    bool has_decimal;      /* rows layer: a row can fail midway (bad decimal text) */
    pq_schema *schema;
    rows_schema *rows;     /* rows layer only */
    int64_t *rows_nulls;   /* rows layer: null rows per field */
    colw *cols;
    char *path, *staging;
    FILE *f;
    int64_t pos;
    int64_t rg_rows, total_rows;
    size_t rg_bytes;
    size_t n_rg;
    int64_t *rg_nrows, *rg_offset, *rg_usize, *rg_csize;
    buf page, comp, lvl;   /* scratch: page body, compressed body, v2 levels */
    void *zctx;            /* zstd context reused across pages */
    bool failed;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) abort();
    return q;
}

/* ---- ordering for statistics (the logical type's order) ---- */

static int cmp_raw(const pq_node *n, const void *a, size_t alen, const void *b, size_t blen)
{
    switch (n->phys) {
    case PQ_BOOLEAN: return (int)*(const uint8_t *)a - (int)*(const uint8_t *)b;
    case PQ_INT32: {
        int32_t x, y;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        if (n->logical == PQ_LT_INT && !n->is_signed) return (uint32_t)x < (uint32_t)y ? -1 : (uint32_t)x > (uint32_t)y;
        return x < y ? -1 : x > y;
    }
    case PQ_INT64: {
        int64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (n->logical == PQ_LT_INT && !n->is_signed) return (uint64_t)x < (uint64_t)y ? -1 : (uint64_t)x > (uint64_t)y;
        return x < y ? -1 : x > y;
    }
    case PQ_FLOAT: {
        float x, y;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        return x < y ? -1 : x > y;
    }
    case PQ_DOUBLE: {
        double x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        return x < y ? -1 : x > y;
    }
    case PQ_FIXED_LEN_BYTE_ARRAY:
        if (n->logical == PQ_LT_DECIMAL) { /* two's complement big-endian */
            int sa = *(const int8_t *)a, sb = *(const int8_t *)b;
            if (sa != sb) return sa < sb ? -1 : 1;
            return memcmp((const uint8_t *)a + 1, (const uint8_t *)b + 1, alen - 1);
        }
        /* fall through */
    default: {
        size_t m = alen < blen ? alen : blen;
        int c = memcmp(a, b, m);
        if (c) return c;
        return alen < blen ? -1 : alen > blen;
    }
    }
}

static bool has_order(const pq_node *n) { return n->phys != PQ_INT96; }

static void mm_update(const pq_node *n, stat_mm *s, const void *raw, size_t len)
{
    if (!s->has) {
        buf_reset(&s->min);
        buf_reset(&s->max);
        buf_put(&s->min, raw, len);
        buf_put(&s->max, raw, len);
        s->has = true;
        return;
    }
    if (cmp_raw(n, raw, len, s->min.p, s->min.len) < 0) {
        buf_reset(&s->min);
        buf_put(&s->min, raw, len);
    } else if (cmp_raw(n, raw, len, s->max.p, s->max.len) > 0) {
        buf_reset(&s->max);
        buf_put(&s->max, raw, len);
    }
}

/* ---- column buffers ---- */

static inline uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 29);
}

/* Hash of a dictionary candidate: one multiply per 8 bytes; the tail is read with
 * overlapping fixed-size loads, since a byte loop or a variable memcpy dominates for the
 * short strings (codes, names, dates) that dictionaries are made of. */
static inline uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0xc2b2ae3d27d4eb4full);
    uint64_t w = 0;
    if (n >= 8) {
        const uint8_t *end = s + n;
        while (end - s > 8) {
            memcpy(&w, s, 8);
            h = (h ^ w) * 0x9fb21c651e98df25ull;
            h ^= h >> 28;
            s += 8;
        }
        memcpy(&w, end - 8, 8); /* the last 8 bytes, overlapping what came before */
    } else if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        w = (uint64_t)hi << 32 | lo;
    } else if (n > 0) {
        w = (uint64_t)s[0] | (uint64_t)s[n / 2] << 8 | (uint64_t)s[n - 1] << 16;
    }
    return mix(h ^ w);
}

/* Equality of two byte strings of length n; inline loads for the short ones. */
static inline bool same_bytes(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    uint64_t p, q, r, t;
    if (n > 16) return memcmp(a, b, n) == 0;
    if (n >= 8) {
        memcpy(&p, x, 8), memcpy(&q, y, 8), memcpy(&r, x + n - 8, 8), memcpy(&t, y + n - 8, 8);
        return p == q && r == t;
    }
    if (n >= 4) {
        uint32_t e, f, g, h;
        memcpy(&e, x, 4), memcpy(&f, y, 4), memcpy(&g, x + n - 4, 4), memcpy(&h, y + n - 4, 4);
        return e == f && g == h;
    }
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return false;
    return true;
}

static inline const uint8_t *dict_raw(const colw *c, size_t k, size_t *len)
{
    size_t skip = c->vsize ? 0 : 4;
    *len = c->doff[k + 1] - c->doff[k] - skip;
    return (const uint8_t *)c->dict.p + c->doff[k] + skip;
}

static void ht_rebuild(colw *c, size_t cap)
{
    free(c->ht);
    c->ht = calloc(cap, sizeof *c->ht);
    if (!c->ht) abort();
    c->ht_cap = cap;
    for (size_t k = 0; k < c->n_dict; k++) {
        size_t len = 0;
        const uint8_t *r = dict_raw(c, k, &len);
        size_t h = hash_bytes(r, len) & (cap - 1);
        while (c->ht[h]) h = (h + 1) & (cap - 1);
        c->ht[h] = (uint32_t)k + 1;
    }
}

/* Appends one plain-encoded value (BYTE_ARRAY: 4-byte length first) with a single
 * capacity check: this runs once per value. Keeps buf's NUL-termination invariant. */
static inline void put_plain(buf *b, const colw *c, const void *raw, size_t len)
{
    size_t need = len + (c->vsize ? 0 : 4);
    if (b->len + need + 1 > b->cap) buf_reserve(b, need);
    uint8_t *d = (uint8_t *)b->p + b->len;
    if (!c->vsize) {
        pq_put_u32(d, (uint32_t)len);
        d += 4;
    }
    if (len) memcpy(d, raw, len);
    b->len += need;
    b->p[b->len] = 0;
}

/* Turns a dictionary-encoded chunk into plain values (the dictionary grew too big). */
static void dict_fallback(colw *c)
{
    buf_reset(&c->plain);
    for (size_t i = 0; i < c->n_vals; i++) {
        uint32_t k = c->idx[i];
        buf_put(&c->plain, c->dict.p + c->doff[k], c->doff[k + 1] - c->doff[k]);
    }
    c->use_dict = false;
}

static void dict_reset(colw *c, bool enable)
{
    buf_reset(&c->dict);
    c->n_dict = 0;
    if (c->ht) memset(c->ht, 0, c->ht_cap * sizeof *c->ht);
    c->use_dict = enable;
}

/* Levels of one entry. Flat columns (max_rep 0) keep no repetition levels: they would all
 * be 0, and writing them costs memory bandwidth on the hot path. */
static inline void col_levels(colw *c, int r, int d)
{
    if (c->n_lv == c->cap_lv) {
        c->cap_lv = c->cap_lv ? c->cap_lv * 2 : 1024;
        c->def = xrealloc(c->def, c->cap_lv * sizeof *c->def);
        if (c->node->max_rep) c->rep = xrealloc(c->rep, c->cap_lv * sizeof *c->rep);
    }
    c->def[c->n_lv] = (uint16_t)d;
    if (c->node->max_rep) c->rep[c->n_lv] = (uint16_t)r;
    c->n_lv++;
}

static void col_null(pq_writer *w, colw *c, int r, int d)
{
    col_levels(c, r, d);
    c->null_count++;
    w->rg_bytes += 2;
}

static void col_value(pq_writer *w, colw *c, int r, const void *raw, size_t len)
{
    col_levels(c, r, c->node->max_def);
    w->rg_bytes += len + 2;
    if (!c->use_dict) {
        put_plain(&c->plain, c, raw, len);
        c->n_vals++;
        return;
    }
    if ((c->n_dict + 1) * 2 > c->ht_cap) ht_rebuild(c, c->ht_cap ? c->ht_cap * 2 : 1024);
    size_t h = hash_bytes(raw, len) & (c->ht_cap - 1);
    uint32_t k;
    for (;;) {
        uint32_t e = c->ht[h];
        if (!e) {
            k = (uint32_t)c->n_dict++;
            if (c->n_dict + 1 > c->cap_dict) {
                c->cap_dict = c->cap_dict ? c->cap_dict * 2 : 1024;
                c->doff = xrealloc(c->doff, c->cap_dict * sizeof *c->doff);
            }
            c->doff[k] = (uint32_t)c->dict.len;
            put_plain(&c->dict, c, raw, len);
            c->doff[k + 1] = (uint32_t)c->dict.len;
            c->ht[h] = k + 1;
            break;
        }
        size_t elen;
        const uint8_t *er = dict_raw(c, e - 1, &elen);
        if (elen == len && same_bytes(er, raw, len)) {
            k = e - 1;
            break;
        }
        h = (h + 1) & (c->ht_cap - 1);
    }
    if (c->n_vals == c->cap_idx) {
        c->cap_idx = c->cap_idx ? c->cap_idx * 2 : 1024;
        c->idx = xrealloc(c->idx, c->cap_idx * sizeof *c->idx);
    }
    c->idx[c->n_vals++] = k;
    /* Too big, or so many distinct values early on that a dictionary will not pay off
     * (ids, timestamps): plain it is, and no more hashing for this chunk. */
    if (c->dict.len > w->opt.dict_bytes || (c->n_vals == 8192 && c->n_dict > 8192 * 3 / 4))
        dict_fallback(c);
}

/* ---- pages ---- */

static int write_out(pq_writer *w, const void *p, size_t n, fl_err *err)
{
    if (n && fwrite(p, 1, n, w->f) != n) {
        fl_err_set(err, 500, w->staging, "parquet: write failed: %s", strerror(errno));
        return -1;
    }
    w->pos += (int64_t)n;
    return 0;
}

static void write_stats(tw *t, int16_t id, const chunk_meta *m)
{
    tw_struct_begin(t, id);
    tw_i64(t, 3, m->null_count);
    if (m->has_minmax) {
        tw_bin(t, 5, m->max, m->max_len);
        tw_bin(t, 6, m->min, m->min_len);
    }
    tw_struct_end(t);
}

/* Compresses w->page and writes header + body. */
static int emit_page(pq_writer *w, int type, int32_t num_values, int encoding, int64_t *usize,
                     int64_t *csize, fl_err *err)
{
    buf_reset(&w->comp);
    if (pq_compress(w->opt.codec, w->opt.level, w->page.p, w->page.len, &w->comp, &w->zctx, err))
        return -1;
    buf hdr = BUF_INIT;
    tw t;
    tw_init(&t, &hdr);
    tw_i32(&t, 1, type);
    tw_i32(&t, 2, (int32_t)w->page.len);
    tw_i32(&t, 3, (int32_t)w->comp.len);
    if (type == PQP_DICTIONARY) {
        tw_struct_begin(&t, 7);
        tw_i32(&t, 1, num_values);
        tw_i32(&t, 2, PQE_PLAIN);
        tw_struct_end(&t);
    } else {
        tw_struct_begin(&t, 5);
        tw_i32(&t, 1, num_values);
        tw_i32(&t, 2, encoding);
        tw_i32(&t, 3, PQE_RLE);
        tw_i32(&t, 4, PQE_RLE);
        tw_struct_end(&t);
    }
    tw_struct_end(&t);
    int rc = write_out(w, hdr.p, hdr.len, err) || write_out(w, w->comp.p, w->comp.len, err);
    *usize += (int64_t)(hdr.len + w->page.len);
    *csize += (int64_t)(hdr.len + w->comp.len);
    buf_free(&hdr);
    return rc ? -1 : 0;
}

/* Data page v2: levels (in w->lvl: repetition then definition) stay uncompressed in front
 * of the compressed values (w->page), their lengths in the header. */
static int emit_page_v2(pq_writer *w, int32_t num_values, int32_t num_nulls, int32_t num_rows,
                        int encoding, size_t rep_len, size_t def_len, int64_t *usize,
                        int64_t *csize, fl_err *err)
{
    buf_reset(&w->comp);
    if (pq_compress(w->opt.codec, w->opt.level, w->page.p, w->page.len, &w->comp, &w->zctx, err))
        return -1;
    buf hdr = BUF_INIT;
    tw t;
    tw_init(&t, &hdr);
    tw_i32(&t, 1, PQP_DATA_V2);
    tw_i32(&t, 2, (int32_t)(w->lvl.len + w->page.len));
    tw_i32(&t, 3, (int32_t)(w->lvl.len + w->comp.len));
    tw_struct_begin(&t, 8);
    tw_i32(&t, 1, num_values);
    tw_i32(&t, 2, num_nulls);
    tw_i32(&t, 3, num_rows);
    tw_i32(&t, 4, encoding);
    tw_i32(&t, 5, (int32_t)def_len);
    tw_i32(&t, 6, (int32_t)rep_len);
    tw_bool(&t, 7, true);
    tw_struct_end(&t);
    tw_struct_end(&t);
    int rc = write_out(w, hdr.p, hdr.len, err) || write_out(w, w->lvl.p, w->lvl.len, err) ||
             write_out(w, w->comp.p, w->comp.len, err);
    *usize += (int64_t)(hdr.len + w->lvl.len + w->page.len);
    *csize += (int64_t)(hdr.len + w->lvl.len + w->comp.len);
    buf_free(&hdr);
    return rc ? -1 : 0;
}

static void put_levels(buf *page, const uint16_t *lv, size_t n, int max)
{
    size_t at = page->len;
    buf_put(page, "\0\0\0\0", 4);
    pq_rle_encode16(page, lv, n, pq_bit_width((uint64_t)max));
    pq_put_u32((uint8_t *)page->p + at, (uint32_t)(page->len - at - 4));
}

/* Plain bytes of values [va, vb) when not dictionary-encoded; *ppos walks the buffer. */
static void put_plain_values(buf *page, const colw *c, size_t va, size_t vb, size_t *ppos)
{
    const uint8_t *p = (const uint8_t *)c->plain.p;
    if (c->node->phys == PQ_BOOLEAN) {
        size_t nb = (vb - va + 7) / 8;
        buf_reserve(page, nb);
        uint8_t *dst = (uint8_t *)page->p + page->len;
        memset(dst, 0, nb);
        for (size_t i = va; i < vb; i++)
            if (p[i]) dst[(i - va) >> 3] |= (uint8_t)(1u << ((i - va) & 7));
        page->len += nb;
        page->p[page->len] = 0;
        return;
    }
    size_t start = *ppos, pos = start;
    if (c->vsize) {
        pos += (vb - va) * (size_t)c->vsize;
    } else {
        for (size_t i = va; i < vb; i++) pos += 4 + pq_get_u32(p + pos);
    }
    buf_put(page, p + start, pos - start);
    *ppos = pos;
}

static void stat_value(colw *c, const uint8_t *raw, size_t len)
{
    const pq_node *n = c->node;
    if (n->phys == PQ_DOUBLE) {
        double d;
        memcpy(&d, raw, 8);
        if (isnan(d)) return; /* NaN has no place in min/max */
    } else if (n->phys == PQ_FLOAT) {
        float f;
        memcpy(&f, raw, 4);
        if (isnan(f)) return;
    }
    mm_update(n, &c->rg, raw, len);
}

/* Min/max of the chunk, computed once at flush: over the dictionary entries (each distinct
 * value once) or over the plain values. Keeps comparisons out of the per-value path. */
static void chunk_minmax(colw *c)
{
    c->rg.has = false;
    if (!has_order(c->node)) return;
    if (c->use_dict) {
        for (size_t k = 0; k < c->n_dict; k++) {
            size_t len;
            const uint8_t *r = dict_raw(c, k, &len);
            stat_value(c, r, len);
        }
        return;
    }
    const uint8_t *p = (const uint8_t *)c->plain.p;
    const pq_node *n = c->node;
    if ((n->phys == PQ_INT64 || n->phys == PQ_INT32) && n->logical != PQ_LT_INT && c->n_vals) {
        /* typed loop for the common signed integer columns (timestamps, counts) */
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (size_t i = 0; i < c->n_vals; i++) {
            int64_t x;
            if (n->phys == PQ_INT64) {
                memcpy(&x, p + 8 * i, 8);
            } else {
                int32_t y;
                memcpy(&y, p + 4 * i, 4);
                x = y;
            }
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
        uint8_t raw[8];
        for (int k = 0; k < 2; k++) {
            int64_t x = k ? hi : lo;
            if (n->phys == PQ_INT64) {
                memcpy(raw, &x, 8);
            } else {
                int32_t y = (int32_t)x;
                memcpy(raw, &y, 4);
            }
            stat_value(c, raw, (size_t)c->vsize);
        }
        return;
    }
    size_t pos = 0;
    for (size_t i = 0; i < c->n_vals; i++) {
        size_t len = c->vsize ? (size_t)c->vsize : pq_get_u32(p + pos);
        if (!c->vsize) pos += 4;
        stat_value(c, p + pos, len);
        pos += len;
    }
}

static int flush_column(pq_writer *w, colw *c, fl_err *err)
{
    chunk_minmax(c);
    const pq_node *n = c->node;
    chunk_meta *m = &c->chunks[w->n_rg];
    memset(m, 0, sizeof *m);
    m->num_values = (int64_t)c->n_lv;
    m->null_count = c->null_count;
    m->dict_off = -1;
    m->dict = c->use_dict;
    if (c->use_dict) {
        m->dict_off = w->pos;
        buf_reset(&w->page);
        buf_put(&w->page, c->dict.p, c->dict.len);
        if (emit_page(w, PQP_DICTIONARY, (int32_t)c->n_dict, PQE_PLAIN, &m->uncompressed,
                      &m->compressed, err))
            return -1;
    }
    m->data_off = w->pos;
    int bw = pq_bit_width(c->n_dict ? c->n_dict - 1 : 0);
    size_t lv = 0, va = 0, ppos = 0, scan = 0;
    size_t per = c->use_dict ? 2 : (size_t)c->vsize; /* 0: read each BYTE_ARRAY length */
    const uint8_t *plain = (const uint8_t *)c->plain.p;
    do { /* at least one page, even for an empty chunk */
        size_t la = lv, vstart = va, est = 0;
        while (lv < c->n_lv) {
            if (c->def[lv] == n->max_def) {
                va++;
                if (per) {
                    est += per;
                } else {
                    size_t l = 4 + pq_get_u32(plain + scan);
                    scan += l;
                    est += l;
                }
            }
            est += 1;
            lv++;
            /* cut at a record boundary once the page is big enough or has 1M entries
             * (readers bound entries per page; a page of nulls is tiny in bytes) */
            if ((est >= w->opt.page_bytes || lv - la >= ((size_t)1 << 20)) &&
                (lv == c->n_lv || !n->max_rep || c->rep[lv] == 0))
                break;
        }
        buf_reset(&w->page);
        size_t rep_len = 0, def_len = 0;
        if (w->opt.page_v2) {
            buf_reset(&w->lvl);
            if (n->max_rep > 0) pq_rle_encode16(&w->lvl, c->rep + la, lv - la, pq_bit_width((uint64_t)n->max_rep));
            rep_len = w->lvl.len;
            if (n->max_def > 0) pq_rle_encode16(&w->lvl, c->def + la, lv - la, pq_bit_width((uint64_t)n->max_def));
            def_len = w->lvl.len - rep_len;
        } else {
            if (n->max_rep > 0) put_levels(&w->page, c->rep + la, lv - la, n->max_rep);
            if (n->max_def > 0) put_levels(&w->page, c->def + la, lv - la, n->max_def);
        }
        if (c->use_dict) {
            buf_putc(&w->page, (char)bw);
            pq_rle_encode(&w->page, c->idx + vstart, va - vstart, bw);
        } else {
            put_plain_values(&w->page, c, vstart, va, &ppos);
        }
        int enc = c->use_dict ? PQE_RLE_DICTIONARY : PQE_PLAIN;
        int rc;
        if (w->opt.page_v2) {
            size_t rows = lv - la;
            if (n->max_rep) {
                rows = 0;
                for (size_t k = la; k < lv; k++) rows += c->rep[k] == 0;
            }
            rc = emit_page_v2(w, (int32_t)(lv - la), (int32_t)((lv - la) - (va - vstart)), (int32_t)rows,
                              enc, rep_len, def_len, &m->uncompressed, &m->compressed, err);
        } else {
            rc = emit_page(w, PQP_DATA, (int32_t)(lv - la), enc, &m->uncompressed, &m->compressed, err);
        }
        if (rc) return -1;
    } while (lv < c->n_lv);
    if (c->rg.has && n->phys == PQ_DOUBLE) { /* spec: a zero min is -0.0, a zero max +0.0 */
        double z;
        memcpy(&z, c->rg.min.p, 8);
        if (z == 0) z = -0.0, memcpy(c->rg.min.p, &z, 8);
        memcpy(&z, c->rg.max.p, 8);
        if (z == 0) z = 0.0, memcpy(c->rg.max.p, &z, 8);
    }
    if (c->rg.has && (c->rg.min.len > MAX_STAT_BYTES || c->rg.max.len > MAX_STAT_BYTES)) {
        c->rg.has = false; /* like Arrow: huge values are not copied into the footer */
        c->file_unbounded = true;
    }
    if (c->rg.has) {
        m->has_minmax = true;
        m->min_len = c->rg.min.len;
        m->max_len = c->rg.max.len;
        m->min = xrealloc(NULL, m->min_len);
        m->max = xrealloc(NULL, m->max_len);
        memcpy(m->min, c->rg.min.p, m->min_len);
        memcpy(m->max, c->rg.max.p, m->max_len);
        mm_update(n, &c->file, c->rg.min.p, c->rg.min.len);
        mm_update(n, &c->file, c->rg.max.p, c->rg.max.len);
    }
    c->file_nulls += c->null_count;
    /* reset the chunk buffers for the next row group */
    c->n_lv = c->n_vals = 0;
    c->null_count = 0;
    c->rg.has = false;
    buf_reset(&c->plain);
    dict_reset(c, w->opt.dictionary && n->phys != PQ_BOOLEAN);
    return 0;
}

static int flush_row_group(pq_writer *w, fl_err *err)
{
    if (w->rg_rows == 0) return 0;
    size_t k = w->n_rg;
    w->rg_nrows = xrealloc(w->rg_nrows, (k + 1) * sizeof(int64_t));
    w->rg_offset = xrealloc(w->rg_offset, (k + 1) * sizeof(int64_t));
    w->rg_usize = xrealloc(w->rg_usize, (k + 1) * sizeof(int64_t));
    w->rg_csize = xrealloc(w->rg_csize, (k + 1) * sizeof(int64_t));
    w->rg_offset[k] = w->pos;
    w->rg_usize[k] = w->rg_csize[k] = 0;
    for (size_t i = 0; i < w->schema->n_leaves; i++) {
        colw *c = &w->cols[i];
        c->chunks = xrealloc(c->chunks, (k + 1) * sizeof *c->chunks);
        if (flush_column(w, c, err)) {
            for (size_t j = 0; j < i; j++) { /* this row group is not counted: free its stats */
                free(w->cols[j].chunks[k].min);
                free(w->cols[j].chunks[k].max);
            }
            return -1;
        }
        w->rg_usize[k] += c->chunks[k].uncompressed;
        w->rg_csize[k] += c->chunks[k].compressed;
    }
    w->rg_nrows[k] = w->rg_rows;
    w->n_rg++;
    w->total_rows += w->rg_rows;
    w->rg_rows = 0;
    w->rg_bytes = 0;
    return 0;
}

/* After each record/row: cut the row group once it is big enough. */
static int end_record(pq_writer *w, fl_err *err)
{
    w->rg_rows++;
    if (w->rg_bytes >= w->opt.row_group_bytes) return flush_row_group(w, err);
    return 0;
}

/* ---- footer ---- */

static void write_column_meta(pq_writer *w, tw *t, const colw *c, const chunk_meta *m)
{
    tw_elem_struct_begin(t);                 /* ColumnChunk */
    tw_i64(t, 2, m->dict_off >= 0 ? m->dict_off : m->data_off);
    tw_struct_begin(t, 3);                   /* ColumnMetaData */
    tw_i32(t, 1, c->node->phys);
    tw_list_begin(t, 2, TH_I32, m->dict ? 3 : 2);
    tw_elem_i32(t, PQE_PLAIN);
    tw_elem_i32(t, PQE_RLE);
    if (m->dict) tw_elem_i32(t, PQE_RLE_DICTIONARY);
    size_t depth = 0;
    const pq_node *path[64];
    for (const pq_node *p = c->node; p->parent && depth < 64; p = p->parent) path[depth++] = p;
    tw_list_begin(t, 3, TH_BINARY, depth);
    while (depth--) tw_elem_bin(t, path[depth]->name, strlen(path[depth]->name));
    tw_i32(t, 4, w->opt.codec);
    tw_i64(t, 5, m->num_values);
    tw_i64(t, 6, m->uncompressed);
    tw_i64(t, 7, m->compressed);
    tw_i64(t, 9, m->data_off);
    if (m->dict_off >= 0) tw_i64(t, 11, m->dict_off);
    write_stats(t, 12, m);
    tw_struct_end(t);
    tw_struct_end(t);
}

static int write_footer(pq_writer *w, fl_err *err)
{
    buf b = BUF_INIT;
    tw t;
    tw_init(&t, &b);
    tw_i32(&t, 1, 1);
    pq_schema_to_thrift(w->schema, &t, 2);
    tw_i64(&t, 3, w->total_rows);
    tw_list_begin(&t, 4, TH_STRUCT, w->n_rg);
    for (size_t g = 0; g < w->n_rg; g++) {
        tw_elem_struct_begin(&t);
        tw_list_begin(&t, 1, TH_STRUCT, w->schema->n_leaves);
        for (size_t i = 0; i < w->schema->n_leaves; i++)
            write_column_meta(w, &t, &w->cols[i], &w->cols[i].chunks[g]);
        tw_i64(&t, 2, w->rg_usize[g]);
        tw_i64(&t, 3, w->rg_nrows[g]);
        tw_i64(&t, 5, w->rg_offset[g]);
        tw_i64(&t, 6, w->rg_csize[g]);
        tw_struct_end(&t);
    }
    tw_str(&t, 6, w->opt.created_by);
    tw_list_begin(&t, 7, TH_STRUCT, w->schema->n_leaves);
    for (size_t i = 0; i < w->schema->n_leaves; i++) {
        tw_elem_struct_begin(&t);
        tw_struct_begin(&t, 1);              /* TypeDefinedOrder */
        tw_struct_end(&t);
        tw_struct_end(&t);
    }
    tw_struct_end(&t);
    uint8_t tail[8];
    pq_put_u32(tail, (uint32_t)b.len);
    memcpy(tail + 4, "PAR1", 4);
    int rc = write_out(w, b.p, b.len, err) || write_out(w, tail, 8, err);
    buf_free(&b);
    return rc ? -1 : 0;
}

/* ---- open / close ---- */

void pq_options_init(pq_options *o)
{
    memset(o, 0, sizeof *o);
    o->codec = PQ_SNAPPY;
    o->row_group_bytes = 128u << 20;
    o->page_bytes = 1u << 20;
    o->dict_bytes = 1u << 20;
    o->dictionary = true;
    o->decimal_precision = 38;
    o->decimal_scale = 18;
    o->durable = true;
}

int pq_codec_parse(const char *name, pq_codec *out)
{
    if (!strcasecmp(name, "snappy")) *out = PQ_SNAPPY;
    else if (!strcasecmp(name, "zstd")) *out = PQ_ZSTD;
    else if (!strcasecmp(name, "gzip")) *out = PQ_GZIP;
    else if (!strcasecmp(name, "none") || !strcasecmp(name, "uncompressed")) *out = PQ_UNCOMPRESSED;
    else return -1;
    return 0;
}

static pq_schema *schema_copy(const pq_schema *s, fl_err *err)
{
    buf t = BUF_INIT;
    pq_schema_print(s, &t);
    pq_schema *c = pq_schema_parse(t.p, err);
    buf_free(&t);
    return c;
}

static void writer_free(pq_writer *w)
{
    if (!w) return;
    if (w->schema) {
        for (size_t i = 0; i < w->schema->n_leaves; i++) {
            colw *c = &w->cols[i];
            free(c->def);
            free(c->rep);
            free(c->idx);
            free(c->doff);
            free(c->ht);
            buf_free(&c->dict);
            buf_free(&c->plain);
            buf_free(&c->rg.min);
            buf_free(&c->rg.max);
            buf_free(&c->file.min);
            buf_free(&c->file.max);
            for (size_t g = 0; g < w->n_rg; g++) {
                free(c->chunks[g].min);
                free(c->chunks[g].max);
            }
            free(c->chunks);
        }
    }
    free(w->cols);
    free(w->marks);
    pq_schema_free(w->schema);
    rows_schema_free(w->rows);
    free(w->rows_nulls);
    free(w->path);
    free(w->staging);
    free(w->rg_nrows);
    free(w->rg_offset);
    free(w->rg_usize);
    free(w->rg_csize);
    buf_free(&w->page);
    buf_free(&w->comp);
    buf_free(&w->lvl);
    pq_compress_free(w->zctx);
    if (w->f) fclose(w->f);
    free(w);
}

static int fixed_size(const pq_node *n)
{
    switch (n->phys) {
    case PQ_BOOLEAN: return 1;
    case PQ_INT32: case PQ_FLOAT: return 4;
    case PQ_INT64: case PQ_DOUBLE: return 8;
    case PQ_INT96: return 12;
    case PQ_FIXED_LEN_BYTE_ARRAY: return n->type_length;
    default: return 0;
    }
}

static pq_writer *open_common(const char *path, pq_schema *schema, const pq_options *opt,
                              fl_err *err)
{
    pq_writer *w = calloc(1, sizeof *w);
    if (!w) abort();
    if (opt) w->opt = *opt;
    else pq_options_init(&w->opt);
    if (!w->opt.row_group_bytes) w->opt.row_group_bytes = 128u << 20;
    if (!w->opt.page_bytes) w->opt.page_bytes = 1u << 20;
    if (!w->opt.dict_bytes) w->opt.dict_bytes = 1u << 20;
    if (!w->opt.created_by) w->opt.created_by = "fhirlake version 0.1.0 (build fhirlake)";
    w->schema = schema;
    w->cols = calloc(schema->n_leaves ? schema->n_leaves : 1, sizeof *w->cols);
    w->marks = calloc(schema->n_leaves ? schema->n_leaves : 1, sizeof *w->marks);
    if (!w->cols || !w->marks) abort();
    for (size_t i = 0; i < schema->n_leaves; i++) {
        w->cols[i].node = schema->leaves[i];
        w->cols[i].vsize = fixed_size(schema->leaves[i]);
        dict_reset(&w->cols[i], w->opt.dictionary && schema->leaves[i]->phys != PQ_BOOLEAN);
    }
    w->path = strdup(path);
    if (opt && opt->staging_path) {
        w->staging = strdup(opt->staging_path);
    } else {
        char id[37];
        fl_uuid4(id);
        size_t n = strlen(path) + 50;
        w->staging = xrealloc(NULL, n);
        snprintf(w->staging, n, "%s.tmp-%s", path, id);
    }
    if (!w->path || !w->staging) abort();
    w->f = fopen(w->staging, "wb");
    if (!w->f) {
        fl_err_set(err, 500, path, "parquet: cannot create %s: %s", w->staging, strerror(errno));
        writer_free(w);
        return NULL;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    if (write_out(w, "PAR1", 4, err)) {
        pq_writer_abort(w);
        return NULL;
    }
    return w;
}

pq_writer *pq_writer_open_schema(const char *path, const pq_schema *schema, const pq_options *opt,
                                 fl_err *err)
{
    pq_schema *s = schema_copy(schema, err);
    if (!s) return NULL;
    return open_common(path, s, opt, err);
}

pq_writer *pq_writer_open(const char *path, const rows_schema *rs, const pq_options *opt,
                          fl_err *err)
{
    pq_options o;
    if (opt) o = *opt;
    else pq_options_init(&o);
    if (rs->n == 0) {
        fl_err_set(err, 400, path, "parquet: a file needs at least one column");
        return NULL;
    }
    if (o.decimal_precision < 1 || o.decimal_precision > 38 || o.decimal_scale < 0 ||
        o.decimal_scale > o.decimal_precision) {
        fl_err_set(err, 400, "decimal", "parquet: bad decimal precision/scale %d/%d",
                   o.decimal_precision, o.decimal_scale);
        return NULL;
    }
    pq_schema *s = pq_schema_from_rows(rs, o.decimal_precision, o.decimal_scale);
    pq_writer *w = open_common(path, s, &o, err);
    if (!w) return NULL;
    w->rows = rows_schema_copy(rs);
    w->rows_nulls = calloc(rs->n, sizeof *w->rows_nulls);
    if (!w->rows_nulls) abort();
    for (size_t i = 0; i < rs->n; i++)
        if (rs->f[i].type == ROWS_DECIMAL) w->has_decimal = true;
    return w;
}

void pq_writer_abort(pq_writer *w)
{
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
    }
    unlink(w->staging);
    writer_free(w);
}

/* Decodes raw stat bytes back into a rows_value (strings copied into a). */
static void raw_to_rows(const pq_node *n, rows_type t, const buf *raw, arena *a, rows_value *out);

static void fill_stats(pq_writer *w, pq_file_stats *st)
{
    memset(st, 0, sizeof *st);
    st->a = arena_new(0);
    st->num_rows = w->total_rows;
    st->file_size = w->pos;
    st->num_row_groups = w->n_rg;
    if (!w->rows) return;
    st->n_cols = w->rows->n;
    st->cols = arena_calloc(st->a, (w->rows->n ? w->rows->n : 1) * sizeof *st->cols);
    for (size_t i = 0; i < w->rows->n; i++) {
        pq_col_stats *cs = &st->cols[i];
        const rows_field *f = &w->rows->f[i];
        cs->name = arena_strdup(st->a, f->name);
        cs->type = f->type;
        cs->list = f->list;
        cs->null_count = w->rows_nulls[i];
        const colw *c = &w->cols[i];
        if (f->list || !c->file.has || c->file_unbounded) continue;
        cs->has_minmax = true;
        raw_to_rows(c->node, f->type, &c->file.min, st->a, &cs->min);
        raw_to_rows(c->node, f->type, &c->file.max, st->a, &cs->max);
    }
}

int pq_writer_close(pq_writer *w, pq_file_stats *stats, fl_err *err)
{
    if (w->failed) {
        fl_err_set(err, 500, w->path, "parquet: writer failed earlier; file discarded");
        pq_writer_abort(w);
        return -1;
    }
    if (flush_row_group(w, err) || write_footer(w, err)) goto fail;
    if (fflush(w->f) != 0 || (w->opt.durable && fsync(fileno(w->f)) != 0)) {
        fl_err_set(err, 500, w->path, "parquet: flush failed: %s", strerror(errno));
        goto fail;
    }
    fclose(w->f);
    w->f = NULL;
    if (strcmp(w->staging, w->path) != 0 && rename(w->staging, w->path) != 0) {
        fl_err_set(err, 500, w->path, "parquet: rename failed: %s", strerror(errno));
        goto fail;
    }
    if (stats) fill_stats(w, stats);
    writer_free(w);
    return 0;
fail:
    pq_writer_abort(w);
    return -1;
}

void pq_file_stats_free(pq_file_stats *st)
{
    if (!st) return;
    arena_free(st->a);
    memset(st, 0, sizeof *st);
}

/* ---- decimals: exact text <-> unscaled integer ---- */


static int decimal_parse(const char *s, size_t n, int precision, int scale, i128 *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    i128 v = 0;
    int digits = 0, frac = 0, exp = 0;
    bool dot = false, any = false, round_up = false, dropped = false;
    for (; i < n; i++) {
        char ch = s[i];
        if (ch == '.' && !dot) {
            dot = true;
            continue;
        }
        if (ch == 'e' || ch == 'E') {
            char *end;
            char tmp[16];
            size_t k = n - i - 1 < 15 ? n - i - 1 : 15;
            memcpy(tmp, s + i + 1, k);
            tmp[k] = 0;
            exp = (int)strtol(tmp, &end, 10);
            if (!k || *end) return -1;
            i = n;
            break;
        }
        if (ch < '0' || ch > '9') return -1;
        any = true;
        if (digits >= 38) { /* beyond int128 range: only used for rounding */
            if (!dropped) round_up = ch >= '5';
            dropped = true;
            if (!dot) exp++;
            continue;
        }
        if (v || ch != '0') digits++;
        v = v * 10 + (ch - '0');
        if (dot) frac++;
    }
    if (!any) return -1;
    int shift = scale - frac + exp; /* multiply by 10^shift */
    for (; shift > 0; shift--) {
        if (digits++ >= precision) return -2;
        v *= 10;
    }
    for (; shift < 0; shift++) {
        round_up = (v % 10) >= 5;
        v /= 10;
        if (digits) digits--;
    }
    if (round_up) v += 1;
    i128 lim = 1;
    for (int k = 0; k < precision; k++) lim *= 10;
    if (v >= lim) return -2;
    *out = neg ? -v : v;
    return 0;
}

static char *decimal_text(arena *a, i128 v, int scale)
{
    char tmp[64];
    int n = 0;
    bool neg = v < 0;
    unsigned __int128 u = neg ? -(unsigned __int128)v : (unsigned __int128)v;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u || n <= scale);
    char *out = arena_alloc(a, (size_t)n + 3);
    size_t o = 0;
    if (neg) out[o++] = '-';
    for (int k = n - 1; k >= 0; k--) {
        out[o++] = tmp[k];
        if (k == scale && scale > 0) out[o++] = '.';
    }
    out[o] = 0;
    return out;
}

/* Raw bytes of an unscaled decimal for the node's physical type. */
static size_t decimal_raw(const pq_node *n, i128 v, uint8_t *raw)
{
    if (n->phys == PQ_INT32) {
        int32_t x = (int32_t)v;
        memcpy(raw, &x, 4);
        return 4;
    }
    if (n->phys == PQ_INT64) {
        int64_t x = (int64_t)v;
        memcpy(raw, &x, 8);
        return 8;
    }
    size_t len = (size_t)n->type_length; /* big-endian two's complement */
    for (size_t k = 0; k < len; k++) raw[len - 1 - k] = k < 16 ? (uint8_t)(v >> (8 * k)) : (v < 0 ? 0xff : 0);
    return len;
}

i128 pq_decimal_from_raw(const pq_node *n, const uint8_t *raw, size_t len)
{
    if (n->phys == PQ_INT32) {
        int32_t x;
        memcpy(&x, raw, 4);
        return x;
    }
    if (n->phys == PQ_INT64) {
        int64_t x;
        memcpy(&x, raw, 8);
        return x;
    }
    if (len == 0) return 0;
    i128 v = (int8_t)raw[0];
    for (size_t k = 1; k < len; k++) v = v * 256 + raw[k];
    return v;
}

char *pq_decimal_text(arena *a, i128 v, int scale) { return decimal_text(a, v, scale); }

static void raw_to_rows(const pq_node *n, rows_type t, const buf *raw, arena *a, rows_value *out)
{
    const uint8_t *p = (const uint8_t *)raw->p;
    switch (t) {
    case ROWS_STRING:
        out->s.p = arena_strndup(a, raw->p, raw->len);
        out->s.len = (uint32_t)raw->len;
        return;
    case ROWS_DECIMAL: {
        char *txt = decimal_text(a, pq_decimal_from_raw(n, p, raw->len), n->scale);
        out->s.p = txt;
        out->s.len = (uint32_t)strlen(txt);
        return;
    }
    case ROWS_DOUBLE: memcpy(&out->d, p, 8); return;
    case ROWS_BOOL: out->i = p[0]; return;
    case ROWS_INT32:
    case ROWS_DATE: {
        int32_t x;
        memcpy(&x, p, 4);
        out->i = x;
        return;
    }
    default: memcpy(&out->i, p, 8); return;
    }
}

/* ---- rollback of a partly written record/batch ---- */


static void marks_take(pq_writer *w)
{
    for (size_t i = 0; i < w->schema->n_leaves; i++) {
        colw *c = &w->cols[i];
        w->marks[i] = (mark){c->n_lv, c->n_vals, c->plain.len, c->null_count};
    }
}

static void marks_restore(pq_writer *w)
{
    for (size_t i = 0; i < w->schema->n_leaves; i++) {
        colw *c = &w->cols[i];
        const mark *m = &w->marks[i];
        c->n_lv = m->n_lv;
        c->null_count = m->nulls;
        c->n_vals = m->n_vals;
        if (c->use_dict) continue;
        /* plain values: cut after the kept ones (a dictionary fallback inside the record
         * rebuilt the buffer, so recompute rather than trust the mark) */
        if (c->vsize) {
            c->plain.len = c->n_vals * (size_t)c->vsize;
        } else {
            size_t pos = 0;
            for (size_t k = 0; k < c->n_vals; k++) pos += 4 + pq_get_u32((const uint8_t *)c->plain.p + pos);
            c->plain.len = pos;
        }
    }
    /* min/max may keep values of the dropped record: still valid (wider) bounds */
}

/* ---- rows layer ---- */

static int rows_value_raw(pq_writer *w, const colw *c, rows_type t, const rows_value *v,
                          uint8_t *tmp, const void **raw, size_t *len, fl_err *err)
{
    switch (t) {
    case ROWS_STRING:
        *raw = v->s.p;
        *len = v->s.len;
        return 0;
    case ROWS_BOOL:
        tmp[0] = v->i != 0;
        *len = 1;
        break;
    case ROWS_INT32:
    case ROWS_DATE: {
        int32_t x = (int32_t)v->i;
        memcpy(tmp, &x, 4);
        *len = 4;
        break;
    }
    case ROWS_DOUBLE:
        memcpy(tmp, &v->d, 8);
        *len = 8;
        break;
    case ROWS_DECIMAL: {
        i128 d;
        int rc = decimal_parse(v->s.p, v->s.len, c->node->precision, c->node->scale, &d);
        if (rc) {
            fl_err_set(err, 400, c->node->parent->parent ? c->node->parent->parent->name : c->node->name,
                       "parquet: %s decimal '%.*s' for DECIMAL(%d,%d)",
                       rc == -2 ? "out of range" : "malformed", (int)(v->s.len > 60 ? 60 : v->s.len),
                       v->s.p, c->node->precision, c->node->scale);
            return -1;
        }
        *len = decimal_raw(c->node, d, tmp);
        break;
    }
    default:
        memcpy(tmp, &v->i, 8);
        *len = 8;
        break;
    }
    (void)w;
    *raw = tmp;
    return 0;
}

/* One cell (row r of field i): null, a scalar, or a list's elements. Fails only on bad
 * decimal text. */
static inline int put_cell(pq_writer *w, const rows_batch *b, size_t i, size_t r, fl_err *err)
{
    colw *c = &w->cols[i];
    const rows_field *f = &b->schema->f[i];
    const rows_col *col = &b->cols[i];
    uint8_t tmp[32];
    const void *raw = NULL;
    size_t len = 0;
    if (!f->list) {
        if (!col->valid[r]) {
            col_null(w, c, 0, 0);
            w->rows_nulls[i]++;
            return 0;
        }
        if (rows_value_raw(w, c, f->type, &col->vals[r], tmp, &raw, &len, err)) return -1;
        col_value(w, c, 0, raw, len);
        return 0;
    }
    uint32_t a = col->offs[r], e = col->offs[r + 1];
    if (a == e) {
        col_null(w, c, 0, 0);
        w->rows_nulls[i]++;
        return 0;
    }
    for (uint32_t k = a; k < e; k++) {
        if (rows_value_raw(w, c, f->type, &col->vals[k], tmp, &raw, &len, err)) return -1;
        col_value(w, c, k == a ? 0 : 1, raw, len);
    }
    return 0;
}

/* Row by row, with a rollback point per row: used when a cell can fail (decimals), so the
 * rows before a bad one are kept and the bad row leaves no trace. */
static int write_rows_checked(pq_writer *w, const rows_batch *b, fl_err *err)
{
    for (size_t r = 0; r < b->n_rows; r++) {
        marks_take(w);
        for (size_t i = 0; i < b->schema->n; i++) {
            if (put_cell(w, b, i, r, err) == 0) continue;
            for (size_t j = 0; j < i; j++) /* undo the cells of this row already counted */
                if (rows_is_null(b, j, r)) w->rows_nulls[j]--;
            marks_restore(w);
            return -1;
        }
        if (end_record(w, err)) {
            w->failed = true;
            return -1;
        }
    }
    return 0;
}

/* Column by column over slices of rows: one column's dictionary stays in cache while its
 * values stream in. Row groups are cut between slices, so they may overshoot
 * row_group_bytes by one slice. */
static int write_rows_by_column(pq_writer *w, const rows_batch *b, fl_err *err)
{
    enum { SLICE = 1024 };
    for (size_t r0 = 0; r0 < b->n_rows; r0 += SLICE) {
        size_t r1 = b->n_rows - r0 < SLICE ? b->n_rows : r0 + SLICE;
        for (size_t i = 0; i < b->schema->n; i++)
            for (size_t r = r0; r < r1; r++) put_cell(w, b, i, r, err); /* cannot fail */
        w->rg_rows += (int64_t)(r1 - r0);
        if (w->rg_bytes >= w->opt.row_group_bytes && flush_row_group(w, err)) {
            w->failed = true;
            return -1;
        }
    }
    return 0;
}

int pq_write_batch(pq_writer *w, const rows_batch *b, fl_err *err)
{
    if (!w->rows) {
        fl_err_set(err, 400, w->path, "parquet: writer was opened with a schema tree; use pq_write_json");
        return -1;
    }
    const rows_schema *bs = b->schema;
    if (bs->n != w->rows->n) goto mismatch;
    for (size_t i = 0; i < bs->n; i++)
        if (strcmp(bs->f[i].name, w->rows->f[i].name) || bs->f[i].type != w->rows->f[i].type ||
            bs->f[i].list != w->rows->f[i].list)
            goto mismatch;
    return w->has_decimal ? write_rows_checked(w, b, err) : write_rows_by_column(w, b, err);
mismatch:
    fl_err_set(err, 400, w->path, "parquet: batch schema differs from the writer's schema");
    return -1;
}

/* ---- generic layer: JSON record shredding ---- */

static void node_path(const pq_node *n, char *out, size_t cap)
{
    const pq_node *st[64];
    int d = 0;
    for (; n && n->parent && d < 64; n = n->parent) st[d++] = n;
    size_t o = 0;
    out[0] = 0;
    while (d-- > 0 && o < cap) o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "." : "", st[d]->name);
}

static int shred_err(const pq_node *n, fl_err *err, const char *what)
{
    char where[256];
    node_path(n, where, sizeof where);
    fl_err_set(err, 400, where, "parquet: %s at '%s'", what, where);
    return -1;
}

static void emit_nulls(pq_writer *w, const pq_node *n, int r, int d)
{
    for (int i = n->first_leaf; i < n->first_leaf + n->n_leaves; i++) col_null(w, &w->cols[i], r, d);
}

static int json_leaf_raw(const pq_node *n, const json_val *v, uint8_t *tmp, const void **raw,
                         size_t *len, fl_err *err)
{
    *raw = tmp;
    if (n->phys == PQ_BOOLEAN) {
        if (v->type != JSON_TRUE && v->type != JSON_FALSE) return shred_err(n, err, "expected a boolean");
        tmp[0] = v->type == JSON_TRUE;
        *len = 1;
        return 0;
    }
    if (n->logical == PQ_LT_DECIMAL) {
        if (v->type != JSON_NUMBER && v->type != JSON_STRING) return shred_err(n, err, "expected a decimal");
        i128 d;
        if (decimal_parse(v->u.s, v->len, n->precision, n->scale, &d)) return shred_err(n, err, "bad decimal");
        *len = decimal_raw(n, d, tmp);
        return 0;
    }
    if (n->phys == PQ_BYTE_ARRAY || n->phys == PQ_FIXED_LEN_BYTE_ARRAY) {
        if (v->type != JSON_STRING) return shred_err(n, err, "expected a string");
        if (n->phys == PQ_FIXED_LEN_BYTE_ARRAY && v->len != (uint32_t)n->type_length)
            return shred_err(n, err, "wrong length for a fixed-length value");
        *raw = v->u.s;
        *len = v->len;
        return 0;
    }
    if (n->phys == PQ_FLOAT || n->phys == PQ_DOUBLE) {
        double d;
        if (v->type != JSON_NUMBER || json_num_double(v, &d)) return shred_err(n, err, "expected a number");
        if (n->phys == PQ_FLOAT) {
            float f = (float)d;
            memcpy(tmp, &f, 4);
            *len = 4;
        } else {
            memcpy(tmp, &d, 8);
            *len = 8;
        }
        return 0;
    }
    int64_t x;
    if (v->type == JSON_STRING && n->logical == PQ_LT_DATE) {
        int64_t us;
        if (v->len != 10 || fl_time_parse(v->u.s, v->len, &us)) return shred_err(n, err, "bad date");
        x = us / 86400000000LL - (us % 86400000000LL < 0);
    } else if (v->type == JSON_STRING && n->logical == PQ_LT_TIMESTAMP) {
        if (fl_time_parse(v->u.s, v->len, &x)) return shred_err(n, err, "bad timestamp");
        if (n->unit == PQ_MILLIS) x /= 1000;
        else if (n->unit == PQ_NANOS) x *= 1000;
    } else if (v->type != JSON_NUMBER || json_num_int64(v, &x)) {
        return shred_err(n, err, "expected an integer");
    }
    if (n->phys == PQ_INT32) {
        if (x < INT32_MIN || x > INT32_MAX) return shred_err(n, err, "integer out of int32 range");
        int32_t y = (int32_t)x;
        memcpy(tmp, &y, 4);
        *len = 4;
    } else if (n->phys == PQ_INT64) {
        memcpy(tmp, &x, 8);
        *len = 8;
    } else {
        return shred_err(n, err, "INT96 is read-only");
    }
    return 0;
}

static int shred_field(pq_writer *w, const pq_node *n, const json_val *v, int r, fl_err *err);

static int shred_content(pq_writer *w, const pq_node *n, const json_val *v, int r, fl_err *err)
{
    if (n->phys != PQ_GROUP) {
        uint8_t tmp[32];
        const void *raw = NULL;
        size_t len = 0;
        if (json_leaf_raw(n, v, tmp, &raw, &len, err)) return -1;
        col_value(w, &w->cols[n->leaf], r, raw, len);
        return 0;
    }
    if (n->logical == PQ_LT_LIST) {
        if (v->type != JSON_ARRAY) return shred_err(n, err, "expected an array");
        const pq_node *rep = n->children[0];
        if (v->len == 0) {
            emit_nulls(w, rep, r, n->max_def);
            return 0;
        }
        for (uint32_t i = 0; i < v->len; i++) {
            int rr = i ? rep->max_rep : r;
            const json_val *item = &v->u.a[i];
            int rc;
            if (rep->phys == PQ_GROUP && rep->n_children == 1) rc = shred_field(w, rep->children[0], item, rr, err);
            else if (item->type == JSON_NULL) rc = shred_err(rep, err, "null list element");
            else rc = shred_content(w, rep, item, rr, err);
            if (rc) return -1;
        }
        return 0;
    }
    if (n->logical == PQ_LT_MAP) {
        if (v->type != JSON_OBJECT) return shred_err(n, err, "expected an object (map)");
        const pq_node *kv = n->children[0];
        if (v->len == 0) {
            emit_nulls(w, kv, r, n->max_def);
            return 0;
        }
        for (uint32_t i = 0; i < v->len; i++) {
            int rr = i ? kv->max_rep : r;
            json_val key = {JSON_STRING, v->u.o[i].key_len, {.s = v->u.o[i].key}};
            if (shred_field(w, kv->children[0], &key, rr, err)) return -1;
            if (kv->n_children > 1 && shred_field(w, kv->children[1], &v->u.o[i].val, rr, err)) return -1;
        }
        return 0;
    }
    if (v->type != JSON_OBJECT) return shred_err(n, err, "expected an object");
    for (size_t i = 0; i < n->n_children; i++) {
        const pq_node *c = n->children[i];
        if (shred_field(w, c, json_get(v, c->name), r, err)) return -1;
    }
    return 0;
}

static int shred_field(pq_writer *w, const pq_node *n, const json_val *v, int r, fl_err *err)
{
    bool absent = !v || v->type == JSON_NULL;
    if (n->rep == PQ_REPEATED) {
        if (absent || (v->type == JSON_ARRAY && v->len == 0)) {
            emit_nulls(w, n, r, n->max_def - 1);
            return 0;
        }
        if (v->type != JSON_ARRAY) return shred_err(n, err, "expected an array (repeated field)");
        for (uint32_t i = 0; i < v->len; i++)
            if (shred_content(w, n, &v->u.a[i], i ? n->max_rep : r, err)) return -1;
        return 0;
    }
    if (absent) {
        if (n->rep == PQ_REQUIRED) return shred_err(n, err, "missing required field");
        emit_nulls(w, n, r, n->max_def - 1);
        return 0;
    }
    return shred_content(w, n, v, r, err);
}

int pq_write_json(pq_writer *w, const json_val *record, fl_err *err)
{
    if (w->rows) {
        fl_err_set(err, 400, w->path, "parquet: writer was opened for rows; use pq_write_batch");
        return -1;
    }
    if (!record || record->type != JSON_OBJECT) {
        fl_err_set(err, 400, w->path, "parquet: a record must be a JSON object");
        return -1;
    }
    marks_take(w);
    if (shred_content(w, w->schema->root, record, 0, err)) {
        marks_restore(w);
        return -1;
    }
    if (end_record(w, err)) {
        w->failed = true;
        return -1;
    }
    return 0;
}
