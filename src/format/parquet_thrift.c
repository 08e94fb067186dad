/* parquet_thrift: the low-level codecs of the Parquet room: Thrift compact protocol (writer
 * calls and a generic reader into an arena tree), the RLE/bit-packed hybrid encoding used
 * for levels and dictionary indices, and the page compression codecs. */
#include "parquet_int.h"

#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* ---- Thrift compact writer ---- */

static void put_varint(buf *b, uint64_t v)
{
    uint8_t tmp[10];
    int n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    buf_put(b, tmp, (size_t)n);
}

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

void tw_init(tw *w, buf *b)
{
    w->b = b;
    w->depth = 0;
    w->last[0] = 0;
}

static void field_header(tw *w, int16_t id, int type)
{
    int16_t delta = (int16_t)(id - w->last[w->depth]);
    if (delta > 0 && delta <= 15) {
        buf_putc(w->b, (char)(delta << 4 | type));
    } else {
        buf_putc(w->b, (char)type);
        put_varint(w->b, zigzag(id));
    }
    w->last[w->depth] = id;
}

void tw_i32(tw *w, int16_t id, int32_t v)
{
    field_header(w, id, TH_I32);
    put_varint(w->b, zigzag(v));
}

void tw_i64(tw *w, int16_t id, int64_t v)
{
    field_header(w, id, TH_I64);
    put_varint(w->b, zigzag(v));
}

void tw_bool(tw *w, int16_t id, bool v) { field_header(w, id, v ? TH_TRUE : TH_FALSE); }

void tw_bin(tw *w, int16_t id, const void *p, size_t n)
{
    field_header(w, id, TH_BINARY);
    put_varint(w->b, n);
    buf_put(w->b, p, n);
}

void tw_str(tw *w, int16_t id, const char *s) { tw_bin(w, id, s, strlen(s)); }

static void push(tw *w)
{
    if (w->depth + 1 >= (int)(sizeof w->last / sizeof *w->last)) abort(); /* our schemas only */
    w->last[++w->depth] = 0;
}

void tw_struct_begin(tw *w, int16_t id)
{
    field_header(w, id, TH_STRUCT);
    push(w);
}

void tw_struct_end(tw *w)
{
    buf_putc(w->b, TH_STOP);
    if (w->depth > 0) w->depth--;
}

void tw_list_begin(tw *w, int16_t id, int elem_type, size_t n)
{
    field_header(w, id, TH_LIST);
    if (n < 15) {
        buf_putc(w->b, (char)(n << 4 | (size_t)elem_type));
    } else {
        buf_putc(w->b, (char)(0xf0 | elem_type));
        put_varint(w->b, n);
    }
}

void tw_elem_i32(tw *w, int32_t v) { put_varint(w->b, zigzag(v)); }

void tw_elem_bin(tw *w, const void *p, size_t n)
{
    put_varint(w->b, n);
    buf_put(w->b, p, n);
}

void tw_elem_struct_begin(tw *w) { push(w); }

/* ---- Thrift compact reader ---- */

typedef struct rd {
    const uint8_t *p, *end;
    arena *a;
    fl_err *err;
    int depth;
} rd;

static int rd_fail(rd *r, const char *what)
{
    if (FL_OK(r->err)) fl_err_set(r->err, 500, "parquet footer", "corrupt thrift data: %s", what);
    return -1;
}

static int get_varint(rd *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return rd_fail(r, "truncated varint");
        uint8_t c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return rd_fail(r, "varint too long");
}

static int get_zz(rd *r, int64_t *out)
{
    uint64_t u;
    if (get_varint(r, &u)) return -1;
    *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

static int read_struct(rd *r, th_val *out);

static int read_value(rd *r, int type, th_val *v)
{
    v->type = (uint8_t)type;
    switch (type) {
    case TH_TRUE:
    case TH_FALSE: /* inside lists a bool is one byte: 1 = true */
        v->type = TH_TRUE;
        if (r->p >= r->end) return rd_fail(r, "truncated bool");
        v->u.i = *r->p++ == 1;
        return 0;
    case TH_BYTE:
        if (r->p >= r->end) return rd_fail(r, "truncated byte");
        v->u.i = (int8_t)*r->p++;
        return 0;
    case TH_I16:
    case TH_I32:
    case TH_I64:
        return get_zz(r, &v->u.i);
    case TH_DOUBLE:
        if (r->end - r->p < 8) return rd_fail(r, "truncated double");
        {
            uint64_t bits = pq_get_u64(r->p);
            memcpy(&v->u.d, &bits, 8);
        }
        r->p += 8;
        return 0;
    case TH_BINARY: {
        uint64_t n;
        if (get_varint(r, &n)) return -1;
        if (n > (uint64_t)(r->end - r->p)) return rd_fail(r, "binary past end");
        v->n = (uint32_t)n;
        v->u.bin = r->p;
        r->p += n;
        return 0;
    }
    case TH_LIST:
    case TH_SET: {
        if (r->p >= r->end) return rd_fail(r, "truncated list");
        uint8_t h = *r->p++;
        uint64_t n = h >> 4;
        if (n == 15 && get_varint(r, &n)) return -1;
        if (n > (uint64_t)(r->end - r->p)) return rd_fail(r, "list too long");
        v->type = TH_LIST;
        v->elem_type = h & 0x0f;
        v->n = (uint32_t)n;
        v->u.items = arena_alloc(r->a, (n ? n : 1) * sizeof(th_val));
        for (uint64_t i = 0; i < n; i++) {
            memset(&v->u.items[i], 0, sizeof(th_val));
            if (read_value(r, v->elem_type, &v->u.items[i])) return -1;
        }
        return 0;
    }
    case TH_MAP: { /* parsed and dropped: Parquet metadata has no maps */
        uint64_t n;
        if (get_varint(r, &n)) return -1;
        if (n == 0) return 0;
        if (r->p >= r->end) return rd_fail(r, "truncated map");
        uint8_t kv = *r->p++;
        for (uint64_t i = 0; i < n; i++) {
            th_val k, val;
            if (read_value(r, kv >> 4, &k) || read_value(r, kv & 0x0f, &val)) return -1;
        }
        v->n = 0;
        return 0;
    }
    case TH_STRUCT:
        return read_struct(r, v);
    default:
        return rd_fail(r, "unknown type");
    }
}

static int read_struct(rd *r, th_val *out)
{
    if (++r->depth > 32) return rd_fail(r, "nesting too deep");
    size_t cap = 8, n = 0;
    th_field *f = arena_alloc(r->a, cap * sizeof *f);
    int16_t last = 0;
    for (;;) {
        if (r->p >= r->end) return rd_fail(r, "truncated struct");
        uint8_t h = *r->p++;
        if (h == TH_STOP) break;
        int type = h & 0x0f;
        int16_t id;
        if (h >> 4) {
            id = (int16_t)(last + (h >> 4));
        } else {
            int64_t x;
            if (get_zz(r, &x)) return -1;
            id = (int16_t)x;
        }
        last = id;
        if (n == cap) {
            th_field *g = arena_alloc(r->a, cap * 2 * sizeof *g);
            memcpy(g, f, n * sizeof *f);
            f = g;
            cap *= 2;
        }
        memset(&f[n], 0, sizeof f[n]);
        f[n].id = id;
        if (type == TH_TRUE || type == TH_FALSE) {
            f[n].v.type = TH_TRUE;
            f[n].v.u.i = type == TH_TRUE;
        } else if (read_value(r, type, &f[n].v)) {
            return -1;
        }
        n++;
    }
    out->type = TH_STRUCT;
    out->n = (uint32_t)n;
    out->u.fields = f;
    r->depth--;
    return 0;
}

int th_parse(arena *a, const uint8_t *p, size_t n, size_t *used, th_val *out, fl_err *err)
{
    rd r = {p, p + n, a, err, 0};
    memset(out, 0, sizeof *out);
    if (read_struct(&r, out)) return -1;
    if (used) *used = (size_t)(r.p - p);
    return 0;
}

const th_val *th_get(const th_val *s, int16_t id)
{
    if (!s || s->type != TH_STRUCT) return NULL;
    for (uint32_t i = 0; i < s->n; i++)
        if (s->u.fields[i].id == id) return &s->u.fields[i].v;
    return NULL;
}

int64_t th_int(const th_val *s, int16_t id, int64_t dflt)
{
    const th_val *v = th_get(s, id);
    if (!v) return dflt;
    switch (v->type) {
    case TH_TRUE: case TH_BYTE: case TH_I16: case TH_I32: case TH_I64: return v->u.i;
    default: return dflt;
    }
}

char *th_str(arena *a, const th_val *s, int16_t id)
{
    const th_val *v = th_get(s, id);
    if (!v || v->type != TH_BINARY) return NULL;
    return arena_strndup(a, (const char *)v->u.bin, v->n);
}

/* ---- RLE / bit-packed hybrid ---- */

int pq_bit_width(uint64_t max_value)
{
    int w = 0;
    while (max_value) {
        w++;
        max_value >>= 1;
    }
    return w;
}

static void rle_run(buf *out, uint32_t value, size_t count, int bw)
{
    put_varint(out, (uint64_t)count << 1);
    for (int b = 0; b < (bw + 7) / 8; b++) buf_putc(out, (char)(value >> (8 * b)));
}

/* The encoder is written once as a macro and instantiated for 32-bit dictionary indices
 * and 16-bit levels, so levels need no widened copy.
 * BITPACK: packs groups of 8 values LSB-first; n is padded with zeros to a multiple of 8.
 * ENCODE: RLE runs of 8+ equal values, bit-packed groups in between; a bit-packed stretch
 * only ends on a multiple of 8 values, because padding is allowed only at the very end. */
#define RLE_ENCODER(BITPACK, ENCODE, T)                                                    \
    static void BITPACK(buf *out, const T *v, size_t n, int bw)                            \
    {                                                                                      \
        size_t groups = (n + 7) / 8;                                                       \
        put_varint(out, groups << 1 | 1);                                                  \
        size_t bytes = groups * (size_t)bw;                                                \
        buf_reserve(out, bytes);                                                           \
        uint8_t *dst = (uint8_t *)out->p + out->len;                                       \
        uint64_t acc = 0;                                                                  \
        int bits = 0;                                                                      \
        size_t o = 0;                                                                      \
        for (size_t i = 0; i < groups * 8; i++) {                                          \
            acc |= (uint64_t)(i < n ? v[i] : 0) << bits;                                   \
            bits += bw;                                                                    \
            while (bits >= 8) {                                                            \
                dst[o++] = (uint8_t)acc;                                                   \
                acc >>= 8;                                                                 \
                bits -= 8;                                                                 \
            }                                                                              \
        }                                                                                  \
        out->len += bytes;                                                                 \
        out->p[out->len] = 0;                                                              \
    }                                                                                      \
    void ENCODE(buf *out, const T *v, size_t n, int bw)                                    \
    {                                                                                      \
        size_t i = 0, pend = 0, pend_n = 0; /* pending bit-packed: v[pend..pend+pend_n) */ \
        if (bw == 0) {                                                                     \
            if (n) rle_run(out, 0, n, 0);                                                  \
            return;                                                                        \
        }                                                                                  \
        while (i < n) {                                                                    \
            size_t run = 1;                                                                \
            while (i + run < n && v[i + run] == v[i]) run++;                               \
            size_t fill = (8 - pend_n % 8) % 8;                                            \
            if (run >= fill + 8) {                                                         \
                pend_n += fill;                                                            \
                if (pend_n) BITPACK(out, v + pend, pend_n, bw);                            \
                rle_run(out, v[i], run - fill, bw);                                        \
                i += run;                                                                  \
                pend = i;                                                                  \
                pend_n = 0;                                                                \
            } else {                                                                       \
                pend_n += run;                                                             \
                i += run;                                                                  \
            }                                                                              \
        }                                                                                  \
        if (pend_n) BITPACK(out, v + pend, pend_n, bw);                                    \
    }

RLE_ENCODER(bitpack32, pq_rle_encode, uint32_t)
RLE_ENCODER(bitpack16, pq_rle_encode16, uint16_t)

int pq_rle_decode(const uint8_t *p, size_t len, int bw, uint32_t *out, size_t n)
{
    const uint8_t *end = p + len;
    size_t o = 0;
    int vbytes = (bw + 7) / 8;
    if (bw > 32) return -1;
    while (o < n) {
        uint64_t h = 0;
        int shift = 0;
        for (;;) {
            if (p >= end || shift > 63) return -1;
            uint8_t c = *p++;
            h |= (uint64_t)(c & 0x7f) << shift;
            shift += 7;
            if (!(c & 0x80)) break;
        }
        if (h & 1) {
            uint64_t count = (h >> 1) * 8;
            uint64_t bytes = (h >> 1) * (uint64_t)bw;
            if (bytes > (uint64_t)(end - p)) {
                /* writers may truncate the last group's padding bytes */
                bytes = (uint64_t)(end - p);
                count = bw ? bytes * 8 / (uint64_t)bw : count;
            }
            uint64_t acc = 0;
            int bits = 0;
            const uint8_t *q = p;
            uint32_t mask = bw == 32 ? 0xffffffffu : ((1u << bw) - 1);
            for (uint64_t k = 0; k < count && o < n; k++) {
                while (bits < bw) {
                    acc |= (uint64_t)*q++ << bits;
                    bits += 8;
                }
                out[o++] = (uint32_t)acc & mask;
                acc >>= bw;
                bits -= bw;
            }
            p += bytes;
        } else {
            uint64_t count = h >> 1;
            if (vbytes > end - p) return -1;
            uint32_t val = 0;
            for (int b = 0; b < vbytes; b++) val |= (uint32_t)p[b] << (8 * b);
            p += vbytes;
            if (count == 0) return -1;
            for (uint64_t k = 0; k < count && o < n; k++) out[o++] = val;
        }
    }
    return 0;
}

/* ---- compression ---- */

int pq_compress(pq_codec c, int level, const void *src, size_t n, buf *out, void **zctx,
                fl_err *err)
{
    switch (c) {
    case PQ_UNCOMPRESSED:
        buf_put(out, src, n);
        return 0;
    case PQ_SNAPPY: {
        size_t cap = snappy_max_compressed_length(n);
        buf_reserve(out, cap);
        size_t got = cap;
        if (snappy_compress(src, n, out->p + out->len, &got) != SNAPPY_OK) break;
        out->len += got;
        out->p[out->len] = 0;
        return 0;
    }
    case PQ_ZSTD: {
        size_t cap = ZSTD_compressBound(n);
        buf_reserve(out, cap);
        /* a context per writer: creating one per page costs as much as small pages */
        if (!*zctx && !(*zctx = ZSTD_createCCtx())) break;
        size_t got = ZSTD_compressCCtx(*zctx, out->p + out->len, cap, src, n, level ? level : 3);
        if (ZSTD_isError(got)) break;
        out->len += got;
        out->p[out->len] = 0;
        return 0;
    }
    case PQ_GZIP: {
        z_stream z;
        memset(&z, 0, sizeof z);
        if (deflateInit2(&z, level ? level : 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            break;
        size_t cap = deflateBound(&z, (uLong)n) + 32;
        buf_reserve(out, cap);
        z.next_in = (Bytef *)src;
        z.avail_in = (uInt)n;
        z.next_out = (Bytef *)out->p + out->len;
        z.avail_out = (uInt)cap;
        int rc = deflate(&z, Z_FINISH);
        size_t got = cap - z.avail_out;
        deflateEnd(&z);
        if (rc != Z_STREAM_END) break;
        out->len += got;
        out->p[out->len] = 0;
        return 0;
    }
    }
    fl_err_set(err, 500, "parquet", "compression failed (codec %d, %zu bytes)", (int)c, n);
    return -1;
}

void pq_compress_free(void *zctx)
{
    if (zctx) ZSTD_freeCCtx(zctx);
}

int pq_decompress(int codec, const void *src, size_t n, void *dst, size_t dst_len, fl_err *err)
{
    switch (codec) {
    case PQ_UNCOMPRESSED:
        if (n != dst_len) break;
        memcpy(dst, src, n);
        return 0;
    case PQ_SNAPPY: {
        size_t got = dst_len;
        if (snappy_uncompress(src, n, dst, &got) != SNAPPY_OK || got != dst_len) break;
        return 0;
    }
    case PQ_ZSTD: {
        size_t got = ZSTD_decompress(dst, dst_len, src, n);
        if (ZSTD_isError(got) || got != dst_len) break;
        return 0;
    }
    case PQ_GZIP: {
        z_stream z;
        memset(&z, 0, sizeof z);
        if (inflateInit2(&z, 32 + 15) != Z_OK) break; /* gzip or zlib header */
        z.next_in = (Bytef *)src;
        z.avail_in = (uInt)n;
        z.next_out = dst;
        z.avail_out = (uInt)dst_len;
        int rc = inflate(&z, Z_FINISH);
        size_t got = dst_len - z.avail_out;
        inflateEnd(&z);
        if ((rc != Z_STREAM_END && rc != Z_OK && rc != Z_BUF_ERROR) || got != dst_len) break;
        return 0;
    }
    default:
        fl_err_set(err, 500, "parquet", "unsupported compression codec %d", codec);
        return -1;
    }
    fl_err_set(err, 500, "parquet", "corrupt compressed page (codec %d)", codec);
    return -1;
}
