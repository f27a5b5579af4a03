/*
 * wsload: the WebSocket load generator of bench/run, on the libwebsockets 4.1
 * client API (the shape of minimal-examples/ws-client/minimal-ws-client-spam
 * at v4.1.6: one context, connects paced from a scheduled callback).
 *
 *   wsload idle    -p PORT -k TOKENS [-n N] [-H HOLD_SECS]
 *   wsload probe   -p PORT -k TOKENS [-m TEXT]
 *   wsload send    -p PORT -k TOKENS -r RECEIVER_ID [-n N] [-d SECS]
 *   wsload latency -p PORT -k TOKENS -s SENDER_TOKEN -r RECEIVER_ID [-n N] [-R RATE] [-C CONNS]
 *                  [-d SECS]
 *   wsload fanout  -p PORT -k TOKENS -s SENDER_TOKEN -g GROUP_ID [-n N] [-R RATE] [-C CONNS]
 *                  [-d SECS]
 *   wsload storm   -p PORT -k TOKENS [-n N] [-G GROUP_SIZE] [-O OBSERVERS] [-d SECS]
 *                  (bench/wsload_storm.c)
 * and for all: [-a ADDR] [-c INFLIGHT] [-T SETUP_SECS] [-P PATH_PREFIX] [-q POST_PORT] [-v]
 *              [-b BINDS] [-B FIRST] [-N]
 *
 * Every mode first opens N connections (at most INFLIGHT handshakes at a
 * time); each sends {"type":"ping"} and waits for its pong, which also proves
 * the token was accepted. Then one line
 *   ready n=.. ponged=.. failed=.. setup_s=.. first_error=..
 * idle     holds the connections until SIGTERM/SIGINT or HOLD_SECS, then
 *          prints "done dropped=.." (how many the server closed meanwhile).
 * probe    one connection: sends TEXT ({"type":"ping"} by default), prints the
 *          first frame ("recv <text>"), the server's close ("closed <code>
 *          <reason>") or the failure ("error <why>").
 * send     each connection sends {"type":"message"} frames to RECEIVER_ID for
 *          SECS, one at a time (the next after the ack) and at most one per
 *          210 ms (WS.md allows 50 per 10 s per connection); ack latency.
 * latency  POSTs /api/v1/messages as SENDER_TOKEN's user at RATE per second
 *          for SECS over POST_CONNS keep-alive connections (by default one
 *          per 50/s; to POST_PORT, by default PORT); the N
 *          connections (RECEIVER_ID's) time the "message" events: POST sent
 *          -> event received.
 * fanout   the same with group messages to GROUP_ID; the N connections are
 *          its members: deliveries per second and their latency.
 * Before measuring, send, latency and fanout wait until the connections have
 * received nothing for 1 s (at most 30 s): the presence events a thousand
 * members coming online cause are not the traffic measured (-S: at most
 * SETTLE_MAX_SECS, 30 by default). They end with
 *   result rate=<per s> p50_ms=.. p99_ms=.. max_ms=.. count=.. expected=.. errors=..
 *          secs=.. settle_s=.. settle_frames=..
 * and exit 3, printing why, when the server does not do what they measure
 * (no ack, no delivery), so that no number is ever made of nothing.
 *
 * TOKENS is a file of "user_id token" lines; connection i uses line i modulo
 * their count and the path PATH_PREFIX<user_id>?token=<token> (WS.md).
 *
 * -N measures nchan, the peer of idle and fanout: connections are ready once
 * open (nchan answers no ping), and the poster sends the same JSON body,
 * {"content":"wsload <us>","type":"message"}, to nchan's /pub/GROUP_ID (the
 * subscribers use -P /sub/ and a TOKENS line "GROUP_ID -"). -b BINDS spreads
 * the connections over the source addresses 127.0.0.2 .. 127.0.0.(1+BINDS)
 * (-B FIRST: from 127.0.0.FIRST, so that several wsload processes use apart ones):
 * one address reaches one port with at most ~28,000 ephemeral ports.
 *
 * The result line also says how many connections the server closed during
 * the run (closed=) and the CPU wsload itself used (client_cpu=, in cores),
 * so that a rate limited by the client is seen as such.
 */
#include <libwebsockets.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "wsload.h"

#define WL_TICK_US (100 * LWS_US_PER_MS)
#define WL_SEND_GAP_US (210 * LWS_US_PER_MS)
/* After ready: subscriptions land and connect-time events (presence) drain. */
#define WL_QUIET_US (1000 * LWS_US_PER_MS) /* settled: no frame for this long */
#define WL_DRAIN_US (3000 * LWS_US_PER_MS) /* after the run: late acks and deliveries */
#define WL_MAX_SAMPLES 4000000
/*
 * fanout: one poster (a new connection per POST, one at a time) manages only a
 * few dozen POSTs/s on a loaded machine; the rate is split over one poster per
 * WL_POSTER_RATE messages/s, at most WL_POSTERS_MAX.
 */
#define WL_POSTER_RATE 20
#define WL_POSTERS_MAX 16

enum wl_state { WL_NEW, WL_CONNECTING, WL_OPEN, WL_READY, WL_FAILED, WL_CLOSED };
enum wl_phase { WL_SETUP, WL_SETTLE, WL_RUN, WL_DRAIN, WL_HOLD, WL_END };

struct wl_conn {
    struct lws *wsi;
    lws_sorted_usec_list_t sul; /* send: when the next message may go */
    int idx;
    unsigned char state;
    unsigned char pinged;
    unsigned char awaiting; /* send: a message frame without its ack yet */
    unsigned seq;
    lws_usec_t sent_at;
};

struct wl_run {
    struct wl_opts o;
    struct lws_context *ctx;
    lws_sorted_usec_list_t pump, tick;
    struct wl_conn *conns;
    int next, inflight, ready, failed, dropped;
    enum wl_phase phase;
    lws_usec_t t0, deadline, run_start, run_end, settle_start, last_rx;
    double cpu_start, cpu_end; /* wsload's user + system CPU seconds at run start and end */
    int dropped_start;         /* connections closed by the server before the run */
    char post_path[300];
    char binds[250][24]; /* -b: the source addresses */
    long settle_frames;
    char first_error[160];
    int exit_code;
    /* send, latency, fanout */
    double *samples;
    long nsamples, sent, errors, unknown_type;
    struct wl_post post;
    struct wl_post posts[WL_POSTERS_MAX]; /* fanout: the rate split over several posters */
    pthread_t posters[WL_POSTERS_MAX];
    int nposters; /* started */
};

static struct wl_run wl;
static volatile sig_atomic_t wl_interrupted;

static void wl_on_signal(int sig)
{
    (void)sig;
    wl_interrupted = 1;
}

static void wl_note_error(const char *why, size_t len)
{
    if (!wl.first_error[0])
        snprintf(wl.first_error, sizeof(wl.first_error), "%.*s", (int)len, why ? why : "?");
}

static void wl_sample(lws_usec_t us)
{
    if (wl.nsamples < WL_MAX_SAMPLES)
        wl.samples[wl.nsamples++] = (double)us / 1000.0;
}

/* ------------------------------------------------------------ connecting */

static void wl_on_pump(lws_sorted_usec_list_t *sul);

/* Connects start from the scheduler, never from inside another connection's callback. */
static void wl_schedule_pump(void)
{
    lws_sul_schedule(wl.ctx, 0, &wl.pump, wl_on_pump, 1);
}

/* Starts connection c; 0 when under way (the callback reports the outcome). */
static int wl_connect(struct wl_conn *c)
{
    struct lws_client_connect_info i;
    char path[4200];
    const struct wl_token *t = &wl.o.tokens[c->idx % wl.o.ntokens];
    snprintf(path, sizeof(path), "%s%s?token=%s", wl.o.prefix, t->user, t->token);
    memset(&i, 0, sizeof(i));
    i.context = wl.ctx;
    i.address = wl.o.addr;
    i.port = wl.o.port;
    i.path = path;
    i.host = wl.o.addr;
    i.local_protocol_name = "wsload";
    if (wl.o.binds)
        i.iface = wl.binds[c->idx % wl.o.binds];
    i.userdata = c;
    i.pwsi = &c->wsi;
    c->state = WL_CONNECTING;
    if (!lws_client_connect_via_info(&i)) {
        c->state = WL_FAILED;
        c->wsi = NULL;
        wl_note_error("connect failed at once", 22);
        return -1;
    }
    return 0;
}

static void wl_on_pump(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    while (wl.phase == WL_SETUP && wl.inflight < wl.o.max_inflight && wl.next < wl.o.n) {
        struct wl_conn *c = &wl.conns[wl.next++];
        if (wl_connect(c) == 0)
            wl.inflight++;
        else
            wl.failed++;
    }
}

/* A handshake that is over, one way or the other, frees a slot for the next. */
static void wl_settle(struct wl_conn *c, enum wl_state to)
{
    if (c->state == WL_CONNECTING || c->state == WL_OPEN) {
        wl.inflight--;
        if (to == WL_READY)
            wl.ready++;
        else
            wl.failed++;
        wl_schedule_pump();
    } else if (c->state == WL_READY && to == WL_CLOSED) {
        wl.dropped++;
    }
    c->state = (unsigned char)to;
}

/* ------------------------------------------------------------ phases */

static double wl_secs(lws_usec_t us)
{
    return (double)us / LWS_US_PER_SEC;
}

static void wl_print_ready(lws_usec_t now)
{
    printf("ready n=%d ponged=%d failed=%d setup_s=%.2f first_error=%s\n", wl.o.n, wl.ready,
           wl.o.n - wl.ready, wl_secs(now - wl.t0), wl.first_error[0] ? wl.first_error : "-");
}

/* CPU seconds (user + system) of wsload so far, both threads. */
static double wl_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int wl_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double wl_pct(double p)
{
    if (!wl.nsamples)
        return 0;
    long i = (long)(p * (double)(wl.nsamples - 1) + 0.5);
    return wl.samples[i];
}

/* The result line of send, latency and fanout, or why there is none (exit 3). */
static void wl_print_result(void)
{
    double secs = wl_secs(wl.run_end - wl.run_start);
    long expected = wl.o.mode == WL_SEND ? wl.sent : wl.post.posted * (long)wl.ready;
    if (wl.o.mode == WL_SEND && wl.unknown_type) {
        fprintf(stderr, "wsload: the server does not know {\"type\":\"message\"} frames yet\n");
        wl.exit_code = 3;
        return;
    }
    if (wl.o.mode != WL_SEND && wl.post.posted > 0 && wl.nsamples == 0) {
        fprintf(stderr, "wsload: %ld messages posted (%s), none delivered to the %d WebSockets\n",
                wl.post.posted, wl.post.first_error[0] ? wl.post.first_error : "HTTP 201",
                wl.ready);
        wl.exit_code = 3;
        return;
    }
    qsort(wl.samples, (size_t)wl.nsamples, sizeof(*wl.samples), wl_cmp_double);
    printf("result rate=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f count=%ld expected=%ld "
           "errors=%ld secs=%.1f settle_s=%.1f settle_frames=%ld closed=%d client_cpu=%.2f%s%s\n",
           secs > 0 ? (double)wl.nsamples / secs : 0, wl_pct(0.50), wl_pct(0.99), wl_pct(1.0),
           wl.nsamples, expected, wl.errors + wl.post.failed, secs,
           wl_secs(wl.run_start - wl.settle_start), wl.settle_frames, wl.dropped - wl.dropped_start,
           secs > 0 ? (wl.cpu_end - wl.cpu_start) / secs : 0,
           wl.post.first_error[0] ? " post_error=" : "", wl.post.first_error);
    wl.exit_code = wl.nsamples > 0 ? 0 : 1;
}

static void wl_request_sends(void);

/* wl.post's rate split over posters: one for latency, one per WL_POSTER_RATE for fanout. */
static void wl_start_posters(void)
{
    int n = wl.o.mode == WL_FANOUT ? (int)(wl.o.rate / WL_POSTER_RATE) + 1 : 1;
    if (n > WL_POSTERS_MAX)
        n = WL_POSTERS_MAX;
    for (int i = 0; i < n; i++) {
        struct wl_post *p = &wl.posts[i];
        memcpy(p, &wl.post, sizeof(*p));
        atomic_init(&p->stop, 0);
        p->secs = wl.o.run_s;
        p->rate = wl.o.rate / n;
        if (pthread_create(&wl.posters[i], NULL, wl_post_run, p) != 0) {
            wl_note_error("cannot start a poster thread", 28);
            break;
        }
        wl.nposters++;
    }
}

static void wl_stop_posters(void)
{
    for (int i = 0; i < wl.nposters; i++)
        atomic_store(&wl.posts[i].stop, 1);
}

/* Stops and joins the posters; their counts add up in wl.post. */
static void wl_join_posters(void)
{
    wl_stop_posters();
    for (int i = 0; i < wl.nposters; i++) {
        struct wl_post *p = &wl.posts[i];
        pthread_join(wl.posters[i], NULL);
        wl.post.posted += p->posted;
        wl.post.failed += p->failed;
        if (!wl.post.first_error[0])
            memcpy(wl.post.first_error, p->first_error, sizeof(p->first_error));
    }
    wl.nposters = 0;
}

static void wl_start_run(lws_usec_t now)
{
    wl.phase = WL_RUN;
    wl.run_start = now;
    wl.cpu_start = wl_cpu();
    wl.dropped_start = wl.dropped;
    wl.deadline = now + (lws_usec_t)wl.o.run_s * LWS_US_PER_SEC;
    if (wl.o.mode == WL_SEND) {
        wl_request_sends();
        return;
    }
    wl_start_posters();
}

static void wl_end_setup(lws_usec_t now)
{
    if (wl.o.mode == WL_PROBE) {
        if (wl.ready + wl.failed < wl.o.n)
            printf("error timeout after %d s\n", wl.o.setup_s);
        wl.phase = WL_END;
        return;
    }
    wl_print_ready(now);
    wl.exit_code = wl.ready == wl.o.n ? 0 : 1;
    if (wl.o.mode == WL_IDLE) {
        wl.phase = WL_HOLD;
        wl.deadline = now + (lws_usec_t)wl.o.hold_s * LWS_US_PER_SEC;
    } else if (wl.ready == 0) {
        wl.phase = WL_END;
    } else {
        wl.phase = WL_SETTLE;
        wl.settle_start = wl.last_rx = now;
        wl.deadline = now + (lws_usec_t)wl.o.settle_s * LWS_US_PER_SEC; /* -S */
    }
}

static void wl_on_tick(lws_sorted_usec_list_t *sul)
{
    lws_usec_t now = lws_now_usecs();
    (void)sul;
    if (wl.phase == WL_SETUP &&
        (wl.ready + wl.failed == wl.o.n || now > wl.deadline || wl_interrupted))
        wl_end_setup(now);
    else if (wl.phase == WL_SETTLE &&
             (now - wl.last_rx > WL_QUIET_US || now > wl.deadline || wl_interrupted))
        wl_start_run(now);
    else if (wl.phase == WL_RUN && (now > wl.deadline || wl_interrupted)) {
        wl_stop_posters();
        wl.run_end = now;
        wl.cpu_end = wl_cpu();
        wl.phase = WL_DRAIN;
        wl.deadline = now + WL_DRAIN_US;
    } else if (wl.phase == WL_DRAIN && (now > wl.deadline || wl_interrupted)) {
        wl_join_posters(); /* they stop within one POST (5 s timeouts) */
        wl_print_result();
        wl.phase = WL_END;
    } else if (wl.phase == WL_HOLD && (now > wl.deadline || wl_interrupted)) {
        printf("done dropped=%d\n", wl.dropped);
        wl.phase = WL_END;
    }
    /* Always again: lws polls until its next timer, so this bounds the wait of the main loop. */
    lws_sul_schedule(wl.ctx, 0, &wl.tick, wl_on_tick, WL_TICK_US);
}

/* ------------------------------------------------------------ frames */

static int wl_write(struct lws *wsi, const char *s, size_t len)
{
    unsigned char buf[LWS_PRE + 1024];
    if (len > sizeof(buf) - LWS_PRE)
        return -1;
    memcpy(buf + LWS_PRE, s, len);
    return lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int)len ? -1 : 0;
}

static void wl_on_send_timer(lws_sorted_usec_list_t *sul)
{
    struct wl_conn *c = lws_container_of(sul, struct wl_conn, sul);
    if (c->wsi && c->state == WL_READY)
        lws_callback_on_writable(c->wsi);
}

static void wl_request_sends(void)
{
    for (int i = 0; i < wl.o.n; i++)
        if (wl.conns[i].state == WL_READY)
            lws_callback_on_writable(wl.conns[i].wsi);
}

static int wl_send_message(struct lws *wsi, struct wl_conn *c)
{
    char msg[512];
    lws_usec_t now = lws_now_usecs();
    if (wl.phase != WL_RUN || c->awaiting || now < c->sent_at + WL_SEND_GAP_US)
        return 0;
    int len = snprintf(msg, sizeof(msg),
                       "{\"type\":\"message\",\"content\":\"wsload %d-%u\",\"receiver_id\":\"%s\","
                       "\"client_id\":\"c%d-%u\"}",
                       c->idx, c->seq + 1, wl.o.target, c->idx, c->seq + 1);
    if (wl_write(wsi, msg, (size_t)len) < 0)
        return -1;
    c->seq++;
    c->awaiting = 1;
    c->sent_at = now;
    wl.sent++;
    return 0;
}

static int wl_on_writeable(struct lws *wsi, struct wl_conn *c)
{
    if (!c->pinged) {
        c->pinged = 1;
        return wl_write(wsi, wl.o.text, strlen(wl.o.text));
    }
    return wl.o.mode == WL_SEND ? wl_send_message(wsi, c) : 0;
}

/*
 * The string value of "key" in a flat JSON object, or NULL; *vlen its length
 * (escapes left as they are). Tolerates the spaces Postgres's json puts
 * around ':'; enough for the frames wsload looks at.
 */
static const char *wl_json_str(const char *in, size_t len, const char *key, size_t *vlen)
{
    char k[40];
    int kl = snprintf(k, sizeof(k), "\"%s\"", key);
    const char *end = in + len, *p = in;
    while ((p = memmem(p, (size_t)(end - p), k, (size_t)kl))) {
        const char *q = p + kl;
        while (q < end && (*q == ' ' || *q == ':'))
            q++;
        p += kl;
        if (q >= end || *q != '"' || q == p)
            continue;
        const char *v = ++q;
        while (q < end && *q != '"')
            q += *q == '\\' ? 2 : 1;
        if (q >= end)
            return NULL;
        *vlen = (size_t)(q - v);
        return v;
    }
    return NULL;
}

static int wl_json_is(const char *in, size_t len, const char *key, const char *want)
{
    size_t vl;
    const char *v = wl_json_str(in, len, key, &vl);
    return v && vl == strlen(want) && !memcmp(v, want, vl);
}

/* send: an ack or an error naming this connection's outstanding client_id. */
static void wl_on_send_reply(struct wl_conn *c, const char *in, size_t len)
{
    char want[32];
    snprintf(want, sizeof(want), "c%d-%u", c->idx, c->seq);
    if (!c->awaiting || !wl_json_is(in, len, "client_id", want)) {
        if (memmem(in, len, "Unknown message type", 20))
            wl.unknown_type++;
        return;
    }
    lws_usec_t now = lws_now_usecs();
    if (wl_json_is(in, len, "type", "ack"))
        wl_sample(now - c->sent_at);
    else
        wl.errors++;
    c->awaiting = 0;
    lws_usec_t due = c->sent_at + WL_SEND_GAP_US;
    lws_sul_schedule(wl.ctx, 0, &c->sul, wl_on_send_timer, due > now ? due - now : 1);
}

/* latency, fanout: a "message" event whose content is "wsload <monotonic us>". */
static void wl_on_delivery(const char *in, size_t len)
{
    size_t vl;
    const char *v = wl_json_str(in, len, "content", &vl);
    if (!v || vl < 8 || memcmp(v, "wsload ", 7) != 0 || !wl_json_is(in, len, "type", "message"))
        return;
    long long sent = strtoll(v + 7, NULL, 10);
    if (sent > 0)
        wl_sample((lws_usec_t)(wl_post_now_us() - sent));
}

static void wl_on_receive(struct lws *wsi, struct wl_conn *c, const char *in, size_t len)
{
    if (wl.o.mode == WL_PROBE) {
        if (c->state == WL_OPEN) {
            printf("recv %.*s\n", (int)len, in);
            wl.exit_code = 0;
            wl_settle(c, WL_READY);
        }
        return;
    }
    if (c->state == WL_OPEN) {
        /* Other frames (presence, events) may come first: only the pong counts. */
        if (memmem(in, len, "\"pong\"", 6))
            wl_settle(c, WL_READY);
        return;
    }
    if (wl.phase == WL_SETTLE) {
        wl.last_rx = lws_now_usecs();
        wl.settle_frames++;
        return;
    }
    if (!lws_is_first_fragment(wsi))
        return;
    if (wl.o.mode == WL_SEND)
        wl_on_send_reply(c, in, len);
    else if (wl.o.mode == WL_LATENCY || wl.o.mode == WL_FANOUT)
        wl_on_delivery(in, len);
}

static void wl_on_peer_close(struct wl_conn *c, const unsigned char *in, size_t len)
{
    int code = len >= 2 ? (in[0] << 8) | in[1] : 0;
    if (c->state == WL_OPEN || c->state == WL_CONNECTING) {
        char why[160];
        int n = snprintf(why, sizeof(why), "closed %d %.*s", code, len > 2 ? (int)(len - 2) : 0,
                         (const char *)in + 2);
        wl_note_error(why, (size_t)n);
    }
    if (wl.o.mode == WL_PROBE && c->state == WL_OPEN) {
        printf("closed %d %.*s\n", code, len > 2 ? (int)(len - 2) : 0, (const char *)in + 2);
        wl.exit_code = 1;
    }
}

static int wl_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct wl_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        wl_note_error(in, in ? strlen(in) : 1);
        if (wl.o.mode == WL_PROBE && c && c->state == WL_CONNECTING)
            printf("error %s\n", in ? (const char *)in : "connection failed");
        if (c)
            wl_settle(c, WL_FAILED);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c && wl.o.nchan) {
            c->state = WL_OPEN;
            wl_settle(c, WL_READY); /* nchan answers no ping: open is ready */
        } else if (c) {
            c->state = WL_OPEN;
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return c ? wl_on_writeable(wsi, c) : 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c)
            wl_on_receive(wsi, c, in, len);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c)
            wl_on_peer_close(c, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c) {
            if (c->state == WL_OPEN || c->state == WL_CONNECTING)
                wl_note_error("closed before the pong", 22);
            wl_settle(c, WL_CLOSED);
            lws_sul_cancel(&c->sul);
            c->wsi = NULL;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* rx_buffer_size is set before the context exists: events carry a whole MessageRead. */
static struct lws_protocols wl_protocols[] = {
    {"wsload", wl_callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ------------------------------------------------------------ main */

static int wl_prepare(void)
{
    struct lws_context_creation_info info;
    if (wl.o.mode != WL_IDLE)
        wl_protocols[0].rx_buffer_size = 65536;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = wl_protocols;
    info.fd_limit_per_thread = (unsigned)wl.o.n + 32;
    wl.ctx = lws_create_context(&info);
    wl.conns = calloc((size_t)wl.o.n, sizeof(*wl.conns));
    if (wl.o.mode == WL_SEND || wl.o.mode == WL_LATENCY || wl.o.mode == WL_FANOUT)
        wl.samples = malloc(WL_MAX_SAMPLES * sizeof(*wl.samples));
    if (!wl.ctx || !wl.conns || ((wl.o.mode >= WL_SEND) && !wl.samples)) {
        fprintf(stderr, "wsload: out of memory or no lws context\n");
        return -1;
    }
    for (int i = 0; i < wl.o.n; i++)
        wl.conns[i].idx = i;
    wl.post.addr = wl.o.addr;
    wl.post.port = wl.o.post_port;
    wl.post.token = wl.o.sender_token ? wl.o.sender_token : "-";
    wl.post.field = wl.o.group ? "group_id" : "receiver_id";
    wl.post.target = wl.o.target;
    wl.post.path = "/api/v1/messages";
    if (wl.o.nchan) { /* the same body; "type":"message" is what the receivers look for */
        snprintf(wl.post_path, sizeof(wl.post_path), "/pub/%s", wl.o.target);
        wl.post.path = wl.post_path;
        wl.post.field = "type";
        wl.post.target = "message";
    }
    for (int i = 0; i < wl.o.binds; i++)
        snprintf(wl.binds[i], sizeof(wl.binds[i]), "127.0.0.%d", wl.o.bind_first + i);
    wl.post.rate = wl.o.rate;
    wl.post.conns = wl.o.post_conns;
    atomic_init(&wl.post.stop, 0);
    return 0;
}

static int wl_run_loop(void)
{
    if (wl_prepare() < 0)
        return 1;
    wl.exit_code = 1;
    wl.t0 = lws_now_usecs();
    wl.deadline = wl.t0 + (lws_usec_t)wl.o.setup_s * LWS_US_PER_SEC;
    lws_sul_schedule(wl.ctx, 0, &wl.pump, wl_on_pump, 1);
    lws_sul_schedule(wl.ctx, 0, &wl.tick, wl_on_tick, WL_TICK_US);
    while (wl.phase != WL_END)
        if (lws_service(wl.ctx, 0) < 0)
            break;
    wl_join_posters();
    lws_context_destroy(wl.ctx);
    free(wl.conns);
    free(wl.samples);
    return wl.exit_code;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (wl_opts_parse(&wl.o, argc, argv) < 0)
        return 2;
    if (wl.o.mode == WL_STORM)
        return wl_storm_run(&wl.o);
    lws_set_log_level(wl.o.verbose ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR, NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = wl_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return wl_run_loop();
}
