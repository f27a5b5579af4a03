#include "ws_send.h"

#include "cfg.h"
#include "chan.h"
#include "db.h"
#include "log.h"
#include "ws_bus.h"
#include "ws_cmd.h"
#include "ws_conn.h"
#include "ws_db.h"
#include "ws_proto.h"
#include "ws_srv.h"
#include "ws_tail.h"

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_SEND_CONTENT_MAX 5000
#define WS_SEND_CLIENT_ID_MAX 100

static const char ws_send_sql[] = "SELECT status, detail, pub, msg_id, msg_seq, msg_created"
                                  " FROM chatd_message_send($1, $2, $3, $4, $5, $6, $7)";

/* fcgi's Redis commands time out after a second: the rate check waits no longer. */
#define WS_SEND_REDIS_MS 1000

enum ws_send_step {
    WS_SEND_RATE,  /* the rate-limit counter is on its way */
    WS_SEND_STORE, /* chatd_message_send on the user's lane (it commits alone) */
    WS_SEND_WAIT,  /* committed; the ack waits for the tail to pass its seq */
    WS_SEND_DONE,  /* answered; s waits for late Redis replies, then goes */
};

/* One send in flight; it lives on when its connection closes, until Redis has answered. */
struct ws_send {
    struct ws_srv *srv;
    struct ws_conn_ticket *t;
    uv_timer_t timer; /* bounds the wait on the rate check */
    enum ws_send_step step;
    unsigned replies; /* Redis replies still to come (any step) */
    unsigned lane;
    struct json_object *client_id; /* string or null (a reference) */
    char sender[37], receiver[37], group[37];
    char *content, *media_url, *media_type;
    char *id, *created; /* the stored message, for the ack */
    long long seq;
};

static void ws_send_free(struct ws_send *s)
{
    json_object_put(s->client_id);
    free(s->content);
    free(s->media_url);
    free(s->media_type);
    free(s->id);
    free(s->created);
    free(s);
}

static void ws_send_on_closed(uv_handle_t *h)
{
    ws_send_free(h->data);
}

/* Once answered and no Redis callback can come any more. */
static void ws_send_maybe_free(struct ws_send *s)
{
    if (s->step == WS_SEND_DONE && s->replies == 0)
        uv_close((uv_handle_t *)&s->timer, ws_send_on_closed);
}

/* The WS error for a failed statement, by db_errclass on its SQLSTATE (NULL: none). */
static const char *ws_send_db_error(const char *sqlstate)
{
    switch (db_errclass_state(sqlstate)) {
    case DB_UNAVAILABLE:
        return "Database unavailable";
    case DB_TIMEOUT:
    case DB_RETRY:
        return "Database busy";
    case DB_INVALID:
        return "Invalid value";
    default:
        return "Internal error";
    }
}

static void ws_send_ack(struct ws_send *s, struct ws_conn *c)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("ack"));
    json_object_object_add(o, "client_id", json_object_get(s->client_id));
    json_object_object_add(o, "id", json_object_new_string(s->id));
    json_object_object_add(o, "seq", json_object_new_int64(s->seq));
    json_object_object_add(o, "created_at", json_object_new_string(s->created));
    ws_conn_send_json(c, o);
}

/* Answers the client (ack when error is NULL), lets its next message run. */
static void ws_send_finish(struct ws_send *s, const char *error)
{
    s->step = WS_SEND_DONE;
    uv_timer_stop(&s->timer);
    struct ws_conn *c = ws_conn_ticket_take(s->t);
    if (c) {
        if (error)
            ws_conn_error(c, error, s->client_id);
        else
            ws_send_ack(s, c);
        ws_proto_done(c);
        ws_conn_log(NULL);
    }
    ws_send_maybe_free(s);
}

static void ws_send_on_pub(void *arg, const struct redisReply *r)
{
    struct ws_send *s = arg;
    s->replies--;
    if (!r)
        log_warn("bus: a tick was not published; the tails read on their timer");
    ws_send_maybe_free(s);
}

static void ws_send_publish1(struct ws_send *s, const char *chan, const char *payload, size_t len)
{
    if (ws_bus_publish(s->srv->cmd, chan, payload, len, ws_send_on_pub, s) < 0) {
        log_warn("bus: publish to %s failed; the tails read on their timer", chan);
        return;
    }
    s->replies++;
}

/* The tail passed the seq (or stopped): ack, or drop it when the connection is gone. */
static void ws_send_on_passed(void *arg)
{
    ws_send_finish(arg, NULL);
}

/*
 * Committed: wakes the tails (the message reaches every connection, this
 * instance's too, from the log), tells the old version's outside subscribers
 * of a group message, and acks without waiting for Redis.
 */
static void ws_send_stored(struct ws_send *s, PGresult *res)
{
    static const char head[] = CHAN_FRAME_MESSAGE;
    const char *pub = PQgetvalue(res, 0, 2);
    size_t plen = (size_t)PQgetlength(res, 0, 2);
    s->id = strdup(PQgetvalue(res, 0, 3));
    s->seq = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    s->created = strdup(PQgetvalue(res, 0, 5));
    if (!s->id || !s->created) {
        ws_send_finish(s, "Out of memory");
        return;
    }
    /* Before the tail can route it: the copy it brings to this connection is dropped. */
    if (s->t->c)
        ws_conn_seen_add(s->t->c, ws_conn_hash(s->id, strlen(s->id)));
    ws_send_publish1(s, CHAN_TICK, PQgetvalue(res, 0, 4), (size_t)PQgetlength(res, 0, 4));
    char legacy[CHAN_NAME_MAX];
    char *frame = *s->group && plen > 1 ? malloc(sizeof(head) + plen) : NULL;
    if (frame && chan_name(legacy, CHAN_LEGACY, s->group) > 0) {
        memcpy(frame, head, sizeof(head) - 1);
        memcpy(frame + sizeof(head) - 1, pub + 1, plen - 1);
        ws_send_publish1(s, legacy, frame, sizeof(head) - 1 + plen - 1);
    }
    free(frame);
    /*
     * The ack's seq is a sync watermark (README.seqpath.md) only once every
     * lower seq is final: wait for this instance's tail to pass it. The
     * connection's next frame waits too (ws_proto_done comes with the ack).
     */
    s->step = WS_SEND_WAIT;
    if (!s->srv->tail || ws_tail_wait(s->srv->tail, s->seq, ws_send_on_passed, s) < 0)
        ws_send_finish(s, NULL);
}

static void ws_send_on_send(void *arg, PGresult *res)
{
    struct ws_send *s = arg;
    if (!res) {
        ws_send_finish(s, "Database unavailable");
        return;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        /* Only the SQLSTATE: the message text may quote the content. */
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        log_warn("ws: storing a message failed (SQLSTATE %s)", state);
        ws_send_finish(s, ws_send_db_error(state));
        return;
    }
    int status = atoi(PQgetvalue(res, 0, 0));
    if (status != 201) {
        ws_send_finish(s, PQgetvalue(res, 0, 1));
        return;
    }
    ws_send_stored(s, res);
}

/* Stores on the user's lane, so one user's sends are stored in the order they were sent. */
static void ws_send_store(struct ws_send *s)
{
    s->step = WS_SEND_STORE;
    const char *params[] = {s->sender,
                            *s->receiver ? s->receiver : NULL,
                            *s->group ? s->group : NULL,
                            s->content,
                            s->media_url,
                            s->media_type,
                            cfg.public_url};
    if (ws_db_query(s->srv->db, s->lane, ws_send_sql, 7, params, ws_send_on_send, s) < 0)
        ws_send_finish(s, "Server busy");
}

static void ws_send_on_timer(uv_timer_t *t)
{
    struct ws_send *s = t->data;
    if (s->step == WS_SEND_RATE) {
        log_warn("rate limit: redis did not answer, letting a message through");
        ws_send_store(s);
    }
}

static void ws_send_on_rate(void *arg, const struct redisReply *r)
{
    struct ws_send *s = arg;
    s->replies--;
    if (s->step != WS_SEND_RATE) {
        ws_send_maybe_free(s); /* too late: the message went on without it */
        return;
    }
    uv_timer_stop(&s->timer);
    /* chan_lua_window answers {count, ttl}: fcgi's window, on the same key (one bucket per user).
     */
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER &&
        r->element[0]->integer > cfg.rate_messages_per_10s)
        ws_send_finish(s, "Too Many Requests");
    else
        ws_send_store(s);
}

/* RATE_LIMIT_MESSAGES_PER_10S, shared with REST; Redis down lets the message through, as fcgi. */
static void ws_send_rate_check(struct ws_send *s)
{
    if (cfg.rate_messages_per_10s <= 0 ||
        ws_bus_command(s->srv->cmd, ws_send_on_rate, s, "EVAL %s 1 rl:msg:%s 10 1", chan_lua_window,
                       s->sender) < 0) {
        ws_send_store(s);
        return;
    }
    s->replies++;
    uv_timer_start(&s->timer, ws_send_on_timer, WS_SEND_REDIS_MS, 0);
}

/* The fields of a `message`; -1 after answering an error. */
static int ws_send_parse(struct ws_conn *c, struct json_object *msg, struct ws_send *s)
{
    const char *content, *url, *type;
    struct json_object *id = NULL;
    if (json_object_object_get_ex(msg, "client_id", &id) && id &&
        ws_cmd_str(c, msg, "client_id", WS_SEND_CLIENT_ID_MAX, &content, NULL) < 0)
        return -1;
    s->client_id = id ? json_object_get(id) : NULL;
    if (ws_cmd_str(c, msg, "content", WS_SEND_CONTENT_MAX, &content, s->client_id) < 0 ||
        ws_cmd_target(c, msg, s->receiver, s->group, s->client_id) < 0 ||
        ws_cmd_str(c, msg, "media_url", 500, &url, s->client_id) < 0 ||
        ws_cmd_str(c, msg, "media_type", 20, &type, s->client_id) < 0)
        return -1;
    if (!content) {
        ws_conn_error(c, "content: Field required", s->client_id);
        return -1;
    }
    if (type && strcmp(type, "image") != 0 && strcmp(type, "video") != 0) {
        ws_conn_error(c, "media_type: Input should be 'image' or 'video'", s->client_id);
        return -1;
    }
    s->content = strdup(content);
    s->media_url = url ? strdup(url) : NULL;
    s->media_type = type ? strdup(type) : NULL;
    if (!s->content || (url && !s->media_url) || (type && !s->media_type)) {
        ws_conn_error(c, "Out of memory", s->client_id);
        return -1;
    }
    return 0;
}

int ws_send_cmd(struct ws_conn *c, struct json_object *msg)
{
    struct ws_send *s = calloc(1, sizeof(*s));
    if (!s) {
        ws_conn_error(c, "Out of memory", NULL);
        return 0;
    }
    if (ws_send_parse(c, msg, s) < 0) {
        ws_send_free(s);
        return 0;
    }
    if (!(s->t = ws_conn_ticket(c))) {
        ws_conn_error(c, "Out of memory", s->client_id);
        ws_send_free(s);
        return 0;
    }
    s->srv = c->srv;
    s->lane = c->lane;
    memcpy(s->sender, c->user_id, sizeof(s->sender));
    uv_timer_init(c->srv->loop, &s->timer);
    s->timer.data = s;
    ws_send_rate_check(s);
    return 1;
}
