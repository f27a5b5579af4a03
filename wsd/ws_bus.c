#include "ws_bus.h"

#include "log.h"
#include "metrics.h"
#include "rds.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_BUS_BACKOFF_MIN_MS 200
#define WS_BUS_BACKOFF_MAX_MS 2000
/* From the start of an attempt until every channel is confirmed subscribed. */
#define WS_BUS_CONNECT_TIMEOUT_MS 5000

struct ws_bus_route {
    struct ws_bus_route *next;
    ws_bus_fn *fn;
    void *arg;
    unsigned refs; /* 0 while leaving: its UNSUBSCRIBE is in flight */
    int confirmed; /* Redis answered this connection's SUBSCRIBE */
    int leaving;   /* UNSUBSCRIBE sent, its reply not yet in */
    size_t len;
    char name[];
};

enum ws_bus_state {
    WS_BUS_IDLE,       /* waiting for the backoff timer */
    WS_BUS_RESOLVING,  /* uv_getaddrinfo() in flight */
    WS_BUS_CONNECTING, /* connect, AUTH and SUBSCRIBEs in flight */
    WS_BUS_UP,
    WS_BUS_STOPPED,
};

struct ws_bus {
    uv_loop_t *loop;
    struct rds_url url;
    uv_timer_t timer; /* backoff, then the connect timeout */
    uv_getaddrinfo_t gai;
    int gai_busy;
    redisAsyncContext *ac;
    enum ws_bus_state state;
    unsigned backoff_ms;
    unsigned pending; /* SUBSCRIBE confirmations still awaited */
    int down_logged;  /* the outage was logged; stay quiet until up again */
    char why[128];    /* why the current connection failed, if known */
    struct ws_bus_route **tab;
    size_t tab_size, count;
    ws_bus_state_fn *state_fn;
    void *state_arg;
    ws_bus_confirm_fn *confirm_fn;
    void *confirm_arg;
};

/*
 * hiredis's event hooks on the uv loop. Not hiredis's adapters/libuv.h: the
 * 0.14 one ignores poll errors, so a refused connect was never noticed.
 */
struct ws_bus_io {
    redisAsyncContext *ac; /* NULL once hiredis let go */
    uv_poll_t poll;
    int events;
};

static void ws_bus_attempt(struct ws_bus *b);
static void ws_bus_on_timer(uv_timer_t *t);

/* FNV-1a */
static size_t ws_bus_hash(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return (size_t)h;
}

static struct ws_bus_route **ws_bus_slot(const struct ws_bus *b, const char *name, size_t len)
{
    struct ws_bus_route **p = &b->tab[ws_bus_hash(name, len) & (b->tab_size - 1)];
    while (*p && ((*p)->len != len || memcmp((*p)->name, name, len) != 0))
        p = &(*p)->next;
    return p;
}

static int ws_bus_grow(struct ws_bus *b)
{
    size_t size = b->tab_size ? b->tab_size * 2 : 16;
    struct ws_bus_route **tab = calloc(size, sizeof(*tab));
    if (!tab)
        return -1;
    for (size_t i = 0; i < b->tab_size; i++)
        for (struct ws_bus_route *r = b->tab[i], *next; r; r = next) {
            next = r->next;
            size_t h = ws_bus_hash(r->name, r->len) & (size - 1);
            r->next = tab[h];
            tab[h] = r;
        }
    free(b->tab);
    b->tab = tab;
    b->tab_size = size;
    return 0;
}

static void ws_bus_io_cb(uv_poll_t *h, int status, int events)
{
    struct ws_bus_io *io = h->data;
    /* On error libuv stopped the watcher: let hiredis read or write to find out why. */
    int ev = status < 0 ? io->events : events;
    if (io->ac && (ev & UV_READABLE))
        redisAsyncHandleRead(io->ac);
    if (io->ac && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(io->ac);
}

static void ws_bus_io_set(struct ws_bus_io *io, int events)
{
    io->events = events;
    if (events)
        uv_poll_start(&io->poll, events, ws_bus_io_cb);
    else
        uv_poll_stop(&io->poll);
}

static void ws_bus_io_add_read(void *p)
{
    struct ws_bus_io *io = p;
    ws_bus_io_set(io, io->events | UV_READABLE);
}

static void ws_bus_io_del_read(void *p)
{
    struct ws_bus_io *io = p;
    ws_bus_io_set(io, io->events & ~UV_READABLE);
}

static void ws_bus_io_add_write(void *p)
{
    struct ws_bus_io *io = p;
    ws_bus_io_set(io, io->events | UV_WRITABLE);
}

static void ws_bus_io_del_write(void *p)
{
    struct ws_bus_io *io = p;
    ws_bus_io_set(io, io->events & ~UV_WRITABLE);
}

static void ws_bus_io_free(uv_handle_t *h)
{
    free(h->data);
}

/* hiredis frees the context: the poll goes, io with it once libuv is done. */
static void ws_bus_io_cleanup(void *p)
{
    struct ws_bus_io *io = p;
    io->ac = NULL;
    uv_close((uv_handle_t *)&io->poll, ws_bus_io_free);
}

static int ws_bus_io_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    struct ws_bus_io *io = calloc(1, sizeof(*io));
    if (!io || uv_poll_init(loop, &io->poll, ac->c.fd) != 0) {
        free(io);
        return -1;
    }
    io->ac = ac;
    io->poll.data = io;
    ac->ev.data = io;
    ac->ev.addRead = ws_bus_io_add_read;
    ac->ev.delRead = ws_bus_io_del_read;
    ac->ev.addWrite = ws_bus_io_add_write;
    ac->ev.delWrite = ws_bus_io_del_write;
    ac->ev.cleanup = ws_bus_io_cleanup;
    return 0;
}

static void ws_bus_on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* hiredis keeps ws_bus_on_reply as the channel's callback until it is unsubscribed. */
static void ws_bus_send_subscribe(struct ws_bus *b, const struct ws_bus_route *r)
{
    if (b->ac &&
        redisAsyncCommand(b->ac, ws_bus_on_reply, b, "SUBSCRIBE %b", r->name, r->len) == REDIS_OK)
        b->pending++;
}

static void ws_bus_notify(struct ws_bus *b, int up)
{
    if (b->state_fn)
        b->state_fn(b->state_arg, up);
}

static void ws_bus_set_up(struct ws_bus *b)
{
    b->state = WS_BUS_UP;
    metrics_count(METRICS_REDIS_CONNECTS);
    b->backoff_ms = WS_BUS_BACKOFF_MIN_MS;
    b->down_logged = 0;
    uv_timer_stop(&b->timer);
    log_info("redis: connected to %s:%d, %zu channel(s) subscribed", b->url.host, b->url.port,
             b->count);
    ws_bus_notify(b, 1);
}

/* The attempt failed (or the connection was lost): log once, back off, retry. */
static void ws_bus_retry(struct ws_bus *b, const char *why)
{
    metrics_count(METRICS_REDIS_ERRORS);
    if (!b->down_logged)
        log_warn("redis: cannot connect to %s:%d (%s); retrying", b->url.host, b->url.port,
                 b->why[0] ? b->why : why);
    b->down_logged = 1;
    b->why[0] = '\0';
    b->state = WS_BUS_IDLE;
    uv_timer_start(&b->timer, ws_bus_on_timer, b->backoff_ms, 0);
    b->backoff_ms =
        b->backoff_ms * 2 > WS_BUS_BACKOFF_MAX_MS ? WS_BUS_BACKOFF_MAX_MS : b->backoff_ms * 2;
}

static void ws_bus_on_timer(uv_timer_t *t)
{
    struct ws_bus *b = t->data;
    if (b->state == WS_BUS_IDLE) {
        ws_bus_attempt(b);
        return;
    }
    /* The attempt did not finish in time: give it up (no callback will fire) and retry. */
    redisAsyncContext *ac = b->ac;
    b->ac = NULL;
    if (ac)
        redisAsyncFree(ac);
    ws_bus_retry(b, "timed out");
}

static void ws_bus_route_message(struct ws_bus *b, const redisReply *rep)
{
    const redisReply *ch = rep->element[1], *msg = rep->element[2];
    if (ch->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING)
        return;
    struct ws_bus_route *r = *ws_bus_slot(b, ch->str, ch->len);
    if (r && r->refs)
        r->fn(r->arg, ch->str, msg->str, msg->len);
}

static void ws_bus_route_free(struct ws_bus *b, struct ws_bus_route **p)
{
    struct ws_bus_route *r = *p;
    *p = r->next;
    b->count--;
    free(r);
}

/* Redis confirmed a SUBSCRIBE: the channel's events reach us from now on. */
static void ws_bus_confirm(struct ws_bus *b, const redisReply *ch)
{
    struct ws_bus_route *r = *ws_bus_slot(b, ch->str, ch->len);
    if (!r || r->leaving)
        return;
    r->confirmed = 1;
    if (b->confirm_fn)
        b->confirm_fn(b->confirm_arg, r->name);
}

/*
 * Redis confirmed an UNSUBSCRIBE. hiredis 0.14 drops the channel's callback
 * on this reply, so a SUBSCRIBE of the same channel sent before it would be
 * silently deaf: a channel wanted again meanwhile is subscribed only now.
 */
static void ws_bus_left(struct ws_bus *b, const redisReply *ch)
{
    struct ws_bus_route **p = ws_bus_slot(b, ch->str, ch->len), *r = *p;
    if (!r || !r->leaving)
        return;
    r->leaving = 0;
    r->confirmed = 0;
    if (!r->refs)
        ws_bus_route_free(b, p);
    else
        ws_bus_send_subscribe(b, r);
}

/* Every pub/sub reply: subscribe and unsubscribe confirmations, and messages. */
static void ws_bus_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct ws_bus *b = privdata;
    const redisReply *rep = reply;
    (void)ac;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    if (!strcmp(kind, "message")) {
        ws_bus_route_message(b, rep);
        return;
    }
    if (rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    if (!strcmp(kind, "unsubscribe")) {
        ws_bus_left(b, rep->element[1]);
    } else if (!strcmp(kind, "subscribe")) {
        if (b->pending && --b->pending == 0 && b->state == WS_BUS_CONNECTING)
            ws_bus_set_up(b);
        ws_bus_confirm(b, rep->element[1]);
    }
}

/* AUTH or SELECT refused (wrong password, no such db): drop the connection and retry. */
static void ws_bus_on_setup(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct ws_bus *b = privdata;
    const redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        snprintf(b->why, sizeof(b->why), "AUTH/SELECT: %s", rep->str);
        redisAsyncDisconnect(ac);
    }
}

static void ws_bus_on_connect(const redisAsyncContext *ac, int status)
{
    struct ws_bus *b = ac->data;
    if (b->ac != ac)
        return;
    if (status != REDIS_OK) {
        b->ac = NULL; /* hiredis frees it on return */
        ws_bus_retry(b, ac->errstr);
    } else if (b->pending == 0) {
        ws_bus_set_up(b);
    }
}

static void ws_bus_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct ws_bus *b = ac->data;
    (void)status;
    if (b->ac != ac)
        return;
    b->ac = NULL;
    if (b->state == WS_BUS_UP) {
        log_info("redis: disconnected (%s)", ac->err ? ac->errstr : "closed by server");
        b->down_logged = 1;
        ws_bus_notify(b, 0);
    }
    ws_bus_retry(b, ac->err ? ac->errstr : "connection closed");
}

/*
 * Queues AUTH, SELECT and every SUBSCRIBE: hiredis sends them once connected. The
 * command connection keeps presence and the shared message rate limit in REDIS_URL's
 * db, where chat-fcgi reads and counts them (pub/sub ignores the db).
 */
static void ws_bus_prime(struct ws_bus *b)
{
    b->pending = 0;
    if (b->url.username[0])
        redisAsyncCommand(b->ac, ws_bus_on_setup, b, "AUTH %s %s", b->url.username,
                          b->url.password);
    else if (b->url.password[0])
        redisAsyncCommand(b->ac, ws_bus_on_setup, b, "AUTH %s", b->url.password);
    if (b->url.db)
        redisAsyncCommand(b->ac, ws_bus_on_setup, b, "SELECT %d", b->url.db);
    for (size_t i = 0; i < b->tab_size; i++)
        for (struct ws_bus_route **p = &b->tab[i]; *p;) {
            struct ws_bus_route *r = *p;
            r->confirmed = r->leaving = 0;
            if (!r->refs) {
                ws_bus_route_free(b, p); /* a new connection has no subscription to leave */
                continue;
            }
            ws_bus_send_subscribe(b, r);
            p = &r->next;
        }
}

static void ws_bus_connect(struct ws_bus *b, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, b->url.port);
    if (!ac || ac->err || ws_bus_io_attach(ac, b->loop) < 0) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac && ac->err ? ac->errstr : "cannot attach");
        if (ac)
            redisAsyncFree(ac);
        ws_bus_retry(b, why);
        return;
    }
    ac->data = b;
    b->ac = ac;
    b->state = WS_BUS_CONNECTING;
    redisEnableKeepAlive(&ac->c);
    redisAsyncSetConnectCallback(ac, ws_bus_on_connect);
    redisAsyncSetDisconnectCallback(ac, ws_bus_on_disconnect);
    ws_bus_prime(b);
    uv_timer_start(&b->timer, ws_bus_on_timer, WS_BUS_CONNECT_TIMEOUT_MS, 0);
}

static void ws_bus_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ws_bus *b = req->data;
    char ip[64] = "";
    b->gai_busy = 0;
    if (status == 0)
        status = uv_ip_name(res->ai_addr, ip, sizeof(ip));
    uv_freeaddrinfo(res);
    if (b->state == WS_BUS_STOPPED)
        return;
    if (status < 0)
        ws_bus_retry(b, uv_strerror(status));
    else
        ws_bus_connect(b, ip);
}

/* One connection attempt; a name other than an IP literal is resolved off the loop first. */
static void ws_bus_attempt(struct ws_bus *b)
{
    unsigned char addr[16];
    if (uv_inet_pton(AF_INET, b->url.host, addr) == 0 ||
        uv_inet_pton(AF_INET6, b->url.host, addr) == 0) {
        ws_bus_connect(b, b->url.host);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    b->gai.data = b;
    int rc = uv_getaddrinfo(b->loop, &b->gai, ws_bus_on_resolved, b->url.host, NULL, &hints);
    if (rc < 0) {
        ws_bus_retry(b, uv_strerror(rc));
        return;
    }
    b->gai_busy = 1;
    b->state = WS_BUS_RESOLVING;
}

struct ws_bus *ws_bus_new(uv_loop_t *loop, const char *url)
{
    struct ws_bus *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    if (rds_url_parse(url, &b->url) < 0 || ws_bus_grow(b) < 0) {
        free(b);
        return NULL;
    }
    b->loop = loop;
    b->backoff_ms = WS_BUS_BACKOFF_MIN_MS;
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    ws_bus_attempt(b);
    return b;
}

void ws_bus_on_state(struct ws_bus *b, ws_bus_state_fn *fn, void *arg)
{
    b->state_fn = fn;
    b->state_arg = arg;
}

int ws_bus_subscribe(struct ws_bus *b, const char *channel, ws_bus_fn *fn, void *arg)
{
    size_t len = strlen(channel);
    struct ws_bus_route **p = ws_bus_slot(b, channel, len), *r = *p;
    if (r) {
        if (r->fn != fn || r->arg != arg)
            return -1;
        r->refs++; /* from 0: leaving, subscribed again once Redis confirms that (ws_bus_left) */
        return 0;
    }
    if (b->count >= b->tab_size && ws_bus_grow(b) == 0)
        p = ws_bus_slot(b, channel, len);
    if (!(r = malloc(sizeof(*r) + len + 1)))
        return -1;
    *r = (struct ws_bus_route){.fn = fn, .arg = arg, .refs = 1, .len = len};
    memcpy(r->name, channel, len + 1);
    *p = r;
    b->count++;
    ws_bus_send_subscribe(b, r);
    return 0;
}

int ws_bus_unsubscribe(struct ws_bus *b, const char *channel)
{
    size_t len = strlen(channel);
    struct ws_bus_route **p = ws_bus_slot(b, channel, len), *r = *p;
    if (!r || !r->refs)
        return -1;
    if (--r->refs || r->leaving)
        return 0;
    if (b->ac &&
        redisAsyncCommand(b->ac, NULL, NULL, "UNSUBSCRIBE %b", r->name, r->len) == REDIS_OK)
        r->leaving = 1;
    else
        ws_bus_route_free(b, p);
    return 0;
}

int ws_bus_confirmed(const struct ws_bus *b, const char *channel)
{
    const struct ws_bus_route *r = *ws_bus_slot(b, channel, strlen(channel));
    return r && r->refs && r->confirmed && !r->leaving;
}

void ws_bus_flush(struct ws_bus *b)
{
    if (b->ac && b->state == WS_BUS_UP && !(b->ac->c.flags & REDIS_IN_CALLBACK))
        redisAsyncHandleWrite(b->ac);
}

void ws_bus_on_confirm(struct ws_bus *b, ws_bus_confirm_fn *fn, void *arg)
{
    b->confirm_fn = fn;
    b->confirm_arg = arg;
}

int ws_bus_is_up(const struct ws_bus *b)
{
    return b->state == WS_BUS_UP;
}

size_t ws_bus_count(const struct ws_bus *b)
{
    return b->count;
}

struct ws_bus_cmd {
    ws_bus_reply_fn *fn;
    void *arg;
};

static void ws_bus_on_cmd_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct ws_bus_cmd *c = privdata;
    (void)ac;
    if (c->fn)
        c->fn(c->arg, reply);
    free(c);
}

static int ws_bus_vcommand(struct ws_bus *b, ws_bus_reply_fn *fn, void *arg, const char *fmt,
                           va_list ap)
{
    struct ws_bus_cmd *c;
    if (b->state != WS_BUS_UP || !b->ac || !(c = malloc(sizeof(*c))))
        return -1;
    c->fn = fn;
    c->arg = arg;
    if (redisvAsyncCommand(b->ac, ws_bus_on_cmd_reply, c, fmt, ap) != REDIS_OK) {
        free(c);
        return -1;
    }
    return 0;
}

int ws_bus_command(struct ws_bus *b, ws_bus_reply_fn *fn, void *arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ws_bus_vcommand(b, fn, arg, fmt, ap);
    va_end(ap);
    return rc;
}

int ws_bus_publish(struct ws_bus *b, const char *channel, const char *payload, size_t len,
                   ws_bus_reply_fn *fn, void *arg)
{
    return ws_bus_command(b, fn, arg, "PUBLISH %s %b", channel, payload, len);
}

void ws_bus_stop(struct ws_bus *b)
{
    if (b->state == WS_BUS_STOPPED)
        return;
    b->state = WS_BUS_STOPPED;
    uv_timer_stop(&b->timer);
    uv_close((uv_handle_t *)&b->timer, NULL);
    if (b->gai_busy)
        uv_cancel((uv_req_t *)&b->gai);
    redisAsyncContext *ac = b->ac;
    b->ac = NULL;
    if (ac)
        redisAsyncFree(ac);
}

void ws_bus_free(struct ws_bus *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->tab_size; i++)
        for (struct ws_bus_route *r = b->tab[i], *next; r; r = next) {
            next = r->next;
            free(r);
        }
    free(b->tab);
    free(b);
}
