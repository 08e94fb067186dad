/* t.h: a tiny unit-test harness. Each test file defines test functions and a main() that
 * RUN()s them and returns t_report("room"), which prints "room: N passed, N failed". */
#ifndef FL_T_H
#define FL_T_H

#include <stdio.h>
#include <string.h>

static int t_pass, t_fail, t_cur_failed;
static const char *t_cur;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "  FAIL %s (%s:%d): %s\n", t_cur, __FILE__, __LINE__, #cond); \
            t_cur_failed = 1;                                                        \
        }                                                                            \
    } while (0)
#define CHECK_STR(a, b)                                                              \
    do {                                                                             \
        const char *a_ = (a), *b_ = (b);                                             \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                     \
            fprintf(stderr, "  FAIL %s (%s:%d): \"%s\" != \"%s\"\n", t_cur, __FILE__,  \
                    __LINE__, a_ ? a_ : "(null)", b_ ? b_ : "(null)");               \
            t_cur_failed = 1;                                                        \
        }                                                                            \
    } while (0)
#define RUN(fn)                                                                      \
    do {                                                                             \
        t_cur = #fn;                                                                 \
        t_cur_failed = 0;                                                            \
        fn();                                                                        \
        if (t_cur_failed) t_fail++;                                                  \
        else t_pass++;                                                               \
    } while (0)

static inline int t_report(const char *room)
{
    printf("%s: %d passed, %d failed\n", room, t_pass, t_fail);
    return t_fail ? 1 : 0;
}

#endif
