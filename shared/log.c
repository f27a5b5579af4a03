#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "chatd";
static enum log_level log_cur = LOG_INFO;
static char log_req[64];
static char log_user[64];

static const char *const log_names[] = {"error", "warn", "info", "debug"};

void log_init(const char *prog, enum log_level level)
{
    log_prog = prog;
    log_cur = level;
}

void log_set_level(enum log_level level)
{
    log_cur = level;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, log_names[i]) == 0)
            return i;
    return -1;
}

void log_set_context(const char *req_id, const char *user_id)
{
    snprintf(log_req, sizeof(log_req), "%s", req_id ? req_id : "");
    snprintf(log_user, sizeof(log_user), "%s", user_id ? user_id : "");
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > log_cur)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s[%d]",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), log_names[level], log_prog, (int)getpid());
    if (log_req[0] && n < (int)sizeof(line))
        n += snprintf(line + n, sizeof(line) - n, " req=%s", log_req);
    if (log_user[0] && n < (int)sizeof(line))
        n += snprintf(line + n, sizeof(line) - n, " user=%s", log_user);
    if (n < (int)sizeof(line) - 1) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        n = m < 0 ? n : n + m;
    }
    if (n > (int)sizeof(line) - 2)
        n = sizeof(line) - 2;
    /* A value from a client must not forge a second log line. */
    for (int i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[n++] = '\n';
    /* One write per line so lines from forked workers never interleave. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
