/* parquet_int: internals shared by the parquet_*.c files (not a public contract):
 * Thrift compact protocol writer/reader, RLE/bit-packed hybrid codec, compression,
 * and the Parquet enum values used in the footer. */
#ifndef FL_PARQUET_INT_H
#define FL_PARQUET_INT_H

#include "parquet.h"

/* ---- Thrift compact protocol ---- */
enum {
    TH_STOP = 0, TH_TRUE = 1, TH_FALSE = 2, TH_BYTE = 3, TH_I16 = 4, TH_I32 = 5,
    TH_I64 = 6, TH_DOUBLE = 7, TH_BINARY = 8, TH_LIST = 9, TH_SET = 10, TH_MAP = 11,
    TH_STRUCT = 12
};

typedef struct tw {
    buf *b;
    int depth;
    int16_t last[64];   /* last field id per open struct */
} tw;
void tw_init(tw *w, buf *b);           /* opens the top-level struct */
void tw_i32(tw *w, int16_t id, int32_t v);
void tw_i64(tw *w, int16_t id, int64_t v);
void tw_bool(tw *w, int16_t id, bool v);
void tw_bin(tw *w, int16_t id, const void *p, size_t n);
void tw_str(tw *w, int16_t id, const char *s);
void tw_struct_begin(tw *w, int16_t id);
void tw_struct_end(tw *w);             /* also closes the top-level struct */
void tw_list_begin(tw *w, int16_t id, int elem_type, size_t n);
void tw_elem_i32(tw *w, int32_t v);
void tw_elem_bin(tw *w, const void *p, size_t n);
void tw_elem_struct_begin(tw *w);      /* close with tw_struct_end */

typedef struct th_val th_val;
typedef struct th_field th_field;
struct th_val {
    uint8_t type;        /* TH_*; bools are TH_TRUE with i = 0/1 */
    uint8_t elem_type;   /* lists/sets */
    uint32_t n;          /* fields, items or bytes */
    union {
        int64_t i;
        double d;
        const uint8_t *bin;
        th_field *fields;
        th_val *items;
    } u;
};
struct th_field {
    int16_t id;
    th_val v;
};
/* Parses one struct from p[0..n); *used gets its byte length. Memory from a. */
int th_parse(arena *a, const uint8_t *p, size_t n, size_t *used, th_val *out, fl_err *err);
const th_val *th_get(const th_val *s, int16_t id);     /* NULL if absent */
int64_t th_int(const th_val *s, int16_t id, int64_t dflt);
/* String field as arena copy (NUL-terminated), or NULL. */
char *th_str(arena *a, const th_val *s, int16_t id);

/* ---- RLE / bit-packed hybrid ---- */
/* Appends the hybrid encoding of v[0..n) with the given bit width (no length prefix). */
void pq_rle_encode(buf *out, const uint32_t *v, size_t n, int bit_width);
void pq_rle_encode16(buf *out, const uint16_t *v, size_t n, int bit_width);
/* Decodes exactly n values; -1 if the input is short or malformed. */
int pq_rle_decode(const uint8_t *p, size_t len, int bit_width, uint32_t *out, size_t n);
int pq_bit_width(uint64_t max_value);

/* ---- compression ---- */
/* Appends the compressed form of src to out. *zctx caches a compression context between
 * calls (start with NULL, release with pq_compress_free). */
int pq_compress(pq_codec c, int level, const void *src, size_t n, buf *out, void **zctx,
                fl_err *err);
void pq_compress_free(void *zctx);
/* Decompresses src into dst[0..dst_len) which must come out exactly full. */
int pq_decompress(int codec, const void *src, size_t n, void *dst, size_t dst_len,
                  fl_err *err);

/* ---- footer enums ---- */
enum { PQE_PLAIN = 0, PQE_PLAIN_DICTIONARY = 2, PQE_RLE = 3, PQE_BIT_PACKED = 4,
       PQE_RLE_DICTIONARY = 8 };
enum { PQP_DATA = 0, PQP_INDEX = 1, PQP_DICTIONARY = 2, PQP_DATA_V2 = 3 };

/* Schema <-> thrift (parquet_schema.c). */
void pq_schema_to_thrift(const pq_schema *s, tw *w, int16_t id);
pq_schema *pq_schema_from_thrift(const th_val *list, fl_err *err);

/* Decimals (parquet_write.c): unscaled value of raw bytes for the node's physical type,
 * and its exact text with the given scale (arena copy). */
typedef __int128 i128;
i128 pq_decimal_from_raw(const pq_node *n, const uint8_t *raw, size_t len);
char *pq_decimal_text(arena *a, i128 v, int scale);

/* Little-endian helpers. */
static inline void pq_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t pq_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t pq_get_u64(const uint8_t *p)
{
    return (uint64_t)pq_get_u32(p) | (uint64_t)pq_get_u32(p + 4) << 32;
}

#endif
