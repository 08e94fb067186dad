/* cli_input.c: input helpers shared by `view run` and `view export`: mapping a regular
 * file, telling NDJSON from one JSON document, counting lines, and dropping parsed pages
 * of a mapping from the resident set. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

bool cli_map_file(const char *name, cli_mapping *m)
{
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    m->p = NULL;
    m->len = 0;
    if (fd < 0) return false;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        m->len = (size_t)st.st_size;
        void *p = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            madvise(p, m->len, MADV_SEQUENTIAL);
            m->p = p;
        }
    }
    close(fd);
    return m->p != NULL;
}

void cli_unmap(cli_mapping *m)
{
    if (m->p) munmap((void *)m->p, m->len);   /* ours: mapped by cli_map_file */
    m->p = NULL;
}

/* Page-aligned inside [p, p+len) only: neighbours' pages may still be being parsed. */
void cli_release_mapped(const char *p, size_t len)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + len) & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

bool cli_looks_ndjson(const char *p, size_t n, bool complete)
{
    while (n && (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t')) p++, n--;
    const char *nl = memchr(p, '\n', n);
    if (!nl && !complete) return false;
    size_t len = nl ? (size_t)(nl - p) : n;
    arena *a = arena_new(0);
    fl_err e = {0};
    bool ok = len && json_parse(a, p, len, NULL, &e) != NULL;
    arena_free(a);
    return ok;
}

long cli_count_lines(const char *p, size_t n)
{
    long k = 0;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))) != NULL; q++) k++;
    return k;
}

size_t cli_cut_lines(const char *p, size_t len, size_t off, size_t want)
{
    size_t end = off + want < len ? off + want : len;
    if (end < len) {
        const char *nl = memchr(p + end, '\n', len - end);
        end = nl ? (size_t)(nl - p) + 1 : len;
    }
    return end;
}
