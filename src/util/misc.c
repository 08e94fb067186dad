/* misc.c: errors, time, uuid and logging (see util.h). */
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Formats into scratch copies first: callers wrap an error with its own text
 * (fl_err_set(err, ..., "context: %s", err->msg)), and s(n)printf between overlapping
 * objects is undefined (valgrind saw the message come out garbled). */
void fl_err_set(fl_err *e, int status, const char *where, const char *fmt, ...)
{
    if (!e) return;
    char w[sizeof e->where], m[sizeof e->msg];
    snprintf(w, sizeof w, "%s", where ? where : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    e->status = status;
    memcpy(e->where, w, sizeof w);
    memcpy(e->msg, m, sizeof m);
}

void fl_err_clear(fl_err *e)
{
    e->status = 0;
    e->msg[0] = 0;
    e->where[0] = 0;
}

int64_t fl_now_micros(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t fl_mono_micros(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Howard Hinnant's civil-date algorithms (public domain description, own code). */
int64_t fl_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void fl_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static char *put2(char *o, unsigned v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
    return o + 2;
}

/* Formats by hand: every exported row with a getAidboxTs() column comes through here, and
 * snprintf's format parsing was most of the cost. */
int fl_time_format(int64_t us, char *out)
{
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int64_t frac = us - secs * 1000000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    fl_civil_from_days(days, &y, &m, &d);
    char *o = out;
    if (y >= 0 && y <= 9999) {
        o = put2(put2(o, (unsigned)(y / 100)), (unsigned)(y % 100));
    } else {
        o += snprintf(o, 24, "%04lld", (long long)y);
    }
    *o++ = '-';
    o = put2(o, m);
    *o++ = '-';
    o = put2(o, d);
    *o++ = 'T';
    o = put2(o, (unsigned)(sod / 3600));
    *o++ = ':';
    o = put2(o, (unsigned)(sod / 60 % 60));
    *o++ = ':';
    o = put2(o, (unsigned)(sod % 60));
    if (frac) { /* six digits, trailing zeros trimmed */
        *o++ = '.';
        int k = 6;
        while (frac % 10 == 0) frac /= 10, k--;
        for (int i = k - 1; i >= 0; i--, frac /= 10) o[i] = (char)('0' + frac % 10);
        o += k;
    }
    *o++ = 'Z';
    *o = 0;
    return (int)(o - out);
}

static int digits(const char *s, size_t n, size_t at, int count, int *out)
{
    if (at + (size_t)count > n) return -1;
    int v = 0;
    for (int i = 0; i < count; i++) {
        char c = s[at + (size_t)i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

int fl_time_parse(const char *s, size_t n, int64_t *out_us)
{
    int y, mo = 1, d = 1, h = 0, mi = 0, se = 0;
    int64_t frac = 0, off = 0;
    size_t i = 4;
    if (digits(s, n, 0, 4, &y)) return -1;
    if (i < n && s[i] == '-') {
        if (digits(s, n, i + 1, 2, &mo) || mo < 1 || mo > 12) return -1;
        i += 3;
        if (i < n && s[i] == '-') {
            if (digits(s, n, i + 1, 2, &d) || d < 1 || d > 31) return -1;
            i += 3;
        }
    }
    if (i < n && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        if (digits(s, n, i + 1, 2, &h) || i + 3 >= n || s[i + 3] != ':' ||
            digits(s, n, i + 4, 2, &mi) || h > 23 || mi > 59)
            return -1;
        i += 6;
        if (i < n && s[i] == ':') {
            if (digits(s, n, i + 1, 2, &se) || se > 60) return -1;
            i += 3;
            if (i < n && s[i] == '.') {
                i++;
                int k = 0;
                while (i < n && s[i] >= '0' && s[i] <= '9') {
                    if (k < 6) frac = frac * 10 + (s[i] - '0');
                    k++;
                    i++;
                }
                if (k == 0) return -1;
                for (; k < 6; k++) frac *= 10;
            }
        }
        if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
            i++;
        } else if (i < n && (s[i] == '+' || s[i] == '-')) {
            int oh, om;
            if (digits(s, n, i + 1, 2, &oh) || i + 3 >= n || s[i + 3] != ':' ||
                digits(s, n, i + 4, 2, &om))
                return -1;
            off = (int64_t)(oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
            i += 6;
        }
    }
    if (i != n) return -1;
    int64_t days = fl_days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - off;
    *out_us = secs * 1000000 + frac;
    return 0;
}

void fl_uuid4(char out[37])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* Fall back to time-seeded bytes; uniqueness, not secrecy, is what matters here. */
        uint64_t t = (uint64_t)fl_mono_micros() ^ (uint64_t)fl_now_micros();
        for (int i = 0; i < 16; i++) r[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
    }
    r[6] = (r[6] & 0x0f) | 0x40;
    r[8] = (r[8] & 0x3f) | 0x80;
    static const char hx[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hx[r[i] >> 4];
        out[o++] = hx[r[i] & 15];
    }
    out[o] = 0;
}

int fl_log_level = FL_LOG_INFO;

void fl_log(int level, const char *fmt, ...)
{
    if (level < fl_log_level) return;
    static const char *names[] = {"debug", "info", "warn", "error"};
    char ts[40];
    fl_time_format(fl_now_micros() / 1000 * 1000, ts);
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s %s\n", ts, names[level & 3], line);
}
