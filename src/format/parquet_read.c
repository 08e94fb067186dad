/* parquet_read: the Parquet reader. Owns the footer (parsed once), column chunk decoding
 * (pages v1/v2, dictionary, PLAIN/RLE/dictionary encodings, decompression) into level and
 * value arrays for one row group at a time, and the two output layers: rows batches
 * (flat columns and lists) and JSON records assembled from the levels (Dremel). */
#include "parquet_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One decoded value: 16 bytes, since a row group holds millions of them. */
typedef struct pval {
    union {
        int64_t i;
        double d;
        const uint8_t *p; /* BYTE_ARRAY / FLBA / INT96 bytes (len of them) */
    } u;
    uint32_t len;
} pval;

/* One decoded column chunk. */
typedef struct colr {
    const pq_node *node;
    uint16_t *def, *rep;
    size_t n;           /* level entries */
    pval *vals;
    size_t n_vals;
    size_t pos, vpos;   /* assembly cursors */
} colr;

struct pq_reader {
    int fd;
    char *path;
    arena *meta;        /* footer tree */
    arena *rg;          /* current row group's decoded data */
    th_val fmd;
    pq_schema *schema;
    const th_val *groups;
    size_t n_groups, next;
    int64_t num_rows;
    int64_t file_size;
};

/* Refuse absurd sizes from a corrupt footer or page header before allocating for them. */
#define MAX_CHUNK_VALUES ((int64_t)1 << 28)

static int fail(fl_err *err, const pq_reader *r, const pq_node *n, const char *what)
{
    char where[300];
    snprintf(where, sizeof where, "%s%s%s", r->path, n ? ":" : "", n ? n->name : "");
    fl_err_set(err, 500, where, "parquet: %s (%s)", what, where);
    return -1;
}

static int read_at(pq_reader *r, void *dst, size_t n, int64_t off, fl_err *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(r->fd, (char *)dst + got, n - got, (off_t)(off + (int64_t)got));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return fail(err, r, NULL, k < 0 ? strerror(errno) : "file is truncated");
        got += (size_t)k;
    }
    return 0;
}

pq_reader *pq_reader_open(const char *path, fl_err *err)
{
    pq_reader *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->path = strdup(path);
    r->meta = arena_new(0);
    r->rg = arena_new(1 << 20);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (!r->path || !r->meta || !r->rg) abort();
    if (r->fd < 0) {
        fl_err_set(err, 404, path, "parquet: cannot open %s: %s", path, strerror(errno));
        goto bad;
    }
    struct stat st;
    uint8_t tail[8];
    if (fstat(r->fd, &st) || st.st_size < 12) {
        fail(err, r, NULL, "not a Parquet file (too small)");
        goto bad;
    }
    if (read_at(r, tail, 8, st.st_size - 8, err)) goto bad;
    if (memcmp(tail + 4, "PAR1", 4) != 0) {
        fail(err, r, NULL, memcmp(tail + 4, "PARE", 4) ? "not a Parquet file (no PAR1 magic)"
                                                        : "encrypted Parquet files are not supported");
        goto bad;
    }
    r->file_size = st.st_size;
    uint32_t flen = pq_get_u32(tail);
    if ((int64_t)flen > st.st_size - 12) {
        fail(err, r, NULL, "footer length past the start of the file");
        goto bad;
    }
    uint8_t *foot = arena_alloc(r->meta, flen);
    if (read_at(r, foot, flen, st.st_size - 8 - flen, err)) goto bad;
    if (th_parse(r->meta, foot, flen, NULL, &r->fmd, err)) goto bad;
    r->schema = pq_schema_from_thrift(th_get(&r->fmd, 2), err);
    if (!r->schema) goto bad;
    r->num_rows = th_int(&r->fmd, 3, 0);
    r->groups = th_get(&r->fmd, 4);
    if (r->groups && r->groups->type == TH_LIST) r->n_groups = r->groups->n;
    return r;
bad:
    pq_reader_close(r);
    return NULL;
}

void pq_reader_close(pq_reader *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    pq_schema_free(r->schema);
    arena_free(r->meta);
    arena_free(r->rg);
    free(r->path);
    free(r);
}

const pq_schema *pq_reader_schema(const pq_reader *r) { return r->schema; }
int64_t pq_reader_num_rows(const pq_reader *r) { return r->num_rows; }
size_t pq_reader_num_row_groups(const pq_reader *r) { return r->n_groups; }
void pq_reader_rewind(pq_reader *r) { r->next = 0; }

/* ---- values ---- */

static int decode_plain(const pq_node *n, const uint8_t *p, size_t len, size_t count, pval *out)
{
    const uint8_t *end = p + len;
    if (n->phys == PQ_BOOLEAN) {
        if ((count + 7) / 8 > len) return -1;
        for (size_t i = 0; i < count; i++) out[i].u.i = (p[i >> 3] >> (i & 7)) & 1;
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        switch (n->phys) {
        case PQ_INT32: {
            if (end - p < 4) return -1;
            int32_t x;
            memcpy(&x, p, 4);
            out[i].u.i = x;
            p += 4;
            break;
        }
        case PQ_INT64:
            if (end - p < 8) return -1;
            memcpy(&out[i].u.i, p, 8);
            p += 8;
            break;
        case PQ_FLOAT: {
            if (end - p < 4) return -1;
            float f;
            memcpy(&f, p, 4);
            out[i].u.d = f;
            p += 4;
            break;
        }
        case PQ_DOUBLE:
            if (end - p < 8) return -1;
            memcpy(&out[i].u.d, p, 8);
            p += 8;
            break;
        case PQ_INT96:
            if (end - p < 12) return -1;
            out[i].u.p = p;
            out[i].len = 12;
            p += 12;
            break;
        case PQ_FIXED_LEN_BYTE_ARRAY:
            if (end - p < n->type_length) return -1;
            out[i].u.p = p;
            out[i].len = (uint32_t)n->type_length;
            p += n->type_length;
            break;
        default: {
            if (end - p < 4) return -1;
            uint32_t l = pq_get_u32(p);
            p += 4;
            if ((size_t)(end - p) < l) return -1;
            out[i].u.p = p;
            out[i].len = l;
            p += l;
            break;
        }
        }
    }
    return 0;
}

typedef struct chunk_dec {
    pval *dict;
    size_t n_dict;
} chunk_dec;

static int decode_values(pq_reader *r, colr *c, chunk_dec *cd, int enc, const uint8_t *p,
                         size_t len, size_t count, fl_err *err)
{
    pval *out = c->vals + c->n_vals;
    const pq_node *n = c->node;
    if (enc == PQE_PLAIN) {
        if (decode_plain(n, p, len, count, out)) return fail(err, r, n, "corrupt PLAIN values");
    } else if (enc == PQE_PLAIN_DICTIONARY || enc == PQE_RLE_DICTIONARY) {
        if (!cd->dict) return fail(err, r, n, "dictionary-encoded page without a dictionary");
        if (count && len < 1) return fail(err, r, n, "corrupt dictionary indices");
        uint32_t *idx = arena_alloc(r->rg, (count ? count : 1) * sizeof *idx);
        if (count && pq_rle_decode(p + 1, len - 1, p[0], idx, count))
            return fail(err, r, n, "corrupt dictionary indices");
        for (size_t i = 0; i < count; i++) {
            if (idx[i] >= cd->n_dict) return fail(err, r, n, "dictionary index out of range");
            out[i] = cd->dict[idx[i]];
        }
    } else if (enc == PQE_RLE && n->phys == PQ_BOOLEAN) {
        uint32_t *bits = arena_alloc(r->rg, (count ? count : 1) * sizeof *bits);
        if (len < 4 || pq_rle_decode(p + 4, len - 4, 1, bits, count))
            return fail(err, r, n, "corrupt RLE booleans");
        for (size_t i = 0; i < count; i++) out[i].u.i = bits[i];
    } else {
        char msg[64];
        snprintf(msg, sizeof msg, "unsupported value encoding %d", enc);
        return fail(err, r, n, msg);
    }
    c->n_vals += count;
    return 0;
}

static int decode_levels(pq_reader *r, colr *c, const uint8_t *p, size_t len, int max,
                         uint16_t *out, size_t count, fl_err *err)
{
    uint32_t *tmp = arena_alloc(r->rg, (count ? count : 1) * sizeof *tmp);
    if (pq_rle_decode(p, len, pq_bit_width((uint64_t)max), tmp, count))
        return fail(err, r, c->node, "corrupt levels");
    for (size_t i = 0; i < count; i++) {
        if (tmp[i] > (uint32_t)max) return fail(err, r, c->node, "level out of range");
        out[i] = (uint16_t)tmp[i];
    }
    return 0;
}

static void grow_levels(pq_reader *r, colr *c, size_t need, size_t *cap)
{
    if (c->def && c->n + need <= *cap) return;
    size_t nc = (*cap ? *cap * 2 : 1024);
    while (nc < c->n + need) nc *= 2;
    /* flat columns (max_rep 0) keep no repetition levels: they would all be 0 */
    uint16_t *d = arena_alloc(r->rg, nc * sizeof *d);
    uint16_t *rp = c->node->max_rep ? arena_alloc(r->rg, nc * sizeof *rp) : NULL;
    pval *v = arena_alloc(r->rg, nc * sizeof *v);
    if (c->n) {
        memcpy(d, c->def, c->n * sizeof *d);
        if (rp) memcpy(rp, c->rep, c->n * sizeof *rp);
    }
    if (c->n_vals) memcpy(v, c->vals, c->n_vals * sizeof *v);
    c->def = d;
    c->rep = rp;
    c->vals = v;
    *cap = nc;
}

static int data_page(pq_reader *r, colr *c, chunk_dec *cd, const th_val *h, int v2,
                     const uint8_t *body, size_t csize, size_t usize, int codec, size_t *cap,
                     fl_err *err)
{
    const pq_node *n = c->node;
    const th_val *dh = th_get(h, v2 ? 8 : 5);
    if (!dh) return fail(err, r, n, "data page without its header");
    int64_t cnt = th_int(dh, 1, 0);
    /* Every writer we know keeps pages far below 4M entries (parquet-mr and Arrow: 20k rows,
     * fhirlake: 1M); a bigger count comes from a corrupt header and would only allocate. */
    if (cnt < 0 || cnt > MAX_CHUNK_VALUES - (int64_t)c->n || cnt > ((int64_t)1 << 22) + (int64_t)usize * 8)
        return fail(err, r, n, "bad page value count");
    size_t count = (size_t)cnt;
    int enc = (int)th_int(dh, v2 ? 4 : 2, 0);
    grow_levels(r, c, count, cap);
    const uint8_t *p;
    size_t len;
    if (!v2 && ((n->max_def && th_int(dh, 3, PQE_RLE) != PQE_RLE) ||
                (n->max_rep && th_int(dh, 4, PQE_RLE) != PQE_RLE)))
        return fail(err, r, n, "levels not RLE-encoded (the deprecated BIT_PACKED is not supported)");
    if (!v2) {
        uint8_t *u = arena_alloc(r->rg, usize ? usize : 1);
        if (pq_decompress(codec, body, csize, u, usize, err)) return -1;
        p = u;
        len = usize;
        for (int pass = 0; pass < 2; pass++) { /* repetition then definition levels */
            int max = pass ? n->max_def : n->max_rep;
            if (max == 0) {
                if (pass) memset(c->def + c->n, 0, count * sizeof *c->def);
                continue;
            }
            uint16_t *dst = pass ? c->def + c->n : c->rep + c->n;
            if (len < 4) return fail(err, r, n, "truncated levels");
            uint32_t ll = pq_get_u32(p);
            if (ll > len - 4) return fail(err, r, n, "levels past the page end");
            if (decode_levels(r, c, p + 4, ll, max, dst, count, err)) return -1;
            p += 4 + ll;
            len -= 4 + ll;
        }
    } else {
        size_t dl = (size_t)th_int(dh, 5, 0), rl = (size_t)th_int(dh, 6, 0);
        if (dl + rl > csize || dl + rl > usize) return fail(err, r, n, "bad v2 level lengths");
        if (n->max_rep && decode_levels(r, c, body, rl, n->max_rep, c->rep + c->n, count, err))
            return -1;
        if (n->max_def) {
            if (decode_levels(r, c, body + rl, dl, n->max_def, c->def + c->n, count, err)) return -1;
        } else {
            memset(c->def + c->n, 0, count * sizeof *c->def);
        }
        len = usize - dl - rl;
        if (th_int(dh, 7, 1)) {
            uint8_t *u = arena_alloc(r->rg, len ? len : 1);
            if (pq_decompress(codec, body + dl + rl, csize - dl - rl, u, len, err)) return -1;
            p = u;
        } else {
            p = body + dl + rl;
        }
    }
    size_t nv = 0;
    for (size_t i = 0; i < count; i++) nv += c->def[c->n + i] == n->max_def;
    if (decode_values(r, c, cd, enc, p, len, nv, err)) return -1;
    c->n += count;
    return 0;
}

static int decode_chunk(pq_reader *r, const th_val *rg, int leaf, colr *c, fl_err *err)
{
    memset(c, 0, sizeof *c);
    c->node = r->schema->leaves[leaf];
    const th_val *cols = th_get(rg, 1);
    if (!cols || cols->type != TH_LIST || (size_t)leaf >= cols->n)
        return fail(err, r, c->node, "row group lacks the column");
    const th_val *md = th_get(&cols->u.items[leaf], 3);
    if (!md) return fail(err, r, c->node, "column chunk without metadata");
    int codec = (int)th_int(md, 4, 0);
    int64_t total = th_int(md, 5, 0), csize = th_int(md, 7, 0);
    int64_t data_off = th_int(md, 9, 0), dict_off = th_int(md, 11, -1);
    if (total == 0) return 0; /* e.g. the empty row group of an empty pyarrow table */
    int64_t start = dict_off > 0 && dict_off < data_off ? dict_off : data_off;
    if (csize < 0 || start < 4 || start > r->file_size - 8 || csize > r->file_size - 8 - start ||
        total < 0 || total > MAX_CHUNK_VALUES)
        return fail(err, r, c->node, "bad column chunk bounds");
    uint8_t *data = arena_alloc(r->rg, (size_t)csize + 1);
    if (read_at(r, data, (size_t)csize, start, err)) return -1;
    size_t off = 0, cap = 0;
    chunk_dec cd = {NULL, 0};
    grow_levels(r, c, (size_t)total, &cap); /* sized once from the metadata: no regrowth */
    while ((int64_t)c->n < total && off < (size_t)csize) {
        th_val h;
        size_t hl;
        if (th_parse(r->rg, data + off, (size_t)csize - off, &hl, &h, err)) return -1;
        int type = (int)th_int(&h, 1, -1);
        int64_t us = th_int(&h, 2, -1), cs = th_int(&h, 3, -1);
        off += hl;
        if (us < 0 || cs < 0 || (uint64_t)cs > (size_t)csize - off || us > ((int64_t)1 << 31))
            return fail(err, r, c->node, "bad page sizes");
        const uint8_t *body = data + off;
        off += (size_t)cs;
        if (type == PQP_DICTIONARY) {
            const th_val *dh = th_get(&h, 7);
            int64_t ndv = th_int(dh, 1, 0);
            if (ndv < 0 || ndv > us * 8 + 8) return fail(err, r, c->node, "bad dictionary size");
            size_t nd = (size_t)ndv;
            uint8_t *u = arena_alloc(r->rg, us ? (size_t)us : 1);
            if (pq_decompress(codec, body, (size_t)cs, u, (size_t)us, err)) return -1;
            cd.dict = arena_alloc(r->rg, (nd ? nd : 1) * sizeof *cd.dict);
            cd.n_dict = nd;
            memset(cd.dict, 0, (nd ? nd : 1) * sizeof *cd.dict);
            if (decode_plain(c->node, u, (size_t)us, nd, cd.dict)) return fail(err, r, c->node, "corrupt dictionary page");
        } else if (type == PQP_DATA || type == PQP_DATA_V2) {
            if (data_page(r, c, &cd, &h, type == PQP_DATA_V2, body, (size_t)cs, (size_t)us, codec, &cap, err))
                return -1;
        } /* index pages and unknown pages are skipped */
    }
    if ((int64_t)c->n != total) return fail(err, r, c->node, "column chunk has fewer values than its metadata says");
    return 0;
}

/* Row count of a row group, checked against its first column so a corrupt count cannot
 * drive allocations (every record has at least one entry in every leaf column). */
static int rg_rows(pq_reader *r, const th_val *rg, int64_t *out, fl_err *err)
{
    int64_t n = th_int(rg, 3, -1);
    const th_val *cols = th_get(rg, 1);
    int64_t first = -1;
    if (cols && cols->type == TH_LIST && cols->n > 0) first = th_int(th_get(&cols->u.items[0], 3), 5, -1);
    if (n < 0 || n > MAX_CHUNK_VALUES || (r->schema->n_leaves > 0 && n > first))
        return fail(err, r, NULL, "bad row group row count");
    *out = n;
    return 0;
}

/* ---- value conversion ---- */

static int64_t int96_micros(const uint8_t *p)
{
    uint64_t nanos = pq_get_u64(p);
    uint32_t jd = pq_get_u32(p + 8);
    return ((int64_t)jd - 2440588) * 86400000000LL + (int64_t)(nanos / 1000);
}

static int64_t ts_micros(const pq_node *n, const pval *v)
{
    if (n->phys == PQ_INT96) return int96_micros(v->u.p);
    if (n->unit == PQ_MILLIS) return v->u.i * 1000;
    if (n->unit == PQ_NANOS) return v->u.i / 1000 - (v->u.i % 1000 < 0);
    return v->u.i;
}

static bool leaf_rows_type(const pq_node *n, rows_type *t)
{
    if (n->logical == PQ_LT_DECIMAL) *t = ROWS_DECIMAL;
    else if (n->phys == PQ_INT96 || n->logical == PQ_LT_TIMESTAMP) *t = ROWS_TIMESTAMP;
    else if (n->logical == PQ_LT_DATE) *t = ROWS_DATE;
    else if (n->phys == PQ_BOOLEAN) *t = ROWS_BOOL;
    else if (n->phys == PQ_INT32) *t = ROWS_INT32;
    else if (n->phys == PQ_INT64) *t = ROWS_INT64;
    else if (n->phys == PQ_FLOAT || n->phys == PQ_DOUBLE) *t = ROWS_DOUBLE;
    else if (n->phys == PQ_BYTE_ARRAY || n->phys == PQ_FIXED_LEN_BYTE_ARRAY) *t = ROWS_STRING;
    else return false;
    return true;
}

/* The leaf holding a top-level field's values and whether it is a list; NULL if the
 * field has no rows mapping. */
static const pq_node *rows_leaf(const pq_node *f, bool *list)
{
    *list = false;
    if (f->phys != PQ_GROUP) {
        *list = f->rep == PQ_REPEATED;
        return f;
    }
    if (f->logical != PQ_LT_LIST || f->n_children != 1) return NULL;
    const pq_node *rep = f->children[0];
    *list = true;
    if (rep->phys != PQ_GROUP) return rep;                    /* two-level list */
    if (rep->n_children == 1 && rep->children[0]->phys != PQ_GROUP) return rep->children[0];
    return NULL;
}

rows_schema *pq_reader_rows_schema(const pq_reader *r)
{
    rows_schema *s = rows_schema_new();
    const pq_node *root = r->schema->root;
    for (size_t i = 0; i < root->n_children; i++) {
        bool list;
        rows_type t;
        const pq_node *leaf = rows_leaf(root->children[i], &list);
        if (leaf && leaf_rows_type(leaf, &t)) rows_schema_add(s, root->children[i]->name, t, list);
    }
    return s;
}

static void set_rows_value(rows_batch *b, size_t col, rows_type t, const pq_node *n,
                           const pval *v, arena *tmp)
{
    switch (t) {
    case ROWS_STRING: rows_set_str(b, col, (const char *)v->u.p, v->len); break;
    case ROWS_DOUBLE: rows_set_double(b, col, v->u.d); break;
    case ROWS_TIMESTAMP: rows_set_int(b, col, ts_micros(n, v)); break;
    case ROWS_DECIMAL: {
        i128 d = n->phys == PQ_INT32 || n->phys == PQ_INT64 ? (i128)v->u.i
                                                          : pq_decimal_from_raw(n, v->u.p, v->len);
        const char *txt = pq_decimal_text(tmp, d, n->scale);
        rows_set_str(b, col, txt, strlen(txt));
        break;
    }
    default: rows_set_int(b, col, v->u.i); break;
    }
}

int pq_read_batch(pq_reader *r, rows_batch *out, fl_err *err)
{
    if (r->next >= r->n_groups) return 0;
    rows_batch_clear(out);
    arena_reset(r->rg);
    const th_val *rg = &r->groups->u.items[r->next++];
    int64_t nrows;
    if (rg_rows(r, rg, &nrows, err)) return -1;
    const rows_schema *want = out->schema;
    colr *cols = arena_calloc(r->rg, (want->n ? want->n : 1) * sizeof *cols);
    const pq_node **leaves = arena_calloc(r->rg, (want->n ? want->n : 1) * sizeof *leaves);
    const pq_node *root = r->schema->root;
    for (size_t j = 0; j < want->n; j++) {
        for (size_t i = 0; i < root->n_children; i++) {
            if (strcmp(root->children[i]->name, want->f[j].name) != 0) continue;
            bool list;
            rows_type t;
            const pq_node *leaf = rows_leaf(root->children[i], &list);
            if (!leaf || !leaf_rows_type(leaf, &t) || list != want->f[j].list ||
                !(t == want->f[j].type || (t == ROWS_INT32 && want->f[j].type == ROWS_INT64))) {
                fl_err_set(err, 400, want->f[j].name,
                           "parquet: column '%s' in %s has another type than the %s%s asked for",
                           want->f[j].name, r->path, rows_type_name(want->f[j].type),
                           want->f[j].list ? " list" : "");
                return -1;
            }
            leaves[j] = leaf;
            if (decode_chunk(r, rg, leaf->leaf, &cols[j], err)) return -1;
            if (!list && (int64_t)cols[j].n != nrows) return fail(err, r, leaf, "value count differs from the row count");
            break;
        }
    }
    arena *tmp = arena_new(0);
    for (int64_t row = 0; row < nrows; row++) {
        rows_begin_row(out);
        for (size_t j = 0; j < want->n; j++) {
            colr *c = &cols[j];
            const pq_node *n = leaves[j];
            if (!n) continue; /* absent from the file: null */
            rows_type t = want->f[j].type;
            if (!want->f[j].list) {
                if (c->def[c->pos++] == n->max_def) set_rows_value(out, j, t, n, &c->vals[c->vpos++], tmp);
                continue;
            }
            bool first = true;
            while (c->pos < c->n && (first || c->rep[c->pos] > 0)) {
                first = false;
                /* null elements cannot be represented in a rows list: they are dropped */
                if (c->def[c->pos++] == n->max_def) set_rows_value(out, j, t, n, &c->vals[c->vpos++], tmp);
            }
        }
        rows_end_row(out);
        if ((row & 1023) == 1023) arena_reset(tmp);
    }
    arena_free(tmp);
    return 1;
}

int pq_scan_strings(pq_reader *r, const char *name, pq_str_fn fn, void *ctx, fl_err *err)
{
    const pq_node *root = r->schema->root, *leaf = NULL;
    for (size_t i = 0; i < root->n_children; i++)
        if (!strcmp(root->children[i]->name, name)) leaf = root->children[i];
    if (!leaf || leaf->phys != PQ_BYTE_ARRAY || leaf->max_rep) {
        fl_err_set(err, 400, name, "parquet: %s has no flat string column '%s'", r->path, name);
        return -1;
    }
    int64_t base = 0;
    for (size_t g = 0; g < r->n_groups; g++) {
        arena_reset(r->rg);
        const th_val *rg = &r->groups->u.items[g];
        int64_t nrows;
        colr c;
        if (rg_rows(r, rg, &nrows, err) || decode_chunk(r, rg, leaf->leaf, &c, err)) return -1;
        if ((int64_t)c.n != nrows) return fail(err, r, leaf, "value count differs from the row count");
        for (size_t i = 0, v = 0; i < c.n; i++)
            if (c.def[i] == leaf->max_def) {
                const pval *x = &c.vals[v++];
                if (fn(ctx, base + (int64_t)i, (const char *)x->u.p, x->len)) return 0;
            }
        base += nrows;
    }
    return 0;
}

/* ---- JSON record assembly ---- */

typedef struct asmb {
    colr *cols;
    arena *a;
    const char **names;  /* per node index: its name copied into a once per call */
    bool bad;           /* levels inconsistent with the schema (corrupt file) */
} asmb;

static inline colr *first_col(asmb *s, const pq_node *n) { return &s->cols[n->first_leaf]; }

static inline int peek_def(asmb *s, const pq_node *n)
{
    colr *c = first_col(s, n);
    return c->pos < c->n ? c->def[c->pos] : -1;
}

static void skip_entry(asmb *s, const pq_node *n)
{
    for (int i = n->first_leaf; i < n->first_leaf + n->n_leaves; i++) {
        if (s->cols[i].pos >= s->cols[i].n) s->bad = true;
        else s->cols[i].pos++;
    }
}

static void json_number_text(asmb *s, json_val *out, const char *txt)
{
    out->type = JSON_NUMBER;
    out->u.s = arena_strdup(s->a, txt);
    out->len = (uint32_t)strlen(txt);
}

static void leaf_json(asmb *s, const pq_node *n, const pval *v, json_val *out)
{
    char tmp[64];
    memset(out, 0, sizeof *out);
    if (n->phys == PQ_BOOLEAN) {
        out->type = v->u.i ? JSON_TRUE : JSON_FALSE;
    } else if (n->logical == PQ_LT_DECIMAL) {
        i128 d = n->phys == PQ_INT32 || n->phys == PQ_INT64 ? (i128)v->u.i
                                                          : pq_decimal_from_raw(n, v->u.p, v->len);
        json_number_text(s, out, pq_decimal_text(s->a, d, n->scale));
    } else if (n->logical == PQ_LT_DATE) {
        int64_t y;
        unsigned m, d;
        fl_civil_from_days(v->u.i, &y, &m, &d);
        snprintf(tmp, sizeof tmp, "%04lld-%02u-%02u", (long long)y, m, d);
        out->type = JSON_STRING;
        out->u.s = arena_strdup(s->a, tmp);
        out->len = (uint32_t)strlen(tmp);
    } else if (n->phys == PQ_INT96 || n->logical == PQ_LT_TIMESTAMP) {
        int len = fl_time_format(ts_micros(n, v), tmp);
        out->type = JSON_STRING;
        out->u.s = arena_strndup(s->a, tmp, (size_t)len);
        out->len = (uint32_t)len;
    } else if (n->phys == PQ_INT32 || n->phys == PQ_INT64) {
        if (n->logical == PQ_LT_INT && !n->is_signed)
            snprintf(tmp, sizeof tmp, "%llu", n->phys == PQ_INT32 ? (unsigned long long)(uint32_t)v->u.i
                                                               : (unsigned long long)v->u.i);
        else snprintf(tmp, sizeof tmp, "%lld", (long long)v->u.i);
        json_number_text(s, out, tmp);
    } else if (n->phys == PQ_FLOAT || n->phys == PQ_DOUBLE) {
        if (!isfinite(v->u.d)) return; /* JSON null */
        for (int prec = n->phys == PQ_FLOAT ? 6 : 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v->u.d);
            if (n->phys == PQ_FLOAT ? (float)strtod(tmp, NULL) == (float)v->u.d : strtod(tmp, NULL) == v->u.d) break;
        }
        json_number_text(s, out, tmp);
    } else {
        out->type = JSON_STRING;
        out->u.s = arena_strndup(s->a, (const char *)v->u.p, v->len);
        out->len = v->len;
    }
}

typedef struct jvec {
    json_val *v;
    uint32_t n, cap;
} jvec;

static json_val *jvec_push(asmb *s, jvec *j)
{
    if (j->n == j->cap) {
        uint32_t nc = j->cap ? j->cap * 2 : 4;
        json_val *g = arena_alloc(s->a, nc * sizeof *g);
        if (j->n) memcpy(g, j->v, j->n * sizeof *g);
        j->v = g;
        j->cap = nc;
    }
    memset(&j->v[j->n], 0, sizeof(json_val));
    return &j->v[j->n++];
}

static bool read_field(asmb *s, const pq_node *n, json_val *out);
static void read_content(asmb *s, const pq_node *n, json_val *out);

/* Items of a repeated node; each item read by content (or its single child for LIST). */
static void read_repeated(asmb *s, const pq_node *rep, int mode, json_val *out)
{
    jvec items = {NULL, 0, 0};
    jvec kvs = {NULL, 0, 0};
    if (peek_def(s, rep) < rep->max_def) {
        skip_entry(s, rep);
    } else {
        do {
            if (mode == 2) { /* MAP key_value: key + value -> one member */
                json_val k, v;
                memset(&k, 0, sizeof k);
                memset(&v, 0, sizeof v);
                read_field(s, rep->children[0], &k);
                if (rep->n_children > 1) read_field(s, rep->children[1], &v);
                json_val *kv = jvec_push(s, &kvs);
                kv->type = k.type == JSON_STRING ? k.len : 0; /* stash: key bytes length */
                kv->u.s = k.type == JSON_STRING ? k.u.s : "";
                json_val *val = jvec_push(s, &kvs);
                *val = v;
            } else if (mode == 1) {
                if (!read_field(s, rep->children[0], jvec_push(s, &items))) items.v[items.n - 1].type = JSON_NULL;
            } else {
                read_content(s, rep, jvec_push(s, &items));
            }
            colr *c = first_col(s, rep);
            if (s->bad || c->pos >= c->n || c->rep[c->pos] != rep->max_rep) break;
        } while (1);
    }
    memset(out, 0, sizeof *out);
    if (mode == 2) {
        out->type = JSON_OBJECT;
        out->len = kvs.n / 2;
        out->u.o = arena_alloc(s->a, (out->len ? out->len : 1) * sizeof(json_kv));
        for (uint32_t i = 0; i < out->len; i++) {
            out->u.o[i].key = kvs.v[2 * i].u.s;
            out->u.o[i].key_len = kvs.v[2 * i].type;
            out->u.o[i].val = kvs.v[2 * i + 1];
        }
        return;
    }
    out->type = JSON_ARRAY;
    out->len = items.n;
    out->u.a = items.v;
}

static void read_content(asmb *s, const pq_node *n, json_val *out)
{
    if (n->phys != PQ_GROUP) {
        colr *c = &s->cols[n->leaf];
        if (c->pos >= c->n || c->vpos >= c->n_vals) {
            s->bad = true;
            memset(out, 0, sizeof *out);
            return;
        }
        c->pos++;
        leaf_json(s, n, &c->vals[c->vpos++], out);
        return;
    }
    const pq_node *rep = n->children[0];
    if (n->logical == PQ_LT_LIST && rep->rep == PQ_REPEATED) {
        read_repeated(s, rep, rep->phys == PQ_GROUP && rep->n_children == 1 ? 1 : 0, out);
        return;
    }
    if (n->logical == PQ_LT_MAP && rep->rep == PQ_REPEATED && rep->phys == PQ_GROUP) {
        read_repeated(s, rep, 2, out);
        return;
    }
    json_kv *kv = arena_alloc(s->a, n->n_children * sizeof *kv);
    uint32_t k = 0;
    for (size_t i = 0; i < n->n_children; i++) {
        const pq_node *c = n->children[i];
        if (read_field(s, c, &kv[k].val)) {
            kv[k].key = s->names[c->index]; /* records outlive the reader: copies in a */
            kv[k].key_len = (uint32_t)strlen(c->name);
            k++;
        }
    }
    memset(out, 0, sizeof *out);
    out->type = JSON_OBJECT;
    out->len = k;
    out->u.o = kv;
}

/* Reads one field occurrence; false when it is null (nothing stored in out). */
static bool read_field(asmb *s, const pq_node *n, json_val *out)
{
    memset(out, 0, sizeof *out);
    if (n->rep == PQ_REPEATED) {
        read_repeated(s, n, 0, out);
        return true;
    }
    if (peek_def(s, n) < n->max_def) {
        skip_entry(s, n);
        return false;
    }
    read_content(s, n, out);
    return true;
}

static void fill_names(const pq_node *n, arena *a, const char **names)
{
    names[n->index] = arena_strdup(a, n->name);
    for (size_t i = 0; i < n->n_children; i++) fill_names(n->children[i], a, names);
}

json_val *pq_read_json(pq_reader *r, arena *a, fl_err *err)
{
    if (r->next >= r->n_groups) return NULL;
    arena_reset(r->rg);
    const th_val *rg = &r->groups->u.items[r->next++];
    int64_t nrows;
    if (rg_rows(r, rg, &nrows, err)) return NULL;
    size_t nl = r->schema->n_leaves;
    colr *cols = arena_calloc(r->rg, (nl ? nl : 1) * sizeof *cols);
    for (size_t i = 0; i < nl; i++)
        if (decode_chunk(r, rg, (int)i, &cols[i], err)) return NULL;
    asmb s = {cols, a, arena_alloc(a, r->schema->n_nodes * sizeof(char *)), false};
    fill_names(r->schema->root, a, s.names);
    json_val *arr = arena_alloc(a, sizeof *arr);
    memset(arr, 0, sizeof *arr);
    arr->type = JSON_ARRAY;
    arr->len = (uint32_t)nrows;
    arr->u.a = arena_alloc(a, (nrows ? (size_t)nrows : 1) * sizeof(json_val));
    for (int64_t i = 0; i < nrows; i++) {
        if (nl && cols[0].pos >= cols[0].n) {
            fail(err, r, NULL, "fewer records than the row group's row count");
            return NULL;
        }
        read_content(&s, r->schema->root, &arr->u.a[i]);
        if (s.bad) {
            fail(err, r, NULL, "levels do not match the schema");
            return NULL;
        }
    }
    return arr;
}
