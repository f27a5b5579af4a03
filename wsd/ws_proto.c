#include "ws_proto.h"

#include "cfg.h"
#include "log.h"
#include "ws_conn.h"

#include <json-c/json.h>
#include <string.h>

#define WS_PROTO_NAME "chat"
/* Bytes of an unknown message type echoed back in the error. */
#define WS_PROTO_ECHO_MAX 64

/* Shared state of the vhost (lws allocates and frees it). */
struct ws_proto_vhd {
    struct ws_conn_list conns;
    int going_away;
    void (*drained)(void *);
    void *drained_arg;
};

/* A client message type and its handler; later issues add join_group, message, typing... */
struct ws_proto_cmd {
    const char *type;
    void (*fn)(struct ws_conn *c, struct json_object *msg);
};

const lws_retry_bo_t ws_proto_retry = {
    .secs_since_valid_ping = 30,
    .secs_since_valid_hangup = 75,
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

/* Takes ownership of o. */
static void ws_proto_reply(struct ws_conn *c, struct json_object *o)
{
    size_t len;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (s)
        ws_conn_send(c, s, len);
    json_object_put(o);
}

static void ws_proto_error(struct ws_conn *c, const char *message, size_t len)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("error"));
    json_object_object_add(o, "message", json_object_new_string_len(message, (int)len));
    ws_proto_reply(c, o);
}

static void ws_proto_error_str(struct ws_conn *c, const char *message)
{
    ws_proto_error(c, message, strlen(message));
}

static void ws_proto_cmd_ping(struct ws_conn *c, struct json_object *msg)
{
    static const char pong[] = "{\"type\":\"pong\"}";
    (void)msg;
    ws_conn_send(c, pong, sizeof(pong) - 1);
}

static const struct ws_proto_cmd ws_proto_cmds[] = {
    {"ping", ws_proto_cmd_ping},
};

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
    ws_proto_error(c, buf, sizeof(prefix) - 1 + len);
}

static void ws_proto_run(struct ws_conn *c, struct json_object *msg, struct json_object *type)
{
    const char *t = json_object_get_string(type);
    size_t len = (size_t)json_object_get_string_len(type);
    for (size_t i = 0; i < sizeof(ws_proto_cmds) / sizeof(*ws_proto_cmds); i++)
        if (strlen(ws_proto_cmds[i].type) == len && !memcmp(ws_proto_cmds[i].type, t, len)) {
            ws_proto_cmds[i].fn(c, msg);
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
        ws_proto_error_str(c, "Invalid JSON");
        return;
    }
    if (!json_object_is_type(msg, json_type_object) ||
        !json_object_object_get_ex(msg, "type", &type) ||
        !json_object_is_type(type, json_type_string))
        ws_proto_error_str(c, "Missing message type");
    else
        ws_proto_run(c, msg, type);
    json_object_put(msg);
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

/* The {user_id} segment of the request path into out; -1 when the path is not ours. */
static int ws_proto_path_user(struct lws *wsi, char *out, size_t size)
{
    char path[256];
    static const size_t plen = sizeof(WS_PROTO_PATH) - 1;
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0 ||
        strncmp(path, WS_PROTO_PATH, plen) != 0)
        return -1;
    const char *user = path + plen;
    size_t len = strlen(user);
    if (len == 0 || len >= size || strchr(user, '/'))
        return -1;
    memcpy(out, user, len + 1);
    return 0;
}

/*
 * WS.md: an Origin header, when present, must be one of CORS_ORIGINS_STR or
 * our own (PUBLIC_URL), against cross-site WebSocket hijacking of cookie logins.
 */
static int ws_proto_origin_ok(struct lws *wsi)
{
    char origin[256];
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (len <= 0)
        return 1;
    if (len >= (int)sizeof(origin) ||
        lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0)
        return 0;
    return cfg_origin_allowed(origin, strlen(origin)) || !strcmp(origin, cfg.public_url);
}

/* Runs before the 101: answer with a status and return 1 to refuse, 0 to accept. */
static int ws_proto_on_upgrade(struct lws *wsi, const char *upgrade)
{
    char user[sizeof(((struct ws_conn *)0)->user_id)];
    struct ws_proto_vhd *vhd = ws_proto_vhd_of(wsi);
    unsigned status = 0;
    if (strcasecmp(upgrade, "websocket") != 0 || !ws_proto_origin_ok(wsi))
        status = HTTP_STATUS_FORBIDDEN;
    else if (ws_proto_path_user(wsi, user, sizeof(user)) < 0)
        status = HTTP_STATUS_NOT_FOUND;
    else if (!vhd || vhd->going_away)
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
    if (!status)
        return 0;
    return lws_return_http_status(wsi, status, NULL) ? -1 : 1;
}

static int ws_proto_on_established(struct lws *wsi, struct ws_conn *c)
{
    struct ws_proto_vhd *vhd = ws_proto_vhd_of(wsi);
    ws_conn_init(c, wsi);
    if (!vhd || ws_proto_path_user(wsi, c->user_id, sizeof(c->user_id)) < 0)
        return -1;
    ws_conn_list_add(&vhd->conns, c);
    log_debug("ws: open user=%s (%u open)", c->user_id, vhd->conns.count);
    if (vhd->going_away)
        ws_conn_close_later(c, LWS_CLOSE_STATUS_GOINGAWAY, "Server shutting down");
    return 0;
}

static int ws_proto_close_now(struct ws_conn *c, enum lws_close_status code, const char *reason)
{
    lws_close_reason(c->wsi, code, (unsigned char *)reason, strlen(reason));
    return -1;
}

/* Fragments are reassembled up to WS_CONN_MAX_MSG; a larger message closes with 1009. */
static int ws_proto_on_receive(struct ws_conn *c, const void *in, size_t len)
{
    if (c->close_code)
        return 0;
    if (lws_is_first_fragment(c->wsi))
        c->rx_len = 0;
    size_t room = WS_CONN_MAX_MSG - c->rx_len;
    size_t rest = lws_remaining_packet_payload(c->wsi);
    if (len > room || rest > room - len)
        return ws_proto_close_now(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "Message too big");
    if (ws_conn_rx_append(c, in, len) < 0)
        return ws_proto_close_now(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "Out of memory");
    if (!lws_is_final_fragment(c->wsi))
        return 0;
    if (lws_frame_is_binary(c->wsi))
        ws_proto_error_str(c, "Binary frames are not supported");
    else
        ws_proto_dispatch(c, c->rx, c->rx_len);
    ws_conn_rx_reset(c);
    return 0;
}

/* One frame per call; lws calls again while the queue is not empty. */
static int ws_proto_on_writeable(struct ws_conn *c)
{
    struct ws_conn_frame *f = ws_conn_peek(c);
    if (!f)
        return 0;
    if (lws_write(c->wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT) < (int)f->len)
        return -1;
    ws_conn_pop(c);
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
        log_debug("ws: closed user=%s (%u open)", c->user_id, vhd ? vhd->conns.count : 0);
    ws_conn_release(c);
    if (vhd && vhd->going_away && !vhd->conns.count && vhd->drained) {
        void (*drained)(void *) = vhd->drained;
        vhd->drained = NULL;
        drained(vhd->drained_arg);
    }
}

static int ws_proto_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len)
{
    struct ws_conn *c = user;
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
    case LWS_CALLBACK_TIMER: /* set by ws_conn_close_later() */
        if (c->close_code)
            return ws_proto_close_now(c, (enum lws_close_status)c->close_code, c->close_reason);
        return 0;
    case LWS_CALLBACK_CLOSED:
        ws_proto_on_closed(wsi, c);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

const struct lws_protocols ws_proto_protocols[] = {
    {.name = WS_PROTO_NAME,
     .callback = ws_proto_callback,
     .per_session_data_size = sizeof(struct ws_conn)},
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
