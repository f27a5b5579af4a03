/*
 * wsload storm: a reconnect storm (issue 10, goal 1), on the libwebsockets 4.1 client API.
 *
 *   wsload storm -p PORT -k TOKENS [-n N] [-G GROUP_SIZE] [-O OBSERVERS] [-c INFLIGHT] [-d SECS]
 *
 * Connection i is line i of TOKENS; lines [g*G, g*G+G) are the members of group g (bench/run
 * seeds them so; G = N by default: one group). The first OBSERVERS (1) members of each group
 * connect first; once presence has been quiet for 1 s, all the others are opened at once (at
 * most INFLIGHT handshakes at a time). Observers must then see every storm member of their
 * group come online, from presence frames alone (online_status, presence): a connection that
 * opens during the storm cannot tell the transitions flushed before it subscribed from those it
 * missed, an observer can. Measured from the storm's first connect:
 *   closed      connections the server closed or refused during the run (observers included)
 *   setup_s     until every storm connection answered its ping
 *   settle_s    until every observer had seen every storm member of its group online
 *   frames      presence frames per connection (max, mean) and their KiB (mean), all of them
 * The run ends 1 s after settling with no presence frame for 1 s, or SECS after the storm
 * began. One line:
 *   storm n=.. groups=.. observers=.. ready=.. closed=.. setup_s=.. settle_s=.. frames_max=..
 *         frames_mean=.. kib_mean=.. unsettled=.. first_error=..
 * Exit 0 when every connection stayed up and presence settled, else 1.
 */
#include <libwebsockets.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsload.h"

#define ST_TICK_US (50 * LWS_US_PER_MS)
#define ST_QUIET_US (1000 * LWS_US_PER_MS)
#define ST_QUIET_MAX_US (30 * LWS_US_PER_SEC)

enum st_state { ST_NEW, ST_CONNECTING, ST_OPEN, ST_READY, ST_DEAD };
enum st_phase { ST_OBSERVERS, ST_QUIET, ST_STORM, ST_WATCH, ST_END };

struct st_conn {
    struct lws *wsi;
    int idx;
    unsigned char state, observer;
    unsigned frames;           /* presence frames since the storm began */
    unsigned long bytes;       /* their bytes */
    unsigned missing;          /* observer: storm members of its group not seen online */
    unsigned char *seen;       /* observer: one byte per member of its group */
    unsigned char in_presence; /* the message being received is a presence frame */
    char *msg;                 /* observer: the presence message being reassembled */
    size_t msg_len, msg_cap;
};

struct st_run {
    const struct wl_opts *o;
    struct lws_context *ctx;
    lws_sorted_usec_list_t pump, tick;
    struct st_conn *conns;
    int *map; /* open addressing: user id -> connection index + 1 */
    size_t map_mask;
    int next, inflight, pending, ready, closed, unsettled;
    enum st_phase phase;
    lws_usec_t phase_t0, storm_t0, storm_ready, settled, last_rx, deadline;
    char first_error[160];
};

static struct st_run st;
static volatile sig_atomic_t st_interrupted;

static void st_on_signal(int sig)
{
    (void)sig;
    st_interrupted = 1;
}

static void st_note(const char *why, size_t len)
{
    if (!st.first_error[0])
        snprintf(st.first_error, sizeof(st.first_error), "%.*s", (int)len, why ? why : "?");
}

static size_t st_hash(const char *s, size_t len)
{
    size_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int st_map_build(void)
{
    size_t cap = 16;
    while (cap < (size_t)st.o->n * 2)
        cap *= 2;
    if (!(st.map = calloc(cap, sizeof(*st.map))))
        return -1;
    st.map_mask = cap - 1;
    for (int i = 0; i < st.o->n; i++) {
        const char *u = st.o->tokens[i % st.o->ntokens].user;
        size_t h = st_hash(u, strlen(u)) & st.map_mask;
        while (st.map[h])
            h = (h + 1) & st.map_mask;
        st.map[h] = i + 1;
    }
    return 0;
}

/* The connection of user id (len bytes), or -1. */
static int st_map_find(const char *id, size_t len)
{
    for (size_t h = st_hash(id, len) & st.map_mask; st.map[h]; h = (h + 1) & st.map_mask) {
        const char *u = st.o->tokens[(st.map[h] - 1) % st.o->ntokens].user;
        if (strlen(u) == len && !memcmp(u, id, len))
            return st.map[h] - 1;
    }
    return -1;
}

/* ------------------------------------------------------------ connecting */

static int st_in_phase(const struct st_conn *c)
{
    return st.phase == ST_OBSERVERS ? c->observer : !c->observer;
}

static void st_on_pump(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    while (st.inflight < st.o->max_inflight && st.next < st.o->n) {
        struct st_conn *c = &st.conns[st.next++];
        struct lws_client_connect_info i;
        char path[4200];
        const struct wl_token *t = &st.o->tokens[c->idx % st.o->ntokens];
        if (!st_in_phase(c))
            continue;
        snprintf(path, sizeof(path), "%s%s?token=%s", st.o->prefix, t->user, t->token);
        memset(&i, 0, sizeof(i));
        i.context = st.ctx;
        i.address = i.host = st.o->addr;
        i.port = st.o->port;
        i.path = path;
        i.local_protocol_name = "wsload-storm";
        i.userdata = c;
        i.pwsi = &c->wsi;
        c->state = ST_CONNECTING;
        st.inflight++;
        if (!lws_client_connect_via_info(&i)) {
            c->state = ST_DEAD;
            st.inflight--;
            st.pending--;
            st.closed++;
            st_note("connect failed at once", 22);
        }
    }
}

/* Begins a connect phase: every connection of it, INFLIGHT at a time. */
static void st_start_phase(enum st_phase p, lws_usec_t now)
{
    st.phase = p;
    st.phase_t0 = now;
    st.next = 0;
    st.pending = 0;
    for (int i = 0; i < st.o->n; i++)
        st.pending += st_in_phase(&st.conns[i]);
    lws_sul_schedule(st.ctx, 0, &st.pump, st_on_pump, 1);
}

static void st_settle(struct st_conn *c, enum st_state to)
{
    if (c->state == ST_CONNECTING || c->state == ST_OPEN) {
        st.inflight--;
        st.pending--;
        if (to == ST_READY)
            st.ready++;
        lws_sul_schedule(st.ctx, 0, &st.pump, st_on_pump, 1);
    }
    if (to == ST_DEAD && c->state != ST_DEAD)
        st.closed++;
    c->state = (unsigned char)to;
}

/* ------------------------------------------------------------ presence frames */

/* The position of member m in its group, or -1 when m is not in c's group. */
static int st_member_of(const struct st_conn *c, int m)
{
    int g = st.o->group_size;
    return m >= 0 && m / g == c->idx / g ? m % g : -1;
}

static void st_observe(struct st_conn *c, int m, int online, lws_usec_t now)
{
    int pos = st_member_of(c, m);
    if (!c->observer || pos < st.o->observers || !!c->seen[pos] == online)
        return;
    c->seen[pos] = (unsigned char)online;
    if (online && --c->missing == 0 && --st.unsettled == 0)
        st.settled = now;
    else if (!online && c->missing++ == 0)
        st.unsettled++;
}

/* After "key": skips spaces and ':' (Postgres puts spaces around them). */
static const char *st_value(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == ':'))
        p++;
    return p;
}

/* Every {"user_id": .., "is_online": ..} of an online_status or presence frame. */
static void st_on_presence(struct st_conn *c, const char *in, size_t len, lws_usec_t now)
{
    const char *end = in + len, *p = in;
    while ((p = memmem(p, (size_t)(end - p), "\"user_id\"", 9))) {
        const char *v = st_value(p + 9, end), *q;
        p += 9;
        if (v >= end || *v != '"' || !(q = memchr(v + 1, '"', (size_t)(end - v - 1))))
            break;
        int m = st_map_find(v + 1, (size_t)(q - v - 1));
        const char *o = memmem(q, (size_t)(end - q), "\"is_online\"", 11);
        if (!o)
            break;
        o = st_value(o + 11, end);
        st_observe(c, m, o < end && *o == 't', now);
    }
}

static void st_on_receive(struct lws *wsi, struct st_conn *c, const char *in, size_t len)
{
    lws_usec_t now = lws_now_usecs();
    int first = lws_is_first_fragment(wsi);
    if (c->state == ST_OPEN && first && memmem(in, len, "\"pong\"", 6)) {
        st_settle(c, ST_READY);
        return;
    }
    /* A fragment of a large presence frame carries no type; the first one does. */
    if (first)
        c->in_presence =
            memmem(in, len, "\"online_status\"", 15) || memmem(in, len, "\"presence\"", 10);
    if (!c->in_presence)
        return;
    st.last_rx = now;
    if (st.phase >= ST_STORM) {
        c->frames += first;
        c->bytes += len;
    }
    if (!c->observer)
        return;
    /*
     * A message comes in as many pieces as reads: a member's "user_id" and its "is_online"
     * may lie in two of them, so an observer parses the whole message (a piece-wise parse
     * missed members and never saw presence settle).
     */
    if (c->msg_len + len > c->msg_cap) {
        size_t cap = (c->msg_len + len) * 2;
        char *m = realloc(c->msg, cap);
        if (!m)
            return;
        c->msg = m;
        c->msg_cap = cap;
    }
    memcpy(c->msg + c->msg_len, in, len);
    c->msg_len += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return;
    st_on_presence(c, c->msg, c->msg_len, now);
    c->msg_len = 0;
}

/* ------------------------------------------------------------ phases */

static void st_print(void)
{
    unsigned max = 0;
    double sum = 0, bytes = 0;
    for (int i = 0; i < st.o->n; i++) {
        const struct st_conn *c = &st.conns[i];
        max = c->frames > max ? c->frames : max;
        sum += c->frames;
        bytes += (double)c->bytes;
    }
    double setup = st.storm_ready ? (double)(st.storm_ready - st.storm_t0) / LWS_US_PER_SEC : -1;
    double settle = st.settled ? (double)(st.settled - st.storm_t0) / LWS_US_PER_SEC : -1;
    printf("storm n=%d groups=%d observers=%d ready=%d closed=%d setup_s=%.2f settle_s=%.2f "
           "frames_max=%u frames_mean=%.1f kib_mean=%.1f unsettled=%d first_error=%s\n",
           st.o->n, (st.o->n + st.o->group_size - 1) / st.o->group_size, st.o->observers, st.ready,
           st.closed, setup, settle, max, sum / st.o->n, bytes / st.o->n / 1024, st.unsettled,
           st.first_error[0] ? st.first_error : "-");
}

static void st_on_tick(lws_sorted_usec_list_t *sul)
{
    lws_usec_t now = lws_now_usecs();
    (void)sul;
    if (st_interrupted || now > st.deadline) {
        st.phase = ST_END;
    } else if (st.phase == ST_OBSERVERS && st.pending == 0) {
        st.phase = ST_QUIET;
        st.phase_t0 = st.last_rx = now;
    } else if (st.phase == ST_QUIET &&
               (now - st.last_rx > ST_QUIET_US || now - st.phase_t0 > ST_QUIET_MAX_US)) {
        st.storm_t0 = now;
        st.deadline = now + (lws_usec_t)st.o->run_s * LWS_US_PER_SEC;
        st_start_phase(ST_STORM, now);
    } else if (st.phase == ST_STORM && st.pending == 0) {
        st.storm_ready = now;
        st.phase = ST_WATCH;
    } else if (st.phase == ST_WATCH && !st.unsettled && now - st.last_rx > ST_QUIET_US) {
        st.phase = ST_END;
    }
    if (st.phase != ST_END)
        lws_sul_schedule(st.ctx, 0, &st.tick, st_on_tick, ST_TICK_US);
}

/* ------------------------------------------------------------ lws */

static int st_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct st_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        st_note(in, in ? strlen(in) : 1);
        if (c)
            st_settle(c, ST_DEAD);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c) {
            c->state = ST_OPEN;
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        unsigned char buf[LWS_PRE + 16];
        memcpy(buf + LWS_PRE, "{\"type\":\"ping\"}", 15);
        return lws_write(wsi, buf + LWS_PRE, 15, LWS_WRITE_TEXT) < 15 ? -1 : 0;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c)
            st_on_receive(wsi, c, in, len);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len > 2) {
            char why[160];
            int n = snprintf(why, sizeof(why), "closed %d %.*s",
                             (((const unsigned char *)in)[0] << 8) | ((const unsigned char *)in)[1],
                             (int)(len - 2), (const char *)in + 2);
            st_note(why, (size_t)n);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c) {
            st_settle(c, ST_DEAD);
            c->wsi = NULL;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static struct lws_protocols st_protocols[] = {
    {"wsload-storm", st_callback, 0, 16384, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int st_prepare(void)
{
    struct lws_context_creation_info info;
    int g = st.o->group_size;
    /* A presence frame lists at most a whole group (~90 bytes a member): one buffer holds it. */
    st_protocols[0].rx_buffer_size = (size_t)g * 96 + 16384;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = st_protocols;
    info.fd_limit_per_thread = (unsigned)st.o->n + 32;
    st.ctx = lws_create_context(&info);
    st.conns = calloc((size_t)st.o->n, sizeof(*st.conns));
    if (!st.ctx || !st.conns || st_map_build() < 0)
        return -1;
    for (int i = 0; i < st.o->n; i++) {
        struct st_conn *c = &st.conns[i];
        int members = i / g == (st.o->n - 1) / g ? (st.o->n - 1) % g + 1 : g;
        c->idx = i;
        c->observer = i % g < st.o->observers;
        if (!c->observer)
            continue;
        c->missing = members > st.o->observers ? (unsigned)(members - st.o->observers) : 0;
        st.unsettled += c->missing > 0;
        if (!(c->seen = calloc((size_t)g, 1)))
            return -1;
    }
    return 0;
}

int wl_storm_run(const struct wl_opts *o)
{
    struct sigaction sa;
    int rc = 1;
    st.o = o;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = st_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (st_prepare() < 0) {
        fprintf(stderr, "wsload: out of memory or no lws context\n");
        goto out;
    }
    lws_usec_t now = lws_now_usecs();
    st.deadline = now + (lws_usec_t)o->setup_s * LWS_US_PER_SEC + ST_QUIET_MAX_US;
    st_start_phase(ST_OBSERVERS, now);
    lws_sul_schedule(st.ctx, 0, &st.tick, st_on_tick, ST_TICK_US);
    while (st.phase != ST_END)
        if (lws_service(st.ctx, 0) < 0)
            break;
    st_print();
    rc = st.closed == 0 && st.settled && st.ready == o->n ? 0 : 1;
out:
    if (st.ctx)
        lws_context_destroy(st.ctx);
    for (int i = 0; st.conns && i < o->n; i++) {
        free(st.conns[i].seen);
        free(st.conns[i].msg);
    }
    free(st.conns);
    free(st.map);
    return rc;
}
