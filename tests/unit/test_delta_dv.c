/* test_delta_dv.c: unit tests of the lake room's deletion vectors (delta_dv.c): bitmap
 * round trips over container and bucket boundaries, the PROTOCOL.md examples (inline DV,
 * Z85 path with random prefix), DV files (offsets, CRC check, cardinality check). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lake/delta.h"
#include "t.h"

static char g_dir[256];

static bool same(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, na * sizeof *a));
}

static bool round_trip(const uint64_t *pos, size_t n)
{
    buf b = BUF_INIT;
    delta_dv_encode(pos, n, &b);
    uint64_t *out = NULL;
    size_t m = 0;
    fl_err e = {0};
    bool ok = delta_dv_decode((const unsigned char *)b.p, b.len, &out, &m, &e) == 0 &&
              same(pos, n, out, m);
    free(out);
    buf_free(&b);
    return ok;
}

static void test_round_trips(void)
{
    CHECK(round_trip(NULL, 0));
    uint64_t small[] = {0, 3, 4, 7, 65535, 65536, 70000, 4294967295ull, 4294967296ull,
                        (1ull << 40) + 5};
    CHECK(round_trip(small, sizeof small / sizeof *small));
    /* a dense container (bitmap form) next to a sparse one */
    size_t n = 10000;
    uint64_t *dense = malloc((n + 3) * sizeof *dense);
    for (size_t i = 0; i < n; i++) dense[i] = 131072 + i * 3;
    dense[n] = 1ull << 33;
    dense[n + 1] = (1ull << 33) + 1;
    dense[n + 2] = (1ull << 33) + 65536 * 7;
    CHECK(round_trip(dense, n + 3));
    free(dense);
}

static void test_bad_bitmap(void)
{
    uint64_t pos[] = {1, 2, 3};
    buf b = BUF_INIT;
    delta_dv_encode(pos, 3, &b);
    uint64_t *out = NULL;
    size_t m = 0;
    fl_err e = {0};
    CHECK(delta_dv_decode((const unsigned char *)b.p, b.len - 1, &out, &m, &e) == -1 &&
          e.status == 422);
    b.p[0] ^= 1;   /* magic */
    CHECK(delta_dv_decode((const unsigned char *)b.p, b.len, &out, &m, &e) == -1);
    buf_free(&b);
}

/* PROTOCOL.md "JSON Example 3 — Inline": rows 3, 4, 7, 11, 18, 29. */
static void test_spec_inline(void)
{
    delta_dv dv = {.storage = 'i',
                   .path_or_inline = "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L",
                   .offset = -1, .size = 40, .cardinality = 6};
    uint64_t *pos = NULL, want[] = {3, 4, 7, 11, 18, 29};
    size_t n = 0;
    fl_err e = {0};
    CHECK(delta_dv_read(NULL, &dv, NULL, &pos, &n, &e) == 0);
    CHECK(same(pos, n, want, 6));
    free(pos);
    dv.cardinality = 5;
    CHECK(delta_dv_read(NULL, &dv, NULL, &pos, &n, &e) == -1 && e.status == 422);
}

/* PROTOCOL.md "JSON Example 1": a random prefix and a Z85 uuid. */
static void test_spec_path(void)
{
    delta_dv dv = {.storage = 'u', .path_or_inline = "ab^-aqEH.-t@S}K{vb[*k^", .offset = 4,
                   .size = 40, .cardinality = 6};
    char *k = delta_dv_key(&dv);
    CHECK_STR(k, "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin");
    free(k);
    dv.storage = 'p';
    CHECK(delta_dv_key(&dv) == NULL);
    unsigned char raw[8] = {0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b};
    char z[11];
    delta_z85_encode(raw, 8, z);
    CHECK_STR(z, "HelloWorld");   /* the Z85 spec's test vector */
}

static void test_dv_file(void)
{
    fl_err e = {0};
    objstore *os = objstore_open(g_dir, true, &e);
    CHECK(os != NULL);
    if (!os) return;
    delta_dv_file f;
    delta_dv_file_init(&f);
    uint64_t a[] = {0, 9}, b[] = {5, 100000, 100001};
    delta_dv da, db;
    delta_dv_file_add(&f, a, 2, &da);
    delta_dv_file_add(&f, b, 3, &db);
    CHECK(da.offset == 1 && db.offset > da.offset + da.size && db.cardinality == 3);
    CHECK(delta_dv_file_put(os, &f, &e) == 0);
    char *key = delta_dv_key(&db);
    CHECK_STR(key, f.key);
    delta_dv_cache cache = {0};
    uint64_t *pos = NULL;
    size_t n = 0;
    CHECK(delta_dv_read(os, &db, &cache, &pos, &n, &e) == 0 && same(pos, n, b, 3));
    free(pos);
    CHECK(delta_dv_read(os, &da, &cache, &pos, &n, &e) == 0 && same(pos, n, a, 2));
    free(pos);
    delta_dv_cache_free(&cache);
    /* a flipped bit in the second bitmap fails its CRC */
    f.data.p[db.offset + 4 + db.size - 1] ^= 0x10;
    CHECK(objstore_put(os, f.key, f.data.p, f.data.len, &e) == 0);
    CHECK(delta_dv_read(os, &db, NULL, &pos, &n, &e) == -1 && strstr(e.msg, "checksum"));
    fl_err_clear(&e);
    CHECK(objstore_delete(os, key, &e) == 0);
    CHECK(delta_dv_read(os, &da, NULL, &pos, &n, &e) == -1 && strstr(e.msg, "missing"));
    free(key);
    delta_dv_file_free(&f);
    objstore_close(os);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/fhirlake-test-dv-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    RUN(test_round_trips);
    RUN(test_bad_bitmap);
    RUN(test_spec_inline);
    RUN(test_spec_path);
    RUN(test_dv_file);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return t_report("delta_dv");
}
