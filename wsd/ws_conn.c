#include "ws_conn.h"

#include "cfg.h"
#include "jx.h"
#include "log.h"
#include "metrics.h"
#include "ws_db.h"
#include "ws_hub.h"
#include "ws_presence.h"
#include "ws_srv.h"
#include "ws_sync.h"

#include <json-c/json.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds a connection scheduled to close may take to get its close frame out. */
#define WS_CONN_CLOSE_GRACE 5
/* Reassembly buffers up to this size are kept between messages. */
#define WS_CONN_RX_KEEP 4096
/* WS.md: typing is relayed at most once per second per conversation. */
#define WS_CONN_TYPING_MS 1000

static struct ws_conn_frame *ws_conn_frame_alloc(size_t len)
{
    struct ws_conn_frame *f = malloc(sizeof(*f) + LWS_PRE + len);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = len;
    return f;
}

struct ws_conn_frame *ws_conn_frame_new(const void *data, size_t len)
{
    struct ws_conn_frame *f = ws_conn_frame_alloc(len);
    if (f)
        memcpy(f->buf + LWS_PRE, data, len);
    return f;
}

struct ws_conn_frame *ws_conn_frame_cat(const char *a, size_t alen, const char *b, size_t blen)
{
    struct ws_conn_frame *f = ws_conn_frame_alloc(alen + blen);
    if (f) {
        memcpy(f->buf + LWS_PRE, a, alen);
        memcpy(f->buf + LWS_PRE + alen, b, blen);
    }
    return f;
}

void ws_conn_frame_unref(struct ws_conn_frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}

void ws_conn_init(struct ws_conn *c, struct lws *wsi, struct ws_srv *srv)
{
    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
    c->srv = srv;
    c->since = -1;
    if (srv) /* as ws_conn_release() takes it back */
        metrics_gauge_add(METRICS_WS_CONNECTIONS, 1);
}

static void ws_conn_drop_queue(struct ws_conn *c)
{
    while (c->q_count)
        ws_conn_pop(c);
    free(c->q);
    c->q = NULL;
    c->q_cap = c->q_head = 0;
}

static void ws_conn_drop_held(struct ws_conn *c)
{
    struct ws_conn_held *h;
    while ((h = ws_conn_unhold(c)))
        free(h);
}

void ws_conn_release(struct ws_conn *c)
{
    if (c->srv)
        metrics_gauge_add(METRICS_WS_CONNECTIONS, -1);
    if (c->ticket) {
        struct ws_conn_ticket *t = c->ticket;
        c->ticket = NULL;
        t->c = NULL;
        if (--t->refs == 0)
            free(t);
    }
    if (c->srv && c->srv->hub)
        ws_hub_remove(c->srv->hub, c);
    ws_sync_free(c);
    if (c->ready && c->srv && c->srv->presence)
        ws_presence_close(c->srv->presence, c->user_id);
    c->ready = 0;
    ws_conn_drop_queue(c);
    ws_conn_drop_held(c);
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
    free(c->seen);
    c->seen = NULL;
}

/* The log context in force, kept here so that it can be restored (log.c has no getter). */
static char ws_conn_log_req[sizeof(((struct ws_conn *)0)->req_id)];
static char ws_conn_log_user[sizeof(((struct ws_conn *)0)->user_id)];

static void ws_conn_log_set(const char *req, const char *user)
{
    snprintf(ws_conn_log_req, sizeof(ws_conn_log_req), "%s", req);
    snprintf(ws_conn_log_user, sizeof(ws_conn_log_user), "%s", user);
    log_set_context(ws_conn_log_req, ws_conn_log_user);
}

void ws_conn_log(const struct ws_conn *c)
{
    ws_conn_log_set(c ? c->req_id : "", c ? c->user_id : "");
}

struct ws_conn_ticket *ws_conn_ticket(struct ws_conn *c)
{
    if (!c->ticket) {
        if (!(c->ticket = malloc(sizeof(*c->ticket))))
            return NULL;
        c->ticket->c = c;
        c->ticket->refs = 1; /* the connection's own, dropped by ws_conn_release() */
    }
    c->ticket->refs++;
    return c->ticket;
}

struct ws_conn *ws_conn_ticket_take(struct ws_conn_ticket *t)
{
    struct ws_conn *c = t->c;
    if (--t->refs == 0)
        free(t);
    if (c)
        ws_conn_log(c);
    return c;
}

struct ws_conn_job {
    struct ws_conn_ticket *t;
    ws_conn_db_fn *fn;
};

static void ws_conn_on_job(void *arg, PGresult *res)
{
    struct ws_conn_job *j = arg;
    ws_conn_db_fn *fn = j->fn;
    struct ws_conn *c = ws_conn_ticket_take(j->t);
    free(j);
    if (c) {
        fn(c, res);
        ws_conn_log(NULL);
    }
}

int ws_conn_query(struct ws_conn *c, const char *sql, int nparams, const char *const *params,
                  ws_conn_db_fn *fn)
{
    struct ws_conn_job *j = malloc(sizeof(*j));
    if (!j)
        return -1;
    j->fn = fn;
    if (!(j->t = ws_conn_ticket(c))) {
        free(j);
        return -1;
    }
    if (ws_db_query(c->srv->db, c->lane, sql, nparams, params, ws_conn_on_job, j) < 0) {
        ws_conn_ticket_take(j->t);
        free(j);
        return -1;
    }
    return 0;
}

int ws_conn_rx_append(struct ws_conn *c, const void *in, size_t len)
{
    if (len > WS_CONN_MAX_MSG - c->rx_len)
        return -1;
    if (c->rx_len + len + 1 > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 1024;
        while (cap < c->rx_len + len + 1)
            cap *= 2;
        if (cap > WS_CONN_MAX_MSG + 1)
            cap = WS_CONN_MAX_MSG + 1;
        char *rx = realloc(c->rx, cap);
        if (!rx)
            return -1;
        c->rx = rx;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    c->rx[c->rx_len] = '\0';
    return 0;
}

void ws_conn_rx_reset(struct ws_conn *c)
{
    c->rx_len = 0;
    if (c->rx_cap > WS_CONN_RX_KEEP) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
}

int ws_conn_hold(struct ws_conn *c, const char *buf, size_t len)
{
    if (c->held_count >= WS_CONN_MAX_HELD || len > WS_CONN_MAX_HELD_BYTES - c->held_bytes)
        return -1;
    struct ws_conn_held *h = malloc(sizeof(*h) + len + 1);
    if (!h)
        return -1;
    h->next = NULL;
    h->len = len;
    memcpy(h->buf, buf, len);
    h->buf[len] = '\0';
    if (c->held_tail)
        c->held_tail->next = h;
    else
        c->held = h;
    c->held_tail = h;
    c->held_count++;
    c->held_bytes += len;
    metrics_count(METRICS_WS_FRAMES_IN);
    return 0;
}

struct ws_conn_held *ws_conn_unhold(struct ws_conn *c)
{
    struct ws_conn_held *h = c->held;
    if (!h)
        return NULL;
    c->held = h->next;
    if (!c->held)
        c->held_tail = NULL;
    c->held_count--;
    c->held_bytes -= h->len;
    h->next = NULL;
    return h;
}

int ws_conn_rate(struct ws_conn *c, uint64_t now_ms)
{
    /* The message WS_CONN_RATE_N back: if it is within the window, this one is over. */
    uint64_t oldest = c->rate_ms[c->rate_pos];
    c->rate_ms[c->rate_pos] = now_ms;
    c->rate_pos = (c->rate_pos + 1) % WS_CONN_RATE_N;
    if (!oldest || now_ms - oldest >= WS_CONN_RATE_MS)
        return 0;
    if (c->rate_warned_ms && now_ms - c->rate_warned_ms < WS_CONN_RATE_MS)
        return 2;
    c->rate_warned_ms = now_ms;
    return 1;
}

int ws_conn_typing_ok(struct ws_conn *c, uint64_t key, uint64_t now_ms)
{
    unsigned oldest = 0;
    for (unsigned i = 0; i < WS_CONN_TYPING_N; i++) {
        if (c->typing[i].key == key && c->typing[i].ms) {
            if (now_ms - c->typing[i].ms < WS_CONN_TYPING_MS)
                return 0;
            c->typing[i].ms = now_ms;
            return 1;
        }
        if (c->typing[i].ms < c->typing[oldest].ms)
            oldest = i;
    }
    c->typing[oldest].key = key;
    c->typing[oldest].ms = now_ms;
    return 1;
}

uint64_t ws_conn_hash(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

int ws_conn_seen(struct ws_conn *c, uint64_t h)
{
    for (unsigned i = 0; c->seen && i < WS_CONN_SEEN_N; i++)
        if (c->seen[i] == h)
            return 1;
    ws_conn_seen_add(c, h);
    return 0;
}

void ws_conn_seen_add(struct ws_conn *c, uint64_t h)
{
    /* Out of memory: nothing is recorded, so a message may come twice, never go missing. */
    if (!c->seen && !(c->seen = calloc(WS_CONN_SEEN_N, sizeof(*c->seen))))
        return;
    c->seen[c->seen_pos] = h;
    c->seen_pos = (c->seen_pos + 1) % WS_CONN_SEEN_N;
}

/* Doubles the ring, moving the live frames to the front. */
static int ws_conn_grow(struct ws_conn *c)
{
    unsigned cap = c->q_cap ? c->q_cap * 2 : 8;
    struct ws_conn_frame **q = malloc(cap * sizeof(*q));
    if (!q)
        return -1;
    for (unsigned i = 0; i < c->q_count; i++)
        q[i] = c->q[(c->q_head + i) % c->q_cap];
    free(c->q);
    c->q = q;
    c->q_cap = cap;
    c->q_head = 0;
    return 0;
}

int ws_conn_too_slow(size_t q_bytes, uint64_t moved_ms, uint64_t now_ms)
{
    if (q_bytes > (size_t)cfg.wsd_out_queue_max_bytes)
        return 1;
    /* A client that reads, however slowly, keeps its queue moving: only a stalled one is closed. */
    return q_bytes > (size_t)cfg.wsd_slow_client_bytes &&
           now_ms - moved_ms >= (uint64_t)cfg.wsd_slow_client_secs * 1000;
}

int ws_conn_push(struct ws_conn *c, struct ws_conn_frame *f)
{
    if (c->close_code)
        return 0;
    uint64_t now = uv_now(c->srv->loop);
    size_t cost = f->len + WS_CONN_FRAME_COST;
    if (!c->q_count)
        c->q_moved_ms = now;
    if (ws_conn_too_slow(c->q_bytes + cost, c->q_moved_ms, now) ||
        (c->q_count == c->q_cap && ws_conn_grow(c) < 0)) {
        ws_conn_close_later(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Too slow");
        metrics_count(METRICS_WS_SLOW_DROPS);
        return -1;
    }
    metrics_count(METRICS_WS_FRAMES_OUT);
    f->refs++;
    c->q[(c->q_head + c->q_count) % c->q_cap] = f;
    c->q_bytes += cost;
    /* One wakeup per connection per burst: ws_proto's writeable asks again while frames remain. */
    if (c->q_count++ == 0)
        lws_callback_on_writable(c->wsi);
    return 0;
}

int ws_conn_send(struct ws_conn *c, const char *s, size_t len)
{
    struct ws_conn_frame *f = ws_conn_frame_new(s, len);
    if (!f)
        return -1;
    int rc = ws_conn_push(c, f);
    ws_conn_frame_unref(f);
    return rc;
}

void ws_conn_send_json(struct ws_conn *c, struct json_object *o)
{
    size_t len;
    const char *s = jx_text(o, &len);
    if (s)
        ws_conn_send(c, s, len);
    json_object_put(o);
}

void ws_conn_error(struct ws_conn *c, const char *message, struct json_object *client_id)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("error"));
    json_object_object_add(o, "message", json_object_new_string(message));
    if (client_id)
        json_object_object_add(o, "client_id", json_object_get(client_id));
    ws_conn_send_json(c, o);
}

struct ws_conn_frame *ws_conn_peek(struct ws_conn *c)
{
    return c->q_count ? c->q[c->q_head] : NULL;
}

void ws_conn_pop(struct ws_conn *c)
{
    if (!c->q_count)
        return;
    struct ws_conn_frame *f = c->q[c->q_head];
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_count--;
    c->q_bytes -= f->len + WS_CONN_FRAME_COST;
    ws_conn_frame_unref(f);
}

void ws_conn_moved(struct ws_conn *c, uint64_t now_ms)
{
    c->q_moved_ms = now_ms;
}

void ws_conn_close_later(struct ws_conn *c, int code, const char *reason)
{
    if (c->close_code)
        return;
    c->close_code = code;
    c->close_reason = reason;
    if (code != LWS_CLOSE_STATUS_GOINGAWAY) {
        /* From a Redis or Postgres callback of another connection, too: log as c, then restore. */
        char req[sizeof(ws_conn_log_req)], user[sizeof(ws_conn_log_user)];
        memcpy(req, ws_conn_log_req, sizeof(req));
        memcpy(user, ws_conn_log_user, sizeof(user));
        ws_conn_log(c);
        log_info("ws: closing: %d %s", code, reason);
        ws_conn_log_set(req, user);
    }
    ws_conn_drop_queue(c);
    ws_conn_drop_held(c);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, WS_CONN_CLOSE_GRACE);
    /*
     * The close happens in LWS_CALLBACK_TIMER, not WRITEABLE: Debian's lws
     * 4.1.6 is built with _DEBUG, and with libuv it closes a wsi whose
     * WRITEABLE returned -1 twice ("uv repeat test"), the second time
     * without the close frame. The writeable request wakes the loop.
     */
    lws_set_timer_usecs(c->wsi, 1);
    lws_callback_on_writable(c->wsi);
}

void ws_conn_list_add(struct ws_conn_list *l, struct ws_conn *c)
{
    c->prev = NULL;
    c->next = l->head;
    if (l->head)
        l->head->prev = c;
    l->head = c;
    l->count++;
}

void ws_conn_list_remove(struct ws_conn_list *l, struct ws_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (l->head == c)
        l->head = c->next;
    else
        return;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    l->count--;
}
