/* util: the small self-contained pieces every room uses.
 *
 * Contract:
 *  - arena: bump allocator in chained blocks. Everything allocated from an arena lives
 *    until arena_reset()/arena_free(); nothing is freed one by one. Hot paths (JSON DOM,
 *    FHIRPath evaluation, row building) allocate here.
 *  - buf: a growable malloc-backed byte string, always NUL-terminated after any call.
 *  - fl_err: the one way errors travel between rooms. `status` is the HTTP status the
 *    error maps to at the HTTP edge (400, 404, 409, 410, 412, 413, 415, 422, 500...),
 *    `msg` is human text, `where` names the offending element (a FHIRPath-ish location
 *    such as "select[1].column[0].name" or "Bundle.entry[3]") or is empty.
 *    fl_err_set(e, ...) may take e->msg / e->where among its arguments (wrapping an
 *    error in context): it formats into scratch space before overwriting e.
 *  - time: RFC 3339 <-> microseconds since the Unix epoch (UTC).
 *  - uuid: random v4 ids.
 *  - log: one line per event on stderr, with level and UTC time.
 * No function here exits the process.
 */
#ifndef FL_UTIL_H
#define FL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- arena ---- */
typedef struct arena arena;
arena *arena_new(size_t block_size);          /* 0 = default (64 KiB); NULL on OOM */
void *arena_alloc(arena *a, size_t n);        /* 16-byte aligned; aborts on OOM */
void *arena_calloc(arena *a, size_t n);
char *arena_strndup(arena *a, const char *s, size_t n); /* copies n bytes + NUL */
char *arena_strdup(arena *a, const char *s);
char *arena_printf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_reset(arena *a);                   /* keeps the first block for reuse */
void arena_free(arena *a);
size_t arena_used(const arena *a);            /* bytes handed out since last reset */

/* ---- buf ---- */
typedef struct buf {
    char *p;      /* NUL-terminated when cap > 0 */
    size_t len;
    size_t cap;
} buf;
#define BUF_INIT {NULL, 0, 0}
void buf_reserve(buf *b, size_t extra);        /* aborts on OOM */
void buf_put(buf *b, const void *p, size_t n);
void buf_puts(buf *b, const char *s);
void buf_putc(buf *b, char c);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf *b, const char *fmt, va_list ap);
void buf_reset(buf *b);                        /* len = 0, keeps memory */
void buf_free(buf *b);
char *buf_detach(buf *b);                      /* caller frees; b becomes empty */
/* Append the rest of stream f / the whole file at path; -1 on a read or open error. */
int buf_read_stream(buf *b, FILE *f);
int buf_read_file(buf *b, const char *path);

/* ---- errors ---- */
typedef struct fl_err {
    int status;       /* 0 = no error; else an HTTP status */
    char msg[512];
    char where[256];
} fl_err;
void fl_err_set(fl_err *e, int status, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void fl_err_clear(fl_err *e);
#define FL_OK(e) ((e)->status == 0)

/* ---- time ---- */
int64_t fl_now_micros(void);                  /* wall clock, UTC */
int64_t fl_mono_micros(void);                 /* monotonic clock */
/* Formats as 2026-06-09T10:15:00.123456Z (fraction trimmed of trailing zeros, omitted
 * when zero). out must hold 40 bytes. Returns the length. */
int fl_time_format(int64_t us, char *out);
/* Parses an RFC 3339 / FHIR instant or dateTime with offset; partial dates (YYYY, YYYY-MM,
 * YYYY-MM-DD) are taken at their start, UTC. Returns 0 on success, -1 if malformed. */
int fl_time_parse(const char *s, size_t n, int64_t *out_us);
/* Days since 1970-01-01 for a civil date, and back. */
int64_t fl_days_from_civil(int64_t y, unsigned m, unsigned d);
void fl_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/* ---- uuid ---- */
void fl_uuid4(char out[37]);                  /* lowercase, NUL-terminated */

/* ---- log ---- */
enum { FL_LOG_DEBUG, FL_LOG_INFO, FL_LOG_WARN, FL_LOG_ERROR };
extern int fl_log_level;                      /* messages below this level are dropped */
void fl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
