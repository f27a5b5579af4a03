/*
 * The REST side of wsload latency and fanout: CONNS threads, each with its own
 * HTTP/1.1 keep-alive connection, share one schedule (POST i is due at
 * t0 + i / RATE) so the offered rate does not depend on how long one POST
 * takes. One thread with a new connection per POST could not post faster
 * than ~270/s (issue 10), which hid the latency at the rates that matter.
 */
#include "wsload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* A POST that starts this much after its due time counts as late: all connections were busy. */
#define WL_POST_LATE_US 1000
#define WL_POST_MAX_CONNS 256

/* The schedule the threads share. */
struct wl_post_sched {
    struct wl_post *p;
    atomic_long next; /* index of the next POST to send */
    long long t0, end;
};

/* One keep-alive connection and its thread's counts (summed after the join). */
struct wl_post_conn {
    struct wl_post_sched *s;
    pthread_t thread;
    int fd, started;
    int dropped; /* the server closed (or reset) it before any byte of the answer */
    long posted, failed, late, connects;
    long long max_lag_us;
    char first_error[96];
    char buf[16384];
    size_t len;
};

long long wl_post_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void wl_post_error(struct wl_post_conn *c, const char *what)
{
    c->failed++;
    if (!c->first_error[0])
        snprintf(c->first_error, sizeof(c->first_error), "%s", what);
}

static int wl_post_connect(const struct wl_post *p)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)p->port)};
    struct timeval tv = {.tv_sec = 5};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    /* Header and body leave in one write, but the answer must not wait for a delayed ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (inet_pton(AF_INET, p->addr, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void wl_post_close(struct wl_post_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Reads more of the answer into c->buf; 0 on EOF, -1 on error or a full buffer. */
static ssize_t wl_post_fill(struct wl_post_conn *c)
{
    if (c->len + 1 >= sizeof(c->buf))
        return -1;
    ssize_t n;
    do
        n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
    while (n < 0 && errno == EINTR);
    /* A read timeout is no drop: that POST may have been served, so it is not sent again. */
    if (c->len == 0 && (n == 0 || (n < 0 && errno == ECONNRESET)))
        c->dropped = 1;
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    }
    return n;
}

/* A header's value in the head [h, end), or NULL. */
static const char *wl_post_header(const char *h, const char *end, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = strstr(h, "\r\n"); l && l + 2 < end; l = strstr(l + 2, "\r\n"))
        if (!strncasecmp(l + 2, name, n) && l[2 + n] == ':')
            return l + 3 + n + strspn(l + 3 + n, " \t");
    return NULL;
}

/*
 * Whether the chunked body starting at b is complete: every chunk is
 * "<hex size>\r\n<data>\r\n" and the last has size 0 (nginx adds no trailers).
 */
static int wl_post_chunked_done(const char *b, const char *end)
{
    for (;;) {
        char *eol;
        unsigned long size = strtoul(b, &eol, 16);
        if (eol == b || end - eol < 2 || strncmp(eol, "\r\n", 2))
            return 0;
        if ((size_t)(end - eol - 2) < size + 2)
            return 0;
        if (size == 0)
            return 1;
        b = eol + 2 + size + 2;
    }
}

/* Reads one answer; its status, or -1. Sets *keep when the connection may serve another. */
static int wl_post_answer(struct wl_post_conn *c, int *keep)
{
    char *head_end;
    c->buf[0] = '\0';
    while (!(head_end = strstr(c->buf, "\r\n\r\n")))
        if (wl_post_fill(c) <= 0)
            return -1;
    int status;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    const char *cl = wl_post_header(c->buf, head_end, "Content-Length");
    const char *te = wl_post_header(c->buf, head_end, "Transfer-Encoding");
    const char *conn = wl_post_header(c->buf, head_end, "Connection");
    size_t body = (size_t)(head_end + 4 - c->buf);
    *keep = !(conn && !strncasecmp(conn, "close", 5));
    if (te && !strncasecmp(te, "chunked", 7)) {
        while (!wl_post_chunked_done(c->buf + body, c->buf + c->len))
            if (wl_post_fill(c) <= 0)
                return -1;
    } else if (cl) {
        size_t want = body + strtoul(cl, NULL, 10);
        while (c->len < want)
            if (wl_post_fill(c) <= 0)
                return -1;
    } else {
        *keep = 0; /* the body ends with the connection */
        while (wl_post_fill(c) > 0)
            ;
    }
    return status;
}

/*
 * One POST on the connection (opened when needed); its status, or -1. A
 * connection the server closed while it was idle fails before any answer:
 * then the POST goes once more on a new connection.
 */
static int wl_post_one(struct wl_post_conn *c)
{
    const struct wl_post *p = c->s->p;
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = c->fd >= 0;
        if (!reused && (c->fd = wl_post_connect(p)) < 0)
            return -1;
        c->connects += !reused;
        char body[256], req[8192];
        int blen = snprintf(body, sizeof(body), "{\"content\":\"wsload %lld\",\"%s\":\"%s\"}",
                            wl_post_now_us(), p->field, p->target);
        int len = snprintf(req, sizeof(req),
                           "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
                           "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                           "Content-Length: %d\r\n\r\n%s",
                           p->path, p->addr, p->port, p->token, blen, body);
        if (len <= 0 || len >= (int)sizeof(req))
            return -1;
        int keep = 0, status = -1;
        c->len = 0;
        c->dropped = 0;
        /* send(): no SIGPIPE when the server has closed the idle connection. */
        if (send(c->fd, req, (size_t)len, MSG_NOSIGNAL) == len)
            status = wl_post_answer(c, &keep);
        else
            c->dropped = errno == EPIPE || errno == ECONNRESET;
        if (status < 0 || !keep)
            wl_post_close(c);
        if (status >= 0 || !reused || !c->dropped)
            return status;
    }
    return -1;
}

/* Sleeps until the due time (absolute, monotonic us) or the stop flag. */
static void wl_post_wait(const struct wl_post *p, long long due)
{
    struct timespec ts = {.tv_sec = due / 1000000, .tv_nsec = (due % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0 &&
           !atomic_load(&p->stop))
        ;
}

static void *wl_post_thread(void *arg)
{
    struct wl_post_conn *c = arg;
    struct wl_post_sched *s = c->s;
    while (!atomic_load(&s->p->stop)) {
        long i = atomic_fetch_add(&s->next, 1);
        long long due = s->t0 + (long long)((double)i * 1e6 / s->p->rate);
        if (due >= s->end)
            break;
        wl_post_wait(s->p, due);
        long long lag = wl_post_now_us() - due;
        if (lag > WL_POST_LATE_US)
            c->late++;
        if (lag > c->max_lag_us)
            c->max_lag_us = lag;
        int status = wl_post_one(c);
        /* nchan answers 202 when the message found no subscriber yet, 201 otherwise. */
        if (status == 201 || (status == 202 && strncmp(s->p->path, "/pub/", 5) == 0)) {
            c->posted++;
        } else {
            char what[32] = "no HTTP answer";
            if (status >= 0)
                snprintf(what, sizeof(what), "HTTP %d", status);
            wl_post_error(c, what);
        }
    }
    wl_post_close(c);
    return NULL;
}

/* The connections RATE needs when each carries at most 50 POSTs/s (20 ms per POST). */
static int wl_post_conns(const struct wl_post *p)
{
    int n = p->conns > 0 ? p->conns : (int)(p->rate / 50.0 + 0.999);
    return n < 1 ? 1 : n > WL_POST_MAX_CONNS ? WL_POST_MAX_CONNS : n;
}

/* Sums the threads' counts into p and prints the "post" line. */
static void wl_post_sum(struct wl_post *p, struct wl_post_conn *c, int n)
{
    long late = 0, connects = 0;
    long long lag = 0;
    for (int i = 0; i < n; i++) {
        p->posted += c[i].posted;
        p->failed += c[i].failed;
        late += c[i].late;
        connects += c[i].connects;
        if (c[i].max_lag_us > lag)
            lag = c[i].max_lag_us;
        if (!p->first_error[0] && c[i].first_error[0])
            snprintf(p->first_error, sizeof(p->first_error), "%s", c[i].first_error);
    }
    printf("post conns=%d connects=%ld posted=%ld failed=%ld late=%ld max_lag_ms=%.2f\n", n,
           connects, p->posted, p->failed, late, (double)lag / 1000.0);
    fflush(stdout);
}

void *wl_post_run(void *arg)
{
    struct wl_post *p = arg;
    int n = wl_post_conns(p);
    struct wl_post_sched s = {.p = p, .t0 = wl_post_now_us()};
    struct wl_post_conn *c = calloc((size_t)n, sizeof(*c));
    atomic_init(&s.next, 0);
    s.end = s.t0 + (long long)p->secs * 1000000;
    if (!c) {
        snprintf(p->first_error, sizeof(p->first_error), "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        c[i].s = &s;
        c[i].fd = -1;
        c[i].started = pthread_create(&c[i].thread, NULL, wl_post_thread, &c[i]) == 0;
        if (!c[i].started)
            wl_post_error(&c[i], "cannot start a poster thread");
    }
    for (int i = 0; i < n; i++)
        if (c[i].started)
            pthread_join(c[i].thread, NULL);
    wl_post_sum(p, c, n);
    free(c);
    return NULL;
}
