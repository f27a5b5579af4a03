/*
 * shared/log.c: level names, and the line format "ts level prog[pid] req=<id> user=<id> msg"
 * as written to stderr (redirected here to a temporary file with dup2).
 */
#include "log.h"
#include "tap.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The lines written to stderr while capture_begin() .. capture_end() was active. */
static char captured[16384];
static int capture_fd = -1, saved_stderr = -1;
static char capture_path[] = "/tmp/chatd-unit-log-XXXXXX";

static int capture_begin(void)
{
    fflush(stderr);
    capture_fd = mkstemp(capture_path);
    if (capture_fd < 0)
        return -1;
    saved_stderr = dup(STDERR_FILENO);
    return dup2(capture_fd, STDERR_FILENO) < 0 ? -1 : 0;
}

static void capture_end(void)
{
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    ssize_t n = pread(capture_fd, captured, sizeof(captured) - 1, 0);
    captured[n > 0 ? n : 0] = '\0';
    close(capture_fd);
    unlink(capture_path);
    strcpy(capture_path, "/tmp/chatd-unit-log-XXXXXX");
}

/* Copies line i (0-based, without its newline) of captured into buf; "" past the end. */
static const char *line_at(int i, char *buf, size_t len)
{
    const char *p = captured;
    for (; i > 0 && p; i--)
        if ((p = strchr(p, '\n')) != NULL)
            p++;
    buf[0] = '\0';
    if (!p || !*p)
        return buf;
    size_t n = strcspn(p, "\n");
    snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), p);
    return buf;
}

static int count_lines(void)
{
    int n = 0;
    for (const char *p = captured; (p = strchr(p, '\n')) != NULL; p++)
        n++;
    return n;
}

static int matches(const char *s, const char *re)
{
    regex_t rx;
    if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0) {
        diag("bad regex %s", re);
        return 0;
    }
    int m = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return m;
}

/* like(): a regex match that prints the subject on failure. */
#define like(s, re, ...)                                                                           \
    do {                                                                                           \
        if (!ok(matches((s), (re)), __VA_ARGS__))                                                  \
            diag("    '%s'\n#   doesn't match '%s'", (s), (re));                                 \
    } while (0)

#define TS "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?Z"

static void test_level_parse(void)
{
    is_int(log_level_parse("error"), LOG_ERROR, "log_level_parse: error");
    is_int(log_level_parse("warn"), LOG_WARN, "log_level_parse: warn");
    is_int(log_level_parse("info"), LOG_INFO, "log_level_parse: info");
    is_int(log_level_parse("debug"), LOG_DEBUG, "log_level_parse: debug");
    is_int(log_level_parse("verbose"), -1, "log_level_parse: unknown name is -1");
    is_int(log_level_parse(""), -1, "log_level_parse: empty name is -1");
    is_int(log_level_parse("inf"), -1, "log_level_parse: a prefix is not a level");
}

static void test_format(void)
{
    char re[512], buf[4096];
    int pid = (int)getpid();

    if (!ok(capture_begin() == 0, "stderr redirected to a temporary file"))
        return;
    log_init("unit-log", LOG_INFO);
    log_info("hello %d", 42);
    log_debug("hidden at info level");
    log_set_context("req-7f3a", "user-42");
    log_warn("with context");
    log_set_context("req-only", NULL);
    log_error("request only");
    log_set_context(NULL, NULL);
    log_info("context cleared");
    log_set_level(LOG_DEBUG);
    log_debug("shown at debug level");
    log_set_level(LOG_ERROR);
    log_warn("hidden at error level");
    log_error("errors still shown");
    capture_end();

    is_int(count_lines(), 6, "six lines written (two suppressed by level)");
    ok(strstr(captured, "hidden") == NULL, "no suppressed message reached stderr");

    snprintf(re, sizeof(re), "^" TS " info unit-log\\[%d\\] hello 42$", pid);
    like(line_at(0, buf, sizeof(buf)), re, "line 1: '<ts> info prog[pid] msg'");
    snprintf(re, sizeof(re), "^" TS " warn unit-log\\[%d\\] req=req-7f3a user=user-42 with context$",
             pid);
    like(line_at(1, buf, sizeof(buf)), re, "line 2: request and user context printed");
    snprintf(re, sizeof(re), "^" TS " error unit-log\\[%d\\] req=req-only request only$", pid);
    like(line_at(2, buf, sizeof(buf)), re, "line 3: request context without a user");
    snprintf(re, sizeof(re), "^" TS " info unit-log\\[%d\\] context cleared$", pid);
    like(line_at(3, buf, sizeof(buf)), re, "line 4: no context after clearing it");
    snprintf(re, sizeof(re), "^" TS " debug unit-log\\[%d\\] shown at debug level$", pid);
    like(line_at(4, buf, sizeof(buf)), re, "line 5: debug shown after log_set_level(LOG_DEBUG)");
    snprintf(re, sizeof(re), "^" TS " error unit-log\\[%d\\] errors still shown$", pid);
    like(line_at(5, buf, sizeof(buf)), re, "line 6: error shown at error level");
}

static void test_long_line(void)
{
    static char big[8192];
    memset(big, 'a', sizeof(big) - 1);

    if (!ok(capture_begin() == 0, "stderr redirected for the long line"))
        return;
    log_init("unit-log", LOG_INFO);
    log_info("%s", big);
    log_info("after the long one");
    capture_end();

    is_int(count_lines(), 2, "an over-long message is cut to one line");
    size_t first = strcspn(captured, "\n");
    if (!ok(first > 1000 && first < sizeof(big), "the cut line keeps a useful prefix"))
        diag("first line has %zu bytes", first);
    char buf[256];
    like(line_at(1, buf, sizeof(buf)), " after the long one$", "the next line starts cleanly");
}

static void test_no_forged_lines(void)
{
    if (!ok(capture_begin() == 0, "stderr redirected for the injection case"))
        return;
    log_init("unit-log", LOG_INFO);
    log_info("user said %s", "hi\n2026-01-01T00:00:00.000Z error forged[1] boom\r");
    capture_end();
    is_int(count_lines(), 1, "a newline inside a value does not start a new line");
    char buf[512];
    like(line_at(0, buf, sizeof(buf)), "hi\\?2026", "control characters are replaced");
}

int main(void)
{
    test_no_forged_lines();
    test_level_parse();
    test_format();
    test_long_line();
    return done_testing();
}
