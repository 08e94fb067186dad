/* arena.c: chained-block bump allocator (see util.h). Blocks larger than the block size
 * get a block of their own so big allocations never waste a standard block. */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    struct block *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
} block;

struct arena {
    block *head;       /* current block, newest first */
    size_t block_size;
    size_t used;
};

static block *block_new(size_t size)
{
    block *b = malloc(sizeof(block) + size);
    if (!b) {
        fprintf(stderr, "fhirlake: out of memory (arena block of %zu bytes)\n", size);
        abort();
    }
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

arena *arena_new(size_t block_size)
{
    arena *a = malloc(sizeof *a);
    if (!a) return NULL;
    a->block_size = block_size ? block_size : 64 * 1024;
    a->head = block_new(a->block_size);
    a->used = 0;
    return a;
}

void *arena_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    block *b = a->head;
    if (b->size - b->used < n) {
        if (n > a->block_size / 4) {
            /* Big request: own block, linked behind the head so the head keeps filling. */
            block *big = block_new(n);
            big->used = n;
            big->next = b->next;
            b->next = big;
            a->used += n;
            return big->data;
        }
        b = block_new(a->block_size);
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->used += n;
    return p;
}

void *arena_calloc(arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

char *arena_printf(arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void arena_reset(arena *a)
{
    /* Keep the oldest standard block (the last in the chain); free the rest. */
    block *b = a->head, *keep = NULL;
    while (b) {
        block *next = b->next;
        if (!next && b->size == a->block_size) keep = b;
        else free(b);
        b = next;
    }
    if (!keep) keep = block_new(a->block_size);
    keep->used = 0;
    keep->next = NULL;
    a->head = keep;
    a->used = 0;
}

void arena_free(arena *a)
{
    if (!a) return;
    block *b = a->head;
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

size_t arena_used(const arena *a) { return a->used; }
