/* keyidx.c: key indexes of data files and the process-wide cache that keeps them
 * (lake.h, "key index"). An entry is 128 bits of key hash and a row position; a file's
 * entries are sorted by hash, so a merge finds an incoming key's rows by binary search
 * instead of reading the file's key column. Two independent 64-bit hashes make a false
 * match (which would delete a row of another key) as likely as a 128-bit collision. */
#include "lake.h"
#include "delta_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct kx_ent {
    uint64_t a, b;
    int64_t row;
} kx_ent;

struct lake_keyidx {
    kx_ent *e;
    size_t n, cap;
    bool dropped;        /* over the memory budget: no index, merges scan */
    bool sorted;
};

/* Memory of indexes being built plus cached ones, against one budget. */
static int64_t g_bytes;

static int64_t budget(void)
{
    static int64_t b = -1;
    if (__atomic_load_n(&b, __ATOMIC_RELAXED) < 0) {
        const char *s = getenv("FHIRLAKE_KEY_CACHE_MB");
        int64_t mb = s ? strtoll(s, NULL, 10) : 256;
        __atomic_store_n(&b, (mb < 0 ? 0 : mb) << 20, __ATOMIC_RELAXED);
    }
    return __atomic_load_n(&b, __ATOMIC_RELAXED);
}

uint64_t lake_hash64(const char *p, size_t n, uint64_t seed)
{
    uint64_t h = seed ^ n, x;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&x, p, 8);
        h = (h ^ x) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    x = 0;
    memcpy(&x, p, n);
    h = (h ^ x) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 32);
}

static void key_hash(const char *p, size_t n, uint64_t *a, uint64_t *b)
{
    *a = lake_hash64(p, n, 0x243f6a8885a308d3ull);
    *b = lake_hash64(p, n, 0x13198a2e03707344ull);
}

lake_keyidx *lake_keyidx_new(void)
{
    lake_keyidx *x = calloc(1, sizeof *x);
    if (!x) abort();
    return x;
}

static void drop(lake_keyidx *x)
{
    __atomic_sub_fetch(&g_bytes, (int64_t)(x->cap * sizeof *x->e), __ATOMIC_RELAXED);
    free(x->e);
    x->e = NULL;
    x->n = x->cap = 0;
}

void lake_keyidx_free(lake_keyidx *x)
{
    if (!x) return;
    drop(x);
    free(x);
}

void lake_keyidx_add(lake_keyidx *x, int64_t row, const char *key, size_t len)
{
    if (!x || x->dropped) return;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 4096;
        int64_t more = (int64_t)((cap - x->cap) * sizeof *x->e);
        if (__atomic_add_fetch(&g_bytes, more, __ATOMIC_RELAXED) > budget()) {
            __atomic_sub_fetch(&g_bytes, more, __ATOMIC_RELAXED);
            drop(x);
            x->dropped = true;
            return;
        }
        x->e = realloc(x->e, cap * sizeof *x->e);
        if (!x->e) abort();
        x->cap = cap;
    }
    x->sorted = false;
    kx_ent *e = &x->e[x->n++];
    key_hash(key, len, &e->a, &e->b);
    e->row = row;
}

static int ent_cmp(const void *p, const void *q)
{
    const kx_ent *x = p, *y = q;
    if (x->a != y->a) return x->a < y->a ? -1 : 1;
    if (x->b != y->b) return x->b < y->b ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

void lake_keyidx_sort(lake_keyidx *x)
{
    if (!x || x->dropped || x->sorted) return;
    if (x->n > 1) qsort(x->e, x->n, sizeof *x->e, ent_cmp); /* (e is NULL when empty) */
    x->sorted = true;
}

/* ---- the cache: (table, file) -> index, least recently used out first ---- */
typedef struct kx_slot {
    char *name;          /* table url, '\n', file path */
    lake_keyidx *x;
    uint64_t used;
    struct kx_slot *next;
} kx_slot;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static kx_slot *g_slots;
static uint64_t g_clock;

static char *slot_name(const char *table, const char *file)
{
    size_t a = strlen(table), b = strlen(file);
    char *s = malloc(a + b + 2);
    if (!s) abort();
    memcpy(s, table, a);
    s[a] = '\n';
    memcpy(s + a + 1, file, b + 1);
    return s;
}

static void evict_one(void)
{
    kx_slot **old = NULL;
    for (kx_slot **p = &g_slots; *p; p = &(*p)->next)
        if (!old || (*p)->used < (*old)->used) old = p;
    if (!old) return;
    kx_slot *s = *old;
    *old = s->next;
    lake_keyidx_free(s->x);
    free(s->name);
    free(s);
}

void lake_keyidx_cache_put(const char *table, const char *file, lake_keyidx *x)
{
    if (!x || x->dropped) {
        lake_keyidx_free(x);
        return;
    }
    lake_keyidx_sort(x);
    kx_slot *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->name = slot_name(table, file);
    s->x = x;
    pthread_mutex_lock(&g_mu);
    s->used = ++g_clock;
    s->next = g_slots;
    g_slots = s;
    while (g_slots && __atomic_load_n(&g_bytes, __ATOMIC_RELAXED) > budget()) evict_one();
    pthread_mutex_unlock(&g_mu);
}

/* First entry with hash (a, b) or after it. */
static size_t lower_bound(const lake_keyidx *x, uint64_t a, uint64_t b)
{
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const kx_ent *e = &x->e[mid];
        if (e->a < a || (e->a == a && e->b < b)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int row_cmp(const void *p, const void *q)
{
    int64_t x = *(const int64_t *)p, y = *(const int64_t *)q;
    return (x > y) - (x < y);
}

int lake_keyidx_cache_rows(const char *table, const char *file, const char *const *keys,
                           const uint32_t *lens, size_t n_keys, int64_t **rows, size_t *n_rows)
{
    char *name = slot_name(table, file);
    int found = 0;
    size_t n = 0, cap = 0;
    int64_t *out = NULL;
    pthread_mutex_lock(&g_mu);
    for (kx_slot *s = g_slots; s; s = s->next) {
        if (strcmp(s->name, name)) continue;
        s->used = ++g_clock;
        found = 1;
        for (size_t k = 0; k < n_keys; k++) {
            uint64_t a, b;
            key_hash(keys[k], lens[k], &a, &b);
            for (size_t i = lower_bound(s->x, a, b);
                 i < s->x->n && s->x->e[i].a == a && s->x->e[i].b == b; i++) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 256;
                    out = realloc(out, cap * sizeof *out);
                    if (!out) abort();
                }
                out[n++] = s->x->e[i].row;
            }
        }
        break;
    }
    pthread_mutex_unlock(&g_mu);
    free(name);
    if (n > 1) qsort(out, n, sizeof *out, row_cmp);
    *rows = out;
    *n_rows = n;
    return found;
}
