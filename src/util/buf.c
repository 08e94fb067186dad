/* buf.c: growable byte string (see util.h). Doubling growth; always NUL-terminated. */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_reserve(buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "fhirlake: out of memory (buffer of %zu bytes)\n", cap);
        abort();
    }
    b->p = p;
    b->cap = cap;
}

void buf_put(buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

void buf_puts(buf *b, const char *s) { buf_put(b, s, strlen(s)); }

void buf_putc(buf *b, char c)
{
    buf_reserve(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = 0;
}

void buf_vprintf(buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    buf_reserve(b, (size_t)n);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void buf_reset(buf *b)
{
    b->len = 0;
    if (b->cap) b->p[0] = 0;
}

void buf_free(buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

char *buf_detach(buf *b)
{
    if (!b->p) buf_reserve(b, 0);
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

int buf_read_stream(buf *b, FILE *f)
{
    size_t n;
    do {
        buf_reserve(b, 65536);  /* read straight into the buffer: no bounce copy */
        n = fread(b->p + b->len, 1, 65536, f);
        b->len += n;
        b->p[b->len] = 0;
    } while (n > 0);
    return ferror(f) ? -1 : 0;
}

int buf_read_file(buf *b, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int rc = buf_read_stream(b, f);
    fclose(f);
    return rc;
}
