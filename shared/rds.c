#include "rds.h"

#include "chan.h"

#include "log.h"
#include "metrics.h"

#include <ctype.h>
#include <hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static redisContext *rds_ctx;
static struct rds_url rds_where;
static int rds_configured;

/* Copies s[0..n) into dst (size bytes) decoding %XX; -1 when too long or malformed. */
static int rds_unescape(char *dst, size_t size, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return -1;
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
            if (c == '\0')
                return -1; /* would cut the string short */
        }
        if (o + 1 >= size)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

int rds_url_parse(const char *url, struct rds_url *u)
{
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    /* The last '@': a password may hold one unescaped; host, port and db never do. */
    const char *p = url + 8, *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if (colon && rds_unescape(u->username, sizeof(u->username), p, (size_t)(colon - p)) < 0)
            return -1;
        if (rds_unescape(u->password, sizeof(u->password), pw, (size_t)(at - pw)) < 0)
            return -1;
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof(u->host))
        return -1;
    memcpy(u->host, p, hl);
    p += hl;
    char *end;
    if (*p == ':') {
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535)
            return -1;
        u->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || db < 0 || db > 1000)
            return -1;
        u->db = (int)db;
    } else if (*p && strcmp(p, "/") != 0) {
        return -1;
    }
    return 0;
}

static int rds_connect(void)
{
    struct timeval tv = {1, 0};
    rds_ctx = redisConnectWithTimeout(rds_where.host, rds_where.port, tv);
    if (!rds_ctx || rds_ctx->err) {
        if (rds_ctx)
            redisFree(rds_ctx);
        rds_ctx = NULL;
        return -1;
    }
    redisSetTimeout(rds_ctx, tv);
    redisReply *r = NULL;
    if (rds_where.username[0])
        r = redisCommand(rds_ctx, "AUTH %s %s", rds_where.username, rds_where.password);
    else if (rds_where.password[0])
        r = redisCommand(rds_ctx, "AUTH %s", rds_where.password);
    if (!rds_where.password[0] || (r && r->type != REDIS_REPLY_ERROR)) {
        freeReplyObject(r);
        r = rds_where.db ? redisCommand(rds_ctx, "SELECT %d", rds_where.db) : NULL;
        if (!rds_where.db || (r && r->type != REDIS_REPLY_ERROR)) {
            freeReplyObject(r);
            metrics_count(METRICS_REDIS_CONNECTS);
            return 0;
        }
    }
    freeReplyObject(r);
    redisFree(rds_ctx);
    rds_ctx = NULL;
    return -1;
}

int rds_open(const char *url)
{
    if (rds_url_parse(url, &rds_where) < 0)
        return -1;
    rds_configured = 1;
    return rds_connect();
}

void rds_close(void)
{
    if (rds_ctx)
        redisFree(rds_ctx);
    rds_ctx = NULL;
}

/* One command; a connection found broken is reopened and the command tried once more. */
static redisReply *rds_raw(const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!rds_ctx && (!rds_configured || rds_connect() < 0))
            return NULL;
        va_list ap;
        va_start(ap, fmt);
        redisReply *r = redisvCommand(rds_ctx, fmt, ap);
        va_end(ap);
        if (r)
            return r;
        log_warn("redis: %s", rds_ctx->errstr);
        metrics_count(METRICS_REDIS_ERRORS);
        rds_close();
    }
    return NULL;
}

int rds_ping(void)
{
    redisReply *r = rds_raw("PING");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

long rds_publish(const char *channel, const char *payload, size_t len)
{
    redisReply *r = rds_raw("PUBLISH %s %b", channel, payload, len);
    long n = r && r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
    freeReplyObject(r);
    return n;
}

long rds_incr_window(const char *key, int window_s, long *ttl)
{
    return rds_incrby_window(key, 1, window_s, ttl);
}

long rds_incrby_window(const char *key, long by, int window_s, long *ttl)
{
    redisReply *r = rds_raw("EVAL %s 1 %s %d %ld", chan_lua_window, key, window_s, by);
    long n = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        n = (long)r->element[0]->integer;
        *ttl = (long)r->element[1]->integer;
    }
    freeReplyObject(r);
    return n;
}

int rds_set_nx(const char *key, int ttl_s)
{
    redisReply *r = rds_raw("SET %s 1 NX EX %d", key, ttl_s);
    int rc = !r ? -1 : r->type == REDIS_REPLY_STATUS ? 1 : r->type == REDIS_REPLY_NIL ? 0 : -1;
    freeReplyObject(r);
    return rc;
}
