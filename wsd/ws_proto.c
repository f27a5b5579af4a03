#include "ws_proto.h"

#include "cfg.h"
#include "log.h"
#include "ws_auth.h"
#include "ws_cmd.h"
#include "ws_conn.h"
#include "ws_send.h"
#include "ws_srv.h"
#include "ws_sync.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WS_PROTO_NAME "chat"
/* lws's receive buffer per connection (see ws_proto_protocols). */
#define WS_PROTO_RX_BUF 512
/* Bytes lws writes at once. */
#define WS_PROTO_TX_MAX (256 * 1024)
/* Bytes of an unknown message type echoed back in the error. */
#define WS_PROTO_ECHO_MAX 64

/* Shared state of the vhost (lws allocates and frees it). */
struct ws_proto_vhd {
    struct ws_conn_list conns;
    int going_away;
    void (*drained)(void *);
    void *drained_arg;
};

/*
 * A client message type and its handler: 0 when it has answered, 1 when a
 * callback answers later and calls ws_proto_done() (meanwhile the client's
 * next messages wait, so answers keep the order of the questions).
 */
struct ws_proto_cmd {
    const char *type;
    int (*fn)(struct ws_conn *c, struct json_object *msg);
};

static const struct ws_proto_cmd ws_proto_cmds[] = {
    {"ping", ws_cmd_ping},    {"join_group", ws_cmd_join}, {"leave_group", ws_cmd_leave},
    {"message", ws_send_cmd}, {"typing", ws_cmd_typing},   {"read", ws_cmd_read},
    {"sync", ws_sync_cmd},    {"auth", ws_auth_cmd},
};

/*
 * lws's own validity checks are off: they keep a timer per connection in one
 * sorted list and re-insert it on every frame received, a walk of the whole
 * list (64 % of chat-wsd's CPU while 10,000 clients connected, README
 * "Issue 10 figures"). ws_proto_sweep() does the same job once a second.
 */
const lws_retry_bo_t ws_proto_retry = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

static struct ws_proto_vhd *ws_proto_vhd_of(struct lws *wsi)
{
    return lws_protocol_vh_priv_get(lws_get_vhost(wsi), lws_get_protocol(wsi));
}

static struct ws_proto_vhd *ws_proto_vhd_of_ctx(struct lws_context *ctx)
{
    struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
    if (!vh)
        return NULL;
    return lws_protocol_vh_priv_get(vh, lws_vhost_name_to_protocol(vh, WS_PROTO_NAME));
}

/* The input is valid UTF-8 (lws and json-c check it), so cut on a character boundary. */
static void ws_proto_error_unknown(struct ws_conn *c, const char *type, size_t len)
{
    static const char prefix[] = "Unknown message type: ";
    char buf[sizeof(prefix) + WS_PROTO_ECHO_MAX];
    if (len > WS_PROTO_ECHO_MAX) {
        len = WS_PROTO_ECHO_MAX;
        while (len && ((unsigned char)type[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(buf, prefix, sizeof(prefix) - 1);
    memcpy(buf + sizeof(prefix) - 1, type, len);
    buf[sizeof(prefix) - 1 + len] = '\0';
    ws_conn_error(c, buf, NULL);
}

static void ws_proto_run(struct ws_conn *c, struct json_object *msg, struct json_object *type)
{
    const char *t = json_object_get_string(type);
    size_t len = (size_t)json_object_get_string_len(type);
    for (size_t i = 0; i < sizeof(ws_proto_cmds) / sizeof(*ws_proto_cmds); i++)
        if (strlen(ws_proto_cmds[i].type) == len && !memcmp(ws_proto_cmds[i].type, t, len)) {
            c->busy = 1;
            if (ws_proto_cmds[i].fn(c, msg) == 0)
                c->busy = 0;
            return;
        }
    ws_proto_error_unknown(c, t, len);
}

/*
 * Strict JSON of exactly len bytes; buf[len] must be NUL, which ends a bare
 * number or literal for json-c. Returns 0 with *out set (NULL for "null"), or -1.
 */
static int ws_proto_parse(const char *buf, size_t len, struct json_object **out)
{
    struct json_tokener *tok = json_tokener_new();
    if (!tok)
        return -1;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    *out = json_tokener_parse_ex(tok, buf, (int)len + 1);
    int ok = json_tokener_get_error(tok) == json_tokener_success &&
             json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(*out);
        *out = NULL;
    }
    return ok ? 0 : -1;
}

/* One complete client message. */
static void ws_proto_dispatch(struct ws_conn *c, const char *buf, size_t len)
{
    struct json_object *msg, *type;
    if (ws_proto_parse(buf, len, &msg) < 0) {
        ws_conn_error(c, "Invalid JSON", NULL);
        return;
    }
    if (!json_object_is_type(msg, json_type_object) ||
        !json_object_object_get_ex(msg, "type", &type) ||
        !json_object_is_type(type, json_type_string))
        ws_conn_error(c, "Missing message type", NULL);
    else
        ws_proto_run(c, msg, type);
    json_object_put(msg);
}

/* Runs the waiting client messages, in order, until one answers later. */
static void ws_proto_resume(struct ws_conn *c)
{
    struct ws_conn_held *h;
    if (c->running)
        return; /* a callback inside dispatch: the loop below goes on */
    c->running = 1;
    while (c->ready && !c->busy && !c->close_code && (h = ws_conn_unhold(c))) {
        ws_proto_dispatch(c, h->buf, h->len);
        free(h);
    }
    c->running = 0;
}

void ws_proto_done(struct ws_conn *c)
{
    c->busy = 0;
    ws_proto_resume(c);
}

static int ws_proto_on_init(struct lws *wsi)
{
    struct ws_proto_vhd *vhd = lws_protocol_vh_priv_zalloc(
        lws_get_vhost(wsi), lws_get_protocol(wsi), sizeof(struct ws_proto_vhd));
    return vhd ? 0 : -1;
}

static int ws_proto_on_http(struct lws *wsi)
{
    if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL))
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Runs before the 101: answer with a status and return 1 to refuse, 0 to accept. */
static int ws_proto_on_upgrade(struct lws *wsi, const char *upgrade)
{
    struct ws_proto_vhd *vhd = ws_proto_vhd_of(wsi);
    unsigned status =
        strcasecmp(upgrade, "websocket") != 0 ? HTTP_STATUS_FORBIDDEN : ws_auth_upgrade_status(wsi);
    if (!status && (!vhd || vhd->going_away))
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
    if (!status)
        return 0;
    return lws_return_http_status(wsi, status, NULL) ? -1 : 1;
}

static int ws_proto_on_established(struct lws *wsi, struct ws_conn *c)
{
    struct ws_proto_vhd *vhd = ws_proto_vhd_of(wsi);
    ws_conn_init(c, wsi, lws_context_user(lws_get_context(wsi)));
    if (!vhd || !c->srv)
        return -1;
    ws_conn_list_add(&vhd->conns, c);
    c->rx_ms = uv_now(c->srv->loop);
    if (vhd->going_away) {
        ws_conn_close_later(c, LWS_CLOSE_STATUS_GOINGAWAY, "Server shutting down");
        return 0;
    }
    ws_auth_start(c);
    log_debug("ws: open (%u open)", vhd->conns.count);
    return 0;
}

static int ws_proto_close_now(struct ws_conn *c, enum lws_close_status code, const char *reason)
{
    lws_close_reason(c->wsi, code, (unsigned char *)reason, strlen(reason));
    return -1;
}

/* WS.md: over 50 messages in 10 s is an error, and the next one within the window closes. */
static int ws_proto_rate_ok(struct ws_conn *c)
{
    int over = ws_conn_rate(c, uv_now(c->srv->loop));
    if (over == 2)
        ws_conn_close_later(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Rate limit exceeded");
    else if (over == 1)
        ws_conn_error(c, "Rate limit exceeded", NULL);
    return !over;
}

/* A complete client message: waits its turn behind authentication and earlier commands. */
static void ws_proto_on_message(struct ws_conn *c)
{
    if (!ws_proto_rate_ok(c))
        return;
    if (lws_frame_is_binary(c->wsi)) {
        ws_conn_error(c, "Binary frames are not supported", NULL);
        return;
    }
    if (ws_conn_hold(c, c->rx, c->rx_len) < 0) {
        ws_conn_close_later(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Too many messages waiting");
        return;
    }
    ws_proto_resume(c);
}

/* The client is alive: its next PING is due WSD_PING_SECS from now. */
static void ws_proto_heard(struct ws_conn *c)
{
    c->rx_ms = uv_now(c->srv->loop);
    if (c->ping_state == 2)
        c->ping_state = 0;
}

/* What a too large message may still send before the 1009 comes without waiting for its end. */
#define WS_PROTO_DRAIN_MAX (1024 * 1024)

/*
 * Fragments are reassembled up to WS_CONN_MAX_MSG. A larger message is read
 * to its end and dropped (rx_len past WS_CONN_MAX_MSG counts what was read),
 * then closed with 1009: closing a socket that holds unread bytes sends a RST,
 * which can destroy the close frame on its way (the client then saw 1006).
 */
static int ws_proto_on_receive(struct ws_conn *c, const void *in, size_t len)
{
    ws_proto_heard(c);
    if (c->close_code)
        return 0;
    if (lws_is_first_fragment(c->wsi))
        c->rx_len = 0;
    if (c->rx_len > WS_CONN_MAX_MSG) {
        c->rx_len += len;
        if (lws_is_final_fragment(c->wsi) || c->rx_len > WS_PROTO_DRAIN_MAX)
            return ws_proto_close_now(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "Message too big");
        return 0;
    }
    size_t room = WS_CONN_MAX_MSG - c->rx_len;
    size_t rest = lws_remaining_packet_payload(c->wsi);
    if (len > room || rest > room - len) {
        c->rx_len = WS_CONN_MAX_MSG + 1 + len;
        if (lws_is_final_fragment(c->wsi))
            return ws_proto_close_now(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "Message too big");
        return 0;
    }
    if (ws_conn_rx_append(c, in, len) < 0)
        return ws_proto_close_now(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "Out of memory");
    if (!lws_is_final_fragment(c->wsi))
        return 0;
    ws_proto_on_message(c);
    ws_conn_rx_reset(c);
    return 0;
}

/*
 * Every queued frame the socket takes now, not one per call: a fan-out burst
 * then costs one wakeup per connection instead of one per frame. lws keeps
 * what the kernel refused of a frame (lws_partial_buffered(), lws's own rule
 * for several writes in one WRITEABLE); the rest waits for the next one.
 * Not lws_send_pipe_choked(): that is a poll() per frame, 37 % of chat-wsd's
 * CPU in a fan-out at 100 messages/s to 999 members (perf; README "Issue 10
 * figures (idle machine)").
 */
static int ws_proto_on_writeable(struct ws_conn *c)
{
    struct ws_conn_frame *f;
    int wrote = 0;
    if (c->ping_state == 1) {
        /* With a payload: lws passes an empty PONG to no callback (RECEIVE_PONG). */
        unsigned char ping[LWS_PRE + 4] = {[LWS_PRE] = 'p', 'i', 'n', 'g'};
        if (lws_write(c->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 4)
            return -1;
        c->ping_state = 2;
    }
    while ((f = ws_conn_peek(c)) && !lws_partial_buffered(c->wsi)) {
        if (lws_write(c->wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT) < (int)f->len)
            return -1;
        ws_conn_pop(c);
        wrote = 1;
        if (c->sync)
            ws_sync_pump(c);
    }
    if (wrote)
        ws_conn_moved(c, uv_now(c->srv->loop));
    if (ws_conn_peek(c))
        lws_callback_on_writable(c->wsi);
    return 0;
}

static void ws_proto_on_closed(struct lws *wsi, struct ws_conn *c)
{
    struct ws_proto_vhd *vhd = ws_proto_vhd_of(wsi);
    if (vhd)
        ws_conn_list_remove(&vhd->conns, c);
    if (c->wsi)
        log_debug("ws: closed (%u open)", vhd ? vhd->conns.count : 0);
    ws_conn_release(c);
    if (vhd && vhd->going_away && !vhd->conns.count && vhd->drained) {
        void (*drained)(void *) = vhd->drained;
        vhd->drained = NULL;
        drained(vhd->drained_arg);
    }
}

static int ws_proto_handle(struct lws *wsi, enum lws_callback_reasons reason, struct ws_conn *c,
                           void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_PROTOCOL_INIT:
        return ws_proto_on_init(wsi);
    case LWS_CALLBACK_HTTP:
        return ws_proto_on_http(wsi);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return ws_proto_on_upgrade(wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        return ws_proto_on_established(wsi, c);
    case LWS_CALLBACK_RECEIVE:
        return ws_proto_on_receive(c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_proto_on_writeable(c);
    case LWS_CALLBACK_RECEIVE_PONG:
        ws_proto_heard(c);
        return 0;
    case LWS_CALLBACK_TIMER: /* set by ws_conn_close_later() */
        if (c->close_code)
            return ws_proto_close_now(c, (enum lws_close_status)c->close_code, c->close_reason);
        return 0;
    case LWS_CALLBACK_CLOSED:
        ws_proto_on_closed(wsi, c);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, c, in, len);
    }
}

static int ws_proto_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len)
{
    struct ws_conn *c = user;
    /* Log lines carry the connection's request id and user (set once it is initialised). */
    if (c && c->wsi == wsi)
        ws_conn_log(c);
    int rc = ws_proto_handle(wsi, reason, c, in, len);
    ws_conn_log(NULL);
    return rc;
}

const struct lws_protocols ws_proto_protocols[] = {
    /*
     * lws gives every connection an rx buffer of rx_buffer_size (0: the
     * 4 KiB pt_serv_buf_size) for its whole life. Client messages are small
     * and larger ones arrive in pieces that ws_conn_rx_append() joins, so a
     * small one saves memory on every idle socket. tx_packet_size is what
     * lws hands the kernel per write (0: rx_buffer_size); past it lws copies
     * the rest of the frame aside: make it larger than any frame.
     */
    {.name = WS_PROTO_NAME,
     .callback = ws_proto_callback,
     .per_session_data_size = sizeof(struct ws_conn),
     .rx_buffer_size = WS_PROTO_RX_BUF,
     .tx_packet_size = WS_PROTO_TX_MAX},
    {.name = NULL},
};

void ws_proto_going_away(struct lws_context *ctx, void (*drained)(void *), void *arg)
{
    struct ws_proto_vhd *vhd = ws_proto_vhd_of_ctx(ctx);
    if (!vhd) {
        drained(arg);
        return;
    }
    vhd->going_away = 1;
    if (!vhd->conns.count) {
        drained(arg);
        return;
    }
    vhd->drained = drained;
    vhd->drained_arg = arg;
    for (struct ws_conn *c = vhd->conns.head; c; c = c->next)
        ws_conn_close_later(c, LWS_CLOSE_STATUS_GOINGAWAY, "Server shutting down");
}

/* One connection's turn in the sweep: token expiry, PING, hang-up. */
static void ws_proto_sweep_conn(struct ws_conn *c, uint64_t now_ms, long long now_s)
{
    if (c->close_code)
        return;
    if (c->token_exp && now_s >= c->token_exp) {
        ws_auth_expired(c);
        return;
    }
    uint64_t silent = now_ms - c->rx_ms;
    if (silent >= (uint64_t)cfg.wsd_idle_hangup_secs * 1000) {
        /* A dead peer takes no close frame either: the close's grace timeout ends it. */
        log_info("ws: silent for %d s: closing", cfg.wsd_idle_hangup_secs);
        ws_conn_close_later(c, LWS_CLOSE_STATUS_GOINGAWAY, "Idle timeout");
    } else if (silent >= (uint64_t)cfg.wsd_ping_secs * 1000 && c->ping_state == 0) {
        c->ping_state = 1;
        lws_callback_on_writable(c->wsi);
    }
}

void ws_proto_sweep(struct lws_context *ctx, uint64_t now_ms)
{
    struct ws_proto_vhd *vhd = ws_proto_vhd_of_ctx(ctx);
    if (!vhd)
        return;
    long long now_s = (long long)time(NULL);
    for (struct ws_conn *c = vhd->conns.head, *next; c; c = next) {
        next = c->next; /* an expired token closes later, never from here: c stays */
        ws_conn_log(c);
        ws_proto_sweep_conn(c, now_ms, now_s);
        ws_conn_log(NULL);
    }
}

unsigned ws_proto_count(struct lws_context *ctx)
{
    struct ws_proto_vhd *vhd = ws_proto_vhd_of_ctx(ctx);
    return vhd ? vhd->conns.count : 0;
}

void ws_proto_on_ctl(void *arg, const char *channel, const char *payload, size_t len)
{
    (void)arg;
    (void)payload;
    log_debug("bus: %s: %zu bytes", channel, len);
}
