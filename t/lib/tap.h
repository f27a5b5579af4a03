/*
 * TAP for the C unit tests (t/unit/<module>.c → build/t/unit-<module>.t, run by prove).
 * Header-only: every function is static and may go unused.
 *
 *   plan(n)                  optional; without it done_testing() prints "1..n" at the end
 *   ok(cond, fmt, ...)       records file:line of a failure, like picotest
 *   is_int(got, exp, ...)    compares as long long; prints got/expected like git's check_int
 *   is_str(got, exp, ...)    NULL-safe strcmp; prints both quoted like git's check_str
 *   diag(fmt, ...)           "# ..." on stderr
 *   return done_testing();   0 when every test passed and the plan (if any) was met
 *
 * Each assertion returns 1 when it passed, so a test can add context: if (!ok(...)) diag(...).
 */
#ifndef CHATD_TAP_H
#define CHATD_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TAP_FN static __attribute__((unused))
#define TAP_PRINTF(f, a) __attribute__((format(printf, f, a)))

static int tap_planned = -1, tap_run, tap_failed;

TAP_FN TAP_PRINTF(1, 0) void tap_vdiag(const char *fmt, va_list ap)
{
    fflush(stdout); /* keep diagnostics next to the test they explain */
    fputs("# ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
}

TAP_FN TAP_PRINTF(1, 2) void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vdiag(fmt, ap);
    va_end(ap);
}

TAP_FN void plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

TAP_FN TAP_PRINTF(4, 0) int tap_vok(int pass, const char *file, int line, const char *fmt,
                                    va_list ap)
{
    tap_run++;
    printf("%s %d - ", pass ? "ok" : "not ok", tap_run);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    if (!pass) {
        tap_failed++;
        diag("  Failed test at %s line %d.", file, line);
    }
    return pass;
}

TAP_FN TAP_PRINTF(4, 5) int tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vok(pass, file, line, fmt, ap);
    va_end(ap);
    return pass;
}

TAP_FN TAP_PRINTF(5, 6) int tap_is_int(long long got, long long exp, const char *file, int line,
                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int pass = tap_vok(got == exp, file, line, fmt, ap);
    va_end(ap);
    if (!pass)
        diag("         got: %lld\n#     expected: %lld", got, exp);
    return pass;
}

TAP_FN TAP_PRINTF(5, 6) int tap_is_str(const char *got, const char *exp, const char *file, int line,
                                       const char *fmt, ...)
{
    int same = (got == NULL || exp == NULL) ? got == exp : strcmp(got, exp) == 0;
    va_list ap;
    va_start(ap, fmt);
    int pass = tap_vok(same, file, line, fmt, ap);
    va_end(ap);
    if (!pass)
        diag("         got: %s%s%s\n#     expected: %s%s%s", got ? "\"" : "", got ? got : "NULL",
             got ? "\"" : "", exp ? "\"" : "", exp ? exp : "NULL", exp ? "\"" : "");
    return pass;
}

TAP_FN int done_testing(void)
{
    if (tap_planned < 0)
        printf("1..%d\n", tap_run);
    fflush(stdout);
    if (tap_planned >= 0 && tap_planned != tap_run)
        diag("planned %d tests but ran %d", tap_planned, tap_run);
    if (tap_failed)
        diag("failed %d of %d tests", tap_failed, tap_run);
    return tap_failed || (tap_planned >= 0 && tap_planned != tap_run) ? 1 : 0;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, exp, ...) \
    tap_is_int((long long)(got), (long long)(exp), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, exp, ...) tap_is_str((got), (exp), __FILE__, __LINE__, __VA_ARGS__)

#endif
